//! Shared fixtures. Each test gets its own vault: a SQLCipher file in its
//! own temporary directory, or a fresh MySQL database on the server of
//! `MEDVAULT_TEST_MYSQL_URL` (default the local MariaDB). `per_store!`
//! runs the same test bodies once per store; a MySQL server that is down
//! makes the MySQL tests fail, never skip.
#![allow(dead_code)]

use std::path::PathBuf;

use medvault::{CreateOptions, KdfParams, NewPatient, OpenOptions, Session, Sex, Vault};
use mysql_async::prelude::Queryable;

pub const ADMIN: &str = "admin";
pub const ADMIN_PW: &str = "admin password";

pub fn kdf() -> KdfParams {
    KdfParams::danger_fast_for_tests()
}

pub fn open_opts() -> OpenOptions {
    OpenOptions {
        kdf: kdf(),
        pinned_root: None,
        new_password: None,
        state_dir: None,
    }
}

/// Adds `name` as the README recommends: `admin` invites them, they make
/// their own key under `pw`, `admin` certifies it. (A user `add_user`
/// makes must change their password at their first login.)
#[allow(dead_code)]
pub async fn enrol(admin: &Session, name: &str, pw: &str, as_admin: bool) {
    let invitation = admin.invite(name, as_admin, None).await.unwrap();
    let request = medvault::enrol(&invitation, pw, kdf()).unwrap();
    let e = admin.certify(&request).await.unwrap();
    assert_eq!(e.name, name);
}

/// Runs each named `async fn name(f: Fixture)` once per store.
#[macro_export]
macro_rules! per_store {
    ($($name:ident),* $(,)?) => {
        mod sqlcipher {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::Fixture::sqlite().await).await
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::Fixture::mysql().await).await
                }
            )*
        }
    };
}

/// The server the MySQL tests use.
pub fn mysql_base_url() -> String {
    std::env::var("MEDVAULT_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// A value for raw SQL.
#[derive(Clone, Debug)]
pub enum Val {
    B(Vec<u8>),
    I(i64),
    T(String),
}

impl From<Vec<u8>> for Val {
    fn from(v: Vec<u8>) -> Val {
        Val::B(v)
    }
}
impl From<&[u8]> for Val {
    fn from(v: &[u8]) -> Val {
        Val::B(v.to_vec())
    }
}
impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::I(v)
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val::T(v.into())
    }
}
impl From<medvault::Id> for Val {
    fn from(v: medvault::Id) -> Val {
        Val::B(v.as_bytes().to_vec())
    }
}

pub struct MysqlDb {
    pub name: String,
    pub base: String,
}

impl Drop for MysqlDb {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        // Drop the test database from a thread of its own: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut c) = mysql_async::Conn::from_url(base.as_str()).await {
                    // Not for a day (the server's default) behind a test's
                    // transaction left open by a failure.
                    let _ = c.query_drop("SET SESSION lock_wait_timeout = 20").await;
                    let _ = c
                        .query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
                        .await;
                    let _ = c.disconnect().await;
                }
            });
        })
        .join();
    }
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub shares: Vec<String>,
    pub root_fingerprint: String,
    pub mysql: Option<MysqlDb>,
}

/// An empty database on the test server, dropped with the guard.
pub async fn empty_mysql() -> (String, MysqlDb) {
    let base = mysql_base_url();
    let name = format!("mvt_{}", hex::encode(medvault::crypto::random_array::<8>()));
    let mut c = mysql_async::Conn::from_url(base.as_str()).await.unwrap();
    c.query_drop(format!("CREATE DATABASE `{name}`"))
        .await
        .unwrap();
    c.disconnect().await.unwrap();
    (with_db(&base, &name), MysqlDb { name, base })
}

pub fn with_db(base: &str, db: &str) -> String {
    let (head, _) = base
        .rsplit_once('/')
        .expect("MEDVAULT_TEST_MYSQL_URL ends in /database");
    format!("{head}/{db}")
}

impl Fixture {
    pub async fn new() -> Fixture {
        Self::sqlite().await
    }

