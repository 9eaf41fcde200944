#!/bin/bash
# nh_simnic, the guest driver of the simulated NIC (docs/simnic.md), in real
# Linux guests attached to nh-sim-machine (tests/vm/ivshmem_guest.sh).
#
# node0 owns the NIC (the record says so at creation) and boots first: its
# driver sets the never-initialised NIC up and runs it, frame_echo answers
# every frame nh-sim-traffic --echo sends. Then node1 boots: its driver must
# stay on standby and touch nothing, while node0 keeps echoing everything.
#
# One JUnit testcase per property in $XML_OUTPUT_FILE:
#   owner_runs_the_nic, owner_echoes_every_frame, owner_nic_interrupts,
#   standby_touches_nothing, owner_unaffected_by_standby, no_kernel_warnings
#
# Outside Bazel: tests/vm/simnic_vm_test.sh after
#   bazel build //sim:nh-sim-machine //sim:nh-sim-traffic //tests/vm:frame_echo
set -uo pipefail

if [ -n "${TEST_SRCDIR:-}" ]; then
  NH_ROOT=$TEST_SRCDIR/nichandover
  bin=$NH_ROOT
else
  NH_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
  bin=${NH_BIN_DIR:-$NH_ROOT/bazel-bin}
fi
export NH_ROOT
# shellcheck source=tests/vm/ivshmem_guest.sh
. "$NH_ROOT/tests/vm/ivshmem_guest.sh"
# shellcheck source=tests/vm/junit.sh
. "$NH_ROOT/tests/vm/junit.sh"
artifacts=${TEST_UNDECLARED_OUTPUTS_DIR:-}
machine_bin=$bin/sim/nh-sim-machine
traffic_bin=$bin/sim/nh-sim-traffic
pps=${NH_SIMNIC_PPS:-200}
seconds=${NH_SIMNIC_SECONDS:-4}

# Unix socket paths are limited to 108 bytes: Bazel's TEST_TMPDIR is too deep.
work=$(mktemp -d "${TMPDIR:-/tmp}/nhsimnic.XXXXXX")
memory=/dev/shm/$(basename "$work")-machine  # ivshmem wants tmpfs
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  if [ -n "$artifacts" ]; then cp "$work"/*.log "$work"/*.json "$artifacts"/ 2>/dev/null; fi
  rm -rf "$work" "$memory"
}
trap cleanup EXIT

show_logs() {
  local f
  for f in "$work"/*.log "$work"/*.qemu; do
    [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }
  done
}
fail_setup() {
  junit_record setup 0 "$1"
  show_logs
  junit_write tests/vm/simnic_vm_test
  exit 1
}
# json FILE EXPR: a value of nh-sim-traffic's report (EXPR indexes r).
json() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"; }
# evidence LOG FIELD: FIELD of the guest's last NH_EVIDENCE line.
# (The serial console ends lines with CR LF.)
evidence() { grep NH_EVIDENCE "$1" | tail -n 1 | tr -d '\r' | sed -n "s/.* $2=\([^ ]*\).*/\1/p"; }
# fresh_evidence LOG: waits for an NH_EVIDENCE line newer than now.
fresh_evidence() {
  local n
  n=$(grep -c NH_EVIDENCE "$1")
  ivshmem_guest_wait "$1" "NH_EVIDENCE n=$((n + 2)) " 60
}
# echo_round NAME: nh-sim-traffic --echo for $seconds; the report in NAME.json.
echo_round() {
  "$traffic_bin" --machine "$memory" --echo --inbound-pps "$pps" --duration "$seconds" \
    --report "$work/$1.json" >"$work/$1.log" 2>&1
}
# all_echoed NAME: every frame sent came back once, all through node 0.
all_echoed() {
  local f=$work/$1.json sent unique lost dup changes
  sent=$(json "$f" "r['inbound']['sent']")
  unique=$(json "$f" "r['outbound']['unique']")
  lost=$(json "$f" "r['outbound']['lost']")
  dup=$(json "$f" "r['outbound']['duplicated']")
  changes=$(json "$f" "len(r['outbound']['handovers'])")
  detail="sent $sent, echoed $unique, lost $lost, duplicated $dup, node changes $changes"
  [ "$sent" -gt 0 ] && [ "$unique" = "$sent" ] && [ "$lost" = 0 ] && [ "$dup" = 0 ] &&
    [ "$changes" = 0 ]
}

# --- modules, image, machine
"$NH_ROOT/tools/build-simnic" "$work/ko" >"$work/build.log" 2>&1 ||
  fail_setup "module build failed: $(tail -n 20 "$work/build.log")"
ivshmem_guest_image "$work/img" --module "$work/ko/nichandover_hook.ko" \
  --module "$work/ko/nh_simnic.ko" --bin "$bin/tests/vm/frame_echo" \
  --scenario "simnic=$NH_ROOT/tests/vm/simnic_guest.sh" ||
  fail_setup "image build failed: $(tail -n 5 "$work/img.log")"
