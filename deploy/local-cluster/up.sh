#!/usr/bin/env bash
# A Taxonomist cluster of real processes on this machine, loopback only, on free ports:
# PostgreSQL (metadata and MLflow's backend store), SeaweedFS's S3 server (the bucket of models
# and datasets), an MLflow tracking server, a Dask scheduler and two workers, two API processes
# and the web UI. Each process has a home of its own: nothing is shared but the servers.
#
#   deploy/local-cluster/up.sh [STATE_DIR]     (default /tmp/taxonomist-cluster)
#   source STATE_DIR/env                       (the settings, as the API processes have them)
#   deploy/local-cluster/down.sh [STATE_DIR]   (stops everything; --keep keeps the data)
#
# Needs: PostgreSQL (Debian's postgresql), the venv's taxonomist, mlflow, dask and weed
# (pip install -e '.[dev]'). TAXONOMIST_ADMIN_PASSWORD sets the admin's password (default:
# cluster-admin-pw). The same commands are docker-compose.yml's services.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
STATE="${1:-/tmp/taxonomist-cluster}"
BIN="${TAXONOMIST_BIN:-$(cd "$HERE/../.." && pwd)/.venv/bin}"
PG="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
[ -x "$PG/pg_ctl" ] || { echo "up.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 3; }
for tool in taxonomist mlflow dask weed; do
  [ -x "$BIN/$tool" ] || { echo "up.sh: $BIN/$tool missing: make install (or set TAXONOMIST_BIN)" >&2; exit 3; }
done
if [ -f "$STATE/pids" ]; then
  echo "up.sh: a cluster is up in $STATE already: $HERE/down.sh $STATE first" >&2
  exit 3
fi
started=$(date +%s.%N)
rm -rf "$STATE"
mkdir -p "$STATE/logs"
: > "$STATE/pids"
# A part that does not come up: stop what did (its logs are kept in STATE/logs).
trap 'bash "$HERE/down.sh" "$STATE" --keep >&2' ERR
read -r P_PG P_S3 P_MLFLOW P_DASK P_API1 P_API2 P_UI < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(7)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
# run NAME COMMAND...: in the background, in a session of its own, logged; its pid recorded.
run() {
  local name="$1"; shift
  setsid "$@" >"$STATE/logs/$name.log" 2>&1 < /dev/null &
  echo "$name $!" >> "$STATE/pids"
}
# wait_for NAME COMMAND...: until COMMAND succeeds (60 s at most).
wait_for() {
  local name="$1"; shift
  for _ in $(seq 1 300); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "up.sh: $name did not come up; its log: $STATE/logs/$name.log" >&2
  tail -20 "$STATE/logs/$name.log" >&2 || true
  bash "$HERE/down.sh" "$STATE" --keep >&2
  exit 4
}
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }

# -- PostgreSQL: two databases, the metadata and MLflow's ----------------------------------------
# Its data folder is outside STATE: the postgres user must reach it, and STATE may be private.
PGDATA="$(mktemp -d /tmp/taxonomist-cluster-pg.XXXXXX)"
[ "$(id -u)" = 0 ] && chown postgres "$PGDATA"
echo "postgres pg_ctl:$PGDATA" >> "$STATE/pids"
as_pg "'$PG/initdb' -D '$PGDATA' -A trust -U postgres" > "$STATE/logs/initdb.log"
as_pg "'$PG/pg_ctl' -D '$PGDATA' -l '$PGDATA/server.log' -w -o \"-p $P_PG -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off\" start" > /dev/null
for db in taxonomist mlflow; do
  "$PG/psql" -q -h 127.0.0.1 -p "$P_PG" -U postgres -c "CREATE DATABASE $db" > /dev/null
done
PG_URL="postgresql+psycopg://postgres@127.0.0.1:$P_PG"

# -- S3 (SeaweedFS) and its bucket ----------------------------------------------------------------
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-taxonomist}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-cluster-s3-secret}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_ENDPOINT_URL="http://127.0.0.1:$P_S3"
WEED="$BIN/weed" run s3 bash "$HERE/s3-server.sh" "$STATE/s3" "$P_S3"
wait_for s3 "$BIN/python" -c "import boto3; boto3.client('s3').create_bucket(Bucket='taxonomist')"

