//! The schema in force: `apply_schema` creates an application's tables on
//! both stores and stores the file signed; every login verifies it to the
//! pinned root and checks the tables agree; refused changes change nothing.

#[macro_use]
mod common;
use common::*;
use medvault::Error;

per_store!(
    applying_creates_the_tables_and_signs_the_schema,
    a_stored_schema_altered_by_sql_refuses_every_login,
    a_refused_change_changes_nothing,
    a_new_index_over_existing_values_is_computed_for_every_row,
    an_index_that_cannot_be_computed_says_the_schema_is_in_force,
    a_table_opened_under_an_older_schema_refuses_to_write,
    only_administrators_apply,
    a_table_dropped_behind_medvaults_back_is_reported,
    copy_moves_application_tables_and_verify_reads_them,
    dropping_an_index_drops_its_column,
    disabling_the_admin_who_signed_the_schema_locks_no_one_out,
    a_second_administrator_applying_from_an_older_version_changes_nothing,
    a_table_of_the_same_name_is_not_adopted,
    a_lower_max_bytes_keeps_older_values_readable,
    copy_takes_the_schema_applied_after_login,
    a_table_named_like_an_sql_keyword_works_everywhere,
    application_migrations_run_once_with_their_own_history,
);

const EMR: &str = include_str!("../examples/emr/schema.toml");

/// How many tables of the store are named `name` (0 or 1).
async fn tables_named(f: &Fixture, name: &str) -> i64 {
    let sql = if f.is_mysql() {
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
    } else {
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
    };
    f.int(sql, vec![Val::T(name.into())]).await
}

async fn applying_creates_the_tables_and_signs_the_schema(f: Fixture) {
    let a = f.admin().await;
    a.insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    assert_eq!(a.policy_info().version, 0);
    let planned = a.plan_schema(EMR).unwrap();
    let r = a.apply_schema(EMR).await.unwrap();
    assert_eq!(r.version, 1);
    assert_eq!(r.changes, planned);
    assert!(r.changes.contains(&"add table appointments".to_string()));
    // The tables exist: rows go in through SQL with the declared columns.
    f.exec(
        "INSERT INTO allergies (id, parent_id, substance, reaction, recorded_on, bi_substance)
         SELECT ?, id, ?, ?, '2019', ? FROM patients",
        vec![
            Val::B(vec![1; 16]),
            Val::B(vec![2; 60]),
            Val::B(vec![3; 60]),
            Val::B(vec![4; 2]),
        ],
    )
    .await;
    assert_eq!(f.int("SELECT count(*) FROM allergies", vec![]).await, 1);
    // Deleting the patient deletes their allergies (the parent cascades).
    f.exec("DELETE FROM patients", vec![]).await;
    assert_eq!(f.int("SELECT count(*) FROM allergies", vec![]).await, 0);
    // Applying it again changes nothing and stores no new version.
    let again = a.apply_schema(EMR).await.unwrap();
    assert_eq!((again.version, again.changes.len()), (1, 0));
    assert_eq!(f.int("SELECT count(*) FROM policies", vec![]).await, 1);
    drop(a);
    // Every login reads the signed version back.
    let b = f.admin().await;
    let info = b.policy_info();
    assert_eq!((info.version, info.signer.as_deref()), (1, Some(ADMIN)));
    assert_eq!(info.text.as_deref(), Some(EMR));
    let s = b.schema();
    assert!(s.table("prescriptions").is_some());
    assert!(s
        .table("patients")
        .unwrap()
        .column("insurance_number")
        .is_some());
}

