//! Which source rows drive a reporting table: the source table of its kind,
//! the joins its filter needs, and the conditions picking the organisation's
//! rows of the table's types changed in the window.

use crate::engine::schema::layout::TableKind;
use crate::engine::schema::plan::{PlannedTable, TableIdentity};
use crate::engine::sync::SyncTarget;
use crate::engine::sync::avni_sources;
use crate::engine::sync::sql_text::{Statement, Value};
use chrono::{DateTime, Utc};

/// Every source table a run asks for changes.
pub const SOURCE_TABLES: [&str; 5] = [
    "individual",
    "program_enrolment",
    "program_encounter",
    "encounter",
    "address_level",
];

/// The source table whose change times drive a reporting table (one of
/// [`SOURCE_TABLES`]).
pub fn source_table(table: &PlannedTable) -> &'static str {
    match row_kind(table) {
        TableKind::Subject | TableKind::RepeatableQuestionGroup => "individual",
        TableKind::ProgramEnrolment | TableKind::ProgramExit => "program_enrolment",
        TableKind::ProgramEncounter | TableKind::ProgramEncounterCancel => "program_encounter",
        TableKind::Encounter | TableKind::EncounterCancel => "encounter",
        TableKind::Address => "address_level",
        kind @ (TableKind::Users
        | TableKind::SyncTelemetry
        | TableKind::GroupToMember
        | TableKind::HouseholdToMember) => avni_sources::source_table(kind),
    }
}

/// The column of a source table's rows naming their type, and the type's
/// table: what a table of one type is filtered by (`None` for address
/// levels, one table for all their types).
pub fn type_column(source: &str) -> Option<(&'static str, &'static str)> {
    match source {
        "individual" => Some(("subject_type_id", "subject_type")),
        "program_enrolment" => Some(("program_id", "program")),
        "program_encounter" | "encounter" => Some(("encounter_type_id", "encounter_type")),
        _ => None,
    }
}

/// The uuid of the type (of [`type_column`]) whose source rows fill
/// `table`, if it is filtered by one.
pub fn table_type_uuid(table: &PlannedTable) -> Option<&str> {
    let identity = &table.identity;
    match row_kind(table) {
        TableKind::Subject | TableKind::RepeatableQuestionGroup => {
            identity.subject_type_uuid.as_deref()
        }
        TableKind::ProgramEnrolment | TableKind::ProgramExit => identity.program_uuid.as_deref(),
        TableKind::ProgramEncounter
        | TableKind::ProgramEncounterCancel
        | TableKind::Encounter
        | TableKind::EncounterCancel => identity.encounter_type_uuid.as_deref(),
        // Users, syncs and memberships are probed whole: a membership's
        // types are its group's and member's, not a column of its row.
        TableKind::Address
        | TableKind::Users
        | TableKind::SyncTelemetry
        | TableKind::GroupToMember
        | TableKind::HouseholdToMember => None,
    }
}

/// The organisations whose source rows fill `table` for a member whose
/// chain (itself, its parent, ...) is `lineage`, as Avni's row-level
/// security shows them to the member's role: locations
/// (`address_level`, a reference table) are shared down the organisation
/// tree, so the address table holds the member's and its ancestors';
/// subjects, enrolments and encounters are the member's own.
pub fn source_organisations(table: &PlannedTable, lineage: &[i32]) -> Vec<i32> {
    match (row_kind(table), lineage.first()) {
        (TableKind::Address, _) | (_, None) => lineage.to_vec(),
        (_, Some(member)) => vec![*member],
    }
}

/// The kind whose source rows drive the table: the owner's for a
/// repeatable-group table.
pub(super) fn row_kind(table: &PlannedTable) -> TableKind {
    table.identity.owner_kind.unwrap_or(table.identity.kind)
}

/// FROM clause of a kind's source rows, with the joins its filter needs.
pub(super) fn source_from(kind: TableKind) -> String {
    match kind {
        TableKind::Subject => "public.individual src",
        TableKind::ProgramEnrolment | TableKind::ProgramExit => {
            "public.program_enrolment src JOIN public.individual i ON i.id = src.individual_id"
        }
        TableKind::ProgramEncounter | TableKind::ProgramEncounterCancel => {
            "public.program_encounter src \
             JOIN public.program_enrolment en ON en.id = src.program_enrolment_id \
             JOIN public.individual i ON i.id = en.individual_id"
        }
        TableKind::Encounter | TableKind::EncounterCancel => {
            "public.encounter src JOIN public.individual i ON i.id = src.individual_id"
        }
        TableKind::Address => {
            "public.address_level src JOIN public.address_level_type lt ON lt.id = src.type_id"
        }
        TableKind::RepeatableQuestionGroup => "public.individual src",
        TableKind::Users
        | TableKind::SyncTelemetry
        | TableKind::GroupToMember
        | TableKind::HouseholdToMember => return avni_sources::source_from(kind),
    }
    .to_string()
}

