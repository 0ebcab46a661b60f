//! What each command does.

use std::fmt;
use std::io::Read;

use medvault::schema::Schema;
use medvault::sql::ddl::{create_table, Dialect};
use medvault::vault::rows::{NewRow, Row, RowTable, Value};
use medvault::{
    CreateOptions, Error, Id, KdfParams, NewPatient, OpenOptions, Patient, PatientQuery, Session,
    Vault,
};

use crate::cli::{
    Cli, Command, NoteCmd, PatientCmd, RecoverCmd, RecoveryCmd, RowCmd, SchemaCmd, ScopeCmd,
    UserCmd,
};
use crate::password;

/// A patient as `patient add --from` reads it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PatientDoc {
    family_name: String,
    given_names: String,
    born: String,
    #[serde(default)]
    sex: Option<String>,
}

/// A query as `patient find --from` reads it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryDoc {
    #[serde(default)]
    family_name: Option<String>,
    #[serde(default)]
    given_names: Option<String>,
    #[serde(default)]
    born: Option<String>,
    #[serde(default)]
    born_year: Option<String>,
    #[serde(default)]
    sounds_like: Option<String>,
    #[serde(default)]
    family_prefix: Option<String>,
    #[serde(default)]
    given_name: Option<String>,
}

/// A search's `--limit`: at least one.
fn check_limit(limit: Option<u32>) -> Result<(), CliError> {
    if limit == Some(0) {
        return Err(CliError::msg(
            "a search's limit is at least one row",
            "give --limit 1 or more, or leave it out for every match",
        ));
    }
    Ok(())
}

/// The most `read_input` reads: far above any field's limit (a note is at
/// most 64 KiB), far below what would exhaust memory.
const INPUT_LIMIT: u64 = 16 << 20;

/// The text of a file, or of standard input for `-`.
fn read_input(src: &str) -> Result<String, CliError> {
    let mut bytes = Vec::new();
    let read = if src == "-" {
        std::io::stdin()
            .take(INPUT_LIMIT + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(src).and_then(|f| f.take(INPUT_LIMIT + 1).read_to_end(&mut bytes))
    };
    let shown = if src == "-" { "standard input" } else { src };
    read.map_err(|e| CliError::msg(format!("cannot read {shown}: {e}"), "check the path"))?;
    if bytes.len() as u64 > INPUT_LIMIT {
        return Err(CliError::msg(
            format!("{shown} is larger than 16 MiB"),
            "a note is at most 64 KiB; give one value per document",
        ));
    }
    String::from_utf8(bytes).map_err(|_| {
        CliError::msg(
            format!("{shown} is not UTF-8 text"),
            "save the file as UTF-8",
        )
    })
}

/// A JSON document from a file or standard input. A parse error names the
/// line and column and the kind of mistake, never the text around it (it
/// may be patient data).
fn read_json<T: serde::de::DeserializeOwned>(src: &str) -> Result<T, CliError> {
    let text = read_input(src)?;
    serde_json::from_str(&text).map_err(|e| {
        use serde_json::error::Category;
        let what = match e.classify() {
            Category::Syntax | Category::Eof => "is not valid JSON",
            Category::Data => "has a field that is unknown, missing or not a string",
            Category::Io => "could not be read",
        };
        let shown = if src == "-" { "standard input" } else { src };
        CliError::msg(
            format!("{shown} {what} (line {}, column {})", e.line(), e.column()),
            "write {\"family_name\": \"…\", \"given_names\": \"…\", \"born\": \"YYYY-MM-DD\", \"sex\": \"F\"} (find: any of the first three)",
        )
    })
}

/// An error for the terminal: a message and a suggested fix.
#[derive(Debug)]
pub enum CliError {
    /// From the library.
    Vault(Error),
    /// From the command line itself.
    Msg { msg: String, hint: String },
}

impl CliError {
    pub fn msg(msg: impl Into<String>, hint: impl Into<String>) -> CliError {
        CliError::Msg {
            msg: msg.into(),
            hint: hint.into(),
        }
    }

    /// A suggested fix.
    pub fn hint(&self) -> Option<String> {
        let h = match self {
            CliError::Msg { hint, .. } => return Some(hint.clone()),
            CliError::Vault(e) => match e {
                Error::PasswordChangeRequired { .. } => "run `medvault passwd` (it takes the new password from --new-password-file, MEDVAULT_NEW_PASSWORD or a prompt)".into(),
                Error::UserExists(_) => "`medvault user list` shows who exists; choose another name".into(),
                Error::BadInvitation(_) => "ask the administrator for a new invitation and copy the file whole".into(),
                Error::InvitationExpired(_) => "ask the administrator for a new invitation (`medvault user invite`)".into(),
                Error::WeakPassword(_) => "choose a longer password: four or five unrelated words are easy to remember and hard to guess".into(),
                Error::WrongPassword(_) => "check the password (and --password-file / MEDVAULT_PASSWORD)".into(),
                Error::UnknownUser(_) => "check --user; an administrator can list users with `medvault user list`".into(),
                Error::UserDisabled(_) => "ask an administrator; disabled users cannot log in".into(),
                Error::InvalidUserName(_) => "user names are lower case: alice, dr.martin, clerk-2".into(),
                Error::NoAccess(s) => format!("ask an administrator to run `medvault grant <you> {s}`"),
                Error::ReadOnly(s) => format!("`medvault scope access {s}` lists who may write; an administrator grants writing with `medvault grant <you> {s}`"),
                Error::NotAdmin(_) => "log in as an administrator (--user)".into(),
                Error::UnknownScope(_) => "scopes: identity, clinical, billing, personal, or one made with `medvault scope create`".into(),
                Error::KeyringMissing(p) => format!("{} must sit beside the database; restore it from your backup", p.display()),
                Error::KeyringCorrupt { .. } | Error::KeyringTampered(_) => "restore the keyring file from your backup".into(),
                Error::WrongDatabaseKey(_) => "the keyring beside the database belongs to another vault; restore the right one".into(),
                Error::DatabaseCorrupt(_) => "restore the database from your backup".into(),
                Error::RolledBack(_) => "do not trust this store: it shows an older state than you saw before; after restoring a backup on purpose, remove the vault's file in ~/.local/state/medvault (or $MEDVAULT_STATE_DIR)".into(),
                Error::DatabaseKeyChanged(_) => "run the command again (it logs in again)".into(),
                Error::NoVault(_) => "create one with `medvault init --user <name>`, or check --store".into(),
                Error::VaultExists(_) => "choose another --store path, or log in to the existing vault".into(),
                Error::BadStoreUrl { .. } => "use --store sqlcipher:/path/to/clinic.db (or MEDVAULT_STORE)".into(),
                Error::BadDate => "write dates as YYYY-MM-DD, e.g. 1970-03-02".into(),
                Error::BadSex => "use --sex F, M, X or U".into(),
                Error::BadId(_) => "ids are the 32 hex digits printed by `patient add` or `patient find`".into(),
                Error::NoSuchPatient(_) => "find the patient with `medvault patient find`".into(),
                Error::EmptyQuery => "give --family, --given and/or --born".into(),
                Error::TooLong { .. } | Error::EmptyValue(_) => "shorten or fill in the value".into(),
                Error::UntrustedRoot { .. } | Error::BadSignature { .. } | Error::GrantInvalid { .. } | Error::Tampered { .. } | Error::Forged { .. } => {
                    "the database was modified outside medvault; do not trust it and contact your administrator".into()
                }
                Error::RootNotPinned(_) => {
                    "pass --root <the fingerprint `medvault init` printed> or set MEDVAULT_ROOT".into()
                }
                Error::StoreUnavailable { .. } => "check that the database server runs and the URL's host and port".into(),
                Error::StoreAuth(_) => "check the user and password in the store URL".into(),
                Error::BadShares(_) => "check each share for typos; you need the threshold number of shares".into(),
                Error::Schema(_) => "the schema language and what may change are in schema/LANGUAGE.md".into(),
                Error::UnknownTable(_) => "`medvault schema show` lists the tables in force".into(),
                Error::UnknownColumn { .. } | Error::WrongType { .. } | Error::MissingValue { .. } => {
                    "`medvault schema show` has each table's columns and types".into()
                }
                Error::NoIndex { .. } => "search the columns of one blind index (`[[index]]` in the schema)".into(),
                Error::PrefixTooShort { shortest, .. } => {
                    format!("type {shortest} characters or more (the index's `shortest`)")
                }
                Error::NotUnique { table, .. } => format!(
                    "another row has this value; find it with `medvault row find {table} COLUMN=VALUE` \
                     and update that row instead"
                ),
                Error::UniqueUnchecked { scope, .. } => format!(
                    "a rotation of {scope} is not finished; `medvault rotate {scope}` (an administrator) \
                     finishes it, then write again (a rotation stopped by two rows with the same value \
                     goes on once one of them is changed or deleted)"
                ),
                Error::NoSuchRow { .. } => "check the id; `medvault row list <table>` lists rows".into(),
                Error::SchemaMismatch(_) => "the database's tables were changed outside medvault; restore it from a backup made with `medvault copy`".into(),
                _ => return None,
            },
        };
        Some(h)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Vault(e) => write!(f, "{e}"),
            CliError::Msg { msg, .. } => f.write_str(msg),
        }
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Vault(e)
    }
}

