//! The SQL expression that turns one question's answer in a row's
//! observations (JSONB keyed by concept uuid) into its column's value
//! (design/etl.md §2): numbers, dates and times in the configured time zone,
//! coded answers as answer names, question-group children from inside their
//! group. Every uuid, name and time zone is a bound value.

use crate::plan::{ColumnSource, PlannedColumn};
use crate::sql_text::{Statement, Value};

/// Casting an answer that is not a valid value of its type would fail the
/// whole statement, and with it the table's sync on every run. So a cast
/// only ever sees text it cannot fail on: strings matching these strict
/// patterns (every real calendar date but 29 February, times of day,
/// numbers of bounded size) are cast directly; other strings that start
/// like a date or time go to `etl_try_*` (migration `evolution`), which
/// returns NULL where PostgreSQL refuses the value; anything else is NULL.
/// A bad answer therefore empties its own cell and nothing more.
const DATE_STRICT: &str = "'^(?!0000)\\d{4}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1\\d|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)\
(?:[T ](?:[01]\\d|2[0-3]):[0-5]\\d(?::[0-5]\\d(?:\\.\\d{1,9})?)?)?(?:Z|[+-](?:[01]\\d|2[0-3])(?::?[0-5]\\d)?)?$'";
const DATE_LIKE: &str = "'^\\d{4}-\\d{2}-\\d{2}'";
const TIME_STRICT: &str = "'^(?:[01]?\\d|2[0-3]):[0-5]\\d(?::[0-5]\\d(?:\\.\\d{1,9})?)?$'";
const TIME_LIKE: &str = "'^\\d{1,2}:\\d{2}'";
/// At most 200 digits on each side of the point and a four-digit exponent:
/// far inside `numeric`'s range, so the cast cannot overflow.
const NUMBER_STRICT: &str =
    "'^\\s*[-+]?(?:\\d{1,200}(?:\\.\\d{0,200})?|\\.\\d{1,200})(?:[eE][-+]?\\d{1,4})?\\s*$'";

/// The expression for one question column, reading from the observations
/// object `obs`.
pub fn column_expr(
    s: &mut Statement,
    obs: &str,
    column: &PlannedColumn,
    time_zone: &str,
) -> String {
    let (concept_uuid, data_type, multi_select, answers, parent, nested) = match &column.source {
        ColumnSource::Concept {
            concept_uuid,
            data_type,
            multi_select,
            answers,
            parent_concept_uuid,
            nested,
            ..
        } => (
            concept_uuid,
            data_type.as_str(),
            *multi_select,
            answers,
            parent_concept_uuid,
            *nested,
        ),
        ColumnSource::AddressLevel { type_name, id } => {
            let t = s.bind_text(type_name);
            return if *id {
                format!("(anc.levels -> {t} ->> 0)::bigint")
            } else {
                format!("(anc.levels -> {t} ->> 1)")
            };
        }
    };
    let base = match (nested, parent) {
        (true, Some(group)) => {
            let g = s.bind_text(group);
            format!("({obs} -> {g})")
        }
        _ => obs.to_string(),
    };
    let u = s.bind_text(concept_uuid);
    let node = format!("({base} -> {u})");
    let text = format!("({base} ->> {u})");
    match data_type {
        "Numeric" => format!(
            "CASE WHEN jsonb_typeof({node}) = 'number' OR {text} ~ {NUMBER_STRICT} \
             THEN {text}::numeric END"
        ),
        "Date" => {
            let tz = s.bind_text(time_zone);
            format!("({} AT TIME ZONE {tz})::date", timestamptz(&text))
        }
        "DateTime" => {
            let tz = s.bind_text(time_zone);
            format!("({} AT TIME ZONE {tz})", timestamptz(&text))
        }
        "Time" => format!(
            "CASE WHEN {text} ~ {TIME_STRICT} THEN {text}::time \
             WHEN {text} ~ {TIME_LIKE} THEN public.etl_try_time({text}) END"
        ),
        "ImageV2" => node,
        "Coded" if multi_select => {
            let names = answer_map(s, answers);
            format!(
                "(SELECT string_agg(coalesce({names} ->> v.answer, ({lookup})), ', ' ORDER BY v.ord) \
                 FROM jsonb_array_elements_text(CASE jsonb_typeof({node}) WHEN 'array' THEN {node} \
                      WHEN 'string' THEN jsonb_build_array({node}) END) WITH ORDINALITY AS v(answer, ord))",
                lookup = answer_name("v.answer"),
            )
        }
        "Coded" => {
            let names = answer_map(s, answers);
            let value = format!(
                "(CASE jsonb_typeof({node}) WHEN 'array' THEN {node} ->> 0 ELSE {text} END)"
            );
            format!(
                "coalesce({names} ->> {value}, ({lookup}))",
                lookup = answer_name(&value)
            )
        }
        _ => text,
    }
}

/// `text` as a timestamptz, NULL when it is not one.
fn timestamptz(text: &str) -> String {
    format!(
        "CASE WHEN {text} ~ {DATE_STRICT} THEN {text}::timestamptz \
         WHEN {text} ~ {DATE_LIKE} THEN public.etl_try_timestamptz({text}) END"
    )
}

/// A coded concept's answers as a bound jsonb object `{uuid: name}`:
/// looking a value up in it costs far less than a query per value. The
/// cast of a bound value is folded once when the statement is planned.
fn answer_map(s: &mut Statement, answers: &[(String, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = answers
        .iter()
        .map(|(uuid, name)| (uuid.clone(), serde_json::Value::String(name.clone())))
        .collect();
    let p = s.bind(Value::Text(serde_json::Value::Object(map).to_string()));
    format!("({p}::jsonb)")
}

/// The name of the answer concept whose uuid is `uuid_expr`, for answers
/// the concept does not list (voided since, or recorded elsewhere); a concept
/// shared by several organisations of a group is named by the row's own.
fn answer_name(uuid_expr: &str) -> String {
    format!(
        "SELECT a.name FROM public.concept a WHERE a.uuid = {uuid_expr} \
         ORDER BY (a.organisation_id = src.organisation_id) DESC, a.id LIMIT 1"
    )
}
