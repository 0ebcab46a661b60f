//! The generic row API: the tables an application declares
//! (`schema/LANGUAGE.md`), read and written through the schema in force.
//!
//! Every encrypted cell is a cell envelope v2 (FORMAT.md §1.4) bound to
//! its table, column, row and parent row; every blind index is computed
//! from the value's canonical form for its kind (FORMAT.md §4.1). A search
//! computes the index under every epoch of the scope the user holds, reads
//! the candidates, decrypts them and keeps exact matches only. Columns of
//! a scope the user holds no key for come back withheld, not as an error.
//!
//! ```no_run
//! # async fn demo(s: &medvault::Session, patient: medvault::Id) -> medvault::Result<()> {
//! use medvault::vault::rows::{NewRow, Value};
//!
//! let allergies = s.table("allergies").await?;
//! let id = allergies
//!     .insert(
//!         &NewRow::child_of(patient)
//!             .set("substance", "Penicillin")
//!             .set("reaction", "Hives")
//!             .set("recorded_on", "2019-05"),
//!     )
//!     .await?;
//! let found = allergies.find(&[("substance", Value::from("PENICILLIN"))]).await?;
//! assert_eq!(found[0].id, id);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

mod auth;
mod order;

pub(crate) use auth::read_again;
pub(crate) use auth::replaced_keys;
pub use auth::Authorship;
pub(crate) use auth::PendingBatch;
pub use order::Order;

use serde::Serialize;
use zeroize::Zeroizing;

use super::{authorship, Session};
use crate::crypto::envelope::{self, CellAd, Header};
use crate::crypto::kdf;
use crate::crypto::padding::unpad;
use crate::crypto::secret::IndexKey;
use crate::error::{Error, Result};
use crate::index::{self, canonical};
use crate::records::Id;
use crate::schema::{
    self, CellRule, Column, ColumnType, Encrypted, Index, IndexKind, Kind, PlainType, Schema,
    ScopeRule, Table,
};
use crate::sql::{rows as stmt, Cell, RowDecoder};
use crate::store::{RowId, Value as StoreValue};

/// The largest page [`RowTable::list`] returns.
pub const MAX_PAGE: u32 = 1000;

/// `insert_many` of more rows than this streams them to the store in
/// chunks of this many, sealing the next while the store writes one.
pub(crate) const STREAM_CHUNK: usize = 500;

/// A column's value. `Debug` shows the kind and size, never the value.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    /// No value (an optional column).
    Null,
    /// Text: plain `text` and `date` columns, encrypted `name`, `text`,
    /// `code` and `date` columns.
    Text(String),
    /// An integer: plain `integer` and `timestamp`, encrypted `integer`.
    Integer(i64),
    /// A plain `boolean`.
    Boolean(bool),
    /// Plain `bytes`.
    Bytes(Vec<u8>),
    /// A row id: plain `ref` columns.
    Id(Id),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("Null"),
            Value::Text(t) => write!(f, "Text({} bytes)", t.len()),
            Value::Integer(_) => f.write_str("Integer(..)"),
            Value::Boolean(_) => f.write_str("Boolean(..)"),
            Value::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Value::Id(_) => f.write_str("Id(..)"),
        }
    }
}

impl Drop for Value {
    fn drop(&mut self) {
        match self {
            Value::Text(t) => zeroize::Zeroize::zeroize(t),
            Value::Bytes(b) => zeroize::Zeroize::zeroize(b),
            Value::Integer(i) => *i = 0,
            _ => {}
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Integer(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Boolean(v)
    }
}

impl From<Id> for Value {
    fn from(v: Id) -> Value {
        Value::Id(v)
    }
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_none(),
            Value::Text(t) => s.serialize_str(t),
            Value::Integer(i) => s.serialize_i64(*i),
            Value::Boolean(b) => s.serialize_bool(*b),
            Value::Bytes(b) => s.serialize_str(&hex::encode(b)),
            Value::Id(id) => id.serialize(s),
        }
    }
}

/// A row to insert.
#[derive(Clone, Debug, Default)]
pub struct NewRow {
    /// The parent row, for a table with a parent.
    pub parent: Option<Id>,
    /// The row's scope, for a table with `per-row` columns.
    pub scope: Option<String>,
    /// Values by column name; an optional column left out is NULL.
    pub values: BTreeMap<String, Value>,
}

impl NewRow {
    /// A row of a table without a parent.
    pub fn new() -> NewRow {
        NewRow::default()
    }

    /// A row belonging to `parent`.
    pub fn child_of(parent: Id) -> NewRow {
        NewRow {
            parent: Some(parent),
            ..NewRow::default()
        }
    }

    /// Sets the row's scope (tables with `per-row` columns).
    pub fn scope(mut self, scope: &str) -> NewRow {
        self.scope = Some(scope.to_owned());
        self
    }

    /// Sets a column's value.
    pub fn set(mut self, column: &str, v: impl Into<Value>) -> NewRow {
        self.values.insert(column.to_owned(), v.into());
        self
    }
}

/// A row read back. `Debug` shows column names, never values.
#[derive(Clone)]
pub struct Row {
    /// Its id.
    pub id: Id,
    /// Its parent row.
    pub parent: Option<Id>,
    /// Its scope, for a table with `per-row` columns.
    pub scope: Option<String>,
    /// Every readable column's value (NULL included), by name.
    pub values: BTreeMap<String, Value>,
    /// Encrypted columns of a scope this user holds no key for.
    pub withheld: Vec<String>,
    /// Who vouches for the row (FORMAT.md §5.8): a row whose stored
    /// authentication does not check is never returned
    /// ([`Error::Forged`]).
    pub authorship: Authorship,
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Row")
            .field("id", &self.id)
            .field("columns", &self.values.keys().collect::<Vec<_>>())
            .field("withheld", &self.withheld)
            .finish()
    }
}

impl Row {
    /// A column's value (`None` if withheld or not a column).
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.values.get(column)
    }

    /// A text column's value.
    pub fn text(&self, column: &str) -> Option<&str> {
        match self.values.get(column) {
            Some(Value::Text(t)) => Some(t),
            _ => None,
        }
    }

    /// The row as a JSON object: `id`, `parent` and `scope` where the table
    /// has them, every readable column by name, and `withheld`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("id".into(), self.id.to_string().into());
        if let Some(p) = &self.parent {
            m.insert("parent".into(), p.to_string().into());
        }
        if let Some(s) = &self.scope {
            m.insert("scope".into(), s.clone().into());
        }
        for (k, v) in &self.values {
            m.insert(
                k.clone(),
                serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
            );
        }
        if !self.withheld.is_empty() {
            m.insert("withheld".into(), self.withheld.clone().into());
        }
        serde_json::Value::Object(m)
    }

    /// The row as the application's own type, through serde: the fields of
    /// [`Row::to_json`].
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(self.to_json()).map_err(|e| Error::WrongType {
            table: "row".into(),
            column: "*".into(),
            expected: format!("the shape of the target type ({})", e.classify_kind()),
        })
    }
}

trait ClassifyKind {
    fn classify_kind(&self) -> &'static str;
}

impl ClassifyKind for serde_json::Error {
    /// serde's message can quote a value; only its category is kept.
    fn classify_kind(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Data => "a field of the wrong type or missing",
            _ => "malformed",
        }
    }
}

