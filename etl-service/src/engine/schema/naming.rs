//! Table and column names (design/etl.md §3): pure functions, no I/O.
//!
//! PostgreSQL silently truncates identifiers past 63 bytes, so every name is
//! made to fit here, deterministically, and a shortened name carries a stable
//! hash of the full name so two long names that share a prefix stay apart.

use sha2::{Digest, Sha256};
use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// PostgreSQL's identifier limit (NAMEDATALEN - 1), in bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Hex digits of the hash appended to shortened names.
const HASH_HEX_DIGITS: usize = 8;

/// The reference system trims every part but the last of a long table name
/// to this many characters...
const REFERENCE_PART_CHARS: usize = 6;
/// ...and the last part to this many.
const REFERENCE_LAST_PART_CHARS: usize = 20;

/// A short stable hash of `text`: the first hex digits of its SHA-256, the
/// same on every machine and run.
pub fn stable_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(HASH_HEX_DIGITS);
    for byte in digest.iter().take(HASH_HEX_DIGITS / 2) {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Normalises one part of a table name: lower-case, letters (any script),
/// marks (Hindi vowel signs and viramas), digits, `_` and spaces kept, runs
/// of spaces turned into one `_`.
pub fn normalise_part(raw: &str) -> String {
    let kept: String = raw
        .to_lowercase()
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .filter(|&c| c == '_' || c == ' ' || is_word_char(c))
        .collect();
    join_words(&kept)
}

/// [`normalise_part`], except that a name with nothing left after
/// normalisation (only punctuation, say) becomes a hash of itself, so a run
/// still gets a valid, stable table (ValidateNames reports it as an error
/// all the same).
pub fn normalised_part(raw: &str) -> String {
    let n = normalise_part(raw);
    if n.is_empty() {
        format!("x{}", stable_hash(raw))
    } else {
        n
    }
}

/// The words of `kept` (split on spaces) joined by `_`.
fn join_words(kept: &str) -> String {
    kept.split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

fn is_word_char(c: char) -> bool {
    matches!(
        c.general_category_group(),
        GeneralCategoryGroup::Letter | GeneralCategoryGroup::Mark | GeneralCategoryGroup::Number
    )
}

/// The longest prefix of `s` of at most `max_bytes` bytes that ends on a
/// character boundary.
pub fn cut_to_bytes(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A table name and how it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    /// The name to use: at most 63 bytes.
    pub name: String,
    /// The joined normalised parts before any shortening.
    pub full_name: String,
    /// True when `full_name` did not fit and was shortened with a hash.
    pub shortened: bool,
}

/// The table name for already normalised parts: the parts joined by `_` when
/// that fits in 63 bytes (identical to the reference system for ASCII
/// names), otherwise the parts cut fairly on character boundaries followed by
/// `_` and a hash of the full joined name.
pub fn table_name(parts: &[String]) -> TableName {
    let full_name = parts.join("_");
    if full_name.len() <= MAX_IDENTIFIER_BYTES {
        return TableName {
            name: full_name.clone(),
            full_name,
            shortened: false,
        };
    }
    let name = fit_parts(parts, &stable_hash(&full_name));
    TableName {
        name,
        full_name,
        shortened: true,
    }
}

/// Joins `parts` with `_`, cut so that `<joined>_<suffix>` fits in 63 bytes.
/// Short parts (like `exit` or `cancel`) keep their full length; the budget
/// left is shared among the long ones, so every part stays recognisable.
pub fn fit_parts(parts: &[String], suffix: &str) -> String {
    let separators = parts.len().saturating_sub(1);
    let budget = MAX_IDENTIFIER_BYTES
        .saturating_sub(suffix.len() + 1)
        .saturating_sub(separators);
    let allowances = share_budget(&parts.iter().map(String::len).collect::<Vec<_>>(), budget);
    let cut: Vec<&str> = parts
        .iter()
        .zip(allowances)
        .map(|(p, a)| cut_to_bytes(p, a))
        .collect();
    format!("{}_{suffix}", cut.join("_"))
}

/// Water-filling: each length gets min(its length, an equal share of what
/// is left after the shorter ones took theirs).
fn share_budget(lengths: &[usize], budget: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| (lengths[i], i));
    let mut allowances = vec![0; lengths.len()];
    let mut left = budget;
    for (taken, &i) in order.iter().enumerate() {
        let remaining_parts = lengths.len() - taken;
        let share = left / remaining_parts;
        let give = lengths[i].min(share);
        allowances[i] = give;
        left -= give;
    }
    allowances
}

/// `base` with `_<suffix>` appended, `base` cut on a character boundary so
/// the whole fits in 63 bytes.
pub fn with_suffix(base: &str, suffix: &str) -> String {
    let room = MAX_IDENTIFIER_BYTES.saturating_sub(suffix.len() + 1);
    format!("{}_{suffix}", cut_to_bytes(base, room))
}

/// A column name from a concept name (or `"<group> <child>"` for a question
/// group's child): the name as written with `"` removed, so dashboards see
/// the question's own wording; past 63 bytes, cut on a character boundary
/// with a hash of the full name appended.
pub fn column_name(raw: &str) -> String {
    let cleaned: String = raw.chars().filter(|&c| c != '"' && c != '\0').collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() {
        return format!("concept_{}", stable_hash(raw));
    }
    if cleaned.len() <= MAX_IDENTIFIER_BYTES {
        return cleaned.to_string();
    }
    with_suffix(cleaned, &stable_hash(cleaned))
}

/// The name the reference system (Avni ETL) gives a table: ASCII-only
/// normalisation (non-ASCII letters vanish), parts joined by `_`, and when
/// that is longer than 63 characters every part trimmed to six characters
/// and the last to twenty. Used only to warn people moving from it.
pub fn reference_table_name(raw_parts: &[&str]) -> String {
    let parts: Vec<String> = raw_parts.iter().map(|p| reference_normalise(p)).collect();
    let joined = parts.join("_");
    if joined.len() <= MAX_IDENTIFIER_BYTES {
        return joined;
    }
    let last = parts.len().saturating_sub(1);
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let keep = if i == last {
                REFERENCE_LAST_PART_CHARS
            } else {
                REFERENCE_PART_CHARS
            };
            p.chars().take(keep).collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("_")
}

fn reference_normalise(raw: &str) -> String {
    let kept: String = raw
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ' ')
        .collect();
    join_words(&kept)
}

