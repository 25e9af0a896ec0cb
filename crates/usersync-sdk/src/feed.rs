//! Timestamp change feeds: "everything updated after T", with T on the **provider's clock**.
//!
//! The watermark is the `Date` of the feed's first response minus a margin ([`SKEW_MARGIN_MS`])
//! for eventual consistency and second-level ties; the next run asks for everything updated after
//! it, so a change is read at least once (sometimes twice: harmless). The local clock is never
//! used. A stored watermark later than the provider's clock plus the margin cannot be trusted,
//! and one that cannot be read is no position at all: both answer `Resync` and the host reads in
//! full. The stored text is `<prefix><Unix milliseconds>` (for example `okta-time:1796651100123`).

use usersync_model::{FeedEntry, Record};

use crate::{Batch, ConnectorError, Cursor, HttpRequest, HttpResponse};

/// The usual margin before the provider's `Date` the next read starts from: 5 minutes.
pub const SKEW_MARGIN_MS: i64 = 5 * 60 * 1000;

/// One provider's timestamp watermark: its name (in messages), the stored text's prefix, how a
/// time is shown, and the margin.
#[derive(Debug, Clone, Copy)]
pub struct FeedClock {
    /// The provider, as messages name it (`Okta`).
    pub provider: &'static str,
    /// The stored watermark's prefix (`okta-time:`).
    pub prefix: &'static str,
    /// How a time (Unix milliseconds) is shown in messages (the form its filters take).
    pub show: fn(i64) -> String,
    /// How far before the provider's `Date` the next read starts.
    pub margin_ms: i64,
}

/// Where a feed reads from, as the stored watermark says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// No watermark yet: the feed only takes the current one.
    Nothing,
    /// A watermark that cannot be read: the feed answers `Resync` after one small request.
    Unreadable,
    /// Everything updated after this time (Unix milliseconds on the provider's clock).
    At(i64),
}

impl Since {
    /// The time to read changes from (`None`: only the current watermark is wanted).
    pub fn time(self) -> Option<i64> {
        match self {
            Since::At(t) => Some(t),
            Since::Nothing | Since::Unreadable => None,
        }
    }
}

impl FeedClock {
    /// Read a stored watermark (`None`: there is none).
    pub fn since(&self, stored: Option<&str>) -> Since {
        match stored {
            None => Since::Nothing,
            Some(w) => match w.strip_prefix(self.prefix).and_then(|t| t.parse().ok()) {
                Some(t) => Since::At(t),
                None => Since::Unreadable,
            },
        }
    }

    /// The stored text for a time.
    pub fn watermark(&self, ms: i64) -> String {
        format!("{}{ms}", self.prefix)
    }
}

/// Wraps a listing cursor: takes the watermark from the first response's `Date` and ends with
/// it. Without a usable watermark ([`Since::Nothing`], [`Since::Unreadable`]) the inner cursor
/// should be one small request: its records are dropped and only the watermark (or `Resync`) is
/// answered.
pub struct TimestampCursor {
    inner: Box<dyn Cursor>,
    clock: FeedClock,
    since: Since,
    members_changed: bool,
    mark: Option<i64>,
    finished: bool,
}

impl TimestampCursor {
    /// Wrap `inner`: the changed-since listing, or a one-page listing when there is no usable
    /// watermark.
    pub fn new(inner: Box<dyn Cursor>, clock: FeedClock, since: Since) -> Self {
        TimestampCursor {
            inner,
            clock,
            since,
            members_changed: false,
            mark: None,
            finished: false,
        }
    }

    /// Each group read also answers `MembersChanged` (the provider has no member delta: the host
    /// re-reads that group's members).
    pub fn with_member_rereads(mut self) -> Self {
        self.members_changed = true;
        self
    }

    fn reading(&self) -> bool {
        matches!(self.since, Since::At(_))
    }

    /// The provider's clock from the response's `Date`, or `Resync` when the stored watermark
    /// cannot be used.
    fn take_clock(&mut self, response: &HttpResponse) -> Result<Option<Batch>, ConnectorError> {
        let Some(now_ms) = response
            .header("Date")
            .and_then(crate::time::http_date_secs)
            .filter(|s| *s >= 0)
            .map(|s| s.saturating_mul(1000))
        else {
            return Err(ConnectorError::protocol(format!(
                "the change feed's response has no valid `Date` header: {}'s clock is unknown",
                self.clock.provider
            )));
        };
        let reason = match self.since {
            Since::Unreadable => Some("the stored watermark cannot be read".to_string()),
            Since::At(since) if since > now_ms.saturating_add(self.clock.margin_ms) => Some(format!(
                "the stored watermark {} is later than {}'s clock ({}): it cannot be trusted",
                (self.clock.show)(since),
                self.clock.provider,
                (self.clock.show)(now_ms)
            )),
            Since::At(_) | Since::Nothing => None,
        };
        if let Some(reason) = reason {
            self.finished = true;
            return Ok(Some(Batch::of(vec![Record::Feed(FeedEntry::Resync { reason })])));
        }
        self.mark = Some(now_ms - self.clock.margin_ms);
        Ok(None)
    }
}

impl Cursor for TimestampCursor {
    fn next_request(&mut self) -> Option<HttpRequest> {
        if self.finished {
            None
        } else {
            self.inner.next_request()
        }
    }

