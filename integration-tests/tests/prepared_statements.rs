//! `service_kit::prepared`: a query with constant text is prepared once per
//! connection and reused, where diesel's `sql_query` is parsed and planned
//! by PostgreSQL on every call. Checked in PostgreSQL's own view of the
//! connection's prepared statements.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use integration_tests::postgres::TestDatabase;
use service_kit::prepared::{Param, prepared};

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    v: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

const MARKED: &str = "SELECT $1 || '/' || $2::text || '/' || $1 AS v /* prepared-test */";

async fn prepared_like(conn: &mut AsyncPgConnection, what: &str) -> i64 {
    diesel::sql_query(
        "SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE '%' || $1 || '%' \
         AND statement NOT LIKE '%pg_prepared_statements%'",
    )
    .bind::<Text, _>(what)
    .get_result::<Count>(conn)
    .await
    .expect("pg_prepared_statements")
    .n
}

#[tokio::test]
async fn a_prepared_query_is_parsed_once_per_connection_and_answers_each_call() {
    let db = TestDatabase::new().await;
    let mut conn = AsyncPgConnection::establish(&db.url)
        .await
        .expect("connect");
    for i in 0..5 {
        let row: Row = prepared(MARKED)
            .bind_text(format!("a{i}"))
            .bind(Param::Int(i))
            .get_result(&mut conn)
            .await
            .expect("prepared query");
        assert_eq!(row.v, format!("a{i}/{i}/a{i}"), "binds of call {i}");
    }
    assert_eq!(
        prepared_like(&mut conn, "prepared-test").await,
        1,
        "five calls, one prepared statement"
    );

    // The same text through sql_query is never kept.
    for i in 0..3 {
        let row: Row = diesel::sql_query(
            "SELECT $1 || '/' || $2::text || '/' || $1 AS v /* unprepared-test */",
        )
        .bind::<Text, _>(format!("b{i}"))
        .bind::<diesel::sql_types::Integer, _>(i)
        .get_result(&mut conn)
        .await
        .expect("sql_query");
        assert_eq!(row.v, format!("b{i}/{i}/b{i}"));
    }
    assert_eq!(prepared_like(&mut conn, "unprepared-test").await, 0);
}

#[tokio::test]
async fn a_placeholder_without_a_value_is_an_error_not_a_panic() {
    let db = TestDatabase::new().await;
    let mut conn = AsyncPgConnection::establish(&db.url)
        .await
        .expect("connect");
    let result = prepared("SELECT $1 AS v, $2 AS w")
        .bind_text("only one")
        .get_result::<Row>(&mut conn)
        .await;
    match result {
        Err(e) => assert!(e.to_string().contains("$2 has no bound value"), "{e}"),
        Ok(row) => panic!("answered {:?} with a missing value", row.v),
    }
}
