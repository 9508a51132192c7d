//! Creating a planned table that does not exist yet: its `table_metadata`
//! row, the table with its primary key and indexes in one round trip, and
//! its column and index metadata.

use crate::engine::schema::ddl::columns::{
    ColumnSpec, Id, column_specs, describe_indexes, index_name, index_statement, indexed_columns,
    insert_column_metadata,
};
use crate::engine::schema::plan::PlannedTable;
use crate::error::Error;
use diesel::sql_types::{Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use service_kit::sql::{quote_ident, quote_qualified};

/// Room left in each page for the next version of its rows: an incremental
/// run rewrites the rows that changed, and a new version that fits in its
/// page is a HOT update, which writes no index entries (keys and parent ids
/// do not change). That is most of the work an incremental run saves.
const FILLFACTOR: u32 = 80;

/// Creates a table the schema does not have yet, with its metadata;
/// returns its metadata id.
pub(super) async fn create_table(
    conn: &mut AsyncPgConnection,
    schema: &str,
    table: &PlannedTable,
) -> Result<i32, Error> {
    let id = insert_table_metadata(conn, schema, table).await?;
    let specs = column_specs(table);
    let indexed = indexed_columns(&specs, 0);
    // One round trip for the table and its indexes: a first build creates
    // dozens of tables.
    conn.batch_execute(&create_statements(schema, table, id, &specs, &indexed))
        .await?;
    let columns = insert_column_metadata(conn, schema, id, &specs, 0).await?;
    describe_indexes(conn, &table.name, id, &indexed, &columns).await?;
    Ok(id)
}

/// Describes a new table in `table_metadata` (Avni's row) and
/// `etl_service.table_metadata_ext` (the service's); returns its id.
async fn insert_table_metadata(
    conn: &mut AsyncPgConnection,
    schema: &str,
    table: &PlannedTable,
) -> Result<i32, Error> {
    // As avni-etl describes a membership table: its group's subject type
    // as group_subject_type_uuid, no subject_type_uuid.
    let (subject_type, group_subject_type) = match table.identity.member_subject_type_uuid {
        Some(_) => (None, table.identity.subject_type_uuid.as_ref()),
        None => (table.identity.subject_type_uuid.as_ref(), None),
    };
    let id = diesel::sql_query(
        "WITH t AS (INSERT INTO public.table_metadata (name, type, schema_name, subject_type_uuid, \
                 program_uuid, encounter_type_uuid, form_uuid, repeatable_question_group_concept_uuid, \
                 group_subject_type_uuid, member_subject_type_uuid) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $11, $12) RETURNING id) \
         INSERT INTO etl_service.table_metadata_ext (table_metadata_id, parent_table_type, full_name) \
         SELECT id, $9, $10 FROM t RETURNING table_metadata_id AS id",
    )
    .bind::<Text, _>(&table.name)
    .bind::<Text, _>(table.identity.kind.metadata_type(&table.subject_kind))
    .bind::<Text, _>(schema)
    .bind::<Nullable<Text>, _>(subject_type)
    .bind::<Nullable<Text>, _>(&table.identity.program_uuid)
    .bind::<Nullable<Text>, _>(&table.identity.encounter_type_uuid)
    .bind::<Nullable<Text>, _>(<[String]>::first(&table.form_uuids))
    .bind::<Nullable<Text>, _>(&table.identity.group_concept_uuid)
    .bind::<Nullable<Text>, _>(
        table
            .identity
            .owner_kind
            .map(|k| k.metadata_type(&table.subject_kind)),
    )
    .bind::<Text, _>(&table.full_name)
    .bind::<Nullable<Text>, _>(group_subject_type)
    .bind::<Nullable<Text>, _>(&table.identity.member_subject_type_uuid)
    .get_result::<Id>(conn)
    .await?
    .id;
    Ok(id)
}

/// The `CREATE TABLE` of a new table (its primary key named after its
/// metadata id `id`) followed by the `CREATE INDEX` of each of `indexed`.
fn create_statements(
    schema: &str,
    table: &PlannedTable,
    id: i32,
    specs: &[ColumnSpec],
    indexed: &[(usize, &str)],
) -> String {
    let mut definitions: Vec<String> = specs
        .iter()
        .map(|c| format!("{} {}", quote_ident(&c.name), c.sql_type.sql()))
        .collect();
    let keys = table.quoted_keys();
    definitions.push(format!(
        "CONSTRAINT {} PRIMARY KEY ({})",
        quote_ident(&index_name(&table.name, "pkey", &format!("#{id}"))),
        keys.join(", ")
    ));
    let qualified = quote_qualified(schema, &table.name);
    let mut ddl = vec![format!(
        "CREATE TABLE {qualified} ({}) WITH (fillfactor = {FILLFACTOR})",
        definitions.join(", ")
    )];
    ddl.extend(
        indexed
            .iter()
            .map(|(ordinal, column)| index_statement(schema, &table.name, id, *ordinal, column)),
    );
    ddl.join(";\n")
}
