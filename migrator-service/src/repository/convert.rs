//! Converting a field's text to its column's type, as the column (read from
//! the catalog) decides. The result is a canonical text that PostgreSQL casts
//! without loss (so a whole batch can be sent as text arrays); a value that
//! does not fit is a failure of its submission with a reason, never a silent
//! truncation or a dropped value.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// What a column holds, as far as conversion is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    /// `text`, `varchar(n)`, `char(n)`: `max_chars` for the limited ones.
    Text {
        max_chars: Option<u32>,
    },
    Int2,
    Int4,
    Int8,
    /// `numeric` or `numeric(p, s)`.
    Numeric {
        precision: Option<(u32, u32)>,
    },
    Float4,
    Float8,
    Date,
    Timestamp,
    Timestamptz,
    Bool,
    /// Any other type (uuid, a domain, ...): sent as text and cast by
    /// PostgreSQL, so a bad value fails in the database, still per submission.
    Other,
}

impl ColumnKind {
    /// The kind of a column from `pg_type.typname` and `pg_attribute.atttypmod`.
    pub fn from_catalog(type_name: &str, typmod: i32) -> Self {
        let modifier = (typmod >= 4).then(|| (typmod - 4) as u32);
        match type_name {
            "text" | "name" | "citext" => ColumnKind::Text { max_chars: None },
            "varchar" | "bpchar" => ColumnKind::Text {
                max_chars: modifier,
            },
            "int2" => ColumnKind::Int2,
            "int4" => ColumnKind::Int4,
            "int8" => ColumnKind::Int8,
            "numeric" => ColumnKind::Numeric {
                precision: modifier.map(|m| ((m >> 16) & 0xffff, m & 0xffff)),
            },
            "float4" => ColumnKind::Float4,
            "float8" => ColumnKind::Float8,
            "date" => ColumnKind::Date,
            "timestamp" => ColumnKind::Timestamp,
            "timestamptz" => ColumnKind::Timestamptz,
            "bool" => ColumnKind::Bool,
            _ => ColumnKind::Other,
        }
    }

    /// The SQL type a text value is cast to; `None` when text is assigned
    /// as it is. Text never gets an explicit cast: `::varchar(n)` would
    /// truncate silently, while assignment refuses a value that is too long.
    pub fn cast(&self, sql_type: &str) -> Option<String> {
        let t = match self {
            ColumnKind::Text { .. } => return None,
            ColumnKind::Int2 => "int2",
            ColumnKind::Int4 => "int4",
            ColumnKind::Int8 => "int8",
            ColumnKind::Numeric { .. } => "numeric",
            ColumnKind::Float4 => "float4",
            ColumnKind::Float8 => "float8",
            ColumnKind::Date => "date",
            ColumnKind::Timestamp => "timestamp",
            ColumnKind::Timestamptz => "timestamptz",
            ColumnKind::Bool => "bool",
            ColumnKind::Other => return Some(sql_type.to_string()),
        };
        Some(t.to_string())
    }
}

/// Converts `value` for a column of `kind`; `Err` is why it does not fit
/// (without the column's name, which the caller adds).
pub fn convert(value: &str, kind: &ColumnKind) -> Result<String, String> {
    if value.contains('\0') {
        return Err("contains a NUL character, which PostgreSQL cannot store".into());
    }
    match kind {
        ColumnKind::Text { max_chars } => {
            if let Some(max) = max_chars {
                let chars = value.chars().count();
                if chars > *max as usize {
                    return Err(format!(
                        "is {chars} characters long, more than the column's limit of {max}"
                    ));
                }
            }
            Ok(value.to_string())
        }
        ColumnKind::Int2 => integer(value, i16::MIN.into(), i16::MAX.into()),
        ColumnKind::Int4 => integer(value, i32::MIN.into(), i32::MAX.into()),
        ColumnKind::Int8 => integer(value, i64::MIN, i64::MAX),
        ColumnKind::Numeric { precision } => numeric(value, *precision),
        ColumnKind::Float4 | ColumnKind::Float8 => {
            let d = Decimal::parse(value).ok_or_else(|| "is not a number".to_string())?;
            Ok(d.to_string())
        }
        ColumnKind::Date => parse_instant(value)
            .map(|i| i.date().format("%Y-%m-%d").to_string())
            .ok_or_else(|| "is not a date".to_string()),
        ColumnKind::Timestamp => parse_instant(value)
            .map(|i| i.utc_naive().format("%Y-%m-%d %H:%M:%S%.f").to_string())
            .ok_or_else(|| "is not a date or time".to_string()),
        ColumnKind::Timestamptz => parse_instant(value)
            .map(|i| {
                i.utc_naive()
                    .and_utc()
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            })
            .ok_or_else(|| "is not a date or time".to_string()),
        ColumnKind::Bool => match value.trim().to_ascii_lowercase().as_str() {
            "yes" | "true" => Ok("true".into()),
            "no" | "false" => Ok("false".into()),
            _ => Err("is not yes/no or true/false".into()),
        },
        ColumnKind::Other => Ok(value.to_string()),
    }
}

