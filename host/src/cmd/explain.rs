//! `usersync explain ...`

use crate::GlobalArgs;

/// `usersync explain` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ExplainCmd {
    /// Placeholder until this command is built.
    Help,
}

/// Run the subcommand; returns the process exit code.
pub async fn run(_cmd: ExplainCmd, _global: &GlobalArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`usersync explain` is not available in this build yet")
}
