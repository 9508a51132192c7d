//! Organisations and organisation groups: the entities analytics is enabled
//! for.

use std::fmt;
use uuid::Uuid;

/// Whether an entity is an organisation or an organisation group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityKind {
    Organisation,
    OrganisationGroup,
}

impl EntityKind {
    /// The value stored in `etl_job.entity_type` and `etl_run.entity_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Organisation => "organisation",
            EntityKind::OrganisationGroup => "organisation_group",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "organisation" => Some(EntityKind::Organisation),
            "organisation_group" => Some(EntityKind::OrganisationGroup),
            _ => None,
        }
    }
}

/// An organisation or organisation group, by uuid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntityRef {
    pub uuid: Uuid,
    pub kind: EntityKind,
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.as_str().replace('_', " "), self.uuid)
    }
}
