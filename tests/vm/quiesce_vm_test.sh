#!/bin/bash
# VM proof of the kernel hook on the real e1000e driver (QEMU TCG, q35).
#
# Builds the module against the installed Debian headers and a VM image with
# it, nichandoverd, nicctl, nh-arbiter, nhhookctl, setpriv and ethtool, starts
# a host-side traffic peer on a unix socket in a temporary directory (the
# NIC's only link: QEMU `-netdev stream`; a second e1000e sits on an empty
# QEMU hub), boots the guest with tests/vm/quiesce_scenario.sh, and checks
# what the guest measured: the daemon's quiesce/resume through nicctl, then
# the module's safe mode, locks, fault knobs, REROUTE refusals, capabilities,
# and what a quiesced and a released e1000e survive.
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
  --bin "$nhhookctl" --bin "$nichandoverd" --bin "$nicctl" --bin "$arbiter_tool" \
  --bin "$(command -v setpriv)" --bin "$(command -v ethtool || echo /usr/sbin/ethtool)" --scenario "quiesce=$root/tests/vm/quiesce_scenario.sh" \
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
  -device pcie-root-port,id=rp2,bus=pcie.0,chassis=2,slot=2 \
  -netdev hubport,id=n1,hubid=1 \
  -device e1000e,netdev=n1,id=nic1,bus=rp2,mac=52:54:00:12:34:57,romfile= \
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
peer_after_resume=$(grep -c 'icmp-echo dst=169.254.50.3' "$work/peer.log")

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
# bounded NAME: the command ended in time (the guest's `bounded` helper).
returned() { [ "$(get "$1_returned")" = 1 ]; }

check guest_scenario_completed \
  '[ "$(get done)" = 1 ] && [ "$(get quiesce_exit)" = 0 ] && [ "$(get resume_exit)" = 0 ]' \
  "done=$(get done) quiesce_exit=$(get quiesce_exit) resume_exit=$(get resume_exit) carrier=$(get carrier) ping_before=$(get ping_before)"
check daemon_quiesces_and_resumes_through_nicctl \
  '[ "$(get arbiter_create_exit)" = 0 ] && [ "$(get daemon_up)" = 1 ] && [ "$(get daemon_owner)" = "vm0 (active)" ] && [ "$(get quiesce_exit)" = 0 ] && [ "$(get quiesce_said)" = 1 ] && [ "$(get hook_state)" = quiesced ] && [ "$(get hook_epoch)" = 1 ] && [ "$(get requiesce_exit)" = 0 ] && [ "$(get state_after_requiesce)" = quiesced ] && [ "$(get resume_exit)" = 0 ] && [ "$(get resume_said)" = 1 ] && [ "$(get state_after_resume)" = running ]' \
  "daemon up=$(get daemon_up) owner '$(get daemon_owner)'; nicctl nic quiesce exit=$(get quiesce_exit) (said: $(get quiesce_said)), hook state=$(get hook_state) epoch=$(get hook_epoch); again exit=$(get requiesce_exit) state=$(get state_after_requiesce); nicctl nic resume exit=$(get resume_exit) (said: $(get resume_said)) state=$(get state_after_resume)"
check quiesced_longer_than_tx_watchdog \
  '[ "$(num quiesced_seconds)" -gt 5 ]' "quiesced for $(get quiesced_seconds)s (e1000e watchdog: 5s)"
check no_start_xmit_while_quiesced \
  '[ "$(num quiesced_start_xmit_events)" -eq 0 ] && [ "$(num quiesced_tx_packets_delta)" -eq 0 ]' \
  "tracefs net_dev_start_xmit=$(get quiesced_start_xmit_events) tx_packets delta=$(get quiesced_tx_packets_delta)"
check xmits_held_at_the_qdisc \
  '[ "$(num hook_held_xmits)" -gt 0 ] && [ "$(get hook_state)" = quiesced ]' \
  "held_xmits=$(get hook_held_xmits) state=$(get hook_state) (ping kept sending while quiesced)"
