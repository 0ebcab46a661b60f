//! The embedded store: one SQLCipher file, opened with a random raw key
//! that the keyring file beside it wraps to each user.
//!
//! The async API is served by `spawn_blocking` over one connection behind a
//! mutex: SQLite serialises writers anyway, and every method is one short
//! transaction.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use zeroize::Zeroizing;

use super::keyring::{self, Entry, Keyring};
use super::{
    Dialect, EpochRow, Genesis, GrantRow, NewScope, PolicyRow, SchemaStep, ScopeRow, Store,
    StoredColumn, TableSpec, UserRow, Value,
};
use crate::crypto::secret::DbKey;
use crate::error::{Error, Result};
use crate::keys::pgp;
use crate::sql::{self, keys, Cell};
use crate::vault::trust::ROOT;

mod embedded {
    refinery::embed_migrations!("migrations/sqlite");
}

/// SQLCipher page cache: 64 MiB. Blind-index B-trees are written at random
/// and every cache miss is a page decrypt (NOTES.md: 18k → 46k rows/s).
const CACHE_KIB: i64 = 65536;

/// The SQLCipher store.
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    keyring_path: PathBuf,
    /// The database key in force; replaced when it is rotated.
    key: KeySlot,
}

/// The database key a store (and each of its operations) uses: replaced
/// whole when the key is rotated (FORMAT.md §7.2).
type KeySlot = Arc<std::sync::RwLock<Arc<DbKey>>>;

fn key_slot(key: DbKey) -> KeySlot {
    Arc::new(std::sync::RwLock::new(Arc::new(key)))
}

fn sql_err(path: &Path, e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if matches!(f.code, ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) {
            return Error::DatabaseCorrupt(path.to_owned());
        }
        // SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE.
        if matches!(f.extended_code, 1555 | 2067) {
            return Error::Duplicate(path.display().to_string());
        }
    }
    // rusqlite messages name tables and constraints, never bound values.
    Error::Store(e.to_string())
}

fn file_salt(path: &Path) -> Option<[u8; 16]> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut salt = [0u8; 16];
    f.read_exact(&mut salt).ok()?;
    Some(salt)
}

/// Held while SQLCipher is given a key. SQLCipher sets up its crypto
/// provider when a connection is first keyed; with OpenSSL built from
/// source (`vendored-openssl`), two connections keyed at the same moment
/// early in a process were seen to fail with "An error occurred with
/// PRAGMA key or rekey" (CI, ten stores made at once). Keying takes
/// microseconds with a raw key, so it is done one connection at a time.
static KEYING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn open_keyed(path: &Path, key: &DbKey, create: bool) -> rusqlite::Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    // SQLCipher logs "hmac check failed" to stderr by itself on a wrong key;
    // our error says it better, and nothing of SQLCipher's should reach a
    // user's terminal.
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
    let pragma = Zeroizing::new(format!(
        "PRAGMA key = \"x'{}'\";",
        hex::encode(key.expose())
    ));
    {
        let _one = KEYING.lock().unwrap_or_else(|p| p.into_inner());
        conn.execute_batch(&pragma)?;
    }
    Ok(conn)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "PRAGMA cipher_log_level = NONE;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -{CACHE_KIB};"
    ))
}

fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_set(
        conn,
        &mut embedded::migrations::runner(),
        &super::MEDVAULT_MIGRATIONS,
    )
    .map(|_| ())
}

/// Runs `runner`'s migrations not run yet, with their history in
/// `set.history` (checked before refinery reads it); the names run.
fn migrate_set(
    conn: &mut Connection,
    runner: &mut refinery::Runner,
    set: &super::MigrationSet,
) -> Result<Vec<String>> {
    let has_history = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = ?1",
            [set.history],
            |r| r.get::<_, i64>(0),
        )
        .map_err(|e| Error::Migration(format!("cannot read the schema: SQLite error {e}")))?;
    if has_history > 0 {
        let mut st = conn
            .prepare(&sql::migration_history(set.history))
            .map_err(|e| Error::Migration(format!("cannot read the migration history: {e}")))?;
        let rows = st
            .query_map([], cells)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| Error::Migration(format!("cannot read the migration history: {e}")))?;
        sql::check_history(set.history, rows)?;
    }
    runner
        .set_migration_table_name(set.history)
        .run(conn)
        .map(|r| {
            r.applied_migrations()
                .iter()
                .map(|m| m.to_string())
                .collect()
        })
        .map_err(|e| Error::Migration(super::migration_detail(&e)))
}

impl SqliteStore {
    /// Creates a new vault file and its keyring. On any failure the files
    /// it made are removed, so nothing is left half-created.
    pub fn create(
        path: &Path,
        key: DbKey,
        genesis: &Genesis,
        vault_id: [u8; 16],
        root_fingerprint: String,
        admin_cert: &sequoia_openpgp::Cert,
    ) -> Result<SqliteStore> {
        let keyring_path = super::StoreUrl::keyring_path(path);
        if path.exists() || keyring_path.exists() {
            return Err(Error::VaultExists(path.display().to_string()));
        }
        let result = Self::create_inner(
            path,
            &keyring_path,
            key,
            genesis,
            vault_id,
            root_fingerprint,
            admin_cert,
        );
        if result.is_err() {
            remove_vault_files(path, &keyring_path);
        }
        result
    }

