//! `usersync-bench --incremental` (issue 21): what an incremental run costs next to a full one.
//! Per provider, one organisation in an emulator running in this process (changed through its
//! organisation between runs, as tests/it/incremental.rs does) and one store with
//! `incremental = true`: the initial (full) sync, a no-change incremental run, a run after
//! `--changed-users` users and `--changed-groups` groups changed, the same two incremental runs
//! under the provider's real rate limit, and a full resync (`sync --full`) for comparison. Only
//! the `usersync` child is measured (wait4: wall, CPU, peak RSS); requests and the run's kind come
//! from its JSON report.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use usersync_bench::{page_size_option, write_config, Connection};
use usersync_emulator::org::{GroupKind, Org};
use usersync_emulator::{start, EmulatorOptions, FaultConfig, GenConfig, RunningEmulator, UserStatus};

use crate::{mib, minimum_requests, real_rate_limit, run_measured, secs, tail, Usage, UNLIMITED};

const INCR_BEGIN: &str = "<!-- usersync-bench:incremental:begin -->";
const INCR_END: &str = "<!-- usersync-bench:incremental:end -->";

/// What the incremental benchmark measures.
pub struct IncrBench {
    /// Users of each organisation.
    pub users: u32,
    /// Groups of each organisation.
    pub groups: u32,
    /// Average direct group memberships per user.
    pub avg_groups: u32,
    /// Group nesting depth where the provider allows nesting.
    pub nesting_depth: u32,
    /// Users changed before each "after change" run.
    pub changed_users: u32,
    /// Groups changed before each "after change" run.
    pub changed_groups: u32,
    /// Organisation seed.
    pub seed: u64,
    /// Run the incremental runs again under the provider's real rate limit.
    pub rate_limited: bool,
    /// Per provider: its real rate limit and the least time that limit forces on a full read
    /// (`MinRequests::rate_bound_secs`), seconds.
    pub full_rate_bound: Vec<(String, u32, f64)>,
}

/// One measured `usersync sync`.
#[derive(Debug, Clone, Default)]
struct Run {
    what: String,
    usage: Usage,
    status: String,
    kind: String,
    requests: u64,
    changes: u64,
    /// The rate limit the emulator enforced during the run, requests a minute per bucket.
    limit: Option<u32>,
    throttled: u64,
}

/// Every run of one provider.
struct ProviderRuns {
    provider: String,
    memberships: u64,
    runs: Vec<Run>,
    notes: Vec<String>,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the emulator's runtime")
}

/// `usersync sync` with `extra` arguments, measured; the report's counts.
fn sync(bin: &Path, config: &Path, extra: &[&str], what: &str) -> anyhow::Result<Run> {
    let mut cmd = Command::new(bin);
    cmd.arg("--config")
        .arg(config)
        .args(["sync", "--format", "json", "--no-progress"])
        .args(extra)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env("NO_PROXY", "127.0.0.1,localhost");
    let (usage, stdout, stderr) = run_measured(cmd)?;
    if let Some(dir) = config.parent() {
        let slug: String = what
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let _ = std::fs::write(dir.join(format!("sync-{slug}.log")), &stderr);
    }
    let v: Value = serde_json::from_str(&stdout)
        .with_context(|| format!("sync printed no JSON (exit {}): {}", usage.code, tail(&stderr)))?;
    let r = v.get(0).context("empty sync report")?;
    let changes = crate::changes_in(r);
    let text = |k: &str| r[k].as_str().unwrap_or("?").to_string();
    Ok(Run {
        what: what.to_string(),
        usage,
        status: text("status"),
        // no kind: the connection reads in full without feeds (Google; feeds off)
        kind: r["kind"].as_str().unwrap_or("full (no feed)").to_string(),
        requests: r.pointer("/requests").and_then(Value::as_u64).unwrap_or(0),
        changes,
        limit: None,
        throttled: 0,
    })
}

