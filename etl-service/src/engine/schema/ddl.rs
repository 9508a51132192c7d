//! Applying a schema diff: the DDL and the metadata rows that describe it,
//! all in one transaction, so the metadata always describes the schema as
//! it is (design/etl.md §5.2): tables created, renamed, revived or retired
//! (marked voided), columns added, renamed, voided or revived. The
//! reporting views are rebuilt and the readers' roles granted access in the
//! same transaction, so no reader ever sees a schema without its views.

use crate::engine::schema::layout::ColumnType;
use crate::engine::schema::naming;
use crate::engine::schema::plan::{
    ColumnRef, ColumnSource, PlannedTable, SchemaPlan, TableEvolution, fixed_key,
};
use crate::engine::schema::roles;
use crate::engine::schema::schema_diff::{TableChange, TableDiff};
use crate::engine::schema::views;
use crate::engine::source::Target;
use crate::error::Error;
use diesel::QueryableByName;
use diesel::sql_types::{Array, Bool, Integer, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use service_kit::sql::{quote_ident, quote_qualified};

/// A planned table after the DDL: its metadata id and what happened to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppliedTable {
    pub table_id: i32,
    pub change: TableChange,
}

/// Drops a reporting schema with every table in it, and its metadata and
/// watermarks, in one transaction: the reference system's manual recovery
/// steps. Returns how many tables the metadata described.
pub async fn drop_schema(conn: &mut AsyncPgConnection, schema: &str) -> Result<usize, Error> {
    conn.transaction::<_, Error, _>(async |conn| {
        diesel::sql_query(format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            quote_ident(schema)
        ))
        .execute(conn)
        .await?;
        // Column, index and sync-status rows go with their table's row
        // (ON DELETE CASCADE).
        let tables = diesel::sql_query("DELETE FROM public.table_metadata WHERE schema_name = $1")
            .bind::<Text, _>(schema)
            .execute(conn)
            .await?;
        Ok(tables)
    })
    .await
}

/// One column to describe in `column_metadata`.
struct ColumnSpec {
    name: String,
    sql_type: ColumnType,
    concept_uuid: Option<String>,
    concept_type: Option<String>,
    parent_concept_uuid: Option<String>,
    source_key: String,
    base_name: String,
    indexed: bool,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = Integer)]
    id: i32,
}

#[derive(QueryableByName)]
struct NamedId {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Text)]
    name: String,
}

/// Creates the schema if needed, applies every diff and its metadata, and
/// grants the readers' roles access, in one transaction. Returns one entry
/// per planned table, in plan order.
pub async fn apply(
    conn: &mut AsyncPgConnection,
    target: &Target,
    plan: &SchemaPlan,
    diffs: &[TableDiff],
) -> Result<Vec<AppliedTable>, Error> {
    let schema = target.schema_name.as_str();
    let readers = target.reader_roles();
    conn.transaction::<_, Error, _>(async |conn| {
        let q_schema = quote_ident(schema);
        diesel::sql_query(format!("CREATE SCHEMA IF NOT EXISTS {q_schema}"))
            .execute(conn)
            .await?;
        diesel::sql_query(format!("REVOKE ALL ON SCHEMA {q_schema} FROM PUBLIC"))
            .execute(conn)
            .await?;
        retire_tables(conn, plan).await?;
        rename_tables(conn, schema, plan, diffs).await?;
        let mut applied = Vec::with_capacity(diffs.len());
        for (table, diff) in plan.tables.iter().zip(diffs) {
            let table_id = match diff {
                TableDiff::Create => create_table(conn, schema, table).await?,
                TableDiff::Alter(evolution) => {
                    alter_table(conn, schema, table, evolution).await?;
                    evolution.table_id
                }
                TableDiff::Unchanged { table_id } => *table_id,
            };
            applied.push(AppliedTable {
                table_id,
                change: diff.change(),
            });
        }
        views::recreate(conn, schema, plan).await?;
        for statement in roles::grant_statements(schema, &readers) {
            diesel::sql_query(statement).execute(conn).await?;
        }
        Ok(applied)
    })
    .await
}

/// A name no table, column or index of ours ever has (ours never contain
/// `"`), unique per metadata id: where a table or column waits while the
/// names it and others trade are freed, so renames that swap or chain
/// names never collide half-way.
fn parking_name(id: i32) -> String {
    format!("\"etl renaming {id}")
}

