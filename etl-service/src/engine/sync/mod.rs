//! Syncing one reporting table for one source organisation (design/etl.md
//! §5.3): the rows changed in the window (last_sync_time, boundary] are
//! upserted inside PostgreSQL with one `INSERT ... SELECT ... ON CONFLICT`,
//! rows that stopped being cancelled or exited are deleted, and the table's
//! watermark advances, all in one transaction. The cost grows with the
//! number of changed rows: every statement is driven by the source's
//! `(organisation_id, last_modified_date_time)` index.

pub mod extract;
pub mod sql_text;

use crate::engine::schema::layout::TableKind;
use crate::engine::schema::plan::PlannedTable;
use crate::engine::sync::extract::{Casting, column_expr};
use crate::engine::sync::sql_text::{Statement, Value};
use crate::error::Error;
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Integer, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use service_kit::sql::{quote_ident, quote_qualified};

/// Where and for whom a table is synced.
#[derive(Debug, Clone)]
pub struct SyncTarget<'a> {
    pub schema: &'a str,
    pub table: &'a PlannedTable,
    pub table_id: i32,
    pub organisation_id: i32,
    /// The source organisation's role: the watermark's owner.
    pub db_user: &'a str,
    /// Time zone DateTime questions are shown in.
    pub time_zone: &'a str,
}

/// Rows one sync changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounts {
    pub upserted: u64,
    pub deleted: u64,
}

impl std::ops::AddAssign for SyncCounts {
    fn add_assign(&mut self, other: Self) {
        self.upserted += other.upserted;
        self.deleted += other.deleted;
    }
}

/// The start of time for a table never synced.
pub fn epoch() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(-2_208_988_800, 0).unwrap_or_default()
}

#[derive(QueryableByName)]
struct Watermark {
    #[diesel(sql_type = Timestamptz)]
    last_sync_time: DateTime<Utc>,
}

/// Syncs the rows of `target` changed up to `boundary`. With `fail` set
/// (tests only), fails after the rows are written and before the commit, as
/// a crash would.
///
/// The table is first synced with [`Casting::Direct`]; if an answer cannot
/// be read as its column's type, that transaction is rolled back (nothing of
/// it stays) and the table synced again with [`Casting::Tolerant`], which
/// makes such answers NULL. A savepoint around the first upsert would do the
/// same at the cost of two more round trips for every table, in every run.
pub async fn sync_table(
    conn: &mut AsyncPgConnection,
    target: &SyncTarget<'_>,
    boundary: DateTime<Utc>,
    fail: bool,
) -> Result<SyncCounts, Error> {
    let mut unreadable = None;
    let direct = sync_attempt(
        conn,
        target,
        boundary,
        fail,
        Casting::Direct,
        &mut unreadable,
    )
    .await;
    match (direct, unreadable) {
        // A failure of another kind fails again with tolerant casts and is
        // reported from there.
        (Err(_), Some(reason)) => {
            tracing::info!(
                table = %target.table.name,
                reason = %reason,
                "an answer cannot be read as its column's type; syncing with tolerant casts"
            );
            sync_attempt(conn, target, boundary, fail, Casting::Tolerant, &mut None).await
        }
        (result, _) => result,
    }
}

