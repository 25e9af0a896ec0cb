//! Graph directory objects: user and group projections, member listings and paged answers.

use super::*;

// ---------------------------------------------------------------------------------- projection

pub(super) fn account_enabled(u: &User) -> bool {
    match u.status {
        UserStatus::Suspended | UserStatus::Deprovisioned => false,
        UserStatus::Staged => u.guest,
        _ => true,
    }
}

/// Extension attribute names of the organisation (`extension_<appId>_<name>`).
pub(super) fn extension_names(org: &Org) -> Vec<String> {
    let app = extension_app(org.seed);
    let mut names = BTreeSet::new();
    for u in org.live_users().take(2_000) {
        for (n, _) in &u.custom {
            if n != "employeeType" {
                names.insert(format!("extension_{app}_{n}"));
            }
        }
    }
    names.into_iter().collect()
}

/// Every property of a user (full form, before projection).
pub(super) fn user_full(org: &Org, u: &User) -> Map<String, Value> {
    let app = extension_app(org.seed);
    let nickname = u.login.split('@').next().unwrap_or(&u.login).to_string();
    let ext_state = if u.guest {
        if u.status == UserStatus::Staged {
            json!("PendingAcceptance")
        } else {
            json!("Accepted")
        }
    } else {
        Value::Null
    };
    let employee_type = u
        .custom
        .iter()
        .find(|(n, _)| n == "employeeType")
        .map(|(_, v)| v.clone());
    let mut m = Map::new();
    for p in USER_PROPS {
        m.insert((*p).to_string(), Value::Null);
    }
    let mut set = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    set("id", json!(user_id(org.seed, u.ix)));
    set("userPrincipalName", json!(u.login));
    set("mail", json!(u.email));
    set("displayName", json!(u.display_name));
    set("givenName", json!(u.first_name));
    set("surname", json!(u.last_name));
    set("accountEnabled", json!(account_enabled(u)));
    set("userType", json!(if u.guest { "Guest" } else { "Member" }));
    set("externalUserState", ext_state);
    if u.guest {
        set(
            "externalUserStateChangeDateTime",
            json!(rfc3339(u.status_changed)),
        );
        set("creationType", json!("Invitation"));
    }
    set("department", json!(u.department));
    set("jobTitle", json!(u.title));
    set("employeeId", json!(u.employee_number));
    set("employeeType", json!(employee_type));
    set("mailNickname", json!(nickname));
    set("businessPhones", json!([]));
    set("imAddresses", json!([]));
    set(
        "otherMails",
        json!(if u.guest {
            vec![u.email.clone()]
        } else {
            Vec::new()
        }),
    );
    set(
        "proxyAddresses",
        json!(if u.guest {
            Vec::new()
        } else {
            vec![format!("SMTP:{}", u.email)]
        }),
    );
    set("preferredLanguage", json!("en-US"));
    set("createdDateTime", json!(rfc3339(u.created)));
    set(
        "identities",
        json!([{"signInType": "userPrincipalName", "issuer": org.domain, "issuerAssignedId": u.login}]),
    );
    for (n, v) in &u.custom {
        if n != "employeeType" {
            m.insert(format!("extension_{app}_{n}"), json!(v));
        }
    }
    m
}