/// Change `users` users and `groups` groups of `org`, spread over the organisation: a fifth of
/// the users created (each put in a group), a fifth renamed, a fifth given a new manager, a
/// quarter moved from one group to another, the rest deactivated; half the groups created (three
/// members each), half renamed. No deletions: they are left to full runs by the Okta and OneLogin
/// feeds (documented), so they would not measure the feed. Returns a one-line summary.
fn change(org: &mut Org, users: u32, groups: u32, tag: u64) -> String {
    let live: Vec<u32> = org
        .live_users()
        .filter(|u| u.status == UserStatus::Active)
        .map(|u| u.ix)
        .collect();
    let native: Vec<u32> = org
        .live_groups()
        .filter(|g| g.kind == GroupKind::Native)
        .map(|g| g.ix)
        .collect();
    if live.is_empty() || native.is_empty() {
        return "nothing to change".into();
    }
    // a stride through the organisation, offset by the tag so two rounds touch other users
    let stride = (live.len() / (users as usize + 1)).max(1);
    let pick = |i: usize| live[(tag as usize * 7 + i * stride) % live.len()];
    let group = |i: usize| native[(tag as usize * 13 + i * 31) % native.len()];
    let u = users as usize;
    let (create, rename, manager, moved) = (u / 5, u / 5, u / 5, u / 4);
    let deactivate = u - create - rename - manager - moved;
    for i in 0..create {
        let login = format!("bench{tag}x{i}@{}", org.domain);
        let ix = org.add_user(&login, &format!("Bench{tag}"), &format!("Person{i}"));
        org.add_member(group(i), ix);
    }
    let mut k = 0;
    for _ in 0..rename {
        org.rename_user(pick(k), &format!("Renamed{tag}"), &format!("Person{k}"));
        k += 1;
    }
    for _ in 0..manager {
        org.set_manager(pick(k), Some(pick(k + 1)));
        k += 1;
    }
    for i in 0..moved {
        let ix = pick(k);
        k += 1;
        if let Some(&from) = org.groups_of(ix).first() {
            org.remove_member(from, ix);
        }
        org.add_member(group(i + 100), ix);
    }
    for _ in 0..deactivate {
        org.set_status(pick(k), UserStatus::Suspended);
        k += 1;
    }
    let g = groups as usize;
    let new_groups = g / 2;
    for i in 0..new_groups {
        let ix = org.add_group(&format!("Bench team {tag}-{i}"), GroupKind::Native);
        for j in 0..3 {
            org.add_member(ix, pick(k + j));
        }
    }
    for i in 0..g - new_groups {
        org.rename_group(group(i + 200), &format!("Bench renamed {tag}-{i}"));
    }
    format!(
        "{create} users created, {rename} renamed, {manager} new manager, {moved} moved between groups, \
         {deactivate} deactivated; {new_groups} groups created (3 members each), {} renamed",
        g - new_groups
    )
}

/// The emulator's rate limit from now on (`None`: none at all).
fn set_limit(emu: &RunningEmulator, limit: Option<u32>) -> anyhow::Result<()> {
    let cfg = FaultConfig {
        rate_limit_per_minute: Some(limit.unwrap_or(UNLIMITED)),
        ..FaultConfig::default()
    };
    emu.set_faults(cfg).context("setting the emulator's rate limit")
}

fn throttled(emu: &RunningEmulator) -> u64 {
    emu.ctx.stats.throttled.load(std::sync::atomic::Ordering::SeqCst)
}

