//! The desired reporting schema of an organisation (design/etl.md §2–3):
//! which tables, with which columns and types, under which names. Pure:
//! built from a [`SourceModel`] and the schema as it stands, so the same
//! metadata always gives the same plan, and ValidateNames can plan a
//! proposed set without touching a database.
//!
//! Names are unique within the schema by construction: a table or column
//! that exists keeps its name, and a new one whose name is taken gets a
//! suffix hashed from its identity, so no two entities ever share a table.

use crate::engine::schema::layout::{ColumnType, FixedColumn, TableKind, fixed_columns};
use crate::engine::schema::naming;
use crate::engine::schema::views::VIEW_NAMES;
use crate::engine::source::{FormElement, SourceModel, SubjectType};
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

impl ColumnSource {
    /// The concept's data type, for a question column.
    pub fn concept_type(&self) -> Option<&str> {
        match self {
            ColumnSource::Concept { data_type, .. } => Some(data_type),
            ColumnSource::AddressLevel { .. } => None,
        }
    }
}

pub fn concept_key(concept_uuid: &str, parent: Option<&str>) -> String {
    format!("concept:{concept_uuid}:{}", parent.unwrap_or(""))
}

pub fn name_key(name: &str) -> String {
    format!("name:{name}")
}

/// The identity of a column every table of its kind has.
pub fn fixed_key(name: &str) -> String {
    format!("fixed:{name}")
}

/// A column beyond the fixed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedColumn {
    pub name: String,
    /// The name its source gives it, before any suffix that keeps it
    /// unique: when this changes, the concept was renamed.
    pub base_name: String,
    pub sql_type: ColumnType,
    pub source: ColumnSource,
}

impl PlannedColumn {
    pub fn key(&self) -> String {
        self.source.key(&self.base_name)
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
    /// How it continues the table that exists for its identity; `None`
    /// when there is none and it is to be created.
    pub evolution: Option<TableEvolution>,
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
    /// Every table to keep in step with the source, in sync order.
    pub tables: Vec<PlannedTable>,
    /// Tables that exist but that nothing plans any more (their form
    /// mapping or entity was voided): kept with their rows and names,
    /// marked voided, no longer synced.
    pub retired: Vec<RetiredTable>,
}

/// An existing table the plan no longer has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredTable {
    pub table_id: i32,
    pub name: String,
}

/// How a planned table continues the table that exists for its identity
/// (design/etl.md §5.2): renamed when its entities were, revived when it
/// had been voided, with its columns renamed, voided, revived or added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEvolution {
    pub table_id: i32,
    /// Its name as it stands; the planned table's name differs when one of
    /// its entities was renamed.
    pub current_name: String,
    /// It had been voided and is planned again.
    pub revived: bool,
    /// Existing columns whose name, base name or voided state changes.
    pub column_updates: Vec<ColumnUpdate>,
    /// Planned columns the table does not have yet.
    pub additions: Vec<ColumnRef>,
}

impl TableEvolution {
    /// Whether the existing rows must be synced again from the start: a
    /// column was added or revived (backfill), or the table was revived
    /// (rows changed while it was not synced).
    pub fn needs_resync(&self) -> bool {
        self.revived || !self.additions.is_empty() || self.column_updates.iter().any(|c| c.revived)
    }

    /// Whether anything about the table changes (`planned_name` is the
    /// name the plan gives it).
    pub fn changes_anything(&self, planned_name: &str) -> bool {
        self.revived
            || self.current_name != planned_name
            || !self.column_updates.is_empty()
            || !self.additions.is_empty()
    }
}

/// A change to an existing column's metadata and, when its name changes,
/// to the column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnUpdate {
    /// `column_metadata.id`.
    pub id: i32,
    pub current_name: String,
    pub name: String,
    pub base_name: String,
    /// Voided after the change: its question was removed or its concept's
    /// type changed; the column keeps its values under a `voided_` name.
    pub voided: bool,
    /// It was voided and continues a planned column again.
    pub revived: bool,
}

/// A planned column: one of the table's fixed columns, or a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRef {
    Fixed(usize),
    Question(usize),
}

/// The schema as the metadata describes it.
#[derive(Debug, Clone, Default)]
pub struct ExistingSchema {
    pub tables: Vec<ExistingTable>,
}

impl ExistingSchema {
    /// The table this service keeps for `identity`, voided or not.
    pub fn table(&self, identity: &TableIdentity) -> Option<&ExistingTable> {
        self.tables
            .iter()
            .find(|t| !t.foreign && &t.identity == identity)
    }
}

/// A reporting table the metadata describes.
#[derive(Debug, Clone)]
pub struct ExistingTable {
    pub id: i32,
    pub identity: TableIdentity,
    pub name: String,
    /// The joined normalised parts its name was made from: when the parts
    /// made now differ, one of its entities was renamed. `None` if unknown.
    pub full_name: Option<String>,
    pub voided: bool,
    /// Described under a table type this service does not know (written by
    /// another tool): its name stays taken, nothing else is touched.
    pub foreign: bool,
    pub columns: Vec<ExistingColumn>,
}

