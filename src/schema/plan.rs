//! What the server learns from a schema's blind indexes, index by index
//! and row by row (`medvault schema plan`, `schema/LANGUAGE.md` §6.1).
//!
//! An index value tells the server which rows share it. How finely it
//! tells them apart is its number of *classes*: the `2^bits` values of
//! its truncated HMAC, or fewer where the values themselves are fewer (a
//! year of birth has about [`YEARS`] values, whatever the bits). With R
//! rows, C = R / classes rows share each value: the crowd a row hides in.
//!
//! The server sees every index of a row side by side, so a row hides only
//! in the crowd of rows sharing *all* its values. The planner bounds that
//! from above by adding up the bits each index reveals (`log2(classes)`):
//! indexes over the same columns overlap, so the true figure can be lower,
//! never higher. A row whose crowd is under 2 can be singled out by its
//! index values alone: whoever learns one row's values (by inserting a
//! known patient) can find that patient's other rows.

use super::{ColumnType, Index, IndexKind, Kind, Schema, Table};

/// Years a date index tells apart: the years of a lifetime.
pub const YEARS: f64 = 120.0;

/// An index over one column that holds this many values or fewer leaks
/// that column on its own: the server can name each class by how many
/// rows it holds (sex, a flag, a year of birth). Truncation does not help:
/// the few values stay apart or merge whole. The schema refuses it unless
/// acknowledged (`danger_low_cardinality`, LANGUAGE.md §6.1).
pub const LOW_CLASSES: f64 = 256.0;

/// What one index reveals.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexLeak {
    /// The index column.
    pub index: String,
    /// The columns it covers.
    pub over: Vec<String>,
    /// Its kind.
    pub kind: IndexKind,
    /// Bits kept of its HMAC.
    pub bits: u16,
    /// Values the columns can hold (their canonical forms), roughly: what
    /// the index tells apart before truncation.
    pub values: f64,
    /// Classes the server can tell apart: `2^bits`, or the number of
    /// values the columns can hold where that is smaller.
    pub classes: f64,
    /// Expected rows sharing each index value, R / classes.
    pub crowd: f64,
    /// Index values one row holds in it: one, a prefix index's one per
    /// length, a tokens index's one per word (at most, as many as its
    /// value holds: 16 at 9 to 16 bits).
    pub values_per_row: u32,
    /// For a prefix index, what its chain tells apart up to each length:
    /// (length, classes), shortest first. The server sees each: the first
    /// reveals the classes of the value's first `shortest` characters.
    pub prefixes: Vec<(u8, f64)>,
    /// Bits of a row it reveals, `log2(classes)`.
    pub bits_revealed: f64,
}

/// What the indexes of one table reveal together.
#[derive(Clone, Debug, PartialEq)]
pub struct TableLeak {
    /// The table.
    pub table: String,
    /// Rows planned (R).
    pub population: u64,
    /// Its indexes, in order.
    pub indexes: Vec<IndexLeak>,
    /// Index values one row holds, all indexes together.
    pub values_per_row: u32,
    /// Bits a row's index values reveal side by side, at most: the sum of
    /// each index's (overlapping indexes make the true figure lower).
    pub row_bits: f64,
    /// Expected rows sharing every index value of a row, at least:
    /// R / 2^row_bits.
    pub row_crowd: f64,
}

impl TableLeak {
    /// Whether a row's index values may single it out (a crowd under 2).
    pub fn singles_out(&self) -> bool {
        !self.indexes.is_empty() && self.row_crowd < 2.0
    }
}

/// The number of values a column of `kind` holding at most `max_bytes`
/// bytes can take, as the index sees them (its canonical forms), roughly.
pub fn values_of(kind: Kind, max_bytes: usize) -> f64 {
    let len = i32::try_from(max_bytes.min(64)).unwrap_or(64);
    match kind {
        // 120 years of days; a partial date adds the years and months.
        Kind::Date { partial: false } => YEARS * 365.25,
        Kind::Date { partial: true } => YEARS * (365.25 + 12.0 + 1.0),
        // Upper-case letters, digits and the punctuation a code keeps.
        Kind::Code => 64f64.powi(len),
        // Digits and a sign.
        Kind::Integer => 2.0 * 10f64.powi(len),
        // Letters and a space, a lower bound for any script.
        Kind::Name | Kind::Text => 27f64.powi(len),
    }
}

