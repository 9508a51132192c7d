//! Serving a product service beside health and reflection, with graceful
//! shutdown.

use crate::KitError;
use crate::auth::BearerAuth;
use crate::config::ServerSettings;
use crate::limits::{CallLimits, CallLimitsLayer};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;
use tonic_health::server::HealthReporter;

/// Binds the listener. Port 0 picks a free port; read it back with
/// `local_addr`.
pub async fn bind(settings: &ServerSettings) -> Result<TcpListener, KitError> {
    TcpListener::bind(&settings.listen)
        .await
        .map_err(|e| KitError::Bind {
            addr: settings.listen.clone(),
            message: e.to_string(),
        })
}

/// Health and reflection (v1 and v1alpha) for the given descriptor sets,
/// behind the bearer check when the config asks for it. The caller adds its
/// product service to the returned routes.
pub fn standard_routes(
    descriptor_sets: &[&'static [u8]],
    settings: &ServerSettings,
    auth: &BearerAuth,
) -> Result<(Routes, HealthReporter), KitError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    // Each reflection service also describes the other version, so a client
    // listing services sees both.
    let mut v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET);
    let mut v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET);
    for set in descriptor_sets {
        v1 = v1.register_encoded_file_descriptor_set(set);
        v1alpha = v1alpha.register_encoded_file_descriptor_set(set);
    }
    let reflection_error = |e: tonic_reflection::server::Error| {
        KitError::Serve(format!("cannot build the reflection service: {e}"))
    };
    let v1 = v1.build_v1().map_err(reflection_error)?;
    let v1alpha = v1alpha.build_v1alpha().map_err(reflection_error)?;
    let routes = if settings.auth_for_health_and_reflection {
        Routes::new(InterceptedService::new(health, auth.clone()))
            .add_service(InterceptedService::new(v1, auth.clone()))
            .add_service(InterceptedService::new(v1alpha, auth.clone()))
    } else {
        Routes::new(health).add_service(v1).add_service(v1alpha)
    };
    Ok((routes, reporter))
}

/// tonic answers a request over `server.max_message_bytes` with OUT_OF_RANGE;
/// gRPC's own servers (and what clients expect) use RESOURCE_EXHAUSTED for a
/// message over the size limit, so the status is rewritten on its way out.
pub fn oversized_is_resource_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    const OUT_OF_RANGE: &str = "11";
    const RESOURCE_EXHAUSTED: http::HeaderValue = http::HeaderValue::from_static("8");
    let headers = response.headers_mut();
    let oversized = headers
        .get("grpc-status")
        .is_some_and(|s| s == OUT_OF_RANGE)
        && headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| {
                m.contains("message%20length%20too%20large")
                    || m.contains("message length too large")
            });
    if oversized {
        headers.insert("grpc-status", RESOURCE_EXHAUSTED);
    }
    response
}

/// Serves the routes on the listener until `shutdown` is cancelled, then
/// stops accepting calls and gives in-flight ones `shutdown_grace_seconds`
/// to finish.
pub async fn serve(
    routes: Routes,
    listener: TcpListener,
    settings: &ServerSettings,
    shutdown: CancellationToken,
) -> Result<(), KitError> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    let grace = Duration::from_secs(settings.shutdown_grace_seconds);
    let signal = shutdown.clone();
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .layer(tower::util::MapResponseLayer::new(
            oversized_is_resource_exhausted::<tonic::body::Body>,
        ))
        .layer(CallLimitsLayer::new(CallLimits::from_settings(settings)))
        .add_routes(routes)
        // Small gRPC responses must leave at once: with Nagle's algorithm on
        // (the default for accepted sockets) a response could wait for the
        // client's delayed ACK, some 40 ms.
        .serve_with_incoming_shutdown(incoming, async move {
            signal.cancelled().await;
        });
    tokio::pin!(server);
    let result = tokio::select! {
        r = &mut server => r,
        () = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_seconds = grace.as_secs(), "calls still running after the grace period; stopping anyway");
            Ok(())
        }
    };
    tracing::info!(addr = ?addr, "gRPC server stopped");
    result.map_err(|e| KitError::Serve(e.to_string()))
}
