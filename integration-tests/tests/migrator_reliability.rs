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

/// Every hostile element has its outcome, the good submissions around
/// them are written, and the real binary neither panics nor exits.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_payloads_land_in_error_audit_or_their_table_and_the_service_stays_up() {
    use integration_tests::binaries::{ServiceProcess, free_addr};
    use integration_tests::fake_upstream::{Data, FakeUpstream, Generator, RawElement};
    use integration_tests::hostile_submissions::{Outcome, hostile_elements};
    use integration_tests::migrator_reliability::{Expect, Expected, holdings, tally, watermark};

    let generator = Generator {
        seed: 9,
        ..Generator::new(300)
    };
    let hostile = hostile_elements(generator.base, 1);
    assert!(hostile.len() >= 100, "{} hostile elements", hostile.len());
    assert!(hostile.len() < 300, "good submissions come last");
    let mut raw: Vec<RawElement> = (0..generator.count)
        .map(|i| RawElement {
            position: generator.server_version(i),
            text: generator.element(i).to_string(),
        })
        .collect();
    raw.extend(hostile.iter().map(|(sv, h)| RawElement {
        position: *sv,
        text: h.text.clone(),
    }));
    let upstream = FakeUpstream::start(Data::Raw(raw)).await;
    let db = integration_tests::migrator::migrated_repository().await;
    let sql = db.client().await;
    sql.batch_execute(
        "ALTER TABLE ec_registration ALTER COLUMN family_planning_method TYPE varchar(10)",
    )
    .await
    .expect("varchar column");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("migrator.yaml");
    std::fs::write(
        &config,
        format!(
            "sources:\n  - name: drishti\n    url: {}\n    batch_size: 50\n    poll_interval_seconds: 1\n",
            upstream.url()
        ),
    )
    .expect("config");
    let exe = binary("migrator-service", "migrator-service");
    let config_arg = config.to_string_lossy().to_string();
    let addr = free_addr();
    let listen = addr.to_string();
    let mut service = tokio::task::block_in_place(|| {
        ServiceProcess::start(
            &exe,
            &["--config", &config_arg, "serve"],
            &[
                ("DATABASE_URL", db.url.as_str()),
                ("GRPC_LISTEN", listen.as_str()),
            ],
            addr,
        )
    });
    let last = generator.server_version(generator.count - 1);
    let started = std::time::Instant::now();
    while watermark(&sql, "drishti").await.expect("watermark") < last {
        assert!(
            service.exited().is_none(),
            "the service exited:\n{}",
            service.log()
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not drained; log:\n{}",
            service.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(service.exited().is_none(), "still running");
    let log = service.log();
    assert!(!log.contains("panicked"), "{log}");

    let held = holdings(&sql).await.expect("holdings");
    let mut problems = Vec::new();
    let (mut written, mut failed, mut repeats) = (0, 0, 0);
    for (_, h) in &hostile {
        let label = &h.label;
        match (&h.outcome, &h.instance_id) {
            (Outcome::Repeat, _) => repeats += 1,
            (Outcome::Written, Some(id)) => {
                written += 1;
                let rows = held.form_rows.get(id).copied().unwrap_or(0);
                let errors = held.errors.get(id).cloned().unwrap_or_default();
                if rows != 1 || !errors.is_empty() {
                    problems.push(format!("{label}: {rows} rows, errors {errors:?}"));
                }
            }
            (Outcome::Written, None) => problems.push(format!("{label}: written without an id?")),
            (Outcome::Failed(why), Some(id)) => {
                failed += 1;
                let rows = held.form_rows.get(id).copied().unwrap_or(0);
                let errors = held.errors.get(id).cloned().unwrap_or_default();
                if rows != 0 || errors.len() != 1 || !errors[0].contains(why) {
                    problems.push(format!(
                        "{label}: {rows} rows, errors {errors:?}, expected {why:?}"
                    ));
                    continue;
                }
                let kept: String = sql
                    .query_one(
                        "SELECT raw_payload FROM error_audit WHERE instance_id = $1",
                        &[id],
                    )
                    .await
                    .expect("raw payload")
                    .get(0);
                if kept != h.text {
                    problems.push(format!("{label}: raw payload not kept exactly"));
                }
            }
            (Outcome::Failed(why), None) => {
                failed += 1;
                let errors = held
                    .anonymous_errors
                    .get(&h.text)
                    .cloned()
                    .unwrap_or_default();
                if errors.len() != 1 || !errors[0].contains(why) {
                    problems.push(format!(
                        "{label} (no id): errors {errors:?}, expected {why:?}"
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // The good submissions among them, and nothing else, exactly once.
    let mut expected: Vec<Expected> = (0..generator.count)
        .map(|i| Expected {
            instance_id: generator.instance_id(i),
            expect: Expect::Written,
        })
        .collect();
    for (_, h) in &hostile {
        if let (Some(id), o @ (Outcome::Written | Outcome::Failed(_))) =
            (&h.instance_id, &h.outcome)
        {
            expected.push(Expected {
                instance_id: id.clone(),
                expect: match o {
                    Outcome::Failed(why) => Expect::Failed(why.to_string()),
                    _ => Expect::Written,
                },
            });
        }
    }
    let anonymous = held.anonymous_errors.len();
    let t = tally(&expected, &{
        let mut h = held;
        h.anonymous_errors.clear();
        h
    });
    assert!(t.is_exact(), "{t:#?}");
    let anonymous_expected = hostile
        .iter()
        .filter(|(_, h)| h.instance_id.is_none() && matches!(h.outcome, Outcome::Failed(_)))
        .count();
    assert_eq!(
        anonymous, anonymous_expected,
        "no other error rows without an id"
    );
    // A value of 10 MB was written whole, and text in varchar(10) counts characters.
    assert_eq!(
        integration_tests::migrator::scalar(
            &sql,
            "SELECT max(length(wife_name))::int8 FROM ec_registration"
        )
        .await,
        10 * 1024 * 1024
    );
    println!(
        "{} hostile elements: {written} written, {failed} in error_audit, {repeats} repeats; {} good submissions written",
        hostile.len(),
        generator.count
    );
    drop(service);
}

/// A page that is not JSON as a whole cannot be split into submissions:
/// it is rejected with a clear reason, nothing is written, the watermark
/// stays, and the next poll asks again (here until the upstream is fixed).
#[tokio::test(flavor = "multi_thread")]
async fn a_page_that_is_not_json_as_a_whole_is_rejected_with_a_reason_and_asked_again() {
    use avni_proto::migrator::v1 as pb;
    use integration_tests::fake_upstream::{Data, FakeUpstream, Fault, Generator};
    use integration_tests::migrator::{
        PATIENCE, assert_generated_exactly_once, form_rows, wait_for, watermark,
    };
    use integration_tests::migrator_reliability::chaos_source;
    use integration_tests::services::TestMigrator;

    let generator = Generator::new(30);
    let good = generator.element(0).to_string();
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("invalid UTF-8 in an element", {
            let mut b = format!("[{}", &good[..good.len() - 1]).into_bytes();
            b.extend_from_slice(b",\"x\":\"\xff\xfe\"}]");
            b
        }),
        (
            "an invalid escape in an element",
            format!("[{good},{{\"instanceId\":\"a\\x41\"}}]").into_bytes(),
        ),
        (
            "an HTML error page",
            b"<html><body>502 Bad Gateway</body></html>".to_vec(),
        ),
        ("a JSON object", b"{\"error\":\"maintenance\"}".to_vec()),
        ("an unclosed array", format!("[{good},").into_bytes()),
        ("an empty body", Vec::new()),
    ];
    let upstream = FakeUpstream::start(Data::Generated(generator)).await;
    upstream.fail_always(Some(Fault::Body(bodies[0].1.clone())));
    let settings = chaos_source(&upstream, 50, 1.0);
    let migrator = TestMigrator::start(|c| c.sources = vec![settings]).await;
    let db = migrator.db.client().await;
    for (label, body) in &bodies {
        upstream.fail_always(Some(Fault::Body(body.clone())));
        let asked = upstream.request_count();
        wait_for(label, PATIENCE, || async {
            let status = migrator
                .client()
                .await
                .get_status(pb::GetStatusRequest::default())
                .await
                .expect("status")
                .into_inner()
                .sources
                .remove(0);
            upstream.request_count() > asked + 1
                && status
                    .last_error
                    .contains("not a JSON array of submissions")
        })
        .await;
        assert_eq!(
            watermark(&db, "drishti").await,
            0,
            "{label}: watermark kept"
        );
        assert_eq!(form_rows(&db).await.0, 0, "{label}: nothing written");
    }
    upstream.fail_always(None);
    wait_for("the repaired upstream's page", PATIENCE, || async {
        form_rows(&db).await.1 == 30
    })
    .await;
    assert_generated_exactly_once(&db, 30).await;
}
