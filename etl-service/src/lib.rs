//! etl-service: the analytics ETL for Avni-style data.

pub mod api;
pub mod app;
pub mod config;
pub mod control;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod migrations;

pub use app::App;
pub use config::Config;
pub use error::Error;
