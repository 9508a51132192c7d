//! docker-compose.yml cannot be run here (no Docker engine), so its parts
//! are checked against the real programs: each service's environment and
//! mounted config load with the service's own config loader, and the demo
//! upstream's command and health check work with the real `fake-upstream`.

use integration_tests::binaries::{binary, free_addr};
use serde_yaml::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).expect("compose file");
    serde_yaml::from_str(&text).expect("compose YAML")
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("not a list: {value:?}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

/// A service's environment as the container sees it (`${AUTH_TOKENS:?...}`
/// filled in as `docker compose` would from the caller's shell).
fn environment(service: &Value) -> HashMap<String, String> {
    service["environment"]
        .as_mapping()
        .expect("environment")
        .iter()
        .map(|(k, v)| {
            let key = k.as_str().expect("key").to_string();
            let value = v.as_str().expect("value").to_string();
            let value = if value.starts_with("${AUTH_TOKENS") {
                "compose-token".to_string()
            } else {
                value
            };
            (key, value)
        })
        .collect()
}

/// The host file mounted at `container_path`.
fn mounted(service: &Value, container_path: &str) -> PathBuf {
    strings(&service["volumes"])
        .iter()
        .find_map(|v| {
            let mut parts = v.split(':');
            let host = parts.next()?;
            (parts.next()? == container_path).then(|| root().join(host))
        })
        .unwrap_or_else(|| panic!("{container_path} is not mounted"))
}

#[test]
fn each_service_loads_its_compose_environment_and_config() {
    let compose = compose();
    let services = &compose["services"];

    let etl_env = environment(&services["etl-service"]);
    let etl: etl_service::Config =
        service_kit::config::load(None, &etl_env).unwrap_or_else(|e| panic!("etl-service: {e}"));
    assert_eq!(etl.server.listen, "0.0.0.0:50051");
    assert_eq!(etl.metrics.listen, "0.0.0.0:9464");
    assert_eq!(etl.server.auth_tokens, ["compose-token"]);
    assert!(etl.database.url.ends_with("@postgres:5432/avni"));

    let migrator_service = &services["migrator-service"];
    let migrator_env = environment(migrator_service);
    let config_file = mounted(migrator_service, &migrator_env["MIGRATOR_CONFIG"]);
    // The shipped form tables, mounted: the config names their container
    // paths, read here from the host folder mounted there.
    let forms = mounted(migrator_service, "/etc/avni/forms/drishti");
    let text = std::fs::read_to_string(&config_file).expect("the migrator's config");
    let on_host = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        on_host.path(),
        text.replace("/etc/avni/forms/drishti", &forms.to_string_lossy()),
    )
    .expect("write");
    let migrator: migrator_service::Config =
        service_kit::config::load(Some(on_host.path()), &migrator_env)
            .unwrap_or_else(|e| panic!("migrator-service with {}: {e}", config_file.display()));
    assert_eq!(
        migrator.form_migrations.directory,
        Some(forms.join("migrations"))
    );
    let mapping = migrator
        .effective_form_mapping()
        .expect("the shipped mapping");
    assert_eq!(mapping["tt_1"].table.as_deref(), Some("tt"));
    assert_eq!(migrator.server.listen, "0.0.0.0:50052");
    assert_eq!(migrator.metrics.listen, "0.0.0.0:9465");
    assert!(
        migrator
            .database
            .url
            .ends_with("@postgres:5432/drishti_forms")
    );
    assert_eq!(migrator.sources.len(), 1);
    assert_eq!(
        migrator.sources[0].url,
        "http://demo-upstream:8089/all-form-submissions"
    );
}

#[test]
fn the_demo_upstreams_command_and_health_check_work() {
    let compose = compose();
    let upstream = &compose["services"]["demo-upstream"];
    let addr = free_addr();
    // The compose command, on a free loopback port instead of 0.0.0.0:8089.
    let swap = |args: Vec<String>| -> Vec<String> {
        args.into_iter()
            .map(|a| {
                if a == "0.0.0.0:8089" {
                    addr.to_string()
                } else {
                    a
                }
            })
            .collect()
    };
    let command = swap(strings(&upstream["command"]));
    let health = swap(strings(&upstream["healthcheck"]["test"]));
    assert_eq!(command[0], "fake-upstream");
    assert_eq!(health[..2], ["CMD", "fake-upstream"]);
    let bin = binary("integration-tests", "fake-upstream");

    let probe = || {
        Command::new(&bin)
            .args(&health[2..])
            .output()
            .expect("run the health check")
    };
    assert!(
        !probe().status.success(),
        "the health check fails while nothing serves"
    );
    let mut server = Command::new(&bin)
        .args(&command[1..])
        .stdout(Stdio::null())
        .spawn()
        .expect("start fake-upstream");
    let started = Instant::now();
    let healthy = loop {
        let out = probe();
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).to_string();
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = server.kill();
            panic!("never healthy: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(healthy.trim(), "SERVING");
    let page = get_json(&format!(
        "http://{addr}/all-form-submissions?timestamp=0&batch-size=5000"
    ));
    let _ = server.kill();
    let _ = server.wait();
    let elements = page.as_array().cloned().unwrap_or_default();
    assert_eq!(
        elements.len(),
        32 * 100 + 6,
        "100 submissions of each real form and 6 failing on purpose"
    );
    let forms: std::collections::BTreeSet<&str> = elements
        .iter()
        .filter_map(|e| e["formName"].as_str())
        .collect();
    for form in integration_tests::drishti_feed::real_forms() {
        assert!(forms.contains(form.form.as_str()), "{} served", form.form);
    }
}

/// A GET of JSON from a test without an async runtime.
fn get_json(url: &str) -> serde_json::Value {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        reqwest::get(url)
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON")
    })
}
