#!/bin/sh
# Guest side of the quiesce VM test (busybox sh, run by the image's /init).
#
# Starts nichandoverd with the Linux backend (a single node owning the NIC,
# its ownership record in a SharedFileArbiter file in /dev/shm), runs traffic
# to the host peer (10.0.2.2/10.0.2.3), quiesces the e1000e NIC for longer
# than the TX watchdog and resumes it through `nicctl nic quiesce/resume` (the
# daemon drives the hook module), then drives the module directly with
# nhhookctl for the epoch, interrupt-move and unload checks, and prints what
# it measured as "NH_EVIDENCE key=value" lines. It asserts nothing itself: the host test decides (one JUnit
# testcase per property), so a failure shows the measured values.
IF=eth0
T=/sys/kernel/tracing
EPOCH=1
QUIESCE_SECONDS=${NH_QUIESCE_SECONDS:-8}

ev() { echo "NH_EVIDENCE $1=$2"; }
stat() { cat "/sys/class/net/$IF/statistics/$1"; }
# Sum of the NIC's interrupt counts on CPU column $1 (0-based), all vectors.
irqs_on_cpu() {
  awk -v col=$(($1 + 2)) -v ifname="$IF" \
    '$NF ~ "^" ifname { s += $col } END { print s + 0 }' /proc/interrupts
}
irqs_total() { echo $(($(irqs_on_cpu 0) + $(irqs_on_cpu 1))); }
trace_count() { grep -c "$1" "$T/trace"; }

bdf=$(basename "$(readlink "/sys/class/net/$IF/device")")
ev bdf "$bdf"
ip link set lo up
ip link set "$IF" up
ip addr add 10.0.2.15/24 dev "$IF"
for _ in $(seq 1 50); do
  [ "$(cat /sys/class/net/$IF/carrier 2>/dev/null)" = 1 ] && break
  sleep 0.2
done
ev carrier "$(cat /sys/class/net/$IF/carrier)"

# Per-device tracepoints: the kernel's own view of ndo_start_xmit and polls.
echo 4096 >"$T/buffer_size_kb"
echo "name == \"$IF\"" >"$T/events/net/net_dev_start_xmit/filter"
echo "dev_name == \"$IF\"" >"$T/events/napi/napi_poll/filter"
echo 1 >"$T/events/net/net_dev_start_xmit/enable"
echo 1 >"$T/events/napi/napi_poll/enable"

# --- nichandoverd, Linux backend: this VM is node vm0 and owns the NIC (epoch 1)
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
# Under TCG the daemon takes a moment: wait until it answers.
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

ev ping_before "$(ping -c 5 -i 0.2 -W 2 10.0.2.2 | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')"

# --- quiesce for longer than the TX watchdog (5 s on e1000e)
ping -i 0.2 10.0.2.2 >/dev/null 2>&1 &
ping_pid=$!
sleep 1
$NICCTL nic quiesce "$bdf" --timeout 5s >/tmp/quiesce.out 2>&1
ev quiesce_exit $?
sed 's/^/quiesce: /' /tmp/quiesce.out
ev quiesce_said "$(grep -c "quiesced for maintenance on vm0 (epoch $EPOCH)" /tmp/quiesce.out)"
echo >"$T/trace"
tx0=$(stat tx_packets) rx0=$(stat rx_packets) irq0=$(irqs_total)
ev bql_inflight_after_drain "$(cat /sys/class/net/$IF/queues/tx-0/byte_queue_limits/inflight)"
sleep "$QUIESCE_SECONDS"
ev quiesced_seconds "$QUIESCE_SECONDS"
ev quiesced_start_xmit_events "$(trace_count net_dev_start_xmit)"
ev quiesced_napi_poll_events "$(trace_count napi_poll)"
ev quiesced_tx_packets_delta $(($(stat tx_packets) - tx0))
ev quiesced_rx_packets_delta $(($(stat rx_packets) - rx0))
ev quiesced_irq_delta $(($(irqs_total) - irq0))
nhhookctl status "$bdf" >/tmp/status.out 2>&1
sed 's/^/status: /' /tmp/status.out
for key in state epoch held_xmits xmits_while_quiesced polls_while_quiesced napi_count vectors_masked; do
  ev "hook_$key" "$(sed -n "s/^$key=//p" /tmp/status.out)"
done

# Idempotent through the daemon: a retry changes nothing.
$NICCTL nic quiesce "$bdf" >/tmp/requiesce.out 2>&1
ev requiesce_exit $?
ev state_after_requiesce "$(nhhookctl status "$bdf" | sed -n 's/^state=//p')"

# A stale daemon (lower epoch) must be refused and change nothing.
nhhookctl resume "$bdf" 0 >/tmp/stale.out 2>&1
ev stale_resume_exit $?
sed 's/^/stale: /' /tmp/stale.out
ev state_after_stale "$(nhhookctl status "$bdf" | sed -n 's/^state=//p')"

# --- resume
$NICCTL nic resume "$bdf" >/tmp/resume.out 2>&1
ev resume_exit $?
sed 's/^/resume: /' /tmp/resume.out
ev resume_said "$(grep -c "running on vm0 (epoch $EPOCH)" /tmp/resume.out)"
ev state_after_resume "$(nhhookctl status "$bdf" | sed -n 's/^state=//p')"
echo >"$T/trace"
sleep 2
ev resumed_start_xmit_events "$(trace_count net_dev_start_xmit)"
ev resumed_napi_poll_events "$(trace_count napi_poll)"
kill "$ping_pid"
ev ping_after "$(ping -c 5 -i 0.2 -W 2 10.0.2.3 | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')"

