//! Integration tests live under `it/` (one test binary, many modules).
