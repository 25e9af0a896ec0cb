//! Plugin export: this one line makes the crate's cdylib a drop-in usersync plugin.

usersync_abi::export_connector!(crate::connector);
