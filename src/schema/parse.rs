//! Parsing and validating schema files (`schema/LANGUAGE.md`).
//!
//! A file is read into "raw" declarations that keep where each value was
//! written, then checked against the schema it extends. Every problem is
//! collected (not only the first), each with the line it is on, so an
//! application's developer fixes a file in one pass.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::{
    Column, ColumnType, Encrypted, Index, IndexKind, Kind, Lengths, Parent, PlainType, Schema,
    ScopeRule, Table, FORMAT, MAX_CELL_BYTES, MAX_FIELD_BYTES, MAX_IDENT, MAX_INDEX_PARTS,
    NAMED_SCOPES,
};
use crate::crypto::padding::Padding;
use crate::error::{Error, Result};

/// Names an application cannot give a table: medvault's own tables, and
/// the SQL indexes its migrations make (SQLite keeps tables and indexes in
/// one namespace).
pub const RESERVED_TABLES: [&str; 27] = [
    "vault_meta",
    "users",
    "scopes",
    "epochs",
    "grants",
    "policies",
    "access_requests",
    "refinery_schema_history",
    "app_schema_history",
    "grants_grantee",
    "grants_probe",
    "patients_bi_family_name",
    "patients_bi_given_names",
    "patients_bi_born",
    "patients_bi_family_born",
    "patients_bi_born_year",
    "patients_bi_family_phonetic",
    "patients_bi_family_prefix",
    "patients_bi_given_words",
    "patients_bi_given_words_1",
    "patients_bi_given_words_2",
    "patients_bi_given_words_3",
    "patients_bi_given_words_4",
    "patients_bi_given_words_more",
    "notes_patient",
    "notes_seq",
    "notes_patient_order",
];

/// Prefixes no declared table may start with (SQLite's own tables, and
/// medvault's future ones).
pub const RESERVED_TABLE_PREFIXES: [&str; 2] = ["sqlite_", "medvault_"];

/// One problem in a schema file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The 1-based line it is on, when it is on one.
    pub line: Option<usize>,
    /// What is wrong, and what to write instead where that is clear.
    pub message: String,
}

/// Every problem found in a schema file (never empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    format: Spanned<i64>,
    planned_population: Option<Spanned<i64>>,
    #[serde(default)]
    table: Vec<Spanned<RawTable>>,
    #[serde(default)]
    column: Vec<Spanned<RawColumn>>,
    #[serde(default)]
    index: Vec<Spanned<RawIndex>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    name: Spanned<String>,
    parent: Option<Spanned<String>>,
    parent_column: Option<Spanned<String>>,
    planned_rows: Option<Spanned<i64>>,
    danger_single_out: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    table: Spanned<String>,
    column: Spanned<String>,
    plain: Option<Spanned<String>>,
    references: Option<Spanned<String>>,
    scope: Option<Spanned<String>>,
    kind: Option<Spanned<String>>,
    max_bytes: Option<Spanned<i64>>,
    padding: Option<Spanned<Padding>>,
    optional: Option<Spanned<bool>>,
    partial: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndex {
    table: Spanned<String>,
    column: Spanned<String>,
    over: Spanned<Vec<Spanned<String>>>,
    kind: Option<Spanned<String>>,
    bits: Option<Spanned<i64>>,
    shortest: Option<Spanned<i64>>,
    longest: Option<Spanned<i64>>,
    slots: Option<Spanned<i64>>,
    danger_low_cardinality: Option<Spanned<bool>>,
}

/// Collects problems against the text they are in.
struct Check<'t> {
    text: &'t str,
    problems: Vec<Problem>,
    /// Tables and columns declared with a problem already reported: what
    /// refers to them is not reported again.
    rejected: HashSet<(String, String)>,
}

impl Check<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let line = Some(self.line(span));
        self.problems.push(Problem {
            line,
            message: message.into(),
        });
    }

    /// Checks an identifier; true when it is one.
    fn ident(&mut self, what: &str, name: &Spanned<String>) -> bool {
        let s = name.get_ref();
        let ok = s.len() <= MAX_IDENT
            && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !s.contains("__");
        if !ok {
            self.at(
                name.span(),
                format!(
                    "{what} name {s:?} must match [a-z][a-z0-9_]*, without `__`, and be at most \
                     {MAX_IDENT} characters (names end up in SQL and in key-derivation labels; \
                     `__` joins them in SQL index names)"
                ),
            );
        }
        ok
    }
}

/// Parses medvault's built-in schema (its tables are marked built-in).
pub(crate) fn parse_builtin(text: &str) -> Result<Schema> {
    let empty = Schema {
        planned_population: 0,
        tables: Vec::new(),
    };
    build(&empty, text, true)
}

/// `base` extended by an application's file.
pub(crate) fn extend(base: &Schema, text: &str) -> Result<Schema> {
    build(base, text, false)
}

fn build(base: &Schema, text: &str, builtin: bool) -> Result<Schema> {
    let mut ck = Check {
        text,
        problems: Vec::new(),
        rejected: HashSet::new(),
    };
    let raw: RawFile = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let line = e.span().map(|s| ck.line(s));
            return Err(Error::Schema(Problems(vec![Problem {
                line,
                message: e.message().trim().to_string(),
            }])));
        }
    };
    if *raw.format.get_ref() != FORMAT {
        ck.at(
            raw.format.span(),
            format!(
                "format {} is not the schema language this build reads; write `format = {FORMAT}`",
                raw.format.get_ref()
            ),
        );
    }
    let mut schema = base.clone();
    match (&raw.planned_population, builtin) {
        (Some(p), true) => match u64::try_from(*p.get_ref()) {
            Ok(n) if n >= 1 => schema.planned_population = n,
            _ => ck.at(p.span(), "planned_population must be at least 1"),
        },
        (None, true) => ck.problems.push(Problem {
            line: None,
            message: "the built-in schema needs planned_population".into(),
        }),
        (Some(p), false) => ck.at(
            p.span(),
            "planned_population belongs to medvault's built-in schema; \
             give your tables `planned_rows` instead",
        ),
        (None, false) => {}
    }

    tables(&mut ck, &mut schema, &raw.table, builtin);
    for c in &raw.column {
        column(&mut ck, &mut schema, c, builtin);
    }
    for i in &raw.index {
        index(&mut ck, &mut schema, i, builtin);
    }
    rows_singled_out(&mut ck, &schema, &raw.index);
    // A row's scope (its `scope_id`) is vouched for by the envelopes of its
    // per-row cells: a row must always have one.
    for t in &raw.table {
        let name = t.get_ref().name.get_ref();
        let Some(table) = schema.table(name) else {
            continue;
        };
        let per_row = |c: &&Column| {
            matches!(
                &c.ty,
                ColumnType::Encrypted(Encrypted {
                    scope: ScopeRule::PerRow,
                    ..
                })
            )
        };
        let cols: Vec<&Column> = table.columns.iter().filter(per_row).collect();
        if !cols.is_empty() && cols.iter().all(|c| c.optional) {
            ck.at(
                t.get_ref().name.span(),
                format!(
                    "table {name:?} has per-row columns but all are optional: one must be \
                     required, so that its envelope vouches for the row's scope"
                ),
            );
        }
    }
    if ck.problems.is_empty() {
        Ok(schema)
    } else {
        Err(Error::Schema(Problems(ck.problems)))
    }
}

