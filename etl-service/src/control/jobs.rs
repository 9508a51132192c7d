//! The scheduler's state in PostgreSQL: jobs (one per enabled entity), runs
//! (the history, and the queue: a run is `queued`, then `running` under a
//! replica's lease, then finished), and runs' progress events.
//!
//! Everything here is plain SQL over the pool, so several replicas share it
//! safely: claims use `FOR UPDATE SKIP LOCKED`, and a partial unique index
//! allows at most one queued or running run per entity.

use crate::engine::entity::{EntityKind, EntityRef};
use crate::error::Error;
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use service_kit::prepared::prepared;

/// Channel replicas LISTEN on; a NOTIFY wakes their scheduler at once.
pub const WAKEUP_CHANNEL: &str = "etl_scheduler_wakeup";

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    RunNow,
    Recreate,
    CommandLine,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::RunNow => "run_now",
            Trigger::Recreate => "recreate",
            Trigger::CommandLine => "command_line",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "schedule" => Trigger::Schedule,
            "run_now" => Trigger::RunNow,
            "recreate" => Trigger::Recreate,
            "command_line" => Trigger::CommandLine,
            _ => return None,
        })
    }
}

/// A run's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => RunStatus::Queued,
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

/// An `etl_job` row.
#[derive(Debug, Clone, QueryableByName)]
pub struct JobRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Uuid)]
    pub entity_uuid: uuid::Uuid,
    #[diesel(sql_type = Text)]
    pub entity_type: String,
    #[diesel(sql_type = Integer)]
    pub interval_seconds: i32,
    #[diesel(sql_type = Timestamptz)]
    pub next_run_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub enabled_at: DateTime<Utc>,
}

impl JobRow {
    pub fn entity(&self) -> Result<EntityRef, Error> {
        entity_of(self.entity_uuid, &self.entity_type)
    }
}

/// Per-table outcome of a run, stored in `etl_run.table_results`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableOutcome {
    pub table_name: String,
    /// `created`, `altered` or `unchanged`.
    pub change: String,
    pub rows_upserted: i64,
    pub rows_deleted: i64,
    pub duration_ms: i64,
}

/// An `etl_run` row.
#[derive(Debug, Clone, QueryableByName)]
pub struct RunRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Uuid)]
    pub entity_uuid: uuid::Uuid,
    #[diesel(sql_type = Text)]
    pub entity_type: String,
    #[diesel(sql_type = Text)]
    pub trigger: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Timestamptz)]
    pub queued_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub started_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub finished_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub worker: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub error: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub error_detail: Option<String>,
    #[diesel(sql_type = Integer)]
    pub tables_total: i32,
    #[diesel(sql_type = Integer)]
    pub tables_done: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub current_table: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub rows_upserted: i64,
    #[diesel(sql_type = BigInt)]
    pub rows_deleted: i64,
    #[diesel(sql_type = Jsonb)]
    pub table_results: serde_json::Value,
}

impl RunRow {
    pub fn entity(&self) -> Result<EntityRef, Error> {
        entity_of(self.entity_uuid, &self.entity_type)
    }

    pub fn status(&self) -> RunStatus {
        RunStatus::parse(&self.status).unwrap_or(RunStatus::Failed)
    }

    pub fn tables(&self) -> Vec<TableOutcome> {
        serde_json::from_value(self.table_results.clone()).unwrap_or_default()
    }
}

/// An `etl_run_event` row.
#[derive(Debug, Clone, QueryableByName)]
pub struct RunEventRow {
    #[diesel(sql_type = BigInt)]
    pub run_id: i64,
    #[diesel(sql_type = Integer)]
    pub seq: i32,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Timestamptz)]
    pub event_time: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    pub table_name: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub rows_upserted: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub message: Option<String>,
}

fn entity_of(uuid: uuid::Uuid, kind: &str) -> Result<EntityRef, Error> {
    let kind = EntityKind::parse(kind).ok_or_else(|| {
        Error::FailedPrecondition(format!("unknown entity type {kind:?} in the job tables"))
    })?;
    Ok(EntityRef { uuid, kind })
}

/// The columns of [`RunRow`], as a literal for `concat!` (the polled reads
/// are [`prepared`]: their text must be constant).
macro_rules! run_columns {
    () => {
        "id, entity_uuid, entity_type, trigger, status, queued_at, started_at, \
         finished_at, worker, error, error_detail, tables_total, tables_done, current_table, \
         rows_upserted, rows_deleted, table_results"
    };
}

/// The columns of [`JobRow`], as a literal for `concat!`.
macro_rules! job_columns {
    () => {
        "id, entity_uuid, entity_type, interval_seconds, next_run_at, enabled_at"
    };
}

const RUN_COLUMNS: &str = run_columns!();

const JOB_COLUMNS: &str = job_columns!();

