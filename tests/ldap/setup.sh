#!/bin/sh
# Install the real LDAP components tests/it/ldap.rs drives `usersync ldap serve` with:
# - OpenLDAP's `ldapsearch` (and ldapwhoami/ldapadd) from Debian's `ldap-utils`, `openssl`;
# - OpenLDAP's server `slapd`/`slapadd` (Debian `slapd`), which loads `usersync export ldif`;
# - Python `ldap3` (PyPI, pinned) in a virtualenv in the cargo target directory
#   (target/ldap3-venv, or $CARGO_TARGET_DIR/ldap3-venv), for tests/ldap/ldap3_client.py.
# Idempotent: `apt-get update`/`install` only when a tool is missing; a venv that already has the
# pinned ldap3 is left as is.
# Usage (from anywhere, as root): sh tests/ldap/setup.sh
set -eu
LDAP3_VERSION="2.9.1"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${CARGO_TARGET_DIR:-$ROOT/target}/ldap3-venv"
missing=""
command -v ldapsearch >/dev/null 2>&1 || missing="$missing ldap-utils"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
[ -x /usr/sbin/slapd ] || missing="$missing slapd"
if [ -z "$missing" ]; then
    echo "ldap-utils, openssl and slapd already installed"
else
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # slapd's package starts a system slapd unless told not to: the tests start their own
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        cleanup_policy=1
    fi
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
    [ "${cleanup_policy:-0}" = 1 ] && rm -f /usr/sbin/policy-rc.d
    command -v ldapsearch >/dev/null 2>&1 || { echo "ldapsearch did not install (package ldap-utils)" >&2; exit 1; }
    [ -x /usr/sbin/slapd ] || { echo "slapd did not install (package slapd)" >&2; exit 1; }
    echo "installed:$missing"
fi
if [ -x "$VENV/bin/python" ] && "$VENV/bin/pip" show ldap3 2>/dev/null | grep -qx "Version: $LDAP3_VERSION"; then
    echo "ldap3 $LDAP3_VERSION already installed in $VENV"
    exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "ldap3==$LDAP3_VERSION"
echo "ldap3 $LDAP3_VERSION installed: $VENV/bin/python"
