//! What ValidateNames reports (design/etl.md §3): for a plan (from an
//! organisation's current metadata, or from a proposed set of subject types,
//! programs and encounter types), every problem a person should know about.
//! Pure: no database.

use crate::engine::schema::naming;
use crate::engine::schema::plan::{ExistingSchema, PlannedTable, SchemaPlan, plan_schema};
use crate::engine::source::{FormMapping, NamedEntity, SourceModel, SubjectType};
use std::collections::{BTreeMap, HashSet};

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The set cannot be used as it is.
    Error,
    /// It works here, but differs from the reference system.
    Warning,
    /// For information.
    Notice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// Two entities normalise to the same table name; one got a hash suffix.
    Collision,
    /// Longer than 63 bytes; shortened with a hash.
    Shortened,
    /// Nothing left after normalisation.
    EmptyAfterNormalisation,
    /// The reference system's six/twenty-character trim gives two entities
    /// the same table.
    ReferenceCollision,
    /// The reference system would drop non-ASCII letters.
    ReferenceNonAscii,
    /// A name is empty or whitespace.
    MissingName,
    /// A program or encounter type names a subject type or program not in
    /// the set.
    UnknownReference,
    /// The name is taken in the schema by a relation this service did not
    /// make (an implementer's table or view); the table is named otherwise.
    ExistingRelation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameProblem {
    pub severity: Severity,
    pub kind: ProblemKind,
    pub message: String,
    /// The table name concerned (planned or reference).
    pub table_name: String,
    /// The entity names involved.
    pub names: Vec<String>,
}

/// The planned tables and what is wrong with their names.
#[derive(Debug, Clone)]
pub struct NameReport {
    pub tables: Vec<PlannedTable>,
    pub problems: Vec<NameProblem>,
}

impl NameReport {
    /// True when no problem is an error.
    pub fn valid(&self) -> bool {
        self.problems.iter().all(|p| p.severity != Severity::Error)
    }
}

/// A proposed set of entities, as the webapp sends it before saving.
#[derive(Debug, Clone, Default)]
pub struct ProposedSchema {
    pub subject_types: Vec<String>,
    pub programs: Vec<ProposedProgram>,
    pub encounter_types: Vec<ProposedEncounterType>,
}

#[derive(Debug, Clone, Default)]
pub struct ProposedProgram {
    pub name: String,
    pub subject_type_name: String,
    pub has_exit_form: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ProposedEncounterType {
    pub name: String,
    pub subject_type_name: String,
    /// Empty for a general encounter.
    pub program_name: String,
    pub has_cancel_form: bool,
}

/// Plans and checks a proposed set.
pub fn check_proposed(proposed: &ProposedSchema) -> NameReport {
    let (model, mut problems) = model_from_proposed(proposed);
    let plan = plan_schema(&model, &ExistingSchema::default());
    problems.extend(check_plan(&plan));
    NameReport {
        tables: plan.tables,
        problems,
    }
}

/// Every name problem of a plan.
pub fn check_plan(plan: &SchemaPlan) -> Vec<NameProblem> {
    let mut problems = Vec::new();
    for t in &plan.tables {
        let who = t.raw_parts.join(" / ");
        problems.extend(empty_parts(t));
        if t.shortened {
            problems.push(shortened(t, &who));
        }
        if t.disambiguated {
            problems.push(match taken_by_other(plan, t) {
                Some(other) => existing_relation(t, &who, other),
                None => collision(plan, t, &who),
            });
        }
        if t.raw_parts
            .iter()
            .any(|p| naming::reference_drops_characters(p))
        {
            problems.push(reference_non_ascii(t, &who));
        }
    }
    problems.extend(reference_collisions(plan));
    problems
}

/// The parts of a table's name that normalise to nothing.
fn empty_parts(t: &PlannedTable) -> impl Iterator<Item = NameProblem> + '_ {
    t.raw_parts
        .iter()
        .filter(|part| naming::normalise_part(part).is_empty())
        .map(|part| NameProblem {
            severity: Severity::Error,
            kind: ProblemKind::EmptyAfterNormalisation,
            message: format!(
                "{part:?} has no letter or digit; its table is named {} after a hash of the name \
                 — give it a name with letters or digits",
                t.name
            ),
            table_name: t.name.clone(),
            names: vec![part.clone()],
        })
}

fn shortened(t: &PlannedTable, who: &str) -> NameProblem {
    NameProblem {
        severity: Severity::Notice,
        kind: ProblemKind::Shortened,
        message: format!(
            "the table name for {who} ({} bytes) is longer than PostgreSQL's 63; it is shortened to {}",
            t.full_name.len(),
            t.name
        ),
        table_name: t.name.clone(),
        names: t.raw_parts.clone(),
    }
}

