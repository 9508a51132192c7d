//! The reporting schema: what it should be and how it gets there.
//!
//! [`plan`] decides the tables and columns from the source model (with
//! [`naming`] for names that fit and [`layout`] for each kind of table's
//! fixed columns, [`avni_tables`] for users, sync telemetry and group
//! membership); [`metadata`] reads what exists; [`schema_diff`] names
//! each table's change; [`ddl`] applies it with the metadata in one
//! transaction, rebuilding [`views`] and granting [`roles`];
//! [`name_check`] is what ValidateNames reports of a plan; [`implementers`]
//! finds the relations in a schema that are not the service's, which it
//! leaves alone; [`ownership`] refuses a schema someone else made.

pub mod avni_tables;
pub mod ddl;
pub mod implementers;
pub mod layout;
pub mod metadata;
pub mod name_check;
pub mod naming;
pub mod ownership;
pub mod plan;
pub mod roles;
pub mod schema_diff;
pub mod views;
