//! k-of-n recovery of the vault root key (`schema/FORMAT.md` §6).
//!
//! The root key pair is generated at `init`, serialized, and sealed with a
//! random 32-byte recovery key `RK` (the field envelope, cell
//! `vault.root_secret.<vault id>`). Only the sealed form is stored. `RK` is
//! split with Shamir's scheme over GF(256) (crate `blahaj`, the maintained
//! fork of `sharks` that fixed its coefficient bias) into `n` shares, any
//! `k` of which rebuild it. The shares are printed once, as text a person
//! can copy by hand:
//!
//! ```text
//! MVS1-2OF4-<vault id, 8 hex>-<share bytes, hex in groups of 4>-<check, 8 hex>
//! ```
//!
//! The check is the first 4 bytes of SHA-256 over everything before it, so
//! a typo is caught before any combination is tried.

use blahaj::{Share, Sharks};
use zeroize::Zeroizing;

use crate::crypto::envelope::{self, Cell, Header};
use crate::crypto::kdf;
use crate::crypto::padding::Padding;
use crate::crypto::secret::FieldKey;
use crate::error::{Error, Result};

const PREFIX: &str = "MVS1";

fn seal_key(rk: &[u8; 32]) -> FieldKey {
    kdf::root_seal_key(rk)
}

fn cell(vault_id: &[u8; 16]) -> Cell<'_> {
    Cell {
        table: "vault",
        column: "root_secret",
        row: vault_id,
    }
}

/// The root secret key, sealed, plus the shares of the key that opens it.
pub struct Split {
    /// Stored in the vault metadata.
    pub sealed: Vec<u8>,
    /// Printed once; never stored.
    pub shares: Vec<String>,
}

/// Seals `root_tsk` and splits the sealing key into `n` shares, `k` needed.
pub fn split(vault_id: &[u8; 16], root_tsk: &[u8], k: u8, n: u8) -> Result<Split> {
    if k < 2 || n < k {
        return Err(Error::BadShares(format!(
            "need 2 <= threshold <= shares, got {k} of {n}"
        )));
    }
    let rk: Zeroizing<[u8; 32]> = Zeroizing::new(crate::crypto::random_array());
    let padded = Padding::Block(16).pad(root_tsk);
    let sealed = envelope::seal(
        &seal_key(&rk),
        Header { scope: 0, epoch: 0 },
        &cell(vault_id),
        &padded,
    );
    let shares = Sharks(k)
        .dealer(&rk[..])
        .take(usize::from(n))
        .map(|s| encode_share(vault_id, k, n, &Zeroizing::new(Vec::from(&s))))
        .collect();
    Ok(Split { sealed, shares })
}

fn checksum(body: &str) -> String {
    hex::encode_upper(&kdf::sha256(body.as_bytes())[..4])
}

/// The text form of one share (`share` = blahaj's bytes: x then y).
pub fn encode_share(vault_id: &[u8; 16], k: u8, n: u8, share: &[u8]) -> String {
    let hexed = hex::encode_upper(share);
    let groups: Vec<&str> = hexed
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("hex is ASCII"))
        .collect();
    let body = format!(
        "{PREFIX}-{k}OF{n}-{}-{}",
        hex::encode_upper(&vault_id[..4]),
        groups.join("-")
    );
    let check = checksum(&body);
    format!("{body}-{check}")
}

struct Parsed {
    k: u8,
    vault_prefix: String,
    /// The share's x coordinate (its first byte).
    x: u8,
    share: Share,
}

fn parse(text: &str, index: usize) -> Result<Parsed> {
    let bad = |why: &str| Error::BadShares(format!("share {}: {why}", index + 1));
    let cleaned: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let (body, check) = cleaned
        .rsplit_once('-')
        .ok_or_else(|| bad("not a medvault recovery share"))?;
    if !crate::crypto::secret::ct_eq(checksum(body).as_bytes(), check.as_bytes()) {
        return Err(bad("checksum mismatch (a typo?)"));
    }
    let mut parts = body.split('-');
    if parts.next() != Some(PREFIX) {
        return Err(bad("not a medvault recovery share (v1)"));
    }
    let kn = parts.next().ok_or_else(|| bad("missing k-of-n"))?;
    let (k, _n) = kn.split_once("OF").ok_or_else(|| bad("bad k-of-n"))?;
    let k: u8 = k.parse().map_err(|_| bad("bad k-of-n"))?;
    let vault_prefix = parts
        .next()
        .ok_or_else(|| bad("missing vault id"))?
        .to_owned();
    let data: String = parts.collect();
    let bytes = Zeroizing::new(hex::decode(&data).map_err(|_| bad("share data is not hex"))?);
    let x = *bytes.first().ok_or_else(|| bad("share data is empty"))?;
    // x = 0 is the secret's own point: no dealer makes it, and combining
    // with it would hand back its y as the secret.
    if x == 0 {
        return Err(bad("its x coordinate is 0, which no split produces"));
    }
    let share = Share::try_from(&bytes[..]).map_err(|_| bad("share data is malformed"))?;
    Ok(Parsed {
        k,
        vault_prefix,
        x,
        share,
    })
}