/// One transaction syncing `target`; sets `unreadable` (and fails) when the
/// upsert itself fails in PostgreSQL.
///
/// Statements that do not wait for one another's results are pipelined
/// (sent together on the connection, executed one after another by
/// PostgreSQL in the order sent): the settings with the watermark's read,
/// then the upsert, the deletes and the new watermark. A table costs six
/// round trips to PostgreSQL (begin, two for the reads, two for the writes,
/// commit) however many statements it takes; one at a time, each statement
/// took two (prepare, execute), thirteen for a table with a delete, and a
/// run with few changes spent much of its time waiting for round trips.
async fn sync_attempt(
    conn: &mut AsyncPgConnection,
    target: &SyncTarget<'_>,
    boundary: DateTime<Utc>,
    fail: bool,
    casting: Casting,
    unreadable: &mut Option<String>,
) -> Result<SyncCounts, Error> {
    conn.transaction::<_, Error, _>(async |conn| {
        // The statements carry one expression per question (dozens), so
        // the planner's cost estimates pass PostgreSQL's JIT thresholds,
        // and compiling them took seconds per table: longer than syncing
        // a whole table, and paid again for every small incremental window.
        //
        // A statement's text is the same for a table on every run while
        // its window differs from everything to a few rows: after five
        // runs PostgreSQL would settle on one generic plan for all of
        // them, and with it parse the bound answer maps once per row
        // instead of once per statement. Plans are made for each window.
        //
        // A table's rows and watermark commit together, so a commit lost in
        // a crash leaves the table at its old watermark, synced again by the
        // next run: waiting for the flush to disk buys nothing.
        //
        // (`set_config(.., true)` is `SET LOCAL`: for this transaction.)
        let settings = diesel::sql_query(
            "SELECT set_config('jit', 'off', true), \
                    set_config('plan_cache_mode', 'force_custom_plan', true), \
                    set_config('synchronous_commit', 'off', true)",
        );
        let watermark = diesel::sql_query(
            "SELECT last_sync_time FROM public.entity_sync_status \
             WHERE table_metadata_id = $1 AND db_user = $2 FOR UPDATE",
        )
        .bind::<Integer, _>(target.table_id)
        .bind::<Text, _>(target.db_user);
        let shared: &AsyncPgConnection = conn;
        let (mut first, mut second) = (shared, shared);
        let (set, marks) = futures::join!(
            settings.execute(&mut first),
            watermark.load::<Watermark>(&mut second)
        );
        set?;
        let from = marks?
            .into_iter()
            .next()
            .map(|w| w.last_sync_time)
            .unwrap_or_else(epoch);

        let mut statements = Vec::new();
        if from < boundary {
            let was_empty = from <= epoch() && is_empty(conn, target).await?;
            statements.push(upsert_statement(target, from, boundary, casting).into_query());
            // Rows that stopped belonging can only be among rows that were
            // there before: a table filled from empty (a first load) skips
            // the deletes, which cost as much as the load's scan.
            if !was_empty {
                statements.extend(
                    delete_statements(target, from, boundary)
                        .into_iter()
                        .map(|d| d.into_query()),
                );
            }
        }
        let writes = statements.len();
        // With `fail` the watermark is not written: the failure comes after
        // the rows and before the commit.
        if !fail {
            let mut mark = Statement::new();
            let (user, table, time, schema) = (
                mark.bind_text(target.db_user),
                mark.bind(Value::Int(target.table_id)),
                mark.bind(Value::Time(from.max(boundary))),
                mark.bind_text(target.schema),
            );
            mark.push(&format!(
                "INSERT INTO public.entity_sync_status \
                     (db_user, table_metadata_id, last_sync_time, sync_status, schema_name) \
                 VALUES ({user}, {table}, {time}, 'Success', {schema}) \
                 ON CONFLICT (table_metadata_id, db_user) DO UPDATE \
                 SET last_sync_time = EXCLUDED.last_sync_time, sync_status = EXCLUDED.sync_status"
            ));
            statements.push(mark.into_query());
        }
        let shared: &AsyncPgConnection = conn;
        let results = futures::future::join_all(statements.into_iter().map(|statement| {
            let mut c = shared;
            async move { statement.execute(&mut c).await }
        }))
        .await;

        let mut counts = SyncCounts::default();
        // The first failure is the one to report: after it, PostgreSQL
        // refuses the rest of the transaction's statements.
        for (i, result) in results.into_iter().enumerate() {
            let n = match result {
                Ok(n) => n as u64,
                Err(diesel::result::Error::DatabaseError(kind, info))
                    if i == 0 && writes > 0 && casting == Casting::Direct =>
                {
                    *unreadable = Some(info.message().to_string());
                    return Err(diesel::result::Error::DatabaseError(kind, info).into());
                }
                Err(e) => return Err(e.into()),
            };
            match i {
                0 if writes > 0 => counts.upserted = n,
                i if i < writes => counts.deleted += n,
                _ => {}
            }
        }
        if fail {
            return Err(Error::InjectedFailure(format!(
                "failure injected while syncing table {}",
                target.table.name
            )));
        }
        Ok(counts)
    })
    .await
}

