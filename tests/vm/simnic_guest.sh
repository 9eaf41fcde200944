#!/bin/sh
# /scenarios/simnic of tests/vm/simnic_vm_test.sh: a QEMU guest that is an OS
# node of the simulated machine, nh_simnic bound to its ivshmem function
# (00:01.0). Kernel command line: nh_node_index=N (for frame_echo's node).
#
# Brings the interface up, runs frame_echo on it and prints
# "simnic_guest: ready ..." once the echo is bound; then one NH_EVIDENCE line
# per second (counters, interrupts, warnings) until the host ends QEMU.
arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
index=$(arg nh_node_index)
fn=/sys/bus/pci/devices/0000:00:01.0
dev=$(ls "$fn/net" 2>/dev/null)
if [ -z "$dev" ]; then
  echo "simnic_guest: no netdev on 0000:00:01.0"
  dmesg | grep -iE "nh_simnic|nichandover" | tail -n 20
  exit 1
fi
driver=$(basename "$(readlink "$fn/driver")")
role=$(dmesg | sed -n 's/.*nh_simnic .*MAC [0-9a-f:]*, \([a-z]*\)$/\1/p' | tail -n 1)
ip link set "$dev" up
frame_echo --interface "$dev" --node "$index" >/tmp/echo.log 2>&1 &
i=0
while ! grep -q "echoing" /tmp/echo.log && [ $i -lt 100 ]; do
  sleep 0.1
  i=$((i + 1))
done
echo "simnic_guest: ready dev=$dev driver=$driver role=$role $(cat /tmp/echo.log)"
n=0
while :; do
  n=$((n + 1))
  s=/sys/class/net/$dev
  queue_irqs=$(awk '/nh_simnic-entry1/ {print $2}' /proc/interrupts)
  nic_irqs=$(awk '/nh_simnic-entry/ {s += $2} END {print s + 0}' /proc/interrupts)
  warnings=$(dmesg | grep -cE 'WARNING:|BUG:|timed out|Call Trace|nh_simnic.*(failed|error)')
  echo "NH_EVIDENCE n=$n rx=$(cat $s/statistics/rx_packets) tx=$(cat $s/statistics/tx_packets)" \
    "carrier=$(cat $s/carrier) operstate=$(cat $s/operstate) queue_irqs=${queue_irqs:-none}" \
    "nic_irqs=$nic_irqs warnings=$warnings"
  sleep 1
done
