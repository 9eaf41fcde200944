#!/bin/bash
# Runs the metrics test with Debian's interpreter, which sees python3-grpcio
# and python3-prometheus-client; promtool comes from Debian's prometheus.
exec /usr/bin/python3 "${TEST_SRCDIR}/nichandover/tests/metrics_test.py" "$@"
