//! The metadata tables (design/etl.md §4) as they stand: which reporting
//! tables and columns a schema has, under which identities, voided or not.
//! Avni's rows in `public` (`table_metadata`, `column_metadata`), with what
//! the service keeps beside them in `etl_service` (`*_ext`) where it has.

use crate::engine::schema::layout::TableKind;
pub use crate::engine::schema::plan::{ExistingColumn, ExistingSchema, ExistingTable};
use crate::engine::schema::plan::{TableIdentity, concept_key, fixed_key};
use crate::error::Error;
use diesel::QueryableByName;
use diesel::sql_types::{Bool, Integer, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use std::collections::HashMap;

#[derive(QueryableByName)]
struct TableRow {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    type_: String,
    #[diesel(sql_type = Nullable<Text>)]
    subject_type_uuid: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    program_uuid: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    encounter_type_uuid: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    group_concept_uuid: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    group_subject_type_uuid: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    member_subject_type_uuid: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    parent_table_type: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    full_name: Option<String>,
    #[diesel(sql_type = Bool)]
    is_voided: bool,
    /// No `etl_service` row: a table avni-etl built.
    #[diesel(sql_type = Bool)]
    adopted: bool,
    /// It has a primary key.
    #[diesel(sql_type = Bool)]
    keyed: bool,
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Integer)]
    table_id: i32,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    type_: String,
    #[diesel(sql_type = Nullable<Text>)]
    concept_uuid: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    concept_type: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    parent_concept_uuid: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    source_key: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    base_name: Option<String>,
    #[diesel(sql_type = Bool)]
    concept_voided: bool,
    /// No `etl_service` row: a column avni-etl made.
    #[diesel(sql_type = Bool)]
    adopted: bool,
}

/// A `column_metadata.type` in avni-etl's vocabulary (its `Column.Type`
/// names) as the PostgreSQL type name the plan compares with
/// ([`crate::engine::schema::layout::ColumnType::sql`]); other values
/// (`point`, `integer`, ...) are already that name.
pub fn sql_type_of_avni(avni_type: &str) -> &str {
    match avni_type {
        "bool" => "boolean",
        "timestampWithTimezone" => "timestamptz",
        // A serial column is an integer with a default.
        "serial" => "integer",
        other => other,
    }
}

/// A `column_metadata.concept_type` in avni-etl's vocabulary as the
/// concept data type the plan compares with: a single or multiple select
/// is a `Coded` concept.
pub fn concept_type_of_avni(concept_type: &str) -> &str {
    match concept_type {
        "SingleSelect" | "MultiSelect" => "Coded",
        other => other,
    }
}

