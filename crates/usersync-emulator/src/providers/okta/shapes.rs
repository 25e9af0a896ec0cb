//! Okta's JSON for users and groups, and the ids it names them by.

use serde_json::{json, Map, Value};

use crate::ids::{self, kind};
use crate::org::{Group, GroupKind, Org, User, UserStatus};
use crate::timefmt::rfc3339_millis;

pub(super) fn status_str(s: UserStatus) -> &'static str {
    match s {
        UserStatus::Active => "ACTIVE",
        UserStatus::Staged => "STAGED",
        UserStatus::Provisioned => "PROVISIONED",
        UserStatus::Recovery => "RECOVERY",
        UserStatus::PasswordExpired => "PASSWORD_EXPIRED",
        UserStatus::Locked => "LOCKED_OUT",
        UserStatus::Suspended => "SUSPENDED",
        UserStatus::Deprovisioned => "DEPROVISIONED",
    }
}

pub(super) fn group_type(k: GroupKind) -> &'static str {
    match k {
        GroupKind::Native => "OKTA_GROUP",
        GroupKind::Imported => "APP_GROUP",
        GroupKind::BuiltIn => "BUILT_IN",
    }
}

/// The Okta id of user `ix` in `org`.
pub fn user_id(org: &Org, ix: u32) -> String {
    ids::okta_id("00u", org.seed, kind::USER, ix)
}

/// The Okta id of group `ix` in `org`.
pub fn group_id(org: &Org, ix: u32) -> String {
    ids::okta_id("00g", org.seed, kind::GROUP, ix)
}

pub(super) fn user_type_id(org: &Org) -> String {
    ids::okta_id("oty", org.seed, kind::APP, 0)
}

pub(super) fn app_id(org: &Org) -> String {
    ids::okta_id("0oa", org.seed, kind::APP, 1)
}

/// The searchable/serialised attributes of a user, as `(path, value)` with Okta names.
pub(super) fn user_profile(org: &Org, u: &User) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("firstName".into(), json!(u.first_name));
    p.insert("lastName".into(), json!(u.last_name));
    p.insert("mobilePhone".into(), Value::Null);
    p.insert("secondEmail".into(), Value::Null);
    p.insert("login".into(), json!(if u.guest { &u.email } else { &u.login }));
    p.insert("email".into(), json!(u.email));
    if sends_display_name(u) {
        p.insert("displayName".into(), json!(u.display_name));
    }
    p.insert("department".into(), json!(u.department));
    p.insert("title".into(), json!(u.title));
    p.insert("employeeNumber".into(), json!(u.employee_number));
    p.insert(
        "userType".into(),
        json!(if u.guest { "Guest" } else { "Employee" }),
    );
    let (manager_id, manager_name) = manager_fields(org, u);
    p.insert("managerId".into(), json!(manager_id));
    p.insert("manager".into(), json!(manager_name));
    p.insert(
        "profileUrl".into(),
        json!(u
            .has_photo
            .then(|| format!("https://photos.{}/{}.png", org.domain, user_id(org, u.ix)))),
    );
    for (k, v) in custom_attributes(u) {
        p.insert(k.to_string(), v);
    }
    p
}

/// Whether `u`'s profile has a `displayName`: real Okta profiles rarely do (it is optional
/// and most sources leave it empty), so only every fifth user has one.
pub fn sends_display_name(u: &User) -> bool {
    u.ix % 5 == 0
}

/// How a user's `profile.managerId` names the manager. Real orgs fill it from HR, with free
/// text as often as an Okta id (recorded: `managerId: "222222"`, `manager: "Jimbo"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagerForm {
    /// The manager's Okta id.
    OktaId,
    /// The manager's `employeeNumber`.
    EmployeeNumber,
    /// The manager's login.
    Login,
    /// The manager's first name: text that names no user.
    FreeText,
}

/// The form of `u`'s `managerId` (by user index: id, employee number, login, free text in
/// turn; an employee number the manager does not have becomes free text).
pub fn manager_form(org: &Org, u: &User) -> Option<ManagerForm> {
    let m = u.manager.and_then(|m| org.user(m))?;
    Some(match u.ix % 4 {
        0 => ManagerForm::OktaId,
        1 if m.employee_number.is_some() => ManagerForm::EmployeeNumber,
        2 => ManagerForm::Login,
        _ => ManagerForm::FreeText,
    })
}

/// `profile.managerId` and `profile.manager` of `u`, as this emulator sends them.
pub fn manager_fields(org: &Org, u: &User) -> (Option<String>, Option<String>) {
    let Some(m) = u.manager.and_then(|m| org.user(m)) else {
        return (None, None);
    };
    let id = match manager_form(org, u) {
        Some(ManagerForm::OktaId) => user_id(org, m.ix),
        Some(ManagerForm::EmployeeNumber) => m.employee_number.clone().unwrap_or_default(),
        Some(ManagerForm::Login) => (if m.guest { &m.email } else { &m.login }).clone(),
        Some(ManagerForm::FreeText) | None => m.first_name.clone(),
    };
    let name = match manager_form(org, u) {
        Some(ManagerForm::FreeText) => m.first_name.clone(),
        _ => m.display_name.clone(),
    };
    (Some(id), Some(name))
}