async fn a_stored_schema_altered_by_sql_refuses_every_login(f: Fixture) {
    let a = f.admin().await;
    a.apply_schema(EMR).await.unwrap();
    let bob = f.user(&a, "bob", &["clinical"]).await;
    drop((a, bob));
    // The server turns the allergy substance plain in the stored text.
    let weaker = EMR.replacen(
        "column = \"substance\"\nscope = \"clinical\"\nkind = \"text\"\nmax_bytes = 200\npadding = { block = 32 }",
        "column = \"substance\"\nplain = \"text\"",
        1,
    );
    assert_ne!(weaker, EMR, "the control edit applies");
    let n = f
        .exec(
            "UPDATE policies SET text = ? WHERE version = 1",
            vec![Val::B(weaker.into_bytes())],
        )
        .await;
    assert_eq!(n, 1);
    for (user, pw) in [(ADMIN, ADMIN_PW), ("bob", "bob pw")] {
        let err = f.login(user, pw).await.unwrap_err();
        assert!(
            matches!(&err, Error::BadSignature { what } if what.contains("schema version 1")),
            "{user}: {err}"
        );
    }
    // A version the server makes up is refused as well.
    f.exec(
        "UPDATE policies SET text = ?, version = 2 WHERE version = 1",
        vec![Val::B(EMR.as_bytes().to_vec())],
    )
    .await;
    let err = f.login(ADMIN, ADMIN_PW).await.unwrap_err();
    assert!(matches!(err, Error::BadSignature { .. }), "{err}");
}

async fn a_refused_change_changes_nothing(f: Fixture) {
    let a = f.admin().await;
    a.apply_schema(EMR).await.unwrap();
    // Encrypted turned plain: refused before anything is done.
    let plain = EMR.replacen(
        "scope = \"clinical\"\nkind = \"text\"\nmax_bytes = 2000\npadding = { power_of_two = 64 }",
        "plain = \"text\"",
        1,
    );
    assert_ne!(plain, EMR);
    let err = a.apply_schema(&plain).await.unwrap_err();
    assert!(
        matches!(&err, Error::Schema(p) if p.to_string().contains("cannot become plain")),
        "{err}"
    );
    // A new table together with a refused change: the table is not made.
    let with_table = format!(
        "{plain}\n[[table]]\nname = \"invoices\"\n[[column]]\ntable = \"invoices\"\ncolumn = \"total\"\nplain = \"integer\"\n"
    );
    assert!(a.apply_schema(&with_table).await.is_err());
    // A file with its own problems: every one, with its line.
    let err = a
        .apply_schema("format = 2\n[[table]]\nname = \"Bad\"\n")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Schema(p) if p.0[0].line == Some(3)),
        "{err}"
    );
    drop(a);
    let b = f.admin().await;
    assert_eq!(b.policy_info().version, 1);
    assert!(b.schema().table("invoices").is_none());
    assert_eq!(f.int("SELECT count(*) FROM policies", vec![]).await, 1);
    let tables = tables_named(&f, "invoices").await;
    assert_eq!(tables, 0, "no table of a refused apply");
    // Control: the helper sees a table that is there.
    assert_eq!(tables_named(&f, "allergies").await, 1);
}

async fn only_administrators_apply(f: Fixture) {
    let a = f.admin().await;
    let bob = f.user(&a, "bob", &["clinical"]).await;
    let err = bob.apply_schema(EMR).await.unwrap_err();
    assert!(matches!(err, Error::NotAdmin(_)), "{err}");
    assert_eq!(f.int("SELECT count(*) FROM policies", vec![]).await, 0);
}

async fn a_table_dropped_behind_medvaults_back_is_reported(f: Fixture) {
    let a = f.admin().await;
    a.apply_schema(EMR).await.unwrap();
    drop(a);
    f.exec_script(&["DROP TABLE appointments"]).await;
    let err = f.login(ADMIN, ADMIN_PW).await.unwrap_err();
    assert!(
        matches!(&err, Error::SchemaMismatch(m) if m.contains("table appointments is missing")),
        "{err}"
    );
}

