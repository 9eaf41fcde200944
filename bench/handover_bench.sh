#!/bin/bash
# Benchmarks on the simulated machine (docs/performance.md has the results).
# Run by hand, optimized, never as a test:
#
#   bazel run -c opt //bench:handover_bench -- handovers [--count 50] [--pps 100000]
#       [--ring 1024] [--interval 0.2]
#     N handovers node0 <-> node1 through nicctl while traffic runs at --pps
#     packets/s each way: blackout p50/p90/p99/max, phase durations, total
#     lost/duplicated/reordered, the daemons' RSS.
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

usage() { sed -n '2,22p' "$runfiles/bench/handover_bench.sh" | sed 's/^# \{0,1\}//' >&2; exit 2; }

mode=${1:-}
[ -n "$mode" ] || usage
shift
count=50 pps= ring=1024 interval=0.2 seconds= repeat=3 hook=on
while [ $# -gt 0 ]; do
  case $1 in
    --count) count=$2 ;;
    --pps) pps=$2 ;;
    --ring) ring=$2 ;;
    --interval) interval=$2 ;;
    --seconds) seconds=$2 ;;
    --repeat) repeat=$2 ;;
    --hook) hook=$2 ;;
    *) usage ;;
  esac
  shift 2
done

trap 'sim_cluster_stop' EXIT
trap 'exit 130' INT TERM

machine_line() {
  echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
    "kernel $(uname -r)"
}

bench_handovers() {
  pps=${pps:-100000}
  machine_line
  echo "handovers: $count at $pps packets/s each way, ring $ring, ${interval}s apart"
  sim_cluster_init
  sim_cluster_start "$ring"
  local rss_before rss_after owner=0 k
  rss_before="$(sim_rss_kib "${SIM_DAEMON_PIDS[0]}"), $(sim_rss_kib "${SIM_DAEMON_PIDS[1]}")"
  sim_traffic_start --pps "$pps"
  sleep 0.5
  : >"$SIM_WORK/handovers.jsonl"
  for ((k = 1; k <= count; k++)); do
    # One document per line: the summary reads them as JSON lines.
    sim_nicctl "node$owner" --json handover "$NIC" --to "node$((1 - owner))" |
      python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))' \
      >>"$SIM_WORK/handovers.jsonl" ||
      { echo "bench: handover $k failed" >&2; tail -n 1 "$SIM_WORK/handovers.jsonl" >&2; }
    owner=$((1 - owner))
    sleep "$interval"
  done
  sleep 0.5
  rss_after="$(sim_rss_kib "${SIM_DAEMON_PIDS[0]}"), $(sim_rss_kib "${SIM_DAEMON_PIDS[1]}")"
  sim_traffic_stop
  $SUMMARIZE handovers "$SIM_WORK/traffic.json" "$SIM_WORK/handovers.jsonl" \
    "$rss_before" "$rss_after"
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
  handovers) bench_handovers ;;
  throughput) bench_throughput ;;
  max-rate) bench_max_rate ;;
  *) usage ;;
esac
