#!/usr/bin/env bash
# Peers, side by side (issue 12, item 3). Installs the peer clients from PyPI and npm into a
# throwaway directory (default /tmp/usersync-peers; not used in CI), then runs run.py: each peer
# and `usersync sync` against the same emulator. Extra arguments go to run.py
# (--users N --groups G --providers okta,keycloak,google --write-docs docs/benchmarks.md).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
peers="${PEERS_DIR:-/tmp/usersync-peers}"
usersync="${USERSYNC_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/usersync}"
[ -x "$usersync" ] || { echo "build it first: cargo build --release -p usersync (or set USERSYNC_BIN)" >&2; exit 2; }
mkdir -p "$peers/node"
if [ ! -x "$peers/venv/bin/python" ]; then python3 -m venv "$peers/venv"; fi
"$peers/venv/bin/pip" install -q okta python-keycloak google-api-python-client google-auth msgraph-sdk azure-identity onelogin
# airbyte-source-okta brings airbyte-cdk and its many pinned dependencies: a venv of its own, so
# they neither shift nor are shifted by the other peers' versions
if [ ! -x "$peers/airbyte-venv/bin/python" ]; then python3 -m venv "$peers/airbyte-venv"; fi
"$peers/airbyte-venv/bin/pip" install -q airbyte-source-okta
if [ ! -d "$peers/node/node_modules/@microsoft/microsoft-graph-client" ]; then
  (cd "$peers/node" && { [ -f package.json ] || npm init -y >/dev/null; } &&
   npm install --silent @okta/okta-sdk-nodejs @keycloak/keycloak-admin-client @microsoft/microsoft-graph-client)
fi
exec python3 "$here/run.py" --usersync "$usersync" --peers-dir "$peers" "$@"
