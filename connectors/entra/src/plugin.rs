//! Plugin export: makes this crate's cdylib a drop-in usersync plugin.
