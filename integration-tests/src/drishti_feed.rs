//! A realistic feed over the real Drishti app's forms: submissions of every
//! form and sub-form in `fixtures/drishti/real-forms.json` (the forms'
//! fields, in the app's order with its repeats, and a value kind per field,
//! written from the app's `form_definition.json`/`form.xml`), in the wire
//! format of the real server, with the quirks real data has: repeated
//! fields, missing, empty and whitespace-only values, `NaN`, `Invalid Date`,
//! ISO, unpadded (`1989-4-16`) and RFC 1123 dates, numbers like `48.`,
//! Kannada and Devanagari text, Gson's `\u0026`-style escapes (inside
//! `formInstance` and around it), sub-forms with no instances, and
//! `serverVersion`s shared by up to three submissions.
//!
//! A few submissions fail on purpose ([`Deliberate`]), each with the
//! reason the migrator must give; everything else must be written.

use crate::fake_upstream::RawElement;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// What a field's values look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The form's (or sub-form instance's) own entity id.
    Id,
    Number,
    Date,
    /// One of the question's options.
    Choice,
    /// Several of the question's options, space-separated (`select`).
    Multi,
    Text,
}

#[derive(Debug, Clone)]
pub struct RealField {
    pub name: String,
    pub kind: Kind,
    pub values: Vec<String>,
    /// The field's column in the shipped table and its type there.
    pub column: String,
    pub column_type: String,
}

#[derive(Debug, Clone)]
pub struct RealSubForm {
    pub name: String,
    pub table: String,
    pub bind_type: String,
    pub default_bind_path: String,
    pub fields: Vec<RealField>,
}

/// One form of the app and the shipped table it goes to.
#[derive(Debug, Clone)]
pub struct RealForm {
    pub form: String,
    pub table: String,
    pub bind_type: String,
    pub default_bind_path: String,
    pub version: String,
    pub fields: Vec<RealField>,
    pub sub_forms: Vec<RealSubForm>,
}

/// The facts, compiled in (the fake-upstream binary serves them from a
/// container that has no source tree).
const REAL_FORMS: &str = include_str!("../fixtures/drishti/real-forms.json");

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

fn fields_of(v: &Value) -> Vec<RealField> {
    v["fields"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|f| RealField {
            name: text(f, "name"),
            column: text(f, "column"),
            column_type: text(f, "column_type"),
            kind: match f["kind"].as_str() {
                Some("id") => Kind::Id,
                Some("number") => Kind::Number,
                Some("date") => Kind::Date,
                Some("choice") => Kind::Choice,
                Some("multi") => Kind::Multi,
                _ => Kind::Text,
            },
            values: f["values"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

/// The app's forms, from `fixtures/drishti/real-forms.json`.
pub fn real_forms() -> Vec<RealForm> {
    let all: Value = serde_json::from_str(REAL_FORMS).unwrap_or_default();
    all.as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|f| RealForm {
            form: text(f, "form"),
            table: text(f, "table"),
            bind_type: text(f, "bind_type"),
            default_bind_path: text(f, "default_bind_path"),
            version: text(f, "form_data_definition_version"),
            fields: fields_of(f),
            sub_forms: f["sub_forms"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|s| RealSubForm {
                    name: text(s, "name"),
                    table: text(s, "table"),
                    bind_type: text(s, "bind_type"),
                    default_bind_path: text(s, "default_bind_path"),
                    fields: fields_of(s),
                })
                .collect(),
        })
        .collect()
}

/// A submission that must fail, and the start of the `failure_reason` it
/// must fail with.
#[derive(Debug, Clone)]
pub struct Deliberate {
    pub instance_id: String,
    pub form_name: String,
    pub reason: String,
}

/// The feed and what must become of it.
#[derive(Debug, Default)]
pub struct Feed {
    /// The elements as exact text, `position` = `serverVersion`.
    pub elements: Vec<RawElement>,
    /// Submissions per form name (deliberate failures included).
    pub sent: BTreeMap<String, usize>,
    /// Rows each form must leave in its table.
    pub form_rows: BTreeMap<String, i64>,
    /// Rows each sub-form table must hold.
    pub sub_form_rows: BTreeMap<String, i64>,
    pub deliberate: Vec<Deliberate>,
    /// How often each quirk was put in.
    pub quirks: BTreeMap<&'static str, usize>,
    /// One written value per kind of quirk, to check what was stored.
    pub probes: Vec<Probe>,
    pub last_server_version: i64,
}

/// A quirky value sent for `column` of the row `instance_id` in `table`,
/// and the text PostgreSQL must give back for it (`None`: NULL).
#[derive(Debug, Clone)]
pub struct Probe {
    pub quirk: &'static str,
    pub table: String,
    pub column: String,
    pub instance_id: String,
    pub sent: String,
    pub stored: Option<String>,
}

const KANNADA: [&str; 4] = ["ಲಕ್ಷ್ಮಿ", "ಸುಮಾ ಗೌಡ", "ಬೇರ್ಯ", "ಮೈಸೂರು"];
const DEVANAGARI: [&str; 3] = ["लक्ष्मी", "सुनीता देवी", "गाँव"];
const LATIN: [&str; 6] = [
    "Lakshmi",
    "Ravi",
    "Suma",
    "Bherya",
    "Hosa Agrahara",
    "Keelanapura",
];
/// Texts with the characters Gson escapes (`&`, `<`, `>`, `=`, `'`).
const ESCAPED: [&str; 3] = ["Mysore & Koppal", "BP < 90", "wife's mother"];
const GSON: &str = "Gson-escaped characters (\\u0026, \\u003c, \\u0027)";

/// Gson's default HTML-safe escaping of serialized JSON: these characters
/// only occur inside strings, so replacing them everywhere is exact.
pub fn gson_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003d"),
            '\'' => out.push_str("\\u0027"),
            c => out.push(c),
        }
    }
    out
}

