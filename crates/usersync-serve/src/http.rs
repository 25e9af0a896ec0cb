//! The HTTP listener: `/healthz` (no auth), and behind auth `/readyz`, `/metrics`, the status
//! page, the JSON API, and the approve / run-now POSTs (CSRF token required). Plain HTTP or
//! HTTPS (rustls) on hand-driven hyper connections.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;
use usersync_store::{RunRecord, RunStatus};

use crate::service::{JobState, Refused, ReloadNote, Service, TargetState};
use crate::target::target_of;
use crate::{Credentials, ServeError};

/// Failed logins allowed per client address per window before answers turn to 429.
pub const LOGIN_FAILURES_ALLOWED: u32 = 10;
/// The window of [`LOGIN_FAILURES_ALLOWED`].
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Runs listed per connection.
pub const RUNS_SHOWN: usize = 5;
/// Plan entries shown for a blocked run on the status page (the run page shows all recorded).
pub const PLAN_SHOWN: usize = 50;

#[derive(Clone)]
struct AppState {
    svc: Arc<Service>,
    failures: Arc<Mutex<HashMap<IpAddr, (Instant, u32)>>>,
}

/// The router (exposed for tests).
pub fn router(svc: Arc<Service>) -> Router {
    let state = AppState {
        svc,
        failures: Arc::new(Mutex::new(HashMap::new())),
    };
    let protected = Router::new()
        .route("/", get(index))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/runs/{id}", get(run_page))
        .route("/runs/{id}/approve", post(approve_form))
        .route("/connections/{name}/run", post(run_now_form))
        .route("/api/status", get(api_status))
        .route("/api/csrf", get(api_csrf))
        .route("/api/runs/{id}", get(api_run))
        .route("/api/runs/{id}/approve", post(approve_api))
        .route("/api/connections/{name}/run", post(run_now_api))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(protected)
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    res
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Whether the request carries the configured credentials.
fn authorized(headers: &HeaderMap, creds: &Credentials) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if let Some(token) = value.strip_prefix("Bearer ") {
        return match creds {
            Credentials::Token(t) => ct_eq(token.trim(), t.expose()),
            Credentials::Basic { .. } => false,
        };
    }
    let Some(b64) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    let Ok(pair) = String::from_utf8(raw) else {
        return false;
    };
    let (user, pass) = pair.split_once(':').unwrap_or((pair.as_str(), ""));
    match creds {
        Credentials::Token(t) => ct_eq(pass, t.expose()),
        Credentials::Basic { username, password } => {
            // both compared, always
            let u = ct_eq(user, username);
            let p = ct_eq(pass, password.expose());
            u & p
        }
    }
}

async fn auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let now = Instant::now();
    {
        let mut f = st.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.retain(|_, (since, _)| now.duration_since(*since) < LOGIN_WINDOW);
        if let Some((since, n)) = f.get(&ip) {
            if *n >= LOGIN_FAILURES_ALLOWED {
                let wait = LOGIN_WINDOW
                    .saturating_sub(now.duration_since(*since))
                    .as_secs()
                    .max(1);
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, wait.to_string())],
                    "too many failed logins from this address: try again later\n",
                )
                    .into_response();
            }
        }
    }
    let creds = st.svc.settings().credentials;
    if authorized(req.headers(), &creds) {
        return next.run(req).await;
    }
    if req.headers().contains_key(header::AUTHORIZATION) {
        let mut f = st.failures.lock().unwrap_or_else(|p| p.into_inner());
        let e = f.entry(ip).or_insert((now, 0));
        e.1 += 1;
        tracing::warn!(client = %ip, "refused credentials");
    }
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"usersync\", charset=\"UTF-8\"",
        )],
        "authentication required\n",
    )
        .into_response()
}

async fn readyz(State(st): State<AppState>) -> Response {
    let svc = st.svc.clone();
    match tokio::task::spawn_blocking(move || svc.ready()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")).into_response(),
    }
}

