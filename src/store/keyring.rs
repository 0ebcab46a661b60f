//! The keyring file beside an embedded vault (`schema/FORMAT.md` §7).
//!
//! It lets a user open the SQLCipher database with user name and password
//! alone: for each user it holds their password-locked secret key and the
//! 32-byte database key wrapped to their certificate.
//!
//! ```text
//! "MVKEYRNG" | 0x01 | vault id (16) | db salt (16) | root fpr (u8 len + ASCII)
//! | entries (u32 count; each: name u8 len + UTF-8, locked key u32 len + bytes,
//! |          wrapped db key u32 len + bytes)
//! | disabled names (u32 count; each u8 len + UTF-8)
//! | MAC (32) | checksum (32)
//! ```
//!
//! The checksum (SHA-256 of all before it) tells damage from tampering
//! before any key is touched; the MAC (HMAC-SHA256 under a key derived from
//! the database key, §2) is checked once the user has unwrapped the
//! database key, and catches any edit by someone who does not hold it.

use std::path::{Path, PathBuf};

use crate::crypto::kdf;
use crate::crypto::secret::{ct_eq, DbKey};
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"MVKEYRNG";
const VERSION: u8 = 1;

/// One user's login material. `Debug` shows only the name.
#[derive(Clone)]
pub struct Entry {
    /// User name.
    pub name: String,
    /// Password-locked secret key.
    pub locked_key: Vec<u8>,
    /// Database key wrapped to the user's certificate.
    pub wrapped_db_key: Vec<u8>,
}

/// A parsed keyring. `Debug` shows names, not keys.
#[derive(Clone)]
pub struct Keyring {
    /// Vault id.
    pub vault_id: [u8; 16],
    /// First 16 bytes of the database file (SQLCipher's salt): tells "this
    /// keyring is not for this file" from "this file is damaged".
    pub db_salt: [u8; 16],
    /// Pinned root fingerprint.
    pub root_fingerprint: String,
    /// Users who may log in.
    pub entries: Vec<Entry>,
    /// Users who were disabled.
    pub disabled: Vec<String>,
    /// The MAC read from the file (zero for a new keyring).
    mac: [u8; 32],
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("vault_id", &hex::encode(self.vault_id))
            .field("root_fingerprint", &self.root_fingerprint)
            .field("entries", &self.entries)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn str8(&mut self) -> Option<String> {
        let n = self.u8()?;
        String::from_utf8(self.take(usize::from(n))?.to_vec()).ok()
    }
    fn bytes32(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()?;
        Some(self.take(usize::try_from(n).ok()?)?.to_vec())
    }
}

impl Keyring {
    /// A new keyring.
    pub fn new(vault_id: [u8; 16], db_salt: [u8; 16], root_fingerprint: String) -> Keyring {
        Keyring {
            vault_id,
            db_salt,
            root_fingerprint,
            entries: Vec::new(),
            disabled: Vec::new(),
            mac: [0; 32],
        }
    }

    /// Reads and parses the keyring file (checksum checked, MAC not yet).
    pub fn read(path: &Path) -> Result<Keyring> {
        let data = match read_bounded(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::KeyringMissing(path.to_owned()))
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        Self::parse(&data).map_err(|reason| Error::KeyringCorrupt {
            path: path.to_owned(),
            reason: reason.to_owned(),
        })
    }

