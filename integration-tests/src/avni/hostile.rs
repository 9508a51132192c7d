//! A seeded generator of hostile names, for subject types, programs,
//! encounter types, concepts, answers, schema names and roles: quotes,
//! backslashes, semicolons, SQL keywords, dollar quotes, comments, Hindi,
//! emoji, right-to-left text and overrides, zero-width and combining
//! characters, 200-byte names, leading digits, names empty after
//! normalisation, whitespace only, and NUL. Same seed, same names.

use super::bundle::Bundle;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The kinds of hostility, one per generated name in turn.
pub const KINDS: [&str; 18] = [
    "single quote",
    "double quote",
    "backslash",
    "semicolon statement",
    "SQL keyword",
    "dollar quote",
    "comment",
    "Hindi",
    "emoji",
    "right-to-left",
    "zero-width",
    "combining",
    "200 bytes",
    "leading digit",
    "empty after normalisation",
    "whitespace only",
    "NUL",
    "mixed",
];

const KEYWORDS: [&str; 20] = [
    "select",
    "SELECT",
    "from",
    "where",
    "table",
    "user",
    "order",
    "group",
    "grant",
    "drop",
    "insert",
    "default",
    "null",
    "true",
    "check",
    "column",
    "constraint",
    "primary",
    "references",
    "current_user",
];

const STATEMENTS: [&str; 5] = [
    "; DROP TABLE public.individual; --",
    "'); DELETE FROM organisation; --",
    "\"; DROP SCHEMA public CASCADE; --",
    "; GRANT ALL ON ALL TABLES IN SCHEMA public TO PUBLIC; --",
    "'; COPY organisation TO PROGRAM 'true'; --",
];

const PUNCTUATION: [&str; 8] = [
    "!!! ???",
    "'\";--",
    "$$",
    "/* */",
    "🤰👶",
    "\\\\",
    "-- ;",
    "「」…",
];

const WHITESPACE: [&str; 6] = [
    " ",
    "   ",
    "\t",
    "\n \r\n",
    "\u{00A0}\u{3000}",
    "\u{2003} \u{2009}",
];

/// One name of `kind` (an index into [`KINDS`]), tagged with `n` where the
/// kind leaves room, so most names are distinct.
pub fn hostile_name(rng: &mut StdRng, kind: usize, n: usize) -> String {
    let pick = |rng: &mut StdRng, list: &[&str]| list[rng.random_range(0..list.len())].to_string();
    match kind % KINDS.len() {
        0 => format!("O'Brien's clinic {n} ''"),
        1 => format!("\"Quoted\" {n} \"\""),
        2 => format!("back\\slash\\{n}\\ \\x00 C:\\temp\\"),
        3 => format!("Visit {n}{}", pick(rng, &STATEMENTS)),
        4 => {
            if rng.random_bool(0.5) {
                pick(rng, &KEYWORDS)
            } else {
                format!("{} {} {n}", pick(rng, &KEYWORDS), pick(rng, &KEYWORDS))
            }
        }
        5 => format!("$${n}$$ $tag$ x $tag$ $1"),
        6 => {
            if rng.random_bool(0.5) {
                format!("-- comment {n}")
            } else {
                format!("/* open {n} */ close */ /*")
            }
        }
        7 => format!("गर्भावस्था पंजीकरण {n}"),
        8 => format!("🤰 Pregnancy 👶 {n} 👨‍👩‍👧"),
        9 => {
            if rng.random_bool(0.5) {
                format!("زيارة منزلية {n} ביקור")
            } else {
                format!("\u{202E}lanoitan{n}\u{202C}")
            }
        }
        10 => format!("zero\u{200B}width{n}\u{200D}\u{FEFF}"),
        11 => format!("cafe\u{0301} {n} Z\u{0335}\u{0361}algo n\u{0303}"),
        12 => {
            // Exactly 200 bytes, cut on a character boundary.
            let unit = if rng.random_bool(0.5) {
                format!("long name {n} ")
            } else {
                format!("लंबा नाम {n} ")
            };
            let mut s = String::new();
            for c in unit.chars().cycle() {
                if s.len() + c.len_utf8() > 200 {
                    break;
                }
                s.push(c);
            }
            while s.len() < 200 {
                s.push('x');
            }
            s
        }
        13 => format!("{n}st visit"),
        14 => pick(rng, &PUNCTUATION),
        15 => pick(rng, &WHITESPACE),
        16 => format!("nul\0byte {n}"),
        _ => {
            let (ka, kb) = (rng.random_range(0..12), rng.random_range(0..12));
            let a = hostile_name(rng, ka, n);
            let b = hostile_name(rng, kb, n);
            let mut s: String = format!("{a}{b}");
            // Within Avni's 255 characters.
            if s.chars().count() > 255 {
                s = s.chars().take(255).collect();
            }
            s
        }
    }
}

/// `count` hostile names, every kind in turn.
pub fn hostile_names(seed: u64, count: usize) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count).map(|n| hostile_name(&mut rng, n, n)).collect()
}

/// Gives every subject type, program, encounter type, concept and answer of
/// `bundle` the next name from `names` (which must not run out). Answers of
/// one concept stay distinct (their uuids derive from their names).
pub fn rename(bundle: &mut Bundle, names: &mut impl Iterator<Item = String>) {
    let mut next = || names.next().unwrap_or_else(|| panic!("out of names"));
    for s in &mut bundle.subject_types {
        s.name = next();
    }
    for p in &mut bundle.programs {
        p.name = next();
    }
    for e in &mut bundle.encounter_types {
        e.name = next();
    }
    for c in &mut bundle.concepts {
        c.name = next();
        let mut seen = std::collections::HashSet::new();
        for (i, a) in c.answers.iter_mut().enumerate() {
            a.name = next();
            if !seen.insert(a.name.clone()) {
                a.name = format!("{} {i}", a.name);
                seen.insert(a.name.clone());
            }
        }
    }
}

/// How many names [`rename`] takes from its iterator.
pub fn names_needed(bundle: &Bundle) -> usize {
    bundle.subject_types.len()
        + bundle.programs.len()
        + bundle.encounter_types.len()
        + bundle
            .concepts
            .iter()
            .map(|c| 1 + c.answers.len())
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_seeded_and_cover_every_kind() {
        let a = hostile_names(7, 216);
        assert_eq!(a, hostile_names(7, 216));
        assert!(a.iter().any(|n| n.contains('\0')));
        assert!(a.iter().any(|n| n.len() == 200));
        assert!(a.iter().any(|n| n.trim().is_empty()));
        assert!(a.iter().all(|n| n.chars().count() <= 255));
    }
}
