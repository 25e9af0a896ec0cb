//! The wire codec: ldap3_proto's BER codec behind a guard that checks each message's declared
//! length and nesting before it is parsed, so an oversized or absurdly nested request is
//! refused (and the connection closed) without being buffered or recursed into.
//!
//! ldap3_proto decodes an unknown control without its criticality, so the guard also reads the
//! controls of each message from its raw BER ([`critical_controls`]): the session refuses an
//! operation carrying a critical control it does not support (RFC 4511 4.1.11).

use std::io;

use bytes::BytesMut;
use ldap3_proto::proto::LdapMsg;
use ldap3_proto::LdapCodec;
use tokio_util::codec::{Decoder, Encoder};

/// Deepest nesting of constructed BER values accepted in one message (a filter nests two
/// levels per operator).
pub const MAX_BER_DEPTH: usize = 160;

/// Why a request was refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not an LDAPMessage (wrong outer tag, bad or indefinite length).
    Malformed(&'static str),
    /// Larger than allowed.
    TooLarge {
        /// Declared size, bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Nested deeper than [`MAX_BER_DEPTH`].
    TooDeep,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Malformed(why) => write!(f, "malformed request: {why}"),
            Refusal::TooLarge { size, max } => {
                write!(f, "request of {size} bytes is larger than {max} bytes")
            }
            Refusal::TooDeep => write!(f, "request nested deeper than {MAX_BER_DEPTH} levels"),
        }
    }
}

