//! Each table's columns beyond the fixed ones, and their types: a form's
//! questions (a non-repeatable group's children under `"<group> <child>"`,
//! a repeatable group's in a table of their own), or an address table's
//! level types; and the identities the metadata stores for columns.

use crate::engine::schema::layout::ColumnType;
use crate::engine::source::FormElement;
use std::collections::{BTreeMap, HashSet};

/// Where a planned column's values come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnSource {
    /// A form question.
    Concept {
        concept_uuid: String,
        concept_name: String,
        data_type: String,
        multi_select: bool,
        /// A coded concept's answers: (answer uuid, answer name).
        answers: Vec<(String, String)>,
        /// The question group the concept belongs to, if any.
        parent_concept_uuid: Option<String>,
        /// The value sits inside the parent group's object in the row's
        /// observations (a non-repeatable group's child).
        nested: bool,
    },
    /// An address table's column for one level type: its title, or its id.
    AddressLevel { type_name: String, id: bool },
}

impl ColumnSource {
    /// The identity the metadata stores for the column.
    pub fn key(&self, name: &str) -> String {
        match self {
            ColumnSource::Concept {
                concept_uuid,
                parent_concept_uuid,
                ..
            } => concept_key(concept_uuid, parent_concept_uuid.as_deref()),
            ColumnSource::AddressLevel { .. } => name_key(name),
        }
    }
}

impl ColumnSource {
    /// The concept's data type, for a question column.
    pub fn concept_type(&self) -> Option<&str> {
        match self {
            ColumnSource::Concept { data_type, .. } => Some(data_type),
            ColumnSource::AddressLevel { .. } => None,
        }
    }
}

pub fn concept_key(concept_uuid: &str, parent: Option<&str>) -> String {
    format!("concept:{concept_uuid}:{}", parent.unwrap_or(""))
}

pub fn name_key(name: &str) -> String {
    format!("name:{name}")
}

/// The identity of a column every table of its kind has.
pub fn fixed_key(name: &str) -> String {
    format!("fixed:{name}")
}

/// A column beyond the fixed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedColumn {
    pub name: String,
    /// The name its source gives it, before any suffix that keeps it
    /// unique: when this changes, the concept was renamed.
    pub base_name: String,
    pub sql_type: ColumnType,
    pub source: ColumnSource,
}

impl PlannedColumn {
    pub fn key(&self) -> String {
        self.source.key(&self.base_name)
    }
}

/// A column before it is named: the raw name its source gives it, its
/// type and its source.
pub(super) type ColumnDraft = (String, ColumnType, ColumnSource);
/// Repeatable groups of a form: group uuid -> (group name, child columns).
pub(super) type RepeatableGroups = BTreeMap<String, (String, Vec<ColumnDraft>)>;

/// A table's question columns in form order, and its repeatable groups
/// (group uuid -> (group name, child columns)), each concept once.
pub(super) fn question_columns(
    elements: &[&FormElement],
    answers: &BTreeMap<String, Vec<(String, String)>>,
) -> (Vec<ColumnDraft>, RepeatableGroups) {
    let mut columns: Vec<ColumnDraft> = Vec::new();
    let mut groups: RepeatableGroups = BTreeMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    for e in elements {
        if e.data_type == "QuestionGroup" {
            continue;
        }
        let key = concept_key(&e.concept_uuid, e.parent_concept_uuid.as_deref());
        if !seen.insert(key) {
            continue;
        }
        let sql_type = ColumnType::for_concept(&e.data_type);
        let source = |nested: bool| concept_source(e, answers, nested);
        match (&e.parent_concept_uuid, &e.parent_concept_name) {
            (Some(parent), Some(parent_name)) if e.parent_repeatable => {
                groups
                    .entry(parent.clone())
                    .or_insert_with(|| (parent_name.clone(), Vec::new()))
                    .1
                    .push((e.concept_name.clone(), sql_type, source(false)));
            }
            (Some(_), Some(parent_name)) => columns.push((
                format!("{parent_name} {}", e.concept_name),
                sql_type,
                source(true),
            )),
            _ => columns.push((e.concept_name.clone(), sql_type, source(false))),
        }
    }
    (columns, groups)
}

fn concept_source(
    e: &FormElement,
    answers: &BTreeMap<String, Vec<(String, String)>>,
    nested: bool,
) -> ColumnSource {
    let multi_select = e.data_type == "Coded" && e.element_type.as_deref() == Some("MultiSelect");
    ColumnSource::Concept {
        concept_uuid: e.concept_uuid.clone(),
        concept_name: e.concept_name.clone(),
        data_type: e.data_type.clone(),
        multi_select,
        answers: answers.get(&e.concept_uuid).cloned().unwrap_or_default(),
        parent_concept_uuid: e.parent_concept_uuid.clone(),
        nested,
    }
}

/// The address table's columns: each level type's title and id.
pub(super) fn address_columns(level_types: &[String]) -> Vec<ColumnDraft> {
    let mut columns = Vec::new();
    for level in level_types {
        columns.push((
            level.clone(),
            ColumnType::Text,
            ColumnSource::AddressLevel {
                type_name: level.clone(),
                id: false,
            },
        ));
        columns.push((
            format!("{level} id"),
            ColumnType::Bigint,
            ColumnSource::AddressLevel {
                type_name: level.clone(),
                id: true,
            },
        ));
    }
    columns
}