    pub async fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlcipher:{}", dir.path().join("vault.db").display());
        Self::create(dir, url, None).await
    }

    /// A fresh database on the test server.
    pub async fn mysql() -> Fixture {
        let (url, db) = empty_mysql().await;
        Self::create(tempfile::tempdir().unwrap(), url, Some(db)).await
    }

    async fn create(dir: tempfile::TempDir, url: String, mysql: Option<MysqlDb>) -> Fixture {
        let report = Vault::create(
            &url,
            ADMIN,
            ADMIN_PW,
            &CreateOptions {
                kdf: kdf(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        Fixture {
            dir,
            url,
            shares: report.shares,
            root_fingerprint: report.root_fingerprint,
            mysql,
        }
    }

    pub fn is_mysql(&self) -> bool {
        self.mysql.is_some()
    }

    pub fn opts(&self) -> OpenOptions {
        OpenOptions {
            kdf: kdf(),
            pinned_root: self.mysql.as_ref().map(|_| self.root_fingerprint.clone()),
            new_password: None,
            state_dir: None,
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("vault.db")
    }

    pub fn keyring_path(&self) -> PathBuf {
        self.dir.path().join("vault.db.keyring")
    }

    pub async fn login(&self, user: &str, pw: &str) -> medvault::Result<Session> {
        Vault::open(&self.url, user, pw, &self.opts()).await
    }

    /// The first login of a user whose password someone else chose: refused
    /// until they choose `new`, then opened with it (the old password no
    /// longer opens).
    #[allow(dead_code)]
    pub async fn first_login(&self, user: &str, pw: &str, new: &str) -> Session {
        match self.login(user, pw).await {
            Err(medvault::Error::PasswordChangeRequired { user: u, .. }) => assert_eq!(u, user),
            Err(e) => panic!("{user}: expected a forced password change, got {e}"),
            Ok(_) => panic!("{user}: logged in without the forced password change"),
        }
        let opts = OpenOptions {
            new_password: Some(new.to_owned()),
            ..self.opts()
        };
        let s = Vault::open(&self.url, user, pw, &opts).await.unwrap();
        assert!(s.changed_password_at_login());
        assert!(matches!(
            self.login(user, pw).await,
            Err(medvault::Error::WrongPassword(_))
        ));
        s
    }

    pub async fn admin(&self) -> Session {
        self.login(ADMIN, ADMIN_PW).await.unwrap()
    }

    /// Adds `name` (password `<name> pw`) with the given scopes.
    pub async fn user(&self, admin: &Session, name: &str, scopes: &[&str]) -> Session {
        enrol(admin, name, &format!("{name} pw"), false).await;
        for s in scopes {
            admin.grant(name, s).await.unwrap();
        }
        self.login(name, &format!("{name} pw")).await.unwrap()
    }

    /// Everything the store holds, as an attacker reading it would see it:
    /// the SQLCipher file, its journals and keyring, and every cell of
    /// every table read with the database key (page encryption alone would
    /// hide a field stored in clear); or a MySQL dump with binary columns
    /// as hex.
    pub fn stored_bytes(&self) -> Vec<u8> {
        if let Some(db) = &self.mysql {
            return mysql_dump(&db.base, &db.name);
        }
        let mut all = sqlite_cells(self);
        for suffix in ["", "-wal", "-journal", "-shm", ".keyring"] {
            let mut p = self.db_path().into_os_string();
            p.push(suffix);
            if let Ok(b) = std::fs::read(PathBuf::from(p)) {
                all.extend(b);
            }
        }
        all
    }

    /// Whether `marker` appears in what the store holds, in clear or, for
    /// a hex dump, hex-encoded.
    pub fn leaks(&self, marker: &str) -> bool {
        let bytes = self.stored_bytes();
        contains(&bytes, marker.as_bytes())
            || contains(&bytes, hex::encode_upper(marker).as_bytes())
            || contains(&bytes, hex::encode(marker).as_bytes())
    }

    /// Makes the vault look like one made before format 7 (FORMAT.md
    /// §5.10): without the record that every row is signed, a row with no
    /// authentication reads as unsigned, not forged, in sessions opened
    /// from now on.
    #[allow(dead_code)]
    pub async fn made_before_rows_were_signed(&self) {
        let n = self
            .exec("DELETE FROM vault_meta WHERE `key` = 'rows_signed'", vec![])
            .await;
        assert_eq!(n, 1);
    }

    /// Executes raw SQL (`?` placeholders) as the attacker; rows changed.
    pub async fn exec(&self, sql: &str, params: Vec<Val>) -> u64 {
        match &self.mysql {
            None => {
                let p: Vec<Box<dyn rusqlite::ToSql>> = params.into_iter().map(to_sql).collect();
                let refs: Vec<&dyn rusqlite::ToSql> = p.iter().map(|b| b.as_ref()).collect();
                raw(self).execute(sql, refs.as_slice()).unwrap() as u64
            }
            Some(db) => {
                let mut c = mysql_async::Conn::from_url(with_db(&db.base, &db.name).as_str())
                    .await
                    .unwrap();
                c.exec_drop(sql, to_my(params)).await.unwrap();
                let n = c.affected_rows();
                c.disconnect().await.unwrap();
                n
            }
        }
    }

    /// Runs statements without parameters on one connection, in order
    /// (so a `SET` reaches the statements after it).
    pub async fn exec_script(&self, stmts: &[&str]) {
        match &self.mysql {
            None => {
                let c = raw(self);
                for s in stmts {
                    c.execute_batch(s).unwrap();
                }
            }
            Some(db) => {
                let mut c = mysql_async::Conn::from_url(with_db(&db.base, &db.name).as_str())
                    .await
                    .unwrap();
                for s in stmts {
                    c.query_drop(*s).await.unwrap();
                }
                c.disconnect().await.unwrap();
            }
        }
    }

    /// One blob from raw SQL.
    pub async fn blob(&self, sql: &str, params: Vec<Val>) -> Vec<u8> {
        self.one(sql, params).await
    }

    /// One integer from raw SQL.
    pub async fn int(&self, sql: &str, params: Vec<Val>) -> i64 {
        self.one(sql, params).await
    }

    /// The first column of the first row of raw SQL.
    async fn one<T>(&self, sql: &str, params: Vec<Val>) -> T
    where
        T: rusqlite::types::FromSql + mysql_async::prelude::FromValue + Send + 'static,
    {
        match &self.mysql {
            None => {
                let p: Vec<Box<dyn rusqlite::ToSql>> = params.into_iter().map(to_sql).collect();
                let refs: Vec<&dyn rusqlite::ToSql> = p.iter().map(|b| b.as_ref()).collect();
                raw(self)
                    .query_row(sql, refs.as_slice(), |r| r.get(0))
                    .unwrap()
            }
            Some(db) => {
                let mut c = mysql_async::Conn::from_url(with_db(&db.base, &db.name).as_str())
                    .await
                    .unwrap();
                let v: Option<T> = c.exec_first(sql, to_my(params)).await.unwrap();
                c.disconnect().await.unwrap();
                v.expect("a row")
            }
        }
    }

    /// The first column of every row of raw SQL, as bytes (NULL skipped).
    pub async fn blobs(&self, sql: &str) -> Vec<Vec<u8>> {
        match &self.mysql {
            None => {
                let c = raw(self);
                let mut st = c.prepare(sql).unwrap();
                st.query_map([], |r| r.get::<_, Option<Vec<u8>>>(0))
                    .unwrap()
                    .filter_map(|r| r.unwrap())
                    .collect()
            }
            Some(db) => {
                let mut c = mysql_async::Conn::from_url(with_db(&db.base, &db.name).as_str())
                    .await
                    .unwrap();
                let v: Vec<Option<Vec<u8>>> = c.query(sql).await.unwrap();
                c.disconnect().await.unwrap();
                v.into_iter().flatten().collect()
            }
        }
    }

    /// How the store would run `sql`, one line per step: SQLite's
    /// `EXPLAIN QUERY PLAN` details (`SEARCH t USING INDEX i (c=?)`,
    /// `SCAN t`), or MySQL's `EXPLAIN` rows as `table type=T key=K`.
    pub async fn plan(&self, sql: &str, params: Vec<Val>) -> Vec<String> {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        match &self.mysql {
            None => {
                let p: Vec<Box<dyn rusqlite::ToSql>> = params.into_iter().map(to_sql).collect();
                let refs: Vec<&dyn rusqlite::ToSql> = p.iter().map(|b| b.as_ref()).collect();
                let c = raw(self);
                let mut st = c.prepare(&explain).unwrap();
                st.query_map(refs.as_slice(), |r| r.get::<_, String>(3))
                    .unwrap()
                    .map(|r| r.unwrap())
                    .collect()
            }
            Some(db) => {
                let mut c = mysql_async::Conn::from_url(with_db(&db.base, &db.name).as_str())
                    .await
                    .unwrap();
                let rows: Vec<mysql_async::Row> = c
                    .exec(format!("EXPLAIN {sql}"), to_my(params))
                    .await
                    .unwrap();
                c.disconnect().await.unwrap();
                rows.iter()
                    .map(|r| {
                        let get = |k: &str| {
                            r.get::<Option<String>, _>(k)
                                .flatten()
                                .unwrap_or_else(|| "NULL".into())
                        };
                        format!("{} type={} key={}", get("table"), get("type"), get("key"))
                    })
                    .collect()
            }
        }
    }

    /// How many envelopes of `table.column` are under each key epoch.
    pub async fn epochs_of(
        &self,
        table: &str,
        column: &str,
    ) -> std::collections::BTreeMap<u32, usize> {
        let mut out = std::collections::BTreeMap::new();
        for b in self.blobs(&format!("SELECT {column} FROM {table}")).await {
            let e = u32::from_be_bytes(b[5..9].try_into().unwrap());
            *out.entry(e).or_default() += 1;
        }
        out
    }

    /// Number of patient rows, read raw.
    pub async fn patient_count(&self) -> i64 {
        self.int("SELECT count(*) FROM patients", vec![]).await
    }
}

fn to_sql(v: Val) -> Box<dyn rusqlite::ToSql> {
    match v {
        Val::B(b) => Box::new(b),
        Val::I(i) => Box::new(i),
        Val::T(t) => Box::new(t),
    }
}

fn to_my(params: Vec<Val>) -> mysql_async::Params {
    if params.is_empty() {
        return mysql_async::Params::Empty;
    }
    mysql_async::Params::Positional(
        params
            .into_iter()
            .map(|v| match v {
                Val::B(b) => b.into(),
                Val::I(i) => i.into(),
                Val::T(t) => t.into(),
            })
            .collect(),
    )
}

fn mysql_dump(base: &str, db: &str) -> Vec<u8> {
    let rest = base.strip_prefix("mysql://").expect("mysql:// URL");
    let (auth, hostpath) = rest.rsplit_once('@').expect("user@host");
    let (user, pass) = auth.split_once(':').unwrap_or((auth, ""));
    let hostport = hostpath.split('/').next().unwrap_or("127.0.0.1");
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "3306"));
    let mut cmd = std::process::Command::new("mariadb-dump");
    cmd.args([
        "--hex-blob",
        "--skip-comments",
        "-h",
        host,
        "-P",
        port,
        "-u",
        user,
    ]);
    if !pass.is_empty() {
        cmd.arg(format!("-p{pass}"));
    }
    let out = cmd
        .arg(db)
        .output()
        .expect("mariadb-dump runs (package mariadb-client)");
    assert!(
        out.status.success(),
        "mariadb-dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        contains(&out.stdout, b"INSERT INTO `patients`")
            || contains(&out.stdout, b"CREATE TABLE `patients`")
    );
    out.stdout
}

pub fn patient(family: &str, given: &str, born: &str) -> NewPatient {
    NewPatient {
        family_name: family.into(),
        given_names: given.into(),
        born: born.into(),
        sex: Sex::F,
    }
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// A raw SQL connection to the vault file, as an attacker who holds the
/// database key (or a malicious database) would have: unwraps the key with
/// the admin's login material, using only public API.
pub fn raw(f: &Fixture) -> rusqlite::Connection {
    use medvault::keys::pgp::LockedKey;
    use medvault::store::keyring::Keyring;
    assert!(f.mysql.is_none(), "raw() is for the SQLCipher store");
    let kr = Keyring::read(&f.keyring_path()).unwrap();
    let e = kr.entry(ADMIN).unwrap();
    let dec = LockedKey::parse(&e.locked_key)
        .unwrap()
        .unlock_decryptor(ADMIN, &ADMIN_PW.into())
        .unwrap();
    let key = dec.unwrap(&e.wrapped_db_key).unwrap();
    let c = rusqlite::Connection::open(f.db_path()).unwrap();
    c.execute_batch("PRAGMA cipher_log_level = NONE;").unwrap();
    c.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex::encode(&key[..])))
        .unwrap();
    c
}

