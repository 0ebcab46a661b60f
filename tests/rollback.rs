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
    a_store_put_back_cannot_make_a_move_or_a_rotation_use_an_old_epoch,
);

/// Puts the key tables of `scope` back to before its epoch `new`: that
/// epoch and its grants gone, the older ones live again.
async fn put_back(f: &Fixture, scope: &str, new: u32) {
    let sid = f
        .int(
            "SELECT id FROM scopes WHERE name = ?",
            vec![Val::T(scope.into())],
        )
        .await;
    let (sid, new) = (Val::I(sid), Val::I(i64::from(new)));
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
}

async fn a_store_put_back_cannot_make_a_move_or_a_rotation_use_an_old_epoch(f: Fixture) {
    let state = tempfile::tempdir().unwrap();
    let opts = remembering(&f, &state);
    let a = Vault::open(&f.url, ADMIN, ADMIN_PW, &opts).await.unwrap();
    let pid = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    a.add_note(&pid, "History", Some("clinical")).await.unwrap();
    a.create_scope("team").await.unwrap();
    let report = a.rotate("team").await.unwrap();
    drop(a);
    // Seen at the next login; then the store hides the team's new epoch.
    Vault::open(&f.url, ADMIN, ADMIN_PW, &opts).await.unwrap();
    put_back(&f, "team", report.epoch).await;
    let a = Vault::open(&f.url, ADMIN, ADMIN_PW, &opts).await.unwrap();
    let err = a.move_notes(&pid, "clinical", "team").await.unwrap_err();
    assert!(
        matches!(&err, Error::RolledBack(m) if m.contains("team")),
        "{err}"
    );
    assert_eq!(
        a.list_notes(&pid, Some("clinical"))
            .await
            .unwrap()
            .notes
            .len(),
        1
    );
    let err = a.rotate("team").await.unwrap_err();
    assert!(matches!(&err, Error::RolledBack(_)), "{err}");
    // Control: without memory the move goes under the old epoch.
    let forgetful = f.admin().await;
    assert_eq!(
        forgetful
            .move_notes(&pid, "clinical", "team")
            .await
            .unwrap(),
        1
    );
}

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
    put_back(&f, "identity", report.epoch).await;
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
    // A client with no memory of this vault (a first login on a new
    // machine) is not protected.
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
    // Applying it is seeing it.
    a.apply_schema(EMR).await.unwrap();
    drop(a);
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
