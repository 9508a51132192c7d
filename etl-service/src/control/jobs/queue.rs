//! The run queue: runs queued by RunNow or when due, claimed under a
//! replica's lease (`FOR UPDATE SKIP LOCKED`), kept alive, and failed when
//! their replica died.

use super::{RUN_COLUMNS, RunRow, Trigger, active_run, append_event, notify};
use crate::engine::entity::EntityRef;
use crate::error::Error;
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Integer, Text, Uuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

/// Queues a run of the entity unless one is already queued or running; the
/// flag says whether the returned run already existed. Wakes the schedulers.
pub async fn queue_run(
    conn: &mut AsyncPgConnection,
    entity: EntityRef,
    trigger: Trigger,
) -> Result<(RunRow, bool), Error> {
    // The partial unique index decides races between replicas and callers.
    let inserted: Vec<RunRow> = diesel::sql_query(format!(
        "INSERT INTO etl_service.etl_run (entity_uuid, entity_type, trigger, status) VALUES ($1, $2, $3, 'queued') \
         ON CONFLICT (entity_uuid, entity_type) WHERE status IN ('queued', 'running') DO NOTHING \
         RETURNING {RUN_COLUMNS}"
    ))
    .bind::<Uuid, _>(entity.uuid)
    .bind::<Text, _>(entity.kind.as_str())
    .bind::<Text, _>(trigger.as_str())
    .load(conn)
    .await?;
    if let Some(run) = inserted.into_iter().next() {
        append_event(conn, run.id, "run_queued", None, 0, Some("queued")).await?;
        notify(conn).await?;
        return Ok((run, false));
    }
    match active_run(conn, entity).await? {
        Some(run) => Ok((run, true)),
        // It finished between the two statements; queue again.
        None => Box::pin(queue_run(conn, entity, trigger)).await,
    }
}

/// Queues a scheduled run for every job that is due, and moves each job's
/// next run one interval past now: after downtime one run catches up instead
/// of every missed one being replayed. Returns how many runs were queued.
pub async fn queue_due_jobs(conn: &mut AsyncPgConnection) -> Result<usize, Error> {
    #[derive(QueryableByName)]
    struct Queued {
        #[diesel(sql_type = BigInt)]
        #[allow(dead_code)]
        id: i64,
    }
    let queued: Vec<Queued> = diesel::sql_query(
        "WITH due AS ( \
             SELECT id, entity_uuid, entity_type FROM etl_service.etl_job \
              WHERE next_run_at <= now() ORDER BY next_run_at \
              FOR UPDATE SKIP LOCKED LIMIT 500 \
         ), moved AS ( \
             UPDATE etl_service.etl_job j SET next_run_at = now() + make_interval(secs => j.interval_seconds) \
               FROM due WHERE j.id = due.id \
         ) \
         INSERT INTO etl_service.etl_run (entity_uuid, entity_type, trigger, status) \
         SELECT entity_uuid, entity_type, 'schedule', 'queued' FROM due \
         ON CONFLICT (entity_uuid, entity_type) WHERE status IN ('queued', 'running') DO NOTHING \
         RETURNING id",
    )
    .load(conn)
    .await?;
    for q in &queued {
        append_event(
            conn,
            q.id,
            "run_queued",
            None,
            0,
            Some("queued by the schedule"),
        )
        .await?;
    }
    Ok(queued.len())
}

/// Claims up to `limit` queued runs for `worker`, oldest first, with a lease
/// that the worker must keep renewing.
pub async fn claim_runs(
    conn: &mut AsyncPgConnection,
    worker: &str,
    limit: i64,
    lease_seconds: i32,
) -> Result<Vec<RunRow>, Error> {
    Ok(diesel::sql_query(format!(
        "UPDATE etl_service.etl_run SET status = 'running', worker = $1, \
                lease_expires_at = now() + make_interval(secs => $3) \
          WHERE id IN (SELECT id FROM etl_service.etl_run WHERE status = 'queued' \
                        ORDER BY queued_at, id FOR UPDATE SKIP LOCKED LIMIT $2) \
          RETURNING {RUN_COLUMNS}"
    ))
    .bind::<Text, _>(worker)
    .bind::<BigInt, _>(limit)
    .bind::<Integer, _>(lease_seconds)
    .load(conn)
    .await?)
}

/// Marks a claimed run as started (after it took the entity's lock).
pub async fn mark_started(conn: &mut AsyncPgConnection, run_id: i64) -> Result<(), Error> {
    diesel::sql_query(
        "UPDATE etl_service.etl_run SET started_at = clock_timestamp() WHERE id = $1",
    )
    .bind::<BigInt, _>(run_id)
    .execute(conn)
    .await?;
    append_event(conn, run_id, "run_started", None, 0, Some("started")).await
}

/// Renews the leases of the worker's running runs. Returns the ids of runs
/// the worker no longer holds (their lease expired and was reaped).
pub async fn renew_leases(
    conn: &mut AsyncPgConnection,
    worker: &str,
    run_ids: &[i64],
    lease_seconds: i32,
) -> Result<Vec<i64>, Error> {
    #[derive(QueryableByName)]
    struct Held {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let held: Vec<Held> = diesel::sql_query(
        "UPDATE etl_service.etl_run SET lease_expires_at = now() + make_interval(secs => $3) \
          WHERE worker = $1 AND status = 'running' AND id = ANY($2) RETURNING id",
    )
    .bind::<Text, _>(worker)
    .bind::<Array<BigInt>, _>(run_ids)
    .bind::<Integer, _>(lease_seconds)
    .load(conn)
    .await?;
    Ok(run_ids
        .iter()
        .copied()
        .filter(|id| !held.iter().any(|h| h.id == *id))
        .collect())
}

/// Fails every running run whose lease expired: its replica died or lost
/// PostgreSQL. Returns the ids reaped.
pub async fn reap_expired(conn: &mut AsyncPgConnection) -> Result<Vec<i64>, Error> {
    #[derive(QueryableByName)]
    struct Reaped {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    // The failure and its run_finished event commit together.
    conn.transaction::<_, Error, _>(async |conn| {
        let reaped: Vec<Reaped> = diesel::sql_query(
            "UPDATE etl_service.etl_run SET status = 'failed', finished_at = now(), current_table = NULL, \
                    error = 'the replica running it stopped (' || coalesce(worker, '?') || '): its lease expired', \
                    error_detail = 'lease expired at ' || lease_expires_at::text || '; tables already synced keep their rows, the others their previous state' \
              WHERE status = 'running' AND lease_expires_at < now() RETURNING id",
        )
        .load(conn)
        .await?;
        for r in &reaped {
            append_event(
                conn,
                r.id,
                "run_finished",
                None,
                0,
                Some("failed: lease expired"),
            )
            .await?;
        }
        Ok(reaped.into_iter().map(|r| r.id).collect())
    })
    .await
}
