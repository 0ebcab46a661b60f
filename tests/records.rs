//! Patients and notes through the library API.

#[macro_use]
mod common;
use common::*;
use medvault::{Error, Id, NewNote, NewPatient, PatientQuery, Sex};
use unicode_normalization::UnicodeNormalization;

per_store!(
    crud,
    find_by_each_criterion_and_canonical_forms,
    false_positives_of_truncated_indexes_are_dropped,
    list_in_pages,
    bad_values_change_nothing,
    a_single_name_and_a_partial_birth_date_fit,
    import_with_notes_is_one_transaction,
    padding_hides_name_length_within_a_bucket,
    no_marker_reaches_the_database_file_or_its_journals,
    notes_come_back_in_the_order_written,
    patients_are_found_by_year_of_birth_and_older_ones_once_filled,
    the_sound_of_a_family_name_finds_exactly_what_a_full_scan_finds,
    names_are_found_as_people_type_them,
    the_first_letters_of_a_family_name_find_exactly_what_a_full_scan_finds,
    a_given_name_finds_exactly_what_a_full_scan_finds,
    the_most_recently_changed_patients_come_first_and_a_limit_holds,
);

/// Separators and letters with no decomposition fold (FORMAT.md 4.1,
/// fold 2): what a desk types finds what was written, by family name, by
/// given names and with a date of birth; and nothing else.
async fn names_are_found_as_people_type_them(f: Fixture) {
    let a = f.admin().await;
    let written = [
        ("O'Brien", "Siobhán"),
        ("Saint-Pierre", "Jean-Marie"),
        ("Łukasiewicz", "Zoë"),
        ("Ørsted", "Hans Christian"),
        ("Ærø", "Mette"),
        ("Œuvre", "Anne"),
        ("Straße", "Jürgen"),
        ("Col·lell", "Núria"),
    ];
    let people: Vec<NewPatient> = written
        .iter()
        .map(|(f, g)| patient(f, g, "1970-03-02"))
        .collect();
    let ids = a.insert_patients(&people).await.unwrap();
    let typed = [
        ("obrien", "siobhan"),
        ("saintpierre", "jeanmarie"),
        ("lukasiewicz", "zoe"),
        ("orsted", "hanschristian"),
        ("aero", "mette"),
        ("oeuvre", "anne"),
        ("strasse", "jurgen"),
        ("collell", "nuria"),
    ];
    for (i, (family, given)) in typed.iter().enumerate() {
        for query in [
            q(Some(family), None, None),
            q(None, Some(given), None),
            q(Some(family), None, Some("1970-03-02")),
            q(Some(&family.to_uppercase()), Some(given), None),
        ] {
            let found = a.find_patients(&query).await.unwrap();
            let got: Vec<Id> = found.iter().map(|p| p.id).collect();
            assert_eq!(got, vec![ids[i]], "{query:?}");
        }
    }
    for nobody in ["o bryan", "saint", "lukasiewic", "oersted"] {
        let found = a.find_patients(&q(Some(nobody), None, None)).await.unwrap();
        assert!(found.is_empty(), "{nobody}");
    }
}

fn q(family: Option<&str>, given: Option<&str>, born: Option<&str>) -> PatientQuery {
    PatientQuery {
        family_name: family.map(String::from),
        given_names: given.map(String::from),
        born: born.map(String::from),
        ..Default::default()
    }
}

fn born_in(year: &str) -> PatientQuery {
    PatientQuery {
        born_year: Some(year.into()),
        ..Default::default()
    }
}

/// The year of birth finds whole and partial dates of that year, alone or
/// with a family name. A patient as a vault made before format 9 holds it
/// (no year index, no authentication) is not found by year, and counted,
/// until an administrator fills the index; then it is.
async fn patients_are_found_by_year_of_birth_and_older_ones_once_filled(f: Fixture) {
    let a = f.admin().await;
    let ids = a
        .insert_patients(&[
            patient("Dupont", "Jean", "1970-03-02"),
            patient("Durand", "Anne", "1970"),
            patient("Dupont", "Paul", "1971-05"),
        ])
        .await
        .unwrap();
    let found = |v: Vec<medvault::Patient>| {
        let mut got: Vec<Id> = v.iter().map(|p| p.id).collect();
        got.sort();
        got
    };
    let mut both = vec![ids[0], ids[1]];
    both.sort();
    assert_eq!(
        found(a.find_patients(&born_in("1970")).await.unwrap()),
        both
    );
    assert_eq!(
        found(a.find_patients(&born_in(" 1971 ")).await.unwrap()),
        vec![ids[2]]
    );
    let mut dupont_1970 = born_in("1970");
    dupont_1970.family_name = Some("DUPONT".into());
    assert_eq!(
        found(a.find_patients(&dupont_1970).await.unwrap()),
        vec![ids[0]]
    );
    for bad in ["70", "1970-03", "year"] {
        let err = a.find_patients(&born_in(bad)).await.unwrap_err();
        assert!(matches!(err, Error::Refused(_)), "{bad}: {err}");
    }
    assert_eq!(a.unfilled("patients", "bi_born_year").await.unwrap(), 0);
    // As written before format 9.
    f.made_before_rows_were_signed().await;
    let n = f
        .exec(
            "UPDATE patients SET bi_born_year = NULL, medvault_auth = NULL WHERE id = ?",
            vec![Val::B(ids[0].as_bytes().to_vec())],
        )
        .await;
    assert_eq!(n, 1);
    let a = f.admin().await;
    assert_eq!(
        found(a.find_patients(&born_in("1970")).await.unwrap()),
        vec![ids[1]]
    );
    assert_eq!(a.unfilled("patients", "bi_born_year").await.unwrap(), 1);
    // verify counts it as not filled, not as a problem (an upgraded vault
    // is not tampered with).
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert_eq!(v.indexes_unfilled, 1);
    assert_eq!(a.fill_indexes().await.unwrap(), 1);
    assert_eq!(a.verify_store().await.unwrap().indexes_unfilled, 0);
    assert_eq!(a.unfilled("patients", "bi_born_year").await.unwrap(), 0);
    assert_eq!(
        found(a.find_patients(&born_in("1970")).await.unwrap()),
        both
    );
    assert_eq!(a.get_patient(&ids[0]).await.unwrap().family_name, "Dupont");
}

