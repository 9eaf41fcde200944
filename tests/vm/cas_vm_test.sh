#!/bin/bash
# CAS atomicity across two QEMU guests and the host on the simulated
# machine's memory (issue 13; docs/simulator.md "Atomicity across guests").
# nh-sim-machine serves two guests through ivshmem (tests/vm/ivshmem_guest.sh);
# each guest and one host process run cas_counter: arrive, then increment the
# directory's cas_test counter by CAS for NH_CAS_SECONDS (default 4) seconds
# counting their own successes. The counter must end at exactly
# 3 + the sum of the successes.
#
# One JUnit testcase per property in $XML_OUTPUT_FILE:
#   guests_attached, cas_exact_two_guests_and_host, guest_doorbells_reach_the_machine
# (each guest also rings the machine's CONTROL vector once through its BAR0
# Doorbell register; the machine must count 2).
# With --measure it runs the CPU configurations of docs/simulator.md one
# after the other and prints each one's lost increments (it fails nothing).
#
# Outside Bazel: tests/vm/cas_vm_test.sh after building the binaries
# (NH_BIN_DIR=bazel-bin).
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
seconds=${NH_CAS_SECONDS:-4}
machine_bin=$bin/sim/nh-sim-machine
counter_bin=$bin/tests/vm/cas_counter

# Unix socket paths are limited to 108 bytes: Bazel's TEST_TMPDIR is too deep.
work=$(mktemp -d "${TMPDIR:-/tmp}/nhcas.XXXXXX")
memory=/dev/shm/$(basename "$work")-machine  # ivshmem wants tmpfs
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  if [ -n "$artifacts" ]; then cp "$work"/*.log "$artifacts"/ 2>/dev/null; fi
  rm -rf "$work" "$memory"
}
trap cleanup EXIT

show_logs() { for f in "$work"/*.log "$work"/*.qemu; do [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }; done; }

ivshmem_guest_image "$work/img" --bin "$counter_bin" --scenario "cas=$NH_ROOT/tests/vm/cas_guest.sh" ||
  { junit_record guests_attached 0 "image build failed: $(tail -n 5 "$work/img.log")"; junit_write tests/vm/cas_vm_test; exit 1; }

# run_once LABEL: one round on a fresh machine with the current
# IVSHMEM_GUEST_ACCEL/SMP; sets lost (counter - expected) and detail.
run_once() {
  local label=$1 p sum=0 n value expected machine_pid
  lost="" detail=""
  "$machine_bin" create --path "$memory" --node node0:0 --node node1:1 --owner node0 \
    >"$work/create.log" 2>&1 || { detail="create failed: $(cat "$work/create.log")"; return 1; }
  "$machine_bin" run --path "$memory" --ivshmem-dir "$work" >"$work/machine-$label.log" 2>&1 &
  machine_pid=$!
  pids+=("$machine_pid")
  local guest_pids=()
  for node in node0 node1; do
    ivshmem_guest_boot "$node" "$work/$node.sock" "$work/img" "$work/$node-$label.log" \
      nh_scenario=cas nh_cas_participants=3 "nh_cas_seconds=$seconds" || return 1
    guest_pids+=("$IVSHMEM_GUEST_PID")
    pids+=("$IVSHMEM_GUEST_PID")
  done
  "$counter_bin" --memory "$memory" --participants 3 --seconds "$seconds" --label host \
    >"$work/host-$label.log" 2>&1 &
  local host_pid=$!
  pids+=("$host_pid")
  for node in node0 node1; do
    ivshmem_guest_wait "$work/$node-$label.log" "cas_guest: done" 600 ||
      { detail="$node never finished"; return 1; }
  done
  wait "$host_pid" || { detail="host counter failed: $(cat "$work/host-$label.log")"; return 1; }
  for p in "${guest_pids[@]}"; do wait "$p" 2>/dev/null; done  # guests power off
  for f in "$work/host-$label.log" "$work/node0-$label.log" "$work/node1-$label.log"; do
    n=$(sed -n 's/.*cas_counter [^ ]*: increments \([0-9]*\).*/\1/p' "$f" | head -n1)
    [ -n "$n" ] || { detail="no count in $f"; return 1; }
    sum=$((sum + n))
  done
  value=$("$counter_bin" --memory "$memory" --read | sed -n 's/.*value \([0-9]*\)/\1/p')
  doorbells=$("$machine_bin" show --path "$memory" | sed -n 's/.*guest doorbells (control) \([0-9]*\).*/\1/p')
  kill "$machine_pid" 2>/dev/null
  wait "$machine_pid" 2>/dev/null
  expected=$((3 + sum))
  lost=$((expected - value))
  detail="accel=$IVSHMEM_GUEST_ACCEL smp=$IVSHMEM_GUEST_SMP: $sum increments (host $(sed -n 's/.*increments //p' "$work/host-$label.log")), counter $value, expected $expected, lost $lost"
  echo "NH_RESULT cas $label $detail"
  return 0
}

if [ "${1:-}" = "--measure" ]; then
  for config in "tcg 1" "tcg,thread=single 2" "tcg,thread=multi 1" "tcg,thread=multi 1,maxcpus=2" \
    "tcg,thread=multi 2"; do
    IVSHMEM_GUEST_ACCEL=${config% *} IVSHMEM_GUEST_SMP=${config#* }
    run_once "measure" || { echo "measure ${config}: $detail"; show_logs; }
  done
  exit 0
fi

if run_once test; then
  junit_record guests_attached 1 "two guests and the host counted"
  if [ "$doorbells" = 2 ]; then
    junit_record guest_doorbells_reach_the_machine 1 "2 control doorbells counted"
  else
    junit_record guest_doorbells_reach_the_machine 0 "control doorbells counted: '$doorbells', want 2"
  fi
  if [ "$lost" = 0 ]; then
    junit_record cas_exact_two_guests_and_host 1 "$detail"
  else
    junit_record cas_exact_two_guests_and_host 0 "$detail"
  fi
else
  junit_record guests_attached 0 "$detail"
  show_logs
fi
junit_write tests/vm/cas_vm_test
[ "$JUNIT_FAILURES" = 0 ]
