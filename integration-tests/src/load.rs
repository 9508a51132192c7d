//! Load on both services at once, shared by the `load-test` program and the
//! short load test of the normal suite: the real `etl-service` and
//! `migrator-service` binaries on fresh databases, organisations enabled on
//! a short interval (so ETL runs keep going) and a fake upstream whose
//! backlog grows at a steady rate (so migrator batches keep going), then N
//! concurrent gRPC clients, each on connections of its own, calling
//! `GetJob` and `GetStatus` in turn for the duration.
//!
//! What it measures: per RPC the calls, the errors by status code and the
//! latency distribution (an HDR histogram in microseconds); the runs
//! finished and batches written during the window and the longest stretch
//! with none (a pool that deadlocked would stop both); a health check and
//! one call of each RPC after the load; and the pools' state from
//! `/metrics`.

use crate::avni::{self, Size, Spec};
use crate::binaries::{ServiceProcess, binary, free_addr, release_binary};
use crate::fake_upstream::{Data, FakeUpstream, Generator};
use crate::postgres::TestDatabase;
use crate::services::{Bearer, TEST_TOKEN};
use anyhow::{Context, anyhow};
use avni_proto::etl::v1 as etl_pb;
use avni_proto::migrator::v1 as mig_pb;
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// The source name the migrator is configured with.
pub const SOURCE: &str = "load";

/// What to start and how hard to push.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Concurrent gRPC clients.
    pub clients: usize,
    /// How long the clients call.
    pub duration: Duration,
    /// Organisations enabled on the ETL.
    pub organisations: usize,
    /// `etl.interval_seconds` of their jobs.
    pub interval_seconds: u64,
    /// Use `--release` binaries (for figures) rather than debug ones.
    pub release: bool,
    /// New submissions arriving upstream per second.
    pub upstream_per_second: usize,
    /// The migrator's `batch_size`.
    pub batch_size: u32,
    /// `database.pool_size` of both services (their default when `None`).
    pub pool_size: Option<u32>,
    /// Each client's pace: one GetJob and one GetStatus per this period
    /// (`None`: as fast as the answers come, a closed loop).
    pub pace: Option<Duration>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            clients: 200,
            duration: Duration::from_secs(60),
            organisations: 8,
            interval_seconds: 5,
            release: false,
            upstream_per_second: 200,
            batch_size: 100,
            pool_size: None,
            pace: None,
        }
    }
}

/// Both services running as real binaries, with their databases and the
/// upstream; everything stops when dropped.
pub struct Stack {
    pub options: LoadOptions,
    pub etl_db: TestDatabase,
    pub migrator_db: TestDatabase,
    pub etl: ServiceProcess,
    pub migrator: ServiceProcess,
    pub etl_metrics: SocketAddr,
    pub migrator_metrics: SocketAddr,
    pub upstream: Arc<FakeUpstream>,
    /// The enabled organisations.
    pub entities: Vec<etl_pb::Entity>,
    feeding: CancellationToken,
    _configs: tempfile::TempDir,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.feeding.cancel();
    }
}

fn organisation(uuid: &str) -> etl_pb::Entity {
    etl_pb::Entity {
        uuid: uuid.to_string(),
        r#type: etl_pb::EntityType::Organisation as i32,
    }
}

/// A channel to a service (one connection of its own).
pub async fn connect(addr: SocketAddr) -> anyhow::Result<Channel> {
    Channel::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("cannot connect to {addr}"))
}

type EtlClient = etl_pb::etl_service_client::EtlServiceClient<crate::services::AuthedChannel>;
type MigratorClient =
    mig_pb::forms_migrator_client::FormsMigratorClient<crate::services::AuthedChannel>;

async fn etl_client(addr: SocketAddr) -> anyhow::Result<EtlClient> {
    Ok(
        etl_pb::etl_service_client::EtlServiceClient::with_interceptor(
            connect(addr).await?,
            Bearer::new(Some(TEST_TOKEN)),
        ),
    )
}

async fn migrator_client(addr: SocketAddr) -> anyhow::Result<MigratorClient> {
    Ok(
        mig_pb::forms_migrator_client::FormsMigratorClient::with_interceptor(
            connect(addr).await?,
            Bearer::new(Some(TEST_TOKEN)),
        ),
    )
}

