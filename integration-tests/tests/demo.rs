//! The demo, as a newcomer runs it: the README's first command with
//! `--once` ends with the summary and exit 0; without `--once` the demo
//! serves, the commands it prints work, and Ctrl-C stops everything.

use integration_tests::binaries::grpcurl;
use integration_tests::postgres::{connect, server_url};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The README's first command: the first `cargo ...` line of its first
/// shell block.
fn readme_run_command() -> String {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md");
    let block = readme
        .split("```sh")
        .nth(1)
        .expect("a shell block in the README");
    let block = block.split("```").next().expect("closed block");
    block
        .lines()
        .find(|l| l.starts_with("cargo "))
        .expect("a cargo command in the README's first block")
        .trim()
        .to_string()
}

/// `PATH` with cargo's and grpcurl's directories first.
fn path_with_tools() -> String {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var("CARGO")
        .ok()
        .and_then(|c| PathBuf::from(c).parent().map(|p| p.to_path_buf()))
    {
        dirs.push(dir.to_string_lossy().to_string());
    }
    if let Some(dir) = grpcurl().parent() {
        dirs.push(dir.to_string_lossy().to_string());
    }
    dirs.push(std::env::var("PATH").unwrap_or_default());
    dirs.join(":")
}

/// Drops the demo's databases when the test ends, whatever happened.
struct DemoDatabases(String);

impl Drop for DemoDatabases {
    fn drop(&mut self) {
        let prefix = self.0.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Runtime::new() else {
                return;
            };
            rt.block_on(async {
                if let Ok(admin) = connect(server_url().await).await {
                    for db in ["avni", "forms"] {
                        let _ = admin
                            .batch_execute(&format!(
                                "DROP DATABASE IF EXISTS \"{prefix}_{db}\" WITH (FORCE)"
                            ))
                            .await;
                    }
                }
            });
        })
        .join();
    }
}

/// The demo's environment in tests: the test server, free ports, databases
/// of its own.
fn demo_env(cmd: &mut Command, prefix: &str, database_url: &str) {
    cmd.env("DEMO_DATABASE_PREFIX", prefix)
        .env("DEMO_FREE_PORTS", "1")
        .env("DATABASE_URL", database_url)
        .env_remove("RUST_LOG");
}

/// The number after `label` in `text` (commas allowed).
fn number_after(text: &str, label: &str) -> i64 {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"));
    let digits: String = text[at + label.len()..]
        .chars()
        .skip_while(|c| c.is_whitespace())
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    digits
        .parse()
        .unwrap_or_else(|e| panic!("no number after {label:?}: {e}\n{text}"))
}

