//! `usersync demo`

use crate::GlobalArgs;

/// Arguments of `usersync demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

/// Run the command; returns the process exit code.
pub async fn run(_args: DemoArgs, _global: &GlobalArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`usersync demo` is not available in this build yet")
}
