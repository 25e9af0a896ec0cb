//! The server harness: binds 127.0.0.1 (random or given port), http and optionally https with a
//! generated private CA, drives each connection with hyper (TCP_NODELAY on every socket), applies the
//! fault middleware to the facade's routes and serves the control endpoints under `/_emulator/`.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tower::ServiceExt;

use crate::facade::{json_response, Credentials, EmuContext, Facade, Stats};
use crate::faults::{FaultConfig, Faults, RequestFault};
use crate::gen::GenConfig;
use crate::org::{Org, SharedOrg};
use crate::rate::{InFlight, RateLimiter};
use crate::timefmt::now_unix;
use crate::tokens::TokenIssuer;
use crate::EmulatorError;

/// Per-connection facts put into every request's extensions.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    scheme: &'static str,
    reset: Arc<ResetSignal>,
}

#[derive(Debug, Default)]
struct ResetSignal {
    flag: Arc<AtomicBool>,
    notify: Notify,
}

impl ConnInfo {
    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// Reset the connection (TCP RST) as soon as possible.
    pub fn reset(&self) {
        self.reset.flag.store(true, Ordering::SeqCst);
        self.reset.notify.notify_one();
    }
}

/// Options of [`start`].
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Provider id (`okta`, `entra`, `google`, `keycloak`, `onelogin`).
    pub provider: String,
    /// Generator parameters (the facade adjusts nesting/cycles to the provider).
    pub gen: GenConfig,
    /// A ready organisation instead of generating one.
    pub org: Option<Org>,
    /// http port on 127.0.0.1; 0 = random.
    pub port: u16,
    /// Also serve https (private CA written to `state_dir`).
    pub tls: bool,
    /// https port; 0 = random.
    pub tls_port: u16,
    /// Faults at start.
    pub faults: FaultConfig,
    /// Lifetime of issued access tokens, seconds.
    pub token_ttl_secs: i64,
    /// Directory for the CA and other client files; `None` = a new directory under the system temp dir.
    pub state_dir: Option<PathBuf>,
}

impl EmulatorOptions {
    /// Defaults for a provider: small generated org, random port, http only, no faults, 1 h tokens.
    pub fn new(provider: &str) -> Self {
        Self {
            provider: provider.to_string(),
            gen: GenConfig::default(),
            org: None,
            port: 0,
            tls: false,
            tls_port: 0,
            faults: FaultConfig::default(),
            token_ttl_secs: 3600,
            state_dir: None,
        }
    }
}

/// A running emulator. Dropping it stops serving.
#[derive(Debug)]
pub struct RunningEmulator {
    /// Provider id.
    pub provider: &'static str,
    /// `http://127.0.0.1:<port>`.
    pub http_url: String,
    /// `https://localhost:<port>` when TLS is on.
    pub https_url: Option<String>,
    /// The CA file clients must trust for `https_url`.
    pub ca_path: Option<PathBuf>,
    /// The CA, PEM.
    pub ca_pem: Option<String>,
    /// The shared context (org for mutations, faults, credentials, stats).
    pub ctx: Arc<EmuContext>,
    facade: Arc<dyn Facade>,
    shutdown: watch::Sender<bool>,
    /// The state directory this emulator created itself (none was given): removed on drop.
    owned_state_dir: Option<PathBuf>,
}

impl std::fmt::Debug for dyn Facade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Facade({})", self.id())
    }
}

impl RunningEmulator {
    /// The org, for test mutations (`emu.org().write().await.set_status(...)`).
    pub fn org(&self) -> &SharedOrg {
        &self.ctx.org
    }

    /// The test credentials.
    pub fn credentials(&self) -> &Credentials {
        &self.ctx.creds
    }

    /// Replace the fault configuration.
    pub fn set_faults(&self, cfg: FaultConfig) -> Result<(), EmulatorError> {
        self.ctx.faults.set(cfg)
    }

    /// The base URL clients should use (https when TLS is on).
    pub fn base_url(&self) -> &str {
        self.https_url.as_deref().unwrap_or(&self.http_url)
    }

    /// The one-line JSON description printed by `usersync emulator`.
    pub async fn info(&self) -> serde_json::Value {
        let counts = self.ctx.org.read().await.counts();
        serde_json::json!({
            "provider": self.provider,
            "base_url": self.base_url(),
            "http_url": self.http_url,
            "https_url": self.https_url,
            "ca_path": self.ca_path,
            "control_url": format!("{}/_emulator", self.http_url),
            "state_dir": self.ctx.state_dir,
            "credentials": self.ctx.creds,
            "client": self.facade.client_info(&self.ctx, self.base_url()),
            "org": counts,
        })
    }

