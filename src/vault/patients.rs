//! Patients and notes: the typed API, a thin layer over the row API
//! (`src/vault/rows.rs`), which serves the built-in tables with their own
//! rules (envelope v1, FORMAT.md §1.1, §1.2; medvault's own columns).
//!
//! This layer adds what a patient is: a family name that is not empty,
//! given names that may be, a date of birth that may be partial, one of
//! four sex codes; notes that are not empty, under `clinical` unless
//! another scope is named, listed in the order written. Lookups go through
//! the blind index that fits the query, under every epoch the user holds,
//! and keep only exact (canonical) matches, so truncation never shows a
//! false positive.

use std::sync::Arc;

use super::authorship::{KIND_WRITE, MAX_LEAVES};
use super::rows::{NewRow, Order, PendingBatch, Row, RowTable, Value, STREAM_CHUNK};
use super::{Session, SCOPE_CLINICAL};
use crate::crypto::envelope::{self, Cell, Header};
use crate::error::{Error, Result};
use crate::index::canonical;
use crate::policy::ColumnPolicy;
use crate::records::{
    Id, NewNote, NewPatient, Note, NoteList, Patient, PatientOrder, PatientPage, PatientQuery, Sex,
};

const PATIENTS: &str = "patients";
const NOTES: &str = "notes";

/// A patient's own encrypted fields (all under `identity`).
const IDENTITY_FIELDS: [&str; 4] = ["family_name", "given_names", "born", "sex"];

/// Largest page [`Session::list_patients`] returns.
pub const MAX_PAGE: u32 = 1000;

/// A checked patient: trimmed values, the date in its canonical form.
struct Checked {
    family: String,
    given: String,
    born: String,
    sex: Sex,
}

impl Checked {
    /// The patient's four fields as the row API takes them.
    fn values(self, row: NewRow) -> NewRow {
        row.set("family_name", self.family)
            .set("given_names", self.given)
            .set("born", self.born)
            .set("sex", self.sex.to_string())
    }
}

impl super::EpochKeys {
    /// The prepared key of a cell's column: at `at` in this epoch's list
    /// when the caller knows where, else looked up by name.
    fn prefix_of(&self, at: Option<usize>, cell: &Cell<'_>) -> Option<&envelope::Prefix> {
        match at {
            Some(i) => self.prefixes.get(i),
            None => self.prefix(cell.table, cell.column),
        }
    }

    /// Seals `padded` into an envelope v1 bound to `cell` (FORMAT.md §1.1),
    /// with the S2V prefix of its column (at `at`) when this epoch keeps
    /// one.
    pub(super) fn seal_v1(
        &self,
        at: Option<usize>,
        header: Header,
        cell: &Cell<'_>,
        padded: &[u8],
    ) -> Vec<u8> {
        match self.prefix_of(at, cell) {
            Some(p) => envelope::seal_prepared(&self.field, p, header, cell, padded),
            None => envelope::seal(&self.field, header, cell, padded),
        }
    }

