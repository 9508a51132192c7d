//! The batch job of each source: drain the backlog (poll again at once
//! until a page comes back empty), then wait for the interval or a RunNow.
//! One task per source and a lock per source, so a source is never polled
//! twice at once in a process (and an advisory lock per batch keeps other
//! processes in step). When PostgreSQL is down the job pauses with backoff
//! and resumes from the committed watermark.

use crate::config::{MAX_BATCH_SIZE, RetrySettings, SourceSettings};
use crate::error::Error;
use crate::metrics;
use crate::poll::batch::{
    BatchOutcome, BatchReport, Cursor, DecodedPage, PageRequest, decode_page, next_timestamp,
    process_page, read_cursor,
};
use crate::poll::refill::refill_source;
use crate::poll::upstream::{Upstream, UpstreamError};
use crate::repository::catalog::SharedCatalog;
use serde_json::value::RawValue;
use service_kit::db::Pool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// What a source's job is doing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum State {
    #[default]
    Idle,
    Polling,
    BackingOff,
    Stopped,
}

/// Pages in a row that move the cursor nowhere before a drain gives up.
const MAX_STALLS: u32 = 3;

/// The live part of a source's status (the rest is in the repository).
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub state: State,
    pub last_error: Option<(String, SystemTime)>,
    pub last_poll: Option<SystemTime>,
    pub next_poll: Option<SystemTime>,
    /// The highest `serverVersion` fetched from the source so far.
    pub newest_seen: i64,
    /// The last watermark read or committed (for status while PostgreSQL is down).
    pub watermark: i64,
    pub batch_in_progress: usize,
}

/// A page asked for ahead of time; abandoned (and its request cancelled)
/// when the drain goes another way.
struct Prefetch {
    request: PageRequest,
    handle: tokio::task::JoinHandle<Result<Vec<Box<RawValue>>, UpstreamError>>,
}

