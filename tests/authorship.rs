//! Rows authenticated by their author (FORMAT.md §5.8, §9.13): every row
//! written carries its version, author and time and a leaf of a batch its
//! author signed; a reader recomputes the leaf from what it read. A store
//! that edits any of it, drops or alters the batch, or moves one row's
//! authentication onto another makes a row every reader reports as
//! forged, never shows.

#[macro_use]
mod common;
use common::*;
use medvault::vault::rows::{Authorship, NewRow, Value};
use medvault::{Error, Id, OpenOptions, Rights, Vault};

per_store!(
    every_edit_of_a_row_or_its_authentication_is_forged,
    a_batch_the_store_drops_or_alters_vouches_for_nothing,
    versions_follow_updates_moves_and_rotations,
    a_row_without_authentication_is_forged_once_every_row_is_signed,
    the_record_that_every_row_is_signed_cannot_be_taken_back,
    a_damaged_row_can_be_deleted_by_a_writer_and_then_rotation_finishes,
    a_recovered_key_keeps_what_it_signed_and_nothing_more,
    a_row_of_nulls_still_needs_the_write_right,
    a_table_opened_under_an_older_schema_says_so_rather_than_forged,
    a_row_under_a_retired_epoch_is_forged,
    a_damaged_row_of_a_restricted_scope_needs_that_scope_s_write_right,
);

fn id(i: Id) -> Val {
    Val::B(i.as_bytes().to_vec())
}

async fn auth_of(f: &Fixture, table: &str, row: Id) -> Vec<u8> {
    f.blob(
        &format!("SELECT medvault_auth FROM {table} WHERE id = ?"),
        vec![id(row)],
    )
    .await
}

async fn set_auth(f: &Fixture, table: &str, row: Id, auth: Vec<u8>) {
    let n = f
        .exec(
            &format!("UPDATE {table} SET medvault_auth = ? WHERE id = ?"),
            vec![Val::B(auth), id(row)],
        )
        .await;
    assert_eq!(n, 1);
}

fn is_forged<T: std::fmt::Debug>(r: &medvault::Result<T>) -> bool {
    matches!(r, Err(Error::Forged { .. }))
}

/// Each field of `medvault_auth` edited (version, time, batch, leaf,
/// author), another row's authentication copied over, a plain value, a
/// blind index: forged, to `get`, `find` and `verify`. Each edit is
/// undone before the next, and the row reads genuine again (the control).
async fn every_edit_of_a_row_or_its_authentication_is_forged(f: Fixture) {
    let (a, p) = emr_with_patient(&f).await;
    let t = a.table("allergies").await.unwrap();
    let ids = t
        .insert_many(&[allergy(p, "Penicillin"), allergy(p, "Latex")])
        .await
        .unwrap();
    let (x, y) = (ids[0], ids[1]);
    let row = t.get(x).await.unwrap().unwrap();
    match &row.authorship {
        Authorship::Signed {
            author,
            version,
            resealed_by,
            ..
        } => {
            assert_eq!((author.as_str(), *version), (ADMIN, 1));
            assert_eq!(resealed_by, &None);
        }
        other => panic!("{other:?}"),
    }
    let genuine = auth_of(&f, "allergies", x).await;
    assert_eq!(genuine[0], 1);
    let by = |s: &str| vec![("substance", Value::from(s))];
    // Every byte range of the layout (§9.13), one at a time.
    for (what, at) in [
        ("version", 8),
        ("written_at", 16),
        ("batch", 20),
        ("leaf", 36),
        ("author", genuine.len() - 1),
    ] {
        let mut edited = genuine.clone();
        edited[at] ^= 1;
        set_auth(&f, "allergies", x, edited).await;
        assert!(is_forged(&t.get(x).await), "{what}");
        assert!(is_forged(&t.find(&by("Penicillin")).await), "{what}");
        set_auth(&f, "allergies", x, genuine.clone()).await;
        assert!(t.get(x).await.unwrap().unwrap().authorship.is_signed());
    }
    // Malformed, and another row's (a valid leaf of the same batch).
    for (what, bad) in [
        ("malformed", vec![2u8; 40]),
        ("another row's", auth_of(&f, "allergies", y).await),
    ] {
        set_auth(&f, "allergies", x, bad).await;
        assert!(is_forged(&t.get(x).await), "{what}");
        set_auth(&f, "allergies", x, genuine.clone()).await;
    }
    // A plain value and a blind index, which no envelope binds.
    f.exec(
        "UPDATE allergies SET recorded_on = '2019' WHERE id = ?",
        vec![id(x)],
    )
    .await;
    assert!(is_forged(&t.get(x).await), "plain value");
    f.exec(
        "UPDATE allergies SET recorded_on = '2020' WHERE id = ?",
        vec![id(x)],
    )
    .await;
    assert!(t.get(x).await.unwrap().unwrap().authorship.is_signed());
    let bi = f
        .blob(
            "SELECT bi_substance FROM allergies WHERE id = ?",
            vec![id(y)],
        )
        .await;
    f.exec(
        "UPDATE allergies SET bi_substance = ? WHERE id = ?",
        vec![Val::B(bi), id(x)],
    )
    .await;
    assert!(is_forged(&t.get(x).await), "blind index");
    let v = a.verify_store().await.unwrap();
    assert_eq!(v.forged, 1, "{:?}", v.problems);
    for p in &v.problems {
        assert!(!p.contains("Penicillin") && !p.contains("Rash"), "{p}");
    }
    // The other row, untouched, is genuine throughout.
    assert!(t.get(y).await.unwrap().unwrap().authorship.is_signed());
}