#[derive(QueryableByName)]
struct Empty {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    empty: bool,
}

async fn is_empty(conn: &mut AsyncPgConnection, target: &SyncTarget<'_>) -> Result<bool, Error> {
    Ok(diesel::sql_query(format!(
        "SELECT NOT EXISTS (SELECT 1 FROM {}) AS empty",
        quote_qualified(target.schema, &target.table.name)
    ))
    .get_result::<Empty>(conn)
    .await?
    .empty)
}

/// The source table whose rows drive a reporting table.
pub fn source_table(table: &PlannedTable) -> &'static str {
    match row_kind(table) {
        TableKind::Subject | TableKind::RepeatableQuestionGroup => "individual",
        TableKind::ProgramEnrolment | TableKind::ProgramExit => "program_enrolment",
        TableKind::ProgramEncounter | TableKind::ProgramEncounterCancel => "program_encounter",
        TableKind::Encounter | TableKind::EncounterCancel => "encounter",
        TableKind::Address => "address_level",
    }
}

#[derive(QueryableByName)]
struct Latest {
    #[diesel(sql_type = diesel::sql_types::Nullable<Timestamptz>)]
    latest: Option<DateTime<Utc>>,
}

/// When a row of `source` (one of [`source_table`]'s names) of the
/// organisation last changed: one backward step on the
/// `(organisation_id, last_modified_date_time)` index. A table whose
/// watermark is at or past it has nothing to sync, so a run with no changes
/// costs one such query per source table, not one per reporting table.
pub async fn latest_change(
    conn: &mut AsyncPgConnection,
    source: &'static str,
    organisation_id: i32,
) -> Result<Option<DateTime<Utc>>, Error> {
    Ok(diesel::sql_query(format!(
        "SELECT max(last_modified_date_time) AS latest FROM public.{} WHERE organisation_id = $1",
        quote_ident(source)
    ))
    .bind::<Integer, _>(organisation_id)
    .get_result::<Latest>(conn)
    .await?
    .latest)
}

#[derive(QueryableByName)]
struct StoredWatermark {
    #[diesel(sql_type = Integer)]
    table_metadata_id: i32,
    #[diesel(sql_type = Text)]
    db_user: String,
    #[diesel(sql_type = Timestamptz)]
    last_sync_time: DateTime<Utc>,
}

/// Every watermark of a schema: (table id, db_user) -> last sync time.
pub async fn watermarks(
    conn: &mut AsyncPgConnection,
    schema: &str,
) -> Result<std::collections::HashMap<(i32, String), DateTime<Utc>>, Error> {
    let rows: Vec<StoredWatermark> = diesel::sql_query(
        "SELECT s.table_metadata_id, s.db_user, s.last_sync_time FROM public.entity_sync_status s \
         JOIN public.table_metadata t ON t.id = s.table_metadata_id WHERE t.schema_name = $1",
    )
    .bind::<Text, _>(schema)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|w| ((w.table_metadata_id, w.db_user), w.last_sync_time))
        .collect())
}

/// The kind whose source rows drive the table: the owner's for a
/// repeatable-group table.
fn row_kind(table: &PlannedTable) -> TableKind {
    table.identity.owner_kind.unwrap_or(table.identity.kind)
}

/// FROM clause of a kind's source rows, with the joins its filter needs.
fn source_from(kind: TableKind) -> &'static str {
    match kind {
        TableKind::Subject => "public.individual src",
        TableKind::ProgramEnrolment | TableKind::ProgramExit => {
            "public.program_enrolment src JOIN public.individual i ON i.id = src.individual_id"
        }
        TableKind::ProgramEncounter | TableKind::ProgramEncounterCancel => {
            "public.program_encounter src \
             JOIN public.program_enrolment en ON en.id = src.program_enrolment_id \
             JOIN public.individual i ON i.id = en.individual_id"
        }
        TableKind::Encounter | TableKind::EncounterCancel => {
            "public.encounter src JOIN public.individual i ON i.id = src.individual_id"
        }
        TableKind::Address => {
            "public.address_level src JOIN public.address_level_type lt ON lt.id = src.type_id"
        }
        TableKind::RepeatableQuestionGroup => "public.individual src",
    }
}

