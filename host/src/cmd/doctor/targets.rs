//! `usersync doctor` for targets (issue 19): per `[targets.NAME]`, reachability (DNS, TCP, TLS
//! of the application's host), discovery through the runtime with the target's credentials and
//! what it announces (PATCH, filter, bulk, page size, ETags), whether the token is accepted (a
//! lookup that needs it: 401 -> "token refused", 403 -> the permission named), and whether what
//! the application allows covers what the target's configuration needs. Nothing is written.

use std::path::Path;

use serde_json::Value;
use usersync_config::{Deprovision, TargetConfig};
use usersync_runtime::doctor::{self, Check, CheckStatus, DoctorReport};
use usersync_runtime::ConnectionClient;
use usersync_sdk::{
    ConnectorError, HttpResponse, Lookup, TargetCapabilities, TargetOperation, TargetSession,
};

use crate::registry::{Lookup as RegistryLookup, Registry};
use crate::wiring;

/// A userName no account has: the lookup is answered (empty) only when the token is accepted.
const PROBE_USER: &str = "usersync-doctor-probe@invalid.example";

fn check(step: &str, target: &str, status: CheckStatus, detail: impl Into<String>) -> Check {
    Check {
        step: step.into(),
        target: target.into(),
        status,
        required: status == CheckStatus::Fail,
        detail: detail.into(),
        diagnosis: None,
        fix: None,
    }
}

fn fail(step: &str, target: &str, detail: impl Into<String>, diagnosis: String, fix: String) -> Check {
    Check {
        diagnosis: Some(diagnosis),
        fix: Some(fix),
        ..check(step, target, CheckStatus::Fail, detail)
    }
}

/// Diagnosis and fix of a connector error from the application, for target `name`.
fn explain(name: &str, step: &str, e: &ConnectorError) -> (String, String) {
    match e {
        ConnectorError::Unauthorized { .. } => (
            format!("target `{name}`: token refused (HTTP 401) at {step}"),
            format!(
                "put the application's current provisioning token in the `token` secret of [targets.{name}] \
                 (tokens expire or are revoked when regenerated in the application's admin console)"
            ),
        ),
        ConnectorError::Forbidden { needed, .. } => (
            format!(
                "target `{name}`: the token is accepted but lacks a permission (HTTP 403) at {step}{}",
                needed
                    .as_deref()
                    .map(|n| format!(": it needs {n}"))
                    .unwrap_or_default()
            ),
            "grant the permission named above to the token's identity in the application, or use a token \
             made for SCIM provisioning"
                .into(),
        ),
        other => (
            format!("target `{name}`: the application's answer at {step} is unusable: {other}"),
            "check base_url points at the SCIM endpoint (e.g. https://host/scim/v2) and the profile".into(),
        ),
    }
}

/// What `/ServiceProviderConfig` announces, in a line (SCIM targets; empty for others).
fn announced(answers: &[HttpResponse]) -> Option<String> {
    let spc = answers
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .find(|v| v.get("patch").is_some() || v.get("filter").is_some())?;
    let yes = |p: &str| {
        if spc.pointer(p).and_then(Value::as_bool) == Some(true) {
            "yes"
        } else {
            "no"
        }
    };
    let max = spc
        .pointer("/filter/maxResults")
        .and_then(Value::as_u64)
        .map(|m| format!(", max results {m}"))
        .unwrap_or_default();
    Some(format!(
        "announced: patch {}, filter {}{max}, bulk {}, etag {}",
        yes("/patch/supported"),
        yes("/filter/supported"),
        yes("/bulk/supported"),
        yes("/etag/supported")
    ))
}

/// The operations the target's configuration needs, with why.
fn needs(target: &TargetConfig) -> Vec<(TargetOperation, &'static str)> {
    let mut n = vec![
        (TargetOperation::CreateUser, "users are provisioned"),
        (TargetOperation::UpdateUser, "attribute changes are pushed"),
        (TargetOperation::CreateGroup, "groups are pushed"),
        (TargetOperation::AddMembers, "memberships are pushed"),
        (TargetOperation::RemoveMembers, "memberships are withdrawn"),
    ];
    n.push(match target.settings.deprovision {
        Deprovision::Deactivate => (TargetOperation::DeactivateUser, "deprovision = deactivate"),
        Deprovision::Delete => (TargetOperation::DeleteUser, "deprovision = delete"),
    });
    n
}

fn needs_check(name: &str, target: &TargetConfig, caps: &TargetCapabilities) -> Check {
    let missing: Vec<String> = needs(target)
        .into_iter()
        .filter(|(op, _)| !caps.supports(*op))
        .map(|(op, why)| format!("{op:?} ({why})"))
        .collect();
    if missing.is_empty() {
        let mut detail = format!(
            "every operation the configuration needs is allowed; {} member change(s) per request",
            caps.max_members_per_request
        );
        if !caps.can_filter {
            detail.push_str(
                "; no filter: existing accounts cannot be adopted (duplicates are refused by the app)",
            );
        }
        let status = if caps.can_filter {
            CheckStatus::Pass
        } else {
            CheckStatus::Warn
        };
        return check("needs", name, status, detail);
    }
    fail(
        "needs",
        name,
        format!(
            "not allowed by the application or its profile: {}",
            missing.join(", ")
        ),
        format!("target `{name}`: a push would stop at the first change it cannot make"),
        "choose the profile matching the application, or change the target's configuration (e.g. \
         deprovision) to what it allows"
            .into(),
    )
}

