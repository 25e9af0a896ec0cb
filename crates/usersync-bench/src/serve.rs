//! `usersync-bench --serve`: measures `usersync serve` (the real binary, a child process) with
//! five connections, one per provider emulator (`usersync emulator` children), over a store that
//! already holds `--serve-history` runs:
//!
//! - idle between runs: after each connection's first run (at start; `every = "1h"` keeps the
//!   next one an hour away), CPU time (utime + stime from `/proc/<pid>/stat`) over
//!   `--serve-idle-secs`, extrapolated to an hour, and resident memory (`VmRSS`, `VmHWM` from
//!   `/proc/<pid>/status`);
//! - latency of the status page, `/metrics` and `/api/status`: `--serve-requests` sequential
//!   requests each (a new loopback connection per request, as a scraper makes), p50 / p99 / max.
//!
//! Goals (issue 22): under 30 MiB and under 1 CPU-second an hour idle; under 50 ms a request.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;
use usersync_bench::{toml_str, write_config, Connection};
use usersync_store::{RunOutcome, RunStatus, SqliteStore, Store};

use crate::Emulator;

/// The providers of the five connections.
const PROVIDERS: [&str; 5] = ["okta", "entra", "google", "keycloak", "onelogin"];
/// The token the bench gives serve.
const TOKEN: &str = "usersync-bench-serve-token";

/// What the serve benchmark measures.
pub struct ServeBench {
    /// Users of each emulator's organisation.
    pub users: u32,
    /// Runs already in the store's history when serve starts.
    pub history: u32,
    /// Seconds of idle measured.
    pub idle_secs: u64,
    /// Requests per endpoint for the latency figures.
    pub requests: u32,
}

/// `usersync serve`, killed on drop.
struct ServeChild {
    child: Child,
    addr: String,
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One plain HTTP/1.0 GET with the bearer token over a new connection: (status, body).
fn get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let mut s = std::net::TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no HTTP status line")?;
    let body = buf.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
    Ok((status, body.to_string()))
}

/// Fill the store with `n` finished runs of the five connections (oldest first, 15 minutes
/// apart, ending a day ago): mostly applied with a few changes, some failed, some blocked with a
/// plan of 50 deactivations. The runs serve makes come after them.
fn fill_history(db: &Path, n: u32) -> anyhow::Result<()> {
    let mut store = SqliteStore::open(db).with_context(|| format!("open {}", db.display()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let end = now - 86_400_000;
    let users: Vec<Value> = (0..50)
        .map(|i| serde_json::json!({"action": "deactivated", "username": format!("user{i}@example.com"), "reason": "gone from the source"}))
        .collect();
    for i in 0..n {
        let conn = PROVIDERS[(i as usize) % PROVIDERS.len()];
        let started = end - i64::from(n - i) * 900_000;
        let id = store.begin_run(conn, started)?;
        let (status, errors, plan) = match i % 50 {
            7 => (
                RunStatus::Failed,
                vec!["GET /users: HTTP 503 after 5 retries".to_string()],
                Value::Null,
            ),
            13 => (
                RunStatus::Blocked,
                vec!["blocked: 50 deactivations exceed max_removals = 10".to_string()],
                serde_json::json!({ "users": users }),
            ),
            _ => (RunStatus::Applied, Vec::new(), Value::Null),
        };
        let removals = if status == RunStatus::Blocked { 50 } else { i % 3 };
        let outcome = RunOutcome {
            status,
            counts: serde_json::json!({
                "users": {"created": i % 5, "updated": i % 7, "deactivated": removals, "deleted": 0},
                "groups": {"created": 0, "updated": i % 2, "deleted": 0},
                "memberships": {"added": i % 11, "removed": i % 4},
            }),
            errors,
            plan,
            requests: 40 + u64::from(i % 17),
            source_users: None,
        };
        store.finish_run(id, &outcome, started + 4_000)?;
    }
    Ok(())
}

/// Start `usersync serve` on `config`; its URL is the first line on stdout.
fn start_serve(bin: &Path, config: &Path) -> anyhow::Result<ServeChild> {
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .context("spawning usersync serve")?;
    let out = child.stdout.take().context("serve stdout")?;
    let mut reader = BufReader::new(out);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .context("reading serve's first line")?;
    // keep draining stdout so serve never blocks on a full pipe
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = reader.read_to_string(&mut sink);
    });
    let addr = line
        .trim()
        .strip_prefix("usersync serve: listening on http://")
        .with_context(|| format!("unexpected first line of serve: {line:?}"))?
        .to_string();
    Ok(ServeChild { child, addr })
}

