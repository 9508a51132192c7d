//! The tables avni-etl fills from Avni's other sources than forms, with
//! its names and columns (docs/real-systems/avni-etl.md §1.4, §4.3):
//!
//! - `users`: the organisation's users (`public.users`);
//! - `sync_telemetry`: its devices' syncs (`public.sync_telemetry`);
//! - `<group>_<member>`: one per group or household subject type and
//!   member subject type of its `group_role`s, a row per membership
//!   (`public.group_subject`); a household's table also names the
//!   household's head.
//!
//! Their columns are avni-etl's, its seven common columns (`uuid`,
//! `is_voided`, `created_by_id`, `last_modified_by_id`,
//! `created_date_time`, `last_modified_date_time`, `organisation_id`)
//! included, where the form tables have the service's audit columns;
//! the membership tables add `membership_start_date` and
//! `membership_end_date`.
//!
//! Source aliases the expressions rely on, set up by `sync`
//! (`engine::sync::avni_sources`): `src` is the source row (users,
//! sync_telemetry or group_subject), `grp` / `mem` the group's and the
//! member's individual, `gr` the membership's group role, `head` the
//! household's head's membership (none when it has no head).

use crate::engine::schema::layout::{ColumnType, FixedColumn, TableKind, col, indexed, key};
use ColumnType::{Bigint, Boolean, Integer, Text, Timestamptz};

/// The role of a household's head (avni-server's name for it).
pub const HEAD_OF_HOUSEHOLD: &str = "Head of household";

/// avni-etl's common columns, in its order, from the source row.
fn common(last_modified: &'static str) -> [FixedColumn; 7] {
    [
        col("uuid", Text, "src.uuid"),
        col("is_voided", Boolean, "src.is_voided"),
        col("created_by_id", Bigint, "src.created_by_id"),
        col("last_modified_by_id", Bigint, "src.last_modified_by_id"),
        col("created_date_time", Timestamptz, "src.created_date_time"),
        col("last_modified_date_time", Timestamptz, last_modified),
        indexed("organisation_id", Integer, "src.organisation_id"),
    ]
}

const LAST_MODIFIED: &str = "src.last_modified_date_time";

/// The fixed columns of a table of one of these kinds, in table order
/// (none for the other kinds).
pub fn fixed_columns(kind: TableKind) -> Vec<FixedColumn> {
    match kind {
        TableKind::Users => users(),
        TableKind::SyncTelemetry => sync_telemetry(),
        TableKind::GroupToMember => membership(false),
        TableKind::HouseholdToMember => membership(true),
        _ => Vec::new(),
    }
}

fn users() -> Vec<FixedColumn> {
    let mut cols = vec![
        key("id", Bigint, "src.id"),
        col("username", Text, "src.username"),
        col("catchment_id", Integer, "src.catchment_id"),
        col("email", Text, "src.email"),
        col("phone_number", Text, "src.phone_number"),
        col("name", Text, "src.name"),
    ];
    cols.extend(common(LAST_MODIFIED));
    cols
}

fn sync_telemetry() -> Vec<FixedColumn> {
    let mut cols = vec![key("id", Bigint, "src.id")];
    cols.extend(common(LAST_MODIFIED));
    cols.extend([
        indexed("user_id", Bigint, "src.user_id"),
        col("sync_status", Text, "src.sync_status"),
        col("sync_start_time", Timestamptz, "src.sync_start_time"),
        col("sync_end_time", Timestamptz, "src.sync_end_time"),
        col("device_name", Text, "src.device_name"),
        col("android_version", Text, "src.android_version"),
        col("app_version", Text, "src.app_version"),
        col("device_info", Text, "src.device_info::text"),
        col("sync_source", Text, "src.sync_source"),
        // avni-etl has the column and never fills it.
        col("latest_approval_status", Text, "NULL::text"),
    ]);
    cols
}

/// A membership's columns; a household's row also names its head, and
/// changes when the head's membership does.
fn membership(household: bool) -> Vec<FixedColumn> {
    let last_modified = if household {
        "GREATEST(src.last_modified_date_time, head.last_modified_date_time)"
    } else {
        LAST_MODIFIED
    };
    let mut cols = vec![key("id", Bigint, "src.id")];
    cols.extend(common(last_modified));
    cols.extend([
        indexed("group_subject_id", Bigint, "src.group_subject_id"),
        indexed("member_subject_id", Bigint, "src.member_subject_id"),
        col("role", Text, "gr.role"),
        col(
            "membership_start_date",
            Timestamptz,
            "src.membership_start_date",
        ),
        col(
            "membership_end_date",
            Timestamptz,
            "src.membership_end_date",
        ),
    ]);
    if household {
        cols.push(col(
            "Head of household ID",
            Bigint,
            "head.member_subject_id",
        ));
    }
    cols
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(kind: TableKind) -> Vec<&'static str> {
        fixed_columns(kind).iter().map(|c| c.name).collect()
    }

    const COMMON: [&str; 7] = [
        "uuid",
        "is_voided",
        "created_by_id",
        "last_modified_by_id",
        "created_date_time",
        "last_modified_date_time",
        "organisation_id",
    ];

    #[test]
    fn columns_are_avni_etls_in_its_order() {
        let mut users = vec![
            "id",
            "username",
            "catchment_id",
            "email",
            "phone_number",
            "name",
        ];
        users.extend(COMMON);
        assert_eq!(names(TableKind::Users), users);
        let mut telemetry = vec!["id"];
        telemetry.extend(COMMON);
        telemetry.extend([
            "user_id",
            "sync_status",
            "sync_start_time",
            "sync_end_time",
            "device_name",
            "android_version",
            "app_version",
            "device_info",
            "sync_source",
            "latest_approval_status",
        ]);
        assert_eq!(names(TableKind::SyncTelemetry), telemetry);
        let mut group = vec!["id"];
        group.extend(COMMON);
        group.extend([
            "group_subject_id",
            "member_subject_id",
            "role",
            "membership_start_date",
            "membership_end_date",
        ]);
        assert_eq!(names(TableKind::GroupToMember), group);
        group.push("Head of household ID");
        assert_eq!(names(TableKind::HouseholdToMember), group);
        assert!(fixed_columns(TableKind::Subject).is_empty());
    }
}
