//! Processing one page (migrator.md §4): every submission in order, each
//! written with its sub-form rows or recorded in `error_audit`, the raw
//! elements archived, and the `migration_audit` row (the new watermark),
//! all in ONE transaction. A crash before the commit leaves nothing, and the
//! re-fetch writes each submission once because the archive (unique on
//! `instance_id`) tells what was already received.
//!
//! Also [`reprocess`]: retrying failed submissions from their raw payload.

use crate::error::Error;
use crate::poll::submission::{Failure, Submission, decode};
use crate::repository::catalog::{Catalog, SharedCatalog, Table};
use crate::repository::form_writer::{PreparedRow, prepare, write_rows};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text};
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

/// A failure with the raw element it belongs to.
struct Failed<'a> {
    failure: Failure,
    raw: &'a str,
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
    request: PageRequest,
    page: &DecodedPage<'_>,
) -> Result<BatchOutcome, Error> {
    let decoded = &page.items;
    let max_server_version = page.max_server_version;
    let mut conn = pool.get().await?;
    let mut known = catalog.get(&mut conn).await?;
    let unknown = decoded.iter().any(|(_, d)| {
        d.as_ref().is_ok_and(|s| {
            known
                .form_table(catalog.naming().table(&s.form_name))
                .is_none()
        })
    });
    if unknown {
        // A migration may have added the form since the catalog was read.
        known = catalog.refresh(&mut conn).await?;
    }
    let full = decoded.len() >= request.batch_size as usize;
    let source = source.to_string();
    let naming = catalog.naming().clone();
    conn.transaction(async |conn| {
        // The batch and its watermark commit together, and the upstream
        // keeps every submission: a commit lost in a crash only means the
        // page is fetched again. So the commit need not wait for the WAL
        // flush, which would otherwise bound the batch rate.
        diesel::sql_query("SET LOCAL synchronous_commit TO off")
            .execute(conn)
            .await?;
        // Serialises batches of one source across processes (a second
        // replica, or `poll-once` beside the service).
        diesel::sql_query(
            "SELECT pg_advisory_xact_lock(hashtext('avni-migrator:' || $1))::text AS locked",
        )
        .bind::<Text, _>(&source)
        .execute(conn)
        .await?;
        let cursor = read_cursor(conn, &source).await?;
        if cursor.next_timestamp != request.timestamp {
            return Ok(BatchOutcome::Superseded);
        }
        let ids: Vec<String> = decoded
            .iter()
            .filter_map(|(_, d)| match d {
                Ok(s) => Some(s.instance_id.clone()),
                Err(f) => f.instance_id.clone(),
            })
            .collect();
        let mut seen = archived(conn, &ids).await?;

        let mut report = BatchReport {
            total: decoded.len(),
            full,
            ..BatchReport::default()
        };
        let mut failures: Vec<Failed> = Vec::new();
        let mut to_write: Vec<(&Submission, PreparedRow, &str)> = Vec::new();
        for (raw, d) in decoded {
            let instance_id = match d {
                Ok(s) => Some(&s.instance_id),
                Err(f) => f.instance_id.as_ref(),
            };
            if let Some(id) = instance_id
                && !seen.insert(id.clone())
            {
                report.duplicates += 1;
                continue;
            }
            match d {
                Err(f) => failures.push(Failed {
                    failure: f.clone(),
                    raw,
                }),
                Ok(s) => match prepare(s, &known, &naming) {
                    Ok(row) => to_write.push((s, row, raw)),
                    Err(f) => failures.push(Failed { failure: f, raw }),
                },
            }
        }

        let mut archive = ArchiveRows::default();
        let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, (_, row, _)) in to_write.iter().enumerate() {
            groups.entry(row.table.as_str()).or_default().push(i);
        }
        let mut groups: Vec<(&str, Vec<usize>)> = groups.into_iter().collect();
        groups.sort_by_key(|(_, members)| members[0]);
        for (table_name, members) in groups {
            let Some(table) = known.table(table_name) else {
                continue;
            };
            let rows: Vec<&PreparedRow> = members.iter().map(|&i| &to_write[i].1).collect();
            let written = match write_group(conn, &known, table, &rows).await {
                Ok(ids) => members
                    .iter()
                    .map(|&i| (i, Ok(ids.contains_key(&to_write[i].1.instance_id))))
                    .collect::<Vec<_>>(),
                Err(_) => {
                    // Something in the group does not fit: write them one
                    // by one so only the culprit fails.
                    let mut each = Vec::with_capacity(members.len());
                    for &i in &members {
                        let one = [&to_write[i].1];
                        each.push((
                            i,
                            write_group(conn, &known, table, &one)
                                .await
                                .map(|ids| ids.contains_key(&to_write[i].1.instance_id)),
                        ));
                    }
                    each
                }
            };
            for (i, result) in written {
                let (sub, _, raw) = &to_write[i];
                match result {
                    Ok(true) => {
                        report.written += 1;
                        *report
                            .written_by_form
                            .entry(sub.form_name.clone())
                            .or_default() += 1;
                        archive.push(sub, raw, "written");
                    }
                    Ok(false) => {
                        // Already in the form table (written by an earlier
                        // run whose archive row is missing): not twice.
                        report.duplicates += 1;
                        archive.push(sub, raw, "written");
                    }
                    // Not the submission's fault (a deadlock with another
                    // writer, a lost connection): the whole batch is retried.
                    Err(e) if is_transient(&e) => return Err(Error::Database(e)),
                    Err(e) => failures.push(Failed {
                        failure: Failure::new(
                            format!("Could not write to {table_name}"),
                            database_detail(&e),
                        )
                        .of(sub),
                        raw,
                    }),
                }
            }
        }
        for f in &failures {
            archive.push_failure(&f.failure, f.raw);
        }
        report.failed = failures.len();
        for f in &failures {
            let form = f.failure.form_name.as_deref().unwrap_or("unknown");
            *report.failed_by_form.entry(form.to_string()).or_default() += 1;
        }
        archive.insert(conn, &source).await?;
        insert_errors(conn, &source, &failures).await?;

        report.watermark = max_server_version
            .unwrap_or(cursor.watermark)
            .max(cursor.watermark);
        report.next_timestamp = next_timestamp(&request, decoded.len(), max_server_version);
        diesel::sql_query(
            "INSERT INTO migration_audit (source, last_polled_timestamp, total_no_of_form_entries, \
             successfully_processed_form_entries, duplicate_form_entries, failed_form_entries, \
             next_poll_timestamp, batch_size) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind::<Text, _>(&source)
        .bind::<BigInt, _>(report.watermark)
        .bind::<Integer, _>(count(report.total))
        .bind::<Integer, _>(count(report.written))
        .bind::<Integer, _>(count(report.duplicates))
        .bind::<Integer, _>(count(report.failed))
        .bind::<BigInt, _>(report.next_timestamp)
        .bind::<Integer, _>(i32::try_from(request.batch_size).unwrap_or(i32::MAX))
        .execute(conn)
        .await?;
        Ok(BatchOutcome::Committed(report))
    })
    .await
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

/// A database error that says nothing about the data: retrying the batch
/// may succeed, so it must not become an `error_audit` row.
pub fn is_transient(e: &diesel::result::Error) -> bool {
    use diesel::result::DatabaseErrorKind as Kind;
    match e {
        diesel::result::Error::DatabaseError(kind, info) => match kind {
            Kind::SerializationFailure
            | Kind::UnableToSendCommand
            | Kind::ClosedConnection
            | Kind::ReadOnlyTransaction => true,
            _ => {
                let m = info.message();
                m.contains("deadlock detected")
                    || m.contains("canceling statement")
                    || m.contains("terminating connection")
                    || m.contains("could not obtain lock")
            }
        },
        diesel::result::Error::BrokenTransactionManager
        | diesel::result::Error::AlreadyInTransaction
        | diesel::result::Error::NotInTransaction
        | diesel::result::Error::RollbackErrorOnCommit { .. }
        | diesel::result::Error::RollbackTransaction => true,
        _ => false,
    }
}

/// The database's words for a failed write, with its detail and hint.
pub fn database_detail(e: &diesel::result::Error) -> String {
    match e {
        diesel::result::Error::DatabaseError(_, info) => {
            let mut text = info.message().to_string();
            if let Some(d) = info.details() {
                text.push_str("; ");
                text.push_str(d);
            }
            if let Some(h) = info.hint() {
                text.push_str("; hint: ");
                text.push_str(h);
            }
            if let Some(c) = info.column_name() {
                text.push_str("; column: ");
                text.push_str(c);
            }
            text
        }
        other => other.to_string(),
    }
}

#[derive(QueryableByName)]
struct InstanceRow {
    #[diesel(sql_type = Text)]
    instance_id: String,
}

/// The instance ids among `ids` already in the archive.
async fn archived(conn: &mut AsyncPgConnection, ids: &[String]) -> Result<HashSet<String>, Error> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<InstanceRow> =
        diesel::sql_query("SELECT instance_id FROM form_submission WHERE instance_id = ANY($1)")
            .bind::<Array<Text>, _>(ids)
            .load(conn)
            .await?;
    Ok(rows.into_iter().map(|r| r.instance_id).collect())
}

