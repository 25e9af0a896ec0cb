//! The `[ldap]` section: the read-only LDAP view of the store (crates/usersync-ldap).
//!
//! ```toml
//! [ldap]
//! base_dn = "dc=example,dc=com"      # required
//! listen = "127.0.0.1:3389"          # default; LDAP with StartTLS when a certificate is set
//! ldaps_listen = "127.0.0.1:6636"    # optional LDAPS listener (needs tls_cert/tls_key)
//! layout = "merged"                  # or "per_connection": ou=<connection> subtrees
//! posix = true                       # posixAccount/posixGroup with persisted numbers
//! uid_base = 10000                   # uidNumber = uid_base + the object's allocated number
//! gid_base = 10000
//! transitive = false                 # true: memberOf and member lists flattened (nesting resolved)
//! photos = false                     # jpegPhoto from stored JPEG photos
//! tls_cert = "ldap.pem"              # PEM chain; tls_key: PEM private key
//! tls_key = "ldap.key"
//! require_tls = false                # true: binds only over LDAPS/StartTLS
//! allow_anonymous = false            # anonymous searches (off by default)
//! size_limit = 50000                 # most entries one unpaged search returns
//! time_limit_secs = 30
//! max_request_kb = 256               # larger requests close the connection
//! max_bind_failures = 5              # failed binds per peer address per minute before refusal
//! [[ldap.service_accounts]]
//! dn = "cn=jira,ou=services,dc=example,dc=com"
//! password = { env = "LDAP_JIRA_PASSWORD" }   # or { file = "..." }; never a literal
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use toml_edit::{Item, TableLike, Value};

use crate::file::ConfigIssue;
use crate::secret::SecretRef;

/// How the tree is laid out under the base DN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LdapLayout {
    /// `ou=users,<base>` and `ou=groups,<base>` hold every connection's objects.
    #[default]
    Merged,
    /// `ou=users,ou=<connection>,<base>` and `ou=groups,ou=<connection>,<base>`.
    PerConnection,
}

/// A service account that may bind (simple bind).
#[derive(Debug, Clone, PartialEq)]
pub struct LdapServiceAccount {
    /// Its bind DN, as written.
    pub dn: String,
    /// Where its password comes from.
    pub password: SecretRef,
}

/// The `[ldap]` section, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct LdapConfig {
    /// LDAP listener (StartTLS offered when a certificate is set).
    pub listen: SocketAddr,
    /// LDAPS listener.
    pub ldaps_listen: Option<SocketAddr>,
    /// The base DN, as written.
    pub base_dn: String,
    /// Merged or per-connection subtrees.
    pub layout: LdapLayout,
    /// Serve posixAccount/posixGroup.
    pub posix: bool,
    /// Added to a user's allocated number.
    pub uid_base: u32,
    /// Added to a group's allocated number.
    pub gid_base: u32,
    /// Login shell of posixAccount entries.
    pub login_shell: String,
    /// Home directories are `<home_base>/<username>`.
    pub home_base: String,
    /// Flattened memberships.
    pub transitive: bool,
    /// Serve jpegPhoto.
    pub photos: bool,
    /// PEM certificate chain (resolved against the config directory).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    pub tls_key: Option<PathBuf>,
    /// Refuse binds that are not protected by TLS.
    pub require_tls: bool,
    /// Allow searches without a bind.
    pub allow_anonymous: bool,
    /// Who may bind.
    pub service_accounts: Vec<LdapServiceAccount>,
    /// Most entries an unpaged search returns.
    pub size_limit: u32,
    /// Longest a search may take, seconds.
    pub time_limit_secs: u32,
    /// Largest request accepted, KiB.
    pub max_request_kb: u32,
    /// Failed binds per peer address per minute before binds from it are refused.
    pub max_bind_failures: u32,
    /// Line of the `[ldap]` header.
    pub line: usize,
}

impl LdapConfig {
    /// A config with the defaults and the given base DN (tests, embedding).
    pub fn new(base_dn: &str) -> LdapConfig {
        LdapConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 3389)),
            ldaps_listen: None,
            base_dn: base_dn.to_string(),
            layout: LdapLayout::Merged,
            posix: false,
            uid_base: 10_000,
            gid_base: 10_000,
            login_shell: "/bin/bash".into(),
            home_base: "/home".into(),
            transitive: false,
            photos: false,
            tls_cert: None,
            tls_key: None,
            require_tls: false,
            allow_anonymous: false,
            service_accounts: Vec::new(),
            size_limit: 50_000,
            time_limit_secs: 30,
            max_request_kb: 256,
            max_bind_failures: 5,
            line: 0,
        }
    }
}

