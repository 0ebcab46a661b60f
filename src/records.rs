//! Patient and note records as the application sees them (plaintext), and
//! their ids.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::store::RowId;

/// Id of a patient or a note: 16 random bytes made by the client, shown as
/// 32 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub(crate) RowId);

impl Id {
    /// A fresh random id.
    pub fn random() -> Id {
        Id(crate::crypto::random_array())
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &RowId {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({self})")
    }
}

impl FromStr for Id {
    type Err = Error;
    fn from_str(s: &str) -> Result<Id> {
        let bad = || Error::BadId(s.chars().take(40).collect());
        let s = s.trim();
        if s.len() != 32 {
            return Err(bad());
        }
        let v = hex::decode(s).map_err(|_| bad())?;
        Ok(Id(v.try_into().map_err(|_| bad())?))
    }
}

impl Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// Administrative sex, as most EMRs record it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Sex {
    /// Female.
    F,
    /// Male.
    M,
    /// Other / indeterminate.
    X,
    /// Unknown.
    U,
}

impl Sex {
    pub(crate) fn code(self) -> u8 {
        match self {
            Sex::F => b'F',
            Sex::M => b'M',
            Sex::X => b'X',
            Sex::U => b'U',
        }
    }

    pub(crate) fn from_code(b: &[u8]) -> Option<Sex> {
        match b {
            b"F" => Some(Sex::F),
            b"M" => Some(Sex::M),
            b"X" => Some(Sex::X),
            b"U" => Some(Sex::U),
            _ => None,
        }
    }
}

impl FromStr for Sex {
    type Err = Error;
    fn from_str(s: &str) -> Result<Sex> {
        Sex::from_code(s.trim().to_ascii_uppercase().as_bytes()).ok_or(Error::BadSex)
    }
}

impl fmt::Display for Sex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code() as char)
    }
}

/// Debug output of types holding patient data names no value: a `{:?}` in
/// an application's log line must not leak a name or a note.
macro_rules! redacted_debug {
    ($t:ident $(, $shown:ident)*) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t))
                    $(.field(stringify!($shown), &self.$shown))*
                    .finish_non_exhaustive()
            }
        }
    };
}

redacted_debug!(NewPatient);
redacted_debug!(Patient, id, sex, author, created_at, updated_at);
redacted_debug!(PatientQuery);
redacted_debug!(Note, id, patient, scope, author, created_at);
redacted_debug!(NewNote, scope);

/// A patient to insert, or the new content of one to update.
#[derive(Clone)]
pub struct NewPatient {
    /// Family name(s).
    pub family_name: String,
    /// Given name(s).
    pub given_names: String,
    /// Date of birth, `YYYY-MM-DD`.
    pub born: String,
    /// Sex.
    pub sex: Sex,
}

/// A note to store with a new patient
/// ([`crate::Session::insert_patients_with_notes`]).
#[derive(Clone)]
pub struct NewNote {
    /// Scope name; `None` is `clinical`.
    pub scope: Option<String>,
    /// The note's text.
    pub body: String,
}

/// A decrypted patient.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Patient {
    /// Id.
    pub id: Id,
    /// Family name(s).
    pub family_name: String,
    /// Given name(s).
    pub given_names: String,
    /// Date of birth, `YYYY-MM-DD`.
    pub born: String,
    /// Sex.
    pub sex: Sex,
    /// User who created the record.
    pub author: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// A patient search: any combination of the criteria; all given must hold.
#[derive(Clone, Default)]
pub struct PatientQuery {
    /// Family name (canonical match: accents, case, hyphens, apostrophes and spaces ignored: "obrien" finds O'Brien).
    pub family_name: Option<String>,
    /// Given names (the whole field, canonical match).
    pub given_names: Option<String>,
    /// Date of birth, `YYYY-MM-DD`.
    pub born: Option<String>,
    /// Year of birth, `YYYY`: patients born that year, whether their date
    /// is whole or partial (through the `bi_born_year` index).
    pub born_year: Option<String>,
    /// A family name as it sounds: patients whose family name has the
    /// same phonetic code ("Dupond" finds Dupont; through the
    /// `bi_family_phonetic` index, `schema/FORMAT.md` §4.2).
    pub sounds_like: Option<String>,
    /// The first letters of a family name, at least 3: patients whose
    /// canonical family name begins with them ("dup" finds Dupont and
    /// Dupond; "du" is `Error::PrefixTooShort`; through the
    /// `bi_family_prefix` index, `schema/FORMAT.md` §4.4).
    pub family_prefix: Option<String>,
    /// One given name, or several: patients among whose given names is
    /// each word given ("marie" finds Élodie Marie and Marie-Claire;
    /// through the `bi_given_words` index, `schema/FORMAT.md` §4.5).
    /// `given_names` asks for the whole field.
    pub given_name: Option<String>,
    /// The order of the answer: by name (the default), or most recently
    /// changed first.
    pub order: PatientOrder,
    /// At most this many patients, the first in `order` (at least 1).
    pub limit: Option<u32>,
}

/// The order of [`Session::find_patients`](crate::Session::find_patients)'
/// answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PatientOrder {
    /// By family name, given names and date of birth (canonical forms:
    /// case, accents and separators ignored), then id. The names are
    /// encrypted, so every match is decrypted to be sorted, whatever the
    /// limit.
    #[default]
    Name,
    /// Most recently changed first (`updated_at`, then id, both plain and
    /// signed): with a limit, the store orders the candidates and answers a
    /// page at a time, so about that many patients are decrypted when the
    /// index covers the whole query (more pages when a criterion it does
    /// not cover drops some; [`Order`](crate::vault::rows::Order)).
    Recent,
}

/// One page of the patient list.
#[derive(Clone, Debug, Serialize)]
pub struct PatientPage {
    /// The patients, in id order.
    pub patients: Vec<Patient>,
    /// Pass as `after` to get the next page; `None` at the end.
    pub next: Option<Id>,
}

/// A decrypted note.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// Id.
    pub id: Id,
    /// Patient.
    pub patient: Id,
    /// Scope name.
    pub scope: String,
    /// Text.
    pub body: String,
    /// Author.
    pub author: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// The notes of a patient the user may read, and how many they may not.
#[derive(Clone, Debug, Serialize)]
pub struct NoteList {
    /// Readable notes, oldest first.
    pub notes: Vec<Note>,
    /// Notes in scopes this user holds no key for.
    pub withheld: usize,
}
