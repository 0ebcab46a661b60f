//! The OpenPGP layer (sequoia-openpgp 2.x): user and root key pairs, their
//! password protection, wrapping of symmetric keys to a certificate, and
//! signatures over medvault's canonical records.
//!
//! Every validity check uses [`StandardPolicy`]. Only Curve25519 keys are
//! generated or accepted (Ed25519 primary for certification and signing,
//! X25519 subkey for encryption), which keeps the `crypto-rust` backend off
//! its variable-time RSA/DSA/ElGamal code (SECURITY.md).

use std::io::Write;

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::crypto::{KeyPair, Password, SessionKey, S2K};
use openpgp::packet::prelude::*;
use openpgp::packet::signature::subpacket::NotationDataFlags;
use openpgp::packet::{PKESK, SKESK};
use openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, MessageStructure, VerificationHelper,
};
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Encryptor, LiteralWriter, Message, Recipient};
use openpgp::serialize::MarshalInto;
use openpgp::types::{
    AEADAlgorithm, KeyFlags, PublicKeyAlgorithm, SignatureType, SymmetricAlgorithm,
};
use openpgp::{Cert, KeyHandle, Packet};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

const POLICY: &StandardPolicy<'static> = &StandardPolicy::new();

/// Argon2id parameters of the S2K that protects a secret key (RFC 9580 §3.7.1.4).
///
/// The production setting is what users get; tests may ask for a cheaper
/// one through [`KdfParams::danger_fast_for_tests`], and one test pins the
/// production values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Passes.
    pub t: u8,
    /// Lanes.
    pub p: u8,
    /// log2 of the memory in KiB (16 = 64 MiB).
    pub m_log2: u8,
}

impl KdfParams {
    /// The production setting: Argon2id, 3 passes, 4 lanes, 128 MiB
    /// (RFC 9580's second recommended setting raised from 64 to 128 MiB).
    /// About 0.35 s per unlock on the reference machine; see README.
    pub const PRODUCTION: KdfParams = KdfParams {
        t: 3,
        p: 4,
        m_log2: 17,
    };

    /// A setting that makes a key cheap to guess: 1 pass, 1 lane, 64 KiB.
    /// Only for test suites, which create and unlock many keys.
    pub const fn danger_fast_for_tests() -> KdfParams {
        KdfParams {
            t: 1,
            p: 1,
            m_log2: 6,
        }
    }

    fn s2k(self) -> S2K {
        S2K::Argon2 {
            salt: crate::crypto::random_array(),
            t: self.t,
            p: self.p,
            m: self.m_log2,
        }
    }
}

fn pgp_err(context: &str, e: anyhow::Error) -> Error {
    // sequoia's errors are anyhow; they never contain secret bytes, but we
    // keep only a short message at our boundary.
    Error::BadKey(format!("{context}: {e}"))
}

/// Generates an RFC 9580 (v6) key pair for `userid`: an Ed25519 primary
/// key that certifies and signs, and an X25519 encryption subkey, both
/// protected by `password` with Argon2id + AES-256/OCB.
///
/// Returns the certificate (public) and the serialized locked secret key.
///
/// `root` is the vault's root fingerprint: it is written into the user ID's
/// self-signature (notation [`ROOT_NOTATION`]), made with the new key. At
/// login the client pins the root it reads there: only someone who can
/// unlock this key with the user's password could have put it there, so a
/// database or keyring writer cannot swap the root under the user.
///
/// `set_by` names whoever chose `password` when it is not the key's owner
/// (an administrator's `user add`, a recovery): it is written into the
/// same self-signature (notation [`SET_BY_NOTATION`]), and the owner's
/// first login must change the password ([`password_set_by`]).
pub fn generate(
    userid: &str,
    password: &Password,
    kdf: KdfParams,
    root: &str,
    set_by: Option<&str>,
) -> Result<(Cert, Vec<u8>)> {
    let mut binding = SignatureBuilder::new(SignatureType::PositiveCertification)
        .set_notation(
            ROOT_NOTATION,
            root.as_bytes(),
            NotationDataFlags::empty().set_human_readable(),
            false,
        )
        .map_err(|e| pgp_err("notation", e))?;
    if let Some(by) = set_by {
        binding = binding
            .add_notation(
                SET_BY_NOTATION,
                by.as_bytes(),
                NotationDataFlags::empty().set_human_readable(),
                false,
            )
            .map_err(|e| pgp_err("notation", e))?;
    }
    let cert = new_cert(userid, binding)?;
    let locked = lock(&cert, password, kdf)?;
    Ok((cert.strip_secret_key_material(), locked))
}

