//! The migrator under faults (issue #8), short versions of the long runs
//! of `migrator-crash-loop` (see `integration_tests::migrator_reliability`):
//! SIGKILLs mid-drain, a seeded chaotic upstream, hostile payloads.

use integration_tests::binaries::binary;
use integration_tests::migrator_reliability::{
    ChaosOptions, CrashLoopOptions, chaos_run, crash_loop,
};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn killed_three_times_mid_drain_the_repository_holds_each_submission_once() {
    let options = CrashLoopOptions {
        submissions: 2_000,
        seed: 8,
        kills: 3,
        batch_size: 50,
        per_version: 3,
        quirks_every: 40,
        migrator: binary("migrator-service", "migrator-service"),
        limit: Duration::from_secs(90),
    };
    let report = crash_loop(&options).await.unwrap_or_else(|e| panic!("{e}"));
    println!("{report:#?}");
    assert!(report.tally.is_exact(), "{:#?}", report.tally);
    assert_eq!(report.tally.submissions, 2_000 + 50);
    assert_eq!(
        report.tally.failed, report.expected_failures,
        "the failing sample elements are in error_audit once each"
    );
    assert!(report.expected_failures > 0);
    assert_eq!(
        report.tally.written + report.tally.failed,
        report.tally.submissions
    );
    assert!(!report.kills.is_empty(), "at least one kill landed");
    assert_eq!(report.starts, report.kills.len() + 1);
    assert!(report.panics.is_empty(), "{:?}", report.panics);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seeded_chaotic_upstream_ends_with_the_same_repository_as_a_calm_one() {
    let mut injected_kinds = std::collections::BTreeSet::new();
    for seed in [1u64, 2, 3] {
        let options = ChaosOptions {
            submissions: 400,
            seed,
            rate: 0.4,
            batch_size: 20,
            per_version: 7,
            quirks_every: 30,
            request_timeout: Duration::from_millis(300),
            limit: Duration::from_secs(60),
        };
        let report = chaos_run(&options).await.unwrap_or_else(|e| panic!("{e}"));
        println!("seed {seed}: {report:#?}");
        assert!(report.tally.is_exact(), "seed {seed}: {:#?}", report.tally);
        assert_eq!(
            report.rows_differing, 0,
            "seed {seed}: {:#?}",
            report.differences
        );
        assert!(report.rows_compared > 400);
        assert!(report.injected.values().sum::<usize>() > 0);
        injected_kinds.extend(report.injected.keys().copied());
    }
    // Across the seeds every kind of fault was injected at least once.
    assert!(injected_kinds.len() >= 8, "{injected_kinds:?}");
}
