//! `medvault demo`: a whole clinic in a throwaway directory, with timings.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use medvault::{
    CreateOptions, Error, KdfParams, NewPatient, OpenOptions, PatientQuery, Sex, Vault,
};

use crate::cli::DemoArgs;
use crate::commands::CliError;

const FAMILY: &[&str] = &[
    "Dupont",
    "Lefèvre",
    "Saint-Pierre",
    "Müller",
    "O'Brien",
    "Nguyễn",
    "García-López",
    "Øvergaard",
    "Château",
    "Moreau",
    "Da Silva",
    "Kowalczyk",
    "Benoît",
    "Ørsted",
    "Le Gall",
    "Şahin",
    "Björk",
    "Fournier",
    "Van der Berg",
    "Dubois-Léger",
    "Marchand",
    "Zoćić",
    "Aït-Ahmed",
    "Crémieux",
];
const GIVEN: &[&str] = &[
    "Hélène",
    "Zoë",
    "Jean-Luc",
    "Åsa",
    "Chloé",
    "Maël",
    "José",
    "François",
    "Anaïs",
    "Jörg",
    "Noémie",
    "Loïc",
    "Inès",
    "Sørina",
    "Marie-Claire",
    "Léa",
    "Çelik",
    "Renée",
    "Ibrahim",
    "Aurélie",
];

/// A small deterministic generator: the demo's data is the same every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[(self.next() as usize) % v.len()]
    }
}

fn synthetic(n: usize) -> Vec<NewPatient> {
    let mut r = Lcg(0x6d65_6476_6175_6c74);
    (0..n)
        .map(|_| {
            let family = if r.next().is_multiple_of(4) {
                format!("{}-{}", r.pick(FAMILY), r.pick(FAMILY))
            } else {
                r.pick(FAMILY).to_owned()
            };
            NewPatient {
                family_name: family,
                given_names: r.pick(GIVEN).to_owned(),
                born: format!(
                    "{}-{:02}-{:02}",
                    1930 + r.next() % 90,
                    1 + r.next() % 12,
                    1 + r.next() % 28
                ),
                sex: [Sex::F, Sex::M, Sex::X, Sex::U][(r.next() % 4) as usize],
            }
        })
        .collect()
}

fn ms(d: Duration) -> String {
    format!("{:>9.1} ms", d.as_secs_f64() * 1000.0)
}

fn step(label: &str, d: Duration) {
    println!("  {} {label}", ms(d));
}

