#!/usr/bin/env bash
# cli.sh - the chatbattle binary's command line: --help lists every setting,
# --print-config shows values and origins, bad settings name their source,
# and `run` with nothing to do exits 2 with a clear message.
# Uses $CB_BIN (default build/asan/chatbattle).
set -uo pipefail
cd "${CB_ROOT:-.}" || exit 2
bin=${CB_BIN:-build/asan/chatbattle}
fail=0
ok() { echo "ok - $1"; }
nok() { echo "not ok - $1"; fail=1; }
check() { if eval "$2"; then ok "$1"; else nok "$1"; fi; }

env_clean() { env -u TWITCH_CHANNEL -u CHATBATTLE_CONFIG -u PORT -u WINDOW_SIZE_SECONDS "$@"; }

help=$("$bin" --help)
missing=""
# Every long flag in the table appears in --help.
for f in $(sed -n 's/^CB_OPT([a-z_0-9]*, *[A-Z]*, *"\([a-z0-9-]*\)".*/\1/p' src/options.def); do
	grep -q -- "--$f\b\|--\[no-\]$f\b" <<<"$help" || missing="$missing $f"
done
check "--help lists every setting of the table" '[ -z "$missing" ] || { echo "# missing:$missing"; false; }'
check "--help exits 0" '"$bin" --help >/dev/null'

out=$(env_clean "$bin" --print-config --channel Foo)
check "--print-config --channel Foo shows foo" 'grep -q "^channel = foo    # flag --channel$" <<<"$out"'
out=$(env_clean TWITCH_OAUTH_TOKEN=oauth:sekrit "$bin" --print-config)
check "--print-config masks secrets" '! grep -q sekrit <<<"$out" && grep -q "^twitch_oauth_token = \*\*\*\*\*\*\*\*" <<<"$out"'

err=$(env_clean "$bin" --window-size 5 2>&1 >/dev/null); rc=$?
check "bad flag exits 2 naming it" '[ $rc -eq 2 ] && grep -q "command line --window-size: window_size: must be 10..86400" <<<"$err"'
err=$(env_clean WINDOW_SIZE_SECONDS=abc "$bin" --print-config 2>&1 >/dev/null); rc=$?
check "bad environment exits 2 naming it" '[ $rc -eq 2 ] && grep -q "environment WINDOW_SIZE_SECONDS: window_size" <<<"$err"'
conf=$(mktemp)
printf 'channel = a\nport = 99999\n' >"$conf"
err=$(env_clean "$bin" --config "$conf" --print-config 2>&1 >/dev/null); rc=$?
check "bad file setting exits 2 naming file, line and setting" '[ $rc -eq 2 ] && grep -q "$conf:2: port: must be 0..65535" <<<"$err"'
rm -f "$conf"
err=$(env_clean "$bin" 2>&1); rc=$?
check "run with no channel exits 2 with a clear message" '[ $rc -eq 2 ] && grep -q "no channel to watch" <<<"$err"'
err=$(env_clean "$bin" frobnicate 2>&1); rc=$?
check "unknown command exits 2" '[ $rc -eq 2 ] && grep -q "unknown command \"frobnicate\"" <<<"$err"'
check "--version prints the version" '"$bin" --version | grep -q "^chatbattle [0-9]"'
exit $fail
