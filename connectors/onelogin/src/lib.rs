//! usersync connector for onelogin.
