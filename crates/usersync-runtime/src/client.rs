//! [`ConnectionClient`]: the executor of one connection.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;
use tracing::Instrument as _;
use usersync_config::Secret;
use usersync_model::Record;
use usersync_sdk::{
    Batch, Connector, ConnectorError, HttpRequest, HttpResponse, Manifest, Options, Query, Session,
};

use crate::auth::{Applied, Authenticator, Scrubber, TokenHttp, TokenInfo};
use crate::counters::{BudgetSnapshot, Counters, RunCounters};
use crate::error::RuntimeError;
use crate::retry::{self, Pacer};
use crate::settings::ConnectionSettings;
use crate::transport::{self, redact_url};

/// Everything one query returned, after paging to the end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryOutput {
    /// Records of every page, in order.
    pub records: Vec<Record>,
    /// Objects seen and deliberately skipped, by kind (summed over pages).
    pub skipped: BTreeMap<String, u64>,
    /// Pages read (of the final, complete pass).
    pub pages: u64,
    /// Times the listing restarted from page one after its paging cursor expired.
    pub restarts: u32,
}

impl QueryOutput {
    /// Count a page; its records go to `sink`.
    fn add(&mut self, batch: Batch, sink: &mut PageSink<'_>) -> usize {
        let n = batch.records.len();
        sink(Page::Records(batch.records));
        for (k, n) in batch.skipped {
            *self.skipped.entry(k).or_insert(0) += n;
        }
        self.pages += 1;
        n
    }
}

/// What [`ConnectionClient::run_query_into`] hands its consumer as the query runs.
#[derive(Debug)]
pub enum Page {
    /// The records of the next page, in the provider's order.
    Records(Vec<Record>),
    /// The paging cursor expired and the listing starts again from page one: forget every
    /// record handed over so far for this query.
    Restart,
}

/// The consumer of a query's pages (see [`Page`]).
pub type PageSink<'a> = dyn FnMut(Page) + Send + 'a;

struct Inner {
    name: String,
    manifest: Manifest,
    session: Arc<dyn Session>,
    http: reqwest::Client,
    auth: Authenticator,
    token_http: TokenHttp,
    limiter: Semaphore,
    concurrency: u32,
    pacer: Pacer,
    counters: Arc<Counters>,
    settings: ConnectionSettings,
    scrubber: Scrubber,
    /// When the run's time limit (`settings.max_run`) ends.
    deadline: Option<tokio::time::Instant>,
    /// Set at the first proof that the credential is refused: later requests are not sent.
    halted: std::sync::OnceLock<String>,
}

/// The runtime of one connection: session, HTTP client, authentication and token cache,
/// concurrency limit, rate-limit pacing and counters. Cheap to clone (shared state); use one per
/// connection for a whole run so tokens and budgets are shared.
#[derive(Clone)]
pub struct ConnectionClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ConnectionClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionClient")
            .field("name", &self.inner.name)
            .field("connector", &self.inner.manifest.id)
            .finish_non_exhaustive()
    }
}