/// A table that got a hash suffix, and the table that has the name its
/// entities would give it.
fn collision(plan: &SchemaPlan, t: &PlannedTable, who: &str) -> NameProblem {
    let generated = generated_name(t);
    let other = plan
        .tables
        .iter()
        .find(|o| o.name == generated && o.identity != t.identity);
    let mut names = vec![who.to_string()];
    names.extend(other.map(|o| o.raw_parts.join(" / ")));
    NameProblem {
        severity: Severity::Warning,
        kind: ProblemKind::Collision,
        message: format!(
            "{} would share the table name {generated}; {who} gets {} instead",
            names.join(" and "),
            t.name
        ),
        table_name: t.name.clone(),
        names,
    }
}

/// The name of an implementer's relation the table would have had.
fn taken_by_other<'a>(plan: &'a SchemaPlan, t: &PlannedTable) -> Option<&'a str> {
    let generated = generated_name(t);
    plan.others
        .iter()
        .find(|o| **o == generated)
        .map(String::as_str)
}

fn existing_relation(t: &PlannedTable, who: &str, other: &str) -> NameProblem {
    NameProblem {
        severity: Severity::Warning,
        kind: ProblemKind::ExistingRelation,
        message: format!(
            "{other} is already a table or view in the schema that the ETL did not make (an \
             implementer's own); it is left as it is and {who}'s table is named {} instead — rename \
             one of them to give the table its usual name",
            t.name
        ),
        table_name: t.name.clone(),
        names: vec![who.to_string(), other.to_string()],
    }
}

fn reference_non_ascii(t: &PlannedTable, who: &str) -> NameProblem {
    NameProblem {
        severity: Severity::Warning,
        kind: ProblemKind::ReferenceNonAscii,
        message: format!(
            "the reference system drops non-ASCII letters: it would name {who}'s table {:?}, here it is {}",
            t.reference_name, t.name
        ),
        table_name: t.reference_name.clone(),
        names: t.raw_parts.clone(),
    }
}

