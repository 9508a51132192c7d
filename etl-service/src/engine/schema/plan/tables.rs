//! Which tables the plan has and what each is for: a [`TableIdentity`] per
//! form mapping's table kind (subject, enrolment, exit, visit, cancel), one
//! per repeatable question group of its forms, and the address table, each
//! as a [`Draft`] with the entity names its table name is made of and the
//! columns its questions give, in the order the plan names them.

use crate::engine::schema::layout::TableKind;
use crate::engine::schema::naming;
use crate::engine::schema::plan::columns::{ColumnDraft, address_columns, question_columns};
use crate::engine::source::{FormElement, FormMapping, SourceModel, SubjectType};
use std::collections::{BTreeMap, HashMap};

/// The drafts of the users, sync telemetry and membership tables.
mod avni_drafts {
    use super::{Draft, TableIdentity};
    use crate::engine::schema::layout::TableKind;
    use crate::engine::source::{SourceModel, SubjectType};
    use std::collections::BTreeSet;

    /// `users` and `sync_telemetry`, which every schema has.
    pub(super) fn fixed_drafts() -> Vec<Draft> {
        [
            (TableKind::Users, "users"),
            (TableKind::SyncTelemetry, "sync_telemetry"),
        ]
        .into_iter()
        .map(|(kind, name)| fixed_draft(TableIdentity::fixed(kind), name))
        .collect()
    }

    fn fixed_draft(identity: TableIdentity, name: &str) -> Draft {
        Draft {
            identity,
            raw_parts: vec![name.into()],
            subject: SubjectType {
                uuid: String::new(),
                name: name.into(),
                kind: name.into(),
                allow_middle_name: false,
            },
            program_name: None,
            encounter_type_name: None,
            group_concept_name: None,
            form_uuids: Vec::new(),
            columns: Vec::new(),
        }
    }

    /// One table per group (or household) subject type with a
    /// registration form and member subject type of its group roles, as
    /// avni-etl has them, named `<group>_<member>`.
    pub(super) fn membership_drafts(model: &SourceModel) -> Vec<Draft> {
        let subject = |uuid: &str| model.subject_types.iter().find(|s| s.uuid == uuid);
        let registered: BTreeSet<&str> = model
            .mappings
            .iter()
            .filter(|m| m.form_type == "IndividualProfile")
            .map(|m| m.subject_type_uuid.as_str())
            .collect();
        let pairs: BTreeSet<(&str, &str)> = model
            .group_roles
            .iter()
            .map(|r| {
                (
                    r.group_subject_type_uuid.as_str(),
                    r.member_subject_type_uuid.as_str(),
                )
            })
            .collect();
        pairs
            .into_iter()
            .filter(|(group, _)| registered.contains(group))
            .filter_map(|(group, member)| {
                let (group, member) = (subject(group)?, subject(member)?);
                let kind = match group.kind.as_str() {
                    "Household" => TableKind::HouseholdToMember,
                    "Group" => TableKind::GroupToMember,
                    _ => return None,
                };
                Some(Draft {
                    identity: TableIdentity::membership(kind, &group.uuid, &member.uuid),
                    raw_parts: vec![group.name.clone(), member.name.clone()],
                    subject: group.clone(),
                    program_name: None,
                    encounter_type_name: None,
                    group_concept_name: None,
                    form_uuids: Vec::new(),
                    columns: Vec::new(),
                })
            })
            .collect()
    }
}

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
    /// The member subject type of a group-to-member table (whose
    /// `subject_type_uuid` is the group's).
    pub member_subject_type_uuid: Option<String>,
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
            member_subject_type_uuid: None,
        }
    }

    /// The identity of a table of `kind` built from no entity (`address`,
    /// `users`, `sync_telemetry`).
    fn fixed(kind: TableKind) -> Self {
        Self {
            kind,
            subject_type_uuid: None,
            program_uuid: None,
            encounter_type_uuid: None,
            group_concept_uuid: None,
            owner_kind: None,
            member_subject_type_uuid: None,
        }
    }

    fn address() -> Self {
        Self::fixed(TableKind::Address)
    }

    /// The identity of the memberships table of a group (or household)
    /// subject type and a member subject type.
    fn membership(kind: TableKind, group: &str, member: &str) -> Self {
        Self {
            member_subject_type_uuid: Some(member.to_string()),
            ..Self::new(kind, group, None, None)
        }
    }

    /// The identity of a table of `kind` for one mapping: each kind keeps
    /// only the entities it is made of.
    fn for_mapping(
        kind: TableKind,
        subject_type: &str,
        program: Option<&str>,
        encounter_type: Option<&str>,
    ) -> Self {
        match kind {
            TableKind::Subject => Self::new(kind, subject_type, None, None),
            TableKind::ProgramEnrolment | TableKind::ProgramExit => {
                Self::new(kind, subject_type, program, None)
            }
            TableKind::Encounter | TableKind::EncounterCancel => {
                Self::new(kind, subject_type, None, encounter_type)
            }
            _ => Self::new(kind, subject_type, program, encounter_type),
        }
    }

    /// The identity of the table of a repeatable group owned by this one.
    fn group(&self, group_concept_uuid: String) -> Self {
        TableIdentity {
            kind: TableKind::RepeatableQuestionGroup,
            group_concept_uuid: Some(group_concept_uuid),
            owner_kind: Some(self.kind),
            ..self.clone()
        }
    }

    /// A table whose name is fixed (built from no entity).
    pub(super) fn is_fixed(&self) -> bool {
        matches!(
            self.kind,
            TableKind::Address | TableKind::Users | TableKind::SyncTelemetry
        )
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
        let key = format!(
            "{:?}|{}|{}|{}|{}|{:?}",
            self.kind,
            o(&self.subject_type_uuid),
            o(&self.program_uuid),
            o(&self.encounter_type_uuid),
            o(&self.group_concept_uuid),
            self.owner_kind
        );
        // Only membership tables have a member: other tables' keys (and
        // the suffixes hashed from them) are as they were.
        match &self.member_subject_type_uuid {
            Some(member) => format!("{key}|{member}"),
            None => key,
        }
    }
}

