# The simulated machine with its OS nodes, as processes: the NICs
# (nh-sim-machine run), one simulated kernel per node (nh-sim-kernel) and one
# nichandoverd per node on the sim backend, each peered with every other
# node over unix sockets. Sourced by tools/demo and bench/*.sh; they call
# sim_cluster_stop from their EXIT trap so every process started here is
# ended and waited for.
#
#   SIM_BIN=<dir holding daemon/ cli/ sim/ binaries>
#   SIM_NODE_COUNT=2 SIM_NICS=1 SIM_QUEUES=1 SIM_SPREAD=0   # the machine's shape
#                               # (SIM_SPREAD=1: NIC i starts on node i % nodes)
#   sim_cluster_init            # work dir (short: unix socket paths) + shm file
#   sim_cluster_start [RING]    # machine, every node's kernel, then daemons
#   sim_machine_start [RING]    # only the machine and the kernels
#   sim_nic_bdf I               # NIC I's BDF (bus 0x03 + I)
#   sim_nicctl NODE ARGS...     # nicctl against that node's daemon
#   sim_traffic_start ARGS...   # nh-sim-traffic --machine ... ARGS (report: $SIM_WORK/traffic.json)
#   sim_traffic_stop            # SIGTERM, wait for its report
#   sim_cluster_stop            # everything, reverse order; removes the files
#
# SIM_KERNEL_FLAGS, when set, is added to each nh-sim-kernel's command line
# (bench/: "--hook off"), SIM_DEVICE_FLAGS to nh-sim-machine run's
# (bench/: "--realtime-priority N"). Node i owns APIC IDs 2i and 2i+1; the NICs start
# owned by node0 (or spread). Kernels and daemons use the default vectors
# 0x40-0xdf on each CPU.

SIM_NODE_COUNT=${SIM_NODE_COUNT:-2}
SIM_NICS=${SIM_NICS:-1}
SIM_QUEUES=${SIM_QUEUES:-1}
SIM_SPREAD=${SIM_SPREAD:-0}
SIM_NODES=()
SIM_PIDS=()          # every long-running process, in start order
SIM_DAEMON_PIDS=()   # by node index
SIM_KERNEL_PIDS=()
SIM_TRAFFIC_PID=
SIM_WORK=
SIM_MACHINE=

sim_cluster_init() {
  local i
  SIM_NODES=()
  for ((i = 0; i < SIM_NODE_COUNT; i++)); do SIM_NODES+=("node$i"); done
  SIM_WORK=$(mktemp -d /tmp/nh-XXXXXX)
  SIM_MACHINE=/dev/shm/$(basename "$SIM_WORK")-machine
}

# Waits up to 10 s for a unix socket to appear; fails with the log otherwise.
sim_wait_socket() {
  local socket=$1 log=$2
  for _ in $(seq 200); do
    [ -S "$socket" ] && return 0
    sleep 0.05
  done
  echo "sim_cluster: $socket did not appear; $log says:" >&2
  cat "$log" >&2
  return 1
}

sim_daemon_socket() { echo "$SIM_WORK/$1.sock"; }
sim_peer_socket() { echo "$SIM_WORK/$1.peer.sock"; }
sim_kernel_socket() { echo "$SIM_WORK/$1-kernel.sock"; }