/// Tables the reference system would give the same name.
fn reference_collisions(plan: &SchemaPlan) -> Vec<NameProblem> {
    let mut by_reference: BTreeMap<&str, Vec<&PlannedTable>> = BTreeMap::new();
    for t in &plan.tables {
        by_reference.entry(&t.reference_name).or_default().push(t);
    }
    let mut problems = Vec::new();
    for (reference, tables) in by_reference {
        if tables.len() < 2 {
            continue;
        }
        let names: Vec<String> = tables.iter().map(|t| t.raw_parts.join(" / ")).collect();
        problems.push(NameProblem {
            severity: Severity::Warning,
            kind: ProblemKind::ReferenceCollision,
            message: format!(
                "the reference system would give {} the same table {reference:?}; here they are {}",
                names.join(" and "),
                tables
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
            table_name: reference.to_string(),
            names,
        });
    }
    problems
}

/// The name a table's entities give it, before any disambiguating suffix.
fn generated_name(t: &PlannedTable) -> String {
    let parts: Vec<String> = t
        .raw_parts
        .iter()
        .map(|p| naming::normalised_part(p))
        .collect();
    naming::table_name(&parts).name
}

/// A source model for a proposed set (entities named by their names, one
/// form per planned table), and the problems of the set itself.
pub fn model_from_proposed(p: &ProposedSchema) -> (SourceModel, Vec<NameProblem>) {
    let mut building = ProposedModel::default();
    for name in &p.subject_types {
        building.add_subject_type(name);
    }
    for program in &p.programs {
        building.add_program(program);
    }
    for e in &p.encounter_types {
        building.add_encounter_type(e, &p.programs);
    }
    building.finish()
}

/// A source model being built from a proposed set, and what is wrong with
/// the set so far.
#[derive(Default)]
struct ProposedModel {
    model: SourceModel,
    problems: Vec<NameProblem>,
    /// (entity name, the name it refers to, what that is): reported after
    /// the missing names.
    unknown: Vec<(String, String, &'static str)>,
    subjects: HashSet<String>,
    programs: HashSet<String>,
    encounter_types: HashSet<String>,
}

impl ProposedModel {
    /// Whether `name` is a name; if not, a missing `what` is reported.
    fn named(&mut self, name: &str, what: &str) -> bool {
        if name.trim().is_empty() {
            self.problems.push(NameProblem {
                severity: Severity::Error,
                kind: ProblemKind::MissingName,
                message: format!("a {what} has no name"),
                table_name: String::new(),
                names: Vec::new(),
            });
            return false;
        }
        true
    }

    /// Whether `name`'s subject type is in the set; if not, it is reported.
    fn subject_known(&mut self, name: &str, subject_type_name: &str) -> bool {
        if !self.subjects.contains(subject_type_name) {
            self.unknown.push((
                name.to_string(),
                subject_type_name.to_string(),
                "subject type",
            ));
            return false;
        }
        true
    }

    fn add_subject_type(&mut self, name: &str) {
        if !self.named(name, "subject type") {
            return;
        }
        if self.subjects.insert(name.to_string()) {
            self.model.subject_types.push(SubjectType {
                uuid: format!("subject:{name}"),
                name: name.to_string(),
                kind: "Individual".into(),
                allow_middle_name: false,
            });
            self.model
                .mappings
                .push(mapping("IndividualProfile", name, None, None));
        }
    }

    fn add_program(&mut self, program: &ProposedProgram) {
        if !self.named(&program.name, "program")
            || !self.subject_known(&program.name, &program.subject_type_name)
        {
            return;
        }
        add_entity(
            &mut self.model.programs,
            &mut self.programs,
            "program",
            &program.name,
        );
        let st = &program.subject_type_name;
        self.model
            .mappings
            .push(mapping("ProgramEnrolment", st, Some(&program.name), None));
        if program.has_exit_form {
            self.model
                .mappings
                .push(mapping("ProgramExit", st, Some(&program.name), None));
        }
    }

    /// `programs` is the proposed set's: an encounter type may name any of
    /// them for its subject type, even one reported as unknown.
    fn add_encounter_type(&mut self, e: &ProposedEncounterType, programs: &[ProposedProgram]) {
        if !self.named(&e.name, "encounter type")
            || !self.subject_known(&e.name, &e.subject_type_name)
        {
            return;
        }
        let program = (!e.program_name.trim().is_empty()).then_some(e.program_name.as_str());
        if let Some(program) = program
            && !programs
                .iter()
                .any(|x| x.name == program && x.subject_type_name == e.subject_type_name)
        {
            self.unknown
                .push((e.name.clone(), program.to_string(), "program"));
            return;
        }
        add_entity(
            &mut self.model.encounter_types,
            &mut self.encounter_types,
            "encounter_type",
            &e.name,
        );
        let st = &e.subject_type_name;
        let (kind, cancel) = if program.is_some() {
            ("ProgramEncounter", "ProgramEncounterCancellation")
        } else {
            ("Encounter", "IndividualEncounterCancellation")
        };
        self.model
            .mappings
            .push(mapping(kind, st, program, Some(&e.name)));
        if e.has_cancel_form {
            self.model
                .mappings
                .push(mapping(cancel, st, program, Some(&e.name)));
        }
    }

    fn finish(mut self) -> (SourceModel, Vec<NameProblem>) {
        for (name, reference, what) in self.unknown {
            self.problems.push(NameProblem {
                severity: Severity::Error,
                kind: ProblemKind::UnknownReference,
                message: format!(
                    "{name:?} refers to {what} {reference:?}, which is not in the set"
                ),
                table_name: String::new(),
                names: vec![name, reference],
            });
        }
        (self.model, self.problems)
    }
}

/// Adds the entity `name` (its uuid `<prefix>:<name>`) unless `seen` has it.
fn add_entity(
    entities: &mut Vec<NamedEntity>,
    seen: &mut HashSet<String>,
    prefix: &str,
    name: &str,
) {
    if seen.insert(name.to_string()) {
        entities.push(NamedEntity {
            uuid: format!("{prefix}:{name}"),
            name: name.to_string(),
        });
    }
}

fn mapping(
    form_type: &str,
    subject: &str,
    program: Option<&str>,
    encounter: Option<&str>,
) -> FormMapping {
    FormMapping {
        form_uuid: format!(
            "{form_type}:{subject}:{}:{}",
            program.unwrap_or(""),
            encounter.unwrap_or("")
        ),
        form_type: form_type.into(),
        subject_type_uuid: format!("subject:{subject}"),
        program_uuid: program.map(|p| format!("program:{p}")),
        encounter_type_uuid: encounter.map(|e| format!("encounter_type:{e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encounter(name: &str, subject: &str, program: &str) -> ProposedEncounterType {
        ProposedEncounterType {
            name: name.into(),
            subject_type_name: subject.into(),
            program_name: program.into(),
            has_cancel_form: false,
        }
    }

    #[test]
    fn six_character_pairs_long_and_hindi_names_are_reported_and_kept_apart() {
        let long = "Comprehensive household socio economic survey with livestock and land holdings";
        let proposed = ProposedSchema {
            subject_types: vec!["Individual".into(), "व्यक्ति".into()],
            programs: vec![ProposedProgram {
                name: "Maternal health programme for high risk pregnancies".into(),
                subject_type_name: "Individual".into(),
                has_exit_form: true,
            }],
            encounter_types: vec![
                encounter(
                    "Antenatal care visit first",
                    "Individual",
                    "Maternal health programme for high risk pregnancies",
                ),
                encounter(
                    "Antenatal care visit second",
                    "Individual",
                    "Maternal health programme for high risk pregnancies",
                ),
                encounter(long, "Individual", ""),
                encounter("गृह भ्रमण", "व्यक्ति", ""),
            ],
        };
        let report = check_proposed(&proposed);
        let names: Vec<&str> = report.tables.iter().map(|t| t.name.as_str()).collect();
        let distinct: HashSet<&str> = names.iter().copied().collect();
        assert_eq!(distinct.len(), names.len(), "{names:?}");
        assert!(names.contains(&"व्यक्ति_गृह_भ्रमण"), "{names:?}");
        let kinds = |k: ProblemKind| report.problems.iter().filter(|p| p.kind == k).count();
        // The two antenatal visits collide only under the reference rule.
        assert_eq!(
            kinds(ProblemKind::ReferenceCollision),
            1,
            "{:#?}",
            report.problems
        );
        assert_eq!(kinds(ProblemKind::Collision), 0);
        assert!(kinds(ProblemKind::Shortened) >= 1);
        assert!(kinds(ProblemKind::ReferenceNonAscii) >= 2);
        assert!(report.valid());
        let collision = report
            .problems
            .iter()
            .find(|p| p.kind == ProblemKind::ReferenceCollision)
            .expect("collision");
        assert_eq!(collision.severity, Severity::Warning);
        assert_eq!(collision.names.len(), 2);
    }

    #[test]
    fn empty_missing_unknown_and_colliding_names_are_reported() {
        let proposed = ProposedSchema {
            subject_types: vec!["Person".into(), "!!!".into(), " ".into()],
            programs: vec![ProposedProgram {
                name: "Child".into(),
                subject_type_name: "Nobody".into(),
                has_exit_form: false,
            }],
            encounter_types: vec![
                encounter("ANC", "Person", ""),
                encounter("anc!", "Person", ""),
                encounter("Visit", "Person", "Unknown program"),
            ],
        };
        let report = check_proposed(&proposed);
        let kinds: Vec<ProblemKind> = report.problems.iter().map(|p| p.kind).collect();
        assert!(kinds.contains(&ProblemKind::MissingName));
        assert!(kinds.contains(&ProblemKind::EmptyAfterNormalisation));
        assert_eq!(
            kinds
                .iter()
                .filter(|k| **k == ProblemKind::UnknownReference)
                .count(),
            2
        );
        let collision = report
            .problems
            .iter()
            .find(|p| p.kind == ProblemKind::Collision)
            .expect("ANC and anc! collide");
        assert_eq!(collision.names.len(), 2, "{collision:?}");
        assert!(!report.valid());
    }

    #[test]
    fn a_name_an_implementers_relation_holds_is_reported_as_such() {
        let proposed = ProposedSchema {
            subject_types: vec!["Person".into()],
            ..ProposedSchema::default()
        };
        let (model, _) = model_from_proposed(&proposed);
        let existing = ExistingSchema {
            others: vec!["person".into()],
            ..ExistingSchema::default()
        };
        let plan = plan_schema(&model, &existing);
        let person = plan
            .tables
            .iter()
            .find(|t| t.raw_parts == ["Person"])
            .expect("the subject table");
        assert_ne!(person.name, "person");
        let problems = check_plan(&plan);
        let clash: Vec<_> = problems
            .iter()
            .filter(|p| p.kind == ProblemKind::ExistingRelation)
            .collect();
        assert_eq!(clash.len(), 1, "{problems:?}");
        assert_eq!(clash[0].table_name, person.name);
        assert_eq!(
            clash[0].names,
            vec!["Person".to_string(), "person".to_string()]
        );
        assert!(
            !problems.iter().any(|p| p.kind == ProblemKind::Collision),
            "not a collision between two entities: {problems:?}"
        );
    }
}
