//! One run of an organisation or organisation group, end to end (design/
//! etl.md §5): take the entity's lock, read its metadata, plan the schema,
//! apply the DDL, sync every table for every member organisation, report.
//!
//! This is the API the scheduler, `RunNow`, `RecreateSchema` and the
//! `run-once` command call; it knows nothing of gRPC.

use crate::config::EtlSettings;
use crate::engine::entity::EntityRef;
use crate::engine::lock::EntityLock;
use crate::engine::schema::ddl::{self, AppliedTable};
use crate::engine::schema::implementers;
use crate::engine::schema::layout::TableKind;
use crate::engine::schema::ownership;
use crate::engine::schema::plan::{self, SchemaPlan};
use crate::engine::schema::roles;
use crate::engine::schema::schema_diff::{self, TableChange};
use crate::engine::source::{self, Target, Visibility};
use crate::engine::stop::RunStop;
use crate::engine::tables::{self, TableJob, TableSync};
use crate::error::Error;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use service_kit::db::Pool;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// What a run needs from its surroundings.
#[derive(Clone)]
pub struct EngineContext {
    pub pool: Pool,
    /// For the lock's dedicated connection (outside the pool).
    pub database_url: String,
    pub settings: EtlSettings,
}

/// How to take the entity's lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LockMode {
    /// Wait for a run in progress to finish (RecreateSchema, run-once).
    #[default]
    Wait,
    /// Give up with [`Error::AlreadyRunning`] if a run is in progress (the
    /// scheduler).
    Try,
}

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub lock: LockMode,
    /// Drop the schema, its metadata and watermarks first, under the same
    /// hold of the lock, then rebuild it from scratch (RecreateSchema).
    pub recreate: bool,
    /// When to stop the run in the middle (timeout, shutdown, lost lease);
    /// never by default.
    pub stop: RunStop,
}

/// A table's outcome in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    pub name: String,
    pub kind: TableKind,
    pub change: TableChange,
    pub rows_upserted: u64,
    pub rows_deleted: u64,
    pub duration: Duration,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub entity: EntityRef,
    /// The organisation's or group's name.
    pub name: String,
    pub schema_name: String,
    /// Tables dropped first (with [`RunOptions::recreate`]).
    pub tables_dropped: usize,
    /// Every table, in the order processed.
    pub tables: Vec<TableReport>,
    pub duration: Duration,
}

impl RunReport {
    pub fn rows_upserted(&self) -> u64 {
        self.tables.iter().map(|t| t.rows_upserted).sum()
    }

    pub fn rows_deleted(&self) -> u64 {
        self.tables.iter().map(|t| t.rows_deleted).sum()
    }

    pub fn count(&self, change: TableChange) -> usize {
        self.tables.iter().filter(|t| t.change == change).count()
    }
}

/// What a run reports while it works.
#[derive(Debug, Clone)]
pub enum ProgressEvent {
    /// The lock is held and the plan made.
    Started {
        schema_name: String,
        tables_total: usize,
    },
    /// The DDL is applied.
    SchemaApplied { created: usize, altered: usize },
    TableStarted {
        name: String,
        index: usize,
        total: usize,
    },
    TableFinished {
        report: TableReport,
        index: usize,
        total: usize,
    },
}

/// Receives a run's progress (a terminal progress bar, the run-history
/// table, a WatchJobRun stream). Called on the run's task: keep it quick.
pub trait ProgressSink: Send + Sync {
    fn event(&self, event: ProgressEvent);
}

/// Ignores progress.
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn event(&self, _event: ProgressEvent) {}
}

