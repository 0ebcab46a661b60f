//! Command-line arguments (what each command does is in `commands.rs`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// medvault: per-field encrypted patient records with blind-index search.
#[derive(Debug, Parser)]
#[command(name = "medvault", version, about, long_about = None)]
pub struct Cli {
    /// Where the vault lives: `sqlcipher:<path>`.
    #[arg(long, global = true, env = "MEDVAULT_STORE")]
    pub store: Option<String>,

    /// Your user name (for `init`: the first administrator).
    #[arg(long, global = true, env = "MEDVAULT_USER")]
    pub user: Option<String>,

    /// Read your password from this file (first line).
    #[arg(long, global = true, value_name = "PATH")]
    pub password_file: Option<PathBuf>,

    /// Never prompt; fail instead when a password is not given.
    #[arg(long, global = true)]
    pub batch: bool,

    /// Machine-readable JSON output (init, find, show, list).
    #[arg(long, global = true)]
    pub json: bool,

    /// Pin this root fingerprint instead of the keyring's.
    #[arg(long, global = true, value_name = "FINGERPRINT", env = "MEDVAULT_ROOT")]
    pub root: Option<String>,

    /// Test suites only: protect new keys with a cheap KDF.
    #[arg(long, global = true, hide = true)]
    pub danger_fast_kdf: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a vault, its root key (printed as recovery shares) and the
    /// first administrator (--user).
    Init(InitArgs),
    /// Manage users (administrators).
    #[command(subcommand)]
    User(UserCmd),
    /// Grant a scope to a user (administrators), for reading and writing
    /// unless --read-only. Granting again changes the rights.
    Grant {
        /// User to grant to.
        #[arg(value_name = "USER")]
        grantee: String,
        /// Scope: identity, clinical, billing, or a restricted scope.
        scope: String,
        /// The user may read what is sealed under the scope, not write.
        #[arg(long)]
        read_only: bool,
    },
    /// Remove a user's grant of a scope and rotate the scope, so nothing
    /// written afterwards is readable to them (administrators holding the
    /// scope). What they already read is not taken back.
    Revoke {
        /// User.
        #[arg(value_name = "USER")]
        grantee: String,
        /// Scope.
        scope: String,
    },
    /// Make your own key from an administrator's invitation, under a
    /// password only you know, and write the enrolment request to give
    /// back to them (`medvault user certify`). Needs no --store or --user.
    Enrol {
        /// The invitation file (`-`: standard input).
        #[arg(long, value_name = "PATH")]
        invitation: PathBuf,
        /// Where to write the request (default: standard output).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// File holding your new password (else MEDVAULT_NEW_PASSWORD, else
        /// asked twice).
        #[arg(long, value_name = "PATH")]
        new_password_file: Option<PathBuf>,
    },
    /// Change your password: your secret key is locked again under the new
    /// one (no data re-encrypted; on SQLCipher the keyring entry too). Also
    /// the first login of a user whose password an administrator chose.
    Passwd {
        /// File holding the new password (else MEDVAULT_NEW_PASSWORD, else
        /// asked twice).
        #[arg(long, value_name = "PATH")]
        new_password_file: Option<PathBuf>,
    },
    /// Give a scope a new key epoch and seal every cell of it again under
    /// that epoch, with its blind indexes; then retire the old epoch.
    /// Search keeps working meanwhile. Resumable: run it again after an
    /// interruption (administrators holding the scope).
    Rotate {
        /// Scope.
        scope: String,
        /// Rows per transaction.
        #[arg(long, value_name = "N", default_value_t = medvault::vault::rotate::DEFAULT_BATCH)]
        batch_rows: u32,
        /// Make a new epoch even if an earlier rotation is unfinished (to
        /// finish a revocation that stopped part-way).
        #[arg(long)]
        new_epoch: bool,
    },
    /// Sign the rows written before medvault signed rows (a vault made
    /// before migration V7), as the store holds them, then record that every
    /// row is signed: from then on a row without a signature is reported
    /// as forged. Run it right after upgrading. Resumable (administrators).
    Adopt,
    /// Manage restricted scopes (administrators).
    #[command(subcommand)]
    Scope(ScopeCmd),
    /// Add, find and show patients.
    #[command(subcommand)]
    Patient(PatientCmd),
    /// Add and list notes.
    #[command(subcommand)]
    Note(NoteCmd),
    /// Check recovery shares against the vault's root key.
    #[command(subcommand)]
    Recovery(RecoveryCmd),
    /// Use k recovery shares: give a user who lost their password a new
    /// key with all their grants, or certify a new administrator (the
    /// shares are the authority). Log in as yourself, or give no --user
    /// when nobody can log in: the root, rebuilt from the shares, acts.
    #[command(subcommand)]
    Recover(RecoverCmd),
    /// Rows of any declared table: insert, get, find, list, update, delete.
    #[command(subcommand)]
    Row(RowCmd),
    /// The schema: check an application's declarations, print the SQL of
    /// a table (no vault or login needed).
    #[command(subcommand)]
    Schema(SchemaCmd),
    /// Copy a whole vault to another store without decrypting any field
    /// (resumable: run it again after an interruption).
    Copy {
        /// Source store (you log in there with --user).
        #[arg(long)]
        from: String,
        /// Destination store: a new or partly copied SQLCipher file, or a
        /// MySQL database.
        #[arg(long)]
        to: String,
    },
    /// Check every signature, envelope header and row count of --store,
    /// and that every field you may read decrypts.
    Verify,
    /// Walk through a whole clinic in a throwaway directory.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Shares needed to recover the root key.
    #[arg(long, default_value_t = 2)]
    pub threshold: u8,
    /// Shares printed.
    #[arg(long, default_value_t = 4)]
    pub shares: u8,
}

