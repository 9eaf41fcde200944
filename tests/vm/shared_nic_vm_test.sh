#!/bin/bash
# The product's core act between two real Linux kernels (issue 13): two QEMU
# guests are two OS nodes of the simulated machine (tests/vm/ivshmem_guest.sh)
# and share its NIC. Each guest runs nichandover_hook, nh_simnic (bound all the
# time; only the record's owner runs the rings), frame_echo on the NIC's
# interface, and nichandoverd on the linux backend with the records in the
# machine's memory. The host runs the machine and nh-sim-traffic --echo:
# sequence-numbered frames through the NIC to the owning guest and back.
# nicctl on the host hands the NIC over by rewriting its MSI-X table, with the
# ring state carried in Commit/Attach.
#
# One JUnit testcase per property in $XML_OUTPUT_FILE:
#   handovers_both_ways          NH_SHARED_ROUNDS (10) round trips vm-a -> vm-b -> vm-a,
#                                each nicctl handover exits 0 and both daemons agree
#   interrupts_follow_the_owner  after each move the NIC's MSI-X entries name the
#                                owner's APIC and the machine delivers only there
#   traffic_exactly_once_in_order  0 lost, 0 duplicated, 0 reordered round trips over
#                                all handovers; blackout per handover (NH_RESULT)
#   kill_{source,target}_{before_handoff,after_handoff,after_commit}
#                                kill -9 of that daemon at that point, restart:
#                                one owner, interrupts there, traffic flows, nothing lost
#   refusing_target_rolls_back   a target without the driver refuses; vm-a keeps
#                                the NIC, nothing lost
#   no_carrier_change_no_reset   no carrier change, reset, warning or TX timeout in
#                                either guest's kernel log
#
# Outside Bazel: tests/vm/shared_nic_vm_test.sh after building the binaries
# (NH_BIN_DIR=bazel-bin). NH_SHARED_ROUNDS and NH_SHARED_PPS set the load;
# NH_SHARED_BENCH=1 runs only the handovers (bench/vm_blackout_bench.sh);
# NH_KEEP_WORK=1 keeps the logs.
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
nicctl=$bin/cli/nicctl
rounds=${NH_SHARED_ROUNDS:-10}
pps=${NH_SHARED_PPS:-2000}
nic=0000:03:00.0
test_start=$(date +%s)