/// Family names as a desk meets them: spelling variants, accents, case,
/// hyphens, particles and several words.
const FAMILIES: [&str; 24] = [
    "Dupont",
    "Dupond",
    "DU PONT",
    "Dupont-Moreau",
    "Meyer",
    "Mayer",
    "Meier",
    "Le Gall",
    "Legall",
    "Saint-Pierre",
    "Saint Pierre",
    "de la Fontaine",
    "Lafontaine",
    "Hélène",
    "Müller",
    "Mueller",
    "Łukasiewicz",
    "Ørsted",
    "O'Brien",
    "Obrien",
    "Nguyễn",
    "Martin",
    "Martins",
    "Иванов",
];

/// Thousands of synthetic patients: a phonetic search returns exactly the
/// patients a full scan (every row decrypted, the code compared) returns,
/// for names in the set, spelling variants and names not in it; a patient
/// as a vault made before format 10 holds it is found once filled.
async fn the_sound_of_a_family_name_finds_exactly_what_a_full_scan_finds(f: Fixture) {
    use medvault::index::canonical::{name, phonetic};
    let a = f.admin().await;
    let mut seed: u64 = 0x5eed;
    let mut next = |n: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        usize::try_from(seed >> 33).unwrap() % n
    };
    let given = ["Jean", "Élodie Marie", "Anne-Sophie", "Paul", "Zoë"];
    let all: Vec<NewPatient> = (0..2000)
        .map(|i| {
            let family = if next(4) == 0 {
                // Names a desk never heard of, each its own sound.
                format!("{}{}", ["Ka", "Ro", "Vi", "Su"][next(4)], i)
            } else {
                FAMILIES[next(FAMILIES.len())].to_owned()
            };
            patient(
                &family,
                given[next(given.len())],
                &format!("19{:02}-0{}-1{}", next(100), 1 + next(9), next(10)),
            )
        })
        .collect();
    let ids = a.insert_patients(&all).await.unwrap();
    let scan = |q: &str| -> Vec<Id> {
        let want = phonetic(&name(q));
        let mut v: Vec<Id> = all
            .iter()
            .zip(&ids)
            .filter(|(p, _)| want.is_some() && phonetic(&name(&p.family_name)) == want)
            .map(|(_, id)| *id)
            .collect();
        v.sort();
        v
    };
    let sounds = |q: &str| PatientQuery {
        sounds_like: Some(q.into()),
        ..Default::default()
    };
    let mut queries: Vec<&str> = FAMILIES.to_vec();
    queries.extend(["dupon", "MAIER", "legal", "Saintpierre", "Ka7", "Zzyzx"]);
    let mut variants = 0;
    for q in queries {
        let got = a.find_patients(&sounds(q)).await;
        let want = scan(q);
        if phonetic(&name(q)).is_none() {
            assert!(matches!(got, Err(Error::Refused(_))), "{q}: {got:?}");
            continue;
        }
        let got = got.unwrap();
        let mut got_ids: Vec<Id> = got.iter().map(|p| p.id).collect();
        got_ids.sort();
        assert_eq!(got_ids, want, "{q}");
        let spellings: std::collections::BTreeSet<&str> =
            got.iter().map(|p| p.family_name.as_str()).collect();
        if spellings.len() > 1 {
            variants += 1;
        }
    }
    assert!(
        variants >= 5,
        "spelling variants met under {variants} queries"
    );
    // "Dupond" finds every Dupont, and no Martin.
    let dupond = a.find_patients(&sounds("Dupond")).await.unwrap();
    assert!(dupond.iter().any(|p| p.family_name == "Dupont"));
    assert!(dupond.iter().all(|p| p.family_name != "Martin"));
    // With a year of birth: both hold.
    let mut with_year = sounds("dupond");
    with_year.born_year = Some("1950".into());
    for p in a.find_patients(&with_year).await.unwrap() {
        assert!(p.born.starts_with("1950"), "{}", p.born);
    }
    // As written before format 10: not found by sound until filled.
    let target = ids[all.iter().position(|p| p.family_name == "Dupont").unwrap()];
    f.made_before_rows_were_signed().await;
    let n = f
        .exec(
            "UPDATE patients SET bi_family_phonetic = NULL, medvault_auth = NULL WHERE id = ?",
            vec![Val::B(target.as_bytes().to_vec())],
        )
        .await;
    assert_eq!(n, 1);
    let a = f.admin().await;
    let found = |v: Vec<medvault::Patient>| v.iter().any(|p| p.id == target);
    assert!(!found(a.find_patients(&sounds("dupond")).await.unwrap()));
    assert_eq!(
        a.unfilled("patients", "bi_family_phonetic").await.unwrap(),
        1
    );
    assert_eq!(a.fill_indexes().await.unwrap(), 1);
    assert_eq!(
        a.unfilled("patients", "bi_family_phonetic").await.unwrap(),
        0
    );
    assert!(found(a.find_patients(&sounds("dupond")).await.unwrap()));
    // Names with no sound (Cyrillic) hold the value of the empty part,
    // which verify accepts, and which a fill does not count as missing.
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

