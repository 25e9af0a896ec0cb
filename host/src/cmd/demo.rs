//! `usersync demo`: start every available emulator in-process, write a ready config, sync each
//! provider into a local SQLite store and print what happened per provider.
//!
//! Only in builds with the `emulators` feature (the default).
#![cfg(feature = "emulators")]

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use usersync_emulator::providers::PROVIDERS;
use usersync_emulator::{EmulatorError, EmulatorOptions, GenConfig, RunningEmulator};

use crate::GlobalArgs;

mod push;

/// Arguments of `usersync demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where to write the config, secrets, emulator files and the SQLite store
    /// (default: ./usersync-demo, or a temporary directory when the current one is not writable).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Users per emulated organisation.
    #[arg(long, default_value_t = 2000)]
    pub users: u32,
    /// Groups per emulated organisation.
    #[arg(long, default_value_t = 200)]
    pub groups: u32,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Only these providers (repeatable); default: every provider whose emulator is available.
    #[arg(long = "provider")]
    pub providers: Vec<String>,
    /// Start the emulators and write the config, but do not sync (prints how to run it).
    #[arg(long)]
    pub no_sync: bool,
    /// At most N entries per list of changes in each provider's report (the counts are complete).
    #[arg(long, value_name = "N", default_value_t = 5, conflicts_with = "all")]
    pub limit: usize,
    /// Every entry of every list.
    #[arg(long)]
    pub all: bool,
    /// Run `usersync serve` against the emulators instead of syncing once: each connection every
    /// 15 minutes (the first run at once), the status page on http://127.0.0.1:8787 (the token is
    /// printed and kept in <dir>/serve-token). Ctrl-C stops both.
    #[arg(long, conflicts_with = "no_sync")]
    pub serve: bool,
    /// Do not push the synced directory into the SCIM service-provider emulator (by default the
    /// demo starts it as target `scim` and pushes into it after the syncs).
    #[arg(long)]
    pub no_push: bool,
}

/// What the demo did for one provider.
struct Outcome {
    provider: &'static str,
    org: String,
    result: String,
    requests: u64,
    secs: f64,
}

fn pick_dir(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(d) = explicit {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        return Ok(d.to_path_buf());
    }
    let local = PathBuf::from("usersync-demo");
    match std::fs::create_dir_all(&local) {
        Ok(()) => Ok(std::fs::canonicalize(&local).unwrap_or(local)),
        Err(_) => {
            let tmp = std::env::temp_dir().join(format!("usersync-demo-{}", std::process::id()));
            std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
            Ok(tmp)
        }
    }
}

fn toml_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => toml_str(s),
        serde_json::Value::Array(a) => {
            format!("[{}]", a.iter().map(toml_value).collect::<Vec<_>>().join(", "))
        }
        other => other.to_string(),
    }
}

fn toml_str(s: &str) -> String {
    // A TOML basic string (JSON string escaping is valid TOML for these values).
    serde_json::Value::String(s.to_string()).to_string()
}

fn write_secret(dir: &Path, name: &str, value: &str) -> anyhow::Result<PathBuf> {
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&secrets).with_context(|| format!("creating {}", secrets.display()))?;
    let path = secrets.join(name);
    std::fs::write(&path, value).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(path)
}

/// The `[[connections]]` block of one emulator, from its facade's `client_info`:
/// `connector_options` (plain values) and `connector_secrets` (written to files under secrets/).
async fn connection_block(dir: &Path, emu: &RunningEmulator) -> anyhow::Result<Option<String>> {
    let info = emu.info().await;
    let client = &info["client"];
    let Some(options) = client["connector_options"].as_object() else {
        return Ok(None);
    };
    let p = emu.provider;
    let mut block = format!(
        "[[connections]]\nname = {}\nconnector = {}\n\n[connections.options]\n",
        toml_str(p),
        toml_str(p)
    );
    for (k, v) in options {
        block.push_str(&format!("{k} = {}\n", toml_value(v)));
    }
    if let Some(secrets) = client["connector_secrets"].as_object() {
        for (k, v) in secrets {
            let value = v.as_str().unwrap_or_default();
            let path = write_secret(dir, &format!("{p}-{k}"), value)?;
            block.push_str(&format!(
                "{k} = {{ file = {} }}\n",
                toml_str(&path.display().to_string())
            ));
        }
    }
    Ok(Some(block))
}

