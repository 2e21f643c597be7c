#!/bin/sh
# Witnessed checkpoints (issue 15), measured on this machine: three local
# litewitness processes, `warrant serve --witness-policy` (two of three,
# async mode), and `warrant bench`:
#
#   1. a log without witnesses, appends flat out: the unwitnessed rate;
#   2. the witnessed log, appends flat out (--mode witness): its append
#      rate, and the time from each append's answer to a witnessed
#      checkpoint covering it;
#   3. the witnessed log at half of the rate of run 2: that time's p99.
#
# Each run starts from a fresh log. Everything runs on loopback, the load
# generator on the same cores as the server and the witnesses.
#
#   WARRANT_LITEWITNESS=/path/to/litewitness bench/witness.sh
#
# Environment: WARRANT_LITEWITNESS (required; witnessctl next to it),
# DURATION (20s), CONCURRENCY (64), WITNESS_RATE (the server's default, 10
# requests a second per witness), PRESIGN (envelopes signed before each
# run; warrant bench's default), WITNESS_DIR (where the witnesses keep
# their databases; default the work directory, on the same disk as the
# log: WITNESS_DIR=/dev/shm stands in for witnesses on machines of their
# own, whose fsyncs do not queue behind the log's), KEEP=1 keeps the work
# directory.
set -eu

: "${WARRANT_LITEWITNESS:?the path of torchwood's litewitness (witnessctl next to it)}"
DURATION=${DURATION:-20s}
CONCURRENCY=${CONCURRENCY:-64}
WITNESS_RATE=${WITNESS_RATE:-10}
CTL=$(dirname "$WARRANT_LITEWITNESS")/witnessctl
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/wbench.XXXXXX)
WDIR=$(mktemp -d "${WITNESS_DIR:-$WORK}/witnesses.XXXXXX")
PIDS=""

cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ "${KEEP:-}" = 1 ]; then echo "kept $WORK $WDIR" >&2; else rm -rf "$WORK" "$WDIR"; fi
}
trap cleanup EXIT INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL: until it answers.
wait_http() {
	tries=0
	until curl -s -o /dev/null "$1"; do
		tries=$((tries + 1))
		[ $tries -lt 600 ] || { echo "no answer from $1" >&2; exit 1; }
		sleep 0.1
	done
}

# serve DIR PORT [ARGS...]: starts warrant serve, sets SERVE_PID.
serve() {
	dir=$1 port=$2
	shift 2
	"$WORK/warrant" serve --data "$dir" --listen "127.0.0.1:$port" --registrar-key "$WORK/registrar.pub" "$@" 2>>"$WORK/serve.log" &
	SERVE_PID=$!
	PIDS="$PIDS $SERVE_PID"
	wait_http "http://127.0.0.1:$port/checkpoint"
}

stop() {
	kill "$1"
	wait "$1" 2>/dev/null || true
}

# bench PORT DIR [ARGS...]: one warrant bench run, its JSON on stdout.
bench() {
	port=$1 dir=$2
	shift 2
	"$WORK/warrant" bench --server "http://127.0.0.1:$port" --log-key "@$dir/log.vkey" \
		--registrar-key "$WORK/registrar.key" --concurrency "$CONCURRENCY" --duration "$DURATION" --json \
		${PRESIGN:+--presign "$PRESIGN"} "$@"
}

field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

echo "building warrant..." >&2
(cd "$ROOT" && go build -o "$WORK/warrant" ./cmd/warrant)
"$WORK/warrant" keygen --out "$WORK/registrar" >/dev/null

echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "each run: $DURATION, $CONCURRENCY clients; witnesses: 3 litewitness, quorum 2, async, --witness-rate $WITNESS_RATE, databases in $WDIR" >&2

# 1. Without witnesses.
port=$(free_port)
serve "$WORK/plain" "$port"
plain=$(bench "$port" "$WORK/plain" --mode append)
stop "$SERVE_PID"
echo "without witnesses, flat out: $plain" >&2

# The witnessed log's key, then three witnesses that know it.
wport=$(free_port)
serve "$WORK/witnessed" "$wport"
stop "$SERVE_PID"
vkey=$(cat "$WORK/witnessed/log.vkey")
origin=${vkey%%+*}
export SSH_AUTH_SOCK="$WORK/agent.sock"
eval "$(ssh-agent -s -a "$SSH_AUTH_SOCK")" >/dev/null
PIDS="$PIDS $SSH_AGENT_PID"
policy="$WORK/witnesses.policy"
: >"$policy"
for i in 1 2 3; do
	ssh-keygen -q -t ed25519 -N '' -f "$WORK/w$i.key"
	ssh-add -q "$WORK/w$i.key"
	fp=$(ssh-keygen -lf "$WORK/w$i.key.pub" | cut -d' ' -f2)
	"$CTL" add-log -db "$WDIR/w$i.db" -origin "$origin" 2>/dev/null
	"$CTL" add-key -db "$WDIR/w$i.db" -origin "$origin" -key "$vkey" 2>/dev/null
	p=$(free_port)
	"$WARRANT_LITEWITNESS" -db "$WDIR/w$i.db" -name "bench.example/w$i" -key "$fp" -ssh-agent "$SSH_AUTH_SOCK" -listen "127.0.0.1:$p" 2>"$WORK/w$i.log" &
	PIDS="$PIDS $!"
	wait_http "http://127.0.0.1:$p/"
	wvkey=$(sed -n 's/.*msg="verifier key" vkey=\([^ ]*\).*/\1/p' "$WORK/w$i.log")
	echo "witness w$i $wvkey http://127.0.0.1:$p" >>"$policy"
done
echo "group two 2 w1 w2 w3" >>"$policy"
echo "quorum two" >>"$policy"

# 2. Witnessed, flat out.
serve "$WORK/witnessed" "$wport" --witness-policy "$policy" --witness-rate "$WITNESS_RATE"
peak=$(bench "$wport" "$WORK/witnessed" --mode witness --witness-policy "$policy")
echo "witnessed, flat out: $peak" >&2

# 3. Witnessed, at half of that rate.
half=$(echo "$peak" | field ops_per_sec | awk '{printf "%d", $1 / 2}')
halfrun=$(bench "$wport" "$WORK/witnessed" --mode witness --witness-policy "$policy" --rate "$half")
stop "$SERVE_PID"
echo "witnessed, at $half/s: $halfrun" >&2

r0=$(echo "$plain" | field ops_per_sec)
r1=$(echo "$peak" | field ops_per_sec)
p99=$(echo "$halfrun" | field witness_p99_ms)
achieved=$(echo "$halfrun" | field ops_per_sec)
python3 - "$r0" "$r1" "$p99" "$half" "$achieved" <<'EOF'
import sys
r0, r1, p99, half, achieved = (float(x) for x in sys.argv[1:])
drop = 100 * (1 - r1 / r0)
print(f"append rate: {r0:.0f}/s without witnesses, {r1:.0f}/s witnessed (async): {drop:+.1f}% lower"
      f" (target at most 10%: {'met' if drop <= 10 else 'NOT met'})")
print(f"p99 append answer to witnessed checkpoint at {half:.0f}/s (achieved {achieved:.0f}/s): {p99:.1f} ms"
      f" (target at most 150 ms: {'met' if p99 <= 150 else 'NOT met'})")
EOF
