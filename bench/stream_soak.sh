#!/bin/bash
# The long stream soak of issue 16.10 (docs/performance.md has the results).
# Run by hand, never as a test:
#
#   bazel run -c opt //bench:stream_soak -- [--handovers 10000] [--streams 100000]
#
# Two real nichandoverd processes on the fake platform: N handovers back and
# forth, each followed on a WatchHandover stream, and M more WatchHandover
# streams (100 open at once on a fresh connection per batch, each batch with
# one ListHandovers). Prints the source daemon's threads, open files and RSS
# at the baseline, every 1000 handovers and at the end; fails if threads or
# files did not come back to the baseline (small slack). The same binary with
# small counts is //tests:stream_soak_test in CI.
set -euo pipefail

runfiles=${RUNFILES_DIR:-$0.runfiles}
handovers=10000 streams=100000
while [ $# -gt 0 ]; do
  case $1 in
    --handovers) handovers=$2 ;;
    --streams) streams=$2 ;;
    *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
  shift 2
done
# The test binary finds nichandoverd and fake_machine through TEST_SRCDIR.
export TEST_SRCDIR=$runfiles
export TEST_TMPDIR=$(mktemp -d /tmp/stream-soak.XXXXXX)
trap 'rm -rf "$TEST_TMPDIR"' EXIT
SOAK_HANDOVERS=$handovers SOAK_STREAMS=$streams \
  "$runfiles/nichandover/tests/stream_soak_test"