/// The batch is the store's to keep: deleted, its signer renamed, its
/// kind changed or a leaf altered, the rows it vouched for are forged.
async fn a_batch_the_store_drops_or_alters_vouches_for_nothing(f: Fixture) {
    let (a, p) = emr_with_patient(&f).await;
    let doc = f.user(&a, "doc", &["identity", "clinical"]).await;
    let x = doc
        .table("allergies")
        .await
        .unwrap()
        .insert(&allergy(p, "Penicillin"))
        .await
        .unwrap();
    let batch = auth_of(&f, "allergies", x).await[17..33].to_vec();
    let edits: [(&str, &str, Vec<Val>); 4] = [
        (
            "signer",
            "UPDATE medvault_batches SET signer = ? WHERE id = ?",
            vec![Val::T(ADMIN.into())],
        ),
        (
            "kind",
            "UPDATE medvault_batches SET kind = 'reseal' WHERE id = ?",
            vec![],
        ),
        (
            "leaves",
            "UPDATE medvault_batches SET leaves = ? WHERE id = ?",
            vec![Val::B(vec![7; 32])],
        ),
        (
            "signed_at",
            "UPDATE medvault_batches SET signed_at = signed_at + 1 WHERE id = ?",
            vec![],
        ),
    ];
    let saved = f
        .blob(
            "SELECT signature FROM medvault_batches WHERE id = ?",
            vec![Val::B(batch.clone())],
        )
        .await;
    assert!(!saved.is_empty());
    for (what, sql, mut params) in edits {
        // A fresh session each time: a verified batch is remembered.
        let b = f.login("doc", "doc pw").await.unwrap();
        let t = b.table("allergies").await.unwrap();
        assert!(t.get(x).await.unwrap().unwrap().authorship.is_signed());
        let backup = f
            .blob(
                "SELECT leaves FROM medvault_batches WHERE id = ?",
                vec![Val::B(batch.clone())],
            )
            .await;
        let (kind, signer, at) = (
            "write",
            "doc",
            f.int(
                "SELECT signed_at FROM medvault_batches WHERE id = ?",
                vec![Val::B(batch.clone())],
            )
            .await,
        );
        params.push(Val::B(batch.clone()));
        assert_eq!(f.exec(sql, params).await, 1, "{what}");
        let b = f.login("doc", "doc pw").await.unwrap();
        let t = b.table("allergies").await.unwrap();
        assert!(is_forged(&t.get(x).await), "{what}");
        f.exec(
            "UPDATE medvault_batches SET kind = ?, signer = ?, signed_at = ?, leaves = ? \
             WHERE id = ?",
            vec![
                Val::T(kind.into()),
                Val::T(signer.into()),
                Val::I(at),
                Val::B(backup),
                Val::B(batch.clone()),
            ],
        )
        .await;
    }
    f.exec(
        "DELETE FROM medvault_batches WHERE id = ?",
        vec![Val::B(batch)],
    )
    .await;
    let b = f.login("doc", "doc pw").await.unwrap();
    let t = b.table("allergies").await.unwrap();
    assert!(is_forged(&t.get(x).await), "dropped");
}

