//! Ordered, limited searches: in which order a search's rows come back,
//! how many, and from which row on ([`Order`]).

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::{Index, Probe, Row, RowTable, Value, MAX_PAGE};
use crate::error::{Error, Result};
use crate::records::Id;
use crate::schema::{Column, ColumnType, Kind, PlainType};
use crate::sql::rows::Paging;
use crate::store::Value as StoreValue;

/// The order, number and start of a search's rows
/// ([`RowTable::find_ordered`], [`RowTable::find_by_ordered`]).
///
/// What a search costs depends on the order:
/// - **with a limit, by id or by a plain `integer`, `timestamp`, `date` or
///   `boolean` column**: the store orders the candidates (then by id) and
///   answers a page at a time, the first of a quarter more than the limit
///   (and 4), each next twice the one before (at most 1,000): when most
///   candidates match, about `limit` rows are decrypted however many
///   match; a coarse index (many candidates that do not) or a criterion
///   the index does not cover takes more pages. The client checks each
///   page is in the order asked, after the one before, with no row twice.
///   The store learns the limit, and whether a page held fewer matches
///   than it asked for (another page follows).
/// - **without a limit, or by any other column** (an encrypted one, or a
///   plain `text`, `bytes` or `ref`): one statement answers every
///   candidate, each is decrypted, then they are sorted in the client. A
///   store cannot order what it cannot read, and SQLite and MySQL order
///   text differently (MySQL ignores trailing spaces and sorts by the first
///   1,024 bytes), so the client could not check the store's order. An
///   encrypted value sorts by its canonical form (`schema/FORMAT.md` §4:
///   names without case, accents or separators), an encrypted integer by
///   its value.
///
/// No value (NULL, or a value withheld from this user) sorts first
/// ascending and last descending; rows of equal values by id.
///
/// ```no_run
/// # async fn demo(s: &medvault::Session) -> medvault::Result<()> {
/// use medvault::vault::rows::{Order, Value};
/// let t = s.table("prescriptions").await?;
/// let order = Order::by("started_on").descending().limit(20);
/// // The 20 latest prescriptions of amoxicillin, then the 20 before.
/// let first = t
///     .find_ordered(&[("drug", Value::from("amoxicillin"))], &order)
///     .await?;
/// if let Some(last) = first.last() {
///     let next = t
///         .find_ordered(&[("drug", Value::from("amoxicillin"))], &order.after(last))
///         .await?;
/// # let _ = next;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct Order {
    column: Option<String>,
    descending: bool,
    limit: Option<u32>,
    after: Option<(Id, Value)>,
    /// What a row must hold besides the search's own criterion, checked
    /// on each decrypted candidate before it counts towards the limit.
    keep: Option<Keep>,
}

/// A check of decrypted rows ([`Order::keeping`]).
type Keep = Arc<dyn Fn(&Row) -> bool + Send + Sync>;

impl fmt::Debug for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Order")
            .field("column", &self.column)
            .field("descending", &self.descending)
            .field("limit", &self.limit)
            .field("after", &self.after.as_ref().map(|(id, _)| id))
            .field("keeping", &self.keep.is_some())
            .finish()
    }
}

impl Order {
    /// By id, ascending, every row: what [`RowTable::find`] returns.
    pub fn by_id() -> Order {
        Order::default()
    }

    /// By `column` (then id), ascending.
    pub fn by(column: &str) -> Order {
        Order {
            column: Some(column.to_owned()),
            ..Order::default()
        }
    }

    /// Largest first.
    pub fn descending(mut self) -> Order {
        self.descending = true;
        self
    }

    /// At most `n` rows (at least 1: 0 is refused by the search).
    pub fn limit(mut self, n: u32) -> Order {
        self.limit = Some(n);
        self
    }

    /// The rows that come after `row` in this order: the next page, with
    /// `row` the last of the previous one. A column `row` does not hold
    /// (withheld from this user) counts as no value, as in the order.
    pub fn after(mut self, row: &Row) -> Order {
        let v = match &self.column {
            Some(c) => row.values.get(c).cloned().unwrap_or(Value::Null),
            None => Value::Null,
        };
        self.after = Some((row.id, v));
        self
    }