/// Builds the feed: `rounds` submissions of every form, in a shuffled order
/// per round, plus the deliberate failures, from `seed`.
pub fn realistic_feed(rounds: usize, seed: u64) -> Feed {
    let forms = real_forms();
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed),
        feed: Feed::default(),
        next_id: 0,
        server_version: 1_420_070_400_000,
        shared: 0,
        expect: None,
    };
    for _ in 0..rounds {
        let mut order: Vec<usize> = (0..forms.len()).collect();
        for i in (1..order.len()).rev() {
            let j = g.rng.random_range(0..=i);
            order.swap(i, j);
        }
        for i in order {
            g.submission(&forms[i], None);
        }
    }
    for bad in DELIBERATE {
        let form = forms
            .iter()
            .find(|f| f.form == bad.form)
            .unwrap_or_else(|| panic!("no form {}", bad.form));
        g.submission(form, Some(&bad));
    }
    g.feed
}

/// One deliberate failure: which form, what is done to it, the reason.
struct Bad {
    form: &'static str,
    /// `(sub-form or "", field, value)` set on every occurrence.
    set: Option<(&'static str, &'static str, &'static str)>,
    /// Sent under this form name instead.
    rename: Option<&'static str>,
    /// `formInstance` cut in half.
    cut: bool,
    reason: &'static str,
}

const DELIBERATE: [Bad; 6] = [
    Bad {
        form: "anc_visit",
        set: Some(("", "ancVisitNumber", "second")),
        rename: None,
        cut: false,
        reason: "Invalid value for ancVisitNumber: \"second\" is not a number",
    },
    Bad {
        form: "tt_1",
        set: Some(("", "ttDate", "31/31/2014")),
        rename: None,
        cut: false,
        reason: "Invalid value for ttDate: \"31/31/2014\" is not a date",
    },
    Bad {
        form: "pnc_visit",
        set: Some(("child_pnc_visit", "weight", "2,9")),
        rename: None,
        cut: false,
        reason: "Invalid value for child_pnc_visit.weight: \"2,9\" is not a number",
    },
    Bad {
        form: "anc_registration",
        set: Some(("", "ashaName", LONG_NAME)),
        rename: None,
        cut: false,
        reason: "Invalid value for ashaName: ",
    },
    Bad {
        form: "ec_registration",
        set: None,
        rename: None,
        cut: true,
        reason: "Invalid submission: formInstance is not valid JSON",
    },
    Bad {
        form: "anc_visit",
        set: None,
        rename: Some("anc_visit_v2"),
        cut: false,
        reason: "Unknown form name: anc_visit_v2",
    },
];

/// 300 characters: more than a `varchar(255)` column holds.
const LONG_NAME: &str = "Anganwadi worker of Hosa Agrahara, Bherya PHC, Mysore district; covers the sub-centres of Keelanapura and Hosa Agrahara and three hamlets beyond the river, with a second phone number kept by her husband and a third by the ASHA of the next village, who visits on Mondays and Thursdays after the market";

struct Gen {
    rng: StdRng,
    feed: Feed,
    next_id: u64,
    server_version: i64,
    /// How many submissions already share the current serverVersion.
    shared: usize,
    /// The quirk the last value carried and what must be stored for it.
    expect: Option<(&'static str, Option<String>)>,
}

impl Gen {
    fn quirk(&mut self, name: &'static str) {
        *self.feed.quirks.entry(name).or_default() += 1;
    }

