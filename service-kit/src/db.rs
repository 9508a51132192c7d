//! PostgreSQL: waiting for it at start-up, the connection pool, and the
//! embedded migrations.

use crate::KitError;
use crate::config::{DatabaseSettings, one_line, redact_url};
use crate::tls::{PgConnect, SslMode, postgres_error_text};
use backon::{ExponentialBuilder, Retryable};
use diesel::migration::MigrationSource;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use std::time::{Duration, Instant};

/// The pool every service uses.
pub type Pool = bb8::Pool<AsyncDieselConnectionManager<AsyncPgConnection>>;
/// A connection borrowed from [`Pool`].
pub type PooledConnection<'a> =
    bb8::PooledConnection<'a, AsyncDieselConnectionManager<AsyncPgConnection>>;

/// A service's embedded migrations, and the schema their history table
/// (`__diesel_schema_migrations`) lives in.
#[derive(Clone, Copy)]
pub struct MigrationSet {
    /// A function, because `EmbeddedMigrations` is a `const` that cannot be
    /// cloned.
    embedded: fn() -> EmbeddedMigrations,
    /// `None`: the connection's default `search_path` (`public`). `Some`:
    /// a schema of the service's own, created if missing, where the
    /// history table is kept and which is the migrations' `search_path`
    /// (so they name every other schema's objects in full).
    history_schema: Option<&'static str>,
}

impl MigrationSet {
    /// Migrations whose history is kept in the default schema.
    pub const fn new(embedded: fn() -> EmbeddedMigrations) -> Self {
        Self {
            embedded,
            history_schema: None,
        }
    }

    /// Migrations whose history is kept in `schema`, the service's own.
    pub const fn in_schema(embedded: fn() -> EmbeddedMigrations, schema: &'static str) -> Self {
        Self {
            embedded,
            history_schema: Some(schema),
        }
    }

    fn embedded(&self) -> EmbeddedMigrations {
        (self.embedded)()
    }
}

/// A short description of where a URL points (`user@host:port/db`), safe to log.
pub fn describe(url: &str) -> String {
    match crate::tls::driver_config(url) {
        Ok(config) => describe_config(&config),
        Err(_) => redact_url(url),
    }
}

fn describe_config(c: &tokio_postgres::Config) -> String {
    let host = c
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{}:{}/{}",
        c.get_user().unwrap_or("?"),
        host,
        port,
        c.get_dbname().unwrap_or("?")
    )
}

/// Opens one plain connection (no pool), for probes and maintenance.
pub async fn connect_raw(url: &str, timeout: Duration) -> Result<tokio_postgres::Client, String> {
    let connect = PgConnect::from_url(url, timeout).map_err(|e| e.to_string())?;
    connect.client().await.map_err(|e| e.to_string())
}

enum Probe {
    Up,
    MissingDatabase,
    /// Trying again will not help (a refused certificate).
    Refused(String),
    Down(String),
}

async fn probe(connect: &PgConnect) -> Probe {
    match connect.connect().await {
        Ok((_client, connection)) => {
            drop(connection);
            Probe::Up
        }
        Err(e) if e.is_missing_database() => Probe::MissingDatabase,
        Err(e) if e.is_certificate_refused() => Probe::Refused(format!(
            "{e} (sslmode={}; name the CA with sslrootcert=<path> in database.url)",
            ssl_mode_name(connect.ssl_mode())
        )),
        Err(e) => Probe::Down(e.to_string()),
    }
}

fn ssl_mode_name(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
}