async fn copy_moves_application_tables_and_verify_reads_them(f: Fixture) {
    use medvault::vault::rows::{NewRow, Value};
    use medvault::{OpenOptions, Vault};
    let (a, p) = emr_with_patient(&f).await;
    let t = a.table("allergies").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            t.insert(
                &NewRow::child_of(p)
                    .set("substance", format!("Substance {i}"))
                    .set("reaction", "Rash")
                    .set("recorded_on", "2020"),
            )
            .await
            .unwrap(),
        );
    }
    a.table("appointments")
        .await
        .unwrap()
        .insert(
            &NewRow::child_of(p)
                .scope("clinical")
                .set("starts_at", 1i64)
                .set("minutes", 5i64)
                .set("reason", "Check-up")
                .set("room", "B-12")
                .set("confirmed", false),
        )
        .await
        .unwrap();
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert!(v.indexes_checked >= 5, "{v:?}");
    assert!(
        v.tables.contains(&("allergies".to_string(), 5)),
        "{:?}",
        v.tables
    );

    // To a new SQLCipher file, and from a SQLCipher source to MySQL too.
    let dir = tempfile::tempdir().unwrap();
    let mut targets = vec![(
        format!("sqlcipher:{}", dir.path().join("copy.db").display()),
        None,
    )];
    if !f.is_mysql() {
        let (url, guard) = empty_mysql().await;
        targets.push((url, Some(guard)));
    }
    for (to, _guard) in &targets {
        let report = a
            .copy_to(to, &mut |_, _, _| std::ops::ControlFlow::Continue(()))
            .await
            .unwrap();
        assert!(
            report.tables.contains(&("allergies".to_string(), 5)),
            "{:?}",
            report.tables
        );
        assert!(
            report.tables.contains(&("policies".to_string(), 1)),
            "{:?}",
            report.tables
        );
        let opts = OpenOptions {
            kdf: kdf(),
            pinned_root: Some(f.root_fingerprint.clone()),
            new_password: None,
            state_dir: None,
        };
        let c = Vault::open(to, ADMIN, ADMIN_PW, &opts).await.unwrap();
        assert_eq!(c.policy_info().version, 1);
        let ct = c.table("allergies").await.unwrap();
        let found = ct
            .find(&[("substance", Value::from("substance 3"))])
            .await
            .unwrap();
        assert_eq!(found.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[3]]);
        let v = c.verify_store().await.unwrap();
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        // A resumed copy to the same place skips what is there.
        a.copy_to(to, &mut |_, _, _| std::ops::ControlFlow::Continue(()))
            .await
            .unwrap();
    }

    // verify sees an index that does not match its row.
    f.exec(
        "UPDATE allergies SET bi_substance = ? WHERE id = ?",
        vec![Val::B(vec![0, 0]), Val::B(ids[0].as_bytes().to_vec())],
    )
    .await;
    let v = a.verify_store().await.unwrap();
    assert_eq!(v.problems.len(), 2, "{:?}", v.problems);
    assert_eq!(v.forged, 1, "the index is part of what the author signed");
    assert!(
        v.problems
            .iter()
            .any(|p| p.contains("bi_substance does not match")),
        "{:?}",
        v.problems
    );

    // ...and so on the columns an application added to `patients`.
    let mut number = std::collections::BTreeMap::new();
    number.insert("insurance_number".to_string(), Value::from("1 70 03"));
    assert!(a
        .table("patients")
        .await
        .unwrap()
        .update(p, &number)
        .await
        .unwrap());
    let before = a.verify_store().await.unwrap();
    assert_eq!(before.problems.len(), 2, "{:?}", before.problems);
    f.exec(
        "UPDATE patients SET uq_insurance_number = NULL WHERE id = ?",
        vec![Val::B(p.as_bytes().to_vec())],
    )
    .await;
    let v = a.verify_store().await.unwrap();
    assert_eq!(v.problems.len(), 3, "{:?}", v.problems);
    assert_eq!(v.forged, 2, "a value set to NULL leaves the leaf");
    // A missing value is counted as not filled (as after an upgrade),
    // apart from the problems; the forged row is the problem.
    assert_eq!(v.indexes_unfilled, 1, "{v:?}");
    assert_eq!(before.indexes_unfilled, 0, "{before:?}");
    assert!(
        v.problems
            .iter()
            .any(|m| m.contains(&format!("patients {p}"))),
        "{:?}",
        v.problems
    );
}

/// MySQL commits DDL statement by statement, so an apply cut short leaves
/// some tables and columns made and no signed row. Applying the same file
/// again skips what is done and finishes.
#[tokio::test]
async fn a_mysql_apply_cut_short_is_finished_by_applying_again() {
    use medvault::schema::Schema;
    use medvault::sql::ddl::{add_column, create_table, Dialect};
    let f = Fixture::mysql().await;
    let s = Schema::builtin().extend(EMR).unwrap();
    // What the first steps of an interrupted apply did.
    let mut done = create_table(s.table("allergies").unwrap(), Dialect::Mysql);
    done.extend(
        add_column(
            s.table("patients").unwrap(),
            "insurance_number",
            Dialect::Mysql,
        )
        .unwrap(),
    );
    let done: Vec<&str> = done.iter().map(String::as_str).collect();
    f.exec_script(&done).await;
    let a = f.admin().await;
    let r = a.apply_schema(EMR).await.unwrap();
    assert_eq!(r.version, 1);
    drop(a);
    let b = f.admin().await;
    assert!(b.schema().table("appointments").is_some());
    assert_eq!(f.int("SELECT count(*) FROM appointments", vec![]).await, 0);
}

