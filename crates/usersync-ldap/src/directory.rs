//! The served tree: built in memory from one consistent read of the store, swapped whole when
//! a run applies. Users are `inetOrgPerson` (+ `posixAccount`), groups `groupOfNames` +
//! `groupOfUniqueNames` (+ `posixGroup`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sha2::{Digest, Sha256};
use usersync_config::{LdapConfig, LdapLayout};
use usersync_model::ManagerRef;
use usersync_store::{DirectoryLinks, Member, PosixKey, PosixKind, StoredGroup, StoredUser};

use crate::dn::{self, escape_value};
use crate::entry::{Attr, Entry, Interner, Value};
use crate::LdapError;

/// Everything read from the store in one transaction.
#[derive(Debug, Default)]
pub struct StoreView {
    /// Users of every connection.
    pub users: Vec<StoredUser>,
    /// Groups of every connection.
    pub groups: Vec<StoredGroup>,
    /// Memberships.
    pub links: DirectoryLinks,
    /// Allocated POSIX numbers (sequence numbers; the base is added here).
    pub posix: HashMap<PosixKey, u32>,
    /// JPEG photo bytes by (connection, user provider id), when photos are served.
    pub photos: HashMap<(String, String), Vec<u8>>,
    /// The store's applied-run marker at the time of the read.
    pub marker: (i64, i64),
}

/// The tree as served.
#[derive(Debug, Default)]
pub struct Directory {
    /// Every entry, containers first.
    pub entries: Vec<Entry>,
    /// Normalised DN -> index in `entries`.
    pub index: HashMap<String, usize>,
    /// The normalised base DN.
    pub base: String,
    /// The store marker this tree was built from.
    pub marker: (i64, i64),
    /// Objects served without POSIX numbers because none is allocated yet.
    pub missing_posix: Vec<PosixKey>,
    /// Equality index: (attribute, normalised value) -> entries holding it, ascending, for the
    /// attributes in [`INDEXED`]. The keys share the entries' values where they can.
    pub eq_index: HashMap<(&'static str, Value), Vec<usize>>,
}

/// Attributes with an equality index (what applications look entries up by).
pub const INDEXED: &[&str] = &[
    "uid",
    "cn",
    "mail",
    "entryuuid",
    "member",
    "uniquemember",
    "memberuid",
    "memberof",
];

impl Directory {
    fn build_index(&mut self, intern: &mut Interner) {
        for (i, e) in self.entries.iter().enumerate() {
            for a in e.attrs.iter().chain(e.operational.iter()) {
                let Some(name) = INDEXED.iter().find(|n| a.name.eq_ignore_ascii_case(n)) else {
                    continue;
                };
                let keys: Vec<Value> = match &a.norm {
                    Some(norm) => norm.clone(),
                    None => a
                        .values
                        .iter()
                        .map(|v| {
                            let folded = crate::entry::fold(&String::from_utf8_lossy(v));
                            if folded.as_bytes() == &v[..] {
                                v.clone()
                            } else {
                                intern.value(folded.as_bytes())
                            }
                        })
                        .collect(),
                };
                for k in keys {
                    let list = self.eq_index.entry((*name, k)).or_default();
                    if list.last() != Some(&i) {
                        list.push(i);
                    }
                }
            }
        }
    }

    /// The entries a filter can match at most, when an indexed equality decides it (alone or
    /// inside an `and`); `None`: every entry must be looked at.
    pub fn candidates(&self, f: &crate::filter::Compiled) -> Option<&[usize]> {
        use crate::filter::Compiled;
        match f {
            Compiled::Equal { attr, want, .. } => {
                let name = INDEXED.iter().find(|n| **n == attr.as_str())?;
                match want {
                    Some(w) => Some(
                        self.eq_index
                            .get(&(*name, Value::from(w.as_slice())))
                            .map(Vec::as_slice)
                            .unwrap_or(&[]),
                    ),
                    None => Some(&[]),
                }
            }
            Compiled::And(parts) => parts.iter().find_map(|p| self.candidates(p)),
            _ => None,
        }
    }
}

/// A stable UUID for an object (name-based: SHA-256 of kind, connection and provider id, with
/// the version 8 and RFC 4122 variant bits): the same object always gets the same entryUUID.
pub fn entry_uuid(kind: &str, connection: &str, provider_id: &str) -> String {
    let mut h = Sha256::new();
    for part in [kind, connection, provider_id] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn attr(name: &'static str, values: impl IntoIterator<Item = String>) -> Attr {
    Attr::new(name, values.into_iter().map(String::into_bytes).collect())
}

fn one(name: &'static str, v: impl Into<String>) -> Attr {
    attr(name, [v.into()])
}

struct Builder<'a> {
    cfg: &'a LdapConfig,
    base_dn: String,
    dir: Directory,
    intern: Interner,
}

impl Builder<'_> {
    fn push(&mut self, mut e: Entry) {
        e.attrs.shrink_to_fit();
        e.operational.shrink_to_fit();
        if self.dir.index.contains_key(&e.norm) {
            tracing::warn!(dn = %e.dn, "two objects map to the same DN; the second is not served");
            return;
        }
        self.dir.index.insert(e.norm.clone(), self.dir.entries.len());
        self.dir.entries.push(e);
    }

