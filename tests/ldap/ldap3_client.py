"""Drive `usersync ldap serve` with Python's ldap3 (a real client, pinned by tests/ldap/setup.sh).

Run by tests/it/ldap/python.rs: `python ldap3_client.py PLAN.json` prints one JSON object with
what the server answered; the Rust test holds the expectations (from the store it filled), so
this script only asks and reports. PLAN holds host, port, ldaps_port, ca (the test CA's PEM),
bind_dn, password, base, `searches` (name, base, scope base/one/sub, filter, attrs) and `paged`
(base, filter, size).
"""

import json
import ssl
import sys

from ldap3 import ALL, BASE, LEVEL, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException

SCOPES = {"base": BASE, "one": LEVEL, "sub": SUBTREE}


def entries(conn):
    """The entries of the last search: DN and attributes (lists of strings)."""
    out = []
    for r in conn.response or []:
        if r.get("type") != "searchResEntry":
            continue
        attrs = {}
        for k, v in (r.get("attributes") or {}).items():
            vals = v if isinstance(v, list) else [v]
            attrs[k.lower()] = [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in vals]
        out.append({"dn": r["dn"], "attrs": attrs})
    return out


def main():
    plan = json.load(open(sys.argv[1]))
    tls = Tls(ca_certs_file=plan["ca"], validate=ssl.CERT_REQUIRED)
    server = Server(plan["host"], port=plan["port"], get_info=ALL, tls=tls, connect_timeout=10)
    report = {}

    # binds: a wrong password, anonymous, then the service account
    bad = Connection(server, user=plan["bind_dn"], password="wrong-password", receive_timeout=10)
    report["bad_bind"] = {"ok": bad.bind(), "code": bad.result["result"]}
    bad.unbind()
    anon = Connection(server, receive_timeout=10)
    report["anonymous_bind"] = {"ok": anon.bind(), "code": anon.result["result"]}
    anon.unbind()
    conn = Connection(server, user=plan["bind_dn"], password=plan["password"], receive_timeout=30)
    report["bind"] = {"ok": conn.bind(), "code": conn.result["result"]}
    report["whoami"] = conn.extend.standard.who_am_i()

    # the rootDSE and the schema, as ldap3 reads them on bind (get_info=ALL)
    info, schema = server.info, server.schema
    report["root_dse"] = {
        "naming_contexts": list(info.naming_contexts or []) if info else [],
        "supported_controls": [c[0] for c in (info.supported_controls or [])] if info else [],
        "supported_extensions": [e[0] for e in (info.supported_extensions or [])] if info else [],
    }
    report["schema_classes"] = sorted(schema.object_classes.keys()) if schema else []

    # searches: each scope and filter form, as the plan lists them
    report["searches"] = {}
    for s in plan["searches"]:
        ok = conn.search(s["base"], s["filter"], search_scope=SCOPES[s["scope"]], attributes=s["attrs"])
        report["searches"][s["name"]] = {
            "ok": ok,
            "code": conn.result["result"],
            "entries": entries(conn),
        }

    # paged results: every page through ldap3's generator
    p = plan["paged"]
    seen, pages, cookie = [], 0, None
    while True:
        conn.search(p["base"], p["filter"], search_scope=SUBTREE, attributes=["uid"],
                    paged_size=p["size"], paged_cookie=cookie)
        pages += 1
        seen.extend(e["attrs"].get("uid", [""])[0] for e in entries(conn))
        ctrl = conn.result.get("controls", {}).get("1.2.840.113556.1.4.319", {})
        cookie = ctrl.get("value", {}).get("cookie")
        if not cookie:
            break
    report["paged"] = {"pages": pages, "uids": seen, "code": conn.result["result"]}
    conn.unbind()

    # StartTLS, the certificate checked against the test CA, then a search over it
    st = Connection(server, user=plan["bind_dn"], password=plan["password"], receive_timeout=10)
    try:
        st.open()
        started = st.start_tls()
        bound = st.bind()
        st.search(plan["base"], "(objectClass=*)", search_scope=BASE, attributes=["1.1"])
        report["starttls"] = {"started": started, "bound": bound, "tls": st.tls_started,
                              "entries": len(entries(st))}
        st.unbind()
    except LDAPException as e:
        report["starttls"] = {"error": repr(e)}

    # LDAPS
    ldaps = Server(plan["host"], port=plan["ldaps_port"], use_ssl=True, tls=tls, connect_timeout=10)
    lc = Connection(ldaps, user=plan["bind_dn"], password=plan["password"], receive_timeout=10)
    try:
        report["ldaps"] = {"bound": lc.bind()}
        lc.unbind()
    except LDAPException as e:
        report["ldaps"] = {"error": repr(e)}

    # a client that does not trust the server's certificate is refused by its own check
    untrusted = Server(plan["host"], port=plan["port"],
                       tls=Tls(ca_certs_file=plan["other_ca"], validate=ssl.CERT_REQUIRED), connect_timeout=10)
    uc = Connection(untrusted, receive_timeout=10)
    try:
        uc.open()
        report["untrusted_starttls"] = {"started": uc.start_tls()}
    except LDAPException as e:
        report["untrusted_starttls"] = {"error": type(e).__name__}
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
