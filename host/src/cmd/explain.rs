//! `usersync explain user <name>`: why a user is in or out of scope, and what a sync would do.
//!
//! By default the answer comes from the store, opened read-only, as of each connection's last
//! applied run: no request is made, and a connection whose client cannot be built (an unset
//! secret) plays no part. `--live` runs the same fetch and policy code as
//! `usersync sync --dry-run` (nothing is written), only for the connection(s) whose store holds
//! the user (every selected connection when none does), and reports the policy's decision: the
//! rule or the group path that decided it.

use std::sync::Arc;

use serde::Serialize;
use usersync_config::ConnectionConfig;
use usersync_store::{username_key, ConnectionState, RunStatus, Store, StoredUser};
use usersync_sync::desired::{Decision, UnmatchedPattern};
use usersync_sync::engine::{plan_connection, RunSpec};
use usersync_sync::plan::UserChange;

use crate::or_exit;
use crate::registry::Registry;
use crate::wiring::{self, exit, outln, Format};
use crate::GlobalArgs;

/// `usersync explain` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ExplainCmd {
    /// Explain one user (username, email or provider id) in every connection, or one. Answers
    /// from the store (as of the last sync) unless `--live`.
    User {
        /// Username, email or provider id.
        user: String,
        /// Only this connection.
        #[arg(long, short = 'c', value_name = "NAME")]
        connection: Option<String>,
        /// Ask the provider now: fetch the connection that holds the user (every selected
        /// connection when no store record holds it) like `sync --dry-run`, writing nothing.
        #[arg(long)]
        live: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// The answer for one connection.
#[derive(Serialize)]
struct Explanation {
    connection: String,
    /// `store` (as of the last applied run) or `live` (fetched now).
    source: &'static str,
    /// The last applied run of the connection: the store's data is as of this run.
    as_of_run: Option<i64>,
    /// When that run finished (RFC 3339).
    as_of: Option<String>,
    provider_id: Option<String>,
    username: Option<String>,
    /// Live only: whether the provider returned the user.
    found_at_source: Option<bool>,
    in_store: bool,
    /// The stored local account is active.
    active: Option<bool>,
    /// Why the stored local account is inactive.
    inactive_reason: Option<String>,
    /// The store: the required group that keeps the user in scope and the chain to it, when
    /// the stored memberships show it.
    stored_rule: Option<String>,
    stored_path: Vec<String>,
    /// Live only: the policy's decision.
    decision: Option<Decision>,
    /// Live only: what the next sync would do.
    planned: Option<UserChange>,
    note: Option<String>,
    /// Live only: whether every query of the fetch ended normally.
    fetch_complete: Option<bool>,
    /// Group patterns of the policy that match no group (the last run's, or this fetch's).
    warnings: Vec<String>,
    /// Where the user is (or is not) provisioned, per target (`usersync push`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    targets: Vec<crate::cmd::push::TargetExplanation>,
}

impl Explanation {
    fn new(connection: &str, source: &'static str) -> Explanation {
        Explanation {
            connection: connection.to_string(),
            source,
            as_of_run: None,
            as_of: None,
            provider_id: None,
            username: None,
            found_at_source: None,
            in_store: false,
            active: None,
            inactive_reason: None,
            stored_rule: None,
            stored_path: vec![],
            decision: None,
            planned: None,
            note: None,
            fetch_complete: None,
            warnings: vec![],
            targets: vec![],
        }
    }

    fn found(&self) -> bool {
        self.in_store || self.found_at_source == Some(true)
    }
}

/// Whether a stored user is the one asked about (username, email or provider id).
fn stored_matches(u: &StoredUser, key: &str, user: &str) -> bool {
    username_key(&u.username) == key
        || u.email.as_deref().is_some_and(|e| username_key(e) == key)
        || u.provider_id == user
}

/// Run the subcommand; returns the process exit code.
pub async fn run(cmd: ExplainCmd, global: &GlobalArgs) -> anyhow::Result<u8> {
    let ExplainCmd::User {
        user,
        connection,
        live,
        format,
    } = cmd;
    let config = or_exit!(wiring::load_config_as(global, format));
    let names: Vec<String> = connection.iter().cloned().collect();
    let selected = or_exit!(wiring::select(&config, &names));
    let store = match wiring::open_store_for_reading(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(exit::FAILURE);
        }
    };
    let key = username_key(&user);
    let mut out = Vec::new();
    let mut code = exit::OK;
    if live {
        // Only the connections whose store holds the user; all selected ones when none does.
        let mut targets = Vec::new();
        for conn in &selected {
            if store
                .users(Some(&conn.name))?
                .iter()
                .any(|u| stored_matches(u, &key, &user))
            {
                targets.push(*conn);
            }
        }
        if targets.is_empty() || connection.is_some() {
            targets = selected.clone();
        }
        let registry = crate::registry::load(global)?;
        let mut unanswered = Vec::new();
        for conn in targets {
            match explain_live(&*store, conn, &config.path, &registry, &user, &key).await? {
                Some(e) => out.push(e),
                None => unanswered.push(conn.name.clone()),
            }
        }
        if !unanswered.is_empty() && !out.iter().any(Explanation::found) {
            // The user may be at a provider that could not be asked.
            code = exit::FAILURE;
        }
    } else {
        for conn in &selected {
            out.push(explain_stored(&*store, conn, &user, &key)?);
        }
    }
    for e in out.iter_mut() {
        if let Some(pid) = e.provider_id.clone() {
            use crate::cmd::push::StoreHandle;
            e.targets = crate::cmd::push::explain_user(store.store_ref(), &config, &e.connection, &pid);
        }
    }
    match format {
        Format::Json => wiring::print_json(&out)?,
        Format::Table => {
            for e in &out {
                print_table(e, &user);
            }
        }
    }
    if !out.iter().any(Explanation::found) {
        if !live && format == Format::Table {
            eprintln!(
                "`{user}` is in no connection's store; `usersync explain user {user} --live` asks the provider"
            );
        }
        code = exit::FAILURE;
    }
    Ok(code)
}

