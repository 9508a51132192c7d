//! The ETL end to end on the faithful avni-server fixture (issue 14's
//! evidence): the real `etl-service` binary, connected as avni-server's
//! owner `openchs`, on a database whose organisations were made as
//! avni-server makes them (`create_db_user()`, `create_implementation_schema()`)
//! and whose rows were written under `SET ROLE <db_user>` with RLS on.
//!
//! `migrate` twice (the second does nothing); `run-once` for a standalone
//! organisation, a child organisation (the subjects, enrolments and
//! encounters it has, with its parent's forms, less the question it
//! switched off, and the locations Avni shows it: its own and its
//! parent's) and a group; an organisation made after `migrate` reads
//! nothing of `etl_service` and its first run works; RecreateSchema (the
//! RPC, through the real `grpcurl`) gives the schema back to the
//! organisation's role; an implementer's view survives runs.

use integration_tests::avni_server::{AvniOrg, AvniServerDb, EXAMPLE_SUBJECTS, pg_error};
use integration_tests::binaries::{ServiceProcess, binary, free_addr, run_binary, run_grpcurl};
use service_kit::sql::{quote_ident, quote_qualified};
use std::collections::BTreeMap;
use std::process::Output;
use tokio_postgres::Client;

const TOKEN: &str = "avni-run-token-5d1e";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The service's config file: rows are synced up to the run's start (no
/// offset), so rows a test writes between two runs are in the second.
fn config_file() -> &'static str {
    static FILE: std::sync::OnceLock<tempfile::TempPath> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let mut file = tempfile::Builder::new()
            .suffix(".yaml")
            .tempfile()
            .expect("config file");
        std::io::Write::write_all(&mut file, b"etl:\n  sync_offset_seconds: 0\n")
            .expect("write config");
        file.into_temp_path()
    })
    .to_str()
    .expect("utf-8 path")
}

/// The real binary, as openchs on the fixture, logging at `log`.
fn etl(avni: &AvniServerDb, args: &[&str], log: &str) -> Output {
    run_binary(
        &binary("etl-service", "etl-service"),
        args,
        &[
            ("DATABASE_URL", &avni.owner_url),
            ("ETL_CONFIG", config_file()),
            ("RUST_LOG", log),
        ],
    )
}

fn migrate(avni: &AvniServerDb) -> String {
    let out = etl(avni, &["migrate"], "info");
    assert!(out.status.success(), "migrate failed: {}", text(&out));
    text(&out)
}

