//! Stores: where rows live. A store only ever sees ciphertext, blind
//! indexes, certificates, locked keys and signed key material; all crypto
//! happens above it, in [`crate::vault`].
//!
//! [`Store`] is the one interface the vault talks to. The SQLCipher store
//! ([`sqlite`]) is the embedded default; the MySQL store plugs in behind
//! the same trait.

pub mod keyring;
#[cfg(feature = "mysql")]
pub mod mysql;
pub mod sqlite;
pub mod url;

use async_trait::async_trait;

use crate::error::Result;

pub use crate::sql::ddl::Dialect;
pub use crate::sql::{TableSpec, TABLES};
pub use url::StoreUrl;

/// Id of a patient or note: 16 random bytes.
pub type RowId = [u8; 16];

/// A user row (`users` table). Signed by its certifier (FORMAT.md §5.1).
/// `Debug` leaves out the locked key and the signature.
#[derive(Clone)]
pub struct UserRow {
    /// Login name.
    pub name: String,
    /// `admin` or `user`.
    pub role: String,
    /// `active` or `disabled`.
    pub status: String,
    /// Public certificate.
    pub cert: Vec<u8>,
    /// Password-locked secret key.
    pub locked_key: Vec<u8>,
    /// Name of the certifying admin, or `@root`.
    pub certifier: String,
    /// Unix seconds of the signature.
    pub signed_at: i64,
    /// Signature (FORMAT.md §5.1).
    pub signature: Vec<u8>,
}

/// A scope row.
#[derive(Clone, Debug)]
pub struct ScopeRow {
    /// Scope id (the envelope's scope field).
    pub id: u32,
    /// Name (`identity`, `clinical`, `billing`, `personal:<user>`, …).
    pub name: String,
    /// Owner of a personal scope.
    pub owner: Option<String>,
}

/// An epoch row: one key generation of a scope, committed and signed.
#[derive(Clone, Debug)]
pub struct EpochRow {
    /// Scope.
    pub scope_id: u32,
    /// Epoch number.
    pub epoch: u32,
    /// `current` or `retired`.
    pub state: String,
    /// Commitment to the key (FORMAT.md §2).
    pub commitment: Vec<u8>,
    /// Signer.
    pub creator: String,
    /// Signature (FORMAT.md §5.2).
    pub signature: Vec<u8>,
    /// Its retirement, once no cell uses it (FORMAT.md §5.5).
    pub retired: Option<Retirement>,
}

/// The signed record that retires an epoch (FORMAT.md §5.5).
#[derive(Clone, Debug)]
pub struct Retirement {
    /// The administrator (or `@root`) who signed it.
    pub by: String,
    /// Unix seconds.
    pub at: i64,
    /// Signature.
    pub signature: Vec<u8>,
}

/// A grant: an epoch key wrapped to one user, signed by the granter.
/// `Debug` leaves out the wrapped key.
#[derive(Clone)]
pub struct GrantRow {
    /// Scope.
    pub scope_id: u32,
    /// Epoch.
    pub epoch: u32,
    /// Grantee user name (or `@root`).
    pub grantee: String,
    /// `read-write`.
    pub rights: String,
    /// OpenPGP message holding the 32-byte epoch key.
    pub wrapped: Vec<u8>,
    /// Signer.
    pub granter: String,
    /// Unix seconds.
    pub signed_at: i64,
    /// Signature (FORMAT.md §5.3).
    pub signature: Vec<u8>,
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("status", &self.status)
            .field("certifier", &self.certifier)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for GrantRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantRow")
            .field("scope_id", &self.scope_id)
            .field("epoch", &self.epoch)
            .field("grantee", &self.grantee)
            .field("granter", &self.granter)
            .finish_non_exhaustive()
    }
}

/// A new scope as it is written: the scope, its first epoch and the
/// grants of that epoch.
#[derive(Clone, Debug)]
pub struct NewScope {
    /// The scope.
    pub scope: ScopeRow,
    /// Its first epoch.
    pub epoch: EpochRow,
    /// Grants of that epoch.
    pub grants: Vec<GrantRow>,
}

/// Everything a new vault stores at creation, written in one transaction.
#[derive(Clone, Debug)]
pub struct Genesis {
    /// `vault_meta` rows.
    pub meta: Vec<(String, Vec<u8>)>,
    /// The first admin.
    pub admin: UserRow,
    /// Scopes.
    pub scopes: Vec<ScopeRow>,
    /// Their first epochs.
    pub epochs: Vec<EpochRow>,
    /// Grants to the admin and to the root.
    pub grants: Vec<GrantRow>,
}

