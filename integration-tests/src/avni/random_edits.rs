//! A seeded stream of the changes people make to an organisation's source
//! between ETL runs: rows inserted, edited, voided, cancelled and
//! un-cancelled, enrolments exited and un-exited (through [`super::edit`]);
//! questions added, renamed, removed, restored and retyped, entities
//! renamed, form mappings voided and restored (through [`super::evolve`]).
//! Each step is logged, so a failure can print what led to it.

use super::edit::{self, SourceTable};
use super::{Org, evolve};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Map, Value, json};
use tokio_postgres::Client;

const TYPES: [&str; 7] = [
    "Numeric", "Text", "Date", "DateTime", "Time", "Coded", "Notes",
];

async fn ids(client: &Client, sql: &str, org: &Org) -> Vec<i64> {
    client
        .query(sql, &[&org.id])
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Edits one organisation's source at random, from a seed.
pub struct SourceEditor<'a> {
    client: &'a Client,
    pub org: Org,
    rng: StdRng,
    /// Unique numbers for new names.
    counter: u32,
    /// One line per step taken.
    pub log: Vec<String>,
}

impl<'a> SourceEditor<'a> {
    pub fn new(client: &'a Client, org: Org, seed: u64) -> Self {
        Self {
            client,
            org,
            rng: StdRng::seed_from_u64(seed),
            counter: 0,
            log: Vec::new(),
        }
    }

