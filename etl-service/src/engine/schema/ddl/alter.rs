//! Bringing an existing table to its plan (design/etl.md §5.2): revived,
//! columns renamed, voided, revived or added, and its watermarks reset
//! when the existing rows need a backfill.

use crate::engine::schema::ddl::columns::{
    ColumnSpec, Id, describe_indexes, fixed_spec, index_statement, indexed_columns,
    insert_column_metadata, planned_spec,
};
use crate::engine::schema::ddl::parking_name;
use crate::engine::schema::plan::{ColumnRef, ColumnUpdate, PlannedTable, TableEvolution};
use crate::error::Error;
use diesel::sql_types::{Array, Bool, Integer, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use service_kit::sql::{quote_ident, quote_qualified};

/// Brings an existing table to its plan: revived, columns renamed,
/// voided or revived (parked first, like tables), columns added; then, if
/// a column was added or revived or the table revived, its watermarks go
/// back to the start so this run's sync fills every existing row
/// (the backfill).
pub(super) async fn alter_table(
    conn: &mut AsyncPgConnection,
    schema: &str,
    table: &PlannedTable,
    evolution: &TableEvolution,
) -> Result<(), Error> {
    let table_id = evolution.table_id;
    let qualified = quote_qualified(schema, &table.name);
    if evolution.revived {
        diesel::sql_query(
            "UPDATE etl_service.table_metadata_ext SET is_voided = false WHERE table_metadata_id = $1",
        )
            .bind::<Integer, _>(table_id)
            .execute(conn)
            .await?;
    }
    update_columns(conn, &qualified, &evolution.column_updates).await?;
    if !evolution.additions.is_empty() {
        add_columns(
            conn,
            schema,
            &qualified,
            table,
            table_id,
            &evolution.additions,
        )
        .await?;
    }
    if evolution.needs_resync() {
        diesel::sql_query(
            "WITH ours AS (UPDATE etl_service.watermark SET last_sync_time = '1900-01-01 00:00:00+00' \
                 WHERE table_metadata_id = $1) \
             UPDATE public.entity_sync_status SET last_sync_time = '1900-01-01 00:00:00+00' \
             WHERE table_metadata_id = $1",
        )
        .bind::<Integer, _>(table_id)
        .execute(conn)
        .await?;
    }
    super::update_extension(conn, table_id, Some(&table.full_name)).await
}

/// Renames the columns whose name changes (all parked first, then each to
/// its new name) and brings their metadata to the updates.
async fn update_columns(
    conn: &mut AsyncPgConnection,
    qualified: &str,
    updates: &[ColumnUpdate],
) -> Result<(), Error> {
    let renamed: Vec<_> = updates
        .iter()
        .filter(|u| u.current_name != u.name)
        .collect();
    for u in &renamed {
        rename_column(conn, qualified, &u.current_name, &parking_name(u.id)).await?;
    }
    for u in &renamed {
        rename_column(conn, qualified, &parking_name(u.id), &u.name).await?;
    }
    if updates.is_empty() {
        return Ok(());
    }
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
        "WITH u AS (SELECT * FROM unnest($1, $2, $3, $4) AS u(id, name, base_name, voided)), \
         ext AS (UPDATE etl_service.column_metadata_ext x SET base_name = u.base_name \
                 FROM u WHERE x.column_metadata_id = u.id) \
         UPDATE public.column_metadata m SET name = u.name, concept_voided = u.voided \
         FROM u WHERE m.id = u.id",
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
    Ok(())
}

/// Adds the planned columns `additions` after the table's last, with their
/// metadata and indexes.
async fn add_columns(
    conn: &mut AsyncPgConnection,
    schema: &str,
    qualified: &str,
    table: &PlannedTable,
    table_id: i32,
    additions: &[ColumnRef],
) -> Result<(), Error> {
    let specs: Vec<ColumnSpec> = additions
        .iter()
        .filter_map(|r| match r {
            ColumnRef::Fixed(i) => table.fixed.get(*i).map(fixed_spec),
            ColumnRef::Question(i) => table.columns.get(*i).map(planned_spec),
        })
        .collect();
    let clauses: Vec<String> = specs
        .iter()
        .map(|c| format!("ADD COLUMN {} {}", quote_ident(&c.name), c.sql_type.sql()))
        .collect();
    diesel::sql_query(format!("ALTER TABLE {qualified} {}", clauses.join(", ")))
        .execute(conn)
        .await?;
    let next_order = diesel::sql_query(
        "SELECT coalesce(max(x.display_order) + 1, 0) AS id FROM public.column_metadata c \
         JOIN etl_service.column_metadata_ext x ON x.column_metadata_id = c.id WHERE c.table_id = $1",
    )
    .bind::<Integer, _>(table_id)
    .get_result::<Id>(conn)
    .await?
    .id;
    let columns = insert_column_metadata(conn, schema, table_id, &specs, next_order).await?;
    let indexed = indexed_columns(&specs, usize::try_from(next_order).unwrap_or_default());
    for (ordinal, column) in &indexed {
        let statement = index_statement(schema, &table.name, table_id, *ordinal, column);
        diesel::sql_query(statement).execute(conn).await?;
    }
    describe_indexes(conn, &table.name, table_id, &indexed, &columns).await?;
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
