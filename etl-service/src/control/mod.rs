//! The control plane: what the RPCs and the scheduler decide, over the
//! engine. [`service`] is what each control RPC does ([`Control`]);
//! [`jobs`] is the scheduler's state in PostgreSQL (jobs, runs, events);
//! [`scheduler`] queues, claims and leases runs on every replica;
//! [`executor`] turns a claimed run into an engine run; [`progress`] writes
//! a run's progress to its history; [`run_once`] is the command-line run.
//! Calls go down into [`crate::engine`], never up into [`crate::api`].

pub mod executor;
pub mod jobs;
pub mod progress;
pub mod run_once;
pub mod scheduler;
pub mod service;

pub use service::{Control, JobBatch};
