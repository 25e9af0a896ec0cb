//! Every fault of the emulator issue, reproduced by its knob (the CLI flags map 1:1 onto these
//! fields) and observed through the Okta facade.

mod common;

use common::{client, get, next_link, okta};
use serde_json::Value;
use usersync_emulator::FaultConfig;

fn cfg() -> FaultConfig {
    FaultConfig::default()
}

#[tokio::test]
async fn fixed_latency_delays_answers() {
    let emu = okta(
        10,
        3,
        FaultConfig {
            latency_ms: 120,
            ..cfg()
        },
    )
    .await;
    let t = std::time::Instant::now();
    assert_eq!(get(&emu, "/api/v1/users").await.status(), 200);
    assert!(t.elapsed() >= std::time::Duration::from_millis(120));
}

#[tokio::test]
async fn rate_limit_answers_okta_429_with_headers() {
    let emu = okta(
        10,
        3,
        FaultConfig {
            rate_limit_per_minute: Some(2),
            ..cfg()
        },
    )
    .await;
    assert_eq!(get(&emu, "/api/v1/users").await.status(), 200);
    assert_eq!(get(&emu, "/api/v1/users").await.status(), 200);
    let r = get(&emu, "/api/v1/users").await;
    assert_eq!(r.status(), 429);
    let h = r.headers().clone();
    assert_eq!(
        h.get("x-rate-limit-limit").and_then(|v| v.to_str().ok()),
        Some("2")
    );
    assert_eq!(
        h.get("x-rate-limit-remaining").and_then(|v| v.to_str().ok()),
        Some("0")
    );
    assert!(h.get("x-rate-limit-reset").is_some() && h.get("date").is_some());
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["errorCode"], "E0000047");
    assert_eq!(
        v["errorSummary"],
        "API call exceeded rate limit due to too many requests."
    );
    // Buckets are per endpoint.
    assert_eq!(get(&emu, "/api/v1/groups").await.status(), 200);
}

#[tokio::test]
async fn concurrency_limit_answers_429() {
    let emu = okta(
        10,
        3,
        FaultConfig {
            concurrency_limit: Some(1),
            latency_ms: 300,
            ..cfg()
        },
    )
    .await;
    let (a, b) = tokio::join!(get(&emu, "/api/v1/users"), get(&emu, "/api/v1/users"));
    let mut s = [a.status().as_u16(), b.status().as_u16()];
    s.sort_unstable();
    assert_eq!(s, [200, 429]);
}

#[tokio::test]
async fn server_errors_500_is_okta_json_502_503_are_edge_pages() {
    let emu = okta(
        10,
        3,
        FaultConfig {
            error_rate: 1.0,
            error_statuses: vec![500],
            ..cfg()
        },
    )
    .await;
    let r = get(&emu, "/api/v1/users").await;
    assert_eq!(r.status(), 500);
    assert_eq!(r.json::<Value>().await.expect("json")["errorCode"], "E0000009");
    emu.set_faults(FaultConfig {
        error_rate: 1.0,
        error_statuses: vec![502, 503],
        seed: 3,
        ..cfg()
    })
    .expect("set");
    for _ in 0..4 {
        let r = get(&emu, "/api/v1/users").await;
        assert!([502, 503].contains(&r.status().as_u16()));
        assert!(r.text().await.expect("text").starts_with("<html>"));
    }
}

#[tokio::test]
async fn error_probability_is_deterministic_under_a_seed() {
    let f = FaultConfig {
        error_rate: 0.4,
        seed: 11,
        ..cfg()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let emu = okta(10, 3, f.clone()).await;
        let mut statuses = Vec::new();
        for _ in 0..20 {
            statuses.push(get(&emu, "/api/v1/users").await.status().as_u16());
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].contains(&200) && runs[0].iter().any(|s| *s >= 500));
}

#[tokio::test]
async fn connection_reset() {
    let emu = okta(
        10,
        3,
        FaultConfig {
            reset_rate: 1.0,
            max_faults: Some(1),
            ..cfg()
        },
    )
    .await;
    let err = client()
        .get(format!("{}/api/v1/users", emu.http_url))
        .header("Authorization", format!("SSWS {}", emu.credentials().api_token))
        .send()
        .await
        .expect_err("the connection is reset");
    assert!(
        err.is_request() || err.is_connect() || err.to_string().contains("error"),
        "{err:?}"
    );
    assert_eq!(
        get(&emu, "/api/v1/users").await.status(),
        200,
        "healthy after max_faults"
    );
}

#[tokio::test]
async fn truncated_body() {
    let emu = okta(
        30,
        3,
        FaultConfig {
            truncate_rate: 1.0,
            ..cfg()
        },
    )
    .await;
    let r = get(&emu, "/api/v1/users").await;
    assert_eq!(r.status(), 200);
    let promised = r.content_length().expect("content-length");
    assert!(
        r.bytes().await.is_err(),
        "body shorter than its Content-Length ({promised})"
    );
}

