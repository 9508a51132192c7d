//! The shape of each kind of reporting table (design/etl.md §2): its kind,
//! the fixed columns every table of that kind has, and the SQL expression
//! that fills each of them from the source row.
//!
//! Source aliases the expressions rely on, set up by `sync`: `src` is the
//! table's own source row (individual, program_enrolment, program_encounter,
//! encounter or address_level), `cu` / `lu` the users who created and last
//! modified it, `g` the gender, `en` the enrolment of a program encounter,
//! `lt` the address level's type.

use crate::engine::schema::avni_tables;
use std::fmt;

/// The kinds of reporting table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableKind {
    Subject,
    ProgramEnrolment,
    ProgramExit,
    ProgramEncounter,
    ProgramEncounterCancel,
    Encounter,
    EncounterCancel,
    RepeatableQuestionGroup,
    Address,
    /// The organisation's users (`users`, [`avni_tables`]).
    Users,
    /// Its devices' syncs (`sync_telemetry`, [`avni_tables`]).
    SyncTelemetry,
    /// Memberships of a group subject type's groups ([`avni_tables`]).
    GroupToMember,
    /// Memberships of a household subject type's households, with each
    /// household's head ([`avni_tables`]).
    HouseholdToMember,
}

impl TableKind {
    /// The value of `table_metadata.type` (Avni ETL's names; subject tables
    /// store their subject type's kind, e.g. `Person`).
    pub fn metadata_type(self, subject_kind: &str) -> String {
        match self {
            TableKind::Subject => subject_kind.to_string(),
            TableKind::ProgramEnrolment => "ProgramEnrolment".into(),
            TableKind::ProgramExit => "ProgramExit".into(),
            TableKind::ProgramEncounter => "ProgramEncounter".into(),
            TableKind::ProgramEncounterCancel => "ProgramEncounterCancellation".into(),
            TableKind::Encounter => "Encounter".into(),
            TableKind::EncounterCancel => "IndividualEncounterCancellation".into(),
            TableKind::RepeatableQuestionGroup => "RepeatableQuestionGroup".into(),
            TableKind::Address => "Address".into(),
            TableKind::Users => "User".into(),
            TableKind::SyncTelemetry => "SyncTelemetry".into(),
            TableKind::GroupToMember => "GroupToMember".into(),
            TableKind::HouseholdToMember => "HouseholdToMember".into(),
        }
    }

    pub fn from_metadata_type(value: &str) -> Option<Self> {
        Some(match value {
            "Person" | "Individual" | "Household" | "Group" | "User" | "Subject" => {
                TableKind::Subject
            }
            "ProgramEnrolment" => TableKind::ProgramEnrolment,
            "ProgramExit" => TableKind::ProgramExit,
            "ProgramEncounter" => TableKind::ProgramEncounter,
            "ProgramEncounterCancellation" => TableKind::ProgramEncounterCancel,
            "Encounter" => TableKind::Encounter,
            "IndividualEncounterCancellation" => TableKind::EncounterCancel,
            "RepeatableQuestionGroup" => TableKind::RepeatableQuestionGroup,
            "Address" => TableKind::Address,
            "SyncTelemetry" => TableKind::SyncTelemetry,
            "GroupToMember" => TableKind::GroupToMember,
            "HouseholdToMember" => TableKind::HouseholdToMember,
            _ => return None,
        })
    }

