//! What the control RPCs do, without gRPC: enable, disable, run now, job
//! status and history. Each checks the entity against the source tables, so
//! an unknown uuid is NOT_FOUND before anything is written.

use crate::control::jobs::{self, JobRow, RunRow, Trigger};
use crate::engine::entity::EntityRef;
use crate::engine::{self, EngineContext, LockMode};
use crate::error::Error;

use crate::engine::schema::plan::SchemaPlan;
use crate::engine::source::{self, Target};
use diesel_async::AsyncPgConnection;
use service_kit::db::Pool;

/// A job as callers see it: the entity, its schedule, its runs.
#[derive(Debug, Clone)]
pub struct JobView {
    pub entity: EntityRef,
    pub entity_name: String,
    pub schema_name: String,
    pub job: Option<JobRow>,
    pub interval_seconds: i64,
    pub last_run: Option<RunRow>,
    pub current_run: Option<RunRow>,
}

/// BatchGetJobs' answer: the jobs read, the entities that could not be
/// (with why), and where the next page of enabled jobs starts.
#[derive(Debug, Default)]
pub struct JobBatch {
    pub views: Vec<JobView>,
    pub errors: Vec<(EntityRef, Error)>,
    pub next_after: Option<i64>,
}

/// The control use cases over the pool.
#[derive(Clone)]
pub struct Control {
    pool: Pool,
    engine: EngineContext,
    interval_seconds: i32,
    recreate_lock_wait: Option<std::time::Duration>,
}

/// What RecreateSchema did.
#[derive(Debug, Clone)]
pub struct Recreated {
    pub schema_name: String,
    pub tables_dropped: i64,
    pub rebuild: Option<RunRow>,
}

impl Control {
    pub fn new(engine: EngineContext, interval: std::time::Duration) -> Self {
        Self {
            pool: engine.pool.clone(),
            engine,
            interval_seconds: interval.as_secs().clamp(1, i32::MAX as u64) as i32,
            recreate_lock_wait: None,
        }
    }

    /// RecreateSchema waits at most `limit` for the entity's lock (`None`:
    /// no limit), then fails with ABORTED.
    pub fn with_recreate_lock_wait(mut self, limit: Option<std::time::Duration>) -> Self {
        self.recreate_lock_wait = limit;
        self
    }

    /// RecreateSchema: waits for the entity's lock (a run in progress
    /// finishes first), drops its schema, its metadata and its sync status
    /// in one transaction, then, unless `skip_rebuild`, queues a run that
    /// rebuilds everything.
    pub async fn recreate(
        &self,
        entity: EntityRef,
        skip_rebuild: bool,
    ) -> Result<Recreated, Error> {
        let dropped = engine::drop_schema_within(
            &self.engine,
            entity,
            LockMode::Wait,
            self.recreate_lock_wait,
        )
        .await?;
        tracing::info!(
            entity = %entity,
            schema = %dropped.schema_name,
            tables_dropped = dropped.tables_dropped,
            "reporting schema dropped"
        );
        let rebuild = if skip_rebuild {
            None
        } else {
            Some(self.queue_rebuild(entity).await?)
        };
        Ok(Recreated {
            schema_name: dropped.schema_name,
            tables_dropped: i64::try_from(dropped.tables_dropped).unwrap_or(i64::MAX),
            rebuild,
        })
    }

