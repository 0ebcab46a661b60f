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
//!
//! Cell envelope v2 (`schema/FORMAT.md` §1.4), for the tables a schema
//! declares: the same layout with version byte `0x02`, and the S2V
//! components `[header, cell, nonce]`, where `cell` is the table, the
//! column, the row id and the parent row's id as length-prefixed parts
//! ([`CellAd::encode`]). See [`seal_cell`] and [`open_cell`].

use aes::{Aes128Enc, Aes256Enc};

use super::secret::FieldKey;
use super::siv::{S2vState, Siv};
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

    /// The scope and epoch a v1 or v2 envelope names, read without any
    /// check of the rest: to tell which cells a key rotation must rewrite
    /// before opening them (where they are checked). `None` when `blob` is
    /// not an envelope.
    pub fn peek(blob: &[u8]) -> Option<Header> {
        if blob.len() < OVERHEAD || !matches!(blob[0], VERSION | VERSION_CELL) {
            return None;
        }
        Some(Header {
            scope: u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]),
            epoch: u32::from_be_bytes([blob[5], blob[6], blob[7], blob[8]]),
        })
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

/// A field key prepared for one column under one header: the S2V state
/// after the components `[header, table, column]`, which every cell of the
/// column shares. Make one per column with [`prefix`] and pass it to
/// [`seal_prepared`] and [`open_prepared`]; it is secret and wiped on drop.
#[derive(Debug)]
pub struct Prefix {
    key: u64,
    header: Header,
    table: &'static str,
    column: &'static str,
    state: S2vState,
}

impl Prefix {
    /// Whether this prefix is the one of `(table, column)`.
    pub fn is_for(&self, table: &str, column: &str) -> bool {
        self.table == table && self.column == column
    }

    fn fits(&self, key: &FieldKey, header: Header, cell: &Cell<'_>) -> bool {
        self.key == key.instance()
            && self.header == header
            && self.table == cell.table
            && self.column == cell.column
    }
}

/// Prepares `key` for the cells of `(table, column)` under `header`.
pub fn prefix(key: &FieldKey, header: Header, table: &'static str, column: &'static str) -> Prefix {
    let h = header.bytes();
    // Invariant: three components is below MAX_COMPONENTS.
    let state = key
        .siv()
        .start(&[&h, table.as_bytes(), column.as_bytes()])
        .expect("three S2V components");
    Prefix {
        key: key.instance(),
        header,
        table,
        column,
        state,
    }
}

/// Seals an already padded plaintext for `cell` under `(scope, epoch)`.
pub fn seal(key: &FieldKey, header: Header, cell: &Cell<'_>, padded: &[u8]) -> Vec<u8> {
    seal_prepared(
        key,
        &prefix(key, header, cell.table, cell.column),
        header,
        cell,
        padded,
    )
}

/// [`seal`] with a column's [`Prefix`]. A prefix made with another key,
/// for another header or for another column is not used (the right one is
/// computed), so a mix-up costs time, never a wrong binding.
pub fn seal_prepared(
    key: &FieldKey,
    prefix: &Prefix,
    header: Header,
    cell: &Cell<'_>,
    padded: &[u8],
) -> Vec<u8> {
    let nonce: [u8; NONCE_LEN] = super::random_array();
    seal_inner(key, prefix, header, cell, padded, &nonce)
}

/// [`seal`] with a caller-chosen nonce: for known-answer tests only.
pub fn seal_with_nonce(
    key: &FieldKey,
    header: Header,
    cell: &Cell<'_>,
    padded: &[u8],
    nonce: &[u8; NONCE_LEN],
) -> Vec<u8> {
    let p = prefix(key, header, cell.table, cell.column);
    seal_inner(key, &p, header, cell, padded, nonce)
}

