//! What this client has seen of a vault, kept across sessions (README,
//! "Access over time"; SECURITY.md §3): the newest key epoch of each scope
//! and the newest schema version. A store put back to an older state (a
//! restored backup, or an attacker replaying old rows) shows older ones; a
//! client that remembers refuses to write under an epoch older than one it
//! has seen (a revoked user may hold it) and to open a schema older than
//! one it has seen, and it keeps an epoch it has seen retired retired (a
//! row under it is forged, FORMAT.md §5.8) when a store deletes the
//! retirement.
//!
//! The file is `<state dir>/<vault id hex>-<user>.json`, written whole
//! (through a temporary file and a rename): `{"format": 1, "epochs":
//! {"<scope id>": <epoch>}, "schema_version": <n>, "rows_signed_record":
//! "<hex>", "retired": {"<scope id>": <epoch>}}` (`rows_signed_record`:
//! SHA-256 of the first verified record that every row is signed this
//! client saw, as stored; absent or null when none was seen; `retired`:
//! the newest epoch of each scope seen retired by a verified record, every
//! older one being retired with it; absent in older files). It holds no
//! secret;
//! the client's machine is trusted to keep it (SECURITY.md).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Serialize, Deserialize, Default, Clone, PartialEq, Eq, Debug)]
struct File {
    format: u32,
    epochs: BTreeMap<u32, u32>,
    schema_version: u64,
    /// SHA-256 (hex) of the vault's record that every row is signed, as
    /// first seen (FORMAT.md §5.10); absent in files written before it
    /// existed.
    #[serde(default)]
    rows_signed_record: Option<String>,
    /// The newest epoch of each scope seen retired (a rotation retires
    /// every older epoch at once); absent in files written before it
    /// existed.
    #[serde(default)]
    retired: BTreeMap<u32, u32>,
}

/// The newest epochs and schema version this client has seen of a vault,
/// as one user.
#[derive(Debug)]
pub(crate) struct HighWater {
    path: PathBuf,
    seen: File,
}

impl HighWater {
    /// Reads the state of `vault_id` and `user` from `dir` (nothing seen
    /// yet if there is no file). A damaged file is an error, not a fresh
    /// start: starting afresh is exactly what a rollback would want.
    pub(crate) fn load(dir: &Path, vault_id: &[u8; 16], user: &str) -> Result<HighWater> {
        let path = dir.join(format!("{}-{user}.json", hex::encode(vault_id)));
        let seen = Self::read(&path)?;
        Ok(HighWater { path, seen })
    }

    /// The file at `path` (nothing seen if there is none).
    fn read(path: &Path) -> Result<File> {
        Ok(match std::fs::read(path) {
            Ok(bytes) => {
                let f: File = serde_json::from_slice(&bytes).map_err(|_| {
                    Error::Store(format!(
                        "the client state file {} is damaged; remove it only if you trust the store",
                        path.display()
                    ))
                })?;
                if f.format != 1 {
                    return Err(Error::Store(format!(
                        "the client state file {} is of another medvault version",
                        path.display()
                    )));
                }
                f
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File {
                format: 1,
                ..File::default()
            },
            Err(e) => return Err(Error::io(path, e)),
        })
    }

    /// The newest epoch seen of scope `sid`.
    pub(crate) fn epoch(&self, sid: u32) -> Option<u32> {
        self.seen.epochs.get(&sid).copied()
    }

    /// The newest schema version seen.
    pub(crate) fn schema_version(&self) -> u64 {
        self.seen.schema_version
    }

    /// The record that every row is signed, as first seen (SHA-256, hex).
    pub(crate) fn rows_signed_record(&self) -> Option<&str> {
        self.seen.rows_signed_record.as_deref()
    }

    /// Every scope's newest epoch seen.
    pub(crate) fn epochs(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.seen.epochs.iter().map(|(s, e)| (*s, *e))
    }

    /// Every scope's newest epoch seen retired (every older one was too).
    pub(crate) fn retired(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.seen.retired.iter().map(|(s, e)| (*s, *e))
    }

    /// Raises what was seen to `latest`, `retired` (the newest retired
    /// epoch of each scope) and `schema_version` (never lowers it); writes
    /// the file if that changed anything. Another
    /// session of the same user (another process) may have raised it
    /// meanwhile: under an exclusive lock on `<file>.lock`, the file is
    /// read again and merged (the larger of each), written to a temporary
    /// file, synced, and renamed over, so it is never lowered nor left
    /// half-written.
    pub(crate) fn raise(
        &mut self,
        (latest, retired): (&HashMap<u32, u32>, &HashMap<u32, u32>),
        schema_version: u64,
        rows_signed_record: Option<&str>,
    ) -> Result<()> {
        let mut next = self.seen.clone();
        merge(
            &mut next,
            (
                latest.iter().map(|(s, e)| (*s, *e)),
                retired.iter().map(|(s, e)| (*s, *e)),
            ),
            (schema_version, rows_signed_record),
        )?;
        if next == self.seen {
            return Ok(());
        }
        let dir = self
            .path
            .parent()
            .ok_or_else(|| Error::Store("the client state directory has no parent".into()))?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let lock_path = self.path.with_extension("json.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        lock.lock().map_err(|e| Error::io(&lock_path, e))?;
        let on_disk = Self::read(&self.path)?;
        merge(
            &mut next,
            (on_disk.epochs.into_iter(), on_disk.retired.into_iter()),
            (
                on_disk.schema_version,
                on_disk.rows_signed_record.as_deref(),
            ),
        )?;
        let bytes = serde_json::to_vec_pretty(&next)
            .map_err(|e| Error::Store(format!("client state: {e}")))?;
        let tmp = self.path.with_extension(format!(
            "json.{}.{}.tmp",
            std::process::id(),
            hex::encode(crate::crypto::random_array::<4>())
        ));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, &bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            #[cfg(unix)]
            std::fs::File::open(dir)?.sync_all()?;
            Ok(())
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io(&self.path, e));
        }
        self.seen = next;
        Ok(())
    }
}

