//! Answering a search from one tree: base, scope, filter, attribute selection, size and time
//! limits, and the simple paged results control (RFC 2696). Pages of one paged search are
//! answered from the tree its first page saw, so a search never mixes two store states.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapMsg, LdapOp, LdapPartialAttribute, LdapResult, LdapResultCode, LdapSearchRequest, LdapSearchScope,
};

use crate::directory::Directory;
use crate::entry::{Attr, Entry, Value};
use crate::{ber, dn, filter, schema};

/// Limits of one search, from the config.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most entries of an unpaged search (and of one page).
    pub size: usize,
    /// Longest a search may take.
    pub time: Duration,
}

/// A paged search in progress: the tree it started on and where it is.
#[derive(Debug, Clone)]
pub struct PagedState {
    dir: Arc<Directory>,
    matches: Arc<Vec<usize>>,
    pos: usize,
    key: String,
}

/// What the session passes in about paging.
#[derive(Debug, Clone)]
pub struct PagedRequest {
    /// Requested page size (0: abandon the search).
    pub size: usize,
    /// The cookie the client sent (empty on the first page).
    pub cookie: Vec<u8>,
    /// The state kept for that cookie, if any.
    pub state: Option<PagedState>,
    /// The cookie to hand out if more pages remain.
    pub next_cookie: Vec<u8>,
}

/// The answer: messages to send and the paged state to keep under `PagedRequest::next_cookie`.
#[derive(Debug)]
pub struct Answer {
    /// The SearchResultEntry messages, already encoded ([`ber`]): sent first.
    pub entries: BytesMut,
    /// Then these (the SearchResultDone).
    pub msgs: Vec<LdapMsg>,
    /// State to keep for the next page.
    pub keep: Option<PagedState>,
}

fn done(msgid: i32, code: LdapResultCode, message: &str, matched: &str, ctrl: Vec<LdapControl>) -> LdapMsg {
    LdapMsg {
        msgid,
        op: LdapOp::SearchResultDone(LdapResult {
            code,
            matcheddn: matched.to_string(),
            message: message.to_string(),
            referral: vec![],
        }),
        ctrl,
    }
}

/// Which attributes a request selects.
#[derive(Debug, Clone)]
pub struct Selection {
    all_user: bool,
    all_operational: bool,
    names: Vec<String>,
}

impl Selection {
    /// From the request's attribute list (`*`, `+`, `1.1`, names).
    pub fn new(attrs: &[String]) -> Selection {
        let names: Vec<String> = attrs.iter().map(|a| dn::canonical_attr(a)).collect();
        let only_none = !names.is_empty() && names.iter().all(|n| n == "1.1");
        Selection {
            all_user: !only_none && (names.is_empty() || names.iter().any(|n| n == "*")),
            all_operational: names.iter().any(|n| n == "+"),
            names,
        }
    }

    fn wants(&self, name: &str, operational: bool) -> bool {
        (if operational {
            self.all_operational
        } else {
            self.all_user
        }) || self.names.iter().any(|n| name.eq_ignore_ascii_case(n))
    }

    /// The attributes of `e` to return, in order, as (type, values) (no values for typesOnly).
    pub fn selected<'a>(
        &'a self,
        e: &'a Entry,
        types_only: bool,
    ) -> impl Iterator<Item = (&'a str, &'a [Value])> + Clone + 'a {
        let user = e.attrs.iter().map(|a| (a, false));
        let op = e.operational.iter().map(|a| (a, true));
        user.chain(op)
            .filter(|(a, operational)| self.wants(a.name, *operational))
            .map(move |(a, _): (&'a Attr, bool)| {
                let values: &'a [Value] = if types_only { &[] } else { &a.values };
                (a.name, values)
            })
    }

    /// The attributes of `e` to return, as ldap3_proto's type (the encoder's reference in tests).
    pub fn apply(&self, e: &Entry, types_only: bool) -> Vec<LdapPartialAttribute> {
        let user = e.attrs.iter().map(|a| (a, false));
        let op = e.operational.iter().map(|a| (a, true));
        user.chain(op)
            .filter(|(a, operational)| self.wants(a.name, *operational))
            .map(|(a, _)| LdapPartialAttribute {
                atype: a.name.to_string(),
                vals: if types_only {
                    Vec::new()
                } else {
                    a.values.iter().map(|v| v.to_vec()).collect()
                },
            })
            .collect()
    }
}

fn in_scope(e: &Entry, base: &str, scope: &LdapSearchScope) -> bool {
    let below = base.is_empty()
        || e.norm.len() > base.len() && e.norm.ends_with(base) && {
            let cut = e.norm.len() - base.len();
            e.norm.as_bytes()[cut - 1] == b','
        };
    match scope {
        LdapSearchScope::Base => e.norm == base,
        LdapSearchScope::OneLevel => e.parent == base,
        LdapSearchScope::Subtree => e.norm == base || below,
        LdapSearchScope::Children => e.norm != base && below,
    }
}

