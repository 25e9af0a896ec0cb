//! `usersync plugins ...`

use crate::GlobalArgs;

/// `usersync plugins` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PluginsCmd {
    /// List.
    List,
}

/// Run the subcommand; returns the process exit code.
pub async fn run(cmd: PluginsCmd, _global: &GlobalArgs) -> anyhow::Result<u8> {
    match cmd {
        PluginsCmd::List => anyhow::bail!("not built yet"),
    }
}
