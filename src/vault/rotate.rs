//! Key rotation: a scope gets a new key epoch and every cell of it is
//! sealed again under that epoch, with its blind indexes, in every
//! declared table; then the old epochs are retired by a signed record.
//!
//! How it stays safe to stop at any point (`kill -9` included):
//! - the new epoch and its grants go in one transaction; the epoch number
//!   is part of the primary key, so of two administrators rotating one
//!   scope at once exactly one epoch is stored, and the other joins it;
//! - rows are rewritten `batch` per transaction, each row whole (its cells
//!   and the indexes over them), and only if its cells are still the ones
//!   read (a concurrent update wins and the row is met again);
//! - a row is either all old or all new, and a search computes its index
//!   values under every live epoch, so search answers throughout;
//! - running `rotate` again finds the unretired older epoch and carries on
//!   (rows done are recognised by their envelopes' epoch and skipped);
//! - old epochs are retired only after a pass, under the schema in force,
//!   found no row left under them, and only if no schema was stored
//!   since; every writer checks inside its transaction that its epoch is
//!   still the newest, so no cell is written under an old epoch once the
//!   new one exists, and a row under a retired epoch is forged.
//!
//! Revocation ([`Session::revoke`]) is a rotation that always makes a new
//! epoch, after the revoked user's grants are gone.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use serde::Serialize;

use super::{sign_grant, trust, EpochKeys, Rights, Session};
use crate::crypto::kdf;
use crate::crypto::secret::EpochKey;
use crate::error::{Error, Result};
use crate::keys::pgp;
use crate::schema::{ColumnType, Encrypted, ScopeRule};
use crate::sql::keys;
use crate::store::{EpochRow, Retirement, ScopeRow};
use trust::ROOT;

/// Rows per transaction of a rotation, unless told otherwise.
pub const DEFAULT_BATCH: u32 = 500;

/// How a rotation runs ([`Session::rotate_with`]).
#[derive(Clone, Debug)]
pub struct RotateOptions {
    /// Rows read and rewritten per transaction (1–10,000).
    pub batch: u32,
    /// Make a new epoch even when an earlier rotation is unfinished (what
    /// a revocation needs). Without it, an unfinished rotation is resumed.
    pub new_epoch: bool,
}

impl Default for RotateOptions {
    fn default() -> RotateOptions {
        RotateOptions {
            batch: DEFAULT_BATCH,
            new_epoch: false,
        }
    }
}

/// Where a rotation stands, for a progress bar.
#[derive(Clone, Debug, Serialize)]
pub struct RotateProgress {
    /// The pass over the tables, from 1: a pass that rewrote rows is
    /// followed by one that checks none is left (rows written meanwhile
    /// by clients that had not seen the new epoch).
    pub pass: u32,
    /// The table being worked on.
    pub table: String,
    /// Rows read so far in this pass, all tables.
    pub seen: u64,
    /// Rows in the tables this pass goes over (counted when it started).
    pub total: u64,
    /// Rows sealed again so far.
    pub rewritten: u64,
}

/// What a rotation did.
#[derive(Clone, Debug, Serialize)]
pub struct RotateReport {
    /// The scope.
    pub scope: String,
    /// The epoch every cell of the scope is now under.
    pub epoch: u32,
    /// Whether this call made that epoch (false: it resumed one).
    pub created: bool,
    /// Rows sealed again.
    pub rewritten: u64,
    /// Epochs retired by this call.
    pub retired: Vec<u32>,
    /// Users (and `@root`) the new epoch was wrapped to by this call.
    pub wrapped_to: Vec<String>,
    /// False when the progress callback stopped it: run it again to finish.
    pub finished: bool,
}