/// Answer one search request.
pub fn search(
    dir: Arc<Directory>,
    msgid: i32,
    req: &LdapSearchRequest,
    paged: Option<PagedRequest>,
    limits: Limits,
    tls: bool,
    base_dn: &str,
) -> Answer {
    let _span = tracing::debug_span!("ldap_search", base = %req.base, scope = ?req.scope).entered();
    let started = Instant::now();
    let out = Reply {
        msgid,
        req,
        sel: Selection::new(&req.attrs),
    };
    if filter::depth(&req.filter) > filter::MAX_DEPTH {
        return out.fail(LdapResultCode::UnwillingToPerform, "filter nested too deeply", "");
    }
    let Some(base) = dn::normalize(&req.base) else {
        return out.fail(LdapResultCode::InvalidDNSyntax, "the search base is not a DN", "");
    };
    // the rootDSE and the subschema entry
    if matches!(req.scope, LdapSearchScope::Base) && (base.is_empty() || base == "cn=subschema") {
        let e = if base.is_empty() {
            schema::root_dse(base_dn, tls)
        } else {
            schema::subschema()
        };
        let mut entries = BytesMut::new();
        if filter::matches(&req.filter, &e) {
            // the rootDSE's attributes are all operational: `+` asks for them too
            let mut sel = out.sel.clone();
            sel.all_user |= sel.all_operational;
            Reply { sel, ..out.clone() }.entry(&e, &mut entries);
        }
        let msgs = vec![done(msgid, LdapResultCode::Success, "", "", vec![])];
        return Answer {
            entries,
            msgs,
            keep: None,
        };
    }
    if !base.is_empty() && !dir.index.contains_key(&base) {
        return out.fail(
            LdapResultCode::NoSuchObject,
            "no such entry",
            &matched_dn(&dir, &base),
        );
    }
    let client_time = (req.timelimit > 0).then(|| Duration::from_secs(req.timelimit as u64));
    let deadline = started + limits.time.min(client_time.unwrap_or(limits.time));
    let key = format!(
        "{base}|{:?}|{:?}|{:?}|{}",
        req.scope, req.filter, req.attrs, req.typesonly
    );
    // the matches: from a paged search's kept state, or computed now
    let (dir, matches, pos) = match paged.as_ref().and_then(|p| p.state.clone()) {
        Some(st) if st.key == key => (st.dir, st.matches, st.pos),
        Some(_) => {
            let why = "the paged results cookie belongs to another search";
            return out.fail(LdapResultCode::UnwillingToPerform, why, "");
        }
        None if paged.as_ref().is_some_and(|p| !p.cookie.is_empty()) => {
            let why = "unknown or expired paged results cookie: start the search again";
            return out.fail(LdapResultCode::UnwillingToPerform, why, "");
        }
        None => match scan(&dir, &base, req, deadline) {
            Some(m) => (dir, Arc::new(m), 0),
            None => return out.fail(LdapResultCode::TimeLimitExceeded, "time limit exceeded", ""),
        },
    };
    let client_size = usize::try_from(req.sizelimit).ok().filter(|n| *n > 0);
    match paged {
        Some(p) => out.page(
            PagedState {
                dir,
                matches,
                pos,
                key,
            },
            &p,
            client_size,
            limits,
        ),
        None => out.unpaged(&dir, &matches, client_size, limits),
    }
}

/// The DN of the deepest existing ancestor of a missing base (the matchedDN of noSuchObject).
fn matched_dn(dir: &Directory, base: &str) -> String {
    let mut cur = dn::parent(base);
    while let Some(p) = cur {
        if let Some(i) = dir.index.get(&p) {
            return dir.entries[*i].dn.clone();
        }
        cur = dn::parent(&p);
    }
    String::new()
}

/// The entries in scope that match the filter (through the equality index when it decides);
/// `None` when the deadline passes.
fn scan(dir: &Directory, base: &str, req: &LdapSearchRequest, deadline: Instant) -> Option<Vec<usize>> {
    let compiled = filter::compile(&req.filter);
    let all: Vec<usize>;
    let candidates = match dir.candidates(&compiled) {
        Some(c) => c,
        None => {
            all = (0..dir.entries.len()).collect();
            &all
        }
    };
    let mut out = Vec::new();
    for (n, i) in candidates.iter().enumerate() {
        if n % 512 == 0 && Instant::now() > deadline {
            return None;
        }
        let e = &dir.entries[*i];
        if in_scope(e, base, &req.scope) && filter::eval(&compiled, e) == filter::Truth::True {
            out.push(*i);
        }
    }
    Some(out)
}

