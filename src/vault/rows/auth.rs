//! Rows authenticated by their author, in the row API (FORMAT.md §5.8,
//! §9.13): what a writer adds to the rows it writes, and what a reader
//! checks before it shows one.
//!
//! A writer gives each row version it writes a `medvault_auth` value
//! (version, time, author, batch, leaf) and signs one batch of leaves per
//! chunk of rows, with its signed `read-write` grants as evidence. A reader
//! recomputes the leaf of every row it reads from the stored values, finds
//! it in a batch whose signature, signer and evidence verify to the root
//! (each batch read and checked once per session), and reports
//! [`Error::Forged`] otherwise. A row with no authentication at all was
//! written before this version: [`Authorship::Unsigned`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::RowTable;
use crate::crypto::envelope::Header;
use crate::error::{Error, Result};
use crate::keys::pgp::RecordSigner;
use crate::schema::ColumnType;
use crate::sql::{self, rows as stmt, Cell};
use crate::store::Value as StoreValue;
use crate::vault::authorship::{self, BatchRow, Forgery, RowAuth, Stored, VerifiedBatch};
use crate::vault::trust::{replaced_key_record, ReplacedKey};
use crate::vault::Session;

/// Who vouches for a row as read ([`super::Row::authorship`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authorship {
    /// The row's author signed this version of it (or an administrator
    /// sealed it again, keeping what the author wrote, under a new key
    /// epoch: `resealed_by`).
    Signed {
        /// Who wrote this version.
        author: String,
        /// When (Unix seconds).
        written_at: i64,
        /// 1 when inserted, one more at each update.
        version: u64,
        /// The administrator who last sealed it again, if one did.
        resealed_by: Option<String>,
    },
    /// Written before medvault authenticated rows, then adopted by an
    /// administrator (`medvault adopt`, [`Session::adopt_rows`]), who
    /// vouches for it as the store held it then: its author is not known.
    /// An update makes it version 1 of its updater.
    Adopted {
        /// The administrator who adopted it.
        by: String,
        /// When (Unix seconds).
        adopted_at: i64,
        /// The administrator who last sealed it again, if one did.
        resealed_by: Option<String>,
    },
    /// Written before medvault authenticated rows (a vault made before
    /// format 7) and not adopted yet: nothing vouches for it. Once the
    /// vault records that every row is signed ([`Session::rows_signed`]),
    /// such a row is [`Error::Forged`] instead.
    Unsigned,
}

impl Authorship {
    /// Whether a signature vouches for the row: its author's, or the
    /// administrator's who adopted it.
    pub fn is_signed(&self) -> bool {
        !matches!(self, Authorship::Unsigned)
    }

    /// The row's version: 1 when inserted, one more at each update; 0 for
    /// an adopted or unsigned row.
    pub fn version(&self) -> u64 {
        match self {
            Authorship::Signed { version, .. } => *version,
            Authorship::Adopted { .. } | Authorship::Unsigned => 0,
        }
    }
}

/// A row's leaf, and the (scope, epoch) pairs of its sealed cells.
pub(crate) type Leaf = ([u8; 32], Vec<(u32, u32)>);

/// Rows sealed for one batch, before it is signed: the leaves in order,
/// and the (scope, epoch) pairs their cells are sealed under.
pub(crate) struct PendingBatch {
    pub id: [u8; 16],
    pub kind: &'static str,
    pub signed_at: i64,
    pub leaves: Vec<[u8; 32]>,
    pub epochs: BTreeSet<(u32, u32)>,
}

impl PendingBatch {
    /// An empty batch of `kind`, written now.
    pub fn new(kind: &'static str) -> PendingBatch {
        PendingBatch {
            id: crate::crypto::random_array(),
            kind,
            signed_at: crate::vault::now(),
            leaves: Vec::new(),
            epochs: BTreeSet::new(),
        }
    }
}

/// The statement that stores a signed batch.
fn insert_batch(b: &BatchRow) -> (String, Vec<StoreValue>) {
    (
        format!(
            "INSERT INTO {} ({}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            sql::BATCHES.name,
            sql::column_list(&sql::BATCHES)
        ),
        vec![
            StoreValue::Blob(b.id.to_vec()),
            StoreValue::Text(b.kind.clone()),
            StoreValue::Text(b.signer.clone()),
            StoreValue::Int(b.signed_at),
            StoreValue::Blob(b.leaves.clone()),
            StoreValue::Blob(b.evidence.clone()),
            StoreValue::Blob(b.signature.clone()),
        ],
    )
}

