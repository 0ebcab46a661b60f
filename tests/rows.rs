//! The generic row API over an application's tables (examples/emr): rows
//! sealed in cell envelopes bound to table, column, row and parent; exact
//! search through blind indexes; withheld columns; typed errors.

#[macro_use]
mod common;
use common::*;
use medvault::vault::rows::{NewRow, Value};
use medvault::{Error, Id};

per_store!(
    allergies_of_a_patient_end_to_end,
    a_cell_moved_across_rows_columns_or_parents_is_tampered,
    a_user_without_the_scope_sees_the_columns_withheld,
    bad_rows_are_typed_errors_and_change_nothing,
    the_no_plaintext_scan_covers_application_tables,
    rows_map_to_the_applications_own_types,
    an_update_reseals_and_reindexes,
    a_row_nothing_sealed_vouches_for_is_not_rewritten,
    many_rows_stream_in_one_transaction,
    patients_are_served_by_the_row_api_with_their_own_rules,
    built_in_cells_moved_across_rows_are_tampered,
    a_patient_column_of_another_scope_does_not_block_the_patient_api,
    year_and_month_indexes_find_exactly_the_rows_of_a_date,
    a_coarse_phonetic_index_finds_exactly_the_names_that_sound_alike,
    a_coarse_prefix_index_finds_exactly_the_values_that_begin_alike,
    a_coarse_tokens_index_finds_exactly_the_values_holding_a_word,
    searches_come_back_in_the_order_and_number_asked,
    a_unique_index_refuses_a_second_row_with_the_same_value,
    a_unique_index_is_checked_only_where_every_value_is_seen,
    a_unique_fill_finds_a_duplicate_filled_pages_before,
);

/// A table of contacts whose names are searched by sound through an index
/// of 2 bits: a quarter of the rows are candidates for any name, so the
/// comparison of the decrypted codes is what makes results exact.
const CONTACTS: &str = "format = 2
[[table]]
name = \"contacts\"

[[column]]
table = \"contacts\"
column = \"name\"
scope = \"identity\"
kind = \"name\"
max_bytes = 64
padding = { block = 16 }

[[index]]
table = \"contacts\"
column = \"bi_name_sound\"
over = [\"name\"]
kind = \"phonetic\"
bits = 2
";

async fn a_coarse_phonetic_index_finds_exactly_the_names_that_sound_alike(f: Fixture) {
    use medvault::index::canonical::{name, phonetic};
    use medvault::schema::IndexKind;
    let a = f.admin().await;
    a.apply_schema(CONTACTS).await.unwrap();
    let t = a.table("contacts").await.unwrap();
    let names = [
        "Dupont",
        "Dupond",
        "Du Pont",
        "Meyer",
        "Mayer",
        "Le Gall",
        "Legall",
        "Martin",
        "Martins",
        "Saint-Pierre",
        "Hélène",
        "Schmidt",
        "Smith",
        "Иванов",
        "H",
    ];
    let rows: Vec<NewRow> = (0..150)
        .map(|i| NewRow::new().set("name", names[i % names.len()]))
        .collect();
    let ids = t.insert_many(&rows).await.unwrap();
    for q in ["dupond", "MEIER", "legal", "Smith", "Martin", "Zola"] {
        let want_code = phonetic(&name(q));
        let mut want: Vec<Id> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| phonetic(&name(names[i % names.len()])) == want_code)
            .map(|(_, id)| *id)
            .collect();
        want.sort();
        let mut got: Vec<Id> = t
            .find_by(IndexKind::Phonetic, "name", &Value::from(q))
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        got.sort();
        assert_eq!(got, want, "{q}");
    }
    for q in ["", "Иванов", "H"] {
        let err = t
            .find_by(IndexKind::Phonetic, "name", &Value::from(q))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Refused(_) | Error::MissingValue { .. }),
            "{q}: {err}"
        );
    }
    // Names with no code hold a keyed value like any other (the index of
    // one empty part), not a mark the server could read.
    let no_code: Vec<Id> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| ["Иванов", "H"].contains(&names[i % names.len()]))
        .map(|(_, id)| *id)
        .collect();
    for id in &no_code {
        let v = f
            .blob(
                "SELECT bi_name_sound FROM contacts WHERE id = ?",
                vec![Val::B(id.as_bytes().to_vec())],
            )
            .await;
        assert_eq!(v.len(), 1, "one byte for 2 bits");
    }
    assert_eq!(a.unfilled("contacts", "bi_name_sound").await.unwrap(), 0);
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

/// Drugs whose names are searched by their first characters through a
/// prefix index of 2 bits a length, lengths 1 to 3 (the first, of few
/// values, acknowledged): most rows are
/// candidates for a short prefix, so the comparison of the decrypted
/// values is what makes results exact.
const DRUGS: &str = "format = 2
[[table]]
name = \"drugs\"

[[column]]
table = \"drugs\"
column = \"substance\"
scope = \"clinical\"
kind = \"text\"
max_bytes = 64
padding = { block = 16 }

[[index]]
table = \"drugs\"
column = \"bi_substance_start\"
over = [\"substance\"]
kind = \"prefix\"
shortest = 1
longest = 3
bits = 2
danger_low_cardinality = true
";

async fn a_coarse_prefix_index_finds_exactly_the_values_that_begin_alike(f: Fixture) {
    use medvault::index::canonical::text;
    use medvault::schema::IndexKind;
    let a = f.admin().await;
    a.apply_schema(DRUGS).await.unwrap();
    let t = a.table("drugs").await.unwrap();
    let names = [
        "Amoxicilline",
        "amoxicilline  acide clavulanique",
        "Amiodarone",
        "Éther",
        "Étoposide",
        "ethanol",
        "Paracétamol",
        "Paroxétine",
        "Pénicilline G",
        "Pénicilline V",
        "Morphine",
        "Méthadone",
        "Ибупрофен",
        "X",
    ];
    let rows: Vec<NewRow> = (0..140)
        .map(|i| NewRow::new().set("substance", names[i % names.len()]))
        .collect();
    let ids = t.insert_many(&rows).await.unwrap();
    let search = |q: &'static str| {
        let t = &t;
        async move {
            t.find_by(IndexKind::Prefix, "substance", &Value::from(q))
                .await
        }
    };
    let check = |q: &str, got: Vec<medvault::vault::rows::Row>| {
        let want_start = text(q);
        let mut want: Vec<Id> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| text(names[i % names.len()]).starts_with(&want_start))
            .map(|(_, id)| *id)
            .collect();
        want.sort();
        let mut got: Vec<Id> = got.iter().map(|r| r.id).collect();
        got.sort();
        assert_eq!(got, want, "{q}");
        got.len()
    };
    let queries = [
        "a",
        "am",
        "amo",
        "AMOX",
        "amoxicilline a",
        "é",
        "ét",
        "éth",
        "e",
        "eth",
        "p",
        "pa",
        "par",
        "para",
        "pé",
        "pénicilline",
        "PÉNICILLINE V",
        "m",
        "mé",
        "и",
        "ибу",
        "x",
        "xy",
        "z",
        "zzzz",
    ];
    let mut total = 0;
    for q in queries {
        total += check(q, search(q).await.unwrap());
    }
    assert!(total > 300, "{total} rows found in all");
    // An empty search is refused: it would ask for every row.
    let err = search("  ").await.unwrap_err();
    assert!(
        matches!(err, Error::PrefixTooShort { shortest: 1, .. }),
        "{err}"
    );
    // Each row holds 3 keyed prefixes of 1 byte.
    let v = f
        .blob(
            "SELECT bi_substance_start FROM drugs WHERE id = ?",
            vec![Val::B(ids[0].as_bytes().to_vec())],
        )
        .await;
    assert_eq!(v.len(), 3);
    assert_eq!(a.unfilled("drugs", "bi_substance_start").await.unwrap(), 0);
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    // A rotation writes every prefix again under the new epoch: still
    // exact, and verify agrees.
    assert!(a.rotate("clinical").await.unwrap().finished);
    let t = a.table("drugs").await.unwrap();
    for q in ["amo", "é", "pé", "ибу"] {
        check(
            q,
            t.find_by(IndexKind::Prefix, "substance", &Value::from(q))
                .await
                .unwrap(),
        );
    }
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

