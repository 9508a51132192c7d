//! Wiring: what migrator-service serves and runs beside the shared plumbing
//! (`service_kit::App`), used by `main.rs` and by tests (on port 0).

use crate::api::handlers::MigratorApi;
use crate::config::Config;
use crate::error::Error;
use crate::migrations::migrations;
use crate::poll::poller::Migrator;
use crate::repository::catalog::{Naming, SharedCatalog};
use crate::repository::form_migrations;
use avni_proto::migrator::v1::FILE_DESCRIPTOR_SET;
use avni_proto::migrator::v1::forms_migrator_server::FormsMigratorServer;
use service_kit::db::MigrationSet;
use service_kit::db::Pool;
use service_kit::{Service, ServiceBase};
use std::sync::Arc;
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;

/// The fully qualified name of the product service.
pub const SERVICE_NAME: &str = <FormsMigratorServer<MigratorApi> as NamedService>::NAME;

/// A built, not yet running migrator-service ([`service_kit::App`] over
/// [`FormsMigrator`]).
pub type App = service_kit::App<FormsMigrator>;

/// What migrator-service adds to the shared plumbing: the `FormsMigrator`
/// API, and each source's batch job with its own pool of connections. On
/// shutdown the jobs finish the batch in hand.
pub struct FormsMigrator;

impl Service for FormsMigrator {
    type Config = Config;
    type Error = Error;
    const NAME: &'static str = SERVICE_NAME;
    const DESCRIPTOR_SETS: &'static [&'static [u8]] = &[FILE_DESCRIPTOR_SET];
    const MIGRATIONS: MigrationSet = migrations();

    async fn serve(base: ServiceBase, config: Config) -> Result<(), Error> {
        // The batch jobs get connections of their own: however many callers
        // wait for the API's pool, batches keep going (and the reverse).
        let worker_pool = base.worker_pool(worker_pool_size(config.sources.len()));
        let ServiceBase {
            pool,
            listener,
            routes,
            auth,
            shutdown,
            database_up,
            ..
        } = base;
        let forms =
            settle_form_migrations(&pool, &config, config.migrations.apply_on_start).await?;
        if !forms.pending.is_empty() {
            tracing::warn!(
                pending = %forms.pending.join(", "),
                "form-table migrations are pending; run `migrator-service migrate` (or set migrations.apply_on_start)"
            );
        }
        let migrator = Arc::new(build_migrator(worker_pool, &config)?);
        let jobs = migrator.spawn_all(database_up, shutdown.child_token());
        let api = FormsMigratorServer::new(MigratorApi::new(migrator, pool))
            .max_decoding_message_size(config.server.max_message_bytes);
        let routes = routes.add_service(InterceptedService::new(api, auth));
        let served =
            service_kit::server::serve(routes, listener, &config.server, shutdown.clone()).await;
        shutdown.cancel();
        for job in jobs {
            let _ = job.await;
        }
        served?;
        Ok(())
    }
}

/// What became of the deployment's form-table migrations.
#[derive(Debug, Default)]
pub struct FormMigrationsOutcome {
    pub applied: Vec<String>,
    pub pending: Vec<String>,
    pub total: usize,
}

/// Applies (`apply`) or only lists the pending form-table migrations of
/// `form_migrations.directory`; nothing when none is configured.
pub async fn settle_form_migrations(
    pool: &Pool,
    config: &Config,
    apply: bool,
) -> Result<FormMigrationsOutcome, Error> {
    let Some(dir) = &config.form_migrations.directory else {
        return Ok(FormMigrationsOutcome::default());
    };
    let files = form_migrations::read_dir(dir)?;
    let mut conn = pool.get().await?;
    let mut outcome = FormMigrationsOutcome {
        total: files.len(),
        ..FormMigrationsOutcome::default()
    };
    if apply {
        outcome.applied = form_migrations::apply(&mut conn, &files).await?;
    } else {
        outcome.pending = form_migrations::pending(&mut conn, &files)
            .await?
            .into_iter()
            .map(|f| f.name.clone())
            .collect();
    }
    Ok(outcome)
}

/// The domain over a pool: the configured sources and the shared catalog.
/// `Err` when `form_mapping_file` cannot be read (it was read when the
/// config was loaded, so only if it changed since).
pub fn build_migrator(pool: Pool, config: &Config) -> Result<Migrator, Error> {
    let mapping = config
        .effective_form_mapping()
        .map_err(Error::FailedPrecondition)?;
    let catalog = Arc::new(SharedCatalog::new(Naming::new(mapping)));
    Ok(Migrator::new(pool, catalog, config.sources.clone()))
}

/// Connections the batch jobs' pool holds: two per source (a batch's
/// transaction and its cursor read) and one spare.
pub fn worker_pool_size(sources: usize) -> u32 {
    u32::try_from(sources)
        .unwrap_or(u32::MAX / 4)
        .saturating_mul(2)
        .saturating_add(1)
}
