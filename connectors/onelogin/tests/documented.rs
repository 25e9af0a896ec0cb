//! The connector against OneLogin's documented example responses, with expectations written by
//! hand from that documentation (not goldens written from the connector's own output).
//!
//! Source of the examples: /work/shared/api-notes/keycloak-okta-onelogin.md, section C6 "JSON
//! shapes": the v2 user (OL2 get-user sample: id 36216766, `status` 3, `state` 1, `group_id` null,
//! `role_ids` [199848, 272445], `custom_attributes` {"employeenumber": null, "food": "chicken"}),
//! the v1 group (OL1 get-groups: {"id": 417333, "name": "employees", "reference": null}) and the
//! v2 role-users item (OL2 get-role-users: id 345, "Joe User", joe.user@example.com); the status
//! and state codes of C6 (1 active, the only status that can log in; 2 suspended; 3 locked; 0
//! unactivated; state 0 unapproved) with the mapping of docs/providers/onelogin.md section 4; paging
//! of C3 (no After-Cursor: the last page; v1 `pagination.after_cursor` null: the last page).
//! The get-user sample elides the names and addresses: the test uses the role-users sample's
//! (Joe User, joe.user@example.com) and says so.

use serde_json::json;
use usersync_model::{Group, GroupKind, MemberRef, Membership, Record, User, UserState};
use usersync_sdk::replay::{replay, Fixture, Outcome};

const BASE: &str = "https://acme.onelogin.com";
const USERS_URL: &str = "https://acme.onelogin.com/api/2/users?limit=2&fields=id%2Cusername%2Cemail%2Cfirstname%2Clastname%2Cstatus%2Cstate%2Cgroup_id%2Crole_ids%2Cmanager_user_id%2Ccustom_attributes%2Cdepartment%2Ctitle%2Ccompany%2Cexternal_id%2Cdirectory_id";

/// The OL2 get-user sample with the fields the notes elide filled in from the role-users sample.
fn documented_user() -> serde_json::Value {
    json!({
        "id": 36216766,
        "username": "joe.user@example.com",
        "email": "joe.user@example.com",
        "firstname": "Joe",
        "lastname": "User",
        "status": 3,
        "state": 1,
        "group_id": null,
        "role_ids": [199848, 272445],
        "manager_user_id": null,
        "custom_attributes": {"employeenumber": null, "food": "chicken"},
        "department": null,
        "title": null,
        "company": null,
        "external_id": null,
        "directory_id": null
    })
}

/// Replay one query answered by one documented page; the run must complete in one request.
fn run(query: serde_json::Value, url: &str, body: serde_json::Value) -> Outcome {
    let fixture: Fixture = serde_json::from_value(json!({
        "query": query,
        "options": {"base_url": BASE, "client_id": "0a1b2c", "page_size": 2},
        "secrets_set": ["client_secret"],
        "exchanges": [{
            "request": {"method": "GET", "url": url},
            "response": {"status": 200, "headers": [["total-count", "1"]], "body": body}
        }]
    }))
    .expect("fixture");
    let connector = usersync_connector_onelogin::connector();
    let out = replay(connector.as_ref(), &fixture).expect("replay");
    assert!(out.completed, "{out:?}");
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.requests, 1);
    out
}

fn users(out: &Outcome) -> Vec<&User> {
    out.records
        .iter()
        .filter_map(|r| match r {
            Record::User(u) => Some(u),
            _ => None,
        })
        .collect()
}

fn memberships(out: &Outcome) -> Vec<&Membership> {
    out.records
        .iter()
        .filter_map(|r| match r {
            Record::Membership(m) => Some(m),
            _ => None,
        })
        .collect()
}