    /// The form type whose questions become this table's columns.
    pub fn form_type(self) -> Option<&'static str> {
        match self {
            TableKind::Subject => Some("IndividualProfile"),
            TableKind::ProgramEnrolment => Some("ProgramEnrolment"),
            TableKind::ProgramExit => Some("ProgramExit"),
            TableKind::ProgramEncounter => Some("ProgramEncounter"),
            TableKind::ProgramEncounterCancel => Some("ProgramEncounterCancellation"),
            TableKind::Encounter => Some("Encounter"),
            TableKind::EncounterCancel => Some("IndividualEncounterCancellation"),
            TableKind::RepeatableQuestionGroup
            | TableKind::Address
            | TableKind::Users
            | TableKind::SyncTelemetry
            | TableKind::GroupToMember
            | TableKind::HouseholdToMember => None,
        }
    }

    /// A table avni-etl fills from a source other than a form's
    /// observations ([`avni_tables`]): its columns are fixed.
    pub fn is_avni_table(self) -> bool {
        matches!(
            self,
            TableKind::Users
                | TableKind::SyncTelemetry
                | TableKind::GroupToMember
                | TableKind::HouseholdToMember
        )
    }

    /// The source column holding the observations of this kind's form.
    pub fn observations_column(self) -> &'static str {
        match self {
            TableKind::ProgramExit => "program_exit_observations",
            TableKind::ProgramEncounterCancel | TableKind::EncounterCancel => "cancel_observations",
            _ => "observations",
        }
    }

    /// For exit and cancel tables: the source column that must be set for a
    /// row to belong in the table (a row that loses it leaves the table).
    pub fn membership_column(self) -> Option<&'static str> {
        match self {
            TableKind::ProgramExit => Some("program_exit_date_time"),
            TableKind::ProgramEncounterCancel | TableKind::EncounterCancel => {
                Some("cancel_date_time")
            }
            _ => None,
        }
    }

    /// The name of the column a repeatable-group table uses for the id of
    /// its owning row.
    pub fn parent_id_column(self) -> &'static str {
        match self {
            TableKind::Subject => "individual_id",
            TableKind::ProgramEnrolment | TableKind::ProgramExit => "program_enrolment_id",
            TableKind::ProgramEncounter | TableKind::ProgramEncounterCancel => {
                "program_encounter_id"
            }
            TableKind::Encounter | TableKind::EncounterCancel => "encounter_id",
            TableKind::RepeatableQuestionGroup
            | TableKind::Address
            | TableKind::Users
            | TableKind::SyncTelemetry
            | TableKind::GroupToMember
            | TableKind::HouseholdToMember => "parent_id",
        }
    }
}

impl fmt::Display for TableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            TableKind::Subject => "subject",
            TableKind::ProgramEnrolment => "program enrolment",
            TableKind::ProgramExit => "program exit",
            TableKind::ProgramEncounter => "program encounter",
            TableKind::ProgramEncounterCancel => "program encounter cancel",
            TableKind::Encounter => "encounter",
            TableKind::EncounterCancel => "encounter cancel",
            TableKind::RepeatableQuestionGroup => "repeatable question group",
            TableKind::Address => "address",
            TableKind::Users => "users",
            TableKind::SyncTelemetry => "sync telemetry",
            TableKind::GroupToMember => "group to member",
            TableKind::HouseholdToMember => "household to member",
        };
        f.write_str(s)
    }
}

/// A reporting column's PostgreSQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    Bigint,
    Integer,
    Boolean,
    Numeric,
    Date,
    Timestamp,
    Timestamptz,
    Time,
    Text,
    Jsonb,
}

impl ColumnType {
    pub fn sql(self) -> &'static str {
        match self {
            ColumnType::Bigint => "bigint",
            ColumnType::Integer => "integer",
            ColumnType::Boolean => "boolean",
            ColumnType::Numeric => "numeric",
            ColumnType::Date => "date",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Timestamptz => "timestamptz",
            ColumnType::Time => "time",
            ColumnType::Text => "text",
            ColumnType::Jsonb => "jsonb",
        }
    }

    /// The type in avni-etl's `column_metadata.type` vocabulary (its
    /// `Column.Type`), which has no `bigint`: ids are `integer` there.
    pub fn avni_name(self) -> &'static str {
        match self {
            ColumnType::Bigint | ColumnType::Integer => "integer",
            ColumnType::Boolean => "bool",
            ColumnType::Numeric => "numeric",
            ColumnType::Date => "date",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Timestamptz => "timestampWithTimezone",
            ColumnType::Time => "time",
            ColumnType::Text => "text",
            ColumnType::Jsonb => "jsonb",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "bigint" => ColumnType::Bigint,
            "integer" => ColumnType::Integer,
            "boolean" => ColumnType::Boolean,
            "numeric" => ColumnType::Numeric,
            "date" => ColumnType::Date,
            "timestamp" => ColumnType::Timestamp,
            "timestamptz" => ColumnType::Timestamptz,
            "time" => ColumnType::Time,
            "text" => ColumnType::Text,
            "jsonb" => ColumnType::Jsonb,
            _ => return None,
        })
    }

    /// The column type of a question by its concept's data type (and, for
    /// coded concepts, whatever the selection kind: both become text).
    pub fn for_concept(data_type: &str) -> Self {
        match data_type {
            "Numeric" => ColumnType::Numeric,
            "Date" => ColumnType::Date,
            "DateTime" => ColumnType::Timestamp,
            "Time" => ColumnType::Time,
            "ImageV2" => ColumnType::Jsonb,
            _ => ColumnType::Text,
        }
    }
}

