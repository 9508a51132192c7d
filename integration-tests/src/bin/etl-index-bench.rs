//! What the ETL's incremental runs cost on a database shaped like a real
//! Avni deployment: one measured organisation among hundreds of others, and
//! only the indexes avni-server's migrations create on the source tables
//! (`<table>_last_modified_time_idx` on `(last_modified_date_time)` and
//! `<table>_organisation_id__index` on `(organisation_id)`), against the
//! composite `(organisation_id, last_modified_date_time)` index the
//! project's test DDL adds, in the same run on the same rows.
//!
//! For each index setup, in process (the engine's own time):
//! 1. a run of the measured organisation with nothing of its own changed
//!    while the other organisations changed rows since its last run (the
//!    quiet organisation in a busy database), p50 of several runs;
//! 2. a run after a scattered share of the measured organisation's rows
//!    changed, the others changing as much at the same time.
//!
//! cargo run --release -p integration-tests --bin etl-index-bench

use anyhow::bail;
use clap::Parser;
use etl_service::engine::{self, EngineContext, NoProgress, RunOptions};
use integration_tests::avni::{self, Org, Size, Spec};
use integration_tests::bench::{ms, publish, summarise};
use integration_tests::etl::{context, org_ref};
use integration_tests::postgres::TestDatabase;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

#[derive(Parser, Clone)]
struct Args {
    /// Subjects of the measured organisation (four subject types).
    #[arg(long, default_value_t = 20_000)]
    subjects: i64,
    /// Encounters of the measured organisation.
    #[arg(long, default_value_t = 100_000)]
    encounters: i64,
    /// Other organisations in the database.
    #[arg(long, default_value_t = 199)]
    others: usize,
    /// The other organisations together hold this many times the measured
    /// organisation's rows.
    #[arg(long, default_value_t = 10)]
    other_factor: i64,
    /// Every n-th row changes in a change round (100: 1%).
    #[arg(long, default_value_t = 100)]
    change_every: i64,
    /// Runs of the no-op measurement.
    #[arg(long, default_value_t = 10)]
    noop_runs: usize,
    /// Do not write BENCHMARKS.md (print only).
    #[arg(long)]
    no_write: bool,
    /// Log the plan (EXPLAIN ANALYZE, by auto_explain into PostgreSQL's
    /// server log) of every statement of the engine slower than this.
    #[arg(long)]
    explain_slower_than_ms: Option<u32>,
}

/// The transactional source tables and the address table: what a run asks
/// for changes.
const SOURCES: [&str; 5] = [
    "individual",
    "program_enrolment",
    "program_encounter",
    "encounter",
    "address_level",
];
/// The tables whose rows are cloned into the other organisations.
const CLONED: [&str; 4] = [
    "individual",
    "program_enrolment",
    "program_encounter",
    "encounter",
];

#[derive(Clone, Copy, PartialEq, Debug)]
enum Indexes {
    /// `(organisation_id, last_modified_date_time)`, the test DDL's.
    Composite,
    /// Only avni-server's own: `(last_modified_date_time)` and
    /// `(organisation_id)`.
    Avni,
}

impl Indexes {
    fn label(self) -> &'static str {
        match self {
            Indexes::Composite => "composite (organisation_id, last_modified_date_time)",
            Indexes::Avni => "avni-server's own: (last_modified_date_time), (organisation_id)",
        }
    }

    async fn apply(self, client: &Client) -> anyhow::Result<()> {
        for t in SOURCES {
            let statements = match self {
                Indexes::Composite => vec![
                    format!("DROP INDEX IF EXISTS {t}_last_modified_time_idx"),
                    format!("DROP INDEX IF EXISTS {t}_organisation_id__index"),
                    format!(
                        "CREATE INDEX IF NOT EXISTS {t}_org_lmdt_idx ON {t} (organisation_id, last_modified_date_time)"
                    ),
                ],
                Indexes::Avni => vec![
                    format!("DROP INDEX IF EXISTS {t}_org_lmdt_idx"),
                    format!(
                        "CREATE INDEX IF NOT EXISTS {t}_last_modified_time_idx ON {t} (last_modified_date_time)"
                    ),
                    format!(
                        "CREATE INDEX IF NOT EXISTS {t}_organisation_id__index ON {t} (organisation_id)"
                    ),
                ],
            };
            for s in statements {
                client.batch_execute(&s).await?;
            }
        }
        client.batch_execute("ANALYZE").await?;
        Ok(())
    }
}

