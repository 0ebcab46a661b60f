//! `recover reset-password`: k shares rebuild the root in memory, and a
//! user who lost their password gets a new key with every grant back.
//! Bad share sets are clear errors that change nothing.

#[macro_use]
mod common;
use common::*;
use medvault::Error;

per_store!(
    a_lost_password_is_reset_with_every_grant_back,
    bad_shares_change_nothing,
    an_administrator_reset_keeps_what_they_signed_valid,
    shares_certify_a_new_administrator,
    shares_open_the_vault_when_nobody_can_log_in,
);

/// Every password is lost: k shares open the vault as its root (on
/// SQLCipher through the keyring's root entry, which a database key
/// rotation keeps), and the root gives the administrator a new password.
async fn shares_open_the_vault_when_nobody_can_log_in(f: Fixture) {
    let a = f.admin().await;
    let pid = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    f.user(&a, "bob", &["identity"]).await;
    // A disable rotates the SQLCipher file's key: the root entry follows.
    a.disable_user("bob").await.unwrap();
    drop(a);
    let shares = vec![f.shares[1].clone(), f.shares[3].clone()];
    // Bad shares open nothing.
    let one = vec![f.shares[0].clone()];
    assert!(matches!(
        medvault::Vault::open_with_shares(&f.url, &one, &f.opts()).await,
        Err(Error::BadShares(_))
    ));
    let other = Fixture::sqlite().await;
    let foreign = vec![other.shares[0].clone(), other.shares[1].clone()];
    assert!(matches!(
        medvault::Vault::open_with_shares(&f.url, &foreign, &f.opts()).await,
        Err(Error::BadShares(_))
    ));
    // A pin that is not this root is refused.
    let pinned = medvault::OpenOptions {
        pinned_root: Some(other.root_fingerprint.clone()),
        ..f.opts()
    };
    assert!(matches!(
        medvault::Vault::open_with_shares(&f.url, &shares, &pinned).await,
        Err(Error::UntrustedRoot { .. })
    ));
    let root = medvault::Vault::open_with_shares(&f.url, &shares, &f.opts())
        .await
        .unwrap();
    assert_eq!(root.user(), "@root");
    assert!(root.is_admin());
    assert_eq!(root.get_patient(&pid).await.unwrap().family_name, "Dupont");
    assert!(matches!(
        root.change_password("a password for the root").await,
        Err(Error::Refused(_))
    ));
    root.recover_reset_password(ADMIN, "set by the root", &shares)
        .await
        .unwrap();
    drop(root);
    let a = f
        .first_login(ADMIN, "set by the root", "the admin's own again")
        .await;
    assert_eq!(a.get_patient(&pid).await.unwrap().family_name, "Dupont");
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

/// A SQLCipher vault whose keyring has no root entry (made before it
/// existed) gets one at the next login; until then the shares alone
/// cannot open it, and say so.
#[tokio::test]
async fn an_old_keyring_gets_its_root_entry_at_the_next_login() {
    use medvault::keys::pgp::LockedKey;
    use medvault::store::keyring::Keyring;
    let f = Fixture::sqlite().await;
    let shares = vec![f.shares[0].clone(), f.shares[2].clone()];
    // Control: a new vault's keyring has it.
    let mut kr = Keyring::read(&f.keyring_path()).unwrap();
    assert!(kr.entry("@root").is_some());
    // Take it out, as a keyring of an older medvault.
    let e = kr.entry(ADMIN).unwrap();
    let dec = LockedKey::parse(&e.locked_key)
        .unwrap()
        .unlock_decryptor(ADMIN, &ADMIN_PW.into())
        .unwrap();
    let key = medvault::crypto::secret::DbKey::from_slice(&dec.unwrap(&e.wrapped_db_key).unwrap())
        .unwrap();
    kr.entries.retain(|e| e.name != "@root");
    let digest = kr.write(&key, &f.keyring_path()).unwrap();
    raw(&f)
        .execute(
            "INSERT OR REPLACE INTO vault_meta (key, value) VALUES ('keyring_digest', ?1)",
            [&digest[..]],
        )
        .unwrap();
    assert!(matches!(
        medvault::Vault::open_with_shares(&f.url, &shares, &f.opts()).await,
        Err(Error::Refused(m)) if m.contains("no root entry")
    ));
    f.admin().await;
    assert!(Keyring::read(&f.keyring_path())
        .unwrap()
        .entry("@root")
        .is_some());
    let root = medvault::Vault::open_with_shares(&f.url, &shares, &f.opts())
        .await
        .unwrap();
    assert_eq!(root.user(), "@root");
}

async fn a_lost_password_is_reset_with_every_grant_back(f: Fixture) {
    let a = f.admin().await;
    let pid = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    let bob = f.user(&a, "bob", &["identity", "clinical"]).await;
    let private = bob
        .add_note(&pid, "Only bob reads this", Some("personal"))
        .await
        .unwrap();
    // A rotation: bob holds two epochs of identity.
    a.rotate("identity").await.unwrap();
    drop(bob);
    let shares = vec![f.shares[0].clone(), f.shares[3].clone()];
    let fpr = a
        .recover_reset_password("bob", "a fresh password", &shares)
        .await
        .unwrap();
    assert!(matches!(
        f.login("bob", "bob pw").await,
        Err(Error::WrongPassword(_))
    ));
    // The password was chosen by whoever ran the recovery: bob must choose
    // his own at his first login.
    let bob = f
        .first_login("bob", "a fresh password", "bob's own again")
        .await;
    assert_eq!(bob.get_patient(&pid).await.unwrap().family_name, "Dupont");
    let notes = bob.list_notes(&pid, Some("personal")).await.unwrap();
    assert_eq!(notes.notes.len(), 1);
    assert_eq!(notes.notes[0].id, private);
    assert!(bob.scopes().contains(&"clinical".to_string()));
    let users = a.list_users().await.unwrap();
    let b = users.iter().find(|u| u.name == "bob").unwrap();
    assert_eq!(b.fingerprint, fpr);
    assert!(b.trusted && b.certifier == "@root", "{b:?}");
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

async fn bad_shares_change_nothing(f: Fixture) {
    let a = f.admin().await;
    f.user(&a, "bob", &["identity"]).await;
    let other = Fixture::sqlite().await;
    let mut typo = f.shares[1].clone().into_bytes();
    let i = typo.len() - 12;
    typo[i] = if typo[i] == b'A' { b'B' } else { b'A' };
    let typo = String::from_utf8(typo).unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![f.shares[0].clone()], "needed"),
        (vec![f.shares[2].clone(), f.shares[2].clone()], "same share"),
        (
            vec![f.shares[0].clone(), other.shares[1].clone()],
            "another vault",
        ),
        (vec![f.shares[0].clone(), typo], "checksum"),
        (vec![], "no shares"),
    ];
    for (shares, why) in cases {
        let err = a
            .recover_reset_password("bob", "a fresh password", &shares)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::BadShares(m) if m.contains(why)),
            "{why}: {err}"
        );
    }
    // Good shares, but an unknown user or a weak password: refused too.
    let good = vec![f.shares[0].clone(), f.shares[1].clone()];
    assert!(matches!(
        a.recover_reset_password("nobody", "a fresh password", &good)
            .await,
        Err(Error::UnknownUser(_))
    ));
    // Nothing changed: bob's password still opens.
    f.login("bob", "bob pw").await.unwrap();
}

