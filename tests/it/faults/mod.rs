//! Fault and abuse suite (issue 12): `usersync sync` (the binary, as a subprocess) against every
//! provider emulator (in-process) while the emulator injects faults. Every faulted run must either
//! complete correctly (the store then equals what a clean run produces) or fail cleanly (non-zero
//! exit, a `failed`/`blocked` report naming an error, and the store exactly as before). Nobody is
//! ever deactivated by a fault. Expectations come from the store and the emulator, not from the
//! code under test.

use std::path::PathBuf;
use std::time::Duration;

use usersync_bench::{page_size_option, write_config, Connection};
use usersync_emulator::{start, EmulatorOptions, FaultConfig, GenConfig, RunningEmulator, UserStatus};
use usersync_store::{ConnectionState, SqliteStore, Store};

/// Upper bound for one `usersync sync` run; a hang (e.g. an endless paging loop) fails the test.
const RUN_LIMIT: Duration = Duration::from_secs(90);

struct Env {
    emu: RunningEmulator,
    dir: tempfile::TempDir,
    config: PathBuf,
    provider: &'static str,
}

/// Outcome of one sync run.
struct Run {
    code: i32,
    report: serde_json::Value,
    stderr: String,
}

impl Env {
    async fn new(provider: &'static str, users: u32, groups: u32, token_ttl: i64) -> Env {
        let mut opts = EmulatorOptions::new(provider);
        opts.gen = GenConfig {
            users,
            groups,
            seed: 12,
            ..GenConfig::default()
        };
        opts.token_ttl_secs = token_ttl;
        Self::with_options(provider, opts).await
    }

    async fn with_options(provider: &'static str, opts: EmulatorOptions) -> Env {
        // small pages: every listing spans several pages, so paging faults hit mid-listing
        Self::with_page_size(provider, opts, Some(10), "").await
    }

    /// `page_size`: the connector's page size where it has the option (`None`: the largest the
    /// provider allows); `policy`: lines of the connection's `[connections.policy]` table.
    async fn with_page_size(
        provider: &'static str,
        opts: EmulatorOptions,
        page_size: Option<u32>,
        policy: &str,
    ) -> Env {
        let emu = start(opts).await.expect("start emulator");
        let dir = tempfile::tempdir().expect("tempdir");
        let info = emu.info().await;
        let mut conn = Connection::from_emulator_info(&info, None).expect("connection from emulator info");
        if let Some((opt, max)) = page_size_option(provider) {
            conn.set_option(opt, serde_json::json!(page_size.unwrap_or(max)));
        }
        let runtime =
            "max_retries = 3\nmax_throttle_wait_secs = 2\nrequest_timeout_secs = 3\nconnect_timeout_secs = 2";
        let config = write_config(dir.path(), &[conn], runtime, policy).expect("write config");
        Env {
            emu,
            dir,
            config,
            provider,
        }
    }

    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut c = crate::support::usersync_command(&self.config);
        c.args(args);
        let out = tokio::time::timeout(RUN_LIMIT, c.output())
            .await
            .unwrap_or_else(|_| panic!("{}: `usersync {args:?}` hung for {RUN_LIMIT:?}", self.provider))
            .expect("run usersync");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn sync(&self) -> Run {
        let (code, stdout, stderr) = self.run(&["sync", "--format", "json", "--no-progress"]).await;
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "{}: sync printed no JSON ({e}); exit {code}\nstdout: {stdout}\nstderr: {stderr}",
                self.provider
            )
        });
        let report = v.as_array().and_then(|a| a.first()).cloned().expect("one report");
        Run { code, report, stderr }
    }

    fn state(&self) -> ConnectionState {
        let path = self.dir.path().join("store.db");
        if !path.exists() {
            return ConnectionState::default();
        }
        SqliteStore::open(&path)
            .expect("open store")
            .state(self.provider)
            .expect("state")
    }

    /// `usersync users list --format json`: (provider id, active) of every user, sorted.
    async fn listed_users(&self) -> Vec<(String, bool)> {
        let (code, out, err) = self.run(&["users", "list", "--format", "json"]).await;
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("users list json");
        let mut users: Vec<(String, bool)> = v
            .as_array()
            .expect("array")
            .iter()
            .map(|u| {
                (
                    u["provider_id"].as_str().expect("provider_id").to_string(),
                    u["active"].as_bool().expect("active"),
                )
            })
            .collect();
        users.sort();
        users
    }

    /// A clean sync that must succeed.
    async fn clean_sync(&self, what: &str) -> ConnectionState {
        self.emu.set_faults(FaultConfig::default()).expect("clear faults");
        let r = self.sync().await;
        assert_eq!(
            r.code, 0,
            "{}: clean sync ({what}) failed: {}\n{}",
            self.provider, r.report, r.stderr
        );
        assert_eq!(r.report["status"], "applied", "{}", r.report);
        self.state()
    }

    /// Change the organisation a little so a faulted run has something to apply: rename one
    /// active user (a different one per case).
    async fn mutate(&self, case: usize) {
        let mut org = self.emu.org().write().await;
        let ix = org
            .live_users()
            .filter(|u| u.status == UserStatus::Active)
            .map(|u| u.ix)
            .nth(case)
            .expect("enough active users");
        assert!(org.rename_user(ix, "Renamed", &format!("Case{case}")));
    }
}

