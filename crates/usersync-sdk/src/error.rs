//! Errors a connector returns. Each variant names what the host does next; the host never
//! matches on message text.

use serde::{Deserialize, Serialize};

/// A connector error. The variant decides the host's next step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnectorError {
    /// Credentials were rejected (HTTP 401, invalid token). Host: refresh the token once and
    /// retry once, then stop this connection.
    #[error("unauthorized: {detail}")]
    Unauthorized {
        /// What the provider said.
        detail: String,
    },
    /// The credential is valid but lacks a permission (HTTP 403 that is not throttling).
    /// Host: stop this connection; `doctor` names the permission.
    #[error("forbidden: {detail}{}", .needed.as_deref().map(|n| format!(" (the credential lacks what this call needs: {n})")).unwrap_or_default())]
    Forbidden {
        /// What the provider said.
        detail: String,
        /// The permission, scope or role the provider needs for this call, where known.
        needed: Option<String>,
    },
    /// The provider is throttling. Host: wait (`retry_after_ms` when given) and retry.
    #[error("rate limited: {detail}")]
    RateLimited {
        /// How long the provider asked us to wait, in milliseconds, if it said.
        retry_after_ms: Option<u64>,
        /// What the provider said.
        detail: String,
    },
    /// A temporary failure (5xx, an error the provider documents as retryable). Host: retry
    /// with backoff.
    #[error("transient error: {detail}")]
    Transient {
        /// What happened.
        detail: String,
    },
    /// The object does not exist (no manager, no photo, deleted user). Not an error for the
    /// sync: the host records "none".
    #[error("not found: {detail}")]
    NotFound {
        /// What was missing.
        detail: String,
    },
    /// A paging token expired mid-listing. Host: restart the whole listing from the start,
    /// discarding the pages already read.
    #[error("page cursor expired: {detail}")]
    CursorExpired {
        /// What the provider said.
        detail: String,
    },
    /// The response was not what the API documents (malformed JSON, missing fields, a paging
    /// loop). Host: stop this run; apply nothing destructive.
    #[error("protocol error: {detail}")]
    Protocol {
        /// What was wrong and where.
        detail: String,
    },
    /// An option is missing or invalid. Host: report it; no request is made.
    #[error("invalid option `{option}`: {reason}")]
    Config {
        /// The option's name.
        option: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The connector cannot answer this query (the provider has no such API).
    #[error("operation `{operation}` is not supported by this connector")]
    Unsupported {
        /// The operation's name.
        operation: String,
    },
    /// The plugin failed internally (panicked, broke the ABI contract). Host: stop this
    /// connection; other connections continue.
    #[error("plugin failure: {detail}")]
    Plugin {
        /// What happened, naming the plugin.
        detail: String,
    },
}

impl ConnectorError {
    /// A protocol error with a message.
    pub fn protocol(detail: impl Into<String>) -> Self {
        ConnectorError::Protocol {
            detail: detail.into(),
        }
    }

    /// A config error for an option.
    pub fn config(option: impl Into<String>, reason: impl Into<String>) -> Self {
        ConnectorError::Config {
            option: option.into(),
            reason: reason.into(),
        }
    }

    /// True when the host should retry the same request (after a wait).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ConnectorError::RateLimited { .. } | ConnectorError::Transient { .. }
        )
    }
}