    /// Notes a quirk and what its value must be stored as.
    fn quirk_stored(&mut self, name: &'static str, stored: Option<String>) {
        self.quirk(name);
        self.expect = Some((name, stored));
    }

    fn uuid(&mut self) -> String {
        self.next_id += 1;
        let r: u32 = self.rng.random();
        format!("{r:08x}-5a9f-4e2d-8c61-{:012x}", self.next_id)
    }

    fn next_server_version(&mut self) -> i64 {
        if self.shared > 0 && self.shared < 3 && self.rng.random_bool(0.3) {
            self.shared += 1;
            if self.shared == 2 {
                self.quirk("shared serverVersion");
            }
        } else {
            self.server_version += 1 + self.rng.random_range(0..5_000);
            self.shared = 1;
        }
        self.server_version
    }

    fn date(&mut self) -> String {
        let day = chrono::NaiveDate::from_ymd_opt(2013, 1, 1).unwrap_or_default()
            + chrono::Days::new(self.rng.random_range(0..900));
        match self.rng.random_range(0..10) {
            0..=5 => day.format("%Y-%m-%d").to_string(),
            6 | 7 => {
                self.quirk_stored("unpadded date (1989-4-16)", Some(day.to_string()));
                day.format("%Y-%-m-%-d").to_string()
            }
            _ => {
                self.quirk_stored("RFC 1123 date", Some(day.to_string()));
                day.format("%a, %d %b %Y 00:00:00 GMT").to_string()
            }
        }
    }

    fn number(&mut self, name: &str) -> String {
        let lower = name.to_ascii_lowercase();
        if lower.contains("weight") || lower.contains("hb") || lower.contains("temperature") {
            format!(
                "{}.{}",
                self.rng.random_range(2..60),
                self.rng.random_range(0..10)
            )
        } else if self.rng.random_bool(0.1) {
            let n = self.rng.random_range(1..60);
            self.quirk_stored("number like 48.", Some(n.to_string()));
            format!("{n}.")
        } else {
            self.rng.random_range(0..12).to_string()
        }
    }

    fn words(&mut self, name: &str) -> String {
        if name.ends_with("Id") || name.ends_with("ID") {
            return self.uuid();
        }
        match self.rng.random_range(0..10) {
            0 => {
                let t = KANNADA[self.rng.random_range(0..KANNADA.len())];
                self.quirk_stored("Kannada text", Some(t.to_string()));
                t.to_string()
            }
            1 => {
                let t = DEVANAGARI[self.rng.random_range(0..DEVANAGARI.len())];
                self.quirk_stored("Devanagari text", Some(t.to_string()));
                t.to_string()
            }
            2 => {
                let t = ESCAPED[self.rng.random_range(0..ESCAPED.len())];
                self.quirk_stored(GSON, Some(t.to_string()));
                t.to_string()
            }
            _ => LATIN[self.rng.random_range(0..LATIN.len())].to_string(),
        }
    }

