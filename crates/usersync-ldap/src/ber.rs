//! A small BER writer for the one message the server sends in bulk: SearchResultEntry (RFC 4511
//! 4.5.2), written straight from the tree's values into the output buffer with minimal definite
//! lengths. Going through ldap3_proto's `LdapMsg` instead copies every value into a `Vec`, builds
//! a tag tree, and re-copies each nesting level while encoding; a full paged search of 100,000
//! users spent most of its CPU there. Everything else the server sends still goes through
//! ldap3_proto (`codec`).

use bytes::{BufMut, BytesMut};

/// `SEQUENCE` (universal, constructed).
const SEQUENCE: u8 = 0x30;
/// `SET` (universal, constructed).
const SET: u8 = 0x31;
/// `INTEGER` (universal, primitive).
const INTEGER: u8 = 0x02;
/// `OCTET STRING` (universal, primitive).
const OCTET_STRING: u8 = 0x04;
/// `[APPLICATION 4]` constructed: SearchResultEntry.
const SEARCH_RESULT_ENTRY: u8 = 0x64;

/// Bytes of the length octets for `len` content bytes (short form below 128).
fn len_len(len: usize) -> usize {
    if len < 0x80 {
        1
    } else {
        let bits = (usize::BITS - len.leading_zeros()) as usize;
        1 + bits.div_ceil(8)
    }
}

/// Bytes of a whole value (tag, length, content) with `len` content bytes.
fn tlv_len(len: usize) -> usize {
    1 + len_len(len) + len
}

/// Write a tag and a minimal definite length.
fn put_header(buf: &mut BytesMut, tag: u8, len: usize) {
    buf.put_u8(tag);
    if len < 0x80 {
        buf.put_u8(len as u8);
    } else {
        let n = len_len(len) - 1;
        buf.put_u8(0x80 | n as u8);
        buf.put_slice(&len.to_be_bytes()[std::mem::size_of::<usize>() - n..]);
    }
}

/// Write a primitive value.
fn put_primitive(buf: &mut BytesMut, tag: u8, content: &[u8]) {
    put_header(buf, tag, content.len());
    buf.put_slice(content);
}

/// The minimal two's-complement content octets of `v`: (bytes, how many of the last are used).
fn int_content(v: i32) -> ([u8; 4], usize) {
    let b = v.to_be_bytes();
    let mut skip = 0;
    // drop a leading byte while the next one keeps the sign
    while skip < 3
        && ((b[skip] == 0x00 && b[skip + 1] & 0x80 == 0) || (b[skip] == 0xff && b[skip + 1] & 0x80 != 0))
    {
        skip += 1;
    }
    (b, 4 - skip)
}

/// Content length of one PartialAttribute: its type and the SET of its values.
fn attr_len<V: AsRef<[u8]>>(name: &str, values: &[V]) -> usize {
    let set: usize = values.iter().map(|v| tlv_len(v.as_ref().len())).sum();
    tlv_len(name.len()) + tlv_len(set)
}

