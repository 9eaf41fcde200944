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