/// The answer from the store, as of the connection's last applied run.
fn explain_stored(
    store: &dyn Store,
    conn: &ConnectionConfig,
    user: &str,
    key: &str,
) -> anyhow::Result<Explanation> {
    let mut e = Explanation::new(&conn.name, "store");
    let runs = store.runs(Some(&conn.name), i64::MAX as usize)?;
    if let Some(r) = runs.iter().find(|r| r.status == RunStatus::Applied) {
        e.as_of_run = Some(r.id);
        e.as_of = Some(wiring::rfc3339(r.finished_ms.unwrap_or(r.started_ms)));
    }
    // The newest run that fetched (a connection failing before its fetch has no plan).
    if let Some(newest) = runs
        .iter()
        .find(|r| r.status != RunStatus::Failed || r.requests > 0)
    {
        e.warnings = recorded_warnings(store, newest.id)?;
    }
    let state = store.state(&conn.name)?;
    let Some(u) = state.users.iter().find(|u| stored_matches(u, key, user)) else {
        e.note = Some(match e.as_of_run {
            None => format!(
                "connection `{}` has never been synced (no applied run in the store): nothing to tell from \
                 the store; `--live` asks the provider",
                conn.name
            ),
            Some(_) => "not in the store: this connection has never created the user (not at the source, \
                        or out of scope or inactive there: such users are not created); `--live` asks the \
                        provider why"
                .to_string(),
        });
        return Ok(e);
    };
    e.in_store = true;
    e.provider_id = Some(u.provider_id.clone());
    e.username = Some(u.username.clone());
    e.active = Some(u.active);
    e.inactive_reason = u.inactive_reason.clone();
    if u.active {
        let (rule, path) = stored_scope(conn, &state, &u.provider_id);
        e.stored_rule = rule;
        e.stored_path = path;
    }
    Ok(e)
}

