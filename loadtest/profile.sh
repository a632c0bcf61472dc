#!/usr/bin/env bash
# Profiles a Herald node under load: a CPU flamegraph with perf (wall-clock sampling, DWARF
# call stacks) and instruction counts per delivery with callgrind. Writes into one folder.
#
#   bash loadtest/profile.sh [OUT_DIR]          (default: target/profile/<date>)
#
#   OUT_DIR/fanout-node.svg       flamegraph of the node at 2 M deliveries/s (2,000 subscribers,
#                                 1,000 pub/s, client.write_delay = 20ms)
#   OUT_DIR/fanout-node.txt       the same profile flat: by shared object, then by symbol
#   OUT_DIR/storm-node.svg/.txt   the node during a 15,000-client connect storm
#   OUT_DIR/callgrind.txt         instructions per delivery (100 subscribers; the difference of
#                                 a 600- and a 200-publication run, so connecting, start-up and
#                                 shutdown cancel out) and the top functions by instructions
#
# Needs perf and valgrind (Debian: linux-perf, valgrind) and inferno (cargo install inferno;
# installed here if missing). perf uses the cpu-clock event, so it works in VMs without
# hardware counters. Nothing else should load the machine meanwhile.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${1:-target/profile/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
for tool in perf valgrind callgrind_annotate; do
  command -v "$tool" >/dev/null || { echo "profile.sh: $tool not found" >&2; exit 1; }
done
command -v inferno-flamegraph >/dev/null || cargo install inferno --locked
export HERALD_AUTH__HMAC_SECRET=loadtest-secret-0123456789abcdef0123456789
export HERALD_API__KEY=loadtest-key
export HERALD_LOG=warn
HERALD=target/release/herald
LT=target/release/herald-loadtest
COMMON=(--url http://127.0.0.1:18000 --api-key "$HERALD_API__KEY" --secret "$HERALD_AUTH__HMAC_SECRET" --quiet)
cargo build --release -p herald -p herald-loadtest

NODE_PID=
stop_node() {
  if [[ -n $NODE_PID ]]; then kill -INT "$NODE_PID" 2>/dev/null || true; wait "$NODE_PID" 2>/dev/null || true; fi
  NODE_PID=
}
trap stop_node EXIT
# start_node [WRAPPER...]: a node on 18000 (with HERALD_* from the environment), run through
# WRAPPER (e.g. valgrind) if given; waits until it answers.
start_node() {
  "$@" "$HERALD" --config loadtest/herald-loadtest.toml --listen 127.0.0.1:18000 run \
    >>"$OUT/node.log" 2>&1 &
  NODE_PID=$!
  for _ in $(seq 1 600); do
    curl -fs http://127.0.0.1:18000/ready >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "profile.sh: node did not become ready (see $OUT/node.log)" >&2
  exit 1
}
# flame NAME SECONDS: samples the running node for SECONDS, writes NAME.svg and NAME.txt.
flame() {
  local name=$1 secs=$2
  perf record -e cpu-clock -F 499 --call-graph dwarf,32768 -p "$NODE_PID" -o "$OUT/$name.data" \
    -- sleep "$secs" >/dev/null 2>&1
  perf script -i "$OUT/$name.data" 2>/dev/null | inferno-collapse-perf >"$OUT/$name.folded"
  inferno-flamegraph --title "$name" --minwidth 0.2 <"$OUT/$name.folded" >"$OUT/$name.svg"
  # (head closes the pipe early: not an error)
  {
    perf report -i "$OUT/$name.data" --stdio --no-children --sort dso -g none 2>/dev/null \
      | grep -v -e '^#' -e '^$' | head -8 || true
    echo
    perf report -i "$OUT/$name.data" --stdio --no-children --sort sym -g none 2>/dev/null \
      | grep -v -e '^#' -e '^$' | head -40 || true
  } >"$OUT/$name.txt"
  rm -f "$OUT/$name.data"
}

echo "== fan-out flamegraph"
HERALD_CLIENT__WRITE_DELAY=20ms start_node
"$LT" fanout "${COMMON[@]}" --server-pid "$NODE_PID" --subscribers 2000 --rates 1000 \
  --step-secs 12 --per-process 1000 --workers 1 >"$OUT/fanout-load.txt" &
LOAD=$!
sleep 5
flame fanout-node 5
wait "$LOAD"
stop_node

echo "== connect-storm flamegraph"
start_node
"$LT" connect-storm "${COMMON[@]}" --server-pid "$NODE_PID" --connections 15000 \
  --per-process 7500 --workers 1 >"$OUT/storm-load.txt" &
LOAD=$!
flame storm-node 1.5
wait "$LOAD"
stop_node

echo "== callgrind: instructions per delivery"
# irs PUBLICATIONS: total instructions of a node that serves 100 subscribers while
# PUBLICATIONS publications go out (100/s), from start to shutdown.
irs() {
  local pubs=$1
  start_node valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.$pubs.out"
  "$LT" fanout "${COMMON[@]}" --subscribers 100 --publishers 1 --batch 1 --rates 100 \
    --step-secs $((pubs / 100)) --settle-secs 60 --ready-timeout 300 \
    --json "$OUT/callgrind-load.$pubs.json" >"$OUT/callgrind-load.$pubs.txt"
  stop_node
  awk '/^(summary|totals):/ { print $2; exit }' "$OUT/callgrind.$pubs.out"
}
ir_small=$(irs 200)
ir_large=$(irs 600)
delivered() {
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["steps"][0]["delivered"])' \
    "$OUT/callgrind-load.$1.json"
}
d_small=$(delivered 200)
d_large=$(delivered 600)
{
  echo "instructions: $ir_small ($d_small deliveries), $ir_large ($d_large deliveries)"
  awk -v a="$ir_small" -v b="$ir_large" -v da="$d_small" -v db="$d_large" 'BEGIN {
    printf "per delivery (difference of the two runs): %.0f instructions\n", (b - a) / ((db - da) > 0 ? (db - da) : 1) }'
  echo
  callgrind_annotate --threshold=80 "$OUT/callgrind.600.out" 2>/dev/null \
    | sed -n '/PROGRAM TOTALS/,+40p' || true
} >"$OUT/callgrind.txt"
head -3 "$OUT/callgrind.txt"
echo "profile in $OUT"
