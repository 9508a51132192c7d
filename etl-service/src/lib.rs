//! etl-service: the analytics ETL for Avni-style data.
//!
//! For each organisation (or organisation group) with analytics enabled it
//! keeps one reporting schema of flat tables in step with the Avni source
//! tables, on a schedule and on request.
//!
//! ```text
//! api/        gRPC edge: request parsing, thin handlers, errors to status codes
//!   │
//! control/    the control plane: what each RPC does (service), the job tables
//!   │         (jobs/), the scheduler, its executor, progress, run-once
//!   │
//! engine/     one run of an entity, knowing nothing of gRPC or the scheduler:
//!             run (lock, plan, DDL, sync, report), entity, lock, stop,
//!             source/ (the Avni source), schema/ (plan, names, layout, diff,
//!             DDL, views, roles, metadata), sync/ (each table's upsert)
//!
//! reports/    reads of a built reporting schema (user-activity summaries),
//!             for the read RPCs; beside control, over the engine's tables
//! ```
//!
//! Calls go down only: `api` → `control` → `engine`. Beside them: [`app`]
//! wires the server (the shared [`service_kit::App`] over [`app::Etl`]),
//! [`config`] is the YAML config, [`error`] the crate's one error type,
//! [`metrics`] what Prometheus sees, [`migrations`] the ETL's own tables.
//! ARCHITECTURE.md at the repository root follows one run through the files.

pub mod api;
pub mod app;
pub mod config;
pub mod control;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod migrations;
pub mod reports;

pub use app::App;
pub use config::Config;
pub use error::Error;
