//! The desired reporting schema of an organisation (design/etl.md §2–3):
//! which tables, with which columns and types, under which names. Pure:
//! built from a [`SourceModel`] and the schema as it stands, so the same
//! metadata always gives the same plan, and ValidateNames can plan a
//! proposed set without touching a database.
//!
//! Names are unique within the schema by construction: a table or column
//! that exists keeps its name, and a new one whose name is taken gets a
//! suffix hashed from its identity, so no two entities ever share a table.
//!
//! This module holds the plan's types and [`plan_schema`]; `tables`
//! decides which tables there are and what each is for, `columns` each
//! table's question (or address level) columns, `existing` describes the
//! schema as it stands, and `evolution` matches the plan to it: renames,
//! revivals, voiding and unique names.

mod columns;
mod evolution;
mod existing;
mod tables;

pub use columns::{ColumnSource, PlannedColumn, concept_key, fixed_key, name_key};
pub use evolution::{AdoptedColumn, ColumnRef, ColumnUpdate, TableEvolution, voided_name};
pub use existing::{ExistingColumn, ExistingSchema, ExistingTable};
pub use tables::TableIdentity;

use crate::engine::schema::layout::{
    FixedColumn, TableKind, avni_etl_column, backfill_from_avni_etl, fixed_columns,
};
use crate::engine::schema::naming;
use crate::engine::source::SourceModel;
use std::collections::HashSet;
use tables::Draft;

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
    /// Fixed columns an adopted table keeps in avni-etl's type (name,
    /// type): their values are written as that type.
    pub stored_types: Vec<(&'static str, &'static str)>,
    /// avni-etl's own columns an adopted table keeps and the service goes
    /// on filling (name, value expression; `layout::avni_etl_column`).
    pub kept: Vec<(String, &'static str)>,
    /// How it continues the table that exists for its identity; `None`
    /// when there is none and it is to be created.
    pub evolution: Option<TableEvolution>,
}

impl PlannedTable {
    /// The key columns (the primary key and the upsert's conflict target),
    /// quoted.
    pub fn quoted_keys(&self) -> Vec<String> {
        self.fixed
            .iter()
            .filter(|c| c.key)
            .map(|c| service_kit::sql::quote_ident(c.name))
            .collect()
    }

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
    /// Every table to keep in step with the source, in sync order.
    pub tables: Vec<PlannedTable>,
    /// Tables that exist but that nothing plans any more (their form
    /// mapping or entity was voided): kept with their rows and names,
    /// marked voided, no longer synced.
    pub retired: Vec<RetiredTable>,
    /// The names implementers' own relations hold in the schema
    /// ([`ExistingSchema::others`]), which no planned table takes.
    pub others: Vec<String>,
}

/// An existing table the plan no longer has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredTable {
    pub table_id: i32,
    pub name: String,
}

/// A draft with the name its entities give it now, and the table that
/// exists for its identity.
struct NamedDraft<'a> {
    draft: Draft,
    /// The normalised parts of its name.
    parts: Vec<String>,
    generated: naming::TableName,
    known: Option<&'a ExistingTable>,
}

/// Plans the schema for `model` as a continuation of `existing`.
///
/// Names are what a build from scratch would give, as far as the names
/// already taken allow: a table or column whose source name is unchanged
/// keeps its name; one whose entity or concept was renamed, a new one, and
/// a revived one get the name made from their source now when it is free,
/// and a hashed, unique one otherwise; columns no longer planned become
/// `voided_<name>`. Existing tables no longer planned keep their names.
pub fn plan_schema(model: &SourceModel, existing: &ExistingSchema) -> SchemaPlan {
    let named: Vec<NamedDraft> = tables::ordered_drafts(model)
        .into_iter()
        .map(|draft| {
            let parts: Vec<String> = draft
                .raw_parts
                .iter()
                .map(|p| naming::normalised_part(p))
                .collect();
            let generated = naming::table_name(&parts);
            let known = existing.table(&draft.identity);
            NamedDraft {
                draft,
                parts,
                generated,
                known,
            }
        })
        .collect();
    let planned_ids: HashSet<i32> = named.iter().filter_map(|n| n.known.map(|t| t.id)).collect();
    let names = evolution::table_names(&named, existing, &planned_ids);
    let tables = named.into_iter().zip(names).map(planned_table).collect();
    let retired = existing
        .tables
        .iter()
        .filter(|t| !t.foreign && !t.voided && !planned_ids.contains(&t.id))
        .map(|t| RetiredTable {
            table_id: t.id,
            name: t.name.clone(),
        })
        .collect();
    SchemaPlan {
        tables,
        retired,
        others: existing.others.clone(),
    }
}

