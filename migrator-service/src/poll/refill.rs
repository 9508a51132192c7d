//! RefillColumns: once a migration has added the column of an unmapped
//! field, the values already received for it are filled in from the
//! archive (`form_submission`) for the submissions already written, and
//! the field is marked resolved.
//!
//! Only NULL cells are filled: a submission written after the migration
//! already has its value, and running the refill twice changes nothing. A
//! sub-form's rows are matched to the archived instances by their order
//! under the parent (they were inserted in instance order).

use crate::error::Error;
use crate::poll::batch::lock_source;
use crate::poll::submission::decode;
use crate::repository::catalog::{Catalog, Column, SharedCatalog, Table};
use crate::repository::convert::convert;
use crate::repository::model::Submission;
use crate::repository::unmapped::{UnmappedFilter, UnmappedRow, list};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use service_kit::db::Pool;
use service_kit::sql::quote_ident;

/// Archived submissions read per round trip.
const PAGE: i64 = 1000;

/// What a refill did.
#[derive(Debug, Clone, Default)]
pub struct RefillReport {
    /// The fields whose column now exists and holds every value received.
    pub resolved: Vec<UnmappedRow>,
    /// Cells filled.
    pub rows_updated: i64,
    /// Values that do not fit their new column (the field stays unresolved).
    pub values_failed: i64,
    /// Unresolved fields still without a column.
    pub still_unmapped: i64,
}

#[derive(QueryableByName)]
struct Archived {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    payload: String,
}

/// Values of one field to write: (instance id, ordinal of the sub-form
/// instance or 0, canonical text).
#[derive(Default)]
struct Values {
    instance_ids: Vec<String>,
    ordinals: Vec<i64>,
    values: Vec<String>,
    failed: i64,
}

/// Fills the columns that now exist for the unresolved unmapped fields
/// `filter` selects.
pub async fn refill(
    conn: &mut AsyncPgConnection,
    catalog: &Catalog,
    filter: &UnmappedFilter,
) -> Result<RefillReport, Error> {
    let mut report = RefillReport::default();
    for field in list(conn, filter).await? {
        let Some((table, column, parent)) = target(catalog, &field) else {
            report.still_unmapped += 1;
            continue;
        };
        let (updated, failed) = refill_field(conn, &field, table, column, parent).await?;
        report.rows_updated += updated;
        report.values_failed += failed;
        if failed == 0 {
            diesel::sql_query("UPDATE unmapped_field SET resolved_at = now() WHERE id = $1")
                .bind::<BigInt, _>(field.id)
                .execute(conn)
                .await?;
            report.resolved.push(UnmappedRow {
                resolved_at: Some(chrono::Utc::now()),
                ..field
            });
        }
    }
    Ok(report)
}

/// The refill run on its own after a batch once the catalog changed: every
/// unresolved field of `source` whose column now exists, in one
/// transaction under the source's batch lock, so no batch of the source
/// (here or on another replica) writes with an older catalog meanwhile.
pub async fn refill_source(
    pool: &Pool,
    catalog: &SharedCatalog,
    source: &str,
) -> Result<RefillReport, Error> {
    let mut conn = pool.get().await?;
    let known = catalog.get(&mut conn).await?;
    let filter = UnmappedFilter {
        source: Some(source.to_string()),
        ..UnmappedFilter::default()
    };
    conn.transaction(async |conn| {
        lock_source(conn, source).await?;
        refill(conn, &known, &filter).await
    })
    .await
}

/// A sub-form table's parent form table and its foreign key column.
type Parent<'c> = (&'c Table, &'c str);

/// The table and column a field goes to now, and for a sub-form field its
/// parent form table; `None` while the column is still missing.
fn target<'c>(
    catalog: &'c Catalog,
    field: &UnmappedRow,
) -> Option<(&'c Table, &'c Column, Option<Parent<'c>>)> {
    let table = catalog.table(&field.table_name)?;
    let (_, column) = table.column(&field.column_name)?;
    if field.sub_form_name.is_empty() {
        return table.is_form_table().then_some((table, column, None));
    }
    let parent = catalog.tables().find_map(|t| {
        t.children
            .get(&table.name)
            .filter(|_| t.is_form_table())
            .map(|fk| (t, fk.as_str()))
    })?;
    Some((table, column, Some(parent)))
}

