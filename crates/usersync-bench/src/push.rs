//! `usersync-bench --push`: measures `usersync push` (the real binary, a child process measured
//! with wait4) from a store synced from the Okta emulator into the SCIM service-provider
//! emulator (`scim` mode, generic RFC profile) and into the real scim2-server (PyPI, installed by
//! `sh tests/scim/setup.sh`): HTTP requests of an initial push against the goal (users + groups +
//! ceil(membership changes / chunk) + discovery), of a no-change push (goal: no writes) and of a
//! push after 1% of the users changed at the IdP; CPU time and peak RSS of each.
//!
//! The emulators run in this process (the IdP is changed through its organisation, as the
//! integration tests do); only the `usersync` child is measured.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;
use usersync_bench::{page_size_option, toml_str, write_config, Connection};
use usersync_emulator::{start, EmulatorOptions, GenConfig, RunningEmulator, UserStatus};

use crate::{mib, run_measured, secs, Usage};

/// Largest member changes per SCIM PATCH (the scim connector's generic profile).
const CHUNK: u64 = 100;
/// Discovery requests of a SCIM target session (`/ServiceProviderConfig`, `/ResourceTypes`,
/// `/Schemas`).
const DISCOVERY: u64 = 3;
/// The bearer token the bench gives scim2-server.
const SCIM2_TOKEN: &str = "usersync-bench-scim2";

/// What the push benchmark measures.
pub struct PushBench {
    /// Users of the Okta organisation.
    pub users: u32,
    /// Groups of the organisation.
    pub groups: u32,
    /// Average direct group memberships per user.
    pub avg_groups: u32,
    /// Users for the push into scim2-server (0: skip it).
    pub scim2_users: u32,
    /// The scim2-server executable.
    pub scim2_bin: PathBuf,
    /// Percent of users renamed at the IdP before the "changed" push.
    pub change_percent: u32,
    /// Organisation seed.
    pub seed: u64,
}

/// One measured `usersync push` (or sync) run.
#[derive(Debug, Clone, Default)]
struct PushFigures {
    usage: Usage,
    status: String,
    requests: u64,
    writes: u64,
    /// What the application received (emulator's own request counter), when known.
    app_requests: Option<u64>,
    counts: Value,
}

impl PushFigures {
    fn count(&self, key: &str) -> u64 {
        self.counts[key].as_u64().unwrap_or(0)
    }

    /// users + groups + ceil(membership changes / chunk) + discovery, for the writes this push
    /// had to make.
    fn goal(&self) -> u64 {
        let users = [
            "users_created",
            "users_updated",
            "users_deactivated",
            "users_deleted",
        ]
        .iter()
        .map(|k| self.count(k))
        .sum::<u64>();
        let groups = ["groups_created", "groups_renamed", "groups_deleted"]
            .iter()
            .map(|k| self.count(k))
            .sum::<u64>();
        let members = self.count("members_added") + self.count("members_removed");
        let writes = users + groups + members.div_ceil(CHUNK);
        if writes == 0 {
            0
        } else {
            writes + DISCOVERY
        }
    }
}

/// A row of the push table.
struct PushRow {
    app: &'static str,
    scenario: String,
    users: u32,
    groups: u32,
    memberships: u64,
    figures: PushFigures,
}

/// An organisation in the Okta emulator synced into a fresh store, ready to push.
struct Stage {
    okta: RunningEmulator,
    dir: PathBuf,
    config: PathBuf,
    memberships: u64,
    sync: Usage,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the emulators' runtime")
}

/// Start the Okta emulator with `users`/`groups`, write a config and sync it into a fresh store.
fn prepare(
    rt: &tokio::runtime::Runtime,
    bin: &Path,
    bench: &PushBench,
    users: u32,
    groups: u32,
    dir: &Path,
) -> anyhow::Result<Stage> {
    let mut opts = EmulatorOptions::new("okta");
    opts.gen = GenConfig {
        users,
        groups,
        seed: bench.seed,
        avg_groups_per_user: bench.avg_groups,
        ..GenConfig::default()
    };
    let okta = rt.block_on(start(opts)).context("starting the Okta emulator")?;
    let info = rt.block_on(okta.info());
    let memberships = rt.block_on(async { okta.org().read().await.counts().memberships }) as u64;
    let mut conn = Connection::from_emulator_info(&info, None)?;
    if let Some((opt, max)) = page_size_option("okta") {
        conn.set_option(opt, serde_json::json!(max));
    }
    std::fs::create_dir_all(dir)?;
    let config = write_config(dir, &[conn], "", "")?;
    eprintln!("push bench: {users} users / {groups} groups / {memberships} memberships: sync ...");
    let sync = sync_okta(bin, &config)?;
    Ok(Stage {
        okta,
        dir: dir.to_path_buf(),
        config,
        memberships,
        sync,
    })
}

