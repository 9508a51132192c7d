//! The ETL crash loop: the real etl-service binary is killed (SIGKILL) at a
//! seeded random point of each of many runs over a source that changes
//! between runs (rows and forms, through [`SourceEditor`]), and restarted
//! each time. Afterwards one more run completes and every organisation's
//! schema must equal a fresh full build of the same source, row by row.
//!
//! `etl-crash-loop` runs it at length; a short test runs a few kills.

use crate::avni::random_edits::SourceEditor;
use crate::avni::{self, Size, Spec};
use crate::binaries::{ServiceProcess, binary, free_addr};
use crate::etl::{context, overlapping_runs};
use crate::etl_faults::{Comparison, compare_with_fresh_build, queue_run, wait_until};
use crate::postgres::TestDatabase;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// What to run.
#[derive(Debug, Clone)]
pub struct CrashLoopSpec {
    /// Runs, each killed at a random point.
    pub runs: usize,
    pub seed: u64,
    pub organisations: usize,
    /// Source changes per organisation before each run.
    pub edits_per_run: usize,
    pub size: Size,
}

impl Default for CrashLoopSpec {
    fn default() -> Self {
        Self {
            runs: 20,
            seed: 8,
            organisations: 2,
            edits_per_run: 3,
            size: Size::SMALL,
        }
    }
}

/// One kill: when it came and where each organisation's run was, as the
/// run history had it at that moment.
#[derive(Debug, Clone)]
pub struct Kill {
    pub run: usize,
    pub delay: Duration,
    pub phases: Vec<Phase>,
}

/// Where a run was when the service was killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Queued, not yet claimed.
    Queued,
    /// Claimed; planning, taking the lock, applying DDL.
    Planning,
    /// Syncing its tables.
    Syncing,
    /// Already finished.
    Finished,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Queued => "queued (not started)",
            Phase::Planning => "started: plan, lock, DDL",
            Phase::Syncing => "syncing tables",
            Phase::Finished => "already finished",
        }
    }
}

/// What the loop did and found.
#[derive(Debug, Clone, Default)]
pub struct CrashLoopReport {
    pub kills: Vec<Kill>,
    /// Source changes made between runs.
    pub edits: usize,
    /// Run history at the end: status -> runs.
    pub statuses: BTreeMap<String, i64>,
    /// Runs failed because their replica was killed (lease expired).
    pub reaped: i64,
    /// Pairs of runs of one organisation that overlapped (must be 0).
    pub overlapping: i64,
    /// Per organisation, its schema against a fresh full build.
    pub comparisons: Vec<(String, Comparison)>,
    pub elapsed: Duration,
}

impl CrashLoopReport {
    /// Differences found between the schemas and fresh builds (must be 0).
    pub fn mismatches(&self) -> usize {
        self.comparisons
            .iter()
            .map(|(_, c)| c.differences.len())
            .sum()
    }

    /// Kills per phase, over every organisation's run.
    pub fn phase_counts(&self) -> BTreeMap<Phase, usize> {
        let mut counts = BTreeMap::new();
        for kill in &self.kills {
            for phase in &kill.phases {
                *counts.entry(*phase).or_default() += 1;
            }
        }
        counts
    }

    /// The report as Markdown.
    pub fn markdown(&self, spec: &CrashLoopSpec) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "seed {}, {} runs killed, {} organisations, {} source changes, {:.0} s",
            spec.seed,
            self.kills.len(),
            spec.organisations,
            self.edits,
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "\n| where each run was at the kill | runs |\n|---|---|"
        );
        for (phase, n) in self.phase_counts() {
            let _ = writeln!(out, "| {} | {n} |", phase.as_str());
        }
        let _ = writeln!(out, "\n| kill | after | phases |\n|---|---|---|");
        for k in &self.kills {
            let phases: Vec<&str> = k.phases.iter().map(|p| p.as_str()).collect();
            let _ = writeln!(
                out,
                "| {} | {} ms | {} |",
                k.run,
                k.delay.as_millis(),
                phases.join(", ")
            );
        }
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "\nrun history: {}; failed by lease expiry (killed mid-run): {}; overlapping runs: {}",
            statuses.join(", "),
            self.reaped,
            self.overlapping
        );
        let _ = writeln!(
            out,
            "\n| organisation | live tables | rows compared | differences |\n|---|---|---|---|"
        );
        for (name, c) in &self.comparisons {
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} |",
                c.tables,
                c.rows,
                c.differences.len()
            );
        }
        for (name, c) in &self.comparisons {
            for d in &c.differences {
                let _ = writeln!(out, "- {name}: {d}");
            }
        }
        out
    }
}

async fn phase_of(client: &Client, run: i64) -> Phase {
    let row = client
        .query_one(
            "SELECT r.status, (SELECT e.kind FROM etl_service.etl_run_event e WHERE e.run_id = r.id \
                 AND e.kind IN ('schema_applied', 'table_started', 'table_finished') LIMIT 1) \
             FROM etl_service.etl_run r WHERE r.id = $1",
            &[&run],
        )
        .await
        .unwrap_or_else(|e| panic!("run {run}: {e}"));
    let status: String = row.get(0);
    let synced: Option<String> = row.get(1);
    match status.as_str() {
        "queued" => Phase::Queued,
        "running" if synced.is_some() => Phase::Syncing,
        "running" => Phase::Planning,
        _ => Phase::Finished,
    }
}