impl Prefetch {
    /// Starts fetching `request` in a task of its own.
    fn start(upstream: &Upstream, request: PageRequest) -> Self {
        let ahead = upstream.clone();
        Self {
            request,
            handle: tokio::spawn(async move {
                ahead.fetch(request.timestamp, request.batch_size).await
            }),
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Totals of one drain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainSummary {
    pub batches: usize,
    pub written: usize,
    pub duplicates: usize,
    pub failed: usize,
    pub watermark: i64,
}

impl DrainSummary {
    fn add(&mut self, report: &BatchReport) {
        self.batches += 1;
        self.written += report.written;
        self.duplicates += report.duplicates;
        self.failed += report.failed;
        self.watermark = report.watermark;
    }
}

/// One configured source.
pub struct Source {
    pub settings: SourceSettings,
    upstream: Result<Upstream, String>,
    live: Mutex<Live>,
    wake: Notify,
    draining: tokio::sync::Mutex<()>,
    /// The catalog generation this source last refilled at (0: never).
    refilled_at: AtomicU64,
}

impl Source {
    pub fn new(settings: SourceSettings) -> Self {
        let upstream = Upstream::new(&settings).map_err(|e| e.to_string());
        Self {
            settings,
            upstream,
            live: Mutex::new(Live::default()),
            wake: Notify::new(),
            draining: tokio::sync::Mutex::new(()),
            refilled_at: AtomicU64::new(0),
        }
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The URL polled (without its own `timestamp` and `batch-size`),
    /// without credentials.
    pub fn url(&self) -> String {
        match &self.upstream {
            Ok(upstream) => upstream.url(),
            Err(_) => crate::poll::upstream::display_url(&self.settings.url),
        }
    }

    pub fn live(&self) -> Live {
        self.live.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut Live)) {
        if let Ok(mut live) = self.live.lock() {
            f(&mut live);
        }
    }

    fn fail(&self, state: State, message: String) {
        self.update(|l| {
            l.state = state;
            l.last_error = Some((message, SystemTime::now()));
            l.batch_in_progress = 0;
        });
    }

    /// Asks the job to poll now (and to resume if it stopped). A drain in
    /// progress is not interrupted; another one follows it.
    pub fn run_now(&self) {
        self.wake.notify_one();
    }

    /// The upstream client, or why it could not be built.
    fn upstream(&self) -> Result<&Upstream, Error> {
        self.upstream
            .as_ref()
            .map_err(|e| Error::Upstream(UpstreamError::Setup(e.clone())))
    }

    /// A page fetched and decoded, about to be written.
    fn batch_started(&self, page_len: usize, decoded: &DecodedPage<'_>) {
        self.update(|l| {
            l.batch_in_progress = page_len;
            l.newest_seen = l.newest_seen.max(decoded.max_server_version.unwrap_or(0));
            metrics::record_lag(self.name(), l.newest_seen, l.watermark);
        });
    }

    /// A batch committed: its metrics, the live watermark and the log.
    fn batch_committed(&self, report: &BatchReport) {
        metrics::record_batch(self.name(), report);
        self.update(|l| {
            l.watermark = report.watermark;
            l.newest_seen = l.newest_seen.max(report.watermark);
            metrics::record_lag(self.name(), l.newest_seen, l.watermark);
        });
        tracing::info!(
            source = self.name(),
            total = report.total,
            written = report.written,
            duplicates = report.duplicates,
            failed = report.failed,
            watermark = report.watermark,
            "batch committed"
        );
    }
}

/// The size of the pages a drain asks for, and how many pages in a row
/// moved the cursor nowhere.
struct Pacing {
    base: u32,
    batch_size: u32,
    stalls: u32,
    /// Pages in a row with nothing after the timestamp asked for.
    behind: u32,
}

impl Pacing {
    fn new(base: u32) -> Self {
        Self {
            base,
            batch_size: base,
            stalls: 0,
            behind: 0,
        }
    }

    /// Checks a non-empty page against what was asked: the real server
    /// sends only submissions after the timestamp, so a page with nothing
    /// after it is a stale one (tolerated once or twice: a retrying proxy
    /// serves one) or an upstream that ignores the timestamp (stopped,
    /// before it fills the archive with repeats for ever).
    fn check_page(
        &mut self,
        upstream: &Upstream,
        request: &PageRequest,
        max_server_version: Option<i64>,
    ) -> Result<(), Error> {
        match max_server_version {
            Some(newest) if newest <= request.timestamp => {
                self.behind += 1;
                if self.behind >= MAX_STALLS {
                    return Err(Error::Upstream(UpstreamError::IgnoresTimestamp {
                        url: upstream.url(),
                        pages: self.behind,
                        timestamp: request.timestamp,
                        newest,
                    }));
                }
            }
            _ => self.behind = 0,
        }
        Ok(())
    }

    /// The page after `request`, which returned `page_len` elements up to
    /// `max_server_version`: larger when this one is full and stuck.
    fn ahead(
        &self,
        request: &PageRequest,
        page_len: usize,
        max_server_version: Option<i64>,
    ) -> PageRequest {
        let next_timestamp = next_timestamp(request, page_len, max_server_version);
        let full = page_len >= request.batch_size as usize;
        PageRequest {
            timestamp: next_timestamp,
            batch_size: if full && next_timestamp <= request.timestamp {
                self.batch_size.saturating_mul(2).min(MAX_BATCH_SIZE)
            } else {
                self.base
            },
        }
    }

    /// Follows a committed batch: counts a stall, grows the page past a
    /// shared `serverVersion`, or gives up.
    fn after(&mut self, report: &BatchReport, request: &PageRequest) -> Result<(), Error> {
        // A page that moves the cursor nowhere (nothing after
        // the timestamp, or no readable serverVersion): a one-off
        // repeat is tolerated, an upstream stuck on it is not.
        if !report.full && report.next_timestamp <= request.timestamp {
            self.stalls += 1;
            if self.stalls >= MAX_STALLS {
                return Err(Error::NoProgress(format!(
                    "{MAX_STALLS} pages after timestamp {} moved the watermark nowhere (no newer readable serverVersion); trying again at the next interval",
                    request.timestamp
                )));
            }
        } else {
            self.stalls = 0;
        }
        if report.stuck(request) {
            // Only a larger page can get past a serverVersion
            // that more submissions share than fit on one page.
            if self.batch_size >= MAX_BATCH_SIZE {
                return Err(Error::NoProgress(format!(
                    "more than {MAX_BATCH_SIZE} submissions share serverVersion {}; the upstream cannot page past them",
                    report.watermark
                )));
            }
            self.batch_size = self.batch_size.saturating_mul(2).min(MAX_BATCH_SIZE);
        } else {
            self.batch_size = self.base;
        }
        Ok(())
    }
}

/// The domain façade: sources, the repository pool and the catalog.
pub struct Migrator {
    pub pool: Pool,
    pub catalog: Arc<SharedCatalog>,
    sources: Vec<Arc<Source>>,
}

impl Migrator {
    pub fn new(pool: Pool, catalog: Arc<SharedCatalog>, sources: Vec<SourceSettings>) -> Self {
        Self {
            pool,
            catalog,
            sources: sources
                .into_iter()
                .map(|s| Arc::new(Source::new(s)))
                .collect(),
        }
    }

    pub fn sources(&self) -> &[Arc<Source>] {
        &self.sources
    }

    pub fn source(&self, name: &str) -> Option<&Arc<Source>> {
        self.sources.iter().find(|s| s.name() == name)
    }

    /// Drains `source`: fetches and commits pages until one is empty.
    /// `progress` is called after every committed batch.
    pub async fn drain(
        &self,
        source: &Source,
        shutdown: &CancellationToken,
        mut progress: impl FnMut(&DrainSummary),
    ) -> Result<DrainSummary, Error> {
        let upstream = source.upstream()?;
        let _one_at_a_time = source.draining.lock().await;
        let mut summary = DrainSummary::default();
        let mut pacing = Pacing::new(source.settings.batch_size);
        let mut prefetched: Option<Prefetch> = None;
        loop {
            let cursor = self.cursor_of(source).await?;
            summary.watermark = cursor.watermark;
            let request = PageRequest {
                timestamp: cursor.next_timestamp,
                batch_size: pacing.batch_size,
            };
            let page = fetch_page(upstream, prefetched.take(), request, shutdown).await?;
            if page.is_empty() {
                break;
            }
            let decoded = decode_page(&page);
            pacing.check_page(upstream, &request, decoded.max_server_version)?;
            source.batch_started(page.len(), &decoded);
            // Ask for the next page while this one is written: where it
            // starts follows from this page alone (the same rule the
            // committed cursor follows), so the wait for the upstream
            // overlaps the wait for PostgreSQL.
            let next = pacing.ahead(&request, page.len(), decoded.max_server_version);
            prefetched = Some(Prefetch::start(upstream, next));
            let outcome = process_page(
                &self.pool,
                &self.catalog,
                source.name(),
                source.settings.strict,
                request,
                &decoded,
            )
            .await;
            source.update(|l| l.batch_in_progress = 0);
            match outcome? {
                BatchOutcome::Superseded => {
                    tracing::info!(
                        source = source.name(),
                        "another process committed this source's batch first; fetching again"
                    );
                    continue;
                }
                BatchOutcome::Committed(report) => {
                    summary.add(&report);
                    source.batch_committed(&report);
                    progress(&summary);
                    pacing.after(&report, &request)?;
                    self.refill_if_catalog_changed(source).await;
                }
            }
            if shutdown.is_cancelled() {
                return Err(Error::Shutdown);
            }
        }
        Ok(summary)
    }

    /// After a batch: when the catalog was loaded again since this source
    /// last refilled (a migration may have added a column), fills the new
    /// columns from the archive for what the source already wrote. The
    /// batches of this source that wrote with the older catalog have all
    /// committed (they run one at a time), so none is missed. A failure is
    /// logged and the refill tried again after the next batch.
    async fn refill_if_catalog_changed(&self, source: &Source) {
        let generation = self.catalog.generation();
        if !source.settings.refill_after_migrations
            || source.refilled_at.load(Ordering::SeqCst) == generation
        {
            return;
        }
        match refill_source(&self.pool, &self.catalog, source.name()).await {
            Ok(report) => {
                source.refilled_at.store(generation, Ordering::SeqCst);
                if report.rows_updated > 0 || !report.resolved.is_empty() {
                    tracing::info!(
                        source = source.name(),
                        rows_updated = report.rows_updated,
                        resolved = report.resolved.len(),
                        values_failed = report.values_failed,
                        "filled columns added by a migration from the archive"
                    );
                }
            }
            Err(e) => tracing::warn!(
                source = source.name(),
                error = %e,
                "refilling after a catalog change failed; trying again after the next batch"
            ),
        }
    }

    /// The source's committed cursor, also noted in its live state.
    async fn cursor_of(&self, source: &Source) -> Result<Cursor, Error> {
        let cursor = {
            let mut conn = self.pool.get().await?;
            read_cursor(&mut conn, source.name()).await?
        };
        source.update(|l| {
            l.watermark = cursor.watermark;
            l.newest_seen = l.newest_seen.max(cursor.watermark);
        });
        Ok(cursor)
    }

    /// The job of one source, until `shutdown`.
    pub async fn run_source(
        self: Arc<Self>,
        source: Arc<Source>,
        mut database_up: watch::Receiver<bool>,
        shutdown: CancellationToken,
    ) {
        let name = source.name().to_string();
        let mut database_backoff = Backoff::new(&source.settings.retry);
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            if !*database_up.borrow() {
                source.fail(
                    State::BackingOff,
                    "PostgreSQL is unreachable; polling resumes when it is back".into(),
                );
                tokio::select! {
                    _ = database_up.wait_for(|up| *up) => {}
                    () = shutdown.cancelled() => break,
                }
            }
            source.update(|l| l.state = State::Polling);
            let result = self.drain(&source, &shutdown, |_| {}).await;
            let Some(wait) = after_drain(&source, result, &mut database_backoff) else {
                break;
            };
            source.update(|l| l.next_poll = wait.map(|w| SystemTime::now() + w));
            if !wait_for_next(&source, wait, &shutdown).await {
                break;
            }
        }
        source.update(|l| l.state = State::Idle);
        tracing::debug!(source = %name, "batch job stopped");
    }

    /// Starts the job of every source.
    pub fn spawn_all(
        self: &Arc<Self>,
        database_up: watch::Receiver<bool>,
        shutdown: CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        self.sources
            .iter()
            .map(|s| {
                tokio::spawn(self.clone().run_source(
                    s.clone(),
                    database_up.clone(),
                    shutdown.clone(),
                ))
            })
            .collect()
    }
}

/// Takes the next page: the one asked for ahead when it is the one wanted
/// (the other one is abandoned), else a fresh request.
async fn fetch_page(
    upstream: &Upstream,
    prefetched: Option<Prefetch>,
    request: PageRequest,
    shutdown: &CancellationToken,
) -> Result<Vec<Box<RawValue>>, Error> {
    let fetched = match prefetched {
        Some(mut ahead) if ahead.request == request => tokio::select! {
            r = &mut ahead.handle => r.unwrap_or_else(|e| {
                Err(UpstreamError::Setup(format!("the page fetch stopped: {e}")))
            }),
            () = shutdown.cancelled() => return Err(Error::Shutdown),
        },
        _ => tokio::select! {
            page = upstream.fetch(request.timestamp, request.batch_size) => page,
            () = shutdown.cancelled() => return Err(Error::Shutdown),
        },
    };
    fetched.map_err(Error::Upstream)
}

/// The wait before a source's next drain, from how the last one ended:
/// `Some(None)` waits for a RunNow only; `None` is shutdown.
fn after_drain(
    source: &Source,
    result: Result<DrainSummary, Error>,
    database_backoff: &mut Backoff,
) -> Option<Option<Duration>> {
    let name = source.name();
    let wait = match result {
        Ok(summary) => {
            database_backoff.reset();
            source.update(|l| {
                l.state = State::Idle;
                l.last_error = None;
                l.last_poll = Some(SystemTime::now());
            });
            if summary.batches > 0 {
                tracing::info!(source = %name, batches = summary.batches, written = summary.written, failed = summary.failed, watermark = summary.watermark, "backlog drained");
            }
            Some(source.settings.poll_interval())
        }
        Err(Error::Shutdown) => return None,
        Err(Error::Upstream(e)) if e.stops_the_source() => {
            tracing::error!(source = %name, error = %e, "source stopped; it resumes on RunNow or restart");
            source.fail(State::Stopped, e.to_string());
            None
        }
        Err(e @ (Error::Upstream(_) | Error::NoProgress(_))) => {
            tracing::warn!(source = %name, error = %e, "poll failed; retrying at the next interval");
            source.fail(State::BackingOff, e.to_string());
            Some(source.settings.poll_interval())
        }
        Err(e) => {
            tracing::warn!(source = %name, error = %e, retry_in_ms = database_backoff.current.as_millis() as u64, "repository error; backing off");
            source.fail(State::BackingOff, e.to_string());
            Some(database_backoff.next())
        }
    };
    Some(wait)
}

/// Sleeps for `wait` (for ever when `None`) or until a RunNow; `false` on
/// shutdown.
async fn wait_for_next(
    source: &Source,
    wait: Option<Duration>,
    shutdown: &CancellationToken,
) -> bool {
    match wait {
        Some(wait) => tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = source.wake.notified() => true,
            () = shutdown.cancelled() => false,
        },
        None => tokio::select! {
            () = source.wake.notified() => true,
            () = shutdown.cancelled() => false,
        },
    }
}

/// The growing wait after repository errors, reset by a good drain.
struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    fn new(retry: &RetrySettings) -> Self {
        let min = retry.min_delay().max(Duration::from_millis(100));
        Self {
            min,
            max: retry.max_delay().max(Duration::from_millis(100)),
            current: min,
        }
    }

    fn reset(&mut self) {
        self.current = self.min;
    }

    /// The wait now (jittered), doubling the next one up to the maximum.
    fn next(&mut self) -> Duration {
        let wait = jitter(self.current);
        self.current = (self.current * 2).min(self.max);
        wait
    }
}

/// Up to a quarter more or less, so replicas that failed together do not
/// retry together.
fn jitter(d: Duration) -> Duration {
    let factor = 0.75 + rand::random::<f64>() * 0.5;
    d.mul_f64(factor)
}
