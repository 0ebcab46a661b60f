//! `copy` between stores and `verify` of a store.
//!
//! `copy` moves rows as they are stored: ciphertexts, blind indexes,
//! certificates, locked keys and signatures, never decrypting a field.
//! Tables go parents first; the large ones (patients, notes) in pages of
//! 1,000 rows ordered by their random id, one transaction per page, so a
//! copy stopped by a crash or a dropped connection resumes after the
//! largest id the destination holds. Rows already present are skipped, and
//! at the end every table must hold the same number of rows on both sides.

use std::ops::ControlFlow;
use std::sync::Arc;

use serde::Serialize;

use super::trust::{self, Directory, ROOT};
use super::{blocking, open_embedded, Session};
use crate::crypto::secret::DbKey;
use crate::error::{Error, Result};
use crate::keys::pgp;
use crate::store::keyring::{Entry, Keyring};
#[cfg(feature = "mysql")]
use crate::store::mysql::MysqlStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreUrl, Value, TABLES};

/// Rows per transaction for the large tables.
const PAGE: u32 = 1000;

/// Where the page after one ending at `last` starts. A store must answer
/// pages in increasing id order and no larger than asked: one that repeats
/// or overfills a page would otherwise keep a copy or a verify going
/// forever.
fn advance(table: &'static str, after: Option<&[u8]>, rows: usize, last: &[u8]) -> Result<Vec<u8>> {
    let moved = after.is_none_or(|a| last > a);
    if rows > PAGE as usize || !moved {
        return Err(Error::BadStoredValue {
            table,
            column: "id",
            expected: "in pages of increasing ids, no larger than asked",
        });
    }
    Ok(last.to_vec())
}

/// What `copy` did.
#[derive(Clone, Debug, Serialize)]
pub struct CopyReport {
    /// Rows per table in the destination (equal to the source).
    pub tables: Vec<(String, u64)>,
    /// Users of the source whose rows do not verify to the pinned root:
    /// copied as rows, but given no key to a new SQLCipher destination.
    pub not_enrolled: Vec<String>,
}

/// Progress of a copy: table, rows done, rows in the source table. Return
/// `ControlFlow::Break` to stop (the copy resumes when run again).
pub type Progress<'a> = &'a mut (dyn FnMut(&str, u64, u64) -> ControlFlow<()> + Send);

/// Opens (or, for a new SQLCipher file, creates) the destination of a copy.
/// Users whose rows do not verify, and so are not enrolled in a new file's
/// keyring, are added to `not_enrolled`.
async fn open_destination(
    to: &str,
    source: &Session,
    password: &sequoia_openpgp::crypto::Password,
    not_enrolled: &mut Vec<String>,
) -> Result<Arc<dyn Store>> {
    let vault_id = source.vault_id;
    match StoreUrl::parse(to)? {
        #[cfg(not(feature = "mysql"))]
        StoreUrl::Mysql(_) => Err(Error::NotBuiltIn("MySQL store", "mysql")),
        #[cfg(feature = "mysql")]
        StoreUrl::Mysql(u) => {
            let dst = MysqlStore::connect(&u).await?;
            match dst.meta("vault_id").await? {
                Some(v) if v != vault_id => Err(Error::VaultExists(u.to_string())),
                _ => Ok(Arc::new(dst)),
            }
        }
        StoreUrl::Sqlcipher(path) => {
            if path.exists() {
                // Resume: open it as the copying user, like a login.
                let (user, pw) = (source.user.clone(), password.clone());
                let p = path.clone();
                let (store, _, _) = blocking(move || open_embedded(&p, &user, &pw)).await?;
                if store.meta("vault_id").await?.as_deref() != Some(&vault_id[..]) {
                    return Err(Error::VaultExists(path.display().to_string()));
                }
                return Ok(Arc::new(store));
            }
            // A new file: a keyring entry (the backup's database key) for
            // every user whose row verifies to the pinned root and is
            // active. A row nobody signed, or a disabled user set back to
            // `active` by SQL, gets nothing; they are reported by name.
            let key = DbKey::generate();
            let mut kr = Keyring::new(vault_id, [0; 16], pgp::fingerprint(&source.root_cert));
            let mut dir = source.directory().await?;
            // The root's entry (FORMAT.md §7): recovery without a login.
            let sealed = source
                .store
                .meta("root_sealed")
                .await?
                .ok_or_else(|| Error::Store("vault metadata root_sealed is missing".into()))?;
            kr.entries.push(Entry {
                name: ROOT.to_owned(),
                locked_key: sealed,
                wrapped_db_key: pgp::wrap(&[&source.root_cert], key.expose())?,
            });
            for name in dir.names() {
                let Some(row) = dir.row(&name).cloned() else {
                    continue;
                };
                match dir.verify(&name) {
                    Ok(v) if v.active => kr.entries.push(Entry {
                        name: name.clone(),
                        locked_key: row.locked_key,
                        wrapped_db_key: pgp::wrap(&[&v.cert], key.expose())?,
                    }),
                    Ok(_) => kr.disabled.push(name),
                    Err(_) => not_enrolled.push(name),
                }
            }
            let store =
                blocking(move || SqliteStore::create_empty(&path, key, vault_id, kr)).await?;
            Ok(Arc::new(store))
        }
    }
}

