#!/usr/bin/env bash
# cluster.sh: a distributed warrant log on this machine (issue 17): one etcd,
# one S3-compatible server (versitygw over a local directory) and three
# `warrant serve` nodes on loopback, for development and the tests.
#
#   scripts/cluster.sh up            start everything; print three lines to eval:
#                                      WARRANT_SERVERS=URL,URL,URL
#                                      WARRANT_LOG_KEY=@FILE        (the log's verifier key)
#                                      WARRANT_REGISTRAR_KEY=FILE   (a registrar private key the nodes trust)
#   scripts/cluster.sh status        one line a node: NAME URL leader|follower|unknown|dead PID
#   scripts/cluster.sh restart-dead  restart whatever died (nodes, etcd, versitygw), same flags and ports
#   scripts/cluster.sh down          stop everything (state and logs stay for inspection)
#
# Progress and errors go to stderr; stdout carries only the lines above, plain
# assignments: export them as they are set, `set -a; eval "$(scripts/cluster.sh up)"; set +a`.
# Exit status: 0 done, 1 something failed (a process that did not start is
# reported with the tail of its log), 2 usage.
#
# Environment:
#   WARRANT_CLUSTER_DIR       state: pids, ports, keys, data, logs (default: .cluster/ in the repository)
#   WARRANT_CLUSTER_TIMEOUT   seconds to wait for each process to answer (default 60)
#   WARRANT_CLUSTER_PORT_BASE use ports BASE..BASE+5 (etcd client, etcd peer, S3, nodes 1-3) instead of free random ones
#   WARRANT_CLUSTER_SERVE_FLAGS  extra flags for every node (word-split), e.g. "--log-level debug"
#   WARRANT_BIN               the warrant binary (default: built from this repository into the state directory)
#   WARRANT_ETCD, WARRANT_ETCDCTL  etcd and etcdctl (default: from PATH; Debian packages etcd-server, etcd-client)
#   WARRANT_VERSITYGW         versitygw (default .bin/versitygw, built from the module proxy if missing)
#   WARRANT_ETCD_PREFIX       the nodes' etcd key prefix (default /warrant/), where status finds the leader
#
# Each process runs in its own session (setsid) with its pid in DIR/NAME.pid;
# only those pids are ever signalled, after checking that the process's
# command line still names DIR (a pid the system reused is left alone).

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${WARRANT_CLUSTER_DIR:-$ROOT/.cluster}
mkdir -p "$DIR" 2>/dev/null || true
DIR=$(cd "$DIR" 2>/dev/null && pwd) || { echo "error: cannot use WARRANT_CLUSTER_DIR $DIR" >&2; exit 1; }
TIMEOUT=${WARRANT_CLUSTER_TIMEOUT:-60}
PREFIX=${WARRANT_ETCD_PREFIX:-/warrant/}
VERSITYGW_VERSION=v1.8.0
BUCKET=warrant
NODES=(n1 n2 n3)

say() { echo "cluster: $*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

# ---- processes -------------------------------------------------------------

# alive NAME: the process in DIR/NAME.pid runs and is ours.
alive() {
	local pidfile=$DIR/$1.pid pid
	[[ -s $pidfile ]] || return 1
	pid=$(<"$pidfile")
	{ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$DIR/"
}

# running PID: PID is a process that has not exited (a child that exited
# stays a zombie until waited for). Right after launch, before setsid has
# exec'd the program, alive would not yet see DIR in the command line; this
# does.
running() {
	local state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z ]]
}

pid_of() { if alive "$1"; then cat "$DIR/$1.pid"; else echo -; fi; }

# launch NAME ARGS...: start ARGS in the background, its own session, output
# to DIR/NAME.log (appended, so a restart keeps the earlier run's lines).
launch() {
	local name=$1
	shift
	echo "---- $(date -u +%FT%TZ) $*" >>"$DIR/$name.log"
	setsid "$@" >>"$DIR/$name.log" 2>&1 </dev/null &
	echo $! >"$DIR/$name.pid"
}

# stop NAME: SIGTERM, up to 15 s to exit, then SIGKILL.
stop() {
	local name=$1 pid i
	alive "$name" || { rm -f "$DIR/$name.pid"; return 0; }
	pid=$(<"$DIR/$name.pid")
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 150; i++)); do
		alive "$name" || break
		sleep 0.1
	done
	if alive "$name"; then
		say "$name (pid $pid) did not stop on SIGTERM; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.2
	fi
	rm -f "$DIR/$name.pid"
}

