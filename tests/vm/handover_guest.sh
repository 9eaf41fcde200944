#!/bin/sh
# /scenarios/node of the two-VM handover test (tests/vm/handover_vm_test.sh):
# one OS node of a VM deployment (docs/vm-deployment.md).
#
# Kernel command line: nh_node=NAME nh_peer=NAME. The management NIC (e1000
# at 0000:00:05.0, QEMU user networking with restrict=on) gets 10.0.2.15;
# the host agent is 10.0.2.100:7100 and the peer's daemon 10.0.2.100:7101
# (guestfwd), this daemon listens on 10.0.2.15:7000 (hostfwd from the host).
# The handed-over NIC is 0000:01:00.0 (e1000e behind root port rp1); a small
# loop configures it whenever it appears, as udev/networkd would.
#
# Port 7001 is the test's control channel: one shell command per connection,
# its output, then "rc=N". `nh-daemon start|kill|stop` manages nichandoverd
# (kill: SIGKILL, the supervisor restarts it a second later).
# The VM stays up until the host ends QEMU.
arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
node=$(arg nh_node)
peer=$(arg nh_peer)
nic=0000:01:00.0

ip link set lo up
mgmt=$(ls /sys/bus/pci/devices/0000:00:05.0/net)
ip addr add 10.0.2.15/24 dev "$mgmt"
ip link set "$mgmt" up

mkdir -p /etc/nichandover /var/lib/nichandover /run/nichandover
# A test secret: these daemons are reachable only through this test's QEMU.
echo nichandover-vm-test-secret-not-for-production >/etc/nichandover/secret
chmod 600 /etc/nichandover/secret  # nichandoverd refuses a secret others can read
cat >/etc/nichandover/node.conf <<EOF
node_id: "$node"
listen: "10.0.2.15:7000"
peer_listen: "10.0.2.15:7002"
peers { node_id: "$peer" address: "10.0.2.100:7101" }
cpus { cpu: 0 apic_id: 0 }
cpus { cpu: 1 apic_id: 1 }
platform { vm { agent_address: "10.0.2.100:7100" vm_name: "$node" } }
state_dir: "/var/lib/nichandover/$node"
peer_auth { secret_file: "/etc/nichandover/secret" }
timeouts {
  reroute { seconds: 15 }
  attach { seconds: 5 }
}
EOF

# nh-daemon and nh-ctl (tests/vm/guest_daemon.sh).
. /scenarios/daemon-lib

# The data NIC: 192.168.50.15 whenever it (re)appears here.
(
  configured=""
  while :; do
    for dev in /sys/bus/pci/devices/$nic/net/*; do
      [ -e "$dev/ifindex" ] || continue
      read -r index <"$dev/ifindex"
      if [ "$index" != "$configured" ]; then
        ifname=${dev##*/}
        ip addr add 192.168.50.15/24 dev "$ifname" && ip link set "$ifname" up &&
          configured=$index && echo "node: configured $ifname (ifindex $index)"
      fi
    done
    usleep 50000
  done
) &

nh-daemon start
nc -ll -p 7001 -e /bin/nh-ctl &
echo "node: $node up"
while :; do sleep 3600; done
