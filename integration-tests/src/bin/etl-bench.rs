//! ETL engine benchmark (design/quality.md): one organisation generated at a
//! chosen size, and in one run on the same data:
//!
//! 1. the engine's full load (the real `etl-service run-once`, release
//!    build, in a child process) against the floor: one hand-written
//!    `INSERT ... SELECT` per table doing the same extraction into a scratch
//!    copy of the tables (same columns, keys and indexes; each row's
//!    observations read once, as a careful hand-written query would);
//! 2. an incremental run after 1% of the rows of every source table changed,
//!    against the full load and against the reference system's strategy on
//!    the same tables (append the changed rows, then delete the older
//!    duplicates found by joining the whole table with itself on the key,
//!    as the reference system's duplicate-row delete does);
//!    Each change is also applied by the incremental floor: one hand-written
//!    in-place upsert (and delete) per table into the floor's copy, the
//!    least any in-place engine must do for it;
//! 3. a run with nothing changed, for the organisation's ~30 tables;
//! 4. the service process's peak memory (VmHWM of the child process, polled
//!    from /proc while it runs), for full loads at two sizes.
//!
//! The engine's output is checked against the floor's, table by table, so
//! the two do the same work.
//!
//! cargo run --release -p integration-tests --bin etl-bench -- --subjects 200000 --encounters 1000000

use anyhow::{Context, bail};
use clap::Parser;
use etl_service::engine::schema::layout::TableKind;
use etl_service::engine::schema::plan::{ColumnSource, PlannedColumn, PlannedTable, SchemaPlan};
use etl_service::engine::{self, NoProgress, RunOptions};
use integration_tests::avni::{self, Org, Size, Spec};
use integration_tests::bench::{ms, publish, summarise};
use integration_tests::binaries::release_binary;
use integration_tests::etl::{context, org_ref};
use integration_tests::postgres::TestDatabase;
use serde_json::json;
use service_kit::sql::{quote_ident, quote_literal, quote_qualified};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_postgres::Client;

#[derive(Parser, Clone)]
struct Args {
    /// Subjects of the measured organisation (four subject types).
    #[arg(long, default_value_t = 200_000)]
    subjects: i64,
    /// Encounters of the measured organisation (program and general).
    #[arg(long, default_value_t = 1_000_000)]
    encounters: i64,
    /// Question columns per form (about).
    #[arg(long, default_value_t = 40)]
    questions: usize,
    /// The second organisation's size, for the memory comparison, as a
    /// fraction of the first's.
    #[arg(long, default_value_t = 0.1)]
    small_fraction: f64,
    /// Runs of the no-op measurement.
    #[arg(long, default_value_t = 20)]
    noop_runs: usize,
    /// Do not write BENCHMARKS.md (print only).
    #[arg(long)]
    no_write: bool,
    /// Print the floor's and the engine's time for each table.
    #[arg(long)]
    tables: bool,
    /// Rows changed (scattered) in the fixed-change measurement, at the
    /// measured size and at `--scale` times it.
    #[arg(long, default_value_t = 10_000)]
    fixed_changes: i64,
    /// The larger organisation of the fixed-change measurement, as a
    /// multiple of the measured one.
    #[arg(long, default_value_t = 3)]
    scale: i64,
    /// Skip the fixed-change measurement.
    #[arg(long)]
    skip_fixed: bool,
    /// Log every statement of the no-op runs with its duration
    /// (`log_min_duration_statement = 0` for the database, on connections
    /// of their own) into PostgreSQL's server log: where a no-op's time goes.
    #[arg(long)]
    log_noop_statements: bool,
}

/// Question columns every generated form has before the extra ones.
const BASE_QUESTIONS: usize = 16;
const TIME_ZONE: &str = "Asia/Kolkata";

fn size_for(subjects: i64, encounters: i64) -> Size {
    let per_type = (subjects / 4).max(1);
    // Two programs enrol every subject of their type, each enrolment gets
    // k visits; three general encounter types give every subject of their
    // type k visits: 5 * per_type * k encounters.
    let k = (encounters / (5 * per_type)).max(1);
    Size {
        subjects_per_type: per_type,
        encounters_per_enrolment: k,
        encounters_per_subject: k,
    }
}

