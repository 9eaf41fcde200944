#!/bin/bash
# The kernel commit path (issue 14) between two real Linux kernels: two QEMU
# guests are OS nodes of the simulated machine and share its NIC under
# nh_simnic. No daemon runs: the host plays both daemons' parts with nhhookctl
# (docs/hook.md, "Kernel commit path"):
#   host:  record ACTIVE(vm-a, 1) -> PREPARING(vm-a, vm-b, 2) (the daemons' CAS)
#   vm-b:  RESERVE at epoch 2, ARM for HANDOFF(vm-a, vm-b, 2) -> ACTIVE(vm-b, 2)
#   vm-a:  one HANDOFF: quiesce, MSI-X rewrite to vm-b's messages, rings beside
#          the record, CAS PREPARING -> HANDOFF, ivshmem doorbell to vm-b
#   vm-b:  its kernel, woken by the doorbell, CASes HANDOFF -> ACTIVE(vm-b, 2),
#          attaches from the rings and logs a COMMITTED event
# under echo traffic from nh-sim-traffic; then back from vm-b to vm-a at epoch
# 3 the same way (vm-b runs the NIC it took by a kernel commit). A stale or
# early doorbell is covered by //daemon/platform/linux:linux_fast_path_test
# against the fake module only: a guest cannot ring another's doorbell by hand
# (BAR0 is the driver's, exclusive under IO_STRICT_DEVMEM).
#
# One JUnit testcase per property in $XML_OUTPUT_FILE:
#   handoff_reaches_the_doorbell_{vm-a-vm-b,vm-b-vm-a}
#                                  the source's HANDOFF answers stage=doorbell-rung
#                                  and leaves its device released
#   target_kernel_commits_alone_*  the record becomes ACTIVE(target, e) running on
#                                  the target, whose log has a COMMITTED event
#   interrupts_follow_the_owner_*  every MSI-X entry names the target's APIC
#   traffic_exactly_once_in_order  0 duplicated, 0 reordered, every loss a frame
#                                  the NIC counted missed
#   no_warning                     no WARNING/BUG/hung task in either kernel log
#
# Outside Bazel: tests/vm/kernel_commit_vm_test.sh after building the binaries
# (NH_BIN_DIR=bazel-bin); NH_KEEP_WORK=1 keeps the logs.
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
pps=${NH_KCOMMIT_PPS:-1000}
nic=0000:03:00.0
test_start=$(date +%s)