# failed NAME WHY: report a process that did not come up, with its log's tail.
failed() {
	echo "error: $1 did not start: $2" >&2
	echo "---- last 25 lines of $DIR/$1.log ----" >&2
	tail -n 25 "$DIR/$1.log" >&2 || true
	echo "----" >&2
}

# http_get HOST PORT PATH: the raw HTTP/1.0 answer (bash's /dev/tcp: no curl needed).
http_get() {
	local host=$1 port=$2 path=$3
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 5 bash -c '
		exec 3<>"/dev/tcp/$0/$1" || exit 1
		printf "GET %s HTTP/1.0\r\nHost: %s:%s\r\n\r\n" "$2" "$0" "$1" >&3
		cat <&3' "$host" "$port" "$path" 2>/dev/null
}

# wait_for NAME PORT PATH PATTERN: until GET PATH on PORT answers with
# PATTERN, the process dies, or TIMEOUT passes.
wait_for() {
	local name=$1 port=$2 path=$3 pattern=$4 deadline=$((SECONDS + TIMEOUT)) pid
	pid=$(<"$DIR/$name.pid")
	while :; do
		if ! running "$pid"; then
			local status=0
			wait "$pid" 2>/dev/null || status=$?
			failed "$name" "it exited (status $status)"
			return 1
		fi
		if http_get 127.0.0.1 "$port" "$path" | grep -q -- "$pattern"; then
			return 0
		fi
		if ((SECONDS >= deadline)); then
			failed "$name" "no answer on 127.0.0.1:$port within ${TIMEOUT}s"
			return 1
		fi
		sleep 0.2
	done
}

# shellcheck disable=SC2016 # expanded by the inner bash
port_in_use() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null; }

