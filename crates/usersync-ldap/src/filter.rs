//! Search filter evaluation (RFC 4511 section 4.5.1.7) with three-valued logic: a filter on an
//! attribute type the tree does not know is Undefined, and `(!Undefined)` stays Undefined.

use std::cmp::Ordering;

use ldap3_proto::proto::{LdapFilter, LdapSubstringFilter};

use crate::dn::canonical_attr;
use crate::entry::{fold, normalize_value, syntax_of, Entry, Syntax};

/// The deepest filter nesting evaluated; deeper filters are refused before evaluation.
pub const MAX_DEPTH: usize = 64;

/// The result of a filter on one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    /// Matches.
    True,
    /// Does not match.
    False,
    /// Cannot be decided (unknown attribute type, unsupported rule): does not match.
    Undefined,
}

impl Truth {
    fn from(b: bool) -> Truth {
        if b {
            Truth::True
        } else {
            Truth::False
        }
    }
}

/// The nesting depth of a filter.
pub fn depth(f: &LdapFilter) -> usize {
    match f {
        LdapFilter::And(v) | LdapFilter::Or(v) => 1 + v.iter().map(depth).max().unwrap_or(0),
        LdapFilter::Not(inner) => 1 + depth(inner),
        _ => 1,
    }
}

/// Whether `entry` matches `f`.
pub fn matches(f: &LdapFilter, entry: &Entry) -> bool {
    eval(f, entry) == Truth::True
}

/// Evaluate `f` on `entry`.
pub fn eval(f: &LdapFilter, entry: &Entry) -> Truth {
    match f {
        LdapFilter::And(parts) => {
            let mut out = Truth::True;
            for p in parts {
                match eval(p, entry) {
                    Truth::False => return Truth::False,
                    Truth::Undefined => out = Truth::Undefined,
                    Truth::True => {}
                }
            }
            out
        }
        LdapFilter::Or(parts) => {
            let mut out = Truth::False;
            for p in parts {
                match eval(p, entry) {
                    Truth::True => return Truth::True,
                    Truth::Undefined => out = Truth::Undefined,
                    Truth::False => {}
                }
            }
            out
        }
        LdapFilter::Not(inner) => match eval(inner, entry) {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            Truth::Undefined => Truth::Undefined,
        },
        LdapFilter::Present(a) => {
            let a = canonical_attr(a);
            if a == "objectclass" {
                return Truth::True;
            }
            match syntax_of(&a) {
                None => Truth::False,
                Some(_) => Truth::from(entry.get(&a).is_some_and(|v| !v.values.is_empty())),
            }
        }
        LdapFilter::Equality(a, v) | LdapFilter::Approx(a, v) => {
            match entry.has_value(&canonical_attr(a), v.as_bytes()) {
                Some(b) => Truth::from(b),
                None => Truth::Undefined,
            }
        }
        LdapFilter::Substring(a, sub) => substring(&canonical_attr(a), sub, entry),
        LdapFilter::GreaterOrEqual(a, v) => ordering(&canonical_attr(a), v, entry, |o| o != Ordering::Less),
        LdapFilter::LessOrEqual(a, v) => ordering(&canonical_attr(a), v, entry, |o| o != Ordering::Greater),
        LdapFilter::Extensible(_) => Truth::Undefined,
    }
}

fn substring(a: &str, sub: &LdapSubstringFilter, entry: &Entry) -> Truth {
    let syntax = match syntax_of(a) {
        None | Some(Syntax::Binary) | Some(Syntax::Integer) => return Truth::Undefined,
        Some(s) => s,
    };
    let Some(attr) = entry.get(a) else {
        return Truth::False;
    };
    let initial = sub.initial.as_deref().map(fold);
    let any: Vec<String> = sub.any.iter().map(|s| fold(s)).collect();
    let final_ = sub.final_.as_deref().map(fold);
    let hit = attr.values.iter().any(|v| {
        let text = match syntax {
            Syntax::Dn => normalize_value(Syntax::Dn, v)
                .and_then(|n| String::from_utf8(n).ok())
                .unwrap_or_default(),
            _ => fold(&String::from_utf8_lossy(v)),
        };
        let mut rest: &str = &text;
        if let Some(i) = &initial {
            match rest.strip_prefix(i.as_str()) {
                Some(r) => rest = r,
                None => return false,
            }
        }
        for piece in &any {
            match rest.find(piece.as_str()) {
                Some(pos) => rest = &rest[pos + piece.len()..],
                None => return false,
            }
        }
        match &final_ {
            Some(f) => rest.ends_with(f.as_str()),
            None => true,
        }
    });
    Truth::from(hit)
}

