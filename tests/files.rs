//! The embedded store's files: keyring missing, damaged, tampered or from
//! another vault; database damaged or opened with the wrong key.

mod common;
use common::*;
use medvault::keys::pgp::LockedKey;
use medvault::store::keyring::Keyring;
use medvault::Error;

#[tokio::test]
async fn missing_keyring() {
    let f = Fixture::new().await;
    std::fs::remove_file(f.keyring_path()).unwrap();
    assert!(matches!(
        f.login(ADMIN, ADMIN_PW).await,
        Err(Error::KeyringMissing(_))
    ));
}

#[tokio::test]
async fn damaged_keyring_is_corrupt() {
    let f = Fixture::new().await;
    let mut b = std::fs::read(f.keyring_path()).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x10;
    std::fs::write(f.keyring_path(), &b).unwrap();
    assert!(matches!(
        f.login(ADMIN, ADMIN_PW).await,
        Err(Error::KeyringCorrupt { .. })
    ));
    std::fs::write(f.keyring_path(), &b[..40]).unwrap();
    assert!(matches!(
        f.login(ADMIN, ADMIN_PW).await,
        Err(Error::KeyringCorrupt { .. })
    ));
}

/// An attacker edits the keyring and fixes up its (unkeyed) checksum; the
/// MAC, keyed from the database key, still catches it.
#[tokio::test]
async fn tampered_keyring_is_detected() {
    let f = Fixture::new().await;
    let a = f.admin().await;
    enrol(&a, "bob", "bob pw", false).await;
    drop(a);
    let path = f.keyring_path();
    let mut kr = Keyring::read(&path).unwrap();
    // Re-pin another root: an edit only a holder of the database key may
    // make. The forger does not have it and signs with a key of its own.
    kr.root_fingerprint = "00".repeat(32);
    let forged = kr.to_bytes(&medvault::crypto::secret::DbKey::generate());
    std::fs::write(&path, forged).unwrap();
    assert!(matches!(
        f.login(ADMIN, ADMIN_PW).await,
        Err(Error::KeyringTampered(_))
    ));
}

/// The keyring's MAC is checked before anything it says is acted on: a
/// forged `disabled` mark (or any other edit with a fixed-up checksum) is
/// tampering, not a disabled user.
#[tokio::test]
async fn a_forged_disabled_mark_is_tampering() {
    let f = Fixture::new().await;
    let path = f.keyring_path();
    let mut kr = Keyring::read(&path).unwrap();
    kr.disabled.push(ADMIN.into());
    let forged = kr.to_bytes(&medvault::crypto::secret::DbKey::generate());
    std::fs::write(&path, forged).unwrap();
    let err = f.login(ADMIN, ADMIN_PW).await.unwrap_err();
    assert!(matches!(err, Error::KeyringTampered(_)), "{err}");
}

#[tokio::test]
async fn keyring_of_another_vault_is_the_wrong_key() {
    let f = Fixture::new().await;
    let other = Fixture::new().await;
    std::fs::copy(other.keyring_path(), f.keyring_path()).unwrap();
    let err = f.login(ADMIN, ADMIN_PW).await.unwrap_err();
    assert!(matches!(err, Error::WrongDatabaseKey(_)), "{err}");
}

#[tokio::test]
async fn damaged_database_is_corrupt_not_wrong_key() {
    let f = Fixture::new().await;
    f.admin()
        .await
        .insert_patient(&patient("Dupont", "Hélène", "1970-03-02"))
        .await
        .unwrap();
    let mut b = std::fs::read(f.db_path()).unwrap();
    // Page 1, after SQLCipher's 16-byte salt.
    for x in &mut b[100..140] {
        *x ^= 0x5a;
    }
    std::fs::write(f.db_path(), &b).unwrap();
    let err = f.login(ADMIN, ADMIN_PW).await.unwrap_err();
    assert!(matches!(err, Error::DatabaseCorrupt(_)), "{err}");
}

#[tokio::test]
async fn database_replaced_by_garbage_is_the_wrong_key() {
    let f = Fixture::new().await;
    std::fs::write(f.db_path(), vec![0x42u8; 8192]).unwrap();
    let err = f.login(ADMIN, ADMIN_PW).await.unwrap_err();
    assert!(matches!(err, Error::WrongDatabaseKey(_)), "{err}");
}

