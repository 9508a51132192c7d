//! Processing one page (migrator.md §4): every submission in order, each
//! written with its sub-form rows or recorded in `error_audit`, the raw
//! elements archived, and the `migration_audit` row (the new watermark),
//! all in ONE transaction. A crash before the commit leaves nothing, and the
//! re-fetch writes each submission once because the archive (unique on
//! `instance_id`) tells what was already received.
//!
//! The archive and `error_audit` rows are written by
//! [`crate::repository::archive`] and [`crate::repository::error_audit`];
//! retrying failed submissions is [`crate::poll::reprocess`].

use crate::error::Error;
use crate::poll::submission::{Failure, Submission, decode};
use crate::repository::archive::{ArchiveRows, archived};
use crate::repository::catalog::{Catalog, Naming, SharedCatalog, Table};
use crate::repository::error_audit::{Failed, insert_errors};
use crate::repository::form_writer::{PreparedRow, prepare, write_rows};
use crate::repository::postgres::{database_detail, is_transient};
use crate::repository::unmapped::UnmappedTally;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::value::RawValue;
use service_kit::db::Pool;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Where a source stands: the committed watermark and where the next poll
/// starts (one millisecond earlier after a full batch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The highest `serverVersion` of the last committed batch; 0 before the first.
    pub watermark: i64,
    /// The `timestamp` of the next request.
    pub next_timestamp: i64,
}

#[derive(QueryableByName)]
struct CursorRow {
    #[diesel(sql_type = BigInt)]
    last_polled_timestamp: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    next_poll_timestamp: Option<i64>,
}

/// The source's cursor from its latest `migration_audit` row.
pub async fn read_cursor(conn: &mut AsyncPgConnection, source: &str) -> Result<Cursor, Error> {
    let rows: Vec<CursorRow> = diesel::sql_query(
        "SELECT last_polled_timestamp, next_poll_timestamp FROM migration_audit \
         WHERE source = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind::<Text, _>(source)
    .load(conn)
    .await?;
    Ok(<[CursorRow]>::first(&rows)
        .map(|r| Cursor {
            watermark: r.last_polled_timestamp,
            next_timestamp: r.next_poll_timestamp.unwrap_or(r.last_polled_timestamp),
        })
        .unwrap_or_default())
}

/// What was asked of the upstream for this page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub timestamp: i64,
    pub batch_size: u32,
}

/// The outcome of a committed batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub total: usize,
    pub written: usize,
    pub duplicates: usize,
    pub failed: usize,
    /// The batch's highest `serverVersion`: the new watermark.
    pub watermark: i64,
    /// Where the next poll starts.
    pub next_timestamp: i64,
    /// The page held as many submissions as asked for.
    pub full: bool,
    /// Submissions written, by form name (for metrics).
    pub written_by_form: BTreeMap<String, usize>,
    /// Submissions failed, by form name (`unknown` when it had none).
    pub failed_by_form: BTreeMap<String, usize>,
    /// Written submissions that carried a field with no column, by (form,
    /// field) (`sub_form.field` for a sub-form's).
    pub unmapped_by_field: BTreeMap<(String, String), usize>,
}

impl BatchReport {
    /// A full page that moves the cursor nowhere: every submission on it
    /// shares one `serverVersion`, so the next request must ask for more.
    pub fn stuck(&self, request: &PageRequest) -> bool {
        self.full && self.next_timestamp <= request.timestamp
    }
}

/// What became of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    Committed(BatchReport),
    /// Another process committed a batch of this source since the page was
    /// requested; nothing was written and the page must be fetched again.
    Superseded,
}

/// A page decoded, each element with its raw text.
pub struct DecodedPage<'a> {
    items: Vec<(&'a str, Result<Submission, Failure>)>,
    /// The highest readable `serverVersion` on the page.
    pub max_server_version: Option<i64>,
}

