//! The README's "pointing a Drishti deployment at the service" path, in
//! process: the original migrator's table shapes (written from its
//! Liquibase changelog, `fixtures/drishti/original-tables/`) created from a
//! form-migrations directory at start-up (`migrations.apply_on_start`),
//! the original polling URL with its own query, the renames the original
//! made (tt_1, tt_2, tt_booster into `tt`; the sub-form
//! `child_registration` into `delivery_out_come_child_registration`), and a
//! field the table lacks left out and recorded.

use avni_proto::migrator::v1 as pb;
use integration_tests::drishti_forms::{element, sub_form};
use integration_tests::fake_upstream::{Data, FakeUpstream};
use integration_tests::migrator::{PATIENCE, count, source, wait_for, watermark};
use integration_tests::services::{TEST_TOKEN, start_migrator_on};
use migrator_service::config::FormMapping;
use std::collections::BTreeMap;

const SV: i64 = 1_424_200_000_000;

#[tokio::test(flavor = "multi_thread")]
async fn the_original_tables_from_a_form_migrations_directory_take_a_real_shaped_feed() {
    let db = integration_tests::migrator::bare_repository().await;
    let sql = db.client().await;
    let tt = |id: &str, form: &str, n: i64, dose: &str| {
        element(
            id,
            form,
            SV + n,
            "mother",
            &[
                ("id", "mother-1"),
                ("ttDose", dose),
                ("ttDate", "2015-2-3"),
                ("submissionDate", "Tue, 3 Feb 2015 10:00:00 GMT"),
            ],
            vec![],
        )
    };
    let children = sub_form(
        "child_registration",
        "child",
        &[
            &[("id", "c-1"), ("gender", "female"), ("weight", "2.5")],
            &[
                ("id", "c-2"),
                ("gender", "male"),
                ("weight", "2.9"),
                ("bfPostBirth", "yes"),
            ],
        ],
    );
    let upstream = FakeUpstream::start(Data::Elements(vec![
        tt("tt-1", "tt_1", 1, "tt1"),
        tt("tt-2", "tt_2", 2, "tt2"),
        tt("tt-3", "tt_booster", 3, "ttbooster"),
        element(
            "do-1",
            "delivery_outcome",
            SV + 4,
            "mother",
            &[
                ("id", "mother-1"),
                ("ecId", "ec-1"),
                ("deliveryPlace", "phc"),
                ("didWomanSurvive", "yes"),
            ],
            vec![children],
        ),
    ]))
    .await;
    let mut settings = source("drishti", &upstream, 2, 3600.0);
    settings.url = format!("{}?timestamp=0&batch-size=100", upstream.url());
    let mapping: BTreeMap<String, FormMapping> = serde_yaml::from_str(
        "tt_1: {table: tt}\ntt_2: {table: tt}\ntt_booster: {table: tt}\n\
         delivery_outcome:\n  sub_forms:\n    child_registration: {table: delivery_out_come_child_registration}\n",
    )
    .expect("the README's mapping");
    let directory = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/drishti/original-tables");
    let service = start_migrator_on(&db.url, |c| {
        c.sources = vec![settings];
        c.form_mapping = mapping;
        c.form_migrations.directory = Some(directory);
        c.migrations.apply_on_start = true;
    })
    .await;
    wait_for("the feed", PATIENCE, || async {
        watermark(&sql, "drishti").await == SV + 4
    })
    .await;
    assert_eq!(count(&sql, "error_audit").await, 0);
    assert_eq!(count(&sql, "form_migration").await, 2, "both files applied");
    let doses: Vec<(String, String)> = sql
        .query(
            "SELECT form_name, tt_dose FROM tt ORDER BY instance_id",
            &[],
        )
        .await
        .expect("tt")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        doses,
        vec![
            ("tt_1".to_string(), "tt1".to_string()),
            ("tt_2".to_string(), "tt2".to_string()),
            ("tt_booster".to_string(), "ttbooster".to_string()),
        ]
    );
    let children: Vec<(Option<String>, String)> = sql
        .query(
            "SELECT sub_form_name, child_id FROM delivery_out_come_child_registration ORDER BY child_id",
            &[],
        )
        .await
        .expect("children")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        children,
        vec![
            (Some("child_registration".to_string()), "c-1".to_string()),
            (Some("child_registration".to_string()), "c-2".to_string()),
        ]
    );
    let mut client =
        avni_proto::migrator::v1::forms_migrator_client::FormsMigratorClient::with_interceptor(
            service.channel().await,
            integration_tests::services::Bearer::new(Some(TEST_TOKEN)),
        );
    let mut fields: Vec<(String, String)> = client
        .list_unmapped_fields(pb::ListUnmappedFieldsRequest::default())
        .await
        .expect("ListUnmappedFields")
        .into_inner()
        .fields
        .into_iter()
        .map(|f| (f.field_name, f.column_name))
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        vec![
            ("bfPostBirth".to_string(), "bf_post_birth".to_string()),
            (
                "didWomanSurvive".to_string(),
                "did_woman_survive".to_string()
            ),
        ]
    );
}
