//! A small EMR on medvault: an application schema (allergies,
//! prescriptions, appointments with a per-row scope) used through the
//! library. Run it with
//!
//! ```text
//! cargo run --example emr -- /tmp/emr-demo.db
//! ```
//!
//! It creates a fresh vault at that path (the file must not exist), a
//! doctor and a billing clerk, and walks through a clinic's day. The KDF is
//! the fast test setting, so the demo runs in a second: never use it for
//! real patients.

mod app;

use medvault::{CreateOptions, KdfParams, OpenOptions, Vault};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/emr-demo.db".to_string());
    let url = format!("sqlcipher:{path}");
    let kdf = KdfParams::danger_fast_for_tests();
    let create = CreateOptions {
        kdf,
        ..CreateOptions::default()
    };
    let report = Vault::create(&url, "admin", "admin password", &create).await?;
    let opts = OpenOptions {
        kdf,
        pinned_root: Some(report.root_fingerprint.clone()),
        new_password: None,
        state_dir: None,
    };
    let admin = Vault::open(&url, "admin", "admin password", &opts).await?;
    // The doctor makes her own key from an invitation: her password never
    // passes through the administrator's hands.
    let invitation = admin.invite("doctor", false, None).await?;
    let request = medvault::enrol(&invitation, "doctor password", kdf)?;
    admin.certify(&request).await?;
    admin.grant("doctor", "clinical").await?;
    // The clerk's password is the administrator's choice, so the clerk's
    // first login replaces it.
    admin.add_user("clerk", "clerk password", false).await?;
    admin.grant("clerk", "billing").await?;
    let doctor = Vault::open(&url, "doctor", "doctor password", &opts).await?;
    let first_login = OpenOptions {
        new_password: Some("the clerk's own password".into()),
        ..opts.clone()
    };
    let clerk = Vault::open(&url, "clerk", "clerk password", &first_login).await?;

    let s = app::run(&admin, &doctor, &clerk).await?;
    println!("allergies of Hélène Dupont: {}", s.allergies.join(", "));
    println!("prescriptions found by drug: {}", s.by_drug);
    println!("found by insurance number: {}", s.by_insurance.join(", "));
    println!(
        "the same number on a second patient refused as not unique: {}",
        s.duplicate_refused
    );
    println!("appointment reason (doctor): {:?}", s.reason);
    println!(
        "what the billing clerk cannot read of a prescription: {}",
        s.withheld_for_clerk.join(", ")
    );
    Ok(())
}
