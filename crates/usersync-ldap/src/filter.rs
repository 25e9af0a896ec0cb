//! Search filter evaluation (RFC 4511 section 4.5.1.7) with three-valued logic: a filter on an
//! attribute type the tree does not know is Undefined, and `(!Undefined)` stays Undefined.

use std::cmp::Ordering;

use ldap3_proto::proto::LdapFilter;

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

/// A filter prepared once per search: attribute names resolved, assertion values normalised by
/// their attribute's syntax, so evaluating it on each entry allocates nothing in the common case.
#[derive(Debug, Clone)]
pub enum Compiled {
    /// All must hold.
    And(Vec<Compiled>),
    /// One must hold.
    Or(Vec<Compiled>),
    /// Negation (Undefined stays Undefined).
    Not(Box<Compiled>),
    /// A fixed result (unknown attribute types, unsupported rules, `(objectClass=*)`).
    Fixed(Truth),
    /// The attribute has a value.
    Present(String),
    /// Equality; `want` is `None` when the value is not valid for the syntax (matches nothing).
    Equal {
        /// Canonical attribute name.
        attr: String,
        /// Its syntax.
        syntax: Syntax,
        /// The normalised value.
        want: Option<Vec<u8>>,
    },
    /// Substrings of a text or DN attribute (folded pieces).
    Substring {
        /// Canonical attribute name.
        attr: String,
        /// Text or DN.
        syntax: Syntax,
        /// Prefix.
        initial: Option<String>,
        /// Pieces in order.
        any: Vec<String>,
        /// Suffix.
        final_: Option<String>,
    },
    /// `>=` (`ge`) or `<=` on numbers or text.
    Order {
        /// Canonical attribute name.
        attr: String,
        /// Number (`Some`) or folded text.
        number: Option<i64>,
        /// The folded text value.
        text: String,
        /// `>=` when true, `<=` when false.
        ge: bool,
    },
}

/// Prepare `f` for evaluation.
pub fn compile(f: &LdapFilter) -> Compiled {
    match f {
        LdapFilter::And(v) => Compiled::And(v.iter().map(compile).collect()),
        LdapFilter::Or(v) => Compiled::Or(v.iter().map(compile).collect()),
        LdapFilter::Not(inner) => Compiled::Not(Box::new(compile(inner))),
        LdapFilter::Present(a) => {
            let a = canonical_attr(a);
            match (a.as_str(), syntax_of(&a)) {
                ("objectclass", _) => Compiled::Fixed(Truth::True),
                (_, None) => Compiled::Fixed(Truth::False),
                _ => Compiled::Present(a),
            }
        }
        LdapFilter::Equality(a, v) | LdapFilter::Approx(a, v) => {
            let attr = canonical_attr(a);
            match syntax_of(&attr) {
                None => Compiled::Fixed(Truth::Undefined),
                Some(syntax) => Compiled::Equal {
                    want: normalize_value(syntax, v.as_bytes()),
                    attr,
                    syntax,
                },
            }
        }
        LdapFilter::Substring(a, sub) => {
            let attr = canonical_attr(a);
            match syntax_of(&attr) {
                Some(syntax @ (Syntax::Text | Syntax::Dn)) => Compiled::Substring {
                    attr,
                    syntax,
                    initial: sub.initial.as_deref().map(fold),
                    any: sub.any.iter().map(|s| fold(s)).collect(),
                    final_: sub.final_.as_deref().map(fold),
                },
                _ => Compiled::Fixed(Truth::Undefined),
            }
        }
        LdapFilter::GreaterOrEqual(a, v) | LdapFilter::LessOrEqual(a, v) => {
            let attr = canonical_attr(a);
            let ge = matches!(f, LdapFilter::GreaterOrEqual(..));
            match syntax_of(&attr) {
                Some(Syntax::Integer) => match v.trim().parse::<i64>() {
                    Ok(n) => Compiled::Order {
                        attr,
                        number: Some(n),
                        text: String::new(),
                        ge,
                    },
                    Err(_) => Compiled::Fixed(Truth::Undefined),
                },
                Some(Syntax::Text) => Compiled::Order {
                    attr,
                    number: None,
                    text: fold(v),
                    ge,
                },
                _ => Compiled::Fixed(Truth::Undefined),
            }
        }
        LdapFilter::Extensible(_) => Compiled::Fixed(Truth::Undefined),
    }
}