impl Session {
    /// Copies this session's whole vault to `to` without decrypting any
    /// field. An embedded destination that exists already is reopened with
    /// this user's login (a resumed copy).
    pub async fn copy_to(&self, to: &str, progress: Progress<'_>) -> Result<CopyReport> {
        // The schema in force now, not the one of this login: another
        // administrator may have applied since.
        if self.user == ROOT {
            return Err(Error::Refused(
                "copy needs a user's login: a session opened from recovery shares cannot reopen the copy",
            ));
        }
        let version = self.reload_schema().await?;
        let mut not_enrolled = Vec::new();
        let dst = open_destination(to, self, &self.password(), &mut not_enrolled).await?;
        let src = &self.store;
        // The destination gets the tables and columns of the schema in
        // force first (steps already done are skipped, so a resumed copy
        // does not trip over them); its signed rows come with `policies`.
        let schema = self.schema();
        let builtin = crate::schema::Schema::builtin();
        let changes = crate::schema::change::plan(builtin, &schema)?;
        let steps = super::schema::steps(&schema, builtin, &changes, dst.dialect())?;
        if !steps.is_empty() {
            dst.apply_policy(&steps, None).await?;
        }
        let tables = crate::sql::copy_order(&schema);
        for t in &tables {
            let total = src.count(t).await?;
            if !t.paged {
                let rows = src.export(t, None, 0).await?;
                dst.import(t, rows).await?;
                if progress(t.name, total, total).is_break() {
                    return Err(Error::Interrupted);
                }
                continue;
            }
            // Resume after the largest id already copied; if the counts
            // still differ at the end (rows added below it meanwhile), a
            // second full pass fills the gaps.
            for pass in 0..2 {
                let mut after = if pass == 0 {
                    dst.max_id(t).await?
                } else {
                    None
                };
                let mut done = dst.count(t).await?;
                loop {
                    let rows = src.export(t, after.clone(), PAGE).await?;
                    let Some(last) = rows.last() else { break };
                    after = match last.first() {
                        Some(Value::Blob(b)) => {
                            Some(advance(t.name, after.as_deref(), rows.len(), b)?)
                        }
                        _ => return Err(Error::Store(format!("{}: row id is not binary", t.name))),
                    };
                    let n = rows.len() as u64;
                    dst.import(t, rows).await?;
                    done = (done + n).min(total);
                    if progress(t.name, done, total).is_break() {
                        return Err(Error::Interrupted);
                    }
                }
                if dst.count(t).await? == src.count(t).await? {
                    break;
                }
            }
        }
        if src.latest_policy().await?.map_or(0, |r| r.version) != version {
            return Err(Error::CopyIncomplete(
                "the schema in force changed during the copy; copy again".into(),
            ));
        }
        // A rotation during the copy (or between a copy cut short and its
        // resumption) leaves the destination with an older epoch unretired
        // and rows sealed under it, which a resumed copy (it keeps rows
        // already there) would not replace.
        let epochs = |rows: Vec<crate::store::EpochRow>| {
            let mut v: Vec<(u32, u32, bool)> = rows
                .into_iter()
                .map(|e| (e.scope_id, e.epoch, e.retired.is_some()))
                .collect();
            v.sort_unstable();
            v
        };
        if epochs(src.epochs().await?) != epochs(dst.epochs().await?) {
            return Err(Error::CopyIncomplete(
                "the source's key epochs changed during the copy (a rotation); copy again into an empty destination".into(),
            ));
        }
        let mut counted = Vec::new();
        for t in &tables {
            let (a, b) = (src.count(t).await?, dst.count(t).await?);
            if a != b {
                return Err(Error::CopyIncomplete(format!(
                    "{}: {a} rows in the source, {b} in the destination",
                    t.name
                )));
            }
            counted.push((t.name.to_owned(), b));
        }
        Ok(CopyReport {
            tables: counted,
            not_enrolled,
        })
    }

