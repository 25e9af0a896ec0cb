//! Several connections sharing one store: usernames are unique across the store, the earlier
//! connection keeps a contested name, the conflict is reported on every run and nothing is merged.

use serde_json::Value;

use crate::support::{count, start_emulator, sync_report, usersync_command};

/// Run `usersync sync --format json` with both tokens; (exit code, reports by connection name).
async fn sync(dir: &std::path::Path, token_a: &str, token_b: &str) -> (i32, Vec<Value>) {
    let run = sync_report(
        &dir.join("usersync.toml"),
        &[],
        &[("A_TOKEN", token_a), ("B_TOKEN", token_b)],
    )
    .await;
    (run.code, run.reports)
}

/// `usersync users list --format json` rows.
async fn users(dir: &std::path::Path) -> Vec<Value> {
    let out = usersync_command(&dir.join("usersync.toml"))
        .args(["users", "list", "--format", "json"])
        .output()
        .await
        .expect("run usersync");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("users list json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_username_taken_by_an_earlier_connection_is_reported_never_merged() {
    let a = start_emulator("okta", 30, 4, 11).await;
    let b = start_emulator("okta", 30, 4, 12).await;
    // someone in org B signs in with org A's first user's login, in other letter case
    let taken = {
        let org = a.org().read().await;
        let login = org.live_users().next().expect("a user").login.clone();
        login
    };
    let contested = taken.to_uppercase();
    b.org().write().await.add_user(&contested, "Other", "Person");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[store]\npath = \"store.db\"\n\n\
         [[connections]]\nname = \"org-a\"\nconnector = \"okta\"\n[connections.options]\nbase_url = \"{}\"\n\
         api_token = {{ env = \"A_TOKEN\" }}\n\n\
         [[connections]]\nname = \"org-b\"\nconnector = \"okta\"\n[connections.options]\nbase_url = \"{}\"\n\
         api_token = {{ env = \"B_TOKEN\" }}\n",
        a.http_url, b.http_url
    );
    std::fs::write(dir.path().join("usersync.toml"), config).expect("write config");
    let (ta, tb) = (
        a.credentials().api_token.clone(),
        b.credentials().api_token.clone(),
    );

    for run in 0..2 {
        let (code, reports) = sync(dir.path(), &ta, &tb).await;
        assert_eq!(code, 0, "run {run}: {reports:?}");
        let (ra, rb) = (&reports[0], &reports[1]);
        assert_eq!(ra["connection"], "org-a");
        assert_eq!(rb["connection"], "org-b");
        assert_eq!(ra["status"], "applied", "{ra}");
        assert_eq!(rb["status"], "applied", "{rb}");
        let conflicts: Vec<&str> = rb["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(Value::as_str)
            .filter(|e| e.to_lowercase().contains(&taken.to_lowercase()))
            .collect();
        assert_eq!(
            conflicts.len(),
            1,
            "run {run}: the conflict is reported once: {rb}"
        );
        assert!(
            conflicts[0].contains("org-a"),
            "names the holder: {}",
            conflicts[0]
        );
        if run == 1 {
            // the resync changes nothing, and still reports the conflict
            for r in [ra, rb] {
                assert_eq!(count(r, "/users/created") + count(r, "/users/updated"), 0, "{r}");
                assert_eq!(
                    count(r, "/memberships/added") + count(r, "/memberships/removed"),
                    0,
                    "{r}"
                );
            }
        }
    }
    // the name stays with org A's person; org B's person was not created, not merged
    let rows = users(dir.path()).await;
    let holders: Vec<&Value> = rows
        .iter()
        .filter(|u| {
            u["username"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(&taken))
        })
        .collect();
    assert_eq!(holders.len(), 1, "{holders:?}");
    assert_eq!(holders[0]["connection"], "org-a", "{:?}", holders[0]);
    let by_conn = |c: &str| rows.iter().filter(|u| u["connection"] == c).count();
    assert!(by_conn("org-a") >= 25, "org A's people are all there");
    assert!(by_conn("org-b") >= 25, "org B's other people are all there");
}
