//! The reports' queries, written for one schema. Every query takes the same
//! parameters: `$1` the first day and `$2` the last day (text dates, either
//! NULL), `$3` the user ids (`bigint[]`, empty for all) and `$4` the length
//! of a top list. Identifiers go through [`quote_qualified`]; values are
//! always bound.

use super::tables::{ActivityTable, LastModifiedBy, ReportTables, date_column};
use crate::engine::schema::layout::TableKind;
use service_kit::sql::{quote_ident, quote_qualified};

/// The users a report shows, as `users`: not voided, of an organisation,
/// among `$3` when it names any.
fn users(schema: &ReportTables) -> String {
    format!(
        "users AS (SELECT u.id::bigint AS id, u.username, \
                          coalesce(u.name, u.username, '') AS user_name \
                   FROM {} u \
                   WHERE NOT coalesce(u.is_voided, false) AND u.organisation_id IS NOT NULL \
                     AND (cardinality($3::bigint[]) = 0 OR u.id = ANY($3::bigint[])))",
        quote_qualified(&schema.schema, "users")
    )
}

/// `column`'s day within `$1`..`$2` (either open).
fn within_days(column: &str) -> String {
    format!(
        "($1::date IS NULL OR {column}::date >= $1::date) \
         AND ($2::date IS NULL OR {column}::date <= $2::date)"
    )
}

/// The bucket a table's rows count in.
fn activity_bucket(kind: TableKind) -> i32 {
    match kind {
        TableKind::Subject => 1,
        TableKind::ProgramEnrolment => 2,
        TableKind::ProgramEncounter => 3,
        _ => 4,
    }
}

/// One table's rows per user: not voided, dated within the days.
fn activity_branch(schema: &ReportTables, table: &ActivityTable) -> String {
    let join = match table.by {
        LastModifiedBy::Username => "u.username = t.last_modified_by",
        LastModifiedBy::UserId => "u.id = t.last_modified_by_id",
    };
    let date = date_column(table.kind).unwrap_or("created_date_time");
    format!(
        "SELECT u.id AS user_id, {bucket} AS bucket, count(*) AS n \
         FROM {table} t JOIN users u ON {join} \
         WHERE NOT coalesce(t.is_voided, false) AND {within} \
         GROUP BY u.id",
        bucket = activity_bucket(table.kind),
        table = quote_qualified(&schema.schema, &table.name),
        within = within_days(&format!("t.{}", quote_ident(date))),
    )
}

/// Per user: registrations, enrolments, program and general encounters
/// (avni-etl's `userActivity`), the most first.
pub fn user_activity(schema: &ReportTables) -> String {
    let branches: Vec<String> = schema
        .activity
        .iter()
        .map(|t| activity_branch(schema, t))
        .collect();
    let work = if branches.is_empty() {
        "SELECT NULL::bigint AS user_id, 0 AS bucket, 0::bigint AS n WHERE false".to_string()
    } else {
        branches.join(" UNION ALL ")
    };
    let bucket = |b: i32| format!("coalesce(sum(w.n) FILTER (WHERE w.bucket = {b}), 0)::bigint");
    format!(
        "WITH {users}, work AS ({work}) \
         SELECT u.id AS user_id, u.user_name, \
                {reg} AS registrations, {enr} AS enrolments, \
                {penc} AS program_encounters, {genc} AS general_encounters, \
                coalesce(sum(w.n), 0)::bigint AS total \
         FROM work w JOIN users u ON u.id = w.user_id \
         GROUP BY u.id, u.user_name \
         ORDER BY total DESC, u.id LIMIT $4",
        users = users(schema),
        reg = bucket(1),
        enr = bucket(2),
        penc = bucket(3),
        genc = bucket(4),
    )
}

/// Per user, the syncs that did not complete (`sync_status =
/// 'incomplete'`, started within the days), the most first.
pub fn sync_failures(schema: &ReportTables) -> String {
    format!(
        "WITH {users} \
         SELECT u.id AS user_id, u.user_name, count(*)::bigint AS count \
         FROM {telemetry} st JOIN users u ON u.id = st.user_id \
         WHERE st.sync_status = 'incomplete' AND {within} \
         GROUP BY u.id, u.user_name ORDER BY count DESC, u.id LIMIT $4",
        users = users(schema),
        telemetry = quote_qualified(&schema.schema, "sync_telemetry"),
        within = within_days("st.sync_start_time"),
    )
}

/// Users per value of `column` in their latest sync (by start time) that
/// started within the days: device models, app versions.
pub fn latest_sync_counts(schema: &ReportTables, column: &str) -> String {
    format!(
        "WITH {users}, latest AS ( \
             SELECT DISTINCT ON (st.user_id) st.user_id, st.{column} AS label \
             FROM {telemetry} st JOIN users u ON u.id = st.user_id \
             WHERE {within} \
             ORDER BY st.user_id, st.sync_start_time DESC NULLS LAST, st.id DESC) \
         SELECT coalesce(label, '') AS label, count(*)::bigint AS users \
         FROM latest GROUP BY 1 ORDER BY users DESC, label",
        users = users(schema),
        column = quote_ident(column),
        telemetry = quote_qualified(&schema.schema, "sync_telemetry"),
        within = within_days("st.sync_start_time"),
    )
}

