//! `usersync auth ...`

use crate::GlobalArgs;

/// `usersync auth` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuthCmd {
    /// Placeholder until this command is built.
    Help,
}

/// Run the subcommand; returns the process exit code.
pub async fn run(_cmd: AuthCmd, _global: &GlobalArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`usersync auth` is not available in this build yet")
}