# Unix socket paths are limited to 108 bytes: Bazel's TEST_TMPDIR is too deep.
work=$(mktemp -d "${TMPDIR:-/tmp}/nhshared.XXXXXX")
memory=/dev/shm/$(basename "$work")-machine # ivshmem wants tmpfs
pids=()
traffic_pid=""
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  if [ -n "$artifacts" ]; then cp "$work"/*.log "$work"/*.json "$artifacts"/ 2>/dev/null; fi
  # NH_KEEP_WORK=1 keeps the logs (outside Bazel, for a look).
  [ -n "${NH_KEEP_WORK:-}" ] && echo "shared_nic_vm_test: logs kept in $work" || rm -rf "$work"
  rm -f "$memory"
}
trap cleanup EXIT

show_logs() {
  local f
  for f in "$work"/*.log; do
    [ -f "$f" ] && { echo "--- $f"; tail -n 40 "$f"; }
  done
}
collect_guest_logs() {
  ctl "$ctl_a" "dmesg" >"$work/dmesg-vm-a.log" 2>&1
  ctl "$ctl_b" "dmesg" >"$work/dmesg-vm-b.log" 2>&1
  ctl "$ctl_a" "cat /tmp/nichandoverd.log" >"$work/nichandoverd-vm-a.log" 2>&1
  ctl "$ctl_b" "cat /tmp/nichandoverd.log" >"$work/nichandoverd-vm-b.log" 2>&1
}
fail_setup() {
  junit_record setup 0 "$1"
  [ -n "${ctl_a:-}" ] && collect_guest_logs
  show_logs
  junit_write tests/vm/shared_nic_vm_test
  sleep "${NH_KEEP_SECONDS:-0}"
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

# --- modules, image (a first image fetches the kernel package if it must)
"$NH_ROOT/tools/build-simnic" "$work/ko" >"$work/build.log" 2>&1 ||
  fail_setup "module build failed: $(tail -n 20 "$work/build.log")"
image() {
  ivshmem_guest_image "$work/img" --module "$work/ko/nichandover_hook.ko" \
    --module "$work/ko/nh_simnic.ko" "$@" \
    --bin "$bin/tests/vm/frame_echo" --bin "$bin/daemon/nichandoverd" --bin "$nicctl" \
    --bin "$bin/hook/client/nhhookctl" \
    --scenario "shared=$NH_ROOT/tests/vm/shared_nic_guest.sh" \
    --scenario "daemon-lib=$NH_ROOT/tests/vm/guest_daemon.sh"
}
e1000=$(find_e1000) || { image && e1000=$(find_e1000); } ||
  fail_setup "no e1000.ko: $(tail -n 5 "$work/img.log")"
# e1000 first: the management NIC must exist before the scenario runs.
image --module "$e1000" || fail_setup "image build failed: $(tail -n 5 "$work/img.log")"
echo "shared_nic_vm_test: images built in $(($(date +%s) - test_start))s"

# --- the machine: two guest nodes, vm-a owns the NIC
"$machine_bin" create --path "$memory" --node vm-a:0 --node vm-b:1 --owner vm-a --bdf "$nic" \
  --ring-size 4096 >"$work/create.log" 2>&1 || fail_setup "machine create: $(cat "$work/create.log")"
"$machine_bin" run --path "$memory" --ivshmem-dir "$work" >"$work/machine.log" 2>&1 &
pids+=($!)

port_a=$(free_port) ctl_a=$(free_port) port_b=$(free_port) ctl_b=$(free_port)
# Each guest serves PeerService on 10.0.2.15:7002, forwarded from peer_a/peer_b.
peer_a=$(free_port) peer_b=$(free_port)
# boot NAME PEER INDEX DAEMON_PORT CTL_PORT PEER_PORT OTHER_PEER_PORT
boot() {
  local name=$1 peer=$2 index=$3 dport=$4 cport=$5 lport=$6 pport=$7 letter=${1#vm-}
  IVSHMEM_GUEST_EXTRA=(
    -netdev "user,id=mgmt,restrict=on,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:$dport-10.0.2.15:7000,hostfwd=tcp:127.0.0.1:$cport-10.0.2.15:7001,hostfwd=tcp:127.0.0.1:$lport-10.0.2.15:7002,guestfwd=tcp:10.0.2.100:7101-cmd:$bin/vmhost/nh-relay tcp:127.0.0.1:$pport"
    -device "e1000,netdev=mgmt,addr=05.0,mac=52:54:00:00:00:0$letter,romfile="
  )
  ivshmem_guest_boot "$name" "$work/$name.sock" "$work/img" "$work/console-$name.log" \
    nh_scenario=shared "nh_peer=$peer" "nh_node_index=$index" "nh_apic=$index" "nh_nic=$nic" ||
    fail_setup "$name did not start"
  pids+=("$IVSHMEM_GUEST_PID")
}
boot vm-a vm-b 0 "$port_a" "$ctl_a" "$peer_a" "$peer_b"
boot vm-b vm-a 1 "$port_b" "$ctl_b" "$peer_b" "$peer_a"

# ctl PORT COMMAND: runs COMMAND in the guest, prints its output and rc=N.
ctl() {
  local fd
  exec {fd}<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf '%s\n' "$2" >&"$fd"
  timeout 60 cat <&"$fd"
  exec {fd}>&-
}
port_of() { [ "$1" = vm-a ] && echo "$port_a" || echo "$port_b"; }
ctl_of() { [ "$1" = vm-a ] && echo "$ctl_a" || echo "$ctl_b"; }
other() { [ "$1" = vm-a ] && echo vm-b || echo vm-a; }
wait_daemon() {
  local i
  for i in $(seq 1 "${NH_DAEMON_WAIT_TRIES:-360}"); do
    "$nicctl" --server "127.0.0.1:$1" --rpc-timeout 2s nics >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}
wait_daemon "$port_a" || fail_setup "vm-a's daemon did not answer"
wait_daemon "$port_b" || fail_setup "vm-b's daemon did not answer"
echo "shared_nic_vm_test: both daemons up at $(($(date +%s) - test_start))s"

# The machine's view: "STATE OWNER TARGET EPOCH RUNNING" of the record.
record() {
  "$machine_bin" show --path "$memory" 2>/dev/null |
    sed -n 's/.*record \([A-Z]*\) owner=\([^ ]*\) target=\([^ ]*\) epoch=\([0-9]*\), running on \([^ ]*\).*/\1 \2 \3 \4 \5/p' |
    head -n 1
}
# owner_epoch NODE: "OWNER EPOCH" of the NIC as that node's daemon reports it.
owner_epoch() {
  local json
  json=$("$nicctl" --server "127.0.0.1:$(port_of "$1")" --json nics 2>/dev/null | tr -d ' \n')
  echo "$(echo "$json" | sed -n 's/.*"ownership":{[^}]*"owner_node":"\([^"]*\)".*/\1/p') $(echo "$json" | sed -n 's/.*"ownership":{[^}]*"epoch":"*\([0-9]*\)"*.*/\1/p')"
}
# wait_record PATTERN SECONDS: until the record (see record()) matches PATTERN.
wait_record() {
  local i
  for ((i = 0; i < $2 * 20; i++)); do
    [[ "$(record)" =~ $1 ]] && return 0
    sleep 0.05
  done
  return 1
}
# MSI-X entries' destination APIC IDs as the machine decodes them, and
# per-node delivered interrupt counts: "APICS | DELIVERED".
routing() { "$machine_bin" show --path "$memory" 2>/dev/null; }
# interrupts_at NODE: the machine decodes every programmed MSI-X entry of the
# NIC as a message to NODE's APIC ("N: ... -> NODE"), none to the other node.
interrupts_at() {
  local entries
  entries=$(routing | grep -E '^ +[0-9]+: .* -> ')
  echo "$entries" | grep -q -- "-> $1" || return 1
  ! echo "$entries" | grep -q -- "-> $(other "$1")"
}

# settled NODE: the record is ACTIVE with NODE as owner and running on NODE,
# and both daemons say so.
settled() {
  local r
  r=$(record)
  [[ "$r" =~ ^ACTIVE\ $1\ .*\ $1$ ]] || return 1
  [ "$(owner_epoch vm-a)" = "$(owner_epoch vm-b)" ] || return 1
  [ "$(owner_epoch vm-a | cut -d' ' -f1)" = "$1" ]
}
wait_settled() {
  local i
  for ((i = 0; i < $2; i++)); do
    settled "$1" && return 0
    sleep 1
  done
  return 1
}

# --- a target without the driver refuses; vm-a keeps the NIC, nothing lost.
# First, while vm-b is on standby: a node that released the NIC holds its
# driver (the hook pins it, docs/hook.md), so only a standby driver can go.
refusal_case() {
  local out rc lost sent dup ok=0 removed
  "$traffic_bin" --machine "$memory" --echo --inbound-pps "$pps" --report "$work/refused.json" \
    >"$work/refused-traffic.log" 2>&1 &
  traffic_pid=$!
  sleep 1
  removed=$(ctl "$ctl_b" "nh-daemon stop; rmmod nh_simnic && echo removed; nh-daemon start")
  echo "$removed" >"$work/ctl-refuse.log"
  wait_daemon "$port_b" || fail_setup "vm-b's daemon did not come back without nh_simnic"
  out=$("$nicctl" --server "127.0.0.1:$port_a" handover "$nic" --to vm-b --timeout 60s 2>&1)
  rc=$?
  sleep 2
  kill -INT "$traffic_pid"
  wait "$traffic_pid"
  lost=$(json "$work/refused.json" "r['outbound']['lost']" 2>/dev/null)
  dup=$(json "$work/refused.json" "r['outbound']['duplicated']" 2>/dev/null)
  sent=$(json "$work/refused.json" "r['inbound']['sent']" 2>/dev/null)
  # vm-b no longer sees the NIC: the record and vm-a say who owns it (the
  # source's Restore and Resume may finish after nicctl reported the refusal).
  local kept=0 i
  for ((i = 0; i < 30; i++)); do
    if [[ "$(record)" =~ ^ACTIVE\ vm-a\ .*\ vm-a$ ]] &&
      [ "$(owner_epoch vm-a | cut -d' ' -f1)" = vm-a ] && interrupts_at vm-a; then
      kept=1
      break
    fi
    sleep 1
  done
  [[ $removed == *removed* ]] && [ $rc = 4 ] && [ $kept = 1 ] &&
    [ "${sent:-0}" -gt 0 ] && [ "$lost" = 0 ] && [ "$dup" = 0 ] && ok=1
  junit_record refusing_target_rolls_back $ok \
    "driver removed in vm-b: $([[ $removed == *removed* ]] && echo yes || echo no); vm-a kept and runs it: $([ $kept = 1 ] && echo yes || echo "no (vm-a says '$(owner_epoch vm-a)')"); nicctl exit $rc ($(echo "$out" | grep -m1 -iE 'refus|reason' | tr -s ' ')); record '$(record)'; traffic sent ${sent:-?}, lost ${lost:-?}, duplicated ${dup:-?}"
  ctl "$ctl_b" "nh-daemon stop; insmod /lib/modules/nh_simnic.ko; ip link set \$(ls /sys/bus/pci/devices/0000:00:01.0/net) up; killall frame_echo; frame_echo --interface \$(ls /sys/bus/pci/devices/0000:00:01.0/net) --node 1 --realtime 50 >/tmp/echo.log 2>&1 & nh-daemon start" >>"$work/ctl-refuse.log"
  wait_daemon "$port_b" || fail_setup "vm-b's daemon did not come back with nh_simnic"
}
json() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"; }
# Both daemons list the NIC (the hook's LIST, the record) before anything moves.
wait_settled vm-a 120 ||
  fail_setup "the daemons never agreed on the NIC: record '$(record)', vm-a '$(owner_epoch vm-a)', vm-b '$(owner_epoch vm-b)'"
[ -z "${NH_SHARED_BENCH:-}" ] && refusal_case

# --- traffic for the whole test; per-handover blackout from its report
"$traffic_bin" --machine "$memory" --echo --inbound-pps "$pps" --report "$work/traffic.json" \
  >"$work/traffic.log" 2>&1 &
traffic_pid=$!
pids+=("$traffic_pid")
sleep 2


# --- handovers both ways under traffic
moves=0 move_failures=0 irq_failures=0 detail_moves="" detail_irqs=""
from=vm-a
for ((r = 0; r < rounds * 2; r++)); do
  to=$(other "$from")
  t0=$(date +%s%N)
  out=$("$nicctl" --server "127.0.0.1:$(port_of "$from")" handover "$nic" --to "$to" --timeout 60s 2>&1)
  rc=$?
  t1=$(date +%s%N)
  echo "$out" >"$work/handover-$r.log"
  [ -n "${NH_SHARED_VERBOSE:-}" ] && echo "\$ nicctl handover $nic --to $to  (on $from)" && echo "$out"
  moves=$((moves + 1))
  if [ $rc != 0 ] || ! wait_settled "$to" 20; then
    move_failures=$((move_failures + 1))
    detail_moves+="move $r $from->$to: exit $rc, record '$(record)', vm-a '$(owner_epoch vm-a)', vm-b '$(owner_epoch vm-b)': $(echo "$out" | tail -n 3 | tr '\n' ' '); "
    break
  fi
  echo "NH_RESULT move=$r from=$from to=$to nicctl_ms=$(((t1 - t0) / 1000000))"
  if ! interrupts_at "$to"; then
    irq_failures=$((irq_failures + 1))
    detail_irqs+="after move $r to $to: $(routing | grep -iE 'entry|apic' | head -n 8 | tr '\n' ' '); "
  fi
  from=$to
done
junit_record handovers_both_ways "$([ $move_failures = 0 ] && echo 1 || echo 0)" \
  "$moves handovers, $move_failures failed; ${detail_moves:-both daemons agreed after each}"
junit_record interrupts_follow_the_owner "$([ $move_failures = 0 ] && [ $irq_failures = 0 ] && echo 1 || echo 0)" \
  "${detail_irqs:-every MSI-X entry named the APIC of the new owner after each move}"

# Stop the traffic: the report counts every frame sent and echoed.
kill -INT "$traffic_pid"
wait "$traffic_pid"
report=$work/traffic.json
if [ -f "$report" ]; then
  sent=$(json "$report" "r['inbound']['sent']")
  lost=$(json "$report" "r['outbound']['lost']")
  dup=$(json "$report" "r['outbound']['duplicated']")
  ooo=$(json "$report" "r['outbound']['out_of_order']")
  changes=$(json "$report" "len(r['outbound']['handovers'])")
  json "$report" "'\n'.join('NH_RESULT blackout_us=%.0f' % h['blackout_us'] for h in r['outbound']['handovers'])"
  blackouts=$(json "$report" "' '.join('%.1f' % (h['blackout_us']/1000) for h in r['outbound']['handovers'])")
  ok=0
  [ "$sent" -gt 0 ] && [ "$lost" = 0 ] && [ "$dup" = 0 ] && [ "$ooo" = 0 ] && [ "$changes" -ge "$moves" ] && ok=1
  junit_record traffic_exactly_once_in_order $ok \
    "sent $sent at $pps/s, lost $lost, duplicated $dup, out of order $ooo, $changes node changes seen by the traffic for $moves handovers; blackout ms per handover: $blackouts"
else
  junit_record traffic_exactly_once_in_order 0 "no traffic report: $(tail -n 5 "$work/traffic.log")"
fi

# --- kill -9 of either daemon at three points of a handover. Each case
# starts traffic anew, arranges the point with the hook's debugfs stalls (the
# source's QUIESCE or the target's ATTACH waits) or by stopping the target
# daemon (SIGSTOP) so the record stays in HANDOFF, kills, lets the supervisor
# restart the daemon, and checks that the NIC settles on one node with
# nothing lost.
debugfs=/sys/kernel/debug/nichandover
# A restarted daemon under TCG takes seconds: at this rate the NIC's ring
# (4096) holds about 4 s of blackout.
kill_pps=${NH_SHARED_KILL_PPS:-1000}
rx_missed() { routing | sed -n 's/.* missed \([0-9]*\) tx.*/\1/p' | head -n 1; }
kill_case() {
  local name=$1 victim_role=$2 point=$3 owner src dst victim ok=0 detail="" r
  owner=$(owner_epoch vm-a | cut -d' ' -f1)
  src=$owner dst=$(other "$owner")
  [ "$victim_role" = source ] && victim=$src || victim=$dst
  local missed_before
  missed_before=$(rx_missed)
  "$traffic_bin" --machine "$memory" --echo --inbound-pps "$kill_pps" --report "$work/kill-$name.json" \
    >"$work/kill-$name-traffic.log" 2>&1 &
  traffic_pid=$!
  sleep 1
  case $point in
    # The source's QUIESCE waits 4 s, so PREPARING lasts long enough to act in.
    before_handoff | after_handoff) ctl "$(ctl_of "$src")" "echo 4000 >$debugfs/quiesce_stall_ms" >/dev/null ;;
    after_commit) ctl "$(ctl_of "$dst")" "echo 4000 >$debugfs/attach_stall_ms" >/dev/null ;;
  esac
  # after_handoff holds the record at HANDOFF by stopping the target's
  # daemon: only the daemon path waits for it there (on the kernel commit
  # path the target's kernel commits alone, which kernel_commit_vm_test and
  # //tests:kernel_commit_fault_test cover).
  local path=auto
  [ "$point" = after_handoff ] && path=daemon
  "$nicctl" --server "127.0.0.1:$(port_of "$src")" handover "$nic" --to "$dst" --no-wait \
    --commit-path "$path" >"$work/kill-$name-handover.log" 2>&1
  case $point in
    before_handoff)
      wait_record "^PREPARING" 30 || detail+="never PREPARING ($(record)); "
      ;;
    after_handoff)
      # The target daemon stops answering once it reserved (PREPARING), so
      # the source's Commit cannot be taken and the record stays HANDOFF.
      wait_record "^PREPARING" 30 || detail+="never PREPARING ($(record)); "
      ctl "$(ctl_of "$dst")" 'kill -STOP $(cat /run/nichandover/pid)' >/dev/null
      wait_record "^HANDOFF" 30 || detail+="never HANDOFF ($(record)); "
      ;;
    after_commit)
      wait_record "^ACTIVE $dst " 30 || detail+="target never committed ($(record)); "
      ;;
  esac
  r=$(record)
  ctl "$(ctl_of "$victim")" "nh-daemon kill" >/dev/null
  [ "$point" = after_handoff ] && ctl "$(ctl_of "$dst")" 'kill -CONT $(cat /run/nichandover/pid) 2>/dev/null' >/dev/null
  ctl "$(ctl_of "$src")" "echo 0 >$debugfs/quiesce_stall_ms" >/dev/null
  ctl "$(ctl_of "$dst")" "echo 0 >$debugfs/attach_stall_ms" >/dev/null
  wait_daemon "$(port_of "$victim")" || detail+="$victim's daemon did not restart; "
  local final="" i
  for ((i = 0; i < 60; i++)); do
    if settled vm-a; then final=vm-a; break; fi
    if settled vm-b; then final=vm-b; break; fi
    sleep 1
  done
  sleep 2
  kill -INT "$traffic_pid"
  wait "$traffic_pid"
  local f=$work/kill-$name.json sent lost dup ooo missed
  missed=$(($(rx_missed) - missed_before))
  sent=$(json "$f" "r['inbound']['sent']" 2>/dev/null)
  lost=$(json "$f" "r['outbound']['lost']" 2>/dev/null)
  dup=$(json "$f" "r['outbound']['duplicated']" 2>/dev/null)
  ooo=$(json "$f" "r['outbound']['out_of_order']" 2>/dev/null)
  # A blackout longer than the ring holds loses frames at the NIC (counted
  # as missed): every lost frame must be one of those.
  if [ -z "$detail" ] && [ -n "$final" ] && interrupts_at "$final" && [ "${sent:-0}" -gt 0 ] &&
    [ -n "$lost" ] && [ "$lost" -le "$missed" ] &&
    [ "$dup" = 0 ] && [ "$ooo" = 0 ]; then
    ok=1
  fi
  junit_record "kill_$name" $ok \
    "${detail}kill -9 of the $victim_role ($victim) with the record at '$r': settled on ${final:-no single owner} (record '$(record)', vm-a '$(owner_epoch vm-a)', vm-b '$(owner_epoch vm-b)'); traffic sent ${sent:-?} at $kill_pps/s, lost ${lost:-?} (ring overflows counted by the NIC: $missed), duplicated ${dup:-?}, out of order ${ooo:-?}"
}
if [ -z "${NH_SHARED_BENCH:-}" ]; then
  kill_case target_after_commit target after_commit
  kill_case target_before_handoff target before_handoff
  kill_case target_after_handoff target after_handoff
  kill_case source_before_handoff source before_handoff
  kill_case source_after_handoff source after_handoff
  kill_case source_after_commit source after_commit
fi

# --- the guests' kernels: no carrier change, no reset, no warning
collect_guest_logs
bad=$(cat "$work"/dmesg-vm-*.log | grep -E 'WARNING:|BUG:|Call Trace|hung_task|timed out|[Ll]ink is [Dd]own|carrier (lost|off)|reset' | head -n 5)
junit_record no_carrier_change_no_reset "$([ -z "$bad" ] && echo 1 || echo 0)" \
  "${bad:-no carrier change, reset, warning or TX timeout in either guest}"

[ -n "${NH_KEEP_WORK:-}" ] && { collect_guest_logs; routing >"$work/routing-end.log"; }
junit_write tests/vm/shared_nic_vm_test
echo "shared_nic_vm_test: $JUNIT_CASES properties, $JUNIT_FAILURES failed, $(($(date +%s) - test_start))s wall"
[ "$JUNIT_FAILURES" -ne 0 ] && show_logs
[ "$JUNIT_FAILURES" -eq 0 ]