/// What `idx` of `table` reveals with R = `population` rows.
pub fn index_leak(table: &Table, idx: &Index, population: u64) -> IndexLeak {
    let by_bits = 2f64.powi(i32::from(idx.bits));
    let values: f64 = match idx.kind {
        IndexKind::Year => YEARS,
        IndexKind::YearMonth => YEARS * 12.0,
        IndexKind::Prefix => idx
            .over
            .iter()
            .map(|c| match table.column(c).map(|c| &c.ty) {
                Some(ColumnType::Encrypted(e)) => {
                    let longest = idx.prefix.map_or(1, |l| usize::from(l.longest));
                    values_of(e.kind, e.max_bytes.min(longest))
                }
                _ => f64::INFINITY,
            })
            .product(),
        IndexKind::Equal | IndexKind::Phonetic | IndexKind::Tokens | IndexKind::Unique => idx
            .over
            .iter()
            .map(|c| match table.column(c).map(|c| &c.ty) {
                Some(ColumnType::Encrypted(e)) => values_of(e.kind, e.max_bytes),
                _ => f64::INFINITY,
            })
            .product(),
    };
    // A prefix chain's values side by side tell apart up to 2^bits per
    // length, and never more than the prefixes themselves.
    // A tokens index: one value per word, up to the most its value holds
    // (the server reads the whole value, not only the slots), and never
    // more than the 2^bits distinct keyed words there are; its value is a
    // set of them, one of at most 2^(2^bits).
    let count = match (idx.prefix, idx.kind) {
        (Some(l), _) => l.count(),
        (None, IndexKind::Tokens) => idx.max_words().min(1 << idx.bits.min(16)),
        _ => 1,
    };
    let mut by_bits = by_bits.powi(i32::try_from(count).unwrap_or(i32::MAX));
    if idx.kind == IndexKind::Tokens {
        by_bits = by_bits.min(2f64.powf(2f64.powi(i32::from(idx.bits))));
    }
    let r = population.max(1) as f64;
    // A unique index: each row its own value, which tells no rows apart
    // that their ids do not (a keyed tag, no two alike).
    let unique = idx.kind == IndexKind::Unique;
    let classes = if unique {
        r
    } else {
        by_bits.min(values).max(1.0)
    };
    // Each length: the prefixes of k characters (of a column holding at
    // most `max_bytes`), and 2^bits per length up to k.
    let prefixes = match (idx.prefix, table.column(&idx.over[0]).map(|c| &c.ty)) {
        (Some(l), Some(ColumnType::Encrypted(e))) => (l.shortest..=l.longest)
            .map(|k| {
                let chain = 2f64.powi(i32::from(idx.bits) * i32::from(k - l.shortest + 1));
                let held = values_of(e.kind, e.max_bytes.min(usize::from(k)));
                (k, chain.min(held).max(1.0))
            })
            .collect(),
        _ => Vec::new(),
    };
    IndexLeak {
        index: idx.name.clone(),
        over: idx.over.clone(),
        kind: idx.kind,
        bits: idx.bits,
        values,
        classes,
        crowd: r / classes,
        values_per_row: u32::try_from(count).unwrap_or(u32::MAX),
        prefixes,
        bits_revealed: if unique { 0.0 } else { classes.log2() },
    }
}

/// What every table's indexes reveal, each table with its planned rows
/// (its `planned_rows`, else the schema's `planned_population`), or with
/// `population` rows for every table when it is given.
pub fn plan(schema: &Schema, population: Option<u64>) -> Vec<TableLeak> {
    schema
        .tables
        .iter()
        .map(|t| {
            let r = population.unwrap_or_else(|| t.population(schema));
            let indexes: Vec<IndexLeak> = t.indexes.iter().map(|i| index_leak(t, i, r)).collect();
            table_leak(t, r, indexes)
        })
        .collect()
}

