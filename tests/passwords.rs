//! Password change and the floor on new passwords (README, "Access over
//! time"): a changed password re-protects the secret key only, on both
//! stores (the keyring entry too on SQLCipher); weak new passwords are
//! refused with nothing changed; a stored key that is not the certified
//! one is refused before it is used.

#[macro_use]
mod common;
use common::*;
use medvault::{Error, KdfParams, OpenOptions, Vault};

per_store!(
    a_password_change_keeps_every_grant,
    weak_passwords_are_refused_and_change_nothing,
    a_swapped_locked_key_is_refused_before_use,
);

async fn a_password_change_keeps_every_grant(f: Fixture) {
    let a = f.admin().await;
    let pid = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    let bob = f.user(&a, "bob", &["identity", "clinical"]).await;
    let note = bob.add_note(&pid, "Seen today", None).await.unwrap();
    bob.change_password("a new password for bob").await.unwrap();
    // The session goes on; the old password opens nothing any more.
    assert_eq!(bob.get_patient(&pid).await.unwrap().family_name, "Dupont");
    assert!(matches!(
        f.login("bob", "bob pw").await,
        Err(Error::WrongPassword(_))
    ));
    let bob = f.login("bob", "a new password for bob").await.unwrap();
    assert_eq!(bob.get_patient(&pid).await.unwrap().given_names, "Jean");
    assert_eq!(bob.list_notes(&pid, None).await.unwrap().notes[0].id, note);
    // Twice in a row, and nobody else is touched.
    bob.change_password("and yet another one").await.unwrap();
    f.login("bob", "and yet another one").await.unwrap();
    f.admin().await;
    let v = f.admin().await.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

async fn weak_passwords_are_refused_and_change_nothing(f: Fixture) {
    // A session whose new keys get the production KDF gets the floor.
    let opts = OpenOptions {
        kdf: KdfParams::PRODUCTION,
        ..f.opts()
    };
    let a = Vault::open(&f.url, ADMIN, ADMIN_PW, &opts).await.unwrap();
    let users = a.list_users().await.unwrap().len();
    for weak in [
        "a",
        "short",
        "password12",
        "aaaaaaaaaaaaaaa",
        "admin12345",
        "qwertyuiop",
    ] {
        let err = a.add_user("eve", weak, false).await.unwrap_err();
        assert!(matches!(err, Error::WeakPassword(_)), "{weak:?}: {err}");
        assert!(weak.len() < 5 || !err.to_string().contains(weak), "{err}");
        let err = a.change_password(weak).await.unwrap_err();
        assert!(matches!(err, Error::WeakPassword(_)), "{weak:?}: {err}");
    }
    assert_eq!(a.list_users().await.unwrap().len(), users);
    f.admin().await; // the old password still opens
                     // A long passphrase passes.
    a.add_user("eve", "violet kettle marching orbit", false)
        .await
        .unwrap();
    assert_eq!(a.list_users().await.unwrap().len(), users + 1);
    // Creating a vault has the same floor.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlcipher:{}", dir.path().join("v.db").display());
    let err = Vault::create(
        &url,
        "admin",
        "admin",
        &medvault::CreateOptions {
            kdf: KdfParams::PRODUCTION,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::WeakPassword(_)), "{err}");
    assert!(!dir.path().join("v.db").exists());
}

async fn a_swapped_locked_key_is_refused_before_use(f: Fixture) {
    let a = f.admin().await;
    let bob = f.user(&a, "bob", &["identity"]).await;
    let theirs = f
        .blob(
            "SELECT locked_key FROM users WHERE name = ?",
            vec!["admin".into()],
        )
        .await;
    f.exec(
        "UPDATE users SET locked_key = ? WHERE name = 'bob'",
        vec![theirs.into()],
    )
    .await;
    let err = bob
        .change_password("a new password for bob")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BadSignature { .. }), "{err}");
}
