//! Integration tests: onelogin.
