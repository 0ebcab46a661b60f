//! Faults only a server store has: the server down or refusing us, a
//! server that asks for a client file, lock waits and deadlocks, a
//! connection dropped mid-transaction, concurrent and half-failed
//! migrations. These run against the MariaDB of MEDVAULT_TEST_MYSQL_URL.

mod common;
use common::*;
use medvault::store::mysql::{driver_opts, migrate_with, MysqlStore};
use medvault::store::url::MysqlUrl;
use medvault::store::{Store, StoreUrl};
use medvault::{Error, OpenOptions, Vault};
use mysql_async::prelude::Queryable;

fn parse(url: &str) -> MysqlUrl {
    match StoreUrl::parse(url).unwrap() {
        StoreUrl::Mysql(m) => m,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn server_down_is_store_unavailable_naming_the_host() {
    let url = "mysql://root:secretpw@127.0.0.1:1/nowhere";
    let err = Vault::open(
        url,
        "alice",
        "pw",
        &OpenOptions {
            pinned_root: Some("AB".into()),
            ..open_opts()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::StoreUnavailable { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("127.0.0.1:1"), "{msg}");
    assert!(!msg.contains("secretpw"), "password in {msg}");
}

#[tokio::test]
async fn wrong_credentials_and_missing_pin_are_clear() {
    let f = Fixture::mysql().await;
    let bad = f
        .url
        .replacen("mysql://root@", "mysql://root:wrong-password@", 1);
    let err = Vault::open(&bad, ADMIN, ADMIN_PW, &f.opts())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::StoreAuth(_)), "{err}");
    assert!(!err.to_string().contains("wrong-password"));
    let err = Vault::open(&f.url, ADMIN, ADMIN_PW, &open_opts())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RootNotPinned(_)), "{err}");
    let err = Vault::open(&f.url, "nobody", "x", &f.opts())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownUser(_)), "{err}");
    assert!(matches!(
        f.login(ADMIN, "nope").await,
        Err(Error::WrongPassword(_))
    ));
    // A server without TLS and a client that requires it: refused clearly.
    let tls = format!("{}?tls=required", f.url);
    let err = Vault::open(&tls, ADMIN, ADMIN_PW, &f.opts())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::StoreUnavailable { .. }), "{err}");
}

#[tokio::test]
async fn a_vault_exists_already() {
    let f = Fixture::mysql().await;
    let err = Vault::create(
        &f.url,
        "other",
        "pw",
        &medvault::CreateOptions {
            kdf: kdf(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::VaultExists(_)), "{err}");
    assert_eq!(f.int("SELECT count(*) FROM users", vec![]).await, 1);
}

/// A server may answer any query with "send me this local file". medvault
/// installs no LOCAL INFILE handler, so the request is refused and nothing
/// of the client's files is sent.
#[tokio::test]
async fn a_server_asking_for_a_local_file_is_refused() {
    let f = Fixture::mysql().await;
    let pool = mysql_async::Pool::new(driver_opts(&parse(&f.url)));
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop("CREATE TABLE stolen (line TEXT)")
        .await
        .unwrap();
    let r = c
        .query_drop("LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE stolen")
        .await;
    assert!(r.is_err(), "the client must not send a local file");
    drop(c);
    assert_eq!(f.int("SELECT count(*) FROM stolen", vec![]).await, 0);
    pool.disconnect().await.unwrap();
}

/// A write that meets a row lock held longer than the lock-wait timeout is
/// retried, and succeeds once the lock is released.
#[tokio::test]
async fn lock_wait_timeouts_are_retried() {
    let f = Fixture::mysql().await;
    let a = f.admin().await;
    enrol(&a, "bob", "bob pw", false).await;
    a.grant("bob", "identity").await.unwrap();
    drop(a);
    let url = format!("{}?lock_wait_timeout=1", f.url);
    let a = Vault::open(&url, ADMIN, ADMIN_PW, &f.opts()).await.unwrap();

    let mut holder = mysql_async::Conn::from_url(f.url.as_str()).await.unwrap();
    holder.query_drop("START TRANSACTION").await.unwrap();
    holder
        .query_drop("SELECT * FROM grants WHERE grantee = 'bob' FOR UPDATE")
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        // Longer than one lock wait (1 s), shorter than all five attempts.
        tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
        holder.query_drop("COMMIT").await.unwrap();
        holder.disconnect().await.unwrap();
    });
    a.revoke("bob", "identity")
        .await
        .expect("retried after the lock wait timed out");
    release.await.unwrap();
    assert_eq!(
        f.int(
            "SELECT count(*) FROM grants WHERE grantee = 'bob' AND scope_id = 1",
            vec![]
        )
        .await,
        0
    );
}