impl ConnectionClient {
    /// Open a connection: the connector validates `options` into a session, the auth plan's
    /// secrets are checked and keys parsed, and the HTTP client is built (proxy, CA bundle,
    /// timeouts). No network I/O happens here.
    ///
    /// `secrets` maps secret option names to their resolved values (see
    /// `usersync_config::SecretRef::resolve`).
    pub fn new(
        name: &str,
        connector: Arc<dyn Connector>,
        options: Options,
        secrets: BTreeMap<String, Secret>,
        settings: ConnectionSettings,
    ) -> Result<Self, RuntimeError> {
        let manifest = connector.manifest();
        let session: Arc<dyn Session> =
            connector
                .open(&options)
                .map(Arc::from)
                .map_err(|source| RuntimeError::Connector {
                    context: format!("connection `{name}` ({})", manifest.id),
                    source,
                })?;
        let plan = session.auth_plan();
        if let Some(t) = plan.token_url() {
            transport::check_url_allowed(t)?;
        }
        for base in session.base_urls() {
            transport::check_url_allowed(&base)?;
        }
        let scrubber = Scrubber::new(&secrets);
        let http = transport::http_client(&settings)?;
        let via_proxy = plan
            .token_url()
            .and_then(|t| url::Url::parse(t).ok())
            .is_some_and(|u| transport::proxy_for(&settings, &u).is_some());
        let counters = Arc::new(Counters::default());
        let auth = Authenticator::new(
            name,
            plan,
            secrets,
            settings.credential_file.clone(),
            scrubber.clone(),
            session.clone(),
        )?;
        let concurrency = settings
            .concurrency
            .unwrap_or(manifest.default_concurrency)
            .max(1);
        Ok(ConnectionClient {
            inner: Arc::new(Inner {
                name: name.to_string(),
                token_http: TokenHttp {
                    client: http.clone(),
                    counters: counters.clone(),
                    policy: settings.retry.clone(),
                    via_proxy,
                    max_response_bytes: settings.max_response_bytes,
                },
                manifest,
                session,
                http,
                auth,
                limiter: Semaphore::new(concurrency as usize),
                concurrency,
                pacer: Pacer::default(),
                counters,
                deadline: settings.max_run.map(|d| tokio::time::Instant::now() + d),
                halted: std::sync::OnceLock::new(),
                settings,
                scrubber,
            }),
        })
    }

    /// The connection's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The connector's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// The connector session.
    pub fn session(&self) -> &dyn Session {
        self.inner.session.as_ref()
    }

    /// The settings in use.
    pub fn settings(&self) -> &ConnectionSettings {
        &self.inner.settings
    }

    /// Requests allowed in flight at once.
    pub fn concurrency(&self) -> u32 {
        self.inner.concurrency
    }

    /// Counters since the client was created.
    pub fn counters(&self) -> RunCounters {
        self.inner.counters.snapshot()
    }

    /// Request a token now (replacing any cached one). `Ok(None)` for flows without a token
    /// endpoint (API tokens). Used by `doctor`.
    pub async fn fetch_token(&self) -> Result<Option<TokenInfo>, RuntimeError> {
        self.inner.auth.fetch_token(&self.inner.token_http).await
    }

    fn context(&self, q: &Query) -> String {
        format!(
            "connection `{}` ({}), {}",
            self.inner.name,
            self.inner.manifest.id,
            q.operation()
        )
    }

    /// Drive one query's cursor to the end and return every record.
    ///
    /// Per request: authentication (token cache, early refresh; a 401 triggers exactly one
    /// refresh and one retry), retries of 429/502/503/504, resets and timeouts with full-jitter
    /// backoff bounded in attempts and total time, provider throttle headers, pacing when the
    /// budget runs low, and the connection's concurrency limit. Per query: connector-classified
    /// throttling (e.g. Google 403 `rateLimitExceeded`) is retried the same way; an expired
    /// paging cursor restarts the listing (pages read so far are discarded); a repeated request
    /// or more pages than `max_pages` stop the query with a protocol error.
    pub async fn run_query(&self, q: &Query) -> Result<QueryOutput, RuntimeError> {
        self.collect(q, None).await
    }

    /// [`Self::run_query`], handing each page's records to `sink` as soon as the page is read
    /// instead of collecting them (the returned output has no records): a consumer that turns
    /// them into its own compact form never holds a query's records twice. On an error the
    /// pages already handed over are the consumer's to discard.
    pub async fn run_query_into(
        &self,
        q: &Query,
        sink: &mut PageSink<'_>,
    ) -> Result<QueryOutput, RuntimeError> {
        self.within_deadline(Some(q), self.drive(q, None, sink)).await
    }

    /// Read only the first page of a query (for `doctor`'s minimal calls).
    pub async fn first_page(&self, q: &Query) -> Result<QueryOutput, RuntimeError> {
        self.collect(q, Some(1)).await
    }