    fn entry(&mut self, dn: String, attrs: Vec<Attr>, structural: &str, uuid: Option<String>) -> Entry {
        let norm = dn::normalize(&dn).unwrap_or_else(|| dn.to_lowercase());
        let parent = dn::parent(&norm).unwrap_or_default();
        let leaf = structural == "inetOrgPerson" || structural == "groupOfNames";
        let i = &mut self.intern;
        let mut operational = Vec::with_capacity(5);
        operational.extend([
            Attr {
                name: "entryDN",
                values: vec![Value::from(dn.as_bytes())],
                norm: Some(vec![Value::from(norm.as_bytes())]),
            },
            i.attr("structuralObjectClass", [structural]),
            i.attr("subschemaSubentry", [crate::schema::SUBSCHEMA_DN]),
            i.attr("hasSubordinates", [if leaf { "FALSE" } else { "TRUE" }]),
        ]);
        if let Some(u) = uuid {
            operational.push(one("entryUUID", u));
        }
        Entry {
            dn,
            norm,
            parent,
            attrs,
            operational,
        }
    }

    fn container(&mut self, dn: String, rdn_attr: &'static str, rdn_value: &str) {
        let (classes, structural) = match rdn_attr {
            "dc" => (vec!["top", "domain"], "domain"),
            "o" => (vec!["top", "organization"], "organization"),
            _ => (vec!["top", "organizationalUnit"], "organizationalUnit"),
        };
        let attrs = vec![self.intern.attr("objectClass", classes), one(rdn_attr, rdn_value)];
        let uuid = entry_uuid("container", "", &dn.to_lowercase());
        let e = self.entry(dn, attrs, structural, Some(uuid));
        self.push(e);
    }

    /// The users and groups containers of a connection (or of all, merged).
    fn subtree(&self, connection: &str) -> String {
        match self.cfg.layout {
            LdapLayout::Merged => self.base_dn.clone(),
            LdapLayout::PerConnection => format!("ou={},{}", escape_value(connection), self.base_dn),
        }
    }
}

/// Build the tree from a store read.
pub fn build(view: &StoreView, cfg: &LdapConfig) -> Result<Directory, LdapError> {
    let _span =
        tracing::info_span!("ldap_build", users = view.users.len(), groups = view.groups.len()).entered();
    let base_rdns = dn::parse(&cfg.base_dn)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| LdapError::Config(format!("base_dn `{}` is not a DN", cfg.base_dn)))?;
    let mut b = Builder {
        cfg,
        base_dn: cfg.base_dn.trim().to_string(),
        dir: Directory {
            base: dn::normalize(&cfg.base_dn).unwrap_or_default(),
            marker: view.marker,
            ..Directory::default()
        },
        intern: Interner::default(),
    };
    let (rdn_attr, rdn_value) = base_rdns[0][0].clone();
    let rdn_attr: &'static str = match dn::canonical_attr(&rdn_attr).as_str() {
        "dc" => "dc",
        "o" => "o",
        _ => "ou",
    };
    b.container(b.base_dn.clone(), rdn_attr, &rdn_value);
    let mut connections: BTreeSet<&str> = BTreeSet::new();
    connections.extend(view.users.iter().map(|u| u.connection.as_str()));
    connections.extend(view.groups.iter().map(|g| g.connection.as_str()));
    let subtrees: Vec<String> = match cfg.layout {
        LdapLayout::Merged => vec![b.base_dn.clone()],
        LdapLayout::PerConnection => {
            let mut out = Vec::new();
            for c in &connections {
                let dn = b.subtree(c);
                b.container(dn.clone(), "ou", c);
                out.push(dn);
            }
            out
        }
    };
    for s in &subtrees {
        b.container(format!("ou=users,{s}"), "ou", "users");
        b.container(format!("ou=groups,{s}"), "ou", "groups");
    }
    let names = Names::new(&b, view);
    let rel = Relations::new(view, &names, cfg.transitive);
    for u in view.users.iter().filter(|u| u.active) {
        let e = user_entry(&mut b, u, view, &names, &rel);
        b.push(e);
    }
    for g in &view.groups {
        let e = group_entry(&mut b, g, view, &names, &rel);
        b.push(e);
    }
    let mut intern = std::mem::take(&mut b.intern);
    b.dir.build_index(&mut intern);
    Ok(b.dir)
}

