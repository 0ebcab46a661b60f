//! The shared store: MySQL or MariaDB through `mysql_async`.
//!
//! The server is untrusted: it only sees ciphertext, blind indexes,
//! certificates, locked secret keys and signed key material. There is no
//! keyring file; users log in with the locked key of their `users` row, and
//! the root fingerprint comes from the client's configuration.
//!
//! Writes run in transactions, retried on deadlock (1213) and lock-wait
//! timeout (1205). Server error messages are not passed on (a duplicate-key
//! message quotes the key); only their codes are.

use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, SslOpts, TxOpts};

use super::url::{MysqlUrl, Tls};
use super::{
    Dialect, Done, EpochRow, Genesis, GrantRow, NewScope, PolicyRow, SchemaStep, ScopeRow, Store,
    StoredColumn, TableSpec, UserRow, Value,
};
use crate::error::{Error, Result};
use crate::sql::{self, keys, Cell};

mod embedded {
    refinery::embed_migrations!("migrations/mysql");
}

/// Attempts of a write transaction that meets a deadlock or lock timeout.
const ATTEMPTS: u32 = 5;

/// The MySQL store.
pub struct MysqlStore {
    pool: Pool,
    describe: String,
}

/// Driver options for a URL: TLS as asked, no LOCAL INFILE handler (a
/// server that asks for a client file is refused), short lock waits.
pub fn driver_opts(url: &MysqlUrl) -> Opts {
    let ssl = match url.tls {
        Tls::Off => None,
        Tls::Required => Some(
            SslOpts::default()
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
        ),
        Tls::Verify => Some(match &url.ca {
            Some(ca) => SslOpts::default().with_root_certs(vec![ca.clone().into()]),
            None => SslOpts::default(),
        }),
    };
    OptsBuilder::default()
        .ip_or_hostname(url.host.clone())
        .tcp_port(url.port)
        .user(Some(url.user.clone()))
        .pass(Some(url.password.clone()))
        .db_name(Some(url.database.clone()))
        .ssl_opts(ssl)
        .prefer_socket(false)
        // An UPDATE reports the rows it matched, as SQLite does, not only
        // those whose values changed: "no such row" must not depend on it.
        .client_found_rows(true)
        .pool_opts(
            PoolOpts::default().with_constraints(PoolConstraints::new(0, 4).unwrap_or_default()),
        )
        // One statement: the pool resets a connection each time it is
        // returned and runs this again, so each statement here was a round
        // trip per lookup (BENCHMARKS.md: three of them tripled a lookup).
        .setup(vec![format!(
            "SET NAMES utf8mb4, SESSION innodb_lock_wait_timeout = {}, \
             SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION'",
            url.lock_wait_timeout
        )])
        .into()
}

fn retryable(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == 1213 || s.code == 1205)
}

impl MysqlStore {
    fn err(&self, e: mysql_async::Error) -> Error {
        classify(&self.describe, e)
    }

    /// Runs a read (binary protocol) and decodes every row with `decode`.
    async fn fetch<T, P>(
        &self,
        stmt: &str,
        params: P,
        decode: impl Fn(Vec<Cell>) -> Result<T>,
    ) -> Result<Vec<T>>
    where
        P: Into<mysql_async::Params> + Send,
    {
        let mut c = self.conn().await?;
        let rows: Vec<mysql_async::Row> = c.exec(stmt, params).await.map_err(|e| self.err(e))?;
        rows.into_iter().map(|r| decode(cells(r))).collect()
    }