    fn create_inner(
        path: &Path,
        keyring_path: &Path,
        key: DbKey,
        genesis: &Genesis,
        vault_id: [u8; 16],
        root_fingerprint: String,
        admin_cert: &sequoia_openpgp::Cert,
    ) -> Result<SqliteStore> {
        let mut conn = open_keyed(path, &key, true).map_err(|e| sql_err(path, e))?;
        configure(&conn).map_err(|e| sql_err(path, e))?;
        migrate(&mut conn)?;
        {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| sql_err(path, e))?;
            for (k, v) in &genesis.meta {
                exec(
                    &tx,
                    keys::INSERT_META,
                    &[Value::Text(k.clone()), Value::Blob(v.clone())],
                )
                .map_err(|e| sql_err(path, e))?;
            }
            insert_user_row(&tx, &genesis.admin).map_err(|e| sql_err(path, e))?;
            for s in &genesis.scopes {
                exec(&tx, keys::INSERT_SCOPE, &keys::scope_values(s))
                    .map_err(|e| sql_err(path, e))?;
            }
            for ep in &genesis.epochs {
                exec(&tx, keys::INSERT_EPOCH, &keys::epoch_values(ep))
                    .map_err(|e| sql_err(path, e))?;
            }
            for g in &genesis.grants {
                put_grant_row(&tx, g).map_err(|e| sql_err(path, e))?;
            }
            tx.commit().map_err(|e| sql_err(path, e))?;
        }
        // Make sure page 1 (with the salt) is on disk before recording it.
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(|e| sql_err(path, e))?;
        let salt =
            file_salt(path).ok_or_else(|| Error::Store("new database has no header".into()))?;
        let mut kr = Keyring::new(vault_id, salt, root_fingerprint);
        kr.entries.push(Entry {
            name: genesis.admin.name.clone(),
            locked_key: genesis.admin.locked_key.clone(),
            wrapped_db_key: pgp::wrap(&[admin_cert], key.expose())?,
        });
        let entry = root_entry(&conn, &key, &kr).map_err(|e| e.at(path))?;
        kr.entries.push(entry);
        let digest = kr.write(&key, keyring_path)?;
        record_keyring_digest(&conn, &digest).map_err(|e| sql_err(path, e))?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_owned(),
            keyring_path: keyring_path.to_owned(),
            key: key_slot(key),
        })
    }

    /// Creates an empty vault file (schema and `vault_id` only) and its
    /// keyring, for `copy`. The keyring lets every active user of the
    /// source open it with their own password.
    pub fn create_empty(
        path: &Path,
        key: DbKey,
        vault_id: [u8; 16],
        keyring: Keyring,
    ) -> Result<SqliteStore> {
        let keyring_path = super::StoreUrl::keyring_path(path);
        if path.exists() || keyring_path.exists() {
            return Err(Error::VaultExists(path.display().to_string()));
        }
        let result = (|| {
            let mut conn = open_keyed(path, &key, true).map_err(|e| sql_err(path, e))?;
            configure(&conn).map_err(|e| sql_err(path, e))?;
            migrate(&mut conn)?;
            exec(
                &conn,
                keys::INSERT_META,
                &[
                    Value::Text("vault_id".into()),
                    Value::Blob(vault_id.to_vec()),
                ],
            )
            .map_err(|e| sql_err(path, e))?;
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
                .map_err(|e| sql_err(path, e))?;
            let mut kr = keyring;
            kr.db_salt =
                file_salt(path).ok_or_else(|| Error::Store("new database has no header".into()))?;
            let digest = kr.write(&key, &keyring_path)?;
            record_keyring_digest(&conn, &digest).map_err(|e| sql_err(path, e))?;
            Ok(SqliteStore {
                conn: Arc::new(Mutex::new(conn)),
                path: path.to_owned(),
                keyring_path: keyring_path.clone(),
                key: key_slot(key),
            })
        })();
        if result.is_err() {
            remove_vault_files(path, &keyring_path);
        }
        result
    }

    /// Opens an existing vault file with a database key unwrapped from
    /// `keyring` (whose MAC the caller verified with that key), and
    /// reconciles the keyring files with the database (FORMAT.md §7.1).
    /// Returns the store and the keyring in force.
    pub fn open(path: &Path, key: DbKey, keyring: &Keyring) -> Result<(SqliteStore, Keyring)> {
        Self::open_inner(path, key, keyring, false)
    }

    /// Opens a vault file whose database key was rotated but whose new
    /// keyring, `<keyring>.next`, was not yet put in force (a crash after
    /// the rekey, FORMAT.md §7.2): `key` comes from that keyring, and
    /// since it opens the file, that keyring is the one in force.
    pub fn open_after_rotation(
        path: &Path,
        key: DbKey,
        next: &Keyring,
    ) -> Result<(SqliteStore, Keyring)> {
        Self::open_inner(path, key, next, true)
    }

    fn open_inner(
        path: &Path,
        key: DbKey,
        keyring: &Keyring,
        adopt_next: bool,
    ) -> Result<(SqliteStore, Keyring)> {
        if !path.exists() {
            return Err(Error::NoVault(path.display().to_string()));
        }
        let mut conn = open_keyed(path, &key, false).map_err(|e| sql_err(path, e))?;
        let probe: rusqlite::Result<i64> =
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0));
        if let Err(e) = probe {
            let classified = sql_err(path, e);
            if matches!(classified, Error::DatabaseCorrupt(_)) {
                // Page 1 did not authenticate. If the file still carries the
                // salt this keyring was made with, it is our file, damaged;
                // otherwise the key belongs to another database.
                return Err(if file_salt(path) == Some(keyring.db_salt) {
                    Error::DatabaseCorrupt(path.to_owned())
                } else {
                    Error::WrongDatabaseKey(path.to_owned())
                });
            }
            return Err(classified);
        }
        configure(&conn).map_err(|e| sql_err(path, e))?;
        migrate(&mut conn)?;
        let vid: Option<Vec<u8>> = conn
            .query_row(keys::META_VALUE, ["vault_id"], |r| r.get(0))
            .optional()
            .map_err(|e| sql_err(path, e))?;
        if vid.as_deref() != Some(&keyring.vault_id[..]) {
            return Err(Error::WrongDatabaseKey(path.to_owned()));
        }
        let keyring_path = super::StoreUrl::keyring_path(path);
        if adopt_next {
            let next = keyring::next_path(&keyring_path);
            let bytes = keyring::read_bounded(&next).map_err(|e| Error::io(&next, e))?;
            record_keyring_digest(&conn, &keyring::digest_of(&bytes))
                .map_err(|e| sql_err(path, e))?;
        }
        let mut in_force = reconcile_keyring(&conn, &key, &keyring_path)?;
        // (Not for a copy cut short before its metadata: it has no root
        // to enter yet.)
        let has_root = conn
            .query_row(keys::META_VALUE, ["root_sealed"], |_| Ok(()))
            .optional()
            .map_err(|e| sql_err(path, e))?
            .is_some();
        if has_root && in_force.entry(ROOT).is_none() {
            // A vault made, or copied, before the root had an entry: it
            // gets one now, so recovery never needs a user who can log in.
            in_force = add_root_entry(&mut conn, &key, &keyring_path).map_err(|e| e.at(path))?;
        }
        Ok((
            SqliteStore {
                conn: Arc::new(Mutex::new(conn)),
                path: path.to_owned(),
                keyring_path,
                key: key_slot(key),
            },
            in_force,
        ))
    }

    /// Runs a short read (a point lookup by index) on the calling thread
    /// when the connection is free: a lookup takes microseconds, and a
    /// hand-off to the blocking pool costs as much again
    /// (BENCHMARKS.md). When another statement holds the connection, it
    /// waits on the blocking pool as [`Self::run`] does.
    async fn run_short<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Ctx) -> Result<T> + Send + 'static,
    {
        match self.try_inline(f) {
            Ok(done) => done,
            Err(f) => self.run(f).await,
        }
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            path: self.path.clone(),
            keyring_path: self.keyring_path.clone(),
            key: Arc::clone(&self.key.read().unwrap_or_else(|p| p.into_inner())),
            key_slot: Arc::clone(&self.key),
        }
    }

    /// Runs `f` now if the connection is free; gives it back if not.
    fn try_inline<T, F>(&self, f: F) -> std::result::Result<Result<T>, F>
    where
        F: FnOnce(&mut Connection, &Ctx) -> Result<T>,
    {
        let mut guard = match self.conn.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Err(f),
        };
        let ctx = self.ctx();
        Ok(explain(&ctx, f(&mut guard, &ctx)))
    }

    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Ctx) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let ctx = self.ctx();
        crate::runtime::blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            explain(&ctx, f(&mut guard, &ctx))
        })
        .await
    }
}

