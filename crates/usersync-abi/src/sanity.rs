//! Host-side checks of what a plugin hands back across the boundary. A plugin is compiled code
//! the host does not control: before a request it asks for is sent, or a page it returns is used,
//! the host checks that it is well-formed and of a sane size. A failed check is a
//! [`ConnectorError::Plugin`] naming the plugin and what was wrong; the query then fails, so a
//! garbage page never reaches the sync engine (which never applies a failed read destructively).
//!
//! Limits (far above anything a real provider page or request needs):
//!
//! | what | limit |
//! |---|---|
//! | page (the `Batch` JSON text of one `on_response`) | [`MAX_PAGE_BYTES`] |
//! | request URL | [`MAX_URL_BYTES`], absolute `https://` or `http://`, on the origin of one of the session's base URLs |
//! | request headers | [`MAX_HEADERS`] headers, [`MAX_HEADER_BYTES`] in total, RFC 9110 names, no CR/LF/NUL in values |
//! | request body | [`MAX_BODY_BYTES`] |
//! | ids in records (user, group, member, manager, photo owner) | non-empty, at most [`MAX_ID_BYTES`] |
//! | skipped-object count of one kind in one page | [`MAX_SKIPPED_PER_PAGE`] |
//! | target answers (manifest, capabilities, app objects, a result: JSON text) | [`MAX_PAGE_BYTES`] |
//! | target requests | as above, any method the SDK knows; at most [`crate::target_host::MAX_REQUESTS_PER_CHANGE`] per change |
//! | app ids (found objects, created objects) | non-empty, at most [`MAX_ID_BYTES`] |

use usersync_sdk::model::{FeedEntry, ManagerRef, MemberRef, Record};
use usersync_sdk::{AppObject, Batch, ConnectorError, HttpRequest, TargetResult};

/// Largest page (the JSON text of one `Batch`) accepted from a plugin: 64 MiB. A Graph page of
/// 999 users with every attribute is a few MiB.
pub const MAX_PAGE_BYTES: usize = 64 << 20;
/// Longest request URL accepted from a plugin (64 KiB).
pub const MAX_URL_BYTES: usize = 64 << 10;
/// Most headers on one request from a plugin.
pub const MAX_HEADERS: usize = 100;
/// Largest total size of one request's header names and values from a plugin (64 KiB).
pub const MAX_HEADER_BYTES: usize = 64 << 10;
/// Largest request body accepted from a plugin (1 MiB; listing requests are GETs).
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Longest id in a record from a plugin (providers' ids are GUIDs, numbers or short strings).
pub const MAX_ID_BYTES: usize = 1024;
/// Largest count of skipped objects of one kind in one page from a plugin.
pub const MAX_SKIPPED_PER_PAGE: u64 = 1_000_000;

fn bad(label: &str, what: String) -> ConnectorError {
    ConnectorError::Plugin {
        detail: format!("plugin `{label}` {what}"),
    }
}

/// At most `max` characters of `s`, marked when cut, on one line (for messages).
fn clip(s: &str, max: usize) -> String {
    let one: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if one.chars().count() > max {
        one.chars().take(max).collect::<String>() + "..."
    } else {
        one
    }
}

/// The origins (scheme, host, port) of a session's base URLs. Base URLs that do not parse are
/// left out (they can then match no request).
pub fn origins(base_urls: &[String]) -> Vec<url::Origin> {
    base_urls
        .iter()
        .filter_map(|b| url::Url::parse(b).ok())
        .map(|u| u.origin())
        .filter(url::Origin::is_tuple)
        .collect()
}

/// Check a request a plugin asks the host to send.
pub fn check_request(label: &str, req: &HttpRequest, allowed: &[url::Origin]) -> Result<(), ConnectorError> {
    let refuse = |why: String| {
        bad(
            label,
            format!("asked for a request the host will not send: {why}"),
        )
    };
    if req.url.len() > MAX_URL_BYTES {
        return Err(refuse(format!(
            "its URL is {} bytes long (limit {MAX_URL_BYTES}): `{}`",
            req.url.len(),
            clip(&req.url, 120)
        )));
    }
    let url = url::Url::parse(&req.url)
        .map_err(|e| refuse(format!("`{}` is not an absolute URL ({e})", clip(&req.url, 200))))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(refuse(format!(
            "`{}` is not an http(s) URL (scheme `{}`)",
            clip(&req.url, 200),
            url.scheme()
        )));
    }
    let origin = url.origin();
    if !allowed.contains(&origin) {
        let declared: Vec<String> = allowed.iter().map(url::Origin::ascii_serialization).collect();
        return Err(refuse(format!(
            "`{}` is not on a base URL the session declared ({})",
            clip(&req.url, 200),
            if declared.is_empty() {
                "none".to_string()
            } else {
                declared.join(", ")
            }
        )));
    }
    if req.headers.len() > MAX_HEADERS {
        return Err(refuse(format!(
            "{} headers (limit {MAX_HEADERS})",
            req.headers.len()
        )));
    }
    let total: usize = req.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_HEADER_BYTES {
        return Err(refuse(format!(
            "{total} bytes of headers (limit {MAX_HEADER_BYTES})"
        )));
    }
    for (name, value) in &req.headers {
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(refuse(format!("invalid header name `{}`", clip(name, 80))));
        }
        if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(refuse(format!(
                "header `{name}` has a line break or NUL in its value"
            )));
        }
    }
    if let Some(body) = &req.body {
        if body.len() > MAX_BODY_BYTES {
            return Err(refuse(format!(
                "a body of {} bytes (limit {MAX_BODY_BYTES})",
                body.len()
            )));
        }
    }
    Ok(())
}

