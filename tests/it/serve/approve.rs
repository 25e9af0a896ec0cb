//! A run blocked by a gate: its plan on the page, approve with the CSRF token, webhooks.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_run_shows_its_plan_and_is_approved_with_the_csrf_token() {
    let (json_hook, json_got) = webhook_receiver(1).await;
    let (slack_hook, slack_got) = webhook_receiver(0).await;
    let hooks = format!(
        "[[serve.webhooks]]\nurl = \"{json_hook}\"\nretries = 3\n[[serve.webhooks]]\nurl = \"{slack_hook}\"\nformat = \"slack\"\nevents = [\"blocked\"]\n"
    );
    let s = start(60, &hooks, "", "max_removals = 3\nmax_removal_percent = 100").await;
    // manual connection: nothing runs until asked
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(s.runs().is_empty());
    let csrf = s.csrf().await;
    let (st, body) = s.post_form("/connections/okta/run", None).await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "run now without the CSRF token: {body}"
    );
    let (st, body) = s.post_form("/connections/okta/run", Some(&csrf)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    s.wait_runs("the first run", |r| {
        r.first().is_some_and(|r| r.status == RunStatus::Applied)
    })
    .await;
    assert_eq!(active_count(&s.store()), 60 - count_inactive(&s.emu).await);

    // the provider deprovisions 10 active users (read by an incremental run): the gate blocks
    let victims: Vec<(u32, String)> = {
        let org = s.emu.org().read().await;
        org.live_users()
            .filter(|u| u.status == UserStatus::Active)
            .map(|u| (u.ix, u.login.clone()))
            .take(10)
            .collect()
    };
    {
        let mut org = s.emu.org().write().await;
        for (ix, _) in &victims {
            assert!(org.set_status(*ix, UserStatus::Deprovisioned));
        }
    }
    let active_before = active_count(&s.store());
    s.wait_idle().await;
    let (st, body) = s.post_form("/connections/okta/run", Some(&csrf)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let runs = s
        .wait_runs("a blocked run", |r| {
            r.first().is_some_and(|r| r.status == RunStatus::Blocked)
        })
        .await;
    let blocked = runs[0].id;
    assert_eq!(
        active_count(&s.store()),
        active_before,
        "a blocked run changes nothing"
    );

    // the page shows the plan: who would go and why the gate stopped it
    let (st, page) = s.get("/", Some(TOKEN)).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        page.contains(&format!(
            "Run <a href=\"/runs/{blocked}\">{blocked}</a> is blocked by a safety gate"
        )),
        "{page}"
    );
    assert!(page.contains("max_removals"), "{page}");
    let shown = victims
        .iter()
        .filter(|(_, login)| page.contains(login.as_str()))
        .count();
    assert!(shown >= 1, "the plan names the users it would deactivate: {page}");
    assert!(
        page.contains(&format!("action=\"/runs/{blocked}/approve\"")),
        "{page}"
    );
    let (_, api) = s.get("/api/status", Some(TOKEN)).await;
    let v: serde_json::Value = serde_json::from_str(&api).expect("json");
    assert_eq!(v["connections"][0]["blocked"]["removals"], 10, "{v}");

    // approve without the token: refused, nothing runs
    let (st, body) = s.post_form(&format!("/runs/{blocked}/approve"), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    let (st, body) = s
        .post_form(&format!("/runs/{blocked}/approve"), Some("0000"))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.runs()[0].id, blocked, "no run started");

    // approve with it: the run applies and the store shows it
    let (st, body) = s
        .post_form(&format!("/runs/{blocked}/approve"), Some(&csrf))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(body.contains("allowing up to 10 removals"), "{body}");
    let runs = s
        .wait_runs("the approved run", |r| {
            r.first()
                .is_some_and(|r| r.id > blocked && r.status != RunStatus::Running)
        })
        .await;
    assert_eq!(runs[0].status, RunStatus::Applied, "{:?}", runs[0].errors);
    let store = s.store();
    let users = store.users(Some("okta")).expect("users");
    for (_, login) in &victims {
        let u = users
            .iter()
            .find(|u| &u.username == login)
            .expect("victim stored");
        assert!(!u.active, "{login} deactivated");
    }
    // approving it again: no longer blocked / not the latest
    let (st, body) = s
        .post_form(&format!("/runs/{blocked}/approve"), Some(&csrf))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("no longer its latest run"), "{body}");
    // approving a run that was never blocked (the applied one): refused, saying why
    let (st, body) = s
        .post_form(&format!("/runs/{}/approve", runs[0].id), Some(&csrf))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(
        body.contains(&format!(
            "run {} of `okta` is applied, not blocked: there is nothing to approve",
            runs[0].id
        )),
        "{body}"
    );

    // webhooks: blocked (the JSON one retried after its 500), recovered; Slack gets text
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let events: Vec<String> = json_got
            .lock()
            .expect("hooks")
            .iter()
            .map(|v| v["event"].to_string())
            .collect();
        if events.iter().filter(|e| e.contains("blocked")).count() >= 2
            && events.iter().any(|e| e.contains("recovered"))
        {
            break;
        }
        assert!(Instant::now() < until, "webhooks received: {events:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first = json_got.lock().expect("hooks")[0].clone();
    assert_eq!(first["event"], "blocked");
    assert_eq!(first["removals"], 10);
    assert_eq!(first["connection"], "okta");
    let slack = slack_got.lock().expect("hooks").clone();
    assert_eq!(slack.len(), 1, "slack: only the blocked event: {slack:?}");
    assert!(
        slack[0]["text"].as_str().is_some_and(|t| t.contains("blocked")),
        "{slack:?}"
    );
    s.assert_no_secret_served();
}
