//! OneLogin change feeds (issue 21).
//!
//! - Users: `GET /api/2/users?updated_since=T` (API v2 list users; OneLogin recommends
//!   `updated_since` for keeping a copy of the users in sync). A user's group is its `group_id`
//!   attribute, so the host replaces the memberships of each user read here with the one that
//!   comes with it (capability `memberships_in_user_listing`).
//! - Groups: OneLogin groups (`/api/1/groups`) carry no timestamp, and there are few of them: the
//!   feed re-lists them all (usually one request), which catches new and renamed groups.
//!
//! The watermark is a time on **OneLogin's clock**: the `Date` of the feed's first response minus
//! [`SKEW_MARGIN_MS`] (eventual consistency and second-level ties); the local clock is never used.
//! A stored watermark later than OneLogin's clock plus the margin, or one that cannot be read,
//! answers `Resync` and the host reads in full.
//!
//! Not visible in these feeds: deleted users (OneLogin deletes users, which then vanish from
//! every listing; there is no deprovisioned state to list) and deleted groups. They stay in the
//! host's copy, neither removed nor deactivated, until the next full run (`full_every`, default
//! 24 h, or `sync --full`) reconciles them. Roles synced as groups are read in full by the host.

use usersync_model::{FeedEntry, Record};
use usersync_sdk::HttpRequest;
use usersync_sdk::{Batch, ConnectorError, Cursor, HttpResponse};

/// How far before OneLogin's `Date` the next read starts: 5 minutes.
pub const SKEW_MARGIN_MS: i64 = 5 * 60 * 1000;

/// Watermark text: `onelogin-time:<Unix milliseconds>`.
const PREFIX: &str = "onelogin-time:";

/// The time an unreadable watermark is read as: later than any clock, so the feed answers
/// `Resync` after one small request (never a query with a nonsense time).
pub const UNREADABLE: i64 = i64::MAX / 4;

/// The stored watermark's time (`None`: no watermark; an unreadable one is [`UNREADABLE`]).
pub fn since_ms(since: Option<&str>) -> Option<i64> {
    since.map(|w| {
        w.strip_prefix(PREFIX)
            .and_then(|t| t.parse().ok())
            .unwrap_or(UNREADABLE)
    })
}

/// Parse an HTTP `Date` (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`) to Unix seconds.
pub use usersync_sdk::time::http_date_secs as http_date_epoch;
/// `2026-12-07T13:45:00Z` for Unix milliseconds (UTC, whole seconds rounded down: OneLogin's
/// `updated_since` is inclusive, so rounding down only widens the overlap).
pub use usersync_sdk::time::iso_secs;

/// Wraps a listing cursor: takes the watermark from the first response's `Date` and ends with it.
/// `since: None` (or unreadable): the current watermark only (the listing's records are dropped;
/// one small request).
pub struct DeltaCursor {
    inner: Box<dyn Cursor>,
    since_ms: Option<i64>,
    mark: Option<i64>,
    finished: bool,
}

impl DeltaCursor {
    /// Wrap `inner`: the changed-since listing, or a one-page listing when there is no usable
    /// watermark.
    pub fn new(inner: Box<dyn Cursor>, since_ms: Option<i64>) -> Self {
        DeltaCursor {
            inner,
            since_ms,
            mark: None,
            finished: false,
        }
    }

    fn reading(&self) -> bool {
        self.since_ms.is_some_and(|t| t < UNREADABLE)
    }
}

impl Cursor for DeltaCursor {
    fn next_request(&mut self) -> Option<HttpRequest> {
        if self.finished {
            None
        } else {
            self.inner.next_request()
        }
    }

    fn on_response(&mut self, response: HttpResponse) -> Result<Batch, ConnectorError> {
        if self.mark.is_none() && response.is_success() {
            let Some(now_ms) = response
                .header("Date")
                .and_then(http_date_epoch)
                .map(|s| s.saturating_mul(1000))
            else {
                return Err(ConnectorError::protocol(
                    "the change feed's response has no valid `Date` header: OneLogin's clock is unknown",
                ));
            };
            if let Some(since) = self.since_ms {
                if since > now_ms + SKEW_MARGIN_MS {
                    self.finished = true;
                    let reason = if since >= UNREADABLE {
                        "the stored watermark cannot be read".to_string()
                    } else {
                        format!(
                            "the stored watermark {} is later than OneLogin's clock ({}): it cannot be trusted",
                            iso_secs(since),
                            iso_secs(now_ms)
                        )
                    };
                    return Ok(Batch::of(vec![Record::Feed(FeedEntry::Resync { reason })]));
                }
            }
            self.mark = Some(now_ms - SKEW_MARGIN_MS);
        }
        let mut batch = self.inner.on_response(response)?;
        if !self.reading() {
            batch.records.clear();
            batch.skipped.clear();
        }
        if !self.reading() || self.inner.next_request().is_none() {
            self.finished = true;
            if let Some(mark) = self.mark {
                batch
                    .records
                    .push(Record::Feed(FeedEntry::Watermark(format!("{PREFIX}{mark}"))));
            }
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_watermarks() {
        assert_eq!(iso_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_secs(1_796_651_100_999), "2026-12-07T13:45:00Z");
        assert_eq!(
            http_date_epoch("Mon, 07 Dec 2026 13:45:00 GMT"),
            Some(1_796_651_100)
        );
        assert_eq!(http_date_epoch("Mon, 07 Foo 2026 13:45:00 GMT"), None);
        assert_eq!(since_ms(Some("onelogin-time:42")), Some(42));
        assert_eq!(since_ms(Some("okta-time:42")), Some(UNREADABLE));
        assert_eq!(since_ms(None), None);
    }
}
