//! Logins, users, grants and the chain of trust: every bad input is a
//! typed error and changes nothing.

#[macro_use]
mod common;
use common::*;
use medvault::{Error, OpenOptions, PatientQuery, Vault};

per_store!(
    wrong_password_unknown_user_and_bad_names,
    disabled_user_cannot_log_in_and_loses_grants,
    only_admins_administer,
    scope_access_is_cryptographic,
    revoke_removes_access_at_next_login,
    forged_grant_inserted_with_raw_sql_is_rejected,
    swapped_user_cert_is_rejected,
    a_user_row_promoted_to_admin_with_raw_sql_is_rejected,
    the_root_is_pinned,
    recovery_shares_rebuild_the_root,
    restricted_scope_for_a_care_team,
    a_disabled_admin_signs_nothing_but_what_it_signed_survives,
    adding_a_user_is_all_or_nothing,
);

async fn wrong_password_unknown_user_and_bad_names(f: Fixture) {
    let before = f.stored_bytes();
    assert!(matches!(f.login(ADMIN, "not it").await, Err(Error::WrongPassword(u)) if u == ADMIN));
    assert!(matches!(f.login("nobody", "x").await, Err(Error::UnknownUser(u)) if u == "nobody"));
    assert!(matches!(
        f.login("Bad Name", "x").await,
        Err(Error::InvalidUserName(_))
    ));
    assert!(matches!(
        f.login(ADMIN, "").await,
        Err(Error::BadPassword(_))
    ));
    assert!(f.stored_bytes() == before, "failed logins change nothing");
    f.admin().await;
}

#[tokio::test]
async fn no_vault_and_bad_store_urls() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlcipher:{}", dir.path().join("none.db").display());
    assert!(matches!(
        Vault::open(&url, "a", "b", &open_opts()).await,
        Err(Error::NoVault(_))
    ));
    assert!(matches!(
        Vault::open("/tmp/x.db", "a", "b", &open_opts()).await,
        Err(Error::BadStoreUrl { .. })
    ));
    assert!(
        !dir.path().join("none.db").exists(),
        "opening must not create a file"
    );
}

