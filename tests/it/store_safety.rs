//! Store safety (issue 17 items 4, 7, 9): `usersync` (the binary) against the Okta emulator with
//! stores that are shared by two runs at once, written by a newer usersync, damaged, or in a
//! directory the user cannot write. Expectations come from the store file, its run rows and the
//! emulator's request counter, not from the code under test.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use usersync_bench::{page_size_option, write_config, Connection};
use usersync_emulator::{start, EmulatorOptions, FaultConfig, GenConfig, RunningEmulator};
use usersync_store::{SqliteStore, Store};

/// Upper bound for one `usersync` invocation; a hang fails the test.
const RUN_LIMIT: Duration = Duration::from_secs(180);

const PROVIDER: &str = "okta";

async fn emulator(users: u32) -> RunningEmulator {
    let mut opts = EmulatorOptions::new(PROVIDER);
    opts.gen = GenConfig {
        users,
        groups: 20,
        seed: 17,
        ..GenConfig::default()
    };
    start(opts).await.expect("start emulator")
}

/// A config for `emu` in `dir`, with the store at `store` and small pages (a fetch spans many
/// requests, so two runs started together overlap).
async fn config(emu: &RunningEmulator, dir: &Path, store: &Path) -> PathBuf {
    let info = emu.info().await;
    let mut conn = Connection::from_emulator_info(&info, None).expect("connection from emulator info");
    if let Some((opt, _)) = page_size_option(PROVIDER) {
        conn.set_option(opt, serde_json::json!(20));
    }
    let config = write_config(dir, &[conn], "max_retries = 3", "").expect("write config");
    let text = std::fs::read_to_string(&config).expect("read config");
    let default_store = dir.join("store.db").to_string_lossy().into_owned();
    let text = text.replacen(&default_store, &store.to_string_lossy(), 1);
    std::fs::write(&config, text).expect("write config");
    config
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn usersync(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut c = crate::support::usersync_command(config);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    output(c, args).await
}

async fn output(mut c: tokio::process::Command, args: &[&str]) -> Out {
    let out = tokio::time::timeout(RUN_LIMIT, c.output())
        .await
        .unwrap_or_else(|_| panic!("`usersync {args:?}` hung for {RUN_LIMIT:?}"))
        .expect("run usersync");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const SYNC: &[&str] = &["sync", "--format", "json", "--no-progress"];

fn requests(emu: &RunningEmulator) -> u64 {
    emu.ctx.stats.requests.load(Ordering::SeqCst)
}

/// Text of a raw SQLite error leaking out instead of a store error that says what to do.
fn assert_no_raw_sql_error(what: &str, out: &Out) {
    for raw in [
        "already exists",
        "store database error",
        "database is locked",
        "attempt to write a readonly database",
        "UNIQUE constraint",
    ] {
        assert!(
            !out.stderr.contains(raw) && !out.stdout.contains(raw),
            "{what}: raw SQLite error `{raw}`:\nstdout: {}\nstderr: {}",
            out.stdout,
            out.stderr
        );
    }
}

/// Open a store to check it, without writing to it (migrating it first when an older usersync
/// wrote it).
fn open_for_test(path: &Path) -> SqliteStore {
    match SqliteStore::open_read_only(path) {
        Err(usersync_store::StoreError::NeedsUpgrade { .. }) => SqliteStore::open(path),
        other => other,
    }
    .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// The `users.created` of every run row of the store, and its number of users.
fn created_per_run_and_users(store: &Path) -> (Vec<(String, u64)>, usize) {
    let s = open_for_test(store);
    let runs = s.runs(None, 100).expect("runs");
    let created = runs
        .iter()
        .map(|r| {
            (
                r.status.as_str().to_string(),
                r.counts
                    .pointer("/users/created")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0),
            )
        })
        .collect();
    (created, s.users(None).expect("users").len())
}

/// Item 4: two first syncs started together on one empty store, four times (twice refusing a
/// held connection at once, twice waiting for it). Never a raw SQL error; the store holds each
/// user once and the run rows' `created` add up to one run's: the second run either waited and
/// then created nothing, or refused naming the run that holds the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_syncs_are_serialised_and_plan_against_the_applied_state() {
    let emu = emulator(400).await;
    // what one sync stores, from a store of its own
    let reference = tempfile::tempdir().expect("tempdir");
    let reference_store = reference.path().join("store.db");
    let out = usersync(&config(&emu, reference.path(), &reference_store).await, SYNC, &[]).await;
    assert_eq!(out.code, 0, "reference sync: {}", out.stderr);
    let users = created_per_run_and_users(&reference_store).1;
    assert!(users > 300, "{users} users");
    // every request a little slow, so that the two runs' fetches overlap
    emu.set_faults(FaultConfig {
        latency_ms: 20,
        ..FaultConfig::default()
    })
    .expect("latency");
    for pair in 0..4 {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("store.db");
        let config = config(&emu, dir.path(), &store).await;
        let wait = if pair < 2 { "0" } else { "120" };
        let env = [("USERSYNC_LOCK_WAIT_SECS", wait)];
        let (a, b) = tokio::join!(usersync(&config, SYNC, &env), usersync(&config, SYNC, &env));
        let mut refused = 0;
        for (name, out) in [("first", &a), ("second", &b)] {
            let what = format!("pair {pair} (wait {wait}s), {name} run");
            assert_no_raw_sql_error(&what, out);
            match out.code {
                0 => {}
                1 => {
                    refused += 1;
                    // on stderr, and in the JSON report's errors
                    for text in [&out.stderr, &out.stdout] {
                        assert!(
                            text.contains("is being synced by run") && text.contains("(pid "),
                            "{what}: a refusal must name the run holding the connection:\n{}\n{}",
                            out.stdout,
                            out.stderr
                        );
                    }
                }
                other => panic!(
                    "{what}: exit {other}\nstdout: {}\nstderr: {}",
                    out.stdout, out.stderr
                ),
            }
        }
        assert!(refused < 2, "pair {pair}: both runs refused");
        let (runs, stored_users) = created_per_run_and_users(&store);
        assert_eq!(stored_users, users, "pair {pair}: users in the store");
        let applied: Vec<&(String, u64)> = runs.iter().filter(|(s, _)| s == "applied").collect();
        assert_eq!(applied.len(), 2 - refused, "pair {pair}: applied runs {runs:?}");
        eprintln!(
            "pair {pair} (wait {wait}s): exits {} and {}, runs (status, created) {runs:?}",
            a.code, b.code
        );
        let created: u64 = applied.iter().map(|(_, n)| n).sum();
        assert_eq!(
            created, users as u64,
            "pair {pair}: the runs' `created` add up to one run's ({runs:?})"
        );
    }
}

/// A store file's bytes (compared whole before and after: stronger than a hash).
fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Item 7: a store written by a newer usersync (here: schema version 99, rollback journal) is
/// refused before anything is fetched, and its file is not modified (before the fix its journal
/// mode was switched to WAL first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_store_is_refused_unmodified_before_fetching() {
    let emu = emulator(50).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.db");
    {
        // what a newer usersync leaves: a higher user_version, in the rollback journal mode
        let mem = SqliteStore::open_in_memory().expect("mem");
        let c = mem.connection();
        c.pragma_update(None, "user_version", 99).expect("bump version");
        c.execute_batch(&format!(
            "VACUUM INTO '{}'",
            store.to_string_lossy().replace('\'', "''")
        ))
        .expect("write a store file");
    }
    let before = bytes(&store);
    let config = config(&emu, dir.path(), &store).await;
    let out = usersync(&config, SYNC, &[]).await;
    assert_eq!(
        out.code, 1,
        "exit code\nstdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr.contains(&*store.to_string_lossy()) && out.stderr.contains("schema version 99"),
        "the refusal names the store and its version:\n{}",
        out.stderr
    );
    assert_eq!(requests(&emu), 0, "nothing was fetched");
    assert!(bytes(&store) == before, "the newer store's file was modified");
    // reading commands refuse it the same way, also without touching it
    let out = usersync(&config, &["users", "list", "--format", "json"], &[]).await;
    assert_eq!(out.code, 1, "users list: {}", out.stderr);
    assert!(out.stderr.contains("schema version 99"), "{}", out.stderr);
    assert!(bytes(&store) == before, "`users list` modified the newer store");
}