/// CPU time (user + system) of `pid` so far, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // the fields after the command name (which may hold spaces) in parentheses
    let rest = stat.rsplit_once(')').map(|x| x.1).context("stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after the name
    let ticks: u64 =
        f.get(11).context("utime")?.parse::<u64>()? + f.get(12).context("stime")?.parse::<u64>()?;
    // SAFETY: sysconf reads a configuration value; no memory is involved.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_millis(ticks * 1000 / hz))
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// Wait until every connection's first run has ended (applied or not), at most 5 minutes.
fn wait_first_runs(addr: &str) -> anyhow::Result<Vec<String>> {
    let until = Instant::now() + Duration::from_secs(300);
    loop {
        let (code, body) = get(addr, "/api/status")?;
        if code == 200 {
            let v: Value = serde_json::from_str(&body)?;
            let conns = v["connections"].as_array().cloned().unwrap_or_default();
            let done: Vec<String> = conns
                .iter()
                .filter(|c| c["running_since_ms"].is_null() && !c["last_status"].is_null())
                .map(|c| {
                    format!(
                        "{} {}",
                        c["name"].as_str().unwrap_or("?"),
                        c["last_status"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            if done.len() == PROVIDERS.len() {
                return Ok(done);
            }
        }
        if Instant::now() > until {
            bail!("the first runs did not all end within 5 minutes: {body}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Latencies of `n` sequential GETs of `path`, sorted.
fn latencies(addr: &str, path: &str, n: u32) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let (code, body) = get(addr, path)?;
        out.push(t.elapsed());
        if code != 200 {
            bail!("GET {path}: HTTP {code}: {body}");
        }
    }
    out.sort();
    Ok(out)
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// Run the benchmark; returns the Markdown for the docs.
pub fn run(bin: &Path, bench: &ServeBench, work: &Path) -> anyhow::Result<String> {
    let users = bench.users.to_string();
    let groups = (bench.users / 10).max(1).to_string();
    let mut emulators = Vec::new();
    let mut conns = Vec::new();
    for p in PROVIDERS {
        let args: Vec<String> = [
            "--users",
            &users,
            "--groups",
            &groups,
            "--rate-limit",
            "4000000000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let emu = Emulator::start(bin, p, &args)?;
        conns.push(Connection::from_emulator_info(&emu.info, None)?);
        emulators.push(emu);
    }
    let dir = work.join("serve");
    std::fs::create_dir_all(&dir)?;
    let config = write_config(&dir, &conns, "", "")?;
    std::fs::write(dir.join("serve-token"), format!("{TOKEN}\n"))?;
    let mut text = std::fs::read_to_string(&config)?;
    for p in PROVIDERS {
        let from = format!("connector = {}\n", toml_str(p));
        text = text.replacen(&from, &format!("{from}every = \"1h\"\n"), 1);
    }
    text.push_str(&format!(
        "\n[serve]\nlisten = \"127.0.0.1:0\"\ntoken = {{ file = {} }}\n",
        toml_str(&dir.join("serve-token").to_string_lossy())
    ));
    std::fs::write(&config, text)?;
    eprintln!("serve: {} runs of history ...", bench.history);
    fill_history(&dir.join("store.db"), bench.history)?;

    let serve = start_serve(bin, &config)?;
    let pid = serve.child.id();
    eprintln!("serve: waiting for the first runs ...");
    let first = wait_first_runs(&serve.addr)?;
    std::thread::sleep(Duration::from_secs(5));
    eprintln!("serve: idle for {} s ...", bench.idle_secs);
    let (cpu0, rss0) = (cpu_time(pid)?, status_kib(pid, "VmRSS")?);
    std::thread::sleep(Duration::from_secs(bench.idle_secs));
    let (cpu1, rss1, hwm) = (
        cpu_time(pid)?,
        status_kib(pid, "VmRSS")?,
        status_kib(pid, "VmHWM")?,
    );
    let idle_cpu = cpu1.saturating_sub(cpu0);
    let per_hour = idle_cpu.as_secs_f64() * 3600.0 / bench.idle_secs.max(1) as f64;

    eprintln!("serve: latency, {} requests per endpoint ...", bench.requests);
    let mut rows = Vec::new();
    for (what, path) in [
        ("status page `/`", "/"),
        ("`/metrics`", "/metrics"),
        ("`/api/status`", "/api/status"),
    ] {
        let l = latencies(&serve.addr, path, bench.requests)?;
        let q = |p: f64| l[((l.len() as f64 - 1.0) * p).round() as usize];
        rows.push(format!(
            "| {what} | {} | {} | {} | {} |",
            bench.requests,
            ms(q(0.5)),
            ms(q(0.99)),
            ms(l[l.len() - 1])
        ));
    }
    let after = status_kib(pid, "VmRSS")?;
    drop(serve);
    drop(emulators);
    let mib = |k: u64| format!("{:.1}", k as f64 / 1024.0);
    Ok(format!(
        "Five connections (okta, entra, google, keycloak, onelogin emulators, {} users each, \
         `every = \"1h\"`), a SQLite store holding {} runs of history; first runs: {}.\n\n\
         | idle between runs | measured | goal |\n| --- | ---: | ---: |\n\
         | CPU over {} s idle | {:.3} s | |\n\
         | CPU per hour idle (extrapolated) | {:.2} s | < 1 s |\n\
         | RSS at the start of the idle period | {} MiB | |\n\
         | RSS at its end | {} MiB | < 30 MiB |\n\
         | peak RSS (VmHWM, the first runs included) | {} MiB | |\n\
         | RSS after the latency requests | {} MiB | |\n\n\
         | endpoint | requests | p50 ms | p99 ms | max ms |\n| --- | ---: | ---: | ---: | ---: |\n{}\n\n\
         Goal: under 50 ms a request (p99).\n",
        bench.users,
        bench.history,
        first.join(", "),
        bench.idle_secs,
        idle_cpu.as_secs_f64(),
        per_hour,
        mib(rss0),
        mib(rss1),
        mib(hwm),
        mib(after),
        rows.join("\n")
    ))
}

const BEGIN: &str = "<!-- usersync-bench:serve:begin -->";
const END: &str = "<!-- usersync-bench:serve:end -->";

/// `--serve`: run, print, and optionally write the docs block.
pub fn main(args: &crate::Args, bin: &Path, work: &Path, started: &str, machine: &str) -> anyhow::Result<()> {
    let bench = ServeBench {
        users: args.serve_users,
        history: args.serve_history,
        idle_secs: args.serve_idle_secs,
        requests: args.serve_requests,
    };
    let table = run(bin, &bench, work)?;
    let cmdline: Vec<String> = std::env::args().collect();
    let note = if args.note.is_empty() {
        String::new()
    } else {
        format!("\n\nNote: {}", args.note)
    };
    let block = format!(
        "Measured {started} on {machine}.\n\nCommand: `{}`{note}\n\n{table}",
        cmdline.join(" ")
    );
    println!("{block}");
    if let Some(path) = &args.write_docs {
        crate::write_marked(path, BEGIN, END, &block, args.append)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
