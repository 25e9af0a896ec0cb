//! usersync connector for keycloak.
