//! Replay tests: recorded Okta exchanges (written from Okta's documented examples and error
//! bodies) fed to the connector's cursors; the records, skip counts and errors produced are
//! compared with golden files under `tests/golden/`.
//!
//! After an intended change, regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p usersync-connector-okta --test replay` and review the diff.

use std::path::{Path, PathBuf};

use usersync_sdk::replay::{check_golden, load_fixture, replay, replay_dir, Outcome};
use usersync_sdk::ConnectorError;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn run(name: &str) -> Outcome {
    let path = dir().join("fixtures").join(format!("{name}.json"));
    let fixture = load_fixture(&path).unwrap_or_else(|e| panic!("{e}"));
    replay(usersync_connector_okta::connector().as_ref(), &fixture).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_fixture_matches_its_golden_file() {
    let d = dir();
    let connector = usersync_connector_okta::connector();
    let n = replay_dir(connector.as_ref(), &d.join("fixtures"), &d.join("golden"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(n >= 33, "expected the full fixture set, found {n}");
}

#[test]
fn golden_check_fails_when_the_output_changes() {
    let mut out = run("get_user");
    let golden = dir().join("golden").join("get_user.json");
    check_golden(&golden, &out).expect("unchanged output matches");
    out.records.clear();
    if std::env::var_os("UPDATE_GOLDEN").is_none() {
        assert!(
            check_golden(&golden, &out).is_err(),
            "a changed output must not match the golden file"
        );
    }
}

#[test]
fn deprovisioned_and_every_other_status_are_listed() {
    use usersync_sdk::model::{Record, UserState};
    let out = run("list_users_pages_link_forms_every_status");
    assert!(out.completed);
    assert_eq!(
        out.requests, 3,
        "three pages, following rel=next from separate and combined Link values"
    );
    let statuses: Vec<(String, UserState)> = out
        .records
        .iter()
        .filter_map(|r| match r {
            Record::User(u) => Some((u.status.raw.clone(), u.status.state)),
            _ => None,
        })
        .collect();
    for raw in [
        "ACTIVE",
        "DEPROVISIONED",
        "STAGED",
        "PROVISIONED",
        "RECOVERY",
        "PASSWORD_EXPIRED",
        "LOCKED_OUT",
        "SUSPENDED",
    ] {
        assert!(statuses.iter().any(|(r, _)| r == raw), "status {raw} missing");
    }
    assert!(statuses.contains(&("DEPROVISIONED".into(), UserState::Deprovisioned)));
}

#[test]
fn errors_map_to_what_the_host_does_next() {
    let last = |name: &str| {
        run(name)
            .errors
            .last()
            .cloned()
            .unwrap_or_else(|| panic!("{name}: no error"))
    };
    assert!(matches!(
        last("list_users_rate_limited_then_resumes"),
        ConnectorError::RateLimited {
            retry_after_ms: Some(23_000),
            ..
        }
    ));
    assert!(matches!(
        last("list_users_concurrency_limit_reset_is_capped"),
        ConnectorError::RateLimited {
            retry_after_ms: Some(60_000),
            ..
        }
    ));
    assert!(matches!(
        last("list_users_invalid_token_then_refreshed"),
        ConnectorError::Unauthorized { .. }
    ));
    assert!(matches!(
        last("list_users_oauth_dpop_proof_rejected_then_ok"),
        ConnectorError::Unauthorized { .. }
    ));
    match last("list_users_forbidden_api_token") {
        ConnectorError::Forbidden { needed: Some(n), .. } => {
            assert!(n.contains("Read-Only Administrator"), "{n}")
        }
        other => panic!("{other:?}"),
    }
    match last("list_users_oauth_insufficient_scope") {
        ConnectorError::Forbidden {
            needed: Some(n),
            detail,
        } => {
            assert!(n.contains("okta.users.read"), "{n}");
            assert!(detail.contains("insufficient_scope"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    match last("group_members_oauth_missing_groups_scope") {
        ConnectorError::Forbidden { needed: Some(n), .. } => assert!(n.contains("okta.groups.read"), "{n}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        last("get_user_not_found"),
        ConnectorError::NotFound { .. }
    ));
    assert!(matches!(
        last("group_members_group_gone"),
        ConnectorError::NotFound { .. }
    ));
    assert!(matches!(
        last("list_users_invalid_search_is_protocol"),
        ConnectorError::Protocol { .. }
    ));
    let transient = run("list_users_server_errors_are_transient");
    assert!(transient.completed);
    assert!(transient
        .errors
        .iter()
        .all(|e| matches!(e, ConnectorError::Transient { .. })));
    for name in [
        "list_users_unknown_status_stops",
        "list_users_missing_login_stops",
        "list_users_truncated_body_stops",
        "list_users_next_link_to_other_host_refused",
        "list_users_paging_loop_stops",
        "list_users_wrong_base_path_is_not_an_empty_listing",
    ] {
        let out = run(name);
        assert!(!out.completed, "{name}");
        assert!(
            matches!(out.errors.last(), Some(ConnectorError::Protocol { .. })),
            "{name}: {:?}",
            out.errors
        );
    }
}

#[test]
fn try_again_later_is_transient_and_user_groups_follow_next_links() {
    use usersync_sdk::model::{MemberRef, Record};
    let out = run("user_groups_try_again_later_then_paged");
    assert!(out.completed, "{:?}", out.errors);
    assert_eq!(out.requests, 3, "the 423, then two pages");
    assert!(
        matches!(&out.errors[..], [ConnectorError::Transient { detail }] if detail.contains("E0000239")),
        "{:?}",
        out.errors
    );
    let groups: Vec<&str> = out
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Membership(m) if m.member == MemberRef::User("00u118oQYT4TBTemp0g4".into()) => {
                Some(m.group_id.as_str())
            }
            _ => None,
        })
        .collect();
    assert!(
        groups.contains(&"00garwpuyxHaWOkdV0g4"),
        "the second page was read: {groups:?}"
    );
}

#[test]
fn real_profiles_free_text_manager_typed_attributes_no_display_name() {
    use usersync_sdk::model::{ManagerRef, Record, User};
    let out = run("list_users_real_profiles");
    assert!(out.completed, "{:?}", out.errors);
    let users: Vec<&User> = out
        .records
        .iter()
        .filter_map(|r| match r {
            Record::User(u) => Some(u),
            _ => None,
        })
        .collect();
    assert_eq!(users.len(), 3);
    let (jimbo, alice, bart) = (users[0], users[1], users[2]);
    let keys = vec!["id".to_string(), "attributes.employeeNumber".to_string()];
    // `managerId: "222222"` is Jimbo's employee number: left for the host to resolve
    assert_eq!(
        alice.manager,
        Some(ManagerRef::Lookup {
            value: "222222".into(),
            keys: keys.clone()
        })
    );
    assert_eq!(alice.attributes["managerId"], serde_json::json!("222222"));
    assert_eq!(alice.attributes["manager"], serde_json::json!("Jimbo"));
    assert_eq!(bart.attributes["managerId"], serde_json::json!("Jimbo"));
    assert_eq!(jimbo.manager, None);
    assert!(
        !jimbo.attributes.contains_key("managerId"),
        "null values are left out"
    );
    // custom attributes keep their JSON type
    assert_eq!(alice.attributes["employeeNumber"], serde_json::json!(187));
    assert_eq!(alice.attributes["costCenter"], serde_json::json!(10.5));
    assert_eq!(alice.attributes["isContractor"], serde_json::json!(true));
    assert_eq!(jimbo.attributes["isContractor"], serde_json::json!(false));
    assert_eq!(jimbo.attributes["clearances"], serde_json::json!(["lab"]));
    // a lifecycle operation in flight is recorded; the current status still decides
    assert_eq!(alice.status.raw, "ACTIVE");
    assert_eq!(
        alice.attributes["okta.transitioningToStatus"],
        serde_json::json!("DEPROVISIONED")
    );
    // no displayName: first and last name
    assert_eq!(alice.display_name.as_deref(), Some("Alice Smith"));
    assert_eq!(bart.display_name.as_deref(), Some("El Barto"));
}
