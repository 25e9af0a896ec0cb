//! `usersync sync`

use crate::GlobalArgs;

/// Arguments of `usersync sync`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {}

/// Run the command; returns the process exit code.
pub async fn run(_args: SyncArgs, _global: &GlobalArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`usersync sync` is not available in this build yet")
}