/// A raw column value, for copying rows between stores as they are.
#[derive(Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Integer.
    Int(i64),
    /// Text (names, roles: never patient data).
    Text(String),
    /// Bytes (envelopes, blind indexes, keys, signatures).
    Blob(Vec<u8>),
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Null => f.write_str("Null"),
            Value::Int(i) => write!(f, "Int({i})"),
            Value::Text(t) => write!(f, "Text({t:?})"),
            Value::Blob(b) => write!(f, "Blob({} bytes)", b.len()),
        }
    }
}

/// What a write checks first, inside its own transaction
/// ([`Store::write_guarded`]): a read statement that answers one row of
/// integers, and the row the writer expects. The vault's guard is the
/// key-state probe (`sql::keys::PROBE`) and the schema version: a write
/// sealed under keys read before a rotation, a revocation or a new
/// schema is refused instead of committed after it.
#[derive(Clone, Debug)]
pub struct Guard {
    /// The read statement.
    pub sql: String,
    /// Its parameters.
    pub params: Vec<Value>,
    /// The one row it must answer.
    pub expect: Vec<i64>,
}

impl Guard {
    /// Whether `rows`, the guard statement's answer, is the row expected.
    pub fn holds(&self, rows: &[Vec<crate::sql::Cell>]) -> bool {
        let [row] = rows else {
            return false;
        };
        row.len() == self.expect.len()
            && row
                .iter()
                .zip(&self.expect)
                .all(|(c, e)| int_cell(c) == Some(*e))
    }
}

/// An integer answer as a store gives it (MySQL may send a computed one as
/// text), or `None`.
pub(crate) fn int_cell(c: &crate::sql::Cell) -> Option<i64> {
    use crate::sql::Cell;
    match c {
        Cell::Int(n) => Some(*n),
        Cell::UInt(n) => i64::try_from(*n).ok(),
        Cell::Bytes(b) if b.len() <= 20 => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// Chunks of write statements for [`Store::write_stream`]: `Some(chunk)`
/// to run, `None` to commit.
pub type StatementStream = tokio::sync::mpsc::Receiver<Option<Vec<(String, Vec<Value>)>>>;

/// A signed version of the schema in force (`policies` table, FORMAT.md
/// §5.4). `Debug` leaves out the text and the signature.
#[derive(Clone)]
pub struct PolicyRow {
    /// Version: 1 for the first apply, one more for each next.
    pub version: u64,
    /// The application's schema file as applied (UTF-8 TOML).
    pub text: Vec<u8>,
    /// The administrator who applied it.
    pub signer: String,
    /// Unix seconds.
    pub signed_at: i64,
    /// Signature (FORMAT.md §5.4).
    pub signature: Vec<u8>,
}

impl std::fmt::Debug for PolicyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyRow")
            .field("version", &self.version)
            .field("signer", &self.signer)
            .field("signed_at", &self.signed_at)
            .finish_non_exhaustive()
    }
}

/// A column as the database describes it (for the check that the tables
/// agree with the schema in force).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredColumn {
    /// Name.
    pub name: String,
    /// A binary type (SQLite `BLOB`; MySQL `BINARY`, `VARBINARY`, `*BLOB`).
    pub binary: bool,
    /// Accepts NULL.
    pub nullable: bool,
}

/// One step of applying a schema: the statements of the store's dialect,
/// and how to tell they ran (the MySQL store resumes a half-done apply by
/// skipping the steps that are done; DDL there commits on its own).
#[derive(Clone, Debug)]
pub struct SchemaStep {
    /// The table the step changes.
    pub table: String,
    /// When the step counts as done.
    pub done_when: Done,
    /// Statements, in order.
    pub statements: Vec<String>,
}

/// When a [`SchemaStep`] is done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    /// The table exists, with exactly these columns (in any order); a
    /// table of that name with other columns is refused.
    TableExists(Vec<String>),
    /// The table has this column.
    ColumnExists(String),
    /// The table has no such column.
    ColumnAbsent(String),
}

/// A set of migrations and where its history is kept: medvault's own, or
/// an application's plain tables (a history table of its own, so the two
/// never mix).
#[derive(Clone, Copy, Debug)]
pub struct MigrationSet {
    /// The history table.
    pub history: &'static str,
    /// The MySQL guard row (`medvault_migration_guard.id`) of this set: a
    /// failed application migration does not block medvault's.
    pub guard_id: i32,
    /// What the set is called in messages.
    pub what: &'static str,
}