#[derive(Debug, Subcommand)]
pub enum RowCmd {
    /// Insert a row: `column=value` arguments, or a JSON object from a
    /// file or standard input (`--from -`; keeps values off the command
    /// line). Prints the new row's id.
    Insert {
        /// Table.
        table: String,
        /// `column=value`, typed by the schema.
        #[arg(value_name = "COLUMN=VALUE")]
        values: Vec<String>,
        /// The parent row's id (tables with a parent).
        #[arg(long)]
        parent: Option<String>,
        /// The row's scope (tables with per-row columns).
        #[arg(long)]
        scope: Option<String>,
        /// A JSON object with the columns by name (and `parent`, `scope`).
        #[arg(long, value_name = "FILE|-", conflicts_with_all = ["values", "parent", "scope"])]
        from: Option<String>,
    },
    /// Print one row.
    Get {
        /// Table.
        table: String,
        /// Row id.
        id: String,
    },
    /// Rows whose columns equal the values, through the blind index that
    /// covers exactly those columns.
    Find {
        /// Table.
        table: String,
        /// `column=value` criteria.
        #[arg(value_name = "COLUMN=VALUE")]
        criteria: Vec<String>,
        /// A JSON object of criteria.
        #[arg(long, value_name = "FILE|-", conflicts_with = "criteria")]
        from: Option<String>,
        /// Rows whose date column falls in a year, through a `year` index.
        #[arg(long, value_name = "COLUMN=YYYY", conflicts_with_all = ["criteria", "from", "year_month", "sounds_like", "prefix", "word"])]
        year: Option<String>,
        /// Rows whose date column falls in a month, through a `year-month`
        /// index.
        #[arg(long, value_name = "COLUMN=YYYY-MM", conflicts_with_all = ["criteria", "from", "sounds_like", "prefix", "word"])]
        year_month: Option<String>,
        /// Rows whose name column sounds like the name given, through a
        /// `phonetic` index.
        #[arg(long, value_name = "COLUMN=NAME", conflicts_with_all = ["criteria", "from", "prefix", "word"])]
        sounds_like: Option<String>,
        /// Rows whose column begins with the characters given, through a
        /// `prefix` index (at least its shortest length).
        #[arg(long, value_name = "COLUMN=START", conflicts_with_all = ["criteria", "from", "word"])]
        prefix: Option<String>,
        /// Rows whose column holds the word given among its words (each
        /// word given, for several), through a `tokens` index.
        #[arg(long, value_name = "COLUMN=WORD", conflicts_with_all = ["criteria", "from"])]
        word: Option<String>,
        /// Order the rows by this column (then by id); by id if not given.
        /// A plain integer, timestamp, date or boolean column is ordered
        /// by the store, page by page; any other after decrypting every
        /// match.
        #[arg(long, value_name = "COLUMN")]
        order_by: Option<String>,
        /// Largest first.
        #[arg(long)]
        desc: bool,
        /// At most N rows.
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// The rows that come after this one, as it is now, in the order
        /// asked (the last id of the previous page).
        #[arg(long, value_name = "ID")]
        after: Option<String>,
    },
    /// A page of rows in id order, or the children of a parent row.
    List {
        /// Table.
        table: String,
        /// The rows after this id.
        #[arg(long)]
        after: Option<String>,
        /// Rows per page.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only the rows whose parent is this id.
        #[arg(long, conflicts_with = "after")]
        parent: Option<String>,
    },
    /// Set columns of a row.
    Update {
        /// Table.
        table: String,
        /// Row id.
        id: String,
        /// `column=value` changes.
        #[arg(value_name = "COLUMN=VALUE")]
        values: Vec<String>,
        /// A JSON object of changes (`null` clears an optional column).
        #[arg(long, value_name = "FILE|-", conflicts_with = "values")]
        from: Option<String>,
    },
    /// Delete a row (and its children).
    Delete {
        /// Table.
        table: String,
        /// Row id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SchemaCmd {
    /// Check an application's schema file (`format = 2`,
    /// schema/LANGUAGE.md) against medvault's built-in tables, and print
    /// what it adds. Every problem is listed with its line.
    Check {
        /// The file, or `-` for standard input.
        #[arg(value_name = "FILE|-")]
        file: String,
    },
    /// Print what the server learns from the blind indexes of an
    /// application's schema file and the built-in tables: per index, the
    /// classes it tells apart and the rows sharing each value; per row,
    /// the bits its index values reveal side by side (schema/LANGUAGE.md
    /// §6.1).
    Plan {
        /// The file, or `-` for standard input.
        #[arg(value_name = "FILE|-")]
        file: String,
        /// Rows to plan every table for, instead of each table's
        /// planned rows.
        #[arg(long, value_name = "N")]
        population: Option<u64>,
    },
    /// Apply an application's schema file to the vault (administrators):
    /// prints what changes, creates the tables and columns, and stores the
    /// file signed as the schema in force.
    Apply {
        /// The file, or `-` for standard input.
        #[arg(value_name = "FILE|-")]
        file: String,
        /// Print what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the schema in force: its version, who applied it, and the
    /// application's file.
    Show,
    /// Compute every blind index for the rows written before it existed
    /// (administrators): a vault made before format 9 has no year of birth
    /// index in its patients. Resumable: run it again after an
    /// interruption.
    Fill,
    /// Run an application's own migrations for its plain tables
    /// (administrators): DIR holds `sqlite/` and `mysql/` folders of
    /// `V<n>__<name>.sql` with the same files; history in
    /// `app_schema_history`.
    Migrate {
        /// The folder holding `sqlite/` and `mysql/`.
        dir: PathBuf,
    },
    /// Print the statements that create TABLE, for SQLite and MySQL.
    Ddl {
        /// A built-in table (patients, notes) or one the --schema file
        /// declares.
        table: String,
        /// An application's schema file declaring the table.
        #[arg(long, value_name = "FILE|-")]
        schema: Option<String>,
        /// Only this dialect.
        #[arg(long, value_parser = ["sqlite", "mysql"])]
        dialect: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Invite a user: they make their own key (`medvault enrol`) and you
    /// certify it (`user certify`), so their password never passes through
    /// your hands. The invitation holds a secret code: hand it over as you
    /// would a password.
    Invite {
        /// New user's name (a-z, 0-9, '.', '_', '-').
        name: String,
        /// Make them an administrator.
        #[arg(long)]
        admin: bool,
        /// Days the invitation is good for.
        #[arg(long, value_name = "N", default_value_t = medvault::vault::enrol::DEFAULT_INVITATION_DAYS)]
        days: u64,
        /// Where to write the invitation (default: standard output).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// Certify the user an enrolment request (from `medvault enrol`) names.
    Certify {
        /// The request file (`-`: standard input).
        request: PathBuf,
    },
    /// Add a user under a password you choose; they must change it at
    /// their first login. It comes from --new-password-file,
    /// MEDVAULT_NEW_PASSWORD, or is asked twice. (`user invite` keeps
    /// their secret theirs.)
    Add {
        /// New user's name (a-z, 0-9, '.', '_', '-').
        name: String,
        /// Make them an administrator.
        #[arg(long)]
        admin: bool,
        /// File holding the new user's password.
        #[arg(long, value_name = "PATH")]
        new_password_file: Option<PathBuf>,
    },
    /// List users and whether their records verify.
    List,
    /// Disable a user: their grants and login material are removed.
    Disable {
        /// User.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ScopeCmd {
    /// Create a restricted scope, granted to you.
    Create {
        /// Name (a-z, 0-9, '-', '_', '.').
        name: String,
    },
    /// List the scopes you hold keys for.
    List,
    /// Who holds a scope's current key, and whether each may write (its
    /// signed access list).
    Access {
        /// Scope.
        name: String,
    },
    /// Ask for access to a scope you do not hold (signed with your key).
    Request {
        /// Scope.
        name: String,
    },
    /// List pending access requests, and whether each signature verifies
    /// (administrators).
    Requests,
    /// Approve a user's request: grant them the scope (administrators
    /// holding it).
    Approve {
        /// User who asked.
        #[arg(value_name = "USER")]
        requester: String,
        /// Scope.
        name: String,
        /// Grant reading only.
        #[arg(long)]
        read_only: bool,
    },
    /// Decline a user's request (administrators).
    Decline {
        /// User who asked.
        #[arg(value_name = "USER")]
        requester: String,
        /// Scope.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PatientCmd {
    /// Add a patient; prints the new id. Patient data on the command line
    /// lands in shell history and in `ps`: prefer `--from`.
    Add {
        /// Family name.
        #[arg(long, required_unless_present = "from")]
        family: Option<String>,
        /// Given names.
        #[arg(long, required_unless_present = "from")]
        given: Option<String>,
        /// Date of birth, YYYY-MM-DD.
        #[arg(long, required_unless_present = "from")]
        born: Option<String>,
        /// Sex: F, M, X or U (default U).
        #[arg(long)]
        sex: Option<String>,
        /// Read the patient from a JSON file, or from standard input with
        /// `-`: {"family_name": …, "given_names": …, "born": "YYYY-MM-DD", "sex": "F"}.
        #[arg(long, value_name = "FILE|-", conflicts_with_all = ["family", "given", "born", "sex"])]
        from: Option<String>,
    },
    /// Find patients by family name, its first letters, given names, date
    /// or year of birth, or a family name as it sounds.
    Find {
        /// Family name (accents, case, hyphens, apostrophes and spaces do not matter: obrien finds O'Brien).
        #[arg(long)]
        family: Option<String>,
        /// One given name (or several, each one of the patient's): "marie"
        /// finds Élodie Marie and Marie-Claire (schema/FORMAT.md §4.5).
        #[arg(long, value_name = "NAME")]
        given: Option<String>,
        /// Date of birth, YYYY-MM-DD.
        #[arg(long)]
        born: Option<String>,
        /// Year of birth, YYYY (a whole or partial date of that year).
        #[arg(long, value_name = "YYYY")]
        born_year: Option<String>,
        /// A family name as it sounds: "dupond" finds Dupont (Double
        /// Metaphone, schema/FORMAT.md §4.2).
        #[arg(long, value_name = "NAME")]
        sounds_like: Option<String>,
        /// The first letters of a family name, at least 3: "dup" finds
        /// Dupont and Dupond (schema/FORMAT.md §4.4).
        #[arg(long, value_name = "START")]
        family_prefix: Option<String>,
        /// Read the query from a JSON file, or from standard input with `-`:
        /// {"family_name": …, "given_names": … (the whole field),
        /// "given_name": …, "born": …, "born_year": …, "sounds_like": …,
        /// "family_prefix": …}, each optional.
        #[arg(long, value_name = "FILE|-", conflicts_with_all = ["family", "given", "born", "born_year", "sounds_like", "family_prefix"])]
        from: Option<String>,
        /// At most N patients, the first by family name, given names and
        /// date of birth (or the most recently changed, with --recent).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// Most recently changed first: with --limit, only about that many
        /// patients are decrypted (by name, every match is).
        #[arg(long)]
        recent: bool,
    },
    /// Show one patient.
    Show {
        /// Patient id.
        id: String,
    },
    /// List patients a page at a time.
    List {
        /// Patients per page (at most 1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Start after this id (the `next` of the previous page).
        #[arg(long)]
        after: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NoteCmd {
    /// Add a note to a patient; prints the note id.
    Add {
        /// Patient id.
        patient: String,
        /// Note text, or `-` to read it from standard input (text on the
        /// command line lands in shell history and in `ps`).
        #[arg(long, required_unless_present = "text_file")]
        text: Option<String>,
        /// Read the note text from this file.
        #[arg(long, value_name = "FILE", conflicts_with = "text")]
        text_file: Option<String>,
        /// Scope: clinical (default), personal, billing, or restricted.
        #[arg(long)]
        scope: Option<String>,
    },
    /// Move a patient's notes of one scope into another (a restricted
    /// scope for their care team): each is sealed again under its key
    /// (administrators holding both; not personal scopes).
    Move {
        /// Patient id.
        patient: String,
        /// The scope they are in now.
        #[arg(long)]
        from: String,
        /// The scope they move to.
        #[arg(long)]
        to: String,
    },
    /// List a patient's notes you may read.
    List {
        /// Patient id.
        patient: String,
        /// Only this scope.
        #[arg(long)]
        scope: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecoverCmd {
    /// A new key under a new password for USER, with every grant they had.
    ResetPassword {
        /// The user who lost their password.
        #[arg(value_name = "USER")]
        target: String,
        /// File of shares, one per line; `-` for standard input.
        #[arg(long, value_name = "FILE")]
        shares: PathBuf,
        /// File holding the new password (else MEDVAULT_NEW_PASSWORD, else
        /// asked twice).
        #[arg(long, value_name = "PATH")]
        new_password_file: Option<PathBuf>,
    },
    /// Certify USER as an administrator with the root (promote an existing
    /// user; a new one gets a key under a new password), granted every
    /// shared scope.
    NewAdmin {
        /// The new administrator.
        #[arg(value_name = "USER")]
        target: String,
        /// File of shares, one per line; `-` for standard input.
        #[arg(long, value_name = "FILE")]
        shares: PathBuf,
        /// For a user who does not exist yet: file holding their password
        /// (else MEDVAULT_NEW_PASSWORD, else asked twice).
        #[arg(long, value_name = "PATH")]
        new_password_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecoveryCmd {
    /// Combine shares and check they rebuild this vault's root key.
    Check {
        /// A share (repeat); read from standard input, one per line, if none.
        #[arg(long = "share")]
        shares: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of synthetic patients.
    #[arg(long, default_value_t = 5000)]
    pub patients: usize,
    /// Directory for the demo vault (default: a temporary one, removed).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}
