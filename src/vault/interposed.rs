//! A store that passes every call on to another, with hooks: for unit
//! tests that make a server lie about what it holds, or act between a
//! session's check and its write.

use std::sync::Arc;

use crate::error::Result;
use crate::store::{EpochRow, GrantRow, NewScope, ScopeRow, Store, TableSpec, UserRow, Value};

/// Statements of a write, as a store is asked to run them.
pub(crate) type Statements = Vec<(String, Vec<Value>)>;

/// What an [`Interposed`] store changes; by default, nothing.
#[async_trait::async_trait]
pub(crate) trait Hooks: Send + Sync {
    /// The store every call goes on to.
    fn inner(&self) -> &Arc<dyn Store>;
    /// The parameters of a read, as the read is passed on.
    fn params(&self, _sql: &str, p: Vec<Value>) -> Vec<Value> {
        p
    }
    /// A read's answer, as the caller gets it.
    fn answer(&self, rows: Vec<Vec<crate::sql::Cell>>) -> Vec<Vec<crate::sql::Cell>> {
        rows
    }
    /// Runs before a row write (`write_all`, `write_guarded`,
    /// `write_stream`) is passed on.
    async fn before_write(&self) {}
    /// The statements of a `write_all` or `write_guarded`, as passed on;
    /// `Ok(None)` keeps the write from the store, answered as if each
    /// statement changed one row; an error fails it.
    fn statements(&self, s: Statements) -> Result<Option<Statements>> {
        Ok(Some(s))
    }
}

/// A store that passes every call on to `H::inner`, through its hooks.
pub(crate) struct Interposed<H>(pub H);

#[async_trait::async_trait]
impl<H: Hooks> Store for Interposed<H> {
    fn describe(&self) -> String {
        self.0.inner().describe()
    }
    fn dialect(&self) -> crate::store::Dialect {
        self.0.inner().dialect()
    }
    async fn migrate_app(&self, m: Vec<refinery::Migration>) -> Result<Vec<String>> {
        self.0.inner().migrate_app(m).await
    }
    async fn write_stream(
        &self,
        g: Option<crate::store::Guard>,
        rx: crate::store::StatementStream,
    ) -> Result<Vec<u64>> {
        self.0.before_write().await;
        self.0.inner().write_stream(g, rx).await
    }
    async fn write_guarded(
        &self,
        g: &crate::store::Guard,
        s: Vec<(String, Vec<crate::store::Value>)>,
    ) -> Result<Vec<u64>> {
        self.0.before_write().await;
        let n = s.len();
        match self.0.statements(s)? {
            Some(s) => self.0.inner().write_guarded(g, s).await,
            None => Ok(vec![1; n]),
        }
    }
    async fn select(&self, q: String, p: Vec<Value>) -> Result<Vec<Vec<crate::sql::Cell>>> {
        let p = self.0.params(&q, p);
        Ok(self.0.answer(self.0.inner().select(q, p).await?))
    }
    async fn lookup(&self, q: String, p: Vec<Value>) -> Result<Vec<Vec<crate::sql::Cell>>> {
        let p = self.0.params(&q, p);
        Ok(self.0.answer(self.0.inner().lookup(q, p).await?))
    }
    async fn write_all(&self, s: Vec<(String, Vec<crate::store::Value>)>) -> Result<Vec<u64>> {
        self.0.before_write().await;
        let n = s.len();
        match self.0.statements(s)? {
            Some(s) => self.0.inner().write_all(s).await,
            None => Ok(vec![1; n]),
        }
    }
    async fn latest_policy(&self) -> Result<Option<crate::store::PolicyRow>> {
        self.0.inner().latest_policy().await
    }
    async fn table_columns(&self, t: &str) -> Result<Option<Vec<crate::store::StoredColumn>>> {
        self.0.inner().table_columns(t).await
    }
    async fn apply_policy(
        &self,
        s: &[crate::store::SchemaStep],
        r: Option<&crate::store::PolicyRow>,
    ) -> Result<()> {
        self.0.inner().apply_policy(s, r).await
    }
    async fn meta(&self, k: &str) -> Result<Option<Vec<u8>>> {
        self.0.inner().meta(k).await
    }
    async fn users(&self) -> Result<Vec<UserRow>> {
        self.0.inner().users().await
    }
    async fn insert_user(&self, r: &UserRow, p: &NewScope) -> Result<()> {
        self.0.inner().insert_user(r, p).await
    }
    async fn replace_user(&self, r: &UserRow) -> Result<()> {
        self.0.inner().replace_user(r).await
    }
    async fn set_locked_key(&self, u: &str, k: &[u8]) -> Result<()> {
        self.0.inner().set_locked_key(u, k).await
    }
    async fn reset_user(&self, r: &UserRow, g: &[crate::store::GrantRow]) -> Result<()> {
        self.0.inner().reset_user(r, g).await
    }
    async fn scopes(&self) -> Result<Vec<ScopeRow>> {
        self.0.inner().scopes().await
    }
    async fn epochs(&self) -> Result<Vec<EpochRow>> {
        self.0.inner().epochs().await
    }
    async fn grants_to(&self, g: &str) -> Result<Vec<GrantRow>> {
        self.0.inner().grants_to(g).await
    }
    async fn insert_scope(&self, s: &NewScope) -> Result<()> {
        self.0.inner().insert_scope(s).await
    }
    async fn put_grants(&self, g: &[GrantRow]) -> Result<()> {
        self.0.inner().put_grants(g).await
    }
    async fn grants_by(&self, g: &str) -> Result<Vec<GrantRow>> {
        self.0.inner().grants_by(g).await
    }
    async fn resign_epoch(&self, e: &EpochRow) -> Result<()> {
        self.0.inner().resign_epoch(e).await
    }
    async fn delete_grants(&self, s: u32, g: &str) -> Result<usize> {
        self.0.inner().delete_grants(s, g).await
    }
    async fn grants_all(&self) -> Result<Vec<GrantRow>> {
        self.0.inner().grants_all().await
    }
    async fn export(&self, t: &TableSpec, a: Option<Vec<u8>>, l: u32) -> Result<Vec<Vec<Value>>> {
        self.0.inner().export(t, a, l).await
    }
    async fn import(&self, t: &TableSpec, r: Vec<Vec<Value>>) -> Result<()> {
        self.0.inner().import(t, r).await
    }
    async fn count(&self, t: &TableSpec) -> Result<u64> {
        self.0.inner().count(t).await
    }
    async fn max_id(&self, t: &TableSpec) -> Result<Option<Vec<u8>>> {
        self.0.inner().max_id(t).await
    }
}
