//! Login with the production Argon2 setting (unlock of the user's secret
//! key, verification of the directory, unwrapping of every scope key), and
//! copying a whole vault between stores, in rows per second. Key rotation
//! does not exist yet; until it does, copy stands in for its target
//! (BENCHMARKS.md).

mod common;

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use common::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use medvault::{CreateOptions, KdfParams, OpenOptions, Vault};

const COPY_PATIENTS: usize = 20_000;

fn login(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = sqlcipher_url(dir.path());
    rt.block_on(Vault::create(
        &url,
        ADMIN,
        ADMIN_PW,
        &CreateOptions::default(),
    ))
    .expect("create");
    let opts = OpenOptions {
        kdf: KdfParams::PRODUCTION,
        pinned_root: None,
        new_password: None,
        state_dir: None,
    };
    let mut g = c.benchmark_group("login");
    slow(&mut g, 10);
    g.bench_function(
        "production Argon2id (t=3, p=4, 128 MiB), all scope keys",
        |b| {
            b.iter(|| {
                let s = rt
                    .block_on(Vault::open(&url, ADMIN, ADMIN_PW, &opts))
                    .expect("login");
                assert!(s.scopes().len() >= 3);
            })
        },
    );
    g.finish();
}

fn copy(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, _) = rt.block_on(new_vault(&sqlcipher_url(dir.path())));
    rt.block_on(s.insert_patients_with_notes(&as_import(&synthetic(COPY_PATIENTS))))
        .expect("insert");
    let mut no_progress = |_: &str, _: u64, _: u64| ControlFlow::Continue(());
    // Count every row once, to report rows per second.
    let probe = tempfile::tempdir().expect("tempdir");
    let report = rt
        .block_on(s.copy_to(&sqlcipher_url(probe.path()), &mut no_progress))
        .expect("copy");
    let rows: u64 = report.tables.iter().map(|(_, n)| n).sum();

    let mut g = c.benchmark_group(format!("copy {COPY_PATIENTS} patients + notes"));
    slow(&mut g, 20);
    g.throughput(Throughput::Elements(rows));
    g.bench_function("SQLCipher to new SQLCipher", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let to = tempfile::tempdir().expect("tempdir");
                let t = Instant::now();
                rt.block_on(s.copy_to(&sqlcipher_url(to.path()), &mut no_progress))
                    .expect("copy");
                total += t.elapsed();
            }
            total
        })
    });
    g.bench_function("SQLCipher to MySQL", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let to = rt.block_on(fresh_mysql_db("medvault_bench_copy"));
                let t = Instant::now();
                rt.block_on(s.copy_to(&to, &mut no_progress)).expect("copy");
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, login, copy);
criterion_main!(benches);