/// Insert: version 1 by its writer. Update: the next version, by the
/// updater. Rotation: the same version and author, resealed by the
/// administrator. A note moved: the next version by the mover. `verify`
/// counts every row genuine.
async fn versions_follow_updates_moves_and_rotations(f: Fixture) {
    let (a, p) = emr_with_patient(&f).await;
    let doc = f.user(&a, "doc", &["identity", "clinical"]).await;
    let t = a.table("allergies").await.unwrap();
    let x = t.insert(&allergy(p, "Penicillin")).await.unwrap();
    let mut set = std::collections::BTreeMap::new();
    set.insert("reaction".to_string(), Value::from("Hives"));
    assert!(doc
        .table("allergies")
        .await
        .unwrap()
        .update(x, &set)
        .await
        .unwrap());
    let signed = |r: medvault::vault::rows::Row| match r.authorship {
        Authorship::Signed {
            author,
            version,
            resealed_by,
            ..
        } => (author, version, resealed_by),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        signed(t.get(x).await.unwrap().unwrap()),
        ("doc".to_string(), 2, None)
    );
    a.rotate("clinical").await.unwrap();
    let row = t.get(x).await.unwrap().unwrap();
    assert_eq!(row.text("reaction"), Some("Hives"));
    assert_eq!(signed(row), ("doc".to_string(), 2, Some(ADMIN.to_string())));
    // A note moved into a care team's scope (by an administrator) is a
    // new version by the mover.
    let n = doc.add_note(&p, "a note", None).await.unwrap();
    a.create_scope("team").await.unwrap();
    a.grant("doc", "team").await.unwrap();
    assert_eq!(a.move_notes(&p, "clinical", "team").await.unwrap(), 1);
    let notes = doc.table("notes").await.unwrap();
    assert_eq!(
        signed(notes.get(n).await.unwrap().unwrap()),
        (ADMIN.to_string(), 2, None)
    );
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert_eq!((v.forged, v.rows_unsigned), (0, 0));
    assert_eq!(v.rows_signed, 3, "patient, allergy, note");
}

