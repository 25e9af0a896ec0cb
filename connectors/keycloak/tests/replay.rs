//! Replay tests: recorded Keycloak Admin REST exchanges (written from Keycloak's documented
//! representations and observed error bodies) fed to the connector's cursors, outputs compared
//! with golden files under tests/golden/.
//! Regenerate goldens after an intended change with
//! `UPDATE_GOLDEN=1 cargo test -p usersync-connector-keycloak --test replay`, then review the diff.

use std::path::Path;

use usersync_sdk::replay::{load_fixture, replay, Outcome};
use usersync_sdk::ConnectorError;

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn run(name: &str) -> Outcome {
    let f = load_fixture(&dir().join("fixtures").join(format!("{name}.json"))).expect("fixture");
    replay(usersync_connector_keycloak::connector().as_ref(), &f).expect("replay")
}

#[test]
fn every_fixture_matches_its_golden_file() {
    let connector = usersync_connector_keycloak::connector();
    let n =
        usersync_sdk::replay::replay_dir(connector.as_ref(), &dir().join("fixtures"), &dir().join("golden"))
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(n >= 30, "expected the full fixture set, found {n}");
}

// The goldens pin everything; the checks below state the quirks in words, so a regenerated golden
// cannot silently accept a wrong behaviour.

#[test]
fn short_pages_do_not_end_the_user_listing_and_duplicates_are_counted() {
    let o = run("list_users_short_pages_and_duplicates");
    assert!(o.completed);
    assert_eq!(
        o.requests, 5,
        "stops on the empty page only (4 pages), then counts"
    );
    let users: Vec<_> = o
        .records
        .iter()
        .filter_map(|r| match r {
            usersync_sdk::model::Record::User(u) => Some(u.username.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(users, ["alice", "bob", "carol"]);
    assert_eq!(o.skipped.get("duplicate_user"), Some(&1));
    assert_eq!(o.skipped.get("service_account"), Some(&1));
}

#[test]
fn errors_map_to_the_host_action() {
    let forbidden = run("list_users_forbidden_without_view_users");
    assert!(
        matches!(&forbidden.errors[..], [ConnectorError::Forbidden { needed: Some(n), .. }] if n.contains("view-users"))
    );
    let groups = run("list_groups_forbidden_without_query_groups");
    assert!(
        matches!(&groups.errors[..], [ConnectorError::Forbidden { needed: Some(n), .. }] if n.contains("query-groups"))
    );
    let realm = run("list_users_realm_not_found");
    assert!(matches!(&realm.errors[..], [ConnectorError::Config { option, .. }] if option == "realm"));
    let missing = run("get_user_not_found");
    assert!(matches!(&missing.errors[..], [ConnectorError::NotFound { .. }]));
    let retried = run("list_users_server_errors_are_retried");
    assert!(retried.completed);
    assert!(matches!(
        &retried.errors[..],
        [
            ConnectorError::Transient { .. },
            ConnectorError::Transient { .. },
            ConnectorError::RateLimited {
                retry_after_ms: Some(3000),
                ..
            }
        ]
    ));
    let lost = run("list_users_count_detects_a_lost_page");
    assert!(matches!(&lost.errors[..], [ConnectorError::Protocol { detail }] if detail.contains("counts 3")));
    assert!(!lost.completed, "a listing cut short never completes");
    let groups_lost = run("list_groups_count_detects_missing_groups");
    assert!(matches!(
        &groups_lost.errors[..],
        [ConnectorError::Protocol { .. }]
    ));
    let html = run("list_users_html_instead_of_json");
    assert!(matches!(&html.errors[..], [ConnectorError::Protocol { .. }]));
}

#[test]
fn keycloak23_children_are_walked_with_explicit_paging() {
    let o = run("list_groups_keycloak23_walks_children");
    assert!(o.completed);
    let paths: Vec<_> = o
        .records
        .iter()
        .filter_map(|r| match r {
            usersync_sdk::model::Record::Group(g) => g.path.as_deref(),
            _ => None,
        })
        .collect();
    assert_eq!(
        paths,
        [
            "/engineering",
            "/sales",
            "/hr",
            "/engineering/platform",
            "/engineering/web",
            "/engineering/platform/sre"
        ]
    );
    let legacy = run("list_groups_legacy_embedded_subgroups");
    assert_eq!(
        legacy.requests, 3,
        "older servers: the embedded tree is used, no /children calls (2 pages + the count)"
    );
    let legacy_groups = legacy
        .records
        .iter()
        .filter(|r| matches!(r, usersync_sdk::model::Record::Group(_)))
        .count();
    assert_eq!(legacy_groups, 5);
}
