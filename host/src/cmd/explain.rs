//! `usersync explain user <name>`: why a user is in or out of scope, and what a sync would do.
//!
//! Runs the same fetch and policy code as `usersync sync --dry-run` (nothing is written), then
//! reports the decision for the user: the rule or the group path that decided it.

use std::sync::Arc;

use serde::Serialize;
use usersync_store::username_key;
use usersync_sync::desired::Decision;
use usersync_sync::engine::{plan_connection, RunSpec};
use usersync_sync::plan::UserChange;

use crate::or_exit;
use crate::wiring::{self, exit, outln, Format};
use crate::GlobalArgs;

/// `usersync explain` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ExplainCmd {
    /// Explain one user (username, email or provider id) in every connection, or one.
    User {
        /// Username, email or provider id.
        user: String,
        /// Only this connection.
        #[arg(long, short = 'c', value_name = "NAME")]
        connection: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Serialize)]
struct Explanation {
    connection: String,
    provider_id: Option<String>,
    username: Option<String>,
    found_at_source: bool,
    in_store: bool,
    decision: Option<Decision>,
    planned: Option<UserChange>,
    note: Option<String>,
    fetch_complete: bool,
}

/// Run the subcommand; returns the process exit code.
pub async fn run(cmd: ExplainCmd, global: &GlobalArgs) -> anyhow::Result<u8> {
    let ExplainCmd::User {
        user,
        connection,
        format,
    } = cmd;
    let config = or_exit!(wiring::load_config(global));
    let names: Vec<String> = connection.into_iter().collect();
    let selected = or_exit!(wiring::select(&config, &names));
    let registry = crate::registry::load(global)?;
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
    for conn in selected {
        let (client, manifest) = match wiring::open_client(conn, &config.path, &registry) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("error: {}", e.message());
                code = exit::FAILURE;
                continue;
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
            &store,
            Arc::new(wiring::RuntimeRunner::new(client)),
            &spec,
            &progress,
        )
        .await?;
        let stored = usersync_store::Store::state(&store, &conn.name)?;
        let at_source = snapshot.users.values().find(|u| {
            username_key(&u.username) == key
                || u.email.as_deref().is_some_and(|e| username_key(e) == key)
                || u.id == user
        });
        let in_store = stored.users.iter().find(|u| {
            username_key(&u.username) == key
                || u.email.as_deref().is_some_and(|e| username_key(e) == key)
                || u.provider_id == user
        });
        let pid = at_source
            .map(|u| u.id.clone())
            .or_else(|| in_store.map(|u| u.provider_id.clone()));
        let planned = pid
            .as_ref()
            .and_then(|p| plan.users.iter().find(|c| &c.provider_id == p).cloned());
        let note = match (at_source, in_store) {
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
        out.push(Explanation {
            connection: conn.name.clone(),
            provider_id: pid.clone(),
            username: at_source
                .map(|u| u.username.clone())
                .or_else(|| in_store.map(|u| u.username.clone())),
            found_at_source: at_source.is_some(),
            in_store: in_store.is_some(),
            decision: pid.as_ref().and_then(|p| wanted.decisions.get(p).cloned()),
            planned,
            note,
            fetch_complete: snapshot.complete,
        });
    }
    match format {
        Format::Json => wiring::print_json(&out)?,
        Format::Table => {
            for e in &out {
                outln!(
                    "{}: {}",
                    e.connection,
                    e.username
                        .as_deref()
                        .map(|u| format!("{u} ({})", e.provider_id.as_deref().unwrap_or("-")))
                        .unwrap_or_else(|| user.clone())
                );
                if !e.fetch_complete {
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
                    outln!("  policy: {}", d.action);
                }
                if let Some(n) = &e.note {
                    outln!("  {n}");
                }
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
                    None => outln!("  next sync: not created"),
                }
            }
        }
    }
    if out.iter().all(|e| !e.found_at_source && !e.in_store) && code == exit::OK {
        code = exit::FAILURE;
    }
    Ok(code)
}