#[tokio::test]
async fn creating_over_an_existing_vault_is_refused() {
    let f = Fixture::new().await;
    let before = std::fs::read(f.db_path()).unwrap();
    let err = Vault::create(
        &f.url,
        "other",
        "pw",
        &medvault::CreateOptions {
            kdf: kdf(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::VaultExists(_)), "{err}");
    assert_eq!(std::fs::read(f.db_path()).unwrap(), before);
    f.admin().await;
}

async fn disabled_user_cannot_log_in_and_loses_grants(f: Fixture) {
    let a = f.admin().await;
    let bob = f.user(&a, "bob", &["identity", "clinical"]).await;
    drop(bob);
    a.disable_user("bob").await.unwrap();
    assert!(matches!(f.login("bob", "bob pw").await, Err(Error::UserDisabled(u)) if u == "bob"));
    let users = a.list_users().await.unwrap();
    let b = users.iter().find(|u| u.name == "bob").unwrap();
    assert_eq!(b.status, "disabled");
    assert!(b.trusted);
    let grants = f
        .int("SELECT count(*) FROM grants WHERE grantee = 'bob'", vec![])
        .await;
    assert_eq!(grants, 0);
    // Granting to a disabled user is refused.
    assert!(matches!(
        a.grant("bob", "identity").await,
        Err(Error::UserDisabled(_))
    ));
    assert!(matches!(
        a.disable_user(ADMIN).await,
        Err(Error::Refused(_))
    ));
}

async fn only_admins_administer(f: Fixture) {
    let a = f.admin().await;
    let bob = f.user(&a, "bob", &["identity"]).await;
    assert!(matches!(
        bob.add_user("eve", "pw", false).await,
        Err(Error::NotAdmin(_))
    ));
    assert!(matches!(
        bob.grant("bob", "clinical").await,
        Err(Error::NotAdmin(_))
    ));
    assert!(matches!(
        bob.revoke("bob", "identity").await,
        Err(Error::NotAdmin(_))
    ));
    assert!(matches!(
        bob.disable_user(ADMIN).await,
        Err(Error::NotAdmin(_))
    ));
    assert!(matches!(
        a.add_user("bob", "pw", false).await,
        Err(Error::UserExists(_))
    ));
    assert!(matches!(
        a.grant("bob", "no-such-scope").await,
        Err(Error::UnknownScope(_))
    ));
    assert!(matches!(
        a.grant("nobody", "identity").await,
        Err(Error::UnknownUser(_))
    ));
    assert!(matches!(
        a.revoke("bob", "clinical").await,
        Err(Error::NoSuchGrant { .. })
    ));
}

async fn scope_access_is_cryptographic(f: Fixture) {
    let a = f.admin().await;
    let pid = a
        .insert_patient(&patient("Dupont", "Hélène", "1970-03-02"))
        .await
        .unwrap();
    a.add_note(&pid, "clinical finding", Some("clinical"))
        .await
        .unwrap();
    a.add_note(&pid, "invoice sent", Some("billing"))
        .await
        .unwrap();
    a.add_note(&pid, "my own reminder", Some("personal"))
        .await
        .unwrap();

    let clerk = f.user(&a, "clerk", &["identity", "billing"]).await;
    assert_eq!(clerk.scopes(), ["billing", "identity", "personal:clerk"]);
    assert!(
        matches!(clerk.list_notes(&pid, Some("clinical")).await, Err(Error::NoAccess(s)) if s == "clinical")
    );
    let seen = clerk.list_notes(&pid, None).await.unwrap();
    assert_eq!(seen.notes.len(), 1);
    assert_eq!(seen.notes[0].body, "invoice sent");
    assert_eq!(seen.withheld, 2, "clinical and the admin's personal note");
    assert!(matches!(
        clerk.add_note(&pid, "x", Some("clinical")).await,
        Err(Error::NoAccess(_))
    ));

    // Without identity, patients cannot be read or searched at all.
    let nurse = f.user(&a, "nurse", &["clinical"]).await;
    assert!(matches!(nurse.get_patient(&pid).await, Err(Error::NoAccess(s)) if s == "identity"));
    let q = PatientQuery {
        family_name: Some("Dupont".into()),
        ..Default::default()
    };
    assert!(matches!(
        nurse.find_patients(&q).await,
        Err(Error::NoAccess(_))
    ));
    assert!(matches!(
        nurse.insert_patient(&patient("X", "Y", "2000-01-01")).await,
        Err(Error::NoAccess(_))
    ));
    // Personal notes: only their author.
    let notes = nurse.list_notes(&pid, None).await.unwrap();
    assert_eq!(notes.notes.len(), 1);
    assert!(notes.notes.iter().all(|n| n.body != "my own reminder"));
    let own = a.list_notes(&pid, Some("personal")).await.unwrap();
    assert_eq!(own.notes[0].body, "my own reminder");
}

async fn revoke_removes_access_at_next_login(f: Fixture) {
    let a = f.admin().await;
    let pid = a
        .insert_patient(&patient("Dupont", "Hélène", "1970-03-02"))
        .await
        .unwrap();
    let bob = f.user(&a, "bob", &["identity"]).await;
    assert!(bob.get_patient(&pid).await.is_ok());
    a.revoke("bob", "identity").await.unwrap();
    let bob = f.login("bob", "bob pw").await.unwrap();
    assert!(matches!(
        bob.get_patient(&pid).await,
        Err(Error::NoAccess(_))
    ));
}

async fn forged_grant_inserted_with_raw_sql_is_rejected(f: Fixture) {
    let a = f.admin().await;
    f.user(&a, "clerk", &["identity"]).await;
    // The attacker copies a genuine grant (the clerk's identity grant) and
    // relabels it as clinical: the signature no longer matches.
    let n = f
        .exec(
            "INSERT INTO grants (scope_id, epoch, grantee, rights, wrapped, granter, signed_at, signature)
             SELECT 2, epoch, grantee, rights, wrapped, granter, signed_at, signature
             FROM grants WHERE grantee = 'clerk' AND scope_id = 1",
            vec![],
        )
        .await;
    assert_eq!(n, 1);
    let err = f.login("clerk", "clerk pw").await.unwrap_err();
    assert!(
        matches!(&err, Error::BadSignature { what } if what.contains("clinical")),
        "{err}"
    );

    // A grant signed by a non-admin (the clerk's own key) is refused too.
    f.exec(
        "DELETE FROM grants WHERE grantee = 'clerk' AND scope_id = 2",
        vec![],
    )
    .await;
    f.exec(
        "INSERT INTO grants (scope_id, epoch, grantee, rights, wrapped, granter, signed_at, signature)
         SELECT 2, epoch, grantee, rights, wrapped, 'clerk', signed_at, signature
         FROM grants WHERE grantee = 'clerk' AND scope_id = 1",
        vec![],
    )
    .await;
    assert!(matches!(
        f.login("clerk", "clerk pw").await,
        Err(Error::BadSignature { .. })
    ));
}

async fn swapped_user_cert_is_rejected(f: Fixture) {
    let a = f.admin().await;
    enrol(&a, "bob", "bob pw", false).await;
    enrol(&a, "mallory", "mallory pw", false).await;
    // Mallory's certificate is put in Bob's row, so that grants to Bob
    // would be wrapped to Mallory.
    let mallory = f
        .blob("SELECT cert FROM users WHERE name = 'mallory'", vec![])
        .await;
    f.exec(
        "UPDATE users SET cert = ? WHERE name = 'bob'",
        vec![mallory.into()],
    )
    .await;
    let err = a.grant("bob", "clinical").await.unwrap_err();
    assert!(
        matches!(&err, Error::BadSignature { what } if what.contains("bob")),
        "{err}"
    );
    let grants = f
        .int(
            "SELECT count(*) FROM grants WHERE grantee = 'bob' AND scope_id = 2",
            vec![],
        )
        .await;
    assert_eq!(grants, 0, "nothing was granted");
    assert!(matches!(
        f.login("bob", "bob pw").await,
        Err(Error::BadSignature { .. })
    ));
    let users = a.list_users().await.unwrap();
    assert!(!users.iter().find(|u| u.name == "bob").unwrap().trusted);
}

async fn a_user_row_promoted_to_admin_with_raw_sql_is_rejected(f: Fixture) {
    let a = f.admin().await;
    enrol(&a, "bob", "bob pw", false).await;
    f.exec("UPDATE users SET role = 'admin' WHERE name = 'bob'", vec![])
        .await;
    assert!(matches!(
        f.login("bob", "bob pw").await,
        Err(Error::BadSignature { .. })
    ));
}

async fn the_root_is_pinned(f: Fixture) {
    let other = Fixture::new().await;
    let opts = OpenOptions {
        kdf: kdf(),
        pinned_root: Some(other.root_fingerprint.clone()),
        new_password: None,
        state_dir: None,
    };
    let err = Vault::open(&f.url, ADMIN, ADMIN_PW, &opts)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UntrustedRoot { .. }), "{err}");
    let opts = OpenOptions {
        kdf: kdf(),
        pinned_root: Some(f.root_fingerprint.to_lowercase()),
        new_password: None,
        state_dir: None,
    };
    Vault::open(&f.url, ADMIN, ADMIN_PW, &opts).await.unwrap();
    // Swapping the root certificate in the metadata is caught.
    let evil = medvault::keys::pgp::generate_unprotected("evil root")
        .unwrap()
        .0;
    f.exec(
        "UPDATE vault_meta SET value = ? WHERE `key` = 'root_cert'",
        vec![medvault::keys::pgp::cert_bytes(&evil).unwrap().into()],
    )
    .await;
    assert!(matches!(
        f.login(ADMIN, ADMIN_PW).await,
        Err(Error::UntrustedRoot { .. })
    ));
}

