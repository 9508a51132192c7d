//! `etl-service [--config FILE] serve|migrate|run-once`

use clap::{Args, Parser, Subcommand};
use etl_service::app::Etl;
use etl_service::engine::entity::{EntityKind, EntityRef};
use etl_service::{Config, Error};
use service_kit::cli::{Logs, SharedCommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of the system allocator: answering many small calls
/// at once is mostly allocation, and glibc's malloc spent a quarter of the
/// service's CPU on it under the load test (RELIABILITY.md, "Load").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The analytics ETL for Avni-style data: keeps one reporting schema of flat
/// tables per organisation in step with the source.
#[derive(Parser)]
#[command(name = "etl-service", version)]
struct Cli {
    /// YAML config file; without one, defaults for a local PostgreSQL are used.
    /// DATABASE_URL, GRPC_LISTEN and AUTH_TOKENS override it.
    #[arg(long, short, global = true, env = "ETL_CONFIG")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Shared(SharedCommand),
    /// Run one organisation (or organisation group) now, showing progress
    /// per table, and print a summary. Waits if a run of it is in progress.
    RunOnce(RunOnceArgs),
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct RunOnceArgs {
    /// The organisation's uuid (organisation.uuid).
    #[arg(long, value_name = "UUID")]
    organisation: Option<uuid::Uuid>,
    /// The organisation group's uuid (organisation_group.uuid).
    #[arg(long, value_name = "UUID")]
    organisation_group: Option<uuid::Uuid>,
}

impl RunOnceArgs {
    fn entity(&self) -> Option<EntityRef> {
        match (self.organisation, self.organisation_group) {
            (Some(uuid), _) => Some(EntityRef {
                uuid,
                kind: EntityKind::Organisation,
            }),
            (None, Some(uuid)) => Some(EntityRef {
                uuid,
                kind: EntityKind::OrganisationGroup,
            }),
            (None, None) => None,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logs = match &cli.command {
        Command::Shared(shared) => shared.logs(),
        _ => Logs::On,
    };
    service_kit::cli::run(cli.config.as_deref(), logs, |config: Config| async move {
        match cli.command {
            Command::Shared(shared) => shared.run::<Etl>(config).await,
            Command::RunOnce(args) => run_once(&config, &args).await,
        }
    })
}

/// `run-once`: one run of the organisation or group, with a summary.
async fn run_once(config: &Config, args: &RunOnceArgs) -> Result<(), Error> {
    let Some(entity) = args.entity() else {
        return Err(Error::InvalidArgument(
            "give --organisation <uuid> or --organisation-group <uuid>".into(),
        ));
    };
    let report = etl_service::control::run_once::run_once(config, entity).await?;
    print!("{}", etl_service::control::run_once::summary(&report));
    Ok(())
}
