//! What every service does before it serves, in one place: wait for
//! PostgreSQL, settle migrations, open the pool, build health, reflection and
//! auth, bind the listener, and start the health monitor.

use crate::KitError;
use crate::auth::BearerAuth;
use crate::config::ServiceConfig;
use crate::db::{self, MigrationSet, Pool};
use crate::health::spawn_database_monitor;
use crate::server::{bind, standard_routes};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_health::server::HealthReporter;

/// The parts of a running service that are not its own domain.
pub struct ServiceBase {
    /// The gRPC handlers' pool (`database.pool_size` connections); work in
    /// the background gets a pool of its own ([`ServiceBase::worker_pool`]),
    /// so that no amount of API traffic can starve it.
    pub pool: Pool,
    pub listener: TcpListener,
    pub local_addr: SocketAddr,
    /// Health and reflection; the service adds its product service.
    pub routes: Routes,
    pub health: HealthReporter,
    pub auth: BearerAuth,
    /// Cancelled to stop the service (signal, or a test's handle).
    pub shutdown: CancellationToken,
    /// `true` while PostgreSQL is reachable.
    pub database_up: watch::Receiver<bool>,
    /// Where `/metrics` is served, when enabled.
    pub metrics_addr: Option<SocketAddr>,
    database: crate::config::DatabaseSettings,
}

impl ServiceBase {
    /// Prepares everything but the product service. `product_service` is the
    /// fully qualified gRPC name whose health status follows PostgreSQL.
    pub async fn prepare<C: ServiceConfig>(
        config: &C,
        migrations: MigrationSet,
        descriptor_sets: &[&'static [u8]],
        product_service: &str,
    ) -> Result<Self, KitError> {
        let database = config.database();
        db::wait_for_database(database).await?;
        settle_migrations(config, migrations).await?;
        let pool = db::build_pool(database);

        let server = config.server();
        let auth = BearerAuth::new(&server.auth_tokens);
        if auth.is_open() {
            tracing::warn!(
                "authentication is disabled: no server.auth_tokens (or AUTH_TOKENS) configured; every caller can use the API"
            );
        }
        let (routes, health) = standard_routes(descriptor_sets, server, &auth)?;
        let listener = bind(server).await?;
        let local_addr = listener.local_addr().map_err(|e| KitError::Bind {
            addr: server.listen.clone(),
            message: e.to_string(),
        })?;
        let shutdown = CancellationToken::new();
        let database_up = spawn_database_monitor(
            database.url.clone(),
            Duration::from_millis(database.health_check_interval_ms),
            Duration::from_secs(database.connect_timeout_seconds.max(1)),
            health.clone(),
            vec![product_service.to_string()],
            shutdown.child_token(),
        );
        let metrics_addr = if config.metrics().enabled {
            crate::metrics::spawn_pool_sampler(
                pool.clone(),
                "api",
                database.pool_size,
                Duration::from_secs(1),
                shutdown.child_token(),
            );
            Some(crate::metrics::serve(&config.metrics().listen, shutdown.child_token()).await?)
        } else {
            None
        };
        tracing::info!(
            addr = %local_addr,
            metrics = %metrics_addr.map_or_else(|| "off".to_string(), |a| a.to_string()),
            database = %db::describe(&database.url),
            service = product_service,
            "listening for gRPC"
        );
        Ok(Self {
            pool,
            listener,
            local_addr,
            routes,
            health,
            auth,
            shutdown,
            database_up,
            metrics_addr,
            database: database.clone(),
        })
    }

    /// A second pool of `size` connections for the service's background
    /// work (ETL runs, migrator batches), reported in `/metrics` as
    /// `pool="worker"`.
    pub fn worker_pool(&self, size: u32) -> Pool {
        let pool = db::build_pool(&crate::config::DatabaseSettings {
            pool_size: size.max(1),
            ..self.database.clone()
        });
        if self.metrics_addr.is_some() {
            crate::metrics::spawn_pool_sampler(
                pool.clone(),
                "worker",
                size.max(1),
                Duration::from_secs(1),
                self.shutdown.child_token(),
            );
        }
        pool
    }
}

/// `serve` (and each service's one-shot commands) refuse to start while
/// migrations are pending, naming them, unless the config asks to apply them
/// at start.
pub async fn settle_migrations<C: ServiceConfig>(
    config: &C,
    migrations: MigrationSet,
) -> Result<(), KitError> {
    let url = &config.database().url;
    if config.migrations().apply_on_start {
        let applied = db::run_pending_migrations(url, migrations).await?;
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "applied pending migrations at start-up");
        }
        return Ok(());
    }
    let pending = db::pending_migrations(url, migrations).await?;
    if pending.is_empty() {
        Ok(())
    } else {
        Err(KitError::PendingMigrations {
            binary: C::DEFAULTS.binary.to_string(),
            names: pending,
        })
    }
}

/// The `migrate` command: waits for PostgreSQL, applies what is pending, and
/// says what it did (nothing, when nothing is pending).
pub async fn migrate_command<C: ServiceConfig>(
    config: &C,
    migrations: MigrationSet,
) -> Result<Vec<String>, KitError> {
    db::wait_for_database(config.database()).await?;
    let applied = db::run_pending_migrations(&config.database().url, migrations).await?;
    if applied.is_empty() {
        tracing::info!("no pending migrations; nothing to do");
    } else {
        for name in &applied {
            tracing::info!(migration = %name, "applied");
        }
    }
    Ok(applied)
}

/// The `health-check` command: exits 0 when the server configured in `config`
/// reports SERVING (for container health checks and scripts).
pub async fn health_check_command<C: ServiceConfig>(config: &C) -> Result<(), KitError> {
    let server = config.server();
    let token = server
        .auth_for_health_and_reflection
        .then(|| server.auth_tokens.first().map(String::as_str))
        .flatten();
    match crate::health::probe(&server.listen, "", token, Duration::from_secs(3)).await {
        Ok(tonic_health::ServingStatus::Serving) => {
            println!("SERVING");
            Ok(())
        }
        Ok(_) => Err(KitError::Serve(format!(
            "{} reports NOT_SERVING (PostgreSQL unreachable?)",
            server.listen
        ))),
        Err(e) => Err(KitError::Serve(e)),
    }
}
