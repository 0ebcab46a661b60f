//! Vaults and sessions: creating a vault, logging in, and the
//! administrator's operations (users, scopes, grants).
//!
//! A [`Session`] is a logged-in user: it holds the keys of the scopes the
//! user was granted, after checking every grant's signature chain up to the
//! pinned root. Patient and note operations are in [`patients`].

pub mod access;
mod adopt;
pub mod authorship;
mod closed;
pub mod enrol;
#[cfg(test)]
mod interposed;
pub mod patients;
#[cfg(test)]
mod refold_tests;
pub mod rotate;
pub mod rows;
pub mod schema;
mod seen;
#[cfg(test)]
mod stale_writes;
pub mod transfer;
pub mod trust;

pub use access::{AccessRequest, Holder};
pub use adopt::AdoptReport;
pub use enrol::{enrol, request_fingerprint, Enrolled};
pub use rotate::{RotateOptions, RotateProgress, RotateReport};
pub use schema::{ApplyReport, PolicyInfo};

use std::collections::HashMap;
use std::sync::Arc;

use sequoia_openpgp::crypto::Password;
use sequoia_openpgp::Cert;
use serde::Serialize;

use crate::crypto::secret::{ct_eq, DbKey, EpochKey, FieldKey};
use crate::crypto::{envelope, kdf};
use crate::error::{Error, Result};
use crate::keys::pgp::{self, Decryptor, KdfParams, LockedKey, OpenKey, RecordSigner};
use crate::keys::recovery;
use crate::policy::Policy;
pub(crate) use crate::runtime::blocking;
use crate::store::keyring::Keyring;
#[cfg(feature = "mysql")]
use crate::store::mysql::MysqlStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{EpochRow, Genesis, GrantRow, NewScope, ScopeRow, Store, StoreUrl, UserRow};
use trust::{Directory, ROOT};

/// Built-in scope: names and date of birth (whoever searches patients).
pub const SCOPE_IDENTITY: &str = "identity";
/// Built-in scope: clinical notes.
pub const SCOPE_CLINICAL: &str = "clinical";
/// Built-in scope: billing.
pub const SCOPE_BILLING: &str = "billing";
/// Prefix of a user's personal scope (`personal:<user>`).
pub const PERSONAL_PREFIX: &str = "personal:";
/// What a grant lets its grantee do with a scope's key (FORMAT.md §5.3):
/// part of the signed grant, so a store cannot change it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rights {
    /// Read what is sealed under the scope; write nothing under it.
    Read,
    /// Read, and write rows under the scope.
    ReadWrite,
}

impl Rights {
    /// The text stored in the grant's `rights` column and signed.
    pub fn as_str(self) -> &'static str {
        match self {
            Rights::Read => "read",
            Rights::ReadWrite => "read-write",
        }
    }

    /// Parses a grant's `rights` text; `None` for any other text.
    pub fn parse(text: &str) -> Option<Rights> {
        match text {
            "read" => Some(Rights::Read),
            "read-write" => Some(Rights::ReadWrite),
            _ => None,
        }
    }
}

impl std::fmt::Display for Rights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Options for [`Vault::create`].
#[derive(Clone, Debug)]
pub struct CreateOptions {
    /// Argon2 setting for the first admin's key.
    pub kdf: KdfParams,
    /// Shares needed to recover the root key.
    pub threshold: u8,
    /// Shares printed.
    pub shares: u8,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            kdf: KdfParams::PRODUCTION,
            threshold: 2,
            shares: 4,
        }
    }
}

/// Options for [`Vault::open`]. `Debug` does not show `new_password`.
#[derive(Clone)]
pub struct OpenOptions {
    /// Argon2 setting for keys this session creates (new users).
    pub kdf: KdfParams,
    /// Root fingerprint to pin. For an embedded vault, `None` pins the root
    /// named in the user's own certificate (a notation made by the user's
    /// key, which the password proves at login), never the keyring's copy.
    /// A shared store needs it.
    pub pinned_root: Option<String>,
    /// The password to change to when this login must change it: the
    /// user's password was chosen by someone else (an administrator's
    /// `user add`, a recovery), so the login is refused with
    /// [`Error::PasswordChangeRequired`] until they choose their own. With
    /// it, [`Vault::open`] changes the password and then opens the session
    /// ([`Session::changed_password_at_login`]). Ignored otherwise.
    pub new_password: Option<String>,
    /// Where this client remembers, across sessions, the newest key epoch
    /// of each scope and the newest schema version it has seen of the
    /// vault (one small file per vault and user). With it, a store put
    /// back to an older state is refused: writes under an older epoch,
    /// and a login to an older schema, give [`Error::RolledBack`]. `None`
    /// remembers within the session only. The command uses
    /// `MEDVAULT_STATE_DIR`, else `$XDG_STATE_HOME/medvault`, else
    /// `~/.local/state/medvault`. A directory that cannot be written makes
    /// the login fail (nothing is skipped silently). A session opened from
    /// recovery shares ([`Vault::open_with_shares`]) keeps none.
    pub state_dir: Option<std::path::PathBuf>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            kdf: KdfParams::PRODUCTION,
            pinned_root: None,
            new_password: None,
            state_dir: None,
        }
    }
}

impl std::fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenOptions")
            .field("kdf", &self.kdf)
            .field("pinned_root", &self.pinned_root)
            .field("new_password", &self.new_password.as_ref().map(|_| "<set>"))
            .field("state_dir", &self.state_dir)
            .finish()
    }
}

/// What `init` reports, once. The shares are printed and never stored;
/// `Debug` does not show them.
#[derive(Serialize)]
pub struct InitReport {
    /// Vault id, hex.
    pub vault_id: String,
    /// Root fingerprint (pin it in clients' configuration).
    pub root_fingerprint: String,
    /// Shares needed.
    pub threshold: u8,
    /// Recovery shares of the root key.
    pub shares: Vec<String>,
}

impl std::fmt::Debug for InitReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitReport")
            .field("vault_id", &self.vault_id)
            .field("root_fingerprint", &self.root_fingerprint)
            .field("threshold", &self.threshold)
            .field("shares", &format_args!("<{} shares>", self.shares.len()))
            .finish()
    }
}

/// A user as an administrator sees them.
#[derive(Clone, Debug, Serialize)]
pub struct UserInfo {
    /// Name.
    pub name: String,
    /// `admin` or `user`.
    pub role: String,
    /// `active` or `disabled`.
    pub status: String,
    /// Who certified the row.
    pub certifier: String,
    /// Certificate fingerprint.
    pub fingerprint: String,
    /// Whether the row's signature chain verified to the root.
    pub trusted: bool,
}

/// What [`Session::disable_user`] did besides disabling the user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DisableReport {
    /// Shared scopes they held, rotated to a new epoch they are not given.
    pub rotated: Vec<String>,
    /// Shared scopes they held whose newest epoch this administrator does
    /// not hold, so could not rotate.
    pub not_rotated: Vec<String>,
    /// Shared scopes whose rotation stopped with an error (a schema stored
    /// meanwhile, another administrator rotating, the store), with the
    /// error: the user's grants are gone already, so run `rotate SCOPE`
    /// to finish it (`--new-epoch` if it stopped before making its epoch).
    /// The other scopes were rotated all the same.
    pub unfinished: Vec<(String, String)>,
    /// Why the record that closes their key's writes (FORMAT.md §5.11) was
    /// not stored, if it was not: run `disable_user` again to store it.
    pub closed_writes: Option<String>,
}

/// Entry points.
pub struct Vault;

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Checks a user name: 1–64 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn validate_user_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidUserName(name.chars().take(70).collect()))
    }
}

/// Characters a new password has at least (README, "Passwords").
pub const MIN_PASSWORD_CHARS: usize = 10;

/// A new password (a vault's first administrator, a new user, a password
/// change): not empty, at least [`MIN_PASSWORD_CHARS`] characters, and at
/// least about 10^8 guesses by the zxcvbn estimate (score 3 of 4), with
/// the user's name counted as known to the guesser. Test suites, whose
/// keys use [`KdfParams::danger_fast_for_tests`], skip the floor with it.
pub fn check_new_password(pw: &str, user: &str, kdf: KdfParams) -> Result<()> {
    check_password(pw)?;
    if kdf == KdfParams::danger_fast_for_tests() {
        return Ok(());
    }
    if pw.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::WeakPassword(format!(
            "it has fewer than {MIN_PASSWORD_CHARS} characters"
        )));
    }
    let estimate = zxcvbn::zxcvbn(pw, &[user, "medvault"]);
    if estimate.score() < zxcvbn::Score::Three {
        let why = estimate
            .feedback()
            .and_then(|f| f.warning())
            .map(|w| w.to_string().trim_end_matches('.').to_lowercase())
            .unwrap_or_else(|| "it would be guessed in fewer than 10^8 tries".into());
        return Err(Error::WeakPassword(why));
    }
    Ok(())
}

fn check_password(pw: &str) -> Result<Password> {
    if pw.is_empty() {
        return Err(Error::BadPassword("empty"));
    }
    Ok(Password::from(pw))
}

/// A scope key and what is derived from it.
pub(crate) struct EpochKeys {
    raw: EpochKey,
    field: FieldKey,
    /// The field key prepared for each encrypted column of the policy
    /// (envelope::Prefix): half the AES work of sealing a short field.
    prefixes: Vec<envelope::Prefix>,
}

impl EpochKeys {
    fn derive(k: EpochKey, scope: u32, epoch: u32, policy: &'static Policy) -> EpochKeys {
        let field = kdf::field_key(&k);
        let header = envelope::Header { scope, epoch };
        let prefixes = policy
            .columns
            .iter()
            .map(|c| envelope::prefix(&field, header, &c.table, &c.column))
            .collect();
        EpochKeys {
            field,
            prefixes,
            raw: k,
        }
    }

    /// The prepared key of `(table, column)`.
    fn prefix(&self, table: &str, column: &str) -> Option<&envelope::Prefix> {
        self.prefixes.iter().find(|p| p.is_for(table, column))
    }
}

fn sign_grant(
    vault_id: &[u8; 16],
    signer: &mut RecordSigner,
    scope: &ScopeRow,
    epoch: u32,
    (grantee, grantee_cert, rights): (&str, &Cert, Rights),
    granter: &str,
    key: &EpochKey,
) -> Result<GrantRow> {
    let mut g = GrantRow {
        scope_id: scope.id,
        epoch,
        grantee: grantee.to_owned(),
        rights: rights.as_str().to_owned(),
        wrapped: pgp::wrap(&[grantee_cert], key.expose())?,
        granter: granter.to_owned(),
        signed_at: now(),
        signature: Vec::new(),
    };
    g.signature = signer.sign(&trust::grant_record(
        vault_id,
        scope,
        &g,
        &pgp::fingerprint(grantee_cert),
    ))?;
    Ok(g)
}