/// A file that stops authenticating under the key this operation started
/// with, beside a keyring whose MAC no longer verifies under that key
/// either: another session changed the database key (FORMAT.md §7.2, a
/// user disabled). Said as such, not as damage.
fn explain<T>(ctx: &Ctx, r: Result<T>) -> Result<T> {
    match r {
        Err(Error::DatabaseCorrupt(p)) => {
            let rekeyed = Keyring::read(&ctx.keyring_path)
                .is_ok_and(|kr| kr.verify(&ctx.key, &ctx.keyring_path).is_err());
            Err(if rekeyed {
                Error::DatabaseKeyChanged(p)
            } else {
                Error::DatabaseCorrupt(p)
            })
        }
        other => other,
    }
}

/// Removes what a failed create left behind, so nothing is half-created.
fn remove_vault_files(path: &Path, keyring_path: &Path) {
    for p in [
        path.to_owned(),
        keyring_path.to_owned(),
        wal(path, "-wal"),
        wal(path, "-shm"),
    ] {
        let _ = std::fs::remove_file(p);
    }
}

fn wal(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

struct Ctx {
    path: PathBuf,
    keyring_path: PathBuf,
    /// The key in force when the operation started.
    key: Arc<DbKey>,
    key_slot: KeySlot,
}

impl Ctx {
    fn e(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        move |e| sql_err(&self.path, e)
    }

    /// Re-reads the keyring, checks it, applies `edit`, and writes the
    /// result beside it as `<keyring>.next`, recording its digest in
    /// `vault_meta` inside `tx` (FORMAT.md §7.1). The caller commits `tx`
    /// and then installs the new keyring: the keyring in force changes
    /// exactly when the database change commits. A crash between the two is
    /// finished at the next open ([`SqliteStore::open`]); a failure before
    /// the commit leaves the old keyring in force.
    fn edit_keyring(
        &self,
        tx: &Connection,
        edit: impl FnOnce(&mut Keyring) -> Result<()>,
    ) -> Result<PendingKeyring> {
        let mut kr = self.keyring_in_force()?;
        edit(&mut kr)?;
        let pending = PendingKeyring::new(&self.keyring_path);
        let digest = kr.write(&self.key, &pending.next)?;
        record_keyring_digest(tx, &digest).map_err(self.e())?;
        Ok(pending)
    }

    /// The keyring file, its MAC checked under this operation's key.
    fn keyring_in_force(&self) -> Result<Keyring> {
        let kr = Keyring::read(&self.keyring_path)?;
        kr.verify(&self.key, &self.keyring_path)?;
        Ok(kr)
    }

    /// Rotates the database key (FORMAT.md §7.2), after a user is disabled:
    /// they may have kept the old one. Runs with the connection held, so no
    /// other statement of this store runs meanwhile. Every entry of the
    /// keyring in force is re-wrapped to a new random key and written as
    /// `<keyring>.next` under it; `PRAGMA rekey` re-encrypts every page;
    /// then the digest is recorded and the new keyring put in force. A
    /// crash after the rekey is finished at the next open (the keyring's
    /// key no longer opens the file, `.next`'s does); a crash or failure
    /// before it leaves the old key in force, and disabling again rotates.
    fn rotate_db_key(&self, c: &Connection) -> Result<()> {
        let new = DbKey::generate();
        let mut kr = self.keyring_in_force()?;
        let root_cert = meta_cert(c, &kr)?;
        for e in kr.entries.iter_mut() {
            e.wrapped_db_key = if e.name == ROOT {
                pgp::wrap(&[&root_cert], new.expose())?
            } else {
                let cert = pgp::LockedKey::parse(&e.locked_key)?.cert();
                pgp::wrap(&[&cert], new.expose())?
            };
        }
        let mut pending = PendingKeyring::new(&self.keyring_path);
        let digest = kr.write(&new, &pending.next)?;
        let pragma = Zeroizing::new(format!(
            "PRAGMA rekey = \"x'{}'\";",
            hex::encode(new.expose())
        ));
        {
            let _one = KEYING.lock().unwrap_or_else(|p| p.into_inner());
            c.execute_batch(&pragma).map_err(self.e())?;
        }
        // From here on the file is under the new key: `.next` must stay
        // (if anything below fails, the next open installs it).
        pending.installing = true;
        *self.key_slot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
        record_keyring_digest(c, &digest).map_err(self.e())?;
        pending.install()
    }
}

/// A keyring written as `<keyring>.next`, waiting for its database
/// transaction to commit. Dropped without [`PendingKeyring::install`] (the
/// transaction failed), it is removed.
struct PendingKeyring {
    next: PathBuf,
    path: PathBuf,
    installing: bool,
}

impl PendingKeyring {
    /// A pending keyring beside `path`, not yet written.
    fn new(path: &Path) -> PendingKeyring {
        PendingKeyring {
            next: keyring::next_path(path),
            path: path.to_owned(),
            installing: false,
        }
    }

    /// Puts the new keyring in force (after the commit). If the rename
    /// fails, `.next` stays: the next open installs it.
    fn install(mut self) -> Result<()> {
        self.installing = true;
        std::fs::rename(&self.next, &self.path).map_err(|e| Error::io(&self.path, e))?;
        keyring::sync_dir(&self.path);
        Ok(())
    }
}

impl Drop for PendingKeyring {
    fn drop(&mut self) {
        if !self.installing {
            let _ = std::fs::remove_file(&self.next);
        }
    }
}

/// Records the digest of the keyring in force (FORMAT.md §7.1).
fn record_keyring_digest(c: &Connection, digest: &[u8; 32]) -> rusqlite::Result<usize> {
    c.execute(
        "INSERT OR REPLACE INTO vault_meta (key, value) VALUES ('keyring_digest', ?1)",
        [&digest[..]],
    )
}

/// Brings the keyring files in line with the database at open: a
/// `<keyring>.next` whose digest the database recorded was committed and
/// is installed; any other is removed (its transaction never committed).
/// Then the keyring in force must be the one the database records: an
/// older keyring put back (one that still enrols a disabled user, say) is
/// tampering even with a valid MAC. Vaults that record no digest yet (made
/// before this check) are not checked.
fn reconcile_keyring(conn: &Connection, key: &DbKey, keyring_path: &Path) -> Result<Keyring> {
    let path_err = |e| Error::io(keyring_path, e);
    let mut st = conn
        .prepare(keys::META_VALUE)
        .map_err(|e| sql_err(keyring_path, e))?;
    let recorded = st
        .query_map(["keyring_digest"], cells)
        .map_err(|e| sql_err(keyring_path, e))?
        .map(|r| sql::meta_value(r.map_err(|e| sql_err(keyring_path, e))?))
        .next()
        .transpose()?;
    let next = keyring::next_path(keyring_path);
    if let Ok(bytes) = keyring::read_bounded(&next) {
        if recorded.as_deref() == Some(&keyring::digest_of(&bytes)[..]) {
            std::fs::rename(&next, keyring_path).map_err(path_err)?;
            keyring::sync_dir(keyring_path);
        } else {
            std::fs::remove_file(&next).map_err(path_err)?;
        }
    }
    let bytes = keyring::read_bounded(keyring_path).map_err(path_err)?;
    if let Some(d) = &recorded {
        if !crate::crypto::secret::ct_eq(d, &keyring::digest_of(&bytes)) {
            return Err(Error::KeyringTampered(keyring_path.to_owned()));
        }
    }
    let kr = Keyring::from_bytes(&bytes).map_err(|reason| Error::KeyringCorrupt {
        path: keyring_path.to_owned(),
        reason: reason.to_owned(),
    })?;
    kr.verify(key, keyring_path)?;
    Ok(kr)
}

/// The cells of a row, as stored: cannot fail on the value's type, which
/// the checked decoders of [`crate::sql`] judge afterwards.
fn sqlite_value(v: &Value) -> rusqlite::types::Value {
    match v {
        Value::Null => rusqlite::types::Value::Null,
        Value::Int(i) => rusqlite::types::Value::Integer(*i),
        Value::Text(s) => rusqlite::types::Value::Text(s.clone()),
        Value::Blob(b) => rusqlite::types::Value::Blob(b.clone()),
    }
}

fn cells(r: &rusqlite::Row<'_>) -> rusqlite::Result<Vec<Cell>> {
    use rusqlite::types::ValueRef;
    (0..r.as_ref().column_count())
        .map(|i| {
            Ok(match r.get_ref(i)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(n) => Cell::Int(n),
                ValueRef::Text(b) | ValueRef::Blob(b) => Cell::Bytes(b.to_vec()),
                ValueRef::Real(_) => Cell::Other,
            })
        })
        .collect()
}

