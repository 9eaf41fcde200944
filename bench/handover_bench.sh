#!/bin/bash
# Benchmarks on the simulated machine (docs/performance.md has the results).
# Run by hand, optimized, never as a test:
#
#   bazel run -c opt //bench:handover_bench -- compare [--count 200] [--pps 100000]
#       [--ring 1024] [--interval 0.2] [--load N] [--realtime-priority N] [--tick-us N]
#       [--keep DIR]
#     The kernel and the daemon commit path side by side in one run, on the
#     same machine and load: --count handovers per path, node0 <-> node1,
#     two kernel-path handovers (there and back), then two daemon-path ones,
#     and so on, while traffic runs at --pps packets/s each way. Per path and
#     direction: blackout p50/p90/p99/max as the traffic saw it, the phases
#     inside it from the machine's timeline, the ratio daemon/kernel;
#     lost/duplicated/reordered; the load average during the run.
#
#   bazel run -c opt //bench:handover_bench -- handovers [--count 50] [--pps 100000]
#       [--ring 1024] [--interval 0.2] [--commit-path auto|kernel|daemon]
#       [--load N] [--realtime-priority N] [--tick-us N] [--keep DIR]
#     N handovers node0 <-> node1 on one commit path (auto: nicctl's
#     default), the same numbers (e.g. --count 1000 --commit-path kernel:
#     the tail), and the daemons' RSS.
#
#   --tick-us N: nh-sim-traffic's generator tick: it sends in bursts that
#     often, so the blackout the sink sees includes up to one tick. Default
#     50 µs for compare and handovers (resolves a 0.1-0.3 ms blackout; at
#     100 kpps each way it keeps about one more CPU busy than 200 µs, which
#     the daemons then lack), 200 µs (nh-sim-traffic's own) for the others.
#   --load N: N compile loops (g++ -O2 of the project's own sources, from
#     the workspace `bazel run` was started in) beside the run, started
#     before the cluster and stopped after it: the machine loaded as by a
#     parallel build. --keep DIR: copy the raw results (every handover's
#     nicctl and machine documents, the traffic report) to DIR.
#   --realtime-priority N (root): the data path's threads (the device, each
#     kernel's CPU and commit worker, the generator and sink) under
#     SCHED_FIFO at N, the daemons and control threads not: each node's
#     kernel on CPUs of its own, as on the target machines (sim/realtime.h).
#
#   bazel run -c opt //bench:handover_bench -- throughput [--pps 400000]
#       [--seconds 5] [--repeat 3]
#     The data path without handovers, alternately with the hook and without
#     it (nh-sim-kernel --hook off): delivered rate and the kernel's CPU time
#     per packet, and the hook's cost.
#
#   bazel run -c opt //bench:handover_bench -- max-rate [--hook on|off] [--seconds 3]
#     The highest rate (each way) the machine sustains without handovers and
#     without loss: raised by 25 % per step from 100000 until a run loses.
#
# Everything it starts is stopped when it exits.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
runfiles=${RUNFILES_DIR:-$0.runfiles}/nichandover
[ -d "$runfiles" ] || runfiles=$here/..
SIM_BIN=$runfiles
SUMMARIZE="python3 $runfiles/bench/summarize.py"
source "$runfiles/tools/lib/sim_cluster.sh"
NIC=0000:03:00.0

usage() { sed -n '2,48p' "$runfiles/bench/handover_bench.sh" | sed 's/^# \{0,1\}//' >&2; exit 2; }

mode=${1:-}
[ -n "$mode" ] || usage
shift
count= pps= ring=1024 interval=0.2 seconds= repeat=3 hook=on commit_path=auto load=0 keep= realtime=0 tick_us=
while [ $# -gt 0 ]; do
  case $1 in
    --count) count=$2 ;;
    --pps) pps=$2 ;;
    --ring) ring=$2 ;;
    --interval) interval=$2 ;;
    --seconds) seconds=$2 ;;
    --repeat) repeat=$2 ;;
    --hook) hook=$2 ;;
    --commit-path) commit_path=$2 ;;
    --load) load=$2 ;;
    --keep) keep=$2 ;;
    --realtime-priority) realtime=$2 ;;
    --tick-us) tick_us=$2 ;;
    *) usage ;;
  esac
  shift 2
done

trap 'cleanup' EXIT
trap 'exit 130' INT TERM

machine_line() {
  echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
    "kernel $(uname -r)"
}

LOAD_PIDS=()
SAMPLER_PID=