/// Whether a stored column is in a row's leaf (FORMAT.md §5.8): every
/// one but the id (in the record already) whose value is not NULL, so a
/// column added to a table, empty in the rows there, leaves their leaves
/// as they were, and a value set to NULL takes its column out.
fn in_leaf(name: &str, v: &Stored<'_>) -> bool {
    name != "id" && *v != Stored::Null
}

/// The id of a stored row (its first cell, 16 bytes), if it is one.
fn stored_id(cells: &[Cell]) -> Option<[u8; 16]> {
    match cells.first() {
        Some(Cell::Bytes(b)) => b.as_slice().try_into().ok(),
        _ => None,
    }
}

/// Why a row with a cell under a retired epoch is forged (FORMAT.md
/// §5.8): every writer checks inside its transaction that its epoch is
/// the newest (§4.3), and a rotation retires an epoch only after its
/// passes found no cell under it; such a cell was written after that, by
/// someone holding the old key (a revoked user, the old epoch's grant as
/// evidence), or put back by the store.
pub(crate) const UNDER_RETIRED: &str = "a cell is under a key epoch retired before it was written";

/// Whether a read that failed with `e` is to be made again after the key
/// state is read again: a cell under an epoch this session does not know
/// yet, or under one it knows as retired (the row may have been read
/// before a rotation sealed it again, and the retirement learnt after).
pub(crate) fn read_again(e: &Error) -> bool {
    match e {
        Error::KeysOutdated { .. } => true,
        Error::Forged { reason, .. } => *reason == UNDER_RETIRED,
        _ => false,
    }
}

fn forged(table: &'static str) -> impl Fn(Forgery) -> Error {
    move |reason| Error::Forged { table, reason }
}

/// The records of users' keys a recovery replaced (FORMAT.md §5.9), as
/// `store` holds them; each is checked where it is used.
pub(crate) async fn replaced_keys(store: &dyn crate::store::Store) -> Result<Vec<ReplacedKey>> {
    let sql = format!(
        "SELECT {} FROM {}",
        sql::column_list(&sql::REPLACED_KEYS),
        sql::REPLACED_KEYS.name
    );
    let mut out = Vec::new();
    for cells in store.select(sql, Vec::new()).await? {
        // A record that does not decode vouches for nothing.
        let decoded = (|| {
            let mut d = sql::REPLACED_KEYS.decoder(cells)?;
            Ok::<_, Error>(ReplacedKey {
                user: d.text(0)?,
                cert: d.blob(2)?,
                replaced_at: d.int(3)?,
                signer: d.text(4)?,
                signature: d.blob(5)?,
            })
        })();
        out.extend(decoded.ok());
    }
    Ok(out)
}

