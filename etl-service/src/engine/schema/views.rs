//! The reporting views (design/etl.md §2), rebuilt from the plan in every
//! run's schema transaction: each is a `UNION ALL` over the schema's live
//! tables of its kinds, so a dashboard can list every subject, enrolment or
//! visit without knowing which tables the organisation's forms made. A
//! schema with no such table still has every view, returning no rows.
//!
//! Columns, in order (the `*_name` columns are the names the organisation
//! shows; a column a table does not have is NULL):
//!
//! - `subject_view` (subject tables): `subject_type_name`,
//!   `subject_type_uuid`, `reporting_table`, `id`, `uuid`, `first_name`,
//!   `middle_name`, `last_name`, `date_of_birth`, `gender`,
//!   `registration_date`, `address_id`, then the audit columns.
//! - `enrolment_view` (program enrolment tables): `subject_type_name`,
//!   `subject_type_uuid`, `program_name`, `program_uuid`,
//!   `reporting_table`, `id`, `uuid`, `individual_id`,
//!   `enrolment_date_time`, `program_exit_date_time`, then the audit
//!   columns.
//! - `completed_visits_view`, `due_visits_view`, `overdue_visits_view`
//!   (program encounter and general encounter tables):
//!   `subject_type_name`, `subject_type_uuid`, `program_name`,
//!   `program_uuid` (NULL for a general encounter), `encounter_type_name`,
//!   `encounter_type_uuid`, `reporting_table`, `id`, `uuid`, `name`,
//!   `individual_id`, `program_enrolment_id`, `earliest_visit_date_time`,
//!   `max_visit_date_time`, `encounter_date_time`, `cancel_date_time`, then
//!   the audit columns.
//!
//! The audit columns are `is_voided`, `organisation_id`, `created_by`,
//! `last_modified_by`, `created_date_time`, `last_modified_date_time`.
//! `reporting_table` names the table the row is in, to join its question
//! columns.
//!
//! The subject and enrolment views show voided rows too (`is_voided` says
//! which). A visit view shows only rows that are not voided, since a voided
//! visit is neither completed nor due: completed = `encounter_date_time` set
//! and not cancelled; due = scheduled (`earliest_visit_date_time` set), not
//! completed, not cancelled and not past `max_visit_date_time`; overdue =
//! past `max_visit_date_time`, not completed, not cancelled. "Now" is the
//! time of the query, not of the run.
//!
//! A view is dropped and created again only when its definition changed
//! (a hash of it is kept in the view's comment), so a run with no schema
//! change does not wait for the exclusive lock behind dashboards' queries.

use crate::engine::schema::layout::{ColumnType, TableKind};
use crate::engine::schema::naming;
use crate::engine::schema::plan::{PlannedTable, SchemaPlan};
use crate::error::Error;
use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use service_kit::sql::{quote_ident, quote_literal, quote_qualified};
use std::collections::HashMap;

/// The views' names: no table may have one of them.
pub const VIEW_NAMES: [&str; 5] = [
    "subject_view",
    "enrolment_view",
    "completed_visits_view",
    "due_visits_view",
    "overdue_visits_view",
];

/// Bumped when the views' shape changes in a way their text does not show.
const VERSION: &str = "1";

/// Where a view column's value comes from in each table.
#[derive(Clone, Copy)]
enum Source {
    /// The table's column of this name, or NULL if it has none.
    Column,
    SubjectTypeName,
    SubjectTypeUuid,
    ProgramName,
    ProgramUuid,
    EncounterTypeName,
    EncounterTypeUuid,
    ReportingTable,
}

