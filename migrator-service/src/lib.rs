//! migrator-service: the forms migrator for Drishti-style form submissions.
//!
//! It polls each configured upstream's `/all-form-submissions` endpoint and
//! writes every submission into its form's table in the repository database,
//! with a `migration_audit` watermark per batch and an `error_audit` row per
//! failure.
//!
//! ```text
//! api/         gRPC edge: request parsing, thin handlers, errors to status codes
//!   │
//! poll/        the batch job: upstream (HTTP client), submission (decoding a
//!   │          page), batch (one page in one transaction), poller (each
//!   │          source's drain, wait and back-off, and its live state)
//!   │
//! repository/  the repository database: catalog (form tables and columns),
//!              convert (a field's text to its column's type), form_writer
//!              (rows, many at a time), audits (reading audits and errors)
//! ```
//!
//! Calls go down only: `api` → `poll` → `repository` (the api also reads
//! `repository::audits` directly). Beside them: [`app`] wires the server
//! (the shared [`service_kit::App`] over [`app::FormsMigrator`]), [`config`]
//! is the YAML config, [`error`] the crate's one error type, [`metrics`] what
//! Prometheus sees, [`migrations`] the repository's tables.
//! ARCHITECTURE.md at the repository root follows one batch through the files.

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
