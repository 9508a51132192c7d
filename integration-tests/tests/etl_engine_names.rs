//! Hostile names (quotes, semicolons, Hindi, leading digits, 100+
//! characters, reserved words, names sharing their first six or twenty
//! characters, punctuation only) give distinct, valid tables and columns,
//! no SQL error, and the same names on a second run and on a fresh build.

use etl_service::engine::schema::naming::MAX_IDENTIFIER_BYTES;
use etl_service::engine::schema::schema_diff::TableChange;
use integration_tests::avni::Spec;
use integration_tests::etl::EtlFixture;
use std::collections::{BTreeMap, BTreeSet};
use tokio_postgres::Client;

fn hostile() -> Spec {
    Spec {
        seed: 99,
        hostile: true,
        ..Spec::default()
    }
}

/// Table name -> column names, from the metadata.
async fn described(client: &Client, schema: &str) -> BTreeMap<String, Vec<String>> {
    let mut all: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in client
        .query(
            "SELECT t.name, c.name FROM table_metadata t JOIN column_metadata c ON c.table_id = t.id \
             JOIN etl_service.column_metadata_ext x ON x.column_metadata_id = c.id \
             WHERE t.schema_name = $1 ORDER BY t.name, x.display_order",
            &[&schema],
        )
        .await
        .expect("metadata")
    {
        all.entry(r.get(0)).or_default().push(r.get(1));
    }
    all
}