#[tokio::test]
async fn database_key_is_only_in_wrapped_form() {
    let f = Fixture::new().await;
    let kr = Keyring::read(&f.keyring_path()).unwrap();
    let e = kr.entry(ADMIN).unwrap();
    let key = LockedKey::parse(&e.locked_key)
        .unwrap()
        .unlock_decryptor(ADMIN, &ADMIN_PW.into())
        .unwrap()
        .unwrap(&e.wrapped_db_key)
        .unwrap();
    assert_eq!(key.len(), 32);
    assert!(!contains(&f.stored_bytes(), &key[..]));
    // Without the key the file does not open.
    let c = rusqlite::Connection::open(f.db_path()).unwrap();
    c.execute_batch("PRAGMA cipher_log_level = NONE;").unwrap();
    assert!(c
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r
            .get::<_, i64>(0))
        .is_err());
}

/// The database key, as any user (here the admin) can unwrap it.
fn db_key(f: &Fixture) -> medvault::crypto::secret::DbKey {
    let kr = Keyring::read(&f.keyring_path()).unwrap();
    let e = kr.entry(ADMIN).unwrap();
    let raw = LockedKey::parse(&e.locked_key)
        .unwrap()
        .unlock_decryptor(ADMIN, &ADMIN_PW.into())
        .unwrap()
        .unwrap(&e.wrapped_db_key)
        .unwrap();
    medvault::crypto::secret::DbKey::from_slice(&raw).unwrap()
}

fn next_path(f: &Fixture) -> std::path::PathBuf {
    medvault::store::keyring::next_path(&f.keyring_path())
}

/// Adding a user changes the database and the keyring: the keyring edit
/// is written as `<keyring>.next` and put in force after the commit. A
/// crash between the two (simulated: the old keyring in place, the new one
/// waiting) is finished at the next open, and the new user logs in.
#[tokio::test]
async fn a_keyring_edit_interrupted_after_its_commit_is_finished() {
    let f = Fixture::new().await;
    let old = std::fs::read(f.keyring_path()).unwrap();
    enrol(&f.admin().await, "bob", "bob pw", false).await;
    let new = std::fs::read(f.keyring_path()).unwrap();
    assert_ne!(old, new);
    assert!(!next_path(&f).exists(), "installed after the commit");
    std::fs::write(f.keyring_path(), &old).unwrap();
    std::fs::write(next_path(&f), &new).unwrap();
    f.login("bob", "bob pw").await.unwrap();
    assert_eq!(std::fs::read(f.keyring_path()).unwrap(), new);
    assert!(!next_path(&f).exists());
}

/// A keyring edit whose transaction never committed (simulated: a valid
/// `.next` enrolling "mallory" that the database does not record) is
/// discarded at the next open and enrols nobody.
#[tokio::test]
async fn a_keyring_edit_that_never_committed_is_discarded() {
    let f = Fixture::new().await;
    let key = db_key(&f);
    let mut kr = Keyring::read(&f.keyring_path()).unwrap();
    let mut mallory = kr.entry(ADMIN).unwrap().clone();
    mallory.name = "mallory".into();
    kr.entries.push(mallory);
    kr.write(&key, &next_path(&f)).unwrap();
    let err = f.login("mallory", ADMIN_PW).await.unwrap_err();
    assert!(matches!(err, Error::UnknownUser(_)), "{err}");
    assert!(!next_path(&f).exists());
    f.login(ADMIN, ADMIN_PW).await.unwrap();
}

/// An older keyring put back (it still carries a valid MAC: adding a user
/// does not change the database key) is not the one the database records:
/// tampering. (After a user is disabled the key changes, and an older
/// keyring does not open the file at all.)
#[tokio::test]
async fn an_older_keyring_put_back_is_tampering() {
    let f = Fixture::new().await;
    let a = f.admin().await;
    enrol(&a, "bob", "bob pw", false).await;
    let before = std::fs::read(f.keyring_path()).unwrap();
    enrol(&a, "carol", "carol pw", false).await;
    drop(a);
    std::fs::write(f.keyring_path(), &before).unwrap();
    for (user, pw) in [(ADMIN, ADMIN_PW), ("bob", "bob pw")] {
        let err = f.login(user, pw).await.unwrap_err();
        assert!(matches!(err, Error::KeyringTampered(_)), "{user}: {err}");
    }
}

/// Opens the vault file raw with `key`; whether it reads.
fn opens_with(f: &Fixture, key: &medvault::crypto::secret::DbKey) -> bool {
    let c = rusqlite::Connection::open(f.db_path()).unwrap();
    c.execute_batch("PRAGMA cipher_log_level = NONE;").unwrap();
    c.execute_batch(&format!(
        "PRAGMA key = \"x'{}'\";",
        hex::encode(key.expose())
    ))
    .unwrap();
    c.query_row("SELECT count(*) FROM users", [], |r| r.get::<_, i64>(0))
        .is_ok()
}

