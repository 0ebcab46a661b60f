//! Patients and notes: sealing and opening fields, blind-index lookups.
//!
//! Every field is sealed with envelope v1 bound to its cell
//! (FORMAT.md §1); lookups compute the blind index under every epoch key
//! the user holds for `identity`, fetch the candidates, decrypt them and
//! keep only exact (canonical) matches, so truncation never shows a false
//! positive.

use std::collections::HashSet;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::{now, Session, SCOPE_CLINICAL, SCOPE_IDENTITY};
use crate::crypto::envelope::{self, Cell, Header};
use crate::crypto::padding::unpad;
use crate::error::{Error, Result};
use crate::index::{self, canonical};
use crate::policy::ColumnPolicy;
use crate::records::{
    Id, NewNote, NewPatient, Note, NoteList, Patient, PatientPage, PatientQuery, Sex,
};
use crate::sql::{self, builtin};
use crate::store::{IndexColumn, NoteRow, PatientRow, Value};

const PATIENTS: &str = "patients";
const NOTES: &str = "notes";

/// Largest page [`Session::list_patients`] returns.
pub const MAX_PAGE: u32 = 1000;

/// A checked patient: trimmed values and their canonical forms.
struct Checked {
    family: String,
    given: String,
    born: String,
    sex: Sex,
    family_c: String,
    given_c: String,
}

impl super::EpochKeys {
    /// Seals `padded` into an envelope v1 bound to `cell` (FORMAT.md §1.1),
    /// with the S2V prefix of its column when this epoch keeps one.
    pub(super) fn seal_v1(&self, header: Header, cell: &Cell<'_>, padded: &[u8]) -> Vec<u8> {
        match self.prefix(cell.table, cell.column) {
            Some(p) => envelope::seal_prepared(&self.field, p, header, cell, padded),
            None => envelope::seal(&self.field, header, cell, padded),
        }
    }

    /// Opens an envelope v1 bound to `cell` (still padded).
    pub(super) fn open_v1(&self, header: Header, cell: &Cell<'_>, blob: &[u8]) -> Result<Vec<u8>> {
        match self.prefix(cell.table, cell.column) {
            Some(p) => envelope::open_prepared(&self.field, p, header, cell, blob),
            None => envelope::open(&self.field, header, cell, blob),
        }
    }
}

impl Session {
    fn column(&self, table: &str, column: &str) -> Result<&ColumnPolicy> {
        self.policy
            .column(table, column)
            .ok_or_else(|| Error::Policy(format!("{table}.{column} is not in the policy")))
    }

    fn index_bits(&self, column: &str) -> Result<u16> {
        self.policy
            .index(PATIENTS, column)
            .map(|i| i.bits)
            .ok_or_else(|| Error::Policy(format!("{PATIENTS}.{column} is not in the policy")))
    }

    fn check_name(
        &self,
        column: &'static str,
        what: &'static str,
        v: &str,
    ) -> Result<(String, String)> {
        let v = v.trim();
        let max = self.column(PATIENTS, column)?.max_bytes;
        if v.len() > max {
            return Err(Error::TooLong {
                field: what,
                len: v.len(),
                max,
            });
        }
        let c = canonical::name(v);
        if c.is_empty() {
            return Err(Error::EmptyValue(what));
        }
        Ok((v.to_owned(), c))
    }

    fn check(&self, p: &NewPatient) -> Result<Checked> {
        let (family, family_c) = self.check_name("family_name", "family name", &p.family_name)?;
        // A patient may have a single name: given names may be empty (but
        // a search by given names needs one).
        let (given, given_c) = if canonical::name(&p.given_names).is_empty() {
            (String::new(), String::new())
        } else {
            self.check_name("given_names", "given names", &p.given_names)?
        };
        // The day, or the month and day, of a birth may be unknown.
        let born = canonical::partial_date(p.born.trim())?;
        Ok(Checked {
            family,
            given,
            born,
            sex: p.sex,
            family_c,
            given_c,
        })
    }

    /// The current epoch of a scope and its keys, or `NoAccess`.
    pub(super) fn current_keys(&self, scope: u32) -> Result<(u32, Arc<super::EpochKeys>)> {
        let ks = self.ks();
        let epoch = *ks
            .current
            .get(&scope)
            .ok_or_else(|| Error::NoAccess(self.scope_name(scope)))?;
        let keys = ks
            .keys
            .get(&(scope, epoch))
            .ok_or_else(|| Error::NoAccess(self.scope_name(scope)))?;
        Ok((epoch, Arc::clone(keys)))
    }