    /// Connects and brings the schema up to date.
    pub async fn connect(url: &MysqlUrl) -> Result<MysqlStore> {
        // The driver needs tokio's reactor (it panics without one).
        crate::runtime::handle()?;
        let store = MysqlStore {
            pool: Pool::new(driver_opts(url)),
            describe: url.to_string(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Creates a vault in an empty database.
    pub async fn create(url: &MysqlUrl, genesis: &Genesis) -> Result<MysqlStore> {
        let store = Self::connect(url).await?;
        let mut conn = store.conn().await?;
        let mut tx = conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(|e| store.err(e))?;
        let exists: Option<mysql_async::Row> = tx
            .exec_first(
                "SELECT 1 FROM vault_meta WHERE `key` = 'vault_id' FOR UPDATE",
                (),
            )
            .await
            .map_err(|e| store.err(e))?;
        if exists.is_some() {
            return Err(Error::VaultExists(store.describe.clone()));
        }
        let e = |x| store.err(x);
        for (k, v) in &genesis.meta {
            tx.exec_drop(keys::INSERT_META, (k, v)).await.map_err(e)?;
        }
        insert_user(&mut tx, &genesis.admin).await.map_err(e)?;
        for s in &genesis.scopes {
            tx.exec_drop(keys::INSERT_SCOPE, my_params(&keys::scope_values(s)))
                .await
                .map_err(e)?;
        }
        for ep in &genesis.epochs {
            tx.exec_drop(keys::INSERT_EPOCH, my_params(&keys::epoch_values(ep)))
                .await
                .map_err(e)?;
        }
        for g in &genesis.grants {
            put_grant(&mut tx, g).await.map_err(e)?;
        }
        tx.commit().await.map_err(e)?;
        drop(conn);
        Ok(store)
    }

    async fn conn(&self) -> Result<Conn> {
        self.pool.get_conn().await.map_err(|e| self.err(e))
    }

    /// Runs the embedded migrations under `GET_LOCK`, so two clients
    /// starting at once do not both migrate.
    async fn migrate(&self) -> Result<()> {
        migrate_with(&self.pool, &embedded::migrations::runner(), &self.describe).await
    }

    /// Runs `f` in a transaction, retried on deadlock or lock timeout.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: for<'a, 'c> Fn(&'a mut mysql_async::Transaction<'c>) -> TxFuture<'a, T> + Send + Sync,
        T: Send,
    {
        self.write_with(TxOpts::default(), f).await
    }

    /// [`MysqlStore::write`] with transaction options `opts`.
    async fn write_with<T, F>(&self, opts: TxOpts, f: F) -> Result<T>
    where
        F: for<'a, 'c> Fn(&'a mut mysql_async::Transaction<'c>) -> TxFuture<'a, T> + Send + Sync,
        T: Send,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut conn = self.conn().await?;
            let outcome: Result<T, TxError> = async {
                let mut tx = conn.start_transaction(opts.clone()).await?;
                let v = f(&mut tx).await?;
                tx.commit().await?;
                Ok(v)
            }
            .await;
            match outcome {
                Ok(v) => return Ok(v),
                Err(TxError::Db(e)) if retryable(&e) && attempt < ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                }
                Err(TxError::Db(e)) => return Err(self.err(e)),
                Err(TxError::Vault(e)) => return Err(e),
            }
        }
    }
}

impl MysqlStore {
    /// Runs `statements` in one transaction (retried on deadlock or lock
    /// timeout), then `guard` if there is one, last, just before the
    /// commit: its locks are held only across the commit.
    async fn write_checked(
        &self,
        guard: Option<super::Guard>,
        statements: Vec<(String, Vec<Value>)>,
    ) -> Result<Vec<u64>> {
        let opts = tx_opts(guard.is_some());
        self.write_with(opts, move |tx| {
            let statements = statements.clone();
            let guard = guard.clone();
            Box::pin(async move {
                let mut changed = Vec::with_capacity(statements.len());
                for (sql, params) in &statements {
                    tx.exec_drop(sql.as_str(), my_params(params)).await?;
                    changed.push(tx.affected_rows());
                }
                if let Some(g) = &guard {
                    check_guard(tx, g).await?;
                }
                Ok(changed)
            })
        })
        .await
    }
}

/// The transaction of a write; of a guarded one
/// ([`Store::write_guarded`]): `SERIALIZABLE`, where InnoDB reads every row a plain `SELECT` reads
/// with a shared lock (and locks the gaps between them), so the rows the
/// guard counted, and the room for new ones, stay as they are until the
/// commit: a rotation's new epoch or a revocation waits for the write, or
/// the write's guard waits for them and sees them. The guard runs last,
/// so those locks are held only across the commit.
fn tx_opts(guarded: bool) -> TxOpts {
    let mut o = TxOpts::default();
    if guarded {
        o.with_isolation_level(mysql_async::IsolationLevel::Serializable);
    }
    o
}

