//! Restricted scopes and access requests (README, "Access over time";
//! FORMAT.md §5.7, §9.12): a patient's notes moved into a care team's
//! scope; requests signed by the requester, approved with a grant or
//! declined; a request the store made up cannot be approved.

#[macro_use]
mod common;
use common::*;
use medvault::{Error, Rights};

per_store!(
    a_care_team_scope_holds_a_patients_notes,
    a_request_is_approved_or_declined,
    a_forged_request_is_never_approved,
);

async fn a_care_team_scope_holds_a_patients_notes(f: Fixture) {
    let a = f.admin().await;
    let dupont = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    let other = a
        .insert_patient(&patient("Martin", "Anne", "1980-01-01"))
        .await
        .unwrap();
    a.add_note(&dupont, "Sensitive history", Some("clinical"))
        .await
        .unwrap();
    a.add_note(&dupont, "Follow-up", Some("clinical"))
        .await
        .unwrap();
    a.add_note(&other, "Routine", Some("clinical"))
        .await
        .unwrap();
    a.add_note(&dupont, "Invoice 12", Some("billing"))
        .await
        .unwrap();
    let nurse = f.user(&a, "nurse", &["identity", "clinical"]).await;
    assert_eq!(
        nurse.list_notes(&dupont, None).await.unwrap().notes.len(),
        2
    );
    a.create_scope("care-team-dupont").await.unwrap();
    let before = a.list_notes(&dupont, Some("clinical")).await.unwrap().notes;
    assert_eq!(
        a.move_notes(&dupont, "clinical", "care-team-dupont")
            .await
            .unwrap(),
        2
    );
    // The notes are the same, now in the care team's scope; the other
    // patient's note and the billing note stay where they were.
    let moved = a
        .list_notes(&dupont, Some("care-team-dupont"))
        .await
        .unwrap()
        .notes;
    assert_eq!(
        moved
            .iter()
            .map(|n| (&n.id, &n.body, &n.author, n.created_at))
            .collect::<Vec<_>>(),
        before
            .iter()
            .map(|n| (&n.id, &n.body, &n.author, n.created_at))
            .collect::<Vec<_>>()
    );
    assert!(a
        .list_notes(&dupont, Some("clinical"))
        .await
        .unwrap()
        .notes
        .is_empty());
    assert_eq!(
        a.list_notes(&other, Some("clinical"))
            .await
            .unwrap()
            .notes
            .len(),
        1
    );
    assert_eq!(
        a.list_notes(&dupont, Some("billing"))
            .await
            .unwrap()
            .notes
            .len(),
        1
    );
    // A clinician outside the team no longer reads them, even with a
    // session opened before the move.
    let list = nurse.list_notes(&dupont, None).await.unwrap();
    assert!(list.notes.is_empty() && list.withheld == 3, "{list:?}");
    let fresh = f.login("nurse", "nurse pw").await.unwrap();
    assert!(fresh
        .list_notes(&dupont, None)
        .await
        .unwrap()
        .notes
        .is_empty());
    // Granted the team's scope, they read them again.
    a.grant("nurse", "care-team-dupont").await.unwrap();
    let nurse = f.login("nurse", "nurse pw").await.unwrap();
    assert_eq!(
        nurse
            .list_notes(&dupont, Some("care-team-dupont"))
            .await
            .unwrap()
            .notes
            .len(),
        2
    );
    // Only an administrator moves notes, never into or out of a personal
    // scope, and only between scopes they hold.
    let outsider = f.user(&a, "outsider", &["identity", "clinical"]).await;
    assert!(matches!(
        outsider.move_notes(&other, "clinical", "personal").await,
        Err(Error::NotAdmin(_))
    ));
    assert!(matches!(
        a.move_notes(&other, "clinical", "personal").await,
        Err(Error::Refused(_))
    ));
    enrol(&a, "admin2", "admin2 pw", true).await;
    a.grant("admin2", "clinical").await.unwrap();
    let admin2 = f.login("admin2", "admin2 pw").await.unwrap();
    assert!(matches!(
        admin2
            .move_notes(&other, "clinical", "care-team-dupont")
            .await,
        Err(Error::NoAccess(_))
    ));
    assert_eq!(
        a.list_notes(&other, Some("clinical"))
            .await
            .unwrap()
            .notes
            .len(),
        1
    );
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

async fn a_request_is_approved_or_declined(f: Fixture) {
    let a = f.admin().await;
    let pid = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    a.create_scope("care-team").await.unwrap();
    a.create_scope("team-two").await.unwrap();
    a.add_note(&pid, "Team only", Some("care-team"))
        .await
        .unwrap();
    let bob = f.user(&a, "bob", &["identity"]).await;
    // Nothing to ask for: held, personal, unknown.
    assert!(matches!(
        bob.request_access("identity").await,
        Err(Error::Refused(_))
    ));
    assert!(matches!(
        bob.request_access("personal").await,
        Err(Error::Refused(_))
    ));
    assert!(matches!(
        bob.request_access("no-such-scope").await,
        Err(Error::UnknownScope(_))
    ));
    bob.request_access("care-team").await.unwrap();
    bob.request_access("care-team").await.unwrap(); // asked again: one request
    bob.request_access("team-two").await.unwrap();
    // Users neither list nor decide.
    assert!(matches!(
        bob.access_requests().await,
        Err(Error::NotAdmin(_))
    ));
    assert!(matches!(
        bob.approve_request("bob", "care-team", Rights::ReadWrite)
            .await,
        Err(Error::NotAdmin(_))
    ));
    let pending = a.access_requests().await.unwrap();
    let mut seen: Vec<(&str, &str, bool)> = pending
        .iter()
        .map(|r| (r.requester.as_str(), r.scope.as_str(), r.verified))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![("bob", "care-team", true), ("bob", "team-two", true)]
    );
    // Approving needs the scope: an administrator without it cannot.
    enrol(&a, "admin2", "admin2 pw", true).await;
    let admin2 = f.login("admin2", "admin2 pw").await.unwrap();
    assert!(matches!(
        admin2
            .approve_request("bob", "care-team", Rights::ReadWrite)
            .await,
        Err(Error::NoAccess(_))
    ));
    a.approve_request("bob", "care-team", Rights::ReadWrite)
        .await
        .unwrap();
    assert!(a.decline_request("bob", "team-two").await.unwrap());
    assert!(!a.decline_request("bob", "team-two").await.unwrap());
    assert!(a.access_requests().await.unwrap().is_empty());
    assert!(matches!(
        a.approve_request("bob", "team-two", Rights::ReadWrite)
            .await,
        Err(Error::Refused(_))
    ));
    let bob = f.login("bob", "bob pw").await.unwrap();
    assert!(bob.scopes().contains(&"care-team".to_string()));
    assert!(!bob.scopes().contains(&"team-two".to_string()));
    let notes = bob.list_notes(&pid, Some("care-team")).await.unwrap();
    assert_eq!(notes.notes[0].body, "Team only");
}