/// Sync one connection of the written config. This is the single place that decides what "sync"
/// means for the demo: today the real `usersync sync` path, in-process.
async fn sync_one(config: &Path, name: &str, global: &GlobalArgs, demo: &DemoArgs) -> anyhow::Result<u8> {
    let mut g = global.clone();
    g.config = Some(config.to_path_buf());
    let args = crate::cmd::sync::SyncArgs {
        connections: vec![name.to_string()],
        dry_run: false,
        allow_deletes: None,
        format: crate::wiring::Format::Table,
        no_progress: true,
        limit: demo.limit,
        all: demo.all,
        full: false,
    };
    crate::cmd::sync::run(args, &g).await
}

/// Run the command; returns the process exit code.
pub async fn run(args: DemoArgs, global: &GlobalArgs) -> anyhow::Result<u8> {
    let dir = pick_dir(args.dir.as_deref())?;
    println!("usersync demo: working in {}", dir.display());
    let wanted: Vec<&'static str> = PROVIDERS
        .iter()
        .copied()
        .filter(|p| args.providers.is_empty() || args.providers.iter().any(|w| w == p))
        .collect();
    if let Some(bad) = args.providers.iter().find(|w| !PROVIDERS.contains(&w.as_str())) {
        anyhow::bail!("unknown provider `{bad}` (known: {})", PROVIDERS.join(", "));
    }

    let mut outcomes = Vec::new();
    let mut config = String::from(
        "# Written by `usersync demo`: connections to local emulators. Secrets are in ./secrets.\n\
         [store]\npath = \"usersync.db\"\n\n",
    );
    let running = start_emulators(&wanted, &args, &dir, &mut config, &mut outcomes).await?;
    // the SCIM application the directory is pushed into (not with --serve: serve has no targets)
    let scim = if args.no_push || args.serve {
        None
    } else {
        Some(push::start_target(&dir, &mut config).await?)
    };
    let token = if args.serve {
        Some(super::serve::demo_section(&dir, &mut config)?)
    } else {
        None
    };
    let config_path = dir.join("usersync.toml");
    std::fs::write(&config_path, &config).with_context(|| format!("writing {}", config_path.display()))?;
    println!("config: {}", config_path.display());
    for emu in &running {
        println!("emulator {:<9} {}", emu.provider, emu.http_url);
    }
    if let Some(emu) = &scim {
        println!(
            "emulator {:<9} {}  (SCIM application, target `{}`)",
            emu.provider,
            emu.base_url(),
            push::TARGET
        );
    }
    if let Some(token) = token {
        let mut g = global.clone();
        g.config = Some(config_path.clone());
        println!(
            "status page: http://ops:{token}@127.0.0.1:8787/  (token in {})",
            dir.join("serve-token").display()
        );
        let code = super::serve::run(super::serve::ServeArgs {}, &g).await?;
        drop(running);
        return Ok(code);
    }

    let mut failed = sync_all(&running, &config_path, global, &args, &mut outcomes).await;
    if let (Some(emu), false) = (&scim, args.no_sync) {
        match push::push(&config_path, global, emu).await {
            Ok(true) => {}
            Ok(false) => failed = true,
            Err(e) => {
                failed = true;
                println!("push into the SCIM emulator failed: {e:#}");
            }
        }
    }

    print_summary(&mut outcomes, &args, &dir, &config_path);
    if args.no_sync && !running.is_empty() {
        println!("emulators keep serving until Ctrl-C");
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    }
    Ok(if failed { 1 } else { 0 })
}