/// A table before it is named and matched to the schema as it stands.
pub(super) struct Draft {
    pub(super) identity: TableIdentity,
    pub(super) raw_parts: Vec<String>,
    pub(super) subject: SubjectType,
    pub(super) program_name: Option<String>,
    pub(super) encounter_type_name: Option<String>,
    pub(super) group_concept_name: Option<String>,
    pub(super) form_uuids: Vec<String>,
    pub(super) columns: Vec<ColumnDraft>,
}

pub(super) const ADDRESS_KIND: &str = "Address";

/// Every table of `model`, in the order they are named.
pub(super) fn ordered_drafts(model: &SourceModel) -> Vec<Draft> {
    let mut drafts = table_drafts(model);
    drafts.push(address_draft(model));
    drafts.extend(avni_drafts::fixed_drafts());
    drafts.extend(avni_drafts::membership_drafts(model));
    // The tables of fixed names are named first, so they always have them
    // (`address`, `users`, `sync_telemetry`).
    drafts.sort_by_cached_key(|d| {
        (
            !d.identity.is_fixed(),
            d.identity.owner_kind.unwrap_or(d.identity.kind),
            d.identity.kind,
            d.raw_parts
                .iter()
                .map(|p| naming::normalise_part(p))
                .collect::<Vec<_>>(),
            d.identity.clone(),
        )
    });
    drafts
}

/// The model's entities by uuid.
struct Entities<'a> {
    subjects: HashMap<&'a str, &'a SubjectType>,
    programs: HashMap<&'a str, &'a str>,
    encounter_types: HashMap<&'a str, &'a str>,
}

impl<'a> Entities<'a> {
    fn new(model: &'a SourceModel) -> Self {
        Self {
            subjects: model
                .subject_types
                .iter()
                .map(|s| (s.uuid.as_str(), s))
                .collect(),
            programs: model
                .programs
                .iter()
                .map(|p| (p.uuid.as_str(), p.name.as_str()))
                .collect(),
            encounter_types: model
                .encounter_types
                .iter()
                .map(|e| (e.uuid.as_str(), e.name.as_str()))
                .collect(),
        }
    }

