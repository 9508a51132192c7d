//! The one place identifiers are quoted. Identifiers cannot be bound as query
//! parameters, so every schema, table, column and role name that reaches SQL
//! goes through [`quote_ident`]; values are always bound, never spliced.

/// Quotes an identifier for PostgreSQL: wraps it in double quotes and doubles
/// any embedded double quote. NUL characters, which PostgreSQL cannot store in
/// an identifier, are dropped.
pub fn quote_ident(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for c in name.chars() {
        match c {
            '"' => quoted.push_str("\"\""),
            '\0' => {}
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Quotes a schema-qualified name: `"schema"."name"`.
pub fn quote_qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// Quotes a string literal for the few statements that cannot take bound
/// parameters (`COMMENT ON`, DDL defaults). Doubles single quotes; uses the
/// standard-conforming form, so backslashes are literal.
pub fn quote_literal(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        match c {
            '\'' => quoted.push_str("''"),
            '\0' => {}
            c => quoted.push(c),
        }
    }
    quoted.push('\'');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_plain_and_hostile_identifiers() {
        assert_eq!(quote_ident("person"), "\"person\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(
            quote_ident("x\"; DROP TABLE y; --"),
            "\"x\"\"; DROP TABLE y; --\""
        );
        assert_eq!(quote_ident("व्यक्ति"), "\"व्यक्ति\"");
        assert_eq!(quote_ident("nul\0byte"), "\"nulbyte\"");
        assert_eq!(quote_qualified("s", "t\""), "\"s\".\"t\"\"\"");
    }

    #[test]
    fn quotes_literals() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("back\\slash"), "'back\\slash'");
    }
}
