//! The schema language: which tables a vault holds, which of their columns
//! are encrypted (under which scope, with which limits and padding), which
//! blind indexes exist, and which table each row belongs to.
//!
//! The language is written down in `schema/LANGUAGE.md`; medvault's own
//! tables (`patients`, `notes`) are declared in it in `schema/policy.toml`,
//! and an application adds its tables, and columns and indexes on the
//! built-in tables, with a file of its own:
//!
//! ```
//! use medvault::schema::Schema;
//!
//! let app = r#"
//! format = 2
//!
//! [[table]]
//! name = "allergies"
//! parent = "patients"
//!
//! [[column]]
//! table = "allergies"
//! column = "substance"
//! scope = "clinical"
//! kind = "text"
//! max_bytes = 200
//! padding = { block = 32 }
//!
//! [[index]]
//! table = "allergies"
//! column = "bi_substance"
//! over = ["substance"]
//! bits = 12
//! "#;
//! let schema = Schema::builtin().extend(app)?;
//! let allergies = schema.table("allergies").expect("declared");
//! assert_eq!(allergies.parent.as_ref().map(|p| p.column.as_str()), Some("parent_id"));
//! # Ok::<(), medvault::Error>(())
//! ```
//!
//! Every rule the parser enforces is in [`parse`]; every change an
//! application may make to the schema in force is in [`change`].

pub mod change;
pub mod parse;
pub mod plan;

use std::fmt;
use std::sync::OnceLock;

use crate::crypto::padding::Padding;
use crate::error::Result;

/// The built-in schema text shipped with this build (`schema/policy.toml`).
pub const BUILTIN_TOML: &str = include_str!("../../schema/policy.toml");

/// The schema language's version, the `format` every file states.
pub const FORMAT: i64 = 2;

/// Scopes a column may name (`scope = "..."`), besides `per-row`.
pub const NAMED_SCOPES: [&str; 3] = ["identity", "clinical", "billing"];

/// Every table, column and index name matches `[a-z][a-z0-9_]*` and is at
/// most this long, so `<table>__<index>` SQL index names fit MySQL's 64.
/// (Names never hold `__`.)
pub const MAX_IDENT: usize = 30;

/// The largest `max_bytes` an encrypted column may declare (16 MiB less
/// 1 KiB; the padded value and the envelope must fit [`MAX_CELL_BYTES`]).
pub const MAX_FIELD_BYTES: usize = 16 * 1024 * 1024 - 1024;

/// The largest envelope one cell may hold: a MySQL `MEDIUMBLOB`
/// (2^24 - 1 bytes).
pub const MAX_CELL_BYTES: usize = (1 << 24) - 1;

/// The most columns one blind index may cover.
pub const MAX_INDEX_PARTS: usize = 4;

/// A whole schema: the built-in tables and an application's.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    /// Planned number of patients: the population blind-index bits are
    /// checked against where a table names no `planned_rows`.
    pub planned_population: u64,
    /// Tables, built-in first, each in declaration order.
    pub tables: Vec<Table>,
}

/// One table.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Name.
    pub name: String,
    /// The table each row belongs to, if any.
    pub parent: Option<Parent>,
    /// Planned number of rows, for the blind-index planner (defaults to
    /// the schema's `planned_population`).
    pub planned_rows: Option<u64>,
    /// Declared columns, in order (the implied `id`, parent and `scope_id`
    /// columns are not listed: see [`Table::implied_columns`]).
    pub columns: Vec<Column>,
    /// Blind indexes, in order.
    pub indexes: Vec<Index>,
    /// Declared by medvault (`schema/policy.toml`), not by an application.
    pub builtin: bool,
    /// Its indexes may single a row out, side by side, and the schema
    /// says it knows (`danger_single_out`, LANGUAGE.md §6.1).
    pub danger_single_out: bool,
}

/// A table's parent: each row belongs to one row of `table`, whose id is
/// in `column`; deleting the parent row deletes its children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parent {
    /// Parent table.
    pub table: String,
    /// Column holding the parent row's id (`parent_id` unless declared).
    pub column: String,
}

/// One declared column.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// Name.
    pub name: String,
    /// May hold no value (SQL `NULL`).
    pub optional: bool,
    /// Plain or encrypted, and what it holds.
    pub ty: ColumnType,
    /// Declared by medvault, not by an application.
    pub builtin: bool,
}

/// What a column holds.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnType {
    /// A value stored as it is, readable by whoever reads the database.
    Plain(PlainType),
    /// A field envelope (FORMAT.md §1).
    Encrypted(Encrypted),
}

