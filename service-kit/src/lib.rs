//! The plumbing both services share, so each service crate holds only its own
//! domain. Nothing here knows about the ETL or the migrator.
//!
//! - Starting: [`cli`] (what `main` does around a service's own commands),
//!   [`app`] (the [`App`] both services are, over their [`Service`]), [`base`]
//!   (PostgreSQL reached, migrations settled, listener bound, health,
//!   reflection, auth), [`config`] (typed YAML with environment overrides),
//!   [`telemetry`] (logging), [`shutdown`] (signals).
//! - Serving: [`server`] (routes, graceful shutdown), [`limits`] (a
//!   deadline and a concurrency cap on every product call), [`auth`] (the
//!   bearer-token check), [`health`] (health following PostgreSQL),
//!   [`metrics`] (`/metrics` and pool gauges), [`request`] (paging and text
//!   checks both APIs use).
//! - PostgreSQL: [`db`] (pool, migrations, waiting for the server), [`tls`]
//!   (every connection, with TLS as the URL's `sslmode` says), [`sql`]
//!   (identifier quoting: the one function), [`prepared`] (constant queries
//!   kept prepared), [`fresh_reads`] (callers of the same read share one).
//! - [`error`]: the crate's one error type, [`KitError`].

pub mod app;
pub mod auth;
pub mod base;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod fresh_reads;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod prepared;
pub mod request;
pub mod server;
pub mod shutdown;
pub mod sql;
pub mod telemetry;
pub mod tls;

pub use app::{App, Service};
pub use base::ServiceBase;
pub use error::KitError;