/// Small organisations, generated over several connections at once (the
/// generator is round-trip bound).
pub async fn generate_organisations(
    url: &str,
    count: usize,
    seed: u64,
) -> anyhow::Result<Vec<avni::Org>> {
    let client = crate::postgres::connect(url).await?;
    avni::create_source_tables(&client).await;
    let spec = Spec {
        seed,
        organisations: count,
        size: Size {
            subjects_per_type: 2,
            encounters_per_enrolment: 1,
            encounters_per_subject: 1,
        },
        ..Spec::default()
    };
    let lanes = 4.min(count.max(1));
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..lanes {
        let url = url.to_string();
        let spec = spec.clone();
        tasks.spawn(async move {
            let client = crate::postgres::connect(&url).await?;
            let mut orgs = Vec::new();
            for i in (lane..spec.organisations).step_by(lanes) {
                let bundle = avni::bundle(spec.seed.wrapping_add(i as u64), false, 0);
                let org =
                    avni::metadata::organisation(&client, &spec, &format!("{i}"), bundle).await;
                avni::bulk::fill(&client, &org, spec.size).await;
                orgs.push((i, org));
            }
            Ok::<_, tokio_postgres::Error>(orgs)
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, o)| o).collect())
}

/// The service binary to run.
pub fn service_binary(name: &str, release: bool) -> PathBuf {
    if release {
        release_binary(name, name)
    } else {
        binary(name, name)
    }
}