    fn seal(
        &self,
        scope: u32,
        column: &'static str,
        table: &'static str,
        row: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>> {
        let (epoch, keys) = self.current_keys(scope)?;
        let padded = self.column(table, column)?.padding.pad(plain);
        let header = Header { scope, epoch };
        Ok(keys.seal_v1(header, &Cell { table, column, row }, &padded))
    }

    /// Opens a cell: header, key lookup, authentication, padding removal.
    fn open_cell(&self, cell: &Cell<'_>, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let header = envelope::Header::parse(blob, cell)?;
        let keys = self.keys_for(header, cell)?;
        let mut plain = Zeroizing::new(keys.open_v1(header, cell, blob)?);
        unpad(&mut plain).ok_or(Error::MalformedEnvelope {
            table: cell.table,
            column: cell.column,
            reason: "bad padding",
        })?;
        Ok(plain)
    }

    /// The keys of an envelope's (scope, epoch): `NoAccess` when the vault
    /// has that epoch but this user holds no key for it, `Tampered` when no
    /// such epoch exists.
    fn keys_for(&self, header: Header, cell: &Cell<'_>) -> Result<Arc<super::EpochKeys>> {
        let ks = self.ks();
        if let Some(k) = ks.keys.get(&(header.scope, header.epoch)) {
            return Ok(Arc::clone(k));
        }
        if ks.known_epochs.contains(&(header.scope, header.epoch)) {
            Err(Error::NoAccess(self.scope_name(header.scope)))
        } else {
            Err(Error::Tampered {
                table: cell.table,
                column: cell.column,
            })
        }
    }

    fn open_string(&self, cell: &Cell<'_>, blob: &[u8]) -> Result<String> {
        let plain = self.open_cell(cell, blob)?;
        String::from_utf8(plain.to_vec()).map_err(|e| {
            let mut bytes = e.into_bytes();
            zeroize::Zeroize::zeroize(&mut bytes);
            Error::NotUtf8 {
                table: cell.table,
                column: cell.column,
            }
        })
    }

    fn identity(&self) -> Result<u32> {
        self.scope_id(SCOPE_IDENTITY)
    }

    fn seal_patient(
        &self,
        id: &Id,
        c: &Checked,
        author: &str,
        created: i64,
        updated: i64,
    ) -> Result<PatientRow> {
        let scope = self.identity()?;
        let (_, keys) = self.current_keys(scope)?;
        let row = &id.0[..];
        let [bi_family_name, bi_given_names, bi_born, bi_family_born] =
            self.blind_indexes(&keys, c)?;
        Ok(PatientRow {
            id: id.0,
            family_name: self.seal(scope, "family_name", PATIENTS, row, c.family.as_bytes())?,
            given_names: self.seal(scope, "given_names", PATIENTS, row, c.given.as_bytes())?,
            born: self.seal(scope, "born", PATIENTS, row, c.born.as_bytes())?,
            sex: self.seal(scope, "sex", PATIENTS, row, &[c.sex.code()])?,
            bi_family_name,
            bi_given_names,
            bi_born,
            bi_family_born,
            author: author.to_owned(),
            created_at: created,
            updated_at: updated,
        })
    }

    /// The four blind indexes of a patient's checked values under `keys`
    /// (FORMAT.md §4.2), in the order of `INDEX_COLUMNS`.
    fn blind_indexes(&self, keys: &super::EpochKeys, c: &Checked) -> Result<[Vec<u8>; 4]> {
        let idx = |col: &'static str, parts: &[&str]| -> Result<Vec<u8>> {
            let key = keys
                .index
                .get(col)
                .ok_or_else(|| Error::Policy(format!("no index key for {col}")))?;
            Ok(index::compute(key, parts, self.index_bits(col)?)
                .as_bytes()
                .to_vec())
        };
        Ok([
            idx("bi_family_name", &[&c.family_c])?,
            idx("bi_given_names", &[&c.given_c])?,
            idx("bi_born", &[&c.born])?,
            idx("bi_family_born", &[&c.family_c, &c.born])?,
        ])
    }