    /// A value for `field`, or `None` for no `value` key.
    fn value(&mut self, field: &RealField, entity: &str) -> Option<String> {
        if field.kind == Kind::Id {
            return Some(entity.to_string());
        }
        match self.rng.random_range(0..100) {
            0..=9 => {
                self.quirk_stored("missing value", None);
                return None;
            }
            10..=13 => {
                self.quirk_stored("empty value", None);
                return Some(String::new());
            }
            14 | 15 => {
                self.quirk_stored("whitespace-only value", None);
                return Some("  ".into());
            }
            _ => {}
        }
        Some(match field.kind {
            Kind::Number if self.rng.random_bool(0.06) => {
                self.quirk_stored("NaN", None);
                "NaN".into()
            }
            Kind::Date if self.rng.random_bool(0.06) => {
                self.quirk_stored("Invalid Date", None);
                "Invalid Date".into()
            }
            Kind::Number => self.number(&field.name),
            Kind::Date => self.date(),
            Kind::Choice if !field.values.is_empty() => {
                field.values[self.rng.random_range(0..field.values.len())].clone()
            }
            Kind::Multi if !field.values.is_empty() => {
                let n = self.rng.random_range(1..=field.values.len().min(3));
                let mut picked: Vec<String> = Vec::new();
                for _ in 0..n {
                    let v = &field.values[self.rng.random_range(0..field.values.len())];
                    if !picked.contains(v) {
                        picked.push(v.clone());
                    }
                }
                picked.join(" ")
            }
            _ => self.words(&field.name),
        })
    }

    fn note_repeats(&mut self, fields: &[RealField]) {
        let mut seen = std::collections::HashSet::new();
        if fields.iter().any(|f| !seen.insert(f.name.as_str())) {
            self.quirk("repeated field");
        }
    }

