//! Wiring: what etl-service serves and runs beside the shared plumbing
//! (`service_kit::App`), used by `main.rs` and by tests (on port 0).

use crate::api::handlers::EtlApi;
use crate::config::Config;
use crate::control::Control;
use crate::control::executor::EngineExecutor;
use crate::control::scheduler::{Scheduler, SchedulerSettings};
use crate::engine::EngineContext;
use crate::error::Error;
use crate::migrations::migrations;
use avni_proto::etl::v1::FILE_DESCRIPTOR_SET;
use avni_proto::etl::v1::etl_service_server::EtlServiceServer;
use service_kit::db::MigrationSet;
use service_kit::db::Pool;
use service_kit::{Service, ServiceBase};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;

/// The fully qualified name of the product service.
pub const SERVICE_NAME: &str = <EtlServiceServer<EtlApi> as NamedService>::NAME;

/// A built, not yet running etl-service ([`service_kit::App`] over [`Etl`]).
pub type App = service_kit::App<Etl>;

/// What etl-service adds to the shared plumbing: the `EtlService` API over
/// the control plane, and the scheduler with its own pool of connections.
pub struct Etl;

impl Service for Etl {
    type Config = Config;
    type Error = Error;
    const NAME: &'static str = SERVICE_NAME;
    const DESCRIPTOR_SETS: &'static [&'static [u8]] = &[FILE_DESCRIPTOR_SET];
    const MIGRATIONS: MigrationSet = migrations();

    async fn serve(base: ServiceBase, config: Config) -> Result<(), Error> {
        let etl = &config.etl;
        // Runs get connections of their own: however many callers wait for
        // the API's pool, runs keep going (and the reverse).
        let worker_pool = etl
            .scheduler_enabled
            .then(|| base.worker_pool(worker_pool_size(etl.max_concurrent_runs)));
        let ServiceBase {
            pool,
            listener,
            routes,
            auth,
            shutdown,
            ..
        } = base;
        let engine = engine_on(&pool, &config);
        let checked = pool.clone();
        tokio::spawn(
            async move { crate::engine::source::indexes::warn_if_missing(&checked).await },
        );
        let scheduler = match worker_pool {
            Some(worker_pool) => Some(spawn_scheduler(worker_pool, &config, &shutdown)),
            None => {
                tracing::info!(
                    "scheduler disabled on this replica (etl.scheduler_enabled: false): serving the API only"
                );
                None
            }
        };
        let control =
            Control::new(engine, etl.interval()).with_recreate_lock_wait(etl.recreate_lock_wait());
        let api = EtlServiceServer::new(EtlApi::new(control))
            .max_decoding_message_size(config.server.max_message_bytes);
        let routes = routes.add_service(InterceptedService::new(api, auth));
        let served =
            service_kit::server::serve(routes, listener, &config.server, shutdown.clone()).await;
        // The server stops on shutdown or failure; either way stop the scheduler.
        shutdown.cancel();
        if let Some(scheduler) = scheduler {
            let _ = scheduler.await;
        }
        served?;
        Ok(())
    }
}

/// The engine over `pool`.
fn engine_on(pool: &Pool, config: &Config) -> EngineContext {
    EngineContext {
        pool: pool.clone(),
        database_url: config.database.url.clone(),
        settings: config.etl.clone(),
    }
}

/// The scheduler of this replica, running runs on `worker_pool` until
/// `shutdown` is cancelled.
fn spawn_scheduler(
    worker_pool: Pool,
    config: &Config,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let etl = &config.etl;
    Scheduler::new(
        worker_pool.clone(),
        config.database.url.clone(),
        SchedulerSettings {
            max_concurrent_runs: etl.max_concurrent_runs,
            lease: Duration::from_secs(etl.lease_seconds),
            poll_interval: Duration::from_millis(etl.scheduler_poll_ms),
        },
        Arc::new(EngineExecutor::new(engine_on(&worker_pool, config))),
    )
    .spawn(shutdown.child_token())
}

/// Connections the scheduler's pool holds: per run slot one for the engine
/// and one for its progress writer, plus the scheduler's tick and the lease
/// heartbeat. No task ever waits for a second connection while holding one
/// beyond that, so the pool cannot run dry.
pub fn worker_pool_size(max_concurrent_runs: usize) -> u32 {
    u32::try_from(max_concurrent_runs)
        .unwrap_or(u32::MAX / 4)
        .saturating_mul(2)
        .saturating_add(2)
}