    /// Queues the run that rebuilds a dropped schema. A run that held the
    /// entity's lock until the drop took it is still recorded as running
    /// until it has written its outcome, and queueing would return that run,
    /// which worked on the schema before the drop and rebuilds nothing. So
    /// while the active run is a running one, wait for it to be recorded and
    /// queue again (a queued one starts after the drop and does rebuild).
    async fn queue_rebuild(&self, entity: EntityRef) -> Result<RunRow, Error> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let (run, existing) = {
                let mut conn = self.pool.get().await?;
                jobs::queue_run(&mut conn, entity, Trigger::Recreate).await?
            };
            let finishing = existing && run.status == jobs::RunStatus::Running.as_str();
            if !finishing || std::time::Instant::now() > deadline {
                return Ok(run);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The plan a run would apply now, for ValidateNames.
    pub async fn plan(&self, entity: EntityRef) -> Result<(Target, SchemaPlan), Error> {
        engine::plan_entity(&self.engine, entity).await
    }

    /// The user-activity summaries of the entity's reporting schema.
    pub async fn user_activity(
        &self,
        entity: EntityRef,
        filter: &crate::reports::ActivityFilter,
    ) -> Result<crate::reports::UserActivityReport, Error> {
        let mut conn = self.pool.get().await?;
        crate::reports::user_activity(&mut conn, entity, filter).await
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Enables analytics; idempotent. The flag says whether the job is new.
    pub async fn enable(&self, entity: EntityRef) -> Result<(JobView, bool), Error> {
        let mut conn = self.pool.get().await?;
        let target = find_target(&conn, entity).await?;
        let (_, created) = jobs::enable(&mut conn, entity, self.interval_seconds).await?;
        if created {
            tracing::info!(entity = %entity, schema = %target.schema_name, "analytics enabled");
        }
        Ok((self.view(&conn, &target).await?, created))
    }

    /// Disables analytics; the schema, metadata and watermarks stay.
    pub async fn disable(&self, entity: EntityRef) -> Result<bool, Error> {
        let mut conn = self.pool.get().await?;
        find_target(&conn, entity).await?;
        let removed = jobs::disable(&mut conn, entity).await?;
        if removed {
            tracing::info!(entity = %entity, "analytics disabled");
        }
        Ok(removed)
    }

    /// Queues an ad hoc run, or returns the run already queued or running
    /// (flag true).
    pub async fn run_now(&self, entity: EntityRef) -> Result<(RunRow, bool), Error> {
        self.queue(entity, Trigger::RunNow).await
    }

    /// Queues a run with the given trigger (or returns the active one).
    pub async fn queue(
        &self,
        entity: EntityRef,
        trigger: Trigger,
    ) -> Result<(RunRow, bool), Error> {
        let mut conn = self.pool.get().await?;
        find_target(&conn, entity).await?;
        jobs::queue_run(&mut conn, entity, trigger).await
    }

    /// The entity's job (enabled or not) with its last and current runs.
    pub async fn job(&self, entity: EntityRef) -> Result<JobView, Error> {
        let conn = self.pool.get().await?;
        // The entity, its job and its runs are read at once, pipelined on
        // the connection: one round trip instead of four, so a call holds a
        // pooled connection for as short a time as it can.
        let (target, state) =
            tokio::try_join!(find_target(&conn, entity), job_state(&conn, entity))?;
        Ok(self.view_of(&target, state))
    }

    /// Jobs of many entities, in order, read concurrently (pipelined on one
    /// connection). An entity that does not exist (any more) or cannot be
    /// read is an entry of the batch's errors, not the call's failure.
    pub async fn jobs(&self, entities: &[EntityRef]) -> Result<JobBatch, Error> {
        let conn = self.pool.get().await?;
        let conn: &AsyncPgConnection = &conn;
        let reads = entities.iter().map(|&entity| async move {
            let target = find_target(conn, entity).await?;
            self.view(conn, &target).await
        });
        let mut batch = JobBatch::default();
        for (entity, read) in entities.iter().zip(futures::future::join_all(reads).await) {
            match read {
                Ok(view) => batch.views.push(view),
                Err(e @ (Error::NotFound(_) | Error::FailedPrecondition(_))) => {
                    batch.errors.push((*entity, e));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(batch)
    }

    /// A page of the enabled jobs (at most `limit`, after job id `after`),
    /// with the id the next page starts after when there is one.
    pub async fn enabled_jobs(&self, after: i64, limit: i64) -> Result<JobBatch, Error> {
        let rows = {
            let mut conn = self.pool.get().await?;
            jobs::jobs_page(&mut conn, after, limit + 1).await?
        };
        let more = rows.len() as i64 > limit;
        let rows = &rows[..rows.len().min(limit as usize)];
        let entities = rows
            .iter()
            .map(JobRow::entity)
            .collect::<Result<Vec<_>, _>>()?;
        let mut batch = self.jobs(&entities).await?;
        batch.next_after = if more {
            rows.last().map(|r| r.id)
        } else {
            None
        };
        Ok(batch)
    }

    /// A page of run history, newest first.
    pub async fn history(
        &self,
        entity: Option<EntityRef>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<RunRow>, Error> {
        let mut conn = self.pool.get().await?;
        if let Some(entity) = entity {
            find_target(&conn, entity).await?;
        }
        jobs::list_runs(&mut conn, entity, before, limit).await
    }

    async fn view(&self, conn: &AsyncPgConnection, target: &Target) -> Result<JobView, Error> {
        let state = job_state(conn, target.entity).await?;
        Ok(self.view_of(target, state))
    }

    fn view_of(&self, target: &Target, (job, last_run, current_run): JobState) -> JobView {
        JobView {
            entity: target.entity,
            entity_name: target.name.clone(),
            schema_name: target.schema_name.clone(),
            interval_seconds: job
                .as_ref()
                .map(|j| i64::from(j.interval_seconds))
                .unwrap_or(i64::from(self.interval_seconds)),
            job,
            last_run,
            current_run,
        }
    }
}

/// An entity's job, its newest finished run and its active run.
type JobState = (Option<JobRow>, Option<RunRow>, Option<RunRow>);

/// The three reads of [`JobState`], pipelined on one connection.
async fn job_state(conn: &AsyncPgConnection, entity: EntityRef) -> Result<JobState, Error> {
    tokio::try_join!(
        jobs::find_job(conn, entity),
        jobs::last_finished_run(conn, entity),
        jobs::active_run(conn, entity),
    )
}

/// The entity as the source knows it; NOT_FOUND when it does not exist, and
/// a clear precondition error when the source tables are missing.
pub async fn find_target(conn: &AsyncPgConnection, entity: EntityRef) -> Result<Target, Error> {
    match source::load_target(conn, entity).await {
        Err(Error::Database(diesel::result::Error::DatabaseError(_, info)))
            if info.message().contains("does not exist") =>
        {
            Err(Error::FailedPrecondition(format!(
                "the Avni source tables are not in this database ({}); point database.url at the Avni database",
                info.message()
            )))
        }
        other => other,
    }
}