/// Runs one read statement of the SQL layer; every row as cells.
fn select_cells(c: &Connection, x: &Ctx, sql: &str, params: &[Value]) -> Result<Vec<Vec<Cell>>> {
    let mut st = c.prepare_cached(sql).map_err(x.e())?;
    let rows = st
        .query_map(
            rusqlite::params_from_iter(params.iter().map(sqlite_value)),
            cells,
        )
        .map_err(x.e())?;
    rows.map(|r| r.map_err(x.e())).collect()
}

/// Refuses a guarded write ([`Store::write_guarded`]) whose guard does not
/// answer what its writer expects: [`Error::StateMoved`].
fn check_guard(c: &Connection, x: &Ctx, g: &super::Guard) -> Result<()> {
    let rows = select_cells(c, x, &g.sql, &g.params)?;
    if g.holds(&rows) {
        Ok(())
    } else {
        Err(Error::StateMoved)
    }
}

/// A value `export` cannot carry over as it is.
fn bad_export(t: &TableSpec, i: usize, expected: &'static str) -> Error {
    Error::BadStoredValue {
        table: t.name,
        column: t.columns.get(i).copied().unwrap_or("?"),
        expected,
    }
}

/// Errors of the keyring's root entry, before they are tied to a path.
enum RootEntryError {
    Sql(rusqlite::Error),
    Other(Error),
}