/// A vault made by this version records, signed by the root, that every
/// row is signed: a row whose authentication a store sets to NULL is
/// forged, not "written before". In a vault made before format 7 (the
/// record removed here) such a row reads as unsigned until an
/// administrator adopts it: then it is version 0 of the adopter, the
/// record is stored, and a row set to NULL afterwards is forged and stays
/// so (adopting again launders nothing).
async fn a_row_without_authentication_is_forged_once_every_row_is_signed(f: Fixture) {
    let a = f.admin().await;
    assert!(a.rows_signed());
    a.apply_schema(EMR).await.unwrap();
    let p = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    let t = a.table("allergies").await.unwrap();
    let ids = t
        .insert_many(&[allergy(p, "Penicillin"), allergy(p, "Latex")])
        .await
        .unwrap();
    let (x, y) = (ids[0], ids[1]);
    let null = |row: Id| {
        let f = &f;
        async move {
            f.exec(
                "UPDATE allergies SET medvault_auth = NULL WHERE id = ?",
                vec![id(row)],
            )
            .await
        }
    };
    let saved_x = auth_of(&f, "allergies", x).await;
    null(x).await;
    assert!(is_forged(&t.get(x).await));
    let v = a.verify_store().await.unwrap();
    assert_eq!((v.forged, v.rows_unsigned), (1, 0));
    drop(t);
    drop(a);

    // A vault made before format 7: no record.
    f.made_before_rows_were_signed().await;
    // Adoption needs a client that remembers the vault.
    assert!(matches!(
        f.admin().await.adopt_rows(&mut |_, _| {}).await,
        Err(Error::Refused(_))
    ));
    let state = tempfile::tempdir().unwrap();
    let a = medvault::Vault::open(
        &f.url,
        ADMIN,
        ADMIN_PW,
        &medvault::OpenOptions {
            state_dir: Some(state.path().to_owned()),
            ..f.opts()
        },
    )
    .await
    .unwrap();
    assert!(!a.rows_signed());
    let t = a.table("allergies").await.unwrap();
    assert_eq!(
        t.get(x).await.unwrap().unwrap().authorship,
        Authorship::Unsigned
    );
    let v = a.verify_store().await.unwrap();
    assert_eq!((v.rows_unsigned, v.forged), (1, 0));
    // Only an administrator adopts.
    let bob = f.user(&a, "bob", &["identity", "clinical"]).await;
    assert!(matches!(
        bob.adopt_rows(&mut |_, _| {}).await,
        Err(Error::NotAdmin(_))
    ));
    // Nor does a session opened from recovery shares, which keeps no
    // memory of the vault.
    let shares = vec![f.shares[0].clone(), f.shares[2].clone()];
    let root = medvault::Vault::open_with_shares(&f.url, &shares, &f.opts())
        .await
        .unwrap();
    assert!(matches!(
        root.adopt_rows(&mut |_, _| {}).await,
        Err(Error::Refused(_))
    ));
    drop(root);
    // bob's session, opened before the adoption, stays open.
    let early = bob.table("allergies").await.unwrap();
    let mut heard = Vec::new();
    let report = a
        .adopt_rows(&mut |table, n| heard.push((table.to_owned(), n)))
        .await
        .unwrap();
    assert_eq!(
        (
            report.adopted,
            report.tables.clone(),
            report.all_signed,
            report.already
        ),
        (1, vec![("allergies".to_owned(), 1)], true, false)
    );
    assert_eq!(heard, vec![("allergies".to_owned(), 1)]);
    assert!(a.rows_signed());
    match t.get(x).await.unwrap().unwrap().authorship {
        Authorship::Adopted {
            by, resealed_by, ..
        } => assert_eq!((by.as_str(), resealed_by), (ADMIN, None)),
        other => panic!("{other:?}"),
    }
    // Every other session sees it adopted, and the record.
    let b = f.login("bob", "bob pw").await.unwrap();
    assert!(b.rows_signed());
    let bt = b.table("allergies").await.unwrap();
    assert!(matches!(
        bt.get(x).await.unwrap().unwrap().authorship,
        Authorship::Adopted { .. }
    ));
    let v = a.verify_store().await.unwrap();
    assert_eq!(
        (v.rows_adopted, v.rows_unsigned, v.forged),
        (1, 0, 0),
        "{:?}",
        v.problems
    );
    // An adopted row is version 0 of the adopter at the batch's time:
    // claiming version 1 is forged.
    let adopted = auth_of(&f, "allergies", x).await;
    let mut v1 = adopted.clone();
    v1[8] = 1;
    set_auth(&f, "allergies", x, v1).await;
    assert!(is_forged(&bt.get(x).await));
    set_auth(&f, "allergies", x, adopted.clone()).await;
    assert!(bt.get(x).await.unwrap().is_some());
    // The authentication its author signed before the store cleared it
    // still checks (the row did not change); then adopted again.
    set_auth(&f, "allergies", x, saved_x).await;
    assert!(matches!(
        bt.get(x).await.unwrap().unwrap().authorship,
        Authorship::Signed { version: 1, .. }
    ));
    set_auth(&f, "allergies", x, adopted).await;

    // Now a row set to NULL is forged, to every session, and adopting
    // again does not make it genuine.
    null(y).await;
    assert!(is_forged(&bt.get(y).await));
    assert!(is_forged(&t.get(y).await));
    // A session opened before the adoption learns of it at its next
    // write, and does not sign the stripped row as its update.
    let mut edit = std::collections::BTreeMap::new();
    edit.insert("reaction".to_string(), Value::from("Cough"));
    assert!(!bob.rows_signed());
    assert!(is_forged(&early.update(y, &edit).await));
    assert!(bob.rows_signed());
    assert!(is_forged(&bt.get(y).await));
    let again = a.adopt_rows(&mut |_, _| {}).await.unwrap();
    assert_eq!((again.adopted, again.already), (0, true));
    assert!(is_forged(
        &f.admin()
            .await
            .table("allergies")
            .await
            .unwrap()
            .get(y)
            .await
    ));
    // A rotation keeps the adopted row adopted, resealed by the
    // administrator.
    f.exec("DELETE FROM allergies WHERE id = ?", vec![id(y)])
        .await;
    assert!(a.rotate("clinical").await.unwrap().finished);
    match bt.get(x).await.unwrap().unwrap().authorship {
        Authorship::Adopted {
            by, resealed_by, ..
        } => assert_eq!((by.as_str(), resealed_by.as_deref()), (ADMIN, Some(ADMIN))),
        other => panic!("{other:?}"),
    }
    // An update makes it version 1 of its updater.
    let mut set = std::collections::BTreeMap::new();
    set.insert("reaction".to_string(), Value::from("Hives"));
    assert!(bt.update(x, &set).await.unwrap());
    assert!(matches!(
        bt.get(x).await.unwrap().unwrap().authorship,
        Authorship::Signed { version: 1, ref author, .. } if author == "bob"
    ));
}