/// Runs `entity` once: plan, DDL, sync. Fails with [`Error::NotFound`]
/// (nothing written) when it does not exist, [`Error::AlreadyRunning`] with
/// [`LockMode::Try`] when another run holds its lock, and
/// [`Error::Sync`] naming the table when a table's sync fails (the tables
/// before it keep their progress).
pub async fn run_entity(
    ctx: &EngineContext,
    entity: EntityRef,
    options: &RunOptions,
    progress: &dyn ProgressSink,
) -> Result<RunReport, Error> {
    let span = tracing::info_span!("etl_run", entity = %entity);
    async move {
        let started = Instant::now();
        let stop = &options.stop;
        stop.check()?;
        let target = {
            let conn = ctx.pool.get().await?;
            let token = conn.cancel_token();
            stop.guard(token, source::load_target(&conn, entity))
                .await?
        };
        // No pooled connection is held while waiting for the lock: many
        // runs may wait at once.
        let lock = take_lock(ctx, &target, options.lock, stop).await?;
        let result = work_under_lock(ctx, &target, options, progress).await;
        release(lock).await;
        let (tables_dropped, tables) = result?;
        let report = RunReport {
            entity,
            name: target.name.clone(),
            schema_name: target.schema_name.clone(),
            tables_dropped,
            tables,
            duration: started.elapsed(),
        };
        tracing::info!(
            schema = %report.schema_name,
            tables = report.tables.len(),
            created = report.count(TableChange::Created),
            altered = report.count(TableChange::Altered),
            rows_upserted = report.rows_upserted(),
            rows_deleted = report.rows_deleted(),
            duration_ms = report.duration.as_millis() as u64,
            "run finished"
        );
        Ok(report)
    }
    .instrument(span)
    .await
}

/// The run's work while it holds the entity's lock, on a pooled
/// connection whose statement a stop cancels: the schema dropped first with
/// [`RunOptions::recreate`], then [`run_locked`]. Returns how many tables
/// were dropped, and the tables' reports.
async fn work_under_lock(
    ctx: &EngineContext,
    target: &Target,
    options: &RunOptions,
    progress: &dyn ProgressSink,
) -> Result<(usize, Vec<TableReport>), Error> {
    let mut conn = ctx.pool.get().await?;
    let token = conn.cancel_token();
    let work = async {
        ownership::ensure_ours(&mut conn, &target.schema_name).await?;
        let dropped = if options.recreate {
            ddl::drop_schema(&mut conn, target).await?
        } else {
            0
        };
        run_locked(ctx, &mut conn, target, options, progress)
            .await
            .map(|tables| (dropped, tables))
    };
    options.stop.guard(token, work).await
}

async fn run_locked(
    ctx: &EngineContext,
    conn: &mut AsyncPgConnection,
    target: &Target,
    options: &RunOptions,
    progress: &dyn ProgressSink,
) -> Result<Vec<TableReport>, Error> {
    let visibility = source::load_visibility(conn, target).await?;
    let (plan, applied) = apply_schema(ctx, conn, target, &visibility, progress).await?;
    let jobs: Vec<TableJob<'_>> = plan
        .tables
        .iter()
        .zip(&applied)
        .map(|(table, applied)| TableJob { table, applied })
        .collect();
    let sync = TableSync::prepare(ctx, conn, target, visibility, &jobs).await?;
    tables::sync_tables(ctx, conn, &sync, &jobs, &options.stop, progress).await
}

/// Reads the source metadata, plans the schema and applies its DDL,
/// reporting [`ProgressEvent::Started`] and
/// [`ProgressEvent::SchemaApplied`].
async fn apply_schema(
    ctx: &EngineContext,
    conn: &mut AsyncPgConnection,
    target: &Target,
    visibility: &Visibility,
    progress: &dyn ProgressSink,
) -> Result<(SchemaPlan, Vec<AppliedTable>), Error> {
    let model = source::load_model(conn, visibility).await?;
    let existing = implementers::load_existing(conn, &target.schema_name).await?;
    let plan = plan::plan_schema(&model, &existing);
    let diffs = schema_diff::diff(&plan);
    progress.event(ProgressEvent::Started {
        schema_name: target.schema_name.clone(),
        tables_total: plan.tables.len(),
    });

    let readers = target.reader_roles();
    let shared: &AsyncPgConnection = conn;
    let (time_zone, ready) = futures::join!(
        check_time_zone(shared, &ctx.settings.time_zone),
        roles::ready(shared, &readers, &target.db_user)
    );
    time_zone?;
    if !ready? {
        roles::ensure_roles(conn, &readers).await?;
        roles::ensure_member_of(conn, &target.db_user).await?;
    }
    let applied = ddl::apply(conn, target, &plan, &diffs).await?;
    let created = applied
        .iter()
        .filter(|a| a.change == TableChange::Created)
        .count();
    let altered = applied
        .iter()
        .filter(|a| a.change == TableChange::Altered)
        .count();
    progress.event(ProgressEvent::SchemaApplied { created, altered });
    Ok((plan, applied))
}

