//! Wire -> model mapping (pure functions, no I/O).

use base64::Engine as _;
use usersync_model::{
    Attributes, Group, GroupKind, ManagerRef, Photo, PhotoHint, User, UserState, UserStatus,
};
use usersync_sdk::ConnectorError;

use crate::api::{GroupRep, RoleRep, UserRep};

/// What a manager attribute holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagerHolds {
    /// The manager's Keycloak username.
    Username,
    /// The manager's Keycloak user id.
    Id,
    /// The manager's email address.
    Email,
}

/// Mapping settings taken from the connection options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapConfig {
    /// User attribute naming the manager, if configured.
    pub manager_attribute: Option<String>,
    /// What that attribute holds.
    pub manager_holds: ManagerHolds,
    /// User attribute holding the photo (a `data:` URI), if configured.
    pub photo_attribute: Option<String>,
    /// Whether service-account users are synced (skipped and counted otherwise).
    pub include_service_accounts: bool,
}

/// Result of mapping one user: a user, or a reason to skip it (counted in `Batch::skipped`).
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped<T> {
    /// The record.
    Record(T),
    /// Skipped, with the kind counted in `Batch::skipped`.
    Skip(&'static str),
}

/// The status of a Keycloak user: `enabled` is the only one Keycloak has.
pub fn status(rep: &UserRep) -> Result<UserStatus, ConnectorError> {
    match rep.enabled {
        Some(true) => Ok(UserStatus::new(UserState::Active, "enabled=true")),
        Some(false) => Ok(UserStatus::new(UserState::Disabled, "enabled=false")),
        None => Err(ConnectorError::protocol(format!(
            "user `{}` has no `enabled` field: cannot tell whether the account is enabled",
            rep.id
        ))),
    }
}

/// First non-empty string value of a Keycloak attribute (`{"name": ["v1", "v2"]}`; a bare string
/// is accepted too).
pub fn first_value<'a>(attributes: Option<&'a Attributes>, name: &str) -> Option<&'a str> {
    match attributes?.get(name)? {
        serde_json::Value::String(s) => Some(s.as_str()).filter(|s| !s.trim().is_empty()),
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str())
            .map(str::trim)
            .find(|s| !s.is_empty()),
        _ => None,
    }
}

/// The manager named by the configured attribute, if any.
pub fn manager(rep: &UserRep, cfg: &MapConfig) -> Option<ManagerRef> {
    let attr = cfg.manager_attribute.as_deref()?;
    let value = first_value(rep.attributes.as_ref(), attr)?.trim().to_string();
    Some(match cfg.manager_holds {
        ManagerHolds::Username => ManagerRef::Username(value),
        ManagerHolds::Id => ManagerRef::Id(value),
        ManagerHolds::Email => ManagerRef::Email(value),
    })
}

/// Map a `UserRepresentation` to a user (or a skip for service accounts).
pub fn user(rep: &UserRep, cfg: &MapConfig) -> Result<Mapped<User>, ConnectorError> {
    if rep.service_account_client_id.is_some() && !cfg.include_service_accounts {
        return Ok(Mapped::Skip("service_account"));
    }
    let username = rep
        .username
        .as_deref()
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| ConnectorError::protocol(format!("user `{}` has no username", rep.id)))?;
    let mut u = User::new(rep.id.clone(), username, status(rep)?);
    u.email = non_empty(&rep.email);
    u.given_name = non_empty(&rep.first_name);
    u.family_name = non_empty(&rep.last_name);
    u.display_name = match (&u.given_name, &u.family_name) {
        (Some(g), Some(f)) => Some(format!("{g} {f}")),
        (Some(n), None) | (None, Some(n)) => Some(n.clone()),
        (None, None) => None,
    };
    u.manager = manager(rep, cfg);
    // Users are read in the full representation (`briefRepresentation=false`), which carries every
    // attribute: without the manager attribute the user has no manager.
    u.manager_known = cfg.manager_attribute.is_some();
    // likewise a user without the photo attribute has no photo: nothing to fetch
    if let Some(attr) = cfg.photo_attribute.as_deref() {
        if first_value(rep.attributes.as_ref(), attr).is_none() {
            u.photo = Some(PhotoHint::None);
        }
    }
    if let Some(attrs) = &rep.attributes {
        for (k, v) in attrs {
            u.attributes.insert(k.clone(), v.clone());
        }
    }
    let builtins: [(&str, Option<serde_json::Value>); 5] = [
        ("emailVerified", rep.email_verified.map(serde_json::Value::from)),
        (
            "createdTimestamp",
            rep.created_timestamp.map(serde_json::Value::from),
        ),
        (
            "federationLink",
            rep.federation_link.clone().map(serde_json::Value::from),
        ),
        (
            "serviceAccountClientId",
            rep.service_account_client_id.clone().map(serde_json::Value::from),
        ),
        (
            "requiredActions",
            rep.required_actions
                .as_ref()
                .filter(|a| !a.is_empty())
                .map(|a| serde_json::json!(a)),
        ),
    ];
    for (k, v) in builtins {
        if let Some(v) = v {
            // a custom attribute of the same name wins: it is what the administrator defined
            u.attributes.entry(k.to_string()).or_insert(v);
        }
    }
    Ok(Mapped::Record(u))
}

