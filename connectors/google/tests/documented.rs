//! The connector against Google's documented example responses, with expectations written by hand
//! from that documentation (not goldens written from the connector's own output).
//!
//! Source of the examples: /work/shared/api-notes/entra-and-google.md, section B6 "JSON shapes"
//! (the Users page with `homer@simpson.corp`, the Group and the Members page, field names from the
//! discovery schemas in /work/shared/reference/google-admin.directory_v1.json), and B2 "Member
//! types" (a CUSTOMER member stands for all users of the domain and has no email). Where the
//! documentation elides a value (`"…"`), the test fills in one and says so.

use serde_json::json;
use usersync_model::{Group, ManagerRef, MemberRef, Membership, Record, User, UserState};
use usersync_sdk::replay::{replay, Fixture, Outcome};

const USERS_URL: &str = "https://www.googleapis.com/admin/directory/v1/users?customer=my_customer&maxResults=500&projection=full&fields=nextPageToken%2Cusers%28id%2CprimaryEmail%2Cname%2Csuspended%2CsuspensionReason%2Carchived%2CisAdmin%2CisDelegatedAdmin%2CorgUnitPath%2CcustomerId%2CcreationTime%2ClastLoginTime%2Caliases%2CnonEditableAliases%2Corganizations%2Crelations%2CexternalIds%2Cphones%2CcustomSchemas%2CthumbnailPhotoEtag%2CisEnrolledIn2Sv%29";
const GROUPS_URL: &str = "https://www.googleapis.com/admin/directory/v1/groups?customer=my_customer&maxResults=200&fields=nextPageToken%2Cgroups%28id%2Cemail%2Cname%2Cdescription%2CdirectMembersCount%2CadminCreated%2Caliases%2CnonEditableAliases%29";
const MEMBERS_URL: &str = "https://www.googleapis.com/admin/directory/v1/groups/03x8tuzt1abc001/members?maxResults=200&fields=nextPageToken%2Cmembers%28id%2Cemail%2Crole%2Ctype%2Cstatus%29";

