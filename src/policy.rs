//! The encryption policy: the encrypted columns and blind indexes of a
//! [`Schema`], flattened into two lists.
//!
//! The schema (`schema/policy.toml`, `schema/LANGUAGE.md`) is the one
//! source of truth; this is a view of it for code that only asks "how is
//! this column sealed" and "how many bits has this index".

use std::sync::OnceLock;

use crate::crypto::padding::Padding;
use crate::schema::{Kind, Schema};

/// One encrypted column.
#[derive(Clone, Debug)]
pub struct ColumnPolicy {
    /// Table.
    pub table: String,
    /// Column holding the envelope.
    pub column: String,
    /// Scope whose key encrypts it, or `per-row`.
    pub scope: String,
    /// Value kind: `name`, `date`, `code`, `text`.
    pub kind: String,
    /// Largest plaintext accepted, in UTF-8 bytes.
    pub max_bytes: usize,
    /// Length padding before encryption.
    pub padding: Padding,
}

/// One blind index.
#[derive(Clone, Debug)]
pub struct IndexPolicy {
    /// Table.
    pub table: String,
    /// Column holding the index value.
    pub column: String,
    /// Encrypted columns whose canonical values it covers, in order.
    pub over: Vec<String>,
    /// Bits kept of the HMAC.
    pub bits: u16,
}

/// The whole policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Policy format version.
    pub format: u32,
    /// Planned number of patients (drives the recommended index bits).
    pub planned_population: u64,
    /// Encrypted columns.
    pub columns: Vec<ColumnPolicy>,
    /// Blind indexes.
    pub indexes: Vec<IndexPolicy>,
}

impl Policy {
    /// The encrypted columns and blind indexes of `schema`, flattened.
    pub fn of(schema: &Schema) -> Policy {
        let mut columns = Vec::new();
        let mut indexes = Vec::new();
        for t in &schema.tables {
            for (c, e) in t.encrypted() {
                columns.push(ColumnPolicy {
                    table: t.name.clone(),
                    column: c.name.clone(),
                    scope: e.scope.to_string(),
                    kind: match e.kind {
                        Kind::Date { .. } => "date".into(),
                        k => k.to_string(),
                    },
                    max_bytes: e.max_bytes,
                    padding: e.padding,
                });
            }
            for i in &t.indexes {
                indexes.push(IndexPolicy {
                    table: t.name.clone(),
                    column: i.name.clone(),
                    over: i.over.clone(),
                    bits: i.bits,
                });
            }
        }
        Policy {
            format: crate::schema::FORMAT as u32,
            planned_population: schema.planned_population,
            columns,
            indexes,
        }
    }

    /// The policy of medvault's built-in schema.
    pub fn builtin() -> &'static Policy {
        static P: OnceLock<Policy> = OnceLock::new();
        P.get_or_init(|| Policy::of(Schema::builtin()))
    }

    /// An encrypted column.
    pub fn column(&self, table: &str, column: &str) -> Option<&ColumnPolicy> {
        self.columns
            .iter()
            .find(|c| c.table == table && c.column == column)
    }

    /// A blind index.
    pub fn index(&self, table: &str, column: &str) -> Option<&IndexPolicy> {
        self.indexes
            .iter()
            .find(|c| c.table == table && c.column == column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_flattens_the_builtin_schema() {
        let p = Policy::builtin();
        assert!(p.column("patients", "family_name").is_some());
        assert!(
            p.column("patients", "author").is_none(),
            "plain columns are not in it"
        );
        assert_eq!(p.column("notes", "body").unwrap().scope, "per-row");
        assert_eq!(
            p.index("patients", "bi_family_born").unwrap().over,
            ["family_name", "born"]
        );
    }
}