fn tables(ck: &mut Check<'_>, schema: &mut Schema, raw: &[Spanned<RawTable>], builtin: bool) {
    let first_new = schema.tables.len();
    let mut parents: Vec<(usize, &RawTable)> = Vec::new();
    for t in raw {
        let t = t.get_ref();
        let name = t.name.get_ref();
        if !ck.ident("table", &t.name) {
            ck.rejected.insert((name.clone(), String::new()));
            continue;
        }
        if RESERVED_TABLES.contains(&name.as_str())
            || RESERVED_TABLE_PREFIXES.iter().any(|p| name.starts_with(p))
        {
            ck.at(
                t.name.span(),
                format!("table name {name:?} is reserved for medvault's own tables"),
            );
            ck.rejected.insert((name.clone(), String::new()));
            continue;
        }
        if schema.table(name).is_some() {
            let whose = if schema.table(name).is_some_and(|t| t.builtin) && !builtin {
                " (it is built in: add columns to it with [[column]] table = ... instead)"
            } else {
                ""
            };
            ck.at(
                t.name.span(),
                format!("table {name:?} is declared twice{whose}"),
            );
            continue;
        }
        let planned_rows = match &t.planned_rows {
            None => None,
            Some(p) => match u64::try_from(*p.get_ref()) {
                Ok(n) if n >= 1 => Some(n),
                _ => {
                    ck.at(p.span(), "planned_rows must be at least 1");
                    None
                }
            },
        };
        parents.push((schema.tables.len(), t));
        schema.tables.push(Table {
            name: name.clone(),
            parent: None,
            planned_rows,
            columns: Vec::new(),
            indexes: Vec::new(),
            builtin,
            danger_single_out: t.danger_single_out.as_ref().is_some_and(|d| *d.get_ref()),
        });
    }
    // Parents may be declared below their children: resolve after all.
    for (at, t) in parents {
        if let Some(col) = &t.parent_column {
            if t.parent.is_none() {
                ck.at(col.span(), "parent_column needs a parent table");
            }
        }
        let Some(parent) = &t.parent else { continue };
        let name = t.name.get_ref();
        if parent.get_ref() == name {
            ck.at(
                parent.span(),
                format!("table {name:?} cannot be its own parent"),
            );
            continue;
        }
        if schema.table(parent.get_ref()).is_none() {
            if ck
                .rejected
                .contains(&(parent.get_ref().clone(), String::new()))
            {
                continue;
            }
            ck.at(
                parent.span(),
                format!("parent {:?} is not a declared table", parent.get_ref()),
            );
            continue;
        }
        let column = match &t.parent_column {
            None => "parent_id".to_string(),
            Some(c) => {
                if !ck.ident("parent column", c) {
                    continue;
                }
                if ["id", "scope_id"].contains(&c.get_ref().as_str()) {
                    ck.at(
                        c.span(),
                        format!("parent_column cannot be {:?}", c.get_ref()),
                    );
                    continue;
                }
                c.get_ref().clone()
            }
        };
        schema.tables[at].parent = Some(Parent {
            table: parent.get_ref().clone(),
            column,
        });
    }
    // A chain of parents must end: a table whose chain comes back to it is
    // in a cycle (one that merely leads into a cycle is not reported).
    for i in first_new..schema.tables.len() {
        let me = &schema.tables[i].name;
        let mut cur = &schema.tables[i];
        for _ in 0..schema.tables.len() {
            let Some(next) = cur.parent.as_ref().and_then(|p| schema.table(&p.table)) else {
                break;
            };
            if &next.name == me {
                let span = raw
                    .iter()
                    .find(|t| t.get_ref().name.get_ref() == me)
                    .map(|t| t.get_ref().name.span())
                    .unwrap_or(0..0);
                ck.at(
                    span,
                    format!("table {me:?} is its own ancestor (parents form a cycle)"),
                );
                break;
            }
            cur = next;
        }
    }
}

/// The position of the table a `[[column]]` or `[[index]]` (`what`)
/// names; an unknown one is reported, unless it was refused already.
fn table_of(
    ck: &mut Check<'_>,
    schema: &Schema,
    table: &Spanned<String>,
    what: &str,
) -> Option<usize> {
    let at = schema
        .tables
        .iter()
        .position(|t| &t.name == table.get_ref());
    if at.is_none()
        && !ck
            .rejected
            .contains(&(table.get_ref().clone(), String::new()))
    {
        ck.at(
            table.span(),
            format!("{what} of unknown table {:?}", table.get_ref()),
        );
    }
    at
}

/// Whether `name` is one of the columns medvault gives tables (`id`,
/// `scope_id`, `parent_id`, the table's parent column, and every name
/// starting with `medvault_`, such as the row authentication column):
/// reported if so.
fn medvaults_name(ck: &mut Check<'_>, name: &Spanned<String>, table: &Table) -> bool {
    let n = name.get_ref();
    let taken = ["id", "scope_id", "parent_id"].contains(&n.as_str())
        || n.starts_with("medvault_")
        || table.implied_columns().iter().any(|i| i.name() == n);
    if taken {
        ck.at(
            name.span(),
            format!(
                "{}.{n}: `id`, `scope_id`, `parent_id`, the parent column and names \
                 starting with `medvault_` are medvault's (every table has them as needed)",
                table.name
            ),
        );
    }
    taken
}

fn column(ck: &mut Check<'_>, schema: &mut Schema, raw: &Spanned<RawColumn>, builtin: bool) {
    let c = raw.get_ref();
    let Some(ti) = table_of(ck, schema, &c.table, "column") else {
        return;
    };
    let name = c.column.get_ref().clone();
    // Whatever goes wrong below was said once: an index over this column
    // does not say it again.
    ck.rejected
        .insert((c.table.get_ref().clone(), name.clone()));
    if !ck.ident("column", &c.column) {
        return;
    }
    let table = &schema.tables[ti];
    if medvaults_name(ck, &c.column, table) {
        return;
    }
    if table.column(&name).is_some() || table.index(&name).is_some() {
        ck.at(
            c.column.span(),
            format!("{}.{name} is declared twice", table.name),
        );
        return;
    }
    let optional = c.optional.as_ref().is_some_and(|o| *o.get_ref());
    if table.builtin && !builtin && !optional {
        ck.at(
            c.column.span(),
            format!(
                "{}.{name} is added to a built-in table whose rows exist already: \
                 declare it `optional = true`",
                table.name
            ),
        );
    }
    let partial = c.partial.as_ref().map(|p| (*p.get_ref(), p.span()));
    let ty = match (&c.plain, &c.scope) {
        (Some(_), Some(s)) => {
            ck.at(
                s.span(),
                "a column is either plain (`plain = ...`) or encrypted (`scope = ...`), not both",
            );
            return;
        }
        (None, None) => {
            ck.at(
                c.column.span(),
                format!(
                    "{}.{name}: say `plain = \"<type>\"` for a clear column or `scope = \"<scope>\"` \
                     for an encrypted one",
                    table.name
                ),
            );
            return;
        }
        (Some(p), None) => {
            for (field, span) in [
                ("kind", c.kind.as_ref().map(|s| s.span())),
                ("max_bytes", c.max_bytes.as_ref().map(|s| s.span())),
                ("padding", c.padding.as_ref().map(|s| s.span())),
            ] {
                if let Some(span) = span {
                    ck.at(
                        span,
                        format!("`{field}` is for encrypted columns; {name} is plain"),
                    );
                }
            }
            match plain_type(ck, schema, p, c, partial) {
                Some(t) => ColumnType::Plain(t),
                None => return,
            }
        }
        (None, Some(scope)) => {
            if scope.get_ref() == "per-row" && table.builtin && !builtin && !table.row_scoped() {
                ck.at(
                    scope.span(),
                    format!(
                        "{} has no per-row scope (no scope_id column), and its rows exist \
                         already: name a scope",
                        table.name
                    ),
                );
                return;
            }
            if let Some(r) = &c.references {
                ck.at(r.span(), "`references` goes with `plain = \"ref\"`");
            }
            match encrypted(ck, scope, c, partial) {
                Some(e) => ColumnType::Encrypted(e),
                None => return,
            }
        }
    };
    ck.rejected
        .remove(&(c.table.get_ref().clone(), name.clone()));
    schema.tables[ti].columns.push(Column {
        name,
        optional,
        ty,
        builtin,
    });
}

