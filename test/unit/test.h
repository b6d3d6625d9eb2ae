/*
 * test.h - the tiny test harness of chatbattle's unit tests.
 *
 * A test is a void function; CHECK*() macros record a failure with file and
 * line and return from it.  CHECK_OR(cond, label) records the failure and
 * jumps to label instead, so a test that owns resources (threads, servers,
 * a config) releases them in one teardown block even when a check fails.
 * RUN(fn) prints "ok - fn" or "not ok - fn" (the lines test/run counts);
 * test_done() prints the totals and gives main()'s exit status.
 * Diagnostics start with "# ".  WAIT_UNTIL(cond, ms) waits for a condition
 * with a deadline (never a sleep for a guessed time).
 */
#ifndef CB_TEST_H
#define CB_TEST_H

#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int t_passed, t_failed, t_cur_failed;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			printf("# %s:%d: CHECK(%s) failed\n", __FILE__,        \
			       __LINE__, #cond);                               \
			t_cur_failed = 1;                                      \
			return;                                                \
		}                                                              \
	} while (0)

/*
 * CHECK that jumps to the test's teardown (label) instead of returning:
 *
 *     CHECK_OR(srv_up(&s) == 0, out);
 *     ...
 * out:
 *     srv_down(&s);
 */
#define CHECK_OR(cond, label)                                                  \
	do {                                                                   \
		if (!(cond)) {                                                 \
			printf("# %s:%d: CHECK(%s) failed\n", __FILE__,        \
			       __LINE__, #cond);                               \
			t_cur_failed = 1;                                      \
			goto label;                                            \
		}                                                              \
	} while (0)

#define CHECK_INT(a, b)                                                        \
	do {                                                                   \
		long long t_a = (long long)(a), t_b = (long long)(b);          \
		if (t_a != t_b) {                                              \
			printf("# %s:%d: %s == %lld, expected %s == %lld\n",   \
			       __FILE__, __LINE__, #a, t_a, #b, t_b);          \
			t_cur_failed = 1;                                      \
			return;                                                \
		}                                                              \
	} while (0)

#define CHECK_STR(a, b)                                                        \
	do {                                                                   \
		const char *t_a = (a), *t_b = (b);                             \
		if (t_a == NULL || t_b == NULL || strcmp(t_a, t_b) != 0) {     \
			printf("# %s:%d: %s == \"%s\", expected \"%s\"\n",     \
			       __FILE__, __LINE__, #a, t_a ? t_a : "(null)",   \
			       t_b ? t_b : "(null)");                          \
			t_cur_failed = 1;                                      \
			return;                                                \
		}                                                              \
	} while (0)

#define RUN(fn) t_run(#fn, fn)

static inline void t_run(const char *name, void (*fn)(void))
{
	/* As the daemon does (run.c): a peer that closes first gives EPIPE,
	 * not a SIGPIPE that kills the test (test_mt_irc died of one when its
	 * TLS server wrote to a client that had refused its certificate). */
	signal(SIGPIPE, SIG_IGN);
	t_cur_failed = 0;
	fn();
	if (t_cur_failed) {
		printf("not ok - %s\n", name);
		t_failed++;
	} else {
		printf("ok - %s\n", name);
		t_passed++;
	}
	fflush(stdout);
}

static inline int test_done(void)
{
	printf("# %d passed, %d failed\n", t_passed, t_failed);
	return t_failed ? 1 : 0;
}

/* Monotonic milliseconds, for deadlines in tests that wait on conditions. */
static inline int64_t t_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * WAIT_UNTIL_DO(cond, ms, step...): evaluates cond until it holds or ms
 * milliseconds have passed, running step between two evaluations (what
 * makes progress: pump an event loop, drain a ring, or wait on it with a
 * timeout).  Its value is the last cond (true: it held in time).  Bounded:
 * at most ms plus one step.  WAIT_UNTIL(cond, ms) re-checks every 2 ms.
 */
#define WAIT_UNTIL_DO(cond, ms, ...)                                           \
	({                                                                     \
		int64_t t_wait_end_ = t_now_ms() + (ms);                       \
		bool t_wait_ok_;                                               \
		while (!(t_wait_ok_ = (cond)) && t_now_ms() < t_wait_end_) {   \
			__VA_ARGS__;                                           \
		}                                                              \
		t_wait_ok_;                                                    \
	})

#define WAIT_UNTIL(cond, ms) WAIT_UNTIL_DO(cond, ms, poll(NULL, 0, 2))

/* The repository root (tests run from it; $CB_ROOT overrides). */
static inline const char *t_root(void)
{
	const char *r = getenv("CB_ROOT");

	return r ? r : ".";
}

#endif