async fn dropping_an_index_drops_its_column(f: Fixture) {
    let a = f.admin().await;
    a.apply_schema(EMR).await.unwrap();
    let has_bi_drug = || async {
        f.int(
            if f.is_mysql() {
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = DATABASE() \
                 AND table_name = 'prescriptions' AND column_name = 'bi_drug'"
            } else {
                "SELECT count(*) FROM pragma_table_info('prescriptions') WHERE name = 'bi_drug'"
            },
            vec![],
        )
        .await
    };
    assert_eq!(has_bi_drug().await, 1);
    // Rows that hold the index: their authors signed it (FORMAT.md §5.8),
    // so it is cleared from them, signed again, before the column goes.
    let p = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    let rx = a
        .table("prescriptions")
        .await
        .unwrap()
        .insert_many(&[prescription(p, "500 mg"), prescription(p, "250 mg")])
        .await
        .unwrap();
    let start = EMR.find("[[index]]\ntable = \"prescriptions\"").unwrap();
    let end = start + EMR[start..].find("bits = 18\n").unwrap() + "bits = 18\n".len();
    let without = format!("{}{}", &EMR[..start], &EMR[end..]);
    let r = a.apply_schema(&without).await.unwrap();
    assert_eq!(r.changes, ["drop blind index prescriptions.bi_drug"]);
    assert_eq!(r.version, 2);
    assert_eq!(has_bi_drug().await, 0);
    let t = a.table("prescriptions").await.unwrap();
    for id in rx {
        let row = t.get(id).await.unwrap().unwrap();
        assert_eq!(row.text("drug"), Some("Amoxicillin"));
        assert!(
            matches!(&row.authorship, medvault::vault::rows::Authorship::Signed { author, version: 1, resealed_by: Some(by), .. } if author == ADMIN && by == ADMIN),
            "{:?}",
            row.authorship
        );
    }
    drop(t);
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    drop(a);
    assert!(f
        .admin()
        .await
        .schema()
        .table("prescriptions")
        .unwrap()
        .index("bi_drug")
        .is_none());
}

async fn disabling_the_admin_who_signed_the_schema_locks_no_one_out(f: Fixture) {
    let a = f.admin().await;
    enrol(&a, "carol", "carol pw", true).await;
    let carol = f.login("carol", "carol pw").await.unwrap();
    carol.apply_schema(EMR).await.unwrap();
    drop(carol);
    a.disable_user("carol").await.unwrap();
    drop(a);
    // Everyone still logs in; the schema is signed again by the disabler.
    let a = f.admin().await;
    let info = a.policy_info();
    assert_eq!((info.version, info.signer.as_deref()), (2, Some(ADMIN)));
    assert_eq!(info.text.as_deref(), Some(EMR));
    assert!(a.schema().table("allergies").is_some());
}

async fn a_second_administrator_applying_from_an_older_version_changes_nothing(f: Fixture) {
    let a = f.admin().await;
    enrol(&a, "carol", "carol pw", true).await;
    let carol = f.login("carol", "carol pw").await.unwrap();
    a.apply_schema(EMR).await.unwrap();
    // Carol planned from version 0: her apply is refused before any DDL.
    let other = "format = 2\n[[table]]\nname = \"invoices\"\n[[column]]\ntable = \"invoices\"\n\
                 column = \"total\"\nplain = \"integer\"\n";
    let err = carol.apply_schema(other).await.unwrap_err();
    assert!(err.to_string().contains("another administrator"), "{err}");
    let tables = tables_named(&f, "invoices").await;
    assert_eq!(tables, 0);
    assert_eq!(f.int("SELECT count(*) FROM policies", vec![]).await, 1);
}

