//! Canonical forms fed to blind indexes (`schema/FORMAT.md` §4.1).
//!
//! Names (fold 2, since format 10): Unicode NFKD, combining marks removed,
//! full case folding, letters with no decomposition spelt out (`ł` `l`,
//! `ø` `o`, `æ` `ae`, `œ` `oe`, …), then hyphens, apostrophes and white
//! space removed — so "Hélène  Saint-Pierre", "HELENE SAINTPIERRE" and the
//! NFD spelling of the first all give "helenesaintpierre", and "obrien"
//! finds O'Brien. Fold 1 ([`name_fold1`], before format 10) kept one space
//! for each run of separators and the letters as they were: searches still
//! ask for it, so that rows indexed before format 10 are found until
//! `fill_indexes` indexes them again.
//! Dates: ISO `YYYY-MM-DD` of a real calendar date.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Result};

/// A separator of fold 2: those of fold 1 and the middle dot.
fn is_separator(c: char) -> bool {
    is_separator_fold1(c) || c == '\u{00B7}' // middle dot (Catalan l·l, NFKD of ŀ)
}

/// A separator of fold 1.
fn is_separator_fold1(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '\u{2010}' // hyphen
                | '\u{2011}' // non-breaking hyphen
                | '\u{2012}' // figure dash
                | '\u{2013}' // en dash
                | '\u{2014}' // em dash
                | '\u{2212}' // minus sign
                | '\'' | '\u{2018}' | '\u{2019}' | '\u{02BC}' | '`' | '\u{00B4}'
                | '_'
        )
}

/// Letters with no Unicode decomposition, after case folding, and what
/// fold 2 writes for them (`schema/FORMAT.md` §4.1). `ß` needs no entry:
/// case folding makes it `ss`.
pub const LETTERS: [(char, &str); 14] = [
    ('æ', "ae"),
    ('œ', "oe"),
    ('ø', "o"),
    ('ł', "l"),
    ('đ', "d"),
    ('ð', "d"),
    ('þ', "th"),
    ('ħ', "h"),
    ('ı', "i"),
    ('ŧ', "t"),
    ('ŋ', "ng"),
    ('ɖ', "d"),
    ('ə', "a"),
    ('ĸ', "q"),
];

/// The canonical form of a personal name (fold 2).
pub fn name(input: &str) -> String {
    // ASCII is its own NFKD, holds no combining marks, and folds case as
    // ASCII lowercase: the same result as the Unicode path (a property
    // test checks it), at a tenth of the cost.
    if input.is_ascii() {
        return input
            .chars()
            .filter(|c| !is_separator(*c))
            .map(|c| c.to_ascii_lowercase())
            .collect();
    }
    let mut out = String::with_capacity(input.len());
    for c in unicode_fold(input).chars() {
        if is_separator(c) {
            continue;
        }
        match LETTERS.iter().find(|(l, _)| *l == c) {
            Some((_, spelt)) => out.push_str(spelt),
            None => out.push(c),
        }
    }
    out
}

/// The canonical form of a personal name as medvault wrote it before
/// format 10 (fold 1): separators folded to one space, letters with no
/// decomposition kept. A search also asks for this form, to find rows
/// not indexed again since.
pub fn name_fold1(input: &str) -> String {
    if input.is_ascii() {
        return fold_separators(&input.to_ascii_lowercase());
    }
    fold_separators(&unicode_fold(input))
}

/// NFKD, combining marks removed, full case folding, again NFKD without
/// marks.
fn unicode_fold(input: &str) -> String {
    let stripped: String = input.nfkd().filter(|c| !is_combining_mark(*c)).collect();
    let folded = caseless::default_case_fold_str(&stripped);
    // Case folding can produce new decomposable characters; strip again.
    folded.nfkd().filter(|c| !is_combining_mark(*c)).collect()
}

