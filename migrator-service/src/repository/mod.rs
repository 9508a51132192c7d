//! The repository database: [`catalog`] reads which form tables and
//! columns exist; [`convert`] turns a field's text into its column's type;
//! [`form_writer`] turns submissions into rows and writes them many at a
//! time; [`audits`] reads the audits, errors and totals back.

pub mod audits;
pub mod catalog;
pub mod convert;
pub mod form_writer;