/// Whether `entry` matches `f` (compiles it first: for one-off checks).
pub fn matches(f: &LdapFilter, entry: &Entry) -> bool {
    eval(&compile(f), entry) == Truth::True
}

/// Whether a stored text value equals an already folded one, without allocating when the value
/// is plain ASCII with single spaces.
fn text_eq(v: &[u8], folded: &[u8]) -> bool {
    let plain = v.is_ascii()
        && v.first() != Some(&b' ')
        && v.last() != Some(&b' ')
        && !v.windows(2).any(|w| w == b"  ")
        && !v.iter().any(|b| matches!(b, b'\t' | b'\n' | b'\r'));
    if plain {
        v.eq_ignore_ascii_case(folded)
    } else {
        fold(&String::from_utf8_lossy(v)).as_bytes() == folded
    }
}

/// Evaluate `f` on `entry`.
pub fn eval(f: &Compiled, entry: &Entry) -> Truth {
    match f {
        Compiled::And(parts) => {
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
        Compiled::Or(parts) => {
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
        Compiled::Not(inner) => match eval(inner, entry) {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            Truth::Undefined => Truth::Undefined,
        },
        Compiled::Fixed(t) => *t,
        Compiled::Present(a) => Truth::from(entry.get(a).is_some_and(|v| !v.values.is_empty())),
        Compiled::Equal { attr, syntax, want } => {
            let (Some(want), Some(values)) = (want, entry.get(attr)) else {
                return Truth::False;
            };
            let hit = match (syntax, &values.norm) {
                // DN values are kept normalised beside the served ones
                (Syntax::Dn, Some(norm)) => norm.iter().any(|n| **n == **want),
                _ => values.values.iter().any(|v| match syntax {
                    Syntax::Text => text_eq(v, want),
                    Syntax::Binary => **v == **want,
                    Syntax::Dn | Syntax::Integer => normalize_value(*syntax, v).is_some_and(|n| &n == want),
                }),
            };
            Truth::from(hit)
        }
        Compiled::Substring {
            attr,
            syntax,
            initial,
            any,
            final_,
        } => {
            let Some(values) = entry.get(attr) else {
                return Truth::False;
            };
            let hit = values.values.iter().enumerate().any(|(k, v)| {
                let text = match (syntax, values.norm.as_ref().and_then(|n| n.get(k))) {
                    (Syntax::Dn, Some(n)) => String::from_utf8_lossy(n).into_owned(),
                    (Syntax::Dn, None) => normalize_value(Syntax::Dn, v)
                        .and_then(|n| String::from_utf8(n).ok())
                        .unwrap_or_default(),
                    _ => fold(&String::from_utf8_lossy(v)),
                };
                substring_match(&text, initial.as_deref(), any, final_.as_deref())
            });
            Truth::from(hit)
        }
        Compiled::Order {
            attr,
            number,
            text,
            ge,
        } => {
            let Some(values) = entry.get(attr) else {
                return Truth::False;
            };
            let ok = |o: Ordering| {
                if *ge {
                    o != Ordering::Less
                } else {
                    o != Ordering::Greater
                }
            };
            let hit = values.values.iter().any(|x| match number {
                Some(want) => std::str::from_utf8(x)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .is_some_and(|n| ok(n.cmp(want))),
                None => ok(fold(&String::from_utf8_lossy(x)).as_str().cmp(text.as_str())),
            });
            Truth::from(hit)
        }
    }
}

fn substring_match(text: &str, initial: Option<&str>, any: &[String], final_: Option<&str>) -> bool {
    let mut rest: &str = text;
    if let Some(i) = initial {
        match rest.strip_prefix(i) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    for piece in any {
        match rest.find(piece.as_str()) {
            Some(pos) => rest = &rest[pos + piece.len()..],
            None => return false,
        }
    }
    match final_ {
        Some(f) => rest.ends_with(f),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Attr;
    use ldap3_proto::parse_ldap_filter_str;

    fn entry() -> Entry {
        let a = |name: &'static str, vals: &[&str]| {
            Attr::new(name, vals.iter().map(|v| v.as_bytes().to_vec()).collect())
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
        assert_eq!(eval(&compile(&f), &entry()), Truth::Undefined);
    }

    #[test]
    fn depth_counts_nesting() {
        let f = parse_ldap_filter_str("(&(|(!(a=b))(c=d)))").expect("f");
        assert_eq!(depth(&f), 4);
    }
}
