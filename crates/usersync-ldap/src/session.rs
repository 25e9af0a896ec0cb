//! One client connection: bind, search, compare, StartTLS, and the refusals (writes, unknown
//! operations, malformed input). Generic over the stream so that plain TCP, LDAPS and a
//! connection upgraded by StartTLS run the same code.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapBindResponse, LdapExtendedResponse, LdapMsg, LdapOp, LdapResult,
    LdapResultCode, LdapSearchRequest, LdapSearchScope,
};
use ldap3_proto::DisconnectionNotice;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

use crate::codec::{CodecError, GuardedCodec, Request};
use crate::schema::{OID_PAGED, OID_PASSWD_MODIFY, OID_STARTTLS, OID_WHOAMI};
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
    /// Encoded SearchResultEntry messages of the last search, sent before its replies.
    entries: BytesMut,
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
            entries: BytesMut::new(),
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
            let (replies, action) = match unsupported_critical(&msg) {
                Some(refusal) => refusal,
                None => self.dispatch(shared, msg.msg).await,
            };
            let entries = std::mem::take(&mut self.entries);
            if !entries.is_empty() && framed.feed(entries).await.is_err() {
                return Next::Closed;
            }
            for r in replies {
                if framed.feed(r).await.is_err() {
                    return Next::Closed;
                }
            }
            if SinkExt::<LdapMsg>::flush(&mut framed).await.is_err() {
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
                self.entries = a.entries;
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

/// Whether `oid` is a control this server acts on for `op` (only paged results, on a search).
fn supported_control(op: &LdapOp, oid: &str) -> bool {
    matches!(op, LdapOp::SearchRequest(_)) && oid == OID_PAGED
}

/// RFC 4511 4.1.11: an operation carrying a critical control the server does not support for it
/// is not performed, and is answered `unavailableCriticalExtension` (12) when it has a response.
/// Non-critical unknown controls are ignored. `None`: go ahead.
fn unsupported_critical(req: &Request) -> Option<(Vec<LdapMsg>, Action)> {
    let oid = req
        .critical
        .iter()
        .find(|oid| !supported_control(&req.msg.op, oid))?;
    let res = result(
        LdapResultCode::UnavailableCriticalExtension,
        &format!("critical control {oid} is not supported for this operation"),
    );
    let op = match &req.msg.op {
        LdapOp::BindRequest(_) => LdapOp::BindResponse(LdapBindResponse { res, saslcreds: None }),
        LdapOp::SearchRequest(_) => LdapOp::SearchResultDone(res),
        LdapOp::CompareRequest(_) => LdapOp::CompareResult(res),
        LdapOp::AddRequest(_) => LdapOp::AddResponse(res),
        LdapOp::ModifyRequest(_) => LdapOp::ModifyResponse(res),
        LdapOp::DelRequest(_) => LdapOp::DelResponse(res),
        LdapOp::ModifyDNRequest(_) => LdapOp::ModifyDNResponse(res),
        LdapOp::ExtendedRequest(_) => LdapOp::ExtendedResponse(LdapExtendedResponse {
            res,
            name: None,
            value: None,
        }),
        // an unbind still ends the connection; an abandon has no response: not performed
        LdapOp::UnbindRequest => return Some((vec![], Action::Close)),
        LdapOp::AbandonRequest(_) => return Some((vec![], Action::Continue)),
        // a server message: dispatch closes the connection
        _ => return None,
    };
    tracing::debug!(oid = %oid, "critical control not supported; operation refused");
    let reply = LdapMsg {
        msgid: req.msg.msgid,
        op,
        ctrl: vec![],
    };
    Some((vec![reply], Action::Continue))
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

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3_proto::proto::{LdapCompareRequest, LdapDerefAliases, LdapFilter};

    fn req(op: LdapOp, critical: &[&str]) -> Request {
        Request {
            msg: LdapMsg {
                msgid: 9,
                op,
                ctrl: vec![],
            },
            critical: critical.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn search() -> LdapOp {
        LdapOp::SearchRequest(LdapSearchRequest {
            base: String::new(),
            scope: LdapSearchScope::Base,
            aliases: LdapDerefAliases::Never,
            sizelimit: 0,
            timelimit: 0,
            typesonly: false,
            filter: LdapFilter::Present("objectClass".into()),
            attrs: vec![],
        })
    }

    fn code(r: &(Vec<LdapMsg>, Action)) -> LdapResultCode {
        match &r.0[0].op {
            LdapOp::SearchResultDone(res) | LdapOp::CompareResult(res) => res.code.clone(),
            LdapOp::BindResponse(b) => b.res.code.clone(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn critical_unknown_controls_refuse_the_operation() {
        // nothing critical, or only paged results on a search: performed
        assert!(unsupported_critical(&req(search(), &[])).is_none());
        assert!(unsupported_critical(&req(search(), &[OID_PAGED])).is_none());
        // an unknown critical control: unavailableCriticalExtension, with the message id
        let r = unsupported_critical(&req(search(), &["1.2.3.4"])).expect("refused");
        assert_eq!(code(&r), LdapResultCode::UnavailableCriticalExtension);
        assert_eq!(r.0[0].msgid, 9);
        // paged results is not acted on for a bind or a compare
        let bind = LdapOp::BindRequest(LdapBindRequest {
            dn: String::new(),
            cred: LdapBindCred::Simple(String::new()),
        });
        let r = unsupported_critical(&req(bind, &[OID_PAGED])).expect("refused");
        assert_eq!(code(&r), LdapResultCode::UnavailableCriticalExtension);
        let cmp = LdapOp::CompareRequest(LdapCompareRequest {
            dn: String::new(),
            atype: "cn".into(),
            val: vec![],
        });
        let r = unsupported_critical(&req(cmp, &["1.2.3.4"])).expect("refused");
        assert_eq!(code(&r), LdapResultCode::UnavailableCriticalExtension);
        // an abandon is not performed and has no response
        let r = unsupported_critical(&req(LdapOp::AbandonRequest(3), &["1.2.3.4"])).expect("not performed");
        assert!(r.0.is_empty());
    }
}