/// The keys of `[ldap]`.
pub const LDAP_KEYS: &[&str] = &[
    "listen",
    "ldaps_listen",
    "base_dn",
    "layout",
    "posix",
    "uid_base",
    "gid_base",
    "login_shell",
    "home_base",
    "transitive",
    "photos",
    "tls_cert",
    "tls_key",
    "require_tls",
    "allow_anonymous",
    "service_accounts",
    "size_limit",
    "time_limit_secs",
    "max_request_kb",
    "max_bind_failures",
];

/// Whether `dn` looks like a DN: comma-separated `attr=value` parts (escapes allowed).
pub fn looks_like_dn(dn: &str) -> bool {
    if dn.trim().is_empty() {
        return false;
    }
    let mut parts = Vec::new();
    let (mut cur, mut esc) = (String::new(), false);
    for ch in dn.chars() {
        if esc {
            cur.push(ch);
            esc = false;
        } else if ch == '\\' {
            esc = true;
            cur.push(ch);
        } else if ch == ',' {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(ch);
        }
    }
    parts.push(cur);
    parts.iter().all(|p| match p.split_once('=') {
        Some((a, v)) => {
            let a = a.trim();
            !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                && !v.trim().is_empty()
        }
        None => false,
    })
}

struct Walk<'a> {
    text: &'a str,
    file: &'a Path,
    issues: Vec<ConfigIssue>,
}

impl Walk<'_> {
    fn line_of(&self, span: Option<std::ops::Range<usize>>, fallback: usize) -> usize {
        span.map(|r| {
            self.text
                .as_bytes()
                .iter()
                .take(r.start)
                .filter(|b| **b == b'\n')
                .count()
                + 1
        })
        .unwrap_or(fallback)
    }

    fn push(&mut self, line: usize, option: &str, message: String) {
        self.issues.push(ConfigIssue {
            file: self.file.to_path_buf(),
            line,
            connection: None,
            option: Some(option.to_string()),
            message,
        });
    }
}

/// Parse and check `[ldap]` (`item` is the section, `line` its header's line). Returns the
/// section when it is usable, and every problem found.
pub fn parse_section(
    item: &Item,
    line: usize,
    text: &str,
    file: &Path,
    base: &Path,
) -> (Option<LdapConfig>, Vec<ConfigIssue>) {
    let mut w = Walk {
        text,
        file,
        issues: Vec::new(),
    };
    let Some(table) = item.as_table_like() else {
        w.push(line, "ldap", "must be a table ([ldap])".into());
        return (None, w.issues);
    };
    let mut cfg = LdapConfig::new("");
    cfg.line = line;
    let mut base_seen = false;
    for (key, value) in table.iter() {
        let kline = w.line_of(
            table
                .get_key_value(key)
                .and_then(|(k, i)| k.span().or_else(|| i.span())),
            line,
        );
        base_seen |= apply_key(&mut w, &mut cfg, key, value, kline, base);
    }
    cross_check(&mut w, &cfg, line, base_seen);
    let ok = w.issues.is_empty();
    (ok.then_some(cfg), w.issues)
}