/// `usersync sync --connection okta` (a sync of one connection pushes no target).
fn sync_okta(bin: &Path, config: &Path) -> anyhow::Result<Usage> {
    let mut cmd = Command::new(bin);
    cmd.arg("--config")
        .arg(config)
        .args([
            "sync",
            "--connection",
            "okta",
            "--format",
            "json",
            "--no-progress",
        ])
        .env("NO_COLOR", "1")
        .env("NO_PROXY", "127.0.0.1,localhost");
    let (usage, stdout, stderr) = run_measured(cmd)?;
    let v: Value = serde_json::from_str(&stdout).with_context(|| {
        format!(
            "sync printed no JSON (exit {}): {}",
            usage.code,
            crate::tail(&stderr)
        )
    })?;
    let status = v.pointer("/0/status").and_then(Value::as_str).unwrap_or_default();
    if status != "applied" {
        bail!("the sync ended {status:?}: {}", crate::tail(&stderr));
    }
    Ok(usage)
}

/// Add `[targets.NAME]` (the scim connector, generic profile) to the stage's config; the token
/// goes to a secret file.
fn add_target(stage: &Stage, name: &str, base_url: &str, token: &str) -> anyhow::Result<()> {
    let secret = stage.dir.join("secrets").join(format!("target-{name}"));
    std::fs::write(&secret, token)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))?;
    }
    let mut text = std::fs::read_to_string(&stage.config)?;
    text.push_str(&format!(
        "\n[targets.{name}]\nconnector = \"scim\"\n[targets.{name}.options]\nbase_url = {}\nprofile = \"generic\"\n\
         token = {{ file = {} }}\n",
        toml_str(base_url),
        toml_str(&secret.to_string_lossy())
    ));
    std::fs::write(&stage.config, text)?;
    Ok(())
}

/// One measured `usersync push TARGET --format json`.
fn push_once(bin: &Path, config: &Path, target: &str) -> anyhow::Result<PushFigures> {
    let mut cmd = Command::new(bin);
    cmd.arg("--config")
        .arg(config)
        .args(["push", target, "--format", "json"])
        .env("NO_COLOR", "1")
        .env("NO_PROXY", "127.0.0.1,localhost");
    let (usage, stdout, stderr) = run_measured(cmd)?;
    let v: Value = serde_json::from_str(&stdout).with_context(|| {
        format!(
            "push printed no JSON (exit {}): {}",
            usage.code,
            crate::tail(&stderr)
        )
    })?;
    let r = v.get(0).context("empty push report")?;
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    let errors = r["errors"].as_array().map(Vec::len).unwrap_or(0);
    if errors > 0 {
        eprintln!("push {target}: {errors} error(s), first: {}", r["errors"][0]);
    }
    Ok(PushFigures {
        usage,
        status: format!(
            "{}{}",
            r["status"].as_str().unwrap_or_default(),
            if r["partial"].as_bool() == Some(true) {
                " (partial)"
            } else {
                ""
            }
        ),
        requests: n("requests"),
        writes: n("writes"),
        app_requests: None,
        counts: r["counts"].clone(),
    })
}

/// Push into the SCIM emulator with the emulator's own request count.
fn push_emulator(bin: &Path, stage: &Stage, scim: &RunningEmulator) -> anyhow::Result<PushFigures> {
    let before = scim.ctx.stats.requests.load(std::sync::atomic::Ordering::SeqCst);
    let mut f = push_once(bin, &stage.config, "emu")?;
    f.app_requests = Some(scim.ctx.stats.requests.load(std::sync::atomic::Ordering::SeqCst) - before);
    Ok(f)
}

/// Rename `percent`% of the active users at the IdP.
fn change_users(rt: &tokio::runtime::Runtime, okta: &RunningEmulator, percent: u32) -> usize {
    rt.block_on(async {
        let mut org = okta.org().write().await;
        let active: Vec<u32> = org
            .live_users()
            .filter(|u| u.status == UserStatus::Active)
            .map(|u| u.ix)
            .collect();
        let n = (active.len() * percent as usize).div_ceil(100);
        let step = (active.len() / n.max(1)).max(1);
        active
            .iter()
            .step_by(step)
            .take(n)
            .enumerate()
            .filter(|(i, ix)| org.rename_user(**ix, "Changed", &format!("Person{i}")))
            .count()
    })
}

/// A running scim2-server, killed on drop.
struct Scim2 {
    child: Child,
    base_url: String,
}

