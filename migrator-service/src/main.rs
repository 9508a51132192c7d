//! `migrator-service [--config FILE] serve|migrate|poll-once [--source NAME]`

use clap::{Parser, Subcommand};
use migrator_service::{App, Config, Error};
use service_kit::config::{ProcessEnvironment, ServiceConfig};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of the system allocator: answering many small calls
/// at once is mostly allocation, and glibc's malloc spent a quarter of the
/// service's CPU on it under the load test (RELIABILITY.md, "Load").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The forms migrator: polls Drishti-style upstreams and writes every form
/// submission into its table in the repository.
#[derive(Parser)]
#[command(name = "migrator-service", version)]
struct Cli {
    /// YAML config file; without one, defaults for a local PostgreSQL are used.
    /// DATABASE_URL, GRPC_LISTEN and AUTH_TOKENS override it.
    #[arg(long, short, global = true, env = "MIGRATOR_CONFIG")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gRPC API and run the batch job until SIGINT/SIGTERM.
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Ask the running server (at server.listen / GRPC_LISTEN) for its health;
    /// exit 0 when SERVING. For container health checks.
    HealthCheck,
    /// Drain one source now (poll until a batch comes back empty), print a
    /// summary and exit; for operators and cron. Exits non-zero on failure.
    PollOnce {
        /// The source to drain; may be left out when only one is configured.
        #[arg(long)]
        source: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config: Config = match service_kit::config::load(cli.config.as_deref(), &ProcessEnvironment)
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("migrator-service: {e}");
            return ExitCode::from(2);
        }
    };
    if !matches!(cli.command, Command::HealthCheck) {
        service_kit::telemetry::init(config.log());
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("migrator-service: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Migrate => {
                service_kit::base::migrate_command(
                    &config,
                    migrator_service::migrations::migrations,
                )
                .await?;
                Ok(())
            }
            Command::HealthCheck => {
                service_kit::base::health_check_command(&config).await?;
                Ok(())
            }
            Command::PollOnce { source } => poll_once(config, source.as_deref()).await,
            Command::Serve => {
                let app = App::build(config).await?;
                let stop = app.shutdown_token();
                tokio::spawn(async move {
                    service_kit::shutdown::signal().await;
                    stop.cancel();
                });
                app.run_until_stopped().await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("migrator-service: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `poll-once`: the same drain as the service's batch job, in the
/// foreground, with a progress line on a terminal.
async fn poll_once(config: Config, name: Option<&str>) -> Result<(), Error> {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use std::io::IsTerminal;

    let names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
    let chosen = match (name, names.as_slice()) {
        (Some(n), _) if names.contains(&n) => n.to_string(),
        (Some(n), []) => {
            return Err(Error::NotFound(format!(
                "no source named {n:?}: the config has no sources"
            )));
        }
        (Some(n), all) => {
            return Err(Error::NotFound(format!(
                "no source named {n:?}; configured: {}",
                all.join(", ")
            )));
        }
        (None, []) => {
            return Err(Error::InvalidArgument(
                "the config has no sources: add one under sources:".into(),
            ));
        }
        (None, [one]) => one.to_string(),
        (None, all) => {
            return Err(Error::InvalidArgument(format!(
                "several sources are configured ({}): choose one with --source",
                all.join(", ")
            )));
        }
    };
    service_kit::db::wait_for_database(config.database()).await?;
    let pending = service_kit::db::pending_migrations(
        &config.database().url,
        migrator_service::migrations::migrations,
    )
    .await?;
    if !pending.is_empty() {
        return Err(service_kit::KitError::PendingMigrations {
            binary: "migrator-service".into(),
            names: pending,
        }
        .into());
    }
    let pool = service_kit::db::build_pool(config.database());
    let migrator = migrator_service::app::build_migrator(pool, &config);
    let Some(source) = migrator.source(&chosen).cloned() else {
        return Err(Error::NotFound(format!("no source named {chosen:?}")));
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        service_kit::shutdown::signal().await;
        on_signal.cancel();
    });
    let bar = ProgressBar::new_spinner();
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed} {msg}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar.set_message(format!("polling {}", source.url()));
    let result = migrator
        .drain(&source, &stop, |s| {
            bar.set_message(format!(
                "{} batches, {} written, {} failed, watermark {}",
                s.batches, s.written, s.failed, s.watermark
            ));
        })
        .await;
    bar.finish_and_clear();
    let summary =
        result.map_err(|e| Error::FailedPrecondition(format!("poll of {chosen} failed: {e}")))?;
    let when = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(summary.watermark)
        .filter(|_| summary.watermark > 0)
        .map(|t| {
            format!(
                " ({})",
                t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            )
        })
        .unwrap_or_default();
    println!(
        "{chosen}: {} batches, {} written, {} failed, {} duplicates skipped, watermark {}{when}",
        summary.batches, summary.written, summary.failed, summary.duplicates, summary.watermark
    );
    Ok(())
}