/// The one key shape medvault makes (FORMAT.md §8): RFC 9580, an Ed25519
/// primary key that certifies and signs, an X25519 subkey for storage and
/// transport encryption, no expiry; `binding` is the user ID's
/// self-signature. Secrets are returned unprotected.
fn new_cert(userid: &str, binding: SignatureBuilder) -> Result<Cert> {
    let (cert, _rev) = CertBuilder::new()
        .set_profile(openpgp::Profile::RFC9580)
        .map_err(|e| pgp_err("profile", e))?
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
        .set_validity_period(None)
        .add_userid_with(userid, binding)
        .map_err(|e| pgp_err("user id", e))?
        .add_subkey(
            KeyFlags::empty()
                .set_storage_encryption()
                .set_transport_encryption(),
            None,
            None,
        )
        .generate()
        .map_err(|e| pgp_err("generate", e))?;
    Ok(cert)
}

/// Re-encrypts every secret key of `cert` (which must hold unencrypted
/// secrets) under `password` with an Argon2 S2K, and serializes the result.
fn lock(cert: &Cert, password: &Password, kdf: KdfParams) -> Result<Vec<u8>> {
    let mut packets: Vec<Packet> = Vec::new();
    for ka in cert.keys().secret() {
        let key = ka.key().clone();
        let (public, secret) = key.take_secret();
        let secret = secret
            .encrypt_with(
                &public,
                kdf.s2k(),
                SymmetricAlgorithm::AES256,
                Some(AEADAlgorithm::OCB),
                password,
            )
            .map_err(|e| pgp_err("lock", e))?;
        let (locked, _) = public.add_secret(secret);
        packets.push(if ka.primary() {
            locked.role_into_primary().into()
        } else {
            locked.role_into_subordinate().into()
        });
    }
    let (locked_cert, _) = cert
        .clone()
        .insert_packets(packets)
        .map_err(|e| pgp_err("lock", e))?;
    let bytes = locked_cert
        .as_tsk()
        .to_vec()
        .map_err(|e| pgp_err("serialize", e))?;
    Ok(bytes)
}

