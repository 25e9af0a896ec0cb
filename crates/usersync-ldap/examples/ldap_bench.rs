//! Load the LDAP view with a generated store and measure it (docs/benchmarks.md, "LDAP view").
//!
//! ```sh
//! cargo run --release -p usersync-ldap --example ldap_bench -- 10000 1000 8 10
//! ```
//! Arguments: users, groups, concurrent clients, seconds of equality searches. The store is a
//! temporary SQLite file written through the Store API (one applied run); the server runs in this
//! process on 127.0.0.1 and the clients speak LDAP to it over TCP (ldap3_proto's codec).
//! `USERSYNC_LDAP_BENCH_HOLD=60` keeps it serving afterwards, for timing other clients.
//!
//! Against another server process (`usersync ldap serve`, or OpenLDAP's slapd loaded from
//! `usersync export ldif`), for figures of that process alone:
//! - `USERSYNC_LDAP_BENCH_STORE=PATH`: only write the store to PATH (users, groups) and exit;
//!   With `USERSYNC_LDAP_BENCH_LDIF=FILE` it also writes the tree as LDIF through the code
//!   `usersync export ldif` runs (`server::load`, `ldif::write`), for when no release `usersync`
//!   binary is at hand;
//! - `USERSYNC_LDAP_BENCH_SERVE=127.0.0.1:PORT` with `USERSYNC_LDAP_BENCH_STORE=PATH` (written
//!   before): serve that store there until killed, as `usersync ldap serve` does (the same
//!   `Server`), printing "listening" when ready;
//! - `USERSYNC_LDAP_BENCH_TARGET=127.0.0.1:PORT`: no store, no server: measure the server there
//!   (bound as `cn=bench,ou=services,dc=example,dc=com` / `bench-password`);
//!   `USERSYNC_LDAP_BENCH_PID=PID` adds that process's CPU time and resident memory.
//!
//! `USERSYNC_LDAP_BENCH_RATE=N`: the equality searches are sent at N per second in total (open
//! loop: each latency counts from the time the search was due, so a server falling behind shows),
//! instead of each client sending its next search as soon as the last is answered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapDerefAliases, LdapFilter, LdapMsg, LdapOp, LdapSearchRequest,
    LdapSearchScope,
};
use ldap3_proto::LdapCodec;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use usersync_config::{LdapConfig, LdapServiceAccount, SecretRef};
use usersync_model::{GroupKind, UserState};
use usersync_store::{
    Change, EffectiveMembership, Member, RunOutcome, RunStatus, SqliteStore, Store, StoredGroup,
    StoredMembership, StoredUser,
};

const BIND_DN: &str = "cn=bench,ou=services,dc=example,dc=com";
const PW: &str = "bench-password";

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn rss() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (kb("VmRSS:") / 1024, kb("VmHWM:") / 1024)
}

fn fill(store: &mut SqliteStore, users: u64, groups: u64) {
    let mut changes = Vec::new();
    for i in 0..users {
        changes.push(Change::PutUser(Arc::new(StoredUser {
            connection: "bench".into(),
            provider_id: format!("u{i}"),
            username: format!("user{i}"),
            email: Some(format!("user{i}@example.com")),
            display_name: Some(format!("User {i}")),
            given_name: Some("User".into()),
            family_name: Some(format!("Number{i}")),
            active: true,
            state: UserState::Active,
            status_raw: "ACTIVE".into(),
            manager: None,
            attributes: Default::default(),
            inactive_reason: None,
        })));
    }
    for g in 0..groups {
        changes.push(Change::PutGroup(Box::new(StoredGroup {
            connection: "bench".into(),
            provider_id: format!("g{g}"),
            name: format!("group{g}"),
            source_name: format!("group{g}"),
            kind: GroupKind::Group,
            description: None,
            attributes: Default::default(),
        })));
        if g > 0 && g % 10 != 0 {
            // nested: every group but each tenth is inside the tenth before it
            changes.push(Change::AddMembership(StoredMembership {
                group: format!("g{}", g - g % 10),
                member: Member::Group(format!("g{g}")),
            }));
        }
    }
    for i in 0..users {
        for k in 0..3 {
            let g = (i * 7 + k * 13) % groups;
            changes.push(Change::AddMembership(StoredMembership {
                group: format!("g{g}"),
                member: Member::User(format!("u{i}")),
            }));
            changes.push(Change::PutEffective(EffectiveMembership {
                group: format!("g{g}"),
                user: format!("u{i}"),
                path: vec![format!("group{g}")],
            }));
        }
    }
    let run = store.begin_run("bench", 0).expect("begin run");
    let outcome = RunOutcome {
        status: RunStatus::Applied,
        counts: serde_json::json!({}),
        errors: vec![],
        plan: serde_json::json!({}),
        requests: 0,
        source_users: Some(users),
    };
    store.apply("bench", run, &changes, &outcome, 1).expect("apply");
}

