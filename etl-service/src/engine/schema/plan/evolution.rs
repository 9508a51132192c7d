//! How a plan continues the schema as it stands (design/etl.md §5.2):
//! which existing table and column each planned one continues, and the
//! names they get, unique within the schema and within each table. A name
//! that is still what its source gives stays; a renamed entity or concept
//! gets the name made from it now when that is free, and a hashed, unique
//! one otherwise; a column nothing plans any more is voided under a
//! `voided_` name, and a voided one planned again is revived.

use crate::engine::schema::layout::{ColumnType, FixedColumn};
use crate::engine::schema::naming;
use crate::engine::schema::plan::columns::{ColumnDraft, fixed_key};
use crate::engine::schema::plan::{
    ColumnSource, ExistingColumn, ExistingSchema, ExistingTable, NamedDraft, PlannedColumn,
};
use crate::engine::schema::views::VIEW_NAMES;
use std::collections::HashSet;

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
    /// It has no primary key (avni-etl built it): its duplicate rows go
    /// and the key is added.
    pub needs_key: bool,
    /// avni-etl built it: its `entity_sync_status` rows become the
    /// service's watermarks.
    pub adopted: bool,
    /// Added fixed columns filled in place from avni-etl's columns of the
    /// row (name, expression; `layout::backfill_from_avni_etl`), which
    /// need no resync.
    pub backfills: Vec<(ColumnRef, &'static str, &'static str)>,
}

impl TableEvolution {
    /// Whether the existing rows must be synced again from the start: a
    /// column was added (unless filled in place from avni-etl's columns) or
    /// revived (backfill), or the table was revived (rows changed while it
    /// was not synced).
    pub fn needs_resync(&self) -> bool {
        self.revived
            || self
                .additions
                .iter()
                .any(|a| !self.backfills.iter().any(|(b, _, _)| b == a))
            || self.column_updates.iter().any(|c| c.revived)
    }

    /// Whether anything about the table changes (`planned_name` is the
    /// name the plan gives it).
    pub fn changes_anything(&self, planned_name: &str) -> bool {
        self.revived
            || self.needs_key
            || self.adopted
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
    /// A column avni-etl made, which the service describes from now on.
    pub adopted: Option<AdoptedColumn>,
}

/// What the service keeps about a column avni-etl made (its
/// `etl_service.column_metadata_ext` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdoptedColumn {
    /// The type the column has (avni-etl's, which it keeps).
    pub sql_type: String,
    pub concept_type: Option<String>,
    pub key: String,
}

/// A planned column: one of the table's fixed columns, or a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRef {
    Fixed(usize),
    Question(usize),
}

/// The name of each table of `named`, in order: the names already taken
/// (views, tables no longer planned) stay taken, and of the rest each keeps
/// its name while its entities keep theirs.
pub(super) fn table_names(
    named: &[NamedDraft],
    existing: &ExistingSchema,
    planned_ids: &HashSet<i32>,
) -> Vec<String> {
    // Names that stay: the views', implementers' own relations', tables
    // no longer planned, and planned ones whose entities kept their names.
    let mut used: HashSet<String> = VIEW_NAMES.iter().map(|v| v.to_string()).collect();
    used.extend(existing.others.iter().cloned());
    used.extend(
        existing
            .tables
            .iter()
            .filter(|t| !planned_ids.contains(&t.id))
            .map(|t| t.name.clone()),
    );
    let kept: Vec<Option<String>> = named
        .iter()
        .map(|n| {
            let unchanged = n.known.filter(|t| name_unchanged(t, &n.generated));
            keep(unchanged.map(|t| t.name.as_str()), &mut used)
        })
        .collect();
    let mut names = Vec::with_capacity(named.len());
    for (n, kept) in named.iter().zip(kept) {
        let hashed = || naming::fit_parts(&n.parts, &naming::stable_hash(&n.draft.identity.key()));
        let name = free_name(kept, &n.generated.name, hashed, &used);
        used.insert(name.clone());
        names.push(name);
    }
    names
}

/// Whether a table's entities still give the name it was named from.
fn name_unchanged(table: &ExistingTable, generated: &naming::TableName) -> bool {
    match &table.full_name {
        Some(full) => *full == generated.full_name,
        None => table.name == generated.name,
    }
}

/// `name`, taken into `used`, unless it is taken already.
fn keep(name: Option<&str>, used: &mut HashSet<String>) -> Option<String> {
    let kept = name.filter(|n| !used.contains(*n)).map(str::to_string);
    if let Some(n) = &kept {
        used.insert(n.clone());
    }
    kept
}

