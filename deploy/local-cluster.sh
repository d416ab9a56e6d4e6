#!/usr/bin/env bash
# Scale-out on one machine, by hand: a three-node NATS JetStream cluster,
# three API processes (each a candidate publisher: one publishes at a time),
# and two projector processes (one leads, the other stands by), all on the
# local MariaDB. `tests/scale_out.rs` is the same layout under load, with kills
# and an audit; this script is for looking at it, or pointing a benchmark at it.
#
#   deploy/local-cluster.sh            # build, start everything, wait for Ctrl-C
#   kill -9 "$(cat target/cluster/api-1.pid)"   # in another terminal: an API process dies
#
# API processes listen on 127.0.0.1:8081-8083; NATS clients on 4301-4303
# (cluster routes 6301-6303). Logs and pids go to target/cluster/.
set -euo pipefail
cd "$(dirname "$0")/.."

DATABASE_URL=${DATABASE_URL:-mysql://root@127.0.0.1:3306/chat_cluster}
NATS_SERVER=${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}
OUT=target/cluster
mkdir -p "$OUT"

cargo build --release --bin chat
CHAT=target/release/chat

pids=()
stop_all() {
    echo "stopping"
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait || true
}
trap stop_all EXIT INT TERM

routes="nats://127.0.0.1:6301,nats://127.0.0.1:6302,nats://127.0.0.1:6303"
for n in 1 2 3; do
    mkdir -p "$OUT/nats-$n"
    "$NATS_SERVER" -a 127.0.0.1 -p "430$n" -js -sd "$OUT/nats-$n" -n "n$n" \
        --cluster_name chat --cluster "nats://127.0.0.1:630$n" --routes "$routes" \
        >"$OUT/nats-$n.log" 2>&1 &
    pids+=($!); echo $! >"$OUT/nats-$n.pid"
done
sleep 2

# Each process lists every node, its own first.
nats_urls() { # first node
    local a=$1 b=$(( $1 % 3 + 1 )) c=$(( ($1 + 1) % 3 + 1 ))
    echo "nats://127.0.0.1:430$a,nats://127.0.0.1:430$b,nats://127.0.0.1:430$c"
}

export DATABASE_URL CHAT_NATS_REPLICAS=3 CHAT_JWT_SECRET=${CHAT_JWT_SECRET:-dev-secret}
"$CHAT" migrate
for n in 1 2 3; do
    NATS_URL=$(nats_urls "$n") CHAT_LISTEN="127.0.0.1:808$n" \
        "$CHAT" serve --role api --role publisher >"$OUT/api-$n.log" 2>&1 &
    pids+=($!); echo $! >"$OUT/api-$n.pid"
done
for n in 1 2; do
    NATS_URL=$(nats_urls "$n") "$CHAT" serve --role projector >"$OUT/projector-$n.log" 2>&1 &
    pids+=($!); echo $! >"$OUT/projector-$n.pid"
done

for n in 1 2 3; do
    for _ in $(seq 1 60); do
        if curl -fs "http://127.0.0.1:808$n/readyz" >/dev/null; then break; fi
        sleep 1
    done
    echo "API $n: http://127.0.0.1:808$n ($(curl -s "http://127.0.0.1:808$n/readyz"))"
done
echo "logs and pids in $OUT; Ctrl-C stops everything"
wait
