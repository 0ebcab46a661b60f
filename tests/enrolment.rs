//! Enrolment that keeps a user's secret theirs, and the forced password
//! change where an administrator chose the password (README, "Access over
//! time"; FORMAT.md §5.6, §8).

#[macro_use]
mod common;
use common::*;
use medvault::{Error, Session};

per_store!(
    an_invited_user_makes_their_own_key,
    an_altered_or_foreign_request_is_refused_and_changes_nothing,
    an_expired_invitation_is_refused,
    a_password_an_administrator_chose_must_be_changed,
);

async fn user_names(a: &Session) -> Vec<String> {
    a.list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect()
}

/// Rewrites field `key` of an invitation or request to `value` and
/// recomputes its check line, as someone editing it on its way would.
fn edit(text: &str, key: &str, value: &str) -> String {
    use sha2::Digest;
    let mut body = String::new();
    for l in text.lines() {
        if l.starts_with("check: ") {
            continue;
        }
        match l.split_once(": ") {
            Some((k, _)) if k == key => body.push_str(&format!("{key}: {value}\n")),
            _ => body.push_str(&format!("{l}\n")),
        }
    }
    let check = hex::encode(&sha2::Sha256::digest(body.as_bytes())[..4]);
    format!("{body}check: {check}\n")
}

fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap()
}