/// Setup steps (connector, options, client) that stop before anything is contacted.
fn open(
    target: &TargetConfig,
    config_path: &Path,
    registry: &Registry,
) -> Result<(Box<dyn TargetSession>, ConnectionClient), Box<Check>> {
    let name = target.name.as_str();
    let conn = &target.connection;
    let setup = |detail: String| {
        Box::new(fail(
            "setup",
            name,
            detail,
            format!("target `{name}` cannot be opened, so nothing was contacted"),
            "fix [targets.NAME] in the config file (`usersync config check` lists every problem)".into(),
        ))
    };
    let connector = match registry.lookup(&conn.connector) {
        RegistryLookup::Active(e) => e.connector.clone(),
        _ => None,
    }
    .ok_or_else(|| setup(wiring::unknown_message(&conn.connector, registry)))?;
    let half = connector.target().ok_or_else(|| {
        setup(format!(
            "connector `{}` is not a target connector (it cannot write to an application)",
            conn.connector
        ))
    })?;
    let (client, _) =
        wiring::open_client(conn, config_path, registry).map_err(|e| setup(e.message().to_string()))?;
    let checked = wiring::check_connection(conn, config_path, &connector).map_err(|issues| {
        setup(
            issues
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let session = half.open(&checked.options).map_err(|e| setup(e.to_string()))?;
    Ok((session, client))
}

/// Check one target.
pub async fn check_target(target: &TargetConfig, config_path: &Path, registry: &Registry) -> DoctorReport {
    use tracing::Instrument;
    let span = tracing::info_span!("doctor_target", target = %target.name);
    async {
        let mut report = DoctorReport {
            connection: target.name.clone(),
            connector: target.connection.connector.clone(),
            checks: Vec::new(),
        };
        match open(target, config_path, registry) {
            Ok((mut session, client)) => {
                run_checks(target, session.as_mut(), &client, &mut report.checks).await;
            }
            Err(c) => report.checks.push(*c),
        }
        report
    }
    .instrument(span)
    .await
}

async fn run_checks(
    target: &TargetConfig,
    session: &mut dyn TargetSession,
    client: &ConnectionClient,
    checks: &mut Vec<Check>,
) {
    let name = target.name.as_str();
    let requests = session.discovery();
    // reachability (DNS, TCP, proxy, TLS) of the application's hosts: the runtime's host checks
    // (no operation is called; the token is tried by the lookup below)
    let hosts = doctor::run_for(client, &[], doctor::Needs::default()).await;
    let host_checks: Vec<Check> = hosts.checks.into_iter().filter(|c| c.step != "token").collect();
    let reachable = !host_checks.iter().any(|c| c.status == CheckStatus::Fail);
    checks.extend(host_checks);
    if !reachable {
        checks.push(check(
            "discovery",
            name,
            CheckStatus::Skip,
            "skipped: the application is not reachable",
        ));
        return;
    }
    // discovery through the runtime, with the target's credentials
    let mut answers = Vec::new();
    for req in &requests {
        match client.send(req).await {
            Ok(r) => answers.push(r),
            Err(e) => {
                let (diagnosis, fix) = doctor::diagnose(&target.connection.connector, "discovery", &e);
                checks.push(fail("discovery", name, e.to_string(), diagnosis, fix));
                return;
            }
        }
    }
    let summary = announced(&answers);
    if let Err(e) = session.configure(answers) {
        let (diagnosis, fix) = explain(name, "discovery", &e);
        checks.push(fail("discovery", name, e.to_string(), diagnosis, fix));
        return;
    }
    let caps = session.capabilities();
    checks.push(check(
        "discovery",
        name,
        CheckStatus::Pass,
        summary.unwrap_or_else(|| {
            format!(
                "answered; filter {}, list {}, etags {}",
                caps.can_filter, caps.can_list, caps.etags
            )
        }),
    ));
    // the token: a lookup the application only answers to an accepted credential
    let lookup = Lookup::UserByUserName {
        value: PROBE_USER.into(),
    };
    match session.lookup_request(&lookup) {
        Err(e) => checks.push(check(
            "auth",
            name,
            CheckStatus::Skip,
            format!("no lookup to try the token with: {e}"),
        )),
        Ok(req) => match client.send(&req).await {
            Err(e) => {
                let (diagnosis, fix) = doctor::diagnose(&target.connection.connector, "auth", &e);
                checks.push(fail("auth", name, e.to_string(), diagnosis, fix));
            }
            Ok(resp) => match session.on_lookup(&lookup, resp) {
                Ok(_) => checks.push(check(
                    "auth",
                    name,
                    CheckStatus::Pass,
                    "token accepted (a user lookup was answered)",
                )),
                Err(e) => {
                    let (diagnosis, fix) = explain(name, "a user lookup", &e);
                    let detail = match &e {
                        ConnectorError::Unauthorized { .. } => "token refused (HTTP 401)".to_string(),
                        ConnectorError::Forbidden { .. } => format!("permission missing (HTTP 403): {e}"),
                        _ => e.to_string(),
                    };
                    checks.push(fail("auth", name, detail, diagnosis, fix));
                }
            },
        },
    }
    checks.push(needs_check(name, target, &caps));
}
