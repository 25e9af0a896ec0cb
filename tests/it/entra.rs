//! Integration tests: entra.