/// Notes of a few words whose words are searched through a tokens index
/// of 2 bits a word and 2 slots: a quarter of the rows are candidates for
/// a word in each slot, and every row of more than 2 words is one.
const REMARKS: &str = "format = 2
[[table]]
name = \"remarks\"

[[column]]
table = \"remarks\"
column = \"text\"
scope = \"clinical\"
kind = \"text\"
max_bytes = 200
padding = { block = 16 }

[[index]]
table = \"remarks\"
column = \"bi_text_words\"
over = [\"text\"]
kind = \"tokens\"
slots = 2
bits = 2
";

async fn a_coarse_tokens_index_finds_exactly_the_values_holding_a_word(f: Fixture) {
    use medvault::index::canonical::words;
    use medvault::schema::{IndexKind, Kind};
    let a = f.admin().await;
    // The table first, its rows, then the index: added to a populated
    // table (its derived columns too), and computed for every row.
    let without = REMARKS.split("[[index]]").next().unwrap().to_owned();
    a.apply_schema(&without).await.unwrap();
    let t = a.table("remarks").await.unwrap();
    let texts = [
        "Allergie pénicilline",
        "allergie  latex",
        "Pénicilline",
        "Asthme léger, allergie aux acariens et au pollen",
        "Diabète type 2",
        "Type 1",
        "",
        "ибупрофен allergie",
    ];
    let rows: Vec<NewRow> = (0..120)
        .map(|i| NewRow::new().set("text", texts[i % texts.len()]))
        .collect();
    let ids = t.insert_many(&rows).await.unwrap();
    a.apply_schema(REMARKS).await.unwrap();
    assert_eq!(a.unfilled("remarks", "bi_text_words").await.unwrap(), 0);
    let t = a.table("remarks").await.unwrap();
    let check = |q: &str, got: Vec<medvault::vault::rows::Row>| {
        let want_words = words(Kind::Text, q);
        let mut want: Vec<Id> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                let got = words(Kind::Text, texts[i % texts.len()]);
                let got: Vec<&str> = got.split(' ').collect();
                want_words.split(' ').all(|w| got.contains(&w))
            })
            .map(|(_, id)| *id)
            .collect();
        want.sort();
        let mut got: Vec<Id> = got.iter().map(|r| r.id).collect();
        got.sort();
        assert_eq!(got, want, "{q}");
        got.len()
    };
    let mut total = 0;
    for q in [
        "allergie",
        "ALLERGIE latex",
        "pénicilline",
        "penicilline",
        "pollen",
        "au",
        "type",
        "2",
        "ибупрофен",
        "absent",
        "léger, allergie",
    ] {
        total += check(
            q,
            t.find_by(IndexKind::Tokens, "text", &Value::from(q))
                .await
                .unwrap(),
        );
    }
    assert!(total > 100, "{total} rows found in all");
    let err = t
        .find_by(IndexKind::Tokens, "text", &Value::from("   "))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Refused(_)), "{err}");
    assert_eq!(t.list(None, 1000).await.unwrap().len(), 120);
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    // A rotation writes every value again under the new epoch; the store
    // derives the slots again.
    assert!(a.rotate("clinical").await.unwrap().finished);
    let t = a.table("remarks").await.unwrap();
    for q in ["allergie", "pollen", "type"] {
        check(
            q,
            t.find_by(IndexKind::Tokens, "text", &Value::from(q))
                .await
                .unwrap(),
        );
    }
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    // Dropped with its derived columns: the table takes rows again.
    a.apply_schema(&without).await.unwrap();
    let t = a.table("remarks").await.unwrap();
    t.insert(&NewRow::new().set("text", "après")).await.unwrap();
    assert_eq!(t.list(None, 1000).await.unwrap().len(), 121);
}

/// The example schema with a `year-month` index on the patients' dates
/// of birth (the `year` one is built in).
fn with_birth_year() -> String {
    format!(
        "{EMR}
[[index]]
table = \"patients\"
column = \"bi_born_month\"
over = [\"born\"]
kind = \"year-month\"
bits = 15
"
    )
}

/// Patients born on dates, partial ones included, spread over a few
/// years, half of them written before the month index exists (the
/// schema's apply fills it) and half after: every search by year (the
/// built-in index) and by month returns exactly what comparing every
/// decrypted date does.
async fn year_and_month_indexes_find_exactly_the_rows_of_a_date(f: Fixture) {
    use medvault::schema::IndexKind;
    let (a, first) = emr_with_patient(&f).await;
    let mut born = vec![(first, "1970-03-02".to_owned())];
    let mut seed = 7u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let mut make = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| {
                let y = 1968 + next() % 5;
                let m = 1 + next() % 3;
                let d = 1 + next() % 28;
                match next() % 6 {
                    0 => format!("{y}"),
                    1 => format!("{y}-{m:02}"),
                    _ => format!("{y}-{m:02}-{d:02}"),
                }
            })
            .collect()
    };
    let dates = make(60);
    let people: Vec<_> = dates.iter().map(|d| patient("Martin", "Anne", d)).collect();
    let ids = a.insert_patients(&people).await.unwrap();
    born.extend(ids.into_iter().zip(dates));
    let report = a.apply_schema(&with_birth_year()).await.unwrap();
    assert!(report.indexed >= 1, "{report:?}");
    // Dates of a year alone have no month: filled with the value of the
    // empty part, they are not counted as waiting for a fill.
    let years_alone = born.iter().filter(|(_, d)| d.len() == 4).count();
    assert!(years_alone > 0);
    assert_eq!(a.unfilled("patients", "bi_born_month").await.unwrap(), 0);
    let dates = make(60);
    let people: Vec<_> = dates.iter().map(|d| patient("Martin", "Anne", d)).collect();
    let ids = a.insert_patients(&people).await.unwrap();
    born.extend(ids.into_iter().zip(dates));
    assert_eq!(a.unfilled("patients", "bi_born_month").await.unwrap(), 0);
    assert_eq!(a.unfilled("patients", "bi_born_year").await.unwrap(), 0);
    let t = a.table("patients").await.unwrap();
    let search = |kind, q: &str| {
        let t = &t;
        let q = q.to_owned();
        async move {
            let mut got: Vec<Id> = t
                .find_by(kind, "born", &Value::Text(q))
                .await
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect();
            got.sort();
            got
        }
    };
    for y in 1967..=1973 {
        let q = y.to_string();
        let mut want: Vec<Id> = born
            .iter()
            .filter(|(_, d)| d.starts_with(&q))
            .map(|(id, _)| *id)
            .collect();
        want.sort();
        assert_eq!(search(IndexKind::Year, &q).await, want, "{q}");
        for m in 1..=4 {
            let q = format!("{y}-{m:02}");
            let mut want: Vec<Id> = born
                .iter()
                .filter(|(_, d)| d.len() >= 7 && d.starts_with(&q))
                .map(|(id, _)| *id)
                .collect();
            want.sort();
            assert_eq!(search(IndexKind::YearMonth, &q).await, want, "{q}");
        }
    }
    assert!(!search(IndexKind::Year, "1970").await.is_empty());
    assert!(!search(IndexKind::YearMonth, "1970-03").await.is_empty());
    // A query of the wrong form, or a kind no index has: typed errors.
    for (kind, q) in [
        (IndexKind::Year, "1970-03"),
        (IndexKind::YearMonth, "1970"),
        (IndexKind::YearMonth, "1970-13"),
        (IndexKind::Year, "soon"),
    ] {
        let err = t
            .find_by(kind, "born", &Value::Text(q.into()))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Refused(_)), "{q}: {err}");
    }
    let t = a.table("allergies").await.unwrap();
    let err = t
        .find_by(IndexKind::Year, "substance", &Value::Text("1970".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoIndex { .. }), "{err}");
    // `verify` recomputes both indexes of every patient.
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