/// A child process's wall time, peak resident memory and output.
struct Measured {
    wall: Duration,
    peak_kb: u64,
    stdout: String,
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs `etl-service run-once` for `org`, polling its peak memory.
fn run_service(binary: &Path, config: &Path, url: &str, org: &Org) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let mut child = Command::new(binary)
        .arg("--config")
        .arg(config)
        .args(["run-once", "--organisation", &org.uuid])
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let pid = child.id();
    let mut peak = 0;
    let status = loop {
        if let Some(kb) = vm_hwm_kb(pid) {
            peak = peak.max(kb);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let wall = started.elapsed();
    let output = child.wait_with_output()?;
    if !status.success() {
        bail!(
            "run-once failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(Measured {
        wall,
        peak_kb: peak,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
    })
}

async fn measure_service(
    binary: &Path,
    config: &Path,
    url: &str,
    org: &Org,
) -> anyhow::Result<Measured> {
    let (binary, config, url, org) = (
        binary.to_path_buf(),
        config.to_path_buf(),
        url.to_string(),
        org.clone(),
    );
    tokio::task::spawn_blocking(move || run_service(&binary, &config, &url, &org)).await?
}

/// Literal ids of the entities a table's rows are filtered by.
struct Ids {
    organisation: i32,
    subject_type: Option<i32>,
    program: Option<i32>,
    encounter_type: Option<i32>,
}

async fn id_of(client: &Client, table: &str, uuid: &Option<String>, org: i32) -> Option<i32> {
    let uuid = uuid.as_ref()?;
    let sql = format!("SELECT id FROM public.{table} WHERE uuid = $1 AND organisation_id = $2");
    client
        .query_opt(&sql, &[uuid, &org])
        .await
        .ok()
        .flatten()
        .map(|r| r.get(0))
}

async fn ids_for(client: &Client, table: &PlannedTable, org: i32) -> Ids {
    let i = &table.identity;
    Ids {
        organisation: org,
        subject_type: id_of(client, "subject_type", &i.subject_type_uuid, org).await,
        program: id_of(client, "program", &i.program_uuid, org).await,
        encounter_type: id_of(client, "encounter_type", &i.encounter_type_uuid, org).await,
    }
}

/// The hand-written extraction of one question.
fn floor_column(obs: &str, column: &PlannedColumn) -> String {
    let ColumnSource::Concept {
        concept_uuid,
        data_type,
        multi_select,
        answers,
        parent_concept_uuid,
        nested,
        ..
    } = &column.source
    else {
        if let ColumnSource::AddressLevel { type_name, id } = &column.source {
            let t = quote_literal(type_name);
            return if *id {
                format!("(anc.levels -> {t} ->> 0)::bigint")
            } else {
                format!("(anc.levels -> {t} ->> 1)")
            };
        }
        return "NULL".into();
    };
    let base = match (nested, parent_concept_uuid) {
        (true, Some(g)) => format!("({obs} -> {})", quote_literal(g)),
        _ => obs.to_string(),
    };
    let u = quote_literal(concept_uuid);
    let text = format!("({base} ->> {u})");
    let node = format!("({base} -> {u})");
    let tz = quote_literal(TIME_ZONE);
    let map = || {
        let m: serde_json::Map<String, serde_json::Value> =
            answers.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        format!(
            "{}::jsonb",
            quote_literal(&serde_json::Value::Object(m).to_string())
        )
    };
    match data_type.as_str() {
        "Numeric" => format!("{text}::numeric"),
        "Date" => format!("({text}::timestamptz AT TIME ZONE {tz})::date"),
        "DateTime" => format!("({text}::timestamptz AT TIME ZONE {tz})"),
        "Time" => format!("{text}::time"),
        "ImageV2" => node,
        "Coded" if *multi_select => format!(
            "(SELECT string_agg({} ->> a.v, ', ' ORDER BY a.n) FROM jsonb_array_elements_text({node}) \
             WITH ORDINALITY a(v, n))",
            map()
        ),
        "Coded" => format!("({} ->> {text})", map()),
        _ => text,
    }
}

fn row_kind(table: &PlannedTable) -> TableKind {
    table.identity.owner_kind.unwrap_or(table.identity.kind)
}

const ANCESTORS: &str = " LEFT JOIN LATERAL (WITH RECURSIVE up AS ( \
     SELECT a.id, a.title, a.type_id, a.parent_id FROM public.address_level a WHERE a.id = src.id \
     UNION ALL SELECT p.id, p.title, p.type_id, p.parent_id FROM public.address_level p JOIN up ON p.id = up.parent_id) \
   SELECT jsonb_object_agg(t.name, jsonb_build_array(up.id, up.title)) AS levels \
   FROM up JOIN public.address_level_type t ON t.id = up.type_id) anc ON true";

/// The hand-written `SELECT` of a table's rows (the floor's extraction);
/// `since` limits it to rows modified after a time (the reference
/// system's append).
fn floor_select(table: &PlannedTable, ids: &Ids, since: Option<&str>) -> String {
    let kind = row_kind(table);
    let mut from = match kind {
        TableKind::Subject | TableKind::RepeatableQuestionGroup => "public.individual src".to_string(),
        TableKind::ProgramEnrolment | TableKind::ProgramExit => {
            "public.program_enrolment src JOIN public.individual i ON i.id = src.individual_id".into()
        }
        TableKind::ProgramEncounter | TableKind::ProgramEncounterCancel => {
            "public.program_encounter src JOIN public.program_enrolment en ON en.id = src.program_enrolment_id \
             JOIN public.individual i ON i.id = en.individual_id"
                .into()
        }
        TableKind::Encounter | TableKind::EncounterCancel => {
            "public.encounter src JOIN public.individual i ON i.id = src.individual_id".into()
        }
        TableKind::Address => {
            "public.address_level src JOIN public.address_level_type lt ON lt.id = src.type_id".into()
        }
        TableKind::Users
        | TableKind::SyncTelemetry
        | TableKind::GroupToMember
        | TableKind::HouseholdToMember => format!("public.{} src", source_of(kind)),
    };
    from.push_str(
        " LEFT JOIN public.users cu ON cu.id = src.created_by_id \
          LEFT JOIN public.users lu ON lu.id = src.last_modified_by_id",
    );
    if table.fixed.iter().any(|c| c.name == "gender") {
        from.push_str(" LEFT JOIN public.gender g ON g.id = src.gender_id");
    }
    let obs = match (table.identity.kind, &table.identity.group_concept_uuid) {
        (TableKind::Address, _) => {
            from.push_str(ANCESTORS);
            String::new()
        }
        (TableKind::RepeatableQuestionGroup, Some(group)) => {
            let g = quote_literal(group);
            from.push_str(&format!(
                " CROSS JOIN LATERAL (SELECT src.{} || '{{}}'::jsonb AS o OFFSET 0) d \
                 CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(d.o -> {g}) = 'array' \
                 THEN d.o -> {g} END) WITH ORDINALITY AS el(value, ord)",
                kind.observations_column()
            ));
            "el.value".to_string()
        }
        _ => {
            from.push_str(&format!(
                " CROSS JOIN LATERAL (SELECT src.{} || '{{}}'::jsonb AS o OFFSET 0) d",
                kind.observations_column()
            ));
            "d.o".to_string()
        }
    };
    let mut conditions = vec![format!("src.organisation_id = {}", ids.organisation)];
    let subject_column = match kind {
        TableKind::Subject => Some("src.subject_type_id"),
        TableKind::Address => None,
        _ => Some("i.subject_type_id"),
    };
    if let (Some(c), Some(id)) = (subject_column, ids.subject_type) {
        conditions.push(format!("{c} = {id}"));
    }
    if let Some(p) = ids.program {
        let column = match kind {
            TableKind::ProgramEnrolment | TableKind::ProgramExit => "src.program_id",
            _ => "en.program_id",
        };
        conditions.push(format!("{column} = {p}"));
    }
    if let Some(e) = ids.encounter_type {
        conditions.push(format!("src.encounter_type_id = {e}"));
    }
    if let Some(m) = kind.membership_column() {
        conditions.push(format!("src.{m} IS NOT NULL"));
    }
    if let Some(since) = since {
        conditions.push(format!("src.last_modified_date_time > {since}"));
    }
    let exprs: Vec<String> = table
        .fixed
        .iter()
        .map(|c| c.expr.to_string())
        .chain(table.columns.iter().map(|c| floor_column(&obs, c)))
        .collect();
    format!(
        "SELECT {} FROM {from} WHERE {}",
        exprs.join(", "),
        conditions.join(" AND ")
    )
}

/// A scratch copy of a planned table: same columns, key and indexes.
fn scratch_table_ddl(schema: &str, table: &PlannedTable) -> Vec<String> {
    let qualified = quote_qualified(schema, &table.name);
    let mut defs: Vec<String> = table
        .fixed
        .iter()
        .map(|c| format!("{} {}", quote_ident(c.name), c.sql_type.sql()))
        .chain(
            table
                .columns
                .iter()
                .map(|c| format!("{} {}", quote_ident(&c.name), c.sql_type.sql())),
        )
        .collect();
    let keys: Vec<String> = table
        .fixed
        .iter()
        .filter(|c| c.key)
        .map(|c| quote_ident(c.name))
        .collect();
    defs.push(format!("PRIMARY KEY ({})", keys.join(", ")));
    // The engine's storage parameters too (the room it leaves for updates).
    let mut ddl = vec![format!(
        "CREATE TABLE {qualified} ({}) WITH (fillfactor = 80)",
        defs.join(", ")
    )];
    for c in table.fixed.iter().filter(|c| c.indexed) {
        ddl.push(format!(
            "CREATE INDEX ON {qualified} ({})",
            quote_ident(c.name)
        ));
    }
    ddl
}

async fn exec(client: &Client, sql: &str) -> anyhow::Result<u64> {
    client
        .execute(sql, &[])
        .await
        .with_context(|| format!("statement failed: {sql}"))
}

/// Flushes dirty buffers so one phase's writes are not paid by the next.
async fn settle(client: &Client) -> anyhow::Result<()> {
    client.batch_execute("CHECKPOINT").await?;
    Ok(())
}

/// One incremental measurement: which rows changed, the engine's run and
/// the reference strategy's time on the same change.
struct Round {
    label: &'static str,
    changed: u64,
    run: Measured,
    reference: Duration,
    /// The incremental floor's time on the same change.
    floor: Duration,
}

/// The reference system's incremental strategy on its copy of the tables:
/// append the rows changed since `since`, then delete every older version
/// of a key, found by joining the whole table with itself (repeatable
/// groups by their parent alone), the way its duplicate-row delete does.
async fn reference_round(
    client: &Client,
    copies: &Copies,
    tables: &[TableSql],
    since: &str,
) -> anyhow::Result<Duration> {
    let since = format!("{}::timestamptz", quote_literal(since));
    let started = Instant::now();
    for t in tables {
        let copy = quote_qualified(copies.reference, &t.table.name);
        exec(
            client,
            &format!(
                "INSERT INTO {copy} {}",
                floor_select(&t.table, &t.ids, Some(&since))
            ),
        )
        .await?;
        let keys = keys_of(&t.table);
        let join: &[&str] = match t.table.identity.kind {
            TableKind::RepeatableQuestionGroup => &keys[..1],
            _ => &keys,
        };
        let quoted: Vec<String> = keys.iter().map(|k| quote_ident(k)).collect();
        let t1_keys: Vec<String> = quoted.iter().map(|k| format!("t1.{k}")).collect();
        let same: Vec<String> = join
            .iter()
            .map(|k| format!("t1.{0} = t2.{0}", quote_ident(k)))
            .collect();
        exec(
            client,
            &format!(
                "DELETE FROM {copy} WHERE ({}) IN (SELECT {} FROM {copy} t1 JOIN {copy} t2 ON {} \
                 AND t1.last_modified_date_time < t2.last_modified_date_time) \
                 AND last_modified_date_time <= {since}",
                quoted.join(", "),
                t1_keys.join(", "),
                same.join(" AND ")
            ),
        )
        .await?;
    }
    Ok(started.elapsed())
}

/// The incremental floor: the same change applied in place by hand, per
/// table, into the floor's scratch copy: the changed rows upserted with
/// `INSERT ... SELECT ... ON CONFLICT (key) DO UPDATE`, then the rows that
/// stopped belonging deleted (exit/cancel rows no longer exited/cancelled,
/// repeatable-group rows past the end of their array), one transaction per
/// table with the engine's commit setting. The cheapest correct in-place
/// write a careful hand-written query would do: what any in-place engine
/// must at least pay for the change.
async fn floor_incremental_round(
    client: &Client,
    copies: &Copies,
    tables: &[TableSql],
    since: &str,
) -> anyhow::Result<Duration> {
    let since = format!("{}::timestamptz", quote_literal(since));
    let started = Instant::now();
    for t in tables {
        let mut statements = vec![
            "BEGIN".to_string(),
            "SET LOCAL synchronous_commit = off".to_string(),
            floor_upsert(copies.floor, t, &since),
        ];
        statements.extend(floor_deletes(copies.floor, t, &since));
        statements.push("COMMIT".to_string());
        for sql in &statements {
            exec(client, sql).await?;
        }
    }
    Ok(started.elapsed())
}

fn floor_upsert(floor: &str, t: &TableSql, since: &str) -> String {
    let keys = keys_of(&t.table);
    let quoted: Vec<String> = keys.iter().map(|k| quote_ident(k)).collect();
    let updates: Vec<String> = t
        .table
        .fixed
        .iter()
        .filter(|c| !c.key)
        .map(|c| c.name.to_string())
        .chain(t.table.columns.iter().map(|c| c.name.clone()))
        .map(|n| format!("{0} = EXCLUDED.{0}", quote_ident(&n)))
        .collect();
    format!(
        "INSERT INTO {} {} ON CONFLICT ({}) DO UPDATE SET {}",
        quote_qualified(floor, &t.table.name),
        floor_select(&t.table, &t.ids, Some(since)),
        quoted.join(", "),
        updates.join(", ")
    )
}

/// The source table of a kind's rows.
fn source_of(kind: TableKind) -> &'static str {
    match kind {
        TableKind::Subject | TableKind::RepeatableQuestionGroup => "individual",
        TableKind::ProgramEnrolment | TableKind::ProgramExit => "program_enrolment",
        TableKind::ProgramEncounter | TableKind::ProgramEncounterCancel => "program_encounter",
        TableKind::Encounter | TableKind::EncounterCancel => "encounter",
        TableKind::Address => "address_level",
        TableKind::Users => "users",
        TableKind::SyncTelemetry => "sync_telemetry",
        TableKind::GroupToMember | TableKind::HouseholdToMember => "group_subject",
    }
}

fn floor_deletes(floor: &str, t: &TableSql, since: &str) -> Vec<String> {
    let kind = row_kind(&t.table);
    let copy = quote_qualified(floor, &t.table.name);
    let changed = format!(
        "public.{} src WHERE src.organisation_id = {} AND src.last_modified_date_time > {since}",
        source_of(kind),
        t.ids.organisation
    );
    match (t.table.identity.kind, &t.table.identity.group_concept_uuid) {
        (TableKind::RepeatableQuestionGroup, Some(group)) => {
            let g = quote_literal(group);
            let obs = format!("src.{}", kind.observations_column());
            let member = kind
                .membership_column()
                .map(|m| format!("src.{m} IS NOT NULL AND "))
                .unwrap_or_default();
            vec![format!(
                "DELETE FROM {copy} t USING {changed} AND t.{} = src.id \
                 AND t.\"index\" >= (CASE WHEN {member}jsonb_typeof({obs} -> {g}) = 'array' \
                 THEN jsonb_array_length({obs} -> {g}) ELSE 0 END)",
                quote_ident(kind.parent_id_column())
            )]
        }
        _ => kind
            .membership_column()
            .map(|m| {
                format!(
                    "DELETE FROM {copy} t USING {changed} AND t.id = src.id AND src.{m} IS NULL"
                )
            })
            .into_iter()
            .collect(),
    }
}

/// After a round, the floor's copy holds exactly the engine's rows: the
/// same count in every table, and the same rows among those changed since
/// the round began (the rest were equal after the full load and neither
/// touched them).
async fn check_floor_equals_engine(
    client: &Client,
    schema: &str,
    floor: &str,
    tables: &[TableSql],
    since: &str,
) -> anyhow::Result<()> {
    let since = format!("{}::timestamptz", quote_literal(since));
    for t in tables {
        let name = &t.table.name;
        let (engine_rows, floor_rows) = (
            count(client, schema, name).await?,
            count(client, floor, name).await?,
        );
        let changed = |s: &str| {
            format!(
                "SELECT * FROM {} WHERE last_modified_date_time > {since}",
                quote_qualified(s, name)
            )
        };
        let differing: i64 = client
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM ({} EXCEPT ALL {}) a) + (SELECT count(*) FROM ({} EXCEPT ALL {}) b)",
                    changed(schema),
                    changed(floor),
                    changed(floor),
                    changed(schema)
                ),
                &[],
            )
            .await?
            .get(0);
        if engine_rows != floor_rows || differing != 0 {
            bail!(
                "table {name} after the change: engine {engine_rows} rows, incremental floor {floor_rows}, \
                 {differing} changed rows differ"
            );
        }
    }
    Ok(())
}