/// What every summary must say about the default demo data.
fn assert_summary(out: &str) {
    assert!(
        out.contains("==================== Summary ===================="),
        "{out}"
    );
    let source = out
        .lines()
        .find(|l| l.starts_with("Avni source: "))
        .unwrap_or_else(|| panic!("no source line:\n{out}"));
    assert!(
        number_after(source, " with ") >= 2000,
        "a few thousand source rows: {source}"
    );
    assert!(out.contains("run #1 succeeded"), "{out}");
    let reporting = &out[out.find("Reporting tables in schema").expect("tables line")..];
    let tables_line = reporting.lines().next().unwrap_or_default();
    assert!(tables_line.contains("33 tables"), "{tables_line}");
    let rows = number_after(tables_line, "tables, ");
    assert!(rows >= 2000, "reporting rows: {tables_line}");
    for table in [
        "individual",
        "person_pregnancy_anc",
        "household_home_visit_cancel",
    ] {
        assert!(
            reporting
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{table} ")) && l.contains("created")),
            "no row count for {table}:\n{out}"
        );
    }
    // 3,000 generated submissions and 30 of the sample page's elements, 12 of
    // which fail (four each of its three failing elements).
    assert!(
        out.contains("source \"demo-drishti\" drained 3,030 submissions: 3,018 written, 12 failed"),
        "{out}"
    );
    assert!(out.contains("Migration audit: 31 batches"), "{out}");
    for (form, reason) in [
        ("ec_edit_v9", "Unknown form name: ec_edit_v9"),
        ("anc_visit", "\"second\" is not a number"),
        ("ec_registration", "formInstance is not valid JSON"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.contains(&format!("4 x {form}: ")) && l.contains(reason)),
            "no error line for {form}: {reason}\n{out}"
        );
    }
    for metric in [
        "etl_runs_succeeded_total 1",
        "migrator_submissions_written_total 3018",
        "migrator_submissions_failed_total 12",
    ] {
        assert!(out.contains(metric), "{metric} missing:\n{out}");
    }
    assert!(out.contains("/metrics"), "{out}");
    assert!(
        out.contains("grpcurl -plaintext -H 'authorization: Bearer demo-"),
        "{out}"
    );
    assert!(
        out.contains("avni.migrator.v1.FormsMigrator/ListErrors"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readmes_run_command_ends_with_the_summary_under_once() {
    let command = readme_run_command();
    assert_eq!(command, "cargo demo", "the README's first command");
    let prefix = format!("demo_once_{}", std::process::id());
    let _cleanup = DemoDatabases(prefix.clone());
    let database_url = server_url().await.to_string();
    let mut cmd = Command::new("bash");
    cmd.args(["-c", &format!("{command} --once")])
        .current_dir(workspace_root())
        .env("PATH", path_with_tools())
        .stdin(Stdio::null());
    demo_env(&mut cmd, &prefix, &database_url);
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{command} --once failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert_summary(&stdout);
    assert!(stdout.contains("--once: stopping."), "{stdout}");
    assert!(stdout.trim_end().ends_with("Stopped."), "{stdout}");
}

/// Lines of a child's stdout, read on a thread of their own.
fn lines_of(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn scrape(url: &str) -> String {
    reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .text()
        .await
        .expect("metrics text")
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| series.split('{').next() == Some(name))
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_serves_what_it_prints_until_ctrl_c() {
    let prefix = format!("demo_serve_{}", std::process::id());
    let _cleanup = DemoDatabases(prefix.clone());
    let database_url = server_url().await.to_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_demo"));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .current_dir(workspace_root());
    demo_env(&mut cmd, &prefix, &database_url);
    let mut child = cmd.spawn().expect("start the demo");
    let lines = lines_of(child.stdout.take().expect("stdout"));
    let mut out = String::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while !out.contains("Serving until Ctrl-C.") {
        match lines.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => {
                out.push_str(&line);
                out.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait();
                panic!("the demo ended before serving ({status:?}):\n{out}");
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the demo did not get to serving:\n{out}");
        }
    }
    assert_summary(&out);

    let pids: Vec<u32> = out
        .lines()
        .filter_map(|l| l.split("(pid ").nth(1))
        .filter_map(|rest| rest.split(')').next()?.parse().ok())
        .collect();
    assert_eq!(pids.len(), 2, "both services' pids are printed:\n{out}");
    let metrics_urls: Vec<String> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("curl -s "))
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    assert_eq!(metrics_urls.len(), 2, "{out}");
    let before = scrape(&metrics_urls[0]).await;
    assert_eq!(metric(&before, "etl_runs_succeeded_total"), 1.0, "{before}");

    // Every printed grpcurl command works as pasted; RunNow makes a second
    // run.
    let path = path_with_tools();
    let commands: Vec<&str> = out
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("grpcurl "))
        .collect();
    assert_eq!(commands.len(), 8, "{out}");
    for command in &commands {
        let result = Command::new("bash")
            .args(["-c", command])
            .env("PATH", &path)
            .output()
            .expect("run grpcurl");
        let stdout = String::from_utf8_lossy(&result.stdout);
        assert!(
            result.status.success() && !stdout.trim().is_empty(),
            "{command}\n{stdout}{}",
            String::from_utf8_lossy(&result.stderr)
        );
        if command.ends_with("WatchJobRun") {
            assert!(stdout.contains("RUN_STATUS_SUCCEEDED"), "{stdout}");
        }
        if command.ends_with("ListErrors") {
            assert!(stdout.contains("failureReason"), "{stdout}");
        }
    }

    // The counters move with the second run.
    let mut after = scrape(&metrics_urls[0]).await;
    let waited = Instant::now();
    while metric(&after, "etl_runs_succeeded_total") < 2.0
        && waited.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = scrape(&metrics_urls[0]).await;
    }
    assert_eq!(metric(&after, "etl_runs_started_total"), 2.0, "{after}");
    assert_eq!(metric(&after, "etl_runs_succeeded_total"), 2.0, "{after}");
    let migrator = scrape(&metrics_urls[1]).await;
    assert_eq!(
        metric(&migrator, "migrator_submissions_written_total"),
        3018.0,
        "{migrator}"
    );
    // The printed curl commands, as pasted, where curl is installed.
    let has_curl = Command::new("curl")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_curl {
        for (command, expected) in out
            .lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with("curl -s "))
            .zip(["etl_runs_started_total 2", "migrator_batches_total"])
        {
            let result = Command::new("bash")
                .args(["-c", command])
                .output()
                .expect("run curl");
            let text = String::from_utf8_lossy(&result.stdout);
            assert!(text.contains(expected), "{command}\n{text}");
        }
    }

    // Ctrl-C (SIGINT to the demo alone) stops the services and the demo.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let stopped = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(60),
            "the demo did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
        out.push_str(&line);
        out.push('\n');
    }
    assert!(
        exit.success(),
        "the demo exits 0 after Ctrl-C: {exit}\n{out}"
    );
    assert!(out.trim_end().ends_with("Stopped."), "{out}");
    for pid in pids {
        assert!(
            !alive(pid),
            "service {pid} still runs after the demo stopped"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_server_the_demo_runs_on_a_private_cluster_it_removes() {
    // --private-cluster takes the path a machine without a running
    // PostgreSQL takes (initdb and pg_ctl, as the postgres user under root).
    let output = tokio::task::spawn_blocking(|| {
        Command::new(env!("CARGO_BIN_EXE_demo"))
            .args(["--once", "--private-cluster", "--free-ports"])
            .args([
                "--subjects",
                "20",
                "--submissions",
                "300",
                "--quirks-every",
                "50",
            ])
            .env_remove("DATABASE_URL")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
    })
    .await
    .expect("join")
    .expect("run the demo");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\n{out}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("PostgreSQL: "))
        .unwrap_or_else(|| panic!("no PostgreSQL line:\n{out}"));
    let dir = line
        .split("a private cluster in ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("not a private cluster: {line}"));
    assert!(out.contains("run #1 succeeded"), "{out}");
    assert!(
        out.contains("drained 306 submissions: 304 written, 2 failed"),
        "{out}"
    );
    assert!(
        out.contains("Stopping the private PostgreSQL cluster"),
        "{out}"
    );
    assert!(
        !std::path::Path::new(dir).exists(),
        "the private cluster's directory {dir} is removed"
    );
}
