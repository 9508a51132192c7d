//! Prometheus metrics: one process-wide recorder (the `metrics` facade), a
//! small HTTP server per service answering `GET /metrics` in the Prometheus
//! text format, and the connection pools' state, sampled every second, each
//! labelled `pool="api"` (the gRPC handlers') or `pool="worker"` (the
//! background work's: ETL runs, migrator batches):
//!
//! - `db_pool_max_connections`, `db_pool_connections`,
//!   `db_pool_idle_connections`: the pool's size and what it holds now
//! - `db_pool_pending_gets`: callers waiting for a connection now
//! - `db_pool_gets_total{outcome="direct"|"waited"|"timed_out"}`: checkouts
//!   since start, by whether they had to wait (or gave up after
//!   `database.connect_timeout_seconds`)
//! - `db_pool_get_wait_microseconds_total`: time spent waiting for a
//!   connection since start

use crate::KitError;
use crate::db::Pool;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder the first time it is called (later calls, e.g. a
/// second App in the same test process, share it).
pub fn recorder() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::warn!(error = %e, "cannot install the metrics recorder; /metrics will be empty");
                None
            }
        })
        .clone()
}

/// Serves `GET /metrics` on `listen` until `shutdown`; returns the bound
/// address (port 0 picks a free one).
pub async fn serve(listen: &str, shutdown: CancellationToken) -> Result<SocketAddr, KitError> {
    let handle = recorder();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| KitError::Bind {
            addr: listen.to_string(),
            message: e.to_string(),
        })?;
    let addr = listener.local_addr().map_err(|e| KitError::Bind {
        addr: listen.to_string(),
        message: e.to_string(),
    })?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    handle.map(|h| h.render()).unwrap_or_default(),
                )
            }
        }),
    );
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "metrics server stopped");
        }
    });
    tracing::info!(addr = %addr, "serving Prometheus metrics at /metrics");
    Ok(addr)
}

/// Publishes the pool's state (see the module's list) every `every` until
/// `shutdown`.
pub fn spawn_pool_sampler(
    pool: Pool,
    name: &'static str,
    max_size: u32,
    every: Duration,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => record_pool(&pool, name, max_size),
            }
        }
    });
}

/// Sets the pool metrics from its current state.
pub fn record_pool(pool: &Pool, name: &'static str, max_size: u32) {
    let state = pool.state();
    let stats = &state.statistics;
    metrics::gauge!("db_pool_max_connections", "pool" => name).set(f64::from(max_size));
    metrics::gauge!("db_pool_connections", "pool" => name).set(f64::from(state.connections));
    metrics::gauge!("db_pool_idle_connections", "pool" => name)
        .set(f64::from(state.idle_connections));
    metrics::gauge!("db_pool_pending_gets", "pool" => name).set(stats.pending_gets() as f64);
    for (outcome, n) in [
        ("direct", stats.get_direct),
        ("waited", stats.get_waited),
        ("timed_out", stats.get_timed_out),
    ] {
        metrics::counter!("db_pool_gets_total", "pool" => name, "outcome" => outcome).absolute(n);
    }
    metrics::counter!("db_pool_get_wait_microseconds_total", "pool" => name)
        .absolute(u64::try_from(stats.get_wait_time.as_micros()).unwrap_or(u64::MAX));
}