/// Check the size of a page's JSON text before it is parsed.
pub fn check_page_size(label: &str, len: usize) -> Result<(), ConnectorError> {
    if len > MAX_PAGE_BYTES {
        return Err(bad(
            label,
            format!("returned a page of {len} bytes (limit {MAX_PAGE_BYTES}); it was not read"),
        ));
    }
    Ok(())
}

fn check_id(label: &str, index: usize, what: &str, id: &str) -> Result<(), ConnectorError> {
    if id.is_empty() {
        return Err(bad(
            label,
            format!("returned a page whose record {index} has an empty {what}"),
        ));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(bad(
            label,
            format!(
                "returned a page whose record {index} has a {what} of {} bytes (limit {MAX_ID_BYTES}): `{}`",
                id.len(),
                clip(id, 60)
            ),
        ));
    }
    Ok(())
}

fn check_manager(label: &str, index: usize, m: &ManagerRef) -> Result<(), ConnectorError> {
    check_id(label, index, "manager reference", m.value())
}

fn check_feed(label: &str, index: usize, f: &FeedEntry) -> Result<(), ConnectorError> {
    match f {
        FeedEntry::UserRemoved { id, .. } => check_id(label, index, "removed user id", id),
        FeedEntry::GroupRemoved { id, .. } => check_id(label, index, "removed group id", id),
        FeedEntry::MembersChanged { group_id } => check_id(label, index, "changed group id", group_id),
        FeedEntry::MembershipRemoved(m) => match &m.member {
            MemberRef::User(id) | MemberRef::Group(id) => {
                check_id(label, index, "membership group id", &m.group_id)?;
                check_id(label, index, "member id", id)
            }
            MemberRef::AllUsers => check_id(label, index, "membership group id", &m.group_id),
        },
        FeedEntry::Watermark(w) if w.is_empty() || w.len() > MAX_WATERMARK_BYTES => Err(bad(
            label,
            format!(
                "returned a watermark of {} bytes (must be 1 to {MAX_WATERMARK_BYTES})",
                w.len()
            ),
        )),
        FeedEntry::Watermark(_) | FeedEntry::Resync { .. } => Ok(()),
    }
}

