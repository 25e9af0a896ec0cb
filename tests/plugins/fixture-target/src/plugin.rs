//! Plugin export: the same one line as a source connector; the target half crosses with it.

usersync_abi::export_connector!(crate::connector);