async fn allergies_of_a_patient_end_to_end(f: Fixture) {
    let (a, p) = emr_with_patient(&f).await;
    let q = a
        .insert_patient(&patient("Martin", "Anne", "1980-01-01"))
        .await
        .unwrap();
    let t = a.table("allergies").await.unwrap();
    let pen = t
        .insert(
            &NewRow::child_of(p)
                .set("substance", "Penicillin")
                .set("reaction", "Hives, within the hour")
                .set("recorded_on", "2019-05"),
        )
        .await
        .unwrap();
    let ids = t
        .insert_many(&[
            allergy(p, "Latex"),
            NewRow::child_of(q)
                .set("substance", "  PENICILLIN ")
                .set("reaction", "Anaphylaxis")
                .set("recorded_on", "2001-02-03"),
        ])
        .await
        .unwrap();
    let r = t.get(pen).await.unwrap().unwrap();
    assert_eq!(r.text("substance"), Some("Penicillin"));
    assert_eq!(r.text("recorded_on"), Some("2019-05"));
    assert_eq!(r.parent, Some(p));
    assert!(r.withheld.is_empty());
    // Exact search through the index, across case and spacing.
    let found = t
        .find(&[("substance", Value::from("penicillin"))])
        .await
        .unwrap();
    let mut got: Vec<Id> = found.iter().map(|r| r.id).collect();
    got.sort();
    let mut want = vec![pen, ids[1]];
    want.sort();
    assert_eq!(got, want);
    assert!(t
        .find(&[("substance", Value::from("penicilline"))])
        .await
        .unwrap()
        .is_empty());
    assert_eq!(t.children(p).await.unwrap().len(), 2);
    assert_eq!(t.list(None, 10).await.unwrap().len(), 3);
    let first = t.list(None, 1).await.unwrap();
    assert_eq!(t.list(Some(first[0].id), 10).await.unwrap().len(), 2);
    // A scan reads the next page while it opens this one: every row, in
    // id order, once; a Break stops it.
    let mut pages = Vec::new();
    let seen = t
        .scan(2, |page| {
            pages.push(page.iter().map(|r| r.id).collect::<Vec<_>>());
            std::ops::ControlFlow::Continue(())
        })
        .await
        .unwrap();
    assert_eq!(seen, 3);
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
    let all: Vec<Id> = pages.concat();
    assert!(all.windows(2).all(|w| w[0] < w[1]));
    let seen = t
        .scan(2, |_| std::ops::ControlFlow::Break(()))
        .await
        .unwrap();
    assert_eq!(seen, 2);
    // A per-row table: the row's scope seals its reason.
    let ap = a.table("appointments").await.unwrap();
    let v = ap
        .insert(
            &NewRow::child_of(p)
                .scope("clinical")
                .set("starts_at", 1_800_000_000i64)
                .set("minutes", 20i64)
                .set("reason", "Follow-up")
                .set("confirmed", true),
        )
        .await
        .unwrap();
    let row = ap.get(v).await.unwrap().unwrap();
    assert_eq!(row.scope.as_deref(), Some("clinical"));
    assert_eq!(row.get("confirmed"), Some(&Value::Boolean(true)));
    assert_eq!(row.text("reason"), Some("Follow-up"));
    // Deleting a row; deleting the patient deletes their children.
    assert!(t.delete(ids[0]).await.unwrap());
    assert!(!t.delete(ids[0]).await.unwrap());
    a.delete_patient(&p).await.unwrap();
    assert!(t.children(p).await.unwrap().is_empty());
    assert!(ap.get(v).await.unwrap().is_none());
    assert_eq!(t.list(None, 10).await.unwrap().len(), 1);
}

async fn a_cell_moved_across_rows_columns_or_parents_is_tampered(f: Fixture) {
    let (a, p) = emr_with_patient(&f).await;
    let q = a
        .insert_patient(&patient("Martin", "Anne", "1980-01-01"))
        .await
        .unwrap();
    let t = a.table("allergies").await.unwrap();
    let row = |sub: &str, parent: Id| allergy(parent, sub);
    let x = t.insert(&row("Latex", p)).await.unwrap();
    let y = t.insert(&row("Iodine", p)).await.unwrap();
    let tampered = |e: Result<Option<medvault::vault::rows::Row>, Error>| {
        matches!(
            e,
            Err(Error::Tampered {
                table: "allergies",
                ..
            })
        )
    };
    let (xb, yb) = (x.as_bytes().to_vec(), y.as_bytes().to_vec());
    // Control: untouched rows open.
    assert!(t.get(y).await.unwrap().is_some());
    // Another row's cell.
    f.exec(
        "UPDATE allergies SET substance = (SELECT s FROM (SELECT substance AS s FROM allergies WHERE id = ?) AS o) WHERE id = ?",
        vec![Val::B(xb.clone()), Val::B(yb.clone())],
    )
    .await;
    assert!(tampered(t.get(y).await));
    // Another column of the same row.
    f.exec(
        "UPDATE allergies SET reaction = substance WHERE id = ?",
        vec![Val::B(xb.clone())],
    )
    .await;
    assert!(tampered(t.get(x).await));
    // Another parent.
    let z = t.insert(&row("Nickel", p)).await.unwrap();
    f.exec(
        "UPDATE allergies SET parent_id = ? WHERE id = ?",
        vec![Val::B(q.as_bytes().to_vec()), Val::B(z.as_bytes().to_vec())],
    )
    .await;
    assert!(tampered(t.get(z).await));
    // Another table: a prescription's drug put in an allergy.
    let pr = a.table("prescriptions").await.unwrap();
    let d = pr
        .insert(
            &NewRow::child_of(p)
                .set("drug", "Amoxicillin")
                .set("dosage", "500 mg")
                .set("started_on", "2024-01-02"),
        )
        .await
        .unwrap();
    let w = t.insert(&row("Pollen", p)).await.unwrap();
    f.exec(
        "UPDATE allergies SET substance = (SELECT drug FROM prescriptions WHERE id = ?) WHERE id = ?",
        vec![Val::B(d.as_bytes().to_vec()), Val::B(w.as_bytes().to_vec())],
    )
    .await;
    assert!(tampered(t.get(w).await));
}

async fn a_user_without_the_scope_sees_the_columns_withheld(f: Fixture) {
    let (a, p) = emr_with_patient(&f).await;
    let t = a.table("prescriptions").await.unwrap();
    let id = t
        .insert(
            &NewRow::child_of(p)
                .set("drug", "Amoxicillin")
                .set("dosage", "500 mg")
                .set("started_on", "2024-01-02")
                .set("price_cents", 1250i64),
        )
        .await
        .unwrap();
    let clerk = f.user(&a, "clerk", &["billing"]).await;
    let r = clerk
        .table("prescriptions")
        .await
        .unwrap()
        .get(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.withheld, ["drug", "dosage"]);
    assert!(r.get("drug").is_none());
    assert_eq!(r.get("price_cents"), Some(&Value::Integer(1250)));
    assert_eq!(r.text("started_on"), Some("2024-01-02"));
    // Searching a scope one does not hold is NoAccess, not an empty answer.
    let err = clerk
        .table("prescriptions")
        .await
        .unwrap()
        .find(&[("drug", Value::from("amoxicillin"))])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoAccess(_)), "{err}");
    let doc = f.user(&a, "doc", &["clinical"]).await;
    let r = doc
        .table("prescriptions")
        .await
        .unwrap()
        .get(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.withheld, ["price_cents"]);
    assert_eq!(r.text("drug"), Some("Amoxicillin"));
}

