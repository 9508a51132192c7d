//! The desired reporting schema of an organisation (design/etl.md §2–3):
//! which tables, with which columns and types, under which names. Pure:
//! built from a [`SourceModel`] and the schema as it stands, so the same
//! metadata always gives the same plan, and ValidateNames can plan a
//! proposed set without touching a database.
//!
//! Names are unique within the schema by construction: a table or column
//! that exists keeps its name, and a new one whose name is taken gets a
//! suffix hashed from its identity, so no two entities ever share a table.

use crate::layout::{ColumnType, FixedColumn, TableKind, fixed_columns};
use crate::naming;
use crate::source::{FormElement, SourceModel, SubjectType};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What a table is for, independent of its name: the entity uuids it is
/// built from. A rename of an entity keeps the identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableIdentity {
    pub kind: TableKind,
    pub subject_type_uuid: Option<String>,
    pub program_uuid: Option<String>,
    pub encounter_type_uuid: Option<String>,
    /// The question-group concept of a repeatable-group table.
    pub group_concept_uuid: Option<String>,
    /// The kind of table that owns a repeatable-group table.
    pub owner_kind: Option<TableKind>,
}

impl TableIdentity {
    fn new(
        kind: TableKind,
        subject_type: &str,
        program: Option<&str>,
        encounter_type: Option<&str>,
    ) -> Self {
        Self {
            kind,
            subject_type_uuid: Some(subject_type.to_string()),
            program_uuid: program.map(str::to_string),
            encounter_type_uuid: encounter_type.map(str::to_string),
            group_concept_uuid: None,
            owner_kind: None,
        }
    }

    fn address() -> Self {
        Self {
            kind: TableKind::Address,
            subject_type_uuid: None,
            program_uuid: None,
            encounter_type_uuid: None,
            group_concept_uuid: None,
            owner_kind: None,
        }
    }

    /// The owning table's identity of a repeatable-group table.
    pub fn owner(&self) -> Option<TableIdentity> {
        self.owner_kind.map(|kind| TableIdentity {
            kind,
            group_concept_uuid: None,
            owner_kind: None,
            ..self.clone()
        })
    }

    /// A stable text form, hashed into disambiguating suffixes.
    pub fn key(&self) -> String {
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        format!(
            "{:?}|{}|{}|{}|{}|{:?}",
            self.kind,
            o(&self.subject_type_uuid),
            o(&self.program_uuid),
            o(&self.encounter_type_uuid),
            o(&self.group_concept_uuid),
            self.owner_kind
        )
    }
}

/// Where a planned column's values come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnSource {
    /// A form question.
    Concept {
        concept_uuid: String,
        concept_name: String,
        data_type: String,
        multi_select: bool,
        /// A coded concept's answers: (answer uuid, answer name).
        answers: Vec<(String, String)>,
        /// The question group the concept belongs to, if any.
        parent_concept_uuid: Option<String>,
        /// The value sits inside the parent group's object in the row's
        /// observations (a non-repeatable group's child).
        nested: bool,
    },
    /// An address table's column for one level type: its title, or its id.
    AddressLevel { type_name: String, id: bool },
}

impl ColumnSource {
    /// The identity the metadata stores for the column.
    pub fn key(&self, name: &str) -> String {
        match self {
            ColumnSource::Concept {
                concept_uuid,
                parent_concept_uuid,
                ..
            } => concept_key(concept_uuid, parent_concept_uuid.as_deref()),
            ColumnSource::AddressLevel { .. } => name_key(name),
        }
    }
}

pub fn concept_key(concept_uuid: &str, parent: Option<&str>) -> String {
    format!("concept:{concept_uuid}:{}", parent.unwrap_or(""))
}

pub fn name_key(name: &str) -> String {
    format!("name:{name}")
}

/// A column beyond the fixed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedColumn {
    pub name: String,
    pub sql_type: ColumnType,
    pub source: ColumnSource,
}

impl PlannedColumn {
    pub fn key(&self) -> String {
        self.source.key(&self.name)
    }
}