impl DecodedPage<'_> {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The instance ids that could be read, in page order.
    fn instance_ids(&self) -> Vec<String> {
        self.items
            .iter()
            .filter_map(|(_, d)| match d {
                Ok(s) => Some(s.instance_id.clone()),
                Err(f) => f.instance_id.clone(),
            })
            .collect()
    }
}

/// Decodes every element of a page (no database work).
pub fn decode_page(elements: &[Box<RawValue>]) -> DecodedPage<'_> {
    let items: Vec<(&str, Result<Submission, Failure>)> = elements
        .iter()
        .map(|raw| (raw.get(), decode(raw.get())))
        .collect();
    let max_server_version = items
        .iter()
        .filter_map(|(_, d)| match d {
            Ok(s) => Some(s.server_version),
            Err(f) => f.server_version,
        })
        .max();
    DecodedPage {
        items,
        max_server_version,
    }
}

/// Where the poll after a page starts: the page's highest `serverVersion`,
/// or one millisecond less after a full page (submissions sharing it may
/// continue on the next page), never before the page's own timestamp.
pub fn next_timestamp(
    request: &PageRequest,
    page_len: usize,
    max_server_version: Option<i64>,
) -> i64 {
    let full = page_len >= request.batch_size as usize;
    match max_server_version {
        Some(max) if full => (max - 1).max(request.timestamp),
        Some(max) => max.max(request.timestamp),
        None => request.timestamp,
    }
}

/// Writes one decoded page. Call only with a non-empty page.
pub async fn process_page(
    pool: &Pool,
    catalog: &SharedCatalog,
    source: &str,
    strict: bool,
    request: PageRequest,
    page: &DecodedPage<'_>,
) -> Result<BatchOutcome, Error> {
    let max_server_version = page.max_server_version;
    let mut conn = pool.get().await?;
    // A migration run since the last batch is seen here.
    let known = catalog.get(&mut conn).await?;
    let full = page.len() >= request.batch_size as usize;
    let source = source.to_string();
    let naming = catalog.naming().clone();
    conn.transaction(async |conn| {
        begin_batch(conn, &source).await?;
        let cursor = read_cursor(conn, &source).await?;
        if cursor.next_timestamp != request.timestamp {
            return Ok(BatchOutcome::Superseded);
        }
        let mut seen = archived(conn, &page.instance_ids()).await?;
        let mut tally = Tally::new(BatchReport {
            total: page.len(),
            full,
            ..BatchReport::default()
        });
        let to_write = tally.sort(page, &mut seen, &known, &naming, strict);
        tally.write(conn, &known, &to_write).await?;
        let mut report = tally.record_failures(conn, &source).await?;

        report.watermark = max_server_version
            .unwrap_or(cursor.watermark)
            .max(cursor.watermark);
        report.next_timestamp = next_timestamp(&request, page.len(), max_server_version);
        insert_audit(conn, &source, &request, &report).await?;
        Ok(BatchOutcome::Committed(report))
    })
    .await
}

/// The first statements of a page's transaction.
/// Takes the source's batch lock until the transaction ends: it
/// serialises batches of one source across processes (a second replica, or
/// `poll-once` beside the service), and a refill with them.
pub async fn lock_source(conn: &mut AsyncPgConnection, source: &str) -> Result<(), Error> {
    diesel::sql_query(
        "SELECT pg_advisory_xact_lock(hashtext('avni-migrator:' || $1))::text AS locked",
    )
    .bind::<Text, _>(source)
    .execute(conn)
    .await?;
    Ok(())
}

async fn begin_batch(conn: &mut AsyncPgConnection, source: &str) -> Result<(), Error> {
    // The batch and its watermark commit together, and the upstream
    // keeps every submission: a commit lost in a crash only means the
    // page is fetched again. So the commit need not wait for the WAL
    // flush, which would otherwise bound the batch rate.
    diesel::sql_query("SET LOCAL synchronous_commit TO off")
        .execute(conn)
        .await?;
    lock_source(conn, source).await?;
    Ok(())
}