async fn bad_rows_are_typed_errors_and_change_nothing(f: Fixture) {
    let (a, p) = emr_with_patient(&f).await;
    assert!(matches!(
        a.table("alergies").await,
        Err(Error::UnknownTable(_))
    ));
    let t = a.table("allergies").await.unwrap();
    let good = || allergy(p, "Latex");
    type Check = fn(&Error) -> bool;
    let cases: Vec<(NewRow, Check)> = vec![
        (good().set("severity", 3i64), |e| {
            matches!(e, Error::UnknownColumn { .. })
        }),
        (good().set("substance", 7i64), |e| {
            matches!(e, Error::WrongType { .. })
        }),
        (good().set("recorded_on", 2020i64), |e| {
            matches!(e, Error::WrongType { .. })
        }),
        (good().set("recorded_on", "2020-13"), |e| {
            matches!(e, Error::BadDate)
        }),
        (good().set("substance", "x".repeat(201)), |e| {
            matches!(e, Error::TooLong { .. })
        }),
        (good().set("reaction", Value::Null), |e| {
            matches!(e, Error::MissingValue { .. })
        }),
        (
            NewRow {
                parent: None,
                ..good()
            },
            |e| matches!(e, Error::MissingValue { .. }),
        ),
        (good().scope("clinical"), |e| matches!(e, Error::Refused(_))),
        (
            NewRow {
                parent: Some(Id::random()),
                ..good()
            },
            |e| matches!(e, Error::NoSuchRow { .. }),
        ),
    ];
    for (row, ok) in cases {
        // A bad row among good ones: nothing of the batch is written.
        let err = t.insert_many(&[good(), row]).await.unwrap_err();
        assert!(ok(&err), "{err}");
        assert!(!err.to_string().contains("Latex"), "{err}");
    }
    assert!(t.list(None, 10).await.unwrap().is_empty());
    let err = t
        .find(&[("reaction", Value::from("rash"))])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoIndex { .. }), "{err}");
    let ap = a.table("appointments").await.unwrap();
    let no_scope = NewRow::child_of(p)
        .set("starts_at", 1i64)
        .set("minutes", 5i64)
        .set("reason", "Check-up")
        .set("confirmed", false);
    assert!(matches!(
        ap.insert(&no_scope).await,
        Err(Error::MissingValue { .. })
    ));
    assert!(matches!(
        ap.insert(&no_scope.clone().scope("nope")).await,
        Err(Error::UnknownScope(_))
    ));
    assert!(ap.insert(&no_scope.scope("billing")).await.is_ok());
}

async fn the_no_plaintext_scan_covers_application_tables(f: Fixture) {
    let (a, p) = emr_with_patient(&f).await;
    let marker = "Zqxpenicil";
    a.table("allergies")
        .await
        .unwrap()
        .insert(
            &NewRow::child_of(p)
                .set("substance", marker)
                .set("reaction", marker)
                .set("recorded_on", "2019"),
        )
        .await
        .unwrap();
    assert!(!f.leaks(marker), "an encrypted cell leaked");
    // Control: the scan reads the new table's cells (a plain column).
    f.exec(
        "UPDATE allergies SET recorded_on = ?",
        vec![Val::T(marker.into())],
    )
    .await;
    assert!(f.leaks(marker), "the scan does not see allergies");
}

async fn rows_map_to_the_applications_own_types(f: Fixture) {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Allergy {
        parent: String,
        substance: String,
        reaction: String,
        recorded_on: Option<String>,
    }
    let (a, p) = emr_with_patient(&f).await;
    let t = a.table("allergies").await.unwrap();
    let mine = Allergy {
        parent: p.to_string(),
        substance: "Latex".into(),
        reaction: "Rash".into(),
        recorded_on: Some("2021-07".into()),
    };
    let id = t.insert_serde(&mine).await.unwrap();
    let back: Allergy = t.get(id).await.unwrap().unwrap().deserialize().unwrap();
    assert_eq!(back, mine);
    let json = t.get(id).await.unwrap().unwrap().to_json();
    assert_eq!(json["id"], id.to_string());
    assert_eq!(json["substance"], "Latex");
}

async fn an_update_reseals_and_reindexes(f: Fixture) {
    let (a, p) = emr_with_patient(&f).await;
    let t = a.table("allergies").await.unwrap();
    let id = t.insert(&allergy(p, "Latex")).await.unwrap();
    let before = f
        .blob(
            "SELECT substance FROM allergies WHERE id = ?",
            vec![Val::B(id.as_bytes().to_vec())],
        )
        .await;
    let changes = [("substance".to_string(), Value::from("Iodine"))].into();
    assert!(t.update(id, &changes).await.unwrap());
    let after = f
        .blob(
            "SELECT substance FROM allergies WHERE id = ?",
            vec![Val::B(id.as_bytes().to_vec())],
        )
        .await;
    assert_ne!(before, after);
    let r = t.get(id).await.unwrap().unwrap();
    assert_eq!(r.text("substance"), Some("Iodine"));
    assert_eq!(r.text("reaction"), Some("Rash"));
    assert!(t
        .find(&[("substance", Value::from("latex"))])
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        t.find(&[("substance", Value::from("iodine"))])
            .await
            .unwrap()
            .len(),
        1
    );
    // Unknown rows, unknown columns, bad values: typed, nothing changed.
    assert!(!t.update(Id::random(), &changes).await.unwrap());
    let bad = [("severity".to_string(), Value::from(1i64))].into();
    assert!(matches!(
        t.update(id, &bad).await,
        Err(Error::UnknownColumn { .. })
    ));
    let bad = [("reaction".to_string(), Value::Null)].into();
    assert!(matches!(
        t.update(id, &bad).await,
        Err(Error::MissingValue { .. })
    ));
    assert_eq!(
        t.get(id).await.unwrap().unwrap().text("reaction"),
        Some("Rash")
    );
    // A user who cannot read the whole row cannot rewrite it.
    let clerk = f.user(&a, "clerk", &["billing"]).await;
    let err = clerk
        .table("allergies")
        .await
        .unwrap()
        .update(id, &changes)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoAccess(_)), "{err}");
}

async fn a_row_nothing_sealed_vouches_for_is_not_rewritten(f: Fixture) {
    let a = f.admin().await;
    let text = "format = 2
[[table]]
name = \"vitals\"
parent = \"patients\"
[[column]]
table = \"vitals\"
column = \"remark\"
scope = \"clinical\"
kind = \"text\"
max_bytes = 100
optional = true
[[column]]
table = \"vitals\"
column = \"pulse\"
plain = \"integer\"
";
    a.apply_schema(text).await.unwrap();
    let p = a
        .insert_patient(&patient("Dupont", "Jean", "1970-03-02"))
        .await
        .unwrap();
    let t = a.table("vitals").await.unwrap();
    let bare = t
        .insert(&NewRow::child_of(p).set("pulse", 60i64))
        .await
        .unwrap();
    let sealed = t
        .insert(
            &NewRow::child_of(p)
                .set("pulse", 70i64)
                .set("remark", "calm"),
        )
        .await
        .unwrap();
    let changes = [("remark".to_string(), Value::from("after a run"))].into();
    // Nothing sealed vouches for the bare row's parent: not rewritten.
    assert!(matches!(
        t.update(bare, &changes).await,
        Err(Error::Refused(_))
    ));
    assert!(t.update(sealed, &changes).await.unwrap());
}

