//! The SQL expression that turns one question's answer in a row's
//! observations (JSONB keyed by concept uuid) into its column's value
//! (design/etl.md §2): numbers, dates and times in the configured time zone,
//! coded answers as answer names, question-group children from inside their
//! group. Every uuid, name and time zone is a bound value.
//!
//! An answer PostgreSQL cannot read as its column's type (`2024-13-45` for a
//! date, `1e999999` for a number, text recorded before the concept's type
//! changed) becomes NULL in its cell; it never fails the table's sync. The
//! values read are those of PostgreSQL's own casts: a number is what
//! `numeric` accepts; a date or date-time is a string shaped `????-??-??...`
//! that `timestamptz` accepts; a time is a string with its first `:` second
//! or third that `time` accepts (the shape checks keep out words such as
//! `now` that would read differently on every run).
//!
//! Checking every answer before casting it costs more than the cast itself
//! (a regular expression per value doubled a full load), so a table is first
//! synced with [`Casting::Direct`], plain casts as fast as a hand-written
//! query; only if one of its answers cannot be read is the statement redone
//! with [`Casting::Tolerant`]. Both give the same values wherever `Direct`
//! succeeds.

use crate::engine::schema::plan::{ColumnSource, PlannedColumn};
use crate::engine::sync::sql_text::{Statement, Value};

/// How answers are cast to their column's types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Casting {
    /// Plain casts: one answer PostgreSQL cannot read fails the statement.
    Direct,
    /// Every answer PostgreSQL cannot read becomes NULL: strings that match
    /// a strict pattern (every calendar date but 29 February, times of day,
    /// numbers of bounded size) are cast directly, the rest go through
    /// `etl_service.etl_try_*` (migration `service_state`), which returns NULL where the cast
    /// fails: a subtransaction per value, paid only for the odd ones.
    Tolerant,
}

const DATE_STRICT: &str = "'^(?!0000)\\d{4}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1\\d|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)\
(?:[T ](?:[01]\\d|2[0-3]):[0-5]\\d(?::[0-5]\\d(?:\\.\\d{1,9})?)?)?(?:Z|[+-](?:[01]\\d|2[0-3])(?::?[0-5]\\d)?)?$'";
const TIME_STRICT: &str = "'^(?:[01]?\\d|2[0-3]):[0-5]\\d(?::[0-5]\\d(?:\\.\\d{1,9})?)?$'";
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
    casting: Casting,
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
            return address_level(s, type_name, *id);
        }
    };
    let Answer { node, text } = Answer::locate(s, obs, concept_uuid, parent, nested);
    match data_type {
        "Numeric" => numeric(&node, &text, casting),
        "Date" => {
            let local = local_time(s, &text, time_zone, casting);
            format!("CASE WHEN {} THEN {local}::date END", date_shaped(&text))
        }
        "DateTime" => {
            let local = local_time(s, &text, time_zone, casting);
            format!("CASE WHEN {} THEN {local} END", date_shaped(&text))
        }
        "Time" => time_of_day(&text, casting),
        "ImageV2" => node,
        "Coded" if multi_select => answer_names(s, &node, answers),
        "Coded" => answer_name_of(s, &node, &text, answers),
        _ => text,
    }
}

/// An address table's column: the level of type `type_name` among the
/// row's ancestors, its id or its title.
fn address_level(s: &mut Statement, type_name: &str, id: bool) -> String {
    let t = s.bind_text(type_name);
    if id {
        format!("(anc.levels -> {t} ->> 0)::bigint")
    } else {
        format!("(anc.levels -> {t} ->> 1)")
    }
}

/// Where a question's answer is in the observations: as jsonb (`node`)
/// and as text.
struct Answer {
    node: String,
    text: String,
}

