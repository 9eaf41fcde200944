#!/bin/bash
# docs/nicctl.md is generated from nicctl's command table; fail when they drift.
# Regenerate with: bazel run //cli:nicctl -- help --markdown > docs/nicctl.md
set -euo pipefail
root="${TEST_SRCDIR}/nichandover"
if ! diff -u "$root/docs/nicctl.md" <("$root/cli/nicctl" help --markdown); then
  echo "docs/nicctl.md is stale: regenerate it with" >&2
  echo "  bazel run //cli:nicctl -- help --markdown > docs/nicctl.md" >&2
  exit 1
fi