/// `f` over `items` on up to four threads (the cores there are): sealing
/// and opening are CPU work, and a page of rows is enough of it to use the
/// second core. Results keep the items' order.
fn par_map<T: Send, U: Send>(mut items: Vec<T>, f: impl Fn(T) -> U + Sync) -> Vec<U> {
    if items.len() < 64 {
        return items.into_iter().map(f).collect();
    }
    // Asked once: the standard library reads the cgroup files under /proc
    // and /sys on every call, which cost more than a short lookup.
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let threads = *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(4)
    });
    if threads < 2 {
        return items.into_iter().map(f).collect();
    }
    let per = items.len().div_ceil(threads);
    let mut chunks = Vec::with_capacity(threads);
    while items.len() > per {
        let rest = items.split_off(per);
        chunks.push(std::mem::replace(&mut items, rest));
    }
    chunks.push(items);
    let f = &f;
    std::thread::scope(|s| {
        let mut chunks = chunks.into_iter();
        let first = chunks.next().unwrap_or_default();
        let handles: Vec<_> = chunks
            .map(|c| s.spawn(move || c.into_iter().map(f).collect::<Vec<U>>()))
            .collect();
        let mut out: Vec<U> = first.into_iter().map(f).collect();
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// Which unique indexes [`RowTable::check_unique`] checks.
#[derive(Clone, Copy)]
pub(crate) enum Unique<'a> {
    /// Every one (new rows).
    Write,
    /// Those over a column of these changes, and those the row holds no
    /// value of yet (an update computes every index of the row).
    Update(&'a BTreeMap<String, Value>, &'a [&'a str]),
    /// This one, for rows it is being filled for (rows not filled yet are
    /// expected; each page is checked against the rows filled before it).
    Fill(&'a str),
}

/// What a search asks an index for.
#[derive(Clone, Copy)]
enum Probe<'a> {
    /// Rows holding the value of any of these forms (each the parts of
    /// one index value).
    Equal(&'a [Vec<&'a str>]),
    /// Rows of a prefix index whose value starts with this canonical
    /// prefix (at least the index's shortest length).
    Prefix(&'a str),
    /// Rows of a tokens index one of whose words is this one, and rows
    /// with more words than its slots.
    Word(&'a str),
}

/// The value index `idx` stores, under `key`, for the canonical values (or
/// words, for a tokens index) `canonical` of its columns
/// ([`index::value`]), as written.
fn keyed_value(key: &IndexKey, idx: &Index, canonical: &[&str]) -> StoreValue {
    StoreValue::Blob(index::value(key, idx, canonical).as_bytes().to_vec())
}

/// A cell still under an unknown epoch after the key state was read again
/// is not from a rotation: it is forged.
fn outdated_is_tampered(e: Error) -> Error {
    match e {
        Error::KeysOutdated { table, column } => Error::Tampered { table, column },
        e => e,
    }
}

/// Counts one more page in a row whose write found the key state moved
/// (nothing was written; the page is read again): [`Error::Concurrent`]
/// at the fourth. The count goes back to 0 after a page written.
pub(crate) fn moved_again(moved: &mut u32) -> Result<()> {
    *moved += 1;
    if *moved > 3 {
        return Err(Error::Concurrent("the key state"));
    }
    Ok(())
}

/// What one pass of a key rotation did to a table ([`RowTable::reseal`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Reseal {
    /// Rows read.
    pub seen: u64,
    /// Rows whose cells were sealed again.
    pub rewritten: u64,
    /// Stale rows another client changed between read and write.
    pub raced: u64,
    /// The callback stopped the pass.
    pub stopped: bool,
}

/// What `verify` learnt of one stored row ([`RowTable::verify_row`]).
pub(crate) struct Verified {
    /// The row, as far as this user reads it.
    pub row: Row,
    /// How many blind indexes were recomputed.
    pub checked: usize,
    /// The indexes whose stored value is not the recomputed one.
    pub wrong: Vec<String>,
    /// The indexes with no value where the row holds every column they
    /// cover: not filled yet (an index newer than the row, until
    /// `fill_indexes`), or removed.
    pub unfilled: Vec<String>,
    /// The indexes holding the value of the names' fold-1 form (written
    /// before format 10, until `fill_indexes`).
    pub fold1: usize,
    /// Why the row is forged, if it is.
    pub forged: Option<Error>,
}

/// One declared table of the schema in force, for reading and writing
/// rows. Made by [`Session::table`].
pub struct RowTable<'s> {
    s: &'s Session,
    schema: Arc<Schema>,
    name: String,
    /// The table's name and read columns as the row decoder takes them,
    /// made once (not per row).
    decoder_names: (&'static str, &'static [&'static str]),
    /// Every column a row is selected with ([`stmt::stored_columns`]):
    /// the read columns, the indexes, the row's authentication.
    stored_names: &'static [&'static str],
    /// Index keys derived so far, by (scope, epoch, index position): one
    /// HKDF per key, not per row.
    index_keys: std::sync::Mutex<std::collections::HashMap<(u32, u32, usize), Arc<IndexKey>>>,
    /// The schema version this table was opened under.
    version: u64,
    /// Per declared column: the id of its named scope, when the session
    /// knew it at the table's making.
    scope_ids: Vec<Option<u32>>,
    /// Per declared column: the position of its prepared key in an epoch's
    /// keys (the built-in schema's encrypted columns have one).
    prefixes: Vec<Option<usize>>,
}

impl Session {
    /// A declared table of the schema in force, or [`Error::UnknownTable`].
    /// A table this session does not know makes it read the schema in
    /// force again first ([`Session::reload_schema`]).
    ///
    /// The built-in tables are served too, with their own rules:
    /// - their envelopes stay v1 (FORMAT.md §1.1, §1.2), so rows written by
    ///   the patient API and by this one are the same rows;
    /// - medvault fills in who wrote a row and when
    ///   ([`Table::filled_columns`]); giving those is
    ///   [`Error::FilledByMedvault`];
    /// - a patient's `sex` is one of `F`, `M`, `X`, `U` and the family name
    ///   is not empty, as for [`Session::insert_patient`];
    /// - `notes` are only added ([`Error::AppendOnly`]), numbered in the
    ///   order written (`seq`).
    ///
    /// Columns an application added to `patients` (an insurance number)
    /// are read and written here.
    pub async fn table(&self, name: &str) -> Result<RowTable<'_>> {
        let mut schema = self.schema();
        if schema.table(name).is_none() {
            // Applied since this session logged in?
            self.reload_schema().await?;
            schema = self.schema();
        }
        if schema.table(name).is_none() {
            return Err(Error::UnknownTable(name.chars().take(64).collect()));
        }
        let (names, stored) = match schema.table(name) {
            Some(t) => (stmt::read_columns(t), stmt::stored_columns(t)),
            None => (Vec::new(), Vec::new()),
        };
        // Per column, resolved once for the table rather than per cell:
        // the scope id of a named scope, and the position of the column's
        // prepared key (built-in columns) in each epoch's keys.
        let (scope_ids, prefixes) = match schema.table(name) {
            Some(t) => {
                let ks = self.ks();
                t.columns
                    .iter()
                    .map(|c| {
                        let scope = match &c.ty {
                            ColumnType::Encrypted(Encrypted {
                                scope: ScopeRule::Named(n),
                                ..
                            }) => ks.scope_ids.get(n).copied(),
                            _ => None,
                        };
                        let prefix = self
                            .policy
                            .columns
                            .iter()
                            .position(|p| p.table == t.name && p.column == c.name);
                        (scope, prefix)
                    })
                    .unzip()
            }
            None => (Vec::new(), Vec::new()),
        };
        Ok(RowTable {
            s: self,
            version: self.schema_version(),
            decoder_names: (schema::intern(name), schema::intern_list(&names)),
            stored_names: schema::intern_list(&stored),
            schema,
            name: name.to_owned(),
            index_keys: std::sync::Mutex::new(std::collections::HashMap::new()),
            scope_ids,
            prefixes,
        })
    }
}

impl Session {
    /// Writes `chunks` chunks of statements, chunk `k` made by `make(k)`,
    /// in one transaction: all or nothing. One chunk goes to the store
    /// whole; more are streamed, so this core seals chunk k+1 while the
    /// store writes chunk k on the other. An error of `make` rolls the
    /// transaction back. `guard` ([`Session::write_guard`]) is checked
    /// inside the transaction, just before the commit.
    pub(crate) async fn write_chunks(
        &self,
        guard: &crate::store::Guard,
        chunks: usize,
        make: impl Fn(usize) -> Result<Vec<(String, Vec<StoreValue>)>>,
    ) -> Result<()> {
        if chunks <= 1 {
            let statements = if chunks == 1 { make(0)? } else { Vec::new() };
            if !statements.is_empty() {
                self.store.write_guarded(guard, statements).await?;
            }
            return Ok(());
        }
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let store = Arc::clone(&self.store);
        let guard = guard.clone();
        let writer = crate::runtime::handle()?
            .spawn(async move { store.write_stream(Some(guard), rx).await });
        let stopped = || Error::Store("a medvault worker task stopped".into());
        let mut sealed = Ok(());
        for k in 0..chunks {
            match make(k) {
                Ok(c) => {
                    if tx.send(Some(c)).await.is_err() {
                        break; // the writer stopped: its answer says why
                    }
                }
                Err(e) => {
                    sealed = Err(e);
                    break;
                }
            }
        }
        if sealed.is_ok() {
            // Commit; a writer that stopped already has its error.
            let _ = tx.send(None).await;
        }
        drop(tx);
        let written = writer.await.map_err(|_| stopped())?;
        sealed?;
        written.map(|_| ())
    }
}

/// One statement and its parameters.
type Statement = (String, Vec<StoreValue>);

/// Values medvault sets on a built-in row, by column, in place of the
/// caller's ([`RowTable::builtin_rules`]).
type Overrides = Vec<(&'static str, Value)>;

/// A value checked against its column: what is stored or sealed, and the
/// canonical form blind indexes are computed over.
struct Checked {
    bytes: Zeroizing<Vec<u8>>,
    canonical: Zeroizing<String>,
    /// Its words, one space between each (`canonical::words`): what a
    /// tokens index keys; the canonical form for other kinds of value.
    words: Zeroizing<String>,
}

impl Checked {
    /// What an index of `kind` computes its value over: the words for a
    /// tokens index, the canonical form for any other.
    fn part(&self, kind: IndexKind) -> &str {
        match kind {
            IndexKind::Tokens => &self.words,
            _ => &self.canonical,
        }
    }
}

impl RowTable<'_> {
    fn t(&self) -> &Table {
        // Invariant: `Session::table` checked the name against this schema.
        self.schema
            .table(&self.name)
            .expect("the table is in the schema it was looked up in")
    }

    fn unknown_column(&self, column: &str) -> Error {
        Error::UnknownColumn {
            table: self.name.clone(),
            column: column.chars().take(64).collect(),
        }
    }

    /// Opens a page of stored rows (on every core) and checks the store
    /// answered each row once, in increasing id order, after `after`.
    fn open_page(
        &self,
        rows: Vec<Vec<Cell>>,
        after: Option<Id>,
        expected: &'static str,
    ) -> Result<Vec<Row>> {
        let mut out: Vec<Row> = Vec::with_capacity(rows.len());
        for r in par_map(rows, |cells| self.open(cells)) {
            let r = r?;
            if after.is_some_and(|a| r.id <= a) || out.last().is_some_and(|p| r.id <= p.id) {
                return Err(self.bad_order(expected));
            }
            out.push(r);
        }
        Ok(out)
    }

    /// The interned name of the declared column at `k` (made once per
    /// table, not per cell): the read columns are the implied ones, then
    /// the declared ones in order.
    fn column_name(&self, k: usize) -> &'static str {
        let implied = self.decoder_names.1.len() - self.t().columns.len();
        self.decoder_names
            .1
            .get(implied + k)
            .copied()
            .unwrap_or("?")
    }

    fn bad_order(&self, expected: &'static str) -> Error {
        Error::BadStoredValue {
            table: self.decoder_names.0,
            column: "id",
            expected,
        }
    }

    /// A page of more rows than asked for (paging on it would never end).
    fn check_page_len(&self, got: usize, limit: u32) -> Result<()> {
        if got > limit as usize {
            return Err(Error::BadStoredValue {
                table: self.decoder_names.0,
                column: "*",
                expected: "at most the rows of a page",
            });
        }
        Ok(())
    }

    fn wrong(&self, column: &str, expected: impl Into<String>) -> Error {
        Error::WrongType {
            table: self.name.clone(),
            column: column.to_owned(),
            expected: expected.into(),
        }
    }

    /// The scope id of an encrypted column in a row of scope `row_scope`.
    fn scope_of(&self, e: &Encrypted, row_scope: Option<u32>) -> Result<u32> {
        match &e.scope {
            ScopeRule::Named(n) => self.s.scope_id(n),
            ScopeRule::PerRow => row_scope.ok_or_else(|| Error::MissingValue {
                table: self.name.clone(),
                column: "scope".into(),
            }),
        }
    }

    /// Checks an encrypted column's value: type, form, and (when `sized`:
    /// a value the caller gives, not one read back) size. A value stored
    /// before `max_bytes` was lowered is still read, searched and kept.
    fn check_encrypted(
        &self,
        c: &Column,
        e: &Encrypted,
        v: &Value,
        sized: bool,
    ) -> Result<Checked> {
        let (bytes, canonical) = match (e.kind, v) {
            (Kind::Integer, Value::Integer(i)) => {
                let s = canonical::integer(*i);
                (s.clone().into_bytes(), s)
            }
            (Kind::Integer, _) => return Err(self.wrong(&c.name, "an integer")),
            (kind, Value::Text(t)) => {
                let canonical = match kind {
                    Kind::Name => canonical::name(t),
                    Kind::Text => canonical::text(t),
                    Kind::Code => canonical::code(t),
                    Kind::Date { partial: false } => canonical::date(t.trim())?,
                    Kind::Date { partial: true } => canonical::partial_date(t.trim())?,
                    Kind::Integer => return Err(self.wrong(&c.name, "an integer")),
                };
                let stored = match kind {
                    Kind::Date { .. } => canonical.clone(),
                    _ => t.clone(),
                };
                (stored.into_bytes(), canonical)
            }
            (Kind::Date { .. }, _) => return Err(self.wrong(&c.name, "a date as text")),
            _ => return Err(self.wrong(&c.name, "text")),
        };
        if sized && bytes.len() > e.max_bytes {
            return Err(Error::TooLong {
                field: schema::intern(&c.name),
                len: bytes.len(),
                max: e.max_bytes,
            });
        }
        // Only a tokens index keys the words: computed for the columns one
        // covers (a name's words need fold 1; a text's are its canonical
        // form's).
        let tokens = self
            .t()
            .indexes
            .iter()
            .any(|i| i.kind == IndexKind::Tokens && i.over.first() == Some(&c.name));
        let words = match (tokens, e.kind, v) {
            (true, Kind::Name, Value::Text(t)) => canonical::words(e.kind, t),
            (true, _, _) => canonical.clone(),
            (false, _, _) => String::new(),
        };
        Ok(Checked {
            bytes: Zeroizing::new(bytes),
            canonical: Zeroizing::new(canonical),
            words: Zeroizing::new(words),
        })
    }

    fn plain_value(&self, c: &Column, p: &PlainType, v: &Value) -> Result<StoreValue> {
        Ok(match (p, v) {
            (PlainType::Text, Value::Text(t)) => StoreValue::Text(t.clone()),
            (PlainType::Date { partial }, Value::Text(t)) => StoreValue::Text(if *partial {
                canonical::partial_date(t.trim())?
            } else {
                canonical::date(t.trim())?
            }),
            (PlainType::Integer | PlainType::Timestamp, Value::Integer(i)) => StoreValue::Int(*i),
            (PlainType::Boolean, Value::Boolean(b)) => StoreValue::Int(i64::from(*b)),
            (PlainType::Bytes, Value::Bytes(b)) => StoreValue::Blob(b.clone()),
            (PlainType::Ref(_), Value::Id(id)) => StoreValue::Blob(id.as_bytes().to_vec()),
            (p, _) => return Err(self.wrong(&c.name, p.to_string())),
        })
    }

    /// The columns and values of an `INSERT` of `row` as `id`. Values of
    /// the columns `sized` names are checked against `max_bytes` (all of
    /// them for an insert, the changed ones for an update).
    fn encode(
        &self,
        row: &NewRow,
        overrides: &Overrides,
        kept: &[&str],
        id: &RowId,
        sized: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<StoreValue>> {
        let t = self.t();
        for k in row.values.keys() {
            if t.column(k).is_none() {
                return Err(self.unknown_column(k));
            }
        }
        let value_of = |name: &str| {
            overrides
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v)
                .or_else(|| row.values.get(name))
        };
        let mut vals = Vec::with_capacity(t.columns.len() + t.indexes.len() + 3);
        vals.push(StoreValue::Blob(id.to_vec()));
        let parent: Vec<u8> = match (&t.parent, &row.parent) {
            (Some(_), Some(pid)) => {
                vals.push(StoreValue::Blob(pid.as_bytes().to_vec()));
                pid.as_bytes().to_vec()
            }
            (Some(p), None) => {
                return Err(Error::MissingValue {
                    table: self.name.clone(),
                    column: p.column.clone(),
                })
            }
            (None, Some(_)) => return Err(Error::Refused("this table has no parent")),
            (None, None) => Vec::new(),
        };
        let row_scope = match (t.row_scoped(), &row.scope) {
            (true, Some(name)) => {
                let sid = self.s.scope_id(name)?;
                vals.push(StoreValue::Int(i64::from(sid)));
                Some(sid)
            }
            (true, None) => {
                return Err(Error::MissingValue {
                    table: self.name.clone(),
                    column: "scope".into(),
                })
            }
            (false, Some(_)) => return Err(Error::Refused("this table has no per-row scope")),
            (false, None) => None,
        };
        // The row component of a built-in table's envelopes (v1).
        let rule = t.cell_rule();
        let v1_row: Vec<u8> = match (rule, &row.parent, value_of("author")) {
            (CellRule::V1Note, Some(p), Some(Value::Text(author))) => {
                Session::note_ad(&Id(*id), p, author)
            }
            (CellRule::V1Note, _, _) => {
                return Err(Error::MissingValue {
                    table: self.name.clone(),
                    column: "author".into(),
                })
            }
            _ => id.to_vec(),
        };
        let numbered = t.numbered_column();
        let mut canon: BTreeMap<&str, Checked> = BTreeMap::new();
        let null = Value::Null;
        for (k, c) in t
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| Some(c.name.as_str()) != numbered)
        {
            if kept.contains(&c.name.as_str()) {
                // Left as stored by an update (the caller drops it).
                vals.push(StoreValue::Null);
                continue;
            }
            let v = value_of(&c.name).unwrap_or(&null);
            if *v == Value::Null {
                if !c.optional {
                    return Err(Error::MissingValue {
                        table: self.name.clone(),
                        column: c.name.clone(),
                    });
                }
                vals.push(StoreValue::Null);
                continue;
            }
            match &c.ty {
                ColumnType::Plain(p) => vals.push(self.plain_value(c, p, v)?),
                ColumnType::Encrypted(e) => {
                    let checked = self.check_encrypted(c, e, v, sized(&c.name))?;
                    let sid = match (&e.scope, self.scope_ids.get(k).copied().flatten()) {
                        (ScopeRule::Named(_), Some(id)) => id,
                        _ => self.scope_of(e, row_scope)?,
                    };
                    let (epoch, keys) = self.s.current_keys(sid)?;
                    let padded = e.padding.pad(&checked.bytes);
                    let header = Header { scope: sid, epoch };
                    vals.push(StoreValue::Blob(self.seal_at(
                        k,
                        header,
                        &keys,
                        (id, &parent, &v1_row),
                        &padded,
                    )));
                    canon.insert(&c.name, checked);
                }
            }
        }
        for (pos, i) in t.indexes.iter().enumerate() {
            let parts: Option<Vec<&str>> = i
                .over
                .iter()
                .map(|c| canon.get(c.as_str()).map(|s| s.part(i.kind)))
                .collect();
            let Some(parts) = parts else {
                vals.push(StoreValue::Null);
                continue;
            };
            let sid = self.index_scope(i)?;
            let (epoch, keys) = self.s.current_keys(sid)?;
            let key = self.index_key(sid, epoch, &keys, (pos, &i.name));
            vals.push(keyed_value(&key, i, &parts));
        }
        Ok(vals)
    }

    /// Seals the padded value of the declared column at `k` for the row
    /// (`row` id, `parent` id or empty, `v1_row` the row component of a
    /// built-in table's v1 envelopes) under `header`'s epoch: the envelope
    /// the table's cell rule names (FORMAT.md §1.1, §1.2, §1.4). What an
    /// insert, an update and a rotation write.
    fn seal_at(
        &self,
        k: usize,
        header: Header,
        keys: &super::EpochKeys,
        (row, parent, v1_row): (&[u8], &[u8], &[u8]),
        padded: &[u8],
    ) -> Vec<u8> {
        let t = self.t();
        match t.cell_rule() {
            CellRule::V2 => envelope::seal_cell(
                &keys.field,
                header,
                &CellAd {
                    table: &t.name,
                    column: &t.columns[k].name,
                    row,
                    parent,
                },
                padded,
            ),
            _ => keys.seal_v1(
                self.prefixes.get(k).copied().flatten(),
                header,
                &envelope::Cell {
                    table: self.decoder_names.0,
                    column: self.column_name(k),
                    row: v1_row,
                },
                padded,
            ),
        }
    }

    /// The columns [`RowTable::encode`] gives values for, in order: the
    /// id, the parent, the row's scope, every column but a numbered one,
    /// every index.
    fn write_columns(&self) -> Vec<String> {
        let t = self.t();
        let numbered = t.numbered_column();
        t.implied_columns()
            .iter()
            .map(|i| i.name().to_owned())
            .chain(
                t.columns
                    .iter()
                    .filter(|c| Some(c.name.as_str()) != numbered)
                    .map(|c| c.name.clone()),
            )
            .chain(t.indexes.iter().map(|i| i.name.clone()))
            .collect()
    }

    /// The index key of `index` under (scope, epoch), derived once.
    fn index_key(
        &self,
        scope: u32,
        epoch: u32,
        keys: &super::EpochKeys,
        (pos, index): (usize, &str),
    ) -> Arc<IndexKey> {
        let mut cache = self.index_keys.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            cache
                .entry((scope, epoch, pos))
                .or_insert_with(|| Arc::new(kdf::index_key(&keys.raw, &self.name, index))),
        )
    }

    /// The scope of an index: that of the columns it covers.
    fn index_scope(&self, i: &schema::Index) -> Result<u32> {
        let t = self.t();
        match t.column(&i.over[0]).map(|c| &c.ty) {
            Some(ColumnType::Encrypted(e)) => self.scope_of(e, None),
            _ => Err(Error::Policy(format!(
                "{}.{} covers no encrypted column",
                t.name, i.name
            ))),
        }
    }

    /// Refuses to delete `row` unless this user may write under every
    /// scope its cells hold values of (withheld ones included), and under
    /// every scope of the rows the delete would take with it (a patient's
    /// notes, and their children in turn): `ReadOnly`, `NotCurrent` or
    /// `NoAccess`. Checked before the delete, not in its transaction: a
    /// child another client adds meanwhile goes with its parent.
    async fn check_deletable(&self, row: &Row) -> Result<()> {
        self.check_own_scopes(row)?;
        self.check_children_deletable(row.id).await
    }

    /// [`RowTable::check_deletable`] for a row that does not open: the
    /// write right under every named scope of the table's encrypted
    /// columns, and under the stored `scope_id` of a table whose rows each
    /// name one; then the rows the delete takes with it, as for any row.
    /// `None` if the row is gone, else its `medvault_auth` as read (`None`
    /// for NULL).
    async fn check_damaged_deletable(&self, id: Id) -> Result<Option<Option<Vec<u8>>>> {
        let t = self.t();
        let rows = self
            .s
            .store
            .lookup(
                stmt::by_id(self.s.store.dialect(), t),
                vec![StoreValue::Blob(id.as_bytes().to_vec())],
            )
            .await?;
        let Some(cells) = rows.first() else {
            return Ok(None);
        };
        let auth = match cells.last() {
            Some(Cell::Bytes(b)) => Some(b.clone()),
            _ => None,
        };
        let mut scopes = std::collections::BTreeSet::new();
        for (_, e) in t.encrypted() {
            if let ScopeRule::Named(n) = &e.scope {
                scopes.insert(self.s.scope_id(n)?);
            }
        }
        if t.row_scoped() {
            let stored = self
                .stored_names
                .iter()
                .position(|n| *n == "scope_id")
                .and_then(|k| cells.get(k));
            let sid = match stored {
                Some(Cell::Int(i)) => u32::try_from(*i).ok(),
                Some(Cell::UInt(u)) => u32::try_from(*u).ok(),
                _ => None,
            }
            .filter(|sid| self.s.ks().scopes.contains_key(sid))
            .ok_or_else(|| Error::NoAccess(format!("the scope of a damaged row of {}", t.name)))?;
            scopes.insert(sid);
        }
        for sid in scopes {
            self.s.current_keys(sid)?;
        }
        self.check_children_deletable(id).await?;
        Ok(Some(auth))
    }

    /// The write right under every scope of `row`'s encrypted cells (held
    /// or withheld).
    fn check_own_scopes(&self, row: &Row) -> Result<()> {
        let t = self.t();
        let row_scope = match &row.scope {
            Some(name) => Some(self.s.scope_id(name)?),
            None => None,
        };
        for (k, c) in t.columns.iter().enumerate() {
            let ColumnType::Encrypted(e) = &c.ty else {
                continue;
            };
            let held = row.values.get(&c.name).is_some_and(|v| *v != Value::Null);
            if !held && !row.withheld.contains(&c.name) {
                continue;
            }
            match self.column_scope(k, e, row_scope) {
                Some(sid) => {
                    self.s.current_keys(sid)?;
                }
                None => return Err(Error::NoAccess(format!("the scope of {}", c.name))),
            }
        }
        Ok(())
    }

    /// The write right under every scope of the rows a delete of `id`
    /// takes with it, children's children included.
    async fn check_children_deletable(&self, id: Id) -> Result<()> {
        let t = self.t();
        let d = self.s.store.dialect();
        let mut todo: Vec<(&str, Id)> = vec![(&t.name, id)];
        let mut checked_named = std::collections::HashSet::new();
        while let Some((table, id)) = todo.pop() {
            for child in self
                .schema
                .tables
                .iter()
                .filter(|c| c.parent.as_ref().is_some_and(|p| p.table == table))
            {
                let Some(sql) = stmt::child_scopes(d, child) else {
                    continue;
                };
                let rows = self
                    .s
                    .store
                    .lookup(sql, vec![StoreValue::Blob(id.as_bytes().to_vec())])
                    .await?;
                for cells in rows {
                    let mut dec =
                        RowDecoder::new(self.decoder_names.0, &["id", "scope_id"], cells)?;
                    let child_id = dec.id(0)?;
                    let sid: u32 = dec.int(1)?;
                    if sid != 0 {
                        self.s.current_keys(sid)?;
                    }
                    // Named scopes of the child's encrypted columns.
                    if checked_named.insert(child.name.as_str()) {
                        for (_, e) in child.encrypted() {
                            if let ScopeRule::Named(n) = &e.scope {
                                let sid = self.s.scope_id(n)?;
                                self.s.current_keys(sid)?;
                            }
                        }
                    }
                    todo.push((&child.name, Id(child_id)));
                }
            }
        }
        Ok(())
    }

    /// Inserts one row; returns its new id. On a table with a `unique`
    /// index, a value another row holds is [`Error::NotUnique`]; a check
    /// this user cannot make whole is [`Error::UniqueUnchecked`] (a live
    /// epoch of the scope not held) or [`Error::IndexNotFilled`] (rows not
    /// indexed yet). Nothing is written then.
    pub async fn insert(&self, row: &NewRow) -> Result<Id> {
        let ids = self.insert_many(std::slice::from_ref(row)).await?;
        ids.into_iter()
            .next()
            .ok_or(Error::Refused("no row was inserted"))
    }

    /// A built-in table's rules on the values of a row about to be
    /// written (`changed`: the columns the caller gave): no value for a
    /// column medvault fills; `patients.sex` one of its codes (stored in
    /// upper case); a family name that is not empty. Returns the values
    /// medvault sets, which take the place of the row's: the author and
    /// creation time on an insert (`created`), the time of the change.
    /// Declared tables have no rules.
    fn builtin_rules<'a>(
        &self,
        values: &BTreeMap<String, Value>,
        changed: impl IntoIterator<Item = &'a String>,
        created: bool,
    ) -> Result<Overrides> {
        let t = self.t();
        if !created && t.cell_rule() == CellRule::V1Note {
            return Err(Error::AppendOnly(self.name.clone()));
        }
        let filled = t.filled_columns();
        let mut out = Overrides::new();
        if filled.is_empty() {
            return Ok(out);
        }
        if let Some(c) = changed.into_iter().find(|c| filled.contains(&c.as_str())) {
            return Err(Error::FilledByMedvault {
                table: self.name.clone(),
                column: c.clone(),
            });
        }
        let t_now = Value::Integer(super::now());
        if created {
            out.push(("author", Value::Text(self.s.user.clone())));
            out.push(("created_at", t_now.clone()));
        }
        if filled.contains(&"updated_at") {
            out.push(("updated_at", t_now));
        }
        if let Some(Value::Text(sex)) = values.get("sex") {
            let code = sex.parse::<crate::records::Sex>()?.to_string();
            if code != *sex {
                out.push(("sex", Value::Text(code)));
            }
        }
        if let Some(Value::Text(f)) = values.get("family_name") {
            if canonical::name(f).is_empty() {
                return Err(Error::EmptyValue("family name"));
            }
        }
        Ok(out)
    }

    /// The statements that insert `rows` as `ids` (one id per row): every
    /// row checked (a built-in table's rules applied) and sealed, on every
    /// core; the first bad row is the error. Parents are not checked.
    ///
    /// Each row is version 1 by this user, its leaf appended to `batch`'s
    /// (which the caller signs and stores in the same transaction).
    pub(crate) fn seal_rows(
        &self,
        rows: &[NewRow],
        ids: &[Id],
        batch: &mut PendingBatch,
    ) -> Result<Vec<(String, Vec<StoreValue>)>> {
        let t = self.t();
        let cols = self.write_columns();
        let base = batch.leaves.len();
        let pending: &PendingBatch = batch;
        let encoded = par_map(
            rows.iter().zip(ids).enumerate().collect(),
            |(i, (r, id))| {
                let overrides = if t.builtin {
                    self.builtin_rules(&r.values, r.values.keys(), true)?
                } else {
                    Overrides::new()
                };
                let mut vals = self.encode(r, &overrides, &[], id.as_bytes(), &|_| true)?;
                let (leaf, epochs) =
                    self.authenticate(&cols, &mut vals, (1, &self.s.user), (pending, base + i))?;
                Ok::<_, Error>((vals, leaf, epochs))
            },
        );
        let mut values = Vec::with_capacity(rows.len());
        for e in encoded {
            let (vals, leaf, epochs) = e?;
            values.push(vals);
            batch.leaves.push(leaf);
            batch.epochs.extend(epochs);
        }
        let mut cols = cols;
        cols.push(crate::sql::ddl::AUTH_COLUMN.to_owned());
        Ok(stmt::insert_rows(self.s.store.dialect(), t, &cols, values))
    }

    /// Checks that every parent `rows` name exists (`NoSuchRow`).
    pub(crate) async fn check_parents(&self, rows: &[NewRow]) -> Result<()> {
        let Some(p) = &self.t().parent else {
            return Ok(());
        };
        let mut parents: Vec<Id> = rows.iter().filter_map(|r| r.parent).collect();
        parents.sort();
        parents.dedup();
        let d = self.s.store.dialect();
        for pid in &parents {
            let found = self
                .s
                .store
                .lookup(
                    stmt::exists(d, &p.table),
                    vec![StoreValue::Blob(pid.as_bytes().to_vec())],
                )
                .await?;
            if found.is_empty() {
                return Err(Error::NoSuchRow {
                    table: p.table.clone(),
                    id: pid.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Refuses a write under a schema older than the one stored (its rows
    /// would miss an index added since): [`Error::SchemaChanged`], after
    /// the session has read the new one.
    ///
    /// The same query tells whether the key state changed (a rotation, a
    /// revocation, this user disabled): then it is read again first, so
    /// the write goes under the newest epoch or is refused.
    pub(crate) async fn check_current(&self) -> Result<()> {
        let probe = self.s.probe().await?;
        self.s.keys_follow(&probe).await?;
        // An adoption since (the probe counts the record, not what it
        // holds: one replacing a record that did not verify is seen here).
        if !self.s.rows_signed() {
            self.s.learn_rows_signed().await?;
        }
        self.s.ensure_evidence().await?;
        if probe.schema_version > self.version {
            let version = self.s.reload_schema().await?;
            if version > self.version {
                return Err(Error::SchemaChanged { version });
            }
        }
        Ok(())
    }

    /// The guard of a write sealed under this session's keys as read last
    /// and this table's schema ([`Session::write_guard`]): taken before the
    /// write reads the keys it seals under.
    pub(crate) async fn guard(&self) -> Result<crate::store::Guard> {
        self.s.write_guard(Some(self.version)).await
    }

    /// Inserts rows in one transaction (all or nothing); returns their ids
    /// in order. Every row is checked and sealed before it is written, and
    /// a bad row writes nothing.
    pub async fn insert_many(&self, rows: &[NewRow]) -> Result<Vec<Id>> {
        super::retry_moved(|| self.insert_many_once(rows)).await
    }

    /// [`RowTable::insert_many`], once: [`Error::StateMoved`] if the key
    /// state or schema changed before the write committed.
    async fn insert_many_once(&self, rows: &[NewRow]) -> Result<Vec<Id>> {
        self.check_current().await?;
        let guard = self.guard().await?;
        self.check_parents(rows).await?;
        let mine: Vec<_> = rows.iter().map(|r| (&r.values, None)).collect();
        self.check_unique(&mine, Unique::Write).await?;
        let ids: Vec<Id> = rows.iter().map(|_| Id::random()).collect();
        let chunks = rows.len().div_ceil(STREAM_CHUNK);
        // One signature per chunk (FORMAT.md §5.8), made while the store
        // writes the chunk before.
        let mut signer = self.s.signer.lock().await;
        let signer = std::sync::Mutex::new(&mut *signer);
        self.s
            .write_chunks(&guard, chunks, |k| {
                let range = k * STREAM_CHUNK..((k + 1) * STREAM_CHUNK).min(rows.len());
                let mut batch = PendingBatch::new(authorship::KIND_WRITE);
                let statements = self.seal_rows(&rows[range.clone()], &ids[range], &mut batch)?;
                let mut signer = signer.lock().unwrap_or_else(|p| p.into_inner());
                let signed = self.s.sign_pending(batch, &mut signer)?;
                Ok(auth::with_batch(statements, signed))
            })
            .await
            .map_err(|e| self.not_unique(e, None))?;
        Ok(ids)
    }

    /// Refuses, with [`Error::NotUnique`], `rows` (each with its own id
    /// when it is already stored) that would give two rows the same values
    /// of a unique index: two of them alike, or one alike a stored row
    /// under any live epoch of the index's scope. The store's unique
    /// constraint sees only the tags of one epoch; during a rotation, rows
    /// under the older epoch hold other tags for the same values.
    ///
    /// The lookup is complete only if it sees every stored value: a live
    /// epoch of the scope this user does not hold is
    /// [`Error::UniqueUnchecked`], and (except for the fill itself) rows
    /// whose index is not filled yet are [`Error::IndexNotFilled`].
    pub(crate) async fn check_unique(
        &self,
        rows: &[(&BTreeMap<String, Value>, Option<Id>)],
        which: Unique<'_>,
    ) -> Result<()> {
        let t = self.t();
        for (pos, idx) in t.indexes.iter().enumerate() {
            let asked_for = match which {
                Unique::Write => true,
                Unique::Update(changed, unfilled) => {
                    idx.over.iter().any(|o| changed.contains_key(o))
                        || unfilled.contains(&idx.name.as_str())
                }
                Unique::Fill(name) => idx.name == name,
            };
            if idx.kind != IndexKind::Unique || !asked_for {
                continue;
            }
            let not_unique = || Error::NotUnique {
                table: t.name.clone(),
                index: idx.name.clone(),
            };
            let sid = self.index_scope(idx)?;
            // Each tag asked for, and whose it is.
            let mut asked: std::collections::HashMap<Vec<u8>, Option<Id>> =
                std::collections::HashMap::new();
            let ks = self.s.ks();
            for (values, own) in rows {
                let mut canon = Vec::with_capacity(idx.over.len());
                for name in &idx.over {
                    match (values.get(name), self.encrypted_column(name)) {
                        (None | Some(Value::Null), _) => break,
                        // Sizes are the write's to check (an unchanged value
                        // may predate a lower limit).
                        (Some(v), Ok((c, e))) => canon.push(self.check_encrypted(c, e, v, false)?),
                        (Some(_), Err(e)) => return Err(e),
                    }
                }
                if canon.len() < idx.over.len() {
                    continue;
                }
                let parts: Vec<&str> = canon.iter().map(|c| c.part(idx.kind)).collect();
                for (e, keys) in ks.live(sid) {
                    let key = self.index_key(sid, e, keys, (pos, &idx.name));
                    let tag = index::compute(&key, &parts, idx.bits).as_bytes().to_vec();
                    if asked.insert(tag, *own).is_some() {
                        return Err(not_unique());
                    }
                }
            }
            if asked.is_empty() {
                continue;
            }
            // The lookup must see every stored value.
            {
                let unheld = ks.known_epochs.iter().any(|&(s, e)| {
                    s == sid && !ks.retired.contains(&(s, e)) && !ks.keys.contains_key(&(s, e))
                });
                if unheld {
                    return Err(Error::UniqueUnchecked {
                        table: t.name.clone(),
                        index: idx.name.clone(),
                        scope: self.s.scope_name(sid),
                    });
                }
            }
            let key = (self.version, format!("{}.{}", t.name, idx.name));
            let known_filled = || {
                self.s
                    .unique_filled
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&key)
            };
            if !matches!(which, Unique::Fill(_)) && !known_filled() {
                if self.unfilled(&idx.name).await? > 0 {
                    return Err(Error::IndexNotFilled {
                        version: self.version,
                        index: key.1,
                        cause: "a unique index is checked against every row only once each \
                                holds its value"
                            .into(),
                    });
                }
                self.s
                    .unique_filled
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key);
            }
            let tags: Vec<&Vec<u8>> = asked.keys().collect();
            let d = self.s.store.dialect();
            for chunk in tags.chunks(STREAM_CHUNK) {
                let sql = stmt::ids_by_values(d, t, &idx.name, chunk.len());
                let params = chunk
                    .iter()
                    .map(|t| StoreValue::Blob((*t).clone()))
                    .collect();
                for r in self.s.store.select(sql, params).await? {
                    let (Some(Cell::Bytes(id)), Some(Cell::Bytes(tag))) = (r.first(), r.get(1))
                    else {
                        return Err(self.bad_order("an id and a tag"));
                    };
                    let id: RowId = id
                        .as_slice()
                        .try_into()
                        .map_err(|_| self.bad_order("an id of 16 bytes"))?;
                    let id = Id(id);
                    // A stored row holding a tag asked for, other than
                    // the row being updated.
                    if asked.get(tag).is_some_and(|own| *own != Some(id)) {
                        return Err(not_unique());
                    }
                }
            }
        }
        Ok(())
    }

    /// The store's refusal of a duplicate key, on a table with unique
    /// indexes: [`Error::NotUnique`], naming `index` when the write is
    /// known to touch that one alone (the store does not say which).
    pub(crate) fn not_unique(&self, e: Error, index: Option<&str>) -> Error {
        let t = self.t();
        let unique: Vec<&str> = t
            .indexes
            .iter()
            .filter(|i| i.kind == IndexKind::Unique && index.is_none_or(|n| n == i.name))
            .map(|i| i.name.as_str())
            .collect();
        match e {
            Error::Duplicate(_) if !unique.is_empty() => Error::NotUnique {
                table: t.name.clone(),
                index: unique.join(" or "),
            },
            e => e,
        }
    }

    /// Inserts a row given as the application's own type, through serde:
    /// an object with the column names as fields, plus `parent` (an id)
    /// and `scope` where the table has them.
    pub async fn insert_serde<T: Serialize>(&self, value: &T) -> Result<Id> {
        let json =
            serde_json::to_value(value).map_err(|_| self.wrong("*", "a serializable object"))?;
        let row = self.from_json(&json)?;
        self.insert(&row).await
    }

    /// A JSON object as a row to insert: columns by name, typed by the
    /// schema, plus `parent` and `scope`.
    pub fn from_json(&self, json: &serde_json::Value) -> Result<NewRow> {
        let t = self.t();
        let obj = json
            .as_object()
            .ok_or_else(|| self.wrong("*", "a JSON object"))?;
        let mut row = NewRow::new();
        for (k, v) in obj {
            match k.as_str() {
                "parent" => {
                    let s = v.as_str().ok_or_else(|| self.wrong("parent", "an id"))?;
                    row.parent = Some(s.parse()?);
                }
                "scope" => {
                    row.scope = Some(
                        v.as_str()
                            .ok_or_else(|| self.wrong("scope", "a scope name"))?
                            .to_owned(),
                    );
                }
                name => {
                    let c = t.column(name).ok_or_else(|| self.unknown_column(name))?;
                    row.values.insert(name.to_owned(), self.json_value(c, v)?);
                }
            }
        }
        Ok(row)
    }

    /// A value typed in by a person (`column=value` on the command line)
    /// as the column takes it: integers in decimal, `true`/`false`, ids and
    /// bytes in hex, anything else as text.
    pub fn parse_value(&self, column: &str, text: &str) -> Result<Value> {
        let c = self
            .t()
            .column(column)
            .ok_or_else(|| self.unknown_column(column))?;
        let integer = || {
            text.trim()
                .parse::<i64>()
                .map(Value::Integer)
                .map_err(|_| self.wrong(&c.name, "an integer"))
        };
        match &c.ty {
            ColumnType::Encrypted(e) if e.kind == Kind::Integer => integer(),
            ColumnType::Plain(PlainType::Integer | PlainType::Timestamp) => integer(),
            ColumnType::Plain(PlainType::Boolean) => match text.trim() {
                "true" => Ok(Value::Boolean(true)),
                "false" => Ok(Value::Boolean(false)),
                _ => Err(self.wrong(&c.name, "true or false")),
            },
            ColumnType::Plain(PlainType::Ref(_)) => Ok(Value::Id(text.parse()?)),
            ColumnType::Plain(PlainType::Bytes) => hex::decode(text.trim())
                .map(Value::Bytes)
                .map_err(|_| self.wrong(&c.name, "bytes as hex")),
            _ => Ok(Value::Text(text.to_owned())),
        }
    }

    fn json_value(&self, c: &Column, v: &serde_json::Value) -> Result<Value> {
        use serde_json::Value as J;
        if v.is_null() {
            return Ok(Value::Null);
        }
        let integer = || {
            v.as_i64()
                .map(Value::Integer)
                .ok_or_else(|| self.wrong(&c.name, "an integer"))
        };
        let text = || {
            v.as_str()
                .map(|s| Value::Text(s.to_owned()))
                .ok_or_else(|| self.wrong(&c.name, "text"))
        };
        match &c.ty {
            ColumnType::Encrypted(e) if e.kind == Kind::Integer => integer(),
            ColumnType::Encrypted(_) => text(),
            ColumnType::Plain(p) => match p {
                PlainType::Integer | PlainType::Timestamp => integer(),
                PlainType::Text | PlainType::Date { .. } => text(),
                PlainType::Boolean => match v {
                    J::Bool(b) => Ok(Value::Boolean(*b)),
                    _ => Err(self.wrong(&c.name, "true or false")),
                },
                PlainType::Bytes => v
                    .as_str()
                    .and_then(|s| hex::decode(s).ok())
                    .map(Value::Bytes)
                    .ok_or_else(|| self.wrong(&c.name, "bytes as hex")),
                PlainType::Ref(_) => {
                    let s = v.as_str().ok_or_else(|| self.wrong(&c.name, "an id"))?;
                    Ok(Value::Id(s.parse()?))
                }
            },
        }
    }

    /// For `verify`: opens a row as `copy` exports it (every stored
    /// column, index columns last), recomputes each blind index the user
    /// can (every covered column readable) under every held epoch of its
    /// scope, and returns the row with the names of the indexes whose
    /// stored value is none of those, and [`Error::Forged`] if its
    /// authentication does not check ([`RowTable::prepare`] read its
    /// batch).
    pub(crate) fn verify_row(&self, cells: Vec<Cell>) -> Result<Verified> {
        let t = self.t();
        let n = self.decoder_names.1.len();
        if cells.len() != self.stored_names.len() {
            return Err(Error::BadStoredValue {
                table: self.decoder_names.0,
                column: "*",
                expected: "a row with the declared number of columns",
            });
        }
        let mut stored = cells[n..].to_vec();
        stored.pop(); // the row's authentication, checked by `open`
        let (mut row, authorship) = self.open_checked(cells)?;
        let forged = match authorship {
            Ok(a) => {
                row.authorship = a;
                None
            }
            Err(e @ Error::Forged { .. }) => Some(e),
            Err(e) => return Err(e),
        };
        let ks = self.s.ks();
        let (mut checked, mut wrong, mut unfilled) = (0, Vec::new(), Vec::new());
        let mut fold1_values = 0;
        for (pos, (i, stored)) in t.indexes.iter().zip(stored).enumerate() {
            let mut parts = Vec::new();
            // A name indexed before format 10 holds the value of its fold-1
            // form until it is indexed again: accepted too.
            let mut fold1 = Vec::new();
            for c in &i.over {
                let (Some(col), Some(v)) = (t.column(c), row.values.get(c)) else {
                    break;
                };
                let ColumnType::Encrypted(e) = &col.ty else {
                    break;
                };
                if *v == Value::Null {
                    break;
                }
                let checked = self.check_encrypted(col, e, v, false)?;
                let canonical = Zeroizing::new(checked.part(i.kind).to_owned());
                fold1.push(match (e.kind, v) {
                    (Kind::Name, Value::Text(t)) => Zeroizing::new(canonical::name_fold1(t)),
                    _ => canonical.clone(),
                });
                parts.push(canonical);
            }
            if parts.len() != i.over.len() {
                continue;
            }
            let older: Vec<&str> = fold1.iter().map(|p| p.as_str()).collect();
            let refs: Vec<&str> = parts.iter().map(|p| p.as_str()).collect();
            let sid = self.index_scope(i)?;
            let got = match stored {
                Cell::Bytes(b) => b,
                // NULL: not computed yet (an index newer than the row, until
                // `fill_indexes`), or removed: counted apart.
                _ => {
                    unfilled.push(i.name.clone());
                    continue;
                }
            };
            checked += 1;
            let older = (i.kind == IndexKind::Equal && older != refs).then_some(older);
            let keys_of_scope = || ks.keys.iter().filter(|((s, _), _)| *s == sid);
            let ok = keys_of_scope().any(|((s, e), k)| {
                let key = self.index_key(*s, *e, k, (pos, &i.name));
                index::value(&key, i, &refs).as_bytes() == got.as_slice()
            });
            let old = !ok
                && older.as_ref().is_some_and(|o| {
                    keys_of_scope().any(|((s, e), k)| {
                        let key = self.index_key(*s, *e, k, (pos, &i.name));
                        index::compute(&key, o, i.bits).as_bytes() == got.as_slice()
                    })
                });
            if old {
                fold1_values += 1;
            }
            let ok = ok || old;
            if !ok {
                wrong.push(i.name.clone());
            }
        }
        Ok(Verified {
            row,
            checked,
            wrong,
            unfilled,
            fold1: fold1_values,
            forged,
        })
    }

    /// The (scope, epoch) pairs the sealed cells of the stored row
    /// `cells` name in their headers (a cell that has none is reported
    /// when it is opened).
    fn cell_epochs(&self, cells: &[Cell]) -> Vec<(u32, u32)> {
        let t = self.t();
        let implied = self.decoder_names.1.len() - t.columns.len();
        t.columns
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c.ty, ColumnType::Encrypted(_)))
            .filter_map(|(k, _)| match cells.get(implied + k) {
                Some(Cell::Bytes(b)) => Header::peek(b).map(|h| (h.scope, h.epoch)),
                _ => None,
            })
            .collect()
    }

    /// Decodes and opens one stored row (every column of
    /// [`stmt::stored_columns`]), after checking who vouches for it
    /// ([`RowTable::prepare`] read its batch).
    fn open(&self, cells: Vec<Cell>) -> Result<Row> {
        let (mut row, authorship) = self.open_checked(cells)?;
        row.authorship = authorship?;
        Ok(row)
    }

    /// [`RowTable::open`], the verdict on the row's authentication apart
    /// (the row's own `authorship` then says nothing): `verify` reports a
    /// forged row and what else is wrong with it.
    fn open_checked(&self, mut cells: Vec<Cell>) -> Result<(Row, Result<Authorship>)> {
        let t = self.t();
        if cells.len() != self.stored_names.len() {
            return Err(Error::BadStoredValue {
                table: self.decoder_names.0,
                column: "*",
                expected: "a row with the declared number of columns",
            });
        }
        // Checked here, reported after the cells are opened: a cell that is
        // malformed, moved or under a forged epoch gets its own error.
        let authorship = self.check_auth(&cells, &self.cell_epochs(&cells));
        cells.truncate(self.decoder_names.1.len());
        let mut d = RowDecoder::new(self.decoder_names.0, self.decoder_names.1, cells)?;
        let id = d.id(0)?;
        let mut at = 1;
        let parent = match &t.parent {
            Some(_) => {
                at += 1;
                Some(d.id(1)?)
            }
            None => None,
        };
        let row_scope: Option<u32> = if t.row_scoped() {
            at += 1;
            Some(d.int(at - 1)?)
        } else {
            None
        };
        let ks = self.s.ks();
        let mut values = BTreeMap::new();
        let mut withheld = Vec::new();
        // Plain columns first: a note's envelope is bound to its author.
        for (k, c) in t.columns.iter().enumerate() {
            let i = at + k;
            if let ColumnType::Plain(p) = &c.ty {
                let v = match p {
                    _ if c.optional && d.is_null(i) => Value::Null,
                    PlainType::Text | PlainType::Date { .. } => Value::Text(d.text(i)?),
                    PlainType::Integer | PlainType::Timestamp => Value::Integer(d.int(i)?),
                    PlainType::Boolean => Value::Boolean(d.int::<i64>(i)? != 0),
                    PlainType::Bytes => Value::Bytes(d.blob(i)?),
                    PlainType::Ref(_) => Value::Id(Id(d.id(i)?)),
                };
                values.insert(c.name.clone(), v);
            }
        }
        // The row component of a built-in table's envelopes (v1).
        let v1_row: Option<Vec<u8>> = match t.cell_rule() {
            CellRule::V2 => None,
            CellRule::V1 => Some(id.to_vec()),
            CellRule::V1Note => {
                let (Some(p), Some(Value::Text(author))) = (parent, values.get("author")) else {
                    return Err(Error::BadStoredValue {
                        table: self.decoder_names.0,
                        column: "author",
                        expected: "a note's patient and author",
                    });
                };
                Some(Session::note_ad(&Id(id), &Id(p), author))
            }
        };
        for (k, c) in t.columns.iter().enumerate() {
            let i = at + k;
            let name = self.column_name(k);
            match &c.ty {
                ColumnType::Plain(_) => {}
                ColumnType::Encrypted(e) => {
                    let blob = match d.opt_blob(i)? {
                        None if c.optional => {
                            values.insert(c.name.clone(), Value::Null);
                            continue;
                        }
                        None => d.blob(i)?,
                        Some(b) => b,
                    };
                    let cell = CellAd {
                        table: &t.name,
                        column: &c.name,
                        row: &id,
                        parent: parent.as_ref().map_or(&[][..], |p| &p[..]),
                    };
                    let v1 = v1_row.as_deref().map(|row| envelope::Cell {
                        table: self.decoder_names.0,
                        column: name,
                        row,
                    });
                    let header = match &v1 {
                        Some(v1) => Header::parse(&blob, v1)?,
                        None => Header::parse_cell(&blob, &cell)?,
                    };
                    let tampered = || Error::Tampered {
                        table: self.decoder_names.0,
                        column: name,
                    };
                    // The envelope's scope must be the column's (or the
                    // row's), and its epoch one the vault signed.
                    let want = match &e.scope {
                        ScopeRule::Named(n) => match self.scope_ids.get(k).copied().flatten() {
                            Some(id) => Some(id),
                            None => ks.scope_ids.get(n).copied(),
                        },
                        ScopeRule::PerRow => row_scope,
                    };
                    if want != Some(header.scope) {
                        return Err(tampered());
                    }
                    if !ks.known_epochs.contains(&(header.scope, header.epoch)) {
                        // Newer than any epoch this session loaded: the
                        // scope may have been rotated since.
                        let newer = ks
                            .latest
                            .get(&header.scope)
                            .is_none_or(|l| header.epoch > *l);
                        return Err(if newer {
                            Error::KeysOutdated {
                                table: self.decoder_names.0,
                                column: name,
                            }
                        } else {
                            tampered()
                        });
                    }
                    let Some(keys) = ks.keys.get(&(header.scope, header.epoch)) else {
                        withheld.push(c.name.clone());
                        continue;
                    };
                    let mut plain = Zeroizing::new(match &v1 {
                        Some(v1) => keys.open_v1(
                            self.prefixes.get(k).copied().flatten(),
                            header,
                            v1,
                            &blob,
                        )?,
                        None => envelope::open_cell(&keys.field, header, &cell, &blob)?,
                    });
                    unpad(&mut plain).ok_or(Error::MalformedEnvelope {
                        table: self.decoder_names.0,
                        column: name,
                        reason: "bad padding",
                    })?;
                    let text = std::str::from_utf8(&plain).map_err(|_| Error::NotUtf8 {
                        table: self.decoder_names.0,
                        column: name,
                    })?;
                    let v = match e.kind {
                        Kind::Integer => {
                            Value::Integer(text.parse().map_err(|_| Error::MalformedEnvelope {
                                table: self.decoder_names.0,
                                column: name,
                                reason: "not a decimal integer",
                            })?)
                        }
                        _ => Value::Text(text.to_owned()),
                    };
                    values.insert(c.name.clone(), v);
                }
            }
        }
        let row = Row {
            id: Id(id),
            parent: parent.map(Id),
            scope: row_scope.map(|s| self.s.scope_name(s)),
            values,
            withheld,
            authorship: Authorship::Unsigned,
        };
        Ok((row, authorship))
    }

    /// A row found forged through a table opened under an older schema
    /// than the one stored may be one written since with a column or an
    /// index this table does not read (they are in its leaf): then
    /// [`Error::SchemaChanged`], after the session has read the new schema;
    /// the table opened again reads it.
    async fn changed_schema<T>(&self, r: Result<T>) -> Result<T> {
        match r {
            Err(e @ Error::Forged { .. }) => {
                let probe = self.s.probe().await?;
                if probe.schema_version > self.version {
                    let version = self.s.reload_schema().await?;
                    if version > self.version {
                        return Err(Error::SchemaChanged { version });
                    }
                }
                Err(e)
            }
            r => r,
        }
    }

    /// One row, or `None`.
    pub async fn get(&self, id: Id) -> Result<Option<Row>> {
        // A row an older schema does not read is `SchemaChanged`, after
        // the retry too.
        let r = match self.get_once(id).await {
            Err(e) if auth::read_again(&e) => {
                self.s.refresh_keys().await?;
                self.get_once(id).await.map_err(outdated_is_tampered)
            }
            r => r,
        };
        self.changed_schema(r).await
    }

    async fn get_once(&self, id: Id) -> Result<Option<Row>> {
        let d = self.s.store.dialect();
        let rows = self
            .s
            .store
            .lookup(
                stmt::by_id(d, self.t()),
                vec![StoreValue::Blob(id.as_bytes().to_vec())],
            )
            .await?;
        self.prepare(&rows).await?;
        let mut out = Vec::new();
        for cells in rows {
            let r = self.open(cells)?;
            if r.id != id {
                return Err(Error::BadStoredValue {
                    table: self.decoder_names.0,
                    column: "id",
                    expected: "the id that was asked for",
                });
            }
            out.push(r);
        }
        Ok(out.into_iter().next())
    }

    /// Rows whose columns equal the given values, through the blind index
    /// that covers exactly those columns (in any order): exact results, in
    /// id order, under every epoch of the scope this user holds.
    pub async fn find(&self, criteria: &[(&str, Value)]) -> Result<Vec<Row>> {
        self.find_ordered(criteria, &Order::by_id()).await
    }

    /// [`RowTable::find`], in `order`: ordered by a column, descending,
    /// limited, after a row ([`Order`], which says what each order costs).
    pub async fn find_ordered(
        &self,
        criteria: &[(&str, Value)],
        order: &Order,
    ) -> Result<Vec<Row>> {
        // A row an older schema does not read is `SchemaChanged`, after
        // the retry too.
        let r = match self.find_once(criteria, order).await {
            Err(e) if auth::read_again(&e) => {
                self.s.refresh_keys().await?;
                self.find_once(criteria, order)
                    .await
                    .map_err(outdated_is_tampered)
            }
            r => r,
        };
        self.changed_schema(r).await
    }

    async fn find_once(&self, criteria: &[(&str, Value)], order: &Order) -> Result<Vec<Row>> {
        let t = self.t();
        let mut want: Vec<&str> = criteria.iter().map(|(c, _)| *c).collect();
        want.sort_unstable();
        let (pos, idx) = t
            .indexes
            .iter()
            .enumerate()
            .find(|(_, i)| {
                let mut over: Vec<&str> = i.over.iter().map(String::as_str).collect();
                over.sort_unstable();
                matches!(i.kind, IndexKind::Equal | IndexKind::Unique) && over == want
            })
            .ok_or_else(|| Error::NoIndex {
                table: self.name.clone(),
                columns: want.join(", "),
            })?;
        // The canonical form of each criterion, in the index's order; and
        // of names, the form of fold 1 too (rows indexed before format 10
        // hold it until they are indexed again).
        let mut canon: BTreeMap<&str, Zeroizing<String>> = BTreeMap::new();
        let mut fold1: BTreeMap<&str, Zeroizing<String>> = BTreeMap::new();
        for (name, v) in criteria {
            let (c, e) = self.encrypted_column(name)?;
            let checked = self.check_encrypted(c, e, v, true)?;
            if let (Kind::Name, Value::Text(typed)) = (e.kind, v) {
                fold1.insert(
                    c.name.as_str(),
                    Zeroizing::new(canonical::name_fold1(typed)),
                );
            }
            canon.insert(c.name.as_str(), checked.canonical);
        }
        let parts: Vec<&str> = idx
            .over
            .iter()
            .filter_map(|c| canon.get(c.as_str()).map(|s| s.as_str()))
            .collect();
        let older: Vec<&str> = idx
            .over
            .iter()
            .filter_map(|c| {
                fold1
                    .get(c.as_str())
                    .or_else(|| canon.get(c.as_str()))
                    .map(|s| s.as_str())
            })
            .collect();
        let mut forms = vec![parts];
        if older != forms[0] && !self.s.names_refolded() {
            forms.push(older);
        }
        self.matches(pos, idx, Probe::Equal(&forms), order, |r| {
            criteria.iter().all(|(name, _)| {
                self.canonical_of(r, name).is_some_and(|got| {
                    canon
                        .get(*name)
                        .is_some_and(|w| crate::crypto::secret::ct_eq(w.as_bytes(), got.as_bytes()))
                })
            })
        })
        .await
    }

    /// The canonical value of encrypted column `name` in opened row `r`,
    /// if it holds one.
    fn canonical_of(&self, r: &Row, name: &str) -> Option<Zeroizing<String>> {
        let t = self.t();
        let (Some(c), Some(v)) = (t.column(name), r.values.get(name)) else {
            return None;
        };
        let ColumnType::Encrypted(e) = &c.ty else {
            return None;
        };
        self.check_encrypted(c, e, v, false)
            .ok()
            .map(|got| got.canonical)
    }

    /// Rows whose `column` matches `value` the way `kind` searches, through
    /// the index of that kind over that column alone: exact results (the
    /// candidates are decrypted and compared), in id order, under every
    /// epoch of the scope this user holds.
    /// - [`IndexKind::Year`] / [`IndexKind::YearMonth`]: the date falls in
    ///   the year `"YYYY"` / month `"YYYY-MM"` given (`Refused` otherwise);
    /// - [`IndexKind::Phonetic`]: the name sounds like the one given
    ///   (`Refused` for a name with no sounded letter);
    /// - [`IndexKind::Prefix`]: the value begins with the one given, of at
    ///   least the index's shortest length (`PrefixTooShort`);
    /// - [`IndexKind::Tokens`]: each word given is one of the value's
    ///   (`Refused` for no word);
    /// - [`IndexKind::Equal`]: [`RowTable::find`] on that column alone.
    ///
    /// No index of that kind over `column` is `NoIndex`.
    ///
    /// ```no_run
    /// # async fn demo(s: &medvault::Session) -> medvault::Result<()> {
    /// use medvault::{schema::IndexKind, vault::rows::Value};
    /// let t = s.table("allergies").await?;
    /// let rows = t
    ///     .find_by(IndexKind::Year, "noted", &Value::Text("2024".into()))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn find_by(&self, kind: IndexKind, column: &str, value: &Value) -> Result<Vec<Row>> {
        self.find_by_ordered(kind, column, value, &Order::by_id())
            .await
    }

    /// [`RowTable::find_by`], in `order`: ordered by a column, descending,
    /// limited, after a row ([`Order`], which says what each order costs).
    pub async fn find_by_ordered(
        &self,
        kind: IndexKind,
        column: &str,
        value: &Value,
        order: &Order,
    ) -> Result<Vec<Row>> {
        if matches!(kind, IndexKind::Equal | IndexKind::Unique) {
            return self.find_ordered(&[(column, value.clone())], order).await;
        }
        let r = match self.find_by_once(kind, column, value, order).await {
            Err(e) if auth::read_again(&e) => {
                self.s.refresh_keys().await?;
                self.find_by_once(kind, column, value, order)
                    .await
                    .map_err(outdated_is_tampered)
            }
            r => r,
        };
        self.changed_schema(r).await
    }

    async fn find_by_once(
        &self,
        kind: IndexKind,
        column: &str,
        value: &Value,
        order: &Order,
    ) -> Result<Vec<Row>> {
        let t = self.t();
        let (pos, idx) = t
            .indexes
            .iter()
            .enumerate()
            .find(|(_, i)| i.kind == kind && i.over.len() == 1 && i.over[0] == column)
            .ok_or_else(|| Error::NoIndex {
                table: self.name.clone(),
                columns: format!("{} ({kind})", column.chars().take(64).collect::<String>()),
            })?;
        if kind == IndexKind::Prefix {
            return self.find_prefix(pos, idx, column, value, order).await;
        }
        if kind == IndexKind::Tokens {
            return self.find_words(pos, idx, column, value, order).await;
        }
        let refused = match kind {
            IndexKind::Year => "a year index is searched by a year, YYYY",
            IndexKind::YearMonth => "a year-month index is searched by a year and month, YYYY-MM",
            _ => "a phonetic index is searched by a name holding a letter a..z that is sounded",
        };
        let Value::Text(q) = value else {
            return Err(Error::Refused(refused));
        };
        let q: Zeroizing<String> = if kind == IndexKind::Phonetic {
            // The name as the column takes it (its limits and form), then
            // its code.
            let c = t
                .column(column)
                .ok_or_else(|| self.unknown_column(column))?;
            let ColumnType::Encrypted(e) = &c.ty else {
                return Err(Error::Refused(refused));
            };
            self.check_encrypted(c, e, value, true)?.canonical
        } else {
            // A year or a month: the query is that part, whole.
            let q = canonical::partial_date(q.trim()).map_err(|_| Error::Refused(refused))?;
            match kind.part(&q) {
                Some(p) if p.as_str().len() == q.len() => Zeroizing::new(q),
                _ => return Err(Error::Refused(refused)),
            }
        };
        let want = kind.part(&q).ok_or(Error::Refused(refused))?;
        self.matches(pos, idx, Probe::Equal(&[vec![want.as_str()]]), order, |r| {
            self.canonical_of(r, column).is_some_and(|got| {
                kind.part(&got).is_some_and(|p| {
                    crate::crypto::secret::ct_eq(p.as_str().as_bytes(), want.as_str().as_bytes())
                })
            })
        })
        .await
    }

    /// The encrypted column `column` and its policy: `UnknownColumn`, or
    /// `Policy` for a plain one.
    fn encrypted_column(&self, column: &str) -> Result<(&Column, &Encrypted)> {
        let t = self.t();
        let c = t
            .column(column)
            .ok_or_else(|| self.unknown_column(column))?;
        match &c.ty {
            ColumnType::Encrypted(e) => Ok((c, e)),
            ColumnType::Plain(_) => Err(Error::Policy(format!(
                "{}.{column} is not encrypted",
                t.name
            ))),
        }
    }

    /// [`RowTable::find_by`] of a prefix: the rows whose `column`, through
    /// prefix index `idx` (at `pos`), starts with the canonical form of
    /// `value`.
    async fn find_prefix(
        &self,
        pos: usize,
        idx: &Index,
        column: &str,
        value: &Value,
        order: &Order,
    ) -> Result<Vec<Row>> {
        let t = self.t();
        let (c, e) = self.encrypted_column(column)?;
        // What was typed, as the column takes it (its limits and form).
        let typed = self.check_encrypted(c, e, value, true)?.canonical;
        let shortest = idx.prefix.map_or(1, |l| l.shortest);
        if typed.chars().count() < usize::from(shortest) {
            return Err(Error::PrefixTooShort {
                table: t.name.clone(),
                index: idx.name.clone(),
                shortest,
            });
        }
        self.matches(pos, idx, Probe::Prefix(&typed), order, |r| {
            self.canonical_of(r, column).is_some_and(|got| {
                got.as_bytes()
                    .get(..typed.len())
                    .is_some_and(|head| crate::crypto::secret::ct_eq(head, typed.as_bytes()))
            })
        })
        .await
    }

    /// [`RowTable::find_by`] of words: the rows whose `column` holds,
    /// among its words, every word of `value` (canonical forms), through
    /// tokens index `idx` (at `pos`).
    async fn find_words(
        &self,
        pos: usize,
        idx: &Index,
        column: &str,
        value: &Value,
        order: &Order,
    ) -> Result<Vec<Row>> {
        let (c, e) = self.encrypted_column(column)?;
        let typed = self.check_encrypted(c, e, value, true)?.words;
        let mut want: Vec<&str> = typed.split(' ').filter(|w| !w.is_empty()).collect();
        want.sort_unstable();
        want.dedup();
        // The store is asked for the longest word (the fewest rows, most
        // likely); the others are compared after decryption.
        let Some(ask) = want.iter().copied().max_by_key(|w| w.len()) else {
            return Err(Error::Refused("a tokens index is searched by a word"));
        };
        self.matches(pos, idx, Probe::Word(ask), order, |r| {
            let Some(v) = r.values.get(column) else {
                return false;
            };
            let Ok(got) = self.check_encrypted(c, e, v, false) else {
                return false;
            };
            let got: Vec<&str> = got.words.split(' ').collect();
            want.iter().all(|w| {
                got.iter()
                    .any(|g| crate::crypto::secret::ct_eq(g.as_bytes(), w.as_bytes()))
            })
        })
        .await
    }

    /// The rows whose index `idx` (at `pos`) holds what `probe` asks for
    /// under any live epoch of its scope, opened, in id order: candidates,
    /// which the caller compares with what it looks for. With `paging`
    /// (and its parameters), a page of them in its order, which the caller
    /// checks.
    async fn candidates(
        &self,
        pos: usize,
        idx: &Index,
        probe: Probe<'_>,
        paging: Option<(&stmt::Paging<'_>, Vec<StoreValue>)>,
    ) -> Result<Vec<Row>> {
        let t = self.t();
        let sid = self.index_scope(idx)?;
        let d = self.s.store.dialect();
        let mut rows = Vec::new();
        for attempt in 0..2 {
            let ks = self.s.ks();
            // Every live epoch: during a rotation rows are under the old
            // and the new one.
            let mut live: Vec<u32> = ks.live(sid).map(|(e, _)| e).collect();
            live.sort_unstable();
            // Equal: the values asked for; a prefix: the two ends of each
            // range, side by side.
            let mut blobs: Vec<Vec<u8>> = Vec::new();
            let mut ranges: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            for (e, keys) in ks.live(sid) {
                let key = self.index_key(sid, e, keys, (pos, &idx.name));
                match probe {
                    Probe::Equal(forms) => blobs.extend(
                        forms
                            .iter()
                            .map(|parts| index::compute(&key, parts, idx.bits).as_bytes().to_vec()),
                    ),
                    Probe::Prefix(typed) => {
                        ranges.extend(index::prefix_range(&key, idx, typed));
                    }
                    Probe::Word(w) => {
                        blobs.push(index::compute(&key, &[w], idx.bits).as_bytes().to_vec())
                    }
                }
            }
            if blobs.is_empty() && ranges.is_empty() {
                return Err(Error::NoAccess(self.s.scope_name(sid)));
            }
            blobs.sort_unstable();
            blobs.dedup();
            ranges.sort_unstable();
            ranges.dedup();
            let page = paging.as_ref().map(|(p, _)| *p);
            let (sql, mut values) = if let (Probe::Word(_), Some(slots)) = (probe, idx.slots) {
                // The same values asked of every slot.
                let n = blobs.len();
                let values: Vec<StoreValue> = (0..slots)
                    .flat_map(|_| blobs.iter().cloned().map(StoreValue::Blob))
                    .collect();
                (stmt::by_slots(d, t, idx, n, page), values)
            } else if ranges.is_empty() {
                let n = blobs.len();
                let values: Vec<StoreValue> = blobs.into_iter().map(StoreValue::Blob).collect();
                (stmt::by_values(d, t, &idx.name, n, page), values)
            } else {
                let n = ranges.len();
                let values: Vec<StoreValue> = ranges
                    .into_iter()
                    .flat_map(|(low, high)| [StoreValue::Blob(low), StoreValue::Blob(high)])
                    .collect();
                (stmt::by_ranges(d, t, &idx.name, n, page), values)
            };
            values.extend(paging.iter().flat_map(|(_, p)| p.iter().cloned()));
            // The key state is checked alongside the search (on MySQL, on
            // another connection at the same time): a scope rotated since
            // the keys were loaded is searched again under its new epochs.
            let (found, state) = tokio::join!(self.s.store.lookup(sql, values), self.s.probe());
            rows = found?;
            if attempt == 0 && self.s.keys_follow(&state?).await? {
                let ks = self.s.ks();
                let mut now: Vec<u32> = ks.live(sid).map(|(e, _)| e).collect();
                now.sort_unstable();
                if now != live {
                    continue;
                }
            }
            break;
        }
        self.prepare(&rows).await?;
        if paging.is_some() {
            return par_map(rows, |cells| self.open(cells))
                .into_iter()
                .collect();
        }
        self.open_page(rows, None, "each row once, in id order")
    }

    /// A page of at most `limit` rows (up to [`MAX_PAGE`]) in id order,
    /// after `after`.
    pub async fn list(&self, after: Option<Id>, limit: u32) -> Result<Vec<Row>> {
        // A row an older schema does not read is `SchemaChanged`, after
        // the retry too.
        let r = match self.list_once(after, limit).await {
            Err(e) if auth::read_again(&e) => {
                self.s.refresh_keys().await?;
                self.list_once(after, limit)
                    .await
                    .map_err(outdated_is_tampered)
            }
            r => r,
        };
        self.changed_schema(r).await
    }

    async fn list_once(&self, after: Option<Id>, limit: u32) -> Result<Vec<Row>> {
        let limit = limit.clamp(1, MAX_PAGE);
        let d = self.s.store.dialect();
        let params = after
            .map(|a| vec![StoreValue::Blob(a.as_bytes().to_vec())])
            .unwrap_or_default();
        let rows = self
            .s
            .store
            .select(stmt::page(d, self.t(), after.is_some(), limit), params)
            .await?;
        self.check_page_len(rows.len(), limit)?;
        self.prepare(&rows).await?;
        self.open_page(
            rows,
            after,
            "ids in increasing order after the page's start",
        )
    }

    /// Every row in id order, `page` rows at a time (up to [`MAX_PAGE`]),
    /// handed to `f`; `ControlFlow::Break` stops. While one page is opened
    /// (on every core), the store already reads the next, so the two
    /// overlap. Returns how many rows `f` was given.
    ///
    /// ```no_run
    /// # async fn demo(s: &medvault::Session) -> medvault::Result<()> {
    /// use std::ops::ControlFlow;
    /// let t = s.table("allergies").await?;
    /// let seen = t
    ///     .scan(1000, |page| {
    ///         for r in &page {
    ///             println!("{}", r.id);
    ///         }
    ///         ControlFlow::Continue(())
    ///     })
    ///     .await?;
    /// # let _ = seen; Ok(()) }
    /// ```
    pub async fn scan(
        &self,
        page: u32,
        f: impl FnMut(Vec<Row>) -> std::ops::ControlFlow<()>,
    ) -> Result<u64> {
        let r = self.scan_pages(page, f).await;
        self.changed_schema(r).await
    }

    async fn scan_pages(
        &self,
        page: u32,
        mut f: impl FnMut(Vec<Row>) -> std::ops::ControlFlow<()>,
    ) -> Result<u64> {
        let limit = page.clamp(1, MAX_PAGE);
        let t = self.t();
        let d = self.s.store.dialect();
        let handle = crate::runtime::handle()?;
        let fetch = |after: Option<Id>| {
            let store = Arc::clone(&self.s.store);
            let sql = stmt::page(d, t, after.is_some(), limit);
            let params = after
                .map(|a| vec![StoreValue::Blob(a.as_bytes().to_vec())])
                .unwrap_or_default();
            handle.spawn(async move { store.select(sql, params).await })
        };
        let stopped = || Error::Store("a medvault worker task stopped".into());
        let mut pending = fetch(None);
        let (mut after, mut seen) = (None::<Id>, 0u64);
        loop {
            let rows = pending.await.map_err(|_| stopped())??;
            self.check_page_len(rows.len(), limit)?;
            let Some(last) = rows.last() else { break };
            // The next page starts after this one's last id, read before
            // the rows are opened (checked: 16 bytes, past the last page).
            let first = last.first().cloned().unwrap_or(Cell::Null);
            let next = RowDecoder::new(self.decoder_names.0, &["id"], vec![first])?
                .id(0)
                .map(Id)?;
            let order = "ids in increasing order after the page's start";
            if after.is_some_and(|a| next <= a) {
                return Err(self.bad_order(order));
            }
            pending = fetch(Some(next));
            self.prepare(&rows).await?;
            let (out, next) = match self.open_page(rows, after, order) {
                Err(e) if auth::read_again(&e) => {
                    // Rotated meanwhile: the key state again, this page
                    // again (it may now end elsewhere: the next one is
                    // read after its new end).
                    pending.abort();
                    self.s.refresh_keys().await?;
                    let again = fetch(after).await.map_err(|_| stopped())??;
                    self.check_page_len(again.len(), limit)?;
                    self.prepare(&again).await?;
                    let out = self
                        .open_page(again, after, order)
                        .map_err(outdated_is_tampered)?;
                    let Some(last) = out.last().map(|r| r.id) else {
                        break;
                    };
                    pending = fetch(Some(last));
                    (out, last)
                }
                r => (r?, next),
            };
            after = Some(next);
            seen += out.len() as u64;
            if f(out).is_break() {
                pending.abort();
                break;
            }
        }
        Ok(seen)
    }

    /// The rows whose parent is `parent`, in id order.
    pub async fn children(&self, parent: Id) -> Result<Vec<Row>> {
        // A row an older schema does not read is `SchemaChanged`, after
        // the retry too.
        let r = match self.children_once(parent).await {
            Err(e) if auth::read_again(&e) => {
                self.s.refresh_keys().await?;
                self.children_once(parent)
                    .await
                    .map_err(outdated_is_tampered)
            }
            r => r,
        };
        self.changed_schema(r).await
    }

    async fn children_once(&self, parent: Id) -> Result<Vec<Row>> {
        let t = self.t();
        let p = t
            .parent
            .as_ref()
            .ok_or(Error::Refused("this table has no parent"))?;
        let d = self.s.store.dialect();
        let rows = self
            .s
            .store
            .select(
                stmt::by_values(d, t, &p.column, 1, None),
                vec![StoreValue::Blob(parent.as_bytes().to_vec())],
            )
            .await?;
        self.prepare(&rows).await?;
        let out = self.open_page(rows, None, "each row once, in id order")?;
        if out.iter().any(|r| r.parent != Some(parent)) {
            return Err(Error::BadStoredValue {
                table: self.decoder_names.0,
                column: "parent",
                expected: "the parent that was asked for",
            });
        }
        Ok(out)
    }

    /// Sets the given columns of a row (`Value::Null` clears an optional
    /// one): every encrypted value is sealed again under its scope's
    /// current epoch and every blind index recomputed. False if there is
    /// no such row. The user must be able to read the whole row
    /// (`NoAccess` otherwise): an index may cover a column they did not
    /// change.
    ///
    /// The new version of the row is theirs: signed by them (FORMAT.md
    /// §5.8), so they must hold the write right under every scope of its
    /// sealed cells, changed or not (`ReadOnly` or `NoAccess` otherwise).
    /// It is written only if the row is still the version read; two
    /// concurrent updates both apply, one after the other. A unique
    /// index over a changed column is checked as [`RowTable::insert`]
    /// checks it.
    pub async fn update(&self, id: Id, changes: &BTreeMap<String, Value>) -> Result<bool> {
        let t = self.t();
        for k in changes.keys() {
            if t.column(k).is_none() {
                return Err(self.unknown_column(k));
            }
        }
        super::retry_moved(|| async {
            self.check_current().await?;
            for _ in 0..4 {
                if let Some(done) = self.update_once(id, changes).await? {
                    return Ok(done);
                }
            }
            Err(Error::Concurrent(
                "the row, changed by other clients while it was updated",
            ))
        })
        .await
    }

    /// One row with its stored cells, or `None`.
    async fn get_raw(&self, id: Id) -> Result<Option<(Row, Vec<Cell>)>> {
        match self.get_raw_once(id).await {
            Err(e) if auth::read_again(&e) => {
                self.s.refresh_keys().await?;
                self.get_raw_once(id).await.map_err(outdated_is_tampered)
            }
            r => r,
        }
    }

    async fn get_raw_once(&self, id: Id) -> Result<Option<(Row, Vec<Cell>)>> {
        let d = self.s.store.dialect();
        let rows = self
            .s
            .store
            .lookup(
                stmt::by_id(d, self.t()),
                vec![StoreValue::Blob(id.as_bytes().to_vec())],
            )
            .await?;
        self.prepare(&rows).await?;
        let Some(cells) = rows.into_iter().next() else {
            return Ok(None);
        };
        let r = self.open(cells.clone())?;
        if r.id != id {
            return Err(Error::BadStoredValue {
                table: self.decoder_names.0,
                column: "id",
                expected: "the id that was asked for",
            });
        }
        Ok(Some((r, cells)))
    }

    /// [`RowTable::update`] once: `None` if the row changed between the
    /// read and the write (the write did nothing).
    async fn update_once(&self, id: Id, changes: &BTreeMap<String, Value>) -> Result<Option<bool>> {
        let guard = self.guard().await?;
        let t = self.t();
        let Some((old, raw)) = self.get_raw(id).await? else {
            return Ok(Some(false));
        };
        // A withheld column (a scope this user holds no key for) is left
        // as stored, with the indexes over it; changing it, or a column an
        // index shares with it, is not this user's to do.
        let mut kept: Vec<&str> = Vec::new();
        for w in &old.withheld {
            let shares_index = t
                .indexes
                .iter()
                .any(|i| i.over.contains(w) && i.over.iter().any(|c| changes.contains_key(c)));
            if changes.contains_key(w) || shares_index {
                let scope = match t.column(w).map(|c| &c.ty) {
                    Some(ColumnType::Encrypted(Encrypted {
                        scope: ScopeRule::Named(n),
                        ..
                    })) => n.clone(),
                    _ => old.scope.clone().unwrap_or_default(),
                };
                return Err(Error::NoAccess(scope));
            }
            kept.push(w);
            kept.extend(
                t.indexes
                    .iter()
                    .filter(|i| i.over.contains(w))
                    .map(|i| i.name.as_str()),
            );
        }
        // A column this user reads but may not write under (a scope held
        // for reading, or not at its newest epoch), and that the update
        // leaves unchanged, is kept as stored too, with the indexes over
        // it; an index it shares with a changed column cannot be.
        let row_scope = match &old.scope {
            Some(name) => Some(self.s.scope_id(name)?),
            None => None,
        };
        let mut first_refusal = None;
        for (k, c) in t.columns.iter().enumerate() {
            let ColumnType::Encrypted(e) = &c.ty else {
                continue;
            };
            if kept.contains(&c.name.as_str()) || changes.contains_key(&c.name) {
                continue;
            }
            let Some(sid) = self.column_scope(k, e, row_scope) else {
                continue;
            };
            let refused = match self.s.current_keys(sid) {
                Ok(_) => continue,
                // Held for reading, or not at its newest epoch: kept.
                Err(e @ (Error::ReadOnly(_) | Error::NotCurrent { .. })) => e,
                // A rollback, or no key at all, is not hidden.
                Err(e) => return Err(e),
            };
            if t.indexes
                .iter()
                .any(|i| i.over.contains(&c.name) && i.over.iter().any(|o| changes.contains_key(o)))
            {
                return Err(refused);
            }
            first_refusal.get_or_insert(refused);
            kept.push(&c.name);
            kept.extend(
                t.indexes
                    .iter()
                    .filter(|i| i.over.contains(&c.name))
                    .map(|i| i.name.as_str()),
            );
        }
        // A row none of whose sealed cells this user may write is not
        // theirs to change, plain columns included.
        if t.encrypted().next().is_some()
            && t.encrypted().all(|(c, _)| kept.contains(&c.name.as_str()))
        {
            return Err(first_refusal.unwrap_or_else(|| {
                let scope = t
                    .encrypted()
                    .find_map(|(_, e)| match &e.scope {
                        ScopeRule::Named(n) => Some(n.clone()),
                        ScopeRule::PerRow => None,
                    })
                    .or_else(|| old.scope.clone())
                    .unwrap_or_default();
                Error::NoAccess(scope)
            }));
        }
        // The parent and scope are re-sealed as read: something sealed
        // must vouch for them, or a row the database moved would be
        // laundered by the update.
        let vouched = t
            .encrypted()
            .any(|(c, _)| old.values.get(&c.name).is_some_and(|v| *v != Value::Null));
        if (t.parent.is_some() || t.row_scoped()) && !vouched {
            return Err(Error::Refused(
                "no sealed cell of this row vouches for its parent and scope, so it is not \
                 rewritten; delete it and insert it again",
            ));
        }
        let mut next = NewRow {
            parent: old.parent,
            scope: old.scope.clone(),
            values: old.values.clone(),
        };
        for (k, v) in changes {
            next.values.insert(k.clone(), v.clone());
        }
        // A unique index the row holds no value of (not filled yet) gets
        // one now, so it is checked like a changed one.
        let unfilled: Vec<&str> = t
            .indexes
            .iter()
            .filter(|i| i.kind == IndexKind::Unique)
            .filter(|i| {
                let at = self.stored_names.iter().position(|n| *n == i.name);
                !matches!(at.and_then(|at| raw.get(at)), Some(Cell::Bytes(_)))
            })
            .map(|i| i.name.as_str())
            .collect();
        self.check_unique(
            &[(&next.values, Some(id))],
            Unique::Update(changes, &unfilled),
        )
        .await?;
        let overrides = if t.builtin {
            self.builtin_rules(&next.values, changes.keys(), false)?
        } else {
            Overrides::new()
        };
        let vals = self.encode(&next, &overrides, &kept, id.as_bytes(), &|c| {
            changes.contains_key(c)
        })?;
        // The whole row as it will be stored, the kept columns as read: the
        // new version's leaf covers them too.
        let cols = self.write_columns();
        let mut full = Vec::with_capacity(vals.len() + 1);
        for (c, v) in cols.iter().zip(vals) {
            if !kept.contains(&c.as_str()) {
                full.push(v);
                continue;
            }
            let cell = self
                .stored_names
                .iter()
                .position(|n| n == c)
                .and_then(|at| raw.get(at));
            full.push(match cell {
                Some(Cell::Null) => StoreValue::Null,
                Some(Cell::Int(i)) => StoreValue::Int(*i),
                Some(Cell::UInt(u)) => {
                    StoreValue::Int(i64::try_from(*u).map_err(|_| Error::BadStoredValue {
                        table: self.decoder_names.0,
                        column: "*",
                        expected: "a 64-bit integer",
                    })?)
                }
                Some(Cell::Bytes(b)) => StoreValue::Blob(b.clone()),
                _ => {
                    return Err(Error::BadStoredValue {
                        table: self.decoder_names.0,
                        column: "*",
                        expected: "a value medvault stores",
                    })
                }
            });
        }
        let version = old
            .authorship
            .version()
            .checked_add(1)
            .ok_or(Error::Refused("the row has reached its last version"))?;
        let mut batch = PendingBatch::new(authorship::KIND_WRITE);
        let (leaf, epochs) =
            self.authenticate(&cols, &mut full, (version, &self.s.user), (&batch, 0))?;
        // Every sealed cell of the new version, kept ones included, is
        // under an epoch this user may write: the version is signed by
        // them alone.
        {
            let ks = self.s.ks();
            if let Some((sid, e)) = epochs.iter().find(|e| !ks.writable.contains(e)) {
                let scope = self.s.scope_name(*sid);
                return Err(if ks.keys.contains_key(&(*sid, *e)) {
                    Error::ReadOnly(scope)
                } else {
                    Error::NoAccess(scope)
                });
            }
        }
        batch.leaves.push(leaf);
        batch.epochs.extend(epochs);
        let signed = {
            let mut signer = self.s.signer.lock().await;
            self.s.sign_pending(batch, &mut signer)?
        };
        // Every column but the id and the kept ones, the authentication
        // last; written only where the row's authentication is still the
        // one read (the same version, or still none).
        let auth_value = full.pop().unwrap_or(StoreValue::Null);
        let (mut set, mut params): (Vec<&str>, Vec<StoreValue>) = cols
            .iter()
            .zip(full)
            .skip(1)
            .filter(|(c, _)| !kept.contains(&c.as_str()))
            .map(|(c, v)| (c.as_str(), v))
            .unzip();
        set.push(crate::sql::ddl::AUTH_COLUMN);
        params.push(auth_value);
        params.push(StoreValue::Blob(id.as_bytes().to_vec()));
        let old_auth = match raw.last() {
            Some(Cell::Bytes(b)) => Some(b.clone()),
            _ => None,
        };
        let cas = [(crate::sql::ddl::AUTH_COLUMN, old_auth.is_none())];
        params.extend(old_auth.map(StoreValue::Blob));
        let d = self.s.store.dialect();
        let mut statements = vec![(stmt::reseal(d, t, &set, &cas), params)];
        statements.extend(signed);
        let n = self
            .s
            .store
            .write_guarded(&guard, statements)
            .await
            .map_err(|e| self.not_unique(e, None))?;
        Ok((n.first().copied().unwrap_or(0) > 0).then_some(true))
    }

    /// Computes the blind index `index` for the rows that hold values in
    /// every column it covers but no index value yet (an index added over
    /// columns that held values already), in pages of 500, each page in
    /// one transaction; returns how many rows it filled. Each value is
    /// computed under the epoch of the row's cells (as a rotation writes
    /// it), and written only if the first covered cell is still as read:
    /// a rotation that sealed the row again meanwhile wins. Run again, it
    /// goes on where it stopped: a filled row is no longer selected.
    pub(crate) async fn fill_index(&self, index: &str) -> Result<u64> {
        self.reindex(index, false)
            .await
            .map_err(|e| self.not_unique(e, Some(index)))
    }

    /// Indexes again the rows whose `equal` index `index` over a name
    /// column holds a value other than the one of today's canonical form:
    /// rows indexed before format 10 (fold 1, `schema/FORMAT.md` §4.1),
    /// found until then only by the old form. Every row is opened and its
    /// value computed; only those that differ are written, page by page,
    /// each written only if its first covered cell and its index value are
    /// still as read. Run again, it finds nothing left. Returns the rows
    /// written; 0 for an index of another kind or over no name.
    pub(crate) async fn refold_index(&self, index: &str) -> Result<u64> {
        let t = self.t();
        let Some(idx) = t.index(index) else {
            return Err(self.unknown_column(index));
        };
        let over_a_name = idx.over.iter().any(|c| {
            matches!(t.column(c).map(|c| &c.ty),
                Some(ColumnType::Encrypted(e)) if e.kind == Kind::Name)
        });
        if idx.kind != IndexKind::Equal || !over_a_name {
            return Ok(0);
        }
        self.reindex(index, true).await
    }

    /// The value index `index` holds for `parts` under its scope's current
    /// epoch: tests write rows as older versions of medvault did.
    #[cfg(test)]
    pub(crate) fn index_value(&self, index: &str, parts: &[&str]) -> Result<Vec<u8>> {
        let t = self.t();
        let pos = t
            .indexes
            .iter()
            .position(|i| i.name == index)
            .ok_or_else(|| self.unknown_column(index))?;
        let idx = &t.indexes[pos];
        let sid = self.index_scope(idx)?;
        let (epoch, keys) = self.s.current_keys(sid)?;
        let key = self.index_key(sid, epoch, &keys, (pos, &idx.name));
        Ok(index::value(&key, idx, parts).as_bytes().to_vec())
    }

    /// [`RowTable::fill_index`] (rows with no index value) or, when
    /// `refold`, [`RowTable::refold_index`] (rows with one).
    async fn reindex(&self, index: &str, refold: bool) -> Result<u64> {
        let t = self.t();
        let Some(pos) = t.indexes.iter().position(|i| i.name == index) else {
            return Err(self.unknown_column(index));
        };
        let idx = &t.indexes[pos];
        let at = self
            .stored_names
            .iter()
            .position(|n| *n == idx.name)
            .ok_or_else(|| self.unknown_column(index))?;
        let sid = self.index_scope(idx)?;
        let implied = self.decoder_names.1.len() - t.columns.len();
        let covered = t
            .columns
            .iter()
            .position(|c| c.name == idx.over[0])
            .ok_or_else(|| self.unknown_column(&idx.over[0]))?;
        let d = self.s.store.dialect();
        let unique = (idx.kind == IndexKind::Unique && !refold).then_some(index);
        self.reseal_pages(
            unique,
            |after, page| match refold {
                false => stmt::unindexed(d, t, idx, after, page),
                true => stmt::indexed_over_values(d, t, idx, after, page),
            },
            |r, cells, batch| {
                // The first covered cell of the row, as read: its
                // envelope's epoch is the row's, and the write is
                // conditional on it.
                let old = match cells.get(implied + covered) {
                    Some(Cell::Bytes(b)) => b.clone(),
                    _ => {
                        return Err(Error::BadStoredValue {
                            table: self.decoder_names.0,
                            column: "*",
                            expected: "an envelope in each covered column",
                        })
                    }
                };
                let mut parts = Vec::with_capacity(idx.over.len());
                for name in &idx.over {
                    let (Some(c), Some(v)) = (t.column(name), r.values.get(name)) else {
                        // Withheld: under an epoch of the scope this user
                        // does not hold.
                        return Err(Error::NoAccess(self.s.scope_name(sid)));
                    };
                    let ColumnType::Encrypted(e) = &c.ty else {
                        return Err(Error::Policy(format!("{}.{name} is not encrypted", t.name)));
                    };
                    let checked = self.check_encrypted(c, e, v, false)?;
                    parts.push(Zeroizing::new(checked.part(idx.kind).to_owned()));
                }
                // Under the epoch of the row's cells (opened, so its header
                // is sound), as a rotation would write it.
                let epoch = envelope::Header::peek(&old)
                    .map(|h| h.epoch)
                    .ok_or(Error::NoAccess(self.s.scope_name(sid)))?;
                let ks = self.s.ks();
                let keys = ks
                    .keys
                    .get(&(sid, epoch))
                    .ok_or_else(|| Error::NoAccess(self.s.scope_name(sid)))?;
                let key = self.index_key(sid, epoch, keys, (pos, &idx.name));
                let refs: Vec<&str> = parts.iter().map(|p| p.as_str()).collect();
                // A value with no part this kind keys (a year-month of a
                // year alone, a name with no sound) gets the value of the
                // empty part, so that it is no longer counted as unfilled.
                let value = keyed_value(&key, idx, &refs);
                let stored = match cells.get(at) {
                    Some(Cell::Bytes(b)) => Some(b.clone()),
                    _ => None,
                };
                if let (StoreValue::Blob(new), Some(old)) = (&value, &stored) {
                    if new == old {
                        // Already in today's form: nothing to write.
                        return Ok(None);
                    }
                }
                self.reseal_column(
                    cells,
                    (&idx.name, value),
                    &[(&idx.over[0], Some(old)), (&idx.name, stored)],
                    batch,
                )
                .map(Some)
            },
        )
        .await
    }

    /// How many rows hold a value in every column index `index` covers
    /// but no index value: rows written before the index existed, not
    /// filled yet ([`Session::fill_indexes`]), which a search through it
    /// does not find. A row whose value has no part the index keys (a
    /// year alone under a `year-month` index) is filled with the value
    /// of the empty part and no longer counted.
    pub async fn unfilled(&self, index: &str) -> Result<u64> {
        let t = self.t();
        let idx = t
            .indexes
            .iter()
            .find(|i| i.name == index)
            .ok_or_else(|| self.unknown_column(index))?;
        let rows = self
            .s
            .store
            .select(
                stmt::unindexed_count(self.s.store.dialect(), t, idx),
                Vec::new(),
            )
            .await?;
        let n = rows
            .first()
            .and_then(|r| r.first())
            .and_then(crate::store::int_cell)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or(Error::BadStoredValue {
                table: self.decoder_names.0,
                column: "*",
                expected: "a count",
            })?;
        Ok(n)
    }

    /// Seals again, page by page of 500 in id order, the rows `select`
    /// picks (`select(after, page)`: with `id > ?` when `after`), each
    /// page in one transaction with one reseal batch this administrator
    /// signs (the rows keep what their authors wrote): `seal` makes each
    /// opened row's statement (its authentication checked first), or none
    /// for a row with nothing to write. Returns
    /// how many rows were written; a row changed meanwhile is not, and a
    /// row the statement no longer selects is not read again. With
    /// `unique` (a unique index being filled), each page's values are
    /// looked for first ([`RowTable::check_unique`]).
    async fn reseal_pages(
        &self,
        unique: Option<&str>,
        select: impl Fn(bool, u32) -> String,
        mut seal: impl FnMut(&Row, &[Cell], &mut PendingBatch) -> Result<Option<Statement>>,
    ) -> Result<u64> {
        const PAGE: u32 = 500;
        let mut done = 0;
        let mut after: Option<Id> = None;
        let mut moved = 0;
        loop {
            self.s.keys_follow(&self.s.probe().await?).await?;
            let guard = self.s.write_guard(None).await?;
            let page_start = after;
            let params = after
                .iter()
                .map(|a| StoreValue::Blob(a.as_bytes().to_vec()))
                .collect();
            let rows = self
                .s
                .store
                .select(select(after.is_some(), PAGE), params)
                .await?;
            self.check_page_len(rows.len(), PAGE)?;
            self.prepare(&rows).await?;
            let raw = rows.clone();
            let opened = self.open_page(rows, after, "each row once, in id order")?;
            let Some(last) = opened.last() else {
                return Ok(done);
            };
            after = Some(last.id);
            if let Some(name) = unique {
                // A fill of a unique index: the page's values, against the
                // rows filled before it under every live epoch.
                let mine: Vec<_> = opened.iter().map(|r| (&r.values, Some(r.id))).collect();
                self.check_unique(&mine, Unique::Fill(name)).await?;
            }
            let mut batch = PendingBatch::new(authorship::KIND_RESEAL);
            let mut statements = Vec::with_capacity(raw.len() + 1);
            for (r, cells) in opened.iter().zip(&raw) {
                statements.extend(seal(r, cells, &mut batch)?);
            }
            if statements.is_empty() {
                continue;
            }
            match self.write_resealed(&guard, statements, batch).await? {
                Some(n) => {
                    done += n;
                    moved = 0;
                }
                None => {
                    // The key state moved: the page is read again.
                    moved_again(&mut moved)?;
                    after = page_start;
                }
            }
        }
    }

    /// Clears the blind index `index` from every row that holds a value
    /// in it, before the index column is dropped (a schema that no longer
    /// declares it), in pages of 500, each page one transaction with one
    /// reseal batch: the rows' leaves leave the column out (FORMAT.md
    /// §5.8), so they stay genuine once it is gone. Each row is opened
    /// (its authentication checked) first, and written only if its index
    /// value and authentication are still as read. Returns the rows
    /// cleared; run again, it finds none.
    pub(crate) async fn clear_index(&self, index: &str) -> Result<u64> {
        let t = self.t();
        let Some(idx) = t.index(index) else {
            return Err(self.unknown_column(index));
        };
        let at = self
            .stored_names
            .iter()
            .position(|n| *n == idx.name)
            .ok_or_else(|| self.unknown_column(index))?;
        let d = self.s.store.dialect();
        self.reseal_pages(
            None,
            |after, page| stmt::indexed(d, t, idx, after, page),
            |_, cells, batch| {
                let old = match cells.get(at) {
                    Some(Cell::Bytes(b)) => b.clone(),
                    _ => {
                        return Err(Error::BadStoredValue {
                            table: self.decoder_names.0,
                            column: "*",
                            expected: "a blind index in each row selected for one",
                        })
                    }
                };
                self.reseal_column(
                    cells,
                    (&idx.name, StoreValue::Null),
                    &[(&idx.name, Some(old))],
                    batch,
                )
                .map(Some)
            },
        )
        .await
    }

    /// The scope of the encrypted column at `k` in a row of `row_scope`,
    /// resolved without an error (a scope this session cannot name is not
    /// the one being rotated).
    fn column_scope(&self, k: usize, e: &Encrypted, row_scope: Option<u32>) -> Option<u32> {
        match &e.scope {
            ScopeRule::Named(n) => self
                .scope_ids
                .get(k)
                .copied()
                .flatten()
                .or_else(|| self.s.ks().scope_ids.get(n).copied()),
            ScopeRule::PerRow => row_scope,
        }
    }

    /// Whether every cell of scope `sid` in this table is in a `per-row`
    /// column (no named column is of that scope), so a rotation of `sid`
    /// reads only the rows whose `scope_id` is `sid` (rotating `billing`
    /// does not read every clinical note). A row whose `scope_id` the
    /// store changed is not opened here; opened anywhere, its envelope's
    /// scope differs from the column and it is `Tampered`.
    pub(crate) fn cells_of_scope_only_per_row(&self, sid: u32) -> bool {
        let t = self.t();
        t.row_scoped()
            && t.columns.iter().enumerate().all(|(k, c)| match &c.ty {
                ColumnType::Encrypted(
                    e @ Encrypted {
                        scope: ScopeRule::Named(_),
                        ..
                    },
                ) => self.column_scope(k, e, None) != Some(sid),
                _ => true,
            })
    }

    /// The rows a rotation of `sid` reads in this table: those of `sid`
    /// alone when [`RowTable::cells_of_scope_only_per_row`], else all.
    pub(crate) async fn rotation_rows(&self, sid: u32) -> Result<u64> {
        let t = self.t();
        if !self.cells_of_scope_only_per_row(sid) {
            return self.s.store.count(&crate::sql::table_spec(t)).await;
        }
        // `select`, not `lookup`: a count reads the whole table (SQLite's
        // notes have no index on scope_id), so it runs off the async thread.
        let rows = self
            .s
            .store
            .select(
                stmt::count_in_scope(self.s.store.dialect(), t),
                vec![StoreValue::Int(i64::from(sid))],
            )
            .await?;
        let cells = rows.into_iter().next().ok_or(Error::BadStoredValue {
            table: self.decoder_names.0,
            column: "*",
            expected: "one count",
        })?;
        RowDecoder::new(self.decoder_names.0, &["count"], cells)?.int(0)
    }

    /// One pass of a key rotation over this table (`src/vault/rotate.rs`):
    /// every row with a cell of scope `sid` under an epoch other than
    /// `target` is opened and its cells of that scope sealed again under
    /// `target`, with the blind indexes over them recomputed, `batch` rows
    /// per transaction. A row another client updated between the read and
    /// the write is left as that client wrote it and counted in
    /// [`Reseal::raced`]. `on_page(rows seen, rows rewritten)` after each
    /// page; `Break` stops the pass there (what was written stays: every
    /// page is whole).
    pub(crate) async fn reseal(
        &self,
        (sid, target): (u32, u32),
        batch: u32,
        on_page: &mut (dyn FnMut(u64, u64) -> std::ops::ControlFlow<()> + Send),
    ) -> Result<Reseal> {
        let t = self.t();
        let d = self.s.store.dialect();
        let keys = {
            let ks = self.s.ks();
            ks.keys
                .get(&(sid, target))
                .cloned()
                .ok_or_else(|| Error::NoAccess(self.s.scope_name(sid)))?
        };
        let implied = self.decoder_names.1.len() - t.columns.len();
        let scope_at = t.row_scoped().then(|| implied - 1);
        let in_scope = self.cells_of_scope_only_per_row(sid);
        let mut out = Reseal::default();
        let mut after: Option<Id> = None;
        let mut moved = 0;
        loop {
            // Another administrator rotated further meanwhile: this pass
            // stops rather than write under an epoch no longer the newest.
            let probe = self.s.probe().await?;
            self.s.keys_follow(&probe).await?;
            // A schema stored since may declare cells of the scope this
            // table does not know: the rotation runs its passes again
            // under it before it retires anything.
            if probe.schema_version > self.version {
                return Err(Error::SchemaChanged {
                    version: probe.schema_version,
                });
            }
            if probe.schema_version < self.version {
                return Err(Error::RolledBack(format!(
                    "schema version {} (this session has read version {})",
                    probe.schema_version, self.version
                )));
            }
            // Taken before the check, so a newer epoch stored after it
            // fails the page's write instead of following it.
            let guard = self.s.write_guard(Some(self.version)).await?;
            if self.s.ks().latest.get(&sid).is_some_and(|l| *l > target) {
                return Err(Error::Concurrent("the key epochs of this scope"));
            }
            let (page_start, seen_before) = (after, out.seen);
            let mut params: Vec<StoreValue> = Vec::new();
            if in_scope {
                params.push(StoreValue::Int(i64::from(sid)));
            }
            params.extend(
                after
                    .iter()
                    .map(|a| StoreValue::Blob(a.as_bytes().to_vec())),
            );
            let sql = if in_scope {
                stmt::page_in_scope(d, t, after.is_some(), batch)
            } else {
                stmt::page(d, t, after.is_some(), batch)
            };
            let rows = self.s.store.select(sql, params).await?;
            self.check_page_len(rows.len(), batch)?;
            self.prepare(&rows).await?;
            if rows.is_empty() {
                return Ok(out);
            }
            let mut stale = Vec::new();
            for cells in rows {
                let id = match cells.first() {
                    Some(Cell::Bytes(b)) => RowId::try_from(b.as_slice()).ok(),
                    _ => None,
                }
                .ok_or(Error::BadStoredValue {
                    table: self.decoder_names.0,
                    column: "id",
                    expected: "16 bytes",
                })?;
                if after.is_some_and(|a| id <= a.0) {
                    return Err(self.bad_order("each row once, in id order"));
                }
                after = Some(Id(id));
                out.seen += 1;
                // Decoded as `open` decodes it. (With the `scope_id = ?`
                // filter, a scope the store holds in another type, say the
                // text '2' in SQLite's non-STRICT notes, is not selected:
                // only a hand-edited store does that.)
                let row_scope = match scope_at {
                    Some(i) => Some(
                        RowDecoder::new(
                            self.decoder_names.0,
                            &["scope_id"],
                            vec![cells.get(i).cloned().unwrap_or(Cell::Null)],
                        )?
                        .int::<u32>(0)?,
                    ),
                    None => None,
                };
                let needs = t.columns.iter().enumerate().any(|(k, c)| {
                    let ColumnType::Encrypted(e) = &c.ty else {
                        return false;
                    };
                    if self.column_scope(k, e, row_scope) != Some(sid) {
                        return false;
                    }
                    match cells.get(implied + k) {
                        // A cell under a newer epoch than the target (another
                        // rotation got further) is never moved back.
                        Some(Cell::Bytes(b)) => envelope::Header::peek(b)
                            .is_none_or(|h| h.scope != sid || h.epoch < target),
                        Some(Cell::Null) => false,
                        _ => true, // opened below, where it is reported
                    }
                });
                if needs {
                    stale.push((cells, row_scope));
                }
            }
            if !stale.is_empty() {
                // The administrator vouches, in one reseal batch per page,
                // that the rows keep what their authors wrote.
                let mut batch = PendingBatch::new(authorship::KIND_RESEAL);
                let pending = &batch;
                let resealed = par_map(
                    stale.into_iter().enumerate().collect(),
                    |(i, (cells, row_scope))| {
                        self.reseal_row(cells, row_scope, (sid, target), &keys, None, (pending, i))
                    },
                )
                .into_iter()
                .collect::<Result<Vec<_>>>()?;
                let mut statements = Vec::with_capacity(resealed.len() + 1);
                for (statement, re) in resealed {
                    statements.push(statement);
                    // A row nothing vouched for keeps its place, empty.
                    batch.leaves.push(re.map_or([0; 32], |r| r.leaf));
                }
                let asked = statements.len() as u64;
                let Some(changed) = self.write_resealed(&guard, statements, batch).await? else {
                    // The key state moved (a new epoch, a grant): nothing
                    // was written; the page is read again under it.
                    moved_again(&mut moved)?;
                    (after, out.seen) = (page_start, seen_before);
                    continue;
                };
                moved = 0;
                out.rewritten += changed;
                out.raced += asked.saturating_sub(changed);
            }
            if on_page(out.seen, out.rewritten).is_break() {
                out.stopped = true;
                return Ok(out);
            }
        }
    }

    /// The statement that writes one stale row's cells of scope `sid`
    /// sealed under `target` ([`RowTable::reseal`]).
    ///
    /// `moved_to`: the row's cells of scope `sid` follow the row into that
    /// scope instead ([`RowTable::move_to_scope`]): the row's own cells
    /// (per-row scope) are sealed under it, `keys` being its epoch
    /// `target`'s, and the row's scope column changes with them.
    ///
    /// The row's authentication follows ([`RowTable::reauthenticate`]):
    /// its leaf at `auth`'s place in the batch, returned with the
    /// statement; the write is conditional on it too.
    fn reseal_row(
        &self,
        cells: Vec<Cell>,
        row_scope: Option<u32>,
        (sid, target): (u32, u32),
        keys: &super::EpochKeys,
        moved_to: Option<u32>,
        auth: (&PendingBatch, usize),
    ) -> Result<(Statement, Option<auth::Reauthenticated>)> {
        let t = self.t();
        let implied = self.decoder_names.1.len() - t.columns.len();
        // The cells to re-seal, as read: the write is conditional on them.
        let mut mine: Vec<(usize, Option<Vec<u8>>)> = Vec::new();
        for (k, c) in t.columns.iter().enumerate() {
            if let ColumnType::Encrypted(e) = &c.ty {
                let follows = moved_to.is_none() || e.scope == ScopeRule::PerRow;
                if follows && self.column_scope(k, e, row_scope) == Some(sid) {
                    let old = match cells.get(implied + k) {
                        Some(Cell::Bytes(b)) => Some(b.clone()),
                        _ => None,
                    };
                    mine.push((k, old));
                }
            }
        }
        let raw = cells.clone();
        let row = self.open(cells)?;
        if mine
            .iter()
            .any(|(k, _)| row.withheld.contains(&t.columns[*k].name))
        {
            // A cell under an epoch of the scope this user does not hold.
            return Err(Error::NoAccess(self.s.scope_name(sid)));
        }
        let v1_row: Vec<u8> = match (t.cell_rule(), &row.parent, row.values.get("author")) {
            (CellRule::V1Note, Some(p), Some(Value::Text(author))) => {
                Session::note_ad(&row.id, p, author)
            }
            _ => row.id.as_bytes().to_vec(),
        };
        let parent: Vec<u8> = row
            .parent
            .as_ref()
            .map(|p| p.as_bytes().to_vec())
            .unwrap_or_default();
        let header = Header {
            scope: moved_to.unwrap_or(sid),
            epoch: target,
        };
        let mut set: Vec<&str> = Vec::new();
        let mut vals: Vec<StoreValue> = Vec::new();
        let mut canon: BTreeMap<&str, Checked> = BTreeMap::new();
        for (k, _) in &mine {
            let c = &t.columns[*k];
            let ColumnType::Encrypted(e) = &c.ty else {
                continue;
            };
            let Some(v) = row.values.get(&c.name).filter(|v| **v != Value::Null) else {
                continue; // stays NULL (the write checks it still is)
            };
            let checked = self.check_encrypted(c, e, v, false)?;
            let padded = e.padding.pad(&checked.bytes);
            let sealed = self.seal_at(
                *k,
                header,
                keys,
                (row.id.as_bytes(), &parent, &v1_row),
                &padded,
            );
            set.push(&c.name);
            vals.push(StoreValue::Blob(sealed));
            canon.insert(&c.name, checked);
        }
        for (pos, i) in t.indexes.iter().enumerate() {
            // Indexes cover columns of a named scope, which stay.
            if moved_to.is_some() || self.index_scope(i).ok() != Some(sid) {
                continue;
            }
            let parts: Option<Vec<&str>> = i
                .over
                .iter()
                .map(|c| canon.get(c.as_str()).map(|s| s.part(i.kind)))
                .collect();
            set.push(&i.name);
            vals.push(match parts {
                Some(p) => {
                    let key = self.index_key(sid, target, keys, (pos, &i.name));
                    keyed_value(&key, i, &p)
                }
                None => StoreValue::Null,
            });
        }
        let scope_column = self.decoder_names.1.get(implied.wrapping_sub(1));
        let moved = match (moved_to, scope_column) {
            (Some(to), Some(col)) if t.row_scoped() => {
                set.push(*col);
                vals.push(StoreValue::Int(i64::from(to)));
                Some(*col)
            }
            (Some(_), _) => return Err(Error::Refused("this table's cells have fixed scopes")),
            (None, _) => None,
        };
        let pairs: Vec<(&str, &StoreValue)> = set.iter().copied().zip(vals.iter()).collect();
        let re = self.reauthenticate(&raw, &pairs, auth)?;
        if let Some(re) = &re {
            set.push(crate::sql::ddl::AUTH_COLUMN);
            vals.push(StoreValue::Blob(re.auth.clone()));
        }
        vals.push(StoreValue::Blob(row.id.as_bytes().to_vec()));
        let mut cas: Vec<(&str, bool)> = mine
            .iter()
            .map(|(k, old)| (t.columns[*k].name.as_str(), old.is_none()))
            .collect();
        vals.extend(
            mine.into_iter()
                .filter_map(|(_, old)| old.map(StoreValue::Blob)),
        );
        if let Some(col) = moved {
            cas.push((col, false));
            vals.push(StoreValue::Int(i64::from(sid)));
        }
        // Only if the row is still the version read.
        match raw.last() {
            Some(Cell::Bytes(b)) => {
                cas.push((crate::sql::ddl::AUTH_COLUMN, false));
                vals.push(StoreValue::Blob(b.clone()));
            }
            _ => cas.push((crate::sql::ddl::AUTH_COLUMN, true)),
        }
        Ok((
            (stmt::reseal(self.s.store.dialect(), t, &set, &cas), vals),
            re,
        ))
    }

    /// Moves row `id` (child of `parent`, in scope `from`) of a table
    /// whose rows each name their scope into scope `to`: its cells are
    /// opened and sealed again under `to`'s current epoch (cells of named
    /// scopes stay as they are), and its scope column changes, in one
    /// conditional write (false if the row changed meanwhile, or is gone).
    /// A row the store answers that is not that one is `BadStoredValue`.
    /// The user must hold both scopes.
    pub(crate) async fn move_to_scope(&self, row: (Id, Option<Id>, u32, u32)) -> Result<bool> {
        super::retry_moved(|| self.move_to_scope_once(row)).await
    }

    /// [`RowTable::move_to_scope`], once.
    async fn move_to_scope_once(
        &self,
        (id, parent, from, to): (Id, Option<Id>, u32, u32),
    ) -> Result<bool> {
        self.check_current().await?;
        let guard = self.guard().await?;
        let t = self.t();
        if !t.row_scoped() {
            return Err(Error::Refused("this table's cells have fixed scopes"));
        }
        let (epoch, keys) = self.s.current_keys(to)?;
        let d = self.s.store.dialect();
        let rows = self
            .s
            .store
            .lookup(
                stmt::by_id(d, t),
                vec![StoreValue::Blob(id.as_bytes().to_vec())],
            )
            .await?;
        self.prepare(&rows).await?;
        let Some(cells) = rows.into_iter().next() else {
            return Ok(false);
        };
        // The row asked for, as verified: its id, parent and scope.
        let seen = self.open(cells.clone())?;
        let wrong = |column| Error::BadStoredValue {
            table: self.decoder_names.0,
            column,
            expected: "the row that was asked for",
        };
        if seen.id != id {
            return Err(wrong("id"));
        }
        if seen.parent != parent {
            return Err(wrong("parent"));
        }
        if seen.scope.as_deref() != Some(self.s.scope_name(from).as_str()) {
            return Err(wrong("scope_id"));
        }
        if from == to {
            return Ok(false);
        }
        // A move is a new version of the row, by this user: they must hold
        // the write right under every scope of its cells after the move.
        let mut batch = PendingBatch::new(authorship::KIND_WRITE);
        let (statement, re) = self.reseal_row(
            cells,
            Some(from),
            (from, epoch),
            &keys,
            Some(to),
            (&batch, 0),
        )?;
        let mut statements = vec![statement];
        if let Some(re) = re {
            batch.leaves.push(re.leaf);
            batch.epochs.extend(re.epochs);
            let mut signer = self.s.signer.lock().await;
            statements.extend(self.s.sign_pending(batch, &mut signer)?);
        }
        let n = self.s.store.write_guarded(&guard, statements).await?;
        Ok(n.first().copied().unwrap_or(0) > 0)
    }

    /// Deletes a row (and, through the database, its children); false if
    /// there was none. It needs the write right under every scope of the
    /// row and of every row the delete takes with it.
    ///
    /// A row the store damaged ([`Error::Forged`], [`Error::Tampered`])
    /// can be deleted too, by a user with the write right under every
    /// named scope of its table's encrypted columns (and its stored
    /// `scope_id` for a table whose rows each name one): nothing vouches
    /// for what it holds, and kept, it would stop every rotation of its
    /// scopes. It is deleted only as it was read, and takes its children
    /// with it, genuine or not, as any delete does (their scopes are
    /// checked the same way). Other errors (a wrong schema, the store down)
    /// delete nothing.
    pub async fn delete(&self, id: Id) -> Result<bool> {
        if self.t().cell_rule() == CellRule::V1Note {
            return Err(Error::AppendOnly(self.name.clone()));
        }
        super::retry_moved(|| self.delete_once(id)).await
    }

    /// [`RowTable::delete`], once: the rights it checked are still the
    /// user's when the delete commits (a revocation waits for it, or it
    /// sees the revocation).
    async fn delete_once(&self, id: Id) -> Result<bool> {
        self.check_current().await?;
        let guard = self.guard().await?;
        let d = self.s.store.dialect();
        let key = StoreValue::Blob(id.as_bytes().to_vec());
        let statement = match self.get(id).await {
            Ok(None) => return Ok(false),
            Ok(Some(row)) => {
                self.check_deletable(&row).await?;
                (stmt::delete(d, self.t()), vec![key])
            }
            Err(Error::Forged { .. } | Error::Tampered { .. }) => {
                match self.check_damaged_deletable(id).await? {
                    None => return Ok(false),
                    // Only as read: a repair made meanwhile is kept.
                    Some(None) => (stmt::delete_as_read(d, self.t(), true), vec![key]),
                    Some(Some(auth)) => (
                        stmt::delete_as_read(d, self.t(), false),
                        vec![key, StoreValue::Blob(auth)],
                    ),
                }
            }
            Err(e) => return Err(e),
        };
        let n = self.s.store.write_guarded(&guard, vec![statement]).await?;
        Ok(n.first().copied().unwrap_or(0) > 0)
    }
}