type Conn = Framed<TcpStream, LdapCodec>;

async fn connect(addr: std::net::SocketAddr) -> Conn {
    let mut c = Framed::new(
        TcpStream::connect(addr).await.expect("connect"),
        LdapCodec::default(),
    );
    let bind = LdapMsg {
        msgid: 1,
        op: LdapOp::BindRequest(LdapBindRequest {
            dn: BIND_DN.into(),
            cred: LdapBindCred::Simple(PW.into()),
        }),
        ctrl: vec![],
    };
    c.send(bind).await.expect("send bind");
    c.next().await.expect("bind reply").expect("decode");
    c
}

/// One search; (entries, paged cookie of the done message).
async fn search(
    c: &mut Conn,
    id: i32,
    base: &str,
    filter: LdapFilter,
    ctrl: Vec<LdapControl>,
) -> (usize, Vec<u8>) {
    let req = LdapMsg {
        msgid: id,
        op: LdapOp::SearchRequest(LdapSearchRequest {
            base: base.into(),
            scope: LdapSearchScope::Subtree,
            aliases: LdapDerefAliases::Never,
            sizelimit: 0,
            timelimit: 0,
            typesonly: false,
            filter,
            attrs: vec![],
        }),
        ctrl,
    };
    c.send(req).await.expect("send search");
    let mut n = 0;
    loop {
        let m = c.next().await.expect("reply").expect("decode");
        match m.op {
            LdapOp::SearchResultEntry(_) => n += 1,
            LdapOp::SearchResultDone(r) => {
                assert_eq!(
                    r.code,
                    ldap3_proto::proto::LdapResultCode::Success,
                    "{}",
                    r.message
                );
                let cookie = m
                    .ctrl
                    .into_iter()
                    .find_map(|c| match c {
                        LdapControl::SimplePagedResults { cookie, .. } => Some(cookie),
                        _ => None,
                    })
                    .unwrap_or_default();
                return (n, cookie);
            }
            _ => {}
        }
    }
}

/// The `[ldap]` section of the benchmark: `posix = true`, the bench service account.
fn config(listen: std::net::SocketAddr) -> LdapConfig {
    std::env::set_var("USERSYNC_LDAP_BENCH_PW", PW);
    let mut cfg = LdapConfig::new("dc=example,dc=com");
    cfg.listen = listen;
    cfg.posix = true;
    cfg.size_limit = 1_000_000;
    cfg.service_accounts = vec![LdapServiceAccount {
        dn: BIND_DN.into(),
        password: SecretRef::Env {
            env: "USERSYNC_LDAP_BENCH_PW".into(),
        },
    }];
    cfg
}

fn env_parse<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// CPU seconds (user + system) and resident memory now / peak (MiB) of process `pid`.
fn proc_stats(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // fields after the command name (which may hold spaces): utime is the 12th, stime the 13th
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (cpu, kb("VmRSS:") / 1024, kb("VmHWM:") / 1024)
}

