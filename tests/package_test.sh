#!/bin/bash
# The Debian packages on a clean Debian root (issue 17).
#
# The root is this machine's own Debian system seen through an overlay in a
# private mount namespace: every write (dpkg's database, the new user and
# group, DKMS's build, /run) lands in a tmpfs and vanishes with the test, and
# nothing needs the network. In it:
#   - lintian reports no error on either package;
#   - both packages install with dpkg -i (maintainer scripts included: the
#     nichandover user and group, DKMS building the module for the installed
#     kernel headers); the unit passes systemd-analyze verify;
#   - the daemon starts with the unit's sandbox: systemd is not PID 1 here,
#     so the unit's settings are applied the way systemd would (the user and
#     group, RuntimeDirectory with its mode, UMask, the capability sets,
#     NoNewPrivileges, ProtectSystem=strict as a read-only root) and the
#     daemon's sd_notify READY=1 is received on a NOTIFY_SOCKET;
#   - an operator in the nichandover group runs nicctl without root; a user
#     outside it is refused.
set -euo pipefail

RUNFILES=${TEST_SRCDIR:-$PWD}/nichandover
main_deb=$RUNFILES/packaging/nichandover.deb
dkms_deb=$RUNFILES/packaging/nichandover-dkms.deb
fake_machine=$RUNFILES/daemon/platform/fake/fake_machine
kernel_abi=$RUNFILES/tools/kernel-abi

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

if [ "${1:-}" != "--inside" ]; then
  [ "$(id -u)" -eq 0 ] || fail "needs root (a mount namespace with an overlay of /, chroot)"
  echo "== lintian"
  lintian --fail-on error --tag-display-limit 0 "$main_deb" "$dkms_deb" ||
    fail "lintian reports errors"
  scratch=$(mktemp -d "${TEST_TMPDIR:-/tmp}/nh-pkg.XXXXXX")
  trap 'rm -rf "$scratch"' EXIT
  unshare --mount --propagation private "$0" --inside "$scratch"
  exit
fi

# ------------------------------------------------- inside the mount namespace
scratch=$2
mount -t tmpfs -o size=2g nh-pkg "$scratch"
mkdir -p "$scratch/upper" "$scratch/work" "$scratch/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$scratch/upper,workdir=$scratch/work" \
  "$scratch/root"
root=$scratch/root
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs tmpfs "$root/tmp"
in_root() { chroot "$root" "$@"; }

kver=$("$kernel_abi")
dpkg-query -W nichandover >/dev/null 2>&1 && fail "nichandover is installed on the host"
in_root getent group nichandover >/dev/null && fail "the root already has a nichandover group"

echo "== dpkg -i"
cp "$main_deb" "$dkms_deb" "$fake_machine" "$root/tmp/"
in_root dpkg -i /tmp/nichandover.deb /tmp/nichandover-dkms.deb >"$scratch/dpkg.log" 2>&1 || {
  cat "$scratch/dpkg.log" >&2
  fail "dpkg -i"
}
in_root dpkg-query -W -f '${Status}\n' nichandover nichandover-dkms | grep -vq "install ok installed" &&
  fail "a package is not installed"
in_root getent group nichandover >/dev/null || fail "postinst created no nichandover group"
in_root id nichandover | grep -q "(nichandover)" || fail "no nichandover user in its group"
secret_perms=$(in_root stat -c '%a %U:%G' /etc/nichandover/secret) ||
  fail "postinst generated no cluster secret"
[ "$secret_perms" = "640 root:nichandover" ] || fail "the cluster secret is $secret_perms"
# The shipped example is valid as it stands, read by the daemon's user.
in_root setpriv --reuid nichandover --regid nichandover --init-groups \
  nichandoverd --check-config --config /usr/share/doc/nichandover/examples/nichandoverd.conf ||
  fail "the example configuration does not pass --check-config"
[ -x "$root/usr/sbin/nichandoverd" ] && [ -x "$root/usr/bin/nicctl" ] || fail "binaries missing"
in_root man -w nicctl >/dev/null || fail "no nicctl man page"
in_root man -w 8 nichandoverd >/dev/null || fail "no nichandoverd man page"
grep -q "complete -F _nicctl nicctl" "$root/usr/share/bash-completion/completions/nicctl" ||
  fail "no bash completion"

echo "== DKMS built the module for $kver"
status=$(in_root dkms status -m nichandover -v "$(in_root dpkg-query -W -f '${Version}' \
  nichandover-dkms | cut -d- -f1)" -k "$kver")
