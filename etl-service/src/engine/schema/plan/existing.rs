//! The schema as the metadata describes it (read by `metadata`), which a
//! plan continues: its tables by identity, and their columns by source key.

use crate::engine::schema::layout::ColumnType;
use crate::engine::schema::naming;
use crate::engine::schema::plan::TableIdentity;

/// The schema as the metadata describes it.
#[derive(Debug, Clone, Default)]
pub struct ExistingSchema {
    pub tables: Vec<ExistingTable>,
    /// The names of the relations in the schema this service did not make
    /// and the metadata does not describe (implementers' own tables and
    /// views): taken, never touched.
    pub others: Vec<String>,
}

impl ExistingSchema {
    /// The table this service keeps for `identity`, voided or not.
    pub fn table(&self, identity: &TableIdentity) -> Option<&ExistingTable> {
        self.tables
            .iter()
            .find(|t| !t.foreign && &t.identity == identity)
    }
}

/// A reporting table the metadata describes.
#[derive(Debug, Clone)]
pub struct ExistingTable {
    pub id: i32,
    pub identity: TableIdentity,
    pub name: String,
    /// The joined normalised parts its name was made from: when the parts
    /// made now differ, one of its entities was renamed. `None` if unknown.
    pub full_name: Option<String>,
    pub voided: bool,
    /// Described under a table type this service does not know (written by
    /// another tool): its name stays taken, nothing else is touched.
    pub foreign: bool,
    /// Built by avni-etl (the service keeps nothing of its own about it
    /// yet): the first run adopts it in place.
    pub adopted: bool,
    /// It has a primary key (avni-etl's tables have none).
    pub keyed: bool,
    pub columns: Vec<ExistingColumn>,
}

/// A column the metadata describes.
#[derive(Debug, Clone)]
pub struct ExistingColumn {
    pub id: i32,
    pub name: String,
    /// `concept:<uuid>:<parent uuid>`, `fixed:<name>` or `name:<name>`.
    pub key: String,
    /// The name its source gave it before any disambiguating suffix.
    pub base_name: Option<String>,
    pub sql_type: String,
    pub concept_type: Option<String>,
    pub voided: bool,
    /// Made by avni-etl (its metadata in its vocabulary, nothing of the
    /// service's beside it). One of its fixed columns the plan has no
    /// place for (`created_by_id`, `legacy_id`, ...) is kept as it is,
    /// never voided.
    pub adopted: bool,
}

impl ExistingColumn {
    /// Whether a planned column of this identity can keep this column: its
    /// values mean the same only while the concept's data type does.
    pub(super) fn continues(&self, sql_type: ColumnType, concept_type: Option<&str>) -> bool {
        self.concept_type.as_deref() == concept_type
            && (self.sql_type == sql_type.sql() || self.stored_as(sql_type).is_some())
    }

    /// For a column avni-etl made with another type than the plan's (the
    /// service made none: its types are the plan's), one whose values the
    /// plan's can be written as (its ids are `integer`
    /// where the plan's are `bigint`, its locations `point` where the
    /// plan's are text): that type, which the column keeps.
    pub(super) fn stored_as(&self, planned: ColumnType) -> Option<&'static str> {
        match (self.sql_type.as_str(), planned) {
            ("integer", ColumnType::Bigint) => Some("integer"),
            ("point", ColumnType::Text) => Some("point"),
            _ => None,
        }
    }

    /// One of avni-etl's fixed columns (not a question's): kept as it is
    /// when the plan has no place for it.
    pub(super) fn kept_as_adopted(&self) -> bool {
        self.adopted && !self.voided && !self.key.starts_with("concept:")
    }

    /// Whether the name its source gives it is the one it was named from.
    pub(super) fn base_unchanged(&self, candidate: &str, key: &str) -> bool {
        match &self.base_name {
            Some(base) => base == candidate,
            None => {
                self.name == candidate
                    || self.name == naming::with_suffix(candidate, &naming::stable_hash(key))
            }
        }
    }
}