/// The planned table of a named draft, with its columns and how it
/// continues the table that exists for it.
fn planned_table((named, name): (NamedDraft, String)) -> PlannedTable {
    let NamedDraft {
        draft,
        generated,
        known,
        ..
    } = named;
    let disambiguated = name != generated.name;
    let fixed_name = draft.identity.is_fixed();
    let raw_refs: Vec<&str> = draft.raw_parts.iter().map(String::as_str).collect();
    let fixed = fixed_columns(
        draft.identity.kind,
        &draft.subject.kind,
        draft.subject.allow_middle_name,
        draft.identity.owner_kind,
    );
    let planned = evolution::plan_columns(&fixed, draft.columns, known);
    let kept = kept_columns(draft.identity.kind, &fixed, &planned.columns, known);
    let backfills = backfills(&fixed, &planned.additions, known);
    let evolution = known.map(|t| TableEvolution {
        table_id: t.id,
        current_name: t.name.clone(),
        revived: t.voided,
        column_updates: planned.updates,
        additions: planned.additions,
        needs_key: !t.keyed,
        adopted: t.adopted,
        backfills,
    });
    PlannedTable {
        reference_name: naming::reference_table_name(&raw_refs),
        identity: draft.identity,
        name,
        full_name: generated.full_name,
        shortened: generated.shortened,
        disambiguated,
        raw_parts: draft.raw_parts,
        subject_type_name: (!fixed_name).then_some(draft.subject.name),
        program_name: draft.program_name,
        encounter_type_name: draft.encounter_type_name,
        group_concept_name: draft.group_concept_name,
        subject_kind: draft.subject.kind,
        allow_middle_name: draft.subject.allow_middle_name,
        form_uuids: draft.form_uuids,
        fixed,
        columns: planned.columns,
        stored_types: planned.stored_types,
        kept,
        evolution,
    }
}

/// The added fixed columns of an adopted table that avni-etl's own columns
/// of the row give (`layout::backfill_from_avni_etl`).
fn backfills(
    fixed: &[FixedColumn],
    additions: &[ColumnRef],
    known: Option<&ExistingTable>,
) -> Vec<(ColumnRef, &'static str, &'static str)> {
    let Some(table) = known.filter(|t| t.adopted) else {
        return Vec::new();
    };
    additions
        .iter()
        .filter_map(|a| match a {
            ColumnRef::Fixed(i) => fixed.get(*i).map(|f| (*a, f.name)),
            ColumnRef::Question(_) => None,
        })
        .filter_map(|(a, name)| {
            let (needs, expr) = backfill_from_avni_etl(name)?;
            let present = table
                .columns
                .iter()
                .any(|c| c.name == needs && c.kept_as_adopted());
            present.then_some((a, name, expr))
        })
        .collect()
}