/// `transitioningToStatus` of `u`, present only while a lifecycle operation runs: some
/// PROVISIONED users are being activated, a few ACTIVE ones deactivated.
pub fn transitioning_to(u: &User) -> Option<&'static str> {
    match u.status {
        UserStatus::Provisioned if u.ix % 3 == 0 => Some("ACTIVE"),
        UserStatus::Active if u.ix % 97 == 1 => Some("DEPROVISIONED"),
        _ => None,
    }
}

/// Custom profile attributes with the JSON types Okta's profile schema gives them: text
/// stays a string, `badgeId` is an integer, `isContractor` a boolean, `clearances` an array.
pub fn custom_attributes(u: &User) -> Vec<(&str, Value)> {
    let mut out: Vec<(&str, Value)> = Vec::with_capacity(u.custom.len() + 2);
    for (k, v) in &u.custom {
        let typed = match k.as_str() {
            "badgeId" => v
                .trim_start_matches('B')
                .parse::<u64>()
                .map_or_else(|_| json!(v), |n| json!(n)),
            _ => json!(v),
        };
        out.push((k.as_str(), typed));
    }
    if !u.guest {
        let contractor = u
            .custom
            .iter()
            .any(|(k, v)| k == "employeeType" && v == "Contractor");
        out.push(("isContractor", json!(contractor)));
    }
    if let Some(d) = u.department.as_deref().filter(|_| u.ix % 3 == 0) {
        out.push(("clearances", json!([d.to_lowercase()])));
    }
    out
}

pub(super) fn user_json(org: &Org, u: &User, base: &str) -> Value {
    let id = user_id(org, u.ix);
    let ts = |t: i64| json!(rfc3339_millis(t));
    let activated = !matches!(u.status, UserStatus::Staged);
    let password = !matches!(u.status, UserStatus::Staged | UserStatus::Provisioned);
    let mut creds = Map::new();
    if password {
        creds.insert("password".into(), json!({}));
    }
    creds.insert("provider".into(), json!({"type": "OKTA", "name": "OKTA"}));
    let mut v = json!({
        "id": id,
        "status": status_str(u.status),
        "created": ts(u.created),
        "activated": if activated { ts(u.created + 60) } else { Value::Null },
        "statusChanged": ts(u.status_changed),
        "lastLogin": u.last_login.map(rfc3339_millis),
        "lastUpdated": ts(u.last_updated),
        "passwordChanged": if password { ts(u.created + 120) } else { Value::Null },
        "type": { "id": user_type_id(org) },
        "profile": user_profile(org, u),
        "credentials": creds,
        "_links": { "self": { "href": format!("{base}/api/v1/users/{id}") } },
    });
    if let (Some(t), Some(o)) = (transitioning_to(u), v.as_object_mut()) {
        o.insert("transitioningToStatus".into(), json!(t));
    }
    v
}

/// A user serialised straight into the response buffer (no intermediate `Value`): the listing fast
/// path. Same JSON as [`user_json`] (a unit test holds them equal).
pub(super) struct UserOut<'a> {
    pub(super) org: &'a Org,
    pub(super) u: &'a User,
    pub(super) base: &'a str,
}

#[derive(serde::Serialize)]
struct IdOnly {
    id: String,
}

#[derive(serde::Serialize)]
struct Empty {}

#[derive(serde::Serialize)]
struct Provider {
    #[serde(rename = "type")]
    ty: &'static str,
    name: &'static str,
}

#[derive(serde::Serialize)]
struct Creds {
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<Empty>,
    provider: Provider,
}

#[derive(serde::Serialize)]
struct Href {
    href: String,
}

#[derive(serde::Serialize)]
struct SelfLink {
    #[serde(rename = "self")]
    self_: Href,
}

struct ProfileOut<'a> {
    org: &'a Org,
    u: &'a User,
}

impl serde::Serialize for ProfileOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (org, u) = (self.org, self.u);
        let (manager_id, manager_name) = manager_fields(org, u);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("firstName", &u.first_name)?;
        m.serialize_entry("lastName", &u.last_name)?;
        m.serialize_entry("mobilePhone", &None::<&str>)?;
        m.serialize_entry("secondEmail", &None::<&str>)?;
        m.serialize_entry("login", if u.guest { &u.email } else { &u.login })?;
        m.serialize_entry("email", &u.email)?;
        if sends_display_name(u) {
            m.serialize_entry("displayName", &u.display_name)?;
        }
        m.serialize_entry("department", &u.department)?;
        m.serialize_entry("title", &u.title)?;
        m.serialize_entry("employeeNumber", &u.employee_number)?;
        m.serialize_entry("userType", if u.guest { "Guest" } else { "Employee" })?;
        m.serialize_entry("managerId", &manager_id)?;
        m.serialize_entry("manager", &manager_name)?;
        m.serialize_entry(
            "profileUrl",
            &u.has_photo
                .then(|| format!("https://photos.{}/{}.png", org.domain, user_id(org, u.ix))),
        )?;
        for (k, v) in custom_attributes(u) {
            m.serialize_entry(k, &v)?;
        }
        m.end()
    }
}