/// Types of plain columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlainType {
    /// UTF-8 text.
    Text,
    /// A signed 64-bit integer.
    Integer,
    /// A calendar date, `YYYY-MM-DD` (or `YYYY` / `YYYY-MM` if partial).
    Date {
        /// A year, or a year and month, are accepted too.
        partial: bool,
    },
    /// Seconds since the Unix epoch.
    Timestamp,
    /// True or false.
    Boolean,
    /// Bytes.
    Bytes,
    /// The id of a row of the named table.
    Ref(String),
}

/// An encrypted column's policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Encrypted {
    /// Whose key encrypts it.
    pub scope: ScopeRule,
    /// The value kind: its type and its canonical form for indexes.
    pub kind: Kind,
    /// Largest plaintext accepted, in bytes.
    pub max_bytes: usize,
    /// Length padding before encryption.
    pub padding: Padding,
}

/// Which scope's key encrypts a column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScopeRule {
    /// Always this scope.
    Named(String),
    /// Each row names its scope (in its `scope_id` column).
    PerRow,
}

impl fmt::Display for ScopeRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeRule::Named(s) => f.write_str(s),
            ScopeRule::PerRow => f.write_str("per-row"),
        }
    }
}

/// Value kinds of encrypted columns. The kind fixes the value's type and
/// the canonical form a blind index is computed over (FORMAT.md §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A personal name: accents, case, hyphens and apostrophes folded.
    Name,
    /// Free text: case and runs of white space folded.
    Text,
    /// A code (insurance number, sex, ICD-10): white space, `-`, `.` and
    /// `/` removed, upper case.
    Code,
    /// A calendar date (`YYYY-MM-DD`, or partial when declared so).
    Date {
        /// A year, or a year and month, are accepted too.
        partial: bool,
    },
    /// A signed 64-bit integer, in decimal.
    Integer,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Name => "name",
            Kind::Text => "text",
            Kind::Code => "code",
            Kind::Date { partial: false } => "date",
            Kind::Date { partial: true } => "partial date",
            Kind::Integer => "integer",
        })
    }
}

impl fmt::Display for PlainType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlainType::Text => f.write_str("text"),
            PlainType::Integer => f.write_str("integer"),
            PlainType::Date { partial: false } => f.write_str("date"),
            PlainType::Date { partial: true } => f.write_str("partial date"),
            PlainType::Timestamp => f.write_str("timestamp"),
            PlainType::Boolean => f.write_str("boolean"),
            PlainType::Bytes => f.write_str("bytes"),
            PlainType::Ref(t) => write!(f, "reference to {t}"),
        }
    }
}

/// What a blind index keys of the canonical values of its columns
/// (`schema/LANGUAGE.md` §6, `schema/FORMAT.md` §4.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IndexKind {
    /// The canonical values themselves: rows whose columns are equal.
    #[default]
    Equal,
    /// The year (`YYYY`) of one date column: rows of the same year.
    Year,
    /// The year and month (`YYYY-MM`) of one date column; a partial date
    /// of a year alone has none.
    YearMonth,
    /// The Double Metaphone code (primary, at most 6 letters) of one name
    /// column, its separators removed: names that sound alike ("Dupond",
    /// "Dupont"). A name without a sounded letter `a`..`z` has none.
    Phonetic,
    /// The first characters of one name, text or code column, at each
    /// length of [`Index::prefix`]: rows whose value starts with what was
    /// typed ("dup" finds Dupont and Dupond). One stored value chains the
    /// keyed prefix of every length, so one range of the SQL index finds
    /// them (FORMAT.md §4.4).
    Prefix,
    /// Each word of one name or text column: rows one of whose words is
    /// the one asked for ("marie" finds "Élodie Marie"). One stored value
    /// holds the keyed words side by side; the store derives a column and
    /// an SQL index for each of the first [`Index::slots`] of them
    /// (FORMAT.md §4.5).
    Tokens,
    /// The canonical values themselves, keyed to the whole 256-bit tag
    /// (no truncation), under a unique constraint on both stores: no two
    /// rows hold the same values (an insurance number). A write that would
    /// is `Error::NotUnique`, under every live epoch of the scope
    /// (FORMAT.md §4.6).
    Unique,
}

impl IndexKind {
    /// Every kind, in the order the language lists them.
    pub const ALL: [IndexKind; 7] = [
        IndexKind::Equal,
        IndexKind::Year,
        IndexKind::YearMonth,
        IndexKind::Phonetic,
        IndexKind::Prefix,
        IndexKind::Tokens,
        IndexKind::Unique,
    ];

