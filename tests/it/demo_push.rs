//! `usersync demo` pushes the synced directory into the SCIM service-provider emulator (issue 19):
//! what the emulator answers to its own GET /Users and /Groups (printed by the demo before it
//! stops the emulators) matches the store — every active synced user, every group, every
//! membership — and the store's per-target state records exactly those objects.

use std::process::Command;

use usersync_store::{SqliteStore, Store, TargetKind};

use crate::support::usersync_bin;

/// The numbers of "the SCIM emulator now holds (...): U users (A active), G groups, M memberships".
fn app_counts(stdout: &str) -> Option<(u64, u64, u64, u64)> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("the SCIM emulator now holds"))?;
    let nums: Vec<u64> = line
        .split_once("):")?
        .1
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    match nums[..] {
        [u, a, g, m] => Some((u, a, g, m)),
        _ => None,
    }
}

#[test]
fn demo_pushes_the_synced_directory_into_the_scim_emulator() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(usersync_bin())
        .args([
            "demo",
            "--provider",
            "okta",
            "--users",
            "150",
            "--groups",
            "12",
            "--dir",
        ])
        .arg(dir.path())
        .output()
        .expect("run usersync demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = std::fs::read_to_string(dir.path().join("usersync.toml")).expect("config written");
    assert!(
        config.contains("[targets.scim]") && config.contains("token = { file = "),
        "{config}"
    );
    let push = stdout
        .lines()
        .find(|l| l.starts_with("push to scim: applied"))
        .unwrap_or_else(|| panic!("a push report line:\n{stdout}"));
    let (users, active, groups, memberships) =
        app_counts(&stdout).unwrap_or_else(|| panic!("the emulator's counts:\n{stdout}"));

    let store = SqliteStore::open(&dir.path().join("usersync.db")).expect("open the demo's store");
    let okta = store.state("okta").expect("okta's state");
    let synced_active = okta.users.iter().filter(|u| u.active).count() as u64;
    assert!(synced_active > 100, "the sync created users: {synced_active}");
    assert_eq!(
        users, synced_active,
        "every active synced user is in the app: {push}"
    );
    assert_eq!(active, users, "all of them active");
    assert_eq!(groups, okta.groups.len() as u64, "every group is in the app");
    assert!(memberships > 0, "memberships were pushed");
    assert!(
        push.contains(&format!("{users} users, {groups} groups created")),
        "the report says what was created: {push}"
    );

    let state = store.target_state("push:scim").expect("the target's state");
    let kind = |k: TargetKind| state.objects.iter().filter(|o| o.kind == k).count() as u64;
    assert_eq!(kind(TargetKind::User), users);
    assert_eq!(kind(TargetKind::Group), groups);
    assert_eq!(state.members.len() as u64, memberships);
}
