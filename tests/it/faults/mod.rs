//! Fault and abuse suite (issue 12): `usersync sync` (the binary, as a subprocess) against every
//! provider emulator (in-process) while the emulator injects faults. Every faulted run must either
//! complete correctly (the store then equals what a clean run produces) or fail cleanly (non-zero
//! exit, a `failed`/`blocked` report naming an error, and the store exactly as before). Nobody is
//! ever deactivated by a fault. Expectations come from the store and the emulator, not from the
//! code under test.

mod env;
mod limits;
mod redirects;

use env::{count, diff, failed_run_is_safe, Env};
use usersync_emulator::{EmulatorOptions, FaultConfig, GenConfig};
/// Whether a case must succeed (the runtime's retries cover it), must fail cleanly, or may do
/// either (whether retries absorb the fault depends on which concurrent request it hits).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Expect {
    Complete,
    CompleteOrCleanFailure,
    /// Must fail cleanly (non-zero exit, nothing destructive).
    CleanFailure,
    /// Must fail cleanly, with an error naming the failed query (`query <what> failed: ...`).
    CleanFailureNamingTheQuery,
}

/// The outcome docs/reliability.md's fault matrix promises for `provider` where it names one
/// outcome (the cases where it says "completes or fails cleanly" keep the matrix's default).
fn documented(provider: &str, f: &FaultConfig, default: Expect) -> Expect {
    use Expect::*;
    let paging =
        f.paging_loop_at_page.is_some() || f.expire_token_at_page.is_some() || f.empty_page_at.is_some();
    if paging {
        // Google's listings here fit in one page: paging faults are never reached (footnote 1)
        return match provider {
            "google" => Complete,
            "keycloak" if f.expire_token_at_page.is_some() => Complete,
            "keycloak" => CleanFailure,
            _ if f.empty_page_at.is_some() => Complete,
            _ => CleanFailure,
        };
    }
    if (f.error_rate >= 1.0 && f.max_faults.is_none())
        || f.rate_limit_per_minute.is_some()
        || f.malformed_rate > 0.0
        || f.latency_ms >= TIMEOUT_CASE_LATENCY_MS
    {
        return CleanFailure;
    }
    if f.concurrency_limit.is_some() {
        return Complete;
    }
    default
}

/// How a case proves its fault fired, from the emulator's own counters.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Proof {
    /// Request-level faults injected (`Faults::injected`).
    Injected,
    /// Throttle answers sent (the emulator's `throttled` counter grew).
    Throttled,
    /// Paging faults served (`Faults::paging_served`).
    Paging,
    /// The paging fault cannot be reached in this organisation: none may be served.
    Unreachable,
    /// Latency applies to every request after `start_after`: requests past it were served.
    Latency,
}

fn proof(provider: &str, f: &FaultConfig) -> Proof {
    if f.rate_limit_per_minute.is_some() || f.concurrency_limit.is_some() {
        Proof::Throttled
    } else if f.paging_loop_at_page.is_some()
        || f.expire_token_at_page.is_some()
        || f.empty_page_at.is_some()
        || f.repeat_at_page.is_some()
    {
        match provider {
            "google" => Proof::Unreachable,
            "keycloak" if f.expire_token_at_page.is_some() => Proof::Unreachable,
            _ => Proof::Paging,
        }
    } else if f.latency_ms > 0 {
        Proof::Latency
    } else {
        Proof::Injected
    }
}

/// The timeout case's latency: twice its request timeout ([`case_runtime`]).
const TIMEOUT_CASE_LATENCY_MS: u64 = 2000;

/// `[runtime]` settings a case runs with instead of the suite's ([`env::REQUEST_TIMEOUT_SECS`],
/// [`env::THROTTLE_BUDGET_SECS`]), so that the cases that must fail do so in seconds: the
/// timeout case with a 1 s request timeout and one retry, the rate-limit storm with a 4 s throttle budget
/// per request (two throttle waits; the concurrency case keeps the default, it must complete).
fn case_runtime(f: &FaultConfig) -> Vec<(&'static str, u64, u64)> {
    let mut settings = Vec::new();
    if f.latency_ms >= TIMEOUT_CASE_LATENCY_MS {
        settings.push(("request_timeout_secs", 1, env::REQUEST_TIMEOUT_SECS));
        settings.push(("max_retries", 1, env::MAX_RETRIES));
    }
    if f.rate_limit_per_minute.is_some() {
        settings.push(("max_throttle_total_secs", 4, env::THROTTLE_BUDGET_SECS));
    }
    settings
}