/// A submission ready to write, with its raw element for the archive.
struct ToWrite<'a> {
    sub: &'a Submission,
    row: PreparedRow,
    raw: &'a str,
}

/// What a page's submissions came to, gathered while the batch is written.
struct Tally<'a> {
    report: BatchReport,
    archive: ArchiveRows,
    failures: Vec<Failed<'a>>,
    unmapped: UnmappedTally,
}

impl<'a> Tally<'a> {
    fn new(report: BatchReport) -> Self {
        Self {
            report,
            archive: ArchiveRows::default(),
            failures: Vec::new(),
            unmapped: UnmappedTally::default(),
        }
    }

    /// Counts the repeats (already archived, or twice on the page), keeps
    /// the failures, and prepares the rest for writing, in page order.
    fn sort(
        &mut self,
        page: &'a DecodedPage<'a>,
        seen: &mut HashSet<String>,
        known: &Catalog,
        naming: &Naming,
        strict: bool,
    ) -> Vec<ToWrite<'a>> {
        let mut to_write = Vec::new();
        for (raw, d) in &page.items {
            let instance_id = match d {
                Ok(s) => Some(&s.instance_id),
                Err(f) => f.instance_id.as_ref(),
            };
            if let Some(id) = instance_id
                && !seen.insert(id.clone())
            {
                self.report.duplicates += 1;
                continue;
            }
            match d {
                Err(f) => self.failures.push(Failed {
                    failure: f.clone(),
                    raw,
                }),
                Ok(s) => match prepare(s, known, naming, strict) {
                    Ok(row) => to_write.push(ToWrite { sub: s, row, raw }),
                    Err(f) => self.failures.push(Failed { failure: f, raw }),
                },
            }
        }
        to_write
    }

    /// Writes the prepared submissions, one statement per form table in
    /// the order the tables first appear on the page.
    async fn write(
        &mut self,
        conn: &mut AsyncPgConnection,
        known: &Catalog,
        to_write: &[ToWrite<'a>],
    ) -> Result<(), Error> {
        for (table_name, members) in groups_by_table(to_write) {
            let Some(table) = known.table(table_name) else {
                continue;
            };
            let written = write_group_or_each(conn, known, table, to_write, &members).await;
            for (i, result) in written {
                self.record(&to_write[i], table_name, result)?;
            }
        }
        Ok(())
    }

    /// What became of one submission's write.
    fn record(
        &mut self,
        item: &ToWrite<'a>,
        table_name: &str,
        result: Result<bool, diesel::result::Error>,
    ) -> Result<(), Error> {
        let report = &mut self.report;
        match result {
            Ok(true) => {
                report.written += 1;
                *report
                    .written_by_form
                    .entry(item.sub.form_name.clone())
                    .or_default() += 1;
                self.unmapped.add(item.sub, &item.row.unmapped);
                self.archive.push(item.sub, item.raw, "written");
            }
            Ok(false) => {
                // Already in the form table (written by an earlier
                // run whose archive row is missing): not twice.
                report.duplicates += 1;
                self.archive.push(item.sub, item.raw, "written");
            }
            // Not the submission's fault (a deadlock with another
            // writer, a lost connection): the whole batch is retried.
            Err(e) if is_transient(&e) => return Err(Error::Database(e)),
            Err(e) => self.failures.push(Failed {
                failure: Failure::new(
                    format!("Could not write to {table_name}"),
                    database_detail(&e),
                )
                .of(item.sub),
                raw: item.raw,
            }),
        }
        Ok(())
    }

    /// Counts the failures, then writes the archive rows and the
    /// `error_audit` rows; the report is complete but for the watermark.
    async fn record_failures(
        mut self,
        conn: &mut AsyncPgConnection,
        source: &str,
    ) -> Result<BatchReport, Error> {
        for f in &self.failures {
            self.archive.push_failure(&f.failure, f.raw);
        }
        self.report.failed = self.failures.len();
        for f in &self.failures {
            let form = f.failure.form_name.as_deref().unwrap_or("unknown");
            *self
                .report
                .failed_by_form
                .entry(form.to_string())
                .or_default() += 1;
        }
        for (form, field, n) in self.unmapped.counts() {
            self.report
                .unmapped_by_field
                .insert((form.to_string(), field), usize::try_from(n).unwrap_or(0));
        }
        self.archive.insert(conn, source).await?;
        insert_errors(conn, source, &self.failures).await?;
        self.unmapped.insert(conn, source).await?;
        Ok(self.report)
    }
}

