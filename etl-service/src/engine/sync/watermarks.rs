//! How far each table is synced (its watermark per table and source
//! organisation in `etl_service.watermark`, since members of a group may
//! share a db_user; copied to Avni's `public.entity_sync_status` row it
//! names: the earlier of the two counts, so setting Avni's copy back
//! re-syncs from there, deleting it resets, and moving it forward, which
//! every role avni-server's `create_db_user` makes may do, skips nothing),
//! and when
//! a table's source last changed: together they tell a run which tables have
//! nothing to sync.

use crate::engine::sync::SyncTarget;
use crate::engine::sync::source_rows::type_column;
use crate::engine::sync::sql_text::{Statement, Value};
use crate::error::Error;
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Integer, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use service_kit::sql::quote_ident;

/// The start of time for a table never synced.
pub fn epoch() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(-2_208_988_800, 0).unwrap_or_default()
}

/// The statement advancing `target`'s watermark to `synced_to`: the
/// organisation's `etl_service.watermark` and its copy in Avni's
/// `entity_sync_status` row (with the member's db_user), or both made.
pub(super) fn mark_statement(target: &SyncTarget<'_>, synced_to: DateTime<Utc>) -> Statement {
    let mut mark = Statement::new();
    let (user, table, time, schema, org) = (
        mark.bind_text(target.db_user),
        mark.bind(Value::Int(target.table_id)),
        mark.bind(Value::Time(synced_to)),
        mark.bind_text(target.schema),
        mark.bind(Value::Int(target.organisation_id)),
    );
    mark.push(&format!(
        "WITH existing AS (SELECT entity_sync_status_id AS id FROM etl_service.watermark \
             WHERE table_metadata_id = {table} AND organisation_id = {org}), \
         updated AS (UPDATE public.entity_sync_status s \
             SET last_sync_time = {time}, sync_status = 'Success', db_user = {user} \
             FROM existing e WHERE s.id = e.id RETURNING s.id), \
         inserted AS (INSERT INTO public.entity_sync_status \
                 (db_user, table_metadata_id, last_sync_time, sync_status, schema_name) \
             SELECT {user}, {table}, {time}, 'Success', {schema} \
             WHERE NOT EXISTS (SELECT 1 FROM existing) RETURNING id), \
         ours AS (UPDATE etl_service.watermark w SET last_sync_time = {time} \
             FROM existing e WHERE w.entity_sync_status_id = e.id) \
         INSERT INTO etl_service.watermark \
             (entity_sync_status_id, table_metadata_id, organisation_id, last_sync_time) \
         SELECT id, {table}, {org}, {time} FROM inserted"
    ));
    mark
}

#[derive(QueryableByName)]
struct Latest {
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    type_uuid: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    latest: DateTime<Utc>,
}

/// The latest change time of the `organisations`' rows of `source` (one of
/// [`source_table`]'s names; the organisations [`source_organisations`]
/// gives) after `since`, by the uuid of the rows' type (subject type,
/// program or encounter type: [`type_column`]; `None` for address levels):
/// a table of one type is synced only when rows of its type changed. Empty
/// when none changed since. Bounded below by the watermark, it reads only
/// what changed since then: on a real Avni database, which indexes
/// `last_modified_date_time` and `organisation_id` separately (no
/// composite index), an unbounded `max(...) WHERE organisation_id = $1`
/// walks back through every other organisation's newer rows, or reads all
/// of this one's (RELIABILITY.md, "Source indexes"). A run with no changes
/// costs one such query per source table, not one per reporting table.
///
/// [`source_table`]: crate::engine::sync::source_table
/// [`source_organisations`]: crate::engine::sync::source_organisations
/// [`type_column`]: crate::engine::sync::type_column
pub async fn latest_changes(
    conn: &AsyncPgConnection,
    source: &'static str,
    organisations: &[i32],
    since: &DateTime<Utc>,
) -> Result<Vec<(Option<String>, DateTime<Utc>)>, Error> {
    let mut s = Statement::new();
    let orgs = match organisations {
        [one] => s.bind(Value::Int(*one)),
        many => format!("ANY ({})", s.bind(Value::IntArray(many.to_vec()))),
    };
    let since = s.bind(Value::Time(*since));
    let (type_uuid, join) = match type_column(source) {
        Some((column, table)) => (
            "t.uuid",
            format!(
                " LEFT JOIN public.{} t ON t.id = src.{}",
                quote_ident(table),
                quote_ident(column)
            ),
        ),
        None => ("NULL::text", String::new()),
    };
    s.push(&format!(
        "SELECT {type_uuid} AS type_uuid, max(src.last_modified_date_time) AS latest \
         FROM public.{} src{join} \
         WHERE src.organisation_id = {orgs} AND src.last_modified_date_time > {since} \
         GROUP BY 1",
        quote_ident(source)
    ));
    let mut conn = conn;
    Ok(s.into_query()
        .load::<Latest>(&mut conn)
        .await?
        .into_iter()
        .map(|l| (l.type_uuid, l.latest))
        .collect())
}

#[derive(QueryableByName)]
struct StoredWatermark {
    #[diesel(sql_type = Integer)]
    table_metadata_id: i32,
    #[diesel(sql_type = Integer)]
    organisation_id: i32,
    #[diesel(sql_type = Timestamptz)]
    last_sync_time: DateTime<Utc>,
}

/// Every watermark of a schema: (table id, organisation id) -> last sync
/// time.
pub async fn watermarks(
    conn: &AsyncPgConnection,
    schema: &str,
) -> Result<std::collections::HashMap<(i32, i32), DateTime<Utc>>, Error> {
    let mut conn = conn;
    let rows: Vec<StoredWatermark> = diesel::sql_query(
        "SELECT w.table_metadata_id, w.organisation_id, \
                least(w.last_sync_time, s.last_sync_time) AS last_sync_time \
         FROM etl_service.watermark w \
         JOIN public.table_metadata t ON t.id = w.table_metadata_id \
         LEFT JOIN public.entity_sync_status s ON s.id = w.entity_sync_status_id \
         WHERE t.schema_name = $1",
    )
    .bind::<Text, _>(schema)
    .load(&mut conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|w| ((w.table_metadata_id, w.organisation_id), w.last_sync_time))
        .collect())
}