impl Session {
    /// Signs `batch` as this user and returns the statement that stores
    /// it; `None` for a batch of no rows. A write batch carries this
    /// user's signed `read-write` grant of every epoch its rows use.
    pub(crate) fn sign_pending(
        &self,
        batch: PendingBatch,
        signer: &mut RecordSigner,
    ) -> Result<Option<(String, Vec<StoreValue>)>> {
        if batch.leaves.is_empty() {
            return Ok(None);
        }
        if batch.leaves.len() > authorship::MAX_LEAVES {
            return Err(Error::Refused("a batch vouches for 1 to 65536 rows"));
        }
        let evidence = if batch.kind == authorship::KIND_WRITE {
            let ks = self.ks();
            batch
                .epochs
                .iter()
                .map(|e| {
                    ks.evidence
                        .get(e)
                        .map(|g| g.as_ref().clone())
                        .ok_or_else(|| Error::ReadOnly(self.scope_name(e.0)))
                })
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let b = authorship::sign_batch_with_id(
            &self.vault_id,
            batch.id,
            signer,
            (&self.user, batch.signed_at),
            batch.kind,
            &batch.leaves,
            &evidence,
        )?;
        Ok(Some(insert_batch(&b)))
    }

    /// The records of users' keys a recovery replaced (FORMAT.md §5.9), as
    /// stored; each is checked where it is used.
    pub(crate) async fn replaced_keys(&self) -> Result<Vec<ReplacedKey>> {
        replaced_keys(&*self.store).await
    }

    /// The statement that stores the record of `user`'s key `cert`,
    /// replaced at `replaced_at` (the time of the user row that replaces
    /// it: a record dated after that row counts for nothing), signed by
    /// `by` (FORMAT.md §5.9).
    pub(crate) async fn replaced_key_statement(
        &self,
        user: &str,
        cert: &sequoia_openpgp::Cert,
        by: crate::vault::SignAs<'_>,
        replaced_at: i64,
    ) -> Result<(String, Vec<StoreValue>)> {
        let fpr = crate::keys::pgp::fingerprint(cert);
        let mut r = ReplacedKey {
            user: user.to_owned(),
            cert: crate::keys::pgp::cert_bytes(cert)?,
            replaced_at,
            signer: by.name.to_owned(),
            signature: Vec::new(),
        };
        r.signature = by
            .key
            .lock()
            .await
            .sign(&replaced_key_record(&self.vault_id, &r, &fpr))?;
        // Run again after a recovery cut short, the record of the same key
        // is there already: kept.
        Ok((
            format!(
                "{} INTO {} ({}) VALUES (?, ?, ?, ?, ?, ?)",
                self.store.dialect().insert_keeping(),
                sql::REPLACED_KEYS.name,
                sql::column_list(&sql::REPLACED_KEYS)
            ),
            vec![
                StoreValue::Text(r.user),
                StoreValue::Text(fpr),
                StoreValue::Blob(r.cert),
                StoreValue::Int(r.replaced_at),
                StoreValue::Text(r.signer),
                StoreValue::Blob(r.signature),
            ],
        ))
    }

    /// Reads the key state again if this session holds the write right
    /// under an epoch whose signed grant it has not read (a scope it made,
    /// an epoch its rotation made): a batch it signs carries that grant.
    pub(crate) async fn ensure_evidence(&self) -> Result<()> {
        let missing = {
            let ks = self.ks();
            ks.writable.iter().any(|e| !ks.evidence.contains_key(e))
        };
        if missing {
            self.refresh_keys().await?;
        }
        Ok(())
    }

    /// Reads and verifies the batches `ids` this session has not seen,
    /// and remembers each verdict.
    pub(crate) async fn load_batches(&self, ids: BTreeSet<[u8; 16]>) -> Result<()> {
        let ids: Vec<[u8; 16]> = {
            let cache = self.batches.lock().unwrap_or_else(|p| p.into_inner());
            ids.into_iter().filter(|i| !cache.contains_key(i)).collect()
        };
        if ids.is_empty() {
            return Ok(());
        }
        let mut dir = self.batch_directory().await?;
        // Read now, not from the key state: a batch may name a scope made
        // since this session loaded its keys. Each grant of the evidence
        // is verified over its scope's row, so a row the store made up
        // verifies nothing.
        let scopes: HashMap<u32, crate::store::ScopeRow> = self
            .store
            .scopes()
            .await?
            .into_iter()
            .map(|s| (s.id, s))
            .collect();
        for part in ids.chunks(200) {
            let sql = format!(
                "SELECT {} FROM {} WHERE id IN ({})",
                sql::column_list(&sql::BATCHES),
                sql::BATCHES.name,
                vec!["?"; part.len()].join(", ")
            );
            let params = part.iter().map(|i| StoreValue::Blob(i.to_vec())).collect();
            let rows = self.store.select(sql, params).await?;
            let mut verdicts = HashMap::new();
            for cells in rows {
                // A batch row that does not decode vouches for nothing; the
                // other batches of the page are still read.
                let decoded = (|| {
                    let mut d = sql::BATCHES.decoder(cells)?;
                    Ok::<_, Error>(BatchRow {
                        id: d.id(0)?,
                        kind: d.text(1)?,
                        signer: d.text(2)?,
                        signed_at: d.int(3)?,
                        leaves: d.blob(4)?,
                        evidence: d.blob(5)?,
                        signature: d.blob(6)?,
                    })
                })();
                let Ok(b) = decoded else {
                    continue;
                };
                if !part.contains(&b.id) {
                    continue; // not asked for
                }
                let v = authorship::verify_batch(&mut dir, &self.vault_id, &scopes, &b);
                verdicts.insert(b.id, v.map(Arc::new));
            }
            let mut cache = self.batches.lock().unwrap_or_else(|p| p.into_inner());
            for id in part {
                // A batch the store does not answer vouches for nothing.
                let v = verdicts
                    .remove(id)
                    .unwrap_or(Err("no batch vouches for the row"));
                cache.insert(*id, v);
            }
        }
        Ok(())
    }
}

impl RowTable<'_> {
    /// The scopes a row's author must hold the write right under beyond
    /// the epochs of its sealed cells (`epochs`): the row's own scope
    /// (`scope_id`) when no cell is sealed under it, since the author chose
    /// it; and, for a row with no sealed cell at all, every scope of its
    /// encrypted columns. A row with some sealed cell and a named scope's
    /// column left NULL needs nothing more there (a clinician without the
    /// billing right still writes a prescription without its price).
    ///
    /// Returns the scopes needed each, and those of which one is enough: a
    /// reader checks a row of NULLs against the scopes its own schema
    /// gives the table, which a column added since only adds to.
    fn bare_scopes(&self, row_scope: Option<u32>, epochs: &[(u32, u32)]) -> (Vec<u32>, Vec<u32>) {
        let mut each: Vec<u32> = Vec::new();
        if let Some(rs) = row_scope {
            if !epochs.iter().any(|(s, _)| *s == rs) {
                each.push(rs);
            }
        }
        let mut one_of: Vec<u32> = Vec::new();
        if epochs.is_empty() && row_scope.is_none() {
            one_of.extend(
                self.t()
                    .columns
                    .iter()
                    .enumerate()
                    .filter_map(|(k, c)| match &c.ty {
                        ColumnType::Encrypted(e) => self.column_scope(k, e, row_scope),
                        _ => None,
                    }),
            );
        }
        one_of.sort_unstable();
        one_of.dedup();
        (each, one_of)
    }