impl RootEntryError {
    fn at(self, path: &Path) -> Error {
        match self {
            RootEntryError::Sql(e) => sql_err(path, e),
            RootEntryError::Other(e) => e,
        }
    }
}

impl From<rusqlite::Error> for RootEntryError {
    fn from(e: rusqlite::Error) -> Self {
        RootEntryError::Sql(e)
    }
}

impl From<Error> for RootEntryError {
    fn from(e: Error) -> Self {
        RootEntryError::Other(e)
    }
}

fn meta_blob(c: &Connection, key: &str) -> std::result::Result<Vec<u8>, RootEntryError> {
    let v: Option<Vec<u8>> = c
        .query_row(keys::META_VALUE, [key], |r| r.get(0))
        .optional()?;
    v.ok_or_else(|| RootEntryError::Other(Error::Store(format!("vault metadata {key} is missing"))))
}

/// The root certificate from `vault_meta`, which must be the one the
/// keyring names (a database-key holder who swapped it would otherwise
/// be given the next database key).
fn meta_cert(c: &Connection, kr: &Keyring) -> Result<sequoia_openpgp::Cert> {
    let bytes = meta_blob(c, "root_cert").map_err(|e| match e {
        RootEntryError::Sql(e) => Error::Store(format!("reading the root certificate: {e}")),
        RootEntryError::Other(e) => e,
    })?;
    let cert = pgp::parse_cert(&bytes)?;
    if !crate::crypto::secret::ct_eq(
        pgp::fingerprint(&cert).as_bytes(),
        kr.root_fingerprint.as_bytes(),
    ) {
        return Err(Error::BadSignature {
            what: "root certificate in vault_meta (not the root the keyring names)".into(),
        });
    }
    Ok(cert)
}

/// The keyring entry of the root (FORMAT.md §7): the sealed root key as
/// `vault_meta.root_sealed` holds it, and the database key wrapped to the
/// root certificate. With k recovery shares it opens the file when no
/// user can log in.
fn root_entry(
    c: &Connection,
    key: &DbKey,
    kr: &Keyring,
) -> std::result::Result<Entry, RootEntryError> {
    let sealed = meta_blob(c, "root_sealed")?;
    let cert = meta_cert(c, kr)?;
    Ok(Entry {
        name: ROOT.to_owned(),
        locked_key: sealed,
        wrapped_db_key: pgp::wrap(&[&cert], key.expose())?,
    })
}

/// Adds the root's entry to the keyring in force, as a keyring edit
/// (§7.1) of its own. Returns the keyring now in force.
fn add_root_entry(
    conn: &mut Connection,
    key: &DbKey,
    keyring_path: &Path,
) -> std::result::Result<Keyring, RootEntryError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut kr = Keyring::read(keyring_path)?;
    kr.verify(key, keyring_path)?;
    if kr.entry(ROOT).is_none() {
        let entry = root_entry(&tx, key, &kr)?;
        kr.entries.push(entry);
    }
    let pending = PendingKeyring::new(keyring_path);
    let digest = kr.write(key, &pending.next)?;
    record_keyring_digest(&tx, &digest)?;
    tx.commit()?;
    pending.install()?;
    Ok(kr)
}

/// Puts `row`'s keyring entry (its locked key, the database key wrapped
/// to it) in place of any entry or disabled mark of that name.
fn enter(kr: &mut Keyring, row: &UserRow, wrapped_db_key: Vec<u8>) {
    kr.entries.retain(|e| e.name != row.name);
    kr.disabled.retain(|d| d != &row.name);
    kr.entries.push(Entry {
        name: row.name.clone(),
        locked_key: row.locked_key.clone(),
        wrapped_db_key,
    });
}

/// Runs `st` with `params`, decoding every row with `decode`.
/// The columns of table `?1` as [`sql::stored_column`] reads them.
const CATALOGUE: &str = "SELECT name, upper(type) = 'BLOB', \"notnull\" = 0 \
                         FROM pragma_table_info(?1) ORDER BY cid";

/// Another administrator stored this policy version first.
pub(crate) fn policy_race(version: u64) -> Error {
    Error::Store(format!(
        "schema version {version} was applied by another administrator meanwhile; \
         log in again to see it, then apply yours"
    ))
}

fn query_rows<T, P: rusqlite::Params>(
    x: &Ctx,
    st: &mut rusqlite::Statement<'_>,
    params: P,
    decode: impl Fn(Vec<Cell>) -> Result<T>,
) -> Result<Vec<T>> {
    let rows = st.query_map(params, cells).map_err(x.e())?;
    rows.map(|r| decode(r.map_err(x.e())?)).collect()
}