/// Every cell of every table of the SQLCipher file, opened with its key:
/// text and blobs as they are, numbers in decimal.
pub fn sqlite_cells(f: &Fixture) -> Vec<u8> {
    use rusqlite::types::ValueRef;
    let c = raw(f);
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(tables.iter().any(|t| t == "patients"), "{tables:?}");
    let mut out = Vec::new();
    for t in tables {
        let mut st = c.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let n = st.column_count();
        let mut rows = st.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            for i in 0..n {
                match r.get_ref(i).unwrap() {
                    ValueRef::Text(b) | ValueRef::Blob(b) => out.extend_from_slice(b),
                    ValueRef::Integer(v) => out.extend(v.to_string().into_bytes()),
                    ValueRef::Real(v) => out.extend(v.to_string().into_bytes()),
                    ValueRef::Null => {}
                }
                out.push(0);
            }
        }
    }
    out
}

/// Number of patient rows, read raw (SQLCipher).
pub fn patient_count(f: &Fixture) -> i64 {
    raw(f)
        .query_row("SELECT count(*) FROM patients", [], |r| r.get(0))
        .unwrap()
}

/// The example clinic schema (`examples/emr/schema.toml`).
pub const EMR: &str = include_str!("../../examples/emr/schema.toml");

/// A rotation of `identity` stopped after its first batch, of one row (two
/// patients are added first, so one stays behind): the newer epoch exists
/// and the older is still live; what the tables of the scope held stays
/// under the older.
pub async fn rotation_stopped_part_way(a: &Session) {
    for i in 0..2 {
        a.insert_patient(&patient("Dupont", &format!("Jean {i}"), "1970-03-02"))
            .await
            .unwrap();
    }
    let opts = medvault::RotateOptions {
        batch: 1,
        ..Default::default()
    };
    let report = a
        .rotate_with("identity", &opts, &mut |_| std::ops::ControlFlow::Break(()))
        .await
        .unwrap();
    assert!(!report.finished);
}

