//! Syncing a run's tables once its schema is applied: which tables have
//! changed since their watermarks (asked of PostgreSQL up front, in one
//! pipeline), then the tables synced on up to `etl.sync_connections`
//! connections at once.
//!
//! What does not change with more connections:
//! - the order: tables are taken in the run's order, and the report lists
//!   them in that order (progress events come as each starts and ends);
//! - crash safety: each table commits with its watermark, so whatever
//!   stops the run leaves every table at its old state or its new one;
//! - a failure: no table starts after a table fails; the tables in
//!   progress on the other connections finish (and commit), and the run
//!   fails with the first failure;
//! - a stop (timeout, shutdown, lost lease): every connection's statement
//!   is cancelled in PostgreSQL, and no table starts after it.

use crate::engine::faults;
use crate::engine::run::{EngineContext, ProgressEvent, ProgressSink, TableReport};
use crate::engine::schema::ddl::AppliedTable;
use crate::engine::schema::plan::PlannedTable;
use crate::engine::source::{Target, Visibility};
use crate::engine::stop::RunStop;
use crate::engine::sync::{self, SyncCounts, SyncTarget};
use crate::error::Error;
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Integer, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a run waits for each further connection from the pool; with
/// none free by then it syncs on the connections it has.
const EXTRA_CONNECTION_WAIT: Duration = Duration::from_millis(200);

/// One table of the run: its plan and what the DDL made of it.
pub(super) struct TableJob<'a> {
    pub table: &'a PlannedTable,
    pub applied: &'a AppliedTable,
}

/// Which source tables changed since when: by the organisations asked about
/// and the source table, the latest change of each type of row after the
/// earliest watermark of the tables reading it.
type Changes = HashMap<(Vec<i32>, &'static str), Vec<(Option<String>, DateTime<Utc>)>>;

/// What syncing the run's tables shares: the window's end, the watermarks
/// read at its start and what is known of the source's changes.
pub(super) struct TableSync<'a> {
    ctx: &'a EngineContext,
    target: &'a Target,
    boundary: DateTime<Utc>,
    marks: HashMap<(i32, i32), DateTime<Utc>>,
    changes: Changes,
    /// Whose rows each member sees.
    visibility: Visibility,
}

#[derive(QueryableByName)]
struct Boundary {
    #[diesel(sql_type = Timestamptz)]
    boundary: DateTime<Utc>,
}

