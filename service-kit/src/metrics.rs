//! Prometheus metrics: one process-wide recorder (the `metrics` facade), and
//! a small HTTP server per service answering `GET /metrics` in the
//! Prometheus text format.

use crate::KitError;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::OnceLock;
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