/// One table of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTable {
    pub identity: TableIdentity,
    pub name: String,
    /// The joined normalised parts before shortening.
    pub full_name: String,
    /// Shortened to fit 63 bytes (with a hash).
    pub shortened: bool,
    /// Given a hash suffix because another table had its name.
    pub disambiguated: bool,
    /// The name the reference system would give it.
    pub reference_name: String,
    /// The entity names the name is made of, as the organisation shows them.
    pub raw_parts: Vec<String>,
    pub subject_type_name: Option<String>,
    pub program_name: Option<String>,
    pub encounter_type_name: Option<String>,
    pub group_concept_name: Option<String>,
    /// `Person`, `Individual`, ... for subject tables (and their children).
    pub subject_kind: String,
    pub allow_middle_name: bool,
    pub form_uuids: Vec<String>,
    pub fixed: Vec<FixedColumn>,
    pub columns: Vec<PlannedColumn>,
}

impl PlannedTable {
    /// Every column name in table order.
    pub fn column_names(&self) -> Vec<&str> {
        self.fixed
            .iter()
            .map(|c| c.name)
            .chain(self.columns.iter().map(|c| c.name.as_str()))
            .collect()
    }
}

/// The whole schema's plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaPlan {
    pub tables: Vec<PlannedTable>,
}

/// What already exists, as far as naming is concerned: each existing
/// table's identity, name, and column names by column identity.
#[derive(Debug, Clone, Default)]
pub struct ExistingNames {
    pub tables: Vec<ExistingTableNames>,
}

#[derive(Debug, Clone)]
pub struct ExistingTableNames {
    pub identity: TableIdentity,
    pub name: String,
    /// Column identity -> name, every column of the table.
    pub columns: Vec<(String, String)>,
}

struct Draft {
    identity: TableIdentity,
    raw_parts: Vec<String>,
    subject: SubjectType,
    program_name: Option<String>,
    encounter_type_name: Option<String>,
    group_concept_name: Option<String>,
    form_uuids: Vec<String>,
    columns: Vec<(String, ColumnType, ColumnSource)>,
}

/// Plans the schema for `model`, keeping the names of what `existing`
/// already has.
pub fn plan_schema(model: &SourceModel, existing: &ExistingNames) -> SchemaPlan {
    let mut drafts = table_drafts(model);
    drafts.push(address_draft(model));
    // The address table is named first, so it is always `address`.
    drafts.sort_by_cached_key(|d| {
        (
            d.identity.kind != TableKind::Address,
            d.identity.owner_kind.unwrap_or(d.identity.kind),
            d.identity.kind,
            d.raw_parts
                .iter()
                .map(|p| naming::normalise_part(p))
                .collect::<Vec<_>>(),
            d.identity.clone(),
        )
    });
    let existing_by_identity: HashMap<&TableIdentity, &ExistingTableNames> =
        existing.tables.iter().map(|t| (&t.identity, t)).collect();
    let mut used: HashSet<String> = existing.tables.iter().map(|t| t.name.clone()).collect();
    let mut tables = Vec::with_capacity(drafts.len());
    for draft in drafts {
        let parts: Vec<String> = draft.raw_parts.iter().map(|p| normalised_part(p)).collect();
        let generated = naming::table_name(&parts);
        let known = existing_by_identity.get(&draft.identity).copied();
        let name = match known {
            Some(t) => t.name.clone(),
            None if !used.contains(&generated.name) => generated.name.clone(),
            None => unique(
                naming::fit_parts(&parts, &naming::stable_hash(&draft.identity.key())),
                &used,
            ),
        };
        let disambiguated = name != generated.name;
        used.insert(name.clone());
        let raw_refs: Vec<&str> = draft.raw_parts.iter().map(String::as_str).collect();
        let fixed = fixed_columns(
            draft.identity.kind,
            &draft.subject.kind,
            draft.subject.allow_middle_name,
            draft.identity.owner_kind,
        );
        let columns = name_columns(&fixed, draft.columns, known);
        tables.push(PlannedTable {
            reference_name: naming::reference_table_name(&raw_refs),
            identity: draft.identity,
            name,
            full_name: generated.full_name,
            shortened: generated.shortened,
            disambiguated,
            raw_parts: draft.raw_parts,
            subject_type_name: (draft.subject.kind != ADDRESS_KIND).then_some(draft.subject.name),
            program_name: draft.program_name,
            encounter_type_name: draft.encounter_type_name,
            group_concept_name: draft.group_concept_name,
            subject_kind: draft.subject.kind,
            allow_middle_name: draft.subject.allow_middle_name,
            form_uuids: draft.form_uuids,
            fixed,
            columns,
        });
    }
    SchemaPlan { tables }
}