/// Thousands of synthetic patients with accented, hyphenated, particle,
/// multi-word and Cyrillic family names: a search by the first letters
/// returns exactly the patients a full scan (every row decrypted, the
/// canonical family name compared) returns, for every prefix of every
/// name from 3 characters to past the 5 the index keys; fewer than 3 are
/// refused; a patient written before format 11 is found once filled.
async fn the_first_letters_of_a_family_name_find_exactly_what_a_full_scan_finds(f: Fixture) {
    use medvault::index::canonical::name;
    let a = f.admin().await;
    let mut seed: u64 = 0xd0b0;
    let mut next = |n: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        usize::try_from(seed >> 33).unwrap() % n
    };
    let more = [
        "Martinez",
        "Martineau",
        "Du Bois-Reymond",
        "Dubois",
        "Lê Văn",
        "Van der Berg",
        "Vandenberg",
        "Ivanova",
        "Li",
        "Ng",
    ];
    let all: Vec<NewPatient> = (0..2000)
        .map(|i| {
            let family = match next(5) {
                // Names made up, sharing their first letters in crowds.
                0 => format!(
                    "{}{}{}",
                    ["Dup", "Mar", "Leg"][next(3)],
                    ["a", "o"][next(2)],
                    i
                ),
                1 => more[next(more.len())].to_owned(),
                _ => FAMILIES[next(FAMILIES.len())].to_owned(),
            };
            patient(
                &family,
                "Élodie Marie",
                &format!("19{:02}-01-1{}", next(100), next(10)),
            )
        })
        .collect();
    let ids = a.insert_patients(&all).await.unwrap();
    let scan = |q: &str| -> Vec<Id> {
        let want = name(q);
        let mut v: Vec<Id> = all
            .iter()
            .zip(&ids)
            .filter(|(p, _)| name(&p.family_name).starts_with(&want))
            .map(|(_, id)| *id)
            .collect();
        v.sort();
        v
    };
    let starts = |q: &str| PatientQuery {
        family_prefix: Some(q.into()),
        ..Default::default()
    };
    // Every prefix of every name in the set, as canonical characters, and
    // some as a desk types them.
    let mut queries: Vec<String> = Vec::new();
    for n in FAMILIES.iter().chain(&more) {
        let c: Vec<char> = name(n).chars().collect();
        for k in 1..=c.len().min(9) {
            queries.push(c[..k].iter().collect());
        }
    }
    queries.extend(
        [
            "Du P", "DUPONT-M", "le g", "Łuk", "Ørs", "Иван", "Mar", "Leg", "Dupa1", "zzz",
        ]
        .map(str::to_owned),
    );
    let (mut found, mut crowds, mut short) = (0, 0, 0);
    for q in &queries {
        let got = a.find_patients(&starts(q)).await;
        if name(q).chars().count() < 3 {
            assert!(
                matches!(got, Err(Error::PrefixTooShort { shortest: 3, .. })),
                "{q}: {got:?}"
            );
            short += 1;
            continue;
        }
        let got = got.unwrap_or_else(|e| panic!("{q}: {e}"));
        let mut got_ids: Vec<Id> = got.iter().map(|p| p.id).collect();
        got_ids.sort();
        assert_eq!(got_ids, scan(q), "{q}");
        found += usize::from(!got.is_empty());
        let names: std::collections::BTreeSet<String> =
            got.iter().map(|p| name(&p.family_name)).collect();
        crowds += usize::from(names.len() > 1);
    }
    assert!(
        short > 10 && found > 100 && crowds > 20,
        "{short} {found} {crowds}"
    );
    // "dup" finds Dupont and Dupond, not Dubois.
    let dup = a.find_patients(&starts("dup")).await.unwrap();
    for want in ["Dupont", "Dupond", "DU PONT", "Dupont-Moreau"] {
        assert!(dup.iter().any(|p| p.family_name == want), "{want}");
    }
    assert!(dup.iter().all(|p| !p.family_name.starts_with("Dub")));
    // With a year of birth: both hold.
    let mut with_year = starts("dup");
    with_year.born_year = Some("1950".into());
    let both = a.find_patients(&with_year).await.unwrap();
    assert!(both
        .iter()
        .all(|p| p.born.starts_with("1950") && name(&p.family_name).starts_with("dup")));
    // As written before format 11: not found by its first letters until
    // filled.
    let target = ids[all.iter().position(|p| p.family_name == "Dupont").unwrap()];
    f.made_before_rows_were_signed().await;
    let n = f
        .exec(
            "UPDATE patients SET bi_family_prefix = NULL, medvault_auth = NULL WHERE id = ?",
            vec![Val::B(target.as_bytes().to_vec())],
        )
        .await;
    assert_eq!(n, 1);
    let a = f.admin().await;
    let found = |v: Vec<medvault::Patient>| v.iter().any(|p| p.id == target);
    assert!(!found(a.find_patients(&starts("dupo")).await.unwrap()));
    assert_eq!(a.unfilled("patients", "bi_family_prefix").await.unwrap(), 1);
    assert_eq!(a.fill_indexes().await.unwrap(), 1);
    assert_eq!(a.unfilled("patients", "bi_family_prefix").await.unwrap(), 0);
    assert!(found(a.find_patients(&starts("dupo")).await.unwrap()));
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

