//! Key rotation and revocation (README, "Access over time"): every cell of
//! a scope sealed again under a new epoch in every declared table, search
//! answering throughout, old epochs retired by a signed record, and a
//! revoked user left with keys that open and match nothing new.

#[macro_use]
mod common;
use std::ops::ControlFlow;

use common::*;
use medvault::vault::rows::{NewRow, Value};
use medvault::{Error, PatientQuery, RotateOptions};

per_store!(
    rotation_reseals_every_cell_of_the_scope_and_retires_the_old_epoch,
    search_answers_during_a_rotation_and_it_resumes,
    revocation_protects_what_is_written_afterwards,
    an_open_session_follows_a_rotation_made_elsewhere,
    two_rotations_at_once_make_one_epoch,
    a_forged_retirement_is_not_believed,
    a_retirement_survives_its_signer_being_disabled,
    a_revocation_racing_a_rotation_is_never_undone,
    restored_old_grants_do_not_get_the_new_key,
    a_user_without_the_newest_epoch_never_writes_under_an_older_one,
    a_rotation_reads_only_the_rows_of_its_scope,
    a_rotation_follows_a_schema_stored_since_its_session_began,
);

/// An administrator's session opened before another applied a schema
/// with a new table of `clinical` rotates `clinical`: the rotation reads
/// the schema in force once its new epoch exists, so the new table's rows
/// are sealed again too, rather than left under the epoch it retires
/// (where they would read as forged).
async fn a_rotation_follows_a_schema_stored_since_its_session_began(f: Fixture) {
    let stale = f.admin().await;
    let (b, p) = emr_with_patient(&f).await;
    let t = b.table("allergies").await.unwrap();
    let id = t.insert(&allergy(p, "Latex")).await.unwrap();
    let r = stale.rotate("clinical").await.unwrap();
    assert!(r.finished && r.retired == vec![1], "{r:?}");
    assert_eq!(
        f.epochs_of("allergies", "substance").await,
        [(2, 1)].into_iter().collect()
    );
    let row = t.get(id).await.unwrap().unwrap();
    assert_eq!(row.text("substance"), Some("Latex"));
}

