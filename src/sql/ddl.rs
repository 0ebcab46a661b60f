//! `CREATE TABLE` statements built from the schema, for each dialect.
//!
//! One function per dialect turns a declared [`Table`] into the
//! statements that create it, so a table's columns are written down once
//! (in the schema) and never by hand in a store. Envelopes and blind
//! indexes always go in binary columns: a text column with a collation
//! would compare, trim or re-encode them.
//!
//! | declared | SQLite (`STRICT`) | MySQL / MariaDB |
//! | --- | --- | --- |
//! | `id` | `BLOB` primary key, 16 bytes | `BINARY(16)` primary key |
//! | parent column | `BLOB` → parent `ON DELETE CASCADE` | `BINARY(16)`, same foreign key |
//! | `scope_id` | `INTEGER` → `scopes` | `INT UNSIGNED` → `scopes` |
//! | encrypted | `BLOB` | `VARBINARY(n)` up to 1024 bytes of envelope, else `BLOB` / `MEDIUMBLOB` |
//! | blind index | `BLOB` + SQL index | `VARBINARY(32)` + SQL index |
//! | text | `TEXT` | `TEXT` utf8mb4, binary collation |
//! | integer, timestamp | `INTEGER` | `BIGINT` |
//! | date | `TEXT` | `VARCHAR(10)` ascii |
//! | boolean | `INTEGER` 0 or 1 | `BOOLEAN` |
//! | bytes | `BLOB` | `MEDIUMBLOB` |
//! | ref | `BLOB` → table, 16 bytes | `BINARY(16)` → table |

use crate::crypto::envelope;
use crate::schema::{Column, ColumnType, Encrypted, Implied, Index, PlainType, Table};

/// An SQL dialect medvault speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite / SQLCipher.
    Sqlite,
    /// MySQL and MariaDB.
    Mysql,
}

impl Dialect {
    /// Both, in the order they are printed.
    pub const ALL: [Dialect; 2] = [Dialect::Sqlite, Dialect::Mysql];

    /// The dialect's name as the CLI prints it.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Mysql => "mysql",
        }
    }

    /// An `INSERT` that keeps a row already there under the same key and
    /// writes nothing (`INSERT OR IGNORE`, `INSERT IGNORE`).
    pub fn insert_keeping(self) -> &'static str {
        match self {
            Dialect::Sqlite => "INSERT OR IGNORE",
            Dialect::Mysql => "INSERT IGNORE",
        }
    }

    /// `name` quoted as an identifier. Declared names are `[a-z][a-z0-9_]*`
    /// already (the schema parser refuses others); quoting keeps SQL
    /// keywords usable as names.
    pub fn quote(self, name: &str) -> String {
        match self {
            Dialect::Sqlite => format!("\"{name}\""),
            Dialect::Mysql => format!("`{name}`"),
        }
    }
}

/// The largest envelope a column's values make.
fn envelope_len(e: &crate::schema::Encrypted) -> usize {
    envelope::OVERHEAD + e.padding.padded_len(e.max_bytes)
}

/// The SQL index on `column` of `table`: `<table>__<column>`. Declared
/// names never hold `__`, so these names cannot meet a table's or another
/// index's (SQLite keeps tables and indexes in one namespace).
pub fn index_name(table: &str, column: &str) -> String {
    format!("{table}__{column}")
}

/// A column definition and the MySQL keys (foreign keys) it needs.
struct ColumnSql {
    def: String,
    keys: Vec<String>,
}

fn null(optional: bool) -> &'static str {
    if optional {
        "NULL"
    } else {
        "NOT NULL"
    }
}

fn declared_column(c: &Column, dialect: Dialect) -> ColumnSql {
    let q = |n: &str| dialect.quote(n);
    let n = q(&c.name);
    let nn = null(c.optional);
    let mut keys = Vec::new();
    let def = match (&c.ty, dialect) {
        (ColumnType::Encrypted(_), Dialect::Sqlite) => format!("{n} BLOB {nn}"),
        (ColumnType::Encrypted(e), Dialect::Mysql) => {
            format!("{n} {} {nn}", mysql_envelope_type(e))
        }
        (ColumnType::Plain(p), Dialect::Sqlite) => match p {
            PlainType::Text | PlainType::Date { .. } => format!("{n} TEXT {nn}"),
            PlainType::Integer | PlainType::Timestamp => format!("{n} INTEGER {nn}"),
            PlainType::Boolean => format!("{n} INTEGER {nn} CHECK ({n} IN (0, 1))"),
            PlainType::Bytes => format!("{n} BLOB {nn}"),
            PlainType::Ref(r) => format!(
                "{n} BLOB {nn} REFERENCES {} (\"id\") CHECK (length({n}) = 16)",
                q(r)
            ),
        },
        (ColumnType::Plain(p), Dialect::Mysql) => match p {
            PlainType::Text => format!("{n} TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin {nn}"),
            PlainType::Date { .. } => {
                format!("{n} VARCHAR(10) CHARACTER SET ascii COLLATE ascii_bin {nn}")
            }
            PlainType::Integer | PlainType::Timestamp => format!("{n} BIGINT {nn}"),
            PlainType::Boolean => format!("{n} BOOLEAN {nn}"),
            PlainType::Bytes => format!("{n} MEDIUMBLOB {nn}"),
            PlainType::Ref(r) => {
                keys.push(format!("FOREIGN KEY ({n}) REFERENCES {} (`id`)", q(r)));
                format!("{n} BINARY(16) {nn}")
            }
        },
    };
    ColumnSql { def, keys }
}

