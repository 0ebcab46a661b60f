//! Statements over the rows of a declared table, built from the schema for
//! each dialect: the generic row API (`src/vault/rows.rs`) hands them to a
//! store, which only runs them. `?` placeholders in both dialects.

use super::ddl::Dialect;
use crate::schema::Table;

/// The columns a row is read with, in order: the implied columns, then the
/// declared ones (index columns are not read back).
pub fn read_columns(table: &Table) -> Vec<String> {
    table
        .implied_columns()
        .iter()
        .map(|i| i.name().to_string())
        .chain(table.columns.iter().map(|c| c.name.clone()))
        .collect()
}

fn list(d: Dialect, cols: &[String]) -> String {
    cols.iter()
        .map(|c| d.quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `INSERT INTO t (cols) VALUES (?, ...)`.
pub fn insert(d: Dialect, table: &Table, cols: &[String]) -> String {
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        d.quote(&table.name),
        list(d, cols),
        marks(cols.len())
    )
}

/// The row with `id = ?`.
pub fn by_id(d: Dialect, table: &Table) -> String {
    format!(
        "SELECT {} FROM {} WHERE {} = ?",
        list(d, &read_columns(table)),
        d.quote(&table.name),
        d.quote("id")
    )
}

/// Rows whose `column` is one of `n` values, in id order.
pub fn by_values(d: Dialect, table: &Table, column: &str, n: usize) -> String {
    format!(
        "SELECT {} FROM {} WHERE {} IN ({}) ORDER BY {}",
        list(d, &read_columns(table)),
        d.quote(&table.name),
        d.quote(column),
        marks(n.max(1)),
        d.quote("id")
    )
}

/// A page of `limit` rows in id order, after `id > ?` when `after`.
pub fn page(d: Dialect, table: &Table, after: bool, limit: u32) -> String {
    let filter = if after {
        format!(" WHERE {} > ?", d.quote("id"))
    } else {
        String::new()
    };
    format!(
        "SELECT {} FROM {}{filter} ORDER BY {} LIMIT {limit}",
        list(d, &read_columns(table)),
        d.quote(&table.name),
        d.quote("id")
    )
}

/// `UPDATE t SET col = ?, ... WHERE id = ?`.
pub fn update(d: Dialect, table: &Table, cols: &[String]) -> String {
    format!(
        "UPDATE {} SET {} WHERE {} = ?",
        d.quote(&table.name),
        cols.iter()
            .map(|c| format!("{} = ?", d.quote(c)))
            .collect::<Vec<_>>()
            .join(", "),
        d.quote("id")
    )
}

/// `DELETE FROM t WHERE id = ?`.
pub fn delete(d: Dialect, table: &Table) -> String {
    format!(
        "DELETE FROM {} WHERE {} = ?",
        d.quote(&table.name),
        d.quote("id")
    )
}

/// Whether a row of `table` with `id = ?` exists (`SELECT 1 ...`).
pub fn exists(d: Dialect, table: &str) -> String {
    format!(
        "SELECT 1 FROM {} WHERE {} = ?",
        d.quote(table),
        d.quote("id")
    )
}
