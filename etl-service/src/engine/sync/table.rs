//! One table's sync for one organisation: a transaction that reads the
//! watermark, sends the window's statements as one pipeline and advances the
//! watermark, redone with tolerant casts when an answer cannot be read.

use crate::engine::faults;
use crate::engine::sync::extract::Casting;
use crate::engine::sync::statements::{delete_statements, upsert_statement};
use crate::engine::sync::watermarks::{epoch, mark_statement};
use crate::engine::sync::{SyncCounts, SyncTarget};
use crate::error::Error;
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{Integer, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use service_kit::sql::quote_qualified;

/// A statement ready to send, its values bound.
type Query = BoxedSqlQuery<'static, Pg, SqlQuery>;

#[derive(QueryableByName)]
struct Watermark {
    #[diesel(sql_type = Timestamptz)]
    last_sync_time: DateTime<Utc>,
}

/// Syncs the rows of `target` changed up to `boundary`. With `fail` set
/// (a test's request through [`faults`], never without the
/// `fault-injection` feature), fails after the rows are written and before
/// the commit, as a crash would.
///
/// The table is first synced with [`Casting::Direct`]; if an answer cannot
/// be read as its column's type, that transaction is rolled back (nothing of
/// it stays) and the table synced again with [`Casting::Tolerant`], which
/// makes such answers NULL. A savepoint around the first upsert would do the
/// same at the cost of two more round trips for every table, in every run.
pub async fn sync_table(
    conn: &mut AsyncPgConnection,
    target: &SyncTarget<'_>,
    boundary: DateTime<Utc>,
    fail: bool,
) -> Result<SyncCounts, Error> {
    let mut unreadable = None;
    let direct = sync_attempt(
        conn,
        target,
        boundary,
        fail,
        Casting::Direct,
        &mut unreadable,
    )
    .await;
    match (direct, unreadable) {
        // The upsert failed: if an answer could not be read as its column's
        // type, the tolerant casts get past it. Only when they do was that
        // the cause; a failure of another kind (a missing key, a trigger,
        // a lost connection) fails again and is reported from there, with
        // no word of answers.
        (Err(_), Some(reason)) => {
            let tolerant =
                sync_attempt(conn, target, boundary, fail, Casting::Tolerant, &mut None).await;
            if tolerant.is_ok() {
                tracing::info!(
                    table = %target.table.name,
                    reason = %reason,
                    "an answer could not be read as its column's type; synced with tolerant casts \
                     (such answers are NULL)"
                );
            }
            tolerant
        }
        (result, _) => result,
    }
}

/// One transaction syncing `target`; sets `unreadable` (and fails) when the
/// upsert itself fails in PostgreSQL.
///
/// Statements that do not wait for one another's results are pipelined
/// (sent together on the connection, executed one after another by
/// PostgreSQL in the order sent): the settings with the watermark's read,
/// then the upsert, the deletes and the new watermark. A table costs six
/// round trips to PostgreSQL (begin, two for the reads, two for the writes,
/// commit) however many statements it takes; one at a time, each statement
/// took two (prepare, execute), thirteen for a table with a delete, and a
/// run with few changes spent much of its time waiting for round trips.
async fn sync_attempt(
    conn: &mut AsyncPgConnection,
    target: &SyncTarget<'_>,
    boundary: DateTime<Utc>,
    fail: bool,
    casting: Casting,
    unreadable: &mut Option<String>,
) -> Result<SyncCounts, Error> {
    conn.transaction::<_, Error, _>(async |conn| {
        let from = settings_and_watermark(conn, target).await?;
        let mut statements = window_statements(conn, target, from, boundary, casting).await?;
        let writes = statements.len();
        // With `fail` the watermark is not written: the failure comes after
        // the rows and before the commit.
        if !fail {
            statements.push(mark_statement(target, from.max(boundary)).into_query());
        }
        let results = execute_pipelined(conn, statements).await;
        let counts = count_rows(results, writes, casting, unreadable)?;
        if fail {
            faults::before_commit(&target.table.name)?;
        }
        Ok(counts)
    })
    .await
}

/// Sets the transaction's settings and reads (and locks) the table's
/// watermark, in one pipeline; the start of the window.
async fn settings_and_watermark(
    conn: &mut AsyncPgConnection,
    target: &SyncTarget<'_>,
) -> Result<DateTime<Utc>, Error> {
    // The statements carry one expression per question (dozens), so
    // the planner's cost estimates pass PostgreSQL's JIT thresholds,
    // and compiling them took seconds per table: longer than syncing
    // a whole table, and paid again for every small incremental window.
    //
    // A statement's text is the same for a table on every run while
    // its window differs from everything to a few rows: after five
    // runs PostgreSQL would settle on one generic plan for all of
    // them, and with it parse the bound answer maps once per row
    // instead of once per statement. Plans are made for each window.
    //
    // A table's rows and watermark commit together, so a commit lost in
    // a crash leaves the table at its old watermark, synced again by the
    // next run: waiting for the flush to disk buys nothing.
    //
    // (`set_config(.., true)` is `SET LOCAL`: for this transaction.)
    let settings = diesel::sql_query(
        "SELECT set_config('jit', 'off', true), \
                set_config('plan_cache_mode', 'force_custom_plan', true), \
                set_config('synchronous_commit', 'off', true)",
    );
    let watermark = diesel::sql_query(
        "SELECT least(w.last_sync_time, s.last_sync_time) AS last_sync_time \
         FROM etl_service.watermark w \
         LEFT JOIN public.entity_sync_status s ON s.id = w.entity_sync_status_id \
         WHERE w.table_metadata_id = $1 AND w.organisation_id = $2 FOR UPDATE OF w",
    )
    .bind::<Integer, _>(target.table_id)
    .bind::<Integer, _>(target.organisation_id);
    let shared: &AsyncPgConnection = conn;
    let (mut first, mut second) = (shared, shared);
    let (set, marks) = futures::join!(
        settings.execute(&mut first),
        watermark.load::<Watermark>(&mut second)
    );
    set?;
    Ok(marks?
        .into_iter()
        .next()
        .map(|w| w.last_sync_time)
        .unwrap_or_else(epoch))
}

/// The writes of the window (`from`, `boundary`]: the upsert, then the
/// deletes; none when the window is empty.
async fn window_statements(
    conn: &mut AsyncPgConnection,
    target: &SyncTarget<'_>,
    from: DateTime<Utc>,
    boundary: DateTime<Utc>,
    casting: Casting,
) -> Result<Vec<Query>, Error> {
    let mut statements = Vec::new();
    if from < boundary {
        let was_empty = from <= epoch() && is_empty(conn, target).await?;
        statements.push(upsert_statement(target, from, boundary, casting).into_query());
        // Rows that stopped belonging can only be among rows that were
        // there before: a table filled from empty (a first load) skips
        // the deletes, which cost as much as the load's scan.
        if !was_empty {
            statements.extend(
                delete_statements(target, from, boundary)
                    .into_iter()
                    .map(|d| d.into_query()),
            );
        }
    }
    Ok(statements)
}

/// Sends `statements` as one pipeline; their results in the order sent.
async fn execute_pipelined(
    conn: &AsyncPgConnection,
    statements: Vec<Query>,
) -> Vec<diesel::QueryResult<usize>> {
    futures::future::join_all(statements.into_iter().map(|statement| {
        let mut c = conn;
        async move { statement.execute(&mut c).await }
    }))
    .await
}

/// The rows upserted and deleted, from the pipeline's results: the first
/// `writes` are the upsert's and the deletes', the watermark's comes last.
/// Sets `unreadable` when the upsert with [`Casting::Direct`] failed in
/// PostgreSQL.
fn count_rows(
    results: Vec<diesel::QueryResult<usize>>,
    writes: usize,
    casting: Casting,
    unreadable: &mut Option<String>,
) -> Result<SyncCounts, Error> {
    let mut counts = SyncCounts::default();
    // The first failure is the one to report: after it, PostgreSQL
    // refuses the rest of the transaction's statements.
    for (i, result) in results.into_iter().enumerate() {
        let n = match result {
            Ok(n) => n as u64,
            Err(diesel::result::Error::DatabaseError(kind, info))
                if i == 0 && writes > 0 && casting == Casting::Direct =>
            {
                *unreadable = Some(info.message().to_string());
                return Err(diesel::result::Error::DatabaseError(kind, info).into());
            }
            Err(e) => return Err(e.into()),
        };
        match i {
            0 if writes > 0 => counts.upserted = n,
            i if i < writes => counts.deleted += n,
            _ => {}
        }
    }
    Ok(counts)
}

#[derive(QueryableByName)]
struct Empty {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    empty: bool,
}

async fn is_empty(conn: &mut AsyncPgConnection, target: &SyncTarget<'_>) -> Result<bool, Error> {
    Ok(diesel::sql_query(format!(
        "SELECT NOT EXISTS (SELECT 1 FROM {}) AS empty",
        quote_qualified(target.schema, &target.table.name)
    ))
    .get_result::<Empty>(conn)
    .await?
    .empty)
}
