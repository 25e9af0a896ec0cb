//! Times on a provider's clock, as change feeds need them: the HTTP `Date` a response carries,
//! and the ISO 8601 forms a provider's filters take. One place, on `chrono`, for every connector.

use chrono::{DateTime, SecondsFormat, Utc};

/// Unix seconds of an HTTP `Date` in the IMF-fixdate form every provider sends
/// (`Sun, 06 Nov 1994 08:49:37 GMT`); `None` for anything else.
pub fn http_date_secs(value: &str) -> Option<i64> {
    let value = value.trim();
    if !value.ends_with(" GMT") {
        return None;
    }
    DateTime::parse_from_rfc2822(value).ok().map(|t| t.timestamp())
}

/// `2026-12-07T13:45:00.123Z` for Unix milliseconds (UTC).
pub fn iso_millis(ms: i64) -> String {
    utc(ms).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `2026-12-07T13:45:00Z` for Unix milliseconds (UTC, whole seconds rounded down).
pub fn iso_secs(ms: i64) -> String {
    utc(ms.div_euclid(1000) * 1000).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_and_iso_forms() {
        assert_eq!(http_date_secs("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(
            http_date_secs(" Mon, 07 Dec 2026 13:45:00 GMT "),
            Some(1_796_651_100)
        );
        assert_eq!(http_date_secs("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(http_date_secs("Mon, 07 Foo 2026 13:45:00 GMT"), None);
        assert_eq!(http_date_secs("garbage"), None);
        assert_eq!(iso_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_millis(1_796_651_100_123), "2026-12-07T13:45:00.123Z");
        assert_eq!(iso_secs(1_796_651_100_999), "2026-12-07T13:45:00Z");
    }
}
