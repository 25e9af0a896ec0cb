//! Integration tests: okta.