/// Full paged searches of all users, 500 per page: (entries, pages, wall time) per round.
async fn paged_rounds(addr: std::net::SocketAddr, rounds: usize, pid: Option<u32>) {
    let mut c = connect(addr).await;
    for round in 0..rounds {
        let cpu0 = pid.map(|p| proc_stats(p).0);
        let t = Instant::now();
        let (mut total, mut cookie, mut pages, mut id) = (0, Vec::new(), 0, 10);
        loop {
            let ctrl = vec![LdapControl::SimplePagedResults {
                size: 500,
                cookie: cookie.clone(),
            }];
            let filter = LdapFilter::Equality("objectClass".into(), "inetOrgPerson".into());
            let (n, next) = search(&mut c, id, "ou=users,dc=example,dc=com", filter, ctrl).await;
            total += n;
            pages += 1;
            id += 1;
            if next.is_empty() {
                break;
            }
            cookie = next;
        }
        let cpu = match (pid, cpu0) {
            (Some(p), Some(c0)) => format!(", server CPU {:.2} s", proc_stats(p).0 - c0),
            _ => String::new(),
        };
        println!(
            "paged search of all users (round {round}): {total} entries in {pages} pages, {:.2?}{cpu}",
            t.elapsed()
        );
    }
}

/// Equality searches `(uid=userN)` from the whole base by `clients` connections for `secs`
/// seconds: as fast as answered, or at `rate` per second in total (latency from the due time).
async fn equality_load(
    addr: std::net::SocketAddr,
    users: u64,
    clients: u64,
    secs: u64,
    rate: Option<u64>,
    pid: Option<u32>,
) {
    let start = Instant::now() + Duration::from_millis(200);
    let deadline = start + Duration::from_secs(secs);
    let cpu0 = pid.map(|p| proc_stats(p).0);
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = pid.map(|p| {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                let (_, now, _) = proc_stats(p);
                peak.fetch_max(now, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });
    let mut tasks = Vec::new();
    for k in 0..clients {
        tasks.push(tokio::spawn(async move {
            let mut c = connect(addr).await;
            let mut lat = Vec::new();
            let mut i = k * 7919;
            let mut id = 2;
            let mut slot = k;
            loop {
                let due = match rate {
                    Some(r) => start + Duration::from_secs_f64(slot as f64 / r as f64),
                    None => Instant::now().max(start),
                };
                if due >= deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let filter = LdapFilter::Equality("uid".into(), format!("user{}", i % users));
                let (n, _) = search(&mut c, id, "dc=example,dc=com", filter, vec![]).await;
                lat.push(due.elapsed());
                assert_eq!(n, 1);
                i += 1;
                id += 1;
                slot += clients;
            }
            lat
        }));
    }
    let mut lat: Vec<Duration> = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("client"));
    }
    if let Some(s) = sampler {
        s.abort();
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let mode = match rate {
        Some(r) => format!("open loop at {r}/s"),
        None => "closed loop".to_string(),
    };
    println!(
        "equality searches (uid=...), {clients} clients, {mode}, {secs} s: {} searches, {:.0}/s, p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        lat.len(),
        lat.len() as f64 / secs as f64,
        pct(0.50),
        pct(0.99),
        lat[lat.len() - 1]
    );
    if let (Some(p), Some(c0)) = (pid, cpu0) {
        let (cpu, now, hwm) = proc_stats(p);
        println!(
            "server process {p}: CPU {:.2} s during the load ({:.0}% of one core), RSS {now} MiB after, {} MiB peak during the load, {hwm} MiB peak since start",
            cpu - c0,
            (cpu - c0) * 100.0 / secs as f64,
            peak.load(std::sync::atomic::Ordering::Relaxed),
        );
    }
}

