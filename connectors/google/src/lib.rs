//! usersync connector for google.