/// medvault's migrations (`migrations/<dialect>`).
pub const MEDVAULT_MIGRATIONS: MigrationSet = MigrationSet {
    history: "refinery_schema_history",
    guard_id: 1,
    what: "schema migration",
};

/// An application's migrations ([`crate::Session::migrate_application`]).
pub const APP_MIGRATIONS: MigrationSet = MigrationSet {
    history: "app_schema_history",
    guard_id: 2,
    what: "application migration",
};

impl SchemaStep {
    /// Whether the step is done, given the columns its table has now
    /// (empty: no such table). A table that exists with other columns than
    /// the step's is refused ([`crate::Error::SchemaMismatch`]), never
    /// adopted.
    pub(crate) fn is_done(&self, cols: &[StoredColumn]) -> Result<bool> {
        let has = |n: &str| cols.iter().any(|c| c.name == n);
        Ok(match &self.done_when {
            Done::TableExists(expected) => {
                let same = cols.len() == expected.len() && expected.iter().all(|e| has(e));
                if !cols.is_empty() && !same {
                    return Err(crate::error::Error::SchemaMismatch(format!(
                        "a table {} exists already and is not the one the schema declares; \
                         rename one of them",
                        self.table
                    )));
                }
                !cols.is_empty()
            }
            Done::ColumnExists(n) => has(n),
            Done::ColumnAbsent(n) => !has(n),
        })
    }
}

/// The store interface. Every method is one transaction.
#[async_trait]
pub trait Store: Send + Sync {
    /// A description for messages (no credentials).
    fn describe(&self) -> String;

    /// The SQL dialect the store speaks.
    fn dialect(&self) -> crate::sql::ddl::Dialect;

    /// Runs one read statement the SQL layer built (`src/sql/rows.rs`),
    /// `?` placeholders bound to `params`; every row as cells.
    async fn select(&self, sql: String, params: Vec<Value>) -> Result<Vec<Vec<crate::sql::Cell>>>;
    /// A short read (a row by its id, candidates of a blind index): the
    /// same answer as [`Store::select`], which a store may give without
    /// leaving the caller's thread when its connection is free.
    async fn lookup(&self, sql: String, params: Vec<Value>) -> Result<Vec<Vec<crate::sql::Cell>>> {
        self.select(sql, params).await
    }
    /// Runs write statements the SQL layer built, in order, in one
    /// transaction (all or nothing); the rows each one changed.
    async fn write_all(&self, statements: Vec<(String, Vec<Value>)>) -> Result<Vec<u64>>;

    /// [`Store::write_all`], with `guard` run inside the same transaction,
    /// after the statements and just before the commit: if its answer is
    /// not the one expected, nothing is written and the answer is
    /// [`crate::Error::StateMoved`]. What the guard read cannot change
    /// before the commit: SQLite writes hold the database's write lock from
    /// their first statement, and a MySQL store runs guarded writes at
    /// `SERIALIZABLE`, so the guard's reads lock what they read until the
    /// commit (a deadlock or lock wait there is `StateMoved` too when the
    /// store does not retry it itself).
    async fn write_guarded(
        &self,
        guard: &Guard,
        statements: Vec<(String, Vec<Value>)>,
    ) -> Result<Vec<u64>>;

    /// Runs an application's migrations not run yet (history in
    /// [`APP_MIGRATIONS`]`.history`, under the MySQL migration lock);
    /// returns the names of those it ran, in order.
    async fn migrate_app(&self, migrations: Vec<refinery::Migration>) -> Result<Vec<String>>;

    /// Runs write statements as they arrive on `rx`, in one transaction:
    /// `Some(chunk)` is run, `None` commits. If the sender goes away
    /// without `None`, nothing is written (rolled back) and the answer is
    /// [`crate::Error::Interrupted`]. The caller seals the next chunk
    /// while the store writes this one. Rows changed, per statement.
    /// With a `guard`, it is checked before the commit, as by
    /// [`Store::write_guarded`].
    async fn write_stream(&self, guard: Option<Guard>, rx: StatementStream) -> Result<Vec<u64>>;

    /// The policy row of the highest version, if any was applied.
    async fn latest_policy(&self) -> Result<Option<PolicyRow>>;
    /// The columns of `table`, or `None` if there is no such table.
    async fn table_columns(&self, table: &str) -> Result<Option<Vec<StoredColumn>>>;
    /// Runs `steps` (those not done yet: each says how to tell), then
    /// stores `row` if given; SQLite does all of it in one transaction. A
    /// row of that version stored already is [`crate::Error::Store`]:
    /// another administrator applied first. (`copy` runs the steps alone,
    /// to make a destination's tables.)
    async fn apply_policy(&self, steps: &[SchemaStep], row: Option<&PolicyRow>) -> Result<()>;