/// `open` (secrets unencrypted) with a new self-signature on each user ID:
/// the newest one's subpackets minus the [`SET_BY_NOTATION`].
fn chosen_by_owner(open: Cert) -> Result<Cert> {
    let err = |e| pgp_err("user id binding", e);
    let mut signer = open
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .and_then(|k| k.into_keypair())
        .map_err(err)?;
    let mut packets: Vec<Packet> = Vec::new();
    {
        let vc = open.with_policy(POLICY, None).map_err(err)?;
        for u in vc.userids() {
            let old = u.binding_signature();
            // Signatures are dated to the second, and the newest binding
            // wins: the new one must be strictly newer.
            if let Some(t) = old.signature_creation_time() {
                while std::time::SystemTime::now() < t + std::time::Duration::from_secs(1) {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
            // The same subpackets; of the notations, only the root's is
            // kept (medvault's keys carry no others).
            let mut b = SignatureBuilder::from(old.clone());
            b.hashed_area_mut()
                .remove_all(openpgp::packet::signature::subpacket::SubpacketTag::NotationData);
            if let Some(root) = root_pin(&open) {
                b = b
                    .set_notation(
                        ROOT_NOTATION,
                        root.as_bytes(),
                        NotationDataFlags::empty().set_human_readable(),
                        false,
                    )
                    .map_err(err)?;
            }
            let sig = u.userid().bind(&mut signer, &open, b).map_err(err)?;
            packets.push(sig.into());
        }
    }
    let (cert, _) = open.insert_packets(packets).map_err(err)?;
    Ok(cert)
}

/// Notation naming the vault root a user's key belongs to (FORMAT.md §8).
pub const ROOT_NOTATION: &str = "root@medvault";

/// Notation naming who chose the password a key was first locked under,
/// when that was not its owner (FORMAT.md §8).
pub const SET_BY_NOTATION: &str = "password-set-by@medvault";

fn binding_notation(cert: &Cert, name: &str) -> Option<String> {
    let vc = cert.with_policy(POLICY, None).ok()?;
    let value = vc.userids().find_map(|u| {
        u.binding_signature()
            .notation(name)
            .next()
            .map(|v| v.to_vec())
    })?;
    String::from_utf8(value).ok()
}

/// The root fingerprint a certificate's own user ID binding names, if any.
pub fn root_pin(cert: &Cert) -> Option<String> {
    binding_notation(cert, ROOT_NOTATION)
}

/// Who chose the password this key is locked under, if it was not its
/// owner: the [`SET_BY_NOTATION`] of the newest valid self-signature on
/// the user ID. Only the key's own primary key makes self-signatures, so
/// the notation goes away only when its owner signs a newer binding
/// without it ([`LockedKey::relock`] does, at a password change); putting
/// an older copy of the key back brings the demand back, never removes it.
pub fn password_set_by(cert: &Cert) -> Option<String> {
    binding_notation(cert, SET_BY_NOTATION)
}

/// Whether `cert` has a valid user ID that is exactly `name`.
pub fn has_userid(cert: &Cert, name: &str) -> bool {
    cert.with_policy(POLICY, None)
        .is_ok_and(|vc| vc.userids().any(|u| u.userid().value() == name.as_bytes()))
}

/// Parses a public certificate and checks that medvault accepts it.
pub fn parse_cert(bytes: &[u8]) -> Result<Cert> {
    let cert = Cert::from_bytes(bytes).map_err(|e| pgp_err("certificate", e))?;
    check_cert(&cert)?;
    Ok(cert)
}

/// A certificate medvault accepts: valid under the standard policy now,
/// an Ed25519 primary key, and an X25519 encryption subkey.
pub fn check_cert(cert: &Cert) -> Result<()> {
    let vc = cert
        .with_policy(POLICY, None)
        .map_err(|e| pgp_err("certificate not valid under the standard policy", e))?;
    let primary = vc.primary_key().key().pk_algo();
    if !matches!(
        primary,
        PublicKeyAlgorithm::Ed25519 | PublicKeyAlgorithm::EdDSA
    ) {
        return Err(Error::BadKey(format!(
            "primary key algorithm {primary} is not Ed25519 (medvault accepts Curve25519 only)"
        )));
    }
    let enc: Vec<_> = vc
        .keys()
        .subkeys()
        .supported()
        .alive()
        .revoked(false)
        .for_storage_encryption()
        .collect();
    if enc.is_empty() {
        return Err(Error::BadKey("no usable encryption subkey".into()));
    }
    for k in enc {
        let algo = k.key().pk_algo();
        if !matches!(algo, PublicKeyAlgorithm::X25519 | PublicKeyAlgorithm::ECDH) {
            return Err(Error::BadKey(format!(
                "encryption subkey algorithm {algo} is not X25519 (medvault accepts Curve25519 only)"
            )));
        }
    }
    Ok(())
}

/// Hex fingerprint of a certificate (upper case, as sequoia prints it).
pub fn fingerprint(cert: &Cert) -> String {
    cert.fingerprint().to_hex()
}

/// Serialized public certificate.
pub fn cert_bytes(cert: &Cert) -> Result<Vec<u8>> {
    cert.to_vec().map_err(|e| pgp_err("serialize", e))
}

/// A locked secret key: parsed, checked, not yet unlocked.
pub struct LockedKey {
    tsk: Cert,
}

impl LockedKey {
    /// Parses a serialized locked secret key.
    pub fn parse(bytes: &[u8]) -> Result<LockedKey> {
        let tsk = Cert::from_bytes(bytes).map_err(|e| pgp_err("secret key", e))?;
        if !tsk.is_tsk() {
            return Err(Error::BadKey("no secret key material".into()));
        }
        check_cert(&tsk)?;
        for ka in tsk.keys().secret() {
            check_s2k(ka.key().optional_secret())?;
        }
        Ok(LockedKey { tsk })
    }

    /// The same secret keys locked under `new` (FORMAT.md §8): each is
    /// decrypted with `old` and encrypted again under `new` with a fresh
    /// Argon2 salt. `Err(WrongPassword)` if `old` does not unlock them.
    ///
    /// A key whose password someone else chose ([`password_set_by`]) also
    /// gets a new self-signature on its user ID, the same but without that
    /// notation: its owner has now chosen. (It is dated at least a second
    /// after the one it replaces, which the newest-binding rule needs.)
    pub fn relock(
        &self,
        user: &str,
        old: &Password,
        new: &Password,
        kdf: KdfParams,
    ) -> Result<Vec<u8>> {
        let mut packets: Vec<Packet> = Vec::new();
        for ka in self.tsk.keys().secret() {
            let key = ka
                .key()
                .clone()
                .decrypt_secret(old)
                .map_err(|_| Error::WrongPassword(user.to_owned()))?;
            packets.push(if ka.primary() {
                key.role_into_primary().into()
            } else {
                key.role_into_subordinate().into()
            });
        }
        let (mut open, _) = self
            .tsk
            .clone()
            .insert_packets(packets)
            .map_err(|e| pgp_err("relock", e))?;
        if password_set_by(&open).is_some() {
            open = chosen_by_owner(open)?;
        }
        lock(&open, new, kdf)
    }

    /// Whether every secret key is protected by Argon2 at least as costly
    /// as `floor` (passes and memory; lanes do not add cost).
    pub fn protected_at_least(&self, floor: KdfParams) -> bool {
        use openpgp::packet::key::SecretKeyMaterial;
        self.tsk
            .keys()
            .secret()
            .all(|ka| match ka.key().optional_secret() {
                Some(SecretKeyMaterial::Encrypted(e)) => matches!(
                    e.s2k(),
                    S2K::Argon2 { t, m, .. } if *t >= floor.t && *m >= floor.m_log2
                ),
                _ => false,
            })
    }

    /// Checks the parts of the key a login acts on but no stored signature
    /// covers: a valid self-signed user ID `user` naming a root. Every key
    /// medvault makes has one, made by the key itself; a key stripped of it
    /// (which would also drop [`password_set_by`]'s demand) is tampered.
    pub fn check_binding(&self, user: &str) -> Result<()> {
        let cert = self.cert();
        if has_userid(&cert, user) && root_pin(&cert).is_some() {
            Ok(())
        } else {
            Err(Error::LockedKeyTampered(user.to_owned()))
        }
    }

    /// The public certificate.
    pub fn cert(&self) -> Cert {
        self.tsk.clone().strip_secret_key_material()
    }

    /// Unlocks both secret keys with `password`: the encryption subkey and
    /// the primary key, one Argon2 run each, on two threads.
    ///
    /// Unlocking the subkey alone would not prove the certificate: the
    /// secret-key encryption binds a key to its own public packet, not to
    /// the primary key or its self-signature, so anyone who can write the
    /// keyring could graft the user's encrypted subkey under a primary key
    /// of their own whose self-signature names another root. Only someone
    /// who knows the password can make a primary secret that unlocks with
    /// it, and that primary key made the self-signature (with its root
    /// notation) and the subkey's binding: so the password proves the
    /// whole certificate.
    pub fn unlock(&self, user: &str, password: &Password) -> Result<(Decryptor, RecordSigner)> {
        std::thread::scope(|s| {
            let signer = s.spawn(|| self.unlock_signer(user, password));
            let dec = self.unlock_decryptor(user, password);
            let signer = signer
                .join()
                .map_err(|_| Error::BadKey("the unlocking thread stopped".into()))?;
            match (dec, signer) {
                (Ok(dec), Ok(signer)) => Ok((dec, signer)),
                (Ok(_), Err(Error::WrongPassword(_))) => {
                    Err(Error::LockedKeyTampered(user.to_owned()))
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        })
    }

    /// Unlocks the encryption subkey: one Argon2 run. On its own it proves
    /// nothing about the primary key: logins use [`LockedKey::unlock`]. `Err(WrongPassword)`
    /// when the password does not decrypt it.
    pub fn unlock_decryptor(&self, user: &str, password: &Password) -> Result<Decryptor> {
        let vc = self
            .tsk
            .with_policy(POLICY, None)
            .map_err(|e| pgp_err("certificate", e))?;
        let ka = vc
            .keys()
            .subkeys()
            .secret()
            .supported()
            .alive()
            .revoked(false)
            .for_storage_encryption()
            .next()
            .ok_or_else(|| Error::BadKey("no secret encryption subkey".into()))?;
        let key = ka.key().clone();
        let key = if key.has_unencrypted_secret() {
            return Err(Error::BadKey("secret key is not password protected".into()));
        } else {
            key.decrypt_secret(password)
                .map_err(|_| Error::WrongPassword(user.to_owned()))?
        };
        let pair = key.into_keypair().map_err(|e| pgp_err("keypair", e))?;
        Ok(Decryptor { pair })
    }

    /// Unlocks the primary (certification and signing) key: one Argon2 run.
    pub fn unlock_signer(&self, user: &str, password: &Password) -> Result<RecordSigner> {
        let key = self
            .tsk
            .primary_key()
            .key()
            .clone()
            .parts_into_secret()
            .map_err(|e| pgp_err("primary key", e))?;
        if key.has_unencrypted_secret() {
            return Err(Error::BadKey("secret key is not password protected".into()));
        }
        let key = key
            .decrypt_secret(password)
            .map_err(|_| Error::WrongPassword(user.to_owned()))?;
        let pair = key.into_keypair().map_err(|e| pgp_err("keypair", e))?;
        Ok(RecordSigner { pair })
    }
}

/// A locked key comes from a file or a database: its S2K parameters are
/// checked before any password is tried, so a planted key cannot make the
/// client allocate terabytes or spin for hours.
fn check_s2k(secret: Option<&openpgp::packet::key::SecretKeyMaterial>) -> Result<()> {
    use openpgp::packet::key::SecretKeyMaterial;
    match secret {
        Some(SecretKeyMaterial::Encrypted(e)) => match e.s2k() {
            // Production is t=3, p=4, m=2^17 KiB; a login unlocks two keys
            // at once, so a planted key may cost at most 2 x 256 MiB.
            S2K::Argon2 { t, p, m, .. }
                if (1..=8).contains(t) && (1..=8).contains(p) && (3..=18).contains(m) =>
            {
                Ok(())
            }
            S2K::Argon2 { .. } => Err(Error::BadKey("Argon2 parameters out of range".into())),
            _ => Err(Error::BadKey(
                "secret key is not protected with Argon2".into(),
            )),
        },
        _ => Err(Error::BadKey("secret key is not password protected".into())),
    }
}

/// Unlocked encryption subkey: unwraps keys wrapped to its certificate.
pub struct Decryptor {
    pair: KeyPair,
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decryptor(<secret>)")
    }
}

/// Unlocked primary key: signs medvault records.
pub struct RecordSigner {
    pair: KeyPair,
}

impl std::fmt::Debug for RecordSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordSigner(<secret>)")
    }
}

impl RecordSigner {
    /// Signs `msg` (a canonical record encoding): a serialized OpenPGP
    /// binary signature packet.
    pub fn sign(&mut self, msg: &[u8]) -> Result<Vec<u8>> {
        let sig = SignatureBuilder::new(SignatureType::Binary)
            .sign_message(&mut self.pair, msg)
            .map_err(|e| pgp_err("sign", e))?;
        Packet::from(sig)
            .to_vec()
            .map_err(|e| pgp_err("serialize", e))
    }
}

/// How far in the future a signature's creation time may be (clocks of
/// clients differ).
const CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(300);

/// Verifies a signature made by [`RecordSigner::sign`] with `cert`'s
/// primary key over `msg`. The standard policy judges the signature (its
/// hash algorithm must be collision resistant: no SHA-1 or MD5), and it
/// must say when it was made, not later than now (beyond clock skew).
pub fn verify(cert: &Cert, msg: &[u8], sig: &[u8]) -> bool {
    use openpgp::policy::{HashAlgoSecurity, Policy as _};
    let Ok(Packet::Signature(sig)) = Packet::from_bytes(sig) else {
        return false;
    };
    if sig.typ() != SignatureType::Binary
        || POLICY
            .signature(&sig, HashAlgoSecurity::CollisionResistance)
            .is_err()
    {
        return false;
    }
    match sig.signature_creation_time() {
        Some(t) if t <= std::time::SystemTime::now() + CLOCK_SKEW => {}
        _ => return false,
    }
    sig.verify_message(cert.primary_key().key(), msg).is_ok()
}

/// Wraps `secret` to each certificate's encryption subkey (one OpenPGP
/// message, SEIPDv2 for v6 certificates).
pub fn wrap(recipients: &[&Cert], secret: &[u8]) -> Result<Vec<u8>> {
    let valid = recipients
        .iter()
        .map(|c| c.with_policy(POLICY, None))
        .collect::<openpgp::Result<Vec<_>>>()
        .map_err(|e| pgp_err("recipient", e))?;
    let mut keys: Vec<Recipient> = Vec::new();
    for vc in &valid {
        let before = keys.len();
        keys.extend(
            vc.keys()
                .supported()
                .alive()
                .revoked(false)
                .for_storage_encryption()
                .map(Recipient::from),
        );
        if keys.len() == before {
            return Err(Error::BadKey("recipient has no encryption key".into()));
        }
    }
    let mut sink = Vec::new();
    {
        let message = Message::new(&mut sink);
        let message = Encryptor::for_recipients(message, keys)
            .build()
            .map_err(|e| pgp_err("wrap", e))?;
        let mut w = LiteralWriter::new(message)
            .build()
            .map_err(|e| pgp_err("wrap", e))?;
        w.write_all(secret).map_err(|e| pgp_err("wrap", e.into()))?;
        w.finalize().map_err(|e| pgp_err("wrap", e))?;
    }
    Ok(sink)
}

/// The most [`Decryptor::unwrap`] reads out of a message.
const UNWRAP_LIMIT: u64 = 4096;

struct UnwrapHelper<'a> {
    pair: &'a KeyPair,
}