/// What `indexes`, the leaks of `t`'s indexes, reveal of a row together.
pub fn table_leak(t: &Table, population: u64, indexes: Vec<IndexLeak>) -> TableLeak {
    let row_bits: f64 = indexes.iter().map(|i| i.bits_revealed).sum();
    TableLeak {
        table: t.name.clone(),
        population,
        values_per_row: indexes.iter().map(|i| i.values_per_row).sum(),
        row_crowd: population.max(1) as f64 / 2f64.powf(row_bits),
        row_bits,
        indexes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leak<'a>(t: &'a TableLeak, name: &str) -> &'a IndexLeak {
        t.indexes.iter().find(|i| i.index == name).unwrap()
    }

    #[test]
    fn the_built_in_patients_are_singled_out_by_their_indexes_together() {
        let p = plan(Schema::builtin(), None);
        let patients = p.iter().find(|t| t.table == "patients").unwrap();
        assert_eq!(patients.population, 100_000);
        // Each index alone hides a row among about three.
        let family = leak(patients, "bi_family_name");
        assert_eq!(family.classes, 32768.0);
        assert!((family.crowd - 3.05).abs() < 0.01, "{family:?}");
        // A year has about 120 values, whatever its 8 bits allow.
        let year = leak(patients, "bi_born_year");
        assert_eq!((year.classes, year.bits), (YEARS, 8));
        assert!((year.crowd - 833.3).abs() < 0.1, "{year:?}");
        // The family name's prefixes of 3, 4 and 5 letters: three values
        // a row, telling apart at most the 27^3, 27^4, 27^5 prefixes, and
        // never more than 2^15 per value side by side.
        let prefix = leak(patients, "bi_family_prefix");
        assert_eq!(prefix.values_per_row, 3);
        let want = [(3u8, 19683.0f64), (4, 531441.0), (5, 14348907.0)];
        assert_eq!(prefix.prefixes.len(), 3);
        for ((k, got), (wk, w)) in prefix.prefixes.iter().zip(want) {
            assert_eq!(*k, wk);
            assert!((got - w).abs() / w < 1e-9, "{k}: {got} != {w}");
        }
        assert!((prefix.bits_revealed - 14348907f64.log2()).abs() < 1e-9);
        // The given names' words: one value a word, up to the 16 a value
        // holds.
        let words = leak(patients, "bi_given_words");
        assert_eq!((words.values_per_row, words.kind), (16, IndexKind::Tokens));
        assert_eq!(words.classes, 2f64.powi(240));
        // Side by side they single a row out.
        assert_eq!(patients.values_per_row, 25);
        assert!(patients.row_bits > 70.0, "{patients:?}");
        assert!(patients.singles_out());
        // Notes have no index: nothing to single out by.
        let notes = p.iter().find(|t| t.table == "notes").unwrap();
        assert!(!notes.singles_out() && notes.indexes.is_empty());
    }

    #[test]
    fn a_tokens_value_is_a_set_of_at_most_2_to_the_bits_keyed_words() {
        let remarks = "format = 2\n[[table]]\nname = \"remarks\"\n\
                 [[column]]\ntable = \"remarks\"\ncolumn = \"text\"\nscope = \"clinical\"\n\
                 kind = \"text\"\nmax_bytes = 200\npadding = { block = 16 }\n\
                 [[index]]\ntable = \"remarks\"\ncolumn = \"bi_w\"\nover = [\"text\"]\n\
                 kind = \"tokens\"\nslots = 2\nbits = 2\n";
        let s = Schema::builtin().extend(remarks).unwrap();
        let p = plan(&s, None);
        let w = leak(p.iter().find(|t| t.table == "remarks").unwrap(), "bi_w");
        // 4 keyed words there are at 2 bits, so a value is one of 2^4 sets.
        assert_eq!((w.values_per_row, w.classes), (4, 16.0));
        assert!((w.bits_revealed - 4.0).abs() < 1e-9);
    }

    #[test]
    fn a_low_cardinality_column_has_few_classes_whatever_the_bits() {
        let visits = "format = 2\n[[table]]\nname = \"visits\"\nplanned_rows = 20000\n\
                 [[column]]\ntable = \"visits\"\ncolumn = \"ward\"\nscope = \"clinical\"\n\
                 kind = \"code\"\nmax_bytes = 1\npadding = { block = 16 }\n\
                 [[index]]\ntable = \"visits\"\ncolumn = \"bi_ward\"\nover = [\"ward\"]\n\
                 bits = 12\n";
        // Refused on its own: 64 values the server can name by frequency.
        let err = Schema::builtin().extend(visits).unwrap_err().to_string();
        assert!(
            err.contains("ward alone, which holds about 64 values"),
            "{err}"
        );
        let s = Schema::builtin()
            .extend(&format!("{visits}danger_low_cardinality = true\n"))
            .unwrap();
        let p = plan(&s, None);
        let visits = p.iter().find(|t| t.table == "visits").unwrap();
        let ward = leak(visits, "bi_ward");
        assert_eq!(ward.classes, 64.0, "one letter, digit or sign");
        assert!((ward.crowd - 20000.0 / 64.0).abs() < 1e-6);
        assert!(!visits.singles_out());
        // A prefix index over a code of 2 bytes: its prefixes of 2 to 4
        // characters are the code's 64^2 values at every length.
        let codes = "format = 2\n[[table]]\nname = \"codes\"\nplanned_rows = 20000\n\
                 [[column]]\ntable = \"codes\"\ncolumn = \"icd\"\nscope = \"clinical\"\n\
                 kind = \"code\"\nmax_bytes = 2\npadding = { block = 16 }\n\
                 [[index]]\ntable = \"codes\"\ncolumn = \"bi_icd_start\"\nover = [\"icd\"]\n\
                 kind = \"prefix\"\nlongest = 4\nbits = 12\n";
        let s = Schema::builtin().extend(codes).unwrap();
        let p = plan(&s, None);
        let icd = leak(
            p.iter().find(|t| t.table == "codes").unwrap(),
            "bi_icd_start",
        );
        assert_eq!(icd.prefixes, [(2, 4096.0), (3, 4096.0), (4, 4096.0)]);
        assert_eq!((icd.classes, icd.values_per_row), (4096.0, 3));
        // The population given replaces the planned rows.
        let p = plan(&s, Some(1000));
        assert!(p.iter().all(|t| t.population == 1000));
    }
}