impl Drop for Scim2 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_scim2(bin: &Path) -> anyhow::Result<Scim2> {
    if !bin.exists() {
        bail!(
            "{} is missing: install scim2-server with `sh tests/scim/setup.sh` (from the repository root)",
            bin.display()
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(bin)
        .args(["--hostname", "127.0.0.1", "--port", &port.to_string()])
        .args(["--bearer-token", SCIM2_TOKEN])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let server = Scim2 {
        child,
        base_url: format!("http://127.0.0.1:{port}/v2"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(server);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("scim2-server did not listen on port {port} within 30 s")
}

/// Run the push benchmark; returns the Markdown block.
pub fn run(bin: &Path, bench: &PushBench, work: &Path) -> anyhow::Result<String> {
    let rt = runtime()?;
    let mut rows = Vec::new();
    let mut notes = Vec::new();

    let stage = prepare(
        &rt,
        bin,
        bench,
        bench.users,
        bench.groups,
        &work.join("push-emulator"),
    )?;
    let scim = rt
        .block_on(start(EmulatorOptions::new("scim")))
        .context("starting the SCIM emulator")?;
    add_target(&stage, "emu", scim.base_url(), &scim.credentials().api_token)?;
    let row = |scenario: &str, figures: PushFigures, users: u32, groups: u32, memberships: u64| PushRow {
        app: "SCIM emulator",
        scenario: scenario.to_string(),
        users,
        groups,
        memberships,
        figures,
    };
    eprintln!("push bench: initial push into the SCIM emulator ...");
    let initial = push_emulator(bin, &stage, &scim)?;
    rows.push(row(
        "initial",
        initial,
        bench.users,
        bench.groups,
        stage.memberships,
    ));
    eprintln!("push bench: no-change push ...");
    let again = push_emulator(bin, &stage, &scim)?;
    rows.push(row(
        "no change",
        again,
        bench.users,
        bench.groups,
        stage.memberships,
    ));
    let changed = change_users(&rt, &stage.okta, bench.change_percent);
    eprintln!("push bench: {changed} users renamed at the IdP: sync, push ...");
    let resync = sync_okta(bin, &stage.config)?;
    notes.push(format!(
        "The IdP sync before the pushes: {} s wall, {} s CPU, {} MiB peak RSS; the resync after the \
         change: {} s wall, {} s CPU.",
        secs(stage.sync.wall),
        secs(stage.sync.cpu),
        mib(stage.sync.max_rss_kib),
        secs(resync.wall),
        secs(resync.cpu)
    ));
    let after = push_emulator(bin, &stage, &scim)?;
    rows.push(row(
        &format!("{}% changed ({changed} users renamed)", bench.change_percent),
        after,
        bench.users,
        bench.groups,
        stage.memberships,
    ));
    drop(scim);

    if bench.scim2_users > 0 {
        let scim2_groups = ((u64::from(bench.groups) * u64::from(bench.scim2_users))
            / u64::from(bench.users.max(1)))
        .max(1) as u32;
        // the same store when the size is the same; otherwise a smaller organisation of its own
        let small;
        let (s, users, groups) = if bench.scim2_users == bench.users {
            (&stage, bench.users, bench.groups)
        } else {
            small = prepare(
                &rt,
                bin,
                bench,
                bench.scim2_users,
                scim2_groups,
                &work.join("push-scim2"),
            )?;
            (&small, bench.scim2_users, scim2_groups)
        };
        let server = start_scim2(&bench.scim2_bin)?;
        add_target(s, "scim2", &server.base_url, SCIM2_TOKEN)?;
        eprintln!("push bench: initial push of {users} users into scim2-server ...");
        match push_once(bin, &s.config, "scim2") {
            Ok(f) => rows.push(PushRow {
                app: "scim2-server 0.8.3",
                scenario: "initial".into(),
                users,
                groups,
                memberships: s.memberships,
                figures: f,
            }),
            Err(e) => notes.push(format!("the push into scim2-server failed: {e:#}")),
        }
    }
    Ok(block(&rows, &notes))
}

fn block(rows: &[PushRow], notes: &[String]) -> String {
    let mut s = String::from(
        "| application | users / groups / memberships | push | status | requests (app's count) | goal | writes | wall s | CPU s | peak RSS MiB |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let f = &r.figures;
        s.push_str(&format!(
            "| {} | {} / {} / {} | {} | {} | {}{} | {} | {} | {} | {} | {} |\n",
            r.app,
            r.users,
            r.groups,
            r.memberships,
            r.scenario,
            f.status,
            f.requests,
            f.app_requests.map(|a| format!(" ({a})")).unwrap_or_default(),
            if f.goal() == 0 {
                "0 writes".to_string()
            } else {
                f.goal().to_string()
            },
            f.writes,
            secs(f.usage.wall),
            secs(f.usage.cpu),
            mib(f.usage.max_rss_kib),
        ));
    }
    s.push_str(&format!(
        "\nGoal = users + groups written + ceil(membership changes / {CHUNK}) + {DISCOVERY} discovery \
         requests (none when nothing is to be written: a no-change push opens no session).\n"
    ));
    for n in notes {
        s.push_str(&format!("\n{n}\n"));
    }
    s
}