    /// Checks the whole store: every user, epoch and grant signature up to
    /// the pinned root, every envelope header, row counts, and that every
    /// field this user may read decrypts. Problems are listed, not fatal.
    pub async fn verify_store(&self) -> Result<VerifyReport> {
        let mut r = VerifyReport::default();
        self.learn_rows_signed().await?;
        r.every_row_signed = self.rows_signed();
        let s = &self.store;
        if !r.every_row_signed && s.meta("rows_signed").await?.is_some() {
            r.problems.push(
                "vault_meta rows_signed: the record that every row is signed does not verify"
                    .into(),
            );
        }
        let schema = self.schema();
        for t in TABLES.iter().filter(|t| schema.table(t.name).is_none()) {
            r.tables.push((t.name.to_owned(), s.count(t).await?));
        }
        let mut dir: Directory = self.directory().await?;
        // A row named `@root` is no user's (Directory sets it aside).
        if s.users().await?.iter().any(|u| u.name == ROOT) {
            r.problems.push(
                "user @root: a users row under the root's name, which no user can have".into(),
            );
        }
        for name in dir.names() {
            match dir.verify(&name) {
                Ok(_) => r.signatures_verified += 1,
                Err(_) => r
                    .problems
                    .push(format!("user {name}: signature does not chain to the root")),
            }
        }
        let scopes: std::collections::HashMap<u32, crate::store::ScopeRow> =
            s.scopes().await?.into_iter().map(|x| (x.id, x)).collect();
        for e in s.epochs().await? {
            let ok = scopes
                .get(&e.scope_id)
                .is_some_and(|sc| dir.epoch_signed(sc, &e));
            if ok {
                r.signatures_verified += 1;
            } else {
                r.problems.push(format!(
                    "key epoch {} of scope #{}: bad signature",
                    e.epoch, e.scope_id
                ));
            }
            if e.retired.is_some() {
                let retired = scopes
                    .get(&e.scope_id)
                    .is_some_and(|sc| dir.retirement_signed(sc, &e));
                if retired {
                    r.signatures_verified += 1;
                } else {
                    r.problems.push(format!(
                        "key epoch {} of scope #{}: its retirement is not signed \
                         (the epoch is treated as live, unless a client remembers it retired)",
                        e.epoch, e.scope_id
                    ));
                }
            }
        }
        for g in s.grants_all().await? {
            let grantee = if g.grantee == ROOT {
                Some(self.root_cert.clone())
            } else {
                dir.verify(&g.grantee).ok().map(|v| v.cert)
            };
            let ok = match (scopes.get(&g.scope_id), grantee) {
                (Some(sc), Some(cert)) => dir.signer_cert(&g.granter).is_ok_and(|c| {
                    pgp::verify(
                        &c,
                        &trust::grant_record(&self.vault_id, sc, &g, &pgp::fingerprint(&cert)),
                        &g.signature,
                    )
                }),
                _ => false,
            };
            if ok {
                r.signatures_verified += 1;
            } else {
                let scope = scopes
                    .get(&g.scope_id)
                    .map(|x| x.name.clone())
                    .unwrap_or_default();
                r.problems
                    .push(format!("grant of {scope} to {}: bad signature", g.grantee));
            }
        }
        // Records of closed writes (FORMAT.md §5.11): one that does not
        // decode or verify closes nothing.
        let stored = s.count(&crate::sql::CLOSED_WRITES).await?;
        let records: Vec<_> = super::closed::stored(&**s)
            .await?
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        let mut dir = dir.with_replaced(crate::vault::rows::replaced_keys(&**s).await?);
        let decoded = u64::try_from(records.len()).unwrap_or(u64::MAX);
        if decoded < stored {
            r.problems.push(format!(
                "medvault_closed_writes: {} record(s) that do not decode (they close nothing)",
                stored - decoded
            ));
        }
        for c in &records {
            if dir.closed_writes_verify(c) {
                r.signatures_verified += 1;
            } else {
                r.problems.push(format!(
                    "closed writes of {} signed by {}: bad signature (it closes nothing)",
                    c.user, c.signer
                ));
            }
        }
        // Every table of the schema, the built-in ones with the columns an
        // application added to them: every row opened (headers, scopes,
        // epochs, the readable fields), every blind index this user can
        // recompute compared (a value under any epoch of its scope this
        // user holds is accepted: an index filled after the fact uses the
        // epoch current then).
        for t in schema.tables.iter() {
            let spec = crate::sql::table_spec(t);
            r.tables.push((t.name.clone(), s.count(&spec).await?));
            let rows_api = self.table(&t.name).await?;
            let mut after: Option<Vec<u8>> = None;
            loop {
                let rows = s.export(&spec, after.clone(), PAGE).await?;
                let Some(last) = rows.last() else { break };
                after = match last.first() {
                    Some(Value::Blob(b)) => {
                        Some(advance(spec.name, after.as_deref(), rows.len(), b)?)
                    }
                    _ => return Err(Error::Store(format!("{}: row id is not binary", t.name))),
                };
                let rows: Vec<Vec<crate::sql::Cell>> = rows
                    .into_iter()
                    .map(|row| row.into_iter().map(crate::sql::Cell::from).collect())
                    .collect();
                rows_api.prepare(&rows).await?;
                for cells in rows {
                    let id = match cells.first() {
                        Some(crate::sql::Cell::Bytes(b)) => hex::encode(b),
                        _ => String::new(),
                    };
                    match rows_api.verify_row(cells) {
                        Ok(super::rows::Verified {
                            row: opened,
                            checked,
                            wrong,
                            unfilled,
                            fold1,
                            forged,
                        }) => {
                            match forged {
                                Some(e) => {
                                    r.forged += 1;
                                    r.problems.push(format!("{} {id}: {e}", t.name));
                                }
                                None => match opened.authorship {
                                    super::rows::Authorship::Signed { .. } => r.rows_signed += 1,
                                    super::rows::Authorship::Adopted { .. } => r.rows_adopted += 1,
                                    super::rows::Authorship::Unsigned => r.rows_unsigned += 1,
                                },
                            }
                            r.envelopes_checked += t
                                .encrypted()
                                .filter(|(c, _)| {
                                    opened.withheld.contains(&c.name)
                                        || opened
                                            .values
                                            .get(&c.name)
                                            .is_some_and(|v| *v != super::rows::Value::Null)
                                })
                                .count() as u64;
                            r.withheld += opened.withheld.len() as u64;
                            r.fields_decrypted += t
                                .encrypted()
                                .filter(|(c, _)| {
                                    opened
                                        .values
                                        .get(&c.name)
                                        .is_some_and(|v| *v != super::rows::Value::Null)
                                })
                                .count() as u64;
                            r.indexes_checked += checked as u64;
                            r.indexes_unfilled += unfilled.len() as u64;
                            r.indexes_fold1 += fold1 as u64;
                            for w in wrong {
                                r.problems.push(format!(
                                    "{} {id}: {w} does not match the row's values",
                                    t.name
                                ));
                            }
                        }
                        Err(e) => r.problems.push(format!("{} {id}: {e}", t.name)),
                    }
                }
            }
        }
        Ok(r)
    }
}