    /// The bits of a unique index's tag: all of HMAC-SHA256's.
    pub const UNIQUE_BITS: u16 = 256;

    /// The name in the schema language.
    pub fn as_str(self) -> &'static str {
        match self {
            IndexKind::Equal => "equal",
            IndexKind::Year => "year",
            IndexKind::YearMonth => "year-month",
            IndexKind::Phonetic => "phonetic",
            IndexKind::Prefix => "prefix",
            IndexKind::Tokens => "tokens",
            IndexKind::Unique => "unique",
        }
    }

    /// The kind named `s` in the schema language.
    pub fn parse(s: &str) -> Option<IndexKind> {
        IndexKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether it covers one date column (and not any columns).
    pub fn of_a_date(self) -> bool {
        matches!(self, IndexKind::Year | IndexKind::YearMonth)
    }

    /// What it keys of the canonical value `c` of a column it covers;
    /// `None` if the value has no such part. A prefix index keys the whole
    /// value's prefixes, one per length ([`crate::index::value`]): its part
    /// is the whole value, as a tokens index's is the words of the value,
    /// one space between each ([`crate::index::canonical::words`]).
    pub fn part(self, c: &str) -> Option<Part<'_>> {
        match self {
            IndexKind::Equal | IndexKind::Prefix | IndexKind::Tokens | IndexKind::Unique => {
                Some(Part::Of(c))
            }
            IndexKind::Year => c.get(..4).map(Part::Of),
            IndexKind::YearMonth => c.get(..7).map(Part::Of),
            IndexKind::Phonetic => crate::index::canonical::phonetic(c).map(Part::Made),
        }
    }
}

/// What an index keys of one canonical value: a slice of it, or a value
/// made from it (a phonetic code), wiped when dropped. Its `Debug` shows
/// only its length: it is derived from patient data.
#[derive(PartialEq, Eq)]
pub enum Part<'a> {
    /// A slice of the canonical value.
    Of(&'a str),
    /// A value computed from it.
    Made(zeroize::Zeroizing<String>),
}

impl Part<'_> {
    /// The part as text.
    pub fn as_str(&self) -> &str {
        match self {
            Part::Of(s) => s,
            Part::Made(s) => s.as_str(),
        }
    }
}

impl fmt::Debug for Part<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Part({} bytes)", self.as_str().len())
    }
}

impl AsRef<str> for Part<'_> {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<&str> for Part<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for IndexKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One blind index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Index {
    /// The column holding the index value (by convention `bi_...`).
    pub name: String,
    /// The encrypted columns whose canonical values it covers, in order;
    /// all of one named scope.
    pub over: Vec<String>,
    /// What it keys of them.
    pub kind: IndexKind,
    /// Bits kept of the HMAC.
    pub bits: u16,
    /// Declared by medvault, not by an application.
    pub builtin: bool,
    /// It covers one column of few values, and the schema says it knows
    /// (`danger_low_cardinality`, LANGUAGE.md §6.1).
    pub danger_low_cardinality: bool,
    /// The prefix lengths a [`IndexKind::Prefix`] index keys; `None` for
    /// every other kind.
    pub prefix: Option<Lengths>,
    /// The words of a row a [`IndexKind::Tokens`] index gives an SQL index
    /// each (1 to [`MAX_SLOTS`]); a row with more words is found through
    /// its overflow column. `None` for every other kind.
    pub slots: Option<u8>,
}

/// The most words of a row a tokens index gives an SQL index each.
pub const MAX_SLOTS: u8 = 8;

/// The prefix lengths, in characters, a prefix index keys: every length
/// from `shortest` to `longest`. A search types at least `shortest`
/// characters; one longer than `longest` is found through the longest
/// prefix and the rest compared after decryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lengths {
    /// The shortest prefix keyed (at least 1).
    pub shortest: u8,
    /// The longest prefix keyed (at most [`MAX_PREFIX`]).
    pub longest: u8,
}

impl Lengths {
    /// How many prefixes one value holds.
    pub fn count(self) -> usize {
        usize::from(self.longest.saturating_sub(self.shortest)) + 1
    }
}

/// The longest prefix an index may key.
pub const MAX_PREFIX: u8 = 16;

/// The most bytes one stored index value may take (a MySQL
/// `VARBINARY(32)`): a prefix index's lengths times its bytes per value
/// stay within it.
pub const MAX_INDEX_BYTES: usize = 32;

