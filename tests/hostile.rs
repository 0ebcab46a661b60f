//! A hostile database: values of the wrong type, NULLs, bytes that are not
//! UTF-8, integers out of range, and rows nobody signed. Each is a typed
//! error that names the table and column and never carries the value;
//! nothing the database says panics the client or changes what it believes.

#[macro_use]
mod common;
use common::*;
use medvault::Error;

per_store!(
    a_bad_users_row_is_a_typed_error_for_every_login,
    non_utf8_wrong_type_and_out_of_range_values_are_typed_errors,
    an_envelope_naming_an_unsigned_epoch_is_tampering,
    a_note_order_at_its_limit_is_an_error_not_an_overflow,
);

fn bad_stored(err: &Error, t: &str, c: &str) -> bool {
    matches!(err, Error::BadStoredValue { table, column, .. } if *table == t && *column == c)
}

async fn a_bad_users_row_is_a_typed_error_for_every_login(f: Fixture) {
    let a = f.admin().await;
    enrol(&a, "bob", "bob pw", false).await;
    drop(a);
    if f.is_mysql() {
        f.exec_script(&["ALTER TABLE users MODIFY signed_at VARCHAR(40) NOT NULL"])
            .await;
    }
    f.exec_script(&["UPDATE users SET signed_at = 'soon-ish' WHERE name = 'bob'"])
        .await;
    for (user, pw) in [(ADMIN, ADMIN_PW), ("bob", "bob pw")] {
        let err = f.login(user, pw).await.unwrap_err();
        assert!(bad_stored(&err, "users", "signed_at"), "{err}");
        assert!(!err.to_string().contains("soon-ish"), "{err}");
    }
}

async fn non_utf8_wrong_type_and_out_of_range_values_are_typed_errors(f: Fixture) {
    let a = f.admin().await;
    let id = a
        .insert_patient(&patient("Dupont", "Hélène", "1970-03-02"))
        .await
        .unwrap();
    a.add_note(&id, "first visit", None).await.unwrap();

    // A name that is not UTF-8 (certifier of the admin's own row).
    if f.is_mysql() {
        f.exec_script(&["ALTER TABLE users MODIFY certifier VARBINARY(64) NOT NULL"])
            .await;
    }
    f.exec_script(&["UPDATE users SET certifier = X'C3FF28' WHERE name = 'admin'"])
        .await;
    let err = f.login(ADMIN, ADMIN_PW).await.unwrap_err();
    assert!(bad_stored(&err, "users", "certifier"), "{err}");
    f.exec_script(&["UPDATE users SET certifier = '@root' WHERE name = 'admin'"])
        .await;

    // An integer out of range of its type (a timestamp beyond i64).
    if f.is_mysql() {
        f.exec_script(&["ALTER TABLE notes MODIFY created_at DECIMAL(30, 0) NOT NULL"])
            .await;
        f.exec_script(&["UPDATE notes SET created_at = 1000000000000000000000000"])
            .await;
    } else {
        f.exec_script(&["UPDATE notes SET created_at = 1e24"]).await;
    }
    let err = a.list_notes(&id, None).await.unwrap_err();
    assert!(bad_stored(&err, "notes", "created_at"), "{err}");
    assert!(!err.to_string().contains("1000000"), "{err}");

    // A ciphertext column holding a number.
    if f.is_mysql() {
        f.exec_script(&[
            "UPDATE patients SET given_names = '42'",
            "ALTER TABLE patients MODIFY given_names BIGINT NULL",
        ])
        .await;
    } else {
        f.exec_script(&["UPDATE patients SET given_names = 42"])
            .await;
    }
    let err = a.get_patient(&id).await.unwrap_err();
    assert!(bad_stored(&err, "patients", "given_names"), "{err}");
    let err = a.list_patients(None, 10).await.unwrap_err();
    assert!(bad_stored(&err, "patients", "given_names"), "{err}");

    // NULL where a value must be.
    if f.is_mysql() {
        f.exec_script(&["UPDATE patients SET given_names = NULL"])
            .await;
        let err = a.get_patient(&id).await.unwrap_err();
        assert!(bad_stored(&err, "patients", "given_names"), "{err}");
    }
}

async fn an_envelope_naming_an_unsigned_epoch_is_tampering(f: Fixture) {
    let a = f.admin().await;
    let id = a
        .insert_patient(&patient("Dupont", "Hélène", "1970-03-02"))
        .await
        .unwrap();
    let note = a.add_note(&id, "first visit", None).await.unwrap();
    // The attacker plants epoch 7 of `clinical` (scope 2), unsigned, and
    // points the note's envelope at it (bytes 5..9 of the header).
    f.exec(
        "INSERT INTO epochs (scope_id, epoch, state, commitment, creator, signature) \
         VALUES (2, 7, 'current', ?, 'admin', ?)",
        vec![vec![0u8; 32].into(), vec![0u8; 8].into()],
    )
    .await;
    let mut body = f
        .blob("SELECT body FROM notes WHERE id = ?", vec![note.into()])
        .await;
    body[5..9].copy_from_slice(&7u32.to_be_bytes());
    f.exec(
        "UPDATE notes SET body = ? WHERE id = ?",
        vec![body.into(), note.into()],
    )
    .await;
    let a = f.admin().await;
    let err = a.list_notes(&id, None).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Tampered {
                table: "notes",
                column: "body"
            }
        ),
        "{err}"
    );
}

