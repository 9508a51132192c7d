//! A realistic feed over every real Drishti form (issue 17's closing
//! drain): submissions of all 32 forms of the app and their sub-forms,
//! generated from the forms' real fields (`drishti_feed`) with the quirks
//! real data has, served by the fake upstream as exact text, drained by the
//! migrator into the shipped migration set (`forms/drishti/`, applied by the
//! real binary's `migrate` with the README's two config keys). Nothing fails
//! but the deliberate ones, each with its reason; no field of today's forms
//! lands unmapped; quirky values are stored as they must be. The per-form
//! table is printed (`--nocapture`).

use integration_tests::binaries::{binary, run_binary};
use integration_tests::drishti_feed::{real_forms, realistic_feed};
use integration_tests::fake_upstream::{Data, FakeUpstream};
use integration_tests::migrator::{
    count, shipped_drishti_mapping, shipped_drishti_migrations, source, wait_for, watermark,
};
use integration_tests::postgres::TestDatabase;
use integration_tests::services::start_migrator_on;
use service_kit::sql::quote_ident;
use std::collections::BTreeMap;
use std::time::Duration;

const ROUNDS: usize = 8;

#[tokio::test(flavor = "multi_thread")]
async fn a_realistic_feed_of_every_real_form_lands_in_the_shipped_tables() {
    let feed = realistic_feed(ROUNDS, 17);
    let db = TestDatabase::new().await;

    // The README's deployment steps: the two keys, then `migrate`.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("migrator.yaml");
    std::fs::write(
        &config,
        format!(
            "form_migrations:\n  directory: {}\nform_mapping_file: {}\n",
            shipped_drishti_migrations().display(),
            shipped_drishti_mapping().display()
        ),
    )
    .expect("config");
    let out = run_binary(
        &binary("migrator-service", "migrator-service"),
        &["--config", &config.to_string_lossy(), "migrate"],
        &[("DATABASE_URL", db.url.as_str())],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "migrate: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("33 applied now (0001_anc_close.sql,"),
        "{stdout}"
    );

    let upstream = FakeUpstream::start(Data::Raw(feed.elements.clone())).await;
    let _service = start_migrator_on(&db.url, |c| {
        c.sources = vec![source("drishti", &upstream, 20, 3600.0)];
        c.form_migrations.directory = Some(shipped_drishti_migrations());
        c.form_mapping_file = Some(shipped_drishti_mapping());
    })
    .await;
    let sql = db.client().await;
    wait_for("the whole feed", Duration::from_secs(120), || async {
        watermark(&sql, "drishti").await == feed.last_server_version
    })
    .await;

    // Rows per form (a table may hold several forms: tt).
    let forms = real_forms();
    let mut written: BTreeMap<String, i64> = BTreeMap::new();
    let tables: std::collections::BTreeSet<&str> = forms.iter().map(|f| f.table.as_str()).collect();
    for table in &tables {
        for row in sql
            .query(
                &format!(
                    "SELECT form_name::text, count(*) FROM {} GROUP BY 1",
                    quote_ident(table)
                ),
                &[],
            )
            .await
            .expect("rows per form")
        {
            written.insert(row.get(0), row.get(1));
        }
    }
    let failures: Vec<(String, String, String)> = sql
        .query(
            "SELECT instance_id, form_name, failure_reason FROM error_audit ORDER BY id",
            &[],
        )
        .await
        .expect("error_audit")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let failed = |form: &str| failures.iter().filter(|f| f.1 == form).count();

    println!(
        "\n{:<28} {:<38} {:>5} {:>8} {:>9} {:>7}",
        "form", "table", "sent", "written", "sub-rows", "failed"
    );
    let mut sub_rows_of: BTreeMap<String, i64> = BTreeMap::new();
    for f in &forms {
        for s in &f.sub_forms {
            sub_rows_of.insert(s.table.clone(), count(&sql, &quote_ident(&s.table)).await);
        }
    }
    for f in &forms {
        let subs: Vec<String> = f
            .sub_forms
            .iter()
            .map(|s| format!("{}", sub_rows_of[&s.table]))
            .collect();
        println!(
            "{:<28} {:<38} {:>5} {:>8} {:>9} {:>7}",
            f.form,
            f.table,
            feed.sent.get(&f.form).copied().unwrap_or(0),
            written.get(&f.form).copied().unwrap_or(0),
            if subs.is_empty() {
                "-".to_string()
            } else {
                subs.join("+")
            },
            failed(&f.form)
        );
    }
    for d in &feed.deliberate {
        if !forms.iter().any(|f| f.form == d.form_name) {
            println!(
                "{:<28} {:<38} {:>5} {:>8} {:>9} {:>7}",
                d.form_name,
                "(none)",
                1,
                0,
                "-",
                failed(&d.form_name)
            );
        }
    }
    println!("quirks sent: {:?}", feed.quirks);
    for (id, form, reason) in &failures {
        println!("error_audit: {form} {id}: {reason}");
    }

    for f in &forms {
        assert_eq!(
            written.get(&f.form).copied().unwrap_or(0),
            feed.form_rows.get(&f.form).copied().unwrap_or(0),
            "rows of {} in {}",
            f.form,
            f.table
        );
    }
    for (table, rows) in &feed.sub_form_rows {
        assert_eq!(sub_rows_of[table], *rows, "sub-form rows in {table}");
    }
    // Only the deliberate failures, each with its reason.
    assert_eq!(
        failures.len(),
        feed.deliberate.len(),
        "error_audit holds the deliberate failures only: {failures:#?}"
    );
    for d in &feed.deliberate {
        let Some((_, form, reason)) = failures.iter().find(|f| f.0 == d.instance_id) else {
            panic!("{} ({}) did not fail", d.instance_id, d.form_name);
        };
        assert_eq!(form, &d.form_name);
        assert!(
            reason.starts_with(&d.reason),
            "{}: {reason:?} should start with {:?}",
            d.form_name,
            d.reason
        );
    }
    assert_eq!(
        count(&sql, "unmapped_field").await,
        0,
        "every field today's forms send has a column in the shipped set"
    );
    // Sub-form rows carry their sub-form's name.
    for table in sub_rows_of.keys() {
        assert_eq!(
            integration_tests::migrator::scalar(
                &sql,
                &format!(
                    "SELECT count(*) FROM {} WHERE sub_form_name IS NULL",
                    quote_ident(table)
                )
            )
            .await,
            0,
            "sub_form_name filled in {table}"
        );
    }
    // Quirky values stored as they must be.
    assert!(feed.probes.len() >= 10, "{:?}", feed.probes);
    for p in &feed.probes {
        let stored: Option<String> = sql
            .query_one(
                &format!(
                    "SELECT {}::text FROM {} WHERE instance_id = $1",
                    quote_ident(&p.column),
                    quote_ident(&p.table)
                ),
                &[&p.instance_id],
            )
            .await
            .unwrap_or_else(|e| panic!("{p:?}: {e}"))
            .get(0);
        println!(
            "probe: {} {:?} -> {}.{} = {stored:?}",
            p.quirk, p.sent, p.table, p.column
        );
        assert_eq!(stored, p.stored, "{p:?}");
    }
}