/// The schemas of the reference strategy's copy and the floor's copy of an
/// organisation's reporting tables.
struct Copies {
    reference: &'static str,
    floor: &'static str,
}

/// The reference strategy's copy of `schema`'s tables in `copy`: the same
/// rows and indexes, the key's not unique (duplicates are the strategy).
async fn reference_copy(
    client: &Client,
    schema: &str,
    copy_schema: &str,
    tables: &[TableSql],
) -> anyhow::Result<()> {
    client
        .batch_execute(&format!("CREATE SCHEMA {}", quote_ident(copy_schema)))
        .await?;
    for t in tables {
        let name = &t.table.name;
        let copy = quote_qualified(copy_schema, name);
        exec(
            client,
            &format!(
                "CREATE TABLE {copy} AS SELECT * FROM {}",
                quote_qualified(schema, name)
            ),
        )
        .await?;
        let keys: Vec<String> = keys_of(&t.table).iter().map(|k| quote_ident(k)).collect();
        exec(
            client,
            &format!("CREATE INDEX ON {copy} ({})", keys.join(", ")),
        )
        .await?;
        for c in t.table.fixed.iter().filter(|c| c.indexed) {
            exec(
                client,
                &format!("CREATE INDEX ON {copy} ({})", quote_ident(c.name)),
            )
            .await?;
        }
    }
    Ok(())
}