impl Answer {
    /// The answer to `concept_uuid` in `obs`, inside its group's object for
    /// a `nested` question (a non-repeatable group's child).
    fn locate(
        s: &mut Statement,
        obs: &str,
        concept_uuid: &str,
        parent: &Option<String>,
        nested: bool,
    ) -> Self {
        let base = match (nested, parent) {
            (true, Some(group)) => {
                let g = s.bind_text(group);
                format!("({obs} -> {g})")
            }
            _ => obs.to_string(),
        };
        let u = s.bind_text(concept_uuid);
        Self {
            node: format!("({base} -> {u})"),
            text: format!("({base} ->> {u})"),
        }
    }
}

/// A number answer as `numeric`.
fn numeric(node: &str, text: &str, casting: Casting) -> String {
    match casting {
        Casting::Tolerant => format!(
            "CASE WHEN jsonb_typeof({node}) = 'number' OR {text} ~ {NUMBER_STRICT} \
             THEN {text}::numeric ELSE etl_service.etl_try_numeric({text}) END"
        ),
        Casting::Direct => format!("{text}::numeric"),
    }
}

/// A date or date-time answer as a timestamp in `time_zone`.
fn local_time(s: &mut Statement, text: &str, time_zone: &str, casting: Casting) -> String {
    let tz = s.bind_text(time_zone);
    format!("({} AT TIME ZONE {tz})", timestamptz(text, casting))
}

/// A time answer as `time`, when its first `:` is second or third.
fn time_of_day(text: &str, casting: Casting) -> String {
    let cast = match casting {
        Casting::Tolerant => format!(
            "CASE WHEN {text} ~ {TIME_STRICT} THEN {text}::time ELSE etl_service.etl_try_time({text}) END"
        ),
        Casting::Direct => format!("{text}::time"),
    };
    format!("CASE WHEN strpos({text}, ':') IN (2, 3) THEN {cast} END")
}

/// A multi-select answer (an array of answer uuids, or one uuid) as its
/// answers' names, comma-separated in the order given.
fn answer_names(s: &mut Statement, node: &str, answers: &[(String, String)]) -> String {
    let names = answer_map(s, answers);
    // An unanswered question (most of a form's) skips the
    // subquery altogether.
    format!(
        "CASE WHEN {node} IS NOT NULL THEN \
         (SELECT string_agg(coalesce({names} ->> v.answer, ({lookup})), ', ' ORDER BY v.ord) \
         FROM jsonb_array_elements_text(CASE jsonb_typeof({node}) WHEN 'array' THEN {node} \
              WHEN 'string' THEN jsonb_build_array({node}) END) WITH ORDINALITY AS v(answer, ord)) END",
        lookup = answer_name("v.answer"),
    )
}

/// A single-select answer (an answer uuid, or an array of one) as the
/// answer's name.
fn answer_name_of(
    s: &mut Statement,
    node: &str,
    text: &str,
    answers: &[(String, String)],
) -> String {
    let names = answer_map(s, answers);
    let value =
        format!("(CASE jsonb_typeof({node}) WHEN 'array' THEN {node} ->> 0 ELSE {text} END)");
    // The usual answer, a uuid the concept lists, costs one lookup;
    // a one-element array or an answer it does not list, more; an
    // unanswered question (most of a form's) skips the subquery,
    // which could find nothing.
    format!(
        "coalesce({names} ->> {text}, \
         CASE WHEN jsonb_typeof({node}) = 'array' THEN {names} ->> ({node} ->> 0) END, \
         CASE WHEN {text} IS NOT NULL THEN ({lookup}) END)",
        lookup = answer_name(&value)
    )
}

/// Whether `text` is shaped like an ISO date (`dddd-dd-dd...`): a cheap
/// test reading the answer once, where a regular expression per value would
/// cost more than the cast.
fn date_shaped(text: &str) -> String {
    format!("{text} LIKE '____-__-__%'")
}

/// `text` as a timestamptz.
fn timestamptz(text: &str, casting: Casting) -> String {
    match casting {
        Casting::Direct => format!("{text}::timestamptz"),
        Casting::Tolerant => format!(
            "(CASE WHEN {text} ~ {DATE_STRICT} THEN {text}::timestamptz \
             ELSE etl_service.etl_try_timestamptz({text}) END)"
        ),
    }
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
