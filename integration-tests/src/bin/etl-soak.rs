//! `etl-soak`: several real etl-service replicas sharing one database, many
//! organisations enabled on a short interval, for minutes. Afterwards:
//! no organisation ever ran twice at once (no two of its runs overlap in
//! time in `etl_run`), every organisation ran several times, no run failed
//! (each failure is listed with its error), and every replica did work.
//! Prints the figures and writes them into the `<!-- bench:etl-soak -->`
//! section of RELIABILITY.md (unless `--no-write`); exits non-zero when a
//! check fails.
//!
//! cargo run -p integration-tests --bin etl-soak -- --replicas 2 --organisations 100 --minutes 10 --interval-seconds 5

use avni_proto::etl::v1 as pb;
use clap::Parser;
use integration_tests::binaries::{ServiceProcess, free_addr};
use integration_tests::load::{connect, generate_organisations, service_binary};
use integration_tests::postgres::TestDatabase;
use integration_tests::services::{Bearer, TEST_TOKEN};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "etl-soak")]
struct Args {
    /// etl-service processes sharing the database.
    #[arg(long, default_value_t = 2)]
    replicas: usize,
    /// Organisations enabled.
    #[arg(long, default_value_t = 100)]
    organisations: usize,
    /// How long the replicas run.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// `etl.interval_seconds` of every job.
    #[arg(long, default_value_t = 5)]
    interval_seconds: u64,
    /// Runs at once per replica (`etl.max_concurrent_runs`).
    #[arg(long, default_value_t = 2)]
    max_concurrent_runs: usize,
    /// Run the `--release` build of etl-service.
    #[arg(long)]
    release_binaries: bool,
    /// Each organisation must have run at least this often.
    #[arg(long, default_value_t = 3)]
    min_runs: i64,
    /// Print only; do not write RELIABILITY.md.
    #[arg(long)]
    no_write: bool,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("etl-soak: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn run(args: &Args) -> anyhow::Result<bool> {
    let db = TestDatabase::migrated(etl_service::migrations::migrations()).await;
    eprintln!("generating {} organisations...", args.organisations);
    let orgs = generate_organisations(&db.url, args.organisations, 23).await?;
    let client = db.client().await;

    let bin = service_binary("etl-service", args.release_binaries);
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("etl.yaml");
    std::fs::write(
        &config,
        format!(
            "etl:\n  interval_seconds: {}\n  scheduler_poll_ms: 500\n  sync_offset_seconds: 0\n  lease_seconds: 15\n  max_concurrent_runs: {}\n",
            args.interval_seconds, args.max_concurrent_runs
        ),
    )?;
    let config = config.to_string_lossy().to_string();
    let mut replicas = Vec::new();
    for _ in 0..args.replicas {
        let addr = free_addr();
        let listen = addr.to_string();
        replicas.push(ServiceProcess::start(
            &bin,
            &["--config", &config, "serve"],
            &[
                ("DATABASE_URL", db.url.as_str()),
                ("GRPC_LISTEN", listen.as_str()),
                ("AUTH_TOKENS", TEST_TOKEN),
            ],
            addr,
        ));
    }
    // Enable through the replicas in turn.
    for (i, org) in orgs.iter().enumerate() {
        let replica = &replicas[i % replicas.len()];
        let mut api = pb::etl_service_client::EtlServiceClient::with_interceptor(
            connect(replica.addr).await?,
            Bearer::new(Some(TEST_TOKEN)),
        );
        api.enable_analytics(pb::EnableAnalyticsRequest {
            entity: Some(pb::Entity {
                uuid: org.uuid.clone(),
                r#type: pb::EntityType::Organisation as i32,
            }),
        })
        .await?;
    }
    let load_before = loadavg();
    let started = Instant::now();
    let limit = Duration::from_secs_f64(args.minutes * 60.0);
    eprintln!(
        "{} replicas, {} organisations every {} s, for {:.1} min",
        args.replicas, args.organisations, args.interval_seconds, args.minutes
    );
    while started.elapsed() < limit {
        tokio::time::sleep(Duration::from_secs(30).min(limit.saturating_sub(started.elapsed())))
            .await;
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE status = 'succeeded'), \
                        count(*) FILTER (WHERE status IN ('failed', 'cancelled')), \
                        count(DISTINCT entity_uuid) FILTER (WHERE status = 'succeeded') \
                 FROM etl_service.etl_run",
                &[],
            )
            .await?;
        let overlaps = integration_tests::etl::overlapping_runs(&client).await;
        eprintln!(
            "{:>5.0} s: {} runs succeeded, {} failed, {} organisations have run, {} overlaps; load {}",
            started.elapsed().as_secs_f64(),
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2),
            overlaps,
            loadavg()
        );
        for r in &mut replicas {
            if let Some(status) = r.exited() {
                anyhow::bail!("a replica exited with {status}:\n{}", r.log());
            }
        }
    }
    let load_after = loadavg();
    // Runs in progress when the replicas stop are cancelled by the stop:
    // those are told apart from failures.
    let stopping_at: chrono::DateTime<chrono::Utc> = client
        .query_one("SELECT clock_timestamp()", &[])
        .await?
        .get(0);
    let mut stops = Vec::new();
    for r in &mut replicas {
        stops.push(
            r.stop(Duration::from_secs(30))
                .map_err(|e| anyhow::anyhow!(e))?,
        );
    }
    let elapsed = started.elapsed();

    let overlaps = integration_tests::etl::overlapping_runs(&client).await;
    let per_org: Vec<i64> = client
        .query(
            "SELECT count(r.id) FROM organisation o \
             LEFT JOIN etl_service.etl_run r ON r.entity_uuid = o.uuid::uuid AND r.status = 'succeeded' \
             GROUP BY o.id ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let by_status: Vec<(String, i64)> = client
        .query(
            "SELECT status, count(*) FROM etl_service.etl_run GROUP BY status ORDER BY status",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let per_worker: Vec<(String, i64)> = client
        .query(
            "SELECT coalesce(worker, '(none)'), count(*) FROM etl_service.etl_run WHERE status = 'succeeded' \
             GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let ended: Vec<(i64, String, String, bool)> = client
        .query(
            "SELECT id, status, coalesce(error, ''), \
                    status = 'cancelled' AND coalesce(finished_at >= $1, true) FROM etl_service.etl_run \
             WHERE status IN ('failed', 'cancelled') ORDER BY id",
            &[&stopping_at],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let (stopped, failures): (Vec<_>, Vec<_>) = ended.into_iter().partition(|r| r.3);
    let durations = client
        .query_one(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))::float8, \
                    max(extract(epoch FROM finished_at - started_at))::float8 \
             FROM etl_service.etl_run WHERE status = 'succeeded'",
            &[],
        )
        .await?;
    let (median_run, max_run): (Option<f64>, Option<f64>) = (durations.get(0), durations.get(1));

    let total: i64 = per_org.iter().sum();
    let min = per_org.first().copied().unwrap_or(0);
    let max = per_org.last().copied().unwrap_or(0);
    let median = per_org.get(per_org.len() / 2).copied().unwrap_or(0);
    let every_org_ran = per_org.len() == args.organisations && min >= args.min_runs;
    let all_replicas_worked =
        per_worker.len() == args.replicas && per_worker.iter().all(|(_, n)| *n > 0);
    let ok = overlaps == 0 && every_org_ran && failures.is_empty() && all_replicas_worked;

    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut text = format!(
        "Command: `{command}` ({} binaries, {} replicas with {} run slots each, {} organisations every {} s, {:.1} min; replicas stopped with SIGTERM: {:?}).\n\n\
         | measure | value |\n|---|---|\n\
         | organisations that ran two runs at once (overlapping `etl_run` time ranges) | {overlaps} |\n\
         | succeeded runs, total | {total} |\n\
         | succeeded runs per organisation, min / median / max | {min} / {median} / {max} |\n\
         | runs by status | {} |\n\
         | succeeded runs per replica | {} |\n\
         | run duration, median / max | {:.0} / {:.0} ms |\n\
         | load average (1, 5, 15 min) before / after | {load_before} / {load_after} |\n\n",
        if args.release_binaries {
            "release"
        } else {
            "debug"
        },
        args.replicas,
        args.max_concurrent_runs,
        args.organisations,
        args.interval_seconds,
        elapsed.as_secs_f64() / 60.0,
        stops.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        by_status
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        per_worker
            .iter()
            .map(|(w, n)| format!("{w}: {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        median_run.unwrap_or(0.0) * 1000.0,
        max_run.unwrap_or(0.0) * 1000.0,
    );
    text.push_str(&format!(
        "Runs cancelled because their replica was stopping at the end: {}.\n",
        stopped.len()
    ));
    for (id, status, error, _) in &failures {
        text.push_str(&format!("- run {id} {status}: {error}\n"));
    }
    text.push_str(&format!(
        "\nVerdict: {}.\n",
        if ok {
            "no overlap, every organisation ran, no failure, every replica worked".to_string()
        } else {
            format!(
                "FAILED (overlaps {overlaps}, every organisation ran {} times or more: {every_org_ran}, failures {}, every replica worked: {all_replicas_worked})",
                args.min_runs,
                failures.len()
            )
        }
    ));
    println!("{text}");
    if !args.no_write {
        integration_tests::bench::publish_in(
            "RELIABILITY.md",
            "# Reliability and security\n",
            "etl-soak",
            &text,
            &serde_json::json!({
                "replicas": args.replicas,
                "organisations": args.organisations,
                "interval_seconds": args.interval_seconds,
                "minutes": elapsed.as_secs_f64() / 60.0,
                "overlaps": overlaps,
                "runs_total": total,
                "runs_per_org_min": min,
                "runs_per_org_median": median,
                "runs_per_org_max": max,
                "failures": failures.len(),
                "cancelled_by_stop": stopped.len(),
                "per_replica": per_worker,
                "by_status": by_status,
            }),
        )?;
    }
    Ok(ok)
}
