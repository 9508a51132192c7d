//! The configuration sections both services share, and the loader that reads a
//! service's YAML file, applies environment overrides and validates the result.
//!
//! A service's config struct embeds these sections and implements
//! [`ServiceConfig`]; [`load`] does the rest. Unknown keys are errors (a typo
//! never silently falls back to a default).

use crate::KitError;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::path::Path;

/// `database:`: where PostgreSQL is and how to talk to it. Its `Debug`
/// shows the URL with the password redacted.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `postgres://user:password@host:port/database`. Overridden by
    /// `DATABASE_URL`. Empty means the service's default.
    pub url: String,
    /// Connections in the pool.
    pub pool_size: u32,
    /// Timeout for opening one connection, in seconds.
    pub connect_timeout_seconds: u64,
    /// How long start-up waits for PostgreSQL (retrying with backoff) before
    /// giving up, in seconds.
    pub startup_wait_seconds: u64,
    /// How often the health monitor checks PostgreSQL, in milliseconds.
    pub health_check_interval_ms: u64,
    /// Create the database at start-up if the server has no database of that
    /// name (convenient on a developer's machine).
    pub create_if_missing: bool,
    /// PostgreSQL's `statement_timeout` on every pooled connection, in
    /// milliseconds: a statement running longer is cancelled by the server
    /// and fails with a clear error. 0 means no limit. Unset means the
    /// service's default. Connections that wait on purpose (locks,
    /// LISTEN, migrations) are outside the pool and have no limit.
    pub statement_timeout_ms: Option<u64>,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_seconds", &self.connect_timeout_seconds)
            .field("startup_wait_seconds", &self.startup_wait_seconds)
            .field("health_check_interval_ms", &self.health_check_interval_ms)
            .field("create_if_missing", &self.create_if_missing)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .finish()
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            pool_size: 10,
            connect_timeout_seconds: 5,
            startup_wait_seconds: 60,
            health_check_interval_ms: 2000,
            create_if_missing: true,
            statement_timeout_ms: None,
        }
    }
}

/// `server:`: the gRPC listener and its authentication. Its `Debug` shows
/// how many tokens there are, not the tokens.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// `host:port` to listen on. Overridden by `GRPC_LISTEN`. Empty means the
    /// service's default port on 127.0.0.1; port 0 picks a free port.
    pub listen: String,
    /// Bearer tokens accepted in `authorization: Bearer <token>`. Overridden
    /// by `AUTH_TOKENS` (comma-separated). Empty disables authentication (a
    /// warning is logged at start-up).
    pub auth_tokens: Vec<String>,
    /// Also require a token for the health and reflection services.
    pub auth_for_health_and_reflection: bool,
    /// Largest request message accepted, in bytes.
    pub max_message_bytes: usize,
    /// How long shutdown waits for in-flight calls, in seconds.
    pub shutdown_grace_seconds: u64,
    /// Longest a call may take to answer, in seconds; past it the call ends
    /// with DEADLINE_EXCEEDED (work handed to the background goes on). 0 for
    /// no limit. Health and reflection are exempt.
    pub request_timeout_seconds: u64,
    /// Most product calls running at once; one more is refused at once with
    /// RESOURCE_EXHAUSTED. 0 for no limit. Health and reflection are exempt.
    pub max_concurrent_calls: usize,
}

impl std::fmt::Debug for ServerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSettings")
            .field("listen", &self.listen)
            .field(
                "auth_tokens",
                &format_args!("[{} redacted]", self.auth_tokens.len()),
            )
            .field(
                "auth_for_health_and_reflection",
                &self.auth_for_health_and_reflection,
            )
            .field("max_message_bytes", &self.max_message_bytes)
            .field("shutdown_grace_seconds", &self.shutdown_grace_seconds)
            .field("request_timeout_seconds", &self.request_timeout_seconds)
            .field("max_concurrent_calls", &self.max_concurrent_calls)
            .finish()
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: String::new(),
            auth_tokens: Vec::new(),
            auth_for_health_and_reflection: false,
            max_message_bytes: 4 * 1024 * 1024,
            shutdown_grace_seconds: 30,
            request_timeout_seconds: 120,
            max_concurrent_calls: 512,
        }
    }
}

/// `log:`: how logs look.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `plain` for people, `json` for log pipelines.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `etl_service=debug,info`;
    /// `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Plain,
            level: "info".to_string(),
        }
    }
}

/// The log output format.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Plain,
    Json,
}

/// `metrics:`: the Prometheus endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Serve `GET /metrics`.
    pub enabled: bool,
    /// `host:port` of the metrics endpoint. Overridden by `METRICS_LISTEN`.
    /// Empty means the service's default metrics port on 127.0.0.1.
    pub listen: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: String::new(),
        }
    }
}