/// Start the emulator and write a config with `incremental = true`.
fn prepare(
    rt: &tokio::runtime::Runtime,
    provider: &str,
    bench: &IncrBench,
    dir: &Path,
) -> anyhow::Result<(RunningEmulator, PathBuf, u64)> {
    let mut opts = EmulatorOptions::new(provider);
    opts.gen = GenConfig {
        users: bench.users,
        groups: bench.groups,
        seed: bench.seed,
        avg_groups_per_user: bench.avg_groups,
        nesting_depth: bench.nesting_depth,
        ..GenConfig::default()
    };
    opts.faults.rate_limit_per_minute = Some(UNLIMITED);
    let emu = rt
        .block_on(start(opts))
        .with_context(|| format!("starting the {provider} emulator"))?;
    let info = rt.block_on(emu.info());
    let memberships = rt.block_on(async { emu.org().read().await.counts().memberships }) as u64;
    let mut conn = Connection::from_emulator_info(&info, None)?;
    if let Some((opt, max)) = page_size_option(provider) {
        conn.set_option(opt, serde_json::json!(max));
    }
    std::fs::create_dir_all(dir)?;
    let config = write_config(dir, &[conn], "", "")?;
    let text = std::fs::read_to_string(&config)?;
    let from = "\n[connections.options]\n";
    anyhow::ensure!(text.contains(from), "unexpected config {}", config.display());
    std::fs::write(
        &config,
        text.replacen(from, "\nincremental = true\n[connections.options]\n", 1),
    )?;
    Ok((emu, config, memberships))
}

/// Every run of one provider.
fn provider_runs(bin: &Path, provider: &str, bench: &IncrBench, work: &Path) -> anyhow::Result<ProviderRuns> {
    let rt = runtime()?;
    let dir = work.join(format!("incremental-{provider}"));
    let (emu, config, memberships) = prepare(&rt, provider, bench, &dir)?;
    let mut out = ProviderRuns {
        provider: provider.to_string(),
        memberships,
        runs: Vec::new(),
        notes: Vec::new(),
    };
    let step = |out: &mut ProviderRuns, what: &str, extra: &[&str], limit: Option<u32>| {
        eprintln!("incremental bench: {provider}: {what} ...");
        let before = throttled(&emu);
        let mut r = sync(bin, &config, extra, what)?;
        r.limit = limit;
        r.throttled = throttled(&emu) - before;
        eprintln!(
            "  {} {}, {} requests, {} s wall, {} s CPU",
            r.status,
            r.kind,
            r.requests,
            secs(r.usage.wall),
            secs(r.usage.cpu)
        );
        let ok = r.status == "applied";
        out.runs.push(r);
        anyhow::Ok(ok)
    };
    let mutate = |out: &mut ProviderRuns, tag: u64| {
        let summary = rt.block_on(async {
            let mut org = emu.org().write().await;
            change(&mut org, bench.changed_users, bench.changed_groups, tag)
        });
        if tag == 1 {
            out.notes.push(format!("Each change round: {summary}."));
        }
    };
    if !step(&mut out, "initial", &[], None)? {
        return Ok(out);
    }
    step(&mut out, "no change", &[], None)?;
    mutate(&mut out, 1);
    step(&mut out, "after change", &[], None)?;
    let feed = out.runs.iter().skip(1).all(|r| r.kind == "incremental");
    let limit = real_rate_limit(provider);
    match (bench.rate_limited, feed, limit) {
        (true, true, Some(l)) => {
            // the windows the earlier runs opened close first: each limited run starts as a run
            // every few minutes would
            set_limit(&emu, Some(l))?;
            std::thread::sleep(Duration::from_secs(61));
            step(&mut out, "no change, rate limited", &[], Some(l))?;
            mutate(&mut out, 2);
            std::thread::sleep(Duration::from_secs(61));
            step(&mut out, "after change, rate limited", &[], Some(l))?;
            set_limit(&emu, None)?;
        }
        (true, false, _) => out.notes.push(format!(
            "{provider}: no incremental run (the runs were full), so no rate-limited incremental runs."
        )),
        (true, true, None) => out.notes.push(format!(
            "{provider}: no rate limit (self-hosted), no rate-limited runs."
        )),
        (false, ..) => {}
    }
    step(&mut out, "full resync", &["--full"], None)?;
    Ok(out)
}

