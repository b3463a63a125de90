#!/usr/bin/env bash
# CPU per operation: durable holds through the service against pgbench's
# one-row INSERT into a table shaped like the holds, on the same PostgreSQL
# (127.0.0.1:5432, user postgres). Samples /proc/<pid>/stat of pgbench, the
# service, the load generator and their PostgreSQL backends over the steady
# part of each run and prints the CPU each spends per operation (README,
# Performance). usage: benches/cpu_per_operation.sh target/release/promo-engine
set -u
BIN=$1
HZ=$(getconf CLK_TCK)
PORT=${PORT:-28919}
ticks() { local sum=0 p; for p in "$@"; do [ -r /proc/$p/stat ] && sum=$((sum + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $sum; }
bg_pids() { psql -h 127.0.0.1 -U postgres -Atc "SELECT pid FROM pg_stat_activity WHERE backend_type IN ('walwriter','checkpointer','background writer')" | tr '\n' ' '; }
db_pids() { psql -h 127.0.0.1 -U postgres -Atc "SELECT pid FROM pg_stat_activity WHERE datname = '$1' AND pid <> pg_backend_pid()" | tr '\n' ' '; }


# pgbench's table and script: a one-row INSERT into a holds-shaped table.
pgbench_setup() {
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS pgb" >/dev/null 2>&1
    psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE pgb" >/dev/null
    psql -h 127.0.0.1 -U postgres -d pgb -qc "CREATE TABLE holds (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, promo_id bigint NOT NULL, user_id bigint NOT NULL, status text NOT NULL DEFAULT 'held', expires_at timestamptz NOT NULL, created_at timestamptz NOT NULL DEFAULT now())" >/dev/null
    printf '%s\n' '\set user random(1, 1000000)' \
        "INSERT INTO holds (promo_id, user_id, expires_at) VALUES (1, :user, now() + interval '60 seconds');" > /tmp/pgb.sql
    pgbench -h 127.0.0.1 -U postgres -n -c16 -j2 -T3 -f /tmp/pgb.sql pgb >/dev/null 2>&1   # warm-up
}

# --- pgbench -c16 -j2 -T10, one-row INSERT
pgbench_setup
psql -h 127.0.0.1 -U postgres -d pgb -qc "TRUNCATE holds" >/dev/null
BG=$(bg_pids); BG0=$(ticks $BG)
pgbench -h 127.0.0.1 -U postgres -n -c16 -j2 -T10 -f /tmp/pgb.sql pgb > /tmp/pgb.out 2>&1 &
PGB=$!
sleep 0.7; P=$(db_pids pgb); P0=$(ticks $P); C0=$(ticks $PGB); T0=$(date +%s.%N)
N0=$(psql -h 127.0.0.1 -U postgres -d pgb -Atc "SELECT count(*) FROM holds")
sleep 8.5
P1=$(ticks $P); C1=$(ticks $PGB); T1=$(date +%s.%N); BG1=$(ticks $BG)
N1=$(psql -h 127.0.0.1 -U postgres -d pgb -Atc "SELECT count(*) FROM holds")
wait $PGB
OPS=$((N1 - N0))
echo "pgbench: $(grep -E '^tps' /tmp/pgb.out)"
awk -v ops=$OPS -v hz=$HZ -v p=$((P1-P0)) -v c=$((C1-C0)) -v bg=$((BG1-BG0)) -v t0=$T0 -v t1=$T1 'BEGIN{
  printf "  %d inserts in %.1f s = %.0f/s; CPU per insert: backends %.0f us, pgbench %.0f us, PG background %.0f us\n", ops, t1-t0, ops/(t1-t0), p/hz*1e6/ops, c/hz*1e6/ops, bg/hz*1e6/ops }'

# --- reservations through the service
DB=promo_budget_$$
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $DB" >/dev/null
ulimit -n 20000
DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB BIND=127.0.0.1:$PORT ADMIN_PASSWORD=admin-pass-123 RUST_LOG=warn DATA_DIR=/tmp/budget-$$ $BIN serve > /tmp/budget-serve.log 2>&1 &
SRV=$!
for i in $(seq 1 600); do curl -sf http://127.0.0.1:$PORT/readyz >/dev/null && break; sleep 0.5; done
# the load generator sets up its shoppers first; sample only while it reserves
ADMIN_PASSWORD=admin-pass-123 DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB $BIN loadgen reserve --url http://127.0.0.1:$PORT --shoppers 10000 --promos 5 --concurrency 64 > /tmp/budget-loadgen.out 2>&1 &
LG=$!
until [ "$(psql -h 127.0.0.1 -U postgres -d $DB -Atc "SELECT count(*) FROM promo_reservations")" -gt 500 ] 2>/dev/null; do sleep 0.1; done
P=$(db_pids $DB); BG=$(bg_pids)
S0=$(ticks $SRV); L0=$(ticks $LG); P0=$(ticks $P); BG0=$(ticks $BG); T0=$(date +%s.%N)
N0=$(psql -h 127.0.0.1 -U postgres -d $DB -Atc "SELECT count(*) FROM promo_reservations")
sleep 2
S1=$(ticks $SRV); L1=$(ticks $LG); P1=$(ticks $P); BG1=$(ticks $BG); T1=$(date +%s.%N)
N1=$(psql -h 127.0.0.1 -U postgres -d $DB -Atc "SELECT count(*) FROM promo_reservations")
wait $LG
echo "service:"; grep -E "holds|reserv" /tmp/budget-loadgen.out | head -5
OPS=$((N1 - N0))
awk -v ops=$OPS -v hz=$HZ -v s=$((S1-S0)) -v l=$((L1-L0)) -v p=$((P1-P0)) -v bg=$((BG1-BG0)) -v t0=$T0 -v t1=$T1 'BEGIN{
  printf "  %d holds in %.1f s = %.0f/s; CPU per hold: service %.0f us, loadgen %.0f us, backends %.0f us, PG background %.0f us\n", ops, t1-t0, ops/(t1-t0), s/hz*1e6/ops, l/hz*1e6/ops, p/hz*1e6/ops, bg/hz*1e6/ops }'
kill $SRV; wait $SRV 2>/dev/null
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE $DB" >/dev/null
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE pgb" >/dev/null
rm -rf /tmp/budget-$$