/// `migrations:`: what `serve` does about pending migrations.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationSettings {
    /// Apply pending migrations at start-up instead of refusing to start.
    pub apply_on_start: bool,
}

/// What differs between the services' defaults.
#[derive(Debug, Clone, Copy)]
pub struct ServiceDefaults {
    /// The binary's name, for messages (`etl-service`).
    pub binary: &'static str,
    /// The database used when no URL is configured.
    pub database_name: &'static str,
    /// The port used when no listen address is configured.
    pub port: u16,
    /// The port of `/metrics` when none is configured.
    pub metrics_port: u16,
    /// `database.statement_timeout_ms` when none is configured (0: no limit).
    pub statement_timeout_ms: u64,
}

/// A service's whole configuration: it exposes the shared sections so the
/// loader can apply overrides and defaults, and validates its own.
pub trait ServiceConfig: DeserializeOwned + Default {
    const DEFAULTS: ServiceDefaults;

    fn database_mut(&mut self) -> &mut DatabaseSettings;
    fn server_mut(&mut self) -> &mut ServerSettings;
    fn database(&self) -> &DatabaseSettings;
    fn server(&self) -> &ServerSettings;
    fn log(&self) -> &LogSettings;
    fn migrations(&self) -> &MigrationSettings;
    fn metrics(&self) -> &MetricsSettings;
    fn metrics_mut(&mut self) -> &mut MetricsSettings;

    /// Checks the service's own sections; the shared ones are checked by
    /// [`load`].
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The accessors [`ServiceConfig`] asks for, for a config whose shared
/// sections are fields named `database`, `server`, `log`, `migrations` and
/// `metrics` (the shape of both services' configs): write
/// `service_kit::shared_sections!();` inside `impl ServiceConfig for ...`.
///
/// A macro rather than one `#[serde(flatten)]` struct of the shared sections:
/// serde does not support `deny_unknown_fields` together with `flatten`, and
/// a misspelt key must stay an error.
#[macro_export]
macro_rules! shared_sections {
    () => {
        fn database_mut(&mut self) -> &mut $crate::config::DatabaseSettings {
            &mut self.database
        }
        fn server_mut(&mut self) -> &mut $crate::config::ServerSettings {
            &mut self.server
        }
        fn metrics_mut(&mut self) -> &mut $crate::config::MetricsSettings {
            &mut self.metrics
        }
        fn database(&self) -> &$crate::config::DatabaseSettings {
            &self.database
        }
        fn server(&self) -> &$crate::config::ServerSettings {
            &self.server
        }
        fn log(&self) -> &$crate::config::LogSettings {
            &self.log
        }
        fn migrations(&self) -> &$crate::config::MigrationSettings {
            &self.migrations
        }
        fn metrics(&self) -> &$crate::config::MetricsSettings {
            &self.metrics
        }
    };
}

/// Where environment overrides come from; the process environment in
/// production, a map in tests.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<S: std::hash::BuildHasher> Environment for std::collections::HashMap<String, String, S> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Reads the config: the YAML file if one is given (it must exist), else the
/// defaults; then `DATABASE_URL`, `GRPC_LISTEN` and `AUTH_TOKENS` from `env`;
/// then fills in the service's defaults and validates everything.
pub fn load<C: ServiceConfig>(path: Option<&Path>, env: &dyn Environment) -> Result<C, KitError> {
    let mut config: C = match path {
        Some(path) => parse_file(path)?,
        None => C::default(),
    };
    if let Some(url) = env.var("DATABASE_URL") {
        config.database_mut().url = url;
    }
    if let Some(listen) = env.var("GRPC_LISTEN") {
        config.server_mut().listen = listen;
    }
    if let Some(tokens) = env.var("AUTH_TOKENS") {
        config.server_mut().auth_tokens = tokens
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
    }
    if let Some(listen) = env.var("METRICS_LISTEN") {
        config.metrics_mut().listen = listen;
    }
    let defaults = C::DEFAULTS;
    if config.metrics_mut().listen.trim().is_empty() {
        config.metrics_mut().listen = format!("127.0.0.1:{}", defaults.metrics_port);
    }
    if config.database_mut().url.trim().is_empty() {
        config.database_mut().url = format!(
            "postgres://postgres@127.0.0.1:5432/{}",
            defaults.database_name
        );
    }
    if config.server_mut().listen.trim().is_empty() {
        config.server_mut().listen = format!("127.0.0.1:{}", defaults.port);
    }
    let database = config.database_mut();
    database.statement_timeout_ms = database
        .statement_timeout_ms
        .or(Some(defaults.statement_timeout_ms));
    validate_database(config.database_mut())?;
    validate_server(config.server_mut())?;
    let metrics = config.metrics_mut();
    metrics.listen = metrics.listen.trim().to_string();
    if !is_host_port(&metrics.listen) {
        return Err(KitError::InvalidConfig(format!(
            "metrics.listen must be host:port, got {:?}",
            metrics.listen
        )));
    }
    config.validate().map_err(KitError::InvalidConfig)?;
    Ok(config)
}

fn parse_file<C: DeserializeOwned + Default>(path: &Path) -> Result<C, KitError> {
    let file_error = |message: String| KitError::ConfigFile {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => file_error("no such file".to_string()),
        _ => file_error(e.to_string()),
    })?;
    // An empty file (or one holding only comments) means "all defaults".
    let is_blank = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
    if is_blank {
        return Ok(C::default());
    }
    serde_yaml::from_str(&text).map_err(|e| file_error(one_line(&e.to_string())))
}