/// The group patterns that matched no group in a recorded run.
fn recorded_warnings(store: &dyn Store, run_id: i64) -> anyhow::Result<Vec<String>> {
    let plan = store.run(run_id)?.map(|r| r.plan).unwrap_or_default();
    let unmatched: Vec<UnmatchedPattern> = plan
        .get("unmatched_patterns")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    Ok(unmatched.iter().map(ToString::to_string).collect())
}

/// Why an active stored user is in scope, from the stored effective memberships: the shortest
/// chain to a group a `required_groups` pattern matches (groups the filters leave out are not
/// stored, so the chain may be unknown).
fn stored_scope(
    conn: &ConnectionConfig,
    state: &ConnectionState,
    pid: &str,
) -> (Option<String>, Vec<String>) {
    let required = &conn.policy.required_groups;
    if required.is_empty() {
        return (
            Some("no required_groups are configured: every user is in scope".into()),
            vec![],
        );
    }
    let mut best: Option<(&Vec<String>, String, String)> = None;
    for m in state.effective.iter().filter(|m| m.user == pid) {
        let Some(g) = state.groups.iter().find(|g| g.provider_id == m.group) else {
            continue;
        };
        let path = g.attributes.get("path").and_then(|p| p.as_str());
        let hit = required.iter().find(|p| match path {
            Some(path) if p.as_str().starts_with('/') => p.matches(path),
            _ => p.matches(&g.source_name) || p.matches(&g.provider_id),
        });
        if let Some(p) = hit {
            if best.as_ref().is_none_or(|(bp, _, _)| m.path.len() < bp.len()) {
                best = Some((&m.path, g.source_name.clone(), p.to_string()));
            }
        }
    }
    match best {
        Some((path, group, pattern)) => {
            let how = if path.len() > 1 {
                "through nested groups"
            } else {
                "directly"
            };
            (
                Some(format!(
                    "member of required group `{group}` {how} (pattern `{pattern}`)"
                )),
                path.clone(),
            )
        }
        None => (None, vec![]),
    }
}

/// The answer from a live fetch of one connection; `None` when its client cannot be built
/// (said on stderr).
async fn explain_live(
    store: &dyn Store,
    conn: &ConnectionConfig,
    config_path: &std::path::Path,
    registry: &Registry,
    user: &str,
    key: &str,
) -> anyhow::Result<Option<Explanation>> {
    let (client, manifest) = match wiring::open_client(conn, config_path, registry) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {}", e.message());
            return Ok(None);
        }
    };
    let spec = RunSpec {
        connection: &conn.name,
        manifest: &manifest,
        policy: &conn.policy,
        concurrency: client.concurrency() as usize * 2,
        dry_run: true,
        allow_deletes: None,
    };
    let progress = wiring::ConsoleProgress::new(&conn.name, Some(client.clone()), true);
    let (snapshot, wanted, plan) = plan_connection(
        store,
        Arc::new(wiring::RuntimeRunner::new(client)),
        &spec,
        &progress,
    )
    .await?;
    let stored = store.state(&conn.name)?;
    let at_source = snapshot.users.values().find(|u| {
        username_key(&u.username) == key
            || u.email.as_deref().is_some_and(|e| username_key(e) == key)
            || u.id == user
    });
    let in_store = stored.users.iter().find(|u| stored_matches(u, key, user));
    let pid = at_source
        .map(|u| u.id.clone())
        .or_else(|| in_store.map(|u| u.provider_id.clone()));
    let mut e = Explanation::new(&conn.name, "live");
    e.planned = pid
        .as_ref()
        .and_then(|p| plan.users.iter().find(|c| &c.provider_id == p).cloned());
    e.note = match (at_source, in_store) {
        (None, None) => Some("not found at the source nor in the store".to_string()),
        (None, Some(_)) if !snapshot.complete => {
            Some("not found at the source, but the fetch was incomplete: nothing would be changed".into())
        }
        (None, Some(_)) => Some(format!(
            "missing from the source: the policy says `{:?}` (on_user_missing)",
            conn.policy.on_user_missing
        )),
        _ => None,
    };
    e.username = at_source
        .map(|u| u.username.clone())
        .or_else(|| in_store.map(|u| u.username.clone()));
    e.found_at_source = Some(at_source.is_some());
    e.in_store = in_store.is_some();
    e.active = in_store.map(|u| u.active);
    e.inactive_reason = in_store.and_then(|u| u.inactive_reason.clone());
    e.decision = pid.as_ref().and_then(|p| wanted.decisions.get(p).cloned());
    e.provider_id = pid;
    e.fetch_complete = Some(snapshot.complete);
    e.warnings = plan.unmatched_patterns.iter().map(ToString::to_string).collect();
    Ok(Some(e))
}

