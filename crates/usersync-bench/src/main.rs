//! `usersync-bench`: measures `usersync sync` (the real binary, as a child process) against the
//! provider emulators (`usersync emulator`, another child process): HTTP requests vs the minimum
//! the page-size limits allow, wall and CPU time and peak RSS of an initial sync and of a
//! no-change resync, plan and apply time, and runs under each provider's real rate limit.
//! Prints a Markdown table and optionally writes it into docs/benchmarks.md.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::Value;
use usersync_bench::{page_size_option, write_config, Connection, PROVIDERS};

mod floor;
mod incremental;
mod push;
mod serve;

#[derive(Parser, Debug)]
#[command(about = "Benchmark `usersync sync` against the provider emulators")]
struct Args {
    /// The `usersync` binary (default: next to this executable).
    #[arg(long)]
    usersync: Option<PathBuf>,
    /// Providers to measure (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "okta,entra,google,keycloak,onelogin"
    )]
    providers: Vec<String>,
    /// Organisation sizes in users (comma-separated); groups = users / 10 unless --groups.
    #[arg(long, value_delimiter = ',', default_value = "10000")]
    users: Vec<u32>,
    /// Groups (default: users / 10).
    #[arg(long)]
    groups: Option<u32>,
    /// Average direct group memberships per user.
    #[arg(long, default_value_t = 10)]
    avg_groups: u32,
    /// Group nesting depth where the provider allows nesting.
    #[arg(long, default_value_t = 4)]
    nesting_depth: u32,
    /// Injected latency per request, ms (comma-separated: one run per value).
    #[arg(long, value_delimiter = ',', default_value = "0,25")]
    latency_ms: Vec<u64>,
    /// Users of the org for the runs under each provider's real rate limit, each next to the same
    /// sync without a limit (0: skip them).
    #[arg(long, default_value_t = 1000)]
    rate_limited_users: u32,
    /// Organisation seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Markdown file to write the results into (the "Sync benchmarks" section is replaced).
    #[arg(long)]
    write_docs: Option<PathBuf>,
    /// Add the results to the docs block instead of replacing it (several invocations, one block).
    #[arg(long)]
    append: bool,
    /// Providers for the rate-limited runs (default: every measured one; Keycloak, which has no
    /// rate limit, gets a row saying so).
    #[arg(long, value_delimiter = ',')]
    rate_limited_providers: Option<Vec<String>>,
    /// Requests a minute per bucket for the rate-limited runs instead of each provider's documented
    /// limit (a scaled-down limit makes the pacing visible at a small organisation size).
    #[arg(long)]
    rate_limit: Option<u32>,
    /// A note printed with the results (e.g. "measured while other builds ran").
    #[arg(long, default_value = "")]
    note: String,
    /// Keep the working directories (configs, stores, logs) for inspection.
    #[arg(long)]
    keep: bool,
    /// Sync into a PostgreSQL store instead of SQLite (`postgres://...`, no `schema` parameter):
    /// each run in a new schema `bench_<pid>_<n>`, dropped afterwards with `psql`.
    #[arg(long)]
    store_url: Option<String>,
    /// Measure `usersync push` instead of sync: an Okta organisation of --push-users synced into
    /// the store, pushed into the SCIM emulator (initial, no change, --push-change-percent
    /// changed), and the same initial push into scim2-server (--scim2-users).
    #[arg(long)]
    push: bool,
    /// Users of the organisation of the push benchmark.
    #[arg(long, default_value_t = 10_000)]
    push_users: u32,
    /// Groups of the organisation of the push benchmark.
    #[arg(long, default_value_t = 1_000)]
    push_groups: u32,
    /// Percent of users renamed at the IdP before the "changed" push.
    #[arg(long, default_value_t = 1)]
    push_change_percent: u32,
    /// Users for the initial push into scim2-server (default: --push-users; 0 skips it).
    #[arg(long)]
    scim2_users: Option<u32>,
    /// The scim2-server executable (default: target/scim2-venv/bin/scim2-server next to the
    /// usersync binary's profile directory; `sh tests/scim/setup.sh` installs it).
    #[arg(long)]
    scim2_server: Option<PathBuf>,
    /// Measure `usersync serve` instead of sync (see `serve.rs`): idle CPU and memory with five
    /// connections, and the latency of the status page, `/metrics` and `/api/status`.
    #[arg(long)]
    serve: bool,
    /// Users of each emulator of the serve benchmark.
    #[arg(long, default_value_t = 200)]
    serve_users: u32,
    /// Runs of history in the store of the serve benchmark.
    #[arg(long, default_value_t = 10_000)]
    serve_history: u32,
    /// Seconds of idle measured by the serve benchmark.
    #[arg(long, default_value_t = 300)]
    serve_idle_secs: u64,
    /// Requests per endpoint for the serve benchmark's latency figures.
    #[arg(long, default_value_t = 200)]
    serve_requests: u32,
    /// Measure incremental runs instead (issue 21, see `incremental.rs`) at the first --users
    /// size; `--rate-limited-users 0` skips their rate-limited runs.
    #[arg(long)]
    incremental: bool,
    /// Users changed before an incremental "after change" run.
    #[arg(long, default_value_t = 100)]
    changed_users: u32,
    /// Groups changed before an incremental "after change" run.
    #[arg(long, default_value_t = 10)]
    changed_groups: u32,
}

