//! Decoding what the upstream sends: a page (a JSON array), each element
//! (an envelope of strings), and its `formInstance` (a JSON document encoded
//! as a string), with the quirks of real data (migrator.md §2).
//!
//! Nothing here touches the database: a submission either decodes into a
//! [`Submission`] or becomes a [`Failure`] that says why, for `error_audit`.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

// The decoded types are the repository's input; re-exported because
// `decode` is where callers meet them.
pub use crate::repository::model::{Failure, Form, SubForm, Submission};

/// A page that is not a JSON array (cut short, an error page): the request
/// is retried with backoff like a 5xx.
#[derive(Debug, thiserror::Error)]
#[error("the response is not a JSON array of submissions: {0}")]
pub struct BadPage(pub String);

/// Splits a response body into its elements, each kept as the exact JSON
/// text received (for the archive and `error_audit.raw_payload`).
pub fn split_page(body: &[u8]) -> Result<Vec<Box<RawValue>>, BadPage> {
    serde_json::from_slice::<Vec<Box<RawValue>>>(body).map_err(|e| {
        let start: String = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        BadPage(format!("{e} (body starts with {start:?})"))
    })
}

/// `""`, `"NaN"` and `"Invalid Date"` are what devices send for "no answer".
pub fn is_no_value(value: &str) -> bool {
    let v = value.trim();
    v.is_empty() || v == "NaN" || v == "Invalid Date"
}

/// A scalar as text, or `None` for "no answer"; objects and arrays are
/// errors (the reference system skipped them silently).
fn scalar(value: &Value) -> Result<Option<String>, &'static str> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if is_no_value(s) => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Array(_) | Value::Object(_) => Err("is not a single value"),
    }
}