async fn an_invited_user_makes_their_own_key(f: Fixture) {
    let a = f.admin().await;
    let pid = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    let invitation = a.invite("bob", false, None).await.unwrap();
    // The request carries no code, and no password.
    let request = medvault::enrol(&invitation, "only bob knows this", kdf()).unwrap();
    assert!(!request.contains(field(&invitation, "code")));
    let e = a.certify(&request).await.unwrap();
    assert_eq!((e.name.as_str(), e.role.as_str()), ("bob", "user"));
    assert_eq!(
        e.fingerprint,
        medvault::request_fingerprint(&request).unwrap()
    );
    a.grant("bob", "identity").await.unwrap();
    // No forced change: the password was bob's from the start.
    let bob = f.login("bob", "only bob knows this").await.unwrap();
    assert!(!bob.changed_password_at_login());
    assert_eq!(bob.get_patient(&pid).await.unwrap().family_name, "Dupont");
    let private = bob
        .add_note(&pid, "Only bob reads this", Some("personal"))
        .await
        .unwrap();
    let listed = bob.list_notes(&pid, Some("personal")).await.unwrap();
    assert_eq!(listed.notes[0].id, private);
    let users = a.list_users().await.unwrap();
    let b = users.iter().find(|u| u.name == "bob").unwrap();
    assert!(
        b.trusted && b.certifier == "admin" && b.role == "user",
        "{b:?}"
    );
    assert_eq!(b.fingerprint, e.fingerprint);
    // An invitation as administrator makes one.
    let inv = a.invite("carol", true, None).await.unwrap();
    let req = medvault::enrol(&inv, "carol's own words", kdf()).unwrap();
    assert_eq!(a.certify(&req).await.unwrap().role, "admin");
    let carol = f.login("carol", "carol's own words").await.unwrap();
    assert!(carol.is_admin());
    // Once only.
    assert!(matches!(
        a.certify(&request).await,
        Err(Error::UserExists(n)) if n == "bob"
    ));
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

async fn an_altered_or_foreign_request_is_refused_and_changes_nothing(f: Fixture) {
    let a = f.admin().await;
    enrol(&a, "admin2", "admin2 pw", true).await;
    let a2 = f.login("admin2", "admin2 pw").await.unwrap();
    let before = user_names(&a).await;
    let invitation = a.invite("bob", false, None).await.unwrap();
    let request = medvault::enrol(&invitation, "bob pw", kdf()).unwrap();
    // Control: the untouched request would pass (checked on a copy of the
    // terms that differs only in the name, so `bob` stays free).
    let mallory_inv = a.invite("mallory", false, None).await.unwrap();
    let mallory = medvault::enrol(&mallory_inv, "mallory pw", kdf()).unwrap();

    // Someone on the way swaps in a key of their own, made for the name
    // bob and this vault's root.
    let (cert, locked) =
        medvault::keys::pgp::generate("bob", &"mallory's".into(), kdf(), &f.root_fingerprint, None)
            .unwrap();
    let swapped = edit(
        &edit(
            &request,
            "cert",
            &hex::encode(medvault::keys::pgp::cert_bytes(&cert).unwrap()),
        ),
        "locked-key",
        &hex::encode(locked),
    );
    let cases: Vec<(&str, String, &str)> = vec![
        ("another key", swapped, "altered on its way"),
        // ... or asks for more than was offered, or for longer.
        (
            "another role",
            edit(&request, "role", "admin"),
            "your signature",
        ),
        (
            "a later expiry",
            edit(
                &request,
                "expires",
                &(field(&request, "expires").parse::<i64>().unwrap() + 86_400).to_string(),
            ),
            "your signature",
        ),
        // The tag of another invitation.
        (
            "another tag",
            edit(&request, "tag", field(&mallory, "tag")),
            "altered on its way",
        ),
        // A character lost when it was copied.
        (
            "a typo",
            request.replacen("tag: ", "tag: 0", 1),
            "fails its check",
        ),
        (
            "not a request",
            invitation.clone(),
            "not a enrolment request",
        ),
    ];
    for (what, text, msg) in cases {
        let err = a.certify(&text).await.unwrap_err();
        assert!(
            matches!(&err, Error::BadInvitation(m) if m.contains(msg)),
            "{what}: {err}"
        );
        assert!(!err.to_string().contains(field(&invitation, "code")));
    }
    // A key protected more cheaply than the vault's setting.
    let cheap_inv = a.invite("carl", false, None).await.unwrap();
    let cheap = medvault::enrol(
        &cheap_inv,
        "violet kettle marching orbit",
        medvault::KdfParams {
            m_log2: kdf().m_log2 - 1,
            ..kdf()
        },
    )
    .unwrap();
    let err = a.certify(&cheap).await.unwrap_err();
    assert!(
        matches!(&err, Error::BadInvitation(m) if m.contains("cheaper Argon2")),
        "{err}"
    );
    // Only the administrator who issued it can certify it.
    let err = a2.certify(&request).await.unwrap_err();
    assert!(
        matches!(&err, Error::BadInvitation(m) if m.contains("issued by admin")),
        "{err}"
    );
    // A request for another vault.
    let other = Fixture::sqlite().await;
    let oa = other.admin().await;
    let foreign = medvault::enrol(
        &oa.invite("bob", false, None).await.unwrap(),
        "bob pw",
        kdf(),
    )
    .unwrap();
    let err = a.certify(&foreign).await.unwrap_err();
    assert!(
        matches!(&err, Error::BadInvitation(m) if m.contains("another vault")),
        "{err}"
    );
    // A user can neither invite nor certify.
    let bob_session = f.user(&a, "dana", &[]).await;
    assert!(matches!(
        bob_session.invite("eve", false, None).await,
        Err(Error::NotAdmin(_))
    ));
    assert!(matches!(
        bob_session.certify(&request).await,
        Err(Error::NotAdmin(_))
    ));
    let mut after = user_names(&a).await;
    after.retain(|n| n != "dana");
    assert_eq!(after, before, "nothing changed");
    // The genuine request still goes through afterwards; so does mallory's.
    a.certify(&request).await.unwrap();
    a.certify(&mallory).await.unwrap();
    f.login("bob", "bob pw").await.unwrap();
}

async fn an_expired_invitation_is_refused(f: Fixture) {
    let a = f.admin().await;
    let invitation = a
        .invite("bob", false, Some(std::time::Duration::from_secs(1)))
        .await
        .unwrap();
    let request = medvault::enrol(&invitation, "bob pw", kdf()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    assert!(matches!(
        medvault::enrol(&invitation, "bob pw", kdf()),
        Err(Error::InvitationExpired(n)) if n == "bob"
    ));
    assert!(matches!(
        a.certify(&request).await,
        Err(Error::InvitationExpired(n)) if n == "bob"
    ));
    assert!(!user_names(&a).await.contains(&"bob".to_string()));
    // Out of range.
    assert!(matches!(
        a.invite("bob", false, Some(std::time::Duration::from_secs(0)))
            .await,
        Err(Error::BadInvitation(_))
    ));
}

async fn a_password_an_administrator_chose_must_be_changed(f: Fixture) {
    let a = f.admin().await;
    let pid = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    a.add_user("bob", "kettle 42 chosen", false).await.unwrap();
    a.grant("bob", "identity").await.unwrap();
    let err = f.login("bob", "kettle 42 chosen").await.unwrap_err();
    assert!(
        matches!(&err, Error::PasswordChangeRequired { user, set_by } if user == "bob" && set_by == "admin"),
        "{err}"
    );
    assert!(!err.to_string().contains("kettle"), "{err}");
    // Keeping the administrator's password is not a change.
    let same = medvault::OpenOptions {
        new_password: Some("kettle 42 chosen".into()),
        ..f.opts()
    };
    assert!(matches!(
        medvault::Vault::open(&f.url, "bob", "kettle 42 chosen", &same).await,
        Err(Error::WeakPassword(m)) if m.contains("replaces")
    ));
    // On MySQL a login reads the locked key from the users row (SQLCipher:
    // from the keyring file, which only holders of the database key edit).
    let stored_before = if f.is_mysql() {
        Some(
            f.blob(
                "SELECT locked_key FROM users WHERE name = ?",
                vec![Val::T("bob".into())],
            )
            .await,
        )
    } else {
        None
    };
    let bob = f.first_login("bob", "kettle 42 chosen", "bob chose").await;
    assert_eq!(bob.get_patient(&pid).await.unwrap().family_name, "Dupont");
    drop(bob);
    // From now on an ordinary login; a later change needs no wait.
    let bob = f.login("bob", "bob chose").await.unwrap();
    assert!(!bob.changed_password_at_login());
    bob.change_password("bob chose again").await.unwrap();
    // The key is the same certified key: grants and signatures hold.
    let users = a.list_users().await.unwrap();
    assert!(users.iter().all(|u| u.trusted), "{users:?}");
    // A store that puts the administrator-chosen key back brings the demand
    // back with it; it cannot take it away.
    if let Some(old) = stored_before {
        // Nor can it strip the user ID (and its notation) from that key:
        // a key without its own binding is tampered.
        use sequoia_openpgp::parse::Parse;
        use sequoia_openpgp::serialize::MarshalInto;
        let stripped = sequoia_openpgp::Cert::from_bytes(&old)
            .unwrap()
            .retain_userids(|_| false)
            .as_tsk()
            .to_vec()
            .unwrap();
        f.exec(
            "UPDATE users SET locked_key = ? WHERE name = 'bob'",
            vec![Val::B(stripped)],
        )
        .await;
        let err = f.login("bob", "kettle 42 chosen").await.unwrap_err();
        assert!(matches!(err, Error::LockedKeyTampered(_)), "{err}");
        f.exec(
            "UPDATE users SET locked_key = ? WHERE name = 'bob'",
            vec![Val::B(old)],
        )
        .await;
        assert!(matches!(
            f.login("bob", "kettle 42 chosen").await,
            Err(Error::PasswordChangeRequired { .. })
        ));
        assert!(matches!(
            f.login("bob", "bob chose again").await,
            Err(Error::WrongPassword(_))
        ));
    }
}