impl serde::Serialize for UserOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (org, u) = (self.org, self.u);
        let id = user_id(org, u.ix);
        let activated = !matches!(u.status, UserStatus::Staged);
        let password = !matches!(u.status, UserStatus::Staged | UserStatus::Provisioned);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &id)?;
        m.serialize_entry("status", status_str(u.status))?;
        if let Some(t) = transitioning_to(u) {
            m.serialize_entry("transitioningToStatus", t)?;
        }
        m.serialize_entry("created", &rfc3339_millis(u.created))?;
        m.serialize_entry("activated", &activated.then(|| rfc3339_millis(u.created + 60)))?;
        m.serialize_entry("statusChanged", &rfc3339_millis(u.status_changed))?;
        m.serialize_entry("lastLogin", &u.last_login.map(rfc3339_millis))?;
        m.serialize_entry("lastUpdated", &rfc3339_millis(u.last_updated))?;
        m.serialize_entry(
            "passwordChanged",
            &password.then(|| rfc3339_millis(u.created + 120)),
        )?;
        m.serialize_entry(
            "type",
            &IdOnly {
                id: user_type_id(org),
            },
        )?;
        m.serialize_entry("profile", &ProfileOut { org, u })?;
        m.serialize_entry(
            "credentials",
            &Creds {
                password: password.then_some(Empty {}),
                provider: Provider {
                    ty: "OKTA",
                    name: "OKTA",
                },
            },
        )?;
        m.serialize_entry(
            "_links",
            &SelfLink {
                self_: Href {
                    href: format!("{}/api/v1/users/{id}", self.base),
                },
            },
        )?;
        m.end()
    }
}

pub(super) fn group_json(org: &Org, g: &Group, base: &str, stats: bool) -> Value {
    let id = group_id(org, g.ix);
    let ts = |t: i64| json!(rfc3339_millis(t));
    let mut profile = Map::new();
    let (object_class, description) = match g.kind {
        GroupKind::BuiltIn => (
            "okta:user_group",
            Some("All users in your organization".to_string()),
        ),
        GroupKind::Native => ("okta:user_group", g.description.clone()),
        GroupKind::Imported => ("okta:windows_security_principal", g.description.clone()),
    };
    profile.insert("name".into(), json!(g.name));
    profile.insert("description".into(), json!(description));
    let mut links = json!({
        "logo": [
            {"name": "medium", "href": format!("{base}/assets/img/logos/groups/okta-medium.png"), "type": "image/png"},
            {"name": "large", "href": format!("{base}/assets/img/logos/groups/okta-large.png"), "type": "image/png"}
        ],
        "users": { "href": format!("{base}/api/v1/groups/{id}/users") },
        "apps": { "href": format!("{base}/api/v1/groups/{id}/apps") },
    });
    if g.kind == GroupKind::Imported {
        let sam: String = g
            .name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(20)
            .collect();
        let dom = org.domain.replace('.', ",DC=");
        profile.insert("samAccountName".into(), json!(sam));
        profile.insert("dn".into(), json!(format!("CN={sam},OU=Groups,DC={dom}")));
        profile.insert(
            "windowsDomainQualifiedName".into(),
            json!(format!(
                "{}\\{sam}",
                org.domain.split('.').next().unwrap_or("CORP").to_uppercase()
            )),
        );
        profile.insert("externalId".into(), json!(ids::guid(org.seed, kind::GROUP, g.ix)));
        profile.insert("groupType".into(), json!("Security"));
        profile.insert("groupScope".into(), json!("Global"));
        links["source"] = json!({ "href": format!("{base}/api/v1/apps/{}", app_id(org)) });
    }
    let mut v = json!({
        "id": id,
        "created": ts(g.created),
        "lastUpdated": ts(g.last_updated),
        "lastMembershipUpdated": ts(g.last_membership_updated),
        "objectClass": [object_class],
        "type": group_type(g.kind),
        "profile": profile,
        "_links": links,
    });
    if stats {
        v["_embedded"] = json!({ "stats": {
            "usersCount": g.members.len(),
            "appsCount": 0,
            "groupPushMappingsCount": 0,
            "hasAdminPrivilege": false,
        }});
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_user_serialisation_equals_the_value_form() {
        let org = crate::gen::generate(&crate::gen::GenConfig {
            users: 300,
            groups: 5,
            ..crate::gen::GenConfig::default()
        });
        for u in org.live_users() {
            let fast = serde_json::to_value(UserOut {
                org: &org,
                u,
                base: "http://h",
            })
            .expect("serialise");
            assert_eq!(fast, user_json(&org, u, "http://h"), "user {}", u.ix);
        }
    }
}