/// Past 500 rows, insert_many streams sealed chunks to the store inside one
/// transaction: a bad row in a later chunk leaves nothing written.
async fn many_rows_stream_in_one_transaction(f: Fixture) {
    let (a, p) = emr_with_patient(&f).await;
    let t = a.table("allergies").await.unwrap();
    let rows = |n: usize| -> Vec<NewRow> {
        (0..n)
            .map(|i| allergy(p, &format!("Substance {i}")))
            .collect()
    };
    let mut bad = rows(1200);
    bad[1100] = bad[1100].clone().set("recorded_on", "2020-13");
    let err = t.insert_many(&bad).await.unwrap_err();
    assert!(matches!(err, Error::BadDate), "{err}");
    assert_eq!(f.int("SELECT count(*) FROM allergies", vec![]).await, 0);
    let ids = t.insert_many(&rows(1200)).await.unwrap();
    assert_eq!(ids.len(), 1200);
    assert_eq!(f.int("SELECT count(*) FROM allergies", vec![]).await, 1200);
    let found = t
        .find(&[("substance", Value::from("substance 1111"))])
        .await
        .unwrap();
    assert_eq!(found.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[1111]]);
}

/// `patients` and `notes` through the row API: the same rows as the
/// patient and note API (both ways), an application's insurance number
/// written, searched, updated and kept by the patient API's update;
/// medvault's own columns filled in and refused as input; notes only
/// added.
async fn patients_are_served_by_the_row_api_with_their_own_rules(f: Fixture) {
    let (a, p) = emr_with_patient(&f).await;
    let t = a.table("patients").await.unwrap();
    // A patient of the patient API, read here.
    let row = t.get(p).await.unwrap().unwrap();
    assert_eq!(row.text("family_name"), Some("Dupont"));
    assert_eq!(row.text("given_names"), Some("Jean"));
    assert_eq!(row.text("born"), Some("1970-03-02"));
    assert_eq!(row.text("sex"), Some("F"));
    assert_eq!(row.text("author"), Some("admin"));
    assert_eq!(row.get("insurance_number"), Some(&Value::Null));
    assert!(row.withheld.is_empty());
    // A patient written here, read by the patient API and found by both.
    let before = chrono_now();
    let q = t
        .insert(
            &NewRow::new()
                .set("family_name", "Lefèvre")
                .set("given_names", "")
                .set("born", "1955-07")
                .set("sex", "m")
                .set("insurance_number", "1 55 07 75 123 456"),
        )
        .await
        .unwrap();
    let got = a.get_patient(&q).await.unwrap();
    assert_eq!(
        (got.family_name.as_str(), got.born.as_str(), got.sex),
        ("Lefèvre", "1955-07", medvault::Sex::M)
    );
    let stored = t.get(q).await.unwrap().unwrap();
    assert_eq!(stored.text("author"), Some("admin"));
    let created = match stored.get("created_at") {
        Some(Value::Integer(c)) => *c,
        other => panic!("{other:?}"),
    };
    assert!(created >= before);
    let found = a
        .find_patients(&medvault::PatientQuery {
            family_name: Some("LEFEVRE".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.iter().map(|p| p.id).collect::<Vec<_>>(), [q]);
    let by_number = t
        .find(&[("insurance_number", Value::from("155077512-3456"))])
        .await
        .unwrap();
    assert_eq!(by_number.iter().map(|r| r.id).collect::<Vec<_>>(), [q]);
    // The patient API's update keeps the application's column...
    a.update_patient(&q, &patient("Lefevre", "Paul", "1955-07-14"))
        .await
        .unwrap();
    let after = t.get(q).await.unwrap().unwrap();
    assert_eq!(after.text("given_names"), Some("Paul"));
    assert_eq!(after.text("insurance_number"), Some("1 55 07 75 123 456"));
    // ...and this one keeps the patient API's fields.
    let mut change = std::collections::BTreeMap::new();
    change.insert("insurance_number".to_string(), Value::from("2 55"));
    assert!(t.update(q, &change).await.unwrap());
    let got = a.get_patient(&q).await.unwrap();
    assert_eq!(
        (got.family_name.as_str(), got.given_names.as_str()),
        ("Lefevre", "Paul")
    );
    assert_eq!(
        t.get(q).await.unwrap().unwrap().get("author"),
        after.get("author")
    );
    // medvault's own columns, a bad sex, an empty family name: typed
    // errors, nothing written.
    let good = || {
        NewRow::new()
            .set("family_name", "Bad")
            .set("given_names", "Row")
            .set("born", "1990")
            .set("sex", "F")
    };
    for (bad, what) in [
        (good().set("author", "mallory"), "author"),
        (good().set("created_at", 0_i64), "created_at"),
        (good().set("updated_at", 0_i64), "updated_at"),
    ] {
        let err = t.insert(&bad).await.unwrap_err();
        assert!(
            matches!(&err, Error::FilledByMedvault { column, .. } if column == what),
            "{err}"
        );
    }
    assert!(matches!(
        t.insert(&good().set("sex", "Q")).await,
        Err(Error::BadSex)
    ));
    assert!(matches!(
        t.insert(&good().set("family_name", " - ")).await,
        Err(Error::EmptyValue(_))
    ));
    let mut forge = std::collections::BTreeMap::new();
    forge.insert("author".to_string(), Value::from("mallory"));
    assert!(matches!(
        t.update(q, &forge).await,
        Err(Error::FilledByMedvault { .. })
    ));
    assert_eq!(f.patient_count().await, 2);
    // Notes: the row API and add_note write the same rows; medvault fills
    // in the author, the time and the order; a note is never changed or
    // deleted.
    a.add_note(&p, "Seen for a cough", None).await.unwrap();
    let notes = a.table("notes").await.unwrap();
    notes
        .insert(
            &NewRow::child_of(p)
                .scope("personal")
                .set("body", "Call back on Monday"),
        )
        .await
        .unwrap();
    let listed = notes.children(p).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|n| n.text("author") == Some("admin")));
    let typed = a.list_notes(&p, None).await.unwrap();
    assert_eq!(
        typed
            .notes
            .iter()
            .map(|n| (n.body.as_str(), n.scope.as_str()))
            .collect::<Vec<_>>(),
        [
            ("Seen for a cough", "clinical"),
            ("Call back on Monday", "personal:admin")
        ]
    );
    let seqs: Vec<i64> = [&typed.notes[0], &typed.notes[1]]
        .iter()
        .map(|n| {
            match listed
                .iter()
                .find(|r| r.id == n.id)
                .and_then(|r| r.get("seq"))
            {
                Some(Value::Integer(s)) => *s,
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert!(seqs[0] < seqs[1], "{seqs:?}");
    assert!(matches!(
        notes
            .insert(
                &NewRow::child_of(p)
                    .scope("clinical")
                    .set("body", "x")
                    .set("seq", 1_i64)
            )
            .await,
        Err(Error::FilledByMedvault { .. })
    ));
    let mut edit = std::collections::BTreeMap::new();
    edit.insert("body".to_string(), Value::from("rewritten"));
    assert!(matches!(
        notes.update(listed[0].id, &edit).await,
        Err(Error::AppendOnly(_))
    ));
    assert!(matches!(
        notes.delete(listed[0].id).await,
        Err(Error::AppendOnly(_))
    ));
    // Deleting a patient here deletes their notes.
    assert!(t.delete(p).await.unwrap());
    assert!(notes.children(p).await.unwrap().is_empty());
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The built-in tables keep envelope v1: a patient's cell moved to another
/// patient, or to another column, and a note moved to another patient or
/// re-attributed to another author, are `Tampered` through the row API as
/// through the patient and note API.
async fn built_in_cells_moved_across_rows_are_tampered(f: Fixture) {
    let (a, p) = emr_with_patient(&f).await;
    let q = a
        .insert_patient(&patient("Martin", "Anne", "1980-01-01"))
        .await
        .unwrap();
    let t = a.table("patients").await.unwrap();
    let notes = a.table("notes").await.unwrap();
    let n = a.add_note(&q, "Private", None).await.unwrap();
    let (pb, qb, nb) = (
        p.as_bytes().to_vec(),
        q.as_bytes().to_vec(),
        n.as_bytes().to_vec(),
    );
    // Control: untouched rows open.
    assert!(t.get(p).await.unwrap().is_some());
    assert_eq!(notes.children(q).await.unwrap().len(), 1);
    let tampered = |e: &Result<Option<medvault::vault::rows::Row>, Error>, table: &str| matches!(e, Err(Error::Tampered { table: t, .. }) if *t == table);
    f.exec(
        "UPDATE patients SET given_names = family_name WHERE id = ?",
        vec![Val::B(qb.clone())],
    )
    .await;
    assert!(tampered(&t.get(q).await, "patients"));
    f.exec(
        "UPDATE patients SET family_name = (SELECT s FROM (SELECT family_name AS s FROM patients WHERE id = ?) AS o) WHERE id = ?",
        vec![Val::B(qb.clone()), Val::B(pb.clone())],
    )
    .await;
    assert!(tampered(&t.get(p).await, "patients"));
    f.exec(
        "UPDATE notes SET author = 'someone else' WHERE id = ?",
        vec![Val::B(nb.clone())],
    )
    .await;
    assert!(tampered(&notes.get(n).await, "notes"));
    f.exec(
        "UPDATE notes SET author = 'admin', patient_id = ? WHERE id = ?",
        vec![Val::B(pb.clone()), Val::B(nb.clone())],
    )
    .await;
    assert!(tampered(&notes.get(n).await, "notes"));
    f.exec(
        "UPDATE notes SET patient_id = ? WHERE id = ?",
        vec![Val::B(qb), Val::B(nb)],
    )
    .await;
    assert!(notes.get(n).await.unwrap().is_some());
}

/// A column an application adds to `patients` under another scope
/// (billing): a clinician without that scope still reads, finds and lists
/// patients. Updating one is `NoAccess`: the new version of the row is
/// signed by its author alone (FORMAT.md §5.8), billing cell included, so
/// it needs the write right under every scope of the row. Nothing
/// changes; with billing granted, the same update goes through.
async fn a_patient_column_of_another_scope_does_not_block_the_patient_api(f: Fixture) {
    let (a, p) = emr_with_patient(&f).await;
    let with_billing = format!(
        "{EMR}\n[[column]]\ntable = \"patients\"\ncolumn = \"billing_ref\"\nscope = \"billing\"\n\
         kind = \"code\"\nmax_bytes = 32\npadding = {{ block = 32 }}\noptional = true\n"
    );
    a.apply_schema(&with_billing).await.unwrap();
    let mut set = std::collections::BTreeMap::new();
    set.insert("billing_ref".to_string(), Value::from("INV-2024-17"));
    let pt = a.table("patients").await.unwrap();
    assert!(pt.update(p, &set).await.unwrap());
    let doc = f.user(&a, "doc", &["identity", "clinical"]).await;
    // Control: the column is withheld from the clinician.
    let row = doc
        .table("patients")
        .await
        .unwrap()
        .get(p)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.withheld, ["billing_ref"]);
    assert_eq!(doc.get_patient(&p).await.unwrap().family_name, "Dupont");
    let q = medvault::PatientQuery {
        family_name: Some("dupont".into()),
        ..Default::default()
    };
    assert_eq!(doc.find_patients(&q).await.unwrap().len(), 1);
    assert_eq!(doc.list_patients(None, 10).await.unwrap().patients.len(), 1);
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
            matches!(&err, Error::NoAccess(s) if s == "billing"),
            "{err}"
        );
    }
    assert_eq!(
        pt.get(p).await.unwrap().unwrap().text("given_names"),
        Some("Jean")
    );
    // Control: with billing granted, the update is theirs to make.
    a.grant("doc", "billing").await.unwrap();
    doc.update_patient(&p, &patient("Dupont", "Jean-Marc", "1970-03-02"))
        .await
        .unwrap();
    // The billing value is as the admin stored it; the update is there.
    let row = pt.get(p).await.unwrap().unwrap();
    assert_eq!(row.text("billing_ref"), Some("INV-2024-17"));
    assert_eq!(row.text("given_names"), Some("Jean-Marc"));
    assert!(a.verify_store().await.unwrap().problems.is_empty());
}

/// A search in every order the example schema's prescriptions offer (by
/// id; by a plain date the store orders, with and without NULLs; by an
/// encrypted integer and an encrypted text the client orders), each
/// ascending and descending, limited and paged with `Order::after`: the
/// same rows, in the same order, as sorting the matches here.
async fn searches_come_back_in_the_order_and_number_asked(f: Fixture) {
    use medvault::index::canonical::text;
    use medvault::vault::rows::Order;
    use std::cmp::Ordering;
    let (a, p) = emr_with_patient(&f).await;
    let t = a.table("prescriptions").await.unwrap();
    let dosages = ["500 mg", "250 MG", "Éventuellement 1 g", "1 g", "a", "A  b"];
    // (drug, started, ended, price, dosage) of each row.
    type Made = (bool, String, Option<String>, Option<i64>, &'static str);
    let made: Vec<Made> = (0..240i64)
        .map(|i| {
            (
                i % 6 != 5,
                format!("2024-{:02}-{:02}", 1 + i % 3, 1 + i % 7),
                (i % 4 != 0).then(|| format!("2025-01-{:02}", 1 + i % 5)),
                (i % 9 != 0).then_some((i * 37) % 23 - 11),
                dosages[(i % 6) as usize],
            )
        })
        .collect();
    let rows: Vec<NewRow> = made
        .iter()
        .map(|(amox, started, ended, price, dosage)| {
            let mut r = NewRow::child_of(p)
                .set("drug", if *amox { "Amoxicillin" } else { "Paracetamol" })
                .set("dosage", *dosage)
                .set("started_on", started.as_str());
            if let Some(e) = ended {
                r = r.set("ended_on", e.as_str());
            }
            if let Some(c) = price {
                r = r.set("price_cents", *c);
            }
            r
        })
        .collect();
    let ids = t.insert_many(&rows).await.unwrap();
    let amox = [("drug", Value::from("amoxicillin"))];
    // The matches in `order` of `column`, sorted here: no value first,
    // ties by id.
    let sorted = |column: Option<&str>, descending: bool| -> Vec<Id> {
        let mut m: Vec<(&Made, Id)> = made
            .iter()
            .zip(&ids)
            .filter(|(m, _)| m.0)
            .map(|(m, id)| (m, *id))
            .collect();
        m.sort_by(|(x, xi), (y, yi)| {
            let o = match column {
                Some("started_on") => x.1.cmp(&y.1),
                Some("ended_on") => x.2.cmp(&y.2),
                Some("price_cents") => x.3.cmp(&y.3),
                Some("dosage") => text(x.4).cmp(&text(y.4)),
                _ => Ordering::Equal,
            };
            let o = o.then(xi.cmp(yi));
            if descending {
                o.reverse()
            } else {
                o
            }
        });
        m.into_iter().map(|(_, id)| id).collect()
    };
    let got_ids =
        |rows: Vec<medvault::vault::rows::Row>| rows.iter().map(|r| r.id).collect::<Vec<Id>>();
    let mut compared = 0;
    for column in [
        None,
        Some("started_on"),
        Some("ended_on"),
        Some("price_cents"),
        Some("dosage"),
    ] {
        for descending in [false, true] {
            let mut order = column.map_or_else(Order::by_id, Order::by);
            if descending {
                order = order.descending();
            }
            let want = sorted(column, descending);
            assert_eq!(want.len(), 200);
            let all = got_ids(t.find_ordered(&amox, &order).await.unwrap());
            assert_eq!(all, want, "{column:?} {descending}");
            for limit in [1u32, 7, 150, 1000] {
                let got = got_ids(
                    t.find_ordered(&amox, &order.clone().limit(limit))
                        .await
                        .unwrap(),
                );
                let n = want.len().min(limit as usize);
                assert_eq!(got, want[..n], "{column:?} {descending} {limit}");
            }
            // Page by page, each after the last row of the one before.
            let mut pages = Vec::new();
            let mut next = order.clone().limit(23);
            loop {
                let page = t.find_ordered(&amox, &next).await.unwrap();
                let Some(last) = page.last() else { break };
                next = order.clone().limit(23).after(last);
                pages.extend(page.iter().map(|r| r.id));
            }
            assert_eq!(pages, want, "{column:?} {descending} paged");
            compared += 1;
        }
    }
    assert_eq!(compared, 10);
    // The id order is find's; "id" names it too.
    assert_eq!(
        got_ids(t.find(&amox).await.unwrap()),
        got_ids(t.find_ordered(&amox, &Order::by("id")).await.unwrap())
    );
    // A user without the billing scope: the prices are withheld, so they
    // sort as no value, by id.
    let doc = f.user(&a, "doc", &["clinical"]).await;
    let dt = doc.table("prescriptions").await.unwrap();
    let got = got_ids(
        dt.find_ordered(&amox, &Order::by("price_cents").descending())
            .await
            .unwrap(),
    );
    assert_eq!(got, sorted(None, true));
    // A partial date orders as its text, on both stores: a year before
    // its months, a month before its days.
    let al = a.table("allergies").await.unwrap();
    let when = [
        "2019-05",
        "2019",
        "2020",
        "2019-05-02",
        "2018-12-31",
        "2019-12",
    ];
    let rows: Vec<NewRow> = (0..24)
        .map(|i| {
            NewRow::child_of(p)
                .set("substance", "Latex")
                .set("reaction", "Rash")
                .set("recorded_on", when[i % when.len()])
        })
        .collect();
    let made = al.insert_many(&rows).await.unwrap();
    let mut want: Vec<(&str, Id)> = made
        .iter()
        .enumerate()
        .map(|(i, id)| (when[i % when.len()], *id))
        .collect();
    want.sort();
    let latex = [("substance", Value::from("latex"))];
    let mut got: Vec<(String, Id)> = Vec::new();
    let mut next = Order::by("recorded_on").limit(5);
    loop {
        let page = al.find_ordered(&latex, &next).await.unwrap();
        let Some(last) = page.last() else { break };
        next = Order::by("recorded_on").limit(5).after(last);
        got.extend(
            page.iter()
                .map(|r| (r.text("recorded_on").unwrap().to_owned(), r.id)),
        );
    }
    let got: Vec<(&str, Id)> = got.iter().map(|(w, id)| (w.as_str(), *id)).collect();
    assert_eq!(got, want);
    // Bad orders are typed errors, before the store is asked.
    let err = t
        .find_ordered(&amox, &Order::by("no_such_column"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownColumn { .. }), "{err}");
    let err = t
        .find_ordered(&amox, &Order::by_id().limit(0))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Refused(_)), "{err}");
}

