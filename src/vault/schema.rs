//! The schema in force: applied by an administrator, stored signed in the
//! vault, verified by every client at login (FORMAT.md §5.4).
//!
//! A hostile server cannot change what the client believes about the
//! schema: the text of every version is signed by an active administrator
//! chained to the pinned root, a version that does not verify refuses the
//! login, and no change an administrator may make between two versions
//! turns a column plain or changes an index (`schema/LANGUAGE.md` §8), so
//! even an older signed version the server falls back to is not weaker.

use std::sync::Arc;

use serde::Serialize;

use super::trust::{self, Directory};
use super::Session;
use crate::error::{Error, Result};
use crate::keys::pgp;
use crate::schema::change::{self, Change};
use crate::schema::parse::{Problem, Problems};
use crate::schema::{ColumnType, Implied, Schema};
use crate::sql::ddl;
use crate::store::{Dialect, Done, PolicyRow, SchemaStep, Store};

/// The schema a session works under, and where it comes from.
#[derive(Clone, Debug)]
pub(crate) struct InForce {
    pub(crate) schema: Arc<Schema>,
    /// The verified row it was read from; `None` for the built-in schema.
    pub(crate) row: Option<PolicyRow>,
}

impl InForce {
    pub(crate) fn version(&self) -> u64 {
        self.row.as_ref().map_or(0, |r| r.version)
    }
}

/// What `schema apply` did.
#[derive(Clone, Debug, Serialize)]
pub struct ApplyReport {
    /// The version now in force (unchanged if there was nothing to do).
    pub version: u64,
    /// The changes made, in words (`add table allergies`, ...).
    pub changes: Vec<String>,
    /// Rows whose value of a new blind index was computed (an index added
    /// over columns that held values already).
    pub indexed: u64,
}

/// The schema in force, as `schema show` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyInfo {
    /// 0 for the built-in schema alone.
    pub version: u64,
    /// The administrator who applied it.
    pub signer: Option<String>,
    /// When (Unix seconds).
    pub signed_at: Option<i64>,
    /// The application's schema file as applied.
    pub text: Option<String>,
    /// Every table in force, built-in first.
    pub tables: Vec<String>,
}

/// Reads the newest policy row, verifies it, and checks the tables agree.
pub(crate) async fn load(
    store: &dyn Store,
    vault_id: &[u8; 16],
    dir: &mut Directory,
) -> Result<InForce> {
    let in_force = match store.latest_policy().await? {
        None => InForce {
            schema: Arc::new(Schema::builtin().clone()),
            row: None,
        },
        Some(row) => {
            let what = || format!("schema version {}", row.version);
            let signer = dir
                .signer_cert(&row.signer)
                .map_err(|_| Error::BadSignature { what: what() })?;
            if !pgp::verify(
                &signer,
                &trust::policy_record(vault_id, &row),
                &row.signature,
            ) {
                return Err(Error::BadSignature { what: what() });
            }
            let text = std::str::from_utf8(&row.text).map_err(|_| Error::BadStoredValue {
                table: "policies",
                column: "text",
                expected: "UTF-8 text",
            })?;
            let schema = Schema::builtin().extend(text)?;
            InForce {
                schema: Arc::new(schema),
                row: Some(row),
            }
        }
    };
    check_tables(store, &in_force.schema).await?;
    Ok(in_force)
}

