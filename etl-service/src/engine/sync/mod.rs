//! Syncing one reporting table for one source organisation (design/etl.md
//! §5.3): the rows changed in the window (last_sync_time, boundary] are
//! upserted inside PostgreSQL with one `INSERT ... SELECT ... ON CONFLICT`,
//! rows that stopped being cancelled or exited are deleted, and the table's
//! watermark advances, all in one transaction. The cost grows with the
//! number of changed rows: every statement is bounded by the window on
//! `last_modified_date_time`, which avni-server indexes on every source
//! table (`engine::source::indexes` warns when such an index is missing).
//!
//! - `table`: a table's transaction, its pipelined statements and the
//!   retry with tolerant casts;
//! - `statements`: the upsert and deletes it sends;
//! - `source_rows`: which source rows drive a table, and the window's
//!   filter on them (`avni_sources` for the users, sync telemetry and
//!   membership tables);
//! - `watermarks`: how far each table is synced, and when its source last
//!   changed;
//! - [`extract`]: a question's value from a row's observations;
//!   [`sql_text`]: statements with bound values.

mod avni_sources;
pub mod extract;
mod source_rows;
pub mod sql_text;
mod statements;
mod table;
mod watermarks;

use crate::engine::schema::plan::PlannedTable;

pub use source_rows::{
    SOURCE_TABLES, source_organisations, source_table, table_type_uuid, type_column,
};
pub use statements::{delete_statements, upsert_statement};
pub use table::sync_table;
pub use watermarks::{epoch, latest_changes, watermarks};

/// Where and for whom a table is synced.
#[derive(Debug, Clone)]
pub struct SyncTarget<'a> {
    pub schema: &'a str,
    pub table: &'a PlannedTable,
    pub table_id: i32,
    pub organisation_id: i32,
    /// The organisations whose source rows the table reads for
    /// `organisation_id` ([`source_organisations`]).
    pub source_organisations: &'a [i32],
    /// The source organisation's role: the watermark's owner.
    pub db_user: &'a str,
    /// Time zone DateTime questions are shown in.
    pub time_zone: &'a str,
}

/// Rows one sync changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounts {
    pub upserted: u64,
    pub deleted: u64,
}

impl std::ops::AddAssign for SyncCounts {
    fn add_assign(&mut self, other: Self) {
        self.upserted += other.upserted;
        self.deleted += other.deleted;
    }
}