/// Fails before anything is written when PostgreSQL does not know the
/// configured time zone, instead of in the middle of the first table.
async fn check_time_zone(conn: &AsyncPgConnection, time_zone: &str) -> Result<(), Error> {
    let mut conn = conn;
    diesel::sql_query("SELECT now() AT TIME ZONE $1 AS boundary")
        .bind::<diesel::sql_types::Text, _>(time_zone)
        .execute(&mut conn)
        .await
        .map(|_| ())
        .map_err(|e| {
            Error::FailedPrecondition(format!(
                "etl.time_zone {time_zone:?} is not a time zone PostgreSQL knows ({e}); use a name such as Asia/Kolkata"
            ))
        })
}

async fn take_lock(
    ctx: &EngineContext,
    target: &Target,
    mode: LockMode,
    stop: &RunStop,
) -> Result<EntityLock, Error> {
    match mode {
        LockMode::Wait => {
            EntityLock::acquire_until(&ctx.database_url, &target.schema_name, stop).await
        }
        LockMode::Try => EntityLock::try_acquire(&ctx.database_url, &target.schema_name)
            .await?
            .ok_or_else(|| {
                Error::AlreadyRunning(format!(
                    "{} ({}) is already running; schema {} is locked by another run",
                    target.entity, target.name, target.schema_name
                ))
            }),
    }
}

/// Released whatever the run's outcome; if even that fails, closing the
/// connection ends the transaction and the lock with it.
async fn release(lock: EntityLock) {
    if let Err(e) = lock.release().await {
        tracing::warn!(error = %e, "releasing the entity lock failed; the connection is closed instead");
    }
}

/// What [`drop_schema`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedSchema {
    pub schema_name: String,
    pub tables_dropped: usize,
}

/// Drops `entity`'s reporting schema, metadata and watermarks under its
/// lock, without rebuilding (RecreateSchema with `skip_rebuild`); the next
/// run rebuilds it from scratch. To drop and rebuild under one hold of the
/// lock, run with [`RunOptions::recreate`] instead.
pub async fn drop_schema(
    ctx: &EngineContext,
    entity: EntityRef,
    lock: LockMode,
) -> Result<DroppedSchema, Error> {
    drop_schema_within(ctx, entity, lock, None).await
}

/// Like [`drop_schema`], waiting at most `lock_wait` for the entity's lock
/// (a run in progress): then [`Error::LockBusy`]. The abandoned wait's
/// connection is closed, so PostgreSQL forgets the wait.
pub async fn drop_schema_within(
    ctx: &EngineContext,
    entity: EntityRef,
    lock: LockMode,
    lock_wait: Option<std::time::Duration>,
) -> Result<DroppedSchema, Error> {
    let target = {
        let conn = ctx.pool.get().await?;
        source::load_target(&conn, entity).await?
    };
    let no_stop = RunStop::default();
    let taking = take_lock(ctx, &target, lock, &no_stop);
    let held = match lock_wait {
        None => taking.await?,
        Some(limit) => tokio::time::timeout(limit, taking).await.map_err(|_| {
            Error::LockBusy(format!(
                "{entity}: a run of schema {} held its lock for longer than \
                 etl.recreate_lock_wait_seconds ({} s); try again when it has finished \
                 (GetJob shows the run in progress)",
                target.schema_name,
                limit.as_secs()
            ))
        })??,
    };
    let result = match ctx.pool.get().await {
        Ok(mut conn) => match ownership::ensure_ours(&mut conn, &target.schema_name).await {
            Ok(()) => ddl::drop_schema(&mut conn, &target).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e.into()),
    };
    release(held).await;
    Ok(DroppedSchema {
        schema_name: target.schema_name,
        tables_dropped: result?,
    })
}

/// The plan a run of `entity` would apply now, from its current source
/// metadata and schema (for ValidateNames on an organisation).
pub async fn plan_entity(
    ctx: &EngineContext,
    entity: EntityRef,
) -> Result<(Target, SchemaPlan), Error> {
    let mut conn = ctx.pool.get().await?;
    let target = source::load_target(&conn, entity).await?;
    let visibility = source::load_visibility(&mut conn, &target).await?;
    let model = source::load_model(&mut conn, &visibility).await?;
    let existing = implementers::load_existing(&mut conn, &target.schema_name).await?;
    Ok((target, plan::plan_schema(&model, &existing)))
}