/// What `verify` found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Rows per table.
    pub tables: Vec<(String, u64)>,
    /// Users, epochs and grants whose signature verified to the root.
    pub signatures_verified: u64,
    /// Envelope headers checked.
    pub envelopes_checked: u64,
    /// Fields this user could read, all decrypted.
    pub fields_decrypted: u64,
    /// Blind indexes recomputed from decrypted values and compared.
    pub indexes_checked: u64,
    /// Blind indexes with no value in a row that holds every column they
    /// cover: rows written before the index existed (format 9 or 10
    /// upgrades, an index added to a table), until an administrator runs
    /// `Session::fill_indexes`. Not a problem: a search through the index
    /// misses those rows meanwhile (a store that removes values hides rows
    /// the same way, as it could by withholding them).
    pub indexes_unfilled: u64,
    /// Blind index values over names in their fold-1 form (written before
    /// format 10, `schema/FORMAT.md` §4.1): found by the spelling they were
    /// written with until an administrator runs `Session::fill_indexes`.
    pub indexes_fold1: u64,
    /// Notes in scopes this user holds no key for (headers checked only).
    pub withheld: u64,
    /// Rows whose author's signed batch vouches for them (FORMAT.md §5.8).
    pub rows_signed: u64,
    /// Rows written before rows were authenticated that an administrator
    /// adopted (`medvault adopt`): they vouch for them as found.
    pub rows_adopted: u64,
    /// Rows written before rows were authenticated, not adopted: nothing
    /// vouches for them.
    pub rows_unsigned: u64,
    /// Whether the vault's record that every row is signed verified
    /// (FORMAT.md §5.10): rows without authentication are then forged.
    pub every_row_signed: bool,
    /// Rows whose authentication is there but does not check: each is
    /// also a problem.
    pub forged: u64,
    /// Everything that failed, one line each (no patient values).
    pub problems: Vec<String>,
}
