//! Listeners, the shared state of all connections (the current tree, service accounts, the
//! failed-bind limiter) and the refresher that swaps the tree when a run applies.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;
use usersync_config::LdapConfig;
use usersync_store::{DirectoryStore, PosixKind, SqliteStore, StoreError};

use crate::directory::{self, Directory, StoreView};
use crate::search::Limits;
use crate::{dn, session, LdapError};

/// Opens the SQLite store (read-write: POSIX numbers are allocated in it).
pub type StoreOpener = Arc<dyn Fn() -> Result<SqliteStore, StoreError> + Send + Sync>;

/// Opens the store of either backend, SQLite or PostgreSQL (read-write: POSIX numbers are
/// allocated in it).
pub type DirectoryOpener = Arc<dyn Fn() -> Result<Box<dyn DirectoryStore>, StoreError> + Send + Sync>;

/// How often the store is checked for a newly applied run.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// Most connections served at once; more are closed at accept.
const MAX_CONNECTIONS: usize = 1024;

/// A service account, its password kept only as a SHA-256 digest.
pub struct Account {
    /// The DN as configured.
    pub dn: String,
    /// Its normalised form.
    pub norm: String,
    digest: [u8; 32],
}

impl Account {
    /// Compare a password in constant time (over the digests).
    pub fn password_matches(&self, pw: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(pw.as_bytes()).into();
        d.iter()
            .zip(self.digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// Failed binds per peer address in a one-minute window.
pub struct BindLimiter {
    max: u32,
    window: Duration,
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl BindLimiter {
    /// Allow `max` failures per address per minute.
    pub fn new(max: u32) -> BindLimiter {
        BindLimiter {
            max,
            window: Duration::from_secs(60),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(wait)` when `ip` has failed too often in the current window.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let (since, n) = seen.get(&ip)?;
        let left = self.window.checked_sub(since.elapsed())?;
        (*n >= self.max).then_some(left)
    }

    /// Count a failure of `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 10_000 {
            let window = self.window;
            seen.retain(|_, (since, _)| since.elapsed() < window);
        }
        let e = seen.entry(ip).or_insert((Instant::now(), 0));
        if e.0.elapsed() >= self.window {
            *e = (Instant::now(), 0);
        }
        e.1 += 1;
    }
}

/// What every connection shares.
pub struct Shared {
    /// The `[ldap]` section.
    pub cfg: LdapConfig,
    /// Who may bind.
    pub accounts: Vec<Account>,
    /// TLS, when a certificate is configured.
    pub tls: Option<TlsAcceptor>,
    /// Failed binds.
    pub limiter: BindLimiter,
    /// Changes to true when the server stops.
    pub shutdown: watch::Receiver<bool>,
    dir: RwLock<Arc<Directory>>,
}

impl Shared {
    /// The current tree.
    pub fn directory(&self) -> Arc<Directory> {
        self.dir.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn swap(&self, d: Directory) {
        let old = std::mem::replace(
            &mut *self.dir.write().unwrap_or_else(|p| p.into_inner()),
            Arc::new(d),
        );
        // the old tree is freed here unless a paged search still reads it
        drop(old);
        release_freed_memory();
    }

    /// Search limits.
    pub fn limits(&self) -> Limits {
        Limits {
            size: self.cfg.size_limit as usize,
            time: Duration::from_secs(u64::from(self.cfg.time_limit_secs)),
        }
    }

    /// Largest request, bytes.
    pub fn max_request_bytes(&self) -> usize {
        self.cfg.max_request_kb as usize * 1024
    }
}

/// Read the whole directory in one transaction and build the tree; objects without a POSIX
/// number get one first (then the read is repeated, so the tree stays one store state).
pub fn load<S: DirectoryStore + ?Sized>(store: &mut S, cfg: &LdapConfig) -> Result<Directory, LdapError> {
    let _span = tracing::info_span!("ldap_load").entered();
    for attempt in 0..3 {
        let read = store.read_directory(cfg.posix, cfg.photos)?;
        let mut view = StoreView {
            marker: read.marker,
            users: read.users,
            groups: read.groups,
            links: read.links,
            posix: read.posix,
            ..StoreView::default()
        };
        // the store hands over the photos of active users that have bytes
        for (connection, p) in read.photos {
            if let (Some(bytes), true) = (p.bytes, p.content_type.eq_ignore_ascii_case("image/jpeg")) {
                view.photos.insert((connection, p.user), bytes);
            }
        }
        let dir = directory::build(&view, cfg)?;
        drop(view);
        release_freed_memory();
        if dir.missing_posix.is_empty() || attempt == 2 {
            tracing::info!(entries = dir.entries.len(), "LDAP tree loaded");
            return Ok(dir);
        }
        let added = store.allocate_posix_ids(&dir.missing_posix)?;
        let users = dir
            .missing_posix
            .iter()
            .filter(|k| k.0 == PosixKind::User)
            .count();
        tracing::info!(added, users, "POSIX numbers allocated");
    }
    Err(LdapError::Config("POSIX numbers could not be allocated".into()))
}

/// Hand the memory freed after a load (the store read, the builder's maps, a replaced tree) back
/// to the system: glibc keeps freed blocks in its arenas otherwise, and the listener's resident
/// size would stay at the load's peak.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            /// glibc's `int malloc_trim(size_t pad)`.
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim takes no pointers and only walks glibc's own free lists.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// A bound server, ready to run.
pub struct Server {
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    plain: TcpListener,
    ldaps: Option<TcpListener>,
    store: Box<dyn DirectoryStore>,
}

impl Server {
    /// Resolve the service accounts' passwords, load TLS and the tree, and bind the listeners.
    pub async fn bind(cfg: LdapConfig, opener: StoreOpener) -> Result<Server, LdapError> {
        let opener: DirectoryOpener = Arc::new(move || Ok(Box::new(opener()?) as Box<dyn DirectoryStore>));
        Self::bind_any(cfg, opener).await
    }

    /// [`Server::bind`] on a store of either backend.
    pub async fn bind_any(cfg: LdapConfig, opener: DirectoryOpener) -> Result<Server, LdapError> {
        let mut accounts = Vec::new();
        for a in &cfg.service_accounts {
            let secret = a.password.resolve().map_err(|source| LdapError::Secret {
                dn: a.dn.clone(),
                source,
            })?;
            let norm = dn::normalize(&a.dn)
                .ok_or_else(|| LdapError::Config(format!("service account `{}` is not a DN", a.dn)))?;
            accounts.push(Account {
                dn: a.dn.clone(),
                norm,
                digest: Sha256::digest(secret.expose().as_bytes()).into(),
            });
        }
        let tls = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(c), Some(k)) => Some(crate::tls::acceptor(c, k)?),
            _ => None,
        };
        let cfg2 = cfg.clone();
        let (store, dir) = tokio::task::spawn_blocking(move || -> Result<_, LdapError> {
            let mut store = opener()?;
            let dir = load(&mut *store, &cfg2)?;
            Ok((store, dir))
        })
        .await
        .map_err(|e| LdapError::Config(format!("loading the tree failed: {e}")))??;
        let listen = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| LdapError::Listen { addr, source })
        };
        let plain = listen(cfg.listen).await?;
        let ldaps = match cfg.ldaps_listen {
            Some(a) if tls.is_some() => Some(listen(a).await?),
            Some(_) => {
                return Err(LdapError::Config(
                    "ldaps_listen needs tls_cert and tls_key".into(),
                ))
            }
            None => None,
        };
        let (shutdown_tx, shutdown) = watch::channel(false);
        let limiter = BindLimiter::new(cfg.max_bind_failures);
        Ok(Server {
            shared: Arc::new(Shared {
                cfg,
                accounts,
                tls,
                limiter,
                shutdown,
                dir: RwLock::new(Arc::new(dir)),
            }),
            shutdown_tx,
            plain,
            ldaps,
            store,
        })
    }

    /// The addresses listened on: (LDAP, LDAPS).
    pub fn local_addrs(&self) -> (Option<SocketAddr>, Option<SocketAddr>) {
        (
            self.plain.local_addr().ok(),
            self.ldaps.as_ref().and_then(|l| l.local_addr().ok()),
        )
    }

    /// Entries in the tree now.
    pub fn entries(&self) -> usize {
        self.shared.directory().entries.len()
    }

    /// Serve until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), LdapError> {
        let Server {
            shared,
            shutdown_tx,
            plain,
            ldaps,
            store,
        } = self;
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let refresher = tokio::spawn(refresh(shared.clone(), store));
        let accept = |l: TcpListener, is_ldaps: bool| {
            let shared = shared.clone();
            let slots = slots.clone();
            tokio::spawn(async move {
                loop {
                    let (stream, peer) = match l.accept().await {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    // replies are flushed whole: no Nagle delay before the last segment of one
                    let _ = stream.set_nodelay(true);
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, "too many connections; refused");
                        continue;
                    };
                    let shared = shared.clone();
                    let span = tracing::debug_span!("ldap_connection", %peer, ldaps = is_ldaps);
                    tokio::spawn(
                        async move {
                            session::handle(shared, stream, peer, is_ldaps).await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
            })
        };
        let mut tasks = vec![accept(plain, false)];
        if let Some(l) = ldaps {
            tasks.push(accept(l, true));
        }
        shutdown.await;
        tracing::info!("LDAP server stopping");
        let _ = shutdown_tx.send(true);
        for t in tasks {
            t.abort();
        }
        refresher.abort();
        Ok(())
    }
}

/// Reload the tree whenever the store's applied-run marker moves.
async fn refresh(shared: Arc<Shared>, store: Box<dyn DirectoryStore>) {
    let store = Arc::new(Mutex::new(store));
    loop {
        tokio::time::sleep(REFRESH_EVERY).await;
        let current = shared.directory().marker;
        let (store2, shared2) = (store.clone(), shared.clone());
        let outcome = tokio::task::spawn_blocking(move || -> Result<Option<Directory>, LdapError> {
            let mut s = store2.lock().unwrap_or_else(|p| p.into_inner());
            if s.applied_marker()? == current {
                return Ok(None);
            }
            load(&mut **s, &shared2.cfg).map(Some)
        })
        .await;
        match outcome {
            Ok(Ok(Some(d))) => {
                tracing::info!(entries = d.entries.len(), "LDAP tree reloaded after a run");
                shared.swap(d);
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reloading the LDAP tree failed; still serving the previous one")
            }
            Err(e) => tracing::warn!(error = %e, "reload task failed"),
        }
    }
}