/// Run the benchmark for `providers`; returns the Markdown block (table and notes).
pub fn run(bin: &Path, providers: &[String], bench: &IncrBench, work: &Path) -> anyhow::Result<String> {
    let mut all = Vec::new();
    let mut failures = Vec::new();
    for p in providers {
        match provider_runs(bin, p, bench, work) {
            Ok(r) => all.push(r),
            Err(e) => failures.push(format!("{p}: {e:#}")),
        }
    }
    let mut s = format!(
        "{} users / {} groups per organisation (memberships per provider below); \"ratio\" is the \
         run's requests as a share of the full resync's.\n\n",
        bench.users, bench.groups
    );
    s.push_str(
        "| provider | memberships | run | kind | status | requests | ratio to full | rate limit / min (429s) | changes applied | wall s | CPU s | peak RSS MiB |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut notes = Vec::new();
    for p in &all {
        let full = p
            .runs
            .iter()
            .rev()
            .find(|r| r.what == "full resync")
            .or_else(|| p.runs.first())
            .map_or(0, |r| r.requests);
        for r in &p.runs {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                p.provider,
                p.memberships,
                r.what,
                r.kind,
                r.status,
                r.requests,
                if full > 0 {
                    format!("{:.2}%", r.requests as f64 * 100.0 / full as f64)
                } else {
                    "-".into()
                },
                r.limit
                    .map_or_else(|| "-".to_string(), |l| format!("{l} ({})", r.throttled)),
                r.changes,
                secs(r.usage.wall),
                secs(r.usage.cpu),
                mib(r.usage.hwm_kib),
            ));
        }
        let bound = bench.full_rate_bound.iter().find(|b| b.0 == p.provider);
        if let Some((_, rate, secs)) = bound {
            s.push_str(&format!(
                "| {} | {} | full resync, rate limited: lower bound (not run) | full | - | {full} | 100.00% | {rate} | - | >= {secs:.0} | - | - |\n",
                p.provider, p.memberships,
            ));
        }
        for n in &p.notes {
            if !notes.contains(n) {
                notes.push(n.clone());
            }
        }
    }
    for n in notes {
        s.push_str(&format!("\n{n}\n"));
    }
    if !failures.is_empty() {
        s.push_str("\nRuns that failed:\n\n");
        for f in failures {
            s.push_str(&format!("- {f}\n"));
        }
    }
    Ok(s)
}

/// `--incremental`: the incremental-run benchmark (see `incremental.rs`), printed and optionally
/// written into its own block of the docs.
pub fn main(
    args: &crate::Args,
    bin: &Path,
    work: &Path,
    started: &str,
    machine: &str,
    tmp: tempfile::TempDir,
) -> anyhow::Result<()> {
    let users = args.users.first().copied().unwrap_or(10_000);
    let groups = args.groups.unwrap_or((users / 10).max(1));
    let mut full_rate_bound = Vec::new();
    for p in &args.providers {
        if let Some(rate) = real_rate_limit(p) {
            let min = minimum_requests(p, users, groups, args)?;
            full_rate_bound.push((p.clone(), rate, min.rate_bound_secs(p, rate)));
        }
    }
    let bench = IncrBench {
        users,
        groups,
        avg_groups: args.avg_groups,
        nesting_depth: args.nesting_depth,
        changed_users: args.changed_users,
        changed_groups: args.changed_groups,
        seed: args.seed,
        rate_limited: args.rate_limited_users > 0,
        full_rate_bound,
    };
    let result = run(bin, &args.providers, &bench, work);
    if args.keep {
        eprintln!("kept {}", tmp.keep().display());
    }
    let table = result?;
    let uptime = Command::new("uptime")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let ending = format!("; `uptime` at the end: {uptime}");
    let block = crate::block_heading(args, started, machine, &ending) + &table;
    crate::publish_marked(args, &block, INCR_BEGIN, INCR_END)
}
