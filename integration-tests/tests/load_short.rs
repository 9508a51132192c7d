//! The load program's short version: 20 concurrent clients calling
//! `GetJob` and `GetStatus` for 8 s against the real binaries while ETL
//! runs and migrator batches go on. No call may fail, both services must
//! keep finishing work under the load (a pool that deadlocked would stop
//! them), and both must answer promptly afterwards. Latency is reported,
//! not asserted: this machine is shared.

use integration_tests::load::{self, LoadOptions, Stack};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn twenty_clients_for_eight_seconds_while_runs_and_batches_go_on() {
    let options = LoadOptions {
        clients: 20,
        // Long enough for several runs even on a loaded machine (runs of
        // these organisations take 0.2 to 3 s there).
        duration: Duration::from_secs(8),
        organisations: 4,
        interval_seconds: 1,
        upstream_per_second: 200,
        ..LoadOptions::default()
    };
    let stack = Stack::start(options).await.expect("services start");
    let report = load::run(&stack, 20, stack.options.duration)
        .await
        .expect("load run");
    eprintln!("{}", report.markdown());
    assert!(report.get_job.calls > 20, "{}", report.get_job.calls);
    assert!(report.get_status.calls > 20, "{}", report.get_status.calls);
    assert_eq!(report.errors(), 0, "{}", report.markdown());
    assert!(
        report.progress.runs_finished > 0,
        "no ETL run finished under load: {}",
        report.markdown()
    );
    assert!(
        report.progress.runs_failed.is_empty(),
        "{:?}",
        report.progress.runs_failed
    );
    assert!(
        report.progress.batches > 0,
        "no migrator batch under load: {}",
        report.markdown()
    );
    assert!(report.final_check.ok(), "{:?}", report.final_check);
    assert!(
        report.final_check.took < Duration::from_secs(10),
        "the final check took {:?}",
        report.final_check.took
    );
    // The pool state is exposed.
    for line in ["db_pool_max_connections", "db_pool_gets_total"] {
        assert!(
            report.etl_pool.iter().any(|l| l.starts_with(line)),
            "{:?}",
            report.etl_pool
        );
        assert!(
            report.migrator_pool.iter().any(|l| l.starts_with(line)),
            "{:?}",
            report.migrator_pool
        );
    }
    // Polling callers share reads: each service counts its callers and the
    // reads it ran for them, never more reads than callers.
    for (service, lines, calls) in [
        ("etl", &report.etl_pool, report.get_job.calls),
        ("migrator", &report.migrator_pool, report.get_status.calls),
    ] {
        let text = lines.join("\n");
        let callers = load::metric(&text, "fresh_reads_callers_total");
        let queries = load::metric(&text, "fresh_reads_queries_total");
        eprintln!("{service}: {callers} callers, {queries} shared reads");
        assert!(callers >= calls as f64, "{service}: {text}");
        assert!(queries > 0.0 && queries <= callers, "{service}: {text}");
    }
}
