//! The source rows of the users, sync telemetry and membership tables
//! (`engine::schema::avni_tables`): their source table, the joins their
//! columns read (`grp`, `mem`, `gr`, `head`) and which rows the window
//! picks. Each function is for those kinds only
//! ([`TableKind::is_avni_table`]); a membership table is either kind of
//! group's.
//!
//! A household's row names its head: the household's non-voided,
//! not-ended membership whose role is "Head of household" (the latest
//! started, when there are several), or none. Unlike avni-etl, which
//! writes no row at all for a household without a head (its Known
//! failure 23), every membership gets its row, with no head there. A
//! change of any membership of a household (a new head, a head's
//! membership ended) brings all of that household's rows into the window.

use crate::engine::schema::avni_tables::HEAD_OF_HOUSEHOLD;
use crate::engine::schema::layout::TableKind;
use service_kit::sql::quote_literal;

/// The source table of a kind's rows.
pub(super) fn source_table(kind: TableKind) -> &'static str {
    match kind {
        TableKind::Users => "users",
        TableKind::SyncTelemetry => "sync_telemetry",
        _ => "group_subject",
    }
}

/// FROM clause of a kind's source rows, with the joins its columns and
/// filter read.
pub(super) fn source_from(kind: TableKind) -> String {
    match kind {
        TableKind::Users => "public.users src".into(),
        TableKind::SyncTelemetry => "public.sync_telemetry src".into(),
        TableKind::HouseholdToMember => format!(
            "{MEMBERSHIP} LEFT JOIN LATERAL (SELECT h.member_subject_id, h.last_modified_date_time \
             FROM public.group_subject h JOIN public.group_role hr ON hr.id = h.group_role_id \
             WHERE h.group_subject_id = src.group_subject_id AND NOT h.is_voided \
               AND h.membership_end_date IS NULL AND hr.role = {head} \
             ORDER BY h.membership_start_date DESC NULLS LAST, h.id DESC LIMIT 1) head ON true",
            head = quote_literal(HEAD_OF_HOUSEHOLD)
        ),
        _ => MEMBERSHIP.into(),
    }
}

/// A membership with its group, member and role.
const MEMBERSHIP: &str = "public.group_subject src \
     JOIN public.individual grp ON grp.id = src.group_subject_id \
     JOIN public.individual mem ON mem.id = src.member_subject_id \
     LEFT JOIN public.group_role gr ON gr.id = src.group_role_id";

/// The columns naming a membership's subject types: the group's and the
/// member's (checked against the identity's subject type and member
/// subject type).
pub(super) const SUBJECT_TYPE_COLUMNS: [&str; 2] = ["grp.subject_type_id", "mem.subject_type_id"];

/// The condition on a source row's change time, within (`lo`, `hi`]: for
/// a household, a change of any of the household's memberships.
pub(super) fn window_condition(kind: TableKind, org: &str, lo: &str, hi: &str) -> String {
    match kind {
        TableKind::HouseholdToMember => format!(
            "src.group_subject_id IN (SELECT c.group_subject_id FROM public.group_subject c \
             WHERE c.organisation_id = {org} AND c.last_modified_date_time > {lo} \
               AND c.last_modified_date_time <= {hi})"
        ),
        _ => format!("src.last_modified_date_time > {lo} AND src.last_modified_date_time <= {hi}"),
    }
}
