//! `usersync emulator`: serve a faithful local emulator of one provider's API until interrupted.
//!
//! Only in builds with the `emulators` feature (the default).
#![cfg(feature = "emulators")]

use std::path::PathBuf;

use anyhow::Context;
use usersync_emulator::{EmulatorOptions, FaultConfig, GenConfig};

use crate::GlobalArgs;

/// Arguments of `usersync emulator`.
#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
    /// Provider to emulate: okta, entra, google, keycloak, onelogin.
    #[arg(long)]
    pub provider: String,
    /// Number of generated users.
    #[arg(long, default_value_t = 200)]
    pub users: u32,
    /// Number of generated groups (including the built-in "Everyone").
    #[arg(long, default_value_t = 30)]
    pub groups: u32,
    /// Generator seed: the same seed gives the same organisation (and the same test credentials).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Average direct group memberships per user.
    #[arg(long, default_value_t = 10)]
    pub avg_groups: u32,
    /// Maximum group nesting depth where the provider has nesting (0 = none).
    #[arg(long, default_value_t = 3)]
    pub nesting_depth: u32,
    /// Close one nesting chain into a cycle (only providers that allow cycles keep it).
    #[arg(long)]
    pub cycle: bool,
    /// http port on 127.0.0.1 (0 = random).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Also serve https with a freshly generated private CA (its path is printed).
    #[arg(long)]
    pub tls: bool,
    /// https port (0 = random).
    #[arg(long, default_value_t = 0)]
    pub tls_port: u16,
    /// Directory for the CA and client key files (default: a new temp directory).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Lifetime of issued access tokens, seconds (short values exercise refresh).
    #[arg(long, default_value_t = 3600)]
    pub token_ttl: i64,
    /// Fixed latency added to every API request, ms.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Extra random latency 0..=J ms.
    #[arg(long, default_value_t = 0)]
    pub latency_jitter_ms: u64,
    /// Requests per minute per rate-limit bucket before the provider's own 429.
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Maximum concurrent in-flight requests before a 429 (default: the provider's own, Okta 75).
    #[arg(long)]
    pub concurrency_limit: Option<u32>,
    /// Probability (0..1) of a 500/502/503 answer.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Probability of a TCP reset instead of an answer.
    #[arg(long, default_value_t = 0.0)]
    pub reset_rate: f64,
    /// Probability of a truncated body.
    #[arg(long, default_value_t = 0.0)]
    pub truncate_rate: f64,
    /// Probability of a malformed JSON body.
    #[arg(long, default_value_t = 0.0)]
    pub malformed_rate: f64,
    /// Probability of a slow-drip body.
    #[arg(long, default_value_t = 0.0)]
    pub drip_rate: f64,
    /// Probability of invalid UTF-8 bytes inside a JSON string of a successful answer.
    #[arg(long, default_value_t = 0.0)]
    pub invalid_utf8_rate: f64,
    /// Page number whose next link points back to itself (paging loop).
    #[arg(long)]
    pub paging_loop_at_page: Option<u32>,
    /// Page tokens for page N or later are rejected as expired (N >= 2).
    #[arg(long)]
    pub expire_token_at_page: Option<u32>,
    /// Page number served empty but with a next link.
    #[arg(long)]
    pub empty_page_at: Option<u32>,
    /// Page number (N >= 2) that starts with the last item of page N-1 again.
    #[arg(long)]
    pub repeat_at_page: Option<u32>,
    /// Probability of a redirect to the same path on `--redirect-to` (another origin).
    #[arg(long, default_value_t = 0.0)]
    pub redirect_rate: f64,
    /// The other origin of redirect faults, e.g. `http://127.0.0.1:9`.
    #[arg(long)]
    pub redirect_to: Option<String>,
    /// Status of redirect faults (301, 302, 303, 307, 308).
    #[arg(long, default_value_t = 302)]
    pub redirect_status: u16,
    /// Probability of an oversized answer (padded with whitespace to `--oversize-bytes`).
    #[arg(long, default_value_t = 0.0)]
    pub oversize_rate: f64,
    /// Size of oversized answers, bytes.
    #[arg(long, default_value_t = 0)]
    pub oversize_bytes: u64,
    /// Request-level faults only hit requests whose path and query contain this text.
    #[arg(long)]
    pub faults_path_contains: Option<String>,
    /// Request-level faults start after this many requests.
    #[arg(long, default_value_t = 0)]
    pub faults_after: u64,
    /// At most this many request-level faults.
    #[arg(long)]
    pub max_faults: Option<u64>,
    /// Seed of the fault RNG (faults are deterministic for a sequential client).
    #[arg(long, default_value_t = 0)]
    pub fault_seed: u64,
}

impl EmulatorArgs {
    /// The emulator options these flags describe.
    pub fn options(&self) -> EmulatorOptions {
        let mut o = EmulatorOptions::new(&self.provider);
        o.gen = GenConfig {
            users: self.users,
            groups: self.groups,
            seed: self.seed,
            avg_groups_per_user: self.avg_groups,
            nesting_depth: self.nesting_depth,
            allow_cycle: self.cycle,
            ..GenConfig::default()
        };
        o.port = self.port;
        o.tls = self.tls;
        o.tls_port = self.tls_port;
        o.state_dir = self.state_dir.clone();
        o.token_ttl_secs = self.token_ttl;
        o.faults = FaultConfig {
            seed: self.fault_seed,
            latency_ms: self.latency_ms,
            latency_jitter_ms: self.latency_jitter_ms,
            rate_limit_per_minute: self.rate_limit,
            concurrency_limit: self.concurrency_limit,
            error_rate: self.error_rate,
            reset_rate: self.reset_rate,
            truncate_rate: self.truncate_rate,
            malformed_rate: self.malformed_rate,
            drip_rate: self.drip_rate,
            invalid_utf8_rate: self.invalid_utf8_rate,
            paging_loop_at_page: self.paging_loop_at_page,
            expire_token_at_page: self.expire_token_at_page,
            empty_page_at: self.empty_page_at,
            repeat_at_page: self.repeat_at_page,
            redirect_rate: self.redirect_rate,
            redirect_to: self.redirect_to.clone(),
            redirect_status: self.redirect_status,
            oversize_rate: self.oversize_rate,
            oversize_bytes: self.oversize_bytes,
            path_contains: self.faults_path_contains.clone(),
            start_after: self.faults_after,
            max_faults: self.max_faults,
            ..FaultConfig::default()
        };
        o
    }
}

/// Run the command; returns the process exit code.
pub async fn run(args: EmulatorArgs, _global: &GlobalArgs) -> anyhow::Result<u8> {
    let opts = args.options();
    let emu = usersync_emulator::start(opts)
        .await
        .with_context(|| format!("starting the {} emulator", args.provider))?;
    println!("{}", emu.info().await);
    // Ctrl-C or SIGTERM (what scripts and service managers send): stop, and let the drop remove
    // the state directory the emulator created (keys, CA).
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    emu.shutdown();
    drop(emu);
    eprintln!("emulator stopped");
    Ok(0)
}
