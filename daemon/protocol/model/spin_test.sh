#!/bin/bash
# Checks the Promela model of the handover protocol with spin
# (docs/protocol.md, "Model checking"): the real model must hold every
# property, and spin must find a violation in each seeded bug.
#
#   spin_test.sh MODEL.pml
#
# Each run: spin -a (with the run's -D switches), gcc -DCOLLAPSE -DSAFETY pan,
# an exhaustive search that stops at the first error. Prints states, depth,
# time and what failed for every run.
set -uo pipefail

model=${1:?usage: spin_test.sh MODEL.pml}
model=$(readlink -f "$model")
for tool in spin gcc; do
  command -v "$tool" >/dev/null || { echo "spin_test: $tool is missing (tools/setup installs it)" >&2; exit 1; }
done
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/spin.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Budgets of one run (crashes, platform-call failures, hangs, lost and
# duplicated messages, cancels, operator recoveries, maintenance quiesces,
# give-ups to FAILED, handovers); the model's own defaults are larger and
# take far longer than a test may (docs/protocol.md, "Model checking").
budgets() {
  echo "-DCRASHES=${C:-0} -DOPFAILS=${O:-0} -DHANGS=${H:-0} -DLOSSES=${L:-0} -DDUPS=${D:-0}" \
       "-DCANCELS=${X:-0} -DRECOVERS=${R:-0} -DMAINTS=${M:-0} -DGIVEUPS=${G:-0} -DHANDOVERS=${N:-1}"
}

# Two handovers with a give-up, and a crash with an operator recovery, give
# state spaces of millions of states (the second more than 11 million, beyond
# 2 GB). These runs restrict the scenario (faults and creates on node S only,
# the operator's recovery after the crash; model switches FAULT_NODE,
# CREATE_NODE, RECOVER_AFTER_CRASH: they only remove choices) and bound the
# search at depth 400 (BUG_FAILED_NOT_BLOCKING's violation lies at depth
# 222). The real model runs under the same switches and bound: no property
# may fail within them.
crash_recover="$(C=1 R=1 budgets) -DFAULT_NODE=0 -DCREATE_NODE=0 -DRECOVER_AFTER_CRASH"
two_handovers="$(N=2 X=1 O=1 G=1 budgets) -DFAULT_NODE=0 -DCREATE_NODE=0"
bounded="-m400"

# name | -D switches | expect (holds / violated) | pan options (default: exhaustive)
runs=(
  "real model, one handover, no faults|$(budgets)|holds"
  "real model, a crash of either daemon at any step|$(C=1 budgets)|holds"
  "real model, a failing call, give-up to FAILED, cancel|$(O=1 G=1 X=1 budgets)|holds"
  "real model, a hung call landing late, cancel|$(H=1 X=1 budgets)|holds"
  "real model, a lost message, a duplicate, reordering|$(L=1 D=1 budgets)|holds"
  "seeded: no epoch check in a CAS|$(budgets) -DBUG_CAS_NO_EPOCH|violated"
  "seeded: data path opened before the CAS|$(R=1 budgets) -DBUG_OPEN_BEFORE_CAS|violated"
  "seeded: no op_id fence (a late Restore masks a running NIC)|$(H=1 X=1 budgets) -DBUG_NO_OP_FENCE|violated"
  "seeded: no SOURCE_STARTED journal (a crash, the prepare CAS lands late)|$(C=1 budgets) -DBUG_SKIP_JOURNAL|violated"
  "real model, source crash, operator recovery, to depth 400|$crash_recover|holds|$bounded"
  "real model, two handovers, failing call, give-up, cancel, to depth 400|$two_handovers|holds|$bounded"
  "seeded: FAILED does not block a new handover (R1 off)|$two_handovers -DBUG_FAILED_NOT_BLOCKING|violated|$bounded"
)
if [ -n "${SPIN_TEST_RUNS:-}" ]; then  # e.g. SPIN_TEST_RUNS='name|-D...|holds'
  IFS=$'\n' read -r -d '' -a runs <<<"$SPIN_TEST_RUNS"
fi

echo "properties: never two nodes running the NIC; a running node has the interrupts, unmasked;"
echo "            record epochs only grow; a run that stops moving is settled (one owner running,"
echo "            interrupts there, the other detached) or in a state docs/protocol.md names"
failures=0
for run in "${runs[@]}"; do
  IFS='|' read -r name defines expect panopts <<<"$run"
  dir="$work/$(echo "$defines" | tr -c 'A-Za-z0-9\n' _)"
  mkdir -p "$dir"
  start=$(date +%s)
  (cd "$dir" && spin -a $defines "$model" >spin.log 2>&1) || {
    echo "FAIL $name: spin -a failed"; cat "$dir/spin.log"; failures=$((failures + 1)); continue; }
  (cd "$dir" && gcc -O0 -w -DCOLLAPSE -DSAFETY -DMEMLIM=3072 -o pan pan.c) || {
    echo "FAIL $name: gcc pan failed"; failures=$((failures + 1)); continue; }
  (cd "$dir" && ./pan ${panopts:--m2000000} -c1 >pan.log 2>&1)
  took=$(( $(date +%s) - start ))
  errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$dir/pan.log" | head -1)
  states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$dir/pan.log" | head -1)
  depth=$(sed -n 's/.*depth reached \([0-9]*\).*/\1/p' "$dir/pan.log" | head -1)
  what=$(grep -m1 -E '^pan:[0-9]+: ' "$dir/pan.log" || true)
  # Name the property the failed assertion stands for.
  case "$what" in
    *'op_d[s]>>4'*) what="the record's epoch went back (${what##*at depth}" ;;
    *q_len*) what="a run stopped neither settled nor in a documented operator state (${what##*at depth}" ;;
    *'hk[0]==1'*) what="two nodes running, or a running node without the interrupts (${what##*at depth}" ;;
  esac
  what=${what/(\ /(at depth }
  if [ -z "$errors" ]; then
    echo "FAIL $name: pan did not finish"; tail -20 "$dir/pan.log"; failures=$((failures + 1)); continue
  fi
  # A depth-bounded run (-m given) cuts its search at the bound on purpose.
  if [ -z "$panopts" ] && grep -q "max search depth too small" "$dir/pan.log"; then
    echo "FAIL $name: search depth too small (raise -m)"; failures=$((failures + 1)); continue
  fi
  summary="$states states, depth $depth, ${took}s"
  if [ "$expect" = holds ]; then
    if [ "$errors" = 0 ]; then
      echo "ok   $name: all properties hold ($summary)"
    else
      echo "FAIL $name: $what ($summary)"; failures=$((failures + 1))
      (cd "$dir" && spin -t -p -g $defines "$model" 2>&1 | tail -60)
    fi
  else
    if [ "$errors" != 0 ]; then
      echo "ok   $name: found: ${what#pan:*: } ($summary)"
    else
      echo "FAIL $name: spin found nothing ($summary)"; failures=$((failures + 1))
    fi
  fi
done
[ "$failures" = 0 ] || { echo "spin_test: $failures run(s) wrong"; exit 1; }
echo "spin_test: all runs as expected"
