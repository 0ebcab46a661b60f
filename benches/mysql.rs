//! The MySQL/MariaDB store against plaintext columns on the same server:
//! 20,000 synthetic patients with a 300-byte note each, inserted in one
//! transaction; 10,000 lookups by family name + date of birth; listing all
//! patients with their names decrypted.
//!
//! The server is `MEDVAULT_BENCH_MYSQL_URL`, else `MEDVAULT_TEST_MYSQL_URL`,
//! else `mysql://root@127.0.0.1:3306/test`; the benchmark makes (and
//! drops, then makes again) the databases `medvault_bench` and
//! `medvault_bench_plain` beside the URL's own. BENCHMARKS.md has the
//! figures.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mysql_async::prelude::Queryable;

const LOOKUPS: usize = 10_000;
const PLAIN_DB: &str = "medvault_bench_plain";
const VAULT_DB: &str = "medvault_bench";

fn patients() -> usize {
    size_from_env("MEDVAULT_BENCH_MYSQL_PATIENTS", 20_000)
}

/// The plaintext baseline, indexed as medvault's blind indexes are.
const PLAIN_SCHEMA: &str = "
CREATE TABLE patients (
    id          BIGINT PRIMARY KEY NOT NULL,
    family_name VARCHAR(200) NOT NULL,
    given_names VARCHAR(200) NOT NULL,
    born        CHAR(10) NOT NULL,
    sex         CHAR(1) NOT NULL,
    author      VARCHAR(64) NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    INDEX patients_family_name (family_name),
    INDEX patients_given_names (given_names),
    INDEX patients_born (born),
    INDEX patients_family_born (family_name, born)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
CREATE TABLE notes (
    id         BIGINT PRIMARY KEY NOT NULL,
    patient_id BIGINT NOT NULL,
    scope_id   INT NOT NULL,
    body       TEXT NOT NULL,
    author     VARCHAR(64) NOT NULL,
    created_at BIGINT NOT NULL,
    INDEX notes_patient (patient_id, created_at),
    FOREIGN KEY (patient_id) REFERENCES patients (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
";

async fn plain_pool() -> mysql_async::Pool {
    let url = fresh_mysql_db(PLAIN_DB).await;
    let pool = mysql_async::Pool::new(url.as_str());
    let mut c = pool.get_conn().await.expect("connect");
    c.query_drop(PLAIN_SCHEMA).await.expect("schema");
    pool
}

/// One transaction, multi-row INSERTs of 500 rows (as medvault's store).
async fn plain_insert(pool: &mysql_async::Pool, people: &[Person]) {
    let mut c = pool.get_conn().await.expect("connect");
    let mut tx = c
        .start_transaction(Default::default())
        .await
        .expect("begin");
    for (k, chunk) in people.chunks(500).enumerate() {
        let ph = vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let mut v: Vec<mysql_async::Value> = Vec::with_capacity(chunk.len() * 8);
        for (i, p) in chunk.iter().enumerate() {
            let id = (k * 500 + i + 1) as i64;
            v.extend([
                id.into(),
                p.family.as_str().into(),
                p.given.as_str().into(),
                p.born.as_str().into(),
                p.sex_code().into(),
                ADMIN.into(),
                1_700_000_000i64.into(),
                1_700_000_000i64.into(),
            ]);
        }
        tx.exec_drop(
            format!(
                "INSERT INTO patients (id, family_name, given_names, born, sex, author, created_at, updated_at) VALUES {ph}"
            ),
            v,
        )
        .await
        .expect("insert patients");
    }
    for (k, chunk) in people.chunks(500).enumerate() {
        let ph = vec!["(?, ?, 2, ?, ?, ?)"; chunk.len()].join(", ");
        let mut v: Vec<mysql_async::Value> = Vec::with_capacity(chunk.len() * 5);
        for (i, p) in chunk.iter().enumerate() {
            let id = (k * 500 + i + 1) as i64;
            v.extend([
                id.into(),
                id.into(),
                p.note.as_str().into(),
                ADMIN.into(),
                1_700_000_000i64.into(),
            ]);
        }
        tx.exec_drop(
            format!(
                "INSERT INTO notes (id, patient_id, scope_id, body, author, created_at) VALUES {ph}"
            ),
            v,
        )
        .await
        .expect("insert notes");
    }
    tx.commit().await.expect("commit");
}

type Row = (i64, String, String, String, String);

async fn plain_find(pool: &mysql_async::Pool, family: &str, born: &str) -> Vec<Row> {
    let mut c = pool.get_conn().await.expect("connect");
    c.exec(
        "SELECT id, family_name, given_names, born, sex FROM patients
         WHERE family_name = ? AND born = ?",
        (family, born),
    )
    .await
    .expect("find")
}

async fn plain_list(pool: &mysql_async::Pool) -> usize {
    let mut c = pool.get_conn().await.expect("connect");
    let mut after = 0i64;
    let mut n = 0;
    loop {
        let page: Vec<Row> = c
            .exec(
                "SELECT id, family_name, given_names, born, sex FROM patients
                 WHERE id > ? ORDER BY id LIMIT 1000",
                (after,),
            )
            .await
            .expect("list");
        match page.last() {
            Some(last) => after = last.0,
            None => return n,
        }
        n += page.len();
    }
}

async fn vault() -> medvault::Session {
    new_vault(&fresh_mysql_db(VAULT_DB).await).await.0
}

fn store(c: &mut Criterion) {
    let n = patients();
    let people = synthetic(n);
    let import = as_import(&people);
    let rt = runtime();

    let mut g = c.benchmark_group(format!("mysql insert {n}"));
    slow(&mut g, 30);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("plaintext", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += rt.block_on(async {
                    let pool = plain_pool().await;
                    let t = Instant::now();
                    plain_insert(&pool, &people).await;
                    let d = t.elapsed();
                    pool.disconnect().await.expect("disconnect");
                    d
                });
            }
            total
        })
    });
    g.bench_function("medvault", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += rt.block_on(async {
                    let s = vault().await;
                    let t = Instant::now();
                    let ids = s.insert_patients_with_notes(&import).await.expect("insert");
                    let d = t.elapsed();
                    assert_eq!(ids.len(), n);
                    d
                });
            }
            total
        })
    });
    g.finish();

    let pool = rt.block_on(async {
        let pool = plain_pool().await;
        plain_insert(&pool, &people).await;
        pool
    });
    let s = rt.block_on(async {
        let s = vault().await;
        s.insert_patients_with_notes(&import).await.expect("insert");
        s
    });
    let targets = lookup_targets(&people, LOOKUPS);
    let queries: Vec<_> = targets.iter().map(|p| query(p)).collect();

    let mut g = c.benchmark_group(format!("mysql lookup family+born x{LOOKUPS} in {n}"));
    slow(&mut g, 30);
    g.throughput(Throughput::Elements(LOOKUPS as u64));
    g.bench_function("plaintext", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut found = 0;
                for p in &targets {
                    found += plain_find(&pool, &p.family, &p.born).await.len();
                }
                assert!(found >= LOOKUPS);
            })
        })
    });
    g.bench_function("medvault", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut found = 0;
                for q in &queries {
                    found += s.find_patients(black_box(q)).await.expect("find").len();
                }
                assert!(found >= LOOKUPS);
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group(format!("mysql list {n} (4 fields each)"));
    slow(&mut g, 20);
    g.throughput(Throughput::Elements(4 * n as u64));
    g.bench_function("plaintext", |b| {
        b.iter(|| assert_eq!(rt.block_on(plain_list(&pool)), n))
    });
    g.bench_function("medvault", |b| {
        b.iter(|| assert_eq!(rt.block_on(list_all(&s)), n))
    });
    g.finish();
    rt.block_on(pool.disconnect()).expect("disconnect");
}

criterion_group!(benches, store);
criterion_main!(benches);
