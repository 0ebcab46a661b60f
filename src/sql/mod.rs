//! The SQL layer shared by both stores: which tables and columns a vault
//! has, and the checked decoding of every row read back
//! (schema/FORMAT.md §9 lists the tables).
//!
//! The stores keep what is theirs (connections, transactions, retries, the
//! keyring); what a row *is* lives here, once.

pub mod ddl;
pub mod decode;
pub mod keys;
pub mod rows;

use crate::error::Result;
use crate::store::{EpochRow, GrantRow, PolicyRow, ScopeRow, StoredColumn, UserRow};
pub use decode::{Cell, RowDecoder};

/// A table as `copy`, `verify` and the row decoders see it.
#[derive(Clone, Copy, Debug)]
pub struct TableSpec {
    /// Name.
    pub name: &'static str,
    /// Columns, in order; the first is the one rows are paged by when
    /// `paged` (a unique, client-made id).
    pub columns: &'static [&'static str],
    /// Copied in pages ordered by the first column (large tables), or whole.
    pub paged: bool,
    /// The rows that belong to the vault, as an SQL condition: what `copy`
    /// moves and counts. Rows outside it are the store's own (the
    /// SQLCipher store's `keyring_digest`, FORMAT.md §7.1).
    pub vault_rows: &'static str,
}

impl TableSpec {
    /// `SELECT` list with every column quoted (backticks work in both
    /// dialects).
    pub fn select_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A decoder over one row of this table's columns, in order.
    pub fn decoder(&self, cells: Vec<Cell>) -> Result<RowDecoder> {
        RowDecoder::new(self.name, self.columns, cells)
    }
}

/// `vault_meta`: one value per key.
pub const VAULT_META: TableSpec = TableSpec {
    name: "vault_meta",
    columns: &["key", "value"],
    paged: false,
    // `names_fold` stays behind too: a copy may hold rows indexed before
    // the source's fill, so the copy's own fill decides (FORMAT.md §9.1).
    vault_rows: "`key` NOT IN ('keyring_digest', 'names_fold')",
};

/// `users`: certificates, locked keys and their signed rows.
pub const USERS: TableSpec = TableSpec {
    name: "users",
    columns: &[
        "name",
        "role",
        "status",
        "cert",
        "locked_key",
        "certifier",
        "signed_at",
        "signature",
    ],
    paged: false,
    vault_rows: "1 = 1",
};

/// `scopes`.
pub const SCOPES: TableSpec = TableSpec {
    name: "scopes",
    columns: &["id", "name", "owner"],
    paged: false,
    vault_rows: "1 = 1",
};

/// `epochs`: key generations of each scope.
pub const EPOCHS: TableSpec = TableSpec {
    name: "epochs",
    columns: &[
        "scope_id",
        "epoch",
        "state",
        "commitment",
        "creator",
        "signature",
        "retired_by",
        "retired_at",
        "retired_sig",
    ],
    paged: false,
    vault_rows: "1 = 1",
};

/// `grants`: epoch keys wrapped to users.
pub const GRANTS: TableSpec = TableSpec {
    name: "grants",
    columns: &[
        "scope_id",
        "epoch",
        "grantee",
        "rights",
        "wrapped",
        "granter",
        "signed_at",
        "signature",
    ],
    paged: false,
    vault_rows: "1 = 1",
};

/// `patients`.
pub const PATIENTS: TableSpec = TableSpec {
    name: "patients",
    columns: &[
        "id",
        "family_name",
        "given_names",
        "born",
        "sex",
        "bi_family_name",
        "bi_given_names",
        "bi_born",
        "bi_family_born",
        "author",
        "created_at",
        "updated_at",
    ],
    paged: true,
    vault_rows: "1 = 1",
};

/// `notes`.
pub const NOTES: TableSpec = TableSpec {
    name: "notes",
    columns: &[
        "id",
        "patient_id",
        "scope_id",
        "body",
        "author",
        "created_at",
        "seq",
    ],
    paged: true,
    vault_rows: "1 = 1",
};

/// `policies`: the signed versions of the schema in force.
pub const POLICIES: TableSpec = TableSpec {
    name: "policies",
    columns: &["version", "text", "signer", "signed_at", "signature"],
    paged: false,
    vault_rows: "1 = 1",
};

/// `access_requests`: pending requests for a scope, each signed by its
/// requester.
pub const ACCESS_REQUESTS: TableSpec = TableSpec {
    name: "access_requests",
    columns: &["scope_id", "requester", "requested_at", "signature"],
    paged: false,
    vault_rows: "1 = 1",
};