/// The raw element as `jsonb` accepts it: PostgreSQL refuses the escaped
/// NUL character (`\u0000`) in jsonb, and one such element must not block
/// its batch for ever, so it is replaced by U+FFFD in the archive (the
/// exact text stays in `error_audit` for a failed submission).
fn archivable(raw: &str) -> String {
    if raw.contains("\\u0000") {
        raw.replace("\\u0000", "\\ufffd")
    } else {
        raw.to_string()
    }
}

/// Text as PostgreSQL stores it: a NUL character (which a text column
/// refuses, failing the whole batch) becomes U+FFFD. For the bookkeeping
/// columns only (names, reasons); form values with a NUL fail their
/// submission instead (see `convert`).
fn pg_text(text: &str) -> String {
    text.replace('\0', "\u{fffd}")
}

fn pg_opt(text: &Option<String>) -> Option<String> {
    text.as_deref().map(pg_text)
}

/// `form_submission` rows of a batch, as columns.
#[derive(Default)]
struct ArchiveRows {
    instance_id: Vec<String>,
    form_name: Vec<Option<String>>,
    entity_id: Vec<Option<String>>,
    anm_id: Vec<Option<String>>,
    client_version: Vec<Option<i64>>,
    server_version: Vec<Option<i64>>,
    payload: Vec<String>,
    status: Vec<String>,
}

