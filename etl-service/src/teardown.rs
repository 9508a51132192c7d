//! Dropping a reporting schema and everything that describes it: the
//! reference system's manual recovery procedure (drop the schema, delete its
//! index, column and table metadata, delete its sync status) as one
//! transaction. The caller holds the entity's lock.

use crate::error::Error;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use service_kit::sql::quote_ident;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Drops `schema` with its metadata and sync status; returns how many
/// reporting tables its metadata described. Metadata of other schemas is
/// never touched.
pub async fn drop_schema(conn: &mut AsyncPgConnection, schema: &str) -> Result<i64, Error> {
    let schema = schema.to_string();
    conn.transaction::<_, Error, _>(async |conn| {
        let tables =
            diesel::sql_query("SELECT count(*) AS n FROM table_metadata WHERE schema_name = $1")
                .bind::<Text, _>(&schema)
                .get_result::<Count>(conn)
                .await?
                .n;
        diesel::sql_query(format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            quote_ident(&schema)
        ))
        .execute(conn)
        .await?;
        for statement in [
            "DELETE FROM entity_sync_status WHERE schema_name = $1",
            "DELETE FROM index_metadata WHERE table_metadata_id IN \
                     (SELECT id FROM table_metadata WHERE schema_name = $1)",
            "DELETE FROM column_metadata WHERE table_id IN \
                     (SELECT id FROM table_metadata WHERE schema_name = $1)",
            "DELETE FROM table_metadata WHERE schema_name = $1",
        ] {
            diesel::sql_query(statement)
                .bind::<Text, _>(&schema)
                .execute(conn)
                .await?;
        }
        Ok(tables)
    })
    .await
}