"$machine_bin" create --path "$memory" --node node0:0 --node node1:1 --owner node0 \
  >"$work/create.log" 2>&1 || fail_setup "machine create failed: $(cat "$work/create.log")"
"$machine_bin" run --path "$memory" --ivshmem-dir "$work" >"$work/machine.log" 2>&1 &
pids+=($!)

# --- node0: the owner
ivshmem_guest_boot node0 "$work/node0.sock" "$work/img" "$work/node0.log" \
  nh_scenario=simnic nh_node_index=0 || fail_setup "node0 did not start"
pids+=("$IVSHMEM_GUEST_PID")
ivshmem_guest_wait "$work/node0.log" "simnic_guest: (ready|no netdev)" 300 ||
  fail_setup "node0 never became ready"
ready=$(grep "simnic_guest: ready" "$work/node0.log" | tr -d '\r')
"$machine_bin" show --path "$memory" >"$work/show-owner.log" 2>&1
ok=0
if [[ $ready == *"driver=nh_simnic role=owner"* ]] &&
  grep -q "running on node0" "$work/show-owner.log" &&
  grep -q "MSI-X enabled" "$work/show-owner.log"; then
  ok=1
fi
junit_record owner_runs_the_nic $ok "${ready:-no ready line}; $(grep -m1 'running on' "$work/show-owner.log")"

echo_round owner-only || fail_setup "nh-sim-traffic failed: $(cat "$work/owner-only.log")"
ok=0
all_echoed owner-only && ok=1
junit_record owner_echoes_every_frame $ok "$detail"

fresh_evidence "$work/node0.log"
"$machine_bin" show --path "$memory" >"$work/show-echo.log" 2>&1
queue_irqs=$(evidence "$work/node0.log" queue_irqs)
fabric=$(grep -m1 "^node node0" "$work/show-echo.log")
ok=0
[ "${queue_irqs:-0}" != none ] && [ "${queue_irqs:-0}" -gt 0 ] &&
  [[ $fabric == *"0x41:"* ]] && [[ $fabric == *"spurious 0"* ]] && ok=1
junit_record owner_nic_interrupts $ok "guest nh_simnic-entry1 $queue_irqs; machine: $fabric"

# --- node1: standby, booted while node0 runs the NIC
before=$(grep -m1 "RDH" "$work/show-echo.log")
ivshmem_guest_boot node1 "$work/node1.sock" "$work/img" "$work/node1.log" \
  nh_scenario=simnic nh_node_index=1 || fail_setup "node1 did not start"
pids+=("$IVSHMEM_GUEST_PID")
ivshmem_guest_wait "$work/node1.log" "simnic_guest: (ready|no netdev)" 300 ||
  fail_setup "node1 never became ready"
echo_round with-standby || fail_setup "nh-sim-traffic failed: $(cat "$work/with-standby.log")"
fresh_evidence "$work/node1.log"
"$machine_bin" show --path "$memory" >"$work/show-standby.log" 2>&1
ready1=$(grep "simnic_guest: ready" "$work/node1.log" | tr -d '\r')
fabric1=$(grep -m1 "^node node1" "$work/show-standby.log")
rx1=$(evidence "$work/node1.log" rx)
tx1=$(evidence "$work/node1.log" tx)
irqs1=$(evidence "$work/node1.log" nic_irqs)
carrier1=$(evidence "$work/node1.log" carrier)
ok=0
if [[ $ready1 == *"driver=nh_simnic role=standby"* ]] && [ "$rx1" = 0 ] && [ "$tx1" = 0 ] &&
  [ "$irqs1" = 0 ] && [ "$carrier1" = 1 ] && [[ $fabric1 == *"interrupts {}"* ]] &&
  grep -q "running on node0" "$work/show-standby.log"; then
  ok=1
fi
junit_record standby_touches_nothing $ok \
  "${ready1:-no ready line}; rx $rx1 tx $tx1 NIC irqs $irqs1 carrier $carrier1; machine: $fabric1"

ok=0
all_echoed with-standby && ok=1
junit_record owner_unaffected_by_standby $ok "$detail; before node1: $before"

w0=$(evidence "$work/node0.log" warnings)
w1=$(evidence "$work/node1.log" warnings)
ok=0
[ "$w0" = 0 ] && [ "$w1" = 0 ] && ok=1
junit_record no_kernel_warnings $ok "node0 $w0, node1 $w1 (WARNING/BUG/timed out/Call Trace)"

[ "$JUNIT_FAILURES" = 0 ] || show_logs
junit_write tests/vm/simnic_vm_test
[ "$JUNIT_FAILURES" = 0 ]
