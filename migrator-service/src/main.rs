//! `migrator-service [--config FILE] serve|migrate|poll-once [--source NAME]`

use clap::{Parser, Subcommand};
use migrator_service::app::FormsMigrator;
use migrator_service::migrations::migrations;
use migrator_service::{Config, Error};
use service_kit::cli::{Logs, SharedCommand};
use service_kit::config::ServiceConfig;
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
    #[command(flatten)]
    Shared(SharedCommand),
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
    let logs = match &cli.command {
        Command::Shared(shared) => shared.logs(),
        _ => Logs::On,
    };
    service_kit::cli::run(cli.config.as_deref(), logs, |config: Config| async move {
        match cli.command {
            Command::Shared(SharedCommand::Migrate) => migrate(config).await,
            Command::Shared(shared) => shared.run::<FormsMigrator>(config).await,
            Command::PollOnce { source } => poll_once(config, source.as_deref()).await,
        }
    })
}

/// `migrate`: the service's own migrations, then the deployment's
/// form-table migrations (`form_migrations.directory`).
async fn migrate(config: Config) -> Result<(), Error> {
    SharedCommand::Migrate
        .run::<FormsMigrator>(config.clone())
        .await?;
    let Some(dir) = config.form_migrations.directory.clone() else {
        return Ok(());
    };
    let pool = service_kit::db::build_pool(config.database());
    let outcome = migrator_service::app::settle_form_migrations(&pool, &config, true).await?;
    println!(
        "form migrations in {}: {} applied now{}, {} already applied",
        dir.display(),
        outcome.applied.len(),
        if outcome.applied.is_empty() {
            String::new()
        } else {
            format!(" ({})", outcome.applied.join(", "))
        },
        outcome.total - outcome.applied.len()
    );
    Ok(())
}

/// `poll-once`: the same drain as the service's batch job, in the
/// foreground, with a progress line on a terminal.
async fn poll_once(config: Config, name: Option<&str>) -> Result<(), Error> {
    let chosen = choose_source(&config, name)?;
    service_kit::db::wait_for_database(config.database()).await?;
    service_kit::base::settle_migrations(&config, migrations()).await?;
    let pool = service_kit::db::build_pool(config.database());
    let migrator = migrator_service::app::build_migrator(pool, &config)?;
    let Some(source) = migrator.source(&chosen).cloned() else {
        return Err(Error::NotFound(format!("no source named {chosen:?}")));
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        service_kit::shutdown::signal().await;
        on_signal.cancel();
    });
    let bar = progress_line(format!("polling {}", source.url()));
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
    println!(
        "{chosen}: {} batches, {} written, {} failed, {} duplicates skipped, watermark {}{}",
        summary.batches,
        summary.written,
        summary.failed,
        summary.duplicates,
        summary.watermark,
        watermark_time(summary.watermark)
    );
    Ok(())
}

/// The source `--source` names, or the only one configured.
fn choose_source(config: &Config, name: Option<&str>) -> Result<String, Error> {
    let names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
    match (name, names.as_slice()) {
        (Some(n), _) if names.contains(&n) => Ok(n.to_string()),
        (Some(n), []) => Err(Error::NotFound(format!(
            "no source named {n:?}: the config has no sources"
        ))),
        (Some(n), all) => Err(Error::NotFound(format!(
            "no source named {n:?}; configured: {}",
            all.join(", ")
        ))),
        (None, []) => Err(Error::InvalidArgument(
            "the config has no sources: add one under sources:".into(),
        )),
        (None, [one]) => Ok(one.to_string()),
        (None, all) => Err(Error::InvalidArgument(format!(
            "several sources are configured ({}): choose one with --source",
            all.join(", ")
        ))),
    }
}

/// A spinner with a message on a terminal; hidden when stderr is not one.
fn progress_line(message: String) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use std::io::IsTerminal;

    let bar = ProgressBar::new_spinner();
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed} {msg}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar.set_message(message);
    bar
}

/// ` (2024-01-02T03:04:05.678Z)` for a watermark in milliseconds, or nothing
/// for none.
fn watermark_time(watermark: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(watermark)
        .filter(|_| watermark > 0)
        .map(|t| {
            format!(
                " ({})",
                t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            )
        })
        .unwrap_or_default()
}
