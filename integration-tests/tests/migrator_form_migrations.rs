//! The deployment's own form-table migrations (issue 17, item 6, the
//! mechanism): `*.sql` files of `form_migrations.directory`, applied by the
//! real binary's `migrate` with their history, a changed or failing file
//! refused by name, pending ones named at start-up.

use integration_tests::binaries::{ServiceProcess, binary, free_addr, run_binary};
use integration_tests::drishti_forms::ENVELOPE_DDL;
use integration_tests::migrator::{PATIENCE, scalar, wait_for};
use integration_tests::postgres::TestDatabase;

fn migrate(config: &str, database_url: &str) -> (bool, String, String) {
    let exe = binary("migrator-service", "migrator-service");
    let out = run_binary(
        &exe,
        &["--config", config, "migrate"],
        &[("DATABASE_URL", database_url)],
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn form_migrations_are_applied_by_migrate_with_their_history_and_pending_ones_named() {
    let db = TestDatabase::new().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let forms = dir.path().join("forms");
    std::fs::create_dir(&forms).expect("forms dir");
    std::fs::write(
        forms.join("0001_tt.sql"),
        format!("CREATE TABLE tt ({ENVELOPE_DDL}, mother_id varchar(255), tt_date date);\n"),
    )
    .expect("file");
    std::fs::write(
        forms.join("0002_tt_dose.sql"),
        "ALTER TABLE tt ADD COLUMN tt_dose varchar(255);\n",
    )
    .expect("file");
    std::fs::write(forms.join("README.txt"), "not a migration").expect("file");
    let config = dir.path().join("migrator.yaml");
    std::fs::write(
        &config,
        format!("form_migrations:\n  directory: {}\n", forms.display()),
    )
    .expect("config");
    let config = config.to_string_lossy().to_string();

    let (ok, stdout, stderr) = migrate(&config, &db.url);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("2 applied now (0001_tt.sql, 0002_tt_dose.sql), 0 already applied"),
        "{stdout}"
    );
    let sql = db.client().await;
    assert_eq!(
        scalar(&sql, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'tt' AND column_name = 'tt_dose'").await,
        1
    );
    assert_eq!(scalar(&sql, "SELECT count(*) FROM form_migration").await, 2);

    let (ok, stdout, _) = migrate(&config, &db.url);
    assert!(
        ok && stdout.contains("0 applied now, 2 already applied"),
        "{stdout}"
    );

    // A failing file: refused by name, nothing of it left.
    std::fs::write(
        forms.join("0003_broken.sql"),
        "CREATE TABLE half_made (id int); ALTER TABLE nope ADD COLUMN x int;\n",
    )
    .expect("file");
    let (ok, _, stderr) = migrate(&config, &db.url);
    assert!(!ok);
    assert!(
        stderr.contains("form migration 0003_broken.sql failed"),
        "{stderr}"
    );
    assert_eq!(
        scalar(
            &sql,
            "SELECT count(*) FROM pg_class WHERE relname = 'half_made'"
        )
        .await,
        0,
        "rolled back"
    );

    // Pending ones are named when the service starts (it still serves).
    std::fs::write(
        forms.join("0003_broken.sql"),
        "ALTER TABLE tt ADD COLUMN tt_place varchar(255);\n",
    )
    .expect("file");
    let addr = free_addr();
    let listen = addr.to_string();
    let mut service = ServiceProcess::start(
        &binary("migrator-service", "migrator-service"),
        &["--config", &config, "serve"],
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("GRPC_LISTEN", listen.as_str()),
        ],
        addr,
    );
    wait_for("the pending migration in the log", PATIENCE, || async {
        service.log().contains("0003_broken.sql")
    })
    .await;
    assert!(
        service.log().contains("form-table migrations are pending"),
        "{}",
        service.log()
    );
    assert!(service.exited().is_none(), "it still serves");
    drop(service);

    // An applied file changed afterwards: refused by name.
    std::fs::write(
        forms.join("0001_tt.sql"),
        format!("CREATE TABLE tt ({ENVELOPE_DDL});\n"),
    )
    .expect("file");
    let (ok, _, stderr) = migrate(&config, &db.url);
    assert!(!ok);
    assert!(
        stderr.contains("form migration 0001_tt.sql was changed after it was applied"),
        "{stderr}"
    );
}
