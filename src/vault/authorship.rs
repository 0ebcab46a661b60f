//! Row authentication by the author (FORMAT.md §5.8): the building
//! blocks. A writer computes one leaf per row version written (the
//! SHA-256 of the row as stored, with its table, id, version, author and
//! time) and signs a *batch* of leaves once, with the signed grants that
//! give it the write right under every key epoch its cells use. A reader
//! recomputes the leaf from what it read and checks it against a batch
//! whose signature, signer and evidence verify to the root.
//!
//! One signature per batch, not per row: one Ed25519 signature through
//! Sequoia costs about 55 µs, five times what sealing, indexing and
//! inserting a whole row costs (`cargo bench --bench rows` measures both
//! side by side: 27.6 ms of signatures per 500 rows against 10.7 µs a row
//! for `insert_many`), while a batch of 500 leaves and one signature costs
//! 1.04 µs a row, a tenth of the insert. So a bulk insert signs once per
//! chunk of 500 rows.
//!
//! The row API writes and checks them (`src/vault/rows/auth.rs`).

use std::collections::{HashMap, HashSet};

use crate::crypto::kdf::sha256;
use crate::error::{Error, Result};
use crate::keys::pgp::{self, RecordSigner};
use crate::sql::Cell;
use crate::store::{ScopeRow, Value as StoreValue};

use super::trust::{self, Directory, ROOT};
use super::Rights;

/// A batch of rows written by their author (§5.8).
pub const KIND_WRITE: &str = "write";
/// A batch of rows sealed again by an administrator (a rotation, a move,
/// a new index): the cells' plaintext and authorship are unchanged.
pub const KIND_RESEAL: &str = "reseal";
/// A batch of rows written before rows were authenticated, which an
/// administrator vouches for as the store held them (`medvault adopt`):
/// each is version 0, its author the administrator, its time the batch's.
pub const KIND_ADOPT: &str = "adopt";

/// Largest number of rows one batch vouches for.
pub const MAX_LEAVES: usize = 1 << 16;

/// One stored value as a row record encodes it (§5.8): the encoding does
/// not tell text from bytes, which MySQL's protocol does not either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored<'a> {
    /// SQL NULL: `0x00`.
    Null,
    /// An integer: `0x01` ‖ i64 big-endian.
    Int(i64),
    /// Text (its UTF-8) or bytes: `0x02` ‖ the bytes.
    Bytes(&'a [u8]),
}

impl<'a> From<&'a StoreValue> for Stored<'a> {
    fn from(v: &'a StoreValue) -> Stored<'a> {
        match v {
            StoreValue::Null => Stored::Null,
            StoreValue::Int(i) => Stored::Int(*i),
            StoreValue::Text(t) => Stored::Bytes(t.as_bytes()),
            StoreValue::Blob(b) => Stored::Bytes(b),
        }
    }
}

impl<'a> Stored<'a> {
    /// A value as read; `None` for one no writer stores (a float, an
    /// integer past i64).
    pub fn from_cell(c: &'a Cell) -> Option<Stored<'a>> {
        match c {
            Cell::Null => Some(Stored::Null),
            Cell::Int(i) => Some(Stored::Int(*i)),
            Cell::UInt(u) => i64::try_from(*u).ok().map(Stored::Int),
            Cell::Bytes(b) => Some(Stored::Bytes(b)),
            _ => None,
        }
    }

    /// The tagged encoding.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Stored::Null => vec![0],
            Stored::Int(i) => {
                let mut out = vec![1];
                out.extend_from_slice(&i.to_be_bytes());
                out
            }
            Stored::Bytes(b) => {
                let mut out = Vec::with_capacity(b.len() + 1);
                out.push(2);
                out.extend_from_slice(b);
                out
            }
        }
    }
}

/// Who wrote which version of a row, and when (§5.8).
#[derive(Clone, Copy, Debug)]
pub struct RowVersion<'a> {
    /// The table.
    pub table: &'a str,
    /// The row's id.
    pub id: &'a [u8; 16],
    /// 1 when inserted, one more at each update.
    pub version: u64,
    /// The user who wrote this version's values.
    pub author: &'a str,
    /// When they wrote it (Unix seconds).
    pub written_at: i64,
}

/// The leaf of one row version: SHA-256 of its row record.
pub fn leaf(vault_id: &[u8; 16], v: &RowVersion<'_>, columns: &[(&str, Stored<'_>)]) -> [u8; 32] {
    sha256(&trust::row_record(vault_id, v, columns))
}

/// A row's authentication as stored in its `medvault_auth` column
/// (FORMAT.md §9.13): `0x01` ‖ version (u64 BE) ‖ written_at (i64 BE) ‖
/// batch id (16 bytes) ‖ leaf index (u32 BE) ‖ author (UTF-8, 1 to 64
/// bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowAuth {
    /// 1 when inserted, one more at each update.
    pub version: u64,
    /// When this version was written (Unix seconds).
    pub written_at: i64,
    /// The batch that vouches for it.
    pub batch: [u8; 16],
    /// Its leaf's place in the batch.
    pub leaf: u32,
    /// Who wrote this version.
    pub author: String,
}