/// Map a `GroupRepresentation` to a group; `parent` is the group it was listed under, if any.
pub fn group(rep: &GroupRep, parent: Option<(&str, Option<&str>)>) -> Group {
    let mut g = Group::new(rep.id.clone(), rep.name.clone());
    g.description = non_empty(&rep.description);
    g.parent_id = parent
        .map(|(id, _)| id.to_string())
        .or_else(|| non_empty(&rep.parent_id));
    g.path = non_empty(&rep.path).or_else(|| match parent {
        Some((_, Some(parent_path))) => Some(format!("{}/{}", parent_path.trim_end_matches('/'), rep.name)),
        Some((_, None)) => None,
        None => Some(format!("/{}", rep.name)),
    });
    if let Some(attrs) = &rep.attributes {
        g.attributes = attrs.clone();
    }
    g
}

/// Map a realm `RoleRepresentation` to a group of kind `Role`.
pub fn role(rep: &RoleRep) -> Group {
    let mut g = Group::new(rep.id.clone(), rep.name.clone());
    g.kind = GroupKind::Role;
    g.description = non_empty(&rep.description);
    if let Some(attrs) = &rep.attributes {
        g.attributes = attrs.clone();
    }
    if let Some(c) = rep.composite {
        g.attributes
            .insert("composite".into(), serde_json::Value::Bool(c));
    }
    g
}

/// The photo held in the configured attribute, if it is a base64 `data:` URI. `Ok(None)` when
/// the user has no photo; `Err(kind)` names why a value was not usable (counted as skipped).
pub fn photo(rep: &UserRep, cfg: &MapConfig) -> Result<Option<Photo>, &'static str> {
    let Some(attr) = cfg.photo_attribute.as_deref() else {
        return Ok(None);
    };
    let Some(value) = first_value(rep.attributes.as_ref(), attr) else {
        return Ok(None);
    };
    let Some(rest) = value.strip_prefix("data:") else {
        // a URL: fetching it would send the Keycloak token to another host
        return Err("photo_url_not_fetched");
    };
    let (meta, data) = rest.split_once(',').ok_or("photo_malformed_data_uri")?;
    let mut meta_parts = meta.split(';');
    let content_type = meta_parts
        .next()
        .filter(|t| !t.is_empty())
        .unwrap_or("application/octet-stream");
    if !meta_parts.any(|p| p.eq_ignore_ascii_case("base64")) {
        return Err("photo_malformed_data_uri");
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| "photo_malformed_data_uri")?;
    Ok(Some(Photo {
        user_id: rep.id.clone(),
        content_type: content_type.to_string(),
        bytes,
    }))
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> MapConfig {
        MapConfig {
            manager_attribute: Some("manager".into()),
            manager_holds: ManagerHolds::Username,
            photo_attribute: Some("picture".into()),
            include_service_accounts: false,
        }
    }

    fn rep(json: serde_json::Value) -> UserRep {
        serde_json::from_value(json).expect("user rep")
    }

    #[test]
    fn enabled_is_the_status_and_raw_is_kept() {
        let u = rep(serde_json::json!({"id":"1","username":"a","enabled":false}));
        assert_eq!(
            status(&u).unwrap(),
            UserStatus::new(UserState::Disabled, "enabled=false")
        );
        let u = rep(serde_json::json!({"id":"1","username":"a"}));
        assert!(matches!(status(&u), Err(ConnectorError::Protocol { .. })));
    }

    #[test]
    fn manager_and_attributes() {
        let u = rep(
            serde_json::json!({"id":"1","username":"ada","enabled":true,"firstName":"Ada",
            "attributes":{"manager":["  ","grace"],"department":["R&D"]},"emailVerified":true}),
        );
        let Mapped::Record(user) = user(&u, &cfg()).unwrap() else {
            panic!("skipped")
        };
        assert_eq!(user.manager, Some(ManagerRef::Username("grace".into())));
        assert_eq!(user.display_name.as_deref(), Some("Ada"));
        assert_eq!(user.attributes["department"], serde_json::json!(["R&D"]));
        assert_eq!(user.attributes["emailVerified"], serde_json::json!(true));
    }

    #[test]
    fn service_accounts_are_skipped_unless_asked() {
        let u = rep(
            serde_json::json!({"id":"1","username":"service-account-x","enabled":true,
            "serviceAccountClientId":"x"}),
        );
        assert_eq!(user(&u, &cfg()).unwrap(), Mapped::Skip("service_account"));
        let mut c = cfg();
        c.include_service_accounts = true;
        assert!(matches!(user(&u, &c).unwrap(), Mapped::Record(_)));
    }

    #[test]
    fn photo_from_data_uri_only() {
        let u = rep(serde_json::json!({"id":"1","username":"a","enabled":true,
            "attributes":{"picture":["data:image/png;base64,iVBORw0K"]}}));
        let p = photo(&u, &cfg()).unwrap().unwrap();
        assert_eq!(p.content_type, "image/png");
        assert_eq!(p.bytes, vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a]);
        let u = rep(serde_json::json!({"id":"1","username":"a","enabled":true,
            "attributes":{"picture":["https://cdn.example.com/a.png"]}}));
        assert_eq!(photo(&u, &cfg()), Err("photo_url_not_fetched"));
    }

    #[test]
    fn group_path_is_computed_when_missing() {
        let g: GroupRep = serde_json::from_value(serde_json::json!({"id":"c","name":"b"})).unwrap();
        assert_eq!(group(&g, Some(("p", Some("/a")))).path.as_deref(), Some("/a/b"));
        assert_eq!(group(&g, None).path.as_deref(), Some("/b"));
    }
}
