//! Checked decoding of stored rows, shared by both stores.
//!
//! The database is not trusted (DESIGN.md, "What must hold" 8): an operator
//! can `ALTER TABLE … MODIFY` a column to another type, store NULL where a
//! value was expected, write bytes that are not UTF-8 or integers out of
//! range. Each store turns a driver row into [`Cell`]s, a step that cannot
//! fail, and every field is then taken out through a checked conversion of
//! [`RowDecoder`] that names the table and column it failed on and never
//! carries the stored value ([`Error::BadStoredValue`]).

use crate::error::{Error, Result};

/// One stored value as a driver returned it, before any interpretation.
#[derive(Clone, PartialEq, Eq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// A signed integer.
    Int(i64),
    /// An unsigned integer (MySQL `UNSIGNED` columns).
    UInt(u64),
    /// Text or binary bytes (the MySQL protocol does not tell them apart;
    /// SQLite's TEXT and BLOB both land here).
    Bytes(Vec<u8>),
    /// Anything else (a float, a date, a value the driver already took).
    Other,
}

// A cell may hold a ciphertext, a blind index or a key: never printed.
impl std::fmt::Debug for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Null => f.write_str("Null"),
            Cell::Int(_) | Cell::UInt(_) => f.write_str("Int(..)"),
            Cell::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Cell::Other => f.write_str("Other"),
        }
    }
}

/// A value exported as it is stored (`copy`, `verify`).
impl From<crate::store::Value> for Cell {
    fn from(v: crate::store::Value) -> Cell {
        use crate::store::Value;
        match v {
            Value::Null => Cell::Null,
            Value::Int(n) => Cell::Int(n),
            Value::Text(t) => Cell::Bytes(t.into_bytes()),
            Value::Blob(b) => Cell::Bytes(b),
        }
    }
}

/// Reads the cells of one row of `table`, column by column, through
/// checked conversions.
pub struct RowDecoder {
    table: &'static str,
    columns: &'static [&'static str],
    cells: Vec<Cell>,
}

impl RowDecoder {
    /// A decoder over `cells`, the values of `columns` of `table` in order.
    /// A row with another number of values is refused.
    pub fn new(
        table: &'static str,
        columns: &'static [&'static str],
        cells: Vec<Cell>,
    ) -> Result<RowDecoder> {
        if cells.len() != columns.len() {
            return Err(Error::BadStoredValue {
                table,
                column: "*",
                expected: "a row with the declared number of columns",
            });
        }
        Ok(RowDecoder {
            table,
            columns,
            cells,
        })
    }

    fn bad(&self, i: usize, expected: &'static str) -> Error {
        Error::BadStoredValue {
            table: self.table,
            column: self.columns.get(i).copied().unwrap_or("?"),
            expected,
        }
    }

    fn take(&mut self, i: usize) -> Cell {
        self.cells
            .get_mut(i)
            .map(|c| std::mem::replace(c, Cell::Other))
            .unwrap_or(Cell::Other)
    }

    /// Whether cell `i` is NULL (not taken: read it after with another
    /// method if it is not).
    pub fn is_null(&self, i: usize) -> bool {
        matches!(self.cells.get(i), Some(Cell::Null))
    }

    /// A non-NULL byte string (ciphertexts, keys, signatures, ids).
    pub fn blob(&mut self, i: usize) -> Result<Vec<u8>> {
        match self.take(i) {
            Cell::Bytes(b) => Ok(b),
            Cell::Null => Err(self.bad(i, "a byte string (it is NULL)")),
            _ => Err(self.bad(i, "a byte string")),
        }
    }

    /// A NULL or a byte string.
    pub fn opt_blob(&mut self, i: usize) -> Result<Option<Vec<u8>>> {
        match self.take(i) {
            Cell::Null => Ok(None),
            Cell::Bytes(b) => Ok(Some(b)),
            _ => Err(self.bad(i, "a byte string or NULL")),
        }
    }

    /// A 16-byte row id.
    pub fn id(&mut self, i: usize) -> Result<[u8; 16]> {
        let b = self.blob(i)?;
        b.try_into().map_err(|_| self.bad(i, "a 16-byte row id"))
    }

    /// A non-NULL UTF-8 text.
    pub fn text(&mut self, i: usize) -> Result<String> {
        match self.take(i) {
            Cell::Bytes(b) => String::from_utf8(b).map_err(|_| self.bad(i, "UTF-8 text")),
            Cell::Null => Err(self.bad(i, "text (it is NULL)")),
            _ => Err(self.bad(i, "text")),
        }
    }

    /// A NULL or a UTF-8 text.
    pub fn opt_text(&mut self, i: usize) -> Result<Option<String>> {
        match self.take(i) {
            Cell::Null => Ok(None),
            Cell::Bytes(b) => String::from_utf8(b)
                .map(Some)
                .map_err(|_| self.bad(i, "UTF-8 text or NULL")),
            _ => Err(self.bad(i, "text or NULL")),
        }
    }

    /// A non-NULL integer that fits `T`. Decimal digits in a byte string
    /// are accepted too (MySQL's text protocol sends numbers that way).
    pub fn int<T: TryFrom<i64>>(&mut self, i: usize) -> Result<T> {
        let wide: Option<i64> = match self.take(i) {
            Cell::Int(n) => Some(n),
            Cell::UInt(n) => i64::try_from(n).ok(),
            Cell::Bytes(b) if b.len() <= 20 => std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.parse::<i64>().ok()),
            Cell::Null => return Err(self.bad(i, "an integer (it is NULL)")),
            _ => None,
        };
        wide.and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| self.bad(i, "an integer in range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLS: &[&str] = &["a", "b"];

    fn dec(cells: Vec<Cell>) -> RowDecoder {
        RowDecoder::new("t", COLS, cells).expect("two cells")
    }

    #[test]
    fn conversions_are_checked_and_name_the_column() {
        let mut d = dec(vec![Cell::Int(-1), Cell::Bytes(vec![0xff, 0xfe])]);
        let e = d.int::<u32>(0).unwrap_err().to_string();
        assert!(e.contains("t.a"), "{e}");
        let e = d.text(1).unwrap_err().to_string();
        assert!(e.contains("t.b") && e.contains("UTF-8"), "{e}");

        let mut d = dec(vec![Cell::Null, Cell::UInt(u64::MAX)]);
        assert!(d.blob(0).is_err());
        assert!(d.int::<i64>(1).is_err());

        let mut d = dec(vec![Cell::Bytes(b"4000000000".to_vec()), Cell::Int(7)]);
        assert_eq!(d.int::<u32>(0).ok(), Some(4_000_000_000));
        assert_eq!(d.int::<u8>(1).ok(), Some(7));
    }

    #[test]
    fn a_row_of_the_wrong_width_is_refused() {
        assert!(RowDecoder::new("t", COLS, vec![Cell::Null]).is_err());
    }

    #[test]
    fn errors_never_carry_the_value() {
        let secret = b"Dupont-1970".to_vec();
        let mut d = dec(vec![Cell::Bytes(secret.clone()), Cell::Bytes(secret)]);
        let e = format!(
            "{:?} {}",
            d.id(0).unwrap_err(),
            d.int::<i64>(1).unwrap_err()
        );
        assert!(!e.contains("Dupont"), "{e}");
    }
}