impl RowAuth {
    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(37 + self.author.len());
        out.push(1);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.written_at.to_be_bytes());
        out.extend_from_slice(&self.batch);
        out.extend_from_slice(&self.leaf.to_be_bytes());
        out.extend_from_slice(self.author.as_bytes());
        out
    }

    /// Parses the stored form strictly; `None` if it is anything else.
    pub fn parse(b: &[u8]) -> Option<RowAuth> {
        let (tag, rest) = b.split_first()?;
        if *tag != 1 {
            return None;
        }
        let (version, rest) = rest.split_first_chunk::<8>()?;
        let (written_at, rest) = rest.split_first_chunk::<8>()?;
        let (batch, rest) = rest.split_first_chunk::<16>()?;
        let (leaf, author) = rest.split_first_chunk::<4>()?;
        if author.is_empty() || author.len() > 64 {
            return None;
        }
        Some(RowAuth {
            version: u64::from_be_bytes(*version),
            written_at: i64::from_be_bytes(*written_at),
            batch: *batch,
            leaf: u32::from_be_bytes(*leaf),
            author: String::from_utf8(author.to_vec()).ok()?,
        })
    }

    /// The version this names, for its leaf.
    pub fn row_version<'a>(&'a self, table: &'a str, id: &'a [u8; 16]) -> RowVersion<'a> {
        RowVersion {
            table,
            id,
            version: self.version,
            author: &self.author,
            written_at: self.written_at,
        }
    }
}

/// A signed grant carried in a batch as evidence of its signer's right
/// to write under (scope, epoch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantEvidence {
    /// Scope id.
    pub scope_id: u32,
    /// Epoch.
    pub epoch: u32,
    /// The grant's rights text.
    pub rights: String,
    /// SHA-256 of the grant's wrapped key.
    pub wrapped_sha256: [u8; 32],
    /// Who signed the grant.
    pub granter: String,
    /// When.
    pub signed_at: i64,
    /// The grant's signature (§5.3).
    pub signature: Vec<u8>,
}

fn put(out: &mut Vec<u8>, b: &[u8]) {
    // Parts are bounded far below 4 GiB by the callers (a signature, a
    // name, a hash), so the length fits.
    out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(b);
}

/// Encodes evidence (§5.8): per grant, seven `len32` fields.
pub fn encode_evidence(grants: &[GrantEvidence]) -> Vec<u8> {
    let mut out = Vec::new();
    for g in grants {
        put(&mut out, &g.scope_id.to_be_bytes());
        put(&mut out, &g.epoch.to_be_bytes());
        put(&mut out, g.rights.as_bytes());
        put(&mut out, &g.wrapped_sha256);
        put(&mut out, g.granter.as_bytes());
        put(&mut out, &g.signed_at.to_be_bytes());
        put(&mut out, &g.signature);
    }
    out
}

/// Parses evidence strictly; `None` if it is not exactly a sequence of
/// seven-field grants.
pub fn parse_evidence(mut b: &[u8]) -> Option<Vec<GrantEvidence>> {
    fn take<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
        let (len, rest) = b.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        if rest.len() < len {
            return None;
        }
        let (v, rest) = rest.split_at(len);
        *b = rest;
        Some(v)
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let scope_id = u32::from_be_bytes(take(&mut b)?.try_into().ok()?);
        let epoch = u32::from_be_bytes(take(&mut b)?.try_into().ok()?);
        let rights = String::from_utf8(take(&mut b)?.to_vec()).ok()?;
        let wrapped_sha256: [u8; 32] = take(&mut b)?.try_into().ok()?;
        let granter = String::from_utf8(take(&mut b)?.to_vec()).ok()?;
        let signed_at = i64::from_be_bytes(take(&mut b)?.try_into().ok()?);
        let signature = take(&mut b)?.to_vec();
        out.push(GrantEvidence {
            scope_id,
            epoch,
            rights,
            wrapped_sha256,
            granter,
            signed_at,
            signature,
        });
    }
    Some(out)
}

/// A stored batch (§5.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchRow {
    /// 16 random bytes.
    pub id: [u8; 16],
    /// [`KIND_WRITE`] or [`KIND_RESEAL`].
    pub kind: String,
    /// The user who signed it.
    pub signer: String,
    /// When (Unix seconds); a write's rows were written then.
    pub signed_at: i64,
    /// The leaves, 32 bytes each, in order.
    pub leaves: Vec<u8>,
    /// [`encode_evidence`] of the signer's grants (empty for a reseal).
    pub evidence: Vec<u8>,
    /// The signer's signature over [`trust::batch_record`].
    pub signature: Vec<u8>,
}

