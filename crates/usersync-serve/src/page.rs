//! The status page: server-rendered HTML (maud escapes every value), no JavaScript, one
//! column on a phone. Forms carry the CSRF token.

use maud::{html, Markup, PreEscaped, DOCTYPE};
use usersync_store::{utc, RunRecord, RunStatus};

use crate::http::{plan_entries, BlockedPlan, ConnectionView, StatusView, TargetView};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:.75rem;line-height:1.4}\
h1{font-size:1.4rem}h2{font-size:1.15rem;margin:0 0 .3rem}\
section{border:1px solid #ccc;border-radius:.4rem;padding:.75rem;margin:.75rem 0}\
table{border-collapse:collapse;width:100%;font-size:.9rem}td,th{text-align:left;padding:.2rem .4rem;border-bottom:1px solid #eee}\
.wrap{overflow-x:auto}.applied{color:#176b2c}.failed,.interrupted{color:#b00020}.blocked{color:#9a5b00}\
.state{font-weight:bold}.err{color:#b00020}form{display:inline-block;margin:.3rem .3rem 0 0}\
button{font-size:1rem;padding:.4rem .8rem}.note{background:#fff7e0;padding:.5rem;border-radius:.3rem}";

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
}

fn when(ms: Option<i64>) -> String {
    ms.map(utc).unwrap_or_else(|| "-".into())
}

fn count(r: &RunRecord, path: &str) -> u64 {
    r.counts.pointer(path).and_then(|v| v.as_u64()).unwrap_or(0)
}

/// A run's counts in one line.
fn counts_line(r: &RunRecord) -> String {
    format!(
        "users +{} ~{} -{}; groups +{} ~{} -{}; memberships +{} -{}",
        count(r, "/users/created"),
        count(r, "/users/updated") + count(r, "/users/renamed") + count(r, "/users/reactivated"),
        count(r, "/users/deactivated") + count(r, "/users/deleted"),
        count(r, "/groups/created"),
        count(r, "/groups/updated"),
        count(r, "/groups/deleted"),
        count(r, "/memberships/added"),
        count(r, "/memberships/removed"),
    )
}

fn duration(r: &RunRecord) -> String {
    match r.finished_ms {
        Some(f) => format!("{:.1}s", (f - r.started_ms) as f64 / 1000.0),
        None => "-".into(),
    }
}

fn runs_table(runs: &[RunRecord]) -> Markup {
    html! {
        div.wrap { table {
            tr { th { "run" } th { "started (UTC)" } th { "outcome" } th { "changes" } th { "took" } }
            @for r in runs {
                tr {
                    td { a href={ "/runs/" (r.id) } { (r.id) } }
                    td { (utc(r.started_ms)) }
                    td class=(r.status.as_str()) { (r.status.as_str()) }
                    td { (counts_line(r)) }
                    td { (duration(r)) }
                }
            }
        } }
    }
}

/// A blocked run's plan (what it would remove, why the gate stopped it) and its approve form;
/// `what` names what approving starts (`run` or `push`).
fn blocked_note(b: &BlockedPlan, what: &str, csrf: &str) -> Markup {
    html! {
        div.note {
            strong { "Run " a href={ "/runs/" (b.run_id) } { (b.run_id) } " is blocked by a safety gate." }
            " It would deactivate or delete " (b.removals) " user(s)."
            ul { @for r in &b.reasons { li { (r) } } }
            @if !b.removed.is_empty() {
                div.wrap { table {
                    tr { th { "action" } th { "user" } th { "why" } }
                    @for e in &b.removed {
                        tr { td { (e.action) } td { (e.username) } td { (e.reason.clone().unwrap_or_default()) } }
                    }
                } }
            }
            form method="post" action={ "/runs/" (b.run_id) "/approve" } {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { "Approve " (b.removals) " removal(s) and " (what) }
            }
        }
    }
}

fn connection(c: &ConnectionView, csrf: &str) -> Markup {
    let s = &c.state;
    html! {
        section id={ "conn-" (s.name) } {
            h2 { (s.name) " " span.state class=(s.state) { "(" (s.state) ")" } }
            div { "Schedule: " (s.schedule) }
            div { "Next run: " (when(s.next_due_ms)) " · last success: " (when(s.last_success_ms)) }
            @if s.failures > 0 {
                div.err { (s.failures) " failed run(s) in a row since " (when(s.failing_since_ms)) }
            }
            @if !s.last_errors.is_empty() && s.last_status != Some(RunStatus::Blocked) {
                div { "Recent errors:" ul { @for e in &s.last_errors { li.err { (e) } } } }
            }
            @if let Some(b) = &c.blocked { (blocked_note(b, "run", csrf)) }
            form method="post" action={ "/connections/" (s.name) "/run" } {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { "Run now" }
            }
            @if !c.runs.is_empty() { (runs_table(&c.runs)) }
        }
    }
}

/// A push's counts in one line (a push run records `users`/`groups` with created, updated, ...).
fn push_counts_line(r: &RunRecord) -> String {
    let c = |path: &str| count(r, path);
    format!(
        "users +{} ~{} -{}; groups +{} -{}",
        c("/users_created"),
        c("/users_updated"),
        c("/users_deactivated") + c("/users_deleted"),
        c("/groups_created"),
        c("/groups_deleted"),
    )
}

fn target(t: &TargetView, csrf: &str) -> Markup {
    let s = &t.state;
    html! {
        section id={ "target-" (s.name) } {
            h2 { "Target " (s.name) " " span.state class=(s.state) { "(" (s.state) ")" } }
            div { "Pushed after an applied run of: " (s.fed_by.join(", ")) }
            div {
                "Last push: " (s.last_status.map(|st| st.as_str()).unwrap_or("none yet"))
                @if s.last_partial { " (some objects refused)" }
                " · last success: " (when(s.last_success_ms))
            }
            @if s.failures > 0 { div.err { (s.failures) " failed push(es) in a row" } }
            @if let Some(b) = &t.blocked { (blocked_note(b, "push", csrf)) }
            @if !s.last_errors.is_empty() && t.blocked.is_none() {
                div { "Recent errors:" ul { @for e in &s.last_errors { li.err { (e) } } } }
            }
            @if !t.runs.is_empty() {
                div.wrap { table {
                    tr { th { "run" } th { "started (UTC)" } th { "outcome" } th { "changes" } th { "took" } }
                    @for r in &t.runs {
                        tr {
                            td { a href={ "/runs/" (r.id) } { (r.id) } }
                            td { (utc(r.started_ms)) }
                            td class=(r.status.as_str()) { (r.status.as_str()) }
                            td { (push_counts_line(r)) }
                            td { (duration(r)) }
                        }
                    }
                } }
            }
        }
    }
}

/// `/`: every connection and target.
pub fn index(view: &StatusView, csrf: &str) -> Markup {
    layout(
        "usersync status",
        html! {
            h1 { "usersync" }
            @if view.stopping { p.note { "Shutting down: no new runs start." } }
            @if let Some(r) = &view.reload {
                @if !r.ok { p.note.err { "Config reload at " (utc(r.at_ms)) ": " (r.message) } }
            }
            @if let Some(e) = &view.store_error { p.err { "Store: " (e) } }
            @for c in &view.connections { (connection(c, csrf)) }
            @if view.connections.is_empty() { p { "No connections are configured." } }
            @for t in &view.targets { (target(t, csrf)) }
            p { small { a href="/api/status" { "JSON" } " · " a href="/metrics" { "metrics" } } }
        },
    )
}

/// `/runs/{id}`: one run with its recorded plan.
pub fn run(r: &RunRecord, csrf: &str) -> Markup {
    let entries = plan_entries(&r.plan, false, usize::MAX);
    layout(
        &format!("usersync run {}", r.id),
        html! {
            p { a href="/" { "← status" } }
            h1 { "Run " (r.id) " of " (r.connection) }
            p {
                "Outcome: " span class=(r.status.as_str()) { (r.status.as_str()) }
                " · started " (utc(r.started_ms)) " · took " (duration(r)) " · " (r.requests) " requests"
            }
            p { @if r.connection.starts_with("push:") { (push_counts_line(r)) } @else { (counts_line(r)) } }
            @if !r.errors.is_empty() {
                h2 { "Errors and gate messages" }
                ul { @for e in &r.errors { li { (e) } } }
            }
            @if r.status == RunStatus::Blocked {
                form method="post" action={ "/runs/" (r.id) "/approve" } {
                    input type="hidden" name="csrf" value=(csrf);
                    button type="submit" { "Approve and run" }
                }
            }
            @if !entries.is_empty() {
                h2 { "User changes in the plan" }
                div.wrap { table {
                    tr { th { "action" } th { "user" } th { "why" } }
                    @for e in &entries {
                        tr { td { (e.action) } td { (e.username) } td { (e.reason.clone().unwrap_or_default()) } }
                    }
                } }
            }
        },
    )
}

/// A short result page (after a POST).
pub fn message(title: &str, text: &str) -> Markup {
    layout(
        title,
        html! {
            h1 { (title) }
            p { (text) }
            p { a href="/" { "← status" } }
        },
    )
}