    /// FORMAT.md §1.1: every patient cell is under `identity`. A cell
    /// sealed under another scope (a writer's personal one, say) is
    /// forged, and must not turn into "no access" for everyone else.
    fn check_identity_headers(&self, r: &PatientRow) -> Result<()> {
        let identity = self.identity()?;
        for (column, blob) in [
            ("family_name", &r.family_name),
            ("given_names", &r.given_names),
            ("born", &r.born),
            ("sex", &r.sex),
        ] {
            let cell = Cell {
                table: PATIENTS,
                column,
                row: &r.id[..],
            };
            if Header::parse(blob, &cell)?.scope != identity {
                return Err(Error::Tampered {
                    table: PATIENTS,
                    column,
                });
            }
        }
        Ok(())
    }

    pub(crate) fn open_patient(&self, r: &PatientRow) -> Result<Patient> {
        self.check_identity_headers(r)?;
        let cell = |column| Cell {
            table: PATIENTS,
            column,
            row: &r.id[..],
        };
        let sex_cell = cell("sex");
        let sex_plain = self.open_cell(&sex_cell, &r.sex)?;
        let sex = Sex::from_code(&sex_plain).ok_or(Error::MalformedEnvelope {
            table: PATIENTS,
            column: "sex",
            reason: "not a sex code",
        })?;
        Ok(Patient {
            id: Id(r.id),
            family_name: self.open_string(&cell("family_name"), &r.family_name)?,
            given_names: self.open_string(&cell("given_names"), &r.given_names)?,
            born: self.open_string(&cell("born"), &r.born)?,
            sex,
            author: r.author.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }

    /// Inserts one patient; returns their new id.
    pub async fn insert_patient(&self, p: &NewPatient) -> Result<Id> {
        let ids = self.insert_patients(std::slice::from_ref(p)).await?;
        // Invariant: one id per patient given.
        Ok(ids[0])
    }

    /// Inserts many patients in one transaction (all or none); returns
    /// their ids in order. Every patient is checked before anything is
    /// written.
    pub async fn insert_patients(&self, patients: &[NewPatient]) -> Result<Vec<Id>> {
        self.insert_batch(patients.iter().map(|p| (p, &[][..])))
            .await
    }

    /// Inserts patients with their first notes in one transaction (all or
    /// none): what an import from another program needs, a commit per
    /// batch instead of one per note. Returns the patients' ids in order.
    ///
    /// ```no_run
    /// # async fn f(s: &medvault::Session) -> medvault::Result<()> {
    /// use medvault::{NewNote, NewPatient, Sex};
    /// let ids = s
    ///     .insert_patients_with_notes(&[(
    ///         NewPatient {
    ///             family_name: "Dupont".into(),
    ///             given_names: "Marie".into(),
    ///             born: "1970-03-02".into(),
    ///             sex: Sex::F,
    ///         },
    ///         vec![NewNote { scope: None, body: "Allergic to penicillin.".into() }],
    ///     )])
    ///     .await?;
    /// assert_eq!(ids.len(), 1);
    /// # Ok(()) }
    /// ```
    pub async fn insert_patients_with_notes(
        &self,
        patients: &[(NewPatient, Vec<NewNote>)],
    ) -> Result<Vec<Id>> {
        self.insert_batch(patients.iter().map(|(p, n)| (p, &n[..])))
            .await
    }

    async fn insert_batch<'a>(
        &self,
        items: impl ExactSizeIterator<Item = (&'a NewPatient, &'a [NewNote])>,
    ) -> Result<Vec<Id>> {
        let t = now();
        let mut rows = Vec::with_capacity(items.len());
        let mut ids = Vec::with_capacity(items.len());
        let mut notes = Vec::new();
        for (p, ns) in items {
            let c = self.check(p)?;
            let id = Id::random();
            rows.push(self.seal_patient(&id, &c, &self.user, t, t)?);
            for n in ns {
                notes.push(self.seal_note(&id, &n.body, n.scope.as_deref(), t)?);
            }
            ids.push(id);
        }
        let d = self.store.dialect();
        self.store
            .write_all(builtin::insert_batch(d, &rows, &notes))
            .await?;
        Ok(ids)
    }

    /// One patient, decrypted.
    pub async fn get_patient(&self, id: &Id) -> Result<Patient> {
        let row = self.patient_row(id).await?;
        self.open_patient(&row)
    }

    /// The stored row of patient `id`. The store's answer is checked: a
    /// row of another patient (each of its cells authenticates, under its
    /// own id) is tampering, not that patient.
    async fn patient_row(&self, id: &Id) -> Result<PatientRow> {
        let rows = self
            .store
            .lookup(
                builtin::patient(self.store.dialect()),
                vec![Value::Blob(id.0.to_vec())],
            )
            .await?;
        let row = sql::patient_row(
            rows.into_iter()
                .next()
                .ok_or_else(|| Error::NoSuchPatient(id.to_string()))?,
        )?;
        if row.id != id.0 {
            return Err(Error::Tampered {
                table: PATIENTS,
                column: "id",
            });
        }
        Ok(row)
    }

    /// Replaces a patient's identity fields (re-encrypted under the current
    /// key epoch, new nonces, new blind indexes).
    pub async fn update_patient(&self, id: &Id, p: &NewPatient) -> Result<()> {
        let c = self.check(p)?;
        let old = self.patient_row(id).await?;
        let row = self.seal_patient(id, &c, &old.author, old.created_at, now())?;
        let d = self.store.dialect();
        let changed = self
            .store
            .write_all(vec![(
                builtin::update_patient(d),
                builtin::update_values(&row),
            )])
            .await?;
        if changed != [1] {
            return Err(Error::NoSuchPatient(id.to_string()));
        }
        Ok(())
    }

    /// Deletes a patient and their notes.
    pub async fn delete_patient(&self, id: &Id) -> Result<()> {
        let d = self.store.dialect();
        let changed = self
            .store
            .write_all(vec![(
                builtin::delete_patient(d),
                vec![Value::Blob(id.0.to_vec())],
            )])
            .await?;
        if changed != [1] {
            return Err(Error::NoSuchPatient(id.to_string()));
        }
        Ok(())
    }

    /// Finds patients; every criterion given must match exactly (after
    /// canonicalisation: accents, case, hyphens, apostrophes and spacing do
    /// not matter). Sorted by family name, given names, date of birth.
    pub async fn find_patients(&self, q: &PatientQuery) -> Result<Vec<Patient>> {
        let family = q
            .family_name
            .as_deref()
            .map(|v| {
                self.check_name("family_name", "family name", v)
                    .map(|x| x.1)
            })
            .transpose()?;
        let given = q
            .given_names
            .as_deref()
            .map(|v| {
                self.check_name("given_names", "given names", v)
                    .map(|x| x.1)
            })
            .transpose()?;
        let born = q
            .born
            .as_deref()
            .map(|d| canonical::partial_date(d.trim()))
            .transpose()?;
        let (column, parts): (IndexColumn, Vec<&str>) = match (&family, &given, &born) {
            (Some(f), _, Some(b)) => (IndexColumn::FamilyBorn, vec![f, b]),
            (Some(f), _, None) => (IndexColumn::FamilyName, vec![f]),
            (None, Some(g), _) => (IndexColumn::GivenNames, vec![g]),
            (None, None, Some(b)) => (IndexColumn::Born, vec![b]),
            (None, None, None) => return Err(Error::EmptyQuery),
        };
        let scope = self.identity()?;
        let bits = self.index_bits(column.column())?;
        // Every live epoch: during a rotation rows of both epochs exist.
        let mut values: Vec<Vec<u8>> = Vec::new();
        let ks = self.ks();
        for (_, keys) in ks.keys.iter().filter(|((s, _), _)| *s == scope) {
            let key = keys
                .index
                .get(column.column())
                .ok_or_else(|| Error::Policy("missing index key".into()))?;
            let v = index::compute(key, &parts, bits).as_bytes().to_vec();
            if !values.contains(&v) {
                values.push(v);
            }
        }
        if values.is_empty() {
            return Err(Error::NoAccess(self.scope_name(scope)));
        }
        let d = self.store.dialect();
        let rows = self
            .store
            .lookup(
                builtin::patients_by_index(d, column, values.len()),
                values.into_iter().map(Value::Blob).collect(),
            )
            .await?
            .into_iter()
            .map(sql::patient_row)
            .collect::<Result<Vec<_>>>()?;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for r in rows {
            if !seen.insert(r.id) {
                continue;
            }
            // Most candidates share only the truncated index value: open
            // the fields the query names first, the rest only on a match.
            self.check_identity_headers(&r)?;
            let cell = |column| Cell {
                table: PATIENTS,
                column,
                row: &r.id[..],
            };
            let field_matches = |column, blob: &[u8], want: &Option<String>, exact: bool| {
                let Some(w) = want else {
                    return Ok(true);
                };
                let v = self.open_string(&cell(column), blob)?;
                Ok::<_, Error>(if exact {
                    v == *w
                } else {
                    canonical::name(&v) == *w
                })
            };
            if field_matches("born", &r.born, &born, true)?
                && field_matches("family_name", &r.family_name, &family, false)?
                && field_matches("given_names", &r.given_names, &given, false)?
            {
                out.push(self.open_patient(&r)?);
            }
        }
        out.sort_by_cached_key(|p| {
            (
                canonical::name(&p.family_name),
                canonical::name(&p.given_names),
                p.born.clone(),
                p.id,
            )
        });
        Ok(out)
    }

    /// A page of patients (in id order, which is random: names are
    /// encrypted, so the store cannot sort by them). `limit` is clamped to
    /// 1..=[`MAX_PAGE`].
    pub async fn list_patients(&self, after: Option<&Id>, limit: u32) -> Result<PatientPage> {
        let limit = limit.clamp(1, MAX_PAGE);
        let rows = self.patient_rows(after.map(|a| a.0), limit).await?;
        let patients = rows
            .iter()
            .map(|r| self.open_patient(r))
            .collect::<Result<Vec<_>>>()?;
        let next = if rows.len() == limit as usize {
            patients.last().map(|p| p.id)
        } else {
            None
        };
        Ok(PatientPage { patients, next })
    }

    /// Up to `limit` stored patient rows in id order after `after`; a page
    /// the store repeated, reordered or overfilled is refused.
    pub(crate) async fn patient_rows(
        &self,
        after: Option<crate::store::RowId>,
        limit: u32,
    ) -> Result<Vec<PatientRow>> {
        let rows = self
            .store
            .select(
                builtin::patients_page(self.store.dialect(), limit),
                vec![Value::Blob(after.map(|a| a.to_vec()).unwrap_or_default())],
            )
            .await?
            .into_iter()
            .map(sql::patient_row)
            .collect::<Result<Vec<_>>>()?;
        sql::check_page(
            PATIENTS,
            after.as_ref().map(|a| &a[..]),
            limit,
            rows.iter().map(|r| &r.id[..]),
        )?;
        Ok(rows)
    }

    fn note_cell(row: &[u8]) -> Cell<'_> {
        Cell {
            table: NOTES,
            column: "body",
            row,
        }
    }

