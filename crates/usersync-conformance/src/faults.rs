//! Checks with the server's fault knobs (paging, retries, malformed bodies, vanished objects),
//! each proving its fault fired from the server's own counters.

use crate::*;

/// The fault checks, driven by the server's control URL.
pub(crate) async fn fault_checks(
    report: &mut Report,
    subject: &Subject,
    control: &Control,
    user_ids: &[String],
    groups: &QueryOutput,
) -> Result<(), SetupError> {
    let reference = sorted(user_ids.to_vec());
    // each check uses a fresh client (a halted or throttled one must not spoil the next), with
    // its token fetched before the fault is set
    let fresh = |conc: Option<u32>| -> Result<ConnectionClient, SetupError> {
        let mut s = subject.settings.clone();
        s.concurrency = conc;
        let sub = Subject {
            connector: subject.connector.clone(),
            options: subject.options.clone(),
            secrets: subject.secrets.clone(),
            control_url: None,
            settings: s,
        };
        client(&sub, &subject.secrets, "conformance-faults")
    };

    // paging loop: stopped, or harmless
    let c = fresh(None)?;
    let _ = c.fetch_token().await;
    control.faults(json!({"paging_loop_at_page": 2})).await?;
    let served = control.paging_served_before().await;
    let r = c.run_query(&Query::ListUsers).await;
    let fired = control.paging_served_since(served).await;
    control.faults(json!({})).await?;
    match (fired, r) {
        (false, _) => report.record(
            "paging.loop_guard",
            Outcome::Skipped("the fault did not fire (one page of users?)".into()),
        ),
        (true, Ok(out)) => report.check("paging.loop_guard", sorted(ids(&out, false)) == reference, || {
            format!(
                "a looping listing returned {} users, not the {} listed without it",
                out.records.len(),
                reference.len()
            )
        }),
        (true, Err(_)) => report.record("paging.loop_guard", Outcome::Passed),
    }

    // empty page with a next link: the listing goes on
    let c = fresh(None)?;
    let _ = c.fetch_token().await;
    control.faults(json!({"empty_page_at": 2})).await?;
    let served = control.paging_served_before().await;
    let r = c.run_query(&Query::ListUsers).await;
    let fired = control.paging_served_since(served).await;
    control.faults(json!({})).await?;
    match (fired, r) {
        (false, _) => report.record(
            "paging.empty_page",
            Outcome::Skipped("the fault did not fire".into()),
        ),
        (true, Ok(out)) => report.check("paging.empty_page", sorted(ids(&out, false)) == reference, || {
            "an empty page with a next link changed the listing".into()
        }),
        // a provider whose listings end at an empty page (Keycloak's offset paging) may stop
        // there, but must then fail the query (Protocol), never return a shorter listing
        (true, Err(e)) => report.check(
            "paging.empty_page",
            matches!(e.connector_error(), Some(ConnectorError::Protocol { .. })),
            || format!("an empty page with a next link failed the listing as {e}, not Protocol"),
        ),
    }

    // expired page cursor: restart, or CursorExpired
    let c = fresh(None)?;
    let _ = c.fetch_token().await;
    control.faults(json!({"expire_token_at_page": 2})).await?;
    let served = control.paging_served_before().await;
    let r = c.run_query(&Query::ListUsers).await;
    let fired = control.paging_served_since(served).await;
    control.faults(json!({})).await?;
    match (fired, r) {
        (false, _) => report.record(
            "paging.cursor_expiry",
            Outcome::Skipped("the fault did not fire".into()),
        ),
        (true, Ok(out)) => report.check(
            "paging.cursor_expiry",
            sorted(ids(&out, false)) == reference,
            || {
                format!(
                    "an expired cursor gave a different listing ({} restarts)",
                    out.restarts
                )
            },
        ),
        // CursorExpired once the restarts are spent, or Protocol where the provider's answer does
        // not tell an expired cursor from another refused parameter (Okta's E0000001): either
        // stops the run; NotFound, Transient or a shorter listing would not
        (true, Err(e)) => report.check(
            "paging.cursor_expiry",
            matches!(
                e.connector_error(),
                Some(ConnectorError::CursorExpired { .. } | ConnectorError::Protocol { .. })
            ),
            || format!("an expired cursor failed as {e}, not CursorExpired or Protocol"),
        ),
    }

    // server errors: retried to the same data
    let c = fresh(None)?;
    let _ = c.fetch_token().await;
    let before = control.stat("faults_injected").await?;
    control
        .faults(json!({"error_rate": 0.5, "error_statuses": [500, 502, 503], "seed": 7, "max_faults": 3}))
        .await?;
    let r = c.run_query(&Query::ListUsers).await;
    let fired = control.stat("faults_injected").await? > before;
    control.faults(json!({})).await?;
    match r {
        Ok(out) => report.check(
            "faults.server_errors_retried",
            fired && sorted(ids(&out, false)) == reference,
            || {
                format!(
                    "fault fired: {fired}; listing equal: {}",
                    sorted(ids(&out, false)) == reference
                )
            },
        ),
        Err(e) => report.record(
            "faults.server_errors_retried",
            Outcome::Failed(format!("three server errors failed the listing: {e}")),
        ),
    }

    // throttling (the server's concurrency limit): retried to the same data
    let c = fresh(Some(4))?;
    let _ = c.fetch_token().await;
    let before = control.stat("throttled").await?;
    control
        .faults(json!({"concurrency_limit": 1, "latency_ms": 30}))
        .await?;
    let mut queries = vec![Query::ListUsers; 4];
    if !groups.records.is_empty() {
        queries.push(Query::ListGroups);
    }
    let results = c.run_all(queries).await;
    let fired = control.stat("throttled").await? > before;
    control.faults(json!({})).await?;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    let same = results
        .first()
        .and_then(|r| r.as_ref().ok())
        .is_some_and(|out| sorted(ids(out, false)) == reference);
    if !fired {
        report.record(
            "faults.throttling_retried",
            Outcome::Skipped("no request was throttled".into()),
        );
    } else {
        report.check("faults.throttling_retried", failed.is_empty() && same, || {
            format!("throttled queries failed: {}", failed.join("; "))
        });
    }

    // malformed body: the query fails (Protocol), never a shorter listing
    let c = fresh(None)?;
    let _ = c.fetch_token().await;
    let before = control.stat("faults_injected").await?;
    control
        .faults(json!({"malformed_rate": 1.0, "max_faults": 1}))
        .await?;
    let r = c.run_query(&Query::ListUsers).await;
    let fired = control.stat("faults_injected").await? > before;
    control.faults(json!({})).await?;
    match r {
        _ if !fired => report.record(
            "faults.malformed_body",
            Outcome::Skipped("the fault did not fire".into()),
        ),
        Ok(out) => report.check(
            "faults.malformed_body",
            sorted(ids(&out, false)) == reference,
            || "a malformed page was taken as a shorter listing".into(),
        ),
        Err(_) => report.record("faults.malformed_body", Outcome::Passed),
    }

    // a group deleted between the listing and its members read: NotFound
    let name = "faults.vanished_group_not_found";
    let first = groups.records.iter().find_map(|r| match r {
        Record::Group(g) if g.kind != GroupKind::Role => Some((g.id.clone(), g.name.clone())),
        _ => None,
    });
    let declared = subject
        .connector
        .manifest()
        .endpoints
        .iter()
        .any(|e| e.operation == Operation::GroupMembers);
    match first {
        Some((id, group_name)) if declared => {
            let c = fresh(None)?;
            let before = control.stat("objects_vanished").await?;
            control.faults(json!({ "vanish_group": group_name })).await?;
            let r = c.run_query(&Query::GroupMembers { group_id: id }).await;
            let fired = control.stat("objects_vanished").await? > before;
            control.faults(json!({})).await?;
            match r {
                _ if !fired => report.record(name, Outcome::Skipped("the group did not vanish".into())),
                Ok(out) => report.record(
                    name,
                    Outcome::Failed(format!(
                        "a deleted group's members were {} records",
                        out.records.len()
                    )),
                ),
                Err(e) => report.check(
                    name,
                    matches!(e.connector_error(), Some(ConnectorError::NotFound { .. })),
                    || format!("a deleted group's members failed as {e}, not NotFound"),
                ),
            }
        }
        _ => report.record(
            name,
            Outcome::Skipped("no group members operation, or no group".into()),
        ),
    }
    Ok(())
}

