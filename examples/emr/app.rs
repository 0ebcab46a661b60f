//! The example EMR's logic, shared by `main.rs` (the program) and
//! `tests/example.rs` (which runs it on both stores).

use medvault::vault::rows::{NewRow, Value};
use medvault::{NewPatient, Result, Session, Sex};

/// The example's schema: allergies, prescriptions, appointments, and an
/// insurance number on patients (read, written and searched through the
/// row API on the built-in `patients` table).
pub const SCHEMA: &str = include_str!("schema.toml");

/// What the walkthrough found, for the caller to print or check.
#[derive(Debug, Default)]
pub struct Summary {
    /// Allergies of the first patient, by substance.
    pub allergies: Vec<String>,
    /// Prescriptions of the first patient found by drug.
    pub by_drug: usize,
    /// Columns the billing clerk could not read in a prescription.
    pub withheld_for_clerk: Vec<String>,
    /// The appointment reason the doctor reads.
    pub reason: Option<String>,
    /// The family name of the patient found by insurance number.
    pub by_insurance: Vec<String>,
    /// Whether a second patient given the same insurance number (typed
    /// otherwise) was refused as not unique.
    pub duplicate_refused: bool,
}

/// Runs the clinic's day on a vault whose administrator is `admin`: applies
/// the schema, records two patients with allergies, prescriptions and an
/// appointment, and reads them back as a doctor and as a billing clerk.
/// `clerk` and `doctor` are sessions of users holding `billing` and
/// `clinical`.
pub async fn run(admin: &Session, doctor: &Session, clerk: &Session) -> Result<Summary> {
    admin.apply_schema(SCHEMA).await?;

    // Patients: the built-in typed API.
    let dupont = admin
        .insert_patient(&NewPatient {
            family_name: "Dupont".into(),
            given_names: "Hélène".into(),
            born: "1970-03-02".into(),
            sex: Sex::F,
        })
        .await?;
    // The application's column on the built-in table, through the row
    // API: set, then searched (spaces and dots do not matter to a code).
    let patients = admin.table("patients").await?;
    let mut number = std::collections::BTreeMap::new();
    number.insert(
        "insurance_number".to_string(),
        Value::from("2 70 03 75 123 456"),
    );
    patients.update(dupont, &number).await?;
    let found = patients
        .find(&[("insurance_number", Value::from("270037512.3456"))])
        .await?;
    let by_insurance = found
        .iter()
        .filter_map(|r| r.text("family_name").map(str::to_owned))
        .collect();
    // The index is `unique`: the same number on another patient is refused,
    // and that patient keeps none.
    let martin = admin
        .insert_patient(&NewPatient {
            family_name: "Martin".into(),
            given_names: "Paul".into(),
            born: "1985-11-20".into(),
            sex: Sex::M,
        })
        .await?;
    let mut same = std::collections::BTreeMap::new();
    same.insert(
        "insurance_number".to_string(),
        Value::from("270037512-3456"),
    );
    let duplicate_refused = match patients.update(martin, &same).await {
        Err(medvault::Error::NotUnique { .. }) => true,
        Err(e) => return Err(e),
        Ok(_) => false,
    };

    let allergies = doctor.table("allergies").await?;
    allergies
        .insert_many(&[
            NewRow::child_of(dupont)
                .set("substance", "Penicillin")
                .set("reaction", "Hives within the hour")
                .set("recorded_on", "2019-05"),
            NewRow::child_of(dupont)
                .set("substance", "Latex")
                .set("reaction", "Contact rash")
                .set("recorded_on", "2021"),
        ])
        .await?;

    let prescriptions = doctor.table("prescriptions").await?;
    prescriptions
        .insert(
            &NewRow::child_of(dupont)
                .set("drug", "Amoxicillin")
                .set("dosage", "500 mg three times a day")
                .set("started_on", "2024-01-02"),
        )
        .await?;
    let rx = prescriptions
        .find(&[("drug", Value::from("AMOXICILLIN"))])
        .await?;

    let appointments = doctor.table("appointments").await?;
    let visit = appointments
        .insert(
            &NewRow::child_of(dupont)
                .scope("clinical")
                .set("starts_at", 1_800_000_000i64)
                .set("minutes", 20i64)
                .set("reason", "Allergy follow-up")
                .set("confirmed", true),
        )
        .await?;

    let mut summary = Summary {
        allergies: allergies
            .children(dupont)
            .await?
            .iter()
            .filter_map(|r| r.text("substance").map(str::to_owned))
            .collect(),
        by_drug: rx.len(),
        by_insurance,
        duplicate_refused,
        reason: appointments
            .get(visit)
            .await?
            .and_then(|r| r.text("reason").map(str::to_owned)),
        ..Summary::default()
    };
    summary.allergies.sort();
    if let Some(first) = rx.first() {
        if let Some(r) = clerk.table("prescriptions").await?.get(first.id).await? {
            summary.withheld_for_clerk = r.withheld;
        }
    }
    Ok(summary)
}