/// Waits until PostgreSQL accepts a connection to the configured database,
/// retrying with exponential backoff (and saying so in the log) for at most
/// `startup_wait_seconds`. Creates the database first if it does not exist and
/// `create_if_missing` is set.
pub async fn wait_for_database(settings: &DatabaseSettings) -> Result<(), KitError> {
    let url = settings.url.as_str();
    let target = describe(url);
    let timeout = Duration::from_secs(settings.connect_timeout_seconds.max(1));
    let connect = PgConnect::from_url(url, timeout)?;
    let started = Instant::now();
    let max_wait = Duration::from_secs(settings.startup_wait_seconds);
    let mut attempt = 0u32;

    let attempt_once = || {
        attempt += 1;
        let target = target.clone();
        let connect = &connect;
        async move {
            match probe(connect).await {
                Probe::Up => Ok(()),
                Probe::MissingDatabase if settings.create_if_missing => {
                    create_database(connect).await?;
                    Ok(())
                }
                Probe::Refused(message) => Err(KitError::Database { target, message }),
                Probe::MissingDatabase => Err(KitError::Database {
                    target,
                    message: "the database does not exist (create it, or set database.create_if_missing: true)".into(),
                }),
                Probe::Down(message) => Err(KitError::DatabaseUnreachable {
                    target,
                    waited_seconds: 0,
                    message,
                }),
            }
        }
    };

    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .with_total_delay(Some(max_wait))
        .without_max_times();
    let result = attempt_once
        .retry(backoff)
        .when(|e| matches!(e, KitError::DatabaseUnreachable { .. }))
        .notify(|e, delay| {
            tracing::warn!(
                database = %target,
                error = %e,
                retry_in_ms = delay.as_millis() as u64,
                "waiting for PostgreSQL"
            );
        })
        .await;
    match result {
        Ok(()) => {
            tracing::info!(database = %target, waited_ms = started.elapsed().as_millis() as u64, "PostgreSQL is reachable");
            Ok(())
        }
        Err(KitError::DatabaseUnreachable {
            target, message, ..
        }) => Err(KitError::DatabaseUnreachable {
            target,
            waited_seconds: started.elapsed().as_secs(),
            message,
        }),
        Err(e) => Err(e),
    }
}

async fn create_database(connect: &PgConnect) -> Result<(), KitError> {
    let target = describe_config(connect.config());
    let name = connect
        .config()
        .get_dbname()
        .unwrap_or_default()
        .to_string();
    let client = connect
        .with_dbname("postgres")
        .client()
        .await
        .map_err(|e| KitError::DatabaseUnreachable {
            target: target.clone(),
            waited_seconds: 0,
            message: e.to_string(),
        })?;
    let sql = format!("CREATE DATABASE {}", crate::sql::quote_ident(&name));
    match client.batch_execute(&sql).await {
        Ok(()) => {
            tracing::warn!(database = %name, "the database did not exist; created it");
            Ok(())
        }
        // Another replica created it first.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => Ok(()),
        Err(e) => Err(KitError::Database {
            target,
            message: format!("cannot create database {name}: {}", postgres_error_text(&e)),
        }),
    }
}

