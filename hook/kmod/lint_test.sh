#!/bin/sh
# The module's upstream quality bar as a test: tools/lint-kmod (checkpatch
# --strict, kernel-doc, W=1 and sparse, all 0 warnings).
set -eu
if [ -n "${TEST_SRCDIR:-}" ]; then
  root=$TEST_SRCDIR/nichandover
else
  root=$(cd "$(dirname "$0")/../.." && pwd)
fi
exec "$root/tools/lint-kmod"