/// avni-etl's own columns of an adopted table that the plan has no place
/// for and that the service knows how to fill.
fn kept_columns(
    kind: TableKind,
    fixed: &[FixedColumn],
    columns: &[PlannedColumn],
    known: Option<&ExistingTable>,
) -> Vec<(String, &'static str)> {
    let planned: HashSet<&str> = fixed
        .iter()
        .map(|f| f.name)
        .chain(columns.iter().map(|c| c.name.as_str()))
        .collect();
    known
        .map(|t| t.columns.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|c| c.kept_as_adopted() && !planned.contains(c.name.as_str()))
        .filter_map(|c| avni_etl_column(kind, &c.name).map(|e| (c.name.clone(), e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::schema::layout::{ColumnType, TableKind};
    use crate::engine::source::{FormElement, FormMapping, NamedEntity, SubjectType};

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
        let plan = plan_schema(&model(), &ExistingSchema::default());
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
        let plan = plan_schema(&m, &ExistingSchema::default());
        let mut names: Vec<&str> = plan.tables.iter().map(|t| t.name.as_str()).collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "names must be unique: {names:?}");
        assert!(plan.tables.iter().filter(|t| t.disambiguated).count() >= 2);

        // A table that exists keeps its name even when another entity would
        // now be planned under it.
        let second = plan_schema(&m, &existing_of(&plan));
        assert_eq!(all_names(&second), all_names(&plan));
        for t in &second.tables {
            let evolution = t.evolution.as_ref().expect("exists");
            assert!(
                !evolution.changes_anything(&t.name),
                "{}: {evolution:?}",
                t.name
            );
        }
        assert!(second.retired.is_empty());
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

    fn table<'a>(plan: &'a SchemaPlan, identity_kind: TableKind, st: &str) -> &'a PlannedTable {
        plan.tables
            .iter()
            .find(|t| {
                t.identity.kind == identity_kind
                    && t.identity.subject_type_uuid.as_deref() == Some(st)
            })
            .expect("table")
    }

    fn element_mut<'a>(m: &'a mut SourceModel, form: &str, concept: &str) -> &'a mut FormElement {
        m.form_elements
            .get_mut(form)
            .and_then(|f| f.iter_mut().find(|e| e.concept_uuid == concept))
            .expect("element")
    }

    #[test]
    fn a_renamed_concept_renames_its_column_and_a_swap_needs_no_suffix() {
        let m = model();
        let before = plan_schema(&m, &ExistingSchema::default());
        let mut renamed = m.clone();
        element_mut(&mut renamed, "f1", "c1").concept_name = "Body weight".into();
        let after = plan_schema(&renamed, &existing_of(&before));
        let person = table(&after, TableKind::Subject, "st1");
        assert_eq!(person.columns[0].name, "Body weight");
        let e = person.evolution.as_ref().expect("exists");
        assert_eq!(e.column_updates.len(), 1, "{e:?}");
        let u = &e.column_updates[0];
        assert_eq!(
            (u.current_name.as_str(), u.name.as_str()),
            ("Weight", "Body weight")
        );
        assert!(!u.voided && !u.revived);
        assert!(e.additions.is_empty());
        assert!(!e.needs_resync(), "a rename keeps the values");

        // Two concepts trading names get each other's names, not hashes.
        let mut swapped = m.clone();
        element_mut(&mut swapped, "f1", "c1").concept_name = "BP Systolic".into();
        element_mut(&mut swapped, "f1", "c4").concept_name = "Weight".into();
        element_mut(&mut swapped, "f1", "c4").parent_concept_uuid = None;
        element_mut(&mut swapped, "f1", "c4").parent_concept_name = None;
        let after = plan_schema(&swapped, &existing_of(&before));
        let names: Vec<&str> = table(&after, TableKind::Subject, "st1")
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert!(
            names.contains(&"BP Systolic") && names.contains(&"Weight"),
            "{names:?}"
        );
    }

    #[test]
    fn removed_questions_and_changed_types_are_voided_and_replaced() {
        let m = model();
        let before = plan_schema(&m, &ExistingSchema::default());
        let mut changed = m.clone();
        element_mut(&mut changed, "f1", "c1").data_type = "Text".into();
        changed
            .form_elements
            .get_mut("f1")
            .expect("f1")
            .retain(|e| e.concept_uuid != "c4");
        let after = plan_schema(&changed, &existing_of(&before));
        let person = table(&after, TableKind::Subject, "st1");
        assert_eq!(person.columns[0].name, "Weight");
        assert_eq!(person.columns[0].sql_type, ColumnType::Text);
        let e = person.evolution.as_ref().expect("exists");
        assert_eq!(e.additions, vec![ColumnRef::Question(0)]);
        let mut voided: Vec<(&str, &str)> = e
            .column_updates
            .iter()
            .filter(|u| u.voided)
            .map(|u| (u.current_name.as_str(), u.name.as_str()))
            .collect();
        voided.sort();
        assert_eq!(
            voided,
            vec![
                ("BP Systolic", "voided_BP Systolic"),
                ("Weight", "voided_Weight")
            ]
        );
        assert!(e.needs_resync(), "the new column is backfilled");

        // The type changes back: the voided column is revived, and the
        // other one voided in turn takes the name it gave up.
        let again = plan_schema(&m, &existing_after(&before, &after));
        let person = table(&again, TableKind::Subject, "st1");
        let e = person.evolution.as_ref().expect("exists");
        assert!(e.additions.is_empty(), "{e:?}");
        let revived: Vec<&str> = e
            .column_updates
            .iter()
            .filter(|u| u.revived)
            .map(|u| u.name.as_str())
            .collect();
        assert_eq!(revived, vec!["Weight", "BP Systolic"]);
        let voided: Vec<&str> = e
            .column_updates
            .iter()
            .filter(|u| u.voided)
            .map(|u| u.name.as_str())
            .collect();
        assert_eq!(voided, vec!["voided_Weight"]);

        // A voided name fits in 63 bytes.
        let long = "q".repeat(63);
        let name = voided_name(&long, "k", 1, &HashSet::new());
        assert!(name.len() <= naming::MAX_IDENTIFIER_BYTES && name.starts_with("voided_q"));
    }

    #[test]
    fn renamed_entities_rename_their_tables_and_voided_mappings_retire_them() {
        let m = model();
        let before = plan_schema(&m, &ExistingSchema::default());
        let mut renamed = m.clone();
        renamed.subject_types[0].name = "Member".into();
        renamed.mappings.retain(|x| x.form_uuid != "f6");
        let after = plan_schema(&renamed, &existing_of(&before));
        let names: Vec<&str> = after.tables.iter().map(|t| t.name.as_str()).collect();
        for expected in [
            "member",
            "member_family",
            "member_pregnancy_anc",
            "member_home_visit_cancel",
        ] {
            assert!(names.contains(&expected), "{expected} not in {names:?}");
        }
        let member = table(&after, TableKind::Subject, "st1");
        assert_eq!(
            member.evolution.as_ref().map(|e| e.current_name.as_str()),
            Some("person")
        );
        assert!(!member.evolution.as_ref().is_some_and(|e| e.needs_resync()));
        assert_eq!(after.retired.len(), 1);
        assert_eq!(after.retired[0].name, "person_home_visit");

        // The mapping comes back: the table is revived under its new name.
        let mut existing = existing_after(&before, &after);
        for t in &mut existing.tables {
            if t.name == "person_home_visit" {
                t.voided = true;
            }
        }
        let mut back = renamed.clone();
        back.mappings = m.mappings.clone();
        let revived = plan_schema(&back, &existing);
        let home = revived
            .tables
            .iter()
            .find(|t| t.identity.kind == TableKind::Encounter)
            .expect("home visit");
        assert_eq!(home.name, "member_home_visit");
        assert!(
            home.evolution
                .as_ref()
                .is_some_and(|e| e.revived && e.needs_resync())
        );
        assert!(revived.retired.is_empty());
    }

    #[test]
    fn a_table_avni_etl_built_is_adopted_without_voiding_or_resync() {
        let m = model();
        let fresh = plan_schema(&m, &ExistingSchema::default());
        let mut existing = existing_of(&fresh);
        let person = existing
            .tables
            .iter_mut()
            .find(|t| t.name == "person")
            .expect("person");
        // As avni-etl left it: no key, nothing of the service's, its types
        // and its own columns, not the service's user names.
        person.adopted = true;
        person.keyed = false;
        person
            .columns
            .retain(|c| c.name != "created_by" && c.name != "last_modified_by");
        for c in &mut person.columns {
            c.adopted = true;
            c.base_name = None;
            match c.name.as_str() {
                "id" | "address_id" => c.sql_type = "integer".into(),
                "registration_location" => c.sql_type = "point".into(),
                _ => {}
            }
        }
        for (i, name) in [
            "created_by_id",
            "legacy_id",
            "latest_approval_status",
            "mystery",
        ]
        .iter()
        .enumerate()
        {
            person.columns.push(ExistingColumn {
                id: 90_000 + i as i32,
                name: name.to_string(),
                key: fixed_key(name),
                base_name: None,
                sql_type: "text".into(),
                concept_type: None,
                voided: false,
                adopted: true,
            });
        }
        let plan = plan_schema(&m, &existing);
        let person = table(&plan, TableKind::Subject, "st1");
        assert_eq!(person.name, "person");
        let e = person.evolution.as_ref().expect("adopted");
        assert!(e.adopted && e.needs_key);
        assert!(
            e.column_updates
                .iter()
                .all(|u| !u.voided && u.name == u.current_name),
            "nothing voided or renamed: {:?}",
            e.column_updates
        );
        assert!(e.column_updates.iter().all(|u| u.adopted.is_some()));
        let added: Vec<&str> = e
            .additions
            .iter()
            .map(|a| match a {
                ColumnRef::Fixed(i) => person.fixed[*i].name,
                ColumnRef::Question(i) => person.columns[*i].name.as_str(),
            })
            .collect();
        assert_eq!(added, vec!["created_by", "last_modified_by"]);
        let backfilled: Vec<&str> = e.backfills.iter().map(|(_, n, _)| *n).collect();
        assert_eq!(
            backfilled,
            vec!["created_by"],
            "last_modified_by_id is not there"
        );
        assert!(
            e.needs_resync(),
            "last_modified_by cannot be filled in place"
        );
        let mut stored = person.stored_types.clone();
        stored.sort();
        assert_eq!(
            stored,
            vec![
                ("address_id", "integer"),
                ("id", "integer"),
                ("registration_location", "point")
            ]
        );
        let kept: Vec<&str> = person.kept.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            kept,
            vec!["created_by_id", "legacy_id", "latest_approval_status"],
            "kept and filled; `mystery` kept but not filled"
        );
    }

    #[test]
    fn no_table_takes_a_view_name() {
        let mut m = model();
        m.subject_types[0].name = "Subject view".into();
        let plan = plan_schema(&m, &ExistingSchema::default());
        let subject = table(&plan, TableKind::Subject, "st1");
        assert!(
            subject.name.starts_with("subject_view_"),
            "{}",
            subject.name
        );
    }

    /// The schema after `after` was applied to the schema `before` made.
    fn existing_after(before: &SchemaPlan, after: &SchemaPlan) -> ExistingSchema {
        let mut existing = existing_of(before);
        for t in &mut existing.tables {
            let Some(planned) = after.tables.iter().find(|p| p.identity == t.identity) else {
                continue;
            };
            t.name = planned.name.clone();
            t.full_name = Some(planned.full_name.clone());
            let Some(e) = &planned.evolution else {
                continue;
            };
            for u in &e.column_updates {
                if let Some(c) = t.columns.iter_mut().find(|c| c.name == u.current_name) {
                    c.name = u.name.clone();
                    c.base_name = Some(u.base_name.clone());
                    c.voided = u.voided;
                }
            }
            for (j, r) in e.additions.iter().enumerate() {
                if let ColumnRef::Question(i) = r {
                    let c = &planned.columns[*i];
                    t.columns.push(ExistingColumn {
                        id: 900_000 + j as i32,
                        name: c.name.clone(),
                        key: c.key(),
                        base_name: Some(c.base_name.clone()),
                        sql_type: c.sql_type.sql().to_string(),
                        concept_type: c.source.concept_type().map(str::to_string),
                        voided: false,
                        adopted: false,
                    });
                }
            }
        }
        existing
    }

    fn existing_of(plan: &SchemaPlan) -> ExistingSchema {
        ExistingSchema {
            others: Vec::new(),
            tables: plan
                .tables
                .iter()
                .enumerate()
                .map(|(i, t)| ExistingTable {
                    id: i as i32 + 1,
                    identity: t.identity.clone(),
                    name: t.name.clone(),
                    full_name: Some(t.full_name.clone()),
                    voided: false,
                    foreign: false,
                    adopted: false,
                    keyed: true,
                    columns: t
                        .fixed
                        .iter()
                        .map(|f| {
                            (
                                fixed_key(f.name),
                                f.name.to_string(),
                                f.name.to_string(),
                                f.sql_type,
                                None,
                            )
                        })
                        .chain(t.columns.iter().map(|c| {
                            (
                                c.key(),
                                c.name.clone(),
                                c.base_name.clone(),
                                c.sql_type,
                                c.source.concept_type().map(str::to_string),
                            )
                        }))
                        .enumerate()
                        .map(
                            |(j, (key, name, base, sql_type, concept_type))| ExistingColumn {
                                id: (i as i32 + 1) * 1000 + j as i32,
                                name,
                                key,
                                base_name: Some(base),
                                sql_type: sql_type.sql().to_string(),
                                concept_type,
                                voided: false,
                                adopted: false,
                            },
                        )
                        .collect(),
                })
                .collect(),
        }
    }

    /// Names as a plan gives them: table name and column names.
    fn all_names(plan: &SchemaPlan) -> Vec<(String, Vec<String>)> {
        plan.tables
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    t.columns.iter().map(|c| c.name.clone()).collect(),
                )
            })
            .collect()
    }
}
