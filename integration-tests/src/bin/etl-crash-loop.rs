//! `etl-crash-loop`: kills the real etl-service binary (SIGKILL) at seeded
//! random points of many runs over a changing source, restarting it each
//! time, then checks every organisation's schema against a fresh full
//! build. Prints a Markdown report; exits non-zero on any difference.
//!
//! `cargo run --release -p integration-tests --bin etl-crash-loop -- --runs 20 --seed 8 --organisations 2`

use clap::Parser;
use integration_tests::etl_crash_loop::{self, CrashLoopSpec};

#[derive(Parser)]
#[command(about = "Kill etl-service at random points of many runs; compare with fresh builds")]
struct Args {
    /// Runs, each killed at a random point.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Seed of the source, its changes and the kill points.
    #[arg(long, default_value_t = 8)]
    seed: u64,
    /// Organisations, each run at once.
    #[arg(long, default_value_t = 2)]
    organisations: usize,
    /// Source changes per organisation before each run.
    #[arg(long, default_value_t = 3)]
    edits_per_run: usize,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let spec = CrashLoopSpec {
        runs: args.runs,
        seed: args.seed,
        organisations: args.organisations.max(1),
        edits_per_run: args.edits_per_run,
        ..CrashLoopSpec::default()
    };
    let report = etl_crash_loop::run(&spec, |line| eprintln!("{line}")).await;
    println!("{}", report.markdown(&spec));
    if report.mismatches() > 0 || report.overlapping > 0 {
        eprintln!(
            "FAILED: {} differences from fresh builds, {} overlapping runs",
            report.mismatches(),
            report.overlapping
        );
        std::process::exit(1);
    }
}