/// Table name -> column names, as PostgreSQL has them.
async fn actual(client: &Client, schema: &str) -> BTreeMap<String, Vec<String>> {
    let mut all: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in client
        .query(
            "SELECT c.relname::text, a.attname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
             WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY c.relname, a.attnum",
            &[&schema],
        )
        .await
        .expect("catalog")
    {
        all.entry(r.get(0)).or_default().push(r.get(1));
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_names_give_distinct_valid_stable_tables_and_columns() {
    let f = EtlFixture::new(&hostile()).await;
    let org = f.org(0).clone();
    let client = &f.client;
    let s = org.schema_name.as_str();
    assert!(
        s.contains('"') && s.contains(';'),
        "the schema name is hostile too"
    );

    let first = f.run_org(&org).await;
    let tables = described(client, s).await;
    assert_eq!(tables.len(), first.tables.len());
    assert_eq!(
        tables,
        actual(client, s).await,
        "the metadata describes the schema exactly: no name was truncated or lost"
    );
    for (table, columns) in &tables {
        assert!(
            !table.is_empty() && table.len() <= MAX_IDENTIFIER_BYTES,
            "{table}"
        );
        let distinct: BTreeSet<&String> = columns.iter().collect();
        assert_eq!(distinct.len(), columns.len(), "{table}: {columns:?}");
        assert!(columns.iter().all(|c| c.len() <= MAX_IDENTIFIER_BYTES));
    }

    let names: Vec<&str> = tables.keys().map(String::as_str).collect();
    let has = |pred: &dyn Fn(&str) -> bool, what: &str| {
        assert!(
            names.iter().any(|n| pred(n)),
            "no table {what} in {names:#?}"
        );
    };
    // Unicode kept; quotes and semicolons dropped from table names.
    has(&|n| n == "व्यक्ति", "named in Hindi");
    has(
        &|n| n == "person_quoted_drop_table_individual",
        "for the quoted person",
    );
    has(&|n| n == "1st_household", "with a leading digit");
    has(&|n| n == "select", "named by a reserved word");
    has(
        &|n| n == "1st_household_home_visit_delete_from_users",
        "with a semicolon name",
    );
    has(
        &|n| n == "person_quoted_drop_table_individual_maternity_child_care",
        "for the second program",
    );
    // The 100-character program: every table shortened on character
    // boundaries with a hash, and all distinct.
    let is_hash = |n: &str| {
        n.len() > 9
            && n.as_bytes()[n.len() - 9] == b'_'
            && n[n.len() - 8..].chars().all(|c| c.is_ascii_hexdigit())
    };
    let shortened: Vec<&&str> = names
        .iter()
        .filter(|n| n.starts_with("person_quot") && n.contains("maternal") && is_hash(n))
        .collect();
    assert!(shortened.len() >= 6, "{shortened:?} {names:#?}");
    // The two encounter types sharing their first twenty characters (the
    // reference system's trim would merge them) keep separate tables.
    let trimesters: Vec<&&str> = names
        .iter()
        .filter(|n| n.contains("antenatal_car") && !n.contains("cancel") && !n.contains("children"))
        .collect();
    assert_eq!(trimesters.len(), 2, "{names:#?}");
    // A name of punctuation only still gets a stable, valid table.
    has(
        &|n| n.starts_with("select_x") && n.len() == "select_x".len() + 8,
        "for `!!! ???`",
    );

    let person = &tables["person_quoted_drop_table_individual"];
    for column in [
        "Weight kg",
        "ID",
        "Symptoms'; DROP TABLE concept; --",
        "रक्त समूह",
        "select",
    ] {
        assert!(
            person.iter().any(|c| c == column),
            "{column} missing: {person:?}"
        );
    }
    // Concepts named like fixed columns get their own column.
    assert!(person.iter().filter(|c| c.starts_with("id")).count() >= 2);
    assert!(person.iter().any(|c| c.starts_with("uuid_")));
    // Two long concept names sharing their first 63 bytes stay apart.
    let photos: Vec<&String> = person
        .iter()
        .filter(|c| c.starts_with("Photograph of the beneficiary"))
        .collect();
    assert_eq!(photos.len(), 2, "{person:?}");

    // Coded answers with hostile names come through as they are.
    let symptoms: Vec<Option<String>> = client
        .query(
            &format!(
                "SELECT {} FROM {}.{} ORDER BY id",
                service_kit::sql::quote_ident("Symptoms'; DROP TABLE concept; --"),
                service_kit::sql::quote_ident(s),
                service_kit::sql::quote_ident("person_quoted_drop_table_individual")
            ),
            &[],
        )
        .await
        .expect("read symptoms")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(symptoms.len(), 12);
    assert!(
        symptoms.iter().flatten().any(|v| v.contains("बुखार")),
        "{symptoms:?}"
    );

    // Second run: same names, nothing created, nothing written.
    let second = f.run_org(&org).await;
    assert!(
        second
            .tables
            .iter()
            .all(|t| t.change == TableChange::Unchanged)
    );
    assert_eq!(second.rows_upserted(), 0);
    assert_eq!(described(client, s).await, tables);

    // What ValidateNames reports for this organisation: the planned names
    // are the tables' names, with the findings a person should see.
    let (_, plan) = etl_service::engine::plan_entity(&f.ctx, integration_tests::etl::org_ref(&org))
        .await
        .expect("plan");
    let planned: BTreeSet<String> = plan.tables.iter().map(|t| t.name.clone()).collect();
    assert_eq!(planned, tables.keys().cloned().collect::<BTreeSet<_>>());
    let problems = etl_service::engine::schema::name_check::check_plan(&plan);
    use etl_service::engine::schema::name_check::ProblemKind::*;
    for kind in [
        Shortened,
        EmptyAfterNormalisation,
        ReferenceNonAscii,
        ReferenceCollision,
    ] {
        assert!(
            problems.iter().any(|p| p.kind == kind),
            "no {kind:?} finding in {problems:#?}"
        );
    }

    // The pair the reference system would put in one table.
    assert!(
        problems.iter().any(|p| p.kind == ReferenceCollision
            && p.names.iter().any(|n| n.contains("first trimester"))
            && p.names.iter().any(|n| n.contains("second trimester"))),
        "{problems:#?}"
    );

    // A fresh build elsewhere gives the same names.
    let g = EtlFixture::new(&hostile()).await;
    g.run_org(g.org(0)).await;
    assert_eq!(described(&g.client, s).await, tables);
}
