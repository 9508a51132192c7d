//! What every service binary's `main` does around its own commands: read
//! the config, start logging, run the command on a runtime, and turn the
//! outcome into an exit code.

use crate::app::{Service, serve_command};
use crate::base::{health_check_command, migrate_command};
use crate::config::{ProcessEnvironment, ServiceConfig};
use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

/// The commands every service binary has, beside its own (flattened into
/// its `clap` subcommands).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SharedCommand {
    /// Serve the gRPC API and run the service's background work (the ETL's
    /// scheduler, the migrator's batch jobs) until SIGINT/SIGTERM.
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Ask the running server (at server.listen / GRPC_LISTEN) for its health;
    /// exit 0 when SERVING. For container health checks.
    HealthCheck,
}

impl SharedCommand {
    /// Whether the command writes the service's logs.
    pub fn logs(&self) -> Logs {
        match self {
            SharedCommand::HealthCheck => Logs::Off,
            SharedCommand::Serve | SharedCommand::Migrate => Logs::On,
        }
    }

    /// Runs the command for service `S`.
    pub async fn run<S: Service>(self, config: S::Config) -> Result<(), S::Error> {
        match self {
            SharedCommand::Serve => serve_command::<S>(config).await,
            SharedCommand::Migrate => {
                migrate_command(&config, S::MIGRATIONS).await?;
                Ok(())
            }
            SharedCommand::HealthCheck => Ok(health_check_command(&config).await?),
        }
    }
}

/// Whether a command writes the service's logs. `health-check` does not:
/// scripts read what it prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logs {
    On,
    Off,
}

/// Loads the config from `config_path` (and the environment), exiting 2
/// with the reason when it is wrong; starts logging; runs `command` on a
/// multi-threaded runtime; exits 1 with the error when it fails.
pub fn run<C, E, F, Fut>(config_path: Option<&Path>, logs: Logs, command: F) -> ExitCode
where
    C: ServiceConfig,
    E: std::fmt::Display,
    F: FnOnce(C) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let binary = C::DEFAULTS.binary;
    let config: C = match crate::config::load(config_path, &ProcessEnvironment) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{binary}: {e}");
            return ExitCode::from(2);
        }
    };
    if logs == Logs::On {
        crate::telemetry::init(config.log());
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{binary}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{binary}: {e}");
            ExitCode::FAILURE
        }
    }
}