/// Runs one statement of the SQL layer with its values.
fn exec(c: &Connection, sql: &str, values: &[Value]) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?
        .execute(rusqlite::params_from_iter(values.iter().map(sqlite_value)))
}

fn user_exists() -> &'static str {
    keys::user_exists(Dialect::Sqlite)
}

fn insert_user_row(c: &Connection, u: &UserRow) -> rusqlite::Result<usize> {
    exec(c, keys::INSERT_USER, &keys::user_values(u))
}

fn insert_new_scope(c: &Connection, s: &NewScope) -> rusqlite::Result<()> {
    exec(c, keys::INSERT_SCOPE, &keys::scope_values(&s.scope))?;
    exec(c, keys::INSERT_EPOCH, &keys::epoch_values(&s.epoch))?;
    for g in &s.grants {
        put_grant_row(c, g)?;
    }
    Ok(())
}

fn put_grant_row(c: &Connection, g: &GrantRow) -> rusqlite::Result<usize> {
    exec(c, keys::PUT_GRANT, &keys::grant_values(g))
}

impl SqliteStore {
    /// Runs `statements` in one transaction, then `guard` if there is one
    /// (just before the commit; the write lock is held from `BEGIN
    /// IMMEDIATE`, so nothing it read changes before the commit).
    async fn write_checked(
        &self,
        guard: Option<super::Guard>,
        statements: Vec<(String, Vec<Value>)>,
    ) -> Result<Vec<u64>> {
        self.run(move |c, x| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(x.e())?;
            let mut changed = Vec::with_capacity(statements.len());
            for (sql, params) in &statements {
                changed.push(exec(&tx, sql, params).map_err(x.e())? as u64);
            }
            if let Some(g) = &guard {
                check_guard(&tx, x, g)?;
            }
            tx.commit().map_err(x.e())?;
            Ok(changed)
        })
        .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn describe(&self) -> String {
        format!("sqlcipher:{}", self.path.display())
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn select(&self, sql: String, params: Vec<Value>) -> Result<Vec<Vec<Cell>>> {
        self.run(move |c, x| select_cells(c, x, &sql, &params))
            .await
    }

    async fn lookup(&self, sql: String, params: Vec<Value>) -> Result<Vec<Vec<Cell>>> {
        self.run_short(move |c, x| select_cells(c, x, &sql, &params))
            .await
    }

    async fn write_all(&self, statements: Vec<(String, Vec<Value>)>) -> Result<Vec<u64>> {
        self.write_checked(None, statements).await
    }

    async fn write_guarded(
        &self,
        guard: &super::Guard,
        statements: Vec<(String, Vec<Value>)>,
    ) -> Result<Vec<u64>> {
        self.write_checked(Some(guard.clone()), statements).await
    }

    async fn migrate_app(&self, migrations: Vec<refinery::Migration>) -> Result<Vec<String>> {
        self.run(move |c, _| {
            migrate_set(
                c,
                &mut refinery::Runner::new(&migrations),
                &super::APP_MIGRATIONS,
            )
        })
        .await
    }

    async fn write_stream(
        &self,
        guard: Option<super::Guard>,
        mut rx: super::StatementStream,
    ) -> Result<Vec<u64>> {
        self.run(move |c, x| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(x.e())?;
            let mut changed = Vec::new();
            while let Some(msg) = rx.blocking_recv() {
                let Some(chunk) = msg else {
                    if let Some(g) = &guard {
                        check_guard(&tx, x, g)?;
                    }
                    tx.commit().map_err(x.e())?;
                    return Ok(changed);
                };
                for (sql, params) in &chunk {
                    changed.push(exec(&tx, sql, params).map_err(x.e())? as u64);
                }
            }
            // The sender went away without a commit: roll back.
            Err(Error::Interrupted)
        })
        .await
    }

    async fn latest_policy(&self) -> Result<Option<PolicyRow>> {
        self.run(|c, x| {
            let mut st = c.prepare_cached(&keys::latest_policy()).map_err(x.e())?;
            query_rows(x, &mut st, [], sql::policy_row).map(|v| v.into_iter().next())
        })
        .await
    }

    async fn table_columns(&self, table: &str) -> Result<Option<Vec<StoredColumn>>> {
        let table = table.to_owned();
        self.run(move |c, x| {
            let mut st = c.prepare_cached(CATALOGUE).map_err(x.e())?;
            let cols = query_rows(x, &mut st, [table], sql::stored_column)?;
            Ok((!cols.is_empty()).then_some(cols))
        })
        .await
    }