/// The vault's guard for `admin` (the key-state probe) with `tail`
/// appended to its columns, and the answer it gives now.
async fn admin_guard(f: &Fixture, tail: &str, tail_answer: &[i64]) -> medvault::store::Guard {
    let sql = format!("{}{tail}", medvault::sql::keys::PROBE_KEYS);
    let mut c = mysql_async::Conn::from_url(f.url.as_str()).await.unwrap();
    let row: mysql_async::Row = c
        .exec_first(
            medvault::sql::keys::PROBE_KEYS,
            (ADMIN, ADMIN, ADMIN, ADMIN),
        )
        .await
        .unwrap()
        .unwrap();
    c.disconnect().await.unwrap();
    let mut expect: Vec<i64> = (0..row.len())
        .map(|i| row.get::<i64, _>(i).unwrap())
        .collect();
    expect.extend(tail_answer);
    medvault::store::Guard {
        sql,
        params: vec![medvault::store::Value::Text(ADMIN.into()); 4],
        expect,
    }
}

/// A guarded write (`Store::write_guarded`) keeps what its guard (the
/// key-state probe) read as it was until it commits: a new epoch (a
/// rotation), a retirement, and a revocation of the writer's grants wait
/// for it, so no rotation can seal every row again and retire the epoch
/// the write sealed under before the write is there to be sealed again.
/// The guard here sleeps after it has read, to hold the moment open.
#[tokio::test]
async fn a_guarded_write_holds_the_key_state_until_it_commits() {
    let f = Fixture::mysql().await;
    let guard = admin_guard(&f, ", SLEEP(4)", &[0]).await;
    let store = MysqlStore::connect(&parse(&f.url)).await.unwrap();
    let writer = tokio::spawn(async move {
        store
            .write_guarded(
                &guard,
                vec![(
                    "INSERT INTO vault_meta (`key`, value) VALUES ('guard-test', x'00')".into(),
                    Vec::new(),
                )],
            )
            .await
    });
    let mut other = mysql_async::Conn::from_url(f.url.as_str()).await.unwrap();
    other
        .query_drop("SET SESSION innodb_lock_wait_timeout = 1")
        .await
        .unwrap();
    // The guard has read (it sleeps now).
    for _ in 0..300 {
        let asleep: Option<i64> = other
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.processlist \
                 WHERE db = DATABASE() AND state = 'User sleep'",
                (),
            )
            .await
            .unwrap();
        if asleep.unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let new_epoch = other
        .query_drop(
            "INSERT INTO epochs (scope_id, epoch, state, commitment, creator, signature) \
             VALUES (1, 99, 'current', x'00', 'admin', x'00')",
        )
        .await;
    let retire = other
        .query_drop("UPDATE epochs SET state = 'retired' WHERE scope_id = 1 AND epoch = 1")
        .await;
    let revoke = other
        .query_drop("DELETE FROM grants WHERE grantee = 'admin' AND scope_id = 1")
        .await;
    // Whatever happened, the writer ends before anything is asserted (a
    // failed check must not leave its transaction open under the drop).
    let written = writer.await.unwrap();
    other.query_drop("ROLLBACK").await.unwrap();
    other.disconnect().await.unwrap();
    let waited = |r: &Result<(), mysql_async::Error>| matches!(r, Err(mysql_async::Error::Server(e)) if e.code == 1205);
    assert!(waited(&new_epoch), "a new epoch waits: {new_epoch:?}");
    assert!(waited(&retire), "a retirement waits: {retire:?}");
    assert!(waited(&revoke), "a revocation waits: {revoke:?}");
    written.expect("the write commits");
    let count = "SELECT COUNT(*) FROM vault_meta WHERE `key` = 'guard-test'";
    assert_eq!(f.int(count, vec![]).await, 1);
}