    pub(super) fn note_ad(note: &Id, patient: &Id, author: &str) -> Vec<u8> {
        // FORMAT.md §1.2: a note's row component is its id, its patient's
        // id and its author, so it cannot be re-attached to another patient
        // or re-attributed to another author.
        let mut ad = Vec::with_capacity(32 + author.len());
        ad.extend_from_slice(&note.0);
        ad.extend_from_slice(&patient.0);
        ad.extend_from_slice(author.as_bytes());
        ad
    }

    /// Adds a note to a patient under `scope` (default `clinical`;
    /// `personal` is the author's own). Returns the note's id.
    pub async fn add_note(&self, patient: &Id, body: &str, scope: Option<&str>) -> Result<Id> {
        let row = self.seal_note(patient, body, scope, now())?;
        let id = Id(row.id);
        // The patient is looked up first for a clear error; one deleted in
        // between fails the foreign key and writes nothing.
        self.patient_row(patient).await?;
        let d = self.store.dialect();
        self.store
            .write_all(builtin::insert_batch(d, &[], std::slice::from_ref(&row)))
            .await?;
        Ok(id)
    }

    /// Checks and seals a note: its row, ready to store.
    fn seal_note(&self, patient: &Id, body: &str, scope: Option<&str>, t: i64) -> Result<NoteRow> {
        let sid = self.scope_id(scope.unwrap_or(SCOPE_CLINICAL))?;
        let max = self.column(NOTES, "body")?.max_bytes;
        if body.len() > max {
            return Err(Error::TooLong {
                field: "note",
                len: body.len(),
                max,
            });
        }
        if body.trim().is_empty() {
            return Err(Error::EmptyValue("note"));
        }
        let id = Id::random();
        let ad = Self::note_ad(&id, patient, &self.user);
        let body = self.seal(sid, "body", NOTES, &ad, body.as_bytes())?;
        Ok(NoteRow {
            id: id.0,
            patient_id: patient.0,
            scope_id: sid,
            body,
            author: self.user.clone(),
            created_at: t,
            seq: 0,
        })
    }