/// A new scope's first epoch, signed, with grants to each recipient; and
/// its key.
fn new_scope(
    vault_id: &[u8; 16],
    signer: &mut RecordSigner,
    signer_name: &str,
    scope: ScopeRow,
    recipients: &[(&str, &Cert)],
) -> Result<(NewScope, EpochKey)> {
    let key = EpochKey::generate();
    let mut epoch = EpochRow {
        scope_id: scope.id,
        epoch: 1,
        state: "current".into(),
        commitment: kdf::commitment(&key).to_vec(),
        creator: signer_name.to_owned(),
        signature: Vec::new(),
        retired: None,
    };
    epoch.signature = signer.sign(&trust::epoch_record(vault_id, &scope, &epoch))?;
    let grants = recipients
        .iter()
        .map(|(name, cert)| {
            sign_grant(
                vault_id,
                signer,
                &scope,
                1,
                (name, cert, Rights::ReadWrite),
                signer_name,
                &key,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((
        NewScope {
            scope,
            epoch,
            grants,
        },
        key,
    ))
}

impl Vault {
    /// Creates a vault with its root key and first administrator.
    ///
    /// The root key certifies the admin and signs the built-in scopes
    /// (`identity`, `clinical`, `billing`, and the admin's personal scope);
    /// then its secret is sealed under a key that exists only as the
    /// returned recovery shares.
    pub async fn create(
        url: &str,
        admin: &str,
        password: &str,
        opts: &CreateOptions,
    ) -> Result<InitReport> {
        let loc = StoreUrl::parse(url)?;
        validate_user_name(admin)?;
        check_new_password(password, admin, opts.kdf)?;
        let pw = check_password(password)?;
        let admin = admin.to_owned();
        let opts = opts.clone();
        if let StoreUrl::Sqlcipher(path) = &loc {
            if path.exists() || StoreUrl::keyring_path(path).exists() {
                return Err(Error::VaultExists(path.display().to_string()));
            }
        }
        let (genesis, admin_cert, vault_id, report) = blocking(move || {
            let vault_id: [u8; 16] = crate::crypto::random_array();
            let (root_cert, root_tsk) =
                pgp::generate_unprotected(&format!("medvault root {}", hex::encode(vault_id)))?;
            let split = recovery::split(&vault_id, &root_tsk, opts.threshold, opts.shares)?;
            let mut root = OpenKey::parse(&root_tsk)?.signer()?;
            drop(root_tsk);
            let root_fpr = pgp::fingerprint(&root_cert);

            let (admin_cert, admin_locked) = pgp::generate(&admin, &pw, opts.kdf, &root_fpr, None)?;
            let mut admin_row = UserRow {
                name: admin.clone(),
                role: "admin".into(),
                status: "active".into(),
                cert: pgp::cert_bytes(&admin_cert)?,
                locked_key: admin_locked,
                certifier: ROOT.into(),
                signed_at: now(),
                signature: Vec::new(),
            };
            admin_row.signature = root.sign(&trust::user_record(
                &vault_id,
                &admin_row,
                &pgp::fingerprint(&admin_cert),
            ))?;

            let scopes = vec![
                ScopeRow {
                    id: 1,
                    name: SCOPE_IDENTITY.into(),
                    owner: None,
                },
                ScopeRow {
                    id: 2,
                    name: SCOPE_CLINICAL.into(),
                    owner: None,
                },
                ScopeRow {
                    id: 3,
                    name: SCOPE_BILLING.into(),
                    owner: None,
                },
                ScopeRow {
                    id: 4,
                    name: format!("{PERSONAL_PREFIX}{admin}"),
                    owner: Some(admin.clone()),
                },
            ];
            let mut epochs = Vec::new();
            let mut grants = Vec::new();
            for s in &scopes {
                let (made, _) = new_scope(
                    &vault_id,
                    &mut root,
                    ROOT,
                    s.clone(),
                    &[(admin.as_str(), &admin_cert), (ROOT, &root_cert)],
                )?;
                epochs.push(made.epoch);
                grants.extend(made.grants);
            }
            let genesis = Genesis {
                meta: vec![
                    ("vault_id".into(), vault_id.to_vec()),
                    ("format".into(), b"1".to_vec()),
                    ("root_cert".into(), pgp::cert_bytes(&root_cert)?),
                    ("root_sealed".into(), split.sealed.clone()),
                    ("created_at".into(), now().to_string().into_bytes()),
                    // Every row of a vault made now is authenticated from
                    // the start (FORMAT.md §5.10).
                    (
                        "rows_signed".into(),
                        trust::RowsSigned::sign(&vault_id, ROOT, &mut root, now())?.encode(),
                    ),
                    // Every name of a vault made now is indexed in fold 2
                    // (FORMAT.md §4.1).
                    (NAMES_FOLD.into(), b"2".to_vec()),
                ],
                admin: admin_row,
                scopes,
                epochs,
                grants,
            };
            let report = InitReport {
                vault_id: hex::encode(vault_id),
                root_fingerprint: root_fpr,
                threshold: opts.threshold,
                shares: split.shares,
            };
            Ok((genesis, admin_cert, vault_id, report))
        })
        .await?;
        match loc {
            StoreUrl::Sqlcipher(path) => {
                let fpr = report.root_fingerprint.clone();
                blocking(move || {
                    SqliteStore::create(
                        &path,
                        DbKey::generate(),
                        &genesis,
                        vault_id,
                        fpr,
                        &admin_cert,
                    )
                    .map(|_| ())
                })
                .await?;
            }
            #[cfg(feature = "mysql")]
            StoreUrl::Mysql(u) => {
                MysqlStore::create(&u, &genesis).await?;
            }
            #[cfg(not(feature = "mysql"))]
            StoreUrl::Mysql(_) => return Err(Error::NotBuiltIn("MySQL store", "mysql")),
        }
        Ok(report)
    }

    /// Logs `user` in with `password`.
    ///
    /// A user whose password someone else chose (an administrator's
    /// [`Session::add_user`], a recovery) must choose their own at their
    /// first login: without [`OpenOptions::new_password`] the login is
    /// refused with [`Error::PasswordChangeRequired`]; with it the password
    /// is changed first.
    ///
    /// ```no_run
    /// # async fn demo() -> medvault::Result<()> {
    /// use medvault::{OpenOptions, Vault};
    /// let opts = OpenOptions {
    ///     new_password: Some("a sentence only I know".into()),
    ///     ..Default::default()
    /// };
    /// let s = Vault::open("sqlcipher:clinic.db", "dr.moreau", "from the admin", &opts).await?;
    /// assert!(s.changed_password_at_login());
    /// # Ok(()) }
    /// ```
    pub async fn open(
        url: &str,
        user: &str,
        password: &str,
        opts: &OpenOptions,
    ) -> Result<Session> {
        let s = Self::login(url, user, password, opts).await?;
        let set_by = s
            .password_set_by
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(by) = set_by {
            let Some(new) = &opts.new_password else {
                return Err(Error::PasswordChangeRequired {
                    user: user.to_owned(),
                    set_by: by,
                });
            };
            s.change_password(new).await?;
            s.changed_at_login
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(s)
    }

    /// Opens a session as the vault's root, rebuilt in memory from k
    /// recovery shares: for when nobody can log in any more (every
    /// administrator's password lost). Its user is `@root`; it acts as an
    /// administrator, typically to [`Session::recover_reset_password`] or
    /// [`Session::recover_new_admin`], and cannot change a password or
    /// copy the vault. On SQLCipher the database key comes from the
    /// keyring's root entry (FORMAT.md §7). The shares are the authority:
    /// the root they open is pinned, and must match
    /// [`OpenOptions::pinned_root`] if that is given. Bad shares change
    /// nothing and say why ([`Error::BadShares`]).
    ///
    /// ```no_run
    /// # async fn demo(shares: Vec<String>) -> medvault::Result<()> {
    /// use medvault::{OpenOptions, Vault};
    /// let url = "sqlcipher:clinic.db";
    /// let root = Vault::open_with_shares(url, &shares, &OpenOptions::default()).await?;
    /// root.recover_reset_password("dr.leroy", "a long new passphrase", &shares)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn open_with_shares(
        url: &str,
        shares: &[String],
        opts: &OpenOptions,
    ) -> Result<Session> {
        let loc = StoreUrl::parse(url)?;
        let (store, root): (Arc<dyn Store>, OpenKey) = match loc {
            #[cfg(feature = "mysql")]
            StoreUrl::Mysql(u) => {
                let store = MysqlStore::connect(&u).await?;
                let vault_id: [u8; 16] = store
                    .meta("vault_id")
                    .await?
                    .and_then(|v| v.try_into().ok())
                    .ok_or_else(|| Error::Store("vault metadata vault_id is missing".into()))?;
                let sealed = store
                    .meta("root_sealed")
                    .await?
                    .ok_or_else(|| Error::Store("vault metadata root_sealed is missing".into()))?;
                let shares = shares.to_vec();
                let root = blocking(move || {
                    OpenKey::parse(&recovery::recover(&vault_id, &sealed, &shares)?)
                })
                .await?;
                (Arc::new(store), root)
            }
            #[cfg(not(feature = "mysql"))]
            StoreUrl::Mysql(_) => return Err(Error::NotBuiltIn("MySQL store", "mysql")),
            StoreUrl::Sqlcipher(path) => {
                let shares = shares.to_vec();
                let (store, root) = blocking(move || open_embedded_as_root(&path, &shares)).await?;
                (Arc::new(store) as Arc<dyn Store>, root)
            }
        };
        let fpr = pgp::fingerprint(&root.cert());
        if let Some(pin) = &opts.pinned_root {
            if !ct_eq(fpr.as_bytes(), pin.trim().to_ascii_uppercase().as_bytes()) {
                return Err(Error::UntrustedRoot {
                    pinned: pin.clone(),
                    found: fpr,
                });
            }
        }
        let keys = (root.decryptor()?, root.signer()?);
        // A password no one knows: the root has none.
        let none = Password::from(hex::encode(crate::crypto::random_array::<16>()));
        let opts = OpenOptions {
            state_dir: None,
            ..opts.clone()
        };
        Session::establish(store, ROOT, None, keys, none, &fpr, &opts).await
    }

    async fn login(url: &str, user: &str, password: &str, opts: &OpenOptions) -> Result<Session> {
        let loc = StoreUrl::parse(url)?;
        let shown = loc.to_string();
        validate_user_name(user)?;
        let pw = check_password(password)?;
        let path = match loc {
            #[cfg(feature = "mysql")]
            StoreUrl::Mysql(u) => return Self::open_shared(&u, user, pw, opts, shown).await,
            #[cfg(not(feature = "mysql"))]
            StoreUrl::Mysql(_) => return Err(Error::NotBuiltIn("MySQL store", "mysql")),
            StoreUrl::Sqlcipher(p) => p,
        };
        let user_s = user.to_owned();
        let pw2 = pw.clone();
        let (store, locked, keys) = blocking(move || {
            let (store, locked, keys) = open_embedded(&path, &user_s, &pw2)?;
            Ok((Arc::new(store) as Arc<dyn Store>, locked, keys))
        })
        .await?;
        // The pin: the client's configuration if it gives one, else the root
        // named in the user's own certificate (see `pgp::generate`), never
        // the keyring's copy, which any holder of the database key can edit.
        let pinned = match opts
            .pinned_root
            .clone()
            .or_else(|| pgp::root_pin(&locked.cert()))
        {
            Some(p) => p,
            None => return Err(Error::RootNotPinned(shown)),
        };
        Session::establish(store, user, Some(locked), keys, pw, &pinned, opts).await
    }
}

#[cfg(feature = "mysql")]
impl Vault {
    /// Login on a shared store: the locked key comes from the `users` row
    /// (no keyring), and the root pin must come from the client.
    async fn open_shared(
        u: &crate::store::url::MysqlUrl,
        user: &str,
        pw: Password,
        opts: &OpenOptions,
        shown: String,
    ) -> Result<Session> {
        let store = MysqlStore::connect(u).await?;
        let row = store
            .users()
            .await?
            .into_iter()
            .find(|r| r.name == user)
            .ok_or_else(|| Error::UnknownUser(user.to_owned()))?;
        if row.status != "active" {
            return Err(Error::UserDisabled(user.to_owned()));
        }
        let pinned = opts
            .pinned_root
            .clone()
            .ok_or(Error::RootNotPinned(shown))?;
        let locked = LockedKey::parse(&row.locked_key)?;
        let (user_s, pw2) = (user.to_owned(), pw.clone());
        let (locked, keys) = blocking(move || {
            let keys = locked.unlock(&user_s, &pw2)?;
            Ok((locked, keys))
        })
        .await?;
        // The root named in the user's own certificate must agree with the
        // configured one: a server that swapped the root and re-signed
        // everything still cannot forge that.
        // (A key without its root binding is tampered: `establish`
        // checks the rest of that binding.)
        let own = pgp::root_pin(&locked.cert())
            .ok_or_else(|| Error::LockedKeyTampered(user.to_owned()))?;
        if !ct_eq(
            own.as_bytes(),
            pinned.trim().to_ascii_uppercase().as_bytes(),
        ) {
            return Err(Error::UntrustedRoot { pinned, found: own });
        }
        Session::establish(Arc::new(store), user, Some(locked), keys, pw, &pinned, opts).await
    }
}

/// Opens an embedded vault as `user`: keyring entry, the unlock of both
/// secret keys (two Argon2 runs in parallel), database key, keyring MAC,
/// SQLCipher open. Blocking.
///
/// Nothing the keyring says is acted on before its MAC verifies: a
/// `disabled` mark or a changed entry is tampering until then. Only a
/// missing entry cannot be checked (without it there is no key to check
/// with), and is reported as an unknown or disabled user.
pub(crate) fn open_embedded(
    path: &std::path::Path,
    user: &str,
    pw: &Password,
) -> Result<(SqliteStore, LockedKey, (Decryptor, RecordSigner))> {
    let kr_path = StoreUrl::keyring_path(path);
    if !path.exists() && !kr_path.exists() {
        return Err(Error::NoVault(path.display().to_string()));
    }
    let kr = Keyring::read(&kr_path)?;
    // A user just added whose keyring edit was interrupted after its
    // commit has their entry only in `<keyring>.next` (FORMAT.md §7.1);
    // the database decides below whether it is in force.
    let next = crate::store::keyring::next_path(&kr_path);
    let kr = match kr.entry(user) {
        None => Keyring::read(&next)
            .ok()
            .filter(|n| n.entry(user).is_some())
            .unwrap_or(kr),
        Some(_) => kr,
    };
    let Some(entry) = kr.entry(user) else {
        return Err(if kr.is_disabled(user) {
            Error::UserDisabled(user.to_owned())
        } else {
            Error::UnknownUser(user.to_owned())
        });
    };
    let locked = LockedKey::parse(&entry.locked_key).map_err(|_| Error::KeyringCorrupt {
        path: kr_path.clone(),
        reason: format!("the secret key of {user} does not parse"),
    })?;
    let (dec, signer) = locked.unlock(user, pw)?;
    let raw = dec
        .unwrap(&entry.wrapped_db_key)
        .ok_or_else(|| Error::KeyringTampered(kr_path.clone()))?;
    let key = DbKey::from_slice(&raw).ok_or_else(|| Error::KeyringTampered(kr_path.clone()))?;
    kr.verify(&key, &kr_path)?;
    let (store, in_force) = open_keyed_file(path, key, &kr, &kr_path, |n| {
        let raw = dec.unwrap(&n.entry(user)?.wrapped_db_key)?;
        DbKey::from_slice(&raw)
    })?;
    // What counts is the keyring in force, the one the database records.
    if in_force.is_disabled(user) {
        return Err(Error::UserDisabled(user.to_owned()));
    }
    if in_force.entry(user).is_none() {
        return Err(Error::UnknownUser(user.to_owned()));
    }
    Ok((store, locked, (dec, signer)))
}

/// Opens an embedded vault as the root from recovery shares: the
/// keyring's root entry holds the sealed root key and the database key
/// wrapped to it (FORMAT.md §7). Blocking.
fn open_embedded_as_root(
    path: &std::path::Path,
    shares: &[String],
) -> Result<(SqliteStore, OpenKey)> {
    let kr_path = StoreUrl::keyring_path(path);
    if !path.exists() && !kr_path.exists() {
        return Err(Error::NoVault(path.display().to_string()));
    }
    let kr = Keyring::read(&kr_path)?;
    let entry = kr.entry(ROOT).ok_or(Error::Refused(
        "this vault's keyring has no root entry yet (made by an older medvault): \
         any user's next login adds it; until then recover from a user's session",
    ))?;
    let root = OpenKey::parse(&recovery::recover(&kr.vault_id, &entry.locked_key, shares)?)?;
    let dec = root.decryptor()?;
    let unwrap = |k: &Keyring| -> Option<DbKey> {
        let raw = dec.unwrap(&k.entry(ROOT)?.wrapped_db_key)?;
        DbKey::from_slice(&raw)
    };
    let key = unwrap(&kr).ok_or_else(|| Error::KeyringTampered(kr_path.clone()))?;
    kr.verify(&key, &kr_path)?;
    let (store, _) = open_keyed_file(path, key, &kr, &kr_path, unwrap)?;
    Ok((store, root))
}

/// Opens the file with `key` (from keyring `kr`, MAC checked). If the
/// file's key was rotated and the crash came before the new keyring was
/// put in force (FORMAT.md §7.2), `<keyring>.next` has the key: `unwrap`
/// takes it from there, its MAC is checked, and it is put in force. (The
/// salt survives a rekey, so the old key reads as damage.) Returns the
/// store and the keyring in force.
fn open_keyed_file(
    path: &std::path::Path,
    key: DbKey,
    kr: &Keyring,
    kr_path: &std::path::Path,
    unwrap: impl Fn(&Keyring) -> Option<DbKey>,
) -> Result<(SqliteStore, Keyring)> {
    match SqliteStore::open(path, key, kr) {
        Err(err @ (Error::WrongDatabaseKey(_) | Error::DatabaseCorrupt(_))) => {
            let next = crate::store::keyring::next_path(kr_path);
            let (n, k) = Keyring::read(&next)
                .ok()
                .and_then(|n| {
                    let k = unwrap(&n)?;
                    n.verify(&k, kr_path).ok()?;
                    Some((n, k))
                })
                .ok_or(err)?;
            SqliteStore::open_after_rotation(path, k, &n)
        }
        other => other,
    }
}

/// A logged-in user.
pub struct Session {
    store: Arc<dyn Store>,
    vault_id: [u8; 16],
    root_cert: Cert,
    user: String,
    admin: bool,
    password: std::sync::RwLock<Password>,
    signer: tokio::sync::Mutex<RecordSigner>,
    /// Batches of row leaves this session verified (FORMAT.md §5.8), by
    /// id: each is read and checked once, not once per row.
    #[allow(clippy::type_complexity)]
    batches: std::sync::Mutex<
        HashMap<[u8; 16], std::result::Result<Arc<authorship::VerifiedBatch>, authorship::Forgery>>,
    >,
    /// Records of closed writes this session has seen or stored
    /// (FORMAT.md §5.11), by row id and signature, as first seen: kept
    /// whatever the store answers after.
    #[allow(clippy::type_complexity)]
    closed_seen: std::sync::Mutex<HashMap<([u8; 16], Vec<u8>), trust::ClosedWrites>>,
    /// The user's decryption key, to unwrap grants made after login
    /// ([`Session::refresh_keys`]).
    dec: Decryptor,
    /// The key-state part of the last [`keys::PROBE`] answer this
    /// session's keys were loaded after (`None`: not yet probed).
    probed: std::sync::Mutex<Option<[i64; 7]>>,
    /// Held while the key state is read again ([`Session::refresh_keys`]).
    refreshing: tokio::sync::Mutex<()>,
    /// Who chose this user's password, if not they ([`pgp::password_set_by`]);
    /// cleared by a password change.
    password_set_by: std::sync::Mutex<Option<String>>,
    /// Whether [`Vault::open`] changed the password (a first login).
    changed_at_login: std::sync::atomic::AtomicBool,
    /// What this client has seen across sessions ([`OpenOptions::state_dir`]).
    high_water: Option<std::sync::Mutex<seen::HighWater>>,
    /// The vault's record that every row is signed, once it verified
    /// (FORMAT.md §5.10; SHA-256 of the stored value, hex): a row with no
    /// authentication is then forged. Never unset within a session.
    rows_signed: std::sync::OnceLock<String>,
    /// Whether every name index holds fold 2 (`vault_meta` `names_fold`,
    /// FORMAT.md §4.1): searches then no longer ask for fold 1 too.
    names_refolded: std::sync::atomic::AtomicBool,
    /// Unique indexes this session found filled for every row, by schema
    /// version and `table.index`: a row is left unfilled only by an index
    /// a newer schema adds (every write computes every index of its
    /// version), so a unique check counts the unfilled rows once per
    /// session and version, not once per write.
    unique_filled: std::sync::Mutex<std::collections::HashSet<(u64, String)>>,
    kdf: KdfParams,
    /// What this session knows and holds of scopes and their keys. Read as
    /// a snapshot ([`Session::ks`]); replaced whole when it changes (a
    /// scope this session creates), so readers never see half an update.
    state: std::sync::RwLock<Arc<KeyState>>,
    policy: &'static Policy,
    /// The schema in force (replaced whole by `apply_schema`).
    schema_state: std::sync::RwLock<schema::InForce>,
}

/// The `vault_meta` key saying which fold the name indexes hold
/// (FORMAT.md §4.1, §9.1): `2`, or absent (fold 1 may remain).
pub(crate) const NAMES_FOLD: &str = "names_fold";

/// The record that every row is signed (FORMAT.md §5.10) the store
/// holds, if it verifies: SHA-256 of the stored value, hex. One that does
/// not verify counts as none (a store can delete it as well; a client
/// that saw one refuses either, [`seen::HighWater`]), and an adoption may
/// replace it.
async fn rows_signed_in(
    store: &dyn Store,
    vault_id: &[u8; 16],
    root: &Cert,
) -> Result<Option<String>> {
    let Some(v) = store.meta("rows_signed").await? else {
        return Ok(None);
    };
    rows_signed_verified(store, vault_id, root, &v).await
}

/// [`rows_signed_in`] for the stored value `v`.
pub(crate) async fn rows_signed_verified(
    store: &dyn Store,
    vault_id: &[u8; 16],
    root: &Cert,
    v: &[u8],
) -> Result<Option<String>> {
    let Some(r) = trust::RowsSigned::parse(v) else {
        return Ok(None);
    };
    let mut dir = Directory::new(*vault_id, root.clone(), Vec::new());
    if r.signer != ROOT {
        dir = Directory::new(*vault_id, root.clone(), store.users().await?)
            .with_replaced(rows::replaced_keys(store).await?);
    }
    Ok(r.verifies(&mut dir, vault_id)
        .then(|| hex::encode(kdf::sha256(v))))
}

/// Refuses a record that every row is signed (`found`, [`rows_signed_in`])
/// other than the one this client saw first, or none where it saw one.
fn check_rows_signed_seen(seen: Option<&str>, found: Option<&str>) -> Result<()> {
    match (seen, found) {
        (Some(_), None) => Err(Error::RolledBack(
            "the record that every row is signed is gone (this client has seen it)".into(),
        )),
        (Some(a), Some(b)) if a != b => Err(Error::RolledBack(
            "the record that every row is signed was replaced (this client has seen another)"
                .into(),
        )),
        _ => Ok(()),
    }
}

/// How many times a write runs when its guard finds the key state moved
/// ([`retry_moved`]).
const MOVED_TRIES: usize = 4;

/// Runs the write `op` again while its guard finds the key state moved
/// ([`Error::StateMoved`]: nothing was written; `op` checks the state and
/// reads the keys again first), [`MOVED_TRIES`] times in all; then
/// [`Error::Concurrent`].
pub(crate) async fn retry_moved<T, F, Fut>(mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    for _ in 1..MOVED_TRIES {
        match op().await {
            Err(Error::StateMoved) => {}
            done => return done,
        }
    }
    match op().await {
        Err(Error::StateMoved) => Err(Error::Concurrent(
            "the key state, changed by other clients while writing",
        )),
        done => done,
    }
}

/// Runs [`crate::sql::keys::PROBE`] for `user`.
async fn probe_store(store: &dyn Store, user: &str) -> Result<Probe> {
    let rows = store
        .lookup(
            crate::sql::keys::PROBE.into(),
            vec![
                crate::store::Value::Text(user.to_owned()),
                crate::store::Value::Text(user.to_owned()),
                crate::store::Value::Text(user.to_owned()),
                crate::store::Value::Text(user.to_owned()),
            ],
        )
        .await?;
    let cells = rows.into_iter().next().ok_or(Error::BadStoredValue {
        table: "epochs",
        column: "*",
        expected: "one row of counts",
    })?;
    let mut d = crate::sql::RowDecoder::new(
        "epochs",
        &[
            "version",
            "epochs",
            "retired",
            "grants",
            "signed_at",
            "rights",
            "grant_signed_at",
            "rows_signed",
        ],
        cells,
    )?;
    Ok(Probe {
        schema_version: d.int(0)?,
        keys: [
            d.int(1)?,
            d.int(2)?,
            d.int(3)?,
            d.int(4)?,
            d.int(5)?,
            d.int(6)?,
            d.int(7)?,
        ],
    })
}

/// The root rebuilt from recovery shares (in memory only), with the
/// scopes and epochs as stored.
struct Recovered {
    fpr: String,
    signer: tokio::sync::Mutex<RecordSigner>,
    dec: Decryptor,
    scopes: HashMap<u32, ScopeRow>,
    epochs: HashMap<(u32, u32), EpochRow>,
}

impl Recovered {
    /// The epoch key a grant to the root wraps, checked against its
    /// epoch's commitment.
    fn open(&self, g: &GrantRow) -> Result<EpochKey> {
        let scope = self
            .scopes
            .get(&g.scope_id)
            .map_or_else(|| format!("#{}", g.scope_id), |s| s.name.clone());
        let epoch = self
            .epochs
            .get(&(g.scope_id, g.epoch))
            .ok_or_else(|| Error::GrantInvalid {
                scope: scope.clone(),
                reason: "its epoch is not stored",
            })?;
        let key = self
            .dec
            .unwrap(&g.wrapped)
            .and_then(|raw| EpochKey::from_slice(&raw))
            .ok_or_else(|| {
                Error::BadShares("the recovered key cannot unwrap the root's grants".into())
            })?;
        if !ct_eq(&kdf::commitment(&key), &epoch.commitment) {
            return Err(Error::GrantInvalid {
                scope,
                reason: "the key is not the one its epoch commits to",
            });
        }
        Ok(key)
    }

    /// A grant of `key` (epoch `epoch` of `scope`) to `to`, signed by the
    /// root.
    async fn grant(
        &self,
        vault_id: &[u8; 16],
        scope: &ScopeRow,
        epoch: u32,
        to: (&str, &Cert, Rights),
        key: &EpochKey,
    ) -> Result<GrantRow> {
        let mut signer = self.signer.lock().await;
        sign_grant(vault_id, &mut signer, scope, epoch, to, ROOT, key)
    }
}

/// Who signs the rows an operation signs again: the session's user, or
/// the root rebuilt from recovery shares.
#[derive(Clone, Copy)]
pub(crate) struct SignAs<'a> {
    /// The name signed as (`@root` or a user).
    pub(crate) name: &'a str,
    /// The key.
    pub(crate) key: &'a tokio::sync::Mutex<RecordSigner>,
}

/// A [`crate::sql::keys::PROBE`] answer.
pub(crate) struct Probe {
    /// The highest stored schema version.
    pub(crate) schema_version: u64,
    /// Epochs, retired epochs, grants to this user, this user's row, the
    /// grants to them for reading only, the newest signature of a grant
    /// to them (so a change of rights is seen), and whether the record
    /// that every row is signed is there (so an adoption is seen).
    pub(crate) keys: [i64; 7],
}

/// Scopes and keys as a session knows them.
#[derive(Clone)]
pub(crate) struct KeyState {
    pub(crate) scopes: HashMap<u32, ScopeRow>,
    pub(crate) scope_ids: HashMap<String, u32>,
    pub(crate) keys: HashMap<(u32, u32), Arc<EpochKeys>>,
    /// Every (scope, epoch) whose row is signed to the root, held or not: a
    /// ciphertext naming any other is forged, not merely unreadable.
    pub(crate) known_epochs: std::collections::HashSet<(u32, u32)>,
    /// The epoch new values of each held scope are written under: its
    /// newest signed epoch, when this user holds it.
    pub(crate) current: HashMap<u32, u32>,
    /// The newest signed epoch of every scope, held or not, and never lower
    /// than one this session saw before: a store that hides a newer epoch
    /// (a restored key table) cannot make it write under an older key.
    pub(crate) latest: HashMap<u32, u32>,
    /// Epochs whose signed retirement verified (FORMAT.md §5.5): no cell
    /// uses them, so searches leave their index values out.
    pub(crate) retired: std::collections::HashSet<(u32, u32)>,
    /// The held epochs this user's signed grant lets them write under
    /// ([`Rights::ReadWrite`]); the others they only read.
    pub(crate) writable: std::collections::HashSet<(u32, u32)>,
    /// This user's signed `read-write` grant of each epoch in `writable`,
    /// as a batch of rows they write carries it (FORMAT.md §5.8).
    pub(crate) evidence: HashMap<(u32, u32), Arc<authorship::GrantEvidence>>,
}

impl KeyState {
    /// Raises `latest` to the epochs this client saw in earlier sessions
    /// ([`OpenOptions::state_dir`]): a scope whose newest signed epoch here
    /// is older than that has no current epoch, so every write path
    /// (`current_keys`, a rotation, a move) refuses it.
    fn floor(&mut self, seen: &seen::HighWater) {
        for (sid, e) in seen.epochs() {
            if self.latest.get(&sid).is_none_or(|l| *l < e) {
                self.latest.insert(sid, e);
                self.current.remove(&sid);
            }
        }
        // A retirement seen before stays (a store that deletes it would
        // make the rows a revoked user wrote under that epoch genuine).
        for (sid, r) in seen.retired() {
            let older: Vec<(u32, u32)> = self
                .known_epochs
                .iter()
                .filter(|(s, e)| *s == sid && *e <= r)
                .copied()
                .collect();
            self.retired.extend(older);
        }
    }

    /// The newest retired epoch of each scope, for the client state file.
    fn retired_upto(&self) -> HashMap<u32, u32> {
        let mut out: HashMap<u32, u32> = HashMap::new();
        for (s, e) in &self.retired {
            let v = out.entry(*s).or_insert(*e);
            *v = (*v).max(*e);
        }
        out
    }

    /// The epochs of `scope` this session holds and that are not retired:
    /// the ones a search computes index values under.
    pub(crate) fn live(&self, scope: u32) -> impl Iterator<Item = (u32, &Arc<EpochKeys>)> + '_ {
        self.keys
            .iter()
            .filter(move |((s, e), _)| *s == scope && !self.retired.contains(&(*s, *e)))
            .map(|((_, e), k)| (*e, k))
    }
}

/// Reads scopes, epochs and the grants to `user` and checks each to the
/// root: a grant must be signed by an active administrator (or the root)
/// over an epoch so signed, and unwrap to the key its epoch commits to.
/// `seen` is what the session knew before: the newest epoch of a scope
/// never goes down.
async fn load_keys(
    store: &dyn Store,
    vault_id: &[u8; 16],
    dir: &mut Directory,
    user: &str,
    cert: &Cert,
    dec: &Decryptor,
    seen: Option<&KeyState>,
) -> Result<KeyState> {
    let scopes: HashMap<u32, ScopeRow> = store
        .scopes()
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let epochs: HashMap<(u32, u32), EpochRow> = store
        .epochs()
        .await?
        .into_iter()
        .map(|e| ((e.scope_id, e.epoch), e))
        .collect();
    // Only epochs signed by an active administrator (or the root) count
    // as known: an envelope naming any other is forged, and is reported
    // as tampering, not as a scope this user merely lacks.
    let signed: std::collections::HashSet<(u32, u32)> = epochs
        .values()
        .filter(|e| {
            scopes
                .get(&e.scope_id)
                .is_some_and(|scope| dir.epoch_signed(scope, e))
        })
        .map(|e| (e.scope_id, e.epoch))
        .collect();
    let my_fpr = pgp::fingerprint(cert);
    let mut keys = HashMap::new();
    let mut writable = std::collections::HashSet::new();
    let mut evidence = HashMap::new();
    // Read after the epochs: an epoch and its grants are stored in one
    // transaction, so every epoch read above has its grants here. A grant
    // of an epoch newer than any read above was stored meanwhile (another
    // client rotating): left for the next refresh, not taken for a forgery.
    let newest: HashMap<u32, u32> = epochs.keys().fold(HashMap::new(), |mut m, (s, e)| {
        let v = m.entry(*s).or_insert(*e);
        *v = (*v).max(*e);
        m
    });
    let grants = store.grants_to(user).await?;
    for g in grants {
        if !epochs.contains_key(&(g.scope_id, g.epoch))
            && newest.get(&g.scope_id).is_some_and(|n| g.epoch > *n)
        {
            continue;
        }
        let what = |s: &str| format!("grant of {s} to {user}");
        let scope = scopes.get(&g.scope_id).ok_or_else(|| Error::BadSignature {
            what: what("an unknown scope"),
        })?;
        let epoch = epochs
            .get(&(g.scope_id, g.epoch))
            .ok_or_else(|| Error::BadSignature {
                what: what(&scope.name),
            })?;
        if !signed.contains(&(g.scope_id, g.epoch)) {
            return Err(Error::BadSignature {
                what: format!("key epoch {} of {}", epoch.epoch, scope.name),
            });
        }
        let granter = dir
            .signer_cert(&g.granter)
            .map_err(|_| Error::BadSignature {
                what: what(&scope.name),
            })?;
        if !pgp::verify(
            &granter,
            &trust::grant_record(vault_id, scope, &g, &my_fpr),
            &g.signature,
        ) {
            return Err(Error::BadSignature {
                what: what(&scope.name),
            });
        }
        // Signed with the grant: a store cannot raise it.
        // Rights text this version does not know gives reading only, as
        // everywhere (rotation, recovery).
        if Rights::parse(&g.rights) == Some(Rights::ReadWrite) {
            writable.insert((g.scope_id, g.epoch));
            evidence.insert(
                (g.scope_id, g.epoch),
                Arc::new(authorship::GrantEvidence {
                    scope_id: g.scope_id,
                    epoch: g.epoch,
                    rights: g.rights.clone(),
                    wrapped_sha256: kdf::sha256(&g.wrapped),
                    granter: g.granter.clone(),
                    signed_at: g.signed_at,
                    signature: g.signature.clone(),
                }),
            );
        }
        // A key this session unwrapped before, for the same commitment,
        // is not unwrapped again.
        if let Some(k) = seen.and_then(|ks| ks.keys.get(&(g.scope_id, g.epoch))) {
            if ct_eq(&kdf::commitment(&k.raw), &epoch.commitment) {
                keys.insert((g.scope_id, g.epoch), Arc::clone(k));
                continue;
            }
        }
        let raw = dec.unwrap(&g.wrapped).ok_or_else(|| Error::GrantInvalid {
            scope: scope.name.clone(),
            reason: "it does not unwrap with this user's key",
        })?;
        let key = EpochKey::from_slice(&raw).ok_or_else(|| Error::GrantInvalid {
            scope: scope.name.clone(),
            reason: "the wrapped key has the wrong length",
        })?;
        if !ct_eq(&kdf::commitment(&key), &epoch.commitment) {
            return Err(Error::GrantInvalid {
                scope: scope.name.clone(),
                reason: "the key is not the one its epoch commits to",
            });
        }
        keys.insert(
            (g.scope_id, g.epoch),
            Arc::new(EpochKeys::derive(
                key,
                g.scope_id,
                g.epoch,
                Policy::builtin(),
            )),
        );
    }
    // The newest signed epoch of each scope, never lower than one seen
    // before; a scope's current epoch (for writes) is that one, if held.
    let mut latest: HashMap<u32, u32> = seen.map(|ks| ks.latest.clone()).unwrap_or_default();
    for (s, e) in &signed {
        let l = latest.entry(*s).or_insert(*e);
        *l = (*l).max(*e);
    }
    let current: HashMap<u32, u32> = latest
        .iter()
        .filter(|(s, e)| keys.contains_key(&(**s, **e)))
        .map(|(s, e)| (*s, *e))
        .collect();
    let retired = epochs
        .values()
        .filter(|e| signed.contains(&(e.scope_id, e.epoch)) && e.retired.is_some())
        .filter(|e| {
            scopes
                .get(&e.scope_id)
                .is_some_and(|scope| dir.retirement_signed(scope, e))
        })
        .map(|e| (e.scope_id, e.epoch))
        .chain(seen.iter().flat_map(|ks| ks.retired.iter().copied()))
        .collect();
    Ok(KeyState {
        // Names resolve only to scopes with a signed epoch: an unsigned
        // row cannot take a name (or shadow one).
        scope_ids: scopes
            .values()
            .filter(|s| signed.iter().any(|(id, _)| *id == s.id))
            .map(|s| (s.name.clone(), s.id))
            .collect(),
        scopes,
        keys,
        known_epochs: signed,
        current,
        latest,
        retired,
        writable,
        evidence,
    })
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("store", &self.store.describe())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// `locked`: the user's key as stored; `None` for the root (a session
    /// opened from recovery shares).
    async fn establish(
        store: Arc<dyn Store>,
        user: &str,
        locked: Option<LockedKey>,
        (dec, signer): (Decryptor, RecordSigner),
        password: Password,
        pinned: &str,
        opts: &OpenOptions,
    ) -> Result<Session> {
        let kdf = opts.kdf;
        let meta = |v: Option<Vec<u8>>, what: &str| {
            v.ok_or_else(|| Error::Store(format!("vault metadata {what} is missing")))
        };
        let vault_id: [u8; 16] = meta(store.meta("vault_id").await?, "vault_id")?
            .try_into()
            .map_err(|_| Error::Store("vault metadata vault_id is malformed".into()))?;
        // FORMAT.md §9.1: a vault of another format is not guessed at.
        if meta(store.meta("format").await?, "format")? != b"1" {
            return Err(Error::Store(
                "the vault's format is not 1: it was written by another medvault version".into(),
            ));
        }
        let root_cert = pgp::parse_cert(&meta(store.meta("root_cert").await?, "root_cert")?)?;
        let found = pgp::fingerprint(&root_cert);
        if !ct_eq(
            found.as_bytes(),
            pinned.trim().to_ascii_uppercase().as_bytes(),
        ) {
            return Err(Error::UntrustedRoot {
                pinned: pinned.to_owned(),
                found,
            });
        }
        let mut dir = Directory::new(vault_id, root_cert.clone(), store.users().await?);
        let me = dir.verify(user)?;
        if !me.active {
            return Err(Error::UserDisabled(user.to_owned()));
        }
        let in_force = schema::load(&*store, &vault_id, &mut dir).await?;
        let set_by = match &locked {
            Some(locked) => {
                if pgp::fingerprint(&me.cert) != pgp::fingerprint(&locked.cert()) {
                    return Err(Error::BadSignature {
                        what: format!("certificate of {user} (it does not match their secret key)"),
                    });
                }
                // The login acts on the key's own user ID binding (the root
                // it names, whether its password must change): it must be
                // there.
                locked.check_binding(user)?;
                pgp::password_set_by(&locked.cert())
            }
            None if user == ROOT => None,
            None => return Err(Error::Refused("a user's session needs their key")),
        };
        let probed = probe_store(&*store, user).await?;
        let mut state = load_keys(&*store, &vault_id, &mut dir, user, &me.cert, &dec, None).await?;
        let rows_signed = rows_signed_in(&*store, &vault_id, &root_cert).await?;
        let names_refolded = store.meta(NAMES_FOLD).await?.as_deref() == Some(b"2");
        let high_water = match &opts.state_dir {
            Some(d) => {
                let mut hw = seen::HighWater::load(d, &vault_id, user)?;
                if in_force.version() < hw.schema_version() {
                    return Err(Error::RolledBack(format!(
                        "schema version {} (this client has seen version {})",
                        in_force.version(),
                        hw.schema_version()
                    )));
                }
                check_rows_signed_seen(hw.rows_signed_record(), rows_signed.as_deref())?;
                state.floor(&hw);
                hw.raise(
                    (&state.latest, &state.retired_upto()),
                    in_force.version(),
                    rows_signed.as_deref(),
                )?;
                Some(std::sync::Mutex::new(hw))
            }
            None => None,
        };
        Ok(Session {
            password_set_by: std::sync::Mutex::new(set_by),
            high_water,
            rows_signed: match rows_signed {
                Some(d) => std::sync::OnceLock::from(d),
                None => std::sync::OnceLock::new(),
            },
            changed_at_login: std::sync::atomic::AtomicBool::new(false),
            names_refolded: std::sync::atomic::AtomicBool::new(names_refolded),
            unique_filled: std::sync::Mutex::new(std::collections::HashSet::new()),
            state: std::sync::RwLock::new(Arc::new(state)),
            store,
            vault_id,
            root_cert,
            user: user.to_owned(),
            admin: me.admin,
            password: std::sync::RwLock::new(password),
            signer: tokio::sync::Mutex::new(signer),
            batches: std::sync::Mutex::new(HashMap::new()),
            closed_seen: std::sync::Mutex::new(HashMap::new()),
            dec,
            probed: std::sync::Mutex::new(Some(probed.keys)),
            refreshing: tokio::sync::Mutex::new(()),
            kdf,
            policy: Policy::builtin(),
            schema_state: std::sync::RwLock::new(in_force),
        })
    }

    /// The password this session logged in with (or changed to).
    pub(crate) fn password(&self) -> Password {
        self.password
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes this user's password: their secret key is locked again
    /// under `new` (no data is re-encrypted, no grant changes). The new
    /// password must pass the floor ([`check_new_password`]); the stored
    /// key must be the one the user's certified row names (checked before
    /// it is used), and the result is unlocked with `new` before it is
    /// stored. On SQLCipher the keyring entry changes with the database
    /// row, atomically. Afterwards the old password opens nothing.
    ///
    /// ```no_run
    /// # async fn demo(s: &medvault::Session) -> medvault::Result<()> {
    /// s.change_password("correct horse battery staple").await?;
    /// # Ok(()) }
    /// ```
    pub async fn change_password(&self, new: &str) -> Result<()> {
        if self.user == ROOT {
            return Err(Error::Refused(
                "the root has no password: its key is rebuilt from recovery shares",
            ));
        }
        check_new_password(new, &self.user, self.kdf)?;
        let new_pw = check_password(new)?;
        let old = self.password();
        if new_pw.map(|a| old.map(|b| ct_eq(&a[..], &b[..]))) {
            return Err(Error::WeakPassword("it is the password it replaces".into()));
        }
        let mut dir = self.directory().await?;
        let me = dir.verify(&self.user)?;
        if !me.active {
            return Err(Error::UserDisabled(self.user.clone()));
        }
        let row = dir
            .row(&self.user)
            .cloned()
            .ok_or_else(|| Error::UnknownUser(self.user.clone()))?;
        let locked = LockedKey::parse(&row.locked_key)?;
        if !ct_eq(
            pgp::fingerprint(&locked.cert()).as_bytes(),
            pgp::fingerprint(&me.cert).as_bytes(),
        ) {
            return Err(Error::BadSignature {
                what: format!(
                    "secret key of {} (it is not the key their certified row names)",
                    self.user
                ),
            });
        }
        let (user, old, kdf, pw2) = (self.user.clone(), self.password(), self.kdf, new_pw.clone());
        let bytes = blocking(move || {
            let bytes = locked.relock(&user, &old, &pw2, kdf)?;
            // Proved to open with the new password before it is stored.
            LockedKey::parse(&bytes)?.unlock(&user, &pw2)?;
            Ok(bytes)
        })
        .await?;
        self.store.set_locked_key(&self.user, &bytes).await?;
        *self.password.write().unwrap_or_else(|p| p.into_inner()) = new_pw;
        *self
            .password_set_by
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }

    /// The newest epoch of scope `sid` this client saw in any session, if
    /// it remembers ([`OpenOptions::state_dir`]).
    pub(crate) fn seen_epoch(&self, sid: u32) -> Option<u32> {
        self.high_water
            .as_ref()
            .and_then(|hw| hw.lock().unwrap_or_else(|p| p.into_inner()).epoch(sid))
    }

    /// Whether [`Vault::open`] changed this user's password (their first
    /// login after someone else chose it; [`OpenOptions::new_password`]).
    pub fn changed_password_at_login(&self) -> bool {
        self.changed_at_login
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reads the key state again: scopes, epochs, retirements and this
    /// user's grants, each checked to the root as at login. A grant
    /// removed since (a revocation) drops its keys; a new epoch (a
    /// rotation) is learned, and writes move to it. The newest epoch of a
    /// scope never goes down within a session.
    pub async fn refresh_keys(&self) -> Result<()> {
        let mut dir = self.directory().await?;
        let me = dir.verify(&self.user)?;
        if !me.active {
            return Err(Error::UserDisabled(self.user.clone()));
        }
        // One refresh at a time, so a slower one cannot replace a newer.
        let _one = self.refreshing.lock().await;
        // Probed first: a change after it is seen by the next probe.
        let probe = self.probe().await?;
        self.learn_rows_signed().await?;
        let seen = self.ks();
        let next = load_keys(
            &*self.store,
            &self.vault_id,
            &mut dir,
            &self.user,
            &me.cert,
            &self.dec,
            Some(&seen),
        )
        .await?;
        let mut next = next;
        let mut guard = self.state.write().unwrap_or_else(|p| p.into_inner());
        // The newest epoch of a scope, held now but not seen by the read
        // (a rotation's new epoch, made while the state was being read),
        // is kept.
        for ((sid, e), k) in &guard.keys {
            if !next.keys.contains_key(&(*sid, *e)) && next.latest.get(sid).is_none_or(|l| e >= l) {
                next.keys.insert((*sid, *e), Arc::clone(k));
                next.known_epochs.insert((*sid, *e));
                next.latest.insert(*sid, *e);
                next.current.insert(*sid, *e);
                if guard.writable.contains(&(*sid, *e)) {
                    next.writable.insert((*sid, *e));
                }
            }
        }
        if let Some(hw) = &self.high_water {
            next.floor(&hw.lock().unwrap_or_else(|p| p.into_inner()));
        }
        *guard = Arc::new(next);
        drop(guard);
        *self.probed.lock().unwrap_or_else(|p| p.into_inner()) = Some(probe.keys);
        self.raise_seen()
    }

    /// Records the newest epochs and schema version this session knows in
    /// the client's state file, if it keeps one.
    pub(crate) fn raise_seen(&self) -> Result<()> {
        if let Some(hw) = &self.high_water {
            let ks = self.ks();
            let version = self.schema_version();
            hw.lock().unwrap_or_else(|p| p.into_inner()).raise(
                (&ks.latest, &ks.retired_upto()),
                version,
                self.rows_signed.get().map(String::as_str),
            )?;
        }
        Ok(())
    }

    /// Whether every row of the vault is authenticated, by a record this
    /// session verified (FORMAT.md §5.10): a row without authentication
    /// is then forged, not [`rows::Authorship::Unsigned`].
    pub fn rows_signed(&self) -> bool {
        self.rows_signed.get().is_some()
    }

    /// Whether every name index of the vault holds fold 2 (FORMAT.md
    /// §4.1): true for a vault made from format 10 on, and once
    /// [`Session::fill_indexes`] indexed the older names again.
    pub fn names_refolded(&self) -> bool {
        self.names_refolded
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records that every name index holds fold 2 (`vault_meta`
    /// `names_fold` = `2`): unsigned, as it only spares searches the
    /// fold-1 value; a store that removes it makes them ask for it again,
    /// one that sets it early hides fold-1 rows from searches, as it
    /// could by withholding them.
    pub(crate) async fn set_names_refolded(&self) -> Result<()> {
        let d = self.store.dialect();
        self.store
            .write_all(vec![
                (
                    "DELETE FROM vault_meta WHERE `key` = ?".into(),
                    vec![crate::store::Value::Text(NAMES_FOLD.into())],
                ),
                (
                    format!(
                        "{} INTO vault_meta (`key`, `value`) VALUES (?, ?)",
                        d.insert_keeping()
                    ),
                    vec![
                        crate::store::Value::Text(NAMES_FOLD.into()),
                        crate::store::Value::Blob(b"2".to_vec()),
                    ],
                ),
            ])
            .await?;
        self.names_refolded
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Reads the record that every row is signed, if this session has not
    /// seen it yet (an administrator adopted the vault's unsigned rows
    /// since it logged in).
    pub(crate) async fn learn_rows_signed(&self) -> Result<()> {
        if self.rows_signed() {
            return Ok(());
        }
        let found = rows_signed_in(&*self.store, &self.vault_id, &self.root_cert).await?;
        if let Some(hw) = &self.high_water {
            let hw = hw.lock().unwrap_or_else(|p| p.into_inner());
            check_rows_signed_seen(hw.rows_signed_record(), found.as_deref())?;
        }
        let Some(found) = found else {
            return Ok(());
        };
        if let Err(other) = self.rows_signed.set(found) {
            // Set meanwhile by another task of this session: the same one.
            if Some(&other) != self.rows_signed.get() {
                return Err(Error::RolledBack(
                    "the record that every row is signed was replaced (this session has seen another)"
                        .into(),
                ));
            }
        }
        self.raise_seen()
    }

    /// What a write sealed under the keys this session read last checks
    /// inside its transaction ([`Store::write_guarded`]): the key-state
    /// probe still answers what it answered when those keys were read
    /// (no new or retired epoch, no grant or user row changed), and, with
    /// `schema`, the schema version is still that one. Taken before the
    /// write reads the keys it seals under: a refresh in between makes the
    /// write fail and retry, never commit under keys older than its guard.
    pub(crate) async fn write_guard(&self, schema: Option<u64>) -> Result<crate::store::Guard> {
        let last = *self.probed.lock().unwrap_or_else(|p| p.into_inner());
        let keys = match last {
            Some(k) => k,
            None => {
                let probe = self.probe().await?;
                self.keys_follow(&probe).await?;
                let now = *self.probed.lock().unwrap_or_else(|p| p.into_inner());
                now.unwrap_or(probe.keys)
            }
        };
        let user = || crate::store::Value::Text(self.user.clone());
        let mut expect = Vec::with_capacity(keys.len() + 1);
        let sql = match schema {
            Some(v) => {
                // A version past i64 is no stored one: the guard fails.
                expect.push(i64::try_from(v).unwrap_or(-1));
                crate::sql::keys::PROBE
            }
            None => crate::sql::keys::PROBE_KEYS,
        };
        expect.extend(keys);
        Ok(crate::store::Guard {
            sql: sql.into(),
            params: vec![user(), user(), user(), user()],
            expect,
        })
    }

    /// Runs [`crate::sql::keys::PROBE`].
    pub(crate) async fn probe(&self) -> Result<Probe> {
        probe_store(&*self.store, &self.user).await
    }

    /// Reads the key state again ([`Session::refresh_keys`]) if `probe`
    /// says it changed since it was last read. Returns whether it did.
    pub(crate) async fn keys_follow(&self, probe: &Probe) -> Result<bool> {
        let last = *self.probed.lock().unwrap_or_else(|p| p.into_inner());
        if last == Some(probe.keys) {
            return Ok(false);
        }
        self.refresh_keys().await?;
        Ok(true)
    }

    /// The logged-in user's name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether the user is an administrator.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// A snapshot of the scopes and keys this session holds.
    pub(crate) fn ks(&self) -> Arc<KeyState> {
        Arc::clone(&self.state.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Holds a scope this session just created, with its first key, as if
    /// it had been granted at login.
    fn hold_new_scope(&self, scope: ScopeRow, key: EpochKey) {
        let mut guard = self.state.write().unwrap_or_else(|p| p.into_inner());
        let mut next = KeyState::clone(&guard);
        let id = scope.id;
        next.keys.insert(
            (id, 1),
            Arc::new(EpochKeys::derive(key, id, 1, self.policy)),
        );
        next.known_epochs.insert((id, 1));
        next.writable.insert((id, 1));
        next.current.insert(id, 1);
        next.latest.insert(id, 1);
        next.scope_ids.insert(scope.name.clone(), id);
        next.scopes.insert(id, scope);
        *guard = Arc::new(next);
    }

    /// Names of the scopes this user holds a key for, sorted.
    pub fn scopes(&self) -> Vec<String> {
        let ks = self.ks();
        let mut v: Vec<String> = ks
            .current
            .keys()
            .filter_map(|id| ks.scopes.get(id).map(|s| s.name.clone()))
            .collect();
        v.sort();
        v
    }

    /// The store this session talks to (for diagnostics).
    pub fn store_description(&self) -> String {
        self.store.describe()
    }

    fn require_admin(&self) -> Result<()> {
        if self.admin {
            Ok(())
        } else {
            Err(Error::NotAdmin(self.user.clone()))
        }
    }

    /// Resolves a scope name as a user types it: `personal` is the user's
    /// own personal scope.
    pub(crate) fn scope_id(&self, name: &str) -> Result<u32> {
        let full = if name == "personal" {
            format!("{PERSONAL_PREFIX}{}", self.user)
        } else {
            name.to_owned()
        };
        self.ks()
            .scope_ids
            .get(&full)
            .copied()
            .ok_or_else(|| Error::UnknownScope(name.chars().take(80).collect()))
    }

    /// The scope row of `sid` (which `name` resolved to), or
    /// `UnknownScope`.
    pub(crate) fn scope_row(&self, sid: u32, name: &str) -> Result<ScopeRow> {
        self.ks()
            .scopes
            .get(&sid)
            .cloned()
            .ok_or_else(|| Error::UnknownScope(name.to_owned()))
    }

    pub(crate) fn scope_name(&self, id: u32) -> String {
        self.ks()
            .scopes
            .get(&id)
            .map(|s| s.name.clone())
            .unwrap_or_else(|| format!("#{id}"))
    }

    /// Runs `f` with the user's signing key (unlocked at login, where it
    /// proves the certificate: [`LockedKey::unlock`]).
    async fn with_signer<T>(&self, f: impl FnOnce(&mut RecordSigner) -> Result<T>) -> Result<T> {
        let mut guard = self.signer.lock().await;
        f(&mut guard)
    }

    async fn directory(&self) -> Result<Directory> {
        Ok(Directory::new(
            self.vault_id,
            self.root_cert.clone(),
            self.store.users().await?,
        ))
    }

    /// Adds a user (admin only). `admin` makes them an administrator. Their
    /// personal scope is created with them. Returns their fingerprint.
    pub async fn add_user(&self, name: &str, password: &str, admin: bool) -> Result<String> {
        self.require_admin()?;
        validate_user_name(name)?;
        check_new_password(password, name, self.kdf)?;
        let pw = check_password(password)?;
        let dir = self.directory().await?;
        if dir.row(name).is_some() {
            return Err(Error::UserExists(name.to_owned()));
        }
        let kdf = self.kdf;
        let (n, me) = (name.to_owned(), self.user.clone());
        let root = pgp::fingerprint(&self.root_cert);
        let (cert, locked) =
            blocking(move || pgp::generate(&n, &pw, kdf, &root, Some(&me))).await?;
        self.enter_user(name, admin, &cert, locked).await
    }

    /// Signs the row of a new user with key `cert` (secret `locked`) and
    /// stores it with their personal scope, in one transaction. Returns
    /// the fingerprint.
    pub(crate) async fn enter_user(
        &self,
        name: &str,
        admin: bool,
        cert: &Cert,
        locked: Vec<u8>,
    ) -> Result<String> {
        let fpr = pgp::fingerprint(cert);
        let mut row = UserRow {
            name: name.to_owned(),
            role: if admin { "admin" } else { "user" }.into(),
            status: "active".into(),
            cert: pgp::cert_bytes(cert)?,
            locked_key: locked,
            certifier: self.user.clone(),
            signed_at: now(),
            signature: Vec::new(),
        };
        let msg = trust::user_record(&self.vault_id, &row, &fpr);
        row.signature = self.with_signer(|s| s.sign(&msg)).await?;
        let scope = ScopeRow {
            id: self.next_scope_id().await?,
            name: format!("{PERSONAL_PREFIX}{name}"),
            owner: Some(name.to_owned()),
        };
        let me = self.user.clone();
        let (vault_id, root) = (self.vault_id, self.root_cert.clone());
        let (personal, _) = self
            .with_signer(|s| new_scope(&vault_id, s, &me, scope, &[(name, cert), (ROOT, &root)]))
            .await?;
        // The user and their personal scope in one transaction: a user
        // without a personal scope is never left behind.
        self.store.insert_user(&row, &personal).await?;
        Ok(fpr)
    }

    /// A fresh scope id: random, so two admins creating scopes at once do
    /// not pick the same one (ids 1–15 are reserved for built-in scopes).
    /// The id is signed into the epoch record, so it is chosen up front.
    async fn next_scope_id(&self) -> Result<u32> {
        let used: std::collections::HashSet<u32> =
            self.store.scopes().await?.iter().map(|s| s.id).collect();
        loop {
            let id = u32::from_be_bytes(crate::crypto::random_array());
            if id >= 16 && !used.contains(&id) {
                return Ok(id);
            }
        }
    }

    /// Creates a restricted scope (e.g. a sensitive patient's care team),
    /// granted to the creating admin and the root. Admin only.
    pub async fn create_scope(&self, name: &str) -> Result<()> {
        self.require_admin()?;
        let valid = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with(PERSONAL_PREFIX)
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
            });
        if !valid {
            return Err(Error::UnknownScope(name.chars().take(80).collect()));
        }
        if self.store.scopes().await?.iter().any(|s| s.name == name) {
            return Err(Error::Refused("a scope of that name exists"));
        }
        let mut dir = self.directory().await?;
        let me = dir.verify(&self.user)?;
        let scope = ScopeRow {
            id: self.next_scope_id().await?,
            name: name.to_owned(),
            owner: None,
        };
        let (vault_id, root, user) = (self.vault_id, self.root_cert.clone(), self.user.clone());
        let (made, key) = self
            .with_signer(|s| {
                new_scope(
                    &vault_id,
                    s,
                    &user,
                    scope,
                    &[(&user, &me.cert), (ROOT, &root)],
                )
            })
            .await?;
        self.store.insert_scope(&made).await?;
        // Held from now on, as if granted at login: this session can use
        // and grant the new scope at once.
        self.hold_new_scope(made.scope, key);
        Ok(())
    }

    /// Grants `scope` to `user` for reading and writing (admin only):
    /// wraps every epoch key of the scope this admin holds to the user's
    /// verified certificate. [`Session::grant_rights`] chooses the rights.
    pub async fn grant(&self, user: &str, scope: &str) -> Result<()> {
        self.grant_rights(user, scope, Rights::ReadWrite).await
    }

    /// Grants `scope` to `user` with `rights` (admin only): with
    /// [`Rights::Read`] they read what is sealed under it and write
    /// nothing ([`Error::ReadOnly`]). Granting again to a user who holds
    /// the scope replaces their grants' rights; a rotation keeps each
    /// holder's rights. Only an administrator who may write under the
    /// scope grants writing. Taking the write right from a user who had
    /// it rotates the scope to a new epoch ([`Session::revoke`] does the
    /// same), so the read-write grants of the older epochs, which a store
    /// could put back, no longer let them write under the current key; if
    /// that rotation stops part-way, `rotate` finishes it.
    ///
    /// ```no_run
    /// # async fn demo(s: &medvault::Session) -> medvault::Result<()> {
    /// s.grant_rights("clerk.petit", "clinical", medvault::Rights::Read).await?;
    /// # Ok(()) }
    /// ```
    pub async fn grant_rights(&self, user: &str, scope: &str, rights: Rights) -> Result<()> {
        self.require_admin()?;
        validate_user_name(user)?;
        // Every epoch there is now, not only those this session loaded.
        self.refresh_keys().await?;
        let sid = self.scope_id(scope)?;
        if rights == Rights::ReadWrite {
            let (current, _) = self.current_keys(sid)?;
            // A write right a revocation or downgrade closed under this
            // epoch (its rotation never ran): the scope moves to a new
            // epoch first, whose grant gives it back (FORMAT.md §5.11).
            let mut dir = self.batch_directory().await?;
            let target = dir.verify(user)?;
            if !target.active {
                return Err(Error::UserDisabled(user.to_owned()));
            }
            let fpr = pgp::fingerprint(&target.cert);
            // Closed under every epoch (a recovery of this user cut short
            // after its record): no new epoch gives it back.
            if dir.closes(user, &fpr, (sid, u32::MAX)) {
                return Err(Error::Refused(
                    "this user's key may write nothing any more (a recovery of theirs \
                     stopped part-way): run `recover reset-password` again",
                ));
            }
            if dir.closes(user, &fpr, (sid, current)) {
                self.rotate_new_epoch(scope, None).await?;
            }
        }
        // A writer under any live epoch who is to read only
        // (`writer_upto`: the newest epoch they could write): their grants
        // are made for reading and their key's write right closed in one
        // transaction, then the scope moves to a new epoch, as a revocation
        // does (below). If the rotation stops, `rotate` finishes it.
        let mut writer_upto: Option<u32> = None;
        if rights == Rights::Read {
            let live: Vec<u32> = self.ks().live(sid).map(|(e, _)| e).collect();
            for e in live {
                let writes = self
                    .holders(sid, Some(e))
                    .await?
                    .iter()
                    .any(|(n, _, r)| n == user && *r == Rights::ReadWrite);
                if writes && writer_upto.is_none_or(|w| w < e) {
                    writer_upto = Some(e);
                }
            }
            if writer_upto.is_some() {
                self.current_read_keys(sid)?;
            }
        }
        let ks = self.ks();
        let scope_row = self.scope_row(sid, scope)?;
        // Retired epochs are left out: no cell uses them.
        let held: Vec<(u32, Arc<EpochKeys>)> =
            ks.live(sid).map(|(e, k)| (e, Arc::clone(k))).collect();
        if held.is_empty() {
            return Err(Error::NoAccess(scope_row.name.clone()));
        }
        let mut dir = self.directory().await?;
        let target = dir.verify(user)?;
        if !target.active {
            return Err(Error::UserDisabled(user.to_owned()));
        }
        let mut epochs = held;
        epochs.sort_unstable_by_key(|(e, _)| *e);
        let (vault_id, me) = (self.vault_id, self.user.clone());
        let mut rows = Vec::new();
        for (e, keys) in epochs {
            let key = &keys.raw;
            let row = self
                .with_signer(|s| {
                    sign_grant(
                        &vault_id,
                        s,
                        &scope_row,
                        e,
                        (user, &target.cert, rights),
                        &me,
                        key,
                    )
                })
                .await?;
            rows.push(row);
        }
        match writer_upto {
            // A writer made a reader: with the grants, their key's write
            // right closes up to the newest epoch they could write
            // (FORMAT.md §5.11), so a row they write by SQL under an epoch
            // not yet retired is forged; then the rotation.
            Some(upto) => {
                let by = SignAs {
                    name: &self.user,
                    key: &self.signer,
                };
                let grants = rows
                    .iter()
                    .map(|g| {
                        (
                            crate::sql::keys::PUT_GRANT.to_owned(),
                            crate::sql::keys::grant_values(g),
                        )
                    })
                    .collect();
                self.close_writes(
                    (user, &pgp::fingerprint(&target.cert)),
                    vec![(sid, upto)],
                    by,
                    grants,
                )
                .await?;
                self.rotate_new_epoch(scope, None).await?;
            }
            // Every epoch's grant in one transaction.
            None => self.store.put_grants(&rows).await?,
        }
        // A rotation that chose its recipients before this grant was
        // stored did not wrap its new epoch to this user: do it now.
        self.refresh_keys().await?;
        self.catch_up_grants(sid, rotate::CatchUp::Grantee(user, rights))
            .await?;
        Ok(())
    }

    /// Rotates `scope` to a new epoch never wrapped to `excluded`, with
    /// no progress report.
    async fn rotate_new_epoch(&self, scope: &str, excluded: Option<&str>) -> Result<RotateReport> {
        let opts = RotateOptions {
            new_epoch: true,
            ..RotateOptions::default()
        };
        self.rotate_excluding(scope, &opts, excluded, &mut |_| {
            std::ops::ControlFlow::Continue(())
        })
        .await
    }

    /// Revokes `scope` from `user` (admin holding the scope): removes
    /// every grant of it to them, then rotates the scope to a new epoch
    /// they are not given ([`Session::rotate_with`] with
    /// [`RotateOptions::new_epoch`]), so what is written afterwards is
    /// unreadable to them and, once every row is sealed again, their old
    /// index keys match nothing. It does not take back what they already
    /// read. If the rotation stops part-way, `rotate` (without
    /// `new_epoch`) finishes it.
    pub async fn revoke(&self, user: &str, scope: &str) -> Result<RotateReport> {
        self.revoke_with(user, scope, &mut |_| std::ops::ControlFlow::Continue(()))
            .await
    }

    /// [`Session::revoke`] with a progress report, as for
    /// [`Session::rotate_with`].
    pub async fn revoke_with(
        &self,
        user: &str,
        scope: &str,
        progress: &mut (dyn FnMut(&RotateProgress) -> std::ops::ControlFlow<()> + Send),
    ) -> Result<RotateReport> {
        self.require_admin()?;
        validate_user_name(user)?;
        let sid = self.scope_id(scope)?;
        if user == self.user {
            return Err(Error::Refused(
                "an administrator cannot revoke their own access",
            ));
        }
        let grants: Vec<GrantRow> = self
            .store
            .grants_to(user)
            .await?
            .into_iter()
            .filter(|g| g.scope_id == sid)
            .collect();
        let no_grant = || Error::NoSuchGrant {
            user: user.to_owned(),
            scope: scope.to_owned(),
        };
        let newest = grants.iter().map(|g| g.epoch).max().ok_or_else(no_grant)?;
        let delete = (
            crate::sql::keys::DELETE_GRANTS.to_owned(),
            vec![
                crate::store::Value::Int(i64::from(sid)),
                crate::store::Value::Text(user.to_owned()),
            ],
        );
        // With the grants, the write right of the key they were made to
        // closes (FORMAT.md §5.11), up to the newest epoch there is: a row
        // they write afterwards under the old epoch, before the rotation
        // retires it, is forged. A user whose row does not verify signs
        // nothing genuine: no record.
        self.refresh_keys().await?;
        let newest = newest.max(self.ks().latest.get(&sid).copied().unwrap_or(0));
        let fpr = self
            .directory()
            .await?
            .verify(user)
            .ok()
            .map(|v| pgp::fingerprint(&v.cert));
        let counts = match fpr {
            Some(fpr) => {
                let by = SignAs {
                    name: &self.user,
                    key: &self.signer,
                };
                self.close_writes((user, &fpr), vec![(sid, newest)], by, vec![delete])
                    .await?
            }
            None => self.store.write_all(vec![delete]).await?,
        };
        if counts.first().copied().unwrap_or(0) == 0 {
            return Err(no_grant());
        }
        let opts = RotateOptions {
            new_epoch: true,
            ..RotateOptions::default()
        };
        self.rotate_excluding(scope, &opts, Some(user), progress)
            .await
    }

    /// Disables a user (admin only): a new signed row, their grants and
    /// login material removed in one transaction. Then every shared scope
    /// they held is rotated to a new epoch they are not given, as
    /// [`Session::revoke`] does, so the keys they unwrapped open nothing
    /// written afterwards and, once every row is sealed again, match no
    /// index value. A scope this administrator cannot rotate (it does not
    /// hold its newest epoch) is listed in the report for one who can
    /// (`rotate SCOPE --new-epoch`). If a rotation stops part-way, `rotate`
    /// finishes it.
    ///
    /// ```no_run
    /// # async fn demo(s: &medvault::Session) -> medvault::Result<()> {
    /// let r = s.disable_user("clerk.petit").await?;
    /// for scope in &r.not_rotated {
    ///     eprintln!("{scope} still needs a rotation");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn disable_user(&self, name: &str) -> Result<DisableReport> {
        self.require_admin()?;
        validate_user_name(name)?;
        if name == self.user {
            return Err(Error::Refused("an administrator cannot disable themself"));
        }
        let mut dir = self.directory().await?;
        let target = dir.verify(name)?;
        // The scopes they hold, read before their grants go.
        let held: std::collections::BTreeSet<u32> = self
            .store
            .grants_to(name)
            .await?
            .iter()
            .map(|g| g.scope_id)
            .collect();
        if target.admin {
            let by = SignAs {
                name: &self.user,
                key: &self.signer,
            };
            self.resign_rows_of(&mut dir, &target, by).await?;
        }
        let mut row = dir
            .row(name)
            .cloned()
            .ok_or_else(|| Error::UnknownUser(name.to_owned()))?;
        row.status = "disabled".into();
        row.certifier = self.user.clone();
        row.signed_at = now();
        let msg = trust::user_record(&self.vault_id, &row, &pgp::fingerprint(&target.cert));
        row.signature = self.with_signer(|s| s.sign(&msg)).await?;
        self.store.replace_user(&row).await?;
        // Their key's write right closes under every epoch of every scope
        // (FORMAT.md §5.11): a row they write afterwards by SQL, under an
        // epoch not yet retired (a personal scope is never rotated), is
        // forged. Running this again after it stopped here writes it.
        let by = SignAs {
            name: &self.user,
            key: &self.signer,
        };
        let mut report = DisableReport::default();
        // A failure here does not keep the scopes from being rotated.
        if let Err(e) = self
            .close_writes(
                (name, &pgp::fingerprint(&target.cert)),
                Vec::new(),
                by,
                Vec::new(),
            )
            .await
        {
            report.closed_writes = Some(e.to_string());
        }
        for sid in held {
            let ks = self.ks();
            let Some(scope) = ks.scopes.get(&sid).cloned() else {
                continue;
            };
            if access::is_personal(&scope) {
                continue;
            }
            if !ks.current.contains_key(&sid) {
                report.not_rotated.push(scope.name);
                continue;
            }
            // One scope's rotation failing does not leave the others
            // unrotated: running this again would not find them (the
            // grants are gone).
            match self.rotate_new_epoch(&scope.name, Some(name)).await {
                Ok(_) => report.rotated.push(scope.name),
                Err(e) => report.unfinished.push((scope.name, e.to_string())),
            }
        }
        Ok(report)
    }

    /// Before an administrator is disabled, every row it signed (users it
    /// certified, key epochs it created, grants it made) is checked under
    /// its key and re-signed by this administrator: a disabled key signs
    /// nothing, so those rows would otherwise stop verifying. Rows that do
    /// not verify under its key are not laundered: they stay as they are,
    /// and stay untrusted. If this stops half-way, the rows not yet
    /// re-signed still verify under the (still active) old admin; running
    /// `disable_user` again finishes the job.
    async fn resign_rows_of(
        &self,
        dir: &mut Directory,
        old: &trust::Verified,
        by: SignAs<'_>,
    ) -> Result<()> {
        let me = by.name.to_owned();
        let vid = self.vault_id;
        for name in dir.names() {
            let Some(row) = dir.row(&name).cloned() else {
                continue;
            };
            if row.certifier != old.name || dir.verify(&name).is_err() {
                continue;
            }
            let cert = dir.verify(&name)?.cert;
            let mut new = row;
            new.certifier = me.clone();
            new.signed_at = now();
            let msg = trust::user_record(&vid, &new, &pgp::fingerprint(&cert));
            new.signature = by.key.lock().await.sign(&msg)?;
            self.store.replace_user(&new).await?;
        }
        let scopes: HashMap<u32, ScopeRow> = self
            .store
            .scopes()
            .await?
            .into_iter()
            .map(|s| (s.id, s))
            .collect();
        for ep in self.store.epochs().await? {
            let Some(scope) = scopes.get(&ep.scope_id) else {
                continue;
            };
            // A retirement it signed (FORMAT.md §5.5), signed again.
            if let Some(r) = ep.retired.as_ref().filter(|r| {
                r.by == old.name
                    && pgp::verify(
                        &old.cert,
                        &trust::retire_record(&vid, scope, &ep, r),
                        &r.signature,
                    )
            }) {
                let mut new = ep.clone();
                let mut nr = crate::store::Retirement {
                    by: me.clone(),
                    at: r.at,
                    signature: Vec::new(),
                };
                let msg = trust::retire_record(&vid, scope, &new, &nr);
                nr.signature = by.key.lock().await.sign(&msg)?;
                new.retired = Some(nr);
                self.store
                    .write_all(vec![(
                        crate::sql::keys::RETIRE_EPOCH.to_owned(),
                        crate::sql::keys::retire_values(&new)?,
                    )])
                    .await?;
            }
            if ep.creator != old.name
                || !pgp::verify(
                    &old.cert,
                    &trust::epoch_record(&vid, scope, &ep),
                    &ep.signature,
                )
            {
                continue;
            }
            let mut new = ep;
            new.creator = me.clone();
            let msg = trust::epoch_record(&vid, scope, &new);
            new.signature = by.key.lock().await.sign(&msg)?;
            self.store.resign_epoch(&new).await?;
        }
        for g in self.store.grants_by(&old.name).await? {
            let Some(scope) = scopes.get(&g.scope_id) else {
                continue;
            };
            let grantee_cert = if g.grantee == ROOT {
                self.root_cert.clone()
            } else {
                match dir.verify(&g.grantee) {
                    Ok(v) => v.cert,
                    Err(_) => continue,
                }
            };
            let fpr = pgp::fingerprint(&grantee_cert);
            if !pgp::verify(
                &old.cert,
                &trust::grant_record(&vid, scope, &g, &fpr),
                &g.signature,
            ) {
                continue;
            }
            let mut new = g;
            new.granter = me.clone();
            new.signed_at = now();
            let msg = trust::grant_record(&vid, scope, &new, &fpr);
            new.signature = by.key.lock().await.sign(&msg)?;
            self.store.put_grants(std::slice::from_ref(&new)).await?;
        }
        // Records of closed writes it signed (FORMAT.md §5.11).
        self.resign_closed_writes(old, by).await?;
        // The schema in force, if this administrator signed it: a new
        // version with the same text, signed by this one.
        self.resign_policy_of(old, by).await?;
        Ok(())
    }

    /// All users, with whether their row verifies to the root.
    pub async fn list_users(&self) -> Result<Vec<UserInfo>> {
        let mut dir = self.directory().await?;
        let mut out = Vec::new();
        for name in dir.names() {
            let trusted = dir.verify(&name).is_ok();
            let Some(row) = dir.row(&name).cloned() else {
                continue;
            };
            let fingerprint = pgp::parse_cert(&row.cert)
                .map(|c| pgp::fingerprint(&c))
                .unwrap_or_else(|_| "(malformed)".into());
            out.push(UserInfo {
                name,
                role: row.role,
                status: row.status,
                certifier: row.certifier,
                fingerprint,
                trusted,
            });
        }
        Ok(out)
    }

    /// The root rebuilt from `shares` ([`Session::open_root`]) with the
    /// scopes and epochs recovery works on.
    async fn recovered(&self, shares: &[String]) -> Result<Recovered> {
        let root = self.open_root(shares).await?;
        Ok(Recovered {
            fpr: pgp::fingerprint(&root.cert()),
            signer: tokio::sync::Mutex::new(root.signer()?),
            dec: root.decryptor()?,
            scopes: self
                .store
                .scopes()
                .await?
                .into_iter()
                .map(|s| (s.id, s))
                .collect(),
            epochs: self
                .store
                .epochs()
                .await?
                .into_iter()
                .map(|e| ((e.scope_id, e.epoch), e))
                .collect(),
        })
    }

    /// The root key rebuilt from `shares`, in memory only: combined, the
    /// sealed root opened, and its fingerprint checked against the pinned
    /// one. Every bad share set is [`Error::BadShares`] saying why.
    async fn open_root(&self, shares: &[String]) -> Result<OpenKey> {
        let sealed = self
            .store
            .meta("root_sealed")
            .await?
            .ok_or_else(|| Error::Store("vault metadata root_sealed is missing".into()))?;
        let tsk = recovery::recover(&self.vault_id, &sealed, shares)?;
        let root = OpenKey::parse(&tsk)?;
        if !ct_eq(
            pgp::fingerprint(&root.cert()).as_bytes(),
            pgp::fingerprint(&self.root_cert).as_bytes(),
        ) {
            return Err(Error::BadShares(
                "the recovered key is not this vault's root".into(),
            ));
        }
        Ok(root)
    }

    /// Gives `user`, who lost their password, a new key under
    /// `new_password`, with every grant they had, from k recovery shares
    /// (any logged-in user may run it: the shares are the authority). The
    /// root key is rebuilt in memory only; it certifies the new key and
    /// wraps each epoch key the user held to it again (the root holds every
    /// epoch). An administrator's signed rows are signed again by the root
    /// first, since their old key is gone. On SQLCipher their keyring entry
    /// is replaced in the same transaction. Bad shares, an unknown or
    /// disabled user, or a weak password change nothing. Returns the new
    /// key's fingerprint.
    ///
    /// ```no_run
    /// # async fn demo(s: &medvault::Session, shares: Vec<String>) -> medvault::Result<()> {
    /// let fpr = s
    ///     .recover_reset_password("dr.moreau", "a long new passphrase", &shares)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn recover_reset_password(
        &self,
        user: &str,
        new_password: &str,
        shares: &[String],
    ) -> Result<String> {
        validate_user_name(user)?;
        check_new_password(new_password, user, self.kdf)?;
        let pw = check_password(new_password)?;
        let root = self.recovered(shares).await?;
        let mut dir = self.directory().await?;
        let old = dir.verify(user)?;
        if !old.active {
            return Err(Error::UserDisabled(user.to_owned()));
        }
        let row = dir
            .row(user)
            .cloned()
            .ok_or_else(|| Error::UnknownUser(user.to_owned()))?;
        let (n, kdf, rf) = (user.to_owned(), self.kdf, root.fpr.clone());
        let (cert, locked) = blocking(move || pgp::generate(&n, &pw, kdf, &rf, Some(ROOT))).await?;
        let fpr = pgp::fingerprint(&cert);
        let root_grants: HashMap<(u32, u32), GrantRow> = self
            .store
            .grants_to(ROOT)
            .await?
            .into_iter()
            .map(|g| ((g.scope_id, g.epoch), g))
            .collect();
        let old_fpr = pgp::fingerprint(&old.cert);
        let mut grants = Vec::new();
        for g in self.store.grants_to(user).await? {
            // Only grants that verify (to the old key) are given back.
            let Some(scope) = root.scopes.get(&g.scope_id) else {
                continue;
            };
            let Ok(granter) = dir.signer_cert(&g.granter) else {
                continue;
            };
            if !pgp::verify(
                &granter,
                &trust::grant_record(&self.vault_id, scope, &g, &old_fpr),
                &g.signature,
            ) {
                continue;
            }
            let Some(rg) = root_grants.get(&(g.scope_id, g.epoch)) else {
                return Err(Error::GrantInvalid {
                    scope: scope.name.clone(),
                    reason: "the root holds no grant of this epoch",
                });
            };
            let key = root.open(rg)?;
            // The rights the old grant gave, signed; text from a newer
            // medvault gives no more than reading.
            let rights = Rights::parse(&g.rights).unwrap_or(Rights::Read);
            grants.push(
                root.grant(&self.vault_id, scope, g.epoch, (user, &cert, rights), &key)
                    .await?,
            );
        }
        let mut new = UserRow {
            cert: pgp::cert_bytes(&cert)?,
            locked_key: locked,
            certifier: ROOT.into(),
            signed_at: now(),
            signature: Vec::new(),
            ..row
        };
        new.signature =
            root.signer
                .lock()
                .await
                .sign(&trust::user_record(&self.vault_id, &new, &fpr))?;
        if old.admin {
            let by = SignAs {
                name: ROOT,
                key: &root.signer,
            };
            self.resign_rows_of(&mut dir, &old, by).await?;
        }
        // Their replaced key stays theirs for what it signed until now
        // (rows, and grants as an administrator): FORMAT.md §5.9.
        let by = SignAs {
            name: ROOT,
            key: &root.signer,
        };
        // Dated as the new row: `now()` here could be a second later than
        // the row (re-signing an administrator's rows takes time), and a
        // record newer than the row counts for nothing.
        let replaced = self
            .replaced_key_statement(user, &old.cert, by, new.signed_at)
            .await?;
        // With it, the old key's write right closes under every epoch of
        // every scope but in the batches it signed until now (FORMAT.md
        // §5.11): whoever holds it cannot date a new batch before the
        // replacement.
        self.close_writes((user, &old_fpr), Vec::new(), by, vec![replaced])
            .await?;
        self.store.reset_user(&new, &grants).await?;
        Ok(fpr)
    }

    /// Certifies an administrator from k recovery shares, for a vault whose
    /// administrators are all gone (any logged-in user may run it: the
    /// shares are the authority). An existing user is promoted: their row
    /// signed again by the root with role `admin` (their key and password
    /// stay theirs). A new user needs `new_password`: their key is made
    /// under it, certified by the root, with a personal scope. Either way
    /// the root then wraps to them every live epoch of every scope but
    /// personal ones, so they can administer at once. Running it again
    /// finishes an interrupted run. Returns the names of the scopes granted.
    pub async fn recover_new_admin(
        &self,
        user: &str,
        new_password: Option<&str>,
        shares: &[String],
    ) -> Result<Vec<String>> {
        validate_user_name(user)?;
        if let Some(pw) = new_password {
            check_new_password(pw, user, self.kdf)?;
        }
        let root = self.recovered(shares).await?;
        let mut dir = self.directory().await?;
        let cert = match dir.row(user).cloned() {
            Some(row) => {
                let v = dir.verify(user)?;
                if !v.active {
                    return Err(Error::UserDisabled(user.to_owned()));
                }
                if !v.admin || row.certifier != ROOT {
                    let mut new = UserRow {
                        role: "admin".into(),
                        certifier: ROOT.into(),
                        signed_at: now(),
                        signature: Vec::new(),
                        ..row
                    };
                    let msg = trust::user_record(&self.vault_id, &new, &pgp::fingerprint(&v.cert));
                    new.signature = root.signer.lock().await.sign(&msg)?;
                    self.store.replace_user(&new).await?;
                }
                v.cert
            }
            None => {
                let pw = check_password(new_password.ok_or(Error::Refused(
                    "a new administrator needs a password (they are not a user yet)",
                ))?)?;
                let (n, kdf, rf) = (user.to_owned(), self.kdf, root.fpr.clone());
                let (cert, locked) =
                    blocking(move || pgp::generate(&n, &pw, kdf, &rf, Some(ROOT))).await?;
                let mut row = UserRow {
                    name: user.to_owned(),
                    role: "admin".into(),
                    status: "active".into(),
                    cert: pgp::cert_bytes(&cert)?,
                    locked_key: locked,
                    certifier: ROOT.into(),
                    signed_at: now(),
                    signature: Vec::new(),
                };
                let msg = trust::user_record(&self.vault_id, &row, &pgp::fingerprint(&cert));
                row.signature = root.signer.lock().await.sign(&msg)?;
                let scope = ScopeRow {
                    id: self.next_scope_id().await?,
                    name: format!("{PERSONAL_PREFIX}{user}"),
                    owner: Some(user.to_owned()),
                };
                let root_cert = self.root_cert.clone();
                let (personal, _) = {
                    let mut signer = root.signer.lock().await;
                    new_scope(
                        &self.vault_id,
                        &mut signer,
                        ROOT,
                        scope,
                        &[(user, &cert), (ROOT, &root_cert)],
                    )?
                };
                self.store.insert_user(&row, &personal).await?;
                cert
            }
        };
        // Every live epoch of every shared scope the user lacks, from the
        // root's own grants.
        let have: std::collections::HashSet<(u32, u32)> = self
            .store
            .grants_to(user)
            .await?
            .iter()
            .map(|g| (g.scope_id, g.epoch))
            .collect();
        let mut grants = Vec::new();
        let mut named = std::collections::BTreeSet::new();
        // An epoch under which a record closed this key's write right
        // (FORMAT.md §5.11: a revocation whose rotation never ran) is
        // granted for reading: as an administrator they rotate it, and
        // the new epoch is theirs to write.
        let fpr = pgp::fingerprint(&cert);
        let mut closed_dir = self.batch_directory().await?;
        for g in self.store.grants_to(ROOT).await? {
            let (Some(scope), Some(epoch)) = (
                root.scopes.get(&g.scope_id),
                root.epochs.get(&(g.scope_id, g.epoch)),
            ) else {
                continue;
            };
            if scope.owner.is_some()
                || have.contains(&(g.scope_id, g.epoch))
                || !dir.epoch_signed(scope, epoch)
                || dir.retirement_signed(scope, epoch)
            {
                continue;
            }
            let Ok(granter) = dir.signer_cert(&g.granter) else {
                continue;
            };
            if !pgp::verify(
                &granter,
                &trust::grant_record(&self.vault_id, scope, &g, &root.fpr),
                &g.signature,
            ) {
                continue;
            }
            let key = root.open(&g)?;
            let rights = if closed_dir.closes(user, &fpr, (g.scope_id, g.epoch)) {
                Rights::Read
            } else {
                Rights::ReadWrite
            };
            grants.push(
                root.grant(&self.vault_id, scope, g.epoch, (user, &cert, rights), &key)
                    .await?,
            );
            named.insert(scope.name.clone());
        }
        if !grants.is_empty() {
            self.store.put_grants(&grants).await?;
        }
        Ok(named.into_iter().collect())
    }

    /// Checks recovery shares: combines them, opens the sealed root key,
    /// and checks it is this vault's root (its fingerprint is the pinned
    /// one). Returns the root fingerprint.
    pub async fn check_recovery(&self, shares: &[String]) -> Result<String> {
        let root = self.recovered(shares).await?;
        let fpr = root.fpr.clone();
        // The root must be able to read what it was granted: each grant's
        // signature is checked first (a row the database planted is an
        // untrusted grant, not a sign of bad shares), then its key must
        // unwrap and match its epoch's commitment.
        let mut dir = self.directory().await?;
        for g in self.store.grants_to(ROOT).await? {
            let what = || Error::BadSignature {
                what: format!("grant of scope #{} to the root", g.scope_id),
            };
            let scope = root.scopes.get(&g.scope_id).ok_or_else(what)?;
            root.epochs.get(&(g.scope_id, g.epoch)).ok_or_else(what)?;
            let granter = dir.signer_cert(&g.granter).map_err(|_| what())?;
            if !pgp::verify(
                &granter,
                &trust::grant_record(&self.vault_id, scope, &g, &fpr),
                &g.signature,
            ) {
                return Err(what());
            }
            root.open(&g)?;
        }
        Ok(fpr)
    }
}
