//! What a reporting schema holds that the reports read: its users and
//! sync tables, and its subject, enrolment and visit tables with how each
//! names the user who last modified a row.

use crate::engine::schema::layout::TableKind;
use crate::error::Error;
use diesel::QueryableByName;
use diesel::sql_types::{Array, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// Where the reports look in one schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportTables {
    pub schema: String,
    /// The subject, enrolment, program encounter and general encounter
    /// tables, in the metadata's order.
    pub activity: Vec<ActivityTable>,
}

/// A table whose rows count as a user's work.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityTable {
    pub name: String,
    pub kind: TableKind,
    /// The service's tables name the user (`last_modified_by`, a username);
    /// avni-etl's, taken over, by id (`last_modified_by_id`).
    pub by: LastModifiedBy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastModifiedBy {
    Username,
    UserId,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    type_: String,
    #[diesel(sql_type = Array<Text>)]
    columns: Vec<String>,
}

/// The schema's tables the reports read. FAILED_PRECONDITION when it has no
/// `users` and `sync_telemetry` tables yet (no run has built it).
pub async fn read(conn: &mut AsyncPgConnection, schema: &str) -> Result<ReportTables, Error> {
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT t.name, coalesce(t.type, '') AS type_, cols.names AS columns \
         FROM public.table_metadata t \
         LEFT JOIN etl_service.table_metadata_ext x ON x.table_metadata_id = t.id \
         CROSS JOIN LATERAL ( \
             SELECT coalesce(array_agg(a.attname::text), '{}') AS names \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = t.schema_name AND c.relname = t.name \
               AND a.attnum > 0 AND NOT a.attisdropped) cols \
         WHERE t.schema_name = $1 AND NOT coalesce(x.is_voided, false) \
           AND cardinality(cols.names) > 0 \
         ORDER BY t.id",
    )
    .bind::<Text, _>(schema)
    .load(conn)
    .await?;
    for needed in ["users", "sync_telemetry"] {
        if !rows.iter().any(|r| r.name == needed) {
            return Err(Error::FailedPrecondition(format!(
                "the reporting schema {schema} has no {needed} table yet: \
                 enable analytics (or RunNow) and wait for its first run"
            )));
        }
    }
    Ok(ReportTables {
        schema: schema.to_string(),
        activity: rows.iter().filter_map(activity_table).collect(),
    })
}

/// A table of the kinds the activity counts, with the kind's date column
/// and a column naming its user.
fn activity_table(row: &Row) -> Option<ActivityTable> {
    let kind = TableKind::from_metadata_type(&row.type_)?;
    // avni-etl stores `User` for both its users table and a User subject
    // type's table.
    if row.name == "users" {
        return None;
    }
    let has = |column: &str| row.columns.iter().any(|c| c == column);
    if !has(date_column(kind)?) {
        return None;
    }
    let by = if has("last_modified_by") {
        LastModifiedBy::Username
    } else if has("last_modified_by_id") {
        LastModifiedBy::UserId
    } else {
        return None;
    };
    Some(ActivityTable {
        name: row.name.clone(),
        kind,
        by,
    })
}

/// The date a row of this kind counts on (avni-etl's choice); none for
/// the kinds the activity does not count.
pub fn date_column(kind: TableKind) -> Option<&'static str> {
    match kind {
        TableKind::Subject => Some("registration_date"),
        TableKind::ProgramEnrolment => Some("enrolment_date_time"),
        TableKind::ProgramEncounter | TableKind::Encounter => Some("encounter_date_time"),
        _ => None,
    }
}
