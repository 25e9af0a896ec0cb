//! The status page clicked through in a real browser: headless Chromium driven over WebDriver
//! (Debian's `chromedriver`, package chromium-driver, installed by tests/serve/setup.sh) with the
//! `fantoccini` client. It logs in with the token, sees the connection, opens the blocked run
//! (its plan, the gate's reason), clicks Approve, and the run applies: judged by the store (the
//! users are deactivated) and by the page. A screenshot is kept under target/ci-artifacts/.

use fantoccini::{Client, ClientBuilder, Locator};

use super::*;

/// A chromedriver child on a free loopback port (killed on drop) and a WebDriver session of a
/// headless Chromium with a phone-sized window.
struct Browser {
    _driver: tokio::process::Child,
    client: Client,
}

impl Browser {
    async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = tokio::process::Command::new(tool("chromedriver"))
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn chromedriver");
        let webdriver = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().no_proxy().build().expect("client");
        let until = Instant::now() + Duration::from_secs(30);
        while !http
            .get(format!("{webdriver}/status"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(
                Instant::now() < until,
                "chromedriver did not answer on {webdriver} within 30s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": tool("chromium"),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-proxy-server", "--disable-background-networking", "--window-size=412,915"],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&webdriver)
            .await
            .expect("a WebDriver session of headless Chromium");
        Browser {
            _driver: driver,
            client,
        }
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .wait()
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
            .text()
            .await
            .expect("text")
    }

    async fn click(&self, css: &str) {
        self.client
            .wait()
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` to click: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click `{css}`: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_logs_in_opens_the_blocked_run_clicks_approve_and_the_run_applies() {
    let s = start(40, "", "", "max_removals = 3\nmax_removal_percent = 100").await;
    let csrf = s.csrf().await;
    let (st, body) = s.post_form("/connections/okta/run", Some(&csrf)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    s.wait_runs("the first run", |r| {
        r.first().is_some_and(|r| r.status == RunStatus::Applied)
    })
    .await;
    // the provider deprovisions 6 active users (a change an incremental run reads; a hard delete
    // waits for a full run): more than max_removals, the gate blocks
    let victims: Vec<(u32, String)> = {
        let org = s.emu.org().read().await;
        org.live_users()
            .filter(|u| u.status == UserStatus::Active)
            .map(|u| (u.ix, u.login.clone()))
            .take(6)
            .collect()
    };
    {
        let mut org = s.emu.org().write().await;
        for (ix, _) in &victims {
            assert!(org.set_status(*ix, UserStatus::Deprovisioned));
        }
    }
    s.wait_idle().await;
    let (st, body) = s.post_form("/connections/okta/run", Some(&csrf)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let runs = s
        .wait_runs("a blocked run", |r| {
            r.first().is_some_and(|r| r.status == RunStatus::Blocked)
        })
        .await;
    let blocked = runs[0].id;

    // log in: basic credentials with the token as password, as an operator's browser sends them
    let b = Browser::start().await;
    let base = s.url.replacen("http://", &format!("http://ops:{TOKEN}@"), 1);
    b.client
        .goto(&format!("{base}/"))
        .await
        .expect("open the status page");
    let section = b.text("#conn-okta").await;
    assert!(
        section.contains("okta") && section.contains("blocked"),
        "{section}"
    );
    assert!(
        section.contains(&format!("Run {blocked} is blocked by a safety gate")),
        "{section}"
    );
    // open the blocked run: its plan and why the gate stopped it
    b.click(&format!("#conn-okta .note a[href='/runs/{blocked}']"))
        .await;
    let h1 = b.text("h1").await;
    assert_eq!(h1, format!("Run {blocked} of okta"));
    let page = b.text("body").await;
    assert!(page.contains("max_removals"), "the gate's reason: {page}");
    for (_, login) in &victims {
        assert!(page.contains(login.as_str()), "the plan names {login}: {page}");
    }
    // approve
    b.click(&format!("form[action='/runs/{blocked}/approve'] button"))
        .await;
    let done = b.text("body").await;
    assert!(
        done.contains(&format!("run {blocked} of `okta` approved")) && done.contains("up to 6 removals"),
        "{done}"
    );
    // the store: the approved run applied and the users are deactivated
    let runs = s
        .wait_runs("the approved run", |r| {
            r.first()
                .is_some_and(|r| r.id > blocked && r.status != RunStatus::Running)
        })
        .await;
    assert_eq!(runs[0].status, RunStatus::Applied, "{:?}", runs[0].errors);
    let users = s.store().users(Some("okta")).expect("users");
    for (_, login) in &victims {
        let u = users.iter().find(|u| &u.username == login).expect("stored");
        assert!(!u.active, "{login} deactivated");
    }
    // the page: back to the status page, the run applied and nothing waits for approval
    b.click("a[href='/']").await;
    let until = Instant::now() + Duration::from_secs(20);
    let section = loop {
        let section = b.text("#conn-okta").await;
        if section.contains("(idle)") {
            break section;
        }
        assert!(
            Instant::now() < until,
            "the page never showed the run applied: {section}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.client.refresh().await.expect("refresh");
    };
    assert!(!section.contains("blocked by a safety gate"), "{section}");
    let first_outcome = b.text("#conn-okta table tr:nth-child(2) td:nth-child(3)").await;
    assert_eq!(first_outcome, "applied", "{section}");
    let png = b.client.screenshot().await.expect("screenshot");
    let dir = crate::support::profile_dir().join("..").join("ci-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    std::fs::write(dir.join("serve-approve.png"), &png).expect("write screenshot");
    assert!(
        png.len() > 1000 && png.starts_with(b"\x89PNG"),
        "a PNG screenshot"
    );
    b.client.close().await.expect("close the session");
}