impl ArchiveRows {
    fn push(&mut self, s: &Submission, raw: &str, status: &str) {
        self.instance_id.push(pg_text(&s.instance_id));
        self.form_name.push(Some(pg_text(&s.form_name)));
        self.entity_id.push(pg_opt(&s.entity_id));
        self.anm_id.push(pg_opt(&s.anm_id));
        self.client_version.push(s.client_version);
        self.server_version.push(Some(s.server_version));
        self.payload.push(archivable(raw));
        self.status.push(status.to_string());
    }

    /// A failure without an instance id cannot be archived (the archive is
    /// keyed on it); its raw payload is still in `error_audit`.
    fn push_failure(&mut self, f: &Failure, raw: &str) {
        let Some(id) = &f.instance_id else { return };
        self.instance_id.push(pg_text(id));
        self.form_name.push(pg_opt(&f.form_name));
        self.entity_id.push(None);
        self.anm_id.push(None);
        self.client_version.push(None);
        self.server_version.push(f.server_version);
        self.payload.push(archivable(raw));
        self.status.push("failed".to_string());
    }

    async fn insert(self, conn: &mut AsyncPgConnection, source: &str) -> Result<(), Error> {
        if self.instance_id.is_empty() {
            return Ok(());
        }
        diesel::sql_query(
            "INSERT INTO form_submission (source, instance_id, form_name, entity_id, anm_id, \
             client_version, server_version, payload, status) \
             SELECT $1, u.i, u.f, u.e, u.a, u.c, u.s, u.p::jsonb, u.st \
             FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[], $8::text[], $9::text[]) \
             AS u(i, f, e, a, c, s, p, st) \
             ON CONFLICT (instance_id) DO NOTHING",
        )
        .bind::<Text, _>(source)
        .bind::<Array<Text>, _>(self.instance_id)
        .bind::<Array<Nullable<Text>>, _>(self.form_name)
        .bind::<Array<Nullable<Text>>, _>(self.entity_id)
        .bind::<Array<Nullable<Text>>, _>(self.anm_id)
        .bind::<Array<Nullable<BigInt>>, _>(self.client_version)
        .bind::<Array<Nullable<BigInt>>, _>(self.server_version)
        .bind::<Array<Text>, _>(self.payload)
        .bind::<Array<Text>, _>(self.status)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// Failures without an instance id cannot be recognised as repeats by the
/// archive, so an identical one already recorded is not recorded twice.
async fn insert_errors(
    conn: &mut AsyncPgConnection,
    source: &str,
    failures: &[Failed<'_>],
) -> Result<(), Error> {
    if failures.is_empty() {
        return Ok(());
    }
    let mut instance_id = Vec::with_capacity(failures.len());
    let mut form_name = Vec::with_capacity(failures.len());
    let mut server_version = Vec::with_capacity(failures.len());
    let mut reason = Vec::with_capacity(failures.len());
    let mut detail = Vec::with_capacity(failures.len());
    let mut raw = Vec::with_capacity(failures.len());
    for f in failures {
        instance_id.push(pg_opt(&f.failure.instance_id));
        form_name.push(pg_opt(&f.failure.form_name));
        server_version.push(f.failure.server_version);
        reason.push(pg_text(&f.failure.reason));
        detail.push(pg_text(&f.failure.detail));
        raw.push(f.raw.to_string());
    }
    diesel::sql_query(
        "INSERT INTO error_audit (source, instance_id, form_name, server_version, failure_reason, \
         detailed_reason, raw_payload) \
         SELECT $1, u.i, u.f, u.s, u.r, u.d, u.p \
         FROM unnest($2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::text[]) \
         WITH ORDINALITY AS u(i, f, s, r, d, p, n) \
         WHERE u.i IS NOT NULL OR NOT EXISTS (SELECT 1 FROM error_audit e \
           WHERE e.source = $1 AND e.instance_id IS NULL AND e.raw_payload = u.p) \
         ORDER BY u.n",
    )
    .bind::<Text, _>(source)
    .bind::<Array<Nullable<Text>>, _>(instance_id)
    .bind::<Array<Nullable<Text>>, _>(form_name)
    .bind::<Array<Nullable<BigInt>>, _>(server_version)
    .bind::<Array<Text>, _>(reason)
    .bind::<Array<Text>, _>(detail)
    .bind::<Array<Text>, _>(raw)
    .execute(conn)
    .await?;
    Ok(())
}

/// Which unresolved errors [`reprocess`] retries.
#[derive(Debug, Clone, Default)]
pub struct ReprocessFilter {
    pub source: Option<String>,
    pub form_name: Option<String>,
    pub ids: Vec<i64>,
}

/// What [`reprocess`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReprocessReport {
    pub attempted: usize,
    pub resolved_ids: Vec<i64>,
    pub still_failing: usize,
}

#[derive(QueryableByName)]
struct ErrorRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    source: String,
    #[diesel(sql_type = Text)]
    raw_payload: String,
}

/// Most errors one `ReprocessErrors` call retries; call again for more.
pub const REPROCESS_LIMIT: i64 = 10_000;

/// Retries unresolved failed submissions from their raw payload with a
/// fresh catalog; each one that now writes is resolved, each one that still
/// fails gets its reasons updated.
pub async fn reprocess(
    pool: &Pool,
    catalog: &SharedCatalog,
    filter: &ReprocessFilter,
) -> Result<ReprocessReport, Error> {
    let mut conn = pool.get().await?;
    let known = catalog.refresh(&mut conn).await?;
    let rows: Vec<ErrorRow> = diesel::sql_query(
        "SELECT id, source, raw_payload FROM error_audit \
         WHERE resolved_at IS NULL \
           AND ($1::text IS NULL OR source = $1) \
           AND ($2::text IS NULL OR form_name = $2) \
           AND (cardinality($3::int8[]) = 0 OR id = ANY($3)) \
         ORDER BY id LIMIT $4",
    )
    .bind::<Nullable<Text>, _>(filter.source.as_deref())
    .bind::<Nullable<Text>, _>(filter.form_name.as_deref())
    .bind::<Array<BigInt>, _>(&filter.ids)
    .bind::<BigInt, _>(REPROCESS_LIMIT)
    .load(&mut conn)
    .await?;
    let mut report = ReprocessReport {
        attempted: rows.len(),
        ..ReprocessReport::default()
    };
    for row in rows {
        let outcome = match decode(&row.raw_payload) {
            Err(f) => Err(f),
            Ok(sub) => match prepare(&sub, &known, catalog.naming()) {
                Err(f) => Err(f),
                Ok(prepared) => {
                    let written = write_resolved(&mut conn, &known, &row, &sub, &prepared).await;
                    match written {
                        Ok(()) => Ok(()),
                        Err(Error::Database(e)) if !is_transient(&e) => Err(Failure::new(
                            format!("Could not write to {}", prepared.table),
                            database_detail(&e),
                        )),
                        Err(other) => return Err(other),
                    }
                }
            },
        };
        match outcome {
            Ok(()) => report.resolved_ids.push(row.id),
            Err(f) => {
                report.still_failing += 1;
                diesel::sql_query(
                    "UPDATE error_audit SET failure_reason = $2, detailed_reason = $3 WHERE id = $1",
                )
                .bind::<BigInt, _>(row.id)
                .bind::<Text, _>(pg_text(&f.reason))
                .bind::<Text, _>(pg_text(&f.detail))
                .execute(&mut conn)
                .await?;
            }
        }
    }
    Ok(report)
}

/// Writes a reprocessed submission, marks its archive row written and its
/// error resolved, atomically.
async fn write_resolved(
    conn: &mut AsyncPgConnection,
    catalog: &Catalog,
    row: &ErrorRow,
    sub: &Submission,
    prepared: &PreparedRow,
) -> Result<(), Error> {
    let Some(table) = catalog.table(&prepared.table) else {
        return Err(Error::FailedPrecondition(format!(
            "table {} vanished from the catalog",
            prepared.table
        )));
    };
    conn.transaction(async |conn| {
        write_rows(conn, catalog, table, &[prepared]).await?;
        diesel::sql_query(
            "INSERT INTO form_submission (source, instance_id, form_name, entity_id, anm_id, \
             client_version, server_version, payload, status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, 'written') \
             ON CONFLICT (instance_id) DO UPDATE SET status = 'written'",
        )
        .bind::<Text, _>(&row.source)
        .bind::<Text, _>(&sub.instance_id)
        .bind::<Text, _>(&sub.form_name)
        .bind::<Nullable<Text>, _>(sub.entity_id.as_deref())
        .bind::<Nullable<Text>, _>(sub.anm_id.as_deref())
        .bind::<Nullable<BigInt>, _>(sub.client_version)
        .bind::<BigInt, _>(sub.server_version)
        .bind::<Text, _>(&row.raw_payload)
        .execute(conn)
        .await?;
        diesel::sql_query("UPDATE error_audit SET resolved_at = now() WHERE id = $1")
            .bind::<BigInt, _>(row.id)
            .execute(conn)
            .await?;
        Ok::<(), Error>(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_nul_characters_are_replaced_for_the_archive() {
        assert_eq!(archivable(r#"{"a":"x\u0000y"}"#), r#"{"a":"x\ufffdy"}"#);
        assert_eq!(archivable(r#"{"a":"plain"}"#), r#"{"a":"plain"}"#);
    }

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
