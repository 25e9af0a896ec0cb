#!/bin/sh
# The LDAP view side by side with OpenLDAP's slapd (docs/benchmarks.md, "LDAP view"): one store of
# USERS users / GROUPS groups written by the ldap_bench example, served by `usersync ldap serve`
# and, exported with `usersync export ldif`, loaded by slapadd into slapd (mdb, equality indexes
# on what the searches use, the memberof overlay). The same client (ldap_bench in target mode)
# measures each server process alone: full paged search of all users (CPU of the server), then
# equality searches at RATE per second from CLIENTS connections for SECS seconds (p50/p99, CPU,
# resident memory).
#
# Needs release builds: cargo build --release -p usersync -p usersync-ldap --examples
# and slapd/ldap-utils (sh tests/ldap/setup.sh). Without a release `usersync` binary the example
# does its part (the LDIF through the same load and ldif::write, the same Server), and says so.
# Usage: sh tests/ldap/bench.sh [USERS] [GROUPS] [CLIENTS] [SECS] [RATE]
set -eu
USERS="${1:-100000}"
GROUPS="${2:-10000}"
CLIENTS="${3:-50}"
SECS="${4:-20}"
RATE="${5:-1000}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
REL="${CARGO_TARGET_DIR:-$ROOT/target}/release"
BENCH="$REL/examples/ldap_bench"
USERSYNC="$REL/usersync"
for b in "$BENCH" /usr/sbin/slapd /usr/sbin/slapadd; do
    [ -x "$b" ] || { echo "missing $b (see the header of $0)" >&2; exit 2; }
done
# a release binary built before `export ldif` existed does not count
if [ -x "$USERSYNC" ] && ! "$USERSYNC" export ldif --help >/dev/null 2>&1; then
    echo "($USERSYNC has no \`export ldif\`: rebuild it; using the example meanwhile)"
    USERSYNC="$USERSYNC.missing"
fi
WORK="$(mktemp -d /tmp/usersync-ldap-bench.XXXXXX)"
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { i=0; until ldapsearch -x -H "ldap://127.0.0.1:$1" -D cn=bench,ou=services,dc=example,dc=com \
    -w bench-password -b dc=example,dc=com -s base 1.1 >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -lt 1200 ] || { echo "server on $1 did not answer" >&2; exit 1; }; sleep 0.1; done; }

echo "== store: $USERS users, $GROUPS groups"
if [ -x "$USERSYNC" ]; then
    USERSYNC_LDAP_BENCH_STORE="$WORK/store.db" "$BENCH" "$USERS" "$GROUPS"
else
    echo "(no $USERSYNC: the example writes the LDIF and serves, through the same library code)"
    USERSYNC_LDAP_BENCH_STORE="$WORK/store.db" USERSYNC_LDAP_BENCH_LDIF="$WORK/export.ldif" \
        /usr/bin/time -f "store + tree load + LDIF: %e s wall, %M KiB max RSS" "$BENCH" "$USERS" "$GROUPS"
fi
PORT="$(free_port)"
cat >"$WORK/usersync.toml" <<EOF
[store]
path = "store.db"
[[connections]]
name = "bench"
connector = "keycloak"
[connections.options]
base_url = "http://127.0.0.1:1"
realm = "r"
client_id = "c"
client_secret = { env = "UNUSED" }
[ldap]
base_dn = "dc=example,dc=com"
listen = "127.0.0.1:$PORT"
posix = true
size_limit = 200000
[[ldap.service_accounts]]
dn = "cn=bench,ou=services,dc=example,dc=com"
password = { env = "BENCH_PW" }
EOF

if [ -x "$USERSYNC" ]; then
    echo "== usersync export ldif"
    /usr/bin/time -f "export: %e s wall, %U s user, %S s sys, %M KiB max RSS" \
        "$USERSYNC" --config "$WORK/usersync.toml" export ldif --out "$WORK/export.ldif"
fi
ls -l "$WORK/export.ldif" | awk '{printf "LDIF: %.1f MiB\n", $5 / 1048576}'

echo "== usersync ldap serve"
start=$(date +%s.%N)
if [ -x "$USERSYNC" ]; then
    BENCH_PW=bench-password "$USERSYNC" --config "$WORK/usersync.toml" ldap serve >"$WORK/serve.log" 2>&1 &
else
    USERSYNC_LDAP_BENCH_STORE="$WORK/store.db" USERSYNC_LDAP_BENCH_SERVE="127.0.0.1:$PORT" "$BENCH" >"$WORK/serve.log" 2>&1 &
fi
UPID=$!
PIDS="$PIDS $UPID"
wait_port "$PORT"
echo "tree loaded and answering after $(echo "$(date +%s.%N) - $start" | bc) s"
USERSYNC_LDAP_BENCH_TARGET="127.0.0.1:$PORT" USERSYNC_LDAP_BENCH_PID="$UPID" USERSYNC_LDAP_BENCH_RATE="$RATE" \
    "$BENCH" "$USERS" "$GROUPS" "$CLIENTS" "$SECS"
kill "$UPID"; wait "$UPID" 2>/dev/null || true

echo "== slapd (slapadd of the export)"
mkdir -p "$WORK/slapd/db"
cat >"$WORK/slapd/usersync.schema" <<'EOF'
attributetype ( 1.3.6.1.4.1.99999.1.1 NAME 'usersyncConnection' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
EOF
cat >"$WORK/slapd/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include $WORK/slapd/usersync.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile $WORK/slapd/slapd.pid
sizelimit unlimited
database mdb
maxsize 8589934592
suffix "dc=example,dc=com"
rootdn "cn=bench,ou=services,dc=example,dc=com"
rootpw bench-password
directory $WORK/slapd/db
index objectClass eq
index uid,cn,mail,entryUUID,member,uniqueMember,memberUid,memberOf eq
overlay memberof
EOF
/usr/bin/time -f "slapadd: %e s wall, %M KiB max RSS" \
    /usr/sbin/slapadd -q -s -f "$WORK/slapd/slapd.conf" -l "$WORK/export.ldif"
SPORT="$(free_port)"
/usr/sbin/slapd -d 0 -f "$WORK/slapd/slapd.conf" -h "ldap://127.0.0.1:$SPORT/" >"$WORK/slapd.log" 2>&1 &
SPID=$!
PIDS="$PIDS $SPID"
wait_port "$SPORT"
USERSYNC_LDAP_BENCH_TARGET="127.0.0.1:$SPORT" USERSYNC_LDAP_BENCH_PID="$SPID" USERSYNC_LDAP_BENCH_RATE="$RATE" \
    "$BENCH" "$USERS" "$GROUPS" "$CLIENTS" "$SECS"
echo "== machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(/usr/sbin/slapd -VV 2>&1 | head -1 | sed 's/^@(#) \$OpenLDAP: //; s/ (.*//')"
