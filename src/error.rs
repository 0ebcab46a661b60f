//! The one error type of the library.
//!
//! Every variant is safe to show a user: none carries a secret, a plaintext
//! patient value or a blind index. Crypto failures say *what* failed (which
//! table and column, which user's grant) but never *why* in a way an
//! attacker could use as an oracle.

use std::path::PathBuf;

/// Result alias used throughout medvault.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in medvault.
///
/// `#[non_exhaustive]`: new failure kinds will be added as features land.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- login and keys -------------------------------------------------
    /// No user of that name in the vault (or in its keyring file).
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// The password did not unlock the user's secret key.
    #[error("wrong password for user {0:?}")]
    WrongPassword(String),
    /// The user's password was chosen by someone else (an administrator,
    /// a recovery): they must choose their own before anything else
    /// ([`crate::OpenOptions::new_password`], `medvault passwd`).
    #[error(
        "user {user:?} must choose a new password: the current one was set by {set_by} \
         (run `medvault passwd`, or open with a new password)"
    )]
    PasswordChangeRequired {
        /// The user.
        user: String,
        /// Who set the current password.
        set_by: String,
    },
    /// The store shows an older state than this client saw before
    /// ([`crate::OpenOptions::state_dir`]): a restored backup, or rows put
    /// back by someone who can write the database. Writing under an older
    /// key epoch (which a revoked user may hold) is refused.
    #[error(
        "the store was rolled back: it shows {0}; if you restored a backup on purpose, \
         remove this client's state file for the vault"
    )]
    RolledBack(String),
    /// The SQLCipher file no longer opens with the key this session logged
    /// in with, and its keyring moved to another key: another session
    /// changed the database key (it disabled a user). Log in again; a
    /// disabled user is then refused.
    #[error(
        "the database {0:?} was re-keyed by another session since this login \
         (a user was disabled): log in again"
    )]
    DatabaseKeyChanged(std::path::PathBuf),
    /// An invitation or enrolment request that cannot be used; the reason
    /// names no code or key.
    #[error("invitation refused: {0}")]
    BadInvitation(String),
    /// The invitation's time ran out: the administrator must issue another.
    #[error("the invitation for {0:?} has expired: ask for a new one")]
    InvitationExpired(String),
    /// The user exists but an administrator disabled them.
    #[error("user {0:?} is disabled")]
    UserDisabled(String),
    /// A user name that is empty, too long or has characters we do not allow.
    #[error("invalid user name {0:?}: use 1-64 characters from a-z, 0-9, '.', '_' and '-'")]
    InvalidUserName(String),
    /// A user of that name exists already.
    #[error("user {0:?} exists already")]
    UserExists(String),
    /// The operation needs an administrator.
    #[error("user {0:?} is not an administrator")]
    NotAdmin(String),
    /// The password is unusable (empty, or the two entries differ).
    #[error("unusable password: {0}")]
    BadPassword(&'static str),
    /// A new password below the floor: shorter than 10 characters, or
    /// guessable in fewer than about 10^8 tries by the zxcvbn estimate.
    /// The reason never quotes the password.
    #[error("the new password is too weak: {0}; use at least 10 characters, such as several unrelated words")]
    WeakPassword(String),
    /// The user's secret key was tampered with: the password unlocks its
    /// encryption subkey but not its primary key, so the certificate
    /// around the subkey is not the user's (a subkey grafted under another
    /// primary key).
    #[error(
        "the secret key of {0:?} was tampered with: its parts do not unlock with one password"
    )]
    LockedKeyTampered(String),
    /// A key or certificate is malformed or uses an algorithm medvault does
    /// not accept (only Curve25519 is accepted).
    #[error("malformed or unacceptable key: {0}")]
    BadKey(String),

    // ---- keyring file (SQLCipher store) --------------------------------
    /// The keyring file beside the database is missing.
    #[error("keyring file {0} is missing")]
    KeyringMissing(PathBuf),
    /// The keyring file is damaged (bad magic, bad checksum, truncated).
    #[error("keyring file {path} is corrupt: {reason}")]
    KeyringCorrupt {
        /// The file.
        path: PathBuf,
        /// What did not parse.
        reason: String,
    },
    /// The keyring parsed, but its authentication code does not verify
    /// under the database key: someone edited it.
    #[error("keyring file {0} was tampered with (its authentication code does not verify)")]
    KeyringTampered(PathBuf),

    // ---- database file ---------------------------------------------------
    /// The key does not open this database file (another vault's keyring,
    /// or a database replaced by another one).
    #[error("database {0} cannot be opened with this key: the keyring does not belong to it")]
    WrongDatabaseKey(PathBuf),
    /// The file decrypts with the right key but its pages are damaged.
    #[error("database {0} is corrupt")]
    DatabaseCorrupt(PathBuf),
    /// Creating a vault where one exists already.
    #[error("a vault exists already at {0}")]
    VaultExists(String),
    /// No vault at that location.
    #[error("no vault at {0}")]
    NoVault(String),
    /// The store URL did not parse.
    #[error("invalid store URL {url:?}: {reason}")]
    BadStoreUrl {
        /// What was given.
        url: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The store cannot be reached (server down, network, TLS refused).
    #[error("store unavailable: {store}: {reason}")]
    StoreUnavailable {
        /// The store, without credentials.
        store: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// The database server refused the credentials in the store URL.
    #[error("the database server refused the credentials for {0}")]
    StoreAuth(String),
    /// A shared store needs the root fingerprint from the client's
    /// configuration; the server is never asked for it.
    #[error("no root fingerprint is pinned for {0}")]
    RootNotPinned(String),
    /// The async API was called outside a tokio runtime.
    #[error("medvault was called outside a tokio runtime: call it from within #[tokio::main] or Runtime::block_on (with I/O and time enabled)")]
    NoRuntime,
    /// The store answered with an error not covered by a more precise variant.
    #[error("store error: {0}")]
    Store(String),
    /// A write met a row with the same key (primary key or unique index).
    /// The message names neither the key nor the value.
    #[error("a row with the same key exists in {0}")]
    Duplicate(String),
    /// A write would give two rows of `table` the same values of its
    /// unique index `index` (under any live key epoch), or the store's
    /// unique constraint refused one. Names no value; nothing is written.
    #[error("another row of {table} holds the same value of its unique index {index}")]
    NotUnique {
        /// The table.
        table: String,
        /// The unique index (several, `a or b`, when the store's
        /// constraint refused the write without saying which).
        index: String,
    },
    /// A unique index cannot be checked by this user: rows of its scope
    /// may be under a live key epoch they do not hold (a rotation not
    /// finished, and a grant of its older epoch the store withholds or
    /// the granting administrator lacked), whose values they cannot look
    /// for. Nothing is written; the write succeeds once the rotation has
    /// finished, or written by a user holding every live epoch.
    #[error(
        "the unique index {index} of {table} cannot be checked: rows of scope {scope:?} may be \
         under a key epoch this user does not hold (a rotation not finished)"
    )]
    UniqueUnchecked {
        /// The table.
        table: String,
        /// The unique index.
        index: String,
        /// Its scope.
        scope: String,
    },
    /// A stored value is not of the type its column must hold (a column
    /// altered to another type, a NULL, bytes that are not UTF-8, an
    /// integer out of range): the database was changed outside medvault.
    /// Never carries the value.
    #[error("the stored value of {table}.{column} is not {expected}: the database was changed outside medvault")]
    BadStoredValue {
        /// Table.
        table: &'static str,
        /// Column.
        column: &'static str,
        /// What the column must hold.
        expected: &'static str,
    },
    /// The store's schema is newer or older than this build understands.
    #[error("schema migration failed: {0}")]
    Migration(String),

    // ---- trust -----------------------------------------------------------
    /// The vault's root certificate is not the one this client pins.
    #[error("the vault's root key {found} is not the pinned root {pinned}")]
    UntrustedRoot {
        /// Fingerprint the client pins.
        pinned: String,
        /// Fingerprint the store presents.
        found: String,
    },
    /// A row that must be signed by a trusted key is not. `what` names the
    /// row (e.g. "grant of clinical to bob"), never its secret content.
    #[error("untrusted {what}: its signature does not chain to the vault root")]
    BadSignature {
        /// Which row.
        what: String,
    },

    /// A grant signed correctly but unusable: it does not unwrap with the
    /// user's key, or the key inside is not the one its epoch commits to.
    #[error("grant of scope {scope:?} is invalid: {reason}")]
    GrantInvalid {
        /// Scope name.
        scope: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The signed state a write was sealed under (key epochs, grants, the
    /// user's row, the schema) changed between the check before the write
    /// and its transaction: nothing was written
    /// ([`crate::store::Store::write_guarded`]). The row API reads the
    /// state again and retries by itself; it answers
    /// [`Error::Concurrent`] when the state keeps changing.
    #[error("the key state changed while writing; nothing was written")]
    StateMoved,
    /// A long operation was stopped by its caller; it can be run again and
    /// resumes where it stopped.
    #[error("interrupted; run the same command again to resume")]
    Interrupted,
    /// `copy` finished but the two stores do not hold the same rows.
    #[error("copy incomplete: {0}")]
    CopyIncomplete(String),
    /// An operation medvault refuses on purpose.
    #[error("refused: {0}")]
    Refused(&'static str),

    // ---- access ------------------------------------------------------------
    /// The user holds no key for this scope.
    #[error("no access to scope {0:?}")]
    NoAccess(String),
    /// No scope of that name.
    #[error("unknown scope {0:?}")]
    UnknownScope(String),
    /// The user holds older keys of the scope but not its newest epoch
    /// (it was rotated without them, or after their access was revoked):
    /// they may still read what was written before, never write.
    #[error("scope {scope:?} was rotated to key epoch {epoch}, which this user does not hold")]
    NotCurrent {
        /// The scope.
        scope: String,
        /// Its newest epoch.
        epoch: u32,
    },
    /// The user's signed grant of this scope lets them read it, not write
    /// under it.
    #[error("user holds scope {0:?} for reading only; an administrator can grant it read-write")]
    ReadOnly(String),
    /// Another client changed the same key state at the same time (two
    /// rotations of one scope): one won; run the operation again.
    #[error("{0} changed concurrently; run it again")]
    Concurrent(&'static str),
    /// A key rotation left cells under an older epoch (rows written by
    /// clients that had not yet seen the new epoch): run `rotate` again.
    #[error("scope {scope:?}: {left} rows still use older key epochs; run rotate again")]
    RotationUnfinished {
        /// The scope.
        scope: String,
        /// Rows found still under an older epoch.
        left: u64,
    },
    /// No grant of that scope to that user.
    #[error("user {user:?} has no grant to scope {scope:?}")]
    NoSuchGrant {
        /// Grantee.
        user: String,
        /// Scope.
        scope: String,
    },

    // ---- values -------------------------------------------------------------
    /// A stored value failed to decrypt: flipped, truncated, extended, or
    /// moved from another row, column or table.
    #[error("ciphertext in {table}.{column} failed authentication (tampered or moved)")]
    Tampered {
        /// Table of the cell.
        table: &'static str,
        /// Column of the cell.
        column: &'static str,
    },
    /// A row is not vouched for by its author (FORMAT.md §5.8): written
    /// without the write right (raw SQL by someone holding only the read
    /// key), or its author, time, version, index or any stored value edited
    /// since. It is never shown.
    #[error("a row of {table} is forged: {reason}; it is not shown")]
    Forged {
        /// The table.
        table: &'static str,
        /// What failed (names no value).
        reason: &'static str,
    },
    /// A cell is under a key epoch newer than any this session knows: its
    /// scope was rotated after the session loaded its keys. The row API
    /// reads the key state again and retries once by itself
    /// ([`crate::Session::refresh_keys`]); an epoch still unknown then is
    /// [`Error::Tampered`].
    #[error("{table}.{column} is under a key epoch this session has not loaded yet")]
    KeysOutdated {
        /// Table of the cell.
        table: &'static str,
        /// Column of the cell.
        column: &'static str,
    },
    /// The envelope header cannot be parsed (wrong version, too short).
    #[error("malformed envelope in {table}.{column}: {reason}")]
    MalformedEnvelope {
        /// Table of the cell.
        table: &'static str,
        /// Column of the cell.
        column: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A value decrypted but is not valid UTF-8.
    #[error("value in {table}.{column} is not valid UTF-8")]
    NotUtf8 {
        /// Table of the cell.
        table: &'static str,
        /// Column of the cell.
        column: &'static str,
    },
    /// A value that must not be empty is (after canonicalisation).
    #[error("{0} must not be empty")]
    EmptyValue(&'static str),
    /// A value over the policy's size limit.
    #[error("{field} is {len} bytes; the limit is {max}")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its size.
        len: usize,
        /// The policy's limit.
        max: usize,
    },
    /// A date that is not a calendar date in `YYYY-MM-DD` form. The value
    /// is not repeated: a date of birth is patient data.
    #[error("date of birth is not a calendar date in YYYY-MM-DD form")]
    BadDate,
    /// A sex code other than F, M, X or U. The value is not repeated: it
    /// is patient data.
    #[error("the sex code is not one of F, M, X or U")]
    BadSex,
    /// A patient or note id that does not parse.
    #[error("{0:?} is not a medvault id (32 hex digits)")]
    BadId(String),
    /// No patient with that id.
    #[error("no patient with id {0}")]
    NoSuchPatient(String),
    /// A query with no criterion.
    #[error("a patient search needs at least one of family name, given names or date of birth")]
    EmptyQuery,
    /// The encryption policy in `schema/` is inconsistent.
    #[error("encryption policy: {0}")]
    Policy(String),
    /// A schema file (`schema/LANGUAGE.md`) with problems, or a schema
    /// change that is refused: every problem, each with its line.
    #[error("schema: {0}")]
    Schema(crate::schema::parse::Problems),
    /// The tables in the database do not agree with the schema in force
    /// (a table or column missing, an envelope in a text column): every
    /// disagreement, by table and column name.
    #[error("the database does not match the schema in force: {0}")]
    SchemaMismatch(String),
    /// A part of medvault this build was compiled without (a cargo
    /// feature: `mysql`).
    #[error("this build of medvault has no {0}: enable the cargo feature `{1}`")]
    NotBuiltIn(&'static str, &'static str),
    /// No table of that name is declared in the schema in force.
    #[error("no table {0:?} is declared in the schema in force")]
    UnknownTable(String),
    /// A column medvault fills itself (who wrote a built-in row and when,
    /// the order of notes) was given a value.
    #[error("{table}.{column} is filled in by medvault and cannot be given")]
    FilledByMedvault {
        /// Table.
        table: String,
        /// Column.
        column: String,
    },
    /// A write through a table opened under an older schema than the one
    /// now stored (a new index would be left out). The session has read
    /// the new schema: open the table again.
    #[error(
        "the schema in force is now version {version}, newer than the one this table was \
         opened with; open the table again (Session::table)"
    )]
    SchemaChanged {
        /// The version now in force.
        version: u64,
    },
    /// A schema change was stored, but a blind index it added over
    /// existing columns was not computed for every row. Also the answer
    /// to a write checked against a `unique` index that is not filled
    /// yet (the check would not see every row): nothing is written.
    #[error(
        "schema version {version} is in force, but {index} is not computed for every row yet \
         ({cause}); apply the same file again, as an administrator holding its scope's key, \
         to finish"
    )]
    IndexNotFilled {
        /// The version in force.
        version: u64,
        /// `table.index`.
        index: String,
        /// Why it stopped (no values).
        cause: String,
    },
    /// Rows of this table are never changed or deleted, only added
    /// (`notes`: a medical record is corrected by a new note).
    #[error("{0} are only ever added: a row is not changed or deleted")]
    AppendOnly(String),
    /// No column of that name is declared in the table.
    #[error("{table} has no column {column:?}")]
    UnknownColumn {
        /// Table.
        table: String,
        /// The name given.
        column: String,
    },
    /// A value of the wrong type for its column (the value is not shown).
    #[error("{table}.{column} takes {expected}")]
    WrongType {
        /// Table.
        table: String,
        /// Column.
        column: String,
        /// What it takes.
        expected: String,
    },
    /// A required value that was not given.
    #[error("{table}.{column} needs a value")]
    MissingValue {
        /// Table.
        table: String,
        /// Column.
        column: String,
    },
    /// No blind index covers exactly the columns of a search.
    #[error("no blind index of {table} covers exactly {columns}")]
    NoIndex {
        /// Table.
        table: String,
        /// The columns searched, comma-separated.
        columns: String,
    },
    /// A prefix search typed fewer characters than the shortest prefix
    /// its index keys (LANGUAGE.md §6).
    #[error("{table}.{index} is searched by at least {shortest} characters")]
    PrefixTooShort {
        /// Table.
        table: String,
        /// The prefix index.
        index: String,
        /// Characters a search types at least.
        shortest: u8,
    },
    /// A row that does not exist (a parent row, a row to update).
    #[error("no row {id} in {table}")]
    NoSuchRow {
        /// Table.
        table: String,
        /// The id (a random identifier, not patient data).
        id: String,
    },
    /// Recovery shares that do not combine.
    #[error("recovery shares: {0}")]
    BadShares(String),
    /// An I/O error on a local file (keyring, password file).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
