//! Implementers' own relations in a reporting schema. On Avni the
//! organisation's role owns its schema and implementers create their own
//! dashboard views and tables there, which the metadata does not describe.
//! A run never touches them: their names are taken (a planned table whose
//! name one holds is named otherwise, and ValidateNames says so), and a
//! reporting view one depends on is replaced in place, or kept as it was
//! when it cannot be (see `views`).

use crate::engine::schema::metadata;
use crate::engine::schema::plan::ExistingSchema;
use crate::engine::schema::views::{TAG_PREFIX, VIEW_NAMES};
use crate::error::Error;
use diesel::QueryableByName;
use diesel::sql_types::{Array, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

/// The schema as the metadata describes it, with the names implementers'
/// relations hold in it ([`ExistingSchema::others`]).
pub async fn load_existing(
    conn: &mut AsyncPgConnection,
    schema: &str,
) -> Result<ExistingSchema, Error> {
    let mut existing = metadata::load_existing(conn, schema).await?;
    existing.others = other_relations(conn, schema, &existing).await?;
    Ok(existing)
}

/// Every relation of `schema` (table, view, index, sequence, type, ...)
/// that is not one of the tables the metadata describes, one of this
/// service's views, or an index or sequence of those tables.
async fn other_relations(
    conn: &mut AsyncPgConnection,
    schema: &str,
    existing: &ExistingSchema,
) -> Result<Vec<String>, Error> {
    let ours: Vec<String> = existing.tables.iter().map(|t| t.name.clone()).collect();
    let views: Vec<String> = VIEW_NAMES.iter().map(|v| v.to_string()).collect();
    let rows: Vec<Name> = diesel::sql_query(
        "SELECT c.relname::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND NOT (c.relname = ANY($2)) \
           AND NOT (c.relkind = 'v' AND c.relname = ANY($3) \
                    AND coalesce(obj_description(c.oid, 'pg_class'), '') LIKE $4 || '%') \
           AND NOT EXISTS (SELECT 1 FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid \
                           WHERE x.indexrelid = c.oid AND t.relnamespace = n.oid AND t.relname = ANY($2)) \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid \
                           WHERE c.relkind = 'S' AND d.classid = 'pg_class'::regclass AND d.objid = c.oid \
                             AND d.deptype IN ('a', 'i') AND t.relnamespace = n.oid AND t.relname = ANY($2)) \
         ORDER BY 1",
    )
    .bind::<Text, _>(schema)
    .bind::<Array<Text>, _>(&ours)
    .bind::<Array<Text>, _>(&views)
    .bind::<Text, _>(TAG_PREFIX)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.name).collect())
}