/// The name a table or column gets: the one it keeps, else the one made
/// from its source when that is free, else a hashed, unique one.
fn free_name(
    kept: Option<String>,
    made: &str,
    hashed: impl FnOnce() -> String,
    used: &HashSet<String>,
) -> String {
    match kept {
        Some(name) => name,
        None if !used.contains(made) => made.to_string(),
        None => unique(hashed(), used),
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
pub(super) struct PlannedColumns {
    pub(super) columns: Vec<PlannedColumn>,
    pub(super) updates: Vec<ColumnUpdate>,
    pub(super) additions: Vec<ColumnRef>,
    /// Fixed columns kept in the type avni-etl made them with.
    pub(super) stored_types: Vec<(&'static str, &'static str)>,
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

/// Plans a table's columns after its fixed ones, continuing the columns of
/// `existing` (the table as it stands, if any).
pub(super) fn plan_columns(
    fixed: &[FixedColumn],
    drafts: Vec<ColumnDraft>,
    existing: Option<&ExistingTable>,
) -> PlannedColumns {
    let current: &[ExistingColumn] = existing.map(|t| t.columns.as_slice()).unwrap_or(&[]);
    let mut matching = ColumnMatching {
        current,
        taken: HashSet::new(),
        used: HashSet::new(),
        updates: Vec::new(),
        additions: Vec::new(),
        stored_types: Vec::new(),
    };
    matching.fixed(fixed);
    let pending = matching.link_questions(drafts);
    let kept = matching.kept_names(&pending);
    let columns = matching.name_questions(pending, kept);
    matching.void_unplanned();
    PlannedColumns {
        columns,
        updates: matching.updates,
        additions: matching.additions,
        stored_types: matching.stored_types,
    }
}

/// A question column, with the existing column it continues, if any.
struct Pending<'a> {
    candidate: String,
    key: String,
    link: Option<&'a ExistingColumn>,
    sql_type: ColumnType,
    source: ColumnSource,
}

/// The matching of one table's planned columns to its existing ones.
struct ColumnMatching<'a> {
    current: &'a [ExistingColumn],
    /// Existing columns a planned one continues.
    taken: HashSet<i32>,
    /// Column names given or kept so far.
    used: HashSet<String>,
    updates: Vec<ColumnUpdate>,
    additions: Vec<ColumnRef>,
    stored_types: Vec<(&'static str, &'static str)>,
}

impl<'a> ColumnMatching<'a> {
    /// Fixed columns always have their own names.
    fn fixed(&mut self, fixed: &[FixedColumn]) {
        for (i, f) in fixed.iter().enumerate() {
            self.used.insert(f.name.to_string());
            match continued(
                self.current,
                &self.taken,
                &fixed_key(f.name),
                f.sql_type,
                None,
            ) {
                Some(c) => {
                    self.taken.insert(c.id);
                    if let Some(stored) = c.stored_as(f.sql_type) {
                        self.stored_types.push((f.name, stored));
                    }
                    self.continue_as(c, f.name, f.name);
                }
                None => self.additions.push(ColumnRef::Fixed(i)),
            }
        }
    }

    /// Links each question to the existing column it continues.
    fn link_questions(&mut self, drafts: Vec<ColumnDraft>) -> Vec<Pending<'a>> {
        let mut pending = Vec::with_capacity(drafts.len());
        for (raw, sql_type, source) in drafts {
            let candidate = naming::column_name(&raw);
            let key = source.key(&candidate);
            let link = continued(
                self.current,
                &self.taken,
                &key,
                sql_type,
                source.concept_type(),
            );
            if let Some(c) = link {
                self.taken.insert(c.id);
            }
            pending.push(Pending {
                candidate,
                key,
                link,
                sql_type,
                source,
            });
        }
        pending
    }

    /// The names that stay, taken before any new name is given.
    fn kept_names(&mut self, pending: &[Pending]) -> Vec<Option<String>> {
        // Voided columns that stay voided keep their names; so do live ones
        // whose concept kept its name.
        // So do avni-etl's fixed columns the plan has no place for.
        self.used.extend(
            self.current
                .iter()
                .filter(|c| (c.voided || c.kept_as_adopted()) && !self.taken.contains(&c.id))
                .map(|c| c.name.clone()),
        );
        pending
            .iter()
            .map(|p| {
                let unchanged = p
                    .link
                    .filter(|c| !c.voided && c.base_unchanged(&p.candidate, &p.key));
                keep(unchanged.map(|c| c.name.as_str()), &mut self.used)
            })
            .collect()
    }

    /// Names each question, continuing its existing column or added.
    fn name_questions(
        &mut self,
        pending: Vec<Pending>,
        kept: Vec<Option<String>>,
    ) -> Vec<PlannedColumn> {
        let mut columns = Vec::with_capacity(pending.len());
        for (i, (p, kept)) in pending.into_iter().zip(kept).enumerate() {
            let hashed = || naming::with_suffix(&p.candidate, &naming::stable_hash(&p.key));
            let name = free_name(kept, &p.candidate, hashed, &self.used);
            self.used.insert(name.clone());
            match p.link {
                Some(c) => self.continue_as(c, &name, &p.candidate),
                None => self.additions.push(ColumnRef::Question(i)),
            }
            columns.push(PlannedColumn {
                name,
                base_name: p.candidate,
                sql_type: p.sql_type,
                source: p.source,
            });
        }
        columns
    }

    /// Records what changes when `c` continues as `name` (from `base_name`).
    fn continue_as(&mut self, c: &ExistingColumn, name: &str, base_name: &str) {
        if c.name != name || c.voided || c.base_name.as_deref() != Some(base_name) || c.adopted {
            self.updates.push(ColumnUpdate {
                id: c.id,
                current_name: c.name.clone(),
                name: name.to_string(),
                base_name: base_name.to_string(),
                voided: false,
                revived: c.voided,
                adopted: c.adopted.then(|| AdoptedColumn {
                    sql_type: c.sql_type.clone(),
                    concept_type: c.concept_type.clone(),
                    key: c.key.clone(),
                }),
            });
        }
    }

    /// Live columns nothing plans any more are voided, keeping their
    /// values; avni-etl's fixed columns are kept as they are.
    fn void_unplanned(&mut self) {
        for c in self
            .current
            .iter()
            .filter(|c| !c.voided && !c.kept_as_adopted() && !self.taken.contains(&c.id))
        {
            let name = voided_name(&c.name, &c.key, c.id, &self.used);
            self.used.insert(name.clone());
            self.updates.push(ColumnUpdate {
                id: c.id,
                current_name: c.name.clone(),
                name,
                base_name: c.base_name.clone().unwrap_or_else(|| c.name.clone()),
                voided: true,
                revived: false,
                adopted: None,
            });
        }
    }
}
