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
