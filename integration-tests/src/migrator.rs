//! Helpers for the migrator's tests: a source pointed at a fake upstream
//! with short timeouts, waiting for a condition, and reading the repository.

use crate::fake_upstream::FakeUpstream;
use migrator_service::config::{RetrySettings, SourceSettings};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A source on `upstream` with test-sized timeouts and retries: polls every
/// `interval_seconds` once drained, retries 3 times 50 to 200 ms apart.
pub fn source(
    name: &str,
    upstream: &FakeUpstream,
    batch_size: u32,
    interval_seconds: f64,
) -> SourceSettings {
    let mut s = SourceSettings::new(name, upstream.url());
    s.batch_size = batch_size;
    s.poll_interval_seconds = interval_seconds;
    s.connect_timeout_seconds = 1.0;
    s.request_timeout_seconds = 1.0;
    s.retry = RetrySettings {
        max_retries: 3,
        min_delay_seconds: 0.05,
        max_delay_seconds: 0.2,
        max_retry_after_seconds: 5.0,
    };
    s
}

/// Polls `check` every 50 ms until it is true; panics with `what` after `limit`.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return;
        }
        if started.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The single `bigint` a query returns.
pub async fn scalar(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get::<_, i64>(0)
}

/// Counts rows of a table.
pub async fn count(client: &tokio_postgres::Client, table: &str) -> i64 {
    scalar(client, &format!("SELECT count(*) FROM {table}")).await
}

/// The latest watermark of a source (0 before its first batch).
pub async fn watermark(client: &tokio_postgres::Client, source: &str) -> i64 {
    client
        .query_opt(
            "SELECT last_polled_timestamp FROM migration_audit WHERE source = $1 ORDER BY id DESC LIMIT 1",
            &[&source],
        )
        .await
        .unwrap_or_else(|e| panic!("watermark: {e}"))
        .map(|r| r.get::<_, i64>(0))
        .unwrap_or(0)
}

/// Rows across every form table of the generated data, and whether any
/// instance_id is in a form table twice.
pub async fn form_rows(client: &tokio_postgres::Client) -> (i64, i64) {
    let total = scalar(
        client,
        "SELECT (SELECT count(*) FROM ec_registration) + (SELECT count(*) FROM anc_registration) \
         + (SELECT count(*) FROM anc_visit) + (SELECT count(*) FROM pnc_visit)",
    )
    .await;
    let distinct = scalar(
        client,
        "SELECT count(DISTINCT instance_id) FROM (SELECT instance_id FROM ec_registration \
         UNION ALL SELECT instance_id FROM anc_registration UNION ALL SELECT instance_id FROM anc_visit \
         UNION ALL SELECT instance_id FROM pnc_visit) t",
    )
    .await;
    (total, distinct)
}

/// How long a test waits for the service to catch up.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Checks nothing was lost nor doubled: every generated submission below
/// `count` is written exactly once, with its two children for `pnc_visit`.
pub async fn assert_generated_exactly_once(client: &tokio_postgres::Client, count: usize) {
    let (total, distinct) = form_rows(client).await;
    assert_eq!(distinct, count as i64, "every submission written");
    assert_eq!(total, count as i64, "no submission written twice");
    let pnc = (0..count).filter(|i| i % 4 == 3).count() as i64;
    assert_eq!(
        crate::migrator::count(client, "child_pnc_visit").await,
        2 * pnc,
        "two children per pnc_visit, none doubled"
    );
    assert_eq!(
        crate::migrator::count(client, "form_submission").await,
        count as i64
    );
    assert_eq!(crate::migrator::count(client, "error_audit").await, 0);
}

/// A fresh database with only the migrator's embedded migrations (its
/// bookkeeping, no form table).
pub async fn bare_repository() -> crate::postgres::TestDatabase {
    crate::postgres::TestDatabase::migrated(migrator_service::migrations::migrations()).await
}

/// A fresh database with the migrator's embedded migrations and the tests'
/// demo form tables (`fixtures/drishti/demo-forms/`, the forms the
/// generator sends).
pub async fn migrated_repository() -> crate::postgres::TestDatabase {
    let db = bare_repository().await;
    apply_form_migrations(&db.url, &demo_forms_dir()).await;
    db
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The tests' own form-migrations directory: the demo forms' tables.
pub fn demo_forms_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/drishti/demo-forms")
}

/// The repository's shipped migration set for the Drishti app's forms.
pub fn shipped_drishti_migrations() -> PathBuf {
    workspace_root().join("forms/drishti/migrations")
}

/// The form mapping that goes with [`shipped_drishti_migrations`].
pub fn shipped_drishti_mapping() -> PathBuf {
    workspace_root().join("forms/drishti/form_mapping.yaml")
}

/// Applies a form-migrations directory to the repository at `url` the way
/// `migrator-service migrate` does (with its `form_migration` history).
pub async fn apply_form_migrations(url: &str, dir: &Path) {
    let mut config = migrator_service::Config::default();
    config.database.url = url.to_string();
    config.form_migrations.directory = Some(dir.to_path_buf());
    let pool = service_kit::db::build_pool(&config.database);
    migrator_service::app::settle_form_migrations(&pool, &config, true)
        .await
        .unwrap_or_else(|e| panic!("form migrations {}: {e}", dir.display()));
}
