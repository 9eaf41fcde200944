#!/bin/bash
# frame_echo on the host: in a network namespace of our own (unshare -rn: no
# privileges needed where user namespaces are allowed), over a veth pair and
# without any IP address, the wire peer (frame_echo_peer.py) sends wire frames
# to the echo and checks every echo (tests/vm/frame_echo.cc).
set -uo pipefail
if [ -n "${TEST_SRCDIR:-}" ]; then
  root=$TEST_SRCDIR/nichandover
  bin=$root
else
  root=$(cd "$(dirname "$0")/../.." && pwd)
  bin=${NH_BIN_DIR:-$root/bazel-bin}
fi
if [ "${1:-}" != "--in-namespace" ]; then
  exec unshare -rn "$0" --in-namespace
fi
set -e
ip link add echo0 type veth peer name peer0
ip link set echo0 up
ip link set peer0 up
mac=$(ip -o link show echo0 | sed -n "s/.*link\/ether \([0-9a-f:]*\).*/\1/p")
log=$(mktemp "${TEST_TMPDIR:-/tmp}/frame_echo.XXXXXX")
"$bin/tests/vm/frame_echo" --interface echo0 --node 3 >"$log" 2>&1 &
echo_pid=$!
trap 'kill $echo_pid 2>/dev/null; wait $echo_pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q "echoing" "$log" && break; sleep 0.1; done
set +e
python3 "$root/tests/vm/frame_echo_peer.py" peer0 "$mac" 3 500
rc=$?
kill -TERM "$echo_pid"
wait "$echo_pid"
cat "$log"
grep -q "echoed 500 " "$log" || { echo "FAIL: frame_echo did not echo exactly 500 frames"; rc=1; }
exit $rc
