//! Load the LDAP view with a generated store and measure it (docs/benchmarks.md, "LDAP view").
//!
//! ```sh
//! cargo run --release -p usersync-ldap --example ldap_bench -- 10000 1000 8 10
//! ```
//! Arguments: users, groups, concurrent clients, seconds of equality searches. The store is a
//! temporary SQLite file written through the Store API (one applied run); the server runs in this
//! process on 127.0.0.1 and the clients speak LDAP to it over TCP (ldap3_proto's codec).
//! `USERSYNC_LDAP_BENCH_HOLD=60` keeps it serving afterwards, for timing other clients.

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

#[tokio::main]
async fn main() {
    let (users, groups, clients, secs) = (arg(1, 10_000), arg(2, 1_000), arg(3, 8), arg(4, 10));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.db");
    let t = Instant::now();
    fill(&mut SqliteStore::open(&path).expect("store"), users, groups);
    println!(
        "store: {users} users, {groups} groups, 3 memberships each: written in {:.2?}",
        t.elapsed()
    );
    std::env::set_var("USERSYNC_LDAP_BENCH_PW", PW);
    let mut cfg = LdapConfig::new("dc=example,dc=com");
    cfg.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.posix = true;
    cfg.service_accounts = vec![LdapServiceAccount {
        dn: BIND_DN.into(),
        password: SecretRef::Env {
            env: "USERSYNC_LDAP_BENCH_PW".into(),
        },
    }];
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

    // a full paged subtree search of all users, 500 per page
    let mut c = connect(addr).await;
    for round in 0..3 {
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
        println!(
            "paged search of all users (round {round}): {total} entries in {pages} pages, {:.2?}",
            t.elapsed()
        );
    }

    // equality searches by uid from `clients` connections for `secs` seconds
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for k in 0..clients {
        tasks.push(tokio::spawn(async move {
            let mut c = connect(addr).await;
            let mut lat = Vec::new();
            let mut i = k * 7919;
            let mut id = 2;
            while Instant::now() < deadline {
                let filter = LdapFilter::Equality("uid".into(), format!("user{}", i % users));
                let t = Instant::now();
                let (n, _) = search(&mut c, id, "dc=example,dc=com", filter, vec![]).await;
                lat.push(t.elapsed());
                assert_eq!(n, 1);
                i += 1;
                id += 1;
            }
            lat
        }));
    }
    let mut lat: Vec<Duration> = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("client"));
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "equality searches (uid=...) over {} entries, {clients} clients, {secs} s: {} searches, {:.0}/s, p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        users + groups,
        lat.len(),
        lat.len() as f64 / secs as f64,
        pct(0.50),
        pct(0.99),
        lat[lat.len() - 1]
    );
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
