//! The one place keys are derived (`schema/FORMAT.md` §2). Each derived key
//! has one purpose and its own label constant.

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::secret::{DbKey, EpochKey, FieldKey, IndexKey};

/// HKDF info of the AES-256-SIV field key.
pub const FIELD_LABEL: &str = "medvault/v1/field";
/// HKDF info prefix of a blind-index key; `<table>/<column>` follows.
pub const INDEX_LABEL_PREFIX: &str = "medvault/v1/index/";
/// HKDF info of an epoch key's public commitment (lets a client check that a
/// key it unwrapped is the one the signed epoch row names).
pub const COMMITMENT_LABEL: &str = "medvault/v1/commitment";
/// HKDF info of the key that seals the root secret key (from the recovery
/// key that exists only as Shamir shares).
pub const ROOT_SEAL_LABEL: &str = "medvault/v1/root-seal";
/// HKDF info of the keyring file's authentication key (from the DB key).
pub const KEYRING_MAC_LABEL: &str = "medvault/v1/keyring";

fn expand(ikm: &[u8], info: &[u8], out: &mut [u8]) {
    let hk = Hkdf::<Sha256>::new(None, ikm);
    // Invariant: `out` is at most 64 bytes, far below HKDF-SHA256's limit
    // of 255 * 32 bytes, so `expand` cannot fail.
    hk.expand(info, out)
        .expect("HKDF output length is within bounds");
}

/// The field key of an epoch key.
pub fn field_key(k: &EpochKey) -> FieldKey {
    let mut out = Box::new([0u8; 64]);
    expand(k.expose(), FIELD_LABEL.as_bytes(), &mut out[..]);
    FieldKey::from_array(out)
}

/// The blind-index key of `(table, column)` under an epoch key.
pub fn index_key(k: &EpochKey, table: &str, column: &str) -> IndexKey {
    let label = format!("{INDEX_LABEL_PREFIX}{table}/{column}");
    let mut out = Box::new([0u8; 32]);
    expand(k.expose(), label.as_bytes(), &mut out[..]);
    IndexKey::from_array(out)
}

/// Public commitment to an epoch key; safe to store in clear.
pub fn commitment(k: &EpochKey) -> [u8; 32] {
    let mut out = [0u8; 32];
    expand(k.expose(), COMMITMENT_LABEL.as_bytes(), &mut out);
    out
}

/// The root-seal key of a recovery key.
pub fn root_seal_key(rk: &[u8; 32]) -> FieldKey {
    let mut out = Box::new([0u8; 64]);
    expand(rk, ROOT_SEAL_LABEL.as_bytes(), &mut out[..]);
    FieldKey::from_array(out)
}

/// The keyring file's MAC key.
pub fn keyring_mac_key(k: &DbKey) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    expand(k.expose(), KEYRING_MAC_LABEL.as_bytes(), &mut out[..]);
    out
}

/// HMAC-SHA256 of `parts` (each part length-prefixed so the encoding is
/// unambiguous) under `key`.
pub fn hmac_parts(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    // Invariant: HMAC accepts keys of any length.
    let mut mac =
        <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(&(p.len() as u32).to_be_bytes());
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256 of `msg` under `key`.
pub fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    // Invariant: HMAC accepts keys of any length.
    let mut mac =
        <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    Sha256::digest(data).into()
}
