//! The production key protection, pinned. The rest of the suite uses a
//! cheap Argon2 setting so it stays fast; this test checks what users get.

use medvault::keys::pgp::{self, KdfParams, LockedKey};
use medvault::Error;
use openpgp::crypto::S2K;
use openpgp::packet::key::SecretKeyMaterial;
use openpgp::parse::Parse;
use openpgp::types::{AEADAlgorithm, SymmetricAlgorithm};
use sequoia_openpgp as openpgp;

#[test]
fn production_keys_use_argon2id_128mib_with_aead() {
    assert_eq!(
        KdfParams::PRODUCTION,
        KdfParams {
            t: 3,
            p: 4,
            m_log2: 17
        }
    );
    let pw = "a long pass phrase".into();
    let (cert, locked) =
        pgp::generate("carol", &pw, KdfParams::PRODUCTION, "ROOTFPR", None).unwrap();
    assert_eq!(pgp::root_pin(&cert).as_deref(), Some("ROOTFPR"));
    assert_eq!(cert.primary_key().key().version(), 6, "RFC 9580 key");
    let tsk = openpgp::Cert::from_bytes(&locked).unwrap();
    let mut salts = Vec::new();
    let mut n = 0;
    for ka in tsk.keys().secret() {
        let Some(SecretKeyMaterial::Encrypted(e)) = ka.key().optional_secret() else {
            panic!("secret key stored unencrypted");
        };
        match e.s2k() {
            S2K::Argon2 { salt, t, p, m } => {
                assert_eq!((*t, *p, *m), (3, 4, 17));
                salts.push(*salt);
            }
            other => panic!("S2K is {other:?}, not Argon2"),
        }
        assert_eq!(e.algo(), SymmetricAlgorithm::AES256);
        assert_eq!(e.aead_algo(), Some(AEADAlgorithm::OCB));
        n += 1;
    }
    assert_eq!(n, 2, "primary and encryption subkey");
    assert_ne!(salts[0], salts[1], "a salt per key");

    let key = LockedKey::parse(&locked).unwrap();
    assert!(matches!(
        key.unlock_decryptor("carol", &"wrong".into()),
        Err(Error::WrongPassword(_))
    ));
    let t = std::time::Instant::now();
    let dec = key.unlock_decryptor("carol", &pw).unwrap();
    eprintln!("production unlock: {:?} (one Argon2id run)", t.elapsed());
    let wrapped = pgp::wrap(&[&cert], b"0123456789abcdef0123456789abcdef").unwrap();
    assert_eq!(
        &dec.unwrap(&wrapped).unwrap()[..],
        b"0123456789abcdef0123456789abcdef"
    );
}

#[test]
fn only_curve25519_keys_are_accepted() {
    use openpgp::cert::prelude::*;
    let (rsa, _) = CertBuilder::new()
        .set_cipher_suite(CipherSuite::RSA3k)
        .add_userid("rsa")
        .add_storage_encryption_subkey()
        .generate()
        .unwrap();
    let err = pgp::check_cert(&rsa).unwrap_err();
    assert!(
        matches!(&err, Error::BadKey(m) if m.contains("Curve25519")),
        "{err}"
    );
    let (ok, _) = pgp::generate_unprotected("cv25519").unwrap();
    pgp::check_cert(&ok).unwrap();
    assert!(matches!(
        LockedKey::parse(b"not a key"),
        Err(Error::BadKey(_))
    ));
}

#[test]
fn planted_keys_with_extreme_kdf_parameters_are_refused_before_unlocking() {
    let pw = "pw".into();
    // Too many passes, too many lanes, more than 256 MiB (a login unlocks
    // two keys at once): each is refused before any password is tried.
    for (t, p, m_log2) in [(9, 1, 3), (1, 9, 7), (1, 1, 19)] {
        let (_, locked) = pgp::generate("x", &pw, KdfParams { t, p, m_log2 }, "R", None).unwrap();
        let err = LockedKey::parse(&locked).err().unwrap();
        assert!(
            matches!(&err, Error::BadKey(m) if m.contains("out of range")),
            "t={t} p={p} m=2^{m_log2}: {err}"
        );
    }
    // The edge of the range is accepted.
    let (_, locked) = pgp::generate(
        "x",
        &pw,
        KdfParams {
            t: 8,
            p: 1,
            m_log2: 3,
        },
        "R",
        None,
    )
    .unwrap();
    LockedKey::parse(&locked).unwrap();
}
