//! The column and index metadata both a new and an altered table write:
//! each column's [`ColumnSpec`] (its `column_metadata` row), the names of
//! indexes and constraints, and the statements that create and describe
//! the indexes.

use crate::engine::schema::layout::{ColumnType, FixedColumn};
use crate::engine::schema::naming;
use crate::engine::schema::plan::{ColumnSource, PlannedColumn, PlannedTable, fixed_key};
use crate::error::Error;
use diesel::QueryableByName;
use diesel::sql_types::{Array, Integer, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use service_kit::sql::{quote_ident, quote_qualified};

/// One column to describe in `column_metadata`.
pub(super) struct ColumnSpec {
    pub(super) name: String,
    pub(super) sql_type: ColumnType,
    concept_uuid: Option<String>,
    concept_type: Option<String>,
    parent_concept_uuid: Option<String>,
    multi_select: bool,
    source_key: String,
    base_name: String,
    indexed: bool,
}

/// A concept data type in avni-etl's `column_metadata.concept_type`
/// vocabulary: a coded question is a single or a multiple select there.
fn avni_concept_type(data_type: &str, multi_select: bool) -> &str {
    match (data_type, multi_select) {
        ("Coded", true) => "MultiSelect",
        ("Coded", false) => "SingleSelect",
        (other, _) => other,
    }
}

#[derive(QueryableByName)]
pub(super) struct Id {
    #[diesel(sql_type = Integer)]
    pub(super) id: i32,
}

#[derive(QueryableByName)]
pub(super) struct NamedId {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Text)]
    name: String,
}

pub(super) fn column_specs(table: &PlannedTable) -> Vec<ColumnSpec> {
    let fixed = table.fixed.iter().map(fixed_spec);
    let planned = table.columns.iter().map(planned_spec);
    fixed.chain(planned).collect()
}

pub(super) fn fixed_spec(c: &FixedColumn) -> ColumnSpec {
    ColumnSpec {
        name: c.name.to_string(),
        sql_type: c.sql_type,
        concept_uuid: None,
        concept_type: None,
        parent_concept_uuid: None,
        multi_select: false,
        source_key: fixed_key(c.name),
        base_name: c.name.to_string(),
        indexed: c.indexed,
    }
}

pub(super) fn planned_spec(c: &PlannedColumn) -> ColumnSpec {
    let (concept_uuid, concept_type, parent, multi_select) = match &c.source {
        ColumnSource::Concept {
            concept_uuid,
            data_type,
            parent_concept_uuid,
            multi_select,
            ..
        } => (
            Some(concept_uuid.clone()),
            Some(data_type.clone()),
            parent_concept_uuid.clone(),
            *multi_select,
        ),
        ColumnSource::AddressLevel { .. } => (None, None, None, false),
    };
    ColumnSpec {
        name: c.name.clone(),
        sql_type: c.sql_type,
        concept_uuid,
        concept_type,
        parent_concept_uuid: parent,
        multi_select,
        source_key: c.key(),
        base_name: c.base_name.clone(),
        indexed: false,
    }
}

/// Index and constraint names share the schema's namespace with tables.
/// Table names never contain a space, and these always do, and they carry
/// a tag made of the table's metadata id (and the column's position), so
/// they can never clash with a table or with each other, even after a table
/// is renamed or when the table's name uses up the 63 bytes.
pub(super) fn index_name(table: &str, what: &str, tag: &str) -> String {
    let suffix = format!(" {tag}");
    let base = format!("{table} {what}");
    format!(
        "{}{suffix}",
        naming::cut_to_bytes(&base, naming::MAX_IDENTIFIER_BYTES - suffix.len())
    )
}

/// The (ordinal, name) of each column of `specs` that gets an index, the
/// first of `specs` being the table's column number `first`.
pub(super) fn indexed_columns(specs: &[ColumnSpec], first: usize) -> Vec<(usize, &str)> {
    specs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.indexed)
        .map(|(offset, s)| (first + offset, s.name.as_str()))
        .collect()
}

/// The name of an index on one column; `ordinal` tells the table's
/// indexes apart.
fn column_index_name(table: &str, table_id: i32, ordinal: usize, column: &str) -> String {
    index_name(table, column, &format!("#{table_id}.{ordinal}"))
}

/// The `CREATE INDEX` statement of an index on one column.
pub(super) fn index_statement(
    schema: &str,
    table: &str,
    table_id: i32,
    ordinal: usize,
    column: &str,
) -> String {
    format!(
        "CREATE INDEX {} ON {} ({})",
        quote_ident(&column_index_name(table, table_id, ordinal, column)),
        quote_qualified(schema, table),
        quote_ident(column)
    )
}