/// Project a full object onto `select` (`None` = the type's default set; `default_all` = every property).
pub(super) fn project(
    full: &Map<String, Value>,
    select: Option<&[String]>,
    default: Option<&[&str]>,
) -> Map<String, Value> {
    match (select, default) {
        (Some(sel), _) => sel
            .iter()
            .map(|k| (k.clone(), full.get(k).cloned().unwrap_or(Value::Null)))
            .collect(),
        (None, Some(def)) => def
            .iter()
            .map(|k| (k.to_string(), full.get(*k).cloned().unwrap_or(Value::Null)))
            .collect(),
        (None, None) => full
            .iter()
            .filter(|(k, _)| !k.starts_with("extension_"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

pub(super) fn group_full(org: &Org, g: &Group) -> Map<String, Value> {
    let mut m = Map::new();
    for p in GROUP_PROPS {
        m.insert((*p).to_string(), Value::Null);
    }
    let nick: String = g.name.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let (types, rule, state, synced) = match g.kind {
        GroupKind::BuiltIn => (
            json!(["DynamicMembership"]),
            json!("user.objectId -ne null"),
            json!("On"),
            Value::Null,
        ),
        GroupKind::Imported => (json!([]), Value::Null, Value::Null, json!(true)),
        GroupKind::Native => (json!([]), Value::Null, Value::Null, Value::Null),
    };
    let mut set = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    set("id", json!(group_id(org.seed, g.ix)));
    set("displayName", json!(g.name));
    set("description", json!(g.description));
    set("mailEnabled", json!(false));
    set(
        "mailNickname",
        json!(if nick.is_empty() {
            format!("group{}", g.ix)
        } else {
            nick
        }),
    );
    set("securityEnabled", json!(true));
    set("groupTypes", types);
    set("membershipRule", rule);
    set("membershipRuleProcessingState", state);
    set("onPremisesSyncEnabled", synced.clone());
    if synced == json!(true) {
        set("onPremisesSamAccountName", json!(g.name));
        set("onPremisesLastSyncDateTime", json!(rfc3339(g.last_updated)));
    }
    set("createdDateTime", json!(rfc3339(g.created)));
    set("renewedDateTime", json!(rfc3339(g.created)));
    set("proxyAddresses", json!([]));
    set(
        "securityIdentifier",
        json!(format!("S-1-12-1-{}-{}", org.seed % 1_000_000, g.ix)),
    );
    m
}

pub(super) fn typed(type_name: &str, mut m: Map<String, Value>) -> Value {
    m.insert(
        "@odata.type".into(),
        json!(format!("#microsoft.graph.{type_name}")),
    );
    Value::Object(m)
}

// ------------------------------------------------------------------------------ member listings

/// Key spaces of a mixed directory-object listing (ascending keys for the pager).
pub(super) const GROUP_KEY: u32 = 1 << 28;
pub(super) const OTHER_KEY: u32 = 0xF000_0000;

/// The synthetic non-user members of a group: service principals, devices, org contacts.
pub(super) fn others_of(g: u32) -> Vec<u32> {
    let mut v = Vec::new();
    if g % 7 == 3 {
        v.push(OTHER_KEY | (g << 2));
    }
    if g % 11 == 5 {
        v.push(OTHER_KEY | (g << 2) | 1);
    }
    if g % 13 == 6 {
        v.push(OTHER_KEY | (g << 2) | 2);
    }
    v
}

/// The `@odata.type` names (`servicePrincipal`, `device`, `orgContact`) of the non-user, non-group
/// direct members the facade gives group `ix` (the truth for tests of skipped-member counts).
pub fn extra_member_kinds(ix: u32) -> Vec<&'static str> {
    others_of(ix)
        .into_iter()
        .map(|k| match k & 3 {
            0 => "servicePrincipal",
            1 => "device",
            _ => "orgContact",
        })
        .collect()
}

/// Whether user `u` is enabled as Graph reports it (`accountEnabled`).
pub fn account_enabled_of(u: &User) -> bool {
    account_enabled(u)
}

pub(super) fn other_object(org: &Org, key: u32) -> Value {
    let g = (key & !OTHER_KEY) >> 2;
    match key & 3 {
        0 => typed(
            "servicePrincipal",
            json!({"id": ids::guid(org.seed, ekind::SERVICE_PRINCIPAL, g), "displayName": format!("Automation app {g}"),
                   "appId": ids::guid(org.seed, ekind::SERVICE_PRINCIPAL, g + 1_000_000)})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        ),
        1 => typed(
            "device",
            json!({"id": ids::guid(org.seed, ekind::DEVICE, g), "displayName": format!("LAPTOP-{g:05}"),
                   "deviceId": ids::guid(org.seed, ekind::DEVICE, g + 1_000_000), "accountEnabled": true})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        ),
        _ => typed(
            "orgContact",
            json!({"id": ids::guid(org.seed, ekind::ORG_CONTACT, g), "displayName": format!("External contact {g}"),
                   "mail": format!("contact{g}@partner.example")})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        ),
    }
}

/// Groups nested (transitively) inside `g`, excluding `g` unless a cycle leads back to it.
pub(super) fn nested_closure(org: &Org, g: u32) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    let mut stack: Vec<u32> = org.group(g).map(|x| x.child_groups.clone()).unwrap_or_default();
    while let Some(c) = stack.pop() {
        if org.group(c).is_some() && out.insert(c) {
            stack.extend(org.group(c).map(|x| x.child_groups.clone()).unwrap_or_default());
        }
    }
    out
}

/// Groups containing `start` (a set of groups) transitively.
pub(super) fn ancestors(org: &Org, start: &[u32]) -> BTreeSet<u32> {
    let mut parents: HashMap<u32, Vec<u32>> = HashMap::new();
    for g in org.live_groups() {
        for &c in &g.child_groups {
            parents.entry(c).or_default().push(g.ix);
        }
    }
    let mut out: BTreeSet<u32> = start.iter().copied().collect();
    let mut stack: Vec<u32> = start.to_vec();
    while let Some(c) = stack.pop() {
        for &p in parents.get(&c).map(Vec::as_slice).unwrap_or(&[]) {
            if org.group(p).is_some() && out.insert(p) {
                stack.push(p);
            }
        }
    }
    out
}

pub(super) fn member_keys(org: &Org, g: &Group, transitive: bool) -> Vec<u32> {
    let mut keys: BTreeSet<u32> = BTreeSet::new();
    if transitive {
        keys.extend(org.transitive_members(g.ix));
        let closure = nested_closure(org, g.ix);
        for &c in &closure {
            keys.insert(GROUP_KEY | c);
            keys.extend(others_of(c));
        }
    } else {
        keys.extend(g.members.iter().copied());
        keys.extend(
            g.child_groups
                .iter()
                .filter(|c| org.group(**c).is_some())
                .map(|c| GROUP_KEY | c),
        );
    }
    keys.extend(others_of(g.ix));
    keys.into_iter().collect()
}

pub(super) fn member_object(org: &Org, key: u32, select: Option<&[String]>) -> Option<Value> {
    if key >= OTHER_KEY {
        let v = other_object(org, key);
        return Some(match select {
            Some(sel) => {
                let m = v.as_object().cloned().unwrap_or_default();
                let mut out: Map<String, Value> = sel
                    .iter()
                    .map(|k| (k.clone(), m.get(k).cloned().unwrap_or(Value::Null)))
                    .collect();
                out.insert(
                    "@odata.type".into(),
                    m.get("@odata.type").cloned().unwrap_or(Value::Null),
                );
                Value::Object(out)
            }
            None => v,
        });
    }
    if key >= GROUP_KEY {
        let g = org.group(key & !GROUP_KEY)?;
        return Some(typed("group", project(&group_full(org, g), select, None)));
    }
    let u = org.user(key)?;
    Some(typed(
        "user",
        project(&user_full(org, u), select, Some(USER_DEFAULT)),
    ))
}

// -------------------------------------------------------------------------------------- paging

/// A page of the listing `keys`; `build` renders one key. Adds `@odata.nextLink` (every original
/// parameter verbatim plus the new `$skiptoken`) and, on the first page of an advanced query with
/// `$count=true`, `@odata.count`.
#[allow(clippy::too_many_arguments)]
pub(super) fn page_response(
    ctx: &EmuContext,
    base: &str,
    path: &str,
    context: &str,
    od: &OData,
    keys: &[u32],
    limit: usize,
    mut build: impl FnMut(u32) -> Option<Value>,
) -> Response {
    let tag = paging::listing_tag(&[
        path,
        od.filter.as_deref().unwrap_or(""),
        od.search.as_deref().unwrap_or(""),
    ]);
    let page =
        match paging::page(keys, tag, od.skiptoken.as_deref(), limit, &ctx.faults.config()) {
            Ok(p) => p,
            Err(PageTokenError::Expired) => return bad_request(
                "Directory_ExpiredPageToken",
                "The specified page token value has expired and can no longer be included in your request.",
            ),
            Err(PageTokenError::Invalid) => {
                return bad_request(
                    "Directory_InvalidPageToken",
                    "The specified page token value is invalid.",
                )
            }
        };
    let values: Vec<Value> = page.keys.iter().filter_map(|k| build(*k)).collect();
    let mut body = Map::new();
    body.insert("@odata.context".into(), json!(context));
    if od.advanced() && od.skiptoken.is_none() {
        body.insert("@odata.count".into(), json!(keys.len()));
    }
    if let Some(next) = page.next {
        let mut q = od.keep.clone();
        q.push(format!("$skiptoken={next}"));
        body.insert(
            "@odata.nextLink".into(),
            json!(format!("{base}{path}?{}", q.join("&"))),
        );
    }
    body.insert("value".into(), Value::Array(values));
    ok(&Value::Object(body))
}

pub(super) fn metadata(base: &str, version: &str, rest: &str) -> String {
    format!("{base}/{version}/$metadata#{rest}")
}