    /// The form's fields as sent; `probes` gets one candidate per quirk
    /// kind not probed yet, on fields the form does not repeat.
    fn fields_json(
        &mut self,
        fields: &[RealField],
        bind_type: &str,
        entity: &str,
        set: Option<(&str, &str)>,
        probes: &mut Vec<(&'static str, String, String, Option<String>)>,
    ) -> Vec<Value> {
        self.note_repeats(fields);
        fields
            .iter()
            .map(|f| {
                self.expect = None;
                let value = match set {
                    Some((name, v)) if name == f.name => Some(v.to_string()),
                    _ => self.value(f, entity),
                };
                let once = fields.iter().filter(|g| g.name == f.name).count() == 1;
                // Dates and numbers are probed where the column converts them.
                let typed = match self.expect.as_ref().map(|e| e.0) {
                    Some("number like 48.") => f.column_type == "decimal",
                    Some("RFC 1123 date" | "unpadded date (1989-4-16)") => f.column_type == "date",
                    _ => true,
                };
                if let Some((quirk, stored)) = self.expect.take()
                    && once
                    && typed
                    && !self.feed.probes.iter().any(|p| p.quirk == quirk)
                    && !probes.iter().any(|p| p.0 == quirk)
                {
                    let sent = value.clone().unwrap_or_default();
                    // A text column keeps what was sent; a typed one the
                    // converted value; "no answer" is NULL in either.
                    let text_column = matches!(f.column_type.as_str(), "text" | "varchar(255)");
                    let stored = if text_column && stored.is_some() {
                        Some(sent.clone())
                    } else {
                        stored
                    };
                    probes.push((quirk, f.column.clone(), sent, stored));
                }
                let mut e = json!({"name": f.name, "source": format!("{bind_type}.{}", f.name)});
                if let Some(v) = value {
                    e["value"] = Value::String(v);
                }
                e
            })
            .collect()
    }

    fn sub_form_json(&mut self, sub: &RealSubForm, set: Option<(&str, &str)>) -> (Value, i64) {
        let n = if set.is_some() {
            2
        } else if self.rng.random_bool(0.2) {
            self.quirk("sub-form with no instances");
            0
        } else {
            self.rng.random_range(1..=3)
        };
        let mut instances = Vec::new();
        for _ in 0..n {
            let child = self.uuid();
            let mut instance = serde_json::Map::new();
            for f in &sub.fields {
                let value = match set {
                    Some((name, v)) if name == f.name => Some(v.to_string()),
                    _ => self.value(f, &child),
                };
                // An instance carries every field, "" when unanswered.
                instance.insert(f.name.clone(), Value::String(value.unwrap_or_default()));
            }
            instances.push(Value::Object(instance));
        }
        let fields: Vec<Value> = sub
            .fields
            .iter()
            .map(|f| json!({"name": f.name, "source": format!("{}.{}", sub.bind_type, f.name)}))
            .collect();
        (
            json!({
                "name": sub.name,
                "bind_type": sub.bind_type,
                "default_bind_path": sub.default_bind_path,
                "fields": fields,
                "instances": instances,
            }),
            n as i64,
        )
    }

    /// One submission of `form`, made to fail as `bad` says if given.
    fn submission(&mut self, form: &RealForm, bad: Option<&Bad>) {
        let entity = self.uuid();
        let instance_id = self.uuid();
        let set_on = |scope: &str| {
            bad.and_then(|b| b.set)
                .filter(|(s, _, _)| *s == scope)
                .map(|(_, f, v)| (f, v))
        };
        let mut probes = Vec::new();
        let fields = self.fields_json(
            &form.fields,
            &form.bind_type,
            &entity,
            set_on(""),
            &mut probes,
        );
        let mut sub_forms = Vec::new();
        let mut children = Vec::new();
        for sub in &form.sub_forms {
            let (json, n) = self.sub_form_json(sub, set_on(&sub.name));
            sub_forms.push(json);
            children.push((sub.table.clone(), n));
        }
        let document = json!({
            "form_data_definition_version": form.version,
            "form": {
                "bind_type": form.bind_type,
                "default_bind_path": form.default_bind_path,
                "fields": fields,
                "sub_forms": sub_forms,
            }
        });
        let mut form_instance = gson_escape(&document.to_string());
        if bad.is_some_and(|b| b.cut) {
            let mut half = form_instance.len() / 2;
            while !form_instance.is_char_boundary(half) {
                half -= 1;
            }
            form_instance.truncate(half);
        }
        let form_name = bad.and_then(|b| b.rename).unwrap_or(&form.form);
        let sv = self.next_server_version();
        let client = sv - self.rng.random_range(60_000..86_400_000);
        let anm = ["demo1", "anm042", "c"][self.rng.random_range(0..3)];
        let element = json!({
            "anmId": anm,
            "instanceId": instance_id,
            "entityId": entity,
            "formName": form_name,
            "formInstance": form_instance,
            "clientVersion": client.to_string(),
            "serverVersion": sv.to_string(),
            "formDataDefinitionVersion": form.version,
        });
        self.feed.elements.push(RawElement {
            position: sv,
            text: gson_escape(&element.to_string()),
        });
        self.feed.last_server_version = sv;
        *self.feed.sent.entry(form_name.to_string()).or_default() += 1;
        match bad {
            Some(b) => self.feed.deliberate.push(Deliberate {
                instance_id,
                form_name: form_name.to_string(),
                reason: b.reason.to_string(),
            }),
            None => {
                for (quirk, column, sent, stored) in probes {
                    self.feed.probes.push(Probe {
                        quirk,
                        table: form.table.clone(),
                        column,
                        instance_id: instance_id.clone(),
                        sent,
                        stored,
                    });
                }
                *self.feed.form_rows.entry(form.form.clone()).or_default() += 1;
                for (table, n) in children {
                    *self.feed.sub_form_rows.entry(table).or_default() += n;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_real_form_is_in_the_feed_with_its_quirks() {
        let forms = real_forms();
        assert_eq!(forms.len(), 32);
        let feed = realistic_feed(3, 7);
        for f in &forms {
            assert_eq!(
                feed.sent[&f.form],
                3 + DELIBERATE
                    .iter()
                    .filter(|b| b.form == f.form && b.rename.is_none())
                    .count()
            );
        }
        for quirk in [
            "missing value",
            "empty value",
            "whitespace-only value",
            "NaN",
            "Invalid Date",
            "unpadded date (1989-4-16)",
            "RFC 1123 date",
            "number like 48.",
            "Kannada text",
            GSON,
            "repeated field",
            "sub-form with no instances",
            "shared serverVersion",
        ] {
            assert!(
                feed.quirks.get(quirk).copied().unwrap_or(0) > 0,
                "{quirk}: {:?}",
                feed.quirks
            );
        }
        let text: String = feed.elements.iter().map(|e| e.text.as_str()).collect();
        assert!(
            text.contains("\\\\u0026") || text.contains("\\\\u003c") || text.contains("\\\\u0027"),
            "escapes inside formInstance"
        );
        assert!(
            !text.contains('&') && !text.contains('<'),
            "Gson escapes every & and <"
        );
        for e in &feed.elements {
            let v: Value = serde_json::from_str(&e.text).expect("each element is JSON");
            assert_eq!(
                v["serverVersion"].as_str(),
                Some(e.position.to_string().as_str())
            );
        }
        assert!(
            feed.elements
                .windows(2)
                .all(|w| w[0].position <= w[1].position)
        );
    }
}
