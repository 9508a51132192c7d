//! The contracts work for a client in another language: a Python client
//! generated from `proto/` with grpcio-tools drives both real binaries
//! (`integration-tests/python/drive_services.py`), over a generated Avni
//! organisation and the sample page served by a fake upstream.

use integration_tests::avni::{self, Spec};
use integration_tests::binaries::{ServiceProcess, binary, free_addr};
use integration_tests::fake_upstream::FakeUpstream;
use integration_tests::postgres::TestDatabase;
use integration_tests::python;
use std::process::Command;

const TOKEN: &str = "python-client-token-7e21";

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(file.path(), text).expect("write config");
    file
}

#[tokio::test(flavor = "multi_thread")]
async fn a_generated_python_client_drives_both_services() {
    let site = python::site_packages().unwrap_or_else(|e| panic!("{e}"));
    let generated = tempfile::tempdir().expect("temp dir");
    python::generate_client(generated.path()).unwrap_or_else(|e| panic!("{e}"));
    for file in [
        "avni/etl/v1/etl_service_pb2.py",
        "avni/etl/v1/etl_service_pb2_grpc.py",
        "avni/migrator/v1/forms_migrator_pb2_grpc.py",
    ] {
        assert!(generated.path().join(file).exists(), "{file} generated");
    }

    // etl-service over a generated organisation, not yet enabled.
    let avni_db = TestDatabase::migrated(etl_service::migrations::migrations()).await;
    let world = avni::generate(&avni_db.client().await, &Spec::default()).await;
    let org = &world.organisations[0];
    let etl_addr = free_addr();
    let etl_listen = etl_addr.to_string();
    let etl_config = config_file("etl:\n  scheduler_poll_ms: 200\n");
    let etl_config_path = etl_config.path().to_string_lossy().to_string();
    let etl = ServiceProcess::start(
        &binary("etl-service", "etl-service"),
        &["--config", &etl_config_path, "serve"],
        &[
            ("DATABASE_URL", avni_db.url.as_str()),
            ("GRPC_LISTEN", etl_listen.as_str()),
            ("AUTH_TOKENS", TOKEN),
        ],
        etl_addr,
    );

    // migrator-service polling the sample page: 4 submissions written, 3
    // failed (see integration-tests/fixtures/drishti/README.md).
    let upstream = FakeUpstream::sample().await;
    let forms_db = integration_tests::migrator::migrated_repository().await;
    let migrator_addr = free_addr();
    let migrator_listen = migrator_addr.to_string();
    let migrator_config = config_file(&format!(
        "sources:\n  - name: sample\n    url: {}\n    batch_size: 100\n    poll_interval_seconds: 1\n",
        upstream.url()
    ));
    let migrator_config_path = migrator_config.path().to_string_lossy().to_string();
    let migrator = ServiceProcess::start(
        &binary("migrator-service", "migrator-service"),
        &["--config", &migrator_config_path, "serve"],
        &[
            ("DATABASE_URL", forms_db.url.as_str()),
            ("GRPC_LISTEN", migrator_listen.as_str()),
            ("AUTH_TOKENS", TOKEN),
        ],
        migrator_addr,
    );

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/drive_services.py");
    let pythonpath = format!("{}:{}", site.display(), generated.path().display());
    let output = tokio::task::spawn_blocking({
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .args(["--etl", &etl_listen, "--migrator", &migrator_listen])
            .args(["--token", TOKEN, "--organisation", &org.uuid])
            .args(["--min-tables", "10", "--source", "sample"])
            .args(["--expect-written", "4", "--expect-failed", "3"])
            .args(["--expect-watermark", "1424200000003"])
            .args([
                "--expect-error-forms",
                "ec_edit_v9,anc_visit,ec_registration",
            ])
            .env("PYTHONPATH", pythonpath)
            .env("PYTHONDONTWRITEBYTECODE", "1");
        move || cmd.output()
    })
    .await
    .expect("join")
    .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python client failed ({}):\n{stdout}\n{stderr}\netl-service log:\n{}\nmigrator-service log:\n{}",
        output.status,
        etl.log(),
        migrator.log()
    );
    assert!(
        stdout.contains("python client: all checks passed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("error: ec_edit_v9: Unknown form name: ec_edit_v9"),
        "{stdout}"
    );
    assert!(etl.terminate().success());
    assert!(migrator.terminate().success());
}
