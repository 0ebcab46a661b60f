//! Write rights (README, "Access over time"; FORMAT.md §5.3): a grant
//! names the rights it gives, `read` or `read-write`, under the granter's
//! signature. A reader holds the key and writes nothing under it; a
//! rotation keeps each holder's rights; a store cannot raise them.

#[macro_use]
mod common;
use common::*;
use medvault::vault::rows::NewRow;
use medvault::{Error, Holder, NewPatient, PatientQuery, Rights};

per_store!(
    a_reader_reads_and_never_writes,
    rights_change_and_survive_a_rotation,
    a_store_cannot_raise_rights,
    deletes_and_moves_need_the_write_right,
    a_delete_needs_the_write_right_down_to_grandchildren,
    an_update_needs_the_write_right_on_every_scope_of_the_row,
    disabling_a_user_rotates_their_scopes,
);

const EMR: &str = include_str!("../examples/emr/schema.toml");

fn family(name: &str) -> PatientQuery {
    PatientQuery {
        family_name: Some(name.into()),
        ..PatientQuery::default()
    }
}

fn holders(list: &[(&str, Rights)]) -> Vec<Holder> {
    list.iter()
        .map(|(u, r)| Holder {
            user: (*u).to_owned(),
            rights: *r,
        })
        .collect()
}

async fn a_reader_reads_and_never_writes(f: Fixture) {
    let a = f.admin().await;
    let dupont = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    a.add_note(&dupont, "Penicillin allergy", Some("clinical"))
        .await
        .unwrap();
    enrol(&a, "clerk", "clerk pw", false).await;
    a.grant_rights("clerk", "identity", Rights::Read)
        .await
        .unwrap();
    a.grant_rights("clerk", "clinical", Rights::Read)
        .await
        .unwrap();
    let clerk = f.login("clerk", "clerk pw").await.unwrap();
    assert_eq!(
        a.access_list("clinical").await.unwrap(),
        holders(&[(ADMIN, Rights::ReadWrite), ("clerk", Rights::Read)])
    );
    // Reads work.
    let found = clerk.find_patients(&family("Dupont")).await.unwrap();
    assert_eq!(found.len(), 1);
    let notes = clerk.list_notes(&dupont, None).await.unwrap().notes;
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].body, "Penicillin allergy");
    // No write goes through, and nothing is written.
    let before = f.patient_count().await;
    assert!(matches!(
        clerk.insert_patient(&patient("Martin", "Anne", "1980-01-01")).await,
        Err(Error::ReadOnly(s)) if s == "identity"
    ));
    assert!(matches!(
        clerk.update_patient(&dupont, &patient("Durand", "Jean", "1970-03-02")).await,
        Err(Error::ReadOnly(s)) if s == "identity"
    ));
    assert!(matches!(
        clerk.add_note(&dupont, "Not mine to write", Some("clinical")).await,
        Err(Error::ReadOnly(s)) if s == "clinical"
    ));
    assert_eq!(f.patient_count().await, before);
    assert_eq!(
        clerk.list_notes(&dupont, None).await.unwrap().notes.len(),
        1
    );
    assert_eq!(a.find_patients(&family("Dupont")).await.unwrap().len(), 1);
    // Their own personal scope stays theirs to write.
    clerk
        .add_note(&dupont, "My own reminder", Some("personal:clerk"))
        .await
        .unwrap();
}

