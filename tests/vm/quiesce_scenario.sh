#!/bin/sh
# Guest side of the quiesce VM test (busybox sh, run by the image's /init).
#
# Two e1000e: NIC (0000:01:00.0) on the host's stream_peer (link-local
# 169.254.50.2/.3), SPARE (0000:02:00.0) on an empty QEMU hub. e1000e has no
# handover contract, so the module runs it in the safe (cold) mode.
#
# 1. nichandoverd (Linux backend) quiesces NIC through nicctl for longer than
#    the TX watchdog and resumes it: TX gated at the qdisc, NAPI untouched.
# 2. The module directly (nhhookctl, epochs of its own): locks (STATUS and
#    rtnl users answer while another device's QUIESCE waits), debugfs fault
#    knobs, raw REROUTE refusals, capabilities, and what a quiesced and then a
#    released device survive (ethtool, ip link down, unbind, rmmod).
# Prints "NH_EVIDENCE key=value" lines and asserts nothing: the host test
# decides, one JUnit testcase per property.
T=/sys/kernel/tracing
D=/sys/kernel/debug/nichandover
EPOCH=1
QUIESCE_SECONDS=${NH_QUIESCE_SECONDS:-7}
bdf=0000:01:00.0
spare=0000:02:00.0
peer=169.254.50.2
peer_late=169.254.50.3

ev() { echo "NH_EVIDENCE $1=$2"; }
ifname_of() { ls "/sys/bus/pci/devices/$1/net" 2>/dev/null | head -n1; }
stat() { cat "/sys/class/net/$IF/statistics/$1"; }
hstate() { nhhookctl status "$1" 2>/dev/null | sed -n 's/^state=//p'; }
hepoch() { nhhookctl status "$1" 2>/dev/null | sed -n 's/^epoch=//p'; }
received() { sed -n 's/.* \([0-9]*\) packets received.*/\1/p'; }
pings() { ping -c "$1" -i 0.2 -W 2 "$2" 2>/dev/null | received; }
# Sum of NIC's interrupt counts on CPU column $1 (0-based), all vectors.
irqs_on_cpu() {
  awk -v col=$(($1 + 2)) -v ifname="$IF" \
    '$NF ~ "^" ifname { s += $col } END { print s + 0 }' /proc/interrupts
}
irqs_total() { echo $(($(irqs_on_cpu 0) + $(irqs_on_cpu 1))); }
trace_count() { grep -c "$1" "$T/trace"; }
# Centiseconds since boot.
now_cs() { awk '{ printf "%d", $1 * 100 }' /proc/uptime; }
# bounded NAME SECONDS CMD...: runs CMD; NAME_returned=1 if it ended within
# SECONDS (else it is left running and NAME_returned=0), NAME_exit its status.
bounded() {
  name=$1 secs=$2
  shift 2
  "$@" >"/tmp/$name.out" 2>&1 &
  pid=$!
  i=0
  while kill -0 $pid 2>/dev/null && [ $i -lt $((secs * 5)) ]; do
    sleep 0.2
    i=$((i + 1))
  done
  if kill -0 $pid 2>/dev/null; then
    ev "${name}_returned" 0
  else
    wait $pid
    ev "${name}_exit" $?
    ev "${name}_returned" 1
  fi
  sed "s/^/$name: /" "/tmp/$name.out"
}
# The NIC's interface up with its address, carrier awaited.
nic_up() {
  IF=$(ifname_of $bdf)
  [ -n "$IF" ] || return 1
  ip addr add 169.254.50.15/24 dev "$IF" 2>/dev/null
  ip link set "$IF" up
  for _ in $(seq 1 50); do
    [ "$(cat "/sys/class/net/$IF/carrier" 2>/dev/null)" = 1 ] && return 0
    sleep 0.2
  done
  return 1
}
msi_lines() { nhhookctl read-msi "$1" 2>&1 | grep '^vector' | sed 's/ cpu=[0-9]*//'; }

mount -t debugfs debugfs /sys/kernel/debug
# Lockdep stand-in (Debian ships no lockdep kernel): a task blocked for 10 s
# is reported, and the host test fails on any report.
echo 10 >/proc/sys/kernel/hung_task_timeout_secs
ip link set lo up
nic_up
ev carrier "$(cat "/sys/class/net/$IF/carrier")"
SPARE_IF=$(ifname_of $spare)
ip link set "$SPARE_IF" up

