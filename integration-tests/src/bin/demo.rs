//! `demo`: the whole product in one command (the README's first command,
//! `cargo demo`). See `integration_tests::demo`.

use clap::Parser;
use integration_tests::demo::{self, Options};
use std::process::ExitCode;
use std::time::Duration;

/// Runs both services over generated data: an Avni-style organisation
/// into a reporting schema, and Drishti-style submissions from a fake
/// upstream into the forms repository. Then prints a summary and the
/// commands to try, and serves until Ctrl-C.
///
/// PostgreSQL: DATABASE_URL if set, else localhost:5432 if it answers,
/// else a private throwaway cluster under target/ (needs the PostgreSQL
/// server binaries, e.g. the postgresql Debian package).
#[derive(Parser)]
#[command(name = "demo")]
struct Args {
    /// Stop after the summary instead of serving until Ctrl-C.
    #[arg(long)]
    once: bool,
    /// Subjects per subject type of the demo organisation (four types;
    /// enrolments and encounters follow).
    #[arg(long, default_value_t = 250)]
    subjects: i64,
    /// Submissions the fake Drishti upstream serves.
    #[arg(long, default_value_t = 3000)]
    submissions: usize,
    /// Mix one of the sample page's quirky or failing submissions in after
    /// every N generated ones.
    #[arg(long, default_value_t = 100)]
    quirks_every: usize,
    /// The two demo databases are <PREFIX>_avni and <PREFIX>_forms; they are
    /// dropped and created again on each run.
    #[arg(long, env = "DEMO_DATABASE_PREFIX", default_value = "demo", value_parser = prefix)]
    database_prefix: String,
    /// Listen on free ports instead of 50051/50052 (gRPC) and 9464/9465
    /// (metrics), which are used when free.
    #[arg(long, env = "DEMO_FREE_PORTS", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    free_ports: bool,
    /// Start a private throwaway PostgreSQL cluster under target/ even when
    /// DATABASE_URL is set or one answers on localhost:5432.
    #[arg(long, env = "DEMO_PRIVATE_CLUSTER", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    private_cluster: bool,
    /// The bearer token both services accept (default: a random one).
    #[arg(long, env = "DEMO_TOKEN")]
    token: Option<String>,
    /// Seconds both services may take for their work.
    #[arg(long, default_value_t = 600)]
    timeout_seconds: u64,
}

fn prefix(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 40
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && value.starts_with(|c: char| c.is_ascii_lowercase());
    if ok {
        Ok(value.to_string())
    } else {
        Err("use lowercase letters, digits and _ (starting with a letter, at most 40)".into())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let options = Options {
        once: args.once,
        subjects: args.subjects.max(1),
        submissions: args.submissions,
        quirks_every: args.quirks_every,
        database_prefix: args.database_prefix,
        free_ports: args.free_ports,
        private_cluster: args.private_cluster,
        token: args.token.filter(|t| !t.trim().is_empty()),
        timeout: Duration::from_secs(args.timeout_seconds),
    };
    match demo::run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}
