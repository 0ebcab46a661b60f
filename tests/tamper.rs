//! A malicious database (or anyone who can write rows): ciphertexts moved
//! between rows, columns and tables; flipped, truncated or extended
//! ciphertexts. Each is a typed error, never garbage or a panic.

#[macro_use]
mod common;
use common::*;
use medvault::{Error, Id};

per_store!(
    ciphertext_moved_to_another_row_is_rejected,
    ciphertext_moved_to_another_column_is_rejected,
    ciphertext_moved_to_another_table_is_rejected,
    note_reattached_to_another_patient_is_rejected,
    flipped_truncated_and_extended_ciphertexts_are_rejected,
    a_tampered_row_fails_searches_and_lists_loudly,
    note_reattributed_to_another_author_is_rejected,
    debug_output_names_no_patient_value,
    swapped_blind_indexes_are_found_by_verify,
);

async fn two_patients(f: &Fixture) -> (medvault::Session, Id, Id) {
    let a = f.admin().await;
    let p1 = a
        .insert_patient(&patient("Dupont", "Hélène", "1970-03-02"))
        .await
        .unwrap();
    let p2 = a
        .insert_patient(&patient("Martin", "Paul", "1981-11-30"))
        .await
        .unwrap();
    (a, p1, p2)
}

async fn set_blob(f: &Fixture, sql: &str, blob: &[u8], id: &Id) {
    assert_eq!(f.exec(sql, vec![blob.into(), (*id).into()]).await, 1);
}

async fn get_blob(f: &Fixture, sql: &str, id: &Id) -> Vec<u8> {
    f.blob(sql, vec![(*id).into()]).await
}

async fn ciphertext_moved_to_another_row_is_rejected(f: Fixture) {
    let (a, p1, p2) = two_patients(&f).await;
    let c1 = get_blob(&f, "SELECT family_name FROM patients WHERE id = ?", &p1).await;
    set_blob(
        &f,
        "UPDATE patients SET family_name = ? WHERE id = ?",
        &c1,
        &p2,
    )
    .await;
    let err = a.get_patient(&p2).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Tampered {
                table: "patients",
                column: "family_name"
            }
        ),
        "{err}"
    );
    // The untouched row still reads.
    assert_eq!(a.get_patient(&p1).await.unwrap().family_name, "Dupont");
}

async fn ciphertext_moved_to_another_column_is_rejected(f: Fixture) {
    let (a, p1, _) = two_patients(&f).await;
    let given = get_blob(&f, "SELECT given_names FROM patients WHERE id = ?", &p1).await;
    set_blob(
        &f,
        "UPDATE patients SET family_name = ? WHERE id = ?",
        &given,
        &p1,
    )
    .await;
    let err = a.get_patient(&p1).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Tampered {
                column: "family_name",
                ..
            }
        ),
        "{err}"
    );
}

async fn ciphertext_moved_to_another_table_is_rejected(f: Fixture) {
    let (a, p1, _) = two_patients(&f).await;
    let note = a
        .add_note(&p1, "Allergic to penicillin", None)
        .await
        .unwrap();
    let body = get_blob(&f, "SELECT body FROM notes WHERE id = ?", &note).await;
    set_blob(
        &f,
        "UPDATE patients SET given_names = ? WHERE id = ?",
        &body,
        &p1,
    )
    .await;
    let err = a.get_patient(&p1).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Tampered {
                table: "patients",
                column: "given_names"
            }
        ),
        "{err}"
    );
}

async fn note_reattached_to_another_patient_is_rejected(f: Fixture) {
    let (a, p1, p2) = two_patients(&f).await;
    let note = a
        .add_note(&p1, "Allergic to penicillin", None)
        .await
        .unwrap();
    let n = f
        .exec(
            "UPDATE notes SET patient_id = ? WHERE id = ?",
            vec![p2.into(), note.into()],
        )
        .await;
    assert_eq!(n, 1);
    let err = a.list_notes(&p2, None).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Tampered {
                table: "notes",
                column: "body"
            }
        ),
        "{err}"
    );
}