async fn a_forged_request_is_never_approved(f: Fixture) {
    let a = f.admin().await;
    a.create_scope("care-team").await.unwrap();
    a.create_scope("other-team").await.unwrap();
    let bob = f.user(&a, "bob", &["identity"]).await;
    f.user(&a, "mallory", &["identity"]).await;
    bob.request_access("care-team").await.unwrap();
    // The store moves bob's signed request to another scope, and makes one
    // up for mallory with bob's signature.
    let sig = f
        .blob(
            "SELECT signature FROM access_requests WHERE requester = 'bob'",
            vec![],
        )
        .await;
    // The same time as bob's own: only the scope (or the name) differs.
    let at = f
        .int(
            "SELECT requested_at FROM access_requests WHERE requester = 'bob'",
            vec![],
        )
        .await;
    let other = f
        .int("SELECT id FROM scopes WHERE name = 'other-team'", vec![])
        .await;
    let care = f
        .int("SELECT id FROM scopes WHERE name = 'care-team'", vec![])
        .await;
    f.exec(
        "INSERT INTO access_requests (scope_id, requester, requested_at, signature) VALUES (?, ?, ?, ?)",
        vec![Val::I(other), Val::T("bob".into()), Val::I(at), Val::B(sig.clone())],
    )
    .await;
    f.exec(
        "INSERT INTO access_requests (scope_id, requester, requested_at, signature) VALUES (?, ?, ?, ?)",
        vec![Val::I(care), Val::T("mallory".into()), Val::I(at), Val::B(sig)],
    )
    .await;
    let listed = a.access_requests().await.unwrap();
    let verified: Vec<(String, String, bool)> = listed
        .into_iter()
        .map(|r| (r.requester, r.scope, r.verified))
        .collect();
    assert!(
        verified.contains(&("bob".into(), "care-team".into(), true)),
        "{verified:?}"
    );
    assert!(
        verified.contains(&("bob".into(), "other-team".into(), false)),
        "{verified:?}"
    );
    assert!(
        verified.contains(&("mallory".into(), "care-team".into(), false)),
        "{verified:?}"
    );
    for (who, scope) in [("bob", "other-team"), ("mallory", "care-team")] {
        assert!(matches!(
            a.approve_request(who, scope, Rights::ReadWrite).await,
            Err(Error::BadSignature { .. })
        ));
    }
    let mallory = f.login("mallory", "mallory pw").await.unwrap();
    assert!(!mallory.scopes().contains(&"care-team".to_string()));
    let bob = f.login("bob", "bob pw").await.unwrap();
    assert!(!bob.scopes().contains(&"other-team".to_string()));
    // The genuine one still goes through.
    a.approve_request("bob", "care-team", Rights::ReadWrite)
        .await
        .unwrap();
}
