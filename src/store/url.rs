//! Store locations: `sqlcipher:<path>` (and later `mysql://…`).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where a vault lives.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrl {
    /// An embedded SQLCipher file; its keyring is `<path>.keyring`.
    Sqlcipher(PathBuf),
}

impl StoreUrl {
    /// Parses a store URL.
    pub fn parse(url: &str) -> Result<StoreUrl> {
        if let Some(path) = url.strip_prefix("sqlcipher:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(Error::BadStoreUrl {
                    url: url.to_owned(),
                    reason: "no file path after `sqlcipher:`",
                });
            }
            return Ok(StoreUrl::Sqlcipher(PathBuf::from(path)));
        }
        if url.starts_with("mysql://") {
            return Err(Error::BadStoreUrl {
                url: redact(url),
                reason: "the MySQL store is not available in this version yet",
            });
        }
        Err(Error::BadStoreUrl {
            url: redact(url),
            reason: "expected sqlcipher:<path>",
        })
    }

    /// The keyring file of an embedded store.
    pub fn keyring_path(db: &Path) -> PathBuf {
        let mut s = db.as_os_str().to_owned();
        s.push(".keyring");
        PathBuf::from(s)
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::Sqlcipher(p) => write!(f, "sqlcipher:{}", p.display()),
        }
    }
}

/// Drops a password from a URL before it goes into an error message.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..s], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sqlcipher_and_redacts_passwords() {
        assert_eq!(
            StoreUrl::parse("sqlcipher:/tmp/a.db").unwrap(),
            StoreUrl::Sqlcipher("/tmp/a.db".into())
        );
        assert!(StoreUrl::parse("sqlcipher:").is_err());
        let e = StoreUrl::parse("postgres://u:secret@h/db")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }
}
