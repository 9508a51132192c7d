//! The `App` both services are: built from a config (PostgreSQL reached,
//! migrations settled, listener bound), then run until its shutdown token is
//! cancelled. `main.rs` and the tests use the same `App`, the tests on port 0.
//!
//! A service says only what is its own through [`Service`]: its contract, its
//! migrations, and what it runs beside the shared routes.

use crate::KitError;
use crate::base::ServiceBase;
use crate::config::ServiceConfig;
use crate::db::{MigrationSet, Pool};
use std::future::Future;
use std::marker::PhantomData;
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

/// What a service adds to the shared plumbing.
pub trait Service: Send + 'static {
    type Config: ServiceConfig + Send;
    /// The service's one error type; the plumbing's errors convert into it.
    type Error: From<KitError> + std::fmt::Display + Send;
    /// The fully qualified gRPC name of the product service, whose health
    /// follows PostgreSQL.
    const NAME: &'static str;
    /// The descriptor sets served by reflection.
    const DESCRIPTOR_SETS: &'static [&'static [u8]];
    /// The service's embedded migrations.
    const MIGRATIONS: MigrationSet;

    /// Adds the product service to `base.routes`, starts the service's own
    /// background work, and serves until `base.shutdown` is cancelled.
    fn serve(
        base: ServiceBase,
        config: Self::Config,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// A built, not yet running service.
pub struct App<S: Service> {
    base: ServiceBase,
    config: S::Config,
    service: PhantomData<S>,
}

impl<S: Service> App<S> {
    /// Waits for PostgreSQL, checks migrations, binds the listener. Fails
    /// with a clear error when migrations are pending (unless
    /// `migrations.apply_on_start`) or PostgreSQL stays unreachable.
    pub async fn build(config: S::Config) -> Result<Self, S::Error> {
        let base =
            ServiceBase::prepare(&config, S::MIGRATIONS, S::DESCRIPTOR_SETS, S::NAME).await?;
        Ok(Self {
            base,
            config,
            service: PhantomData,
        })
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

    /// Serves until the shutdown token is cancelled.
    pub async fn run_until_stopped(self) -> Result<(), S::Error> {
        S::serve(self.base, self.config).await
    }
}

/// The `serve` command: builds the app and runs it until SIGINT or SIGTERM.
pub async fn serve_command<S: Service>(config: S::Config) -> Result<(), S::Error> {
    let app = App::<S>::build(config).await?;
    let stop = app.shutdown_token();
    tokio::spawn(async move {
        crate::shutdown::signal().await;
        stop.cancel();
    });
    app.run_until_stopped().await
}
