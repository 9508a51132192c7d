//! What must change for the schema to match the plan (design/etl.md §5.2).
//! The planner matches every planned table and column to the existing one
//! of the same identity (entity and concept uuids, never names) and records
//! how it evolves; this names the change for each table.

use crate::engine::schema::plan::{SchemaPlan, TableEvolution};

/// What a run did to a table's structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableChange {
    Created,
    /// Renamed, revived, or with columns renamed, voided, revived or added.
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
    /// Exists and changes as described.
    Alter(TableEvolution),
    /// Exists as planned.
    Unchanged { table_id: i32 },
}

impl TableDiff {
    pub fn change(&self) -> TableChange {
        match self {
            TableDiff::Create => TableChange::Created,
            TableDiff::Alter(_) => TableChange::Altered,
            TableDiff::Unchanged { .. } => TableChange::Unchanged,
        }
    }
}

/// One diff per planned table, in plan order.
pub fn diff(plan: &SchemaPlan) -> Vec<TableDiff> {
    plan.tables
        .iter()
        .map(|planned| match &planned.evolution {
            None => TableDiff::Create,
            Some(e) if e.changes_anything(&planned.name) => TableDiff::Alter(e.clone()),
            Some(e) => TableDiff::Unchanged {
                table_id: e.table_id,
            },
        })
        .collect()
}
