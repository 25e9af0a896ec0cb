//! Shared helpers of the emulator's integration tests.
#![allow(dead_code)]

use usersync_emulator::{EmulatorOptions, FaultConfig, GenConfig, RunningEmulator};

/// Start an Okta emulator with a small org.
pub async fn okta(users: u32, groups: u32, faults: FaultConfig) -> RunningEmulator {
    let mut o = EmulatorOptions::new("okta");
    o.gen = GenConfig {
        users,
        groups,
        seed: 7,
        ..GenConfig::default()
    };
    o.faults = faults;
    usersync_emulator::start(o).await.expect("start okta emulator")
}

/// A client with no retries and no pooling surprises.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("client")
}

/// GET with the SSWS token.
pub async fn get(emu: &RunningEmulator, url: &str) -> reqwest::Response {
    get_with(emu, url, &emu.credentials().api_token).await
}

/// GET with a given SSWS token.
pub async fn get_with(emu: &RunningEmulator, url: &str, token: &str) -> reqwest::Response {
    let url = if url.starts_with("http") {
        url.to_string()
    } else {
        format!("{}{url}", emu.http_url)
    };
    client()
        .get(url)
        .header("Authorization", format!("SSWS {token}"))
        .send()
        .await
        .expect("send")
}

/// The `Link` header values of a response, as (url, rel).
pub fn links(r: &reqwest::Response) -> Vec<(String, String)> {
    r.headers()
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            let (u, rel) = v.split_once(">; rel=\"")?;
            Some((
                u.trim_start_matches('<').to_string(),
                rel.trim_end_matches('"').to_string(),
            ))
        })
        .collect()
}

/// The next link, if any.
pub fn next_link(r: &reqwest::Response) -> Option<String> {
    links(r)
        .into_iter()
        .find(|(_, rel)| rel == "next")
        .map(|(u, _)| u)
}

/// Walk a listing following next links; returns every item's id (panics after 10_000 pages).
pub async fn walk(emu: &RunningEmulator, first: &str) -> Vec<String> {
    let mut url = format!("{}{first}", emu.http_url);
    let mut ids = Vec::new();
    for _ in 0..10_000 {
        let r = get(emu, &url).await;
        assert_eq!(r.status(), 200, "GET {url}");
        let next = next_link(&r);
        let items: Vec<serde_json::Value> = r.json().await.expect("json array");
        ids.extend(items.iter().map(|u| u["id"].as_str().expect("id").to_string()));
        match next {
            Some(n) => url = n,
            None => return ids,
        }
    }
    panic!("listing did not end");
}
