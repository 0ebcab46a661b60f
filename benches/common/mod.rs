//! What the store benchmarks share: synthetic patients, the plaintext
//! baselines' schema, and a medvault vault made for a run.
#![allow(dead_code)] // each bench uses its own part

use std::path::Path;
use std::time::Duration;

use criterion::{BenchmarkGroup, SamplingMode};
use medvault::{
    CreateOptions, KdfParams, NewNote, NewPatient, OpenOptions, PatientQuery, Session, Sex, Vault,
};

pub const ADMIN: &str = "admin";
pub const ADMIN_PW: &str = "bench password";

/// One synthetic patient with a 300-byte note.
#[derive(Clone)]
pub struct Person {
    pub family: String,
    pub given: String,
    pub born: String,
    pub sex: Sex,
    pub note: String,
}

impl Person {
    pub fn sex_code(&self) -> &'static str {
        match self.sex {
            Sex::F => "F",
            Sex::M => "M",
            Sex::X => "X",
            Sex::U => "U",
        }
    }
}

const SYLLABLES: [&str; 24] = [
    "du", "pont", "mar", "tin", "ber", "nard", "le", "roy", "mo", "reau", "pe", "tit", "fa", "ure",
    "gar", "nier", "ro", "bert", "ri", "chard", "lé", "çe", "lik", "bon",
];
const GIVEN: [&str; 16] = [
    "Marie", "Jean", "Léa", "Ibrahim", "Renée", "Aurélie", "Lucas", "Chloé", "Hugo", "Inès",
    "Noah", "Zoé", "Karim", "Sofia", "Émile", "Nadia",
];
const WORDS: [&str; 16] = [
    "patient",
    "reports",
    "mild",
    "pain",
    "since",
    "last",
    "visit",
    "no",
    "fever",
    "blood",
    "pressure",
    "stable",
    "continue",
    "treatment",
    "review",
    "weeks",
];

/// A small deterministic generator: every run benchmarks the same data.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Lcg {
        Lcg(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() as usize) % n
    }
}

/// `n` patients: about 14,000 distinct family names (two or three
/// syllables, some double-barrelled), 16 × 16 given-name pairs, dates of
/// birth over 90 years, and a 300-byte note each.
pub fn synthetic(n: usize) -> Vec<Person> {
    let mut r = Lcg::new(0x6d65_6476_6175_6c74);
    (0..n)
        .map(|_| {
            let name = |r: &mut Lcg| {
                let k = 2 + r.below(2);
                let mut s: String = (0..k).map(|_| SYLLABLES[r.below(24)]).collect();
                // Capitalise the first letter.
                let first: String = s.chars().take(1).flat_map(char::to_uppercase).collect();
                s.replace_range(..s.chars().next().map_or(0, char::len_utf8), &first);
                s
            };
            let family = if r.below(10) == 0 {
                format!("{}-{}", name(&mut r), name(&mut r))
            } else {
                name(&mut r)
            };
            let given = format!("{} {}", GIVEN[r.below(16)], GIVEN[r.below(16)]);
            let born = format!(
                "{}-{:02}-{:02}",
                1930 + r.below(90),
                1 + r.below(12),
                1 + r.below(28)
            );
            let sex = [Sex::F, Sex::M, Sex::X, Sex::U][r.below(4)];
            let mut note = String::with_capacity(310);
            while note.len() < 300 {
                note.push_str(WORDS[r.below(16)]);
                note.push(' ');
            }
            note.truncate(300);
            Person {
                family,
                given,
                born,
                sex,
                note,
            }
        })
        .collect()
}

/// The `i`-th of `n` lookups: every 10th patient, cycling.
pub fn lookup_targets(people: &[Person], n: usize) -> Vec<&Person> {
    let mut r = Lcg::new(42);
    (0..n).map(|_| &people[r.below(people.len())]).collect()
}

pub fn as_import(people: &[Person]) -> Vec<(NewPatient, Vec<NewNote>)> {
    people
        .iter()
        .map(|p| {
            (
                NewPatient {
                    family_name: p.family.clone(),
                    given_names: p.given.clone(),
                    born: p.born.clone(),
                    sex: p.sex,
                },
                vec![NewNote {
                    scope: None,
                    body: p.note.clone(),
                }],
            )
        })
        .collect()
}

pub fn query(p: &Person) -> PatientQuery {
    PatientQuery {
        family_name: Some(p.family.clone()),
        born: Some(p.born.clone()),
        ..Default::default()
    }
}

