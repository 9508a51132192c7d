//! Constant-text queries that stay prepared on each connection.
//!
//! diesel never caches a `sql_query` as a prepared statement, so PostgreSQL
//! parses and plans it again on every call. For the small reads behind the
//! polled RPCs (GetJob, GetStatus) that is most of their cost: measured with
//! pgbench on GetJob's four reads, 0.86 ms a call unprepared against 0.22 ms
//! prepared. A [`Prepared`] query has constant text, so diesel-async keeps
//! it in the connection's statement cache (keyed by its text) and each later
//! call only binds and executes.
//!
//! The text uses `$1`, `$2`, ... for its parameters, as in `sql_query`; a
//! parameter may appear more than once. It must not contain dollar quotes.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Integer, Text, Untyped};
use diesel::{QueryResult, result::Error};

/// A parameter value of a [`Prepared`] query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    Text(String),
    Uuid(uuid::Uuid),
    Int(i32),
    BigInt(i64),
}

/// A query with constant text and bound parameters, loaded like a
/// `sql_query` (into `QueryableByName` rows) but prepared once per
/// connection.
#[derive(Debug, Clone)]
#[must_use = "a query does nothing until it is run"]
pub struct Prepared {
    text: &'static str,
    params: Vec<Param>,
}

/// A query with the constant `text`; bind `$1`, `$2`, ... in order with
/// [`Prepared::bind`].
pub fn prepared(text: &'static str) -> Prepared {
    Prepared {
        text,
        params: Vec::new(),
    }
}

impl Prepared {
    /// Binds the next parameter (`$1` first).
    pub fn bind(mut self, value: Param) -> Self {
        self.params.push(value);
        self
    }

    pub fn bind_text(self, value: impl Into<String>) -> Self {
        self.bind(Param::Text(value.into()))
    }

    pub fn bind_uuid(self, value: uuid::Uuid) -> Self {
        self.bind(Param::Uuid(value))
    }
}

impl QueryFragment<Pg> for Prepared {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        // Each `$n` of the text becomes a bind of parameter n (diesel writes
        // the placeholders itself, numbering them in order).
        let mut rest = self.text;
        while let Some(at) = rest.find('$') {
            let digits = rest[at + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            if digits == 0 {
                out.push_sql(&rest[..=at]);
                rest = &rest[at + 1..];
                continue;
            }
            out.push_sql(&rest[..at]);
            let number = &rest[at + 1..at + 1 + digits];
            let param = number
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| self.params.get(i))
                .ok_or_else(|| {
                    Error::QueryBuilderError(
                        format!(
                            "${number} has no bound value ({} bound) in: {}",
                            self.params.len(),
                            self.text
                        )
                        .into(),
                    )
                })?;
            match param {
                Param::Text(v) => out.push_bind_param::<Text, _>(v)?,
                Param::Uuid(v) => out.push_bind_param::<diesel::sql_types::Uuid, _>(v)?,
                Param::Int(v) => out.push_bind_param::<Integer, _>(v)?,
                Param::BigInt(v) => out.push_bind_param::<BigInt, _>(v)?,
            }
            rest = &rest[at + 1 + digits..];
        }
        out.push_sql(rest);
        Ok(())
    }
}

/// No static id: diesel's statement cache then keys the statement by its
/// text (and bind types), which is constant.
impl QueryId for Prepared {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Prepared {
    type SqlType = Untyped;
}

impl<Conn> diesel::RunQueryDsl<Conn> for Prepared {}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql_of(q: &Prepared) -> String {
        diesel::debug_query::<Pg, _>(q).to_string()
    }

    #[test]
    fn each_placeholder_becomes_a_bind_in_order() {
        let q = prepared("SELECT a FROM t WHERE b = $2 AND c = $1 OR d = $1")
            .bind_text("x")
            .bind(Param::Int(7));
        let sql = sql_of(&q);
        assert!(
            sql.starts_with("SELECT a FROM t WHERE b = $1 AND c = $2 OR d = $3"),
            "{sql}"
        );
        assert!(sql.contains(r#"binds: [7, "x", "x"]"#), "{sql}");
    }

    #[test]
    fn a_dollar_without_digits_is_text() {
        let q = prepared("SELECT '$' || $1").bind_text("y");
        assert!(sql_of(&q).starts_with("SELECT '$' || $1"), "{}", sql_of(&q));
    }

    #[test]
    fn a_missing_value_is_an_error_naming_the_placeholder() {
        let q = prepared("SELECT $1, $2").bind_text("only one");
        let mut sql = String::new();
        let mut builder = diesel::pg::PgQueryBuilder::default();
        let err = QueryFragment::<Pg>::to_sql(&q, &mut builder, &Pg);
        if let Err(e) = err {
            sql.push_str(&e.to_string());
        }
        assert!(sql.contains("$2 has no bound value (1 bound)"), "{sql}");
    }

    #[test]
    fn is_safe_to_cache() {
        let q = prepared("SELECT $1").bind_text("z");
        assert!(
            QueryFragment::<Pg>::is_safe_to_cache_prepared(&q, &Pg).expect("walks"),
            "diesel would parse it every time"
        );
    }
}