# The daemon's part ends here: the checks below drive the module directly,
# with epochs of their own.
kill $daemon_pid
wait $daemon_pid
sed 's/^/nichandoverd: /' /tmp/nichandoverd.log | tail -n 30

# --- interrupts: kernel-affinity mode, vCPU0 -> vCPU1
# Start from every vector on CPU0, then move them all to CPU1.
nhhookctl reroute "$bdf" $((EPOCH + 1)) cpu 0 >/tmp/reroute0.out 2>&1
ev reroute_cpu0_exit $?
sed 's/^/reroute-cpu0: /' /tmp/reroute0.out
cpu0_before=$(irqs_on_cpu 0)
ping -c 5 -i 0.1 -W 2 10.0.2.2 >/dev/null
ev cpu0_irq_delta_before_move $(($(irqs_on_cpu 0) - cpu0_before))
nhhookctl reroute "$bdf" $((EPOCH + 1)) cpu 1 >/tmp/reroute.out 2>&1
ev reroute_affinity_exit $?
sed 's/^/reroute-cpu1: /' /tmp/reroute.out
ev msi_cpus_after_move "$(grep '^vector ' /tmp/reroute.out | sed 's/.* cpu=\([0-9]*\).*/\1/' | sort -u | tr '\n' ' ')"
# Counted from here: the module returned once every message names CPU1
# (completing an idle vector's move fires it once more on the old CPU).
cpu0_before=$(irqs_on_cpu 0) cpu1_before=$(irqs_on_cpu 1)
ping -c 10 -i 0.1 -W 2 10.0.2.2 >/dev/null
ev cpu0_irq_delta_after_move $(($(irqs_on_cpu 0) - cpu0_before))
ev cpu1_irq_delta_after_move $(($(irqs_on_cpu 1) - cpu1_before))
grep "$IF" /proc/interrupts | sed 's/^/interrupts: /'

# --- raw mode: write back, masked, the messages read from the device
raw_args=$(nhhookctl read-msi "$bdf" | awk '/^vector/ {
  for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
  printf "%s:%s:%s ", f["index"], f["address"], f["data"] }')
ev raw_args "$(echo $raw_args | tr ' ' ',')"
nhhookctl reroute "$bdf" $((EPOCH + 2)) raw $raw_args >/tmp/raw.out 2>&1
ev reroute_raw_exit $?
sed 's/^/raw: /' /tmp/raw.out
before=$(grep '^previous' /tmp/raw.out | cut -d' ' -f2-)
after=$(grep '^vector ' /tmp/raw.out | cut -d' ' -f2-)
ev raw_vectors_written "$(grep -c '^vector ' /tmp/raw.out)"
ev raw_readback_equal "$([ -n "$before" ] && [ "$before" = "$after" ] && echo 1 || echo 0)"
irq_raw0=$(irqs_total)
ev ping_after_raw "$(ping -c 5 -i 0.2 -W 2 10.0.2.3 | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')"
ev raw_irq_delta $(($(irqs_total) - irq_raw0))

# --- handover ends: release on the source, attach with the new epoch
nhhookctl quiesce "$bdf" 10 2000 >/dev/null 2>&1
nhhookctl release "$bdf" 10 >/dev/null 2>&1
ev release_exit $?
ev state_after_release "$(nhhookctl status "$bdf" | sed -n 's/^state=//p')"
nhhookctl resume "$bdf" 10 >/tmp/released.out 2>&1
ev resume_released_exit $?
sed 's/^/resume-released: /' /tmp/released.out
nhhookctl attach "$bdf" 11 >/dev/null 2>&1
ev attach_exit $?
ev state_after_attach "$(nhhookctl status "$bdf" | sed -n 's/^state=//p')"
ev ping_after_attach "$(ping -c 3 -i 0.2 -W 2 10.0.2.3 | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')"

# --- the interface goes down while quiesced: the driver's close must not
# hang on the NAPI we disabled (the notifier reopens first).
nhhookctl quiesce "$bdf" 12 2000 >/dev/null 2>&1
ip link set "$IF" down &
down_pid=$!
for _ in $(seq 1 50); do kill -0 $down_pid 2>/dev/null || break; sleep 0.2; done
if kill -0 $down_pid 2>/dev/null; then ev down_while_quiesced_returned 0; else ev down_while_quiesced_returned 1; fi
ev state_after_down "$(nhhookctl status "$bdf" | sed -n 's/^state=//p')"
nhhookctl quiesce "$bdf" 12 2000 >/tmp/down.out 2>&1
ev quiesce_down_exit $?
sed 's/^/quiesce-down: /' /tmp/down.out
ip link set "$IF" up
for _ in $(seq 1 50); do
  [ "$(cat /sys/class/net/$IF/carrier 2>/dev/null)" = 1 ] && break
  sleep 0.2
done

# --- unloading the module while quiesced reopens the device
nhhookctl quiesce "$bdf" 13 2000 >/dev/null 2>&1
ev state_before_rmmod "$(nhhookctl status "$bdf" | sed -n 's/^state=//p')"
rmmod nichandover_hook
ev rmmod_exit $?
ev ping_after_rmmod "$(ping -c 3 -i 0.2 -W 2 10.0.2.2 | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')"

ev watchdog_timeouts "$(dmesg | grep -c 'transmit queue .* timed out')"
ev adapter_resets "$(dmesg | grep -ci 'reset adapter')"
ev kernel_warnings "$(dmesg | grep -c -E 'WARNING:|BUG:|Call Trace:|hung_task')"
dmesg | grep -i -E 'nichandover|e1000e|watchdog|BUG|WARNING' | sed 's/^/dmesg: /'
ev done 1
