#!/bin/bash
# VM proof of the kernel hook on the real e1000e driver (QEMU TCG, q35).
#
# Builds the module against the installed Debian headers and a VM image with
# it, nichandoverd, nicctl, nh-arbiter and nhhookctl, starts a host-side traffic peer on a unix socket in a
# temporary directory (the NIC's only link: QEMU `-netdev stream`), boots the
# guest with tests/vm/quiesce_scenario.sh (the long quiesce and the resume go
# through nicctl and the daemon's Linux backend), and checks what the guest
# measured.
# One JUnit testcase per property goes to $XML_OUTPUT_FILE.
#
# Outside Bazel: tests/vm/quiesce_vm_test.sh (needs the binaries built:
# NH_NHHOOKCTL, NH_STREAM_PEER, NH_NICHANDOVERD, NH_NICCTL, NH_ARBITER_TOOL
# point at them).
set -uo pipefail

if [ -n "${TEST_SRCDIR:-}" ]; then
  root=$TEST_SRCDIR/nichandover
else
  root=$(cd "$(dirname "$0")/../.." && pwd)
fi
nhhookctl=${NH_NHHOOKCTL:-$root/hook/client/nhhookctl}
stream_peer=${NH_STREAM_PEER:-$root/tests/vm/stream_peer}
nichandoverd=${NH_NICHANDOVERD:-$root/daemon/nichandoverd}
nicctl=${NH_NICCTL:-$root/cli/nicctl}
arbiter_tool=${NH_ARBITER_TOOL:-$root/daemon/platform/shared_file/nh-arbiter}
xml=${XML_OUTPUT_FILE:-/dev/null}
artifacts=${TEST_UNDECLARED_OUTPUTS_DIR:-}
vm_deadline=${NH_VM_DEADLINE_SECONDS:-300}