/// A cheap Argon2 setting: the store benchmarks measure the store, and
/// `keys_copy` measures the production login.
pub fn bench_kdf() -> KdfParams {
    KdfParams::danger_fast_for_tests()
}

/// Creates a vault at `url` and logs its admin in. Returns the session and
/// the root fingerprint (a shared server's login needs it).
pub async fn new_vault(url: &str) -> (Session, String) {
    let report = Vault::create(
        url,
        ADMIN,
        ADMIN_PW,
        &CreateOptions {
            kdf: bench_kdf(),
            ..Default::default()
        },
    )
    .await
    .expect("create the benchmark vault");
    let s = Vault::open(
        url,
        ADMIN,
        ADMIN_PW,
        &OpenOptions {
            kdf: bench_kdf(),
            pinned_root: Some(report.root_fingerprint.clone()),
            new_password: None,
            state_dir: None,
        },
    )
    .await
    .expect("log in to the benchmark vault");
    (s, report.root_fingerprint)
}

/// The benchmarks' MySQL server: `MEDVAULT_BENCH_MYSQL_URL`, else
/// `MEDVAULT_TEST_MYSQL_URL`, else the local server's `test` database.
pub fn mysql_base_url() -> String {
    std::env::var("MEDVAULT_BENCH_MYSQL_URL")
        .or_else(|_| std::env::var("MEDVAULT_TEST_MYSQL_URL"))
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// Drops `db` on the benchmarks' server and makes it again, empty; returns
/// its URL.
pub async fn fresh_mysql_db(db: &str) -> String {
    use mysql_async::prelude::Queryable;
    let base = mysql_base_url();
    let mut c = mysql_async::Conn::from_url(base.as_str())
        .await
        .unwrap_or_else(|e| {
            panic!("the MySQL benchmarks need a server at {base} (MEDVAULT_BENCH_MYSQL_URL): {e}")
        });
    c.query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
        .await
        .expect("drop");
    c.query_drop(format!("CREATE DATABASE `{db}`"))
        .await
        .expect("create database");
    c.disconnect().await.expect("disconnect");
    let (head, _) = base
        .rsplit_once('/')
        .expect("the MySQL URL ends in /database");
    format!("{head}/{db}")
}

/// A size from the environment, or `default`.
pub fn size_from_env(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn sqlcipher_url(dir: &Path) -> String {
    format!("sqlcipher:{}", dir.join("vault.db").display())
}

/// Large-workload settings: ten samples, one run each when a run takes
/// seconds.
pub fn slow<M: criterion::measurement::Measurement>(g: &mut BenchmarkGroup<'_, M>, secs: u64) {
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(secs));
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The plaintext baseline: the same patients and notes in clear columns,
/// indexed the way medvault indexes its blind indexes (family name, given
/// names, date of birth, family name + date of birth; notes by patient).
pub const PLAIN_SQLITE_SCHEMA: &str = "
CREATE TABLE patients (
    id          INTEGER PRIMARY KEY NOT NULL,
    family_name TEXT NOT NULL,
    given_names TEXT NOT NULL,
    born        TEXT NOT NULL,
    sex         TEXT NOT NULL,
    author      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX patients_family_name ON patients (family_name);
CREATE INDEX patients_given_names ON patients (given_names);
CREATE INDEX patients_born ON patients (born);
CREATE INDEX patients_family_born ON patients (family_name, born);
CREATE TABLE notes (
    id         INTEGER PRIMARY KEY NOT NULL,
    patient_id INTEGER NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    scope_id   INTEGER NOT NULL,
    body       TEXT NOT NULL,
    author     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX notes_patient ON notes (patient_id, created_at);
";

/// The same connection settings medvault's SQLCipher store uses
/// (src/store/sqlite.rs), so the three ways differ only in what they store.
pub const SQLITE_PRAGMAS: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA foreign_keys = ON;
PRAGMA temp_store = MEMORY;
PRAGMA cache_size = -65536;
";

/// What a plaintext program might add to index the desk's searches that
/// medvault's later built-in indexes serve: an expression index on the
/// year of birth and a table of given-name words filled at insert (a
/// family-name prefix is served by `patients_family_name`), and an index
/// on `updated_at` for "most recent", which medvault orders without an
/// index of its own. Nothing for the sound, and no folded name column.
pub const PLAIN_DESK_INDEXES: &str = "
CREATE INDEX patients_born_year ON patients (substr(born, 1, 4));
CREATE INDEX patients_updated ON patients (updated_at);
CREATE TABLE patient_words (
    word       TEXT NOT NULL,
    patient_id INTEGER NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    PRIMARY KEY (word, patient_id)
) WITHOUT ROWID;
";

/// A plaintext SQLite database, unkeyed or keyed with a raw SQLCipher key.
pub struct PlainSqlite {
    pub conn: rusqlite::Connection,
    /// Whether [`PLAIN_DESK_INDEXES`] was added (the insert then fills
    /// the words).
    pub desk: bool,
}

impl PlainSqlite {
    pub fn create(path: &Path, key: Option<&[u8; 32]>) -> PlainSqlite {
        let conn = rusqlite::Connection::open(path).expect("open");
        if let Some(k) = key {
            conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex::encode(k)))
                .expect("key");
        }
        conn.execute_batch(SQLITE_PRAGMAS).expect("pragmas");
        conn.execute_batch(PLAIN_SQLITE_SCHEMA).expect("schema");
        PlainSqlite { conn, desk: false }
    }

    /// [`PlainSqlite::create`] with [`PLAIN_DESK_INDEXES`].
    pub fn with_desk_indexes(path: &Path, key: Option<&[u8; 32]>) -> PlainSqlite {
        let mut db = PlainSqlite::create(path, key);
        db.conn.execute_batch(PLAIN_DESK_INDEXES).expect("desk");
        db.desk = true;
        db
    }

    /// All patients and their notes in one transaction, one prepared
    /// statement per table (as medvault does).
    pub fn insert(&mut self, people: &[Person]) {
        let tx = self.conn.transaction().expect("begin");
        {
            let mut p = tx
                .prepare_cached(
                    "INSERT INTO patients (id, family_name, given_names, born, sex, author, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                )
                .expect("prepare");
            let mut n = tx
                .prepare_cached(
                    "INSERT INTO notes (id, patient_id, scope_id, body, author, created_at)
                     VALUES (?1, ?1, 2, ?2, ?3, ?4)",
                )
                .expect("prepare");
            for (i, x) in people.iter().enumerate() {
                let id = i as i64 + 1;
                p.execute(rusqlite::params![
                    id,
                    x.family,
                    x.given,
                    x.born,
                    x.sex_code(),
                    ADMIN,
                    1_700_000_000i64
                ])
                .expect("insert patient");
            }
            if self.desk {
                let mut w = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO patient_words (word, patient_id) VALUES (?1, ?2)",
                    )
                    .expect("prepare");
                for (i, x) in people.iter().enumerate() {
                    for word in x.given.split_whitespace() {
                        w.execute(rusqlite::params![word.to_lowercase(), i as i64 + 1])
                            .expect("insert word");
                    }
                }
            }
            for (i, x) in people.iter().enumerate() {
                n.execute(rusqlite::params![
                    i as i64 + 1,
                    x.note,
                    ADMIN,
                    1_700_000_000i64
                ])
                .expect("insert note");
            }
        }
        tx.commit().expect("commit");
    }

    /// Exact lookup by family name and date of birth, every column read.
    pub fn find(&self, family: &str, born: &str) -> Vec<(i64, String, String, String, String)> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, family_name, given_names, born, sex FROM patients
                 WHERE family_name = ?1 AND born = ?2",
            )
            .expect("prepare");
        st.query_map([family, born], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
    }

    /// Every patient's four identity fields, in pages of 1,000 by id as
    /// medvault lists them.
    pub fn list_all(&self) -> usize {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, family_name, given_names, born, sex FROM patients
                 WHERE id > ?1 ORDER BY id LIMIT 1000",
            )
            .expect("prepare");
        let mut after = 0i64;
        let mut n = 0;
        loop {
            let page: Vec<(i64, String, String, String, String)> = st
                .query_map([after], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .expect("query")
                .collect::<rusqlite::Result<_>>()
                .expect("rows");
            match page.last() {
                Some(last) => after = last.0,
                None => return n,
            }
            n += page.len();
        }
    }
}

/// Lists every patient through medvault, in pages of 1,000; returns how
/// many.
pub async fn list_all(s: &Session) -> usize {
    let mut after = None;
    let mut n = 0;
    loop {
        let page = s.list_patients(after.as_ref(), 1000).await.expect("list");
        n += page.patients.len();
        match page.next {
            Some(id) => after = Some(id),
            None => return n,
        }
    }
}