async fn a_table_of_the_same_name_is_not_adopted(f: Fixture) {
    f.exec_script(&["CREATE TABLE allergies (id INTEGER, substance TEXT)"])
        .await;
    let a = f.admin().await;
    let err = a.apply_schema(EMR).await.unwrap_err();
    assert!(
        matches!(&err, Error::SchemaMismatch(m) if m.contains("allergies exists already")),
        "{err}"
    );
    assert_eq!(f.int("SELECT count(*) FROM policies", vec![]).await, 0);
    assert_eq!(a.policy_info().version, 0);
}

async fn a_lower_max_bytes_keeps_older_values_readable(f: Fixture) {
    use medvault::vault::rows::{NewRow, Value};
    let (a, p) = emr_with_patient(&f).await;
    let t = a.table("allergies").await.unwrap();
    let long = "r".repeat(1800);
    let id = t
        .insert(
            &NewRow::child_of(p)
                .set("substance", "Latex")
                .set("reaction", long.as_str())
                .set("recorded_on", "2020"),
        )
        .await
        .unwrap();
    let smaller = EMR.replacen("max_bytes = 2000", "max_bytes = 1500", 1);
    assert_ne!(smaller, EMR);
    let r = a.apply_schema(&smaller).await.unwrap();
    assert_eq!(r.version, 2);
    let t = a.table("allergies").await.unwrap();
    // The older, longer value is read, found and kept by an update of
    // another column; a new one that long is refused.
    assert_eq!(
        t.get(id).await.unwrap().unwrap().text("reaction"),
        Some(long.as_str())
    );
    assert_eq!(
        t.find(&[("substance", Value::from("latex"))])
            .await
            .unwrap()
            .len(),
        1
    );
    let changes = [("substance".to_string(), Value::from("Iodine"))].into();
    assert!(t.update(id, &changes).await.unwrap());
    let too_long = [("reaction".to_string(), Value::from(long.as_str()))].into();
    assert!(matches!(
        t.update(id, &too_long).await,
        Err(Error::TooLong { .. })
    ));
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

async fn copy_takes_the_schema_applied_after_login(f: Fixture) {
    let early = f.admin().await;
    f.admin().await.apply_schema(EMR).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let to = format!("sqlcipher:{}", dir.path().join("copy.db").display());
    let report = early
        .copy_to(&to, &mut |_, _, _| std::ops::ControlFlow::Continue(()))
        .await
        .unwrap();
    assert!(
        report.tables.iter().any(|(t, _)| t == "allergies"),
        "{:?}",
        report.tables
    );
}

async fn a_table_named_like_an_sql_keyword_works_everywhere(f: Fixture) {
    use medvault::vault::rows::{NewRow, Value};
    let text = "format = 2
[[table]]
name = \"order\"
parent = \"patients\"
[[column]]
table = \"order\"
column = \"group\"
scope = \"clinical\"
kind = \"code\"
max_bytes = 20
[[column]]
table = \"order\"
column = \"select\"
plain = \"text\"
optional = true
[[index]]
table = \"order\"
column = \"where\"
over = [\"group\"]
bits = 12
";
    let a = f.admin().await;
    a.apply_schema(text).await.unwrap();
    let p = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    let t = a.table("order").await.unwrap();
    let id = t
        .insert(&NewRow::child_of(p).set("group", "AB-12").set("select", "x"))
        .await
        .unwrap();
    assert_eq!(
        t.find(&[("group", Value::from("ab12"))]).await.unwrap()[0].id,
        id
    );
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    let dir = tempfile::tempdir().unwrap();
    let to = format!("sqlcipher:{}", dir.path().join("copy.db").display());
    a.copy_to(&to, &mut |_, _, _| std::ops::ControlFlow::Continue(()))
        .await
        .unwrap();
}

async fn application_migrations_run_once_with_their_own_history(f: Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let write = |d: &str, name: &str, sql: &str| {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
        std::fs::write(dir.path().join(d).join(name), sql).unwrap();
    };
    write(
        "sqlite",
        "V1__rooms.sql",
        "CREATE TABLE rooms (id INTEGER PRIMARY KEY, label TEXT NOT NULL);",
    );
    write(
        "mysql",
        "V1__rooms.sql",
        "CREATE TABLE rooms (id INT PRIMARY KEY, label VARCHAR(40) NOT NULL);",
    );
    let a = f.admin().await;
    let medvault_history = f
        .int("SELECT count(*) FROM refinery_schema_history", vec![])
        .await;
    assert_eq!(
        a.migrate_application(dir.path()).await.unwrap(),
        ["V1__rooms"]
    );
    assert!(a.migrate_application(dir.path()).await.unwrap().is_empty());
    write(
        "sqlite",
        "V2__floor.sql",
        "ALTER TABLE rooms ADD COLUMN floor INTEGER;",
    );
    write(
        "mysql",
        "V2__floor.sql",
        "ALTER TABLE rooms ADD COLUMN floor INT;",
    );
    assert_eq!(
        a.migrate_application(dir.path()).await.unwrap(),
        ["V2__floor"]
    );
    f.exec(
        "INSERT INTO rooms (id, label, floor) VALUES (1, 'B-12', 2)",
        vec![],
    )
    .await;
    assert_eq!(
        f.int("SELECT count(*) FROM app_schema_history", vec![])
            .await,
        2
    );
    assert_eq!(
        f.int("SELECT count(*) FROM refinery_schema_history", vec![])
            .await,
        medvault_history,
        "medvault's own history is untouched"
    );
    // Folders that disagree, and users who are not administrators.
    write("sqlite", "V3__extra.sql", "CREATE TABLE extra (x INTEGER);");
    let err = a.migrate_application(dir.path()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Migration(m) if m.contains("same V<n>")),
        "{err}"
    );
    let bob = f.user(&a, "bob", &[]).await;
    assert!(matches!(
        bob.migrate_application(dir.path()).await,
        Err(Error::NotAdmin(_))
    ));
    // An application table name is not one a schema may declare later.
    let clash = "format = 2\n[[table]]\nname = \"app_schema_history\"\n";
    assert!(matches!(a.apply_schema(clash).await, Err(Error::Schema(_))));
    // A login after all of it still works.
    drop(a);
    f.admin().await;
}

/// A prescription of amoxicillin at `dosage` for patient `p`.
fn prescription(p: medvault::Id, dosage: &str) -> medvault::vault::rows::NewRow {
    medvault::vault::rows::NewRow::child_of(p)
        .set("drug", "Amoxicillin")
        .set("dosage", dosage)
        .set("started_on", "2024-01-02")
}

/// The example schema plus an index over `prescriptions.dosage`, a column
/// that holds values once prescriptions are written.
fn late_index() -> String {
    // Two 18-bit indexes single a prescription out at its planned rows:
    // acknowledged (LANGUAGE.md 6.1).
    let emr = EMR.replacen(
        "name = \"prescriptions\"",
        "name = \"prescriptions\"\ndanger_single_out = true",
        1,
    );
    format!(
        "{emr}\n[[index]]\ntable = \"prescriptions\"\ncolumn = \"bi_dosage\"\nover = [\"dosage\"]\nbits = 18\n"
    )
}

/// An index added over a column that holds values already: computed for
/// every row when the change is applied, so `find` answers for old rows;
/// an apply cut short finishes when the same file is applied again; an
/// administrator without the column's key is refused before anything
/// changes.
async fn a_new_index_over_existing_values_is_computed_for_every_row(f: Fixture) {
    use medvault::vault::rows::Value;
    let (a, p) = emr_with_patient(&f).await;
    let t = a.table("prescriptions").await.unwrap();
    let rx = |dosage: &str| prescription(p, dosage);
    let ids = t
        .insert_many(&[rx("500 mg"), rx("250 mg"), rx("500 mg")])
        .await
        .unwrap();
    drop(t);
    let late_index = late_index();
    // An administrator who holds no clinical key cannot compute it.
    enrol(&a, "carol", "carol pw", true).await;
    let carol = f.login("carol", "carol pw").await.unwrap();
    let err = carol.apply_schema(&late_index).await.unwrap_err();
    assert!(matches!(err, Error::NoAccess(_)), "{err}");
    assert_eq!(f.int("SELECT count(*) FROM policies", vec![]).await, 1);
    // The row as an apply cut short leaves it: no value, and the
    // authentication it had before (filling the value signs it again).
    let unfilled_auth = f
        .blob(
            "SELECT medvault_auth FROM prescriptions WHERE id = ?",
            vec![Val::B(ids[1].as_bytes().to_vec())],
        )
        .await;
    // The one who does: every row gets its value.
    let r = a.apply_schema(&late_index).await.unwrap();
    assert_eq!((r.version, r.indexed), (2, 3));
    let t = a.table("prescriptions").await.unwrap();
    let found = |v: &'static str| {
        let t = &t;
        async move {
            let mut got: Vec<medvault::Id> = t
                .find(&[("dosage", Value::from(v))])
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect();
            got.sort();
            got
        }
    };
    let mut want = vec![ids[0], ids[2]];
    want.sort();
    assert_eq!(found("500 MG").await, want);
    assert_eq!(found("250 mg").await, [ids[1]]);
    assert!(a.verify_store().await.unwrap().problems.is_empty());
    // Cut short: a row left without its value is counted by verify as
    // not filled, and filled by applying the same file again.
    f.exec(
        "UPDATE prescriptions SET bi_dosage = NULL, medvault_auth = ? WHERE id = ?",
        vec![
            Val::B(unfilled_auth.clone()),
            Val::B(ids[1].as_bytes().to_vec()),
        ],
    )
    .await;
    assert!(found("250 mg").await.is_empty());
    let v = a.verify_store().await.unwrap();
    assert_eq!((v.problems.len(), v.indexes_unfilled), (0, 1), "{v:?}");
    let again = a.apply_schema(&late_index).await.unwrap();
    assert_eq!(
        (again.version, again.indexed, again.changes.len()),
        (2, 1, 0)
    );
    assert_eq!(found("250 mg").await, [ids[1]]);
    assert!(a.verify_store().await.unwrap().problems.is_empty());
}

