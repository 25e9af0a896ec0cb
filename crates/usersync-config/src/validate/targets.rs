//! `[targets.NAME]` tables: the same checks as a connection (unknown keys with a "did you
//! mean", types, ranges, options and secrets), plus `sources` naming defined connections.

use std::collections::BTreeMap;

use toml_edit::{Item, TableLike};

use super::{as_secret_ref, to_toml, unknown_key_message, Checker, SEE_DOCS};
use crate::file::{ConnectionConfig, RuntimeSection, RuntimeSettings};
use crate::target::{TargetConfig, TargetSettings};

/// The keys of a target table besides [`TargetSettings`]' own.
const TARGET_OWN_KEYS: &[&str] = &["connector", "options", "runtime"];

impl Checker<'_> {
    /// The `[targets]` table: one [`TargetConfig`] per valid `[targets.NAME]`.
    pub(super) fn targets(
        &mut self,
        item: &Item,
        line: usize,
        global: &RuntimeSection,
        connections: &[ConnectionConfig],
    ) -> Vec<TargetConfig> {
        let Some(all) = self.table(item, "targets", None, line) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, item) in all.iter() {
            let tline = self.key_line(all, name, line);
            let label = format!("targets.{name}");
            let valid_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
            if !valid_name {
                self.push(
                    tline,
                    None,
                    Some(label.clone()),
                    "a target name may use only letters, digits, `-`, `_` and `.`".into(),
                );
                continue;
            }
            let Some(t) = self.table(item, &label, None, tline) else {
                continue;
            };
            if let Some(target) = self.target(name, t, tline, global, connections) {
                out.push(target);
            }
        }
        out
    }

    fn target(
        &mut self,
        name: &str,
        t: &dyn TableLike,
        line: usize,
        global: &RuntimeSection,
        connections: &[ConnectionConfig],
    ) -> Option<TargetConfig> {
        let label = format!("targets.{name}");
        let before = self.issues.len();
        // unknown keys: every key that is neither a setting nor connector/options/runtime
        let settings_keys = super::field_names::<TargetSettings>();
        let mut known: Vec<&str> = settings_keys.iter().map(String::as_str).collect();
        known.extend_from_slice(TARGET_OWN_KEYS);
        let mut settings_table = toml_edit::Table::new();
        for (key, item) in t.iter() {
            if TARGET_OWN_KEYS.contains(&key) {
                continue;
            }
            if !known.contains(&key) {
                let kline = self.key_line(t, key, line);
                let message = unknown_key_message(&format!("key in [{label}]"), key, &known, SEE_DOCS);
                self.push(kline, None, Some(format!("{label}.{key}")), message);
                continue;
            }
            settings_table.insert(key, item.clone());
        }
        // the settings, typed key by key (the ranges are the policy's)
        let settings = self
            .typed::<TargetSettings>(&settings_table, "policy", &format!("{label}."), None, line, &[])
            .unwrap_or_default();
        // line numbers of the copied table are lost: report typed errors at their key's line
        for issue in self.issues[before..].iter_mut() {
            if let Some(key) = issue
                .option
                .as_deref()
                .and_then(|o| o.strip_prefix(&format!("{label}.")))
            {
                let key = key.split('.').next().unwrap_or(key).to_string();
                issue.line = t
                    .get_key_value(&key)
                    .and_then(|(k, i)| k.span().or_else(|| i.span()))
                    .map(|r| {
                        self.text.as_bytes()[..r.start]
                            .iter()
                            .filter(|b| **b == b'\n')
                            .count()
                            + 1
                    })
                    .unwrap_or(issue.line);
            }
        }
        // checked from the file itself, so a wrong name is reported even when another key is wrong
        let sources: Vec<String> = match t.get("sources").and_then(to_toml) {
            Some(toml::Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        };
        for source in &sources {
            if !connections.iter().any(|c| c.name.eq_ignore_ascii_case(source)) {
                let sline = self.key_line(t, "sources", line);
                let names: Vec<&str> = connections.iter().map(|c| c.name.as_str()).collect();
                let message = unknown_key_message("connection", source, &names, "the [[connections]] names");
                self.push(
                    sline,
                    None,
                    Some(format!("{label}.sources")),
                    format!("`{source}`: {message}"),
                );
            }
        }
        let connector = match t.get("connector").and_then(to_toml) {
            Some(toml::Value::String(s)) => Some((s, self.key_line(t, "connector", line))),
            Some(other) => {
                let l = self.key_line(t, "connector", line);
                self.push(
                    l,
                    None,
                    Some(format!("{label}.connector")),
                    format!("must be a string, not {}", other.type_str()),
                );
                None
            }
            None => {
                self.push(
                    line,
                    None,
                    Some(format!("{label}.connector")),
                    format!("every [{label}] needs `connector` (e.g. connector = \"scim\")"),
                );
                None
            }
        };
        let runtime = match t.get("runtime") {
            Some(item) => self.runtime(item, None, self.key_line(t, "runtime", line)),
            None => RuntimeSection::default(),
        };
        let mut options = BTreeMap::new();
        let mut secrets = BTreeMap::new();
        let mut option_lines = BTreeMap::new();
        if let Some(item) = t.get("options") {
            let oline = self.key_line(t, "options", line);
            if let Some(ot) = self.table(item, &format!("{label}.options"), None, oline) {
                for (key, item) in ot.iter() {
                    let kline = self.key_line(ot, key, oline);
                    option_lines.insert(key.to_string(), kline);
                    let Some(v) = to_toml(item) else { continue };
                    if let Some(s) = as_secret_ref(&v, self.base) {
                        self.secret(&s, Some(&label), key, kline);
                        secrets.insert(key.to_string(), s);
                        continue;
                    }
                    match serde_json::to_value(&v) {
                        Ok(j) => {
                            options.insert(key.to_string(), j);
                        }
                        Err(e) => self.push(
                            kline,
                            Some(&label),
                            Some(key.to_string()),
                            format!("unsupported value: {e}"),
                        ),
                    }
                }
            }
        }
        let (connector, connector_line) = connector?;
        if self.issues.len() != before {
            return None;
        }
        let runtime = RuntimeSettings::merge(&runtime, global, self.base, &label);
        Some(TargetConfig::new(
            name.to_string(),
            settings,
            connector,
            connector_line,
            line,
            options,
            secrets,
            option_lines,
            runtime,
        ))
    }
}
