#!/bin/bash
# Holds trace_check.py to its kernel-line rules (the kernel commit path,
# docs/protocol.md "Traces") and to the op_id fence on hand-written traces: it must accept every
# good_*.trace and refuse every bad_*.trace with the reason the trace names
# in its "# expect: ..." line.
#
#   trace_check_test.sh TRACE_CHECK TRACE...
set -uo pipefail
trace_check=${1:?usage: trace_check_test.sh TRACE_CHECK TRACE...}
shift
failures=0
good=0
bad=0
for trace in "$@"; do
  name=$(basename "$trace")
  out=$(python3 "$trace_check" "$trace" 2>&1)
  rc=$?
  case "$name" in
    good_*)
      good=$((good + 1))
      if [ "$rc" != 0 ]; then
        echo "FAIL $name: refused a good trace: $out"; failures=$((failures + 1))
      else
        echo "ok   $name: accepted"
      fi ;;
    bad_*)
      bad=$((bad + 1))
      expect=$(sed -n 's/^# expect: //p' "$trace")
      if [ -z "$expect" ]; then
        echo "FAIL $name: no '# expect: ' line"; failures=$((failures + 1))
      elif [ "$rc" != 1 ]; then
        echo "FAIL $name: accepted a forbidden trace (exit $rc): $out"; failures=$((failures + 1))
      elif ! grep -qF -- "$expect" <<<"$out"; then
        echo "FAIL $name: refused, but not for '$expect': $out"; failures=$((failures + 1))
      else
        echo "ok   $name: refused: ${out#*: the model forbids: }" | head -1
      fi ;;
    *) echo "FAIL $name: neither good_ nor bad_"; failures=$((failures + 1)) ;;
  esac
done
if [ "$good" = 0 ] || [ "$bad" = 0 ]; then
  echo "trace_check_test: want good and bad traces, got $good and $bad"; exit 1
fi
[ "$failures" = 0 ] || { echo "trace_check_test: $failures wrong"; exit 1; }
echo "trace_check_test: $good good traces accepted, $bad bad ones refused for their reason"