/// Append one whole LDAPMessage carrying a SearchResultEntry: `dn` and `attrs` as (type,
/// values) pairs in order (values empty for typesOnly), no controls. `attrs` is walked twice
/// (once to size, once to write), so it must be cheap to clone.
pub fn search_result_entry<'a, I, V>(buf: &mut BytesMut, msgid: i32, dn: &str, attrs: I)
where
    I: Iterator<Item = (&'a str, &'a [V])> + Clone,
    V: AsRef<[u8]> + 'a,
{
    let list: usize = attrs.clone().map(|(n, v)| tlv_len(attr_len(n, v))).sum();
    let entry = tlv_len(dn.len()) + tlv_len(list);
    let (id, id_len) = int_content(msgid);
    let msg = tlv_len(id_len) + tlv_len(entry);
    buf.reserve(tlv_len(msg));
    put_header(buf, SEQUENCE, msg);
    put_primitive(buf, INTEGER, &id[4 - id_len..]);
    put_header(buf, SEARCH_RESULT_ENTRY, entry);
    put_primitive(buf, OCTET_STRING, dn.as_bytes());
    put_header(buf, SEQUENCE, list);
    for (name, values) in attrs {
        put_header(buf, SEQUENCE, attr_len(name, values));
        put_primitive(buf, OCTET_STRING, name.as_bytes());
        put_header(buf, SET, values.iter().map(|v| tlv_len(v.as_ref().len())).sum());
        for v in values {
            put_primitive(buf, OCTET_STRING, v.as_ref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3_proto::proto::{LdapMsg, LdapOp, LdapPartialAttribute, LdapSearchResultEntry};
    use ldap3_proto::LdapCodec;
    use tokio_util::codec::{Decoder, Encoder};

    /// An attribute as (type, values).
    type Attrs = (&'static str, Vec<Vec<u8>>);

    /// ldap3_proto's bytes for the same message.
    fn reference(msgid: i32, dn: &str, attrs: &[(&str, Vec<Vec<u8>>)]) -> (LdapMsg, BytesMut) {
        let msg = LdapMsg {
            msgid,
            op: LdapOp::SearchResultEntry(LdapSearchResultEntry {
                dn: dn.into(),
                attributes: attrs
                    .iter()
                    .map(|(n, v)| LdapPartialAttribute {
                        atype: n.to_string(),
                        vals: v.clone(),
                    })
                    .collect(),
            }),
            ctrl: vec![],
        };
        let mut buf = BytesMut::new();
        LdapCodec::default()
            .encode(msg.clone(), &mut buf)
            .expect("encode");
        (msg, buf)
    }

    #[test]
    fn lengths_and_integers_are_minimal() {
        for (len, want) in [
            (0, 1),
            (127, 1),
            (128, 2),
            (255, 2),
            (256, 3),
            (65_535, 3),
            (65_536, 4),
        ] {
            assert_eq!(len_len(len), want, "{len}");
            let mut b = BytesMut::new();
            put_header(&mut b, OCTET_STRING, len);
            assert_eq!(b.len(), 1 + want);
        }
        let int = |v: i32| {
            let (b, n) = int_content(v);
            b[4 - n..].to_vec()
        };
        assert_eq!(int(0), [0]);
        assert_eq!(int(127), [0x7f]);
        assert_eq!(int(128), [0x00, 0x80]);
        assert_eq!(int(256), [0x01, 0x00]);
        assert_eq!(int(i32::MAX), [0x7f, 0xff, 0xff, 0xff]);
        assert_eq!(int(-1), [0xff]);
        assert_eq!(int(-129), [0xff, 0x7f]);
    }

    #[test]
    fn entries_match_ldap3_proto_byte_for_byte() {
        let big = vec![0xabu8; 70_000];
        let cases: Vec<(i32, &str, Vec<Attrs>)> = vec![
            (1, "", vec![]),
            (127, "cn=a,dc=x", vec![("cn", vec![b"a".to_vec()])]),
            (
                128,
                "cn=a,dc=x",
                vec![("cn", vec![]), ("mail", vec![b"".to_vec()])],
            ),
            (
                70_000,
                "uid=x,ou=users,dc=example,dc=com",
                vec![
                    ("objectClass", vec![b"top".to_vec(), b"inetOrgPerson".to_vec()]),
                    ("jpegPhoto", vec![big]),
                ],
            ),
        ];
        for (id, dn, attrs) in cases {
            let (msg, want) = reference(id, dn, &attrs);
            let mut got = BytesMut::new();
            let it = attrs.iter().map(|(n, v)| (*n, v.as_slice()));
            search_result_entry(&mut got, id, dn, it);
            assert_eq!(got, want, "msgid {id}");
            let decoded = LdapCodec::new(Some(1 << 20))
                .decode(&mut got)
                .expect("decodes")
                .expect("whole");
            assert_eq!(decoded, msg);
        }
    }
}