    fn client(&self) -> &'a Client {
        self.client
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            None
        } else {
            Some(items[self.rng.random_range(0..items.len())].clone())
        }
    }

    fn next_name(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix} {}", self.counter)
    }

    /// An answer of a random shape: whatever a question's type now, rows
    /// hold answers recorded under its earlier types too.
    fn answer(&mut self) -> Value {
        let blood = self.org.bundle.answer("blood_group", "A+");
        let fever = self.org.bundle.answer("symptoms", "Fever");
        let cough = self.org.bundle.answer("symptoms", "Cough");
        match self.rng.random_range(0..10) {
            0 => json!(self.rng.random_range(0..1000) as f64 / 4.0),
            1 => json!(format!("{}.5", self.rng.random_range(0..100))),
            2 => json!(format!(
                "2024-{:02}-{:02}T10:30:00.000Z",
                self.rng.random_range(1..13),
                self.rng.random_range(1..29)
            )),
            3 => json!("2024-13-45"),
            4 => json!(format!("{:02}:15", self.rng.random_range(0..24))),
            5 => json!(blood),
            6 => json!([fever, cough]),
            7 => json!("1e999999"),
            8 => json!("2024-02-29T00:00:00.000Z"),
            _ => json!(format!("text {}", self.rng.random_range(0..100))),
        }
    }

    /// Observations answering a random subset of the organisation's
    /// questions, sometimes with a repeatable group.
    async fn observations(&mut self) -> Value {
        let concepts: Vec<String> = self
            .client()
            .query(
                "SELECT uuid FROM concept WHERE organisation_id = $1 AND data_type <> 'NA' \
                 AND data_type <> 'QuestionGroup' ORDER BY id",
                &[&self.org.id],
            )
            .await
            .expect("concepts")
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut obs = Map::new();
        for c in concepts {
            if self.rng.random_bool(0.6) {
                let a = self.answer();
                obs.insert(c, a);
            }
        }
        if self.rng.random_bool(0.5) {
            let b = &self.org.bundle;
            let (children, name, age) = (
                b.concept("children").uuid.clone(),
                b.concept("child_name").uuid.clone(),
                b.concept("child_age").uuid.clone(),
            );
            let n = self.rng.random_range(0..3);
            let items: Vec<Value> = (0..n)
                .map(|i| json!({ name.clone(): format!("child {i}"), age.clone(): i }))
                .collect();
            obs.insert(children, Value::Array(items));
        }
        Value::Object(obs)
    }

    /// Makes one random change and logs it.
    pub async fn step(&mut self) {
        let choice = self.rng.random_range(0..20);
        let what = match choice {
            0..=2 => self.insert_subject().await,
            3 => self.insert_enrolment().await,
            4 | 5 => self.insert_visit().await,
            6 | 7 => self.edit_row().await,
            8 => self.void_row().await,
            9 => self.cancel_or_uncancel().await,
            10 => self.exit_or_unexit().await,
            11 => self.add_question().await,
            12 => self.rename_question().await,
            13 => self.remove_question().await,
            14 => self.restore_question().await,
            15 => self.change_type().await,
            16 | 17 => self.rename_entity().await,
            _ => self.toggle_mapping().await,
        };
        self.log.push(what);
    }

    async fn insert_subject(&mut self) -> String {
        let key = self
            .pick(&["person", "individual", "household", "group"])
            .unwrap_or("person");
        let obs = self.observations().await;
        let name = self.next_name("Subject");
        let id = edit::insert_subject(self.client(), &self.org, key, &name, &obs).await;
        format!("insert {key} subject {id}")
    }

    async fn insert_enrolment(&mut self) -> String {
        let (program, subject) = self
            .pick(&[("pregnancy", "person"), ("child", "individual")])
            .unwrap_or(("pregnancy", "person"));
        let subjects = ids(
            self.client(),
            &format!(
                "SELECT id FROM individual WHERE organisation_id = $1 AND subject_type_id = {} ORDER BY id",
                self.org.subject_type_id(subject)
            ),
            &self.org.clone(),
        )
        .await;
        let Some(individual) = self.pick(&subjects) else {
            return "no subject to enrol".into();
        };
        let obs = self.observations().await;
        let id = edit::insert_enrolment(self.client(), &self.org, individual, program, &obs).await;
        format!("enrol {individual} in {program}: {id}")
    }

    async fn insert_visit(&mut self) -> String {
        let obs = self.observations().await;
        let org = self.org.clone();
        if self.rng.random_bool(0.5) {
            let (key, program) = self
                .pick(&[("anc", "pregnancy"), ("growth", "child")])
                .unwrap_or(("anc", "pregnancy"));
            let enrolments = ids(
                self.client(),
                &format!(
                    "SELECT id FROM program_enrolment WHERE organisation_id = $1 AND program_id = {} ORDER BY id",
                    org.program_id(program)
                ),
                &org,
            )
            .await;
            let Some(enrolment) = self.pick(&enrolments) else {
                return "no enrolment for a visit".into();
            };
            let id =
                edit::insert_program_encounter(self.client(), &org, enrolment, key, &obs).await;
            format!("{key} visit {id} for enrolment {enrolment}")
        } else {
            let (key, subject) = self
                .pick(&[
                    ("survey", "person"),
                    ("home_visit", "household"),
                    ("group_meeting", "group"),
                ])
                .unwrap_or(("survey", "person"));
            let subjects = ids(
                self.client(),
                &format!(
                    "SELECT id FROM individual WHERE organisation_id = $1 AND subject_type_id = {} ORDER BY id",
                    org.subject_type_id(subject)
                ),
                &org,
            )
            .await;
            let Some(individual) = self.pick(&subjects) else {
                return "no subject for a visit".into();
            };
            let id = edit::insert_encounter(self.client(), &org, individual, key, &obs).await;
            format!("{key} visit {id} for {individual}")
        }
    }

    async fn random_row(&mut self) -> Option<(SourceTable, i64)> {
        let tables = [
            (SourceTable::Individual, "individual"),
            (SourceTable::ProgramEnrolment, "program_enrolment"),
            (SourceTable::ProgramEncounter, "program_encounter"),
            (SourceTable::Encounter, "encounter"),
        ];
        let (table, name) = self.pick(&tables)?;
        let org = self.org.clone();
        let rows = ids(
            self.client(),
            &format!("SELECT id FROM {name} WHERE organisation_id = $1 ORDER BY id"),
            &org,
        )
        .await;
        self.pick(&rows).map(|id| (table, id))
    }

    async fn edit_row(&mut self) -> String {
        let Some((table, id)) = self.random_row().await else {
            return "no row to edit".into();
        };
        let obs = self.observations().await;
        edit::set_observations(self.client(), table, id, &obs).await;
        format!("edit {table:?} {id}")
    }

    async fn void_row(&mut self) -> String {
        let Some((table, id)) = self.random_row().await else {
            return "no row to void".into();
        };
        edit::void(self.client(), table, id).await;
        format!("void {table:?} {id}")
    }

    async fn cancel_or_uncancel(&mut self) -> String {
        let (table, name) = self
            .pick(&[
                (SourceTable::ProgramEncounter, "program_encounter"),
                (SourceTable::Encounter, "encounter"),
            ])
            .unwrap_or((SourceTable::Encounter, "encounter"));
        let org = self.org.clone();
        let rows = ids(
            self.client(),
            &format!("SELECT id FROM {name} WHERE organisation_id = $1 ORDER BY id"),
            &org,
        )
        .await;
        let Some(id) = self.pick(&rows) else {
            return "no visit to cancel".into();
        };
        let cancelled: bool = self
            .client()
            .query_one(
                &format!("SELECT cancel_date_time IS NOT NULL FROM {name} WHERE id = $1"),
                &[&id],
            )
            .await
            .expect("visit")
            .get(0);
        if cancelled {
            edit::uncancel(self.client(), table, id).await;
            format!("uncancel {name} {id}")
        } else {
            let obs = self.observations().await;
            edit::cancel(self.client(), table, id, &obs).await;
            format!("cancel {name} {id}")
        }
    }

    async fn exit_or_unexit(&mut self) -> String {
        let org = self.org.clone();
        let rows = ids(
            self.client(),
            "SELECT id FROM program_enrolment WHERE organisation_id = $1 ORDER BY id",
            &org,
        )
        .await;
        let Some(id) = self.pick(&rows) else {
            return "no enrolment to exit".into();
        };
        let exited: bool = self
            .client()
            .query_one(
                "SELECT program_exit_date_time IS NOT NULL FROM program_enrolment WHERE id = $1",
                &[&id],
            )
            .await
            .expect("enrolment")
            .get(0);
        if exited {
            edit::unexit(self.client(), id).await;
            format!("unexit {id}")
        } else {
            let obs = self.observations().await;
            edit::exit(self.client(), id, &obs).await;
            format!("exit {id}")
        }
    }

    async fn forms(&self) -> Vec<String> {
        self.client()
            .query(
                "SELECT name FROM form WHERE organisation_id = $1 ORDER BY id",
                &[&self.org.id],
            )
            .await
            .expect("forms")
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// Live top-level questions: (form, concept uuid).
    async fn questions(&self, voided: bool) -> Vec<(String, String)> {
        self.client()
            .query(
                "SELECT f.name, c.uuid FROM form_element fe \
                 JOIN form_element_group feg ON feg.id = fe.form_element_group_id \
                 JOIN form f ON f.id = feg.form_id JOIN concept c ON c.id = fe.concept_id \
                 WHERE f.organisation_id = $1 AND fe.group_id IS NULL AND fe.is_voided = $2 \
                   AND c.data_type <> 'QuestionGroup' \
                   AND NOT EXISTS (SELECT 1 FROM form_element ch WHERE ch.group_id = fe.id) \
                 ORDER BY fe.id",
                &[&self.org.id, &voided],
            )
            .await
            .expect("questions")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    async fn add_question(&mut self) -> String {
        let forms = self.forms().await;
        let Some(form) = self.pick(&forms) else {
            return "no form".into();
        };
        let data_type = self.pick(&TYPES).unwrap_or("Text");
        let name = self.next_name("Question");
        let uuid = uuid::Uuid::from_u128(0xe0_0000 + u128::from(self.counter)).to_string();
        evolve::add_question(self.client(), &self.org, &form, &uuid, &name, data_type).await;
        // Some rows already hold answers to it (recorded before the form
        // change reached the ETL): only a backfill finds them.
        let answer = self.answer();
        for (table, column) in [
            ("individual", "observations"),
            ("program_enrolment", "observations"),
            ("program_enrolment", "program_exit_observations"),
            ("program_encounter", "observations"),
            ("program_encounter", "cancel_observations"),
            ("encounter", "observations"),
            ("encounter", "cancel_observations"),
        ] {
            let sql = format!(
                "UPDATE {table} SET {column} = {column} || jsonb_build_object($1::text, $2::jsonb) \
                 WHERE organisation_id = $3 AND id % 2 = 0 AND {column} IS NOT NULL"
            );
            self.client()
                .execute(&sql, &[&uuid, &answer, &self.org.id])
                .await
                .unwrap_or_else(|e| panic!("{e}\n{sql}"));
        }
        format!("add {data_type} question {name:?} ({uuid}) to {form}")
    }

    async fn rename_question(&mut self) -> String {
        let questions = self.questions(false).await;
        let Some((_, uuid)) = self.pick(&questions) else {
            return "no question to rename".into();
        };
        let name = self.next_name("Renamed question");
        evolve::rename_concept(self.client(), &self.org, &uuid, &name).await;
        format!("rename concept {uuid} to {name:?}")
    }

    async fn remove_question(&mut self) -> String {
        let questions = self.questions(false).await;
        let Some((form, uuid)) = self.pick(&questions) else {
            return "no question to remove".into();
        };
        if self.rng.random_bool(0.5) {
            evolve::remove_question(self.client(), &self.org, &form, &uuid).await;
            format!("delete question {uuid} from {form}")
        } else {
            evolve::set_question_voided(self.client(), &self.org, &form, &uuid, true).await;
            format!("void question {uuid} on {form}")
        }
    }

    async fn restore_question(&mut self) -> String {
        let questions = self.questions(true).await;
        let Some((form, uuid)) = self.pick(&questions) else {
            return "no voided question to restore".into();
        };
        evolve::set_question_voided(self.client(), &self.org, &form, &uuid, false).await;
        format!("restore question {uuid} on {form}")
    }

    async fn change_type(&mut self) -> String {
        let questions = self.questions(false).await;
        let Some((_, uuid)) = self.pick(&questions) else {
            return "no question to retype".into();
        };
        let data_type = self.pick(&TYPES).unwrap_or("Text");
        evolve::change_concept_type(self.client(), &self.org, &uuid, data_type).await;
        format!("concept {uuid} becomes {data_type}")
    }

    async fn rename_entity(&mut self) -> String {
        let org = self.org.clone();
        let name = self.next_name("Renamed");
        match self.rng.random_range(0..3) {
            0 => {
                let key = self
                    .pick(&["person", "individual", "household", "group"])
                    .unwrap_or("person");
                evolve::rename_subject_type(self.client(), &org, key, &name).await;
                format!("subject type {key} renamed {name:?}")
            }
            1 => {
                let key = self.pick(&["pregnancy", "child"]).unwrap_or("child");
                evolve::rename_program(self.client(), &org, key, &name).await;
                format!("program {key} renamed {name:?}")
            }
            _ => {
                let key = self
                    .pick(&["anc", "growth", "home_visit", "survey", "group_meeting"])
                    .unwrap_or("anc");
                evolve::rename_encounter_type(self.client(), &org, key, &name).await;
                format!("encounter type {key} renamed {name:?}")
            }
        }
    }

    async fn toggle_mapping(&mut self) -> String {
        let forms = self.forms().await;
        // Restoring is as likely as voiding, once something is voided.
        let voided_forms: Vec<String> = self
            .client()
            .query(
                "SELECT f.name FROM form_mapping fm JOIN form f ON f.id = fm.form_id \
                 WHERE f.organisation_id = $1 AND fm.is_voided ORDER BY f.id",
                &[&self.org.id],
            )
            .await
            .expect("voided mappings")
            .iter()
            .map(|r| r.get(0))
            .collect();
        let pool = if !voided_forms.is_empty() && self.rng.random_bool(0.5) {
            voided_forms
        } else {
            forms
        };
        let Some(form) = self.pick(&pool) else {
            return "no form".into();
        };
        let voided: bool = self
            .client()
            .query_one(
                "SELECT bool_or(fm.is_voided) FROM form_mapping fm JOIN form f ON f.id = fm.form_id \
                 WHERE f.name = $1 AND f.organisation_id = $2",
                &[&form, &self.org.id],
            )
            .await
            .expect("mapping")
            .get(0);
        evolve::set_mapping_voided(self.client(), &self.org, &form, !voided).await;
        format!(
            "{} the mapping of {form}",
            if voided { "restore" } else { "void" }
        )
    }
}
