//! Integration tests: google.