/// True when the reference system would lose characters of `raw` (it keeps
/// ASCII letters and digits only).
pub fn reference_drops_characters(raw: &str) -> bool {
    raw.chars().any(|c| !c.is_ascii() && is_word_char(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| normalise_part(s)).collect()
    }

    #[test]
    fn normalises_like_the_reference_system_for_ascii() {
        assert_eq!(normalise_part("Person"), "person");
        assert_eq!(
            normalise_part("  Growth   Monitoring "),
            "growth_monitoring"
        );
        assert_eq!(normalise_part("Child's \"Care\"; DROP"), "childs_care_drop");
        assert_eq!(normalise_part("1st visit"), "1st_visit");
        assert_eq!(normalise_part("ANC_Visit"), "anc_visit");
        assert_eq!(normalise_part("!!! ???"), "");
    }

    #[test]
    fn keeps_non_ascii_letters_and_marks() {
        assert_eq!(normalise_part("व्यक्ति"), "व्यक्ति");
        assert_eq!(normalise_part("गर्भावस्था देखभाल"), "गर्भावस्था_देखभाल");
        assert_eq!(normalise_part("Ünïcode Name"), "ünïcode_name");
        // The Devanagari danda is punctuation, not a letter.
        assert_eq!(normalise_part("नाम।"), "नाम");
    }

    #[test]
    fn short_names_are_the_joined_parts() {
        let n = table_name(&parts(&["Person", "Pregnancy", "ANC"]));
        assert_eq!(n.name, "person_pregnancy_anc");
        assert!(!n.shortened);
        assert_eq!(n.full_name, n.name);
    }

    #[test]
    fn long_names_fit_keep_char_boundaries_and_differ() {
        let long = "Very long program name ".repeat(5);
        let a = table_name(&parts(&["Person", &long, "Visit A"]));
        let b = table_name(&parts(&["Person", &long, "Visit B"]));
        for n in [&a, &b] {
            assert!(n.shortened);
            assert!(n.name.len() <= MAX_IDENTIFIER_BYTES, "{}", n.name);
            assert!(n.name.starts_with("person_very_long"), "{}", n.name);
        }
        assert_ne!(a.name, b.name);
        // Stable: same input, same name.
        assert_eq!(a, table_name(&parts(&["Person", &long, "Visit A"])));
        assert!(a.name.ends_with(&stable_hash(&a.full_name)));
        // The short part survives whole.
        assert!(a.name.contains("_visit_a_"), "{}", a.name);

        let hindi = "गर्भावस्था देखभाल कार्यक्रम".repeat(3);
        let h = table_name(&parts(&["व्यक्ति", &hindi, "cancel"]));
        assert!(h.shortened);
        assert!(h.name.len() <= MAX_IDENTIFIER_BYTES);
        assert!(h.name.contains("_cancel_"), "{}", h.name);
        assert!(std::str::from_utf8(h.name.as_bytes()).is_ok());
    }

    #[test]
    fn budget_sharing_is_fair() {
        assert_eq!(share_budget(&[3, 100, 100], 53), vec![3, 25, 25]);
        assert_eq!(share_budget(&[10, 10], 53), vec![10, 10]);
        assert_eq!(share_budget(&[], 53), Vec::<usize>::new());
    }

    #[test]
    fn column_names() {
        assert_eq!(column_name("Weight"), "Weight");
        assert_eq!(column_name("Weight \"kg\""), "Weight kg");
        assert_eq!(column_name("select"), "select");
        let long_a = format!("{} A", "Blood pressure measured ".repeat(4));
        let long_b = format!("{} B", "Blood pressure measured ".repeat(4));
        let a = column_name(&long_a);
        let b = column_name(&long_b);
        assert!(a.len() <= MAX_IDENTIFIER_BYTES && b.len() <= MAX_IDENTIFIER_BYTES);
        assert_ne!(a, b);
        let hindi = "वज़न ".repeat(20);
        let h = column_name(&hindi);
        assert!(h.len() <= MAX_IDENTIFIER_BYTES);
        assert!(h.starts_with("वज़न"));
        assert!(column_name("\"\"").starts_with("concept_"));
    }

    #[test]
    fn reference_names_trim_to_six_and_twenty() {
        assert_eq!(
            reference_table_name(&["Person", "Pregnancy", "ANC"]),
            "person_pregnancy_anc"
        );
        let long = "x".repeat(70);
        assert_eq!(
            reference_table_name(&["Individual", "Maternal health", &long]),
            format!("indivi_matern_{}", "x".repeat(20))
        );
        assert_eq!(reference_table_name(&["व्यक्ति"]), "");
        assert!(reference_drops_characters("व्यक्ति"));
        assert!(!reference_drops_characters("Person; 1"));
    }

    #[test]
    fn suffix_fits() {
        let base = "a".repeat(80);
        let s = with_suffix(&base, "deadbeef");
        assert_eq!(s.len(), MAX_IDENTIFIER_BYTES);
        assert!(s.ends_with("_deadbeef"));
        assert_eq!(stable_hash("person").len(), 8);
        assert_eq!(stable_hash("person"), stable_hash("person"));
    }
}
