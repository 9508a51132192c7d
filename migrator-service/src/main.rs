//! `migrator-service [--config FILE] serve|migrate`

use clap::{Parser, Subcommand};
use migrator_service::{App, Config};
use service_kit::config::{ProcessEnvironment, ServiceConfig};
use std::path::PathBuf;
use std::process::ExitCode;

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