async fn rights_change_and_survive_a_rotation(f: Fixture) {
    let a = f.admin().await;
    let dupont = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    let nurse = f.user(&a, "nurse", &["identity", "clinical"]).await;
    enrol(&a, "clerk", "clerk pw", false).await;
    a.grant_rights("clerk", "clinical", Rights::Read)
        .await
        .unwrap();
    let clerk = f.login("clerk", "clerk pw").await.unwrap();
    nurse
        .add_note(&dupont, "Written before", Some("clinical"))
        .await
        .unwrap();
    // Made read-only while her session is open: the next write sees it.
    a.grant_rights("nurse", "clinical", Rights::Read)
        .await
        .unwrap();
    assert!(matches!(
        nurse
            .add_note(&dupont, "Written after", Some("clinical"))
            .await,
        Err(Error::ReadOnly(_))
    ));
    // Taking the right rotated the scope: the read-write grant of epoch 1,
    // which a store could put back, no longer reaches the current key.
    assert_eq!(
        f.epochs_of("notes", "body")
            .await
            .keys()
            .collect::<Vec<_>>(),
        vec![&2]
    );
    // And given the right back: her write right is closed up to epoch 1
    // only (FORMAT.md §5.11; the downgrade's rotation did not give her
    // epoch 2 to write), so epoch 2 serves.
    a.grant_rights("nurse", "clinical", Rights::ReadWrite)
        .await
        .unwrap();
    nurse
        .add_note(&dupont, "Written again", Some("clinical"))
        .await
        .unwrap();
    // A rotation wraps the new epoch to each holder with their rights.
    a.rotate("clinical").await.unwrap();
    assert_eq!(
        f.epochs_of("notes", "body")
            .await
            .keys()
            .collect::<Vec<_>>(),
        vec![&3],
        "the rotation moved every note to epoch 3"
    );
    assert_eq!(
        a.access_list("clinical").await.unwrap(),
        holders(&[
            (ADMIN, Rights::ReadWrite),
            ("clerk", Rights::Read),
            ("nurse", Rights::ReadWrite)
        ])
    );
    nurse
        .add_note(&dupont, "Under the new epoch", Some("clinical"))
        .await
        .unwrap();
    assert!(matches!(
        clerk
            .add_note(&dupont, "Still not mine", Some("clinical"))
            .await,
        Err(Error::ReadOnly(_))
    ));
    assert_eq!(
        clerk.list_notes(&dupont, None).await.unwrap().notes.len(),
        3
    );
    // The same after a fresh login.
    let clerk = f.login("clerk", "clerk pw").await.unwrap();
    assert!(matches!(
        clerk
            .add_note(&dupont, "Still not mine", Some("clinical"))
            .await,
        Err(Error::ReadOnly(_))
    ));
}

async fn a_store_cannot_raise_rights(f: Fixture) {
    let a = f.admin().await;
    enrol(&a, "clerk", "clerk pw", false).await;
    a.grant_rights("clerk", "identity", Rights::Read)
        .await
        .unwrap();
    // Control: the reader cannot write.
    let clerk = f.login("clerk", "clerk pw").await.unwrap();
    let p: NewPatient = patient("Martin", "Anne", "1980-01-01");
    assert!(matches!(
        clerk.insert_patient(&p).await,
        Err(Error::ReadOnly(_))
    ));
    drop(clerk);
    // The store rewrites the rights column: the grant no longer verifies.
    let n = f
        .exec(
            "UPDATE grants SET rights = 'read-write' WHERE grantee = 'clerk' AND rights = 'read'",
            vec![],
        )
        .await;
    assert!(n >= 1);
    assert!(matches!(
        f.login("clerk", "clerk pw").await,
        Err(Error::BadSignature { .. })
    ));
    // Nor can it shorten a grant's rights text to one this version does
    // not know (the signature fails first).
    f.exec(
        "UPDATE grants SET rights = 'write' WHERE grantee = 'clerk'",
        vec![],
    )
    .await;
    assert!(matches!(
        f.login("clerk", "clerk pw").await,
        Err(Error::BadSignature { .. })
    ));
    assert_eq!(f.patient_count().await, 0);
}