    /// The identity of the table a mapping's form fills, if any: not for
    /// users' subject types, nor for forms naming a program or encounter
    /// type the model does not have.
    fn identity(&self, m: &FormMapping) -> Option<TableIdentity> {
        let subject = self.subjects.get(m.subject_type_uuid.as_str())?;
        if subject.kind == "User" {
            return None;
        }
        let program = m.program_uuid.as_deref();
        let encounter = m.encounter_type_uuid.as_deref();
        let known_program = program.is_some_and(|p| self.programs.contains_key(p));
        let known_encounter = encounter.is_some_and(|e| self.encounter_types.contains_key(e));
        let kind = table_kind(&m.form_type, known_program, known_encounter)?;
        Some(TableIdentity::for_mapping(
            kind,
            &subject.uuid,
            program,
            encounter,
        ))
    }
}

/// The kind of table a form type fills, given whether the mapping's
/// program and encounter type are known.
fn table_kind(form_type: &str, known_program: bool, known_encounter: bool) -> Option<TableKind> {
    Some(match (form_type, known_program, known_encounter) {
        ("IndividualProfile", _, _) => TableKind::Subject,
        ("ProgramEnrolment", true, _) => TableKind::ProgramEnrolment,
        ("ProgramExit", true, _) => TableKind::ProgramExit,
        ("ProgramEncounter", true, true) => TableKind::ProgramEncounter,
        ("ProgramEncounterCancellation", true, true) => TableKind::ProgramEncounterCancel,
        ("Encounter", _, true) => TableKind::Encounter,
        ("IndividualEncounterCancellation", _, true) => TableKind::EncounterCancel,
        _ => return None,
    })
}

fn table_drafts(model: &SourceModel) -> Vec<Draft> {
    let entities = Entities::new(model);
    let mut drafts = Vec::new();
    for (identity, form_uuids) in forms_by_identity(model, &entities) {
        let Some(subject) = identity
            .subject_type_uuid
            .as_deref()
            .and_then(|s| entities.subjects.get(s))
        else {
            continue;
        };
        entity_drafts(model, &entities, identity, subject, form_uuids, &mut drafts);
    }
    drafts
}

/// The forms of each table, each form once, in mapping order.
fn forms_by_identity(
    model: &SourceModel,
    entities: &Entities,
) -> BTreeMap<TableIdentity, Vec<String>> {
    let mut forms: BTreeMap<TableIdentity, Vec<String>> = BTreeMap::new();
    for m in &model.mappings {
        let Some(identity) = entities.identity(m) else {
            continue;
        };
        let list = forms.entry(identity).or_default();
        if !list.contains(&m.form_uuid) {
            list.push(m.form_uuid.clone());
        }
    }
    forms
}