fn ordering(a: &str, v: &str, entry: &Entry, ok: impl Fn(Ordering) -> bool) -> Truth {
    let syntax = match syntax_of(a) {
        Some(s @ (Syntax::Text | Syntax::Integer)) => s,
        _ => return Truth::Undefined,
    };
    let Some(attr) = entry.get(a) else {
        return Truth::False;
    };
    let hit = match syntax {
        Syntax::Integer => {
            let Ok(want) = v.trim().parse::<i64>() else {
                return Truth::Undefined;
            };
            attr.values.iter().any(|x| {
                std::str::from_utf8(x)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .is_some_and(|n| ok(n.cmp(&want)))
            })
        }
        _ => {
            let want = fold(v);
            attr.values
                .iter()
                .any(|x| ok(fold(&String::from_utf8_lossy(x)).cmp(&want)))
        }
    };
    Truth::from(hit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Attr;
    use ldap3_proto::parse_ldap_filter_str;

    fn entry() -> Entry {
        let a = |name: &'static str, vals: &[&str]| Attr {
            name,
            values: vals.iter().map(|v| v.as_bytes().to_vec()).collect(),
        };
        Entry {
            dn: "cn=alice,ou=users,dc=example,dc=com".into(),
            norm: "cn=alice,ou=users,dc=example,dc=com".into(),
            parent: "ou=users,dc=example,dc=com".into(),
            attrs: vec![
                a("objectClass", &["top", "inetOrgPerson", "posixAccount"]),
                a("cn", &["alice"]),
                a("uid", &["alice"]),
                a("mail", &["Alice.Smith@Example.com"]),
                a("displayName", &["Alice  Smith"]),
                a("uidNumber", &["10042"]),
                a("memberOf", &["cn=Staff,ou=groups,dc=example,dc=com"]),
            ],
            operational: vec![a("entryUUID", &["0c5d1a5e-0000-8000-8000-000000000001"])],
        }
    }

    fn m(filter: &str) -> bool {
        let f = parse_ldap_filter_str(filter).expect("filter");
        matches(&f, &entry())
    }

    #[test]
    fn equality_is_case_insensitive_per_syntax() {
        assert!(m("(uid=ALICE)"));
        assert!(m("(mail=alice.smith@example.com)"));
        let spaced = LdapFilter::Equality("displayName".into(), " alice smith".into());
        assert!(matches(&spaced, &entry()), "spaces are insignificant");
        assert!(m("(objectClass=inetorgperson)"));
        let dn_eq = LdapFilter::Equality("memberOf".into(), "CN=staff, OU=Groups,DC=example,DC=com".into());
        assert!(matches(&dn_eq, &entry()));
        assert!(m("(commonName=alice)"));
        assert!(!m("(uid=bob)"));
        assert!(m("(uidNumber=010042)"));
    }

    #[test]
    fn presence_substrings_and_boolean_operators() {
        assert!(m("(mail=*)"));
        assert!(!m("(telephoneNumber=*)"));
        assert!(m("(mail=alice*)"));
        assert!(m("(mail=*@example.com)"));
        assert!(m("(mail=a*smith*com)"));
        assert!(!m("(mail=*bob*)"));
        assert!(m("(&(objectClass=posixAccount)(uid=alice))"));
        assert!(m("(|(uid=bob)(cn=alice))"));
        assert!(m("(!(uid=bob))"));
        assert!(!m("(&(uid=alice)(!(cn=alice)))"));
        assert!(m("(entryUUID=0C5D1A5E-0000-8000-8000-000000000001)"));
    }

    #[test]
    fn ordering_on_integers_and_text() {
        assert!(m("(uidNumber>=10000)"));
        assert!(!m("(uidNumber>=100000)"), "numeric, not text order");
        assert!(m("(uidNumber<=10042)"));
        assert!(m("(&(uidNumber>=1)(!(uidNumber=0)))"));
        assert!(m("(cn>=a)"));
        assert!(!m("(cn<=a)"));
    }

    #[test]
    fn unknown_attribute_is_undefined_even_under_not() {
        assert!(!m("(frobnicate=x)"));
        assert!(!m("(!(frobnicate=x))"));
        assert!(m("(|(frobnicate=x)(uid=alice))"));
        let f = parse_ldap_filter_str("(!(frobnicate=x))").expect("f");
        assert_eq!(eval(&f, &entry()), Truth::Undefined);
    }

    #[test]
    fn depth_counts_nesting() {
        let f = parse_ldap_filter_str("(&(|(!(a=b))(c=d)))").expect("f");
        assert_eq!(depth(&f), 4);
    }
}
