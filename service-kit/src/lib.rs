//! The plumbing both services share, so each service crate holds only its own
//! domain: typed YAML config with environment overrides, the PostgreSQL pool
//! and embedded migrations, the health monitor that follows PostgreSQL, the
//! bearer-token check, logging, and serving with graceful shutdown.
//!
//! Nothing here knows about the ETL or the migrator.

pub mod app;
pub mod auth;
pub mod base;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod fresh_reads;
pub mod health;
pub mod metrics;
pub mod prepared;
pub mod request;
pub mod server;
pub mod shutdown;
pub mod sql;
pub mod telemetry;

pub use app::{App, Service};
pub use base::ServiceBase;
pub use error::KitError;