/// The most recent syncs that ended within the days, newest first.
pub fn latest_syncs(schema: &ReportTables) -> String {
    format!(
        "WITH {users} \
         SELECT u.id AS user_id, u.user_name, \
                coalesce(st.sync_status, '') AS sync_status, \
                coalesce(st.sync_source, '') AS sync_source, \
                coalesce(st.app_version, '') AS app_version, \
                coalesce(st.android_version, '') AS android_version, \
                coalesce(st.device_name, '') AS device_name, \
                st.sync_start_time, st.sync_end_time \
         FROM {telemetry} st JOIN users u ON u.id = st.user_id \
         WHERE st.sync_end_time IS NOT NULL AND {within} \
         ORDER BY st.sync_end_time DESC, st.id DESC LIMIT $4",
        users = users(schema),
        telemetry = quote_qualified(&schema.schema, "sync_telemetry"),
        within = within_days("st.sync_end_time"),
    )
}

/// Weeks from the first day (default: three months before the last; at
/// most ten years) to the last day (default: today): per week, the median
/// length of the manual syncs that started and ended in it.
pub fn median_sync(schema: &ReportTables) -> String {
    format!(
        "WITH {users}, \
         last_day AS (SELECT coalesce($2::date, current_date) AS d), \
         days AS (SELECT greatest(coalesce($1::date, (l.d - interval '3 months')::date), \
                                  l.d - 3653) AS first_day, l.d AS last_day FROM last_day l), \
         weeks AS (SELECT w::date AS week_start FROM days, \
                   generate_series(days.first_day, days.last_day, interval '7 days') w), \
         syncs AS (SELECT st.id, st.sync_start_time, st.sync_end_time \
                   FROM {telemetry} st JOIN users u ON u.id = st.user_id \
                   WHERE st.sync_source = 'manual' AND st.sync_end_time >= st.sync_start_time) \
         SELECT to_char(wk.week_start, 'YYYY-MM-DD') AS week_start, \
                percentile_cont(0.5) WITHIN GROUP \
                    (ORDER BY extract(epoch FROM s.sync_end_time - s.sync_start_time)) \
                    AS median_seconds, \
                count(s.id)::bigint AS syncs \
         FROM weeks wk LEFT JOIN syncs s \
           ON s.sync_start_time::date >= wk.week_start \
          AND s.sync_end_time::date < wk.week_start + 7 \
         GROUP BY wk.week_start ORDER BY wk.week_start",
        users = users(schema),
        telemetry = quote_qualified(&schema.schema, "sync_telemetry"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(activity: Vec<ActivityTable>) -> ReportTables {
        ReportTables {
            schema: "org \"x\"".into(),
            activity,
        }
    }

    #[test]
    fn identifiers_are_quoted_and_values_bound() {
        let s = schema(vec![ActivityTable {
            name: "a\"b".into(),
            kind: TableKind::Subject,
            by: LastModifiedBy::Username,
        }]);
        let text = user_activity(&s);
        assert!(text.contains(r#""org ""x"""."a""b""#), "{text}");
        assert!(text.contains(r#"t."registration_date"::date"#), "{text}");
        for query in [
            text,
            sync_failures(&s),
            latest_sync_counts(&s, "device_name"),
            latest_syncs(&s),
            median_sync(&s),
        ] {
            assert!(query.contains("$3::bigint[]"), "{query}");
        }
    }

    #[test]
    fn each_table_counts_in_its_kinds_bucket_and_by_its_user_column() {
        let table = |name: &str, kind, by| ActivityTable {
            name: name.into(),
            kind,
            by,
        };
        let s = schema(vec![
            table("person", TableKind::Subject, LastModifiedBy::Username),
            table("anc", TableKind::ProgramEnrolment, LastModifiedBy::UserId),
            table(
                "anc_visit",
                TableKind::ProgramEncounter,
                LastModifiedBy::Username,
            ),
            table("home_visit", TableKind::Encounter, LastModifiedBy::Username),
        ]);
        let text = user_activity(&s);
        assert_eq!(text.matches(" UNION ALL ").count(), 3);
        assert!(text.contains("SELECT u.id AS user_id, 2 AS bucket"));
        assert!(text.contains("u.id = t.last_modified_by_id"));
        assert!(text.contains(r#""home_visit" t JOIN users u ON u.username"#));
        assert!(text.contains("4 AS bucket"));
    }

    #[test]
    fn a_schema_without_activity_tables_still_has_a_query() {
        let text = user_activity(&schema(Vec::new()));
        assert!(text.contains("WHERE false"), "{text}");
    }
}
