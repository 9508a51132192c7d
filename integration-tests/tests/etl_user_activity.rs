//! GetUserActivity's summaries (issue 16) on the avni-server fixture: an
//! organisation filled as avni-server fills it (`org_data.sql`,
//! `org_memberships.sql`: two users, three syncs of the worker's device),
//! its schema built by a run, then each summary checked against the
//! source's own tables (`public.individual`, `public.sync_telemetry`, ...)
//! or the fixture's known values, with the filters (days, users, limit)
//! and the errors: an unknown organisation, a schema not built yet, bad
//! days.

use diesel_async::{AsyncConnection, AsyncPgConnection};
use etl_service::engine::entity::{EntityKind, EntityRef};
use etl_service::engine::{self, NoProgress, RunOptions};
use etl_service::reports::{self, ActivityFilter, LabelCount};
use integration_tests::avni_server::{AvniOrg, AvniServerDb, pg_error};
use integration_tests::etl::context;
use service_kit::sql::quote_literal;

const MEMBERSHIPS: &str = include_str!("../sql/avni_server/org_memberships.sql");

fn org_ref(org: &AvniOrg) -> EntityRef {
    EntityRef {
        uuid: org.uuid.parse().expect("uuid"),
        kind: EntityKind::Organisation,
    }
}

fn all_days() -> ActivityFilter {
    ActivityFilter {
        start: None,
        end: None,
        user_ids: Vec::new(),
        limit: reports::DEFAULT_LIMIT,
    }
}

fn day(text: &str) -> Option<chrono::NaiveDate> {
    Some(text.parse().expect("a day"))
}

async fn report(
    url: &str,
    entity: EntityRef,
    filter: &ActivityFilter,
) -> Result<reports::UserActivityReport, etl_service::Error> {
    let mut conn = AsyncPgConnection::establish(url).await.expect("connect");
    reports::user_activity(&mut conn, entity, filter).await
}

