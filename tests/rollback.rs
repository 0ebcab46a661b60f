//! Rollback across sessions (README, "Access over time"; SECURITY.md): a
//! client that remembers what it has seen ([`OpenOptions::state_dir`])
//! refuses to write under a key epoch older than one it saw, and to open
//! a schema older than one it saw, when the store is put back.

#[macro_use]
mod common;
use common::*;
use medvault::{Error, OpenOptions, Vault};

per_store!(
    a_store_put_back_cannot_make_a_client_write_under_an_old_epoch,
    a_store_put_back_cannot_hide_a_newer_schema,
);

const EMR: &str = include_str!("../examples/emr/schema.toml");

fn remembering(f: &Fixture, dir: &tempfile::TempDir) -> OpenOptions {
    OpenOptions {
        state_dir: Some(dir.path().to_owned()),
        ..f.opts()
    }
}

async fn a_store_put_back_cannot_make_a_client_write_under_an_old_epoch(f: Fixture) {
    let state = tempfile::tempdir().unwrap();
    let opts = remembering(&f, &state);
    let a = f.admin().await;
    a.insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    f.user(&a, "bob", &["identity"]).await;
    let report = a.rotate("identity").await.unwrap();
    assert!(report.finished);
    // bob's client logs in after the rotation: it has seen the new epoch.
    Vault::open(&f.url, "bob", "bob pw", &opts).await.unwrap();
    // The store is put back to before the rotation (as far as the key
    // tables go): the new epoch and its grants gone, the old one live.
    let sid = f
        .int("SELECT id FROM scopes WHERE name = 'identity'", vec![])
        .await;
    let (sid, new) = (Val::I(sid), Val::I(i64::from(report.epoch)));
    f.exec(
        "DELETE FROM grants WHERE scope_id = ? AND epoch = ?",
        vec![sid.clone(), new.clone()],
    )
    .await;
    f.exec(
        "DELETE FROM epochs WHERE scope_id = ? AND epoch = ?",
        vec![sid.clone(), new],
    )
    .await;
    f.exec(
        "UPDATE epochs SET retired_by = NULL, retired_at = NULL, retired_sig = NULL, \
         state = 'current' WHERE scope_id = ?",
        vec![sid],
    )
    .await;
    let before = f.patient_count().await;
    // Control: a client that remembers nothing writes under the old epoch,
    // which is what the rollback is for (a revoked user may hold it).
    let forgetful = f.login("bob", "bob pw").await.unwrap();
    forgetful
        .insert_patient(&patient("Martin", "Anne", "1980-01-01"))
        .await
        .unwrap();
    assert_eq!(f.patient_count().await, before + 1);
    // bob's own client refuses, and says why.
    let bob = Vault::open(&f.url, "bob", "bob pw", &opts).await.unwrap();
    let err = bob
        .insert_patient(&patient("Martin", "Paul", "1981-01-01"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::RolledBack(m) if m.contains("identity")),
        "{err}"
    );
    assert_eq!(f.patient_count().await, before + 1);
    // Another user's memory is their own.
    let other = tempfile::tempdir().unwrap();
    let fresh = remembering(&f, &other);
    Vault::open(&f.url, "bob", "bob pw", &fresh)
        .await
        .unwrap()
        .insert_patient(&patient("Durand", "Léa", "1990-01-01"))
        .await
        .unwrap();
}

async fn a_store_put_back_cannot_hide_a_newer_schema(f: Fixture) {
    let state = tempfile::tempdir().unwrap();
    let opts = remembering(&f, &state);
    let a = Vault::open(&f.url, ADMIN, ADMIN_PW, &opts).await.unwrap();
    a.apply_schema(EMR).await.unwrap();
    drop(a);
    // Seen at the next login.
    Vault::open(&f.url, ADMIN, ADMIN_PW, &opts).await.unwrap();
    f.exec("DELETE FROM policies", vec![]).await;
    // Control: a client without memory opens the built-in schema.
    f.admin().await;
    let err = Vault::open(&f.url, ADMIN, ADMIN_PW, &opts)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::RolledBack(m) if m.contains("schema version 0")),
        "{err}"
    );
}
