//! Integration tests: the host with a PostgreSQL store (`[store] url`), against the server
//! `USERSYNC_TEST_POSTGRES` names (each test in schemas of its own, dropped afterwards): `sync`
//! and the reading commands on PostgreSQL give what they give on SQLite, `store migrate` copies a
//! SQLite store verified, and a wrong user is a clear error that never shows the password.

use std::path::Path;

use usersync_emulator::{start, EmulatorOptions, GenConfig};
use usersync_store::{PgStore, SqliteStore, Store};

const TOKEN_ENV: &str = "USERSYNC_IT_PG_OKTA_TOKEN";
const URL_ENV: &str = "USERSYNC_IT_PG_STORE_URL";

/// The server URL, or None after saying the test is skipped.
fn server(name: &str) -> Option<String> {
    match std::env::var("USERSYNC_TEST_POSTGRES") {
        Ok(u) => Some(u),
        Err(_) => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "skipped: postgres_store::{name} (USERSYNC_TEST_POSTGRES is not set; tests/postgres/setup.sh)"
            );
            None
        }
    }
}

/// A store URL in schema `schema` of the server; the schema is dropped when the guard goes.
struct Schema(String, String);

impl Schema {
    fn new(base: &str, name: &str) -> Schema {
        let schema = format!("usersync_it_{name}_{}", std::process::id());
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

fn config(dir: &Path, store: &str, base_url: &str) -> std::path::PathBuf {
    let path = dir.join("usersync.toml");
    std::fs::write(
        &path,
        format!(
            "[store]\n{store}\n\n[runtime]\nmax_retries = 1\n\n[[connections]]\nname = \"okta\"\nconnector = \"okta\"\n\
             [connections.options]\nbase_url = \"{base_url}\"\napi_token = {{ env = \"{TOKEN_ENV}\" }}\n"
        ),
    )
    .expect("config");
    path
}

async fn run(config: &Path, args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let out = crate::support::usersync_command(config)
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .await
        .expect("run usersync");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn sync_reads_and_store_migrate_on_postgres_match_sqlite() {
    let Some(base) = server("sync_reads_and_store_migrate_on_postgres_match_sqlite") else {
        return;
    };
    let mut opts = EmulatorOptions::new("okta");
    opts.gen = GenConfig {
        users: 40,
        groups: 6,
        seed: 24,
        ..GenConfig::default()
    };
    let emu = start(opts).await.expect("emulator");
    let token = emu.credentials().api_token.clone();
    let dir = tempfile::tempdir().expect("dir");
    let synced = Schema::new(&base, "synced");
    let copied = Schema::new(&base, "copied");

    // the same organisation into SQLite and into PostgreSQL
    let sqlite_dir = dir.path().join("sqlite");
    std::fs::create_dir_all(&sqlite_dir).expect("dir");
    let sqlite_cfg = config(&sqlite_dir, "path = \"store.db\"", &emu.http_url);
    let (code, _, err) = run(
        &sqlite_cfg,
        &["sync", "--format", "json", "--no-progress"],
        &[(TOKEN_ENV, &token)],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let pg_cfg = config(
        dir.path(),
        &format!("url = {{ env = \"{URL_ENV}\" }}"),
        &emu.http_url,
    );
    let envs = [(TOKEN_ENV, token.as_str()), (URL_ENV, synced.0.as_str())];
    let (code, _, err) = run(&pg_cfg, &["sync", "--format", "json", "--no-progress"], &envs).await;
    assert_eq!(code, 0, "{err}");
    let sqlite = SqliteStore::open_read_only(&sqlite_dir.join("store.db")).expect("sqlite store");
    let pg = PgStore::open_read_only(&synced.0).expect("pg store");
    assert_eq!(
        pg.state("okta").expect("pg"),
        sqlite.state("okta").expect("sqlite")
    );
    assert!(!pg.users(None).expect("users").is_empty());

    // the reading commands read PostgreSQL
    let (code, out, err) = run(&pg_cfg, &["users", "list", "--format", "json", "--all"], &envs).await;
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).expect("json");
    let (_, sqlite_out, _) = run(&sqlite_cfg, &["users", "list", "--format", "json", "--all"], &[]).await;
    assert_eq!(
        listed,
        serde_json::from_str::<serde_json::Value>(&sqlite_out).expect("json")
    );
    let (code, out, err) = run(&pg_cfg, &["runs", "list", "--format", "json"], &envs).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("applied"), "{out}");
    // a second sync changes nothing
    let (code, out, err) = run(&pg_cfg, &["sync", "--format", "json", "--no-progress"], &envs).await;
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(crate::support::count(&report, "/0/users/created"), 0, "{out}");

    // store migrate: SQLite -> PostgreSQL, verified; a second copy into it is refused
    let from = format!("sqlite:{}", sqlite_dir.join("store.db").display());
    let args = [
        "store",
        "migrate",
        "--from",
        from.as_str(),
        "--to",
        &format!("env:{URL_ENV}"),
        "--format",
        "json",
    ];
    let (code, out, err) = run(&pg_cfg, &args, &[(URL_ENV, copied.0.as_str())]).await;
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["tables"][0]["table"], "users");
    let copy = PgStore::open_read_only(&copied.0).expect("copy");
    assert_eq!(
        copy.state("okta").expect("copy"),
        sqlite.state("okta").expect("sqlite")
    );
    assert_eq!(
        copy.runs(None, 10).expect("runs"),
        sqlite.runs(None, 10).expect("runs")
    );
    let (code, _, err) = run(&pg_cfg, &args, &[(URL_ENV, copied.0.as_str())]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--replace"), "{err}");
}

#[tokio::test]
async fn a_wrong_user_is_a_clear_error_without_the_password() {
    let Some(base) = server("a_wrong_user_is_a_clear_error_without_the_password") else {
        return;
    };
    let mut url = url::Url::parse(&base).expect("url");
    url.set_username("no_such_user_it").expect("user");
    url.set_password(Some("pw-s3cret-value")).expect("password");
    let dir = tempfile::tempdir().expect("dir");
    let cfg = config(
        dir.path(),
        &format!("url = {{ env = \"{URL_ENV}\" }}"),
        "http://127.0.0.1:9",
    );
    for args in [&["sync", "--no-progress"][..], &["users", "list"][..]] {
        let (code, out, err) = run(&cfg, args, &[(URL_ENV, url.as_str()), (TOKEN_ENV, "t")]).await;
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(err.contains("no_such_user_it") && err.contains("****"), "{err}");
        assert!(
            !out.contains("pw-s3cret-value") && !err.contains("pw-s3cret-value"),
            "{err}"
        );
    }
}

/// `usersync ldap serve` on `config` (the service account's password in `USERSYNC_IT_PG_LDAP_PW`);
/// returns it once it listens, with its URL.
async fn ldap_serve(config: &Path, envs: &[(&str, &str)]) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = crate::support::usersync_command(config)
        .args(["ldap", "serve"])
        .envs(envs.iter().copied())
        .env("USERSYNC_IT_PG_LDAP_PW", "ldap-reader-pw")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn usersync ldap serve");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
        .await
        .expect("ldap serve prints its address within 60 s")
        .expect("read stdout")
        .expect("ldap serve printed nothing (did it exit? see its stderr above)");
    let url = line
        .strip_prefix("usersync ldap: listening on ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

/// Every entry under the base, bound as the service account, as sorted LDIF blocks.
async fn ldap_entries(url: &str) -> Vec<String> {
    let out = tokio::process::Command::new("ldapsearch")
        .args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H", url])
        .args([
            "-D",
            "cn=reader,ou=services,dc=example,dc=com",
            "-w",
            "ldap-reader-pw",
        ])
        .args(["-b", "dc=example,dc=com", "(objectClass=*)", "*", "memberOf"])
        .env_remove("LDAPRC")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run ldapsearch (tests/ldap/setup.sh installs it)");
    assert!(
        out.status.success(),
        "ldapsearch {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut blocks: Vec<String> = text
        .split("\n\n")
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .collect();
    blocks.sort();
    blocks
}

#[tokio::test]
async fn ldap_serve_on_postgres_serves_the_tree_and_posix_numbers_it_serves_on_sqlite() {
    let Some(base) = server("ldap_serve_on_postgres_serves_the_tree_and_posix_numbers_it_serves_on_sqlite")
    else {
        return;
    };
    assert!(
        std::process::Command::new("ldapsearch")
            .arg("-VV")
            .output()
            .is_ok(),
        "ldapsearch is missing: run `sh tests/ldap/setup.sh`"
    );
    let mut opts = EmulatorOptions::new("okta");
    opts.gen = GenConfig {
        users: 30,
        groups: 5,
        seed: 23,
        ..GenConfig::default()
    };
    let emu = start(opts).await.expect("emulator");
    let token = emu.credentials().api_token.clone();
    let dir = tempfile::tempdir().expect("dir");
    let schema = Schema::new(&base, "ldap");
    let ldap = |port: u16| {
        format!(
            "\n[ldap]\nbase_dn = \"dc=example,dc=com\"\nlisten = \"127.0.0.1:{port}\"\nposix = true\n\
             [[ldap.service_accounts]]\ndn = \"cn=reader,ou=services,dc=example,dc=com\"\n\
             password = {{ env = \"USERSYNC_IT_PG_LDAP_PW\" }}\n"
        )
    };
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    };
    // the same organisation in a SQLite file and in PostgreSQL, each served by `ldap serve`
    let sqlite_dir = dir.path().join("sqlite");
    std::fs::create_dir_all(&sqlite_dir).expect("dir");
    let sqlite_cfg = config(&sqlite_dir, "path = \"store.db\"", &emu.http_url);
    let pg_cfg = config(
        dir.path(),
        &format!("url = {{ env = \"{URL_ENV}\" }}"),
        &emu.http_url,
    );
    for (cfg, port) in [(&sqlite_cfg, free_port()), (&pg_cfg, free_port())] {
        let mut text = std::fs::read_to_string(cfg).expect("config");
        text.push_str(&ldap(port));
        std::fs::write(cfg, text).expect("config");
    }
    let envs = [(TOKEN_ENV, token.as_str()), (URL_ENV, schema.0.as_str())];
    for cfg in [&sqlite_cfg, &pg_cfg] {
        let (code, _, err) = run(cfg, &["sync", "--no-progress"], &envs).await;
        assert_eq!(code, 0, "{err}");
    }
    let (mut on_sqlite, sqlite_url) = ldap_serve(&sqlite_cfg, &envs).await;
    let (mut on_pg, pg_url) = ldap_serve(&pg_cfg, &envs).await;
    let want = ldap_entries(&sqlite_url).await;
    let got = ldap_entries(&pg_url).await;
    let numbers: Vec<&str> = got
        .iter()
        .flat_map(|b| b.lines())
        .filter_map(|l| l.strip_prefix("uidNumber: "))
        .collect();
    let users = got
        .iter()
        .filter(|b| {
            b.starts_with("dn: cn=")
                && b.lines()
                    .next()
                    .is_some_and(|l| l.ends_with(",ou=users,dc=example,dc=com"))
        })
        .count();
    assert!(users > 20, "the active users are served: {got:?}");
    assert_eq!(numbers.len(), users, "every user has a uidNumber: {got:?}");
    let unique: std::collections::BTreeSet<&str> = numbers.iter().copied().collect();
    assert_eq!(unique.len(), numbers.len(), "uidNumbers collide: {numbers:?}");
    // the same tree, POSIX numbers included (allocated in the same order from one sequence)
    assert_eq!(
        got, want,
        "the LDAP view of PostgreSQL differs from the one of SQLite"
    );
    // a second LDAP host on the same database reads the numbers the first allocated
    let pg_text = std::fs::read_to_string(&pg_cfg).expect("config");
    let (listen, port) = (pg_url.replacen("ldap://", "listen = \"", 1), free_port());
    let second = dir.path().join("second.toml");
    let second_text = pg_text.replacen(&listen, &format!("listen = \"127.0.0.1:{port}"), 1);
    assert_ne!(second_text, pg_text);
    std::fs::write(&second, second_text).expect("config");
    let (mut on_pg2, pg2_url) = ldap_serve(&second, &envs).await;
    assert_eq!(ldap_entries(&pg2_url).await, got);
    for c in [&mut on_sqlite, &mut on_pg, &mut on_pg2] {
        let _ = c.kill().await;
    }
}
