#!/bin/bash
# Holds the randomized protocol runs to the model: runs random_fault_test
# with NICHANDOVER_TRACE_DIR (one trace per seed), then replays every trace
# through the model's transition relation (trace_check.py). Fails on a step
# the model forbids, or when fewer than 200 traces were written.
#
#   trace_replay_test.sh RANDOM_FAULT_TEST TRACE_CHECK
set -euo pipefail
random_fault_test=${1:?usage: trace_replay_test.sh RANDOM_FAULT_TEST TRACE_CHECK}
trace_check=${2:?usage: trace_replay_test.sh RANDOM_FAULT_TEST TRACE_CHECK}
seeds=${NICHANDOVER_TRACE_SEEDS:-200}
dir=$(mktemp -d "${TEST_TMPDIR:-/tmp}/traces.XXXXXX")
trap 'rm -rf "$dir"' EXIT

# Seeds 1000.. so the traces are not the runs random_fault_test checks itself.
NICHANDOVER_TRACE_DIR=$dir NICHANDOVER_SEED=1000 NICHANDOVER_SEEDS=$seeds \
  NICHANDOVER_ROUNDS=${NICHANDOVER_TRACE_ROUNDS:-6} "$random_fault_test" >"$dir/run.log" 2>&1 || {
  echo "trace_replay_test: random_fault_test failed:"; tail -40 "$dir/run.log"; exit 1; }
traces=("$dir"/seed-*.trace)
if [ "${#traces[@]}" -lt "$seeds" ]; then
  echo "trace_replay_test: ${#traces[@]} traces written, want $seeds"; exit 1
fi
echo "trace_replay_test: ${#traces[@]} traces, $(cat "${traces[@]}" | wc -l) lines"
python3 "$trace_check" "${traces[@]}"

# The checker must refuse what the model forbids: the first trace with an
# attach by a node no record ever made the owner, and with a CAS that moves
# the epoch back.
header=$(grep -c -E '^(#|node |nic )' "${traces[0]}")
bdf=$(sed -n 's/^nic \([^ ]*\) .*/\1/p' "${traces[0]}" | head -1)
for bad in "n3: attach $bdf epoch=99 rings=[] => ok" \
           "n1: cas $bdf ACTIVE(n1,1) -> ACTIVE(n1,0) => ok ACTIVE(n1,0)"; do
  { head -n "$header" "${traces[0]}"; echo "$bad"; tail -n +"$((header + 1))" "${traces[0]}"; } \
    >"$dir/forbidden.trace"
  if python3 "$trace_check" "$dir/forbidden.trace" >/dev/null 2>&1; then
    echo "trace_replay_test: trace_check accepted a forbidden step: $bad"; exit 1
  fi
done
echo "trace_replay_test: forbidden steps refused"
