//! migrator-service: the forms migrator for Drishti-style form submissions.
//!
//! It polls each configured upstream's `/all-form-submissions` endpoint and
//! writes every submission into its form's table in the repository database,
//! with a `migration_audit` watermark per batch and an `error_audit` row per
//! failure. `app` wires the gRPC server; the domain lives in modules that
//! know nothing of gRPC:
//!
//! - `upstream`: the HTTP client (timeouts, retries, Retry-After, TLS);
//! - `submission`: decoding a page, its elements and their `formInstance`,
//!   with the quirks of real data;
//! - `catalog`: form tables, columns, types and sub-form tables read from
//!   the repository, and the naming convention with its optional mapping;
//! - `convert`: a field's text to its column's type, or a reason it does
//!   not fit;
//! - `form_writer`: a submission's rows, written many at a time;
//! - `batch`: one page in one transaction with its audits and watermark,
//!   and reprocessing failed submissions;
//! - `poller`: each source's job (drain, wait, back off) and its live state;
//! - `audits`: reading audits, errors and totals back.

pub mod app;
pub mod audits;
pub mod batch;
pub mod catalog;
pub mod config;
pub mod convert;
pub mod error;
pub mod form_writer;
pub mod grpc;
pub mod metrics;
pub mod migrations;
pub mod poller;
pub mod request;
pub mod submission;
pub mod upstream;

pub use app::App;
pub use config::Config;
pub use error::Error;