/// `medvault_batches`: signed batches of row leaves (FORMAT.md §5.8).
pub const BATCHES: TableSpec = TableSpec {
    name: "medvault_batches",
    columns: &[
        "id",
        "kind",
        "signer",
        "signed_at",
        "leaves",
        "evidence",
        "signature",
    ],
    paged: true,
    vault_rows: "1 = 1",
};

/// `medvault_replaced_keys`: users' keys replaced by a recovery, signed
/// (FORMAT.md §5.9).
pub const REPLACED_KEYS: TableSpec = TableSpec {
    name: "medvault_replaced_keys",
    columns: &[
        "name",
        "fingerprint",
        "cert",
        "replaced_at",
        "signer",
        "signature",
    ],
    paged: false,
    vault_rows: "1 = 1",
};

/// `medvault_closed_writes`: records that a user's key gives no write
/// right any more under some epochs, except in the batches they list
/// (FORMAT.md §5.11).
pub const CLOSED_WRITES: TableSpec = TableSpec {
    name: "medvault_closed_writes",
    columns: &[
        "id",
        "name",
        "fingerprint",
        "scopes",
        "batches",
        "signer",
        "signed_at",
        "signature",
    ],
    paged: true,
    vault_rows: "1 = 1",
};

/// Every table of a vault, parents before children.
pub const TABLES: &[TableSpec] = &[
    VAULT_META,
    USERS,
    SCOPES,
    EPOCHS,
    GRANTS,
    POLICIES,
    ACCESS_REQUESTS,
    BATCHES,
    REPLACED_KEYS,
    CLOSED_WRITES,
    PATIENTS,
    NOTES,
];

/// A declared table as `copy` and `verify` see it: every stored column
/// (implied, declared, index), paged by its id.
pub fn table_spec(t: &crate::schema::Table) -> TableSpec {
    let cols = rows::stored_columns(t);
    TableSpec {
        name: crate::schema::intern(&t.name),
        columns: crate::schema::intern_list(&cols),
        paged: true,
        vault_rows: "1 = 1",
    }
}

/// The tables `copy` moves, parents before children: medvault's own
/// (vault metadata, users, keys, policies), then every table of `schema`
/// with the columns the schema gives it (an application's columns on
/// `patients` included).
pub fn copy_order(schema: &crate::schema::Schema) -> Vec<TableSpec> {
    let mut out: Vec<TableSpec> = TABLES
        .iter()
        .filter(|t| schema.table(t.name).is_none())
        .copied()
        .collect();
    // Rows of a table come after the rows they point at: its parent's and
    // those of the tables its `ref` columns name (a ref to its own table
    // is not ordered; the import of such rows may meet a foreign key).
    fn depth(
        schema: &crate::schema::Schema,
        t: &crate::schema::Table,
        seen: &mut Vec<String>,
    ) -> usize {
        if seen.contains(&t.name) || seen.len() > schema.tables.len() {
            return 0;
        }
        seen.push(t.name.clone());
        let targets = t
            .parent
            .iter()
            .map(|p| p.table.clone())
            .chain(t.columns.iter().filter_map(|c| match &c.ty {
                crate::schema::ColumnType::Plain(crate::schema::PlainType::Ref(r))
                    if *r != t.name =>
                {
                    Some(r.clone())
                }
                _ => None,
            }))
            .collect::<Vec<_>>();
        let d = targets
            .iter()
            .filter_map(|n| schema.table(n))
            .map(|u| 1 + depth(schema, u, seen))
            .max()
            .unwrap_or(0);
        seen.pop();
        d
    }
    let mut tables: Vec<&crate::schema::Table> = schema.tables.iter().collect();
    tables.sort_by_key(|t| depth(schema, t, &mut Vec::new()));
    out.extend(tables.into_iter().map(table_spec));
    out
}

/// Plain column list of a table (`a, b, c`), for statements.
pub fn column_list(t: &TableSpec) -> String {
    t.columns.join(", ")
}

/// A `users` row.
pub fn user_row(cells: Vec<Cell>) -> Result<UserRow> {
    let mut d = USERS.decoder(cells)?;
    Ok(UserRow {
        name: d.text(0)?,
        role: d.text(1)?,
        status: d.text(2)?,
        cert: d.blob(3)?,
        locked_key: d.blob(4)?,
        certifier: d.text(5)?,
        signed_at: d.int(6)?,
        signature: d.blob(7)?,
    })
}

