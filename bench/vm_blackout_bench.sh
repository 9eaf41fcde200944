#!/bin/bash
# The blackout of a NIC moved between two real Linux kernels, both ways it
# can be done here, in one run on the same machine (docs/performance.md):
#
#   1. live, by the MSI-X table: two QEMU guests share the simulated NIC
#      (tests/vm/shared_nic_vm_test.sh in bench mode: N handovers, no fault
#      cases); the blackout is what nh-sim-traffic --echo sees per handover
#      (the gap in the echoed sequence);
#   2. by hot-plug: the e1000e moved between two VMs by the VM platform
#      (tests/vm/handover_vm_test.sh); its blackout is the traffic peer's
#      longest gap per move.
#
#   bench/vm_blackout_bench.sh [--handovers 50] [--pps 2000]
#
# Needs the binaries built (bazel build //...; NH_BIN_DIR, default
# bazel-bin). Prints p50/p90/p99/max per path and the ratio of the medians.
# Run by hand, never as a test: it takes several minutes of TCG.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
handovers=50 pps=2000
while [ $# -gt 0 ]; do
  case $1 in
    --handovers) handovers=$2 ;;
    --pps) pps=$2 ;;
    *) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
  shift 2
done
export NH_BIN_DIR=${NH_BIN_DIR:-$root/bazel-bin}
out=$(mktemp -d "${TMPDIR:-/tmp}/nhbench.XXXXXX")
trap 'rm -rf "$out"' EXIT

echo "vm_blackout_bench: live path, $handovers handovers at $pps frames/s (echoed)" >&2
NH_SHARED_BENCH=1 NH_SHARED_ROUNDS=$(((handovers + 1) / 2)) NH_SHARED_PPS=$pps \
  "$root/tests/vm/shared_nic_vm_test.sh" >"$out/live.log" 2>&1
live_rc=$?
echo "vm_blackout_bench: hot-plug path (handover_vm_test)" >&2
"$root/tests/vm/handover_vm_test.sh" >"$out/hotplug.log" 2>&1
hotplug_rc=$?

python3 - "$out/live.log" "$out/hotplug.log" "$live_rc" "$hotplug_rc" <<'EOF'
import re, sys
live = [float(m) / 1000 for m in re.findall(r'NH_RESULT blackout_us=([0-9.]+)', open(sys.argv[1]).read())]
hot = [float(m) for m in re.findall(r'NH_RESULT move=(?!refused)\S+ .*blackout_ms=([0-9.]+)', open(sys.argv[2]).read())]
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
def line(name, v, rc):
    if not v:
        return "%-22s no samples (exit %s)" % (name, rc)
    return "%-22s n=%-3d p50 %8.1f ms  p90 %8.1f ms  p99 %8.1f ms  max %8.1f ms  (exit %s)" % (
        name, len(v), pct(v, 50), pct(v, 90), pct(v, 99), max(v), rc)
print(line("live (MSI-X rewrite)", live, sys.argv[3]))
print(line("hot-plug (e1000e)", hot, sys.argv[4]))
if live and hot:
    print("hot-plug p50 / live p50 = %.0fx" % (pct(hot, 50) / pct(live, 50)))
for l in open(sys.argv[1]):
    if l.startswith(('PASS', 'FAIL')) and 'traffic' in l:
        print("live traffic: " + l.strip()[:300])
EOF
