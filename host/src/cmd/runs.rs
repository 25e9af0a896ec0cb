//! `usersync runs ...`: sync run history.

use crate::or_exit;
use crate::wiring::{self, exit, outln, Format};
use crate::GlobalArgs;

/// `usersync runs` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RunsCmd {
    /// List runs, newest first.
    List {
        /// Only runs of this connection.
        #[arg(long, short = 'c', value_name = "NAME")]
        connection: Option<String>,
        /// How many runs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show one run with its counts, errors and full plan.
    Show {
        /// Run id (from `runs list` or `sync` output).
        id: i64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

fn duration(r: &usersync_store::RunRecord) -> String {
    r.finished_ms
        .map(|f| format!("{:.1}s", (f - r.started_ms) as f64 / 1000.0))
        .unwrap_or_else(|| "-".into())
}

/// `full` or `incremental` for a connection with a change feed (issue 21), else `-`.
fn kind(counts: &serde_json::Value) -> String {
    counts
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or("-")
        .to_string()
}

fn summary(counts: &serde_json::Value) -> String {
    let n = |a: &str, b: &str| {
        counts
            .pointer(&format!("/{a}/{b}"))
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    };
    format!(
        "users +{} ~{} >{} ^{} -{} x{}; groups +{} ~{} x{}; members +{} -{}",
        n("users", "created"),
        n("users", "updated"),
        n("users", "renamed"),
        n("users", "reactivated"),
        n("users", "deactivated"),
        n("users", "deleted"),
        n("groups", "created"),
        n("groups", "updated"),
        n("groups", "deleted"),
        n("memberships", "added"),
        n("memberships", "removed"),
    )
}

/// Run the subcommand; returns the process exit code.
pub async fn run(cmd: RunsCmd, global: &GlobalArgs) -> anyhow::Result<u8> {
    let config = or_exit!(wiring::load_config(global));
    let store = or_exit!(wiring::open_existing_store(&config));
    match cmd {
        RunsCmd::List {
            connection,
            limit,
            format,
        } => {
            let runs = store.runs(connection.as_deref(), limit)?;
            match format {
                Format::Json => {
                    let v: Vec<serde_json::Value> = runs
                        .iter()
                        .map(|r| {
                            let mut j = serde_json::to_value(r).unwrap_or_default();
                            if let Some(o) = j.as_object_mut() {
                                o.remove("plan");
                                o.insert("started".into(), wiring::rfc3339(r.started_ms).into());
                                o.insert("kind".into(), r.counts.get("kind").cloned().unwrap_or_default());
                            }
                            j
                        })
                        .collect();
                    wiring::print_json(&v)?
                }
                Format::Table => {
                    let rows: Vec<Vec<String>> = runs
                        .iter()
                        .map(|r| {
                            vec![
                                r.id.to_string(),
                                r.connection.clone(),
                                wiring::rfc3339(r.started_ms),
                                duration(r),
                                r.status.as_str().to_string(),
                                kind(&r.counts),
                                summary(&r.counts),
                                r.errors.len().to_string(),
                            ]
                        })
                        .collect();
                    wiring::print_table(
                        &[
                            "ID",
                            "CONNECTION",
                            "STARTED",
                            "TOOK",
                            "STATUS",
                            "KIND",
                            "CHANGES",
                            "ERRORS",
                        ],
                        &rows,
                    );
                    if !rows.is_empty() {
                        outln!("changes: + created, ~ updated, > renamed, ^ reactivated, - deactivated/removed, x deleted");
                    }
                }
            }
            Ok(exit::OK)
        }
        RunsCmd::Show { id, format } => {
            let Some(r) = store.run(id)? else {
                eprintln!("error: no run {id}");
                return Ok(exit::FAILURE);
            };
            match format {
                Format::Json => wiring::print_json(&r)?,
                Format::Table => {
                    outln!("run:        {}", r.id);
                    outln!("connection: {}", r.connection);
                    outln!("status:     {}", r.status.as_str());
                    outln!("kind:       {}", kind(&r.counts));
                    outln!("started:    {}", wiring::rfc3339(r.started_ms));
                    if let Some(f) = r.finished_ms {
                        outln!("finished:   {} ({})", wiring::rfc3339(f), duration(&r));
                    }
                    outln!("requests:   {}", r.requests);
                    if let Some(n) = r.source_users {
                        outln!("source:     {n} users");
                    }
                    outln!("changes:    {}", summary(&r.counts));
                    for e in &r.errors {
                        outln!("  ! {e}");
                    }
                    if let Ok(plan) = serde_json::from_value::<PlanView>(r.plan.clone()) {
                        plan.print();
                    }
                }
            }
            Ok(exit::OK)
        }
    }
}

/// The recorded plan, read back loosely (older runs may lack fields).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct PlanView {
    users: Vec<serde_json::Value>,
    groups: Vec<serde_json::Value>,
    memberships: Vec<serde_json::Value>,
    withheld: Vec<String>,
    protected: Vec<String>,
    conflicts: Vec<String>,
    warnings: Vec<String>,
}

impl PlanView {
    fn print(&self) {
        let s = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
        if !self.users.is_empty() {
            outln!("user changes:");
            for u in &self.users {
                let mut line = format!("  {:<12} {}", s(u, "action"), s(u, "username"));
                if let Some(p) = u.get("previous_username").and_then(|p| p.as_str()) {
                    line.push_str(&format!(" (was {p})"));
                }
                if let Some(c) = u.get("changed").and_then(|c| c.as_array()) {
                    let c: Vec<&str> = c.iter().filter_map(|x| x.as_str()).collect();
                    line.push_str(&format!(" [{}]", c.join(", ")));
                }
                if let Some(r) = u.get("reason").and_then(|r| r.as_str()) {
                    line.push_str(&format!(": {r}"));
                }
                outln!("{line}");
            }
        }
        if !self.groups.is_empty() {
            outln!("group changes:");
            for g in &self.groups {
                outln!("  {:<12} {}", s(g, "action"), s(g, "name"));
            }
        }
        if !self.memberships.is_empty() {
            outln!("membership changes:");
            for m in &self.memberships {
                let sign = if s(m, "action") == "added" { "+" } else { "-" };
                outln!(
                    "  {sign} {} `{}` in `{}`",
                    s(m, "member_type"),
                    s(m, "member"),
                    s(m, "group")
                );
            }
        }
        for (t, v) in [
            ("withheld", &self.withheld),
            ("protected", &self.protected),
            ("conflicts", &self.conflicts),
            ("warnings", &self.warnings),
        ] {
            if !v.is_empty() {
                outln!("{t}:");
                for x in v {
                    outln!("  {x}");
                }
            }
        }
    }
}