/// Check and apply one key of `[ldap]` (`kline`: its line). True for `base_dn`.
fn apply_key(
    w: &mut Walk<'_>,
    cfg: &mut LdapConfig,
    key: &str,
    value: &Item,
    kline: usize,
    base: &Path,
) -> bool {
    let mut is_base = false;
    let opt = format!("ldap.{key}");
    let s = |w: &mut Walk<'_>| -> Option<String> {
        match value.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                w.push(kline, &opt, "must be a string".into());
                None
            }
        }
    };
    let b = |w: &mut Walk<'_>| -> Option<bool> {
        match value.as_bool() {
            Some(v) => Some(v),
            None => {
                w.push(kline, &opt, "must be true or false".into());
                None
            }
        }
    };
    let n = |w: &mut Walk<'_>, min: i64, max: i64| -> Option<u32> {
        match value.as_integer() {
            Some(v) if (min..=max).contains(&v) => u32::try_from(v).ok(),
            _ => {
                w.push(kline, &opt, format!("must be a whole number from {min} to {max}"));
                None
            }
        }
    };
    let addr = |w: &mut Walk<'_>| -> Option<SocketAddr> {
        let v = s(w)?;
        match v.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                w.push(
                    kline,
                    &opt,
                    format!("`{v}` is not an address:port such as 127.0.0.1:3389"),
                );
                None
            }
        }
    };
    match key {
        "listen" => cfg.listen = addr(w).unwrap_or(cfg.listen),
        "ldaps_listen" => cfg.ldaps_listen = addr(w),
        "base_dn" => {
            is_base = true;
            if let Some(v) = s(w) {
                if looks_like_dn(&v) {
                    cfg.base_dn = v;
                } else {
                    w.push(
                        kline,
                        &opt,
                        format!("`{v}` is not a DN such as dc=example,dc=com"),
                    );
                }
            }
        }
        "layout" => match s(w).as_deref() {
            Some("merged") => cfg.layout = LdapLayout::Merged,
            Some("per_connection") => cfg.layout = LdapLayout::PerConnection,
            Some(other) => w.push(
                kline,
                &opt,
                format!("`{other}` is not a layout: use \"merged\" or \"per_connection\""),
            ),
            None => {}
        },
        "posix" => cfg.posix = b(w).unwrap_or(cfg.posix),
        "uid_base" => cfg.uid_base = n(w, 1000, 2_000_000_000).unwrap_or(cfg.uid_base),
        "gid_base" => cfg.gid_base = n(w, 1000, 2_000_000_000).unwrap_or(cfg.gid_base),
        "login_shell" => {
            if let Some(v) = s(w) {
                cfg.login_shell = v;
            }
        }
        "home_base" => {
            if let Some(v) = s(w) {
                cfg.home_base = v;
            }
        }
        "transitive" => cfg.transitive = b(w).unwrap_or(cfg.transitive),
        "photos" => cfg.photos = b(w).unwrap_or(cfg.photos),
        "tls_cert" | "tls_key" => {
            if let Some(v) = s(w) {
                let p = base.join(v);
                if let Err(e) = std::fs::metadata(&p) {
                    w.push(kline, &opt, format!("cannot read `{}`: {e}", p.display()));
                }
                if key == "tls_cert" {
                    cfg.tls_cert = Some(p);
                } else {
                    cfg.tls_key = Some(p);
                }
            }
        }
        "require_tls" => cfg.require_tls = b(w).unwrap_or(cfg.require_tls),
        "allow_anonymous" => cfg.allow_anonymous = b(w).unwrap_or(cfg.allow_anonymous),
        "size_limit" => cfg.size_limit = n(w, 1, 10_000_000).unwrap_or(cfg.size_limit),
        "time_limit_secs" => cfg.time_limit_secs = n(w, 1, 3600).unwrap_or(cfg.time_limit_secs),
        "max_request_kb" => cfg.max_request_kb = n(w, 4, 65_536).unwrap_or(cfg.max_request_kb),
        "max_bind_failures" => cfg.max_bind_failures = n(w, 1, 10_000).unwrap_or(cfg.max_bind_failures),
        "service_accounts" => cfg.service_accounts = service_accounts(w, value, kline, base),
        other => {
            let message =
                crate::validate::unknown_key_message("key of [ldap]", other, LDAP_KEYS, "see docs/ldap.md");
            w.push(kline, &opt, message);
        }
    }
    is_base
}

/// The checks between keys (after all of them are read).
fn cross_check(w: &mut Walk<'_>, cfg: &LdapConfig, line: usize, base_seen: bool) {
    if !base_seen {
        w.push(
            line,
            "ldap.base_dn",
            "is required, e.g. base_dn = \"dc=example,dc=com\"".into(),
        );
    }
    if cfg.tls_cert.is_some() != cfg.tls_key.is_some() {
        w.push(
            line,
            "ldap.tls_cert",
            "tls_cert and tls_key go together: set both or neither".into(),
        );
    }
    if cfg.tls_cert.is_none() && (cfg.ldaps_listen.is_some() || cfg.require_tls) {
        w.push(
            line,
            "ldap.tls_cert",
            "ldaps_listen and require_tls need tls_cert and tls_key".into(),
        );
    }
    if cfg.service_accounts.is_empty() && !cfg.allow_anonymous {
        w.push(
            line,
            "ldap.service_accounts",
            "no [[ldap.service_accounts]]: nobody could bind; add one (dn, password = { env = \"...\" })"
                .into(),
        );
    }
}

