#!/bin/bash
# The product on two VMs: two QEMU (TCG) guests are two OS nodes, each with
# nichandoverd and the nichandover_hook module; the host runs the VM agent
# (nh-vm-agent: ownership records, NIC placement over QMP) and the traffic
# peer on the NIC's stream socket. nicctl on the host hands the e1000e over
# while the peer pings through it. See docs/vm-deployment.md.
#
# One JUnit testcase per property in $XML_OUTPUT_FILE:
#   handover_a_to_b, nics_agree_after_a_to_b, traffic_after_a_to_b,
#   handover_b_to_a, nics_agree_after_b_to_a, traffic_after_b_to_a,
#   refusing_target_leaves_nic_in_a, source_daemon_killed_mid_handover,
#   no_kernel_warnings
# Loss and blackout of each move are printed (NH_RESULT lines).
#
# Outside Bazel: tests/vm/handover_vm_test.sh after building the binaries
# (NH_BIN_DIR=bazel-bin).
set -uo pipefail

if [ -n "${TEST_SRCDIR:-}" ]; then
  root=$TEST_SRCDIR/nichandover
  bin=$root
else
  root=$(cd "$(dirname "$0")/../.." && pwd)
  bin=${NH_BIN_DIR:-$root/bazel-bin}
fi
xml=${XML_OUTPUT_FILE:-/dev/null}
artifacts=${TEST_UNDECLARED_OUTPUTS_DIR:-}
nic=0000:01:00.0
mac=52:54:00:12:34:56
nicctl=$bin/cli/nicctl
test_start=$(date +%s)