# free_ports N: N distinct loopback ports nothing listens on.
free_ports() {
	local n=$1 p picked=() tries=0
	if [[ -n ${WARRANT_CLUSTER_PORT_BASE:-} ]]; then
		for ((p = WARRANT_CLUSTER_PORT_BASE; p < WARRANT_CLUSTER_PORT_BASE + n; p++)); do
			port_in_use "$p" && die "port $p (WARRANT_CLUSTER_PORT_BASE) is in use"
			picked+=("$p")
		done
	else
		while ((${#picked[@]} < n)); do
			((tries++ < 1000)) || die "found no free ports"
			p=$((20000 + RANDOM % 12768)) # below the kernel's ephemeral range (32768-)
			[[ " ${picked[*]} " == *" $p "* ]] && continue
			port_in_use "$p" && continue
			picked+=("$p")
		done
	fi
	echo "${picked[*]}"
}

# ---- binaries --------------------------------------------------------------

need_bin() { # NAME ENVVAR DEFAULT HINT
	local path=${!2:-$3}
	if [[ $path != */* ]]; then
		path=$(command -v "$path" 2>/dev/null) || die "$1 not found: $4 (or set $2)"
	fi
	[[ -x $path ]] || die "$1 not found at $path: $4 (or set $2)"
	echo "$path"
}

versitygw_bin() {
	local bin=${WARRANT_VERSITYGW:-$ROOT/.bin/versitygw}
	if [[ ! -x $bin && -z ${WARRANT_VERSITYGW:-} ]]; then
		say "building versitygw $VERSITYGW_VERSION into $ROOT/.bin/"
		GOBIN=$ROOT/.bin go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" >&2 ||
			die "building versitygw failed"
	fi
	[[ -x $bin ]] || die "versitygw not found at $bin (set WARRANT_VERSITYGW)"
	echo "$bin"
}

warrant_bin() {
	if [[ -n ${WARRANT_BIN:-} ]]; then
		[[ -x $WARRANT_BIN ]] || die "WARRANT_BIN=$WARRANT_BIN is not executable"
		echo "$WARRANT_BIN"
		return
	fi
	say "building warrant into $DIR/bin/"
	mkdir -p "$DIR/bin"
	(cd "$ROOT" && go build -o "$DIR/bin/warrant" ./cmd/warrant) >&2 || die "building warrant failed"
	echo "$DIR/bin/warrant"
}

# ---- the parts -------------------------------------------------------------

start_etcd() {
	launch etcd "$ETCD" --name warrant-cluster --data-dir "$DIR/etcd" \
		--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-cluster "warrant-cluster=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state new \
		--auto-compaction-mode revision --auto-compaction-retention 10000 \
		--logger zap --log-outputs stderr
	wait_for etcd "$ETCD_PORT" /health '"health":"true"'
}

# versitygw keeps object metadata in extended attributes of the objects'
# files (its default), so a put is one link of a whole file and a kill
# mid-put leaves the object whole or absent. Only on a file system without
# them does it use a sidecar directory ($DIR/s3/sidecar marks that choice,
# kept across restarts), which is not crash-atomic: the ETag is stored
# before the data is linked, and a kill between leaves a key that
# conditional puts find taken and reads find empty.
start_versitygw() {
	mkdir -p "$DIR/s3/data"
	local args=(--port "127.0.0.1:$S3_PORT" --access "$S3_ACCESS_KEY" --secret "$S3_SECRET_KEY"
		--region us-east-1 --quiet posix)
	if [[ ! -e $DIR/s3/sidecar ]]; then
		launch versitygw "$VERSITYGW" "${args[@]}" "$DIR/s3/data"
		wait_for versitygw "$S3_PORT" / 'HTTP/' 2>"$DIR/s3/start.err" && { rm -f "$DIR/s3/start.err"; return 0; }
		if ! tail -n 5 "$DIR/versitygw.log" | grep -q 'xattr check failed'; then
			cat "$DIR/s3/start.err" >&2
			return 1
		fi
		say "the file system under $DIR/s3 has no extended attributes: versitygw keeps object metadata in a sidecar directory, which a crash mid-put can leave inconsistent"
		mkdir -p "$DIR/s3/meta"
		touch "$DIR/s3/sidecar"
		rm -f "$DIR/s3/start.err"
	fi
	launch versitygw "$VERSITYGW" "${args[@]}" --sidecar "$DIR/s3/meta" "$DIR/s3/data"
	wait_for versitygw "$S3_PORT" / 'HTTP/'
}

node_url() { echo "http://127.0.0.1:$(node_port "$1")"; }
node_port() {
	local i
	for i in "${!NODES[@]}"; do
		[[ ${NODES[$i]} == "$1" ]] && { echo "${NODE_PORTS[$i]}"; return; }
	done
}

# start_node NAME: run the node with the arguments recorded in DIR/NAME.args
# (one a line), the S3 credentials and versitygw's region in its environment.
start_node() {
	local name=$1 args
	mapfile -t args <"$DIR/$name.args"
	AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY AWS_REGION=us-east-1 \
		launch "$name" "${args[@]}"
	wait_for "$name" "$(node_port "$name")" /checkpoint 'HTTP/'
}

load_state() {
	[[ -f $DIR/cluster.env ]] || die "no cluster in $DIR (run: scripts/cluster.sh up)"
	# shellcheck source=/dev/null
	source "$DIR/cluster.env"
	read -r -a NODE_PORTS <<<"$NODE_PORTS_LIST"
}

# ---- commands --------------------------------------------------------------

cmd_up() {
	if [[ -f $DIR/cluster.env ]]; then
		local n
		for n in etcd versitygw "${NODES[@]}"; do
			alive "$n" && die "a cluster is running in $DIR ($n, pid $(<"$DIR/$n.pid")): scripts/cluster.sh down first"
		done
		say "removing the stopped cluster's state in $DIR"
		rm -rf "${DIR:?}"/{etcd,s3,nodes,keys,bin,cluster.env,s3.credentials} "$DIR"/*.pid "$DIR"/*.log "$DIR"/*.args
	elif [[ -n $(ls -A "$DIR") ]]; then
		die "$DIR is not empty and holds no cluster: refusing to use it"
	fi
	ETCD=$(need_bin etcd WARRANT_ETCD etcd "apt-get install etcd-server")
	ETCDCTL=$(need_bin etcdctl WARRANT_ETCDCTL etcdctl "apt-get install etcd-client")
	VERSITYGW=$(versitygw_bin)
	WARRANT=$(warrant_bin)

	local ports
	read -r -a ports <<<"$(free_ports 6)"
	ETCD_PORT=${ports[0]} ETCD_PEER_PORT=${ports[1]} S3_PORT=${ports[2]}
	NODE_PORTS=("${ports[@]:3:3}")
	S3_ACCESS_KEY=warrant$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
	S3_SECRET_KEY=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
	local origin
	origin=localhost/warrant/cluster-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')

	umask 077
	cat >"$DIR/cluster.env" <<EOF
# written by scripts/cluster.sh up; read by status, restart-dead and down
ETCD='$ETCD'
ETCDCTL='$ETCDCTL'
VERSITYGW='$VERSITYGW'
WARRANT='$WARRANT'
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
S3_PORT=$S3_PORT
NODE_PORTS_LIST='${NODE_PORTS[*]}'
S3_ACCESS_KEY=$S3_ACCESS_KEY
S3_SECRET_KEY=$S3_SECRET_KEY
ORIGIN=$origin
EOF
	printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' "$S3_ACCESS_KEY" "$S3_SECRET_KEY" >"$DIR/s3.credentials"

	# One log key for every node, installed as each data directory's log.key
	# before the node first starts; one registrar key pair the nodes trust.
	mkdir -p "$DIR/keys"
	"$WARRANT" keygen --type log --origin "$origin" --out "$DIR/keys/log" --json >/dev/null || die "warrant keygen --type log failed"
	"$WARRANT" keygen --out "$DIR/keys/registrar" --json >/dev/null || die "warrant keygen failed"

	say "starting etcd on 127.0.0.1:$ETCD_PORT"
	start_etcd || { cmd_down; exit 1; }
	say "starting versitygw on 127.0.0.1:$S3_PORT"
	start_versitygw || { cmd_down; exit 1; }
	"$VERSITYGW" admin --access "$S3_ACCESS_KEY" --secret "$S3_SECRET_KEY" --endpoint-url "http://127.0.0.1:$S3_PORT" \
		create-bucket --owner "$S3_ACCESS_KEY" --bucket "$BUCKET" >>"$DIR/versitygw.log" 2>&1 ||
		{ failed versitygw "creating bucket $BUCKET failed"; cmd_down; exit 1; }

	local name extra=()
	read -r -a extra <<<"${WARRANT_CLUSTER_SERVE_FLAGS:-}"
	for name in "${NODES[@]}"; do
		mkdir -p "$DIR/nodes/$name"
		cp "$DIR/keys/log.key" "$DIR/nodes/$name/log.key"
		printf '%s\n' "$WARRANT" serve \
			--data "$DIR/nodes/$name" \
			--listen "127.0.0.1:$(node_port "$name")" \
			--registrar-key "$DIR/keys/registrar.pub" \
			--object-store "s3://$BUCKET/log" \
			--s3-endpoint "http://127.0.0.1:$S3_PORT" \
			--etcd "http://127.0.0.1:$ETCD_PORT" \
			--node-id "$name" \
			--advertise "$(node_url "$name")" \
			"${extra[@]}" >"$DIR/$name.args"
	done
	umask 022
	for name in "${NODES[@]}"; do
		say "starting $name on $(node_url "$name")"
		start_node "$name" || { cmd_down; exit 1; }
	done

	local urls=()
	for name in "${NODES[@]}"; do urls+=("$(node_url "$name")"); done
	# %q quotes a path only if it needs it, so the lines can be eval'd.
	(IFS=,; echo "WARRANT_SERVERS=${urls[*]}")
	printf 'WARRANT_LOG_KEY=%q\n' "@$DIR/keys/log.vkey"
	printf 'WARRANT_REGISTRAR_KEY=%q\n' "$DIR/keys/registrar.key"
}

# leader: the node_id in the election key created first (the leader
# package's Coordinator.Leader reads the same), or nothing.
leader() {
	local value
	value=$(ETCDCTL_API=3 timeout 10 "$ETCDCTL" --endpoints "http://127.0.0.1:$ETCD_PORT" --command-timeout=5s \
		get "${PREFIX}election/" --prefix --sort-by=CREATE --order=ASCEND --limit=1 --print-value-only 2>/dev/null) || return 1
	sed -n 's/.*"node_id" *: *"\([^"]*\)".*/\1/p' <<<"$value" | head -n 1
}

cmd_status() {
	load_state
	local lead="" known=1 name role
	if alive etcd; then
		lead=$(leader) || known=0
	else
		known=0
	fi
	for name in "${NODES[@]}"; do
		if ! alive "$name"; then
			role=dead
		elif ((!known)); then
			role=unknown
		elif [[ $name == "$lead" ]]; then
			role=leader
		else
			role=follower
		fi
		echo "$name $(node_url "$name") $role $(pid_of "$name")"
	done
}

cmd_restart_dead() {
	load_state
	local name rc=0
	if ! alive etcd; then
		say "restarting etcd"
		start_etcd || rc=1
	fi
	if ! alive versitygw; then
		say "restarting versitygw"
		start_versitygw || rc=1
	fi
	for name in "${NODES[@]}"; do
		if ! alive "$name"; then
			say "restarting $name"
			start_node "$name" || rc=1
		fi
	done
	return $rc
}

cmd_down() {
	[[ -f $DIR/cluster.env ]] || { say "no cluster in $DIR"; return 0; }
	local name
	for name in "${NODES[@]}" versitygw etcd; do
		stop "$name"
	done
	say "stopped; state and logs stay in $DIR"
}

case ${1:-} in
up) cmd_up ;;
status) cmd_status ;;
restart-dead) cmd_restart_dead ;;
down) cmd_down ;;
*)
	echo "usage: scripts/cluster.sh up|status|restart-dead|down" >&2
	exit 2
	;;
esac
