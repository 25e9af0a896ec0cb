//! Webhook notifications on blocked, failed and recovered runs: usersync's JSON event, or a
//! Slack-compatible `{"text": ...}`, POSTed with retries (5xx, 429, network errors) in the
//! background so a slow receiver never holds a run up. URLs are secrets: never logged.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use usersync_config::serve::{Webhook, WebhookEvent, WebhookFormat};
use usersync_config::Secret;
use usersync_sync::RunReport;

use crate::Settings;

/// The first retry delay; it doubles with each retry.
pub const RETRY_BASE: Duration = Duration::from_millis(500);

/// One notification (the JSON body of a `json` webhook).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `blocked`, `failed` or `recovered`.
    pub event: &'static str,
    /// Connection name (for a push: the connection whose run the push followed).
    pub connection: String,
    /// The target, when the event is about a push (`push:<target>` in run history).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The run.
    pub run_id: Option<i64>,
    /// The run's status.
    pub status: &'static str,
    /// Deactivations + deletions of the run's plan.
    pub removals: u64,
    /// The run's errors and gate messages, one line each.
    pub errors: Vec<String>,
    #[serde(skip)]
    kind: Option<WebhookEvent>,
}

impl Event {
    /// The event for a finished run.
    pub fn new(kind: WebhookEvent, r: &RunReport) -> Event {
        Event {
            event: kind.as_str(),
            connection: r.connection.clone(),
            target: None,
            run_id: r.run_id,
            status: r.status.as_str(),
            removals: r.users.deactivated + r.users.deleted,
            errors: r.errors.clone(),
            kind: Some(kind),
        }
    }

    /// The event for a push of a target that followed a run of `connection`.
    pub fn push(kind: WebhookEvent, connection: &str, p: &crate::PushResult) -> Event {
        Event {
            event: kind.as_str(),
            connection: connection.to_string(),
            target: Some(p.target.clone()),
            run_id: p.run_id,
            status: p.status.as_str(),
            removals: p.removals,
            errors: p.errors.clone(),
            kind: Some(kind),
        }
    }

    /// The one-line text of a Slack message.
    pub fn text(&self) -> String {
        let run = self.run_id.map(|i| format!(" (run {i})")).unwrap_or_default();
        let first = self.errors.first().map(|e| format!(": {e}")).unwrap_or_default();
        let what = match &self.target {
            Some(t) => format!("the push of target `{t}`"),
            None => format!("`{}`", self.connection),
        };
        match self.event {
            "blocked" => format!(
                "usersync: {what}{run} was blocked by a safety gate ({} removals wait for approval){first}",
                self.removals
            ),
            "failed" => format!("usersync: {what}{run} failed{first}"),
            _ => format!("usersync: {what}{run} recovered ({})", self.status),
        }
    }

    fn body(&self, format: WebhookFormat) -> serde_json::Value {
        match format {
            WebhookFormat::Json => serde_json::to_value(self).unwrap_or_default(),
            WebhookFormat::Slack => serde_json::json!({ "text": self.text() }),
        }
    }
}

/// Sends events to the configured webhooks.
pub struct Notifier {
    hooks: Mutex<Arc<Vec<(Webhook, Secret)>>>,
    client: reqwest::Client,
}

impl Notifier {
    /// A notifier for the settings' webhooks.
    pub fn new(settings: &Settings) -> Notifier {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        let n = Notifier {
            hooks: Mutex::new(Arc::new(Vec::new())),
            client,
        };
        n.update(settings);
        n
    }

    /// Use the webhooks of new settings.
    pub fn update(&self, settings: &Settings) {
        let hooks: Vec<(Webhook, Secret)> = settings
            .serve
            .webhooks
            .iter()
            .cloned()
            .zip(settings.webhook_urls.iter().cloned())
            .collect();
        *self.hooks.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(hooks);
    }

    /// Send `event` to every webhook that wants it, in the background.
    pub fn send(&self, event: Event) {
        let hooks = self.hooks.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (i, (hook, url)) in hooks.iter().enumerate() {
            if event.kind.is_some_and(|k| !hook.events.contains(&k)) {
                continue;
            }
            let body = event.body(hook.format);
            let client = self.client.clone();
            let url = url.clone();
            let retries = hook.retries;
            let name = event.connection.clone();
            let what = event.event;
            tokio::spawn(async move {
                match deliver(&client, &url, &body, retries).await {
                    Ok(()) => {
                        tracing::info!(webhook = i, connection = name, event = what, "webhook delivered")
                    }
                    Err(e) => tracing::warn!(
                        webhook = i,
                        connection = name,
                        event = what,
                        "webhook not delivered: {e}"
                    ),
                }
            });
        }
    }
}

/// POST `body`, retrying 5xx, 429 and network errors up to `retries` times.
pub async fn deliver(
    client: &reqwest::Client,
    url: &Secret,
    body: &serde_json::Value,
    retries: u32,
) -> Result<(), String> {
    let mut delay = RETRY_BASE;
    let mut attempt = 0;
    loop {
        let res = client.post(url.expose()).json(body).send().await;
        let retry = match &res {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                format!("HTTP {}", r.status())
            }
            Ok(r) => return Err(format!("HTTP {} (not retried)", r.status())),
            // reqwest's error names the URL: say only what kind of failure it was
            Err(e) if e.is_timeout() => "timed out".to_string(),
            Err(e) if e.is_connect() => "cannot connect".to_string(),
            Err(_) => "request failed".to_string(),
        };
        if attempt >= retries {
            return Err(format!("{retry}, after {} attempts", attempt + 1));
        }
        attempt += 1;
        tracing::debug!(attempt, "webhook: {retry}; retrying in {delay:?}");
        tokio::time::sleep(delay).await;
        delay = delay.saturating_mul(2);
    }
}
