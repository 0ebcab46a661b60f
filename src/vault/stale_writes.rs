//! Writes sealed under keys read before a rotation or a revocation that
//! commits between the session's check and its write: the guard inside the
//! write's transaction ([`crate::store::Store::write_guarded`]) refuses
//! them, and the write runs again under the state as it is then. And an
//! operation whose records must agree on a time, slower than a second. Run on
//! SQLCipher and, with the `mysql` feature, on the server of
//! `MEDVAULT_TEST_MYSQL_URL`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::crypto::envelope::Header;
use crate::error::Error;
use crate::keys::pgp::KdfParams;
use crate::records::{NewPatient, Sex};
use crate::store::{Store, Value};
use crate::vault::interposed::{Hooks, Interposed, Statements};
use crate::vault::{CreateOptions, OpenOptions, Session, Vault};

pub(super) const ADMIN_PW: &str = "an administrator's long passphrase";
const NURSE_PW: &str = "a nurse's own long passphrase";

/// Runs `act` (once) before the first row write it sees is passed on:
/// what another client does between this session's check of the key
/// state and its write.
struct ActFirst {
    inner: Arc<dyn Store>,
    act: tokio::sync::Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>,
}

#[async_trait::async_trait]
impl Hooks for ActFirst {
    fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }
    async fn before_write(&self) {
        let act = self.act.lock().await.take();
        if let Some(act) = act {
            act.await;
        }
    }
}

/// Puts `act` between `s`'s next check and its write.
fn act_before_next_write(s: &mut Session, act: impl Future<Output = ()> + Send + 'static) {
    let inner = Arc::clone(&s.store);
    s.store = Arc::new(Interposed(ActFirst {
        inner,
        act: tokio::sync::Mutex::new(Some(Box::pin(act))),
    }));
}

/// A future made anew for each write.
type Act = Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Runs `act` before each of the next `times` row writes it sees.
struct ActEach {
    inner: Arc<dyn Store>,
    times: std::sync::atomic::AtomicUsize,
    act: Act,
}

#[async_trait::async_trait]
impl Hooks for ActEach {
    fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }
    async fn before_write(&self) {
        use std::sync::atomic::Ordering;
        let left = self
            .times
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if left.is_ok() {
            (self.act)().await;
        }
    }
}

/// Keeps the first row write it sees from the store and hands its
/// statements over (a write signed now, stored later by SQL); fails every
/// write after the first `fail_after` passed on, if set.
struct HoldBack {
    inner: Arc<dyn Store>,
    held: Arc<std::sync::Mutex<Option<Statements>>>,
    hold: std::sync::atomic::AtomicBool,
    fail_after: Option<std::sync::atomic::AtomicUsize>,
}

impl Hooks for HoldBack {
    fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }
    fn statements(&self, s: Statements) -> crate::error::Result<Option<Statements>> {
        use std::sync::atomic::Ordering;
        if self.hold.swap(false, Ordering::SeqCst) {
            *self.held.lock().expect("not poisoned") = Some(s);
            return Ok(None);
        }
        if let Some(left) = &self.fail_after {
            if left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_err()
            {
                return Err(Error::Store("cut short by the test".into()));
            }
        }
        Ok(Some(s))
    }
}

/// Keeps `s`'s next row write from the store; its statements are in the
/// answer once it has run.
fn hold_back_next_write(s: &mut Session) -> Arc<std::sync::Mutex<Option<Statements>>> {
    let held = Arc::new(std::sync::Mutex::new(None));
    let inner = Arc::clone(&s.store);
    s.store = Arc::new(Interposed(HoldBack {
        inner,
        held: Arc::clone(&held),
        hold: std::sync::atomic::AtomicBool::new(true),
        fail_after: None,
    }));
    held
}