/// How avni-etl approved an entity: the latest non-voided approval of the
/// source row (`EntityApprovalStatusSyncAction`).
macro_rules! approval {
    ($entity_type:literal) => {
        concat!(
            "(SELECT s.status FROM public.entity_approval_status eas \
             JOIN public.approval_status s ON s.id = eas.approval_status_id \
             WHERE eas.entity_id = src.id AND eas.entity_type = '",
            $entity_type,
            "' AND NOT eas.is_voided ORDER BY eas.status_date_time DESC LIMIT 1)"
        )
    };
}

/// The value of one of avni-etl's own columns (docs/real-systems/avni-etl.md
/// §1.4) that a table of `kind` adopted from it keeps and the layout has no
/// place for, over the same source aliases: the ids of the users, the
/// legacy id, the locations, the approval status, ... `None` for a column
/// the service does not know how to fill (left as avni-etl wrote it).
pub fn avni_etl_column(kind: TableKind, name: &str) -> Option<&'static str> {
    use TableKind::*;
    let visit = matches!(
        kind,
        ProgramEncounter | ProgramEncounterCancel | Encounter | EncounterCancel
    );
    let enrolment = matches!(kind, ProgramEnrolment | ProgramExit);
    Some(match name {
        "created_by_id" if kind != RepeatableQuestionGroup => "src.created_by_id",
        "last_modified_by_id" if kind != RepeatableQuestionGroup => "src.last_modified_by_id",
        "legacy_id" if kind == Subject || enrolment || visit => "src.legacy_id",
        "last_name" if kind == Subject => "src.last_name",
        "middle_name" if kind == Subject => "src.middle_name",
        "address_id" if enrolment || visit => "src.address_id",
        "enrolment_location" if enrolment => "src.enrolment_location",
        "exit_location" if enrolment => "src.exit_location",
        "encounter_location" if visit => "src.encounter_location",
        "cancel_location" if visit => "src.cancel_location",
        "encounter_date_time" if visit => "src.encounter_date_time",
        "filled_by_id" if visit => "src.filled_by_id",
        "gps_coordinates" if kind == Address => "src.gps_coordinates",
        "latest_approval_status" => match kind {
            Subject => approval!("Subject"),
            ProgramEnrolment | ProgramExit => approval!("ProgramEnrolment"),
            ProgramEncounter | ProgramEncounterCancel => approval!("ProgramEncounter"),
            Encounter | EncounterCancel => approval!("Encounter"),
            _ => return None,
        },
        _ => return None,
    })
}

/// For a table adopted from avni-etl: one of the service's fixed columns
/// it lacks whose value follows from avni-etl's own columns of the same
/// row (alias `t`): the avni-etl column it needs, and the expression. Such
/// a column is filled in place when it is added, so the rows avni-etl
/// synced need not be read again.
pub fn backfill_from_avni_etl(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "created_by" => Some((
            "created_by_id",
            "(SELECT u.username FROM public.users u WHERE u.id = t.created_by_id)",
        )),
        "last_modified_by" => Some((
            "last_modified_by_id",
            "(SELECT u.username FROM public.users u WHERE u.id = t.last_modified_by_id)",
        )),
        _ => None,
    }
}

/// A column every table of a kind has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedColumn {
    pub name: &'static str,
    pub sql_type: ColumnType,
    /// The SQL expression over the source aliases.
    pub expr: &'static str,
    /// Part of the primary key.
    pub key: bool,
    /// Gets an index (ids of parents, for joins).
    pub indexed: bool,
}

pub(super) const fn col(
    name: &'static str,
    sql_type: ColumnType,
    expr: &'static str,
) -> FixedColumn {
    FixedColumn {
        name,
        sql_type,
        expr,
        key: false,
        indexed: false,
    }
}

