//! migrator-service: the forms migrator for Drishti-style form submissions.
//!
//! It polls each configured upstream's `/all-form-submissions` endpoint and
//! writes every submission into its form's table in the repository database,
//! with a `migration_audit` watermark per batch and an `error_audit` row per
//! failure. `app` wires the gRPC server; the domain lives in modules that
//! know nothing of gRPC.

pub mod app;
pub mod audits;
pub mod batch;
pub mod catalog;
pub mod config;
pub mod convert;
pub mod error;
pub mod form_writer;
pub mod grpc;
pub mod migrations;
pub mod poller;
pub mod submission;
pub mod upstream;

pub use app::App;
pub use config::Config;
pub use error::Error;
