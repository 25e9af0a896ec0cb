//! Distinguished names: building them (RFC 4514 escaping) and normalising them for comparison
//! (attribute names and values lower-cased, escapes resolved, spaces around separators dropped).

/// Escape an attribute value for use in a DN (RFC 4514 section 2.4).
pub fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 4);
    let last = v.chars().count().saturating_sub(1);
    for (i, ch) in v.chars().enumerate() {
        match ch {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(ch);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            _ => out.push(ch),
        }
    }
    out
}

/// One parsed RDN: (attribute, value) pairs (several for a multi-valued RDN), unescaped.
pub type Rdn = Vec<(String, String)>;

/// Parse a DN into RDNs, outermost last (as written). `None` when it is not a DN. The empty
/// string is the empty DN (no RDNs).
pub fn parse(dn: &str) -> Option<Vec<Rdn>> {
    let mut rdns = Vec::new();
    if dn.trim().is_empty() {
        return Some(rdns);
    }
    let bytes: Vec<char> = dn.chars().collect();
    let mut i = 0;
    let mut rdn: Rdn = Vec::new();
    loop {
        // attribute type
        let mut attr = String::new();
        while i < bytes.len() && bytes[i] != '=' {
            if matches!(bytes[i], ',' | '+') {
                return None;
            }
            attr.push(bytes[i]);
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        i += 1; // '='
        let attr = attr.trim().to_string();
        if attr.is_empty()
            || !attr
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return None;
        }
        // value
        let mut raw: Vec<u8> = Vec::new();
        let mut trailing_ws = 0usize; // unescaped spaces at the end, dropped
        while i < bytes.len() && !matches!(bytes[i], ',' | '+' | ';') {
            let c = bytes[i];
            if c == '\\' {
                let a = *bytes.get(i + 1)?;
                if let (Some(h), Some(l)) = (a.to_digit(16), bytes.get(i + 2).and_then(|b| b.to_digit(16))) {
                    raw.push((h * 16 + l) as u8);
                    i += 3;
                } else {
                    let mut buf = [0u8; 4];
                    raw.extend_from_slice(a.encode_utf8(&mut buf).as_bytes());
                    i += 2;
                }
                trailing_ws = 0;
                continue;
            }
            if c == ' ' {
                if raw.is_empty() {
                    i += 1;
                    continue;
                }
                trailing_ws += 1;
            } else {
                trailing_ws = 0;
            }
            let mut buf = [0u8; 4];
            raw.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            i += 1;
        }
        raw.truncate(raw.len() - trailing_ws);
        let value = String::from_utf8(raw).ok()?;
        rdn.push((attr, value));
        if i >= bytes.len() {
            rdns.push(rdn);
            return Some(rdns);
        }
        let sep = bytes[i];
        i += 1;
        if sep != '+' {
            rdns.push(std::mem::take(&mut rdn));
        }
    }
}

/// The comparison form of a DN: `None` when it is not a DN.
pub fn normalize(dn: &str) -> Option<String> {
    let rdns = parse(dn)?;
    Some(join(&rdns))
}

fn join(rdns: &[Rdn]) -> String {
    let mut out = String::new();
    for (n, rdn) in rdns.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let mut parts: Vec<String> = rdn
            .iter()
            .map(|(a, v)| format!("{}={}", canonical_attr(a), escape_value(&v.to_lowercase())))
            .collect();
        parts.sort();
        out.push_str(&parts.join("+"));
    }
    out
}

/// The normalised DN of the parent (`None` for the empty DN).
pub fn parent(norm: &str) -> Option<String> {
    if norm.is_empty() {
        return None;
    }
    let rdns = parse(norm)?;
    Some(join(&rdns[1..]))
}

/// Lower-case attribute name with aliases resolved (`commonName` -> `cn`).
pub fn canonical_attr(a: &str) -> String {
    let l = a.trim().to_ascii_lowercase();
    match l.as_str() {
        "commonname" => "cn".into(),
        "surname" => "sn".into(),
        "gn" => "givenname".into(),
        "userid" => "uid".into(),
        "rfc822mailbox" => "mail".into(),
        "domaincomponent" => "dc".into(),
        "organizationname" => "o".into(),
        "organizationalunitname" => "ou".into(),
        "ismemberof" => "memberof".into(),
        _ => l,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_spaces_and_escapes() {
        assert_eq!(
            normalize("CN=Alice Smith , OU=Users,dc=Example, DC=com").as_deref(),
            Some("cn=alice smith,ou=users,dc=example,dc=com")
        );
        assert_eq!(normalize("cn=a\\2Cb,dc=x"), normalize("cn=A\\,B,dc=x"));
        assert_eq!(normalize("commonName=x,dc=y"), normalize("cn=X,dc=Y"));
        assert_eq!(normalize("").as_deref(), Some(""));
        assert!(normalize("not a dn").is_none());
        assert!(normalize("cn=x,").is_none());
    }

    #[test]
    fn escaping_round_trips() {
        for v in ["a,b", "#x", " lead", "trail ", "a+b=c\\d", "plain"] {
            let dn = format!("cn={},dc=x", escape_value(v));
            let rdns = parse(&dn).expect("parse");
            assert_eq!(rdns[0][0].1, v, "{dn}");
        }
    }

    #[test]
    fn parent_of() {
        assert_eq!(parent("cn=a,ou=users,dc=x").as_deref(), Some("ou=users,dc=x"));
        assert_eq!(parent("dc=x").as_deref(), Some(""));
        assert_eq!(parent(""), None);
    }
}
