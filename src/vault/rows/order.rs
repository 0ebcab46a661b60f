//! Ordered, limited searches: in which order a search's rows come back,
//! how many, and from which row on ([`Order`]).

use std::cmp::Ordering;

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
/// - **by id** (the default) or **by a plain `integer`, `timestamp`,
///   `date` or `boolean` column**: the store orders the candidates (then by
///   id) and answers a page at a time; with a limit, about `limit` rows are
///   decrypted, however many match. The client checks every page is in the
///   order asked and after the last one.
/// - **by any other column** (an encrypted one, or a plain `text`, `bytes`
///   or `ref`): every candidate is decrypted, then sorted in the client. A
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
#[derive(Clone, Debug, Default)]
pub struct Order {
    column: Option<String>,
    descending: bool,
    limit: Option<u32>,
    after: Option<(Id, Value)>,
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
    /// `row` the last of the previous one.
    pub fn after(mut self, row: &Row) -> Order {
        let v = match &self.column {
            Some(c) => row.values.get(c).cloned().unwrap_or(Value::Null),
            None => Value::Null,
        };
        self.after = Some((row.id, v));
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

/// Rows a page of a store-ordered search asks for to fill `want` more:
/// a few more than that, for the candidates that do not match.
fn page_len(want: usize) -> u32 {
    let want = u32::try_from(want).unwrap_or(MAX_PAGE);
    want.saturating_add(want / 4)
        .saturating_add(4)
        .min(MAX_PAGE)
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

    /// Row `r`'s place in `sort`: its key (a column withheld from this user
    /// has none), then its id.
    fn place(&self, sort: Sort<'_>, r: &Row) -> Result<(Key, Id)> {
        let v = match sort {
            Sort::Id => None,
            Sort::Store(c) | Sort::Client(c) => r.values.get(&c.name),
        };
        Ok((self.key_of(sort, v.unwrap_or(&Value::Null))?, r.id))
    }

    /// The rows index `idx` (at `pos`) finds for `probe` that `keep`
    /// holds for, in `order`: the store pages through the candidates while
    /// the order is one it makes ([`Sort::Id`], [`Sort::Store`]), until
    /// the limit is reached; otherwise every candidate is decrypted and
    /// the client sorts them.
    pub(super) async fn matches(
        &self,
        pos: usize,
        idx: &Index,
        probe: Probe<'_>,
        order: &Order,
        keep: impl Fn(&Row) -> bool,
    ) -> Result<Vec<Row>> {
        let sort = self.sort_of(order)?;
        let mut start = match &order.after {
            Some((id, v)) => Some((self.key_of(sort, v)?, *id)),
            None => None,
        };
        let limit = order.limit.map_or(usize::MAX, |n| n as usize);
        let later = |a: &(Key, Id), b: &(Key, Id)| {
            let o = (&a.0, a.1).cmp(&(&b.0, b.1));
            o == if order.descending {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        };
        let column = match sort {
            Sort::Client(_) => None,
            Sort::Id => Some(None),
            Sort::Store(c) => Some(Some(c.name.as_str())),
        };
        let Some(column) = column else {
            // Every candidate, sorted here.
            let rows = self.candidates(pos, idx, probe, None).await?;
            let mut placed = Vec::with_capacity(rows.len());
            for r in rows.into_iter().filter(|r| keep(r)) {
                let at = self.place(sort, &r)?;
                if start.as_ref().is_none_or(|s| later(&at, s)) {
                    placed.push((at, r));
                }
            }
            placed.sort_by(|(a, _), (b, _)| {
                let o = (&a.0, a.1).cmp(&(&b.0, b.1));
                if order.descending {
                    o.reverse()
                } else {
                    o
                }
            });
            return Ok(placed.into_iter().take(limit).map(|(_, r)| r).collect());
        };
        if order.limit.is_none() && start.is_none() && !order.descending && column.is_none() {
            // By id, every row: one statement.
            let rows = self.candidates(pos, idx, probe, None).await?;
            return Ok(rows.into_iter().filter(|r| keep(r)).collect());
        }
        let mut out = Vec::new();
        while out.len() < limit {
            let len = page_len(limit - out.len());
            let paging = Paging {
                column,
                descending: order.descending,
                after: start.as_ref().map(|(k, _)| *k == Key::Null),
                limit: len,
            };
            let mut params = Vec::new();
            if let Some((key, id)) = &start {
                if let (Sort::Store(_), Key::Int(i)) = (sort, key) {
                    params.extend([StoreValue::Int(*i), StoreValue::Int(*i)]);
                } else if let (Sort::Store(_), Key::Bytes(b)) = (sort, key) {
                    // A plain date, the only store-ordered column of text
                    // (its key is its text's bytes).
                    let t = String::from_utf8_lossy(b).into_owned();
                    params.extend([StoreValue::Text(t.clone()), StoreValue::Text(t)]);
                }
                params.push(StoreValue::Blob(id.as_bytes().to_vec()));
            }
            let rows = self
                .candidates(pos, idx, probe, Some((&paging, params)))
                .await?;
            self.check_page_len(rows.len(), len)?;
            let full = rows.len() == len as usize;
            for r in rows {
                let at = self.place(sort, &r)?;
                if start.as_ref().is_some_and(|s| !later(&at, s)) {
                    return Err(self.bad_order("rows in the order asked, after the page's start"));
                }
                start = Some(at);
                if keep(&r) && out.len() < limit {
                    out.push(r);
                }
            }
            if !full {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;

    use super::{page_len, Order};
    use crate::error::Error;
    use crate::records::{NewPatient, Sex};
    use crate::sql::Cell;
    use crate::store::Store;
    use crate::vault::interposed::{Hooks, Interposed};
    use crate::vault::rows::{NewRow, Value};
    use crate::vault::stale_writes::{Place, ADMIN_PW};

    /// Counts the rows of the searched table the store answers (rows of
    /// its width), and answers them backwards when told to.
    struct Watch {
        inner: Arc<dyn Store>,
        width: usize,
        rows: AtomicUsize,
        reverse: AtomicBool,
    }

    #[async_trait::async_trait]
    impl Hooks for Watch {
        fn inner(&self) -> &Arc<dyn Store> {
            &self.inner
        }
        fn answer(&self, mut rows: Vec<Vec<Cell>>) -> Vec<Vec<Cell>> {
            if rows.first().is_some_and(|r| r.len() == self.width) {
                self.rows.fetch_add(rows.len(), SeqCst);
                if self.reverse.load(SeqCst) {
                    rows.reverse();
                }
            }
            rows
        }
    }

    /// 300 visits for a cough, on days 0 to 9: a search ordered by the
    /// plain day with a limit of 5 reads one page of candidates, not the
    /// 300 an order by the encrypted reason reads (the control that the
    /// count sees them); and a page answered out of order is refused.
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
        assert_eq!(n, page_len(5) as usize);
        let (found, n) = read(Order::by_id().descending().limit(5)).await;
        assert_eq!(found.expect("a search").len(), 5);
        assert_eq!(n, page_len(5) as usize);
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
    }
}
