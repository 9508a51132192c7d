//! The README's grpcurl cookbooks, run as written against the real
//! binaries (etl-service over a generated organisation, migrator-service
//! over the fake upstream's sample page): every command must succeed and
//! print what the README says it does.

use integration_tests::avni::{self, Spec};
use integration_tests::binaries::{ServiceProcess, binary, free_addr, grpcurl, run_binary};
use integration_tests::fake_upstream::FakeUpstream;
use integration_tests::migrator::{PATIENCE, wait_for, watermark};
use integration_tests::postgres::TestDatabase;
use std::process::Command;

const TOKEN: &str = "cookbook-token-5d1e";

/// The `grpcurl` lines between a cookbook's markers in the README.
fn cookbook(name: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let start = readme
        .find(&format!("<!-- {name} -->"))
        .expect("cookbook start marker");
    let end = readme
        .find(&format!("<!-- /{name} -->"))
        .expect("cookbook end marker");
    readme[start..end]
        .lines()
        .filter(|l| l.starts_with("grpcurl "))
        .map(str::to_string)
        .collect()
}

/// What each command's output must contain, by RPC (and request, for the
/// two ValidateNames forms).
fn expectations(command: &str, org_uuid: &str) -> Vec<String> {
    let rpc = command.split('/').next_back().unwrap_or_default();
    let expected: &[&str] = match rpc {
        "EnableAnalytics" => &["\"created\": true", "\"enabled\": true"],
        "WatchJobRun" => &[
            "RUN_EVENT_KIND_TABLE_FINISHED",
            "RUN_EVENT_KIND_RUN_FINISHED",
            "RUN_STATUS_SUCCEEDED",
        ],
        "GetJob" => &["\"enabled\": true", "\"lastRun\"", "RUN_STATUS_SUCCEEDED"],
        "BatchGetJobs" => &["\"jobs\""],
        "RunNow" => &["\"run\"", "RUN_TRIGGER_RUN_NOW"],
        "ListJobRuns" => &["\"runs\"", "RUN_TRIGGER_SCHEDULE"],
        "ValidateNames" if command.contains("proposed") => {
            &["individual_antenatal_visit_one", "\"valid\": true"]
        }
        "ValidateNames" => &["\"tables\"", "\"schemaName\""],
        "RecreateSchema" => &[
            "\"tablesDropped\"",
            "\"rebuildRun\"",
            "RUN_TRIGGER_RECREATE",
        ],
        "DisableAnalytics" => &["\"removed\": true"],
        "GetUserActivity" => &["\"schemaName\"", "\"medianSync\"", "\"weekStart\""],
        other => panic!("the cookbook has a command this test does not know: {other}"),
    };
    let mut all: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    if matches!(rpc, "EnableAnalytics" | "GetJob" | "BatchGetJobs") {
        all.push(org_uuid.to_string());
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn every_cookbook_command_works_against_the_real_binary() {
    let commands = cookbook("etl-cookbook");
    assert_eq!(
        commands.len(),
        11,
        "one command per RPC (ValidateNames twice): {commands:#?}"
    );

    let db = TestDatabase::migrated(etl_service::migrations::migrations()).await;
    let client = db.client().await;
    let world = avni::generate(&client, &Spec::default()).await;
    let org = &world.organisations[0];

    let addr = free_addr();
    let listen = addr.to_string();
    let bin = binary("etl-service", "etl-service");
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("GRPC_LISTEN", listen.as_str()),
        ("AUTH_TOKENS", TOKEN),
    ];
    let migrate = run_binary(&bin, &["migrate"], &env);
    assert!(migrate.status.success());
    let config = tempfile::NamedTempFile::new().expect("config");
    std::fs::write(
        config.path(),
        "etl:\n  sync_offset_seconds: 0\n  scheduler_poll_ms: 200\n",
    )
    .expect("write config");
    let config_path = config.path().to_string_lossy().to_string();
    let service = ServiceProcess::start(&bin, &["--config", &config_path, "serve"], &env, addr);

    let entity = format!(
        r#"{{"entity":{{"uuid":"{}","type":"ENTITY_TYPE_ORGANISATION"}}}}"#,
        org.uuid
    );
    run_all(
        &commands,
        &[("ETL", listen.as_str()), ("ENTITY", entity.as_str())],
        |c| expectations(c, &org.uuid),
        &service,
    );
    let status = service.terminate();
    assert!(status.success(), "graceful stop: {status}");
}

/// Runs each command with bash, the real grpcurl first on PATH, `vars` and
/// `AUTH` in the environment; checks exit status and expected output.
fn run_all(
    commands: &[String],
    vars: &[(&str, &str)],
    expected: impl Fn(&str) -> Vec<String>,
    service: &ServiceProcess,
) {
    let grpcurl_dir = grpcurl()
        .parent()
        .expect("grpcurl dir")
        .to_string_lossy()
        .to_string();
    let path = format!(
        "{grpcurl_dir}:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    for command in commands {
        let mut cmd = Command::new("bash");
        cmd.args(["-c", command])
            .env("PATH", &path)
            .env("AUTH", format!("authorization: Bearer {TOKEN}"));
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run command");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{command}\nfailed: {stderr}\n{stdout}\nservice log:\n{}",
            service.log()
        );
        for want in expected(command) {
            assert!(
                stdout.contains(&want),
                "{command}\nprinted no {want:?}:\n{stdout}"
            );
        }
    }
}

fn migrator_expectations(command: &str) -> Vec<String> {
    let rpc = command.split('/').next_back().unwrap_or_default();
    let expected: &[&str] = match rpc {
        "GetStatus" => &["\"watermark\": \"1424200000003\"", "\"name\": \"drishti\""],
        "RunNow" => &["\"sources\"", "drishti"],
        "ListAudits" => &["\"audits\"", "\"lastPolledTimestamp\": \"1424200000003\""],
        "ListErrors" => &["Unknown form name: ec_edit_v9", "\"rawPayload\""],
        "ReprocessErrors" => &["\"attempted\""],
        other => panic!("the migrator cookbook has a command this test does not know: {other}"),
    };
    expected.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_migrator_cookbook_command_works_against_the_real_binary() {
    let commands = cookbook("migrator-cookbook");
    assert_eq!(commands.len(), 5, "one command per RPC: {commands:#?}");
    let upstream = FakeUpstream::sample().await;
    let db = integration_tests::migrator::migrated_repository().await;
    let addr = free_addr();
    let listen = addr.to_string();
    let config = tempfile::NamedTempFile::new().expect("config");
    std::fs::write(
        config.path(),
        format!(
            "sources:\n  - name: drishti\n    url: {}\n    poll_interval_seconds: 3600\n",
            upstream.url()
        ),
    )
    .expect("write config");
    let config_path = config.path().to_string_lossy().to_string();
    let bin = binary("migrator-service", "migrator-service");
    let service = ServiceProcess::start(
        &bin,
        &["--config", &config_path, "serve"],
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("GRPC_LISTEN", listen.as_str()),
            ("AUTH_TOKENS", TOKEN),
        ],
        addr,
    );
    let client = db.client().await;
    wait_for("the sample page to be committed", PATIENCE, || async {
        watermark(&client, "drishti").await == 1_424_200_000_003
    })
    .await;
    run_all(
        &commands,
        &[("MIGRATOR", listen.as_str())],
        migrator_expectations,
        &service,
    );
    let status = service.terminate();
    assert!(status.success(), "graceful stop: {status}");
}