/// Signs a batch of `leaves` as `signer_name`, at `signed_at`.
pub fn sign_batch(
    vault_id: &[u8; 16],
    signer: &mut RecordSigner,
    who: (&str, i64),
    kind: &str,
    leaves: &[[u8; 32]],
    evidence: &[GrantEvidence],
) -> Result<BatchRow> {
    let id = crate::crypto::random_array();
    sign_batch_with_id(vault_id, id, signer, who, kind, leaves, evidence)
}

/// [`sign_batch`] with the batch id chosen by the caller (the rows name
/// it before the batch is signed).
pub fn sign_batch_with_id(
    vault_id: &[u8; 16],
    id: [u8; 16],
    signer: &mut RecordSigner,
    (signer_name, signed_at): (&str, i64),
    kind: &str,
    leaves: &[[u8; 32]],
    evidence: &[GrantEvidence],
) -> Result<BatchRow> {
    if leaves.is_empty() || leaves.len() > MAX_LEAVES {
        return Err(Error::Refused("a batch vouches for 1 to 65536 rows"));
    }
    match kind {
        KIND_WRITE => {}
        KIND_RESEAL | KIND_ADOPT if evidence.is_empty() => {}
        KIND_RESEAL | KIND_ADOPT => {
            return Err(Error::Refused(
                "an administrator's batch carries no evidence",
            ))
        }
        _ => {
            return Err(Error::Refused(
                "a batch is a write, a reseal or an adoption",
            ))
        }
    }
    let mut b = BatchRow {
        id,
        kind: kind.to_owned(),
        signer: signer_name.to_owned(),
        signed_at,
        leaves: leaves.concat(),
        evidence: encode_evidence(evidence),
        signature: Vec::new(),
    };
    b.signature = signer.sign(&trust::batch_record(vault_id, &b))?;
    Ok(b)
}

/// A batch whose signature, signer and evidence verified.
#[derive(Clone, Debug)]
pub struct VerifiedBatch {
    /// Whether it is a reseal by an administrator.
    pub reseal: bool,
    /// Whether it is an adoption of unsigned rows by an administrator.
    pub adopt: bool,
    /// The signer.
    pub signer: String,
    /// When it was signed.
    pub signed_at: i64,
    /// The leaves.
    pub leaves: Vec<[u8; 32]>,
    /// The (scope, epoch) pairs its evidence gives the signer the write
    /// right under.
    pub writable: HashSet<(u32, u32)>,
}

/// Why a batch or a row is not vouched for; a reader reports it as
/// forged (never shows the row as genuine).
pub type Forgery = &'static str;

/// Verifies a batch: its signature under the signer's certificate (a
/// user whose row verifies to the root, active or not: a disabled
/// user's earlier writes stay theirs); a reseal's signer is an active
/// administrator; each grant of a write's evidence is signed, to the
/// signer's certificate, by the root or by an administrator (one disabled
/// since only for a grant signed no later than the record that disabled
/// them), and those saying `read-write` give the write right, unless a
/// record of closed writes ([`Directory::write_closed`]) takes it away.
pub fn verify_batch(
    dir: &mut Directory,
    vault_id: &[u8; 16],
    scopes: &HashMap<u32, ScopeRow>,
    b: &BatchRow,
) -> std::result::Result<VerifiedBatch, Forgery> {
    let (reseal, adopt) = match b.kind.as_str() {
        KIND_WRITE => (false, false),
        KIND_RESEAL => (true, false),
        KIND_ADOPT => (false, true),
        _ => return Err("a batch of an unknown kind"),
    };
    let who = dir
        .verify(&b.signer)
        .map_err(|_| "a batch signed by no verified user")?;
    // An administrator disabled since still vouches for what they sealed
    // again before the record that disabled them.
    let disabled_at = dir.row(&b.signer).map(|r| r.signed_at);
    let was_admin = who.admin && (who.active || disabled_at.is_some_and(|t| b.signed_at <= t));
    if (reseal || adopt) && !was_admin {
        return Err("a reseal or adoption signed by someone who is not an active administrator");
    }
    // Signed with the signer's present key, or with one a recovery
    // replaced, no later than it was replaced (FORMAT.md §5.9).
    let record = trust::batch_record(vault_id, b);
    let cert = dir
        .certs_of(&b.signer)
        .into_iter()
        .filter(|(_, until)| until.is_none_or(|t| b.signed_at <= t))
        .map(|(c, _)| c)
        .find(|c| pgp::verify(c, &record, &b.signature))
        .ok_or("a batch whose signature does not verify")?;
    if b.leaves.is_empty() || !b.leaves.len().is_multiple_of(32) || b.leaves.len() / 32 > MAX_LEAVES
    {
        return Err("a batch whose leaves are malformed");
    }
    let leaves = b
        .leaves
        .chunks_exact(32)
        .filter_map(|c| <[u8; 32]>::try_from(c).ok())
        .collect();
    let evidence = parse_evidence(&b.evidence).ok_or("a batch whose evidence is malformed")?;
    if (reseal || adopt) && !evidence.is_empty() {
        return Err("a reseal or adoption that carries evidence");
    }
    let fpr = pgp::fingerprint(&cert);
    let tag = trust::batch_tag(&b.signature);
    let mut writable = HashSet::new();
    for g in &evidence {
        let scope = scopes
            .get(&g.scope_id)
            .ok_or("evidence for a scope the vault does not have")?;
        if g.granter != ROOT {
            let v = dir
                .verify(&g.granter)
                .map_err(|_| "evidence by no verified user")?;
            let disabled_at = dir.row(&g.granter).map(|r| r.signed_at);
            if !v.admin || (!v.active && disabled_at.is_none_or(|t| g.signed_at > t)) {
                return Err("evidence signed by someone who was not an administrator");
            }
        }
        let msg = trust::grant_record_hashed(
            vault_id,
            scope,
            g.epoch,
            (&b.signer, &fpr),
            (&g.rights, &g.wrapped_sha256),
            (&g.granter, g.signed_at),
        );
        // The granter's present key, or one a recovery replaced after
        // the grant was signed.
        let signed = dir
            .certs_of(&g.granter)
            .iter()
            .filter(|(_, until)| until.is_none_or(|t| g.signed_at <= t))
            .any(|(c, _)| pgp::verify(c, &msg, &g.signature));
        if !signed {
            return Err("evidence whose signature does not verify");
        }
        // A grant whose write right a revocation, downgrade, disable or
        // recovery closed counts only in the batches its record lists
        // (FORMAT.md §5.11).
        if Rights::parse(&g.rights) == Some(Rights::ReadWrite)
            && !dir.write_closed(&b.signer, &fpr, &tag, (g.scope_id, g.epoch))
        {
            writable.insert((g.scope_id, g.epoch));
        }
    }
    Ok(VerifiedBatch {
        reseal,
        adopt,
        signer: b.signer.clone(),
        signed_at: b.signed_at,
        leaves,
        writable,
    })
}

