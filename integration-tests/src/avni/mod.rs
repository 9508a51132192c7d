//! A deterministic generator of Avni source data (design/etl.md §1) for
//! tests, the demo and benchmarks: the source tables from
//! `sql/avni_source.sql`, organisations and an organisation group with
//! metadata of every kind, and transactional rows from a few to millions,
//! inserted set-based inside PostgreSQL (`generate_series`), so a million
//! encounters take one statement.
//!
//! Everything is a function of the seed: two runs with one [`Spec`] give the
//! same uuids, names and observations.

pub mod bulk;
pub mod bundle;
pub mod edit;
pub mod evolve;
pub mod hostile;
pub mod metadata;
pub mod random_edits;

pub use bundle::{Bundle, ConceptDef, bundle, uuid_for};

use std::collections::HashMap;
use tokio_postgres::Client;

/// The source subset's DDL.
pub const SOURCE_DDL: &str = include_str!("../../sql/avni_source.sql");

/// Creates the Avni source tables in the database `client` is connected to.
pub async fn create_source_tables(client: &Client) {
    client
        .batch_execute(SOURCE_DDL)
        .await
        .unwrap_or_else(|e| panic!("cannot create the Avni source tables: {e}"));
}

/// How many transactional rows to generate per organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// Subjects of each subject type (four types).
    pub subjects_per_type: i64,
    /// Program encounters per encounter type of each enrolment (every
    /// subject of a program's subject type is enrolled once).
    pub encounters_per_enrolment: i64,
    /// General encounters per encounter type of each subject.
    pub encounters_per_subject: i64,
}

impl Size {
    /// Metadata only, no rows.
    pub const EMPTY: Size = Size {
        subjects_per_type: 0,
        encounters_per_enrolment: 0,
        encounters_per_subject: 0,
    };

    /// A few rows of every kind, for tests.
    pub const SMALL: Size = Size {
        subjects_per_type: 12,
        encounters_per_enrolment: 2,
        encounters_per_subject: 2,
    };
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    pub seed: u64,
    /// Standalone organisations.
    pub organisations: usize,
    /// Members of one organisation group (0: no group). They share one
    /// bundle of metadata (same uuids), each with its own rows.
    pub group_members: usize,
    /// Hostile names for entities, concepts, answers, roles and schemas.
    pub hostile: bool,
    pub size: Size,
    /// Extra questions per form, beyond the one of every type.
    pub extra_questions: usize,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            seed: 42,
            organisations: 1,
            group_members: 0,
            hostile: false,
            size: Size::SMALL,
            extra_questions: 0,
        }
    }
}

/// A generated organisation and the ids tests need to add rows to it.
#[derive(Debug, Clone)]
pub struct Org {
    pub id: i32,
    pub uuid: String,
    pub name: String,
    pub db_user: String,
    pub schema_name: String,
    pub bundle: Bundle,
    pub user_ids: Vec<i64>,
    pub usernames: Vec<String>,
    pub gender_ids: HashMap<String, i32>,
    /// By bundle key.
    pub subject_type_ids: HashMap<String, i32>,
    pub program_ids: HashMap<String, i32>,
    pub encounter_type_ids: HashMap<String, i32>,
    /// Lowest-level address ids (villages).
    pub villages: Vec<i64>,
}

impl Org {
    pub fn subject_type_id(&self, key: &str) -> i32 {
        self.subject_type_ids[key]
    }
    pub fn program_id(&self, key: &str) -> i32 {
        self.program_ids[key]
    }
    pub fn encounter_type_id(&self, key: &str) -> i32 {
        self.encounter_type_ids[key]
    }
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: i32,
    pub uuid: String,
    pub name: String,
    pub db_user: String,
    pub schema_name: String,
    pub members: Vec<Org>,
}

/// Everything generated.
#[derive(Debug, Clone)]
pub struct World {
    pub organisations: Vec<Org>,
    pub group: Option<Group>,
}

/// Creates the source tables and fills them per `spec`.
pub async fn generate(client: &Client, spec: &Spec) -> World {
    create_source_tables(client).await;
    let mut organisations = Vec::new();
    for i in 0..spec.organisations {
        let b = bundle(
            spec.seed.wrapping_add(i as u64),
            spec.hostile,
            spec.extra_questions,
        );
        let org = metadata::organisation(client, spec, &format!("{i}"), b).await;
        bulk::fill(client, &org, spec.size).await;
        organisations.push(org);
    }
    let group = if spec.group_members > 0 {
        let shared_seed = spec.seed.wrapping_add(1000);
        let mut members = Vec::new();
        for m in 0..spec.group_members {
            let b = bundle(shared_seed, spec.hostile, spec.extra_questions);
            let org = metadata::organisation(client, spec, &format!("g{m}"), b).await;
            bulk::fill(client, &org, spec.size).await;
            members.push(org);
        }
        Some(metadata::group(client, spec, members).await)
    } else {
        None
    };
    World {
        organisations,
        group,
    }
}

/// Creates the source tables and one standalone organisation per size
/// (benchmarks measure one organisation at two sizes in one database).
/// The `i`-th is generated as `generate` would generate it.
pub async fn generate_sized(client: &Client, spec: &Spec, sizes: &[Size]) -> Vec<Org> {
    create_source_tables(client).await;
    let mut organisations = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let b = bundle(
            spec.seed.wrapping_add(i as u64),
            spec.hostile,
            spec.extra_questions,
        );
        let org = metadata::organisation(client, spec, &format!("{i}"), b).await;
        bulk::fill(client, &org, *size).await;
        organisations.push(org);
    }
    organisations
}
