//! Store locations: `sqlcipher:<path>` (and later `mysql://…`).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where a vault lives.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrl {
    /// An embedded SQLCipher file; its keyring is `<path>.keyring`.
    Sqlcipher(PathBuf),
    /// A shared MySQL / MariaDB database.
    Mysql(MysqlUrl),
}

/// TLS to a MySQL server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    /// Plain TCP. The default only for a loopback host.
    Off,
    /// Encrypted, but the server certificate is not checked.
    Required,
    /// Encrypted, and the server certificate must be valid for the host
    /// (built-in roots, or `ca=<path>`). The default for any other host.
    Verify,
}

/// A parsed `mysql://user:password@host:port/database?tls=…` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct MysqlUrl {
    /// User.
    pub user: String,
    /// Password (never printed).
    pub password: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database.
    pub database: String,
    /// TLS mode.
    pub tls: Tls,
    /// CA certificate file for `tls=verify`.
    pub ca: Option<PathBuf>,
    /// Seconds a statement waits for a row lock before the attempt is
    /// retried (`lock_wait_timeout=`, default 10).
    pub lock_wait_timeout: u32,
}

impl std::fmt::Debug for MysqlUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MysqlUrl({self})")
    }
}

impl std::fmt::Display for MysqlUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mysql://{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl MysqlUrl {
    fn parse(url: &str) -> Result<MysqlUrl> {
        let bad = |reason| Error::BadStoreUrl {
            url: redact(url),
            reason,
        };
        let rest = url
            .strip_prefix("mysql://")
            .ok_or_else(|| bad("expected mysql://"))?;
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (auth, hostpath) = main
            .rsplit_once('@')
            .ok_or_else(|| bad("expected user@host"))?;
        let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
        let (hostport, database) = hostpath
            .split_once('/')
            .ok_or_else(|| bad("expected /database after the host"))?;
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && !p.contains(']') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| bad("the port is not a number"))?,
            ),
            _ => (hostport, 3306),
        };
        let user = percent_decode(user).ok_or_else(|| bad("bad %-escape in the user"))?;
        let password =
            percent_decode(password).ok_or_else(|| bad("bad %-escape in the password"))?;
        if user.is_empty() || host.is_empty() {
            return Err(bad("expected user@host"));
        }
        if database.is_empty()
            || !database
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'$')
        {
            return Err(bad(
                "the database name must be letters, digits, '_', '-' or '$'",
            ));
        }
        let mut tls = if is_loopback(host) {
            Tls::Off
        } else {
            Tls::Verify
        };
        let mut ca = None;
        let mut lock_wait_timeout = 10;
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            match kv.split_once('=') {
                Some(("tls", "off")) => tls = Tls::Off,
                Some(("tls", "required")) => tls = Tls::Required,
                Some(("tls", "verify")) => tls = Tls::Verify,
                Some(("tls", _)) => return Err(bad("tls must be off, required or verify")),
                Some(("ca", p)) => {
                    ca = Some(PathBuf::from(
                        percent_decode(p).ok_or_else(|| bad("bad ca path"))?,
                    ))
                }
                Some(("lock_wait_timeout", n)) => {
                    lock_wait_timeout = n
                        .parse()
                        .ok()
                        .filter(|n| (1..=3600).contains(n))
                        .ok_or_else(|| bad("lock_wait_timeout must be 1..3600 seconds"))?
                }
                _ => return Err(bad("unknown parameter (known: tls, ca, lock_wait_timeout)")),
            }
        }
        Ok(MysqlUrl {
            user,
            password,
            host: host.to_owned(),
            port,
            database: database.to_owned(),
            tls,
            ca,
            lock_wait_timeout,
        })
    }
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
            return MysqlUrl::parse(url).map(StoreUrl::Mysql);
        }
        Err(Error::BadStoreUrl {
            url: redact(url),
            reason: "expected sqlcipher:<path> or mysql://user:password@host:port/database",
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
            StoreUrl::Mysql(m) => write!(f, "{m}"),
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

    #[test]
    fn parses_mysql_urls_with_tls_defaults() {
        let StoreUrl::Mysql(m) = StoreUrl::parse("mysql://root@127.0.0.1:3306/test").unwrap()
        else {
            panic!("not mysql")
        };
        assert_eq!(
            (
                m.user.as_str(),
                m.host.as_str(),
                m.port,
                m.database.as_str(),
                m.tls
            ),
            ("root", "127.0.0.1", 3306, "test", Tls::Off)
        );
        let StoreUrl::Mysql(m) =
            StoreUrl::parse("mysql://u:p%40ss@db.example:3307/clinic?tls=required").unwrap()
        else {
            panic!("not mysql")
        };
        assert_eq!(
            (m.password.as_str(), m.tls, m.port),
            ("p@ss", Tls::Required, 3307)
        );
        let StoreUrl::Mysql(m) = StoreUrl::parse("mysql://u:pw@db.example/clinic").unwrap() else {
            panic!("not mysql")
        };
        assert_eq!(m.tls, Tls::Verify, "remote hosts verify by default");
        assert!(!format!("{m} {m:?}").contains("pw"), "password printed");
        for bad in [
            "mysql://u:pw@h/db?tls=maybe",
            "mysql://u:pw@h",
            "mysql://u:pw@h/d;drop",
            "mysql://u:pw@h/db?x=1",
            "mysql://u:pw@h:port/db",
        ] {
            let e = StoreUrl::parse(bad).unwrap_err().to_string();
            assert!(!e.contains(":pw@"), "{e}");
        }
    }
}
