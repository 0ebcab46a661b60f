//! Length padding before encryption (`schema/FORMAT.md` §3), so the length
//! of a name leaks only its bucket.
//!
//! ISO/IEC 7816-4 style: the plaintext, one `0x80` byte, then zero bytes up
//! to the bucket size. Unambiguous and strict to remove.

use serde::Deserialize;
use zeroize::Zeroizing;

/// How a field's plaintext is padded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// Round `len + 1` up to a multiple of `n` bytes.
    Block(usize),
    /// Round `len + 1` up to the next power of two, at least `min`.
    PowerOfTwo(usize),
}

impl std::fmt::Display for Padding {
    /// As the schema language writes it: `{ block = 32 }`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Padding::Block(n) => write!(f, "{{ block = {n} }}"),
            Padding::PowerOfTwo(n) => write!(f, "{{ power_of_two = {n} }}"),
        }
    }
}

impl Padding {
    /// The padded size of a plaintext of `len` bytes.
    pub fn padded_len(self, len: usize) -> usize {
        let need = len + 1;
        match self {
            Padding::Block(n) => {
                let n = n.max(1);
                need.div_ceil(n) * n
            }
            Padding::PowerOfTwo(min) => need.next_power_of_two().max(min),
        }
    }

    /// `plain` padded into a fresh buffer that zeroizes on drop.
    pub fn pad(self, plain: &[u8]) -> Zeroizing<Vec<u8>> {
        let total = self.padded_len(plain.len());
        let mut out = Zeroizing::new(Vec::with_capacity(total + 16));
        out.extend_from_slice(plain);
        out.push(0x80);
        out.resize(total, 0);
        out
    }
}

/// Removes padding in place; `None` if the padding is malformed.
pub fn unpad(buf: &mut Vec<u8>) -> Option<()> {
    let end = buf.iter().rposition(|&b| b != 0)?;
    if buf[end] != 0x80 {
        return None;
    }
    buf.truncate(end);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_padding_round_trips_and_hides_length_within_bucket() {
        let p = Padding::Block(16);
        assert_eq!(p.padded_len(0), 16);
        assert_eq!(p.padded_len(15), 16);
        assert_eq!(p.padded_len(16), 32);
        for len in 0..40 {
            let plain: Vec<u8> = (0..len as u8).map(|b| b | 1).collect();
            let mut padded = p.pad(&plain).to_vec();
            assert_eq!(padded.len() % 16, 0);
            unpad(&mut padded).unwrap();
            assert_eq!(padded, plain);
        }
    }

    #[test]
    fn pow2_padding_has_a_minimum() {
        let p = Padding::PowerOfTwo(64);
        assert_eq!(p.padded_len(3), 64);
        assert_eq!(p.padded_len(300), 512);
        assert_eq!(p.padded_len(511), 512);
        assert_eq!(p.padded_len(512), 1024);
    }

    #[test]
    fn unpad_rejects_missing_marker() {
        let mut v = vec![1, 2, 0, 0];
        assert!(unpad(&mut v).is_none());
        let mut z = vec![0, 0];
        assert!(unpad(&mut z).is_none());
    }
}
