//! The test harness every test uses, and the programs that drive the
//! services from outside: a fresh PostgreSQL database per test, the real
//! `App`s on port 0 with generated tonic clients, and helpers to run the
//! real binaries.

pub mod avni;
pub mod avni_etl;
pub mod avni_server;
pub mod bench;
pub mod binaries;
pub mod demo;
pub mod drishti_feed;
pub mod drishti_forms;
pub mod etl;
pub mod etl_crash_loop;
pub mod etl_faults;
pub mod fake_upstream;
pub mod hostile_submissions;
pub mod load;
pub mod migrator;
pub mod migrator_reliability;
pub mod postgres;
pub mod python;
pub mod services;
