//! Keycloak admin events (issue 21): `GET /admin/realms/{realm}/admin-events` and
//! `GET /admin/realms/{realm}/events/config`, as the Admin REST OpenAPI (26.8.1) describes them.
//!
//! The emulated org is mutated directly (tests, `usersync emulator`), not through an admin API, so
//! the log is derived: whenever the feed or its config is read, the org is compared with the state
//! seen last time and the differences are recorded as the events Keycloak writes for the admin
//! calls that would have made them, stamped with the current time (epoch milliseconds, strictly
//! increasing). An event is therefore never earlier than the change it records. Shapes, as
//! Keycloak's admin resources record them:
//! - `USER` `CREATE`/`UPDATE`/`DELETE`, `resourcePath` `users/{id}`;
//! - `GROUP_MEMBERSHIP` `CREATE`/`DELETE`, `users/{userId}/groups/{groupId}` (no event when a user
//!   or group is deleted with its memberships);
//! - `GROUP` `CREATE` `groups/{id}` (top level) or `groups/{parentId}/children` (a sub-group: the
//!   child's id is only in the representation), `UPDATE` `groups/{id}` (rename), a move `UPDATE`
//!   `groups/{parentId}/children` or `groups` (to the top level), `DELETE` `groups/{id}`;
//! - `REALM_ROLE_MAPPING` `CREATE`/`DELETE` `users/{id}/role-mappings/realm`.
//!
//! Realm settings: `adminEventsEnabled` (on here; Keycloak's default is off: while it is off no
//! event is recorded, and the events recorded before stay), `adminEventsDetailsEnabled` (off: no
//! `representation`). [`AdminEvents::expire_all`] drops every recorded event, as the expiry task
//! does once `adminEventsExpiration` has passed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use super::*;

/// One recorded admin event.
#[derive(Debug, Clone)]
struct Event {
    id: String,
    time: i64,
    op: &'static str,
    rtype: &'static str,
    path: String,
    representation: Option<String>,
}

/// The org as the last observation saw it.
#[derive(Debug, Default)]
struct Seen {
    /// A hash of what each user's full representation is made of.
    users: BTreeMap<UserIx, u64>,
    groups: BTreeMap<GroupIx, (String, Option<String>, Option<GroupIx>)>,
    members: BTreeSet<(UserIx, GroupIx)>,
    roles: BTreeSet<(UserIx, u32)>,
}

#[derive(Debug)]
struct Inner {
    enabled: bool,
    details: bool,
    log: Vec<Event>,
    seen: Option<Seen>,
    last_ms: i64,
    next_id: u64,
}

