//! A short crash loop (the `etl-crash-loop` program runs it at length): the
//! real etl-service binary is killed with SIGKILL at seeded random points of
//! four runs over a changing source and restarted each time; afterwards a
//! run completes and the schema equals a fresh full build, row by row.

use integration_tests::avni::Size;
use integration_tests::etl_crash_loop::{self, CrashLoopSpec};

#[tokio::test(flavor = "multi_thread")]
async fn killed_runs_over_a_changing_source_end_equal_to_a_fresh_build() {
    let spec = CrashLoopSpec {
        runs: 4,
        seed: 3,
        organisations: 1,
        edits_per_run: 3,
        size: Size {
            subjects_per_type: 6,
            encounters_per_enrolment: 1,
            encounters_per_subject: 1,
        },
    };
    let report = etl_crash_loop::run(&spec, |line| eprintln!("{line}")).await;
    eprintln!("{}", report.markdown(&spec));
    assert_eq!(report.kills.len(), 4);
    assert_eq!(report.comparisons.len(), 1);
    assert!(report.comparisons[0].1.rows > 0, "rows were compared");
    assert_eq!(report.mismatches(), 0, "{}", report.markdown(&spec));
    assert_eq!(report.overlapping, 0, "no organisation ran twice at once");
    let succeeded = report.statuses.get("succeeded").copied().unwrap_or(0);
    assert!(
        succeeded >= 3,
        "first build, timing round and last run: {succeeded}"
    );
}