/// Start the emulator of each wanted provider and add its connection to `config`; a provider
/// without an emulator (or connector options) in this build is recorded as skipped.
async fn start_emulators(
    wanted: &[&'static str],
    args: &DemoArgs,
    dir: &Path,
    config: &mut String,
    outcomes: &mut Vec<Outcome>,
) -> anyhow::Result<Vec<RunningEmulator>> {
    let mut running = Vec::new();
    for &p in wanted {
        let mut opts = EmulatorOptions::new(p);
        // One domain per provider: the demo's organisations are different people, so the store shows
        // each provider's sync rather than cross-connection username conflicts.
        opts.gen = GenConfig {
            users: args.users,
            groups: args.groups,
            seed: args.seed,
            domain: format!("{p}.example.com"),
            ..GenConfig::default()
        };
        opts.state_dir = Some(dir.join("emulators").join(p));
        match usersync_emulator::start(opts).await {
            Ok(emu) => match connection_block(dir, &emu).await? {
                Some(block) => {
                    config.push_str(&block);
                    config.push('\n');
                    running.push(emu);
                }
                None => outcomes.push(Outcome {
                    provider: p,
                    org: String::new(),
                    result: "skipped: the emulator gives no connector options yet".into(),
                    requests: 0,
                    secs: 0.0,
                }),
            },
            Err(EmulatorError::NotImplemented(_)) => outcomes.push(Outcome {
                provider: p,
                org: String::new(),
                result: "skipped: emulator not available in this build".into(),
                requests: 0,
                secs: 0.0,
            }),
            Err(e) => return Err(e).with_context(|| format!("starting the {p} emulator")),
        }
    }
    Ok(running)
}

/// Sync each emulator's connection in turn (or, with `--no-sync`, only count its organisation);
/// true when a sync failed.
async fn sync_all(
    running: &[RunningEmulator],
    config_path: &Path,
    global: &GlobalArgs,
    args: &DemoArgs,
    outcomes: &mut Vec<Outcome>,
) -> bool {
    let mut failed = false;
    for emu in running {
        let counts = emu.org().read().await.counts();
        let org = format!(
            "{} users, {} groups, {} memberships",
            counts.users, counts.groups, counts.memberships
        );
        if args.no_sync {
            outcomes.push(Outcome {
                provider: emu.provider,
                org,
                result: "not synced (--no-sync)".into(),
                requests: 0,
                secs: 0.0,
            });
            continue;
        }
        println!("\n== {} ==", emu.provider);
        let before = emu.ctx.stats.requests.load(std::sync::atomic::Ordering::SeqCst);
        let started = Instant::now();
        let result = match sync_one(config_path, emu.provider, global, args).await {
            Ok(0) => "synced".to_string(),
            Ok(code) => {
                failed = true;
                format!("sync exited with code {code}")
            }
            Err(e) => {
                failed = true;
                format!("sync failed: {e:#}")
            }
        };
        let requests = emu.ctx.stats.requests.load(std::sync::atomic::Ordering::SeqCst) - before;
        outcomes.push(Outcome {
            provider: emu.provider,
            org,
            result,
            requests,
            secs: started.elapsed().as_secs_f64(),
        });
    }

    failed
}

/// The table of outcomes and where to look next.
fn print_summary(outcomes: &mut [Outcome], args: &DemoArgs, dir: &Path, config_path: &Path) {
    println!(
        "\n{:<9}  {:<48}  {:>8}  {:>7}  result",
        "provider", "emulated organisation", "requests", "time"
    );
    outcomes.sort_by_key(|o| o.provider);
    for o in outcomes.iter() {
        println!(
            "{:<9}  {:<48}  {:>8}  {:>6.2}s  {}",
            o.provider, o.org, o.requests, o.secs, o.result
        );
    }
    if !args.no_sync {
        println!(
            "\nThe organisations count every user; a first sync creates only the active ones (suspended, \
             deprovisioned and other inactive users are not created), so fewer users are created than \
             each organisation has."
        );
    }
    println!("\nstore: {}", dir.join("usersync.db").display());
    if args.no_sync {
        println!(
            "sync them yourself: usersync --config {} sync",
            config_path.display()
        );
    } else {
        println!(
            "look around: usersync --config {} users list   (the emulators stop with the demo; \
             `usersync demo --no-sync` keeps them serving)",
            config_path.display()
        );
    }
}