echo "$status"
echo "$status" | grep -q ": installed" || {
  cat "$scratch/dpkg.log" >&2
  fail "dkms status: $status"
}
ko=$(find "$root/lib/modules/$kver/updates/dkms" -name 'nichandover_hook.ko*' | head -1)
[ -n "$ko" ] || fail "no nichandover_hook.ko in /lib/modules/$kver/updates/dkms"
modinfo -F vermagic "$ko" | grep -q "^$kver " || fail "module vermagic: $(modinfo -F vermagic "$ko")"

echo "== systemd-analyze verify"
unit=$root/lib/systemd/system/nichandoverd.service
in_root systemd-analyze verify /lib/systemd/system/nichandoverd.service 2>&1 | tee "$scratch/verify.log"
[ -s "$scratch/verify.log" ] && fail "systemd-analyze verify complained"

# The unit's settings, read from the installed file (not restated here).
setting() { sed -n "s/^$1=//p" "$unit"; }
[ "$(setting Type)" = notify ] || fail "Type is not notify"
user=$(setting User) group=$(setting Group) umask=$(setting UMask)
rundir=/run/$(setting RuntimeDirectory) runmode=$(setting RuntimeDirectoryMode)
statedir=/var/lib/$(setting StateDirectory)
caps=$(setting AmbientCapabilities | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
bounding=$(setting CapabilityBoundingSet | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
exec_start=$(setting ExecStart)
[ "$(setting NoNewPrivileges)" = yes ] && [ "$(setting ProtectSystem)" = strict ] ||
  fail "the unit lost its hardening"

echo "== the daemon as $user:$group with the unit's sandbox"
# A fake machine with one NIC owned by this node, and a configuration.
in_root install -d -o "$user" -g "$group" -m 0750 "$statedir"
in_root install -d -o "$user" -g "$group" -m "$runmode" "$rundir"
printf '%s\n' 'nodes { node_id: "node0" cpus { cpu: 0 apic_id: 0 } }' \
  'nics { bdf: "0000:03:00.0" vector_count: 2 owner_node: "node0" default_driver: "e1000e" }' \
  >"$root/tmp/machine.spec"
in_root /tmp/fake_machine create --state "$statedir/machine.state" --spec /tmp/machine.spec
in_root chown -R "$user:$group" "$statedir"
# A peer (never started): the daemon needs the generated secret and serves
# PeerService on a socket of its own.
cat >"$root/etc/nichandover/nichandoverd.conf" <<EOF
node_id: "node0"
peer_listen: "unix:/run/nichandover/peer.sock"
peers { node_id: "node1" address: "127.0.0.1:7402" }
peer_auth { secret_file: "/etc/nichandover/secret" }
cpus { cpu: 0 apic_id: 0 }
platform { fake { state_path: "$statedir/machine.state" } }
EOF
in_root chgrp "$group" /etc/nichandover/nichandoverd.conf
chmod 0640 "$root/etc/nichandover/nichandoverd.conf"

in_root useradd --no-create-home --groups "$group" nh-operator
in_root useradd --no-create-home nh-outsider

# ProtectSystem=strict: everything read-only but the unit's writable dirs
# and the API file systems.
for dir in "$statedir" "$rundir" /dev /proc /sys /tmp; do mount --bind "$root$dir" "$root$dir"; done
mount -o remount,bind,ro "$root"
touch "$root/usr/.nh-probe" 2>/dev/null && fail "the root is still writable"

# READY=1 arrives on NOTIFY_SOCKET, as systemd would receive it.
notify=$rundir/notify.sock
cat >"$root/tmp/notify.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[2], "w").close()
s.settimeout(float(sys.argv[3]))
while True:
    msg = s.recv(4096).decode()
    print(msg, flush=True)
    if "READY=1" in msg.split("\n"):
        break
EOF
timeout_s=$((60 * ${NH_TIMEOUT_SCALE:-1}))
in_root /usr/bin/python3 /tmp/notify.py "$notify" "/tmp/notify.ready" "$timeout_s" \
  >"$scratch/notify.log" 2>&1 &
notify_pid=$!
for _ in $(seq 600); do [ -e "$root/tmp/notify.ready" ] && break; sleep 0.1; done
chmod 0666 "$root$notify"

(umask "$umask" && exec chroot "$root" env NOTIFY_SOCKET="$notify" \
  setpriv --reuid "$user" --regid "$group" --init-groups --no-new-privs \
  --inh-caps "-all,$caps" --ambient-caps "-all,$caps" --bounding-set "-all,$bounding" \
  $exec_start) >"$scratch/daemon.log" 2>&1 &
daemon_pid=$!
cleanup_daemon() {
  kill "$daemon_pid" 2>/dev/null || true
  wait "$daemon_pid" 2>/dev/null || true
}
trap cleanup_daemon EXIT
# Wait for READY=1 or the daemon's death, whichever comes first.
while kill -0 "$notify_pid" 2>/dev/null && kill -0 "$daemon_pid" 2>/dev/null; do sleep 0.1; done
kill -0 "$daemon_pid" 2>/dev/null || {
  kill "$notify_pid" 2>/dev/null || true
  cat "$scratch/daemon.log" >&2
  fail "the daemon exited before READY=1"
}
wait "$notify_pid" || {
  cat "$scratch/daemon.log" "$scratch/notify.log" >&2
  fail "no READY=1 from the daemon within ${timeout_s}s"
}
grep -qx "READY=1" "$scratch/notify.log" || fail "notify: $(cat "$scratch/notify.log")"
sock=$rundir/nichandoverd.sock
[ -S "$root$sock" ] || fail "no socket at $sock after READY=1"
echo "socket: $(in_root stat -c '%A %U:%G' "$sock"), directory: $(in_root stat -c '%A %U:%G' "$rundir")"
[ "$(in_root stat -c '%a %G' "$sock")" = "660 $group" ] ||
  fail "the operator socket is $(in_root stat -c '%a %G' "$sock"), not 660 $group"
[ "$(in_root stat -c '%a %U' "$rundir/peer.sock")" = "600 $user" ] ||
  fail "the peer socket is $(in_root stat -c '%a %U' "$rundir/peer.sock"), not 600 $user"
[ "$(in_root stat -c '%U:%G %a' "$rundir")" = "$user:$group ${runmode#0}" ] ||
  fail "RuntimeDirectory is $(in_root stat -c '%U:%G %a' "$rundir")"
# The subshell exec'd down to the daemon: its pid is the daemon's.
[ "$(cat "/proc/$daemon_pid/comm")" = nichandoverd ] || fail "pid $daemon_pid is not the daemon"
ids=$(awk '/^Uid:/ {u=$2} /^Gid:/ {g=$2} END {print u":"g}' "/proc/$daemon_pid/status")
[ "$ids" = "$(in_root id -u "$user"):$(in_root getent group "$group" | cut -d: -f3)" ] ||
  fail "the daemon runs as $ids"
grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$daemon_pid/status" || fail "NoNewPrivs is not set"
# Exactly the unit's capabilities, effective through the ambient set.
eff=$(sed -n 's/^CapEff:[[:space:]]*//p' "/proc/$daemon_pid/status")
amb=$(sed -n 's/^CapAmb:[[:space:]]*//p' "/proc/$daemon_pid/status")
bnd=$(sed -n 's/^CapBnd:[[:space:]]*//p' "/proc/$daemon_pid/status")
echo "daemon: uid:gid $ids, CapEff $eff, CapAmb $amb, CapBnd $bnd"
expected=$(printf '%016x' $(( (1 << 12) | (1 << 21) )))  # CAP_NET_ADMIN, CAP_SYS_ADMIN
[ "$eff" = "$expected" ] && [ "$amb" = "$expected" ] && [ "$bnd" = "$expected" ] ||
  fail "capabilities: want $expected"

echo "== nicctl without root"
out=$(in_root setpriv --reuid nh-operator --regid nh-operator --init-groups nicctl nics) ||
  fail "nicctl as a member of $group: $out"
echo "$out"
echo "$out" | grep -q "0000:03:00.0" || fail "nicctl nics does not list the NIC"
rc=0
out=$(in_root setpriv --reuid nh-outsider --regid nh-outsider --init-groups nicctl nics 2>&1) ||
  rc=$?
[ "$rc" -eq 7 ] || fail "a user outside $group: exit $rc, not 7: $out"
echo "$out" | grep -q "join the nichandover group" || fail "no hint about the group: $out"
echo "outsider refused (exit $rc): $out"

kill -TERM "$daemon_pid"
wait "$daemon_pid" || fail "the daemon did not stop cleanly: $(tail -5 "$scratch/daemon.log")"
trap - EXIT
echo "PASS"
