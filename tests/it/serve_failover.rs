//! Issue 24, `usersync serve` on several hosts: two real `serve` processes against one
//! PostgreSQL schema (the server `USERSYNC_TEST_POSTGRES` names; skipped by name without it) and
//! the Okta emulator. Exactly one runs the connection; kill -9 of the leader during a run hands
//! it to the other within the lease bound, with the store equal to a single-host sync and no run
//! applied twice; a leader paused (SIGSTOP) inside its apply transaction and resumed after the
//! takeover cannot commit: the database refuses it by the lease's fencing token.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use usersync_bench::{toml_str, write_config, Connection};
use usersync_emulator::RunningEmulator;
use usersync_store::{PgStore, RunRecord, RunStatus, Store};

const TOKEN: &str = "failover-test-token-3b7e";
/// `[serve] lease` in these tests (the shortest accepted).
const LEASE: Duration = Duration::from_secs(3);

/// The server URL, or None after saying the test is skipped.
fn server(name: &str) -> Option<String> {
    match std::env::var("USERSYNC_TEST_POSTGRES") {
        Ok(u) => Some(u),
        Err(_) => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "skipped: serve_failover::{name} (USERSYNC_TEST_POSTGRES is not set; tests/postgres/setup.sh)"
            );
            None
        }
    }
}

/// A store URL in a schema of its own, dropped when the guard goes.
struct Schema(String, String);

impl Schema {
    fn new(base: &str, name: &str) -> Schema {
        let schema = format!("usersync_it_fo_{name}_{}", std::process::id());
        let sep = if base.contains('?') { '&' } else { '?' };
        let s = Schema(format!("{base}{sep}schema={schema}"), schema);
        s.drop_schema();
        s
    }

    fn drop_schema(&self) {
        let admin = PgStore::open(&self.0).expect("reach the server");
        admin
            .execute_batch(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.1))
            .expect("drop the schema");
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        self.drop_schema();
    }
}

struct Setup {
    emu: RunningEmulator,
    dir: tempfile::TempDir,
    /// serve's config: the PostgreSQL store, `[serve]` with the short lease, `every = "10s"`.
    config: PathBuf,
    /// The same connection into a SQLite file: the single-host reference.
    reference: PathBuf,
    schema: Schema,
}

async fn setup(pg: &str, name: &str) -> Setup {
    let emu = crate::support::start_emulator("okta", 60, 6, 24).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let okta = Connection::from_emulator_info(&emu.info().await, None).expect("connection");
    let reference = write_config(dir.path(), &[okta], "", "").expect("config");
    let base = std::fs::read_to_string(&reference).expect("read config");
    let schema = Schema::new(pg, name);
    std::fs::write(dir.path().join("serve-token"), format!("{TOKEN}\n")).expect("token");
    let text = format!(
        "[serve]\nlisten = \"127.0.0.1:0\"\ntoken = {{ file = {} }}\nlease = \"{}s\"\nshutdown_grace = \"5s\"\n\n{}",
        toml_str(&dir.path().join("serve-token").to_string_lossy()),
        LEASE.as_secs(),
        base.replacen("[store]\n", &format!("[store]\nurl = {}\n", toml_str(&schema.0)), 1)
            .replacen("connector = \"okta\"\n", "connector = \"okta\"\nevery = \"10s\"\n", 1)
    );
    let config = dir.path().join("serve.toml");
    std::fs::write(&config, text).expect("write config");
    Setup {
        emu,
        dir,
        config,
        reference,
        schema,
    }
}