/// Whom [`Session::catch_up_grants`] considers.
#[derive(Clone, Copy)]
pub(crate) enum CatchUp<'a> {
    /// The user a `grant` just wrapped the older epochs to, with the
    /// rights it gave (carried as given, never as the store shows them).
    Grantee(&'a str, Rights),
    /// Users granted the epoch before the current one by a grant signed
    /// after this time (Unix seconds: a rotation's start, so grants that
    /// raced it), never the excluded one (a user being revoked).
    SignedAfter(i64, Option<&'a str>),
}

/// Passes over the tables before a rotation gives up on rows that stale
/// clients keep writing under an old epoch.
const MAX_PASSES: usize = 4;

impl Session {
    /// Rotates `scope` ([`Session::rotate_with`] with the defaults and no
    /// progress report).
    ///
    /// ```no_run
    /// # async fn demo(s: &medvault::Session) -> medvault::Result<()> {
    /// let report = s.rotate("clinical").await?;
    /// println!("clinical is now at epoch {}", report.epoch);
    /// # Ok(()) }
    /// ```
    pub async fn rotate(&self, scope: &str) -> Result<RotateReport> {
        self.rotate_with(scope, &RotateOptions::default(), &mut |_| {
            ControlFlow::Continue(())
        })
        .await
    }

    /// Rotates `scope` (administrator holding the scope): a new key epoch
    /// wrapped to every user holding the current one and to the root,
    /// every cell of the scope in every declared table sealed again under
    /// it with its blind indexes, then the older epochs retired by a signed
    /// record. Resumes an unfinished rotation instead of starting another
    /// (unless [`RotateOptions::new_epoch`]). `progress` is called after
    /// every batch; returning `Break` stops after that batch, with
    /// [`RotateReport::finished`] false: nothing is lost, and the next call
    /// carries on.
    pub async fn rotate_with(
        &self,
        scope: &str,
        opts: &RotateOptions,
        progress: &mut (dyn FnMut(&RotateProgress) -> ControlFlow<()> + Send),
    ) -> Result<RotateReport> {
        self.rotate_excluding(scope, opts, None, progress).await
    }

    /// [`Session::rotate_with`], never wrapping the new epoch to `excluded`
    /// (a user being revoked), even if the store still shows a grant of
    /// theirs.
    pub(crate) async fn rotate_excluding(
        &self,
        scope: &str,
        opts: &RotateOptions,
        excluded: Option<&str>,
        progress: &mut (dyn FnMut(&RotateProgress) -> ControlFlow<()> + Send),
    ) -> Result<RotateReport> {
        self.require_admin()?;
        let started = super::now();
        if !(1..=10_000).contains(&opts.batch) {
            return Err(Error::Refused("a rotation batch is 1 to 10,000 rows"));
        }
        self.refresh_keys().await?;
        let sid = self.scope_id(scope)?;
        let name = self.scope_name(sid);
        // Read first, so a schema this session cannot take (one it cannot
        // parse or whose signature does not verify) stops the rotation
        // before anything is written; read again below, once the new epoch
        // exists.
        self.reload_schema().await?;
        let (target, created, wrapped_to) =
            self.rotation_target(sid, opts.new_epoch, excluded).await?;
        let mut report = RotateReport {
            scope: name.clone(),
            epoch: target,
            created,
            rewritten: 0,
            retired: Vec::new(),
            wrapped_to,
            finished: false,
        };
        // A schema stored meanwhile (by another administrator, or since
        // this session logged in) may declare more tables or columns of the
        // scope, with cells under the old epochs: the passes run under the
        // schema in force once the new epoch exists (cells written after it
        // are under it), and again from the start if it changes before the
        // old epochs are retired.
        let mut schema_moves = 0;
        'schema: loop {
            let version = self.reload_schema().await?;
            let tables = self.tables_of(sid)?;
            let (mut clean, mut left) = (false, 0);
            for pass in 1..=MAX_PASSES as u32 {
                let mut total = 0;
                for t in &tables {
                    total += self.table(t).await?.rotation_rows(sid).await?;
                }
                let (mut seen_before, mut rewritten_pass, mut raced) = (0u64, 0u64, 0u64);
                for t in &tables {
                    let table = self.table(t).await?;
                    let base_rewritten = report.rewritten;
                    let mut on_page = |seen: u64, rewritten: u64| {
                        progress(&RotateProgress {
                            pass,
                            table: t.clone(),
                            seen: seen_before + seen,
                            total,
                            rewritten: base_rewritten + rewritten,
                        })
                    };
                    let r = match table.reseal((sid, target), opts.batch, &mut on_page).await {
                        Err(Error::SchemaChanged { .. }) if schema_moves < 3 => {
                            schema_moves += 1;
                            continue 'schema;
                        }
                        r => r?,
                    };
                    seen_before += r.seen;
                    report.rewritten += r.rewritten;
                    rewritten_pass += r.rewritten;
                    raced += r.raced;
                    if r.stopped {
                        return Ok(report);
                    }
                }
                if rewritten_pass == 0 && raced == 0 {
                    clean = true;
                    break;
                }
                left = rewritten_pass + raced;
            }
            if !clean {
                return Err(Error::RotationUnfinished { scope: name, left });
            }
            match self.retire_older(sid, target, version).await {
                Err(Error::SchemaChanged { .. }) if schema_moves < 3 => {
                    schema_moves += 1;
                    continue 'schema;
                }
                r => report.retired = r?,
            }
            break;
        }
        report.wrapped_to.extend(
            self.catch_up_grants(sid, CatchUp::SignedAfter(started, excluded))
                .await?,
        );
        report.finished = true;
        Ok(report)
    }

    /// The declared tables with a column of scope `sid` (or whose rows
    /// each name a scope).
    fn tables_of(&self, sid: u32) -> Result<Vec<String>> {
        let schema = self.schema();
        let ks = self.ks();
        let mut out = Vec::new();
        for t in &schema.tables {
            let uses = t.columns.iter().any(|c| match &c.ty {
                ColumnType::Encrypted(Encrypted {
                    scope: ScopeRule::Named(n),
                    ..
                }) => ks.scope_ids.get(n) == Some(&sid),
                ColumnType::Encrypted(Encrypted {
                    scope: ScopeRule::PerRow,
                    ..
                }) => true,
                ColumnType::Plain(_) => false,
            });
            if uses {
                out.push(t.name.clone());
            }
        }
        Ok(out)
    }

    /// The epoch a rotation of `sid` moves cells to: a new one, or (no
    /// `fresh`, and an older epoch still live) the newest, to finish it.
    /// Two administrators making the same epoch at once: one stores it;
    /// the other joins it (or, `fresh`, makes the next).
    async fn rotation_target(
        &self,
        sid: u32,
        fresh: bool,
        excluded: Option<&str>,
    ) -> Result<(u32, bool, Vec<String>)> {
        for _ in 0..3 {
            let ks = self.ks();
            let name = self.scope_name(sid);
            let latest = *ks
                .latest
                .get(&sid)
                .ok_or_else(|| Error::NoAccess(name.clone()))?;
            if !ks.keys.contains_key(&(sid, latest)) {
                return Err(self.not_writable(sid));
            }
            let unfinished = ks
                .known_epochs
                .iter()
                .any(|(s, e)| *s == sid && *e < latest && !ks.retired.contains(&(*s, *e)));
            if !fresh && unfinished {
                return Ok((latest, false, Vec::new()));
            }
            match self.new_epoch(sid, latest, excluded).await {
                Ok((epoch, to)) => return Ok((epoch, true, to)),
                Err(Error::Duplicate(_)) => {
                    // Another administrator stored this epoch first.
                    self.refresh_keys().await?;
                    let ks = self.ks();
                    let now = ks.latest.get(&sid).copied().unwrap_or(latest);
                    if !fresh && ks.keys.contains_key(&(sid, now)) && now > latest {
                        return Ok((now, false, Vec::new()));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Concurrent("the key epochs of this scope"))
    }

    /// The users holding `epoch` of `sid` by a grant that verifies, active,
    /// with their certificates and the rights that grant gives (the root is
    /// not among them). A grant whose rights text this version does not
    /// know gives reading.
    pub(super) async fn holders(
        &self,
        sid: u32,
        epoch: Option<u32>,
    ) -> Result<Vec<(String, sequoia_openpgp::Cert, Rights)>> {
        let ks = self.ks();
        let scope = ks
            .scopes
            .get(&sid)
            .cloned()
            .ok_or_else(|| Error::UnknownScope(format!("#{sid}")))?;
        let mut dir = self.directory().await?;
        let mut out: Vec<(String, sequoia_openpgp::Cert, Rights)> = Vec::new();
        for g in self.store.grants_all().await? {
            if g.scope_id != sid
                || epoch.is_some_and(|e| g.epoch != e)
                || g.grantee == ROOT
                || out.iter().any(|(n, _, _)| *n == g.grantee)
            {
                continue;
            }
            let Ok(user) = dir.verify(&g.grantee) else {
                continue;
            };
            if !user.active || !ks.known_epochs.contains(&(sid, g.epoch)) {
                continue;
            }
            let Ok(granter) = dir.signer_cert(&g.granter) else {
                continue;
            };
            let msg =
                trust::grant_record(&self.vault_id, &scope, &g, &pgp::fingerprint(&user.cert));
            if pgp::verify(&granter, &msg, &g.signature) {
                let rights = Rights::parse(&g.rights).unwrap_or(Rights::Read);
                out.push((g.grantee.clone(), user.cert, rights));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Stores epoch `latest + 1` of `sid` with its grants (every holder of
    /// `latest`, with the rights they had, and the root) in one
    /// transaction, and holds it.
    async fn new_epoch(
        &self,
        sid: u32,
        latest: u32,
        excluded: Option<&str>,
    ) -> Result<(u32, Vec<String>)> {
        let ks = self.ks();
        let scope: ScopeRow = ks
            .scopes
            .get(&sid)
            .cloned()
            .ok_or_else(|| Error::UnknownScope(format!("#{sid}")))?;
        let next = latest
            .checked_add(1)
            .ok_or(Error::Refused("the scope has used every epoch number"))?;
        let mut recipients = self.holders(sid, Some(latest)).await?;
        recipients.retain(|(n, _, _)| Some(n.as_str()) != excluded);
        if self.user != ROOT && !recipients.iter().any(|(n, _, _)| *n == self.user) {
            // The rotating administrator holds `latest` (checked above),
            // even if by a grant the listing above could not verify; with
            // the rights their own grant gives.
            let mut dir = self.directory().await?;
            let rights = if ks.writable.contains(&(sid, latest)) {
                Rights::ReadWrite
            } else {
                Rights::Read
            };
            recipients.push((self.user.clone(), dir.verify(&self.user)?.cert, rights));
        }
        recipients.push((ROOT.to_owned(), self.root_cert.clone(), Rights::ReadWrite));
        let key = EpochKey::generate();
        let mut epoch = EpochRow {
            scope_id: sid,
            epoch: next,
            state: "current".into(),
            commitment: kdf::commitment(&key).to_vec(),
            creator: self.user.clone(),
            signature: Vec::new(),
            retired: None,
        };
        let (vault_id, me) = (self.vault_id, self.user.clone());
        let msg = trust::epoch_record(&vault_id, &scope, &epoch);
        epoch.signature = self.with_signer(|s| s.sign(&msg)).await?;
        let mut statements = vec![(keys::INSERT_EPOCH.to_owned(), keys::epoch_values(&epoch))];
        for (name, cert, rights) in &recipients {
            let g = self
                .with_signer(|s| {
                    sign_grant(&vault_id, s, &scope, next, (name, cert, *rights), &me, &key)
                })
                .await?;
            statements.push((keys::PUT_GRANT.to_owned(), keys::grant_values(&g)));
        }
        self.store.write_all(statements).await?;
        let writable = recipients
            .iter()
            .any(|(n, _, r)| *n == self.user && *r == Rights::ReadWrite);
        self.hold_epoch(sid, next, key, writable);
        Ok((next, recipients.into_iter().map(|(n, _, _)| n).collect()))
    }

    /// Holds epoch `epoch` of `sid` (just made) as the scope's current one,
    /// `writable` if this user's grant of it gives the write right.
    fn hold_epoch(&self, sid: u32, epoch: u32, key: EpochKey, writable: bool) {
        let mut guard = self.state.write().unwrap_or_else(|p| p.into_inner());
        let mut next = super::KeyState::clone(&guard);
        next.keys.insert(
            (sid, epoch),
            Arc::new(EpochKeys::derive(key, sid, epoch, self.policy)),
        );
        next.known_epochs.insert((sid, epoch));
        if writable {
            next.writable.insert((sid, epoch));
        }
        next.current.insert(sid, epoch);
        next.latest.insert(sid, epoch);
        *guard = Arc::new(next);
    }

    /// Signs the retirement of every live epoch of `sid` older than
    /// `target` (no cell uses them: the passes, under schema `version`,
    /// found none). Returns them. A schema stored since is
    /// [`Error::SchemaChanged`] (the passes run again under it): it may
    /// declare cells the passes did not look at.
    async fn retire_older(&self, sid: u32, target: u32, version: u64) -> Result<Vec<u32>> {
        self.refresh_keys().await?;
        let guard = crate::store::Guard {
            sql: keys::SCHEMA_VERSION.into(),
            params: Vec::new(),
            // A version past i64 is no stored one: the guard fails.
            expect: vec![i64::try_from(version).unwrap_or(-1)],
        };
        let ks = self.ks();
        if ks.latest.get(&sid).is_some_and(|l| *l > target) {
            // A newer rotation is under way: it retires what it moves.
            return Err(Error::Concurrent("the key epochs of this scope"));
        }
        let scope = ks
            .scopes
            .get(&sid)
            .cloned()
            .ok_or_else(|| Error::UnknownScope(format!("#{sid}")))?;
        let rows: HashMap<u32, EpochRow> = self
            .store
            .epochs()
            .await?
            .into_iter()
            .filter(|e| e.scope_id == sid)
            .map(|e| (e.epoch, e))
            .collect();
        let mut statements = Vec::new();
        let mut retired = Vec::new();
        let mut olds: Vec<u32> = ks
            .known_epochs
            .iter()
            .filter(|(s, e)| *s == sid && *e < target && !ks.retired.contains(&(*s, *e)))
            .map(|(_, e)| *e)
            .collect();
        olds.sort_unstable();
        for e in olds {
            let Some(row) = rows.get(&e) else {
                continue;
            };
            let mut row = row.clone();
            let mut r = Retirement {
                by: self.user.clone(),
                at: super::now(),
                signature: Vec::new(),
            };
            let msg = trust::retire_record(&self.vault_id, &scope, &row, &r);
            r.signature = self.with_signer(|s| s.sign(&msg)).await?;
            row.retired = Some(r);
            statements.push((keys::RETIRE_EPOCH.to_owned(), keys::retire_values(&row)?));
            retired.push(e);
        }
        if !statements.is_empty() {
            match self.store.write_guarded(&guard, statements).await {
                Err(Error::StateMoved) => {
                    let now = self.probe().await?.schema_version;
                    return Err(Error::SchemaChanged { version: now });
                }
                r => r?,
            };
            self.refresh_keys().await?;
        }
        Ok(retired)
    }

    /// Wraps the current epoch of `sid` to the active users who hold the
    /// epoch before it by a verified grant but not the current one, or
    /// hold the current one with other rights: a grant (or a change of
    /// rights) made while a rotation was choosing its recipients. Which
    /// users: `who` ([`CatchUp`]); never a store's say-so alone, so a
    /// store that puts back a revoked user's old grants does not get them
    /// the new key. Returns their names.
    pub(crate) async fn catch_up_grants(&self, sid: u32, who: CatchUp<'_>) -> Result<Vec<String>> {
        let ks = self.ks();
        let Some(&current) = ks.current.get(&sid) else {
            return Ok(Vec::new());
        };
        let Some(held) = ks.keys.get(&(sid, current)).cloned() else {
            return Ok(Vec::new());
        };
        let scope = ks
            .scopes
            .get(&sid)
            .cloned()
            .ok_or_else(|| Error::UnknownScope(format!("#{sid}")))?;
        let have: HashMap<String, Rights> = self
            .holders(sid, Some(current))
            .await?
            .into_iter()
            .map(|(n, _, r)| (n, r))
            .collect();
        let Some(before) = current.checked_sub(1).filter(|e| *e > 0) else {
            return Ok(Vec::new());
        };
        let before_retired = ks.retired.contains(&(sid, before));
        let recent: Vec<String> = self
            .store
            .grants_all()
            .await?
            .into_iter()
            .filter(|g| g.scope_id == sid && g.epoch == before)
            .filter(|g| match who {
                CatchUp::Grantee(name, _) => g.grantee == name,
                CatchUp::SignedAfter(t, excluded) => {
                    g.signed_at > t && Some(g.grantee.as_str()) != excluded
                }
            })
            .map(|g| g.grantee)
            .collect();
        let missing: Vec<(String, sequoia_openpgp::Cert, Rights)> = self
            .holders(sid, Some(before))
            .await?
            .into_iter()
            .filter(|(n, _, r)| match have.get(n) {
                None => recent.contains(n),
                // Rights changed on `before` after the current epoch was
                // made; a retired `before` is no grant's target any more.
                Some(now) => now != r && !before_retired && recent.contains(n),
            })
            .collect();
        let (vault_id, me) = (self.vault_id, self.user.clone());
        let mut statements = Vec::new();
        for (name, cert, rights) in &missing {
            let rights = match who {
                CatchUp::Grantee(_, given) => given,
                CatchUp::SignedAfter(..) => *rights,
            };
            let g = self
                .with_signer(|s| {
                    sign_grant(
                        &vault_id,
                        s,
                        &scope,
                        current,
                        (name, cert, rights),
                        &me,
                        &held.raw,
                    )
                })
                .await?;
            statements.push((keys::PUT_GRANT.to_owned(), keys::grant_values(&g)));
        }
        if !statements.is_empty() {
            self.store.write_all(statements).await?;
        }
        Ok(missing.into_iter().map(|(n, _, _)| n).collect())
    }
}
