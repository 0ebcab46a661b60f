//! AES-SIV (RFC 5297) over prepared keys, with a resumable S2V.
//!
//! Why not `aes_siv::Siv` directly: it expands the CTR key again on every
//! call, needs `&mut self` (so one cipher cannot serve two threads), and
//! starts S2V from the zero block every time. Every cell of a column starts
//! its S2V with the same three components (envelope header, table, column;
//! FORMAT.md §1), so half of the serial AES-CMAC blocks of a short field
//! were the same work redone (BENCHMARKS.md: 32-byte seal 0.75 µs → see
//! there). This module keeps both expanded keys and lets a caller resume
//! S2V from a saved state ([`Prefix`](crate::crypto::envelope::Prefix)).
//!
//! Only the RFC 5297 composition is written here (S2V, `dbl`, the CTR IV
//! mask); AES, CMAC and CTR are the RustCrypto crates `aes-siv` itself
//! uses. It is checked against RFC 5297 A.1/A.2, Wycheproof's
//! `aes_siv_cmac_test.json` (tests/formats.rs) and, on random inputs,
//! against the `aes-siv` crate (the tests below).

use aes::{Aes128Enc, Aes256Enc};
use cipher::{InnerIvInit, KeyInit, StreamCipherCore};
use cmac::block_api::CmacCipher;
use cmac::{Cmac, Mac};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// One AES block.
pub type Block = [u8; 16];

/// Most S2V components besides the plaintext (RFC 5297 §7: 126).
pub const MAX_COMPONENTS: usize = 126;

/// An AES-SIV key (over AES-128 or AES-256), expanded once. Its round
/// keys are wiped on drop (the `zeroize` features of `aes` and `cmac`).
pub struct Siv<C: CmacCipher> {
    mac: Cmac<C>,
    ctr: C,
}

/// The S2V state after some leading components: `D` of RFC 5297 §2.4.
/// Secret (it is made with the MAC key); wiped on drop.
#[derive(Clone)]
pub struct S2vState {
    d: Block,
    components: usize,
}

impl Drop for S2vState {
    fn drop(&mut self) {
        self.d.zeroize();
    }
}

impl std::fmt::Debug for S2vState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("S2vState(<secret>)")
    }
}

/// GF(2^128) doubling (RFC 5297 §2.3), in constant time.
fn dbl(b: Block) -> Block {
    let x = u128::from_be_bytes(b);
    let carry = u128::from((x >> 127) as u8).wrapping_neg() & 0x87;
    ((x << 1) ^ carry).to_be_bytes()
}

fn xor(a: &mut Block, b: &[u8]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= *y;
    }
}

macro_rules! siv_impl {
    ($C:ty) => {
        impl Siv<$C> {
            /// From an RFC 5297 key: the first half keys CMAC, the second CTR.
            /// `None` unless the key is twice the cipher's key size.
            pub fn new(key: &[u8]) -> Option<Self> {
                if !key.len().is_multiple_of(2) {
                    return None;
                }
                let (mac_key, ctr_key) = key.split_at(key.len() / 2);
                Some(Siv {
                    mac: <Cmac<$C> as KeyInit>::new_from_slice(mac_key).ok()?,
                    ctr: <$C as KeyInit>::new_from_slice(ctr_key).ok()?,
                })
            }

            fn cmac_into(m: &mut Cmac<$C>, data: &[u8]) -> Block {
                m.update(data);
                let out = m.finalize_reset().into_bytes();
                let mut b = [0u8; 16];
                b.copy_from_slice(&out);
                b
            }

            /// The S2V state after `components` (none: the state of an empty
            /// vector, `D = CMAC(zero)`). `None` if there are more than
            /// [`MAX_COMPONENTS`].
            pub fn start(&self, components: &[&[u8]]) -> Option<S2vState> {
                let mut m = self.mac.clone();
                let d = Self::cmac_into(&mut m, &[0u8; 16]);
                self.resume(&mut m, S2vState { d, components: 0 }, components)
            }

            fn resume(
                &self,
                m: &mut Cmac<$C>,
                mut s: S2vState,
                components: &[&[u8]],
            ) -> Option<S2vState> {
                if s.components + components.len() > MAX_COMPONENTS {
                    return None;
                }
                for c in components {
                    let code = Self::cmac_into(m, c);
                    s.d = dbl(s.d);
                    xor(&mut s.d, &code);
                }
                s.components += components.len();
                Some(s)
            }

            /// S2V of (state's components, `components`, `message`): the SIV tag.
            fn s2v(&self, state: &S2vState, components: &[&[u8]], message: &[u8]) -> Option<Block> {
                let mut m = self.mac.clone();
                let mut s = self.resume(&mut m, state.clone(), components)?;
                if message.len() >= 16 {
                    let (head, last) = message.split_at(message.len() - 16);
                    m.update(head);
                    xor(&mut s.d, last);
                } else {
                    s.d = dbl(s.d);
                    xor(&mut s.d, message);
                    s.d[message.len()] ^= 0x80;
                }
                m.update(&s.d);
                let mut tag = [0u8; 16];
                tag.copy_from_slice(&m.finalize().into_bytes());
                Some(tag)
            }

            fn keystream(&self, tag: &Block, buf: &mut [u8]) {
                // RFC 5297 §2.6: clear the top bit of the last two 32-bit words.
                let mut iv = *tag;
                iv[8] &= 0x7f;
                iv[12] &= 0x7f;
                ctr::CtrCore::<$C, ctr::flavors::Ctr128BE>::inner_iv_init(
                    self.ctr.clone(),
                    &iv.into(),
                )
                .apply_keystream_partial(buf.into());
                iv.zeroize();
            }

            /// Encrypts `buf` in place; returns the tag. `None` if there are too
            /// many components.
            pub fn encrypt_in_place(
                &self,
                state: &S2vState,
                components: &[&[u8]],
                buf: &mut [u8],
            ) -> Option<Block> {
                let tag = self.s2v(state, components, buf)?;
                self.keystream(&tag, buf);
                Some(tag)
            }

            /// Decrypts `buf` in place and checks `tag` in constant time. On a
            /// mismatch `buf` is put back as it was (no unauthenticated plaintext
            /// is left behind) and the result is `false`.
            pub fn decrypt_in_place(
                &self,
                state: &S2vState,
                components: &[&[u8]],
                buf: &mut [u8],
                tag: &Block,
            ) -> bool {
                self.keystream(tag, buf);
                let ok = self
                    .s2v(state, components, buf)
                    .is_some_and(|t| bool::from(t.ct_eq(tag)));
                if !ok {
                    self.keystream(tag, buf);
                }
                ok
            }
        }
    };
}