pub async fn run(a: &DemoArgs, kdf: KdfParams) -> Result<(), CliError> {
    let tmp;
    let dir = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| {
                CliError::msg(
                    format!("cannot create {}: {e}", d.display()),
                    "choose another --dir",
                )
            })?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()
                .map_err(|e| CliError::msg(format!("no temporary directory: {e}"), "pass --dir"))?;
            tmp.path().to_owned()
        }
    };
    let db = dir.join("clinic.db");
    let url = format!("sqlcipher:{}", db.display());
    let n = a.patients.max(1);
    println!("medvault demo: a clinic in {}", dir.display());
    println!(
        "Key protection: Argon2id t={} p={} m={} MiB per secret key.",
        kdf.t,
        kdf.p,
        (1u64 << kdf.m_log2) / 1024
    );
    println!();

    let t = Instant::now();
    let report = Vault::create(
        &url,
        "dr.leroy",
        "leroy: tulips in april",
        &CreateOptions {
            kdf,
            ..Default::default()
        },
    )
    .await?;
    step(
        "created the vault: root key split into 2-of-4 recovery shares, administrator dr.leroy",
        t.elapsed(),
    );

    let opts = OpenOptions {
        kdf,
        pinned_root: Some(report.root_fingerprint.clone()),
        new_password: None,
        state_dir: None,
    };
    let t = Instant::now();
    let leroy = Vault::open(&url, "dr.leroy", "leroy: tulips in april", &opts).await?;
    let unlock = t.elapsed();
    step(
        "dr.leroy logged in (both secret keys unlocked, two Argon2 runs in parallel; grants verified to the pinned root)",
        unlock,
    );

    let t = Instant::now();
    // dr.moreau makes her own key from an invitation (on her own machine,
    // `medvault enrol`); the clerk gets a password dr.leroy chose.
    let invitation = leroy.invite("dr.moreau", false, None).await?;
    let request = tokio::task::spawn_blocking(move || {
        medvault::enrol(&invitation, "moreau: blue heron", kdf)
    })
    .await
    .map_err(|e| CliError::msg(format!("key generation stopped: {e}"), "try again"))??;
    leroy.certify(&request).await?;
    leroy
        .add_user("clerk.petit", "petit: chosen by leroy", false)
        .await?;
    for scope in ["identity", "clinical"] {
        leroy.grant("dr.moreau", scope).await?;
    }
    // The clerk finds patients but does not edit who they are.
    leroy
        .grant_rights("clerk.petit", "identity", medvault::Rights::Read)
        .await?;
    leroy.grant("clerk.petit", "billing").await?;
    step(
        "enrolled clinician dr.moreau from an invitation (her key, her password), added clerk clerk.petit; granted identity+clinical, and identity (read-only)+billing",
        t.elapsed(),
    );

    let patients = synthetic(n);
    let t = Instant::now();
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(n as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut ids = Vec::with_capacity(n);
    for chunk in patients.chunks(1000) {
        ids.extend(leroy.insert_patients(chunk).await?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let insert = t.elapsed();
    step(
        &format!(
            "inserted {n} patients, 4 encrypted fields and 6 blind indexes each ({:.0} patients/s)",
            n as f64 / insert.as_secs_f64()
        ),
        insert,
    );

    let target = &patients[n / 2];
    let t = Instant::now();
    let moreau = Vault::open(&url, "dr.moreau", "moreau: blue heron", &opts).await?;
    step("dr.moreau logged in", t.elapsed());
    let typed = target.family_name.to_uppercase().replace('-', " ");
    let q = PatientQuery {
        family_name: Some(typed.clone()),
        born: Some(target.born.clone()),
        ..Default::default()
    };
    let t = Instant::now();
    let found = moreau.find_patients(&q).await?;
    let first = t.elapsed();
    let reps = 200;
    let t = Instant::now();
    for _ in 0..reps {
        moreau.find_patients(&q).await?;
    }
    let per = t.elapsed() / reps;
    step(
        &format!(
            "dr.moreau searched \"{typed}\", born {}: {} match(es) (mean of {reps} searches: {:.3} ms)",
            target.born,
            found.len(),
            per.as_secs_f64() * 1000.0
        ),
        first,
    );
    for p in &found {
        println!(
            "               → {}  {}, {}  born {}",
            p.id, p.family_name, p.given_names, p.born
        );
    }
    let pid = found.first().map(|p| p.id).unwrap_or(ids[n / 2]);
    // The desk asks for everyone born in a year: the year-of-birth index
    // (the server learns which patients share a year, not the year).
    let year = target.born.get(..4).unwrap_or("1970").to_owned();
    let t = Instant::now();
    let same_year = moreau
        .find_patients(&PatientQuery {
            born_year: Some(year.clone()),
            ..Default::default()
        })
        .await?;
    step(
        &format!(
            "dr.moreau asked for everyone born in {year}: {} patient(s), each date checked after decryption",
            same_year.len()
        ),
        t.elapsed(),
    );

    // A name heard at the desk and misspelt: the phonetic index (the
    // server learns which family names sound alike, not the names).
    let heard = match target.family_name.strip_suffix('t') {
        Some(stem) => format!("{stem}d"),
        None => format!("{}e", target.family_name),
    };
    let t = Instant::now();
    let sounding = moreau
        .find_patients(&PatientQuery {
            sounds_like: Some(heard.clone()),
            ..Default::default()
        })
        .await?;
    let spellings: std::collections::BTreeSet<&str> =
        sounding.iter().map(|p| p.family_name.as_str()).collect();
    step(
        &format!(
            "dr.moreau searched a name as heard, \"{heard}\": {} patient(s) named {}",
            sounding.len(),
            spellings.into_iter().collect::<Vec<_>>().join(", ")
        ),
        t.elapsed(),
    );

    // The first letters typed at the desk: the prefix index (the server
    // learns which family names begin alike, at 3 to 5 letters).
    // As many characters as make 3 letters ("Le G" for Le Gall).
    let mut typed = String::new();
    for c in target.family_name.chars() {
        if medvault::index::canonical::name(&typed).chars().count() >= 3 {
            break;
        }
        typed.push(c);
    }
    let t = Instant::now();
    let beginning = moreau
        .find_patients(&PatientQuery {
            family_prefix: Some(typed.clone()),
            ..Default::default()
        })
        .await?;
    let names: std::collections::BTreeSet<&str> =
        beginning.iter().map(|p| p.family_name.as_str()).collect();
    step(
        &format!(
            "dr.moreau typed the first letters \"{typed}\": {} patient(s) named {}",
            beginning.len(),
            names.into_iter().collect::<Vec<_>>().join(", ")
        ),
        t.elapsed(),
    );

    // One of a patient's given names: the tokens index (the server learns
    // which patients share a given name, not the name).
    let one_given = last_given_word(&target.given_names);
    let t = Instant::now();
    let by_given = moreau
        .find_patients(&PatientQuery {
            given_name: Some(one_given.clone()),
            ..Default::default()
        })
        .await?;
    step(
        &format!(
            "dr.moreau asked for the given name \"{one_given}\": {} patient(s) with it among their given names",
            by_given.len()
        ),
        t.elapsed(),
    );

    let t = Instant::now();
    let mut listed = 0;
    let mut after = None;
    loop {
        let page = moreau.list_patients(after.as_ref(), 1000).await?;
        listed += page.patients.len();
        match page.next {
            Some(nx) => after = Some(nx),
            None => break,
        }
    }
    let list = t.elapsed();
    step(
        &format!(
            "listed all {listed} patients, names decrypted ({:.0} fields/s)",
            (listed * 4) as f64 / list.as_secs_f64()
        ),
        list,
    );

    let t = Instant::now();
    moreau
        .add_note(
            &pid,
            "Follow-up in 3 weeks; penicillin allergy confirmed.",
            Some("clinical"),
        )
        .await?;
    leroy
        .add_note(&pid, "Invoice 2026-114 sent.", Some("billing"))
        .await?;
    step(
        "dr.moreau wrote a clinical note; dr.leroy a billing note",
        t.elapsed(),
    );

    // The clerk's first login: the password dr.leroy chose must go.
    match Vault::open(&url, "clerk.petit", "petit: chosen by leroy", &opts).await {
        Err(Error::PasswordChangeRequired { .. }) => println!(
            "             clerk.petit's first login: refused until the clerk chooses a password of their own"
        ),
        Ok(_) => return Err(CliError::msg("no password change was asked for", "report this bug")),
        Err(e) => return Err(e.into()),
    }
    let first = OpenOptions {
        new_password: Some("petit: invoices".into()),
        ..opts.clone()
    };
    let clerk = Vault::open(&url, "clerk.petit", "petit: chosen by leroy", &first).await?;
    match clerk.list_notes(&pid, Some("clinical")).await {
        Err(Error::NoAccess(scope)) => println!("             clerk.petit reading clinical notes: refused, no access to scope \"{scope}\""),
        Ok(_) => return Err(CliError::msg("the clerk could read clinical notes", "report this bug")),
        Err(e) => return Err(e.into()),
    }
    let seen = clerk.get_patient(&pid).await?;
    // Every row read is checked against its author's signed batch.
    match clerk.table("patients").await?.get(pid).await?.map(|r| r.authorship) {
        Some(medvault::vault::rows::Authorship::Signed { author, version, .. }) => println!(
            "             clerk.petit reading the patient: version {version}, signed by its author {author}, checked"
        ),
        _ => return Err(CliError::msg("the patient row is not signed by its author", "report this bug")),
    }
    let renamed = medvault::NewPatient {
        family_name: "Renamed".into(),
        given_names: seen.given_names,
        born: seen.born,
        sex: seen.sex,
    };
    match clerk.update_patient(&pid, &renamed).await {
        Err(Error::ReadOnly(scope)) => println!("             clerk.petit editing a patient's name: refused, scope \"{scope}\" is granted for reading only"),
        Ok(_) => return Err(CliError::msg("the clerk could edit a patient", "report this bug")),
        Err(e) => return Err(e.into()),
    }
    let visible = clerk.list_notes(&pid, None).await?;
    println!(
        "             clerk.petit sees {} note(s) ({}), {} withheld by cryptography",
        visible.notes.len(),
        visible
            .notes
            .iter()
            .map(|n| n.scope.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        visible.withheld
    );

    // Access over time: a rotation with search running, a revocation.
    let t = Instant::now();
    let r = leroy.rotate("identity").await?;
    let rotate = t.elapsed();
    let again = moreau.find_patients(&q).await?;
    step(
        &format!(
            "dr.leroy rotated identity to key epoch {}: {} patients sealed again, epoch {} retired ({:.0} rows/s); dr.moreau's open session still finds {} match(es)",
            r.epoch,
            r.rewritten,
            r.retired.first().copied().unwrap_or(0),
            r.rewritten as f64 / rotate.as_secs_f64(),
            again.len()
        ),
        rotate,
    );
    let t = Instant::now();
    let r = leroy.revoke("clerk.petit", "billing").await?;
    leroy
        .add_note(&pid, "Invoice 2026-115 sent.", Some("billing"))
        .await?;
    step(
        &format!(
            "dr.leroy revoked billing from clerk.petit: billing rotated to epoch {} ({} note(s) sealed again), a new billing note written",
            r.epoch, r.rewritten
        ),
        t.elapsed(),
    );
    let visible = clerk.list_notes(&pid, None).await?;
    println!(
        "             clerk.petit's open session now sees {} note(s), {} withheld: billing is under a key it never had",
        visible.notes.len(),
        visible.withheld
    );
    // Recovery: dr.moreau forgot the password; two partners bring shares.
    drop(moreau);
    let t = Instant::now();
    let two = [report.shares[0].clone(), report.shares[2].clone()];
    leroy
        .recover_reset_password("dr.moreau", "moreau: green kingfisher", &two)
        .await?;
    // Whoever ran the recovery knows that password: dr.moreau replaces it
    // at her first login.
    let first = OpenOptions {
        new_password: Some("moreau: grey wagtail".into()),
        ..opts.clone()
    };
    let moreau = Vault::open(&url, "dr.moreau", "moreau: green kingfisher", &first).await?;
    let back = moreau.find_patients(&q).await?;
    step(
        &format!(
            "2 of 4 recovery shares gave dr.moreau a new key and password (replaced at her next login), every grant back; found {} match(es) again",
            back.len()
        ),
        t.elapsed(),
    );
    drop((leroy, moreau, clerk));

    let t = Instant::now();
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-journal", ".keyring"] {
        let mut p = db.clone().into_os_string();
        p.push(suffix);
        if let Ok(b) = std::fs::read(&p) {
            bytes.extend(b);
        }
    }
    let mut needles: Vec<String> = patients
        .iter()
        .flat_map(|p| [p.family_name.clone(), p.given_names.clone()])
        .collect();
    needles.extend(patients.iter().take(500).map(|p| p.born.clone()));
    needles.push("penicillin".into());
    needles.sort();
    needles.dedup();
    let leaked: Vec<&String> = needles
        .iter()
        .filter(|s| memchr::memmem::find(&bytes, s.as_bytes()).is_some())
        .collect();
    step(
        &format!(
            "searched the database file, its WAL and keyring ({} KiB) for {} stored names, dates and note words: {} found",
            bytes.len() / 1024,
            needles.len(),
            leaked.len()
        ),
        t.elapsed(),
    );
    if !leaked.is_empty() {
        return Err(CliError::msg(
            "plaintext found in the database file",
            "report this bug",
        ));
    }
    println!();
    println!("Recovery shares (any 2 of 4 rebuild the root key):");
    for s in &report.shares {
        println!("  {s}");
    }
    println!();
    println!(
        "Logging in (unlocking both secret keys, Argon2id) took {}, a search {:.3} ms.",
        ms(unlock).trim(),
        per.as_secs_f64() * 1000.0
    );
    if a.dir.is_none() {
        println!("The demo directory is removed now; pass --dir to keep it.");
    }
    Ok(())
}

/// The last word of given names as written ("Marie" of "Anaïs Marie"),
/// or "Marie".
fn last_given_word(given: &str) -> String {
    given
        .split([' ', '-'])
        .rfind(|w| !w.is_empty())
        .unwrap_or("Marie")
        .to_owned()
}