type R<T = ()> = Result<T, CliError>;

/// The KDF for keys this command creates. The hidden test-suite flag is
/// announced loudly wherever it actually weakens a new key.
fn new_key_kdf(cli: &Cli) -> KdfParams {
    if cli.danger_fast_kdf {
        eprintln!("warning: --danger-fast-kdf: the new key is cheap to guess; never use this outside tests");
    }
    kdf(cli)
}

fn kdf(cli: &Cli) -> KdfParams {
    if cli.danger_fast_kdf {
        KdfParams::danger_fast_for_tests()
    } else {
        KdfParams::PRODUCTION
    }
}

fn store(cli: &Cli) -> R<String> {
    cli.store.clone().ok_or_else(|| {
        CliError::msg(
            "no vault given",
            "pass --store sqlcipher:/path/to/clinic.db or set MEDVAULT_STORE",
        )
    })
}

fn user(cli: &Cli) -> R<String> {
    cli.user
        .clone()
        .ok_or_else(|| CliError::msg("no user given", "pass --user <name> or set MEDVAULT_USER"))
}

fn redact_url(url: &str) -> String {
    medvault::store::StoreUrl::parse(url)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| "(store)".into())
}

async fn login(cli: &Cli) -> R<Session> {
    let url = store(cli)?;
    login_at(cli, &url).await
}

async fn login_at(cli: &Cli, url: &str) -> R<Session> {
    let url = url.to_owned();
    let name = user(cli)?;
    let pw = password::current(cli.password_file.as_deref(), cli.batch, &name)?;
    let mut opts = OpenOptions {
        kdf: kdf(cli),
        pinned_root: cli.root.clone(),
        new_password: None,
        state_dir: state_dir(),
    };
    match Vault::open(&url, &name, &pw, &opts).await {
        // A first login after an administrator chose the password: on a
        // terminal, ask for the user's own and go on.
        Err(Error::PasswordChangeRequired { set_by, .. }) if password::can_prompt(cli.batch) => {
            eprintln!("Your password was set by {set_by}: choose your own now.");
            opts.new_password = Some(password::new(
                None,
                "MEDVAULT_NEW_PASSWORD",
                cli.batch,
                &name,
            )?);
            let s = Vault::open(&url, &name, &pw, &opts).await?;
            eprintln!("password changed for {name}");
            Ok(s)
        }
        other => Ok(other?),
    }
}

/// The session of `recover`: the user's login, or with no `--user` the
/// vault's root rebuilt from the shares (when nobody can log in).
async fn login_or_root(cli: &Cli, shares: &[String]) -> R<Session> {
    if cli.user.is_some() {
        return login(cli).await;
    }
    let url = store(cli)?;
    eprintln!("no --user given: opening the vault as its root, from the shares");
    let opts = OpenOptions {
        kdf: kdf(cli),
        pinned_root: cli.root.clone(),
        new_password: None,
        state_dir: state_dir(),
    };
    Ok(Vault::open_with_shares(&url, shares, &opts).await?)
}

/// Where this client remembers what it has seen of each vault (the
/// newest key epochs and schema version, a rollback defence):
/// `MEDVAULT_STATE_DIR`, else `$XDG_STATE_HOME/medvault`, else
/// `~/.local/state/medvault`; none without a home.
fn state_dir() -> Option<std::path::PathBuf> {
    let env = |k| std::env::var_os(k).filter(|v| !v.is_empty());
    env("MEDVAULT_STATE_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| env("XDG_STATE_HOME").map(|d| std::path::Path::new(&d).join("medvault")))
        .or_else(|| env("HOME").map(|h| std::path::Path::new(&h).join(".local/state/medvault")))
}

/// Reads a text file, or standard input for `-`.
fn read_text(path: &std::path::Path, what: &str) -> R<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| CliError::msg(format!("cannot read the {what}: {e}"), "try again"))?;
        return Ok(s);
    }
    std::fs::read_to_string(path).map_err(|e| {
        CliError::msg(
            format!("cannot read the {what} {}: {e}", path.display()),
            "check the path",
        )
    })
}