/// Thousands of synthetic patients with one to seven given names
/// (hyphenated, accented, repeated, none at all): a search by one given
/// name, or several, returns exactly the patients a full scan (every row
/// decrypted, its words compared) returns, those with more given names
/// than the index's 4 slots included; a patient written before format 12
/// is found once filled.
async fn a_given_name_finds_exactly_what_a_full_scan_finds(f: Fixture) {
    use medvault::index::canonical::words;
    use medvault::schema::Kind;
    let a = f.admin().await;
    let mut seed: u64 = 0x9e11;
    let mut next = |n: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        usize::try_from(seed >> 33).unwrap() % n
    };
    let names = [
        "Marie",
        "Élodie",
        "Jean-Pierre",
        "Anne-Sophie",
        "Zoë",
        "Marie-Claire",
        "Łucja",
        "O'Neil",
        "Joseph",
        "Thérèse",
        "Jean",
        "Pierre",
        "Иван",
    ];
    let all: Vec<NewPatient> = (0..2000)
        .map(|i| {
            let n = match next(10) {
                0 => 0,
                1 => 5 + next(3),
                _ => 1 + next(3),
            };
            let given: Vec<&str> = (0..n).map(|_| names[next(names.len())]).collect();
            let given = given.join(if next(2) == 0 { " " } else { "  " });
            patient(&format!("Fam{}", i % 97), &given, "1970-03-02")
        })
        .collect();
    let ids = a.insert_patients(&all).await.unwrap();
    let scan = |q: &str| -> Vec<Id> {
        let want = words(Kind::Name, q);
        let mut v: Vec<Id> = all
            .iter()
            .zip(&ids)
            .filter(|(p, _)| {
                let got = words(Kind::Name, &p.given_names);
                let got: Vec<&str> = got.split(' ').collect();
                want.split(' ').all(|w| got.contains(&w))
            })
            .map(|(_, id)| *id)
            .collect();
        v.sort();
        v
    };
    let given = |q: &str| PatientQuery {
        given_name: Some(q.into()),
        ..Default::default()
    };
    let mut queries: Vec<&str> = names.to_vec();
    queries.extend([
        "marie",
        "MARIE",
        "pierre",
        "jean pierre",
        "Pierre Jean",
        "claire",
        "lucja",
        "oneil",
        "o neil",
        "therese",
        "Sophie Anne",
        "marie zoe",
        "zzz",
        "ivan",
    ]);
    let (mut found, mut overflow) = (0, 0);
    for q in queries {
        let got = a.find_patients(&given(q)).await.unwrap();
        let mut got_ids: Vec<Id> = got.iter().map(|p| p.id).collect();
        got_ids.sort();
        assert_eq!(got_ids, scan(q), "{q}");
        found += usize::from(!got.is_empty());
        overflow += got
            .iter()
            .filter(|p| words(Kind::Name, &p.given_names).split(' ').count() > 4)
            .count();
    }
    assert!(found > 15 && overflow > 50, "{found} {overflow}");
    // "marie" finds Élodie Marie and Marie-Claire, not Mariette.
    let marie = a.find_patients(&given("marie")).await.unwrap();
    assert!(marie.iter().any(|p| p.given_names.contains("Marie-Claire")));
    assert!(marie.iter().all(|p| words(Kind::Name, &p.given_names)
        .split(' ')
        .any(|w| w == "marie")));
    // A patient with a single name has no given name to find, and an empty
    // search is refused.
    assert!(matches!(
        a.find_patients(&given(" - ")).await,
        Err(Error::EmptyValue(_))
    ));
    // More distinct given names than a value holds (16 of 2 bytes): it
    // keeps 16, and each of the 20 still finds the patient.
    let many: Vec<String> = (0..20).map(|i| format!("Nom{i}")).collect();
    let many_id = a
        .insert_patient(&patient("Many", &many.join(" "), "1970-03-02"))
        .await
        .unwrap();
    let stored = f
        .blob(
            "SELECT bi_given_words FROM patients WHERE id = ?",
            vec![Val::B(many_id.as_bytes().to_vec())],
        )
        .await;
    assert_eq!(stored.len(), 32);
    for w in &many {
        let got = a.find_patients(&given(w)).await.unwrap();
        assert_eq!(
            got.iter().map(|p| p.id).collect::<Vec<_>>(),
            [many_id],
            "{w}"
        );
    }
    // As written before format 12: not found by a given name until filled.
    let target = ids[all
        .iter()
        .position(|p| p.given_names.contains("Joseph"))
        .unwrap()];
    f.made_before_rows_were_signed().await;
    let n = f
        .exec(
            "UPDATE patients SET bi_given_words = NULL, medvault_auth = NULL WHERE id = ?",
            vec![Val::B(target.as_bytes().to_vec())],
        )
        .await;
    assert_eq!(n, 1);
    let a = f.admin().await;
    let has = |v: Vec<medvault::Patient>| v.iter().any(|p| p.id == target);
    assert!(!has(a.find_patients(&given("joseph")).await.unwrap()));
    assert_eq!(a.unfilled("patients", "bi_given_words").await.unwrap(), 1);
    assert_eq!(a.fill_indexes().await.unwrap(), 1);
    assert!(has(a.find_patients(&given("joseph")).await.unwrap()));
    let v = a.verify_store().await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

