//! etl-service: the analytics ETL for Avni-style data.
//!
//! For each organisation (or organisation group) with analytics enabled, it
//! keeps one reporting schema of flat tables in step with the Avni source
//! tables. `app` wires the gRPC server; the domain lives in modules that know
//! nothing of gRPC.
//!
//! A run ([`engine::run_entity`]) goes: [`source`] reads the organisation and
//! its metadata; [`lock`] takes the entity's advisory lock; [`plan`] (with
//! [`naming`] and [`layout`]) decides the schema; [`metadata`] reads what
//! exists and [`schema_diff`] compares the two; [`ddl`] applies the DDL and
//! metadata in one transaction, with [`roles`] granting access and [`views`]
//! rebuilding the reporting views; [`sync`]
//! upserts each table's changed rows with its watermark. [`name_check`] is
//! what ValidateNames reports; [`run_once`] is the command-line run.

pub mod app;
pub mod config;
pub mod control;
pub mod ddl;
pub mod engine;
pub mod entity;
pub mod error;
pub mod executor;
pub mod extract;
pub mod grpc;
pub mod jobs;
pub mod layout;
pub mod lock;
pub mod metadata;
pub mod metrics;
pub mod migrations;
pub mod name_check;
pub mod naming;
pub mod plan;
pub mod progress;
pub mod request;
pub mod roles;
pub mod run_once;
pub mod scheduler;
pub mod schema_diff;
pub mod source;
pub mod sql_text;
pub mod stop;
pub mod sync;
pub mod views;

pub use app::App;
pub use config::Config;
pub use error::Error;
