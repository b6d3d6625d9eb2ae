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

# --- bad configuration: every refusal exits 2 and names where the bad
# value came from (flag, variable, or file:line) and which setting.
tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
# usage_err WANT ARGS...: runs chatbattle --print-config with ARGS; true when
# it exits 2 and stderr holds WANT (fixed string).
usage_err() {
	local want=$1 err rc
	shift
	err=$(env_clean "$@" --print-config 2>&1 >/dev/null)
	rc=$?
	[ $rc -eq 2 ] && grep -qF -- "$want" <<<"$err" && return 0
	echo "# status $rc, stderr: $err"
	return 1
}
check "unknown flag exits 2 naming it" 'usage_err "--no-such-flag: unknown option" "$bin" --no-such-flag'
printf 'channel = a\nfrobnicate = 1\n' >"$tmp/unknown.conf"
check "unknown setting in a file exits 2 naming file:line and the setting" \
	'usage_err "$tmp/unknown.conf:2: frobnicate: unknown setting" "$bin" --config "$tmp/unknown.conf"'
printf '# a comment\n\nchannel = a\njust some words\n' >"$tmp/line.conf"
check "a line that is not \"name = value\" exits 2 naming file:line" \
	'usage_err "$tmp/line.conf:4: expected \"name = value\"" "$bin" --config "$tmp/line.conf"'
printf '[chatbattle]\n' >"$tmp/ini.conf"
check "an INI section header is refused with file:line" \
	'usage_err "$tmp/ini.conf:1: expected" "$bin" --config "$tmp/ini.conf"'
printf 'log_level = loud\n' >"$tmp/enum.conf"
check "a bad choice in a file names file:line, setting and the choices" \
	'usage_err "$tmp/enum.conf:1: log_level: \"loud\" is not one of error|warn|info|debug" "$bin" --config "$tmp/enum.conf"'
check "a missing --config file exits 2 naming it" \
	'usage_err "$tmp/none.conf: cannot open: No such file or directory" "$bin" --config "$tmp/none.conf"'
check "a missing \$CHATBATTLE_CONFIG file exits 2 naming it" \
	'usage_err "$tmp/none2.conf: cannot open" env CHATBATTLE_CONFIG="$tmp/none2.conf" "$bin"'
check "a directory as config file exits 2 naming it" 'usage_err "$tmp:" "$bin" --config "$tmp"'
check "an unknown role exits 2 with the choices" \
	'usage_err "roles: \"feed\" is not one of ingest|aggregate|serve" "$bin" --roles ingest,feed'
check "a bad boolean exits 2" 'usage_err "irc_tls: \"maybe\" is not true or false" "$bin" --irc-tls=maybe'
check "a bad channel name exits 2 saying what is allowed" \
	'usage_err "may only hold letters, digits and _" "$bin" --channel "a b!"'
check "a non-number exits 2" 'usage_err "port: \"12abc\" is not an integer" "$bin" --port 12abc'
check "an empty enum from the environment exits 2" \
	'usage_err "environment LOG_LEVEL: log_level" env LOG_LEVEL= "$bin"'
check "a bad host:port exits 2" \
	'usage_err "cassandra_hosts: \"a:99999\": port must be 1..65535" "$bin" --cassandra-hosts a:99999'
check "a bad keyspace name exits 2" 'usage_err "is not a CQL name" "$bin" --keyspace bad-ks'
check "a --kafka-opt without = exits 2" 'usage_err "expected key=value" "$bin" --kafka-opt novalue'

# A config file broken while running: SIGHUP keeps the current channels and
# the daemon, says why with file:line; fixed, the next SIGHUP applies it.
printf 'channel = a\n' >"$tmp/live.conf"
# (env itself, not the function: $! must be the daemon, env execs it.)
env -u TWITCH_CHANNEL -u CHATBATTLE_CONFIG -u PORT -u WINDOW_SIZE_SECONDS \
	"$bin" --config "$tmp/live.conf" --roles serve --port 0 --kafka-brokers 127.0.0.1:1 \
	--log-level info >"$tmp/live.log" 2>&1 &
pid=$!
# wait_log PATTERN: polls the daemon's log (bounded).
wait_log() {
	local i
	for ((i = 0; i < 300; i++)); do
		grep -q -- "$1" "$tmp/live.log" && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
check "the daemon runs with the config file" 'wait_log "running: 1 channel(s)"'
printf 'channel = a\nport = 99999\n' >"$tmp/live.conf"
kill -HUP "$pid"
check "SIGHUP with a broken file: error naming file:line, channels kept" \
	'wait_log "reload: $tmp/live.conf:2: port: must be 0..65535 (keeping the current channels)"'
check "and the daemon keeps running" 'kill -0 $pid'
printf 'channel = a,b\n' >"$tmp/live.conf"
kill -HUP "$pid"
check "SIGHUP with the file fixed applies the new channel list" 'wait_log "reload: 2 channel(s)"'
kill -TERM "$pid"
wait "$pid"
rc=$?
check "SIGTERM after the reloads exits 0" '[ $rc -eq 0 ] || { tail -n 5 "$tmp/live.log" | sed "s/^/# /"; false; }'
exit $fail
