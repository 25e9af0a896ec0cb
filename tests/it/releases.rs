//! Integration tests: releases.
