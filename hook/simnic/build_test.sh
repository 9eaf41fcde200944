#!/bin/bash
# Builds nh_simnic.ko with tools/build-simnic (W=1 and sparse: a warning in
# the driver fails the build) and checks what the kernel will see: the
# module binds the ivshmem-doorbell function, depends on the hook module for
# nh_handover_register, and carries the vermagic of the headers' kernel.
set -euo pipefail
root=${TEST_SRCDIR:-$PWD}/${TEST_WORKSPACE:-__main__}
[ -d "$root/tools" ] || root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mktemp -d "${TEST_TMPDIR:-/tmp}/simnic-build.XXXXXX")
trap 'rm -rf "$out"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

"$root/tools/build-simnic" "$out" || fail "tools/build-simnic failed"
ko=$out/nh_simnic.ko
[ -s "$ko" ] || fail "no $ko"
[ -s "$out/nichandover_hook.ko" ] || fail "no nichandover_hook.ko beside it"

kver=$("$root/tools/kernel-abi")
vermagic=$(modinfo -F vermagic "$ko")
case $vermagic in
  "$kver "*) ;;
  *) fail "vermagic '$vermagic' is not for $kver" ;;
esac
depends=$(modinfo -F depends "$ko")
[ "$depends" = nichandover_hook ] || fail "depends='$depends', want nichandover_hook"
modinfo -F alias "$ko" | grep -qx 'pci:v00001AF4d00001110sv\*sd\*bc\*sc\*i\*' ||
  fail "no alias for the ivshmem-doorbell function 1af4:1110: $(modinfo -F alias "$ko")"
[ "$(modinfo -F license "$ko")" = GPL ] || fail "license is not GPL"
modinfo -F parm "$ko" | grep -q '^tx_quiet_ms:' || fail "no tx_quiet_ms parameter"
# The hook exports what the driver imports.
grep -q 'nh_handover_register' "$out/nichandover_hook.symvers" ||
  fail "the hook does not export nh_handover_register"
echo "PASS: nh_simnic.ko for $kver ($(stat -c %s "$ko") bytes)"