/// Runs a write's guard in its transaction: [`Error::StateMoved`] unless
/// it answers what the writer expects.
async fn check_guard(
    tx: &mut mysql_async::Transaction<'_>,
    g: &super::Guard,
) -> Result<(), TxError> {
    let rows: Vec<mysql_async::Row> = tx.exec(g.sql.as_str(), my_params(&g.params)).await?;
    let rows: Vec<Vec<Cell>> = rows.into_iter().map(cells).collect();
    if g.holds(&rows) {
        Ok(())
    } else {
        Err(TxError::Vault(Error::StateMoved))
    }
}

/// The future a write closure returns.
pub type TxFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, TxError>> + Send + 'a>>;

/// An error inside a write transaction: the driver's (maybe retryable) or ours.
pub enum TxError {
    /// From the driver.
    Db(mysql_async::Error),
    /// From medvault (not retried).
    Vault(Error),
}

impl From<mysql_async::Error> for TxError {
    fn from(e: mysql_async::Error) -> Self {
        TxError::Db(e)
    }
}

/// Maps a driver error to ours, naming the store but never quoting server
/// messages (which can quote values).
pub fn classify(store: &str, e: mysql_async::Error) -> Error {
    use mysql_async::Error as E;
    match e {
        E::Server(s) => match s.code {
            1045 | 1044 | 1698 => Error::StoreAuth(store.to_owned()),
            1049 => Error::NoVault(store.to_owned()),
            // The server's message quotes the duplicate value: left out.
            1062 | 1586 => Error::Duplicate(store.to_owned()),
            code => Error::Store(format!(
                "{store}: server error {code} (SQLSTATE {})",
                s.state
            )),
        },
        E::Io(io) => Error::StoreUnavailable {
            store: store.to_owned(),
            reason: io.to_string(),
        },
        E::Driver(d) => Error::StoreUnavailable {
            store: store.to_owned(),
            reason: d.to_string(),
        },
        E::Url(_) => Error::BadStoreUrl {
            url: store.to_owned(),
            reason: "rejected by the MySQL driver",
        },
        other => Error::Store(format!("{store}: {other}")),
    }
}

/// Takes `GET_LOCK('medvault_migrate', 60)` on `lock`: migrations and
/// schema applies run one at a time across clients. Released by the
/// caller (`RELEASE_LOCK`) or with the connection.
async fn take_migration_lock(lock: &mut Conn, store: &str) -> Result<()> {
    // Rows, not typed values: the driver's typed conversions panic on a
    // value of another type.
    let got: Option<mysql_async::Row> = lock
        .query_first("SELECT GET_LOCK('medvault_migrate', 60)")
        .await
        .map_err(|x| classify(store, x))?;
    let locked = got
        .map(cells)
        .is_some_and(|c| sql::single_int::<i64>("GET_LOCK", c).ok() == Some(1));
    if locked {
        Ok(())
    } else {
        Err(Error::Migration(format!(
            "{store}: another client has held the migration lock for 60 s"
        )))
    }
}

/// Runs `runner`'s migrations on `pool` under a named lock. A migration that
/// fails leaves a mark, and every later start refuses to run on a schema
/// that may be half changed (MySQL commits DDL implicitly, so a failed
/// migration cannot be rolled back).
pub async fn migrate_with(pool: &Pool, runner: &refinery::Runner, store: &str) -> Result<()> {
    migrate_set(pool, runner, store, &super::MEDVAULT_MIGRATIONS)
        .await
        .map(|_| ())
}

/// [`migrate_with`] for a set of migrations with its own history table and
/// guard row; the names of the migrations run.
pub async fn migrate_set(
    pool: &Pool,
    runner: &refinery::Runner,
    store: &str,
    set: &super::MigrationSet,
) -> Result<Vec<String>> {
    let mut lock = pool.get_conn().await.map_err(|x| classify(store, x))?;
    take_migration_lock(&mut lock, store).await?;
    let result = migrate_locked(pool, &mut lock, runner, store, set).await;
    let _ = lock.query_drop("DO RELEASE_LOCK('medvault_migrate')").await;
    result
}