    /// Opens an envelope v1 bound to `cell` (still padded).
    pub(super) fn open_v1(
        &self,
        at: Option<usize>,
        header: Header,
        cell: &Cell<'_>,
        blob: &[u8],
    ) -> Result<Vec<u8>> {
        match self.prefix_of(at, cell) {
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

    fn check_name(&self, column: &'static str, what: &'static str, v: &str) -> Result<String> {
        let v = v.trim();
        let max = self.column(PATIENTS, column)?.max_bytes;
        if v.len() > max {
            return Err(Error::TooLong {
                field: what,
                len: v.len(),
                max,
            });
        }
        if canonical::name(v).is_empty() {
            return Err(Error::EmptyValue(what));
        }
        Ok(v.to_owned())
    }

    fn check(&self, p: &NewPatient) -> Result<Checked> {
        let family = self.check_name("family_name", "family name", &p.family_name)?;
        // A patient may have a single name: given names may be empty (but
        // a search by given names needs one).
        let given = if canonical::name(&p.given_names).is_empty() {
            String::new()
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
        })
    }

    /// Checks a note: its scope's name (default `clinical`) and its body.
    fn check_note(&self, patient: Id, body: &str, scope: Option<&str>) -> Result<NewRow> {
        let scope = scope.unwrap_or(SCOPE_CLINICAL);
        self.scope_id(scope)?;
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
        Ok(NewRow::child_of(patient).scope(scope).set("body", body))
    }

    /// The current epoch of a scope and its keys, to write under.
    /// `NotCurrent` if the user holds a live epoch of it but not the newest
    /// (it was rotated without them): they read, never write, under the
    /// older one. `ReadOnly` if their grant of it gives no write right.
    /// Else `NoAccess`.
    pub(super) fn current_keys(&self, scope: u32) -> Result<(u32, Arc<super::EpochKeys>)> {
        let ks = self.ks();
        let (epoch, keys) = self.read_keys_in(&ks, scope)?;
        if !ks.writable.contains(&(scope, epoch)) {
            return Err(Error::ReadOnly(self.scope_name(scope)));
        }
        Ok((epoch, keys))
    }

    /// [`Session::current_keys`] without the write right: the keys a
    /// search or a maintenance job (computing a new index) uses.
    pub(super) fn current_read_keys(&self, scope: u32) -> Result<(u32, Arc<super::EpochKeys>)> {
        self.read_keys_in(&self.ks(), scope)
    }

    /// [`Session::current_read_keys`] in the key state `ks`.
    fn read_keys_in(
        &self,
        ks: &super::KeyState,
        scope: u32,
    ) -> Result<(u32, Arc<super::EpochKeys>)> {
        let epoch = *ks
            .current
            .get(&scope)
            .ok_or_else(|| self.not_writable(scope))?;
        let keys = ks
            .keys
            .get(&(scope, epoch))
            .ok_or_else(|| Error::NoAccess(self.scope_name(scope)))?;
        // An epoch older than one this client saw in an earlier session:
        // the store was put back (a revoked user may hold this key).
        if let Some(seen) = self.seen_epoch(scope) {
            if epoch < seen {
                return Err(Error::RolledBack(format!(
                    "key epoch {epoch} of scope {} (this client has seen epoch {seen})",
                    self.scope_name(scope)
                )));
            }
        }
        Ok((epoch, Arc::clone(keys)))
    }

    /// Why nothing can be written under `scope`: the store shows only
    /// epochs older than one this client saw in an earlier session
    /// (`RolledBack`); or the user holds a live epoch but not the newest
    /// (`NotCurrent`); or none (`NoAccess`).
    pub(crate) fn not_writable(&self, scope: u32) -> Error {
        let ks = self.ks();
        let name = self.scope_name(scope);
        match (self.seen_epoch(scope), ks.latest.get(&scope)) {
            (Some(seen), _) if !ks.known_epochs.contains(&(scope, seen)) => {
                let shown = ks
                    .known_epochs
                    .iter()
                    .filter(|(s, _)| *s == scope)
                    .map(|(_, e)| *e)
                    .max()
                    .unwrap_or(0);
                Error::RolledBack(format!(
                    "key epoch {shown} as the newest of scope {name} (this client has seen epoch {seen})"
                ))
            }
            (_, Some(&latest)) if ks.live(scope).next().is_some() => Error::NotCurrent {
                scope: name,
                epoch: latest,
            },
            _ => Error::NoAccess(name),
        }
    }

    /// A note's v1 row component (FORMAT.md §1.2): its id, its patient's id
    /// and its author, so it cannot be re-attached to another patient or
    /// re-attributed to another author.
    pub(super) fn note_ad(note: &Id, patient: &Id, author: &str) -> Vec<u8> {
        let mut ad = Vec::with_capacity(32 + author.len());
        ad.extend_from_slice(&note.0);
        ad.extend_from_slice(&patient.0);
        ad.extend_from_slice(author.as_bytes());
        ad
    }

    pub(crate) async fn patients(&self) -> Result<RowTable<'_>> {
        self.table(PATIENTS).await
    }