/// Pushes the drafts of one table: first one per repeatable group of its
/// forms, then its own.
fn entity_drafts(
    model: &SourceModel,
    entities: &Entities,
    identity: TableIdentity,
    subject: &SubjectType,
    form_uuids: Vec<String>,
    drafts: &mut Vec<Draft>,
) {
    let program_name = identity
        .program_uuid
        .as_deref()
        .and_then(|p| entities.programs.get(p))
        .map(|s| s.to_string());
    let encounter_type_name = identity
        .encounter_type_uuid
        .as_deref()
        .and_then(|e| entities.encounter_types.get(e))
        .map(|s| s.to_string());
    let raw_parts = raw_parts(
        identity.kind,
        subject,
        program_name.as_deref(),
        encounter_type_name.as_deref(),
    );
    let elements: Vec<&FormElement> = form_uuids
        .iter()
        .flat_map(|f| model.form_elements.get(f).into_iter().flatten())
        .collect();
    let (columns, groups) = question_columns(&elements, &model.answers);
    for (group_uuid, (group_name, children)) in groups {
        let mut parts = raw_parts.clone();
        parts.push(group_name.clone());
        drafts.push(Draft {
            identity: identity.group(group_uuid),
            raw_parts: parts,
            subject: subject.clone(),
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
        subject: subject.clone(),
        program_name,
        encounter_type_name,
        group_concept_name: None,
        form_uuids,
        columns,
    });
}

/// The entity names a table's name is made of, as the organisation shows
/// them: subject type, program, encounter type, and `exit` or `cancel`.
fn raw_parts(
    kind: TableKind,
    subject: &SubjectType,
    program_name: Option<&str>,
    encounter_type_name: Option<&str>,
) -> Vec<String> {
    let mut raw_parts = vec![subject.name.clone()];
    raw_parts.extend(program_name.map(str::to_string));
    raw_parts.extend(encounter_type_name.map(str::to_string));
    match kind {
        TableKind::ProgramExit => raw_parts.push("exit".into()),
        TableKind::ProgramEncounterCancel | TableKind::EncounterCancel => {
            raw_parts.push("cancel".into())
        }
        _ => {}
    }
    raw_parts
}

fn address_draft(model: &SourceModel) -> Draft {
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
        columns: address_columns(&model.address_level_types),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::source::GroupRole;

    fn subject(uuid: &str, name: &str, kind: &str) -> SubjectType {
        SubjectType {
            uuid: uuid.into(),
            name: name.into(),
            kind: kind.into(),
            allow_middle_name: false,
        }
    }

    fn registration(subject_type: &str) -> FormMapping {
        FormMapping {
            form_uuid: format!("form {subject_type}"),
            form_type: "IndividualProfile".into(),
            subject_type_uuid: subject_type.into(),
            program_uuid: None,
            encounter_type_uuid: None,
        }
    }

    fn role(group: &str, member: &str) -> GroupRole {
        GroupRole {
            group_subject_type_uuid: group.into(),
            member_subject_type_uuid: member.into(),
        }
    }

    #[test]
    fn memberships_are_planned_per_registered_group_type_and_member_type() {
        let model = SourceModel {
            subject_types: vec![
                subject("p", "Person", "Person"),
                subject("h", "Household", "Household"),
                subject("g", "Self Help Group", "Group"),
                subject("u", "Unregistered group", "Group"),
                subject("i", "Farm", "Individual"),
            ],
            mappings: ["p", "h", "g", "i"].map(registration).to_vec(),
            group_roles: vec![
                role("h", "p"),
                role("g", "p"),
                role("g", "i"),
                // No registration form: avni-etl makes no table for it.
                role("u", "p"),
                // Not a group or household subject type.
                role("i", "p"),
                // Unknown member subject type (voided, another organisation's).
                role("h", "gone"),
            ],
            ..Default::default()
        };
        let drafts = ordered_drafts(&model);
        let fixed: Vec<&str> = drafts
            .iter()
            .take(3)
            .map(|d| d.raw_parts[0].as_str())
            .collect();
        assert_eq!(fixed, vec!["address", "users", "sync_telemetry"]);
        let memberships: Vec<(TableKind, Vec<&str>, Option<&str>)> = drafts
            .iter()
            .filter(|d| {
                matches!(
                    d.identity.kind,
                    TableKind::GroupToMember | TableKind::HouseholdToMember
                )
            })
            .map(|d| {
                (
                    d.identity.kind,
                    d.raw_parts.iter().map(String::as_str).collect(),
                    d.identity.member_subject_type_uuid.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            memberships,
            vec![
                (
                    TableKind::GroupToMember,
                    vec!["Self Help Group", "Farm"],
                    Some("i")
                ),
                (
                    TableKind::GroupToMember,
                    vec!["Self Help Group", "Person"],
                    Some("p")
                ),
                (
                    TableKind::HouseholdToMember,
                    vec!["Household", "Person"],
                    Some("p")
                ),
            ]
        );
        // Only a membership table's key has a member: the others' keys
        // (and the name suffixes hashed from them) are unchanged.
        let person = drafts
            .iter()
            .find(|d| d.identity.kind == TableKind::Subject && d.raw_parts == ["Person"])
            .expect("person");
        assert_eq!(person.identity.key(), "Subject|p||||None");
        let household = drafts
            .iter()
            .find(|d| d.identity.kind == TableKind::HouseholdToMember)
            .expect("household_person");
        assert_eq!(household.identity.key(), "HouseholdToMember|h||||None|p");
    }
}