work=$(mktemp -d "${TMPDIR:-/tmp}/nhkcommit.XXXXXX")
memory=/dev/shm/$(basename "$work")-machine
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  if [ -n "$artifacts" ]; then cp "$work"/*.log "$work"/*.json "$artifacts"/ 2>/dev/null; fi
  [ -n "${NH_KEEP_WORK:-}" ] && echo "kernel_commit_vm_test: logs kept in $work" || rm -rf "$work"
  rm -f "$memory"
}
trap cleanup EXIT

show_logs() {
  local f
  for f in "$work"/*.log; do
    [ -f "$f" ] && { echo "--- $f"; tail -n 40 "$f"; }
  done
}
fail_setup() {
  junit_record setup 0 "$1"
  [ -n "${ctl_a:-}" ] && ctl "$ctl_a" dmesg >"$work/dmesg-vm-a.log" 2>&1
  [ -n "${ctl_b:-}" ] && ctl "$ctl_b" dmesg >"$work/dmesg-vm-b.log" 2>&1
  show_logs
  junit_write tests/vm/kernel_commit_vm_test
  exit 1
}
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 30000))
    (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo "$p"; return; }
  done
}
find_e1000() {
  local d f kver
  kver=$("$NH_ROOT/tools/kernel-abi")
  for d in / "${NH_VM_CACHE:-/var/tmp/nichandover-vm}/linux-image-$kver/"; do
    f=${d}lib/modules/$kver/kernel/drivers/net/ethernet/intel/e1000/e1000.ko
    [ -f "$f" ] && { echo "$f"; return 0; }
  done
  return 1
}
json() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"; }
# The machine's record word as guest_abi.h packs it (kNoNode = 0xff).
word() { # STATE OWNER TARGET EPOCH
  printf '0x%x' $(($1 | ($2 << 8) | ($3 << 16) | ($4 << 24)))
}
# Writes the record word in the machine's memory: the host stands in for the
# daemons' CAS ACTIVE -> PREPARING (nothing else writes the record now).
set_record() {
  python3 - "$memory" "$1" <<'PY'
import mmap, struct, sys
with open(sys.argv[1], "r+b") as f:
    m = mmap.mmap(f.fileno(), 0)
    # struct nh_sim_directory at 0x40; nic_ownership_offset at +112.
    (own,) = struct.unpack_from("<Q", m, 0x40 + 112)
    struct.pack_into("<Q", m, own, int(sys.argv[2], 0))
    m.flush()
PY
}

# --- modules, image
"$NH_ROOT/tools/build-simnic" "$work/ko" >"$work/build.log" 2>&1 ||
  fail_setup "module build failed: $(tail -n 20 "$work/build.log")"
image() {
  ivshmem_guest_image "$work/img" --module "$work/ko/nichandover_hook.ko" \
    --module "$work/ko/nh_simnic.ko" "$@" \
    --bin "$bin/tests/vm/frame_echo" --bin "$bin/hook/client/nhhookctl" \
    --scenario "kcommit=$NH_ROOT/tests/vm/kernel_commit_guest.sh" \
    --scenario "daemon-lib=$NH_ROOT/tests/vm/guest_daemon.sh"
}
e1000=$(find_e1000) || { image && e1000=$(find_e1000); } ||
  fail_setup "no e1000.ko: $(tail -n 5 "$work/img.log")"
image --module "$e1000" || fail_setup "image build failed: $(tail -n 5 "$work/img.log")"
echo "kernel_commit_vm_test: images built in $(($(date +%s) - test_start))s"

# --- the machine: two guest nodes, vm-a owns the NIC
"$machine_bin" create --path "$memory" --node vm-a:0 --node vm-b:1 --owner vm-a --bdf "$nic" \
  --ring-size 4096 >"$work/create.log" 2>&1 || fail_setup "machine create: $(cat "$work/create.log")"
"$machine_bin" run --path "$memory" --ivshmem-dir "$work" >"$work/machine.log" 2>&1 &
pids+=($!)

ctl_a=$(free_port) ctl_b=$(free_port)
boot() { # NAME INDEX CTL_PORT
  local letter=${1#vm-}
  IVSHMEM_GUEST_EXTRA=(
    -netdev "user,id=mgmt,restrict=on,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:$3-10.0.2.15:7001"
    -device "e1000,netdev=mgmt,addr=05.0,mac=52:54:00:00:00:0$letter,romfile="
  )
  ivshmem_guest_boot "$1" "$work/$1.sock" "$work/img" "$work/console-$1.log" \
    nh_scenario=kcommit "nh_node_index=$2" || fail_setup "$1 did not start"
  pids+=("$IVSHMEM_GUEST_PID")
}
boot vm-a 0 "$ctl_a"
boot vm-b 1 "$ctl_b"

ctl() {
  local fd
  exec {fd}<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf '%s\n' "$2" >&"$fd"
  timeout 60 cat <&"$fd"
  exec {fd}>&-
}
wait_ctl() {
  local i
  for i in $(seq 1 360); do
    [[ "$(ctl "$1" "nhhookctl status $nic" 2>/dev/null)" == *kernel_commit=1* ]] && return 0
    sleep 0.5
  done
  return 1
}
wait_ctl "$ctl_a" || fail_setup "vm-a's hook never listed $nic with the kernel commit path"
wait_ctl "$ctl_b" || fail_setup "vm-b's hook never listed $nic with the kernel commit path"
echo "kernel_commit_vm_test: both guests up at $(($(date +%s) - test_start))s"

record() {
  "$machine_bin" show --path "$memory" 2>/dev/null |
    sed -n 's/.*record \([A-Z]*\) owner=\([^ ]*\) target=\([^ ]*\) epoch=\([0-9]*\), running on \([^ ]*\).*/\1 \2 \3 \4 \5/p' |
    head -n 1
}
routing() { "$machine_bin" show --path "$memory" 2>/dev/null; }
rx_missed() { routing | sed -n 's/.* missed \([0-9]*\) tx.*/\1/p' | head -n 1; }

# --- traffic, then the hand-off
missed_before=$(rx_missed)
"$traffic_bin" --machine "$memory" --echo --inbound-pps "$pps" --report "$work/traffic.json" \
  >"$work/traffic.log" 2>&1 &
traffic_pid=$!
pids+=("$traffic_pid")
sleep 2

