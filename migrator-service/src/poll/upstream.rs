//! The HTTP client of one upstream source: `GET <url>?timestamp=T&batch-size=N`
//! with Basic auth, connect and request timeouts, verified TLS (plus an
//! optional private CA), and retries with exponential backoff and jitter on
//! connection errors, timeouts, 5xx and 429 (honouring `Retry-After`). A
//! 401, 403 or 404 stops at once: retrying cannot fix it, and a retry storm
//! against a server that refuses us helps nobody.

use crate::config::{RetrySettings, Secret, SourceSettings};
use crate::poll::submission::{BadPage, split_page};
use backon::{ExponentialBuilder, Retryable};
use reqwest::{StatusCode, Url, header};
use serde_json::value::RawValue;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Why a page could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// 401 or 403: the credentials are wrong or lack access.
    #[error(
        "the upstream refused the request with HTTP {status} at {url}: check the source's username and password, then call RunNow"
    )]
    Refused { status: u16, url: String },
    /// 404: the URL is wrong.
    #[error("the upstream answered HTTP 404 at {url}: check the source's url, then call RunNow")]
    NotFound { url: String },
    /// Another status that retrying does not fix (400, 405, ...).
    #[error("the upstream answered HTTP {status} at {url}: {body}")]
    Status {
        status: u16,
        url: String,
        body: String,
    },
    /// Transient failures that outlasted the retries.
    #[error("the upstream failed {attempts} times at {url}; last: {last}")]
    Exhausted {
        attempts: u32,
        url: String,
        last: String,
    },
    /// A `Retry-After` longer than the configured limit.
    #[error(
        "the upstream asked to retry after {seconds}s, more than retry.max_retry_after_seconds; polling again at the next interval"
    )]
    RetryAfterTooLong { seconds: u64 },
    /// The body is not a JSON array: retried at the next poll.
    #[error(transparent)]
    BadPage(#[from] BadPage),
    /// The client cannot be built (a bad CA file).
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
}

impl UpstreamError {
    /// A failure that stops the source until RunNow or a restart.
    pub fn stops_the_source(&self) -> bool {
        matches!(
            self,
            UpstreamError::Refused { .. }
                | UpstreamError::NotFound { .. }
                | UpstreamError::Setup(_)
        )
    }
}

/// One attempt's failure: retried or final.
#[derive(Debug)]
enum Attempt {
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    Final(UpstreamError),
}

/// The client of one source.
#[derive(Clone)]
pub struct Upstream {
    client: reqwest::Client,
    url: Url,
    username: Option<String>,
    password: Option<Secret>,
    retry: RetrySettings,
}

/// A URL without credentials, for logs and the API.
pub fn display_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.to_string()
        }
        Err(_) => "<invalid url>".to_string(),
    }
}

