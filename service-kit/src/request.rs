//! Request checks both services' gRPC parsing shares: paging and echoing a
//! caller's value back in an error message. Each service turns the message
//! into its own `InvalidArgument`.

/// A value cut to `max` characters for an error message, so a 1 MB field is
/// not echoed back (a status message travels as an HTTP/2 header).
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!(
            "{}… ({} bytes)",
            s.chars().take(max).collect::<String>(),
            s.len()
        )
    }
}

/// How a list RPC pages: its default and largest page, and the prefix of
/// the tokens it hands out (`before-<id>`, or none: `<id>`).
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    pub default_size: i64,
    pub max_size: i64,
    pub token_prefix: &'static str,
}

impl Paging {
    /// Reads `page_size` (0: the default; larger than the largest: the
    /// largest) and `page_token` (empty: the first page) into the page's
    /// size and the id it starts below; the error names the field.
    pub fn parse(&self, page_size: i32, token: &str) -> Result<(i64, Option<i64>), String> {
        let size = match i64::from(page_size) {
            n if n < 0 => return Err(format!("page_size must not be negative, got {n}")),
            0 => self.default_size,
            n => n.min(self.max_size),
        };
        if token.is_empty() {
            return Ok((size, None));
        }
        token
            .strip_prefix(self.token_prefix)
            .and_then(|id| id.parse::<i64>().ok())
            .filter(|id| *id > 0)
            .map(|id| (size, Some(id)))
            .ok_or_else(|| {
                format!(
                    "page_token {:?} is not one this service issued; pass the next_page_token of the previous page",
                    shorten(token, 40)
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGING: Paging = Paging {
        default_size: 20,
        max_size: 500,
        token_prefix: "before-",
    };

    #[test]
    fn sizes_and_tokens_are_read_and_bad_ones_named() {
        assert_eq!(PAGING.parse(0, ""), Ok((20, None)));
        assert_eq!(PAGING.parse(7, "before-42"), Ok((7, Some(42))));
        assert_eq!(PAGING.parse(i32::MAX, ""), Ok((500, None)));
        let error = |size: i32, token: &str| PAGING.parse(size, token).err().unwrap_or_default();
        assert!(error(-1, "").contains("page_size"));
        for bad in [
            "42",
            "before-0",
            "before--3",
            "before-x",
            "before-99999999999999999999",
        ] {
            assert!(error(5, bad).contains("page_token"), "{bad}");
        }
        let message = error(5, &"x".repeat(1_000_000));
        assert!(message.contains("page_token") && message.len() < 200);
    }

    #[test]
    fn shorten_keeps_short_values_and_cuts_long_ones_on_characters() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("अबचदए", 2), "अब… (15 bytes)");
    }
}