/// Resource use of one child process, from wait4(2).
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: i64,
    /// The child's own peak RSS (`VmHWM`, polled every 20 ms): unlike `max_rss_kib` it does not
    /// count the parent's memory the child had before its exec (in-process emulators).
    hwm_kib: i64,
    code: i32,
}

/// Spawn `cmd` with stdout/stderr captured and wait for it with wait4 (CPU time and peak RSS of
/// exactly that child).
fn run_measured(mut cmd: Command) -> anyhow::Result<(Usage, String, String)> {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    let start = Instant::now();
    let mut child = cmd.spawn().context("spawning usersync")?;
    let mut out = child.stdout.take().context("stdout")?;
    let mut err = child.stderr.take().context("stderr")?;
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let pid = libc::pid_t::try_from(child.id()).context("pid")?;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t_hwm = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let mut hwm = 0i64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let kib = status.lines().find_map(|l| l.strip_prefix("VmHWM:"));
                let kib = kib.and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
                hwm = hwm.max(kib.unwrap_or(0));
                std::thread::sleep(Duration::from_millis(20));
            }
            hwm
        })
    };
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it for our own child `pid`.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child that nobody else waits for; the pointers are valid for the call.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = start.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let hwm_kib = t_hwm.join().unwrap_or(0);
    if r < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    let tv =
        |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((
        Usage {
            wall,
            cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
            max_rss_kib: ru.ru_maxrss,
            hwm_kib,
            code,
        },
        stdout,
        stderr,
    ))
}

/// A running `usersync emulator` child; killed on drop.
struct Emulator {
    child: Child,
    info: Value,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // SIGTERM first: the emulator then removes the state directory it created (keys, CA);
        // SIGKILL only if it has not stopped within five seconds.
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's pid; no memory is involved.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    fn start(bin: &Path, provider: &str, args: &[String]) -> anyhow::Result<Emulator> {
        let mut child = Command::new(bin)
            .arg("emulator")
            .arg("--provider")
            .arg(provider)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning the emulator")?;
        let out = child.stdout.take().context("emulator stdout")?;
        let mut line = String::new();
        BufReader::new(out)
            .read_line(&mut line)
            .context("reading the emulator's JSON line")?;
        let info: Value = serde_json::from_str(&line)
            .with_context(|| format!("the {provider} emulator printed no JSON line: {line:?}"))?;
        Ok(Emulator { child, info })
    }

    /// `GET <control_url>/stats` over a plain TCP connection.
    fn stats(&self) -> anyhow::Result<Value> {
        let url = self.info["control_url"].as_str().context("control_url")?;
        let rest = url.strip_prefix("http://").context("control_url is http")?;
        let (host, path) = rest.split_once('/').context("control_url path")?;
        let mut s = std::net::TcpStream::connect(host)?;
        write!(
            s,
            "GET /{path}/stats HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        let body = buf.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
        Ok(serde_json::from_str(body)?)
    }
}