    pub(crate) async fn notes(&self) -> Result<RowTable<'_>> {
        self.table(NOTES).await
    }

    /// Runs a write made through freshly opened tables, and once more if
    /// an administrator applied a newer schema since this session read its
    /// own ([`Error::SchemaChanged`]: the session has read the new one by
    /// then, so the second run writes every index the schema declares).
    async fn write_current<'a, T, F, Fut>(&'a self, write: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T>> + 'a,
    {
        super::retry_moved(|| async {
            match write().await {
                Err(Error::SchemaChanged { .. }) => write().await,
                done => done,
            }
        })
        .await
    }

    /// A patient read by the row API, as the typed API shows it: every
    /// identity field readable (`NoAccess` otherwise), a known sex code.
    fn patient_of(&self, mut r: Row) -> Result<Patient> {
        // Columns an application added under another scope may be
        // withheld; the patient's own fields are all under `identity`.
        if r.withheld
            .iter()
            .any(|c| IDENTITY_FIELDS.contains(&c.as_str()))
        {
            return Err(Error::NoAccess(super::SCOPE_IDENTITY.into()));
        }
        let mut text = |column: &'static str| -> Result<String> {
            match r.values.get_mut(column) {
                Some(Value::Text(t)) => Ok(std::mem::take(t)),
                _ => Err(Error::BadStoredValue {
                    table: PATIENTS,
                    column,
                    expected: "a value",
                }),
            }
        };
        let family_name = text("family_name")?;
        let given_names = text("given_names")?;
        let born = text("born")?;
        let sex = text("sex")?;
        let author = text("author")?;
        let int = |column: &'static str| -> Result<i64> {
            match r.values.get(column) {
                Some(Value::Integer(i)) => Ok(*i),
                _ => Err(Error::BadStoredValue {
                    table: PATIENTS,
                    column,
                    expected: "a time",
                }),
            }
        };
        let sex = Sex::from_code(sex.as_bytes()).ok_or(Error::MalformedEnvelope {
            table: PATIENTS,
            column: "sex",
            reason: "not a sex code",
        })?;
        Ok(Patient {
            id: r.id,
            family_name,
            given_names,
            born,
            sex,
            author,
            created_at: int("created_at")?,
            updated_at: int("updated_at")?,
        })
    }

    /// Inserts one patient; returns their new id.
    pub async fn insert_patient(&self, p: &NewPatient) -> Result<Id> {
        let ids = self.insert_patients(std::slice::from_ref(p)).await?;
        ids.into_iter()
            .next()
            .ok_or(Error::Refused("no patient was inserted"))
    }

    /// Inserts many patients in one transaction (all or none); returns
    /// their ids in order. Every patient is checked before anything is
    /// written.
    pub async fn insert_patients(&self, patients: &[NewPatient]) -> Result<Vec<Id>> {
        self.insert_batch(patients.iter().map(|p| (p, &[][..])).collect())
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
        self.insert_batch(patients.iter().map(|(p, n)| (p, &n[..])).collect())
            .await
    }

    /// Checks every patient and note, then writes them in one transaction,
    /// chunk by chunk: each chunk's patients, then their notes (whose
    /// `seq` follows the order given).
    async fn insert_batch(&self, items: Vec<(&NewPatient, &[NewNote])>) -> Result<Vec<Id>> {
        let ids: Vec<Id> = items.iter().map(|_| Id::random()).collect();
        let mut patients = Vec::with_capacity(items.len());
        let mut notes: Vec<(usize, NewRow)> = Vec::new();
        for (k, ((p, ns), id)) in items.iter().zip(&ids).enumerate() {
            patients.push(self.check(p)?.values(NewRow::new()));
            for n in ns.iter() {
                notes.push((k, self.check_note(*id, &n.body, n.scope.as_deref())?));
            }
        }
        self.write_current(|| async {
            let (pt, nt) = (self.patients().await?, self.notes().await?);
            pt.check_current().await?;
            let guard = pt.guard().await?;
            // An application's unique index over the patients' columns.
            let mine: Vec<_> = patients.iter().map(|r| (&r.values, None)).collect();
            pt.check_unique(&mine, super::rows::Unique::Write).await?;
            self.write_batch(&guard, (&pt, &nt), &ids, &patients, &notes)
                .await
                .map_err(|e| pt.not_unique(e, None))
        })
        .await?;
        Ok(ids)
    }

    /// Writes checked `patients` (as `ids`) and their notes (each with the
    /// position of its patient), chunk by chunk, in one transaction.
    async fn write_batch(
        &self,
        guard: &crate::store::Guard,
        (pt, nt): (&RowTable<'_>, &RowTable<'_>),
        ids: &[Id],
        patients: &[NewRow],
        notes: &[(usize, NewRow)],
    ) -> Result<()> {
        let chunks = patients.len().div_ceil(STREAM_CHUNK);
        // One signature per chunk, over its patients and their notes.
        let mut signer = self.signer.lock().await;
        let signer = std::sync::Mutex::new(&mut *signer);
        self.write_chunks(guard, chunks, |c| {
            let range = c * STREAM_CHUNK..((c + 1) * STREAM_CHUNK).min(patients.len());
            let mut batch = PendingBatch::new(KIND_WRITE);
            let mut statements =
                pt.seal_rows(&patients[range.clone()], &ids[range.clone()], &mut batch)?;
            let (from, to) = (
                notes.partition_point(|(k, _)| *k < range.start),
                notes.partition_point(|(k, _)| *k < range.end),
            );
            let mut signer = signer.lock().unwrap_or_else(|p| p.into_inner());
            // The chunk's notes join its patients' batch, up to the most
            // leaves a batch holds; past that, they go in batches of their
            // own.
            let room = MAX_LEAVES.saturating_sub(batch.leaves.len()).max(1);
            let mut start = from;
            while start < to {
                let end = if start == from {
                    to.min(start + room)
                } else {
                    to.min(start + MAX_LEAVES)
                };
                if start != from {
                    let full = std::mem::replace(&mut batch, PendingBatch::new(KIND_WRITE));
                    statements.extend(self.sign_pending(full, &mut signer)?);
                }
                let rows: Vec<NewRow> = notes[start..end].iter().map(|(_, r)| r.clone()).collect();
                let note_ids: Vec<Id> = rows.iter().map(|_| Id::random()).collect();
                statements.extend(nt.seal_rows(&rows, &note_ids, &mut batch)?);
                start = end;
            }
            statements.extend(self.sign_pending(batch, &mut signer)?);
            Ok(statements)
        })
        .await
    }

    /// One patient, decrypted.
    pub async fn get_patient(&self, id: &Id) -> Result<Patient> {
        let r = self
            .patients()
            .await?
            .get(*id)
            .await?
            .ok_or_else(|| Error::NoSuchPatient(id.to_string()))?;
        self.patient_of(r)
    }

    /// Replaces a patient's identity fields (re-encrypted under the current
    /// key epoch, new nonces, new blind indexes). Columns an application
    /// added to `patients` keep their values.
    pub async fn update_patient(&self, id: &Id, p: &NewPatient) -> Result<()> {
        let changes = self.check(p)?.values(NewRow::new()).values;
        let updated = self
            .write_current(|| async { self.patients().await?.update(*id, &changes).await })
            .await?;
        if !updated {
            return Err(Error::NoSuchPatient(id.to_string()));
        }
        Ok(())
    }

    /// Deletes a patient and their notes.
    pub async fn delete_patient(&self, id: &Id) -> Result<()> {
        if !self.patients().await?.delete(*id).await? {
            return Err(Error::NoSuchPatient(id.to_string()));
        }
        Ok(())
    }

    /// Finds patients; every criterion given must hold: names equal after
    /// canonicalisation (accents, case, hyphens, apostrophes and spacing do
    /// not matter), the family name beginning with a prefix, each word of a
    /// given name among the given names, the same sound, the same date or
    /// year. Sorted by family name, given names, date of birth, or most
    /// recently changed first ([`PatientQuery::order`]); at most
    /// [`PatientQuery::limit`] of them (0 is `Refused`).
    ///
    /// The store is asked through one blind index: family name and date of
    /// birth together when both are given, else the family name, the
    /// given names, the date, one given name
    /// ([`PatientQuery::given_name`]), the first letters of the family
    /// name ([`PatientQuery::family_prefix`]), its sound
    /// ([`PatientQuery::sounds_like`]) or the year of birth alone; a
    /// criterion the index does not cover is checked on the decrypted
    /// candidates. A patient written before the year, phonetic, prefix or
    /// given-name index existed (format 9, 10, 11, 12) is found by them
    /// once an administrator has
    /// filled them
    /// ([`Session::fill_indexes`]); [`Session::unfilled`] counts those
    /// left.
    pub async fn find_patients(&self, q: &PatientQuery) -> Result<Vec<Patient>> {
        if q.limit == Some(0) {
            return Err(Error::Refused("a search's limit is at least one patient"));
        }
        let family = q
            .family_name
            .as_deref()
            .map(|v| self.check_name("family_name", "family name", v))
            .transpose()?;
        let given = q
            .given_names
            .as_deref()
            .map(|v| self.check_name("given_names", "given names", v))
            .transpose()?;
        let born = q
            .born
            .as_deref()
            .map(|d| canonical::partial_date(d.trim()))
            .transpose()?;
        let year = q
            .born_year
            .as_deref()
            .map(|y| match canonical::partial_date(y.trim()) {
                Ok(y) if y.len() == 4 => Ok(y),
                _ => Err(Error::Refused(
                    "a year of birth is searched as YYYY (1800 or later)",
                )),
            })
            .transpose()?;
        let sounds = q
            .sounds_like
            .as_deref()
            .map(|v| self.check_name("family_name", "family name", v))
            .transpose()?;
        let prefix = q
            .family_prefix
            .as_deref()
            .map(|v| self.check_name("family_name", "family name", v))
            .transpose()?;
        let prefix_canon = prefix.as_deref().map(canonical::name);
        let given_word = q
            .given_name
            .as_deref()
            .map(|v| self.check_name("given_names", "given name", v))
            .transpose()?;
        let want_words: Option<Vec<String>> = given_word.as_deref().map(|g| {
            canonical::words(crate::schema::Kind::Name, g)
                .split(' ')
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect()
        });
        let sound_code = match &sounds {
            Some(s) => Some(
                canonical::phonetic(&canonical::name(s)).ok_or(Error::Refused(
                    "a name searched by its sound holds a letter a..z that is sounded",
                ))?,
            ),
            None => None,
        };
        let criteria: Vec<(&str, Value)> = match (&family, &given, &born) {
            (Some(f), _, Some(b)) => vec![
                ("family_name", Value::from(f.as_str())),
                ("born", Value::from(b.as_str())),
            ],
            (Some(f), _, None) => vec![("family_name", Value::from(f.as_str()))],
            (None, Some(g), _) => vec![("given_names", Value::from(g.as_str()))],
            (None, None, Some(b)) => vec![("born", Value::from(b.as_str()))],
            (None, None, None) => Vec::new(),
        };
        use crate::schema::IndexKind;
        let by = match (&year, criteria.is_empty()) {
            (_, false) => None,
            (_, true) if given_word.is_some() => {
                Some((IndexKind::Tokens, "given_names", given_word.as_deref()))
            }
            (_, true) if prefix.is_some() => {
                Some((IndexKind::Prefix, "family_name", prefix.as_deref()))
            }
            (_, true) if sounds.is_some() => {
                Some((IndexKind::Phonetic, "family_name", sounds.as_deref()))
            }
            (Some(y), true) => Some((IndexKind::Year, "born", Some(y.as_str()))),
            (None, true) => return Err(Error::EmptyQuery),
        };
        // Every criterion, over a row's decrypted family name, given names
        // and date of birth: the index's, and the ones it does not cover,
        // checked on each candidate by the row search (before a limit).
        let (family, given, born, year) =
            (family.clone(), given.clone(), born.clone(), year.clone());
        let holds = move |r: &Row| {
            let (Some(family_name), Some(given_names), Some(born_on)) =
                (r.text("family_name"), r.text("given_names"), r.text("born"))
            else {
                // Kept: reading it as a patient says what is wrong.
                return true;
            };
            let name_is = |w: &Option<String>, got: &str| {
                w.as_deref()
                    .is_none_or(|w| canonical::name(w) == canonical::name(got))
            };
            name_is(&family, family_name)
                && name_is(&given, given_names)
                && born.as_deref().is_none_or(|w| w == born_on)
                && year.as_deref().is_none_or(|y| born_on.get(..4) == Some(y))
                && prefix_canon
                    .as_deref()
                    .is_none_or(|w| canonical::name(family_name).starts_with(w))
                && want_words.as_ref().is_none_or(|want| {
                    let got = canonical::words(crate::schema::Kind::Name, given_names);
                    let got: Vec<&str> = got.split(' ').collect();
                    want.iter().all(|w| got.contains(&w.as_str()))
                })
                && sound_code.as_ref().is_none_or(|w| {
                    canonical::phonetic(&canonical::name(family_name))
                        .is_some_and(|got| got.as_str() == w.as_str())
                })
        };
        // Most recently changed first: the store orders the candidates by
        // `updated_at` and answers pages of them until the limit. By name:
        // every match, sorted here.
        let order = match (q.order, q.limit) {
            (PatientOrder::Recent, Some(n)) => Order::by("updated_at").descending().limit(n),
            (PatientOrder::Recent, None) => Order::by("updated_at").descending(),
            (PatientOrder::Name, _) => Order::by_id(),
        }
        .keeping(holds);
        let table = self.patients().await?;
        let rows = match by {
            None => table.find_ordered(&criteria, &order).await?,
            Some((kind, column, v)) => {
                table
                    .find_by_ordered(kind, column, &Value::from(v.unwrap_or_default()), &order)
                    .await?
            }
        };
        let mut out = rows
            .into_iter()
            .map(|r| self.patient_of(r))
            .collect::<Result<Vec<_>>>()?;
        if q.order == PatientOrder::Name {
            out.sort_by_cached_key(|p| {
                (
                    canonical::name(&p.family_name),
                    canonical::name(&p.given_names),
                    p.born.clone(),
                    p.id,
                )
            });
            out.truncate(q.limit.map_or(usize::MAX, |n| n as usize));
        }
        Ok(out)
    }

    /// A page of patients (in id order, which is random: names are
    /// encrypted, so the store cannot sort by them). `limit` is clamped to
    /// 1..=[`MAX_PAGE`].
    pub async fn list_patients(&self, after: Option<&Id>, limit: u32) -> Result<PatientPage> {
        let limit = limit.clamp(1, MAX_PAGE);
        let rows = self.patients().await?.list(after.copied(), limit).await?;
        let full = rows.len() == limit as usize;
        let patients = rows
            .into_iter()
            .map(|r| self.patient_of(r))
            .collect::<Result<Vec<_>>>()?;
        let next = if full {
            patients.last().map(|p| p.id)
        } else {
            None
        };
        Ok(PatientPage { patients, next })
    }

    /// Adds a note to a patient under `scope` (default `clinical`;
    /// `personal` is the author's own). Returns the note's id.
    pub async fn add_note(&self, patient: &Id, body: &str, scope: Option<&str>) -> Result<Id> {
        let row = self.check_note(*patient, body, scope)?;
        match self
            .write_current(|| async { self.notes().await?.insert(&row).await })
            .await
        {
            Err(Error::NoSuchRow { .. }) => Err(Error::NoSuchPatient(patient.to_string())),
            other => other,
        }
    }

    /// The notes of a patient, in the order written. With `scope`, only
    /// that scope's notes, and `NoAccess` if the user holds no key for it;
    /// without, every note the user can read, and a count of the others.
    pub async fn list_notes(&self, patient: &Id, scope: Option<&str>) -> Result<NoteList> {
        let filter = match scope {
            Some(s) => {
                let sid = self.scope_id(s)?;
                if !self.ks().current.contains_key(&sid) {
                    return Err(Error::NoAccess(self.scope_name(sid)));
                }
                Some(self.scope_name(sid))
            }
            None => None,
        };
        if self.patients().await?.get(*patient).await?.is_none() {
            return Err(Error::NoSuchPatient(patient.to_string()));
        }
        // The row API checks every note is this patient's (a note of
        // another authenticates under its own patient id, and is refused).
        let mut rows = self.notes().await?.children(*patient).await?;
        let order = |r: &Row| match (r.get("created_at"), r.get("seq")) {
            (Some(Value::Integer(t)), Some(Value::Integer(s))) => (*t, *s),
            _ => (i64::MAX, i64::MAX),
        };
        rows.sort_by_key(order);
        let mut notes = Vec::new();
        let mut withheld = 0;
        for r in rows {
            if filter.is_some() && r.scope != filter {
                continue;
            }
            let (Some(Value::Text(body)), Some(Value::Text(author)), (created_at, _)) =
                (r.get("body"), r.get("author"), order(&r))
            else {
                withheld += 1;
                continue;
            };
            notes.push(Note {
                id: r.id,
                patient: *patient,
                scope: r.scope.clone().unwrap_or_default(),
                body: body.clone(),
                author: author.clone(),
                created_at,
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

    use crate::store::{RowId, Store, Value};
    use crate::vault::interposed::{Hooks, Interposed};

    /// A server that answers for another row than the one asked for: in
    /// reads of the table `patient_of.0` or `notes_of.0`, the id `.1` is
    /// replaced by `.2`; with `repeat_rows`, every row of every read comes
    /// twice. Everything else is passed on.
    struct Lying {
        inner: Arc<dyn Store>,
        patient_of: Option<(&'static str, RowId, RowId)>,
        notes_of: Option<(&'static str, RowId, RowId)>,
        repeat_rows: bool,
    }

    #[async_trait::async_trait]
    impl Hooks for Lying {
        fn inner(&self) -> &Arc<dyn Store> {
            &self.inner
        }
        fn params(&self, q: &str, p: Vec<Value>) -> Vec<Value> {
            self.rewrite(q, p)
        }
        fn answer(&self, rows: Vec<Vec<crate::sql::Cell>>) -> Vec<Vec<crate::sql::Cell>> {
            self.repeat(rows)
        }
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
        fn rewrite(&self, q: &str, p: Vec<Value>) -> Vec<Value> {
            let d = self.inner.dialect();
            let swap = [self.patient_of, self.notes_of]
                .into_iter()
                .flatten()
                .find(|(t, _, _)| q.contains(&format!("FROM {}", d.quote(t))));
            match swap {
                Some((_, asked, other)) => p
                    .into_iter()
                    .map(|v| match v {
                        Value::Blob(b) if b == asked => Value::Blob(other.to_vec()),
                        v => v,
                    })
                    .collect(),
                None => p,
            }
        }

        /// Every row twice, with `repeat_rows`.
        fn repeat(&self, rows: Vec<Vec<crate::sql::Cell>>) -> Vec<Vec<crate::sql::Cell>> {
            if !self.repeat_rows {
                return rows;
            }
            rows.into_iter().flat_map(|r| [r.clone(), r]).collect()
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
            new_password: None,
            state_dir: None,
        };
        Vault::open(&url, "admin", "pw", &opts).await.unwrap()
    }

    /// Asked for patient A, a lying server answers with patient B's row
    /// and B's notes. Each authenticates (under B's id), so only the check
    /// that the answer is for A keeps B's data from being shown as A's:
    /// the answer is refused as a bad stored value.
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
        s.store = Arc::new(Interposed(Lying {
            patient_of: Some(("patients", a.0, b.0)),
            ..Lying::new(&honest)
        }));
        let err = s.get_patient(&a).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::BadStoredValue {
                    table: "patients",
                    column: "id",
                    ..
                }
            ),
            "{err}"
        );
        assert!(s.update_patient(&a, &new("Asked")).await.is_err());
        // The patient row answered honestly, the notes are B's.
        s.store = Arc::new(Interposed(Lying {
            notes_of: Some(("notes", a.0, b.0)),
            ..Lying::new(&honest)
        }));
        let err = s.list_notes(&a, None).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::BadStoredValue {
                    table: "notes",
                    column: "parent",
                    ..
                }
            ),
            "{err}"
        );
        // Control: honest answers give A, B's note to B, both patients once.
        s.store = Arc::new(Interposed(Lying::new(&honest)));
        assert_eq!(s.get_patient(&a).await.unwrap().family_name, "Asked");
        assert_eq!(s.list_notes(&b, None).await.unwrap().notes.len(), 1);
        assert_eq!(s.list_patients(None, 10).await.unwrap().patients.len(), 2);
        // A page with every patient twice: within the limit, but each would
        // be shown twice; and larger than asked (paging on it would never
        // end).
        s.store = Arc::new(Interposed(Lying {
            repeat_rows: true,
            ..Lying::new(&honest)
        }));
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
        s.store = Arc::new(Interposed(Lying::new(&honest)));
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
        s.store = Arc::new(Interposed(Lying {
            repeat_rows: true,
            ..Lying::new(&honest)
        }));
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
        let scope = s.scope_id("identity").unwrap();
        let (epoch, keys) = s.current_keys(scope).unwrap();
        let padded = s
            .column(PATIENTS, "family_name")
            .unwrap()
            .padding
            .pad(&[0xff, 0xfe, 0x41]);
        let cell = Cell {
            table: PATIENTS,
            column: "family_name",
            row: &id.0,
        };
        let blob = keys.seal_v1(None, Header { scope, epoch }, &cell, &padded);
        let changed = s
            .store
            .write_all(vec![(
                "UPDATE patients SET family_name = ? WHERE id = ?".into(),
                vec![Value::Blob(blob), Value::Blob(id.0.to_vec())],
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
