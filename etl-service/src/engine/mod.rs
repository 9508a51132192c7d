//! The engine: one run of an organisation or group, end to end, knowing
//! nothing of gRPC or of the scheduler.
//!
//! - [`run`]: the run itself ([`run_entity`]): lock, plan, DDL, sync, report;
//! - [`entity`]: organisations and groups; [`lock`]: the entity's advisory
//!   lock; [`stop`]: stopping a run in the middle;
//! - [`source`]: reading the Avni source (the entity and its metadata);
//! - [`schema`]: deciding and applying the reporting schema (plan, names,
//!   layout, diff, DDL, views, roles, metadata);
//! - [`sync`]: filling each table from the source, incrementally;
//!   `tables`: which of a run's tables changed, synced on several
//!   connections at once;
//! - [`faults`]: failures tests ask a run for (feature `fault-injection`).
//!
//! Calls go `run` → `source`, `schema`, `sync`; `schema` and `sync` read
//! the plan, neither calls the other.

pub mod entity;
pub mod faults;
pub mod lock;
pub mod run;
pub mod schema;
pub mod source;
pub mod stop;
pub mod sync;
mod tables;

pub use run::{
    DroppedSchema, EngineContext, LockMode, NoProgress, ProgressEvent, ProgressSink, RunOptions,
    RunReport, TableReport, drop_schema, drop_schema_within, plan_entity, run_entity,
};
