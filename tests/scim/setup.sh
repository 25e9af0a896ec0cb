#!/bin/sh
# Install the real SCIM 2.0 test server (PyPI `scim2-server`, pinned) into a virtualenv in the
# cargo target directory (target/scim2-venv, or $CARGO_TARGET_DIR/scim2-venv), for
# tests/it/scim_target.rs. Idempotent: a venv that already has the pinned version is left as is.
# Usage (from anywhere): sh tests/scim/setup.sh
set -eu
VERSION="0.8.3"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${CARGO_TARGET_DIR:-$ROOT/target}/scim2-venv"
if [ -x "$VENV/bin/scim2-server" ] && "$VENV/bin/pip" show scim2-server 2>/dev/null | grep -qx "Version: $VERSION"; then
    echo "scim2-server $VERSION already installed in $VENV"
    exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "scim2-server==$VERSION"
echo "scim2-server $VERSION installed: $VENV/bin/scim2-server"