#[tokio::test]
async fn malformed_json() {
    let emu = okta(
        30,
        3,
        FaultConfig {
            malformed_rate: 1.0,
            ..cfg()
        },
    )
    .await;
    let r = get(&emu, "/api/v1/users").await;
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.expect("complete body");
    assert!(serde_json::from_slice::<Value>(&body).is_err());
}

#[tokio::test]
async fn slow_drip_delivers_the_same_body() {
    let emu = okta(5, 3, cfg()).await;
    let normal = get(&emu, "/api/v1/users?fields=status")
        .await
        .bytes()
        .await
        .expect("body");
    emu.set_faults(FaultConfig {
        drip_rate: 1.0,
        drip_chunk_bytes: 64,
        drip_pause_ms: 5,
        ..cfg()
    })
    .expect("set");
    let t = std::time::Instant::now();
    let dripped = get(&emu, "/api/v1/users?fields=status")
        .await
        .bytes()
        .await
        .expect("body");
    assert_eq!(normal, dripped);
    let chunks = normal.len().div_ceil(64) as u64;
    assert!(t.elapsed() >= std::time::Duration::from_millis(5 * chunks));
}

#[tokio::test]
async fn paging_loop_next_link_points_back() {
    let emu = okta(
        50,
        3,
        FaultConfig {
            paging_loop_at_page: Some(2),
            ..cfg()
        },
    )
    .await;
    let r1 = get(&emu, "/api/v1/users?limit=10").await;
    let n1 = next_link(&r1).expect("next 1");
    let r2 = get(&emu, &n1).await;
    assert_eq!(next_link(&r2), Some(n1), "page 2's next link is page 2 again");
}

#[tokio::test]
async fn page_token_expires_mid_listing() {
    let emu = okta(
        50,
        3,
        FaultConfig {
            expire_token_at_page: Some(3),
            ..cfg()
        },
    )
    .await;
    let r1 = get(&emu, "/api/v1/users?limit=10").await;
    let r2 = get(&emu, &next_link(&r1).expect("next")).await;
    assert_eq!(r2.status(), 200);
    let r3 = get(&emu, &next_link(&r2).expect("next")).await;
    assert_eq!(r3.status(), 400);
    let v: Value = r3.json().await.expect("json");
    assert_eq!(v["errorCode"], "E0000001");
}

#[tokio::test]
async fn empty_page_with_a_next_link() {
    let emu = okta(
        50,
        3,
        FaultConfig {
            empty_page_at: Some(1),
            ..cfg()
        },
    )
    .await;
    let r1 = get(&emu, "/api/v1/users?limit=10").await;
    let next = next_link(&r1).expect("next despite the empty page");
    assert_eq!(r1.json::<Vec<Value>>().await.expect("json").len(), 0);
    let r2 = get(&emu, &next).await;
    assert_eq!(r2.json::<Vec<Value>>().await.expect("json").len(), 10);
}

#[tokio::test]
async fn start_after_hits_mid_listing() {
    let emu = okta(
        50,
        3,
        FaultConfig {
            error_rate: 1.0,
            error_statuses: vec![503],
            start_after: 2,
            ..cfg()
        },
    )
    .await;
    let r1 = get(&emu, "/api/v1/users?limit=10").await;
    let r2 = get(&emu, &next_link(&r1).expect("next")).await;
    let r3 = get(&emu, &next_link(&r2).expect("next")).await;
    assert_eq!(
        (r1.status(), r2.status(), r3.status().as_u16()),
        (reqwest::StatusCode::OK, reqwest::StatusCode::OK, 503)
    );
}

#[tokio::test]
async fn control_endpoint_sets_and_validates_faults() {
    let emu = okta(10, 3, cfg()).await;
    let c = client();
    let url = format!("{}/_emulator/faults", emu.http_url);
    let r = c
        .put(&url)
        .json(&serde_json::json!({"error_rate": 1.0, "error_statuses": [503]}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 200);
    assert_eq!(get(&emu, "/api/v1/users").await.status(), 503);
    let r = c
        .put(&url)
        .json(&serde_json::json!({"error_rate": 3.0}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("text").contains("error_rate"));
    let r = c
        .put(&url)
        .json(&serde_json::json!({"no_such_knob": 1}))
        .send()
        .await
        .expect("put");
    assert!(r.status().is_client_error());
    let stats: Value = c
        .get(format!("{}/_emulator/stats", emu.http_url))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(stats["requests"].as_u64().is_some_and(|n| n >= 1));
    assert_eq!(stats["org"]["users"], 10);
}