struct Measured {
    indexes: Indexes,
    noop_p50: Duration,
    noop_max: Duration,
    others_changed: u64,
    changed: u64,
    incremental: Duration,
    upserted: u64,
    /// The change probe's query over the five source tables, as the
    /// previous release asked it (no lower bound) and bounded by the
    /// watermark, best of five, while the others' changes are newer.
    probe_unbounded: Duration,
    probe_bounded: Duration,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let db = TestDatabase::migrated(etl_service::migrations::migrations()).await;
    let client = db.client().await;
    let per_type = (args.subjects / 4).max(1);
    let k = (args.encounters / (5 * per_type)).max(1);
    let size = Size {
        subjects_per_type: per_type,
        encounters_per_enrolment: k,
        encounters_per_subject: k,
    };
    eprintln!("generating the measured organisation: {size:?}...");
    let started = Instant::now();
    let orgs = avni::generate_sized(&client, &Spec::default(), &[size]).await;
    let org = &orgs[0];
    let others = other_organisations(&client, args.others).await?;
    for copy in 0..args.other_factor {
        clone_rows(&client, org.id, &others, copy).await?;
    }
    client.batch_execute("VACUUM ANALYZE").await?;
    let rows = source_rows(&client, org.id).await?;
    eprintln!(
        "generated in {:.0}s: measured organisation {} rows, database {} rows in {} organisations",
        started.elapsed().as_secs_f64(),
        rows.0,
        rows.1,
        args.others + 1
    );

    if let Some(ms) = args.explain_slower_than_ms {
        client
            .batch_execute(&format!(
                "ALTER DATABASE {db} SET session_preload_libraries = 'auto_explain'; \
                 ALTER DATABASE {db} SET auto_explain.log_min_duration = {ms}; \
                 ALTER DATABASE {db} SET auto_explain.log_analyze = on",
                db = service_kit::sql::quote_ident(&db.name)
            ))
            .await?;
        eprintln!("plans of statements over {ms} ms go to PostgreSQL's server log");
    }
    let ctx = context(&db.url);
    let full = run(&ctx, org).await?;
    eprintln!("full load: {} rows in {}", full.0, ms(full.1));

    let mut results = Vec::new();
    for indexes in [Indexes::Composite, Indexes::Avni] {
        results.push(measure(&client, &ctx, org, indexes, &args).await?);
    }
    let composite = &results[0];
    let mut table = String::from(
        "| source indexes | change probe, 5 tables: unbounded (previous release) / bounded by the watermark | no-op run p50 (max) | rows changed elsewhere first | incremental run | its rows | vs composite |\n|---|---|---|---|---|---|---|\n",
    );
    for r in &results {
        table.push_str(&format!(
            "| {} | {} ms / {} ms | {} ms ({} ms) | {} | {} ms | {} changed, {} upserted | no-op {:.2}x, incremental {:.2}x |\n",
            r.indexes.label(),
            ms(r.probe_unbounded),
            ms(r.probe_bounded),
            ms(r.noop_p50),
            ms(r.noop_max),
            r.others_changed,
            ms(r.incremental),
            r.changed,
            r.upserted,
            ratio(r.noop_p50, composite.noop_p50),
            ratio(r.incremental, composite.incremental),
        ));
    }
    let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let markdown = format!(
        "## Source indexes (`etl-index-bench`)\n\n\
         Command: `cargo run --release -p integration-tests --bin etl-index-bench -- {command}`\n\n\
         Data: the measured organisation holds {} source rows; the database {} rows in {} organisations. \
         One change round touches every {}th row of the measured organisation and as many rows of the others.\n\n{table}",
        rows.0,
        rows.1,
        args.others + 1,
        args.change_every,
    );
    println!("{markdown}");
    if !args.no_write {
        let json = json!(
            results
                .iter()
                .map(|r| json!({
                    "indexes": format!("{:?}", r.indexes),
                    "noop_p50_ms": r.noop_p50.as_secs_f64() * 1e3,
                    "incremental_ms": r.incremental.as_secs_f64() * 1e3,
                "probe_unbounded_ms": r.probe_unbounded.as_secs_f64() * 1e3,
                "probe_bounded_ms": r.probe_bounded.as_secs_f64() * 1e3,
                    "changed": r.changed,
                }))
                .collect::<Vec<_>>()
        );
        publish("etl-index-bench", &markdown, &json)?;
    }
    Ok(())
}

