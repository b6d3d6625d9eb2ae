#!/bin/sh
# deps.sh GROUP... - install the Debian packages chatbattle needs that are
# missing.  Groups: build, test, bench, fuzz, all.  Runs "apt-get update"
# once, and only when something is missing; uses sudo when not root.
set -eu

build="gcc make pkg-config librdkafka-dev libssl-dev libjansson-dev libevent-dev libmicrohttpd-dev liblz4-dev"
# test: man page lint, Kafka/Cassandra clients for checks, the local stack's
# JVMs and Maven, javac for the Kafka Streams reference (test/parity), the
# browser test, and the compose/systemd checkers.
test="$build mandoc kcat python3-cassandra openjdk-17-jre-headless openjdk-17-jdk-headless maven curl chromium nodejs npm docker-compose systemd"
bench="$test wrk"
fuzz="$build clang libclang-rt-14-dev"

want=""
for g in "${@:-build}"; do
	case "$g" in
	build) want="$want $build" ;;
	test) want="$want $test" ;;
	bench) want="$want $bench" ;;
	fuzz) want="$want $fuzz" ;;
	all) want="$want $bench $fuzz" ;;
	*) echo "deps.sh: unknown group $g (build, test, bench, fuzz, all)" >&2; exit 2 ;;
	esac
done

missing=""
for p in $want; do
	case " $missing " in *" $p "*) continue ;; esac
	# Node and npm may come from elsewhere than Debian (nvm, NodeSource).
	case "$p" in
	nodejs) command -v node >/dev/null 2>&1 && continue ;;
	npm) command -v npm >/dev/null 2>&1 && continue ;;
	esac
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps.sh: missing packages:$missing (and no apt-get here: install them by hand)" >&2
	exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
		echo "deps.sh: missing packages:$missing; run as root or install sudo" >&2
		exit 1
	fi
fi
echo "deps.sh: installing:$missing" >&2
log=$(mktemp)
if ! { $sudo apt-get update -qq &&
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing; } >"$log" 2>&1; then
	tail -n 30 "$log" >&2
	rm -f "$log"
	echo "deps.sh: apt-get failed (output above)" >&2
	exit 1
fi
rm -f "$log"
