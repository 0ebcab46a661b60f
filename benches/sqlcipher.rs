//! The SQLCipher store against plaintext columns, three ways in one run:
//! plaintext columns in an unkeyed SQLite file, plaintext columns in a
//! keyed SQLCipher file, and medvault (fields sealed, blind indexes).
//!
//! 100,000 synthetic patients with a 300-byte note each, inserted in one
//! transaction; 10,000 lookups by family name + date of birth; listing all
//! patients with their names decrypted. `MEDVAULT_BENCH_PATIENTS` changes
//! the size. BENCHMARKS.md has the figures.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const LOOKUPS: usize = 10_000;

fn patients() -> usize {
    size_from_env("MEDVAULT_BENCH_PATIENTS", 100_000)
}

const DB_KEY: [u8; 32] = [0x5a; 32];

fn store(c: &mut Criterion) {
    let n = patients();
    let people = synthetic(n);
    let import = as_import(&people);
    let rt = runtime();

    let mut g = c.benchmark_group(format!("sqlcipher insert {n}"));
    slow(&mut g, 30);
    g.throughput(Throughput::Elements(n as u64));
    for (name, key, desk) in [
        ("plaintext, unkeyed SQLite", None, false),
        ("plaintext, keyed SQLCipher", Some(&DB_KEY), false),
        (
            "plaintext, keyed SQLCipher, the desk's searches indexed",
            Some(&DB_KEY),
            true,
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let path = dir.path().join("plain.db");
                    let mut db = match desk {
                        false => PlainSqlite::create(&path, key),
                        true => PlainSqlite::with_desk_indexes(&path, key),
                    };
                    let t = Instant::now();
                    db.insert(&people);
                    total += t.elapsed();
                }
                total
            })
        });
    }
    g.bench_function("medvault", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let (s, _) = rt.block_on(new_vault(&sqlcipher_url(dir.path())));
                let t = Instant::now();
                let ids = rt
                    .block_on(s.insert_patients_with_notes(&import))
                    .expect("insert");
                total += t.elapsed();
                assert_eq!(ids.len(), n);
            }
            total
        })
    });
    g.finish();

    // One database of each kind for the reads.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut unkeyed = PlainSqlite::create(&dir.path().join("unkeyed.db"), None);
    unkeyed.insert(&people);
    let mut keyed = PlainSqlite::create(&dir.path().join("keyed.db"), Some(&DB_KEY));
    keyed.insert(&people);
    let (s, _) = rt.block_on(new_vault(&sqlcipher_url(dir.path())));
    rt.block_on(s.insert_patients_with_notes(&import))
        .expect("insert");
    let targets = lookup_targets(&people, LOOKUPS);
    let queries: Vec<_> = targets.iter().map(|p| query(p)).collect();

    let mut g = c.benchmark_group(format!("sqlcipher lookup family+born x{LOOKUPS} in {n}"));
    slow(&mut g, 20);
    g.throughput(Throughput::Elements(LOOKUPS as u64));
    for (name, db) in [
        ("plaintext, unkeyed SQLite", &unkeyed),
        ("plaintext, keyed SQLCipher", &keyed),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut found = 0;
                for p in &targets {
                    found += db.find(&p.family, &p.born).len();
                }
                assert!(found >= LOOKUPS);
                found
            })
        });
    }
    g.bench_function("medvault", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut found = 0;
                for q in &queries {
                    found += s.find_patients(black_box(q)).await.expect("find").len();
                }
                assert!(found >= LOOKUPS);
                found
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group(format!("sqlcipher list {n} (4 fields each)"));
    slow(&mut g, 20);
    g.throughput(Throughput::Elements(4 * n as u64));
    for (name, db) in [
        ("plaintext, unkeyed SQLite", &unkeyed),
        ("plaintext, keyed SQLCipher", &keyed),
    ] {
        g.bench_function(name, |b| b.iter(|| assert_eq!(db.list_all(), n)));
    }
    g.bench_function("medvault", |b| {
        b.iter(|| assert_eq!(rt.block_on(list_all(&s)), n))
    });
    g.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
