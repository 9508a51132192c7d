//! Server-side limits on every product call: a deadline and a cap on how
//! many run at once (`server.request_timeout_seconds`,
//! `server.max_concurrent_calls`).
//!
//! The deadline ends the handler and answers DEADLINE_EXCEEDED; work a
//! handler hands to a task of its own (RecreateSchema, ReprocessErrors,
//! RefillColumns) goes on and is seen in the status RPCs. Over the cap, a
//! call is answered RESOURCE_EXHAUSTED at once rather than queued, so a
//! burst cannot pile up behind a slow database. A streaming call
//! (WatchJobRun) counts and is timed only until its stream starts: watching
//! is bounded by the RPC's own rules, not by these.
//!
//! Health and reflection are exempt, so an overloaded service still answers
//! its health checks.

use crate::config::ServerSettings;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Semaphore;
use tonic::Status;

/// Paths that are never limited: health checks and reflection.
const EXEMPT_PREFIXES: [&str; 2] = ["/grpc.health.", "/grpc.reflection."];

/// The limits, as the config gives them (0 turns one off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// Longest a call may take to answer; `None` for no limit.
    pub timeout: Option<Duration>,
    /// Most calls running at once; `None` for no limit.
    pub max_concurrent: Option<usize>,
}

impl CallLimits {
    pub fn from_settings(settings: &ServerSettings) -> Self {
        Self {
            timeout: (settings.request_timeout_seconds > 0)
                .then(|| Duration::from_secs(settings.request_timeout_seconds)),
            max_concurrent: (settings.max_concurrent_calls > 0)
                .then_some(settings.max_concurrent_calls),
        }
    }
}

/// The tower layer that applies [`CallLimits`].
#[derive(Clone)]
pub struct CallLimitsLayer {
    limits: CallLimits,
    permits: Option<Arc<Semaphore>>,
}

impl CallLimitsLayer {
    pub fn new(limits: CallLimits) -> Self {
        Self {
            limits,
            permits: limits.max_concurrent.map(|n| Arc::new(Semaphore::new(n))),
        }
    }
}

impl<S> tower::Layer<S> for CallLimitsLayer {
    type Service = CallLimitsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallLimitsService {
            inner,
            limits: self.limits,
            permits: self.permits.clone(),
        }
    }
}

/// The service [`CallLimitsLayer`] wraps around the routes.
#[derive(Clone)]
pub struct CallLimitsService<S> {
    inner: S,
    limits: CallLimits,
    permits: Option<Arc<Semaphore>>,
}

type HttpRequest = http::Request<tonic::body::Body>;
type HttpResponse = http::Response<tonic::body::Body>;

impl<S> tower::Service<HttpRequest> for CallLimitsService<S>
where
    S: tower::Service<HttpRequest, Response = HttpResponse> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<HttpResponse, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        // The clone is the one that was polled ready; `self` keeps a fresh one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if is_exempt(request.uri().path()) {
            return Box::pin(inner.call(request));
        }
        let method = method_name(request.uri().path());
        let permit = match &self.permits {
            None => None,
            Some(permits) => match permits.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    let limit = self.limits.max_concurrent.unwrap_or_default();
                    return Box::pin(std::future::ready(Ok(over_capacity(&method, limit))));
                }
            },
        };
        let timeout = self.limits.timeout;
        Box::pin(async move {
            let answer = inner.call(request);
            let result = match timeout {
                None => answer.await,
                Some(limit) => match tokio::time::timeout(limit, answer).await {
                    Ok(result) => result,
                    Err(_) => Ok(past_deadline(&method, limit)),
                },
            };
            drop(permit);
            result
        })
    }
}

fn is_exempt(path: &str) -> bool {
    EXEMPT_PREFIXES.iter().any(|p| path.starts_with(p))
}

/// `/pkg.Service/Method` → `Method`.
fn method_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

fn over_capacity(method: &str, limit: usize) -> HttpResponse {
    tracing::warn!(
        method,
        limit,
        "call refused: the server is already running its limit of calls (server.max_concurrent_calls)"
    );
    metrics::counter!("grpc_calls_refused_total", "method" => method.to_string(), "reason" => "over_capacity").increment(1);
    Status::resource_exhausted(format!(
        "the server is already running {limit} calls, its limit \
         (server.max_concurrent_calls); retry {method} with backoff"
    ))
    .into_http()
}

fn past_deadline(method: &str, limit: Duration) -> HttpResponse {
    let seconds = limit.as_secs();
    tracing::warn!(
        method,
        limit_seconds = seconds,
        "call ended at the server's deadline (server.request_timeout_seconds)"
    );
    metrics::counter!("grpc_calls_refused_total", "method" => method.to_string(), "reason" => "deadline").increment(1);
    Status::deadline_exceeded(format!(
        "{method} did not answer within the server's limit of {seconds} s \
         (server.request_timeout_seconds); work it handed to the background goes on"
    ))
    .into_http()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_and_reflection_are_exempt() {
        assert!(is_exempt("/grpc.health.v1.Health/Check"));
        assert!(is_exempt(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!is_exempt("/avni.etl.v1.EtlService/RunNow"));
    }

    #[test]
    fn the_method_is_the_last_path_segment() {
        assert_eq!(method_name("/avni.etl.v1.EtlService/RunNow"), "RunNow");
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let settings = ServerSettings {
            request_timeout_seconds: 0,
            max_concurrent_calls: 0,
            ..ServerSettings::default()
        };
        assert_eq!(
            CallLimits::from_settings(&settings),
            CallLimits {
                timeout: None,
                max_concurrent: None
            }
        );
        let defaults = CallLimits::from_settings(&ServerSettings::default());
        assert_eq!(defaults.timeout, Some(Duration::from_secs(120)));
        assert_eq!(defaults.max_concurrent, Some(512));
    }
}
