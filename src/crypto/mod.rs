//! Symmetric crypto primitives: secret key types, the one place keys are
//! derived, padding, and the field envelope codec (`schema/FORMAT.md` §1–§3).

pub mod envelope;
pub mod kdf;
pub mod padding;
pub mod secret;
pub mod siv;

/// Fills `buf` from the thread-local CSPRNG.
///
/// `rand::rng()` is ChaCha12 seeded from the operating system and reseeded
/// periodically. A nonce drawn from `getrandom` costs a system call
/// (≈0.5 µs, as much as sealing a short field, see NOTES.md); this costs a
/// few nanoseconds and is just as unpredictable.
pub fn fill_random(buf: &mut [u8]) {
    use rand::RngCore;
    rand::rng().fill_bytes(buf);
}

/// `N` random bytes.
pub fn random_array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill_random(&mut out);
    out
}
