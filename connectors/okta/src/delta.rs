//! Okta change feeds (issue 21): users by `lastUpdated` (`search=lastUpdated gt "T"`, which,
//! like every `search`, includes DEPROVISIONED users: a deactivation bumps `lastUpdated`), groups by
//! `lastUpdated` or `lastMembershipUpdated` (their members are then re-read by the host: Okta has
//! no member delta).
//!
//! The watermark is a time on **Okta's clock**: the `Date` of the feed's first response minus a
//! margin ([`SKEW_MARGIN_MS`]) for eventual consistency (`search` is documented as eventually
//! consistent) and second-level ties; the next run asks for everything updated after it, so a change
//! is read at least once (sometimes twice: harmless). The local clock is never used. A stored
//! watermark later than Okta's own clock (plus the margin) cannot be trusted: the feed answers
//! `Resync` and the host reads in full.
//!
//! Not visible in these feeds: users and groups deleted for good (Okta deletes only DEPROVISIONED
//! users, and the deactivation is seen first); a full run (`full_every`) removes them.

use usersync_sdk::model::{FeedEntry, Record};
use usersync_sdk::{Batch, ConnectorError, Cursor, HttpRequest, HttpResponse};

use crate::map::http_date_epoch;

/// How far before Okta's `Date` the next read starts: 5 minutes.
pub const SKEW_MARGIN_MS: i64 = 5 * 60 * 1000;

/// Watermark text: `okta-time:<Unix milliseconds>`.
const PREFIX: &str = "okta-time:";

/// Which feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Users.
    Users,
    /// Groups (each changed group also asks for a member re-read).
    Groups,
}

/// Parse a stored watermark into Unix milliseconds.
pub fn parse_watermark(w: &str) -> Option<i64> {
    w.strip_prefix(PREFIX)?.parse().ok()
}

pub use usersync_sdk::time::iso_millis;

/// Wraps a listing cursor: takes the watermark from the first response's `Date`, turns changed
/// groups into member re-reads, and ends with the watermark. `since: None`: the current
/// watermark only (the listing's records are dropped; one small request).
pub struct DeltaCursor {
    inner: Box<dyn Cursor>,
    feed: Feed,
    since_ms: Option<i64>,
    mark: Option<i64>,
    finished: bool,
}

impl DeltaCursor {
    /// Wrap `inner` (a users or groups listing filtered by `since`, or any small listing when
    /// `since` is `None`).
    pub fn new(inner: Box<dyn Cursor>, feed: Feed, since_ms: Option<i64>) -> Self {
        DeltaCursor {
            inner,
            feed,
            since_ms,
            mark: None,
            finished: false,
        }
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
            let Some(date) = response
                .header("Date")
                .and_then(http_date_epoch)
                .and_then(|s| i64::try_from(s).ok())
            else {
                return Err(ConnectorError::protocol(
                    "the change feed's response has no valid `Date` header: Okta's clock is unknown",
                ));
            };
            let now_ms = date.saturating_mul(1000);
            if let Some(since) = self.since_ms {
                if since > now_ms + SKEW_MARGIN_MS {
                    self.finished = true;
                    return Ok(Batch::of(vec![Record::Feed(FeedEntry::Resync {
                        reason: format!(
                            "the stored watermark {} is later than Okta's clock ({}): it cannot be trusted",
                            iso_millis(since),
                            iso_millis(now_ms)
                        ),
                    })]));
                }
            }
            self.mark = Some(now_ms - SKEW_MARGIN_MS);
        }
        let mut batch = self.inner.on_response(response)?;
        if self.since_ms.is_none() {
            batch.records.clear();
            batch.skipped.clear();
        } else if self.feed == Feed::Groups {
            let changed: Vec<Record> = batch
                .records
                .iter()
                .filter_map(|r| match r {
                    Record::Group(g) => Some(Record::Feed(FeedEntry::MembersChanged {
                        group_id: g.id.clone(),
                    })),
                    _ => None,
                })
                .collect();
            batch.records.extend(changed);
        }
        if self.since_ms.is_none() || self.inner.next_request().is_none() {
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
    fn iso_and_watermarks() {
        assert_eq!(iso_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_millis(1_796_651_100_123), "2026-12-07T13:45:00.123Z");
        assert_eq!(parse_watermark("okta-time:42"), Some(42));
        assert_eq!(parse_watermark("42"), None);
    }
}
