"""List all users, groups and group memberships through Airbyte's Okta source connector
(`airbyte-source-okta`, run with its own venv's interpreter): `source-okta read` with a configured
catalog of the streams `users`, `groups` and `group_members` (its only membership stream), full
refresh, API-token (SSWS) auth, over https with the emulator's CA.

The connector builds every URL as `https://{domain}.okta.com` (manifest.yaml `url_base`), so it cannot
be given a base URL. `domain` is set to `<emulator host:port>#`: the `#` turns `.okta.com` into a URL
fragment, which the CDK's `urljoin` of the stream path drops, so requests go straight to the
emulator's https port (no proxy, no /etc/hosts). The connector runs as a child process (what an
Airbyte worker does); this script counts its RECORD messages per stream from stdout, reading only
each line's prefix, and fails on a non-zero exit or an ERROR trace message."""
import json, os, re, subprocess, sys, tempfile
from urllib.parse import urlparse

STREAMS = ("users", "groups", "group_members")
RECORD = re.compile(rb'^\{"type":"RECORD","record":\{"stream":"([^"]+)"')


def main():
    url = urlparse(os.environ["PEER_HTTPS_URL"])
    if url.scheme != "https" or not url.netloc:
        raise SystemExit(f"PEER_HTTPS_URL must be an https URL, got {os.environ['PEER_HTTPS_URL']!r}")
    config = {
        "domain": url.netloc + "#",
        "credentials": {"auth_type": "api_token", "api_token": os.environ["PEER_TOKEN"]},
        # the default start_date is 7 days back: every user and group was last updated earlier
        "start_date": "1970-01-01T00:00:00Z",
    }
    catalog = {"streams": [{
        "stream": {"name": s, "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
        "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"} for s in STREAMS]}
    exe = os.path.join(os.path.dirname(sys.executable), "source-okta")
    counts = dict.fromkeys(STREAMS, 0)
    errors = []
    with tempfile.TemporaryDirectory() as d:
        cfg, cat = os.path.join(d, "config.json"), os.path.join(d, "catalog.json")
        fd = os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # holds the API token
        with os.fdopen(fd, "w") as fh:
            json.dump(config, fh)
        with open(cat, "w") as fh:
            json.dump(catalog, fh)
        p = subprocess.Popen([exe, "read", "--config", cfg, "--catalog", cat], stdout=subprocess.PIPE)
        for line in p.stdout:
            m = RECORD.match(line)
            if m:
                name = m.group(1).decode()
                counts[name] = counts.get(name, 0) + 1
            elif line.startswith(b'{"type":"TRACE"') and b'"type":"ERROR"' in line:
                errors.append(json.loads(line)["trace"]["error"].get("message", "?"))
        code = p.wait()
    if code != 0 or errors:
        raise SystemExit(f"source-okta read failed (exit {code}): {'; '.join(errors) or 'no error message'}")
    print(json.dumps({"users": counts["users"], "groups": counts["groups"],
                      "memberships": counts["group_members"]}))


if __name__ == "__main__":
    main()