async fn migrate_locked(
    pool: &Pool,
    lock: &mut Conn,
    runner: &refinery::Runner,
    store: &str,
    set: &super::MigrationSet,
) -> Result<Vec<String>> {
    let e = |x| classify(store, x);
    lock.query_drop(
        "CREATE TABLE IF NOT EXISTS medvault_migration_guard (
             id INT NOT NULL PRIMARY KEY,
             state VARCHAR(16) NOT NULL,
             changed_at BIGINT NOT NULL,
             detail VARCHAR(255) NOT NULL
         ) ENGINE = InnoDB",
    )
    .await
    .map_err(e)?;
    // Checked like every stored value; its `detail` text is not shown: it
    // is the server's to rewrite.
    let rows: Vec<mysql_async::Row> = lock
        .exec(
            "SELECT state FROM medvault_migration_guard WHERE id = ?",
            (set.guard_id,),
        )
        .await
        .map_err(e)?;
    for r in rows {
        let state =
            sql::RowDecoder::new("medvault_migration_guard", &["state"], cells(r))?.text(0)?;
        if state == "failed" {
            return Err(Error::Migration(format!(
                "{store}: an earlier {} failed half-way (medvault_migration_guard row {} \
                 says why); the schema may be partly changed. Restore the database from a \
                 backup, or repair it against the migration files and then delete that row \
                 of medvault_migration_guard",
                set.what, set.guard_id
            )));
        }
    }
    let mut p = pool.clone();
    let has_history: Option<mysql_async::Row> = lock
        .exec_first(
            "SELECT 1 FROM information_schema.tables
             WHERE table_schema = DATABASE() AND table_name = ?",
            (set.history,),
        )
        .await
        .map_err(e)?;
    let applied = if has_history.is_some() {
        let rows: Vec<mysql_async::Row> = lock
            .exec(sql::migration_history(set.history), ())
            .await
            .map_err(e)?;
        sql::check_history(set.history, rows.into_iter().map(cells).collect())?;
        runner
            .get_applied_migrations_async(&mut p)
            .await
            .map_err(|x| Error::Migration(format!("{store}: {}", super::migration_detail(&x))))?
    } else {
        Vec::new()
    };
    let pending = runner
        .get_migrations()
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version() == m.version()))
        .count();
    if pending == 0 {
        return Ok(Vec::new());
    }
    let now = crate::vault::now();
    lock.exec_drop(
        "REPLACE INTO medvault_migration_guard (id, state, changed_at, detail) VALUES (?, 'running', ?, '')",
        (set.guard_id, now),
    )
    .await
    .map_err(e)?;
    match runner.run_async(&mut p).await {
        Ok(report) => {
            lock.exec_drop(
                "REPLACE INTO medvault_migration_guard (id, state, changed_at, detail) VALUES (?, 'done', ?, '')",
                (set.guard_id, now),
            )
            .await
            .map_err(e)?;
            Ok(report
                .applied_migrations()
                .iter()
                .map(|m| m.to_string())
                .collect())
        }
        Err(x) => {
            let detail: String = super::migration_detail(&x).chars().take(250).collect();
            let _ = lock
                .exec_drop(
                    "REPLACE INTO medvault_migration_guard (id, state, changed_at, detail) VALUES (?, 'failed', ?, ?)",
                    (set.guard_id, now, &detail),
                )
                .await;
            Err(Error::Migration(format!(
                "{store}: {} failed half-way: {detail}. The schema may be partly changed; \
                 medvault will refuse these migrations until the database is restored or repaired",
                set.what
            )))
        }
    }
}

async fn insert_user<Q: Queryable>(q: &mut Q, u: &UserRow) -> mysql_async::Result<()> {
    q.exec_drop(keys::INSERT_USER, my_params(&keys::user_values(u)))
        .await
}

async fn insert_new_scope<Q: Queryable>(q: &mut Q, s: &NewScope) -> mysql_async::Result<()> {
    q.exec_drop(keys::INSERT_SCOPE, my_params(&keys::scope_values(&s.scope)))
        .await?;
    q.exec_drop(keys::INSERT_EPOCH, my_params(&keys::epoch_values(&s.epoch)))
        .await?;
    for g in &s.grants {
        put_grant(q, g).await?;
    }
    Ok(())
}

async fn put_grant<Q: Queryable>(q: &mut Q, g: &GrantRow) -> mysql_async::Result<()> {
    q.exec_drop(keys::PUT_GRANT, my_params(&keys::grant_values(g)))
        .await
}

