//! migrator-service: the forms migrator for Drishti-style form submissions.

pub mod api;
pub mod app;
pub mod config;
pub mod error;
pub mod metrics;
pub mod migrations;
pub mod poll;
pub mod repository;

pub use app::App;
pub use config::Config;
pub use error::Error;