/// An exact decimal in plain notation: sign, integer digits (no leading
/// zeros), fraction digits (no trailing zeros).
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    int: String,
    frac: String,
}

impl Decimal {
    /// Accepts `12`, `-3.5`, `12.` (as devices send), `.5`, `1e3`.
    fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        let (negative, rest) = match t.as_bytes().first()? {
            b'-' => (true, &t[1..]),
            b'+' => (false, &t[1..]),
            _ => (false, t),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(i) => {
                let e: i32 = rest[i + 1..].parse().ok()?;
                (&rest[..i], e)
            }
            None => (rest, 0),
        };
        if exponent.abs() > 1000 {
            return None;
        }
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut digits = format!("{int}{frac}");
        let mut point = int.len() as i64 + i64::from(exponent);
        if point < 0 {
            digits = format!("{}{digits}", "0".repeat((-point) as usize));
            point = 0;
        }
        let point = point as usize;
        if point > digits.len() {
            digits.push_str(&"0".repeat(point - digits.len()));
        }
        let int = digits[..point].trim_start_matches('0').to_string();
        let frac = digits[point..].trim_end_matches('0').to_string();
        let negative = negative && !(int.is_empty() && frac.is_empty());
        Some(Self {
            negative,
            int,
            frac,
        })
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.negative {
            f.write_str("-")?;
        }
        f.write_str(if self.int.is_empty() { "0" } else { &self.int })?;
        if !self.frac.is_empty() {
            write!(f, ".{}", self.frac)?;
        }
        Ok(())
    }
}

fn integer(value: &str, min: i64, max: i64) -> Result<String, String> {
    let d = Decimal::parse(value).ok_or_else(|| "is not a number".to_string())?;
    if !d.frac.is_empty() {
        return Err("is not a whole number".into());
    }
    let n: i128 = if d.int.is_empty() {
        0
    } else {
        d.int
            .parse::<i128>()
            .map_err(|_| "is out of range".to_string())?
    };
    let n = if d.negative { -n } else { n };
    if n < i128::from(min) || n > i128::from(max) {
        return Err(format!("is out of range ({min} to {max})"));
    }
    Ok(n.to_string())
}

fn numeric(value: &str, precision: Option<(u32, u32)>) -> Result<String, String> {
    let d = Decimal::parse(value).ok_or_else(|| "is not a number".to_string())?;
    if let Some((p, s)) = precision {
        if d.frac.len() > s as usize {
            return Err(format!(
                "has more than {s} decimal places (numeric({p},{s})); rounding would change it"
            ));
        }
        if d.int.len() > p.saturating_sub(s) as usize {
            return Err(format!("is too large for numeric({p},{s})"));
        }
    }
    Ok(d.to_string())
}

/// A date or a moment as devices and servers write them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instant {
    Date(NaiveDate),
    /// A time without a zone: taken as UTC.
    Naive(NaiveDateTime),
    Zoned(DateTime<Utc>, NaiveDate),
}

impl Instant {
    /// The calendar date as written (for a date column).
    pub fn date(&self) -> NaiveDate {
        match self {
            Instant::Date(d) => *d,
            Instant::Naive(t) => t.date(),
            Instant::Zoned(_, d) => *d,
        }
    }

    pub fn utc_naive(&self) -> NaiveDateTime {
        match self {
            Instant::Date(d) => d.and_time(chrono::NaiveTime::MIN),
            Instant::Naive(t) => *t,
            Instant::Zoned(t, _) => t.naive_utc(),
        }
    }
}

/// Accepts `2014-03-11`, RFC 1123 (`Sun, 04 May 2014 00:00:00 GMT`), RFC
/// 3339, `2014-03-11T10:00:00[.fff]`, `2014-03-11 10:00:00`, and epoch
/// milliseconds (at least 10 digits, as in `clientVersion`).
pub fn parse_instant(text: &str) -> Option<Instant> {
    let t = text.trim();
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Some(Instant::Date(d));
    }
    if let Ok(dt) = DateTime::parse_from_rfc2822(t).or_else(|_| DateTime::parse_from_rfc3339(t)) {
        return Some(Instant::Zoned(dt.with_timezone(&Utc), dt.date_naive()));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, format) {
            return Some(Instant::Naive(n));
        }
    }
    if t.len() >= 10 && t.bytes().all(|b| b.is_ascii_digit()) {
        let ms: i64 = t.parse().ok()?;
        let dt = DateTime::<Utc>::from_timestamp_millis(ms)?;
        return Some(Instant::Zoned(dt, dt.date_naive()));
    }
    None
}

