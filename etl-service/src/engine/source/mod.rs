//! Reading the Avni source tables (design/etl.md §1): the organisation or
//! group being run, and the metadata its reporting schema is planned from
//! (subject types, programs, encounter types, form mappings, form elements
//! and concepts, address level types).
//!
//! - `target`: the organisation or group, its schema, role and members;
//! - `model`: the metadata, merged over the members.

mod model;
mod target;

pub use model::{FormElement, FormMapping, NamedEntity, SourceModel, SubjectType, load_model};
pub use target::{Member, Target, load_target, unusable_role, unusable_schema};