/// Creates the entity's job (first run due now) or returns the existing one;
/// the flag says whether it was created. Wakes the schedulers.
pub async fn enable(
    conn: &mut AsyncPgConnection,
    entity: EntityRef,
    interval_seconds: i32,
) -> Result<(JobRow, bool), Error> {
    let created: Vec<JobRow> = diesel::sql_query(format!(
        "INSERT INTO etl_job (entity_uuid, entity_type, interval_seconds, next_run_at) \
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
    let removed =
        diesel::sql_query("DELETE FROM etl_job WHERE entity_uuid = $1 AND entity_type = $2")
            .bind::<Uuid, _>(entity.uuid)
            .bind::<Text, _>(entity.kind.as_str())
            .execute(conn)
            .await?;
    diesel::sql_query(
        "UPDATE etl_run SET status = 'cancelled', finished_at = now(), \
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
        " FROM etl_job WHERE entity_uuid = $1 AND entity_type = $2"
    ))
    .bind_uuid(entity.uuid)
    .bind_text(entity.kind.as_str())
    .load(&mut conn)
    .await?;
    Ok(rows.into_iter().next())
}

/// Every enabled job, oldest first.
pub async fn all_jobs(conn: &mut AsyncPgConnection) -> Result<Vec<JobRow>, Error> {
    Ok(
        diesel::sql_query(format!("SELECT {JOB_COLUMNS} FROM etl_job ORDER BY id"))
            .load(conn)
            .await?,
    )
}

/// Queues a run of the entity unless one is already queued or running; the
/// flag says whether the returned run already existed. Wakes the schedulers.
pub async fn queue_run(
    conn: &mut AsyncPgConnection,
    entity: EntityRef,
    trigger: Trigger,
) -> Result<(RunRow, bool), Error> {
    // The partial unique index decides races between replicas and callers.
    let inserted: Vec<RunRow> = diesel::sql_query(format!(
        "INSERT INTO etl_run (entity_uuid, entity_type, trigger, status) VALUES ($1, $2, $3, 'queued') \
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

/// The entity's queued or running run, if any.
pub async fn active_run(
    mut conn: &AsyncPgConnection,
    entity: EntityRef,
) -> Result<Option<RunRow>, Error> {
    let rows: Vec<RunRow> = prepared(concat!(
        "SELECT ",
        run_columns!(),
        " FROM etl_run WHERE entity_uuid = $1 AND entity_type = $2 \
         AND status IN ('queued', 'running')"
    ))
    .bind_uuid(entity.uuid)
    .bind_text(entity.kind.as_str())
    .load(&mut conn)
    .await?;
    Ok(rows.into_iter().next())
}

/// The entity's newest finished run, if any.
pub async fn last_finished_run(
    mut conn: &AsyncPgConnection,
    entity: EntityRef,
) -> Result<Option<RunRow>, Error> {
    let rows: Vec<RunRow> = prepared(concat!(
        "SELECT ",
        run_columns!(),
        " FROM etl_run WHERE entity_uuid = $1 AND entity_type = $2 \
         AND finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC LIMIT 1"
    ))
    .bind_uuid(entity.uuid)
    .bind_text(entity.kind.as_str())
    .load(&mut conn)
    .await?;
    Ok(rows.into_iter().next())
}

pub async fn find_run(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<RunRow>, Error> {
    let rows: Vec<RunRow> =
        diesel::sql_query(format!("SELECT {RUN_COLUMNS} FROM etl_run WHERE id = $1"))
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
        "SELECT {RUN_COLUMNS} FROM etl_run \
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
             SELECT id, entity_uuid, entity_type FROM etl_job \
              WHERE next_run_at <= now() ORDER BY next_run_at \
              FOR UPDATE SKIP LOCKED LIMIT 500 \
         ), moved AS ( \
             UPDATE etl_job j SET next_run_at = now() + make_interval(secs => j.interval_seconds) \
               FROM due WHERE j.id = due.id \
         ) \
         INSERT INTO etl_run (entity_uuid, entity_type, trigger, status) \
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
        "UPDATE etl_run SET status = 'running', worker = $1, \
                lease_expires_at = now() + make_interval(secs => $3) \
          WHERE id IN (SELECT id FROM etl_run WHERE status = 'queued' \
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
    diesel::sql_query("UPDATE etl_run SET started_at = clock_timestamp() WHERE id = $1")
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
        "UPDATE etl_run SET lease_expires_at = now() + make_interval(secs => $3) \
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
            "UPDATE etl_run SET status = 'failed', finished_at = now(), current_table = NULL, \
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
        "UPDATE etl_run SET tables_total = $2, tables_done = $3, current_table = $4, \
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
            "UPDATE etl_run SET status = $3, finished_at = clock_timestamp(), error = $4, \
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
        "INSERT INTO etl_run (entity_uuid, entity_type, trigger, status, queued_at, started_at, \
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

/// Appends a progress event with the next sequence number of its run.
pub async fn append_event(
    conn: &mut AsyncPgConnection,
    run_id: i64,
    kind: &str,
    table_name: Option<&str>,
    rows_upserted: i64,
    message: Option<&str>,
) -> Result<(), Error> {
    diesel::sql_query(
        "INSERT INTO etl_run_event (run_id, seq, kind, table_name, rows_upserted, message) \
         SELECT $1, coalesce(max(seq), 0) + 1, $2, $3, $4, $5 FROM etl_run_event WHERE run_id = $1",
    )
    .bind::<BigInt, _>(run_id)
    .bind::<Text, _>(kind)
    .bind::<Nullable<Text>, _>(table_name)
    .bind::<BigInt, _>(rows_upserted)
    .bind::<Nullable<Text>, _>(message)
    .execute(conn)
    .await?;
    Ok(())
}

/// Events of a run after sequence number `after`, in order.
pub async fn events_after(
    conn: &mut AsyncPgConnection,
    run_id: i64,
    after: i32,
) -> Result<Vec<RunEventRow>, Error> {
    Ok(diesel::sql_query(
        "SELECT run_id, seq, kind, event_time, table_name, rows_upserted, message \
           FROM etl_run_event WHERE run_id = $1 AND seq > $2 ORDER BY seq",
    )
    .bind::<BigInt, _>(run_id)
    .bind::<Integer, _>(after)
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
        "SELECT (SELECT count(*) FROM etl_job) AS enabled, \
                (SELECT count(*) FROM etl_run WHERE status = 'queued') AS queued",
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