const ADDRESS_KIND: &str = "Address";

/// A normalised part; a name with nothing left after normalisation (only
/// punctuation, say) becomes a hash of itself, so a run still gets a valid,
/// stable table (ValidateNames reports it as an error all the same).
fn normalised_part(raw: &str) -> String {
    let n = naming::normalise_part(raw);
    if n.is_empty() {
        format!("x{}", naming::stable_hash(raw))
    } else {
        n
    }
}

/// `name`, or `name` with a counter suffix if even the hashed name is taken.
fn unique(name: String, used: &HashSet<String>) -> String {
    if !used.contains(&name) {
        return name;
    }
    (2..)
        .map(|n| naming::with_suffix(&name, &n.to_string()))
        .find(|candidate| !used.contains(candidate))
        .unwrap_or(name)
}

fn name_columns(
    fixed: &[FixedColumn],
    drafts: Vec<(String, ColumnType, ColumnSource)>,
    existing: Option<&ExistingTableNames>,
) -> Vec<PlannedColumn> {
    let known: HashMap<&str, &str> = existing
        .map(|t| {
            t.columns
                .iter()
                .map(|(k, n)| (k.as_str(), n.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let mut used: HashSet<String> = fixed.iter().map(|c| c.name.to_string()).collect();
    if let Some(t) = existing {
        used.extend(t.columns.iter().map(|(_, n)| n.clone()));
    }
    let mut columns = Vec::with_capacity(drafts.len());
    for (raw, sql_type, source) in drafts {
        let candidate = naming::column_name(&raw);
        let key = source.key(&candidate);
        let name = match known.get(key.as_str()) {
            Some(n) => n.to_string(),
            None if !used.contains(&candidate) => candidate,
            None => unique(
                naming::with_suffix(&candidate, &naming::stable_hash(&key)),
                &used,
            ),
        };
        used.insert(name.clone());
        columns.push(PlannedColumn {
            name,
            sql_type,
            source,
        });
    }
    columns
}

fn table_drafts(model: &SourceModel) -> Vec<Draft> {
    let subjects: HashMap<&str, &SubjectType> = model
        .subject_types
        .iter()
        .map(|s| (s.uuid.as_str(), s))
        .collect();
    let programs: HashMap<&str, &str> = model
        .programs
        .iter()
        .map(|p| (p.uuid.as_str(), p.name.as_str()))
        .collect();
    let encounter_types: HashMap<&str, &str> = model
        .encounter_types
        .iter()
        .map(|e| (e.uuid.as_str(), e.name.as_str()))
        .collect();

    let mut forms: BTreeMap<TableIdentity, Vec<String>> = BTreeMap::new();
    for m in &model.mappings {
        let Some(subject) = subjects.get(m.subject_type_uuid.as_str()) else {
            continue;
        };
        if subject.kind == "User" {
            continue;
        }
        let program = m.program_uuid.as_deref();
        let encounter = m.encounter_type_uuid.as_deref();
        let known_program = program.is_some_and(|p| programs.contains_key(p));
        let known_encounter = encounter.is_some_and(|e| encounter_types.contains_key(e));
        let kind = match (m.form_type.as_str(), known_program, known_encounter) {
            ("IndividualProfile", _, _) => TableKind::Subject,
            ("ProgramEnrolment", true, _) => TableKind::ProgramEnrolment,
            ("ProgramExit", true, _) => TableKind::ProgramExit,
            ("ProgramEncounter", true, true) => TableKind::ProgramEncounter,
            ("ProgramEncounterCancellation", true, true) => TableKind::ProgramEncounterCancel,
            ("Encounter", _, true) => TableKind::Encounter,
            ("IndividualEncounterCancellation", _, true) => TableKind::EncounterCancel,
            _ => continue,
        };
        let identity = match kind {
            TableKind::Subject => TableIdentity::new(kind, &subject.uuid, None, None),
            TableKind::ProgramEnrolment | TableKind::ProgramExit => {
                TableIdentity::new(kind, &subject.uuid, program, None)
            }
            TableKind::Encounter | TableKind::EncounterCancel => {
                TableIdentity::new(kind, &subject.uuid, None, encounter)
            }
            _ => TableIdentity::new(kind, &subject.uuid, program, encounter),
        };
        let list = forms.entry(identity).or_default();
        if !list.contains(&m.form_uuid) {
            list.push(m.form_uuid.clone());
        }
    }

    let mut drafts = Vec::new();
    for (identity, form_uuids) in forms {
        let Some(subject) = identity
            .subject_type_uuid
            .as_deref()
            .and_then(|s| subjects.get(s))
        else {
            continue;
        };
        let program_name = identity
            .program_uuid
            .as_deref()
            .and_then(|p| programs.get(p))
            .map(|s| s.to_string());
        let encounter_type_name = identity
            .encounter_type_uuid
            .as_deref()
            .and_then(|e| encounter_types.get(e))
            .map(|s| s.to_string());
        let mut raw_parts = vec![subject.name.clone()];
        raw_parts.extend(program_name.clone());
        raw_parts.extend(encounter_type_name.clone());
        match identity.kind {
            TableKind::ProgramExit => raw_parts.push("exit".into()),
            TableKind::ProgramEncounterCancel | TableKind::EncounterCancel => {
                raw_parts.push("cancel".into())
            }
            _ => {}
        }
        let elements: Vec<&FormElement> = form_uuids
            .iter()
            .flat_map(|f| model.form_elements.get(f).into_iter().flatten())
            .collect();
        let (columns, groups) = question_columns(&elements, &model.answers);
        for (group_uuid, (group_name, children)) in groups {
            let mut parts = raw_parts.clone();
            parts.push(group_name.clone());
            drafts.push(Draft {
                identity: TableIdentity {
                    kind: TableKind::RepeatableQuestionGroup,
                    group_concept_uuid: Some(group_uuid),
                    owner_kind: Some(identity.kind),
                    ..identity.clone()
                },
                raw_parts: parts,
                subject: (*subject).clone(),
                program_name: program_name.clone(),
                encounter_type_name: encounter_type_name.clone(),
                group_concept_name: Some(group_name),
                form_uuids: form_uuids.clone(),
                columns: children,
            });
        }
        drafts.push(Draft {
            identity,
            raw_parts,
            subject: (*subject).clone(),
            program_name,
            encounter_type_name,
            group_concept_name: None,
            form_uuids,
            columns,
        });
    }
    drafts
}

type ColumnDraft = (String, ColumnType, ColumnSource);
/// Repeatable groups of a form: group uuid -> (group name, child columns).
type RepeatableGroups = BTreeMap<String, (String, Vec<ColumnDraft>)>;

/// A table's question columns in form order, and its repeatable groups
/// (group uuid -> (group name, child columns)), each concept once.
fn question_columns(
    elements: &[&FormElement],
    answers: &BTreeMap<String, Vec<(String, String)>>,
) -> (Vec<ColumnDraft>, RepeatableGroups) {
    let mut columns: Vec<ColumnDraft> = Vec::new();
    let mut groups: RepeatableGroups = BTreeMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    for e in elements {
        if e.data_type == "QuestionGroup" {
            continue;
        }
        let key = concept_key(&e.concept_uuid, e.parent_concept_uuid.as_deref());
        if !seen.insert(key) {
            continue;
        }
        let sql_type = ColumnType::for_concept(&e.data_type);
        let multi_select =
            e.data_type == "Coded" && e.element_type.as_deref() == Some("MultiSelect");
        let source = |nested: bool| ColumnSource::Concept {
            concept_uuid: e.concept_uuid.clone(),
            concept_name: e.concept_name.clone(),
            data_type: e.data_type.clone(),
            multi_select,
            answers: answers.get(&e.concept_uuid).cloned().unwrap_or_default(),
            parent_concept_uuid: e.parent_concept_uuid.clone(),
            nested,
        };
        match (&e.parent_concept_uuid, &e.parent_concept_name) {
            (Some(parent), Some(parent_name)) if e.parent_repeatable => {
                groups
                    .entry(parent.clone())
                    .or_insert_with(|| (parent_name.clone(), Vec::new()))
                    .1
                    .push((e.concept_name.clone(), sql_type, source(false)));
            }
            (Some(_), Some(parent_name)) => columns.push((
                format!("{parent_name} {}", e.concept_name),
                sql_type,
                source(true),
            )),
            _ => columns.push((e.concept_name.clone(), sql_type, source(false))),
        }
    }
    (columns, groups)
}

fn address_draft(model: &SourceModel) -> Draft {
    let mut columns = Vec::new();
    for level in &model.address_level_types {
        columns.push((
            level.clone(),
            ColumnType::Text,
            ColumnSource::AddressLevel {
                type_name: level.clone(),
                id: false,
            },
        ));
        columns.push((
            format!("{level} id"),
            ColumnType::Bigint,
            ColumnSource::AddressLevel {
                type_name: level.clone(),
                id: true,
            },
        ));
    }
    Draft {
        identity: TableIdentity::address(),
        raw_parts: vec!["address".into()],
        subject: SubjectType {
            uuid: String::new(),
            name: "address".into(),
            kind: ADDRESS_KIND.into(),
            allow_middle_name: false,
        },
        program_name: None,
        encounter_type_name: None,
        group_concept_name: None,
        form_uuids: Vec::new(),
        columns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{FormMapping, NamedEntity};

    fn subject(uuid: &str, name: &str, kind: &str) -> SubjectType {
        SubjectType {
            uuid: uuid.into(),
            name: name.into(),
            kind: kind.into(),
            allow_middle_name: false,
        }
    }

    fn mapping(form: &str, ty: &str, st: &str, p: Option<&str>, et: Option<&str>) -> FormMapping {
        FormMapping {
            form_uuid: form.into(),
            form_type: ty.into(),
            subject_type_uuid: st.into(),
            program_uuid: p.map(Into::into),
            encounter_type_uuid: et.map(Into::into),
        }
    }

    fn element(form: &str, uuid: &str, name: &str, data_type: &str) -> FormElement {
        FormElement {
            form_uuid: form.into(),
            concept_uuid: uuid.into(),
            concept_name: name.into(),
            data_type: data_type.into(),
            element_type: None,
            repeatable: false,
            parent_concept_uuid: None,
            parent_concept_name: None,
            parent_repeatable: false,
        }
    }

    fn model() -> SourceModel {
        let mut m = SourceModel {
            subject_types: vec![subject("st1", "Person", "Person")],
            programs: vec![NamedEntity {
                uuid: "p1".into(),
                name: "Pregnancy".into(),
            }],
            encounter_types: vec![
                NamedEntity {
                    uuid: "e1".into(),
                    name: "ANC".into(),
                },
                NamedEntity {
                    uuid: "e2".into(),
                    name: "Home visit".into(),
                },
            ],
            mappings: vec![
                mapping("f1", "IndividualProfile", "st1", None, None),
                mapping("f2", "ProgramEnrolment", "st1", Some("p1"), None),
                mapping("f3", "ProgramExit", "st1", Some("p1"), None),
                mapping("f4", "ProgramEncounter", "st1", Some("p1"), Some("e1")),
                mapping(
                    "f5",
                    "ProgramEncounterCancellation",
                    "st1",
                    Some("p1"),
                    Some("e1"),
                ),
                mapping("f6", "Encounter", "st1", None, Some("e2")),
                mapping(
                    "f7",
                    "IndividualEncounterCancellation",
                    "st1",
                    None,
                    Some("e2"),
                ),
            ],
            address_level_types: vec!["State".into(), "District".into()],
            ..Default::default()
        };
        let mut child = element("f1", "c3", "Name", "Text");
        child.parent_concept_uuid = Some("g1".into());
        child.parent_concept_name = Some("Family".into());
        child.parent_repeatable = true;
        let mut nested = element("f1", "c4", "Systolic", "Numeric");
        nested.parent_concept_uuid = Some("g2".into());
        nested.parent_concept_name = Some("BP".into());
        m.form_elements.insert(
            "f1".into(),
            vec![
                element("f1", "c1", "Weight", "Numeric"),
                element("f1", "c2", "id", "Text"),
                element("f1", "g1", "Family", "QuestionGroup"),
                child,
                element("f1", "g2", "BP", "QuestionGroup"),
                nested,
            ],
        );
        m
    }

    #[test]
    fn plans_every_table_type_with_reference_names() {
        let plan = plan_schema(&model(), &ExistingNames::default());
        let names: Vec<&str> = plan.tables.iter().map(|t| t.name.as_str()).collect();
        for expected in [
            "person",
            "person_pregnancy",
            "person_pregnancy_exit",
            "person_pregnancy_anc",
            "person_pregnancy_anc_cancel",
            "person_home_visit",
            "person_home_visit_cancel",
            "person_family",
            "address",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        let person = plan
            .tables
            .iter()
            .find(|t| t.name == "person")
            .expect("person");
        let cols: Vec<&str> = person.columns.iter().map(|c| c.name.as_str()).collect();
        // "id" collides with the fixed column and gets a hash suffix.
        assert_eq!(cols[0], "Weight");
        assert!(
            cols[1].starts_with("id_") && cols[1].len() == 11,
            "{cols:?}"
        );
        assert_eq!(cols[2], "BP Systolic");
        assert_eq!(cols.len(), 3);
        let family = plan
            .tables
            .iter()
            .find(|t| t.name == "person_family")
            .expect("rqg");
        assert_eq!(family.columns[0].name, "Name");
        assert_eq!(family.fixed[0].name, "individual_id");
        let address = plan
            .tables
            .iter()
            .find(|t| t.name == "address")
            .expect("address");
        let cols: Vec<&str> = address.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(cols, vec!["State", "State id", "District", "District id"]);
    }

    #[test]
    fn colliding_names_get_distinct_tables_and_existing_names_stay() {
        let mut m = model();
        m.subject_types
            .push(subject("st2", "person!", "Individual"));
        m.subject_types.push(subject("st3", "Address", "Household"));
        m.mappings
            .push(mapping("f8", "IndividualProfile", "st2", None, None));
        m.mappings
            .push(mapping("f9", "IndividualProfile", "st3", None, None));
        let plan = plan_schema(&m, &ExistingNames::default());
        let mut names: Vec<&str> = plan.tables.iter().map(|t| t.name.as_str()).collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "names must be unique: {names:?}");
        assert!(plan.tables.iter().filter(|t| t.disambiguated).count() >= 2);

        // A table that exists keeps its name even when another entity would
        // now be planned under it.
        let second = plan_schema(&m, &existing_of(&plan));
        assert_eq!(second, plan);
        let address = plan
            .tables
            .iter()
            .find(|t| t.identity.kind == TableKind::Address);
        assert_eq!(address.map(|t| t.name.as_str()), Some("address"));
        let st2 = plan
            .tables
            .iter()
            .find(|t| {
                t.identity.subject_type_uuid.as_deref() == Some("st2")
                    && t.identity.kind == TableKind::Subject
            })
            .expect("st2");
        let mut swapped = existing_of(&plan);
        for t in &mut swapped.tables {
            if t.identity == st2.identity {
                t.name = "person".into();
            } else if t.name == "person" {
                t.name = st2.name.clone();
            }
        }
        let third = plan_schema(&m, &swapped);
        let st2_again = third
            .tables
            .iter()
            .find(|t| t.identity == st2.identity)
            .expect("st2");
        assert_eq!(st2_again.name, "person");
    }

    fn existing_of(plan: &SchemaPlan) -> ExistingNames {
        ExistingNames {
            tables: plan
                .tables
                .iter()
                .map(|t| ExistingTableNames {
                    identity: t.identity.clone(),
                    name: t.name.clone(),
                    columns: t
                        .columns
                        .iter()
                        .map(|c| (c.key(), c.name.clone()))
                        .collect(),
                })
                .collect(),
        }
    }
}
