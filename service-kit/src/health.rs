//! `grpc.health.v1.Health` that follows PostgreSQL: NOT_SERVING while the
//! database cannot be reached, SERVING again when it is back, without a
//! restart. The overall status ("") and each product service's status move
//! together, because neither service can do anything useful without it.

use crate::db::{connect_raw, describe};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// Starts the monitor. Returns a receiver that is `true` while PostgreSQL is
/// reachable, for workers that want to pause instead of failing.
pub fn spawn_database_monitor(
    url: String,
    interval: Duration,
    connect_timeout: Duration,
    reporter: HealthReporter,
    services: Vec<String>,
    shutdown: CancellationToken,
) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let target = describe(&url);
        let mut client: Option<tokio_postgres::Client> = None;
        let mut last: Option<bool> = None;
        loop {
            let reachable = check(&url, &mut client, connect_timeout).await;
            let up = reachable.is_ok();
            if last != Some(up) {
                let status = if up {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                reporter.set_service_status("", status).await;
                for service in &services {
                    reporter.set_service_status(service, status).await;
                }
                match (&reachable, last) {
                    (Ok(()), None) => tracing::info!(database = %target, "health: SERVING"),
                    (Ok(()), Some(_)) => {
                        tracing::info!(database = %target, "PostgreSQL is reachable again; health: SERVING")
                    }
                    (Err(e), _) => {
                        tracing::warn!(database = %target, error = %e, "PostgreSQL is unreachable; health: NOT_SERVING")
                    }
                }
                let _ = tx.send(up);
                last = Some(up);
            }
            tokio::select! {
                () = shutdown.cancelled() => {
                    reporter.set_service_status("", ServingStatus::NotServing).await;
                    for service in &services {
                        reporter.set_service_status(service, ServingStatus::NotServing).await;
                    }
                    break;
                }
                () = tokio::time::sleep(interval) => {}
            }
        }
    });
    rx
}

/// One check on a kept connection; reconnects when the last one broke.
async fn check(
    url: &str,
    client: &mut Option<tokio_postgres::Client>,
    timeout: Duration,
) -> Result<(), String> {
    if client.as_ref().is_none_or(|c| c.is_closed()) {
        *client = Some(connect_raw(url, timeout).await?);
    }
    let Some(c) = client.as_ref() else {
        return Err("no connection".into());
    };
    match tokio::time::timeout(timeout, c.simple_query("SELECT 1")).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            *client = None;
            Err(e.to_string())
        }
        Err(_) => {
            *client = None;
            Err(format!("no answer within {}s", timeout.as_secs()))
        }
    }
}

/// Asks a running server's health service about `service` ("" for the whole
/// server), as a container health check does. A wildcard listen address is
/// probed on loopback.
pub async fn probe(
    listen: &str,
    service: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<ServingStatus, String> {
    let (host, port) = listen
        .rsplit_once(':')
        .ok_or_else(|| format!("{listen} is not host:port"))?;
    let host = match host {
        "0.0.0.0" | "" => "127.0.0.1",
        "[::]" => "[::1]",
        h => h,
    };
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{host}:{port}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut request = tonic::Request::new(tonic_health::pb::HealthCheckRequest {
        service: service.to_string(),
    });
    if let Some(token) = token {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| "the token is not a valid header value".to_string())?;
        request.metadata_mut().insert("authorization", value);
    }
    let response = client
        .check(request)
        .await
        .map_err(|s| format!("health check failed: {}", s.message()))?;
    Ok(
        match tonic_health::pb::health_check_response::ServingStatus::try_from(
            response.into_inner().status,
        ) {
            Ok(tonic_health::pb::health_check_response::ServingStatus::Serving) => {
                ServingStatus::Serving
            }
            _ => ServingStatus::NotServing,
        },
    )
}
