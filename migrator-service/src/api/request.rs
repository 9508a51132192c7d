//! Parsing gRPC requests into domain types, in one place: every field a
//! caller sends is checked here (well formed, within bounds) and a bad one
//! is an `InvalidArgument` whose message names the field, so the handlers in
//! [`crate::api::handlers`] stay thin and no unchecked text reaches SQL (PostgreSQL
//! text cannot hold NUL: a bound NUL is a database error, not a filter).

use crate::error::Error;
use crate::repository::audits::Page;
use service_kit::request::Paging;
use service_kit::request::shorten;

/// Rows per page when the request does not say.
pub const DEFAULT_PAGE_SIZE: i64 = 50;
/// Most rows per page.
pub const MAX_PAGE_SIZE: i64 = 1000;
/// How the listings page: tokens are the id the next page starts below.
const PAGING: Paging = Paging {
    default_size: DEFAULT_PAGE_SIZE,
    max_size: MAX_PAGE_SIZE,
    token_prefix: "",
};
/// Most characters of a source or form name filter.
pub const MAX_NAME_CHARS: usize = 1000;
/// Most error ids of one ReprocessErrors call.
pub const MAX_ERROR_IDS: usize = 10_000;

fn invalid(message: String) -> Error {
    Error::InvalidArgument(message)
}

/// A name filter (the field `field`): `None` when empty ("every").
pub fn name_filter<'a>(field: &str, value: &'a str) -> Result<Option<&'a str>, Error> {
    if value.is_empty() {
        return Ok(None);
    }
    let chars = value.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(invalid(format!(
            "{field} is {chars} characters long; at most {MAX_NAME_CHARS}"
        )));
    }
    if value.contains('\0') {
        return Err(invalid(format!(
            "{field} {:?} contains a NUL character, which no name can hold",
            shorten(value, 80)
        )));
    }
    Ok(Some(value))
}

/// The `source` field of a request, when set, must name a configured
/// source: NOT_FOUND (listing the configured ones) otherwise.
pub fn source<'a>(value: &'a str, configured: &[&str]) -> Result<Option<&'a str>, Error> {
    let Some(name) = name_filter("source", value)? else {
        return Ok(None);
    };
    if configured.contains(&name) {
        Ok(Some(name))
    } else {
        Err(Error::NotFound(format!(
            "source {:?} is not configured; configured sources: {}",
            shorten(name, 80),
            if configured.is_empty() {
                "none".to_string()
            } else {
                configured.join(", ")
            }
        )))
    }
}

/// Reads `page_size` and `page_token` (the id the next page starts below).
pub fn page(page_size: i32, token: &str) -> Result<Page, Error> {
    let (limit, before_id) = PAGING.parse(page_size, token).map_err(invalid)?;
    Ok(Page { before_id, limit })
}

/// The `error_ids` of ReprocessErrors: positive, and not unboundedly many.
pub fn error_ids(ids: Vec<i64>) -> Result<Vec<i64>, Error> {
    if ids.len() > MAX_ERROR_IDS {
        return Err(invalid(format!(
            "error_ids holds {} ids; at most {MAX_ERROR_IDS} per call (page through ListErrors)",
            ids.len()
        )));
    }
    if let Some((i, bad)) = ids.iter().enumerate().find(|(_, id)| **id <= 0) {
        return Err(invalid(format!(
            "error_ids[{i}] is {bad}, which is not an error id (ids are positive)"
        )));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_checked() {
        assert!(matches!(page(-1, ""), Err(Error::InvalidArgument(_))));
        assert!(matches!(page(10, "abc"), Err(Error::InvalidArgument(_))));
        assert!(matches!(page(10, "-5"), Err(Error::InvalidArgument(_))));
        let p = page(0, "").expect("defaults");
        assert_eq!((p.before_id, p.limit), (None, DEFAULT_PAGE_SIZE));
        let p = page(5000, "42").expect("clamped");
        assert_eq!((p.before_id, p.limit), (Some(42), MAX_PAGE_SIZE));
    }

    #[test]
    fn names_and_ids_are_checked() {
        assert_eq!(source("", &["a"]).expect("every"), None);
        assert_eq!(source("a", &["a"]).expect("known"), Some("a"));
        let err = source("b", &["a"]).expect_err("unknown");
        assert!(matches!(err, Error::NotFound(_)));
        assert!(err.to_string().contains("source \"b\""), "{err}");
        let huge = "x".repeat(1 << 20);
        let err = source(&huge, &["a"]).expect_err("huge");
        assert!(err.to_string().len() < 200, "{err}");
        assert!(name_filter("form_name", "a\0b").is_err());
        assert!(
            error_ids(vec![1, 0])
                .expect_err("zero")
                .to_string()
                .contains("error_ids[1]")
        );
        assert!(error_ids(vec![1; MAX_ERROR_IDS + 1]).is_err());
    }
}
