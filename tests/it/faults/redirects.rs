//! Cross-origin redirects (issue 17, item 1): a provider page answered with a 302/307 to another
//! origin must never be followed. Before the fix the other origin's empty page ended the listing
//! early and the run deactivated everyone on the later pages (or removed memberships), exit 0.
//!
//! Each case aims one redirect at one kind of listing (users, groups, group members) and page
//! position (the first request of that kind, or a later one), proves the emulator sent it and the
//! other origin was never asked, and compares the whole store with the good one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use usersync_emulator::{EmulatorOptions, FaultConfig, GenConfig};

use super::env::{diff, Env};

/// A server on another origin that answers every request with a provider's empty page, counting
/// the requests it gets.
struct ForeignOrigin {
    url: String,
    hits: Arc<AtomicU64>,
}

impl ForeignOrigin {
    async fn start(body: &'static str) -> ForeignOrigin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let hits = Arc::new(AtomicU64::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    let _ = sock.read(&mut buf).await;
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        ForeignOrigin { url, hits }
    }
}

/// What an empty listing page looks like at each provider (what the other origin answers).
fn empty_page(provider: &str) -> &'static str {
    match provider {
        "entra" => r#"{"value":[]}"#,
        "google" => r#"{"kind":"admin#directory#users"}"#,
        _ => "[]",
    }
}

/// Path fragments that pick one kind of listing at each provider, as its connector requests it,
/// and whether that listing has a later request in this organisation (45 users, 25 groups, pages
/// of 10 where the connector's page size is configurable; Google pages 500 users and 200 groups,
/// OneLogin's v1 group listing 50).
fn listings(provider: &str) -> Vec<(&'static str, &'static str, bool)> {
    match provider {
        "okta" => vec![
            ("users", "/api/v1/users?", true),
            ("groups", "/api/v1/groups?", true),
            ("group members", "/users?limit", true),
        ],
        "entra" | "keycloak" => vec![
            ("users", "/users?", true),
            ("groups", "/groups?", true),
            ("group members", "/members", true),
        ],
        "google" => vec![
            ("users", "/users?", false),
            ("groups", "/groups?", false),
            ("group members", "/members", true),
        ],
        "onelogin" => vec![
            ("users", "/api/2/users?", true),
            ("groups", "/api/1/groups", false),
        ],
        other => panic!("no listings for {other}"),
    }
}

async fn redirects_are_refused(provider: &'static str) {
    let mut opts = EmulatorOptions::new(provider);
    opts.gen = GenConfig {
        users: 45,
        groups: 25,
        seed: 17,
        ..GenConfig::default()
    };
    let env = Env::with_options(provider, opts).await;
    let good = env.clean_sync("baseline").await;
    assert!(
        good.users.iter().filter(|u| u.active).count() > 20,
        "{provider}: too few users"
    );
    let foreign = ForeignOrigin::start(empty_page(provider)).await;
    let mut summary = Vec::new();
    for (kind, path, later) in listings(provider) {
        let positions: &[(&str, u64)] = if later {
            &[("first page", 0), ("a later request", 1)]
        } else {
            &[("first page", 0)]
        };
        for &(position, start_after) in positions {
            for status in [302u16, 307] {
                let case = format!("{kind}, {position}, HTTP {status}");
                env.emu
                    .set_faults(FaultConfig {
                        redirect_rate: 1.0,
                        redirect_to: Some(foreign.url.clone()),
                        redirect_status: status,
                        path_contains: Some(path.to_string()),
                        start_after,
                        max_faults: Some(1),
                        ..FaultConfig::default()
                    })
                    .expect("faults");
                let hits_before = foreign.hits.load(Ordering::SeqCst);
                let r = env.sync().await;
                assert_eq!(
                    env.faults_injected(),
                    1,
                    "{provider} / {case}: the redirect fault did not fire (path filter `{path}`)"
                );
                assert_eq!(
                    foreign.hits.load(Ordering::SeqCst),
                    hits_before,
                    "{provider} / {case}: the redirect to another origin was followed"
                );
                if let Some(d) = diff(&env.state(), &good) {
                    panic!(
                        "{provider} / {case}: the store changed: {d}\nreport: {}",
                        r.report
                    );
                }
                assert_ne!(
                    r.code, 0,
                    "{provider} / {case}: exit 0 on a refused page: {}",
                    r.report
                );
                let errors = r.report["errors"].to_string();
                assert!(
                    errors.contains("redirected") && errors.contains(&foreign.url),
                    "{provider} / {case}: the error does not name the redirect target: {errors}"
                );
                summary.push(format!("{case}: failed cleanly"));
            }
        }
    }
    // A redirect within the provider's own origin is followed: the run completes unchanged.
    env.emu
        .set_faults(FaultConfig {
            redirect_rate: 1.0,
            redirect_to: Some(env.emu.base_url().to_string()),
            redirect_status: 307,
            start_after: 1,
            max_faults: Some(1),
            ..FaultConfig::default()
        })
        .expect("faults");
    let r = env.sync().await;
    assert_eq!(
        env.faults_injected(),
        1,
        "{provider}: the same-origin redirect did not fire"
    );
    assert_eq!(
        r.code, 0,
        "{provider}: a same-origin redirect failed the run: {}",
        r.report
    );
    if let Some(d) = diff(&env.state(), &good) {
        panic!("{provider}: a same-origin redirect changed the store: {d}");
    }
    eprintln!("{provider} redirects:\n  {}", summary.join("\n  "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_cross_origin_redirects_are_refused() {
    redirects_are_refused("okta").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_cross_origin_redirects_are_refused() {
    redirects_are_refused("entra").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_cross_origin_redirects_are_refused() {
    redirects_are_refused("google").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keycloak_cross_origin_redirects_are_refused() {
    redirects_are_refused("keycloak").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onelogin_cross_origin_redirects_are_refused() {
    redirects_are_refused("onelogin").await;
}
