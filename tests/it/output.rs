//! What `usersync sync` prints for an administrator (issue 18, items 3 and 6): the summary first
//! (counts, the gate's verdict, warnings), then at most `--limit` entries per list (`--all` for
//! every entry, JSON always complete); plain log lines without colour codes when stderr is not a
//! terminal; the gate's message said once.

use usersync_bench::{write_config, Connection};

/// A `created` line of the user list (users are named by their email; groups are not).
fn is_user_entry(line: &str) -> bool {
    line.trim_start().starts_with("created ") && line.contains('@')
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn run(config: &std::path::Path, args: &[&str]) -> Out {
    let out = crate::support::usersync_command(config)
        .args(args)
        .output()
        .await
        .expect("run usersync");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_prints_its_summary_first_and_a_bounded_list() {
    let emu = crate::support::start_emulator("okta", 300, 30, 18).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = Connection::from_emulator_info(&emu.info().await, None).expect("connection");
    let config = write_config(dir.path(), &[conn], "", "").expect("config");

    let json = run(
        &config,
        &["sync", "--dry-run", "--no-progress", "--format", "json"],
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    let users = v[0]["users"]["created"].as_u64().expect("created") as usize;
    assert!(users > 200, "{users}");
    let plan = v[0]["plan"]["users"].as_array().map(Vec::len);
    assert_eq!(plan, Some(users), "the JSON plan is complete");

    let dry = run(&config, &["sync", "--dry-run", "--no-progress"]).await;
    assert_eq!(dry.code, 0, "{}\n{}", dry.stdout, dry.stderr);
    let lines: Vec<&str> = dry.stdout.lines().collect();
    // 300 users, hundreds of memberships: at most 20 entries per list plus headers and summary
    assert!(lines.len() <= 80, "{} lines:\n{}", lines.len(), dry.stdout);
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with `{needle}`:\n{}", dry.stdout))
    };
    assert!(
        pos("users:") < pos("user changes"),
        "counts come before the entries"
    );
    assert!(pos("memberships:") < pos("membership changes"));
    let created = lines.iter().filter(|l| is_user_entry(l)).count();
    assert_eq!(created, 20, "20 user entries by default");
    assert!(
        dry.stdout
            .contains(&format!("... and {} more (`usersync runs show", users - 20))
            && dry.stdout.contains("`--all`)"),
        "the cut says how many more and how to see them:\n{}",
        dry.stdout
    );

    let limited = run(&config, &["sync", "--dry-run", "--no-progress", "--limit", "3"]).await;
    let created = limited.stdout.lines().filter(|l| is_user_entry(l)).count();
    assert_eq!(created, 3);

    let all = run(&config, &["sync", "--dry-run", "--no-progress", "--all"]).await;
    let created = all.stdout.lines().filter(|l| is_user_entry(l)).count();
    assert_eq!(created, users, "--all prints every entry");
    assert!(!all.stdout.contains("more ("));

    // stderr is not a terminal here: no colour codes in any log line (with -v there are some)
    let verbose = run(&config, &["-v", "sync", "--dry-run", "--no-progress"]).await;
    assert!(!verbose.stderr.is_empty(), "-v logs something");
    assert!(
        !verbose.stderr.contains('\u{1b}'),
        "ANSI codes on a non-terminal:\n{}",
        verbose.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_run_says_the_gate_verdict_once_before_the_plan() {
    let emu = crate::support::start_emulator("okta", 60, 6, 19).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = Connection::from_emulator_info(&emu.info().await, None).expect("connection");
    let config = write_config(dir.path(), &[conn], "", "").expect("config");
    // full runs: users deleted for good vanish only from a listing
    crate::support::full_runs_only(&config);
    let first = run(&config, &["sync", "--no-progress"]).await;
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    {
        let mut org = emu.org().write().await;
        let gone: Vec<_> = org.live_users().map(|u| u.ix).take(40).collect();
        for ix in gone {
            org.remove_user(ix);
        }
        org.rebuild_index();
    }
    let blocked = run(&config, &["sync", "--no-progress"]).await;
    assert_eq!(blocked.code, 3, "{}\n{}", blocked.stdout, blocked.stderr);
    let gate: Vec<&str> = blocked
        .stdout
        .lines()
        .filter(|l| l.contains("--allow-deletes"))
        .collect();
    assert_eq!(gate.len(), 1, "the verdict once on stdout:\n{}", blocked.stdout);
    assert!(
        !blocked.stderr.contains("--allow-deletes"),
        "the verdict is not repeated on stderr:\n{}",
        blocked.stderr
    );
    let lines: Vec<&str> = blocked.stdout.lines().collect();
    let verdict = lines
        .iter()
        .position(|l| l.contains("--allow-deletes"))
        .expect("verdict");
    let entries = lines
        .iter()
        .position(|l| l.contains("user changes"))
        .expect("user changes");
    assert!(
        verdict < entries,
        "the verdict comes before the list:\n{}",
        blocked.stdout
    );
}
