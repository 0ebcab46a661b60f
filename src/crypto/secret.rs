//! Secret key types. None of them implements `Debug` output of its bytes,
//! `Clone` only where a key must be shared across threads, and every one
//! zeroizes on drop. Compare them with [`ct_eq`].

use aes::Aes256Enc;
use secrecy::{ExposeSecret, SecretBox};

use super::siv::Siv;
use subtle::ConstantTimeEq;

/// 32 random bytes that key one scope in one epoch (DESIGN.md "Key hierarchy").
pub struct EpochKey(SecretBox<[u8; 32]>);

impl EpochKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut b = Box::new([0u8; 32]);
        super::fill_random(&mut b[..]);
        EpochKey(SecretBox::new(b))
    }

    /// Builds a key from exactly 32 bytes (e.g. unwrapped from a grant).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        boxed(bytes).map(EpochKey)
    }

    /// The key bytes, for derivation and wrapping only.
    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EpochKey(<secret>)")
    }
}

/// The raw SQLCipher database key (32 random bytes, never typed by a person).
pub struct DbKey(SecretBox<[u8; 32]>);

impl DbKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut b = Box::new([0u8; 32]);
        super::fill_random(&mut b[..]);
        DbKey(SecretBox::new(b))
    }

    /// From exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        boxed(bytes).map(DbKey)
    }

    /// The key bytes.
    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for DbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbKey(<secret>)")
    }
}

/// 64-byte AES-256-SIV key (first half CMAC, second half CTR; RFC 5297),
/// kept expanded for [`super::envelope`].
pub struct FieldKey {
    raw: SecretBox<[u8; 64]>,
    siv: Siv<Aes256Enc>,
    /// Which key object this is (not derived from the key): what an
    /// [`super::envelope::Prefix`] records, so a prefix is only ever used
    /// with the key it was made from.
    instance: u64,
}

impl FieldKey {
    pub(crate) fn from_array(b: Box<[u8; 64]>) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        // Invariant: 64 bytes is exactly an AES-256-SIV key.
        let siv = Siv::<Aes256Enc>::new(&b[..]).expect("64-byte AES-256-SIV key");
        FieldKey {
            raw: SecretBox::new(b),
            siv,
            instance: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// This key object's instance number (see the field).
    pub(crate) fn instance(&self) -> u64 {
        self.instance
    }

    /// The key bytes.
    pub fn expose(&self) -> &[u8; 64] {
        self.raw.expose_secret()
    }

    /// The expanded cipher.
    pub(crate) fn siv(&self) -> &Siv<Aes256Enc> {
        &self.siv
    }
}

impl std::fmt::Debug for FieldKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FieldKey(<secret>)")
    }
}

/// 32-byte HMAC-SHA256 key of one blind index. Secret; the index values it
/// makes are public ([`crate::index::BlindIndex`]).
pub struct IndexKey(SecretBox<[u8; 32]>);

impl IndexKey {
    pub(crate) fn from_array(b: Box<[u8; 32]>) -> Self {
        IndexKey(SecretBox::new(b))
    }

    /// The key bytes.
    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IndexKey(<secret>)")
    }
}

/// Copies exactly 32 bytes straight into a zeroizing box (no stack copy).
fn boxed(bytes: &[u8]) -> Option<SecretBox<[u8; 32]>> {
    if bytes.len() != 32 {
        return None;
    }
    let mut b = Box::new([0u8; 32]);
    b.copy_from_slice(bytes);
    Some(SecretBox::new(b))
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