/// Builds the pool without connecting (connections open on first use), so a
/// service starts and reports NOT_SERVING rather than dying when PostgreSQL
/// blinks.
///
/// With `statement_timeout_ms` set, every pooled connection gets that
/// `statement_timeout` when it opens. Connections that wait on purpose (the
/// ETL's entity lock, LISTEN, migrations) are opened outside the pool and
/// keep no limit.
pub fn build_pool(settings: &DatabaseSettings) -> Pool {
    let timeout = Duration::from_secs(settings.connect_timeout_seconds.max(1));
    let connect = PgConnect::from_url(&settings.url, timeout).map_err(|e| e.to_string());
    let statement_timeout_ms = settings.statement_timeout_ms.filter(|ms| *ms > 0);
    let mut config = ManagerConfig::<AsyncPgConnection>::default();
    config.custom_setup = Box::new(move |_url: &str| {
        let connect = connect.clone();
        Box::pin(async move {
            use diesel_async::SimpleAsyncConnection;
            let connect = connect.map_err(diesel::ConnectionError::InvalidConnectionUrl)?;
            let mut conn = connect.diesel().await?;
            if let Some(timeout_ms) = statement_timeout_ms {
                conn.batch_execute(&format!("SET statement_timeout = {timeout_ms}"))
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            }
            Ok(conn)
        })
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
        settings.url.clone(),
        config,
    );
    bb8::Pool::builder()
        .max_size(settings.pool_size)
        .connection_timeout(timeout)
        .build_unchecked(manager)
}

/// Names of the embedded migrations not yet applied to the database.
pub async fn pending_migrations(
    url: &str,
    migrations: MigrationSet,
) -> Result<Vec<String>, KitError> {
    with_migration_connection(url, move |conn| {
        if !enter_history_schema(conn, migrations, false)? {
            // The service's schema does not exist yet: nothing was applied
            // (and a check creates nothing).
            let all = MigrationSource::<diesel::pg::Pg>::migrations(&migrations.embedded())
                .map_err(|e| KitError::Migration(one_line(&e.to_string())))?;
            return Ok(all.iter().map(|m| m.name().to_string()).collect());
        }
        let pending = conn
            .pending_migrations(migrations.embedded())
            .map_err(|e| KitError::Migration(one_line(&e.to_string())))?;
        Ok(pending.iter().map(|m| m.name().to_string()).collect())
    })
    .await
}

/// Applies every pending embedded migration, each in its own transaction, and
/// returns the names applied (empty when there was nothing to do). An
/// advisory lock keeps two replicas from migrating at once.
pub async fn run_pending_migrations(
    url: &str,
    migrations: MigrationSet,
) -> Result<Vec<String>, KitError> {
    with_migration_connection(url, move |conn| {
        use diesel::connection::SimpleConnection;
        conn.batch_execute("SELECT pg_advisory_lock(7283940012)")
            .map_err(|e| KitError::Migration(e.to_string()))?;
        let result =
            enter_history_schema(conn, migrations, true).and_then(|_| apply_all(conn, migrations));
        let _ = conn.batch_execute("SELECT pg_advisory_unlock(7283940012)");
        let names = result?;
        Ok(names)
    })
    .await
}

fn apply_all(
    conn: &mut AsyncConnectionWrapper<AsyncPgConnection>,
    migrations: MigrationSet,
) -> Result<Vec<String>, KitError> {
    let pending: Vec<String> = conn
        .pending_migrations(migrations.embedded())
        .map_err(|e| KitError::Migration(one_line(&e.to_string())))?
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    conn.run_pending_migrations(migrations.embedded())
        .map_err(|e| KitError::Migration(one_line(&e.to_string())))?;
    Ok(pending)
}

/// Points the migration connection at the set's history schema (creating
/// it first when `create`); returns false if it does not exist. A set with
/// no schema of its own keeps the default `search_path`.
fn enter_history_schema(
    conn: &mut AsyncConnectionWrapper<AsyncPgConnection>,
    migrations: MigrationSet,
    create: bool,
) -> Result<bool, KitError> {
    use diesel::RunQueryDsl;
    use diesel::connection::SimpleConnection;
    let Some(schema) = migrations.history_schema else {
        return Ok(true);
    };
    let fail = |e: diesel::result::Error| {
        KitError::Migration(format!("schema {schema}: {}", one_line(&e.to_string())))
    };
    let q = crate::sql::quote_ident(schema);
    // Looked up first: CREATE SCHEMA IF NOT EXISTS needs CREATE on the
    // database even when the schema is there (a DBA may have made it).
    let exists = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
        "EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = {})",
        crate::sql::quote_literal(schema)
    )))
    .get_result::<bool>(conn)
    .map_err(fail)?;
    if !exists {
        if !create {
            return Ok(false);
        }
        conn.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {q}"))
            .map_err(fail)?;
    }
    conn.batch_execute(&format!("SET search_path TO {q}"))
        .map_err(fail)?;
    Ok(true)
}

/// How long opening the migrations' connection may take.
const MIGRATION_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs sync diesel migration code on a blocking thread over an async
/// connection (safe on any tokio runtime flavour).
async fn with_migration_connection<T, F>(url: &str, f: F) -> Result<T, KitError>
where
    T: Send + 'static,
    F: FnOnce(&mut AsyncConnectionWrapper<AsyncPgConnection>) -> Result<T, KitError>
        + Send
        + 'static,
{
    let connect = PgConnect::from_url(url, MIGRATION_CONNECT_TIMEOUT)?;
    let conn = connect.diesel().await.map_err(|e| KitError::Database {
        target: describe(url),
        message: one_line(&e.to_string()),
    })?;
    tokio::task::spawn_blocking(move || {
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::from(conn);
        f(&mut conn)
    })
    .await
    .map_err(|e| KitError::Migration(format!("migration task failed: {e}")))?
}
