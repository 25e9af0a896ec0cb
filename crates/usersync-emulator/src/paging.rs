//! Keyset paging with opaque tokens, shared by facades, with the paging faults built in.
//!
//! A listing is a slice of ascending `u32` keys (user or group indices after filtering). A token
//! records the page number and the last key served, so a listing survives mutations between pages
//! (nothing skipped, nothing repeated) like a real provider's cursor. The paging faults of
//! [`FaultConfig`] are applied here: a next token pointing back at the current page (loop), a token
//! rejected from page N on (expired), an empty page that still has a next token, a page that
//! starts with the previous page's last item (repeated).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::faults::FaultConfig;

/// Why a presented page token was refused. Facades answer with their provider's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageTokenError {
    /// Not a token this emulator issued (or for another listing).
    Invalid,
    /// The token has expired (fault `expire_token_at_page`).
    Expired,
}

/// One page of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    /// The keys on this page.
    pub keys: Vec<u32>,
    /// The token of the next page, if any.
    pub next: Option<String>,
    /// 1-based number of this page.
    pub page_no: u32,
}

/// The decoded content of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    listing: u32,
    page_no: u32,
    after: Option<u32>,
}

fn encode(p: Pos) -> String {
    let raw = match p.after {
        Some(a) => format!("p1.{:x}.{}.{}", p.listing, p.page_no, a),
        None => format!("p1.{:x}.{}.-", p.listing, p.page_no),
    };
    URL_SAFE_NO_PAD.encode(raw)
}

fn decode(token: &str) -> Option<Pos> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let mut it = raw.split('.');
    if it.next()? != "p1" {
        return None;
    }
    let listing = u32::from_str_radix(it.next()?, 16).ok()?;
    let page_no = it.next()?.parse().ok()?;
    let after = match it.next()? {
        "-" => None,
        a => Some(a.parse().ok()?),
    };
    it.next().is_none().then_some(Pos {
        listing,
        page_no,
        after,
    })
}