/// The WHERE conditions selecting `target`'s source rows changed in the
/// window.
pub(super) fn source_filter(
    s: &mut Statement,
    target: &SyncTarget<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> String {
    let kind = row_kind(target.table);
    let org = if target.source_organisations.len() > 1 {
        format!(
            "ANY ({})",
            s.bind(Value::IntArray(target.source_organisations.to_vec()))
        )
    } else {
        s.bind(Value::Int(target.organisation_id))
    };
    let lo = s.bind(Value::Time(from));
    let hi = s.bind(Value::Time(to));
    let mut conditions = vec![format!("src.organisation_id = {org}")];
    for TypeFilter {
        column,
        table,
        uuid,
    } in type_filters(kind, &target.table.identity)
    {
        // An array computed once, before the scan: the condition is then
        // checked on each source row as it is read, before the joins and
        // before its observations are detoasted (as a semi-join it was
        // checked after them, reading every other type's observations).
        if let Some(uuid) = uuid {
            let p = s.bind_text(uuid);
            conditions.push(format!(
                "{column} = ANY (ARRAY(SELECT id FROM public.{table} WHERE uuid = {p}))"
            ));
        }
    }
    conditions.push(window_condition(kind, &org, &lo, &hi));
    conditions.join(" AND ")
}

/// A source row's column naming one of the table's types (subject type,
/// program, encounter type), the type's table and the table's uuid for it.
struct TypeFilter<'a> {
    column: &'static str,
    table: &'static str,
    uuid: &'a Option<String>,
}

/// The types a `kind`'s source rows are filtered by, in the order their
/// conditions are written.
fn type_filters(kind: TableKind, identity: &TableIdentity) -> Vec<TypeFilter<'_>> {
    let subject_type = |column| TypeFilter {
        column,
        table: "subject_type",
        uuid: &identity.subject_type_uuid,
    };
    let program = |column| TypeFilter {
        column,
        table: "program",
        uuid: &identity.program_uuid,
    };
    let encounter_type = |column| TypeFilter {
        column,
        table: "encounter_type",
        uuid: &identity.encounter_type_uuid,
    };
    match kind {
        TableKind::Subject => vec![subject_type("src.subject_type_id")],
        TableKind::ProgramEnrolment | TableKind::ProgramExit => {
            vec![program("src.program_id"), subject_type("i.subject_type_id")]
        }
        TableKind::ProgramEncounter | TableKind::ProgramEncounterCancel => vec![
            encounter_type("src.encounter_type_id"),
            program("en.program_id"),
            subject_type("i.subject_type_id"),
        ],
        TableKind::Encounter | TableKind::EncounterCancel => vec![
            encounter_type("src.encounter_type_id"),
            subject_type("i.subject_type_id"),
        ],
        TableKind::GroupToMember | TableKind::HouseholdToMember => {
            let [group, member] = avni_sources::SUBJECT_TYPE_COLUMNS;
            vec![
                subject_type(group),
                TypeFilter {
                    column: member,
                    table: "subject_type",
                    uuid: &identity.member_subject_type_uuid,
                },
            ]
        }
        TableKind::Address
        | TableKind::RepeatableQuestionGroup
        | TableKind::Users
        | TableKind::SyncTelemetry => vec![],
    }
}

/// The condition on a source row's change time: within (`lo`, `hi`].
fn window_condition(kind: TableKind, org: &str, lo: &str, hi: &str) -> String {
    if kind.is_avni_table() {
        avni_sources::window_condition(kind, org, lo, hi)
    } else if kind == TableKind::Address {
        // A level's row shows its ancestors' titles, so a changed level
        // brings its descendants along.
        format!(
            "src.id IN (WITH RECURSIVE changed AS ( \
                 SELECT id FROM public.address_level \
                 WHERE organisation_id = {org} AND last_modified_date_time > {lo} \
                   AND last_modified_date_time <= {hi} \
                 UNION SELECT c.id FROM public.address_level c JOIN changed p ON c.parent_id = p.id) \
             SELECT id FROM changed)"
        )
    } else {
        format!("src.last_modified_date_time > {lo} AND src.last_modified_date_time <= {hi}")
    }
}