/// Checks one row version against a verified batch: the leaf at `index`
/// is the one recomputed from what was read; a write's author is its
/// signer, written at its time, holding the write right under every
/// (scope, epoch) the row's cells are sealed under (`epochs`), under some
/// epoch of each scope in `each` (the row's own scope when no cell is
/// sealed under it), and under some epoch of one scope of `one_of` when
/// that is not empty (the scopes of a row with no sealed cell).
/// A reseal vouches for any author and time; an adoption for version 0,
/// by its signer, at its time. A write is of version 1 or more.
pub fn check_row(
    b: &VerifiedBatch,
    index: usize,
    leaf: &[u8; 32],
    v: &RowVersion<'_>,
    (epochs, each, one_of): (&[(u32, u32)], &[u32], &[u32]),
) -> std::result::Result<(), Forgery> {
    if b.leaves.get(index) != Some(leaf) {
        return Err("the row is not the one its batch vouches for");
    }
    if b.adopt {
        if v.version != 0 || v.author != b.signer || v.written_at != b.signed_at {
            return Err(
                "an adopted row that names another version, adopter or time than its batch",
            );
        }
        return Ok(());
    }
    if b.reseal {
        return Ok(());
    }
    if v.version == 0 {
        return Err("a write of version 0, which only an adoption is");
    }
    if v.author != b.signer || v.written_at != b.signed_at {
        return Err("the row names another author or time than its batch");
    }
    if epochs.iter().any(|e| !b.writable.contains(e)) {
        return Err("the author had no write right under the row's key epoch");
    }
    let holds = |s: &u32| b.writable.iter().any(|(w, _)| w == s);
    if !each.iter().all(holds) || !(one_of.is_empty() || one_of.iter().any(holds)) {
        return Err("the author had no write right under the row's scope");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::pgp::OpenKey;
    use crate::store::UserRow;
    use sequoia_openpgp::Cert;

    const VID: [u8; 16] = [7; 16];
    const T: i64 = 1_795_000_000;

    struct World {
        root: Cert,
        root_signer: RecordSigner,
        rows: Vec<UserRow>,
        keys: HashMap<String, (Cert, RecordSigner)>,
        scopes: HashMap<u32, ScopeRow>,
    }

    fn key(name: &str) -> (Cert, RecordSigner) {
        let (cert, tsk) = pgp::generate_unprotected(name).unwrap();
        (cert, OpenKey::parse(&tsk).unwrap().signer().unwrap())
    }

    impl World {
        fn new() -> World {
            let (root, mut root_signer) = key("root");
            let mut keys = HashMap::new();
            let mut rows = Vec::new();
            for (name, role, status, at) in [
                ("alice", "admin", "active", T),
                ("bob", "user", "active", T),
                ("carol", "user", "active", T),
                // An administrator disabled at T + 100.
                ("dave", "admin", "disabled", T + 100),
            ] {
                let (cert, signer) = key(name);
                let mut row = UserRow {
                    name: name.into(),
                    role: role.into(),
                    status: status.into(),
                    cert: pgp::cert_bytes(&cert).unwrap(),
                    locked_key: Vec::new(),
                    certifier: ROOT.into(),
                    signed_at: at,
                    signature: Vec::new(),
                };
                let msg = trust::user_record(&VID, &row, &pgp::fingerprint(&cert));
                row.signature = root_signer.sign(&msg).unwrap();
                rows.push(row);
                keys.insert(name.to_owned(), (cert, signer));
            }
            let scopes = HashMap::from([(
                2,
                ScopeRow {
                    id: 2,
                    name: "clinical".into(),
                    owner: None,
                },
            )]);
            World {
                root,
                root_signer,
                rows,
                keys,
                scopes,
            }
        }

        fn dir(&self) -> Directory {
            Directory::new(VID, self.root.clone(), self.rows.clone())
        }

        /// A grant of (2, 1) to `grantee`, signed by `granter` at `at`.
        fn grant(
            &mut self,
            granter: &str,
            grantee: &str,
            rights: Rights,
            at: i64,
        ) -> GrantEvidence {
            let fpr = pgp::fingerprint(&self.keys[grantee].0);
            let wrapped_sha256 = sha256(b"wrapped");
            let msg = trust::grant_record_hashed(
                &VID,
                &self.scopes[&2],
                1,
                (grantee, &fpr),
                (rights.as_str(), &wrapped_sha256),
                (granter, at),
            );
            let signature = self.keys.get_mut(granter).unwrap().1.sign(&msg).unwrap();
            GrantEvidence {
                scope_id: 2,
                epoch: 1,
                rights: rights.as_str().into(),
                wrapped_sha256,
                granter: granter.into(),
                signed_at: at,
                signature,
            }
        }

        fn batch(
            &mut self,
            signer: &str,
            kind: &str,
            leaves: &[[u8; 32]],
            evidence: &[GrantEvidence],
        ) -> BatchRow {
            let s = &mut self.keys.get_mut(signer).unwrap().1;
            sign_batch(&VID, s, (signer, T + 10), kind, leaves, evidence).unwrap()
        }

        fn verify(&self, b: &BatchRow) -> std::result::Result<VerifiedBatch, Forgery> {
            verify_batch(&mut self.dir(), &VID, &self.scopes, b)
        }
    }

    /// A record of closed writes (FORMAT.md §5.11) takes bob's write
    /// right away in every batch it does not list, named by what the batch
    /// is (its signature's tag), not by its id: a batch signed again under
    /// a listed id with other leaves gets none. An edited record, or one
    /// that is not an administrator's, closes nothing, and beside an
    /// edited copy the genuine one still closes. No scopes: every scope.
    #[test]
    fn a_closed_key_writes_only_in_the_batches_listed() {
        use crate::vault::trust::{batch_tag, closed_writes_record, ClosedWrites};
        let mut w = World::new();
        let g = w.grant("alice", "bob", Rights::ReadWrite, T);
        let l = leaf(&VID, &version(&[1; 16], "bob", T + 10), &columns(b"x"));
        let before = w.batch("bob", KIND_WRITE, &[l], std::slice::from_ref(&g));
        let signed = |w: &mut World, signer: &str, mut r: ClosedWrites| {
            r.signer = signer.into();
            r.signature = w
                .keys
                .get_mut(signer)
                .unwrap()
                .1
                .sign(&closed_writes_record(&VID, &r))
                .unwrap();
            r
        };
        let fingerprint = pgp::fingerprint(&w.keys["bob"].0);
        let rec = signed(
            &mut w,
            "alice",
            ClosedWrites {
                user: "bob".into(),
                fingerprint,
                scopes: vec![(2, 1)],
                batches: vec![batch_tag(&before.signature)],
                signer: String::new(),
                signed_at: T + 20,
                signature: Vec::new(),
            },
        );
        let writes = |w: &World, b: &BatchRow, recs: &[ClosedWrites]| {
            verify_batch(&mut w.dir().with_closed(recs.to_vec()), &VID, &w.scopes, b)
                .unwrap()
                .writable
                .contains(&(2, 1))
        };
        assert!(writes(&w, &before, std::slice::from_ref(&rec)), "listed");
        let l2 = leaf(&VID, &version(&[2; 16], "bob", T + 10), &columns(b"y"));
        let again = sign_batch_with_id(
            &VID,
            before.id,
            &mut w.keys.get_mut("bob").unwrap().1,
            ("bob", T + 10),
            KIND_WRITE,
            &[l2],
            std::slice::from_ref(&g),
        )
        .unwrap();
        assert!(writes(&w, &again, &[]), "control: no record, the right");
        assert!(
            !writes(&w, &again, std::slice::from_ref(&rec)),
            "the same id is not the same batch"
        );
        let mut edited = rec.clone();
        edited.batches.clear();
        assert!(writes(&w, &before, std::slice::from_ref(&edited)));
        assert!(!writes(&w, &again, &[edited, rec.clone()]));
        let mut by_carol = rec.clone();
        by_carol.batches.clear();
        let by_carol = signed(&mut w, "carol", by_carol);
        assert!(writes(&w, &before, &[by_carol]), "not an administrator");
        let mut everywhere = rec.clone();
        everywhere.scopes.clear();
        let everywhere = signed(&mut w, "alice", everywhere);
        assert!(writes(&w, &before, std::slice::from_ref(&everywhere)));
        assert!(!writes(&w, &again, &[everywhere]));
    }

    #[test]
    fn a_replaced_key_counts_for_what_it_signed_before_and_only_by_the_root() {
        let mut w = World::new();
        let old_cert = w.keys["bob"].0.clone();
        let g = w.grant("alice", "bob", Rights::ReadWrite, T);
        let l = leaf(&VID, &version(&[1; 16], "bob", T + 10), &columns(b"x"));
        let b = w.batch("bob", KIND_WRITE, &[l], &[g]);
        // A recovery: bob's row now holds a new key, signed at T + 50.
        let (new_cert, new_signer) = key("bob");
        w.keys.insert("bob".into(), (new_cert.clone(), new_signer));
        let row = w.rows.iter_mut().find(|r| r.name == "bob").unwrap();
        row.cert = pgp::cert_bytes(&new_cert).unwrap();
        row.signed_at = T + 50;
        let msg = trust::user_record(&VID, row, &pgp::fingerprint(&new_cert));
        row.signature = w.root_signer.sign(&msg).unwrap();
        assert!(w.verify(&b).is_err(), "control: the old key is unknown");
        let fpr = pgp::fingerprint(&old_cert);
        let record = |w: &mut World, signer: &str, at: i64| {
            let mut r = trust::ReplacedKey {
                user: "bob".into(),
                cert: pgp::cert_bytes(&old_cert).unwrap(),
                replaced_at: at,
                signer: signer.into(),
                signature: Vec::new(),
            };
            let msg = trust::replaced_key_record(&VID, &r, &fpr);
            r.signature = if signer == ROOT {
                w.root_signer.sign(&msg).unwrap()
            } else {
                w.keys.get_mut(signer).unwrap().1.sign(&msg).unwrap()
            };
            r
        };
        let with = |w: &World, r: trust::ReplacedKey| {
            let mut dir = w.dir().with_replaced(vec![r]);
            verify_batch(&mut dir, &VID, &w.scopes, &b)
        };
        let good = record(&mut w, ROOT, T + 50);
        let vb = with(&w, good).unwrap();
        assert!(vb.writable.contains(&(2, 1)));
        // Signed by an administrator, not the root: ignored.
        let by_alice = record(&mut w, "alice", T + 50);
        assert!(with(&w, by_alice).is_err());
        // Replaced before the batch was signed: it does not count.
        let early = record(&mut w, ROOT, T + 5);
        assert!(with(&w, early).is_err());
        // Replaced after the user's present row: not a replacement.
        let late = record(&mut w, ROOT, T + 60);
        assert!(with(&w, late).is_err());
    }

    fn columns(body: &[u8]) -> Vec<(&'static str, Stored<'_>)> {
        vec![
            ("scope_id", Stored::Int(2)),
            ("body", Stored::Bytes(body)),
            ("author", Stored::Bytes(b"bob")),
        ]
    }

    fn version<'a>(id: &'a [u8; 16], author: &'a str, at: i64) -> RowVersion<'a> {
        RowVersion {
            table: "notes",
            id,
            version: 1,
            author,
            written_at: at,
        }
    }

    #[test]
    fn a_writer_with_the_right_vouches_for_its_rows() {
        let mut w = World::new();
        let id = [1; 16];
        let v = version(&id, "bob", T + 10);
        let leaf0 = leaf(&VID, &v, &columns(b"sealed"));
        let other = leaf(&VID, &version(&[2; 16], "bob", T + 10), &columns(b"x"));
        let g = w.grant("alice", "bob", Rights::ReadWrite, T);
        let b = w.batch("bob", KIND_WRITE, &[leaf0, other], &[g]);
        let vb = w.verify(&b).unwrap();
        assert_eq!(check_row(&vb, 0, &leaf0, &v, (&[(2, 1)], &[], &[])), Ok(()));
        // The same row with one value changed, at another position, by
        // another author or time, or under an epoch without evidence.
        let edited = leaf(&VID, &v, &columns(b"sealeD"));
        assert!(check_row(&vb, 0, &edited, &v, (&[(2, 1)], &[], &[])).is_err());
        assert!(check_row(&vb, 1, &leaf0, &v, (&[(2, 1)], &[], &[])).is_err());
        assert!(check_row(&vb, 9, &leaf0, &v, (&[(2, 1)], &[], &[])).is_err());
        let carol = version(&id, "carol", T + 10);
        let as_carol = leaf(&VID, &carol, &columns(b"sealed"));
        assert!(check_row(&vb, 0, &as_carol, &carol, (&[(2, 1)], &[], &[])).is_err());
        assert!(check_row(
            &vb,
            0,
            &leaf0,
            &version(&id, "bob", T),
            (&[(2, 1)], &[], &[])
        )
        .is_err());
        assert!(check_row(&vb, 0, &leaf0, &v, (&[(2, 1), (2, 2)], &[], &[])).is_err());
        // A scope with no sealed cell in the row still needs the right.
        assert_eq!(check_row(&vb, 0, &leaf0, &v, (&[], &[2], &[])), Ok(()));
        assert!(check_row(&vb, 0, &leaf0, &v, (&[], &[3], &[])).is_err());
        assert_eq!(check_row(&vb, 0, &leaf0, &v, (&[], &[], &[3, 2])), Ok(()));
        assert!(check_row(&vb, 0, &leaf0, &v, (&[], &[], &[3])).is_err());
        // A version of the row is bound: version 2 is another leaf.
        let v2 = RowVersion { version: 2, ..v };
        assert_ne!(leaf(&VID, &v2, &columns(b"sealed")), leaf0);
    }

    #[test]
    fn a_reader_cannot_vouch_for_a_row() {
        let mut w = World::new();
        let id = [1; 16];
        let v = version(&id, "carol", T + 10);
        let l = leaf(&VID, &v, &columns(b"sealed"));
        // Carol's own grant says read.
        let read = w.grant("alice", "carol", Rights::Read, T);
        let b = w.batch("carol", KIND_WRITE, &[l], &[read]);
        let vb = w.verify(&b).unwrap();
        assert_eq!(
            check_row(&vb, 0, &l, &v, (&[(2, 1)], &[], &[])),
            Err("the author had no write right under the row's key epoch")
        );
        // Bob's read-write grant does not verify as hers.
        let bobs = w.grant("alice", "bob", Rights::ReadWrite, T);
        let b = w.batch("carol", KIND_WRITE, &[l], &[bobs]);
        assert_eq!(
            w.verify(&b).err(),
            Some("evidence whose signature does not verify")
        );
        // Nor one she had a user (not an administrator) sign.
        let by_bob = w.grant("bob", "carol", Rights::ReadWrite, T);
        let b = w.batch("carol", KIND_WRITE, &[l], &[by_bob]);
        assert_eq!(
            w.verify(&b).err(),
            Some("evidence signed by someone who was not an administrator")
        );
        // Nor may she call her batch a reseal.
        let b = w.batch("carol", KIND_RESEAL, &[l], &[]);
        assert!(w.verify(&b).is_err());
    }

    #[test]
    fn a_store_cannot_edit_a_batch() {
        let mut w = World::new();
        let id = [1; 16];
        let v = version(&id, "bob", T + 10);
        let l = leaf(&VID, &v, &columns(b"sealed"));
        let g = w.grant("alice", "bob", Rights::ReadWrite, T);
        let good = w.batch("bob", KIND_WRITE, &[l], &[g]);
        assert!(w.verify(&good).is_ok());
        let edits: Vec<BatchRow> = vec![
            BatchRow {
                signed_at: T + 11,
                ..good.clone()
            },
            BatchRow {
                signer: "carol".into(),
                ..good.clone()
            },
            BatchRow {
                kind: KIND_RESEAL.into(),
                evidence: Vec::new(),
                ..good.clone()
            },
            BatchRow {
                kind: "other".into(),
                ..good.clone()
            },
            BatchRow {
                leaves: [l, [0; 32]].concat(),
                ..good.clone()
            },
            BatchRow {
                leaves: l[..31].to_vec(),
                ..good.clone()
            },
            BatchRow {
                evidence: good.evidence[..good.evidence.len() - 1].to_vec(),
                ..good.clone()
            },
            BatchRow {
                signature: good.signature[..good.signature.len() - 1].to_vec(),
                ..good.clone()
            },
            BatchRow {
                id: [9; 16],
                ..good.clone()
            },
        ];
        for (k, e) in edits.iter().enumerate() {
            assert!(w.verify(e).is_err(), "edit {k} verified");
        }
    }

    #[test]
    fn an_adoption_vouches_for_version_0_of_its_signer_and_a_write_for_1_on() {
        let batch = |adopt: bool| VerifiedBatch {
            reseal: false,
            adopt,
            signer: "alice".into(),
            signed_at: T,
            leaves: vec![[9; 32]],
            writable: HashSet::from([(1, 1)]),
        };
        let v = |version: u64, author: &'static str, written_at: i64| RowVersion {
            table: "t",
            id: &[1; 16],
            version,
            author,
            written_at,
        };
        let check = |b: &VerifiedBatch, rv: &RowVersion<'_>| {
            check_row(b, 0, &[9; 32], rv, (&[(1, 1)], &[], &[]))
        };
        let (adopt, write) = (batch(true), batch(false));
        assert_eq!(check(&adopt, &v(0, "alice", T)), Ok(()));
        // Another version, adopter or time than the batch's.
        assert!(check(&adopt, &v(1, "alice", T)).is_err());
        assert!(check(&adopt, &v(0, "bob", T)).is_err());
        assert!(check(&adopt, &v(0, "alice", T + 1)).is_err());
        // A write is version 1 or more: 0 is an adoption's alone.
        assert_eq!(check(&write, &v(1, "alice", T)), Ok(()));
        assert!(check(&write, &v(0, "alice", T)).is_err());
    }

    #[test]
    fn an_administrator_reseals_and_a_disabled_one_granted_before() {
        let mut w = World::new();
        let id = [1; 16];
        // A reseal vouches for another author and time.
        let v = version(&id, "bob", T - 500);
        let l = leaf(&VID, &v, &columns(b"sealed again"));
        let b = w.batch("alice", KIND_RESEAL, &[l], &[]);
        let vb = w.verify(&b).unwrap();
        assert_eq!(check_row(&vb, 0, &l, &v, (&[(2, 3)], &[], &[])), Ok(()));
        // Dave was disabled at T + 100: his grants of before still count,
        // one dated after does not.
        let v = version(&id, "bob", T + 10);
        let l = leaf(&VID, &v, &columns(b"sealed"));
        let before = w.grant("dave", "bob", Rights::ReadWrite, T + 50);
        let b = w.batch("bob", KIND_WRITE, &[l], &[before]);
        let vb = w.verify(&b).unwrap();
        assert_eq!(check_row(&vb, 0, &l, &v, (&[(2, 1)], &[], &[])), Ok(()));
        let after = w.grant("dave", "bob", Rights::ReadWrite, T + 101);
        let b = w.batch("bob", KIND_WRITE, &[l], &[after]);
        assert!(w.verify(&b).is_err());
    }

    #[test]
    fn an_adoption_and_the_record_that_every_row_is_signed_are_an_administrators() {
        let mut w = World::new();
        let l = [3u8; 32];
        let b = w.batch("alice", KIND_ADOPT, &[l], &[]);
        assert!(w.verify(&b).unwrap().adopt);
        let b = w.batch("bob", KIND_ADOPT, &[l], &[]);
        assert!(w.verify(&b).is_err());
        let g = w.grant("alice", "alice", Rights::ReadWrite, T);
        let s = &mut w.keys.get_mut("alice").unwrap().1;
        assert!(sign_batch(&VID, s, ("alice", T), KIND_ADOPT, &[l], &[g]).is_err());

        let root = trust::RowsSigned::sign(&VID, ROOT, &mut w.root_signer, T).unwrap();
        assert!(root.verifies(&mut w.dir(), &VID));
        // Of another vault, or with its time changed: no.
        assert!(!root.verifies(&mut w.dir(), &[8; 16]));
        let moved = trust::RowsSigned {
            signed_at: T + 1,
            ..root.clone()
        };
        assert!(!moved.verifies(&mut w.dir(), &VID));
        assert_eq!(trust::RowsSigned::parse(&root.encode()), Some(root));
        let mut by = |who: &str, at: i64| {
            let s = &mut w.keys.get_mut(who).unwrap().1;
            let r = trust::RowsSigned::sign(&VID, who, s, at).unwrap();
            r.verifies(&mut w.dir(), &VID)
        };
        assert!(by("alice", T));
        assert!(!by("bob", T));
        // Dave was disabled at T + 100.
        assert!(by("dave", T + 50));
        assert!(!by("dave", T + 101));
        // A signer name past 64 bytes, or none, does not parse.
        let mut long = vec![1];
        long.extend_from_slice(&T.to_be_bytes());
        long.push(65);
        long.extend_from_slice(&[b'a'; 65]);
        long.push(0);
        assert_eq!(trust::RowsSigned::parse(&long), None);
        assert_eq!(
            trust::RowsSigned::parse(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]),
            None
        );
    }

    #[test]
    fn batch_sizes_and_values() {
        let mut w = World::new();
        let s = &mut w.keys.get_mut("bob").unwrap().1;
        assert!(sign_batch(&VID, s, ("bob", T), KIND_WRITE, &[], &[]).is_err());
        assert_eq!(Stored::Null.encode(), vec![0]);
        assert_eq!(Stored::Int(-1).encode(), [vec![1], vec![0xff; 8]].concat());
        assert_eq!(
            Stored::from(&StoreValue::Text("ab".into())).encode(),
            b"\x02ab"
        );
        assert_eq!(Stored::from_cell(&Cell::UInt(u64::MAX)), None);
        assert_eq!(Stored::from_cell(&Cell::UInt(5)), Some(Stored::Int(5)));
        assert_eq!(parse_evidence(&[0, 0, 0, 4, 0, 0, 0]), None);
        assert_eq!(parse_evidence(&[]), Some(Vec::new()));
    }
}
