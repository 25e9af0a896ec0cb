//! Timestamp formatting (the model keeps Unix seconds).

use chrono::{DateTime, SecondsFormat, Utc};

/// The org clock's epoch for generated data: 2025-01-01T00:00:00Z.
pub const BASE_EPOCH: i64 = 1_735_689_600;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

/// `2025-03-13T23:26:59.000Z` (RFC 3339 with milliseconds, as Okta and Graph write it).
pub fn rfc3339_millis(secs: i64) -> String {
    at(secs).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `2025-03-13T23:26:59Z` (RFC 3339 without fractions).
pub fn rfc3339(secs: i64) -> String {
    at(secs).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Current Unix time in seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_known_instants() {
        assert_eq!(super::rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::rfc3339_millis(super::BASE_EPOCH),
            "2025-01-01T00:00:00.000Z"
        );
        assert_eq!(super::rfc3339(1_741_908_419), "2025-03-13T23:26:59Z");
        assert_eq!(super::rfc3339_millis(951_782_400), "2000-02-29T00:00:00.000Z");
        assert_eq!(super::rfc3339(946_684_799), "1999-12-31T23:59:59Z");
        assert_eq!(super::rfc3339(-1), "1969-12-31T23:59:59Z");
    }
}
