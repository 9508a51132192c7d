//! The migrator's reliability runs (issue #8), shared by the tests in
//! `tests/migrator_reliability.rs` and the `migrator-crash-loop` program:
//!
//! - [`crash_loop`]: the real `migrator-service` binary killed with SIGKILL
//!   at seeded random points while it drains a backlog, restarted each
//!   time, until the backlog is drained;
//! - [`chaos_run`]: a drain against an upstream that misbehaves at random
//!   (seeded), compared row by row with a drain of the same data from a
//!   well-behaved upstream;
//! - [`check_exactly_once`]: each upstream submission is in the repository
//!   exactly once, in its form table or in `error_audit`, by `instance_id`.

use crate::binaries::{ServiceProcess, free_addr};
use crate::fake_upstream::{
    Chaos, Data, FakeUpstream, Generator, SAMPLE_FAILING, sample_elements, with_sample_quirks,
};
use migrator_service::config::{RetrySettings, SourceSettings};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What must become of one upstream submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// One row in a form table, no unresolved error.
    Written,
    /// One unresolved `error_audit` row whose reason contains this text,
    /// and no form row.
    Failed(String),
}

/// One submission the upstream serves and what must become of it.
#[derive(Debug, Clone)]
pub struct Expected {
    pub instance_id: String,
    pub expect: Expect,
}

/// The upstream of the crash loop and the chaos runs: `count` generated
/// submissions, `per_version` of them sharing each `serverVersion`, with a
/// copy of the next sample element after every `quirks_every`-th (three in
/// seven of which fail). Returns the elements and what must become of each.
pub fn quirky_upstream(
    count: usize,
    per_version: usize,
    quirks_every: usize,
    seed: u32,
) -> Result<(Vec<Value>, Vec<Expected>), String> {
    let generator = Generator {
        per_version: per_version.max(1),
        seed,
        ..Generator::new(count)
    };
    let elements = with_sample_quirks(&generator, quirks_every)?;
    let sample_len = sample_elements()?.len();
    let sample_reasons = [
        (4, "Unknown form name"),
        (5, "Invalid value"),
        (6, "formInstance is not valid JSON"),
    ];
    let mut expected = Vec::with_capacity(elements.len());
    for e in &elements {
        let id = e["instanceId"]
            .as_str()
            .ok_or("an element without instanceId")?
            .to_string();
        // Quirk q has the id `<seed>-0000-4000-9000-<q>`.
        let quirk = id
            .split_once("-0000-4000-9000-")
            .and_then(|(_, q)| q.parse::<usize>().ok());
        let expect = match quirk.map(|q| q % sample_len) {
            Some(position) if SAMPLE_FAILING.contains(&position) => {
                let reason = sample_reasons
                    .iter()
                    .find(|(p, _)| *p == position)
                    .map(|(_, r)| *r)
                    .unwrap_or("");
                Expect::Failed(reason.to_string())
            }
            _ => Expect::Written,
        };
        expected.push(Expected {
            instance_id: id,
            expect,
        });
    }
    Ok((elements, expected))
}

/// What the repository holds, by `instance_id`.
#[derive(Debug, Default)]
pub struct Holdings {
    /// instance_id -> rows across every form table.
    pub form_rows: HashMap<String, usize>,
    /// instance_id -> reasons of its unresolved `error_audit` rows.
    pub errors: HashMap<String, Vec<String>>,
    /// raw payload -> reasons, for unresolved errors without an instance_id.
    pub anonymous_errors: HashMap<String, Vec<String>>,
}