# Unix socket paths are limited to 108 bytes: Bazel's TEST_TMPDIR is too deep.
work=$(mktemp -d "${TMPDIR:-/tmp}/nhvm.XXXXXX")
qemu_pid="" peer_pid=""
cleanup() {
  [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null
  [ -n "$peer_pid" ] && kill "$peer_pid" 2>/dev/null
  [ -n "$qemu_pid" ] && wait "$qemu_pid" 2>/dev/null
  [ -n "$peer_pid" ] && wait "$peer_pid" 2>/dev/null
  if [ -n "$artifacts" ]; then
    cp "$work"/*.log "$artifacts"/ 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail_setup() {
  echo "quiesce_vm_test: $*" >&2
  cat >"$xml" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="1" failures="1" errors="0"><testsuite name="tests/vm/quiesce_vm_test" tests="1" failures="1" errors="0">
<testcase name="vm_setup" classname="tests.vm.quiesce"><failure message="setup failed">$(echo "$*" | sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g')</failure></testcase>
</testsuite></testsuites>
XML
  exit 1
}

"$root/tools/build-kmod" "$work/ko" >"$work/build.log" 2>&1 ||
  fail_setup "module build failed: $(tail -n 20 "$work/build.log")"
"$root/tools/build-vm-image" --out "$work/img" --module "$work/ko/nichandover_hook.ko" \
  --bin "$nhhookctl" --bin "$nichandoverd" --bin "$nicctl" --bin "$arbiter_tool" --scenario "quiesce=$root/tests/vm/quiesce_scenario.sh" \
  >>"$work/build.log" 2>&1 || fail_setup "image build failed: $(tail -n 20 "$work/build.log")"

sock=$work/peer.sock
"$stream_peer" "$sock" "$work/peer.log" &
peer_pid=$!
for _ in $(seq 1 50); do
  [ -S "$sock" ] && break
  sleep 0.1
done
[ -S "$sock" ] || fail_setup "stream_peer did not listen on $sock"

start=$(date +%s)
qemu-system-x86_64 -machine q35 -accel tcg -m 512 -smp 2 -nographic -no-reboot \
  -kernel "$work/img/vmlinuz" -initrd "$work/img/initramfs.cpio.gz" \
  -append "console=ttyS0 panic=-1 quiet nh_scenario=quiesce" \
  -device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1 \
  -netdev "stream,id=n0,server=off,addr.type=unix,addr.path=$sock" \
  -device e1000e,netdev=n0,id=nic0,bus=rp1,mac=52:54:00:12:34:56,romfile= \
  </dev/null >"$work/console.log" 2>&1 &
qemu_pid=$!
while kill -0 "$qemu_pid" 2>/dev/null; do
  if [ $(($(date +%s) - start)) -ge "$vm_deadline" ]; then
    echo "quiesce_vm_test: guest still running after ${vm_deadline}s, killing QEMU" >&2
    kill "$qemu_pid"
    break
  fi
  sleep 1
done
wait "$qemu_pid" 2>/dev/null
qemu_pid=""
echo "quiesce_vm_test: guest ran $(($(date +%s) - start))s wall"
# QEMU closed the stream: the peer exits on its own.
for _ in $(seq 1 50); do kill -0 "$peer_pid" 2>/dev/null || break; sleep 0.1; done
kill "$peer_pid" 2>/dev/null
wait "$peer_pid" 2>/dev/null
peer_pid=""

console=$work/console.log
tr -d '\r' <"$console" >"$work/console.clean.log"
sed -n 's/^NH_EVIDENCE //p' "$work/console.clean.log" >"$work/evidence.log"
get() { sed -n "s/^$1=//p" "$work/evidence.log" | tail -n1; }
num() { local v; v=$(get "$1"); [[ "$v" =~ ^[0-9]+$ ]] && echo "$v" || echo -1; }
peer_after_resume=$(grep -c 'icmp-echo dst=10.0.2.3' "$work/peer.log")

# --- the properties
cases=() failures=0 body=""
# check NAME CONDITION DETAIL: CONDITION is shell code (all of it must hold),
# evaluated here so that a failing part can never be dropped by quoting.
check() {
  local name=$1 condition=$2 detail=$3
  cases+=("$name")
  detail=$(echo "$detail" | sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g; s/"/\&quot;/g')
  if eval "$condition"; then
    echo "PASS $name: $detail"
    body+="<testcase name=\"$name\" classname=\"tests.vm.quiesce\"/>"$'\n'
  else
    echo "FAIL $name: $detail"
    failures=$((failures + 1))
    body+="<testcase name=\"$name\" classname=\"tests.vm.quiesce\"><failure message=\"$detail\"/></testcase>"$'\n'
  fi
}

check guest_scenario_completed \
  '[ "$(get done)" = 1 ] && [ "$(get quiesce_exit)" = 0 ] && [ "$(get resume_exit)" = 0 ]' \
  "done=$(get done) quiesce_exit=$(get quiesce_exit) resume_exit=$(get resume_exit) carrier=$(get carrier) ping_before=$(get ping_before)"
check daemon_quiesces_and_resumes_through_nicctl \
  '[ "$(get arbiter_create_exit)" = 0 ] && [ "$(get daemon_up)" = 1 ] && [ "$(get daemon_owner)" = "vm0 (active)" ] && [ "$(get quiesce_exit)" = 0 ] && [ "$(get quiesce_said)" = 1 ] && [ "$(get hook_state)" = quiesced ] && [ "$(get hook_epoch)" = 1 ] && [ "$(get requiesce_exit)" = 0 ] && [ "$(get state_after_requiesce)" = quiesced ] && [ "$(get resume_exit)" = 0 ] && [ "$(get resume_said)" = 1 ] && [ "$(get state_after_resume)" = running ]' \
  "daemon up=$(get daemon_up) owner '$(get daemon_owner)'; nicctl nic quiesce exit=$(get quiesce_exit) (said: $(get quiesce_said)), hook state=$(get hook_state) epoch=$(get hook_epoch); again exit=$(get requiesce_exit) state=$(get state_after_requiesce); nicctl nic resume exit=$(get resume_exit) (said: $(get resume_said)) state=$(get state_after_resume)"
check quiesced_longer_than_tx_watchdog \
  '[ "$(num quiesced_seconds)" -gt 5 ]' "quiesced for $(get quiesced_seconds)s (e1000e watchdog: 5s)"
check no_start_xmit_while_quiesced \
  '[ "$(num quiesced_start_xmit_events)" -eq 0 ] && [ "$(num hook_xmits_while_quiesced)" -eq 0 ]' \
  "tracefs net_dev_start_xmit=$(get quiesced_start_xmit_events) module xmits_while_quiesced=$(get hook_xmits_while_quiesced)"
check no_napi_poll_while_quiesced \
  '[ "$(num quiesced_napi_poll_events)" -eq 0 ] && [ "$(num hook_polls_while_quiesced)" -eq 0 ] && [ "$(num hook_napi_count)" -gt 0 ]' \
  "tracefs napi_poll=$(get quiesced_napi_poll_events) module polls_while_quiesced=$(get hook_polls_while_quiesced) napi_disabled=$(get hook_napi_count)"
check xmits_held_at_the_gate \
  '[ "$(num hook_held_xmits)" -gt 0 ] && [ "$(get hook_state)" = quiesced ]' \
  "held_xmits=$(get hook_held_xmits) state=$(get hook_state) (ping kept sending while quiesced)"
check interface_counters_frozen_while_quiesced \
  '[ "$(num quiesced_tx_packets_delta)" -eq 0 ] && [ "$(num quiesced_rx_packets_delta)" -eq 0 ]' \
  "tx_packets delta=$(get quiesced_tx_packets_delta) rx_packets delta=$(get quiesced_rx_packets_delta)"
check vectors_masked_while_quiesced \
  '[ "$(num hook_vectors_masked)" -gt 0 ] && [ "$(num quiesced_irq_delta)" -eq 0 ]' \
  "vectors_masked=$(get hook_vectors_masked) interrupts while quiesced=$(get quiesced_irq_delta)"
check bql_inflight_zero_after_drain \
  '[ "$(num bql_inflight_after_drain)" -eq 0 ]' "byte_queue_limits/inflight=$(get bql_inflight_after_drain)"
check no_watchdog_timeout_or_adapter_reset \
  '[ "$(num watchdog_timeouts)" -eq 0 ] && [ "$(num adapter_resets)" -eq 0 ]' \
  "'transmit queue timed out' lines=$(get watchdog_timeouts) 'reset adapter' lines=$(get adapter_resets)"
check no_kernel_warnings \
  '[ "$(num kernel_warnings)" -eq 0 ]' "WARNING/BUG/Call Trace/hung_task lines in dmesg=$(get kernel_warnings)"
check stale_epoch_refused \
  '[ "$(get stale_resume_exit)" = 1 ] && [ "$(get state_after_stale)" = quiesced ]' \
  "resume with epoch 0 exit=$(get stale_resume_exit), state after=$(get state_after_stale)"
check start_xmit_and_napi_poll_after_resume \
  '[ "$(num resumed_start_xmit_events)" -gt 0 ] && [ "$(num resumed_napi_poll_events)" -gt 0 ]' \
  "tracefs net_dev_start_xmit=$(get resumed_start_xmit_events) napi_poll=$(get resumed_napi_poll_events) in 2s"
check peer_receives_traffic_after_resume \
  '[ "$peer_after_resume" -gt 0 ] && [ "$(num ping_after)" -gt 0 ]' \
  "peer saw $peer_after_resume echo requests to 10.0.2.3 (sent only after resume); guest got $(get ping_after)/5 replies"
check affinity_move_cpu0_to_cpu1 \
  '[ "$(get reroute_cpu0_exit)" = 0 ] && [ "$(num cpu0_irq_delta_before_move)" -gt 0 ] && [ "$(get reroute_affinity_exit)" = 0 ] && [ "$(get msi_cpus_after_move)" = "1 " ] && [ "$(num cpu1_irq_delta_after_move)" -gt 0 ] && [ "$(num cpu0_irq_delta_after_move)" -eq 0 ]' \
  "on CPU0: +$(get cpu0_irq_delta_before_move); reroute exit=$(get reroute_affinity_exit) vectors on CPU '$(get msi_cpus_after_move)'; then CPU0 +$(get cpu0_irq_delta_after_move) CPU1 +$(get cpu1_irq_delta_after_move)"
check raw_rewrite_keeps_interrupting \
  '[ "$(get reroute_raw_exit)" = 0 ] && [ "$(num raw_vectors_written)" -gt 0 ] && [ "$(get raw_readback_equal)" = 1 ] && [ "$(num raw_irq_delta)" -gt 0 ] && [ "$(num ping_after_raw)" -gt 0 ]' \
  "exit=$(get reroute_raw_exit) vectors=$(get raw_vectors_written) ($(get raw_args)) read back equal=$(get raw_readback_equal) interrupts after=$(get raw_irq_delta) replies=$(get ping_after_raw)/5"
check release_then_attach_with_new_epoch \
  '[ "$(get release_exit)" = 0 ] && [ "$(get state_after_release)" = released ] && [ "$(get resume_released_exit)" = 1 ] && [ "$(get attach_exit)" = 0 ] && [ "$(get state_after_attach)" = running ] && [ "$(num ping_after_attach)" -gt 0 ]' \
  "release exit=$(get release_exit) state=$(get state_after_release); resume of a released device exit=$(get resume_released_exit); attach exit=$(get attach_exit) state=$(get state_after_attach) replies=$(get ping_after_attach)/3"
check interface_down_while_quiesced_does_not_hang \
  '[ "$(get down_while_quiesced_returned)" = 1 ] && [ "$(get state_after_down)" = running ] && [ "$(get quiesce_down_exit)" = 1 ]' \
  "ip link down returned=$(get down_while_quiesced_returned) state after=$(get state_after_down) quiesce of a down interface exit=$(get quiesce_down_exit) (must be refused)"
check module_unload_while_quiesced_reopens \
  '[ "$(get state_before_rmmod)" = quiesced ] && [ "$(get rmmod_exit)" = 0 ] && [ "$(num ping_after_rmmod)" -gt 0 ]' \
  "state before=$(get state_before_rmmod) rmmod exit=$(get rmmod_exit) replies after=$(get ping_after_rmmod)/3"

{
  echo '<?xml version="1.0" encoding="UTF-8"?>'
  counts="tests=\"${#cases[@]}\" failures=\"$failures\" errors=\"0\""
  echo "<testsuites $counts><testsuite name=\"tests/vm/quiesce_vm_test\" $counts>"
  printf '%s' "$body"
  echo '</testsuite></testsuites>'
} >"$xml"

if [ "$failures" -ne 0 ]; then
  echo "--- guest console"
  cat "$work/console.clean.log"
  echo "--- peer"
  tail -n 20 "$work/peer.log"
fi
echo "${#cases[@]} properties, $failures failed"
[ "$failures" -eq 0 ]
