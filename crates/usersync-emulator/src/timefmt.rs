//! Timestamp formatting without a date library (the model keeps Unix seconds).

/// The org clock's epoch for generated data: 2025-01-01T00:00:00Z.
pub const BASE_EPOCH: i64 = 1_735_689_600;

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    // Howard Hinnant's algorithm.
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2025-03-13T23:26:59.000Z` (RFC 3339 with milliseconds, as Okta and Graph write it).
pub fn rfc3339_millis(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// `2025-03-13T23:26:59Z` (RFC 3339 without fractions).
pub fn rfc3339(secs: i64) -> String {
    let mut s = rfc3339_millis(secs);
    s.replace_range(19..23, "");
    s
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
    }
}
