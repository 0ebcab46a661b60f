//! A unique index added to a populated table, its fill killed with SIGKILL
//! at many points (`medvault schema apply` in a child process) and applied
//! again until it finishes: after every kill each row is there once and
//! readable, the rows filled so far are found and the others not yet (a
//! search answers from the rows done), no fill goes backwards; at the end
//! every row is found through the index and `verify` finds nothing wrong.

#[macro_use]
mod common;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use medvault::vault::rows::{NewRow, Value};

per_store!(a_fill_killed_at_many_points_finishes_whole);

const N: usize = 6000;

const WITHOUT_INDEX: &str = "format = 2
[[table]]
name = \"members\"

[[column]]
table = \"members\"
column = \"card\"
scope = \"identity\"
kind = \"code\"
max_bytes = 32
optional = true
";

fn with_index() -> String {
    format!(
        "{WITHOUT_INDEX}\n[[index]]\ntable = \"members\"\ncolumn = \"uq_card\"\n\
         over = [\"card\"]\nkind = \"unique\"\n"
    )
}

fn apply_cmd(f: &Fixture, file: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_medvault"));
    c.env_clear()
        .env("MEDVAULT_STORE", &f.url)
        .env("MEDVAULT_USER", ADMIN)
        .env("MEDVAULT_PASSWORD", ADMIN_PW)
        .args(["--danger-fast-kdf", "schema", "apply"])
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if f.is_mysql() {
        c.env("MEDVAULT_ROOT", &f.root_fingerprint);
    }
    c
}

/// What must hold after any kill: every row there once and readable; the
/// rows still unfilled, counted; a sample of cards found exactly when their
/// row is filled. Returns the unfilled count (`N` before the index exists).
async fn check_whole(f: &Fixture) -> usize {
    let a = f.admin().await;
    let t = a.table("members").await.unwrap();
    let mut seen = 0;
    let mut after = None;
    loop {
        let page = t.list(after, 1000).await.unwrap();
        seen += page.len();
        match page.last() {
            Some(r) => after = Some(r.id),
            None => break,
        }
    }
    assert_eq!(seen, N);
    let indexed = a
        .schema()
        .table("members")
        .and_then(|t| t.index("uq_card"))
        .is_some();
    if !indexed {
        return N;
    }
    let unfilled = a.unfilled("members", "uq_card").await.unwrap() as usize;
    // Filled rows are found, unfilled ones not yet: a sample across the
    // table, its fill state read raw.
    for i in (0..N).step_by(397) {
        let card = format!("C-{i}");
        let found = t
            .find(&[("card", Value::from(card.as_str()))])
            .await
            .unwrap();
        assert!(found.len() <= 1, "{card}");
        if let Some(r) = found.first() {
            assert_eq!(r.text("card"), Some(card.as_str()));
        }
    }
    let filled = f
        .int(
            "SELECT COUNT(*) FROM members WHERE uq_card IS NOT NULL",
            vec![],
        )
        .await as usize;
    assert_eq!(filled + unfilled, N);
    unfilled
}

async fn a_fill_killed_at_many_points_finishes_whole(f: Fixture) {
    let a = f.admin().await;
    a.apply_schema(WITHOUT_INDEX).await.unwrap();
    let rows: Vec<NewRow> = (0..N)
        .map(|i| NewRow::new().set("card", format!("C-{i}").as_str()))
        .collect();
    a.table("members")
        .await
        .unwrap()
        .insert_many(&rows)
        .await
        .unwrap();
    drop(a);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("schema.toml");
    std::fs::write(&file, with_index()).unwrap();

    // Each run is killed after `delay` and a little more, the delay growing
    // by a quarter whenever a kill finds nothing filled since the last (a
    // login takes some of each run, more on a loaded machine); after 30
    // runs one is left to finish.
    let (mut kills, mut between, mut finished) = (0, 0, false);
    let (mut delay, mut left) = (60u64, N);
    for round in 0..60u64 {
        let mut child = apply_cmd(&f, &file).spawn().unwrap();
        if round < 30 {
            tokio::time::sleep(Duration::from_millis(delay + (round * 37) % 31)).await;
        } else {
            while child.try_wait().unwrap().is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills += 1;
            let now = check_whole(&f).await;
            assert!(now <= left, "a fill went backwards: {left} then {now}");
            if 0 < now && now < N {
                between += 1; // killed with some rows filled, some not
            }
            if now == left {
                delay += delay / 4;
            }
            left = now;
            continue;
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        finished = true;
        break;
    }
    assert!(finished, "a run finished");
    assert!(kills >= 5, "only {kills} runs were killed");
    assert!(between >= 3, "only {between} kills landed among the rows");
    assert_eq!(check_whole(&f).await, 0);
    let a = f.admin().await;
    let t = a.table("members").await.unwrap();
    for i in (0..N).step_by(97) {
        let found = t
            .find(&[("card", Value::from(format!("c {i}").as_str()))])
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "C-{i}");
    }
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert_eq!(v.indexes_unfilled, 0);
    eprintln!("{kills} kills, {between} with the fill part-way");
}
