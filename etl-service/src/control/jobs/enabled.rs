//! Jobs: one per entity with analytics enabled, with its interval and the
//! time its next run is due; and the NOTIFY that wakes every scheduler.

use super::{JOB_COLUMNS, JobRow, WAKEUP_CHANNEL};
use crate::engine::entity::EntityRef;
use crate::error::Error;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Integer, Text, Uuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use service_kit::prepared::prepared;

/// Creates the entity's job (first run due now) or returns the existing one;
/// the flag says whether it was created. Wakes the schedulers.
pub async fn enable(
    conn: &mut AsyncPgConnection,
    entity: EntityRef,
    interval_seconds: i32,
) -> Result<(JobRow, bool), Error> {
    let created: Vec<JobRow> = diesel::sql_query(format!(
        "INSERT INTO etl_service.etl_job (entity_uuid, entity_type, interval_seconds, next_run_at) \
         VALUES ($1, $2, $3, now()) ON CONFLICT (entity_uuid, entity_type) DO NOTHING \
         RETURNING {JOB_COLUMNS}"
    ))
    .bind::<Uuid, _>(entity.uuid)
    .bind::<Text, _>(entity.kind.as_str())
    .bind::<Integer, _>(interval_seconds)
    .load(conn)
    .await?;
    if let Some(job) = created.into_iter().next() {
        notify(conn).await?;
        return Ok((job, true));
    }
    let job = find_job(conn, entity).await?.ok_or_else(|| {
        Error::FailedPrecondition(format!("{entity} was disabled while being enabled; retry"))
    })?;
    Ok((job, false))
}

/// Removes the entity's job; true if there was one. Runs in progress finish;
/// queued scheduled runs are cancelled.
pub async fn disable(conn: &mut AsyncPgConnection, entity: EntityRef) -> Result<bool, Error> {
    let removed = diesel::sql_query(
        "DELETE FROM etl_service.etl_job WHERE entity_uuid = $1 AND entity_type = $2",
    )
    .bind::<Uuid, _>(entity.uuid)
    .bind::<Text, _>(entity.kind.as_str())
    .execute(conn)
    .await?;
    diesel::sql_query(
        "UPDATE etl_service.etl_run SET status = 'cancelled', finished_at = now(), \
                error = 'cancelled: analytics was disabled before the run started' \
          WHERE entity_uuid = $1 AND entity_type = $2 AND status = 'queued' AND trigger = 'schedule'",
    )
    .bind::<Uuid, _>(entity.uuid)
    .bind::<Text, _>(entity.kind.as_str())
    .execute(conn)
    .await?;
    Ok(removed > 0)
}

pub async fn find_job(
    mut conn: &AsyncPgConnection,
    entity: EntityRef,
) -> Result<Option<JobRow>, Error> {
    let rows: Vec<JobRow> = prepared(concat!(
        "SELECT ",
        job_columns!(),
        " FROM etl_service.etl_job WHERE entity_uuid = $1 AND entity_type = $2"
    ))
    .bind_uuid(entity.uuid)
    .bind_text(entity.kind.as_str())
    .load(&mut conn)
    .await?;
    Ok(rows.into_iter().next())
}

/// Every enabled job, oldest first.
pub async fn all_jobs(conn: &mut AsyncPgConnection) -> Result<Vec<JobRow>, Error> {
    Ok(diesel::sql_query(format!(
        "SELECT {JOB_COLUMNS} FROM etl_service.etl_job ORDER BY id"
    ))
    .load(conn)
    .await?)
}

/// A page of the enabled jobs, in the order they were enabled: at most
/// `limit`, those with an id above `after`.
pub async fn jobs_page(
    conn: &mut AsyncPgConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<JobRow>, Error> {
    Ok(diesel::sql_query(format!(
        "SELECT {JOB_COLUMNS} FROM etl_service.etl_job WHERE id > $1 ORDER BY id LIMIT $2"
    ))
    .bind::<BigInt, _>(after)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}

/// Enabled jobs and queued runs, for the scheduler's gauges.
pub async fn counts(conn: &mut AsyncPgConnection) -> Result<(i64, i64), Error> {
    #[derive(QueryableByName)]
    struct Counts {
        #[diesel(sql_type = BigInt)]
        enabled: i64,
        #[diesel(sql_type = BigInt)]
        queued: i64,
    }
    let c: Counts = diesel::sql_query(
        "SELECT (SELECT count(*) FROM etl_service.etl_job) AS enabled, \
                (SELECT count(*) FROM etl_service.etl_run WHERE status = 'queued') AS queued",
    )
    .get_result(conn)
    .await?;
    Ok((c.enabled, c.queued))
}

/// Wakes every replica's scheduler.
pub async fn notify(conn: &mut AsyncPgConnection) -> Result<(), Error> {
    diesel::sql_query(format!("NOTIFY {WAKEUP_CHANNEL}"))
        .execute(conn)
        .await?;
    Ok(())
}