/// A stable tag for a listing (e.g. hash of the path and the filter), so a token of one listing is
/// refused by another.
pub fn listing_tag(parts: &[&str]) -> u32 {
    let mut h: u32 = 0x811C_9DC5;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

/// Serve one page of `keys` (ascending) of listing `tag`, after `token`, at most `limit` keys.
pub fn page(
    keys: &[u32],
    tag: u32,
    token: Option<&str>,
    limit: usize,
    faults: &FaultConfig,
) -> Result<KeyPage, PageTokenError> {
    page_lazy(tag, token, limit, faults, |after| {
        let start = after.map_or(0, |a| keys.partition_point(|&k| k <= a));
        keys[start..].iter().copied()
    })
}

/// Like [`page`], but pulls the listing lazily: `keys_after(after)` yields the listing's ascending
/// keys greater than `after` (all of them for `None`). Costs O(page) instead of O(listing), which
/// matters for filtered listings of 100k objects.
pub fn page_lazy<I: Iterator<Item = u32>>(
    tag: u32,
    token: Option<&str>,
    limit: usize,
    faults: &FaultConfig,
    keys_after: impl FnOnce(Option<u32>) -> I,
) -> Result<KeyPage, PageTokenError> {
    let pos = match token {
        None => Pos {
            listing: tag,
            page_no: 1,
            after: None,
        },
        Some(t) => {
            let p = decode(t).ok_or(PageTokenError::Invalid)?;
            if p.listing != tag {
                return Err(PageTokenError::Invalid);
            }
            p
        }
    };
    if token.is_some() && faults.expire_token_at_page.is_some_and(|n| pos.page_no >= n) {
        faults.paging_served.hit();
        return Err(PageTokenError::Expired);
    }
    let mut it = keys_after(pos.after).peekable();
    if faults.empty_page_at == Some(pos.page_no) && it.peek().is_some() {
        faults.paging_served.hit();
        let next = encode(Pos {
            page_no: pos.page_no + 1,
            ..pos
        });
        return Ok(KeyPage {
            keys: Vec::new(),
            next: Some(next),
            page_no: pos.page_no,
        });
    }
    // fault: the previous page's last item again at the top of this page (same page size)
    let repeated = pos
        .after
        .filter(|_| pos.page_no >= 2 && faults.repeat_at_page == Some(pos.page_no));
    if repeated.is_some() {
        faults.paging_served.hit();
    }
    let mut page_keys: Vec<u32> = repeated.into_iter().collect();
    let room = limit.max(1).saturating_sub(page_keys.len()).max(1);
    page_keys.extend(it.by_ref().take(room));
    let more = it.next().is_some();
    let next = if faults.paging_loop_at_page == Some(pos.page_no) {
        faults.paging_served.hit();
        Some(encode(pos))
    } else if more {
        Some(encode(Pos {
            listing: tag,
            page_no: pos.page_no + 1,
            after: page_keys.last().copied(),
        }))
    } else {
        None
    };
    Ok(KeyPage {
        keys: page_keys,
        next,
        page_no: pos.page_no,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(keys: &[u32], limit: usize, f: &FaultConfig) -> Result<Vec<u32>, PageTokenError> {
        let mut out = Vec::new();
        let mut tok: Option<String> = None;
        for _ in 0..100 {
            let p = page(keys, 7, tok.as_deref(), limit, f)?;
            out.extend(p.keys);
            match p.next {
                Some(n) => tok = Some(n),
                None => return Ok(out),
            }
        }
        Ok(out)
    }

    #[test]
    fn pages_cover_everything_once() {
        let keys: Vec<u32> = (0..10).map(|k| k * 3).collect();
        assert_eq!(all(&keys, 3, &FaultConfig::default()), Ok(keys.clone()));
        assert_eq!(all(&keys, 100, &FaultConfig::default()), Ok(keys.clone()));
        assert_eq!(all(&[], 3, &FaultConfig::default()), Ok(vec![]));
    }

    #[test]
    fn survives_deletion_between_pages() {
        let keys: Vec<u32> = (0..10).collect();
        let p1 = page(&keys, 1, None, 4, &FaultConfig::default()).expect("p1");
        let fewer: Vec<u32> = keys.iter().copied().filter(|&k| k != 3 && k != 5).collect();
        let p2 = page(&fewer, 1, p1.next.as_deref(), 4, &FaultConfig::default()).expect("p2");
        assert_eq!(p2.keys, vec![4, 6, 7, 8]);
    }

    #[test]
    fn paging_faults() {
        let keys: Vec<u32> = (0..10).collect();
        let looped = FaultConfig {
            paging_loop_at_page: Some(2),
            ..FaultConfig::default()
        };
        let p1 = page(&keys, 1, None, 3, &looped).expect("p1");
        let p2 = page(&keys, 1, p1.next.as_deref(), 3, &looped).expect("p2");
        assert_eq!(p2.next, p1.next, "next link points back at page 2");

        let expiring = FaultConfig {
            expire_token_at_page: Some(3),
            ..FaultConfig::default()
        };
        assert_eq!(all(&keys, 3, &expiring), Err(PageTokenError::Expired));

        let empty = FaultConfig {
            empty_page_at: Some(1),
            ..FaultConfig::default()
        };
        let e = page(&keys, 1, None, 3, &empty).expect("empty");
        assert!(e.keys.is_empty() && e.next.is_some());
        assert_eq!(all(&keys, 3, &empty), Ok(keys.clone()));

        let repeat = FaultConfig {
            repeat_at_page: Some(2),
            ..FaultConfig::default()
        };
        assert_eq!(
            all(&keys, 3, &repeat),
            Ok(vec![0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9]),
            "page 2 starts with page 1's last key, then paging goes on"
        );

        assert_eq!(
            page(&keys, 2, p1.next.as_deref(), 3, &FaultConfig::default()),
            Err(PageTokenError::Invalid)
        );
        assert_eq!(
            page(&keys, 1, Some("garbage"), 3, &FaultConfig::default()),
            Err(PageTokenError::Invalid)
        );
    }
}