impl VerificationHelper for UnwrapHelper<'_> {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(Vec::new())
    }
    fn check(&mut self, _structure: MessageStructure) -> openpgp::Result<()> {
        // Wrapped keys are not signed inside the message; the grant row that
        // carries them is signed over their hash (FORMAT.md §5).
        Ok(())
    }
}

impl DecryptionHelper for UnwrapHelper<'_> {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        _skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        let mut pair = self.pair.clone();
        for pkesk in pkesks {
            if let Some((algo, sk)) = pkesk.decrypt(&mut pair, sym_algo) {
                if decrypt(algo, &sk) {
                    return Ok(None);
                }
            }
        }
        Err(anyhow::anyhow!("not wrapped to this key"))
    }
}

impl Decryptor {
    /// Unwraps a message made by [`wrap`]; `None` if it is not wrapped to
    /// this key or does not decrypt.
    pub fn unwrap(&self, msg: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let helper = UnwrapHelper { pair: &self.pair };
        let mut dec = DecryptorBuilder::from_bytes(msg)
            .ok()?
            .with_policy(POLICY, None, helper)
            .ok()?;
        // medvault wraps 32-byte keys: a message holding more (a planted
        // one, say) is not read past this bound.
        let mut out = Zeroizing::new(Vec::new());
        std::io::copy(
            &mut std::io::Read::take(&mut dec, UNWRAP_LIMIT + 1),
            &mut *out,
        )
        .ok()?;
        if out.len() as u64 > UNWRAP_LIMIT {
            return None;
        }
        Some(out)
    }
}