fn validate_database(db: &DatabaseSettings) -> Result<(), KitError> {
    let url = db.url.trim();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(KitError::InvalidConfig(format!(
            "database.url must be a postgres:// URL, got {:?}",
            redact_url(url)
        )));
    }
    let parsed = crate::tls::driver_config(url).map_err(|message| {
        KitError::InvalidConfig(format!("database.url {:?}: {message}", redact_url(url)))
    })?;
    if parsed.get_dbname().is_none() {
        return Err(KitError::InvalidConfig(format!(
            "database.url {:?} names no database (add /<database> after host:port)",
            redact_url(url)
        )));
    }
    if db.pool_size == 0 {
        return Err(KitError::InvalidConfig(
            "database.pool_size must be at least 1".into(),
        ));
    }
    if db.health_check_interval_ms < 100 {
        return Err(KitError::InvalidConfig(
            "database.health_check_interval_ms must be at least 100".into(),
        ));
    }
    Ok(())
}

fn validate_server(server: &mut ServerSettings) -> Result<(), KitError> {
    let listen = server.listen.trim().to_string();
    if !is_host_port(&listen) {
        return Err(KitError::InvalidConfig(format!(
            "server.listen must be host:port, got {listen:?}"
        )));
    }
    server.listen = listen;
    if let Some(bad) = server
        .auth_tokens
        .iter()
        .find(|t| t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        let shown = if bad.is_empty() {
            "an empty token"
        } else {
            "a token with whitespace"
        };
        return Err(KitError::InvalidConfig(format!(
            "server.auth_tokens holds {shown}; tokens must be non-empty and contain no whitespace"
        )));
    }
    if server.max_message_bytes < 1024 {
        return Err(KitError::InvalidConfig(
            "server.max_message_bytes must be at least 1024".into(),
        ));
    }
    Ok(())
}

fn is_host_port(value: &str) -> bool {
    value
        .rsplit_once(':')
        .map(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        .unwrap_or(false)
}

/// A database URL with its password replaced by `***`, for logs and errors:
/// the one in the authority (`user:password@`) and a `password=` query
/// parameter.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    format!("{scheme}://{authority}{}", redact_password_parameter(tail))
}

/// `path?a=1&password=x` with the password's value replaced by `***`.
fn redact_password_parameter(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let query = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{path}?{query}")
}

