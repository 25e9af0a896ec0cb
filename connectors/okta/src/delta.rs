//! Okta change feeds (issue 21): users by `lastUpdated` (`search=lastUpdated gt "T"`, which,
//! like every `search`, includes DEPROVISIONED users: a deactivation bumps `lastUpdated`), groups by
//! `lastUpdated` or `lastMembershipUpdated` (their members are then re-read by the host: Okta has
//! no member delta).
//!
//! The watermark is a time on **Okta's clock**: the `Date` of the feed's first response minus a
//! margin ([`SKEW_MARGIN_MS`](usersync_sdk::feed::SKEW_MARGIN_MS)) for eventual consistency (`search` is documented as eventually
//! consistent) and second-level ties; the next run asks for everything updated after it, so a change
//! is read at least once (sometimes twice: harmless). The local clock is never used. A stored
//! watermark later than Okta's own clock (plus the margin) cannot be trusted: the feed answers
//! `Resync` and the host reads in full. The cursor is [`TimestampCursor`] (usersync-sdk).
//!
//! Not visible in these feeds: users and groups deleted for good (Okta deletes only DEPROVISIONED
//! users, and the deactivation is seen first); a full run (`full_every`) removes them.

use usersync_sdk::feed::{FeedClock, SKEW_MARGIN_MS};
pub use usersync_sdk::feed::{Since, TimestampCursor};
pub use usersync_sdk::time::iso_millis;

/// Okta's watermark: `okta-time:<Unix milliseconds>`, shown as Okta's `search` takes a time.
pub const CLOCK: FeedClock = FeedClock {
    provider: "Okta",
    prefix: "okta-time:",
    show: iso_millis,
    margin_ms: SKEW_MARGIN_MS,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_stored_before_still_parse() {
        assert_eq!(
            CLOCK.since(Some("okta-time:1796650800000")),
            Since::At(1_796_650_800_000)
        );
        assert_eq!(CLOCK.since(Some("okta-time:42")), Since::At(42));
        assert_eq!(CLOCK.since(Some("42")), Since::Unreadable);
        assert_eq!(CLOCK.watermark(42), "okta-time:42");
        assert_eq!(iso_millis(1_796_651_100_123), "2026-12-07T13:45:00.123Z");
    }
}
