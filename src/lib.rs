//! # medvault
//!
//! Per-field encryption for electronic medical records: patient names,
//! dates of birth and notes are encrypted by the client before they reach
//! the database, found again through blind indexes, and readable only by
//! users who were granted the scope's key.
//!
//! ## To do X, use Y
//!
//! - Create a vault: [`Vault::create`] (returns the recovery shares, once;
//!   they are stored nowhere).
//! - Log in: [`Vault::open`] → a [`Session`].
//! - Store and find patients: [`Session::insert_patient`],
//!   [`Session::find_patients`], [`Session::list_patients`].
//! - Notes: [`Session::add_note`], [`Session::list_notes`].
//! - Users and access (admins): [`Session::add_user`], [`Session::grant`],
//!   [`Session::revoke`], [`Session::disable_user`].
//! - Size blind indexes for a population: [`index::plan`],
//!   [`index::recommend_bits`].
//!
//! ```no_run
//! # async fn demo() -> medvault::Result<()> {
//! use medvault::{NewPatient, PatientQuery, Sex, Vault, CreateOptions, OpenOptions};
//!
//! let url = "sqlcipher:/tmp/clinic.db";
//! let report = Vault::create(url, "alice", "correct horse", &CreateOptions::default()).await?;
//! println!("root {} — keep these shares apart: {:?}", report.root_fingerprint, report.shares);
//!
//! let alice = Vault::open(url, "alice", "correct horse", &OpenOptions::default()).await?;
//! let id = alice
//!     .insert_patient(&NewPatient {
//!         family_name: "Dupont".into(),
//!         given_names: "Hélène".into(),
//!         born: "1970-03-02".into(),
//!         sex: Sex::F,
//!     })
//!     .await?;
//! let found = alice
//!     .find_patients(&PatientQuery {
//!         family_name: Some("DUPONT".into()),
//!         born: Some("1970-03-02".into()),
//!         ..Default::default()
//!     })
//!     .await?;
//! assert_eq!(found[0].id, id);
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod crypto;
pub mod error;
pub mod index;
pub mod keys;
pub mod policy;
pub mod records;
mod runtime;
pub mod schema;
pub mod sql;
pub mod store;
pub mod vault;

pub use error::{Error, Result};
pub use keys::pgp::KdfParams;
pub use records::{
    Id, NewNote, NewPatient, Note, NoteList, Patient, PatientOrder, PatientPage, PatientQuery, Sex,
};
pub use vault::{
    enrol, request_fingerprint, AccessRequest, AdoptReport, CreateOptions, DisableReport, Enrolled,
    Holder, InitReport, OpenOptions, Rights, RotateOptions, RotateProgress, RotateReport, Session,
    UserInfo, Vault,
};

/// The README's examples are compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