async fn recovery_shares_rebuild_the_root(f: Fixture) {
    let a = f.admin().await;
    assert_eq!(f.shares.len(), 4);
    let fpr = a
        .check_recovery(&[f.shares[3].clone(), f.shares[1].clone()])
        .await
        .unwrap();
    // A grant to the root planted without a trusted signature is refused
    // as untrusted, not blamed on the shares.
    f.exec(
        "DELETE FROM grants WHERE grantee = '@root' AND scope_id = 2",
        vec![],
    )
    .await;
    f.exec(
        "INSERT INTO grants (scope_id, epoch, grantee, rights, wrapped, granter, signed_at, signature)
         SELECT scope_id, epoch, '@root', rights, wrapped, granter, signed_at, signature
         FROM grants WHERE grantee = ? AND scope_id = 2",
        vec![ADMIN.into()],
    )
    .await;
    let err = a
        .check_recovery(&[f.shares[0].clone(), f.shares[2].clone()])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BadSignature { .. }), "{err}");
    assert_eq!(fpr, f.root_fingerprint);
    assert!(matches!(
        a.check_recovery(&f.shares[..1]).await,
        Err(Error::BadShares(_))
    ));
    let other = Fixture::new().await;
    assert!(matches!(
        a.check_recovery(&[f.shares[0].clone(), other.shares[1].clone()])
            .await,
        Err(Error::BadShares(_))
    ));
}