/// Marks tables nothing plans any more as voided: kept, no longer synced.
async fn retire_tables(conn: &mut AsyncPgConnection, plan: &SchemaPlan) -> Result<(), Error> {
    if plan.retired.is_empty() {
        return Ok(());
    }
    let ids: Vec<i32> = plan.retired.iter().map(|t| t.table_id).collect();
    diesel::sql_query(
        "UPDATE public.table_metadata SET is_voided = true, last_modified_date_time = now() \
         WHERE id = ANY($1)",
    )
    .bind::<Array<Integer>, _>(ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// Renames the tables whose entities were renamed, first all to parking
/// names, then each to its new name, table and metadata alike.
async fn rename_tables(
    conn: &mut AsyncPgConnection,
    schema: &str,
    plan: &SchemaPlan,
    diffs: &[TableDiff],
) -> Result<(), Error> {
    let renamed: Vec<(&PlannedTable, &TableEvolution)> = plan
        .tables
        .iter()
        .zip(diffs)
        .filter_map(|(t, d)| match d {
            TableDiff::Alter(e) if e.current_name != t.name => Some((t, e)),
            _ => None,
        })
        .collect();
    for (_, e) in &renamed {
        let parked = parking_name(e.table_id);
        rename_table(conn, schema, &e.current_name, &parked).await?;
        set_table_name(conn, e.table_id, &parked, None).await?;
    }
    for (t, e) in &renamed {
        rename_table(conn, schema, &parking_name(e.table_id), &t.name).await?;
        set_table_name(conn, e.table_id, &t.name, Some(&t.full_name)).await?;
    }
    Ok(())
}

async fn rename_table(
    conn: &mut AsyncPgConnection,
    schema: &str,
    from: &str,
    to: &str,
) -> Result<(), Error> {
    diesel::sql_query(format!(
        "ALTER TABLE {} RENAME TO {}",
        quote_qualified(schema, from),
        quote_ident(to)
    ))
    .execute(conn)
    .await?;
    Ok(())
}

async fn set_table_name(
    conn: &mut AsyncPgConnection,
    table_id: i32,
    name: &str,
    full_name: Option<&str>,
) -> Result<(), Error> {
    diesel::sql_query(
        "UPDATE public.table_metadata SET name = $2, full_name = coalesce($3, full_name), \
             last_modified_date_time = now() WHERE id = $1",
    )
    .bind::<Integer, _>(table_id)
    .bind::<Text, _>(name)
    .bind::<Nullable<Text>, _>(full_name)
    .execute(conn)
    .await?;
    Ok(())
}

fn column_specs(table: &PlannedTable) -> Vec<ColumnSpec> {
    let fixed = table.fixed.iter().map(fixed_spec);
    let planned = table.columns.iter().map(planned_spec);
    fixed.chain(planned).collect()
}

fn fixed_spec(c: &crate::engine::schema::layout::FixedColumn) -> ColumnSpec {
    ColumnSpec {
        name: c.name.to_string(),
        sql_type: c.sql_type,
        concept_uuid: None,
        concept_type: None,
        parent_concept_uuid: None,
        source_key: fixed_key(c.name),
        base_name: c.name.to_string(),
        indexed: c.indexed,
    }
}

fn planned_spec(c: &crate::engine::schema::plan::PlannedColumn) -> ColumnSpec {
    let (concept_uuid, concept_type, parent) = match &c.source {
        ColumnSource::Concept {
            concept_uuid,
            data_type,
            parent_concept_uuid,
            ..
        } => (
            Some(concept_uuid.clone()),
            Some(data_type.clone()),
            parent_concept_uuid.clone(),
        ),
        ColumnSource::AddressLevel { .. } => (None, None, None),
    };
    ColumnSpec {
        name: c.name.clone(),
        sql_type: c.sql_type,
        concept_uuid,
        concept_type,
        parent_concept_uuid: parent,
        source_key: c.key(),
        base_name: c.base_name.clone(),
        indexed: false,
    }
}

/// Room left in each page for the next version of its rows: an incremental
/// run rewrites the rows that changed, and a new version that fits in its
/// page is a HOT update, which writes no index entries (keys and parent ids
/// do not change). That is most of the work an incremental run saves.
const FILLFACTOR: u32 = 80;

/// Index and constraint names share the schema's namespace with tables.
/// Table names never contain a space, and these always do, and they carry
/// a tag made of the table's metadata id (and the column's position), so
/// they can never clash with a table or with each other, even after a table
/// is renamed or when the table's name uses up the 63 bytes.
fn index_name(table: &str, what: &str, tag: &str) -> String {
    let suffix = format!(" {tag}");
    let base = format!("{table} {what}");
    format!(
        "{}{suffix}",
        naming::cut_to_bytes(&base, naming::MAX_IDENTIFIER_BYTES - suffix.len())
    )
}

async fn create_table(
    conn: &mut AsyncPgConnection,
    schema: &str,
    table: &PlannedTable,
) -> Result<i32, Error> {
    let id = diesel::sql_query(
        "INSERT INTO public.table_metadata (name, type, schema_name, subject_type_uuid, program_uuid, \
             encounter_type_uuid, form_uuid, repeatable_question_group_concept_uuid, \
             parent_table_type, full_name) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind::<Text, _>(&table.name)
    .bind::<Text, _>(table.identity.kind.metadata_type(&table.subject_kind))
    .bind::<Text, _>(schema)
    .bind::<Nullable<Text>, _>(&table.identity.subject_type_uuid)
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
    .get_result::<Id>(conn)
    .await?
    .id;

    let specs = column_specs(table);
    let mut definitions: Vec<String> = specs
        .iter()
        .map(|c| format!("{} {}", quote_ident(&c.name), c.sql_type.sql()))
        .collect();
    let keys: Vec<String> = table
        .fixed
        .iter()
        .filter(|c| c.key)
        .map(|c| quote_ident(c.name))
        .collect();
    definitions.push(format!(
        "CONSTRAINT {} PRIMARY KEY ({})",
        quote_ident(&index_name(&table.name, "pkey", &format!("#{id}"))),
        keys.join(", ")
    ));
    let qualified = quote_qualified(schema, &table.name);
    let indexed: Vec<(usize, &str)> = specs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.indexed)
        .map(|(ordinal, s)| (ordinal, s.name.as_str()))
        .collect();
    // One round trip for the table and its indexes: a first build creates
    // dozens of tables.
    let mut ddl = vec![format!(
        "CREATE TABLE {qualified} ({}) WITH (fillfactor = {FILLFACTOR})",
        definitions.join(", ")
    )];
    ddl.extend(
        indexed
            .iter()
            .map(|(ordinal, column)| index_statement(schema, &table.name, id, *ordinal, column).1),
    );
    conn.batch_execute(&ddl.join(";\n")).await?;

    let columns = insert_column_metadata(conn, schema, id, &specs, 0).await?;
    describe_indexes(conn, &table.name, id, &indexed, &columns).await?;
    Ok(id)
}

/// The name and `CREATE INDEX` statement of an index on one column;
/// `ordinal` tells the table's indexes apart.
fn index_statement(
    schema: &str,
    table: &str,
    table_id: i32,
    ordinal: usize,
    column: &str,
) -> (String, String) {
    let name = index_name(table, column, &format!("#{table_id}.{ordinal}"));
    let statement = format!(
        "CREATE INDEX {} ON {} ({})",
        quote_ident(&name),
        quote_qualified(schema, table),
        quote_ident(column)
    );
    (name, statement)
}

/// Records the indexes of `indexed` (ordinal, column) in `index_metadata`.
async fn describe_indexes(
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
        .map(|(ordinal, column)| index_name(table, column, &format!("#{table_id}.{ordinal}")))
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

async fn insert_column_metadata(
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
    let rows = diesel::sql_query(
        "INSERT INTO public.column_metadata (table_id, name, type, concept_uuid, concept_type, \
             parent_concept_uuid, schema_name, display_order, source_key, base_name) \
         SELECT $1, c.name, c.type, c.concept_uuid, c.concept_type, c.parent_concept_uuid, $2, c.ord, \
             c.source_key, c.base_name \
         FROM unnest($3, $4, $5, $6, $7, $8, $9, $10) \
             AS c(name, type, concept_uuid, concept_type, parent_concept_uuid, ord, source_key, base_name) \
         RETURNING id, name",
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
    .load::<NamedId>(conn)
    .await?;
    Ok(rows)
}

/// Brings an existing table to its plan: revived, columns renamed,
/// voided or revived (parked first, like tables), columns added; then, if
/// a column was added or revived or the table revived, its watermarks go
/// back to the start so this run's sync fills every existing row
/// (the backfill).
async fn alter_table(
    conn: &mut AsyncPgConnection,
    schema: &str,
    table: &PlannedTable,
    evolution: &TableEvolution,
) -> Result<(), Error> {
    let table_id = evolution.table_id;
    let qualified = quote_qualified(schema, &table.name);
    if evolution.revived {
        diesel::sql_query("UPDATE public.table_metadata SET is_voided = false WHERE id = $1")
            .bind::<Integer, _>(table_id)
            .execute(conn)
            .await?;
    }

    let updates = &evolution.column_updates;
    let renamed: Vec<_> = updates
        .iter()
        .filter(|u| u.current_name != u.name)
        .collect();
    for u in &renamed {
        rename_column(conn, &qualified, &u.current_name, &parking_name(u.id)).await?;
    }
    for u in &renamed {
        rename_column(conn, &qualified, &parking_name(u.id), &u.name).await?;
    }
    if !updates.is_empty() {
        // Parked first, as the columns were: names may be traded.
        let ids: Vec<i32> = updates.iter().map(|u| u.id).collect();
        diesel::sql_query(
            "UPDATE public.column_metadata m SET name = u.name \
             FROM unnest($1, $2) AS u(id, name) WHERE m.id = u.id",
        )
        .bind::<Array<Integer>, _>(&ids)
        .bind::<Array<Text>, _>(ids.iter().map(|&id| parking_name(id)).collect::<Vec<_>>())
        .execute(conn)
        .await?;
        diesel::sql_query(
            "UPDATE public.column_metadata m SET name = u.name, base_name = u.base_name, \
                 concept_voided = u.voided \
             FROM unnest($1, $2, $3, $4) AS u(id, name, base_name, voided) WHERE m.id = u.id",
        )
        .bind::<Array<Integer>, _>(ids)
        .bind::<Array<Text>, _>(updates.iter().map(|u| u.name.clone()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(
            updates
                .iter()
                .map(|u| u.base_name.clone())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Bool>, _>(updates.iter().map(|u| u.voided).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    }

    if !evolution.additions.is_empty() {
        let specs: Vec<ColumnSpec> = evolution
            .additions
            .iter()
            .filter_map(|r| match r {
                ColumnRef::Fixed(i) => table.fixed.get(*i).map(fixed_spec),
                ColumnRef::Question(i) => table.columns.get(*i).map(planned_spec),
            })
            .collect();
        let additions: Vec<String> = specs
            .iter()
            .map(|c| format!("ADD COLUMN {} {}", quote_ident(&c.name), c.sql_type.sql()))
            .collect();
        diesel::sql_query(format!("ALTER TABLE {qualified} {}", additions.join(", ")))
            .execute(conn)
            .await?;
        let next_order = diesel::sql_query(
            "SELECT coalesce(max(display_order) + 1, 0) AS id FROM public.column_metadata WHERE table_id = $1",
        )
        .bind::<Integer, _>(table_id)
        .get_result::<Id>(conn)
        .await?
        .id;
        let columns = insert_column_metadata(conn, schema, table_id, &specs, next_order).await?;
        let first = usize::try_from(next_order).unwrap_or_default();
        let indexed: Vec<(usize, &str)> = specs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.indexed)
            .map(|(offset, s)| (first + offset, s.name.as_str()))
            .collect();
        for (ordinal, column) in &indexed {
            let (_, statement) = index_statement(schema, &table.name, table_id, *ordinal, column);
            diesel::sql_query(statement).execute(conn).await?;
        }
        describe_indexes(conn, &table.name, table_id, &indexed, &columns).await?;
    }

    if evolution.needs_resync() {
        diesel::sql_query(
            "UPDATE public.entity_sync_status SET last_sync_time = '1900-01-01 00:00:00+00' \
             WHERE table_metadata_id = $1",
        )
        .bind::<Integer, _>(table_id)
        .execute(conn)
        .await?;
    }
    diesel::sql_query(
        "UPDATE public.table_metadata SET full_name = $2, last_modified_date_time = now() WHERE id = $1",
    )
    .bind::<Integer, _>(table_id)
    .bind::<Text, _>(&table.full_name)
    .execute(conn)
    .await?;
    Ok(())
}

async fn rename_column(
    conn: &mut AsyncPgConnection,
    qualified_table: &str,
    from: &str,
    to: &str,
) -> Result<(), Error> {
    diesel::sql_query(format!(
        "ALTER TABLE {qualified_table} RENAME COLUMN {} TO {}",
        quote_ident(from),
        quote_ident(to)
    ))
    .execute(conn)
    .await?;
    Ok(())
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