/// The floor's copy of `schema`'s tables in `copy_schema` (its scratch
/// tables: same columns, key and indexes), filled with the engine's rows
/// (equal to the floor's, as the full load's check shows).
async fn floor_copy(
    client: &Client,
    schema: &str,
    copy_schema: &str,
    tables: &[TableSql],
) -> anyhow::Result<()> {
    client
        .batch_execute(&format!("CREATE SCHEMA {}", quote_ident(copy_schema)))
        .await?;
    for t in tables {
        for statement in scratch_table_ddl(copy_schema, &t.table) {
            exec(client, &statement).await?;
        }
        exec(
            client,
            &format!(
                "INSERT INTO {} SELECT * FROM {}",
                quote_qualified(copy_schema, &t.table.name),
                quote_qualified(schema, &t.table.name)
            ),
        )
        .await?;
    }
    Ok(())
}

/// The four transactional source tables.
const TRANSACTIONAL: [&str; 4] = [
    "individual",
    "program_enrolment",
    "program_encounter",
    "encounter",
];

/// Replaces the test DDL's composite `(organisation_id,
/// last_modified_date_time)` indexes with the btree indexes avni-server's
/// migrations give the source tables (docs/real-systems/avni-server-schema.md):
/// `(last_modified_date_time)` and `(organisation_id)` apart, and the type
/// columns'; the foreign-key indexes of both stay. (Its GIN indexes on the
/// observations cost the writes of the change, not the reads measured.)
async fn use_avni_indexes(client: &Client) -> anyhow::Result<()> {
    let mut statements = vec!["DROP INDEX IF EXISTS public.address_level_parent_idx".to_string()];
    for t in TRANSACTIONAL.iter().chain(&["address_level"]) {
        statements.push(format!("DROP INDEX IF EXISTS public.{t}_org_lmdt_idx"));
        statements.push(format!(
            "CREATE INDEX {t}_last_modified_time_idx ON public.{t} (last_modified_date_time)"
        ));
        statements.push(format!(
            "CREATE INDEX {t}_organisation_id__index ON public.{t} (organisation_id)"
        ));
    }
    for (t, c) in [
        ("individual", "subject_type_id"),
        ("program_enrolment", "program_id"),
        ("program_encounter", "encounter_type_id"),
        ("encounter", "encounter_type_id"),
        ("address_level", "type_id"),
    ] {
        statements.push(format!("CREATE INDEX {t}_{c}_index ON public.{t} ({c})"));
    }
    for sql in &statements {
        exec(client, sql).await?;
    }
    client.batch_execute("ANALYZE").await?;
    Ok(())
}

/// Source rows of an organisation's four transactional tables.
async fn source_rows(client: &Client, org: &Org) -> anyhow::Result<i64> {
    let mut total = 0;
    for t in TRANSACTIONAL {
        let n: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM public.{t} WHERE organisation_id = $1"),
                &[&org.id],
            )
            .await?
            .get(0);
        total += n;
    }
    Ok(total)
}

/// One organisation's measurement of a fixed number of scattered changes.
struct FixedRound {
    source_rows: i64,
    changed: u64,
    run: Measured,
    reference: Duration,
    floor: Duration,
}

