//! A run's history: its live progress and its outcome, written by the
//! replica that runs it; read back by GetJob and ListJobRuns.

use super::{RUN_COLUMNS, RunRow, RunStatus, TableOutcome, Trigger, append_event};
use crate::engine::entity::EntityRef;
use crate::error::Error;
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use service_kit::prepared::prepared;

/// The entity's queued or running run, if any.
pub async fn active_run(
    conn: &AsyncPgConnection,
    entity: EntityRef,
) -> Result<Option<RunRow>, Error> {
    entity_run(
        conn,
        entity,
        concat!(
            "SELECT ",
            run_columns!(),
            " FROM etl_service.etl_run WHERE entity_uuid = $1 AND entity_type = $2 \
             AND status IN ('queued', 'running')"
        ),
    )
    .await
}

/// The entity's newest finished run, if any.
pub async fn last_finished_run(
    conn: &AsyncPgConnection,
    entity: EntityRef,
) -> Result<Option<RunRow>, Error> {
    entity_run(
        conn,
        entity,
        concat!(
            "SELECT ",
            run_columns!(),
            " FROM etl_service.etl_run WHERE entity_uuid = $1 AND entity_type = $2 \
             AND finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC LIMIT 1"
        ),
    )
    .await
}

/// The first run `sql` (constant, so kept prepared) finds for the entity,
/// bound as `$1` (uuid) and `$2` (type).
async fn entity_run(
    mut conn: &AsyncPgConnection,
    entity: EntityRef,
    sql: &'static str,
) -> Result<Option<RunRow>, Error> {
    let rows: Vec<RunRow> = prepared(sql)
        .bind_uuid(entity.uuid)
        .bind_text(entity.kind.as_str())
        .load(&mut conn)
        .await?;
    Ok(rows.into_iter().next())
}

