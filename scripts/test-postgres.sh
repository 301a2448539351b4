#!/usr/bin/env bash
# Start (once) a throwaway PostgreSQL on a loopback port for the test suite and print its
# SQLAlchemy URL. Prints nothing when PostgreSQL is not installed (the PostgreSQL store tests
# then skip and say why; .ci/run installs it so CI always runs them).
set -euo pipefail
PORT="${TAXONOMIST_TEST_PG_PORT:-54329}"
DATA="${TAXONOMIST_TEST_PG_DATA:-/tmp/taxonomist-test-pg}"
URL="postgresql+psycopg://postgres@127.0.0.1:${PORT}/postgres"
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
if [ -z "$BIN" ] || [ ! -x "$BIN/pg_ctl" ]; then
  exit 0
fi
as_pg() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}
if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
  echo "$URL"
  exit 0
fi
if [ ! -f "$DATA/PG_VERSION" ]; then
  rm -rf "$DATA"
  mkdir -p "$DATA"
  [ "$(id -u)" = 0 ] && chown postgres "$DATA"
  as_pg "'$BIN/initdb' -D '$DATA' -A trust -U postgres" >/dev/null
fi
as_pg "'$BIN/pg_ctl' -D '$DATA' -l '$DATA/server.log' -w -o \"-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off\" start" >/dev/null
echo "$URL"