/// The cells of a row, as the driver returned them: cannot fail on the
/// value's type, which the checked decoders of [`crate::sql`] judge.
/// The columns of `table` in the current database, in order; not the
/// columns MySQL generates (a tokens index's derived columns, FORMAT.md
/// §4.5), which SQLite's `pragma_table_info` does not list either.
async fn catalogue(c: &mut Conn, table: &str) -> Result<Vec<StoredColumn>, TxError> {
    let rows: Vec<mysql_async::Row> = c
        .exec(
            "SELECT column_name,
                    data_type IN ('binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob'),
                    is_nullable = 'YES'
             FROM information_schema.columns
             WHERE table_schema = DATABASE() AND table_name = ?
               AND extra NOT LIKE '%VIRTUAL GENERATED%'
               AND extra NOT LIKE '%STORED GENERATED%'
             ORDER BY ordinal_position",
            (table,),
        )
        .await?;
    rows.into_iter()
        .map(|r| sql::stored_column(cells(r)).map_err(TxError::Vault))
        .collect()
}

/// Runs the steps not done yet, then stores the row; under the migration
/// lock. MySQL commits each DDL statement on its own, so a crash can leave
/// some steps done: the next apply of the same schema skips them (each
/// step says how to tell it is done) and finishes.
async fn apply_locked(
    c: &mut Conn,
    steps: &[SchemaStep],
    row: Option<&PolicyRow>,
) -> Result<(), TxError> {
    // Another administrator may have applied since this one read the
    // version in force: checked under the lock, before any DDL.
    if let Some(row) = row {
        let got: Option<mysql_async::Row> = c.query_first(keys::MAX_POLICY_VERSION).await?;
        let latest = got
            .map(cells)
            .map(|cl| sql::single_int::<u64>("policies", cl))
            .transpose()
            .map_err(TxError::Vault)?
            .unwrap_or(0);
        if latest.checked_add(1) != Some(row.version) {
            return Err(TxError::Vault(super::sqlite::policy_race(row.version)));
        }
    }
    // Steps that add first, then the signed row, then steps that drop: a
    // crash leaves at worst an extra NULLable index column, never a
    // version in force whose columns are gone.
    let (drops, adds): (Vec<&SchemaStep>, Vec<&SchemaStep>) = steps
        .iter()
        .partition(|s| matches!(s.done_when, Done::ColumnAbsent(_)));
    run_steps(c, &adds).await?;
    if let Some(row) = row {
        let values = keys::policy_values(row).map_err(TxError::Vault)?;
        c.exec_drop(keys::INSERT_POLICY, my_params(&values)).await?;
    }
    run_steps(c, &drops).await
}

/// Runs each step not done yet. A table that exists counts as made only
/// if it has exactly the step's columns (an unrelated table of that name
/// is refused, never adopted).
async fn run_steps(c: &mut Conn, steps: &[&SchemaStep]) -> Result<(), TxError> {
    for s in steps {
        let cols = catalogue(c, &s.table).await?;
        if !s.is_done(&cols).map_err(TxError::Vault)? {
            for stmt in &s.statements {
                c.query_drop(stmt).await?;
            }
        }
    }
    Ok(())
}

fn my_params(params: &[Value]) -> mysql_async::Params {
    if params.is_empty() {
        return mysql_async::Params::Empty;
    }
    mysql_async::Params::Positional(
        params
            .iter()
            .map(|v| match v {
                Value::Null => mysql_async::Value::NULL,
                Value::Int(i) => mysql_async::Value::Int(*i),
                Value::Text(s) => mysql_async::Value::Bytes(s.clone().into_bytes()),
                Value::Blob(b) => mysql_async::Value::Bytes(b.clone()),
            })
            .collect(),
    )
}

fn cells(row: mysql_async::Row) -> Vec<Cell> {
    row.unwrap_raw()
        .into_iter()
        .map(|v| match v {
            Some(mysql_async::Value::NULL) => Cell::Null,
            Some(mysql_async::Value::Int(n)) => Cell::Int(n),
            Some(mysql_async::Value::UInt(n)) => Cell::UInt(n),
            Some(mysql_async::Value::Bytes(b)) => Cell::Bytes(b),
            _ => Cell::Other,
        })
        .collect()
}