/// Longest feed watermark accepted from a plugin (a Graph deltaLink is a few hundred bytes).
pub const MAX_WATERMARK_BYTES: usize = 16 * 1024;

/// Check the records and counts of a parsed page.
pub fn check_batch(label: &str, batch: &Batch) -> Result<(), ConnectorError> {
    for (kind, n) in &batch.skipped {
        if *n > MAX_SKIPPED_PER_PAGE {
            return Err(bad(
                label,
                format!(
                    "returned a page claiming {n} skipped `{}` objects (limit {MAX_SKIPPED_PER_PAGE} per page)",
                    clip(kind, 60)
                ),
            ));
        }
    }
    for (i, rec) in batch.records.iter().enumerate() {
        match rec {
            Record::User(u) => {
                check_id(label, i, "user id", &u.id)?;
                if let Some(m) = &u.manager {
                    check_manager(label, i, m)?;
                }
            }
            Record::Group(g) => {
                check_id(label, i, "group id", &g.id)?;
                if let Some(p) = &g.parent_id {
                    check_id(label, i, "parent group id", p)?;
                }
            }
            Record::Membership(m) => {
                check_id(label, i, "membership group id", &m.group_id)?;
                match &m.member {
                    MemberRef::User(id) | MemberRef::Group(id) => check_id(label, i, "member id", id)?,
                    MemberRef::AllUsers => {}
                }
            }
            Record::Manager { user_id, manager } => {
                check_id(label, i, "managed user id", user_id)?;
                if let Some(m) = manager {
                    check_manager(label, i, m)?;
                }
            }
            Record::Photo(p) => check_id(label, i, "photo's user id", &p.user_id)?,
            Record::Feed(f) => check_feed(label, i, f)?,
        }
    }
    Ok(())
}

fn check_app_id(label: &str, what: &str, id: &str) -> Result<(), ConnectorError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(bad(
            label,
            format!(
                "returned {what} with an app id of {} bytes (must be 1 to {MAX_ID_BYTES}): `{}`",
                id.len(),
                clip(id, 60)
            ),
        ));
    }
    Ok(())
}

/// Check the objects a target lookup or listing returned.
pub fn check_app_objects(label: &str, objects: &[AppObject]) -> Result<(), ConnectorError> {
    for (i, o) in objects.iter().enumerate() {
        check_app_id(label, &format!("app object {i}"), &o.app_id)?;
    }
    Ok(())
}

