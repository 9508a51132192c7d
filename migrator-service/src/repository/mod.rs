//! The repository database: [`model`] is what it is given (a decoded
//! submission, or a failure); [`catalog`] reads which form tables and
//! columns exist; [`convert`] turns a field's text into its column's type;
//! [`form_writer`] turns submissions into rows and writes them many at a
//! time; [`archive`] keeps the raw elements received; [`error_audit`]
//! records the submissions that failed; [`postgres`] holds the text
//! PostgreSQL refuses and what its errors mean; [`audits`] reads the
//! audits, errors and totals back; [`unmapped`] counts the fields that
//! have no column; [`form_migrations`] applies the deployment's own
//! form-table migrations. Nothing here calls into
//! [`crate::poll`].

pub mod archive;
pub mod audits;
pub mod catalog;
pub mod convert;
pub mod error_audit;
pub mod form_migrations;
pub mod form_writer;
pub mod model;
pub mod postgres;
pub mod unmapped;
