//! The encryption policy of `schema/policy.toml`, compiled in.
//!
//! The file is the reviewable statement of what is encrypted and indexed;
//! the code reads its limits, padding and bits from here rather than from
//! constants of its own, and tests check the migrations agree with it.

use std::sync::OnceLock;

use serde::Deserialize;

use crate::crypto::padding::Padding;
use crate::error::{Error, Result};

/// The policy text shipped with this build.
pub const POLICY_TOML: &str = include_str!("../schema/policy.toml");

/// One encrypted column.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Policy format version.
    pub format: u32,
    /// Planned number of patients (drives the recommended index bits).
    pub planned_population: u64,
    /// Encrypted columns.
    #[serde(rename = "column")]
    pub columns: Vec<ColumnPolicy>,
    /// Blind indexes.
    #[serde(rename = "index")]
    pub indexes: Vec<IndexPolicy>,
}

impl Policy {
    /// Parses and checks a policy text.
    pub fn parse(text: &str) -> Result<Policy> {
        let p: Policy = toml::from_str(text).map_err(|e| Error::Policy(e.to_string()))?;
        if p.format != 1 {
            return Err(Error::Policy(format!("unknown policy format {}", p.format)));
        }
        for i in &p.indexes {
            if i.bits == 0 || i.bits > 256 {
                return Err(Error::Policy(format!(
                    "{}.{}: bits must be 1..=256",
                    i.table, i.column
                )));
            }
            for c in &i.over {
                if p.column(&i.table, c).is_none() {
                    return Err(Error::Policy(format!(
                        "{}.{} indexes {c}, which is not an encrypted column",
                        i.table, i.column
                    )));
                }
            }
        }
        Ok(p)
    }

    /// The policy compiled into this build.
    pub fn builtin() -> &'static Policy {
        static P: OnceLock<Policy> = OnceLock::new();
        // Invariant: the shipped policy parses; `policy_parses` tests it.
        P.get_or_init(|| Policy::parse(POLICY_TOML).expect("schema/policy.toml is valid"))
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
    fn policy_parses() {
        let p = Policy::builtin();
        assert!(p.column("patients", "family_name").is_some());
        assert_eq!(
            p.index("patients", "bi_family_born").unwrap().over,
            ["family_name", "born"]
        );
    }

    #[test]
    fn shipped_bits_follow_the_planner() {
        let p = Policy::builtin();
        let want = crate::index::recommend_bits(p.planned_population);
        for i in &p.indexes {
            assert_eq!(i.bits, want, "{}.{}", i.table, i.column);
        }
    }

    #[test]
    fn bad_policies_are_refused() {
        let bad = POLICY_TOML.replace("over = [\"given_names\"]", "over = [\"nickname\"]");
        assert!(matches!(Policy::parse(&bad), Err(Error::Policy(_))));
        let bad = POLICY_TOML.replace("format = 1", "format = 9");
        assert!(matches!(Policy::parse(&bad), Err(Error::Policy(_))));
    }
}
