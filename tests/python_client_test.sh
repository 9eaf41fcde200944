#!/bin/bash
# Runs the Python client test with Debian's interpreter, which sees python3-grpcio.
exec /usr/bin/python3 "${TEST_SRCDIR}/nichandover/tests/python_client_test.py" "$@"
