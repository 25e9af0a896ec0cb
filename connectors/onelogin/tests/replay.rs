//! Replay tests: recorded OneLogin exchanges (written from OneLogin's documented examples)
//! fed to the connector's cursors, outputs compared with golden files.
//! Regenerate goldens after an intended change with `UPDATE_GOLDEN=1 cargo test -p usersync-connector-onelogin`.

use std::path::Path;

#[test]
fn every_fixture_matches_its_golden_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let connector = usersync_connector_onelogin::connector();
    let n = usersync_sdk::replay::replay_dir(connector.as_ref(), &dir.join("fixtures"), &dir.join("golden"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(n >= 10, "expected the full fixture set, found {n}");
}

#[test]
fn manifest_is_valid_and_names_the_v1_paths_it_replaces_in_plain_words() {
    let m = usersync_connector_onelogin::connector().manifest();
    m.validate().expect("manifest");
    for seed in [
        "/api/v1/users",
        "/api/v1/users/{userid}",
        "/api/v1/users/{userid}/groups",
        "/api/v1/groups",
        "/api/v1/roles",
    ] {
        assert!(
            m.endpoints.iter().any(|e| e.purpose.contains(seed)),
            "no endpoint names {seed}"
        );
    }
    // the purposes say what an endpoint is for, not the project's internal words
    for e in &m.endpoints {
        assert!(!e.purpose.contains("seed"), "{}: {}", e.url, e.purpose);
    }
}
