//! One client connection: bind, search, compare, StartTLS, and the refusals (writes, unknown
//! operations, malformed input). Generic over the stream so that plain TCP, LDAPS and a
//! connection upgraded by StartTLS run the same code.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapBindResponse, LdapExtendedResponse, LdapMsg, LdapOp, LdapResult,
    LdapResultCode, LdapSearchRequest, LdapSearchScope,
};
use ldap3_proto::DisconnectionNotice;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

use crate::codec::{CodecError, GuardedCodec};
use crate::schema::{OID_PASSWD_MODIFY, OID_STARTTLS, OID_WHOAMI};
use crate::search::{self, PagedRequest, PagedState};
use crate::server::Shared;
use crate::{dn, LdapError};

/// How long a connection may stay silent before it is closed.
const IDLE: Duration = Duration::from_secs(600);
/// Paged searches one connection may keep open at once.
const MAX_PAGED: usize = 16;

/// What the session loop ended with.
pub enum Next<S> {
    /// The connection is over.
    Closed,
    /// The client asked for StartTLS and was told yes: the raw stream, to wrap.
    StartTls(S),
}

/// Per-connection state.
pub struct Session {
    peer: SocketAddr,
    /// The bound service account's DN (as configured), if any.
    bound: Option<String>,
    tls: bool,
    paged: HashMap<Vec<u8>, PagedState>,
}

fn result(code: LdapResultCode, message: &str) -> LdapResult {
    LdapResult {
        code,
        matcheddn: String::new(),
        message: message.to_string(),
        referral: vec![],
    }
}

const READ_ONLY: &str =
    "usersync's LDAP directory is read-only: change users and groups at their identity provider";

impl Session {
    /// A new, unbound session.
    pub fn new(peer: SocketAddr, tls: bool) -> Session {
        Session {
            peer,
            bound: None,
            tls,
            paged: HashMap::new(),
        }
    }

