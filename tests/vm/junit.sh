# Sourced library: one JUnit testcase per property, for the VM tests' shell
# drivers (Bazel reads $XML_OUTPUT_FILE).
#
#   junit_record NAME OK DETAIL   OK is 1 (pass) or anything else (fail);
#                                 prints "PASS|FAIL NAME: DETAIL"
#   junit_write SUITE             writes every recorded case to $XML_OUTPUT_FILE
#   JUNIT_FAILURES                failures recorded so far
JUNIT_FAILURES=0
JUNIT_CASES=0
JUNIT_BODY=""

junit_escape() { sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g; s/"/\&quot;/g'; }

junit_record() {
  local name=$1 ok=$2 detail
  detail=$(printf '%s' "$3" | junit_escape)
  JUNIT_CASES=$((JUNIT_CASES + 1))
  if [ "$ok" = 1 ]; then
    echo "PASS $name: $3"
    JUNIT_BODY+="<testcase name=\"$name\"/>"$'\n'
  else
    echo "FAIL $name: $3"
    JUNIT_FAILURES=$((JUNIT_FAILURES + 1))
    JUNIT_BODY+="<testcase name=\"$name\"><failure message=\"$detail\"/></testcase>"$'\n'
  fi
}

junit_write() {
  local suite=$1 counts
  counts="tests=\"$JUNIT_CASES\" failures=\"$JUNIT_FAILURES\" errors=\"0\""
  {
    echo '<?xml version="1.0" encoding="UTF-8"?>'
    echo "<testsuites $counts><testsuite name=\"$suite\" $counts>"
    printf '%s' "$JUNIT_BODY"
    echo '</testsuite></testsuites>'
  } >"${XML_OUTPUT_FILE:-/dev/null}"
}