/// Folds a multi-line message onto one line.
pub fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Write;

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct TestConfig {
        database: DatabaseSettings,
        server: ServerSettings,
        log: LogSettings,
        migrations: MigrationSettings,
        metrics: MetricsSettings,
    }

    impl ServiceConfig for TestConfig {
        const DEFAULTS: ServiceDefaults = ServiceDefaults {
            binary: "test-service",
            database_name: "test_db",
            port: 50999,
            metrics_port: 9999,
            statement_timeout_ms: 0,
        };
        crate::shared_sections!();
    }

    fn write_yaml(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("create temp file");
        f.write_all(text.as_bytes()).expect("write temp file");
        f
    }

    fn no_env() -> HashMap<String, String> {
        HashMap::new()
    }

    #[test]
    fn defaults_without_a_file() {
        let c: TestConfig = load(None, &no_env()).expect("defaults load");
        assert_eq!(c.database.url, "postgres://postgres@127.0.0.1:5432/test_db");
        assert_eq!(c.server.listen, "127.0.0.1:50999");
        assert!(c.server.auth_tokens.is_empty());
        assert_eq!(c.log.format, LogFormat::Plain);
        assert_eq!(c.database.statement_timeout_ms, Some(0));
    }

    #[test]
    fn statement_timeout_is_read_from_the_file() {
        let f = write_yaml("database:\n  statement_timeout_ms: 1500\n");
        let c: TestConfig = load(Some(f.path()), &no_env()).expect("load");
        assert_eq!(c.database.statement_timeout_ms, Some(1500));
    }

    #[test]
    fn environment_overrides_the_file() {
        let f = write_yaml(
            "database:\n  url: postgres://a@h:1/x\nserver:\n  listen: 0.0.0.0:1\n  auth_tokens: [one]\n",
        );
        let env: HashMap<String, String> = [
            ("DATABASE_URL", "postgres://b@h:2/y"),
            ("GRPC_LISTEN", "127.0.0.1:0"),
            ("AUTH_TOKENS", "t1, t2,,"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c: TestConfig = load(Some(f.path()), &env).expect("load");
        assert_eq!(c.database.url, "postgres://b@h:2/y");
        assert_eq!(c.server.listen, "127.0.0.1:0");
        assert_eq!(c.server.auth_tokens, vec!["t1", "t2"]);
    }

    #[test]
    fn missing_file_is_named() {
        let err = load::<TestConfig>(Some(Path::new("/nonexistent/etl.yaml")), &no_env())
            .expect_err("missing file must fail");
        assert_eq!(
            err.to_string(),
            "config file /nonexistent/etl.yaml: no such file"
        );
    }

    #[test]
    fn unknown_key_is_named_on_one_line() {
        let f = write_yaml("database:\n  pool_sise: 3\n");
        let err = load::<TestConfig>(Some(f.path()), &no_env()).expect_err("unknown key must fail");
        let msg = err.to_string();
        assert!(msg.contains("unknown field `pool_sise`"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn bad_yaml_is_reported() {
        let f = write_yaml("database: [unclosed\n");
        let err = load::<TestConfig>(Some(f.path()), &no_env()).expect_err("bad yaml must fail");
        assert!(err.to_string().starts_with("config file "), "{err}");
    }

    #[test]
    fn malformed_database_url_is_rejected_without_password() {
        let env: HashMap<String, String> = [(
            "DATABASE_URL".to_string(),
            "postgres://u:secret@host:notaport/db".to_string(),
        )]
        .into_iter()
        .collect();
        let err = load::<TestConfig>(None, &env).expect_err("bad url must fail");
        let msg = err.to_string();
        assert!(msg.contains("malformed"), "{msg}");
        assert!(!msg.contains("secret"), "{msg}");

        let env: HashMap<String, String> =
            [("DATABASE_URL".to_string(), "mysql://x/y".to_string())]
                .into_iter()
                .collect();
        let err = load::<TestConfig>(None, &env).expect_err("non-postgres url must fail");
        assert!(err.to_string().contains("postgres:// URL"), "{err}");
    }

    #[test]
    fn bad_listen_and_tokens_are_rejected() {
        let env: HashMap<String, String> = [("GRPC_LISTEN".to_string(), "localhost".to_string())]
            .into_iter()
            .collect();
        assert!(load::<TestConfig>(None, &env).is_err());
        let f = write_yaml("server:\n  auth_tokens: ['has space']\n");
        assert!(load::<TestConfig>(Some(f.path()), &no_env()).is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db?sslmode=disable"),
            "postgres://u:***@h:5432/db?sslmode=disable"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("postgres://u@h/db?sslmode=require&password=pw"),
            "postgres://u@h/db?sslmode=require&password=***"
        );
    }

    #[test]
    fn database_settings_debug_hides_the_password() {
        let settings = DatabaseSettings {
            url: "postgres://etl:hunter2@db:5432/etl?sslmode=require".to_string(),
            ..DatabaseSettings::default()
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2"), "password leaked: {shown}");
        assert!(
            shown.contains("postgres://etl:***@db:5432/etl?sslmode=require"),
            "{shown}"
        );
        assert!(shown.contains("pool_size: 10"), "{shown}");
    }

    #[test]
    fn server_settings_debug_hides_the_tokens() {
        let settings = ServerSettings {
            auth_tokens: vec!["s3cret-token".to_string()],
            ..ServerSettings::default()
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret-token"), "token leaked: {shown}");
        assert!(shown.contains("[1 redacted]"), "{shown}");
    }

    #[test]
    fn a_whole_config_debug_hides_the_secrets() {
        let env: HashMap<String, String> = [
            ("DATABASE_URL", "postgres://u:hunter2@h:1/x"),
            ("AUTH_TOKENS", "tok-abc"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c: TestConfig = load(None, &env).expect("load");
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("tok-abc"), "{shown}");
    }
}
