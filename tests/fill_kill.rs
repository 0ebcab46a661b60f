//! A unique index added to a populated table, its fill (`medvault schema
//! apply` in a child process) killed with SIGKILL each time a page's commit
//! is seen, wherever the next page has got to, and applied again until it
//! finishes: after every kill each row is there once and
//! readable, the rows filled so far are found and the others not yet (a
//! search answers from the rows done), no fill goes backwards; at the end
//! every row is found through the index and `verify` finds nothing wrong.

#[macro_use]
mod common;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use medvault::vault::rows::{NewRow, Value};
use medvault::Id;

per_store!(a_fill_killed_at_many_points_finishes_whole);

const N: usize = 10_000;

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

/// Whether the index's column is there yet (an apply adds it first).
async fn has_index_column(f: &Fixture) -> bool {
    let sql = match f.is_mysql() {
        true => {
            "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() \
             AND table_name = 'members' AND column_name = 'uq_card'"
        }
        false => "SELECT COUNT(*) FROM pragma_table_info('members') WHERE name = 'uq_card'",
    };
    f.int(sql, vec![]).await > 0
}

/// The rows whose unique index holds a value, read raw (0 before the
/// index column exists).
async fn filled(f: &Fixture, indexed: bool) -> usize {
    if !indexed {
        return 0;
    }
    f.int(
        "SELECT COUNT(*) FROM members WHERE uq_card IS NOT NULL",
        vec![],
    )
    .await as usize
}

/// What must hold after any kill: every row there once and readable; the
/// unfilled count agreeing with the rows read raw; a sample of cards found
/// exactly when their row is filled (a search answers from the rows done).
/// Returns the rows filled.
async fn check_whole(f: &Fixture, ids: &[Id]) -> usize {
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
    let done = filled(f, indexed).await;
    if !indexed {
        return done;
    }
    let unfilled = a.unfilled("members", "uq_card").await.unwrap() as usize;
    assert_eq!(done + unfilled, N);
    for i in (0..N).step_by(661) {
        let card = format!("C-{i}");
        let found = t
            .find(&[("card", Value::from(card.as_str()))])
            .await
            .unwrap();
        let holds = f
            .int(
                "SELECT COUNT(*) FROM members WHERE id = ? AND uq_card IS NOT NULL",
                vec![Val::B(ids[i].as_bytes().to_vec())],
            )
            .await;
        let found: Vec<Id> = found.iter().map(|r| r.id).collect();
        match holds {
            1 => assert_eq!(found, [ids[i]], "{card}, filled"),
            _ => assert!(found.is_empty(), "{card}, not filled yet"),
        }
    }
    done
}

async fn a_fill_killed_at_many_points_finishes_whole(f: Fixture) {
    let a = f.admin().await;
    a.apply_schema(members_unindexed()).await.unwrap();
    let rows: Vec<NewRow> = (0..N)
        .map(|i| NewRow::new().set("card", format!("C-{i}").as_str()))
        .collect();
    let ids = a
        .table("members")
        .await
        .unwrap()
        .insert_many(&rows)
        .await
        .unwrap();
    drop(a);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("schema.toml");
    std::fs::write(&file, MEMBERS).unwrap();

    // The first 30 runs are each killed as soon as the rows filled (read
    // raw) grow, so each kill lands after a page's commit and while the
    // next is under way, whatever the machine's speed; then one is left to
    // finish.
    let (mut kills, mut between, mut finished) = (0, 0, false);
    let mut done = 0;
    for round in 0..60u64 {
        let mut child = apply_cmd(&f, &file).spawn().unwrap();
        let mut exited = false;
        loop {
            if child.try_wait().unwrap().is_some() {
                exited = true;
                break;
            }
            let indexed = has_index_column(&f).await;
            if round < 30 && filled(&f, indexed).await > done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if !exited {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills += 1;
            let now = check_whole(&f, &ids).await;
            assert!(now >= done, "a fill went backwards: {done} then {now}");
            if 0 < now && now < N {
                between += 1; // killed with some rows filled, some not
            }
            done = now;
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
    assert!(between >= 5, "only {between} kills landed among the rows");
    assert_eq!(check_whole(&f, &ids).await, N);
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
