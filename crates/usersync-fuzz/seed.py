#!/usr/bin/env python3
"""Write the seed corpora of the usersync fuzz targets.

Connector targets: every replay fixture under connectors/<id>/tests/fixtures/ becomes one input in
the layout src/lib.rs reads (option set, query, then each recorded response: status, headers,
body), plus a few token-endpoint error bodies. Config target: every ```toml block of docs/ that
defines connections. Usage: seed.py REPO_ROOT OUT_DIR
"""
import glob
import hashlib
import json
import os
import re
import struct
import sys

CONNECTORS = ["entra", "google", "keycloak", "okta", "onelogin"]

TOKEN_ERRORS = [
    (400, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.",
           "error_codes": [7000215]}),
    (400, {"error": "unauthorized_client", "error_description": "Client is unauthorized to retrieve access tokens"}),
    (401, {"error": "invalid_client", "error_description": "Invalid client credentials"}),
    (400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
    (400, {"status": {"error": True, "code": 400, "type": "bad request", "message": "Invalid client_id"}}),
    (500, "<html>Internal Server Error</html>"),
]


def response(status, headers, body):
    out = struct.pack("<HB", status & 0xFFFF, min(len(headers), 24))
    for name, value in headers[:24]:
        n = name.encode()[:255]
        v = value.encode()[:65535]
        out += struct.pack("<B", len(n)) + n + struct.pack("<H", len(v)) + v
    return out + struct.pack("<I", len(body)) + body


def headers_of(resp):
    h = resp.get("headers") or []
    return list(h.items()) if isinstance(h, dict) else [tuple(x) for x in h]


def body_of(resp):
    if resp.get("body_bytes") is not None:
        return bytes(resp["body_bytes"])
    if resp.get("body_text") is not None:
        return resp["body_text"].encode()
    if resp.get("body") is not None:
        return json.dumps(resp["body"], separators=(",", ":")).encode()
    return b""


def write(out_dir, data):
    os.makedirs(out_dir, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(out_dir, name), "wb") as f:
        f.write(data)


def tlv(tag, content):
    """One BER value (definite length)."""
    n = len(content)
    if n < 128:
        head = bytes([tag, n])
    else:
        b = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([tag, 0x80 | len(b)]) + b
    return head + content


def ldap_msg(msgid, op, controls=b""):
    body = tlv(0x02, bytes([msgid])) + op
    if controls:
        body += tlv(0xA0, controls)
    return tlv(0x30, body)


def ldap_seeds(out_dir):
    """Requests of the ldap target: binds, searches (each scope, filter forms, controls),
    compare, StartTLS, writes, abandon, unbind; each preceded by the cut byte."""
    s = lambda v: tlv(0x04, v.encode())
    paged = tlv(0x30, s("1.2.840.113556.1.4.319") + tlv(0x04, tlv(0x30, tlv(0x02, b"\x0a") + tlv(0x04, b""))))
    critical = tlv(0x30, s("1.2.3.4") + tlv(0x01, b"\xff"))

    def search(base, scope, flt, attrs=(), controls=b""):
        op = s(base) + tlv(0x0A, bytes([scope])) + tlv(0x0A, b"\x00") + tlv(0x02, b"\x00")
        op += tlv(0x02, b"\x00") + tlv(0x01, b"\x00") + flt + tlv(0x30, b"".join(s(a) for a in attrs))
        return ldap_msg(2, tlv(0x63, op), controls)

    eq = lambda a, v: tlv(0xA3, s(a) + s(v))
    present = tlv(0x87, b"objectClass")
    subs = tlv(0xA4, s("uid") + tlv(0x30, tlv(0x80, b"us") + tlv(0x81, b"er") + tlv(0x82, b"1")))
    msgs = [
        ldap_msg(1, tlv(0x60, tlv(0x02, b"\x03") + s("cn=reader,ou=services,dc=example,dc=com") + tlv(0x80, b"pw"))),
        search("", 0, present, ["+"]),
        search("cn=Subschema", 0, present, ["objectClasses"]),
        search("dc=example,dc=com", 1, present, ["1.1"]),
        search("ou=users,dc=example,dc=com", 2, tlv(0xA0, eq("objectClass", "inetOrgPerson") + tlv(0xA2, eq("uid", "x"))), ["*", "memberOf"], paged),
        search("dc=example,dc=com", 2, tlv(0xA1, subs + tlv(0xA5, s("uidNumber") + s("10")) + tlv(0xA8, s("cn") + s("a"))), [], critical),
        search("dc=example,dc=com", 2, tlv(0xA9, tlv(0x81, b"1.2.840.113556.1.4.1941") + tlv(0x82, b"memberOf") + tlv(0x83, b"cn=g,dc=example,dc=com"))),
        ldap_msg(3, tlv(0x6E, s("cn=a,dc=example,dc=com") + tlv(0x30, s("cn") + s("a")))),
        ldap_msg(4, tlv(0x77, tlv(0x80, b"1.3.6.1.4.1.1466.20037"))),
        ldap_msg(5, tlv(0x68, s("cn=x,dc=example,dc=com") + tlv(0x30, b""))),
        ldap_msg(6, tlv(0x50, b"\x02")),
        ldap_msg(7, tlv(0x42, b"")),
    ]
    for m in msgs:
        write(out_dir, b"\x80" + m)
    write(out_dir, b"\x40" + b"".join(msgs))
    return len(msgs) + 1


def main():
    root, out = sys.argv[1], sys.argv[2]
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "targets.json")) as f:
        specs = json.load(f)
    counts = {}
    for c in CONNECTORS:
        spec = specs[c]
        n = 0
        for path in sorted(glob.glob(os.path.join(root, "connectors", c, "tests", "fixtures", "*.json"))):
            with open(path) as f:
                fx = json.load(f)
            # match on the options (some fixtures leave the secret implicit)
            set_ix = next((i for i, s in enumerate(spec["option_sets"]) if s["options"] == fx.get("options", {})), 0)
            op = fx["query"]["op"]
            q_ix = next((i for i, q in enumerate(spec["queries"]) if q["op"] == op), 0)
            data = struct.pack("<BB", set_ix, q_ix)
            for ex in fx["exchanges"]:
                r = ex["response"]
                data += response(r["status"], headers_of(r), body_of(r))
            write(os.path.join(out, c), data)
            n += 1
        token_q = len(spec["queries"])
        for status, body in TOKEN_ERRORS:
            b = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            data = struct.pack("<BB", 0, token_q) + response(status, [("Content-Type", "application/json")], b)
            write(os.path.join(out, c), data)
            n += 1
        counts[c] = n
    n = 0
    for path in sorted(glob.glob(os.path.join(root, "docs", "**", "*.md"), recursive=True)):
        with open(path) as f:
            text = f.read()
        for block in re.findall(r"```toml\n(.*?)```", text, re.S):
            if "connections" in block:
                write(os.path.join(out, "config"), block.encode())
                n += 1
    counts["config"] = n
    counts["ldap"] = ldap_seeds(os.path.join(out, "ldap"))
    print(" ".join(f"{k}={v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