/// The MySQL type of an encrypted column: the largest envelope it holds.
pub fn mysql_envelope_type(e: &Encrypted) -> String {
    let len = envelope_len(e);
    if len <= 1024 {
        format!("VARBINARY({len})")
    } else if len <= 65_535 {
        "BLOB".into()
    } else {
        "MEDIUMBLOB".into()
    }
}

/// An index column's definition (NULL where a covered column is optional:
/// a row without that value has no index value) and its SQL index: for
/// SQLite a `CREATE INDEX` statement, for MySQL a `KEY` clause.
fn index_column(table: &Table, i: &Index, dialect: Dialect) -> (String, String) {
    let q = |n: &str| dialect.quote(n);
    let n = q(&i.name);
    // An application's index columns are NULLable whatever they cover: an
    // index value is derived data, and a column left behind by a MySQL
    // apply cut short (its drop runs after the signed row) must not block
    // inserts. The built-in ones are as the migrations made them: NOT
    // NULL, but for those added after the rows they index (V9, V10, V11, V12).
    let optional = !i.builtin
        || i.kind != crate::schema::IndexKind::Equal
        || i.over
            .iter()
            .any(|c| table.column(c).is_some_and(|c| c.optional));
    let nn = null(optional);
    let key = q(&index_name(&table.name, &i.name));
    // A unique index's tag is under a unique constraint (NULLs, rows not
    // indexed yet, apart).
    let unique = if i.kind == crate::schema::IndexKind::Unique {
        "UNIQUE "
    } else {
        ""
    };
    match dialect {
        Dialect::Sqlite => (
            format!("{n} BLOB {nn}"),
            format!("CREATE {unique}INDEX {key} ON {} ({n})", q(&table.name)),
        ),
        Dialect::Mysql => (
            format!("{n} VARBINARY(32) {nn}"),
            format!("{unique}KEY {key} ({n})"),
        ),
    }
}

/// An index's columns and SQL indexes: its own column with an SQL index
/// (for a tokens index, what finds the rows not filled yet), and for a
/// tokens index the columns the store derives of it (FORMAT.md §4.5),
/// each with an SQL index: slot k holds the k-th keyed word,
/// `substr(value, 1 + (k - 1) * n, n)` with n the bytes of one, and
/// `__more` whether the value holds more words than slots.
fn index_columns(table: &Table, i: &Index, dialect: Dialect) -> (Vec<String>, Vec<String>) {
    let (def, key) = index_column(table, i, dialect);
    let Some(slots) = i.slots else {
        return (vec![def], vec![key]);
    };
    let q = |n: &str| dialect.quote(n);
    let (main, n) = (q(&i.name), i.value_len());
    let mut defs = vec![def];
    let mut keys = vec![key];
    for (k, col) in i.derived_columns().iter().enumerate() {
        let c = q(col);
        let at = 1 + k * n;
        let def = match (usize::from(slots) == k, dialect) {
            (false, Dialect::Sqlite) => format!("{c} BLOB AS (substr({main}, {at}, {n})) VIRTUAL"),
            (false, Dialect::Mysql) => {
                format!("{c} VARBINARY({n}) AS (SUBSTRING({main}, {at}, {n})) VIRTUAL")
            }
            (true, Dialect::Sqlite) => {
                format!("{c} INTEGER AS (length({main}) > {}) VIRTUAL", k * n)
            }
            (true, Dialect::Mysql) => {
                format!("{c} TINYINT AS (LENGTH({main}) > {}) VIRTUAL", k * n)
            }
        };
        defs.push(def);
        let key = q(&index_name(&table.name, col));
        keys.push(match dialect {
            Dialect::Sqlite => format!("CREATE INDEX {key} ON {} ({c})", q(&table.name)),
            Dialect::Mysql => format!("KEY {key} ({c})"),
        });
    }
    (defs, keys)
}

