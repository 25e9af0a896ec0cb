//! `cargo xtask package [--all | ID...] [--out DIR] [--profile release]`
//! `cargo xtask test [CARGO TEST ARGS...]`
//!
//! `test` is the project's whole test command on a fresh machine: it installs the real components
//! the tests use (every `tests/<area>/setup.sh`, e.g. tests/scim/setup.sh: the pinned scim2-server
//! in a venv under target/), builds
//! the workspace (the integration tests run the built binary and plugin libraries), then runs
//! `cargo test --workspace` with the given arguments.
//!
//! Builds each connector's plugin library with cargo and writes
//! `usersync-connector-<id>-<version>-<target>.tar.gz` plus `SHA256SUMS` into the output
//! directory (default `target/packages`). The manifest packaged is the connector's own, from
//! the same commit as the library.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use usersync_sdk::Connector;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "usersync project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build release packages of connector plugins.
    Package {
        /// Connector ids to package.
        ids: Vec<String>,
        /// Package every connector.
        #[arg(long)]
        all: bool,
        /// Output directory.
        #[arg(long, default_value = "target/packages")]
        out: PathBuf,
        /// Cargo profile to build the libraries with.
        #[arg(long, default_value = "release")]
        profile: String,
    },
    /// Install the real components the tests use, build the workspace, run every test.
    Test {
        /// Passed to both `cargo build --workspace` and `cargo test --workspace` (e.g. `--locked`).
        #[arg(long)]
        locked: bool,
        /// Passed to `cargo test --workspace` after `--` (e.g. a test name filter).
        #[arg(last = true)]
        test_args: Vec<String>,
    },
}

fn connectors() -> Vec<Box<dyn Connector>> {
    vec![
        usersync_connector_entra::connector(),
        usersync_connector_google::connector(),
        usersync_connector_keycloak::connector(),
        usersync_connector_okta::connector(),
        usersync_connector_onelogin::connector(),
    ]
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Package {
            ids,
            all,
            out,
            profile,
        } => package(ids, all, out, profile),
        Task::Test { locked, test_args } => test(locked, &test_args),
    }
}

/// Run a command from the workspace root; fail naming it when it fails.
fn run(what: &str, cmd: &mut Command) -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = cmd
        .current_dir(&root)
        .status()
        .with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Every `tests/<area>/setup.sh`, in name order: each installs the real components its area's
/// tests use (idempotent; a failure stops the whole test command, naming the script).
fn setup_scripts() -> anyhow::Result<Vec<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root.join("tests")).context("reading tests/")? {
        let area = entry.context("reading tests/")?.file_name();
        let script = format!("tests/{}/setup.sh", area.to_string_lossy());
        if root.join(&script).is_file() {
            found.push(script);
        }
    }
    found.sort();
    Ok(found)
}

fn test(locked: bool, test_args: &[String]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for script in setup_scripts()? {
        eprintln!("== xtask test: real components: sh {script}");
        run(&script, Command::new("sh").arg(&script))?;
    }
    let lock: &[&str] = if locked { &["--locked"] } else { &[] };
    eprintln!("== xtask test: cargo build --workspace");
    run(
        "cargo build --workspace",
        Command::new(&cargo).args(["build", "--workspace"]).args(lock),
    )?;
    eprintln!("== xtask test: cargo test --workspace");
    let mut t = Command::new(&cargo);
    t.args(["test", "--workspace"]).args(lock);
    if !test_args.is_empty() {
        t.arg("--").args(test_args);
    }
    run("cargo test --workspace", &mut t)
}

fn package(ids: Vec<String>, all: bool, out: PathBuf, profile: String) -> anyhow::Result<()> {
    let available = connectors();
    let chosen: Vec<&Box<dyn Connector>> = if all {
        available.iter().collect()
    } else {
        if ids.is_empty() {
            bail!("name connector ids to package, or pass --all");
        }
        ids.iter()
            .map(|id| {
                available
                    .iter()
                    .find(|c| c.manifest().id == *id)
                    .with_context(|| format!("no connector with id `{id}`"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    for c in chosen {
        let manifest = c.manifest();
        let crate_name = format!("usersync-connector-{}", manifest.id);
        let lib = build_cdylib(&crate_name, &profile)?;
        let pkg = usersync_release::build_package(&lib, &manifest, usersync_release::HOST_TARGET, &out)
            .with_context(|| format!("packaging {crate_name}"))?;
        let bytes = std::fs::read(&pkg).with_context(|| pkg.display().to_string())?;
        println!("{}  {}", usersync_release::sha256_hex(&bytes), pkg.display());
    }
    println!("checksums: {}", out.join("SHA256SUMS").display());
    Ok(())
}

/// Build one crate's cdylib and return its path, read from cargo's JSON messages.
fn build_cdylib(crate_name: &str, profile: &str) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--locked",
            "--profile",
            profile,
            "-p",
            crate_name,
            "--message-format=json-render-diagnostics",
        ])
        .output()
        .context("running cargo build")?;
    if !output.status.success() {
        bail!(
            "cargo build -p {crate_name} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let is_cdylib = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|x| x == "cdylib"));
        if !is_cdylib {
            continue;
        }
        if let Some(files) = msg["filenames"].as_array() {
            for f in files.iter().filter_map(|f| f.as_str()) {
                if Path::new(f).extension().is_some_and(|e| e == "so") {
                    return Ok(PathBuf::from(f));
                }
            }
        }
    }
    bail!("cargo built {crate_name} but reported no cdylib (is crate-type [\"rlib\", \"cdylib\"] set?)")
}
