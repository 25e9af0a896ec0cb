//! `[serve]` and the per-connection schedule keys (`every`, `schedule`, `jitter`): what
//! `usersync serve` reads. Checked by the same one pass as the rest of the file
//! ([`crate::validate`]), so `config check` reports their problems with line numbers.
//!
//! ```toml
//! [serve]
//! listen = "127.0.0.1:8787"              # default; another address must be written here
//! token = { env = "USERSYNC_SERVE_TOKEN" }   # bearer token (or: username + password)
//! # username = "ops"
//! # password = { file = "/run/secrets/usersync-serve" }
//! tls_cert = "serve.crt"                 # PEM; both or neither
//! tls_key = "serve.key"
//! ready_after_failing = "2h"             # /readyz fails when a connection has failed this long
//! shutdown_grace = "60s"                 # SIGTERM: how long a running sync may take to finish
//! lease = "30s"                          # PostgreSQL store: the leader's lease (several hosts)
//! [[serve.webhooks]]
//! url = { env = "SLACK_WEBHOOK_URL" }    # a URL or a secret reference (Slack URLs are secrets)
//! format = "slack"                       # json (default) or slack
//! events = ["blocked", "failed", "recovered"]
//! retries = 3
//!
//! [[connections]]
//! name = "okta-prod"
//! every = "15m"                          # or: schedule = "*/15 * * * *" (cron, UTC)
//! jitter = "1m"                          # up to this much later, at random
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use toml_edit::{Item, TableLike};

use crate::secret::SecretRef;
use crate::validate::Checker;

/// The default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";

/// The leader's lease by default (PostgreSQL store, several hosts).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// The shortest and longest lease accepted (shorter: renewals every lease/3 race the network;
/// longer: a dead leader holds the connections too long).
pub const LEASE_RANGE: (Duration, Duration) = (Duration::from_secs(3), Duration::from_secs(600));

/// Keys of `[serve]`.
const SERVE_KEYS: &[&str] = &[
    "listen",
    "token",
    "username",
    "password",
    "tls_cert",
    "tls_key",
    "ready_after_failing",
    "shutdown_grace",
    "lease",
    "webhooks",
];
/// Keys of one `[[serve.webhooks]]`.
const WEBHOOK_KEYS: &[&str] = &["url", "format", "events", "retries"];
/// The connection keys this module reads.
pub const CONNECTION_SCHEDULE_KEYS: &[&str] = &["every", "schedule", "jitter"];

/// `[serve]` as configured (defaults when the section is absent).
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Certificate and key (PEM) to serve HTTPS with.
    pub tls: Option<TlsFiles>,
    /// Credentials the page, API and metrics require; `None`: `serve` refuses to start.
    pub auth: Option<ServeAuth>,
    /// `/readyz` fails when a connection has been failing for longer than this.
    pub ready_after_failing: Duration,
    /// SIGTERM: how long a running sync may take to finish before the process exits anyway.
    pub shutdown_grace: Duration,
    /// With a PostgreSQL store: how long the leader's lease lasts unrenewed (another host takes
    /// the connections over this long after the leader dies).
    pub lease: Duration,
    /// Notifications.
    pub webhooks: Vec<Webhook>,
    /// Schedules by connection name (connections without one run only when asked).
    pub schedules: BTreeMap<String, Schedule>,
    /// Line of `[serve]` (1 when absent).
    pub line: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            tls: None,
            auth: None,
            ready_after_failing: Duration::from_secs(2 * 3600),
            shutdown_grace: Duration::from_secs(60),
            lease: DEFAULT_LEASE,
            webhooks: Vec::new(),
            schedules: BTreeMap::new(),
            line: 1,
        }
    }
}

/// HTTPS material (paths resolved against the config's directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// How clients of `serve` authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServeAuth {
    /// `Authorization: Bearer <token>` (or basic auth with any user name and the token as password).
    Token(SecretRef),
    /// HTTP basic credentials.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: SecretRef,
    },
}

/// When a connection runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleKind {
    /// Every interval, counted from the end of the previous run.
    Every(Duration),
    /// A cron expression (UTC), as written (5 fields, or 6 with seconds first).
    Cron(String),
}

