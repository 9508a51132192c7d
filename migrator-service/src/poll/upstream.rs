//! The HTTP client of one upstream source: `GET <url>?timestamp=T&batch-size=N`
//! with Basic auth, connect and request timeouts, verified TLS (plus an
//! optional private CA), a bound on the body's size, and retries with
//! exponential backoff and jitter on connection errors, timeouts, 5xx, 429
//! (honouring `Retry-After`) and a 200 whose body is not a JSON array (a
//! page cut short by a proxy). A 401, 403 or 404 stops at once: retrying
//! cannot fix it, and a retry storm against a server that refuses us helps
//! nobody. So does a body past `max_response_bytes`: it would be as large
//! the next time.
//!
//! The URL's own `timestamp` and `batch-size` (the original migrator's
//! configuration carried `?timestamp=0&batch-size=100`) are taken out, so
//! the server, which reads the first of a repeated parameter, sees ours.

use crate::config::{RetrySettings, Secret, SourceSettings};
use crate::poll::submission::split_page;
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
    /// The body is larger than the source's `max_response_bytes`.
    #[error(
        "the upstream's response at {url} is larger than sources[{source_name}].max_response_bytes ({limit} bytes): lower batch_size or raise max_response_bytes, then restart"
    )]
    TooLarge {
        source_name: String,
        url: String,
        limit: u64,
    },
    /// Page after page holds nothing after the timestamp asked for: the
    /// upstream (or a proxy before it) does not page by our `timestamp`.
    #[error(
        "the upstream ignores the timestamp: {pages} pages in a row asked after {timestamp} held only submissions up to serverVersion {newest}, so the watermark cannot move; check the source's url {url} (a proxy that drops the query?), then call RunNow"
    )]
    IgnoresTimestamp {
        url: String,
        pages: u32,
        timestamp: i64,
        newest: i64,
    },
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
                | UpstreamError::TooLarge { .. }
                | UpstreamError::IgnoresTimestamp { .. }
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
    source: String,
    /// The configured URL without its own `timestamp` and `batch-size`.
    url: Url,
    max_response_bytes: u64,
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

/// The query parameters the service sets on every request.
const CURSOR_PARAMETERS: [&str; 2] = ["timestamp", "batch-size"];

/// `url` without its own `timestamp` and `batch-size` (every occurrence),
/// its other parameters kept in order; whether it had any.
pub fn without_cursor_parameters(mut url: Url) -> (Url, bool) {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let kept: Vec<&(String, String)> = pairs
        .iter()
        .filter(|(k, _)| !CURSOR_PARAMETERS.contains(&k.as_str()))
        .collect();
    if kept.len() == pairs.len() {
        return (url, false);
    }
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    (url, true)
}

impl Upstream {
    pub fn new(settings: &SourceSettings) -> Result<Self, UpstreamError> {
        let url = Url::parse(&settings.url).map_err(|e| {
            UpstreamError::Setup(format!("url {}: {e}", display_url(&settings.url)))
        })?;
        let (url, replaced) = without_cursor_parameters(url);
        if replaced {
            tracing::warn!(
                source = %settings.name,
                url = %display_url(url.as_str()),
                "the source's url carries its own timestamp or batch-size; the service sets them itself on each request"
            );
        }
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
            source: settings.name.clone(),
            url,
            max_response_bytes: settings.max_response_bytes,
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
        let page = (|| async {
            attempts.fetch_add(1, Ordering::Relaxed);
            let body = self.attempt(timestamp, batch_size).await?;
            // A 200 cut short (by a proxy, a restart) is as transient as
            // a 502: the same request soon after gets the whole page.
            split_page(&body).map_err(|e| Attempt::Transient {
                message: e.to_string(),
                retry_after: None,
            })
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
        match page {
            Ok(elements) => Ok(elements),
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
            return self.read_body(response).await;
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

impl Upstream {
    /// The body, read chunk by chunk and given up as soon as it passes
    /// `max_response_bytes` (or announces that it will).
    async fn read_body(&self, mut response: reqwest::Response) -> Result<bytes::Bytes, Attempt> {
        let limit = self.max_response_bytes;
        let too_large = || {
            Attempt::Final(UpstreamError::TooLarge {
                source_name: self.source.clone(),
                url: self.url(),
                limit,
            })
        };
        let announced = response.content_length();
        if announced.is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let capacity = announced.unwrap_or(0).min(limit);
        let mut body = bytes::BytesMut::with_capacity(usize::try_from(capacity).unwrap_or(0));
        while let Some(chunk) = response.chunk().await.map_err(|e| Attempt::Transient {
            message: format!("reading the body: {}", error_chain(&e)),
            retry_after: None,
        })? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
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
    fn the_urls_own_cursor_parameters_are_taken_out_and_the_rest_kept() {
        let parse = |u: &str| Url::parse(u).expect("url");
        let (url, replaced) = without_cursor_parameters(parse(
            "https://h/all-form-submissions?timestamp=0&district=n%20e&batch-size=100&timestamp=5",
        ));
        assert!(replaced);
        assert_eq!(url.as_str(), "https://h/all-form-submissions?district=n+e");
        let (url, replaced) =
            without_cursor_parameters(parse("https://h/all-form-submissions?timestamp=0"));
        assert!(replaced);
        assert_eq!(url.as_str(), "https://h/all-form-submissions");
        let (url, replaced) = without_cursor_parameters(parse("https://h/x?a=1"));
        assert!(!replaced);
        assert_eq!(url.as_str(), "https://h/x?a=1");
    }

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(
            display_url("https://user:pw@example.org/all-form-submissions"),
            "https://example.org/all-form-submissions"
        );
    }
}