async fn restricted_scope_for_a_care_team(f: Fixture) {
    let a = f.admin().await;
    let pid = a
        .insert_patient(&patient("Dupont", "Hélène", "1970-03-02"))
        .await
        .unwrap();
    a.create_scope("vip-care").await.unwrap();
    // The creating session holds the new key at once: it writes in the
    // scope and grants it without logging in again.
    assert!(a.scopes().contains(&"vip-care".to_owned()));
    a.add_note(&pid, "sensitive", Some("vip-care"))
        .await
        .unwrap();
    let doc = f.user(&a, "doc", &["identity", "clinical"]).await;
    assert_eq!(doc.list_notes(&pid, None).await.unwrap().withheld, 1);
    a.grant("doc", "vip-care").await.unwrap();
    let doc = f.login("doc", "doc pw").await.unwrap();
    assert_eq!(
        doc.list_notes(&pid, Some("vip-care")).await.unwrap().notes[0].body,
        "sensitive"
    );
    assert!(matches!(
        a.create_scope("vip-care").await,
        Err(Error::Refused(_))
    ));
    assert!(matches!(
        a.create_scope("personal:x").await,
        Err(Error::UnknownScope(_))
    ));
}

async fn a_disabled_admin_signs_nothing_but_what_it_signed_survives(f: Fixture) {
    let a = f.admin().await;
    enrol(&a, "admin2", "admin2 pw", true).await;
    for s in ["identity", "billing"] {
        a.grant("admin2", s).await.unwrap();
    }
    let a2 = f.login("admin2", "admin2 pw").await.unwrap();
    let pid = a2
        .insert_patient(&patient("Dupont", "Hélène", "1970-03-02"))
        .await
        .unwrap();
    let carol = f.user(&a2, "carol", &["identity", "billing"]).await;
    drop(carol);
    // Keep a copy of admin2's billing grant to carol, then revoke it.
    let w = "FROM grants WHERE grantee = 'carol' AND scope_id = 3";
    let saved = (
        f.int(&format!("SELECT epoch {w}"), vec![]).await,
        f.blob(&format!("SELECT wrapped {w}"), vec![]).await,
        f.int(&format!("SELECT signed_at {w}"), vec![]).await,
        f.blob(&format!("SELECT signature {w}"), vec![]).await,
    );
    a.revoke("carol", "billing").await.unwrap();

    a.disable_user("admin2").await.unwrap();
    assert!(matches!(
        f.login("admin2", "admin2 pw").await,
        Err(Error::UserDisabled(_))
    ));
    // What admin2 signed while active was re-signed: carol still logs in
    // and reads.
    let carol = f.login("carol", "carol pw").await.unwrap();
    assert_eq!(carol.get_patient(&pid).await.unwrap().family_name, "Dupont");
    let by_admin = f
        .int(
            "SELECT count(*) FROM users WHERE name = 'carol' AND certifier = ?",
            vec![ADMIN.into()],
        )
        .await;
    assert_eq!(by_admin, 1, "carol was re-certified");
    // Replaying the revoked grant admin2 signed is refused: admin2 no
    // longer signs.
    f.exec(
        "INSERT INTO grants (scope_id, epoch, grantee, rights, wrapped, granter, signed_at, signature)
         VALUES (3, ?, 'carol', 'read-write', ?, 'admin2', ?, ?)",
        vec![saved.0.into(), saved.1.into(), saved.2.into(), saved.3.into()],
    )
    .await;
    let err = f.login("carol", "carol pw").await.unwrap_err();
    assert!(
        matches!(&err, Error::BadSignature { what } if what.contains("billing")),
        "{err}"
    );
}

