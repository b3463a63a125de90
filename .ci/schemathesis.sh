#!/usr/bin/env bash
# Fuzzes the running service from its own OpenAPI document with schemathesis:
# starts `promo-engine serve` on a fresh database with an admin, takes an
# admin token, and fails on any 5xx answer or any answer that does not match
# its documented schema. Needs PostgreSQL on 127.0.0.1:5432 (see .ci/run) and
# a built debug binary (`cargo test` builds it).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
PORT=${SCHEMATHESIS_PORT:-18089}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-25}
DATABASE="promo_schemathesis_$$"
ADMIN_PASSWORD="schemathesis-admin-1"
WORK=$(mktemp -d)
BINARY="${CARGO_TARGET_DIR:-target}/debug/promo-engine"

server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)" \
        >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# curl talks to the service, psql drops the database afterwards.
missing=""
command -v curl >/dev/null 2>&1 || missing="$missing curl"
command -v psql >/dev/null 2>&1 || missing="$missing postgresql-client"
if [ -n "$missing" ]; then
    echo "schemathesis: installing$missing from Debian's packages"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

# SCHEMATHESIS names an already installed schemathesis (of this version) to reuse.
schemathesis=${SCHEMATHESIS:-}
if [ -z "$schemathesis" ]; then
    if ! python3 -m venv "$WORK/venv" 2>/dev/null; then
        echo "schemathesis: installing python3-venv from Debian's packages"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip >/dev/null
        python3 -m venv "$WORK/venv"
    fi
    "$WORK/venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
    schemathesis="$WORK/venv/bin/schemathesis"
fi

# A no-op when the tests just built it; never fuzz a stale binary.
cargo build --locked
DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DATABASE" \
    BIND="127.0.0.1:$PORT" \
    ADMIN_USERNAME=admin ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    DATA_DIR="$WORK/data" RUST_LOG=warn \
    "$BINARY" serve >"$WORK/server.log" 2>&1 &
server_pid=$!

base="http://127.0.0.1:$PORT"
for _ in $(seq 1 120); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
    sleep 0.5
done
curl -fsS "$base/readyz" >/dev/null || { echo "schemathesis: the service did not start"; cat "$WORK/server.log"; exit 1; }

token=$(curl -fsS -H 'content-type: application/json' \
    -d "{\"username\": \"admin\", \"password\": \"$ADMIN_PASSWORD\"}" \
    "$base/api/auth/token/" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

status=0
NO_COLOR=1 "$schemathesis" run "$base/api/schema/" \
    --url "$base" \
    --header "Authorization: Bearer $token" \
    --checks "${SCHEMATHESIS_CHECKS:-not_a_server_error,response_schema_conformance}" \
    --max-examples "$MAX_EXAMPLES" \
    --workers 1 \
    --request-timeout 15 || status=$?

if grep -q 'panicked' "$WORK/server.log"; then
    echo "schemathesis: the service panicked"
    grep -A5 'panicked' "$WORK/server.log"
    status=1
fi
exit "$status"