    /// Serve requests until the client leaves, fails, or asks for StartTLS.
    pub async fn run<S>(&mut self, shared: &Arc<Shared>, io: S) -> Next<S>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let mut framed = Framed::new(io, GuardedCodec::new(shared.max_request_bytes()));
        let mut shutdown = shared.shutdown.clone();
        loop {
            let next = tokio::select! {
                n = tokio::time::timeout(IDLE, framed.next()) => n,
                _ = shutdown.changed() => {
                    let _ = framed.send(DisconnectionNotice::gen(LdapResultCode::Unavailable, "server shutting down")).await;
                    return Next::Closed;
                }
            };
            let msg = match next {
                Err(_) => {
                    let _ = framed
                        .send(DisconnectionNotice::gen(
                            LdapResultCode::Other,
                            "idle connection closed",
                        ))
                        .await;
                    return Next::Closed;
                }
                Ok(None) => return Next::Closed,
                Ok(Some(Err(CodecError::Io(e)))) if e.kind() != std::io::ErrorKind::Other => {
                    tracing::debug!(peer = %self.peer, error = %e, "connection ended");
                    return Next::Closed;
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(peer = %self.peer, error = %e, "bad LDAP request; connection closed");
                    let notice = DisconnectionNotice::gen(LdapResultCode::ProtocolError, &e.to_string());
                    let _ = framed.send(notice).await;
                    return Next::Closed;
                }
                Ok(Some(Ok(m))) => m,
            };
            let (replies, action) = self.dispatch(shared, msg).await;
            for r in replies {
                if framed.feed(r).await.is_err() {
                    return Next::Closed;
                }
            }
            if framed.flush().await.is_err() {
                return Next::Closed;
            }
            match action {
                Action::Continue => {}
                Action::Close => return Next::Closed,
                Action::StartTls => {
                    let parts = framed.into_parts();
                    if !parts.read_buf.is_empty() {
                        tracing::warn!(peer = %self.peer, "data sent after StartTLS before the handshake; closed");
                        return Next::Closed;
                    }
                    return Next::StartTls(parts.io);
                }
            }
        }
    }

    async fn dispatch(&mut self, shared: &Arc<Shared>, msg: LdapMsg) -> (Vec<LdapMsg>, Action) {
        let id = msg.msgid;
        let reply = |op: LdapOp| LdapMsg {
            msgid: id,
            op,
            ctrl: vec![],
        };
        let refused = || result(LdapResultCode::UnwillingToPerform, READ_ONLY);
        let one = |op: LdapOp| (vec![reply(op)], Action::Continue);
        match msg.op {
            LdapOp::BindRequest(req) => one(LdapOp::BindResponse(LdapBindResponse {
                res: self.bind(shared, req),
                saslcreds: None,
            })),
            LdapOp::UnbindRequest => (vec![], Action::Close),
            LdapOp::SearchRequest(req) => (self.search(shared, id, req, &msg.ctrl).await, Action::Continue),
            LdapOp::CompareRequest(req) => one(LdapOp::CompareResult(
                self.compare(shared, &req.dn, &req.atype, &req.val),
            )),
            LdapOp::AbandonRequest(_) => (vec![], Action::Continue),
            LdapOp::AddRequest(_) => one(LdapOp::AddResponse(refused())),
            LdapOp::ModifyRequest(_) => one(LdapOp::ModifyResponse(refused())),
            LdapOp::DelRequest(_) => one(LdapOp::DelResponse(refused())),
            LdapOp::ModifyDNRequest(_) => one(LdapOp::ModifyDNResponse(refused())),
            LdapOp::ExtendedRequest(req) => {
                let ext = |res: LdapResult, name: Option<&str>, value: Option<Vec<u8>>| {
                    reply(LdapOp::ExtendedResponse(LdapExtendedResponse {
                        res,
                        name: name.map(str::to_string),
                        value,
                    }))
                };
                match req.name.as_str() {
                    OID_STARTTLS if self.tls => (
                        vec![ext(
                            result(LdapResultCode::OperationsError, "TLS is already on"),
                            Some(OID_STARTTLS),
                            None,
                        )],
                        Action::Continue,
                    ),
                    OID_STARTTLS if shared.tls.is_none() => (
                        vec![ext(
                            result(
                                LdapResultCode::UnavailableCriticalExtension,
                                "StartTLS needs [ldap] tls_cert and tls_key",
                            ),
                            Some(OID_STARTTLS),
                            None,
                        )],
                        Action::Continue,
                    ),
                    OID_STARTTLS => (
                        vec![ext(result(LdapResultCode::Success, ""), Some(OID_STARTTLS), None)],
                        Action::StartTls,
                    ),
                    OID_WHOAMI => {
                        let who = self.bound.as_ref().map(|d| format!("dn:{d}")).unwrap_or_default();
                        (
                            vec![ext(
                                result(LdapResultCode::Success, ""),
                                None,
                                Some(who.into_bytes()),
                            )],
                            Action::Continue,
                        )
                    }
                    OID_PASSWD_MODIFY => (vec![ext(refused(), None, None)], Action::Continue),
                    other => (
                        vec![ext(
                            result(
                                LdapResultCode::ProtocolError,
                                &format!("unsupported extended operation {other}"),
                            ),
                            None,
                            None,
                        )],
                        Action::Continue,
                    ),
                }
            }
            other => {
                let what = format!("{other:?}");
                let what = what.split(['(', ' ', '{']).next().unwrap_or("operation");
                tracing::warn!(peer = %self.peer, op = what, "a client sent a server message; connection closed");
                (
                    vec![DisconnectionNotice::gen(
                        LdapResultCode::ProtocolError,
                        &format!("unexpected {what}"),
                    )],
                    Action::Close,
                )
            }
        }
    }

    fn bind(&mut self, shared: &Arc<Shared>, req: LdapBindRequest) -> LdapResult {
        // a bind starts from anonymous, whatever its outcome
        self.bound = None;
        self.paged.clear();
        let LdapBindCred::Simple(pw) = req.cred else {
            return result(
                LdapResultCode::AuthMethodNotSupported,
                "only simple binds are supported",
            );
        };
        if req.dn.is_empty() && pw.is_empty() {
            return if shared.cfg.allow_anonymous {
                result(LdapResultCode::Success, "")
            } else {
                result(
                    LdapResultCode::InappropriateAuthentication,
                    "anonymous bind is disabled: bind as a service account",
                )
            };
        }
        if pw.is_empty() {
            return result(
                LdapResultCode::UnwillingToPerform,
                "unauthenticated bind (a DN without a password) is refused",
            );
        }
        if shared.cfg.require_tls && !self.tls {
            return result(
                LdapResultCode::ConfidentialityRequired,
                "binds need TLS here: use LDAPS or StartTLS",
            );
        }
        let ip = self.peer.ip();
        if let Some(wait) = shared.limiter.blocked(ip) {
            tracing::warn!(peer = %self.peer, "bind refused: too many failed binds from this address");
            return result(
                LdapResultCode::UnwillingToPerform,
                &format!(
                    "too many failed binds from {ip}: try again in {} s",
                    wait.as_secs().max(1)
                ),
            );
        }
        let account = dn::normalize(&req.dn).and_then(|n| shared.accounts.iter().find(|a| a.norm == n));
        match account {
            Some(a) if a.password_matches(&pw) => {
                tracing::info!(peer = %self.peer, dn = %a.dn, "bind");
                self.bound = Some(a.dn.clone());
                result(LdapResultCode::Success, "")
            }
            _ => {
                shared.limiter.failed(ip);
                tracing::warn!(peer = %self.peer, dn = %req.dn, "failed bind");
                result(LdapResultCode::InvalidCredentials, "")
            }
        }
    }

    fn may_read(&self, shared: &Shared) -> bool {
        self.bound.is_some() || shared.cfg.allow_anonymous
    }

    async fn search(
        &mut self,
        shared: &Arc<Shared>,
        id: i32,
        req: LdapSearchRequest,
        ctrl: &[LdapControl],
    ) -> Vec<LdapMsg> {
        let public = matches!(req.scope, LdapSearchScope::Base)
            && dn::normalize(&req.base).is_some_and(|b| b.is_empty() || b == "cn=subschema");
        if !public && !self.may_read(shared) {
            return vec![LdapMsg {
                msgid: id,
                op: LdapOp::SearchResultDone(result(
                    LdapResultCode::InsufficentAccessRights,
                    "bind first: anonymous access is disabled",
                )),
                ctrl: vec![],
            }];
        }
        let paged = ctrl.iter().find_map(|c| match c {
            LdapControl::SimplePagedResults { size, cookie } => Some(PagedRequest {
                size: usize::try_from(*size).unwrap_or(0),
                cookie: cookie.clone(),
                state: if cookie.is_empty() {
                    None
                } else {
                    self.paged.remove(cookie)
                },
                next_cookie: rand::random::<[u8; 16]>().to_vec(),
            }),
            _ => None,
        });
        let next_cookie = paged.as_ref().map(|p| p.next_cookie.clone());
        let dir = shared.directory();
        let limits = shared.limits();
        let tls = shared.tls.is_some();
        let base_dn = shared.cfg.base_dn.clone();
        let answer =
            tokio::task::spawn_blocking(move || search::search(dir, id, &req, paged, limits, tls, &base_dn))
                .await;
        match answer {
            Ok(a) => {
                if let (Some(state), Some(cookie)) = (a.keep, next_cookie) {
                    if self.paged.len() >= MAX_PAGED {
                        if let Some(k) = self.paged.keys().next().cloned() {
                            self.paged.remove(&k);
                        }
                    }
                    self.paged.insert(cookie, state);
                }
                a.msgs
            }
            Err(e) => {
                tracing::error!(error = %e, "search task failed");
                vec![LdapMsg {
                    msgid: id,
                    op: LdapOp::SearchResultDone(result(LdapResultCode::OperationsError, "internal error")),
                    ctrl: vec![],
                }]
            }
        }
    }

    fn compare(&self, shared: &Arc<Shared>, target: &str, atype: &str, val: &[u8]) -> LdapResult {
        if !self.may_read(shared) {
            return result(
                LdapResultCode::InsufficentAccessRights,
                "bind first: anonymous access is disabled",
            );
        }
        let Some(norm) = dn::normalize(target) else {
            return result(LdapResultCode::InvalidDNSyntax, "not a DN");
        };
        let dir = shared.directory();
        let Some(e) = dir.index.get(&norm).map(|i| &dir.entries[*i]) else {
            return result(LdapResultCode::NoSuchObject, "no such entry");
        };
        match e.has_value(&dn::canonical_attr(atype), val) {
            Some(true) => result(LdapResultCode::CompareTrue, ""),
            Some(false) => result(LdapResultCode::CompareFalse, ""),
            None => result(LdapResultCode::UndefinedAttributeType, "unknown attribute type"),
        }
    }
}