/// Serialized unlocked secret key (for the root key, which is then
/// encrypted under a key that exists only as Shamir shares).
pub fn generate_unprotected(userid: &str) -> Result<(Cert, Zeroizing<Vec<u8>>)> {
    let cert = new_cert(
        userid,
        SignatureBuilder::new(SignatureType::PositiveCertification),
    )?;
    let tsk = Zeroizing::new(
        cert.as_tsk()
            .to_vec()
            .map_err(|e| pgp_err("serialize", e))?,
    );
    Ok((cert.strip_secret_key_material(), tsk))
}

/// An unprotected secret key (the recovered root key).
pub struct OpenKey {
    tsk: Cert,
}

impl OpenKey {
    /// Parses a serialized unprotected secret key.
    pub fn parse(bytes: &[u8]) -> Result<OpenKey> {
        let tsk = Cert::from_bytes(bytes).map_err(|e| pgp_err("secret key", e))?;
        check_cert(&tsk)?;
        Ok(OpenKey { tsk })
    }

    /// The public certificate.
    pub fn cert(&self) -> Cert {
        self.tsk.clone().strip_secret_key_material()
    }

    /// The signer (primary key).
    pub fn signer(&self) -> Result<RecordSigner> {
        let pair = self
            .tsk
            .primary_key()
            .key()
            .clone()
            .parts_into_secret()
            .and_then(|k| k.into_keypair())
            .map_err(|e| pgp_err("root key", e))?;
        Ok(RecordSigner { pair })
    }