async fn crud(f: Fixture) {
    let a = f.admin().await;
    let id = a
        .insert_patient(&NewPatient {
            family_name: "  Saint-Pierre ".into(),
            given_names: "Hélène".into(),
            born: "1970-03-02".into(),
            sex: Sex::F,
        })
        .await
        .unwrap();
    let p = a.get_patient(&id).await.unwrap();
    assert_eq!(
        (
            p.family_name.as_str(),
            p.given_names.as_str(),
            p.born.as_str(),
            p.sex
        ),
        ("Saint-Pierre", "Hélène", "1970-03-02", Sex::F)
    );
    assert_eq!(p.author, ADMIN);

    a.update_patient(&id, &patient("Saint-Pierre-Dubois", "Hélène", "1970-03-12"))
        .await
        .unwrap();
    let p2 = a.get_patient(&id).await.unwrap();
    assert_eq!(p2.family_name, "Saint-Pierre-Dubois");
    assert_eq!(p2.created_at, p.created_at);
    assert!(a
        .find_patients(&q(Some("Saint-Pierre"), None, None))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        a.find_patients(&q(Some("saint pierre dubois"), None, Some("1970-03-12")))
            .await
            .unwrap()
            .len(),
        1
    );

    a.add_note(&id, "note", None).await.unwrap();
    a.delete_patient(&id).await.unwrap();
    assert!(matches!(
        a.get_patient(&id).await,
        Err(Error::NoSuchPatient(_))
    ));
    assert!(matches!(
        a.delete_patient(&id).await,
        Err(Error::NoSuchPatient(_))
    ));
    assert!(matches!(
        a.update_patient(&id, &patient("A", "B", "2000-01-01"))
            .await,
        Err(Error::NoSuchPatient(_))
    ));
    assert!(matches!(
        a.add_note(&id, "x", None).await,
        Err(Error::NoSuchPatient(_))
    ));
    let notes = f.int("SELECT count(*) FROM notes", vec![]).await;
    assert_eq!(notes, 0, "notes go with their patient");
}

async fn find_by_each_criterion_and_canonical_forms(f: Fixture) {
    let a = f.admin().await;
    let helene = a
        .insert_patient(&patient("Dupont", "Hélène  Marie", "1970-03-02"))
        .await
        .unwrap();
    let twin = a
        .insert_patient(&patient("DUPONT", "Paul", "1970-03-02"))
        .await
        .unwrap();
    let other = a
        .insert_patient(&patient("O'Brien", "Seán", "1981-11-30"))
        .await
        .unwrap();

    let ids = |v: Vec<medvault::Patient>| v.into_iter().map(|p| p.id).collect::<Vec<Id>>();
    let mut both = vec![helene, twin];
    both.sort();
    let mut got = ids(a
        .find_patients(&q(Some("dupont"), None, None))
        .await
        .unwrap());
    got.sort();
    assert_eq!(got, both);
    assert_eq!(
        ids(a
            .find_patients(&q(None, Some("helene-marie"), None))
            .await
            .unwrap()),
        vec![helene]
    );
    assert_eq!(
        ids(a
            .find_patients(&q(None, None, Some("1981-11-30")))
            .await
            .unwrap()),
        vec![other]
    );
    assert_eq!(
        ids(a
            .find_patients(&q(Some("Dupont"), Some("Paul"), Some("1970-03-02")))
            .await
            .unwrap()),
        vec![twin]
    );
    assert_eq!(
        ids(a
            .find_patients(&q(Some("o brien"), None, Some("1981-11-30")))
            .await
            .unwrap()),
        vec![other]
    );
    // Fold 2 (format 10): a name matches without its separators too.
    assert_eq!(
        ids(a
            .find_patients(&q(Some("OBRIEN"), None, None))
            .await
            .unwrap()),
        vec![other]
    );
    // NFC and NFD spellings find the same patient.
    let nfd: String = "Seán".nfd().collect();
    assert_ne!(nfd, "Seán");
    assert_eq!(
        ids(a.find_patients(&q(None, Some(&nfd), None)).await.unwrap()),
        vec![other]
    );
    assert!(a
        .find_patients(&q(Some("Durand"), None, None))
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        a.find_patients(&q(None, None, None)).await,
        Err(Error::EmptyQuery)
    ));
    assert!(matches!(
        a.find_patients(&q(None, None, Some("1970-02-30"))).await,
        Err(Error::BadDate)
    ));
}

/// With few index bits, unrelated names share index values; the lookup
/// must still return exactly the matching patients.
async fn false_positives_of_truncated_indexes_are_dropped(f: Fixture) {
    let a = f.admin().await;
    let names: Vec<String> = (0..300).map(|i| format!("Family{i}")).collect();
    let batch: Vec<NewPatient> = names
        .iter()
        .map(|n| patient(n, "Given", "1990-01-01"))
        .collect();
    a.insert_patients(&batch).await.unwrap();
    // 300 names over 2^15 index values: about 1.4 chance collisions are
    // expected, and ten or more would take a broken index (constant, or
    // truncated to a few bits). Each index value is 15 bits in 2 bytes.
    let distinct = f
        .int(
            "SELECT count(DISTINCT bi_family_name) FROM patients",
            vec![],
        )
        .await;
    assert!(
        (290..=300).contains(&distinct),
        "{distinct} distinct index values"
    );
    let wrong_width = f
        .int(
            "SELECT count(*) FROM patients WHERE length(bi_family_name) <> 2",
            vec![],
        )
        .await;
    assert_eq!(wrong_width, 0);
    let shared_born = f
        .int("SELECT count(DISTINCT bi_born) FROM patients", vec![])
        .await;
    assert_eq!(shared_born, 1, "same date, same index value");
    for n in names.iter().step_by(37) {
        let found = a.find_patients(&q(Some(n), None, None)).await.unwrap();
        assert_eq!(found.len(), 1, "{n}");
        assert_eq!(&found[0].family_name, n);
    }
    assert_eq!(
        a.find_patients(&q(None, None, Some("1990-01-01")))
            .await
            .unwrap()
            .len(),
        300
    );

    // Force a collision: give Family1 the index value of Family0. A lookup
    // of Family0 now fetches both rows and must drop Family1.
    let id0 = a
        .find_patients(&q(Some("Family0"), None, None))
        .await
        .unwrap()[0]
        .id;
    let id1 = a
        .find_patients(&q(Some("Family1"), None, None))
        .await
        .unwrap()[0]
        .id;
    let bi0 = f
        .blob(
            "SELECT bi_family_name FROM patients WHERE id = ?",
            vec![id0.into()],
        )
        .await;
    // A collision of truncated indexes, made by hand: the row's
    // authentication goes with the edit (a row so edited that keeps it is
    // forged, tests/authorship.rs), so it reads as unsigned, in a vault
    // made before rows were signed.
    f.made_before_rows_were_signed().await;
    let a = f.admin().await;
    let n = f
        .exec(
            "UPDATE patients SET bi_family_name = ?, medvault_auth = NULL WHERE id = ?",
            vec![bi0.into(), id1.into()],
        )
        .await;
    assert_eq!(n, 1);
    let found = a
        .find_patients(&q(Some("Family0"), None, None))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].family_name, "Family0");
}

