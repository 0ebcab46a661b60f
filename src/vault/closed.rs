//! Records of closed writes (FORMAT.md §5.11): when a user's write right
//! under a scope is taken away (a revocation, a downgrade to read, a
//! disable) or their key is replaced (a recovery), the administrator signs
//! the list of write batches that user had signed by then. A grant they
//! kept counts only in those batches, so a row they write afterwards by
//! SQL with the old key (dated as they like) is forged, also while the old
//! epoch is still live, before the rotation that follows retires it.

use crate::error::{Error, Result};
use crate::sql;
use crate::store::{Guard, Store, Value};
use crate::vault::authorship::KIND_WRITE;
use crate::vault::trust::{batch_tag, closed_writes_record, ClosedWrites};
use crate::vault::{now, retry_moved, Session, SignAs};

/// At most this many batches in one record (16 bytes each: the record
/// fits a MySQL `MEDIUMBLOB` and a default `max_allowed_packet`).
const MAX_LISTED: usize = 1_000_000;

/// Decodes one stored record; `None` if it does not decode (a record
/// only takes rights away, so one that does not decode is skipped).
fn decode(cells: Vec<crate::sql::Cell>) -> Option<([u8; 16], ClosedWrites)> {
    let mut d = sql::CLOSED_WRITES.decoder(cells).ok()?;
    let id = d.id(0).ok()?;
    Some((
        id,
        ClosedWrites {
            user: d.text(1).ok()?,
            fingerprint: d.text(2).ok()?,
            scopes: ClosedWrites::parse_scopes(&d.blob(3).ok()?)?,
            batches: ClosedWrites::parse_batches(&d.blob(4).ok()?)?,
            signer: d.text(5).ok()?,
            signed_at: d.int(6).ok()?,
            signature: d.blob(7).ok()?,
        },
    ))
}

/// The records of closed writes `store` holds, each with its row id, as
/// stored; one that does not decode is skipped. Each is verified where it
/// is used ([`crate::vault::trust::Directory::write_closed`]).
pub(crate) async fn stored(store: &dyn Store) -> Result<Vec<([u8; 16], ClosedWrites)>> {
    let spec = &sql::CLOSED_WRITES;
    let q = format!("SELECT {} FROM {}", sql::column_list(spec), spec.name);
    Ok(store
        .select(q, Vec::new())
        .await?
        .into_iter()
        .filter_map(decode)
        .collect())
}

impl Session {
    /// The users table as a batch's verification needs it: with the keys
    /// recoveries replaced (FORMAT.md §5.9) and the records of closed
    /// writes this session knows (§5.11).
    pub(crate) async fn batch_directory(&self) -> Result<crate::vault::trust::Directory> {
        Ok(self
            .directory()
            .await?
            .with_replaced(self.replaced_keys().await?)
            .with_closed(self.closed_writes().await?))
    }