/// Reads what the metadata says `schema` holds.
pub async fn load_existing(
    conn: &mut AsyncPgConnection,
    schema: &str,
) -> Result<ExistingSchema, Error> {
    let tables: Vec<TableRow> = diesel::sql_query(
        "SELECT t.id, coalesce(t.name, '') AS name, coalesce(t.type, '') AS type_, \
                t.subject_type_uuid, t.program_uuid, t.encounter_type_uuid, \
                t.repeatable_question_group_concept_uuid AS group_concept_uuid, \
                t.group_subject_type_uuid::text, t.member_subject_type_uuid::text, x.parent_table_type, \
                x.full_name, coalesce(x.is_voided, false) AS is_voided, \
                x.table_metadata_id IS NULL AS adopted, \
                EXISTS (SELECT 1 FROM pg_index i JOIN pg_class r ON r.oid = i.indrelid \
                        JOIN pg_namespace n ON n.oid = r.relnamespace \
                        WHERE i.indisprimary AND n.nspname = t.schema_name AND r.relname = t.name) AS keyed \
         FROM public.table_metadata t \
         LEFT JOIN etl_service.table_metadata_ext x ON x.table_metadata_id = t.id \
         WHERE t.schema_name = $1 ORDER BY t.id",
    )
    .bind::<Text, _>(schema)
    .load(conn)
    .await?;
    let columns: Vec<ColumnRow> = diesel::sql_query(
        "SELECT c.id, c.table_id, coalesce(c.name, '') AS name, \
                coalesce(x.sql_type, c.type, '') AS type_, c.concept_uuid, \
                coalesce(x.concept_type, c.concept_type) AS concept_type, \
                c.parent_concept_uuid, x.source_key, x.base_name, \
                coalesce(c.concept_voided, false) AS concept_voided, \
                x.column_metadata_id IS NULL AS adopted \
         FROM public.column_metadata c JOIN public.table_metadata t ON t.id = c.table_id \
         LEFT JOIN etl_service.column_metadata_ext x ON x.column_metadata_id = c.id \
         WHERE t.schema_name = $1 ORDER BY c.table_id, x.display_order, c.id",
    )
    .bind::<Text, _>(schema)
    .load(conn)
    .await?;
    let mut by_table: HashMap<i32, Vec<ExistingColumn>> = HashMap::new();
    for c in columns {
        // Rows written before identities were stored (the `evolution`
        // migration fills those it found).
        let key = c.source_key.unwrap_or_else(|| match &c.concept_uuid {
            Some(uuid) => concept_key(uuid, c.parent_concept_uuid.as_deref()),
            None => fixed_key(&c.name),
        });
        // avni-etl's rows are in its vocabulary; the service's exact type
        // and data type are in etl_service.
        let (sql_type, concept_type) = if c.adopted {
            (
                sql_type_of_avni(&c.type_).to_string(),
                c.concept_type
                    .as_deref()
                    .map(|t| concept_type_of_avni(t).to_string()),
            )
        } else {
            (c.type_, c.concept_type)
        };
        by_table
            .entry(c.table_id)
            .or_default()
            .push(ExistingColumn {
                id: c.id,
                name: c.name,
                key,
                base_name: c.base_name,
                sql_type,
                concept_type,
                voided: c.concept_voided,
                adopted: c.adopted,
            });
    }
    let mut result = ExistingSchema::default();
    for t in tables {
        // The fixed `users` table (type User, no subject type) is not a
        // users' subject type's table. A repeatable question group table
        // avni-etl built (keyed there by a serial id, here by the owner's id
        // and the answer's index) is left to it with its rows, the service's
        // own made beside it.
        let kind = match TableKind::from_metadata_type(&t.type_) {
            Some(TableKind::Subject) if t.type_ == "User" && t.subject_type_uuid.is_none() => {
                Some(TableKind::Users)
            }
            kind => kind,
        }
        .filter(|k| !(t.adopted && *k == TableKind::RepeatableQuestionGroup));
        // A membership table's subject type is its group's (Avni keeps
        // it in group_subject_type_uuid).
        let membership = matches!(
            kind,
            Some(TableKind::GroupToMember | TableKind::HouseholdToMember)
        );
        let identity = TableIdentity {
            kind: kind.unwrap_or(TableKind::Address),
            subject_type_uuid: if membership {
                t.group_subject_type_uuid
            } else {
                t.subject_type_uuid
            },
            member_subject_type_uuid: t.member_subject_type_uuid.filter(|_| membership),
            program_uuid: t.program_uuid,
            encounter_type_uuid: t.encounter_type_uuid,
            group_concept_uuid: t.group_concept_uuid,
            owner_kind: t
                .parent_table_type
                .as_deref()
                .and_then(TableKind::from_metadata_type),
        };
        result.tables.push(ExistingTable {
            id: t.id,
            identity,
            name: t.name,
            full_name: t.full_name,
            voided: t.is_voided,
            foreign: kind.is_none(),
            adopted: t.adopted,
            keyed: t.keyed,
            columns: by_table.remove(&t.id).unwrap_or_default(),
        });
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::schema::layout::ColumnType;

    #[test]
    fn avni_etls_vocabulary_reads_as_the_plans() {
        for (avni, ours) in [
            ("bool", ColumnType::Boolean),
            ("timestampWithTimezone", ColumnType::Timestamptz),
            ("integer", ColumnType::Integer),
            ("serial", ColumnType::Integer),
            ("numeric", ColumnType::Numeric),
            ("date", ColumnType::Date),
            ("timestamp", ColumnType::Timestamp),
            ("time", ColumnType::Time),
            ("text", ColumnType::Text),
            ("jsonb", ColumnType::Jsonb),
        ] {
            assert_eq!(sql_type_of_avni(avni), ours.sql(), "{avni}");
        }
        assert_eq!(sql_type_of_avni("point"), "point");
        assert_eq!(concept_type_of_avni("SingleSelect"), "Coded");
        assert_eq!(concept_type_of_avni("MultiSelect"), "Coded");
        assert_eq!(concept_type_of_avni("Numeric"), "Numeric");
    }
}