fn seal_inner(
    key: &FieldKey,
    p: &Prefix,
    header: Header,
    cell: &Cell<'_>,
    padded: &[u8],
    nonce: &[u8; NONCE_LEN],
) -> Vec<u8> {
    if !p.fits(key, header, cell) {
        return seal_inner(
            key,
            &prefix(key, header, cell.table, cell.column),
            header,
            cell,
            padded,
            nonce,
        );
    }
    let mut out = Vec::with_capacity(OVERHEAD + padded.len());
    out.extend_from_slice(&header.bytes());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&[0u8; TAG_LEN]);
    out.extend_from_slice(padded);
    let (head, body) = out.split_at_mut(OVERHEAD);
    // Invariant: five components in all, far below MAX_COMPONENTS.
    let tag = key
        .siv()
        .encrypt_in_place(&p.state, &[cell.row, nonce], body)
        .expect("S2V component count within limits");
    head[HEADER_LEN + NONCE_LEN..].copy_from_slice(&tag);
    out
}

/// Opens `blob` for `cell`, returning the padded plaintext. The caller has
/// parsed the header (to find the key) and passes it back.
pub fn open(key: &FieldKey, header: Header, cell: &Cell<'_>, blob: &[u8]) -> Result<Vec<u8>> {
    open_prepared(
        key,
        &prefix(key, header, cell.table, cell.column),
        header,
        cell,
        blob,
    )
}

/// [`open`] with a column's [`Prefix`] (a prefix of another header or
/// column is not used, as in [`seal_prepared`]).
pub fn open_prepared(
    key: &FieldKey,
    p: &Prefix,
    header: Header,
    cell: &Cell<'_>,
    blob: &[u8],
) -> Result<Vec<u8>> {
    if !p.fits(key, header, cell) {
        return open(key, header, cell, blob);
    }
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
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&blob[HEADER_LEN + NONCE_LEN..OVERHEAD]);
    let mut body = blob[OVERHEAD..].to_vec();
    if key
        .siv()
        .decrypt_in_place(&p.state, &[cell.row, nonce], &mut body, &tag)
    {
        Ok(body)
    } else {
        Err(Error::Tampered {
            table: cell.table,
            column: cell.column,
        })
    }
}

/// Version byte of the cell envelope v2.
pub const VERSION_CELL: u8 = 2;

/// The cell a v2 envelope belongs to: every table a schema declares.
#[derive(Clone, Copy, Debug)]
pub struct CellAd<'a> {
    /// Table name (an identifier of the schema: `[a-z][a-z0-9_]*`).
    pub table: &'a str,
    /// Column name.
    pub column: &'a str,
    /// The row's 16-byte id.
    pub row: &'a [u8],
    /// The parent row's id, or empty for a table without a parent.
    pub parent: &'a [u8],
}

impl CellAd<'_> {
    /// The associated data: each of table, column, row id and parent id as
    /// a u32 big-endian length and its bytes.
    pub fn encode(&self) -> Vec<u8> {
        let parts: [&[u8]; 4] = [
            self.table.as_bytes(),
            self.column.as_bytes(),
            self.row,
            self.parent,
        ];
        let mut out = Vec::with_capacity(16 + parts.iter().map(|p| p.len()).sum::<usize>());
        for p in parts {
            // Invariant: names are at most 30 bytes and ids 16.
            let len = u32::try_from(p.len()).expect("cell parts are short");
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(p);
        }
        out
    }
}

fn header_v2(header: Header) -> [u8; HEADER_LEN] {
    let mut h = header.bytes();
    h[0] = VERSION_CELL;
    h
}

impl Header {
    /// Parses the header of a v2 cell envelope strictly.
    pub fn parse_cell(blob: &[u8], cell: &CellAd<'_>) -> Result<Header> {
        let bad = |reason| Error::MalformedEnvelope {
            table: crate::schema::intern(cell.table),
            column: crate::schema::intern(cell.column),
            reason,
        };
        if blob.len() < OVERHEAD {
            return Err(bad("shorter than the envelope overhead"));
        }
        if blob[0] != VERSION_CELL {
            return Err(bad("not a cell envelope (version 2)"));
        }
        Ok(Header {
            scope: u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]),
            epoch: u32::from_be_bytes([blob[5], blob[6], blob[7], blob[8]]),
        })
    }
}

