//! End to end, as an operator sees it: both real binaries started with
//! environment overrides, driven by the real `grpcurl` through reflection.

use integration_tests::binaries::{ServiceProcess, binary, free_addr, run_binary, run_grpcurl};
use integration_tests::postgres::TestDatabase;
use std::net::SocketAddr;

const TOKEN: &str = "e2e-token-91c2";

struct Case {
    package: &'static str,
    service: &'static str,
    describe: &'static str,
    expect_in_describe: &'static str,
    call: &'static str,
    body: &'static str,
}

const CASES: [Case; 2] = [
    Case {
        package: "etl-service",
        service: "avni.etl.v1.EtlService",
        describe: "avni.etl.v1.Job",
        expect_in_describe: "// The most recent finished run, if any.",
        call: "avni.etl.v1.EtlService/GetJob",
        body: r#"{"entity":{"uuid":"not-a-uuid","type":"ENTITY_TYPE_ORGANISATION"}}"#,
    },
    Case {
        package: "migrator-service",
        service: "avni.migrator.v1.FormsMigrator",
        describe: "avni.migrator.v1.ErrorAudit",
        expect_in_describe: "// The full cause, never truncated.",
        call: "avni.migrator.v1.FormsMigrator/ListAudits",
        body: r#"{"page_size": 1}"#,
    },
];

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn call(addr: SocketAddr, token: Option<&str>, method: &str, body: &str) -> String {
    let header = token.map(|t| format!("authorization: Bearer {t}"));
    let mut before = vec!["-d", body];
    if let Some(h) = &header {
        before.push("-H");
        before.push(h);
    }
    text(&run_grpcurl(addr, &before, &[method]))
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_drive_both_binaries_with_grpcurl() {
    for case in CASES {
        let db = TestDatabase::new().await;
        let bin = binary(case.package, case.package);
        let addr = free_addr();
        let listen = addr.to_string();
        let env = [
            ("DATABASE_URL", db.url.as_str()),
            ("GRPC_LISTEN", listen.as_str()),
            ("AUTH_TOKENS", TOKEN),
        ];
        let migrate = run_binary(&bin, &["migrate"], &env);
        assert!(migrate.status.success(), "{}", text(&migrate));

        let process = ServiceProcess::start(&bin, &["serve"], &env, addr);

        let list = text(&run_grpcurl(addr, &[], &["list"]));
        for expected in [
            case.service,
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ] {
            assert!(
                list.lines().any(|l| l.trim() == expected),
                "{expected} missing from:\n{list}"
            );
        }

        let describe = text(&run_grpcurl(addr, &[], &["describe", case.describe]));
        assert!(describe.contains(case.expect_in_describe), "{describe}");

        let health = text(&run_grpcurl(addr, &[], &["grpc.health.v1.Health/Check"]));
        assert!(health.contains("\"SERVING\""), "{health}");
        let product_health = text(&run_grpcurl(
            addr,
            &["-d", &format!(r#"{{"service":"{}"}}"#, case.service)],
            &["grpc.health.v1.Health/Check"],
        ));
        assert!(product_health.contains("\"SERVING\""), "{product_health}");

        // The container health check command agrees.
        let probe = run_binary(&bin, &["health-check"], &env);
        assert!(probe.status.success(), "{}", text(&probe));
        assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "SERVING");

        let no_token = call(addr, None, case.call, case.body);
        assert!(no_token.contains("Code: Unauthenticated"), "{no_token}");
        let wrong = call(addr, Some("wrong"), case.call, case.body);
        assert!(wrong.contains("Code: Unauthenticated"), "{wrong}");
        let right = call(addr, Some(TOKEN), case.call, case.body);
        assert!(!right.contains("Unauthenticated"), "{right}");

        let status = process.terminate();
        assert!(
            status.success(),
            "graceful stop on SIGTERM must exit 0, got {status}"
        );
    }
}
