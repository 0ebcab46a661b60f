//! Blind indexes v1 (`schema/FORMAT.md` §4): equality search over encrypted
//! fields.
//!
//! `HMAC-SHA256(index key(table, column, epoch), canonical parts)` truncated
//! to the number of bits the policy names. Truncation makes different
//! values share an index value on purpose (see [`plan`]); a lookup always
//! decrypts the candidates and drops false positives, so results are exact.

pub mod canonical;

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::crypto::secret::IndexKey;
use crate::schema::{Index, IndexKind, Lengths};

/// A blind index value. Public: it is stored in clear beside the ciphertext,
/// and it may appear in a query. Never print it in an error message all the
/// same: it still tells equal values apart.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BlindIndex(Vec<u8>);

impl BlindIndex {
    /// The stored bytes (`ceil(bits / 8)` bytes, unused low bits zero).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Wraps stored bytes.
    pub fn from_bytes(b: Vec<u8>) -> Self {
        BlindIndex(b)
    }
}

impl std::fmt::Debug for BlindIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlindIndex({} bytes)", self.0.len())
    }
}

/// Computes the blind index of canonical `parts` (§4.2: each part as a
/// u32 big-endian length and its UTF-8 bytes), truncated to `bits`.
pub fn compute<S: AsRef<str>>(key: &IndexKey, parts: &[S], bits: u16) -> BlindIndex {
    // Invariant: HMAC accepts any key length.
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key.expose())
        .expect("HMAC takes any key length");
    for p in parts {
        let p = p.as_ref();
        mac.update(&(p.len() as u32).to_be_bytes());
        mac.update(p.as_bytes());
    }
    let full = mac.finalize().into_bytes();
    truncate(&full, bits)
}

/// The value index `idx` stores for a row whose covered columns hold the
/// canonical values `canonical` (in the index's order), under `key`
/// (FORMAT.md §4.2, §4.4):
/// - a prefix index: the keyed prefix of each of its lengths, side by
///   side ([`prefix_chain`]);
/// - any other kind: the keyed parts its kind takes of each value, or,
///   for a value with no such part (a year-month of a year alone, a name
///   with no sound), the value of one empty part, which no search asks
///   for: keyed like any other, so the server cannot tell that class from
///   the others, where NULL means "not filled yet".
pub fn value(key: &IndexKey, idx: &Index, canonical: &[&str]) -> BlindIndex {
    if let (Some(lengths), [one]) = (idx.prefix, canonical) {
        return prefix_chain(key, one, lengths, lengths.longest, idx.bits);
    }
    if let (IndexKind::Tokens, [one]) = (idx.kind, canonical) {
        return keyed_words(key, one, idx.bits, idx.max_words());
    }
    match idx.parts(canonical) {
        Some(parts) => compute(key, &parts, idx.bits),
        None => compute(key, &[""], idx.bits),
    }
}

/// The keyed prefixes of canonical value `c` at each length from
/// `lengths.shortest` to `upto` (at most `lengths.longest`), side by side:
/// the prefix of length k is `compute(key, [decimal k, first k characters
/// of c], bits)`, the whole value where it is shorter than k (FORMAT.md
/// §4.4). The length is keyed with it, so a short value's prefixes
/// differ from one length to the next.
pub fn prefix_chain(key: &IndexKey, c: &str, lengths: Lengths, upto: u8, bits: u16) -> BlindIndex {
    let upto = upto.min(lengths.longest);
    let mut out = Vec::new();
    for k in lengths.shortest..=upto {
        // The byte end of the first k characters, or of `c`.
        let end = c
            .char_indices()
            .nth(usize::from(k))
            .map_or(c.len(), |(i, _)| i);
        let prefix = &c[..end];
        let part = compute(key, &[k.to_string().as_str(), prefix], bits);
        out.extend_from_slice(part.as_bytes());
    }
    BlindIndex(out)
}