/// Seals an already padded plaintext for a declared table's `cell` under
/// `(scope, epoch)`: a v2 envelope.
pub fn seal_cell(key: &FieldKey, header: Header, cell: &CellAd<'_>, padded: &[u8]) -> Vec<u8> {
    let nonce: [u8; NONCE_LEN] = super::random_array();
    seal_cell_with_nonce(key, header, cell, padded, &nonce)
}

/// [`seal_cell`] with a caller-chosen nonce: for known-answer tests only.
pub fn seal_cell_with_nonce(
    key: &FieldKey,
    header: Header,
    cell: &CellAd<'_>,
    padded: &[u8],
    nonce: &[u8; NONCE_LEN],
) -> Vec<u8> {
    let h = header_v2(header);
    let mut out = Vec::with_capacity(OVERHEAD + padded.len());
    out.extend_from_slice(&h);
    out.extend_from_slice(nonce);
    out.extend_from_slice(&[0u8; TAG_LEN]);
    out.extend_from_slice(padded);
    let (head, body) = out.split_at_mut(OVERHEAD);
    let siv = key.siv();
    // Invariant: three components, far below MAX_COMPONENTS.
    let state = siv.start(&[&h]).expect("one S2V component");
    let tag = siv
        .encrypt_in_place(&state, &[&cell.encode(), nonce], body)
        .expect("S2V component count within limits");
    head[HEADER_LEN + NONCE_LEN..].copy_from_slice(&tag);
    out
}

/// Opens a v2 envelope for `cell`, returning the padded plaintext. The
/// caller has parsed the header ([`Header::parse_cell`]) to find the key
/// and passes it back.
pub fn open_cell(
    key: &FieldKey,
    header: Header,
    cell: &CellAd<'_>,
    blob: &[u8],
) -> Result<Vec<u8>> {
    let h = header_v2(header);
    if blob.len() < OVERHEAD || blob[..HEADER_LEN] != h {
        return Err(Error::MalformedEnvelope {
            table: crate::schema::intern(cell.table),
            column: crate::schema::intern(cell.column),
            reason: "header mismatch",
        });
    }
    let nonce = &blob[HEADER_LEN..HEADER_LEN + NONCE_LEN];
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&blob[HEADER_LEN + NONCE_LEN..OVERHEAD]);
    let mut body = blob[OVERHEAD..].to_vec();
    let siv = key.siv();
    // Invariant: as in seal_cell_with_nonce.
    let state = siv.start(&[&h]).expect("one S2V component");
    if siv.decrypt_in_place(&state, &[&cell.encode(), nonce], &mut body, &tag) {
        Ok(body)
    } else {
        Err(Error::Tampered {
            table: crate::schema::intern(cell.table),
            column: crate::schema::intern(cell.column),
        })
    }
}

/// Raw AES-SIV with arbitrary S2V components: used only by the RFC 5297
/// and Wycheproof tests, so that they run the same [`Siv`] code `seal` and
/// `open` use (`tag || ciphertext` out). A 64-byte key selects AES-256-SIV (what medvault uses);
/// a 32-byte key AES-128-SIV (RFC 5297's own vectors are AES-128).
pub fn siv_encrypt(key: &[u8], components: &[&[u8]], plaintext: &[u8]) -> Option<Vec<u8>> {
    macro_rules! run {
        ($C:ty) => {{
            let siv = Siv::<$C>::new(key)?;
            let mut buf = plaintext.to_vec();
            let tag = siv.encrypt_in_place(&siv.start(&[])?, components, &mut buf)?;
            let mut out = tag.to_vec();
            out.extend_from_slice(&buf);
            Some(out)
        }};
    }
    match key.len() {
        64 => run!(Aes256Enc),
        32 => run!(Aes128Enc),
        _ => None,
    }
}