/// The statements that create `table` in `dialect`, in order.
pub fn create_table(table: &Table, dialect: Dialect) -> Vec<String> {
    let q = |n: &str| dialect.quote(n);
    let t = &table.name;
    let mut cols: Vec<String> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    let mut after: Vec<String> = Vec::new();
    for i in table.implied_columns() {
        let n = q(i.name());
        cols.push(match (i, dialect) {
            (Implied::Id, Dialect::Sqlite) => {
                format!("{n} BLOB PRIMARY KEY NOT NULL CHECK (length({n}) = 16)")
            }
            (Implied::Id, Dialect::Mysql) => format!("{n} BINARY(16) NOT NULL PRIMARY KEY"),
            (Implied::Parent(p), Dialect::Sqlite) => format!(
                "{n} BLOB NOT NULL REFERENCES {} (\"id\") ON DELETE CASCADE CHECK (length({n}) = 16)",
                q(&p.table)
            ),
            (Implied::Parent(p), Dialect::Mysql) => {
                keys.push(format!(
                    "FOREIGN KEY ({n}) REFERENCES {} (`id`) ON DELETE CASCADE",
                    q(&p.table)
                ));
                format!("{n} BINARY(16) NOT NULL")
            }
            (Implied::ScopeId, Dialect::Sqlite) => {
                format!("{n} INTEGER NOT NULL REFERENCES \"scopes\" (\"id\")")
            }
            (Implied::ScopeId, Dialect::Mysql) => {
                keys.push(format!("FOREIGN KEY ({n}) REFERENCES `scopes` (`id`)"));
                format!("{n} INT UNSIGNED NOT NULL")
            }
        });
        if let Implied::Parent(p) = i {
            let key = q(&index_name(t, &p.column));
            match dialect {
                Dialect::Sqlite => {
                    after.push(format!("CREATE INDEX {key} ON {} ({})", q(t), q(&p.column)))
                }
                Dialect::Mysql => keys.push(format!("KEY {key} ({})", q(&p.column))),
            }
        }
    }
    for c in &table.columns {
        let c = declared_column(c, dialect);
        cols.push(c.def);
        keys.extend(c.keys);
    }
    for i in &table.indexes {
        let (defs, made) = index_columns(table, i, dialect);
        cols.extend(defs);
        match dialect {
            Dialect::Sqlite => after.extend(made),
            Dialect::Mysql => keys.extend(made),
        }
    }
    cols.push(auth_column_def(dialect));
    let body = cols
        .into_iter()
        .chain(keys)
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join(",\n");
    let tail = match dialect {
        Dialect::Sqlite => ") STRICT",
        Dialect::Mysql => ") ENGINE = InnoDB",
    };
    let mut out = vec![format!("CREATE TABLE {} (\n{body}\n{tail}", q(t))];
    out.extend(after);
    out
}

/// The column every data table carries for the authentication of its
/// rows by their author (FORMAT.md §5.8, §9.13): NULL for a row written
/// before it existed.
pub const AUTH_COLUMN: &str = "medvault_auth";

/// The definition of [`AUTH_COLUMN`].
fn auth_column_def(dialect: Dialect) -> String {
    let n = dialect.quote(AUTH_COLUMN);
    match dialect {
        Dialect::Sqlite => format!("{n} BLOB"),
        Dialect::Mysql => format!("{n} VARBINARY(255) NULL"),
    }
}

/// The statement that adds [`AUTH_COLUMN`] to a table made before it
/// existed.
pub fn add_auth_column(table: &str, dialect: Dialect) -> String {
    format!(
        "ALTER TABLE {} ADD COLUMN {}",
        dialect.quote(table),
        auth_column_def(dialect)
    )
}

/// The statements that add the declared column `column` of `table` (an
/// optional column: rows exist already). `None` if it is not declared.
pub fn add_column(table: &Table, column: &str, dialect: Dialect) -> Option<Vec<String>> {
    let c = declared_column(table.column(column)?, dialect);
    let t = dialect.quote(&table.name);
    Some(match dialect {
        Dialect::Sqlite => vec![format!("ALTER TABLE {t} ADD COLUMN {}", c.def)],
        Dialect::Mysql => {
            let mut clauses = vec![format!("ADD COLUMN {}", c.def)];
            clauses.extend(c.keys.into_iter().map(|k| format!("ADD {k}")));
            vec![format!("ALTER TABLE {t} {}", clauses.join(", "))]
        }
    })
}

