//! The served tree as LDIF (RFC 2849), for `usersync export ldif`: the entries of a
//! [`Directory`] built by [`crate::server::load`], the same code path the listener answers from,
//! so the file holds exactly what a search with `*` and `entryUUID` returns.
//!
//! Values that are not SAFE-STRINGs (non-ASCII, leading space, colon or `<`, trailing space,
//! control characters, binary such as `jpegPhoto`) are written base64 (`name:: ...`); lines are
//! folded at 76 columns.

use std::io::{self, Write};

use base64::Engine;

use crate::directory::Directory;
use crate::entry::Entry;

/// Longest line written before folding (RFC 2849 allows any; 76 is what OpenLDAP's tools write).
const FOLD: usize = 76;

/// Which operational attributes go with the user attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operational {
    /// `entryUUID` only: slapadd keeps it, so a directory loaded from the file gives every entry
    /// the UUID usersync serves (applications key users on it).
    EntryUuid,
    /// None (for `ldapadd`, which refuses attributes clients may not set).
    None,
}

/// Whether `v` can be written as is (RFC 2849 SAFE-STRING, and no trailing space).
pub fn is_safe(v: &[u8]) -> bool {
    let Some(first) = v.first() else {
        return true;
    };
    if matches!(first, b' ' | b':' | b'<') || v.last() == Some(&b' ') {
        return false;
    }
    v.iter()
        .all(|b| matches!(b, 0x01..=0x7f) && *b != b'\n' && *b != b'\r')
}

/// Write `name: value` (or `name:: base64`), folded.
fn line(out: &mut impl Write, name: &str, value: &[u8]) -> io::Result<()> {
    let text = if is_safe(value) {
        // safe: ASCII only
        format!("{name}: {}", String::from_utf8_lossy(value))
    } else {
        format!(
            "{name}:: {}",
            base64::engine::general_purpose::STANDARD.encode(value)
        )
    };
    let bytes = text.as_bytes();
    out.write_all(&bytes[..bytes.len().min(FOLD)])?;
    for chunk in bytes.get(FOLD..).unwrap_or_default().chunks(FOLD - 1) {
        out.write_all(b"\n ")?;
        out.write_all(chunk)?;
    }
    out.write_all(b"\n")
}

/// Write one entry (its DN, user attributes, and the operational ones `op` asks for), followed
/// by an empty line.
pub fn write_entry(out: &mut impl Write, e: &Entry, op: Operational) -> io::Result<()> {
    line(out, "dn", e.dn.as_bytes())?;
    let uuid = match op {
        Operational::EntryUuid => e.operational.iter().find(|a| a.name == "entryUUID"),
        Operational::None => None,
    };
    for a in e.attrs.iter().chain(uuid) {
        for v in &a.values {
            line(out, a.name, v)?;
        }
    }
    out.write_all(b"\n")
}

/// Write the whole tree, parents before children (the order the tree keeps), after a comment
/// line naming what it is. No `version: 1` line: OpenLDAP's slapadd (2.5) refuses a file that
/// starts with one ("entry -1 has no dn"), and LDIF readers take a file without it as version 1
/// content all the same.
pub fn write(out: &mut impl Write, dir: &Directory, op: Operational) -> io::Result<usize> {
    writeln!(
        out,
        "# usersync export ldif: {} entries under {}, store run marker {}/{}\n",
        dir.entries.len(),
        dir.base,
        dir.marker.0,
        dir.marker.1
    )?;
    for e in &dir.entries {
        write_entry(out, e, op)?;
    }
    out.flush()?;
    Ok(dir.entries.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Attr;

    fn entry(dn: &str, attrs: Vec<Attr>) -> Entry {
        Entry {
            dn: dn.into(),
            norm: dn.to_lowercase(),
            parent: String::new(),
            attrs,
            operational: vec![
                Attr::new("entryUUID", vec![b"0f0e-uuid".to_vec()]),
                Attr::new("entryDN", vec![dn.as_bytes().to_vec()]),
            ],
        }
    }

    fn text(e: &Entry, op: Operational) -> String {
        let mut out = Vec::new();
        write_entry(&mut out, e, op).expect("write");
        String::from_utf8(out).expect("ldif is ASCII")
    }

    #[test]
    fn safe_values_plain_others_base64_and_long_lines_folded() {
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        let long = "x".repeat(200);
        let e = entry(
            "cn=Zoë,ou=users,dc=x",
            vec![
                Attr::new("cn", vec!["Zoë".as_bytes().to_vec()]),
                Attr::new(
                    "sn",
                    vec![b"plain".to_vec(), b" lead".to_vec(), b"trail ".to_vec()],
                ),
                Attr::new(
                    "description",
                    vec![b":colon".to_vec(), b"<angle".to_vec(), b"a\nb".to_vec()],
                ),
                Attr::new("jpegPhoto", vec![vec![0xff, 0xd8, 0x00]]),
                Attr::new("title", vec![long.clone().into_bytes()]),
            ],
        );
        let t = text(&e, Operational::EntryUuid);
        assert!(t.starts_with(&format!("dn:: {}\n", b64("cn=Zoë,ou=users,dc=x".as_bytes()))));
        for want in [
            format!("cn:: {}\n", b64("Zoë".as_bytes())),
            "sn: plain\n".to_string(),
            format!("sn:: {}\n", b64(b" lead")),
            format!("sn:: {}\n", b64(b"trail ")),
            format!("description:: {}\n", b64(b":colon")),
            format!("description:: {}\n", b64(b"<angle")),
            format!("description:: {}\n", b64(b"a\nb")),
            format!("jpegPhoto:: {}\n", b64(&[0xff, 0xd8, 0x00])),
            "entryUUID: 0f0e-uuid\n".to_string(),
        ] {
            assert!(t.contains(&want), "{want:?} missing in\n{t}");
        }
        assert!(
            !t.contains("entryDN"),
            "only entryUUID of the operational attributes"
        );
        assert!(t.lines().all(|l| l.len() <= FOLD), "{t}");
        // unfolding gives the value back
        let unfolded = t.replace("\n ", "");
        assert!(unfolded.contains(&format!("title: {long}\n")));
        assert!(t.ends_with("\n\n"));
        assert!(!text(&e, Operational::None).contains("entryUUID"));
    }
}