/// Builds the messages of one search's answer.
#[derive(Clone)]
struct Reply<'a> {
    msgid: i32,
    req: &'a LdapSearchRequest,
    sel: Selection,
}

impl Reply<'_> {
    /// Append `e` as one encoded SearchResultEntry message.
    fn entry(&self, e: &Entry, buf: &mut BytesMut) {
        let attrs = self.sel.selected(e, self.req.typesonly);
        ber::search_result_entry(buf, self.msgid, &e.dn, attrs);
    }

    /// Append the entries `matches` points at.
    fn entries(&self, dir: &Directory, matches: &[usize]) -> BytesMut {
        let mut buf = BytesMut::new();
        for i in matches {
            self.entry(&dir.entries[*i], &mut buf);
        }
        buf
    }

    fn fail(&self, code: LdapResultCode, msg: &str, matched: &str) -> Answer {
        Answer {
            entries: BytesMut::new(),
            msgs: vec![done(self.msgid, code, msg, matched, vec![])],
            keep: None,
        }
    }

    /// One page from `st.pos`; the state to keep when more remain.
    fn page(&self, st: PagedState, p: &PagedRequest, client_size: Option<usize>, limits: Limits) -> Answer {
        if p.size == 0 {
            // abandon: no entries, an empty cookie
            let ctrl = vec![LdapControl::SimplePagedResults {
                size: 0,
                cookie: Vec::new(),
            }];
            return Answer {
                entries: BytesMut::new(),
                msgs: vec![done(self.msgid, LdapResultCode::Success, "", "", ctrl)],
                keep: None,
            };
        }
        let (pos, total) = (st.pos, st.matches.len());
        let mut size = p.size.min(limits.size);
        let mut limited = false;
        if let Some(c) = client_size {
            if pos + size >= c {
                size = c.saturating_sub(pos);
                limited = total > c;
            }
        }
        let end = (pos + size).min(total);
        let entries = self.entries(&st.dir, &st.matches[pos..end]);
        let more = end < total && !limited;
        let ctrl = vec![LdapControl::SimplePagedResults {
            size: total as i64,
            cookie: if more { p.next_cookie.clone() } else { Vec::new() },
        }];
        let (code, message) = if limited {
            (LdapResultCode::SizeLimitExceeded, "size limit exceeded")
        } else {
            (LdapResultCode::Success, "")
        };
        let msgs = vec![done(self.msgid, code, message, "", ctrl)];
        let keep = more.then_some(PagedState { pos: end, ..st });
        Answer { entries, msgs, keep }
    }

    /// Every match up to the size limits.
    fn unpaged(
        &self,
        dir: &Directory,
        matches: &[usize],
        client_size: Option<usize>,
        limits: Limits,
    ) -> Answer {
        let limit = client_size.unwrap_or(usize::MAX).min(limits.size);
        let entries = self.entries(dir, &matches[..limit.min(matches.len())]);
        let mut msgs = Vec::with_capacity(1);
        if matches.len() > limit {
            let hint = if client_size.is_some_and(|c| c <= limits.size) {
                "size limit exceeded"
            } else {
                "size limit exceeded: use the paged results control for larger searches"
            };
            msgs.push(done(
                self.msgid,
                LdapResultCode::SizeLimitExceeded,
                hint,
                "",
                vec![],
            ));
        } else {
            msgs.push(done(self.msgid, LdapResultCode::Success, "", "", vec![]));
        }
        Answer {
            entries,
            msgs,
            keep: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Attr;

    fn e(dn_: &str) -> Entry {
        let norm = dn::normalize(dn_).expect("dn");
        Entry {
            dn: dn_.into(),
            parent: dn::parent(&norm).unwrap_or_default(),
            norm,
            attrs: vec![Attr::new("cn", vec![b"x".to_vec()])],
            operational: vec![Attr::new("entryUUID", vec![b"u".to_vec()])],
        }
    }

    #[test]
    fn scopes() {
        let base = "ou=users,dc=x";
        let child = e("cn=a,ou=users,dc=x");
        let grandchild = e("cn=b,cn=a,ou=users,dc=x");
        let lookalike = e("cn=a,xou=users,dc=x");
        assert!(in_scope(&child, base, &LdapSearchScope::OneLevel));
        assert!(!in_scope(&grandchild, base, &LdapSearchScope::OneLevel));
        assert!(in_scope(&grandchild, base, &LdapSearchScope::Subtree));
        assert!(!in_scope(&lookalike, base, &LdapSearchScope::Subtree));
        assert!(in_scope(&e(base), base, &LdapSearchScope::Base));
        assert!(!in_scope(&e(base), base, &LdapSearchScope::Children));
    }

    #[test]
    fn attribute_selection() {
        let entry = e("cn=a,dc=x");
        let names = |attrs: &[&str]| -> Vec<String> {
            let sel = Selection::new(&attrs.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            sel.apply(&entry, false).into_iter().map(|a| a.atype).collect()
        };
        assert_eq!(names(&[]), ["cn"]);
        assert_eq!(names(&["*"]), ["cn"]);
        assert_eq!(names(&["+"]), ["entryUUID"]);
        assert_eq!(names(&["*", "+"]), ["cn", "entryUUID"]);
        assert_eq!(names(&["1.1"]), Vec::<String>::new());
        assert_eq!(names(&["EntryUUID"]), ["entryUUID"]);
        assert_eq!(names(&["commonName"]), ["cn"]);
    }

    /// The hand encoder ([`ber`]) against the path it replaced (`Selection::apply` into an
    /// `LdapMsg`, encoded by ldap3_proto): the same bytes, and ldap3_proto decodes them back to
    /// the same message; multi-valued, binary and empty selections included.
    #[test]
    fn encoded_entries_decode_to_what_the_ldap3_proto_path_produced() {
        use ldap3_proto::proto::LdapSearchResultEntry;
        use ldap3_proto::LdapCodec;
        use tokio_util::codec::{Decoder, Encoder};

        let mut entry = e(r"uid=jd\2Cx,ou=users,dc=x");
        entry.attrs = vec![
            Attr::new(
                "objectClass",
                vec![b"top".to_vec(), b"person".to_vec(), b"inetOrgPerson".to_vec()],
            ),
            Attr::new("cn", vec!["Jos\u{e9} D".as_bytes().to_vec()]),
            Attr::new(
                "memberOf",
                vec![b"cn=a,ou=groups,dc=x".to_vec(), b"cn=b,ou=groups,dc=x".to_vec()],
            ),
            Attr::new("jpegPhoto", vec![(0..=255u8).cycle().take(300).collect()]),
            Attr::new("description", vec![Vec::new()]),
        ];
        let selections: &[(&[&str], bool)] = &[
            (&[], false),
            (&["*", "+"], false),
            (&["jpegPhoto", "memberOf"], false),
            (&["1.1"], false),
            (&["nosuchattribute"], false),
            (&[], true),
        ];
        for (attrs, types_only) in selections {
            let req = LdapSearchRequest {
                base: "dc=x".into(),
                scope: LdapSearchScope::Subtree,
                aliases: ldap3_proto::proto::LdapDerefAliases::Never,
                sizelimit: 0,
                timelimit: 0,
                typesonly: *types_only,
                filter: ldap3_proto::proto::LdapFilter::Present("objectClass".into()),
                attrs: attrs.iter().map(|s| s.to_string()).collect(),
            };
            let reply = Reply {
                msgid: 300,
                req: &req,
                sel: Selection::new(&req.attrs),
            };
            let old = LdapMsg {
                msgid: 300,
                op: LdapOp::SearchResultEntry(LdapSearchResultEntry {
                    dn: entry.dn.clone(),
                    attributes: reply.sel.apply(&entry, *types_only),
                }),
                ctrl: vec![],
            };
            let mut old_bytes = BytesMut::new();
            LdapCodec::default()
                .encode(old.clone(), &mut old_bytes)
                .expect("encode");
            let mut new_bytes = BytesMut::new();
            reply.entry(&entry, &mut new_bytes);
            assert_eq!(new_bytes, old_bytes, "{attrs:?} typesOnly={types_only}");
            let decoded = LdapCodec::default()
                .decode(&mut new_bytes)
                .expect("decodes")
                .expect("whole");
            assert_eq!(decoded, old, "{attrs:?} typesOnly={types_only}");
            assert!(new_bytes.is_empty());
            let LdapOp::SearchResultEntry(got) = decoded.op else {
                panic!("not an entry");
            };
            let names: Vec<&str> = got.attributes.iter().map(|a| a.atype.as_str()).collect();
            match (*attrs, *types_only) {
                (["1.1"] | ["nosuchattribute"], _) => assert!(names.is_empty()),
                ([], false) => {
                    assert_eq!(
                        names,
                        ["objectClass", "cn", "memberOf", "jpegPhoto", "description"]
                    );
                    assert_eq!(got.attributes[0].vals.len(), 3);
                    assert_eq!(got.attributes[3].vals[0].len(), 300);
                }
                (_, true) => assert!(got.attributes.iter().all(|a| a.vals.is_empty())),
                _ => {}
            }
        }
    }
}
