#!/usr/bin/env bash
# lint.sh - static checks, printing one "ok - / not ok - " line each:
#   man pages are clean under mandoc -T lint;
#   no banned unsafe C string functions in src/ and include/.
# (Agreement of the man pages with the settings table is test_man.)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
fail=0

out=$(mandoc -T lint -W warning man/* 2>&1)
if [ -z "$out" ]; then
	echo "ok - mandoc -T lint man/* prints nothing"
else
	printf '%s\n' "$out" | sed 's/^/# /'
	echo "not ok - mandoc -T lint man/* prints nothing"
	fail=1
fi

# curl-style banned functions: unbounded or locale-hostile string handling.
banned='\b(sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|atoll|gets|strncpy|strncat)[[:space:]]*\('
hits=$(grep -nE "$banned" src/*.c src/*.h include/chatbattle/*.h 2>/dev/null | grep -v 'lint: allow' || true)
if [ -z "$hits" ]; then
	echo "ok - no banned functions (sprintf strcpy strcat strtok atoi gets ...)"
else
	printf '%s\n' "$hits" | sed 's/^/# /'
	echo "not ok - no banned functions (sprintf strcpy strcat strtok atoi gets ...)"
	fail=1
fi
exit $fail