/// Item 7: a damaged store (one page of the users table overwritten) is refused before anything
/// is fetched, with its path; no run row is written into it and the file is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_is_refused_unmodified_before_fetching() {
    let emu = emulator(300).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.db");
    let config = config(&emu, dir.path(), &store).await;
    let out = usersync(&config, SYNC, &[]).await;
    assert_eq!(out.code, 0, "first sync: {}", out.stderr);
    // garble the users table's root page (the rest of the file, the runs table included, is intact)
    let (page_size, root): (i64, i64) = {
        // read through an attached read-only copy of SQLite's view: nothing is written to the file
        let mem = SqliteStore::open_in_memory().expect("mem");
        let c = mem.connection();
        c.execute(
            "ATTACH DATABASE ?1 AS s",
            [format!("file:{}?mode=ro", store.display())],
        )
        .expect("attach");
        let page_size = c
            .query_row("PRAGMA s.page_size", [], |r| r.get(0))
            .expect("page size");
        let root = c
            .query_row(
                "SELECT rootpage FROM s.sqlite_master WHERE type = 'table' AND name = 'users'",
                [],
                |r| r.get(0),
            )
            .expect("root page");
        (page_size, root)
    };
    let mut data = bytes(&store);
    let start = ((root - 1) * page_size) as usize;
    for b in &mut data[start + 8..start + page_size as usize] {
        *b = 0xA5;
    }
    std::fs::write(&store, &data).expect("garble");
    let before_requests = requests(&emu);
    let out = usersync(&config, SYNC, &[]).await;
    assert_eq!(
        out.code, 1,
        "exit code\nstdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr.contains(&*store.to_string_lossy()) && out.stderr.contains("damaged"),
        "the refusal names the store and says it is damaged:\n{}",
        out.stderr
    );
    assert_eq!(requests(&emu), before_requests, "nothing was fetched");
    assert!(
        bytes(&store) == data,
        "the damaged store was modified (a run row written?)"
    );
}