fn plain_type(
    ck: &mut Check<'_>,
    schema: &Schema,
    p: &Spanned<String>,
    c: &RawColumn,
    partial: Option<(bool, Range<usize>)>,
) -> Option<PlainType> {
    let t = match p.get_ref().as_str() {
        "text" => PlainType::Text,
        "integer" => PlainType::Integer,
        "date" => PlainType::Date {
            partial: partial.as_ref().is_some_and(|p| p.0),
        },
        "timestamp" => PlainType::Timestamp,
        "boolean" => PlainType::Boolean,
        "bytes" => PlainType::Bytes,
        "ref" => match &c.references {
            None => {
                ck.at(
                    p.span(),
                    "`plain = \"ref\"` needs `references = \"<table>\"`",
                );
                return None;
            }
            Some(r) if schema.table(r.get_ref()).is_none() => {
                ck.at(
                    r.span(),
                    format!("references unknown table {:?}", r.get_ref()),
                );
                return None;
            }
            Some(r) => PlainType::Ref(r.get_ref().clone()),
        },
        other => {
            ck.at(
                p.span(),
                format!(
                    "unknown plain type {other:?}; one of text, integer, date, timestamp, \
                     boolean, bytes, ref"
                ),
            );
            return None;
        }
    };
    if let (Some(r), false) = (&c.references, matches!(t, PlainType::Ref(_))) {
        ck.at(r.span(), "`references` goes with `plain = \"ref\"`");
    }
    if let (Some((_, span)), false) = (partial, matches!(t, PlainType::Date { .. })) {
        ck.at(span, "`partial` is for dates");
    }
    Some(t)
}

fn encrypted(
    ck: &mut Check<'_>,
    scope: &Spanned<String>,
    c: &RawColumn,
    partial: Option<(bool, Range<usize>)>,
) -> Option<Encrypted> {
    let mut ok = true;
    let scope_rule = match scope.get_ref().as_str() {
        "per-row" => ScopeRule::PerRow,
        s if NAMED_SCOPES.contains(&s) => ScopeRule::Named(s.to_string()),
        other => {
            ck.at(
                scope.span(),
                format!(
                    "unknown scope {other:?}; one of {}, or \"per-row\"",
                    NAMED_SCOPES.join(", ")
                ),
            );
            ok = false;
            ScopeRule::PerRow
        }
    };
    let kind = match &c.kind {
        None => {
            ck.at(
                c.column.span(),
                "an encrypted column needs `kind` (name, text, code, date or integer)",
            );
            None
        }
        Some(k) => match k.get_ref().as_str() {
            "name" => Some(Kind::Name),
            "text" => Some(Kind::Text),
            "code" => Some(Kind::Code),
            "date" => Some(Kind::Date {
                partial: partial.as_ref().is_some_and(|p| p.0),
            }),
            "integer" => Some(Kind::Integer),
            other => {
                ck.at(
                    k.span(),
                    format!("unknown kind {other:?}; one of name, text, code, date, integer"),
                );
                None
            }
        },
    };
    if let (Some((_, span)), Some(k)) = (&partial, kind) {
        if !matches!(k, Kind::Date { .. }) {
            ck.at(span.clone(), "`partial` is for dates");
        }
    }
    let max_bytes = match &c.max_bytes {
        None => {
            ck.at(
                c.column.span(),
                "an encrypted column needs `max_bytes`, the largest value it takes",
            );
            None
        }
        Some(m) => match usize::try_from(*m.get_ref()) {
            Ok(n) if (1..=MAX_FIELD_BYTES).contains(&n) => Some(n),
            _ => {
                ck.at(m.span(), format!("max_bytes must be 1..={MAX_FIELD_BYTES}"));
                None
            }
        },
    };
    let padding = match &c.padding {
        None => Padding::Block(16),
        Some(p) => {
            let good = match *p.get_ref() {
                Padding::Block(n) => (1..=65536).contains(&n),
                Padding::PowerOfTwo(n) => n.is_power_of_two() && n <= 1 << 20,
            };
            if !good {
                ck.at(
                    p.span(),
                    "padding is { block = 1..=65536 } or { power_of_two = a power of two up to 2^20 }",
                );
                ok = false;
            }
            *p.get_ref()
        }
    };
    let (kind, max_bytes) = (kind?, max_bytes?);
    if ok && padding.padded_len(max_bytes) + crate::crypto::envelope::OVERHEAD > MAX_CELL_BYTES {
        ck.at(
            c.column.span(),
            format!(
                "max_bytes padded, with the envelope's 41 bytes, is larger than \
                 {MAX_CELL_BYTES} bytes, the most one cell holds"
            ),
        );
        ok = false;
    }
    ok.then_some(Encrypted {
        scope: scope_rule,
        kind,
        max_bytes,
        padding,
    })
}

