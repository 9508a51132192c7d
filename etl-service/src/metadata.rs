//! The metadata tables (design/etl.md §4) as they stand: which reporting
//! tables and columns a schema has, under which identities.

use crate::error::Error;
use crate::layout::TableKind;
use crate::plan::{ExistingNames, ExistingTableNames, TableIdentity, concept_key, name_key};
use diesel::QueryableByName;
use diesel::sql_types::{Integer, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use std::collections::HashMap;

/// A reporting table the metadata describes.
#[derive(Debug, Clone)]
pub struct ExistingTable {
    pub id: i32,
    pub identity: TableIdentity,
    pub name: String,
    pub columns: Vec<ExistingColumn>,
}

#[derive(Debug, Clone)]
pub struct ExistingColumn {
    pub id: i32,
    pub name: String,
    pub sql_type: String,
    /// Concept identity (`concept:<uuid>:<parent>`) or `name:<name>`.
    pub key: String,
}

/// Every table of one schema.
#[derive(Debug, Clone, Default)]
pub struct ExistingSchema {
    pub tables: Vec<ExistingTable>,
}

impl ExistingSchema {
    pub fn table(&self, identity: &TableIdentity) -> Option<&ExistingTable> {
        self.tables.iter().find(|t| &t.identity == identity)
    }

    /// What the planner must keep.
    pub fn names(&self) -> ExistingNames {
        ExistingNames {
            tables: self
                .tables
                .iter()
                .map(|t| ExistingTableNames {
                    identity: t.identity.clone(),
                    name: t.name.clone(),
                    columns: t
                        .columns
                        .iter()
                        .map(|c| (c.key.clone(), c.name.clone()))
                        .collect(),
                })
                .collect(),
        }
    }
}

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
    parent_table_type: Option<String>,
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
    parent_concept_uuid: Option<String>,
}

/// Reads what the metadata says `schema` holds.
pub async fn load_existing(
    conn: &mut AsyncPgConnection,
    schema: &str,
) -> Result<ExistingSchema, Error> {
    let tables: Vec<TableRow> = diesel::sql_query(
        "SELECT id, name, type AS type_, subject_type_uuid, program_uuid, encounter_type_uuid, \
                repeatable_question_group_concept_uuid AS group_concept_uuid, parent_table_type \
         FROM public.table_metadata WHERE schema_name = $1 ORDER BY id",
    )
    .bind::<Text, _>(schema)
    .load(conn)
    .await?;
    let columns: Vec<ColumnRow> = diesel::sql_query(
        "SELECT c.id, c.table_id, c.name, c.type AS type_, c.concept_uuid, c.parent_concept_uuid \
         FROM public.column_metadata c JOIN public.table_metadata t ON t.id = c.table_id \
         WHERE t.schema_name = $1 ORDER BY c.table_id, c.display_order, c.id",
    )
    .bind::<Text, _>(schema)
    .load(conn)
    .await?;
    let mut by_table: HashMap<i32, Vec<ExistingColumn>> = HashMap::new();
    for c in columns {
        let key = match &c.concept_uuid {
            Some(uuid) => concept_key(uuid, c.parent_concept_uuid.as_deref()),
            None => name_key(&c.name),
        };
        by_table
            .entry(c.table_id)
            .or_default()
            .push(ExistingColumn {
                id: c.id,
                name: c.name,
                sql_type: c.type_,
                key,
            });
    }
    let mut result = ExistingSchema::default();
    for t in tables {
        // Rows of a type this service does not know (written by another
        // tool) keep their names reserved under an identity nothing plans.
        let kind = TableKind::from_metadata_type(&t.type_);
        let identity = TableIdentity {
            kind: kind.unwrap_or(TableKind::Address),
            subject_type_uuid: t.subject_type_uuid,
            program_uuid: t.program_uuid,
            encounter_type_uuid: t.encounter_type_uuid,
            group_concept_uuid: if kind.is_some() {
                t.group_concept_uuid
            } else {
                Some(format!("unknown table type {}", t.type_))
            },
            owner_kind: t
                .parent_table_type
                .as_deref()
                .and_then(TableKind::from_metadata_type),
        };
        result.tables.push(ExistingTable {
            id: t.id,
            identity,
            name: t.name,
            columns: by_table.remove(&t.id).unwrap_or_default(),
        });
    }
    Ok(result)
}
