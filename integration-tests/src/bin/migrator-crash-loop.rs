//! `migrator-crash-loop`: kills the real `migrator-service` binary with
//! SIGKILL at seeded random points while it drains a backlog from the fake
//! upstream, restarts it each time until the backlog is drained, then
//! checks that the repository holds each upstream submission exactly once
//! (in its form table, or in `error_audit` for the failing sample elements
//! mixed in), by `instance_id`. Optionally also runs chaos rounds: a seeded
//! mix of upstream faults, compared row by row with a calm drain.
//!
//! Run (PostgreSQL on 127.0.0.1:5432, as for the tests):
//! `cargo build -p integration-tests --bins &&
//! target/debug/migrator-crash-loop --submissions 50000 --seed 1 --kills 20`
//! (the `migrator-service` beside this program is the one killed).

use clap::Parser;
use integration_tests::migrator_reliability::{
    ChaosOptions, CrashLoopOptions, chaos_run, crash_loop,
};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "migrator-crash-loop")]
struct Args {
    /// Generated upstream submissions (sample elements come on top, one
    /// after every --quirks-every).
    #[arg(long, default_value_t = 50_000)]
    submissions: usize,
    /// Seed of the kill points (and of the chaos rounds' first seed).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// SIGKILLs to deliver while the backlog drains.
    #[arg(long, default_value_t = 20)]
    kills: usize,
    #[arg(long, default_value_t = 100)]
    batch_size: u32,
    /// Submissions sharing each serverVersion (3: pages end mid-version).
    #[arg(long, default_value_t = 3)]
    per_version: usize,
    #[arg(long, default_value_t = 97)]
    quirks_every: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 1800)]
    limit_seconds: u64,
    /// Skip the crash loop (run only chaos rounds).
    #[arg(long)]
    no_kills: bool,
    /// Chaos rounds to run after the crash loop (0: none), seeds
    /// --seed, --seed + 1, ...
    #[arg(long, default_value_t = 0)]
    chaos_rounds: u64,
    /// Upstream submissions of each chaos round.
    #[arg(long, default_value_t = 5_000)]
    chaos_submissions: usize,
    /// Share of requests that misbehave in a chaos round.
    #[arg(long, default_value_t = 0.3)]
    chaos_rate: f64,
}

fn migrator_binary() -> std::path::PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("migrator-service")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| {
            integration_tests::binaries::binary("migrator-service", "migrator-service")
        })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let limit = Duration::from_secs(args.limit_seconds);
    let mut exact = true;
    if !args.no_kills {
        let migrator = migrator_binary();
        println!(
            "crash loop: {} submissions, seed {}, {} kills, batch size {}, binary {}",
            args.submissions,
            args.seed,
            args.kills,
            args.batch_size,
            migrator.display()
        );
        let options = CrashLoopOptions {
            submissions: args.submissions,
            seed: args.seed,
            kills: args.kills,
            batch_size: args.batch_size,
            per_version: args.per_version,
            quirks_every: args.quirks_every,
            migrator,
            limit,
        };
        match crash_loop(&options).await {
            Ok(r) => {
                for (i, k) in r.kills.iter().enumerate() {
                    println!(
                        "  kill {:>2}: after {:>6} ms of its process, at backlog position {}",
                        i + 1,
                        k.after.as_millis(),
                        k.position
                    );
                }
                let t = &r.tally;
                println!(
                    "crash loop: {} upstream submissions ({} expected to fail), {} kills, {} starts, drained in {:.1} s, {} batches, {} repeats skipped",
                    r.upstream_submissions,
                    r.expected_failures,
                    r.kills.len(),
                    r.starts,
                    r.elapsed.as_secs_f64(),
                    r.batches,
                    r.repeats_skipped
                );
                println!(
                    "crash loop: written {}, in error_audit {}, duplicates {}, missing {}, misplaced {}, unexpected {}, panics {}",
                    t.written,
                    t.failed,
                    t.duplicates,
                    t.missing,
                    t.misplaced,
                    t.unexpected,
                    r.panics.len()
                );
                for e in &t.examples {
                    println!("  {e}");
                }
                exact &= t.is_exact() && r.panics.is_empty();
            }
            Err(e) => {
                eprintln!("crash loop failed: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    for round in 0..args.chaos_rounds {
        let seed = args.seed + round;
        let options = ChaosOptions {
            submissions: args.chaos_submissions,
            seed,
            rate: args.chaos_rate,
            batch_size: args.batch_size,
            per_version: 7,
            quirks_every: args.quirks_every,
            request_timeout: Duration::from_millis(500),
            limit,
        };
        match chaos_run(&options).await {
            Ok(r) => {
                let t = &r.tally;
                println!(
                    "chaos seed {seed}: {} submissions, {} requests, faults {:?}, drained in {:.1} s",
                    r.upstream_submissions,
                    r.requests,
                    r.injected,
                    r.elapsed.as_secs_f64()
                );
                println!(
                    "chaos seed {seed}: written {}, in error_audit {}, duplicates {}, missing {}, misplaced {}, unexpected {}; {} rows compared with a calm drain, {} differ",
                    t.written,
                    t.failed,
                    t.duplicates,
                    t.missing,
                    t.misplaced,
                    t.unexpected,
                    r.rows_compared,
                    r.rows_differing
                );
                for d in t.examples.iter().chain(&r.differences) {
                    println!("  {d}");
                }
                exact &= t.is_exact() && r.rows_differing == 0;
            }
            Err(e) => {
                eprintln!("chaos seed {seed} failed: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if exact {
        println!("result: every submission exactly once");
        ExitCode::SUCCESS
    } else {
        println!("result: DIFFERENCES FOUND");
        ExitCode::FAILURE
    }
}