/// `run-once --organisation <uuid>` (or `--organisation-group`), which
/// must succeed; its summary.
fn run_once(avni: &AvniServerDb, flag: &str, uuid: &str) -> String {
    let out = etl(avni, &["run-once", flag, uuid], "warn");
    assert!(
        out.status.success(),
        "run-once {flag} {uuid} failed: {}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Each reporting table of `schema` by its `table_metadata.type`, with its
/// row count (a type with several tables sums them).
async fn rows_by_type(client: &Client, schema: &str) -> BTreeMap<String, i64> {
    let tables = client
        .query(
            "SELECT name, type FROM public.table_metadata WHERE schema_name = $1 ORDER BY name",
            &[&schema],
        )
        .await
        .unwrap_or_else(|e| panic!("metadata of {schema}: {}", pg_error(&e)));
    let mut counts = BTreeMap::new();
    for t in tables {
        let (name, kind): (String, String) = (t.get(0), t.get(1));
        let n: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {}", quote_qualified(schema, &name)),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("count {schema}.{name}: {}", pg_error(&e)))
            .get(0);
        *counts.entry(kind).or_insert(0) += n;
    }
    counts
}

/// The expected counts: `subjects` subjects with an enrolment, a program
/// encounter and an encounter each, none exited or cancelled,
/// `locations` address levels and `users` users (no device syncs).
fn expected(subjects: i64, locations: i64, users: i64) -> BTreeMap<String, i64> {
    [
        ("User", users),
        ("SyncTelemetry", 0),
        ("Person", subjects),
        ("ProgramEnrolment", subjects),
        ("ProgramExit", 0),
        ("ProgramEncounter", subjects),
        ("ProgramEncounterCancellation", 0),
        ("Encounter", subjects),
        ("IndividualEncounterCancellation", 0),
        ("Address", locations),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The name of `schema`'s one table of `kind`.
async fn table_of(client: &Client, schema: &str, kind: &str) -> String {
    client
        .query_one(
            "SELECT name FROM public.table_metadata WHERE schema_name = $1 AND type = $2",
            &[&schema, &kind],
        )
        .await
        .unwrap_or_else(|e| panic!("the {kind} table of {schema}: {}", pg_error(&e)))
        .get(0)
}

async fn columns(client: &Client, schema: &str, table: &str) -> Vec<String> {
    client
        .query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            &[&schema, &table],
        )
        .await
        .expect("columns")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn texts(client: &Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", pg_error(&e)))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn schema_owner(client: &Client, schema: &str) -> String {
    client
        .query_one(
            "SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = $1",
            &[&schema],
        )
        .await
        .unwrap_or_else(|e| panic!("schema {schema}: {}", pg_error(&e)))
        .get(0)
}

/// The address levels `org`'s role sees in Avni (RLS: its own and its
/// ancestors'), by id.
async fn locations_avni_shows(avni: &AvniServerDb, org: &AvniOrg) -> Vec<String> {
    let session = avni.session(&org.db_user).await;
    texts(
        &session,
        "SELECT id::text FROM public.address_level ORDER BY id",
    )
    .await
}

async fn address_ids(client: &Client, schema: &str) -> Vec<String> {
    let table = table_of(client, schema, "Address").await;
    texts(
        client,
        &format!(
            "SELECT id::text FROM {} ORDER BY id",
            quote_qualified(schema, &table)
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_twice_on_an_avni_database_the_second_does_nothing() {
    let avni = AvniServerDb::new().await;
    let owner = avni.owner().await;
    let public_before = texts(
        &owner,
        "SELECT relname::text || ':' || relkind::text FROM pg_class \
         WHERE relnamespace = 'public'::regnamespace ORDER BY 1",
    )
    .await;
    let flyway_before = texts(
        &owner,
        "SELECT count(*)::text || ':' || coalesce(max(installed_rank), 0)::text FROM public.schema_version",
    )
    .await;

    let first = migrate(&avni);
    assert!(!first.contains("nothing to do"), "{first}");
    let second = migrate(&avni);
    assert!(
        second.contains("no pending migrations; nothing to do"),
        "{second}"
    );
    // The service's state is in its own schema; public keeps avni-server's
    // relations and Flyway's history as they were.
    let service_tables = texts(
        &owner,
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'etl_service' ORDER BY 1",
    )
    .await;
    for t in ["etl_job", "etl_run", "etl_run_event", "watermark"] {
        assert!(service_tables.iter().any(|x| x == t), "{service_tables:?}");
    }
    let public_after = texts(
        &owner,
        "SELECT relname::text || ':' || relkind::text FROM pg_class \
         WHERE relnamespace = 'public'::regnamespace ORDER BY 1",
    )
    .await;
    assert_eq!(
        public_after, public_before,
        "migrate adds nothing to public"
    );
    let flyway_after = texts(
        &owner,
        "SELECT count(*)::text || ':' || coalesce(max(installed_rank), 0)::text FROM public.schema_version",
    )
    .await;
    assert_eq!(flyway_after, flyway_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn run_once_for_a_standalone_a_child_and_a_group() {
    let ex = AvniServerDb::example().await;
    let avni = &ex.avni;
    migrate(avni);
    let owner = avni.owner().await;
    let n = i64::from(EXAMPLE_SUBJECTS);

    // Standalone: its subjects, enrolments, encounters and locations.
    let summary = run_once(avni, "--organisation", &ex.standalone.uuid);
    eprintln!("{summary}");
    assert!(
        summary.starts_with(&format!(
            "organisation {} ({}) -> schema {}\n",
            ex.standalone.uuid, ex.standalone.name, ex.standalone.schema_name
        )),
        "{summary}"
    );
    assert_eq!(
        rows_by_type(&owner, &ex.standalone.schema_name).await,
        expected(n, 2, 2)
    );

    // Child: the parent's forms, its own rows, the locations Avni shows
    // it (its own and its parent's).
    let summary = run_once(avni, "--organisation", &ex.child.uuid);
    eprintln!("{summary}");
    let child = &ex.child.schema_name;
    let shown = locations_avni_shows(avni, &ex.child).await;
    assert_eq!(
        shown.len(),
        4,
        "the child's own two levels and its parent's"
    );
    assert_eq!(
        rows_by_type(&owner, child).await,
        expected(n, shown.len() as i64, 2)
    );
    assert_eq!(address_ids(&owner, child).await, shown);
    let person = table_of(&owner, child, "Person").await;
    let person_columns = columns(&owner, child, &person).await;
    for present in ["Weight", "Blood group"] {
        assert!(
            person_columns.iter().any(|c| c == present),
            "{present} in {person_columns:?}"
        );
    }
    assert!(
        !person_columns.iter().any(|c| c == "Notes"),
        "the child switched Notes off: {person_columns:?}"
    );
    let orgs = texts(
        &owner,
        &format!(
            "SELECT DISTINCT organisation_id::text FROM {}",
            quote_qualified(child, &person)
        ),
    )
    .await;
    assert_eq!(
        orgs,
        vec![ex.child.id.to_string()],
        "only the child's subjects"
    );
    // The parent's address level columns are filled on the child's rows.
    let address = table_of(&owner, child, "Address").await;
    let village_of_parent = texts(
        &owner,
        &format!(
            "SELECT {}::text FROM {} WHERE {} IS NOT NULL",
            quote_ident("District parent"),
            quote_qualified(child, &address),
            quote_ident("Village parent")
        ),
    )
    .await;
    assert_eq!(village_of_parent, vec!["District of parent".to_string()]);

    // The group (standalone and parent): both members' rows.
    let summary = run_once(avni, "--organisation-group", &ex.group.uuid);
    eprintln!("{summary}");
    assert_eq!(
        rows_by_type(&owner, &ex.group.schema_name).await,
        expected(2 * n, 4, 4)
    );
    assert_eq!(
        schema_owner(&owner, &ex.group.schema_name).await,
        ex.group.db_user
    );

    // A second run of each does nothing.
    for (flag, uuid) in [
        ("--organisation", &ex.standalone.uuid),
        ("--organisation", &ex.child.uuid),
        ("--organisation-group", &ex.group.uuid),
    ] {
        let again = run_once(avni, flag, uuid);
        assert!(
            again.contains("0 created, 0 altered") && again.contains("0 rows upserted, 0 deleted"),
            "{again}"
        );
    }

    // The parent renames its village (as its role): the child's next run
    // brings the change into its address table.
    let parent = avni.session(&ex.parent.db_user).await;
    parent
        .batch_execute(
            "UPDATE public.address_level SET title = 'Renamed village', \
             last_modified_date_time = date_trunc('milliseconds', now()) WHERE title = 'Village of parent'",
        )
        .await
        .unwrap_or_else(|e| panic!("rename: {}", pg_error(&e)));
    let summary = run_once(avni, "--organisation", &ex.child.uuid);
    assert!(summary.contains("1 rows upserted"), "{summary}");
    let renamed = texts(
        &owner,
        &format!(
            "SELECT {}::text FROM {} WHERE {} IS NOT NULL",
            quote_ident("Village parent"),
            quote_qualified(child, &address),
            quote_ident("Village parent")
        ),
    )
    .await;
    assert_eq!(renamed, vec!["Renamed village".to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organisation_made_after_migrate_reads_nothing_of_the_service_and_runs() {
    let avni = AvniServerDb::new().await;
    let first = avni.create_organisation("first", None).await;
    avni.fill(&first, EXAMPLE_SUBJECTS).await;
    migrate(&avni);
    run_once(&avni, "--organisation", &first.uuid);

    // As avni-server's POST /organisation makes it, after migrate:
    // create_db_user() grants ALL on everything in public.
    let later = avni.create_organisation("later", None).await;
    avni.fill(&later, EXAMPLE_SUBJECTS).await;
    let session = avni.session(&later.db_user).await;
    for sql in [
        "SELECT count(*) FROM etl_service.etl_job",
        "SELECT count(*) FROM etl_service.etl_run",
        "SELECT count(*) FROM etl_service.etl_run_event",
        "SELECT count(*) FROM etl_service.watermark",
        "DELETE FROM etl_service.watermark",
    ] {
        let err = session
            .query_one(sql, &[])
            .await
            .expect_err("the organisation's role reads nothing of etl_service");
        assert!(
            pg_error(&err).contains("permission denied for schema etl_service"),
            "{sql}: {}",
            pg_error(&err)
        );
    }
    // Avni's own metadata tables show it nothing of the first's schema.
    let seen: i64 = session
        .query_one(
            "SELECT count(*) FROM public.table_metadata WHERE schema_name = $1",
            &[&first.schema_name],
        )
        .await
        .expect("metadata")
        .get(0);
    assert_eq!(seen, 0);
    // Nor the first organisation's reporting schema.
    let person = table_of(&avni.owner().await, &first.schema_name, "Person").await;
    let err = session
        .query_one(
            &format!(
                "SELECT count(*) FROM {}",
                quote_qualified(&first.schema_name, &person)
            ),
            &[],
        )
        .await
        .expect_err("another organisation's schema");
    assert!(
        pg_error(&err).contains("permission denied"),
        "{}",
        pg_error(&err)
    );
    drop(session);

    run_once(&avni, "--organisation", &later.uuid);
    let owner = avni.owner().await;
    assert_eq!(
        rows_by_type(&owner, &later.schema_name).await,
        expected(i64::from(EXAMPLE_SUBJECTS), 2, 2)
    );
    assert_eq!(
        schema_owner(&owner, &later.schema_name).await,
        later.db_user
    );
}

/// The implementer's dashboard view, made as the organisation's role over
/// the reporting table `table`.
async fn implementer_view(avni: &AvniServerDb, org: &AvniOrg, table: &str) {
    let session = avni.session(&org.db_user).await;
    session
        .batch_execute(&format!(
            "CREATE VIEW {} AS SELECT count(*) AS people FROM {}",
            quote_qualified(&org.schema_name, "my_dashboard"),
            quote_qualified(&org.schema_name, table)
        ))
        .await
        .unwrap_or_else(|e| panic!("{} creates a view: {}", org.db_user, pg_error(&e)));
}

async fn dashboard(avni: &AvniServerDb, org: &AvniOrg) -> Result<i64, String> {
    let session = avni.session(&org.db_user).await;
    session
        .query_one(
            &format!(
                "SELECT people FROM {}",
                quote_qualified(&org.schema_name, "my_dashboard")
            ),
            &[],
        )
        .await
        .map(|r| r.get(0))
        .map_err(|e| pg_error(&e))
}

/// `more` subjects copied from the organisation's first one, written as
/// its role with new uuids and change times.
async fn add_subjects(avni: &AvniServerDb, org: &AvniOrg, more: i32) {
    let session = avni.session(&org.db_user).await;
    session
        .execute(
            "INSERT INTO public.individual (uuid, address_id, observations, version, date_of_birth, \
               date_of_birth_verified, gender_id, registration_date, organisation_id, first_name, last_name, \
               subject_type_id, created_by_id, last_modified_by_id, created_date_time, last_modified_date_time) \
             SELECT gen_random_uuid()::text, i.address_id, i.observations, 0, i.date_of_birth, false, i.gender_id, \
                    i.registration_date, i.organisation_id, 'More' || g, i.last_name, i.subject_type_id, \
                    i.created_by_id, i.last_modified_by_id, date_trunc('milliseconds', now()), \
                    date_trunc('milliseconds', now()) \
             FROM (SELECT * FROM public.individual ORDER BY id LIMIT 1) i, generate_series(1, $1) g",
            &[&more],
        )
        .await
        .unwrap_or_else(|e| panic!("more subjects for {}: {}", org.key, pg_error(&e)));
}

fn grpc(addr: std::net::SocketAddr, method: &str, body: &str) -> String {
    let header = format!("authorization: Bearer {TOKEN}");
    text(&run_grpcurl(
        addr,
        &["-d", body, "-H", &header],
        &[&format!("avni.etl.v1.EtlService/{method}")],
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_implementers_view_survives_runs_and_recreate_schema_keeps_the_owner() {
    let avni = AvniServerDb::new().await;
    let org = avni.create_organisation("impl", None).await;
    avni.fill(&org, EXAMPLE_SUBJECTS).await;
    migrate(&avni);
    run_once(&avni, "--organisation", &org.uuid);
    let owner = avni.owner().await;
    let person = table_of(&owner, &org.schema_name, "Person").await;
    implementer_view(&avni, &org, &person).await;
    assert_eq!(
        dashboard(&avni, &org).await,
        Ok(i64::from(EXAMPLE_SUBJECTS))
    );

    // New subjects, then runs: the view stays and sees them.
    add_subjects(&avni, &org, 2).await;
    run_once(&avni, "--organisation", &org.uuid);
    run_once(&avni, "--organisation", &org.uuid);
    assert_eq!(
        dashboard(&avni, &org).await,
        Ok(i64::from(EXAMPLE_SUBJECTS) + 2)
    );

    // RecreateSchema through the served RPC, as an operator calls it.
    let bin = binary("etl-service", "etl-service");
    let addr = free_addr();
    let listen = addr.to_string();
    let env = [
        ("DATABASE_URL", avni.owner_url.as_str()),
        ("GRPC_LISTEN", listen.as_str()),
        ("AUTH_TOKENS", TOKEN),
        ("ETL_CONFIG", config_file()),
        ("RUST_LOG", "warn"),
    ];
    let process = ServiceProcess::start(&bin, &["serve"], &env, addr);
    let entity = format!(
        r#"{{"entity":{{"uuid":"{}","type":"ENTITY_TYPE_ORGANISATION"}},"skip_rebuild":false}}"#,
        org.uuid
    );
    let reply = grpc(addr, "RecreateSchema", &entity);
    assert!(reply.contains("\"rebuildRun\""), "{reply}");
    // The rebuild runs in the background: wait for its tables.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let counts = rows_by_type(&owner, &org.schema_name).await;
        if counts.get("Person") == Some(&(i64::from(EXAMPLE_SUBJECTS) + 2)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no rebuild: {counts:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let status = process.terminate();
    assert!(status.success(), "{status}");
    assert_eq!(schema_owner(&owner, &org.schema_name).await, org.db_user);
    // The organisation's role can create its view again in the rebuilt
    // schema.
    let person = table_of(&owner, &org.schema_name, "Person").await;
    implementer_view(&avni, &org, &person).await;
    run_once(&avni, "--organisation", &org.uuid);
    assert_eq!(
        dashboard(&avni, &org).await,
        Ok(i64::from(EXAMPLE_SUBJECTS) + 2)
    );
}
