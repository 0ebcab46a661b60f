//! The async runtime medvault runs on.
//!
//! medvault's API is async on tokio: SQLCipher work runs on tokio's
//! blocking pool and the MySQL driver needs tokio's reactor. Called from
//! outside a tokio runtime (another executor, or none), tokio would panic;
//! medvault answers [`Error::NoRuntime`] instead.

use crate::error::{Error, Result};

/// The current tokio runtime, or [`Error::NoRuntime`].
pub(crate) fn handle() -> Result<tokio::runtime::Handle> {
    tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)
}

/// Runs blocking work (Argon2, SQLCipher) on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    handle()?
        .spawn_blocking(f)
        .await
        .map_err(|_| Error::Store("a medvault worker thread stopped".into()))?
}