/// A connection's schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Interval or cron.
    pub kind: ScheduleKind,
    /// Each run starts up to this much later than due, at random.
    pub jitter: Duration,
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            ScheduleKind::Every(d) => write!(f, "every {}", format_duration(*d))?,
            ScheduleKind::Cron(c) => write!(f, "cron `{c}` (UTC)")?,
        }
        if !self.jitter.is_zero() {
            write!(f, ", jitter {}", format_duration(self.jitter))?;
        }
        Ok(())
    }
}

/// The body format of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// usersync's JSON event object.
    Json,
    /// A Slack incoming-webhook message (`{"text": ...}`).
    Slack,
}

/// What a webhook is sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WebhookEvent {
    /// A safety gate blocked a run.
    Blocked,
    /// A run failed.
    Failed,
    /// A connection's first good run after a failed or blocked one.
    Recovered,
}

impl WebhookEvent {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::Blocked => "blocked",
            WebhookEvent::Failed => "failed",
            WebhookEvent::Recovered => "recovered",
        }
    }
}

/// One `[[serve.webhooks]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Where to POST (a secret reference when the URL carries a credential).
    pub url: SecretRef,
    /// Body format.
    pub format: WebhookFormat,
    /// Events sent (default: all).
    pub events: Vec<WebhookEvent>,
    /// Retries after a failed delivery (5xx, 429, network), with growing delays.
    pub retries: u32,
}

/// Parse `90s`, `15m`, `2h`, `1d`, `1h30m` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration; write e.g. `15m`, `30s`, `2h`".into());
    }
    if let Ok(n) = t.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("`{s}` is not a duration: use s, m, h or d (e.g. `15m`)")),
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a duration: a number must come before each unit"))?;
        num.clear();
        total = total.saturating_add(n.saturating_mul(unit));
    }
    if !num.is_empty() {
        return Err(format!("`{s}` is not a duration: the last number has no unit"));
    }
    Ok(Duration::from_secs(total))
}

/// `1h30m`, `15m`, `45s`, `0s`.
pub fn format_duration(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= n {
            out.push_str(&format!("{}{unit}", s / n));
            s %= n;
        }
    }
    out
}

/// A cron expression as the `cron` crate reads it: 5-field expressions get a `0` seconds field.
pub fn cron_with_seconds(expr: &str) -> String {
    let fields = expr.split_whitespace().count();
    if fields == 5 {
        format!("0 {}", expr.trim())
    } else {
        expr.trim().to_string()
    }
}

/// Check a cron expression (5 fields, or 6/7 with seconds first and an optional year).
pub fn check_cron(expr: &str) -> Result<cron::Schedule, String> {
    let fields = expr.split_whitespace().count();
    if !(5..=7).contains(&fields) {
        return Err(format!(
            "`{expr}` is not a cron expression: it has {fields} fields, cron has 5 \
             (minute hour day-of-month month day-of-week), e.g. `*/15 * * * *`"
        ));
    }
    cron::Schedule::from_str(&cron_with_seconds(expr))
        .map_err(|e| format!("`{expr}` is not a valid cron expression: {e}"))
}

