//! `usersync runs ...`

use crate::GlobalArgs;

/// `usersync runs` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RunsCmd {
    /// Placeholder until this command is built.
    Help,
}

/// Run the subcommand; returns the process exit code.
pub async fn run(_cmd: RunsCmd, _global: &GlobalArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`usersync runs` is not available in this build yet")
}
