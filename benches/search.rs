//! Searches at the desk on the SQLCipher store, beside plaintext SQLite
//! answering the same question from indexed clear columns, in one run:
//!
//! - **prefix**: the patients whose family name begins with the first 3
//!   letters of a patient's (`PatientQuery::family_prefix`, the
//!   `bi_family_prefix` index) against `family_name LIKE 'Dup%'` on an
//!   indexed column (`case_sensitive_like` and the pattern bound bare, so
//!   SQLite answers it with a range of the index: the plan of the statement
//!   timed is checked);
//! - **word**: the patients with one given name among theirs
//!   (`PatientQuery::given_name`, the `bi_given_words` index) against the
//!   same prefix `LIKE` (the baseline, though it answers another
//!   question, with fewer rows) and against what a plaintext
//!   application runs for a word, `given_names = ? OR LIKE '? %' OR LIKE
//!   '% ?' OR LIKE '% ? %'` (a scan: no SQL index answers it);
//! - **first 20**: the 20 most recently changed patients whose family name
//!   begins with the 3 letters (`PatientOrder::Recent`, ordered by the
//!   store, a page decrypted) and the first 20 by name (every match
//!   decrypted, then sorted), against `LIKE 'Dup%' ORDER BY updated_at
//!   DESC LIMIT 20`;
//! - **equal**: the family name and date of birth, for scale.
//!
//! 20,000 synthetic patients (`MEDVAULT_BENCH_PATIENTS`). Each run checks
//! the answers before timing them: the same given-name matches, and for a
//! prefix at least the plaintext ones (medvault folds accents and case:
//! "Lep" finds Lépont, which `LIKE 'Lep%'` does not).

mod common;

use std::hint::black_box;

use common::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use medvault::{PatientOrder, PatientQuery};

const PREFIXES: usize = 200;
/// The first rows a desk shows.
const FIRST: u32 = 20;
const WORDS: usize = 20;

fn patients() -> usize {
    size_from_env("MEDVAULT_BENCH_PATIENTS", 20_000)
}

/// Plaintext rows whose family name begins with `start`, through the
/// family-name index.
fn plain_prefix(db: &PlainSqlite, start: &str) -> usize {
    let mut st = db
        .conn
        .prepare_cached(
            "SELECT id, family_name, given_names, born, sex FROM patients
             WHERE family_name LIKE ?1",
        )
        .expect("prepare");
    // The pattern is the parameter itself: SQLite's LIKE optimisation
    // (a range of the index) needs it bare, not an expression.
    st.query_map([format!("{start}%")], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
        ))
    })
    .expect("query")
    .count()
}

/// The 20 most recently changed plaintext rows whose family name begins
/// with `start`.
fn plain_first(db: &PlainSqlite, start: &str) -> usize {
    let mut st = db
        .conn
        .prepare_cached(
            "SELECT id, family_name, given_names, born, sex FROM patients
             WHERE family_name LIKE ?1 ORDER BY updated_at DESC, id DESC LIMIT 20",
        )
        .expect("prepare");
    st.query_map([format!("{start}%")], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })
    .expect("query")
    .count()
}

/// Plaintext rows one of whose given names (space-separated) is `word`.
fn plain_word(db: &PlainSqlite, word: &str) -> usize {
    let mut st = db
        .conn
        .prepare_cached(
            "SELECT id, family_name, given_names, born, sex FROM patients
             WHERE given_names = ?1 OR given_names LIKE ?1 || ' %'
                OR given_names LIKE '% ' || ?1 OR given_names LIKE '% ' || ?1 || ' %'",
        )
        .expect("prepare");
    st.query_map([word], |r| r.get::<_, i64>(0))
        .expect("query")
        .count()
}