#[test]
fn the_documented_user_is_locked_kept_active_and_in_no_group() {
    let out = run(json!({"op": "list_users"}), USERS_URL, json!([documented_user()]));
    let users = users(&out);
    assert_eq!(users.len(), 1, "{:?}", out.records);
    let u = users[0];
    assert_eq!(u.id, "36216766");
    assert_eq!(u.username, "joe.user@example.com");
    assert_eq!(u.email.as_deref(), Some("joe.user@example.com"));
    assert_eq!(u.given_name.as_deref(), Some("Joe"));
    assert_eq!(u.family_name.as_deref(), Some("User"));
    assert_eq!(u.display_name.as_deref(), Some("Joe User"));
    // status 3 locked, state 1 approved: locked, which stays active (docs/providers/onelogin.md §4)
    assert_eq!(u.status.state, UserState::Locked);
    assert_eq!(u.status.raw, "status=3,state=1");
    assert!(u.status.state.is_active());
    // `manager_user_id` null: no manager, and the listing says so
    assert_eq!(u.manager, None);
    assert!(u.manager_known);
    // custom attributes by short name; a null value is no value
    assert_eq!(
        u.attributes.get("custom_attributes.food"),
        Some(&json!("chicken"))
    );
    assert!(!u.attributes.contains_key("custom_attributes.employeenumber"));
    // `group_id` null: the user is in no group (roles come from the role listings)
    assert!(memberships(&out).is_empty(), "{:?}", out.records);
}

#[test]
fn the_documented_status_codes_map_as_documented() {
    let with = |id: u64, status: u64, state: u64| {
        let mut u = documented_user();
        u["id"] = json!(id);
        u["username"] = json!(format!("user{id}"));
        u["status"] = json!(status);
        u["state"] = json!(state);
        u
    };
    let out = run(
        json!({"op": "list_users"}),
        USERS_URL,
        json!([with(1, 1, 1), with(2, 2, 1), with(3, 0, 1), with(4, 1, 0)]),
    );
    let got: Vec<(&str, UserState, &str)> = users(&out)
        .iter()
        .map(|u| (u.id.as_str(), u.status.state, u.status.raw.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("1", UserState::Active, "status=1,state=1"),
            ("2", UserState::Disabled, "status=2,state=1"),
            ("3", UserState::Staged, "status=0,state=1"),
            ("4", UserState::Staged, "status=1,state=0"),
        ]
    );
}

#[test]
fn the_documented_user_belongs_to_its_two_roles() {
    // GET /api/2/users/:id (OL2 get-user): `group_id` null, `role_ids` [199848, 272445]
    let out = run(
        json!({"op": "user_groups", "user_id": "36216766"}),
        "https://acme.onelogin.com/api/2/users/36216766",
        documented_user(),
    );
    let want = [
        Membership::direct_user("role:199848", "36216766"),
        Membership::direct_user("role:272445", "36216766"),
    ];
    assert_eq!(memberships(&out), want.iter().collect::<Vec<_>>());
}

#[test]
fn the_documented_group_and_role_users_give_a_group_and_a_role_member() {
    // OL1 get-groups: the v1 envelope, last page (`after_cursor` null)
    let body = json!({
        "status": {"error": false, "code": 200, "type": "success", "message": "Success"},
        "pagination": {"before_cursor": null, "after_cursor": null, "previous_link": null, "next_link": null},
        "data": [{"id": 417333, "name": "employees", "reference": null}]
    });
    let out = run(
        json!({"op": "list_groups"}),
        "https://acme.onelogin.com/api/1/groups",
        body,
    );
    let groups: Vec<&Group> = out
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Group(g) => Some(g),
            _ => None,
        })
        .collect();
    assert_eq!(groups.len(), 1, "{:?}", out.records);
    assert_eq!(groups[0].id, "417333");
    assert_eq!(groups[0].name, "employees");
    assert_eq!(groups[0].kind, GroupKind::Group);

    // OL2 get-role-users: one assigned user of role 199848
    let body = json!([{
        "id": 345,
        "name": "Joe User",
        "username": "joe.user@example.com",
        "added_by": {"id": 678, "name": "Susan Boss"},
        "added_at": "2019-12-27T00:00:00Z",
        "assigned": true
    }]);
    let out = run(
        json!({"op": "role_members", "role_id": "role:199848"}),
        "https://acme.onelogin.com/api/2/roles/199848/users?limit=2",
        body,
    );
    let want = Membership {
        group_id: "role:199848".into(),
        member: MemberRef::User("345".into()),
        direct: true,
    };
    assert_eq!(memberships(&out), vec![&want]);
}