check no_napi_taken_no_vector_masked \
  '[ "$(num hook_napi_count)" -eq 0 ] && [ "$(num hook_vectors_masked)" -eq 0 ]' \
  "napi_count=$(get hook_napi_count) vectors_masked=$(get hook_vectors_masked) (safe mode: the driver keeps its NAPI and interrupts)"
check bql_inflight_zero_after_drain \
  '[ "$(num bql_inflight_after_drain)" -eq 0 ]' "byte_queue_limits/inflight=$(get bql_inflight_after_drain)"
check no_watchdog_timeout_or_adapter_reset \
  '[ "$(num watchdog_timeouts)" -eq 0 ] && [ "$(num adapter_resets)" -eq 0 ]' \
  "'transmit queue timed out' lines=$(get watchdog_timeouts) 'reset adapter' lines=$(get adapter_resets)"
check no_kernel_warnings_or_hung_tasks \
  '[ "$(num kernel_warnings)" -eq 0 ]' "WARNING/BUG/Call Trace/hung task lines in dmesg=$(get kernel_warnings)"
check stale_epoch_refused \
  '[ "$(get stale_resume_exit)" = 1 ] && [ "$(get state_after_stale)" = quiesced ]' \
  "resume with epoch 0 exit=$(get stale_resume_exit), state after=$(get state_after_stale)"
check traffic_after_resume \
  '[ "$(num resumed_start_xmit_events)" -gt 0 ] && [ "$peer_after_resume" -gt 0 ] && [ "$(num ping_after)" -gt 0 ]' \
  "net_dev_start_xmit in 2s=$(get resumed_start_xmit_events); peer saw $peer_after_resume echo requests to .3 (sent only after resume); replies $(get ping_after)/5"
check affinity_move_cpu0_to_cpu1 \
  '[ "$(get reroute_cpu0_exit)" = 0 ] && [ "$(num cpu0_irq_delta_before_move)" -gt 0 ] && [ "$(get reroute_affinity_exit)" = 0 ] && [ "$(get msi_cpus_after_move)" = "1 " ] && [ "$(num cpu1_irq_delta_after_move)" -gt 0 ] && [ "$(num cpu0_irq_delta_after_move)" -eq 0 ]' \
  "on CPU0: +$(get cpu0_irq_delta_before_move); reroute exit=$(get reroute_affinity_exit) vectors on CPU '$(get msi_cpus_after_move)'; then CPU0 +$(get cpu0_irq_delta_after_move) CPU1 +$(get cpu1_irq_delta_after_move)"
check status_and_rtnl_answer_while_another_quiesce_waits \
  '[ "$(get spare_state_while_waiting)" = gated ] && [ "$(get status_while_other_waits_exit)" = 0 ] && [ "$(get rtnl_user_while_other_waits_exit)" = 0 ] && [ "$(get other_quiesce_still_waiting)" = 1 ] && [ "$(get spare_quiesce_exit)" = 0 ] && [ "$(num spare_quiesce_took_cs)" -ge 400 ] && [ "$(get spare_state_after_resume)" = running ]' \
  "spare state while its quiesce waits=$(get spare_state_while_waiting); NIC status exit=$(get status_while_other_waits_exit), ip addr add exit=$(get rtnl_user_while_other_waits_exit) after $(get status_answered_after_cs) cs, spare quiesce still waiting=$(get other_quiesce_still_waiting); spare quiesce exit=$(get spare_quiesce_exit) after $(get spare_quiesce_took_cs) cs"