/// OpenMetrics when the scraper asks for it (Prometheus does), else the Prometheus text format.
async fn metrics(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let open = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    if open {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            st.svc.metrics.encode(),
        )
            .into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            st.svc.metrics.encode_text(),
        )
            .into_response()
    }
}

/// A blocked run's plan, as shown: what it would remove and why the gate stopped it.
#[derive(Debug, Clone, Serialize)]
pub struct BlockedPlan {
    /// The run.
    pub run_id: i64,
    /// Deactivations + deletions (what approving allows).
    pub removals: u64,
    /// The gate's message and the run's other errors.
    pub reasons: Vec<String>,
    /// The removals recorded in the plan: action, username, why.
    pub removed: Vec<PlanEntry>,
}

/// One user entry of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanEntry {
    /// `deactivated` or `deleted` (or another action on the run page).
    pub action: String,
    /// Username.
    pub username: String,
    /// Why.
    pub reason: Option<String>,
}

/// A connection as the page and the API show it.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionView {
    /// Scheduler state.
    #[serde(flatten)]
    pub state: JobState,
    /// The latest runs, newest first.
    pub runs: Vec<RunRecord>,
    /// The plan of the latest run when it is blocked.
    pub blocked: Option<BlockedPlan>,
}

/// A target as the page and the API show it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetView {
    /// What its pushes did.
    #[serde(flatten)]
    pub state: TargetState,
    /// The latest pushes (`push:<name>` in run history), newest first.
    pub runs: Vec<RunRecord>,
    /// The plan of the latest push when its gate blocked it.
    pub blocked: Option<BlockedPlan>,
}

/// `GET /api/status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    /// Connections in config order.
    pub connections: Vec<ConnectionView>,
    /// Targets in config order.
    pub targets: Vec<TargetView>,
    /// The last config reload.
    pub reload: Option<ReloadNote>,
    /// SIGTERM received.
    pub stopping: bool,
    /// A store read error, in words.
    pub store_error: Option<String>,
}

/// A push plan's user steps as plan entries (the user is named by its source key).
fn push_entries(steps: &[serde_json::Value], only_removals: bool, limit: usize) -> Vec<PlanEntry> {
    steps
        .iter()
        .filter_map(|st| {
            let action = match st.get("step")?.as_str()? {
                "create_user" => "created",
                "update_user" => "updated",
                "deactivate_user" => "deactivated",
                "delete_user" => "deleted",
                _ => return None,
            };
            if only_removals && action != "deactivated" && action != "deleted" {
                return None;
            }
            let user = st.get("user_name").or_else(|| st.get("key"))?.as_str()?;
            Some(PlanEntry {
                action: action.to_string(),
                username: user.to_string(),
                reason: st.get("reason").and_then(|r| r.as_str()).map(str::to_string),
            })
        })
        .take(limit)
        .collect()
}

/// The user entries of a recorded plan (a sync's `users`, a push's `steps`), optionally only
/// removals.
pub fn plan_entries(plan: &serde_json::Value, only_removals: bool, limit: usize) -> Vec<PlanEntry> {
    if let Some(steps) = plan.get("steps").and_then(|s| s.as_array()) {
        return push_entries(steps, only_removals, limit);
    }
    plan.get("users")
        .and_then(|u| u.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|u| {
                    let action = u.get("action")?.as_str()?.to_string();
                    if only_removals && action != "deactivated" && action != "deleted" {
                        return None;
                    }
                    Some(PlanEntry {
                        action,
                        username: u.get("username")?.as_str()?.to_string(),
                        reason: u.get("reason").and_then(|r| r.as_str()).map(str::to_string),
                    })
                })
                .take(limit)
                .collect()
        })
        .unwrap_or_default()
}

/// The plan of the latest of `runs` (newest first) when a gate blocked it.
fn blocked_plan(store: &dyn usersync_store::Store, runs: &[RunRecord]) -> Option<BlockedPlan> {
    let latest = runs.first().filter(|r| r.status == RunStatus::Blocked)?;
    let full = store.run(latest.id).ok()??;
    Some(BlockedPlan {
        run_id: full.id,
        removals: crate::service::removals(&full.counts),
        reasons: full.errors.clone(),
        removed: plan_entries(&full.plan, true, PLAN_SHOWN),
    })
}

