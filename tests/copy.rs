//! `copy` between stores (ciphertexts move as they are; resumable) and
//! `verify`.

mod common;
use std::ops::ControlFlow;

use common::*;
use medvault::{Error, OpenOptions, PatientQuery, Vault};

async fn clinic(f: &Fixture, n: usize) -> medvault::Id {
    let a = f.admin().await;
    let batch: Vec<_> = (0..n)
        .map(|i| patient(&format!("Fam{i}"), "Given", "1980-05-06"))
        .collect();
    a.insert_patients(&batch).await.unwrap();
    let id = a
        .insert_patient(&patient("Dupont", "Hélène", "1970-03-02"))
        .await
        .unwrap();
    a.add_note(&id, "Penicillin allergy", None).await.unwrap();
    let bob = f.user(&a, "bob", &["identity"]).await;
    drop(bob);
    id
}

fn keep_going() -> impl FnMut(&str, u64, u64) -> ControlFlow<()> + Send {
    |_, _, _| ControlFlow::Continue(())
}

fn find_dupont() -> PatientQuery {
    PatientQuery {
        family_name: Some("DUPONT".into()),
        born: Some("1970-03-02".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn sqlcipher_to_mysql_and_back_without_decrypting() {
    let f = Fixture::sqlite().await;
    let id = clinic(&f, 30).await;
    let a = f.admin().await;
    let (my_url, _guard) = empty_mysql().await;
    let report = a.copy_to(&my_url, &mut keep_going()).await.unwrap();
    assert!(report
        .tables
        .iter()
        .any(|(t, n)| t == "patients" && *n == 31));

    let opts = OpenOptions {
        kdf: kdf(),
        pinned_root: Some(f.root_fingerprint.clone()),
        new_password: None,
        state_dir: None,
    };
    let on_mysql = Vault::open(&my_url, "bob", "bob pw", &opts).await.unwrap();
    let found = on_mysql.find_patients(&find_dupont()).await.unwrap();
    assert_eq!(found[0].id, id);
    let v = on_mysql.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert_eq!(v.fields_decrypted, 31 * 4);
    assert_eq!(v.withheld, 1, "bob holds no clinical key");

    // The ciphertext moved as it was.
    let sql = "SELECT family_name FROM patients WHERE id = ?";
    let here = f.blob(sql, vec![id.into()]).await;
    let mut c = mysql_async::Conn::from_url(my_url.as_str()).await.unwrap();
    let there: Option<Vec<u8>> =
        mysql_async::prelude::Queryable::exec_first(&mut c, sql, (id.as_bytes().to_vec(),))
            .await
            .unwrap();
    assert_eq!(there.unwrap(), here);
    c.disconnect().await.unwrap();

    // And back, as a backup file: users log in with the same passwords.
    let backup = f.dir.path().join("backup.db");
    let backup_url = format!("sqlcipher:{}", backup.display());
    let admin_on_mysql = Vault::open(&my_url, ADMIN, ADMIN_PW, &opts).await.unwrap();
    admin_on_mysql
        .copy_to(&backup_url, &mut keep_going())
        .await
        .unwrap();
    let restored = Vault::open(&backup_url, ADMIN, ADMIN_PW, &open_opts())
        .await
        .unwrap();
    assert_eq!(
        restored.find_patients(&find_dupont()).await.unwrap()[0].id,
        id
    );
    let notes = restored.list_notes(&id, None).await.unwrap();
    assert_eq!(notes.notes[0].body, "Penicillin allergy");
    let v = restored.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    Vault::open(&backup_url, "bob", "bob pw", &open_opts())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_interrupted_copy_resumes_and_loses_nothing() {
    let f = Fixture::sqlite().await;
    clinic(&f, 2500).await;
    let a = f.admin().await;
    // A declared table with a tokens index: MySQL lists the columns it
    // generates for it, which the resumed copy must not take for a
    // different table.
    a.apply_schema(
        "format = 2\n[[table]]\nname = \"remarks\"\n\
         [[column]]\ntable = \"remarks\"\ncolumn = \"text\"\nscope = \"clinical\"\n\
         kind = \"text\"\nmax_bytes = 200\npadding = { block = 16 }\n\
         [[index]]\ntable = \"remarks\"\ncolumn = \"bi_words\"\nover = [\"text\"]\n\
         kind = \"tokens\"\nslots = 2\nbits = 2\n",
    )
    .await
    .unwrap();
    let remarks = a.table("remarks").await.unwrap();
    remarks
        .insert(&medvault::vault::rows::NewRow::new().set("text", "allergie latex"))
        .await
        .unwrap();
    let (my_url, _guard) = empty_mysql().await;
    let mut pages = 0;
    let mut stop_after_one_page = |t: &str, _: u64, _: u64| {
        if t == "patients" {
            pages += 1;
            if pages == 1 {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    };
    let err = a
        .copy_to(&my_url, &mut stop_after_one_page)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Interrupted), "{err}");
    let mut c = mysql_async::Conn::from_url(my_url.as_str()).await.unwrap();
    let partial: Option<i64> =
        mysql_async::prelude::Queryable::query_first(&mut c, "SELECT count(*) FROM patients")
            .await
            .unwrap();
    assert_eq!(partial, Some(1000), "one page was committed");
    let report = a.copy_to(&my_url, &mut keep_going()).await.unwrap();
    assert!(report
        .tables
        .iter()
        .any(|(t, n)| t == "patients" && *n == 2501));
    assert!(report.tables.iter().any(|(t, n)| t == "remarks" && *n == 1));
    c.disconnect().await.unwrap();

    // The same into a file, interrupted and resumed.
    let file_url = format!("sqlcipher:{}", f.dir.path().join("copy.db").display());
    let mut pages = 0;
    let mut stop = |t: &str, _: u64, _: u64| {
        if t == "patients" {
            pages += 1;
            if pages == 2 {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    };
    assert!(matches!(
        a.copy_to(&file_url, &mut stop).await,
        Err(Error::Interrupted)
    ));
    a.copy_to(&file_url, &mut keep_going()).await.unwrap();
    let copy = Vault::open(&file_url, ADMIN, ADMIN_PW, &open_opts())
        .await
        .unwrap();
    assert!(copy.verify_store().await.unwrap().problems.is_empty());
}

/// A copy cut short, then a rotation of the source, then the copy
/// resumed: the rows copied first are sealed under the epoch the rotation
/// retired, and the resumed copy keeps them, so it says the copy is
/// incomplete (copy again into an empty destination) rather than leave
/// rows that read as forged, or open to the old key, in the copy.
#[tokio::test]
async fn a_copy_resumed_after_a_rotation_says_copy_again() {
    let f = Fixture::sqlite().await;
    clinic(&f, 1200).await;
    let a = f.admin().await;
    let file_url = format!("sqlcipher:{}", f.dir.path().join("copy.db").display());
    let mut pages = 0;
    let mut stop = |t: &str, _: u64, _: u64| {
        if t == "patients" {
            pages += 1;
            if pages == 1 {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    };
    assert!(matches!(
        a.copy_to(&file_url, &mut stop).await,
        Err(Error::Interrupted)
    ));
    let r = a.rotate("identity").await.unwrap();
    assert!(r.finished && r.retired == vec![1], "{r:?}");
    let err = a.copy_to(&file_url, &mut keep_going()).await.unwrap_err();
    assert!(
        matches!(&err, Error::CopyIncomplete(m) if m.contains("epochs")),
        "{err}"
    );
    let fresh = format!("sqlcipher:{}", f.dir.path().join("fresh.db").display());
    a.copy_to(&fresh, &mut keep_going()).await.unwrap();
    let copy = Vault::open(&fresh, ADMIN, ADMIN_PW, &open_opts())
        .await
        .unwrap();
    assert!(copy.verify_store().await.unwrap().problems.is_empty());
}

#[tokio::test]
async fn copy_refuses_a_destination_holding_another_vault() {
    let f = Fixture::sqlite().await;
    let other = Fixture::mysql().await;
    let a = f.admin().await;
    let err = a.copy_to(&other.url, &mut keep_going()).await.unwrap_err();
    assert!(matches!(err, Error::VaultExists(_)), "{err}");
    let other_file = Fixture::sqlite().await;
    let err = a
        .copy_to(&other_file.url, &mut keep_going())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnknownUser(_) | Error::WrongPassword(_) | Error::VaultExists(_)
        ),
        "{err}"
    );
}

#[tokio::test]
async fn verify_reports_tampering_without_patient_values() {
    let f = Fixture::sqlite().await;
    let id = clinic(&f, 3).await;
    let born = f
        .blob("SELECT born FROM patients WHERE id = ?", vec![id.into()])
        .await;
    let mut bad = born.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    f.exec(
        "UPDATE patients SET born = ? WHERE id = ?",
        vec![bad.into(), id.into()],
    )
    .await;
    f.exec(
        "UPDATE grants SET signed_at = signed_at + 1 WHERE grantee = 'bob'",
        vec![],
    )
    .await;
    let a = f.admin().await;
    let v = a.verify_store().await.unwrap();
    assert!(
        v.problems
            .iter()
            .any(|p| p.contains(&id.to_string()) && p.contains("born")),
        "{:?}",
        v.problems
    );
    assert!(
        v.problems
            .iter()
            .any(|p| p.contains("grant") && p.contains("bob")),
        "{:?}",
        v.problems
    );
    let all = v.problems.join("\n");
    for secret in ["Dupont", "Hélène", "1970-03-02"] {
        assert!(!all.contains(secret), "{secret} in {all}");
    }
}

/// A backup file's database key goes only to users whose rows verify to
/// the pinned root and are active: a disabled user set back to `active` by
/// SQL, or a planted row (someone's certificate under a new name), gets
/// no keyring entry, and the copy names them. Both source stores.
#[tokio::test]
async fn copy_enrols_only_users_whose_rows_verify() {
    for f in [Fixture::sqlite().await, Fixture::mysql().await] {
        let a = f.admin().await;
        enrol(&a, "bob", "bob pw", false).await;
        enrol(&a, "carol", "carol pw", false).await;
        a.disable_user("bob").await.unwrap();
        // The operator re-activates bob, and plants "mallory" with carol's
        // certificate and locked key (carol's password would open it).
        f.exec(
            "UPDATE users SET status = 'active' WHERE name = 'bob'",
            vec![],
        )
        .await;
        f.exec(
            "INSERT INTO users (name, role, status, cert, locked_key, certifier, signed_at, \
             signature) SELECT 'mallory', role, status, cert, locked_key, certifier, signed_at, \
             signature FROM users WHERE name = 'carol'",
            vec![],
        )
        .await;
        let backup = f.dir.path().join("backup.db");
        let report = a
            .copy_to(
                &format!("sqlcipher:{}", backup.display()),
                &mut keep_going(),
            )
            .await
            .unwrap();
        assert_eq!(report.not_enrolled, vec!["bob", "mallory"]);
        let kr = medvault::store::keyring::Keyring::read(&medvault::store::StoreUrl::keyring_path(
            &backup,
        ))
        .unwrap();
        let mut enrolled: Vec<&str> = kr.entries.iter().map(|e| e.name.as_str()).collect();
        enrolled.sort_unstable();
        assert_eq!(enrolled, vec!["@root", ADMIN, "carol"]);
        let backup_url = format!("sqlcipher:{}", backup.display());
        for (user, pw) in [("bob", "bob pw"), ("mallory", "carol pw")] {
            let err = Vault::open(&backup_url, user, pw, &open_opts())
                .await
                .unwrap_err();
            assert!(matches!(err, Error::UnknownUser(_)), "{user}: {err}");
        }
        Vault::open(&backup_url, "carol", "carol pw", &open_opts())
            .await
            .unwrap();
    }
}
