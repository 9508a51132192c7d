//! The scheduler every replica runs: it queues runs of due jobs, claims
//! queued runs up to its free worker slots, keeps their leases alive while
//! they work, and fails runs whose replica died (their lease expired).
//!
//! Replicas coordinate only through PostgreSQL: `FOR UPDATE SKIP LOCKED`
//! claims, one active run per entity (a partial unique index), and the
//! entity's advisory lock taken by the executor. `EnableAnalytics` and
//! `RunNow` NOTIFY the schedulers so runs start at once; a short poll covers
//! missed notifications.

use crate::control::jobs::{self, RunRow, RunStatus, TableOutcome};
use crate::control::progress::RunProgress;
use crate::error::Error;
use service_kit::db::Pool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How a run failed: a line for people, the full cause, and what the tables
/// that were done by then got.
#[derive(Debug, Clone)]
pub struct RunFailure {
    pub message: String,
    pub detail: String,
    pub tables: Vec<TableOutcome>,
    pub cancelled: bool,
}

/// Does the work of one claimed run. The engine implements it; the scheduler
/// only decides when and where runs happen.
#[tonic::async_trait]
pub trait RunExecutor: Send + Sync + 'static {
    /// Runs `run` to the end, reporting progress. `cancel` fires when the
    /// replica lost the run's lease or is shutting down.
    async fn execute(
        &self,
        run: &RunRow,
        progress: &RunProgress,
        cancel: CancellationToken,
    ) -> Result<Vec<TableOutcome>, RunFailure>;
}

/// How the scheduler behaves.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// Runs at once on this replica.
    pub max_concurrent_runs: usize,
    /// How long a claim holds without renewal.
    pub lease: Duration,
    /// How often the scheduler looks for work without being woken.
    pub poll_interval: Duration,
}

/// A replica's scheduler.
pub struct Scheduler {
    pool: Pool,
    database_url: String,
    settings: SchedulerSettings,
    worker: String,
    executor: Arc<dyn RunExecutor>,
}

/// Runs this replica works on, with what cancels each.
type Running = Arc<Mutex<HashMap<i64, CancellationToken>>>;

impl Scheduler {
    pub fn new(
        pool: Pool,
        database_url: String,
        settings: SchedulerSettings,
        executor: Arc<dyn RunExecutor>,
    ) -> Self {
        Self {
            pool,
            database_url,
            settings,
            worker: worker_id(),
            executor,
        }
    }

    /// This replica's name in `etl_run.worker`.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Starts the scheduler; it stops claiming work when `shutdown` fires and
    /// the returned handle ends once its runs have finished or been cancelled.
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(self.run(shutdown))
    }

    async fn run(self, shutdown: CancellationToken) {
        let wake = Arc::new(Notify::new());
        let listener = spawn_listener(self.database_url.clone(), wake.clone(), shutdown.clone());
        let slots = Arc::new(Semaphore::new(self.settings.max_concurrent_runs));
        let running: Running = Arc::new(Mutex::new(HashMap::new()));
        let heartbeat = self.spawn_heartbeat(running.clone(), shutdown.clone());
        let mut workers = tokio::task::JoinSet::new();
        tracing::info!(worker = %self.worker, max_concurrent_runs = self.settings.max_concurrent_runs, "scheduler started");

        loop {
            if let Err(e) = self
                .tick(&slots, &running, &wake, &shutdown, &mut workers)
                .await
            {
                tracing::warn!(error = %e, "scheduler tick failed; retrying");
            }
            while workers.try_join_next().is_some() {}
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }

        let in_flight = running.lock().map(|r| r.len()).unwrap_or(0);
        if in_flight > 0 {
            tracing::info!(
                runs = in_flight,
                "scheduler stopping; cancelling runs in progress"
            );
        }
        if let Ok(r) = running.lock() {
            for token in r.values() {
                token.cancel();
            }
        }
        while workers.join_next().await.is_some() {}
        heartbeat.abort();
        listener.abort();
        tracing::info!(worker = %self.worker, "scheduler stopped");
    }

    async fn tick(
        &self,
        slots: &Arc<Semaphore>,
        running: &Running,
        wake: &Arc<Notify>,
        shutdown: &CancellationToken,
        workers: &mut tokio::task::JoinSet<()>,
    ) -> Result<(), Error> {
        let mut conn = self.pool.get().await?;
        let reaped = jobs::reap_expired(&mut conn).await?;
        if !reaped.is_empty() {
            tracing::warn!(runs = ?reaped, "failed runs whose replica stopped renewing their lease");
        }
        let queued = jobs::queue_due_jobs(&mut conn).await?;
        if queued > 0 {
            tracing::debug!(queued, "queued scheduled runs");
        }
        let free = slots.available_permits();
        let claimed = if free == 0 || shutdown.is_cancelled() {
            Vec::new()
        } else {
            let lease = self.lease_seconds();
            jobs::claim_runs(&mut conn, &self.worker, free as i64, lease).await?
        };
        let (enabled, queued) = jobs::counts(&mut conn).await?;
        crate::metrics::scheduler_state(enabled, queued);
        drop(conn);
        for run in claimed {
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                break;
            };
            let cancel = shutdown.child_token();
            if let Ok(mut r) = running.lock() {
                r.insert(run.id, cancel.clone());
            }
            let pool = self.pool.clone();
            let executor = self.executor.clone();
            let worker = self.worker.clone();
            let running = running.clone();
            let wake = wake.clone();
            let run_id = run.id;
            workers.spawn(async move {
                execute_run(pool, executor, &worker, run, cancel).await;
                if let Ok(mut r) = running.lock() {
                    r.remove(&run_id);
                }
                drop(permit);
                // A slot is free: look for more work now.
                wake.notify_one();
            });
        }
        Ok(())
    }

    fn lease_seconds(&self) -> i32 {
        self.settings.lease.as_secs().clamp(1, i32::MAX as u64) as i32
    }

    /// Renews the leases of this replica's runs every third of the lease; a
    /// run whose lease was lost (reaped by another replica after a stall) is
    /// cancelled here, since someone else may now run its entity.
    fn spawn_heartbeat(&self, running: Running, shutdown: CancellationToken) -> JoinHandle<()> {
        let pool = self.pool.clone();
        let worker = self.worker.clone();
        let lease = self.lease_seconds();
        let every = (self.settings.lease / 3).max(Duration::from_millis(200));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(every) => {}
                }
                let ids: Vec<i64> = running
                    .lock()
                    .map(|r| r.keys().copied().collect())
                    .unwrap_or_default();
                if ids.is_empty() {
                    if shutdown.is_cancelled() {
                        break;
                    }
                    continue;
                }
                let renewed = async {
                    let mut conn = pool.get().await?;
                    jobs::renew_leases(&mut conn, &worker, &ids, lease).await
                }
                .await;
                match renewed {
                    Ok(lost) => {
                        for id in lost {
                            tracing::warn!(run = id, "lost the lease of a run; cancelling it here");
                            if let Ok(r) = running.lock()
                                && let Some(t) = r.get(&id)
                            {
                                t.cancel();
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot renew run leases"),
                }
            }
        })
    }
}