fn index(ck: &mut Check<'_>, schema: &mut Schema, raw: &Spanned<RawIndex>, builtin: bool) {
    let i = raw.get_ref();
    let Some(ti) = table_of(ck, schema, &i.table, "index") else {
        return;
    };
    if !ck.ident("index column", &i.column) {
        return;
    }
    let name = i.column.get_ref().clone();
    let table = &schema.tables[ti];
    if medvaults_name(ck, &i.column, table) {
        return;
    }
    if table.column(&name).is_some() || table.index(&name).is_some() {
        ck.at(
            i.column.span(),
            format!("{}.{name} is declared twice", table.name),
        );
        return;
    }
    let over = i.over.get_ref();
    if over.is_empty() || over.len() > MAX_INDEX_PARTS {
        ck.at(
            i.over.span(),
            format!("an index covers 1..={MAX_INDEX_PARTS} columns"),
        );
        return;
    }
    let mut scope: Option<&ScopeRule> = None;
    let mut seen = HashSet::new();
    let mut ok = true;
    for part in over {
        let pname = part.get_ref();
        if !seen.insert(pname.as_str()) {
            ck.at(part.span(), format!("{pname} is covered twice"));
            ok = false;
            continue;
        }
        match table.column(pname).map(|c| &c.ty) {
            None if ck.rejected.contains(&(table.name.clone(), pname.clone())) => ok = false,
            None => {
                ck.at(
                    part.span(),
                    format!("{}.{pname} is not a declared column", table.name),
                );
                ok = false;
            }
            Some(ColumnType::Plain(_)) => {
                ck.at(
                    part.span(),
                    format!(
                        "{}.{pname} is plain: blind indexes cover encrypted columns \
                         (a plain column is searched as it is)",
                        table.name
                    ),
                );
                ok = false;
            }
            Some(ColumnType::Encrypted(e)) => {
                if e.scope == ScopeRule::PerRow {
                    ck.at(
                        part.span(),
                        format!(
                            "{}.{pname} is per-row: an index key belongs to one scope",
                            table.name
                        ),
                    );
                    ok = false;
                } else if let Some(s) = scope {
                    if *s != e.scope {
                        ck.at(
                            part.span(),
                            format!(
                                "an index covers columns of one scope: {pname} is {}, \
                                 the columns before it {s}",
                                e.scope
                            ),
                        );
                        ok = false;
                    }
                } else {
                    scope = Some(&e.scope);
                }
            }
        }
    }
    let kind = match &i.kind {
        None => IndexKind::Equal,
        Some(k) => match IndexKind::parse(k.get_ref()) {
            Some(kind) => kind,
            None => {
                let all: Vec<&str> = IndexKind::ALL.iter().map(|k| k.as_str()).collect();
                ck.at(
                    k.span(),
                    format!(
                        "unknown index kind \"{}\"; one of {}",
                        k.get_ref().chars().take(40).collect::<String>(),
                        all.join(", ")
                    ),
                );
                return;
            }
        },
    };
    if kind.of_a_date() && ok {
        let date = match over.as_slice() {
            [one] => matches!(
                table.column(one.get_ref()).map(|c| &c.ty),
                Some(ColumnType::Encrypted(e)) if matches!(e.kind, Kind::Date { .. })
            ),
            _ => false,
        };
        if !date {
            ck.at(
                i.over.span(),
                format!("a {kind} index covers one encrypted date column"),
            );
            ok = false;
        }
    }
    if kind == IndexKind::Phonetic && ok {
        let name = match over.as_slice() {
            [one] => matches!(
                table.column(one.get_ref()).map(|c| &c.ty),
                Some(ColumnType::Encrypted(e)) if e.kind == Kind::Name
            ),
            _ => false,
        };
        if !name {
            ck.at(
                i.over.span(),
                "a phonetic index covers one encrypted column of kind name",
            );
            ok = false;
        }
    }
    let prefix = if ok {
        prefix_lengths(ck, i, kind, table)
    } else {
        None
    };
    if kind == IndexKind::Prefix && prefix.is_none() {
        ok = false;
    }
    let slots = if ok {
        token_slots(ck, i, kind, table)
    } else {
        None
    };
    if kind == IndexKind::Tokens && slots.is_none() {
        ok = false;
    }
    let population = table.population(schema);
    let bits_span = i.bits.as_ref().map_or(raw.span(), |b| b.span());
    let unique = kind == IndexKind::Unique;
    let bits = match (&i.bits, unique) {
        (None, true) => Some(IndexKind::UNIQUE_BITS),
        (Some(b), true) => {
            ck.at(
                b.span(),
                "a unique index keeps the whole 256-bit tag: leave bits out",
            );
            None
        }
        (None, false) => {
            ck.at(
                raw.span(),
                format!(
                    "an index names its bits; the planner recommends {} for the {population} \
                     planned rows of {}",
                    crate::index::recommend_bits(population),
                    table.name
                ),
            );
            None
        }
        (Some(b), false) => match u16::try_from(*b.get_ref()) {
            Ok(b) if (1..=64).contains(&b) => Some(b),
            _ => {
                ck.at(b.span(), "bits must be 1..=64");
                None
            }
        },
    };
    if let (Some(b), false) = (bits, unique) {
        let plan = crate::index::plan(population, b);
        let best = crate::index::recommend_bits(population);
        if plan.coincidences < 2.0 && crate::index::plan(population, best).coincidences < 2.0 {
            ck.at(
                bits_span.clone(),
                format!(
                    "no blind index is safe for {population} planned rows of {}: every index \
                     value would single out a row (set planned_rows to the rows it will hold)",
                    table.name
                ),
            );
            ok = false;
        } else if plan.coincidences < 2.0 {
            ck.at(
                bits_span.clone(),
                format!(
                    "{b} bits leave {:.2} rows per index value for the {population} planned rows \
                     of {}: an index value would single out a row. The planner recommends {} \
                     (set the table's planned_rows if it will hold more rows)",
                    plan.coincidences, table.name, best
                ),
            );
            ok = false;
        }
    }
    if let (Some(b), Some(n)) = (bits, slots) {
        let words = super::MAX_INDEX_BYTES / usize::from(b).div_ceil(8);
        if usize::from(n) > words {
            ck.at(
                bits_span.clone(),
                format!(
                    "{n} slots of {} bytes each do not fit an index value of {} bytes: fewer \
                     slots or bits",
                    usize::from(b).div_ceil(8),
                    super::MAX_INDEX_BYTES
                ),
            );
            ok = false;
        }
    }
    if let (Some(b), Some(l)) = (bits, prefix) {
        let bytes = usize::from(b).div_ceil(8) * l.count();
        if bytes > super::MAX_INDEX_BYTES {
            ck.at(
                bits_span.clone(),
                format!(
                    "{} prefix lengths of {} bytes each take {bytes} bytes; an index value \
                     holds at most {}: fewer lengths or bits",
                    l.count(),
                    usize::from(b).div_ceil(8),
                    super::MAX_INDEX_BYTES
                ),
            );
            ok = false;
        }
    }
    let (Some(bits), true) = (bits, ok) else {
        return;
    };
    let made = Index {
        name,
        over: over.iter().map(|p| p.get_ref().clone()).collect(),
        kind,
        bits,
        builtin,
        danger_low_cardinality: i
            .danger_low_cardinality
            .as_ref()
            .is_some_and(|d| *d.get_ref()),
        prefix,
        slots,
    };
    // An index over one column of few values hands the server that
    // column, value class by value class (LANGUAGE.md §6.1).
    let leak = super::plan::index_leak(table, &made, population);
    // A prefix index's shortest prefix is an index of its own the server
    // sees: few classes at 1 character (27 letters, 64 code signs).
    if let (Some(l), Some(ColumnType::Encrypted(e))) =
        (made.prefix, table.column(&made.over[0]).map(|c| &c.ty))
    {
        let values = super::plan::values_of(e.kind, e.max_bytes.min(usize::from(l.shortest)));
        if values <= super::plan::LOW_CLASSES && !made.danger_low_cardinality {
            ck.at(
                raw.span(),
                format!(
                    "{}.{} keys the first {} character(s) of {} alone, which hold about {:.0} \
                     values: the server can name each by how many rows it holds. Raise \
                     shortest, or acknowledge it with danger_low_cardinality = true",
                    table.name, made.name, l.shortest, made.over[0], values
                ),
            );
            return;
        }
    }
    if made.over.len() == 1
        && !unique
        && leak.values <= super::plan::LOW_CLASSES
        && !made.danger_low_cardinality
    {
        ck.at(
            raw.span(),
            format!(
                "{}.{} covers {} alone, which holds about {:.0} values: the server can name \
                 each by how many rows it holds (a low-cardinality column: sex, a flag, a \
                 year). Cover another column too, or acknowledge it with \
                 danger_low_cardinality = true",
                table.name, made.name, made.over[0], leak.values
            ),
        );
        return;
    }
    schema.tables[ti].indexes.push(made);
}

/// The lengths of a prefix index (`shortest`, default 2, and `longest`,
/// which it must name): `None`, with the problem reported, if they are
/// wrong, or if they are given to an index of another kind (reported) or
/// not (nothing to report). A prefix index covers one name, text or code.
fn prefix_lengths(
    ck: &mut Check<'_>,
    i: &RawIndex,
    kind: IndexKind,
    table: &Table,
) -> Option<Lengths> {
    if kind != IndexKind::Prefix {
        for l in [&i.shortest, &i.longest].into_iter().flatten() {
            ck.at(
                l.span(),
                format!("shortest and longest are a prefix index's; this one is {kind}"),
            );
        }
        return None;
    }
    let over = i.over.get_ref();
    let fits = match over.as_slice() {
        [one] => matches!(
            table.column(one.get_ref()).map(|c| &c.ty),
            Some(ColumnType::Encrypted(e))
                if matches!(e.kind, Kind::Name | Kind::Text | Kind::Code)
        ),
        _ => false,
    };
    if !fits {
        ck.at(
            i.over.span(),
            "a prefix index covers one encrypted column of kind name, text or code",
        );
        return None;
    }
    let Some(longest) = &i.longest else {
        ck.at(
            i.kind.as_ref().map_or(i.over.span(), |k| k.span()),
            format!(
                "a prefix index names the longest prefix it keys: longest = 1..={}",
                super::MAX_PREFIX
            ),
        );
        return None;
    };
    let length = |v: &Spanned<i64>| {
        u8::try_from(*v.get_ref())
            .ok()
            .filter(|n| (1..=super::MAX_PREFIX).contains(n))
    };
    let Some(l) = length(longest) else {
        ck.at(
            longest.span(),
            format!("longest must be 1..={}", super::MAX_PREFIX),
        );
        return None;
    };
    let s = match &i.shortest {
        // Two characters: the fewest a name or a code is not refused at
        // for few values (27^2, 64^2).
        None => 2.min(l),
        Some(v) => match length(v).filter(|s| *s <= l) {
            Some(s) => s,
            None => {
                ck.at(v.span(), format!("shortest must be 1..={l} (longest)"));
                return None;
            }
        },
    };
    Some(Lengths {
        shortest: s,
        longest: l,
    })
}

