//! Bringing an existing table to its plan (design/etl.md §5.2): revived,
//! columns renamed, voided, revived or added, and its watermarks reset
//! when the existing rows need a backfill. A table avni-etl built is
//! adopted in place: its columns described, its duplicates removed and a
//! primary key added, its `entity_sync_status` rows taken as watermarks.

use crate::engine::schema::ddl::columns::{
    self, ColumnSpec, Id, describe_indexes, fixed_spec, index_statement, indexed_columns,
    insert_column_metadata, planned_spec,
};
use crate::engine::schema::ddl::parking_name;
use crate::engine::schema::plan::{
    AdoptedColumn, ColumnRef, ColumnUpdate, PlannedTable, TableEvolution,
};
use crate::error::Error;
use diesel::sql_types::{Array, Bool, Integer, Nullable, Text};
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
    members: &[i32],
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
    if !evolution.backfills.is_empty() {
        let sets: Vec<String> = evolution
            .backfills
            .iter()
            .map(|(_, name, expr)| format!("{} = {expr}", quote_ident(name)))
            .collect();
        diesel::sql_query(format!("UPDATE {qualified} t SET {}", sets.join(", ")))
            .execute(conn)
            .await?;
    }
    if evolution.needs_key {
        add_key(conn, &qualified, table, table_id).await?;
    }
    if evolution.adopted {
        adopt_watermarks(conn, table_id, members).await?;
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

/// Gives a table avni-etl built (no key: its rows are appended versions,
/// and copies with equal change times stay) the primary key the upsert
/// needs: of each key's rows the latest version stays (the last written
/// of equal ones), then the key is added.
async fn add_key(
    conn: &mut AsyncPgConnection,
    qualified: &str,
    table: &PlannedTable,
    table_id: i32,
) -> Result<(), Error> {
    let keys = table.quoted_keys();
    let keyless = diesel::sql_query(format!(
        "SELECT count(*)::integer AS id FROM {qualified} WHERE {}",
        keys.iter()
            .map(|k| format!("{k} IS NULL"))
            .collect::<Vec<_>>()
            .join(" OR ")
    ))
    .get_result::<Id>(conn)
    .await?
    .id;
    if keyless > 0 {
        return Err(Error::FailedPrecondition(format!(
            "table {qualified} (built by avni-etl, no primary key) has {keyless} row(s) with no {}; \
             they cannot be kept under the primary key the ETL needs, and nothing was changed. \
             Delete them (DELETE FROM {qualified} WHERE {} IS NULL) and run again",
            keys.join(", "),
            keys.join(" IS NULL OR ")
        )));
    }
    let same_key: Vec<String> = keys.iter().map(|k| format!("a.{k} = b.{k}")).collect();
    let changed = "coalesce(a.last_modified_date_time, '-infinity') \
                   < coalesce(b.last_modified_date_time, '-infinity')";
    let same_time = "a.last_modified_date_time IS NOT DISTINCT FROM b.last_modified_date_time \
                     AND a.ctid < b.ctid";
    let removed = diesel::sql_query(format!(
        "DELETE FROM {qualified} a USING {qualified} b WHERE {} AND ({changed} OR ({same_time}))",
        same_key.join(" AND ")
    ))
    .execute(conn)
    .await?;
    let name = columns::index_name(&table.name, "pkey", &format!("#{table_id}"));
    diesel::sql_query(format!(
        "ALTER TABLE {qualified} ADD CONSTRAINT {} PRIMARY KEY ({})",
        quote_ident(&name),
        keys.join(", ")
    ))
    .execute(conn)
    .await?;
    tracing::info!(
        table = %table.name,
        duplicates_removed = removed,
        "a table without a primary key (built by avni-etl) got one"
    );
    Ok(())
}

/// Makes avni-etl's `entity_sync_status` rows of an adopted table (one per
/// member's db_user) the members' watermarks, so the table goes on from
/// where avni-etl left it and Avni's row keeps being the one updated.
async fn adopt_watermarks(
    conn: &mut AsyncPgConnection,
    table_id: i32,
    members: &[i32],
) -> Result<(), Error> {
    diesel::sql_query(
        "INSERT INTO etl_service.watermark \
             (entity_sync_status_id, table_metadata_id, organisation_id, last_sync_time) \
         SELECT DISTINCT ON (o.id) s.id, s.table_metadata_id, o.id, \
                coalesce(s.last_sync_time, '1900-01-01 00:00:00+00') \
         FROM public.entity_sync_status s JOIN public.organisation o ON o.db_user = s.db_user \
         WHERE s.table_metadata_id = $1 AND o.id = ANY($2) \
         ORDER BY o.id, s.last_sync_time DESC NULLS LAST, s.id DESC \
         ON CONFLICT DO NOTHING",
    )
    .bind::<Integer, _>(table_id)
    .bind::<Array<Integer>, _>(members)
    .execute(conn)
    .await?;
    Ok(())
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
    describe_adopted(conn, updates).await
}

/// Writes the service's row (`etl_service.column_metadata_ext`) for each
/// column avni-etl made that a planned column continues: its type as it
/// stands, its identity and base name; its order is its place in the
/// table.
async fn describe_adopted(
    conn: &mut AsyncPgConnection,
    updates: &[ColumnUpdate],
) -> Result<(), Error> {
    let adopted: Vec<(&ColumnUpdate, &AdoptedColumn)> = updates
        .iter()
        .filter_map(|u| u.adopted.as_ref().map(|a| (u, a)))
        .collect();
    if adopted.is_empty() {
        return Ok(());
    }
    diesel::sql_query(
        "INSERT INTO etl_service.column_metadata_ext \
             (column_metadata_id, sql_type, concept_type, display_order, source_key, base_name) \
         SELECT u.id, u.sql_type, u.concept_type, u.ord::integer, u.source_key, u.base_name \
         FROM unnest($1, $2, $3, $4, $5) WITH ORDINALITY AS u(id, sql_type, concept_type, source_key, base_name, ord) \
         ON CONFLICT (column_metadata_id) DO NOTHING",
    )
    .bind::<Array<Integer>, _>(adopted.iter().map(|(u, _)| u.id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(adopted.iter().map(|(_, a)| a.sql_type.clone()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(
        adopted
            .iter()
            .map(|(_, a)| a.concept_type.clone())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(adopted.iter().map(|(_, a)| a.key.clone()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(adopted.iter().map(|(u, _)| u.base_name.clone()).collect::<Vec<_>>())
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
