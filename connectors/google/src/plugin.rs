//! Plugin export: makes this crate's cdylib a drop-in usersync plugin.
//!
//! The same connector is linked into the host as a built-in (rlib) and, from this one line,
//! loadable as `lib<crate>.so` from a plugin directory.

usersync_abi::export_connector!(crate::connector);
