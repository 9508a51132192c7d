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