echo 4096 >"$T/buffer_size_kb"
echo "name == \"$IF\"" >"$T/events/net/net_dev_start_xmit/filter"
echo "dev_name == \"$IF\"" >"$T/events/napi/napi_poll/filter"
echo 1 >"$T/events/net/net_dev_start_xmit/enable"
echo 1 >"$T/events/napi/napi_poll/enable"

# --- 1. nichandoverd, Linux backend: this VM is node vm0 and owns NIC (epoch 1)
mkdir -p /dev/shm /run/nichandover /tmp/nichandover
mount -t tmpfs tmpfs /dev/shm
nh-arbiter create /dev/shm/nichandover-arbiter vm0 "$bdf=vm0" >/tmp/arbiter.out 2>&1
ev arbiter_create_exit $?
sed 's/^/arbiter: /' /tmp/arbiter.out
cat >/tmp/nichandover/node.conf <<CONF
node_id: "vm0"
listen: "unix:/run/nichandover/nichandoverd.sock"
cpus { cpu: 0 apic_id: 0 }
platform {
  linux {
    pci_access_method: "linux-sysfs"
    nics: "$bdf"
    arbiter_file: "/dev/shm/nichandover-arbiter"
  }
}
state_dir: "/tmp/nichandover/state"
CONF
nichandoverd --config /tmp/nichandover/node.conf >/tmp/nichandoverd.log 2>&1 &
daemon_pid=$!
daemon_up=0
for _ in $(seq 1 100); do
  nicctl nic show "$bdf" >/tmp/show.out 2>&1 && { daemon_up=1; break; }
  kill -0 $daemon_pid 2>/dev/null || break
  sleep 0.2
done
ev daemon_up $daemon_up
sed 's/^/nic-show: /' /tmp/show.out
ev daemon_owner "$(sed -n 's/^owner  *//p' /tmp/show.out)"
NICCTL="nicctl --rpc-timeout 30s"

ev ping_before "$(pings 5 $peer)"

# Quiesce for longer than the TX watchdog (5 s on e1000e), ping running.
ping -i 0.2 $peer >/dev/null 2>&1 &
ping_pid=$!
sleep 1
$NICCTL nic quiesce "$bdf" --timeout 5s >/tmp/quiesce.out 2>&1
ev quiesce_exit $?
sed 's/^/quiesce: /' /tmp/quiesce.out
ev quiesce_said "$(grep -c "quiesced for maintenance on vm0 (epoch $EPOCH)" /tmp/quiesce.out)"
echo >"$T/trace"
tx0=$(stat tx_packets)
ev bql_inflight_after_drain "$(cat "/sys/class/net/$IF/queues/tx-0/byte_queue_limits/inflight")"
sleep "$QUIESCE_SECONDS"
ev quiesced_seconds "$QUIESCE_SECONDS"
ev quiesced_start_xmit_events "$(trace_count net_dev_start_xmit)"
ev quiesced_tx_packets_delta $(($(stat tx_packets) - tx0))
nhhookctl status "$bdf" >/tmp/status.out 2>&1
sed 's/^/status: /' /tmp/status.out
for key in state epoch held_xmits napi_count vectors_masked; do
  ev "hook_$key" "$(sed -n "s/^$key=//p" /tmp/status.out)"
done
$NICCTL nic quiesce "$bdf" >/tmp/requiesce.out 2>&1
ev requiesce_exit $?
ev state_after_requiesce "$(hstate $bdf)"
nhhookctl resume "$bdf" 0 >/tmp/stale.out 2>&1
ev stale_resume_exit $?
sed 's/^/stale: /' /tmp/stale.out
ev state_after_stale "$(hstate $bdf)"
$NICCTL nic resume "$bdf" >/tmp/resume.out 2>&1
ev resume_exit $?
sed 's/^/resume: /' /tmp/resume.out
ev resume_said "$(grep -c "running on vm0 (epoch $EPOCH)" /tmp/resume.out)"
ev state_after_resume "$(hstate $bdf)"
echo >"$T/trace"
sleep 2
ev resumed_start_xmit_events "$(trace_count net_dev_start_xmit)"
kill "$ping_pid"
ev ping_after "$(pings 5 $peer_late)"
kill $daemon_pid
wait $daemon_pid
sed 's/^/nichandoverd: /' /tmp/nichandoverd.log | tail -n 30