// Encryption-only key schedules: SIV never runs AES backwards.
siv_impl!(Aes128Enc);
siv_impl!(Aes256Enc);

#[cfg(test)]
mod tests {
    use super::*;
    use aes::{Aes128Enc, Aes256Enc};
    use proptest::prelude::*;

    macro_rules! ours {
        ($C:ty, $key:expr, $comps:expr, $split:expr, $pt:expr) => {{
            let (key, comps, split, pt): (&[u8], &[Vec<u8>], usize, &[u8]) =
                ($key, $comps, $split, $pt);
            let siv = Siv::<$C>::new(key).unwrap();
            let refs: Vec<&[u8]> = comps.iter().map(Vec::as_slice).collect();
            let split = split.min(refs.len());
            let state = siv.start(&refs[..split]).unwrap();
            let mut buf = pt.to_vec();
            let tag = siv
                .encrypt_in_place(&state, &refs[split..], &mut buf)
                .unwrap();
            let mut out = tag.to_vec();
            out.extend_from_slice(&buf);
            // And it opens again, from a state taken at another split.
            let state = siv.start(&[]).unwrap();
            let mut back = buf.clone();
            assert!(siv.decrypt_in_place(&state, &refs, &mut back, &tag));
            assert_eq!(back, pt);
            out
        }};
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Same output as the `aes-siv` crate for any key, components,
        /// plaintext and point where the S2V state is saved.
        #[test]
        fn matches_the_aes_siv_crate(
            key in proptest::collection::vec(any::<u8>(), 64),
            comps in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..7),
            pt in proptest::collection::vec(any::<u8>(), 0..100),
            split in 0usize..8,
        ) {
            let expected = aes_siv::siv::Aes256Siv::new_from_slice(&key)
                .unwrap()
                .encrypt(&comps, &pt)
                .unwrap();
            prop_assert_eq!(ours!(Aes256Enc, &key, &comps, split, &pt), expected);
            let expected = aes_siv::siv::Aes128Siv::new_from_slice(&key[..32])
                .unwrap()
                .encrypt(&comps, &pt)
                .unwrap();
            prop_assert_eq!(ours!(Aes128Enc, &key[..32], &comps, split, &pt), expected);
        }
    }

    #[test]
    fn a_bad_tag_leaves_the_ciphertext_as_it_was() {
        let siv = Siv::<Aes256Enc>::new(&[3u8; 64]).unwrap();
        let st = siv.start(&[b"ad"]).unwrap();
        let mut buf = b"forty-two bytes of patient data, say so..".to_vec();
        let tag = siv.encrypt_in_place(&st, &[], &mut buf).unwrap();
        let sealed = buf.clone();
        let mut bad = tag;
        bad[0] ^= 1;
        assert!(!siv.decrypt_in_place(&st, &[], &mut buf, &bad));
        assert_eq!(buf, sealed);
        // Wrong associated data fails too.
        let other = siv.start(&[b"AD"]).unwrap();
        assert!(!siv.decrypt_in_place(&other, &[], &mut buf, &tag));
        assert_eq!(buf, sealed);
    }

    #[test]
    fn component_limit_is_enforced() {
        let siv = Siv::<Aes256Enc>::new(&[3u8; 64]).unwrap();
        let many: Vec<&[u8]> = vec![b"x"; MAX_COMPONENTS];
        let st = siv.start(&many).unwrap();
        assert!(siv.encrypt_in_place(&st, &[b"y"], &mut [0u8; 4]).is_none());
        assert!(siv.start(&vec![&b"x"[..]; MAX_COMPONENTS + 1]).is_none());
        assert!(Siv::<Aes256Enc>::new(&[0u8; 63]).is_none());
        assert!(Siv::<Aes256Enc>::new(&[0u8; 32]).is_none());
    }

    #[test]
    fn dbl_matches_rfc_5297_vectors() {
        // RFC 5297 A.1: dbl(CMAC(zero)).
        let d = hex::decode("0e04dfafc1efbf040140582859bf073a").unwrap();
        let want = hex::decode("1c09bf5f83df7e080280b050b37e0e74").unwrap();
        assert_eq!(dbl(d.try_into().unwrap()).to_vec(), want);
    }
}