    /// Adds to `epochs` (a row's, being written) the current epoch of each
    /// scope [`RowTable::bare_scopes`] asks for, which this user must be
    /// able to write under: each of the first, and those of the second
    /// they can (at least one).
    fn vouch_bare(&self, row_scope: Option<u32>, epochs: &mut Vec<(u32, u32)>) -> Result<()> {
        let (each, one_of) = self.bare_scopes(row_scope, epochs);
        for sid in each {
            let (epoch, _) = self.s.current_keys(sid)?;
            epochs.push((sid, epoch));
        }
        let mut refused = None;
        for sid in &one_of {
            match self.s.current_keys(*sid) {
                Ok((epoch, _)) => epochs.push((*sid, epoch)),
                Err(e) => {
                    refused.get_or_insert(e);
                }
            }
        }
        match refused {
            Some(e) if !one_of.iter().any(|s| epochs.iter().any(|(w, _)| w == s)) => Err(e),
            _ => Ok(()),
        }
    }

    /// The row scope among stored or written values (`scope_id`), if the
    /// table has one and it is a scope id.
    fn scope_among<'v>(
        &self,
        mut named: impl Iterator<Item = (&'v str, Stored<'v>)>,
    ) -> Option<u32> {
        if !self.t().row_scoped() {
            return None;
        }
        match named.find(|(n, _)| *n == "scope_id")?.1 {
            Stored::Int(i) => u32::try_from(i).ok(),
            _ => None,
        }
    }

    /// The (scope, epoch) pairs of the sealed cells among `vals`, the
    /// values of [`RowTable::write_columns`].
    fn written_epochs(&self, cols: &[String], vals: &[StoreValue]) -> Vec<(u32, u32)> {
        let t = self.t();
        cols.iter()
            .zip(vals)
            .filter(|(c, _)| matches!(t.column(c).map(|c| &c.ty), Some(ColumnType::Encrypted(_))))
            .filter_map(|(_, v)| match v {
                StoreValue::Blob(b) => Header::peek(b).map(|h| (h.scope, h.epoch)),
                _ => None,
            })
            .collect()
    }

    /// Authenticates a row about to be written: `vals` (the values of
    /// `cols`, [`RowTable::write_columns`]) get the row's
    /// `medvault_auth` appended, and its leaf and epochs join `batch`'s at
    /// `leaf`. Returns the leaf and the epochs.
    pub(crate) fn authenticate(
        &self,
        cols: &[String],
        vals: &mut Vec<StoreValue>,
        (version, author): (u64, &str),
        (batch, leaf): (&PendingBatch, usize),
    ) -> Result<Leaf> {
        let id: [u8; 16] = match vals.first() {
            Some(StoreValue::Blob(b)) => b.as_slice().try_into().ok(),
            _ => None,
        }
        .ok_or(Error::Refused("a row without an id"))?;
        let auth = RowAuth {
            version,
            written_at: batch.signed_at,
            batch: batch.id,
            leaf: u32::try_from(leaf).map_err(|_| Error::Refused("too many rows in one batch"))?,
            author: author.to_owned(),
        };
        let columns: Vec<(&str, Stored<'_>)> = cols
            .iter()
            .zip(vals.iter())
            .map(|(c, v)| (c.as_str(), Stored::from(v)))
            .filter(|(c, v)| in_leaf(c, v))
            .collect();
        let h = authorship::leaf(
            &self.s.vault_id,
            &auth.row_version(&self.name, &id),
            &columns,
        );
        let mut epochs = self.written_epochs(cols, vals);
        // A scope of the row with no sealed cell (its columns NULL): the
        // author vouches under its current epoch.
        let row_scope = self.scope_among(
            cols.iter()
                .map(|c| c.as_str())
                .zip(vals.iter().map(Stored::from)),
        );
        self.vouch_bare(row_scope, &mut epochs)?;
        vals.push(StoreValue::Blob(auth.encode()));
        Ok((h, epochs))
    }

    /// The batch ids the stored rows `rows` name (cells as
    /// [`sql::rows::stored_columns`] selects them).
    pub(crate) fn batch_ids(rows: &[Vec<Cell>]) -> BTreeSet<[u8; 16]> {
        rows.iter()
            .filter_map(|cells| match cells.last() {
                Some(Cell::Bytes(b)) => RowAuth::parse(b).map(|a| a.batch),
                _ => None,
            })
            .collect()
    }

    /// Reads the batches the stored rows `rows` name that this session
    /// has not checked yet.
    pub(crate) async fn prepare(&self, rows: &[Vec<Cell>]) -> Result<()> {
        self.s.load_batches(Self::batch_ids(rows)).await
    }

    /// The leaf of the stored row `cells` (every column of
    /// [`sql::rows::stored_columns`] but the last) as `auth` names it;
    /// `None` if a value is of a type no writer stores.
    pub(crate) fn stored_leaf(&self, auth: &RowAuth, cells: &[Cell]) -> Option<[u8; 32]> {
        let id = stored_id(cells)?;
        Some(authorship::leaf(
            &self.s.vault_id,
            &auth.row_version(&self.name, &id),
            &self.leaf_columns(cells, &[])?,
        ))
    }

    /// The columns of the stored row `cells` as its leaf takes them (§5.8:
    /// every one but the id, a numbered one and the authentication, whose
    /// value is not NULL), with the values of `set` in place of those
    /// stored; `None` if a value is of a type no writer stores.
    fn leaf_columns<'a>(
        &self,
        cells: &'a [Cell],
        set: &[(&str, &'a StoreValue)],
    ) -> Option<Vec<(&'static str, Stored<'a>)>> {
        let numbered = self.t().numbered_column();
        let names = self.stored_names;
        let n = names.len().checked_sub(1)?;
        let mut columns = Vec::with_capacity(n);
        for (name, c) in names.iter().take(n).zip(cells) {
            if Some(*name) == numbered {
                continue;
            }
            let v = match set.iter().find(|(s, _)| s == name) {
                Some((_, v)) => Stored::from(*v),
                None => Stored::from_cell(c)?,
            };
            if in_leaf(name, &v) {
                columns.push((*name, v));
            }
        }
        Some(columns)
    }

    /// Who vouches for the stored row `cells`, whose sealed cells are
    /// under `epochs`: [`Error::Forged`] if its authentication is there
    /// but does not check. Its batch must have been read
    /// ([`RowTable::prepare`]).
    pub(crate) fn check_auth(&self, cells: &[Cell], epochs: &[(u32, u32)]) -> Result<Authorship> {
        let table = self.decoder_names.0;
        let auth = match cells.last() {
            Some(Cell::Null) if self.s.rows_signed() => {
                return Err(Error::Forged {
                    table,
                    reason: "a row without authentication in a vault whose rows are all signed",
                })
            }
            Some(Cell::Null) => return Ok(Authorship::Unsigned),
            Some(Cell::Bytes(b)) => RowAuth::parse(b).ok_or(Error::Forged {
                table,
                reason: "its authentication is malformed",
            })?,
            _ => {
                return Err(Error::Forged {
                    table,
                    reason: "its authentication is malformed",
                })
            }
        };
        let batch: Arc<VerifiedBatch> = {
            let cache = self.s.batches.lock().unwrap_or_else(|p| p.into_inner());
            match cache.get(&auth.batch) {
                Some(Ok(b)) => Arc::clone(b),
                Some(Err(why)) => return Err(forged(table)(why)),
                None => return Err(forged(table)("no batch vouches for the row")),
            }
        };
        let leaf = self.stored_leaf(&auth, cells).ok_or(Error::Forged {
            table,
            reason: "a value no writer stores",
        })?;
        let row_id = stored_id(cells).ok_or(Error::Forged {
            table,
            reason: "a row without an id",
        })?;
        let index = usize::try_from(auth.leaf).unwrap_or(usize::MAX);
        let row_scope = self.scope_among(
            self.stored_names.iter().copied().zip(
                cells
                    .iter()
                    .map(|c| Stored::from_cell(c).unwrap_or(Stored::Null)),
            ),
        );
        let (each, one_of) = self.bare_scopes(row_scope, epochs);
        authorship::check_row(
            &batch,
            index,
            &leaf,
            &auth.row_version(&self.name, &row_id),
            (epochs, &each, &one_of),
        )
        .map_err(forged(table))?;
        let ks = self.s.ks();
        if epochs.iter().any(|e| ks.retired.contains(e)) {
            return Err(Error::Forged {
                table,
                reason: UNDER_RETIRED,
            });
        }
        let resealed_by = batch.reseal.then(|| batch.signer.clone());
        if auth.version == 0 {
            return Ok(Authorship::Adopted {
                by: auth.author,
                adopted_at: auth.written_at,
                resealed_by,
            });
        }
        Ok(Authorship::Signed {
            author: auth.author,
            written_at: auth.written_at,
            version: auth.version,
            resealed_by,
        })
    }
}

/// The statements a write of `rows` makes, and the batch signed over them.
pub(crate) fn with_batch(
    mut statements: Vec<(String, Vec<StoreValue>)>,
    batch: Option<(String, Vec<StoreValue>)>,
) -> Vec<(String, Vec<StoreValue>)> {
    if let Some(b) = batch {
        statements.push(b);
    }
    statements
}

impl RowTable<'_> {
    /// The statement that sets `column` of the stored row `cells` to
    /// `value` in a reseal (a new or a dropped index), and re-points the
    /// row's authentication to its new leaf, appended to `batch` (an empty
    /// leaf for a row nothing vouched for, which stays so). It is written
    /// only if each of `cas` (a column and its value as read, `None` for
    /// NULL) and the row's authentication are still as read.
    pub(crate) fn reseal_column(
        &self,
        cells: &[Cell],
        (column, value): (&str, StoreValue),
        cas: &[(&str, Option<Vec<u8>>)],
        batch: &mut PendingBatch,
    ) -> Result<super::Statement> {
        let at = batch.leaves.len();
        let re = self.reauthenticate(cells, &[(column, &value)], (batch, at))?;
        let mut set = vec![column];
        let mut params = vec![value];
        match re {
            Some(re) => {
                set.push(crate::sql::ddl::AUTH_COLUMN);
                params.push(StoreValue::Blob(re.auth));
                batch.leaves.push(re.leaf);
            }
            None => batch.leaves.push([0; 32]),
        }
        let id = match cells.first() {
            Some(Cell::Bytes(b)) => b.clone(),
            _ => {
                return Err(Error::BadStoredValue {
                    table: self.decoder_names.0,
                    column: "id",
                    expected: "16 bytes",
                })
            }
        };
        params.push(StoreValue::Blob(id));
        let old_auth = match cells.last() {
            Some(Cell::Bytes(b)) => Some(b.clone()),
            _ => None,
        };
        let mut conditions: Vec<(&str, bool)> =
            cas.iter().map(|(c, v)| (*c, v.is_none())).collect();
        conditions.push((crate::sql::ddl::AUTH_COLUMN, old_auth.is_none()));
        params.extend(
            cas.iter()
                .filter_map(|(_, v)| v.clone())
                .chain(old_auth)
                .map(StoreValue::Blob),
        );
        let d = self.s.store.dialect();
        Ok((stmt::reseal(d, self.t(), &set, &conditions), params))
    }

    /// Writes one page of a reseal in one transaction: the row
    /// `statements`, then `batch` signed by this administrator if it
    /// vouches for any row, if `guard` (taken when the page was read,
    /// [`Session::write_guard`]) still holds. Returns how many rows were
    /// written (a row changed meanwhile is not), or `None` if the key state
    /// moved: nothing was written, and the page is to be read again.
    pub(crate) async fn write_resealed(
        &self,
        guard: &crate::store::Guard,
        mut statements: Vec<super::Statement>,
        batch: PendingBatch,
    ) -> Result<Option<u64>> {
        let asked = statements.len();
        if batch.leaves.iter().any(|l| *l != [0; 32]) {
            let mut signer = self.s.signer.lock().await;
            statements.extend(self.s.sign_pending(batch, &mut signer)?);
        }
        match self.s.store.write_guarded(guard, statements).await {
            Ok(changed) => Ok(Some(changed.iter().take(asked).sum())),
            Err(Error::StateMoved) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A row's new authentication after some of its columns were sealed
/// again ([`RowTable::reauthenticate`]).
pub(crate) struct Reauthenticated {
    /// The `medvault_auth` value to store.
    pub auth: Vec<u8>,
    /// Its leaf, for the batch.
    pub leaf: [u8; 32],
    /// The (scope, epoch) pairs of its sealed cells.
    pub epochs: Vec<(u32, u32)>,
}

impl RowTable<'_> {
    /// The authentication of the stored row `cells` (already opened, so
    /// its own checked) once the columns of `set` hold the given values,
    /// at leaf `leaf` of `batch`:
    /// - a reseal batch (an administrator sealing cells again under a new
    ///   epoch or a new index) keeps the version, author and time: `None`
    ///   for a row nothing vouched for before (it stays unsigned);
    /// - a write batch (a user moving the row) makes a new version by
    ///   this user, now.
    pub(crate) fn reauthenticate(
        &self,
        cells: &[Cell],
        set: &[(&str, &StoreValue)],
        (batch, leaf): (&PendingBatch, usize),
    ) -> Result<Option<Reauthenticated>> {
        let table = self.decoder_names.0;
        let old = match cells.last() {
            Some(Cell::Bytes(b)) => Some(RowAuth::parse(b).ok_or(Error::Forged {
                table,
                reason: "its authentication is malformed",
            })?),
            _ => None,
        };
        let leaf_at =
            u32::try_from(leaf).map_err(|_| Error::Refused("too many rows in one batch"))?;
        let auth = match (batch.kind, old) {
            (authorship::KIND_RESEAL, None) => return Ok(None),
            (authorship::KIND_RESEAL, Some(a)) => RowAuth {
                batch: batch.id,
                leaf: leaf_at,
                ..a
            },
            (_, old) => RowAuth {
                version: match old {
                    Some(a) => a
                        .version
                        .checked_add(1)
                        .ok_or(Error::Refused("the row has reached its last version"))?,
                    None => 1,
                },
                written_at: batch.signed_at,
                batch: batch.id,
                leaf: leaf_at,
                author: self.s.user.clone(),
            },
        };
        let id = stored_id(cells).ok_or(Error::Forged {
            table,
            reason: "a row without an id",
        })?;
        let columns = self.leaf_columns(cells, set).ok_or(Error::Forged {
            table,
            reason: "a value no writer stores",
        })?;
        // The epochs of its sealed cells as they will be (NULL ones are not
        // in the leaf and seal nothing).
        let t = self.t();
        let mut epochs: Vec<(u32, u32)> = columns
            .iter()
            .filter(|(name, _)| {
                matches!(
                    t.column(name).map(|c| &c.ty),
                    Some(ColumnType::Encrypted(_))
                )
            })
            .filter_map(|(_, v)| match v {
                Stored::Bytes(b) => Header::peek(b).map(|h| (h.scope, h.epoch)),
                _ => None,
            })
            .collect();
        let leaf = authorship::leaf(
            &self.s.vault_id,
            &auth.row_version(&self.name, &id),
            &columns,
        );
        if batch.kind == authorship::KIND_WRITE {
            let row_scope = self.scope_among(columns.iter().copied());
            self.vouch_bare(row_scope, &mut epochs)?;
        }
        Ok(Some(Reauthenticated {
            auth: auth.encode(),
            leaf,
            epochs,
        }))
    }
}

impl RowTable<'_> {
    /// Adopts this table's rows that have no authentication, `page` at a
    /// time, each page in one transaction with one adoption batch signed
    /// by this administrator (FORMAT.md §5.8): each row becomes version 0,
    /// its author this administrator, its time the batch's. A row is
    /// written only if it still has no authentication. `on_page` hears the
    /// running count after each page. Returns how many rows were adopted.
    ///
    /// Each page first checks the key state and schema version (a schema
    /// stored since is [`Error::SchemaChanged`]: the caller opens the
    /// table again), and is read back after it is written: a row another
    /// client sealed again between the read and the write (a rotation of
    /// a vault not adopted yet keeps such rows without authentication) no
    /// longer matches the leaf signed over it, and gets its
    /// authentication taken off again, for the next pass.
    ///
    /// Nothing is decrypted: the administrator vouches for what the store
    /// holds, and need not hold the rows' keys.
    pub(crate) async fn adopt_unsigned(
        &self,
        page: u32,
        on_page: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64> {
        let table = self.decoder_names.0;
        let d = self.s.store.dialect();
        let t = self.t();
        let auth_col = crate::sql::ddl::AUTH_COLUMN;
        let write = stmt::reseal(d, t, &[auth_col], &[(auth_col, true)]);
        let undo = stmt::reseal(d, t, &[auth_col], &[(auth_col, false)]);
        let mut adopted = 0;
        let (mut restarts, mut moved) = (0, 0);
        let mut after: Option<Vec<u8>> = None;
        loop {
            self.check_current().await?;
            let guard = self.guard().await?;
            let page_start = after.clone();
            if self.s.rows_signed() {
                // Another administrator finished meanwhile: a row without
                // authentication is forged now, not adopted.
                return Ok(adopted);
            }
            let params = after.iter().cloned().map(StoreValue::Blob).collect();
            let rows = self
                .s
                .store
                .select(stmt::unsigned(d, t, after.is_some(), page), params)
                .await?;
            self.check_page_len(rows.len(), page)?;
            if rows.is_empty() {
                return Ok(adopted);
            }
            let mut batch = PendingBatch::new(authorship::KIND_ADOPT);
            let mut statements = Vec::with_capacity(rows.len() + 1);
            let mut ids = Vec::with_capacity(rows.len());
            for cells in &rows {
                if cells.len() != self.stored_names.len() {
                    return Err(Error::BadStoredValue {
                        table,
                        column: "*",
                        expected: "a row with the declared number of columns",
                    });
                }
                let id = stored_id(cells).ok_or(Error::BadStoredValue {
                    table,
                    column: "id",
                    expected: "16 bytes",
                })?;
                if after.as_deref().is_some_and(|a| id.as_slice() <= a) {
                    return Err(Error::BadStoredValue {
                        table,
                        column: "id",
                        expected: "each row once, in id order",
                    });
                }
                after = Some(id.to_vec());
                if !matches!(cells.last(), Some(Cell::Null)) {
                    continue; // not asked for: the write would not apply
                }
                let auth = RowAuth {
                    version: 0,
                    written_at: batch.signed_at,
                    batch: batch.id,
                    leaf: u32::try_from(batch.leaves.len())
                        .map_err(|_| Error::Refused("too many rows in one batch"))?,
                    author: self.s.user.clone(),
                };
                let columns = self.leaf_columns(cells, &[]).ok_or(Error::BadStoredValue {
                    table,
                    column: "*",
                    expected: "a value medvault stores",
                })?;
                batch.leaves.push(authorship::leaf(
                    &self.s.vault_id,
                    &auth.row_version(&self.name, &id),
                    &columns,
                ));
                statements.push((
                    write.clone(),
                    vec![
                        StoreValue::Blob(auth.encode()),
                        StoreValue::Blob(id.to_vec()),
                    ],
                ));
                ids.push(id);
            }
            if ids.is_empty() {
                continue;
            }
            let (batch_id, leaves) = (batch.id, batch.leaves.clone());
            let Some(mut n) = self.write_resealed(&guard, statements, batch).await? else {
                // The key state or schema moved: nothing was written; the
                // page is read again under the state as it is now.
                super::moved_again(&mut moved)?;
                after = page_start;
                continue;
            };
            moved = 0;
            // A schema stored meanwhile may have filled an index in these
            // rows, which this table does not read: undone, all of them.
            let schema_moved = self.s.probe().await?.schema_version > self.version;
            // Read back: each row this page adopted must still be the one
            // its leaf was signed over.
            let back = self
                .s
                .store
                .select(
                    stmt::by_values(d, t, "id", ids.len(), None),
                    ids.iter().map(|i| StoreValue::Blob(i.to_vec())).collect(),
                )
                .await?;
            let mut undone = Vec::new();
            for cells in &back {
                let Some(Cell::Bytes(stored)) = cells.last() else {
                    continue;
                };
                let Some(auth) = RowAuth::parse(stored) else {
                    continue;
                };
                if auth.batch != batch_id {
                    continue;
                }
                let signed = usize::try_from(auth.leaf).ok().and_then(|k| leaves.get(k));
                let same = cells.len() == self.stored_names.len()
                    && signed.is_some()
                    && self.stored_leaf(&auth, cells).as_ref() == signed;
                if same && !schema_moved {
                    continue;
                }
                if let Some(Cell::Bytes(id)) = cells.first() {
                    undone.push((
                        undo.clone(),
                        vec![
                            StoreValue::Null,
                            StoreValue::Blob(id.clone()),
                            StoreValue::Blob(stored.clone()),
                        ],
                    ));
                }
            }
            if !undone.is_empty() {
                let k = self.s.store.write_all(undone).await?.iter().sum::<u64>();
                n = n.saturating_sub(k);
                if schema_moved {
                    let version = self.s.reload_schema().await?;
                    return Err(Error::SchemaChanged { version });
                }
                // Read again from the start: those rows are due again.
                restarts += 1;
                if restarts > 3 {
                    return Err(Error::Concurrent("the rows being adopted"));
                }
                after = None;
            }
            adopted += n;
            on_page(adopted);
        }
    }

    /// How many of this table's rows have no authentication.
    pub(crate) async fn count_unsigned(&self) -> Result<u64> {
        let sql = stmt::count_unsigned(self.s.store.dialect(), self.t());
        let rows = self.s.store.select(sql, Vec::new()).await?;
        let cells = rows.into_iter().next().ok_or(Error::BadStoredValue {
            table: self.decoder_names.0,
            column: "*",
            expected: "a count",
        })?;
        sql::single_int(self.decoder_names.0, cells)
    }
}