async fn deletes_and_moves_need_the_write_right(f: Fixture) {
    let a = f.admin().await;
    let dupont = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    let martin = a
        .insert_patient(&patient("Martin", "Anne", "1980-01-01"))
        .await
        .unwrap();
    a.add_note(&dupont, "Penicillin allergy", Some("clinical"))
        .await
        .unwrap();
    enrol(&a, "clerk", "clerk pw", false).await;
    a.grant_rights("clerk", "identity", Rights::Read)
        .await
        .unwrap();
    let clerk = f.login("clerk", "clerk pw").await.unwrap();
    // A reader cannot delete a patient (and their notes with them).
    assert!(matches!(
        clerk.delete_patient(&martin).await,
        Err(Error::ReadOnly(s)) if s == "identity"
    ));
    assert_eq!(f.patient_count().await, 2);
    // A writer of identity cannot either while the patient has notes in a
    // scope they may not write.
    a.grant_rights("clerk", "identity", Rights::ReadWrite)
        .await
        .unwrap();
    assert!(matches!(
        clerk.delete_patient(&dupont).await,
        Err(Error::NoAccess(s)) if s == "clinical"
    ));
    assert_eq!(a.list_notes(&dupont, None).await.unwrap().notes.len(), 1);
    // Control: a patient without notes is theirs to delete.
    clerk.delete_patient(&martin).await.unwrap();
    assert_eq!(f.patient_count().await, 1);

    // An administrator holding clinical for reading grants no writing,
    // and moves no note out of it.
    enrol(&a, "admin2", "admin2 pw", true).await;
    a.grant_rights("admin2", "clinical", Rights::Read)
        .await
        .unwrap();
    let a2 = f.login("admin2", "admin2 pw").await.unwrap();
    assert!(matches!(
        a2.grant_rights("clerk", "clinical", Rights::ReadWrite)
            .await,
        Err(Error::ReadOnly(_))
    ));
    a2.create_scope("care-team").await.unwrap();
    assert!(matches!(
        a2.move_notes(&dupont, "clinical", "care-team").await,
        Err(Error::ReadOnly(s)) if s == "clinical"
    ));
    assert_eq!(
        a.list_notes(&dupont, Some("clinical"))
            .await
            .unwrap()
            .notes
            .len(),
        1
    );
}

/// A column of `patients` under a scope the user holds for reading
/// (billing): the whole row is the new version's author's to sign
/// (FORMAT.md §5.8), so updating the patient's identity is `ReadOnly`
/// too, and changes nothing. Given the write right on billing, the same
/// update goes through, signed by them.
async fn an_update_needs_the_write_right_on_every_scope_of_the_row(f: Fixture) {
    let a = f.admin().await;
    let with_billing = format!(
        "{EMR}\n[[column]]\ntable = \"patients\"\ncolumn = \"billing_ref\"\nscope = \"billing\"\n\
         kind = \"code\"\nmax_bytes = 32\npadding = {{ block = 32 }}\noptional = true\n"
    );
    a.apply_schema(&with_billing).await.unwrap();
    let p = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    let mut set = std::collections::BTreeMap::new();
    set.insert(
        "billing_ref".to_string(),
        medvault::vault::rows::Value::from("INV-17"),
    );
    let pt = a.table("patients").await.unwrap();
    assert!(pt.update(p, &set).await.unwrap());
    enrol(&a, "doc", "doc pw", false).await;
    a.grant("doc", "identity").await.unwrap();
    a.grant_rights("doc", "billing", Rights::Read)
        .await
        .unwrap();
    let doc = f.login("doc", "doc pw").await.unwrap();
    for err in [
        doc.update_patient(&p, &patient("Dupont", "Jean-Marc", "1970-03-02"))
            .await
            .unwrap_err(),
        doc.table("patients")
            .await
            .unwrap()
            .update(p, &set)
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::ReadOnly(s) if s == "billing"),
            "{err}"
        );
    }
    let row = pt.get(p).await.unwrap().unwrap();
    assert_eq!(row.text("billing_ref"), Some("INV-17"));
    assert_eq!(row.text("given_names"), Some("Jean"));
    // Control: with the write right the same update is theirs.
    a.grant_rights("doc", "billing", Rights::ReadWrite)
        .await
        .unwrap();
    doc.update_patient(&p, &patient("Dupont", "Jean-Marc", "1970-03-02"))
        .await
        .unwrap();
    let row = pt.get(p).await.unwrap().unwrap();
    assert_eq!(row.text("given_names"), Some("Jean-Marc"));
    assert!(
        matches!(&row.authorship, medvault::vault::rows::Authorship::Signed { author, version: 3, .. } if author == "doc"),
        "{:?}",
        row.authorship
    );
    assert!(a.verify_store().await.unwrap().problems.is_empty());
}

