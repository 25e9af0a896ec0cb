//! Integration tests: plugins.