/// The keyed words of `words` (a tokens index's part: words separated by
/// one space, [`canonical::words`]), each `compute(key, [word], bits)`,
/// duplicates dropped, in increasing byte order, the first `max` of them
/// side by side (FORMAT.md §4.5); a value of no word holds the keyed empty
/// part, as any value with no part. The order tells nothing of the words'
/// order. A value of more than `max` keyed words keeps `max`: more than
/// the index's slots, so it is a candidate of every search, which compares
/// all its words after decryption.
pub fn keyed_words(key: &IndexKey, words: &str, bits: u16, max: usize) -> BlindIndex {
    let mut keyed: Vec<Vec<u8>> = words
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(|w| compute(key, &[w], bits).0)
        .collect();
    if keyed.is_empty() {
        return compute(key, &[""], bits);
    }
    keyed.sort_unstable();
    keyed.dedup();
    keyed.truncate(max.max(1));
    BlindIndex(keyed.concat())
}

/// The stored values a prefix index `idx` holds for rows whose canonical
/// value starts with `typed` (its canonical form): the bounds of one
/// range, `low <= stored <= high`, exactly the values beginning with the
/// keyed prefixes of `typed`'s lengths (the longest one included where
/// `typed` is longer). `None` if `idx` is no prefix index or `typed` is
/// shorter than its shortest length.
pub fn prefix_range(key: &IndexKey, idx: &Index, typed: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let lengths = idx.prefix?;
    let n = typed.chars().count();
    if n < usize::from(lengths.shortest) {
        return None;
    }
    let upto = u8::try_from(n).unwrap_or(u8::MAX).min(lengths.longest);
    let low = prefix_chain(key, typed, lengths, upto, idx.bits).0;
    let mut high = low.clone();
    high.resize(idx.stored_len().max(low.len()), 0xff);
    Some((low, high))
}

fn truncate(full: &[u8], bits: u16) -> BlindIndex {
    let bits = usize::from(bits.clamp(1, 256));
    let bytes = bits.div_ceil(8);
    let mut out = full[..bytes].to_vec();
    let rem = bits % 8;
    if rem != 0 {
        // Keep the top `rem` bits of the last byte.
        out[bytes - 1] &= 0xffu8 << (8 - rem);
    }
    BlindIndex(out)
}

/// What a choice of index bits means for a planned population.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    /// Planned number of rows R.
    pub population: u64,
    /// Bits the plan is for.
    pub bits: u16,
    /// Expected coincidences per index value, C = R / 2^bits: how many
    /// unrelated rows share a value (the "crowd" an attacker cannot see into,
    /// and the extra rows a lookup decrypts).
    pub coincidences: f64,
    /// Whether `2 <= C < sqrt(R)` (the target of DESIGN.md).
    pub in_target: bool,
}

/// Coincidence count of `bits` for `population` rows.
pub fn plan(population: u64, bits: u16) -> Plan {
    let r = population.max(1) as f64;
    let c = r / 2f64.powi(i32::from(bits));
    Plan {
        population,
        bits,
        coincidences: c,
        in_target: c >= 2.0 && c < r.sqrt(),
    }
}

/// The recommended bits for a planned population: the most bits that still
/// leave at least two coincidences (C >= 2), at least 1 and at most 64.
pub fn recommend_bits(population: u64) -> u16 {
    let half = (population / 2).max(1);
    // floor(log2(half))
    let b = 63 - half.leading_zeros() as u16;
    b.clamp(1, 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_masks_unused_bits() {
        let full = [0xffu8; 32];
        assert_eq!(truncate(&full, 15).as_bytes(), &[0xff, 0xfe]);
        assert_eq!(truncate(&full, 16).as_bytes(), &[0xff, 0xff]);
        assert_eq!(truncate(&full, 1).as_bytes(), &[0x80]);
    }

    #[test]
    fn planner_targets_two_or_more_coincidences() {
        for r in [1_000u64, 20_000, 100_000, 1_000_000, 10_000_000] {
            let b = recommend_bits(r);
            let p = plan(r, b);
            assert!(p.coincidences >= 2.0, "{r}: {p:?}");
            assert!(
                plan(r, b + 1).coincidences < 2.0,
                "{r}: one more bit would leave < 2"
            );
            assert!(p.in_target, "{r}: {p:?}");
        }
        assert_eq!(recommend_bits(100_000), 15);
    }
}