/// Merges what was seen into `f`; two different records that every row
/// is signed are [`Error::RolledBack`] (a store replaced the one seen
/// first, perhaps while another process of this client read it).
fn merge(
    f: &mut File,
    (epochs, retired): (
        impl Iterator<Item = (u32, u32)>,
        impl Iterator<Item = (u32, u32)>,
    ),
    (schema_version, record): (u64, Option<&str>),
) -> Result<()> {
    for (sid, e) in epochs {
        let v = f.epochs.entry(sid).or_insert(e);
        *v = (*v).max(e);
    }
    for (sid, e) in retired {
        let v = f.retired.entry(sid).or_insert(e);
        *v = (*v).max(e);
    }
    f.schema_version = f.schema_version.max(schema_version);
    match (&f.rows_signed_record, record) {
        (Some(a), Some(b)) if a != b => {
            return Err(Error::RolledBack(
                "the record that every row is signed was replaced (this client has seen another)"
                    .into(),
            ))
        }
        (None, Some(b)) => f.rows_signed_record = Some(b.to_owned()),
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_never_lowers_and_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let vid = [7u8; 16];
        let mut hw = HighWater::load(dir.path(), &vid, "bob").unwrap();
        assert_eq!(hw.epoch(2), None);
        let none = HashMap::new();
        hw.raise(
            (&HashMap::from([(2, 3), (5, 1)]), &HashMap::from([(2, 2)])),
            4,
            Some("aa"),
        )
        .unwrap();
        hw.raise(
            (&HashMap::from([(2, 1)]), &HashMap::from([(2, 1)])),
            2,
            None,
        )
        .unwrap();
        // Another record than the one seen first is refused, and not
        // written; also when only the file (another process) saw it.
        assert!(matches!(
            hw.raise((&none, &none), 0, Some("bb")),
            Err(Error::RolledBack(_))
        ));
        let mut other = HighWater::load(dir.path(), &vid, "bob").unwrap();
        other.seen.rows_signed_record = None;
        assert!(matches!(
            other.raise((&none, &none), 0, Some("cc")),
            Err(Error::RolledBack(_))
        ));
        let back = HighWater::load(dir.path(), &vid, "bob").unwrap();
        assert_eq!(
            (
                back.epoch(2),
                back.epoch(5),
                back.schema_version(),
                back.rows_signed_record()
            ),
            (Some(3), Some(1), 4, Some("aa"))
        );
        assert_eq!(back.retired().collect::<Vec<_>>(), vec![(2, 2)]);
        // A file written before `rows_signed` existed reads as not seen.
        std::fs::write(
            dir.path().join(format!("{}-dave.json", hex::encode(vid))),
            br#"{"format": 1, "epochs": {"2": 1}, "schema_version": 0}"#,
        )
        .unwrap();
        let old = HighWater::load(dir.path(), &vid, "dave").unwrap();
        assert_eq!((old.epoch(2), old.rows_signed_record()), (Some(1), None));
        assert_eq!(old.retired().count(), 0);
        // Another user's file is another file.
        assert_eq!(
            HighWater::load(dir.path(), &vid, "carol").unwrap().epoch(2),
            None
        );
        // A damaged file is an error, not a fresh start.
        std::fs::write(&back.path, b"{").unwrap();
        assert!(HighWater::load(dir.path(), &vid, "bob").is_err());
    }
}