/// The example schema applied, and one patient, by the administrator.
pub async fn emr_with_patient(f: &Fixture) -> (Session, medvault::Id) {
    let a = f.admin().await;
    a.apply_schema(EMR).await.unwrap();
    let p = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    (a, p)
}

/// An allergy of patient `p` in the example schema.
pub fn allergy(p: medvault::Id, substance: &str) -> medvault::vault::rows::NewRow {
    medvault::vault::rows::NewRow::child_of(p)
        .set("substance", substance)
        .set("reaction", "Rash")
        .set("recorded_on", "2020")
}

/// A members table with an encrypted card number (a `code` of scope
/// `identity`), a plain note, and a unique index over the card.
pub const MEMBERS: &str = "format = 2
[[table]]
name = \"members\"

[[column]]
table = \"members\"
column = \"card\"
scope = \"identity\"
kind = \"code\"
max_bytes = 32
optional = true

[[column]]
table = \"members\"
column = \"note\"
plain = \"text\"
optional = true

[[index]]
table = \"members\"
column = \"uq_card\"
over = [\"card\"]
kind = \"unique\"
";

/// [`MEMBERS`] without its index: the table as it was before the unique
/// index was added.
pub fn members_unindexed() -> &'static str {
    MEMBERS.split("[[index]]").next().unwrap()
}