/// Item 9: a store whose directory the user cannot write. `users list` reads it (read-only, no
/// -wal/-shm needed), and `sync` fails naming the path and the fix instead of SQLite's
/// `attempt to write a readonly database`. Runs the binary as uid 65534 with `setpriv` (the tests
/// run as root, which ignores file permissions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_in_a_read_only_directory_is_read_and_a_sync_names_the_path() {
    use std::os::unix::fs::{chown, PermissionsExt};
    let setpriv = Path::new("/usr/bin/setpriv");
    let is_root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if !setpriv.exists() || !is_root {
        eprintln!("SKIPPED: needs root and /usr/bin/setpriv to run usersync as another user");
        return;
    }
    let emu = emulator(60).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = dir.path().join("store");
    std::fs::create_dir(&store_dir).expect("store dir");
    let store = store_dir.join("store.db");
    let config = config(&emu, dir.path(), &store).await;
    let out = usersync(&config, SYNC, &[]).await;
    assert_eq!(out.code, 0, "first sync (as root): {}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("sync json");
    let users = crate::support::count(&report, "/0/users/created") as usize;
    assert!(users > 0);
    // uid 65534 may read everything but write nothing in the store's directory
    let home = dir.path().join("home");
    std::fs::create_dir(&home).expect("home");
    chown(&home, Some(65534), Some(65534)).expect("chown home");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for entry in std::fs::read_dir(dir.path().join("secrets")).expect("secrets") {
        chown(entry.expect("entry").path(), Some(65534), Some(65534)).expect("chown secret");
    }
    std::fs::set_permissions(dir.path().join("secrets"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let as_nobody = |args: &[&str]| {
        let mut c = tokio::process::Command::new(setpriv);
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(crate::support::usersync_bin())
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("RUST_LOG")
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("NO_PROXY", "127.0.0.1,localhost")
            .kill_on_drop(true);
        c
    };
    let before = bytes(&store);
    let out = output(
        as_nobody(&["users", "list", "--format", "json"]),
        &["users", "list"],
    )
    .await;
    assert_eq!(out.code, 0, "users list as uid 65534: {}", out.stderr);
    let listed: serde_json::Value = serde_json::from_str(&out.stdout).expect("users list json");
    assert_eq!(listed.as_array().map(|a| a.len()), Some(users), "listed users");
    let out = output(as_nobody(SYNC), SYNC).await;
    assert_no_raw_sql_error("sync as uid 65534", &out);
    assert_eq!(
        out.code, 1,
        "sync as uid 65534\nstdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr.contains(&*store_dir.to_string_lossy())
            && out.stderr.contains("not writable by uid 65534"),
        "the error names the directory and who cannot write it:\n{}",
        out.stderr
    );
    assert!(bytes(&store) == before, "the store was modified");
    assert!(
        !store_dir.join("store.db-wal").exists(),
        "nothing was created beside the store"
    );
}
