//! What must change for the schema to match the plan (design/etl.md §5.2):
//! pure, compared by identity (entity and concept uuids), never by name.

use crate::metadata::ExistingSchema;
use crate::plan::SchemaPlan;

/// What a run did to a table's structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableChange {
    Created,
    Altered,
    Unchanged,
}

impl TableChange {
    pub fn as_str(self) -> &'static str {
        match self {
            TableChange::Created => "created",
            TableChange::Altered => "altered",
            TableChange::Unchanged => "unchanged",
        }
    }
}

/// The change for one planned table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableDiff {
    /// Not in the metadata: create it.
    Create,
    /// Exists; these planned columns (indexes into `PlannedTable::columns`)
    /// are new and must be added, then backfilled.
    AddColumns { table_id: i32, columns: Vec<usize> },
    /// Exists with every planned column.
    Unchanged { table_id: i32 },
}

impl TableDiff {
    pub fn change(&self) -> TableChange {
        match self {
            TableDiff::Create => TableChange::Created,
            TableDiff::AddColumns { .. } => TableChange::Altered,
            TableDiff::Unchanged { .. } => TableChange::Unchanged,
        }
    }
}

/// One diff per planned table, in plan order.
pub fn diff(plan: &SchemaPlan, existing: &ExistingSchema) -> Vec<TableDiff> {
    plan.tables
        .iter()
        .map(|planned| match existing.table(&planned.identity) {
            None => TableDiff::Create,
            Some(table) => {
                let missing: Vec<usize> = planned
                    .columns
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| !table.columns.iter().any(|e| e.key == c.key()))
                    .map(|(i, _)| i)
                    .collect();
                if missing.is_empty() {
                    TableDiff::Unchanged { table_id: table.id }
                } else {
                    TableDiff::AddColumns {
                        table_id: table.id,
                        columns: missing,
                    }
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{ColumnType, TableKind, fixed_columns};
    use crate::metadata::{ExistingColumn, ExistingTable};
    use crate::plan::{ColumnSource, PlannedColumn, PlannedTable, TableIdentity};

    fn identity(st: &str) -> TableIdentity {
        TableIdentity {
            kind: TableKind::Subject,
            subject_type_uuid: Some(st.into()),
            program_uuid: None,
            encounter_type_uuid: None,
            group_concept_uuid: None,
            owner_kind: None,
        }
    }

    fn column(uuid: &str, name: &str) -> PlannedColumn {
        PlannedColumn {
            name: name.into(),
            sql_type: ColumnType::Text,
            source: ColumnSource::Concept {
                concept_uuid: uuid.into(),
                concept_name: name.into(),
                data_type: "Text".into(),
                multi_select: false,
                answers: Vec::new(),
                parent_concept_uuid: None,
                nested: false,
            },
        }
    }

    fn table(st: &str, columns: Vec<PlannedColumn>) -> PlannedTable {
        PlannedTable {
            identity: identity(st),
            name: st.into(),
            full_name: st.into(),
            shortened: false,
            disambiguated: false,
            reference_name: st.into(),
            raw_parts: vec![st.into()],
            subject_type_name: Some(st.into()),
            program_name: None,
            encounter_type_name: None,
            group_concept_name: None,
            subject_kind: "Individual".into(),
            allow_middle_name: false,
            form_uuids: vec![],
            fixed: fixed_columns(TableKind::Subject, "Individual", false, None),
            columns,
        }
    }

    #[test]
    fn new_tables_are_created_new_columns_added_and_renames_are_not_new() {
        let plan = SchemaPlan {
            tables: vec![
                table("a", vec![column("c1", "Renamed"), column("c2", "New")]),
                table("b", vec![column("c3", "Same")]),
                table("c", vec![]),
            ],
        };
        let existing = ExistingSchema {
            tables: vec![
                ExistingTable {
                    id: 1,
                    identity: identity("a"),
                    name: "a".into(),
                    columns: vec![ExistingColumn {
                        id: 10,
                        name: "Old name".into(),
                        sql_type: "text".into(),
                        key: "concept:c1:".into(),
                    }],
                },
                ExistingTable {
                    id: 2,
                    identity: identity("b"),
                    name: "b".into(),
                    columns: vec![ExistingColumn {
                        id: 11,
                        name: "Same".into(),
                        sql_type: "text".into(),
                        key: "concept:c3:".into(),
                    }],
                },
            ],
        };
        assert_eq!(
            diff(&plan, &existing),
            vec![
                TableDiff::AddColumns {
                    table_id: 1,
                    columns: vec![1]
                },
                TableDiff::Unchanged { table_id: 2 },
                TableDiff::Create,
            ]
        );
    }
}
