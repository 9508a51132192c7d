use integration_tests::avni::Spec;
use integration_tests::etl::{EtlFixture, snapshot};

#[tokio::test(flavor = "multi_thread")]
async fn smoke() {
    let f = EtlFixture::new(&Spec::default()).await;
    let org = f.org(0).clone();
    let report = f.run_org(&org).await;
    for t in &report.tables {
        eprintln!(
            "{} {:?} {} {}",
            t.name, t.change, t.rows_upserted, t.rows_deleted
        );
    }
    let snap = snapshot(&f.client, &org.schema_name).await;
    for (name, rows) in &snap {
        eprintln!(
            "{name}: {} rows; first: {}",
            rows.len(),
            rows.first().map(|r| r.to_string()).unwrap_or_default()
        );
    }
    let again = f.run_org(&org).await;
    assert_eq!(again.rows_upserted(), 0);
}