/// DNs and names of every served object.
struct Names {
    /// (connection, provider id) -> (DN, username) of active users.
    users: HashMap<(String, String), (String, String)>,
    /// (connection, provider id) -> (DN, served cn) of groups.
    groups: HashMap<(String, String), (String, String)>,
    /// (connection, lower-case email / username) -> user provider id, for manager references.
    by_email: HashMap<(String, String), String>,
    by_username: HashMap<(String, String), String>,
}

impl Names {
    fn new(b: &Builder<'_>, view: &StoreView) -> Names {
        let mut users = HashMap::new();
        let (mut by_email, mut by_username) = (HashMap::new(), HashMap::new());
        for u in view.users.iter().filter(|u| u.active) {
            let dn = format!(
                "cn={},ou=users,{}",
                escape_value(&u.username),
                b.subtree(&u.connection)
            );
            users.insert(
                (u.connection.clone(), u.provider_id.clone()),
                (dn, u.username.clone()),
            );
            if let Some(m) = &u.email {
                by_email.insert((u.connection.clone(), m.to_lowercase()), u.provider_id.clone());
            }
            by_username.insert(
                (u.connection.clone(), u.username.to_lowercase()),
                u.provider_id.clone(),
            );
        }
        // group names can repeat (across connections when merged, or within one): those get
        // `name@connection`, and `name@connection#id` if that still repeats
        let scope = |g: &StoredGroup| match b.cfg.layout {
            LdapLayout::Merged => String::new(),
            LdapLayout::PerConnection => g.connection.clone(),
        };
        let mut count: HashMap<(String, String), usize> = HashMap::new();
        for g in &view.groups {
            *count.entry((scope(g), g.name.to_lowercase())).or_default() += 1;
        }
        let mut count2: HashMap<(String, String), usize> = HashMap::new();
        for g in &view.groups {
            let key = (scope(g), format!("{}@{}", g.name, g.connection).to_lowercase());
            *count2.entry(key).or_default() += 1;
        }
        let mut groups = HashMap::new();
        for g in &view.groups {
            let mut cn = g.name.clone();
            if count[&(scope(g), g.name.to_lowercase())] > 1 {
                cn = format!("{}@{}", g.name, g.connection);
                if count2[&(scope(g), cn.to_lowercase())] > 1 {
                    cn = format!("{cn}#{}", g.provider_id);
                }
            }
            let dn = format!("cn={},ou=groups,{}", escape_value(&cn), b.subtree(&g.connection));
            groups.insert((g.connection.clone(), g.provider_id.clone()), (dn, cn));
        }
        Names {
            users,
            groups,
            by_email,
            by_username,
        }
    }
}

/// Who is in what, as served (direct, or flattened with `transitive`).
struct Relations {
    /// group -> member DNs (users and nested groups).
    members: HashMap<(String, String), BTreeSet<String>>,
    /// group -> usernames (memberUid).
    member_uids: HashMap<(String, String), BTreeSet<String>>,
    /// user or group -> DNs of the groups it is in (memberOf).
    member_of: HashMap<(char, String, String), BTreeSet<String>>,
}