/// Rebuilds the root secret key from shares and the sealed copy.
pub fn recover(
    vault_id: &[u8; 16],
    sealed: &[u8],
    shares: &[String],
) -> Result<Zeroizing<Vec<u8>>> {
    let parsed = shares
        .iter()
        .enumerate()
        .map(|(i, s)| parse(s, i))
        .collect::<Result<Vec<_>>>()?;
    let first = parsed
        .first()
        .ok_or_else(|| Error::BadShares("no shares given".into()))?;
    let k = first.k;
    let want = hex::encode_upper(&vault_id[..4]);
    for (i, p) in parsed.iter().enumerate() {
        if p.vault_prefix != want {
            return Err(Error::BadShares(format!(
                "share {} belongs to another vault",
                i + 1
            )));
        }
        if p.k != k {
            return Err(Error::BadShares("shares of different splits".into()));
        }
        // The same share twice would be interpolated as two points and
        // silently cancel out: refused by name.
        if let Some(j) = parsed[..i].iter().position(|q| q.x == p.x) {
            return Err(Error::BadShares(format!(
                "shares {} and {} are the same share",
                j + 1,
                i + 1
            )));
        }
    }
    if parsed.len() < usize::from(k) {
        return Err(Error::BadShares(format!(
            "{} share(s) given, {k} needed",
            parsed.len()
        )));
    }
    let share_list: Vec<Share> = parsed.into_iter().map(|p| p.share).collect();
    let rk = Zeroizing::new(
        Sharks(k)
            .recover(&share_list)
            .map_err(|_| Error::BadShares("shares do not combine".into()))?,
    );
    let rk: Zeroizing<[u8; 32]> = Zeroizing::new(
        rk[..]
            .try_into()
            .map_err(|_| Error::BadShares("shares do not combine".into()))?,
    );
    let c = cell(vault_id);
    let header = Header::parse(sealed, &c)?;
    let mut plain = Zeroizing::new(
        envelope::open(&seal_key(&rk), header, &c, sealed)
            .map_err(|_| Error::BadShares("shares do not recover this vault's root key".into()))?,
    );
    crate::crypto::padding::unpad(&mut plain)
        .ok_or_else(|| Error::BadShares("sealed root key is malformed".into()))?;
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_of_four_recover_and_one_does_not() {
        let vid = [7u8; 16];
        let secret = b"root secret key bytes".to_vec();
        let s = split(&vid, &secret, 2, 4).unwrap();
        assert_eq!(s.shares.len(), 4);
        for (a, b) in [(0, 1), (1, 3), (2, 0)] {
            let got =
                recover(&vid, &s.sealed, &[s.shares[a].clone(), s.shares[b].clone()]).unwrap();
            assert_eq!(&got[..], &secret[..]);
        }
        assert!(matches!(
            recover(&vid, &s.sealed, &s.shares[..1]),
            Err(Error::BadShares(_))
        ));
    }

    #[test]
    fn typo_is_caught_by_checksum_and_lowercase_with_spaces_is_fine() {
        let vid = [1u8; 16];
        let s = split(&vid, b"x", 2, 3).unwrap();
        let relaxed = s.shares[0].to_lowercase().replace('-', " - ");
        assert!(recover(&vid, &s.sealed, &[relaxed, s.shares[1].clone()]).is_ok());
        let mut typo = s.shares[0].clone().into_bytes();
        let i = typo.len() - 12;
        typo[i] = if typo[i] == b'A' { b'B' } else { b'A' };
        let typo = String::from_utf8(typo).unwrap();
        let err = recover(&vid, &s.sealed, &[typo, s.shares[1].clone()]).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn a_share_given_twice_or_with_x_zero_is_refused() {
        let vid = [3u8; 16];
        let s = split(&vid, b"x", 2, 3).unwrap();
        let err =
            recover(&vid, &s.sealed, &[s.shares[1].clone(), s.shares[1].clone()]).unwrap_err();
        assert!(err.to_string().contains("same share"), "{err}");
        // Same x, other formatting: still the same share.
        let relaxed = s.shares[1].to_lowercase();
        let err = recover(&vid, &s.sealed, &[s.shares[1].clone(), relaxed]).unwrap_err();
        assert!(err.to_string().contains("same share"), "{err}");
        // A share whose x is 0, with a valid checksum.
        let zero = encode_share(&vid, 2, 3, &[0, 1, 2, 3]);
        let err = recover(&vid, &s.sealed, &[zero, s.shares[0].clone()]).unwrap_err();
        assert!(err.to_string().contains("x coordinate is 0"), "{err}");
    }

    #[test]
    fn shares_of_another_vault_are_refused() {
        let a = split(&[1u8; 16], b"x", 2, 3).unwrap();
        let b = split(&[2u8; 16], b"y", 2, 3).unwrap();
        let err = recover(
            &[1u8; 16],
            &a.sealed,
            &[a.shares[0].clone(), b.shares[1].clone()],
        )
        .unwrap_err();
        assert!(err.to_string().contains("another vault"), "{err}");
    }
}