fn matrix() -> Vec<(&'static str, FaultConfig, Expect)> {
    use Expect::*;
    let base = FaultConfig {
        seed: 7,
        ..FaultConfig::default()
    };
    vec![
        (
            "5xx burst (3 errors, fewer than the retries)",
            FaultConfig {
                error_rate: 1.0,
                max_faults: Some(3),
                start_after: 2,
                ..base.clone()
            },
            Complete,
        ),
        (
            "5xx storm (every request fails)",
            FaultConfig {
                error_rate: 1.0,
                start_after: 3,
                ..base.clone()
            },
            CompleteOrCleanFailure,
        ),
        (
            "429 storm (rate limit of 5 requests a minute)",
            FaultConfig {
                rate_limit_per_minute: Some(5),
                ..base.clone()
            },
            CompleteOrCleanFailure,
        ),
        (
            "429 on concurrency (one request in flight)",
            FaultConfig {
                concurrency_limit: Some(1),
                // every answer takes 30 ms, so concurrent requests really overlap at the server
                latency_ms: 30,
                ..base.clone()
            },
            CompleteOrCleanFailure,
        ),
        (
            "connection resets",
            FaultConfig {
                reset_rate: 0.3,
                start_after: 2,
                max_faults: Some(6),
                ..base.clone()
            },
            CompleteOrCleanFailure,
        ),
        (
            "truncated bodies",
            FaultConfig {
                truncate_rate: 0.3,
                start_after: 2,
                max_faults: Some(6),
                ..base.clone()
            },
            CompleteOrCleanFailure,
        ),
        (
            "malformed JSON",
            FaultConfig {
                malformed_rate: 0.3,
                start_after: 2,
                max_faults: Some(6),
                ..base.clone()
            },
            CompleteOrCleanFailure,
        ),
        (
            "paging loop at page 2",
            FaultConfig {
                paging_loop_at_page: Some(2),
                ..base.clone()
            },
            CompleteOrCleanFailure,
        ),
        (
            "page token expired from page 2",
            FaultConfig {
                expire_token_at_page: Some(2),
                ..base.clone()
            },
            CompleteOrCleanFailure,
        ),
        (
            "empty page with a next link at page 2",
            FaultConfig {
                empty_page_at: Some(2),
                ..base.clone()
            },
            CompleteOrCleanFailure,
        ),
        (
            "invalid UTF-8 inside a JSON string (a Latin-1 name) of a listing page",
            FaultConfig {
                invalid_utf8_rate: 1.0,
                start_after: 2,
                max_faults: Some(1),
                ..base.clone()
            },
            CleanFailureNamingTheQuery,
        ),
        (
            "the same item twice across pages (page 2 repeats page 1's last)",
            FaultConfig {
                repeat_at_page: Some(2),
                ..base.clone()
            },
            Complete,
        ),
        (
            "slow drip bodies",
            FaultConfig {
                drip_rate: 0.5,
                drip_chunk_bytes: 2048,
                drip_pause_ms: 2,
                ..base.clone()
            },
            Complete,
        ),
        (
            "timeouts (every answer 2 s late, request timeout 1 s)",
            FaultConfig {
                latency_ms: TIMEOUT_CASE_LATENCY_MS,
                start_after: 2,
                ..base.clone()
            },
            CompleteOrCleanFailure,
        ),
    ]
}

