//! One module per subcommand.

pub mod connectors;
pub mod plugins;