/// A streamed write checks its guard just before the commit: a new epoch
/// stored while it streamed (a rotation) makes it write nothing; without
/// a guard (the control) it commits.
#[tokio::test]
async fn a_stream_whose_key_state_moved_writes_nothing() {
    let f = Fixture::mysql().await;
    for guarded in [true, false] {
        let guard = admin_guard(&f, "", &[]).await;
        let store = MysqlStore::connect(&parse(&f.url)).await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let guard = guarded.then_some(guard);
        let writer = tokio::spawn(async move { store.write_stream(guard, rx).await });
        let key = format!("guard-test-{guarded}");
        let chunk = vec![(
            "INSERT INTO vault_meta (`key`, value) VALUES (?, x'00')".to_string(),
            vec![medvault::store::Value::Text(key.clone())],
        )];
        let sent = tx.send(Some(chunk)).await;
        let epoch = f
            .exec(
                "INSERT INTO epochs (scope_id, epoch, state, commitment, creator, signature) \
                 VALUES (1, 99, 'current', x'00', 'admin', x'00')",
                vec![],
            )
            .await;
        let _ = tx.send(None).await;
        let written = writer.await.unwrap();
        f.exec("DELETE FROM epochs WHERE epoch = 99", vec![]).await;
        sent.unwrap();
        assert_eq!(epoch, 1);
        let stored = f
            .int(
                "SELECT COUNT(*) FROM vault_meta WHERE `key` = ?",
                vec![key.as_str().into()],
            )
            .await;
        if guarded {
            assert!(matches!(written, Err(Error::StateMoved)), "{written:?}");
            assert_eq!(stored, 0);
        } else {
            written.unwrap();
            assert_eq!(stored, 1);
        }
    }
}

/// The guard is read inside the transaction: a guard that does not hold
/// writes nothing and says so.
#[tokio::test]
async fn a_guard_that_does_not_hold_writes_nothing() {
    let f = Fixture::mysql().await;
    let store = MysqlStore::connect(&parse(&f.url)).await.unwrap();
    let n = f.int("SELECT COUNT(*) FROM epochs", vec![]).await;
    let insert = || {
        vec![(
            "INSERT INTO vault_meta (`key`, value) VALUES ('guard-test', x'00')".to_string(),
            Vec::new(),
        )]
    };
    let guard = |expect| medvault::store::Guard {
        sql: "SELECT (SELECT COUNT(*) FROM epochs)".into(),
        params: Vec::new(),
        expect: vec![expect],
    };
    let err = store
        .write_guarded(&guard(n + 1), insert())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::StateMoved), "{err}");
    let count = "SELECT COUNT(*) FROM vault_meta WHERE `key` = 'guard-test'";
    assert_eq!(f.int(count, vec![]).await, 0);
    store.write_guarded(&guard(n), insert()).await.unwrap();
    assert_eq!(f.int(count, vec![]).await, 1);
}

