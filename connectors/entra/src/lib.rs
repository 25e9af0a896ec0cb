//! usersync connector for entra.