    /// Opens one stored note: header, scope column against the header,
    /// then the body. `Ok(None)`: a valid note this user holds no key for.
    pub(crate) fn open_note(&self, r: &NoteRow) -> Result<Option<String>> {
        let ad = Self::note_ad(&Id(r.id), &Id(r.patient_id), &r.author);
        let cell = Self::note_cell(&ad);
        let header = Header::parse(&r.body, &cell)?;
        if header.scope != r.scope_id {
            return Err(Error::Tampered {
                table: NOTES,
                column: "body",
            });
        }
        match self.keys_for(header, &cell) {
            Ok(_) => self.open_string(&cell, &r.body).map(Some),
            Err(Error::NoAccess(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The notes of a patient. With `scope`, only that scope's notes, and
    /// `NoAccess` if the user holds no key for it; without, every note the
    /// user can read, and a count of the others.
    pub async fn list_notes(&self, patient: &Id, scope: Option<&str>) -> Result<NoteList> {
        let filter = match scope {
            Some(s) => {
                let sid = self.scope_id(s)?;
                if !self.ks().current.contains_key(&sid) {
                    return Err(Error::NoAccess(self.scope_name(sid)));
                }
                Some(sid)
            }
            None => None,
        };
        self.patient_row(patient).await?;
        let mut notes = Vec::new();
        let mut withheld = 0;
        let rows = self
            .store
            .select(
                builtin::notes_of(self.store.dialect()),
                vec![Value::Blob(patient.0.to_vec())],
            )
            .await?;
        for r in rows {
            let r = sql::note_row(r)?;
            if filter.is_some_and(|f| f != r.scope_id) {
                continue;
            }
            // The store was asked for this patient's notes: a note of
            // another patient (it authenticates, under its own patient id)
            // is tampering, never shown as this patient's.
            if r.patient_id != patient.0 {
                return Err(Error::Tampered {
                    table: NOTES,
                    column: "patient_id",
                });
            }
            let Some(body) = self.open_note(&r)? else {
                withheld += 1;
                continue;
            };
            notes.push(Note {
                id: Id(r.id),
                patient: *patient,
                scope: self.scope_name(r.scope_id),
                body,
                author: r.author,
                created_at: r.created_at,
            });
        }
        Ok(NoteList { notes, withheld })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::pgp::KdfParams;
    use crate::vault::{CreateOptions, OpenOptions, Vault};

    use crate::store::{
        EpochRow, GrantRow, NewScope, RowId, ScopeRow, Store, TableSpec, UserRow, Value,
    };

    /// A server that answers for another patient than the one asked for:
    /// the patient lookup returns the row of `patient_of` and the notes
    /// query the notes of `notes_of` when set; with `repeat_rows`, every
    /// row of every read comes twice. Everything else is passed on.
    struct Lying {
        inner: Arc<dyn Store>,
        patient_of: Option<RowId>,
        notes_of: Option<RowId>,
        repeat_rows: bool,
    }

    impl Lying {
        fn new(inner: &Arc<dyn Store>) -> Lying {
            Lying {
                inner: Arc::clone(inner),
                patient_of: None,
                notes_of: None,
                repeat_rows: false,
            }
        }

        /// The statement's parameters, as this liar rewrites them.
        fn params(&self, q: &str, p: Vec<Value>) -> Vec<Value> {
            let d = self.inner.dialect();
            match (self.patient_of, self.notes_of) {
                (Some(other), _) if q == builtin::patient(d) => vec![Value::Blob(other.to_vec())],
                (_, Some(other)) if q == builtin::notes_of(d) => vec![Value::Blob(other.to_vec())],
                _ => p,
            }
        }

        fn answer(&self, rows: Vec<Vec<crate::sql::Cell>>) -> Vec<Vec<crate::sql::Cell>> {
            if !self.repeat_rows {
                return rows;
            }
            rows.into_iter().flat_map(|r| [r.clone(), r]).collect()
        }
    }

    #[async_trait::async_trait]
    impl Store for Lying {
        fn describe(&self) -> String {
            self.inner.describe()
        }
        fn dialect(&self) -> crate::store::Dialect {
            self.inner.dialect()
        }
        async fn migrate_app(&self, m: Vec<refinery::Migration>) -> Result<Vec<String>> {
            self.inner.migrate_app(m).await
        }
        async fn write_stream(&self, rx: crate::store::StatementStream) -> Result<Vec<u64>> {
            self.inner.write_stream(rx).await
        }
        async fn select(&self, q: String, p: Vec<Value>) -> Result<Vec<Vec<crate::sql::Cell>>> {
            let p = self.params(&q, p);
            Ok(self.answer(self.inner.select(q, p).await?))
        }
        async fn lookup(&self, q: String, p: Vec<Value>) -> Result<Vec<Vec<crate::sql::Cell>>> {
            let p = self.params(&q, p);
            Ok(self.answer(self.inner.lookup(q, p).await?))
        }
        async fn write_all(&self, s: Vec<(String, Vec<crate::store::Value>)>) -> Result<Vec<u64>> {
            self.inner.write_all(s).await
        }
        async fn latest_policy(&self) -> Result<Option<crate::store::PolicyRow>> {
            self.inner.latest_policy().await
        }
        async fn table_columns(&self, t: &str) -> Result<Option<Vec<crate::store::StoredColumn>>> {
            self.inner.table_columns(t).await
        }
        async fn apply_policy(
            &self,
            s: &[crate::store::SchemaStep],
            r: Option<&crate::store::PolicyRow>,
        ) -> Result<()> {
            self.inner.apply_policy(s, r).await
        }
        async fn meta(&self, k: &str) -> Result<Option<Vec<u8>>> {
            self.inner.meta(k).await
        }
        async fn users(&self) -> Result<Vec<UserRow>> {
            self.inner.users().await
        }
        async fn insert_user(&self, r: &UserRow, p: &NewScope) -> Result<()> {
            self.inner.insert_user(r, p).await
        }
        async fn replace_user(&self, r: &UserRow) -> Result<()> {
            self.inner.replace_user(r).await
        }
        async fn scopes(&self) -> Result<Vec<ScopeRow>> {
            self.inner.scopes().await
        }
        async fn epochs(&self) -> Result<Vec<EpochRow>> {
            self.inner.epochs().await
        }
        async fn grants_to(&self, g: &str) -> Result<Vec<GrantRow>> {
            self.inner.grants_to(g).await
        }
        async fn insert_scope(&self, s: &NewScope) -> Result<()> {
            self.inner.insert_scope(s).await
        }
        async fn put_grants(&self, g: &[GrantRow]) -> Result<()> {
            self.inner.put_grants(g).await
        }
        async fn grants_by(&self, g: &str) -> Result<Vec<GrantRow>> {
            self.inner.grants_by(g).await
        }
        async fn resign_epoch(&self, e: &EpochRow) -> Result<()> {
            self.inner.resign_epoch(e).await
        }
        async fn delete_grants(&self, s: u32, g: &str) -> Result<usize> {
            self.inner.delete_grants(s, g).await
        }
        async fn grants_all(&self) -> Result<Vec<GrantRow>> {
            self.inner.grants_all().await
        }
        async fn export(
            &self,
            t: &TableSpec,
            a: Option<Vec<u8>>,
            l: u32,
        ) -> Result<Vec<Vec<Value>>> {
            self.inner.export(t, a, l).await
        }
        async fn import(&self, t: &TableSpec, r: Vec<Vec<Value>>) -> Result<()> {
            self.inner.import(t, r).await
        }
        async fn count(&self, t: &TableSpec) -> Result<u64> {
            self.inner.count(t).await
        }
        async fn max_id(&self, t: &TableSpec) -> Result<Option<Vec<u8>>> {
            self.inner.max_id(t).await
        }
    }

    async fn session(dir: &std::path::Path) -> Session {
        let url = format!("sqlcipher:{}", dir.join("v.db").display());
        let kdf = KdfParams::danger_fast_for_tests();
        Vault::create(
            &url,
            "admin",
            "pw",
            &CreateOptions {
                kdf,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let opts = OpenOptions {
            kdf,
            pinned_root: None,
        };
        Vault::open(&url, "admin", "pw", &opts).await.unwrap()
    }

    /// Asked for patient A, a lying server answers with patient B's row
    /// and B's notes. Each authenticates (under B's id), so only the check
    /// that the answer is for A keeps B's data from being shown as A's.
    #[tokio::test]
    async fn an_answer_for_another_patient_is_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = session(dir.path()).await;
        let new = |family: &str| NewPatient {
            family_name: family.into(),
            given_names: "X".into(),
            born: "1970-01-01".into(),
            sex: Sex::F,
        };
        let a = s.insert_patient(&new("Asked")).await.unwrap();
        let b = s.insert_patient(&new("Other")).await.unwrap();
        s.add_note(&b, "B's note", None).await.unwrap();
        let honest = Arc::clone(&s.store);
        s.store = Arc::new(Lying {
            patient_of: Some(b.0),
            ..Lying::new(&honest)
        });
        let err = s.get_patient(&a).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Tampered {
                    table: "patients",
                    column: "id"
                }
            ),
            "{err}"
        );
        assert!(s.update_patient(&a, &new("Asked")).await.is_err());
        // The patient row answered honestly, the notes are B's.
        s.store = Arc::new(Lying {
            notes_of: Some(b.0),
            ..Lying::new(&honest)
        });
        let err = s.list_notes(&a, None).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Tampered {
                    table: "notes",
                    column: "patient_id"
                }
            ),
            "{err}"
        );
        // Control: honest answers list both patients once.
        s.store = Arc::new(Lying::new(&honest));
        assert_eq!(s.list_patients(None, 10).await.unwrap().patients.len(), 2);
        // A page with every patient twice: within the limit, but each would
        // be shown twice; and larger than asked (paging on it would never
        // end).
        s.store = Arc::new(Lying {
            repeat_rows: true,
            ..Lying::new(&honest)
        });
        for limit in [10, 1] {
            let err = s.list_patients(None, limit).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::BadStoredValue {
                        table: "patients",
                        ..
                    }
                ),
                "{err}"
            );
        }
    }