/// One index setup: catch up, then the quiet organisation's no-op runs
/// while others changed, then one change round.
async fn measure(
    client: &Client,
    ctx: &EngineContext,
    org: &Org,
    indexes: Indexes,
    args: &Args,
) -> anyhow::Result<Measured> {
    indexes.apply(client).await?;
    run(ctx, org).await?;
    let phase = indexes as i64 * 7 + 1;
    let others_changed = change(client, org.id, false, args.change_every, phase).await?;
    vacuum(client).await?;
    let (probe_unbounded, probe_bounded) = probes(client, org.id).await?;
    let mut noop = Vec::with_capacity(args.noop_runs);
    for _ in 0..args.noop_runs {
        let (rows, took) = run(ctx, org).await?;
        if rows != 0 {
            bail!("a run with nothing of its own changed wrote {rows} rows");
        }
        noop.push(took);
    }
    let noop_max = noop.iter().max().copied().unwrap_or_default();
    let noop = summarise(&mut noop);
    let changed = change(client, org.id, true, args.change_every, phase + 3).await?;
    change(client, org.id, false, args.change_every, phase + 3).await?;
    vacuum(client).await?;
    let (upserted, incremental) = run_showing_slowest(ctx, org).await?;
    eprintln!(
        "{:?}: no-op p50 {} ms, incremental {} ms ({changed} changed, {upserted} upserted)",
        indexes,
        ms(noop.p50),
        ms(incremental)
    );
    Ok(Measured {
        indexes,
        noop_p50: noop.p50,
        noop_max,
        others_changed,
        probe_unbounded,
        probe_bounded,
        changed,
        incremental,
        upserted,
    })
}

/// The probe both ways, on the organisation's own latest change as the
/// watermark (nothing of its own changed since).
async fn probes(client: &Client, org: i32) -> anyhow::Result<(Duration, Duration)> {
    let (mut unbounded, mut bounded) = (Duration::MAX, Duration::MAX);
    for _ in 0..5 {
        let (mut u, mut b) = (Duration::ZERO, Duration::ZERO);
        for t in SOURCES {
            let started = Instant::now();
            let latest: Option<chrono::DateTime<chrono::Utc>> = client
                .query_one(
                    &format!(
                        "SELECT max(last_modified_date_time) FROM public.{t} WHERE organisation_id = $1"
                    ),
                    &[&org],
                )
                .await?
                .get(0);
            u += started.elapsed();
            let Some(mark) = latest else { continue };
            let started = Instant::now();
            let after: Option<chrono::DateTime<chrono::Utc>> = client
                .query_one(
                    &format!(
                        "SELECT max(last_modified_date_time) FROM public.{t} \
                         WHERE organisation_id = $1 AND last_modified_date_time > $2"
                    ),
                    &[&org, &mark],
                )
                .await?
                .get(0);
            b += started.elapsed();
            if after.is_some() {
                bail!("{t}: a change after the organisation's latest change");
            }
        }
        unbounded = unbounded.min(u);
        bounded = bounded.min(b);
    }
    Ok((unbounded, bounded))
}

/// A run, printing its slowest tables.
async fn run_showing_slowest(ctx: &EngineContext, org: &Org) -> anyhow::Result<(u64, Duration)> {
    let report = engine::run_entity(ctx, org_ref(org), &RunOptions::default(), &NoProgress).await?;
    let mut tables: Vec<_> = report.tables.iter().collect();
    tables.sort_by_key(|t| std::cmp::Reverse(t.duration));
    for t in tables.iter().take(5) {
        eprintln!(
            "  {:<40} {:>6} rows {:>10} ms",
            t.name,
            t.rows_upserted,
            ms(t.duration)
        );
    }
    Ok((
        report.rows_upserted() + report.rows_deleted(),
        report.duration,
    ))
}