async fn flipped_truncated_and_extended_ciphertexts_are_rejected(f: Fixture) {
    let (a, p1, _) = two_patients(&f).await;
    let good = get_blob(&f, "SELECT born FROM patients WHERE id = ?", &p1).await;
    let sql = "UPDATE patients SET born = ? WHERE id = ?";

    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    for i in [9, 20, 30, good.len() - 1] {
        let mut b = good.clone();
        b[i] ^= 0x01;
        cases.push(("flipped", b));
    }
    cases.push(("truncated by one", good[..good.len() - 1].to_vec()));
    cases.push(("extended by one", [good.clone(), vec![0]].concat()));
    for (what, bad) in cases {
        set_blob(&f, sql, &bad, &p1).await;
        let err = a.get_patient(&p1).await.unwrap_err();
        assert!(
            matches!(err, Error::Tampered { column: "born", .. }),
            "{what}: {err}"
        );
    }

    // Structurally broken: unknown version, shorter than the overhead.
    let mut v = good.clone();
    v[0] = 9;
    set_blob(&f, sql, &v, &p1).await;
    assert!(matches!(
        a.get_patient(&p1).await.unwrap_err(),
        Error::MalformedEnvelope { column: "born", .. }
    ));
    set_blob(&f, sql, &good[..20], &p1).await;
    assert!(matches!(
        a.get_patient(&p1).await.unwrap_err(),
        Error::MalformedEnvelope { column: "born", .. }
    ));
    // An epoch the vault never had is forgery, not "no access".
    let mut e = good.clone();
    e[8] ^= 0x40;
    set_blob(&f, sql, &e, &p1).await;
    assert!(matches!(
        a.get_patient(&p1).await.unwrap_err(),
        Error::Tampered { .. }
    ));

    // Restored, it reads again: nothing else was changed by the failures.
    set_blob(&f, sql, &good, &p1).await;
    assert_eq!(a.get_patient(&p1).await.unwrap().born, "1970-03-02");
}

async fn a_tampered_row_fails_searches_and_lists_loudly(f: Fixture) {
    let (a, p1, p2) = two_patients(&f).await;
    let c1 = get_blob(&f, "SELECT family_name FROM patients WHERE id = ?", &p1).await;
    set_blob(
        &f,
        "UPDATE patients SET family_name = ? WHERE id = ?",
        &c1,
        &p2,
    )
    .await;
    assert!(matches!(
        a.list_patients(None, 10).await,
        Err(Error::Tampered { .. })
    ));
}

async fn note_reattributed_to_another_author_is_rejected(f: Fixture) {
    let (a, p1, _) = two_patients(&f).await;
    a.add_note(&p1, "Do not resuscitate", None).await.unwrap();
    assert_eq!(
        f.exec("UPDATE notes SET author = 'someone'", vec![]).await,
        1
    );
    let err = a.list_notes(&p1, None).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Tampered {
                table: "notes",
                column: "body"
            }
        ),
        "{err}"
    );
}

async fn debug_output_names_no_patient_value(f: Fixture) {
    let (a, p1, _) = two_patients(&f).await;
    a.add_note(&p1, "Secretnote", None).await.unwrap();
    let p = a.get_patient(&p1).await.unwrap();
    let n = a.list_notes(&p1, None).await.unwrap();
    let q = medvault::PatientQuery {
        family_name: Some("Dupont".into()),
        ..Default::default()
    };
    let shown = format!(
        "{p:?} {n:?} {q:?} {:?}",
        patient("Dupont", "Hélène", "1970-03-02")
    );
    for secret in ["Dupont", "Hélène", "1970-03-02", "Secretnote"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains(&p1.to_string()), "ids are shown");
}

/// Blind indexes swapped between two rows: both rows are forged (their
/// author signed their indexes), and a search that meets one reports it.
/// `verify` names each forged row and recomputes every index it can read
/// and names each mismatch, without a value or an index in the message.
async fn swapped_blind_indexes_are_found_by_verify(f: Fixture) {
    let (a, p1, p2) = two_patients(&f).await;
    let clean = a.verify_store().await.unwrap();
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);
    assert_eq!(clean.indexes_checked, 16, "eight indexes of two patients");
    for col in ["bi_family_name", "bi_family_born"] {
        let sql = format!("SELECT {col} FROM patients WHERE id = ?");
        let (b1, b2) = (get_blob(&f, &sql, &p1).await, get_blob(&f, &sql, &p2).await);
        let upd = format!("UPDATE patients SET {col} = ? WHERE id = ?");
        set_blob(&f, &upd, &b2, &p1).await;
        set_blob(&f, &upd, &b1, &p2).await;
    }
    let q = medvault::PatientQuery {
        family_name: Some("Dupont".into()),
        ..Default::default()
    };
    // The indexes are part of what the author signed: the rows are forged,
    // and a search that meets one says so rather than answer without it.
    assert!(matches!(
        a.find_patients(&q).await,
        Err(Error::Forged {
            table: "patients",
            ..
        })
    ));
    let r = a.verify_store().await.unwrap();
    assert_eq!(r.forged, 2);
    let mut want = Vec::new();
    for id in [p1, p2] {
        want.push(format!(
            "patients {id}: a row of patients is forged: the row is not the one its batch \
             vouches for; it is not shown"
        ));
        for col in ["bi_family_name", "bi_family_born"] {
            want.push(format!(
                "patients {id}: {col} does not match the row's values"
            ));
        }
    }
    let mut got = r.problems.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let text = got.join("\n");
    assert!(!text.contains("Dupont") && !text.contains("1970"), "{text}");
}
