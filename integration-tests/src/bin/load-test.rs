//! `load-test`: N concurrent gRPC clients calling `GetJob` (etl-service) and
//! `GetStatus` (migrator-service) for a while, against the real binaries,
//! while ETL runs and migrator batches go on (see `integration_tests::load`).
//! Prints the figures and writes them into the `<!-- bench:load -->`
//! section of RELIABILITY.md (unless `--no-write`). Exits non-zero when a
//! call failed, no run or no batch finished in the window, the final check
//! failed, or p99 missed `--p99-target-ms`.
//!
//! cargo run --release -p integration-tests --bin load-test -- --clients 200 --seconds 60 --release-binaries

use clap::Parser;
use integration_tests::load::{self, LoadOptions, Stack};
use std::process::ExitCode;
use std::time::Duration;

/// The clients share the machine's cores with the services they measure;
/// mimalloc keeps their own allocation cost (and so their share) down, as
/// the services' allocator does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "load-test")]
struct Args {
    /// Concurrent clients (each with its own connection to each service).
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Seconds the clients call.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Run the `--release` builds of the services (for figures).
    #[arg(long)]
    release_binaries: bool,
    /// Organisations enabled on the ETL.
    #[arg(long, default_value_t = 8)]
    organisations: usize,
    /// Seconds between scheduled runs of each organisation.
    #[arg(long, default_value_t = 5)]
    interval_seconds: u64,
    /// New submissions arriving upstream per second.
    #[arg(long, default_value_t = 200)]
    upstream_per_second: usize,
    /// `database.pool_size` of both services (their default when absent).
    #[arg(long)]
    pool_size: Option<u32>,
    /// Each client makes one GetJob and one GetStatus call every this many
    /// milliseconds (default: as fast as the answers come).
    #[arg(long)]
    pace_ms: Option<u64>,
    /// The RELIABILITY.md section to write (default `load`, or
    /// `load-paced` with --pace-ms).
    #[arg(long)]
    section: Option<String>,
    /// The p99 latency the run must stay under.
    #[arg(long, default_value_t = 100.0)]
    p99_target_ms: f64,
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
            eprintln!("load-test: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<bool> {
    let options = LoadOptions {
        clients: args.clients,
        duration: Duration::from_secs(args.seconds),
        organisations: args.organisations,
        interval_seconds: args.interval_seconds,
        release: args.release_binaries,
        upstream_per_second: args.upstream_per_second,
        pool_size: args.pool_size,
        pace: args.pace_ms.map(Duration::from_millis),
        ..LoadOptions::default()
    };
    eprintln!(
        "starting {} binaries, {} organisations, upstream +{}/s...",
        if args.release_binaries {
            "release"
        } else {
            "debug"
        },
        args.organisations,
        args.upstream_per_second
    );
    let stack = Stack::start(options).await?;
    eprintln!(
        "every organisation has run and a batch is written; {} clients for {} s...",
        args.clients, args.seconds
    );
    let report = load::run(&stack, args.clients, Duration::from_secs(args.seconds)).await?;
    let p99 = report
        .get_job
        .quantile(0.99)
        .max(report.get_status.quantile(0.99));
    let met = p99.as_secs_f64() * 1000.0 < args.p99_target_ms;
    let ok = report.errors() == 0
        && report.progress.runs_finished > 0
        && report.progress.batches > 0
        && report.final_check.ok();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let text = format!(
        "Command: `{command}` ({} binaries, {} organisations every {} s, upstream +{}/s in batches of {}, pool size {}). \
         Each client alternates GetJob (organisations in turn) and GetStatus (all sources), {}.\n\n{}\n\
         Verdict: {} errors, p99 {:.1} ms against a target of {:.0} ms: {}.\n",
        if args.release_binaries {
            "release"
        } else {
            "debug"
        },
        args.organisations,
        args.interval_seconds,
        args.upstream_per_second,
        stack.options.batch_size,
        args.pool_size
            .map(|n| n.to_string())
            .unwrap_or_else(|| "default (10)".into()),
        match args.pace_ms {
            Some(ms) => format!("one pair of calls every {ms} ms per client"),
            None => "each call as soon as the previous one is answered (a closed loop: latency = clients / throughput)".into(),
        },
        report.markdown(),
        report.errors(),
        p99.as_secs_f64() * 1000.0,
        args.p99_target_ms,
        if ok && met {
            "met"
        } else if ok {
            "latency target missed"
        } else {
            "FAILED"
        }
    );
    println!("{text}");
    if !args.no_write {
        integration_tests::bench::publish_in(
            "RELIABILITY.md",
            "# Reliability and security\n",
            args.section
                .as_deref()
                .unwrap_or(if args.pace_ms.is_some() {
                    "load-paced"
                } else {
                    "load"
                }),
            &text,
            &report.json(),
        )?;
    }
    if !report.final_check.ok() {
        eprintln!("final check failed: {:?}", report.final_check);
    }
    Ok(ok && met)
}