# -- MLflow tracking server: PostgreSQL behind it, artifacts in the bucket ------------------------
run mlflow "$BIN/mlflow" server --host 127.0.0.1 --port "$P_MLFLOW" --workers 1 \
  --backend-store-uri "$PG_URL/mlflow" --default-artifact-root s3://taxonomist/mlflow \
  --no-serve-artifacts

# -- Dask: a scheduler and two workers (one job at a time each, no nanny: a killed worker stays
# dead, as a lost machine would) ---------------------------------------------------------------
# allowed-failures 0: a job whose worker dies fails (its service says why) instead of starting
# again from the beginning on another worker.
DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=0 \
  run scheduler "$BIN/dask" scheduler --host 127.0.0.1 --port "$P_DASK" --dashboard-address 127.0.0.1:0
DASK="tcp://127.0.0.1:$P_DASK"
wait_for scheduler "$BIN/python" -c "import socket; socket.create_connection(('127.0.0.1', $P_DASK), 1)"

cat > "$STATE/env" <<ENV
export TAXONOMIST_DATABASE_URL=$PG_URL/taxonomist
export TAXONOMIST_MLFLOW_TRACKING_URI=http://127.0.0.1:$P_MLFLOW
export TAXONOMIST_ARTIFACTS_URI=s3://taxonomist
export TAXONOMIST_DASK_ADDRESS=$DASK
export TAXONOMIST_MAX_CONCURRENT_JOBS=2
export TAXONOMIST_POLICY_INTERVAL=0
export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL
export AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
export AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export AWS_DEFAULT_REGION=$AWS_DEFAULT_REGION
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
ENV
# shellcheck disable=SC1091
source "$STATE/env"
for i in 1 2; do
  TAXONOMIST_HOME="$STATE/worker$i" run "worker$i" "$BIN/dask" worker "$DASK" \
    --name "worker$i" --nthreads 1 --no-nanny --memory-limit 0 \
    --local-directory "$STATE/worker$i/dask"
done

# -- two API processes and the UI -----------------------------------------------------------------
wait_for mlflow "$BIN/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$P_MLFLOW/health', timeout=2)"
export TAXONOMIST_ADMIN_PASSWORD="${TAXONOMIST_ADMIN_PASSWORD:-cluster-admin-pw}"
TAXONOMIST_HOME="$STATE/api1" run api1 "$BIN/taxonomist" serve --host 127.0.0.1 --port "$P_API1"
wait_for api1 "$BIN/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$P_API1/ready', timeout=5)"
TAXONOMIST_HOME="$STATE/api2" run api2 "$BIN/taxonomist" serve --host 127.0.0.1 --port "$P_API2"
TAXONOMIST_HOME="$STATE/ui" run ui "$BIN/taxonomist" ui --api-url "http://127.0.0.1:$P_API1" \
  --host 127.0.0.1 --port "$P_UI"
wait_for api2 "$BIN/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$P_API2/ready', timeout=5)"
wait_for ui "$BIN/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$P_UI/_stcore/health', timeout=2)"
cat >> "$STATE/env" <<ENV
export TAXONOMIST_API_URLS="http://127.0.0.1:$P_API1 http://127.0.0.1:$P_API2"
export TAXONOMIST_UI_URL=http://127.0.0.1:$P_UI
ENV
took=$(python3 -c "print(f'{$(date +%s.%N) - $started:.1f}')")
echo "$took" > "$STATE/up_seconds"
cat <<MSG
Taxonomist cluster up in ${took} s (state in $STATE):
  API        http://127.0.0.1:$P_API1  http://127.0.0.1:$P_API2  (admin / \$TAXONOMIST_ADMIN_PASSWORD)
  UI         http://127.0.0.1:$P_UI
  MLflow     http://127.0.0.1:$P_MLFLOW
  Dask       $DASK (2 workers)
  S3         $AWS_ENDPOINT_URL  bucket taxonomist
  PostgreSQL 127.0.0.1:$P_PG  databases taxonomist, mlflow
Settings: source $STATE/env   Stop: $HERE/down.sh $STATE
MSG