fn count(r: &serde_json::Value, ptr: &str) -> u64 {
    r.pointer(ptr)
        .and_then(|v| v.as_u64())
        .unwrap_or_else(|| panic!("{ptr} missing in {r}"))
}

fn short<T: std::fmt::Debug>(x: &T) -> String {
    let s = format!("{x:?}");
    s.chars().take(400).collect()
}

/// A short description of the first differences between two store states, or None if equal.
fn diff(a: &ConnectionState, b: &ConnectionState) -> Option<String> {
    if a == b {
        return None;
    }
    let mut out = Vec::new();
    for u in &a.users {
        match b.users.iter().find(|x| x.provider_id == u.provider_id) {
            None => out.push(format!("user {} only on the left", u.provider_id)),
            Some(x) if x != u => out.push(format!("user differs: {} vs {}", short(u), short(x))),
            _ => {}
        }
    }
    for u in &b.users {
        if !a.users.iter().any(|x| x.provider_id == u.provider_id) {
            out.push(format!("user {} only on the right", u.provider_id));
        }
    }
    if a.groups != b.groups {
        out.push(format!("groups: {} vs {}", a.groups.len(), b.groups.len()));
    }
    if a.memberships != b.memberships {
        out.push(format!(
            "memberships: {} vs {}",
            a.memberships.len(),
            b.memberships.len()
        ));
    }
    if a.effective != b.effective {
        out.push(format!(
            "effective memberships: {} vs {}",
            a.effective.len(),
            b.effective.len()
        ));
    }
    if a.photos != b.photos {
        out.push("photos differ".to_string());
    }
    out.truncate(6);
    Some(out.join("; "))
}

/// After a failed run (docs/sync.md, safety gates): nothing destructive happened (every user,
/// group and membership of `before` is still there, nobody active was deactivated), and every
/// additive change is one a clean run also makes (each record is as before or as after a clean
/// run: nothing invented from a broken read).
fn failed_run_is_safe(
    before: &ConnectionState,
    faulted: &ConnectionState,
    clean: &ConnectionState,
) -> Result<(), String> {
    for u in &before.users {
        let Some(f) = faulted.users.iter().find(|x| x.provider_id == u.provider_id) else {
            return Err(format!("a failed run deleted user {}", u.username));
        };
        if u.active && !f.active {
            return Err(format!("a failed run deactivated {}", u.username));
        }
    }
    for f in &faulted.users {
        let was = before.users.iter().find(|x| x.provider_id == f.provider_id);
        let clean_u = clean.users.iter().find(|x| x.provider_id == f.provider_id);
        if was != Some(f) && clean_u != Some(f) {
            return Err(format!(
                "a failed run wrote a user no clean run writes: {}",
                short(f)
            ));
        }
    }
    for g in &before.groups {
        if !faulted.groups.iter().any(|x| x.provider_id == g.provider_id) {
            return Err(format!("a failed run deleted group {}", g.name));
        }
    }
    for f in &faulted.groups {
        if !before.groups.contains(f) && !clean.groups.contains(f) {
            return Err(format!(
                "a failed run wrote a group no clean run writes: {}",
                short(f)
            ));
        }
    }
    for m in &before.memberships {
        if !faulted.memberships.contains(m) {
            return Err(format!("a failed run removed membership {}", short(m)));
        }
    }
    for m in &faulted.memberships {
        if !before.memberships.contains(m) && !clean.memberships.contains(m) {
            return Err(format!(
                "a failed run added a membership no clean run has: {}",
                short(m)
            ));
        }
    }
    Ok(())
}

/// Whether a case must succeed (the runtime's retries cover it) or may also fail cleanly.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Expect {
    Complete,
    CompleteOrCleanFailure,
    /// Must fail cleanly, with an error naming the failed query (`query <what> failed: ...`).
    CleanFailureNamingTheQuery,
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
            "timeouts (every answer 4 s late, request timeout 3 s)",
            FaultConfig {
                latency_ms: 4000,
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
        env.emu.set_faults(faults).expect("set faults");
        let r = env.sync().await;
        let faulted = env.state();
        let after_clean = env.clean_sync(name).await;
        let status = r.report["status"].as_str().unwrap_or_default().to_string();
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
            "{name}: {}",
            if r.code == 0 {
                "completed"
            } else {
                "failed cleanly"
            }
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