/// Per provider: (largest users page, groups page, members page, memberships come with the users).
/// Okta's groups (max 10,000) and group members (default 1,000) listings take larger pages, but
/// Okta's API reference recommends `limit` at most 200 for both ("We recommend using a limit less
/// than or equal to 200"; members: "The recommended page limit is now `limit=200`", large pages
/// time out on large groups), so the minimum counts the recommended page, as the connector uses.
fn page_limits(provider: &str) -> (u64, u64, u64, bool) {
    match provider {
        "okta" => (200, 200, 200, false),
        "entra" => (999, 999, 999, false),
        "google" => (500, 200, 200, false),
        "keycloak" => (1000, 1000, 1000, false),
        _ => (50, 50, 50, true), // onelogin: group_id comes with every user
    }
}

/// The provider's documented rate limit used for the rate-limited runs, requests per minute per
/// bucket (None: no documented limit; Keycloak is self-hosted and has none, its row says so).
fn real_rate_limit(provider: &str) -> Option<u32> {
    match provider {
        "okta" => Some(600),    // /api/v1/users bucket of most orgs
        "google" => Some(2400), // queries per minute per user per project
        "onelogin" => Some(83), // 5,000 calls per hour
        "entra" => Some(2000),  // identity limit order of magnitude (resource units)
        _ => None,              // keycloak: self-hosted, none
    }
}

/// The fewest requests that list every user, group and direct membership with the provider's
/// largest pages: users pages + groups pages + the cheaper of (per group member pages, one per
/// user), plus one token request where the flow has one (not Okta's API token). Computed from
/// the same generated organisation.
fn minimum_requests(provider: &str, users: u32, groups: u32, args: &Args) -> anyhow::Result<MinRequests> {
    let facade = usersync_emulator::providers::facade(provider)?;
    let mut cfg = usersync_emulator::GenConfig {
        users,
        groups,
        seed: args.seed,
        avg_groups_per_user: args.avg_groups,
        nesting_depth: args.nesting_depth,
        ..usersync_emulator::GenConfig::default()
    };
    facade.adjust_gen(&mut cfg);
    let org = usersync_emulator::generate(&cfg);
    let (up, gp, mp, with_users) = page_limits(provider);
    let nu = org.live_users().count() as u64;
    // Okta's connector syncs OKTA_GROUP and APP_GROUP by default (`group_types`), not the
    // BUILT_IN "Everyone" group (every user): neither it nor its members are listed
    let counted = |g: &&usersync_emulator::org::Group| {
        provider != "okta" || g.kind != usersync_emulator::org::GroupKind::BuiltIn
    };
    let ng = org.live_groups().filter(counted).count() as u64;
    let pages = |n: u64, p: u64| n.div_ceil(p).max(1);
    let mut m = MinRequests {
        token: u64::from(provider != "okta"),
        users: pages(nu, up),
        groups: pages(ng, gp),
        members: 0,
    };
    if !with_users {
        let per_group: u64 = org
            .live_groups()
            .filter(counted)
            .map(|g| pages((g.members.len() + g.child_groups.len()) as u64, mp))
            .sum();
        m.members = per_group.min(nu);
    }
    Ok(m)
}

/// The fewest requests per listing (see `minimum_requests`).
#[derive(Debug, Clone, Copy, Default)]
struct MinRequests {
    token: u64,
    users: u64,
    groups: u64,
    members: u64,
}

impl MinRequests {
    /// Total, with the token request.
    fn total(&self) -> u64 {
        self.token + self.users + self.groups + self.members
    }