/// The slots of a tokens index (`slots`, default 4, at most
/// [`super::MAX_SLOTS`]): `None`, with the problem reported, if they are
/// wrong or the index covers no one name or text column, or if they are
/// given to an index of another kind (reported) or not (nothing to
/// report). Its name is at most 24 characters, so the SQL names of its
/// derived columns fit MySQL's 64.
fn token_slots(ck: &mut Check<'_>, i: &RawIndex, kind: IndexKind, table: &Table) -> Option<u8> {
    if kind != IndexKind::Tokens {
        if let Some(s) = &i.slots {
            ck.at(
                s.span(),
                format!("slots are a tokens index's; this one is {kind}"),
            );
        }
        return None;
    }
    let over = i.over.get_ref();
    let fits = match over.as_slice() {
        [one] => matches!(
            table.column(one.get_ref()).map(|c| &c.ty),
            Some(ColumnType::Encrypted(e)) if matches!(e.kind, Kind::Name | Kind::Text)
        ),
        _ => false,
    };
    if !fits {
        ck.at(
            i.over.span(),
            "a tokens index covers one encrypted column of kind name or text",
        );
        return None;
    }
    if i.column.get_ref().len() > 24 {
        ck.at(
            i.column.span(),
            "a tokens index's name is at most 24 characters (its derived columns add `__more`)",
        );
        return None;
    }
    match &i.slots {
        None => Some(4),
        Some(v) => match u8::try_from(*v.get_ref())
            .ok()
            .filter(|n| (1..=super::MAX_SLOTS).contains(n))
        {
            Some(n) => Some(n),
            None => {
                ck.at(v.span(), format!("slots must be 1..={}", super::MAX_SLOTS));
                None
            }
        },
    }
}

