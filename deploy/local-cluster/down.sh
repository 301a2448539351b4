#!/usr/bin/env bash
# Stop what up.sh started (each process's whole session), then PostgreSQL; check that nothing
# is left, and remove the state folder unless --keep.
#   deploy/local-cluster/down.sh [STATE_DIR] [--keep]
set -euo pipefail
STATE=/tmp/taxonomist-cluster
KEEP=0
for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=1 ;;
    *) STATE="$arg" ;;
  esac
done
[ -f "$STATE/pids" ] || { echo "down.sh: no cluster in $STATE"; exit 0; }
PG="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
# alive SID: a process of session SID that is not a zombie (one whose parent has not reaped it
# is gone all the same).
alive() { ps -eo sid=,stat= | awk -v s="$1" '$1 == s && $2 !~ /^Z/ {found = 1} END {exit !found}'; }
sessions=()
PGDATA=""
while read -r name pid; do
  case "$pid" in
    pg_ctl:*) PGDATA="${pid#pg_ctl:}"; continue ;;
  esac
  sessions+=("$pid")
  kill -TERM -- "-$pid" 2>/dev/null || true  # the session: the process and its children
done < "$STATE/pids"
for _ in $(seq 1 100); do  # 20 s for a clean stop, then SIGKILL
  alive=0
  for pid in "${sessions[@]}"; do
    if alive "$pid"; then alive=1; fi
  done
  [ "$alive" = 0 ] && break
  sleep 0.2
done
for pid in "${sessions[@]}"; do
  pkill -KILL -s "$pid" 2>/dev/null || true
done
if [ -n "$PGDATA" ] && [ -x "$PG/pg_ctl" ] && [ -f "$PGDATA/postmaster.pid" ]; then
  as_pg "'$PG/pg_ctl' -D '$PGDATA' -m fast -w stop" >/dev/null || true
fi
left=()
for pid in "${sessions[@]}"; do
  if alive "$pid"; then left+=("$pid"); fi
done
if [ -n "$PGDATA" ] && [ -f "$PGDATA/postmaster.pid" ]; then left+=("postgres"); fi
if [ ${#left[@]} -gt 0 ]; then
  echo "down.sh: processes left in sessions ${left[*]}" >&2
  exit 1
fi
rm -f "$STATE/pids"
[ -n "$PGDATA" ] && rm -rf "$PGDATA"
[ "$KEEP" = 1 ] || rm -rf "$STATE"
echo "Taxonomist cluster in $STATE stopped."