    /// Only the rows `keep` holds for count: criteria an index does not
    /// cover, checked on each decrypted candidate before the limit.
    pub(crate) fn keeping(mut self, keep: impl Fn(&Row) -> bool + Send + Sync + 'static) -> Order {
        self.keep = Some(Arc::new(keep));
        self
    }
}

/// Where a search's order is made.
#[derive(Clone, Copy)]
pub(super) enum Sort<'t> {
    /// By id, in the store.
    Id,
    /// By a plain column both stores order alike, in the store.
    Store(&'t Column),
    /// By a column's value, in the client, after decrypting every
    /// candidate.
    Client(&'t Column),
}

/// A row's place in an order: no value first, then integers, then bytes
/// (one column holds one of the last two). `Debug` is not derived: it may
/// hold a decrypted value.
#[derive(PartialEq, Eq)]
pub(super) enum Key {
    Null,
    Int(i64),
    Bytes(Zeroizing<Vec<u8>>),
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> Ordering {
        match (self, other) {
            (Key::Null, Key::Null) => Ordering::Equal,
            (Key::Null, _) => Ordering::Less,
            (_, Key::Null) => Ordering::Greater,
            (Key::Int(a), Key::Int(b)) => a.cmp(b),
            (Key::Int(_), Key::Bytes(_)) => Ordering::Less,
            (Key::Bytes(_), Key::Int(_)) => Ordering::Greater,
            (Key::Bytes(a), Key::Bytes(b)) => a.as_slice().cmp(b.as_slice()),
        }
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The rows the `k`-th page (from 0) of a store-ordered search for
/// `limit` rows asks for: a quarter more than the limit and 4 (for the
/// candidates that do not match), doubling with each page, at most
/// [`MAX_PAGE`]. The sizes depend on the limit alone, so the store does not
/// learn from them how many candidates matched.
fn page_len(limit: u32, k: usize) -> u32 {
    let first = limit.saturating_add(limit / 4).saturating_add(4);
    let shift = u32::try_from(k).unwrap_or(u32::MAX).min(16);
    first.saturating_mul(1 << shift).min(MAX_PAGE)
}

impl<'s> RowTable<'s> {
    /// Where `order` is made, checked before anything is asked of the
    /// store: `UnknownColumn` for a column the table does not have,
    /// `Refused` for a limit of 0.
    pub(super) fn sort_of<'a>(&'a self, order: &Order) -> Result<Sort<'a>> {
        if order.limit == Some(0) {
            return Err(Error::Refused("a search's limit is at least one row"));
        }
        let Some(name) = order.column.as_deref() else {
            return Ok(Sort::Id);
        };
        if name == "id" {
            return Ok(Sort::Id);
        }
        let c = self
            .t()
            .column(name)
            .ok_or_else(|| self.unknown_column(name))?;
        Ok(match &c.ty {
            ColumnType::Plain(
                PlainType::Integer
                | PlainType::Timestamp
                | PlainType::Date { .. }
                | PlainType::Boolean,
            ) => Sort::Store(c),
            _ => Sort::Client(c),
        })
    }

    /// The key of value `v` of the column `sort` orders by (`Null` when
    /// ordered by id): a typed error for a value of the wrong type.
    pub(super) fn key_of(&self, sort: Sort<'_>, v: &Value) -> Result<Key> {
        let c = match sort {
            Sort::Id => return Ok(Key::Null),
            Sort::Store(c) | Sort::Client(c) => c,
        };
        Ok(match (&c.ty, v) {
            (_, Value::Null) => Key::Null,
            (ColumnType::Plain(p), v) => match self.plain_value(c, p, v)? {
                StoreValue::Int(i) => Key::Int(i),
                StoreValue::Text(t) => Key::Bytes(Zeroizing::new(t.into_bytes())),
                StoreValue::Blob(b) => Key::Bytes(Zeroizing::new(b)),
                _ => Key::Null,
            },
            (ColumnType::Encrypted(e), Value::Integer(i)) if e.kind == Kind::Integer => {
                Key::Int(*i)
            }
            (ColumnType::Encrypted(e), v) => {
                let canonical = self.check_encrypted(c, e, v, false)?.canonical;
                Key::Bytes(Zeroizing::new(canonical.as_bytes().to_vec()))
            }
        })
    }

    /// Row `r`'s place in `sort`: the key of its value as read (a column
    /// withheld from this user has none; an encrypted value that is not
    /// canonical sorts by its text), then its id. As the store compares
    /// stored values, no stored value is checked again here.
    fn place(&self, sort: Sort<'_>, r: &Row) -> (Key, Id) {
        let c = match sort {
            Sort::Id => return (Key::Null, r.id),
            Sort::Store(c) | Sort::Client(c) => c,
        };
        let bytes = |b: &[u8]| Key::Bytes(Zeroizing::new(b.to_vec()));
        let key = match (&c.ty, r.values.get(&c.name)) {
            (_, None | Some(Value::Null)) => Key::Null,
            (_, Some(Value::Integer(i))) => Key::Int(*i),
            (_, Some(Value::Boolean(b))) => Key::Int(i64::from(*b)),
            (_, Some(Value::Bytes(b))) => bytes(b),
            (_, Some(Value::Id(id))) => bytes(id.as_bytes()),
            (ColumnType::Plain(_), Some(Value::Text(t))) => bytes(t.as_bytes()),
            (ColumnType::Encrypted(e), Some(v @ Value::Text(t))) => {
                match self.check_encrypted(c, e, v, false) {
                    Ok(got) => bytes(got.canonical.as_bytes()),
                    Err(_) => bytes(t.as_bytes()),
                }
            }
        };
        (key, r.id)
    }

    /// The rows index `idx` (at `pos`) finds for `probe` that `keep` (and
    /// the order's own check) holds for, in `order`.
    ///
    /// With a limit, ordered by id or by a plain column the store orders
    /// ([`Sort::Id`], [`Sort::Store`]), the store answers pages of
    /// candidates in that order (sized by [`page_len`]) until the limit is
    /// reached; each page is checked to be in the order asked, after the
    /// page before, with no row twice. Otherwise one statement answers
    /// every candidate, in id order as [`RowTable::find`] checks it, and
    /// they are sorted here.
    pub(super) async fn matches(
        &self,
        pos: usize,
        idx: &Index,
        probe: Probe<'_>,
        order: &Order,
        keep: impl Fn(&Row) -> bool,
    ) -> Result<Vec<Row>> {
        let sort = self.sort_of(order)?;
        let start = match &order.after {
            Some((id, v)) => Some((self.key_of(sort, v)?, *id)),
            None => None,
        };
        let keep = |r: &Row| keep(r) && order.keep.as_ref().is_none_or(|k| k(r));
        let ordered = |a: &(Key, Id), b: &(Key, Id)| {
            let o = (&a.0, a.1).cmp(&(&b.0, b.1));
            if order.descending {
                o.reverse()
            } else {
                o
            }
        };
        // Paged by the store: the column it orders by (none: the id), and
        // the limit.
        let paged = match (sort, order.limit) {
            (Sort::Id, Some(n)) => Some((None, n)),
            (Sort::Store(c), Some(n)) => Some((Some(c.name.as_str()), n)),
            _ => None,
        };
        let Some((column, limit)) = paged else {
            // Every candidate, in one statement, sorted here.
            let rows = self.candidates(pos, idx, probe, None).await?;
            let mut placed: Vec<((Key, Id), Row)> = rows
                .into_iter()
                .filter(|r| keep(r))
                .map(|r| (self.place(sort, &r), r))
                .filter(|(at, _)| {
                    start
                        .as_ref()
                        .is_none_or(|s| ordered(at, s) == Ordering::Greater)
                })
                .collect();
            placed.sort_by(|(a, _), (b, _)| ordered(a, b));
            let limit = order.limit.map_or(usize::MAX, |n| n as usize);
            return Ok(placed.into_iter().take(limit).map(|(_, r)| r).collect());
        };
        let want = limit as usize;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut start = start;
        for k in 0.. {
            let len = page_len(limit, k);
            let paging = Paging {
                column,
                descending: order.descending,
                after: start.as_ref().map(|(key, _)| *key == Key::Null),
                limit: len,
            };
            let mut params = Vec::new();
            if let Some((key, id)) = &start {
                match (sort, key) {
                    (Sort::Store(_), Key::Int(i)) => {
                        params.extend([StoreValue::Int(*i), StoreValue::Int(*i)]);
                    }
                    (Sort::Store(_), Key::Bytes(b)) => {
                        // A plain date, the only store-ordered column of
                        // text (its key is its text's bytes).
                        let t = String::from_utf8_lossy(b).into_owned();
                        params.extend([StoreValue::Text(t.clone()), StoreValue::Text(t)]);
                    }
                    _ => {}
                }
                params.push(StoreValue::Blob(id.as_bytes().to_vec()));
            }
            let rows = self
                .candidates(pos, idx, probe, Some((&paging, params)))
                .await?;
            self.check_page_len(rows.len(), len)?;
            let full = rows.len() == len as usize;
            for r in rows {
                let at = self.place(sort, &r);
                // In order, after the start, and each row once: a store
                // answering an older version of a row beside its current
                // one (another place in the order) is refused too.
                if start
                    .as_ref()
                    .is_some_and(|s| ordered(&at, s) != Ordering::Greater)
                    || !seen.insert(r.id)
                {
                    return Err(self.bad_order("rows in the order asked, after the page's start"));
                }
                start = Some(at);
                if out.len() < want && keep(&r) {
                    out.push(r);
                }
            }
            if !full || out.len() >= want {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::sync::{Arc, Mutex};

    use super::{page_len, Order};
    use crate::error::Error;
    use crate::records::{NewPatient, Sex};
    use crate::sql::Cell;
    use crate::store::Store;
    use crate::vault::interposed::{Hooks, Interposed};
    use crate::vault::rows::{NewRow, Value};
    use crate::vault::stale_writes::{Place, ADMIN_PW};

    /// Counts the rows of the searched table the store answers (rows of
    /// its width), and answers them backwards, with a row added at the
    /// end, or always as the first time, when told to.
    struct Watch {
        inner: Arc<dyn Store>,
        width: usize,
        rows: AtomicUsize,
        reverse: AtomicBool,
        /// Kept: every row answered.
        kept: Mutex<Vec<Vec<Cell>>>,
        /// Added at the end of each answer.
        add: Mutex<Option<Vec<Cell>>>,
        /// Every answer is this one's, once it is set (by the first).
        replay: AtomicBool,
        first: Mutex<Option<Vec<Vec<Cell>>>>,
    }

    #[async_trait::async_trait]
    impl Hooks for Watch {
        fn inner(&self) -> &Arc<dyn Store> {
            &self.inner
        }
        fn answer(&self, mut rows: Vec<Vec<Cell>>) -> Vec<Vec<Cell>> {
            if rows.first().is_some_and(|r| r.len() == self.width) {
                self.rows.fetch_add(rows.len(), SeqCst);
                self.kept.lock().expect("kept").extend(rows.iter().cloned());
                if self.reverse.load(SeqCst) {
                    rows.reverse();
                }
                if let Some(r) = self.add.lock().expect("add").clone() {
                    rows.push(r);
                }
                if self.replay.load(SeqCst) {
                    let mut first = self.first.lock().expect("first");
                    return first.get_or_insert(rows).clone();
                }
            }
            rows
        }
    }

    /// 300 visits for a cough, on days 0 to 9: a search ordered by the
    /// plain day with a limit of 5 reads one page of candidates, not the
    /// 300 an order by the encrypted reason reads (the control that the
    /// count sees them). Refused: a page answered out of order, the first
    /// page answered again for the next, and a row's older version (another
    /// place in the order) beside its current one.
    #[tokio::test]
    async fn a_store_ordered_search_reads_a_page_and_checks_its_order() {
        let place = Place::sqlite().await;
        let mut s = place.open("admin", ADMIN_PW).await;
        s.apply_schema(
            "format = 2\n[[table]]\nname = \"visits\"\nparent = \"patients\"\n\
             [[column]]\ntable = \"visits\"\ncolumn = \"why\"\nscope = \"clinical\"\n\
             kind = \"text\"\nmax_bytes = 50\n\
             [[column]]\ntable = \"visits\"\ncolumn = \"day\"\nplain = \"integer\"\n\
             [[index]]\ntable = \"visits\"\ncolumn = \"bi_why\"\nover = [\"why\"]\nbits = 12\n",
        )
        .await
        .expect("the schema");
        let p = s
            .insert_patient(&NewPatient {
                family_name: "Dupont".into(),
                given_names: "X".into(),
                born: "1970-01-01".into(),
                sex: Sex::F,
            })
            .await
            .expect("a patient");
        let width = {
            let t = s.table("visits").await.expect("the table");
            let rows: Vec<NewRow> = (0..300i64)
                .map(|i| NewRow::child_of(p).set("why", "Cough").set("day", i % 10))
                .collect();
            t.insert_many(&rows).await.expect("the visits");
            crate::sql::rows::stored_columns(t.t()).len()
        };
        let watch = Arc::new(Interposed(Watch {
            inner: Arc::clone(&s.store),
            width,
            rows: AtomicUsize::new(0),
            reverse: AtomicBool::new(false),
            kept: Mutex::new(Vec::new()),
            add: Mutex::new(None),
            replay: AtomicBool::new(false),
            first: Mutex::new(None),
        }));
        s.store = watch.clone();
        let t = s.table("visits").await.expect("the table");
        let cough = [("why", Value::from("cough"))];
        let read = |order: Order| {
            let (t, watch, cough) = (&t, &watch, &cough);
            async move {
                watch.0.rows.store(0, SeqCst);
                let r = t.find_ordered(cough, &order).await;
                (r, watch.0.rows.load(SeqCst))
            }
        };
        let (found, n) = read(Order::by("day").limit(5)).await;
        let found = found.expect("a search");
        assert_eq!(found.len(), 5);
        assert!(found
            .iter()
            .all(|r| r.get("day") == Some(&Value::Integer(0))));
        assert_eq!(n, page_len(5, 0) as usize);
        let (found, n) = read(Order::by_id().descending().limit(5)).await;
        assert_eq!(found.expect("a search").len(), 5);
        assert_eq!(n, page_len(5, 0) as usize);
        // Control: ordered by the encrypted reason, every candidate.
        let (found, n) = read(Order::by("why").limit(5)).await;
        assert_eq!(found.expect("a search").len(), 5);
        assert_eq!(n, 300);
        // A store answering a page backwards.
        watch.0.reverse.store(true, SeqCst);
        for order in [
            Order::by("day").limit(20),
            Order::by("day").descending().limit(20),
            Order::by_id().limit(20),
        ] {
            let (r, _) = read(order).await;
            let err = r.expect_err("a page out of order");
            assert!(
                matches!(err, Error::BadStoredValue { column: "id", .. }),
                "{err}"
            );
        }
        watch.0.reverse.store(false, SeqCst);
        // Only day 5 kept: the first pages (days 0 to 4) hold none, so the
        // search asks for more; a store answering the first page again.
        let fifth = Order::by("day")
            .limit(3)
            .keeping(|r| r.get("day") == Some(&Value::Integer(5)));
        let (found, _) = read(fifth.clone()).await;
        let found = found.expect("a search");
        assert_eq!(found.len(), 3);
        watch.0.replay.store(true, SeqCst);
        let (r, _) = read(fifth).await;
        let err = r.expect_err("the first page again");
        assert!(matches!(err, Error::BadStoredValue { .. }), "{err}");
        watch.0.replay.store(false, SeqCst);
        // The first visit of day 0, as stored, then moved to day 9: its
        // older version added at the end of the answer sorts last (day 0,
        // the smallest id), its current one among day 9.
        watch.0.kept.lock().expect("kept").clear();
        let (all, _) = read(Order::by("day").descending().limit(1000)).await;
        let all = all.expect("a search");
        assert_eq!(all.len(), 300);
        let moved = all.last().expect("a visit").id;
        assert_eq!(
            all.last().and_then(|r| r.get("day")),
            Some(&Value::Integer(0))
        );
        let older = watch
            .0
            .kept
            .lock()
            .expect("kept")
            .iter()
            .find(|r| matches!(r.first(), Some(Cell::Bytes(b)) if b.as_slice() == moved.as_bytes()))
            .cloned()
            .expect("its stored row");
        let day9 = BTreeMap::from([("day".to_owned(), Value::Integer(9))]);
        assert!(t.update(moved, &day9).await.expect("an update"));
        let (found, _) = read(Order::by("day").descending().limit(1000)).await;
        let found = found.expect("a search");
        assert_eq!(found.len(), 300);
        let now = found.iter().position(|r| r.id == moved).expect("moved");
        assert!(now < 31, "among day 9: {now}");
        assert_eq!(found[now].get("day"), Some(&Value::Integer(9)));
        *watch.0.add.lock().expect("add") = Some(older);
        let (r, _) = read(Order::by("day").descending().limit(1000)).await;
        let err = r.expect_err("a row twice");
        assert!(matches!(err, Error::BadStoredValue { .. }), "{err}");
    }
}