/// Finding 1 of the hardening issue, the attack itself: an insider who
/// holds the database key grafts bob's encrypted subkey, byte for byte,
/// under a primary key of their own whose self-signature names a root of
/// their own; re-signs bob's row and a fresh `clinical` epoch (with a key
/// they chose) under that root; points the vault at it; re-MACs the
/// keyring. Bob's password still opens the grafted subkey, so before the
/// fix bob logged in and wrote new notes under the attacker's key. The
/// password must prove the whole certificate: the login is refused.
#[tokio::test]
async fn a_grafted_certificate_cannot_move_a_user_to_another_root() {
    use medvault::crypto::kdf;
    use medvault::crypto::secret::{DbKey, EpochKey};
    use medvault::keys::pgp::{self, LockedKey, OpenKey};
    use medvault::store::keyring::Keyring;
    use medvault::store::{EpochRow, GrantRow, ScopeRow, UserRow};
    use medvault::vault::trust;
    use openpgp::cert::prelude::*;
    use openpgp::crypto::S2K;
    use openpgp::packet::prelude::*;
    use openpgp::packet::signature::subpacket::NotationDataFlags;
    use openpgp::parse::Parse;
    use openpgp::serialize::MarshalInto;
    use openpgp::types::{AEADAlgorithm, KeyFlags, SignatureType, SymmetricAlgorithm};
    use sequoia_openpgp as openpgp;

    let f = Fixture::new().await;
    let a = f.admin().await;
    enrol(&a, "bob", "bob pw", false).await;
    a.grant("bob", "clinical").await.unwrap();
    let patient_id = a
        .insert_patient(&patient("Dupont", "Hélène", "1970-03-02"))
        .await
        .unwrap();
    drop(a);

    // The insider's database key (any user's keyring entry gives it).
    let kr_path = f.keyring_path();
    let mut kr = Keyring::read(&kr_path).unwrap();
    let bob_entry = kr.entry("bob").unwrap().clone();
    let raw_key = LockedKey::parse(&bob_entry.locked_key)
        .unwrap()
        .unlock_decryptor("bob", &"bob pw".into())
        .unwrap()
        .unwrap(&bob_entry.wrapped_db_key)
        .unwrap();
    let db_key = DbKey::from_slice(&raw_key).unwrap();
    let vault_id: [u8; 16] = f
        .blob(
            "SELECT value FROM vault_meta WHERE `key` = 'vault_id'",
            vec![],
        )
        .await
        .try_into()
        .unwrap();

    // The attacker's root, and a primary key naming it.
    let (evil_root, evil_tsk) = pgp::generate_unprotected("evil root").unwrap();
    let mut evil = OpenKey::parse(&evil_tsk).unwrap().signer().unwrap();
    let evil_fpr = pgp::fingerprint(&evil_root);
    let binding = SignatureBuilder::new(SignatureType::PositiveCertification)
        .set_notation(
            pgp::ROOT_NOTATION,
            evil_fpr.as_bytes(),
            NotationDataFlags::empty().set_human_readable(),
            false,
        )
        .unwrap();
    let (att, _) = CertBuilder::new()
        .set_profile(openpgp::Profile::RFC9580)
        .unwrap()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
        .set_validity_period(None)
        .add_userid_with("bob", binding)
        .unwrap()
        .generate()
        .unwrap();
    let primary = att.primary_key().key().clone().parts_into_secret().unwrap();
    let mut att_signer = primary.clone().into_keypair().unwrap();
    // Bob's encrypted subkey, copied as it is, bound to the new primary.
    let bob_tsk = Cert::from_bytes(&bob_entry.locked_key).unwrap();
    let sub = bob_tsk
        .keys()
        .subkeys()
        .secret()
        .next()
        .unwrap()
        .key()
        .clone();
    let sub_binding = SignatureBuilder::new(SignatureType::SubkeyBinding)
        .set_key_flags(
            KeyFlags::empty()
                .set_storage_encryption()
                .set_transport_encryption(),
        )
        .unwrap()
        .sign_subkey_binding(&mut att_signer, att.primary_key().key(), &sub)
        .unwrap();
    // The grafted primary is locked with Argon2 like a real one (under a
    // password of the attacker's), so the key parses as medvault's.
    let (public, secret) = primary.take_secret();
    let secret = secret
        .encrypt_with(
            &public,
            S2K::Argon2 {
                salt: [7; 16],
                t: 1,
                p: 1,
                m: 6,
            },
            SymmetricAlgorithm::AES256,
            Some(AEADAlgorithm::OCB),
            &"attacker".into(),
        )
        .unwrap();
    let (locked_primary, _) = public.add_secret(secret);
    let packets: Vec<Packet> = vec![
        locked_primary.role_into_primary().into(),
        sub.into(),
        sub_binding.into(),
    ];
    let (graft, _) = att.insert_packets(packets).unwrap();
    let graft_tsk = graft.as_tsk().to_vec().unwrap();
    let graft_cert = graft.clone().strip_secret_key_material();
    let graft_fpr = pgp::fingerprint(&graft_cert);
    assert!(LockedKey::parse(&graft_tsk).is_ok(), "the graft parses");

    // The rows bob's login reads, re-signed under the attacker's root.
    let now = 1_700_000_000;
    let mut row = UserRow {
        name: "bob".into(),
        role: "user".into(),
        status: "active".into(),
        cert: pgp::cert_bytes(&graft_cert).unwrap(),
        locked_key: graft_tsk.clone(),
        certifier: trust::ROOT.into(),
        signed_at: now,
        signature: Vec::new(),
    };
    row.signature = evil
        .sign(&trust::user_record(&vault_id, &row, &graft_fpr))
        .unwrap();
    let clinical = ScopeRow {
        id: 2,
        name: "clinical".into(),
        owner: None,
    };
    let chosen = EpochKey::generate();
    let mut epoch = EpochRow {
        scope_id: 2,
        epoch: 50,
        state: "current".into(),
        commitment: kdf::commitment(&chosen).to_vec(),
        creator: trust::ROOT.into(),
        signature: Vec::new(),
        retired: None,
    };
    epoch.signature = evil
        .sign(&trust::epoch_record(&vault_id, &clinical, &epoch))
        .unwrap();
    let mut grant = GrantRow {
        scope_id: 2,
        epoch: 50,
        grantee: "bob".into(),
        rights: "read-write".into(),
        wrapped: pgp::wrap(&[&graft_cert], chosen.expose()).unwrap(),
        granter: trust::ROOT.into(),
        signed_at: now,
        signature: Vec::new(),
    };
    grant.signature = evil
        .sign(&trust::grant_record(
            &vault_id, &clinical, &grant, &graft_fpr,
        ))
        .unwrap();
    f.exec(
        "UPDATE vault_meta SET value = ? WHERE `key` = 'root_cert'",
        vec![pgp::cert_bytes(&evil_root).unwrap().into()],
    )
    .await;
    f.exec(
        "UPDATE users SET cert = ?, locked_key = ?, certifier = ?, signed_at = ?, signature = ? \
         WHERE name = 'bob'",
        vec![
            row.cert.clone().into(),
            row.locked_key.clone().into(),
            row.certifier.as_str().into(),
            row.signed_at.into(),
            row.signature.clone().into(),
        ],
    )
    .await;
    f.exec("DELETE FROM grants WHERE grantee = 'bob'", vec![])
        .await;
    f.exec(
        "INSERT INTO epochs (scope_id, epoch, state, commitment, creator, signature) \
         VALUES (2, 50, 'current', ?, '@root', ?)",
        vec![
            epoch.commitment.clone().into(),
            epoch.signature.clone().into(),
        ],
    )
    .await;
    f.exec(
        "INSERT INTO grants (scope_id, epoch, grantee, rights, wrapped, granter, signed_at, \
         signature) VALUES (2, 50, 'bob', 'read-write', ?, '@root', ?, ?)",
        vec![
            grant.wrapped.clone().into(),
            now.into(),
            grant.signature.clone().into(),
        ],
    )
    .await;
    for e in kr.entries.iter_mut() {
        if e.name == "bob" {
            e.locked_key = graft_tsk.clone();
        }
    }
    kr.root_fingerprint = evil_fpr;
    kr.write(&db_key, &kr_path).unwrap();

    match f.login("bob", "bob pw").await {
        Ok(bob) => {
            // What the attack achieved before the fix: a note under the
            // attacker's key.
            let _ = bob.add_note(&patient_id, "new finding", None).await;
            panic!("bob logged in under the attacker's root");
        }
        Err(err) => assert!(
            matches!(err, Error::LockedKeyTampered(ref u) if u == "bob"),
            "{err}"
        ),
    }
}

/// `notes.seq` set to the largest integer: the next note cannot be
/// numbered. The store refuses the write (SQLite: the statement makes the
/// number NULL rather than wrap or turn real, and `NOT NULL` refuses it;
/// MySQL: the server's own error), nothing is written, no overflow.
async fn a_note_order_at_its_limit_is_an_error_not_an_overflow(f: Fixture) {
    let a = f.admin().await;
    let id = a
        .insert_patient(&patient("Dupont", "Hélène", "1970-03-02"))
        .await
        .unwrap();
    a.add_note(&id, "first visit", None).await.unwrap();
    f.exec("UPDATE notes SET seq = 9223372036854775807", vec![])
        .await;
    let err = a.add_note(&id, "second visit", None).await.unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err}");
    assert_eq!(f.int("SELECT count(*) FROM notes", vec![]).await, 1);
    assert_eq!(
        f.int(
            "SELECT count(*) FROM notes WHERE seq = 9223372036854775807",
            vec![]
        )
        .await,
        1
    );
}
