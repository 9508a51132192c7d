//! `fake-upstream`: a Drishti-compatible `/all-form-submissions` server for
//! the demo and manual runs, serving the sample page or N generated
//! submissions.

use clap::Parser;
use integration_tests::fake_upstream::{Data, FakeUpstream, Generator, load_elements, sample_path};
use std::path::PathBuf;
use std::process::ExitCode;

/// Serves `GET /all-form-submissions?timestamp=T&batch-size=N` like the real
/// server, until Ctrl-C.
#[derive(Parser)]
#[command(name = "fake-upstream")]
struct Args {
    /// host:port to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    listen: String,
    /// Serve the elements of this JSON array file (default: the sample page).
    #[arg(long, conflicts_with = "generate")]
    sample: Option<PathBuf>,
    /// Serve this many generated submissions instead.
    #[arg(long)]
    generate: Option<usize>,
    /// Generated submissions sharing each serverVersion.
    #[arg(long, default_value_t = 1)]
    per_version: usize,
    /// Require HTTP Basic auth with this user name (and --password).
    #[arg(long, requires = "password")]
    username: Option<String>,
    /// The Basic auth password.
    #[arg(long, env = "FAKE_UPSTREAM_PASSWORD", requires = "username")]
    password: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let data = match args.generate {
        Some(count) => Data::Generated(Generator {
            per_version: args.per_version.max(1),
            ..Generator::new(count)
        }),
        None => {
            let path = args.sample.unwrap_or_else(sample_path);
            match load_elements(&path) {
                Ok(elements) => Data::Elements(elements),
                Err(e) => {
                    eprintln!("fake-upstream: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let upstream = match FakeUpstream::start_on(&args.listen, data).await {
        Ok(u) => u,
        Err(e) => {
            eprintln!("fake-upstream: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let (Some(user), Some(password)) = (&args.username, &args.password) {
        upstream.require_basic_auth(user, password);
    }
    println!("fake-upstream: serving {}", upstream.url());
    let _ = tokio::signal::ctrl_c().await;
    println!(
        "fake-upstream: {} requests served",
        upstream.request_count()
    );
    ExitCode::SUCCESS
}
