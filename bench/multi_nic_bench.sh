#!/bin/bash
# Many NICs handed over at the same time (docs/performance.md has the
# results). Run by hand, optimized, never as a test:
#
#   bazel run -c opt //bench:multi_nic_bench -- [--nics 64] [--nodes 3] [--queues 2]
#       [--pps 500] [--ring 256] [--rounds 1]
#
# The simulated machine with --nodes nodes and --nics NICs of --queues queue
# pairs, NIC i starting on node i % nodes. While traffic runs on every NIC
# and queue (--pps packets/s per NIC each way), each round hands every NIC to
# the next node at once: one `nicctl handover` per NIC, all started
# together. Per round: the time until the last one returned, every NIC's
# blackout as its flows saw it (p50/p99/max over NICs), lost/duplicated/
# reordered packets, the daemons' CPU time and RSS, and the machine's load
# average before and after.
#
# Everything it starts is stopped when it exits.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
runfiles=${RUNFILES_DIR:-$0.runfiles}/nichandover
[ -d "$runfiles" ] || runfiles=$here/..
SIM_BIN=$runfiles

usage() { sed -n '2,17p' "$runfiles/bench/multi_nic_bench.sh" | sed 's/^# \{0,1\}//' >&2; exit 2; }

nics=64 nodes=3 queues=2 pps=500 ring=256 rounds=1
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case $1 in
    --nics) nics=$2 ;;
    --nodes) nodes=$2 ;;
    --queues) queues=$2 ;;
    --pps) pps=$2 ;;
    --ring) ring=$2 ;;
    --rounds) rounds=$2 ;;
    *) usage ;;
  esac
  shift 2
done

SIM_NODE_COUNT=$nodes SIM_NICS=$nics SIM_QUEUES=$queues SIM_SPREAD=1
source "$runfiles/tools/lib/sim_cluster.sh"
trap 'sim_cluster_stop' EXIT
trap 'exit 130' INT TERM

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
  "kernel $(uname -r); load average $(cut -d' ' -f1-3 /proc/loadavg)"
sim_cluster_init
sim_cluster_start "$ring"
echo "simulated machine: $nodes nodes, $nics NICs x $queues queue pairs, ring $ring;" \
  "traffic $pps packets/s per NIC each way ($((pps * nics)) in all)"

ticks_per_s=$(getconf CLK_TCK)
owner=()  # by NIC: the node index that owns it now
for ((i = 0; i < nics; i++)); do owner[$i]=$((i % nodes)); done

for ((round = 1; round <= rounds; round++)); do
  cpu_before=()
  for ((n = 0; n < nodes; n++)); do cpu_before[$n]=$(sim_cpu_ticks "${SIM_DAEMON_PIDS[$n]}"); done
  sim_traffic_start --pps "$pps"
  sleep 2
  load_before=$(cut -d' ' -f1 /proc/loadavg)
  : >"$SIM_WORK/moves"
  pids=()
  start=$(date +%s.%N)
  for ((i = 0; i < nics; i++)); do
    source=node${owner[$i]} target=node$(((owner[$i] + 1) % nodes))
    (status=0
     sim_nicctl "$source" handover "$(sim_nic_bdf "$i")" --to "$target" \
       >"$SIM_WORK/handover-$i.out" 2>&1 || status=$?
     echo "$(sim_nic_bdf "$i") $source $target $status" >"$SIM_WORK/move-$i") &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || true; done
  end=$(date +%s.%N)
  load_after=$(cut -d' ' -f1 /proc/loadavg)
  for ((i = 0; i < nics; i++)); do
    cat "$SIM_WORK/move-$i" >>"$SIM_WORK/moves"
    read -r _ _ _ status <"$SIM_WORK/move-$i"
    if [ "$status" = 0 ]; then
      owner[$i]=$(((owner[$i] + 1) % nodes))
    else
      echo "NIC $(sim_nic_bdf "$i"): nicctl exit $status: $(tail -n 3 "$SIM_WORK/handover-$i.out" | tr '\n' ' ')"
    fi
  done
  sleep 1
  sim_traffic_stop || { echo "bench: the traffic report is missing" >&2; exit 1; }
  daemons=""
  for ((n = 0; n < nodes; n++)); do
    pid=${SIM_DAEMON_PIDS[$n]}
    cpu=$(($(sim_cpu_ticks "$pid") - cpu_before[n]))
    daemons+=" node$n:cpu_s=$(awk -v t="$cpu" -v hz="$ticks_per_s" 'BEGIN { printf "%.2f", t / hz }')"
    daemons+=",rss_kib=$(sim_rss_kib "$pid")"
  done
  echo
  echo "round $round: $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }') s" \
    "until the last of $nics handovers returned; load average $load_before -> $load_after"
  echo "daemons (CPU during the round incl. 3 s of traffic, RSS after):$daemons"
  python3 - "$SIM_WORK/traffic.json" "$SIM_WORK/moves" <<'EOF'
import json, sys

report = json.load(open(sys.argv[1]))
moves = [line.split() for line in open(sys.argv[2]) if line.strip()]
by_bdf = {n["bdf"]: n for n in report["nics"]}
failed = [m for m in moves if m[3] != "0"]
blackouts = sorted(by_bdf[m[0]]["max_blackout_us"] / 1000.0 for m in moves if m[3] == "0")


def pct(p):
    if not blackouts:
        return float("nan")
    return blackouts[min(len(blackouts) - 1, int(round(p / 100.0 * (len(blackouts) - 1))))]


d = {k: sum(report[x][k] for x in ("inbound", "outbound"))
     for k in ("sent", "lost", "duplicated", "out_of_order")}
print("handovers: %d committed, %d failed%s" % (
    len(moves) - len(failed), len(failed),
    "" if not failed else " (" + ", ".join("%s exit %s" % (m[0], m[3]) for m in failed) + ")"))
print("per-NIC blackout (ms, longest pause of its flows): p50 %.2f  p99 %.2f  max %.2f" % (
    pct(50), pct(99), pct(100)))
print("traffic: sent %(sent)d, lost %(lost)d, duplicated %(duplicated)d, reordered %(out_of_order)d"
      % d + "; rx ring full %d, socket full %d" % (report["device"]["rx_missed"],
                                                 report["rx_socket_drops"]))
EOF
done
