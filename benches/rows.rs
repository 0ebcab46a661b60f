//! An application table through the generic row API (`Session::table`),
//! against the same columns in clear in a keyed SQLCipher file, in one run.
//!
//! The example EMR's `allergies` (examples/emr/schema.toml): two encrypted
//! text columns (substance, padded to 32-byte buckets; reaction, to a power
//! of two), a plain partial date, a 12-bit blind index on the substance,
//! and the patient each row belongs to. 20,000 rows over 2,000 patients
//! (`MEDVAULT_BENCH_ROWS` changes it): inserted with `insert_many` (one
//! transaction), and read back with `scan` in pages of 1,000 with both
//! fields opened (the next page is read while one is opened).

mod common;

use std::time::{Duration, Instant};

use common::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use medvault::vault::rows::NewRow;
use medvault::{Id, NewPatient, Sex};

const EMR: &str = include_str!("../examples/emr/schema.toml");
const DB_KEY: [u8; 32] = [0x5a; 32];
const SUBSTANCES: [&str; 8] = [
    "Penicillin",
    "Latex",
    "Peanuts",
    "Iodine",
    "Aspirin",
    "Sulfonamides",
    "Bee venom",
    "Nickel",
];

fn rows() -> usize {
    size_from_env("MEDVAULT_BENCH_ROWS", 20_000)
}

/// The rows: (patient index, substance, reaction, recorded on).
fn synthetic_rows(n: usize) -> Vec<(usize, String, String, String)> {
    let mut r = Lcg::new(7);
    (0..n)
        .map(|i| {
            let s = SUBSTANCES[(r.next() % 8) as usize];
            let reaction = format!(
                "Reaction {i}: hives and itching within {} minutes, resolved with antihistamines",
                r.next() % 90
            );
            (
                i / 10,
                s.to_string(),
                reaction,
                format!("{}", 1990 + r.next() % 35),
            )
        })
        .collect()
}

fn plain_db(path: &std::path::Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).expect("open");
    c.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex::encode(DB_KEY)))
        .expect("key");
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -65536;
         CREATE TABLE patients (id BLOB PRIMARY KEY NOT NULL);
         CREATE TABLE allergies (
             id BLOB PRIMARY KEY NOT NULL,
             parent_id BLOB NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
             substance TEXT NOT NULL, reaction TEXT NOT NULL, recorded_on TEXT NOT NULL);
         CREATE INDEX allergies_parent ON allergies (parent_id);
         CREATE INDEX allergies_substance ON allergies (substance);",
    )
    .expect("schema");
    c
}

