//! The real binaries' command line: configuration errors end the process
//! with one clear line and a non-zero status; `migrate` is idempotent;
//! `serve` refuses to start while migrations are pending.

use integration_tests::binaries::{binary, run_binary};
use integration_tests::postgres::TestDatabase;
use std::io::Write;

const SERVICES: [(&str, &str); 2] = [
    ("etl-service", "etl-service"),
    ("migrator-service", "migrator-service"),
];

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f
}

/// Runs `<binary> <args>` and returns (exit code, stderr lines).
fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, Vec<String>) {
    let package = SERVICES
        .iter()
        .find(|(_, b)| *b == name)
        .map(|(p, _)| *p)
        .expect("known service");
    let out = run_binary(&binary(package, name), args, env);
    let stderr = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    (out.status.code().unwrap_or(-1), stderr)
}

fn assert_one_clear_line(name: &str, (code, lines): (i32, Vec<String>), expected: &str) {
    assert_ne!(code, 0, "{name} must exit non-zero");
    assert_eq!(lines.len(), 1, "{name} must print one line, got {lines:#?}");
    assert!(
        lines[0].starts_with(&format!("{name}: ")) && lines[0].contains(expected),
        "{name}: {:?} does not mention {expected:?}",
        lines[0]
    );
}

#[test]
fn a_missing_config_file_is_named() {
    for (_, name) in SERVICES {
        let result = run(
            name,
            &["--config", "/nonexistent/service.yaml", "serve"],
            &[],
        );
        assert_one_clear_line(name, result, "/nonexistent/service.yaml: no such file");
    }
}

#[test]
fn bad_yaml_is_reported_with_its_location() {
    let f = config_file("server:\n  listen: [unclosed\n");
    let path = f.path().to_string_lossy().to_string();
    for (_, name) in SERVICES {
        let result = run(name, &["--config", &path, "serve"], &[]);
        assert_one_clear_line(name, result, "line");
    }
}

#[test]
fn an_unknown_key_is_named() {
    let f = config_file("database:\n  urll: postgres://x@y/z\n");
    let path = f.path().to_string_lossy().to_string();
    for (_, name) in SERVICES {
        let result = run(name, &["--config", &path, "serve"], &[]);
        assert_one_clear_line(name, result, "unknown field `urll`");
    }
}

#[test]
fn a_malformed_database_url_is_refused_without_showing_the_password() {
    for (_, name) in SERVICES {
        let result = run(
            name,
            &["serve"],
            &[("DATABASE_URL", "postgres://u:hunter2@db:port/x")],
        );
        let line = result.1.first().cloned().unwrap_or_default();
        assert!(!line.contains("hunter2"), "{line}");
        assert_one_clear_line(name, result, "database.url");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_twice_then_serve_refusal_names_pending_migrations() {
    for (_, name) in SERVICES {
        let db = TestDatabase::new().await;
        let env = [
            ("DATABASE_URL", db.url.as_str()),
            ("GRPC_LISTEN", "127.0.0.1:0"),
        ];

        // serve refuses while migrations are pending, naming them.
        let (code, lines) = run(name, &["serve"], &env);
        assert_ne!(code, 0);
        let last = lines.last().cloned().unwrap_or_default();
        let first_migration = if name == "etl-service" {
            "2026-12-03-000001_service_state"
        } else {
            "2026-11-21-000001_audits"
        };
        assert!(
            last.contains("migration(s) pending") && last.contains(first_migration),
            "{name}: {last}"
        );

        let (code, lines) = run(name, &["migrate"], &env);
        assert_eq!(code, 0, "{name} migrate failed: {lines:#?}");
        assert!(lines.iter().any(|l| l.contains("applied")), "{lines:#?}");

        let (code, lines) = run(name, &["migrate"], &env);
        assert_eq!(code, 0, "{name} second migrate failed: {lines:#?}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("no pending migrations; nothing to do")),
            "{name}: {lines:#?}"
        );
        assert!(!lines.iter().any(|l| l.contains("applied")), "{lines:#?}");
    }
}

/// Logs to a pipe (`migrate`, captured) and to a file (`serve`, as the demo
/// and a container's log driver write them) carry no ANSI colour codes.
#[tokio::test(flavor = "multi_thread")]
async fn logs_to_a_pipe_or_a_file_carry_no_colour_codes() {
    use integration_tests::binaries::{ServiceProcess, free_addr};
    for (package, name) in SERVICES {
        let db = TestDatabase::new().await;
        let env = [
            ("DATABASE_URL", db.url.as_str()),
            ("GRPC_LISTEN", "127.0.0.1:0"),
        ];
        let out = run_binary(&binary(package, name), &["migrate"], &env);
        let piped = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name} migrate failed: {piped}");
        assert!(piped.contains("INFO"), "{name} logged nothing: {piped}");
        assert!(
            !piped.contains('\u{1b}'),
            "{name} coloured a pipe: {piped:?}"
        );

        let addr = free_addr();
        let listen = addr.to_string();
        let env = [
            ("DATABASE_URL", db.url.as_str()),
            ("GRPC_LISTEN", listen.as_str()),
        ];
        let process = ServiceProcess::start(&binary(package, name), &["serve"], &env, addr);
        let logged = process.log();
        process.terminate();
        assert!(logged.contains("INFO"), "{name} logged nothing: {logged}");
        assert!(
            !logged.contains('\u{1b}'),
            "{name} coloured a file: {logged:?}"
        );
    }
}