fn print_table(e: &Explanation, user: &str) {
    print_connection(e, user);
    for t in &e.targets {
        outln!("  target {}: {}", t.target, t.why);
    }
}

fn print_connection(e: &Explanation, user: &str) {
    outln!(
        "{}: {}",
        e.connection,
        e.username
            .as_deref()
            .map(|u| format!("{u} ({})", e.provider_id.as_deref().unwrap_or("-")))
            .unwrap_or_else(|| user.to_string())
    );
    if e.source == "store" {
        if let (Some(run), Some(at)) = (e.as_of_run, &e.as_of) {
            outln!("  as of run {run} ({at}), from the store; `--live` asks the provider now");
        }
        if e.in_store {
            match (e.active, &e.inactive_reason) {
                (Some(true), _) => outln!("  local account: active (in scope)"),
                (_, Some(r)) => outln!("  local account: inactive: {r}"),
                _ => outln!("  local account: inactive"),
            }
            if let Some(r) = &e.stored_rule {
                outln!("  rule:   {r}");
            }
            if e.stored_path.len() > 1 {
                outln!("  path:   {}", e.stored_path.join(" -> "));
            }
        }
    } else {
        if e.fetch_complete == Some(false) {
            outln!("  the fetch was incomplete; the answer may be partial");
        }
        if let Some(d) = &e.decision {
            outln!(
                "  scope:  {}",
                if d.in_scope { "IN scope" } else { "OUT of scope" }
            );
            outln!("  rule:   {}", d.rule);
            if d.path.len() > 1 {
                outln!("  path:   {}", d.path.join(" -> "));
            }
            outln!("  policy: {}", policy_line(d, e.in_store));
        }
    }
    for w in &e.warnings {
        outln!("  warning: {w}");
    }
    if let Some(n) = &e.note {
        outln!("  {n}");
    }
    if e.source == "live" {
        match &e.planned {
            Some(c) => outln!(
                "  next sync: {}{}",
                format!("{:?}", c.action).to_lowercase(),
                if c.changed.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", c.changed.join(", "))
                }
            ),
            None if e.in_store => outln!("  next sync: no change"),
            None if e.decision.is_some() => {
                outln!("  next sync: nothing (there is no local account, and none is created)")
            }
            None => outln!("  next sync: nothing"),
        }
    }
}

/// What the policy does with the user, in words that fit whether a local account exists: a
/// user out of scope or inactive at the source gets no local account, so "deactivate" only
/// applies to one that exists.
fn policy_line(d: &Decision, in_store: bool) -> String {
    match (d.in_scope, d.active, in_store) {
        (_, true, _) => d.action.clone(),
        (false, _, false) => format!(
            "out of scope: no local account is created (on_user_out_of_scope = {} applies to existing \
             accounts)",
            d.action
        ),
        (true, _, false) => "inactive at the source: no local account is created".into(),
        (false, _, true) => format!("out of scope: {} the local account", d.action),
        (true, _, true) => format!("inactive at the source: {} the local account", d.action),
    }
}
