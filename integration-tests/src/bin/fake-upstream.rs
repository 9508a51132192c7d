//! `fake-upstream`: a Drishti-compatible `/all-form-submissions` server for
//! the demo, Docker Compose and manual runs, serving the sample page or N
//! generated submissions (optionally with the sample page's quirks mixed in).

use clap::Parser;
use integration_tests::fake_upstream::{
    Data, FakeUpstream, Generator, PATH, load_elements, sample_elements, with_sample_quirks,
};
use std::path::PathBuf;
use std::process::ExitCode;

/// Serves `GET /all-form-submissions?timestamp=T&batch-size=N` like the real
/// server, until Ctrl-C or SIGTERM.
#[derive(Parser)]
#[command(name = "fake-upstream")]
struct Args {
    /// host:port to listen on.
    #[arg(long, env = "FAKE_UPSTREAM_LISTEN", default_value = "127.0.0.1:8089")]
    listen: String,
    /// Serve the elements of this JSON array file (default: the sample page,
    /// which is compiled in).
    #[arg(long, conflicts_with_all = ["generate", "real_forms"])]
    sample: Option<PathBuf>,
    /// Serve a realistic feed of the real Drishti app's forms instead: this
    /// many submissions of each of its 32 forms, with real data's quirks
    /// and 6 submissions that fail on purpose (for the shipped tables of
    /// forms/drishti/).
    #[arg(long, conflicts_with = "generate")]
    real_forms: Option<usize>,
    /// Serve this many generated submissions instead.
    #[arg(long, env = "FAKE_UPSTREAM_GENERATE")]
    generate: Option<usize>,
    /// With --generate: after every N-th submission, mix in the next element
    /// of the sample page (odd values, and failing elements that land in
    /// error_audit). 0 mixes in nothing.
    #[arg(
        long,
        env = "FAKE_UPSTREAM_QUIRKS_EVERY",
        default_value_t = 0,
        requires = "generate"
    )]
    quirks_every: usize,
    /// Generated submissions sharing each serverVersion.
    #[arg(long, default_value_t = 1)]
    per_version: usize,
    /// Require HTTP Basic auth with this user name (and --password).
    #[arg(long, requires = "password")]
    username: Option<String>,
    /// The Basic auth password.
    #[arg(long, env = "FAKE_UPSTREAM_PASSWORD", requires = "username")]
    password: Option<String>,
    /// Instead of serving: ask the fake upstream serving on --listen's port
    /// for one submission and exit 0 when it answers with a JSON array (for
    /// container health checks).
    #[arg(long)]
    health_check: bool,
}

/// Asks the server on `listen`'s port (on loopback) for one submission.
async fn health_check(listen: &str) -> Result<(), String> {
    let port = listen
        .rsplit_once(':')
        .map(|(_, port)| port)
        .ok_or_else(|| format!("--listen {listen:?} is not host:port"))?;
    let url = format!("http://127.0.0.1:{port}{PATH}?timestamp=0&batch-size=1");
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    // Behind Basic auth a 401 still shows the server is up.
    if response.status() == reqwest::StatusCode::UNAUTHORIZED {
        return Ok(());
    }
    if !response.status().is_success() {
        return Err(format!("{url}: {}", response.status()));
    }
    let body: serde_json::Value = response.json().await.map_err(|e| format!("{url}: {e}"))?;
    if body.is_array() {
        Ok(())
    } else {
        Err(format!("{url}: not a JSON array"))
    }
}

fn data(args: &Args) -> Result<Data, String> {
    if let Some(rounds) = args.real_forms {
        let feed = integration_tests::drishti_feed::realistic_feed(rounds, 17);
        return Ok(Data::Raw(feed.elements));
    }
    match args.generate {
        Some(count) => {
            let generator = Generator {
                per_version: args.per_version.max(1),
                ..Generator::new(count)
            };
            if args.quirks_every > 0 {
                Ok(Data::Elements(with_sample_quirks(
                    &generator,
                    args.quirks_every,
                )?))
            } else {
                Ok(Data::Generated(generator))
            }
        }
        None => match &args.sample {
            Some(path) => load_elements(path).map(Data::Elements),
            None => sample_elements().map(Data::Elements),
        },
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.health_check {
        return match health_check(&args.listen).await {
            Ok(()) => {
                println!("SERVING");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("fake-upstream: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let data = match data(&args) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("fake-upstream: {e}");
            return ExitCode::from(2);
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
    // Ctrl-C, or SIGTERM from `docker compose stop`.
    service_kit::shutdown::signal().await;
    println!(
        "fake-upstream: {} requests served",
        upstream.request_count()
    );
    ExitCode::SUCCESS
}