/// The admin-event state of one emulated realm.
#[derive(Debug)]
pub struct AdminEvents {
    inner: Mutex<Inner>,
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<AdminEvents>>> {
    static R: OnceLock<Mutex<HashMap<PathBuf, Arc<AdminEvents>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// The admin-event state of the emulator behind `ctx`.
pub fn admin_events(ctx: &EmuContext) -> Arc<AdminEvents> {
    let mut r = registry().lock().unwrap_or_else(|p| p.into_inner());
    Arc::clone(r.entry(ctx.state_dir.clone()).or_insert_with(|| {
        Arc::new(AdminEvents {
            inner: Mutex::new(Inner {
                enabled: true,
                details: false,
                log: Vec::new(),
                seen: None,
                last_ms: 0,
                next_id: 0,
            }),
        })
    }))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn snapshot(org: &Org) -> Seen {
    let t = tree(org);
    let mut s = Seen::default();
    for u in org.live_users() {
        if kc_user(org, u.ix).is_some() {
            // what the representation is made of (rendering it, photo included, is much slower)
            let mut h = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(&serde_json::to_string(u).unwrap_or_default(), &mut h);
            let manager = u.manager.and_then(|m| org.user(m)).map(username);
            std::hash::Hash::hash(&manager, &mut h);
            s.users.insert(u.ix, std::hash::Hasher::finish(&h));
        }
    }
    for g in org.live_groups() {
        let parent = t.parent.get(g.ix as usize).copied().flatten();
        s.groups
            .insert(g.ix, (g.name.clone(), g.description.clone(), parent));
        for &u in &g.members {
            if s.users.contains_key(&u) {
                s.members.insert((u, g.ix));
            }
        }
    }
    for r in &org.roles {
        for &u in &r.members {
            if s.users.contains_key(&u) {
                s.roles.insert((u, r.ix));
            }
        }
    }
    s
}

impl Inner {
    fn push(&mut self, org: &Org, op: &'static str, rtype: &'static str, path: String, rep: Option<Value>) {
        let time = now_ms().max(self.last_ms + 1);
        self.last_ms = time;
        self.next_id += 1;
        let id = format!(
            "{:08x}-{:04x}-4e5e-8a7e-{:012x}",
            (org.seed & 0xffff_ffff) as u32,
            (self.next_id >> 48) as u16,
            self.next_id & 0xffff_ffff_ffff
        );
        let representation = if self.details {
            rep.map(|r| r.to_string())
        } else {
            None
        };
        self.log.push(Event {
            id,
            time,
            op,
            rtype,
            path,
            representation,
        });
    }

    /// Record what changed since the last observation (nothing while admin events are off).
    fn observe(&mut self, org: &Org) {
        let now = snapshot(org);
        let Some(old) = self.seen.take() else {
            self.seen = Some(now);
            return;
        };
        if self.enabled {
            self.record(org, &old, &now);
        }
        self.seen = Some(now);
    }

    fn record(&mut self, org: &Org, old: &Seen, now: &Seen) {
        let uid = |u: UserIx| user_id(org, u);
        let gid = |g: GroupIx| group_id(org, g);
        for (u, body) in &now.users {
            match old.users.get(u) {
                None => self.push(org, "CREATE", "USER", format!("users/{}", uid(*u)), None),
                Some(b) if b != body => self.push(org, "UPDATE", "USER", format!("users/{}", uid(*u)), None),
                _ => {}
            }
        }
        // new groups, parents first
        let depth = |g: GroupIx| {
            let mut d = 0;
            let mut cur = now.groups.get(&g).and_then(|x| x.2);
            while let Some(p) = cur {
                d += 1;
                cur = now.groups.get(&p).and_then(|x| x.2).filter(|_| d < 64);
            }
            d
        };
        let mut created: Vec<GroupIx> = now
            .groups
            .keys()
            .copied()
            .filter(|g| !old.groups.contains_key(g))
            .collect();
        created.sort_by_key(|g| (depth(*g), *g));
        for g in created {
            let rep = Some(json!({ "id": gid(g) }));
            match now.groups.get(&g).and_then(|x| x.2) {
                Some(p) => self.push(org, "CREATE", "GROUP", format!("groups/{}/children", gid(p)), rep),
                None => self.push(org, "CREATE", "GROUP", format!("groups/{}", gid(g)), rep),
            }
        }
        for (g, (name, desc, parent)) in &now.groups {
            let Some((old_name, old_desc, old_parent)) = old.groups.get(g) else {
                continue;
            };
            if name != old_name || desc != old_desc {
                self.push(org, "UPDATE", "GROUP", format!("groups/{}", gid(*g)), None);
            }
            if parent != old_parent {
                let rep = Some(json!({ "id": gid(*g) }));
                let path = match parent {
                    Some(p) => format!("groups/{}/children", gid(*p)),
                    None => "groups".to_string(),
                };
                self.push(org, "UPDATE", "GROUP", path, rep);
            }
        }
        let live = |u: &UserIx, g: &GroupIx| now.users.contains_key(u) && now.groups.contains_key(g);
        for (u, g) in now.members.difference(&old.members) {
            let path = format!("users/{}/groups/{}", uid(*u), gid(*g));
            self.push(org, "CREATE", "GROUP_MEMBERSHIP", path, None);
        }
        for (u, g) in old.members.difference(&now.members) {
            if live(u, g) {
                let path = format!("users/{}/groups/{}", uid(*u), gid(*g));
                self.push(org, "DELETE", "GROUP_MEMBERSHIP", path, None);
            }
        }
        for (u, _) in now.roles.difference(&old.roles) {
            let path = format!("users/{}/role-mappings/realm", uid(*u));
            self.push(org, "CREATE", "REALM_ROLE_MAPPING", path, None);
        }
        for (u, _) in old.roles.difference(&now.roles) {
            if now.users.contains_key(u) {
                let path = format!("users/{}/role-mappings/realm", uid(*u));
                self.push(org, "DELETE", "REALM_ROLE_MAPPING", path, None);
            }
        }
        for g in old.groups.keys().filter(|g| !now.groups.contains_key(g)) {
            self.push(org, "DELETE", "GROUP", format!("groups/{}", gid(*g)), None);
        }
        for u in old.users.keys().filter(|u| !now.users.contains_key(u)) {
            self.push(org, "DELETE", "USER", format!("users/{}", uid(*u)), None);
        }
    }
}

impl AdminEvents {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Turn the realm's `adminEventsEnabled` on or off (changes made so far are recorded first,
    /// under the old setting).
    pub fn set_enabled(&self, org: &Org, on: bool) {
        let mut g = self.lock();
        g.observe(org);
        g.enabled = on;
    }

    /// Drop every recorded event: `adminEventsExpiration` has passed for all of them.
    pub fn expire_all(&self, org: &Org) {
        let mut g = self.lock();
        g.observe(org);
        g.log.clear();
    }

    /// Events recorded so far (after recording what changed).
    pub fn count(&self, org: &Org) -> usize {
        let mut g = self.lock();
        g.observe(org);
        g.log.len()
    }
}

/// `dateFrom`/`dateTo`: `yyyy-MM-dd` (UTC; `dateTo` covers the whole day) or epoch milliseconds.
fn date_param(p: &Params, name: &str, end_of_day: bool) -> Result<Option<i64>, Response> {
    let Some(v) = p.str(name) else {
        return Ok(None);
    };
    let v = v.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<i64>().map(Some).map_err(|_| bad_date(name));
    }
    let day = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| bad_date(name))?;
    let start = day
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .ok_or_else(|| bad_date(name))?;
    Ok(Some(if end_of_day { start + 86_400_000 - 1 } else { start }))
}

fn bad_date(name: &str) -> Response {
    let which = if name == "dateFrom" {
        "Date(From)"
    } else {
        "Date(To)"
    };
    error(
        StatusCode::BAD_REQUEST,
        &format!("Invalid value for '{which}', expected format is yyyy-MM-dd"),
    )
}

/// Every value of a repeated query parameter (`resourceTypes=USER&resourceTypes=GROUP`).
fn multi(raw: Option<&str>, name: &str) -> BTreeSet<String> {
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .filter(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.into_owned())
        .collect()
}

fn may_view_events(caller: &Caller) -> bool {
    caller.has(Perm::ViewEvents)
}

/// `GET /admin/realms/{realm}/admin-events`.
pub(super) async fn admin_events_list(
    State(ctx): St,
    Path(realm): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let caller = or_respond!(admin_auth(&ctx, &headers, &realm).await);
    if !may_view_events(&caller) {
        return forbidden();
    }
    let p = Params(q);
    let from = or_respond!(date_param(&p, "dateFrom", false));
    let to = or_respond!(date_param(&p, "dateTo", true));
    let types = multi(raw.as_deref(), "resourceTypes");
    let ops = multi(raw.as_deref(), "operationTypes");
    let asc = p.str("direction") == Some("asc");
    let path_filter = p.str("resourcePath").map(|s| s.to_string());
    let state = admin_events(&ctx);
    let events: Vec<Event> = {
        let org = ctx.org.read().await;
        let mut g = state.lock();
        g.observe(&org);
        g.log
            .iter()
            .filter(|e| from.is_none_or(|f| e.time >= f) && to.is_none_or(|t| e.time <= t))
            .filter(|e| types.is_empty() || types.contains(e.rtype))
            .filter(|e| ops.is_empty() || ops.contains(e.op))
            .filter(|e| path_filter.as_deref().is_none_or(|f| path_matches(f, &e.path)))
            .cloned()
            .collect()
    };
    let mut events = events;
    if !asc {
        events.reverse();
    }
    let faults = ctx.faults.config();
    let page = or_respond!(window(&events, &p, Some(DEFAULT_MAX), &faults));
    let org = ctx.org.read().await;
    let realm_id = ids::guid(org.seed, kind::APP, 1);
    let body: Vec<Value> = page
        .iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("id".into(), json!(e.id));
            m.insert("time".into(), json!(e.time));
            m.insert("realmId".into(), json!(realm_id));
            m.insert(
                "authDetails".into(),
                json!({"realmId": ids::guid(org.seed, kind::APP, 2), "clientId": ids::guid(org.seed, kind::APP, 3),
                       "userId": ids::guid(org.seed, kind::APP, 4), "ipAddress": "10.0.0.7"}),
            );
            m.insert("operationType".into(), json!(e.op));
            m.insert("resourceType".into(), json!(e.rtype));
            m.insert("resourcePath".into(), json!(e.path));
            if let Some(r) = &e.representation {
                m.insert("representation".into(), json!(r));
            }
            Value::Object(m)
        })
        .collect();
    drop(org);
    json_response(StatusCode::OK, &Value::Array(body))
}