/// What to do after replying.
enum Action {
    Continue,
    Close,
    StartTls,
}

/// Serve one accepted TCP connection (LDAPS when `ldaps`), including a StartTLS upgrade.
pub async fn handle(shared: Arc<Shared>, stream: tokio::net::TcpStream, peer: SocketAddr, ldaps: bool) {
    let acceptor = shared.tls.clone();
    let tls_accept = |stream: tokio::net::TcpStream| async {
        let Some(acc) = acceptor.clone() else {
            return Err(LdapError::Tls("no certificate configured".into()));
        };
        tokio::time::timeout(Duration::from_secs(30), acc.accept(stream))
            .await
            .map_err(|_| LdapError::Tls("TLS handshake timed out".into()))?
            .map_err(|e| LdapError::Tls(e.to_string()))
    };
    if ldaps {
        match tls_accept(stream).await {
            Ok(s) => {
                let mut session = Session::new(peer, true);
                let _ = session.run(&shared, s).await;
            }
            Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        }
        return;
    }
    let mut session = Session::new(peer, false);
    if let Next::StartTls(raw) = session.run(&shared, stream).await {
        match tls_accept(raw).await {
            Ok(s) => {
                session.tls = true;
                // the bind state does not carry over a StartTLS upgrade (RFC 4513 allows either)
                session.bound = None;
                let _ = session.run(&shared, s).await;
            }
            Err(e) => tracing::debug!(%peer, error = %e, "StartTLS handshake failed"),
        }
    }
}