/// Changes `changes` rows scattered through `org`'s transactional tables
/// (every n-th row of each), then measures the engine's run, the reference
/// strategy and the incremental floor on copies of the organisation's
/// tables made for it (named after `tag`).
async fn fixed_change_round(
    client: &Client,
    service: &Service<'_>,
    ctx: &engine::EngineContext,
    org: &Org,
    copies: &Copies,
    changes: i64,
) -> anyhow::Result<FixedRound> {
    let (_, plan): (_, SchemaPlan) = engine::plan_entity(ctx, org_ref(org)).await?;
    let mut tables = Vec::new();
    for t in &plan.tables {
        tables.push(TableSql {
            ids: ids_for(client, t, org.id).await,
            table: t.clone(),
        });
    }
    let schema = org.schema_name.as_str();
    reference_copy(client, schema, copies.reference, &tables).await?;
    floor_copy(client, schema, copies.floor, &tables).await?;
    client.batch_execute("ANALYZE").await?;
    let rows = source_rows(client, org).await?;
    let every = (rows / changes.max(1)).max(1);
    let weight = org.bundle.concept("weight").uuid.clone();
    let since: String = client.query_one("SELECT now()::text", &[]).await?.get(0);
    let mut changed = 0u64;
    for source in TRANSACTIONAL {
        changed += client
            .execute(
                &format!(
                    "UPDATE public.{source} SET observations = observations || jsonb_build_object($1::text, 321.5), \
                     last_modified_date_time = clock_timestamp() WHERE organisation_id = $2 AND id % $3 = 0"
                ),
                &[&weight, &org.id, &every],
            )
            .await?;
    }
    client
        .batch_execute("VACUUM public.individual, public.program_enrolment, public.program_encounter, public.encounter")
        .await?;
    settle(client).await?;
    eprintln!("fixed change, {rows} source rows: {changed} rows changed; incremental run...");
    let run = service.run(org).await?;
    settle(client).await?;
    eprintln!("incremental {}s; the reference strategy...", secs(run.wall));
    let reference = reference_round(client, copies, &tables, &since).await?;
    settle(client).await?;
    for t in &tables {
        let name = &t.table.name;
        let (engine_rows, reference_rows) = (
            count(client, schema, name).await?,
            count(client, copies.reference, name).await?,
        );
        if engine_rows != reference_rows {
            bail!(
                "table {name}: engine {engine_rows} rows, reference {reference_rows} after the change"
            );
        }
    }
    eprintln!("reference {}s; the incremental floor...", secs(reference));
    let floor = floor_incremental_round(client, copies, &tables, &since).await?;
    settle(client).await?;
    eprintln!("incremental floor {}s", secs(floor));
    check_floor_equals_engine(client, schema, copies.floor, &tables, &since).await?;
    Ok(FixedRound {
        source_rows: rows,
        changed,
        run,
        reference,
        floor,
    })
}

/// The fixed-change measurement at two sizes, and the larger
/// organisation's full load.
struct FixedChanges {
    one: FixedRound,
    scaled: FixedRound,
    scaled_full: Measured,
}

/// Switches to avni-server's indexes, generates an organisation `scale`
/// times `org`'s size, loads it, and measures the fixed change in both.
async fn fixed_changes(
    client: &Client,
    service: &Service<'_>,
    ctx: &engine::EngineContext,
    org: &Org,
    args: &Args,
    extra: usize,
) -> anyhow::Result<FixedChanges> {
    eprintln!("fixed change: avni-server's indexes...");
    use_avni_indexes(client).await?;
    let scaled_size = size_for(args.subjects * args.scale, args.encounters * args.scale);
    eprintln!("generating {scaled_size:?}...");
    let spec = Spec {
        seed: 4242,
        extra_questions: extra,
        ..Spec::default()
    };
    let scaled_org = avni::metadata::organisation(
        client,
        &spec,
        "scaled",
        avni::bundle(spec.seed.wrapping_add(7), false, extra),
    )
    .await;
    avni::bulk::fill(client, &scaled_org, scaled_size).await;
    client
        .batch_execute("VACUUM ANALYZE individual, program_enrolment, program_encounter, encounter")
        .await?;
    settle(client).await?;
    eprintln!("full load of the scaled organisation...");
    let scaled_full = service.run(&scaled_org).await?;
    settle(client).await?;
    eprintln!("full load {}s", secs(scaled_full.wall));
    let one = fixed_change_round(
        client,
        service,
        ctx,
        org,
        &Copies {
            reference: "fixed_reference_1x",
            floor: "fixed_floor_1x",
        },
        args.fixed_changes,
    )
    .await?;
    let scaled = fixed_change_round(
        client,
        service,
        ctx,
        &scaled_org,
        &Copies {
            reference: "fixed_reference_scaled",
            floor: "fixed_floor_scaled",
        },
        args.fixed_changes,
    )
    .await?;
    Ok(FixedChanges {
        one,
        scaled,
        scaled_full,
    })
}

impl FixedChanges {
    fn markdown(&self, changes: i64, scale: i64) -> String {
        let (a, b) = (&self.one, &self.scaled);
        let grow = |x: Duration, y: Duration| ratio(y, x);
        let engine_growth = grow(a.run.wall, b.run.wall);
        let reference_growth = grow(a.reference, b.reference);
        let faster = ratio(b.reference, b.run.wall);
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        format!(
            "### A fixed change at two sizes, on avni-server's own indexes\n\n\
             {changes} rows changed, scattered (every n-th row of each transactional source table), in the measured \
             organisation and in one {scale} times its size in the same database, after the source tables' composite \
             `(organisation_id, last_modified_date_time)` indexes were replaced by avni-server's own \
             (`(last_modified_date_time)` and `(organisation_id)` apart, and the type columns'). The reference copy and \
             the floor's copy of each organisation's tables are made from the engine's tables before the change.\n\n\
             | measurement | 1x: {rows_a} source rows, {changed_a} changed | {scale}x: {rows_b} source rows, {changed_b} changed | {scale}x / 1x | target |\n\
             |---|---|---|---|---|\n\
             | engine, incremental run (`run-once`) | {ea} s | {eb} s | {engine_growth:.2}x | <= 1.3x: {t1} |\n\
             | reference strategy | {ra} s | {rb} s | {reference_growth:.2}x | about {scale}x |\n\
             | incremental floor | {fa} s | {fb} s | {floor_growth:.2}x | |\n\
             | reference / engine | {fa_x:.1}x faster | {faster:.1}x faster | | >= 8x at {scale}x: {t2} |\n\
             | engine / incremental floor | {ef_a:.2}x | {ef_b:.2}x | | |\n\
             | full load of the {scale}x organisation (`run-once`) | | {full_b} s | | |\n",
            rows_a = a.source_rows,
            rows_b = b.source_rows,
            changed_a = a.changed,
            changed_b = b.changed,
            ea = secs(a.run.wall),
            eb = secs(b.run.wall),
            t1 = verdict(engine_growth <= 1.3),
            ra = secs(a.reference),
            rb = secs(b.reference),
            fa = secs(a.floor),
            fb = secs(b.floor),
            floor_growth = grow(a.floor, b.floor),
            fa_x = ratio(a.reference, a.run.wall),
            t2 = verdict(faster >= 8.0),
            ef_a = ratio(a.run.wall, a.floor),
            ef_b = ratio(b.run.wall, b.floor),
            full_b = secs(self.scaled_full.wall),
        )
    }

    fn json(&self) -> serde_json::Value {
        let round = |r: &FixedRound| {
            json!({
                "source_rows": r.source_rows,
                "changed_rows": r.changed,
                "incremental_s": r.run.wall.as_secs_f64(),
                "reference_s": r.reference.as_secs_f64(),
                "incremental_floor_s": r.floor.as_secs_f64(),
            })
        };
        json!({
            "one": round(&self.one),
            "scaled": round(&self.scaled),
            "scaled_full_load_s": self.scaled_full.wall.as_secs_f64(),
        })
    }
}

/// The service binary and its configuration, run against one database.
struct Service<'a> {
    binary: &'a Path,
    config: &'a Path,
    url: &'a str,
}