/// The WHERE conditions selecting `target`'s source rows changed in the
/// window.
fn source_filter(
    s: &mut Statement,
    target: &SyncTarget<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> String {
    let identity = &target.table.identity;
    let kind = row_kind(target.table);
    let org = s.bind(Value::Int(target.organisation_id));
    let lo = s.bind(Value::Time(from));
    let hi = s.bind(Value::Time(to));
    let mut conditions = vec![format!("src.organisation_id = {org}")];
    let mut by_uuid = |s: &mut Statement, column: &str, table: &str, uuid: &Option<String>| {
        // An array computed once, before the scan: the condition is then
        // checked on each source row as it is read, before the joins and
        // before its observations are detoasted (as a semi-join it was
        // checked after them, reading every other type's observations).
        if let Some(uuid) = uuid {
            let p = s.bind_text(uuid);
            conditions.push(format!(
                "{column} = ANY (ARRAY(SELECT id FROM public.{table} WHERE uuid = {p}))"
            ));
        }
    };
    match kind {
        TableKind::Subject => {
            by_uuid(
                s,
                "src.subject_type_id",
                "subject_type",
                &identity.subject_type_uuid,
            );
        }
        TableKind::ProgramEnrolment | TableKind::ProgramExit => {
            by_uuid(s, "src.program_id", "program", &identity.program_uuid);
            by_uuid(
                s,
                "i.subject_type_id",
                "subject_type",
                &identity.subject_type_uuid,
            );
        }
        TableKind::ProgramEncounter | TableKind::ProgramEncounterCancel => {
            by_uuid(
                s,
                "src.encounter_type_id",
                "encounter_type",
                &identity.encounter_type_uuid,
            );
            by_uuid(s, "en.program_id", "program", &identity.program_uuid);
            by_uuid(
                s,
                "i.subject_type_id",
                "subject_type",
                &identity.subject_type_uuid,
            );
        }
        TableKind::Encounter | TableKind::EncounterCancel => {
            by_uuid(
                s,
                "src.encounter_type_id",
                "encounter_type",
                &identity.encounter_type_uuid,
            );
            by_uuid(
                s,
                "i.subject_type_id",
                "subject_type",
                &identity.subject_type_uuid,
            );
        }
        TableKind::Address | TableKind::RepeatableQuestionGroup => {}
    }
    if kind == TableKind::Address {
        // A level's row shows its ancestors' titles, so a changed level
        // brings its descendants along.
        conditions.push(format!(
            "src.id IN (WITH RECURSIVE changed AS ( \
                 SELECT id FROM public.address_level \
                 WHERE organisation_id = {org} AND last_modified_date_time > {lo} \
                   AND last_modified_date_time <= {hi} \
                 UNION SELECT c.id FROM public.address_level c JOIN changed p ON c.parent_id = p.id) \
             SELECT id FROM changed)"
        ));
    } else {
        conditions.push(format!(
            "src.last_modified_date_time > {lo} AND src.last_modified_date_time <= {hi}"
        ));
    }
    conditions.join(" AND ")
}

/// The `INSERT ... SELECT ... ON CONFLICT DO UPDATE` of a table's changed
/// rows.
pub fn upsert_statement(
    target: &SyncTarget<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    casting: Casting,
) -> Statement {
    let table = target.table;
    let kind = row_kind(table);
    let mut s = Statement::new();
    let filter = source_filter(&mut s, target, from, to);
    // Observations are read once per row: a large jsonb is TOASTed, and
    // every `->` on the column would fetch and decompress it again (one per
    // question column, an order of magnitude slower). The concatenation
    // yields the value detoasted, and OFFSET 0 keeps the subquery from
    // being flattened back into per-column reads.
    let detoast = if kind == TableKind::Address {
        String::new()
    } else {
        format!(
            " CROSS JOIN LATERAL (SELECT src.{} || '{{}}'::jsonb AS o OFFSET 0) d",
            kind.observations_column()
        )
    };
    let observations = "d.o".to_string();
    let (row_obs, elements) = match (&table.identity.kind, &table.identity.group_concept_uuid) {
        (TableKind::RepeatableQuestionGroup, Some(group)) => {
            let g = s.bind_text(group);
            (
                "el.value".to_string(),
                format!(
                    " CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof({observations} -> {g}) = 'array' \
                     THEN {observations} -> {g} END) WITH ORDINALITY AS el(value, ord)"
                ),
            )
        }
        _ => (observations, String::new()),
    };

    let mut names = Vec::new();
    let mut exprs = Vec::new();
    for fixed in &table.fixed {
        names.push(quote_ident(fixed.name));
        exprs.push(fixed.expr.to_string());
    }
    for column in &table.columns {
        names.push(quote_ident(&column.name));
        exprs.push(column_expr(
            &mut s,
            &row_obs,
            column,
            target.time_zone,
            casting,
        ));
    }
    let keys: Vec<String> = table
        .fixed
        .iter()
        .filter(|c| c.key)
        .map(|c| quote_ident(c.name))
        .collect();
    let updates: Vec<String> = table
        .fixed
        .iter()
        .filter(|c| !c.key)
        .map(|c| c.name.to_string())
        .chain(table.columns.iter().map(|c| c.name.clone()))
        .map(|n| format!("{0} = EXCLUDED.{0}", quote_ident(&n)))
        .collect();

    let mut joins = String::from(
        " LEFT JOIN public.users cu ON cu.id = src.created_by_id \
          LEFT JOIN public.users lu ON lu.id = src.last_modified_by_id",
    );
    if table.identity.kind == TableKind::Subject && table.fixed.iter().any(|c| c.name == "gender") {
        joins.push_str(" LEFT JOIN public.gender g ON g.id = src.gender_id");
    }
    if kind == TableKind::Address {
        joins.push_str(ADDRESS_ANCESTORS);
    }
    let mut conditions = filter;
    if let Some(m) = kind.membership_column() {
        conditions.push_str(&format!(" AND src.{m} IS NOT NULL"));
    }
    s.push(&format!(
        "INSERT INTO {table} ({names}) SELECT {exprs} FROM {from}{joins}{detoast}{elements} WHERE {conditions} \
         ON CONFLICT ({keys}) DO UPDATE SET {updates}",
        table = quote_qualified(target.schema, &table.name),
        names = names.join(", "),
        exprs = exprs.join(", "),
        from = source_from(kind),
        keys = keys.join(", "),
        updates = updates.join(", "),
    ));
    s
}

/// Each address level's ancestors (itself included) as
/// `{"<type name>": [id, title]}`.
const ADDRESS_ANCESTORS: &str = " LEFT JOIN LATERAL (WITH RECURSIVE up AS ( \
         SELECT a.id, a.title, a.type_id, a.parent_id, 0 AS depth FROM public.address_level a WHERE a.id = src.id \
         UNION ALL SELECT p.id, p.title, p.type_id, p.parent_id, up.depth + 1 \
         FROM public.address_level p JOIN up ON p.id = up.parent_id WHERE up.depth < 32) \
       SELECT jsonb_object_agg(t.name, jsonb_build_array(up.id, up.title)) AS levels \
       FROM up JOIN public.address_level_type t ON t.id = up.type_id) anc ON true";

/// The statements removing rows that no longer belong: exit/cancel rows
/// whose source row is no longer exited/cancelled, and repeatable-group
/// rows past the end of their (edited) array.
pub fn delete_statements(
    target: &SyncTarget<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<Statement> {
    let table = target.table;
    let kind = row_kind(table);
    let qualified = quote_qualified(target.schema, &table.name);
    let mut statements = Vec::new();
    match (&table.identity.kind, &table.identity.group_concept_uuid) {
        (TableKind::RepeatableQuestionGroup, Some(group)) => {
            let mut s = Statement::new();
            let filter = source_filter(&mut s, target, from, to);
            let g = s.bind_text(group);
            let obs = format!("src.{}", kind.observations_column());
            let member = kind
                .membership_column()
                .map(|m| format!("src.{m} IS NOT NULL AND "))
                .unwrap_or_default();
            s.push(&format!(
                "DELETE FROM {qualified} t USING {from} WHERE t.{parent} = src.id AND {filter} \
                 AND t.\"index\" >= (CASE WHEN {member}jsonb_typeof({obs} -> {g}) = 'array' \
                 THEN jsonb_array_length({obs} -> {g}) ELSE 0 END)",
                from = source_from(kind),
                parent = quote_ident(kind.parent_id_column()),
            ));
            statements.push(s);
        }
        _ => {
            if let Some(m) = kind.membership_column() {
                let mut s = Statement::new();
                let filter = source_filter(&mut s, target, from, to);
                s.push(&format!(
                    "DELETE FROM {qualified} t USING {from} WHERE t.id = src.id AND {filter} \
                     AND src.{m} IS NULL",
                    from = source_from(kind),
                ));
                statements.push(s);
            }
        }
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::schema::plan::{ExistingSchema, plan_schema};
    use crate::engine::source::{FormElement, FormMapping, SourceModel, SubjectType};

    const HOSTILE: &str = "x'); DROP TABLE individual; --";

    fn model() -> SourceModel {
        let element = |uuid: &str, name: &str, data_type: &str, parent: Option<&str>| FormElement {
            form_uuid: "f".into(),
            concept_uuid: uuid.into(),
            concept_name: name.into(),
            data_type: data_type.into(),
            element_type: (data_type == "Coded").then(|| "MultiSelect".to_string()),
            repeatable: false,
            parent_concept_uuid: parent.map(Into::into),
            parent_concept_name: parent.map(|_| format!("{HOSTILE} group")),
            parent_repeatable: parent.is_some(),
        };
        let mut m = SourceModel {
            subject_types: vec![SubjectType {
                uuid: format!("{HOSTILE} subject"),
                name: format!("{HOSTILE} \"person\""),
                kind: "Person".into(),
                allow_middle_name: true,
            }],
            mappings: vec![FormMapping {
                form_uuid: "f".into(),
                form_type: "IndividualProfile".into(),
                subject_type_uuid: format!("{HOSTILE} subject"),
                program_uuid: None,
                encounter_type_uuid: None,
            }],
            address_level_types: vec![format!("{HOSTILE} lvlq")],
            ..Default::default()
        };
        m.form_elements.insert(
            "f".into(),
            vec![
                element(
                    &format!("{HOSTILE} cq1"),
                    &format!("{HOSTILE} \"q\""),
                    "Numeric",
                    None,
                ),
                element(&format!("{HOSTILE} c2"), "Coded q", "Coded", None),
                element(
                    &format!("{HOSTILE} c3"),
                    "child",
                    "Date",
                    Some(&format!("{HOSTILE} g")),
                ),
            ],
        );
        m.answers.insert(
            format!("{HOSTILE} c2"),
            vec![(format!("{HOSTILE} a"), format!("{HOSTILE} ansq"))],
        );
        m
    }

    #[test]
    fn values_are_bound_and_names_quoted() {
        let plan = plan_schema(&model(), &ExistingSchema::default());
        assert_eq!(plan.tables.len(), 3, "subject, repeatable group, address");
        for table in &plan.tables {
            let target = SyncTarget {
                schema: "s\"; DROP SCHEMA public; --",
                table,
                table_id: 1,
                organisation_id: 1,
                db_user: "u",
                time_zone: HOSTILE,
            };
            let mut statements = vec![
                upsert_statement(&target, epoch(), epoch(), Casting::Direct),
                upsert_statement(&target, epoch(), epoch(), Casting::Tolerant),
            ];
            statements.extend(delete_statements(&target, epoch(), epoch()));
            for statement in statements {
                let text = statement.text();
                // Outside quoted identifiers there is no data: every uuid,
                // answer and time zone is a bound value.
                for (i, piece) in text.split('"').enumerate() {
                    if i % 2 == 0 {
                        for data in ["x'", "cq1", "ansq", " subject", "lvlq", "DROP"] {
                            assert!(!piece.contains(data), "{data} unquoted in {text}");
                        }
                        assert!(!piece.contains("DROP"), "unquoted data in {text}");
                    }
                }
            }
        }
    }
}
