//! Whether a schema is one the service may build in, recreate or drop: a
//! reporting schema is known by its metadata (rows in `table_metadata`,
//! the service's or avni-etl's), and an organisation's schema as Avni makes
//! it (`create_implementation_schema`) by its owner, the `db_user` of the
//! organisation or group whose `schema_name` it is (implementers may have
//! made their own objects there before the first run). Any other existing
//! schema that holds objects belongs to someone else (another application,
//! a DBA) and is refused, left exactly as it is; an empty one is used.

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
    #[diesel(sql_type = Bool)]
    avnis: bool,
}

/// Fails with [`Error::FailedPrecondition`], naming `schema`, when it
/// exists, no metadata describes it, it is not owned as Avni makes an
/// organisation's schema, and it holds tables, views, sequences, functions
/// or types.
pub async fn ensure_ours(conn: &mut AsyncPgConnection, schema: &str) -> Result<(), Error> {
    let standing: Standing = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM public.table_metadata WHERE schema_name = $1) AS described, \
                coalesce((SELECT EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid) \
                              OR EXISTS (SELECT 1 FROM pg_proc p WHERE p.pronamespace = n.oid) \
                              OR EXISTS (SELECT 1 FROM pg_type t WHERE t.typnamespace = n.oid \
                                         AND t.typtype IN ('d', 'e', 'r', 'm')) \
                          FROM pg_namespace n WHERE n.nspname = $1), false) AS holds_objects, \
                EXISTS (SELECT 1 FROM pg_namespace n \
                         WHERE n.nspname = $1 AND pg_get_userbyid(n.nspowner) IN ( \
                               SELECT o.db_user::text FROM public.organisation o WHERE o.schema_name = $1 \
                               UNION ALL \
                               SELECT g.db_user::text FROM public.organisation_group g \
                                WHERE g.schema_name = $1)) AS avnis",
    )
    .bind::<Text, _>(schema)
    .get_result(conn)
    .await?;
    if standing.holds_objects && !standing.described && !standing.avnis {
        return Err(Error::FailedPrecondition(format!(
            "schema {schema:?} already exists and holds objects the ETL did not create (no \
             table_metadata row describes it, and the organisation's db_user does not own it); it is \
             left as it is. Point the organisation's \
             schema_name at another schema, or rename or drop {schema:?} if nothing needs it"
        )));
    }
    Ok(())
}
