//! TLS to PostgreSQL as the URL's `sslmode` says, against the machine's
//! PostgreSQL (`ssl = on` with its self-signed certificate): `require`
//! encrypts every connection the services open (pool, entity lock, LISTEN,
//! migrations); `verify-full` refuses a certificate it cannot trust at once,
//! with a clear error, and accepts it when `sslrootcert` names it.

use integration_tests::binaries::{ServiceProcess, binary, free_addr, run_binary};
use integration_tests::postgres::TestDatabase;
use service_kit::config::DatabaseSettings;
use std::time::{Duration, Instant};

fn with_query(url: &str, query: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

/// Whether the server sees the connection `client` is as encrypted.
async fn is_encrypted(client: &tokio_postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0)
}

/// The server's certificate file (self-signed; its name is `localhost`).
async fn server_certificate(db: &TestDatabase) -> String {
    let client = db.client().await;
    let on: String = client
        .query_one("SHOW ssl", &[])
        .await
        .expect("show ssl")
        .get(0);
    assert_eq!(on, "on", "these tests need PostgreSQL with ssl = on");
    client
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .expect("show ssl_cert_file")
        .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn require_and_disable_are_honoured_by_probes_and_the_pool() {
    let db = TestDatabase::new().await;
    let timeout = Duration::from_secs(5);
    let _ = server_certificate(&db).await;

    let require = with_query(&db.url, "sslmode=require");
    let raw = service_kit::db::connect_raw(&require, timeout)
        .await
        .expect("require connects");
    assert!(is_encrypted(&raw).await, "sslmode=require must encrypt");

    let disable = with_query(&db.url, "sslmode=disable");
    let raw = service_kit::db::connect_raw(&disable, timeout)
        .await
        .expect("disable connects");
    assert!(
        !is_encrypted(&raw).await,
        "sslmode=disable must not encrypt"
    );

    let settings = DatabaseSettings {
        url: require.clone(),
        statement_timeout_ms: Some(5000),
        ..DatabaseSettings::default()
    };
    service_kit::db::wait_for_database(&settings)
        .await
        .expect("wait_for_database with require");
    let pool = service_kit::db::build_pool(&settings);
    let mut conn = pool.get().await.expect("a pooled connection over TLS");
    #[derive(diesel::QueryableByName)]
    struct Ssl {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        ssl: bool,
    }
    use diesel_async::RunQueryDsl;
    let row: Ssl = diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .get_result(&mut *conn)
        .await
        .expect("query on the pooled connection");
    assert!(row.ssl, "the pool's connections must be encrypted");

    let lock = etl_service::engine::lock::EntityLock::acquire(&require, "tls_schema")
        .await
        .expect("the entity lock over TLS");
    let client = db.client().await;
    let unencrypted_lock_holders: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_ssl s ON s.pid = l.pid \
             WHERE l.locktype = 'advisory' AND NOT s.ssl",
            &[],
        )
        .await
        .expect("pg_locks")
        .get(0);
    let encrypted_lock_holders: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_ssl s ON s.pid = l.pid \
             WHERE l.locktype = 'advisory' AND s.ssl AND l.granted",
            &[],
        )
        .await
        .expect("pg_locks")
        .get(0);
    assert_eq!(unencrypted_lock_holders, 0);
    assert!(
        encrypted_lock_holders >= 1,
        "the lock connection must be encrypted"
    );
    drop(lock);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_full_refuses_an_untrusted_certificate_at_once_and_trusts_sslrootcert() {
    let db = TestDatabase::new().await;
    let cert = server_certificate(&db).await;

    // The self-signed certificate is not in the system's store: refused,
    // with the reason, long before startup_wait_seconds.
    let untrusted = DatabaseSettings {
        url: with_query(&db.url, "sslmode=verify-full"),
        startup_wait_seconds: 60,
        ..DatabaseSettings::default()
    };
    let started = Instant::now();
    let err = service_kit::db::wait_for_database(&untrusted)
        .await
        .expect_err("an untrusted certificate must be refused");
    let msg = err.to_string();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refusing took {:?}: {msg}",
        started.elapsed()
    );
    assert!(msg.contains("certificate"), "{msg}");
    assert!(msg.contains("sslrootcert"), "{msg}");

    // Named as the CA: verify-ca accepts it on 127.0.0.1 (the name is not
    // checked); verify-full accepts it on the name it holds (localhost)
    // and refuses it on 127.0.0.1.
    let timeout = Duration::from_secs(5);
    let rooted =
        |mode: &str, url: &str| with_query(url, &format!("sslmode={mode}&sslrootcert={cert}"));
    let raw = service_kit::db::connect_raw(&rooted("verify-ca", &db.url), timeout)
        .await
        .expect("verify-ca with the server's certificate as CA");
    assert!(is_encrypted(&raw).await);

    let localhost = db.url.replace("@127.0.0.1:", "@localhost:");
    let raw = service_kit::db::connect_raw(&rooted("verify-full", &localhost), timeout)
        .await
        .expect("verify-full on the certificate's own name");
    assert!(is_encrypted(&raw).await);

    let err = service_kit::db::connect_raw(&rooted("verify-full", &db.url), timeout)
        .await
        .expect_err("verify-full on another name must be refused");
    assert!(err.contains("certificate not valid for name"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_and_serve_with_sslmode_require_use_tls_everywhere() {
    let db = TestDatabase::new().await;
    let _ = server_certificate(&db).await;
    let require = with_query(&db.url, "sslmode=require");
    for (package, name) in [
        ("etl-service", "etl-service"),
        ("migrator-service", "migrator-service"),
    ] {
        // A database per service: both keep their migrations in one table.
        let own = TestDatabase::new().await;
        let require = with_query(&own.url, "sslmode=require");
        let started = Instant::now();
        let out = run_binary(
            &binary(package, name),
            &["migrate"],
            &[("DATABASE_URL", require.as_str())],
        );
        assert!(
            out.status.success(),
            "{name} migrate with sslmode=require failed after {:?}: {}",
            started.elapsed(),
            String::from_utf8_lossy(&out.stderr)
        );
        let verify = with_query(&own.url, "sslmode=verify-full");
        let started = Instant::now();
        let out = run_binary(
            &binary(package, name),
            &["migrate"],
            &[("DATABASE_URL", verify.as_str())],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: {stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{name} waited {:?}",
            started.elapsed()
        );
        assert!(stderr.contains("certificate"), "{name}: {stderr}");
    }

    let out = run_binary(
        &binary("etl-service", "etl-service"),
        &["migrate"],
        &[("DATABASE_URL", require.as_str())],
    );
    assert!(out.status.success());

    // The ETL serving: its pool, health probe and scheduler's LISTEN
    // connection are all encrypted.
    let addr = free_addr();
    let listen = addr.to_string();
    let etl = ServiceProcess::start(
        &binary("etl-service", "etl-service"),
        &["serve"],
        &[
            ("DATABASE_URL", require.as_str()),
            ("GRPC_LISTEN", listen.as_str()),
        ],
        addr,
    );
    let client = db.client().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = client
            .query(
                "SELECT a.query, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid \
                 WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()",
                &[],
            )
            .await
            .expect("pg_stat_activity");
        let listening = rows
            .iter()
            .any(|r| r.get::<_, String>(0).starts_with("LISTEN"));
        if listening {
            let plain: Vec<String> = rows
                .iter()
                .filter(|r| !r.get::<_, bool>(1))
                .map(|r| r.get(0))
                .collect();
            assert!(
                plain.is_empty(),
                "unencrypted service connections: {plain:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no LISTEN connection seen; log:\n{}",
            etl.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    etl.terminate();
}