/// Signs the insert of a patient named `family` as `s` without storing
/// it: the patient's id, and the statements that store it (by SQL,
/// later), as `s` would have run them.
async fn signed_not_stored(s: &mut Session, family: &str) -> (crate::Id, Statements) {
    let held = hold_back_next_write(s);
    let id = s
        .insert_patient(&patient(family))
        .await
        .expect("signed, held back");
    let statements = held.lock().expect("not poisoned").take().expect("held");
    (id, statements)
}

/// Fails every row write of `s` after its next `n`.
fn fail_writes_after(s: &mut Session, n: usize) {
    let inner = Arc::clone(&s.store);
    s.store = Arc::new(Interposed(HoldBack {
        inner,
        held: Arc::new(std::sync::Mutex::new(None)),
        hold: std::sync::atomic::AtomicBool::new(false),
        fail_after: Some(std::sync::atomic::AtomicUsize::new(n)),
    }));
}

/// A vault made for one test, and how to open it.
pub(super) struct Place {
    pub(super) url: String,
    opts: OpenOptions,
    shares: Vec<String>,
    _dir: tempfile::TempDir,
    _db: TestDb,
}

/// The test database to drop at the end (MySQL): server URL, name.
struct TestDb(Option<(String, String)>);

impl Drop for TestDb {
    fn drop(&mut self) {
        #[cfg(feature = "mysql")]
        if let Some((base, name)) = self.0.take() {
            use mysql_async::prelude::Queryable;
            // From a thread of its own: `drop` cannot await.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let mut c = mysql_async::Conn::from_url(base.as_str()).await.ok()?;
                    c.query_drop("SET SESSION lock_wait_timeout = 20")
                        .await
                        .ok()?;
                    c.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
                        .await
                        .ok()?;
                    c.disconnect().await.ok()
                })
            })
            .join();
        }
    }
}

impl Place {
    pub(super) async fn sqlite() -> Place {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlcipher:{}", dir.path().join("v.db").display());
        Place::made(url, dir, TestDb(None)).await
    }