/// A disabled user may have kept the database key (every user can unwrap
/// it): disabling rotates it. The old key no longer opens the file; the
/// others log in as before.
#[tokio::test]
async fn disabling_a_user_rotates_the_database_key() {
    let f = Fixture::new().await;
    let a = f.admin().await;
    enrol(&a, "bob", "bob pw", false).await;
    enrol(&a, "carol", "carol pw", false).await;
    let old = db_key(&f);
    assert!(
        opens_with(&f, &old),
        "control: the key bob holds opens the file"
    );
    a.disable_user("bob").await.unwrap();
    assert!(
        !opens_with(&f, &old),
        "the old key no longer opens the file"
    );
    let new = db_key(&f);
    assert!(opens_with(&f, &new));
    assert!(!next_path(&f).exists());
    // The session that rotated keeps working, and everyone else logs in.
    a.insert_patient(&patient("Dupont", "Hélène", "1970-03-02"))
        .await
        .unwrap();
    f.login("carol", "carol pw").await.unwrap();
    f.login(ADMIN, ADMIN_PW).await.unwrap();
    let err = f.login("bob", "bob pw").await.unwrap_err();
    assert!(matches!(err, Error::UserDisabled(_)), "{err}");
}

/// A crash after the rekey but before the new keyring was put in force
/// (simulated: the keyring wrapping the old key back in place, the new one
/// waiting as `.next`, the old digest recorded) is finished at the next
/// open: the new keyring goes in force and everyone logs in.
#[tokio::test]
async fn a_rotation_interrupted_after_the_rekey_is_finished() {
    let f = Fixture::new().await;
    let a = f.admin().await;
    enrol(&a, "bob", "bob pw", false).await;
    enrol(&a, "carol", "carol pw", false).await;
    let old_key = db_key(&f);
    a.disable_user("bob").await.unwrap();
    drop(a);
    let new_key = db_key(&f);
    let rotated = std::fs::read(f.keyring_path()).unwrap();
    // The keyring as it was before the rekey: the same entries, the old key.
    let mut before = Keyring::read(&f.keyring_path()).unwrap();
    let root_cert: Vec<u8> = raw(&f)
        .query_row(
            "SELECT value FROM vault_meta WHERE key = 'root_cert'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let root_cert = medvault::keys::pgp::parse_cert(&root_cert).unwrap();
    for e in before.entries.iter_mut() {
        let cert = if e.name == "@root" {
            root_cert.clone()
        } else {
            LockedKey::parse(&e.locked_key).unwrap().cert()
        };
        e.wrapped_db_key = medvault::keys::pgp::wrap(&[&cert], old_key.expose()).unwrap();
    }
    let before_digest = before.write(&old_key, &f.keyring_path()).unwrap();
    std::fs::write(next_path(&f), &rotated).unwrap();
    {
        let c = rusqlite::Connection::open(f.db_path()).unwrap();
        c.execute_batch(&format!(
            "PRAGMA key = \"x'{}'\";",
            hex::encode(new_key.expose())
        ))
        .unwrap();
        c.execute(
            "UPDATE vault_meta SET value = ?1 WHERE key = 'keyring_digest'",
            [&before_digest[..]],
        )
        .unwrap();
    }
    f.login("carol", "carol pw").await.unwrap();
    assert_eq!(std::fs::read(f.keyring_path()).unwrap(), rotated);
    assert!(!next_path(&f).exists());
    f.login(ADMIN, ADMIN_PW).await.unwrap();
    // The keyring of before the rotation, put back, opens nothing.
    before.write(&old_key, &f.keyring_path()).unwrap();
    let err = f.login(ADMIN, ADMIN_PW).await.unwrap_err();
    assert!(
        matches!(err, Error::DatabaseCorrupt(_) | Error::WrongDatabaseKey(_)),
        "{err}"
    );
}

/// A huge file in place of the keyring is refused, not read into memory.
#[tokio::test]
async fn a_huge_keyring_file_is_refused() {
    let f = Fixture::new().await;
    let file = std::fs::File::create(f.keyring_path()).unwrap();
    file.set_len((64 << 20) + 1).unwrap();
    let err = f.login(ADMIN, ADMIN_PW).await.unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}