async fn list_in_pages(f: Fixture) {
    let a = f.admin().await;
    let batch: Vec<NewPatient> = (0..25)
        .map(|i| patient(&format!("N{i}"), "G", "2001-02-03"))
        .collect();
    let mut ids = a.insert_patients(&batch).await.unwrap();
    ids.sort();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = a.list_patients(after.as_ref(), 10).await.unwrap();
        assert!(page.patients.len() <= 10);
        seen.extend(page.patients.iter().map(|p| p.id));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, ids);
}

async fn bad_values_change_nothing(f: Fixture) {
    let a = f.admin().await;
    let good = patient("Dupont", "Hélène", "1970-03-02");
    type Check = fn(&Error) -> bool;
    let cases: Vec<(NewPatient, Check)> = vec![
        (patient("Dupont", "Hélène", "1970-13-02"), |e| {
            matches!(e, Error::BadDate)
        }),
        (patient("Dupont", "Hélène", "02/03/1970"), |e| {
            matches!(e, Error::BadDate)
        }),
        (patient("", "Hélène", "1970-03-02"), |e| {
            matches!(e, Error::EmptyValue("family name"))
        }),
        (patient(" - ' ", "Hélène", "1970-03-02"), |e| {
            matches!(e, Error::EmptyValue("family name"))
        }),
        (patient("Dupont", "Hélène", "1970-00"), |e| {
            matches!(e, Error::BadDate)
        }),
        (patient(&"x".repeat(201), "Hélène", "1970-03-02"), |e| {
            matches!(
                e,
                Error::TooLong {
                    field: "family name",
                    len: 201,
                    max: 200
                }
            )
        }),
    ];
    for (p, check) in cases {
        // Alone, and as the last of a batch: the whole batch is refused.
        let err = a.insert_patient(&p).await.unwrap_err();
        assert!(check(&err), "{err}");
        let err = a.insert_patients(&[good.clone(), p]).await.unwrap_err();
        assert!(check(&err), "{err}");
    }
    assert_eq!(f.patient_count().await, 0);
    assert!(matches!("Q".parse::<Sex>(), Err(Error::BadSex)));
    assert!(matches!("xyz".parse::<Id>(), Err(Error::BadId(_))));

    let id = a.insert_patient(&good).await.unwrap();
    let before = a.get_patient(&id).await.unwrap();
    assert!(matches!(
        a.update_patient(&id, &patient("", "x", "1970-01-01")).await,
        Err(Error::EmptyValue(_))
    ));
    assert_eq!(a.get_patient(&id).await.unwrap(), before);

    let big = "é".repeat(32 * 1024 + 1);
    assert!(matches!(
        a.add_note(&id, &big, None).await,
        Err(Error::TooLong {
            field: "note",
            max: 65536,
            ..
        })
    ));
    assert!(matches!(
        a.add_note(&id, "  ", None).await,
        Err(Error::EmptyValue("note"))
    ));
    assert!(matches!(
        a.add_note(&id, "x", Some("nope")).await,
        Err(Error::UnknownScope(_))
    ));
    assert_eq!(a.list_notes(&id, None).await.unwrap().notes.len(), 0);
    let ok = "n".repeat(65536);
    a.add_note(&id, &ok, None).await.unwrap();
    assert_eq!(
        a.list_notes(&id, None).await.unwrap().notes[0].body.len(),
        65536
    );
}

async fn padding_hides_name_length_within_a_bucket(f: Fixture) {
    let a = f.admin().await;
    let short = a
        .insert_patient(&patient("Li", "Al", "1970-03-02"))
        .await
        .unwrap();
    let long = a
        .insert_patient(&patient("Montgomery-Smithe", "Alexandrina", "1970-03-02"))
        .await
        .unwrap();
    let len = |id: Id| {
        f.int(
            "SELECT length(family_name) FROM patients WHERE id = ?",
            vec![id.into()],
        )
    };
    assert_eq!(len(short).await, len(long).await);
}