    /// The decryptor (encryption subkey).
    pub fn decryptor(&self) -> Result<Decryptor> {
        let vc = self
            .tsk
            .with_policy(POLICY, None)
            .map_err(|e| pgp_err("root key", e))?;
        let ka = vc
            .keys()
            .subkeys()
            .secret()
            .for_storage_encryption()
            .next()
            .ok_or_else(|| Error::BadKey("root key has no encryption subkey".into()))?;
        let pair = ka
            .key()
            .clone()
            .into_keypair()
            .map_err(|e| pgp_err("root key", e))?;
        Ok(Decryptor { pair })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openpgp::types::HashAlgorithm;

    fn signed_with(b: SignatureBuilder, msg: &[u8]) -> (Cert, Vec<u8>) {
        let (cert, tsk) = generate_unprotected("t").unwrap();
        let mut s = OpenKey::parse(&tsk).unwrap().signer().unwrap();
        let sig = b.sign_message(&mut s.pair, msg).unwrap();
        (cert, Packet::from(sig).to_vec().unwrap())
    }

    #[test]
    fn record_signatures_are_judged_by_the_standard_policy() {
        let msg = b"medvault/v1/user";
        let (cert, good) = signed_with(SignatureBuilder::new(SignatureType::Binary), msg);
        assert!(
            verify(&cert, msg, &good),
            "control: a sound signature verifies"
        );
        assert!(!verify(&cert, b"other", &good));

        // (A SHA-1 signature cannot even be made with these keys: sequoia
        // refuses; the policy check in `verify` is for what others made.)
        let sha512 =
            SignatureBuilder::new(SignatureType::Binary).set_hash_algo(HashAlgorithm::SHA512);
        let (cert, strong) = signed_with(sha512, msg);
        assert!(verify(&cert, msg, &strong));

        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(86_400);
        let future = SignatureBuilder::new(SignatureType::Binary)
            .set_signature_creation_time(later)
            .unwrap();
        let (cert, ahead) = signed_with(future, msg);
        assert!(
            !verify(&cert, msg, &ahead),
            "a signature from tomorrow is refused"
        );
    }

    #[test]
    fn unwrap_reads_no_more_than_a_key() {
        let (cert, tsk) = generate_unprotected("t").unwrap();
        let dec = OpenKey::parse(&tsk).unwrap().decryptor().unwrap();
        let key = wrap(&[&cert], &[7; 32]).unwrap();
        assert_eq!(&dec.unwrap(&key).unwrap()[..], &[7; 32]);
        let big = wrap(&[&cert], &[7; 5000]).unwrap();
        assert!(dec.unwrap(&big).is_none());
    }
}