type ViewColumn = (&'static str, ColumnType, Source);

const AUDIT: [ViewColumn; 6] = [
    ("is_voided", ColumnType::Boolean, Source::Column),
    ("organisation_id", ColumnType::Integer, Source::Column),
    ("created_by", ColumnType::Text, Source::Column),
    ("last_modified_by", ColumnType::Text, Source::Column),
    ("created_date_time", ColumnType::Timestamptz, Source::Column),
    (
        "last_modified_date_time",
        ColumnType::Timestamptz,
        Source::Column,
    ),
];

/// The subject type of the row's table, which every view starts with.
const SUBJECT_TYPE: [ViewColumn; 2] = [
    (
        "subject_type_name",
        ColumnType::Text,
        Source::SubjectTypeName,
    ),
    (
        "subject_type_uuid",
        ColumnType::Text,
        Source::SubjectTypeUuid,
    ),
];

/// The program of the row's table (NULL for a general encounter).
const PROGRAM: [ViewColumn; 2] = [
    ("program_name", ColumnType::Text, Source::ProgramName),
    ("program_uuid", ColumnType::Text, Source::ProgramUuid),
];

/// The table the row is in and the row's own id and uuid, after the
/// entities the table is for.
const ROW: [ViewColumn; 3] = [
    ("reporting_table", ColumnType::Text, Source::ReportingTable),
    ("id", ColumnType::Bigint, Source::Column),
    ("uuid", ColumnType::Text, Source::Column),
];

fn subject_columns() -> Vec<ViewColumn> {
    use ColumnType::*;
    let own = [
        ("first_name", Text, Source::Column),
        ("middle_name", Text, Source::Column),
        ("last_name", Text, Source::Column),
        ("date_of_birth", Date, Source::Column),
        ("gender", Text, Source::Column),
        ("registration_date", Date, Source::Column),
        ("address_id", Bigint, Source::Column),
    ];
    [&SUBJECT_TYPE[..], &ROW, &own, &AUDIT].concat()
}

fn enrolment_columns() -> Vec<ViewColumn> {
    use ColumnType::*;
    let own = [
        ("individual_id", Bigint, Source::Column),
        ("enrolment_date_time", Timestamptz, Source::Column),
        ("program_exit_date_time", Timestamptz, Source::Column),
    ];
    [&SUBJECT_TYPE[..], &PROGRAM, &ROW, &own, &AUDIT].concat()
}

fn visit_columns() -> Vec<ViewColumn> {
    use ColumnType::*;
    let encounter_type = [
        ("encounter_type_name", Text, Source::EncounterTypeName),
        ("encounter_type_uuid", Text, Source::EncounterTypeUuid),
    ];
    let own = [
        ("name", Text, Source::Column),
        ("individual_id", Bigint, Source::Column),
        ("program_enrolment_id", Bigint, Source::Column),
        ("earliest_visit_date_time", Timestamptz, Source::Column),
        ("max_visit_date_time", Timestamptz, Source::Column),
        ("encounter_date_time", Timestamptz, Source::Column),
        ("cancel_date_time", Timestamptz, Source::Column),
    ];
    [
        &SUBJECT_TYPE[..],
        &PROGRAM,
        &encounter_type,
        &ROW,
        &own,
        &AUDIT,
    ]
    .concat()
}

const NOT_VOIDED: &str = "t.is_voided IS NOT TRUE";
const OPEN: &str = "t.encounter_date_time IS NULL AND t.cancel_date_time IS NULL";

/// One view: its name, the tables it spans, its columns and the condition
/// on their rows.
struct ViewSpec {
    name: &'static str,
    kinds: &'static [TableKind],
    columns: Vec<ViewColumn>,
    filter: Option<String>,
}

fn specs() -> Vec<ViewSpec> {
    const VISITS: &[TableKind] = &[TableKind::ProgramEncounter, TableKind::Encounter];
    vec![
        ViewSpec {
            name: "subject_view",
            kinds: &[TableKind::Subject],
            columns: subject_columns(),
            filter: None,
        },
        ViewSpec {
            name: "enrolment_view",
            kinds: &[TableKind::ProgramEnrolment],
            columns: enrolment_columns(),
            filter: None,
        },
        ViewSpec {
            name: "completed_visits_view",
            kinds: VISITS,
            columns: visit_columns(),
            filter: Some(format!(
                "{NOT_VOIDED} AND t.encounter_date_time IS NOT NULL AND t.cancel_date_time IS NULL"
            )),
        },
        ViewSpec {
            name: "due_visits_view",
            kinds: VISITS,
            columns: visit_columns(),
            filter: Some(format!(
                "{NOT_VOIDED} AND {OPEN} AND t.earliest_visit_date_time IS NOT NULL \
                 AND (t.max_visit_date_time IS NULL OR t.max_visit_date_time >= now())"
            )),
        },
        ViewSpec {
            name: "overdue_visits_view",
            kinds: VISITS,
            columns: visit_columns(),
            filter: Some(format!(
                "{NOT_VOIDED} AND {OPEN} AND t.max_visit_date_time < now()"
            )),
        },
    ]
}

fn literal(value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{}::text", quote_literal(v)),
        None => "NULL::text".to_string(),
    }
}

fn value(table: &PlannedTable, column: &ViewColumn) -> String {
    let (name, sql_type, source) = column;
    let meta = |v: &Option<String>| literal(v.as_deref());
    match source {
        Source::Column if table.fixed.iter().any(|f| f.name == *name) => {
            format!("t.{}", quote_ident(name))
        }
        Source::Column => format!("NULL::{}", sql_type.sql()),
        Source::SubjectTypeName => meta(&table.subject_type_name),
        Source::SubjectTypeUuid => meta(&table.identity.subject_type_uuid),
        Source::ProgramName => meta(&table.program_name),
        Source::ProgramUuid => meta(&table.identity.program_uuid),
        Source::EncounterTypeName => meta(&table.encounter_type_name),
        Source::EncounterTypeUuid => meta(&table.identity.encounter_type_uuid),
        Source::ReportingTable => literal(Some(&table.name)),
    }
}