fn status_view(svc: &Service) -> StatusView {
    let states = svc.states();
    let mut store_error = None;
    let store = match svc.jobs.store() {
        Ok(s) => Some(s),
        Err(e) => {
            store_error = Some(e);
            None
        }
    };
    let mut connections = Vec::new();
    for state in states {
        let mut runs = Vec::new();
        let mut blocked = None;
        if let Some(store) = &store {
            match store.runs(Some(&state.name), RUNS_SHOWN) {
                Ok(r) => runs = r,
                Err(e) => store_error = Some(e.to_string()),
            }
            blocked = blocked_plan(&**store, &runs);
        }
        connections.push(ConnectionView { state, runs, blocked });
    }
    let mut targets = Vec::new();
    for state in svc.targets() {
        let mut runs = Vec::new();
        let mut blocked = None;
        if let Some(store) = &store {
            match store.runs(Some(&crate::target::push_job(&state.name)), RUNS_SHOWN) {
                Ok(r) => runs = r,
                Err(e) => store_error = Some(e.to_string()),
            }
            blocked = blocked_plan(&**store, &runs);
        }
        targets.push(TargetView { state, runs, blocked });
    }
    StatusView {
        connections,
        targets,
        reload: svc.reload_note(),
        stopping: svc.stopping(),
        store_error,
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Response> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {e}\n"),
        )
            .into_response()
    })
}

async fn index(State(st): State<AppState>) -> Response {
    let svc = st.svc.clone();
    match blocking(move || status_view(&svc)).await {
        Ok(view) => Html(crate::page::index(&view, &st.svc.csrf).into_string()).into_response(),
        Err(r) => r,
    }
}

async fn api_status(State(st): State<AppState>) -> Response {
    let svc = st.svc.clone();
    match blocking(move || status_view(&svc)).await {
        Ok(view) => Json(view).into_response(),
        Err(r) => r,
    }
}

async fn api_csrf(State(st): State<AppState>) -> Response {
    Json(serde_json::json!({ "csrf": st.svc.csrf })).into_response()
}

fn read_run(svc: &Service, id: i64) -> Result<Option<RunRecord>, String> {
    let store = svc.jobs.store()?;
    store.run(id).map_err(|e| e.to_string())
}

async fn run_page(State(st): State<AppState>, Path(id): Path<i64>) -> Response {
    let svc = st.svc.clone();
    match blocking(move || read_run(&svc, id)).await {
        Ok(Ok(Some(run))) => Html(crate::page::run(&run, &st.svc.csrf).into_string()).into_response(),
        Ok(Ok(None)) => (
            StatusCode::NOT_FOUND,
            Html(crate::page::message("Not found", &format!("There is no run {id}.")).into_string()),
        )
            .into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot read the store: {e}\n"),
        )
            .into_response(),
        Err(r) => r,
    }
}

async fn api_run(State(st): State<AppState>, Path(id): Path<i64>) -> Response {
    let svc = st.svc.clone();
    match blocking(move || read_run(&svc, id)).await {
        Ok(Ok(Some(run))) => Json(run).into_response(),
        Ok(Ok(None)) => error_json(StatusCode::NOT_FOUND, &format!("there is no run {id}")),
        Ok(Err(e)) => error_json(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("cannot read the store: {e}"),
        ),
        Err(r) => r,
    }
}

fn error_json(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// The form of the POSTs.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    /// The page's CSRF token.
    #[serde(default)]
    pub csrf: String,
}

/// The CSRF check: the token from the page (form field or `X-CSRF-Token`), and, when the
/// browser says where the request comes from, the same origin.
fn csrf_ok(svc: &Service, headers: &HeaderMap, form_token: &str) -> Result<(), String> {
    let header_token = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token = if form_token.is_empty() {
        header_token
    } else {
        form_token
    };
    if token.is_empty() || !ct_eq(token, &svc.csrf) {
        return Err("missing or wrong CSRF token: reload the status page and try again".into());
    }
    if let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
        if origin != "null" && origin_host != host {
            return Err(format!("cross-origin request refused (Origin {origin})"));
        }
    }
    Ok(())
}