/// Check a target result: a created object must come with a usable id (the host records it and
/// later writes to it).
pub fn check_target_result(label: &str, result: &TargetResult) -> Result<(), ConnectorError> {
    if let TargetResult::Created { app_id, .. } = result {
        check_app_id(label, "a created object", app_id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use usersync_sdk::model::{Group, Membership, User, UserState, UserStatus};

    fn allowed() -> Vec<url::Origin> {
        origins(&["https://acme.test/api".into(), "http://127.0.0.1:8080".into()])
    }

    fn refused(req: HttpRequest) -> String {
        check_request("acme 1.0.0 (/p/libacme.so)", &req, &allowed())
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn requests_on_the_declared_origins_pass() {
        for url in [
            "https://acme.test/api/v1/users?limit=200&after=x",
            "https://ACME.test:443/other",
            "http://127.0.0.1:8080/users",
        ] {
            let req = HttpRequest::get(url).with_header("Accept", "application/json");
            assert!(check_request("p", &req, &allowed()).is_ok(), "{url}");
        }
    }

    #[test]
    fn bad_requests_are_refused_naming_the_plugin() {
        let e = refused(HttpRequest::get("file:///etc/passwd"));
        assert!(
            e.contains("acme 1.0.0 (/p/libacme.so)") && e.contains("scheme `file`"),
            "{e}"
        );
        let e = refused(HttpRequest::get("/relative/path"));
        assert!(e.contains("not an absolute URL"), "{e}");
        let e = refused(HttpRequest::get("https://elsewhere.test/api"));
        assert!(
            e.contains("not on a base URL") && e.contains("https://acme.test"),
            "{e}"
        );
        let e = refused(HttpRequest::get("http://127.0.0.1:9999/users"));
        assert!(e.contains("not on a base URL"), "{e}");
        let long = format!("https://acme.test/{}", "a".repeat(MAX_URL_BYTES));
        let e = refused(HttpRequest::get(&long));
        assert!(e.contains("bytes long") && e.len() < 600, "{e}");
        let e = refused(HttpRequest::get("https://acme.test/").with_header("X-Evil", "a\r\nHost: b"));
        assert!(e.contains("line break"), "{e}");
        let e = refused(HttpRequest::get("https://acme.test/").with_header("Bad Name", "x"));
        assert!(e.contains("invalid header name"), "{e}");
        let mut post = HttpRequest::get("https://acme.test/");
        post.body = Some(vec![b'x'; MAX_BODY_BYTES + 1]);
        assert!(refused(post).contains("a body of"));
        let mut many = HttpRequest::get("https://acme.test/");
        for i in 0..=MAX_HEADERS {
            many = many.with_header(format!("X-{i}"), "1");
        }
        assert!(refused(many).contains("headers (limit"));
    }

    #[test]
    fn target_answers_without_usable_ids_are_refused() {
        let ok = AppObject {
            app_id: "a1".into(),
            etag: None,
            external_id: None,
            name: "ada".into(),
        };
        assert!(check_app_objects("p", std::slice::from_ref(&ok)).is_ok());
        let empty = AppObject {
            app_id: String::new(),
            ..ok.clone()
        };
        let e = check_app_objects("p", &[ok, empty])
            .expect_err("empty id")
            .to_string();
        assert!(e.contains("app object 1") && e.contains("plugin `p`"), "{e}");
        let created = |id: &str| TargetResult::Created {
            app_id: id.into(),
            etag: None,
        };
        assert!(check_target_result("p", &created("u1")).is_ok());
        assert!(check_target_result("p", &created("")).is_err());
        assert!(check_target_result("p", &created(&"x".repeat(MAX_ID_BYTES + 1))).is_err());
        assert!(check_target_result("p", &TargetResult::Updated { etag: None }).is_ok());
    }

    #[test]
    fn pages_with_absurd_sizes_or_empty_ids_are_refused() {
        assert!(check_page_size("p", MAX_PAGE_BYTES).is_ok());
        let e = check_page_size("p", MAX_PAGE_BYTES + 1).expect_err("too big");
        assert!(e.to_string().contains("it was not read"), "{e}");

        let ok = Batch::of(vec![
            Record::User(User::new(
                "u1",
                "ada",
                UserStatus::new(UserState::Active, "ACTIVE"),
            )),
            Record::Group(Group::new("g1", "")),
            Record::Membership(Membership::direct_user("g1", "u1")),
        ]);
        assert!(check_batch("p", &ok).is_ok());

        let empty = Batch::of(vec![
            Record::User(User::new(
                "u1",
                "ada",
                UserStatus::new(UserState::Active, "ACTIVE"),
            )),
            Record::Membership(Membership::direct_user("g1", "")),
        ]);
        let e = check_batch("p", &empty).expect_err("empty id").to_string();
        assert!(e.contains("record 1 has an empty member id"), "{e}");

        let long = Batch::of(vec![Record::Group(Group::new("g".repeat(MAX_ID_BYTES + 1), "x"))]);
        assert!(check_batch("p", &long).is_err());

        let mut absurd = Batch::default();
        absurd.skipped.insert("device".into(), u64::MAX);
        let e = check_batch("p", &absurd).expect_err("absurd count").to_string();
        assert!(e.contains("18446744073709551615 skipped `device`"), "{e}");
    }
}
