#!/bin/sh
# /scenarios/shared of tests/vm/shared_nic_vm_test.sh: one QEMU guest that is
# an OS node of the simulated machine (tests/vm/ivshmem_guest.sh), running the
# product as a real node would: nichandover_hook + nh_simnic bound to the
# ivshmem function (00:01.0), frame_echo on the NIC's interface, and
# nichandoverd on the linux backend with the records in the machine's memory
# (the function's BAR2).
#
# Kernel command line: nh_node=NAME nh_peer=NAME nh_node_index=N
# nh_apic=APIC nh_nic=BDF. The management NIC (e1000 at 00:05.0, QEMU user
# networking with restrict=on) gets 10.0.2.15; the peer's daemon is
# 10.0.2.100:7101 (guestfwd), this daemon listens on 10.0.2.15:7000 (hostfwd).
# Port 7001 is the test's control channel: one shell command per connection,
# its output, then "rc=N". `nh-daemon start|kill|stop` manages nichandoverd
# (kill: SIGKILL, the supervisor restarts it a second later).
arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
node=$(arg nh_node)
peer=$(arg nh_peer)
index=$(arg nh_node_index)
apic=$(arg nh_apic)
nic=$(arg nh_nic)
fn=/sys/bus/pci/devices/0000:00:01.0

ip link set lo up
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mgmt=$(ls /sys/bus/pci/devices/0000:00:05.0/net)
ip addr add 10.0.2.15/24 dev "$mgmt"
ip link set "$mgmt" up

dev=$(ls "$fn/net" 2>/dev/null)
if [ -z "$dev" ]; then
  echo "shared_guest: no netdev on 0000:00:01.0"
  dmesg | grep -iE "nh_simnic|nichandover" | tail -n 20
fi
# IPv6 would send neighbour discovery frames the wire peer only counts.
echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null
ip link set "$dev" up
# The echo answers on whichever node runs the NIC: a standby node's socket
# simply never receives. Real-time priority, so that a frame NAPI delivered
# is answered before the driver's quiesce finds the stack quiet.
frame_echo --interface "$dev" --node "$index" --realtime 50 >/tmp/echo.log 2>&1 &

mkdir -p /etc/nichandover /var/lib/nichandover /run/nichandover
# A test secret: these daemons are reachable only through this test's QEMU.
echo nichandover-shared-nic-test-secret-not-for-production >/etc/nichandover/secret
chmod 0600 /etc/nichandover/secret
cat >/etc/nichandover/node.conf <<EOF
node_id: "$node"
listen: "10.0.2.15:7000"
peer_listen: "10.0.2.15:7002"
peers { node_id: "$peer" address: "10.0.2.100:7101" }
cpus { cpu: 0 apic_id: $apic }
platform { linux { nics: "$nic" machine_memory: "$fn/resource2" } }
state_dir: "/var/lib/nichandover/$node"
peer_auth { secret_file: "/etc/nichandover/secret" }
# TCG guests reach each other through QEMU user networking and host relays:
# under load a peer call takes seconds.
timeouts {
  peer_call { seconds: 10 }
  quiesce { seconds: 10 }
  reroute { seconds: 10 }
  attach { seconds: 10 }
}
EOF

# nh-daemon and nh-ctl (tests/vm/guest_daemon.sh).
. /scenarios/daemon-lib

nh-daemon start
nc -ll -p 7001 -e /bin/nh-ctl &
echo "shared_guest: $node up dev=$dev driver=$(basename "$(readlink "$fn/driver")")"
while :; do sleep 3600; done
