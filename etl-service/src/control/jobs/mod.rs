//! The scheduler's state in PostgreSQL: jobs (one per enabled entity), runs
//! (the history, and the queue: a run is `queued`, then `running` under a
//! replica's lease, then finished), and runs' progress events.
//!
//! Everything here is plain SQL over the pool, so several replicas share it
//! safely: claims use `FOR UPDATE SKIP LOCKED`, and a partial unique index
//! allows at most one queued or running run per entity.
//!
//! [`rows`] holds the rows and their vocabularies; [`enabled`] the jobs;
//! [`queue`] the queue and leases; [`history`] each run's progress and
//! outcome; [`events`] its event stream. Everything is re-exported here.

/// Channel replicas LISTEN on; a NOTIFY wakes their scheduler at once.
pub const WAKEUP_CHANNEL: &str = "etl_scheduler_wakeup";

/// The columns of [`RunRow`], as a literal for `concat!` (the polled reads
/// are [`prepared`]: their text must be constant).
macro_rules! run_columns {
    () => {
        "id, entity_uuid, entity_type, trigger, status, queued_at, started_at, \
         finished_at, worker, error, error_detail, tables_total, tables_done, current_table, \
         rows_upserted, rows_deleted, table_results"
    };
}

/// The columns of [`JobRow`], as a literal for `concat!`.
macro_rules! job_columns {
    () => {
        "id, entity_uuid, entity_type, interval_seconds, next_run_at, enabled_at"
    };
}

const RUN_COLUMNS: &str = run_columns!();

const JOB_COLUMNS: &str = job_columns!();

mod enabled;
mod events;
mod history;
mod queue;
mod rows;

pub use enabled::*;
pub use events::*;
pub use history::*;
pub use queue::*;
pub use rows::*;
