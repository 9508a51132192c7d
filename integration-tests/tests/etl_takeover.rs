//! Taking over from avni-etl (issue 14): pointed at a database whose
//! reporting schema avni-etl built (`integration_tests::avni_etl`, on the
//! avni-server fixture), the first run adopts it in place. It keeps the
//! tables (names, `table_metadata` ids), their columns (names, types: none
//! voided or renamed, avni-etl's own such as `created_by_id`, `legacy_id`
//! and `latest_approval_status` with their values) and their rows; reads
//! avni-etl's metadata in its vocabulary; takes its `entity_sync_status`
//! rows as watermarks (no second row per table); removes the
//! equal-timestamp copies avni-etl left and adds the primary key the
//! upsert needs; adds its own columns, filled for every row: `created_by`
//! and `last_modified_by` in place from avni-etl's `created_by_id` /
//! `last_modified_by_id` (no row read again: the tables go on from
//! avni-etl's watermarks), the address table's `title`, `type`, `parent_id`
//! by reading its locations again. avni-etl's `subject_view` and an implementer's view over the
//! adopted table keep working. A later change arrives incrementally. And
//! after adoption every table equals, row for row, what a fresh build
//! (RecreateSchema, then a run) gives, compared on every column of the
//! fresh table (which the adopted one all has), values as text.

use etl_service::engine::entity::{EntityKind, EntityRef};
use etl_service::engine::{self, LockMode, NoProgress, RunOptions, RunReport};
use integration_tests::avni_etl::{self, AvniEtlSchema, pg_type};
use integration_tests::avni_server::{AvniOrg, AvniServerDb, pg_error};
use integration_tests::binaries::{binary, run_binary};
use integration_tests::etl::{context, key_columns};
use service_kit::sql::{quote_ident, quote_qualified};
use std::collections::{BTreeMap, BTreeSet};
use tokio_postgres::Client;

fn org_ref(org: &AvniOrg) -> EntityRef {
    EntityRef {
        uuid: org.uuid.parse().expect("uuid"),
        kind: EntityKind::Organisation,
    }
}

/// The avni-server fixture with one organisation whose schema avni-etl
/// built (3 subjects, a multi-select question on ANC), then the ETL's
/// `migrate`, as at a switch-over.
async fn taken_over() -> (AvniServerDb, AvniOrg, AvniEtlSchema) {
    let avni = AvniServerDb::new().await;
    let org = avni.create_organisation("legacy", None).await;
    avni.fill(&org, 3).await;
    avni_etl::add_multi_select_question(&avni, &org).await;
    let built = avni_etl::build(&avni, &org).await;
    service_kit::db::run_pending_migrations(&avni.owner_url, etl_service::migrations::migrations())
        .await
        .unwrap_or_else(|e| panic!("migrate: {e}"));
    (avni, org, built)
}

async fn run(avni: &AvniServerDb, org: &AvniOrg) -> RunReport {
    engine::run_entity(
        &context(&avni.owner_url),
        org_ref(org),
        &RunOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap_or_else(|e| panic!("run of {}: {e}", org.name))
}

/// A table's columns as PostgreSQL has them: name -> type.
async fn physical_columns(client: &Client, schema: &str, table: &str) -> BTreeMap<String, String> {
    client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped",
            &[&quote_qualified(schema, table)],
        )
        .await
        .unwrap_or_else(|e| panic!("columns of {table}: {}", pg_error(&e)))
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Every row of a table on `columns`, values as text, by the row's text.
async fn rows_on(client: &Client, schema: &str, table: &str, columns: &[String]) -> Vec<String> {
    let values: Vec<String> = columns
        .iter()
        .map(|c| format!("{}::text", quote_ident(c)))
        .collect();
    let sql = format!(
        "SELECT x::text FROM (SELECT ARRAY[{}] AS x FROM {}) r ORDER BY 1",
        values.join(", "),
        quote_qualified(schema, table)
    );
    client
        .query(&sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{}\n{sql}", pg_error(&e)))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn count(client: &Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{}\n{sql}", pg_error(&e)))
        .get(0)
}