    /// Least time the rate limit forces, seconds: a window of `rate` requests a minute lets
    /// `rate` through at once, then each further `rate` waits for the next window. Okta limits
    /// each endpoint separately (users, groups, group members); the others share one bucket.
    fn rate_bound_secs(&self, provider: &str, rate: u32) -> f64 {
        let rate = u64::from(rate.max(1));
        let windows = |n: u64| (n.saturating_sub(1) / rate) as f64 * 60.0;
        if provider == "okta" {
            windows(self.users)
                .max(windows(self.groups))
                .max(windows(self.members))
        } else {
            windows(self.total())
        }
    }
}

#[derive(Debug, Default, Clone)]
struct SyncFigures {
    usage: Usage,
    requests: u64,
    changes: u64,
    plan_ms: Option<f64>,
    apply_ms: Option<f64>,
    status: String,
}

/// Seconds since midnight of an RFC 3339 log timestamp (`2026-11-29T22:23:09.305637Z`).
fn log_secs(line: &str) -> Option<f64> {
    let t = line.get(11..26)?;
    let h: f64 = t.get(0..2)?.parse().ok()?;
    let m: f64 = t.get(3..5)?.parse().ok()?;
    let s: f64 = t.get(6..)?.trim_end_matches('Z').parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

fn sync_once(bin: &Path, config: &Path) -> anyhow::Result<SyncFigures> {
    let mut cmd = Command::new(bin);
    cmd.arg("--config")
        .arg(config)
        .args(["sync", "--format", "json", "--no-progress"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env("NO_PROXY", "127.0.0.1,localhost");
    let (usage, stdout, stderr) = run_measured(cmd)?;
    // the log next to the config (kept with --keep): sync-1.log, sync-2.log...
    if let Some(dir) = config.parent() {
        let n = (1..)
            .find(|i| !dir.join(format!("sync-{i}.log")).exists())
            .unwrap_or(0);
        let _ = std::fs::write(dir.join(format!("sync-{n}.log")), &stderr);
    }
    let v: Value = serde_json::from_str(&stdout)
        .with_context(|| format!("sync printed no JSON (exit {}): {}", usage.code, tail(&stderr)))?;
    let r = v.get(0).context("empty sync report")?;
    let changes = changes_in(r);
    // phases from the log: last fetch progress line -> "applying" -> "sync finished"
    let mut last_fetch = None;
    let mut applying = None;
    let mut finished = None;
    for line in stderr.lines() {
        if line.contains("usersync::wiring") && line.contains(" requests ") {
            last_fetch = log_secs(line);
        } else if line.contains("applying ") && line.contains(" changes") {
            applying = log_secs(line);
        } else if line.contains("sync finished") {
            finished = log_secs(line);
        }
    }
    let ms = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| ((b - a) * 1000.0).max(0.0));
    Ok(SyncFigures {
        usage,
        requests: r.pointer("/requests").and_then(Value::as_u64).unwrap_or(0),
        changes,
        plan_ms: ms(last_fetch, applying.or(finished)),
        apply_ms: ms(applying, finished),
        status: r["status"].as_str().unwrap_or_default().to_string(),
    })
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

#[derive(Debug, Clone)]
struct Row {
    provider: String,
    users: u32,
    groups: u32,
    memberships: u64,
    latency_ms: u64,
    /// A row of the rate-limited table (Keycloak's has no `rate_limit`: it has none).
    limited: bool,
    /// The rate limit the emulator enforced, requests a minute per bucket.
    rate_limit: Option<u32>,
    min_requests: MinRequests,
    initial: SyncFigures,
    resync: Option<SyncFigures>,
    /// Throttle answers the emulator gave (429s; Google's 403 `userRateLimitExceeded`).
    throttled: u64,
    /// Wall time of the same initial sync without a rate limit (rate-limited rows).
    unthrottled_wall: Option<Duration>,
    /// The floor of the same organisation (`floor.rs`), where measured.
    floor: Option<floor::Floor>,
}

/// What a scenario measures.
#[derive(Debug, Clone, Copy)]
struct Mode {
    /// The rate limit to enforce (`None`: none at all, not even the emulator's default quota).
    rate: Option<u32>,
    /// A row of the rate-limited table.
    limited: bool,
    /// Also measure a no-change resync.
    resync: bool,
}

/// `--rate-limit` for a run without a rate limit: beyond reach (Google's emulator otherwise
/// enforces Google's 2,400 queries a minute in every run).
const UNLIMITED: u32 = 4_000_000_000;

fn scenario(
    bin: &Path,
    provider: &str,
    users: u32,
    latency: u64,
    mode: Mode,
    args: &Args,
    work: &Path,
) -> anyhow::Result<Row> {
    let rate = mode.rate;
    let groups = args.groups.unwrap_or((users / 10).max(1));
    let mut eargs: Vec<String> = vec![
        "--users".into(),
        users.to_string(),
        "--groups".into(),
        groups.to_string(),
        "--seed".into(),
        args.seed.to_string(),
        "--avg-groups".into(),
        args.avg_groups.to_string(),
        "--nesting-depth".into(),
        args.nesting_depth.to_string(),
        "--latency-ms".into(),
        latency.to_string(),
    ];
    eargs.push("--rate-limit".into());
    eargs.push(rate.unwrap_or(UNLIMITED).to_string());
    let emu = Emulator::start(bin, provider, &eargs)?;
    let dir = work.join(format!(
        "{provider}-{users}-{latency}ms-{}{}",
        rate.unwrap_or(0),
        if mode.limited { "-limited" } else { "" }
    ));
    std::fs::create_dir_all(&dir)?;
    let mut conn = Connection::from_emulator_info(&emu.info, None)?;
    if let Some((opt, max)) = page_size_option(provider) {
        conn.set_option(opt, serde_json::json!(max));
    }
    // the default retry and throttle settings: a sync under a rate limit must complete with them
    let config = write_config(&dir, &[conn], "", "")?;
    let schema = match &args.store_url {
        Some(url) => Some(use_postgres_store(&config, &dir, url)?),
        None => None,
    };
    let min_requests = minimum_requests(provider, users, groups, args)?;
    let limit = match (rate, mode.limited) {
        (Some(r), _) => format!("rate limit {r}/min"),
        (None, true) => "no rate limit (the provider has none)".to_string(),
        (None, false) => "no rate limit".to_string(),
    };
    eprintln!("{provider}: {users} users, {latency} ms, {limit}: initial sync ...");
    let initial = sync_once(bin, &config)?;
    let resync = if mode.resync {
        eprintln!("{provider}: resync ...");
        Some(sync_once(bin, &config)?)
    } else {
        None
    };
    if let (Some(url), Some(schema)) = (&args.store_url, &schema) {
        let _ = Command::new("psql")
            .args([
                url.as_str(),
                "-qc",
                &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
            ])
            .status();
    }
    let stats = emu.stats().unwrap_or_default();
    let floor = if mode.limited {
        None
    } else {
        eprintln!("{provider}: floor ...");
        floor::measure(provider, &emu.info, &dir)?
    };
    Ok(Row {
        provider: provider.to_string(),
        users,
        groups,
        memberships: emu
            .info
            .pointer("/org/memberships")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        latency_ms: latency,
        limited: mode.limited,
        rate_limit: rate,
        min_requests,
        initial,
        resync,
        throttled: stats["throttled"].as_u64().unwrap_or(0),
        unthrottled_wall: None,
        floor,
    })
}

/// Point `config` (written by `write_config`) at a new schema of the PostgreSQL store `url`
/// instead of `dir/store.db`; returns the schema.
fn use_postgres_store(config: &Path, dir: &Path, url: &str) -> anyhow::Result<String> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let schema = format!(
        "bench_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let sep = if url.contains('?') { '&' } else { '?' };
    let text = std::fs::read_to_string(config)?;
    let from = format!(
        "[store]\npath = {}",
        usersync_bench::toml_str(&dir.join("store.db").to_string_lossy())
    );
    anyhow::ensure!(text.contains(&from), "unexpected [store] in {}", config.display());
    let to = format!(
        "[store]\nurl = {}",
        usersync_bench::toml_str(&format!("{url}{sep}schema={schema}"))
    );
    std::fs::write(config, text.replacen(&from, &to, 1))?;
    Ok(schema)
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn mib(kib: i64) -> String {
    format!("{:.0}", kib as f64 / 1024.0)
}

fn opt_ms(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.0}")).unwrap_or_else(|| "?".into())
}

fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    s.push_str(
        "| provider | users / groups / memberships | latency | requests (min, ratio) | initial: status, wall s, CPU s, peak RSS MiB | bytes per user | floor CPU s (initial CPU / floor) | plan ms / apply ms | resync: wall s, CPU s, RSS MiB, requests, store writes |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for r in rows.iter().filter(|r| !r.limited) {
        let i = &r.initial;
        let re = r.resync.as_ref().map_or_else(
            || "-".to_string(),
            |x| {
                format!(
                    "{} {}, {}, {}, {}, {}",
                    x.status,
                    secs(x.usage.wall),
                    secs(x.usage.cpu),
                    mib(x.usage.max_rss_kib),
                    x.requests,
                    x.changes
                )
            },
        );
        s.push_str(&format!(
            "| {} | {} / {} / {} | {} ms | {} ({}, {:.2}) | {} {}, {}, {} | {} | {} | {} / {} | {} |\n",
            r.provider,
            r.users,
            r.groups,
            r.memberships,
            r.latency_ms,
            i.requests,
            r.min_requests.total(),
            i.requests as f64 / r.min_requests.total() as f64,
            i.status,
            secs(i.usage.wall),
            secs(i.usage.cpu),
            mib(i.usage.max_rss_kib),
            i.usage.max_rss_kib * 1024 / i64::from(r.users.max(1)),
            r.floor.map_or_else(
                || "-".to_string(),
                |f| format!(
                    "{} ({:.1}x)",
                    secs(f.cpu),
                    i.usage.cpu.as_secs_f64() / f.cpu.as_secs_f64().max(1e-6)
                )
            ),
            opt_ms(i.plan_ms),
            opt_ms(i.apply_ms),
            re
        ));
    }
    let limited: Vec<&Row> = rows.iter().filter(|r| r.limited).collect();
    if !limited.is_empty() {
        s.push_str(&limited_table(&limited));
    }
    s
}

/// The table of the runs under each provider's real rate limit. "Waiting" is the wall time the
/// limit added (rate-limited wall minus the wall of the same sync without a limit); the lower
/// bound is the time the limit forces on the minimum number of requests (see
/// `MinRequests::rate_bound_secs`).
fn limited_table(rows: &[&Row]) -> String {
    let mut s = String::new();
    s.push_str("\nUnder the provider's real rate limit (emulated per bucket; default retry and throttle settings):\n\n");
    s.push_str(
        "| provider | users | limit / min | requests (min) | throttle answers (429/403) | status, wall s | wall without limit s | waiting on the limit s | lower bound s | waiting / bound | wall / bound |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let wall = r.initial.usage.wall.as_secs_f64();
        let Some(rate) = r.rate_limit else {
            s.push_str(&format!(
                "| {} | {} | none (self-hosted; no documented limit) | {} ({} min) | {} | {} {} | - | - | - | - | - |\n",
                r.provider,
                r.users,
                r.initial.requests,
                r.min_requests.total(),
                r.throttled,
                r.initial.status,
                secs(r.initial.usage.wall),
            ));
            continue;
        };
        let bound = r.min_requests.rate_bound_secs(&r.provider, rate);
        let waiting = r.unthrottled_wall.map(|u| (wall - u.as_secs_f64()).max(0.0));
        let per_bound = |x: f64| {
            if bound > 0.0 {
                format!("{:.2}", x / bound)
            } else {
                "n/a (fits in one window)".to_string()
            }
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} ({} min) | {} | {} {} | {} | {} | {:.0} | {} | {} |\n",
            r.provider,
            r.users,
            rate,
            r.initial.requests,
            r.min_requests.total(),
            r.throttled,
            r.initial.status,
            secs(r.initial.usage.wall),
            r.unthrottled_wall.map_or_else(|| "?".to_string(), secs),
            waiting.map_or_else(|| "?".to_string(), |w| format!("{w:.2}")),
            bound,
            waiting.map_or_else(|| "?".to_string(), per_bound),
            per_bound(wall),
        ));
    }
    s
}