async fn an_administrator_reset_keeps_what_they_signed_valid(f: Fixture) {
    let a = f.admin().await;
    enrol(&a, "boss", "boss pw", true).await;
    a.grant("boss", "identity").await.unwrap();
    let boss = f.login("boss", "boss pw").await.unwrap();
    enrol(&boss, "clerk", "clerk pw", false).await;
    boss.grant("clerk", "identity").await.unwrap();
    boss.rotate("identity").await.unwrap();
    drop(boss);
    let shares = vec![f.shares[1].clone(), f.shares[2].clone()];
    a.recover_reset_password("boss", "the boss is back", &shares)
        .await
        .unwrap();
    // What boss certified, created, granted and retired still verifies.
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    let clerk = f.login("clerk", "clerk pw").await.unwrap();
    assert!(clerk.scopes().contains(&"identity".to_string()));
    let boss = f
        .first_login("boss", "the boss is back", "boss chose this")
        .await;
    assert!(boss.is_admin());
    boss.rotate("identity").await.unwrap();
}

async fn shares_certify_a_new_administrator(f: Fixture) {
    let a = f.admin().await;
    let pid = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    a.rotate("clinical").await.unwrap();
    let bob = f.user(&a, "bob", &["identity"]).await;
    assert!(!bob.is_admin());
    // Bad shares from bob's session: nothing changes.
    let err = bob
        .recover_new_admin("bob", None, &[f.shares[0].clone()])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BadShares(_)), "{err}");
    assert!(!f.login("bob", "bob pw").await.unwrap().is_admin());
    // Two shares: bob is promoted (his own key and password) and granted
    // every shared scope, at its live epochs.
    let shares = vec![f.shares[0].clone(), f.shares[1].clone()];
    let granted = bob.recover_new_admin("bob", None, &shares).await.unwrap();
    assert_eq!(granted, vec!["billing", "clinical"], "{granted:?}");
    let bob = f.login("bob", "bob pw").await.unwrap();
    assert!(bob.is_admin());
    assert!(bob.scopes().contains(&"clinical".to_string()));
    bob.add_note(&pid, "Seen by the new administrator", Some("clinical"))
        .await
        .unwrap();
    enrol(&bob, "dana", "dana pw", false).await;
    // Again: nothing left to do.
    assert!(bob
        .recover_new_admin("bob", None, &shares)
        .await
        .unwrap()
        .is_empty());
    // A user who does not exist yet needs a password.
    assert!(matches!(
        bob.recover_new_admin("carol", None, &shares).await,
        Err(Error::Refused(_))
    ));
    bob.recover_new_admin("carol", Some("carol pw"), &shares)
        .await
        .unwrap();
    let carol = f.first_login("carol", "carol pw", "carol's own").await;
    assert!(carol.is_admin());
    assert_eq!(
        carol.scopes(),
        vec!["billing", "clinical", "identity", "personal:carol"]
    );
    assert_eq!(carol.get_patient(&pid).await.unwrap().family_name, "Dupont");
    let v = carol.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}