/// Disabling a user rotates every shared scope they held (as a revocation
/// does); one the disabling administrator does not hold is reported.
async fn disabling_a_user_rotates_their_scopes(f: Fixture) {
    let a = f.admin().await;
    let p = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    a.add_note(&p, "Penicillin allergy", Some("clinical"))
        .await
        .unwrap();
    enrol(&a, "admin2", "admin2 pw", true).await;
    let a2 = f.login("admin2", "admin2 pw").await.unwrap();
    a2.create_scope("team-two").await.unwrap();
    let bob = f.user(&a, "bob", &["identity", "clinical"]).await;
    a2.grant("bob", "team-two").await.unwrap();
    bob.add_note(&p, "Bob's own", Some("personal:bob"))
        .await
        .unwrap();
    drop(bob);
    let r = a.disable_user("bob").await.unwrap();
    assert_eq!(r.rotated, ["identity", "clinical"]);
    assert_eq!(r.not_rotated, ["team-two"]);
    // Every shared cell is under the new epoch; bob's personal note stays.
    assert_eq!(
        f.epochs_of("patients", "family_name").await,
        [(2, 1)].into()
    );
    let clinical: Vec<Vec<u8>> = f.blobs("SELECT body FROM notes WHERE scope_id = 2").await;
    assert_eq!(clinical.len(), 1);
    assert_eq!(u32::from_be_bytes(clinical[0][5..9].try_into().unwrap()), 2);
    assert_eq!(a.list_notes(&p, None).await.unwrap().notes.len(), 1);
    assert!(a.verify_store().await.unwrap().problems.is_empty());
}

/// A delete takes the row's children and their children with it (the
/// database cascades), so it needs the write right under every scope down
/// the tree: a patient whose visit has an invoice under billing, which the
/// user may only read, is `ReadOnly` (billing) and nothing is deleted,
/// neither through the patient nor through the visit. Given the write
/// right on billing, the same delete takes all three.
async fn a_delete_needs_the_write_right_down_to_grandchildren(f: Fixture) {
    let a = f.admin().await;
    let tree = format!(
        "{EMR}
[[table]]
name = \"visits\"
parent = \"patients\"

[[column]]
table = \"visits\"
column = \"reason\"
scope = \"clinical\"
kind = \"text\"
max_bytes = 200
padding = {{ block = 32 }}

[[table]]
name = \"invoices\"
parent = \"visits\"

[[column]]
table = \"invoices\"
column = \"amount\"
scope = \"billing\"
kind = \"code\"
max_bytes = 32
padding = {{ block = 32 }}
"
    );
    a.apply_schema(&tree).await.unwrap();
    let p = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    let visit = a
        .table("visits")
        .await
        .unwrap()
        .insert(&NewRow::child_of(p).set("reason", "Cough"))
        .await
        .unwrap();
    a.table("invoices")
        .await
        .unwrap()
        .insert(&NewRow::child_of(visit).set("amount", "EUR25"))
        .await
        .unwrap();
    enrol(&a, "clerk", "clerk pw", false).await;
    for scope in ["identity", "clinical"] {
        a.grant_rights("clerk", scope, Rights::ReadWrite)
            .await
            .unwrap();
    }
    a.grant_rights("clerk", "billing", Rights::Read)
        .await
        .unwrap();
    let clerk = f.login("clerk", "clerk pw").await.unwrap();
    let count = |table: &'static str| {
        let f = &f;
        async move {
            f.int(&format!("SELECT COUNT(*) FROM {table}"), vec![])
                .await
        }
    };
    assert!(matches!(
        clerk.delete_patient(&p).await,
        Err(Error::ReadOnly(s)) if s == "billing"
    ));
    assert!(matches!(
        clerk.table("visits").await.unwrap().delete(visit).await,
        Err(Error::ReadOnly(s)) if s == "billing"
    ));
    assert_eq!(
        (
            f.patient_count().await,
            count("visits").await,
            count("invoices").await
        ),
        (1, 1, 1)
    );
    // Control: with the write right on billing, all three go.
    a.grant_rights("clerk", "billing", Rights::ReadWrite)
        .await
        .unwrap();
    clerk.delete_patient(&p).await.unwrap();
    assert_eq!(
        (
            f.patient_count().await,
            count("visits").await,
            count("invoices").await
        ),
        (0, 0, 0)
    );
}
