//! Benchmark: serve a generated organisation through the Okta facade and walk it completely the
//! way a sync does (every user incl. deprovisioned, every group, every group's members), measuring
//! generation time, listing throughput, client-side JSON parse time and the process's memory.
//!
//! `cargo run --release -p usersync-emulator --example okta_bench -- [USERS] [GROUPS] [CONCURRENCY]`
//! (defaults 100000 10000 4). Prints one JSON object.

use std::time::{Duration, Instant};

use usersync_emulator::{EmulatorOptions, GenConfig};

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[derive(Default)]
struct Walk {
    requests: u64,
    items: u64,
    bytes: u64,
    wait: Duration,
    parse: Duration,
}

async fn walk(client: &reqwest::Client, token: &str, mut url: String) -> Walk {
    let mut w = Walk::default();
    loop {
        let t = Instant::now();
        let r = client
            .get(&url)
            .header("Authorization", format!("SSWS {token}"))
            .send()
            .await
            .expect("request");
        assert!(r.status().is_success(), "{} {url}", r.status());
        let next = r
            .headers()
            .get_all("link")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.ends_with("rel=\"next\""))
            .and_then(|v| v.split_once('>'))
            .map(|(u, _)| u.trim_start_matches('<').to_string());
        let body = r.bytes().await.expect("body");
        w.wait += t.elapsed();
        let t = Instant::now();
        let items: Vec<serde_json::Value> = serde_json::from_slice(&body).expect("json");
        w.parse += t.elapsed();
        w.requests += 1;
        w.items += items.len() as u64;
        w.bytes += body.len() as u64;
        match next {
            Some(n) => url = n,
            None => return w,
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let users: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let groups: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let conc: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(4);
    let rss_start = rss_kib("VmRSS:");
    let t = Instant::now();
    let mut o = EmulatorOptions::new("okta");
    o.gen = GenConfig {
        users,
        groups,
        seed: 1,
        ..GenConfig::default()
    };
    let emu = usersync_emulator::start(o).await.expect("start");
    let gen_secs = t.elapsed().as_secs_f64();
    let counts = emu.org().read().await.counts();
    let rss_org = rss_kib("VmRSS:");
    let token = emu.credentials().api_token.clone();
    let base = emu.http_url.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(conc)
        .build()
        .expect("client");

    let t = Instant::now();
    let u = walk(
        &client,
        &token,
        format!("{base}/api/v1/users?limit=200&search=status%20pr"),
    )
    .await;
    let users_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let g = walk(&client, &token, format!("{base}/api/v1/groups?limit=200")).await;
    let groups_secs = t.elapsed().as_secs_f64();

    // Members of every group, `conc` groups at a time.
    let ids: Vec<String> = {
        let org = emu.org().read().await;
        org.live_groups()
            .map(|gr| usersync_emulator::providers::okta::group_id(&org, gr.ix))
            .collect()
    };
    let t = Instant::now();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(conc));
    let mut tasks = Vec::new();
    for id in ids {
        let (client, token, base, sem) = (client.clone(), token.clone(), base.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await.expect("sem");
            walk(
                &client,
                &token,
                format!("{base}/api/v1/groups/{id}/users?limit=200"),
            )
            .await
        }));
    }
    let mut m = Walk::default();
    for task in tasks {
        let w = task.await.expect("task");
        m.requests += w.requests;
        m.items += w.items;
        m.bytes += w.bytes;
        m.wait += w.wait;
        m.parse += w.parse;
    }
    let members_secs = t.elapsed().as_secs_f64();
    let rate = |w: &Walk, secs: f64| w.requests as f64 / secs;
    let out = serde_json::json!({
        "org": counts,
        "generate_secs": gen_secs,
        "rss_kib": { "start": rss_start, "after_org": rss_org, "end": rss_kib("VmRSS:"), "peak": rss_kib("VmHWM:") },
        "users": { "requests": u.requests, "items": u.items, "mb": u.bytes as f64 / 1e6, "secs": users_secs,
                   "req_per_sec": rate(&u, users_secs), "client_parse_secs": u.parse.as_secs_f64(),
                   "request_wait_secs": u.wait.as_secs_f64() },
        "groups": { "requests": g.requests, "items": g.items, "secs": groups_secs, "req_per_sec": rate(&g, groups_secs) },
        "members": { "requests": m.requests, "items": m.items, "mb": m.bytes as f64 / 1e6, "secs": members_secs,
                     "concurrency": conc, "req_per_sec": rate(&m, members_secs),
                     "client_parse_secs": m.parse.as_secs_f64(), "request_wait_secs": m.wait.as_secs_f64() },
    });
    println!("{out}");
}