/// The emulator's control protocol.
pub(crate) struct Control {
    url: String,
    http: reqwest::Client,
}

impl Control {
    pub(crate) fn new(url: &str) -> Self {
        Control {
            url: url.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder().no_proxy().build().unwrap_or_default(),
        }
    }

    pub(crate) async fn faults(&self, cfg: Value) -> Result<(), SetupError> {
        let url = format!("{}/faults", self.url);
        let r = self
            .http
            .put(&url)
            .json(&cfg)
            .send()
            .await
            .map_err(|e| SetupError(format!("PUT {url}: {e}")))?;
        if !r.status().is_success() {
            return Err(SetupError(format!(
                "PUT {url} {cfg}: HTTP {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            )));
        }
        Ok(())
    }

    pub(crate) async fn stats(&self) -> Result<Value, SetupError> {
        let url = format!("{}/stats", self.url);
        let r = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| SetupError(format!("GET {url}: {e}")))?;
        r.json().await.map_err(|e| SetupError(format!("GET {url}: {e}")))
    }

    pub(crate) async fn stat(&self, name: &str) -> Result<u64, SetupError> {
        let v = self.stats().await?;
        v[name]
            .as_u64()
            .ok_or_else(|| SetupError(format!("{}/stats has no counter `{name}`", self.url)))
    }

    pub(crate) async fn paging_served_before(&self) -> Option<u64> {
        self.stat("paging_faults_served").await.ok()
    }

    pub(crate) async fn paging_served_since(&self, before: Option<u64>) -> bool {
        match (before, self.stat("paging_faults_served").await.ok()) {
            (Some(b), Some(a)) => a > b,
            _ => false,
        }
    }
}
