//! A rotation killed with SIGKILL at many points, and run again until it
//! finishes: every row readable after every kill, none lost or duplicated,
//! search exact at every point, every index right at the end, and one new
//! epoch in all (each run after the first resumes it).

#[macro_use]
mod common;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use medvault::PatientQuery;

per_store!(a_rotation_killed_at_many_points_finishes_whole);

const N: usize = 1500;
const FAMILIES: [&str; 5] = ["Dupont", "Martin", "Durand", "Lefèvre", "Saint-Pierre"];

fn rotate_cmd(f: &Fixture) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_medvault"));
    c.env_clear()
        .env("MEDVAULT_STORE", &f.url)
        .env("MEDVAULT_USER", ADMIN)
        .env("MEDVAULT_PASSWORD", ADMIN_PW)
        .args([
            "--danger-fast-kdf",
            "--json",
            "rotate",
            "identity",
            "--batch-rows",
            "20",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if f.is_mysql() {
        c.env("MEDVAULT_ROOT", &f.root_fingerprint);
    }
    c
}

async fn retired(f: &Fixture) -> i64 {
    f.int(
        "SELECT COUNT(*) FROM epochs WHERE scope_id = 1 AND retired_sig IS NOT NULL",
        vec![],
    )
    .await
}

/// What must hold after any kill: every row there once and readable, and
/// search exact, whatever mix of epochs the rows are under.
async fn check_whole(f: &Fixture) -> std::collections::BTreeMap<u32, usize> {
    let a = f.admin().await;
    let mut seen = 0;
    let mut after = None;
    loop {
        let page = a.list_patients(after.as_ref(), 500).await.unwrap();
        for p in &page.patients {
            assert!(FAMILIES.contains(&p.family_name.as_str()), "{p:?}");
        }
        seen += page.patients.len();
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, N);
    assert_eq!(f.patient_count().await, N as i64);
    let dupont = a
        .find_patients(&PatientQuery {
            family_name: Some("dupont".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(dupont.len(), N / FAMILIES.len());
    f.epochs_of("patients", "family_name").await
}

async fn a_rotation_killed_at_many_points_finishes_whole(f: Fixture) {
    let a = f.admin().await;
    let people: Vec<_> = (0..N)
        .map(|i| {
            patient(
                FAMILIES[i % FAMILIES.len()],
                &format!("Given {i}"),
                "1970-03-02",
            )
        })
        .collect();
    a.insert_patients(&people).await.unwrap();
    drop(a);

    let (mut kills, mut split, mut finished) = (0, 0, None);
    // The first 30 runs are killed after `delay` and a little more; then one
    // is left to finish. A login takes some of each run, and how much depends
    // on the machine, so a kill that finds no row moved since the one before
    // makes the next run live a quarter longer: the kills land among the
    // rows on a fast machine and on a loaded one alike.
    let (mut delay, mut moved) = (60u64, 0usize);
    for round in 0..60u64 {
        let mut child = rotate_cmd(&f).spawn().unwrap();
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
            let epochs = check_whole(&f).await;
            if epochs.len() > 1 {
                split += 1; // killed with rows under both epochs
            }
            let now = epochs.get(&2).copied().unwrap_or(0);
            if now == moved {
                delay += delay / 4;
            }
            moved = now;
            if retired(&f).await > 0 {
                // Killed after its last step: done, nothing to resume.
                finished = Some(r#"{"epoch": 2, "finished": true}"#.to_string());
                break;
            }
            continue;
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        finished = Some(String::from_utf8(out.stdout).unwrap());
        break;
    }
    let report: serde_json::Value =
        serde_json::from_str(&finished.expect("a run finished")).unwrap();
    assert!(kills >= 5, "only {kills} runs were killed");
    assert!(
        split >= 3,
        "only {split} kills landed in the middle of the rows"
    );
    // One epoch made in all: every run after the first resumed it.
    assert_eq!(report["epoch"], 2, "{report}");
    assert_eq!(report["finished"], true);
    assert_eq!(check_whole(&f).await, [(2, N)].into());
    assert_eq!(retired(&f).await, 1);
    let a = f.admin().await;
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert!(v.indexes_checked >= 4 * N as u64, "{v:?}");
    eprintln!("{kills} kills, {split} with rows under both epochs");
}