/// Refuses a table whose indexes this file declares if, side by side,
/// they single a row out (LANGUAGE.md §6.1), unless the table says
/// `danger_single_out = true`.
fn rows_singled_out(ck: &mut Check<'_>, schema: &Schema, raw: &[Spanned<RawIndex>]) {
    let mut seen: Vec<&str> = Vec::new();
    // The last index each table gets in this file: where the problem is.
    for i in raw.iter().rev() {
        let name = i.get_ref().table.get_ref().as_str();
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        let Some(t) = schema.table(name) else {
            continue;
        };
        if t.danger_single_out {
            continue;
        }
        let r = t.population(schema);
        let leaks: Vec<_> = t
            .indexes
            .iter()
            .map(|x| super::plan::index_leak(t, x, r))
            .collect();
        let leak = super::plan::table_leak(t, r, leaks);
        if leak.singles_out() {
            ck.at(
                i.span(),
                format!(
                    "the {} indexes of {} side by side reveal up to {:.1} bits of a row for \
                     its {r} planned rows: they single a row out (whoever learns one row's \
                     values finds its other rows; `medvault schema plan` shows each). Drop an \
                     index or bits, or acknowledge it on the table with danger_single_out = true",
                    t.indexes.len(),
                    t.name,
                    leak.row_bits
                ),
            );
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The application file of issue #9, accepted as written.
    pub(crate) const ALLERGIES: &str = r#"format = 2

[[table]]
name = "allergies"
parent = "patients"        # each row carries parent_id, the id of its patient

[[column]]
table = "allergies"
column = "substance"
scope = "clinical"
kind = "text"
max_bytes = 200
padding = { block = 32 }

[[column]]
table = "allergies"
column = "reaction"
scope = "clinical"
kind = "text"
max_bytes = 2000
padding = { power_of_two = 64 }

[[column]]
table = "allergies"
column = "recorded_on"
plain = "date"

[[index]]
table = "allergies"
column = "bi_substance"
over = ["substance"]
bits = 12
"#;

    fn problems(text: &str) -> Vec<Problem> {
        match Schema::builtin().extend(text) {
            Err(Error::Schema(Problems(p))) => p,
            other => panic!("expected schema problems, got {other:?}"),
        }
    }

    /// The one problem `text` has: its line and message.
    fn problem(text: &str) -> (Option<usize>, String) {
        let p = problems(text);
        assert_eq!(p.len(), 1, "{p:?}");
        (p[0].line, p[0].message.clone())
    }

    #[test]
    fn the_issue_file_is_accepted_as_written() {
        let s = Schema::builtin().extend(ALLERGIES).unwrap();
        let t = s.table("allergies").unwrap();
        assert!(!t.builtin);
        assert_eq!(
            t.parent,
            Some(Parent {
                table: "patients".into(),
                column: "parent_id".into()
            })
        );
        assert_eq!(t.columns.len(), 3);
        assert_eq!(
            t.column("recorded_on").unwrap().ty,
            ColumnType::Plain(PlainType::Date { partial: false })
        );
        let ColumnType::Encrypted(e) = &t.column("reaction").unwrap().ty else {
            panic!("reaction is encrypted")
        };
        assert_eq!(e.scope, ScopeRule::Named("clinical".into()));
        assert_eq!(e.padding, Padding::PowerOfTwo(64));
        assert_eq!(t.index("bi_substance").unwrap().bits, 12);
        // The built-in tables are untouched and still first.
        assert_eq!(&s.tables[..2], &Schema::builtin().tables[..]);
    }

    #[test]
    fn a_column_can_be_added_to_a_builtin_table_when_optional() {
        let add = r#"format = 2
[[column]]
table = "patients"
column = "insurance_number"
scope = "identity"
kind = "code"
max_bytes = 32
optional = true

[[index]]
table = "patients"
column = "bi_insurance_number"
over = ["insurance_number"]
bits = 15
"#;
        let s = Schema::builtin().extend(add).unwrap();
        let p = s.table("patients").unwrap();
        assert!(p.column("insurance_number").unwrap().optional);
        assert!(!p.index("bi_insurance_number").unwrap().builtin);
        let (line, msg) = problem(&add.replace("optional = true\n", ""));
        assert_eq!(line, Some(4));
        assert!(msg.contains("optional = true"), "{msg}");
    }

    #[test]
    fn unknown_scope_and_kind_name_their_line() {
        let (line, msg) =
            problem(&ALLERGIES.replacen("scope = \"clinical\"", "scope = \"clinicl\"", 1));
        assert_eq!(line, Some(10));
        assert!(msg.contains("unknown scope \"clinicl\""), "{msg}");
        let (line, msg) = problem(&ALLERGIES.replacen("kind = \"text\"", "kind = \"txt\"", 1));
        assert_eq!(line, Some(11));
        assert!(msg.contains("unknown kind \"txt\""), "{msg}");
        let (line, msg) = problem(&ALLERGIES.replace("plain = \"date\"", "plain = \"day\""));
        assert_eq!(line, Some(26));
        assert!(msg.contains("unknown plain type"), "{msg}");
    }

    #[test]
    fn identifiers_outside_the_alphabet_are_refused() {
        for bad in [
            "Allergies",
            "1allergies",
            "allergies-x",
            "allergies;drop",
            "a\u{e9}",
            "",
        ] {
            let text = ALLERGIES.replace("\"allergies\"", &format!("{bad:?}"));
            let p = problems(&text);
            assert!(
                p.iter()
                    .any(|p| p.line == Some(4) && p.message.contains("[a-z][a-z0-9_]*")),
                "{bad:?}: {p:?}"
            );
        }
        let long = "a".repeat(MAX_IDENT + 1);
        let (line, msg) = problem(&ALLERGIES.replace("\"reaction\"", &format!("{long:?}")));
        assert_eq!(line, Some(17));
        assert!(msg.contains("at most 30"), "{msg}");
        let (line, _) = problem(&ALLERGIES.replace("bi_substance", "bi-substance"));
        assert_eq!(line, Some(30));
    }

    #[test]
    fn an_index_over_two_scopes_is_refused() {
        let text = format!(
            "{ALLERGIES}
[[column]]
table = \"allergies\"
column = \"billed_code\"
scope = \"billing\"
kind = \"code\"
max_bytes = 16

[[index]]
table = \"allergies\"
column = \"bi_mixed\"
over = [\"substance\", \"billed_code\"]
bits = 12
"
        );
        let (line, msg) = problem(&text);
        assert_eq!(line, Some(44));
        assert!(msg.contains("one scope"), "{msg}");
        // A per-row column has no one index key either.
        let per_row = text
            .replace("scope = \"billing\"", "scope = \"per-row\"")
            .replace("\"substance\", \"billed_code\"", "\"billed_code\"");
        let (_, msg) = problem(&per_row);
        assert!(msg.contains("per-row"), "{msg}");
        // Nor does a plain column need one.
        let (_, msg) =
            problem(&ALLERGIES.replace("over = [\"substance\"]", "over = [\"recorded_on\"]"));
        assert!(msg.contains("plain"), "{msg}");
    }

    #[test]
    fn unsafe_bits_are_refused_with_the_planners_advice() {
        let (line, msg) = problem(&ALLERGIES.replace("bits = 12", "bits = 20"));
        assert_eq!(line, Some(32));
        assert!(msg.contains("single out a row"), "{msg}");
        assert!(msg.contains("recommends 15"), "{msg}");
        // A table planned for more rows takes more bits.
        let big = ALLERGIES.replace(
            "parent = \"patients\"",
            "parent = \"patients\"\nplanned_rows = 4000000",
        );
        let s = Schema::builtin()
            .extend(&big.replace("bits = 12", "bits = 20"))
            .unwrap();
        assert_eq!(
            s.table("allergies")
                .unwrap()
                .index("bi_substance")
                .unwrap()
                .bits,
            20
        );
    }

    #[test]
    fn a_per_row_table_needs_a_required_per_row_column() {
        let text = "format = 2\n[[table]]\nname = \"visits\"\n[[column]]\ntable = \"visits\"\n\
                    column = \"why\"\nscope = \"per-row\"\nkind = \"text\"\nmax_bytes = 9\n";
        assert!(Schema::builtin().extend(text).is_ok());
        let (line, msg) = problem(&format!("{text}optional = true\n"));
        assert_eq!(line, Some(3));
        assert!(msg.contains("vouches for the row's scope"), "{msg}");
    }

    #[test]
    fn limits_that_cannot_hold_are_refused() {
        // The padded value and the envelope must fit a MEDIUMBLOB.
        let (_, msg) = problem(&ALLERGIES.replace(
            "max_bytes = 2000\npadding = { power_of_two = 64 }",
            "max_bytes = 8388608\npadding = { power_of_two = 64 }",
        ));
        assert!(msg.contains("the most one cell holds"), "{msg}");
        // A table too small for any safe index says so, not "use 1 bit".
        let tiny = ALLERGIES.replace("parent = \"patients\"", "planned_rows = 3");
        let (_, msg) = problem(&tiny.replace("bits = 12", "bits = 1"));
        assert!(msg.contains("no blind index is safe"), "{msg}");
        // A per-row column cannot be added to patients (no scope_id there).
        let (_, msg) = problem(
            "format = 2\n[[column]]\ntable = \"patients\"\ncolumn = \"memo\"\n\
             scope = \"per-row\"\nkind = \"text\"\nmax_bytes = 9\noptional = true\n",
        );
        assert!(msg.contains("no per-row scope"), "{msg}");
        // Index names follow the column rule for medvault's names.
        let (_, msg) = problem(&ALLERGIES.replace("\"bi_substance\"", "\"scope_id\""));
        assert!(msg.contains("medvault's"), "{msg}");
        // `__` is kept for SQL index names; medvault's tables and SQL
        // indexes are not table names.
        let (_, msg) = problem(&ALLERGIES.replace("\"bi_substance\"", "\"bi__substance\""));
        assert!(msg.contains("without `__`"), "{msg}");
        for name in crate::sql::TABLES.iter().map(|t| t.name) {
            if Schema::builtin().table(name).is_some() {
                continue;
            }
            let p =
                problems(&ALLERGIES.replace("name = \"allergies\"", &format!("name = \"{name}\"")));
            assert!(p[0].message.contains("reserved"), "{name}: {p:?}");
        }
        let p = problems(&ALLERGIES.replace("name = \"allergies\"", "name = \"notes_patient\""));
        assert!(p[0].message.contains("reserved"), "{p:?}");
    }

    #[test]
    fn duplicates_are_refused() {
        let text = format!("{ALLERGIES}\n[[table]]\nname = \"allergies\"\n");
        let (line, msg) = problem(&text);
        assert_eq!(line, Some(35));
        assert!(msg.contains("declared twice"), "{msg}");
        let (_, msg) = problem(&ALLERGIES.replace("\"reaction\"", "\"substance\""));
        assert!(
            msg.contains("allergies.substance is declared twice"),
            "{msg}"
        );
        let (_, msg) = problem(&ALLERGIES.replace("\"bi_substance\"", "\"reaction\""));
        assert!(msg.contains("declared twice"), "{msg}");
        let p = problems(&ALLERGIES.replace("name = \"allergies\"", "name = \"patients\""));
        assert!(p[0].message.contains("built in"), "{p:?}");
        let (_, msg) = problem(&ALLERGIES.replace("\"recorded_on\"", "\"parent_id\""));
        assert!(msg.contains("medvault's"), "{msg}");
        let p = problems(&ALLERGIES.replace("name = \"allergies\"", "name = \"users\""));
        assert!(p[0].message.contains("reserved"), "{p:?}");
    }

    #[test]
    fn parents_must_exist_and_end() {
        let (line, msg) =
            problem(&ALLERGIES.replace("parent = \"patients\"", "parent = \"patient\""));
        assert_eq!(line, Some(5));
        assert!(msg.contains("not a declared table"), "{msg}");
        let cycle = "format = 2
[[table]]
name = \"a\"
parent = \"b\"
[[table]]
name = \"b\"
parent = \"a\"
";
        let p = problems(cycle);
        assert!(p.iter().all(|p| p.message.contains("cycle")), "{p:?}");
        assert_eq!(p.len(), 2);
        // A table that leads into a cycle is not in it.
        let into = format!("{cycle}[[table]]\nname = \"c\"\nparent = \"a\"\n");
        let p = problems(&into);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().all(|p| !p.message.contains("\"c\"")), "{p:?}");
    }

    fn texts(parts: Option<Vec<crate::schema::Part<'_>>>) -> Option<Vec<String>> {
        parts.map(|v| v.iter().map(|p| p.as_str().to_owned()).collect())
    }

    /// A unique index keeps the whole tag: no bits given (256), none
    /// accepted; any other kind names its bits. The planner counts it as
    /// revealing nothing a row's id does not: no danger flag needed.
    #[test]
    fn a_unique_index_keeps_the_whole_tag() {
        let unique = |bits: &str| {
            format!(
                "format = 2\n[[table]]\nname = \"members\"\n[[column]]\ntable = \"members\"\n\
                 column = \"card\"\nscope = \"identity\"\nkind = \"code\"\nmax_bytes = 32\n\
                 [[index]]\ntable = \"members\"\ncolumn = \"uq_card\"\nover = [\"card\"]\n\
                 kind = \"unique\"\n{bits}"
            )
        };
        let s = Schema::builtin().extend(&unique("")).unwrap();
        let t = s.table("members").unwrap();
        let i = t.index("uq_card").unwrap();
        assert_eq!((i.kind, i.bits), (IndexKind::Unique, 256));
        let leak = super::super::plan::index_leak(t, i, 100_000);
        assert_eq!(leak.bits_revealed, 0.0);
        assert_eq!(leak.crowd, 1.0);
        let (line, msg) = problem(&unique("bits = 15\n"));
        assert_eq!(line, Some(15), "the bits line");
        assert!(msg.contains("leave bits out"), "{msg}");
        let (line, msg) = problem(&unique("").replace("kind = \"unique\"\n", ""));
        assert_eq!(line, Some(10), "the [[index]] line");
        assert!(
            msg.contains("names its bits") && msg.contains("recommends 15"),
            "{msg}"
        );
    }

    #[test]
    fn index_kinds_cover_one_column_of_their_kind() {
        let year = |over: &str, kind: &str| {
            format!(
                "{ALLERGIES}\n[[index]]\ntable = \"patients\"\ncolumn = \"bi_y\"\n\
                 over = [{over}]\nkind = \"{kind}\"\nbits = 12\ndanger_low_cardinality = true\n"
            )
        };
        let s = Schema::builtin().extend(&year("\"born\"", "year")).unwrap();
        let i = s.table("patients").unwrap().index("bi_y").unwrap();
        assert_eq!(i.kind, IndexKind::Year);
        assert_eq!(
            texts(i.parts(&["1970-03-02"])),
            Some(vec!["1970".to_owned()])
        );
        let s = Schema::builtin()
            .extend(&year("\"born\"", "year-month"))
            .unwrap();
        let i = s.table("patients").unwrap().index("bi_y").unwrap();
        assert_eq!(
            texts(i.parts(&["1970-03-02"])),
            Some(vec!["1970-03".to_owned()])
        );
        assert_eq!(texts(i.parts(&["1970"])), None, "a year alone has no month");
        let s = Schema::builtin()
            .extend(&year("\"family_name\"", "phonetic"))
            .unwrap();
        let i = s.table("patients").unwrap().index("bi_y").unwrap();
        assert_eq!(texts(i.parts(&["dupond"])), Some(vec!["TPNT".to_owned()]));
        assert_eq!(
            texts(i.parts(&["\u{4e2d}"])),
            None,
            "no letter a..z, no code"
        );
        // No kind is equality, as before.
        let s = Schema::builtin().extend(ALLERGIES).unwrap();
        let i = s.table("allergies").unwrap().index("bi_substance").unwrap();
        assert_eq!(i.kind, IndexKind::Equal);
        for (over, kind, want) in [
            ("\"family_name\"", "year", "one encrypted date column"),
            (
                "\"born\", \"family_name\"",
                "year-month",
                "one encrypted date column",
            ),
            ("\"born\"", "soundex", "unknown index kind \"soundex\""),
            ("\"born\"", "phonetic", "one encrypted column of kind name"),
            (
                "\"family_name\", \"given_names\"",
                "phonetic",
                "one encrypted column of kind name",
            ),
        ] {
            let (line, msg) = problem(&year(over, kind));
            assert!(line.is_some(), "{msg}");
            assert!(msg.contains(want), "{msg}");
        }
    }

    #[test]
    fn a_prefix_index_names_its_lengths_and_fits_one_value() {
        let prefix = |over: &str, lengths: &str, bits: u16| {
            format!(
                "{ALLERGIES}\n[[index]]\ntable = \"patients\"\ncolumn = \"bi_p\"\n\
                 over = [{over}]\nkind = \"prefix\"\n{lengths}bits = {bits}\n\
                 danger_low_cardinality = true\n"
            )
        };
        let s = Schema::builtin()
            .extend(&prefix(
                "\"family_name\"",
                "shortest = 2\nlongest = 4\n",
                12,
            ))
            .unwrap();
        let i = s.table("patients").unwrap().index("bi_p").unwrap();
        assert_eq!(i.kind, IndexKind::Prefix);
        assert_eq!(
            i.prefix,
            Some(Lengths {
                shortest: 2,
                longest: 4
            })
        );
        assert_eq!((i.value_len(), i.stored_len()), (2, 6));
        // shortest defaults to 2.
        let s = Schema::builtin()
            .extend(&prefix("\"given_names\"", "longest = 3\n", 12))
            .unwrap();
        let i = s.table("patients").unwrap().index("bi_p").unwrap();
        assert_eq!(i.prefix.map(|l| (l.shortest, l.longest)), Some((2, 3)));
        // Other kinds have no lengths.
        let s = Schema::builtin().extend(ALLERGIES).unwrap();
        let i = s.table("allergies").unwrap().index("bi_substance").unwrap();
        assert_eq!((i.prefix, i.stored_len()), (None, 2));
        for (over, lengths, bits, want) in [
            (
                "\"born\"",
                "longest = 3\n",
                12,
                "one encrypted column of kind name, text or code",
            ),
            (
                "\"family_name\", \"born\"",
                "longest = 3\n",
                12,
                "one encrypted column of kind name, text or code",
            ),
            (
                "\"family_name\"",
                "",
                12,
                "names the longest prefix it keys",
            ),
            (
                "\"family_name\"",
                "longest = 0\n",
                12,
                "longest must be 1..=16",
            ),
            (
                "\"family_name\"",
                "longest = 17\n",
                12,
                "longest must be 1..=16",
            ),
            (
                "\"family_name\"",
                "shortest = 4\nlongest = 3\n",
                12,
                "shortest must be 1..=3 (longest)",
            ),
            // 16 lengths of 3 bytes: 48 bytes (17 bits are too many for
            // the patients too, said apart).
            (
                "\"family_name\"",
                "shortest = 1\nlongest = 16\n",
                17,
                "16 prefix lengths of 3 bytes each take 48 bytes",
            ),
        ] {
            let p = problems(&prefix(over, lengths, bits));
            assert!(
                p.iter()
                    .any(|p| p.line.is_some() && p.message.contains(want)),
                "{over} {lengths}: {p:?}"
            );
        }
        // A first prefix of 1 character tells the server its 27 classes:
        // refused unless acknowledged.
        let one = prefix("\"family_name\"", "shortest = 1\nlongest = 3\n", 12)
            .replace("danger_low_cardinality = true\n", "");
        let (line, msg) = problem(&one);
        assert!(line.is_some(), "{msg}");
        assert!(
            msg.contains("keys the first 1 character(s) of family_name alone, which hold about 27"),
            "{msg}"
        );
        assert!(Schema::builtin()
            .extend(&format!("{one}danger_low_cardinality = true\n"))
            .is_ok());
        // Lengths on another kind are refused, not ignored.
        let equal = format!(
            "{ALLERGIES}\n[[index]]\ntable = \"patients\"\ncolumn = \"bi_p\"\n\
             over = [\"given_names\"]\nlongest = 3\nbits = 12\n"
        );
        let (_, msg) = problem(&equal);
        assert!(msg.contains("a prefix index's; this one is equal"), "{msg}");
    }

    #[test]
    fn a_tokens_index_covers_one_name_or_text_and_names_its_slots() {
        let tokens = |column: &str, over: &str, slots: &str, bits: u16| {
            format!(
                "{ALLERGIES}\n[[index]]\ntable = \"patients\"\ncolumn = \"{column}\"\n\
                 over = [{over}]\nkind = \"tokens\"\n{slots}bits = {bits}\n"
            )
        };
        let s = Schema::builtin()
            .extend(&tokens("bi_w", "\"family_name\"", "", 15))
            .unwrap();
        let i = s.table("patients").unwrap().index("bi_w").unwrap();
        assert_eq!(
            (i.kind, i.slots, i.prefix),
            (IndexKind::Tokens, Some(4), None)
        );
        assert_eq!((i.stored_len(), i.max_words()), (32, 16));
        assert_eq!(
            i.derived_columns(),
            ["bi_w__1", "bi_w__2", "bi_w__3", "bi_w__4", "bi_w__more"]
        );
        let s = Schema::builtin()
            .extend(&tokens("bi_w", "\"family_name\"", "slots = 8\n", 15))
            .unwrap();
        assert_eq!(
            s.table("patients").unwrap().index("bi_w").unwrap().slots,
            Some(8)
        );
        for (column, over, slots, bits, want) in [
            (
                "bi_w",
                "\"born\"",
                "",
                15,
                "one encrypted column of kind name or text",
            ),
            (
                "bi_w",
                "\"family_name\", \"given_names\"",
                "",
                15,
                "one encrypted column of kind name or text",
            ),
            (
                "bi_w",
                "\"family_name\"",
                "slots = 0\n",
                15,
                "slots must be 1..=8",
            ),
            (
                "bi_w",
                "\"family_name\"",
                "slots = 9\n",
                15,
                "slots must be 1..=8",
            ),
            (
                "bi_a_very_long_index_name_x",
                "\"family_name\"",
                "",
                15,
                "at most 24 characters",
            ),
        ] {
            let p = problems(&tokens(column, over, slots, bits));
            assert!(
                p.iter()
                    .any(|p| p.line.is_some() && p.message.contains(want)),
                "{column} {over} {slots}: {p:?}"
            );
        }
        // Slots on another kind are refused, not ignored.
        let equal = format!(
            "{ALLERGIES}\n[[index]]\ntable = \"patients\"\ncolumn = \"bi_p\"\n\
             over = [\"given_names\"]\nslots = 3\nbits = 12\n"
        );
        let (_, msg) = problem(&equal);
        assert!(
            msg.contains("slots are a tokens index's; this one is equal"),
            "{msg}"
        );
    }

    #[test]
    fn indexes_of_few_values_or_that_single_a_row_out_need_a_danger_option() {
        // A year of birth alone: about 120 values, named by frequency.
        let year = format!(
            "{ALLERGIES}\n[[index]]\ntable = \"patients\"\ncolumn = \"bi_y\"\n\
             over = [\"born\"]\nkind = \"year\"\nbits = 8\n"
        );
        let (line, msg) = problem(&year);
        assert!(line.is_some(), "{msg}");
        assert!(
            msg.contains("born alone, which holds about 120 values"),
            "{msg}"
        );
        assert!(Schema::builtin()
            .extend(&format!("{year}danger_low_cardinality = true\n"))
            .is_ok());
        // Two 15-bit indexes on 100,000 rows: 30 bits side by side.
        let two = "format = 2\n[[table]]\nname = \"staff\"\n\
             [[column]]\ntable = \"staff\"\ncolumn = \"name\"\nscope = \"identity\"\n\
             kind = \"name\"\nmax_bytes = 64\npadding = { block = 16 }\n\
             [[column]]\ntable = \"staff\"\ncolumn = \"born\"\nscope = \"identity\"\n\
             kind = \"date\"\nmax_bytes = 10\npadding = { block = 16 }\n\
             [[index]]\ntable = \"staff\"\ncolumn = \"bi_name\"\nover = [\"name\"]\nbits = 15\n\
             [[index]]\ntable = \"staff\"\ncolumn = \"bi_born\"\nover = [\"born\"]\nbits = 15\n";
        let (line, msg) = problem(two);
        // On the table's last index.
        let last = two
            .lines()
            .collect::<Vec<_>>()
            .iter()
            .rposition(|l| *l == "[[index]]")
            .unwrap()
            + 1;
        assert!(line.is_some_and(|l| l >= last), "{line:?} {msg}");
        assert!(msg.contains("the 2 indexes of staff"), "{msg}");
        assert!(msg.contains("single a row out"), "{msg}");
        let acknowledged = two.replace(
            "name = \"staff\"\n",
            "name = \"staff\"\ndanger_single_out = true\n",
        );
        let s = Schema::builtin().extend(&acknowledged).unwrap();
        assert!(s.table("staff").unwrap().danger_single_out);
        // One index alone keeps its crowd: accepted as it is.
        let one = two
            .rsplit_once("[[index]]")
            .map(|(head, _)| head.to_owned())
            .unwrap();
        assert!(Schema::builtin().extend(&one).is_ok());
        // The built-in patients say they know.
        assert!(
            Schema::builtin()
                .table("patients")
                .unwrap()
                .danger_single_out
        );
    }

    #[test]
    fn syntax_and_unknown_fields_name_their_line() {
        let (line, msg) = problem(&ALLERGIES.replace("max_bytes = 200", "max_bytes = 200 200"));
        assert_eq!(line, Some(12));
        assert!(!msg.is_empty());
        let (line, msg) = problem(&ALLERGIES.replace("max_bytes = 200", "max_byte = 200"));
        assert_eq!(line, Some(12), "{msg}");
        assert!(msg.contains("max_byte"), "{msg}");
        let (line, msg) = problem(&ALLERGIES.replace("format = 2", "format = 1"));
        assert_eq!(line, Some(1));
        assert!(msg.contains("format = 2"), "{msg}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = ALLERGIES
            .replace("scope = \"clinical\"", "scope = \"nope\"")
            .replace("bits = 12", "bits = 0");
        let p = problems(&text);
        assert_eq!(p.len(), 3, "{p:?}");
        assert_eq!(
            p.iter().map(|p| p.line).collect::<Vec<_>>(),
            [Some(10), Some(18), Some(32)]
        );
    }

    #[test]
    fn encrypted_and_plain_fields_do_not_mix() {
        let (_, msg) = problem(
            &ALLERGIES.replace("plain = \"date\"", "plain = \"date\"\nscope = \"clinical\""),
        );
        assert!(msg.contains("not both"), "{msg}");
        let (_, msg) =
            problem(&ALLERGIES.replace("plain = \"date\"", "plain = \"date\"\nmax_bytes = 3"));
        assert!(msg.contains("plain"), "{msg}");
        let (_, msg) = problem(&ALLERGIES.replace("max_bytes = 200\n", ""));
        assert!(msg.contains("max_bytes"), "{msg}");
        let (_, msg) = problem(&ALLERGIES.replace("plain = \"date\"", "plain = \"ref\""));
        assert!(msg.contains("references"), "{msg}");
        let ok = ALLERGIES.replace(
            "plain = \"date\"",
            "plain = \"ref\"\nreferences = \"patients\"\noptional = true",
        );
        let s = Schema::builtin().extend(&ok).unwrap();
        let c = s.table("allergies").unwrap().column("recorded_on").unwrap();
        assert_eq!(c.ty, ColumnType::Plain(PlainType::Ref("patients".into())));
        assert!(c.optional);
        let partial = ALLERGIES.replace("plain = \"date\"", "plain = \"date\"\npartial = true");
        let s = Schema::builtin().extend(&partial).unwrap();
        assert_eq!(
            s.table("allergies")
                .unwrap()
                .column("recorded_on")
                .unwrap()
                .ty,
            ColumnType::Plain(PlainType::Date { partial: true })
        );
        let (_, msg) =
            problem(&ALLERGIES.replacen("kind = \"text\"", "kind = \"text\"\npartial = true", 1));
        assert!(msg.contains("partial"), "{msg}");
    }
}
