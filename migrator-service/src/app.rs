//! Wiring: the real server, used by `main.rs` and by tests (on port 0).

use crate::api::handlers::MigratorApi;
use crate::config::Config;
use crate::error::Error;
use crate::migrations::migrations;
use crate::poll::poller::Migrator;
use crate::repository::catalog::{Naming, SharedCatalog};
use avni_proto::migrator::v1::FILE_DESCRIPTOR_SET;
use avni_proto::migrator::v1::forms_migrator_server::FormsMigratorServer;
use service_kit::ServiceBase;
use service_kit::db::Pool;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;

/// The fully qualified name of the product service.
pub const SERVICE_NAME: &str = <FormsMigratorServer<MigratorApi> as NamedService>::NAME;

/// A built, not yet running migrator-service.
pub struct App {
    base: ServiceBase,
    config: Config,
}

impl App {
    /// Waits for PostgreSQL, checks migrations, binds the listener. Fails
    /// with a clear error when migrations are pending (unless
    /// `migrations.apply_on_start`) or PostgreSQL stays unreachable.
    pub async fn build(config: Config) -> Result<Self, Error> {
        let base =
            ServiceBase::prepare(&config, migrations, &[FILE_DESCRIPTOR_SET], SERVICE_NAME).await?;
        Ok(Self { base, config })
    }

    /// The address the server listens on (the real port when configured with 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.base.local_addr
    }

    /// Where `/metrics` is served (when `metrics.enabled`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.base.metrics_addr
    }

    /// Cancel it to stop the server gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.base.shutdown.clone()
    }

    /// The connection pool, for tests and tools that run beside the server.
    pub fn pool(&self) -> Pool {
        self.base.pool.clone()
    }

    /// Serves, and runs each source's batch job, until the shutdown token
    /// is cancelled; then lets the jobs finish the batch in hand.
    pub async fn run_until_stopped(self) -> Result<(), Error> {
        // The batch jobs get connections of their own: however many callers
        // wait for the API's pool, batches keep going (and the reverse).
        let worker_pool = self
            .base
            .worker_pool(worker_pool_size(self.config.sources.len()));
        let ServiceBase {
            pool,
            listener,
            routes,
            auth,
            shutdown,
            database_up,
            ..
        } = self.base;
        let migrator = Arc::new(build_migrator(worker_pool, &self.config));
        let jobs = migrator.spawn_all(database_up, shutdown.child_token());
        let api = FormsMigratorServer::new(MigratorApi::new(migrator, pool))
            .max_decoding_message_size(self.config.server.max_message_bytes);
        let routes = routes.add_service(InterceptedService::new(api, auth));
        let served =
            service_kit::server::serve(routes, listener, &self.config.server, shutdown.clone())
                .await;
        shutdown.cancel();
        for job in jobs {
            let _ = job.await;
        }
        served?;
        Ok(())
    }
}

/// The domain over a pool: the configured sources and the shared catalog.
pub fn build_migrator(pool: Pool, config: &Config) -> Migrator {
    let catalog = Arc::new(SharedCatalog::new(Naming::new(config.form_mapping.clone())));
    Migrator::new(pool, catalog, config.sources.clone())
}

/// Connections the batch jobs' pool holds: two per source (a batch's
/// transaction and its cursor read) and one spare.
pub fn worker_pool_size(sources: usize) -> u32 {
    u32::try_from(sources)
        .unwrap_or(u32::MAX / 4)
        .saturating_mul(2)
        .saturating_add(1)
}
