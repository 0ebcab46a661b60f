//! What changes from the schema in force to a new one, and which changes
//! are refused.
//!
//! A vault's data was written under the schema in force; a new schema
//! may add to it and relax it, never take from it in a way that loses
//! data or weakens what is encrypted. Refused, each with its reason:
//! removing a table or a column; turning an encrypted column plain (or a
//! plain one encrypted: its rows hold clear values); changing a column's
//! scope, kind or type; a partial date made strict; an optional column
//! made required; a new required column on a table that exists; changing
//! a table's parent or an index's columns or bits (the stored index
//! values would all be wrong). Allowed: new tables, new optional columns,
//! new indexes, dropping an index, a larger or smaller `max_bytes` (new
//! writes only), other padding, a required column made optional, a strict
//! date made partial, other `planned_rows`.

use std::fmt;

use super::parse::{Problem, Problems};
use super::{ColumnType, Kind, PlainType, Schema};
use crate::error::{Error, Result};

/// One accepted change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new table.
    AddTable(String),
    /// A new column on a table that exists.
    AddColumn {
        /// Table.
        table: String,
        /// Column.
        column: String,
    },
    /// A new blind index on a table that exists.
    AddIndex {
        /// Table.
        table: String,
        /// Index column.
        index: String,
    },
    /// An index no longer kept (its stored values are dropped).
    DropIndex {
        /// Table.
        table: String,
        /// Index column.
        index: String,
    },
    /// A column's limit, padding or optionality changed in a way the rows
    /// there are stay valid under.
    Adjust {
        /// Table.
        table: String,
        /// Column.
        column: String,
        /// What changed, in words.
        what: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::AddTable(t) => write!(f, "add table {t}"),
            Change::AddColumn { table, column } => write!(f, "add column {table}.{column}"),
            Change::AddIndex { table, index } => write!(f, "add blind index {table}.{index}"),
            Change::DropIndex { table, index } => write!(f, "drop blind index {table}.{index}"),
            Change::Adjust {
                table,
                column,
                what,
            } => write!(f, "{table}.{column}: {what}"),
        }
    }
}