/// The whole matrix against one provider.
async fn fault_matrix(provider: &'static str) {
    let env = Env::new(provider, 45, 6, 3600).await;
    let mut before = env.clean_sync("initial").await;
    assert!(
        !before.users.is_empty(),
        "{provider}: the initial sync stored no users"
    );
    let active_before = env.listed_users().await;
    let mut summary = Vec::new();
    for (case, (name, faults, expect)) in matrix().into_iter().enumerate() {
        env.mutate(case).await;
        let expect = documented(provider, &faults, expect);
        let proof = proof(provider, &faults);
        let start_after = faults.start_after;
        let stats = |k: &str| env.emu.ctx.stats.snapshot()[k].as_u64().unwrap_or_default();
        let (throttled0, requests0) = (stats("throttled"), stats("requests"));
        let settings = case_runtime(&faults);
        for (key, value, _) in &settings {
            env.set_runtime(key, *value);
        }
        env.emu.set_faults(faults).expect("set faults");
        let started = std::time::Instant::now();
        let r = env.sync().await;
        let took = started.elapsed();
        for (key, _, suite_value) in &settings {
            env.set_runtime(key, *suite_value);
        }
        let fired = match proof {
            Proof::Injected => env.faults_injected() > 0,
            Proof::Throttled => stats("throttled") > throttled0,
            Proof::Paging => env.emu.ctx.faults.paging_served() > 0,
            Proof::Unreachable => env.emu.ctx.faults.paging_served() == 0,
            Proof::Latency => stats("requests") > requests0 + start_after,
        };
        assert!(fired, "{provider} / {name}: the fault did not fire ({proof:?})");
        let faulted = env.state();
        let after_clean = env.clean_sync(name).await;
        let status = r.report["status"].as_str().unwrap_or_default().to_string();
        if expect == Expect::CleanFailure {
            assert_ne!(
                r.code, 0,
                "{provider} / {name}: must fail cleanly (docs/reliability.md), but completed: {}",
                r.report
            );
        }
        if expect == Expect::CleanFailureNamingTheQuery {
            assert_ne!(
                r.code, 0,
                "{provider} / {name}: must fail, but completed: {}",
                r.report
            );
            let errors: Vec<String> = r.report["errors"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|e| e.as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let named = errors
                .iter()
                .find(|e| e.starts_with("query ") && e.contains(" failed: "))
                .unwrap_or_else(|| {
                    panic!("{provider} / {name}: no error names the failed query: {errors:?}")
                });
            eprintln!(
                "{provider} / {name}: {}",
                named.chars().take(300).collect::<String>()
            );
        }
        if r.code == 0 {
            assert_eq!(status, "applied", "{provider} / {name}: exit 0 but {}", r.report);
            if let Some(d) = diff(&faulted, &after_clean) {
                panic!("{provider} / {name}: the run said it completed but the store differs from a clean run: {d}");
            }
        } else {
            assert_ne!(
                expect,
                Expect::Complete,
                "{provider} / {name}: must complete (retries cover it) but exited {}: {}\n{}",
                r.code,
                r.report,
                r.stderr
            );
            assert!(
                status == "failed" || status == "blocked",
                "{provider} / {name}: exit {} with status {status}",
                r.code
            );
            let errors = r.report["errors"].as_array().map(Vec::len).unwrap_or(0);
            assert!(
                errors > 0,
                "{provider} / {name}: a failed run names no error: {}",
                r.report
            );
            assert_eq!(
                count(&r.report, "/users/deactivated") + count(&r.report, "/users/deleted"),
                0,
                "{provider} / {name}: a failed run reports removals: {}",
                r.report
            );
            if let Err(e) = failed_run_is_safe(&before, &faulted, &after_clean) {
                panic!("{provider} / {name}: {e}\nreport: {}", r.report);
            }
        }
        // the only change between the runs is one rename: nobody was deactivated
        let active_now = env.listed_users().await;
        assert_eq!(
            active_now, active_before,
            "{provider} / {name}: active users changed"
        );
        summary.push(format!(
            "{name}: {} in {:.1} s",
            if r.code == 0 {
                "completed"
            } else {
                "failed cleanly"
            },
            took.as_secs_f64()
        ));
        before = after_clean;
    }
    eprintln!("{provider} fault matrix:\n  {}", summary.join("\n  "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_fault_matrix() {
    fault_matrix("okta").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_fault_matrix() {
    fault_matrix("entra").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_fault_matrix() {
    fault_matrix("google").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keycloak_fault_matrix() {
    fault_matrix("keycloak").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onelogin_fault_matrix() {
    fault_matrix("onelogin").await;
}

/// Access tokens live 1 s and every answer takes 150 ms: the run outlives several tokens and
/// must refresh them (Okta's SSWS API tokens do not expire, so Okta is not in this list).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expiring_mid_run_are_refreshed() {
    for provider in ["entra", "google", "keycloak", "onelogin"] {
        let env = Env::new(provider, 30, 4, 1).await;
        env.emu
            .set_faults(FaultConfig {
                latency_ms: 150,
                ..FaultConfig::default()
            })
            .expect("latency");
        let r = env.sync().await;
        assert_eq!(r.code, 0, "{provider}: {}\n{}", r.report, r.stderr);
        let st = env.state();
        env.emu.set_faults(FaultConfig::default()).expect("clear");
        let r2 = env.sync().await;
        assert_eq!(r2.code, 0, "{provider}: {}", r2.report);
        if let Some(d) = diff(&st, &env.state()) {
            panic!("{provider}: the slow run differs from a fast one: {d}");
        }
    }
}

const CTL_GIVEN: &str = "Tab\tNew\nLine\u{7}Bell";
const CTL_FAMILY: &str = "Null\u{0}Byte";
const ESC_GIVEN: &str = "Esc\u{1b}[31mRed\u{1b}[0m\u{7f}Del";
const ESC_FAMILY: &str = "Rtl\u{202e}Over\u{2028}Sep\u{85}Nel";
const CTL_GROUP: &str = "ctl\tgroup\u{1b}[2J\u{0}end";

/// Abusive organisation content, served through a real facade: huge strings, control characters
/// (in names of people and of a group), a user in 1,000 groups, a group cycle, case-colliding
/// usernames. Each gets a correct result or a clean failure, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abusive_input_gets_a_correct_result_or_a_clean_error() {
    for provider in ["okta", "entra", "google", "keycloak"] {
        let env = Env::new(provider, 30, 4, 3600).await;
        let good = env.clean_sync("baseline").await;
        let users_before = good.users.len();
        {
            let mut org = env.emu.org().write().await;
            let huge = "x".repeat(100_000);
            let a = org.add_user("huge.name@example.com", &huge, "Huge");
            let b = org.add_user("ctl.chars@example.com", CTL_GIVEN, CTL_FAMILY);
            // terminal escapes, DEL, C1 NEL, a bidi override and a line separator
            let e = org.add_user("esc.chars@example.com", ESC_GIVEN, ESC_FAMILY);
            let ctl_group = org.add_group(CTL_GROUP, usersync_emulator::GroupKind::Native);
            org.add_member(ctl_group, b);
            org.add_member(ctl_group, e);
            // case-colliding usernames of two different people
            let c = org.add_user("Case.Collide@example.com", "Case", "Upper");
            let d = org.add_user("case.collide@example.com", "case", "lower");
            // one user in 1,000 groups
            let power = org.add_user("power.user@example.com", "Power", "User");
            let mut first = None;
            let mut prev = None;
            for i in 0..1000 {
                let g = org.add_group(&format!("abuse-{i:04}"), usersync_emulator::GroupKind::Native);
                org.add_member(g, power);
                if i < 3 {
                    // a three-group cycle where the provider has nesting (ignored otherwise)
                    if let Some(p) = prev {
                        org.add_child_group(p, g);
                    }
                    first.get_or_insert(g);
                    prev = Some(g);
                }
            }
            if let (Some(f), Some(p)) = (first, prev) {
                org.add_child_group(p, f);
            }
            for u in [a, b, c, d, e] {
                org.add_member(0, u);
            }
            org.rebuild_index();
        }
        let r = env.sync().await;
        let st = env.state();
        eprintln!(
            "{provider} abusive input: exit {}, status {}, errors {}",
            r.code, r.report["status"], r.report["errors"]
        );
        if r.code == 0 {
            // correct result: every new person is there, nobody existing lost or deactivated
            let logins: Vec<String> = st.users.iter().map(|u| u.username.to_lowercase()).collect();
            for l in [
                "huge.name@example.com",
                "ctl.chars@example.com",
                "esc.chars@example.com",
                "power.user@example.com",
            ] {
                assert!(
                    logins.iter().any(|x| x == l),
                    "{provider}: {l} missing after an applied run"
                );
            }
            assert!(st.users.len() >= users_before + 4);
            // odd characters are stored exactly as the provider sent them, never cut or replaced
            let user = |login: &str| {
                st.users
                    .iter()
                    .find(|u| u.username.eq_ignore_ascii_case(login))
                    .unwrap_or_else(|| panic!("{provider}: {login} missing"))
            };
            let huge = user("huge.name@example.com");
            assert_eq!(
                huge.given_name.as_deref().map(str::len),
                Some(100_000),
                "{provider}: the 100,000-character name was not stored whole"
            );
            for (login, given, family) in [
                ("ctl.chars@example.com", CTL_GIVEN, CTL_FAMILY),
                ("esc.chars@example.com", ESC_GIVEN, ESC_FAMILY),
            ] {
                let u = user(login);
                assert_eq!(
                    (u.given_name.as_deref(), u.family_name.as_deref()),
                    (Some(given), Some(family)),
                    "{provider}: {login}'s names changed on the way"
                );
            }
            let g = st
                .groups
                .iter()
                .find(|g| g.source_name == CTL_GROUP)
                .unwrap_or_else(|| panic!("{provider}: the group named with control characters is missing"));
            for login in ["ctl.chars@example.com", "esc.chars@example.com"] {
                let id = &user(login).provider_id;
                assert!(
                    st.memberships
                        .iter()
                        .any(|m| m.group == g.provider_id
                            && m.member == usersync_store::Member::User(id.clone())),
                    "{provider}: {login} lost its membership of the control-character group"
                );
            }
            assert!(
                st.users.iter().filter(|u| u.active).count()
                    >= good.users.iter().filter(|u| u.active).count()
            );
            // case collision: both kept as distinct people, or one reported (never merged silently)
            let collide = logins.iter().filter(|x| *x == "case.collide@example.com").count();
            let reported = r.report["errors"]
                .to_string()
                .to_lowercase()
                .contains("case.collide")
                || r.stderr.to_lowercase().contains("case.collide");
            assert!(collide >= 1, "{provider}: both case-colliding users lost");
            assert!(
                collide == 2 || reported,
                "{provider}: a case collision was neither kept nor reported"
            );
        } else {
            let errors = r.report["errors"].to_string();
            assert!(
                errors.len() > 2,
                "{provider}: failed without naming an error: {}",
                r.report
            );
            // nothing destructive (the abusive org cannot be synced cleanly, so additive
            // changes are not compared with a clean run here)
            if let Err(e) = failed_run_is_safe(&good, &st, &st) {
                panic!("{provider}: {e}\nreport: {}", r.report);
            }
        }
    }
}

/// Pages with no items but a next link, several in a row, must not end the listing early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_page_with_a_next_link_does_not_lose_users() {
    for provider in ["okta", "entra", "keycloak", "onelogin"] {
        let env = Env::new(provider, 45, 4, 3600).await;
        let good = env.clean_sync("baseline").await;
        env.emu
            .set_faults(FaultConfig {
                empty_page_at: Some(1),
                ..FaultConfig::default()
            })
            .expect("faults");
        let r = env.sync().await;
        let st = env.state();
        if r.code == 0 {
            if let Some(d) = diff(&st, &good) {
                panic!(
                    "{provider}: an empty first page changed the store: {d}\n{}",
                    r.report
                );
            }
        } else if let Err(e) = failed_run_is_safe(&good, &st, &good) {
            panic!("{provider}: {e}\nreport: {}", r.report);
        }
    }
}

/// Plugin faults: a plugin that panics in `open`, one that panics while fetching, and a library
/// built for another ABI, all in the plugin directory next to a good connection. The host
/// survives (prints every report), the good connection syncs, the broken ones fail by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_and_incompatible_plugins_do_not_stop_a_good_connection() {
    let plugins = tempfile::tempdir().expect("plugin dir");
    for lib in ["usersync_fixture_panics", "usersync_fixture_bad_abi"] {
        let src = crate::support::cdylib(lib);
        std::fs::copy(&src, plugins.path().join(src.file_name().expect("file name"))).expect("copy plugin");
    }
    let env = Env::new("okta", 30, 4, 3600).await;
    let mut config = std::fs::read_to_string(&env.config).expect("config");
    config.push_str(
        "\n[[connections]]\nname = \"broken-open\"\nconnector = \"fixture-panics\"\n\
         [connections.options]\npanic_in_open = true\n\
         \n[[connections]]\nname = \"broken-fetch\"\nconnector = \"fixture-panics\"\n",
    );
    std::fs::write(&env.config, config).expect("write config");
    let plugin_dir = plugins.path().to_string_lossy().into_owned();
    let (code, stdout, stderr) = env
        .run(&[
            "--plugin-dir",
            &plugin_dir,
            "sync",
            "--format",
            "json",
            "--no-progress",
        ])
        .await;
    let v: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("the host printed no JSON ({e}); exit {code}\n{stdout}\n{stderr}"));
    let reports = v.as_array().expect("reports");
    let by_name = |n: &str| {
        reports
            .iter()
            .find(|r| r["connection"] == n)
            .unwrap_or_else(|| panic!("no report for {n}: {v}"))
            .clone()
    };
    assert_eq!(by_name("okta")["status"], "applied", "{v}\n{stderr}");
    for broken in ["broken-open", "broken-fetch"] {
        let r = by_name(broken);
        assert_eq!(r["status"], "failed", "{broken}: {r}");
        assert!(
            r["errors"].as_array().is_some_and(|e| !e.is_empty()),
            "{broken}: {r}"
        );
    }
    assert_eq!(code, 1, "a failed connection makes the run exit 1: {stderr}");
    assert!(
        !env.state().users.is_empty(),
        "the good connection stored its users"
    );
}

/// One person in 10,000 groups (issue 12, bad input): the run completes and the store holds all
/// 10,000 of their direct memberships. Connector pages at the provider's maximum, as an
/// administrator would configure it. OneLogin users have one group each, so there the person
/// holds 10,000 roles (synced as groups of kind `role`).
async fn user_in_10000_groups(provider: &'static str) {
    const GROUPS: usize = 10_000;
    {
        let mut opts = EmulatorOptions::new(provider);
        opts.gen = GenConfig {
            users: 10,
            groups: 2,
            seed: 12,
            ..GenConfig::default()
        };
        let policy = if provider == "onelogin" {
            "roles_as_groups = true"
        } else {
            ""
        };
        let env = Env::with_page_size(provider, opts, None, policy).await;
        {
            let mut org = env.emu.org().write().await;
            let power = org.add_user("power.user@example.com", "Power", "User");
            for i in 0..GROUPS {
                let name = format!("many-{i:05}");
                if provider == "onelogin" {
                    // a OneLogin user has ONE group; roles carry the many-valued membership
                    let ix = org.roles.len() as u32;
                    org.roles.push(usersync_emulator::org::Role {
                        ix,
                        name,
                        members: vec![power],
                    });
                } else {
                    let g = org.add_group(&name, usersync_emulator::GroupKind::Native);
                    assert!(org.add_member(g, power));
                }
            }
            org.rebuild_index();
        }
        if provider == "google" {
            // one member listing per group: at Google's real 2,400 queries a minute the run would
            // spend minutes waiting on the quota, which the rate-limit tests cover; lift it here
            env.emu
                .set_faults(FaultConfig {
                    rate_limit_per_minute: Some(1_000_000),
                    ..FaultConfig::default()
                })
                .expect("lift the quota");
        }
        let started = std::time::Instant::now();
        let r = env.sync().await;
        assert_eq!(r.code, 0, "{provider}: {}\n{}", r.report, r.stderr);
        let st = env.state();
        let power = st
            .users
            .iter()
            .find(|u| u.username.eq_ignore_ascii_case("power.user@example.com"))
            .unwrap_or_else(|| panic!("{provider}: the user in 10,000 groups is missing"));
        let member = usersync_store::Member::User(power.provider_id.clone());
        let names: std::collections::HashMap<&str, &str> = st
            .groups
            .iter()
            .map(|g| (g.provider_id.as_str(), g.source_name.as_str()))
            .collect();
        let mut groups: Vec<&str> = st
            .memberships
            .iter()
            .filter(|m| m.member == member)
            .filter_map(|m| names.get(m.group.as_str()).copied())
            .filter(|n| n.starts_with("many-"))
            .collect();
        groups.sort_unstable();
        groups.dedup();
        assert_eq!(
            groups.len(),
            GROUPS,
            "{provider}: the user has {} of their 10,000 groups",
            groups.len()
        );
        eprintln!(
            "{provider}: a user in 10,000 groups synced in {:?} ({} requests)",
            started.elapsed(),
            r.report["requests"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_user_in_10000_groups_has_every_one() {
    user_in_10000_groups("okta").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_user_in_10000_groups_has_every_one() {
    user_in_10000_groups("entra").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_user_in_10000_groups_has_every_one() {
    user_in_10000_groups("google").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keycloak_user_in_10000_groups_has_every_one() {
    user_in_10000_groups("keycloak").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onelogin_user_in_10000_groups_has_every_one() {
    user_in_10000_groups("onelogin").await;
}