/// A unique index: a second row with the same card (as typed otherwise),
/// two alike in one insert, an update onto another row's card, and a
/// duplicate during a rotation (the stored row under the older epoch, the
/// new one under the newer) are `NotUnique` and write nothing; rows with
/// no card, a row updated with its own card, and a card freed by a
/// delete are taken; the card finds its row.
async fn a_unique_index_refuses_a_second_row_with_the_same_value(f: Fixture) {
    use medvault::schema::IndexKind;
    use std::collections::BTreeMap;
    let a = f.admin().await;
    a.apply_schema(MEMBERS).await.unwrap();
    let t = a.table("members").await.unwrap();
    let card = |c: &str| NewRow::new().set("card", c);
    let count = || members_count(&a);
    let refused = |r: medvault::Result<Vec<Id>>| match r {
        Err(Error::NotUnique { table, index }) => {
            assert_eq!((table.as_str(), index.as_str()), ("members", "uq_card"));
        }
        other => panic!("expected NotUnique, got {other:?}"),
    };
    let first = t.insert(&card("AB-123")).await.unwrap();
    let second = t.insert(&card("CD 9")).await.unwrap();
    refused(t.insert(&card("ab 123")).await.map(|id| vec![id]));
    refused(t.insert_many(&[card("X1"), card("x-1")]).await);
    assert_eq!(count().await, 2, "nothing written");
    // No card: NULL, as many as wanted.
    t.insert_many(&[NewRow::new(), NewRow::new().set("note", "walk-in")])
        .await
        .unwrap();
    assert_eq!(count().await, 4);
    // Onto another row's card: refused, the row as it was.
    let to = |c: &str| BTreeMap::from([("card".to_owned(), Value::from(c))]);
    refused(t.update(second, &to("AB123")).await.map(|_| vec![second]));
    let got = t.get(second).await.unwrap().unwrap();
    assert_eq!(got.text("card"), Some("CD 9"));
    // Its own card again, with a note: taken.
    let mut own = to("ab-123");
    own.insert("note".into(), Value::from("renewed"));
    assert!(t.update(first, &own).await.unwrap());
    for how in [IndexKind::Unique, IndexKind::Equal] {
        let found = t.find_by(how, "card", &Value::from("AB123")).await.unwrap();
        assert_eq!(found.iter().map(|r| r.id).collect::<Vec<_>>(), [first]);
    }
    // A rotation stopped after its first batch (a patient): the members
    // are still under the older epoch, a new row goes under the newer.
    rotation_stopped_part_way(&a).await;
    let t = a.table("members").await.unwrap();
    refused(t.insert(&card("AB 123")).await.map(|id| vec![id]));
    refused(t.update(second, &to("AB-123")).await.map(|_| vec![second]));
    let fresh = t.insert(&card("EF-1")).await.unwrap();
    assert_eq!(count().await, 5);
    let report = a.rotate("identity").await.unwrap();
    assert!(report.finished);
    let t = a.table("members").await.unwrap();
    refused(t.insert(&card("EF1")).await.map(|id| vec![id]));
    let found = t.find(&[("card", Value::from("ef 1"))]).await.unwrap();
    assert_eq!(found.iter().map(|r| r.id).collect::<Vec<_>>(), [fresh]);
    // Deleted, its card is free.
    assert!(t.delete(first).await.unwrap());
    t.insert(&card("AB-123")).await.unwrap();
    assert_eq!(count().await, 5);
    // An application's unique index over the patients' own columns: the
    // typed patient API is refused too, one patient or two alike at once.
    let with_patients = format!(
        "{MEMBERS}\n[[index]]\ntable = \"patients\"\ncolumn = \"uq_patient\"\n\
         over = [\"family_name\", \"given_names\", \"born\"]\nkind = \"unique\"\n"
    );
    a.apply_schema(&with_patients).await.unwrap();
    let before = f.patient_count().await;
    let err = a
        .insert_patient(&patient("DUPONT", "jean 0", "1970-03-02"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotUnique { table, index } if table == "patients" && index == "uq_patient"),
        "{err}"
    );
    let twice = [
        patient("Martin", "Anne", "1980-01-01"),
        patient("Martin", "Anne", "1980-01-01"),
    ];
    let err = a.insert_patients(&twice).await.unwrap_err();
    assert!(matches!(err, Error::NotUnique { .. }), "{err}");
    assert_eq!(f.patient_count().await, before, "nothing written");
    a.insert_patients(&twice[..1]).await.unwrap();
}