pub(super) const fn key(
    name: &'static str,
    sql_type: ColumnType,
    expr: &'static str,
) -> FixedColumn {
    FixedColumn {
        name,
        sql_type,
        expr,
        key: true,
        indexed: false,
    }
}

pub(super) const fn indexed(
    name: &'static str,
    sql_type: ColumnType,
    expr: &'static str,
) -> FixedColumn {
    FixedColumn {
        name,
        sql_type,
        expr,
        key: false,
        indexed: true,
    }
}

use ColumnType::{Bigint, Boolean, Date, Integer, Text, Timestamptz};

fn audit() -> [FixedColumn; 6] {
    [
        col("is_voided", Boolean, "src.is_voided"),
        indexed("organisation_id", Integer, "src.organisation_id"),
        col("created_by", Text, "cu.username"),
        col("last_modified_by", Text, "lu.username"),
        col("created_date_time", Timestamptz, "src.created_date_time"),
        col(
            "last_modified_date_time",
            Timestamptz,
            "src.last_modified_date_time",
        ),
    ]
}

/// The fixed columns of a table, in table order.
///
/// `subject_kind` and `allow_middle_name` shape subject tables: people have
/// names, a birth date and a gender; other subjects have a `first_name` as
/// their name. `owner` is the owning table's kind for repeatable groups.
pub fn fixed_columns(
    kind: TableKind,
    subject_kind: &str,
    allow_middle_name: bool,
    owner: Option<TableKind>,
) -> Vec<FixedColumn> {
    let mut cols = match kind {
        TableKind::Subject => subject_columns(subject_kind, allow_middle_name),
        TableKind::ProgramEnrolment | TableKind::ProgramExit => enrolment_columns(),
        TableKind::ProgramEncounter
        | TableKind::ProgramEncounterCancel
        | TableKind::Encounter
        | TableKind::EncounterCancel => visit_columns(kind),
        TableKind::RepeatableQuestionGroup => group_columns(owner),
        TableKind::Address => address_columns(),
        // avni-etl's columns, its common columns included.
        TableKind::Users
        | TableKind::SyncTelemetry
        | TableKind::GroupToMember
        | TableKind::HouseholdToMember => return avni_tables::fixed_columns(kind),
    };
    cols.extend(audit());
    cols
}

/// The key and uuid every table but a repeatable group's starts with.
fn id_and_uuid() -> Vec<FixedColumn> {
    vec![key("id", Bigint, "src.id"), col("uuid", Text, "src.uuid")]
}

fn subject_columns(subject_kind: &str, allow_middle_name: bool) -> Vec<FixedColumn> {
    let mut cols = id_and_uuid();
    cols.push(col("first_name", Text, "src.first_name"));
    if allow_middle_name {
        cols.push(col("middle_name", Text, "src.middle_name"));
    }
    if subject_kind == "Person" {
        cols.push(col("last_name", Text, "src.last_name"));
        cols.push(col("date_of_birth", Date, "src.date_of_birth"));
        cols.push(col(
            "date_of_birth_verified",
            Boolean,
            "src.date_of_birth_verified",
        ));
        cols.push(col("gender", Text, "g.name"));
    }
    cols.push(col("registration_date", Date, "src.registration_date"));
    cols.push(indexed("address_id", Bigint, "src.address_id"));
    cols.push(col(
        "registration_location",
        Text,
        "src.registration_location::text",
    ));
    cols
}

fn enrolment_columns() -> Vec<FixedColumn> {
    let mut cols = id_and_uuid();
    cols.push(indexed("individual_id", Bigint, "src.individual_id"));
    cols.push(col(
        "enrolment_date_time",
        Timestamptz,
        "src.enrolment_date_time",
    ));
    cols.push(col(
        "program_exit_date_time",
        Timestamptz,
        "src.program_exit_date_time",
    ));
    cols
}

/// A visit table's columns: a program encounter's individual is its
/// enrolment's, and a cancel table has no `encounter_date_time`.
fn visit_columns(kind: TableKind) -> Vec<FixedColumn> {
    let mut cols = id_and_uuid();
    cols.push(col("name", Text, "src.name"));
    if matches!(
        kind,
        TableKind::ProgramEncounter | TableKind::ProgramEncounterCancel
    ) {
        cols.push(indexed("individual_id", Bigint, "en.individual_id"));
        cols.push(indexed(
            "program_enrolment_id",
            Bigint,
            "src.program_enrolment_id",
        ));
    } else {
        cols.push(indexed("individual_id", Bigint, "src.individual_id"));
    }
    cols.extend(visit_dates(matches!(
        kind,
        TableKind::ProgramEncounter | TableKind::Encounter
    )));
    cols
}