fn machine() -> String {
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|k| k.parse::<u64>().ok())
        .map(|k| format!("{:.1} GiB", k as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    format!("{nproc} CPUs ({cpu}), {mem} RAM, load average at start {load}")
}

const BEGIN: &str = "<!-- usersync-bench:sync:begin -->";
const END: &str = "<!-- usersync-bench:sync:end -->";
const PUSH_BEGIN: &str = "<!-- usersync-bench:push:begin -->";
const PUSH_END: &str = "<!-- usersync-bench:push:end -->";

/// Replace (or with `append`, extend) the sync block in `path`; everything else is kept.
fn write_docs(path: &Path, block: &str, append: bool) -> anyhow::Result<()> {
    write_marked(path, BEGIN, END, block, append)
}

/// Replace (or with `append`, extend) the block between `begin` and `end` in `path`.
fn write_marked(path: &Path, begin: &str, end: &str, block: &str, append: bool) -> anyhow::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".to_string());
    let new = match (old.find(begin), old.find(end)) {
        (Some(a), Some(b)) if b > a => {
            let body = if append {
                format!("{}\n\n{block}", old[a + begin.len()..b].trim())
            } else {
                block.to_string()
            };
            format!(
                "{}{begin}\n{}\n{end}{}",
                &old[..a],
                body.trim(),
                &old[b + end.len()..]
            )
        }
        _ => format!("{}\n\n{begin}\n{block}\n{end}\n", old.trim_end()),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = match &args.usersync {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("usersync"),
    };
    if !bin.exists() {
        bail!(
            "{} not found: build it (`cargo build --release -p usersync`) or pass --usersync",
            bin.display()
        );
    }
    for p in &args.providers {
        if !PROVIDERS.contains(&p.as_str()) {
            bail!("unknown provider `{p}` (one of {})", PROVIDERS.join(", "));
        }
    }
    let tmp = tempfile::Builder::new().prefix("usersync-bench-").tempdir()?;
    let work = tmp.path().to_path_buf();
    let started = std::process::Command::new("date")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let machine = machine();
    if args.push {
        return push_main(&args, &bin, &work, &started, &machine, tmp);
    }
    if args.serve {
        return serve::main(&args, &bin, &work, &started, &machine);
    }
    if args.incremental {
        return incremental::main(&args, &bin, &work, &started, &machine, tmp);
    }
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for p in &args.providers {
        for &u in &args.users {
            for &l in &args.latency_ms {
                let mode = Mode {
                    rate: None,
                    limited: false,
                    resync: true,
                };
                match scenario(&bin, p, u, l, mode, &args, &work) {
                    Ok(r) => rows.push(r),
                    Err(e) => failures.push(format!("{p} {u} users {l} ms: {e:#}")),
                }
            }
        }
        let limited = args.rate_limited_providers.as_ref().is_none_or(|l| l.contains(p));
        if args.rate_limited_users > 0 && limited {
            let n = args.rate_limited_users;
            let rate = args.rate_limit.or_else(|| real_rate_limit(p));
            // the same sync without a limit first: the difference is the time spent waiting
            let unthrottled = match rate {
                Some(_) => {
                    let mode = Mode {
                        rate: None,
                        limited: false,
                        resync: false,
                    };
                    match scenario(&bin, p, n, 0, mode, &args, &work) {
                        Ok(r) if r.initial.status == "applied" => Some(r.initial.usage.wall),
                        Ok(r) => {
                            failures.push(format!("{p} rate-limited baseline ended {}", r.initial.status));
                            None
                        }
                        Err(e) => {
                            failures.push(format!("{p} rate-limited baseline: {e:#}"));
                            None
                        }
                    }
                }
                None => None,
            };
            let mode = Mode {
                rate,
                limited: true,
                resync: false,
            };
            match scenario(&bin, p, n, 0, mode, &args, &work) {
                Ok(mut r) => {
                    r.unthrottled_wall = unthrottled;
                    rows.push(r);
                }
                Err(e) => failures.push(format!("{p} rate-limited: {e:#}")),
            }
        }
    }
    let mut block = block_heading(&args, &started, &machine, "");
    block.push_str(&table(&rows));
    if !failures.is_empty() {
        block.push_str("\nRuns that failed:\n\n");
        for f in &failures {
            block.push_str(&format!("- {f}\n"));
        }
    }
    println!("{block}");
    if let Some(path) = &args.write_docs {
        write_docs(path, &block, args.append)?;
        eprintln!("wrote {}", path.display());
    }
    if args.keep {
        let kept = tmp.keep();
        eprintln!("kept {}", kept.display());
    }
    Ok(())
}

/// `--push`: the push benchmark (see `push.rs`), printed and optionally written into its own
/// block of the docs.
fn push_main(
    args: &Args,
    bin: &Path,
    work: &Path,
    started: &str,
    machine: &str,
    tmp: tempfile::TempDir,
) -> anyhow::Result<()> {
    let scim2_bin = match &args.scim2_server {
        Some(p) => p.clone(),
        None => bin
            .parent()
            .and_then(Path::parent)
            .map(|t| t.join("scim2-venv/bin/scim2-server"))
            .context("the usersync binary has no target directory")?,
    };
    let bench = push::PushBench {
        users: args.push_users,
        groups: args.push_groups,
        avg_groups: args.avg_groups,
        scim2_users: args.scim2_users.unwrap_or(args.push_users),
        scim2_bin,
        change_percent: args.push_change_percent,
        seed: args.seed,
    };
    let result = push::run(bin, &bench, work);
    if args.keep {
        eprintln!("kept {}", tmp.keep().display());
    }
    let table = result?;
    let block = block_heading(args, started, machine, "") + &table;
    publish_marked(args, &block, PUSH_BEGIN, PUSH_END)
}

/// Changes a sync report says it applied: users, groups and memberships, of every kind.
fn changes_in(report: &Value) -> u64 {
    let n = |p: &str| report.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let users = [
        "created",
        "updated",
        "renamed",
        "reactivated",
        "deactivated",
        "deleted",
    ];
    users.iter().map(|k| n(&format!("/users/{k}"))).sum::<u64>()
        + ["created", "updated", "deleted"]
            .iter()
            .map(|k| n(&format!("/groups/{k}")))
            .sum::<u64>()
        + n("/memberships/added")
        + n("/memberships/removed")
}

/// The heading of a block of figures: when and on what it was measured (`after_machine`: more
/// of that sentence, e.g. the load at the end), the command line and the `--note`.
fn block_heading(args: &Args, started: &str, machine: &str, after_machine: &str) -> String {
    let cmdline: Vec<String> = std::env::args().collect();
    let note = if args.note.is_empty() {
        String::new()
    } else {
        format!("\n\nNote: {}", args.note)
    };
    format!(
        "Measured {started} on {machine}{after_machine}.\n\nCommand: `{}`{note}\n\n",
        cmdline.join(" ")
    )
}

/// Prints a block of figures and, with `--write-docs`, writes it between its markers.
fn publish_marked(args: &Args, block: &str, begin: &str, end: &str) -> anyhow::Result<()> {
    println!("{block}");
    if let Some(path) = &args.write_docs {
        write_marked(path, begin, end, block, args.append)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
