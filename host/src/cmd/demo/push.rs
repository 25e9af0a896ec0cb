//! The demo's push: after the syncs, the store's directory goes into the SCIM service-provider
//! emulator (mode `scim`, the generic RFC profile) through the real `usersync push` path, and
//! the demo reports what the push did and what the application now holds (its own GET answers).

use std::path::Path;
use std::sync::atomic::Ordering;

use anyhow::Context;
use serde_json::Value;
use usersync_config::Config;
use usersync_emulator::{EmulatorOptions, RunningEmulator};
use usersync_runtime::ConnectionClient;
use usersync_sdk::HttpRequest;
use usersync_sync::push::PushReport;

use crate::cmd::push::StoreHandle;
use crate::GlobalArgs;

/// The target's name in the demo's config.
pub const TARGET: &str = "scim";

/// Start the SCIM emulator and add `[targets.scim]` (fed by every connection) to `config`.
pub async fn start_target(dir: &Path, config: &mut String) -> anyhow::Result<RunningEmulator> {
    let mut opts = EmulatorOptions::new("scim");
    opts.state_dir = Some(dir.join("emulators").join("scim"));
    let emu = usersync_emulator::start(opts)
        .await
        .context("starting the SCIM emulator")?;
    let token = super::write_secret(dir, "scim-token", &emu.credentials().api_token)?;
    config.push_str(&format!(
        "# The directory is pushed into the SCIM service-provider emulator (docs/targets.md).\n\
         [targets.{TARGET}]\nconnector = \"scim\"\n\n[targets.{TARGET}.options]\nbase_url = {}\n\
         profile = \"generic\"\ntoken = {{ file = {} }}\n\n",
        super::toml_str(emu.base_url()),
        super::toml_str(&token.display().to_string())
    ));
    Ok(emu)
}

/// What the application holds, from its own listings.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AppCounts {
    /// Users.
    pub users: u64,
    /// Users with `active: true`.
    pub active: u64,
    /// Groups.
    pub groups: u64,
    /// Members of all groups.
    pub memberships: u64,
}

/// Page through `GET {base}/{endpoint}` (SCIM `startIndex`/`count`), calling `each` per resource.
async fn list_all(
    client: &ConnectionClient,
    base: &str,
    endpoint: &str,
    mut each: impl FnMut(&Value),
) -> anyhow::Result<()> {
    let mut start = 1u64;
    loop {
        let url = format!("{base}/{endpoint}?startIndex={start}&count=200");
        let resp = client
            .send(&HttpRequest::get(&url))
            .await
            .with_context(|| format!("GET {endpoint}"))?;
        anyhow::ensure!(resp.status == 200, "GET {endpoint}: HTTP {}", resp.status);
        let page: Value =
            serde_json::from_slice(&resp.body).with_context(|| format!("GET {endpoint}: not JSON"))?;
        let resources = page["Resources"].as_array().cloned().unwrap_or_default();
        resources.iter().for_each(&mut each);
        let total = page["totalResults"].as_u64().unwrap_or(0);
        start += resources.len() as u64;
        if resources.is_empty() || start > total {
            return Ok(());
        }
    }
}

/// Count the users, groups and memberships the application answers with.
async fn app_counts(client: &ConnectionClient, base: &str) -> anyhow::Result<AppCounts> {
    let mut c = AppCounts::default();
    list_all(client, base, "Users", |u| {
        c.users += 1;
        c.active += u64::from(u["active"].as_bool() == Some(true));
    })
    .await?;
    list_all(client, base, "Groups", |g| {
        c.groups += 1;
        c.memberships += g["members"].as_array().map_or(0, |m| m.len() as u64);
    })
    .await?;
    Ok(c)
}

/// Push the store into the SCIM emulator and print the report; returns whether it applied.
pub async fn push(config_path: &Path, global: &GlobalArgs, emu: &RunningEmulator) -> anyhow::Result<bool> {
    use tracing::Instrument;
    push_inner(config_path, global, emu)
        .instrument(tracing::info_span!("demo_push", target = TARGET))
        .await
}

async fn push_inner(config_path: &Path, global: &GlobalArgs, emu: &RunningEmulator) -> anyhow::Result<bool> {
    let config = Config::discover(Some(config_path)).context("reading the demo's config")?;
    let target = config
        .target(TARGET)
        .context("the demo's config has no SCIM target")?;
    let mut g = global.clone();
    g.config = Some(config_path.to_path_buf());
    let registry = crate::registry::load(&g)?;
    let mut store = crate::wiring::open_any_store(&config)?;
    println!("\n== push into the SCIM emulator ({}) ==", emu.base_url());
    let before = emu.ctx.stats.requests.load(Ordering::SeqCst);
    let reports =
        crate::cmd::push::push_targets(store.store_mut(), &config, &registry, &[target], false, None).await;
    let served = emu.ctx.stats.requests.load(Ordering::SeqCst) - before;
    let report = reports.first().context("the push gave no report")?;
    print_summary(report, served);
    let (client, _) = crate::wiring::open_client(&target.connection, &config.path, &registry)
        .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    match app_counts(&client, emu.base_url()).await {
        Ok(c) => println!(
            "the SCIM emulator now holds (its own GET /Users, /Groups): {} users ({} active), {} groups, \
             {} memberships",
            c.users, c.active, c.groups, c.memberships
        ),
        Err(e) => println!("could not read the SCIM emulator back: {e:#}"),
    }
    Ok(report.status == usersync_store::RunStatus::Applied && !report.partial)
}

fn print_summary(r: &PushReport, served: u64) {
    let c = &r.counts;
    println!(
        "push to {}: {}{} (run {}): {} users, {} groups created, {} memberships added; {} writes, {} requests \
         ({} served by the emulator), {:.2}s",
        r.target,
        r.status.as_str(),
        if r.partial { ", partial" } else { "" },
        r.run_id.map_or_else(|| "-".to_string(), |id| id.to_string()),
        c.users_created,
        c.groups_created,
        c.members_added,
        r.writes,
        r.requests,
        served,
        r.duration_ms as f64 / 1000.0
    );
    for e in r.errors.iter().take(5) {
        println!("  ! {e}");
    }
    if r.errors.len() > 5 {
        println!("  ... and {} more errors", r.errors.len() - 5);
    }
}
