//! `/metrics`: Prometheus text exposition via `prometheus-client`. Labels are connection names,
//! run outcomes and object kinds only: never a secret, a URL or a user.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use usersync_store::RunStatus;

use crate::{JobResult, PushResult};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Conn {
    connection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnOutcome {
    connection: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    connection: String,
    operation: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Target {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetOutcome {
    target: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetKind {
    target: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadResult {
    result: String,
}

fn duration_histogram() -> Histogram {
    // 0.25 s .. about 1.4 h
    Histogram::new(exponential_buckets(0.25, 2.0, 15))
}

/// The service's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    runs: Family<ConnOutcome, Counter>,
    last_success: Family<Conn, Gauge<f64, AtomicU64>>,
    duration: Family<Conn, Histogram, fn() -> Histogram>,
    requests: Family<ConnOutcome, Counter>,
    retries: Family<Conn, Counter>,
    throttled: Family<Conn, Counter>,
    throttle_wait: Family<Conn, Counter<f64, AtomicU64>>,
    objects: Family<Kind, Gauge>,
    gate_blocks: Family<Conn, Counter>,
    plugin_refusals: Family<Conn, Counter>,
    failing: Family<Conn, Gauge>,
    reloads: Family<ReloadResult, Counter>,
    http_requests: Family<Request, Counter>,
    pushes: Family<TargetOutcome, Counter>,
    push_last_success: Family<Target, Gauge<f64, AtomicU64>>,
    push_duration: Family<Target, Histogram, fn() -> Histogram>,
    push_provisioned: Family<TargetKind, Counter>,
    push_failing: Family<Target, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric registered, at zero.
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            runs: Family::default(),
            last_success: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            requests: Family::default(),
            retries: Family::default(),
            throttled: Family::default(),
            throttle_wait: Family::default(),
            objects: Family::default(),
            gate_blocks: Family::default(),
            plugin_refusals: Family::default(),
            failing: Family::default(),
            reloads: Family::default(),
            http_requests: Family::default(),
            pushes: Family::default(),
            push_last_success: Family::default(),
            push_duration: Family::new_with_constructor(duration_histogram),
            push_provisioned: Family::default(),
            push_failing: Family::default(),
        };
        {
            let mut r = m.registry.lock().unwrap_or_else(|p| p.into_inner());
            r.register("usersync_runs", "Runs by connection and outcome", m.runs.clone());
            r.register(
                "usersync_last_success_timestamp_seconds",
                "When a run of the connection last applied (Unix time)",
                m.last_success.clone(),
            );
            r.register(
                "usersync_run_duration_seconds",
                "Run wall time",
                m.duration.clone(),
            );
            r.register(
                "usersync_requests",
                "HTTP requests to the provider by connection and run outcome (token requests and retries included)",
                m.requests.clone(),
            );
            r.register(
                "usersync_request_retries",
                "Requests that were retries",
                m.retries.clone(),
            );
            r.register(
                "usersync_throttled_responses",
                "Responses with HTTP 429 or a provider's throttling error",
                m.throttled.clone(),
            );
            r.register(
                "usersync_rate_limit_wait_seconds",
                "Seconds spent waiting for rate limits",
                m.throttle_wait.clone(),
            );
            r.register(
                "usersync_store_objects",
                "Objects in the store by kind",
                m.objects.clone(),
            );
            r.register(
                "usersync_gate_blocks",
                "Runs blocked by a safety gate",
                m.gate_blocks.clone(),
            );
            r.register(
                "usersync_plugin_refusals",
                "Runs that could not start because the connector's plugin was refused",
                m.plugin_refusals.clone(),
            );
            r.register(
                "usersync_connection_failing",
                "1 while the connection's last run failed",
                m.failing.clone(),
            );
            r.register(
                "usersync_config_reloads",
                "Config reloads by result",
                m.reloads.clone(),
            );
            r.register(
                "usersync_http_requests",
                "HTTP requests by connection (a target's pushes: push:<target>), operation (method, or token) and status (code, or error)",
                m.http_requests.clone(),
            );
            r.register(
                "usersync_push_runs",
                "Pushes by target and outcome",
                m.pushes.clone(),
            );
            r.register(
                "usersync_push_last_success_timestamp_seconds",
                "When a push of the target last applied (Unix time)",
                m.push_last_success.clone(),
            );
            r.register(
                "usersync_push_duration_seconds",
                "Push wall time",
                m.push_duration.clone(),
            );
            r.register(
                "usersync_push_objects_provisioned",
                "Objects created (or adopted) in the target's application by kind",
                m.push_provisioned.clone(),
            );
            r.register(
                "usersync_target_failing",
                "1 while the target's last push failed",
                m.push_failing.clone(),
            );
        }
        m
    }

    fn conn(name: &str) -> Conn {
        Conn {
            connection: name.to_string(),
        }
    }

    /// Make a connection's series exist before its first run (at zero).
    pub fn declare(&self, name: &str) {
        let _ = self.failing.get_or_create(&Self::conn(name));
        let _ = self.gate_blocks.get_or_create(&Self::conn(name));
    }

    /// Record a finished run.
    pub fn record_run(&self, name: &str, r: &JobResult, duration_ms: i64, last_success_ms: Option<i64>) {
        let c = Self::conn(name);
        let outcome = r.report.status.as_str().to_string();
        self.runs
            .get_or_create(&ConnOutcome {
                connection: name.to_string(),
                outcome: outcome.clone(),
            })
            .inc();
        self.duration
            .get_or_create(&c)
            .observe(duration_ms.max(0) as f64 / 1000.0);
        self.requests
            .get_or_create(&ConnOutcome {
                connection: name.to_string(),
                outcome,
            })
            .inc_by(r.report.requests);
        self.retries.get_or_create(&c).inc_by(r.retries);
        self.throttled.get_or_create(&c).inc_by(r.throttled_responses);
        self.throttle_wait
            .get_or_create(&c)
            .inc_by(r.throttled_ms as f64 / 1000.0);
        if r.report.status == RunStatus::Blocked {
            self.gate_blocks.get_or_create(&c).inc();
        }
        if r.plugin_refused {
            self.plugin_refusals.get_or_create(&c).inc();
        }
        if let Some(t) = last_success_ms {
            self.last_success.get_or_create(&c).set(t as f64 / 1000.0);
        }
        for q in &r.detail.requests {
            self.http_requests
                .get_or_create(&Request {
                    connection: name.to_string(),
                    operation: q.operation.clone(),
                    status: q.status.clone(),
                })
                .inc_by(q.count);
        }
    }

    fn target(name: &str) -> Target {
        Target {
            target: name.to_string(),
        }
    }

    /// Make a target's series exist before its first push (at zero).
    pub fn declare_target(&self, name: &str) {
        let _ = self.push_failing.get_or_create(&Self::target(name));
        for kind in ["users", "groups"] {
            let _ = self.push_provisioned.get_or_create(&TargetKind {
                target: name.to_string(),
                kind: kind.into(),
            });
        }
    }

    /// Record a finished push; `last_success_ms` is when the target last applied.
    pub fn record_push(&self, p: &PushResult, last_success_ms: Option<i64>) {
        let t = Self::target(&p.target);
        self.pushes
            .get_or_create(&TargetOutcome {
                target: p.target.clone(),
                outcome: p.status.as_str().to_string(),
            })
            .inc();
        self.push_duration
            .get_or_create(&t)
            .observe(p.duration_ms as f64 / 1000.0);
        for (kind, n) in [("users", p.users_provisioned), ("groups", p.groups_provisioned)] {
            self.push_provisioned
                .get_or_create(&TargetKind {
                    target: p.target.clone(),
                    kind: kind.into(),
                })
                .inc_by(n);
        }
        self.push_failing
            .get_or_create(&t)
            .set(i64::from(p.status == RunStatus::Failed));
        if let Some(ms) = last_success_ms {
            self.push_last_success.get_or_create(&t).set(ms as f64 / 1000.0);
        }
        // the push's requests to the application, as the run history names it: `push:<target>`
        let connection = crate::target::push_job(&p.target);
        for q in &p.requests {
            self.http_requests
                .get_or_create(&Request {
                    connection: connection.clone(),
                    operation: q.operation.clone(),
                    status: q.status.clone(),
                })
                .inc_by(q.count);
        }
    }

    /// Whether the connection is failing now.
    pub fn set_failing(&self, name: &str, failing: bool) {
        self.failing
            .get_or_create(&Self::conn(name))
            .set(i64::from(failing));
    }

    /// Objects in the store.
    pub fn set_objects(&self, users: u64, groups: u64) {
        for (kind, n) in [("users", users), ("groups", groups)] {
            self.objects
                .get_or_create(&Kind { kind: kind.into() })
                .set(n as i64);
        }
    }

    /// A config reload happened.
    pub fn reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "refused" };
        self.reloads
            .get_or_create(&ReloadResult {
                result: result.into(),
            })
            .inc();
    }

    /// The exposition in the Prometheus text format 0.0.4 (what `promtool check metrics` and
    /// clients that do not ask for OpenMetrics read): counters' HELP/TYPE name the `_total`
    /// series, no `# EOF`/`# UNIT` lines.
    pub fn encode_text(&self) -> String {
        to_prometheus_text(&self.encode())
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &r) {
            tracing::error!("cannot encode metrics: {e}");
        }
        out
    }
}

