//! Failures a test asks a run for, to see what a crash in the middle of a
//! run leaves behind (integration-tests' `etl_engine_crash`).
//!
//! The request is a task-local scope around the run, not a run option: a
//! run's sync happens on the task that awaits [`crate::engine::run_entity`]
//! (nothing in it is spawned), so the scope reaches it, and production types
//! carry nothing for tests. The way in ([`fail_after_tables`]) exists only
//! with the cargo feature `fault-injection`, which only integration-tests
//! enables; without it the hooks the run calls are constants, and the checks
//! compile to nothing.

#[cfg(feature = "fault-injection")]
use crate::error::Error;
#[cfg(feature = "fault-injection")]
use std::future::Future;

#[cfg(feature = "fault-injection")]
tokio::task_local! {
    /// The index in the run of the table whose sync fails.
    static FAIL_AT_TABLE: usize;
}

/// Runs `run` (a call of [`crate::engine::run_entity`]) so that after
/// `tables` tables have been synced and committed, the next table's sync
/// fails after writing its rows and before its commit, as a crash in the
/// middle of a run would.
#[cfg(feature = "fault-injection")]
pub async fn fail_after_tables<F: Future>(tables: usize, run: F) -> F::Output {
    FAIL_AT_TABLE.scope(tables, run).await
}

/// Whether a test asked the run's table at `index` to fail.
#[cfg(feature = "fault-injection")]
pub(crate) fn fails_at(index: usize) -> bool {
    FAIL_AT_TABLE.try_with(|&at| at == index).unwrap_or(false)
}

/// Whether a test asked the run's table at `index` to fail: never without
/// the `fault-injection` feature.
#[cfg(not(feature = "fault-injection"))]
pub(crate) const fn fails_at(_index: usize) -> bool {
    false
}

/// The failure of a table whose sync a test asked to fail ([`fails_at`]),
/// after its rows are written and before its commit.
#[cfg(feature = "fault-injection")]
pub(crate) fn before_commit(table: &str) -> Result<(), Error> {
    Err(Error::InjectedFailure(format!(
        "failure injected while syncing table {table}"
    )))
}

/// Without the `fault-injection` feature no table is asked to fail.
#[cfg(not(feature = "fault-injection"))]
pub(crate) const fn before_commit(_table: &str) -> Result<(), crate::error::Error> {
    Ok(())
}
