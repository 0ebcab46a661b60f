//! Statements over medvault's built-in tables, `patients` and `notes`,
//! for each dialect, with the parameters of a row in the order the
//! statements name them. The stores only run them (`Store::select`,
//! `Store::lookup`, `Store::write_all`); rows come back through the checked
//! decoders [`super::patient_row`] and [`super::note_row`].
//!
//! The column lists are [`super::PATIENTS`] and [`super::NOTES`], which a
//! test checks against the columns `schema/policy.toml` gives both tables.

use super::ddl::Dialect;
use super::{TableSpec, NOTES, PATIENTS};
use crate::store::{IndexColumn, NoteRow, PatientRow, Value};

/// Rows per multi-row `INSERT`: one statement (one round trip on MySQL,
/// one prepared statement on SQLite) per this many rows. 500 patients are
/// 6,000 parameters, under both dialects' limits.
pub const INSERT_CHUNK: usize = 500;

fn columns(d: Dialect, cols: &[&str]) -> String {
    cols.iter()
        .map(|c| d.quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

fn tuples(width: usize, rows: usize) -> String {
    let one = format!("({})", vec!["?"; width].join(", "));
    vec![one; rows.max(1)].join(", ")
}

fn select(d: Dialect, t: &TableSpec) -> String {
    format!("SELECT {} FROM {}", columns(d, t.columns), d.quote(t.name))
}

/// The patient with `id = ?`.
pub fn patient(d: Dialect) -> String {
    format!("{} WHERE {} = ?", select(d, &PATIENTS), d.quote("id"))
}

/// Patients whose blind index `column` holds one of `n` values.
pub fn patients_by_index(d: Dialect, column: IndexColumn, n: usize) -> String {
    format!(
        "{} WHERE {} IN ({})",
        select(d, &PATIENTS),
        d.quote(column.column()),
        vec!["?"; n.max(1)].join(", ")
    )
}

/// A page of `limit` patients in id order after `id > ?`.
pub fn patients_page(d: Dialect, limit: u32) -> String {
    format!(
        "{} WHERE {} > ? ORDER BY {} LIMIT {limit}",
        select(d, &PATIENTS),
        d.quote("id"),
        d.quote("id")
    )
}

/// Inserts `n` patients: their parameters ([`patient_values`]) one row
/// after the other.
pub fn insert_patients(d: Dialect, n: usize) -> String {
    format!(
        "INSERT INTO {} ({}) VALUES {}",
        d.quote(PATIENTS.name),
        columns(d, PATIENTS.columns),
        tuples(PATIENTS.columns.len(), n)
    )
}

/// A patient's values in the order of [`super::PATIENTS`].
pub fn patient_values(p: &PatientRow) -> Vec<Value> {
    vec![
        Value::Blob(p.id.to_vec()),
        Value::Blob(p.family_name.clone()),
        Value::Blob(p.given_names.clone()),
        Value::Blob(p.born.clone()),
        Value::Blob(p.sex.clone()),
        Value::Blob(p.bi_family_name.clone()),
        Value::Blob(p.bi_given_names.clone()),
        Value::Blob(p.bi_born.clone()),
        Value::Blob(p.bi_family_born.clone()),
        Value::Text(p.author.clone()),
        Value::Int(p.created_at),
        Value::Int(p.updated_at),
    ]
}

/// The columns an update rewrites: every encrypted field, every blind
/// index and `updated_at` (not the id, the author or `created_at`).
const UPDATED: &[&str] = &[
    "family_name",
    "given_names",
    "born",
    "sex",
    "bi_family_name",
    "bi_given_names",
    "bi_born",
    "bi_family_born",
    "updated_at",
];

/// Rewrites a patient's fields: parameters from [`update_values`].
pub fn update_patient(d: Dialect) -> String {
    format!(
        "UPDATE {} SET {} WHERE {} = ?",
        d.quote(PATIENTS.name),
        UPDATED
            .iter()
            .map(|c| format!("{} = ?", d.quote(c)))
            .collect::<Vec<_>>()
            .join(", "),
        d.quote("id")
    )
}

/// The parameters of [`update_patient`]: the columns it rewrites (every field and index, `updated_at`), then
/// the id.
pub fn update_values(p: &PatientRow) -> Vec<Value> {
    let mut all = patient_values(p);
    let id = all.remove(0);
    let updated_at = all.pop();
    all.truncate(8); // the four fields and four indexes
    all.extend(updated_at);
    all.push(id);
    all
}

/// Deletes the patient with `id = ?` (their notes go with them: the
/// foreign key cascades).
pub fn delete_patient(d: Dialect) -> String {
    format!(
        "DELETE FROM {} WHERE {} = ?",
        d.quote(PATIENTS.name),
        d.quote("id")
    )
}

/// The notes of the patient `patient_id = ?`, in the order written.
pub fn notes_of(d: Dialect) -> String {
    format!(
        "{} WHERE {} = ? ORDER BY {}, {}",
        select(d, &NOTES),
        d.quote("patient_id"),
        d.quote("created_at"),
        d.quote("seq")
    )
}

/// The columns a note is inserted with: all but `seq`, which the store
/// assigns (FORMAT.md §9).
const NOTE_INSERTED: &[&str] = &[
    "id",
    "patient_id",
    "scope_id",
    "body",
    "author",
    "created_at",
];

/// Inserts `n` notes, each with its [`note_values`] then (SQLite only) its
/// position in the batch, counted from 1.
///
/// `seq` follows the order of the batch, after every stored note:
/// - MySQL: `AUTO_INCREMENT`, assigned in the order of the rows;
/// - SQLite: the largest stored `seq` (read once, before any row of the
///   statement goes in: a statement whose `SELECT` reads the table it
///   fills is evaluated whole first) plus the position. A `seq` that would
///   pass the largest integer is NULL, which the `NOT NULL` constraint
///   refuses, so the write fails whole rather than wrap or turn real.
pub fn insert_notes(d: Dialect, n: usize) -> String {
    let table = d.quote(NOTES.name);
    let cols = columns(d, NOTE_INSERTED);
    match d {
        Dialect::Mysql => format!(
            "INSERT INTO {table} ({cols}) VALUES {}",
            tuples(NOTE_INSERTED.len(), n)
        ),
        Dialect::Sqlite => {
            let picked = (1..=NOTE_INSERTED.len())
                .map(|i| format!("v.column{i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let pos = format!("v.column{}", NOTE_INSERTED.len() + 1);
            format!(
                "INSERT INTO {table} ({cols}, {seq}) \
                 SELECT {picked}, \
                 CASE WHEN b.m <= 9223372036854775807 - {pos} THEN b.m + {pos} END \
                 FROM (VALUES {}) AS v, \
                 (SELECT COALESCE(MAX({seq}), 0) AS m FROM {table}) AS b",
                tuples(NOTE_INSERTED.len() + 1, n),
                seq = d.quote("seq"),
            )
        }
    }
}

/// A note's values in the order of [`insert_notes`], without the position.
pub fn note_values(n: &NoteRow) -> Vec<Value> {
    vec![
        Value::Blob(n.id.to_vec()),
        Value::Blob(n.patient_id.to_vec()),
        Value::Int(i64::from(n.scope_id)),
        Value::Blob(n.body.clone()),
        Value::Text(n.author.clone()),
        Value::Int(n.created_at),
    ]
}

/// The statements that insert `patients` then `notes` (of those patients or
/// of patients stored already), for one transaction:
/// - patients in id order, so the id index grows at its end rather than
///   at random places (ids are random);
/// - notes with `seq` in the order given (the order of writing), in chunks
///   of [`INSERT_CHUNK`] rows (on SQLite in id order too: each row carries
///   its position).
///
/// A note of an unknown patient fails the foreign key, and the
/// transaction with it.
pub fn insert_batch(
    d: Dialect,
    patients: &[PatientRow],
    notes: &[NoteRow],
) -> Vec<(String, Vec<Value>)> {
    let mut sorted: Vec<&PatientRow> = patients.iter().collect();
    sorted.sort_unstable_by_key(|p| p.id);
    let mut out = Vec::new();
    for chunk in sorted.chunks(INSERT_CHUNK) {
        let values = chunk.iter().flat_map(|p| patient_values(p)).collect();
        out.push((insert_patients(d, chunk.len()), values));
    }
    for chunk in notes.chunks(INSERT_CHUNK) {
        let mut rows: Vec<(i64, &NoteRow)> = (1_i64..).zip(chunk).collect();
        if d == Dialect::Sqlite {
            // The position carries the order; the rows go in id order.
            rows.sort_unstable_by_key(|(_, n)| n.id);
        }
        let mut values = Vec::with_capacity(chunk.len() * (NOTE_INSERTED.len() + 1));
        for (pos, n) in rows {
            values.extend(note_values(n));
            if d == Dialect::Sqlite {
                values.push(Value::Int(pos));
            }
        }
        out.push((insert_notes(d, chunk.len()), values));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-kept column lists of the decoders are the columns the
    /// built-in schema gives both tables (in another order), and an update
    /// rewrites every column but the id and the row's origin.
    #[test]
    fn column_lists_are_the_schema_s() {
        let schema = crate::schema::Schema::builtin();
        for spec in [PATIENTS, NOTES] {
            let table = schema.table(spec.name).expect("a built-in table");
            let mut want: Vec<&str> = super::super::table_spec(table).columns.to_vec();
            let mut got = spec.columns.to_vec();
            want.sort_unstable();
            got.sort_unstable();
            assert_eq!(got, want, "{}", spec.name);
        }
        let kept = ["id", "author", "created_at"];
        let mut rewritten: Vec<&str> = PATIENTS
            .columns
            .iter()
            .copied()
            .filter(|c| !kept.contains(c))
            .collect();
        rewritten.sort_unstable();
        let mut updated = UPDATED.to_vec();
        updated.sort_unstable();
        assert_eq!(updated, rewritten);
        assert_eq!(
            NOTE_INSERTED,
            &NOTES.columns[..NOTES.columns.len() - 1],
            "notes: every column but seq, in order"
        );
    }

    #[test]
    fn update_values_follow_the_statement() {
        let p = PatientRow {
            id: [7; 16],
            family_name: vec![1],
            given_names: vec![2],
            born: vec![3],
            sex: vec![4],
            bi_family_name: vec![5],
            bi_given_names: vec![6],
            bi_born: vec![7],
            bi_family_born: vec![8],
            author: "a".into(),
            created_at: 10,
            updated_at: 11,
        };
        let v = update_values(&p);
        assert_eq!(v.len(), UPDATED.len() + 1);
        assert!(matches!(&v[0], Value::Blob(b) if b == &[1]));
        assert!(matches!(&v[7], Value::Blob(b) if b == &[8]));
        assert!(matches!(&v[8], Value::Int(11)));
        assert!(matches!(&v[9], Value::Blob(b) if b == &[7; 16]));
    }
}