/// Separators folded to one space, trimmed.
fn fold_separators(folded: &str) -> String {
    let mut out = String::with_capacity(folded.len());
    let mut pending_space = false;
    for c in folded.chars() {
        if is_separator_fold1(c) {
            pending_space = !out.is_empty();
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
        }
    }
    out
}

/// The words of a value as a tokens index keys them (FORMAT.md §4.5), one
/// space between each, in the order written: for a name, the words fold 1
/// separates (at white space, hyphens, apostrophes, `_`), each in its
/// canonical form (fold 2: `Jean-Pierre O'Brien` is `jean pierre o brien`,
/// `Élodie  Marie` is `elodie marie`); for text, the words of its canonical
/// form (at white space). Words left empty are dropped.
pub fn words(kind: crate::schema::Kind, input: &str) -> String {
    use crate::schema::Kind;
    let words: Vec<String> = match kind {
        Kind::Name => name_fold1(input)
            .split(' ')
            .map(name)
            .filter(|w| !w.is_empty())
            .collect(),
        _ => text(input)
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    words.join(" ")
}

/// Parses a date of birth in strict ISO `YYYY-MM-DD` form and returns it
/// canonical (the same string). Errors name the input, which is the user's
/// own typing, never a stored value.
pub fn date(input: &str) -> Result<String> {
    let bad = || Error::BadDate;
    let b = input.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let digits = |r: std::ops::Range<usize>| -> Result<u32> {
        let s = &input[r];
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let month = u8::try_from(m)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or_else(bad)?;
    let year = i32::try_from(y).map_err(|_| bad())?;
    let day = u8::try_from(d).map_err(|_| bad())?;
    time::Date::from_calendar_date(year, month, day).map_err(|_| bad())?;
    if year < 1800 {
        return Err(bad());
    }
    Ok(input.to_owned())
}

/// The canonical form of free text (`kind = "text"`): Unicode NFKC, full
/// case folding, runs of white space as one space, trimmed. Accents and
/// punctuation are kept ("Pénicilline" and "penicilline" differ).
pub fn text(input: &str) -> String {
    if input.is_ascii() {
        // NFKC and case folding of ASCII are ASCII lower case (a property
        // test checks this path against the Unicode one).
        return input
            .split(char::is_whitespace)
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>()
            .join(" ");
    }
    text_unicode(input)
}

fn text_unicode(input: &str) -> String {
    let nfkc: String = input.nfkc().collect();
    let folded = caseless::default_case_fold_str(&nfkc);
    let folded: String = folded.nfkc().collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical form of a code (`kind = "code"`): Unicode NFKC, white
/// space, `-`, `.` and `/` removed, upper case ("1 70-03.75" is "1700375").
pub fn code(input: &str) -> String {
    if input.is_ascii() {
        return input
            .bytes()
            .filter(|b| !char::from(*b).is_whitespace() && !matches!(b, b'-' | b'.' | b'/'))
            .map(|b| char::from(b.to_ascii_uppercase()))
            .collect();
    }
    code_unicode(input)
}

fn code_unicode(input: &str) -> String {
    let nfkc: String = input.nfkc().collect();
    nfkc.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '.' | '/'))
        .flat_map(char::to_uppercase)
        .collect()
}

/// The canonical form of an integer (`kind = "integer"`): its decimal
/// digits, `-` first if negative, no `+`, no leading zeros.
pub fn integer(v: i64) -> String {
    v.to_string()
}

/// Letters kept of a phonetic code ([`phonetic`]).
pub const PHONETIC_LEN: usize = 6;

/// The phonetic code of a canonical name ([`name`]), for an index of kind
/// `phonetic` (`schema/FORMAT.md` §4.2): the letters `a`..`z` of the name
/// in order (separators, digits and any other character dropped, so "le
/// gall" and "legall" meet), upper case, encoded by Double Metaphone
/// (Lawrence Philips, 2000) exactly as Apache Commons Codec 1.15 does
/// ([`double_metaphone`]), its primary code cut to [`PHONETIC_LEN`]
/// characters (`A`..`Z` and `0` for "th"). `None` if the name holds no
/// such letter, or only letters the code keeps silent ("H", "W").
///
/// Why Double Metaphone: its rules were written for names of English,
/// French, German, Italian, Spanish and Slavic origin alike (silent final
/// consonants as in "Dupont"/"Dupond", "-ault", "-eaux"; "ph", "gn", "sch"),
/// where Soundex keeps the first letter and ignores spelling rules, and
/// the French-only codes (Phonex, Soundex 2) have no reference
/// implementation to check a reader against. The primary code alone keeps
/// one index value per name.
pub fn phonetic(canonical: &str) -> Option<zeroize::Zeroizing<String>> {
    let letters: zeroize::Zeroizing<String> = zeroize::Zeroizing::new(
        canonical
            .chars()
            .filter(char::is_ascii_lowercase)
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    );
    if letters.is_empty() {
        return None;
    }
    let code = zeroize::Zeroizing::new(double_metaphone(&letters));
    (!code.is_empty()).then_some(code)
}

/// The Double Metaphone primary code of `letters` (ASCII `A`..`Z`; other
/// characters are dropped), cut to [`PHONETIC_LEN`], as Apache Commons
/// Codec 1.15 computes it (`DoubleMetaphone` with `setMaxCodeLen(6)`,
/// `doubleMetaphone(s, false)`): a reader in another language can use
/// that library.
///
/// The encoding is the `rphonetic` crate's (4.0.0), which departs from
/// Commons Codec in two rules, each where it guards a condition with a
/// position test Commons Codec does not have. Both are put back here,
/// and `tests/data/double_metaphone_commons_codec_1.15.tsv` (4,775 names
/// and strings coded by Commons Codec itself) checks the whole:
///
/// 1. `CH` before `T` or `S` at the start of the string, or second after
///    a letter other than `C`, `M`, `S`, `T` (`OCHS`, `ECHTER`): Commons
///    Codec codes it `K`, rphonetic `X`.
/// 2. A final `R` after `IE` in a string of 3 or 4 letters with no `W` or
///    `K` (`PIER`, `BIER`): Commons Codec leaves it out of the primary
///    code, rphonetic keeps it.
pub fn double_metaphone(letters: &str) -> String {
    use rphonetic::Encoder as _;
    // Only ASCII upper-case letters reach the encoder: it slices its
    // input by bytes and would panic inside a multi-byte character.
    let letters: String = letters.chars().filter(char::is_ascii_uppercase).collect();
    let mut code = rphonetic::DoubleMetaphone::new(Some(PHONETIC_LEN)).encode(&letters);
    let b = letters.as_bytes();
    let ch_before_t_or_s = |i: usize| matches!(b.get(i..i + 3), Some([b'C', b'H', b'T' | b'S']));
    let germanic_ch = ch_before_t_or_s(0)
        || (ch_before_t_or_s(1) && !matches!(b.first(), Some(b'C' | b'M' | b'S' | b'T')));
    if germanic_ch {
        // The first X of the code is that CH's: no letter allowed before
        // it codes X.
        if let Some(i) = code.find('X') {
            code.replace_range(i..=i, "K");
        }
    }
    let french_r =
        (3..=4).contains(&b.len()) && letters.ends_with("IER") && !letters.contains(['W', 'K']);
    if french_r && code.ends_with('R') {
        code.pop();
    }
    code
}

/// A date that may be partial: `YYYY`, `YYYY-MM` or `YYYY-MM-DD` (a real
/// calendar date, year from 1800), returned as given.
pub fn partial_date(input: &str) -> Result<String> {
    let b = input.as_bytes();
    let digits = |s: &str| s.len() >= 2 && s.bytes().all(|c| c.is_ascii_digit());
    match b.len() {
        4 if digits(input) => {
            let y: i32 = input.parse().map_err(|_| Error::BadDate)?;
            if y < 1800 {
                return Err(Error::BadDate);
            }
            Ok(input.to_owned())
        }
        7 if b[4] == b'-' && digits(&input[..4]) && digits(&input[5..]) => {
            // Day 01 of that month must be a date.
            date(&format!("{input}-01"))?;
            Ok(input.to_owned())
        }
        _ => date(input),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_where_fold_1_puts_a_space_and_fold_each_word() {
        use crate::schema::Kind;
        assert_eq!(
            words(Kind::Name, " Élodie  Marie-Claire "),
            "elodie marie claire"
        );
        assert_eq!(words(Kind::Name, "O'Neil Łucja"), "o neil lucja");
        assert_eq!(words(Kind::Name, "Jean_Pierre Æsa"), "jean pierre aesa");
        assert_eq!(words(Kind::Name, " - "), "");
        assert_eq!(
            words(Kind::Text, "Allergie  PÉNICILLINE, léger"),
            "allergie pénicilline, léger"
        );
    }

    #[test]
    fn accents_case_hyphens_apostrophes_and_spaces_fold() {
        assert_eq!(name("Hélène  Saint-Pierre"), "helenesaintpierre");
        assert_eq!(name("  HÉLÈNE saint pierre "), "helenesaintpierre");
        assert_eq!(name("O’Brien"), "obrien");
        assert_eq!(name("O'Brien"), name("o brien"));
        assert_eq!(name("Straße"), "strasse");
        assert_eq!(name("Ångström"), "angstrom");
        // What people type finds what was written.
        for (typed, written) in [
            ("obrien", "O'Brien"),
            ("saintpierre", "Saint-Pierre"),
            ("lukasiewicz", "Łukasiewicz"),
            ("orsted", "Ørsted"),
            ("aero", "Ærø"),
            ("oeuvre", "Œuvre"),
            ("strasse", "STRASSE"),
            ("dalessandro", "D’Alessandro"),
            ("collell", "Col·lell"),
            ("thorsdottir", "Þorsdóttir"),
            ("dorde", "Đorđe"),
            ("aliyev", "Əliyev"),
            ("aero", "ÆRØ"),
            ("collell", "COĿLELL"),
        ] {
            assert_eq!(name(typed), name(written), "{typed} / {written}");
        }
        // Fold 1, as before format 10.
        assert_eq!(name_fold1("Hélène  Saint-Pierre"), "helene saint pierre");
        assert_eq!(name_fold1("Łukasiewicz"), "łukasiewicz");
        assert_eq!(name_fold1("Col·lell"), "col·lell");
    }

    proptest::proptest! {
        /// The ASCII fast path gives exactly what the Unicode path gives.
        #[test]
        fn ascii_fast_path_matches_the_unicode_path(s in "[ -~\t\n\r\x0b\x0c\x00-\x1f]{0,40}") {
            proptest::prop_assert!(s.is_ascii());
            let unicode: String = unicode_fold(&s).chars().filter(|c| !is_separator(*c)).collect();
            proptest::prop_assert_eq!(name(&s), unicode);
            proptest::prop_assert_eq!(name_fold1(&s), fold_separators(&unicode_fold(&s)));
        }
    }

    proptest::proptest! {
        /// The ASCII paths of text and code give what the Unicode ones do.
        #[test]
        fn ascii_text_and_code_match_the_unicode_paths(s in "[ -~\t\n\r\x0b\x0c]{0,40}") {
            proptest::prop_assert_eq!(text(&s), text_unicode(&s));
            proptest::prop_assert_eq!(code(&s), code_unicode(&s));
        }
    }

    #[test]
    fn names_that_sound_alike_share_a_phonetic_code() {
        let code = |n: &str| phonetic(&name(n)).map(|c| c.as_str().to_owned());
        for (a, b) in [
            ("Dupont", "Dupond"),
            ("Meyer", "Mayer"),
            ("Le Gall", "Legall"),
            ("Saint-Pierre", "Saint Pierre"),
            ("Smith", "Smyth"),
            ("Philippe", "Filipe"),
            ("Hélène", "Helene"),
        ] {
            assert_eq!(code(a), code(b), "{a} / {b}");
            assert!(code(a).is_some());
        }
        assert_ne!(code("Dupont"), code("Martin"));
        assert_eq!(code("Dupont").as_deref(), Some("TPNT"));
        assert_eq!(code("Vandenbroucke").map(|c| c.len()), Some(PHONETIC_LEN));
        assert_eq!(code("Иванов"), None, "no letter a..z: no code");
        assert_eq!(code(" - ' "), None);
        assert_eq!(code("H"), None, "silent letters: no code");
        // The table of schema/FORMAT.md §4.2, as Apache Commons Codec 1.15
        // codes them.
        for (n, want) in [
            ("Du Pont", "TPNT"),
            ("Meier", "MR"),
            ("Le Gall", "LKL"),
            ("Saint-Pierre", "SNTPR"),
            ("de la Fontaine", "TLFNTN"),
            ("Hélène", "HLN"),
            ("Philippe", "FLP"),
            ("Echt", "AKT"),
            ("Ochs", "AKS"),
            ("Pier", "P"),
        ] {
            assert_eq!(code(n).as_deref(), Some(want), "{n}");
        }
    }

    proptest::proptest! {
        /// Any text at all gives a code or none, never a panic, and a
        /// code is upper-case ASCII of at most PHONETIC_LEN letters.
        #[test]
        fn phonetic_codes_never_panic(s in "\\PC{0,30}") {
            if let Some(c) = phonetic(&name(&s)) {
                proptest::prop_assert!(!c.is_empty() && c.len() <= PHONETIC_LEN);
                proptest::prop_assert!(c.bytes().all(|b| b.is_ascii_uppercase() || b == b'0'));
            }
        }
    }

    /// Every line of the file coded by Apache Commons Codec 1.15 itself
    /// (real family and given names, strings of the two patterns rphonetic
    /// codes otherwise, random strings) gets the same code here.
    #[test]
    fn double_metaphone_is_commons_codec_s() {
        let data = include_str!("../../tests/data/double_metaphone_commons_codec_1.15.tsv");
        let mut n = 0;
        for line in data.lines() {
            let (letters, want) = line.split_once('\t').expect("letters TAB code");
            assert_eq!(double_metaphone(letters), want, "{letters}");
            n += 1;
        }
        assert_eq!(n, 4775);
    }

    #[test]
    fn nfc_and_nfd_give_the_same_form() {
        let nfc = "Hélène Dupré";
        let nfd: String = nfc.nfd().collect();
        assert_ne!(nfc, nfd);
        assert_eq!(name(nfc), name(&nfd));
    }

    #[test]
    fn text_code_and_partial_dates() {
        assert_eq!(text("  Pénicilline\t  G "), "pénicilline g");
        assert_eq!(text("PÉNICILLINE G"), text("pénicilline g"));
        assert_ne!(text("penicilline"), text("pénicilline"));
        assert_eq!(code(" 1 70-03.75/ab "), "1700375AB");
        assert_eq!(integer(-42), "-42");
        assert_eq!(partial_date("2019").unwrap(), "2019");
        assert_eq!(partial_date("2019-05").unwrap(), "2019-05");
        assert_eq!(partial_date("2019-05-31").unwrap(), "2019-05-31");
        for bad in [
            "201",
            "2019-13",
            "2019-5",
            "1799",
            "2019-05-32",
            "20190",
            "abcd",
        ] {
            assert!(partial_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_are_strict_calendar_dates() {
        assert_eq!(date("1970-03-02").unwrap(), "1970-03-02");
        assert!(date("2000-02-29").is_ok());
        for bad in [
            "1970-3-2",
            "1970-02-30",
            "1900-02-29",
            "02/03/1970",
            "1970-13-01",
            "abcd-ef-gh",
            "",
            "1970-03-02x",
            "+970-03-02",
        ] {
            assert!(matches!(date(bad), Err(Error::BadDate)), "{bad}");
        }
    }
}
