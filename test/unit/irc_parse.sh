#!/usr/bin/env bash
# irc_parse.sh - `chatbattle irc-parse` on fixture lines: the JSON on
# stdout (one record per chat message or event, valid, in the contract's
# field order), the reasons on stderr with line numbers, CR LF and LF,
# oversize lines reported and skipped, --no-emit-events, exit status.
# Uses $CB_BIN (default build/asan/chatbattle) and python3 to read JSON.
set -uo pipefail
cd "${CB_ROOT:-.}" || exit 2
bin=${CB_BIN:-build/asan/chatbattle}
fail=0
ok() { echo "ok - $1"; }
nok() { echo "not ok - $1"; fail=1; }
check() { if eval "$2"; then ok "$1"; else nok "$1"; fi; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

tsv=test/fixtures/twitch-irc/lines.tsv
# fixture line N of lines.tsv, raw column ("\t" escape undone)
fx() { sed -n "${1}p" "$tsv" | cut -f3- | sed 's/\\t/\t/g'; }

# Line 1: PRIVMSG pajlada "dank cam"; 97: a /me resub USERNOTICE; 35: the
# INVALID "@ :tmi.twitch.tv TEST"; then a PING, a ROOMSTATE, a PRIVMSG with
# no channel, an oversize line, a huge line (past the reader's buffer), and
# a last PRIVMSG without a final LF.
{
	printf '%s\r\n' "$(fx 1)"
	printf '%s\n' "$(fx 97)"
	printf '%s\r\n' "$(fx 35)"
	printf 'PING :tmi.twitch.tv\r\n'
	printf '@room-id=1 :tmi.twitch.tv ROOMSTATE #c\r\n'
	printf ':u!u@u PRIVMSG bar :no channel\n'
	printf ':u!u@u PRIVMSG #c :%s\r\n' "$(head -c 16400 /dev/zero | tr '\0' x)"
	printf ':u!u@u PRIVMSG #c :%s\r\n' "$(head -c 70000 /dev/zero | tr '\0' y)"
	printf '\r\n'
	printf '@tmi-sent-ts=1234567890123;id=e9d998c3-36f1-430f-89ec-6b887c28af36 :last!last@last PRIVMSG #Last :bye'
} >"$tmp/in"

"$bin" irc-parse <"$tmp/in" >"$tmp/out" 2>"$tmp/err"
rc=$?
check "irc-parse exits 0 on malformed input" '[ $rc -eq 0 ]'
check "three records on stdout (chat, event, chat)" '[ "$(wc -l <"$tmp/out")" -eq 3 ]'

python3 - "$tmp/out" >"$tmp/py" 2>&1 <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
first = ["channel_id", "user_id", "username", "message", "timestamp", "emotes"]
for r in recs:
    assert list(r)[:6] == first, list(r)
a, b, c = recs
assert a["channel_id"] == "pajlada" and a["message"] == "dank cam", a
assert a["username"] == "jun1orrrr" and a["user_id"] == "29803735", a
assert a["timestamp"] == 1594545155039 and a["type"] == "message", a
assert a["message_id"] == "e9d998c3-36f1-430f-89ec-6b887c28af36", a
assert b["type"] == "resub" and b["is_action"] is True, b
assert b["message"] == "Kappa TEST TEST Kappa :)", b
assert b["emotes"] == ["Kappa", "Kappa", ":)"], b
assert c["channel_id"] == "last" and c["message"] == "bye", c
assert c["timestamp"] == 1234567890123, c
print("records ok")
EOF
check "records are the contract's JSON with the fixture's values" 'grep -q "records ok" "$tmp/py" || { sed "s/^/# /" "$tmp/py"; false; }'

check "malformed line reported with its number and reason" \
	'grep -q "^chatbattle irc-parse: line 3: empty tag section$" "$tmp/err"'
check "dead-letter line reported (PRIVMSG without channel)" \
	'grep -q "^chatbattle irc-parse: line 6: PRIVMSG without channel$" "$tmp/err"'
check "oversize line reported and skipped" \
	'grep -q "^chatbattle irc-parse: line 7: longer than 16384 bytes, skipped$" "$tmp/err"'
check "line past the read buffer reported, numbering kept" \
	'grep -q "^chatbattle irc-parse: line 8: longer than 16384 bytes, skipped$" "$tmp/err"'
check "PING, ROOMSTATE and blank lines are silent" '[ "$(wc -l <"$tmp/err")" -eq 4 ]'
check "nothing truncated reaches stdout" '! grep -q "xxxx\|yyyy" "$tmp/out"'

"$bin" irc-parse --no-emit-events <"$tmp/in" >"$tmp/out2" 2>/dev/null
check "--no-emit-events leaves events out" \
	'[ "$(wc -l <"$tmp/out2")" -eq 2 ] && ! grep -q "\"type\":\"resub\"" "$tmp/out2"'
TWITCH_EMIT_EVENTS=false "$bin" irc-parse <"$tmp/in" >"$tmp/out3" 2>/dev/null
check "TWITCH_EMIT_EVENTS=false leaves events out" '[ "$(wc -l <"$tmp/out3")" -eq 2 ]'

# The whole corpus: every line either prints valid JSON or is skipped.
cut -f3- "$tsv" | sed 's/\\t/\t/g' | "$bin" irc-parse >"$tmp/all" 2>"$tmp/allerr"
rc=$?
check "the whole lines.tsv corpus: exit 0" '[ $rc -eq 0 ]'
check "the whole corpus: every stdout line is JSON" \
	'python3 -c "import json,sys; [json.loads(l) for l in open(sys.argv[1])]" "$tmp/all"'
check "the whole corpus: every stderr line names a line number" \
	'! grep -v "^chatbattle irc-parse: line [0-9]*: " "$tmp/allerr"'

"$bin" irc-parse </ >/dev/null 2>"$tmp/err"
rc=$?
check "unreadable stdin exits 1 with a reason" '[ $rc -eq 1 ] && grep -q "reading standard input" "$tmp/err"'
exit $fail
