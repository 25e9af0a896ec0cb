//! `usersync connectors ...`

use crate::GlobalArgs;

/// `usersync connectors` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConnectorsCmd {
    /// List.
    List,
}

/// Run the subcommand; returns the process exit code.
pub async fn run(cmd: ConnectorsCmd, _global: &GlobalArgs) -> anyhow::Result<u8> {
    match cmd {
        ConnectorsCmd::List => anyhow::bail!("not built yet"),
    }
}