    async fn apply_policy(&self, steps: &[SchemaStep], row: Option<&PolicyRow>) -> Result<()> {
        let (steps, row) = (steps.to_vec(), row.cloned());
        let version = match &row {
            Some(r) => i64::try_from(r.version)
                .map_err(|_| Error::Store("policy version out of range".into()))?,
            None => 0,
        };
        self.run(move |c, x| {
            // SQLite's DDL is transactional: the tables and the signed row
            // they are declared by commit together, or nothing does.
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(x.e())?;
            if row.is_some() {
                // Another administrator may have applied since this one
                // read the version in force.
                let latest: i64 = tx
                    .query_row(keys::MAX_POLICY_VERSION, [], |r| r.get(0))
                    .map_err(x.e())?;
                if latest.checked_add(1) != Some(version) {
                    return Err(policy_race(u64::try_from(version).unwrap_or(0)));
                }
            }
            for s in &steps {
                let cols = {
                    let mut st = tx.prepare_cached(CATALOGUE).map_err(x.e())?;
                    query_rows(x, &mut st, [&s.table], sql::stored_column)?
                };
                if s.is_done(&cols)? {
                    continue;
                }
                for stmt in &s.statements {
                    tx.execute_batch(stmt).map_err(x.e())?;
                }
            }
            let Some(row) = row else {
                return tx.commit().map_err(x.e());
            };
            let added =
                exec(&tx, keys::INSERT_POLICY, &keys::policy_values(&row)?).map_err(x.e())?;
            if added == 0 {
                return Err(policy_race(row.version));
            }
            tx.commit().map_err(x.e())
        })
        .await
    }

    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = key.to_owned();
        self.run(move |c, x| {
            let mut st = c.prepare_cached(keys::META_VALUE).map_err(x.e())?;
            query_rows(x, &mut st, [key], sql::meta_value).map(|v| v.into_iter().next())
        })
        .await
    }

    async fn users(&self) -> Result<Vec<UserRow>> {
        self.run(|c, x| {
            let mut st = c.prepare_cached(&keys::users()).map_err(x.e())?;
            query_rows(x, &mut st, [], sql::user_row)
        })
        .await
    }

    async fn insert_user(&self, row: &UserRow, personal: &NewScope) -> Result<()> {
        let row = row.clone();
        let personal = personal.clone();
        let cert = pgp::parse_cert(&row.cert)?;
        self.run(move |c, x| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(x.e())?;
            let exists: bool = tx
                .query_row(user_exists(), [&row.name], |_| Ok(true))
                .optional()
                .map_err(x.e())?
                .unwrap_or(false);
            if exists {
                return Err(Error::UserExists(row.name.clone()));
            }
            insert_user_row(&tx, &row).map_err(x.e())?;
            insert_new_scope(&tx, &personal).map_err(x.e())?;
            // The keyring is edited while the write transaction holds the
            // database lock, so two admins cannot interleave edits; if the
            // keyring write fails the row is rolled back.
            let wrapped = pgp::wrap(&[&cert], x.key.expose())?;
            let pending = x.edit_keyring(&tx, |kr| {
                enter(kr, &row, wrapped);
                Ok(())
            })?;
            tx.commit().map_err(x.e())?;
            pending.install()
        })
        .await
    }

    async fn replace_user(&self, row: &UserRow) -> Result<()> {
        let row = row.clone();
        self.run(move |c, x| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(x.e())?;
            let n = exec(&tx, keys::UPDATE_USER, &keys::user_update_values(&row)).map_err(x.e())?;
            if n == 0 {
                return Err(Error::UnknownUser(row.name.clone()));
            }
            if row.status == "disabled" {
                exec(
                    &tx,
                    keys::DELETE_GRANTS_TO,
                    &[Value::Text(row.name.clone())],
                )
                .map_err(x.e())?;
                let pending = x.edit_keyring(&tx, |kr| {
                    kr.entries.retain(|e| e.name != row.name);
                    if !kr.is_disabled(&row.name) {
                        kr.disabled.push(row.name.clone());
                    }
                    Ok(())
                })?;
                tx.commit().map_err(x.e())?;
                pending.install()?;
                return x.rotate_db_key(c);
            }
            tx.commit().map_err(x.e())
        })
        .await
    }

    async fn set_locked_key(&self, user: &str, locked: &[u8]) -> Result<()> {
        let (user, locked) = (user.to_owned(), locked.to_vec());
        self.run(move |c, x| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(x.e())?;
            let n = exec(
                &tx,
                keys::SET_LOCKED_KEY,
                &[Value::Blob(locked.clone()), Value::Text(user.clone())],
            )
            .map_err(x.e())?;
            if n == 0 {
                return Err(Error::UnknownUser(user.clone()));
            }
            // The keyring entry (what a login reads) changes with the row:
            // the keyring in force is the one this transaction records.
            let pending = x.edit_keyring(&tx, |kr| {
                let entry = kr
                    .entries
                    .iter_mut()
                    .find(|e| e.name == user)
                    .ok_or_else(|| Error::UnknownUser(user.clone()))?;
                entry.locked_key = locked.clone();
                Ok(())
            })?;
            tx.commit().map_err(x.e())?;
            pending.install()
        })
        .await
    }

    async fn reset_user(&self, row: &UserRow, grants: &[GrantRow]) -> Result<()> {
        let (row, grants) = (row.clone(), grants.to_vec());
        let cert = pgp::parse_cert(&row.cert)?;
        self.run(move |c, x| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(x.e())?;
            let n = exec(&tx, keys::UPDATE_USER, &keys::user_update_values(&row)).map_err(x.e())?;
            if n == 0 {
                return Err(Error::UnknownUser(row.name.clone()));
            }
            for g in &grants {
                put_grant_row(&tx, g).map_err(x.e())?;
            }
            let wrapped = pgp::wrap(&[&cert], x.key.expose())?;
            let pending = x.edit_keyring(&tx, |kr| {
                enter(kr, &row, wrapped);
                Ok(())
            })?;
            tx.commit().map_err(x.e())?;
            pending.install()
        })
        .await
    }

    async fn scopes(&self) -> Result<Vec<ScopeRow>> {
        self.run(|c, x| {
            let mut st = c.prepare_cached(keys::SCOPES).map_err(x.e())?;
            query_rows(x, &mut st, [], sql::scope_row)
        })
        .await
    }

    async fn epochs(&self) -> Result<Vec<EpochRow>> {
        self.run(|c, x| {
            let mut st = c.prepare_cached(&keys::epochs()).map_err(x.e())?;
            query_rows(x, &mut st, [], sql::epoch_row)
        })
        .await
    }

    async fn grants_to(&self, grantee: &str) -> Result<Vec<GrantRow>> {
        let grantee = grantee.to_owned();
        self.run(move |c, x| {
            let mut st = c.prepare_cached(&keys::grants_to()).map_err(x.e())?;
            query_rows(x, &mut st, [grantee], sql::grant_row)
        })
        .await
    }

    async fn insert_scope(&self, scope: &NewScope) -> Result<()> {
        let scope = scope.clone();
        self.run(move |c, x| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(x.e())?;
            insert_new_scope(&tx, &scope).map_err(x.e())?;
            tx.commit().map_err(x.e())
        })
        .await
    }

    async fn put_grants(&self, grants: &[GrantRow]) -> Result<()> {
        let grants = grants.to_vec();
        self.run(move |c, x| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(x.e())?;
            for g in &grants {
                put_grant_row(&tx, g).map_err(x.e())?;
            }
            tx.commit().map_err(x.e())
        })
        .await
    }

    async fn grants_by(&self, granter: &str) -> Result<Vec<GrantRow>> {
        let granter = granter.to_owned();
        self.run(move |c, x| {
            let mut st = c.prepare_cached(&keys::grants_by()).map_err(x.e())?;
            query_rows(x, &mut st, [granter], sql::grant_row)
        })
        .await
    }

    async fn resign_epoch(&self, e: &EpochRow) -> Result<()> {
        let e = e.clone();
        self.run(move |c, x| {
            exec(c, keys::RESIGN_EPOCH, &keys::resign_values(&e))
                .map(|_| ())
                .map_err(x.e())
        })
        .await
    }

    async fn delete_grants(&self, scope_id: u32, grantee: &str) -> Result<usize> {
        let grantee = grantee.to_owned();
        self.run(move |c, x| {
            exec(
                c,
                keys::DELETE_GRANTS,
                &[Value::Int(i64::from(scope_id)), Value::Text(grantee)],
            )
            .map_err(x.e())
        })
        .await
    }

    async fn grants_all(&self) -> Result<Vec<GrantRow>> {
        self.run(|c, x| {
            let mut st = c.prepare_cached(&keys::grants_all()).map_err(x.e())?;
            query_rows(x, &mut st, [], sql::grant_row)
        })
        .await
    }

    async fn export(
        &self,
        t: &TableSpec,
        after: Option<Vec<u8>>,
        limit: u32,
    ) -> Result<Vec<Vec<Value>>> {
        let t = *t;
        self.run(move |c, x| {
            let sql = if t.paged {
                format!(
                    "SELECT {} FROM `{}` WHERE {} AND `{}` > ?1 ORDER BY `{}` LIMIT ?2",
                    t.select_list(),
                    t.name,
                    t.vault_rows,
                    t.columns[0],
                    t.columns[0]
                )
            } else {
                format!(
                    "SELECT {} FROM `{}` WHERE {}",
                    t.select_list(),
                    t.name,
                    t.vault_rows
                )
            };
            let mut st = c.prepare(&sql).map_err(x.e())?;
            // The outer result is the driver's, the inner one ours.
            let map = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Result<Vec<Value>>> {
                let mut out = Vec::with_capacity(t.columns.len());
                for i in 0..t.columns.len() {
                    out.push(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => Value::Null,
                        rusqlite::types::ValueRef::Integer(n) => Value::Int(n),
                        rusqlite::types::ValueRef::Text(b) => match std::str::from_utf8(b) {
                            Ok(text) => Value::Text(text.to_owned()),
                            Err(_) => return Ok(Err(bad_export(&t, i, "UTF-8 text"))),
                        },
                        rusqlite::types::ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                        rusqlite::types::ValueRef::Real(_) => {
                            return Ok(Err(bad_export(&t, i, "an integer, text or bytes")))
                        }
                    });
                }
                Ok(Ok(out))
            };
            let rows = if t.paged {
                st.query_map(params![after.unwrap_or_default(), limit], map)
            } else {
                st.query_map([], map)
            }
            .map_err(x.e())?;
            rows.map(|r| r.map_err(x.e())?).collect()
        })
        .await
    }

    async fn import(&self, t: &TableSpec, rows: Vec<Vec<Value>>) -> Result<()> {
        let t = *t;
        self.run(move |c, x| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(x.e())?;
            {
                let marks = vec!["?"; t.columns.len()].join(", ");
                let mut st = tx
                    .prepare(&format!(
                        "INSERT INTO `{}` ({}) VALUES ({marks}) ON CONFLICT DO NOTHING",
                        t.name,
                        t.select_list()
                    ))
                    .map_err(x.e())?;
                for r in &rows {
                    st.execute(rusqlite::params_from_iter(r.iter().map(sqlite_value)))
                        .map_err(x.e())?;
                }
            }
            tx.commit().map_err(x.e())
        })
        .await
    }

    async fn count(&self, t: &TableSpec) -> Result<u64> {
        let (name, vault_rows) = (t.name, t.vault_rows);
        self.run(move |c, x| {
            let mut st = c
                .prepare(&format!("SELECT count(*) FROM `{name}` WHERE {vault_rows}"))
                .map_err(x.e())?;
            let mut rows = query_rows(x, &mut st, [], |c| sql::single_int(name, c))?;
            rows.pop().ok_or(Error::BadStoredValue {
                table: name,
                column: "count(*)",
                expected: "one row",
            })
        })
        .await
    }

    async fn max_id(&self, t: &TableSpec) -> Result<Option<Vec<u8>>> {
        let t = *t;
        self.run(move |c, x| {
            let mut st = c
                .prepare(&format!("SELECT max(`{}`) FROM `{}`", t.columns[0], t.name))
                .map_err(x.e())?;
            let rows = st.query_map([], cells).map_err(x.e())?;
            let mut out = None;
            for r in rows {
                let first: &'static [&'static str] = t.columns.get(..1).unwrap_or_default();
                out = sql::RowDecoder::new(t.name, first, r.map_err(x.e())?)?.opt_blob(0)?;
            }
            Ok(out)
        })
        .await
    }
}