/// The ids of a table's rows, distinct.
async fn ids(client: &Client, schema: &str, table: &str) -> BTreeSet<i64> {
    client
        .query(
            &format!(
                "SELECT DISTINCT id::bigint FROM {}",
                quote_qualified(schema, table)
            ),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("ids of {table}: {}", pg_error(&e)))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_avni_etl_schema_is_adopted_in_place_and_goes_on_incrementally() {
    let (avni, org, built) = taken_over().await;
    let owner = avni.owner().await;
    let schema = built.schema.as_str();
    let s = quote_ident(schema);
    // An implementer's dashboard view over avni-etl's table.
    avni.session(&org.db_user)
        .await
        .batch_execute(&format!(
            "CREATE VIEW {s}.my_people AS SELECT count(*) AS people, \
                    count(*) FILTER (WHERE latest_approval_status = 'Approved') AS approved \
               FROM {s}.person WHERE NOT is_voided"
        ))
        .await
        .expect("the implementer's view");

    // What avni-etl left: columns and types, row ids, its own columns'
    // values, its sync status rows.
    let mut before = BTreeMap::new();
    for t in built.form_tables() {
        let columns = physical_columns(&owner, schema, &t.name).await;
        let names: Vec<String> = t.column_names();
        assert_eq!(
            columns.keys().cloned().collect::<BTreeSet<_>>(),
            names.iter().cloned().collect::<BTreeSet<_>>(),
            "{} as avni-etl built it",
            t.name
        );
        for c in &t.columns {
            let expected = match pg_type(c.avni_type) {
                "serial" => "integer",
                other => other,
            };
            assert_eq!(columns[&c.name], expected, "{}.{}", t.name, c.name);
        }
        let rows = rows_on(&owner, schema, &t.name, &names).await;
        before.insert(
            t.name.clone(),
            (columns, rows, ids(&owner, schema, &t.name).await),
        );
    }
    let person_rows = count(&owner, &format!("SELECT count(*) FROM {s}.person")).await;
    assert_eq!(
        person_rows, 4,
        "3 subjects and avni-etl's equal-timestamp copy"
    );
    assert_eq!(
        count(
            &owner,
            &format!(
                "SELECT count(*) FROM {s}.person_maternal_anc WHERE \"Symptoms\" = 'Fever, Cough'"
            )
        )
        .await,
        1,
        "avni-etl's multi-select answer"
    );
    let sync_status: BTreeMap<i32, i32> = owner
        .query(
            "SELECT table_metadata_id, id FROM public.entity_sync_status WHERE schema_name = $1",
            &[&schema],
        )
        .await
        .expect("entity_sync_status")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(sync_status.len(), built.tables.len());

    // The first run adopts the schema.
    let first = run(&avni, &org).await;
    assert_eq!(first.tables_dropped, 0, "no RecreateSchema");
    // It goes on from avni-etl's watermarks: nothing changed since, so no
    // row is read again, except the address table's (its added columns,
    // a level's title and type, come from the source).
    for t in &first.tables {
        let expected = if t.name == "address" { 2 } else { 0 };
        assert_eq!(t.rows_upserted, expected, "{}: {:?}", t.name, first.tables);
    }
    assert_eq!(first.tables.len(), built.adopted_tables().count());

    // Names kept: the same tables under the same metadata ids, and no
    // other table made.
    let tables: BTreeMap<String, i32> = owner
        .query(
            "SELECT name, id FROM public.table_metadata WHERE schema_name = $1",
            &[&schema],
        )
        .await
        .expect("table_metadata")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected: BTreeMap<String, i32> = built
        .tables
        .iter()
        .map(|t| (t.name.clone(), t.id))
        .collect();
    assert_eq!(
        tables, expected,
        "every table kept, under its id, none added"
    );

    // No column voided or renamed; every avni-etl column keeps its type.
    let voided = count(
        &owner,
        &format!(
            "SELECT count(*) FROM public.column_metadata WHERE schema_name = {} \
             AND (concept_voided OR name LIKE 'voided\\_%')",
            service_kit::sql::quote_literal(schema)
        ),
    )
    .await;
    assert_eq!(voided, 0, "no column voided");
    for t in built.form_tables() {
        let (columns_before, rows_before, ids_before) = &before[&t.name];
        let after = physical_columns(&owner, schema, &t.name).await;
        for (name, ty) in columns_before {
            assert_eq!(
                after.get(name),
                Some(ty),
                "{}.{} kept as it was",
                t.name,
                name
            );
        }
        assert!(
            !after.keys().any(|c| c.starts_with("voided_")),
            "{}: {after:?}",
            t.name
        );
        // Rows kept: the same ids; each key once, under a primary key.
        assert_eq!(
            &ids(&owner, schema, &t.name).await,
            ids_before,
            "{}",
            t.name
        );
        assert_eq!(
            key_columns(&owner, schema, &t.name).await,
            vec!["id"],
            "{}",
            t.name
        );
        let n = count(
            &owner,
            &format!("SELECT count(*) FROM {}", quote_qualified(schema, &t.name)),
        )
        .await;
        assert_eq!(n as usize, ids_before.len(), "{}: one row per id", t.name);
        // Nothing in avni-etl's columns changed: the rows on them are
        // avni-etl's, less its duplicate copies.
        let mut distinct_before = rows_before.clone();
        distinct_before.dedup();
        let names = t.column_names();
        assert_eq!(
            &rows_on(&owner, schema, &t.name, &names).await,
            &distinct_before,
            "{}: avni-etl's columns as it left them",
            t.name
        );
    }
    // The service's own columns, filled for the rows avni-etl wrote.
    assert_eq!(
        count(
            &owner,
            &format!("SELECT count(*) FROM {s}.person WHERE created_by = 'admin@legacy'")
        )
        .await,
        3
    );
    assert_eq!(
        count(
            &owner,
            &format!(
                "SELECT count(*) FROM {s}.address WHERE title IS NOT NULL AND type IS NOT NULL"
            )
        )
        .await,
        2
    );

    // avni-etl's sync status rows are the watermarks: one per table, the
    // same row, moved on.
    let after: BTreeMap<i32, (i32, chrono::DateTime<chrono::Utc>)> = owner
        .query(
            "SELECT table_metadata_id, id, last_sync_time FROM public.entity_sync_status WHERE schema_name = $1",
            &[&schema],
        )
        .await
        .expect("entity_sync_status")
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    for t in built.form_tables() {
        let (id, synced) = after[&t.id];
        assert_eq!(
            id, sync_status[&t.id],
            "{}: avni-etl's row, not a second one",
            t.name
        );
        assert!(
            synced >= built.boundary,
            "{}: {synced} < {}",
            t.name,
            built.boundary
        );
    }
    let watermarks = count(
        &owner,
        &format!(
            "SELECT count(*) FROM etl_service.watermark w JOIN public.entity_sync_status s \
             ON s.id = w.entity_sync_status_id WHERE s.schema_name = {}",
            service_kit::sql::quote_literal(schema)
        ),
    )
    .await;
    assert_eq!(watermarks as usize, built.adopted_tables().count());

    // Dashboards: avni-etl's subject_view and the implementer's view.
    assert_eq!(
        count(&owner, &format!("SELECT count(*) FROM {s}.subject_view")).await,
        3
    );
    let people = owner
        .query_one(&format!("SELECT people, approved FROM {s}.my_people"), &[])
        .await
        .expect("my_people");
    assert_eq!((people.get::<_, i64>(0), people.get::<_, i64>(1)), (3, 3));

    // A later change arrives incrementally.
    let quiet = run(&avni, &org).await;
    assert_eq!(quiet.rows_upserted(), 0, "{:?}", quiet.tables);
    avni.session(&org.db_user)
        .await
        .batch_execute(
            "UPDATE public.individual SET observations = observations || \
                 jsonb_build_object(md5('legacy:concept:Weight')::uuid::text, 77), \
                 last_modified_date_time = date_trunc('milliseconds', now()) \
             WHERE uuid = md5('legacy:subject:2')::uuid::text",
        )
        .await
        .expect("a change in the source");
    let later = run(&avni, &org).await;
    let person = later
        .tables
        .iter()
        .find(|t| t.name == "person")
        .expect("person");
    assert_eq!(person.rows_upserted, 1, "{:?}", later.tables);
    assert_eq!(later.rows_upserted(), 1, "{:?}", later.tables);
    assert_eq!(
        count(
            &owner,
            &format!("SELECT count(*) FROM {s}.person WHERE \"Weight\" = 77")
        )
        .await,
        1
    );
    assert_eq!(
        count(&owner, &format!("SELECT people FROM {s}.my_people")).await,
        3
    );
    // avni-etl's own columns go on being filled: the changed row keeps its
    // users' ids and approval, and a subject registered after the
    // switch-over gets them too.
    let admin: i64 = owner
        .query_one(
            "SELECT id::bigint FROM public.users WHERE username = 'admin@legacy'",
            &[],
        )
        .await
        .expect("admin")
        .get(0);
    let changed = owner
        .query_one(
            &format!(
                "SELECT created_by_id::bigint, last_modified_by_id::bigint, latest_approval_status \
                 FROM {s}.person WHERE uuid = md5('legacy:subject:2')::uuid::text"
            ),
            &[],
        )
        .await
        .expect("the changed row");
    assert_eq!(
        (
            changed.get::<_, i64>(0),
            changed.get::<_, i64>(1),
            changed.get::<_, Option<String>>(2)
        ),
        (admin, admin, Some("Approved".to_string()))
    );
    avni.session(&org.db_user)
        .await
        .batch_execute(
            "INSERT INTO public.individual (uuid, address_id, observations, version, date_of_birth_verified, \
                 registration_date, organisation_id, first_name, last_name, subject_type_id, legacy_id, \
                 created_by_id, last_modified_by_id, created_date_time, last_modified_date_time) \
             SELECT md5('legacy:subject:new')::uuid, i.address_id, '{}'::jsonb, 0, false, date '2025-06-01', \
                 i.organisation_id, 'New', 'legacy', i.subject_type_id, 'L-42', i.created_by_id, i.created_by_id, \
                 date_trunc('milliseconds', now()), date_trunc('milliseconds', now()) \
             FROM public.individual i WHERE i.uuid = md5('legacy:subject:1')::uuid::text; \
             INSERT INTO public.entity_approval_status (uuid, entity_id, entity_type, approval_status_id, \
                 organisation_id, status_date_time, entity_type_uuid, individual_id, address_id, created_by_id, \
                 last_modified_by_id, created_date_time, last_modified_date_time) \
             SELECT md5('legacy:approval:new')::uuid, i.id, 'Subject', 1, i.organisation_id, now(), st.uuid, i.id, \
                 i.address_id, i.created_by_id, i.created_by_id, now(), now() \
             FROM public.individual i JOIN public.subject_type st ON st.id = i.subject_type_id \
             WHERE i.uuid = md5('legacy:subject:new')::uuid::text",
        )
        .await
        .unwrap_or_else(|e| panic!("a new subject: {}", pg_error(&e)));
    run(&avni, &org).await;
    let new = owner
        .query_one(
            &format!(
                "SELECT created_by_id::bigint, legacy_id, latest_approval_status, last_name, created_by \
                 FROM {s}.person WHERE uuid = md5('legacy:subject:new')::uuid::text"
            ),
            &[],
        )
        .await
        .expect("the new subject");
    assert_eq!(new.get::<_, Option<i64>>(0), Some(admin));
    assert_eq!(new.get::<_, Option<String>>(1).as_deref(), Some("L-42"));
    assert_eq!(new.get::<_, Option<String>>(2).as_deref(), Some("Pending"));
    assert_eq!(new.get::<_, Option<String>>(3).as_deref(), Some("legacy"));
    assert_eq!(
        new.get::<_, Option<String>>(4).as_deref(),
        Some("admin@legacy")
    );
    assert_eq!(
        count(&owner, &format!("SELECT count(*) FROM {s}.subject_view")).await,
        4
    );

    // Every table equals a fresh build, row for row, on every column the
    // fresh table has (all of which the adopted table has), values as
    // JSON (integer and bigint ids alike, a point as its text).
    let mut adopted = BTreeMap::new();
    for t in built.adopted_tables() {
        adopted.insert(t.name.clone(), rows_by_id(&owner, schema, &t.name).await);
    }
    engine::drop_schema(&context(&avni.owner_url), org_ref(&org), LockMode::Wait)
        .await
        .unwrap_or_else(|e| panic!("RecreateSchema's drop: {e}"));
    run(&avni, &org).await;
    for t in built.adopted_tables() {
        let fresh = rows_by_id(&owner, schema, &t.name).await;
        let columns: Vec<String> = physical_columns(&owner, schema, &t.name)
            .await
            .into_keys()
            .collect();
        assert!(columns.len() >= 10, "{}: {columns:?}", t.name);
        let was = &adopted[&t.name];
        assert_eq!(
            fresh.keys().collect::<Vec<_>>(),
            was.keys().collect::<Vec<_>>(),
            "{}: the same rows",
            t.name
        );
        for (id, row) in &fresh {
            for c in &columns {
                let adopted_row = &was[id];
                assert!(
                    adopted_row.get(c).is_some(),
                    "{}: the adopted table lacks the fresh build's {c}",
                    t.name
                );
                assert_eq!(
                    adopted_row.get(c),
                    row.get(c),
                    "{} row {id}: {c} differs from a fresh build",
                    t.name
                );
            }
        }
    }
}

/// Every row of a table as JSON, by id.
async fn rows_by_id(
    client: &Client,
    schema: &str,
    table: &str,
) -> BTreeMap<i64, serde_json::Map<String, serde_json::Value>> {
    client
        .query(
            &format!(
                "SELECT id::bigint, to_jsonb(t)::text FROM {} t",
                quote_qualified(schema, table)
            ),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("rows of {table}: {}", pg_error(&e)))
        .iter()
        .map(|r| {
            let row: serde_json::Value =
                serde_json::from_str(r.get::<_, &str>(1)).expect("json row");
            (r.get(0), row.as_object().cloned().unwrap_or_default())
        })
        .collect()
}

/// The real binary's `run-once` on `avni` as `openchs`, logging at info.
fn run_once(avni: &AvniServerDb, org: &AvniOrg) -> (bool, String) {
    let config = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("config file");
    std::fs::write(config.path(), "etl:\n  sync_offset_seconds: 0\n").expect("write config");
    let out = run_binary(
        &binary("etl-service", "etl-service"),
        &["run-once", "--organisation", &org.uuid],
        &[
            ("DATABASE_URL", &avni.owner_url),
            ("ETL_CONFIG", config.path().to_str().expect("utf-8 path")),
            ("RUST_LOG", "info"),
        ],
    );
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// End to end with the real binary: `run-once` adopts avni-etl's schema,
/// and a second finds nothing to do.
#[tokio::test(flavor = "multi_thread")]
async fn run_once_adopts_an_avni_etl_schema() {
    let (avni, org, _) = taken_over().await;
    let (ok, out) = run_once(&avni, &org);
    assert!(ok, "the takeover run failed: {out}");
    assert!(out.contains("got one"), "the key added is logged: {out}");
    let (ok, out) = run_once(&avni, &org);
    assert!(ok, "{out}");
    assert!(out.contains("0 created, 0 altered"), "{out}");
}

/// A sync that fails for a reason that is not an answer (here an
/// implementer's trigger refusing the write) fails naming that reason, and
/// the log says nothing of answers that cannot be read; before, any failure
/// of the upsert was first logged as one (the missing key of an avni-etl
/// table included).
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_that_is_not_an_answer_is_not_called_one() {
    let avni = AvniServerDb::new().await;
    let org = avni.create_organisation("legacy", None).await;
    avni.fill(&org, 2).await;
    service_kit::db::run_pending_migrations(&avni.owner_url, etl_service::migrations::migrations())
        .await
        .unwrap_or_else(|e| panic!("migrate: {e}"));
    let (ok, out) = run_once(&avni, &org);
    assert!(ok, "the first run failed: {out}");
    let owner = avni.owner().await;
    let s = quote_ident(&org.schema_name);
    owner
        .batch_execute(&format!(
            "CREATE FUNCTION {s}.refuse() RETURNS trigger LANGUAGE plpgsql AS \
             $f$ BEGIN RAISE EXCEPTION 'refused by the implementer''s trigger'; END $f$; \
             CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON {s}.person \
             FOR EACH ROW EXECUTE FUNCTION {s}.refuse()"
        ))
        .await
        .expect("the implementer's trigger");
    avni.session(&org.db_user)
        .await
        .batch_execute(
            "UPDATE public.individual SET last_modified_date_time = date_trunc('milliseconds', now()) \
             WHERE uuid = md5('legacy:subject:1')::uuid::text",
        )
        .await
        .expect("a change");
    let (ok, out) = run_once(&avni, &org);
    assert!(!ok, "the run must fail: {out}");
    assert!(
        out.contains("refused by the implementer's trigger"),
        "{out}"
    );
    assert!(
        !out.contains("be read as its column's type"),
        "misclassified: {out}"
    );
}

/// Deletes avni-etl's metadata rows of `schema` (its tables stay).
async fn forget_metadata(owner: &Client, schema: &str) {
    for sql in [
        "DELETE FROM public.entity_sync_status WHERE schema_name = $1",
        "DELETE FROM public.index_metadata WHERE table_metadata_id IN \
         (SELECT id FROM public.table_metadata WHERE schema_name = $1)",
        "DELETE FROM public.column_metadata WHERE schema_name = $1",
        "DELETE FROM public.table_metadata WHERE schema_name = $1",
    ] {
        owner
            .execute(sql, &[&schema])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {}", pg_error(&e)));
    }
}

/// avni-etl's metadata is what makes a schema adoptable. Without it, avni-etl's
/// tables in the organisation's own schema (owned by its db_user, as Avni
/// makes it) are someone else's objects: left exactly as they are (no key
/// added, no row touched), the reporting tables named otherwise. In a
/// schema another role owns, the run is refused and nothing is touched.
#[tokio::test(flavor = "multi_thread")]
async fn without_avni_etls_metadata_its_tables_are_not_adopted() {
    let (avni, org, built) = taken_over().await;
    let owner = avni.owner().await;
    let schema = built.schema.as_str();
    forget_metadata(&owner, schema).await;
    let person = built.table("Person");
    let rows_before = rows_on(&owner, schema, "person", &person.column_names()).await;

    run(&avni, &org).await;
    assert_eq!(
        rows_on(&owner, schema, "person", &person.column_names()).await,
        rows_before,
        "avni-etl's person table untouched"
    );
    assert!(key_columns(&owner, schema, "person").await.is_empty());
    let ours: String = owner
        .query_one(
            "SELECT name FROM public.table_metadata WHERE schema_name = $1 AND type = 'Person'",
            &[&schema],
        )
        .await
        .expect("the run's person table")
        .get(0);
    assert_ne!(ours, "person");

    // The same tables in a schema another role owns: refused.
    let (avni, org, built) = taken_over().await;
    let owner = avni.owner().await;
    forget_metadata(&owner, &built.schema).await;
    owner
        .batch_execute(&format!(
            "ALTER SCHEMA {} OWNER TO openchs",
            quote_ident(&built.schema)
        ))
        .await
        .expect("another owner");
    let err = engine::run_entity(
        &context(&avni.owner_url),
        org_ref(&org),
        &RunOptions::default(),
        &NoProgress,
    )
    .await
    .expect_err("a schema nothing describes, owned by another role, is refused");
    assert!(
        matches!(err, etl_service::Error::FailedPrecondition(_)),
        "{err}"
    );
    assert!(err.to_string().contains(&built.schema), "{err}");
    assert!(
        key_columns(&owner, &built.schema, "person")
            .await
            .is_empty()
    );
}

/// A row avni-etl left with no id cannot be kept under the primary key: the
/// run fails saying so and what to do, and changes nothing (no key, no
/// column, the duplicate copies still there); once the row is deleted the
/// next run adopts the schema.
#[tokio::test(flavor = "multi_thread")]
async fn a_row_with_no_id_fails_the_adoption_clearly_and_changes_nothing() {
    let (avni, org, built) = taken_over().await;
    let owner = avni.owner().await;
    let s = quote_ident(&built.schema);
    owner
        .batch_execute(&format!(
            "INSERT INTO {s}.person (uuid, first_name) VALUES ('no-id', 'Nobody')"
        ))
        .await
        .expect("a row with no id");
    let columns = physical_columns(&owner, &built.schema, "person").await;
    let err = engine::run_entity(
        &context(&avni.owner_url),
        org_ref(&org),
        &RunOptions::default(),
        &NoProgress,
    )
    .await
    .expect_err("a row with no id cannot be kept under a key");
    let message = err.to_string();
    assert!(
        matches!(err, etl_service::Error::FailedPrecondition(_)),
        "{message}"
    );
    assert!(
        message.contains("1 row(s) with no \"id\"") && message.contains("DELETE FROM"),
        "{message}"
    );
    assert!(
        key_columns(&owner, &built.schema, "person")
            .await
            .is_empty()
    );
    assert_eq!(
        physical_columns(&owner, &built.schema, "person").await,
        columns
    );
    assert_eq!(
        count(&owner, &format!("SELECT count(*) FROM {s}.person")).await,
        5,
        "3 subjects, avni-etl's copy, the row with no id"
    );

    owner
        .batch_execute(&format!("DELETE FROM {s}.person WHERE id IS NULL"))
        .await
        .expect("delete");
    run(&avni, &org).await;
    assert_eq!(
        key_columns(&owner, &built.schema, "person").await,
        vec!["id"]
    );
}

/// A group's schema avni-etl built (a parent and its child, sharing the
/// parent's forms; one `entity_sync_status` row per table per member): the
/// group's first run adopts it in place, each member going on from its own
/// watermark, and every table equals a fresh build.
#[tokio::test(flavor = "multi_thread")]
async fn a_groups_avni_etl_schema_is_adopted_with_each_members_watermarks() {
    let avni = AvniServerDb::new().await;
    let parent = avni.create_organisation("parent", None).await;
    let child = avni.create_organisation("child", Some(&parent)).await;
    avni.fill(&parent, 2).await;
    avni.fill(&child, 2).await;
    let group = avni
        .create_group("grp", vec![parent.clone(), child.clone()])
        .await;
    let built = avni_etl::build_group(&avni, &group).await;
    service_kit::db::run_pending_migrations(&avni.owner_url, etl_service::migrations::migrations())
        .await
        .unwrap_or_else(|e| panic!("migrate: {e}"));
    let owner = avni.owner().await;
    let schema = built.schema.as_str();
    let status_before: BTreeSet<i32> = owner
        .query(
            "SELECT id FROM public.entity_sync_status WHERE schema_name = $1",
            &[&schema],
        )
        .await
        .expect("entity_sync_status")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut ids_before = BTreeMap::new();
    for t in built.form_tables() {
        ids_before.insert(t.name.clone(), ids(&owner, schema, &t.name).await);
    }
    assert_eq!(ids_before["person"].len(), 4, "both members' subjects");

    let entity = EntityRef {
        uuid: group.uuid.parse().expect("uuid"),
        kind: EntityKind::OrganisationGroup,
    };
    let ctx = context(&avni.owner_url);
    let first = engine::run_entity(&ctx, entity, &RunOptions::default(), &NoProgress)
        .await
        .unwrap_or_else(|e| panic!("the group's run: {e}"));
    for t in &first.tables {
        if t.name != "address" {
            assert_eq!(t.rows_upserted, 0, "{}: {:?}", t.name, first.tables);
        }
    }
    let voided = count(
        &owner,
        &format!(
            "SELECT count(*) FROM public.column_metadata WHERE schema_name = {} \
             AND (concept_voided OR name LIKE 'voided\\_%')",
            service_kit::sql::quote_literal(schema)
        ),
    )
    .await;
    assert_eq!(voided, 0);
    for t in built.form_tables() {
        assert_eq!(
            ids(&owner, schema, &t.name).await,
            ids_before[&t.name],
            "{}",
            t.name
        );
        assert_eq!(
            key_columns(&owner, schema, &t.name).await,
            vec!["id"],
            "{}",
            t.name
        );
    }
    let status_after: BTreeSet<i32> = owner
        .query(
            "SELECT id FROM public.entity_sync_status WHERE schema_name = $1",
            &[&schema],
        )
        .await
        .expect("entity_sync_status")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(status_after, status_before, "each member's row, no new one");
    let linked = count(
        &owner,
        &format!(
            "SELECT count(*) FROM etl_service.watermark w JOIN public.entity_sync_status s \
             ON s.id = w.entity_sync_status_id WHERE s.schema_name = {}",
            service_kit::sql::quote_literal(schema)
        ),
    )
    .await;
    assert_eq!(linked as usize, 2 * built.adopted_tables().count());

    // Every table equals a fresh build.
    let mut adopted = BTreeMap::new();
    for t in built.form_tables() {
        adopted.insert(t.name.clone(), rows_by_id(&owner, schema, &t.name).await);
    }
    engine::drop_schema(&ctx, entity, LockMode::Wait)
        .await
        .unwrap_or_else(|e| panic!("RecreateSchema's drop: {e}"));
    engine::run_entity(&ctx, entity, &RunOptions::default(), &NoProgress)
        .await
        .unwrap_or_else(|e| panic!("the fresh build: {e}"));
    for t in built.form_tables() {
        let fresh = rows_by_id(&owner, schema, &t.name).await;
        let was = &adopted[&t.name];
        assert_eq!(
            fresh.keys().collect::<Vec<_>>(),
            was.keys().collect::<Vec<_>>(),
            "{}",
            t.name
        );
        for (id, row) in &fresh {
            for (c, value) in row {
                assert_eq!(
                    was[id].get(c),
                    Some(value),
                    "{} row {id}: {c} differs from a fresh build",
                    t.name
                );
            }
        }
    }
}
