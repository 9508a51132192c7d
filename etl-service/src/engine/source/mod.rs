//! Reading the Avni source tables (design/etl.md §1): the organisation or
//! group being run, and the metadata its reporting schema is planned from
//! (subject types, programs, encounter types, form mappings, form elements
//! and concepts, address level types).
//!
//! - `target`: the organisation or group, its schema, role and members;
//! - `visibility`: whose metadata each member sees (its own and its
//!   ancestors', as Avni shares it);
//! - `model`: the metadata, merged over the members;
//! - [`indexes`]: whether the source tables have the index runs rely on.

pub mod indexes;
mod model;
mod target;
mod visibility;

pub use model::{
    FormElement, FormMapping, GroupRole, NamedEntity, SourceModel, SubjectType, load_model,
};
pub use target::{Member, Target, load_target, unusable_role, unusable_schema};
pub use visibility::{Visibility, load_visibility};