/// Records the indexes of `indexed` (ordinal, column) in `index_metadata`.
pub(super) async fn describe_indexes(
    conn: &mut AsyncPgConnection,
    table: &str,
    table_id: i32,
    indexed: &[(usize, &str)],
    columns: &[NamedId],
) -> Result<(), Error> {
    if indexed.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = indexed
        .iter()
        .map(|(ordinal, column)| column_index_name(table, table_id, *ordinal, column))
        .collect();
    let column_ids: Vec<Option<i32>> = indexed
        .iter()
        .map(|(_, column)| columns.iter().find(|c| c.name == *column).map(|c| c.id))
        .collect();
    diesel::sql_query(
        "INSERT INTO public.index_metadata (table_metadata_id, column_id, name) \
         SELECT $1, i.column_id, i.name FROM unnest($2, $3) AS i(column_id, name)",
    )
    .bind::<Integer, _>(table_id)
    .bind::<Array<Nullable<Integer>>, _>(column_ids)
    .bind::<Array<Text>, _>(names)
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn insert_column_metadata(
    conn: &mut AsyncPgConnection,
    schema: &str,
    table_id: i32,
    specs: &[ColumnSpec],
    first_order: i32,
) -> Result<Vec<NamedId>, Error> {
    let names: Vec<String> = specs.iter().map(|c| c.name.clone()).collect();
    let types: Vec<String> = specs.iter().map(|c| c.sql_type.sql().to_string()).collect();
    let concepts: Vec<Option<String>> = specs.iter().map(|c| c.concept_uuid.clone()).collect();
    let concept_types: Vec<Option<String>> = specs.iter().map(|c| c.concept_type.clone()).collect();
    let parents: Vec<Option<String>> = specs
        .iter()
        .map(|c| c.parent_concept_uuid.clone())
        .collect();
    let keys: Vec<String> = specs.iter().map(|c| c.source_key.clone()).collect();
    let bases: Vec<String> = specs.iter().map(|c| c.base_name.clone()).collect();
    let orders: Vec<i32> = (0..specs.len())
        .map(|i| first_order + i32::try_from(i).unwrap_or(i32::MAX))
        .collect();
    let avni_types: Vec<&str> = specs.iter().map(|c| c.sql_type.avni_name()).collect();
    let avni_concept_types: Vec<Option<&str>> = specs
        .iter()
        .map(|c| {
            c.concept_type
                .as_deref()
                .map(|t| avni_concept_type(t, c.multi_select))
        })
        .collect();
    // Avni's row in its vocabulary; the exact type, order and identity
    // beside it in etl_service.
    let rows = diesel::sql_query(
        "WITH c AS (SELECT * FROM unnest($3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 AS c(name, type, concept_uuid, concept_type, parent_concept_uuid, ord, source_key, \
                      base_name, avni_type, avni_concept_type)), \
         m AS (INSERT INTO public.column_metadata (table_id, name, type, concept_uuid, concept_type, \
                   parent_concept_uuid, schema_name) \
               SELECT $1, c.name, c.avni_type, c.concept_uuid, c.avni_concept_type, \
                   c.parent_concept_uuid, $2 FROM c ORDER BY c.ord \
               RETURNING id, name), \
         x AS (INSERT INTO etl_service.column_metadata_ext (column_metadata_id, sql_type, concept_type, \
                   display_order, source_key, base_name) \
               SELECT m.id, c.type, c.concept_type, c.ord, c.source_key, c.base_name \
               FROM m JOIN c ON c.name = m.name) \
         SELECT id, name FROM m",
    )
    .bind::<Integer, _>(table_id)
    .bind::<Text, _>(schema)
    .bind::<Array<Text>, _>(names)
    .bind::<Array<Text>, _>(types)
    .bind::<Array<Nullable<Text>>, _>(concepts)
    .bind::<Array<Nullable<Text>>, _>(concept_types)
    .bind::<Array<Nullable<Text>>, _>(parents)
    .bind::<Array<Integer>, _>(orders)
    .bind::<Array<Text>, _>(keys)
    .bind::<Array<Text>, _>(bases)
    .bind::<Array<Text>, _>(avni_types)
    .bind::<Array<Nullable<Text>>, _>(avni_concept_types)
    .load::<NamedId>(conn)
    .await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_fit_and_contain_a_space() {
        let long = "x".repeat(80);
        let a = index_name(&long, "individual_id", "#12345.2");
        let b = index_name(&long, "organisation_id", "#12345.9");
        assert!(a.len() <= naming::MAX_IDENTIFIER_BYTES);
        assert!(a.ends_with(" #12345.2"));
        assert_ne!(a, b);
        assert!(a.contains(' '));
        assert_eq!(index_name("person", "pkey", "#7"), "person pkey #7");
    }
}
