//! `usersync doctor`

use crate::GlobalArgs;

/// Arguments of `usersync doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {}

/// Run the command; returns the process exit code.
pub async fn run(_args: DoctorArgs, _global: &GlobalArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`usersync doctor` is not available in this build yet")
}