#[async_trait]
impl Store for MysqlStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn dialect(&self) -> Dialect {
        Dialect::Mysql
    }

    async fn select(&self, sql: String, params: Vec<Value>) -> Result<Vec<Vec<Cell>>> {
        self.fetch(&sql, my_params(&params), Ok).await
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
        let mut runner = refinery::Runner::new(&migrations);
        runner.set_migration_table_name(super::APP_MIGRATIONS.history);
        migrate_set(&self.pool, &runner, &self.describe, &super::APP_MIGRATIONS).await
    }

    async fn write_stream(
        &self,
        guard: Option<super::Guard>,
        mut rx: super::StatementStream,
    ) -> Result<Vec<u64>> {
        // Not retried: the statements are consumed as they come.
        let mut conn = self.conn().await?;
        let opts = tx_opts(guard.is_some());
        let mut tx = conn
            .start_transaction(opts)
            .await
            .map_err(|e| self.err(e))?;
        let mut changed = Vec::new();
        while let Some(msg) = rx.recv().await {
            let Some(chunk) = msg else {
                if let Some(g) = &guard {
                    // Last, just before the commit (a long import holds no
                    // lock on the key state while it streams). A deadlock
                    // or lock wait here wrote nothing the caller keeps:
                    // the write is run again, as for a moved state.
                    check_guard(&mut tx, g).await.map_err(|e| match e {
                        TxError::Db(e) if retryable(&e) => Error::StateMoved,
                        TxError::Db(e) => self.err(e),
                        TxError::Vault(e) => e,
                    })?;
                }
                tx.commit().await.map_err(|e| self.err(e))?;
                return Ok(changed);
            };
            for (sql, params) in &chunk {
                tx.exec_drop(sql.as_str(), my_params(params))
                    .await
                    .map_err(|e| self.err(e))?;
                changed.push(tx.affected_rows());
            }
        }
        // Dropping the transaction rolls it back.
        Err(Error::Interrupted)
    }

    async fn latest_policy(&self) -> Result<Option<PolicyRow>> {
        Ok(self
            .fetch(&keys::latest_policy(), (), sql::policy_row)
            .await?
            .into_iter()
            .next())
    }

    async fn table_columns(&self, table: &str) -> Result<Option<Vec<StoredColumn>>> {
        let mut c = self.conn().await?;
        let cols = catalogue(&mut c, table).await.map_err(|e| match e {
            TxError::Db(e) => self.err(e),
            TxError::Vault(e) => e,
        })?;
        Ok((!cols.is_empty()).then_some(cols))
    }

    async fn apply_policy(&self, steps: &[SchemaStep], row: Option<&PolicyRow>) -> Result<()> {
        let mut lock = self.conn().await?;
        take_migration_lock(&mut lock, &self.describe).await?;
        let result = apply_locked(&mut lock, steps, row).await;
        let _ = lock.query_drop("DO RELEASE_LOCK('medvault_migrate')").await;
        match result {
            Ok(()) => Ok(()),
            Err(TxError::Db(mysql_async::Error::Server(s))) if s.code == 1062 => {
                Err(super::sqlite::policy_race(row.map_or(0, |r| r.version)))
            }
            Err(TxError::Db(x)) => Err(self.err(x)),
            Err(TxError::Vault(x)) => Err(x),
        }
    }

    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let rows = self
            .fetch(keys::META_VALUE, (key,), sql::meta_value)
            .await?;
        Ok(rows.into_iter().next())
    }

    async fn users(&self) -> Result<Vec<UserRow>> {
        self.fetch(&keys::users(), (), sql::user_row).await
    }

    async fn insert_user(&self, row: &UserRow, personal: &NewScope) -> Result<()> {
        let row = row.clone();
        let personal = personal.clone();
        self.write(move |tx| {
            let row = row.clone();
            let personal = personal.clone();
            Box::pin(async move {
                let row = &row;
                let exists: Option<mysql_async::Row> = tx
                    .exec_first(keys::user_exists(Dialect::Mysql), (&row.name,))
                    .await?;
                if exists.is_some() {
                    return Err(TxError::Vault(Error::UserExists(row.name.clone())));
                }
                insert_user(tx, row).await?;
                insert_new_scope(tx, &personal).await?;
                Ok(())
            })
        })
        .await
    }

    async fn set_locked_key(&self, user: &str, locked: &[u8]) -> Result<()> {
        let (user, locked) = (user.to_owned(), locked.to_vec());
        self.write(move |tx| {
            let (user, locked) = (user.clone(), locked.clone());
            Box::pin(async move {
                tx.exec_drop(
                    keys::SET_LOCKED_KEY,
                    my_params(&[Value::Blob(locked), Value::Text(user.clone())]),
                )
                .await?;
                if tx.affected_rows() == 0 {
                    return Err(TxError::Vault(Error::UnknownUser(user)));
                }
                Ok(())
            })
        })
        .await
    }

    async fn reset_user(&self, row: &UserRow, grants: &[GrantRow]) -> Result<()> {
        let (row, grants) = (row.clone(), grants.to_vec());
        self.write(move |tx| {
            let (row, grants) = (row.clone(), grants.clone());
            Box::pin(async move {
                tx.exec_drop(
                    keys::UPDATE_USER,
                    my_params(&keys::user_update_values(&row)),
                )
                .await?;
                if tx.affected_rows() == 0 {
                    return Err(TxError::Vault(Error::UnknownUser(row.name.clone())));
                }
                for g in &grants {
                    tx.exec_drop(keys::PUT_GRANT, my_params(&keys::grant_values(g)))
                        .await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn replace_user(&self, row: &UserRow) -> Result<()> {
        let row = row.clone();
        self.write(move |tx| {
            let row = row.clone();
            Box::pin(async move {
                tx.exec_drop(
                    keys::UPDATE_USER,
                    my_params(&keys::user_update_values(&row)),
                )
                .await?;
                if tx.affected_rows() == 0 {
                    return Err(TxError::Vault(Error::UnknownUser(row.name.clone())));
                }
                if row.status == "disabled" {
                    tx.exec_drop(keys::DELETE_GRANTS_TO, (&row.name,)).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn scopes(&self) -> Result<Vec<ScopeRow>> {
        self.fetch(keys::SCOPES, (), sql::scope_row).await
    }

    async fn epochs(&self) -> Result<Vec<EpochRow>> {
        self.fetch(&keys::epochs(), (), sql::epoch_row).await
    }

    async fn grants_to(&self, grantee: &str) -> Result<Vec<GrantRow>> {
        self.fetch(&keys::grants_to(), (grantee,), sql::grant_row)
            .await
    }

    async fn insert_scope(&self, scope: &NewScope) -> Result<()> {
        let scope = scope.clone();
        self.write(move |tx| {
            let scope = scope.clone();
            Box::pin(async move {
                insert_new_scope(tx, &scope).await?;
                Ok(())
            })
        })
        .await
    }

    async fn put_grants(&self, grants: &[GrantRow]) -> Result<()> {
        let grants = grants.to_vec();
        self.write(move |tx| {
            let grants = grants.clone();
            Box::pin(async move {
                for g in &grants {
                    put_grant(tx, g).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn grants_by(&self, granter: &str) -> Result<Vec<GrantRow>> {
        self.fetch(&keys::grants_by(), (granter,), sql::grant_row)
            .await
    }

    async fn resign_epoch(&self, e: &EpochRow) -> Result<()> {
        let e = e.clone();
        self.write(move |tx| {
            let e = e.clone();
            Box::pin(async move {
                tx.exec_drop(keys::RESIGN_EPOCH, my_params(&keys::resign_values(&e)))
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn delete_grants(&self, scope_id: u32, grantee: &str) -> Result<usize> {
        let grantee = grantee.to_owned();
        self.write(move |tx| {
            let grantee = grantee.clone();
            Box::pin(async move {
                tx.exec_drop(keys::DELETE_GRANTS, (scope_id, grantee))
                    .await?;
                Ok(tx.affected_rows() as usize)
            })
        })
        .await
    }

    async fn grants_all(&self) -> Result<Vec<GrantRow>> {
        self.fetch(&keys::grants_all(), (), sql::grant_row).await
    }

    async fn export(
        &self,
        t: &TableSpec,
        after: Option<Vec<u8>>,
        limit: u32,
    ) -> Result<Vec<Vec<Value>>> {
        let mut c = self.conn().await?;
        let rows: Vec<mysql_async::Row> = if t.paged {
            c.exec(
                format!(
                    "SELECT {} FROM `{}` WHERE {} AND `{}` > ? ORDER BY `{}` LIMIT ?",
                    t.select_list(),
                    t.name,
                    t.vault_rows,
                    t.columns[0],
                    t.columns[0]
                ),
                (after.unwrap_or_default(), limit),
            )
            .await
        } else {
            // The binary protocol (exec), so numbers come back as numbers.
            c.exec(
                format!(
                    "SELECT {} FROM `{}` WHERE {}",
                    t.select_list(),
                    t.name,
                    t.vault_rows
                ),
                (),
            )
            .await
        }
        .map_err(|e| self.err(e))?;
        // Text columns come back as bytes: tell them apart by the column
        // type, so names stay text in the other dialect.
        let t = *t;
        let bad = |i: usize, expected: &'static str| Error::BadStoredValue {
            table: t.name,
            column: t.columns.get(i).copied().unwrap_or("?"),
            expected,
        };
        rows.into_iter()
            .map(|r| {
                let cols = r.columns();
                r.unwrap_raw()
                    .into_iter()
                    .zip(cols.iter())
                    .enumerate()
                    .map(|(i, (v, col))| {
                        use mysql_async::consts::ColumnType as T;
                        Ok(match v {
                            Some(mysql_async::Value::NULL) => Value::Null,
                            Some(mysql_async::Value::Int(n)) => Value::Int(n),
                            Some(mysql_async::Value::UInt(u)) => Value::Int(
                                i64::try_from(u).map_err(|_| bad(i, "an integer in range"))?,
                            ),
                            // TEXT columns travel as the BLOB types with a
                            // character set other than binary (63).
                            Some(mysql_async::Value::Bytes(b)) => match col.column_type() {
                                T::MYSQL_TYPE_VAR_STRING
                                | T::MYSQL_TYPE_STRING
                                | T::MYSQL_TYPE_VARCHAR
                                | T::MYSQL_TYPE_BLOB
                                | T::MYSQL_TYPE_TINY_BLOB
                                | T::MYSQL_TYPE_MEDIUM_BLOB
                                | T::MYSQL_TYPE_LONG_BLOB
                                    if col.character_set() != 63 =>
                                {
                                    Value::Text(
                                        String::from_utf8(b).map_err(|_| bad(i, "UTF-8 text"))?,
                                    )
                                }
                                _ => Value::Blob(b),
                            },
                            _ => return Err(bad(i, "an integer, text or bytes")),
                        })
                    })
                    .collect()
            })
            .collect()
    }

    async fn import(&self, t: &TableSpec, rows: Vec<Vec<Value>>) -> Result<()> {
        let t = *t;
        let rows = std::sync::Arc::new(rows);
        self.write(move |tx| {
            let rows = std::sync::Arc::clone(&rows);
            Box::pin(async move {
                // Not INSERT IGNORE: it would also turn strict-mode errors
                // into warnings. A duplicate key is a no-op update instead.
                let first = t.columns[0];
                let marks = vec!["?"; t.columns.len()].join(", ");
                let sql = format!(
                    "INSERT INTO `{}` ({}) VALUES ({marks}) ON DUPLICATE KEY UPDATE `{first}` = `{first}`",
                    t.name,
                    t.select_list()
                );
                let params: Vec<mysql_async::Params> = rows.iter().map(|r| my_params(r)).collect();
                tx.exec_batch(sql, params).await?;
                Ok(())
            })
        })
        .await
    }

    async fn count(&self, t: &TableSpec) -> Result<u64> {
        let name = t.name;
        let stmt = format!("SELECT count(*) FROM `{name}` WHERE {}", t.vault_rows);
        let rows = self.fetch(&stmt, (), |c| sql::single_int(name, c)).await?;
        rows.into_iter().next().ok_or(Error::BadStoredValue {
            table: name,
            column: "count(*)",
            expected: "one row",
        })
    }

    async fn max_id(&self, t: &TableSpec) -> Result<Option<Vec<u8>>> {
        let t = *t;
        let first: &'static [&'static str] = t.columns.get(..1).unwrap_or_default();
        let stmt = format!("SELECT max(`{}`) FROM `{}`", t.columns[0], t.name);
        let rows = self
            .fetch(&stmt, (), |c| {
                sql::RowDecoder::new(t.name, first, c)?.opt_blob(0)
            })
            .await?;
        Ok(rows.into_iter().next().flatten())
    }
}