    /// A server that answers every row of a declared table twice: each
    /// copy authenticates, so only the order check of `find`, `children`,
    /// `list` and `scan` keeps a row from being shown twice.
    #[tokio::test]
    async fn rows_answered_twice_are_refused() {
        use crate::vault::rows::{NewRow, Value};
        let dir = tempfile::tempdir().unwrap();
        let mut s = session(dir.path()).await;
        s.apply_schema(
            "format = 2\n[[table]]\nname = \"visits\"\nparent = \"patients\"\n\
             [[column]]\ntable = \"visits\"\ncolumn = \"why\"\nscope = \"clinical\"\n\
             kind = \"text\"\nmax_bytes = 50\n[[index]]\ntable = \"visits\"\n\
             column = \"bi_why\"\nover = [\"why\"]\nbits = 12\n",
        )
        .await
        .unwrap();
        let p = s
            .insert_patient(&NewPatient {
                family_name: "Dupont".into(),
                given_names: "X".into(),
                born: "1970-01-01".into(),
                sex: Sex::F,
            })
            .await
            .unwrap();
        let t = s.table("visits").await.unwrap();
        t.insert(&NewRow::child_of(p).set("why", "Cough"))
            .await
            .unwrap();
        drop(t);
        // Control: the honest store answers once.
        let honest = Arc::clone(&s.store);
        s.store = Arc::new(Lying::new(&honest));
        {
            let t = s.table("visits").await.unwrap();
            assert_eq!(
                t.find(&[("why", Value::from("cough"))])
                    .await
                    .unwrap()
                    .len(),
                1
            );
        }
        s.store = Arc::new(Lying {
            repeat_rows: true,
            ..Lying::new(&honest)
        });
        let t = s.table("visits").await.unwrap();
        let twice = |r: Result<Vec<crate::vault::rows::Row>>| {
            matches!(
                r,
                Err(Error::BadStoredValue {
                    table: "visits",
                    ..
                })
            )
        };
        assert!(twice(t.find(&[("why", Value::from("cough"))]).await));
        assert!(twice(t.children(p).await));
        assert!(twice(t.list(None, 10).await));
        assert!(matches!(
            t.scan(10, |_| std::ops::ControlFlow::Continue(())).await,
            Err(Error::BadStoredValue {
                table: "visits",
                ..
            })
        ));
    }

    /// Invalid UTF-8 that authenticates (sealed with the right key) must
    /// give `NotUtf8`, not garbage: only code with the key can make it, so
    /// this test lives inside the crate.
    #[tokio::test]
    async fn invalid_utf8_after_decryption_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = session(dir.path()).await;
        let id = s
            .insert_patient(&NewPatient {
                family_name: "Valid".into(),
                given_names: "Name".into(),
                born: "1970-01-01".into(),
                sex: Sex::F,
            })
            .await
            .unwrap();
        let mut row = s.patient_row(&id).await.unwrap();
        row.family_name = s
            .seal(
                s.identity().unwrap(),
                "family_name",
                PATIENTS,
                &id.0,
                &[0xff, 0xfe, 0x41],
            )
            .unwrap();
        let d = s.store.dialect();
        let changed = s
            .store
            .write_all(vec![(
                builtin::update_patient(d),
                builtin::update_values(&row),
            )])
            .await
            .unwrap();
        assert_eq!(changed, [1]);
        let err = s.get_patient(&id).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotUtf8 {
                    table: "patients",
                    column: "family_name"
                }
            ),
            "{err}"
        );
    }
}
