//! `usersync users ...`

use crate::GlobalArgs;

/// `usersync users` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum UsersCmd {
    /// Placeholder until this command is built.
    Help,
}

/// Run the subcommand; returns the process exit code.
pub async fn run(_cmd: UsersCmd, _global: &GlobalArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`usersync users` is not available in this build yet")
}
