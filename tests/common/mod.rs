//! Shared fixtures. Each test gets its own vault in its own temporary
//! directory. The store-specific part is `Fixture::new`; the MySQL store
//! will add a second constructor and the same test bodies run on both.
#![allow(dead_code)]

use std::path::PathBuf;

use medvault::{CreateOptions, KdfParams, NewPatient, OpenOptions, Session, Sex, Vault};

pub const ADMIN: &str = "admin";
pub const ADMIN_PW: &str = "admin password";

pub fn kdf() -> KdfParams {
    KdfParams::danger_fast_for_tests()
}

pub fn open_opts() -> OpenOptions {
    OpenOptions {
        kdf: kdf(),
        pinned_root: None,
    }
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub shares: Vec<String>,
    pub root_fingerprint: String,
}

impl Fixture {
    pub async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlcipher:{}", dir.path().join("vault.db").display());
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
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("vault.db")
    }

    pub fn keyring_path(&self) -> PathBuf {
        self.dir.path().join("vault.db.keyring")
    }

    pub async fn login(&self, user: &str, pw: &str) -> medvault::Result<Session> {
        Vault::open(&self.url, user, pw, &open_opts()).await
    }

    pub async fn admin(&self) -> Session {
        self.login(ADMIN, ADMIN_PW).await.unwrap()
    }

    /// Adds `name` (password `<name> pw`) with the given scopes.
    pub async fn user(&self, admin: &Session, name: &str, scopes: &[&str]) -> Session {
        admin
            .add_user(name, &format!("{name} pw"), false)
            .await
            .unwrap();
        for s in scopes {
            admin.grant(name, s).await.unwrap();
        }
        self.login(name, &format!("{name} pw")).await.unwrap()
    }

    /// Every byte of the database file and its journals.
    pub fn stored_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for suffix in ["", "-wal", "-journal", "-shm", ".keyring"] {
            let mut p = self.db_path().into_os_string();
            p.push(suffix);
            if let Ok(b) = std::fs::read(PathBuf::from(p)) {
                all.extend(b);
            }
        }
        all
    }
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

/// Number of patient rows, read raw.
pub fn patient_count(f: &Fixture) -> i64 {
    raw(f)
        .query_row("SELECT count(*) FROM patients", [], |r| r.get(0))
        .unwrap()
}
