#!/usr/bin/env bash
# A PostgreSQL server on 127.0.0.1 for the store tests (Debian 12, as root). Idempotent and fast
# when the server is already installed and running. Prints one line on stdout: the URL the tests
# read from $CASTRIG_TEST_PG; everything else goes to stderr. It exports nothing itself:
#
#     export CASTRIG_TEST_PG="$(bash .ci/postgres.sh)"
#
# Without $CASTRIG_TEST_PG the PostgreSQL tests are skipped with that reason (and fail under CI=true).
set -euo pipefail
say() { echo "postgres.sh: $*" >&2; }

ROLE=castrig
PASSWORD=castrig
DB=castrig_test

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v pg_ctlcluster >/dev/null; then
  say "installing Debian's postgresql"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi

ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$ver main"; then
  say "creating cluster $ver/main"
  pg_createcluster "$ver" main >&2
fi
port=$(pg_lsclusters -h | awk -v v="$ver" '$1 == v && $2 == "main" {print $3}')
status=$(pg_lsclusters -h | awk -v v="$ver" '$1 == v && $2 == "main" {print $4}')
if [ "$status" != "online" ]; then
  say "starting cluster $ver/main on port $port"
  pg_ctlcluster "$ver" main start >&2
fi
for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 0.5
done
pg_isready -q -h 127.0.0.1 -p "$port" || { say "server on 127.0.0.1:$port not ready"; exit 1; }

psql_pg() { runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -qAt "$@"; }
if [ "$(psql_pg -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != "1" ]; then
  say "creating role $ROLE"
  psql_pg -c "CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD'" >&2
fi
if [ "$(psql_pg -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != "1" ]; then
  say "creating database $DB"
  psql_pg -c "CREATE DATABASE $DB OWNER $ROLE" >&2
fi
echo "postgresql://$ROLE:$PASSWORD@127.0.0.1:$port/$DB"