#[tokio::test]
async fn user_activity_summaries_follow_the_source() {
    let avni = AvniServerDb::new().await;
    let org = avni.create_organisation("activity", None).await;
    avni.fill(&org, 3).await;
    let session = avni.session(&org.db_user).await;
    session
        .batch_execute(&format!(
            "SET fixture.key = {}; {MEMBERSHIPS}",
            quote_literal(&org.key)
        ))
        .await
        .unwrap_or_else(|e| panic!("org_memberships.sql: {}", pg_error(&e)));
    service_kit::db::run_pending_migrations(&avni.owner_url, etl_service::migrations::migrations())
        .await
        .unwrap_or_else(|e| panic!("migrate: {e}"));

    // Before the first run there is nothing to report on.
    let before = report(&avni.owner_url, org_ref(&org), &all_days()).await;
    match before {
        Err(etl_service::Error::FailedPrecondition(m)) => {
            assert!(m.contains("no users table yet"), "{m}")
        }
        other => panic!("expected FAILED_PRECONDITION, got {other:?}"),
    }
    engine::run_entity(
        &context(&avni.owner_url),
        org_ref(&org),
        &RunOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap_or_else(|e| panic!("run: {e}"));

    let r = report(&avni.owner_url, org_ref(&org), &all_days())
        .await
        .expect("report");
    assert_eq!(r.schema_name, org.schema_name);

    // Each user's work, counted independently from the source tables.
    let owner = avni.owner().await;
    let expected: Vec<(i64, String, i64, i64, i64, i64)> = owner
        .query(
            "WITH work AS ( \
                 SELECT last_modified_by_id AS uid, 1 AS b FROM public.individual \
                  WHERE organisation_id = $1 AND NOT is_voided \
                 UNION ALL SELECT last_modified_by_id, 2 FROM public.program_enrolment \
                  WHERE organisation_id = $1 AND NOT is_voided \
                 UNION ALL SELECT last_modified_by_id, 3 FROM public.program_encounter \
                  WHERE organisation_id = $1 AND NOT is_voided \
                 UNION ALL SELECT last_modified_by_id, 4 FROM public.encounter \
                  WHERE organisation_id = $1 AND NOT is_voided) \
             SELECT u.id::bigint, coalesce(u.name, u.username), \
                    count(*) FILTER (WHERE b = 1), count(*) FILTER (WHERE b = 2), \
                    count(*) FILTER (WHERE b = 3), count(*) FILTER (WHERE b = 4) \
             FROM work w JOIN public.users u ON u.id = w.uid \
             GROUP BY u.id, u.name, u.username ORDER BY count(*) DESC, u.id",
            &[&org.id],
        )
        .await
        .expect("source counts")
        .iter()
        .map(|row| {
            (
                row.get(0),
                row.get(1),
                row.get(2),
                row.get(3),
                row.get(4),
                row.get(5),
            )
        })
        .collect();
    assert!(!expected.is_empty(), "the fixture has work to count");
    let got: Vec<_> = r
        .user_activity
        .iter()
        .map(|a| {
            assert_eq!(
                a.total,
                a.registrations + a.enrolments + a.program_encounters + a.general_encounters
            );
            (
                a.user_id,
                a.user_name.clone(),
                a.registrations,
                a.enrolments,
                a.program_encounters,
                a.general_encounters,
            )
        })
        .collect();
    assert_eq!(got, expected);

    // The worker's three syncs (org_memberships.sql): one incomplete, the
    // latest from "Pixel 3" with app 10.3, one manual sync of 2 minutes on
    // 2025-05-02.
    let worker: i64 = owner
        .query_one(
            "SELECT id::bigint FROM public.users WHERE organisation_id = $1 AND NOT is_org_admin",
            &[&org.id],
        )
        .await
        .expect("worker")
        .get(0);
    assert_eq!(
        r.sync_failures
            .iter()
            .map(|f| (f.user_id, f.count))
            .collect::<Vec<_>>(),
        vec![(worker, 1)]
    );
    let label = |l: &str| LabelCount {
        label: l.into(),
        users: 1,
    };
    assert_eq!(r.device_models, vec![label("Pixel 3")]);
    assert_eq!(r.app_versions, vec![label("10.3")]);
    assert_eq!(
        r.latest_syncs
            .iter()
            .map(|s| (
                s.app_version.as_str(),
                s.sync_status.as_str(),
                s.device_name.as_str()
            ))
            .collect::<Vec<_>>(),
        vec![
            ("10.3", "complete", "Pixel 3"),
            ("10.2", "incomplete", "Pixel 2"),
            ("10.1", "complete", "Pixel 1"),
        ]
    );

    // The weekly median over two weeks: 120 s in the first, none after.
    let weeks = report(
        &avni.owner_url,
        org_ref(&org),
        &ActivityFilter {
            start: day("2025-04-28"),
            end: day("2025-05-11"),
            ..all_days()
        },
    )
    .await
    .expect("report");
    assert_eq!(
        weeks
            .median_sync
            .iter()
            .map(|w| (w.week_start.as_str(), w.median_seconds, w.syncs))
            .collect::<Vec<_>>(),
        vec![("2025-04-28", Some(120.0), 1), ("2025-05-05", None, 0)]
    );
    // Days after the syncs: no failures, no latest syncs.
    assert!(weeks.latest_syncs.len() == 3 && weeks.sync_failures.len() == 1);
    let later = report(
        &avni.owner_url,
        org_ref(&org),
        &ActivityFilter {
            start: day("2025-05-05"),
            ..all_days()
        },
    )
    .await
    .expect("report");
    assert!(later.sync_failures.is_empty(), "{:?}", later.sync_failures);
    assert!(later.latest_syncs.is_empty(), "{:?}", later.latest_syncs);

    // Only the users asked for, and a top list as long as asked.
    let others = report(
        &avni.owner_url,
        org_ref(&org),
        &ActivityFilter {
            user_ids: vec![worker + 1_000_000],
            ..all_days()
        },
    )
    .await
    .expect("report");
    assert!(others.user_activity.is_empty() && others.latest_syncs.is_empty());
    let one = report(
        &avni.owner_url,
        org_ref(&org),
        &ActivityFilter {
            limit: 1,
            ..all_days()
        },
    )
    .await
    .expect("report");
    assert_eq!(one.latest_syncs.len(), 1);
    assert_eq!(one.user_activity.len(), 1);
    assert_eq!(one.user_activity[0].user_id, expected[0].0);

    // Errors: an unknown organisation, days the wrong way round.
    let unknown = EntityRef {
        uuid: uuid::Uuid::new_v4(),
        kind: EntityKind::Organisation,
    };
    assert!(matches!(
        report(&avni.owner_url, unknown, &all_days()).await,
        Err(etl_service::Error::NotFound(_))
    ));
    let backwards = report(
        &avni.owner_url,
        org_ref(&org),
        &ActivityFilter {
            start: day("2025-05-05"),
            end: day("2025-05-01"),
            ..all_days()
        },
    )
    .await;
    assert!(
        matches!(&backwards, Err(etl_service::Error::InvalidArgument(m)) if m.contains("after")),
        "{backwards:?}"
    );
}