/// Counterpart of [`siv_encrypt`]: `tag || ciphertext` in, plaintext out.
pub fn siv_decrypt(key: &[u8], components: &[&[u8]], ciphertext: &[u8]) -> Option<Vec<u8>> {
    if ciphertext.len() < TAG_LEN {
        return None;
    }
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&ciphertext[..TAG_LEN]);
    let mut buf = ciphertext[TAG_LEN..].to_vec();
    macro_rules! run {
        ($C:ty) => {{
            let siv = Siv::<$C>::new(key)?;
            siv.decrypt_in_place(&siv.start(&[])?, components, &mut buf, &tag)
        }};
    }
    let ok = match key.len() {
        64 => run!(Aes256Enc),
        32 => run!(Aes128Enc),
        _ => false,
    };
    ok.then_some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::kdf;
    use crate::crypto::secret::EpochKey;

    /// A v2 envelope opens only in its own cell: another table, column,
    /// row or parent, another header, or a v1 reading of it is refused.
    #[test]
    fn a_cell_envelope_is_bound_to_table_column_row_and_parent() {
        let k = kdf::field_key(&EpochKey::generate());
        let header = Header { scope: 2, epoch: 3 };
        let (row, parent, other) = ([1u8; 16], [2u8; 16], [9u8; 16]);
        let cell = CellAd {
            table: "allergies",
            column: "substance",
            row: &row,
            parent: &parent,
        };
        let blob = seal_cell(&k, header, &cell, b"penicillin");
        assert_eq!(Header::parse_cell(&blob, &cell).unwrap(), header);
        assert_eq!(open_cell(&k, header, &cell, &blob).unwrap(), b"penicillin");
        let moved = [
            CellAd {
                table: "allergie",
                ..cell
            },
            CellAd {
                column: "reaction",
                ..cell
            },
            CellAd {
                row: &other,
                ..cell
            },
            CellAd {
                parent: &other,
                ..cell
            },
            CellAd {
                parent: &[],
                ..cell
            },
            // Length prefixes: the same bytes split differently differ.
            CellAd {
                table: "allergiess",
                column: "ubstance",
                ..cell
            },
        ];
        for m in &moved {
            assert!(
                matches!(open_cell(&k, header, m, &blob), Err(Error::Tampered { .. })),
                "{m:?}"
            );
        }
        let other_header = Header { scope: 2, epoch: 4 };
        assert!(matches!(
            open_cell(&k, other_header, &cell, &blob),
            Err(Error::MalformedEnvelope { .. })
        ));
        // A v1 reader does not take it, nor a v2 reader a v1 envelope.
        let v1 = Cell {
            table: "allergies",
            column: "substance",
            row: &row,
        };
        assert!(Header::parse(&blob, &v1).is_err());
        let blob1 = seal(&k, header, &v1, b"penicillin");
        assert!(Header::parse_cell(&blob1, &cell).is_err());
        assert!(open_cell(&k, header, &cell, &blob1).is_err());
    }

    /// A prefix prepared with one key and handed over with another is not
    /// used: the envelope is bound to the key it is sealed with, and opens
    /// with that key (prepared or not), not with the prefix's.
    #[test]
    fn a_prefix_of_another_key_is_not_used() {
        let (a, b) = (
            kdf::field_key(&EpochKey::generate()),
            kdf::field_key(&EpochKey::generate()),
        );
        let header = Header { scope: 1, epoch: 1 };
        let cell = Cell {
            table: "patients",
            column: "family_name",
            row: &[7; 16],
        };
        let pa = prefix(&a, header, "patients", "family_name");
        let pb = prefix(&b, header, "patients", "family_name");
        let blob = seal_prepared(&b, &pa, header, &cell, b"Dupont");
        assert_eq!(open(&b, header, &cell, &blob).unwrap(), b"Dupont");
        assert_eq!(
            open_prepared(&b, &pb, header, &cell, &blob).unwrap(),
            b"Dupont"
        );
        assert_eq!(
            open_prepared(&b, &pa, header, &cell, &blob).unwrap(),
            b"Dupont"
        );
        assert!(matches!(
            open(&a, header, &cell, &blob),
            Err(Error::Tampered { .. })
        ));
    }
}