fn envelope_text(
    object: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<String>, Failure> {
    match object.get(key) {
        None => Ok(None),
        Some(v) => scalar(v).map_err(|why| {
            Failure::new(
                format!("Invalid submission: {key} {why}"),
                format!("the element's {key} {why}: {v}"),
            )
        }),
    }
}

/// Longest `instanceId` and `formName` kept, in bytes: they are keys of
/// unique and ordinary indexes, whose entries PostgreSQL limits to about
/// 2,700 bytes; one element over the limit would fail its whole batch for
/// ever. Real ones are UUIDs and short names.
pub const MAX_KEY_BYTES: usize = 512;

/// An `instanceId` or `formName` that can be stored and indexed.
fn key_text(key: &str, value: Option<String>) -> Result<Option<String>, Failure> {
    match value {
        Some(v) if v.len() > MAX_KEY_BYTES => Err(Failure::new(
            format!("Invalid submission: {key} is longer than {MAX_KEY_BYTES} bytes"),
            format!(
                "the element's {key} is {} bytes long, more than {MAX_KEY_BYTES}; it starts with {:?}",
                v.len(),
                truncate_for_message(&v)
            ),
        )),
        Some(v) if v.contains('\0') => Err(Failure::new(
            format!("Invalid submission: {key} contains a NUL character"),
            format!(
                "the element's {key} {:?} contains a NUL character, which PostgreSQL cannot store",
                v.replace('\0', "\u{fffd}")
            ),
        )),
        v => Ok(v),
    }
}

/// Latest `serverVersion` accepted: the end of year 9999, in epoch ms.
pub const MAX_SERVER_VERSION: i64 = 253_402_300_799_999;

/// A `serverVersion` that is a time: epoch milliseconds from 0 to the end
/// of year 9999. One beyond (`9223372036854775807`) would otherwise become
/// the watermark and skip every later submission.
fn server_version_of(text: &str) -> Result<i64, Failure> {
    let v = epoch_millis("serverVersion", text)?;
    if !(0..=MAX_SERVER_VERSION).contains(&v) {
        return Err(Failure::new(
            "Invalid submission: serverVersion is not a plausible time",
            format!(
                "serverVersion {v} is outside 0 to {MAX_SERVER_VERSION} (epoch milliseconds up to the year 9999); it cannot be the server's clock, and as a watermark it would skip later submissions"
            ),
        ));
    }
    Ok(v)
}

fn epoch_millis(key: &str, text: &str) -> Result<i64, Failure> {
    text.trim().parse::<i64>().map_err(|e| {
        Failure::new(
            format!("Invalid submission: {key} is not epoch milliseconds"),
            format!("{key} {text:?} is not epoch milliseconds: {e}"),
        )
    })
}

#[derive(Deserialize)]
struct FormInstance {
    form: Option<FormDef>,
}

#[derive(Deserialize)]
struct FormDef {
    bind_type: Option<String>,
    fields: Option<Vec<FieldDef>>,
    #[serde(default)]
    sub_forms: Option<Vec<SubFormDef>>,
}

#[derive(Deserialize)]
struct FieldDef {
    name: String,
    value: Option<Value>,
}

#[derive(Deserialize)]
struct SubFormDef {
    name: String,
    bind_type: Option<String>,
    #[serde(default)]
    instances: Option<Vec<serde_json::Map<String, Value>>>,
}

/// Decodes one element of a page. A failure carries whatever of the
/// envelope could be read, so `error_audit` can name the submission.
pub fn decode(raw: &str) -> Result<Submission, Failure> {
    let object = parse_element(raw)?;
    let key = identity(&object)?;
    let tag = |mut f: Failure| {
        f.instance_id = Some(key.instance_id.clone());
        f.form_name = Some(key.form_name.clone());
        f.server_version = Some(key.server_version);
        f
    };
    let client_version = envelope_text(&object, "clientVersion")
        .and_then(|v| v.map(|v| epoch_millis("clientVersion", &v)).transpose())
        .map_err(tag)?;
    let anm_id = envelope_text(&object, "anmId").map_err(tag)?;
    let entity_id = envelope_text(&object, "entityId").map_err(tag)?;
    let form_data_definition_version =
        envelope_text(&object, "formDataDefinitionVersion").map_err(tag)?;
    let form = form_instance(&object).map_err(tag)?;
    Ok(Submission {
        anm_id,
        instance_id: key.instance_id,
        entity_id,
        form_name: key.form_name,
        client_version,
        server_version: key.server_version,
        form_data_definition_version,
        form,
    })
}

/// The element as a JSON object.
fn parse_element(raw: &str) -> Result<serde_json::Map<String, Value>, Failure> {
    let value: Value = serde_json::from_str(raw).map_err(|e| {
        // serde_json stops at 128 levels of nesting with an error (no
        // stack overflow), which is worth its own reason.
        let reason = if e.to_string().contains("recursion limit") {
            "Invalid submission: nested too deeply"
        } else {
            "Invalid submission: not JSON"
        };
        Failure::new(reason, format!("the element is not JSON: {e}"))
    })?;
    let Value::Object(object) = value else {
        return Err(Failure::new(
            "Invalid submission: not a JSON object",
            format!(
                "the element is not a JSON object: {}",
                truncate_for_message(raw)
            ),
        ));
    };
    Ok(object)
}

/// What every submission must have and every later failure is tagged with.
struct Identity {
    instance_id: String,
    form_name: String,
    server_version: i64,
}

/// Reads what identifies the submission first, so later failures name it.
fn identity(object: &serde_json::Map<String, Value>) -> Result<Identity, Failure> {
    let instance_id =
        envelope_text(object, "instanceId").and_then(|v| key_text("instanceId", v))?;
    let tag_id = |mut f: Failure| {
        f.instance_id = instance_id.clone();
        f
    };
    let form_name = envelope_text(object, "formName")
        .and_then(|v| key_text("formName", v))
        .map_err(tag_id)?;
    let tag = |mut f: Failure, sv: Option<i64>| {
        f.instance_id = instance_id.clone();
        f.form_name = form_name.clone();
        f.server_version = sv;
        f
    };
    let server_version = envelope_text(object, "serverVersion")
        .and_then(|v| v.map(|v| server_version_of(&v)).transpose())
        .map_err(|f| tag(f, None))?;
    let Some(instance_id_value) = instance_id.clone() else {
        return Err(tag(missing("instanceId"), server_version));
    };
    let Some(form_name_value) = form_name.clone() else {
        return Err(tag(missing("formName"), server_version));
    };
    let Some(server_version) = server_version else {
        return Err(tag(missing("serverVersion"), None));
    };
    Ok(Identity {
        instance_id: instance_id_value,
        form_name: form_name_value,
        server_version,
    })
}

/// An element without `key`.
fn missing(key: &str) -> Failure {
    Failure::new(
        format!("Invalid submission: no {key}"),
        format!("the element has no {key}"),
    )
}

/// The element's `formInstance`, decoded.
fn form_instance(object: &serde_json::Map<String, Value>) -> Result<Form, Failure> {
    match object.get("formInstance") {
        None | Some(Value::Null) => Err(missing("formInstance")),
        Some(Value::String(text)) => decode_form_instance(text),
        // Lenient: a server that sends the document itself, not encoded.
        Some(v @ Value::Object(_)) => decode_form_instance(&v.to_string()),
        Some(other) => Err(Failure::new(
            "Invalid submission: formInstance is not a string",
            format!("formInstance is neither a string nor an object: {other}"),
        )),
    }
}

fn truncate_for_message(text: &str) -> String {
    let mut s: String = text.chars().take(200).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

/// Decodes the `formInstance` document.
pub fn decode_form_instance(text: &str) -> Result<Form, Failure> {
    let instance: FormInstance = serde_json::from_str(text).map_err(|e| {
        let reason = if e.is_data() {
            "Invalid submission: formInstance does not have the shape of a form"
        } else if e.to_string().contains("recursion limit") {
            "Invalid submission: formInstance is nested too deeply"
        } else {
            "Invalid submission: formInstance is not valid JSON"
        };
        Failure::new(reason, format!("{reason} ({e}): {text}"))
    })?;
    let Some(form) = instance.form else {
        return Err(Failure::new(
            "Invalid submission: formInstance has no form",
            format!("formInstance has no \"form\" object: {text}"),
        ));
    };
    let Some(field_defs) = form.fields else {
        return Err(Failure::new(
            "Invalid submission: form has no fields",
            format!("formInstance.form has no \"fields\" list: {text}"),
        ));
    };
    let mut fields: Vec<(String, Option<String>)> = Vec::with_capacity(field_defs.len());
    for field in field_defs {
        let value = match &field.value {
            None => None,
            Some(v) => scalar(v).map_err(|why| {
                Failure::new(
                    format!("Invalid submission: field {} {why}", field.name),
                    format!("the value of field {} {why}: {v}", field.name),
                )
            })?,
        };
        merge_field(&mut fields, field.name, value);
    }
    let mut sub_forms = Vec::new();
    for sub in form.sub_forms.unwrap_or_default() {
        sub_forms.push(decode_sub_form(sub)?);
    }
    Ok(Form {
        bind_type: form.bind_type,
        fields,
        sub_forms,
    })
}

/// One sub-form of `formInstance`, each repeated entry a flat map.
fn decode_sub_form(sub: SubFormDef) -> Result<SubForm, Failure> {
    let mut instances = Vec::new();
    for entry in sub.instances.unwrap_or_default() {
        let mut row: Vec<(String, Option<String>)> = Vec::with_capacity(entry.len());
        for (name, v) in entry {
            let value = scalar(&v).map_err(|why| {
                Failure::new(
                    format!(
                        "Invalid submission: sub-form {} field {name} {why}",
                        sub.name
                    ),
                    format!("the value of {}.{name} {why}: {v}", sub.name),
                )
            })?;
            merge_field(&mut row, name, value);
        }
        instances.push(row);
    }
    Ok(SubForm {
        name: sub.name,
        bind_type: sub.bind_type,
        instances,
    })
}

/// A repeated field name: the last occurrence that has a value wins; an
/// occurrence without a value never erases an earlier one.
fn merge_field(fields: &mut Vec<(String, Option<String>)>, name: String, value: Option<String>) {
    match fields.iter_mut().find(|(n, _)| *n == name) {
        Some((_, existing)) => {
            if value.is_some() {
                *existing = value;
            }
        }
        None => fields.push((name, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str =
        include_str!("../../../integration-tests/fixtures/drishti/sample-batch.json");

    fn field<'a>(f: &'a Form, name: &str) -> Option<&'a str> {
        f.fields
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    fn sample() -> Vec<Result<Submission, Failure>> {
        split_page(SAMPLE.as_bytes())
            .expect("sample is an array")
            .iter()
            .map(|raw| decode(raw.get()))
            .collect()
    }

    #[test]
    fn decodes_the_sample_page() {
        let all = sample();
        assert_eq!(all.len(), 7);
        let ec = all[0].as_ref().expect("ec decodes");
        assert_eq!(ec.form_name, "ec_registration");
        assert_eq!(ec.server_version, 1_394_524_800_123);
        assert_eq!(ec.client_version, Some(1_394_521_200_000));
        assert_eq!(ec.form.bind_type.as_deref(), Some("eligible_couple"));
        assert_eq!(field(&ec.form, "wifeAge"), Some("24"));
        assert_eq!(field(&ec.form, "familyPlanningMethod"), None);

        let anc = all[1].as_ref().expect("anc decodes");
        assert_eq!(field(&anc.form, "height"), None, "NaN is no value");
        assert_eq!(field(&anc.form, "weight"), Some("48."));

        let visit = all[2].as_ref().expect("visit decodes");
        assert_eq!(field(&visit.form, "hbLevel"), None);
        assert_eq!(field(&visit.form, "nextVisitDate"), None);

        let pnc = all[3].as_ref().expect("pnc decodes");
        assert_eq!(field(&pnc.form, "dischargeDate"), Some("2015-02-12"));
        let names: Vec<&str> = pnc.form.fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["id", "dischargeDate", "visitDate", "deliveryOutcome"]
        );
        assert!(pnc.server_version < pnc.client_version.unwrap_or_default());
        assert_eq!(pnc.form.sub_forms.len(), 1);
        let children = &pnc.form.sub_forms[0];
        assert_eq!(children.name, "child_pnc_visit");
        assert_eq!(children.instances.len(), 2);
        assert!(
            children.instances[1]
                .iter()
                .any(|(n, v)| n == "temperature" && v.is_none())
        );

        let bad = all[6].as_ref().expect_err("bad formInstance fails");
        assert_eq!(
            bad.reason,
            "Invalid submission: formInstance is not valid JSON"
        );
        assert_eq!(
            bad.instance_id.as_deref(),
            Some("70b26e83-cfd1-40e2-9354-6f708192a3b4")
        );
        assert_eq!(bad.server_version, Some(1_424_200_000_003));
        assert!(
            bad.detail.contains("[tru"),
            "detail keeps the cause: {}",
            bad.detail
        );
    }

    #[test]
    fn the_last_repeated_field_with_a_value_wins() {
        let form = decode_form_instance(
            r#"{"form":{"fields":[{"name":"a","value":"1"},{"name":"a","value":"2"},{"name":"a"},{"name":"b","value":""}]}}"#,
        )
        .expect("decodes");
        assert_eq!(field(&form, "a"), Some("2"));
        assert_eq!(field(&form, "b"), None);
    }

    #[test]
    fn refuses_what_the_reference_skipped_silently() {
        for (text, reason) in [
            (r#"{"form":{"bind_type":"x"}}"#, "form has no fields"),
            (r#"{"nope":1}"#, "formInstance has no form"),
            (
                r#"{"form":{"fields":[{"name":"a","value":{"x":1}}]}}"#,
                "field a is not a single value",
            ),
        ] {
            let f = decode_form_instance(text).expect_err(text);
            assert!(f.reason.contains(reason), "{} vs {reason}", f.reason);
        }
        let f = decode(r#"{"instanceId":"i","formName":"f","serverVersion":"x"}"#)
            .expect_err("bad serverVersion");
        assert_eq!(f.instance_id.as_deref(), Some("i"));
        assert!(f.reason.contains("serverVersion"));
        let f = decode(r#"[1]"#).expect_err("not an object");
        assert!(f.reason.contains("not a JSON object"));
        let f = decode(r#"{"formName":"f","serverVersion":"5","formInstance":"{}"}"#)
            .expect_err("no instance id");
        assert_eq!(f.server_version, Some(5));
        assert!(f.reason.contains("instanceId"));
    }

    #[test]
    fn a_page_must_be_an_array() {
        assert!(split_page(b"<html>oops</html>").is_err());
        assert!(split_page(b"{\"a\":1}").is_err());
        assert!(split_page(b"[{\"a\":1}, {\"b\"").is_err());
        assert_eq!(split_page(b"[]").map(|v| v.len()).ok(), Some(0));
    }
}