/// Keycloak's `resourcePath` filter: `*` matches any run of characters.
fn path_matches(pattern: &str, path: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == path;
    }
    let mut rest = path;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// `GET /admin/realms/{realm}/events/config` (`RealmEventsConfigRepresentation`).
pub(super) async fn events_config(State(ctx): St, Path(realm): Path<String>, headers: HeaderMap) -> Response {
    let caller = or_respond!(admin_auth(&ctx, &headers, &realm).await);
    if !may_view_events(&caller) {
        return forbidden();
    }
    let state = admin_events(&ctx);
    let (enabled, details) = {
        let org = ctx.org.read().await;
        let mut g = state.lock();
        g.observe(&org);
        (g.enabled, g.details)
    };
    json_response(
        StatusCode::OK,
        &json!({
            "eventsEnabled": false,
            "eventsListeners": ["jboss-logging"],
            "enabledEventTypes": [],
            "adminEventsEnabled": enabled,
            "adminEventsDetailsEnabled": details,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_path_wildcards() {
        assert!(path_matches("users/*", "users/a/groups/b"));
        assert!(path_matches("users/*/groups/*", "users/a/groups/b"));
        assert!(!path_matches("groups/*", "users/a"));
        assert!(path_matches("groups", "groups"));
    }

    #[test]
    fn changes_become_keycloak_admin_events() {
        let mut org = Org::default();
        let a = org.add_user("a@x.test", "A", "One");
        let g = org.add_group("G", crate::org::GroupKind::Native);
        let mut inner = Inner {
            enabled: true,
            details: false,
            log: Vec::new(),
            seen: None,
            last_ms: 0,
            next_id: 0,
        };
        inner.observe(&org);
        assert!(inner.log.is_empty(), "the first observation is the baseline");
        let b = org.add_user("b@x.test", "B", "Two");
        org.add_member(g, b);
        org.rename_user(a, "Ay", "One");
        let child = org.add_group("Child", crate::org::GroupKind::Native);
        org.add_child_group(g, child);
        inner.observe(&org);
        let got: Vec<(&str, &str, String)> = inner
            .log
            .iter()
            .map(|e| (e.op, e.rtype, e.path.clone()))
            .collect();
        let (ua, ub) = (user_id(&org, a), user_id(&org, b));
        let (gg, gc) = (group_id(&org, g), group_id(&org, child));
        assert_eq!(
            got,
            vec![
                ("UPDATE", "USER", format!("users/{ua}")),
                ("CREATE", "USER", format!("users/{ub}")),
                ("CREATE", "GROUP", format!("groups/{gg}/children")),
                ("CREATE", "GROUP_MEMBERSHIP", format!("users/{ub}/groups/{gg}")),
            ]
        );
        assert!(inner.log.windows(2).all(|w| w[0].time < w[1].time));
        org.remove_group(g);
        org.remove_user(b);
        inner.enabled = false;
        org.rename_user(a, "Not", "Recorded");
        inner.observe(&org);
        assert_eq!(
            inner.log.len(),
            4,
            "nothing is recorded while admin events are off"
        );
        inner.enabled = true;
        org.remove_user(a);
        inner.observe(&org);
        let last = inner.log.last().expect("an event");
        assert_eq!(
            (last.op, last.path.as_str()),
            ("DELETE", format!("users/{ua}").as_str())
        );
        let _ = gc;
    }
}