/// Rotating `billing` reads the billing notes, not every clinical one:
/// the store is asked for the rows whose scope is billing.
async fn a_rotation_reads_only_the_rows_of_its_scope(f: Fixture) {
    let a = f.admin().await;
    let p = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    for i in 0..5 {
        a.add_note(&p, &format!("Visit {i}"), Some("clinical"))
            .await
            .unwrap();
    }
    for i in 0..2 {
        a.add_note(&p, &format!("Invoice {i}"), Some("billing"))
            .await
            .unwrap();
    }
    let mut calls = Vec::new();
    let r = a
        .rotate_with("billing", &RotateOptions::default(), &mut |p| {
            calls.push((p.table.clone(), p.seen, p.total));
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
    assert!(r.finished && r.rewritten == 2, "{r:?}");
    assert!(!calls.is_empty());
    assert!(
        calls
            .iter()
            .all(|(t, seen, total)| t == "notes" && *seen <= 2 && *total == 2),
        "{calls:?}"
    );
    // Every note still opens, each under its scope's newest epoch.
    let notes = a.list_notes(&p, None).await.unwrap().notes;
    assert_eq!(notes.len(), 7);
    assert_eq!(f.epochs_of("notes", "body").await, [(1, 5), (2, 2)].into());
}

/// A store that withholds a user's grant of the newest epoch (or a grant
/// that was lost) cannot make them write under the epoch before it, even
/// while that one is still live (a rotation part-way): they are told
/// `NotCurrent`, and nothing is written. Once the older epoch is retired
/// they hold nothing live: `NoAccess`.
async fn a_user_without_the_newest_epoch_never_writes_under_an_older_one(f: Fixture) {
    let a = f.admin().await;
    f.user(&a, "bob", &["identity"]).await;
    for i in 0..3 {
        a.insert_patient(&patient("Dupont", &format!("Jean {i}"), "1970-03-02"))
            .await
            .unwrap();
    }
    // A rotation stopped after its first page: epoch 2 exists, epoch 1 is
    // still live.
    let opts = RotateOptions {
        batch: 1,
        ..Default::default()
    };
    let report = a
        .rotate_with("identity", &opts, &mut |_| ControlFlow::Break(()))
        .await
        .unwrap();
    assert!(!report.finished);
    let sid = f
        .int("SELECT id FROM scopes WHERE name = 'identity'", vec![])
        .await;
    let removed = f
        .exec(
            "DELETE FROM grants WHERE grantee = 'bob' AND scope_id = ? AND epoch = ?",
            vec![Val::I(sid), Val::I(i64::from(report.epoch))],
        )
        .await;
    assert_eq!(removed, 1, "control: bob was given the new epoch");
    let bob = f.login("bob", "bob pw").await.unwrap();
    let before = f.patient_count().await;
    let err = bob
        .insert_patient(&patient("Martin", "Anne", "1980-01-01"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotCurrent { scope, epoch } if scope == "identity" && *epoch == report.epoch),
        "{err}"
    );
    assert_eq!(f.patient_count().await, before);
    // The rotation finished: epoch 1 retired, bob holds nothing live.
    assert!(a.rotate("identity").await.unwrap().finished);
    let bob = f.login("bob", "bob pw").await.unwrap();
    assert!(matches!(
        bob.insert_patient(&patient("Martin", "Anne", "1980-01-01"))
            .await,
        Err(Error::NoAccess(_))
    ));
    assert_eq!(f.patient_count().await, before);
}

const EMR: &str = include_str!("../examples/emr/schema.toml");

const FAMILIES: [&str; 6] = [
    "Dupont",
    "Martin",
    "Éloïse-Marie",
    "O'Brien",
    "Durand",
    "Lefèvre",
];

/// `n` patients, family names cycling through [`FAMILIES`], each with an
/// allergy (clinical) and, for every third, an insurance number (identity).
async fn populate(a: &medvault::Session, n: usize) -> Vec<medvault::Id> {
    let people: Vec<_> = (0..n)
        .map(|i| {
            patient(
                FAMILIES[i % FAMILIES.len()],
                &format!("Given{i}"),
                &format!("19{:02}-01-{:02}", 40 + i % 50, 1 + i % 28),
            )
        })
        .collect();
    let ids = a.insert_patients(&people).await.unwrap();
    let pt = a.table("patients").await.unwrap();
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| i.is_multiple_of(3)) {
        let mut ch = std::collections::BTreeMap::new();
        ch.insert(
            "insurance_number".to_string(),
            Value::from(format!("INS-{i:05}")),
        );
        assert!(pt.update(*id, &ch).await.unwrap());
    }
    let al = a.table("allergies").await.unwrap();
    let rows: Vec<NewRow> = ids
        .iter()
        .map(|p| {
            NewRow::child_of(*p)
                .set("substance", "Penicillin")
                .set("reaction", "Rash")
                .set("recorded_on", "2020")
        })
        .collect();
    al.insert_many(&rows).await.unwrap();
    ids
}

fn family(name: &str) -> PatientQuery {
    PatientQuery {
        family_name: Some(name.into()),
        ..Default::default()
    }
}

async fn dupont_count(s: &medvault::Session) -> usize {
    s.find_patients(&family("dupont")).await.unwrap().len()
}

async fn rotation_reseals_every_cell_of_the_scope_and_retires_the_old_epoch(f: Fixture) {
    let a = f.admin().await;
    a.apply_schema(EMR).await.unwrap();
    let n = 60;
    let ids = populate(&a, n).await;
    let note = a.add_note(&ids[0], "Seen for a cough", None).await.unwrap();
    let bob = f.user(&a, "bob", &["identity"]).await;
    assert_eq!(
        f.epochs_of("patients", "family_name").await,
        [(1, n)].into()
    );

    let mut calls = Vec::new();
    let opts = RotateOptions {
        batch: 7,
        ..Default::default()
    };
    let r = a
        .rotate_with("identity", &opts, &mut |p| {
            calls.push((p.pass, p.seen, p.total));
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
    assert!(r.created && r.finished, "{r:?}");
    assert_eq!(r.epoch, 2);
    assert_eq!(r.rewritten, n as u64);
    assert_eq!(r.retired, vec![1]);
    assert!(r.wrapped_to.contains(&"bob".to_string()), "{r:?}");
    // A batch of 7 over 60 patients: a report per batch. The notes, whose
    // rows each name a scope, are asked for those of identity only (none:
    // the clinical note is not read). The first pass rewrites, the second
    // finds nothing left.
    assert!(calls.len() >= 9, "{calls:?}");
    assert!(calls
        .windows(2)
        .all(|w| w[0] <= w[1] || w[1].0 == w[0].0 + 1));
    assert!(calls
        .iter()
        .any(|(pass, seen, total)| *pass == 1 && seen == total && *total == n as u64));
    assert_eq!(calls.last().map(|c| c.0), Some(2));

    // Every identity cell is under epoch 2, the optional one too; the
    // clinical cells were not touched.
    for col in ["family_name", "given_names", "born", "sex"] {
        assert_eq!(f.epochs_of("patients", col).await, [(2, n)].into(), "{col}");
    }
    assert_eq!(
        f.epochs_of("patients", "insurance_number").await,
        [(2, n.div_ceil(3))].into()
    );
    assert_eq!(f.epochs_of("allergies", "substance").await, [(1, n)].into());
    assert_eq!(f.epochs_of("notes", "body").await, [(1, 1)].into());
    // The retirement is recorded (signed: see a_forged_retirement_...).
    assert_eq!(
        f.int(
            "SELECT COUNT(*) FROM epochs WHERE scope_id = 1 AND epoch = 1 AND retired_sig IS NOT NULL",
            vec![]
        )
        .await,
        1
    );

    // Search is exact under the new epoch alone.
    assert_eq!(dupont_count(&a).await, n / FAMILIES.len());
    let pt = a.table("patients").await.unwrap();
    let hit = pt
        .find(&[("insurance_number", Value::from("INS-00003"))])
        .await
        .unwrap();
    assert_eq!(hit.len(), 1);
    assert_eq!(hit[0].id, ids[3]);
    // Notes still open (their patient's cells moved, not theirs).
    assert_eq!(a.list_notes(&ids[0], None).await.unwrap().notes[0].id, note);
    // Bob's session predates the rotation: it learns of it by itself.
    assert_eq!(dupont_count(&bob).await, n / FAMILIES.len());
    assert_eq!(
        bob.get_patient(&ids[5]).await.unwrap().family_name,
        "Lefèvre"
    );
    // A fresh login holds epoch 2 only as current; verify agrees with all.
    let bob2 = f.login("bob", "bob pw").await.unwrap();
    assert_eq!(dupont_count(&bob2).await, n / FAMILIES.len());
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);

    // Nothing left to do: a second rotation makes epoch 3.
    let r = a.rotate("identity").await.unwrap();
    assert!(r.created && r.finished);
    assert_eq!(
        (r.epoch, r.rewritten, r.retired.clone()),
        (3, n as u64, vec![2])
    );
}

async fn search_answers_during_a_rotation_and_it_resumes(f: Fixture) {
    let a = f.admin().await;
    a.apply_schema(EMR).await.unwrap();
    let n = 60;
    let ids = populate(&a, n).await;
    let opts = RotateOptions {
        batch: 10,
        ..Default::default()
    };
    // Stop after the second batch: part of the rows are under epoch 2.
    let mut batches = 0;
    let r = a
        .rotate_with("identity", &opts, &mut |_| {
            batches += 1;
            if batches == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .await
        .unwrap();
    assert!(!r.finished && r.created);
    assert_eq!(r.rewritten, 20);
    assert!(r.retired.is_empty());
    assert_eq!(
        f.epochs_of("patients", "family_name").await,
        [(1, n - 20), (2, 20)].into()
    );
    // Search finds rows of both halves, exactly; a write goes under 2.
    assert_eq!(dupont_count(&a).await, n / FAMILIES.len());
    let bob = f.user(&a, "bob", &["identity"]).await;
    assert_eq!(dupont_count(&bob).await, n / FAMILIES.len());
    // So do the first letters (one range per live epoch) and a given name
    // (each slot asked for the word's value under both): every row, of
    // either half.
    for i in 0..n {
        let by_prefix = bob
            .find_patients(&PatientQuery {
                family_prefix: Some(FAMILIES[i % FAMILIES.len()].into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(by_prefix.iter().any(|p| p.id == ids[i]), "{i}");
        let by_given = bob
            .find_patients(&PatientQuery {
                given_name: Some(format!("given{i}")),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(by_given.iter().map(|p| p.id).collect::<Vec<_>>(), [ids[i]]);
    }
    let late = a
        .insert_patient(&patient("Dupont", "Late", "2001-01-01"))
        .await
        .unwrap();
    assert_eq!(
        f.epochs_of("patients", "family_name").await,
        [(1, n - 20), (2, 21)].into()
    );
    assert_eq!(dupont_count(&bob).await, n / FAMILIES.len() + 1);

    // Run again: it resumes (no new epoch) and finishes.
    let r = a.rotate("identity").await.unwrap();
    assert!(!r.created && r.finished, "{r:?}");
    assert_eq!(
        (r.epoch, r.rewritten, r.retired.clone()),
        (2, (n - 20) as u64, vec![1])
    );
    assert_eq!(
        f.epochs_of("patients", "family_name").await,
        [(2, n + 1)].into()
    );
    assert_eq!(dupont_count(&bob).await, n / FAMILIES.len() + 1);
    assert_eq!(a.get_patient(&late).await.unwrap().given_names, "Late");
    assert!(a.verify_store().await.unwrap().problems.is_empty());
}

async fn revocation_protects_what_is_written_afterwards(f: Fixture) {
    let a = f.admin().await;
    let before = a
        .insert_patient(&patient("Dupont", "Avant", "1970-03-02"))
        .await
        .unwrap();
    let bob = f.user(&a, "bob", &["identity"]).await;
    let carol = f.user(&a, "carol", &["identity"]).await;
    assert_eq!(dupont_count(&bob).await, 1);
    // What bob's epoch-1 index key makes of "dupont", as stored now.
    let old_bi = f
        .blob(
            "SELECT bi_family_name FROM patients WHERE id = ?",
            vec![before.into()],
        )
        .await;
    let r = a.revoke("bob", "identity").await.unwrap();
    assert!(r.created && r.finished);
    assert_eq!(r.epoch, 2);
    assert!(!r.wrapped_to.contains(&"bob".to_string()), "{r:?}");
    assert!(r.wrapped_to.contains(&"carol".to_string()), "{r:?}");
    let after = a
        .insert_patient(&patient("Dupont", "Après", "1980-03-02"))
        .await
        .unwrap();
    // Bob's session, opened before, still holds epoch 1 in memory, as a
    // revoked user who kept their keys would: it matches nothing now (the
    // rows were indexed again) and opens nothing written since.
    assert!(matches!(
        bob.get_patient(&after).await,
        Err(Error::NoAccess(_))
    ));
    assert!(matches!(
        bob.find_patients(&family("dupont")).await,
        Err(Error::NoAccess(_))
    ));
    // Also when the key is used directly, without the session's checks:
    // epoch 1's index value of "dupont" is nowhere in the table.
    let now = f.blobs("SELECT bi_family_name FROM patients").await;
    assert_eq!(now.len(), 2);
    assert!(!now.contains(&old_bi));
    // At the next login bob has nothing of identity; carol has all of it.
    let bob = f.login("bob", "bob pw").await.unwrap();
    assert!(!bob.scopes().contains(&"identity".to_string()));
    assert!(matches!(
        bob.get_patient(&before).await,
        Err(Error::NoAccess(_))
    ));
    assert_eq!(dupont_count(&carol).await, 2);
    let carol = f.login("carol", "carol pw").await.unwrap();
    assert_eq!(dupont_count(&carol).await, 2);
    // Revoking what is not granted changes nothing.
    assert!(matches!(
        a.revoke("bob", "identity").await,
        Err(Error::NoSuchGrant { .. })
    ));
    assert_eq!(
        f.epochs_of("patients", "family_name").await,
        [(2, 2)].into()
    );
}

async fn an_open_session_follows_a_rotation_made_elsewhere(f: Fixture) {
    let a = f.admin().await;
    let a2 = f.admin().await; // the same administrator, elsewhere
    let p = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    a2.rotate("identity").await.unwrap();
    // `a` still had epoch 1 as current: its next write learns of 2 first.
    let q = a
        .insert_patient(&patient("Dupont", "Paul", "1971-03-02"))
        .await
        .unwrap();
    assert_eq!(
        f.epochs_of("patients", "family_name").await,
        [(2, 2)].into()
    );
    assert_eq!(dupont_count(&a).await, 2);
    assert_eq!(a.get_patient(&p).await.unwrap().given_names, "Jean");
    assert_eq!(a2.get_patient(&q).await.unwrap().given_names, "Paul");
    // A user disabled while their session is open cannot write with it.
    let bob = f.user(&a, "bob", &["identity"]).await;
    a.disable_user("bob").await.unwrap();
    // (On SQLCipher disabling a user also changes the file's key, so the
    // open connection stops reading the file at all, and says why.)
    let r = bob.insert_patient(&patient("X", "Y", "2000-01-01")).await;
    if f.is_mysql() {
        assert!(matches!(r, Err(Error::UserDisabled(_))), "{r:?}");
    } else {
        assert!(matches!(r, Err(Error::DatabaseKeyChanged(_))), "{r:?}");
        assert!(matches!(
            f.login("bob", "bob pw").await,
            Err(Error::UserDisabled(_))
        ));
    }
    assert_eq!(dupont_count(&a).await, 2);
}

async fn two_rotations_at_once_make_one_epoch(f: Fixture) {
    let a = f.admin().await;
    let b = f.admin().await;
    a.insert_patients(
        &(0..30)
            .map(|i| patient("Dupont", &format!("P{i}"), "1970-01-01"))
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    let (ra, rb) = tokio::join!(a.rotate("identity"), b.rotate("identity"));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    // Exactly one made epoch 2; both end with every row under it.
    assert_eq!((ra.epoch, rb.epoch), (2, 2), "{ra:?} {rb:?}");
    assert!(ra.created != rb.created, "{ra:?} {rb:?}");
    assert_eq!(
        f.int("SELECT COUNT(*) FROM epochs WHERE scope_id = 1", vec![])
            .await,
        2
    );
    assert_eq!(
        f.epochs_of("patients", "family_name").await,
        [(2, 30)].into()
    );
    assert_eq!(dupont_count(&a).await, 30);
    assert_eq!(dupont_count(&b).await, 30);
}

async fn a_forged_retirement_is_not_believed(f: Fixture) {
    let a = f.admin().await;
    a.insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    // Stop a rotation after its first batch, then mark epoch 1 retired
    // with a signature copied from nowhere: searches must still cover it.
    let opts = RotateOptions {
        batch: 1,
        ..Default::default()
    };
    a.insert_patient(&patient("Dupont", "Paul", "1971-03-02"))
        .await
        .unwrap();
    let r = a
        .rotate_with("identity", &opts, &mut |_| ControlFlow::Break(()))
        .await
        .unwrap();
    assert!(!r.finished);
    assert_eq!(
        f.epochs_of("patients", "family_name").await,
        [(1, 1), (2, 1)].into()
    );
    f.exec(
        "UPDATE epochs SET state = 'retired', retired_by = 'admin', retired_at = 1, \
         retired_sig = ? WHERE scope_id = 1 AND epoch = 1",
        vec![vec![1u8; 64].into()],
    )
    .await;
    let fresh = f.admin().await;
    assert_eq!(dupont_count(&fresh).await, 2);
    let v = fresh.verify_store().await.unwrap();
    assert!(
        v.problems.iter().any(|p| p.contains("retire")),
        "{:?}",
        v.problems
    );
}

async fn a_retirement_survives_its_signer_being_disabled(f: Fixture) {
    let a = f.admin().await;
    a.insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    enrol(&a, "boss", "boss pw", true).await;
    a.grant("boss", "identity").await.unwrap();
    let boss = f.login("boss", "boss pw").await.unwrap();
    let r = boss.rotate("identity").await.unwrap();
    assert_eq!(r.retired, vec![1]);
    a.disable_user("boss").await.unwrap();
    // The epoch boss made and its retirement were signed again by admin.
    let fresh = f.admin().await;
    let v = fresh.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert_eq!(dupont_count(&fresh).await, 1);
}

async fn a_revocation_racing_a_rotation_is_never_undone(f: Fixture) {
    let a = f.admin().await;
    let a2 = f.admin().await;
    let people: Vec<_> = (0..200)
        .map(|i| patient(FAMILIES[i % FAMILIES.len()], &format!("G{i}"), "1970-01-01"))
        .collect();
    a.insert_patients(&people).await.unwrap();
    let bob = f.user(&a, "bob", &["identity"]).await;
    drop(bob);
    let opts = RotateOptions {
        batch: 10,
        ..Default::default()
    };
    // A plain rotation and a revocation, interleaved at every await.
    let mut go = |_: &medvault::RotateProgress| ControlFlow::Continue(());
    let (ra, rb) = tokio::join!(a.rotate_with("identity", &opts, &mut go), async {
        tokio::task::yield_now().await;
        a2.revoke("bob", "identity").await
    });
    let rb = rb.unwrap();
    assert!(rb.finished, "{rb:?}");
    assert!(matches!(ra, Ok(_) | Err(Error::Concurrent(_))), "{ra:?}");
    // Every row is under the revocation's epoch or a later one, which bob
    // was never given.
    let newest = f
        .int("SELECT MAX(epoch) FROM epochs WHERE scope_id = 1", vec![])
        .await;
    assert!(newest >= rb.epoch as i64);
    let epochs = f.epochs_of("patients", "family_name").await;
    assert!(
        epochs.keys().all(|e| *e >= rb.epoch),
        "{epochs:?} (revocation at {})",
        rb.epoch
    );
    assert_eq!(
        f.int(
            "SELECT COUNT(*) FROM grants WHERE grantee = 'bob' AND scope_id = 1 AND epoch >= ?",
            vec![i64::from(rb.epoch).into()]
        )
        .await,
        0
    );
    let bob = f.login("bob", "bob pw").await.unwrap();
    assert!(!bob.scopes().contains(&"identity".to_string()));
    // Whatever is left, a rotation finishes; search is exact.
    a.rotate("identity").await.unwrap();
    assert_eq!(dupont_count(&a).await, 200 / FAMILIES.len() + 1);
}

async fn restored_old_grants_do_not_get_the_new_key(f: Fixture) {
    let a = f.admin().await;
    a.insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    f.user(&a, "bob", &["identity"]).await;
    f.exec_script(&[
        "CREATE TABLE saved_grants AS SELECT * FROM grants WHERE grantee = 'bob' AND scope_id = 1",
    ])
    .await;
    a.revoke("bob", "identity").await.unwrap();
    // The store puts bob's old, validly signed grants back.
    f.exec_script(&["INSERT INTO grants SELECT * FROM saved_grants"])
        .await;
    // Later grants and rotations must not wrap new epochs to him.
    f.user(&a, "carol", &[]).await;
    a.grant("carol", "identity").await.unwrap();
    a.rotate("identity").await.unwrap();
    assert_eq!(
        f.int(
            "SELECT COUNT(*) FROM grants WHERE grantee = 'bob' AND scope_id = 1 AND epoch >= 2",
            vec![]
        )
        .await,
        0
    );
    assert!(
        f.int(
            "SELECT COUNT(*) FROM grants WHERE grantee = 'carol' AND scope_id = 1 AND epoch = 3",
            vec![]
        )
        .await
            == 1
    );
}