async fn wait_all_finished(client: &Client, runs: &[i64], limit: Duration) {
    wait_until("the runs to finish", limit, || async {
        let open: i64 = client
            .query_one(
                "SELECT count(*) FROM etl_service.etl_run WHERE id = ANY($1) AND status IN ('queued', 'running')",
                &[&runs],
            )
            .await
            .expect("open runs")
            .get(0);
        open == 0
    })
    .await;
}

/// Runs the crash loop on a fresh database; `say` receives progress lines.
pub async fn run(spec: &CrashLoopSpec, say: impl Fn(&str)) -> CrashLoopReport {
    let started = Instant::now();
    let db = TestDatabase::migrated(etl_service::migrations::migrations()).await;
    let client = db.client().await;
    let world = avni::generate(
        &client,
        &Spec {
            seed: spec.seed,
            organisations: spec.organisations,
            size: spec.size,
            ..Spec::default()
        },
    )
    .await;
    let orgs = world.organisations.clone();
    let bin = binary("etl-service", "etl-service");
    let config = std::env::temp_dir().join(format!(
        "etl-crash-loop-{}-{}.yaml",
        std::process::id(),
        spec.seed
    ));
    std::fs::write(
        &config,
        format!(
            "etl:\n  sync_offset_seconds: 0\n  scheduler_poll_ms: 200\n  lease_seconds: 3\n  max_concurrent_runs: {}\n",
            spec.organisations.max(1)
        ),
    )
    .expect("write config");
    let config_path = config.to_string_lossy().to_string();
    let start = || {
        let addr = free_addr();
        let listen = addr.to_string();
        ServiceProcess::start(
            &bin,
            &["--config", &config_path, "serve"],
            &[
                ("DATABASE_URL", db.url.as_str()),
                ("GRPC_LISTEN", listen.as_str()),
            ],
            addr,
        )
    };
    let patience = Duration::from_secs(180);
    let mut editors: Vec<SourceEditor> = orgs
        .iter()
        .enumerate()
        .map(|(i, o)| SourceEditor::new(&client, o.clone(), spec.seed.wrapping_add(i as u64)))
        .collect();
    let mut rng = StdRng::seed_from_u64(spec.seed ^ 0x6b69_6c6c);
    let mut report = CrashLoopReport::default();
    let mut service = start();

    // A first full build, then one incremental round without a kill, to
    // learn how long a run takes here: kills land anywhere in that window.
    let mut queued = Vec::new();
    for org in &orgs {
        queued.push(queue_run(&client, org).await);
    }
    wait_all_finished(&client, &queued, patience).await;
    for editor in &mut editors {
        for _ in 0..spec.edits_per_run {
            editor.step().await;
            report.edits += 1;
        }
    }
    let timing = Instant::now();
    queued.clear();
    for org in &orgs {
        queued.push(queue_run(&client, org).await);
    }
    wait_all_finished(&client, &queued, patience).await;
    let window = (timing.elapsed() * 3 / 2).max(Duration::from_millis(400));
    say(&format!(
        "an incremental round takes {} ms; kills land within {} ms of queueing",
        timing.elapsed().as_millis(),
        window.as_millis()
    ));

    for run in 1..=spec.runs {
        for editor in &mut editors {
            for _ in 0..spec.edits_per_run {
                editor.step().await;
                report.edits += 1;
            }
        }
        queued.clear();
        for org in &orgs {
            queued.push(queue_run(&client, org).await);
        }
        let delay = Duration::from_millis(rng.random_range(0..window.as_millis() as u64));
        tokio::time::sleep(delay).await;
        let mut phases = Vec::new();
        for id in &queued {
            phases.push(phase_of(&client, *id).await);
        }
        service.kill();
        let kill = Kill { run, delay, phases };
        say(&format!(
            "kill {run}/{} after {} ms: {:?}",
            spec.runs,
            delay.as_millis(),
            kill.phases
        ));
        report.kills.push(kill);
        // Restart; the new process fails the killed runs once their lease
        // expires and runs the ones still queued.
        service = start();
        wait_all_finished(&client, &queued, patience).await;
    }

    // One last run of every organisation completes.
    queued.clear();
    for org in &orgs {
        queued.push(queue_run(&client, org).await);
    }
    wait_all_finished(&client, &queued, patience).await;
    for id in &queued {
        let (status, error) = crate::etl_faults::run_status(&client, *id).await;
        assert_eq!(status, "succeeded", "the last run failed: {error:?}");
    }
    let stopped = service.stop(Duration::from_secs(30));
    if let Err(e) = stopped {
        say(&format!("the service did not stop cleanly: {e}"));
    }
    let _ = std::fs::remove_file(&config);

    for row in client
        .query(
            "SELECT status, count(*) FROM etl_service.etl_run GROUP BY status ORDER BY status",
            &[],
        )
        .await
        .expect("statuses")
    {
        report.statuses.insert(row.get(0), row.get(1));
    }
    report.reaped = client
        .query_one(
            "SELECT count(*) FROM etl_service.etl_run WHERE status = 'failed' AND error LIKE '%lease expired%'",
            &[],
        )
        .await
        .expect("reaped")
        .get(0);
    report.overlapping = overlapping_runs(&client).await;
    let ctx = context(&db.url);
    for org in &orgs {
        let compared = compare_with_fresh_build(&client, &ctx, org).await;
        say(&format!(
            "{}: {} live tables, {} rows compared, {} differences",
            org.name,
            compared.tables,
            compared.rows,
            compared.differences.len()
        ));
        report.comparisons.push((org.name.clone(), compared));
    }
    report.elapsed = started.elapsed();
    report
}