check quiesce_fault_knobs_leave_device_running_here \
  '[ "$(get fault_quiesce1_exit)" = 1 ] && [ "$(get fault_quiesce1_state)" = running ] && [ "$(get fault_quiesce1_epoch)" = 2 ] && [ "$(num fault_quiesce1_ping)" -gt 0 ] && [ "$(get fault_quiesce2_exit)" = 1 ] && [ "$(get fault_quiesce2_state)" = running ] && [ "$(get fault_quiesce2_epoch)" = 2 ] && [ "$(num fault_quiesce2_ping)" -gt 0 ]' \
  "before the gate: exit=$(get fault_quiesce1_exit) state=$(get fault_quiesce1_state) epoch=$(get fault_quiesce1_epoch) replies=$(get fault_quiesce1_ping)/3; after the drain: exit=$(get fault_quiesce2_exit) state=$(get fault_quiesce2_state) epoch=$(get fault_quiesce2_epoch) replies=$(get fault_quiesce2_ping)/3"
check raw_reroute_refusals_change_nothing \
  '[ "$(get raw_refused)" = 8/8 ] && [ "$(num raw_rawio_refusal_says)" -gt 0 ] && [ "$(get raw_refusals_changed_nothing)" = 1 ] && [ "$(get epoch_after_refusals)" = 4 ] && [ "$(get raw_quiesce_state)" = quiesced ]' \
  "refused $(get raw_refused) (running device, vector 0x10, NMI, level, remappable, stale epoch, foreign device, no CAP_SYS_RAWIO); messages unchanged=$(get raw_refusals_changed_nothing) epoch=$(get epoch_after_refusals)"
check raw_rewrite_on_quiesced_device_keeps_interrupting \
  '[ "$(get reroute_raw_exit)" = 0 ] && [ "$(num raw_vectors_written)" -gt 0 ] && [ "$(get raw_readback_equal)" = 1 ] && [ "$(num raw_irq_delta)" -gt 0 ] && [ "$(num ping_after_raw)" -gt 0 ]' \
  "exit=$(get reroute_raw_exit) vectors=$(get raw_vectors_written) ($(get raw_args)) read back equal=$(get raw_readback_equal) interrupts after resume=$(get raw_irq_delta) replies=$(get ping_after_raw)/5"
check every_command_refused_without_cap_net_admin \
  '[ "$(get no_net_admin_refused)" = 8/8 ] && [ "$(num no_net_admin_says)" -gt 0 ] && [ "$(get state_after_no_net_admin)" = running ]' \
  "refused $(get no_net_admin_refused) (status read-msi quiesce resume release attach reroute-cpu reroute-raw), says EPERM: $(get no_net_admin_says), state after=$(get state_after_no_net_admin)"
check quiesced_device_survives_ethtool_and_rmmod \
  '[ "$(get q_state)" = quiesced ] && returned q_ethtool_g && [ "$(get q_ethtool_g_exit)" = 0 ] && returned q_ethtool_l && [ "$(get q_state_after_ethtool)" = quiesced ] && returned q_rmmod_driver && [ "$(get q_rmmod_driver_exit)" != 0 ] && returned q_rmmod_hook && [ "$(get q_rmmod_hook_exit)" != 0 ] && [ "$(get q_state_after_rmmods)" = quiesced ] && [ "$(num q_ping_after_ethtool)" -gt 0 ]' \
  "state=$(get q_state); ethtool -G returned=$(get q_ethtool_g_returned) exit=$(get q_ethtool_g_exit); ethtool -L returned=$(get q_ethtool_l_returned) exit=$(get q_ethtool_l_exit) (e1000e: unsupported); state=$(get q_state_after_ethtool); rmmod e1000e exit=$(get q_rmmod_driver_exit) rmmod hook exit=$(get q_rmmod_hook_exit) (both refused, in use); state=$(get q_state_after_rmmods); replies after resume=$(get q_ping_after_ethtool)/3"