/// A column the metadata describes.
#[derive(Debug, Clone)]
pub struct ExistingColumn {
    pub id: i32,
    pub name: String,
    /// `concept:<uuid>:<parent uuid>`, `fixed:<name>` or `name:<name>`.
    pub key: String,
    /// The name its source gave it before any disambiguating suffix.
    pub base_name: Option<String>,
    pub sql_type: String,
    pub concept_type: Option<String>,
    pub voided: bool,
}

impl ExistingColumn {
    /// Whether a planned column of this identity can keep this column: its
    /// values mean the same only while the concept's data type does.
    fn continues(&self, sql_type: ColumnType, concept_type: Option<&str>) -> bool {
        self.sql_type == sql_type.sql() && self.concept_type.as_deref() == concept_type
    }

    /// Whether the name its source gives it is the one it was named from.
    fn base_unchanged(&self, candidate: &str, key: &str) -> bool {
        match &self.base_name {
            Some(base) => base == candidate,
            None => {
                self.name == candidate
                    || self.name == naming::with_suffix(candidate, &naming::stable_hash(key))
            }
        }
    }
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

/// Plans the schema for `model` as a continuation of `existing`.
///
/// Names are what a build from scratch would give, as far as the names
/// already taken allow: a table or column whose source name is unchanged
/// keeps its name; one whose entity or concept was renamed, a new one, and
/// a revived one get the name made from their source now when it is free,
/// and a hashed, unique one otherwise; columns no longer planned become
/// `voided_<name>`. Existing tables no longer planned keep their names.
pub fn plan_schema(model: &SourceModel, existing: &ExistingSchema) -> SchemaPlan {
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
    let named: Vec<(
        Draft,
        Vec<String>,
        naming::TableName,
        Option<&ExistingTable>,
    )> = drafts
        .into_iter()
        .map(|draft| {
            let parts: Vec<String> = draft.raw_parts.iter().map(|p| normalised_part(p)).collect();
            let generated = naming::table_name(&parts);
            let known = existing.table(&draft.identity);
            (draft, parts, generated, known)
        })
        .collect();
    let planned_ids: HashSet<i32> = named
        .iter()
        .filter_map(|(_, _, _, known)| known.map(|t| t.id))
        .collect();

    // Names that stay: the views', tables no longer planned, and planned
    // ones whose entities kept their names.
    let mut used: HashSet<String> = VIEW_NAMES.iter().map(|v| v.to_string()).collect();
    used.extend(
        existing
            .tables
            .iter()
            .filter(|t| !planned_ids.contains(&t.id))
            .map(|t| t.name.clone()),
    );
    let mut kept: Vec<Option<String>> = Vec::with_capacity(named.len());
    for (_, _, generated, known) in &named {
        let name = known
            .filter(|t| name_unchanged(t, generated) && !used.contains(&t.name))
            .map(|t| t.name.clone());
        if let Some(n) = &name {
            used.insert(n.clone());
        }
        kept.push(name);
    }

    let mut tables = Vec::with_capacity(named.len());
    for ((draft, parts, generated, known), kept) in named.into_iter().zip(kept) {
        let name = match kept {
            Some(name) => name,
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
        let planned = plan_columns(&fixed, draft.columns, known);
        let evolution = known.map(|t| TableEvolution {
            table_id: t.id,
            current_name: t.name.clone(),
            revived: t.voided,
            column_updates: planned.updates,
            additions: planned.additions,
        });
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
            columns: planned.columns,
            evolution,
        });
    }
    let retired = existing
        .tables
        .iter()
        .filter(|t| !t.foreign && !t.voided && !planned_ids.contains(&t.id))
        .map(|t| RetiredTable {
            table_id: t.id,
            name: t.name.clone(),
        })
        .collect();
    SchemaPlan { tables, retired }
}

/// Whether a table's entities still give the name it was named from.
fn name_unchanged(table: &ExistingTable, generated: &naming::TableName) -> bool {
    match &table.full_name {
        Some(full) => *full == generated.full_name,
        None => table.name == generated.name,
    }
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

/// The name a column gets when it is voided: `voided_<name>`, made to fit
/// and unique like any other.
pub fn voided_name(name: &str, key: &str, id: i32, used: &HashSet<String>) -> String {
    let plain = format!("voided_{name}");
    if plain.len() <= naming::MAX_IDENTIFIER_BYTES && !used.contains(&plain) {
        return plain;
    }
    unique(
        naming::with_suffix(&plain, &naming::stable_hash(&format!("{key}#{id}"))),
        used,
    )
}

/// A table's columns as planned, and what becomes of its existing ones.
struct PlannedColumns {
    columns: Vec<PlannedColumn>,
    updates: Vec<ColumnUpdate>,
    additions: Vec<ColumnRef>,
}

/// The column of `existing` that a planned column of identity `key`
/// continues: the live one, or else the latest voided one, as long as the
/// type is the same.
fn continued<'a>(
    existing: &'a [ExistingColumn],
    taken: &HashSet<i32>,
    key: &str,
    sql_type: ColumnType,
    concept_type: Option<&str>,
) -> Option<&'a ExistingColumn> {
    let fits = |c: &&ExistingColumn| {
        c.key == key && !taken.contains(&c.id) && c.continues(sql_type, concept_type)
    };
    existing
        .iter()
        .filter(|c| !c.voided)
        .find(fits)
        .or_else(|| {
            existing
                .iter()
                .filter(|c| c.voided)
                .filter(fits)
                .max_by_key(|c| c.id)
        })
}

