//! Sub-forms as the real Drishti forms have them (issue 17, items 1 and 5):
//! a sub-form is mapped under its parent form, apart from the forms, so the
//! form `child_registration_oa` and pnc_registration_oa's sub-form
//! `child_registration_oa` (whose original table is
//! `pnc_registration_oa_child`) are both written; and the original
//! sub-form tables' `sub_form_name` column is filled.

use integration_tests::drishti_forms::{ENVELOPE_DDL, element, sub_form};
use integration_tests::fake_upstream::{Data, FakeUpstream};
use integration_tests::migrator::{PATIENCE, count, source, wait_for, watermark};
use integration_tests::services::start_migrator_on;
use migrator_service::config::FormMapping;
use std::collections::BTreeMap;

/// A serverVersion of 2015 (epoch ms).
const SV: i64 = 1_424_200_000_000;

/// The original migrator's tables for the two forms (its Liquibase
/// changelog: `pnc_registration_oa_child` has `sub_form_name` and a
/// foreign key `pnc_registration_oa_id`).
async fn original_tables(db: &tokio_postgres::Client) {
    db.batch_execute(&format!(
        "CREATE TABLE pnc_registration_oa ({ENVELOPE_DDL}, mother_id varchar(255), delivery_date date);
         CREATE TABLE pnc_registration_oa_child (
             id bigserial PRIMARY KEY, sub_form_name varchar(255), child_id varchar(255),
             gender varchar(255), weight numeric,
             pnc_registration_oa_id bigint REFERENCES pnc_registration_oa (id));
         CREATE TABLE child_registration_oa ({ENVELOPE_DDL}, child_id varchar(255), gender varchar(255));"
    ))
    .await
    .expect("the original tables");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_form_and_a_sub_form_of_the_same_name_are_both_written_with_sub_form_name() {
    let db = integration_tests::migrator::migrated_repository().await;
    let sql = db.client().await;
    original_tables(&sql).await;
    let mapping: BTreeMap<String, FormMapping> = serde_yaml::from_str(
        "pnc_registration_oa:\n  sub_forms:\n    child_registration_oa:\n      table: pnc_registration_oa_child\n      columns:\n        childWeight: weight\n",
    )
    .expect("a sub-form mapped under its parent form");
    let children = sub_form(
        "child_registration_oa",
        "child",
        &[
            &[("id", "c-1"), ("gender", "female"), ("childWeight", "2.9")],
            &[("id", "c-2"), ("gender", "male"), ("childWeight", "3.1")],
        ],
    );
    let upstream = FakeUpstream::start(Data::Elements(vec![
        element(
            "pnc-1",
            "pnc_registration_oa",
            SV,
            "mother",
            &[("id", "m-1"), ("deliveryDate", "2015-2-3")],
            vec![children],
        ),
        element(
            "child-1",
            "child_registration_oa",
            SV + 1,
            "child",
            &[("id", "c-9"), ("gender", "female")],
            vec![],
        ),
    ]))
    .await;
    let settings = source("drishti", &upstream, 100, 3600.0);
    let _service = start_migrator_on(&db.url, |c| {
        c.sources = vec![settings];
        c.form_mapping = mapping;
    })
    .await;
    wait_for("the page to be committed", PATIENCE, || async {
        watermark(&sql, "drishti").await == SV + 1
    })
    .await;
    let errors: Vec<String> = sql
        .query("SELECT failure_reason FROM error_audit", &[])
        .await
        .expect("errors")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(errors, Vec::<String>::new(), "nothing failed");
    assert_eq!(count(&sql, "pnc_registration_oa").await, 1);
    assert_eq!(count(&sql, "child_registration_oa").await, 1, "the form");
    let rows = sql
        .query(
            "SELECT c.sub_form_name, c.child_id, c.gender, c.weight::text, p.instance_id \
             FROM pnc_registration_oa_child c JOIN pnc_registration_oa p ON p.id = c.pnc_registration_oa_id \
             ORDER BY c.child_id",
            &[],
        )
        .await
        .expect("children");
    let rows: Vec<(Option<String>, String, String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                Some("child_registration_oa".to_string()),
                "c-1".to_string(),
                "female".to_string(),
                "2.9".to_string(),
                "pnc-1".to_string()
            ),
            (
                Some("child_registration_oa".to_string()),
                "c-2".to_string(),
                "male".to_string(),
                "3.1".to_string(),
                "pnc-1".to_string()
            ),
        ],
        "the sub-form's rows, sub_form_name filled, columns mapped under the parent"
    );
    let child: (String, String) = sql
        .query_one("SELECT child_id, gender FROM child_registration_oa", &[])
        .await
        .map(|r| (r.get(0), r.get(1)))
        .expect("the form's row");
    assert_eq!(child, ("c-9".to_string(), "female".to_string()));
}

#[test]
fn an_empty_name_in_a_sub_form_mapping_is_refused() {
    // Names inside a sub-form mapping must not be empty either.
    let mapping: Result<BTreeMap<String, FormMapping>, _> = serde_yaml::from_str(
        "pnc_registration_oa:\n  sub_forms:\n    child_registration_oa:\n      table: ''\n",
    );
    let mapping = mapping.expect("parses");
    let config = migrator_service::Config {
        form_mapping: mapping,
        ..Default::default()
    };
    let err = service_kit::config::ServiceConfig::validate(&config).expect_err("refused");
    assert!(
        err.contains("form_mapping[pnc_registration_oa].sub_forms[child_registration_oa]"),
        "{err}"
    );
}