async fn no_marker_reaches_the_database_file_or_its_journals(f: Fixture) {
    let a = f.admin().await;
    let markers = [
        "Zyxwvutsname",
        "Qwertygiven",
        "1933-07-21",
        "Plaintextnotemarker",
    ];
    let id = a
        .insert_patient(&patient(markers[0], markers[1], markers[2]))
        .await
        .unwrap();
    a.add_note(&id, &format!("{} and more", markers[3]), None)
        .await
        .unwrap();
    a.update_patient(&id, &patient(markers[0], markers[1], markers[2]))
        .await
        .unwrap();
    a.find_patients(&q(Some(markers[0]), None, Some(markers[2])))
        .await
        .unwrap();
    // Bytes while the session is open (WAL not yet checkpointed) …
    let live = f.stored_bytes();
    drop(a);
    // … and after it closed.
    let closed = f.stored_bytes();
    let leaked = |bytes: &[u8], m: &str| {
        contains(bytes, m.as_bytes())
            || contains(bytes, m.to_lowercase().as_bytes())
            || contains(bytes, hex::encode_upper(m).as_bytes())
            || contains(bytes, hex::encode_upper(m.to_lowercase()).as_bytes())
    };
    for m in markers {
        for (when, bytes) in [("open", &live), ("closed", &closed)] {
            assert!(!leaked(bytes, m), "{m} found in the store ({when})");
        }
    }
    // The check can fail: a marker written in a clear column is found, in
    // a MySQL dump and among the SQLCipher file's cells read with its key
    // (page encryption alone would hide it from a scan of the file).
    f.exec("CREATE TABLE clear_control (x VARCHAR(64))", vec![])
        .await;
    f.exec(
        "INSERT INTO clear_control VALUES (?)",
        vec![markers[0].into()],
    )
    .await;
    drop(f.admin().await);
    assert!(leaked(&f.stored_bytes(), markers[0]));
}

async fn import_with_notes_is_one_transaction(f: Fixture) {
    let a = f.admin().await;
    let note = |scope: Option<&str>, body: &str| NewNote {
        scope: scope.map(str::to_owned),
        body: body.to_owned(),
    };
    let good = (
        patient("Dupont", "Hélène", "1970-03-02"),
        vec![
            note(None, "Allergic to penicillin."),
            note(Some("billing"), "Paid."),
        ],
    );
    // A bad note anywhere refuses the whole batch: no patient, no note.
    for (bad, check) in [
        (
            note(None, "  "),
            (|e: &Error| matches!(e, Error::EmptyValue("note"))) as fn(&Error) -> bool,
        ),
        (note(Some("nope"), "x"), |e| {
            matches!(e, Error::UnknownScope(_))
        }),
    ] {
        let batch = [
            good.clone(),
            (patient("Martin", "Léa", "1980-01-01"), vec![bad]),
        ];
        let err = a.insert_patients_with_notes(&batch).await.unwrap_err();
        assert!(check(&err), "{err}");
        assert_eq!(f.patient_count().await, 0);
    }
    // A failure inside the store, after the patients are written: a
    // planted unique index makes the second note's insert fail. The
    // transaction rolls back the patients and the first note too.
    f.exec("CREATE UNIQUE INDEX planted ON notes (author)", vec![])
        .await;
    let err = a
        .insert_patients_with_notes(std::slice::from_ref(&good))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Duplicate(_)), "{err}");
    assert_eq!(f.patient_count().await, 0);
    assert_eq!(f.int("SELECT count(*) FROM notes", vec![]).await, 0);
    f.exec(
        if f.is_mysql() {
            "DROP INDEX planted ON notes"
        } else {
            "DROP INDEX planted"
        },
        vec![],
    )
    .await;
    let ids = a
        .insert_patients_with_notes(&[
            good.clone(),
            (patient("Martin", "Léa", "1980-01-01"), vec![]),
        ])
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(a.get_patient(&ids[0]).await.unwrap().family_name, "Dupont");
    assert_eq!(a.get_patient(&ids[1]).await.unwrap().family_name, "Martin");
    let notes = a.list_notes(&ids[0], None).await.unwrap();
    let mut bodies: Vec<(String, String)> =
        notes.notes.into_iter().map(|n| (n.scope, n.body)).collect();
    bodies.sort();
    assert_eq!(
        bodies,
        vec![
            ("billing".to_owned(), "Paid.".to_owned()),
            ("clinical".to_owned(), "Allergic to penicillin.".to_owned()),
        ]
    );
    assert!(a.list_notes(&ids[1], None).await.unwrap().notes.is_empty());
}

/// A medical chronology: notes written within one second (the resolution
/// of `created_at`) come back in the order they were written, one at a
/// time or in one import, and keep it through a copy to the other store.
async fn notes_come_back_in_the_order_written(f: Fixture) {
    let a = f.admin().await;
    let id = a
        .insert_patient(&patient("Dupont", "Hélène", "1970-03-02"))
        .await
        .unwrap();
    for i in 1..=8 {
        a.add_note(&id, &format!("note {i}"), None).await.unwrap();
    }
    let batch: Vec<NewNote> = (9..=16)
        .map(|i| NewNote {
            scope: None,
            body: format!("note {i}"),
        })
        .collect();
    let other = a
        .insert_patients_with_notes(&[(patient("Martin", "Léa", "1980-01-01"), batch)])
        .await
        .unwrap()[0];
    // Every note in the same second, whatever the clock did (an edit by
    // hand: the notes then read as unsigned, as notes written before rows
    // were authenticated, in a vault made then).
    f.exec(
        "UPDATE notes SET created_at = 1700000000, medvault_auth = NULL",
        vec![],
    )
    .await;
    f.made_before_rows_were_signed().await;
    let a = f.admin().await;
    let bodies =
        |l: medvault::NoteList| -> Vec<String> { l.notes.into_iter().map(|n| n.body).collect() };
    let want: Vec<String> = (1..=8).map(|i| format!("note {i}")).collect();
    assert_eq!(bodies(a.list_notes(&id, None).await.unwrap()), want);
    let want_batch: Vec<String> = (9..=16).map(|i| format!("note {i}")).collect();
    assert_eq!(
        bodies(a.list_notes(&other, None).await.unwrap()),
        want_batch
    );

    // The order travels with a copy (to a file from MySQL, to MySQL from
    // a file).
    let (dest, _guard, dest_opts) = if f.is_mysql() {
        let p = f.dir.path().join("copy.db");
        (format!("sqlcipher:{}", p.display()), None, open_opts())
    } else {
        let (u, g) = empty_mysql().await;
        let mut o = open_opts();
        o.pinned_root = Some(f.root_fingerprint.clone());
        (u, Some(g), o)
    };
    a.copy_to(&dest, &mut |_, _, _| std::ops::ControlFlow::Continue(()))
        .await
        .unwrap();
    let there = medvault::Vault::open(&dest, ADMIN, ADMIN_PW, &dest_opts)
        .await
        .unwrap();
    assert_eq!(bodies(there.list_notes(&id, None).await.unwrap()), want);
    assert_eq!(
        bodies(there.list_notes(&other, None).await.unwrap()),
        want_batch
    );
}