impl Checker<'_> {
    /// A duration-valued key: parsed, or reported.
    fn duration_key(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        conn: Option<&str>,
        prefix: &str,
        line: usize,
    ) -> Option<Duration> {
        let item = t.get(key)?;
        let kline = self.key_line(t, key, line);
        let option = Some(format!("{prefix}{key}"));
        match item.as_str() {
            Some(s) => match parse_duration(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.push(kline, conn, option, e);
                    None
                }
            },
            None => {
                self.push(
                    kline,
                    conn,
                    option,
                    "must be a duration string, e.g. \"15m\"".into(),
                );
                None
            }
        }
    }

    /// A string or secret-reference key.
    fn secret_key(&mut self, t: &dyn TableLike, key: &str, prefix: &str, line: usize) -> Option<SecretRef> {
        let item = t.get(key)?;
        let kline = self.key_line(t, key, line);
        let value = crate::validate::to_toml(item)?;
        match crate::validate::as_secret_ref(&value, self.base) {
            Some(r) => {
                self.secret(&r, None, &format!("{prefix}{key}"), kline);
                Some(r)
            }
            None => match value {
                toml::Value::String(s) => Some(SecretRef::Literal(s)),
                _ => {
                    self.push(
                        kline,
                        None,
                        Some(format!("{prefix}{key}")),
                        "must be { env = \"NAME\" }, { file = \"path\" } or a string".into(),
                    );
                    None
                }
            },
        }
    }

    /// The schedule keys of one `[[connections]]` table.
    pub(crate) fn connection_schedule(
        &mut self,
        t: &dyn TableLike,
        conn: Option<&str>,
        line: usize,
    ) -> Option<Schedule> {
        let every = self.duration_key(t, "every", conn, "", line);
        let jitter = self.duration_key(t, "jitter", conn, "", line).unwrap_or_default();
        let cron = match t.get("schedule") {
            None => None,
            Some(item) => {
                let kline = self.key_line(t, "schedule", line);
                match item.as_str() {
                    Some(s) => match check_cron(s) {
                        Ok(_) => Some(s.to_string()),
                        Err(e) => {
                            self.push(kline, conn, Some("schedule".into()), e);
                            None
                        }
                    },
                    None => {
                        self.push(
                            kline,
                            conn,
                            Some("schedule".into()),
                            "must be a cron expression string".into(),
                        );
                        None
                    }
                }
            }
        };
        if t.get("every").is_some() && t.get("schedule").is_some() {
            let kline = self.key_line(t, "schedule", line);
            self.push(
                kline,
                conn,
                Some("schedule".into()),
                "give `every` or `schedule`, not both".into(),
            );
            return None;
        }
        if let Some(d) = every {
            if d < Duration::from_secs(10) {
                let kline = self.key_line(t, "every", line);
                self.push(kline, conn, Some("every".into()), "must be at least 10s".into());
                return None;
            }
        }
        if t.get("jitter").is_some() && every.is_none() && cron.is_none() {
            let kline = self.key_line(t, "jitter", line);
            self.push(
                kline,
                conn,
                Some("jitter".into()),
                "has no effect without `every` or `schedule`".into(),
            );
        }
        let kind = match (every, cron) {
            (Some(d), _) => ScheduleKind::Every(d),
            (None, Some(c)) => ScheduleKind::Cron(c),
            (None, None) => return None,
        };
        Some(Schedule { kind, jitter })
    }

    /// `[serve]`.
    pub(crate) fn serve_section(&mut self, item: &Item, line: usize) -> ServeConfig {
        let mut out = ServeConfig {
            line,
            ..ServeConfig::default()
        };
        let Some(t) = self.table(item, "serve", None, line) else {
            return out;
        };
        let p = "serve.";
        for (key, _) in t.iter() {
            if !SERVE_KEYS.contains(&key) {
                let kline = self.key_line(t, key, line);
                let m = crate::validate::unknown_key_message(
                    "key in [serve]",
                    key,
                    SERVE_KEYS,
                    "see docs/operations.md",
                );
                self.push(kline, None, Some(format!("{p}{key}")), m);
            }
        }
        if let Some(item) = t.get("listen") {
            let kline = self.key_line(t, "listen", line);
            match item.as_str().map(|s| s.parse::<SocketAddr>()) {
                Some(Ok(a)) => out.listen = a,
                _ => self.push(
                    kline,
                    None,
                    Some("serve.listen".into()),
                    format!("must be an address and port, e.g. \"{DEFAULT_LISTEN}\""),
                ),
            }
        }
        let token = self.secret_key(t, "token", p, line);
        let password = self.secret_key(t, "password", p, line);
        let username = t
            .get("username")
            .map(|i| (i.as_str().map(str::to_string), self.key_line(t, "username", line)));
        out.auth = match (token, username, password) {
            (Some(tok), None, None) => Some(ServeAuth::Token(tok)),
            (None, Some((Some(u), _)), Some(pw)) if !u.is_empty() => Some(ServeAuth::Basic {
                username: u,
                password: pw,
            }),
            (None, None, None) => None,
            _ => {
                self.push(
                    line,
                    None,
                    Some("serve.token".into()),
                    "give either `token`, or `username` (a non-empty string) and `password`".into(),
                );
                None
            }
        };
        let path = |c: &mut Self, key: &str| -> Option<PathBuf> {
            let item = t.get(key)?;
            match item.as_str() {
                Some(s) => Some(c.base.join(s)),
                None => {
                    let kline = c.key_line(t, key, line);
                    c.push(
                        kline,
                        None,
                        Some(format!("serve.{key}")),
                        "must be a file path string".into(),
                    );
                    None
                }
            }
        };
        let cert = path(self, "tls_cert");
        let key = path(self, "tls_key");
        match (cert, key) {
            (Some(cert), Some(key)) => {
                for (k, f) in [("tls_cert", &cert), ("tls_key", &key)] {
                    if let Err(e) = std::fs::metadata(f) {
                        let kline = self.key_line(t, k, line);
                        self.push(
                            kline,
                            None,
                            Some(format!("serve.{k}")),
                            format!("cannot read `{}`: {e}", f.display()),
                        );
                    }
                }
                out.tls = Some(TlsFiles { cert, key });
            }
            (None, None) => {}
            _ => self.push(
                line,
                None,
                Some("serve.tls_cert".into()),
                "give both `tls_cert` and `tls_key`, or neither".into(),
            ),
        }
        if let Some(d) = self.duration_key(t, "ready_after_failing", None, p, line) {
            out.ready_after_failing = d;
        }
        if let Some(d) = self.duration_key(t, "shutdown_grace", None, p, line) {
            out.shutdown_grace = d;
        }
        if let Some(d) = self.duration_key(t, "lease", None, p, line) {
            if d < LEASE_RANGE.0 || d > LEASE_RANGE.1 {
                let kline = self.key_line(t, "lease", line);
                self.push(
                    kline,
                    None,
                    Some("serve.lease".into()),
                    format!(
                        "must be between {}s and {}s (how long another host waits before taking over a dead leader's connections)",
                        LEASE_RANGE.0.as_secs(),
                        LEASE_RANGE.1.as_secs()
                    ),
                );
            } else {
                out.lease = d;
            }
        }
        if let Some(item) = t.get("webhooks") {
            let wline = self.key_line(t, "webhooks", line);
            match item {
                Item::ArrayOfTables(a) => {
                    for w in a.iter() {
                        let l = self.line(w.span(), wline);
                        if let Some(h) = self.webhook(w, l) {
                            out.webhooks.push(h);
                        }
                    }
                }
                _ => self.push(
                    wline,
                    None,
                    Some("serve.webhooks".into()),
                    "must be [[serve.webhooks]] tables".into(),
                ),
            }
        }
        out
    }

    fn webhook(&mut self, t: &dyn TableLike, line: usize) -> Option<Webhook> {
        let p = "serve.webhooks.";
        for (key, _) in t.iter() {
            if !WEBHOOK_KEYS.contains(&key) {
                let kline = self.key_line(t, key, line);
                let m = crate::validate::unknown_key_message(
                    "key in [[serve.webhooks]]",
                    key,
                    WEBHOOK_KEYS,
                    "see docs/operations.md",
                );
                self.push(kline, None, Some(format!("{p}{key}")), m);
            }
        }
        let Some(url) = self.secret_key(t, "url", p, line) else {
            self.push(
                line,
                None,
                Some("serve.webhooks.url".into()),
                "every [[serve.webhooks]] needs `url`".into(),
            );
            return None;
        };
        if let SecretRef::Literal(u) = &url {
            if !(u.starts_with("http://") || u.starts_with("https://")) || url::Url::parse(u).is_err() {
                let kline = self.key_line(t, "url", line);
                self.push(
                    kline,
                    None,
                    Some("serve.webhooks.url".into()),
                    "must be an http:// or https:// URL".into(),
                );
            }
        }
        let format = match t.get("format").map(|i| i.as_str()) {
            None | Some(Some("json")) => WebhookFormat::Json,
            Some(Some("slack")) => WebhookFormat::Slack,
            Some(_) => {
                let kline = self.key_line(t, "format", line);
                self.push(
                    kline,
                    None,
                    Some("serve.webhooks.format".into()),
                    "must be \"json\" or \"slack\"".into(),
                );
                WebhookFormat::Json
            }
        };
        let mut events = Vec::new();
        match t.get("events") {
            None => {
                events = vec![
                    WebhookEvent::Blocked,
                    WebhookEvent::Failed,
                    WebhookEvent::Recovered,
                ]
            }
            Some(item) => {
                let kline = self.key_line(t, "events", line);
                let list: Option<Vec<Option<&str>>> =
                    item.as_array().map(|a| a.iter().map(|v| v.as_str()).collect());
                for e in list.unwrap_or_else(|| vec![None]) {
                    match e {
                        Some("blocked") => events.push(WebhookEvent::Blocked),
                        Some("failed") => events.push(WebhookEvent::Failed),
                        Some("recovered") => events.push(WebhookEvent::Recovered),
                        _ => self.push(
                            kline,
                            None,
                            Some("serve.webhooks.events".into()),
                            "must be a list of \"blocked\", \"failed\", \"recovered\"".into(),
                        ),
                    }
                }
            }
        }
        let retries = match t.get("retries") {
            None => 3,
            Some(i) => match i.as_integer() {
                Some(n @ 0..=10) => n as u32,
                _ => {
                    let kline = self.key_line(t, "retries", line);
                    self.push(
                        kline,
                        None,
                        Some("serve.webhooks.retries".into()),
                        "must be a whole number from 0 to 10".into(),
                    );
                    3
                }
            },
        };
        Some(Webhook {
            url,
            format,
            events,
            retries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    const BASE: &str = "[[connections]]\nname = \"a\"\nconnector = \"okta\"\n";

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("15 minutes").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5x").is_err());
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }

    #[test]
    fn schedules_and_serve_section_load() {
        let text = format!(
            "[serve]\nlisten = \"0.0.0.0:9000\"\ntoken = {{ env = \"T\" }}\n[[serve.webhooks]]\nurl = \"http://h/x\"\nformat = \"slack\"\n\n{BASE}every = \"15m\"\njitter = \"1m\"\n\n[[connections]]\nname = \"b\"\nconnector = \"okta\"\nschedule = \"*/5 * * * *\"\n"
        );
        let c = Config::from_str(&text).expect("valid");
        assert_eq!(c.serve.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(
            c.serve.auth,
            Some(ServeAuth::Token(SecretRef::Env { env: "T".into() }))
        );
        assert_eq!(c.serve.webhooks[0].format, WebhookFormat::Slack);
        assert_eq!(c.serve.webhooks[0].events.len(), 3);
        assert_eq!(
            c.serve.schedules["a"].kind,
            ScheduleKind::Every(Duration::from_secs(900))
        );
        assert_eq!(c.serve.schedules["a"].jitter, Duration::from_secs(60));
        assert_eq!(
            c.serve.schedules["b"].kind,
            ScheduleKind::Cron("*/5 * * * *".into())
        );
    }

    #[test]
    fn the_lease_is_read_and_checked() {
        let c = Config::from_str(&format!("[serve]\nlease = \"10s\"\n{BASE}")).expect("valid");
        assert_eq!(c.serve.lease, Duration::from_secs(10));
        assert_eq!(Config::from_str(BASE).expect("valid").serve.lease, DEFAULT_LEASE);
        for bad in ["1s", "2h"] {
            let err = Config::from_str(&format!("[serve]\nlease = \"{bad}\"\n{BASE}"))
                .expect_err("out of range")
                .to_string();
            assert!(
                err.contains("<string>:2: option `serve.lease`: must be between 3s and 600s"),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_values_are_reported_with_lines() {
        let text = format!(
            "[serve]\nlisten = \"nowhere\"\ntokn = \"x\"\n[[serve.webhooks]]\nurl = \"ftp://h\"\nformat = \"xml\"\n\n{BASE}every = \"15 minutes\"\n\n[[connections]]\nname = \"b\"\nconnector = \"okta\"\nschedule = \"61 * * * *\"\n"
        );
        let err = Config::from_str(&text).expect_err("invalid").to_string();
        assert!(err.contains("<string>:2: option `serve.listen`"), "{err}");
        assert!(
            err.contains("<string>:3: option `serve.tokn`: unknown key in [serve]; did you mean `token`?"),
            "{err}"
        );
        assert!(err.contains("<string>:5: option `serve.webhooks.url`"), "{err}");
        assert!(
            err.contains("<string>:6: option `serve.webhooks.format`"),
            "{err}"
        );
        assert!(
            err.contains("<string>:11: connection `a`: option `every`"),
            "{err}"
        );
        assert!(
            err.contains("<string>:16: connection `b`: option `schedule`"),
            "{err}"
        );
    }

    #[test]
    fn every_and_schedule_together_are_refused() {
        let text = format!("{BASE}every = \"15m\"\nschedule = \"* * * * *\"\n");
        let err = Config::from_str(&text).expect_err("invalid").to_string();
        assert!(err.contains("not both"), "{err}");
    }
}