/// The `SELECT` of one view over `plan`'s tables in `schema`.
fn definition(schema: &str, plan: &SchemaPlan, spec: &ViewSpec) -> String {
    let names: Vec<String> = spec
        .columns
        .iter()
        .map(|(name, _, _)| quote_ident(name))
        .collect();
    let branches: Vec<String> = plan
        .tables
        .iter()
        .filter(|t| spec.kinds.contains(&t.identity.kind))
        .map(|t| {
            let values: Vec<String> = spec
                .columns
                .iter()
                .zip(&names)
                .map(|(c, n)| format!("{} AS {n}", value(t, c)))
                .collect();
            let filter = spec
                .filter
                .as_ref()
                .map(|f| format!(" WHERE {f}"))
                .unwrap_or_default();
            format!(
                "SELECT {} FROM {} t{filter}",
                values.join(", "),
                quote_qualified(schema, &t.name)
            )
        })
        .collect();
    if branches.is_empty() {
        let nulls: Vec<String> = spec
            .columns
            .iter()
            .zip(&names)
            .map(|((_, sql_type, _), n)| format!("NULL::{} AS {n}", sql_type.sql()))
            .collect();
        return format!("SELECT {} WHERE false", nulls.join(", "));
    }
    branches.join(" UNION ALL ")
}

/// How this service's views are tagged (`COMMENT ON VIEW`): a relation
/// with one of [`VIEW_NAMES`] without it is an implementer's.
pub const TAG_PREFIX: &str = "etl-service view ";

/// A relation of the schema with one of the views' names.
#[derive(QueryableByName)]
struct Present {
    #[diesel(sql_type = Text)]
    name: String,
    /// `pg_class.relkind`.
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    comment: String,
    /// Whether another view (an implementer's) selects from it.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    depended_on: bool,
}

/// Creates each view of `schema` whose definition differs from the plan's
/// (or that is missing). Run inside the schema transaction, after the DDL.
/// Implementers' relations are never dropped: a view name one holds is
/// left to it, and a view of ours another view depends on is replaced in
/// place (`CREATE OR REPLACE`), or kept as it was when PostgreSQL cannot
/// replace it (a column of it removed or retyped).
pub async fn recreate(
    conn: &mut AsyncPgConnection,
    schema: &str,
    plan: &SchemaPlan,
) -> Result<(), Error> {
    let names: Vec<String> = VIEW_NAMES.iter().map(|v| v.to_string()).collect();
    let present: HashMap<String, Present> = diesel::sql_query(
        "SELECT c.relname::text AS name, c.relkind::text AS kind, \
                coalesce(obj_description(c.oid, 'pg_class'), '') AS comment, \
                EXISTS (SELECT 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid \
                        WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = c.oid \
                          AND r.ev_class <> c.oid) AS depended_on \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = ANY($2)",
    )
    .bind::<Text, _>(schema)
    .bind::<diesel::sql_types::Array<Text>, _>(&names)
    .load::<Present>(conn)
    .await?
    .into_iter()
    .map(|v| (v.name.clone(), v))
    .collect();
    for spec in specs() {
        let select = definition(schema, plan, &spec);
        let tag = format!("{TAG_PREFIX}v{VERSION} {}", naming::stable_hash(&select));
        let view = quote_qualified(schema, spec.name);
        let comment = format!("COMMENT ON VIEW {view} IS {}", quote_literal(&tag));
        match present.get(spec.name) {
            Some(p) if p.kind != "v" || !p.comment.starts_with(TAG_PREFIX) => {
                tracing::warn!(
                    schema,
                    view = spec.name,
                    "a relation the ETL did not make holds the view's name; the view is not made"
                );
            }
            Some(p) if p.comment == tag => {}
            Some(p) if p.depended_on => {
                replace_in_place(conn, schema, &view, &select, &comment).await?
            }
            _ => {
                for statement in [
                    format!("DROP VIEW IF EXISTS {view}"),
                    format!("CREATE VIEW {view} AS {select}"),
                    comment,
                ] {
                    diesel::sql_query(statement).execute(conn).await?;
                }
            }
        }
    }
    Ok(())
}

/// Replaces a view other views depend on without dropping it, in a
/// savepoint: when PostgreSQL refuses (the new definition removes, renames
/// or retypes one of its columns), the view stays as it was and the run
/// goes on.
async fn replace_in_place(
    conn: &mut AsyncPgConnection,
    schema: &str,
    view: &str,
    select: &str,
    comment: &str,
) -> Result<(), Error> {
    let replaced = conn
        .transaction::<_, Error, _>(async |conn| {
            diesel::sql_query(format!("CREATE OR REPLACE VIEW {view} AS {select}"))
                .execute(conn)
                .await?;
            diesel::sql_query(comment.to_string()).execute(conn).await?;
            Ok(())
        })
        .await;
    if let Err(e) = replaced {
        tracing::warn!(
            schema,
            view,
            error = %e,
            "other views depend on this view and it cannot be replaced in place; it is kept as it was"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_plan_gives_typed_empty_views() {
        for spec in specs() {
            let sql = definition("s", &SchemaPlan::default(), &spec);
            assert!(sql.ends_with("WHERE false"), "{sql}");
            assert!(sql.contains("NULL::bigint AS \"id\""), "{sql}");
        }
    }
}