    /// The records of closed writes this session has seen (read from the
    /// store, or stored itself), every version of each: a record the store
    /// drops or edits afterwards still counts, as first read, for the rest
    /// of the session (a rotation that follows a revocation in
    /// particular), and one signed again (its administrator disabled)
    /// counts in its new version too.
    pub(crate) async fn closed_writes(&self) -> Result<Vec<ClosedWrites>> {
        let spec = &sql::CLOSED_WRITES;
        let listed = self
            .store
            .select(
                format!("SELECT id, signature FROM {}", spec.name),
                Vec::new(),
            )
            .await?;
        let unseen: Vec<[u8; 16]> = {
            let seen = self.closed_seen.lock().unwrap_or_else(|p| p.into_inner());
            let mut ids: Vec<[u8; 16]> = listed
                .into_iter()
                .filter_map(|cells| {
                    let mut d =
                        crate::sql::decode::RowDecoder::new(spec.name, &["id", "signature"], cells)
                            .ok()?;
                    Some((d.id(0).ok()?, d.blob(1).ok()?))
                })
                .filter(|k| !seen.contains_key(k))
                .map(|(id, _)| id)
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        for part in unseen.chunks(100) {
            let q = format!(
                "SELECT {} FROM {} WHERE id IN ({})",
                sql::column_list(spec),
                spec.name,
                vec!["?"; part.len()].join(", ")
            );
            let params = part.iter().map(|i| Value::Blob(i.to_vec())).collect();
            let rows = self.store.select(q, params).await?;
            let mut seen = self.closed_seen.lock().unwrap_or_else(|p| p.into_inner());
            for (id, r) in rows.into_iter().filter_map(decode) {
                if part.contains(&id) {
                    seen.entry((id, r.signature.clone())).or_insert(r);
                }
            }
        }
        Ok(self
            .closed_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect())
    }

    /// The records of closed writes `old` signed that verify under its
    /// key, signed again by `by` (an administrator being disabled: a
    /// disabled administrator's records count for nothing).
    pub(crate) async fn resign_closed_writes(
        &self,
        old: &crate::vault::trust::Verified,
        by: SignAs<'_>,
    ) -> Result<()> {
        let spec = &sql::CLOSED_WRITES;
        for (id, r) in stored(&*self.store).await? {
            let msg = closed_writes_record(&self.vault_id, &r);
            if r.signer != old.name || !crate::keys::pgp::verify(&old.cert, &msg, &r.signature) {
                continue;
            }
            let mut new = r;
            new.signer = by.name.to_owned();
            new.signature = by
                .key
                .lock()
                .await
                .sign(&closed_writes_record(&self.vault_id, &new))?;
            self.store
                .write_all(vec![(
                    format!(
                        "UPDATE {} SET signer = ?, signature = ? WHERE id = ?",
                        spec.name
                    ),
                    vec![
                        Value::Text(new.signer.clone()),
                        Value::Blob(new.signature.clone()),
                        Value::Blob(id.to_vec()),
                    ],
                )])
                .await?;
        }
        Ok(())
    }

    /// The [`batch_tag`]s of the write batches `user` has signed, sorted,
    /// with a guard that holds while there are as many rows of theirs.
    async fn write_batches_of(&self, user: &str) -> Result<(Vec<[u8; 16]>, Guard)> {
        let b = &sql::BATCHES;
        let params = vec![Value::Text(user.to_owned()), Value::Text(KIND_WRITE.into())];
        let q = format!(
            "SELECT signature FROM {} WHERE signer = ? AND kind = ?",
            b.name
        );
        let rows = self.store.select(q, params.clone()).await?;
        // Counted as stored: a row that does not decode is not listed
        // (it vouches for nothing) but counts, so it cannot keep the
        // guard from holding.
        let n = i64::try_from(rows.len()).map_err(|_| Error::Refused("too many batches"))?;
        let mut tags: Vec<[u8; 16]> = rows
            .into_iter()
            .filter_map(|cells| {
                crate::sql::decode::RowDecoder::new(b.name, &["signature"], cells)
                    .and_then(|mut d| d.blob(0))
                    .ok()
            })
            .map(|sig| batch_tag(&sig))
            .collect();
        tags.sort_unstable();
        tags.dedup();
        let guard = Guard {
            sql: format!(
                "SELECT COUNT(*) FROM {} WHERE signer = ? AND kind = ?",
                b.name
            ),
            params,
            expect: vec![n],
        };
        Ok((tags, guard))
    }

    /// Stores, signed `by`, the record that `user`'s key `fingerprint`
    /// gives no write right any more under `scopes` (scope id, newest
    /// epoch closed; empty: every epoch of every scope) but in the write
    /// batches they have signed, in one transaction with `also` (whose
    /// counts it returns). The list is read just before and counted again
    /// inside the transaction: a batch stored in between (a write of theirs that committed first)
    /// makes it read the list again. A user with more than
    /// [`MAX_LISTED`] batches gets no record (`also` is still written).
    pub(crate) async fn close_writes(
        &self,
        (user, fingerprint): (&str, &str),
        scopes: Vec<(u32, u32)>,
        by: SignAs<'_>,
        also: Vec<(String, Vec<Value>)>,
    ) -> Result<Vec<u64>> {
        let mut scopes = scopes;
        scopes.sort_unstable();
        // One entry a scope, its newest epoch.
        scopes.dedup_by(|next, kept| {
            if next.0 == kept.0 {
                kept.1 = kept.1.max(next.1);
                true
            } else {
                false
            }
        });
        let who = (user, fingerprint);
        let done = match retry_moved(|| self.close_writes_once(who, &scopes, by, &also, true)).await
        {
            // Their batch count kept moving (a stream of rows of theirs):
            // stored without the check. A batch stored meanwhile is not
            // listed and vouches for nothing, which is the safe side.
            Err(Error::Concurrent(_)) => {
                self.close_writes_once(who, &scopes, by, &also, false)
                    .await?
            }
            r => r?,
        };
        let Some((record, counts)) = done else {
            return self.store.write_all(also).await;
        };
        let (id, record) = record;
        self.closed_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((id, record.signature.clone()), record);
        // Verdicts given before the record may now be wrong.
        self.batches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(counts)
    }

    /// One try of [`Session::close_writes`]: the record stored (with its
    /// row id) and the counts of `also`, or `None` for a user with too
    /// many batches, nothing written.
    #[allow(clippy::type_complexity)]
    async fn close_writes_once(
        &self,
        (user, fingerprint): (&str, &str),
        scopes: &[(u32, u32)],
        by: SignAs<'_>,
        also: &[(String, Vec<Value>)],
        guarded: bool,
    ) -> Result<Option<(([u8; 16], ClosedWrites), Vec<u64>)>> {
        let (batches, guard) = self.write_batches_of(user).await?;
        if batches.len() > MAX_LISTED {
            return Ok(None);
        }
        let mut r = ClosedWrites {
            user: user.to_owned(),
            fingerprint: fingerprint.to_owned(),
            scopes: scopes.to_vec(),
            batches,
            signer: by.name.to_owned(),
            signed_at: now(),
            signature: Vec::new(),
        };
        r.signature = by
            .key
            .lock()
            .await
            .sign(&closed_writes_record(&self.vault_id, &r))?;
        let id = crate::crypto::random_array::<16>();
        let mut stmts = also.to_vec();
        stmts.push(insert(id, &r));
        let mut counts = if guarded {
            self.store.write_guarded(&guard, stmts).await?
        } else {
            self.store.write_all(stmts).await?
        };
        counts.pop();
        Ok(Some(((id, r), counts)))
    }
}

/// The statement that stores `r` as row `id`.
fn insert(id: [u8; 16], r: &ClosedWrites) -> (String, Vec<Value>) {
    let spec = &sql::CLOSED_WRITES;
    (
        format!(
            "INSERT INTO {} ({}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            spec.name,
            sql::column_list(spec)
        ),
        vec![
            Value::Blob(id.to_vec()),
            Value::Text(r.user.clone()),
            Value::Text(r.fingerprint.clone()),
            Value::Blob(r.scopes_bytes()),
            Value::Blob(r.batches.concat()),
            Value::Text(r.signer.clone()),
            Value::Int(r.signed_at),
            Value::Blob(r.signature.clone()),
        ],
    )
}