/// A row whose covered cell does not open (moved from another row by the
/// database) stops the computation of a new index: the change is stored,
/// and the error says so and how to finish.
async fn an_index_that_cannot_be_computed_says_the_schema_is_in_force(f: Fixture) {
    let (a, p) = emr_with_patient(&f).await;
    let t = a.table("prescriptions").await.unwrap();
    let rx = |dosage: &str| prescription(p, dosage);
    let ids = t.insert_many(&[rx("500 mg"), rx("250 mg")]).await.unwrap();
    drop(t);
    f.exec(
        "UPDATE prescriptions SET dosage = (SELECT s FROM (SELECT dosage AS s FROM prescriptions WHERE id = ?) AS o) WHERE id = ?",
        vec![
            Val::B(ids[0].as_bytes().to_vec()),
            Val::B(ids[1].as_bytes().to_vec()),
        ],
    )
    .await;
    let late_index = late_index();
    let err = a.apply_schema(&late_index).await.unwrap_err();
    assert!(
        matches!(&err, Error::IndexNotFilled { version: 2, index, .. } if index == "prescriptions.bi_dosage"),
        "{err}"
    );
    assert!(!err.to_string().contains("mg"), "{err}");
    assert_eq!(a.policy_info().version, 2);
    assert_eq!(f.int("SELECT count(*) FROM policies", vec![]).await, 2);
}

