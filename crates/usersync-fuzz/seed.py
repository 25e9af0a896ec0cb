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
    print(" ".join(f"{k}={v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