/// A unique check is made only where it sees every stored value: a new
/// unique index filled over rows under both epochs of a half-done
/// rotation finds the duplicate there (the store's constraint sees one
/// epoch's tags at a time); while rows are not filled, writes are
/// `IndexNotFilled`; a writer missing a live epoch of the scope is
/// `UniqueUnchecked`. Each writes nothing, and each clears once the
/// cause is gone.
async fn a_unique_index_is_checked_only_where_every_value_is_seen(f: Fixture) {
    let a = f.admin().await;
    let without_index = members_unindexed();
    a.apply_schema(without_index).await.unwrap();
    let card = |c: &str| NewRow::new().set("card", c);
    let count = || members_count(&a);
    let t = a.table("members").await.unwrap();
    let older = t.insert(&card("Q-1")).await.unwrap();
    t.insert(&card("R-2")).await.unwrap();
    // A rotation stopped after its first batch (a patient): the members
    // stay under the older epoch; a row written now goes under the newer.
    rotation_stopped_part_way(&a).await;
    let t = a.table("members").await.unwrap();
    let newer = t.insert(&card("q 1")).await.unwrap();
    assert_eq!(f.epochs_of("members", "card").await.len(), 2);
    // The unique index added now: the two rows hold other tags, which the
    // store's constraint would take; the fill looks under both epochs.
    let err = a.apply_schema(MEMBERS).await.unwrap_err();
    match &err {
        Error::IndexNotFilled { index, cause, .. } => {
            assert_eq!(index, "members.uq_card");
            assert!(cause.contains("unique index uq_card"), "{cause}");
        }
        other => panic!("expected IndexNotFilled, got {other:?}"),
    }
    assert!(a.unfilled("members", "uq_card").await.unwrap() > 0);
    // Not filled: a write with a card cannot be checked, so it is refused;
    // one without a card is taken.
    let t = a.table("members").await.unwrap();
    let err = t.insert(&card("S-3")).await.unwrap_err();
    assert!(
        matches!(&err, Error::IndexNotFilled { index, .. } if index == "members.uq_card"),
        "{err}"
    );
    t.insert(&NewRow::new().set("note", "walk-in"))
        .await
        .unwrap();
    assert_eq!(count().await, 4);
    // Nor may an update of another column give an unfilled row its tag
    // unchecked (an update computes every index of the row).
    let note = std::collections::BTreeMap::from([("note".to_owned(), Value::from("moved"))]);
    let err = t.update(newer, &note).await.unwrap_err();
    assert!(
        matches!(&err, Error::IndexNotFilled { index, .. } if index == "members.uq_card"),
        "{err}"
    );
    assert_eq!(a.unfilled("members", "uq_card").await.unwrap(), 3);
    // The duplicate removed, the same file applied again fills the rest;
    // then the check holds and writes are taken.
    assert!(t.delete(newer).await.unwrap());
    a.apply_schema(MEMBERS).await.unwrap();
    assert_eq!(a.unfilled("members", "uq_card").await.unwrap(), 0);
    let t = a.table("members").await.unwrap();
    assert!(matches!(
        t.insert(&card("Q1")).await,
        Err(Error::NotUnique { .. })
    ));
    t.insert(&card("S-3")).await.unwrap();
    assert_eq!(count().await, 4);
    // A clerk holding only the newer epoch (the store withholds their
    // grant of the older one) cannot look under it: refused, nothing
    // written, whatever the card.
    let _ = f.user(&a, "clerk", &["identity"]).await;
    f.exec(
        "DELETE FROM grants WHERE grantee = 'clerk' AND scope_id = 1 AND epoch = 1",
        vec![],
    )
    .await;
    let clerk = f.login("clerk", "clerk pw").await.unwrap();
    let ct = clerk.table("members").await.unwrap();
    for c in ["Q 1", "T-4"] {
        let err = ct.insert(&card(c)).await.unwrap_err();
        assert!(
            matches!(&err, Error::UniqueUnchecked { table, index, scope }
                if table == "members" && index == "uq_card" && scope == "identity"),
            "{err}"
        );
    }
    assert_eq!(count().await, 4, "nothing written");
    // The rotation finished, the older epoch retired: the clerk's check
    // sees every row.
    assert!(a.rotate("identity").await.unwrap().finished);
    let ct = clerk.table("members").await.unwrap();
    assert!(matches!(
        ct.insert(&card("q-1")).await,
        Err(Error::NotUnique { .. })
    ));
    ct.insert(&card("T-4")).await.unwrap();
    assert_eq!(count().await, 5);
    let found = ct.find(&[("card", Value::from("Q1"))]).await.unwrap();
    assert_eq!(found.iter().map(|r| r.id).collect::<Vec<_>>(), [older]);
}

