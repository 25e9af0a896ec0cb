//! `usersync groups ...`

use crate::GlobalArgs;

/// `usersync groups` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum GroupsCmd {
    /// Placeholder until this command is built.
    Help,
}

/// Run the subcommand; returns the process exit code.
pub async fn run(_cmd: GroupsCmd, _global: &GlobalArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`usersync groups` is not available in this build yet")
}