impl Upstream {
    pub fn new(settings: &SourceSettings) -> Result<Self, UpstreamError> {
        let url = Url::parse(&settings.url).map_err(|e| {
            UpstreamError::Setup(format!("url {}: {e}", display_url(&settings.url)))
        })?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout())
            .timeout(settings.request_timeout())
            .user_agent(concat!("avni-migrator-service/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &settings.ca_certificate {
            let pem = std::fs::read(path).map_err(|e| {
                UpstreamError::Setup(format!("ca_certificate {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                UpstreamError::Setup(format!("ca_certificate {}: {e}", path.display()))
            })?;
            if certs.is_empty() {
                return Err(UpstreamError::Setup(format!(
                    "ca_certificate {} holds no PEM certificate",
                    path.display()
                )));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| UpstreamError::Setup(error_chain(&e)))?;
        Ok(Self {
            client,
            url,
            username: settings.username.clone(),
            password: settings.password.clone(),
            retry: settings.retry.clone(),
        })
    }

    /// The URL polled, without credentials.
    pub fn url(&self) -> String {
        display_url(self.url.as_str())
    }

    /// Fetches the page after `timestamp`, retrying transient failures.
    pub async fn fetch(
        &self,
        timestamp: i64,
        batch_size: u32,
    ) -> Result<Vec<Box<RawValue>>, UpstreamError> {
        let attempts = AtomicU32::new(0);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay())
            .with_max_delay(self.retry.max_delay())
            .with_jitter()
            .with_max_times(self.retry.max_retries as usize);
        let url = self.url();
        let body = (|| async {
            attempts.fetch_add(1, Ordering::Relaxed);
            self.attempt(timestamp, batch_size).await
        })
        .retry(backoff)
        .when(|e| matches!(e, Attempt::Transient { .. }))
        .adjust(|e, delay| match (e, delay) {
            // Honour the server's wish, but only while retries remain.
            (Attempt::Transient { retry_after: Some(wait), .. }, Some(_)) => Some(*wait),
            (_, delay) => delay,
        })
        .notify(|e, delay| {
            if let Attempt::Transient { message, .. } = e {
                tracing::warn!(url = %url, error = %message, retry_in_ms = delay.as_millis() as u64, "upstream request failed; retrying");
            }
        })
        .await;
        match body {
            Ok(bytes) => Ok(split_page(&bytes)?),
            Err(Attempt::Final(e)) => Err(e),
            Err(Attempt::Transient { message, .. }) => Err(UpstreamError::Exhausted {
                attempts: attempts.load(Ordering::Relaxed),
                url,
                last: message,
            }),
        }
    }

    async fn attempt(&self, timestamp: i64, batch_size: u32) -> Result<bytes::Bytes, Attempt> {
        let mut request = self
            .client
            .get(self.url.clone())
            .query(&[
                ("timestamp", timestamp.to_string()),
                ("batch-size", batch_size.to_string()),
            ])
            .header(header::ACCEPT, "application/json");
        if let Some(user) = &self.username {
            request = request.basic_auth(user, self.password.as_ref().map(Secret::expose));
        }
        let response = request.send().await.map_err(|e| Attempt::Transient {
            message: error_chain(&e),
            retry_after: None,
        })?;
        let status = response.status();
        let url = self.url();
        if status.is_success() {
            return response.bytes().await.map_err(|e| Attempt::Transient {
                message: format!("reading the body: {}", error_chain(&e)),
                retry_after: None,
            });
        }
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = response.text().await.unwrap_or_default();
        let body: String = body.chars().take(200).collect();
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(Attempt::Final(UpstreamError::Refused {
                    status: status.as_u16(),
                    url,
                }))
            }
            StatusCode::NOT_FOUND => Err(Attempt::Final(UpstreamError::NotFound { url })),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                if retry_after.is_some_and(|w| w > self.retry.max_retry_after()) =>
            {
                Err(Attempt::Final(UpstreamError::RetryAfterTooLong {
                    seconds: retry_after.map(|w| w.as_secs()).unwrap_or_default(),
                }))
            }
            s if s == StatusCode::TOO_MANY_REQUESTS
                || s == StatusCode::REQUEST_TIMEOUT
                || s.is_server_error() =>
            {
                Err(Attempt::Transient {
                    message: format!("HTTP {}: {body}", s.as_u16()),
                    retry_after,
                })
            }
            s => Err(Attempt::Final(UpstreamError::Status {
                status: s.as_u16(),
                url,
                body,
            })),
        }
    }
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(seconds) = v.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// An error with its causes, on one line (reqwest hides the useful part
/// in `source()`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_retry_after_in_both_forms() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert!(parse_retry_after("soon").is_none());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(b"not a certificate").expect("write");
        let mut settings = SourceSettings::new("a", "https://example.org/all-form-submissions");
        settings.ca_certificate = Some(f.path().to_path_buf());
        let err = Upstream::new(&settings).err().expect("refused");
        assert!(matches!(err, UpstreamError::Setup(_)), "{err}");
        assert!(err.stops_the_source());
        settings.ca_certificate = None;
        assert!(Upstream::new(&settings).is_ok());
    }

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(
            display_url("https://user:pw@example.org/all-form-submissions"),
            "https://example.org/all-form-submissions"
        );
    }
}