/// Epoch milliseconds as a timestamptz text.
pub fn epoch_millis_text(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(value: &str, kind: ColumnKind) -> String {
        convert(value, &kind).unwrap_or_else(|e| panic!("{value:?} as {kind:?}: {e}"))
    }

    fn err(value: &str, kind: ColumnKind) -> String {
        convert(value, &kind).expect_err(&format!("{value:?} as {kind:?} must fail"))
    }

    #[test]
    fn numbers_as_devices_send_them() {
        assert_eq!(ok("48.", ColumnKind::Numeric { precision: None }), "48");
        assert_eq!(ok("12.", ColumnKind::Int4), "12");
        assert_eq!(ok(" 12.000 ", ColumnKind::Int4), "12");
        assert_eq!(ok("-0.50", ColumnKind::Numeric { precision: None }), "-0.5");
        assert_eq!(ok(".5", ColumnKind::Float8), "0.5");
        assert_eq!(ok("1.5e2", ColumnKind::Int4), "150");
        assert_eq!(
            ok(
                "2.9",
                ColumnKind::Numeric {
                    precision: Some((4, 2))
                }
            ),
            "2.9"
        );
        assert!(err("second", ColumnKind::Int4).contains("not a number"));
        assert!(err("12.5", ColumnKind::Int4).contains("whole"));
        assert!(err("40000", ColumnKind::Int2).contains("out of range"));
        assert!(err("99999999999999999999999", ColumnKind::Int8).contains("out of range"));
        assert!(
            err(
                "123.4",
                ColumnKind::Numeric {
                    precision: Some((4, 2))
                }
            )
            .contains("too large")
        );
        assert!(
            err(
                "1.234",
                ColumnKind::Numeric {
                    precision: Some((4, 2))
                }
            )
            .contains("decimal places")
        );
        for bad in [
            "", ".", "-", "1.2.3", "1e", "0x10", "NaN", "Infinity", "1e5000",
        ] {
            assert!(
                convert(bad, &ColumnKind::Numeric { precision: None }).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn dates_in_every_shape_seen() {
        assert_eq!(ok("2014-03-11", ColumnKind::Date), "2014-03-11");
        assert_eq!(
            ok("Sun, 04 May 2014 00:00:00 GMT", ColumnKind::Date),
            "2014-05-04"
        );
        assert_eq!(
            ok("2014-05-04T23:30:00+05:30", ColumnKind::Date),
            "2014-05-04",
            "the date as written, not shifted to UTC"
        );
        assert_eq!(
            ok("1394521200000", ColumnKind::Timestamptz),
            "2014-03-11T07:00:00Z"
        );
        assert_eq!(
            ok("Sun, 04 May 2014 10:00:00 GMT", ColumnKind::Timestamp),
            "2014-05-04 10:00:00"
        );
        assert_eq!(
            ok("2014-03-11", ColumnKind::Timestamptz),
            "2014-03-11T00:00:00Z"
        );
        assert!(err("2014-02-30", ColumnKind::Date).contains("not a date"));
        assert!(err("yesterday", ColumnKind::Timestamptz).contains("not a date"));
    }

    #[test]
    fn booleans_and_text() {
        assert_eq!(ok("yes", ColumnKind::Bool), "true");
        assert_eq!(ok("No", ColumnKind::Bool), "false");
        assert_eq!(ok("true", ColumnKind::Bool), "true");
        assert!(err("maybe", ColumnKind::Bool).contains("yes/no"));
        assert_eq!(
            ok("Lakshmi", ColumnKind::Text { max_chars: Some(7) }),
            "Lakshmi"
        );
        assert_eq!(
            ok("लक्ष्मी", ColumnKind::Text { max_chars: Some(7) }),
            "लक्ष्मी"
        );
        assert!(err("Lakshmi!", ColumnKind::Text { max_chars: Some(7) }).contains("limit of 7"));
        assert!(err("a\0b", ColumnKind::Text { max_chars: None }).contains("NUL"));
    }

    #[test]
    fn kinds_from_the_catalog() {
        assert_eq!(
            ColumnKind::from_catalog("varchar", 24),
            ColumnKind::Text {
                max_chars: Some(20)
            }
        );
        assert_eq!(
            ColumnKind::from_catalog("numeric", ((5 << 16) | 2) + 4),
            ColumnKind::Numeric {
                precision: Some((5, 2))
            }
        );
        assert_eq!(
            ColumnKind::from_catalog("numeric", -1),
            ColumnKind::Numeric { precision: None }
        );
        assert_eq!(ColumnKind::from_catalog("uuid", -1), ColumnKind::Other);
        assert_eq!(ColumnKind::Other.cast("uuid").as_deref(), Some("uuid"));
        assert_eq!(
            ColumnKind::Text { max_chars: Some(3) }.cast("varchar(3)"),
            None
        );
    }
}
