//! Field crypto: one field sealed and opened through medvault's envelope
//! (nonce, header, five S2V components, the column's S2V prefix kept as a
//! session keeps it) against the bare `aes-siv` crate calls it replaced
//! (src/crypto/siv.rs says why), and one blind index (canonicalise + HMAC).
//!
//! `cargo bench --bench field_crypto`; BENCHMARKS.md has the figures.

use std::hint::black_box;

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use medvault::crypto::envelope::{self, Cell, Header};
use medvault::crypto::kdf;
use medvault::crypto::secret::EpochKey;
use medvault::index::{self, canonical};

const SIZES: [usize; 4] = [8, 32, 300, 4096];

fn field(c: &mut Criterion) {
    let epoch = EpochKey::generate();
    let key = kdf::field_key(&epoch);
    let raw: [u8; 64] = *key.expose();
    let header = Header { scope: 1, epoch: 1 };
    let row = [7u8; 16];
    let cell = Cell {
        table: "patients",
        column: "family_name",
        row: &row,
    };
    let hbytes = [1u8, 0, 0, 0, 1, 0, 0, 0, 1];
    let nonce = [9u8; 16];
    let components: [&[u8]; 5] = [&hbytes, b"patients", b"family_name", &row, &nonce];
    // What a session keeps per column (src/vault/mod.rs, EpochKeys).
    let prefix = envelope::prefix(&key, header, "patients", "family_name");

    let mut g = c.benchmark_group("seal");
    for n in SIZES {
        let plain = vec![0x41u8; n];
        g.throughput(Throughput::Bytes(n as u64));
        g.bench_with_input(BenchmarkId::new("medvault envelope", n), &plain, |b, p| {
            b.iter(|| envelope::seal_prepared(&key, &prefix, header, &cell, black_box(p)))
        });
        g.bench_with_input(
            BenchmarkId::new("medvault envelope, column not prepared", n),
            &plain,
            |b, p| b.iter(|| envelope::seal(&key, header, &cell, black_box(p))),
        );
        g.bench_with_input(
            BenchmarkId::new("aes-siv, cipher made per call", n),
            &plain,
            |b, p| {
                b.iter(|| {
                    Aes256Siv::new_from_slice(&raw)
                        .expect("64-byte key")
                        .encrypt(components, black_box(p))
                        .expect("encrypt")
                })
            },
        );
        let mut prepared = Aes256Siv::new_from_slice(&raw).expect("64-byte key");
        g.bench_with_input(
            BenchmarkId::new("aes-siv, cipher kept", n),
            &plain,
            |b, p| b.iter(|| prepared.encrypt(components, black_box(p)).expect("encrypt")),
        );
    }
    g.finish();

    let mut g = c.benchmark_group("open");
    for n in SIZES {
        let plain = vec![0x41u8; n];
        let blob = envelope::seal(&key, header, &cell, &plain);
        let bare = Aes256Siv::new_from_slice(&raw)
            .expect("64-byte key")
            .encrypt(components, &plain)
            .expect("encrypt");
        g.throughput(Throughput::Bytes(n as u64));
        g.bench_with_input(
            BenchmarkId::new("medvault envelope", n),
            &blob,
            |b, blob| {
                b.iter(|| {
                    envelope::open_prepared(&key, &prefix, header, &cell, black_box(blob))
                        .expect("opens")
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("aes-siv, cipher made per call", n),
            &bare,
            |b, ct| {
                b.iter(|| {
                    Aes256Siv::new_from_slice(&raw)
                        .expect("64-byte key")
                        .decrypt(components, black_box(ct))
                        .expect("decrypt")
                })
            },
        );
        let mut prepared = Aes256Siv::new_from_slice(&raw).expect("64-byte key");
        g.bench_with_input(
            BenchmarkId::new("aes-siv, cipher kept", n),
            &bare,
            |b, ct| {
                b.iter(|| {
                    prepared
                        .decrypt(components, black_box(ct))
                        .expect("decrypt")
                })
            },
        );
    }
    g.finish();

    let ikey = kdf::index_key(&epoch, "patients", "bi_family_born");
    let mut g = c.benchmark_group("blind index");
    g.bench_function("canonicalise name", |b| {
        b.iter(|| canonical::name(black_box("  Dupont-Aignan ")))
    });
    g.bench_function("canonicalise + HMAC (family, born)", |b| {
        b.iter(|| {
            let f = canonical::name(black_box("  Dupont-Aignan "));
            let d = canonical::date(black_box("1970-03-02")).expect("date");
            index::compute(&ikey, &[&f, &d], 15)
        })
    });
    g.bench_function("HMAC only (family, born)", |b| {
        b.iter(|| index::compute(&ikey, black_box(&["dupont aignan", "1970-03-02"]), 15))
    });
    g.finish();
}

criterion_group!(benches, field);
criterion_main!(benches);
