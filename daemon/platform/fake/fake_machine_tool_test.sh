#!/bin/bash
# The fake-machine tool as a multi-process test drives it: create a machine,
# flip knobs, check invariants, and get usable exit codes.
set -u
TOOL="$1"
STATE="${TEST_TMPDIR:-/tmp}/tool_test.machine"
NIC=0000:03:00.0
failures=0

expect() {  # expect STATUS DESCRIPTION -- COMMAND...
  local want="$1" what="$2"
  shift 3
  "$@" >"${TEST_TMPDIR:-/tmp}/out" 2>&1
  local got=$?
  if [[ "$got" != "$want" ]]; then
    echo "FAIL: $what: exit $got, want $want"; cat "${TEST_TMPDIR:-/tmp}/out"
    failures=$((failures + 1))
  fi
}

expect_output() {  # expect_output PATTERN DESCRIPTION
  if ! grep -q -- "$1" "${TEST_TMPDIR:-/tmp}/out"; then
    echo "FAIL: $2: output lacks '$1'"; cat "${TEST_TMPDIR:-/tmp}/out"
    failures=$((failures + 1))
  fi
}

rm -f "$STATE"
expect 1 "show before create" -- "$TOOL" show --state "$STATE"
expect_output "does not exist" "missing state named"
expect 0 "create" -- "$TOOL" create --state "$STATE" --nic "$NIC" --nodes 3 --cpus 2 --vectors 2
expect 0 "check fresh machine" -- "$TOOL" check --state "$STATE" --nic "$NIC"
expect 0 "show" -- "$TOOL" show --state "$STATE"
expect_output "node node2: cpus 0=apic32 1=apic33" "third node listed"
expect_output "vector 1: address 0xfee01000 data 0x41 -> node0" "route decoded"

expect 0 "set fail knob" -- "$TOOL" set-fault --state "$STATE" --node node1 --op attach --fail unavailable --times 3
expect 0 "set hang knob" -- "$TOOL" set-fault --state "$STATE" --op cas --hang --hang-max-ms 250
expect 0 "show knobs" -- "$TOOL" show --state "$STATE"
expect_output "fault node1 attach: fail UNAVAILABLE x3" "fail knob shown"
expect_output "fault \* cas: hang max 250ms" "hang knob shown"
expect 0 "raw state" -- "$TOOL" show --state "$STATE" --raw
expect_output "operation: FAKE_OP_COMPARE_AND_SWAP" "raw text proto"
expect 0 "clear node1 knobs" -- "$TOOL" clear-fault --state "$STATE" --node node1
expect 0 "show after clear" -- "$TOOL" show --state "$STATE"
if grep -q "fault node1" "${TEST_TMPDIR:-/tmp}/out"; then
  echo "FAIL: node1 knob survived clear-fault"; failures=$((failures + 1))
fi
expect_output "fault \* cas" "other knob kept"
expect 0 "clear all" -- "$TOOL" clear-fault --state "$STATE"

expect 0 "traffic" -- "$TOOL" traffic --state "$STATE" --nic "$NIC" --packets 10
expect 1 "check unknown NIC" -- "$TOOL" check --state "$STATE" --nic 0000:09:00.0
expect_output "no NIC 0000:09:00.0" "unknown NIC named"
expect 2 "unknown operation" -- "$TOOL" set-fault --state "$STATE" --op bogus --fail 14
expect_output "unknown operation \"bogus\"" "bad op named"
expect 2 "bad code" -- "$TOOL" set-fault --state "$STATE" --op cas --fail NOPE
expect 2 "unknown command" -- "$TOOL" frob --state "$STATE"
expect 2 "missing state" -- "$TOOL" show

echo "$failures failure(s)"
[[ "$failures" == 0 ]]
