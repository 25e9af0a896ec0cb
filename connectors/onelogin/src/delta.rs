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
//! [`SKEW_MARGIN_MS`](usersync_sdk::feed::SKEW_MARGIN_MS) (eventual consistency and second-level ties); the local clock is never used.
//! A stored watermark later than OneLogin's clock plus the margin, or one that cannot be read,
//! answers `Resync` and the host reads in full. The cursor is
//! [`TimestampCursor`] (usersync-sdk).
//!
//! Not visible in these feeds: deleted users (OneLogin deletes users, which then vanish from
//! every listing; there is no deprovisioned state to list) and deleted groups. They stay in the
//! host's copy, neither removed nor deactivated, until the next full run (`full_every`, default
//! 24 h, or `sync --full`) reconciles them. Roles synced as groups are read in full by the host.

use usersync_sdk::feed::{FeedClock, SKEW_MARGIN_MS};
pub use usersync_sdk::feed::{Since, TimestampCursor};
/// `2026-12-07T13:45:00Z` for Unix milliseconds (UTC, whole seconds rounded down: OneLogin's
/// `updated_since` is inclusive, so rounding down only widens the overlap).
pub use usersync_sdk::time::iso_secs;

/// OneLogin's watermark: `onelogin-time:<Unix milliseconds>`, shown as `updated_since` takes it.
pub const CLOCK: FeedClock = FeedClock {
    provider: "OneLogin",
    prefix: "onelogin-time:",
    show: iso_secs,
    margin_ms: SKEW_MARGIN_MS,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_stored_before_still_parse() {
        assert_eq!(
            CLOCK.since(Some("onelogin-time:1796650800000")),
            Since::At(1_796_650_800_000)
        );
        assert_eq!(CLOCK.since(Some("onelogin-time:42")), Since::At(42));
        assert_eq!(CLOCK.since(Some("okta-time:42")), Since::Unreadable);
        assert_eq!(CLOCK.since(None), Since::Nothing);
        assert_eq!(CLOCK.watermark(42), "onelogin-time:42");
        assert_eq!(iso_secs(1_796_651_100_999), "2026-12-07T13:45:00Z");
    }
}
