//! One run of an organisation or organisation group, end to end (design/
//! etl.md §5): take the entity's lock, read its metadata, plan the schema,
//! apply the DDL, sync every table for every member organisation, report.
//!
//! This is the API the scheduler, `RunNow`, `RecreateSchema` and the
//! `run-once` command call; it knows nothing of gRPC.

use crate::config::EtlSettings;
use crate::engine::entity::EntityRef;
use crate::engine::faults;
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
use crate::engine::sync::{self, SyncCounts, SyncTarget};
use crate::error::Error;
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Integer, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use service_kit::db::Pool;
use std::collections::HashMap;
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

#[derive(QueryableByName)]
struct Boundary {
    #[diesel(sql_type = Timestamptz)]
    boundary: DateTime<Utc>,
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
    let mut tables = TableSync {
        visibility,
        ctx,
        target,
        boundary: sync_boundary(conn, ctx.settings.sync_offset_seconds).await?,
        marks: sync::watermarks(conn, &target.schema_name).await?,
        probe: ChangeProbe::default(),
    };
    let total = plan.tables.len();
    let mut reports = Vec::with_capacity(total);
    for (index, (table, applied)) in plan.tables.iter().zip(&applied).enumerate() {
        // A stop that came between two statements ends the run here.
        options.stop.check()?;
        progress.event(ProgressEvent::TableStarted {
            name: table.name.clone(),
            index,
            total,
        });
        let report = tables.sync(conn, table, applied, index).await?;
        progress.event(ProgressEvent::TableFinished {
            report: report.clone(),
            index,
            total,
        });
        reports.push(report);
    }
    Ok(reports)
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

    check_time_zone(conn, &ctx.settings.time_zone).await?;
    roles::ensure_roles(conn, &target.reader_roles()).await?;
    roles::ensure_member_of(conn, &target.db_user).await?;
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

/// The end of the run's sync window: `offset_seconds` before PostgreSQL's
/// now.
async fn sync_boundary(
    conn: &mut AsyncPgConnection,
    offset_seconds: u64,
) -> Result<DateTime<Utc>, Error> {
    let offset = i32::try_from(offset_seconds).unwrap_or(i32::MAX);
    Ok(
        // Whole milliseconds: Avni's entity_sync_status keeps the
        // watermark as timestamptz(3), and a boundary rounded up there
        // would skip the rows of its last millisecond.
        diesel::sql_query(
            "SELECT date_trunc('milliseconds', now() - $1 * interval '1 second') AS boundary",
        )
        .bind::<Integer, _>(offset)
        .get_result::<Boundary>(conn)
        .await?
        .boundary,
    )
}

/// What syncing the run's tables shares: the window's end, the watermarks
/// read at its start and what is known of the source's changes.
struct TableSync<'a> {
    ctx: &'a EngineContext,
    target: &'a Target,
    boundary: DateTime<Utc>,
    marks: HashMap<(i32, i32), DateTime<Utc>>,
    probe: ChangeProbe,
    /// Whose rows each member sees.
    visibility: Visibility,
}

impl TableSync<'_> {
    /// Syncs the run's table at `index` for every member organisation.
    async fn sync(
        &mut self,
        conn: &mut AsyncPgConnection,
        table: &plan::PlannedTable,
        applied: &AppliedTable,
        index: usize,
    ) -> Result<TableReport, Error> {
        let target = self.target;
        let table_started = Instant::now();
        let fail = faults::fails_at(index);
        let mut counts = SyncCounts::default();
        for (m, member) in target.members.iter().enumerate() {
            let sources = sync::source_organisations(table, &self.visibility.lineage(member.id));
            let sync_target = SyncTarget {
                schema: &target.schema_name,
                table,
                table_id: applied.table_id,
                organisation_id: member.id,
                source_organisations: &sources,
                db_user: &member.db_user,
                time_zone: &self.ctx.settings.time_zone,
            };
            let last_member = m + 1 == target.members.len();
            let watermark = self.marks.get(&(applied.table_id, member.id));
            if !fail
                && !self
                    .probe
                    .changed_since(conn, table, &sources, watermark)
                    .await?
            {
                continue;
            }
            counts += sync::sync_table(conn, &sync_target, self.boundary, fail && last_member)
                .await
                .map_err(|e| Error::Sync {
                    table: table.name.clone(),
                    source: Box::new(e),
                })?;
        }
        Ok(TableReport {
            name: table.name.clone(),
            kind: table.identity.kind,
            change: applied.change,
            rows_upserted: counts.upserted,
            rows_deleted: counts.deleted,
            duration: table_started.elapsed(),
        })
    }
}

/// Whether a table's source has changed since its watermark, asking
/// PostgreSQL once per source table and organisation in a run (again only
/// for a table whose watermark is older than the one first asked about).
#[derive(Default)]
struct ChangeProbe {
    /// By the organisations asked about and the source table.
    latest: HashMap<(Vec<i32>, &'static str), Probed>,
}

/// What the probe asked of one organisation's source table: its latest
/// change after `since`, if any.
struct Probed {
    since: DateTime<Utc>,
    latest: Option<DateTime<Utc>>,
}

impl ChangeProbe {
    async fn changed_since(
        &mut self,
        conn: &mut AsyncPgConnection,
        table: &plan::PlannedTable,
        organisations: &[i32],
        watermark: Option<&DateTime<Utc>>,
    ) -> Result<bool, Error> {
        let Some(mark) = watermark else {
            return Ok(true);
        };
        let source = sync::source_table(table);
        let key = (organisations.to_vec(), source);
        let latest = match self.latest.get(&key) {
            Some(probed) if probed.since <= *mark => probed.latest,
            _ => {
                let latest = sync::latest_change(conn, source, organisations, mark).await?;
                let probed = Probed {
                    since: *mark,
                    latest,
                };
                self.latest.insert(key, probed);
                latest
            }
        };
        Ok(latest.is_some_and(|changed| changed > *mark))
    }
}

/// Fails before anything is written when PostgreSQL does not know the
/// configured time zone, instead of in the middle of the first table.
async fn check_time_zone(conn: &mut AsyncPgConnection, time_zone: &str) -> Result<(), Error> {
    diesel::sql_query("SELECT now() AT TIME ZONE $1 AS boundary")
        .bind::<diesel::sql_types::Text, _>(time_zone)
        .execute(conn)
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
