//! usersync connector for okta.