/// OpenMetrics text -> Prometheus text format 0.0.4.
pub fn to_prometheus_text(open: &str) -> String {
    let counters: std::collections::HashSet<&str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open.len() + 64);
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{p}{name}_total {tail}"))
        });
        match rewritten {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use usersync_sync::RunReport;

    #[test]
    fn a_run_shows_in_the_exposition() {
        let m = Metrics::new();
        m.declare("okta");
        let mut report = RunReport::failed(Some(1), "okta", "x".into(), std::time::Instant::now());
        report.status = RunStatus::Blocked;
        report.requests = 7;
        let r = JobResult {
            report,
            throttled_responses: 2,
            throttled_ms: 1500,
            retries: 1,
            plugin_refused: false,
            detail: Default::default(),
        };
        m.record_run("okta", &r, 2000, Some(1_700_000_000_000));
        m.set_objects(10, 3);
        let text = m.encode();
        for line in [
            "usersync_runs_total{connection=\"okta\",outcome=\"blocked\"} 1",
            "usersync_gate_blocks_total{connection=\"okta\"} 1",
            "usersync_requests_total{connection=\"okta\",outcome=\"blocked\"} 7",
            "usersync_throttled_responses_total{connection=\"okta\"} 2",
            "usersync_rate_limit_wait_seconds_total{connection=\"okta\"} 1.5",
            "usersync_store_objects{kind=\"users\"} 10",
            "usersync_last_success_timestamp_seconds{connection=\"okta\"} 1700000000.0",
            "usersync_run_duration_seconds_count{connection=\"okta\"} 1",
        ] {
            assert!(text.contains(line), "missing `{line}` in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        let plain = m.encode_text();
        assert!(
            plain.contains("# TYPE usersync_gate_blocks_total counter\n"),
            "{plain}"
        );
        assert!(
            plain.contains("# HELP usersync_gate_blocks_total Runs blocked by a safety gate.\n"),
            "{plain}"
        );
        assert!(plain.contains("# TYPE usersync_store_objects gauge\n"), "{plain}");
        assert!(!plain.contains("# EOF"), "{plain}");
    }

    #[test]
    fn requests_by_operation_and_pushes_by_target_show_in_the_exposition() {
        let m = Metrics::new();
        m.declare_target("app");
        let mut report = RunReport::failed(Some(1), "okta", "x".into(), std::time::Instant::now());
        report.status = RunStatus::Applied;
        let stat = |operation: &str, status: &str, count| crate::RequestStat {
            operation: operation.into(),
            status: status.into(),
            count,
        };
        let r = JobResult {
            report,
            throttled_responses: 1,
            throttled_ms: 250,
            retries: 1,
            plugin_refused: false,
            detail: crate::RunDetail {
                requests: vec![
                    stat("GET", "200", 5),
                    stat("GET", "429", 1),
                    stat("token", "200", 1),
                ],
                pushes: Vec::new(),
            },
        };
        m.record_run("okta", &r, 1000, None);
        m.record_run("okta", &r, 1000, None);
        let push = PushResult {
            target: "app".into(),
            run_id: Some(2),
            status: RunStatus::Applied,
            partial: false,
            duration_ms: 1500,
            users_provisioned: 12,
            groups_provisioned: 3,
            removals: 0,
            errors: Vec::new(),
            requests: vec![stat("POST", "201", 15), stat("PATCH", "200", 3)],
        };
        m.record_push(&push, Some(1_700_000_000_000));
        let failed = PushResult {
            status: RunStatus::Failed,
            users_provisioned: 0,
            groups_provisioned: 0,
            requests: vec![stat("GET", "error", 1)],
            ..push
        };
        m.record_push(&failed, Some(1_700_000_000_000));
        let text = m.encode_text();
        for line in [
            "usersync_http_requests_total{connection=\"okta\",operation=\"GET\",status=\"200\"} 10",
            "usersync_http_requests_total{connection=\"okta\",operation=\"GET\",status=\"429\"} 2",
            "usersync_http_requests_total{connection=\"okta\",operation=\"token\",status=\"200\"} 2",
            "usersync_rate_limit_wait_seconds_total{connection=\"okta\"} 0.5",
            "usersync_push_runs_total{target=\"app\",outcome=\"applied\"} 1",
            "usersync_push_runs_total{target=\"app\",outcome=\"failed\"} 1",
            "usersync_push_objects_provisioned_total{target=\"app\",kind=\"users\"} 12",
            "usersync_push_objects_provisioned_total{target=\"app\",kind=\"groups\"} 3",
            "usersync_push_last_success_timestamp_seconds{target=\"app\"} 1700000000.0",
            "usersync_push_duration_seconds_count{target=\"app\"} 2",
            "usersync_target_failing{target=\"app\"} 1",
            "usersync_http_requests_total{connection=\"push:app\",operation=\"POST\",status=\"201\"} 15",
            "usersync_http_requests_total{connection=\"push:app\",operation=\"PATCH\",status=\"200\"} 3",
            "usersync_http_requests_total{connection=\"push:app\",operation=\"GET\",status=\"error\"} 1",
        ] {
            assert!(text.contains(line), "missing `{line}` in\n{text}");
        }
    }
}