impl Index {
    /// Stored bytes of one keyed value (a prefix index stores one per
    /// length, side by side: [`Index::stored_len`]).
    pub fn value_len(&self) -> usize {
        usize::from(self.bits).div_ceil(8)
    }

    /// Stored bytes of the index's value in a row, at most: a tokens
    /// index holds as many keyed words as [`MAX_INDEX_BYTES`] takes.
    pub fn stored_len(&self) -> usize {
        if self.kind == IndexKind::Tokens {
            return self.max_words() * self.value_len();
        }
        self.value_len() * self.prefix.map_or(1, Lengths::count)
    }

    /// The most keyed words a value of a tokens index holds: as many as
    /// [`MAX_INDEX_BYTES`] takes. A value of more keeps the first ones in
    /// byte order ([`crate::index::keyed_words`]): more than its slots, so
    /// it is a candidate of every search.
    pub fn max_words(&self) -> usize {
        MAX_INDEX_BYTES / self.value_len().max(1)
    }

    /// The columns the store derives of a tokens index's column: one per
    /// slot, the keyed word at that place (`<index>__<k>`, k from 1), and
    /// `<index>__more`, whether the value holds more words than slots.
    /// Empty for every other kind.
    pub fn derived_columns(&self) -> Vec<String> {
        match self.slots {
            Some(n) => (1..=n)
                .map(|k| format!("{}__{k}", self.name))
                .chain(Some(format!("{}__more", self.name)))
                .collect(),
            None => Vec::new(),
        }
    }

    /// The parts its value is computed over, from the canonical values of
    /// its columns in order; `None` if a value has no part this kind keys
    /// (the index value is then that of one empty part, FORMAT.md §4.2).
    pub fn parts<'a>(&self, canonical: &[&'a str]) -> Option<Vec<Part<'a>>> {
        canonical.iter().map(|c| self.kind.part(c)).collect()
    }
}

/// A column a table has without declaring it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Implied<'a> {
    /// `id`: 16 random bytes made by the client (FORMAT.md §1).
    Id,
    /// The parent row's id.
    Parent(&'a Parent),
    /// `scope_id`: the scope of a row whose columns are `per-row`.
    ScopeId,
}

impl Implied<'_> {
    /// The column's name.
    pub fn name(&self) -> &str {
        match self {
            Implied::Id => "id",
            Implied::Parent(p) => &p.column,
            Implied::ScopeId => "scope_id",
        }
    }
}

impl Table {
    /// A declared column.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// A blind index.
    pub fn index(&self, name: &str) -> Option<&Index> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// The columns medvault fills in itself and a caller may not give:
    /// on `patients`, who created the row and when, and when it was last
    /// changed; on `notes`, the author, the time and the order of writing
    /// (`seq`, numbered by the store). Declared tables have none.
    pub fn filled_columns(&self) -> &'static [&'static str] {
        match (self.builtin, self.name.as_str()) {
            (true, "patients") => &["author", "created_at", "updated_at"],
            (true, "notes") => &["author", "created_at", "seq"],
            _ => &[],
        }
    }

    /// The column the store numbers in the order rows are written
    /// (`notes.seq`, FORMAT.md §9): left out of what a client writes, and
    /// numbered by the insert statement itself.
    pub fn numbered_column(&self) -> Option<&'static str> {
        match (self.builtin, self.name.as_str()) {
            (true, "notes") => Some("seq"),
            _ => None,
        }
    }

    /// How this table's cells are bound to their place (FORMAT.md §1):
    /// the built-in tables keep envelope v1, whose row component is the
    /// row id (`patients`) or the note id, patient id and author
    /// (`notes`), so vaults written before format 2 stay readable; declared
    /// tables use envelope v2 (table, column, row id, parent id).
    pub fn cell_rule(&self) -> CellRule {
        match (self.builtin, self.name.as_str()) {
            (true, "notes") => CellRule::V1Note,
            (true, _) => CellRule::V1,
            _ => CellRule::V2,
        }
    }

    /// Whether some column's scope is `per-row` (the table then has a
    /// `scope_id` column).
    pub fn row_scoped(&self) -> bool {
        self.columns.iter().any(|c| {
            matches!(
                &c.ty,
                ColumnType::Encrypted(Encrypted {
                    scope: ScopeRule::PerRow,
                    ..
                })
            )
        })
    }

    /// The columns every row has without declaring them, in table order:
    /// `id`, then the parent's id, then `scope_id` if row-scoped.
    pub fn implied_columns(&self) -> Vec<Implied<'_>> {
        let mut v = vec![Implied::Id];
        if let Some(p) = &self.parent {
            v.push(Implied::Parent(p));
        }
        if self.row_scoped() {
            v.push(Implied::ScopeId);
        }
        v
    }

    /// The population this table's blind indexes are planned for.
    pub fn population(&self, schema: &Schema) -> u64 {
        self.planned_rows.unwrap_or(schema.planned_population)
    }

    /// The encrypted columns, with their policy.
    pub fn encrypted(&self) -> impl Iterator<Item = (&Column, &Encrypted)> {
        self.columns.iter().filter_map(|c| match &c.ty {
            ColumnType::Encrypted(e) => Some((c, e)),
            ColumnType::Plain(_) => None,
        })
    }
}