/// The record that every row is signed cannot be taken back: a client
/// that has seen it refuses a store without it, with one that does not
/// verify, or with another (a client with no memory of the vault reads
/// rows set to NULL as unsigned: the control, and the limit SECURITY.md
/// states).
async fn the_record_that_every_row_is_signed_cannot_be_taken_back(f: Fixture) {
    let state = tempfile::tempdir().unwrap();
    let opts = medvault::OpenOptions {
        state_dir: Some(state.path().to_owned()),
        ..f.opts()
    };
    let a = medvault::Vault::open(&f.url, ADMIN, ADMIN_PW, &opts)
        .await
        .unwrap();
    a.apply_schema(EMR).await.unwrap();
    let p = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    let x = a
        .table("allergies")
        .await
        .unwrap()
        .insert(&allergy(p, "Penicillin"))
        .await
        .unwrap();
    drop(a);
    let mark = f
        .blob(
            "SELECT `value` FROM vault_meta WHERE `key` = 'rows_signed'",
            vec![],
        )
        .await;
    f.exec("DELETE FROM vault_meta WHERE `key` = 'rows_signed'", vec![])
        .await;
    f.exec(
        "UPDATE allergies SET medvault_auth = NULL WHERE id = ?",
        vec![id(x)],
    )
    .await;
    // Control: a client that remembers nothing sees an unsigned row.
    let forgetful = f.admin().await;
    assert_eq!(
        forgetful
            .table("allergies")
            .await
            .unwrap()
            .get(x)
            .await
            .unwrap()
            .unwrap()
            .authorship,
        Authorship::Unsigned
    );
    let err = medvault::Vault::open(&f.url, ADMIN, ADMIN_PW, &opts)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::RolledBack(m) if m.contains("every row is signed")),
        "{err}"
    );
    // A record whose time was changed does not verify: it counts as none.
    let mut edited = mark.clone();
    edited[8] ^= 1;
    f.exec(
        "INSERT INTO vault_meta (`key`, `value`) VALUES ('rows_signed', ?)",
        vec![Val::B(edited.clone())],
    )
    .await;
    let memoryless = f.admin().await;
    assert!(!memoryless.rows_signed());
    let v = memoryless.verify_store().await.unwrap();
    assert!(!v.every_row_signed);
    assert!(
        v.problems.iter().any(|p| p.contains("does not verify")),
        "{:?}",
        v.problems
    );
    let err = medvault::Vault::open(&f.url, ADMIN, ADMIN_PW, &opts)
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::RolledBack(_)), "{err}");
    // Put back, the row is forged again to the client that remembers.
    f.exec(
        "UPDATE vault_meta SET `value` = ? WHERE `key` = 'rows_signed'",
        vec![Val::B(mark.clone())],
    )
    .await;
    let a = medvault::Vault::open(&f.url, ADMIN, ADMIN_PW, &opts)
        .await
        .unwrap();
    assert!(is_forged(&a.table("allergies").await.unwrap().get(x).await));
    drop(a);
    // The store replaces the record with one that does not verify again,
    // and an administrator's client with no memory of this vault (a new
    // machine) adopts the stripped row, replacing it with a record of its
    // own: the client that saw the first one refuses it.
    f.exec(
        "UPDATE vault_meta SET `value` = ? WHERE `key` = 'rows_signed'",
        vec![Val::B(edited)],
    )
    .await;
    let elsewhere = tempfile::tempdir().unwrap();
    let fresh = medvault::OpenOptions {
        state_dir: Some(elsewhere.path().to_owned()),
        ..f.opts()
    };
    let report = medvault::Vault::open(&f.url, ADMIN, ADMIN_PW, &fresh)
        .await
        .unwrap()
        .adopt_rows(&mut |_, _| {})
        .await
        .unwrap();
    assert_eq!((report.adopted, report.all_signed), (1, true));
    let err = medvault::Vault::open(&f.url, ADMIN, ADMIN_PW, &opts)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::RolledBack(m) if m.contains("replaced")),
        "{err}"
    );
}

/// A recovery gives the administrator a new key. What the old key signed
/// before stays genuine through the root's signed record of it (FORMAT.md
/// §5.9): the administrator's own rows, and doc's rows, whose evidence is
/// a grant the administrator signed. A forgery stays forged.
async fn a_recovered_key_keeps_what_it_signed_and_nothing_more(f: Fixture) {
    let (a, p) = emr_with_patient(&f).await;
    let doc = f.user(&a, "doc", &["identity", "clinical"]).await;
    let t = a.table("allergies").await.unwrap();
    let mine = t.insert(&allergy(p, "Penicillin")).await.unwrap();
    let forged = t.insert(&allergy(p, "Latex")).await.unwrap();
    let theirs = doc
        .table("allergies")
        .await
        .unwrap()
        .insert(&allergy(p, "Pollen"))
        .await
        .unwrap();
    let mut edited = auth_of(&f, "allergies", forged).await;
    let last = edited.len() - 1;
    edited[last] ^= 1; // another author
    set_auth(&f, "allergies", forged, edited).await;
    drop(t);
    drop((a, doc));
    let shares = vec![f.shares[1].clone(), f.shares[3].clone()];
    let root = medvault::Vault::open_with_shares(&f.url, &shares, &f.opts())
        .await
        .unwrap();
    root.recover_reset_password(ADMIN, "set by the root", &shares)
        .await
        .unwrap();
    drop(root);
    let a = f
        .first_login(ADMIN, "set by the root", "the admin's own again")
        .await;
    let doc = f.login("doc", "doc pw").await.unwrap();
    for s in [&a, &doc] {
        let t = s.table("allergies").await.unwrap();
        for (row, author) in [(mine, ADMIN), (theirs, "doc")] {
            match t.get(row).await.unwrap().unwrap().authorship {
                Authorship::Signed { author: by, .. } => assert_eq!(by, author),
                other => panic!("{other:?}"),
            }
        }
        assert!(is_forged(&t.get(forged).await));
    }
    let v = a.verify_store().await.unwrap();
    assert_eq!((v.forged, v.rows_unsigned), (1, 0), "{:?}", v.problems);
}