    /// Stop serving (also happens on drop).
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(dir) = &self.owned_state_dir {
            // generated keys and the CA live here; a directory the caller named is theirs to keep
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Start an emulator: generate (or take) the org, bind, serve in background tasks.
#[tracing::instrument(name = "emulator.start", skip_all, fields(provider = %opts.provider))]
pub async fn start(opts: EmulatorOptions) -> Result<RunningEmulator, EmulatorError> {
    let facade = crate::providers::facade(&opts.provider)?;
    opts.faults.validate()?;
    let provider = facade.id();
    let org = match opts.org {
        Some(o) => o,
        None => {
            let mut g = opts.gen.clone();
            facade.adjust_gen(&mut g);
            tokio::task::spawn_blocking(move || crate::gen::generate(&g))
                .await
                .map_err(|e| EmulatorError::io("generate org", std::io::Error::other(e)))?
        }
    };
    let seed = org.seed;
    let owned_state_dir = opts.state_dir.is_none();
    let state_dir = match opts.state_dir {
        Some(d) => d,
        None => {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::SeqCst);
            std::env::temp_dir().join(format!("usersync-emulator-{}-{provider}-{n}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&state_dir)
        .map_err(|e| EmulatorError::io(format!("create {}", state_dir.display()), e))?;
    let ctx = Arc::new(EmuContext {
        provider,
        org: org.shared(),
        faults: Faults::new(opts.faults),
        rate: RateLimiter::default(),
        in_flight: InFlight::default(),
        tokens: TokenIssuer::new(opts.token_ttl_secs),
        creds: Credentials::derive(provider, seed),
        stats: Stats::default(),
        state_dir: state_dir.clone(),
        feeds: Default::default(),
    });
    let api = facade
        .router(ctx.clone())?
        .layer(axum::middleware::from_fn_with_state(
            (ctx.clone(), facade.clone()),
            fault_middleware,
        ));
    let app = control_router(ctx.clone()).merge(api);

    let (tx, rx) = watch::channel(false);
    let http = bind(opts.port).await?;
    let http_url = format!("http://127.0.0.1:{}", local_port(&http)?);
    tokio::spawn(accept_loop(http, app.clone(), None, rx.clone()));

    let (mut https_url, mut ca_path, mut ca_pem) = (None, None, None);
    if opts.tls {
        let material = crate::tls::generate()?;
        ca_path = Some(crate::tls::write_ca(&material, &state_dir, provider)?);
        let listener = bind(opts.tls_port).await?;
        https_url = Some(format!("https://localhost:{}", local_port(&listener)?));
        let acceptor = tokio_rustls::TlsAcceptor::from(material.server_config.clone());
        ca_pem = Some(material.ca_pem);
        tokio::spawn(accept_loop(listener, app, Some(acceptor), rx));
    }
    tracing::info!(provider, %http_url, ?https_url, "emulator listening");
    Ok(RunningEmulator {
        provider,
        http_url,
        https_url,
        ca_path,
        ca_pem,
        ctx,
        facade,
        shutdown: tx,
        owned_state_dir: owned_state_dir.then(|| state_dir.clone()),
    })
}

async fn bind(port: u16) -> Result<TcpListener, EmulatorError> {
    TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| EmulatorError::io(format!("bind 127.0.0.1:{port}"), e))
}

fn local_port(l: &TcpListener) -> Result<u16, EmulatorError> {
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| EmulatorError::io("local_addr", e))
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, _) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(serve_connection(stream, app, tls, shutdown));
    }
}

/// A TCP stream that is closed with RST (linger 0) instead of FIN when its reset flag is set.
struct ResetOnDrop {
    inner: TcpStream,
    flag: Arc<AtomicBool>,
}

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        if self.flag.load(Ordering::SeqCst) {
            #[allow(deprecated)]
            let _ = self.inner.set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for ResetOnDrop {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResetOnDrop {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

async fn serve_connection(
    stream: TcpStream,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let signal = Arc::new(ResetSignal::default());
    let io = ResetOnDrop {
        inner: stream,
        flag: signal.flag.clone(),
    };
    let info = ConnInfo {
        scheme: if tls.is_some() { "https" } else { "http" },
        reset: signal.clone(),
    };
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(info.clone());
        app.clone().oneshot(req)
    });
    let builder = hyper::server::conn::http1::Builder::new();
    let serve: Pin<Box<dyn Future<Output = ()> + Send>> = match tls {
        None => {
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(io), svc);
            Box::pin(async move {
                let _ = conn.await;
            })
        }
        Some(acceptor) => Box::pin(async move {
            let Ok(tls_stream) = acceptor.accept(io).await else {
                return;
            };
            let _ = builder
                .serve_connection(hyper_util::rt::TokioIo::new(tls_stream), svc)
                .await;
        }),
    };
    tokio::select! {
        _ = serve => {}
        _ = signal.notify.notified() => {}
        _ = shutdown.changed() => {}
    }
}

type MwState = (Arc<EmuContext>, Arc<dyn Facade>);

async fn fault_middleware(State((ctx, facade)): State<MwState>, req: Request, next: Next) -> Response {
    use std::sync::atomic::Ordering::SeqCst;
    ctx.stats.requests.fetch_add(1, SeqCst);
    ctx.faults.note_arrival(std::time::Instant::now());
    let cfg = ctx.faults.config();
    let (_guard, in_flight) = ctx.in_flight.enter();
    let now = now_unix();
    let bucket = facade.rate_bucket(req.method(), req.uri().path());
    if let Some(limit) = cfg
        .concurrency_limit
        .or_else(|| facade.default_concurrency_limit())
    {
        if in_flight > limit {
            ctx.stats.throttled.fetch_add(1, SeqCst);
            let d = crate::rate::RateDecision {
                allowed: false,
                limit,
                remaining: 0,
                reset_epoch: now + 1,
                retry_after_secs: 1,
            };
            let mut r = facade.throttled(&d, true);
            facade.rate_headers(&d, r.headers_mut());
            return r;
        }
    }
    let latency = ctx.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let decision = bucket.map(|(b, default)| {
        ctx.rate
            .check(&b, cfg.rate_limit_per_minute.unwrap_or(default), now)
    });
    if let Some(d) = decision.filter(|d| !d.allowed) {
        ctx.stats.throttled.fetch_add(1, SeqCst);
        let mut r = facade.throttled(&d, false);
        facade.rate_headers(&d, r.headers_mut());
        return r;
    }
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let fault = ctx.faults.draw_for(&path_and_query);
    let conn = req.extensions().get::<ConnInfo>().cloned();
    let mut resp = match fault {
        RequestFault::ServerError(s) => {
            facade.server_error(StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        }
        RequestFault::Throttle => {
            tracing::debug!(retry_after = cfg.retry_after_secs, "fault: 429");
            ctx.stats.throttled.fetch_add(1, SeqCst);
            let wait = i64::try_from(cfg.retry_after_secs).unwrap_or(i64::MAX);
            let d = crate::rate::RateDecision {
                allowed: false,
                limit: decision.map_or(1, |d| d.limit),
                remaining: 0,
                reset_epoch: now.saturating_add(wait),
                retry_after_secs: wait,
            };
            let mut r = facade.throttled(&d, false);
            facade.rate_headers(&d, r.headers_mut());
            ctx.faults
                .note_throttle(std::time::Instant::now(), cfg.retry_after_secs);
            return r;
        }
        RequestFault::Reset => {
            tracing::debug!("fault: connection reset");
            if let Some(c) = conn {
                c.reset();
            }
            // The connection task drops this future together with the socket.
            std::future::pending::<()>().await;
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        RequestFault::Redirect => {
            let to = cfg
                .redirect_to
                .as_deref()
                .unwrap_or_default()
                .trim_end_matches('/');
            tracing::debug!("fault: redirect to {to}");
            let status = StatusCode::from_u16(cfg.redirect_status).unwrap_or(StatusCode::FOUND);
            return (status, [(header::LOCATION, format!("{to}{path_and_query}"))]).into_response();
        }
        _ => next.run(req).await,
    };
    if let Some(d) = decision {
        facade.rate_headers(&d, resp.headers_mut());
    }
    match fault {
        RequestFault::Truncate => truncate(resp).await,
        RequestFault::Malformed => malformed(resp).await,
        RequestFault::Drip => drip(resp, cfg.drip_chunk_bytes, cfg.drip_pause_ms).await,
        RequestFault::Oversize => oversize(resp, cfg.oversize_bytes).await,
        RequestFault::InvalidUtf8 => {
            let (resp, applied) = invalid_utf8(resp).await;
            if !applied {
                ctx.faults.refund();
            }
            resp
        }
        _ => resp,
    }
}

async fn body_bytes(resp: Response) -> (axum::http::response::Parts, bytes_alias::Bytes) {
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    (parts, bytes)
}

mod bytes_alias {
    pub use axum::body::Bytes;
}

fn set_len(parts: &mut axum::http::response::Parts, len: usize) {
    if let Ok(v) = HeaderValue::from_str(&len.to_string()) {
        parts.headers.insert(axum::http::header::CONTENT_LENGTH, v);
    }
}

async fn truncate(resp: Response) -> Response {
    let (mut parts, bytes) = body_bytes(resp).await;
    let full = bytes.len().max(2);
    set_len(&mut parts, full);
    let half = bytes.slice(..bytes.len() / 2);
    // Headers and the first half go out (flushed), then the connection is cut.
    let stream = futures_util::stream::unfold(Some(half), |state| async move {
        match state {
            Some(half) => Some((Ok::<_, std::io::Error>(half), None)),
            None => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "fault: truncated body",
                    )),
                    None,
                ))
            }
        }
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

async fn malformed(resp: Response) -> Response {
    let (mut parts, bytes) = body_bytes(resp).await;
    let mut broken = bytes[..bytes.len() / 2].to_vec();
    broken.extend_from_slice(b"\"<<malformed ");
    set_len(&mut parts, broken.len());
    Response::from_parts(parts, Body::from(broken))
}

/// What [`invalid_utf8`] inserts: `ü` in Latin-1 (`FC`), the usual way a name turns into invalid
/// UTF-8 (a Latin-1 export or a misconfigured proxy), followed by `FF`, which no UTF-8 text holds.
const INVALID_UTF8: &[u8] = b"\xfc\xff";

/// Keys whose string value is a record's own field (a person's or group's name or id) in some
/// provider's listing, so the damaged string is one a connector reads rather than skips.
const RECORD_KEYS: [&str; 12] = [
    "displayName",
    "name",
    "firstName",
    "firstname",
    "givenName",
    "given_name",
    "login",
    "userName",
    "username",
    "primaryEmail",
    "email",
    "id",
];

/// Where [`invalid_utf8`] puts its bytes: just inside the first string value of a record key
/// (`"name":"` and the like, whitespace allowed after the colon), else inside the first string
/// value of any key; `None` when the body has no string value.
fn first_string_value(body: &[u8]) -> Option<usize> {
    let value_start = |i: usize| {
        // `i` indexes the closing quote of a key
        if body.get(i + 1) != Some(&b':') {
            return None;
        }
        let mut j = i + 2;
        while j < body.len() && body[j].is_ascii_whitespace() {
            j += 1;
        }
        (body.get(j) == Some(&b'"')).then_some(j + 1)
    };
    let record = RECORD_KEYS
        .iter()
        .filter_map(|k| {
            let pat = format!("\"{k}\"");
            body.windows(pat.len())
                .enumerate()
                .filter(|(_, w)| *w == pat.as_bytes())
                .find_map(|(i, _)| value_start(i + pat.len() - 1))
        })
        .min();
    record.or_else(|| (0..body.len()).filter(|&i| body[i] == b'"').find_map(value_start))
}

/// Put [`INVALID_UTF8`] inside a JSON string of a successful JSON answer. Returns whether it did
/// (not for errors, non-JSON bodies such as photos, or JSON without a string such as a count).
async fn invalid_utf8(resp: Response) -> (Response, bool) {
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    if !resp.status().is_success() || !is_json {
        return (resp, false);
    }
    let (mut parts, bytes) = body_bytes(resp).await;
    let mut body = bytes.to_vec();
    let applied = match first_string_value(&body) {
        Some(at) => {
            body.splice(at..at, INVALID_UTF8.iter().copied());
            tracing::debug!(at, "fault: invalid UTF-8 in a JSON string");
            true
        }
        None => false,
    };
    set_len(&mut parts, body.len());
    (Response::from_parts(parts, Body::from(body)), applied)
}

async fn drip(resp: Response, chunk: usize, pause_ms: u64) -> Response {
    let (mut parts, bytes) = body_bytes(resp).await;
    set_len(&mut parts, bytes.len());
    let chunks: Vec<_> = bytes
        .chunks(chunk.max(1))
        .map(axum::body::Bytes::copy_from_slice)
        .collect();
    let stream = futures_util::stream::unfold(chunks.into_iter(), move |mut it| async move {
        let c = it.next()?;
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        Some((Ok::<_, std::io::Error>(c), it))
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// The body followed by whitespace up to `total` bytes, streamed in 64 KiB chunks without a
/// Content-Length (the client can only find the size by reading).
async fn oversize(resp: Response, total: u64) -> Response {
    let (mut parts, bytes) = body_bytes(resp).await;
    parts.headers.remove(header::CONTENT_LENGTH);
    const CHUNK: usize = 64 * 1024;
    let padding = total.saturating_sub(bytes.len() as u64);
    let first = futures_util::stream::once(async move { Ok::<_, std::io::Error>(bytes) });
    let pad = futures_util::stream::unfold(padding, |left| async move {
        if left == 0 {
            return None;
        }
        let n = left.min(CHUNK as u64);
        Some((
            Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b' '; n as usize])),
            left - n,
        ))
    });
    use futures_util::StreamExt as _;
    Response::from_parts(parts, Body::from_stream(first.chain(pad)))
}

fn control_router(ctx: Arc<EmuContext>) -> Router {
    Router::new()
        .route(
            "/_emulator/health",
            get(|State(ctx): State<Arc<EmuContext>>| async move {
                json_response(
                    StatusCode::OK,
                    &serde_json::json!({"provider": ctx.provider, "ok": true}),
                )
            }),
        )
        .route(
            "/_emulator/faults",
            get(|State(ctx): State<Arc<EmuContext>>| async move {
                json_response(StatusCode::OK, &ctx.faults.config())
            })
            .put(
                |State(ctx): State<Arc<EmuContext>>, Json(cfg): Json<FaultConfig>| async move {
                    match ctx.faults.set(cfg) {
                        Ok(()) => json_response(StatusCode::OK, &ctx.faults.config()),
                        Err(e) => json_response(
                            StatusCode::BAD_REQUEST,
                            &serde_json::json!({"error": e.to_string()}),
                        ),
                    }
                },
            ),
        )
        .route(
            "/_emulator/stats",
            get(|State(ctx): State<Arc<EmuContext>>| async move {
                let counts = ctx.org.read().await.counts();
                let mut v = ctx.stats.snapshot();
                v["faults_injected"] = ctx.faults.injected().into();
                v["throttle_faults"] = ctx.faults.throttles().into();
                v["early_retries"] = ctx.faults.early_retries().into();
                v["objects_vanished"] = ctx.faults.vanished().into();
                v["paging_faults_served"] = ctx.faults.paging_served().into();
                v["org"] = serde_json::to_value(counts).unwrap_or_default();
                json_response(StatusCode::OK, &v)
            }),
        )
        .with_state(ctx)
}

#[cfg(test)]
mod fault_body_tests {
    use super::first_string_value;

