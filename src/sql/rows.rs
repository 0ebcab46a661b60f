//! Statements over the rows of a declared table, built from the schema for
//! each dialect: the generic row API (`src/vault/rows.rs`) hands them to a
//! store, which only runs them. `?` placeholders in both dialects.

use super::ddl::Dialect;
use crate::schema::{Index, Table};
use crate::store::Value;

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

/// The columns a row is selected with, in order: [`read_columns`], the
/// blind indexes, then the row's authentication
/// ([`super::ddl::AUTH_COLUMN`]): everything its author signed, and the
/// reference to the signature.
pub fn stored_columns(table: &Table) -> Vec<String> {
    let mut cols = read_columns(table);
    cols.extend(table.indexes.iter().map(|i| i.name.clone()));
    cols.push(super::ddl::AUTH_COLUMN.to_owned());
    cols
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

/// Parameters per insert statement, under both dialects' limits (SQLite
/// 32,766, MySQL 65,535).
const MAX_PARAMS: usize = 30_000;

/// Rows per insert statement: one statement (one round trip on MySQL, one
/// prepared statement on SQLite) per this many rows, fewer for a table
/// so wide that their parameters would pass 30,000.
pub const ROWS_PER_INSERT: usize = 500;

/// The statements that insert `rows` (each its values in the order of
/// `cols`, the id first) into `table`, in order, [`ROWS_PER_INSERT`] rows
/// (or fewer) per statement.
///
/// Within a statement the rows go in id order, so the id index grows at
/// its end rather than at random places (ids are random). A table with a
/// [`Table::numbered_column`] gets it numbered in the order the rows are
/// given, after every stored row:
/// - MySQL: `AUTO_INCREMENT` (the column is not named; rows are not
///   reordered);
/// - SQLite: the largest stored number (read once per statement, before
///   any of its rows goes in: a statement whose `SELECT` reads the table
///   it fills is evaluated whole first) plus the row's place in the
///   statement, counted from 1. A number that would pass the largest
///   64-bit integer is NULL, which `NOT NULL` refuses, so the write fails
///   whole rather than wrap or turn real.
pub fn insert_rows(
    d: Dialect,
    table: &Table,
    cols: &[String],
    rows: Vec<Vec<Value>>,
) -> Vec<(String, Vec<Value>)> {
    let numbered = table.numbered_column();
    let per = (MAX_PARAMS / (cols.len() + 1)).clamp(1, ROWS_PER_INSERT);
    let mut out = Vec::with_capacity(rows.len().div_ceil(per));
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut chunk: Vec<(i64, Vec<Value>)> = (1_i64..).zip(rows.by_ref().take(per)).collect();
        if !(numbered.is_some() && d == Dialect::Mysql) {
            chunk.sort_by(|a, b| id_key(&a.1).cmp(id_key(&b.1)));
        }
        let n = chunk.len();
        let mut params = Vec::with_capacity(n * (cols.len() + 1));
        let sql = match (numbered, d) {
            (Some(seq), Dialect::Sqlite) => {
                for (pos, values) in chunk {
                    params.extend(values);
                    params.push(Value::Int(pos));
                }
                numbered_insert(table, cols, seq, n)
            }
            _ => {
                for (_, values) in chunk {
                    params.extend(values);
                }
                format!(
                    "INSERT INTO {} ({}) VALUES {}",
                    d.quote(&table.name),
                    list(d, cols),
                    tuples(cols.len(), n)
                )
            }
        };
        out.push((sql, params));
    }
    out
}

/// The id a row is sorted by: its first value.
fn id_key(values: &[Value]) -> &[u8] {
    match values.first() {
        Some(Value::Blob(b)) => b,
        _ => &[],
    }
}

/// `n` tuples of `width` placeholders.
fn tuples(width: usize, n: usize) -> String {
    let one = format!("({})", marks(width));
    vec![one; n.max(1)].join(", ")
}

