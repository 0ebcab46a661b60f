//! The example EMR (examples/emr/) runs end to end on both stores.

#[macro_use]
mod common;
use common::*;

#[path = "../examples/emr/app.rs"]
mod app;

per_store!(the_example_emr_runs);

async fn the_example_emr_runs(f: Fixture) {
    let admin = f.admin().await;
    let doctor = f.user(&admin, "doctor", &["clinical"]).await;
    let clerk = f.user(&admin, "clerk", &["billing"]).await;
    let s = app::run(&admin, &doctor, &clerk).await.unwrap();
    assert_eq!(s.allergies, ["Latex", "Penicillin"]);
    assert_eq!(s.by_drug, 1);
    assert_eq!(s.by_insurance, ["Dupont"]);
    assert!(s.duplicate_refused);
    assert_eq!(s.reason.as_deref(), Some("Allergy follow-up"));
    assert_eq!(s.withheld_for_clerk, ["drug", "dosage"]);
}