impl Service<'_> {
    async fn run(&self, org: &Org) -> anyhow::Result<Measured> {
        measure_service(self.binary, self.config, self.url, org).await
    }
}

struct TableSql {
    table: PlannedTable,
    ids: Ids,
}

fn keys_of(table: &PlannedTable) -> Vec<&'static str> {
    table
        .fixed
        .iter()
        .filter(|c| c.key)
        .map(|c| c.name)
        .collect()
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn mib(kb: u64) -> String {
    format!("{:.1}", kb as f64 / 1024.0)
}

fn write_config(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("etl-bench.yaml");
    // No sync offset: the changed rows are synced by the run right after.
    std::fs::write(
        &path,
        "etl:\n  sync_offset_seconds: 0\nlog:\n  level: warn\n",
    )?;
    Ok(path)
}

async fn count(client: &Client, schema: &str, table: &str) -> anyhow::Result<i64> {
    let sql = format!("SELECT count(*) FROM {}", quote_qualified(schema, table));
    Ok(client.query_one(&sql, &[]).await?.get(0))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let command = format!(
        "cargo run --release -p integration-tests --bin etl-bench --{}{command}",
        if command.is_empty() { "" } else { " " }
    );
    let binary =
        tokio::task::spawn_blocking(|| release_binary("etl-service", "etl-service")).await?;
    let scratch_dir = tempfile_dir()?;
    let config = write_config(&scratch_dir)?;

    let big = size_for(args.subjects, args.encounters);
    let small = size_for(
        ((args.subjects as f64) * args.small_fraction) as i64,
        ((args.encounters as f64) * args.small_fraction) as i64,
    );
    let extra = args.questions.saturating_sub(BASE_QUESTIONS);
    let db = TestDatabase::migrated(etl_service::migrations::migrations()).await;
    let client = db.client().await;
    eprintln!("generating: {big:?} and {small:?}, {extra} extra questions per form...");
    let generated = Instant::now();
    let orgs = avni::generate_sized(
        &client,
        &Spec {
            seed: 4242,
            extra_questions: extra,
            ..Spec::default()
        },
        &[big, small],
    )
    .await;
    let (org, small_org) = (&orgs[0], &orgs[1]);
    client
        .batch_execute("VACUUM ANALYZE individual, program_enrolment, program_encounter, encounter")
        .await?;
    settle(&client).await?;
    let rows: Vec<(String, i64)> = {
        let mut r = Vec::new();
        for t in [
            "individual",
            "program_enrolment",
            "program_encounter",
            "encounter",
        ] {
            let n: i64 = client
                .query_one(
                    &format!("SELECT count(*) FROM public.{t} WHERE organisation_id = $1"),
                    &[&org.id],
                )
                .await?
                .get(0);
            r.push((t.to_string(), n));
        }
        r
    };
    eprintln!(
        "generated in {:.0}s: {rows:?}",
        generated.elapsed().as_secs_f64()
    );

    // The plan the engine will apply: same names, columns and types.
    let ctx = context(&db.url);
    let (_, plan): (_, SchemaPlan) = engine::plan_entity(&ctx, org_ref(org)).await?;
    let questions = plan
        .tables
        .iter()
        .filter(|t| t.identity.kind == TableKind::Subject)
        .map(|t| t.columns.len())
        .max()
        .unwrap_or_default();
    let mut tables = Vec::new();
    // The form tables: the generator writes no syncs or memberships, and
    // the users table is a few rows.
    for t in plan
        .tables
        .iter()
        .filter(|t| !t.identity.kind.is_avni_table())
    {
        tables.push(TableSql {
            ids: ids_for(&client, t, org.id).await,
            table: t.clone(),
        });
    }

    // 1. The floor, then the engine's full load.
    client.batch_execute("CREATE SCHEMA bench_floor").await?;
    for t in &tables {
        for statement in scratch_table_ddl("bench_floor", &t.table) {
            exec(&client, &statement).await?;
        }
    }
    eprintln!("floor: {} tables...", tables.len());
    let started = Instant::now();
    let mut floor_tables = Vec::with_capacity(tables.len());
    for t in &tables {
        let table_started = Instant::now();
        let sql = format!(
            "INSERT INTO {} {}",
            quote_qualified("bench_floor", &t.table.name),
            floor_select(&t.table, &t.ids, None)
        );
        if std::env::var_os("ETL_BENCH_PRINT_SQL").is_some() {
            eprintln!("{sql};");
        }
        exec(&client, &sql).await?;
        floor_tables.push((t.table.name.clone(), table_started.elapsed()));
    }
    let floor = started.elapsed();
    settle(&client).await?;
    eprintln!("floor {}s; engine full load...", secs(floor));
    let full = measure_service(&binary, &config, &db.url, org).await?;
    settle(&client).await?;
    eprintln!("full load {}s", secs(full.wall));
    if args.tables {
        // The engine's summary ends each table's line with its time.
        eprintln!("{:<48} {:>10} {:>10}", "table", "floor ms", "engine");
        for (name, d) in &floor_tables {
            let engine = full
                .stdout
                .lines()
                .find(|l| l.split_whitespace().next() == Some(name.as_str()))
                .and_then(|l| l.split_whitespace().last())
                .unwrap_or("?");
            eprintln!("{name:<48} {:>10} {engine:>10}", ms(*d));
        }
    }

    // Same work: the engine's tables hold exactly the floor's rows.
    let schema = org.schema_name.as_str();
    let mut reporting_rows = 0i64;
    for t in &tables {
        let name = &t.table.name;
        let (engine_rows, floor_rows) = (
            count(&client, schema, name).await?,
            count(&client, "bench_floor", name).await?,
        );
        let differing: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM (SELECT * FROM {} EXCEPT ALL SELECT * FROM {}) x",
                    quote_qualified(schema, name),
                    quote_qualified("bench_floor", name)
                ),
                &[],
            )
            .await?
            .get(0);
        if engine_rows != floor_rows || differing != 0 {
            bail!(
                "table {name}: engine {engine_rows} rows, floor {floor_rows}, {differing} differ"
            );
        }
        reporting_rows += engine_rows;
    }

    // 3. Nothing changed: the service's run, and the engine's own time.
    let noop_service = measure_service(&binary, &config, &db.url, org).await?;
    let mut noop: Vec<Duration> = Vec::with_capacity(args.noop_runs);
    let noop_ctx = if args.log_noop_statements {
        let db_name: String = client
            .query_one("SELECT current_database()", &[])
            .await?
            .get(0);
        client
            .batch_execute(&format!(
                "ALTER DATABASE {} SET log_min_duration_statement = 0",
                quote_ident(&db_name)
            ))
            .await?;
        eprintln!("no-op statements of database {db_name} go to PostgreSQL's server log");
        context(&db.url)
    } else {
        ctx.clone()
    };
    for _ in 0..args.noop_runs {
        let report =
            engine::run_entity(&noop_ctx, org_ref(org), &RunOptions::default(), &NoProgress)
                .await?;
        if report.rows_upserted() + report.rows_deleted() != 0 {
            bail!("a run with nothing changed wrote rows");
        }
        noop.push(report.duration);
    }
    if args.log_noop_statements {
        client
            .batch_execute("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I RESET log_min_duration_statement', current_database()); END $$")
            .await?;
    }
    let noop = summarise(&mut noop);
    // One subject changed before each run: the fixed cost of a run with
    // something to do.
    let mut one_row: Vec<Duration> = Vec::with_capacity(args.noop_runs);
    for _ in 0..args.noop_runs {
        let changed = client
            .execute(
                "UPDATE public.individual SET last_modified_date_time = clock_timestamp() \
                 WHERE id = (SELECT min(id) FROM public.individual WHERE organisation_id = $1)",
                &[&org.id],
            )
            .await?;
        let report =
            engine::run_entity(&ctx, org_ref(org), &RunOptions::default(), &NoProgress).await?;
        if changed != 1 || report.rows_upserted() == 0 {
            bail!(
                "one changed row: {changed} changed, {} rows upserted",
                report.rows_upserted()
            );
        }
        one_row.push(report.duration);
    }
    let one_row = summarise(&mut one_row);

    // 2. 1% of every source table's rows change.
    let copies = Copies {
        reference: "bench_reference",
        floor: "bench_floor",
    };
    reference_copy(&client, schema, copies.reference, &tables).await?;
    client.batch_execute("ANALYZE").await?;
    let weight = org.bundle.concept("weight").uuid.clone();
    let mut rounds = Vec::new();
    for (label, which) in [
        (
            "scattered: every 100th row",
            "id % 100 = 0".to_string(),
        ),
        (
            "recent: the newest 1% of each table",
            "id > (SELECT max(id) - (max(id) - min(id)) / 100 FROM public.{source} WHERE organisation_id = $2)"
                .to_string(),
        ),
        // A tenth as many changes: the engine's work shrinks with them, the
        // reference strategy's whole-table join does not.
        ("sparse: every 1000th row, 0.1%", "id % 1000 = 3".to_string()),
    ] {
        let since: String = client.query_one("SELECT now()::text", &[]).await?.get(0);
        let mut changed = 0u64;
        for source in [
            "individual",
            "program_enrolment",
            "program_encounter",
            "encounter",
        ] {
            let which = which.replace("{source}", source);
            changed += client
                .execute(
                    &format!(
                        "UPDATE public.{source} SET observations = observations || jsonb_build_object($1::text, 123.4), \
                         last_modified_date_time = clock_timestamp() WHERE organisation_id = $2 AND {which}"
                    ),
                    &[&weight, &org.id],
                )
                .await?;
        }
        // The first reader of a page an UPDATE left dead versions on prunes
        // it (and after a checkpoint writes its full image to the WAL):
        // work the change left behind, paid by whichever strategy ran
        // first. Vacuumed here, none of the three pays it.
        client
            .batch_execute("VACUUM public.individual, public.program_enrolment, public.program_encounter, public.encounter")
            .await?;
        settle(&client).await?;
        eprintln!("{label}: {changed} rows changed; incremental run...");
        let run = measure_service(&binary, &config, &db.url, org).await?;
        settle(&client).await?;
        eprintln!("incremental {}s; the reference strategy...", secs(run.wall));
        if args.tables {
            eprintln!("{}", run.stdout.trim_end());
        }
        let reference = reference_round(&client, &copies, &tables, &since).await?;
        settle(&client).await?;
        for t in &tables {
            let name = &t.table.name;
            let (engine_rows, reference_rows) = (
                count(&client, schema, name).await?,
                count(&client, copies.reference, name).await?,
            );
            if engine_rows != reference_rows {
                bail!(
                    "table {name}: engine {engine_rows} rows, reference {reference_rows} after the change"
                );
            }
        }
        eprintln!("reference {}s; the incremental floor...", secs(reference));
        let floor = floor_incremental_round(&client, &copies, &tables, &since).await?;
        settle(&client).await?;
        eprintln!("incremental floor {}s", secs(floor));
        check_floor_equals_engine(&client, schema, copies.floor, &tables, &since).await?;
        rounds.push(Round {
            label,
            changed,
            run,
            reference,
            floor,
        });
    }
    let Some(scattered) = rounds.first() else {
        bail!("no incremental round ran");
    };
    let (incremental, reference, changed) =
        (&scattered.run, scattered.reference, scattered.changed);

    // 4. Memory at a second, smaller size.
    eprintln!("small organisation full load...");
    let small_full = measure_service(&binary, &config, &db.url, small_org).await?;

    // 5. A fixed number of scattered changes at the measured size and at
    // `scale` times it, on avni-server's own source indexes.
    let service = Service {
        binary: &binary,
        config: &config,
        url: &db.url,
    };
    let fixed = if args.skip_fixed {
        None
    } else {
        Some(fixed_changes(&client, &service, &ctx, org, &args, extra).await?)
    };

    let total_rows: i64 = rows.iter().map(|(_, n)| n).sum();
    let small_rows: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM individual WHERE organisation_id = $1) \
                  + (SELECT count(*) FROM program_enrolment WHERE organisation_id = $1) \
                  + (SELECT count(*) FROM program_encounter WHERE organisation_id = $1) \
                  + (SELECT count(*) FROM encounter WHERE organisation_id = $1)",
            &[&small_org.id],
        )
        .await?
        .get(0);
    let full_vs_floor = ratio(full.wall, floor);
    let incr_vs_full = ratio(incremental.wall, full.wall);
    let ref_vs_incr = ratio(reference, incremental.wall);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let floor_rows = |r: &Round| {
        format!(
            "| incremental floor (hand-written in-place upsert and deletes per table), same change, vs engine | {} s | {} s | engine {:.2}x the floor | |\n\
             | reference strategy vs incremental floor (the most an in-place engine could reach) | {} s | {} s | {:.1}x faster | |\n",
            secs(r.floor),
            secs(r.run.wall),
            ratio(r.run.wall, r.floor),
            secs(r.reference),
            secs(r.floor),
            ratio(r.reference, r.floor),
        )
    };
    let first_floor = floor_rows(scattered);
    let more_rounds: String = rounds
        .iter()
        .skip(1)
        .map(|r| {
            format!(
                "| incremental, {} rows changed ({}), vs full load | {} s | {} s | {:.2}% | |\n\
                 | reference strategy vs incremental, same change | {} s | {} s | {:.1}x faster | |\n{}",
                r.changed,
                r.label,
                secs(r.run.wall),
                secs(full.wall),
                ratio(r.run.wall, full.wall) * 100.0,
                secs(r.reference),
                secs(r.run.wall),
                ratio(r.reference, r.run.wall),
                floor_rows(r),
            )
        })
        .collect();
    let markdown = format!(
        "## ETL engine (`etl-bench`)\n\n\
         Command: `{command}`\n\n\
         Data: one organisation, {subjects} subjects, {enrolments} enrolments, {encounters} encounters \
         ({program_encounters} program, {general} general), {questions} question columns per form, \
         {tables} reporting tables holding {reporting_rows} rows; generated set-based in PostgreSQL. \
         The engine runs as the real `etl-service run-once` (release build) in a child process; times are \
         its wall time, process start included.\n\n\
         | measurement | time | baseline | ratio | target |\n|---|---|---|---|---|\n\
         | full load vs floor (hand-written `INSERT ... SELECT` per table into a scratch copy) | {full_s} s | {floor_s} s | {full_vs_floor:.2}x | <= 0.9x: {t1} |\n\
         | incremental, 1% of rows changed ({changed} rows, {first_label}), vs full load | {incr_s} s | {full_s} s | {incr_pct:.2}% | <= 5%: {t2} |\n\
         | reference strategy (append changed rows, whole-table self-join delete) vs incremental, same change | {ref_s} s | {incr_s} s | {ref_vs_incr:.1}x faster | |\n\
         {first_floor}\
         {more_rounds}\
         | no-op run, engine (in process, {noop_n} runs) | p50 {noop_p50} ms, p99 {noop_p99} ms | | | p50 <= 10 ms: {t4} |\n\
         | one changed row (a subject), engine (in process, {noop_n} runs) | p50 {one_p50} ms, p99 {one_p99} ms | p50 {noop_p50} ms (no-op) | +{one_extra} ms | <= +50 ms: {t5} |\n\
         | no-op run, whole `run-once` process (start, connect, migrations check, run) | {noop_proc} ms | | | |\n\n\
         Peak memory of the service process (VmHWM):\n\n\
         | run | source rows | peak RSS |\n|---|---|---|\n\
         | full load, small organisation | {small_rows} | {small_mib} MiB |\n\
         | full load, measured organisation | {total_rows} | {full_mib} MiB |\n\
         | incremental run | {total_rows} | {incr_mib} MiB |\n\
         | no-op run | {total_rows} | {noop_mib} MiB |\n\n\
         Memory ratio for {size_ratio:.0}x the rows: {mem_ratio:.2}x (flat: the rows never pass through the service).\n\n\
         The floor reads each row's observations once (`|| '{{}}'` in a lateral subquery) and casts answers \
         without checks, as a careful hand-written query would; the engine's output is checked to equal the \
         floor's, table by table (`EXCEPT ALL`), and the reference copy's row counts to equal the engine's \
         after the change. Before each change is measured the source tables are vacuumed and a checkpoint \
         taken, so no strategy pays for pruning the pages the change's `UPDATE` left (the first reader would) \
         and each starts with no dirty buffers. The incremental floor applies the same change to the floor's \
         copy in place (one `INSERT ... SELECT ... ON CONFLICT DO UPDATE` per table, then the deletes of rows \
         that stopped belonging, one transaction per table without waiting for the commit's flush, as the \
         engine does); its copy is checked to equal the engine's tables after every change.\n",
        subjects = rows[0].1,
        enrolments = rows[1].1,
        encounters = rows[2].1 + rows[3].1,
        program_encounters = rows[2].1,
        general = rows[3].1,
        tables = tables.len(),
        full_s = secs(full.wall),
        floor_s = secs(floor),
        t1 = verdict(full_vs_floor <= 0.9),
        incr_s = secs(incremental.wall),
        first_label = scattered.label,
        first_floor = first_floor,
        more_rounds = more_rounds,
        incr_pct = incr_vs_full * 100.0,
        t2 = verdict(incr_vs_full <= 0.05),
        ref_s = secs(reference),
        noop_n = args.noop_runs,
        noop_p50 = ms(noop.p50),
        noop_p99 = ms(noop.p99),
        t4 = verdict(noop.p50 <= Duration::from_millis(10)),
        one_p50 = ms(one_row.p50),
        one_p99 = ms(one_row.p99),
        one_extra = ms(one_row.p50.saturating_sub(noop.p50)),
        t5 = verdict(one_row.p50.saturating_sub(noop.p50) <= Duration::from_millis(50)),
        noop_proc = ms(noop_service.wall),
        small_mib = mib(small_full.peak_kb),
        full_mib = mib(full.peak_kb),
        incr_mib = mib(incremental.peak_kb),
        noop_mib = mib(noop_service.peak_kb),
        size_ratio = total_rows as f64 / small_rows.max(1) as f64,
        mem_ratio = full.peak_kb as f64 / small_full.peak_kb.max(1) as f64,
    );
    let markdown = match &fixed {
        Some(f) => format!("{markdown}\n{}", f.markdown(args.fixed_changes, args.scale)),
        None => markdown,
    };
    println!("{markdown}");
    if full.stdout.is_empty() {
        eprintln!("(run-once printed no summary)");
    }
    let result = json!({
        "command": command,
        "source_rows": total_rows,
        "reporting_tables": tables.len(),
        "reporting_rows": reporting_rows,
        "questions_per_form": questions,
        "full_load_s": full.wall.as_secs_f64(),
        "floor_s": floor.as_secs_f64(),
        "full_vs_floor": full_vs_floor,
        "changed_rows": changed,
        "incremental_s": incremental.wall.as_secs_f64(),
        "incremental_vs_full": incr_vs_full,
        "reference_s": reference.as_secs_f64(),
        "reference_vs_incremental": ref_vs_incr,
        "rounds": rounds.iter().map(|r| json!({
            "change": r.label,
            "changed_rows": r.changed,
            "incremental_s": r.run.wall.as_secs_f64(),
            "reference_s": r.reference.as_secs_f64(),
            "incremental_floor_s": r.floor.as_secs_f64(),
        })).collect::<Vec<_>>(),
        "noop_engine_p50_ms": noop.p50.as_secs_f64() * 1000.0,
        "noop_engine_p99_ms": noop.p99.as_secs_f64() * 1000.0,
        "noop_process_ms": noop_service.wall.as_secs_f64() * 1000.0,
        "one_row_engine_p50_ms": one_row.p50.as_secs_f64() * 1000.0,
        "one_row_engine_p99_ms": one_row.p99.as_secs_f64() * 1000.0,
        "peak_kb": {
            "full_small": small_full.peak_kb,
            "full": full.peak_kb,
            "incremental": incremental.peak_kb,
            "noop": noop_service.peak_kb,
        },
        "small_source_rows": small_rows,
        "fixed_change": fixed.as_ref().map(FixedChanges::json),
    });
    if !args.no_write {
        publish("etl", &markdown, &result)?;
        eprintln!("written to BENCHMARKS.md and target/bench/etl.json");
    }
    let _ = std::fs::remove_dir_all(&scratch_dir);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("etl-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
