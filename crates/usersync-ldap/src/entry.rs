//! An entry of the served tree and the matching rules of its attributes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::dn;

/// One attribute value: immutable bytes, shared between the entries that hold the same value
/// (a group's DN in every member's `memberOf`, the object classes, the connection name, ...).
pub type Value = Arc<[u8]>;

/// One attribute: its name as served and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Attr {
    /// The name as returned (`givenName`).
    pub name: &'static str,
    /// Values (UTF-8 text except jpegPhoto).
    pub values: Vec<Value>,
    /// For DN-valued attributes, the values in normalised form (same order), so that filters on
    /// `member`/`memberOf` compare without parsing DNs per entry.
    pub norm: Option<Vec<Value>>,
}

impl Attr {
    /// An attribute; DN-valued ones get their normalised values computed.
    pub fn new(name: &'static str, values: Vec<Vec<u8>>) -> Attr {
        let norm = is_dn(name).then(|| values.iter().map(|v| Value::from(normalize_dn(v))).collect());
        let values = values.into_iter().map(Value::from).collect();
        Attr { name, values, norm }
    }
}

fn is_dn(name: &str) -> bool {
    syntax_of(&name.to_ascii_lowercase()) == Some(Syntax::Dn)
}

fn normalize_dn(v: &[u8]) -> Vec<u8> {
    normalize_value(Syntax::Dn, v).unwrap_or_else(|| v.to_ascii_lowercase())
}

/// Shares equal values while a tree is built, so that each distinct value is held once (and
/// each distinct DN normalised once) however many entries hold it.
#[derive(Debug, Default)]
pub struct Interner {
    values: HashSet<Value>,
    dn_norm: HashMap<Value, Value>,
}

impl Interner {
    /// The shared copy of `v`.
    pub fn value(&mut self, v: &[u8]) -> Value {
        if let Some(x) = self.values.get(v) {
            return x.clone();
        }
        let x = Value::from(v);
        self.values.insert(x.clone());
        x
    }

    /// An attribute whose values are shared (DN-valued ones with shared normalised forms too).
    pub fn attr<V: AsRef<[u8]>>(&mut self, name: &'static str, values: impl IntoIterator<Item = V>) -> Attr {
        let values: Vec<Value> = values.into_iter().map(|v| self.value(v.as_ref())).collect();
        let norm = is_dn(name).then(|| values.iter().map(|v| self.dn_norm(v)).collect());
        Attr { name, values, norm }
    }

    fn dn_norm(&mut self, v: &Value) -> Value {
        if let Some(n) = self.dn_norm.get(v) {
            return n.clone();
        }
        let n = self.value(&normalize_dn(v));
        self.dn_norm.insert(v.clone(), n.clone());
        n
    }
}

/// An entry: DN, user attributes and operational attributes (returned only when asked for).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The DN as served.
    pub dn: String,
    /// Its normalised form ([`dn::normalize`]).
    pub norm: String,
    /// The normalised DN of its parent.
    pub parent: String,
    /// User attributes.
    pub attrs: Vec<Attr>,
    /// Operational attributes (`entryUUID`, `entryDN`, ...).
    pub operational: Vec<Attr>,
}

/// How values of an attribute are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// Case-insensitive text, surrounding and repeated spaces insignificant.
    Text,
    /// DNs, compared in normalised form.
    Dn,
    /// Integers, compared by value.
    Integer,
    /// Bytes, compared exactly; no substring or ordering match.
    Binary,
}

/// Every attribute type the tree serves, with its syntax: (canonical lower-case name, syntax).
pub const KNOWN: &[(&str, Syntax)] = &[
    ("objectclass", Syntax::Text),
    ("cn", Syntax::Text),
    ("uid", Syntax::Text),
    ("sn", Syntax::Text),
    ("givenname", Syntax::Text),
    ("displayname", Syntax::Text),
    ("mail", Syntax::Text),
    ("employeenumber", Syntax::Text),
    ("title", Syntax::Text),
    ("departmentnumber", Syntax::Text),
    ("telephonenumber", Syntax::Text),
    ("mobile", Syntax::Text),
    ("manager", Syntax::Dn),
    ("memberof", Syntax::Dn),
    ("member", Syntax::Dn),
    ("uniquemember", Syntax::Dn),
    ("memberuid", Syntax::Text),
    ("description", Syntax::Text),
    ("uidnumber", Syntax::Integer),
    ("gidnumber", Syntax::Integer),
    ("homedirectory", Syntax::Text),
    ("loginshell", Syntax::Text),
    ("gecos", Syntax::Text),
    ("jpegphoto", Syntax::Binary),
    ("entryuuid", Syntax::Text),
    ("entrydn", Syntax::Dn),
    ("ou", Syntax::Text),
    ("dc", Syntax::Text),
    ("o", Syntax::Text),
    ("structuralobjectclass", Syntax::Text),
    ("subschemasubentry", Syntax::Dn),
    ("hassubordinates", Syntax::Text),
    ("usersyncconnection", Syntax::Text),
];

/// The syntax of an attribute type (by canonical name), `None` when the tree does not know it.
pub fn syntax_of(canonical: &str) -> Option<Syntax> {
    KNOWN.iter().find(|(n, _)| *n == canonical).map(|(_, s)| *s)
}

/// The comparison form of a text value: trimmed, inner runs of spaces collapsed, lower case.
pub fn fold(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for word in v.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.to_lowercase()
}

/// The comparison form of a value under a syntax; `None` when the value is not valid for it
/// (a non-number for an integer, a non-DN for a DN).
pub fn normalize_value(syntax: Syntax, v: &[u8]) -> Option<Vec<u8>> {
    match syntax {
        Syntax::Binary => Some(v.to_vec()),
        Syntax::Text => Some(fold(std::str::from_utf8(v).ok()?).into_bytes()),
        Syntax::Dn => Some(dn::normalize(std::str::from_utf8(v).ok()?)?.into_bytes()),
        Syntax::Integer => {
            let n: i64 = std::str::from_utf8(v).ok()?.trim().parse().ok()?;
            Some(n.to_string().into_bytes())
        }
    }
}

impl Entry {
    /// Values of an attribute (canonical lower-case name), user or operational.
    pub fn get(&self, canonical: &str) -> Option<&Attr> {
        self.attrs
            .iter()
            .chain(self.operational.iter())
            .find(|a| a.name.eq_ignore_ascii_case(canonical))
    }

    /// Whether the entry holds `value` in `canonical` by the attribute's equality rule.
    pub fn has_value(&self, canonical: &str, value: &[u8]) -> Option<bool> {
        let syntax = syntax_of(canonical)?;
        let Some(want) = normalize_value(syntax, value) else {
            return Some(false);
        };
        let Some(attr) = self.get(canonical) else {
            return Some(false);
        };
        if let Some(norm) = &attr.norm {
            return Some(norm.iter().any(|n| **n == *want));
        }
        Some(
            attr.values
                .iter()
                .any(|v| normalize_value(syntax, v).is_some_and(|n| n == want)),
        )
    }
}