/// A row whose only encrypted column is left NULL seals nothing, yet its
/// author vouches for it under the table's scope: a user who may only
/// read that scope cannot write it (`ReadOnly`); with the write right the
/// row is theirs, signed.
async fn a_row_of_nulls_still_needs_the_write_right(f: Fixture) {
    let a = f.admin().await;
    let memos = format!(
        "{EMR}\n[[table]]\nname = \"memos\"\nparent = \"patients\"\n\n\
         [[column]]\ntable = \"memos\"\ncolumn = \"day\"\nplain = \"date\"\n\n\
         [[column]]\ntable = \"memos\"\ncolumn = \"text\"\nscope = \"clinical\"\n\
         kind = \"text\"\nmax_bytes = 100\npadding = {{ block = 32 }}\noptional = true\n"
    );
    a.apply_schema(&memos).await.unwrap();
    let p = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    enrol(&a, "doc", "doc pw", false).await;
    a.grant("doc", "identity").await.unwrap();
    a.grant_rights("doc", "clinical", medvault::Rights::Read)
        .await
        .unwrap();
    let doc = f.login("doc", "doc pw").await.unwrap();
    let memo = NewRow::child_of(p).set("day", "2026-11-24");
    let t = doc.table("memos").await.unwrap();
    let err = t.insert(&memo).await.unwrap_err();
    assert!(
        matches!(&err, Error::ReadOnly(s) if s == "clinical"),
        "{err}"
    );
    assert_eq!(f.int("SELECT count(*) FROM memos", vec![]).await, 0);
    // Control: given the write right, the same row is theirs.
    a.grant_rights("doc", "clinical", medvault::Rights::ReadWrite)
        .await
        .unwrap();
    let id = t.insert(&memo).await.unwrap();
    assert!(matches!(
        t.get(id).await.unwrap().unwrap().authorship,
        Authorship::Signed { ref author, .. } if author == "doc"
    ));
    // A column of another scope added since (billing, which doc may not
    // write) leaves the row genuine: one of the table's scopes is enough.
    let with_billing = format!(
        "{memos}\n[[column]]\ntable = \"memos\"\ncolumn = \"fee\"\nscope = \"billing\"\n\
         kind = \"code\"\nmax_bytes = 16\npadding = {{ block = 16 }}\noptional = true\n"
    );
    a.apply_schema(&with_billing).await.unwrap();
    let row = a
        .table("memos")
        .await
        .unwrap()
        .get(id)
        .await
        .unwrap()
        .unwrap();
    assert!(row.authorship.is_signed());
}

/// An administrator adds a column and writes a row with a value in it:
/// the value is in the row's leaf. A table opened before, under the older
/// schema, does not read the column, so the leaf it recomputes differs: it
/// answers `SchemaChanged` (not `Forged`), and opened again it reads the
/// row, genuine.
async fn a_table_opened_under_an_older_schema_says_so_rather_than_forged(f: Fixture) {
    let (a, p) = emr_with_patient(&f).await;
    let doc = f.user(&a, "doc", &["identity", "clinical"]).await;
    let old = doc.table("allergies").await.unwrap();
    let with_note = format!(
        "{EMR}\n[[column]]\ntable = \"allergies\"\ncolumn = \"noted_by\"\nplain = \"text\"\noptional = true\n"
    );
    a.apply_schema(&with_note).await.unwrap();
    let x = a
        .table("allergies")
        .await
        .unwrap()
        .insert(&allergy(p, "Penicillin").set("noted_by", "nurse"))
        .await
        .unwrap();
    let err = old.get(x).await.unwrap_err();
    assert!(matches!(err, Error::SchemaChanged { version: 2 }), "{err}");
    let row = doc
        .table("allergies")
        .await
        .unwrap()
        .get(x)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.text("noted_by"), Some("nurse"));
    assert!(row.authorship.is_signed());
    // The same when the row is also under a key epoch the session has not
    // seen (a rotation since): the retry with the new keys still says the
    // schema changed.
    let nurse = f.user(&a, "nurse", &["identity", "clinical"]).await;
    let stale = nurse.table("allergies").await.unwrap();
    let with_more = format!(
        "{with_note}\n[[column]]\ntable = \"allergies\"\ncolumn = \"checked_by\"\nplain = \"text\"\noptional = true\n"
    );
    a.apply_schema(&with_more).await.unwrap();
    assert!(a.rotate("clinical").await.unwrap().finished);
    let y = a
        .table("allergies")
        .await
        .unwrap()
        .insert(&allergy(p, "Latex").set("checked_by", "doc"))
        .await
        .unwrap();
    let err = stale.get(y).await.unwrap_err();
    assert!(matches!(err, Error::SchemaChanged { version: 3 }), "{err}");
}

