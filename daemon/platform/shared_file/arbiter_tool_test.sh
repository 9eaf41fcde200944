#!/bin/bash
# nh-arbiter creates a file the daemons can open and shows what is in it.
set -u
tool="$1"
dir="${TEST_TMPDIR:-$(mktemp -d)}"
file="$dir/arbiter"
fail() { echo "FAIL: $*" >&2; exit 1; }

"$tool" create "$file" node-a,node-b 03:00.0=node-a 0000:04:00.0=node-b@7 || fail "create"
out="$("$tool" show "$file")" || fail "show"
expected="0000:03:00.0 OWNERSHIP_STATE_ACTIVE owner=node-a target= epoch=1
0000:04:00.0 OWNERSHIP_STATE_ACTIVE owner=node-b target= epoch=7"
[ "$out" = "$expected" ] || fail "show printed:
$out"

"$tool" create "$dir/bad" node-a 03:00.0=node-z 2>"$dir/err" && fail "an owner outside the node list was accepted"
grep -q 'node-z' "$dir/err" || fail "the error does not name the unknown node: $(cat "$dir/err")"
[ ! -e "$dir/bad" ] || fail "a refused create left a file behind"
"$tool" create "$dir/bad" node-a 03:00.0 2>/dev/null && fail "a NIC without an owner was accepted"
"$tool" show "$dir/missing" 2>/dev/null && fail "show of a missing file succeeded"
"$tool" 2>/dev/null; [ $? -eq 2 ] || fail "no arguments is not a usage error"
echo PASS