fn plan_columns(
    fixed: &[FixedColumn],
    drafts: Vec<(String, ColumnType, ColumnSource)>,
    existing: Option<&ExistingTable>,
) -> PlannedColumns {
    let current: &[ExistingColumn] = existing.map(|t| t.columns.as_slice()).unwrap_or(&[]);
    let mut taken: HashSet<i32> = HashSet::new();
    let mut used: HashSet<String> = HashSet::new();
    let mut updates = Vec::new();
    let mut additions = Vec::new();

    // Fixed columns always have their own names.
    for (i, f) in fixed.iter().enumerate() {
        used.insert(f.name.to_string());
        match continued(current, &taken, &fixed_key(f.name), f.sql_type, None) {
            Some(c) => {
                taken.insert(c.id);
                if c.name != f.name || c.voided || c.base_name.as_deref() != Some(f.name) {
                    updates.push(ColumnUpdate {
                        id: c.id,
                        current_name: c.name.clone(),
                        name: f.name.to_string(),
                        base_name: f.name.to_string(),
                        voided: false,
                        revived: c.voided,
                    });
                }
            }
            None => additions.push(ColumnRef::Fixed(i)),
        }
    }

    struct Pending<'a> {
        candidate: String,
        key: String,
        link: Option<&'a ExistingColumn>,
        sql_type: ColumnType,
        source: ColumnSource,
    }
    let mut pending = Vec::with_capacity(drafts.len());
    for (raw, sql_type, source) in drafts {
        let candidate = naming::column_name(&raw);
        let key = source.key(&candidate);
        let link = continued(current, &taken, &key, sql_type, source.concept_type());
        if let Some(c) = link {
            taken.insert(c.id);
        }
        pending.push(Pending {
            candidate,
            key,
            link,
            sql_type,
            source,
        });
    }
    // Voided columns that stay voided keep their names; so do live ones
    // whose concept kept its name.
    used.extend(
        current
            .iter()
            .filter(|c| c.voided && !taken.contains(&c.id))
            .map(|c| c.name.clone()),
    );
    let mut names: Vec<Option<String>> = Vec::with_capacity(pending.len());
    for p in &pending {
        let keep = p
            .link
            .filter(|c| !c.voided && c.base_unchanged(&p.candidate, &p.key))
            .filter(|c| !used.contains(&c.name))
            .map(|c| c.name.clone());
        if let Some(n) = &keep {
            used.insert(n.clone());
        }
        names.push(keep);
    }

    let mut columns = Vec::with_capacity(pending.len());
    for (i, (p, kept)) in pending.into_iter().zip(names).enumerate() {
        let name = match kept {
            Some(name) => name,
            None if !used.contains(&p.candidate) => p.candidate.clone(),
            None => unique(
                naming::with_suffix(&p.candidate, &naming::stable_hash(&p.key)),
                &used,
            ),
        };
        used.insert(name.clone());
        match p.link {
            Some(c) => {
                if c.name != name || c.voided || c.base_name.as_deref() != Some(&p.candidate) {
                    updates.push(ColumnUpdate {
                        id: c.id,
                        current_name: c.name.clone(),
                        name: name.clone(),
                        base_name: p.candidate.clone(),
                        voided: false,
                        revived: c.voided,
                    });
                }
            }
            None => additions.push(ColumnRef::Question(i)),
        }
        columns.push(PlannedColumn {
            name,
            base_name: p.candidate,
            sql_type: p.sql_type,
            source: p.source,
        });
    }

    // Live columns nothing plans any more are voided, keeping their values.
    for c in current
        .iter()
        .filter(|c| !c.voided && !taken.contains(&c.id))
    {
        let name = voided_name(&c.name, &c.key, c.id, &used);
        used.insert(name.clone());
        updates.push(ColumnUpdate {
            id: c.id,
            current_name: c.name.clone(),
            name,
            base_name: c.base_name.clone().unwrap_or_else(|| c.name.clone()),
            voided: true,
            revived: false,
        });
    }
    PlannedColumns {
        columns,
        updates,
        additions,
    }
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
    use crate::engine::source::{FormMapping, NamedEntity};

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
                    });
                }
            }
        }
        existing
    }

    fn existing_of(plan: &SchemaPlan) -> ExistingSchema {
        ExistingSchema {
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
