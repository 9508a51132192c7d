//! Applying a schema diff: the DDL and the metadata rows that describe it,
//! all in one transaction, so the metadata always describes the schema as
//! it is (design/etl.md §5.2): tables created, renamed, revived or retired
//! (marked voided), columns added, renamed, voided or revived. The
//! reporting views are rebuilt and the readers' roles granted access in the
//! same transaction, so no reader ever sees a schema without its views.
//!
//! This module orders the steps and renames and retires tables; `create`
//! makes new tables, `alter` brings existing ones to their plan, and
//! `columns` holds the column and index metadata both write.

mod alter;
mod columns;
mod create;

use crate::engine::schema::plan::{PlannedTable, SchemaPlan, TableEvolution};
use crate::engine::schema::roles;
use crate::engine::schema::schema_diff::{TableChange, TableDiff};
use crate::engine::schema::views;
use crate::engine::source::Target;
use crate::error::Error;
use diesel::sql_types::{Array, Integer, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use service_kit::sql::{quote_ident, quote_qualified};

/// A planned table after the DDL: its metadata id and what happened to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppliedTable {
    pub table_id: i32,
    pub change: TableChange,
}

/// Drops a reporting schema with every table in it, and its metadata and
/// watermarks, in one transaction: the reference system's manual recovery
/// steps. The schema comes back empty in the same transaction, made as
/// Avni makes it ([`roles::schema_statements`]), so its owner (the
/// organisation's role) keeps it. Returns how many tables the metadata
/// described.
pub async fn drop_schema(conn: &mut AsyncPgConnection, target: &Target) -> Result<usize, Error> {
    let schema = target.schema_name.as_str();
    roles::ensure_roles(conn, &target.reader_roles()).await?;
    roles::ensure_member_of(conn, &target.db_user).await?;
    conn.transaction::<_, Error, _>(async |conn| {
        diesel::sql_query(format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            quote_ident(schema)
        ))
        .execute(conn)
        .await?;
        // Avni's tables reference each other without cascades: children
        // first. What etl_service keeps beside them goes with them.
        for statement in [
            "DELETE FROM public.entity_sync_status WHERE schema_name = $1 \
             OR table_metadata_id IN (SELECT id FROM public.table_metadata WHERE schema_name = $1)",
            "DELETE FROM public.index_metadata WHERE table_metadata_id IN \
             (SELECT id FROM public.table_metadata WHERE schema_name = $1)",
            "DELETE FROM public.column_metadata WHERE table_id IN \
             (SELECT id FROM public.table_metadata WHERE schema_name = $1)",
        ] {
            diesel::sql_query(statement)
                .bind::<Text, _>(schema)
                .execute(conn)
                .await?;
        }
        let tables = diesel::sql_query("DELETE FROM public.table_metadata WHERE schema_name = $1")
            .bind::<Text, _>(schema)
            .execute(conn)
            .await?;
        make_schema(conn, target).await?;
        Ok(tables)
    })
    .await
}

/// Creates the target's schema as Avni makes it if it is missing.
async fn make_schema(conn: &mut AsyncPgConnection, target: &Target) -> Result<(), Error> {
    execute_pipelined(
        conn,
        roles::schema_statements(&target.schema_name, &target.db_user, &target.reader_roles()),
    )
    .await
}

/// Sends `statements` together (PostgreSQL runs them one after another, in
/// the order sent): one round trip for all, as every run sends them even
/// when nothing changed. The first failure is the error.
async fn execute_pipelined(conn: &AsyncPgConnection, statements: Vec<String>) -> Result<(), Error> {
    let results = futures::future::join_all(statements.into_iter().map(|statement| {
        let mut c = conn;
        async move { diesel::sql_query(statement).execute(&mut c).await }
    }))
    .await;
    for result in results {
        result?;
    }
    Ok(())
}

/// Creates the schema as Avni makes it if needed, applies every diff and
/// its metadata, and grants the readers' roles access, in one transaction. Returns one entry
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
        make_schema(conn, target).await?;
        retire_tables(conn, plan).await?;
        rename_tables(conn, schema, plan, diffs).await?;
        let mut applied = Vec::with_capacity(diffs.len());
        for (table, diff) in plan.tables.iter().zip(diffs) {
            let table_id = match diff {
                TableDiff::Create => create::create_table(conn, schema, table).await?,
                TableDiff::Alter(evolution) => {
                    alter::alter_table(conn, schema, table, evolution, &target.member_ids())
                        .await?;
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
        execute_pipelined(conn, roles::grant_statements(schema, &readers)).await?;
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
        "UPDATE etl_service.table_metadata_ext SET is_voided = true, last_modified_date_time = now() \
         WHERE table_metadata_id = ANY($1)",
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
    diesel::sql_query("UPDATE public.table_metadata SET name = $2 WHERE id = $1")
        .bind::<Integer, _>(table_id)
        .bind::<Text, _>(name)
        .execute(conn)
        .await?;
    update_extension(conn, table_id, full_name).await
}

/// Records a table's name before shortening (kept when `None`) in its
/// `etl_service` row, made if the table had none (one avni-etl described).
async fn update_extension(
    conn: &mut AsyncPgConnection,
    table_id: i32,
    full_name: Option<&str>,
) -> Result<(), Error> {
    diesel::sql_query(
        "INSERT INTO etl_service.table_metadata_ext (table_metadata_id, full_name) VALUES ($1, $2) \
         ON CONFLICT (table_metadata_id) DO UPDATE \
         SET full_name = coalesce(EXCLUDED.full_name, table_metadata_ext.full_name), \
             last_modified_date_time = now()",
    )
    .bind::<Integer, _>(table_id)
    .bind::<Nullable<Text>, _>(full_name)
    .execute(conn)
    .await?;
    Ok(())
}