/// A row the store forged or damaged stops a rotation of its scope (it is
/// never sealed again as genuine), and cannot be read; a user with the
/// write right deletes it (a reader cannot: `ReadOnly`, the row stays),
/// and the rotation then finishes.
async fn a_damaged_row_can_be_deleted_by_a_writer_and_then_rotation_finishes(f: Fixture) {
    let (a, p) = emr_with_patient(&f).await;
    let t = a.table("allergies").await.unwrap();
    let ids = t
        .insert_many(&[
            allergy(p, "Penicillin"),
            allergy(p, "Latex"),
            allergy(p, "Pollen"),
        ])
        .await
        .unwrap();
    let (forged, damaged, kept) = (ids[0], ids[1], ids[2]);
    let mut edited = auth_of(&f, "allergies", forged).await;
    let last = edited.len() - 1;
    edited[last] ^= 1; // another author
    set_auth(&f, "allergies", forged, edited).await;
    let mut cell = f
        .blob(
            "SELECT substance FROM allergies WHERE id = ?",
            vec![id(damaged)],
        )
        .await;
    let last = cell.len() - 1;
    cell[last] ^= 1;
    f.exec(
        "UPDATE allergies SET substance = ? WHERE id = ?",
        vec![Val::B(cell), id(damaged)],
    )
    .await;
    assert!(is_forged(&t.get(forged).await));
    assert!(matches!(t.get(damaged).await, Err(Error::Tampered { .. })));
    let rotation = a.rotate("clinical").await;
    assert!(
        matches!(
            &rotation,
            Err(Error::Forged { .. }) | Err(Error::Tampered { .. })
        ),
        "{rotation:?}"
    );
    let rows = || {
        let f = &f;
        async move { f.int("SELECT COUNT(*) FROM allergies", vec![]).await }
    };
    assert_eq!(rows().await, 3);
    // A reader of the scope deletes nothing.
    enrol(&a, "clerk", "clerk pw", false).await;
    a.grant_rights("clerk", "identity", Rights::Read)
        .await
        .unwrap();
    a.grant_rights("clerk", "clinical", Rights::Read)
        .await
        .unwrap();
    let clerk = f.login("clerk", "clerk pw").await.unwrap();
    let ct = clerk.table("allergies").await.unwrap();
    for row in [forged, damaged] {
        assert!(matches!(ct.delete(row).await, Err(Error::ReadOnly(_))));
    }
    assert_eq!(rows().await, 3);
    // A writer does.
    for row in [forged, damaged] {
        assert!(t.delete(row).await.unwrap());
        assert!(t.get(row).await.unwrap().is_none());
    }
    assert!(!t.delete(forged).await.unwrap());
    assert_eq!(rows().await, 1);
    assert!(a.rotate("clinical").await.unwrap().finished);
    assert!(t.get(kept).await.unwrap().unwrap().authorship.is_signed());
}

/// The columns of a patient that a rotation seals again.
const PATIENT_SEALED: [&str; 13] = [
    "family_name",
    "given_names",
    "born",
    "sex",
    "bi_family_name",
    "bi_given_names",
    "bi_born",
    "bi_family_born",
    "bi_born_year",
    "bi_family_phonetic",
    "bi_family_prefix",
    "bi_given_words",
    "medvault_auth",
];