    /// Drive a query, collecting its records.
    async fn collect(&self, q: &Query, page_limit: Option<u64>) -> Result<QueryOutput, RuntimeError> {
        let mut records = Vec::new();
        let mut sink = |page: Page| match page {
            Page::Records(r) => records.extend(r),
            Page::Restart => records.clear(),
        };
        let out = self
            .within_deadline(Some(q), self.drive(q, page_limit, &mut sink))
            .await?;
        Ok(QueryOutput { records, ..out })
    }

    /// Run `work` unless the run's time limit (`max_run`) ends first; waits (pacing, backoff,
    /// a dripping body) count too, so nothing keeps a run busy past the limit.
    async fn within_deadline<T>(
        &self,
        q: Option<&Query>,
        work: impl std::future::Future<Output = Result<T, RuntimeError>>,
    ) -> Result<T, RuntimeError> {
        let inner = &self.inner;
        let (Some(deadline), Some(limit)) = (inner.deadline, inner.settings.max_run) else {
            return work.await;
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(r) => r,
            Err(_) => {
                Counters::add(&inner.counters.deadline_hits, 1);
                Err(RuntimeError::RunDeadline {
                    connection: inner.name.clone(),
                    limit,
                    during: q.map(|q| q.operation().to_string()),
                })
            }
        }
    }

