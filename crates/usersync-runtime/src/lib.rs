//! Host runtime: HTTP executor, auth flows and token cache, retries, rate limits, doctor checks.