/// A unique index filled over more rows than a page, during a rotation:
/// a row of a later page under the older epoch whose value a row of the
/// first page holds under the newer one is found by looking the stored
/// tags up under every live epoch (two pages never meet in memory).
async fn a_unique_fill_finds_a_duplicate_filled_pages_before(f: Fixture) {
    const ROWS: usize = 520; // the fill reads pages of 500
    let a = f.admin().await;
    a.apply_schema(members_unindexed()).await.unwrap();
    let t = a.table("members").await.unwrap();
    let rows: Vec<NewRow> = (0..ROWS)
        .map(|i| NewRow::new().set("card", format!("C-{i}").as_str()))
        .collect();
    let older = t.insert_many(&rows).await.unwrap();
    // The older row with the largest id is in the last page.
    let (last, at) = older
        .iter()
        .zip(0..)
        .max_by_key(|(id, _)| id.as_bytes().to_vec())
        .map(|(id, i)| (*id, i))
        .unwrap();
    rotation_stopped_part_way(&a).await;
    // Its card again, under the newer epoch, on a row of the first page
    // (ids are random: written again until it is).
    let t = a.table("members").await.unwrap();
    let same = NewRow::new().set("card", format!("c {at}").as_str());
    loop {
        let newer = t.insert(&same).await.unwrap();
        let mut ids: Vec<Vec<u8>> = older.iter().map(|i| i.as_bytes().to_vec()).collect();
        ids.push(newer.as_bytes().to_vec());
        ids.sort();
        if ids.iter().position(|i| i == newer.as_bytes()).unwrap() < 500 {
            break;
        }
        assert!(t.delete(newer).await.unwrap());
    }
    assert_eq!(f.epochs_of("members", "card").await.len(), 2);
    let err = a.apply_schema(MEMBERS).await.unwrap_err();
    assert!(
        matches!(&err, Error::IndexNotFilled { index, cause, .. }
            if index == "members.uq_card" && cause.contains("unique index uq_card")),
        "{err}"
    );
    // The first page was filled, the second stopped at the duplicate.
    let unfilled = a.unfilled("members", "uq_card").await.unwrap();
    assert!((1..=21).contains(&unfilled), "{unfilled}");
    let t = a.table("members").await.unwrap();
    assert!(t.delete(last).await.unwrap());
    a.apply_schema(MEMBERS).await.unwrap();
    assert_eq!(a.unfilled("members", "uq_card").await.unwrap(), 0);
}

/// How many members rows the administrator lists.
async fn members_count(a: &medvault::Session) -> usize {
    a.table("members")
        .await
        .unwrap()
        .list(None, 1000)
        .await
        .unwrap()
        .len()
}