    #[test]
    fn invalid_utf8_goes_inside_the_first_string_value() {
        let body = br#"{"@odata.context":"https://graph","value":[]}"#;
        let at = first_string_value(body).expect("a string value");
        assert_eq!(&body[at..at + 5], b"https");
        let users = br#"{"kind":"k","users":[{"id":"1","primaryEmail":"a@b"},{"id":"2"}]}"#;
        let at = first_string_value(users).expect("a record value");
        assert_eq!(&users[at..at + 4], b"1\",\"", "the first record key's value");
        let nested = br#"{"status":{"type":"success"},"data":[{"id":7,"firstname":"Ann"}]}"#;
        let at = first_string_value(nested).expect("a record value");
        assert_eq!(&nested[at..at + 3], b"Ann", "numeric ids are skipped");
        let pretty = b"[ {\n  \"id\" :  \"00u1\" } ]";
        // `"id" :` has a space before the colon: not a key/value this scanner recognises
        assert_eq!(first_string_value(pretty), None);
        let spaced = b"[{\"id\":  \"00u1\"}]";
        let at = first_string_value(spaced).expect("a string value");
        assert_eq!(&spaced[at..at + 4], b"00u1");
        assert_eq!(first_string_value(b"[]"), None);
        assert_eq!(first_string_value(br#"{"n":1,"m":true}"#), None);
    }
}