/// A nurse writes a patient; the nurse is revoked, which rotates
/// `identity` and retires the epoch the row was sealed under. A row signed
/// by the nurse under that epoch (here the store puts the old version
/// back; a revoked writer holding the old key and its grant signs one the
/// same way) reads as forged: every writer checks in its transaction that
/// its epoch is the newest, and the rotation retired the epoch after it
/// found no cell left under it. An administrator deletes it, and the next
/// rotation finishes. A client with a state directory remembers the
/// retirement when the store deletes it; one without (the control) is
/// fooled.
async fn a_row_under_a_retired_epoch_is_forged(f: Fixture) {
    let state = tempfile::tempdir().unwrap();
    let remembering = OpenOptions {
        state_dir: Some(state.path().to_path_buf()),
        ..f.opts()
    };
    let a = f.admin().await;
    let nurse = f.user(&a, "nurse", &["identity"]).await;
    let p = nurse
        .insert_patient(&patient("Martin", "Lucie", "1984-11-30"))
        .await
        .unwrap();
    let mut old = Vec::new();
    for c in PATIENT_SEALED {
        let sql = format!("SELECT {c} FROM patients WHERE id = ?");
        old.push(f.blob(&sql, vec![id(p)]).await);
    }
    let r = a.revoke("nurse", "identity").await.unwrap();
    assert!(r.finished && r.retired == vec![1], "{r:?}");
    // Seen retired by a client that keeps a state file.
    Vault::open(&f.url, ADMIN, ADMIN_PW, &remembering)
        .await
        .unwrap();
    let t = a.table("patients").await.unwrap();
    match t.get(p).await.unwrap().unwrap().authorship {
        Authorship::Signed { author, .. } => assert_eq!(author, "nurse"),
        other => panic!("{other:?}"),
    }
    for (c, v) in PATIENT_SEALED.iter().zip(old) {
        let sql = format!("UPDATE patients SET {c} = ? WHERE id = ?");
        assert_eq!(f.exec(&sql, vec![Val::B(v), id(p)]).await, 1);
    }
    assert_eq!(
        f.epochs_of("patients", "family_name").await.get(&1),
        Some(&1)
    );
    let err = t.get(p).await.unwrap_err();
    assert!(
        matches!(&err, Error::Forged { table: "patients", reason } if reason.contains("retired")),
        "{err}"
    );
    assert!(matches!(a.get_patient(&p).await, Err(Error::Forged { .. })));
    let v = a.verify_store().await.unwrap();
    assert_eq!(v.forged, 1, "{:?}", v.problems);
    let again = a.rotate("identity").await;
    assert!(matches!(again, Err(Error::Forged { .. })), "{again:?}");
    // The store deletes the retirement: a client that saw it still refuses
    // the row; one that remembers nothing takes the nurse's old row.
    let n = f
        .exec(
            "UPDATE epochs SET retired_by = NULL, retired_at = NULL, retired_sig = NULL \
             WHERE epoch = 1 AND scope_id = (SELECT id FROM scopes WHERE name = 'identity')",
            vec![],
        )
        .await;
    assert_eq!(n, 1);
    let forgetful = f.admin().await;
    let fooled = forgetful.table("patients").await.unwrap().get(p).await;
    assert!(
        matches!(&fooled, Ok(Some(r)) if matches!(&r.authorship, Authorship::Signed { author, .. } if author == "nurse")),
        "{fooled:?}"
    );
    let seen = Vault::open(&f.url, ADMIN, ADMIN_PW, &remembering)
        .await
        .unwrap();
    let refused = seen.table("patients").await.unwrap().get(p).await;
    assert!(matches!(refused, Err(Error::Forged { .. })), "{refused:?}");
    assert!(t.delete(p).await.unwrap());
    let r = a.rotate("identity").await.unwrap();
    assert!(r.finished, "{r:?}");
}

/// A damaged row of a table whose rows each name their scope (an
/// appointment of a care team's restricted scope): deleting it needs the
/// write right under the scope the row names, not only under the table's
/// other scopes. A user without that scope gets `NoAccess`, with it for
/// reading `ReadOnly`, and with the write right deletes it.
async fn a_damaged_row_of_a_restricted_scope_needs_that_scope_s_write_right(f: Fixture) {
    let (a, p) = emr_with_patient(&f).await;
    a.create_scope("team").await.unwrap();
    let t = a.table("appointments").await.unwrap();
    let row = t
        .insert(
            &NewRow::child_of(p)
                .scope("team")
                .set("starts_at", 1_800_000_000i64)
                .set("minutes", 30i64)
                .set("reason", "Follow-up")
                .set("confirmed", true),
        )
        .await
        .unwrap();
    let mut edited = auth_of(&f, "appointments", row).await;
    let last = edited.len() - 1;
    edited[last] ^= 1;
    set_auth(&f, "appointments", row, edited).await;
    assert!(is_forged(&t.get(row).await));
    let nurse = f.user(&a, "nurse", &["identity", "clinical"]).await;
    let rows = || {
        let f = &f;
        async move { f.int("SELECT COUNT(*) FROM appointments", vec![]).await }
    };
    // Each time through a table opened afresh (the grants change).
    let delete = || {
        let nurse = &nurse;
        async move { nurse.table("appointments").await?.delete(row).await }
    };
    let err = delete().await.unwrap_err();
    assert!(matches!(err, Error::NoAccess(_)), "{err}");
    a.grant_rights("nurse", "team", Rights::Read).await.unwrap();
    let err = delete().await.unwrap_err();
    assert!(matches!(err, Error::ReadOnly(_)), "{err}");
    assert_eq!(rows().await, 1);
    a.grant("nurse", "team").await.unwrap();
    assert!(delete().await.unwrap());
    assert_eq!(rows().await, 0);
}
