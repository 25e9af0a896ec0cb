//! `usersync config ...`

use crate::GlobalArgs;

/// `usersync config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCmd {
    /// Placeholder until this command is built.
    Help,
}

/// Run the subcommand; returns the process exit code.
pub async fn run(_cmd: ConfigCmd, _global: &GlobalArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`usersync config` is not available in this build yet")
}