impl Relations {
    fn new(view: &StoreView, names: &Names, transitive: bool) -> Relations {
        let mut r = Relations {
            members: HashMap::new(),
            member_uids: HashMap::new(),
            member_of: HashMap::new(),
        };
        // direct edges
        let mut children: HashMap<(String, String), Vec<String>> = HashMap::new();
        let mut direct_users: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for (c, m) in &view.links.direct {
            match &m.member {
                Member::User(u) => direct_users
                    .entry((c.clone(), m.group.clone()))
                    .or_default()
                    .push(u.clone()),
                Member::Group(g) => children
                    .entry((c.clone(), m.group.clone()))
                    .or_default()
                    .push(g.clone()),
            }
        }
        let add_user = |r: &mut Relations, c: &str, group: &str, user: &str| {
            let (Some((gdn, _)), Some((udn, uname))) = (
                names.groups.get(&(c.to_string(), group.to_string())),
                names.users.get(&(c.to_string(), user.to_string())),
            ) else {
                return;
            };
            let gk = (c.to_string(), group.to_string());
            r.members.entry(gk.clone()).or_default().insert(udn.clone());
            r.member_uids.entry(gk).or_default().insert(uname.clone());
            r.member_of
                .entry(('u', c.to_string(), user.to_string()))
                .or_default()
                .insert(gdn.clone());
        };
        if transitive {
            for (c, group, user) in &view.links.effective {
                add_user(&mut r, c, group, user);
            }
        } else {
            for ((c, group), users) in &direct_users {
                for u in users {
                    add_user(&mut r, c, group, u);
                }
            }
        }
        // nested groups: member DN of the child; the child's memberOf (flattened: every ancestor)
        for ((c, group), kids) in &children {
            let Some((gdn, _)) = names.groups.get(&(c.clone(), group.clone())) else {
                continue;
            };
            for kid in kids {
                if let Some((kdn, _)) = names.groups.get(&(c.clone(), kid.clone())) {
                    if !transitive {
                        r.members
                            .entry((c.clone(), group.clone()))
                            .or_default()
                            .insert(kdn.clone());
                    }
                    r.member_of
                        .entry(('g', c.clone(), kid.clone()))
                        .or_default()
                        .insert(gdn.clone());
                }
            }
        }
        if transitive {
            // a group's memberOf: every ancestor (walk up, cycles stop)
            let mut parents: HashMap<(String, String), Vec<(String, String)>> = HashMap::new();
            for ((c, group), kids) in &children {
                for kid in kids {
                    parents
                        .entry((c.clone(), kid.clone()))
                        .or_default()
                        .push((c.clone(), group.clone()));
                }
            }
            for key in parents.keys() {
                let mut seen = BTreeSet::new();
                let mut stack = vec![key.clone()];
                while let Some(k) = stack.pop() {
                    for p in parents.get(&k).into_iter().flatten() {
                        if p != key && seen.insert(p.clone()) {
                            stack.push(p.clone());
                        }
                    }
                }
                let dns: BTreeSet<String> = seen
                    .iter()
                    .filter_map(|p| names.groups.get(p).map(|(d, _)| d.clone()))
                    .collect();
                r.member_of.insert(('g', key.0.clone(), key.1.clone()), dns);
            }
        }
        r
    }
}