# --- 2. affinity mode, vCPU0 -> vCPU1 (epoch 2)
nhhookctl reroute "$bdf" 2 cpu 0 >/tmp/reroute0.out 2>&1
ev reroute_cpu0_exit $?
cpu0_before=$(irqs_on_cpu 0)
pings 5 $peer >/dev/null
ev cpu0_irq_delta_before_move $(($(irqs_on_cpu 0) - cpu0_before))
nhhookctl reroute "$bdf" 2 cpu 1 >/tmp/reroute.out 2>&1
ev reroute_affinity_exit $?
sed 's/^/reroute-cpu1: /' /tmp/reroute.out
ev msi_cpus_after_move "$(grep '^vector ' /tmp/reroute.out | sed 's/.* cpu=\([0-9]*\).*/\1/' | sort -u | tr '\n' ' ')"
cpu0_before=$(irqs_on_cpu 0) cpu1_before=$(irqs_on_cpu 1)
pings 10 $peer >/dev/null
ev cpu0_irq_delta_after_move $(($(irqs_on_cpu 0) - cpu0_before))
ev cpu1_irq_delta_after_move $(($(irqs_on_cpu 1) - cpu1_before))

# --- 3. locks: SPARE's QUIESCE waits 4 s (debugfs stall) while NIC's STATUS
# and an rtnl user (an address added to NIC) are answered.
echo 4000 >$D/quiesce_stall_ms
t0=$(now_cs)
nhhookctl quiesce $spare 1 10000 >/tmp/spare.out 2>&1 &
spare_pid=$!
for _ in $(seq 1 50); do
  [ "$(hstate $spare)" = gated ] && break
  sleep 0.1
done
ev spare_state_while_waiting "$(hstate $spare)"
nhhookctl status "$bdf" >/dev/null 2>&1
ev status_while_other_waits_exit $?
# rtnl without resetting the NIC (an MTU change would reset e1000e).
ip addr add 169.254.50.99/32 dev "$IF"
ev rtnl_user_while_other_waits_exit $?
ip addr del 169.254.50.99/32 dev "$IF"
kill -0 $spare_pid 2>/dev/null && ev other_quiesce_still_waiting 1 || ev other_quiesce_still_waiting 0
ev status_answered_after_cs $(($(now_cs) - t0))
wait $spare_pid
ev spare_quiesce_exit $?
ev spare_quiesce_took_cs $(($(now_cs) - t0))
echo 0 >$D/quiesce_stall_ms
nhhookctl resume $spare 1 >/dev/null 2>&1
ev spare_state_after_resume "$(hstate $spare)"

# --- 4. fault knobs: a quiesce failing before the gate and after the drain
# leaves NIC running here, at its old epoch.
for step in 1 2; do
  echo $step >$D/fail_quiesce
  nhhookctl quiesce "$bdf" 3 >/tmp/fq$step.out 2>&1
  ev fault_quiesce${step}_exit $?
  sed "s/^/fault-quiesce-$step: /" /tmp/fq$step.out
  ev fault_quiesce${step}_state "$(hstate $bdf)"
  ev fault_quiesce${step}_epoch "$(hepoch $bdf)"
  ev fault_quiesce${step}_ping "$(pings 3 $peer)"
done

# --- 5. raw REROUTE: refused unless NIC is quiesced here (at its epoch or a
# higher one, which takes the hold over: docs/hook.md), the message is a
# plain device interrupt, and the caller has CAP_SYS_RAWIO.
raw_args=$(nhhookctl read-msi "$bdf" | awk '/^vector/ {
  for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
  printf "%s:%s:%s ", f["index"], f["address"], f["data"] }')
