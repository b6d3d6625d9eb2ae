#!/usr/bin/env bash
# systemd.sh - the unit file is valid (systemd-analyze verify), hardened
# (systemd-analyze security exposure at most 1.2, the directives the issue
# names present), wired to the daemon's own protocol (Type=notify,
# WatchdogSec, reload by SIGHUP, an EnvironmentFile for secrets), the
# EnvironmentFile example names every secret setting of src/options.def, and
# `make install` puts the binary, man pages, data files, the unit and the
# secrets file where they belong.  test/unit/sd_notify.sh checks the daemon's
# side of the notify protocol.
set -uo pipefail
cd "${CB_ROOT:-.}" || exit 2
fail=0
ok() { echo "ok - $1"; }
nok() { echo "not ok - $1"; fail=1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unit=chatbattle.service
# The largest exposure accepted: the figure measured when the unit was last
# hardened (systemd 252), so that a directive dropped by mistake shows.
max_exposure=1.2

# verify checks that ExecStart exists: point it at the built binary.
sed "s|/usr/local/bin/chatbattle|$PWD/chatbattle|" "$unit" >"$tmp/chatbattle.service"
if out=$(systemd-analyze verify --man=no "$tmp/chatbattle.service" 2>&1) && [ -z "$out" ]; then
	ok "systemd-analyze verify chatbattle.service is clean"
else
	printf '%s\n' "$out" | sed 's/^/# /'
	nok "systemd-analyze verify chatbattle.service is clean"
fi
score=$(systemd-analyze security --offline=true "$tmp/chatbattle.service" 2>/dev/null |
	sed -n 's/.*Overall exposure level for chatbattle.service: \([0-9.]*\).*/\1/p')
echo "# systemd-analyze security exposure: ${score:-?}"
if [ -n "$score" ] && awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s <= m) }'; then
	ok "security exposure $score is at most $max_exposure"
else
	nok "security exposure ${score:-unknown} is at most $max_exposure"
fi

# The service's contract with the daemon and the operator.
want=(Type=notify NotifyAccess=main "ExecReload=/bin/kill -HUP \$MAINPID" WatchdogSec=
	EnvironmentFile=-/etc/chatbattle/chatbattle.env DynamicUser=yes ProtectSystem=strict
	NoNewPrivileges=yes PrivateTmp=yes "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX"
	SystemCallFilter=@system-service CapabilityBoundingSet= MemoryDenyWriteExecute=yes
	Restart=on-failure RestartPreventExitStatus=2)
missing=()
for d in "${want[@]}"; do
	grep -qF -- "$d" <(grep -v '^#' "$unit") || missing+=("$d")
done
if [ ${#missing[@]} -eq 0 ]; then
	ok "the unit has Type=notify, the watchdog, reload by SIGHUP, the EnvironmentFile and the hardening directives"
else
	printf '# missing: %s\n' "${missing[@]}"
	nok "the unit has Type=notify, the watchdog, reload by SIGHUP, the EnvironmentFile and the hardening directives"
fi
# The daemon pings at half the interval; systemd must see a start within
# TimeoutStartSec before it would kill, and WatchdogSec must leave room for
# a loaded machine.
wd=$(sed -n 's/^WatchdogSec=\([0-9]*\)s\?$/\1/p' "$unit")
if [ -n "$wd" ] && [ "$wd" -ge 10 ]; then
	ok "WatchdogSec ($wd s) leaves the main thread room (pings every $((wd / 2)) s)"
else
	nok "WatchdogSec (${wd:-unset}) is at least 10 s"
fi

# Every secret setting (type SECRET, with an environment variable) appears,
# commented out, in the EnvironmentFile example.
# (Rows span lines: one row per line first.)
secrets=$(tr '\n' ' ' <src/options.def | sed 's/CB_OPT(/\nCB_OPT(/g' |
	sed -n 's/^CB_OPT([a-z_0-9]*, *SECRET, *"[a-z0-9-]*", *[^,]*, *"\([A-Z_0-9]*\)".*/\1/p')
absent=()
for v in $secrets; do
	grep -q "^#$v=" chatbattle.env.example || absent+=("$v")
done
if [ -n "$secrets" ] && [ ${#absent[@]} -eq 0 ]; then
	ok "chatbattle.env.example lists every secret setting, commented ($(echo $secrets))"
else
	nok "chatbattle.env.example lists every secret setting, commented (missing: ${absent[*]:-none found})"
fi
if grep -v '^#' chatbattle.env.example | grep -q '[^[:space:]]'; then
	nok "chatbattle.env.example sets nothing by default"
else
	ok "chatbattle.env.example sets nothing by default"
fi

# make install, twice (the second must keep an edited secrets file).  The
# default PREFIX (that of the built ./chatbattle: another PREFIX would
# rebuild it, see build/rel/.datadir in the Makefile) with BINDIR moved.
root="$tmp/root"
inst=(install NO_DEPS=1 DESTDIR="$root" BINDIR=/opt/cb/bin)
if make -s "${inst[@]}" >"$tmp/install.log" 2>&1 &&
	[ -x "$root/opt/cb/bin/chatbattle" ] &&
	[ -f "$root/usr/local/share/man/man1/chatbattle.1" ] &&
	[ -f "$root/usr/local/share/man/man5/chatbattle.conf.5" ] &&
	grep -q '^ExecStart=/opt/cb/bin/chatbattle run$' "$root/usr/local/lib/systemd/system/chatbattle.service"; then
	ok "make install places binary, man pages and unit (ExecStart follows BINDIR)"
else
	sed 's/^/# /' "$tmp/install.log"
	nok "make install places binary, man pages and unit (ExecStart follows BINDIR)"
fi
data_ok=1
for f in topics/*.conf cql/*.cql; do
	cmp -s "$f" "$root/usr/local/share/chatbattle/$f" || { echo "# not installed: $f"; data_ok=0; }
done
if [ "$data_ok" = 1 ]; then ok "make install places every topics/ and cql/ file in DATADIR"; else
	nok "make install places every topics/ and cql/ file in DATADIR"; fi
envf="$root/etc/chatbattle/chatbattle.env"
if [ -f "$envf" ] && [ "$(stat -c %a "$envf")" = 600 ] && cmp -s chatbattle.env.example "$envf" &&
	[ -f "$root/usr/local/share/chatbattle/chatbattle.env.example" ]; then
	ok "make install creates /etc/chatbattle/chatbattle.env, mode 0600, from the example"
else
	nok "make install creates /etc/chatbattle/chatbattle.env, mode 0600, from the example"
fi
echo "TWITCH_OAUTH_TOKEN=kept" >>"$envf"
if make -s "${inst[@]}" >"$tmp/install.log" 2>&1 &&
	grep -q '^TWITCH_OAUTH_TOKEN=kept$' "$envf"; then
	ok "a second make install keeps the operator's chatbattle.env"
else
	sed 's/^/# /' "$tmp/install.log"
	nok "a second make install keeps the operator's chatbattle.env"
fi
# The installed binary finds the installed data files (CB_DATADIR), once
# some source uses it.
if grep -q 'CB_DATADIR' src/*.c; then
	if grep -aq '/usr/local/share/chatbattle' "$root/opt/cb/bin/chatbattle"; then
		ok "the installed binary looks for its data in DATADIR (/usr/local/share/chatbattle)"
	else
		nok "the installed binary looks for its data in DATADIR (/usr/local/share/chatbattle)"
	fi
else
	echo "# no source uses CB_DATADIR yet: the installed data path is not checked"
fi
exit $fail