fn text_attr(u: &StoredUser, keys: &[&str]) -> Option<String> {
    u.attributes.iter().find_map(|(k, v)| {
        if !keys.iter().any(|want| k.eq_ignore_ascii_case(want)) {
            return None;
        }
        match v {
            serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    })
}

fn user_entry(
    b: &mut Builder<'_>,
    u: &StoredUser,
    view: &StoreView,
    names: &Names,
    rel: &Relations,
) -> Entry {
    let key = (u.connection.clone(), u.provider_id.clone());
    let dn = names.users[&key].0.clone();
    let cfg = b.cfg;
    let display = u
        .display_name
        .clone()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| {
            let joined = [u.given_name.as_deref(), u.family_name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            if joined.trim().is_empty() {
                u.username.clone()
            } else {
                joined
            }
        });
    let mut classes = vec!["top", "person", "organizationalPerson", "inetOrgPerson"];
    let posix_key = (PosixKind::User, u.connection.clone(), u.provider_id.clone());
    let posix = if cfg.posix {
        let n = view.posix.get(&posix_key).copied();
        if n.is_none() {
            b.dir.missing_posix.push(posix_key);
        }
        n
    } else {
        None
    };
    if posix.is_some() {
        classes.push("posixAccount");
    }
    // cn and uid share the username, which memberUid values share too
    let name = b.intern.attr("cn", [&u.username]);
    let display_attr = one("displayName", display.clone());
    let mut attrs = Vec::with_capacity(24);
    attrs.extend([
        b.intern.attr("objectClass", classes),
        name.clone(),
        Attr { name: "uid", ..name },
        one(
            "sn",
            u.family_name
                .clone()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| u.username.clone()),
        ),
        display_attr.clone(),
    ]);
    if let Some(g) = u.given_name.clone().filter(|s| !s.trim().is_empty()) {
        attrs.push(one("givenName", g));
    }
    if let Some(m) = u.email.clone().filter(|s| !s.trim().is_empty()) {
        attrs.push(one("mail", m));
    }
    for (name, keys) in [
        (
            "employeeNumber",
            &["employeeNumber", "employee_number", "employeeId", "employee_id"][..],
        ),
        ("title", &["title", "jobTitle", "job_title"][..]),
        ("departmentNumber", &["department", "departmentNumber"][..]),
        (
            "telephoneNumber",
            &["telephoneNumber", "phone", "businessPhone"][..],
        ),
        ("mobile", &["mobile", "mobilePhone", "mobile_phone"][..]),
    ] {
        if let Some(v) = text_attr(u, keys) {
            // titles and departments repeat across users
            attrs.push(if matches!(name, "title" | "departmentNumber") {
                b.intern.attr(name, [v])
            } else {
                one(name, v)
            });
        }
    }
    let manager = u.manager.as_ref().and_then(|m| {
        let c = u.connection.clone();
        let id = match m {
            ManagerRef::Id(id) => Some(id.clone()),
            ManagerRef::Email(e) => names.by_email.get(&(c.clone(), e.to_lowercase())).cloned(),
            ManagerRef::Username(n) => names.by_username.get(&(c.clone(), n.to_lowercase())).cloned(),
            _ => None,
        }?;
        names.users.get(&(c, id)).map(|(d, _)| d.clone())
    });
    if let Some(m) = manager {
        attrs.push(b.intern.attr("manager", [m]));
    }
    if let Some(groups) = rel
        .member_of
        .get(&('u', u.connection.clone(), u.provider_id.clone()))
    {
        attrs.push(b.intern.attr("memberOf", groups));
    }
    if let Some(n) = posix {
        let uid = cfg.uid_base.saturating_add(n);
        attrs.push(one("uidNumber", uid.to_string()));
        // user private group: the primary gid is the user's own number (users and groups share
        // one sequence, so no group has it)
        attrs.push(one("gidNumber", cfg.gid_base.saturating_add(n).to_string()));
        attrs.push(one(
            "homeDirectory",
            format!("{}/{}", cfg.home_base.trim_end_matches('/'), u.username),
        ));
        attrs.push(b.intern.attr("loginShell", [&cfg.login_shell]));
        attrs.push(Attr {
            name: "gecos",
            ..display_attr
        });
    }
    if let Some(photo) = view.photos.get(&key) {
        attrs.push(Attr::new("jpegPhoto", vec![photo.clone()]));
    }
    attrs.push(b.intern.attr("usersyncConnection", [&u.connection]));
    let uuid = entry_uuid("user", &u.connection, &u.provider_id);
    b.entry(dn, attrs, "inetOrgPerson", Some(uuid))
}

fn group_entry(
    b: &mut Builder<'_>,
    g: &StoredGroup,
    view: &StoreView,
    names: &Names,
    rel: &Relations,
) -> Entry {
    let key = (g.connection.clone(), g.provider_id.clone());
    let (dn, cn) = names.groups[&key].clone();
    let cfg = b.cfg;
    let mut classes = vec!["top", "groupOfNames", "groupOfUniqueNames"];
    let posix_key = (PosixKind::Group, g.connection.clone(), g.provider_id.clone());
    let posix = if cfg.posix {
        let n = view.posix.get(&posix_key).copied();
        if n.is_none() {
            b.dir.missing_posix.push(posix_key);
        }
        n
    } else {
        None
    };
    if posix.is_some() {
        classes.push("posixGroup");
    }
    let mut attrs = vec![b.intern.attr("objectClass", classes), one("cn", cn)];
    if let Some(d) = g.description.clone().filter(|s| !s.trim().is_empty()) {
        attrs.push(one("description", d));
    }
    if let Some(members) = rel.members.get(&key) {
        let member = b.intern.attr("member", members);
        attrs.push(member.clone());
        attrs.push(Attr {
            name: "uniqueMember",
            ..member
        });
    }
    if let Some(n) = posix {
        attrs.push(one("gidNumber", cfg.gid_base.saturating_add(n).to_string()));
        if let Some(uids) = rel.member_uids.get(&key) {
            attrs.push(b.intern.attr("memberUid", uids));
        }
    }
    if let Some(parents) = rel
        .member_of
        .get(&('g', g.connection.clone(), g.provider_id.clone()))
    {
        attrs.push(b.intern.attr("memberOf", parents));
    }
    attrs.push(b.intern.attr("usersyncConnection", [&g.connection]));
    let uuid = entry_uuid("group", &g.connection, &g.provider_id);
    b.entry(dn, attrs, "groupOfNames", Some(uuid))
}

#[cfg(test)]
#[path = "directory_tests.rs"]
mod tests;
