//! Replay tests: recorded Directory API exchanges (written from Google's documented examples and
//! error bodies) fed to the connector's cursors; the records produced are compared with
//! `tests/golden/*.json`. Regenerate goldens with `UPDATE_GOLDEN=1` after reviewing a change.

use std::path::Path;

use usersync_sdk::replay::replay_dir;

#[test]
fn every_fixture_matches_its_golden_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let connector = usersync_connector_google::connector();
    match replay_dir(connector.as_ref(), &root.join("fixtures"), &root.join("golden")) {
        Ok(n) => assert!(n >= 20, "expected at least 20 fixtures, found {n}"),
        Err(e) => panic!("{e}"),
    }
}
