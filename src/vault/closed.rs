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
use crate::vault::trust::{closed_writes_record, ClosedWrites};
use crate::vault::{now, retry_moved, Session, SignAs};

/// At most this many batches in one record (16 bytes each: the 16 MiB of a
/// MySQL `MEDIUMBLOB`).
const MAX_LISTED: usize = 1 << 20;

/// The records of closed writes `store` holds; one that does not decode
/// is skipped (records only take rights away). Each is verified where it
/// is used ([`crate::vault::trust::Directory::write_closed`]).
pub(crate) async fn stored(store: &dyn Store) -> Result<Vec<ClosedWrites>> {
    let spec = &sql::CLOSED_WRITES;
    let q = format!("SELECT {} FROM {}", sql::column_list(spec), spec.name);
    let mut out = Vec::new();
    for cells in store.select(q, Vec::new()).await? {
        let decoded = (|| {
            let mut d = spec.decoder(cells)?;
            let bad = || Error::Refused("a record of closed writes that does not decode");
            Ok::<_, Error>(ClosedWrites {
                user: d.text(1)?,
                fingerprint: d.text(2)?,
                scopes: ClosedWrites::parse_scopes(&d.blob(3)?).ok_or_else(bad)?,
                batches: ClosedWrites::parse_batches(&d.blob(4)?).ok_or_else(bad)?,
                signer: d.text(5)?,
                signed_at: d.int(6)?,
                signature: d.blob(7)?,
            })
        })();
        out.extend(decoded.ok());
    }
    Ok(out)
}

impl Session {
    /// The records of closed writes the store holds, and those this
    /// session stored itself (kept in memory: a store that drops one does
    /// not reopen, for the rotation that follows, the writes it closed).
    pub(crate) async fn closed_writes(&self) -> Result<Vec<ClosedWrites>> {
        let mut out = stored(&*self.store).await?;
        out.extend(
            self.closed_here
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned(),
        );
        Ok(out)
    }

    /// The write batches `user` has signed, sorted, with a guard that
    /// holds while there are as many.
    async fn write_batches_of(&self, user: &str) -> Result<(Vec<[u8; 16]>, Guard)> {
        let b = &sql::BATCHES;
        let params = vec![Value::Text(user.to_owned()), Value::Text(KIND_WRITE.into())];
        let q = format!("SELECT id FROM {} WHERE signer = ? AND kind = ?", b.name);
        let mut ids = Vec::new();
        for cells in self.store.select(q, params.clone()).await? {
            // Not decoded: not a batch that can vouch for anything.
            if let Ok(id) =
                sql::decode::RowDecoder::new(b.name, &["id"], cells).and_then(|mut d| d.id(0))
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        let n = i64::try_from(ids.len()).map_err(|_| Error::Refused("too many batches"))?;
        let guard = Guard {
            sql: format!(
                "SELECT COUNT(*) FROM {} WHERE signer = ? AND kind = ?",
                b.name
            ),
            params,
            expect: vec![n],
        };
        Ok((ids, guard))
    }

    /// Stores, signed `by`, the record that `user`'s key `fingerprint`
    /// gives no write right any more under `scopes` (scope id, newest
    /// epoch closed) but in the write batches they have signed, in one
    /// transaction with `also` (whose counts it returns). The list is read
    /// just before and checked inside the transaction: a batch stored in
    /// between (a write of theirs that committed first) makes it read the
    /// list again.
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
        if scopes.is_empty() {
            return Ok(Vec::new());
        }
        let (record, counts) =
            retry_moved(|| self.close_writes_once((user, fingerprint), &scopes, by, &also)).await?;
        self.closed_here
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
        Ok(counts)
    }
}

impl Session {
    async fn close_writes_once(
        &self,
        (user, fingerprint): (&str, &str),
        scopes: &[(u32, u32)],
        by: SignAs<'_>,
        also: &[(String, Vec<Value>)],
    ) -> Result<(ClosedWrites, Vec<u64>)> {
        let (batches, guard) = self.write_batches_of(user).await?;
        if batches.len() > MAX_LISTED {
            return Err(Error::Refused(
                "a user with more than 1,048,576 write batches",
            ));
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
        let mut stmts = also.to_vec();
        stmts.push(insert(&r));
        let mut counts = self.store.write_guarded(&guard, stmts).await?;
        counts.pop();
        Ok((r, counts))
    }
}

/// The statement that stores `r` under a new random id.
fn insert(r: &ClosedWrites) -> (String, Vec<Value>) {
    let spec = &sql::CLOSED_WRITES;
    (
        format!(
            "INSERT INTO {} ({}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            spec.name,
            sql::column_list(spec)
        ),
        vec![
            Value::Blob(crate::crypto::random_array::<16>().to_vec()),
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
