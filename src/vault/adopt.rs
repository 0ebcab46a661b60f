//! Adoption of the rows written before medvault authenticated rows
//! (FORMAT.md §5.8, §5.10): an administrator signs each such row as the
//! store holds it, then records, signed, that every row of the vault is
//! signed. From then on a row without authentication is forged: a store
//! can no longer pass a row off as "written before" by setting its
//! authentication to NULL.

use serde::Serialize;

use super::Session;
use crate::error::{Error, Result};
use crate::store::Value as StoreValue;

/// Rows adopted per page, each page one transaction and one signature.
const PAGE: u32 = 500;

/// What [`Session::adopt_rows`] did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct AdoptReport {
    /// Rows adopted, per table (tables with none left out).
    pub tables: Vec<(String, u64)>,
    /// Rows adopted in all.
    pub adopted: u64,
    /// Whether the vault now records that every row is signed (false only
    /// if a row without authentication appeared while adopting; run it
    /// again).
    pub all_signed: bool,
    /// Whether the vault recorded it already before this run: nothing was
    /// adopted (a row without authentication is forged there, not
    /// adopted).
    pub already: bool,
}

impl Session {
    /// Adopts every row of every table that has no authentication (rows
    /// written before migration V7), then stores the record that every row
    /// is signed, signed by this administrator. The session must remember
    /// the vault ([`super::OpenOptions::state_dir`]): [`Error::Refused`]
    /// otherwise, and for a session opened from recovery shares. `progress` hears the table
    /// and its running count after each page of 500 rows.
    ///
    /// The administrator vouches for the rows as the store holds them:
    /// run it right after upgrading, before anyone could have written a
    /// row through SQL. An adopted row reads as
    /// [`super::rows::Authorship::Adopted`]; an update makes it version 1
    /// of its updater. Killed at any point, run it again: adopted rows are
    /// not selected again.
    ///
    /// ```no_run
    /// # async fn f(admin: &medvault::vault::Session) -> medvault::error::Result<()> {
    /// let report = admin.adopt_rows(&mut |table, n| eprintln!("{table}: {n}")).await?;
    /// assert!(report.all_signed);
    /// # Ok(()) }
    /// ```
    pub async fn adopt_rows(
        &self,
        progress: &mut (dyn FnMut(&str, u64) + Send),
    ) -> Result<AdoptReport> {
        self.require_admin()?;
        // Still an active administrator (and learns a record stored since
        // login).
        self.refresh_keys().await?;
        let mut report = AdoptReport::default();
        if self.rows_signed() {
            report.all_signed = true;
            report.already = true;
            return Ok(report);
        }
        if self.user == super::trust::ROOT || self.high_water.is_none() {
            // A client that keeps no memory of the vault (a root session,
            // a session without a state directory) could not tell a vault
            // made before row signing from one a store stripped of its
            // record.
            return Err(Error::Refused(
                "rows are adopted from an administrator's client that remembers the vault \
                 (OpenOptions::state_dir), not from recovery shares",
            ));
        }
        let mut left = 0;
        for _pass in 0..3 {
            self.reload_schema().await?;
            let tables: Vec<String> = self
                .schema()
                .tables
                .iter()
                .map(|t| t.name.clone())
                .collect();
            for name in &tables {
                if self.rows_signed() {
                    break; // another administrator finished meanwhile
                }
                let mut tries = 0;
                let n = loop {
                    // A table opened again after a schema stored meanwhile.
                    let t = self.table(name).await?;
                    match t
                        .adopt_unsigned(PAGE, &mut |n: u64| progress(name, n))
                        .await
                    {
                        Err(Error::SchemaChanged { .. }) if tries < 3 => tries += 1,
                        r => break r?,
                    }
                };
                if n > 0 {
                    match report.tables.iter_mut().find(|(t, _)| t == name) {
                        Some((_, m)) => *m += n,
                        None => report.tables.push((name.clone(), n)),
                    }
                    report.adopted += n;
                }
            }
            if self.rows_signed() {
                report.all_signed = true;
                return Ok(report);
            }
            left = 0;
            for name in &tables {
                left += self.table(name).await?.count_unsigned().await?;
            }
            if left == 0 {
                break;
            }
        }
        if left > 0 {
            return Ok(report);
        }
        // Still an administrator now, or the record would not verify.
        self.refresh_keys().await?;
        if self.rows_signed() {
            report.all_signed = true;
            return Ok(report);
        }
        let mark = {
            let mut signer = self.signer.lock().await;
            super::trust::RowsSigned::sign(&self.vault_id, &self.user, &mut signer, super::now())?
        };
        // A record there that does not verify is replaced; one another
        // administrator stored since is kept (the delete is conditional on
        // the bytes read, the insert keeps a record already there).
        let mut statements = Vec::new();
        if let Some(bad) = self.store.meta("rows_signed").await? {
            if super::rows_signed_verified(&*self.store, &self.vault_id, &self.root_cert, &bad)
                .await?
                .is_some()
            {
                self.learn_rows_signed().await?;
                report.all_signed = self.rows_signed();
                return Ok(report);
            }
            statements.push((
                crate::sql::keys::DELETE_ROWS_SIGNED.to_owned(),
                vec![StoreValue::Blob(bad)],
            ));
        }
        statements.push((
            crate::sql::keys::insert_rows_signed(self.store.dialect()),
            vec![StoreValue::Blob(mark.encode())],
        ));
        self.store.write_all(statements).await?;
        self.learn_rows_signed().await?;
        if !self.rows_signed() {
            return Err(Error::Store(
                "the record that every row is signed was not stored".into(),
            ));
        }
        self.raise_seen()?;
        report.all_signed = true;
        Ok(report)
    }
}