/// The tables of `schema` exist with their declared columns; envelopes,
/// blind indexes and ids in binary columns. Every disagreement is listed.
pub(crate) async fn check_tables(store: &dyn Store, schema: &Schema) -> Result<()> {
    let mut wrong = Vec::new();
    for t in &schema.tables {
        let Some(mut cols) = store.table_columns(&t.name).await? else {
            wrong.push(format!("table {} is missing", t.name));
            continue;
        };
        if !cols.iter().any(|c| c.name == ddl::AUTH_COLUMN) {
            // A table made before rows were authenticated (V7): it gets the
            // column, empty, so its rows read as unsigned. Another client
            // may add it at the same moment: then the table is read again.
            let add = ddl::add_auth_column(&t.name, store.dialect());
            if let Err(e) = store.write_all(vec![(add, Vec::new())]).await {
                cols = store.table_columns(&t.name).await?.unwrap_or_default();
                if !cols.iter().any(|c| c.name == ddl::AUTH_COLUMN) {
                    return Err(e);
                }
            } else {
                cols = store.table_columns(&t.name).await?.unwrap_or_default();
            }
        }
        let implied = t.implied_columns();
        let mut need: Vec<(&str, bool)> = implied
            .iter()
            .map(|i| (i.name(), !matches!(i, Implied::ScopeId)))
            .collect();
        need.extend(
            t.columns
                .iter()
                .map(|c| (c.name.as_str(), matches!(c.ty, ColumnType::Encrypted(_)))),
        );
        need.extend(t.indexes.iter().map(|i| (i.name.as_str(), true)));
        need.push((ddl::AUTH_COLUMN, true));
        for (name, binary) in need {
            match cols.iter().find(|c| c.name == name) {
                None => wrong.push(format!("{}.{name} is missing", t.name)),
                Some(c) if binary && !c.binary => wrong.push(format!(
                    "{}.{name} is not a binary column (envelopes, blind indexes and ids \
                     must not pass through a text collation)",
                    t.name
                )),
                Some(_) => {}
            }
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(Error::SchemaMismatch(wrong.join("; ")))
    }
}

/// The statements that carry `changes` out on `dialect`, as resumable steps.
/// Changes that need values recomputed or a column's type changed are
/// refused here (typed, before anything is done).
pub(crate) fn steps(
    new: &Schema,
    old: &Schema,
    changes: &[Change],
    dialect: Dialect,
) -> Result<Vec<SchemaStep>> {
    let mut out = Vec::new();
    let mut refuse = Vec::new();
    let table = |name: &str| {
        new.table(name)
            .ok_or_else(|| Error::Policy(format!("{name} is not in the new schema")))
    };
    for c in changes {
        match c {
            Change::AddTable(t) => {
                let nt = table(t)?;
                let cols = crate::sql::rows::stored_columns(nt);
                out.push(SchemaStep {
                    table: t.clone(),
                    done_when: Done::TableExists(cols),
                    statements: ddl::create_table(nt, dialect),
                })
            }
            Change::AddColumn { table: t, column } => out.push(SchemaStep {
                table: t.clone(),
                done_when: Done::ColumnExists(column.clone()),
                statements: ddl::add_column(table(t)?, column, dialect)
                    .ok_or_else(|| Error::Policy(format!("{t}.{column} is not declared")))?,
            }),
            Change::AddIndex { table: t, index } => {
                // Over columns that held values already, the index is
                // computed for every row after the change is stored
                // (`Session::apply_schema`).
                let nt = table(t)?;
                out.push(SchemaStep {
                    table: t.clone(),
                    done_when: Done::ColumnExists(index.clone()),
                    statements: ddl::add_index(nt, index, dialect)
                        .ok_or_else(|| Error::Policy(format!("{t}.{index} is not declared")))?,
                });
            }
            Change::DropIndex { table: t, index } => out.push(SchemaStep {
                table: t.clone(),
                done_when: Done::ColumnAbsent(index.clone()),
                statements: ddl::drop_index(
                    t,
                    old.table(t).and_then(|x| x.index(index)).ok_or_else(|| {
                        Error::Policy(format!("{t}.{index} is not in the schema in force"))
                    })?,
                    dialect,
                ),
            }),
            Change::Adjust {
                table: t,
                column,
                what,
            } => {
                let (o, n) = (
                    old.table(t).and_then(|x| x.column(column)),
                    new.table(t).and_then(|x| x.column(column)),
                );
                let needs_ddl = match (o, n) {
                    (Some(o), Some(n)) if o.optional != n.optional => true,
                    (Some(o), Some(n)) => match (&o.ty, &n.ty) {
                        (ColumnType::Encrypted(a), ColumnType::Encrypted(b)) => {
                            ddl::mysql_envelope_type(a) != ddl::mysql_envelope_type(b)
                        }
                        _ => false,
                    },
                    _ => false,
                };
                if needs_ddl {
                    refuse.push(Problem {
                        line: None,
                        message: format!(
                            "{t}.{column}: {what} needs the column's SQL type changed, which \
                             this version cannot do yet"
                        ),
                    });
                }
            }
        }
    }
    if refuse.is_empty() {
        Ok(out)
    } else {
        Err(Error::Schema(Problems(refuse)))
    }
}

impl Session {
    /// The schema in force: the built-in tables and the application's.
    pub fn schema(&self) -> Arc<Schema> {
        Arc::clone(&self.in_force().schema)
    }

    pub(crate) fn in_force(&self) -> InForce {
        self.schema_state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads the schema in force again (an administrator may have applied
    /// a new version since this session logged in), verified as at login.
    /// Returns the version now in force. [`Session::table`] does this by
    /// itself when asked for a table it does not know.
    pub async fn reload_schema(&self) -> Result<u64> {
        let mut dir = self.directory().await?;
        let fresh = load(&*self.store, &self.vault_id, &mut dir).await?;
        let version = fresh.version();
        let mut guard = self.schema_state.write().unwrap_or_else(|p| p.into_inner());
        // Never go back to an older version than this session has seen.
        if version >= guard.version() {
            *guard = fresh;
        }
        let now = guard.version();
        drop(guard);
        self.raise_seen()?;
        Ok(now)
    }

    /// The version of the schema in force in this session.
    pub(crate) fn schema_version(&self) -> u64 {
        self.in_force().version()
    }

    /// Runs an application's own migrations for its plain tables
    /// (administrators). `dir` holds a `sqlite/` and a `mysql/` folder of
    /// `V{n}__{name}.sql` files with the same versions and names; the
    /// folder of this store's dialect runs, each migration once, under the
    /// MySQL migration lock, with its history in `app_schema_history`,
    /// apart from medvault's own. Returns the migrations run, in order.
    /// Encrypted tables are not made this way: declare them in the schema
    /// (`apply_schema`). Nor are rows of declared tables written this way:
    /// a row a migration inserts there carries no author's signature and
    /// reads as [`Error::Forged`] (FORMAT.md §5.10).
    ///
    /// ```no_run
    /// # async fn demo(admin: &medvault::Session) -> medvault::Result<()> {
    /// for m in admin.migrate_application("migrations-app".as_ref()).await? {
    ///     println!("ran {m}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn migrate_application(&self, dir: &std::path::Path) -> Result<Vec<String>> {
        self.require_admin()?;
        let load = |d: &str| {
            let path = dir.join(d);
            refinery::load_sql_migrations(&path).map_err(|e| {
                Error::Migration(format!(
                    "cannot read the migrations in {}: {}",
                    path.display(),
                    e.kind()
                ))
            })
        };
        let (sqlite, mysql) = (load("sqlite")?, load("mysql")?);
        let names = |v: &[refinery::Migration]| v.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        if names(&sqlite) != names(&mysql) {
            return Err(Error::Migration(format!(
                "{}: the sqlite and mysql folders must hold the same V<n>__<name>.sql files",
                dir.display()
            )));
        }
        let mine = match self.store.dialect() {
            Dialect::Sqlite => sqlite,
            Dialect::Mysql => mysql,
        };
        self.store.migrate_app(mine).await
    }

    /// When an administrator is disabled: if the schema in force is signed
    /// by them, stores it again (same text, next version) signed by this
    /// session's user, or no one could log in (a disabled key signs
    /// nothing). A row that does not verify under their key is left alone.
    pub(crate) async fn resign_policy_of(
        &self,
        old: &trust::Verified,
        by: super::SignAs<'_>,
    ) -> Result<()> {
        let Some(latest) = self.store.latest_policy().await? else {
            return Ok(());
        };
        if latest.signer != old.name
            || !pgp::verify(
                &old.cert,
                &trust::policy_record(&self.vault_id, &latest),
                &latest.signature,
            )
        {
            return Ok(());
        }
        let mut row = PolicyRow {
            version: latest
                .version
                .checked_add(1)
                .ok_or(Error::Refused("the schema version is at its limit"))?,
            text: latest.text.clone(),
            signer: by.name.to_owned(),
            signed_at: super::now(),
            signature: Vec::new(),
        };
        let record = trust::policy_record(&self.vault_id, &row);
        row.signature = by.key.lock().await.sign(&record)?;
        self.store.apply_policy(&[], Some(&row)).await?;
        self.reload_schema().await.map(|_| ())
    }

    /// The schema in force, as `medvault schema show` prints it.
    pub fn policy_info(&self) -> PolicyInfo {
        let f = self.in_force();
        PolicyInfo {
            version: f.version(),
            signer: f.row.as_ref().map(|r| r.signer.clone()),
            signed_at: f.row.as_ref().map(|r| r.signed_at),
            text: f
                .row
                .as_ref()
                .map(|r| String::from_utf8_lossy(&r.text).into_owned()),
            tables: f.schema.tables.iter().map(|t| t.name.clone()).collect(),
        }
    }

    /// What [`Session::apply_schema`] would change, without changing
    /// anything (every refusal it would make, too).
    pub fn plan_schema(&self, text: &str) -> Result<Vec<String>> {
        let new = Schema::builtin().extend(text)?;
        let current = self.in_force();
        let changes = change::plan(&current.schema, &new)?;
        steps(&new, &current.schema, &changes, self.store.dialect())?;
        Ok(changes.iter().map(|c| c.to_string()).collect())
    }

    /// Applies an application's schema file (administrators): validates it
    /// against the built-in schema, plans the change from the schema in
    /// force (refusing what would lose data or weaken encryption), creates
    /// the tables and columns on the store, and stores the text signed as
    /// the next version. Nothing changes on any error; on MySQL, whose DDL
    /// commits statement by statement, an apply cut short is finished by
    /// applying the same file again.
    ///
    /// ```no_run
    /// # async fn demo(admin: &medvault::Session) -> medvault::Result<()> {
    /// let text = std::fs::read_to_string("examples/emr/schema.toml").unwrap();
    /// let report = admin.apply_schema(&text).await?;
    /// for change in &report.changes {
    ///     println!("{change}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn apply_schema(&self, text: &str) -> Result<ApplyReport> {
        self.require_admin()?;
        let new = Schema::builtin().extend(text)?;
        let current = self.in_force();
        let changes = change::plan(&current.schema, &new)?;
        if changes.is_empty() {
            // An apply cut short after its change was stored finishes here
            // (built-in indexes newer than a vault's rows are filled by
            // `fill_indexes`).
            let all: Vec<(String, String)> = new
                .tables
                .iter()
                .flat_map(|t| {
                    t.indexes
                        .iter()
                        .filter(|i| !i.builtin)
                        .map(|i| (t.name.clone(), i.name.clone()))
                })
                .collect();
            return Ok(ApplyReport {
                version: current.version(),
                changes: Vec::new(),
                indexed: self.fill_listed(current.version(), &all).await?,
            });
        }
        let mut to_fill: Vec<(String, String)> = Vec::new();
        // A new index over columns that hold values is computed for every
        // row, which needs the current key of its scope: refused before
        // anything changes when this administrator does not hold it.
        for c in &changes {
            if let Change::AddIndex { table: t, index } = c {
                let scope = new
                    .table(t)
                    .and_then(|nt| nt.index(index))
                    .and_then(|i| new.table(t).and_then(|nt| nt.column(&i.over[0])))
                    .and_then(|col| match &col.ty {
                        ColumnType::Encrypted(crate::schema::Encrypted {
                            scope: crate::schema::ScopeRule::Named(n),
                            ..
                        }) => Some(n.clone()),
                        _ => None,
                    });
                // Over a column the table had before: rows may hold values.
                let existing = new
                    .table(t)
                    .and_then(|nt| nt.index(index))
                    .is_some_and(|i| {
                        i.over.iter().any(|c| {
                            current
                                .schema
                                .table(t)
                                .is_some_and(|o| o.column(c).is_some())
                        })
                    });
                if let (true, Some(n)) = (existing, scope) {
                    let sid = self.scope_id(&n)?;
                    self.current_read_keys(sid)?;
                    to_fill.push((t.clone(), index.clone()));
                }
            }
        }
        let steps = steps(&new, &current.schema, &changes, self.store.dialect())?;
        // An index about to be dropped is first cleared from the rows that
        // hold it, their authentication signed again without it (FORMAT.md
        // §5.8): dropping the column under them would make them forged.
        // Cleared once before the new schema is stored and once after (a
        // client under the older schema may write the index until it sees
        // the new one: it is refused from then on), then the column goes.
        let mut clearing = Vec::new();
        for c in &changes {
            if let Change::DropIndex { table: t, index } = c {
                if current
                    .schema
                    .table(t)
                    .is_some_and(|o| o.index(index).is_some())
                {
                    let old = self.table(t).await?;
                    old.clear_index(index).await?;
                    clearing.push((old, index.clone()));
                }
            }
        }
        let (drops, adds): (Vec<SchemaStep>, Vec<SchemaStep>) = steps
            .into_iter()
            .partition(|s| matches!(s.done_when, Done::ColumnAbsent(_)) && !clearing.is_empty());
        let mut row = PolicyRow {
            version: current.version() + 1,
            text: text.as_bytes().to_vec(),
            signer: self.user.clone(),
            signed_at: super::now(),
            signature: Vec::new(),
        };
        let record = trust::policy_record(&self.vault_id, &row);
        row.signature = self.with_signer(|s| s.sign(&record)).await?;
        self.store.apply_policy(&adds, Some(&row)).await?;
        for (old, index) in &clearing {
            old.clear_index(index).await?;
        }
        drop(clearing);
        if !drops.is_empty() {
            // Not if another administrator applied a newer version since
            // (it may declare the index again).
            let latest = self.store.latest_policy().await?.map(|r| r.version);
            if latest != Some(row.version) {
                return Err(Error::Concurrent(
                    "the schema, applied again by another administrator",
                ));
            }
            self.store.apply_policy(&drops, None).await?;
        }
        let version = row.version;
        *self.schema_state.write().unwrap_or_else(|p| p.into_inner()) = InForce {
            schema: Arc::new(new),
            row: Some(row),
        };
        self.raise_seen()?;
        Ok(ApplyReport {
            version,
            changes: changes.iter().map(|c| c.to_string()).collect(),
            indexed: self.fill_listed(version, &to_fill).await?,
        })
    }

    /// Computes every blind index of every table (built-in ones included)
    /// for the rows that hold values in every column it covers but no
    /// index value: rows written before the index existed (a vault made
    /// before format 9 has no year of birth in its patients), or a fill
    /// cut short. Then indexes again the names indexed before format 10
    /// in their older form (`schema/FORMAT.md` §4.1: "obrien" finds
    /// O'Brien once it has run). Page by page, each page one transaction;
    /// run again, it goes on; once every name is in fold 2 the vault
    /// records it, and neither searches nor later fills look for fold 1
    /// again. Indexing names again needs the keys of their scopes.
    /// Administrators only. Returns the index values written.
    ///
    /// ```no_run
    /// # async fn demo(s: &medvault::Session) -> medvault::Result<()> {
    /// let filled = s.fill_indexes().await?;
    /// println!("{filled} index values written");
    /// # Ok(()) }
    /// ```
    pub async fn fill_indexes(&self) -> Result<u64> {
        self.require_admin()?;
        let current = self.in_force();
        let all: Vec<(String, String)> = current
            .schema
            .tables
            .iter()
            .flat_map(|t| t.indexes.iter().map(|i| (t.name.clone(), i.name.clone())))
            .collect();
        let mut written = self.fill_listed(current.version(), &all).await?;
        if self.names_refolded() {
            return Ok(written);
        }
        written += self.reindex_listed(current.version(), &all, true).await?;
        // Every name index of every table in fold 2: searches no longer
        // ask for fold 1.
        self.set_names_refolded().await?;
        Ok(written)
    }

    /// How many rows of `table` hold values in every column `index` covers
    /// but no index value ([`crate::vault::rows::RowTable::unfilled`]).
    pub async fn unfilled(&self, table: &str, index: &str) -> Result<u64> {
        self.table(table).await?.unfilled(index).await
    }

    /// Computes the blind indexes `(table, index)` for rows that hold
    /// values in every column an index covers but no index value (an index
    /// added over existing columns, or an apply cut short before it
    /// finished). Returns the rows filled; a failure is
    /// [`Error::IndexNotFilled`], the schema `version` being in force.
    async fn fill_listed(&self, version: u64, indexes: &[(String, String)]) -> Result<u64> {
        self.reindex_listed(version, indexes, false).await
    }

    /// [`Session::fill_listed`], or, when `refold`, the names of those
    /// indexes indexed again in fold 2 (`RowTable::refold_index`).
    async fn reindex_listed(
        &self,
        version: u64,
        indexes: &[(String, String)],
        refold: bool,
    ) -> Result<u64> {
        let mut written = 0;
        for (t, i) in indexes {
            let done = match (self.table(t).await, refold) {
                (Ok(rows), false) => rows.fill_index(i).await,
                (Ok(rows), true) => rows.refold_index(i).await,
                (Err(e), _) => Err(e),
            };
            written += done.map_err(|e| Error::IndexNotFilled {
                version,
                index: format!("{t}.{i}"),
                cause: match refold {
                    false => e.to_string(),
                    true => format!("indexing its names again (fold 2): {e}"),
                },
            })?;
        }
        Ok(written)
    }
}
