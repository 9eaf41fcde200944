#!/bin/sh
# /scenarios/kcommit of tests/vm/kernel_commit_vm_test.sh: a QEMU guest that
# is an OS node of the simulated machine (tests/vm/ivshmem_guest.sh) with
# nichandover_hook and nh_simnic bound to its ivshmem function (00:01.0),
# frame_echo on the NIC's interface, and no daemon: the host drives the hook
# with nhhookctl through the control port.
#
# Kernel command line: nh_node_index=N. The management NIC (e1000 at 00:05.0,
# QEMU user networking with restrict=on) gets 10.0.2.15; port 7001 is the
# control channel (tests/vm/guest_daemon.sh's nh-ctl: one shell command per
# connection, its output, then "rc=N").
arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
index=$(arg nh_node_index)
fn=/sys/bus/pci/devices/0000:00:01.0

ip link set lo up
mgmt=$(ls /sys/bus/pci/devices/0000:00:05.0/net)
ip addr add 10.0.2.15/24 dev "$mgmt"
ip link set "$mgmt" up

dev=$(ls "$fn/net" 2>/dev/null)
if [ -z "$dev" ]; then
  echo "kcommit_guest: no netdev on 0000:00:01.0"
  dmesg | grep -iE "nh_simnic|nichandover" | tail -n 20
fi
echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null
ip link set "$dev" up
frame_echo --interface "$dev" --node "$index" --realtime 50 >/tmp/echo.log 2>&1 &

. /scenarios/daemon-lib
nc -ll -p 7001 -e /bin/nh-ctl &
echo "kcommit_guest: node $index up dev=$dev driver=$(basename "$(readlink "$fn/driver")")"
while :; do sleep 3600; done