async fn run(ctx: &EngineContext, org: &Org) -> anyhow::Result<(u64, Duration)> {
    let report = engine::run_entity(ctx, org_ref(org), &RunOptions::default(), &NoProgress).await?;
    Ok((
        report.rows_upserted() + report.rows_deleted(),
        report.duration,
    ))
}

/// Touches every `every`-th row (offset by `phase`) of the measured
/// organisation (`own`) or of all the others.
async fn change(
    client: &Client,
    org: i32,
    own: bool,
    every: i64,
    phase: i64,
) -> anyhow::Result<u64> {
    let whose = if own {
        "organisation_id = $1"
    } else {
        "organisation_id <> $1"
    };
    let mut changed = 0;
    for t in CLONED {
        changed += client
            .execute(
                &format!(
                    "UPDATE public.{t} SET last_modified_date_time = clock_timestamp(), \
                     observations = coalesce(observations, '{{}}'::jsonb) || jsonb_build_object('bench', {phase}) \
                     WHERE {whose} AND id % {every} = {}",
                    phase % every
                ),
                &[&org],
            )
            .await?;
    }
    Ok(changed)
}

async fn vacuum(client: &Client) -> anyhow::Result<()> {
    client
        .batch_execute(&format!("VACUUM ANALYZE {}", CLONED.join(", ")))
        .await?;
    Ok(())
}

async fn other_organisations(client: &Client, n: usize) -> anyhow::Result<Vec<i32>> {
    let rows = client
        .query(
            "INSERT INTO organisation (uuid, name, db_user, schema_name) \
             SELECT gen_random_uuid()::text, 'other ' || i, 'other_' || i, 'other_' || i \
             FROM generate_series(1, $1::int) i RETURNING id",
            &[&(n as i32)],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// One copy of the measured organisation's rows, spread over the other
/// organisations, with their change times scattered over the same weeks so
/// they interleave in a `last_modified_date_time` index.
async fn clone_rows(client: &Client, org: i32, others: &[i32], copy: i64) -> anyhow::Result<()> {
    let shift: i64 = client
        .query_one(
            "SELECT greatest((SELECT max(id) FROM individual), (SELECT max(id) FROM program_enrolment), \
                             (SELECT max(id) FROM program_encounter), (SELECT max(id) FROM encounter))",
            &[],
        )
        .await?
        .get(0);
    let shift = shift + 1;
    let others_sql = format!(
        "(ARRAY[{}])[1 + (id % {})]",
        others
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(","),
        others.len()
    );
    for t in CLONED {
        let columns: Vec<String> = client
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                &[&t],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let values: Vec<String> = columns
            .iter()
            .map(|c| match c.as_str() {
                "id" | "individual_id" | "program_enrolment_id" => format!("{c} + {shift}"),
                "uuid" => format!("uuid || '-' || {copy}"),
                "organisation_id" => others_sql.clone(),
                "last_modified_date_time" => {
                    "last_modified_date_time - random() * interval '30 days'".to_string()
                }
                other => other.to_string(),
            })
            .collect();
        client
            .batch_execute(&format!(
                "INSERT INTO public.{t} ({}) SELECT {} FROM public.{t} WHERE organisation_id = {org}",
                columns.join(", "),
                values.join(", ")
            ))
            .await?;
    }
    Ok(())
}

async fn source_rows(client: &Client, org: i32) -> anyhow::Result<(i64, i64)> {
    let (mut own, mut all) = (0i64, 0i64);
    for t in CLONED {
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*) FILTER (WHERE organisation_id = $1), count(*) FROM public.{t}"
                ),
                &[&org],
            )
            .await?;
        own += row.get::<_, i64>(0);
        all += row.get::<_, i64>(1);
    }
    Ok((own, all))
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}