    #[cfg(feature = "mysql")]
    pub(super) async fn mysql() -> Place {
        use mysql_async::prelude::Queryable;
        let base = std::env::var("MEDVAULT_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
        let name = format!("mvu_{}", hex::encode(crate::crypto::random_array::<8>()));
        let mut c = mysql_async::Conn::from_url(base.as_str())
            .await
            .expect("the test server");
        c.query_drop(format!("CREATE DATABASE `{name}`"))
            .await
            .expect("a test database");
        c.disconnect().await.expect("disconnect");
        let (head, _) = base.rsplit_once('/').expect("a URL ending in /database");
        let url = format!("{head}/{name}");
        // Dropped at the end, also if making the vault fails.
        let db = TestDb(Some((base, name)));
        let dir = tempfile::tempdir().expect("a temporary directory");
        Place::made(url, dir, db).await
    }

    async fn made(url: String, dir: tempfile::TempDir, db: TestDb) -> Place {
        let kdf = KdfParams::danger_fast_for_tests();
        let report = Vault::create(
            &url,
            "admin",
            ADMIN_PW,
            &CreateOptions {
                kdf,
                ..Default::default()
            },
        )
        .await
        .expect("a new vault");
        let opts = OpenOptions {
            kdf,
            pinned_root: Some(report.root_fingerprint),
            new_password: None,
            state_dir: None,
        };
        Place {
            url,
            opts,
            shares: report.shares,
            _dir: dir,
            _db: db,
        }
    }

    pub(super) async fn open(&self, user: &str, pw: &str) -> Session {
        Vault::open(&self.url, user, pw, &self.opts)
            .await
            .expect("a login")
    }

    /// A user holding `identity` read-write, logged in.
    async fn nurse(&self, admin: &Session) -> Session {
        admin
            .add_user("nurse", "set by the administrator first", false)
            .await
            .expect("a new user");
        admin.grant("nurse", "identity").await.expect("a grant");
        let opts = OpenOptions {
            new_password: Some(NURSE_PW.into()),
            ..self.opts.clone()
        };
        Vault::open(&self.url, "nurse", "set by the administrator first", &opts)
            .await
            .expect("a first login")
    }
}

fn patient(family: &str) -> NewPatient {
    NewPatient {
        family_name: family.into(),
        given_names: "Jeanne".into(),
        born: "1970-03-02".into(),
        sex: Sex::F,
    }
}

/// The epoch patient `id`'s family name is sealed under, as stored.
async fn stored_epoch(s: &Session, id: &crate::Id) -> u32 {
    let rows = s
        .store
        .select(
            "SELECT family_name FROM patients WHERE id = ?".into(),
            vec![Value::Blob(id.as_bytes().to_vec())],
        )
        .await
        .expect("the row");
    match rows.first().and_then(|r| r.first()) {
        Some(crate::sql::Cell::Bytes(b)) => Header::peek(b).expect("an envelope").epoch,
        other => panic!("no sealed family name: {other:?}"),
    }
}

/// A rotation that stores its new epoch, seals every row again and
/// retires the old epoch between a session's check and its insert: the
/// insert does not commit under the retired epoch (where no search finds
/// it and the old epoch's holders read it); it is sealed again under the
/// new one. Then the same for an update.
async fn a_write_racing_a_rotation_lands_under_the_new_epoch(place: Place) {
    let mut a = place.open("admin", ADMIN_PW).await;
    let b = Arc::new(place.open("admin", ADMIN_PW).await);
    let first = a.insert_patient(&patient("Avant")).await.expect("insert");
    assert_eq!(stored_epoch(&a, &first).await, 1);
    let other = Arc::clone(&b);
    act_before_next_write(&mut a, async move {
        let r = other.rotate("identity").await.expect("a rotation");
        assert!(r.finished && r.retired == vec![1], "{r:?}");
    });
    let raced = a.insert_patient(&patient("Pendant")).await.expect("insert");
    assert_eq!(stored_epoch(&a, &first).await, 2, "the rotation ran");
    assert_eq!(
        stored_epoch(&a, &raced).await,
        2,
        "written under the new epoch"
    );
    let found = a
        .find_patients(&crate::PatientQuery {
            family_name: Some("Pendant".into()),
            ..Default::default()
        })
        .await
        .expect("search");
    assert_eq!(found.len(), 1);

    let other = Arc::clone(&b);
    act_before_next_write(&mut a, async move {
        let r = other.rotate("identity").await.expect("a rotation");
        assert!(r.finished && r.retired == vec![2], "{r:?}");
    });
    a.update_patient(&raced, &patient("Après"))
        .await
        .expect("update");
    assert_eq!(
        stored_epoch(&a, &raced).await,
        3,
        "updated under the new epoch"
    );
    assert_eq!(
        a.get_patient(&raced).await.expect("read").family_name,
        "Après"
    );
}

/// A revocation between a session's check and its write: the write is
/// refused ([`Error::NoAccess`]), not committed under the grant just taken
/// away.
async fn a_write_racing_its_revocation_is_refused(place: Place) {
    let admin = Arc::new(place.open("admin", ADMIN_PW).await);
    let mut nurse = place.nurse(&admin).await;
    nurse
        .insert_patient(&patient("Avant"))
        .await
        .expect("the nurse writes");
    let other = Arc::clone(&admin);
    act_before_next_write(&mut nurse, async move {
        other
            .revoke("nurse", "identity")
            .await
            .expect("a revocation");
    });
    let err = nurse
        .insert_patient(&patient("Pendant"))
        .await
        .expect_err("a write after the revocation");
    assert!(matches!(err, Error::NoAccess(_)), "{err}");
    let page = admin.list_patients(None, 10).await.expect("list");
    assert_eq!(page.patients.len(), 1, "nothing written");
}

/// A recovery of the administrator's key that takes more than a second
/// between signing their new row and recording their replaced key: the
/// record is dated as the row, so what the old key signed (their patient)
/// stays genuine. (Dated when it was written, it was newer than the row
/// and counted for nothing: the patient read as forged.)
async fn a_slow_recovery_keeps_what_the_old_key_signed(place: Place) {
    let a = place.open("admin", ADMIN_PW).await;
    let p = a.insert_patient(&patient("Avant")).await.expect("insert");
    // A retirement the administrator signs: the recovery signs it again
    // (a write, where the hook waits), between the new row and the record.
    a.rotate("identity").await.expect("a rotation");
    drop(a);
    let mut root = Vault::open_with_shares(&place.url, &place.shares, &place.opts)
        .await
        .expect("the root from shares");
    act_before_next_write(&mut root, async {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    });
    root.recover_reset_password("admin", "a new one from the root", &place.shares)
        .await
        .expect("a recovery");
    drop(root);
    let opts = OpenOptions {
        new_password: Some(ADMIN_PW.into()),
        ..place.opts.clone()
    };
    let a = Vault::open(&place.url, "admin", "a new one from the root", &opts)
        .await
        .expect("a first login");
    assert_eq!(
        a.get_patient(&p).await.expect("genuine").family_name,
        "Avant"
    );
}

/// An update whose row another client changes between its read and its
/// write is read and written again, four times in all: three lost races
/// still end in the update, four are [`Error::Concurrent`] and leave the
/// other client's version.
async fn an_update_losing_every_race_says_concurrent(place: Place) {
    let other = Arc::new(place.open("admin", ADMIN_PW).await);
    let seed = other
        .insert_patient(&patient("Avant"))
        .await
        .expect("insert");
    for (races, done) in [(3, true), (4, false)] {
        let mut a = place.open("admin", ADMIN_PW).await;
        let (b, n) = (
            Arc::clone(&other),
            Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        );
        let act: Act = Box::new(move || {
            let (b, n) = (Arc::clone(&b), Arc::clone(&n));
            Box::pin(async move {
                let k = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                b.update_patient(&seed, &patient(&format!("Autre{k}")))
                    .await
                    .expect("the other client's update");
            })
        });
        let inner = Arc::clone(&a.store);
        a.store = Arc::new(Interposed(ActEach {
            inner,
            times: std::sync::atomic::AtomicUsize::new(races),
            act,
        }));
        let r = a.update_patient(&seed, &patient("Mienne")).await;
        let now = other.get_patient(&seed).await.expect("read").family_name;
        if done {
            r.expect("the update, after three lost races");
            assert_eq!(now, "Mienne");
        } else {
            assert!(matches!(r, Err(Error::Concurrent(_))), "{r:?}");
            assert_eq!(now, "Autre3");
        }
    }
}

/// A row the nurse signed before her revocation, with the grant she
/// held, and stored by SQL after it, while the revocation's rotation has
/// not retired the old epoch: forged, since the revocation's record of
/// closed writes does not list its batch (FORMAT.md §5.11). Her row from
/// before stays genuine; the rotation stops at the forged row rather than
/// vouch for it, and finishes once it is deleted. Granted again, she
/// writes as herself.
async fn a_row_signed_before_its_revocation_and_stored_after_is_forged(place: Place) {
    let admin = place.open("admin", ADMIN_PW).await;
    let mut nurse = place.nurse(&admin).await;
    let before = nurse
        .insert_patient(&patient("Avant"))
        .await
        .expect("a write");
    let (late, late_write) = signed_not_stored(&mut nurse, "Pendant").await;
    let r = admin
        .revoke_with("nurse", "identity", &mut |_| {
            std::ops::ControlFlow::Break(())
        })
        .await
        .expect("a revocation");
    assert!(!r.finished, "stopped before the retirement: {r:?}");
    admin
        .store
        .write_all(late_write)
        .await
        .expect("stored by SQL");
    assert_eq!(
        stored_epoch(&admin, &late).await,
        1,
        "under the live old epoch"
    );
    // A session opened now reads the stored record.
    let reader = place.open("admin", ADMIN_PW).await;
    let err = reader.get_patient(&late).await.expect_err("forged");
    assert!(matches!(err, Error::Forged { .. }), "{err}");
    assert_eq!(
        reader
            .get_patient(&before)
            .await
            .expect("genuine")
            .family_name,
        "Avant"
    );
    // The store drops the record: the session that stored it still
    // refuses the row, and its rotation stops at it rather than vouch for
    // it. (A client that never read the record would take the row.)
    admin
        .store
        .write_all(vec![(
            "DELETE FROM medvault_closed_writes".into(),
            Vec::new(),
        )])
        .await
        .expect("dropped by SQL");
    let err = admin.get_patient(&late).await.expect_err("still forged");
    assert!(matches!(err, Error::Forged { .. }), "{err}");
    let err = admin.rotate("identity").await.expect_err("stops");
    assert!(matches!(err, Error::Forged { .. }), "{err}");
    admin.delete_patient(&late).await.expect("deleted");
    let r = admin.rotate("identity").await.expect("a rotation");
    assert!(r.finished && r.retired == vec![1], "{r:?}");
    admin
        .grant("nurse", "identity")
        .await
        .expect("granted again");
    let again = nurse
        .insert_patient(&patient("Retour"))
        .await
        .expect("a write");
    assert_eq!(
        reader
            .get_patient(&again)
            .await
            .expect("genuine")
            .family_name,
        "Retour"
    );
}

/// A downgrade to read whose rotation is cut short: the nurse's grants
/// are for reading and her key's write right is closed already, so a row
/// she signed before and stores by SQL under the epoch still current is
/// forged, and her session cannot write.
async fn a_row_signed_before_a_downgrade_cut_short_is_forged(place: Place) {
    let mut admin = place.open("admin", ADMIN_PW).await;
    let mut nurse = place.nurse(&admin).await;
    let before = nurse
        .insert_patient(&patient("Avant"))
        .await
        .expect("a write");
    let (late, late_write) = signed_not_stored(&mut nurse, "Pendant").await;
    // The grants and the record pass; the rotation's new epoch does not.
    fail_writes_after(&mut admin, 1);
    let err = admin
        .grant_rights("nurse", "identity", crate::Rights::Read)
        .await
        .expect_err("cut short");
    assert!(matches!(err, Error::Store(_)), "{err}");
    let reader = place.open("admin", ADMIN_PW).await;
    reader
        .store
        .write_all(late_write)
        .await
        .expect("stored by SQL");
    assert_eq!(stored_epoch(&reader, &late).await, 1, "the current epoch");
    let err = reader.get_patient(&late).await.expect_err("forged");
    assert!(matches!(err, Error::Forged { .. }), "{err}");
    assert_eq!(
        reader
            .get_patient(&before)
            .await
            .expect("genuine")
            .family_name,
        "Avant"
    );
    let err = nurse
        .insert_patient(&patient("Après"))
        .await
        .expect_err("read only");
    assert!(matches!(err, Error::ReadOnly(_)), "{err}");
}

/// The administrator who revoked the nurse is disabled, her late row
/// stored by SQL meanwhile: their record of closed writes is signed again
/// by the one disabling them, so the row stays forged and the disable's
/// rotation stops at it (a disabled administrator's own records count for
/// nothing: they could date them as they like).
async fn a_disabled_administrator_s_record_is_signed_again(place: Place) {
    let admin = place.open("admin", ADMIN_PW).await;
    admin
        .add_user("second", "set by the administrator first", true)
        .await
        .expect("an administrator");
    admin.grant("second", "identity").await.expect("a grant");
    let opts = OpenOptions {
        new_password: Some("the second administrator's own".into()),
        ..place.opts.clone()
    };
    let second = Vault::open(
        &place.url,
        "second",
        "set by the administrator first",
        &opts,
    )
    .await
    .expect("a first login");
    let mut nurse = place.nurse(&admin).await;
    // A row for the rotation to stop after.
    admin
        .insert_patient(&patient("Avant"))
        .await
        .expect("a write");
    let (late, late_write) = signed_not_stored(&mut nurse, "Pendant").await;
    let r = second
        .revoke_with("nurse", "identity", &mut |_| {
            std::ops::ControlFlow::Break(())
        })
        .await
        .expect("a revocation");
    assert!(!r.finished, "{r:?}");
    admin
        .store
        .write_all(late_write)
        .await
        .expect("stored by SQL");
    // Disabling `second` rotates identity, which stops at the late row
    // (it would seal it again as genuine if the record no longer counted).
    let report = admin.disable_user("second").await.expect("disabled");
    assert!(
        report
            .unfinished
            .iter()
            .any(|(s, why)| s == "identity" && why.contains("forged")),
        "{report:?}"
    );
    let reader = place.open("admin", ADMIN_PW).await;
    let err = reader.get_patient(&late).await.expect_err("forged");
    assert!(matches!(err, Error::Forged { .. }), "{err}");
}

/// Batch rows of the nurse's that do not decode (a signature stored as
/// an integer, on SQLite) or repeat another's signature do not keep her
/// revocation from storing its record: they are counted as stored, and
/// listed once or not at all.
async fn junk_batches_do_not_block_a_revocation(place: Place) {
    let admin = place.open("admin", ADMIN_PW).await;
    let nurse = place.nurse(&admin).await;
    nurse
        .insert_patient(&patient("Avant"))
        .await
        .expect("a write");
    for (id, sig) in [
        (Value::Blob(vec![9; 16]), Value::Int(5)),
        (
            Value::Blob(vec![8; 16]),
            Value::Blob(b"not a signature".to_vec()),
        ),
        (
            Value::Blob(vec![7; 16]),
            Value::Blob(b"not a signature".to_vec()),
        ),
    ] {
        admin
            .store
            .write_all(vec![(
                "INSERT INTO medvault_batches \
                 (id, kind, signer, signed_at, leaves, evidence, signature) \
                 VALUES (?, 'write', 'nurse', 0, ?, ?, ?)"
                    .into(),
                vec![id, Value::Blob(vec![0; 32]), Value::Blob(Vec::new()), sig],
            )])
            .await
            .expect("planted by SQL");
    }
    let r = admin
        .revoke("nurse", "identity")
        .await
        .expect("a revocation");
    assert!(r.finished, "{r:?}");
    let v = admin.verify_store().await.expect("verify");
    assert!(
        v.tables
            .iter()
            .any(|(t, n)| t == "medvault_closed_writes" && *n == 1),
        "{v:?}"
    );
}

/// A revocation cut short before its rotation made a new epoch: the
/// nurse's write right under the current epoch is closed, so granting it
/// again first rotates the scope; her next row is genuine. (Granted under
/// the closed epoch, every row she wrote would read as forged.)
async fn a_grant_after_a_revocation_cut_short_gives_the_write_right_back(place: Place) {
    let mut admin = place.open("admin", ADMIN_PW).await;
    let nurse = place.nurse(&admin).await;
    nurse
        .insert_patient(&patient("Avant"))
        .await
        .expect("a write");
    // The record and the deleted grants pass; the new epoch does not.
    fail_writes_after(&mut admin, 1);
    let err = admin
        .revoke("nurse", "identity")
        .await
        .expect_err("cut short");
    assert!(matches!(err, Error::Store(_)), "{err}");
    let other = place.open("admin", ADMIN_PW).await;
    other
        .grant("nurse", "identity")
        .await
        .expect("granted again");
    let p = nurse
        .insert_patient(&patient("Retour"))
        .await
        .expect("a write");
    assert_eq!(stored_epoch(&other, &p).await, 2, "under a new epoch");
    assert_eq!(
        other.get_patient(&p).await.expect("genuine").family_name,
        "Retour"
    );
}

/// A note in her personal scope (never rotated) that the nurse signed
/// before she was disabled and stored by SQL after: `verify` counts it
/// forged, and the one she wrote before stays genuine.
async fn a_note_signed_before_a_disable_and_stored_after_is_forged(place: Place) {
    let admin = place.open("admin", ADMIN_PW).await;
    let mut nurse = place.nurse(&admin).await;
    let p = admin
        .insert_patient(&patient("Avant"))
        .await
        .expect("a write");
    nurse
        .add_note(&p, "written before", Some("personal"))
        .await
        .expect("a note");
    let held = hold_back_next_write(&mut nurse);
    nurse
        .add_note(&p, "written after", Some("personal"))
        .await
        .expect("signed, held back");
    let late_write = held.lock().expect("not poisoned").take().expect("held");
    admin.disable_user("nurse").await.expect("disabled");
    admin
        .store
        .write_all(late_write)
        .await
        .expect("stored by SQL");
    let reader = place.open("admin", ADMIN_PW).await;
    let v = reader.verify_store().await.expect("verify");
    assert_eq!(v.forged, 1, "{:?}", v.problems);
    assert_eq!(v.rows_signed, 2, "the patient and the note before: {v:?}");
    // A record whose signature does not verify closes nothing, and says so.
    reader
        .store
        .write_all(vec![(
            "UPDATE medvault_closed_writes SET signed_at = signed_at + 1".into(),
            Vec::new(),
        )])
        .await
        .expect("edited by SQL");
    // A session of its own: a session keeps each batch's verdict.
    let fresh = place.open("admin", ADMIN_PW).await;
    let v = fresh.verify_store().await.expect("verify");
    assert_eq!(v.forged, 0, "{:?}", v.problems);
    assert!(
        v.problems
            .iter()
            .any(|p| p.contains("closed writes of nurse")),
        "{:?}",
        v.problems
    );
}

/// A patient the administrator signed with their old key before a
/// recovery replaced it, stored by SQL after: forged (whoever holds the
/// old key cannot date a batch before the replacement); the patient the
/// old key wrote before stays genuine.
async fn a_row_signed_by_a_replaced_key_and_stored_after_is_forged(place: Place) {
    let mut a = place.open("admin", ADMIN_PW).await;
    let before = a.insert_patient(&patient("Avant")).await.expect("a write");
    let (late, late_write) = signed_not_stored(&mut a, "Pendant").await;
    drop(a);
    let root = Vault::open_with_shares(&place.url, &place.shares, &place.opts)
        .await
        .expect("the root from shares");
    root.recover_reset_password("admin", "a new one from the root", &place.shares)
        .await
        .expect("a recovery");
    root.store
        .write_all(late_write)
        .await
        .expect("stored by SQL");
    let opts = OpenOptions {
        new_password: Some(ADMIN_PW.into()),
        ..place.opts.clone()
    };
    let a = Vault::open(&place.url, "admin", "a new one from the root", &opts)
        .await
        .expect("a first login");
    let err = a.get_patient(&late).await.expect_err("forged");
    assert!(matches!(err, Error::Forged { .. }), "{err}");
    assert_eq!(
        a.get_patient(&before).await.expect("genuine").family_name,
        "Avant"
    );
}

/// Runs each named `async fn name(place: Place)` once per store.
macro_rules! per_store {
    ($($name:ident),* $(,)?) => {
        mod sqlcipher {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Place::sqlite().await).await
                }
            )*
        }

        #[cfg(feature = "mysql")]
        mod mysql {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Place::mysql().await).await
                }
            )*
        }
    };
}

per_store!(
    a_write_racing_a_rotation_lands_under_the_new_epoch,
    a_write_racing_its_revocation_is_refused,
    a_slow_recovery_keeps_what_the_old_key_signed,
    an_update_losing_every_race_says_concurrent,
    a_row_signed_before_its_revocation_and_stored_after_is_forged,
    a_grant_after_a_revocation_cut_short_gives_the_write_right_back,
    a_note_signed_before_a_disable_and_stored_after_is_forged,
    junk_batches_do_not_block_a_revocation,
    a_row_signed_before_a_downgrade_cut_short_is_forged,
    a_disabled_administrator_s_record_is_signed_again,
    a_row_signed_by_a_replaced_key_and_stored_after_is_forged,
);