impl Stack {
    /// Starts everything and waits until every organisation has run once
    /// and the migrator has written a batch, so the window that follows
    /// measures the steady state.
    pub async fn start(options: LoadOptions) -> anyhow::Result<Self> {
        let etl_db = TestDatabase::migrated(etl_service::migrations::migrations()).await;
        let migrator_db = crate::migrator::migrated_repository().await;
        let orgs = generate_organisations(&etl_db.url, options.organisations, 11).await?;

        // The backlog grows at a steady rate from a head start of 5 s.
        let rate = options.upstream_per_second.max(1);
        let upstream =
            Arc::new(FakeUpstream::start(Data::Generated(Generator::new(rate * 5))).await);
        let feeding = CancellationToken::new();
        {
            let upstream = upstream.clone();
            let stop = feeding.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        _ = tick.tick() => {
                            let arrived = rate * 5 + (started.elapsed().as_secs_f64() * rate as f64) as usize;
                            upstream.set_data(Data::Generated(Generator::new(arrived)));
                        }
                    }
                }
            });
        }

        let configs = tempfile::tempdir()?;
        let pool = options
            .pool_size
            .map(|n| format!("database:\n  pool_size: {n}\n"))
            .unwrap_or_default();
        let etl_config = configs.path().join("etl.yaml");
        std::fs::write(
            &etl_config,
            format!(
                "{pool}etl:\n  interval_seconds: {}\n  scheduler_poll_ms: 250\n  sync_offset_seconds: 0\n  lease_seconds: 15\n",
                options.interval_seconds
            ),
        )?;
        let migrator_config = configs.path().join("migrator.yaml");
        std::fs::write(
            &migrator_config,
            format!(
                "{pool}sources:\n  - name: {SOURCE}\n    url: {}\n    batch_size: {}\n    poll_interval_seconds: 0.5\n",
                upstream.url(),
                options.batch_size
            ),
        )?;

        let etl_bin = service_binary("etl-service", options.release);
        let migrator_bin = service_binary("migrator-service", options.release);
        let start = |bin: &PathBuf, config: &PathBuf, db: &str| {
            let addr = free_addr();
            let metrics = free_addr();
            let (listen, metrics_listen) = (addr.to_string(), metrics.to_string());
            let config = config.to_string_lossy().to_string();
            let process = ServiceProcess::launch(crate::binaries::Launch::new(
                bin,
                &["--config", &config, "serve"],
                &[
                    ("DATABASE_URL", db),
                    ("GRPC_LISTEN", &listen),
                    ("AUTH_TOKENS", TEST_TOKEN),
                    ("METRICS_LISTEN", &metrics_listen),
                ],
                addr,
            ))
            .map_err(|e| anyhow!(e))?;
            Ok::<_, anyhow::Error>((process, metrics))
        };
        let (etl, etl_metrics) = start(&etl_bin, &etl_config, &etl_db.url)?;
        let (migrator, migrator_metrics) =
            start(&migrator_bin, &migrator_config, &migrator_db.url)?;

        let entities: Vec<etl_pb::Entity> = orgs.iter().map(|o| organisation(&o.uuid)).collect();
        let mut api = etl_client(etl.addr).await?;
        for entity in &entities {
            api.enable_analytics(etl_pb::EnableAnalyticsRequest {
                entity: Some(entity.clone()),
            })
            .await
            .context("EnableAnalytics")?;
        }
        let stack = Self {
            options,
            etl_db,
            migrator_db,
            etl,
            migrator,
            etl_metrics,
            migrator_metrics,
            upstream,
            entities,
            feeding,
            _configs: configs,
        };
        stack.warm_up().await?;
        Ok(stack)
    }

    async fn warm_up(&self) -> anyhow::Result<()> {
        let etl = self.etl_db.client().await;
        let migrator = self.migrator_db.client().await;
        let started = Instant::now();
        let n = self.entities.len() as i64;
        loop {
            let ran: i64 = etl
                .query_one(
                    "SELECT count(DISTINCT entity_uuid) FROM etl_service.etl_run WHERE status = 'succeeded'",
                    &[],
                )
                .await?
                .get(0);
            let batches: i64 = migrator
                .query_one("SELECT count(*) FROM migration_audit", &[])
                .await?
                .get(0);
            if ran >= n && batches > 0 {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(180) {
                return Err(anyhow!(
                    "warm-up: after 180 s only {ran} of {n} organisations ran and {batches} batches were written"
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// One RPC's results.
#[derive(Debug, Clone)]
pub struct RpcFigures {
    pub calls: u64,
    pub errors: BTreeMap<String, u64>,
    /// Latency of every call, errors included, in microseconds.
    pub latency: Histogram<u64>,
}

impl RpcFigures {
    fn new() -> Self {
        Self {
            calls: 0,
            errors: BTreeMap::new(),
            latency: new_histogram(),
        }
    }

    fn record<T>(&mut self, elapsed: Duration, result: &Result<T, tonic::Status>) {
        self.calls += 1;
        let _ = self.latency.record(
            u64::try_from(elapsed.as_micros())
                .unwrap_or(u64::MAX)
                .max(1),
        );
        if let Err(status) = result {
            *self
                .errors
                .entry(format!("{:?}", status.code()))
                .or_default() += 1;
        }
    }

    fn merge(&mut self, other: &Self) {
        self.calls += other.calls;
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += n;
        }
        let _ = self.latency.add(&other.latency);
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The latency at quantile `q` (0..=1).
    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_micros(self.latency.value_at_quantile(q))
    }

    pub fn max(&self) -> Duration {
        Duration::from_micros(self.latency.max())
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 10 minutes, 3 significant figures.
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|e| panic!("histogram: {e}"))
}

/// Work the services finished while the clients were calling.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub runs_finished: i64,
    pub runs_succeeded: i64,
    /// `(run id, error)` of every run that failed in the window.
    pub runs_failed: Vec<(i64, String)>,
    pub batches: i64,
    pub submissions_written: i64,
    /// The longest stretch of the window in which no run finished.
    pub longest_without_run: Duration,
    /// The longest stretch of the window in which no batch was written.
    pub longest_without_batch: Duration,
}

/// A health check and one call of each RPC after the load.
#[derive(Debug, Clone)]
pub struct FinalCheck {
    pub etl_health: String,
    pub migrator_health: String,
    pub get_job: Result<Duration, String>,
    pub get_status: Result<Duration, String>,
    /// Wall time of all four.
    pub took: Duration,
}

impl FinalCheck {
    pub fn ok(&self) -> bool {
        self.etl_health == "Serving"
            && self.migrator_health == "Serving"
            && self.get_job.is_ok()
            && self.get_status.is_ok()
    }
}

/// Everything one load run found.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub clients: usize,
    pub pace: Option<Duration>,
    pub window: Duration,
    pub get_job: RpcFigures,
    pub get_status: RpcFigures,
    pub progress: Progress,
    pub final_check: FinalCheck,
    /// `db_pool_*` and `fresh_reads_*` lines of each service's `/metrics`
    /// after the load.
    pub etl_pool: Vec<String>,
    pub migrator_pool: Vec<String>,
    /// Largest `db_pool_pending_gets` sampled during the window, per service.
    pub etl_pending_max: f64,
    pub migrator_pending_max: f64,
    /// `/proc/loadavg` before and after.
    pub load_before: String,
    pub load_after: String,
}

impl LoadReport {
    pub fn errors(&self) -> u64 {
        self.get_job.error_count() + self.get_status.error_count()
    }
}

/// The text of `GET /metrics` at `addr`.
pub async fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    Ok(response.error_for_status()?.text().await?)
}

/// A metric's value (summed over its labels; 0 when absent).
pub fn metric(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(n, _)| *n == name || n.starts_with(&format!("{name}{{")))
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .sum()
}

fn pool_lines(scrape: &str) -> Vec<String> {
    scrape
        .lines()
        .filter(|l| l.starts_with("db_pool_") || l.starts_with("fresh_reads_"))
        .map(str::to_string)
        .collect()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn db_now(client: &tokio_postgres::Client) -> anyhow::Result<DateTime<Utc>> {
    Ok(client
        .query_one("SELECT clock_timestamp()", &[])
        .await?
        .get(0))
}

/// The longest gap between consecutive events within `[from, to]`
/// (counting the window's edges).
fn longest_gap(from: DateTime<Utc>, to: DateTime<Utc>, events: &[DateTime<Utc>]) -> Duration {
    let mut points = vec![from];
    points.extend(events.iter().copied().filter(|t| *t >= from && *t <= to));
    points.push(to);
    points.sort();
    points
        .windows(2)
        .map(|w| (w[1] - w[0]).to_std().unwrap_or_default())
        .max()
        .unwrap_or_default()
}

async fn progress(
    stack: &Stack,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Progress> {
    let etl = stack.etl_db.client().await;
    let migrator = stack.migrator_db.client().await;
    let runs = etl
        .query(
            "SELECT id, status, coalesce(error, ''), finished_at FROM etl_service.etl_run \
             WHERE finished_at BETWEEN $1 AND $2 ORDER BY finished_at",
            &[&from, &to],
        )
        .await?;
    let finished: Vec<DateTime<Utc>> = runs.iter().map(|r| r.get(3)).collect();
    let batches = migrator
        .query(
            "SELECT created_timestamp, successfully_processed_form_entries FROM migration_audit \
             WHERE created_timestamp BETWEEN $1 AND $2 ORDER BY created_timestamp",
            &[&from, &to],
        )
        .await?;
    let written: Vec<DateTime<Utc>> = batches.iter().map(|r| r.get(0)).collect();
    Ok(Progress {
        runs_finished: runs.len() as i64,
        runs_succeeded: runs
            .iter()
            .filter(|r| r.get::<_, String>(1) == "succeeded")
            .count() as i64,
        runs_failed: runs
            .iter()
            .filter(|r| r.get::<_, String>(1) != "succeeded")
            .map(|r| (r.get(0), r.get(2)))
            .collect(),
        batches: batches.len() as i64,
        submissions_written: batches.iter().map(|r| i64::from(r.get::<_, i32>(1))).sum(),
        longest_without_run: longest_gap(from, to, &finished),
        longest_without_batch: longest_gap(from, to, &written),
    })
}

async fn health(addr: SocketAddr) -> String {
    let Ok(channel) = connect(addr).await else {
        return "unreachable".into();
    };
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    match client
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
    {
        Ok(r) => match tonic_health::pb::health_check_response::ServingStatus::try_from(
            r.into_inner().status,
        ) {
            Ok(s) => format!("{s:?}"),
            Err(_) => "unknown".into(),
        },
        Err(e) => format!("{:?}", e.code()),
    }
}

async fn final_check(stack: &Stack) -> FinalCheck {
    let started = Instant::now();
    let etl_health = health(stack.etl.addr).await;
    let migrator_health = health(stack.migrator.addr).await;
    let get_job = async {
        let mut api = etl_client(stack.etl.addr)
            .await
            .map_err(|e| e.to_string())?;
        let t = Instant::now();
        api.get_job(etl_pb::GetJobRequest {
            entity: stack.entities.first().cloned(),
        })
        .await
        .map_err(|e| e.to_string())?;
        Ok(t.elapsed())
    }
    .await;
    let get_status = async {
        let mut api = migrator_client(stack.migrator.addr)
            .await
            .map_err(|e| e.to_string())?;
        let t = Instant::now();
        api.get_status(mig_pb::GetStatusRequest {
            source: String::new(),
        })
        .await
        .map_err(|e| e.to_string())?;
        Ok(t.elapsed())
    }
    .await;
    FinalCheck {
        etl_health,
        migrator_health,
        get_job,
        get_status,
        took: started.elapsed(),
    }
}

/// One client: its own connection to each service, `GetJob` (organisations
/// in turn) and `GetStatus` alternately until `deadline`.
async fn client_loop(
    etl: SocketAddr,
    migrator: SocketAddr,
    entities: Arc<Vec<etl_pb::Entity>>,
    offset: usize,
    go: Arc<tokio::sync::Barrier>,
    stop: CancellationToken,
    pace: Option<Duration>,
) -> anyhow::Result<(RpcFigures, RpcFigures)> {
    let mut etl = etl_client(etl).await?;
    let mut migrator = migrator_client(migrator).await?;
    let mut get_job = RpcFigures::new();
    let mut get_status = RpcFigures::new();
    go.wait().await;
    // Paced clients start spread over one period, not all at once.
    let mut tick = pace.map(|p| {
        let spread = p.mul_f64((offset % 100) as f64 / 100.0);
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + spread, p);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut i = offset;
    while !stop.is_cancelled() {
        if let Some(t) = tick.as_mut() {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = t.tick() => {}
            }
        }
        let entity = entities[i % entities.len()].clone();
        i += 1;
        let t = Instant::now();
        let result = etl
            .get_job(etl_pb::GetJobRequest {
                entity: Some(entity),
            })
            .await;
        get_job.record(t.elapsed(), &result);
        if stop.is_cancelled() {
            break;
        }
        let t = Instant::now();
        let result = migrator
            .get_status(mig_pb::GetStatusRequest {
                source: String::new(),
            })
            .await;
        get_status.record(t.elapsed(), &result);
    }
    Ok((get_job, get_status))
}

/// Runs `clients` clients against `stack` for `duration` and gathers the
/// report.
pub async fn run(stack: &Stack, clients: usize, duration: Duration) -> anyhow::Result<LoadReport> {
    let load_before = loadavg();
    let etl_db = stack.etl_db.client().await;
    let entities = Arc::new(stack.entities.clone());
    // Everyone connects first; the clock starts when all are ready.
    let go = Arc::new(tokio::sync::Barrier::new(clients + 1));
    let stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        tasks.spawn(client_loop(
            stack.etl.addr,
            stack.migrator.addr,
            entities.clone(),
            c,
            go.clone(),
            stop.clone(),
            stack.options.pace,
        ));
    }
    go.wait().await;
    let from = db_now(&etl_db).await?;
    let started = Instant::now();
    // Sample the pools while the clients call.
    let mut etl_pending_max: f64 = 0.0;
    let mut migrator_pending_max: f64 = 0.0;
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(1).min(duration.saturating_sub(started.elapsed())))
            .await;
        if let Ok(s) = scrape(stack.etl_metrics).await {
            etl_pending_max = etl_pending_max.max(metric(&s, "db_pool_pending_gets"));
        }
        if let Ok(s) = scrape(stack.migrator_metrics).await {
            migrator_pending_max = migrator_pending_max.max(metric(&s, "db_pool_pending_gets"));
        }
    }
    stop.cancel();
    let to = db_now(&etl_db).await?;
    let window = started.elapsed();
    let mut get_job = RpcFigures::new();
    let mut get_status = RpcFigures::new();
    while let Some(done) = tasks.join_next().await {
        let (j, s) = done??;
        get_job.merge(&j);
        get_status.merge(&s);
    }
    let load_after = loadavg();
    let final_check = final_check(stack).await;
    let progress = progress(stack, from, to).await?;
    let etl_pool = pool_lines(&scrape(stack.etl_metrics).await.unwrap_or_default());
    let migrator_pool = pool_lines(&scrape(stack.migrator_metrics).await.unwrap_or_default());
    Ok(LoadReport {
        clients,
        pace: stack.options.pace,
        window,
        get_job,
        get_status,
        progress,
        final_check,
        etl_pool,
        migrator_pool,
        etl_pending_max,
        migrator_pending_max,
        load_before,
        load_after,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn errors_text(f: &RpcFigures) -> String {
    if f.errors.is_empty() {
        "0".into()
    } else {
        f.errors
            .iter()
            .map(|(code, n)| format!("{n} {code}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl LoadReport {
    /// The figures as Markdown (a table per RPC, then the services' work).
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let secs = self.window.as_secs_f64().max(1e-9);
        let _ = writeln!(
            out,
            "| RPC | calls | errors | calls/s | p50 ms | p90 ms | p99 ms | max ms |\n|---|---|---|---|---|---|---|---|"
        );
        for (name, f) in [("GetJob", &self.get_job), ("GetStatus", &self.get_status)] {
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {:.0} | {} | {} | {} | {} |",
                f.calls,
                errors_text(f),
                f.calls as f64 / secs,
                ms(f.quantile(0.5)),
                ms(f.quantile(0.9)),
                ms(f.quantile(0.99)),
                ms(f.max()),
            );
        }
        let p = &self.progress;
        let fc = &self.final_check;
        let _ = writeln!(
            out,
            "\n| during the window | value |\n|---|---|\n\
             | ETL runs finished (succeeded) | {} ({}) |\n\
             | longest stretch with no run finishing | {:.1} s |\n\
             | migrator batches written (submissions) | {} ({}) |\n\
             | longest stretch with no batch written | {:.1} s |\n\
             | most callers waiting for a pooled connection (sampled each second), ETL / migrator | {} / {} |\n\
             | after: health ETL / migrator | {} / {} |\n\
             | after: GetJob / GetStatus | {} / {} |\n\
             | after: health checks and both calls took | {} ms |\n\
             | load average (1, 5, 15 min) before / after | {} / {} |",
            p.runs_finished,
            p.runs_succeeded,
            p.longest_without_run.as_secs_f64(),
            p.batches,
            p.submissions_written,
            p.longest_without_batch.as_secs_f64(),
            self.etl_pending_max,
            self.migrator_pending_max,
            fc.etl_health,
            fc.migrator_health,
            fc.get_job
                .as_ref()
                .map(|d| format!("{} ms", ms(*d)))
                .unwrap_or_else(|e| e.clone()),
            fc.get_status
                .as_ref()
                .map(|d| format!("{} ms", ms(*d)))
                .unwrap_or_else(|e| e.clone()),
            ms(fc.took),
            self.load_before,
            self.load_after,
        );
        if !p.runs_failed.is_empty() {
            let _ = writeln!(out, "\nRuns that failed in the window:\n");
            for (id, error) in &p.runs_failed {
                let _ = writeln!(out, "- run {id}: {error}");
            }
        }
        let _ = writeln!(
            out,
            "\nPool state after the load (`/metrics`):\n\n```\n# etl-service\n{}\n# migrator-service\n{}\n```",
            self.etl_pool.join("\n"),
            self.migrator_pool.join("\n")
        );
        out
    }

    pub fn json(&self) -> serde_json::Value {
        let rpc = |f: &RpcFigures| {
            serde_json::json!({
                "calls": f.calls,
                "errors": f.errors,
                "p50_ms": f.quantile(0.5).as_secs_f64() * 1000.0,
                "p90_ms": f.quantile(0.9).as_secs_f64() * 1000.0,
                "p99_ms": f.quantile(0.99).as_secs_f64() * 1000.0,
                "max_ms": f.max().as_secs_f64() * 1000.0,
                "per_second": f.calls as f64 / self.window.as_secs_f64().max(1e-9),
            })
        };
        serde_json::json!({
            "clients": self.clients,
            "pace_ms": self.pace.map(|p| p.as_secs_f64() * 1000.0),
            "window_seconds": self.window.as_secs_f64(),
            "get_job": rpc(&self.get_job),
            "get_status": rpc(&self.get_status),
            "runs_finished": self.progress.runs_finished,
            "runs_failed": self.progress.runs_failed.len(),
            "batches": self.progress.batches,
            "submissions_written": self.progress.submissions_written,
            "longest_without_run_s": self.progress.longest_without_run.as_secs_f64(),
            "longest_without_batch_s": self.progress.longest_without_batch.as_secs_f64(),
            "final_check_ok": self.final_check.ok(),
            "load_before": self.load_before,
            "load_after": self.load_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_gap_counts_the_window_edges() {
        let t0 = DateTime::<Utc>::from_timestamp(1_000, 0).unwrap_or_default();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        assert_eq!(longest_gap(t0, at(10), &[]), Duration::from_secs(10));
        assert_eq!(
            longest_gap(t0, at(10), &[at(2), at(3), at(9)]),
            Duration::from_secs(6)
        );
        // Events outside the window do not count.
        assert_eq!(
            longest_gap(t0, at(10), &[at(-5), at(4), at(20)]),
            Duration::from_secs(6)
        );
    }

    #[test]
    fn metrics_are_summed_over_labels() {
        let text = "# TYPE db_pool_gets_total counter\n\
                    db_pool_gets_total{outcome=\"direct\"} 5\n\
                    db_pool_gets_total{outcome=\"waited\"} 2\n\
                    db_pool_pending_gets 3\n";
        assert_eq!(metric(text, "db_pool_gets_total"), 7.0);
        assert_eq!(metric(text, "db_pool_pending_gets"), 3.0);
        assert_eq!(metric(text, "db_pool_missing"), 0.0);
    }
}