    /// A `vault_meta` value.
    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// All user rows.
    async fn users(&self) -> Result<Vec<UserRow>>;
    /// Inserts a new user with their personal scope, and the enrollment a
    /// store needs to let them log in (the SQLCipher store adds a keyring
    /// entry), in one transaction: all or nothing.
    async fn insert_user(&self, row: &UserRow, personal: &NewScope) -> Result<()>;
    /// Replaces a user's row (status change); `disabled` also removes the
    /// user's grants and login material in the same transaction.
    async fn replace_user(&self, row: &UserRow) -> Result<()>;

    /// Replaces a user's locked secret key (a password change); on
    /// SQLCipher their keyring entry too, in force with the same
    /// transaction. `UnknownUser` if there is no such user.
    async fn set_locked_key(&self, user: &str, locked: &[u8]) -> Result<()>;

    /// Gives a user a new key (recovery, FORMAT.md §12): their row
    /// replaced, their grants put again (wrapped to the new certificate),
    /// and on SQLCipher their keyring entry replaced (the new locked key,
    /// the database key wrapped to the new certificate), all in one
    /// transaction.
    async fn reset_user(&self, row: &UserRow, grants: &[GrantRow]) -> Result<()>;

    /// All scopes.
    async fn scopes(&self) -> Result<Vec<ScopeRow>>;
    /// All epochs.
    async fn epochs(&self) -> Result<Vec<EpochRow>>;
    /// Grants to one grantee.
    async fn grants_to(&self, grantee: &str) -> Result<Vec<GrantRow>>;
    /// Adds a scope with its first epoch and grants, in one transaction.
    async fn insert_scope(&self, scope: &NewScope) -> Result<()>;
    /// Inserts or replaces grants, in one transaction.
    async fn put_grants(&self, grants: &[GrantRow]) -> Result<()>;
    /// Grants signed by `granter`.
    async fn grants_by(&self, granter: &str) -> Result<Vec<GrantRow>>;
    /// Replaces an epoch's creator and signature (re-signing).
    async fn resign_epoch(&self, epoch: &EpochRow) -> Result<()>;
    /// Deletes the grants of `scope_id` to `grantee`; returns how many.
    async fn delete_grants(&self, scope_id: u32, grantee: &str) -> Result<usize>;

    /// All grants (for `verify`).
    async fn grants_all(&self) -> Result<Vec<GrantRow>>;
    /// Rows of `table` as they are stored: all of them, or for a paged
    /// table the next `limit` after `after` in order of its first column.
    async fn export(
        &self,
        table: &TableSpec,
        after: Option<Vec<u8>>,
        limit: u32,
    ) -> Result<Vec<Vec<Value>>>;
    /// Inserts rows as they are, in one transaction; rows whose key exists
    /// already are skipped (so a resumed copy is idempotent).
    async fn import(&self, table: &TableSpec, rows: Vec<Vec<Value>>) -> Result<()>;
    /// Number of rows of `table`.
    async fn count(&self, table: &TableSpec) -> Result<u64>;
    /// The largest first-column value of a paged table.
    async fn max_id(&self, table: &TableSpec) -> Result<Option<Vec<u8>>>;
}

/// What a failed migration run is reported as: refinery's messages and the
/// server's quote SQL text and values, so only the kind of failure, the
/// migration version and the database's error code are kept (the MySQL
/// store also stores this text in its migration guard row).
pub fn migration_detail(e: &refinery::Error) -> String {
    use refinery::error::Kind;
    match e.kind() {
        Kind::DivergentVersion(applied, _) => format!(
            "migration V{} applied to this database differs from this build's",
            applied.version()
        ),
        Kind::MissingVersion(m) => format!(
            "migration V{} applied to this database is unknown to this build (a newer medvault?)",
            m.version()
        ),
        Kind::InvalidName | Kind::InvalidVersion | Kind::RepeatedVersion(_) => {
            "the migrations built into medvault are inconsistent".into()
        }
        Kind::Connection(_, source) => {
            #[cfg(feature = "mysql")]
            if let Some(mysql_async::Error::Server(s)) = source.downcast_ref::<mysql_async::Error>()
            {
                return format!("server error {} (SQLSTATE {})", s.code, s.state);
            }
            if let Some(rusqlite::Error::SqliteFailure(f, _)) =
                source.downcast_ref::<rusqlite::Error>()
            {
                format!("SQLite error {}", f.extended_code)
            } else {
                "the database refused a migration statement".into()
            }
        }
        _ => "migration error".into(),
    }
}