/// Which associated-data rule a table's envelopes follow
/// ([`Table::cell_rule`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellRule {
    /// Envelope v1, row component = the row id (FORMAT.md §1.1).
    V1,
    /// Envelope v1, row component = note id ‖ patient id ‖ author
    /// (FORMAT.md §1.2).
    V1Note,
    /// Envelope v2: table, column, row id and parent id, length-prefixed
    /// (FORMAT.md §1.4).
    V2,
}

/// A table or column name as a `&'static str`, for errors that name the
/// cell (`Error::Tampered`). Each distinct name is stored once for the
/// life of the process; names are schema identifiers (at most 30 bytes,
/// from a validated schema), so this holds a few hundred bytes at most.
pub(crate) fn intern(name: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut set = NAMES
        .get_or_init(|| Mutex::new(HashSet::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(s) = set.get(name) {
        return s;
    }
    let s: &'static str = Box::leak(name.to_owned().into_boxed_str());
    set.insert(s);
    s
}

/// A list of names as a `&'static` slice, stored once per distinct list
/// (as [`intern`]): the column lists of declared tables, for the checked
/// row decoder.
pub(crate) fn intern_list(names: &[String]) -> &'static [&'static str] {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static LISTS: OnceLock<Mutex<HashMap<Vec<String>, &'static [&'static str]>>> = OnceLock::new();
    let mut map = LISTS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(l) = map.get(names) {
        return l;
    }
    let list: Vec<&'static str> = names.iter().map(|n| intern(n)).collect();
    let list: &'static [&'static str] = Box::leak(list.into_boxed_slice());
    map.insert(names.to_vec(), list);
    list
}

impl Schema {
    /// The schema compiled into this build: medvault's own tables.
    pub fn builtin() -> &'static Schema {
        static S: OnceLock<Schema> = OnceLock::new();
        // Invariant: the shipped file parses; `builtin_parses` tests it.
        S.get_or_init(|| {
            parse::parse_builtin(BUILTIN_TOML).expect("schema/policy.toml is a valid schema")
        })
    }

    /// This schema with an application's declarations (`format = 2` TOML,
    /// `schema/LANGUAGE.md`) added. Every problem found is reported, each
    /// with the line of the application's file it is on.
    pub fn extend(&self, text: &str) -> Result<Schema> {
        parse::extend(self, text)
    }

    /// A table.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The tables whose parent is `name`.
    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Table> + 'a {
        self.tables
            .iter()
            .filter(move |t| t.parent.as_ref().is_some_and(|p| p.table == name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_parses() {
        let s = Schema::builtin();
        let p = s.table("patients").unwrap();
        assert!(p.builtin && p.parent.is_none());
        assert_eq!(
            p.index("bi_family_born").unwrap().over,
            ["family_name", "born"]
        );
        let n = s.table("notes").unwrap();
        assert_eq!(n.parent.as_ref().unwrap().column, "patient_id");
        assert!(n.row_scoped());
        assert_eq!(
            n.implied_columns()
                .iter()
                .map(|c| c.name().to_string())
                .collect::<Vec<_>>(),
            ["id", "patient_id", "scope_id"]
        );
        assert_eq!(s.children("patients").count(), 1);
    }

    #[test]
    fn shipped_bits_follow_the_planner() {
        let s = Schema::builtin();
        let want = crate::index::recommend_bits(s.planned_population);
        for t in &s.tables {
            for i in &t.indexes {
                // A year index has as many classes as years, whatever its
                // bits: 8 keep a lifetime's years apart.
                let want = if i.kind == IndexKind::Year { 8 } else { want };
                assert_eq!(i.bits, want, "{}.{}", t.name, i.name);
            }
        }
    }
}
