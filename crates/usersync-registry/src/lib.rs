//! Connector registry: built-in connectors plus dynamic plugins, with precedence and safety checks.
