# chatbattle - one POSIX-leaning Makefile (GNU make features kept to
# wildcard/filter/patsubst).  Targets:
#   all (default)  ./chatbattle, release build (-O2)
#   test           unit tests under ASan/UBSan, threaded tests under TSan,
#                  lint, then the integration tier (real Kafka + Cassandra)
#                  and the cluster tier (3 brokers + 3 nodes);
#                  ends with "N passed, M failed"
#   test-cluster   the cluster tier alone (test/cluster/run)
#   check          alias of test
#   bench          benchmarks; each prints its figures and targets
#   fuzz           libFuzzer targets for FUZZ_SECONDS each (clang)
#   lint           mandoc -T lint, banned functions, man/table agreement
#   install        binary, man pages, data files (topics/, cql/), systemd
#                  unit, /etc/chatbattle/chatbattle.env (0600, only if absent)
#   demo           tools/demo: local Kafka + Cassandra, simulator, chatbattle,
#                  dashboard URL; Ctrl-C stops what it started
#   clean          remove build outputs
# Every top-level target first runs tools/deps.sh, which installs the Debian
# packages that are missing (set NO_DEPS=1 to skip that step).

VERSION    = 0.1.0
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
DATADIR    ?= $(PREFIX)/share/chatbattle
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
DESTDIR    ?=

CC      ?= cc
PKGS     = rdkafka openssl jansson libevent libevent_openssl libevent_pthreads libmicrohttpd liblz4
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))

WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
BASE_CFLAGS = -std=c11 -D_GNU_SOURCE -pthread -Iinclude -Isrc -Ibuild/gen $(WARN) \
	-DCB_VERSION='"$(VERSION)"' -DCB_DATADIR='"$(DATADIR)"' $(PKG_CFLAGS)
LDLIBS   = $(PKG_LIBS) -lm -pthread

REL_CFLAGS  = -O2 -g $(BASE_CFLAGS)
ASAN_CFLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined $(BASE_CFLAGS)
TSAN_CFLAGS = -O1 -g -fsanitize=thread $(BASE_CFLAGS)