/// The connection is killed while a large insert transaction runs: either
/// the whole batch is there or none of it; what was committed before stays.
/// A connection killed in the middle of a write transaction: patients are
/// inserted (several statements), then the notes statement waits on a table
/// lock this test holds and is killed while it waits, so the kill always
/// lands mid-transaction. Nothing of the batch stays; what was committed
/// before does; the pool recovers.
#[tokio::test]
async fn a_connection_dropped_mid_transaction_loses_nothing_committed() {
    use medvault::NewNote;
    let f = Fixture::mysql().await;
    let a = f.admin().await;
    let first = a
        .insert_patient(&patient("Committed", "Before", "1950-01-01"))
        .await
        .unwrap();
    let batch: Vec<_> = (0..2_000)
        .map(|i| {
            (
                patient(&format!("Bulk{i}"), "Row", "1990-01-01"),
                vec![NewNote {
                    scope: None,
                    body: format!("note {i}"),
                }],
            )
        })
        .collect();
    let db = f.mysql.as_ref().unwrap().name.clone();
    // Another transaction locks every gap of `notes` (InnoDB, repeatable
    // read): an insert into it waits for that lock.
    let mut locker = mysql_async::Conn::from_url(f.url.as_str()).await.unwrap();
    locker.query_drop("START TRANSACTION").await.unwrap();
    locker
        .query_drop("SELECT id FROM notes FOR UPDATE")
        .await
        .unwrap();
    let killer = async {
        let mut k = mysql_async::Conn::from_url(f.url.as_str()).await.unwrap();
        let mut killed = false;
        for _ in 0..2_000 {
            let ids: Vec<u64> = k
                .query(format!(
                    "SELECT id FROM information_schema.processlist
                     WHERE db = '{db}' AND info LIKE 'INSERT INTO `notes`%'"
                ))
                .await
                .unwrap();
            if let Some(id) = ids.first() {
                k.query_drop(format!("KILL CONNECTION {id}")).await.unwrap();
                killed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // Whatever happened, the lock goes, so the test cannot hang.
        locker.query_drop("ROLLBACK").await.unwrap();
        killed
    };
    let (result, killed) = tokio::join!(a.insert_patients_with_notes(&batch), killer);
    assert!(killed, "the notes insert was seen waiting and killed");
    assert!(
        matches!(
            result,
            Err(Error::StoreUnavailable { .. }) | Err(Error::Store(_))
        ),
        "{result:?}"
    );
    assert_eq!(f.patient_count().await, 1, "nothing of the batch stays");
    assert_eq!(f.int("SELECT count(*) FROM notes", vec![]).await, 0);
    assert_eq!(
        a.get_patient(&first).await.unwrap().family_name,
        "Committed"
    );
    // The pool recovers: the next write works.
    a.insert_patient(&patient("After", "Kill", "1960-01-01"))
        .await
        .unwrap();
}

#[tokio::test]
async fn two_clients_migrating_at_once_is_safe() {
    let (url_text, guard) = empty_mysql().await;
    let name = &guard.name;
    let url = parse(&url_text);
    let mut c = mysql_async::Conn::from_url(mysql_base_url().as_str())
        .await
        .unwrap();
    let (a, b) = tokio::join!(MysqlStore::connect(&url), MysqlStore::connect(&url));
    a.unwrap();
    b.unwrap();
    let n: Option<i64> = c
        .query_first(format!(
            "SELECT count(*) FROM `{name}`.refinery_schema_history"
        ))
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/mysql"))
        .unwrap()
        .count();
    assert_eq!(n, Some(files as i64), "each migration applied once");
    c.disconnect().await.unwrap();
}

#[tokio::test]
async fn a_migration_that_fails_half_way_says_so_and_blocks_later_starts() {
    use refinery::{Migration, Runner};
    let (url_text, _guard) = empty_mysql().await;
    let pool = mysql_async::Pool::new(driver_opts(&parse(&url_text)));
    let runner = Runner::new(&[
        Migration::unapplied("V1__first", "CREATE TABLE one (x INT)").unwrap(),
        // Its first statement commits (DDL), its second fails.
        Migration::unapplied(
            "V2__broken",
            "CREATE TABLE two (x INT); CREATE TABLE one (y INT);",
        )
        .unwrap(),
    ]);
    let err = migrate_with(&pool, &runner, "test").await.unwrap_err();
    // Only the server's error code (1050: table exists) reaches the user,
    // never the server's text, which quotes names and values.
    assert!(
        matches!(&err, Error::Migration(m) if m.contains("failed half-way") && m.contains("server error 1050")),
        "{err}"
    );
    assert!(!err.to_string().contains("already exists"), "{err}");
    let mut c = pool.get_conn().await.unwrap();
    let stored: Option<String> = c
        .query_first("SELECT detail FROM medvault_migration_guard WHERE id = 1")
        .await
        .unwrap();
    let stored = stored.unwrap();
    assert!(
        stored.contains("1050") && !stored.contains("already exists"),
        "{stored}"
    );
    // What the server keeps in the guard row is not shown either.
    c.query_drop("UPDATE medvault_migration_guard SET detail = 'planted text' WHERE id = 1")
        .await
        .unwrap();
    drop(c);
    let err = migrate_with(&pool, &runner, "test").await.unwrap_err();
    assert!(
        matches!(&err, Error::Migration(m) if m.contains("earlier schema migration failed")),
        "{err}"
    );
    assert!(!err.to_string().contains("planted"), "{err}");
    pool.disconnect().await.unwrap();
}