fn search(c: &mut Criterion) {
    let n = patients();
    let people = synthetic(n);
    let import = as_import(&people);
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = PlainSqlite::create(&dir.path().join("plain.db"), None);
    let mut plain = plain;
    plain.insert(&people);
    plain
        .conn
        .execute_batch("PRAGMA case_sensitive_like = ON;")
        .expect("pragma");
    // The statement timed, with a pattern bound as it is: a SEARCH of the
    // family-name index (a range), not a SCAN.
    let plan: String = plain
        .conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT id, family_name, given_names, born, sex FROM patients
             WHERE family_name LIKE ?1",
            ["Dup%"],
            |r| r.get(3),
        )
        .expect("plan");
    assert!(
        plan.contains("SEARCH") && plan.contains("patients_family_name"),
        "LIKE must search the index: {plan}"
    );
    let (s, _) = rt.block_on(new_vault(&sqlcipher_url(dir.path())));
    rt.block_on(s.insert_patients_with_notes(&import))
        .expect("insert");

    let targets = lookup_targets(&people, PREFIXES);
    // The first 3 letters as typed (the synthetic names are ASCII).
    let starts: Vec<String> = targets
        .iter()
        .map(|p| p.family.chars().take(3).collect())
        .collect();
    let words: Vec<String> = targets
        .iter()
        .take(WORDS)
        .map(|p| p.given.split(' ').next().unwrap_or("Marie").to_owned())
        .collect();
    // The answers agree before they are timed; how many patients each
    // search returns, on average, is printed beside the times.
    let (mut by_prefix, mut plain_by_prefix, mut by_word) = (0, 0, 0);
    for st in &starts {
        let mine = rt
            .block_on(s.find_patients(&PatientQuery {
                family_prefix: Some(st.clone()),
                ..Default::default()
            }))
            .expect("find");
        let theirs = plain_prefix(&plain, st);
        assert!(mine.len() >= theirs, "{st}");
        by_prefix += mine.len();
        plain_by_prefix += theirs;
    }
    for w in &words {
        let mine = rt
            .block_on(s.find_patients(&PatientQuery {
                given_name: Some(w.clone()),
                ..Default::default()
            }))
            .expect("find");
        assert_eq!(mine.len(), plain_word(&plain, w), "{w}");
        by_word += mine.len();
    }
    eprintln!(
        "patients a search returns, on average: prefix {} (plaintext LIKE {}), given name {}",
        by_prefix / PREFIXES,
        plain_by_prefix / PREFIXES,
        by_word / WORDS
    );

    let mut g = c.benchmark_group(format!("search prefix (3 letters) x{PREFIXES} in {n}"));
    slow(&mut g, 15);
    g.throughput(Throughput::Elements(PREFIXES as u64));
    g.bench_function("plaintext LIKE 'dup%', indexed", |b| {
        b.iter(|| {
            starts
                .iter()
                .map(|st| plain_prefix(&plain, st))
                .sum::<usize>()
        })
    });
    g.bench_function("medvault family_prefix", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut found = 0;
                for st in &starts {
                    let q = PatientQuery {
                        family_prefix: Some(st.clone()),
                        ..Default::default()
                    };
                    found += s.find_patients(black_box(&q)).await.expect("find").len();
                }
                found
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group(format!("search one given name x{WORDS} in {n}"));
    slow(&mut g, 15);
    g.throughput(Throughput::Elements(WORDS as u64));
    g.bench_function(
        "plaintext LIKE 'Dup%' (prefixes, the issue's baseline)",
        |b| {
            b.iter(|| {
                starts
                    .iter()
                    .take(WORDS)
                    .map(|st| plain_prefix(&plain, st))
                    .sum::<usize>()
            })
        },
    );
    g.bench_function("plaintext word LIKE (a scan)", |b| {
        b.iter(|| words.iter().map(|w| plain_word(&plain, w)).sum::<usize>())
    });
    g.bench_function("medvault given_name", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut found = 0;
                for w in &words {
                    let q = PatientQuery {
                        given_name: Some(w.clone()),
                        ..Default::default()
                    };
                    found += s.find_patients(black_box(&q)).await.expect("find").len();
                }
                found
            })
        })
    });
    g.finish();

    // The first 20 of a prefix search: the most recently changed (the
    // store orders them by the plain `updated_at` and answers a page), or
    // the first by name (every match decrypted, then sorted).
    let first = |st: &str, order: PatientOrder| PatientQuery {
        family_prefix: Some(st.to_owned()),
        order,
        limit: Some(FIRST),
        ..Default::default()
    };
    for st in starts.iter().take(20) {
        let all = rt
            .block_on(s.find_patients(&PatientQuery {
                family_prefix: Some(st.clone()),
                ..Default::default()
            }))
            .expect("find")
            .len();
        let want = all.min(FIRST as usize);
        for order in [PatientOrder::Recent, PatientOrder::Name] {
            let got = rt
                .block_on(s.find_patients(&first(st, order)))
                .expect("find");
            assert_eq!(got.len(), want, "{st}");
        }
        assert!(plain_first(&plain, st) <= want, "{st}");
    }
    let mut g = c.benchmark_group(format!("search prefix, first {FIRST} x{PREFIXES} in {n}"));
    slow(&mut g, 15);
    g.throughput(Throughput::Elements(PREFIXES as u64));
    g.bench_function(
        "plaintext LIKE 'dup%' ORDER BY updated_at DESC LIMIT 20",
        |b| {
            b.iter(|| {
                starts
                    .iter()
                    .map(|st| plain_first(&plain, st))
                    .sum::<usize>()
            })
        },
    );
    for (name, order) in [
        (
            "medvault family_prefix, most recent (store-ordered)",
            PatientOrder::Recent,
        ),
        (
            "medvault family_prefix, first by name (all decrypted)",
            PatientOrder::Name,
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut found = 0;
                    for st in &starts {
                        let q = first(st, order);
                        found += s.find_patients(black_box(&q)).await.expect("find").len();
                    }
                    found
                })
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group(format!("search family+born x{PREFIXES} in {n}"));
    slow(&mut g, 10);
    g.throughput(Throughput::Elements(PREFIXES as u64));
    g.bench_function("plaintext =, indexed", |b| {
        b.iter(|| {
            targets
                .iter()
                .map(|p| plain.find(&p.family, &p.born).len())
                .sum::<usize>()
        })
    });
    g.bench_function("medvault", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut found = 0;
                for p in &targets {
                    found += s
                        .find_patients(black_box(&query(p)))
                        .await
                        .expect("find")
                        .len();
                }
                found
            })
        })
    });
    g.finish();
}

criterion_group!(benches, search);
criterion_main!(benches);