/// Writes `text` to `out`, or standard output; a file is made readable by
/// its owner only (an invitation holds a secret code).
fn write_text(out: Option<&std::path::Path>, text: &str, what: &str) -> R {
    let Some(path) = out else {
        print!("{text}");
        return Ok(());
    };
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path).map_err(|e| {
        CliError::msg(
            format!("cannot write the {what} to {}: {e}", path.display()),
            "choose a path that does not exist yet",
        )
    })?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .map_err(|e| CliError::msg(format!("cannot write the {what}: {e}"), "check the disk"))
}

fn json<T: serde::Serialize>(v: &T) -> R {
    let s = serde_json::to_string_pretty(v)
        .map_err(|e| CliError::msg(format!("JSON output failed: {e}"), "report this bug"))?;
    println!("{s}");
    Ok(())
}

fn print_patient(p: &Patient) {
    println!(
        "{}  {}, {}  born {}  sex {}",
        p.id,
        shown(&p.family_name),
        shown(&p.given_names),
        shown(&p.born),
        p.sex
    );
}

/// A string from the store (or decrypted from it) as the terminal gets it:
/// control characters escaped, so a value cannot move the cursor, hide
/// text or rewrite what was printed before it.
fn shown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

pub async fn run(cli: Cli) -> R {
    match &cli.command {
        Command::Init(a) => {
            let url = store(&cli)?;
            let name = user(&cli)?;
            let pw = password::new(
                cli.password_file.as_deref(),
                "MEDVAULT_PASSWORD",
                cli.batch,
                &name,
            )?;
            let report = Vault::create(
                &url,
                &name,
                &pw,
                &CreateOptions {
                    kdf: new_key_kdf(&cli),
                    threshold: a.threshold,
                    shares: a.shares,
                },
            )
            .await?;
            if cli.json {
                return json(&report);
            }
            println!("Vault created at {url}; administrator: {name}");
            println!("Root key fingerprint (pin it in clients' configuration):");
            println!("  {}", report.root_fingerprint);
            println!();
            println!(
                "Recovery shares: any {} of these {} rebuild the root key. Give each to a",
                report.threshold,
                report.shares.len()
            );
            println!("different person and keep it offline. They are shown only now.");
            for (i, s) in report.shares.iter().enumerate() {
                println!("  share {}: {s}", i + 1);
            }
            Ok(())
        }
        Command::User(cmd) => {
            let s = login(&cli).await?;
            match cmd {
                UserCmd::Invite {
                    name,
                    admin,
                    days,
                    out,
                } => {
                    let valid = std::time::Duration::from_secs(days.saturating_mul(86_400));
                    let text = s.invite(name, *admin, Some(valid)).await?;
                    write_text(out.as_deref(), &text, "invitation")?;
                    eprintln!(
                        "invited {name} for {days} days: they run `medvault enrol --invitation <file>` and give you the request for `medvault user certify`"
                    );
                }
                UserCmd::Certify { request } => {
                    let text = read_text(request, "enrolment request")?;
                    let e = s.certify(&text).await?;
                    if cli.json {
                        return json(&e);
                    }
                    println!(
                        "certified {} {} (key {})",
                        if e.role == "admin" {
                            "administrator"
                        } else {
                            "user"
                        },
                        e.name,
                        e.fingerprint
                    );
                }
                UserCmd::Add {
                    name,
                    admin,
                    new_password_file,
                } => {
                    let pw = password::new(
                        new_password_file.as_deref(),
                        "MEDVAULT_NEW_PASSWORD",
                        cli.batch,
                        name,
                    )?;
                    new_key_kdf(&cli);
                    let fpr = s.add_user(name, &pw, *admin).await?;
                    println!(
                        "added {} {name} (key {fpr})",
                        if *admin { "administrator" } else { "user" }
                    );
                }
                UserCmd::List => {
                    let users = s.list_users().await?;
                    if cli.json {
                        return json(&users);
                    }
                    for u in users {
                        println!(
                            "{:<20} {:<6} {:<9} certified by {:<12} {}",
                            shown(&u.name),
                            shown(&u.role),
                            shown(&u.status),
                            shown(&u.certifier),
                            if u.trusted {
                                "verified"
                            } else {
                                "UNTRUSTED (signature does not verify)"
                            }
                        );
                    }
                }
                UserCmd::Disable { name } => {
                    let r = s.disable_user(name).await?;
                    println!("disabled {name}");
                    for scope in &r.rotated {
                        println!("rotated {scope} to a new key epoch {name} does not hold");
                    }
                    for scope in &r.not_rotated {
                        println!(
                            "{scope} not rotated: you do not hold its newest key; an administrator who does should run `medvault rotate {scope} --new-epoch`"
                        );
                    }
                    for (scope, why) in &r.unfinished {
                        println!(
                            "{scope}: rotation stopped ({why}); run `medvault rotate {scope}` to finish it (`--new-epoch` if it made no new epoch)"
                        );
                    }
                    if let Some(why) = &r.closed_writes {
                        println!(
                            "the record that closes {name}'s writes was not stored ({why}); run `medvault user disable {name}` again"
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Grant {
            grantee: u,
            scope,
            read_only,
        } => {
            let rights = rights_of(*read_only);
            login(&cli).await?.grant_rights(u, scope, rights).await?;
            println!("granted {scope} to {u} ({rights})");
            Ok(())
        }
        Command::Revoke { grantee: u, scope } => {
            let s = login(&cli).await?;
            let bar = rotation_bar();
            let report = s
                .revoke_with(u, scope, &mut |p| show_rotation(&bar, p))
                .await?;
            bar.finish_and_clear();
            if cli.json {
                return json(&report);
            }
            println!("revoked {scope} from {u}");
            print_rotation(&report);
            Ok(())
        }
        Command::Enrol {
            invitation,
            out,
            new_password_file,
        } => {
            let text = read_text(invitation, "invitation")?;
            let pw = password::new(
                new_password_file.as_deref(),
                "MEDVAULT_NEW_PASSWORD",
                cli.batch,
                "your new key",
            )?;
            let kdf = new_key_kdf(&cli);
            let request = tokio::task::spawn_blocking(move || medvault::enrol(&text, &pw, kdf))
                .await
                .map_err(|e| {
                    CliError::msg(format!("key generation stopped: {e}"), "try again")
                })??;
            write_text(out.as_deref(), &request, "enrolment request")?;
            eprintln!(
                "your key: {} (read it out to the administrator when they certify it)",
                medvault::request_fingerprint(&request)?
            );
            Ok(())
        }
        Command::Passwd { new_password_file } => {
            let url = store(&cli)?;
            let name = user(&cli)?;
            let old = password::current(cli.password_file.as_deref(), cli.batch, &name)?;
            let pw = password::new(
                new_password_file.as_deref(),
                "MEDVAULT_NEW_PASSWORD",
                cli.batch,
                &name,
            )?;
            new_key_kdf(&cli);
            let opts = OpenOptions {
                kdf: kdf(&cli),
                pinned_root: cli.root.clone(),
                new_password: Some(pw.clone()),
                state_dir: state_dir(),
            };
            let s = Vault::open(&url, &name, &old, &opts).await?;
            if !s.changed_password_at_login() {
                s.change_password(&pw).await?;
            }
            println!("password changed for {}", s.user());
            Ok(())
        }
        Command::Rotate {
            scope,
            batch_rows,
            new_epoch,
        } => {
            let s = login(&cli).await?;
            let bar = rotation_bar();
            let opts = medvault::RotateOptions {
                batch: *batch_rows,
                new_epoch: *new_epoch,
            };
            let report = s
                .rotate_with(scope, &opts, &mut |p| show_rotation(&bar, p))
                .await?;
            bar.finish_and_clear();
            if cli.json {
                return json(&report);
            }
            print_rotation(&report);
            Ok(())
        }
        Command::Adopt => {
            let s = login(&cli).await?;
            let bar = adoption_bar();
            let report = s
                .adopt_rows(&mut |table, n| {
                    bar.set_message(table.to_owned());
                    bar.set_position(n);
                })
                .await?;
            bar.finish_and_clear();
            if cli.json {
                json(&report)?;
            } else {
                for (t, n) in &report.tables {
                    println!("{t:<12} {n:>9} rows adopted");
                }
            }
            if !report.all_signed {
                return Err(CliError::msg(
                    format!(
                        "{} rows adopted, but rows without a signature appeared meanwhile",
                        report.adopted
                    ),
                    "run `medvault adopt` again",
                ));
            }
            if !cli.json {
                if report.already {
                    println!("every row of this vault is signed already: nothing to adopt");
                } else {
                    println!(
                        "{} rows adopted; every row is signed from now on (a row without a signature is forged)",
                        report.adopted
                    );
                }
            }
            Ok(())
        }
        Command::Scope(cmd) => {
            let s = login(&cli).await?;
            match cmd {
                ScopeCmd::Create { name } => {
                    s.create_scope(name).await?;
                    println!("created scope {name}");
                }
                ScopeCmd::List => {
                    let scopes = s.scopes();
                    if cli.json {
                        return json(&scopes);
                    }
                    for sc in scopes {
                        println!("{sc}");
                    }
                }
                ScopeCmd::Request { name } => {
                    s.request_access(name).await?;
                    println!("asked for access to {name}; an administrator holding it will approve or decline");
                }
                ScopeCmd::Access { name } => {
                    let list = s.access_list(name).await?;
                    if cli.json {
                        return json(&list);
                    }
                    for h in list {
                        println!("{:<20} {}", shown(&h.user), h.rights);
                    }
                }
                ScopeCmd::Requests => {
                    let list = s.access_requests().await?;
                    if cli.json {
                        return json(&list);
                    }
                    for r in list {
                        println!(
                            "{:<20} asks for {:<24} at {}  {}",
                            shown(&r.requester),
                            shown(&r.scope),
                            r.requested_at,
                            if r.verified {
                                "verified"
                            } else {
                                "UNTRUSTED (signature does not verify)"
                            }
                        );
                    }
                }
                ScopeCmd::Approve {
                    requester,
                    name,
                    read_only,
                } => {
                    let rights = rights_of(*read_only);
                    s.approve_request(requester, name, rights).await?;
                    println!("granted {name} to {requester} ({rights})");
                }
                ScopeCmd::Decline { requester, name } => {
                    if s.decline_request(requester, name).await? {
                        println!("declined {requester}'s request for {name}");
                    } else {
                        println!("{requester} had no pending request for {name}");
                    }
                }
            }
            Ok(())
        }
        Command::Patient(cmd) => {
            let s = login(&cli).await?;
            match cmd {
                PatientCmd::Add {
                    family,
                    given,
                    born,
                    sex,
                    from,
                } => {
                    let doc = match from {
                        Some(src) => read_json::<PatientDoc>(src)?,
                        None => PatientDoc {
                            family_name: family.clone().unwrap_or_default(),
                            given_names: given.clone().unwrap_or_default(),
                            born: born.clone().unwrap_or_default(),
                            sex: sex.clone(),
                        },
                    };
                    let id = s
                        .insert_patient(&NewPatient {
                            family_name: doc.family_name,
                            given_names: doc.given_names,
                            born: doc.born,
                            sex: doc.sex.as_deref().unwrap_or("U").parse()?,
                        })
                        .await?;
                    println!("{id}");
                }
                PatientCmd::Find {
                    family,
                    given,
                    born,
                    born_year,
                    sounds_like,
                    family_prefix,
                    from,
                    limit,
                    recent,
                } => {
                    check_limit(*limit)?;
                    let q = match from {
                        Some(src) => read_json::<QueryDoc>(src)?,
                        None => QueryDoc {
                            family_name: family.clone(),
                            given_names: None,
                            born: born.clone(),
                            born_year: born_year.clone(),
                            sounds_like: sounds_like.clone(),
                            family_prefix: family_prefix.clone(),
                            given_name: given.clone(),
                        },
                    };
                    let by_year = q.born_year.is_some();
                    let by_sound = q.sounds_like.is_some();
                    let by_prefix = q.family_prefix.is_some();
                    let by_word = q.given_name.is_some();
                    let found = s
                        .find_patients(&PatientQuery {
                            family_name: q.family_name,
                            given_names: q.given_names,
                            born: q.born,
                            born_year: q.born_year,
                            sounds_like: q.sounds_like,
                            family_prefix: q.family_prefix,
                            given_name: q.given_name,
                            order: if *recent {
                                medvault::PatientOrder::Recent
                            } else {
                                medvault::PatientOrder::Name
                            },
                            limit: *limit,
                        })
                        .await
                        .map_err(|e| match e {
                            Error::Refused(why) if why.contains("year") => {
                                CliError::msg(why, "for example --born-year 1970")
                            }
                            Error::Refused(why) if why.contains("sound") => {
                                CliError::msg(why, "for example --sounds-like dupond")
                            }
                            e => e.into(),
                        })?;
                    // Patients written before the year or phonetic index
                    // existed are not found through it until it is filled:
                    // say so.
                    for (asked, index, what) in [
                        (by_year, "bi_born_year", "year of birth"),
                        (by_sound, "bi_family_phonetic", "family name's sound"),
                        (by_prefix, "bi_family_prefix", "family name's first letters"),
                        (by_word, "bi_given_words", "given names"),
                    ] {
                        if !asked {
                            continue;
                        }
                        let left = s.unfilled("patients", index).await?;
                        if left > 0 {
                            eprintln!(
                                "warning: index incomplete: the {what} of {left} \
                                 patient(s) written before its index existed is not indexed \
                                 yet; an administrator runs `medvault schema fill`"
                            );
                        }
                    }
                    if cli.json {
                        return json(&found);
                    }
                    if found.is_empty() {
                        println!("no patient found");
                    }
                    found.iter().for_each(print_patient);
                }
                PatientCmd::Show { id } => {
                    let p = s.get_patient(&id.parse::<Id>()?).await?;
                    if cli.json {
                        return json(&p);
                    }
                    print_patient(&p);
                    println!(
                        "created by {} at {}, updated {}",
                        p.author, p.created_at, p.updated_at
                    );
                }
                PatientCmd::List { limit, after } => {
                    let after = after.as_deref().map(str::parse::<Id>).transpose()?;
                    let page = s.list_patients(after.as_ref(), *limit).await?;
                    if cli.json {
                        return json(&page);
                    }
                    page.patients.iter().for_each(print_patient);
                    if let Some(n) = page.next {
                        println!("(more: --after {n})");
                    }
                }
            }
            Ok(())
        }
        Command::Note(cmd) => {
            let s = login(&cli).await?;
            match cmd {
                NoteCmd::Add {
                    patient,
                    text,
                    text_file,
                    scope,
                } => {
                    let text = match (text.as_deref(), text_file) {
                        (Some("-"), _) => read_input("-")?,
                        (Some(t), _) => t.to_owned(),
                        (None, Some(path)) => read_input(path)?,
                        // clap requires one of the two.
                        (None, None) => {
                            return Err(CliError::msg("no note text", "give --text or --text-file"))
                        }
                    };
                    let id = s
                        .add_note(&patient.parse::<Id>()?, &text, scope.as_deref())
                        .await?;
                    println!("{id}");
                }
                NoteCmd::Move { patient, from, to } => {
                    let n = s.move_notes(&patient.parse::<Id>()?, from, to).await?;
                    println!("moved {n} note(s) from {from} to {to}");
                }
                NoteCmd::List { patient, scope } => {
                    let list = s
                        .list_notes(&patient.parse::<Id>()?, scope.as_deref())
                        .await?;
                    if cli.json {
                        return json(&list);
                    }
                    for n in &list.notes {
                        println!(
                            "[{}] {} ({}): {}",
                            shown(&n.scope),
                            shown(&n.author),
                            n.created_at,
                            n.body
                        );
                    }
                    if list.withheld > 0 {
                        println!("({} note(s) in scopes you hold no key for)", list.withheld);
                    }
                }
            }
            Ok(())
        }
        Command::Recovery(RecoveryCmd::Check { shares }) => {
            let s = login(&cli).await?;
            let mut shares = shares.clone();
            if shares.is_empty() {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).map_err(|e| {
                    CliError::msg(format!("cannot read shares: {e}"), "pass --share")
                })?;
                shares = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect();
            }
            let fpr = s.check_recovery(&shares).await?;
            println!("the shares rebuild the root key {fpr}");
            Ok(())
        }
        Command::Recover(RecoverCmd::NewAdmin {
            target,
            shares,
            new_password_file,
        }) => {
            let shares = read_shares(shares)?;
            let s = login_or_root(&cli, &shares).await?;
            let exists = s.list_users().await?.iter().any(|u| &u.name == target);
            let pw = if exists {
                None
            } else {
                let pw = password::new(
                    new_password_file.as_deref(),
                    "MEDVAULT_NEW_PASSWORD",
                    cli.batch,
                    target,
                )?;
                new_key_kdf(&cli);
                Some(pw)
            };
            let granted = s.recover_new_admin(target, pw.as_deref(), &shares).await?;
            println!(
                "{target} is an administrator, certified by the root; granted {}",
                if granted.is_empty() {
                    "nothing new".to_string()
                } else {
                    granted.join(", ")
                }
            );
            Ok(())
        }
        Command::Recover(RecoverCmd::ResetPassword {
            target,
            shares,
            new_password_file,
        }) => {
            let shares = read_shares(shares)?;
            let s = login_or_root(&cli, &shares).await?;
            let pw = password::new(
                new_password_file.as_deref(),
                "MEDVAULT_NEW_PASSWORD",
                cli.batch,
                target,
            )?;
            new_key_kdf(&cli);
            let fpr = s.recover_reset_password(target, &pw, &shares).await?;
            println!(
                "{target} has a new key {fpr} under the new password, with every grant they had"
            );
            Ok(())
        }
        Command::Copy { from, to } => {
            let s = login_at(&cli, from).await?;
            let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                indicatif::ProgressBar::new(0)
            } else {
                indicatif::ProgressBar::hidden()
            };
            let mut progress = |table: &str, done: u64, total: u64| {
                bar.set_length(total);
                bar.set_position(done);
                bar.set_message(table.to_owned());
                std::ops::ControlFlow::Continue(())
            };
            let report = s.copy_to(to, &mut progress).await?;
            bar.finish_and_clear();
            if cli.json {
                return json(&report);
            }
            for (t, n) in &report.tables {
                println!("{t:<12} {n:>9} rows");
            }
            for name in &report.not_enrolled {
                eprintln!(
                    "warning: user {name:?} was not given the copy's database key: \
                     their row does not verify to the vault root"
                );
            }
            println!(
                "copied {} to {} without decrypting any field",
                redact_url(from),
                redact_url(to)
            );
            Ok(())
        }
        Command::Verify => {
            let s = login(&cli).await?;
            let r = s.verify_store().await?;
            if cli.json {
                json(&r)?;
            } else {
                for (t, n) in &r.tables {
                    println!("{t:<12} {n:>9} rows");
                }
                println!(
                    "{} signatures verified, {} envelope headers checked, {} fields decrypted, \
                     {} blind indexes recomputed, {} notes not readable by you",
                    r.signatures_verified,
                    r.envelopes_checked,
                    r.fields_decrypted,
                    r.indexes_checked,
                    r.withheld
                );
                println!(
                    "{} rows signed by their author, {} adopted, {} unsigned, {} forged",
                    r.rows_signed, r.rows_adopted, r.rows_unsigned, r.forged
                );
                if r.every_row_signed {
                    println!("every row is signed: a row without a signature is forged");
                } else {
                    println!(
                        "rows without a signature are allowed: a vault made before row signing, \
                         or one whose record a store removed (adopt only a vault you upgraded \
                         yourself, SECURITY.md)"
                    );
                }
                if r.indexes_fold1 > 0 {
                    println!(
                        "{} blind index value(s) over names in their older form (before format \
                         10): found by the spelling they were written with, not yet by what \
                         people type, until an administrator runs `medvault schema fill`",
                        r.indexes_fold1
                    );
                }
                if r.indexes_unfilled > 0 {
                    println!(
                        "{} blind index value(s) not filled yet (rows written before their \
                         index existed): searches miss those rows until an administrator runs \
                         `medvault schema fill`",
                        r.indexes_unfilled
                    );
                }
                for p in &r.problems {
                    println!("PROBLEM: {}", shown(p));
                }
            }
            if r.problems.is_empty() {
                Ok(())
            } else {
                Err(CliError::msg(
                    format!("{} problem(s) found", r.problems.len()),
                    "the store was modified outside medvault; restore it from a backup made with `medvault copy`",
                ))
            }
        }
        Command::Demo(a) => crate::demo::run(a, kdf(&cli)).await,
        Command::Row(cmd) => {
            let s = login(&cli).await?;
            row_cmd(&cli, &s, cmd).await
        }
        Command::Schema(SchemaCmd::Apply { file, dry_run }) => {
            let text = read_input(file)?;
            // The file's own problems, with their lines, before logging in.
            app_schema_text(file, &text)?;
            let s = login(&cli).await?;
            if *dry_run {
                let changes = s.plan_schema(&text)?;
                if cli.json {
                    return json(&serde_json::json!({ "dry_run": true, "changes": changes }));
                }
                println!("would change ({}):", changes.len());
                for c in &changes {
                    println!("  {c}");
                }
                return Ok(());
            }
            let r = s.apply_schema(&text).await?;
            if cli.json {
                return json(&r);
            }
            if r.changes.is_empty() {
                println!(
                    "nothing to change: schema version {} is in force",
                    r.version
                );
            } else {
                for c in &r.changes {
                    println!("  {c}");
                }
                println!(
                    "schema version {} is in force, signed by {}",
                    r.version,
                    s.user()
                );
            }
            if r.indexed > 0 {
                println!(
                    "blind-index values computed for {} existing row(s)",
                    r.indexed
                );
            }
            Ok(())
        }
        Command::Schema(SchemaCmd::Migrate { dir }) => {
            let s = login(&cli).await?;
            let ran = s.migrate_application(dir).await?;
            if cli.json {
                return json(&serde_json::json!({ "ran": ran }));
            }
            if ran.is_empty() {
                println!("no migration to run");
            }
            for m in &ran {
                println!("ran {m}");
            }
            Ok(())
        }
        Command::Schema(SchemaCmd::Fill) => {
            let s = login(&cli).await?;
            let filled = s.fill_indexes().await?;
            if cli.json {
                return json(&serde_json::json!({ "filled": filled }));
            }
            println!("{filled} index value(s) written");
            Ok(())
        }
        Command::Schema(SchemaCmd::Show) => {
            let s = login(&cli).await?;
            let p = s.policy_info();
            if cli.json {
                return json(&p);
            }
            match (&p.signer, p.signed_at) {
                (Some(by), Some(at)) => println!(
                    "schema version {}, applied by {} at {} (Unix seconds)",
                    p.version,
                    shown(by),
                    at
                ),
                _ => println!("schema version 0: medvault's built-in tables only"),
            }
            println!("tables: {}", p.tables.join(", "));
            for t in &s.schema().tables {
                println!();
                print_table(t);
            }
            if let Some(t) = &p.text {
                println!();
                println!("--- the application's schema file as applied:");
                print!("{}", shown_text(t));
                if !t.ends_with('\n') {
                    println!();
                }
            }
            Ok(())
        }
        Command::Schema(cmd) => schema_cmd(&cli, cmd),
    }
}

/// A declared table, its columns (implied, declared) and blind indexes.
fn print_table(t: &medvault::schema::Table) {
    use medvault::schema::{ColumnType, Implied};
    match &t.parent {
        Some(p) => println!(
            "{}  (each row belongs to a row of {} by {})",
            t.name, p.table, p.column
        ),
        None => println!("{}", t.name),
    }
    for i in t.implied_columns() {
        let what = match i {
            Implied::Id => "row id (16 random bytes)".to_string(),
            Implied::Parent(p) => format!("id of the {} row", p.table),
            Implied::ScopeId => "the row's scope".to_string(),
        };
        println!("  {:<24} {what}", i.name());
    }
    for c in &t.columns {
        let ty = match &c.ty {
            ColumnType::Plain(p) => format!("plain {p}"),
            ColumnType::Encrypted(e) => format!(
                "encrypted {}, scope {}, at most {} bytes",
                e.kind, e.scope, e.max_bytes
            ),
        };
        let opt = if c.optional { ", optional" } else { "" };
        println!("  {:<24} {ty}{opt}", c.name);
    }
    for i in &t.indexes {
        let kind = match i.kind {
            medvault::schema::IndexKind::Equal => String::new(),
            k => format!("{k} "),
        };
        let bits = match i.prefix {
            Some(l) => format!(
                "prefixes of {} to {} characters, {} bits each",
                l.shortest, l.longest, i.bits
            ),
            None => format!("{} bits", i.bits),
        };
        println!(
            "  {:<24} {kind}blind index over ({}), {bits}",
            i.name,
            i.over.join(", ")
        );
    }
}

/// `column=value` arguments as typed values.
fn assignments(t: &RowTable<'_>, args: &[String]) -> R<std::collections::BTreeMap<String, Value>> {
    let mut out = std::collections::BTreeMap::new();
    for a in args {
        let (k, v) = a.split_once('=').ok_or_else(|| {
            CliError::msg(
                "expected column=value",
                "write each value as column=value, e.g. substance=Latex",
            )
        })?;
        out.insert(k.to_owned(), t.parse_value(k, v)?);
    }
    Ok(out)
}

/// A JSON object from a file or standard input, as values by column.
fn json_object(t: &RowTable<'_>, src: &str) -> R<NewRow> {
    let v: serde_json::Value = read_json(src)?;
    Ok(t.from_json(&v)?)
}

fn print_row(r: &Row) {
    let mut line = r.id.to_string();
    if let Some(p) = &r.parent {
        line.push_str(&format!("  parent={p}"));
    }
    if let Some(s) = &r.scope {
        line.push_str(&format!("  scope={}", shown(s)));
    }
    for (k, v) in &r.values {
        let v = match v {
            Value::Null => "null".to_string(),
            Value::Text(t) => shown(t),
            Value::Integer(i) => i.to_string(),
            Value::Boolean(b) => b.to_string(),
            Value::Bytes(b) => hex::encode(b),
            Value::Id(id) => id.to_string(),
        };
        line.push_str(&format!("  {k}={v}"));
    }
    if !r.withheld.is_empty() {
        line.push_str(&format!("  withheld: {}", r.withheld.join(", ")));
    }
    println!("{line}");
}

fn print_rows(cli: &Cli, rows: &[Row]) -> R {
    if cli.json {
        return json(&rows.iter().map(Row::to_json).collect::<Vec<_>>());
    }
    if rows.is_empty() {
        println!("no row");
    }
    rows.iter().for_each(print_row);
    Ok(())
}

async fn row_cmd(cli: &Cli, s: &Session, cmd: &RowCmd) -> R {
    match cmd {
        RowCmd::Insert {
            table,
            values,
            parent,
            scope,
            from,
        } => {
            let t = s.table(table).await?;
            let row = match from {
                Some(src) => json_object(&t, src)?,
                None => NewRow {
                    parent: parent.as_deref().map(str::parse).transpose()?,
                    scope: scope.clone(),
                    values: assignments(&t, values)?,
                },
            };
            let id = t.insert(&row).await?;
            if cli.json {
                return json(&serde_json::json!({ "id": id }));
            }
            println!("{id}");
            Ok(())
        }
        RowCmd::Get { table, id } => {
            let t = s.table(table).await?;
            let id: Id = id.parse()?;
            let r = t.get(id).await?.ok_or_else(|| {
                CliError::msg(
                    format!("no row {id} in {}", shown(table)),
                    "list the table's rows with `medvault row list <table>`",
                )
            })?;
            print_rows(cli, std::slice::from_ref(&r))
        }
        RowCmd::Find {
            table,
            criteria,
            from,
            year,
            year_month,
            sounds_like,
            prefix,
            word,
            order_by,
            desc,
            limit,
            after,
        } => {
            use medvault::schema::IndexKind;
            use medvault::vault::rows::Order;
            check_limit(*limit)?;
            let t = s.table(table).await?;
            let mut order = order_by.as_deref().map_or_else(Order::by_id, Order::by);
            if *desc {
                order = order.descending();
            }
            if let Some(n) = limit {
                order = order.limit(*n);
            }
            if let Some(id) = after {
                let row = t.get(id.parse()?).await?.ok_or_else(|| {
                    CliError::msg(
                        "no row of this table has the id given to --after",
                        "give the last id of the previous page",
                    )
                })?;
                order = order.after(&row);
            }
            let by_kind = match (
                year,
                year_month,
                sounds_like,
                prefix.as_ref().or(word.as_ref()),
            ) {
                (Some(a), ..) => Some((IndexKind::Year, a, "--year born=1970")),
                (_, Some(a), ..) => Some((IndexKind::YearMonth, a, "--year-month born=1970-03")),
                (_, _, Some(a), _) => {
                    Some((IndexKind::Phonetic, a, "--sounds-like family_name=dupond"))
                }
                (.., Some(a)) if prefix.is_some() => {
                    Some((IndexKind::Prefix, a, "--prefix family_name=dup"))
                }
                (.., Some(a)) => Some((IndexKind::Tokens, a, "--word given_names=marie")),
                _ => None,
            };
            if let Some((kind, a, example)) = by_kind {
                let (column, value) = a.split_once('=').ok_or_else(|| {
                    CliError::msg(
                        "a criterion is COLUMN=VALUE",
                        format!("for example {example}"),
                    )
                })?;
                let found = t
                    .find_by_ordered(
                        kind,
                        column.trim(),
                        &Value::Text(value.trim().to_owned()),
                        &order,
                    )
                    .await
                    .map_err(|e| match e {
                        Error::Refused(why) => CliError::msg(why, format!("for example {example}")),
                        e => e.into(),
                    })?;
                return print_rows(cli, &found);
            }
            let given = match from {
                Some(src) => json_object(&t, src)?.values,
                None => assignments(&t, criteria)?,
            };
            if given.is_empty() {
                return Err(CliError::msg(
                    "no criterion",
                    "give column=value for the columns of one blind index",
                ));
            }
            let q: Vec<(&str, Value)> =
                given.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            let found = t.find_ordered(&q, &order).await?;
            print_rows(cli, &found)
        }
        RowCmd::List {
            table,
            after,
            limit,
            parent,
        } => {
            let t = s.table(table).await?;
            let rows = match parent {
                Some(p) => t.children(p.parse()?).await?,
                None => {
                    t.list(after.as_deref().map(str::parse).transpose()?, *limit)
                        .await?
                }
            };
            print_rows(cli, &rows)
        }
        RowCmd::Update {
            table,
            id,
            values,
            from,
        } => {
            let t = s.table(table).await?;
            let changes = match from {
                Some(src) => json_object(&t, src)?.values,
                None => assignments(&t, values)?,
            };
            let id: Id = id.parse()?;
            if !t.update(id, &changes).await? {
                return Err(CliError::msg(
                    format!("no row {id} in {}", shown(table)),
                    "list the table's rows with `medvault row list <table>`",
                ));
            }
            println!("updated {id}");
            Ok(())
        }
        RowCmd::Delete { table, id } => {
            let t = s.table(table).await?;
            let id: Id = id.parse()?;
            if !t.delete(id).await? {
                return Err(CliError::msg(
                    format!("no row {id} in {}", shown(table)),
                    "list the table's rows with `medvault row list <table>`",
                ));
            }
            println!("deleted {id}");
            Ok(())
        }
    }
}

/// The built-in schema extended by an application's file.
fn app_schema(src: &str) -> R<Schema> {
    let text = read_input(src)?;
    app_schema_text(src, &text)
}

/// A schema text (signed, so trusted, but still shown escaped) as the
/// terminal gets it: line breaks and tabs kept, other controls escaped.
fn shown_text(t: &str) -> String {
    t.split('\n').map(shown).collect::<Vec<_>>().join("\n")
}

fn app_schema_text(src: &str, text: &str) -> R<Schema> {
    Schema::builtin().extend(text).map_err(|e| match e {
        Error::Schema(p) => CliError::msg(
            format!(
                "{} has {} problem(s):\n  {}",
                if src == "-" { "standard input" } else { src },
                p.0.len(),
                p.0.iter()
                    .map(|p| shown(&p.to_string()))
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ),
            "the schema language is in schema/LANGUAGE.md",
        ),
        e => CliError::Vault(e),
    })
}

fn schema_cmd(cli: &Cli, cmd: &SchemaCmd) -> R {
    match cmd {
        SchemaCmd::Check { file } => {
            let s = app_schema(file)?;
            let changes = medvault::schema::change::plan(Schema::builtin(), &s)?;
            let said: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
            if cli.json {
                return json(&serde_json::json!({ "valid": true, "changes": said }));
            }
            println!(
                "valid: {} table(s), {} change(s) to the built-in schema",
                s.tables.len(),
                said.len()
            );
            for c in &said {
                println!("  {c}");
            }
            Ok(())
        }
        SchemaCmd::Plan { file, population } => {
            use medvault::schema::plan;
            let s = app_schema(file)?;
            if *population == Some(0) {
                return Err(CliError::msg(
                    "a population is at least 1 row",
                    "for example --population 20000",
                ));
            }
            let tables = plan::plan(&s, *population);
            if cli.json {
                let out: Vec<serde_json::Value> = tables
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "table": t.table,
                            "population": t.population,
                            "values_per_row": t.values_per_row,
                            "row_bits": t.row_bits,
                            "row_crowd": t.row_crowd,
                            "singles_out": t.singles_out(),
                            "indexes": t.indexes.iter().map(|i| serde_json::json!({
                                "index": i.index,
                                "over": i.over,
                                "kind": i.kind.as_str(),
                                "bits": i.bits,
                                "classes": i.classes,
                                "crowd": i.crowd,
                                "values_per_row": i.values_per_row,
                                "bits_revealed": i.bits_revealed,
                                "prefixes": i.prefixes.iter().map(|(k, c)| serde_json::json!({
                                    "length": k,
                                    "classes": c,
                                    "rows_per_value": t.population as f64 / c,
                                })).collect::<Vec<_>>(),
                            })).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                return json(&out);
            }
            for t in tables.iter().filter(|t| !t.indexes.is_empty()) {
                println!("{} ({} rows)", t.table, t.population);
                println!(
                    "  {:<22} {:<10} {:>4} {:>9} {:>12} {:>8}",
                    "index", "kind", "bits", "classes", "rows/value", "reveals"
                );
                // Classes past a billion as a power of two (2^240 is 73
                // digits).
                let classes = |c: f64| {
                    if c < 1e9 {
                        format!("{c:.0}")
                    } else {
                        format!("2^{:.1}", c.log2())
                    }
                };
                let crowd = |c: f64| {
                    if c >= 0.01 {
                        format!("{c:.2}")
                    } else {
                        format!("{c:.1e}")
                    }
                };
                for i in &t.indexes {
                    println!(
                        "  {:<22} {:<10} {:>4} {:>9} {:>12} {:>5.1} bits",
                        i.index,
                        i.kind.as_str(),
                        i.bits,
                        classes(i.classes),
                        crowd(i.crowd),
                        i.bits_revealed
                    );
                    // A prefix chain: what the server tells apart at each
                    // length, the first on its own.
                    for (k, classes) in &i.prefixes {
                        println!(
                            "    first {k:>2} character(s): {:>9.0} classes, {:>10.2} rows/value",
                            classes,
                            t.population as f64 / classes
                        );
                    }
                }
                println!(
                    "  a row: {} index value(s) side by side, up to {:.1} bits: {}",
                    t.values_per_row,
                    t.row_bits,
                    if t.singles_out() {
                        format!(
                            "as few as {:.1e} rows share them all, under 2: they SINGLE A ROW \
                             OUT (whoever learns one row's values finds its other rows)",
                            t.row_crowd
                        )
                    } else {
                        format!("as few as {:.1} rows share them all", t.row_crowd)
                    }
                );
            }
            Ok(())
        }
        SchemaCmd::Apply { .. } | SchemaCmd::Show | SchemaCmd::Fill | SchemaCmd::Migrate { .. } => {
            Err(CliError::msg(
                "this schema command needs a login",
                "report this bug",
            ))
        }
        SchemaCmd::Ddl {
            table,
            schema,
            dialect,
        } => {
            let s = match schema {
                Some(f) => app_schema(f)?,
                None => Schema::builtin().clone(),
            };
            let t = s.table(table).ok_or_else(|| {
                CliError::msg(
                    format!("no table {:?} is declared", shown(table)),
                    format!(
                        "declared: {}; an application's tables need --schema FILE",
                        s.tables
                            .iter()
                            .map(|t| t.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            for d in Dialect::ALL {
                if dialect.as_deref().is_some_and(|want| want != d.name()) {
                    continue;
                }
                println!("-- {}", d.name());
                for stmt in create_table(t, d) {
                    println!("{stmt};");
                }
                println!();
            }
            Ok(())
        }
    }
}

/// A running count on a terminal (hidden otherwise).
fn adoption_bar() -> indicatif::ProgressBar {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) = indicatif::ProgressStyle::with_template("{msg:<12} {pos} rows adopted") {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    }
}

/// A progress bar on a terminal (hidden otherwise).
fn rotation_bar() -> indicatif::ProgressBar {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg:<12} [{bar:30}] {pos}/{len} rows ({per_sec}, {eta} left)",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    }
}

fn show_rotation(
    bar: &indicatif::ProgressBar,
    p: &medvault::RotateProgress,
) -> std::ops::ControlFlow<()> {
    bar.set_length(p.total);
    bar.set_position(p.seen);
    bar.set_message(p.table.clone());
    std::ops::ControlFlow::Continue(())
}

fn print_rotation(r: &medvault::RotateReport) {
    let how = if r.created {
        "rotated"
    } else {
        "finished rotating"
    };
    println!(
        "{how} {} to key epoch {}: {} rows sealed again",
        r.scope, r.epoch, r.rewritten
    );
    if !r.wrapped_to.is_empty() {
        println!("epoch {} wrapped to {}", r.epoch, r.wrapped_to.join(", "));
    }
    for e in &r.retired {
        println!("retired epoch {e}");
    }
}

/// Recovery shares from a file, or standard input for `-`: one a line,
/// blank lines skipped.
fn read_shares(path: &std::path::Path) -> R<Vec<String>> {
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::msg(format!("cannot read shares: {e}"), "one share a line"))?;
        text
    } else {
        std::fs::read_to_string(path).map_err(|e| {
            CliError::msg(
                format!("cannot read {}: {e}", path.display()),
                "check the path and its permissions",
            )
        })?
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// The rights a `--read-only` flag asks for.
fn rights_of(read_only: bool) -> medvault::Rights {
    if read_only {
        medvault::Rights::Read
    } else {
        medvault::Rights::ReadWrite
    }
}