/// Tag and length of the BER value at `buf[pos..]`: (header length, content length).
/// `Ok(None)` when more bytes are needed.
fn header(buf: &[u8], pos: usize) -> Result<Option<(usize, usize)>, Refusal> {
    let mut i = pos;
    let Some(&tag) = buf.get(i) else {
        return Ok(None);
    };
    i += 1;
    if tag & 0x1f == 0x1f {
        // high tag number form: continuation bytes
        loop {
            let Some(&b) = buf.get(i) else {
                return Ok(None);
            };
            i += 1;
            if i - pos > 6 {
                return Err(Refusal::Malformed("tag too long"));
            }
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let Some(&first) = buf.get(i) else {
        return Ok(None);
    };
    i += 1;
    let len = if first & 0x80 == 0 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 {
            return Err(Refusal::Malformed("indefinite length"));
        }
        if n > 4 {
            return Err(Refusal::Malformed("length too long"));
        }
        if buf.len() < i + n {
            return Ok(None);
        }
        let mut len = 0usize;
        for b in &buf[i..i + n] {
            len = (len << 8) | *b as usize;
        }
        i += n;
        len
    };
    Ok(Some((i - pos, len)))
}

/// Check one whole message `msg` (exactly its bytes): every inner length fits in its parent and
/// the nesting stays under [`MAX_BER_DEPTH`]. Iterative: no recursion on hostile input.
pub fn check_structure(msg: &[u8]) -> Result<(), Refusal> {
    let mut ends: Vec<usize> = vec![msg.len()];
    let mut pos = 0;
    while pos < msg.len() {
        while ends.last().is_some_and(|e| pos >= *e) {
            ends.pop();
        }
        let Some((h, len)) = header(msg, pos)? else {
            return Err(Refusal::Malformed("truncated value"));
        };
        let end = pos + h + len;
        if ends.last().is_some_and(|e| end > *e) {
            return Err(Refusal::Malformed("inner length larger than its container"));
        }
        let constructed = msg[pos] & 0x20 != 0;
        if constructed {
            ends.push(end);
            if ends.len() > MAX_BER_DEPTH {
                return Err(Refusal::TooDeep);
            }
            pos += h;
        } else {
            pos = end;
        }
    }
    Ok(())
}

/// The OIDs of the controls a message marks critical, read from its raw BER (`msg`: exactly
/// one LDAPMessage that passed [`check_structure`]). Anything unexpected in the controls yields
/// what could be read; ldap3_proto's decode then judges the message as a whole.
pub fn critical_controls(msg: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    // (start of contents, end) of the value at `pos`
    let value = |pos: usize| -> Option<(usize, usize)> {
        let (h, len) = header(msg, pos).ok()??;
        let end = pos.checked_add(h)?.checked_add(len)?;
        (end <= msg.len()).then_some((pos + h, end))
    };
    let Some((mut pos, end)) = value(0) else {
        return out;
    };
    // messageID, protocolOp, then the optional [0] controls
    for _ in 0..2 {
        match value(pos) {
            Some((_, e)) if e <= end => pos = e,
            _ => return out,
        }
    }
    if msg.get(pos) != Some(&0xa0) {
        return out;
    }
    let Some((mut c, controls_end)) = value(pos) else {
        return out;
    };
    while c < controls_end {
        let Some((inner, control_end)) = value(c) else {
            break;
        };
        // Control ::= SEQUENCE { controlType OCTET STRING, criticality BOOLEAN DEFAULT FALSE, ... }
        if msg.get(c) == Some(&0x30) && msg.get(inner) == Some(&0x04) {
            if let Some((oid_start, oid_end)) = value(inner) {
                let critical = msg.get(oid_end) == Some(&0x01)
                    && value(oid_end).is_some_and(|(b, e)| e == b + 1 && e <= control_end && msg[b] != 0);
                if critical {
                    out.push(String::from_utf8_lossy(&msg[oid_start..oid_end]).into_owned());
                }
            }
        }
        c = control_end;
    }
    out
}

/// One decoded request: the message and the OIDs of the controls it marks critical.
#[derive(Debug, Clone)]
pub struct Request {
    /// The message as ldap3_proto decodes it.
    pub msg: LdapMsg,
    /// OIDs of its critical controls ([`critical_controls`]).
    pub critical: Vec<String>,
}

/// The server's codec.
pub struct GuardedCodec {
    inner: LdapCodec,
    max: usize,
}

impl GuardedCodec {
    /// A codec refusing messages larger than `max` bytes.
    pub fn new(max: usize) -> GuardedCodec {
        GuardedCodec {
            inner: LdapCodec::new(Some(max)),
            max,
        }
    }
}

/// A decode failure: a refusal by the guard, or ldap3_proto's error.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Refused before parsing.
    #[error("{0}")]
    Refused(Refusal),
    /// The message could not be decoded (or the socket failed).
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl Decoder for GuardedCodec {
    type Item = Request;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, CodecError> {
        if buf.is_empty() {
            return Ok(None);
        }
        if buf[0] != 0x30 {
            return Err(CodecError::Refused(Refusal::Malformed(
                "not an LDAPMessage (SEQUENCE expected)",
            )));
        }
        let Some((h, len)) = header(buf, 0).map_err(CodecError::Refused)? else {
            return Ok(None);
        };
        let total = h + len;
        if total > self.max {
            return Err(CodecError::Refused(Refusal::TooLarge {
                size: total,
                max: self.max,
            }));
        }
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        check_structure(&buf[..total]).map_err(CodecError::Refused)?;
        let critical = critical_controls(&buf[..total]);
        match self.inner.decode(buf)? {
            Some(msg) => Ok(Some(Request { msg, critical })),
            None => Err(CodecError::Refused(Refusal::Malformed(
                "message could not be decoded",
            ))),
        }
    }
}

impl Encoder<LdapMsg> for GuardedCodec {
    type Error = CodecError;

    fn encode(&mut self, msg: LdapMsg, buf: &mut BytesMut) -> Result<(), CodecError> {
        Ok(self.inner.encode(msg, buf)?)
    }
}

/// Messages encoded beforehand (the entries of a search, [`crate::ber`]), sent as they are.
impl Encoder<BytesMut> for GuardedCodec {
    type Error = CodecError;

    fn encode(&mut self, encoded: BytesMut, buf: &mut BytesMut) -> Result<(), CodecError> {
        if buf.is_empty() {
            // the usual case (the write buffer was flushed after the last request): no copy
            *buf = encoded;
        } else {
            buf.extend_from_slice(&encoded);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3_proto::proto::LdapOp;

    #[test]
    fn refuses_garbage_oversize_and_deep_nesting() {
        let mut c = GuardedCodec::new(1024);
        let mut b = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        assert!(matches!(
            c.decode(&mut b),
            Err(CodecError::Refused(Refusal::Malformed(_)))
        ));
        // declares 1 MiB: refused before any of it arrives
        let mut b = BytesMut::from(&[0x30u8, 0x83, 0x10, 0x00, 0x00][..]);
        assert!(matches!(
            c.decode(&mut b),
            Err(CodecError::Refused(Refusal::TooLarge { .. }))
        ));
        // 200 nested SEQUENCEs
        fn seq(content: Vec<u8>) -> Vec<u8> {
            let mut out = vec![0x30, 0x82, (content.len() >> 8) as u8, content.len() as u8];
            out.extend(content);
            out
        }
        let mut msg = Vec::new();
        for _ in 0..200 {
            msg = seq(msg);
        }
        assert_eq!(check_structure(&msg), Err(Refusal::TooDeep));
        // inner length past the container
        assert!(check_structure(&[0x30, 0x03, 0x04, 0x05, 0x00]).is_err());
        // a partial message waits for more
        let mut b = BytesMut::from(&[0x30u8, 0x05, 0x02][..]);
        assert!(matches!(c.decode(&mut b), Ok(None)));
    }

    #[test]
    fn encoded_messages_are_sent_as_they_are_after_what_is_pending() {
        let mut c = GuardedCodec::new(1024);
        let mut out = BytesMut::new();
        c.encode(BytesMut::from(&b"\x30\x00"[..]), &mut out)
            .expect("into an empty buffer");
        let done = LdapMsg {
            msgid: 3,
            op: LdapOp::UnbindRequest,
            ctrl: vec![],
        };
        c.encode(done, &mut out).expect("an LdapMsg after it");
        let mut want = BytesMut::from(&b"\x30\x00"[..]);
        c.inner
            .encode(
                LdapMsg {
                    msgid: 3,
                    op: LdapOp::UnbindRequest,
                    ctrl: vec![],
                },
                &mut want,
            )
            .expect("reference");
        c.encode(BytesMut::from(&b"\x30\x01\x00"[..]), &mut out)
            .expect("appended to a pending buffer");
        want.extend_from_slice(b"\x30\x01\x00");
        assert_eq!(out, want);
    }

    /// A search request (msgid 2, base "", scope base, `(objectClass=*)`) with `controls`.
    fn search_with(controls: &[(&str, Option<bool>)]) -> Vec<u8> {
        fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
            assert!(content.len() < 128);
            let mut v = vec![tag, content.len() as u8];
            v.extend_from_slice(content);
            v
        }
        let op = [
            &[0x04, 0x00, 0x0a, 0x01, 0x00, 0x0a, 0x01, 0x00, 0x02, 0x01, 0x00][..],
            &[0x02, 0x01, 0x00, 0x01, 0x01, 0x00][..],
            &tlv(0x87, b"objectClass")[..],
            &[0x30, 0x00][..],
        ]
        .concat();
        let mut body = vec![0x02, 0x01, 0x02];
        body.extend(tlv(0x63, &op));
        if !controls.is_empty() {
            let mut all = Vec::new();
            for (oid, crit) in controls {
                let mut c = tlv(0x04, oid.as_bytes());
                if let Some(b) = crit {
                    c.extend([0x01, 0x01, if *b { 0xff } else { 0x00 }]);
                }
                all.extend(tlv(0x30, &c));
            }
            body.extend(tlv(0xa0, &all));
        }
        tlv(0x30, &body)
    }

    #[test]
    fn critical_controls_are_read_from_the_raw_message() {
        let mut c = GuardedCodec::new(1024);
        let msg = search_with(&[
            ("1.2.3.4", Some(true)),
            ("1.2.3.5", Some(false)),
            ("1.2.3.6", None),
            ("1.2.3.7", Some(true)),
        ]);
        let mut b = BytesMut::from(&msg[..]);
        let req = c.decode(&mut b).expect("decodes").expect("whole");
        assert_eq!(req.critical, ["1.2.3.4", "1.2.3.7"]);
        assert!(matches!(req.msg.op, LdapOp::SearchRequest(_)));
        assert!(b.is_empty());
        let plain = search_with(&[]);
        assert!(critical_controls(&plain).is_empty());
        // truncated or odd controls: what can be read, never a panic
        for cut in 0..msg.len() {
            let _ = critical_controls(&msg[..cut]);
        }
    }
}