check quiesced_device_link_down_and_unbind_do_not_hang \
  'returned q_link_down && [ "$(get q_link_down_exit)" = 0 ] && [ "$(get q_state_after_down)" = running ] && [ "$(get q_quiesce_down_exit)" = 1 ] && returned q_unbind && [ "$(get q_unbind_exit)" = 0 ] && [ "$(get q_state_after_unbind)" = running ] && [ "$(num q_ping_after_rebind)" -gt 0 ]' \
  "ip link down returned=$(get q_link_down_returned) state=$(get q_state_after_down) quiesce of a down interface exit=$(get q_quiesce_down_exit) (refused); unbind returned=$(get q_unbind_returned) exit=$(get q_unbind_exit) state=$(get q_state_after_unbind); replies after rebind=$(get q_ping_after_rebind)/3"
check release_is_the_drivers_close_and_unbind \
  '[ "$(get release_exit)" = 0 ] && [ "$(get r_state)" = released ] && [ -z "$(get r_netdev)" ] && [ -z "$(get r_driver)" ] && [ "$(get r_override)" = nichandover-released ] && [ "$(get r_bus_master)" = 0 ] && [ "$(get r_vectors_left)" = 0 ]' \
  "release exit=$(get release_exit) state=$(get r_state) netdev='$(get r_netdev)' driver='$(get r_driver)' driver_override=$(get r_override) bus master=$(get r_bus_master) vectors left=$(get r_vectors_left)"
check released_device_never_reopened_here \
  'returned r_bind && [ "$(get r_bind_exit)" != 0 ] && returned r_rmmod_driver && [ "$(get r_rmmod_driver_exit)" = 0 ] && [ -z "$(get r_driver_after_reload)" ] && returned r_rmmod_hook && [ "$(get r_rmmod_hook_exit)" != 0 ] && [ "$(get r_resume_exit)" = 1 ] && [ "$(get r_quiesce_exit)" = 1 ] && [ "$(get r_attach_same_epoch_exit)" = 1 ] && [ "$(get r_state_after_refusals)" = released ] && [ -z "$(get r_netdev_after_refusals)" ] && [ "$(get r_bus_master_at_end)" = 0 ]' \
  "bind exit=$(get r_bind_exit); rmmod e1000e exit=$(get r_rmmod_driver_exit), driver after reload='$(get r_driver_after_reload)'; rmmod hook exit=$(get r_rmmod_hook_exit); resume exit=$(get r_resume_exit) quiesce exit=$(get r_quiesce_exit) attach at the same epoch exit=$(get r_attach_same_epoch_exit); state=$(get r_state_after_refusals) netdev='$(get r_netdev_after_refusals)' bus master=$(get r_bus_master_at_end)"
check attach_fault_knobs_leave_device_released \
  '[ "$(get fault_attach1_exit)" = 1 ] && [ "$(get fault_attach1_state)" = released ] && [ -z "$(get fault_attach1_netdev)" ] && [ "$(get fault_attach1_epoch)" = 7 ] && [ "$(get fault_attach2_exit)" = 1 ] && [ "$(get fault_attach2_state)" = released ] && [ -z "$(get fault_attach2_netdev)" ] && [ "$(get fault_attach2_epoch)" = 7 ]' \
  "before the bind: exit=$(get fault_attach1_exit) state=$(get fault_attach1_state) netdev='$(get fault_attach1_netdev)' epoch=$(get fault_attach1_epoch); after the bind: exit=$(get fault_attach2_exit) state=$(get fault_attach2_state) netdev='$(get fault_attach2_netdev)' epoch=$(get fault_attach2_epoch)"
check attach_with_new_epoch_binds_and_runs \
  '[ "$(get attach_exit)" = 0 ] && [ "$(get state_after_attach)" = running ] && [ "$(get driver_after_attach)" = e1000e ] && [ "$(num ping_after_attach)" -gt 0 ] && [ "$(get rmmod_exit)" = 0 ]' \
  "attach exit=$(get attach_exit) state=$(get state_after_attach) driver=$(get driver_after_attach) replies=$(get ping_after_attach)/3; rmmod of the idle module exit=$(get rmmod_exit)"

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
