"""Peers, side by side: the clients administrators script with today, each listing every user,
group and membership from the same emulator on the same machine in the same run, next to
`usersync sync` (a full initial sync into a fresh SQLite store). Run through run.sh, which
installs the peers into a throwaway directory first."""
import argparse, datetime, json, os, platform, shutil, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BEGIN, END = "<!-- usersync-bench:peers:begin -->", "<!-- usersync-bench:peers:end -->"

# provider -> [(peer name, language, script)]; language "airbyte" is a py/ script run with the
# interpreter of its own venv ($PEERS_DIR/airbyte-venv: the Airbyte CDK's pins clash with the others)
PEERS = {
    "okta": [("okta (Python)", "py", "okta_list.py"), ("@okta/okta-sdk-nodejs", "node", "okta_list.mjs"),
             ("airbyte-source-okta", "airbyte", "airbyte_okta_list.py")],
    "keycloak": [("python-keycloak", "py", "keycloak_list.py"),
                 ("@keycloak/keycloak-admin-client", "node", "keycloak_list.mjs")],
    "google": [("google-api-python-client", "py", "google_list.py")],
    "entra": [("msgraph-sdk (Python)", "py", "msgraph_list.py"),
              ("@microsoft/microsoft-graph-client", "node", "msgraph_list.mjs")],
    "onelogin": [("onelogin (Python)", "py", "onelogin_list.py")],
}
TLS = {"entra"}  # peers that refuse http paging links: emulator, peers and usersync all on https
TLS_PEERS = {"airbyte-source-okta"}  # https-only peers of a provider whose usersync run stays on http


def start_emulator(bin_, provider, users, groups, tls):
    args = [bin_, "emulator", "--provider", provider, "--users", str(users), "--groups", str(groups),
            "--seed", "42"] + (["--tls"] if tls else [])
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    info = json.loads(p.stdout.readline())
    return p, info


def stop_emulator(p):
    """SIGTERM, so the emulator removes the state directory it created; SIGKILL after 5 s."""
    p.terminate()
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def our_config(info, d):
    """The same connection the bench binary writes (usersync_bench::Connection)."""
    p, c = info["provider"], info["client"]
    opts, secrets, secret_files = {}, {}, {}
    if "connector_options" in c:
        for k, v in c["connector_options"].items():
            if isinstance(v, dict) and "file" in v:
                secret_files[k] = v["file"]
            else:
                opts[k] = v
        for k, v in c.get("connector_secrets", {}).items():
            if isinstance(v, dict):
                secret_files[k] = v["file"]
            else:
                secrets[k] = v
    elif p == "google":
        opts = {k: v for k, v in c["options"].items() if k != "service_account_key"}
        secret_files["service_account_key"] = c["options"]["service_account_key"]["file"]
    elif p == "keycloak":
        opts = {k: c[k] for k in ("base_url", "realm", "client_id", "manager_attribute")}
        secrets = {"client_secret": c["client_secret"]}
    elif p == "onelogin":
        opts, secrets = dict(c["options"]), {"client_secret": c["secrets"]["client_secret"]}
    if info.get("https_url"):
        # same transport as the peers: https with the emulator's private CA
        for k, v in list(opts.items()):
            if isinstance(v, str) and v.startswith(info["http_url"]):
                opts[k] = info["https_url"] + v[len(info["http_url"]):]
    page = {"okta": 200, "entra": 999, "keycloak": 1000, "onelogin": 50}.get(p)
    if page:
        opts["page_size"] = page
    runtime = ["[runtime]", "ca_bundle = %s" % json.dumps(info["ca_path"]), ""] if info.get("https_url") else []
    lines = ['[store]', 'path = %s' % json.dumps(os.path.join(d, "store.db")), ""] + runtime + [
"[[connections]]", 'name = "%s"' % p, 'connector = "%s"' % p, "[connections.options]"]
    lines += ["%s = %s" % (k, json.dumps(v)) for k, v in opts.items()]
    for k, v in secrets.items():
        f = os.path.join(d, "secret-" + k)
        with open(f, "w") as fh:
            fh.write(v)
        os.chmod(f, 0o600)
        lines.append("%s = { file = %s }" % (k, json.dumps(f)))
    for k, f in secret_files.items():
        lines.append("%s = { file = %s }" % (k, json.dumps(f)))
    path = os.path.join(d, "usersync.toml")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def peer_env(provider, info):
    c, cr = info["client"], info["credentials"]
    env = dict(os.environ, OKTA_TESTING_TESTINGDISABLEHTTPSCHECK="true", NO_PROXY="127.0.0.1,localhost")
    if provider == "okta":
        env.update(PEER_BASE_URL=info["http_url"], PEER_TOKEN=cr["api_token"])
        if info.get("https_url"):
            env.update(PEER_HTTPS_URL=info["https_url"], REQUESTS_CA_BUNDLE=info["ca_path"])
    elif provider == "keycloak":
        env.update(PEER_BASE_URL=info["http_url"], PEER_REALM=c["realm"], PEER_CLIENT_ID=c["client_id"],
                   PEER_CLIENT_SECRET=c["client_secret"])
    elif provider == "entra":
        o = c["connector_options"]
        env.update(PEER_BASE_URL=info["https_url"], PEER_TENANT_ID=o["tenant_id"], PEER_CLIENT_ID=o["client_id"],
                   PEER_CLIENT_SECRET=c["connector_secrets"]["client_secret"], SSL_CERT_FILE=info["ca_path"],
                   REQUESTS_CA_BUNDLE=info["ca_path"], NODE_EXTRA_CA_CERTS=info["ca_path"])
    elif provider == "onelogin":
        o = c["connector_options"]
        env.update(PEER_BASE_URL=info["http_url"], PEER_CLIENT_ID=o["client_id"],
                   PEER_CLIENT_SECRET=c["connector_secrets"]["client_secret"])
    elif provider == "google":
        env.update(PEER_KEY_FILE=c["options"]["service_account_key"]["file"], PEER_ADMIN_EMAIL=c["admin_email"],
                   PEER_ROOT_URL=info["http_url"] + "/", PEER_TOKEN_URL=c["options"]["token_url"])
    return env


