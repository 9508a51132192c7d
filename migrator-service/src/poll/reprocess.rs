//! Reprocessing failed submissions (`ReprocessErrors`): each unresolved
//! `error_audit` row is decoded again from its raw payload and written with
//! a fresh catalog (a migration may since have added its form or column).

use crate::error::Error;
use crate::poll::submission::{Submission, decode};
use crate::repository::catalog::{Catalog, Naming, SharedCatalog};
use crate::repository::form_writer::{PreparedRow, prepare, write_rows};
use crate::repository::model::Failure;
use crate::repository::postgres::{database_detail, is_transient, pg_text};
use crate::repository::unmapped::UnmappedTally;
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use service_kit::db::Pool;

/// Which unresolved errors [`reprocess`] retries.
#[derive(Debug, Clone, Default)]
pub struct ReprocessFilter {
    pub source: Option<String>,
    pub form_name: Option<String>,
    pub ids: Vec<i64>,
    /// The sources whose `strict` is set: a field with no column fails
    /// their submissions again.
    pub strict_sources: Vec<String>,
}

/// What [`reprocess`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReprocessReport {
    pub attempted: usize,
    pub resolved_ids: Vec<i64>,
    pub still_failing: usize,
}

#[derive(QueryableByName)]
struct ErrorRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    source: String,
    #[diesel(sql_type = Text)]
    raw_payload: String,
}

/// Most errors one `ReprocessErrors` call retries; call again for more.
pub const REPROCESS_LIMIT: i64 = 10_000;

/// Retries unresolved failed submissions from their raw payload with a
/// fresh catalog; each one that now writes is resolved, each one that still
/// fails gets its reasons updated.
pub async fn reprocess(
    pool: &Pool,
    catalog: &SharedCatalog,
    filter: &ReprocessFilter,
) -> Result<ReprocessReport, Error> {
    let mut conn = pool.get().await?;
    let known = catalog.refresh(&mut conn).await?;
    let rows = unresolved(&mut conn, filter).await?;
    let mut report = ReprocessReport {
        attempted: rows.len(),
        ..ReprocessReport::default()
    };
    for row in rows {
        let strict = filter.strict_sources.contains(&row.source);
        match retry(&mut conn, &known, catalog.naming(), strict, &row).await? {
            Ok(()) => report.resolved_ids.push(row.id),
            Err(f) => {
                report.still_failing += 1;
                diesel::sql_query(
                    "UPDATE error_audit SET failure_reason = $2, detailed_reason = $3 WHERE id = $1",
                )
                .bind::<BigInt, _>(row.id)
                .bind::<Text, _>(pg_text(&f.reason))
                .bind::<Text, _>(pg_text(&f.detail))
                .execute(&mut conn)
                .await?;
            }
        }
    }
    Ok(report)
}

/// The unresolved errors `filter` selects, oldest first, at most
/// [`REPROCESS_LIMIT`].
async fn unresolved(
    conn: &mut AsyncPgConnection,
    filter: &ReprocessFilter,
) -> Result<Vec<ErrorRow>, Error> {
    Ok(diesel::sql_query(
        "SELECT id, source, raw_payload FROM error_audit \
         WHERE resolved_at IS NULL \
           AND ($1::text IS NULL OR source = $1) \
           AND ($2::text IS NULL OR form_name = $2) \
           AND (cardinality($3::int8[]) = 0 OR id = ANY($3)) \
         ORDER BY id LIMIT $4",
    )
    .bind::<Nullable<Text>, _>(filter.source.as_deref())
    .bind::<Nullable<Text>, _>(filter.form_name.as_deref())
    .bind::<Array<BigInt>, _>(&filter.ids)
    .bind::<BigInt, _>(REPROCESS_LIMIT)
    .load(conn)
    .await?)
}

/// One error's submission decoded, prepared and written again: the inner
/// `Err` is why it still fails; the outer one stops the whole reprocess
/// (the database, not the submission, failed).
async fn retry(
    conn: &mut AsyncPgConnection,
    known: &Catalog,
    naming: &Naming,
    strict: bool,
    row: &ErrorRow,
) -> Result<Result<(), Failure>, Error> {
    let sub = match decode(&row.raw_payload) {
        Err(f) => return Ok(Err(f)),
        Ok(sub) => sub,
    };
    let prepared = match prepare(&sub, known, naming, strict) {
        Err(f) => return Ok(Err(f)),
        Ok(prepared) => prepared,
    };
    match write_resolved(conn, known, row, &sub, &prepared).await {
        Ok(()) => Ok(Ok(())),
        Err(Error::Database(e)) if !is_transient(&e) => Ok(Err(Failure::new(
            format!("Could not write to {}", prepared.table),
            database_detail(&e),
        ))),
        Err(other) => Err(other),
    }
}

/// Writes a reprocessed submission (counting its fields with no column),
/// marks its archive row written and its error resolved, atomically.
async fn write_resolved(
    conn: &mut AsyncPgConnection,
    catalog: &Catalog,
    row: &ErrorRow,
    sub: &Submission,
    prepared: &PreparedRow,
) -> Result<(), Error> {
    let Some(table) = catalog.table(&prepared.table) else {
        return Err(Error::FailedPrecondition(format!(
            "table {} vanished from the catalog",
            prepared.table
        )));
    };
    conn.transaction(async |conn| {
        write_rows(conn, catalog, table, &[prepared]).await?;
        let mut unmapped = UnmappedTally::default();
        unmapped.add(sub, &prepared.unmapped);
        unmapped.insert(conn, &row.source).await?;
        diesel::sql_query(
            "INSERT INTO form_submission (source, instance_id, form_name, entity_id, anm_id, \
             client_version, server_version, payload, status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, 'written') \
             ON CONFLICT (instance_id) DO UPDATE SET status = 'written'",
        )
        .bind::<Text, _>(&row.source)
        .bind::<Text, _>(&sub.instance_id)
        .bind::<Text, _>(&sub.form_name)
        .bind::<Nullable<Text>, _>(sub.entity_id.as_deref())
        .bind::<Nullable<Text>, _>(sub.anm_id.as_deref())
        .bind::<Nullable<BigInt>, _>(sub.client_version)
        .bind::<BigInt, _>(sub.server_version)
        .bind::<Text, _>(&row.raw_payload)
        .execute(conn)
        .await?;
        diesel::sql_query("UPDATE error_audit SET resolved_at = now() WHERE id = $1")
            .bind::<BigInt, _>(row.id)
            .execute(conn)
            .await?;
        Ok::<(), Error>(())
    })
    .await
}
