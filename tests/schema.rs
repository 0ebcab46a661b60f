//! The migrations agree with the built-in schema in schema/policy.toml.

mod common;
use common::*;
use medvault::policy::Policy;

fn columns(c: &rusqlite::Connection, table: &str) -> Vec<(String, String, bool)> {
    let mut st = c.prepare(&format!("PRAGMA table_info({table})")).unwrap();
    st.query_map([], |r| {
        Ok((
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)? == 1,
        ))
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

fn indexed_first_columns(c: &rusqlite::Connection, table: &str) -> Vec<String> {
    let mut st = c.prepare(&format!("PRAGMA index_list({table})")).unwrap();
    let names: Vec<String> = st
        .query_map([], |r| r.get(1))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    names
        .iter()
        .map(|n| {
            c.query_row(&format!("PRAGMA index_info({n})"), [], |r| {
                r.get::<_, String>(2)
            })
            .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn sqlite_tables_agree_with_the_policy() {
    let f = Fixture::new().await;
    let c = raw(&f);
    let p = Policy::builtin();
    for col in &p.columns {
        let cols = columns(&c, &col.table);
        let found = cols.iter().find(|(n, _, _)| n == &col.column);
        assert!(
            matches!(found, Some((_, ty, true)) if ty == "BLOB"),
            "{}.{} must be a NOT NULL BLOB, found {found:?}",
            col.table,
            col.column
        );
    }
    for idx in &p.indexes {
        let cols = columns(&c, &idx.table);
        // The year of birth (V9), the phonetic family name (V10), the
        // family name's prefixes (V11) and the given names' words (V12)
        // came after rows they had no value for: NULL until filled. The
        // others came with their rows.
        let nullable = [
            "bi_born_year",
            "bi_family_phonetic",
            "bi_family_prefix",
            "bi_given_words",
        ]
        .contains(&idx.column.as_str());
        assert!(
            cols.iter()
                .any(|(n, ty, nn)| n == &idx.column && ty == "BLOB" && *nn != nullable),
            "{}.{} must be a BLOB, NOT NULL unless added after its rows",
            idx.table,
            idx.column
        );
        // A tokens index is searched through the columns derived of it
        // (FORMAT.md §4.5), each indexed.
        let searched: Vec<String> = if idx.column == "bi_given_words" {
            (1..=4)
                .map(|k| format!("{}__{k}", idx.column))
                .chain(Some(format!("{}__more", idx.column)))
                .chain(Some(idx.column.clone()))
                .collect()
        } else {
            vec![idx.column.clone()]
        };
        for col in searched {
            assert!(
                indexed_first_columns(&c, &idx.table).contains(&col),
                "{}.{col} needs an SQL index for lookups",
                idx.table,
            );
        }
    }
    // Conversely, no column slips in unencrypted: the migrated tables have
    // exactly the declared columns (sqlite_builtin_tables_are_what_the_schema_declares).
}

#[test]
fn migration_files_are_numbered_without_gaps() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
    let mut versions: Vec<u32> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let rest = name
                .strip_prefix('V')
                .unwrap_or_else(|| panic!("{name}: expected V<n>__<name>.sql"));
            let (n, tail) = rest
                .split_once("__")
                .unwrap_or_else(|| panic!("{name}: expected V<n>__<name>.sql"));
            assert!(tail.ends_with(".sql"), "{name}");
            n.parse().unwrap()
        })
        .collect();
    versions.sort();
    assert_eq!(versions, (1..=versions.len() as u32).collect::<Vec<_>>());
}

#[test]
fn both_dialects_hold_the_same_migration_versions() {
    let versions = |d: &str| -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(format!("{}/migrations/{d}", env!("CARGO_MANIFEST_DIR")))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
        v.sort();
        v
    };
    assert_eq!(
        versions("sqlite"),
        versions("mysql"),
        "same V<n>__<name>.sql files in both folders"
    );
}

/// The MySQL tables agree with the policy: envelopes and blind indexes in
/// binary columns (never a text column with a collation), and every blind
/// index has an SQL index.
#[tokio::test]
async fn mysql_tables_agree_with_the_policy() {
    use mysql_async::prelude::Queryable;
    let f = Fixture::mysql().await;
    let db = &f.mysql.as_ref().unwrap().name;
    let mut c = mysql_async::Conn::from_url(f.url.as_str()).await.unwrap();
    let p = Policy::builtin();
    let binary = ["varbinary", "binary", "blob", "mediumblob", "longblob"];
    let col_type = |t: &str, c: &str| {
        format!(
            "SELECT data_type, is_nullable FROM information_schema.columns
         WHERE table_schema = '{db}' AND table_name = '{t}' AND column_name = '{c}'"
        )
    };
    for col in &p.columns {
        let row: Option<(String, String)> = c
            .query_first(col_type(&col.table, &col.column))
            .await
            .unwrap();
        let (ty, nullable) = row.unwrap_or_else(|| panic!("{}.{} missing", col.table, col.column));
        assert!(
            binary.contains(&ty.as_str()) && nullable == "NO",
            "{}.{}: {ty}",
            col.table,
            col.column
        );
    }
    for idx in &p.indexes {
        let row: Option<(String, String)> = c
            .query_first(col_type(&idx.table, &idx.column))
            .await
            .unwrap();
        let (ty, _) = row.unwrap_or_else(|| panic!("{}.{} missing", idx.table, idx.column));
        assert!(
            binary.contains(&ty.as_str()),
            "{}.{}: {ty}",
            idx.table,
            idx.column
        );
        // A tokens index is searched through the columns derived of it
        // (FORMAT.md §4.5), each indexed.
        let searched: Vec<String> = if idx.column == "bi_given_words" {
            (1..=4)
                .map(|k| format!("{}__{k}", idx.column))
                .chain(Some(format!("{}__more", idx.column)))
                .chain(Some(idx.column.clone()))
                .collect()
        } else {
            vec![idx.column.clone()]
        };
        for col in searched {
            let first: Option<i64> = c
                .query_first(format!(
                    "SELECT 1 FROM information_schema.statistics WHERE table_schema = '{db}'
                     AND table_name = '{}' AND column_name = '{col}' AND seq_in_index = 1",
                    idx.table
                ))
                .await
                .unwrap();
            assert!(first.is_some(), "{}.{col} needs an SQL index", idx.table);
        }
    }
    c.disconnect().await.unwrap();
}

/// The built-in tables the migrations make are the tables the schema
/// declares: `CREATE TABLE` built from `schema/policy.toml` (src/sql/ddl.rs)
/// and the migrated vault have the same columns, types and NULL rules.
#[tokio::test]
async fn sqlite_builtin_tables_are_what_the_schema_declares() {
    use medvault::schema::Schema;
    use medvault::sql::ddl::{create_table, Dialect};
    let f = Fixture::new().await;
    let migrated = raw(&f);
    let generated = rusqlite::Connection::open_in_memory().unwrap();
    generated
        .execute_batch("CREATE TABLE scopes (id INTEGER PRIMARY KEY NOT NULL)")
        .unwrap();
    let s = Schema::builtin();
    for t in &s.tables {
        for stmt in create_table(t, Dialect::Sqlite) {
            generated.execute_batch(&stmt).unwrap();
        }
        let mut want = columns(&generated, &t.name);
        let mut have = columns(&migrated, &t.name);
        want.sort();
        have.sort();
        assert_eq!(have, want, "{}: migrated vs declared", t.name);
        let mut want = indexed_first_columns(&generated, &t.name);
        let have = indexed_first_columns(&migrated, &t.name);
        want.retain(|c| !have.contains(c));
        assert!(want.is_empty(), "{}: no SQL index on {want:?}", t.name);
    }
}

/// The same on MariaDB: the generated statements run, and make the columns
/// the migrations made, binary where the migrations' are and NULL alike.
#[tokio::test]
async fn mysql_builtin_tables_are_what_the_schema_declares() {
    use medvault::schema::Schema;
    use medvault::sql::ddl::{create_table, Dialect};
    use mysql_async::prelude::Queryable;
    let f = Fixture::mysql().await;
    let (gen_url, gen_db) = empty_mysql().await;
    let mut g = mysql_async::Conn::from_url(gen_url.as_str()).await.unwrap();
    g.query_drop("CREATE TABLE scopes (id INT UNSIGNED NOT NULL PRIMARY KEY) ENGINE = InnoDB")
        .await
        .unwrap();
    let s = Schema::builtin();
    for t in &s.tables {
        for stmt in create_table(t, Dialect::Mysql) {
            g.query_drop(&stmt)
                .await
                .unwrap_or_else(|e| panic!("{stmt}: {e}"));
        }
    }
    let mut m = mysql_async::Conn::from_url(f.url.as_str()).await.unwrap();
    let shape = |db: &str, table: &str| {
        format!(
            "SELECT column_name, data_type IN ('binary', 'varbinary', 'blob', 'mediumblob', 'longblob'),
                    is_nullable
             FROM information_schema.columns WHERE table_schema = '{db}' AND table_name = '{table}'
             ORDER BY column_name"
        )
    };
    let db = &f.mysql.as_ref().unwrap().name;
    for t in &s.tables {
        let have: Vec<(String, bool, String)> = m.query(shape(db, &t.name)).await.unwrap();
        let want: Vec<(String, bool, String)> =
            g.query(shape(&gen_db.name, &t.name)).await.unwrap();
        assert!(!want.is_empty());
        assert_eq!(have, want, "{}: migrated vs declared", t.name);
    }
    g.disconnect().await.unwrap();
    m.disconnect().await.unwrap();
}
