#!/bin/sh
# The PostgreSQL server the store's PostgreSQL tests use (crates/usersync-store, run when
# USERSYNC_TEST_POSTGRES is set, as .ci/run sets it). The machine ships PostgreSQL from Debian's
# packages with trust auth on 127.0.0.1:5432; this installs it when missing and starts it when
# stopped, then checks that it answers. Idempotent. Usage (as root): sh tests/postgres/setup.sh
set -eu
if [ -z "${USERSYNC_TEST_POSTGRES:-}" ]; then
    echo "USERSYNC_TEST_POSTGRES is not set: the PostgreSQL store tests will report themselves skipped"
    exit 0
fi
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends postgresql postgresql-client
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    for v in $(ls /etc/postgresql); do
        pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
    done
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        pg_isready -q -h 127.0.0.1 -p 5432 && break
        sleep 1
    done
fi
if ! psql "$USERSYNC_TEST_POSTGRES" -qAtc 'SELECT 1' >/dev/null; then
    echo "error: USERSYNC_TEST_POSTGRES is set but the server does not answer (see the psql error above);" \
        "start PostgreSQL or unset the variable to skip the PostgreSQL tests" >&2
    exit 1
fi
# A role with a password that only password authentication (scram) may use, for the store's
# wrong-password test (the server's other rules are trust, which never checks a password).
ROLE=usersync_pw_test
if ! psql "$USERSYNC_TEST_POSTGRES" -qAtc "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'" | grep -q 1; then
    psql "$USERSYNC_TEST_POSTGRES" -qc "CREATE ROLE $ROLE LOGIN PASSWORD 'right-pw-for-tests'"
fi
HBA=$(psql "$USERSYNC_TEST_POSTGRES" -qAtc 'SHOW hba_file')
if [ -w "$HBA" ] && ! grep -q "^host all $ROLE " "$HBA"; then
    # before the trust rules: the first matching line decides
    sed -i "1i host all $ROLE 127.0.0.1/32 scram-sha-256" "$HBA"
    psql "$USERSYNC_TEST_POSTGRES" -qAtc 'SELECT pg_reload_conf()' >/dev/null
fi
echo "PostgreSQL answers at USERSYNC_TEST_POSTGRES"