#[tokio::main]
async fn main() {
    let (users, groups, clients, secs) = (arg(1, 10_000), arg(2, 1_000), arg(3, 8), arg(4, 10));
    let rate: Option<u64> = env_parse("USERSYNC_LDAP_BENCH_RATE");
    if let Some(addr) = env_parse::<std::net::SocketAddr>("USERSYNC_LDAP_BENCH_TARGET") {
        let pid: Option<u32> = env_parse("USERSYNC_LDAP_BENCH_PID");
        if let Some(p) = pid {
            let (cpu, rss, hwm) = proc_stats(p);
            println!("server process {p} before: CPU {cpu:.2} s, RSS {rss} MiB, peak {hwm} MiB");
        }
        paged_rounds(addr, 3, pid).await;
        equality_load(addr, users, clients, secs, rate, pid).await;
        return;
    }
    if let Ok(path) = std::env::var("USERSYNC_LDAP_BENCH_STORE") {
        if let Some(addr) = env_parse::<std::net::SocketAddr>("USERSYNC_LDAP_BENCH_SERVE") {
            let server = usersync_ldap::Server::bind(
                config(addr),
                Arc::new(move || SqliteStore::open(std::path::Path::new(&path))),
            )
            .await
            .expect("bind");
            println!("listening on ldap://{addr} ({} entries)", server.entries());
            server.run(std::future::pending()).await.expect("serve");
            return;
        }
        let t = Instant::now();
        fill(
            &mut SqliteStore::open(std::path::Path::new(&path)).expect("store"),
            users,
            groups,
        );
        println!(
            "store {path}: {users} users, {groups} groups written in {:.2?}",
            t.elapsed()
        );
        if let Ok(ldif) = std::env::var("USERSYNC_LDAP_BENCH_LDIF") {
            let t = Instant::now();
            let mut store = SqliteStore::open(std::path::Path::new(&path)).expect("store");
            let dir = usersync_ldap::server::load(&mut store, &config("127.0.0.1:0".parse().expect("addr")))
                .expect("load the tree");
            let file = std::fs::File::create(&ldif).expect("create the LDIF");
            let n = usersync_ldap::ldif::write(
                &mut std::io::BufWriter::new(file),
                &dir,
                usersync_ldap::ldif::Operational::EntryUuid,
            )
            .expect("write the LDIF");
            println!("LDIF {ldif}: {n} entries in {:.2?}", t.elapsed());
        }
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.db");
    let t = Instant::now();
    fill(&mut SqliteStore::open(&path).expect("store"), users, groups);
    println!(
        "store: {users} users, {groups} groups, 3 memberships each: written in {:.2?}",
        t.elapsed()
    );
    let cfg = config("127.0.0.1:0".parse().expect("addr"));
    let (rss0, _) = rss();
    let t = Instant::now();
    let p2 = path.clone();
    let server = usersync_ldap::Server::bind(cfg, Arc::new(move || SqliteStore::open(&p2)))
        .await
        .expect("bind");
    let (rss1, _) = rss();
    println!(
        "tree: {} entries loaded in {:.2?} (first load allocates the POSIX numbers); RSS {} -> {} MiB",
        server.entries(),
        t.elapsed(),
        rss0,
        rss1
    );
    let addr = server.local_addrs().0.expect("addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stop_rx.await;
    }));

    // a full paged subtree search of all users, 500 per page; then the equality searches
    paged_rounds(addr, 3, None).await;
    equality_load(addr, users, clients, secs, rate, None).await;
    let (now, peak) = rss();
    println!("process RSS (server + clients): {now} MiB now, {peak} MiB peak");
    // USERSYNC_LDAP_BENCH_HOLD=SECS: keep serving, for measuring with other clients (ldapsearch)
    if let Some(secs) = std::env::var("USERSYNC_LDAP_BENCH_HOLD")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        println!("serving ldap://{addr} as {BIND_DN} / {PW} for {secs} s");
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    let _ = stop_tx.send(());
    let _ = task.await;
}