SRCS      = $(wildcard src/*.c)
LIB_SRCS  = $(filter-out src/main.c,$(SRCS))
HDRS      = $(wildcard include/chatbattle/*.h) $(wildcard src/*.def) $(wildcard src/*.h)
UNIT      = $(wildcard test/unit/test_*.c)
MT_UNIT   = $(wildcard test/unit/test_mt_*.c)
BENCH     = $(wildcard test/bench/bench_*.c)
FUZZ      = $(wildcard test/fuzz/fuzz_*.c)
GEN       = $(wildcard build/gen/*.h)

objs = $(patsubst src/%.c,build/$(1)/%.o,$(2))

.PHONY: all deps chatbattle-bin test check test-unit test-cluster unit-bins bench bench-bins \
	fuzz fuzz-bins lint install uninstall clean demo FORCE

all: deps
	@$(MAKE) --no-print-directory chatbattle-bin

deps:
	@if [ -z "$(NO_DEPS)" ]; then tools/deps.sh build; fi

chatbattle-bin: chatbattle

chatbattle: $(call objs,rel,$(SRCS))
	$(CC) $(REL_CFLAGS) -o $@ $^ $(LDLIBS)

build/rel/%.o: src/%.c $(HDRS) $(GEN) build/rel/.datadir
	@mkdir -p $(@D)
	$(CC) $(REL_CFLAGS) -c -o $@ $<

# The release objects carry DATADIR (-DCB_DATADIR, where the installed binary
# finds topics/ and cql/): `make` then `make install PREFIX=/usr` must not
# install objects built for /usr/local.  The stamp changes only with DATADIR.
build/rel/.datadir: FORCE
	@mkdir -p $(@D)
	@[ "$$(cat $@ 2>/dev/null)" = "$(DATADIR)" ] || echo "$(DATADIR)" >$@

FORCE:

build/asan/%.o: src/%.c $(HDRS) $(GEN)
	@mkdir -p $(@D)
	$(CC) $(ASAN_CFLAGS) -c -o $@ $<

build/tsan/%.o: src/%.c $(HDRS) $(GEN)
	@mkdir -p $(@D)
	$(CC) $(TSAN_CFLAGS) -c -o $@ $<

# The dashboard (web/) embedded into the binary: only src/http_assets.c
# includes the generated header.
build/gen/assets.h: tools/embed.sh $(wildcard web/*)
	@mkdir -p $(@D)
	tools/embed.sh web $@

build/rel/http_assets.o build/asan/http_assets.o build/tsan/http_assets.o \
	build/fuzz/http_assets.o: build/gen/assets.h

build/asan/chatbattle: $(call objs,asan,$(SRCS))
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(LDLIBS)

build/asan/test_%: test/unit/test_%.c $(wildcard test/unit/*.h) $(call objs,asan,$(LIB_SRCS))
	$(CC) $(ASAN_CFLAGS) -Itest/unit -o $@ $< $(call objs,asan,$(LIB_SRCS)) $(LDLIBS)

build/tsan/test_%: test/unit/test_%.c $(wildcard test/unit/*.h) $(call objs,tsan,$(LIB_SRCS))
	$(CC) $(TSAN_CFLAGS) -Itest/unit -o $@ $< $(call objs,tsan,$(LIB_SRCS)) $(LDLIBS)

build/rel/bench_%: test/bench/bench_%.c $(call objs,rel,$(LIB_SRCS))
	$(CC) $(REL_CFLAGS) -Itest/unit -o $@ $< $(call objs,rel,$(LIB_SRCS)) $(LDLIBS)

unit-bins: chatbattle build/asan/chatbattle \
	$(patsubst test/unit/%.c,build/asan/%,$(UNIT)) \
	$(patsubst test/unit/%.c,build/tsan/%,$(MT_UNIT))

test: deps
	@if [ -z "$(NO_DEPS)" ]; then tools/deps.sh test; fi
	@$(MAKE) --no-print-directory unit-bins
	@test/run

check: test

# Unit tier only (no Kafka or Cassandra): fast feedback while editing.
test-unit: deps
	@$(MAKE) --no-print-directory unit-bins
	@CB_SKIP_INTEGRATION=1 test/run

# The cluster tier alone: test/infra/cluster's three brokers and three
# Cassandra nodes, started and stopped by test/cluster/run.
test-cluster: deps
	@if [ -z "$(NO_DEPS)" ]; then tools/deps.sh test; fi
	@$(MAKE) --no-print-directory chatbattle
	@test/cluster/run

bench-bins: chatbattle $(patsubst test/bench/%.c,build/rel/%,$(BENCH))

bench: deps
	@if [ -z "$(NO_DEPS)" ]; then tools/deps.sh bench; fi
	@$(MAKE) --no-print-directory bench-bins
	@test/bench/run

# libFuzzer needs clang; every source is rebuilt with it under build/fuzz.
FUZZ_CC      = clang
FUZZ_CFLAGS  = -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
	-fno-sanitize-recover=undefined $(BASE_CFLAGS)
FUZZ_SECONDS ?= 60

build/fuzz/%.o: src/%.c $(HDRS) $(GEN)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

build/fuzz/fuzz_%: test/fuzz/fuzz_%.c $(call objs,fuzz,$(LIB_SRCS))
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(call objs,fuzz,$(LIB_SRCS)) $(LDLIBS)

fuzz-bins: $(patsubst test/fuzz/%.c,build/fuzz/%,$(FUZZ))

fuzz: deps
	@if [ -z "$(NO_DEPS)" ]; then tools/deps.sh fuzz; fi
	@$(MAKE) --no-print-directory fuzz-bins
	@FUZZ_SECONDS=$(FUZZ_SECONDS) test/fuzz/run

lint: deps
	@if [ -z "$(NO_DEPS)" ]; then tools/deps.sh test; fi
	@tools/lint.sh

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(DATADIR)/topics $(DESTDIR)$(DATADIR)/cql $(DESTDIR)$(UNITDIR)
	install -m 0755 chatbattle $(DESTDIR)$(BINDIR)/chatbattle
	sed 's|/usr/local/bin/chatbattle|$(BINDIR)/chatbattle|' chatbattle.service >$(DESTDIR)$(UNITDIR)/chatbattle.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/chatbattle.service
	install -m 0644 man/chatbattle.1 $(DESTDIR)$(MANDIR)/man1/chatbattle.1
	install -m 0644 man/chatbattle.conf.5 $(DESTDIR)$(MANDIR)/man5/chatbattle.conf.5
	for f in topics/*.conf; do [ -f "$$f" ] && install -m 0644 "$$f" $(DESTDIR)$(DATADIR)/topics/; done; true
	for f in cql/*.cql; do [ -f "$$f" ] && install -m 0644 "$$f" $(DESTDIR)$(DATADIR)/cql/; done; true
	install -m 0644 chatbattle.env.example $(DESTDIR)$(DATADIR)/chatbattle.env.example
	@# The secrets file: created (0600, all commented) only when absent, so a
	@# re-install never overwrites what an operator put there.
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/chatbattle
	[ -e $(DESTDIR)$(SYSCONFDIR)/chatbattle/chatbattle.env ] || \
		install -m 0600 chatbattle.env.example $(DESTDIR)$(SYSCONFDIR)/chatbattle/chatbattle.env

# The README's first command.  tools/demo installs what is missing (unless
# NO_DEPS=1) and builds by itself; CHANNEL=foo watches a real channel.
demo:
	@tools/demo

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/chatbattle $(DESTDIR)$(MANDIR)/man1/chatbattle.1 \
		$(DESTDIR)$(MANDIR)/man5/chatbattle.conf.5 $(DESTDIR)$(UNITDIR)/chatbattle.service
	rm -rf $(DESTDIR)$(DATADIR)

clean:
	rm -rf build chatbattle