/// An insider who holds the database key (every user does) rewrites the
/// keyring's root with a valid MAC and puts a root of their own in the
/// database. Users pin the root named in their own certificate, so the
/// swap is refused.
#[tokio::test]
async fn an_insider_cannot_swap_the_root() {
    use medvault::crypto::secret::DbKey;
    use medvault::keys::pgp::{self, LockedKey};
    use medvault::store::keyring::Keyring;
    let f = Fixture::new().await;
    let a = f.admin().await;
    enrol(&a, "bob", "bob pw", false).await;
    drop(a);
    let kr_path = f.keyring_path();
    let mut kr = Keyring::read(&kr_path).unwrap();
    let e = kr.entry("bob").unwrap().clone();
    let raw_key = LockedKey::parse(&e.locked_key)
        .unwrap()
        .unlock_decryptor("bob", &"bob pw".into())
        .unwrap()
        .unwrap(&e.wrapped_db_key)
        .unwrap();
    let db_key = DbKey::from_slice(&raw_key).unwrap();
    let (evil_root, _) = pgp::generate_unprotected("evil root").unwrap();
    kr.root_fingerprint = pgp::fingerprint(&evil_root);
    let digest = kr.write(&db_key, &kr_path).unwrap();
    // The insider records the new keyring as the one in force, too.
    f.exec(
        "UPDATE vault_meta SET value = ? WHERE `key` = 'keyring_digest'",
        vec![digest.to_vec().into()],
    )
    .await;
    f.exec(
        "UPDATE vault_meta SET value = ? WHERE `key` = 'root_cert'",
        vec![pgp::cert_bytes(&evil_root).unwrap().into()],
    )
    .await;
    let err = f.login(ADMIN, ADMIN_PW).await.unwrap_err();
    assert!(matches!(err, Error::UntrustedRoot { .. }), "{err}");
}

/// Polls a future to the end on this thread, with no tokio runtime.
fn poll_without_runtime<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// Called outside a tokio runtime, the API answers a typed error instead
/// of panicking ("there is no reactor running").
#[test]
fn outside_a_tokio_runtime_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlcipher:{}", dir.path().join("v.db").display());
    let opts = medvault::CreateOptions {
        kdf: kdf(),
        ..Default::default()
    };
    let err = poll_without_runtime(Vault::create(&url, ADMIN, ADMIN_PW, &opts)).unwrap_err();
    assert!(matches!(err, Error::NoRuntime), "{err}");
    assert!(!dir.path().join("v.db").exists());
    let my_url = mysql_base_url();
    for url in [url.as_str(), my_url.as_str()] {
        let mut o = open_opts();
        o.pinned_root = Some("00".repeat(32));
        let err = poll_without_runtime(Vault::open(url, ADMIN, ADMIN_PW, &o)).unwrap_err();
        assert!(matches!(err, Error::NoRuntime), "{url}: {err}");
    }
}

/// A user and their personal scope are written in one transaction: when
/// the second half fails (here a planted scope takes the name
/// `personal:bob`), no user row, no keyring entry and no grant is left.
async fn adding_a_user_is_all_or_nothing(f: Fixture) {
    let a = f.admin().await;
    f.exec(
        "INSERT INTO scopes (id, name, owner) VALUES (999, 'personal:bob', NULL)",
        vec![],
    )
    .await;
    assert!(a.add_user("bob", "bob pw", false).await.is_err());
    assert_eq!(
        f.int("SELECT count(*) FROM users WHERE name = 'bob'", vec![])
            .await,
        0
    );
    assert_eq!(
        f.int("SELECT count(*) FROM grants WHERE grantee = 'bob'", vec![])
            .await,
        0
    );
    if !f.is_mysql() {
        let kr = medvault::store::keyring::Keyring::read(&f.keyring_path()).unwrap();
        assert!(kr.entry("bob").is_none());
    }
    let err = f.login("bob", "bob pw").await.unwrap_err();
    assert!(matches!(err, Error::UnknownUser(_)), "{err}");
    // With the planted row gone, the same call succeeds.
    f.exec("DELETE FROM scopes WHERE id = 999", vec![]).await;
    enrol(&a, "bob", "bob pw", false).await;
    f.login("bob", "bob pw").await.unwrap();
}