fn group_columns(owner: Option<TableKind>) -> Vec<FixedColumn> {
    let parent = owner.unwrap_or(TableKind::Subject).parent_id_column();
    vec![
        key(parent, Bigint, "src.id"),
        // 0-based position of the group in the answer's array.
        key("index", Integer, "(el.ord - 1)::integer"),
        col("parent_uuid", Text, "src.uuid"),
    ]
}

fn address_columns() -> Vec<FixedColumn> {
    let mut cols = id_and_uuid();
    cols.push(col("title", Text, "src.title"));
    cols.push(col("type", Text, "lt.name"));
    indexed_parent(&mut cols);
    cols
}

fn indexed_parent(cols: &mut Vec<FixedColumn>) {
    cols.push(indexed("parent_id", Bigint, "src.parent_id"));
}

fn visit_dates(with_encounter_date: bool) -> Vec<FixedColumn> {
    let mut cols = vec![
        col(
            "earliest_visit_date_time",
            Timestamptz,
            "src.earliest_visit_date_time",
        ),
        col(
            "max_visit_date_time",
            Timestamptz,
            "src.max_visit_date_time",
        ),
    ];
    if with_encounter_date {
        cols.push(col(
            "encounter_date_time",
            Timestamptz,
            "src.encounter_date_time",
        ));
    }
    cols.push(col("cancel_date_time", Timestamptz, "src.cancel_date_time"));
    cols
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_key_and_audit_columns() {
        let kinds = [
            TableKind::Subject,
            TableKind::ProgramEnrolment,
            TableKind::ProgramExit,
            TableKind::ProgramEncounter,
            TableKind::ProgramEncounterCancel,
            TableKind::Encounter,
            TableKind::EncounterCancel,
            TableKind::RepeatableQuestionGroup,
            TableKind::Address,
            TableKind::Users,
            TableKind::SyncTelemetry,
            TableKind::GroupToMember,
            TableKind::HouseholdToMember,
        ];
        for kind in kinds {
            let cols = fixed_columns(kind, "Person", true, Some(TableKind::Encounter));
            assert!(cols.iter().any(|c| c.key), "{kind}");
            assert!(cols.iter().any(|c| c.name == "last_modified_date_time"));
            let mut names: Vec<_> = cols.iter().map(|c| c.name).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), cols.len(), "{kind}: duplicate fixed column");
            let stored = kind.metadata_type("Person");
            // `User` is also a users' subject type's table (a Subject);
            // the metadata tells them apart by its subject type.
            let read = if kind == TableKind::Users {
                TableKind::Subject
            } else {
                kind
            };
            assert_eq!(TableKind::from_metadata_type(&stored), Some(read));
        }
    }

    #[test]
    fn people_have_names_and_gender_other_subjects_do_not() {
        let person = fixed_columns(TableKind::Subject, "Person", true, None);
        assert!(person.iter().any(|c| c.name == "gender"));
        assert!(person.iter().any(|c| c.name == "middle_name"));
        let household = fixed_columns(TableKind::Subject, "Household", false, None);
        assert!(!household.iter().any(|c| c.name == "gender"));
        assert!(household.iter().any(|c| c.name == "first_name"));
    }

    #[test]
    fn concept_types_map_to_column_types() {
        assert_eq!(ColumnType::for_concept("Numeric"), ColumnType::Numeric);
        assert_eq!(ColumnType::for_concept("Date"), ColumnType::Date);
        assert_eq!(ColumnType::for_concept("DateTime"), ColumnType::Timestamp);
        assert_eq!(ColumnType::for_concept("Time"), ColumnType::Time);
        assert_eq!(ColumnType::for_concept("ImageV2"), ColumnType::Jsonb);
        for t in [
            "Coded", "Text", "Notes", "Image", "Id", "Subject", "Location",
        ] {
            assert_eq!(ColumnType::for_concept(t), ColumnType::Text);
        }
    }
}