impl<'a> TableSync<'a> {
    /// Reads the window's end and the watermarks (one pipeline), then asks
    /// which source tables changed since (another).
    pub async fn prepare(
        ctx: &'a EngineContext,
        conn: &mut AsyncPgConnection,
        target: &'a Target,
        visibility: Visibility,
        jobs: &[TableJob<'_>],
    ) -> Result<Self, Error> {
        let shared: &AsyncPgConnection = conn;
        let (boundary, marks) = futures::join!(
            sync_boundary(shared, ctx.settings.sync_offset_seconds),
            sync::watermarks(shared, &target.schema_name)
        );
        let mut sync = Self {
            ctx,
            target,
            boundary: boundary?,
            marks: marks?,
            changes: Changes::new(),
            visibility,
        };
        sync.changes = sync.probe(shared, jobs).await?;
        Ok(sync)
    }

    /// The source organisations of `table` for each member, with the
    /// member's watermark of it.
    fn members_of<'t>(
        &'t self,
        table: &'t PlannedTable,
        applied: &'t AppliedTable,
    ) -> impl Iterator<Item = (usize, Vec<i32>, Option<&'t DateTime<Utc>>)> + 't {
        self.target
            .members
            .iter()
            .enumerate()
            .map(move |(m, member)| {
                let sources =
                    sync::source_organisations(table, &self.visibility.lineage(member.id));
                (m, sources, self.marks.get(&(applied.table_id, member.id)))
            })
    }

    /// The latest change of each type after the earliest watermark, for
    /// every source table and organisations some table reads, asked in one
    /// pipeline. A table has changed when its type's is after its own
    /// watermark: the same answer as asking with its own, on one query per
    /// source table.
    async fn probe(
        &self,
        conn: &AsyncPgConnection,
        jobs: &[TableJob<'_>],
    ) -> Result<Changes, Error> {
        let mut earliest: HashMap<(Vec<i32>, &'static str), DateTime<Utc>> = HashMap::new();
        for job in jobs {
            let source = sync::source_table(job.table);
            for (_, sources, mark) in self.members_of(job.table, job.applied) {
                if let Some(mark) = mark {
                    earliest
                        .entry((sources, source))
                        .and_modify(|e| *e = (*e).min(*mark))
                        .or_insert(*mark);
                }
            }
        }
        let asked = earliest.into_iter().collect::<Vec<_>>();
        let answers = futures::future::join_all(
            asked
                .iter()
                .map(|((orgs, source), since)| sync::latest_changes(conn, source, orgs, since)),
        )
        .await;
        asked
            .into_iter()
            .zip(answers)
            .map(|((key, _), latest)| Ok((key, latest?)))
            .collect()
    }

    /// Whether `table` has changed since its watermark for a member
    /// reading `sources` (always, without a watermark): rows of its type
    /// (any type, for a table not filtered by one) changed after it.
    fn changed(&self, table: &PlannedTable, sources: &[i32], mark: Option<&DateTime<Utc>>) -> bool {
        let Some(mark) = mark else {
            return true;
        };
        let key = (sources.to_vec(), sync::source_table(table));
        let of_type = sync::table_type_uuid(table);
        self.changes.get(&key).is_some_and(|latest| {
            latest.iter().any(|(type_uuid, latest)| {
                latest > mark && (of_type.is_none() || type_uuid.as_deref() == of_type)
            })
        })
    }

    /// Whether the run's table at `index` has anything to sync.
    fn has_work(&self, job: &TableJob<'_>, index: usize) -> bool {
        faults::fails_at(index)
            || self
                .members_of(job.table, job.applied)
                .any(|(_, sources, mark)| self.changed(job.table, &sources, mark))
    }

    /// Syncs the run's table at `index` for every member organisation.
    async fn sync(
        &self,
        conn: &mut AsyncPgConnection,
        job: &TableJob<'_>,
        index: usize,
    ) -> Result<TableReport, Error> {
        let (table, applied, target) = (job.table, job.applied, self.target);
        let table_started = Instant::now();
        let fail = faults::fails_at(index);
        let mut counts = SyncCounts::default();
        for (m, sources, mark) in self.members_of(table, applied) {
            if !fail && !self.changed(table, &sources, mark) {
                continue;
            }
            let member = &target.members[m];
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

/// The end of the run's sync window: `offset_seconds` before PostgreSQL's
/// now.
async fn sync_boundary(
    conn: &AsyncPgConnection,
    offset_seconds: u64,
) -> Result<DateTime<Utc>, Error> {
    let offset = i32::try_from(offset_seconds).unwrap_or(i32::MAX);
    let mut conn = conn;
    Ok(
        // Whole milliseconds: Avni's entity_sync_status keeps the
        // watermark as timestamptz(3), and a boundary rounded up there
        // would skip the rows of its last millisecond.
        diesel::sql_query(
            "SELECT date_trunc('milliseconds', now() - $1 * interval '1 second') AS boundary",
        )
        .bind::<Integer, _>(offset)
        .get_result::<Boundary>(&mut conn)
        .await?
        .boundary,
    )
}

/// The run's tables, taken in order by the connections syncing them.
struct Queue<'j, 's> {
    jobs: &'j [TableJob<'j>],
    sync: &'s TableSync<'s>,
    stop: &'s RunStop,
    progress: &'s dyn ProgressSink,
    next: AtomicUsize,
    /// Set by the first failure (or stop): no table starts after it.
    halted: AtomicBool,
    first_error: Mutex<Option<Error>>,
    reports: Mutex<Vec<Option<TableReport>>>,
}

impl Queue<'_, '_> {
    /// Halts the run with `error`, or with the stop's reason when the run
    /// must stop (a statement cancelled by the stop fails first).
    fn fail(&self, error: Error) {
        self.halted.store(true, Ordering::SeqCst);
        let error = self.stop.check().err().unwrap_or(error);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(error);
        }
    }

    /// The next table to sync, or `None` when all are taken or the run is
    /// halted (or must stop: then the stop's reason is its failure).
    fn take(&self) -> Option<usize> {
        if AtomicBool::load(&self.halted, Ordering::SeqCst) {
            return None;
        }
        // A stop that came between two statements ends the run here.
        if let Err(e) = self.stop.check() {
            self.fail(e);
            return None;
        }
        let index = self.next.fetch_add(1, Ordering::SeqCst);
        (index < self.jobs.len()).then_some(index)
    }

    /// Takes and syncs tables on `conn` until none is left or the run is
    /// halted.
    async fn work(&self, conn: &mut AsyncPgConnection) {
        let total = self.jobs.len();
        while let Some(index) = self.take() {
            let job = &self.jobs[index];
            self.progress.event(ProgressEvent::TableStarted {
                name: job.table.name.clone(),
                index,
                total,
            });
            match self.sync.sync(conn, job, index).await {
                Ok(report) => {
                    self.progress.event(ProgressEvent::TableFinished {
                        report: report.clone(),
                        index,
                        total,
                    });
                    if let Ok(mut reports) = self.reports.lock() {
                        reports[index] = Some(report);
                    }
                }
                Err(e) => self.fail(e),
            }
        }
    }
}

/// Syncs `jobs` in order on `conn` and, when more than one has changed, on
/// up to `etl.sync_connections - 1` further pooled connections at once.
/// `conn`'s statements are cancelled by the caller's guard on a stop, the
/// further connections' by their own.
pub(super) async fn sync_tables(
    ctx: &EngineContext,
    conn: &mut AsyncPgConnection,
    sync: &TableSync<'_>,
    jobs: &[TableJob<'_>],
    stop: &RunStop,
    progress: &dyn ProgressSink,
) -> Result<Vec<TableReport>, Error> {
    let changed = jobs
        .iter()
        .enumerate()
        .filter(|(index, job)| sync.has_work(job, *index))
        .count();
    let wanted = ctx.settings.sync_connections.min(changed).max(1) - 1;
    let mut extra = Vec::with_capacity(wanted);
    for _ in 0..wanted {
        match tokio::time::timeout(EXTRA_CONNECTION_WAIT, ctx.pool.get()).await {
            Ok(Ok(c)) => extra.push(c),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "no further connection for the run's tables");
                break;
            }
            Err(_) => {
                tracing::debug!("no further connection free for the run's tables");
                break;
            }
        }
    }
    let queue = Queue {
        jobs,
        sync,
        stop,
        progress,
        next: AtomicUsize::new(0),
        halted: AtomicBool::new(false),
        first_error: Mutex::new(None),
        reports: Mutex::new(vec![None; jobs.len()]),
    };
    let queue = &queue;
    let mut workers: Vec<Pin<Box<dyn Future<Output = ()> + Send + '_>>> =
        vec![Box::pin(queue.work(conn))];
    for c in &mut extra {
        let token = c.cancel_token();
        let conn: &mut AsyncPgConnection = c;
        workers.push(Box::pin(async move {
            let guarded = async {
                queue.work(conn).await;
                Ok(())
            };
            if let Err(e) = stop.guard(token, guarded).await {
                queue.fail(e);
            }
        }));
    }
    futures::future::join_all(workers).await;
    if let Some(e) = queue.first_error.lock().ok().and_then(|mut e| e.take()) {
        return Err(e);
    }
    let reports = queue
        .reports
        .lock()
        .map(|mut r| std::mem::take(&mut *r))
        .unwrap_or_default();
    Ok(reports.into_iter().flatten().collect())
}