fn plain_insert(
    c: &mut rusqlite::Connection,
    parents: &[Id],
    rows: &[(usize, String, String, String)],
) {
    let tx = c.transaction().expect("begin");
    {
        let mut st = tx
            .prepare_cached(
                "INSERT INTO allergies (id, parent_id, substance, reaction, recorded_on)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .expect("prepare");
        for (p, s, r, d) in rows {
            st.execute(rusqlite::params![
                Id::random().as_bytes().to_vec(),
                parents[*p].as_bytes().to_vec(),
                s,
                r,
                d
            ])
            .expect("insert");
        }
    }
    tx.commit().expect("commit");
}

fn plain_list(c: &rusqlite::Connection) -> usize {
    let mut after = Vec::new();
    let mut n = 0;
    loop {
        let mut st = c
            .prepare_cached(
                "SELECT id, parent_id, substance, reaction, recorded_on FROM allergies
                 WHERE id > ?1 ORDER BY id LIMIT 1000",
            )
            .expect("prepare");
        let page: Vec<(Vec<u8>, String, String)> = st
            .query_map([&after], |r| Ok((r.get(0)?, r.get(2)?, r.get(3)?)))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        let Some(last) = page.last() else { break };
        after = last.0.clone();
        n += page.len();
    }
    n
}

fn new_rows(parents: &[Id], rows: &[(usize, String, String, String)]) -> Vec<NewRow> {
    rows.iter()
        .map(|(p, s, r, d)| {
            NewRow::child_of(parents[*p])
                .set("substance", s.as_str())
                .set("reaction", r.as_str())
                .set("recorded_on", d.as_str())
        })
        .collect()
}

async fn vault_with_patients(dir: &std::path::Path, n: usize) -> (medvault::Session, Vec<Id>) {
    let (s, _) = new_vault(&sqlcipher_url(dir)).await;
    s.apply_schema(EMR).await.expect("apply");
    let mut parents = Vec::new();
    for i in 0..n {
        parents.push(
            s.insert_patient(&NewPatient {
                family_name: format!("Family{i}"),
                given_names: "Anne".into(),
                born: "1970-01-01".into(),
                sex: Sex::F,
            })
            .await
            .expect("patient"),
        );
    }
    (s, parents)
}

fn plain_parents(c: &rusqlite::Connection, parents: &[Id]) {
    for p in parents {
        c.execute(
            "INSERT INTO patients (id) VALUES (?1)",
            [p.as_bytes().to_vec()],
        )
        .expect("parent");
    }
}

fn bench(c: &mut Criterion) {
    let n = rows();
    let data = synthetic_rows(n);
    let patients = n.div_ceil(10);
    let rt = runtime();

    let mut g = c.benchmark_group(format!("application table insert {n} rows"));
    slow(&mut g, 30);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("plaintext, keyed SQLCipher", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let mut db = plain_db(&dir.path().join("plain.db"));
                let parents: Vec<Id> = (0..patients).map(|_| Id::random()).collect();
                plain_parents(&db, &parents);
                let t = Instant::now();
                plain_insert(&mut db, &parents, &data);
                total += t.elapsed();
            }
            total
        })
    });
    g.bench_function("medvault insert_many", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let (s, parents) = rt.block_on(vault_with_patients(dir.path(), patients));
                let rows = new_rows(&parents, &data);
                let t = Instant::now();
                let ids = rt
                    .block_on(async { s.table("allergies").await?.insert_many(&rows).await })
                    .expect("insert");
                total += t.elapsed();
                assert_eq!(ids.len(), n);
            }
            total
        })
    });
    g.finish();

    single_writes(c, &data, patients);

    let dir = tempfile::tempdir().expect("tempdir");
    let mut plain = plain_db(&dir.path().join("plain.db"));
    let parents: Vec<Id> = (0..patients).map(|_| Id::random()).collect();
    plain_parents(&plain, &parents);
    plain_insert(&mut plain, &parents, &data);
    let (s, parents) = rt.block_on(vault_with_patients(dir.path(), patients));
    rt.block_on(async {
        s.table("allergies")
            .await?
            .insert_many(&new_rows(&parents, &data))
            .await
    })
    .expect("insert");

    let mut g = c.benchmark_group(format!("application table list {n} rows (2 fields each)"));
    slow(&mut g, 20);
    g.throughput(Throughput::Elements(2 * n as u64));
    g.bench_function("plaintext, keyed SQLCipher", |b| {
        b.iter(|| assert_eq!(plain_list(&plain), n))
    });
    g.bench_function("medvault scan", |b| {
        b.iter(|| {
            let got = rt
                .block_on(async {
                    let t = s.table("allergies").await?;
                    let mut count = 0;
                    t.scan(1000, |page| {
                        count += page.len();
                        std::ops::ControlFlow::Continue(())
                    })
                    .await?;
                    Ok::<_, medvault::Error>(count)
                })
                .expect("list");
            assert_eq!(got, n)
        })
    });
    g.finish();

    author_signatures(c, n);
}