    fn parse(data: &[u8]) -> std::result::Result<Keyring, &'static str> {
        if data.len() < MAGIC.len() + 1 + 64 || &data[..8] != MAGIC {
            return Err("not a medvault keyring");
        }
        let (body, check) = data.split_at(data.len() - 32);
        if !ct_eq(&kdf::sha256(body), check) {
            return Err("checksum mismatch (damaged or truncated)");
        }
        let (content, mac) = body.split_at(body.len() - 32);
        let mut r = Reader {
            buf: content,
            pos: 8,
        };
        const SHORT: &str = "truncated";
        if r.u8().ok_or(SHORT)? != VERSION {
            return Err("unknown keyring version");
        }
        let vault_id: [u8; 16] = r.take(16).ok_or(SHORT)?.try_into().map_err(|_| SHORT)?;
        let db_salt: [u8; 16] = r.take(16).ok_or(SHORT)?.try_into().map_err(|_| SHORT)?;
        let root_fingerprint = r.str8().ok_or(SHORT)?;
        let n = r.u32().ok_or(SHORT)?;
        let mut entries = Vec::new();
        for _ in 0..n {
            entries.push(Entry {
                name: r.str8().ok_or(SHORT)?,
                locked_key: r.bytes32().ok_or(SHORT)?,
                wrapped_db_key: r.bytes32().ok_or(SHORT)?,
            });
        }
        let d = r.u32().ok_or(SHORT)?;
        let mut disabled = Vec::new();
        for _ in 0..d {
            disabled.push(r.str8().ok_or(SHORT)?);
        }
        if r.pos != content.len() {
            return Err("trailing bytes");
        }
        Ok(Keyring {
            vault_id,
            db_salt,
            root_fingerprint,
            entries,
            disabled,
            mac: mac.try_into().map_err(|_| SHORT)?,
        })
    }

    fn content(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.vault_id);
        out.extend_from_slice(&self.db_salt);
        push_str8(&mut out, &self.root_fingerprint);
        out.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for e in &self.entries {
            push_str8(&mut out, &e.name);
            push_bytes32(&mut out, &e.locked_key);
            push_bytes32(&mut out, &e.wrapped_db_key);
        }
        out.extend_from_slice(&(self.disabled.len() as u32).to_be_bytes());
        for d in &self.disabled {
            push_str8(&mut out, d);
        }
        out
    }

    /// Checks the MAC with the database key a user unwrapped.
    pub fn verify(&self, key: &DbKey, path: &Path) -> Result<()> {
        let want = kdf::hmac_parts(&kdf::keyring_mac_key(key)[..], &[&self.content()]);
        if ct_eq(&want, &self.mac) {
            Ok(())
        } else {
            Err(Error::KeyringTampered(path.to_owned()))
        }
    }

    /// The entry of `name`.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Whether `name` was disabled.
    pub fn is_disabled(&self, name: &str) -> bool {
        self.disabled.iter().any(|d| d == name)
    }

    /// The file bytes, authenticated under `key`.
    pub fn to_bytes(&mut self, key: &DbKey) -> Vec<u8> {
        let content = self.content();
        self.mac = kdf::hmac_parts(&kdf::keyring_mac_key(key)[..], &[&content]);
        let mut data = content;
        data.extend_from_slice(&self.mac);
        let check = kdf::sha256(&data);
        data.extend_from_slice(&check);
        data
    }

    /// Parses file bytes (checksum checked, MAC not yet).
    pub fn from_bytes(data: &[u8]) -> std::result::Result<Keyring, &'static str> {
        Self::parse(data)
    }

    /// Writes the keyring atomically (temporary file, fsync, rename);
    /// returns the SHA-256 of the bytes written, which the database records
    /// as the keyring in force (FORMAT.md §7.1).
    pub fn write(&mut self, key: &DbKey, path: &Path) -> Result<[u8; 32]> {
        let data = self.to_bytes(key);
        let digest = kdf::sha256(&data);
        let tmp = tmp_path(path);
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            sync_dir(path);
            Ok(())
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(path, e)
        })?;
        Ok(digest)
    }
}

/// The largest keyring file read: far above any real one (about 1.5 KiB a
/// user), far below what a planted file could make a client allocate.
const MAX_KEYRING_BYTES: u64 = 64 << 20;

/// A keyring file's bytes, refused past [`MAX_KEYRING_BYTES`].
pub(crate) fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut data = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_KEYRING_BYTES + 1)
        .read_to_end(&mut data)?;
    if data.len() as u64 > MAX_KEYRING_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "larger than 64 MiB: not a keyring",
        ));
    }
    Ok(data)
}

/// Where a keyring edit is written before the database transaction that
/// goes with it commits (FORMAT.md §7.1): `<keyring>.next`.
pub fn next_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".next");
    PathBuf::from(s)
}

/// SHA-256 of a keyring file's bytes: what `vault_meta.keyring_digest`
/// records of the keyring in force.
pub fn digest_of(bytes: &[u8]) -> [u8; 32] {
    kdf::sha256(bytes)
}

/// Makes a rename in `path`'s folder durable (not all platforms allow it).
pub(crate) fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

fn push_str8(out: &mut Vec<u8>, s: &str) {
    // Invariant: every name written is that of a user row that verified to
    // the root (an administrator validated it to at most 64 bytes before
    // signing it), and fingerprints are at most 64 hex digits, so the
    // length fits one byte.
    let b = s.as_bytes();
    let n = u8::try_from(b.len()).expect("short string");
    out.push(n);
    out.extend_from_slice(b);
}

fn push_bytes32(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Keyring {
        let mut k = Keyring::new([1; 16], [2; 16], "AB".repeat(32));
        k.entries.push(Entry {
            name: "alice".into(),
            locked_key: vec![3; 50],
            wrapped_db_key: vec![4; 70],
        });
        k.disabled.push("mallory".into());
        k
    }

    #[test]
    fn round_trip_and_mac() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.keyring");
        let key = DbKey::generate();
        sample().write(&key, &p).unwrap();
        let k = Keyring::read(&p).unwrap();
        k.verify(&key, &p).unwrap();
        assert_eq!(k.entry("alice").unwrap().locked_key, vec![3; 50]);
        assert!(k.is_disabled("mallory"));
        assert!(matches!(
            k.verify(&DbKey::generate(), &p),
            Err(Error::KeyringTampered(_))
        ));
    }

    #[test]
    fn damage_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.keyring");
        sample().write(&DbKey::generate(), &p).unwrap();
        let mut data = std::fs::read(&p).unwrap();
        data[20] ^= 1;
        std::fs::write(&p, &data).unwrap();
        assert!(matches!(
            Keyring::read(&p),
            Err(Error::KeyringCorrupt { .. })
        ));
        std::fs::write(&p, &data[..30]).unwrap();
        assert!(matches!(
            Keyring::read(&p),
            Err(Error::KeyringCorrupt { .. })
        ));
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(Keyring::read(&p), Err(Error::KeyringMissing(_))));
    }
}
