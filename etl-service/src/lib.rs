//! etl-service: the analytics ETL for Avni-style data.
//!
//! For each organisation (or organisation group) with analytics enabled, it
//! keeps one reporting schema of flat tables in step with the Avni source
//! tables. `app` wires the gRPC server; the domain lives in modules that know
//! nothing of gRPC.

pub mod app;
pub mod config;
pub mod control;
pub mod ddl;
pub mod engine;
pub mod entity;
pub mod error;
pub mod executor;
pub mod grpc;
pub mod jobs;
pub mod layout;
pub mod lock;
pub mod metadata;
pub mod migrations;
pub mod name_check;
pub mod naming;
pub mod plan;
pub mod progress;
pub mod roles;
pub mod run_once;
pub mod scheduler;
pub mod schema_diff;
pub mod source;
pub mod sql_text;
pub mod sync;
pub mod teardown;

pub use app::App;
pub use config::Config;
pub use error::Error;
