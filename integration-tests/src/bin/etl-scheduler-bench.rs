//! Scheduler benchmark: N small organisations (default 1,000) enabled at
//! once on one etl-service (the real App, in process); how long until every
//! one has run once, against the floor of the same runs back to back with
//! the same concurrency (the sum of the run durations divided by the
//! worker slots); and the scheduler's own cost per tick with N idle jobs,
//! against a bare `SELECT 1` round trip in the same run.
//!
//! cargo run --release -p integration-tests --bin etl-scheduler-bench -- --organisations 1000

use avni_proto::etl::v1 as pb;
use clap::Parser;
use integration_tests::avni::{self, Size, Spec};
use integration_tests::bench::{ms, publish, summarise};
use integration_tests::postgres::TestDatabase;
use integration_tests::services::{Bearer, TEST_TOKEN, start_etl_on};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Organisations to enable.
    #[arg(long, default_value_t = 1000)]
    organisations: usize,
    /// Runs at once (etl.max_concurrent_runs).
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Scheduler ticks to time for the overhead figure.
    #[arg(long, default_value_t = 200)]
    ticks: usize,
    /// Do not write BENCHMARKS.md (print only).
    #[arg(long)]
    no_write: bool,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let db = TestDatabase::migrated(etl_service::migrations::migrations).await;
    let client = db.client().await;
    eprintln!("generating {} organisations...", args.organisations);
    let generated = Instant::now();
    let world = avni::generate(
        &client,
        &Spec {
            seed: 7,
            organisations: args.organisations,
            size: Size {
                subjects_per_type: 1,
                encounters_per_enrolment: 1,
                encounters_per_subject: 1,
            },
            ..Spec::default()
        },
    )
    .await;
    eprintln!("generated in {:.1}s", generated.elapsed().as_secs_f64());

    let concurrency = args.concurrency;
    let service = start_etl_on(&db.url, move |c| {
        c.etl.max_concurrent_runs = concurrency;
        c.etl.scheduler_poll_ms = 200;
        c.etl.sync_offset_seconds = 0;
        c.database.pool_size = (concurrency as u32 * 2 + 4).max(10);
    })
    .await;
    let mut api = pb::etl_service_client::EtlServiceClient::with_interceptor(
        service.channel().await,
        Bearer::new(Some(TEST_TOKEN)),
    );

    let started = Instant::now();
    for org in &world.organisations {
        api.enable_analytics(pb::EnableAnalyticsRequest {
            entity: Some(pb::Entity {
                uuid: org.uuid.clone(),
                r#type: pb::EntityType::Organisation as i32,
            }),
        })
        .await?;
    }
    let enabled_in = started.elapsed();
    let n = args.organisations as i64;
    loop {
        let row = client
            .query_one(
                "SELECT count(DISTINCT entity_uuid), count(*) FILTER (WHERE status = 'failed') \
                 FROM etl_run WHERE finished_at IS NOT NULL",
                &[],
            )
            .await?;
        let (done, failed): (i64, i64) = (row.get(0), row.get(1));
        if failed > 0 {
            anyhow::bail!("{failed} runs failed");
        }
        if done >= n {
            break;
        }
        eprint!("\r{done}/{n} organisations have run");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let all_ran_in = started.elapsed();
    eprintln!();
    let row = client
        .query_one(
            "SELECT sum(extract(epoch FROM finished_at - started_at))::float8, \
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))::float8, \
                    avg(extract(epoch FROM started_at - queued_at))::float8 \
             FROM etl_run WHERE status = 'succeeded'",
            &[],
        )
        .await?;
    let work_seconds: f64 = row.get(0);
    let median_run: f64 = row.get(1);
    let mean_wait: f64 = row.get(2);
    let floor = Duration::from_secs_f64(work_seconds / concurrency as f64);
    service.stop().await.map_err(anyhow::Error::msg)?;

    // The scheduler's own statements with N jobs, none due, nothing queued.
    let pool = service_kit::db::build_pool(&service_kit::config::DatabaseSettings {
        url: db.url.clone(),
        ..Default::default()
    });
    let mut conn = pool.get().await?;
    let mut tick = Vec::with_capacity(args.ticks);
    let mut ping = Vec::with_capacity(args.ticks);
    for _ in 0..args.ticks {
        let t = Instant::now();
        etl_service::jobs::reap_expired(&mut conn).await?;
        etl_service::jobs::queue_due_jobs(&mut conn).await?;
        etl_service::jobs::claim_runs(&mut conn, "bench", concurrency as i64, 60).await?;
        tick.push(t.elapsed());
        let t = Instant::now();
        client.simple_query("SELECT 1").await?;
        ping.push(t.elapsed());
    }
    let tick = summarise(&mut tick);
    let ping = summarise(&mut ping);

    let efficiency = floor.as_secs_f64() / all_ran_in.as_secs_f64();
    let table = format!(
        "## ETL scheduler\n\n\
         Command: `cargo run --release -p integration-tests --bin etl-scheduler-bench -- --organisations {n} --concurrency {concurrency}`\n\n\
         {n} small organisations (4 subject types, programs and encounter types each, a few rows) enabled at once on one replica with {concurrency} worker slots.\n\n\
         | measure | value |\n|---|---|\n\
         | time to enable all (gRPC, one call each) | {:.2} s |\n\
         | time until every organisation has run once | {:.2} s |\n\
         | floor: sum of run durations / worker slots | {:.2} s |\n\
         | scheduling efficiency (floor / actual) | {:.0}% |\n\
         | median run duration | {:.0} ms |\n\
         | mean wait from queued to started | {:.2} s |\n\
         | scheduler tick with {n} idle jobs (reap + queue due + claim), mean / p99 | {} / {} ms |\n\
         | baseline: `SELECT 1` round trip, mean / p99 | {} / {} ms |\n\
         | tick cost in round trips | {:.1}x |\n",
        enabled_in.as_secs_f64(),
        all_ran_in.as_secs_f64(),
        floor.as_secs_f64(),
        efficiency * 100.0,
        median_run * 1000.0,
        mean_wait,
        ms(tick.mean),
        ms(tick.p99),
        ms(ping.mean),
        ms(ping.p99),
        tick.mean.as_secs_f64() / ping.mean.as_secs_f64().max(1e-9),
    );
    println!("{table}");
    if !args.no_write {
        publish(
            "etl-scheduler",
            &table,
            &serde_json::json!({
                "organisations": n,
                "concurrency": concurrency,
                "all_ran_seconds": all_ran_in.as_secs_f64(),
                "floor_seconds": floor.as_secs_f64(),
                "efficiency": efficiency,
                "median_run_ms": median_run * 1000.0,
                "tick_mean_ms": tick.mean.as_secs_f64() * 1000.0,
                "tick_p99_ms": tick.p99.as_secs_f64() * 1000.0,
                "ping_mean_ms": ping.mean.as_secs_f64() * 1000.0,
            }),
        )?;
    }
    Ok(())
}
