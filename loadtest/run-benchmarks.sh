#!/usr/bin/env bash
# Runs every Herald benchmark of docs/benchmarks.md on this machine, one after the other, and
# writes each scenario's JSON and charts into one folder. The WebSocket scenarios run once per
# WebSocket engine (server.websocket_engine: lean, actix-ws), named <scenario>-<engine>.
#
#   bash loadtest/run-benchmarks.sh [OUT_DIR]        (default: target/bench/<date>)
#
# Starts its own release-built herald nodes (and, for crossnode, its own redis-server on a free
# port) on 127.0.0.1, and stops them when done. Nothing else should load the machine meanwhile:
# the server and the generator share its cores, which is part of what is measured.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

OUT=${1:-target/bench/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
export HERALD_AUTH__HMAC_SECRET=loadtest-secret-0123456789abcdef0123456789
export HERALD_API__KEY=loadtest-key
export HERALD_LOG=warn
LT=target/release/herald-loadtest
COMMON=(--api-key "$HERALD_API__KEY" --secret "$HERALD_AUTH__HMAC_SECRET")
# The generator's subscribers as two single-threaded worker processes (fanout, connect-storm):
# measured against one two-threaded process on this machine, p99 at 2 M deliveries/s 31–33 vs
# 36–40 ms and connect storms 17.4–18.1k vs 15.3–16.2k/s, because the generator's own thread
# hand-offs no longer add to what is measured (docs/benchmarks.md).
SPREAD_FANOUT=(--per-process 1000 --workers 1)
SPREAD_STORM=(--per-process 7500 --workers 1)

cargo build --release -p herald -p herald-loadtest

PIDS=()
REDIS_PID=
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; if ((${#PIDS[@]})); then wait "${PIDS[@]}" 2>/dev/null || true; fi; }
trap 'cleanup; [[ -n $REDIS_PID ]] && kill "$REDIS_PID" 2>/dev/null; wait' EXIT

# start_node PORT [ENV=VALUE...]: a fresh node per scenario, so one run's memory never
# colours the next.
start_node() {
  local port=$1; shift
  env "$@" target/release/herald --config loadtest/herald-loadtest.toml \
    --listen "127.0.0.1:$port" run >"$OUT/herald-$port.log" 2>&1 &
  PIDS+=($!)
  NODE_PID=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "node on $port did not become ready" >&2
  exit 1
}
stop_nodes() { cleanup; PIDS=(); }

run() { # run NAME ARGS...: one scenario, its table on stdout and in NAME.txt
  local name=$1; shift
  echo "== $name: $LT $*" | tee "$OUT/$name.txt"
  "$LT" "$@" --json "$OUT/$name.json" --charts "$OUT/$name-charts" 2>/dev/null | tee -a "$OUT/$name.txt"
}

ENGINES=(${ENGINES:-lean actix-ws})

for engine in "${ENGINES[@]}"; do
  for wd in 0s 20ms; do
    for format in json protobuf; do
      flag=(); [[ $format == protobuf ]] && flag=(--protobuf)
      start_node 18000 HERALD_CLIENT__WRITE_DELAY=$wd HERALD_SERVER__WEBSOCKET_ENGINE=$engine
      run "fanout-$format-wd$wd-$engine" fanout --url http://127.0.0.1:18000 "${COMMON[@]}" "${flag[@]}" \
        "${SPREAD_FANOUT[@]}" --server-pid "$NODE_PID" --subscribers 2000 \
        --rates 100,500,1000,2000 --step-secs 10
      stop_nodes
    done
  done
done

# The fallbacks: the same fan-out with HTTP-streaming and SSE subscribers, and their idle cost.
for transport in http_stream sse; do
  start_node 18000
  run "fanout-$transport" fanout --url http://127.0.0.1:18000 "${COMMON[@]}" \
    "${SPREAD_FANOUT[@]}" --server-pid "$NODE_PID" --subscribers 2000 --transport "$transport" \
    --rates 100,500,1000 --step-secs 10
  stop_nodes
done

for engine in "${ENGINES[@]}"; do
  start_node 18000 HERALD_SERVER__WEBSOCKET_ENGINE=$engine
  run "idle-$engine" idle --url http://127.0.0.1:18000 "${COMMON[@]}" --server-pid "$NODE_PID" \
    --connections 15000 --settle-secs 10
  stop_nodes
done
for transport in http_stream sse; do
  start_node 18000
  run "idle-$transport" idle --url http://127.0.0.1:18000 "${COMMON[@]}" --server-pid "$NODE_PID" \
    --connections 15000 --settle-secs 10 --transport "$transport"
  stop_nodes
done

for engine in "${ENGINES[@]}"; do
  start_node 18000 HERALD_SERVER__WEBSOCKET_ENGINE=$engine
  run "connect-storm-$engine" connect-storm --url http://127.0.0.1:18000 "${COMMON[@]}" \
    "${SPREAD_STORM[@]}" --server-pid "$NODE_PID" --connections 15000
  stop_nodes

  start_node 18000 HERALD_SERVER__WEBSOCKET_ENGINE=$engine
  run "publish-$engine" publish --url http://127.0.0.1:18000 "${COMMON[@]}" --server-pid "$NODE_PID" \
    --batch 1,10,100 --connections 32 --subscribers 10 --step-secs 10
  stop_nodes

  start_node 18000 HERALD_SERVER__WEBSOCKET_ENGINE=$engine
  run "channels-$engine" channels --url http://127.0.0.1:18000 "${COMMON[@]}" --server-pid "$NODE_PID" \
    --clients 5000 --rates 1000,5000,10000,20000 --step-secs 10
  stop_nodes
done

# Two nodes sharing a Redis of our own.
REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --logfile "$OUT/redis.log" &
REDIS_PID=$!
sleep 0.5
# Two nodes on two cores: one worker thread each (server.workers), so the nodes, Redis and the
# generator do not preempt each other's threads.
REDIS_ENV=(HERALD_BROKER__KIND=redis HERALD_BROKER__REDIS_URLS=redis://127.0.0.1:$REDIS_PORT HERALD_SERVER__WORKERS=1)
# 100k deliveries/s in two shapes: 200 subscribers x 500 pub/s, and 1,000 x 100 pub/s.
for engine in "${ENGINES[@]}"; do
  for subs in 200 1000; do
    start_node 18001 "${REDIS_ENV[@]}" HERALD_SERVER__WEBSOCKET_ENGINE=$engine
    A=$NODE_PID
    start_node 18002 "${REDIS_ENV[@]}" HERALD_SERVER__WEBSOCKET_ENGINE=$engine
    B=$NODE_PID
    rates=100,250,500; [[ $subs == 1000 ]] && rates=10,50,100
    run "crossnode-$subs-$engine" crossnode --url http://127.0.0.1:18001 --url http://127.0.0.1:18002 "${COMMON[@]}" \
      --server-pid "$A" --server-pid "$B" --server-pid "$REDIS_PID" \
      --subscribers "$subs" --rates "$rates" --step-secs 10
    stop_nodes
  done
done

echo "results in $OUT"