/// The form tables: every table of the schema with an `instance_id`
/// column, except the archive and `error_audit`.
pub async fn form_tables(client: &tokio_postgres::Client) -> Result<Vec<String>, String> {
    let rows = client
        .query(
            "SELECT table_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND column_name = 'instance_id' \
               AND table_name NOT IN ('form_submission', 'error_audit') ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| format!("form tables: {e}"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Reads what the repository holds.
pub async fn holdings(client: &tokio_postgres::Client) -> Result<Holdings, String> {
    let mut h = Holdings::default();
    for table in form_tables(client).await? {
        let sql = format!(
            "SELECT instance_id::text, count(*) FROM {} GROUP BY 1",
            service_kit::sql::quote_ident(&table)
        );
        for row in client
            .query(&sql, &[])
            .await
            .map_err(|e| format!("{sql}: {e}"))?
        {
            let n: i64 = row.get(1);
            *h.form_rows.entry(row.get(0)).or_default() += n as usize;
        }
    }
    let rows = client
        .query(
            "SELECT instance_id, raw_payload, failure_reason FROM error_audit WHERE resolved_at IS NULL",
            &[],
        )
        .await
        .map_err(|e| format!("error_audit: {e}"))?;
    for row in rows {
        let reason: String = row.get(2);
        match row.get::<_, Option<String>>(0) {
            Some(id) => h.errors.entry(id).or_default().push(reason),
            None => h
                .anonymous_errors
                .entry(row.get(1))
                .or_default()
                .push(reason),
        }
    }
    Ok(h)
}

/// How the repository compares with the upstream's list.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub submissions: usize,
    pub written: usize,
    pub failed: usize,
    /// Submissions held more than once (form rows plus error rows > 1).
    pub duplicates: usize,
    /// Submissions held nowhere.
    pub missing: usize,
    /// Held once, but written where a failure was expected or the other
    /// way round, or failed for another reason than expected.
    pub misplaced: usize,
    /// instance_ids in the repository that the upstream never served.
    pub unexpected: usize,
    /// Up to ten examples of what went wrong.
    pub examples: Vec<String>,
}

impl Tally {
    pub fn is_exact(&self) -> bool {
        self.duplicates == 0 && self.missing == 0 && self.misplaced == 0 && self.unexpected == 0
    }

    fn example(&mut self, text: String) {
        if self.examples.len() < 10 {
            self.examples.push(text);
        }
    }
}

/// Checks each expected submission is held exactly once, as expected.
pub fn tally(expected: &[Expected], h: &Holdings) -> Tally {
    let mut t = Tally {
        submissions: expected.len(),
        ..Tally::default()
    };
    let mut upstream: HashMap<&str, usize> = HashMap::new();
    for e in expected {
        *upstream.entry(e.instance_id.as_str()).or_default() += 1;
    }
    for e in expected {
        let rows = h.form_rows.get(&e.instance_id).copied().unwrap_or(0);
        let reasons = h
            .errors
            .get(&e.instance_id)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let held = rows + reasons.len();
        if held == 0 {
            t.missing += 1;
            t.example(format!("{} missing", e.instance_id));
            continue;
        }
        if held > 1 {
            t.duplicates += 1;
            t.example(format!(
                "{} held {held} times ({rows} form rows, errors {reasons:?})",
                e.instance_id
            ));
            continue;
        }
        match (&e.expect, rows) {
            (Expect::Written, 1) => t.written += 1,
            (Expect::Failed(why), 0) if reasons[0].contains(why.as_str()) => t.failed += 1,
            (expect, _) => {
                t.misplaced += 1;
                t.example(format!(
                    "{}: expected {expect:?}, found {rows} form rows and errors {reasons:?}",
                    e.instance_id
                ));
            }
        }
    }
    let strangers: Vec<&String> = h
        .form_rows
        .keys()
        .chain(h.errors.keys())
        .filter(|id| !upstream.contains_key(id.as_str()))
        .collect();
    t.unexpected = strangers.len() + h.anonymous_errors.len();
    for s in strangers.into_iter().take(3) {
        t.example(format!("{s} is held but was never served"));
    }
    t
}

/// [`holdings`] then [`tally`].
pub async fn check_exactly_once(
    client: &tokio_postgres::Client,
    expected: &[Expected],
) -> Result<Tally, String> {
    Ok(tally(expected, &holdings(client).await?))
}

/// The latest watermark of a source (0 before its first batch).
pub async fn watermark(client: &tokio_postgres::Client, source: &str) -> Result<i64, String> {
    Ok(client
        .query_opt(
            "SELECT last_polled_timestamp FROM migration_audit WHERE source = $1 ORDER BY id DESC LIMIT 1",
            &[&source],
        )
        .await
        .map_err(|e| format!("watermark: {e}"))?
        .map(|r| r.get::<_, i64>(0))
        .unwrap_or(0))
}

fn server_version(element: &Value) -> i64 {
    element["serverVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// How the crash loop runs.
#[derive(Debug, Clone)]
pub struct CrashLoopOptions {
    /// Generated submissions (sample quirks come on top).
    pub submissions: usize,
    pub seed: u64,
    /// SIGKILLs to deliver (fewer when the backlog drains first).
    pub kills: usize,
    pub batch_size: u32,
    /// Generated submissions sharing each serverVersion.
    pub per_version: usize,
    /// A sample element after every N-th generated one (0: none).
    pub quirks_every: usize,
    /// The `migrator-service` binary.
    pub migrator: PathBuf,
    /// Gives up after this long.
    pub limit: Duration,
}

/// One SIGKILL.
#[derive(Debug, Clone)]
pub struct Kill {
    /// How long the process had run.
    pub after: Duration,
    /// The committed watermark's position in the backlog when it died (the
    /// number of upstream submissions at or below it).
    pub position: usize,
}

/// What the crash loop did and found.
#[derive(Debug, Clone)]
pub struct CrashLoopReport {
    pub upstream_submissions: usize,
    pub expected_failures: usize,
    pub kills: Vec<Kill>,
    pub starts: usize,
    pub elapsed: Duration,
    pub tally: Tally,
    /// `migration_audit` rows (committed batches) and the repeats they skipped.
    pub batches: i64,
    pub repeats_skipped: i64,
    /// Log lines of any process that mention a panic.
    pub panics: Vec<String>,
}

/// The backlog position (submissions at or below the watermark).
fn position(versions: &[i64], watermark: i64) -> usize {
    versions.partition_point(|v| *v <= watermark)
}

/// Kills the real migrator at seeded random points of a drain, restarting
/// it each time, until the backlog is drained; then checks the repository.
pub async fn crash_loop(options: &CrashLoopOptions) -> Result<CrashLoopReport, String> {
    let started = Instant::now();
    let (elements, expected) = quirky_upstream(
        options.submissions,
        options.per_version,
        options.quirks_every,
        options.seed as u32,
    )?;
    let versions: Vec<i64> = elements.iter().map(server_version).collect();
    let last = versions.iter().copied().max().unwrap_or(0);
    let upstream = FakeUpstream::start(Data::Elements(elements)).await;
    let db = crate::migrator::migrated_repository().await;
    let sql = db.client().await;
    let dir = std::env::temp_dir().join(format!("migrator-crash-loop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let config = dir.join("migrator.yaml");
    std::fs::write(
        &config,
        format!(
            "sources:\n  - name: drishti\n    url: {}\n    batch_size: {}\n    poll_interval_seconds: 1\n",
            upstream.url(),
            options.batch_size
        ),
    )
    .map_err(|e| format!("{}: {e}", config.display()))?;

    let mut rng = StdRng::seed_from_u64(options.seed);
    // Where to kill: positions in the backlog, in order, and a delay after
    // reaching each (so a kill lands anywhere in a batch: fetching,
    // writing, committing).
    let mut targets: Vec<usize> = (0..options.kills)
        .map(|_| rng.random_range(0..versions.len().max(1)))
        .collect();
    targets.sort_unstable();
    let mut kills = Vec::new();
    let mut starts = 0usize;
    let mut logs = Vec::new();
    let mut finished = false;
    for target in targets {
        let process = start(&options.migrator, &config, &db.url).await?;
        starts += 1;
        let born = Instant::now();
        logs.push(process.log_path().to_path_buf());
        // A quarter of the kills come soon after start, whatever the progress.
        let early = rng.random_bool(0.25);
        let delay = Duration::from_millis(rng.random_range(0..60));
        loop {
            let w = watermark(&sql, "drishti").await?;
            if w >= last {
                finished = true;
                break;
            }
            if early || position(&versions, w) >= target {
                break;
            }
            if started.elapsed() > options.limit {
                return Err(format!("gave up after {:?}", options.limit));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if finished {
            drop(process);
            break;
        }
        tokio::time::sleep(if early {
            Duration::from_millis(rng.random_range(0..300))
        } else {
            delay
        })
        .await;
        let mut process = process;
        process.kill();
        let w = watermark(&sql, "drishti").await?;
        kills.push(Kill {
            after: born.elapsed(),
            position: position(&versions, w),
        });
    }
    // The last start drains what is left.
    let mut process = start(&options.migrator, &config, &db.url).await?;
    starts += 1;
    logs.push(process.log_path().to_path_buf());
    loop {
        if watermark(&sql, "drishti").await? >= last {
            break;
        }
        if let Some(status) = process.exited() {
            return Err(format!(
                "migrator-service exited with {status}:\n{}",
                process.log()
            ));
        }
        if started.elapsed() > options.limit {
            return Err(format!("gave up after {:?}", options.limit));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let stopped = tokio::task::spawn_blocking(move || process.stop(Duration::from_secs(20)))
        .await
        .map_err(|e| e.to_string())?;
    stopped?;
    let tally = check_exactly_once(&sql, &expected).await?;
    let audit = sql
        .query_one(
            "SELECT count(*), coalesce(sum(duplicate_form_entries), 0)::int8 FROM migration_audit",
            &[],
        )
        .await
        .map_err(|e| format!("migration_audit: {e}"))?;
    let panics = logs
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|text| {
            text.lines()
                .filter(|l| l.contains("panicked"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(CrashLoopReport {
        upstream_submissions: expected.len(),
        expected_failures: expected
            .iter()
            .filter(|e| matches!(e.expect, Expect::Failed(_)))
            .count(),
        kills,
        starts,
        elapsed,
        tally,
        batches: audit.get(0),
        repeats_skipped: audit.get(1),
        panics,
    })
}

async fn start(
    exe: &std::path::Path,
    config: &std::path::Path,
    database_url: &str,
) -> Result<ServiceProcess, String> {
    let exe = exe.to_path_buf();
    let config = config.to_string_lossy().to_string();
    let url = database_url.to_string();
    tokio::task::spawn_blocking(move || {
        let addr = free_addr();
        let listen = addr.to_string();
        ServiceProcess::launch(crate::binaries::Launch::new(
            &exe,
            &["--config", &config, "serve"],
            &[
                ("DATABASE_URL", url.as_str()),
                ("GRPC_LISTEN", listen.as_str()),
            ],
            addr,
        ))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// A source for a chaos run: short timeouts (a hang outlasts the request
/// timeout), quick retries, short polling intervals.
pub fn chaos_source(
    upstream: &FakeUpstream,
    batch_size: u32,
    request_timeout: f64,
) -> SourceSettings {
    let mut s = SourceSettings::new("drishti", upstream.url());
    s.batch_size = batch_size;
    s.poll_interval_seconds = 0.1;
    s.connect_timeout_seconds = 1.0;
    s.request_timeout_seconds = request_timeout;
    s.retry = RetrySettings {
        max_retries: 3,
        min_delay_seconds: 0.02,
        max_delay_seconds: 0.1,
        max_retry_after_seconds: 5.0,
    };
    s
}

/// How a chaos run goes.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    pub submissions: usize,
    pub seed: u64,
    /// Share of requests that misbehave.
    pub rate: f64,
    pub batch_size: u32,
    pub per_version: usize,
    pub quirks_every: usize,
    /// Request timeout of the source; hangs last 1.5 times as long.
    pub request_timeout: Duration,
    pub limit: Duration,
}

/// What a chaos run did and found.
#[derive(Debug, Clone)]
pub struct ChaosReport {
    pub upstream_submissions: usize,
    pub requests: usize,
    /// Faults injected, by kind.
    pub injected: BTreeMap<&'static str, usize>,
    pub elapsed: Duration,
    pub tally: Tally,
    /// Rows compared with the reference drain (form rows, sub-form rows,
    /// error rows, archive rows), and how many differed.
    pub rows_compared: usize,
    pub rows_differing: usize,
    pub differences: Vec<String>,
}

/// Drains a seeded misbehaving upstream into one repository and the same
/// data from a well-behaved one into another, then compares them.
pub async fn chaos_run(options: &ChaosOptions) -> Result<ChaosReport, String> {
    let (elements, expected) = quirky_upstream(
        options.submissions,
        options.per_version,
        options.quirks_every,
        options.seed as u32,
    )?;
    let last = elements.iter().map(server_version).max().unwrap_or(0);
    let timeout = options.request_timeout.as_secs_f64();

    // The reference: the same data, no faults.
    let reference_upstream = FakeUpstream::start(Data::Elements(elements.clone())).await;
    let reference_db = crate::migrator::migrated_repository().await;
    let settings = chaos_source(&reference_upstream, options.batch_size, timeout);
    let reference =
        crate::services::start_migrator_on(&reference_db.url, |c| c.sources = vec![settings]).await;
    let reference_sql = reference_db.client().await;
    wait_until(options.limit, || async {
        watermark(&reference_sql, "drishti")
            .await
            .map(|w| w >= last)
    })
    .await?;
    drop(reference);

    let started = Instant::now();
    let upstream = FakeUpstream::start(Data::Elements(elements)).await;
    upstream.set_chaos(Some(Chaos::every_kind(
        options.seed,
        options.rate,
        options.request_timeout.mul_f64(1.5),
        1,
        3 * options.per_version.max(1) as i64,
    )));
    let db = crate::migrator::migrated_repository().await;
    let settings = chaos_source(&upstream, options.batch_size, timeout);
    let service = crate::services::start_migrator_on(&db.url, |c| c.sources = vec![settings]).await;
    let sql = db.client().await;
    wait_until(options.limit, || async {
        watermark(&sql, "drishti").await.map(|w| w >= last)
    })
    .await?;
    let elapsed = started.elapsed();
    drop(service);
    let tally = check_exactly_once(&sql, &expected).await?;
    let (rows_compared, differences) = compare(&reference_sql, &sql).await?;
    Ok(ChaosReport {
        upstream_submissions: expected.len(),
        requests: upstream.request_count(),
        injected: upstream.injected(),
        elapsed,
        tally,
        rows_compared,
        rows_differing: differences.len(),
        differences: differences.into_iter().take(10).collect(),
    })
}

async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, String>>,
{
    let started = Instant::now();
    loop {
        if check().await? {
            return Ok(());
        }
        if started.elapsed() > limit {
            return Err(format!("the drain did not finish within {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every row that matters, as text, keyed for comparison: form rows
/// without their generated ids, sub-form rows by their parent's
/// instance_id, error rows, archive rows.
pub async fn repository_rows(client: &tokio_postgres::Client) -> Result<Vec<String>, String> {
    let mut queries: Vec<String> = Vec::new();
    for table in form_tables(client).await? {
        queries.push(format!(
            "SELECT {t}::text || ' ' || (to_jsonb(x) - 'id')::text FROM {q} x",
            t = service_kit::sql::quote_literal(&table),
            q = service_kit::sql::quote_ident(&table)
        ));
    }
    queries.push(
        "SELECT 'child_pnc_visit ' || p.instance_id || ' ' || (to_jsonb(c) - 'id' - 'pnc_visit_id')::text \
         FROM child_pnc_visit c JOIN pnc_visit p ON p.id = c.pnc_visit_id"
            .into(),
    );
    queries.push(
        "SELECT 'error_audit ' || concat_ws(' ', source, instance_id, form_name, server_version, \
         failure_reason, detailed_reason, raw_payload, resolved_at IS NULL) FROM error_audit"
            .into(),
    );
    queries.push(
        "SELECT 'form_submission ' || concat_ws(' ', source, instance_id, form_name, entity_id, \
         anm_id, client_version, server_version, payload::text, status) FROM form_submission"
            .into(),
    );
    let mut rows = Vec::new();
    for q in queries {
        for row in client
            .query(&q, &[])
            .await
            .map_err(|e| format!("{q}: {e}"))?
        {
            rows.push(row.get::<_, String>(0));
        }
    }
    rows.sort();
    Ok(rows)
}

/// Compares two repositories row by row: the rows compared and the
/// differences (rows present in only one of them).
pub async fn compare(
    reference: &tokio_postgres::Client,
    other: &tokio_postgres::Client,
) -> Result<(usize, Vec<String>), String> {
    let a = repository_rows(reference).await?;
    let b = repository_rows(other).await?;
    let mut differences = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x < y => {
                differences.push(format!("only in the reference: {}", shorten(x)));
                i += 1;
            }
            (Some(_), Some(y)) | (None, Some(y)) => {
                differences.push(format!("only after chaos: {}", shorten(y)));
                j += 1;
            }
            (Some(x), None) => {
                differences.push(format!("only in the reference: {}", shorten(x)));
                i += 1;
            }
            (None, None) => break,
        }
    }
    Ok((a.len().max(b.len()), differences))
}

fn shorten(text: &str) -> String {
    text.chars().take(200).collect()
}
