#!/usr/bin/env bash
# pollerd's NATS client and nats sink beside nats.go (Debian's golang-github-nats-io-go-nats-dev,
# built offline) and nats-py, in one run, against one nats-server -js on a free loopback port.
#   Benchmarks/run-nats-bench.sh [ROUNDS]
# Request/reply: every requester talks to the same nats.go responder (echo of 128 bytes, a queue
# group), at 1 and 16 in flight. Publish: 128-byte messages, fire-and-forget then flushed every
# 1,000. JetStream: 256-byte publishes with a Nats-Msg-Id into a memory stream, acks awaited
# with a window of 256 (nats.go's PublishAsync with PublishAsyncMaxPending(256)), and pollerd's
# nats sink delivering 256-record batches. Each row alternates the clients ROUNDS times.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
swift build -c release --product pollerd-bench >/dev/null
work=$(mktemp -d)
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
nats-server -a 127.0.0.1 -p "$port" -js -sd "$work/js" -l "$work/nats.log" &
server=$!
trap 'kill $responder $server 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$work/gocache" \
  go build -o "$work/natsbench" Benchmarks/nats-bench/natsbench.go
url="nats://127.0.0.1:$port"
for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
"$work/natsbench" respond "$url" bench.req >"$work/responder.out" &
responder=$!
for _ in $(seq 50); do grep -q ready "$work/responder.out" 2>/dev/null && break; sleep 0.1; done
bench=.build/release/pollerd-bench
for r in $(seq "$rounds"); do
  for k in 1 16; do
    n=$((k == 1 ? 20000 : 100000))
    "$work/natsbench" req "$url" bench.req "$n" "$k"
    $bench nats req --url "$url" --subject bench.req --n "$n" --in-flight "$k"
    python3 Benchmarks/nats-bench/natsbench.py req "$url" bench.req $((n / 4)) "$k"
  done
  for mode in pub pubflush; do
    "$work/natsbench" "$mode" "$url" bench.pub 1000000 128
    $bench nats "$mode" --url "$url" --subject bench.pub --n 1000000 --size 128
  done
  $bench nats stream-reset --url "$url"
  "$work/natsbench" jspub "$url" bench.js.a 100000 256
  $bench nats stream-reset --url "$url"
  $bench nats jspub --url "$url" --subject bench.js.a --n 100000 --window 256
  $bench nats stream-reset --url "$url"
  $bench nats sink --url "$url" --subject bench.js.a --n 100000 --window 256
done
