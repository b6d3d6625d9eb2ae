#!/usr/bin/env bash
# systemd.sh - the unit file is valid (systemd-analyze verify) and hardened
# (systemd-analyze security exposure below 2.0), and `make install` puts the
# binary, man pages, data files and unit where they belong.
set -uo pipefail
cd "${CB_ROOT:-.}" || exit 2
fail=0
ok() { echo "ok - $1"; }
nok() { echo "not ok - $1"; fail=1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# verify checks that ExecStart exists: point it at the built binary.
sed "s|/usr/local/bin/chatbattle|$PWD/chatbattle|" chatbattle.service >"$tmp/chatbattle.service"
if out=$(systemd-analyze verify --man=no "$tmp/chatbattle.service" 2>&1) && [ -z "$out" ]; then
	ok "systemd-analyze verify chatbattle.service is clean"
else
	printf '%s\n' "$out" | sed 's/^/# /'
	nok "systemd-analyze verify chatbattle.service is clean"
fi
score=$(systemd-analyze security --offline=true "$tmp/chatbattle.service" 2>/dev/null |
	sed -n 's/.*Overall exposure level for chatbattle.service: \([0-9.]*\).*/\1/p')
echo "# systemd-analyze security exposure: ${score:-?}"
if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s < 2.0) }'; then
	ok "security exposure $score is below 2.0"
else
	nok "security exposure ${score:-unknown} is below 2.0"
fi

if make -s install NO_DEPS=1 DESTDIR="$tmp/root" PREFIX=/usr >"$tmp/install.log" 2>&1 &&
	[ -x "$tmp/root/usr/bin/chatbattle" ] &&
	[ -f "$tmp/root/usr/share/man/man1/chatbattle.1" ] &&
	[ -f "$tmp/root/usr/share/man/man5/chatbattle.conf.5" ] &&
	grep -q '^ExecStart=/usr/bin/chatbattle run$' "$tmp/root/usr/lib/systemd/system/chatbattle.service"; then
	ok "make install places binary, man pages and unit (ExecStart follows BINDIR)"
else
	sed 's/^/# /' "$tmp/install.log"
	nok "make install places binary, man pages and unit (ExecStart follows BINDIR)"
fi
exit $fail
