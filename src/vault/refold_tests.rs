//! Names indexed before format 10 (fold 1, `schema/FORMAT.md` §4.1): found
//! by the form they were indexed under until `fill_indexes` indexes them
//! again, then by what people type ("obrien" for O'Brien). Run on
//! SQLCipher and, with the `mysql` feature, on the server of
//! `MEDVAULT_TEST_MYSQL_URL`.

use crate::index::canonical;
use crate::records::{NewPatient, PatientQuery, Sex};
use crate::store::Value;
use crate::vault::stale_writes::{Place, ADMIN_PW};

fn family(name: &str) -> PatientQuery {
    PatientQuery {
        family_name: Some(name.into()),
        ..Default::default()
    }
}

async fn a_name_indexed_in_the_older_form_is_found_then_indexed_again(place: Place) {
    let a = place.open("admin", ADMIN_PW).await;
    let id = a
        .insert_patient(&NewPatient {
            family_name: "O'Brien".into(),
            given_names: "Siobhán".into(),
            born: "1970-03-02".into(),
            sex: Sex::F,
        })
        .await
        .expect("a patient");
    // The row as medvault wrote it before format 10: its family-name
    // index over the fold-1 form, and (as before format 7) unsigned.
    let old = canonical::name_fold1("O'Brien");
    assert_eq!(old, "o brien");
    let value = a
        .patients()
        .await
        .expect("the table")
        .index_value("bi_family_name", &[old.as_str()])
        .expect("a value");
    let n = a
        .store
        .write_all(vec![
            (
                "UPDATE patients SET bi_family_name = ?, medvault_auth = NULL WHERE id = ?".into(),
                vec![Value::Blob(value), Value::Blob(id.as_bytes().to_vec())],
            ),
            (
                "DELETE FROM vault_meta WHERE `key` IN ('rows_signed', 'names_fold')".into(),
                vec![],
            ),
        ])
        .await
        .expect("the older row");
    assert_eq!(n, vec![1, 2]);
    let a = place.open("admin", ADMIN_PW).await;
    assert!(!a.names_refolded());
    let ids = |v: Vec<crate::records::Patient>| v.into_iter().map(|p| p.id).collect::<Vec<_>>();
    // Found as typed then, and by the same name typed otherwise.
    for typed in ["O'Brien", "o brien", "O’BRIEN"] {
        let found = a.find_patients(&family(typed)).await.expect("a search");
        assert_eq!(ids(found), vec![id], "{typed}");
    }
    // Not by the new form until indexed again.
    let found = a.find_patients(&family("obrien")).await.expect("a search");
    assert!(found.is_empty());
    let v = a.verify_store().await.expect("verify");
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert_eq!(v.indexes_fold1, 1, "{v:?}");
    assert_eq!(a.fill_indexes().await.expect("a fill"), 1);
    assert!(a.names_refolded());
    assert_eq!(a.fill_indexes().await.expect("a fill"), 0, "nothing left");
    // A new session knows it too: its searches ask for fold 2 alone.
    let a = place.open("admin", ADMIN_PW).await;
    assert!(a.names_refolded());
    for typed in ["obrien", "O'Brien", "o brien"] {
        let found = a.find_patients(&family(typed)).await.expect("a search");
        assert_eq!(ids(found), vec![id], "{typed}");
    }
    let v = a.verify_store().await.expect("verify");
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert_eq!(v.indexes_fold1, 0, "{v:?}");
}

mod sqlcipher {
    #[tokio::test]
    async fn a_name_indexed_in_the_older_form_is_found_then_indexed_again() {
        super::a_name_indexed_in_the_older_form_is_found_then_indexed_again(
            super::Place::sqlite().await,
        )
        .await
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    #[tokio::test]
    async fn a_name_indexed_in_the_older_form_is_found_then_indexed_again() {
        super::a_name_indexed_in_the_older_form_is_found_then_indexed_again(
            super::Place::mysql().await,
        )
        .await
    }
}
