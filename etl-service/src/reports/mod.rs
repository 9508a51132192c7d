//! Reports read from a reporting schema: the user-activity summaries
//! avni-etl serves at `/report/hr/*` (docs/real-systems/avni-etl.md §6.4),
//! as one typed report per call of `GetUserActivity`.
//!
//! Each is pure SQL over the schema's own tables: `users`,
//! `sync_telemetry` and the subject, enrolment and visit tables, read as the
//! service's role. A user is a row of the schema's `users` that is not
//! voided and belongs to an organisation; the name shown is its `name`, or
//! its `username` when it has none (as avni-etl shows it).
//!
//! [`tables`] finds what the schema holds, [`sql`] writes the queries.

mod sql;
mod tables;

use crate::engine::entity::EntityRef;
use crate::error::Error;
use chrono::{DateTime, NaiveDate, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Double, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// Which rows the report counts.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityFilter {
    /// First day counted (inclusive); none: from the beginning (for the
    /// weekly median: three months before `end`).
    pub start: Option<NaiveDate>,
    /// Last day counted (inclusive); none: up to now (for the weekly
    /// median: today).
    pub end: Option<NaiveDate>,
    /// Only these users (`users.id`); empty: every user.
    pub user_ids: Vec<i64>,
    /// Rows of each top list (user activity, sync failures, latest syncs).
    pub limit: i64,
}

/// How many rows a top list has unless the caller asks (avni-etl's top 10).
pub const DEFAULT_LIMIT: i64 = 10;
/// The most a caller may ask for.
pub const MAX_LIMIT: i64 = 1000;

/// One user's work: the rows last modified by them that are not voided.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct UserActivity {
    #[diesel(sql_type = BigInt)]
    pub user_id: i64,
    #[diesel(sql_type = Text)]
    pub user_name: String,
    #[diesel(sql_type = BigInt)]
    pub registrations: i64,
    #[diesel(sql_type = BigInt)]
    pub enrolments: i64,
    #[diesel(sql_type = BigInt)]
    pub program_encounters: i64,
    #[diesel(sql_type = BigInt)]
    pub general_encounters: i64,
    #[diesel(sql_type = BigInt)]
    pub total: i64,
}

/// One user's count of a kind of row (sync failures).
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct UserCount {
    #[diesel(sql_type = BigInt)]
    pub user_id: i64,
    #[diesel(sql_type = Text)]
    pub user_name: String,
    #[diesel(sql_type = BigInt)]
    pub count: i64,
}

/// How many users' latest sync has this value (a device model, an app
/// version); the label is empty when the device did not send one.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct LabelCount {
    #[diesel(sql_type = Text)]
    pub label: String,
    #[diesel(sql_type = BigInt)]
    pub users: i64,
}

/// One sync of a device.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct DeviceSync {
    #[diesel(sql_type = BigInt)]
    pub user_id: i64,
    #[diesel(sql_type = Text)]
    pub user_name: String,
    #[diesel(sql_type = Text)]
    pub sync_status: String,
    #[diesel(sql_type = Text)]
    pub sync_source: String,
    #[diesel(sql_type = Text)]
    pub app_version: String,
    #[diesel(sql_type = Text)]
    pub android_version: String,
    #[diesel(sql_type = Text)]
    pub device_name: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub sync_start_time: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub sync_end_time: Option<DateTime<Utc>>,
}

/// The median length of a week's manual syncs.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct WeeklyMedian {
    /// The week's first day (`YYYY-MM-DD`).
    #[diesel(sql_type = Text)]
    pub week_start: String,
    /// Seconds; none when nobody synced by hand that week.
    #[diesel(sql_type = Nullable<Double>)]
    pub median_seconds: Option<f64>,
    #[diesel(sql_type = BigInt)]
    pub syncs: i64,
}

/// The user-activity summaries of one reporting schema.
#[derive(Debug, Clone, PartialEq)]
pub struct UserActivityReport {
    pub schema_name: String,
    /// The most active users first (by total, then id).
    pub user_activity: Vec<UserActivity>,
    /// Users by their incomplete syncs, most first.
    pub sync_failures: Vec<UserCount>,
    /// Users per device model of their latest sync, most first.
    pub device_models: Vec<LabelCount>,
    /// Users per app version of their latest sync, most first.
    pub app_versions: Vec<LabelCount>,
    /// The most recent syncs (by end time), newest first.
    pub latest_syncs: Vec<DeviceSync>,
    /// One row per week, oldest first.
    pub median_sync: Vec<WeeklyMedian>,
}

/// The report of `entity`'s reporting schema. NOT_FOUND when the entity is
/// unknown, FAILED_PRECONDITION when its schema has not been built yet.
pub async fn user_activity(
    conn: &mut AsyncPgConnection,
    entity: EntityRef,
    filter: &ActivityFilter,
) -> Result<UserActivityReport, Error> {
    check_filter(filter)?;
    let target = crate::control::service::find_target(conn, entity).await?;
    let schema = tables::read(conn, &target.schema_name).await?;
    let start = filter.start.map(|d| d.to_string());
    let end = filter.end.map(|d| d.to_string());
    macro_rules! load {
        ($text:expr) => {
            diesel::sql_query($text)
                .bind::<Nullable<Text>, _>(&start)
                .bind::<Nullable<Text>, _>(&end)
                .bind::<Array<BigInt>, _>(&filter.user_ids)
                .bind::<BigInt, _>(filter.limit)
                .load(conn)
                .await?
        };
    }
    Ok(UserActivityReport {
        user_activity: load!(sql::user_activity(&schema)),
        sync_failures: load!(sql::sync_failures(&schema)),
        device_models: load!(sql::latest_sync_counts(&schema, "device_name")),
        app_versions: load!(sql::latest_sync_counts(&schema, "app_version")),
        latest_syncs: load!(sql::latest_syncs(&schema)),
        median_sync: load!(sql::median_sync(&schema)),
        schema_name: target.schema_name,
    })
}

fn check_filter(filter: &ActivityFilter) -> Result<(), Error> {
    if let (Some(start), Some(end)) = (filter.start, filter.end)
        && start > end
    {
        return Err(Error::InvalidArgument(format!(
            "start_date {start} is after end_date {end}"
        )));
    }
    if !(1..=MAX_LIMIT).contains(&filter.limit) {
        return Err(Error::InvalidArgument(format!(
            "limit must be between 1 and {MAX_LIMIT} (0 for the default, {DEFAULT_LIMIT}); got {}",
            filter.limit
        )));
    }
    Ok(())
}