    /// Run several queries concurrently (bounded by the connection's concurrency limit);
    /// results in the order of `queries`.
    pub async fn run_all(&self, queries: Vec<Query>) -> Vec<Result<QueryOutput, RuntimeError>> {
        let mut set = tokio::task::JoinSet::new();
        let n = queries.len();
        for (i, q) in queries.into_iter().enumerate() {
            let me = self.clone();
            set.spawn(async move { (i, me.run_query(&q).await) });
        }
        let mut out: Vec<Option<Result<QueryOutput, RuntimeError>>> = (0..n).map(|_| None).collect();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((i, r)) => out[i] = Some(r),
                Err(e) => tracing::error!(connection = %self.inner.name, "query task failed: {e}"),
            }
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(RuntimeError::Connector {
                        context: format!("connection `{}`", self.inner.name),
                        source: ConnectorError::Plugin {
                            detail: "the query task panicked".into(),
                        },
                    })
                })
            })
            .collect()
    }

    async fn drive(
        &self,
        q: &Query,
        page_limit: Option<u64>,
        sink: &mut PageSink<'_>,
    ) -> Result<QueryOutput, RuntimeError> {
        let inner = &self.inner;
        let span = tracing::info_span!(
            "query",
            connection = %inner.name,
            connector = %inner.manifest.id,
            op = %q.operation(),
            pages = tracing::field::Empty,
            records = tracing::field::Empty,
            restarts = tracing::field::Empty,
        );
        async {
            let ctx = || self.context(q);
            let mut restarts = 0u32;
            let mut records = 0usize;
            'listing: loop {
                let mut cursor = inner.session.query(q).map_err(|source| RuntimeError::Connector {
                    context: ctx(),
                    source,
                })?;
                let mut out = QueryOutput {
                    restarts,
                    ..QueryOutput::default()
                };
                let mut done: HashSet<String> = HashSet::new();
                let mut page_retry: Option<PageRetry> = None;
                loop {
                    if page_limit.is_some_and(|l| out.pages >= l) {
                        break 'listing Ok(out);
                    }
                    let Some(req) = cursor.next_request() else {
                        let span = tracing::Span::current();
                        span.record("pages", out.pages);
                        span.record("records", records);
                        span.record("restarts", restarts);
                        break 'listing Ok(out);
                    };
                    let key = request_key(&req);
                    if done.contains(&key) {
                        return Err(RuntimeError::Connector {
                            context: ctx(),
                            source: ConnectorError::protocol(format!(
                                "paging loop: `{}` was already fetched in this listing",
                                redact_url(&req.url)
                            )),
                        });
                    }
                    if out.pages >= inner.settings.max_pages {
                        return Err(RuntimeError::Connector {
                            context: ctx(),
                            source: ConnectorError::protocol(format!(
                                "paging stopped after {} pages (the bound); the provider keeps returning next pages",
                                out.pages
                            )),
                        });
                    }
                    let (resp, sent) = self.send_tracked(&req).await?;
                    match cursor.on_response(resp) {
                        Ok(batch) => {
                            Counters::add(&inner.counters.pages, 1);
                            records += out.add(batch, sink);
                            done.insert(key);
                            page_retry = None;
                        }
                        Err(ConnectorError::CursorExpired { detail }) => {
                            restarts += 1;
                            Counters::add(&inner.counters.listing_restarts, 1);
                            if restarts > inner.settings.max_listing_restarts {
                                return Err(RuntimeError::Connector {
                                    context: ctx(),
                                    source: ConnectorError::CursorExpired {
                                        detail: format!("{detail} (gave up after {} restarts)", restarts - 1),
                                    },
                                });
                            }
                            tracing::warn!(restarts, "paging cursor expired; restarting the listing from page one");
                            sink(Page::Restart);
                            records = 0;
                            continue 'listing;
                        }
                        Err(e) if e.is_retryable() => {
                            let policy = &inner.settings.retry;
                            let pr = match &mut page_retry {
                                Some(pr) if pr.key == key => pr,
                                slot => slot.insert(PageRetry::new(key.clone())),
                            };
                            let last = || inner.scrubber.scrub(&e.to_string());
                            if let ConnectorError::RateLimited { retry_after_ms, .. } = &e {
                                // throttling the connector recognised (e.g. Google's 403
                                // `userRateLimitExceeded`, which has no Retry-After): pause the
                                // whole bucket with backoff; bounded by the throttle budget only
                                pr.throttles += 1;
                                let hint = retry_after_ms
                                    .map(Duration::from_millis)
                                    .map(|w| w.min(policy.max_throttle_wait));
                                let step = inner.pacer.throttled(
                                    &sent.bucket,
                                    sent.generation,
                                    hint,
                                    policy.base_delay,
                                    policy.max_throttle_wait,
                                );
                                Counters::add(&inner.counters.throttled_responses, 1);
                                let since = *pr.throttled_since.get_or_insert_with(Instant::now);
                                let budget = inner.settings.throttle_budget();
                                if since.elapsed() + step.wait > budget {
                                    let spent = since.elapsed();
                                    let last = last();
                                    return Err(throttle_exhausted(&req, pr.throttles, spent, budget, &last));
                                }
                                Counters::add(&inner.counters.retries, 1);
                                // the next send waits in the pacer until the bucket's pause is over
                                tracing::info!(
                                    wait_ms = step.wait.as_millis() as u64,
                                    level = step.level,
                                    throttles = pr.throttles,
                                    "provider is throttling: {}",
                                    last()
                                );
                                continue;
                            }
                            if pr.attempts == 0 {
                                // error time starts at the first error (not at earlier throttling)
                                pr.started = Instant::now();
                            }
                            pr.attempts += 1;
                            let attempts = pr.attempts;
                            let wait = retry::full_jitter(attempts, policy.base_delay, policy.max_delay);
                            let spent = pr.started.elapsed();
                            if attempts >= policy.max_attempts || spent + wait > policy.max_total {
                                return Err(RuntimeError::RetriesExhausted {
                                    method: req.method.to_string(),
                                    url: redact_url(&req.url),
                                    attempts,
                                    elapsed: pr.started.elapsed(),
                                    last: last(),
                                });
                            }
                            Counters::add(&inner.counters.retries, 1);
                            Counters::add(&inner.counters.backoff_ms, wait.as_millis() as u64);
                            let wait_ms = wait.as_millis() as u64;
                            tracing::info!(wait_ms, attempts, "provider asked to retry: {}", last());
                            tokio::time::sleep(wait).await;
                        }
                        Err(source) => {
                            let source = scrub_connector_error(&inner.scrubber, source);
                            if matches!(source, ConnectorError::Unauthorized { .. }) {
                                self.halt(format!("{}: {source}", q.operation()));
                            }
                            return Err(RuntimeError::Connector {
                                context: ctx(),
                                source,
                            });
                        }
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Send one request with authentication, retries, throttling and the concurrency limit,
    /// and return the final response (which may be an error status for the cursor to classify).
    pub async fn send(&self, req: &HttpRequest) -> Result<HttpResponse, RuntimeError> {
        self.within_deadline(None, self.send_with_retries(req)).await
    }

    async fn send_with_retries(&self, req: &HttpRequest) -> Result<HttpResponse, RuntimeError> {
        self.send_tracked(req).await.map(|(resp, _)| resp)
    }

    /// [`Self::send_with_retries`], also returning the rate-limit bucket the request went to and
    /// its generation there (for a throttle answer the connector classifies, e.g. Google's 403
    /// `userRateLimitExceeded`).
    ///
    /// Two kinds of retry, bounded separately:
    /// - **throttling** (429): the provider's wait (`Retry-After`, Okta/OneLogin reset headers,
    ///   capped at `max_throttle_wait`) or, without one, exponential backoff per bucket up to
    ///   `max_throttle_wait`; the whole bucket pauses (the pacer), so no request of the
    ///   connection hammers the provider meanwhile. Bounded by the throttle budget, counted from
    ///   the request's first throttle answer;
    /// - **errors** (502/503/504, resets, timeouts): full-jitter backoff bounded by
    ///   `max_attempts` and `max_total` (time spent in throttle pauses excluded).
    async fn send_tracked(&self, req: &HttpRequest) -> Result<(HttpResponse, Sent), RuntimeError> {
        let inner = &self.inner;
        self.check_halted()?;
        let url = transport::check_url_allowed(&req.url)?;
        let via_proxy = transport::proxy_for(&inner.settings, &url).is_some();
        let bucket = retry::bucket_key(&url);
        let policy = &inner.settings.retry;
        let budget = inner.settings.throttle_budget();
        let started = Instant::now();
        // waits in the pacer (pauses and pacing) are not error-retry time
        let mut paced_total = Duration::ZERO;
        let mut tries = 0u32;
        let mut attempt = 0u32;
        let mut throttles = 0u32;
        let mut throttled_since: Option<Instant> = None;
        let mut refreshed = false;
        let mut nonce_retries = 0u32;
        loop {
            tries += 1;
            attempt += 1;
            if tries > 1 {
                Counters::add(&inner.counters.retries, 1);
            }
            let (permit, generation) = loop {
                loop {
                    // waits for the bucket's pause, its window budget or its spacing; asked
                    // again after each wait, so a refilled window is used at once
                    let paced = inner.pacer.admit(&bucket);
                    if paced.is_zero() {
                        break;
                    }
                    Counters::add(&inner.counters.throttled_ms, paced.as_millis() as u64);
                    let wait_ms = paced.as_millis() as u64;
                    tracing::debug!(wait_ms, bucket = %bucket, "pacing: waiting for the bucket");
                    // every waiter of the bucket wakes at the same instant (a throttle pause, a
                    // window's reset): each adds its own random delay, up to the base delay and
                    // never more than the wait itself, so a provider that allows few requests in
                    // flight is not hit by the whole burst again
                    let stagger = retry::full_jitter(1, policy.base_delay, paced);
                    tokio::time::sleep(paced + stagger).await;
                    paced_total += paced + stagger;
                }
                let permit = inner.limiter.acquire().await.map_err(|_| RuntimeError::Setting {
                    setting: "concurrency".into(),
                    reason: "the connection is shutting down".into(),
                })?;
                // the bucket may have been paused while this request queued for a slot
                let (left, generation) = inner.pacer.enter(&bucket);
                if left.is_zero() {
                    break (permit, generation);
                }
            };
            // another query may have proven the credential refused while this one waited
            self.check_halted()?;
            let applied = match inner
                .auth
                .apply(&inner.token_http, req.method.as_str(), &req.url)
                .await
            {
                Ok(a) => a,
                Err(e) => {
                    if let RuntimeError::Token {
                        status: 400 | 401 | 403,
                        ..
                    } = &e
                    {
                        self.halt(format!("token request refused: HTTP {}", e.status().unwrap_or(0)));
                    }
                    return Err(e);
                }
            };
            let token_generation = applied.generation;
            let result = self.transmit(req, applied, tries, via_proxy).await;
            drop(permit);
            let failure = match result {
                Ok(resp) => {
                    self.observe_budget(&bucket, &resp);
                    if inner
                        .auth
                        .on_resource_response(&req.url, resp.status, &resp.headers)
                        && nonce_retries < 2
                    {
                        nonce_retries += 1;
                        attempt -= 1;
                        continue;
                    }
                    if resp.status == 401 && !refreshed {
                        if let Some(g) = token_generation {
                            tracing::info!("HTTP 401: refreshing the access token once and retrying");
                            inner.auth.invalidate(g).await;
                            refreshed = true;
                            continue;
                        }
                    }
                    if !retry::is_retryable_status(resp.status) {
                        if (200..300).contains(&resp.status) {
                            inner.pacer.succeeded(&bucket, generation);
                        }
                        return Ok((resp, Sent { bucket, generation }));
                    }
                    let last = format!(
                        "HTTP {}: {}",
                        resp.status,
                        inner.scrubber.scrub(&resp.body_snippet(200))
                    );
                    if resp.status == 429 {
                        // throttled: not an error attempt; the throttle budget bounds it
                        attempt -= 1;
                        throttles += 1;
                        Counters::add(&inner.counters.throttled_responses, 1);
                        let hint = retry::server_wait(&resp, SystemTime::now())
                            .map(|w| w.min(policy.max_throttle_wait));
                        let step = inner.pacer.throttled(
                            &bucket,
                            generation,
                            hint,
                            policy.base_delay,
                            policy.max_throttle_wait,
                        );
                        let since = *throttled_since.get_or_insert_with(Instant::now);
                        if since.elapsed() + step.wait > budget {
                            return Err(throttle_exhausted(req, throttles, since.elapsed(), budget, &last));
                        }
                        // the pacer holds this bucket until the wait is over; the next loop turn sleeps there
                        tracing::info!(
                            wait_ms = step.wait.as_millis() as u64,
                            level = step.level,
                            throttles,
                            "throttled: {last}"
                        );
                        continue;
                    }
                    // A 5xx is retried with backoff unless it carries its own Retry-After (then
                    // the whole bucket waits that long).
                    let server =
                        retry::retry_after(&resp, SystemTime::now()).map(|w| w.min(policy.max_throttle_wait));
                    let wait = server
                        .unwrap_or_else(|| retry::full_jitter(attempt, policy.base_delay, policy.max_delay));
                    if server.is_some() {
                        inner.pacer.pause_until(&bucket, Instant::now() + wait);
                    }
                    (last, wait, None)
                }
                Err(e) => {
                    if !e.transport_kind().is_some_and(|k| k.is_retryable()) {
                        return Err(e);
                    }
                    let wait = retry::full_jitter(attempt, policy.base_delay, policy.max_delay);
                    (e.to_string(), wait, Some(e))
                }
            };
            let (last, wait, err) = failure;
            let error_time = started.elapsed().saturating_sub(paced_total);
            if attempt >= policy.max_attempts || error_time + wait > policy.max_total {
                if let Some(RuntimeError::Transport {
                    method,
                    url,
                    kind,
                    detail,
                }) = err
                {
                    return Err(RuntimeError::Transport {
                        method,
                        url,
                        kind,
                        detail: format!("{detail} (after {attempt} attempts)"),
                    });
                }
                return Err(RuntimeError::RetriesExhausted {
                    method: req.method.to_string(),
                    url: redact_url(&req.url),
                    attempts: attempt,
                    elapsed: started.elapsed(),
                    last,
                });
            }
            Counters::add(&inner.counters.backoff_ms, wait.as_millis() as u64);
            tracing::info!(
                wait_ms = wait.as_millis() as u64,
                attempt,
                "retrying after: {last}"
            );
            // error time: this sleep counts against `max_total` (the pacer's pause, if the server
            // sent Retry-After, ends at the same moment)
            tokio::time::sleep(wait).await;
        }
    }

    /// Stop sending requests for the rest of this run: the credential is refused, so every
    /// further request would be refused too (Okta counts them against the rate limit and may
    /// lock the token out). The first reason is kept.
    fn halt(&self, reason: String) {
        if self.inner.halted.set(reason).is_ok() {
            tracing::warn!(
                connection = %self.inner.name,
                "the credential was refused: no further requests in this run"
            );
        }
    }

    fn check_halted(&self) -> Result<(), RuntimeError> {
        match self.inner.halted.get() {
            Some(reason) => Err(RuntimeError::ConnectionHalted {
                connection: self.inner.name.clone(),
                reason: reason.chars().take(200).collect(),
            }),
            None => Ok(()),
        }
    }

    fn observe_budget(&self, bucket: &str, resp: &HttpResponse) {
        let inner = &self.inner;
        if let Some(b) = retry::budget(resp, SystemTime::now()) {
            inner.counters.observe_budget(BudgetSnapshot {
                bucket: bucket.to_string(),
                remaining: b.remaining,
                limit: b.limit,
            });
            if inner.settings.retry.slow_down && resp.status != 429 {
                if let Some(reset_in) = b.reset_in {
                    // keep back the requests in flight and a twentieth of the window for the
                    // organisation's other clients
                    let floor = u64::from(inner.concurrency).max(b.limit.unwrap_or(0) / 20);
                    if b.remaining <= floor {
                        tracing::debug!(
                            remaining = b.remaining,
                            limit = ?b.limit,
                            reset_in_ms = reset_in.as_millis() as u64,
                            "rate-limit window nearly spent: waiting for its reset"
                        );
                    }
                    inner.pacer.observe_window(
                        bucket,
                        b.remaining,
                        reset_in.min(inner.settings.retry.max_throttle_wait),
                        floor,
                    );
                }
            }
        }
        if let Some(p) = retry::graph_pressure(resp) {
            if inner.settings.retry.slow_down {
                let interval = retry::graph_pacing(p).min(inner.settings.retry.max_throttle_wait);
                inner.pacer.set_interval(bucket, interval);
            }
        }
    }

    async fn transmit(
        &self,
        req: &HttpRequest,
        applied: Applied,
        attempt: u32,
        via_proxy: bool,
    ) -> Result<HttpResponse, RuntimeError> {
        let inner = &self.inner;
        let parsed = url::Url::parse(&req.url).ok();
        let span = tracing::info_span!(
            "http_request",
            method = %req.method,
            host = parsed.as_ref().and_then(|u| u.host_str()).unwrap_or_default(),
            path = parsed.as_ref().map(|u| u.path()).unwrap_or_default(),
            attempt,
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
            bytes = tracing::field::Empty,
        );
        async {
            let started = Instant::now();
            let method = match req.method {
                usersync_sdk::Method::Get => reqwest::Method::GET,
                usersync_sdk::Method::Post => reqwest::Method::POST,
                usersync_sdk::Method::Put => reqwest::Method::PUT,
                usersync_sdk::Method::Patch => reqwest::Method::PATCH,
                usersync_sdk::Method::Delete => reqwest::Method::DELETE,
            };
            let mut builder = inner.http.request(method, &req.url);
            for (k, v) in req.headers.iter().chain(applied.headers.iter()) {
                builder = builder.header(k.as_str(), v.as_str());
            }
            if let Some(body) = &req.body {
                builder = builder.body(body.clone());
            }
            Counters::add(&inner.counters.requests, 1);
            let net_err = |e: reqwest::Error| {
                let err = transport::send_error(&e, req.method.as_str(), &req.url, via_proxy, |d| {
                    inner.scrubber.scrub(d)
                });
                if let RuntimeError::RedirectRefused { location, .. } = &err {
                    Counters::add(&inner.counters.redirects_refused, 1);
                    tracing::warn!(%location, "redirect to another origin refused");
                } else {
                    tracing::debug!("request failed: {err}");
                }
                err
            };
            let resp = builder.send().await.map_err(|e| {
                // no response: counted here (a body that breaks later was counted by its status)
                inner.counters.count_request(req.method.as_str(), "error");
                net_err(e)
            })?;
            let status = resp.status().as_u16();
            inner
                .counters
                .count_request(req.method.as_str(), &status.to_string());
            if let Some(asked) = &parsed {
                // belt and braces: whatever the redirect policy did, only the asked origin answers
                if !transport::same_origin(asked, resp.url()) {
                    Counters::add(&inner.counters.redirects_refused, 1);
                    return Err(RuntimeError::RedirectRefused {
                        method: req.method.to_string(),
                        url: redact_url(&req.url),
                        location: redact_url(resp.url().as_str()),
                        status,
                    });
                }
            }
            let headers = transport::response_headers(&resp);
            let limit = inner.settings.max_response_bytes;
            let body = transport::read_body(resp, limit).await.map_err(|e| match e {
                transport::BodyError::Net(e) => net_err(e),
                transport::BodyError::TooLarge { declared } => {
                    Counters::add(&inner.counters.oversized_responses, 1);
                    RuntimeError::ResponseTooLarge {
                        method: req.method.to_string(),
                        url: redact_url(&req.url),
                        limit,
                        declared,
                    }
                }
            })?;
            Counters::add(&inner.counters.bytes_received, body.len() as u64);
            let span = tracing::Span::current();
            span.record("status", status);
            span.record("duration_ms", started.elapsed().as_millis() as u64);
            span.record("bytes", body.len());
            tracing::debug!("response received");
            Ok(HttpResponse {
                status,
                headers,
                body,
            })
        }
        .instrument(span)
        .await
    }
}

/// Where a response came from, for the pacer: the rate-limit bucket and its generation when the
/// request was sent.
#[derive(Debug, Clone)]
struct Sent {
    bucket: String,
    generation: u64,
}

/// Retries of one page of a listing (after connector-classified retryable errors).
struct PageRetry {
    key: String,
    /// Error retries (bounded by `max_attempts` and `max_total`).
    attempts: u32,
    started: Instant,
    /// Throttle answers (bounded by the throttle budget).
    throttles: u32,
    throttled_since: Option<Instant>,
}

impl PageRetry {
    fn new(key: String) -> Self {
        PageRetry {
            key,
            attempts: 0,
            started: Instant::now(),
            throttles: 0,
            throttled_since: None,
        }
    }
}

/// The error of a request that stayed throttled beyond the throttle budget.
fn throttle_exhausted(
    req: &HttpRequest,
    throttles: u32,
    elapsed: Duration,
    budget: Duration,
    last: &str,
) -> RuntimeError {
    RuntimeError::RetriesExhausted {
        method: req.method.to_string(),
        url: redact_url(&req.url),
        attempts: throttles,
        elapsed,
        last: format!(
            "{last} (the provider kept throttling the request for {:.0}s; the throttle budget \
             `max_throttle_total_secs` is {}s)",
            elapsed.as_secs_f64(),
            budget.as_secs()
        ),
    }
}

fn request_key(req: &HttpRequest) -> String {
    let body_hash = req
        .body
        .as_ref()
        .map(|b| {
            let d = ring::digest::digest(&ring::digest::SHA256, b);
            d.as_ref()
                .iter()
                .take(8)
                .map(|x| format!("{x:02x}"))
                .collect::<String>()
        })
        .unwrap_or_default();
    format!("{} {} {}", req.method, req.url, body_hash)
}

fn scrub_connector_error(s: &Scrubber, e: ConnectorError) -> ConnectorError {
    match e {
        ConnectorError::Unauthorized { detail } => ConnectorError::Unauthorized {
            detail: s.scrub(&detail),
        },
        ConnectorError::Forbidden { detail, needed } => ConnectorError::Forbidden {
            detail: s.scrub(&detail),
            needed,
        },
        ConnectorError::Protocol { detail } => ConnectorError::Protocol {
            detail: s.scrub(&detail),
        },
        ConnectorError::NotFound { detail } => ConnectorError::NotFound {
            detail: s.scrub(&detail),
        },
        other => other,
    }
}
