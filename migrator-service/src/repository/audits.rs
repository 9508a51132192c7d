//! Reading the bookkeeping back: batch audits and failed submissions, page
//! by page (newest first, keyed on id so pages stay stable while batches
//! commit), and a source's totals.

use crate::error::Error;
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use service_kit::prepared::prepared;

/// A `migration_audit` row.
#[derive(Debug, Clone, QueryableByName)]
pub struct AuditRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub source: String,
    #[diesel(sql_type = BigInt)]
    pub last_polled_timestamp: i64,
    #[diesel(sql_type = Integer)]
    pub total_no_of_form_entries: i32,
    #[diesel(sql_type = Integer)]
    pub successfully_processed_form_entries: i32,
    #[diesel(sql_type = Integer)]
    pub duplicate_form_entries: i32,
    #[diesel(sql_type = Integer)]
    pub failed_form_entries: i32,
    #[diesel(sql_type = Timestamptz)]
    pub created_timestamp: DateTime<Utc>,
}

/// An `error_audit` row.
#[derive(Debug, Clone, QueryableByName)]
pub struct ErrorRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub source: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub instance_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub form_name: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub server_version: Option<i64>,
    #[diesel(sql_type = Text)]
    pub failure_reason: String,
    #[diesel(sql_type = Text)]
    pub detailed_reason: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub raw_payload: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub created_timestamp: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub resolved_at: Option<DateTime<Utc>>,
}

/// One page request: rows with an id below `before_id`, at most `limit`.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// The columns of [`AuditRow`], as a literal for `concat!`.
macro_rules! audit_columns {
    () => {
        "id, source, last_polled_timestamp, total_no_of_form_entries, \
         successfully_processed_form_entries, duplicate_form_entries, failed_form_entries, \
         created_timestamp"
    };
}

/// Batch audits, newest first; `limit + 1` rows are read to know whether
/// another page follows.
pub async fn list_audits(
    mut conn: &AsyncPgConnection,
    source: Option<&str>,
    page: Page,
) -> Result<Vec<AuditRow>, Error> {
    Ok(diesel::sql_query(concat!(
        "SELECT ",
        audit_columns!(),
        " FROM migration_audit \
         WHERE ($1::text IS NULL OR source = $1) AND ($2::int8 IS NULL OR id < $2) \
         ORDER BY id DESC LIMIT $3"
    ))
    .bind::<Nullable<Text>, _>(source)
    .bind::<Nullable<BigInt>, _>(page.before_id)
    .bind::<BigInt, _>(page.limit + 1)
    .load(&mut conn)
    .await?)
}

/// Failed submissions, newest first.
pub async fn list_errors(
    conn: &mut AsyncPgConnection,
    source: Option<&str>,
    form_name: Option<&str>,
    include_resolved: bool,
    include_payload: bool,
    page: Page,
) -> Result<Vec<ErrorRow>, Error> {
    Ok(diesel::sql_query(
        "SELECT id, source, instance_id, form_name, server_version, failure_reason, \
         detailed_reason, CASE WHEN $4 THEN raw_payload END AS raw_payload, \
         created_timestamp, resolved_at FROM error_audit \
         WHERE ($1::text IS NULL OR source = $1) AND ($2::text IS NULL OR form_name = $2) \
           AND ($3 OR resolved_at IS NULL) AND ($5::int8 IS NULL OR id < $5) \
         ORDER BY id DESC LIMIT $6",
    )
    .bind::<Nullable<Text>, _>(source)
    .bind::<Nullable<Text>, _>(form_name)
    .bind::<Bool, _>(include_resolved)
    .bind::<Bool, _>(include_payload)
    .bind::<Nullable<BigInt>, _>(page.before_id)
    .bind::<BigInt, _>(page.limit + 1)
    .load(conn)
    .await?)
}

#[derive(QueryableByName)]
struct TotalsRow {
    #[diesel(sql_type = BigInt)]
    written: i64,
    #[diesel(sql_type = BigInt)]
    failed: i64,
    #[diesel(sql_type = BigInt)]
    unresolved: i64,
    #[diesel(sql_type = BigInt)]
    unmapped_fields: i64,
}

/// A source's totals and last batch.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Written by batches plus resolved by ReprocessErrors.
    pub written: i64,
    pub failed: i64,
    pub unresolved: i64,
    /// Unresolved `unmapped_field` rows of the source.
    pub unmapped_fields: i64,
    pub last_batch: Option<AuditRow>,
}

pub async fn totals(mut conn: &AsyncPgConnection, source: &str) -> Result<Totals, Error> {
    // Both reads pipelined on the connection (one round trip), and both
    // prepared: GetStatus makes them on every call. The sums are running
    // totals kept by triggers with the audit rows (migration
    // 2026-11-25-000001_source_totals): one row, however many batches.
    let sums = prepared(
        "SELECT COALESCE(max(processed + resolved), 0)::int8 AS written, \
                COALESCE(max(failed), 0)::int8 AS failed, \
                COALESCE(max(failed - resolved), 0)::int8 AS unresolved, \
                (SELECT count(*) FROM unmapped_field u \
                  WHERE u.source = $1 AND u.resolved_at IS NULL)::int8 AS unmapped_fields \
         FROM source_totals WHERE source = $1",
    )
    .bind_text(source)
    .get_result::<TotalsRow>(&mut conn);
    let last = prepared(concat!(
        "SELECT ",
        audit_columns!(),
        " FROM migration_audit WHERE source = $1 ORDER BY id DESC LIMIT 1"
    ))
    .bind_text(source)
    .load::<AuditRow>(&mut conn);
    let (row, last) = tokio::try_join!(sums, last)?;
    Ok(Totals {
        written: row.written,
        failed: row.failed,
        unresolved: row.unresolved,
        unmapped_fields: row.unmapped_fields,
        last_batch: last.into_iter().next(),
    })
}
