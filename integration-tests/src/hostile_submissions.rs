//! Hostile submissions for the migrator (issue #8): generated elements
//! that are not JSON, have the wrong type in every envelope field, miss
//! keys, carry huge strings, deep nesting, bad escapes, NUL characters,
//! unknown or dangerous form names, repeated instance ids, values too long
//! for a `varchar`, numbers that overflow and dates that do not exist;
//! each with what must become of it.
//!
//! Every element is exact text ([`RawElement`]), so the fake upstream
//! serves it byte for byte among good ones (as `fake_upstream::RawElement`). Elements are `ec_registration`
//! (or `anc_registration`) submissions unless said otherwise; the test
//! repository has `ec_registration.family_planning_method varchar(10)`.

use serde_json::{Map, Value, json};

/// What must become of a hostile element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// One row in its form table under `instance_id`.
    Written,
    /// One unresolved `error_audit` row (under `instance_id`, or matched by
    /// its raw payload when the element has no readable id) whose reason
    /// contains this text, the raw payload kept exactly.
    Failed(&'static str),
    /// A repeat of an earlier element's instance id: nothing of its own.
    Repeat,
}

/// One hostile element.
#[derive(Debug, Clone)]
pub struct Hostile {
    pub label: String,
    pub text: String,
    /// The id it is held under; `None` when unreadable.
    pub instance_id: Option<String>,
    pub outcome: Outcome,
}

/// Generates the hostile elements, the k-th at `serverVersion` `position(k)`.
pub struct Builder {
    base_sv: i64,
    step: i64,
    pub items: Vec<(i64, Hostile)>,
}

fn form_instance(bind_type: &str, fields: Vec<Value>, sub_forms: Value) -> Value {
    json!({
        "form_data_definition_version": "1",
        "form": {
            "bind_type": bind_type,
            "default_bind_path": "/model/instance/EC_Registration/",
            "fields": fields,
            "sub_forms": sub_forms,
        }
    })
}

fn field(name: &str, value: Value) -> Value {
    json!({"name": name, "source": format!("x.{name}"), "value": value})
}

fn ec_fields(k: usize) -> Vec<Value> {
    vec![
        field("id", json!(format!("ec-{k}"))),
        field("wifeName", json!(format!("Hostile {k}"))),
        field("wifeAge", json!("24")),
        field("registrationDate", json!("2014-03-11")),
        field("familyPlanningMethod", json!("condom")),
    ]
}