/// One row per transaction, as an application saving a form writes: what
/// the key-state checks cost each write (the probe before it and the
/// guard inside its transaction), beside plaintext single-row
/// transactions in the same run.
fn single_writes(c: &mut Criterion, data: &[(usize, String, String, String)], patients: usize) {
    const SINGLE: usize = 200;
    let rt = runtime();
    let data = &data[..SINGLE.min(data.len())];
    let mut g = c.benchmark_group(format!(
        "application table {SINGLE} inserts of one row each"
    ));
    slow(&mut g, 20);
    g.throughput(Throughput::Elements(data.len() as u64));
    g.bench_function("plaintext, keyed SQLCipher", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let mut db = plain_db(&dir.path().join("plain.db"));
                let parents: Vec<Id> = (0..patients).map(|_| Id::random()).collect();
                plain_parents(&db, &parents);
                let t = Instant::now();
                for row in data.chunks(1) {
                    plain_insert(&mut db, &parents, row);
                }
                total += t.elapsed();
            }
            total
        })
    });
    g.bench_function("medvault insert", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let (s, parents) = rt.block_on(vault_with_patients(dir.path(), patients));
                let rows = new_rows(&parents, data);
                let t = Instant::now();
                rt.block_on(async {
                    let t = s.table("allergies").await?;
                    for r in &rows {
                        t.insert(r).await?;
                    }
                    Ok::<_, medvault::Error>(())
                })
                .expect("insert");
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

/// What authenticating rows by their author costs (FORMAT.md §5.8), per
/// chunk of 500 rows (a bulk insert's transaction chunk), beside the
/// insert above in the same run: one signature per row, or one batch of
/// 500 leaves and a single signature; and a reader's check of a batch.
fn author_signatures(c: &mut Criterion, n: usize) {
    use medvault::keys::pgp;
    use medvault::vault::authorship::{
        leaf, sign_batch, GrantEvidence, RowVersion, Stored, KIND_WRITE,
    };
    const CHUNK: usize = 500;
    let vid = [7u8; 16];
    let (cert, tsk) = pgp::generate_unprotected("bench").expect("key");
    let mut signer = pgp::OpenKey::parse(&tsk)
        .expect("key")
        .signer()
        .expect("signer");
    // Stored values the size of an allergy row's.
    let parent = [1u8; 16];
    let substance = [2u8; 73];
    let reaction = [3u8; 169];
    let bi = [4u8; 2];
    let ids: Vec<[u8; 16]> = (0..CHUNK).map(|i| [(i % 251) as u8; 16]).collect();
    let leaves_of = |ids: &[[u8; 16]]| -> Vec<[u8; 32]> {
        ids.iter()
            .map(|id| {
                let v = RowVersion {
                    table: "allergies",
                    id,
                    version: 1,
                    author: "bench",
                    written_at: 1_795_000_000,
                };
                leaf(
                    &vid,
                    &v,
                    &[
                        ("patient_id", Stored::Bytes(&parent)),
                        ("substance", Stored::Bytes(&substance)),
                        ("reaction", Stored::Bytes(&reaction)),
                        ("recorded_on", Stored::Bytes(b"2001")),
                        ("bi_substance", Stored::Bytes(&bi)),
                    ],
                )
            })
            .collect()
    };
    let evidence = vec![GrantEvidence {
        scope_id: 2,
        epoch: 1,
        rights: "read-write".into(),
        wrapped_sha256: [5; 32],
        granter: "admin".into(),
        signed_at: 1_795_000_000,
        signature: vec![6; 120],
    }];
    let mut g = c.benchmark_group(format!(
        "author signatures per {CHUNK} rows (compare: insert of {n} rows above)"
    ));
    g.throughput(Throughput::Elements(CHUNK as u64));
    g.bench_function("one signature per row", |b| {
        b.iter(|| {
            for l in leaves_of(&ids) {
                signer.sign(&l).expect("sign");
            }
        })
    });
    g.bench_function("one batch: 500 leaves, one signature", |b| {
        b.iter(|| {
            let leaves = leaves_of(&ids);
            sign_batch(
                &vid,
                &mut signer,
                ("bench", 1_795_000_000),
                KIND_WRITE,
                &leaves,
                &evidence,
            )
            .expect("batch")
        })
    });
    let batch = sign_batch(
        &vid,
        &mut signer,
        ("bench", 1_795_000_000),
        KIND_WRITE,
        &leaves_of(&ids),
        &evidence,
    )
    .expect("batch");
    g.bench_function(
        "reader: 500 leaves recomputed, one signature verified",
        |b| {
            b.iter(|| {
                let leaves = leaves_of(&ids).concat();
                assert_eq!(leaves, batch.leaves);
                let msg = medvault::vault::trust::batch_record(&vid, &batch);
                assert!(pgp::verify(&cert, &msg, &batch.signature));
            })
        },
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