fn service_accounts(w: &mut Walk<'_>, value: &Item, line: usize, base: &Path) -> Vec<LdapServiceAccount> {
    let mut tables: Vec<(&dyn TableLike, usize)> = Vec::new();
    match value {
        Item::ArrayOfTables(a) => {
            for t in a.iter() {
                let l = w.line_of(t.span(), line);
                tables.push((t, l));
            }
        }
        Item::Value(Value::Array(a)) => {
            for v in a.iter() {
                match v.as_inline_table() {
                    Some(t) => tables.push((t, w.line_of(t.span(), line))),
                    None => w.push(
                        line,
                        "ldap.service_accounts",
                        "must be tables with dn and password".into(),
                    ),
                }
            }
        }
        _ => w.push(
            line,
            "ldap.service_accounts",
            "must be [[ldap.service_accounts]] tables".into(),
        ),
    }
    let mut out = Vec::new();
    for (t, l) in tables {
        let dn = t.get("dn").and_then(|i| i.as_str()).map(str::to_string);
        let password = t.get("password").and_then(|i| secret_ref(i, base));
        for (k, _) in t.iter() {
            if k != "dn" && k != "password" {
                w.push(
                    l,
                    &format!("ldap.service_accounts.{k}"),
                    "unknown key (known: dn, password)".into(),
                );
            }
        }
        match &dn {
            Some(d) if looks_like_dn(d) => {}
            Some(d) => w.push(l, "ldap.service_accounts.dn", format!("`{d}` is not a DN")),
            None => w.push(l, "ldap.service_accounts.dn", "is required (the bind DN)".into()),
        }
        if password.is_none() {
            w.push(
                l,
                "ldap.service_accounts.password",
                "is required as a secret reference: password = { env = \"NAME\" } or { file = \"/path\" } \
                 (never the value itself)"
                    .into(),
            );
        }
        if let (Some(dn), Some(password)) = (dn, password) {
            out.push(LdapServiceAccount { dn, password });
        }
    }
    out
}

fn secret_ref(item: &Item, base: &Path) -> Option<SecretRef> {
    let t = item.as_table_like()?;
    if t.len() != 1 {
        return None;
    }
    match (
        t.get("env").and_then(|i| i.as_str()),
        t.get("file").and_then(|i| i.as_str()),
    ) {
        (Some(env), None) => Some(SecretRef::Env { env: env.to_string() }),
        (None, Some(file)) => Some(SecretRef::File {
            file: base.join(file),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Option<LdapConfig>, Vec<ConfigIssue>) {
        let doc = toml_edit::ImDocument::parse(text.to_string()).expect("toml");
        let item = doc.as_table().get("ldap").expect("ldap");
        parse_section(item, 1, text, Path::new("u.toml"), Path::new("/etc"))
    }

    #[test]
    fn parses_a_full_section() {
        let (c, issues) = parse(
            "[ldap]\nbase_dn = \"dc=example,dc=com\"\nlisten = \"0.0.0.0:389\"\nlayout = \"per_connection\"\n\
             posix = true\nuid_base = 20000\n[[ldap.service_accounts]]\ndn = \"cn=jira,dc=example,dc=com\"\n\
             password = { env = \"JIRA_PW\" }\n",
        );
        assert!(issues.is_empty(), "{issues:?}");
        let c = c.expect("config");
        assert_eq!(c.listen.port(), 389);
        assert_eq!(c.layout, LdapLayout::PerConnection);
        assert!(c.posix);
        assert_eq!(c.uid_base, 20000);
        assert_eq!(
            c.service_accounts[0].password,
            SecretRef::Env {
                env: "JIRA_PW".into()
            }
        );
    }

    #[test]
    fn reports_problems_with_lines() {
        let (c, issues) = parse(
            "[ldap]\nbase_dn = \"example.com\"\nlistne = \"x\"\nuid_base = 5\n[[ldap.service_accounts]]\n\
             dn = \"cn=jira,dc=example,dc=com\"\npassword = \"hunter2\"\n",
        );
        assert!(c.is_none());
        let all: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
        assert!(
            all.iter()
                .any(|s| s.starts_with("u.toml:2:") && s.contains("not a DN")),
            "{all:?}"
        );
        assert!(
            all.iter()
                .any(|s| s.starts_with("u.toml:3:") && s.contains("did you mean `listen`")),
            "{all:?}"
        );
        assert!(
            all.iter()
                .any(|s| s.starts_with("u.toml:4:") && s.contains("1000")),
            "{all:?}"
        );
        assert!(
            all.iter()
                .any(|s| s.starts_with("u.toml:5:") && s.contains("secret reference")),
            "{all:?}"
        );
        assert!(!all.iter().any(|s| s.contains("hunter2")));
    }

    #[test]
    fn dn_shape() {
        assert!(looks_like_dn("dc=example,dc=com"));
        assert!(looks_like_dn("cn=a\\,b,ou=x"));
        assert!(!looks_like_dn("example.com"));
        assert!(!looks_like_dn("dc=,dc=com"));
    }
}