pub async fn find_run(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<RunRow>, Error> {
    let rows: Vec<RunRow> = diesel::sql_query(format!(
        "SELECT {RUN_COLUMNS} FROM etl_service.etl_run WHERE id = $1"
    ))
    .bind::<BigInt, _>(id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next())
}

/// A page of history, newest first: runs with an id below `before` (all when
/// `None`), optionally of one entity.
pub async fn list_runs(
    conn: &mut AsyncPgConnection,
    entity: Option<EntityRef>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<RunRow>, Error> {
    let (uuid, kind) = match entity {
        Some(e) => (Some(e.uuid), Some(e.kind.as_str())),
        None => (None, None),
    };
    Ok(diesel::sql_query(format!(
        "SELECT {RUN_COLUMNS} FROM etl_service.etl_run \
          WHERE ($1::uuid IS NULL OR (entity_uuid = $1 AND entity_type = $2)) \
            AND ($3::bigint IS NULL OR id < $3) \
          ORDER BY id DESC LIMIT $4"
    ))
    .bind::<Nullable<Uuid>, _>(uuid)
    .bind::<Nullable<Text>, _>(kind)
    .bind::<Nullable<BigInt>, _>(before)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}

/// Records progress of a running run (for GetJob and watchers).
pub async fn record_progress(
    conn: &mut AsyncPgConnection,
    run_id: i64,
    tables_total: i32,
    tables_done: i32,
    current_table: Option<&str>,
    rows_upserted: i64,
    rows_deleted: i64,
) -> Result<(), Error> {
    diesel::sql_query(
        "UPDATE etl_service.etl_run SET tables_total = $2, tables_done = $3, current_table = $4, \
                rows_upserted = $5, rows_deleted = $6 WHERE id = $1",
    )
    .bind::<BigInt, _>(run_id)
    .bind::<Integer, _>(tables_total)
    .bind::<Integer, _>(tables_done)
    .bind::<Nullable<Text>, _>(current_table)
    .bind::<BigInt, _>(rows_upserted)
    .bind::<BigInt, _>(rows_deleted)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a run's outcome. Only the worker holding the run may finish it;
/// false when it no longer held it (reaped meanwhile). The outcome and its
/// `run_finished` event commit together, so a reader never sees a finished
/// run without its last event.
pub async fn finish_run(
    conn: &mut AsyncPgConnection,
    run_id: i64,
    worker: &str,
    status: RunStatus,
    error: Option<&str>,
    error_detail: Option<&str>,
    tables: &[TableOutcome],
) -> Result<bool, Error> {
    let results = serde_json::to_value(tables).unwrap_or_else(|_| serde_json::json!([]));
    let (upserted, deleted) = tables.iter().fold((0i64, 0i64), |(u, d), t| {
        (u + t.rows_upserted, d + t.rows_deleted)
    });
    conn.transaction::<_, Error, _>(async |conn| {
        let updated = diesel::sql_query(
            "UPDATE etl_service.etl_run SET status = $3, finished_at = clock_timestamp(), error = $4, \
                    error_detail = $5, table_results = $6, current_table = NULL, \
                    rows_upserted = GREATEST(rows_upserted, $7), rows_deleted = GREATEST(rows_deleted, $8), \
                    started_at = coalesce(started_at, clock_timestamp()) \
              WHERE id = $1 AND worker = $2 AND status = 'running'",
        )
        .bind::<BigInt, _>(run_id)
        .bind::<Text, _>(worker)
        .bind::<Text, _>(status.as_str())
        .bind::<Nullable<Text>, _>(error)
        .bind::<Nullable<Text>, _>(error_detail)
        .bind::<Jsonb, _>(results)
        .bind::<BigInt, _>(upserted)
        .bind::<BigInt, _>(deleted)
        .execute(conn)
        .await?;
        if updated > 0 {
            let message = match (status, error) {
                (RunStatus::Succeeded, _) => "succeeded".to_string(),
                (s, Some(e)) => format!("{}: {e}", s.as_str()),
                (s, None) => s.as_str().to_string(),
            };
            append_event(conn, run_id, "run_finished", None, upserted, Some(&message)).await?;
        }
        Ok(updated > 0)
    })
    .await
}

/// Records a run that happened outside the scheduler (`run-once`), so the
/// history shows every run of an entity, whatever started it.
#[allow(clippy::too_many_arguments)]
pub async fn record_finished_run(
    conn: &mut AsyncPgConnection,
    entity: EntityRef,
    trigger: Trigger,
    worker: &str,
    started_at: DateTime<Utc>,
    status: RunStatus,
    error: Option<&str>,
    error_detail: Option<&str>,
    tables: &[TableOutcome],
) -> Result<i64, Error> {
    #[derive(QueryableByName)]
    struct Inserted {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let results = serde_json::to_value(tables).unwrap_or_else(|_| serde_json::json!([]));
    let (upserted, deleted) = tables.iter().fold((0i64, 0i64), |(u, d), t| {
        (u + t.rows_upserted, d + t.rows_deleted)
    });
    let done = i32::try_from(tables.len()).unwrap_or(i32::MAX);
    let id = diesel::sql_query(
        "INSERT INTO etl_service.etl_run (entity_uuid, entity_type, trigger, status, queued_at, started_at, \
                finished_at, worker, error, error_detail, table_results, rows_upserted, rows_deleted, \
                tables_total, tables_done) \
         VALUES ($1, $2, $3, $4, $5, $5, clock_timestamp(), $6, $7, $8, $9, $10, $11, $12, $12) \
         RETURNING id",
    )
    .bind::<Uuid, _>(entity.uuid)
    .bind::<Text, _>(entity.kind.as_str())
    .bind::<Text, _>(trigger.as_str())
    .bind::<Text, _>(status.as_str())
    .bind::<Timestamptz, _>(started_at)
    .bind::<Text, _>(worker)
    .bind::<Nullable<Text>, _>(error)
    .bind::<Nullable<Text>, _>(error_detail)
    .bind::<Jsonb, _>(results)
    .bind::<BigInt, _>(upserted)
    .bind::<BigInt, _>(deleted)
    .bind::<Integer, _>(done)
    .get_result::<Inserted>(conn)
    .await?
    .id;
    append_event(
        conn,
        id,
        "run_finished",
        None,
        upserted,
        Some(status.as_str()),
    )
    .await?;
    Ok(id)
}
