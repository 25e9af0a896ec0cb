//! Validated, non-secret connection options handed to a connector.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ConnectorError;
use crate::manifest::Manifest;

/// Option values for one connection, after validation against the manifest.
///
/// Secret options are **not** present here: the host keeps secrets and only tells the
/// connector whether one is set (see [`Options::has_secret`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Options {
    values: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    secrets_set: Vec<String>,
}

impl Options {
    /// Build options from raw values, checking them against the manifest: unknown names,
    /// missing required options and wrong types are errors. Defaults are filled in.
    /// Secret options must be listed in `secrets_set`, not in `values`.
    pub fn validate(
        manifest: &Manifest,
        values: BTreeMap<String, serde_json::Value>,
        secrets_set: Vec<String>,
    ) -> Result<Options, ConnectorError> {
        for (name, v) in &values {
            let spec = manifest
                .option(name)
                .ok_or_else(|| ConnectorError::config(name, "unknown option"))?;
            if spec.secret {
                return Err(ConnectorError::config(
                    name,
                    "is a secret: give it as a secret reference, not a plain value",
                ));
            }
            spec.check(v).map_err(|r| ConnectorError::config(name, r))?;
        }
        for name in &secrets_set {
            if manifest.option(name).is_none() {
                return Err(ConnectorError::config(name, "unknown option"));
            }
        }
        let mut out = Options { values, secrets_set };
        for spec in &manifest.options {
            if out.values.contains_key(&spec.name) || out.secrets_set.contains(&spec.name) {
                continue;
            }
            if let Some(d) = &spec.default {
                out.values.insert(spec.name.clone(), d.clone());
            } else if spec.required {
                return Err(ConnectorError::config(&spec.name, "is required but not set"));
            }
        }
        Ok(out)
    }

    /// Options without validation (tests, internal use).
    pub fn from_values(values: BTreeMap<String, serde_json::Value>) -> Options {
        Options {
            values,
            secrets_set: Vec::new(),
        }
    }

    /// Mark a secret option as set (tests, internal use).
    pub fn with_secret_set(mut self, name: &str) -> Options {
        self.secrets_set.push(name.into());
        self
    }

    /// A string option.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.values.get(name).and_then(|v| v.as_str())
    }

    /// A required string option, or a config error naming it.
    pub fn require_str(&self, name: &str) -> Result<&str, ConnectorError> {
        self.str(name)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ConnectorError::config(name, "is required but not set"))
    }

    /// A boolean option.
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.values.get(name).and_then(|v| v.as_bool())
    }

    /// An integer option.
    pub fn u64(&self, name: &str) -> Option<u64> {
        self.values.get(name).and_then(|v| v.as_u64())
    }

    /// A list-of-strings option.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.values
            .get(name)
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
            .unwrap_or_default()
    }

    /// Whether a secret option has a value (held by the host).
    pub fn has_secret(&self, name: &str) -> bool {
        self.secrets_set.iter().any(|s| s == name)
    }

    /// All non-secret values.
    pub fn values(&self) -> &BTreeMap<String, serde_json::Value> {
        &self.values
    }
}