def measure(cmd, env, cwd=None):
    out = subprocess.run([sys.executable, os.path.join(HERE, "measure.py")] + cmd, env=env, cwd=cwd,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--usersync", required=True)
    ap.add_argument("--peers-dir", required=True)
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--providers", default=",".join(PEERS))
    ap.add_argument("--write-docs")
    ap.add_argument("--note", default="")
    ap.add_argument("--append", action="store_true", help="add to the docs block instead of replacing it")
    a = ap.parse_args()
    py = os.path.join(a.peers_dir, "venv", "bin", "python")
    node_dir = os.path.join(a.peers_dir, "node")
    rows = []
    for provider in a.providers.split(","):
        emu, info = start_emulator(a.usersync, provider, a.users, a.groups, tls=provider in TLS)
        try:
            with tempfile.TemporaryDirectory() as d:
                cfg = our_config(info, d)
                ours = measure([a.usersync, "--config", cfg, "sync", "--format", "json", "--no-progress"],
                               dict(os.environ, NO_PROXY="127.0.0.1,localhost"))
                rep = {}
                try:
                    rep = json.loads(subprocess.run([a.usersync, "--config", cfg, "runs", "list", "--format",
                                                     "json"], capture_output=True, text=True).stdout)[0]
                except Exception:  # noqa: BLE001 - only for the note
                    pass
            print(provider, "usersync", ours, file=sys.stderr)
            for name, lang, script in PEERS.get(provider, []):
                # a fresh emulator (same seed: same organisation and credentials) for every
                # client, so no client inherits another's rate-limit window
                stop_emulator(emu)
                emu, info = start_emulator(a.usersync, provider, a.users, a.groups,
                                           tls=provider in TLS or name in TLS_PEERS)
                env = peer_env(provider, info)
                if lang == "py":
                    r = measure([py, os.path.join(HERE, "py", script)], env)
                elif lang == "airbyte":
                    r = measure([os.path.join(a.peers_dir, "airbyte-venv", "bin", "python"),
                                 os.path.join(HERE, "py", script)], env)
                else:
                    # ES modules resolve packages next to the script: run a copy in node_dir
                    shutil.copy(os.path.join(HERE, "node", script), os.path.join(node_dir, script))
                    r = measure(["node", os.path.join(node_dir, script)], env, cwd=node_dir)
                print(provider, name, r, file=sys.stderr)
                rows.append((provider, name, r, ours, rep.get("status", "")))
        finally:
            stop_emulator(emu)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = int(open("/proc/meminfo").readline().split()[1]) / 1024 / 1024
    out = [f"Measured {when} on {os.cpu_count()} CPUs ({cpu}), {mem:.1f} GiB RAM, {platform.system()}.",
           "", f"Command: `crates/usersync-bench/peers/run.sh --users {a.users} --groups {a.groups} --providers {a.providers}`", ""]
    if a.note:
        out += [f"Note: {a.note}", ""]
    out += ["| provider | peer | peer: wall s, CPU s, RSS MiB | peer listed | usersync sync: wall s, CPU s, RSS MiB |"
            " ours/peer wall | CPU | RSS |", "|---|---|---|---|---|---|---|---|"]
    for provider, name, r, ours, _ in rows:
        if ours["code"] != 0:
            err = ours.get("stderr", "").strip().splitlines()[-1:] or ["?"]
            out.append(f"| {provider} | {name} | | | usersync sync failed (exit {ours['code']}): {err[0][:150]} | | | |")
            continue
        if r["code"] != 0:
            err = r.get("stderr", "").strip().splitlines()[-1:] or ["?"]
            out.append(f"| {provider} | {name} | failed (exit {r['code']}): {err[0][:150]} | | | | | |")
            continue
        ratio = lambda k: f"{ours[k] / r[k]:.2f}" if r[k] else "?"
        out.append(f"| {provider} | {name} | {r['wall_s']:.2f}, {r['cpu_s']:.2f}, {r['rss_mib']:.0f} | "
                   f"{r['stdout']} | {ours['wall_s']:.2f}, {ours['cpu_s']:.2f}, {ours['rss_mib']:.0f} | "
                   f"{ratio('wall_s')} | {ratio('cpu_s')} | {ratio('rss_mib')} |")
    text = "\n".join(out)
    print(text)
    if a.write_docs:
        old = open(a.write_docs).read() if os.path.exists(a.write_docs) else "# Benchmarks\n"
        block = f"{BEGIN}\n{text}\n{END}"
        if BEGIN in old and END in old:
            if a.append:
                prev = old[old.index(BEGIN) + len(BEGIN): old.index(END)].strip()
                block = f"{BEGIN}\n{prev}\n\n{text}\n{END}"
            new = old[: old.index(BEGIN)] + block + old[old.index(END) + len(END):]
        else:
            new = old.rstrip() + "\n\n" + block + "\n"
        with open(a.write_docs, "w") as fh:
            fh.write(new)


if __name__ == "__main__":
    main()