/// Runs one claimed run and records its outcome.
async fn execute_run(
    pool: Pool,
    executor: Arc<dyn RunExecutor>,
    worker: &str,
    run: RunRow,
    cancel: CancellationToken,
) {
    let entity = run.entity().map(|e| e.to_string()).unwrap_or_default();
    let span = tracing::info_span!("run", id = run.id, entity = %entity, trigger = %run.trigger);
    tracing::info!(parent: &span, "run claimed");
    let progress = RunProgress::start(pool.clone(), run.id);
    crate::metrics::run_started();
    let started = std::time::Instant::now();
    let result = executor.execute(&run, &progress, cancel.clone()).await;
    progress.finish().await;
    let (status, error, detail, tables) = match result {
        Ok(tables) => (RunStatus::Succeeded, None, None, tables),
        Err(f) => {
            let status = if f.cancelled {
                RunStatus::Cancelled
            } else {
                RunStatus::Failed
            };
            (status, Some(f.message), Some(f.detail), f.tables)
        }
    };
    crate::metrics::run_finished(status, started.elapsed(), &tables);
    match &error {
        None => tracing::info!(parent: &span, tables = tables.len(), "run succeeded"),
        Some(e) => {
            tracing::warn!(parent: &span, error = %e, status = status.as_str(), "run did not succeed")
        }
    }
    // Record the outcome even if PostgreSQL blinks: retry for a while.
    for attempt in 0..20u32 {
        let recorded = async {
            let mut conn = pool.get().await?;
            jobs::finish_run(
                &mut conn,
                run.id,
                worker,
                status,
                error.as_deref(),
                detail.as_deref(),
                &tables,
            )
            .await
        }
        .await;
        match recorded {
            Ok(true) => break,
            Ok(false) => {
                tracing::warn!(parent: &span, "the run was reaped by another replica before it finished here");
                break;
            }
            Err(e) => {
                tracing::warn!(parent: &span, error = %e, attempt, "cannot record the run's outcome; retrying");
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt + 1))).await;
            }
        }
    }
    cancel.cancel();
}

/// Listens for wake-ups on a dedicated connection (LISTEN needs one that
/// stays open), reconnecting after failures.
fn spawn_listener(url: String, wake: Arc<Notify>, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = listen_once(&url, &wake, &shutdown).await {
                tracing::debug!(error = %e, "scheduler wake-up listener disconnected");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    })
}

async fn listen_once(
    url: &str,
    wake: &Arc<Notify>,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let connect = service_kit::tls::PgConnect::from_url(url, Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    let (client, mut connection) = connect.connect().await.map_err(|e| e.to_string())?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => {
                    if tx.send(()).is_err() {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {}", jobs::WAKEUP_CHANNEL))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            got = rx.recv() => match got {
                Some(()) => wake.notify_one(),
                None => break,
            },
        }
    }
    driver.abort();
    Ok(())
}

/// `host:pid:random`, unique per process, readable in the run history.
fn worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "localhost".to_string());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &suffix[..6])
}
