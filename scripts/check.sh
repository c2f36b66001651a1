#!/usr/bin/env bash
# Runs every test: the pytest drivers under tests/ (Debian's pytest, with a time bound) and each
# unit test binary build/tests/unit/test_* (one pass or fail each). Prints one last line,
#   N passed, N failed[, N skipped]
# and exits non-zero if anything failed or if nothing ran at all.
# Environment: CHECK_TIMEOUT (seconds for pytest, default 840), PYTEST_ARGS (extra arguments).
set -u
cd "$(dirname "$0")/.."

PY=/usr/bin/python3
budget=${CHECK_TIMEOUT:-840}
unit_timeout=120
passed=0 failed=0 skipped=0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- pytest --------------------------------------------------------------------------------
junit="$tmp/junit.xml"
# shellcheck disable=SC2086
timeout -k 10 "$budget" "$PY" -m pytest -q -p no:cacheprovider --junitxml="$junit" \
	${PYTEST_ARGS:-} tests/
rc=$?
if [ -s "$junit" ]; then
	read -r p f s < <("$PY" - "$junit" <<'EOF'
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
tests = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(tests - bad - skipped, bad, skipped)
EOF
)
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
fi
case $rc in
0 | 1 | 5) ;;	# all passed, some failed (counted above), nothing collected
124 | 137)
	echo "check: pytest ran out of its ${budget} s budget" >&2
	failed=$((failed + 1)) ;;
*)
	echo "check: pytest exited $rc" >&2
	[ -s "$junit" ] || failed=$((failed + 1)) ;;
esac

# --- unit tests ----------------------------------------------------------------------------
for t in build/tests/unit/test_*; do
	[ -f "$t" ] && [ -x "$t" ] || continue
	if timeout -k 5 "$unit_timeout" "$t" >"$tmp/unit.log" 2>&1; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "FAILED unit test $t:" >&2
		tail -n 40 "$tmp/unit.log" >&2
	fi
done

summary="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary="$summary, $skipped skipped"
echo "$summary"
[ "$failed" -eq 0 ] && [ $((passed + failed)) -gt 0 ]