# N compile loops of the project's sources (what a parallel build does to
# the machine: CPU, memory bandwidth, page cache), until stop_load.
start_load() {
  local n=$1 i
  [ "$n" -gt 0 ] || return 0
  local src=${BUILD_WORKSPACE_DIRECTORY:-}
  if [ -z "$src" ] || [ ! -d "$src/sim" ]; then
    echo "bench: --load needs the sources: run it with bazel run" >&2
    exit 2
  fi
  # Sources that compile against the system's headers alone (no generated
  # protos): the simulated machine, the PCI code, common/.
  local files
  files=$(cd "$src" && ls sim/device.cc sim/kernel.cc sim/machine.cc sim/traffic.cc pci/*.cc common/*.cc 2>/dev/null |
    grep -v _test.cc | while read -r f; do
      g++ -std=c++17 -fsyntax-only -I"$src" "$src/$f" 2>/dev/null && echo "$f"
    done)
  [ -n "$files" ] || { echo "bench: --load: nothing compiles standalone" >&2; exit 2; }
  echo "load: $n compile loops over $(echo "$files" | wc -w) sources (g++ -O2)"
  for ((i = 0; i < n; i++)); do
    (cd "$src" && while :; do
      for f in $files; do nice -n 0 g++ -std=c++17 -O2 -I"$src" -c "$f" -o /dev/null 2>/dev/null; done
    done) &
    LOAD_PIDS+=($!)
  done
}

stop_load() {
  local pid
  for pid in "${LOAD_PIDS[@]}"; do
    pkill -TERM -P "$pid" 2>/dev/null || true  # its g++ first (the loop's own children)
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  LOAD_PIDS=()
}

# "unix_time load1 busy_cpus" once a second into $1 until stop_sampler.
start_sampler() {
  local out=$1
  (
    read -r _ u n s i w q sq st _ </proc/stat
    prev_busy=$((u + n + s + q + sq + st)) prev_all=$((u + n + s + i + w + q + sq + st))
    while sleep 1; do
      read -r _ u n s i w q sq st _ </proc/stat
      busy=$((u + n + s + q + sq + st)) all=$((u + n + s + i + w + q + sq + st))
      read -r load1 _ </proc/loadavg
      awk -v t="$(date +%s)" -v l="$load1" -v b=$((busy - prev_busy)) -v a=$((all - prev_all)) \
        -v c="$(nproc)" 'BEGIN { printf "%s %s %.2f\n", t, l, a ? c * b / a : 0 }'
      prev_busy=$busy prev_all=$all
    done
  ) >>"$out" &
  SAMPLER_PID=$!
}

stop_sampler() {
  [ -n "$SAMPLER_PID" ] || return 0
  kill -TERM "$SAMPLER_PID" 2>/dev/null || true
  wait "$SAMPLER_PID" 2>/dev/null || true
  SAMPLER_PID=
}

cleanup() {
  stop_sampler
  stop_load
  sim_cluster_stop
}

# handover_runs COUNT_PER_PATH PATH...: hands the NIC node0 <-> node1, two
# handovers (there and back) per path in turn, so each path moves the NIC
# both ways under the same conditions. Writes $SIM_WORK/runs/ (see
# summarize.py paths).
handover_runs() {
  local per_path=$1
  shift
  local paths=("$@") owner=0 k=0 round path
  local runs=$SIM_WORK/runs
  mkdir -p "$runs"
  for ((round = 0; k < per_path * ${#paths[@]}; round++)); do
    path=${paths[$((round % ${#paths[@]}))]}
    for _ in 1 2; do
      [ "$k" -lt $((per_path * ${#paths[@]})) ] || break
      k=$((k + 1))
      echo "$path" >"$runs/$k.path"
      local args=()
      [ "$path" = auto ] || args=(--commit-path "$path")
      if sim_nicctl "node$owner" --json handover "$NIC" --to "node$((1 - owner))" "${args[@]}" \
        >"$runs/$k.handover.json"; then
        owner=$((1 - owner))
      else
        # Counted as failed by the summary; the next one starts from the
        # record's owner (a rollback leaves the NIC where it was).
        echo "bench: handover $k ($path path, node$owner -> node$((1 - owner))) failed:" \
          "$(sed -n 's/.*"message": "\(.*\)",*$/\1/p' "$runs/$k.handover.json" | head -1)" >&2
        owner=$("$SIM_BIN/sim/nh-sim-machine" show --path "$SIM_MACHINE" --json |
          python3 -c 'import json,sys; print(json.load(sys.stdin)["nics"][0]["record"]["owner"][4:])')
      fi
      # The target's first RX poll may come after nicctl returned: read the
      # timeline only when the NIC has settled, just before the next one.
      sleep "$interval"
      "$SIM_BIN/sim/nh-sim-machine" show --path "$SIM_MACHINE" --json >"$runs/$k.machine.json" ||
        { echo "bench: nh-sim-machine show --json failed: no timeline for handover $k" >&2
          : >"$runs/$k.machine.json"; }
    done
  done
}

# Which threads of the cluster run under SCHED_FIFO (none without
# --realtime-priority): proof that the option reached the data path only.
realtime_line() {
  local pid name fifo=()
  for pid in "${SIM_PIDS[@]}"; do
    name=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
    fifo+=("$name:$(ps -L -o cls= -p "$pid" | grep -c FF)/$(ps -L -o cls= -p "$pid" | wc -l)")
  done
  echo "SCHED_FIFO threads/all (priority ${realtime}): ${fifo[*]}"
}

bench_paths() {
  local per_path=$1
  shift
  pps=${pps:-100000}
  tick_us=${tick_us:-50}
  machine_line
  echo "handovers: $per_path per path ($*) at $pps packets/s each way, ring $ring," \
    "${interval}s apart; traffic tick ${tick_us} µs"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  start_load "$load"
  local traffic_flags=()
  if [ "$realtime" != 0 ]; then
    SIM_KERNEL_FLAGS="--realtime-priority $realtime"
    SIM_DEVICE_FLAGS="--realtime-priority $realtime"
    traffic_flags=(--realtime-priority "$realtime")
  fi
  traffic_flags+=(--tick-us "$tick_us")
  sim_cluster_init
  sim_cluster_start "$ring"
  local rss_before rss_after status=0
  rss_before="$(sim_rss_kib "${SIM_DAEMON_PIDS[0]}"), $(sim_rss_kib "${SIM_DAEMON_PIDS[1]}")"
  start_sampler "$SIM_WORK/load.tsv"
  sim_traffic_start --pps "$pps" "${traffic_flags[@]}"
  sleep 0.5
  realtime_line
  handover_runs "$per_path" "$@"
  sleep 0.5
  rss_after="$(sim_rss_kib "${SIM_DAEMON_PIDS[0]}"), $(sim_rss_kib "${SIM_DAEMON_PIDS[1]}")"
  sim_traffic_stop
  stop_sampler
  stop_load
  $SUMMARIZE paths "$SIM_WORK/runs" "$SIM_WORK/traffic.json" "$SIM_WORK/load.tsv" || status=$?
  echo "daemon RSS (node0, node1): before $rss_before KiB, after $rss_after KiB"
  if [ -n "$keep" ]; then
    mkdir -p "$keep"
    cp -r "$SIM_WORK/runs" "$SIM_WORK/traffic.json" "$SIM_WORK/load.tsv" "$keep/"
    echo "raw results: $keep"
  fi
  return "$status"
}

# One run of the data path alone: prints "hook offered seconds delivered
# kernel_cpu_ticks lost" (delivered and lost over both directions).
data_path_run() {
  local run_hook=$1 rate=$2 secs=$3 ticks_before ticks_after
  SIM_KERNEL_FLAGS="--hook $run_hook"
  sim_cluster_init
  sim_machine_start "$ring"
  ticks_before=$(sim_cpu_ticks "${SIM_KERNEL_PIDS[0]}")
  sim_traffic_start --pps "$rate" --duration "$secs"
  wait "$SIM_TRAFFIC_PID"
  SIM_TRAFFIC_PID=
  ticks_after=$(sim_cpu_ticks "${SIM_KERNEL_PIDS[0]}")
  python3 - "$SIM_WORK/traffic.json" "$run_hook" "$rate" "$ticks_before" "$ticks_after" <<'EOF'
import json, sys
report, hook, rate, before, after = sys.argv[1:]
r = json.load(open(report))
delivered = r["inbound"]["unique"] + r["outbound"]["unique"]
lost = r["inbound"]["lost"] + r["outbound"]["lost"] + r["inbound"]["refused"] + r["outbound"]["refused"]
print(hook, rate, r["duration_s"], delivered, int(after) - int(before), lost)
EOF
  sim_cluster_stop
}

bench_throughput() {
  pps=${pps:-400000}
  seconds=${seconds:-5}
  machine_line
  echo "data path: $pps packets/s each way offered, ${seconds}s per run, $repeat runs per setting"
  local runs r
  runs=$(mktemp /tmp/nh-bench-runs.XXXXXX)
  for ((r = 1; r <= repeat; r++)); do
    data_path_run on "$pps" "$seconds" >>"$runs"
    data_path_run off "$pps" "$seconds" >>"$runs"
  done
  $SUMMARIZE throughput "$runs"
  rm -f "$runs"
}

bench_max_rate() {
  seconds=${seconds:-3}
  machine_line
  echo "highest rate without loss, hook $hook, ring $ring, ${seconds}s per step"
  local rate=${pps:-100000} best=0 row lost runs
  runs=$(mktemp /tmp/nh-bench-runs.XXXXXX)
  while :; do
    data_path_run "$hook" "$rate" "$seconds" >>"$runs"
    row=$(tail -n 1 "$runs")
    lost=$(echo "$row" | awk '{ print $6 }')
    echo "  $rate packets/s each way: $(echo "$row" | awk '{ printf "%.0f delivered/s", $4 / $3 }'), lost $lost"
    [ "$lost" -eq 0 ] || break
    best=$rate
    rate=$((rate * 5 / 4))
  done
  rm -f "$runs"
  echo "sustained: $best packets/s each way ($((2 * best)) total)"
}

case $mode in
  compare) bench_paths "${count:-200}" kernel daemon ;;
  handovers) bench_paths "${count:-50}" "$commit_path" ;;
  throughput) bench_throughput ;;
  max-rate) bench_max_rate ;;
  *) usage ;;
esac