/// A pseudo-random string of `len` letters (does not compress, unlike a
/// repeated character).
fn noise(len: usize, seed: u64) -> String {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

impl Builder {
    pub fn new(base_sv: i64, step: i64) -> Self {
        Self {
            base_sv,
            step,
            items: Vec::new(),
        }
    }

    fn next_sv(&self) -> i64 {
        self.base_sv + self.step * self.items.len() as i64
    }

    fn id(&self) -> String {
        format!("hostile-{:04}", self.items.len())
    }

    /// A well-formed envelope around `fi` (an object, encoded as a string).
    fn envelope(&self, id: &str, form: &str, fi: &Value) -> Map<String, Value> {
        let sv = self.next_sv();
        let mut m = Map::new();
        m.insert("anmId".into(), json!("anm-hostile"));
        m.insert("instanceId".into(), json!(id));
        m.insert("entityId".into(), json!(format!("entity-{id}")));
        m.insert("formName".into(), json!(form));
        m.insert("formInstance".into(), json!(fi.to_string()));
        m.insert("clientVersion".into(), json!((sv - 60_000).to_string()));
        m.insert("serverVersion".into(), json!(sv.to_string()));
        m.insert("formDataDefinitionVersion".into(), json!("1"));
        m
    }

    fn push(
        &mut self,
        label: impl Into<String>,
        text: String,
        id: Option<String>,
        outcome: Outcome,
    ) {
        let sv = self.next_sv();
        self.items.push((
            sv,
            Hostile {
                label: label.into(),
                text,
                instance_id: id,
                outcome,
            },
        ));
    }

    /// An ec_registration with `fields`, its envelope changed by `tweak`.
    fn ec(
        &mut self,
        label: &str,
        fields: Vec<Value>,
        sub_forms: Value,
        outcome: Outcome,
        tweak: impl FnOnce(&mut Map<String, Value>),
    ) {
        let id = self.id();
        let fi = form_instance("eligible_couple", fields, sub_forms);
        let mut m = self.envelope(&id, "ec_registration", &fi);
        tweak(&mut m);
        let held = match m.get("instanceId") {
            Some(Value::String(s))
                if !s.trim().is_empty() && s.len() <= 512 && !s.contains('\0') =>
            {
                Some(s.clone())
            }
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            _ => None,
        };
        let text = Value::Object(m).to_string();
        self.push(label, text, held, outcome);
    }

    /// An ec_registration whose field `name` is `value`.
    fn ec_field(&mut self, label: &str, name: &str, value: Value, outcome: Outcome) {
        let k = self.items.len();
        let mut fields = ec_fields(k);
        match fields.iter_mut().find(|f| f["name"] == json!(name)) {
            Some(f) => f["value"] = value,
            None => fields.push(field(name, value)),
        }
        self.ec(label, fields, json!([]), outcome, |_| {});
    }

    /// An ec_registration whose formInstance string is `text`.
    fn ec_form_text(&mut self, label: &str, text: String, outcome: Outcome) {
        let k = self.items.len();
        self.ec(label, ec_fields(k), json!([]), outcome, |m| {
            m.insert("formInstance".into(), Value::String(text));
        });
    }

    /// An element given as text, with no readable instance id.
    fn raw(&mut self, label: &str, text: String, outcome: Outcome) {
        self.push(label, text, None, outcome);
    }
}

/// The hostile elements, each at its `serverVersion` slot from `base_sv`
/// on, `step` apart (leave room between them for good submissions).
pub fn hostile_elements(base_sv: i64, step: i64) -> Vec<(i64, Hostile)> {
    use Outcome::{Failed, Repeat, Written};
    let mut b = Builder::new(base_sv, step);

    // Wrong types for every envelope key: a number, an array, an object,
    // null, a boolean, and the key missing.
    let keys = [
        "anmId",
        "instanceId",
        "entityId",
        "formName",
        "clientVersion",
        "serverVersion",
        "formDataDefinitionVersion",
        "formInstance",
    ];
    for key in keys {
        for kind in ["number", "array", "object", "null", "bool", "missing"] {
            let n = 7_000_000_000_000i64 + b.items.len() as i64;
            let sv = b.next_sv();
            let value = match kind {
                // serverVersion as a JSON number keeps its value; an
                // instanceId or clientVersion as a number is unique.
                "number" if key == "serverVersion" => json!(sv),
                "number" if key == "clientVersion" => json!(sv - 1),
                "number" => json!(n),
                "array" => json!(["x"]),
                "object" => json!({"a": 1}),
                "null" => Value::Null,
                "bool" => json!(true),
                _ => Value::Null,
            };
            let single = format!("{key} is not a single value");
            let single: &'static str = Box::leak(single.into_boxed_str());
            let missing_reason: &'static str = match key {
                "instanceId" => "no instanceId",
                "formName" => "no formName",
                "serverVersion" => "no serverVersion",
                "formInstance" => "no formInstance",
                _ => "",
            };
            let outcome = match (key, kind) {
                ("formInstance", "object") => Written,
                ("formInstance", "null" | "missing") => Failed("no formInstance"),
                ("formInstance", _) => Failed("formInstance is not a string"),
                (_, "array" | "object") => Failed(single),
                (_, "null" | "missing") if !missing_reason.is_empty() => Failed(missing_reason),
                ("formName", _) => Failed("Unknown form name"),
                ("clientVersion" | "serverVersion", "bool") => Failed("is not epoch milliseconds"),
                _ => Written,
            };
            let fi = form_instance("eligible_couple", ec_fields(b.items.len()), json!([]));
            b.ec(
                &format!("{key} as {kind}"),
                ec_fields(b.items.len()),
                json!([]),
                outcome,
                |m| match kind {
                    "missing" => {
                        m.remove(key);
                    }
                    "object" if key == "formInstance" => {
                        m.insert(key.into(), fi);
                    }
                    _ => {
                        m.insert(key.into(), value);
                    }
                },
            );
        }
    }

    // Field values of the wrong type, numbers that overflow, dates that do
    // not exist, text too long for varchar(10).
    let field_cases: Vec<(&str, Value, Outcome)> = vec![
        ("wifeAge", json!(24), Written),
        ("wifeAge", json!("24"), Written),
        ("wifeAge", json!(" 24 "), Written),
        ("wifeAge", json!("NaN"), Written),
        ("wifeAge", json!(""), Written),
        ("wifeAge", Value::Null, Written),
        (
            "wifeAge",
            json!([24]),
            Failed("field wifeAge is not a single value"),
        ),
        (
            "wifeAge",
            json!({"v": 24}),
            Failed("field wifeAge is not a single value"),
        ),
        ("wifeAge", json!(true), Failed("Invalid value for wifeAge")),
        ("wifeAge", json!("2147483648"), Failed("out of range")),
        ("wifeAge", json!("-2147483649"), Failed("out of range")),
        ("wifeAge", json!("1e10"), Failed("out of range")),
        ("wifeAge", json!("1e999999"), Failed("not a number")),
        ("wifeAge", json!("12.5"), Failed("whole number")),
        ("wifeAge", json!("Infinity"), Failed("not a number")),
        ("wifeAge", json!("0x10"), Failed("not a number")),
        ("wifeAge", json!(1e300), Failed("out of range")),
        (
            "numberOfLivingChildren",
            json!("99999999999999999999999999"),
            Failed("out of range"),
        ),
        (
            "registrationDate",
            json!("2014-02-30"),
            Failed("not a date"),
        ),
        (
            "registrationDate",
            json!("2014-13-01"),
            Failed("not a date"),
        ),
        (
            "registrationDate",
            json!("2014-02-29"),
            Failed("not a date"),
        ),
        ("registrationDate", json!("2016-02-29"), Written),
        (
            "registrationDate",
            json!("31/12/2014"),
            Failed("not a date"),
        ),
        (
            "registrationDate",
            json!("0000-00-00"),
            Failed("not a date"),
        ),
        ("registrationDate", json!("yesterday"), Failed("not a date")),
        ("registrationDate", json!("Invalid Date"), Written),
        (
            "registrationDate",
            json!("Sun, 04 May 2014 00:00:00 GMT"),
            Written,
        ),
        ("registrationDate", json!(20140311), Failed("not a date")),
        (
            "familyPlanningMethod",
            json!("sterilised!"),
            Failed("more than the column's limit of 10"),
        ),
        ("familyPlanningMethod", json!("éééééééééé"), Written),
        (
            "familyPlanningMethod",
            json!("ééééééééééé"),
            Failed("more than the column's limit of 10"),
        ),
        (
            "familyPlanningMethod",
            json!("🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂"),
            Written,
        ),
        (
            "wifeName",
            json!("Robert'); DROP TABLE ec_registration;--"),
            Written,
        ),
        ("wifeName", json!("\u{202e}evil\u{0301}"), Written),
        ("wifeName", json!("a\u{0000}b"), Failed("NUL")),
        ("wifeName", json!(noise(10 * 1024 * 1024, 1)), Written),
        (
            "wifeAge",
            json!(noise(10 * 1024 * 1024, 2)),
            Failed("Invalid value for wifeAge"),
        ),
        // A field with no column: written without it and recorded in
        // unmapped_field (it failed the submission before issue 17.2).
        ("favouriteColour", json!("blue"), Written),
        ("instanceId", json!("x"), Failed("reserved column")),
        // Names no column can have (NUL, past 63 bytes) still fail.
        ("we\u{0000}ird", json!("x"), Failed("Unknown field")),
        (
            Box::leak(noise(100_000, 3).into_boxed_str()),
            json!("x"),
            Failed("Unknown field"),
        ),
    ];
    for (name, value, outcome) in field_cases {
        let label = format!(
            "field {} = {}",
            name.chars().take(30).collect::<String>(),
            {
                let v = value.to_string();
                v.chars().take(40).collect::<String>()
            }
        );
        b.ec_field(&label, name, value, outcome);
    }

    // formInstance: not JSON, JSON of the wrong shape, nested too deeply.
    let deep = |levels: usize| {
        format!(
            "{{\"form\":{{\"fields\":[{{\"name\":\"wifeName\",\"value\":{}\"x\"{}}}]}}}}",
            "[".repeat(levels),
            "]".repeat(levels)
        )
    };
    let form_cases: Vec<(&str, String, Outcome)> = vec![
        ("not JSON", "not json at all".into(), Failed("formInstance is not valid JSON")),
        ("truncated", "{\"form\":{\"fields\":[".into(), Failed("formInstance is not valid JSON")),
        ("an array", "[1,2,3]".into(), Failed("formInstance does not have the shape of a form")),
        ("empty object", "{}".into(), Failed("formInstance has no form")),
        ("form a number", "{\"form\":5}".into(), Failed("shape of a form")),
        ("fields a number", "{\"form\":{\"fields\":5}}".into(), Failed("shape of a form")),
        ("no fields", "{\"form\":{\"bind_type\":\"x\"}}".into(), Failed("form has no fields")),
        ("field a number", "{\"form\":{\"fields\":[5]}}".into(), Failed("shape of a form")),
        ("field without name", "{\"form\":{\"fields\":[{\"value\":\"x\"}]}}".into(), Failed("shape of a form")),
        ("field name a number", "{\"form\":{\"fields\":[{\"name\":5,\"value\":\"x\"}]}}".into(), Failed("shape of a form")),
        ("sub_forms a number", "{\"form\":{\"fields\":[],\"sub_forms\":5}}".into(), Failed("shape of a form")),
        ("sub-form instance a number", "{\"form\":{\"fields\":[],\"sub_forms\":[{\"name\":\"child_pnc_visit\",\"instances\":[5]}]}}".into(), Failed("shape of a form")),
        ("unknown sub-form", "{\"form\":{\"fields\":[],\"sub_forms\":[{\"name\":\"nope\",\"instances\":[{\"a\":\"1\"}]}]}}".into(), Failed("Unknown sub-form: nope")),
        ("lone surrogate escape", "{\"form\":{\"fields\":[{\"name\":\"wifeName\",\"value\":\"\\ud800\"}]}}".into(), Failed("formInstance is not valid JSON")),
        ("invalid escape", "{\"form\":{\"fields\":[{\"name\":\"wifeName\",\"value\":\"\\x41\"}]}}".into(), Failed("formInstance is not valid JSON")),
        ("nested 10,000 levels", deep(10_000), Failed("nested too deeply")),
        ("nested 1,000,000 levels", deep(1_000_000), Failed("nested too deeply")),
        ("10 MB of garbage", noise(10 * 1024 * 1024, 4), Failed("formInstance is not valid JSON")),
        ("the JSON null", "null".into(), Failed("shape of a form")),
    ];
    for (label, text, outcome) in form_cases {
        b.ec_form_text(&format!("formInstance {label}"), text, outcome);
    }

    // Elements that are not objects or not JSON at all (no instance id).
    let k = b.items.len();
    let sv = b.next_sv();
    b.raw(
        "a string",
        format!("\"just a string {k}\""),
        Failed("not a JSON object"),
    );
    b.raw(
        "a number",
        format!("{}", 424242 + k),
        Failed("not a JSON object"),
    );
    b.raw(
        "an array",
        format!("[\"x\",{k}]"),
        Failed("not a JSON object"),
    );
    b.raw("null", "null".into(), Failed("not a JSON object"));
    b.raw(
        "lone surrogate in the element",
        format!("{{\"instanceId\":\"sur-{sv}\",\"anmId\":\"\\udc00\",\"serverVersion\":\"{sv}\"}}"),
        Failed("Invalid submission: not JSON"),
    );
    for levels in [10_000usize, 100_000, 1_000_000] {
        let sv = b.next_sv();
        b.raw(
            &format!("element nested {levels} levels"),
            format!(
                "{{\"instanceId\":\"deep-{sv}\",\"serverVersion\":\"{sv}\",\"extra\":{}1{}}}",
                "[".repeat(levels),
                "]".repeat(levels)
            ),
            Failed("nested too deeply"),
        );
    }

    // Names: unknown and dangerous form names, NUL characters, keys too
    // long for an index, serverVersions that are no time.
    for name in [
        "anc_visit_v2",
        "Robert'); DROP TABLE ec_registration;--",
        "ec_registration\"",
        "../../etc/passwd",
        "形式",
        "pg_catalog.pg_class",
        "form_submission",
        "error_audit",
        "migration_audit",
        "__diesel_schema_migrations",
    ] {
        b.ec(
            &format!("formName {name}"),
            ec_fields(0),
            json!([]),
            Failed("Unknown form name"),
            |m| {
                m.insert("formName".into(), json!(name));
            },
        );
    }
    let blank: [(&str, Outcome); 2] = [("", Failed("no formName")), ("   ", Failed("no formName"))];
    for (name, outcome) in blank {
        b.ec(
            &format!("formName {name:?}"),
            ec_fields(0),
            json!([]),
            outcome,
            |m| {
                m.insert("formName".into(), json!(name));
            },
        );
    }
    b.ec(
        "formName with NUL",
        ec_fields(0),
        json!([]),
        Failed("formName contains a NUL"),
        |m| {
            m.insert("formName".into(), json!("ec_\u{0}registration"));
        },
    );
    b.ec(
        "instanceId with NUL",
        ec_fields(0),
        json!([]),
        Failed("instanceId contains a NUL"),
        |m| {
            m.insert("instanceId".into(), json!("id\u{0}nul"));
        },
    );
    b.ec(
        "anmId with NUL",
        ec_fields(0),
        json!([]),
        Failed("NUL"),
        |m| {
            m.insert("anmId".into(), json!("anm\u{0}x"));
        },
    );
    b.ec(
        "instanceId of 10 KB",
        ec_fields(0),
        json!([]),
        Failed("instanceId is longer than 512 bytes"),
        |m| {
            m.insert("instanceId".into(), json!(noise(10_000, 5)));
        },
    );
    b.ec(
        "formName of 10 KB",
        ec_fields(0),
        json!([]),
        Failed("formName is longer than 512 bytes"),
        |m| {
            m.insert("formName".into(), json!(noise(10_000, 6)));
        },
    );
    b.ec("anmId of 3 KB", ec_fields(0), json!([]), Written, |m| {
        m.insert("anmId".into(), json!(noise(3_000, 7)));
    });
    let implausible: [(&str, &'static str); 5] = [
        ("9223372036854775807", "not a plausible time"),
        ("-1", "not a plausible time"),
        ("99999999999999999999", "not epoch milliseconds"),
        ("1.5e12", "not epoch milliseconds"),
        ("soon", "not epoch milliseconds"),
    ];
    for (sv, reason) in implausible {
        b.ec(
            &format!("serverVersion {sv}"),
            ec_fields(0),
            json!([]),
            Failed(reason),
            |m| {
                m.insert("serverVersion".into(), json!(sv));
            },
        );
    }
    b.ec(
        "clientVersion after the year 9999",
        ec_fields(0),
        json!([]),
        Failed("Invalid value for client_version"),
        |m| {
            m.insert("clientVersion".into(), json!("9223372036854775807"));
        },
    );

    // Repeated instance ids: in the same page with other content, an exact
    // repeat, and a repeat of a failed one.
    let first = b.id();
    b.ec(
        "an id used twice (first)",
        ec_fields(0),
        json!([]),
        Written,
        |_| {},
    );
    let again = first.clone();
    b.ec(
        "an id used twice (second, other content)",
        ec_fields(999),
        json!([]),
        Repeat,
        move |m| {
            m.insert("instanceId".into(), json!(again));
        },
    );
    let failed = b.id();
    b.ec(
        "a failed id used twice (first)",
        ec_fields(0),
        json!([]),
        Failed("Unknown form name"),
        |m| {
            m.insert("formName".into(), json!("nope_form"));
        },
    );
    let again = failed.clone();
    b.ec(
        "a failed id used twice (second)",
        ec_fields(0),
        json!([]),
        Repeat,
        move |m| {
            m.insert("instanceId".into(), json!(again));
            m.insert("formName".into(), json!("nope_form"));
        },
    );
    let exact = b.items[0].1.clone();
    b.push(
        "an exact repeat of the first element",
        exact.text,
        exact.instance_id,
        Repeat,
    );
    b.items
}
