//! Key rotation on SQLCipher (README, "Access over time"), in one run:
//! - rotating `identity` over N patients (20,000; `MEDVAULT_BENCH_PATIENTS`
//!   changes it): every row's four cells sealed again and its four blind
//!   indexes recomputed, 500 rows per transaction, a checking pass, the old
//!   epoch retired; beside the insert of the same patients, so the ratio
//!   says what a rotation costs against writing the data once;
//! - patient lookups (family name + date of birth) with one live epoch,
//!   and in the middle of a rotation, when each lookup carries the index
//!   values of two epochs.

mod common;

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use common::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let n = size_from_env("MEDVAULT_BENCH_PATIENTS", 20_000);
    let people = synthetic(n);
    let patients: Vec<medvault::NewPatient> =
        as_import(&people).into_iter().map(|(p, _)| p).collect();
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, _) = rt.block_on(new_vault(&sqlcipher_url(dir.path())));
    rt.block_on(s.insert_patients(&patients)).expect("insert");

    let mut g = c.benchmark_group(format!("rotation over {n} patients (SQLCipher)"));
    slow(&mut g, 30);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("insert the patients (for scale)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let d = tempfile::tempdir().expect("tempdir");
                let (fresh, _) = rt.block_on(new_vault(&sqlcipher_url(d.path())));
                let t = Instant::now();
                rt.block_on(fresh.insert_patients(&patients))
                    .expect("insert");
                total += t.elapsed();
            }
            total
        })
    });
    g.bench_function("rotate identity", |b| {
        b.iter(|| {
            let r = rt.block_on(s.rotate("identity")).expect("rotate");
            assert!(r.finished && r.rewritten == n as u64, "{r:?}");
        })
    });
    g.finish();

    let targets = lookup_targets(&people, 200);
    let lookups = |s: &medvault::Session| {
        rt.block_on(async {
            for p in &targets {
                let found = s.find_patients(&query(p)).await.expect("find");
                assert!(!found.is_empty());
            }
        })
    };
    let mut g = c.benchmark_group("200 patient lookups (SQLCipher)");
    g.sample_size(20);
    g.throughput(Throughput::Elements(targets.len() as u64));
    g.bench_function("one live epoch", |b| b.iter(|| lookups(&s)));
    // Stop a rotation half-way: rows under two epochs, both searched.
    let mut seen = 0;
    let r = rt
        .block_on(
            s.rotate_with("identity", &medvault::RotateOptions::default(), &mut |p| {
                seen = p.seen;
                if p.seen * 2 >= p.total {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            }),
        )
        .expect("half a rotation");
    assert!(!r.finished && seen > 0);
    g.bench_function("during a rotation (two live epochs)", |b| {
        b.iter(|| lookups(&s))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