/// The statements that add the index `index` of `table`: its column and
/// its SQL index. `None` if it is not declared.
pub fn add_index(table: &Table, index: &str, dialect: Dialect) -> Option<Vec<String>> {
    let (defs, keys) = index_columns(table, table.index(index)?, dialect);
    let t = dialect.quote(&table.name);
    Some(match dialect {
        Dialect::Sqlite => defs
            .iter()
            .map(|d| format!("ALTER TABLE {t} ADD COLUMN {d}"))
            .chain(keys)
            .collect(),
        // One statement: MySQL's DDL is not transactional.
        Dialect::Mysql => {
            let clauses: Vec<String> = defs
                .iter()
                .map(|d| format!("ADD COLUMN {d}"))
                .chain(keys.iter().map(|k| format!("ADD {k}")))
                .collect();
            vec![format!("ALTER TABLE {t} {}", clauses.join(", "))]
        }
    })
}

/// The statements that drop the index column of `index` (as the schema
/// it is dropped from declared it) from `table`, with the columns derived
/// of it and their SQL indexes.
pub fn drop_index(table: &str, index: &Index, dialect: Dialect) -> Vec<String> {
    let q = |n: &str| dialect.quote(n);
    // The derived columns first: they refer to the index column.
    let mut cols = index.derived_columns();
    cols.push(index.name.clone());
    match dialect {
        Dialect::Sqlite => cols
            .iter()
            .map(|c| format!("DROP INDEX IF EXISTS {}", q(&index_name(table, c))))
            .chain(
                cols.iter()
                    .map(|c| format!("ALTER TABLE {} DROP COLUMN {}", q(table), q(c))),
            )
            .collect(),
        // One statement: MySQL's DDL is not transactional.
        Dialect::Mysql => {
            let clauses: Vec<String> = cols
                .iter()
                .map(|c| format!("DROP COLUMN {}", q(c)))
                .collect();
            vec![format!("ALTER TABLE {} {}", q(table), clauses.join(", "))]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    const APP: &str = r#"format = 2
[[table]]
name = "appointments"
parent = "patients"

[[column]]
table = "appointments"
column = "at"
plain = "timestamp"

[[column]]
table = "appointments"
column = "reason"
scope = "per-row"
kind = "text"
max_bytes = 500

[[column]]
table = "appointments"
column = "with_doctor"
plain = "ref"
references = "patients"
optional = true

[[column]]
table = "appointments"
column = "confirmed"
plain = "boolean"
"#;

    #[test]
    fn sqlite_statements_run_and_make_the_declared_columns() {
        let s = Schema::builtin().extend(APP).unwrap();
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE scopes (id INTEGER PRIMARY KEY NOT NULL)")
            .unwrap();
        for t in &s.tables {
            for stmt in create_table(t, Dialect::Sqlite) {
                c.execute_batch(&stmt)
                    .unwrap_or_else(|e| panic!("{stmt}: {e}"));
            }
        }
        let mut st = c
            .prepare("SELECT name, type, \"notnull\" FROM pragma_table_info('appointments')")
            .unwrap();
        let cols: Vec<(String, String, bool)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let want: Vec<(String, String, bool)> = [
            ("id", "BLOB", true),
            ("parent_id", "BLOB", true),
            ("scope_id", "INTEGER", true),
            ("at", "INTEGER", true),
            ("reason", "BLOB", true),
            ("with_doctor", "BLOB", false),
            ("confirmed", "INTEGER", true),
            ("medvault_auth", "BLOB", false),
        ]
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), *c))
        .collect();
        assert_eq!(cols, want);
        // STRICT: a text in a blob column is refused by SQLite itself.
        c.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        let e = c.execute(
            "INSERT INTO appointments VALUES (zeroblob(16), zeroblob(16), 1, 0, 'clear', NULL, 0, NULL)",
            [],
        );
        let e = e.expect_err("a STRICT table refuses text in an envelope column");
        assert!(
            e.to_string()
                .contains("cannot store TEXT value in BLOB column"),
            "{e}"
        );
    }

    #[test]
    fn mysql_envelope_columns_fit_their_largest_value() {
        let s = Schema::builtin();
        let sql = create_table(s.table("patients").unwrap(), Dialect::Mysql).join("\n");
        // 200 bytes padded to 224, plus 41 of envelope.
        assert!(
            sql.contains("`family_name` VARBINARY(265) NOT NULL"),
            "{sql}"
        );
        assert!(sql.contains("KEY `patients__bi_born` (`bi_born`)"), "{sql}");
        let sql = create_table(s.table("notes").unwrap(), Dialect::Mysql).join("\n");
        assert!(sql.contains("`body` MEDIUMBLOB NOT NULL"), "{sql}");
        assert!(
            sql.contains(
                "FOREIGN KEY (`patient_id`) REFERENCES `patients` (`id`) ON DELETE CASCADE"
            ),
            "{sql}"
        );
    }
}