/// A table opened before an administrator added an index over its
/// existing columns refuses to write (the row would miss the index) and
/// works once opened again.
async fn a_table_opened_under_an_older_schema_refuses_to_write(f: Fixture) {
    use medvault::vault::rows::Value;
    let (a, p) = emr_with_patient(&f).await;
    let rx = |dosage: &str| prescription(p, dosage);
    let doc = f.user(&a, "doc", &["identity", "clinical"]).await;
    let t = doc.table("prescriptions").await.unwrap();
    t.insert(&rx("500 mg")).await.unwrap();
    let late_index = late_index();
    assert_eq!(a.apply_schema(&late_index).await.unwrap().indexed, 1);
    // The note API reads the new schema by itself and writes.
    doc.add_note(&p, "Seen after the change", None)
        .await
        .unwrap();
    let err = t.insert(&rx("250 mg")).await.unwrap_err();
    assert!(matches!(err, Error::SchemaChanged { version: 2 }), "{err}");
    assert_eq!(f.int("SELECT count(*) FROM prescriptions", vec![]).await, 1);
    drop(t);
    let t = doc.table("prescriptions").await.unwrap();
    let id = t.insert(&rx("250 mg")).await.unwrap();
    let found = a
        .table("prescriptions")
        .await
        .unwrap()
        .find(&[("dosage", Value::from("250 mg"))])
        .await
        .unwrap();
    assert_eq!(found.iter().map(|r| r.id).collect::<Vec<_>>(), [id]);
}