/// SQLite's insert of `n` rows numbering `seq` (see [`insert_rows`]).
fn numbered_insert(table: &Table, cols: &[String], seq: &str, n: usize) -> String {
    let d = Dialect::Sqlite;
    let t = d.quote(&table.name);
    let seq = d.quote(seq);
    let picked = (1..=cols.len())
        .map(|i| format!("v.column{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let pos = format!("v.column{}", cols.len() + 1);
    format!(
        "INSERT INTO {t} ({}, {seq}) SELECT {picked}, \
         CASE WHEN b.m <= 9223372036854775807 - {pos} THEN b.m + {pos} END \
         FROM (VALUES {}) AS v, (SELECT COALESCE(MAX({seq}), 0) AS m FROM {t}) AS b",
        list(d, cols),
        tuples(cols.len() + 1, n)
    )
}

/// The row with `id = ?`.
pub fn by_id(d: Dialect, table: &Table) -> String {
    format!(
        "SELECT {} FROM {} WHERE {} = ?",
        list(d, &stored_columns(table)),
        d.quote(&table.name),
        d.quote("id")
    )
}

/// How a search's statement pages through its candidates: ordered by
/// `column` (a plain column both stores order alike), then by id, or by id
/// alone; descending or not; from after a row; at most `limit` rows.
///
/// Its parameters follow the search's own: with `after`, the row's value
/// twice then its id (`c > ? OR (c = ? AND id > ?)`), or its id alone
/// when ordered by id or when the row's value is NULL. NULL sorts first
/// ascending and last descending, as both stores sort it.
#[derive(Clone, Copy, Debug)]
pub struct Paging<'a> {
    /// The column ordered by (then the id); `None`: the id alone.
    pub column: Option<&'a str>,
    /// Largest first.
    pub descending: bool,
    /// After a row: `Some(true)` if its value in `column` is NULL.
    pub after: Option<bool>,
    /// The most rows answered.
    pub limit: u32,
}

/// The rows of `table` for which `filter` holds, every stored column, in
/// id order, or as `paging` orders and limits them: what a search asks of
/// an index.
fn matching(d: Dialect, table: &Table, filter: &str, paging: Option<&Paging>) -> String {
    let id = d.quote("id");
    let Some(p) = paging else {
        return format!(
            "SELECT {} FROM {} WHERE {filter} ORDER BY {id}",
            list(d, &stored_columns(table)),
            d.quote(&table.name),
        );
    };
    let (dir, after) = if p.descending {
        ("DESC", "<")
    } else {
        ("ASC", ">")
    };
    let (order, start) = match p.column {
        None => (
            format!("{id} {dir}"),
            p.after.map(|_| format!("{id} {after} ?")),
        ),
        Some(c) => {
            let c = d.quote(c);
            let start = p.after.map(|null| match (null, p.descending) {
                (true, false) => format!("({c} IS NULL AND {id} > ?) OR {c} IS NOT NULL"),
                (true, true) => format!("{c} IS NULL AND {id} < ?"),
                (false, false) => format!("{c} > ? OR ({c} = ? AND {id} > ?)"),
                (false, true) => format!("{c} < ? OR ({c} = ? AND {id} < ?) OR {c} IS NULL"),
            });
            (format!("{c} {dir}, {id} {dir}"), start)
        }
    };
    let start = start.map(|s| format!(" AND ({s})")).unwrap_or_default();
    format!(
        "SELECT {} FROM {} WHERE ({filter}){start} ORDER BY {order} LIMIT {}",
        list(d, &stored_columns(table)),
        d.quote(&table.name),
        p.limit
    )
}

/// Rows whose `column` is one of `n` values, in id order (or as `paging`
/// says).
pub fn by_values(
    d: Dialect,
    table: &Table,
    column: &str,
    n: usize,
    paging: Option<&Paging>,
) -> String {
    matching(
        d,
        table,
        &format!("{} IN ({})", d.quote(column), marks(n.max(1))),
        paging,
    )
}

/// The rows whose `column` lies in any of `n` ranges, each
/// `column BETWEEN ? AND ?` (two parameters, low then high, per range): a
/// prefix index's search, one range per live epoch. In id order (or as
/// `paging` says).
pub fn by_ranges(
    d: Dialect,
    table: &Table,
    column: &str,
    n: usize,
    paging: Option<&Paging>,
) -> String {
    let c = d.quote(column);
    let ranges: Vec<String> = (0..n.max(1))
        .map(|_| format!("({c} BETWEEN ? AND ?)"))
        .collect();
    matching(d, table, &ranges.join(" OR "), paging)
}

/// The rows whose tokens index `index` holds any of `n` keyed words in
/// one of its slots (`<index>__<k> IN (?, ...)`, the `n` values once per
/// slot), or more words than its slots (`<index>__more = 1`): one SQL
/// index per term. In id order (or as `paging` says).
pub fn by_slots(
    d: Dialect,
    table: &Table,
    index: &Index,
    n: usize,
    paging: Option<&Paging>,
) -> String {
    let derived = index.derived_columns();
    let (more, slots) = derived
        .split_last()
        .map_or((None, &[][..]), |(m, s)| (Some(m), s));
    let mut terms: Vec<String> = slots
        .iter()
        .map(|c| format!("{} IN ({})", d.quote(c), marks(n.max(1))))
        .collect();
    terms.extend(more.map(|m| format!("{} = 1", d.quote(m))));
    matching(d, table, &terms.join(" OR "), paging)
}

/// The id and `column` of the rows whose `column` is one of `n` values:
/// which rows already hold a unique index's tags.
pub fn ids_by_values(d: Dialect, table: &Table, column: &str, n: usize) -> String {
    let c = d.quote(column);
    format!(
        "SELECT {}, {c} FROM {} WHERE {c} IN ({})",
        d.quote("id"),
        d.quote(&table.name),
        marks(n.max(1))
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
        list(d, &stored_columns(table)),
        d.quote(&table.name),
        d.quote("id")
    )
}

/// [`page`] limited to the rows whose `scope_id = ?` (the first
/// parameter, before the `id > ?` one): the rows of one scope in a table
/// whose rows each name their scope.
pub fn page_in_scope(d: Dialect, table: &Table, after: bool, limit: u32) -> String {
    let after = if after {
        format!(" AND {} > ?", d.quote("id"))
    } else {
        String::new()
    };
    format!(
        "SELECT {} FROM {} WHERE {} = ?{after} ORDER BY {} LIMIT {limit}",
        list(d, &stored_columns(table)),
        d.quote(&table.name),
        d.quote("scope_id"),
        d.quote("id")
    )
}

/// Up to `limit` rows in id order (after `id > ?` when `after`) with no
/// authentication: the rows an adoption signs (FORMAT.md §5.8).
pub fn unsigned(d: Dialect, table: &Table, after: bool, limit: u32) -> String {
    let after = if after {
        format!(" AND {} > ?", d.quote("id"))
    } else {
        String::new()
    };
    format!(
        "SELECT {} FROM {} WHERE {} IS NULL{after} ORDER BY {} LIMIT {limit}",
        list(d, &stored_columns(table)),
        d.quote(&table.name),
        d.quote(super::ddl::AUTH_COLUMN),
        d.quote("id")
    )
}

/// The number of rows with no authentication.
pub fn count_unsigned(d: Dialect, table: &Table) -> String {
    format!(
        "SELECT COUNT(*) FROM {} WHERE {} IS NULL",
        d.quote(&table.name),
        d.quote(super::ddl::AUTH_COLUMN)
    )
}

/// The number of rows whose `scope_id = ?`.
pub fn count_in_scope(d: Dialect, table: &Table) -> String {
    format!(
        "SELECT COUNT(*) FROM {} WHERE {} = ?",
        d.quote(&table.name),
        d.quote("scope_id")
    )
}

/// `DELETE FROM t WHERE id = ?`, and its `medvault_auth` is NULL
/// (`auth_null`) or `= ?` (the second parameter): a damaged row deleted
/// only as it was read.
pub fn delete_as_read(d: Dialect, table: &Table, auth_null: bool) -> String {
    let auth = d.quote(super::ddl::AUTH_COLUMN);
    let cond = if auth_null {
        format!("{auth} IS NULL")
    } else {
        format!("{auth} = ?")
    };
    format!(
        "DELETE FROM {} WHERE {} = ? AND {cond}",
        d.quote(&table.name),
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

/// The child rows of `table` whose parent column is `?`: their id and
/// scope (`scope_id`, or 0 for a table without one).
pub fn child_scopes(d: Dialect, table: &Table) -> Option<String> {
    let p = table.parent.as_ref()?;
    let scope = if table.row_scoped() {
        d.quote("scope_id")
    } else {
        "0".to_owned()
    };
    Some(format!(
        "SELECT {}, {scope} FROM {} WHERE {} = ?",
        d.quote("id"),
        d.quote(&table.name),
        d.quote(&p.column)
    ))
}

/// Whether a row of `table` with `id = ?` exists (`SELECT 1 ...`).
pub fn exists(d: Dialect, table: &str) -> String {
    format!(
        "SELECT 1 FROM {} WHERE {} = ?",
        d.quote(table),
        d.quote("id")
    )
}

/// Up to `limit` rows in id order (after `id > ?` when `after`) whose
/// `index` is NULL while every column it covers holds a value: the rows an
/// index added over columns that held values already has yet to cover.
pub fn unindexed(d: Dialect, table: &Table, index: &Index, after: bool, limit: u32) -> String {
    page_where(d, table, index_filter(d, index, false, true), after, limit)
}

/// How many rows hold a value in every column `index` covers but no
/// index value: the rows [`unindexed`] selects.
pub fn unindexed_count(d: Dialect, table: &Table, index: &Index) -> String {
    format!(
        "SELECT COUNT(*) FROM {} WHERE {}",
        d.quote(&table.name),
        index_filter(d, index, false, true).join(" AND ")
    )
}

/// Up to `limit` rows in id order (after `id > ?` when `after`) whose
/// `index` holds a value and every column it covers too: the rows a
/// refold (`RowTable::refold_index`) computes again.
pub fn indexed_over_values(
    d: Dialect,
    table: &Table,
    index: &Index,
    after: bool,
    limit: u32,
) -> String {
    page_where(d, table, index_filter(d, index, true, true), after, limit)
}

/// Up to `limit` rows in id order (after `id > ?` when `after`) whose
/// `index` holds a value: the rows an index about to be dropped is
/// cleared from first.
pub fn indexed(d: Dialect, table: &Table, index: &Index, after: bool, limit: u32) -> String {
    page_where(d, table, index_filter(d, index, true, false), after, limit)
}

/// `index` NULL or not (`valued`), and, when `covered`, every column it
/// covers not NULL.
fn index_filter(d: Dialect, index: &Index, valued: bool, covered: bool) -> Vec<String> {
    let is = if valued { "IS NOT NULL" } else { "IS NULL" };
    let mut filter = vec![format!("{} {is}", d.quote(&index.name))];
    if covered {
        filter.extend(
            index
                .over
                .iter()
                .map(|c| format!("{} IS NOT NULL", d.quote(c))),
        );
    }
    filter
}

/// Every stored column of up to `limit` rows matching `filter`, in id
/// order (after `id > ?` when `after`).
fn page_where(
    d: Dialect,
    table: &Table,
    mut filter: Vec<String>,
    after: bool,
    limit: u32,
) -> String {
    if after {
        filter.push(format!("{} > ?", d.quote("id")));
    }
    format!(
        "SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT {limit}",
        list(d, &stored_columns(table)),
        d.quote(&table.name),
        filter.join(" AND "),
        d.quote("id")
    )
}

/// A row's cells sealed again under a new key epoch (key rotation):
/// `UPDATE t SET a = ?, … WHERE id = ? AND c = ? AND d IS NULL …`. The
/// write happens only if every cell in `cas` is still as it was read
/// (`true`: it was NULL), so an update made meanwhile by another client
/// wins and the job meets the row again. Parameters: the values of `set`,
/// the id, then the old value of each `cas` cell that was not NULL.
pub fn reseal(d: Dialect, table: &Table, set: &[&str], cas: &[(&str, bool)]) -> String {
    let mut filter = vec![format!("{} = ?", d.quote("id"))];
    filter.extend(cas.iter().map(|(c, null)| {
        if *null {
            format!("{} IS NULL", d.quote(c))
        } else {
            format!("{} = ?", d.quote(c))
        }
    }));
    format!(
        "UPDATE {} SET {} WHERE {}",
        d.quote(&table.name),
        set.iter()
            .map(|c| format!("{} = ?", d.quote(c)))
            .collect::<Vec<_>>()
            .join(", "),
        filter.join(" AND ")
    )
}
