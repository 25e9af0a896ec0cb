#!/bin/sh
# Install the real LDAP client tests/it/ldap.rs drives `usersync ldap serve` with: OpenLDAP's
# `ldapsearch` (and ldapwhoami/ldapmodify) from Debian's `ldap-utils`, and `openssl` for the
# raw-socket checks. Idempotent: `apt-get update` and `apt-get install` only when one is missing.
# Usage (from anywhere, as root): sh tests/ldap/setup.sh
set -eu
missing=""
command -v ldapsearch >/dev/null 2>&1 || missing="$missing ldap-utils"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
if [ -z "$missing" ]; then
    echo "ldap-utils and openssl already installed"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
command -v ldapsearch >/dev/null 2>&1 || { echo "ldapsearch did not install (package ldap-utils)" >&2; exit 1; }
echo "installed:$missing"