# Unix socket paths are limited to 108 bytes: Bazel's TEST_TMPDIR is too deep.
work=$(mktemp -d "${TMPDIR:-/tmp}/nh2vm.XXXXXX")
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  if [ -n "$artifacts" ]; then cp "$work"/*.log "$artifacts"/ 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

cases=() failures=0 body=""
xml_escape() { sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g; s/"/\&quot;/g'; }
write_xml() {
  {
    echo '<?xml version="1.0" encoding="UTF-8"?>'
    local counts="tests=\"${#cases[@]}\" failures=\"$failures\" errors=\"0\""
    echo "<testsuites $counts><testsuite name=\"tests/vm/handover_vm_test\" $counts>"
    printf '%s' "$body"
    echo '</testsuite></testsuites>'
  } >"$xml"
}
# record NAME OK DETAIL
record() {
  local name=$1 ok=$2 detail
  detail=$(echo "$3" | xml_escape)
  cases+=("$name")
  if [ "$ok" = 1 ]; then
    echo "PASS $name: $3"
    body+="<testcase name=\"$name\" classname=\"tests.vm.handover\"/>"$'\n'
  else
    echo "FAIL $name: $3"
    failures=$((failures + 1))
    body+="<testcase name=\"$name\" classname=\"tests.vm.handover\"><failure message=\"$detail\"/></testcase>"$'\n'
  fi
}
fail_setup() {
  record vm_setup 0 "$*"
  write_xml
  if [ -n "${ctl_a:-}" ]; then
    ctl "$ctl_a" "cat /tmp/nichandoverd.log" >"$work/nichandoverd-vm-a.log" 2>&1
    ctl "$ctl_b" "cat /tmp/nichandoverd.log" >"$work/nichandoverd-vm-b.log" 2>&1
  fi
  for f in "$work"/*.log; do echo "--- $f"; tail -n 40 "$f"; done
  # Debugging: keep the VMs up for a look (NH_KEEP_SECONDS=600).
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

# --- images (the kernel tree also gives e1000.ko for the management NIC)
"$root/tools/build-kmod" "$work/ko" >"$work/build.log" 2>&1 ||
  fail_setup "module build failed: $(tail -n 20 "$work/build.log")"
kver=$("$root/tools/kernel-abi")
image() {
  "$root/tools/build-vm-image" --out "$work/img" --module "$work/ko/nichandover_hook.ko" "$@" \
    --bin "$bin/daemon/nichandoverd" --bin "$nicctl" \
    --scenario "node=$root/tests/vm/handover_guest.sh" \
    --scenario "daemon-lib=$root/tests/vm/guest_daemon.sh" >>"$work/build.log" 2>&1
}
find_e1000() {
  local d f
  for d in / "${NH_VM_CACHE:-/var/tmp/nichandover-vm}/linux-image-$kver/"; do
    f=${d}lib/modules/$kver/kernel/drivers/net/ethernet/intel/e1000/e1000.ko
    [ -f "$f" ] && { echo "$f"; return 0; }
  done
  return 1
}
# A first image fetches the kernel package into the cache if it must.
e1000=$(find_e1000) || { image && e1000=$(find_e1000); } || fail_setup "no e1000.ko for $kver"
image --module "$e1000" || fail_setup "image build failed: $(tail -n 20 "$work/build.log")"
echo "handover_vm_test: images built in $(($(date +%s) - test_start))s"

# --- host side: traffic peer, agent
"$bin/tests/vm/traffic_peer" "$work/traffic.sock" "$work/traffic.log" "$work/traffic.status" "$mac" &
peer_pid=$!
pids+=("$peer_pid")
port_a=$(free_port) ctl_a=$(free_port) port_b=$(free_port) ctl_b=$(free_port)
# Each guest serves PeerService on 10.0.2.15:7002, forwarded from peer_a/peer_b.
peer_a=$(free_port) peer_b=$(free_port)
cat >"$work/agent.conf" <<EOF
vms { name: "vm-a" qmp_socket: "$work/a.qmp" }
vms { name: "vm-b" qmp_socket: "$work/b.qmp" }
nics {
  bdf: "$nic" device_id: "nic0" netdev_id: "n0" model: "e1000e" driver: "e1000e"
  mac: "$mac" bus: "rp1" stream_socket: "$work/traffic.sock" initial_owner: "vm-a"
}
state_file: "$work/agent.state"
EOF
"$bin/vmhost/nh-vm-agent" --config "$work/agent.conf" --listen "unix:$work/agent.sock" \
  >"$work/agent.log" 2>&1 &
pids+=("$!")
for _ in $(seq 1 50); do [ -S "$work/agent.sock" ] && [ -S "$work/traffic.sock" ] && break; sleep 0.1; done
[ -S "$work/agent.sock" ] || fail_setup "nh-vm-agent did not listen: $(cat "$work/agent.log")"

# boot NAME PEER DAEMON_PORT CTL_PORT PEER_PORT OTHER_PEER_PORT [QEMU ARGS...]
boot() {
  local name=$1 peer=$2 dport=$3 cport=$4 lport=$5 pport=$6 letter=${1#vm-}
  shift 6
  qemu-system-x86_64 -machine q35 -accel tcg -m 512 -smp 2 -nographic -no-reboot \
    -kernel "$work/img/vmlinuz" -initrd "$work/img/initramfs.cpio.gz" \
    -append "console=ttyS0 panic=-1 quiet nh_scenario=node nh_node=$name nh_peer=$peer" \
    -qmp "unix:$work/$letter.qmp,server=on,wait=off" \
    -device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1 \
    -netdev "user,id=mgmt,restrict=on,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:$dport-10.0.2.15:7000,hostfwd=tcp:127.0.0.1:$cport-10.0.2.15:7001,hostfwd=tcp:127.0.0.1:$lport-10.0.2.15:7002,guestfwd=tcp:10.0.2.100:7100-cmd:$bin/vmhost/nh-relay unix:$work/agent.sock,guestfwd=tcp:10.0.2.100:7101-cmd:$bin/vmhost/nh-relay tcp:127.0.0.1:$pport" \
    -device e1000,netdev=mgmt,bus=pcie.0,addr=0x5,mac=52:54:00:00:00:0$letter,romfile= \
    "$@" </dev/null >"$work/console-$name.log" 2>&1 &
  pids+=("$!")
}
boot vm-a vm-b "$port_a" "$ctl_a" "$peer_a" "$peer_b" \
  -netdev "stream,id=n0,server=off,addr.type=unix,addr.path=$work/traffic.sock" \
  -device "e1000e,netdev=n0,id=nic0,bus=rp1,mac=$mac,romfile="
boot vm-b vm-a "$port_b" "$ctl_b" "$peer_b" "$peer_a"

# ctl PORT COMMAND: runs COMMAND in the guest, prints its output and rc=N.
ctl() {
  local fd
  exec {fd}<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf '%s\n' "$2" >&"$fd"
  timeout 60 cat <&"$fd"
  exec {fd}>&-
}
nicctl_a() { "$nicctl" --server "127.0.0.1:$port_a" "$@"; }
nicctl_b() { "$nicctl" --server "127.0.0.1:$port_b" "$@"; }
wait_daemon() {
  local port=$1 i
  for i in $(seq 1 "${NH_DAEMON_WAIT_TRIES:-240}"); do
    "$nicctl" --server "127.0.0.1:$port" --rpc-timeout 2s nics >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}
wait_daemon "$port_a" || fail_setup "vm-a's daemon did not answer"
wait_daemon "$port_b" || fail_setup "vm-b's daemon did not answer"
echo "handover_vm_test: both daemons up at $(($(date +%s) - test_start))s"

status_field() { sed -n "s/.*$1=\([-0-9]*\).*/\1/p" "$work/traffic.status"; }
# Traffic flows when a reply came in the last 200 ms.
flowing() {
  local age
  age=$(status_field last_reply_age_ms)
  [ -n "$age" ] && [ "$age" -ge 0 ] && [ "$age" -lt 200 ]
}
wait_flowing() {
  local i
  for i in $(seq 1 "$1"); do flowing && return 0; sleep 0.1; done
  return 1
}
# The peer's report of the window since the last mark.
mark() {
  local before
  before=$(grep -c '^window=' "$work/traffic.log")
  kill -USR1 "$peer_pid"
  for _ in $(seq 1 50); do
    [ "$(grep -c '^window=' "$work/traffic.log")" -gt "$before" ] && break
    sleep 0.05
  done
  grep '^window=' "$work/traffic.log" | tail -n1
}
window_field() { echo "$1" | sed -n "s/.*$2=\([0-9]*\).*/\1/p"; }
# owner_epoch PORT: "OWNER EPOCH" of the NIC as that daemon reports it.
owner_epoch() {
  local json
  json=$("$nicctl" --server "127.0.0.1:$1" --json nics 2>/dev/null | tr -d ' \n')
  echo "$(echo "$json" | sed -n 's/.*"ownership":{[^}]*"owner_node":"\([^"]*\)".*/\1/p') $(echo "$json" | sed -n 's/.*"ownership":{[^}]*"epoch":"*\([0-9]*\)"*.*/\1/p')"
}
holds_nic() { ctl "$1" "test -e /sys/bus/pci/devices/$nic && echo present || echo absent" | head -n1; }

wait_flowing 300 || fail_setup "no traffic through the NIC in vm-a: $(cat "$work/traffic.status")"
mark >/dev/null

# handover FROM_PORT TO NAME: the move, its checks and its traffic window.
handover() {
  local from=$1 to=$2 name=$3 out rc t0 t1 oe_a oe_b w
  t0=$(date +%s%N)
  out=$("$nicctl" --server "127.0.0.1:$from" handover "$nic" --to "$to" --timeout 60s 2>&1)
  rc=$?
  t1=$(date +%s%N)
  echo "$out" >"$work/handover-$name.log"
  record "handover_$name" "$([ $rc = 0 ] && echo 1 || echo 0)" \
    "nicctl handover $nic --to $to exit $rc in $(((t1 - t0) / 1000000)) ms: $(echo "$out" | tail -n 4 | tr '\n' ' ')"
  oe_a=$(owner_epoch "$port_a")
  oe_b=$(owner_epoch "$port_b")
  local want_holder_a=absent want_holder_b=present
  [ "$to" = vm-a ] && want_holder_a=present want_holder_b=absent
  local ha hb
  ha=$(holds_nic "$ctl_a")
  hb=$(holds_nic "$ctl_b")
  record "nics_agree_after_$name" \
    "$([ "$oe_a" = "$oe_b" ] && [ "${oe_a% *}" = "$to" ] && [ "$ha" = $want_holder_a ] && [ "$hb" = $want_holder_b ] && echo 1 || echo 0)" \
    "nicctl nics: vm-a says '$oe_a', vm-b says '$oe_b' (owner epoch); NIC in vm-a: $ha, in vm-b: $hb"
  wait_flowing 200
  local flowing_after=$?
  sleep 1.2
  w=$(mark)
  local lost dup gap sent
  sent=$(window_field "$w" sent) lost=$(window_field "$w" lost)
  dup=$(window_field "$w" duplicates) gap=$(window_field "$w" longest_gap_ms)
  echo "NH_RESULT move=$name nicctl_ms=$(((t1 - t0) / 1000000)) sent=$sent lost=$lost duplicates=$dup blackout_ms=$gap"
  record "traffic_after_$name" "$([ $flowing_after = 0 ] && [ "${sent:-0}" -gt 0 ] && [ "${dup:-1}" = 0 ] && echo 1 || echo 0)" \
    "traffic flows again: $([ $flowing_after = 0 ] && echo yes || echo no); window: $w"
}

handover "$port_a" vm-b a_to_b
handover "$port_b" vm-a b_to_a

# --- a target that cannot run the NIC (no driver) refuses; vm-a keeps it.
ctl "$ctl_b" "nh-daemon stop; rmmod e1000e; nh-daemon start" >"$work/ctl.log"
wait_daemon "$port_b" || fail_setup "vm-b's daemon did not come back without e1000e"
mark >/dev/null
out=$(nicctl_a handover "$nic" --to vm-b --timeout 60s 2>&1)
rc=$?
sleep 1.2
w=$(mark)
oe_a=$(owner_epoch "$port_a")
ha=$(holds_nic "$ctl_a")
echo "NH_RESULT move=refused lost=$(window_field "$w" lost) blackout_ms=$(window_field "$w" longest_gap_ms)"
record refusing_target_leaves_nic_in_a \
  "$([ $rc = 4 ] && [ "${oe_a% *}" = vm-a ] && [ "$ha" = present ] && flowing && [ "$(window_field "$w" lost)" = 0 ] && echo 1 || echo 0)" \
  "nicctl exit $rc ($(echo "$out" | grep -m1 -i refus)); owner/epoch '$oe_a'; NIC in vm-a: $ha; traffic window: $w"
ctl "$ctl_b" "nh-daemon stop; insmod /lib/modules/e1000e.ko; nh-daemon start" >>"$work/ctl.log"
wait_daemon "$port_b" || fail_setup "vm-b's daemon did not come back with e1000e"

# --- the source daemon dies mid-handover (the VM keeps running) and restarts.
# Its supervisor restarts it a second later; recovery finishes or rolls back.
nicctl_a handover "$nic" --to vm-b --no-wait >"$work/handover-killed.log" 2>&1
ctl "$ctl_a" "nh-daemon kill" >>"$work/ctl.log"
sleep 1.5
wait_daemon "$port_a" || fail_setup "vm-a's daemon did not restart"
settled=0
for _ in $(seq 1 60); do
  oe_a=$(owner_epoch "$port_a")
  oe_b=$(owner_epoch "$port_b")
  ha=$(holds_nic "$ctl_a")
  hb=$(holds_nic "$ctl_b")
  owner=${oe_a% *}
  one_holder=0
  if [ "$owner" = vm-a ] && [ "$ha" = present ] && [ "$hb" = absent ]; then one_holder=1; fi
  if [ "$owner" = vm-b ] && [ "$ha" = absent ] && [ "$hb" = present ]; then one_holder=1; fi
  if [ "$oe_a" = "$oe_b" ] && [ $one_holder = 1 ] && flowing; then
    settled=1
    break
  fi
  sleep 1
done
last=$(nicctl_a handover list --limit 1 2>&1 | tail -n +1 | head -n 3 | tr '\n' ' ')
record source_daemon_killed_mid_handover "$settled" \
  "after kill -9 and restart of vm-a's daemon: vm-a says '$oe_a', vm-b says '$oe_b'; NIC in vm-a: $ha, in vm-b: $hb; traffic flowing: $(flowing && echo yes || echo no); last handover on vm-a: $last"

# --- no kernel splat in either guest
for vm in a b; do
  port=ctl_$vm
  ctl "${!port}" "dmesg" >"$work/dmesg-vm-$vm.log"
  ctl "${!port}" "cat /tmp/nichandoverd.log" >"$work/nichandoverd-vm-$vm.log"
done
warnings=$(cat "$work"/dmesg-vm-*.log | grep -cE 'WARNING:|BUG:|Call Trace|hung_task|transmit queue .* timed out')
record no_kernel_warnings "$([ "$warnings" = 0 ] && echo 1 || echo 0)" \
  "WARNING/BUG/Call Trace/hung task/TX timeout lines in both guests' dmesg: $warnings"

write_xml
echo "handover_vm_test: ${#cases[@]} properties, $failures failed, $(($(date +%s) - test_start))s wall"
if [ "$failures" -ne 0 ]; then
  for f in "$work"/agent.log "$work"/traffic.log "$work"/nichandoverd-vm-*.log; do
    echo "--- $f"; tail -n 60 "$f"
  done
fi
[ "$failures" -eq 0 ]