/// Real patients: one name only, a birth year or year and month only.
async fn a_single_name_and_a_partial_birth_date_fit(f: Fixture) {
    let a = f.admin().await;
    let id = a
        .insert_patient(&patient("Sukarno", "", "1901-06"))
        .await
        .unwrap();
    let other = a
        .insert_patient(&patient("Suharto", " ", "1921"))
        .await
        .unwrap();
    let p = a.get_patient(&id).await.unwrap();
    assert_eq!((p.given_names.as_str(), p.born.as_str()), ("", "1901-06"));
    let q = |family: &str, born: Option<&str>| PatientQuery {
        family_name: Some(family.into()),
        born: born.map(String::from),
        ..Default::default()
    };
    let found = a
        .find_patients(&q("SUKARNO", Some("1901-06")))
        .await
        .unwrap();
    assert_eq!(found.iter().map(|p| p.id).collect::<Vec<_>>(), [id]);
    assert!(a
        .find_patients(&q("Sukarno", Some("1901")))
        .await
        .unwrap()
        .is_empty());
    let found = a.find_patients(&q("suharto", None)).await.unwrap();
    assert_eq!(found.iter().map(|p| p.id).collect::<Vec<_>>(), [other]);
    assert_eq!(found[0].born, "1921");
    // A search by given names still needs one.
    let err = a
        .find_patients(&PatientQuery {
            given_names: Some(" ".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::EmptyValue("given names")), "{err}");
}

/// `PatientOrder::Recent` answers the patients a search finds most
/// recently changed first (then by id), as sorting them here does, also
/// with a criterion the index does not cover (pages of the store's order
/// until the limit holds every criterion); `PatientOrder::Name` with a
/// limit is the first of the name order.
async fn the_most_recently_changed_patients_come_first_and_a_limit_holds(f: Fixture) {
    use medvault::PatientOrder;
    let a = f.admin().await;
    let family = ["Dupont", "Dupond", "Du Pont", "Durand"];
    let made: Vec<NewPatient> = (0..48)
        .map(|i| {
            patient(
                family[i % 4],
                ["Marie", "Jean"][i % 2],
                &format!("{}-01-{:02}", 1969 + i % 3, 1 + i % 28),
            )
        })
        .collect();
    let ids = a.insert_patients(&made).await.unwrap();
    // Changed a second later: these come first.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let changed = [ids[4], ids[17], ids[29], ids[40]];
    for id in changed {
        let mut p = a.get_patient(&id).await.unwrap();
        p.given_names.push_str(" Claire");
        a.update_patient(&id, &patient(&p.family_name, &p.given_names, &p.born))
            .await
            .unwrap();
    }
    let query = |limit: Option<u32>, order: PatientOrder, year: Option<&str>| PatientQuery {
        family_prefix: Some("dup".into()),
        born_year: year.map(Into::into),
        order,
        limit,
        ..Default::default()
    };
    for year in [None, Some("1970")] {
        // Every match, sorted here: most recently changed, then by id,
        // both largest first.
        let all = a
            .find_patients(&query(None, PatientOrder::Name, year))
            .await
            .unwrap();
        let mut want: Vec<(i64, Id)> = all.iter().map(|p| (p.updated_at, p.id)).collect();
        want.sort();
        want.reverse();
        let want: Vec<Id> = want.into_iter().map(|(_, id)| id).collect();
        assert_eq!(want.len(), if year.is_some() { 12 } else { 36 });
        let first: Vec<Id> = want.iter().take(2).copied().collect();
        assert!(first.iter().all(|id| changed.contains(id)), "{year:?}");
        for limit in [None, Some(1), Some(3), Some(5), Some(1000)] {
            let got: Vec<Id> = a
                .find_patients(&query(limit, PatientOrder::Recent, year))
                .await
                .unwrap()
                .iter()
                .map(|p| p.id)
                .collect();
            let n = limit.map_or(want.len(), |l| want.len().min(l as usize));
            assert_eq!(got, want[..n], "{year:?} {limit:?}");
            let by_name: Vec<Id> = a
                .find_patients(&query(limit, PatientOrder::Name, year))
                .await
                .unwrap()
                .iter()
                .map(|p| p.id)
                .collect();
            let all: Vec<Id> = all.iter().map(|p| p.id).collect();
            assert_eq!(by_name, all[..n], "{year:?} {limit:?}");
        }
    }
    let err = a
        .find_patients(&query(Some(0), PatientOrder::Recent, None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Refused(_)), "{err}");
}
