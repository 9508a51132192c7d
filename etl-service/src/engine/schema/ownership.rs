//! Whether a schema is one the service may build in, recreate or drop: a
//! reporting schema is known by its metadata (rows in `table_metadata`,
//! the service's or avni-etl's). An existing schema with no metadata that
//! holds objects belongs to someone else (another application, a DBA) and
//! is refused, left exactly as it is; an empty one (as avni-server's
//! `create_implementation_schema` makes for every organisation) is used.

use crate::error::Error;
use diesel::QueryableByName;
use diesel::sql_types::{Bool, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

#[derive(QueryableByName)]
struct Standing {
    #[diesel(sql_type = Bool)]
    described: bool,
    #[diesel(sql_type = Bool)]
    holds_objects: bool,
}

/// Fails with [`Error::FailedPrecondition`], naming `schema`, when it
/// exists, no metadata describes it and it holds tables, views,
/// sequences, functions or types.
pub async fn ensure_ours(conn: &mut AsyncPgConnection, schema: &str) -> Result<(), Error> {
    let standing: Standing = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM public.table_metadata WHERE schema_name = $1) AS described, \
                coalesce((SELECT EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid) \
                              OR EXISTS (SELECT 1 FROM pg_proc p WHERE p.pronamespace = n.oid) \
                              OR EXISTS (SELECT 1 FROM pg_type t WHERE t.typnamespace = n.oid \
                                         AND t.typtype IN ('d', 'e', 'r', 'm')) \
                          FROM pg_namespace n WHERE n.nspname = $1), false) AS holds_objects",
    )
    .bind::<Text, _>(schema)
    .get_result(conn)
    .await?;
    if standing.holds_objects && !standing.described {
        return Err(Error::FailedPrecondition(format!(
            "schema {schema:?} already exists and holds objects the ETL did not create (no \
             table_metadata row describes it); it is left as it is. Point the organisation's \
             schema_name at another schema, or rename or drop {schema:?} if nothing needs it"
        )));
    }
    Ok(())
}
