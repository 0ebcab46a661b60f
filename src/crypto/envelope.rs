//! Field envelope v1 (`schema/FORMAT.md` §1).
//!
//! ```text
//! 0x01 | scope id (u32 BE) | epoch (u32 BE) | nonce (16 B) | SIV tag (16 B) | ciphertext
//! ```
//!
//! AES-256-SIV (RFC 5297). The S2V components are, in this order:
//! `[header (the first 9 bytes), table, column, row id, nonce]`, so a
//! ciphertext only opens in the cell (table, column, row) and under the
//! scope and epoch it was sealed for.

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit;

use super::secret::FieldKey;
use crate::error::{Error, Result};

/// Version byte of this envelope format.
pub const VERSION: u8 = 1;
/// Bytes before the nonce: version, scope id, epoch.
pub const HEADER_LEN: usize = 9;
/// Nonce length.
pub const NONCE_LEN: usize = 16;
/// SIV tag length.
pub const TAG_LEN: usize = 16;
/// Fixed overhead of an envelope over its padded plaintext.
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

/// The cell a ciphertext belongs to: its associated data.
#[derive(Clone, Copy, Debug)]
pub struct Cell<'a> {
    /// Table name.
    pub table: &'static str,
    /// Column name.
    pub column: &'static str,
    /// Row id bytes (16 random bytes; notes bind their patient too, see
    /// FORMAT.md §1.2).
    pub row: &'a [u8],
}

/// The parsed public header of an envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Scope id.
    pub scope: u32,
    /// Key epoch.
    pub epoch: u32,
}

impl Header {
    fn bytes(self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0] = VERSION;
        h[1..5].copy_from_slice(&self.scope.to_be_bytes());
        h[5..9].copy_from_slice(&self.epoch.to_be_bytes());
        h
    }

    /// Parses the header of `blob` strictly.
    pub fn parse(blob: &[u8], cell: &Cell<'_>) -> Result<Header> {
        let bad = |reason| Error::MalformedEnvelope {
            table: cell.table,
            column: cell.column,
            reason,
        };
        if blob.len() < OVERHEAD {
            return Err(bad("shorter than the envelope overhead"));
        }
        if blob[0] != VERSION {
            return Err(bad("unknown envelope version"));
        }
        Ok(Header {
            scope: u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]),
            epoch: u32::from_be_bytes([blob[5], blob[6], blob[7], blob[8]]),
        })
    }
}

fn cipher(key: &FieldKey) -> Aes256Siv {
    // Invariant: FieldKey is exactly the 64 bytes AES-256-SIV takes.
    Aes256Siv::new_from_slice(key.expose()).expect("64-byte AES-256-SIV key")
}

/// Seals an already padded plaintext for `cell` under `(scope, epoch)`.
pub fn seal(key: &FieldKey, header: Header, cell: &Cell<'_>, padded: &[u8]) -> Vec<u8> {
    let nonce: [u8; NONCE_LEN] = super::random_array();
    seal_with_nonce(key, header, cell, padded, &nonce)
}

/// [`seal`] with a caller-chosen nonce: for known-answer tests only.
pub fn seal_with_nonce(
    key: &FieldKey,
    header: Header,
    cell: &Cell<'_>,
    padded: &[u8],
    nonce: &[u8; NONCE_LEN],
) -> Vec<u8> {
    let h = header.bytes();
    let mut out = Vec::with_capacity(OVERHEAD + padded.len());
    out.extend_from_slice(&h);
    out.extend_from_slice(nonce);
    out.extend_from_slice(&[0u8; TAG_LEN]);
    out.extend_from_slice(padded);
    let (head, body) = out.split_at_mut(OVERHEAD);
    let components: [&[u8]; 5] = [
        &h,
        cell.table.as_bytes(),
        cell.column.as_bytes(),
        cell.row,
        nonce,
    ];
    // Invariant: five components is below aes-siv's MAX_HEADERS (126).
    let tag = cipher(key)
        .encrypt_inout_detached(components, body.into())
        .expect("S2V component count within limits");
    head[HEADER_LEN + NONCE_LEN..].copy_from_slice(tag.as_slice());
    out
}

/// Opens `blob` for `cell`, returning the padded plaintext. The caller has
/// parsed the header (to find the key) and passes it back.
pub fn open(key: &FieldKey, header: Header, cell: &Cell<'_>, blob: &[u8]) -> Result<Vec<u8>> {
    // Header::parse checked the length; check again so this function is
    // safe on its own.
    if blob.len() < OVERHEAD || blob[..HEADER_LEN] != header.bytes() {
        return Err(Error::MalformedEnvelope {
            table: cell.table,
            column: cell.column,
            reason: "header mismatch",
        });
    }
    let nonce = &blob[HEADER_LEN..HEADER_LEN + NONCE_LEN];
    let tag_bytes = &blob[HEADER_LEN + NONCE_LEN..OVERHEAD];
    let tag = aes_siv::Tag::try_from(tag_bytes).map_err(|_| Error::Tampered {
        table: cell.table,
        column: cell.column,
    })?;
    let mut body = blob[OVERHEAD..].to_vec();
    let components: [&[u8]; 5] = [
        &blob[..HEADER_LEN],
        cell.table.as_bytes(),
        cell.column.as_bytes(),
        cell.row,
        nonce,
    ];
    cipher(key)
        .decrypt_inout_detached(components, body.as_mut_slice().into(), &tag)
        .map_err(|_| Error::Tampered {
            table: cell.table,
            column: cell.column,
        })?;
    Ok(body)
}

/// Raw AES-SIV with arbitrary S2V components: used only by the RFC 5297
/// and Wycheproof tests, so that they run the same `aes-siv` calls `seal`
/// and `open` make. A 64-byte key selects AES-256-SIV (what medvault uses);
/// a 32-byte key AES-128-SIV (RFC 5297's own vectors are AES-128).
pub fn siv_encrypt(key: &[u8], components: &[&[u8]], plaintext: &[u8]) -> Option<Vec<u8>> {
    match key.len() {
        64 => Aes256Siv::new_from_slice(key)
            .ok()?
            .encrypt(components, plaintext)
            .ok(),
        32 => aes_siv::siv::Aes128Siv::new_from_slice(key)
            .ok()?
            .encrypt(components, plaintext)
            .ok(),
        _ => None,
    }
}

/// Counterpart of [`siv_encrypt`].
pub fn siv_decrypt(key: &[u8], components: &[&[u8]], ciphertext: &[u8]) -> Option<Vec<u8>> {
    match key.len() {
        64 => Aes256Siv::new_from_slice(key)
            .ok()?
            .decrypt(components, ciphertext)
            .ok(),
        32 => aes_siv::siv::Aes128Siv::new_from_slice(key)
            .ok()?
            .decrypt(components, ciphertext)
            .ok(),
        _ => None,
    }
}