/// The changes from `old` (in force) to `new`, or every reason `new` is
/// refused.
pub fn plan(old: &Schema, new: &Schema) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    let mut refuse = Vec::new();
    let mut no = |m: String| {
        refuse.push(Problem {
            line: None,
            message: m,
        })
    };
    for ot in &old.tables {
        let Some(nt) = new.table(&ot.name) else {
            no(format!(
                "table {} is in force and missing from the new schema: \
                 tables are never dropped by a schema change",
                ot.name
            ));
            continue;
        };
        if ot.parent != nt.parent {
            no(format!("{}: a table's parent cannot change", ot.name));
        }
        if !ot.row_scoped() && nt.row_scoped() {
            no(format!(
                "{}: a table whose rows exist cannot become per-row (they have no scope_id)",
                ot.name
            ));
        }
        for oc in &ot.columns {
            let Some(nc) = nt.column(&oc.name) else {
                no(format!(
                    "{}.{} is in force and missing from the new schema: \
                     columns are never dropped by a schema change",
                    ot.name, oc.name
                ));
                continue;
            };
            let at = format!("{}.{}", ot.name, oc.name);
            if oc.optional && !nc.optional {
                no(format!("{at}: an optional column cannot become required"));
            } else if !oc.optional && nc.optional {
                out.push(Change::Adjust {
                    table: ot.name.clone(),
                    column: oc.name.clone(),
                    what: "now optional".into(),
                });
            }
            match (&oc.ty, &nc.ty) {
                (ColumnType::Encrypted(_), ColumnType::Plain(_)) => {
                    no(format!("{at}: an encrypted column cannot become plain"));
                }
                (ColumnType::Plain(_), ColumnType::Encrypted(_)) => {
                    no(format!(
                        "{at}: a plain column cannot become encrypted (its rows hold clear \
                         values); declare a new encrypted column"
                    ));
                }
                (ColumnType::Plain(a), ColumnType::Plain(b)) => match (a, b) {
                    (PlainType::Date { partial: false }, PlainType::Date { partial: true }) => out
                        .push(Change::Adjust {
                            table: ot.name.clone(),
                            column: oc.name.clone(),
                            what: "now takes partial dates".into(),
                        }),
                    _ if a != b => no(format!("{at}: type {a} cannot become {b}")),
                    _ => {}
                },
                (ColumnType::Encrypted(a), ColumnType::Encrypted(b)) => {
                    if a.scope != b.scope {
                        no(format!(
                            "{at}: scope {} cannot become {} (its values are sealed under {})",
                            a.scope, b.scope, a.scope
                        ));
                    }
                    match (a.kind, b.kind) {
                        (Kind::Date { partial: false }, Kind::Date { partial: true }) => {
                            out.push(Change::Adjust {
                                table: ot.name.clone(),
                                column: oc.name.clone(),
                                what: "now takes partial dates".into(),
                            })
                        }
                        (x, y) if x != y => no(format!("{at}: kind {x} cannot become {y}")),
                        _ => {}
                    }
                    if a.max_bytes != b.max_bytes {
                        out.push(Change::Adjust {
                            table: ot.name.clone(),
                            column: oc.name.clone(),
                            what: format!(
                                "max_bytes {} -> {} (for values written from now on)",
                                a.max_bytes, b.max_bytes
                            ),
                        });
                    }
                    if a.padding != b.padding {
                        out.push(Change::Adjust {
                            table: ot.name.clone(),
                            column: oc.name.clone(),
                            what: format!(
                                "padding {} -> {} (for values written from now on)",
                                a.padding, b.padding
                            ),
                        });
                    }
                }
            }
        }
        for nc in &nt.columns {
            if ot.column(&nc.name).is_none() {
                if !nc.optional {
                    no(format!(
                        "{}.{} is added to a table that exists: declare it `optional = true`",
                        ot.name, nc.name
                    ));
                }
                out.push(Change::AddColumn {
                    table: ot.name.clone(),
                    column: nc.name.clone(),
                });
            }
        }
        for oi in &ot.indexes {
            match nt.index(&oi.name) {
                None if nt.column(&oi.name).is_some() => no(format!(
                    "{}.{}: a dropped index's name cannot be a column's in the same change",
                    ot.name, oi.name
                )),
                None => out.push(Change::DropIndex {
                    table: ot.name.clone(),
                    index: oi.name.clone(),
                }),
                Some(ni)
                    if ni.over != oi.over
                        || ni.kind != oi.kind
                        || ni.bits != oi.bits
                        || ni.prefix != oi.prefix
                        || ni.slots != oi.slots =>
                {
                    no(format!(
                    "{}.{}: an index's columns, kind, bits, lengths and slots cannot change (its stored values \
                     would all be wrong); declare a new index and drop this one",
                    ot.name, oi.name
                ))
                }
                Some(_) => {}
            }
        }
        for ni in &nt.indexes {
            if ot.index(&ni.name).is_none() {
                out.push(Change::AddIndex {
                    table: ot.name.clone(),
                    index: ni.name.clone(),
                });
            }
        }
    }
    for nt in &new.tables {
        if old.table(&nt.name).is_none() {
            out.push(Change::AddTable(nt.name.clone()));
        }
    }
    if refuse.is_empty() {
        Ok(out)
    } else {
        Err(Error::Schema(Problems(refuse)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::parse::tests::ALLERGIES;

    fn refused(old: &Schema, new: &Schema) -> String {
        match plan(old, new) {
            Err(Error::Schema(p)) => p.to_string(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn adding_a_table_is_a_change() {
        let old = Schema::builtin();
        let new = old.extend(ALLERGIES).unwrap();
        assert_eq!(
            plan(old, &new).unwrap(),
            [Change::AddTable("allergies".into())]
        );
        assert_eq!(plan(&new, &new).unwrap(), []);
    }

    #[test]
    fn an_encrypted_column_cannot_turn_plain() {
        let old = Schema::builtin().extend(ALLERGIES).unwrap();
        let plain = ALLERGIES.replace(
            "scope = \"clinical\"\nkind = \"text\"\nmax_bytes = 2000\npadding = { power_of_two = 64 }",
            "plain = \"text\"",
        );
        let new = Schema::builtin().extend(&plain).unwrap();
        let why = refused(&old, &new);
        assert!(
            why.contains("allergies.reaction: an encrypted column cannot become plain"),
            "{why}"
        );
        // ... nor the other way round.
        assert!(refused(&new, &old).contains("cannot become encrypted"));
    }

    #[test]
    fn losing_or_reinterpreting_data_is_refused() {
        let old = Schema::builtin().extend(ALLERGIES).unwrap();
        assert!(refused(&old, Schema::builtin()).contains("table allergies"));
        let fewer = ALLERGIES.replace(
            "column = \"recorded_on\"\nplain = \"date\"",
            "column = \"x\"\nplain = \"date\"\noptional = true",
        );
        let why = refused(&old, &Schema::builtin().extend(&fewer).unwrap());
        assert!(
            why.contains("allergies.recorded_on is in force and missing"),
            "{why}"
        );
        let rescoped = ALLERGIES.replacen("scope = \"clinical\"", "scope = \"billing\"", 1);
        let why = refused(&old, &Schema::builtin().extend(&rescoped).unwrap());
        assert!(
            why.contains("scope clinical cannot become billing"),
            "{why}"
        );
        let rebits = ALLERGIES.replace("bits = 12", "bits = 11");
        let why = refused(&old, &Schema::builtin().extend(&rebits).unwrap());
        assert!(why.contains("lengths and slots cannot change"), "{why}");
        let dated = format!(
            "{ALLERGIES}\n[[index]]\ntable = \"patients\"\ncolumn = \"bi_y\"\n\
             over = [\"born\"]\nkind = \"year\"\nbits = 12\ndanger_low_cardinality = true\n"
        );
        let with_year = Schema::builtin().extend(&dated).unwrap();
        let rekinded = dated.replace("kind = \"year\"", "kind = \"year-month\"");
        let why = refused(&with_year, &Schema::builtin().extend(&rekinded).unwrap());
        assert!(
            why.contains("kind, bits, lengths and slots cannot change"),
            "{why}"
        );
        // A prefix index keeps its lengths: its values are keyed per
        // length.
        let prefixed = format!(
            "{}\n[[index]]\ntable = \"allergies\"\ncolumn = \"bi_p\"\n\
             over = [\"substance\"]\nkind = \"prefix\"\nlongest = 4\nbits = 12\n",
            ALLERGIES.replace(
                "name = \"allergies\"\n",
                "name = \"allergies\"\ndanger_single_out = true\n"
            )
        );
        let with_prefix = Schema::builtin().extend(&prefixed).unwrap();
        let relengthed = prefixed.replace("longest = 4", "longest = 5");
        let why = refused(
            &with_prefix,
            &Schema::builtin().extend(&relengthed).unwrap(),
        );
        assert!(
            why.contains("bi_p: an index's columns, kind, bits, lengths"),
            "{why}"
        );
        // A tokens index keeps its slots: the store derives a column each.
        let worded = format!(
            "{}\n[[index]]\ntable = \"allergies\"\ncolumn = \"bi_w\"\n\
             over = [\"substance\"]\nkind = \"tokens\"\nslots = 2\nbits = 2\n",
            ALLERGIES.replace(
                "name = \"allergies\"\n",
                "name = \"allergies\"\ndanger_single_out = true\n"
            )
        );
        let with_words = Schema::builtin().extend(&worded).unwrap();
        let reslotted = worded.replace("slots = 2", "slots = 3");
        let why = refused(&with_words, &Schema::builtin().extend(&reslotted).unwrap());
        assert!(
            why.contains("bi_w: an index's columns, kind, bits, lengths and slots"),
            "{why}"
        );
        let orphan = ALLERGIES.replace("parent = \"patients\"", "");
        let why = refused(&old, &Schema::builtin().extend(&orphan).unwrap());
        assert!(why.contains("parent cannot change"), "{why}");
    }

    #[test]
    fn new_columns_on_existing_tables_must_be_optional() {
        let old = Schema::builtin().extend(ALLERGIES).unwrap();
        let extra = format!(
            "{ALLERGIES}\n[[column]]\ntable = \"allergies\"\ncolumn = \"severity\"\nplain = \"integer\"\n"
        );
        let why = refused(&old, &Schema::builtin().extend(&extra).unwrap());
        assert!(why.contains("allergies.severity"), "{why}");
        let ok = Schema::builtin()
            .extend(&format!("{extra}optional = true\n"))
            .unwrap();
        assert_eq!(
            plan(&old, &ok).unwrap(),
            [Change::AddColumn {
                table: "allergies".into(),
                column: "severity".into()
            }]
        );
    }

    #[test]
    fn a_dropped_index_name_is_not_reused_at_once() {
        let old = Schema::builtin().extend(ALLERGIES).unwrap();
        let start = ALLERGIES.find("[[index]]").unwrap();
        let reused = format!(
            "{}[[column]]\ntable = \"allergies\"\ncolumn = \"bi_substance\"\nplain = \"text\"\noptional = true\n",
            &ALLERGIES[..start]
        );
        let why = refused(&old, &Schema::builtin().extend(&reused).unwrap());
        assert!(why.contains("cannot be a column's"), "{why}");
    }

    #[test]
    fn a_table_cannot_become_per_row() {
        let old = Schema::builtin().extend(ALLERGIES).unwrap();
        let new = format!(
            "{ALLERGIES}\n[[column]]\ntable = \"allergies\"\ncolumn = \"memo\"\n\
             scope = \"per-row\"\nkind = \"text\"\nmax_bytes = 9\n"
        );
        let why = refused(&old, &Schema::builtin().extend(&new).unwrap());
        assert!(why.contains("cannot become per-row"), "{why}");
    }

    #[test]
    fn relaxing_and_dropping_an_index_are_allowed() {
        let old = Schema::builtin().extend(ALLERGIES).unwrap();
        let relaxed = ALLERGIES
            .replace("max_bytes = 200\n", "max_bytes = 400\n")
            .replace("plain = \"date\"", "plain = \"date\"\npartial = true");
        let no_index = &relaxed[..relaxed.find("[[index]]").unwrap()];
        let changes = plan(&old, &Schema::builtin().extend(no_index).unwrap()).unwrap();
        let said: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            said,
            [
                "allergies.substance: max_bytes 200 -> 400 (for values written from now on)",
                "allergies.recorded_on: now takes partial dates",
                "drop blind index allergies.bi_substance",
            ]
        );
    }
}
