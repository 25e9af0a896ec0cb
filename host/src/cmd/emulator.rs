//! `usersync emulator`

use crate::GlobalArgs;

/// Arguments of `usersync emulator`.
#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {}

/// Run the command; returns the process exit code.
pub async fn run(_args: EmulatorArgs, _global: &GlobalArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`usersync emulator` is not available in this build yet")
}