    fn on_response(&mut self, response: HttpResponse) -> Result<Batch, ConnectorError> {
        if self.mark.is_none() && response.is_success() {
            if let Some(resync) = self.take_clock(&response)? {
                return Ok(resync);
            }
        }
        let mut batch = self.inner.on_response(response)?;
        if !self.reading() {
            batch.records.clear();
            batch.skipped.clear();
        } else if self.members_changed {
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
        if !self.reading() || self.inner.next_request().is_none() {
            self.finished = true;
            if let Some(mark) = self.mark {
                batch
                    .records
                    .push(Record::Feed(FeedEntry::Watermark(self.clock.watermark(mark))));
            }
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use usersync_model::Group;

    use super::*;
    use crate::time::iso_secs;

    const ACME: FeedClock = FeedClock {
        provider: "Acme",
        prefix: "acme-time:",
        show: iso_secs,
        margin_ms: SKEW_MARGIN_MS,
    };
    /// `Mon, 07 Dec 2026 13:45:00 GMT` in Unix milliseconds.
    const NOW_MS: i64 = 1_796_651_100_000;

    /// A listing of fixed pages, one request each.
    struct Pages(VecDeque<Vec<Record>>);

    impl Cursor for Pages {
        fn next_request(&mut self) -> Option<HttpRequest> {
            (!self.0.is_empty()).then(|| HttpRequest::get("https://idp.example/list"))
        }

        fn on_response(&mut self, _: HttpResponse) -> Result<Batch, ConnectorError> {
            Ok(Batch::of(self.0.pop_front().unwrap_or_default()))
        }
    }

    fn groups(ids: &[&str]) -> Vec<Record> {
        ids.iter().map(|id| Record::Group(Group::new(*id, *id))).collect()
    }

    fn ok() -> HttpResponse {
        HttpResponse::new(200, "{}").with_header("Date", "Mon, 07 Dec 2026 13:45:00 GMT")
    }

    /// Every record the cursor answers, request by request.
    fn drain(mut cursor: TimestampCursor) -> Vec<Record> {
        let mut out = Vec::new();
        while cursor.next_request().is_some() {
            out.extend(cursor.on_response(ok()).expect("a page").records);
        }
        out
    }

    fn cursor(pages: Vec<Vec<Record>>, clock: FeedClock, since: Since) -> TimestampCursor {
        TimestampCursor::new(Box::new(Pages(pages.into())), clock, since)
    }

    #[test]
    fn watermarks_parse_and_print() {
        // The connectors test their own prefixes against the texts their stores hold.
        assert_eq!(ACME.since(Some("acme-time:42")), Since::At(42));
        assert_eq!(ACME.since(Some("acme-time:-42")), Since::At(-42));
        assert_eq!(ACME.since(Some("42")), Since::Unreadable);
        assert_eq!(ACME.since(Some("okta-time:42")), Since::Unreadable);
        assert_eq!(ACME.since(Some("acme-time:")), Since::Unreadable);
        assert_eq!(ACME.since(None), Since::Nothing);
        assert_eq!(Since::At(7).time(), Some(7));
        assert_eq!(Since::Unreadable.time(), None);
        assert_eq!(ACME.watermark(42), "acme-time:42");
    }

    #[test]
    fn the_watermark_is_the_providers_date_minus_the_margin() {
        let mark = Record::Feed(FeedEntry::Watermark(format!(
            "acme-time:{}",
            NOW_MS - SKEW_MARGIN_MS
        )));
        let pages = vec![groups(&["g1"]), groups(&["g2"])];
        let read = drain(cursor(pages, ACME, Since::At(NOW_MS - 3_600_000)));
        assert_eq!(read, [groups(&["g1", "g2"]), vec![mark.clone()]].concat());
        // Without a watermark, only the current one: the listing's records are dropped.
        let pages = vec![groups(&["g1"]), groups(&["g2"])];
        assert_eq!(drain(cursor(pages, ACME, Since::Nothing)), vec![mark]);
    }

    #[test]
    fn changed_groups_ask_for_member_rereads() {
        let pages = vec![groups(&["g1"])];
        let c = cursor(pages, ACME, Since::At(NOW_MS)).with_member_rereads();
        let read = drain(c);
        assert_eq!(read.len(), 3, "{read:?}");
        assert_eq!(
            read[1],
            Record::Feed(FeedEntry::MembersChanged {
                group_id: "g1".into()
            })
        );
    }

    #[test]
    fn a_later_or_unreadable_watermark_resyncs() {
        let later = NOW_MS + SKEW_MARGIN_MS + 1000;
        let read = drain(cursor(vec![groups(&["g1"])], ACME, Since::At(later)));
        let reason = "the stored watermark 2026-12-07T13:50:01Z is later than Acme's clock \
                      (2026-12-07T13:45:00Z): it cannot be trusted";
        assert_eq!(
            read,
            vec![Record::Feed(FeedEntry::Resync {
                reason: reason.into()
            })]
        );
        let read = drain(cursor(vec![groups(&["g1"])], ACME, Since::Unreadable));
        assert_eq!(
            read,
            vec![Record::Feed(FeedEntry::Resync {
                reason: "the stored watermark cannot be read".into()
            })]
        );
        // Within the margin: still read.
        let read = drain(cursor(vec![vec![]], ACME, Since::At(NOW_MS + SKEW_MARGIN_MS)));
        assert!(matches!(read.as_slice(), [Record::Feed(FeedEntry::Watermark(_))]));
    }

    #[test]
    fn no_date_no_watermark() {
        let mut c = cursor(vec![groups(&["g1"])], ACME, Since::At(NOW_MS));
        let err = c.on_response(HttpResponse::new(200, "{}")).expect_err("no Date");
        assert!(err.to_string().contains("Acme's clock is unknown"), "{err}");
    }
}