fn refused_status(r: &Refused) -> StatusCode {
    match r {
        Refused::Unknown(_) | Refused::UnknownTarget(_) | Refused::NoRun(_) => StatusCode::NOT_FOUND,
        Refused::NotBlocked(_) | Refused::Busy(_) => StatusCode::CONFLICT,
        Refused::Stopping | Refused::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

enum Action {
    Approve(i64),
    RunNow(String),
}

async fn act(svc: &Arc<Service>, action: Action) -> Result<String, (StatusCode, String)> {
    let s = svc.clone();
    let res = tokio::task::spawn_blocking(move || match action {
        Action::Approve(id) => s.approve(id).map(|(conn, n)| match target_of(&conn) {
            Some(target) => format!(
                "run {id} of `{conn}` approved: target `{target}` is pushed again now, allowing up to {n} removals (a plan with more blocks again)"
            ),
            None => format!(
                "run {id} of `{conn}` approved: `{conn}` runs again now, allowing up to {n} removals (a plan with more blocks again)"
            ),
        }),
        Action::RunNow(name) => s.run_now(&name).map(|()| format!("`{name}` runs now")),
    })
    .await
    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("internal error: {e}")))?;
    res.map_err(|r| (refused_status(&r), r.to_string()))
}

fn form_reply(res: Result<String, (StatusCode, String)>) -> Response {
    match res {
        Ok(m) => Html(crate::page::message("Done", &m).into_string()).into_response(),
        Err((status, m)) => (status, Html(crate::page::message("Refused", &m).into_string())).into_response(),
    }
}

fn api_reply(res: Result<String, (StatusCode, String)>) -> Response {
    match res {
        Ok(m) => (StatusCode::ACCEPTED, Json(serde_json::json!({ "ok": m }))).into_response(),
        Err((status, m)) => error_json(status, &m),
    }
}

async fn approve_form(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let token = form.map(|f| f.0.csrf).unwrap_or_default();
    if let Err(m) = csrf_ok(&st.svc, &headers, &token) {
        return form_reply(Err((StatusCode::FORBIDDEN, m)));
    }
    form_reply(act(&st.svc, Action::Approve(id)).await)
}

async fn run_now_form(
    State(st): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let token = form.map(|f| f.0.csrf).unwrap_or_default();
    if let Err(m) = csrf_ok(&st.svc, &headers, &token) {
        return form_reply(Err((StatusCode::FORBIDDEN, m)));
    }
    form_reply(act(&st.svc, Action::RunNow(name)).await)
}

async fn approve_api(State(st): State<AppState>, Path(id): Path<i64>, headers: HeaderMap) -> Response {
    if let Err(m) = csrf_ok(&st.svc, &headers, "") {
        return error_json(StatusCode::FORBIDDEN, &m);
    }
    api_reply(act(&st.svc, Action::Approve(id)).await)
}

async fn run_now_api(State(st): State<AppState>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    if let Err(m) = csrf_ok(&st.svc, &headers, "") {
        return error_json(StatusCode::FORBIDDEN, &m);
    }
    api_reply(act(&st.svc, Action::RunNow(name)).await)
}

/// Bind the listen address (before anything else starts, so a taken port fails at once).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr).await.map_err(|source| ServeError::Bind {
        addr: addr.to_string(),
        source,
    })
}

/// Serve `router` on `listener` (HTTPS with `tls`) until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let router = router.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(req)
            });
            let builder = hyper::server::conn::http1::Builder::new();
            match tls {
                None => {
                    let _ = builder
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                }
                Some(acceptor) => {
                    let Ok(tls_stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = builder
                        .serve_connection(hyper_util::rt::TokioIo::new(tls_stream), svc)
                        .await;
                }
            }
        });
    }
}