# kernel_handoff FROM TO EPOCH: one hand-off by the kernel commit path.
kernel_handoff() {
  local from=$1 to=$2 e=$3 fi ti cf ct hw aw messages ok committed i tag=$1-$2
  [ "$from" = vm-a ] && fi=0 ti=1 cf=$ctl_a ct=$ctl_b || fi=1 ti=0 cf=$ctl_b ct=$ctl_a
  set_record "$(word 2 "$fi" "$ti" "$e")" # the daemons' CAS: PREPARING(from, to, e)
  hw=$(word 3 "$fi" "$ti" "$e")
  aw=$(word 1 "$ti" 255 "$e")
  ctl "$ct" "nhhookctl reserve $nic $e $(ctl "$cf" "nhhookctl read-msi $nic" | grep -c '^vector ')" \
    >"$work/reserve-$tag.log" 2>&1
  messages=$(sed -n 's/^reserved index=\([0-9]*\) .*address=\(0x[0-9a-f]*\) data=\(0x[0-9a-f]*\).*/\1:\2:\3/p' \
    "$work/reserve-$tag.log" | tr '\n' ' ')
  ctl "$ct" "nhhookctl arm $nic $e $hw $aw" >"$work/arm-$tag.log" 2>&1
  ctl "$cf" "nhhookctl handoff $nic $e $(word 2 "$fi" "$ti" "$e") $hw $messages" \
    >"$work/handoff-$tag.log" 2>&1
  ok=0
  grep -q '^stage=doorbell-rung' "$work/handoff-$tag.log" && grep -q '^rc=0' "$work/handoff-$tag.log" &&
    grep -q '^state=released' "$work/handoff-$tag.log" && ok=1
  junit_record "handoff_reaches_the_doorbell_$tag" $ok \
    "reserve: $(tr '\n' ' ' <"$work/reserve-$tag.log" | cut -c1-240); arm: $(grep -E 'armed_epoch|rc=|nhhookctl' "$work/arm-$tag.log" | tr '\n' ' '); handoff: $(grep -E '^stage|^record|^state|rc=|nhhookctl' "$work/handoff-$tag.log" | tr '\n' ' ')"

  committed=0
  for ((i = 0; i < 200; i++)); do
    [[ "$(record)" =~ ^ACTIVE\ $to\ .*\ $e\ $to$ ]] && { committed=1; break; }
    sleep 0.1
  done
  ctl "$ct" "nhhookctl events 0 10000; nhhookctl status $nic" >"$work/events-$tag.log" 2>&1
  ok=0
  [ $committed = 1 ] && grep -q "kind=committed.*epoch=$e " "$work/events-$tag.log" &&
    grep -q '^state=running' "$work/events-$tag.log" && ok=1
  junit_record "target_kernel_commits_alone_$tag" $ok \
    "record '$(record)'; $to: $(grep -E '^event|^state|^epoch' "$work/events-$tag.log" | tr '\n' ' ')"

  entries=$(routing | grep -E '^ +[0-9]+: .* -> ')
  ok=0
  echo "$entries" | grep -q -- "-> $to" && ! echo "$entries" | grep -q -- "-> $from" && ok=1
  junit_record "interrupts_follow_the_owner_$tag" $ok "$(echo "$entries" | tr -s ' ' | tr '\n' ';')"
}
kernel_handoff vm-a vm-b 2
sleep 2
kernel_handoff vm-b vm-a 3

sleep 2
kill -INT "$traffic_pid"
wait "$traffic_pid"
missed=$(($(rx_missed) - missed_before))
f=$work/traffic.json
sent=$(json "$f" "r['inbound']['sent']" 2>/dev/null)
lost=$(json "$f" "r['outbound']['lost']" 2>/dev/null)
dup=$(json "$f" "r['outbound']['duplicated']" 2>/dev/null)
ooo=$(json "$f" "r['outbound']['out_of_order']" 2>/dev/null)
blackout=$(json "$f" "' '.join('%.0f' % h['blackout_us'] for h in r['outbound']['handovers'])" 2>/dev/null)
ok=0
[ "${sent:-0}" -gt 0 ] && [ -n "$lost" ] && [ "$lost" -le "$missed" ] && [ "$dup" = 0 ] &&
  [ "$ooo" = 0 ] && ok=1
junit_record traffic_exactly_once_in_order $ok \
  "sent ${sent:-?} at $pps/s, lost ${lost:-?} (NIC missed $missed), duplicated ${dup:-?}, out of order ${ooo:-?}; blackout us per handover: ${blackout:-?}"
echo "NH_RESULT kernel_commit_blackout_us=${blackout:-?}"

ctl "$ctl_a" dmesg >"$work/dmesg-vm-a.log" 2>&1
ctl "$ctl_b" dmesg >"$work/dmesg-vm-b.log" 2>&1
bad=$(cat "$work"/dmesg-vm-*.log | grep -E 'WARNING:|BUG:|Call Trace|hung_task|blocked for more than' | head -n 5)
junit_record no_warning "$([ -z "$bad" ] && echo 1 || echo 0)" "${bad:-no warning in either guest}"

junit_write tests/vm/kernel_commit_vm_test
echo "kernel_commit_vm_test: $JUNIT_CASES properties, $JUNIT_FAILURES failed, $(($(date +%s) - test_start))s wall"
[ "$JUNIT_FAILURES" -ne 0 ] && show_logs
[ "$JUNIT_FAILURES" -eq 0 ]