ev raw_args "$(echo $raw_args | tr ' ' ',')"
first=${raw_args%% *}
idx=${first%%:*} rest=${first#*:}
addr=${rest%%:*} data=${rest#*:}
msi_lines "$bdf" >/tmp/msi.before
refused=0 tried=0
try_refused() {
  tried=$((tried + 1))
  "$@" >/tmp/refused.out 2>&1
  rc=$?
  sed "s/^/refused-$tried: /" /tmp/refused.out
  [ $rc = 1 ] && refused=$((refused + 1))
}
try_refused nhhookctl reroute "$bdf" 4 raw $raw_args                 # running, not held
nhhookctl quiesce "$bdf" 4 >/dev/null 2>&1
ev raw_quiesce_state "$(hstate $bdf)"
try_refused nhhookctl reroute "$bdf" 4 raw "$idx:$addr:0x10"        # exception vector
try_refused nhhookctl reroute "$bdf" 4 raw "$idx:$addr:$((data | 0x400))"   # NMI
try_refused nhhookctl reroute "$bdf" 4 raw "$idx:$addr:$((data | 0x8000))"  # level
try_refused nhhookctl reroute "$bdf" 4 raw "$idx:0xfee00010:$data"  # remappable
try_refused nhhookctl reroute "$bdf" 3 raw $raw_args                 # stale epoch
try_refused nhhookctl reroute 0000:00:01.0 4 raw "0:$addr:$data"     # foreign device
try_refused /usr/bin/setpriv --inh-caps=-sys_rawio --bounding-set=-sys_rawio \
  nhhookctl reroute "$bdf" 4 raw $raw_args                            # no CAP_SYS_RAWIO
ev raw_refused "$refused/$tried"
ev raw_rawio_refusal_says "$(grep -c 'CAP_SYS_RAWIO' /tmp/refused.out)"
msi_lines "$bdf" >/tmp/msi.after
cmp -s /tmp/msi.before /tmp/msi.after && ev raw_refusals_changed_nothing 1 ||
  ev raw_refusals_changed_nothing 0
ev epoch_after_refusals "$(hepoch $bdf)"
nhhookctl reroute "$bdf" 4 raw $raw_args >/tmp/raw.out 2>&1
ev reroute_raw_exit $?
sed 's/^/raw: /' /tmp/raw.out
before=$(grep '^previous' /tmp/raw.out | cut -d' ' -f2-)
after=$(grep '^vector ' /tmp/raw.out | cut -d' ' -f2-)
ev raw_vectors_written "$(grep -c '^vector ' /tmp/raw.out)"
ev raw_readback_equal "$([ -n "$before" ] && [ "$before" = "$after" ] && echo 1 || echo 0)"
nhhookctl resume "$bdf" 4 >/dev/null 2>&1
irq_raw0=$(irqs_total)
ev ping_after_raw "$(pings 5 $peer_late)"
ev raw_irq_delta $(($(irqs_total) - irq_raw0))

# --- 6. capabilities: without CAP_NET_ADMIN every command is refused.
# util-linux's setpriv by path: busybox sh would run its own applet, which
# cannot drop from the bounding set (root regains every capability at exec).
nocap() { /usr/bin/setpriv --inh-caps=-net_admin --bounding-set=-net_admin nhhookctl "$@"; }
refused=0 tried=0
try_refused nocap status "$bdf"
try_refused nocap read-msi "$bdf"
try_refused nocap quiesce "$bdf" 5
try_refused nocap resume "$bdf" 5
try_refused nocap release "$bdf" 5
try_refused nocap attach "$bdf" 5
try_refused nocap reroute "$bdf" 5 cpu 0
try_refused nocap reroute "$bdf" 5 raw $raw_args
ev no_net_admin_refused "$refused/$tried"
ev no_net_admin_says "$(grep -c -i 'PERMISSION_DENIED\|EPERM' /tmp/refused.out)"
ev state_after_no_net_admin "$(hstate $bdf)"

# --- 7. a quiesced device: the driver's own paths keep working (epoch 6).
nhhookctl quiesce "$bdf" 6 >/dev/null 2>&1
ev q_state "$(hstate $bdf)"
bounded q_ethtool_g 20 ethtool -G "$IF" rx 512
bounded q_ethtool_l 20 ethtool -L "$IF" combined 1
ev q_state_after_ethtool "$(hstate $bdf)"
bounded q_rmmod_driver 20 rmmod e1000e
bounded q_rmmod_hook 20 rmmod nichandover_hook
ev q_state_after_rmmods "$(hstate $bdf)"
nhhookctl resume "$bdf" 6 >/dev/null 2>&1
for _ in $(seq 1 50); do [ "$(cat "/sys/class/net/$IF/carrier")" = 1 ] && break; sleep 0.2; done
ev q_ping_after_ethtool "$(pings 3 $peer)"
nhhookctl quiesce "$bdf" 6 >/dev/null 2>&1
bounded q_link_down 20 ip link set "$IF" down
ev q_state_after_down "$(hstate $bdf)"
nhhookctl quiesce "$bdf" 6 >/tmp/qdown.out 2>&1
ev q_quiesce_down_exit $?
sed 's/^/quiesce-down: /' /tmp/qdown.out
nic_up
nhhookctl quiesce "$bdf" 6 >/dev/null 2>&1
bounded q_unbind 20 sh -c "echo $bdf >/sys/bus/pci/drivers/e1000e/unbind"
for _ in $(seq 1 20); do [ "$(hstate $bdf)" = running ] && break; sleep 0.1; done
ev q_state_after_unbind "$(hstate $bdf)"
echo $bdf >/sys/bus/pci/drivers/e1000e/bind
nic_up
ev q_ping_after_rebind "$(pings 3 $peer)"

# --- 8. a released device is the other node's: nothing here reopens it.
nhhookctl quiesce "$bdf" 7 >/dev/null 2>&1
nhhookctl release "$bdf" 7 >/tmp/release.out 2>&1
ev release_exit $?
sed 's/^/release: /' /tmp/release.out
ev r_state "$(hstate $bdf)"
ev r_netdev "$(ifname_of $bdf)"
ev r_driver "$(basename "$(readlink /sys/bus/pci/devices/$bdf/driver 2>/dev/null)" 2>/dev/null)"
ev r_override "$(cat /sys/bus/pci/devices/$bdf/driver_override)"
# PCI command register, low byte: bit 2 is bus mastering (DMA).
cmd=$(od -An -tu1 -j4 -N1 /sys/bus/pci/devices/$bdf/config | tr -d ' ')
ev r_bus_master $(((cmd >> 2) & 1))
ev r_vectors_left "$(awk -v i="$IF" '$NF == i || index($NF, i "-") == 1' /proc/interrupts | wc -l)"
bounded r_bind 20 sh -c "echo $bdf >/sys/bus/pci/drivers/e1000e/bind"
bounded r_rmmod_driver 20 rmmod e1000e
insmod /lib/modules/e1000e.ko
sleep 1
ev r_driver_after_reload "$(basename "$(readlink /sys/bus/pci/devices/$bdf/driver 2>/dev/null)" 2>/dev/null)"
bounded r_rmmod_hook 20 rmmod nichandover_hook
nhhookctl resume "$bdf" 7 >/dev/null 2>&1
ev r_resume_exit $?
nhhookctl quiesce "$bdf" 7 >/dev/null 2>&1
ev r_quiesce_exit $?
nhhookctl attach "$bdf" 7 >/tmp/attach7.out 2>&1
ev r_attach_same_epoch_exit $?
sed 's/^/attach-7: /' /tmp/attach7.out
ev r_state_after_refusals "$(hstate $bdf)"
ev r_netdev_after_refusals "$(ifname_of $bdf)"
# Fault knobs on the attach: before and after the bind. Still released.
for step in 1 2; do
  echo $step >$D/fail_attach
  nhhookctl attach "$bdf" 8 >/tmp/fa$step.out 2>&1
  ev fault_attach${step}_exit $?
  sed "s/^/fault-attach-$step: /" /tmp/fa$step.out
  ev fault_attach${step}_state "$(hstate $bdf)"
  ev fault_attach${step}_netdev "$(ifname_of $bdf)"
  ev fault_attach${step}_epoch "$(hepoch $bdf)"
done
cmd=$(od -An -tu1 -j4 -N1 /sys/bus/pci/devices/$bdf/config | tr -d ' ')
ev r_bus_master_at_end $(((cmd >> 2) & 1))
nhhookctl attach "$bdf" 8 >/tmp/attach8.out 2>&1
ev attach_exit $?
sed 's/^/attach-8: /' /tmp/attach8.out
ev state_after_attach "$(hstate $bdf)"
ev driver_after_attach "$(basename "$(readlink /sys/bus/pci/devices/$bdf/driver 2>/dev/null)" 2>/dev/null)"
nic_up
ev ping_after_attach "$(pings 3 $peer)"

# Nothing held any more: the module unloads.
rmmod nichandover_hook
ev rmmod_exit $?

ev watchdog_timeouts "$(dmesg | grep -c 'transmit queue .* timed out')"
ev adapter_resets "$(dmesg | grep -ci 'reset adapter')"
ev kernel_warnings "$(dmesg | grep -c -E 'WARNING:|BUG:|Call Trace:|hung_task|blocked for more than|lockdep')"
dmesg | grep -i -E 'nichandover|e1000e|watchdog|BUG|WARNING|blocked' | sed 's/^/dmesg: /'
ev done 1