/// The indexes of `to_write` by form table, the tables in the order they
/// first appear.
fn groups_by_table<'w>(to_write: &'w [ToWrite<'_>]) -> Vec<(&'w str, Vec<usize>)> {
    let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, item) in to_write.iter().enumerate() {
        groups.entry(item.row.table.as_str()).or_default().push(i);
    }
    let mut groups: Vec<(&str, Vec<usize>)> = groups.into_iter().collect();
    groups.sort_by_key(|(_, members)| members[0]);
    groups
}

/// Writes the `members` of `to_write` to `table` together; for each,
/// whether it was written (`false`: already in the table).
async fn write_group_or_each(
    conn: &mut AsyncPgConnection,
    known: &Catalog,
    table: &Table,
    to_write: &[ToWrite<'_>],
    members: &[usize],
) -> Vec<(usize, Result<bool, diesel::result::Error>)> {
    let rows: Vec<&PreparedRow> = members.iter().map(|&i| &to_write[i].row).collect();
    match write_group(conn, known, table, &rows).await {
        Ok(ids) => members
            .iter()
            .map(|&i| (i, Ok(ids.contains_key(&to_write[i].row.instance_id))))
            .collect::<Vec<_>>(),
        Err(_) => {
            // Something in the group does not fit: write them one
            // by one so only the culprit fails.
            let mut each = Vec::with_capacity(members.len());
            for &i in members {
                let one = [&to_write[i].row];
                each.push((
                    i,
                    write_group(conn, known, table, &one)
                        .await
                        .map(|ids| ids.contains_key(&to_write[i].row.instance_id)),
                ));
            }
            each
        }
    }
}

/// The batch's `migration_audit` row: its counts and the new watermark.
async fn insert_audit(
    conn: &mut AsyncPgConnection,
    source: &str,
    request: &PageRequest,
    report: &BatchReport,
) -> Result<(), Error> {
    diesel::sql_query(
        "INSERT INTO migration_audit (source, last_polled_timestamp, total_no_of_form_entries, \
         successfully_processed_form_entries, duplicate_form_entries, failed_form_entries, \
         next_poll_timestamp, batch_size) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind::<Text, _>(source)
    .bind::<BigInt, _>(report.watermark)
    .bind::<Integer, _>(count(report.total))
    .bind::<Integer, _>(count(report.written))
    .bind::<Integer, _>(count(report.duplicates))
    .bind::<Integer, _>(count(report.failed))
    .bind::<BigInt, _>(report.next_timestamp)
    .bind::<Integer, _>(i32::try_from(request.batch_size).unwrap_or(i32::MAX))
    .execute(conn)
    .await?;
    Ok(())
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Rows of one table in a savepoint, so a failure leaves the batch usable.
async fn write_group(
    conn: &mut AsyncPgConnection,
    catalog: &Catalog,
    table: &Table,
    rows: &[&PreparedRow],
) -> Result<HashMap<String, i64>, diesel::result::Error> {
    conn.transaction(async |conn| write_rows(conn, catalog, table, rows).await)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_page_on_one_server_version_is_stuck() {
        let request = PageRequest {
            timestamp: 10,
            batch_size: 2,
        };
        let report = BatchReport {
            full: true,
            next_timestamp: 10,
            ..BatchReport::default()
        };
        assert!(report.stuck(&request));
        let moved = BatchReport {
            next_timestamp: 11,
            ..report.clone()
        };
        assert!(!moved.stuck(&request));
    }
}
