//! Generated SQL with its values bound, never spliced: a statement text that
//! refers to `$n` placeholders, and the list of values to bind to them.
//! Identifiers are quoted with `service_kit::sql::quote_ident`; values go
//! through [`Statement::bind`].

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::BoxedSqlQuery;
use diesel::query_builder::SqlQuery;
use diesel::sql_types::{Array, Integer, Text, Timestamptz};
use std::collections::HashMap;

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    Text(String),
    Int(i32),
    IntArray(Vec<i32>),
    Time(DateTime<Utc>),
}

/// A statement under construction.
#[derive(Debug, Default)]
pub struct Statement {
    text: String,
    values: Vec<Value>,
    positions: HashMap<Value, usize>,
}

impl Statement {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends SQL text (keywords, quoted identifiers, placeholders).
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.text.push_str(sql);
        self
    }

    /// The placeholder for `value`, binding it once however often it is
    /// used.
    pub fn bind(&mut self, value: Value) -> String {
        if let Some(i) = self.positions.get(&value) {
            return format!("${i}");
        }
        self.values.push(value.clone());
        let i = self.values.len();
        self.positions.insert(value, i);
        format!("${i}")
    }

    pub fn bind_text(&mut self, value: &str) -> String {
        self.bind(Value::Text(value.to_string()))
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The diesel query with every value bound.
    pub fn into_query(self) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
        let mut query = diesel::sql_query(self.text).into_boxed::<Pg>();
        for value in self.values {
            query = match value {
                Value::Text(v) => query.bind::<Text, _>(v),
                Value::Int(v) => query.bind::<Integer, _>(v),
                Value::IntArray(v) => query.bind::<Array<Integer>, _>(v),
                Value::Time(v) => query.bind::<Timestamptz, _>(v),
            };
        }
        query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_each_value_once() {
        let mut s = Statement::new();
        let a = s.bind_text("x");
        let b = s.bind(Value::Int(3));
        let c = s.bind_text("x");
        s.push(&format!("SELECT {a}, {b}, {c}"));
        assert_eq!(s.text(), "SELECT $1, $2, $1");
        assert_eq!(s.values.len(), 2);
    }
}