/// A `scopes` row.
pub fn scope_row(cells: Vec<Cell>) -> Result<ScopeRow> {
    let mut d = SCOPES.decoder(cells)?;
    Ok(ScopeRow {
        id: d.int(0)?,
        name: d.text(1)?,
        owner: d.opt_text(2)?,
    })
}

/// An `epochs` row.
pub fn epoch_row(cells: Vec<Cell>) -> Result<EpochRow> {
    let mut d = EPOCHS.decoder(cells)?;
    Ok(EpochRow {
        scope_id: d.int(0)?,
        epoch: d.int(1)?,
        state: d.text(2)?,
        commitment: d.blob(3)?,
        creator: d.text(4)?,
        signature: d.blob(5)?,
        retired: if d.is_null(6) && d.is_null(7) && d.is_null(8) {
            None
        } else {
            Some(crate::store::Retirement {
                by: d.text(6)?,
                at: d.int(7)?,
                signature: d.blob(8)?,
            })
        },
    })
}

/// A `grants` row.
pub fn grant_row(cells: Vec<Cell>) -> Result<GrantRow> {
    let mut d = GRANTS.decoder(cells)?;
    Ok(GrantRow {
        scope_id: d.int(0)?,
        epoch: d.int(1)?,
        grantee: d.text(2)?,
        rights: d.text(3)?,
        wrapped: d.blob(4)?,
        granter: d.text(5)?,
        signed_at: d.int(6)?,
        signature: d.blob(7)?,
    })
}

/// A `policies` row.
pub fn policy_row(cells: Vec<Cell>) -> Result<PolicyRow> {
    let mut d = POLICIES.decoder(cells)?;
    Ok(PolicyRow {
        version: d.int(0)?,
        text: d.blob(1)?,
        signer: d.text(2)?,
        signed_at: d.int(3)?,
        signature: d.blob(4)?,
    })
}

/// A column as a store's catalogue describes it: `(name, binary, nullable)`
/// with the last two as 0 or 1 (both stores' statements compute them).
pub fn stored_column(cells: Vec<Cell>) -> Result<StoredColumn> {
    let mut d = RowDecoder::new("catalogue", &["name", "binary", "nullable"], cells)?;
    Ok(StoredColumn {
        name: d.text(0)?,
        binary: d.int::<i64>(1)? != 0,
        nullable: d.int::<i64>(2)? != 0,
    })
}

/// The one value column of a `vault_meta` row (`SELECT value`).
pub fn meta_value(cells: Vec<Cell>) -> Result<Vec<u8>> {
    let mut d = RowDecoder::new("vault_meta", &["value"], cells)?;
    d.blob(0)
}

/// A single integer a statement returns (`count(*)`), for `what`.
pub fn single_int<T: TryFrom<i64>>(what: &'static str, cells: Vec<Cell>) -> Result<T> {
    let mut d = RowDecoder::new(what, &["count"], cells)?;
    d.int(0)
}

/// The rows of refinery's history table, for [`check_migration_history`].
pub const MIGRATION_HISTORY: &str =
    "SELECT version, name, applied_on, checksum FROM refinery_schema_history";

/// The rows of a migration history table `table` (medvault's or an
/// application's), for [`check_history`].
pub fn migration_history(table: &str) -> String {
    format!("SELECT version, name, applied_on, checksum FROM `{table}`")
}

/// Checks the rows of refinery's history table before refinery reads them:
/// refinery parses them with `unwrap` (a version out of range, a time that
/// is not RFC 3339, a checksum that is not a number would panic), and the
/// table is the database's to change.
pub fn check_migration_history(rows: Vec<Vec<Cell>>) -> Result<()> {
    check_history("refinery_schema_history", rows)
}

/// [`check_migration_history`] for the history table `table`.
pub fn check_history(table: &'static str, rows: Vec<Vec<Cell>>) -> Result<()> {
    const COLUMNS: &[&str] = &["version", "name", "applied_on", "checksum"];
    let bad = |column, expected| crate::error::Error::BadStoredValue {
        table,
        column,
        expected,
    };
    for cells in rows {
        let mut d = RowDecoder::new(table, COLUMNS, cells)?;
        d.int::<i32>(0)?;
        d.text(1)?;
        let applied_on = d.text(2)?;
        time::OffsetDateTime::parse(&applied_on, &time::format_description::well_known::Rfc3339)
            .map_err(|_| bad("applied_on", "an RFC 3339 time"))?;
        d.text(3)?
            .parse::<u64>()
            .map_err(|_| bad("checksum", "a decimal 64-bit checksum"))?;
    }
    Ok(())
}