/// Replay one query answered by one documented page; the run must complete in one request.
fn run(query: serde_json::Value, url: &str, body: serde_json::Value) -> Outcome {
    let fixture: Fixture = serde_json::from_value(json!({
        "query": query,
        "options": {"admin_email": "admin@simpson.corp"},
        "secrets_set": ["service_account_key"],
        "exchanges": [{
            "request": {"method": "GET", "url": url},
            "response": {
                "status": 200,
                "headers": [["Content-Type", "application/json; charset=UTF-8"]],
                "body": body
            }
        }]
    }))
    .expect("fixture");
    let connector = usersync_connector_google::connector();
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

#[test]
fn the_documented_users_page_gives_homer_active_with_marge_as_manager() {
    // B6 "Users page", as documented; `etag`, `suspensionReason`, `lastLoginTime`,
    // `thumbnailPhotoUrl`/`thumbnailPhotoEtag`, `aliases`, `customSchemas` and `deletionTime` are
    // elided ("…") there and left out here, `emails[0].address` is the primary address.
    let body = json!({
        "kind": "admin#directory#users",
        "users": [{
            "kind": "admin#directory#user",
            "id": "1234567890",
            "primaryEmail": "homer@simpson.corp",
            "name": {"givenName": "Homer", "familyName": "Simpson", "fullName": "Homer Simpson"},
            "isAdmin": false,
            "isDelegatedAdmin": false,
            "suspended": false,
            "archived": false,
            "orgUnitPath": "/Engineering",
            "customerId": "C0abc123",
            "creationTime": "2023-02-01T00:00:00.000Z",
            "emails": [{"address": "homer@simpson.corp", "primary": true}],
            "organizations": [{"name": "Simpson Corp", "title": "Engineer", "department": "Eng", "primary": true}],
            "relations": [{"type": "manager", "value": "marge@simpson.corp"}]
        }]
    });
    let out = run(json!({"op": "list_users"}), USERS_URL, body);
    let users = users(&out);
    assert_eq!(users.len(), 1, "{:?}", out.records);
    let homer = users[0];
    // B2/B6: the immutable `id` is the key, the primary email the sign-in name and the email
    assert_eq!(homer.id, "1234567890");
    assert_eq!(homer.username, "homer@simpson.corp");
    assert_eq!(homer.email.as_deref(), Some("homer@simpson.corp"));
    assert_eq!(homer.given_name.as_deref(), Some("Homer"));
    assert_eq!(homer.family_name.as_deref(), Some("Simpson"));
    assert_eq!(homer.display_name.as_deref(), Some("Homer Simpson"));
    // neither suspended nor archived: active
    assert_eq!(homer.status.state, UserState::Active);
    assert_eq!(homer.status.raw, "suspended=false,archived=false");
    // the manager is the free-text `relations[type=manager].value`, resolved by the host
    assert_eq!(
        homer.manager.as_ref().map(ManagerRef::value),
        Some("marge@simpson.corp")
    );
    assert!(homer.manager_known);
    // jobTitle/department come from the primary organization
    assert_eq!(homer.attributes.get("title"), Some(&json!("Engineer")));
    assert_eq!(homer.attributes.get("department"), Some(&json!("Eng")));
    assert_eq!(homer.attributes.get("orgUnitPath"), Some(&json!("/Engineering")));
}

#[test]
fn a_documented_user_suspended_or_archived_is_not_active() {
    // The same documented user with `suspended: true` (suspensionReason ADMIN, one of the
    // discovery's documented reasons), and another archived one.
    let body = json!({
        "kind": "admin#directory#users",
        "users": [
            {
                "kind": "admin#directory#user",
                "id": "1234567890",
                "primaryEmail": "homer@simpson.corp",
                "name": {"givenName": "Homer", "familyName": "Simpson", "fullName": "Homer Simpson"},
                "suspended": true,
                "suspensionReason": "ADMIN",
                "archived": false
            },
            {
                "kind": "admin#directory#user",
                "id": "1234567891",
                "primaryEmail": "marge@simpson.corp",
                "name": {"givenName": "Marge", "familyName": "Simpson", "fullName": "Marge Simpson"},
                "suspended": false,
                "archived": true
            }
        ]
    });
    let out = run(json!({"op": "list_users"}), USERS_URL, body);
    let users = users(&out);
    let states: Vec<(&str, UserState, &str)> = users
        .iter()
        .map(|u| (u.id.as_str(), u.status.state, u.status.raw.as_str()))
        .collect();
    assert_eq!(
        states,
        vec![
            (
                "1234567890",
                UserState::Disabled,
                "suspended=true,archived=false,suspensionReason=ADMIN"
            ),
            (
                "1234567891",
                UserState::Deprovisioned,
                "suspended=false,archived=true"
            ),
        ]
    );
    assert!(users.iter().all(|u| !u.status.state.is_active()));
}

#[test]
fn the_documented_group_and_members_pages_give_the_group_and_its_direct_members() {
    // B6 "Group": `directMembersCount` is a string; `etag` elided, `description` filled in.
    let groups = json!({
        "kind": "admin#directory#groups",
        "groups": [{
            "kind": "admin#directory#group",
            "id": "03x8tuzt1abc001",
            "email": "engineering@simpson.corp",
            "name": "Engineering",
            "description": "Everyone in engineering",
            "directMembersCount": "3",
            "adminCreated": true,
            "aliases": [],
            "nonEditableAliases": []
        }]
    });
    let out = run(json!({"op": "list_groups"}), GROUPS_URL, groups);
    let got: Vec<&Group> = out
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Group(g) => Some(g),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 1, "{:?}", out.records);
    assert_eq!(got[0].id, "03x8tuzt1abc001");
    assert_eq!(got[0].name, "Engineering");
    assert_eq!(got[0].description.as_deref(), Some("Everyone in engineering"));

    // B6 "Members page" with the documented member types of B2: a USER, a nested GROUP, and the
    // CUSTOMER member (all users of the domain: no email, the id is the customer id).
    let members = json!({
        "kind": "admin#directory#members",
        "members": [
            {"kind": "admin#directory#member", "id": "1234567890", "email": "homer@simpson.corp",
             "role": "OWNER", "type": "USER", "status": "ACTIVE"},
            {"kind": "admin#directory#member", "id": "03x8tuzt1abc002", "email": "sector7g@simpson.corp",
             "role": "MEMBER", "type": "GROUP"},
            {"kind": "admin#directory#member", "id": "C0abc123", "role": "MEMBER", "type": "CUSTOMER"}
        ]
    });
    let out = run(
        json!({"op": "group_members", "group_id": "03x8tuzt1abc001"}),
        MEMBERS_URL,
        members,
    );
    let got: Vec<&Membership> = out
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Membership(m) => Some(m),
            _ => None,
        })
        .collect();
    let want = [
        Membership {
            group_id: "03x8tuzt1abc001".into(),
            member: MemberRef::User("1234567890".into()),
            direct: true,
        },
        Membership {
            group_id: "03x8tuzt1abc001".into(),
            member: MemberRef::Group("03x8tuzt1abc002".into()),
            direct: true,
        },
        Membership {
            group_id: "03x8tuzt1abc001".into(),
            member: MemberRef::AllUsers,
            direct: true,
        },
    ];
    assert_eq!(got, want.iter().collect::<Vec<_>>());
}