/// Start `usersync serve`; returns it and its URL once it listens.
async fn spawn(config: &Path) -> (tokio::process::Child, String) {
    let mut child = crate::support::usersync_command(config)
        .arg("serve")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn usersync serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("serve prints its URL within 60s")
        .expect("read stdout")
        .expect("serve printed nothing (did it exit?)");
    let url = line
        .strip_prefix("usersync serve: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

/// `/api/status` of the serve at `url`.
async fn status(url: &str) -> String {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .get(format!("{url}/api/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET /api/status")
        .text()
        .await
        .expect("body")
}

fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().expect("running").to_string();
    let st = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .expect("kill");
    assert!(st.success(), "kill {sig} {pid}");
}

impl Setup {
    fn store(&self) -> PgStore {
        PgStore::open_read_only(&self.schema.0).expect("open the PostgreSQL store")
    }

    fn runs(&self) -> Vec<RunRecord> {
        PgStore::open_read_only(&self.schema.0)
            .and_then(|s| s.runs(Some("okta"), 1000))
            .unwrap_or_default()
    }

    async fn wait_runs(
        &self,
        what: &str,
        within: Duration,
        pred: impl Fn(&[RunRecord]) -> bool,
    ) -> Vec<RunRecord> {
        let until = Instant::now() + within;
        loop {
            let runs = self.runs();
            if pred(&runs) {
                return runs;
            }
            assert!(
                Instant::now() < until,
                "timed out waiting for {what}; runs: {:?}",
                summary(&runs)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn slow(&self, ms: u64) {
        let mut f = self.emu.ctx.faults.config();
        f.latency_ms = ms;
        self.emu.ctx.faults.set(f).expect("faults");
    }

    /// The store must equal what one host's `sync` of the same org makes.
    async fn assert_like_single_host(&self) {
        let run = crate::support::sync_report(&self.reference, &[], crate::support::NO_ENV).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        let want = crate::support::store_state(&self.dir.path().join("store.db"), "okta");
        let got = self.store().state("okta").expect("read the PostgreSQL store");
        assert!(!want.users.is_empty());
        crate::support::assert_same_store(&got, &want, "serve on two hosts vs one host's sync");
    }
}

fn summary(runs: &[RunRecord]) -> Vec<(i64, &'static str)> {
    runs.iter().map(|r| (r.id, r.status.as_str())).collect()
}

/// No two runs of the connection overlapped in time (one host ran at a time), and no run
/// applied on top of another still open.
fn assert_never_two_at_once(runs: &[RunRecord]) {
    let mut spans: Vec<(i64, i64, i64)> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Applied)
        .map(|r| (r.started_ms, r.finished_ms.unwrap_or(i64::MAX), r.id))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(
            w[0].1 <= w[1].0,
            "applied runs {} and {} overlapped: {:?}",
            w[0].2,
            w[1].2,
            summary(runs)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_leader_during_a_run_hands_over_within_the_lease() {
    let Some(pg) = server("kill_9_of_the_leader_during_a_run_hands_over_within_the_lease") else {
        return;
    };
    let s = setup(&pg, "kill").await;
    let (mut a, a_url) = spawn(&s.config).await;
    s.wait_runs("the first host's first run", Duration::from_secs(60), |r| {
        r.iter().any(|r| r.status == RunStatus::Applied)
    })
    .await;
    let (mut b, b_url) = spawn(&s.config).await;
    // several schedule periods with both up: runs never overlap (one host runs)
    tokio::time::sleep(LEASE * 2).await;
    assert_never_two_at_once(&s.runs());
    let standby = status(&b_url).await;
    assert!(
        standby.contains("\"standby\""),
        "the second host stands by: {standby}"
    );
    // both hosts answer reads and name the same leader: the first host's process
    let leader = format!(":{}\"", a.id().expect("running"));
    assert!(
        standby.contains("\"leader\":\"") && standby.contains(&leader),
        "{standby}"
    );
    let first = status(&a_url).await;
    assert!(
        first.contains(&leader) && !first.contains("\"standby\""),
        "{first}"
    );
    // a slow provider: the next run takes a while; kill -9 the leader while it runs
    s.slow(400);
    let runs = s
        .wait_runs("a run in progress", Duration::from_secs(30), |r| {
            r.first().is_some_and(|r| r.status == RunStatus::Running)
        })
        .await;
    let killed = runs[0].id;
    // which host runs it: the one whose kill stops it; try the first host (the leader so far)
    signal(&a, "-KILL");
    let _ = a.wait().await;
    let died = Instant::now();
    s.slow(0);
    let runs = s
        .wait_runs("the other host's takeover", Duration::from_secs(60), |r| {
            r.iter().any(|r| r.id > killed && r.status == RunStatus::Applied)
        })
        .await;
    let took = died.elapsed();
    eprintln!("serve_failover: takeover after kill -9 took {took:?} (lease {LEASE:?})");
    // the bound: the lease lapses, then the standby's next attempt and its scheduler's next look
    assert!(
        took <= LEASE * 2 + Duration::from_secs(5),
        "takeover took {took:?}"
    );
    let k = runs
        .iter()
        .find(|r| r.id == killed)
        .expect("the killed run's row");
    assert!(
        matches!(k.status, RunStatus::Interrupted | RunStatus::Applied),
        "the killed run is recorded interrupted (or applied, had it committed): {:?}",
        summary(&runs)
    );
    signal(&b, "-TERM");
    let _ = tokio::time::timeout(Duration::from_secs(30), b.wait()).await;
    let runs = s.runs();
    assert!(
        runs.iter().all(|r| r.status != RunStatus::Running),
        "{:?}",
        summary(&runs)
    );
    assert_never_two_at_once(&runs);
    s.assert_like_single_host().await;
}

/// One answer of `psql` (the real client) on the server `pg`, in the test's schema.
fn psql(pg: &str, schema: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args([pg, "-v", "ON_ERROR_STOP=1", "-qAtc"])
        .arg(format!("SET search_path TO {schema}; {sql}"))
        .output()
        .expect("psql (tests/postgres/setup.sh installs it)");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A `psql` session holding `run`'s row in `runs` locked (`FOR UPDATE`) until [`RowLock::release`]:
/// the apply of that run then waits in its transaction, at the statement that records its outcome.
struct RowLock(tokio::process::Child);

impl RowLock {
    async fn take(pg: &str, schema: &str, run: i64) -> RowLock {
        use tokio::io::AsyncWriteExt as _;
        let mut child = tokio::process::Command::new("psql")
            .args([pg, "-v", "ON_ERROR_STOP=1", "-qAt"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("psql (tests/postgres/setup.sh installs it)");
        let mut stdin = child.stdin.take().expect("stdin");
        let sql = format!(
            "SET search_path TO {schema};\nBEGIN;\nSELECT 'locked' FROM runs WHERE id = {run} FOR UPDATE;\n"
        );
        stdin.write_all(sql.as_bytes()).await.expect("write to psql");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("psql locks the row");
        assert_eq!(line.ok().flatten().as_deref(), Some("locked"));
        child.stdin = Some(stdin);
        RowLock(child)
    }

    async fn release(mut self) {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = self.0.stdin.take().expect("stdin");
        stdin.write_all(b"ROLLBACK;\n\\q\n").await.expect("write to psql");
        drop(stdin);
        let st = tokio::time::timeout(Duration::from_secs(10), self.0.wait())
            .await
            .expect("psql ends")
            .expect("psql");
        assert!(st.success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_in_its_apply_and_resumed_after_the_takeover_is_fenced_by_the_token() {
    let Some(pg) =
        server("a_leader_paused_in_its_apply_and_resumed_after_the_takeover_is_fenced_by_the_token")
    else {
        return;
    };
    let s = setup(&pg, "stop").await;
    let schema = s.schema.1.clone();
    let (mut a, a_url) = spawn(&s.config).await;
    s.wait_runs("the first host's first run", Duration::from_secs(60), |r| {
        r.iter().any(|r| r.status == RunStatus::Applied)
    })
    .await;
    let (mut b, _) = spawn(&s.config).await;
    let token = psql(&pg, &schema, "SELECT token FROM leases WHERE name = 'serve'");
    // the leader's next run: hold its row so that its apply waits inside its transaction, after
    // the changes and before the commit; pause the leader there, then let the statement finish
    s.slow(300);
    let runs = s
        .wait_runs("a run in progress", Duration::from_secs(30), |r| {
            r.first().is_some_and(|r| r.status == RunStatus::Running)
        })
        .await;
    let paused = runs[0].id;
    let lock = RowLock::take(&pg, &schema, paused).await;
    s.slow(0);
    let until = Instant::now() + Duration::from_secs(30);
    while psql(
        &pg,
        &schema,
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
         AND query LIKE 'UPDATE runs SET finished_ms%'",
    ) == "0"
    {
        assert!(
            Instant::now() < until,
            "the leader's apply did not reach its outcome"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(&a, "-STOP");
    lock.release().await;
    // the lease lapses; the other host takes it with the next token (its run then waits for the
    // paused transaction's locks)
    let until = Instant::now() + LEASE * 3;
    loop {
        let now = psql(&pg, &schema, "SELECT token FROM leases WHERE name = 'serve'");
        if now != token {
            break;
        }
        assert!(
            Instant::now() < until,
            "the lease was not taken over (token {now})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // wake the paused leader well inside the idle limit (twice the lease): its apply goes on to
    // the final check and meets the next token
    signal(&a, "-CONT");
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let body = status(&a_url).await;
        if body.contains("this process had token") {
            // refused by the lease's token in the apply's transaction (the run lock alone would
            // have let it through: the new leader's run was still waiting for this transaction)
            assert!(
                body.contains("no longer holds") && body.contains("nothing was applied"),
                "{body}"
            );
            break;
        }
        assert!(
            Instant::now() < until,
            "the resumed apply was not refused by the token: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // the new leader's run, waiting on the paused transaction, now runs and applies
    let runs = s
        .wait_runs("the new leader's run", Duration::from_secs(30), |r| {
            r.iter().any(|r| r.id > paused && r.status == RunStatus::Applied)
        })
        .await;
    let p = runs.iter().find(|r| r.id == paused).expect("the paused run");
    assert_ne!(p.status, RunStatus::Applied, "{:?}", summary(&runs));
    signal(&a, "-TERM");
    signal(&b, "-TERM");
    let _ = tokio::time::timeout(Duration::from_secs(30), a.wait()).await;
    let _ = tokio::time::timeout(Duration::from_secs(30), b.wait()).await;
    let runs = s.runs();
    assert_never_two_at_once(&runs);
    s.assert_like_single_host().await;
}