# Peers are always authenticated: one generated secret for the demo's
# cluster, readable by its owner only (the daemon refuses anything else).
sim_write_secret() {
  [ -s "$SIM_WORK/cluster.secret" ] && return 0
  (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$SIM_WORK/cluster.secret")
}

sim_nic_bdf() { printf '0000:%02x:00.0' $((0x03 + $1)); }

sim_write_config() {
  sim_write_secret
  local i=$1 node=${SIM_NODES[$1]} other peers=
  for other in "${SIM_NODES[@]}"; do
    [ "$other" = "$node" ] && continue
    peers+="peers { node_id: \"$other\" address: \"unix:$(sim_peer_socket "$other")\" }"$'\n'
  done
  cat >"$SIM_WORK/$node.conf" <<EOF
node_id: "$node"
listen: "unix:$(sim_daemon_socket "$node")"
peer_listen: "unix:$(sim_peer_socket "$node")"
${peers}cpus { cpu: 0 apic_id: $((2 * i)) }
cpus { cpu: 1 apic_id: $((2 * i + 1)) }
platform { sim { machine_path: "$SIM_MACHINE" kernel_socket: "$(sim_kernel_socket "$node")" } }
state_dir: "$SIM_WORK/$node.state"
peer_auth { secret_file: "$SIM_WORK/cluster.secret" }
EOF
}

sim_start_kernel() {
  local i=$1 node=${SIM_NODES[$1]}
  "$SIM_BIN/sim/nh-sim-kernel" --machine "$SIM_MACHINE" --node "$node" \
    --socket "$(sim_kernel_socket "$node")" ${SIM_KERNEL_FLAGS:-} >>"$SIM_WORK/$node-kernel.log" 2>&1 &
  SIM_PIDS+=($!)
  SIM_KERNEL_PIDS[$i]=$!
  sim_wait_socket "$(sim_kernel_socket "$node")" "$SIM_WORK/$node-kernel.log"
}

sim_start_daemon() {
  local i=$1 node=${SIM_NODES[$1]}
  rm -f "$(sim_daemon_socket "$node")"
  "$SIM_BIN/daemon/nichandoverd" --config "$SIM_WORK/$node.conf" >>"$SIM_WORK/$node.log" 2>&1 &
  SIM_PIDS+=($!)
  SIM_DAEMON_PIDS[$i]=$!
  sim_wait_socket "$(sim_daemon_socket "$node")" "$SIM_WORK/$node.log"
}

# The machine and every kernel, no daemons: the data path alone.
sim_machine_start() {
  local ring=${1:-1024} owner=node0 i
  [ "$SIM_SPREAD" = 1 ] && owner=spread
  "$SIM_BIN/sim/nh-sim-machine" create --path "$SIM_MACHINE" --nodes "$SIM_NODE_COUNT" \
    --cpus 2 --nics "$SIM_NICS" --queues "$SIM_QUEUES" --owner "$owner" \
    --ring-size "$ring" >/dev/null
  "$SIM_BIN/sim/nh-sim-machine" run --path "$SIM_MACHINE" ${SIM_DEVICE_FLAGS:-} >>"$SIM_WORK/device.log" 2>&1 &
  SIM_PIDS+=($!)
  for ((i = 0; i < SIM_NODE_COUNT; i++)); do sim_start_kernel "$i"; done
}

sim_cluster_start() {
  local i
  # Kernels first: a daemon's sim backend connects to its kernel at start.
  sim_machine_start "${1:-1024}"
  for ((i = 0; i < SIM_NODE_COUNT; i++)); do sim_write_config "$i"; done
  for ((i = 0; i < SIM_NODE_COUNT; i++)); do sim_start_daemon "$i"; done
}

sim_nicctl() {
  local node=$1
  shift
  "$SIM_BIN/cli/nicctl" --server "unix:$(sim_daemon_socket "$node")" "$@"
}

sim_traffic_start() {
  rm -f "$SIM_WORK/traffic.json"
  "$SIM_BIN/sim/nh-sim-traffic" --machine "$SIM_MACHINE" --report "$SIM_WORK/traffic.json" \
    "$@" >>"$SIM_WORK/traffic.log" 2>&1 &
  SIM_TRAFFIC_PID=$!
  SIM_PIDS+=($!)
}

# Stops sending; the report is written after packets in flight arrived (<= 2 s).
sim_traffic_stop() {
  [ -n "$SIM_TRAFFIC_PID" ] || return 0
  kill -TERM "$SIM_TRAFFIC_PID" 2>/dev/null || true
  wait "$SIM_TRAFFIC_PID" || true
  SIM_TRAFFIC_PID=
  [ -s "$SIM_WORK/traffic.json" ]
}

# True while the process runs (a child that exited but was not waited for is
# a zombie: kill -0 still succeeds on it).
sim_alive() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# Resident set size of a process in KiB.
sim_rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# CPU time a process used so far (user + system), in clock ticks.
sim_cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

sim_cluster_stop() {
  local i pid
  for ((i = ${#SIM_PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${SIM_PIDS[$i]}" 2>/dev/null || true
  done
  for pid in "${SIM_PIDS[@]}"; do
    # A process that ignores SIGTERM for 5 s is killed.
    for _ in $(seq 100); do sim_alive "$pid" || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  SIM_PIDS=()
  [ -n "$SIM_MACHINE" ] && rm -f "$SIM_MACHINE"
  [ -n "$SIM_WORK" ] && rm -rf "$SIM_WORK"
  return 0
}
