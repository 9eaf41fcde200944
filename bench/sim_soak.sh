#!/bin/bash
# The long run of //tests:sim_soak_test (tests/sim_soak_test.cc): handovers
# on the simulated machine's real processes (nh-sim-machine, two
# nh-sim-kernel, two nichandoverd on the sim backend, nh-sim-traffic) with
# random SIGKILL and SIGSTOP/SIGCONT of the daemons and the kernels, every
# invariant checked after each handover; the seed is printed first.
#
#   bazel run -c opt //bench:sim_soak -- [--handovers 500] [--pps 5000] [--seed N]
#
# Results: docs/performance.md. Exit status 0 only when every invariant held.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
runfiles=${RUNFILES_DIR:-$0.runfiles}
[ -d "$runfiles/nichandover" ] || runfiles=$(cd "$here/../.." && pwd)

handovers=500 pps=5000
export NICHANDOVER_SEED=${NICHANDOVER_SEED:-}
while [ $# -gt 0 ]; do
  case $1 in
    --handovers) handovers=$2 ;;
    --pps) pps=$2 ;;
    --seed) NICHANDOVER_SEED=$2 ;;
    *) sed -n '2,9p' "$runfiles/nichandover/bench/sim_soak.sh" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
  shift 2
done
[ -n "$NICHANDOVER_SEED" ] || unset NICHANDOVER_SEED

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
  "kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
NICHANDOVER_SOAK_HANDOVERS=$handovers NICHANDOVER_SOAK_PPS=$pps TEST_SRCDIR=$runfiles \
  "$runfiles/nichandover/tests/sim_soak_test"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