/// One field refilled from the archive, a page at a time, in one
/// transaction: (cells filled, values that do not fit).
async fn refill_field(
    conn: &mut AsyncPgConnection,
    field: &UnmappedRow,
    table: &Table,
    column: &Column,
    parent: Option<Parent<'_>>,
) -> Result<(i64, i64), Error> {
    conn.transaction(async |conn| {
        let (mut updated, mut failed) = (0, 0);
        let mut after = 0i64;
        loop {
            let page: Vec<Archived> = diesel::sql_query(
                "SELECT id, payload::text AS payload FROM form_submission \
                 WHERE source = $1 AND form_name = $2 AND status = 'written' AND id > $3 \
                 ORDER BY id LIMIT $4",
            )
            .bind::<Text, _>(&field.source)
            .bind::<Text, _>(&field.form_name)
            .bind::<BigInt, _>(after)
            .bind::<BigInt, _>(PAGE)
            .load(conn)
            .await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            let values = values_of(&page, field, column);
            failed += values.failed;
            updated += update(conn, table, column, parent, values).await?;
        }
        Ok::<_, Error>((updated, failed))
    })
    .await
}

/// The field's values on a page of archived submissions, converted for
/// the column.
fn values_of(page: &[Archived], field: &UnmappedRow, column: &Column) -> Values {
    let mut out = Values::default();
    for archived in page {
        let Ok(sub) = decode(&archived.payload) else {
            continue;
        };
        for (ordinal, text) in raw_values(&sub, field) {
            match convert(&text, &column.kind) {
                Ok(v) => {
                    out.instance_ids.push(sub.instance_id.clone());
                    out.ordinals.push(ordinal);
                    out.values.push(v);
                }
                Err(why) => {
                    tracing::warn!(instance_id = %sub.instance_id, field = %field.field_name, column = %column.name, %why, "a received value does not fit the new column");
                    out.failed += 1;
                }
            }
        }
    }
    out
}

/// The field's values in a submission: (0, value) for a form field, one
/// (ordinal from 1, value) per sub-form instance that has one.
fn raw_values(sub: &Submission, field: &UnmappedRow) -> Vec<(i64, String)> {
    if field.sub_form_name.is_empty() {
        return sub
            .form
            .fields
            .iter()
            .filter(|(name, _)| *name == field.field_name)
            .filter_map(|(_, v)| v.clone().map(|v| (0, v)))
            .collect();
    }
    sub.form
        .sub_forms
        .iter()
        .filter(|s| s.name == field.sub_form_name)
        .flat_map(|s| s.instances.iter().enumerate())
        .filter_map(|(i, instance)| {
            instance
                .iter()
                .find(|(name, _)| *name == field.field_name)
                .and_then(|(_, v)| v.clone())
                .map(|v| (i as i64 + 1, v))
        })
        .collect()
}

/// Writes a page's values into the NULL cells of `column`.
async fn update(
    conn: &mut AsyncPgConnection,
    table: &Table,
    column: &Column,
    parent: Option<Parent<'_>>,
    values: Values,
) -> Result<i64, Error> {
    if values.values.is_empty() {
        return Ok(0);
    }
    let cast = column
        .kind
        .cast(&column.sql_type)
        .map(|c| format!("::{c}"))
        .unwrap_or_default();
    let (t, c) = (quote_ident(&table.name), quote_ident(&column.name));
    let sql = match parent {
        None => format!(
            "UPDATE {t} AS r SET {c} = u.v{cast} \
             FROM unnest($1::text[], $2::int8[], $3::text[]) AS u(i, o, v) \
             WHERE r.\"instance_id\" = u.i AND r.{c} IS NULL"
        ),
        Some((parent, fk)) => {
            let (p, fk) = (quote_ident(&parent.name), quote_ident(fk));
            format!(
                "UPDATE {t} AS r SET {c} = u.v{cast} \
                 FROM unnest($1::text[], $2::int8[], $3::text[]) AS u(i, o, v), \
                 (SELECT ch.\"id\", p.\"instance_id\", \
                         row_number() OVER (PARTITION BY ch.{fk} ORDER BY ch.\"id\") AS o \
                    FROM {t} ch JOIN {p} p ON p.\"id\" = ch.{fk} \
                   WHERE p.\"instance_id\" = ANY($1)) AS k \
                 WHERE k.\"id\" = r.\"id\" AND k.\"instance_id\" = u.i AND k.o = u.o AND r.{c} IS NULL"
            )
        }
    };
    let n = diesel::sql_query(sql)
        .bind::<Array<Text>, _>(values.instance_ids)
        .bind::<Array<BigInt>, _>(values.ordinals)
        .bind::<Array<Text>, _>(values.values)
        .execute(conn)
        .await?;
    Ok(i64::try_from(n).unwrap_or(i64::MAX))
}
