//! etl-service: the analytics ETL for Avni-style data.
//!
//! For each organisation (or organisation group) with analytics enabled, it
//! keeps one reporting schema of flat tables in step with the Avni source
//! tables. `app` wires the gRPC server; the domain lives in modules that know
//! nothing of gRPC.

pub mod app;
pub mod config;
pub mod control;
pub mod entity;
pub mod error;
pub mod grpc;
pub mod jobs;
pub mod layout;
pub mod migrations;
pub mod naming;
pub mod plan;
pub mod progress;
pub mod scheduler;
pub mod source;
pub mod sql_text;

pub use app::App;
pub use config::Config;
pub use error::Error;
