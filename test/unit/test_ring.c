/*
 * test_ring.c - single-thread edge cases of the SPSC ring: empty, full,
 * wrap-around with padding, record limits, shrink, batches, and the
 * arm/eventfd protocol.
 */
#include <poll.h>

#include "chatbattle/err.h"
#include "chatbattle/ring.h"
#include "test.h"

static struct cb_ring *mk(size_t cap)
{
	struct cb_ring *r = NULL;
	char err[128];

	if (cb_ring_new(&r, cap, "test", err, sizeof(err)) != 0)
		printf("# %s\n", err);
	return r;
}

static void empty_ring_reads_nothing(void)
{
	struct cb_ring *r = mk(4096);
	uint32_t len = 99;

	CHECK(r != NULL);
	CHECK(cb_ring_read(r, &len) == NULL);
	CHECK_INT(len, 99);
	CHECK_INT(cb_ring_wait(r, 0), CB_E_TIMEOUT);
	cb_ring_free(r);
}

static void capacity_rounds_up_to_power_of_two(void)
{
	struct cb_ring *r = mk(5000);
	struct cb_ring_stats s;

	CHECK(r != NULL);
	cb_ring_stats(r, &s);
	CHECK_INT(s.capacity, 8192);
	CHECK_INT(cb_ring_max_record(r), 8192 / 4 - 8);
	cb_ring_free(r);
}

static void record_round_trip(void)
{
	struct cb_ring *r = mk(4096);
	const char *p;
	uint32_t len;

	CHECK(cb_ring_push(r, "hello", 5) == 0);
	p = cb_ring_read(r, &len);
	CHECK(p != NULL);
	CHECK_INT(len, 5);
	CHECK(memcmp(p, "hello", 5) == 0);
	CHECK(cb_ring_read(r, &len) == NULL);
	cb_ring_release(r);
	cb_ring_free(r);
}

static void uncommitted_records_are_invisible(void)
{
	struct cb_ring *r = mk(4096);
	uint32_t len;
	char *p = cb_ring_reserve(r, 3);

	CHECK(p != NULL);
	memcpy(p, "abc", 3);
	CHECK(cb_ring_read(r, &len) == NULL);
	cb_ring_commit(r);
	CHECK(cb_ring_read(r, &len) != NULL);
	cb_ring_free(r);
}

static void rejects_empty_and_oversized_records(void)
{
	struct cb_ring *r = mk(4096);

	CHECK(cb_ring_reserve(r, 0) == NULL);
	CHECK(cb_ring_reserve(r, cb_ring_max_record(r) + 1) == NULL);
	CHECK(cb_ring_reserve(r, cb_ring_max_record(r)) != NULL);
	CHECK_INT(cb_ring_wait_space(r, cb_ring_max_record(r) + 1, 0),
		  CB_E_TOOBIG);
	cb_ring_free(r);
}

static void full_ring_refuses_until_released(void)
{
	struct cb_ring *r = mk(4096);
	char buf[56] = {0};
	int pushed = 0;
	uint32_t len;

	/* 56-byte payload + 8-byte header = 64 bytes: exactly 64 fit. */
	while (cb_ring_push(r, buf, sizeof(buf)) == 0)
		pushed++;
	CHECK_INT(pushed, 64);
	CHECK_INT(cb_ring_push(r, buf, 1), CB_E_FULL);
	CHECK_INT(cb_ring_wait_space(r, 1, 0), CB_E_TIMEOUT);
	CHECK(cb_ring_read(r, &len) != NULL);
	/* Read but not released: still full. */
	CHECK_INT(cb_ring_push(r, buf, 1), CB_E_FULL);
	cb_ring_release(r);
	CHECK(cb_ring_push(r, buf, sizeof(buf)) == 0);
	cb_ring_free(r);
}

static void wrap_around_pads_and_keeps_order(void)
{
	struct cb_ring *r = mk(4096);
	uint32_t seq_in = 0, seq_out = 0, len;

	/* Sizes chosen so records straddle the end of the buffer often. */
	for (int round = 0; round < 2000; round++) {
		uint32_t n = 1 + (uint32_t)(round * 37) % 900;

		while (n > 0) {
			uint32_t size = 4 + (seq_in * 13) % 700;
			uint8_t *p = cb_ring_reserve(r, size);

			if (p == NULL)
				break;
			memcpy(p, &seq_in, 4);
			for (uint32_t i = 4; i < size; i++)
				p[i] = (uint8_t)(seq_in + i);
			seq_in++;
			n--;
		}
		cb_ring_commit(r);
		for (;;) {
			const uint8_t *p = cb_ring_read(r, &len);
			uint32_t seq;

			if (p == NULL)
				break;
			memcpy(&seq, p, 4);
			CHECK_INT(seq, seq_out);
			CHECK_INT(len, 4 + (seq * 13) % 700);
			for (uint32_t i = 4; i < len; i++)
				CHECK_INT(p[i], (uint8_t)(seq + i));
			seq_out++;
		}
		cb_ring_release(r);
	}
	CHECK_INT(seq_in, seq_out);
	CHECK(seq_in > 1000);
	cb_ring_free(r);
}

static void shrink_returns_unused_space(void)
{
	struct cb_ring *r = mk(4096);
	char *p = cb_ring_reserve(r, 500);
	const char *q;
	uint32_t len;

	CHECK(p != NULL);
	memcpy(p, "xy", 2);
	cb_ring_shrink(r, 2);
	CHECK(cb_ring_push(r, "z", 1) == 0);
	q = cb_ring_read(r, &len);
	CHECK_INT(len, 2);
	CHECK(memcmp(q, "xy", 2) == 0);
	q = cb_ring_read(r, &len);
	CHECK_INT(len, 1);
	CHECK(q[0] == 'z');
	cb_ring_free(r);
}

static void batch_commit_publishes_all(void)
{
	struct cb_ring *r = mk(4096);
	struct cb_ring_stats s;
	uint32_t len;
	int n = 0;

	for (int i = 0; i < 10; i++) {
		int *p = cb_ring_reserve(r, sizeof(int));

		CHECK(p != NULL);
		*p = i;
	}
	cb_ring_commit(r);
	while (cb_ring_read(r, &len) != NULL)
		n++;
	CHECK_INT(n, 10);
	cb_ring_release(r);
	cb_ring_stats(r, &s);
	CHECK_INT(s.records_in, 10);
	CHECK_INT(s.records_out, 10);
	CHECK_INT(s.used, 0);
	cb_ring_free(r);
}

static void armed_consumer_is_woken_by_commit(void)
{
	struct cb_ring *r = mk(4096);
	struct pollfd pfd = {.fd = cb_ring_consumer_fd(r), .events = POLLIN};
	struct cb_ring_stats s;

	CHECK(cb_ring_arm_consumer(r)); /* empty: parked */
	CHECK_INT(poll(&pfd, 1, 0), 0);
	CHECK(cb_ring_push(r, "a", 1) == 0);
	CHECK_INT(poll(&pfd, 1, 0), 1); /* the commit wrote the eventfd */
	cb_ring_drain_fd(pfd.fd);
	CHECK_INT(poll(&pfd, 1, 0), 0);
	CHECK(!cb_ring_arm_consumer(r)); /* data waiting: not parked */
	/* A second commit while not parked makes no wake-up. */
	CHECK(cb_ring_push(r, "b", 1) == 0);
	CHECK_INT(poll(&pfd, 1, 0), 0);
	cb_ring_stats(r, &s);
	CHECK_INT(s.consumer_wakes, 1);
	cb_ring_free(r);
}

static void armed_producer_is_woken_by_release(void)
{
	struct cb_ring *r = mk(4096);
	struct pollfd pfd = {.fd = cb_ring_producer_fd(r), .events = POLLIN};
	char buf[56] = {0};
	uint32_t len;

	while (cb_ring_push(r, buf, sizeof(buf)) == 0) {
	}
	CHECK(cb_ring_arm_producer(r, sizeof(buf)));
	CHECK_INT(poll(&pfd, 1, 0), 0);
	CHECK(cb_ring_read(r, &len) != NULL);
	cb_ring_release(r);
	CHECK_INT(poll(&pfd, 1, 0), 1);
	CHECK(!cb_ring_arm_producer(r, sizeof(buf)));
	cb_ring_free(r);
}

static void kick_wakes_a_waiting_consumer_without_data(void)
{
	struct cb_ring *r = mk(4096);
	int64_t t0 = t_now_ms();

	cb_ring_kick(r);
	cb_ring_kick(r);
	/* The kick came before the wait: it is not lost. */
	CHECK_INT(cb_ring_wait(r, 10000), CB_E_TIMEOUT);
	CHECK(t_now_ms() - t0 < 5000);
	/* Both kicks were answered by that one wait. */
	t0 = t_now_ms();
	CHECK_INT(cb_ring_wait(r, 100), CB_E_TIMEOUT);
	CHECK(t_now_ms() - t0 >= 100);
	cb_ring_free(r);
}

/*
 * Regression: a producer that sees the parked flag just before the
 * consumer's arm re-check finds data leaves a signal in the eventfd.  The
 * next wait used to return at once with no data (CB_E_TIMEOUT), which made
 * the stress test's consumer give up and the producer time out under load.
 */
static void stale_wake_does_not_end_a_wait_early(void)
{
	struct cb_ring *r = mk(4096);
	uint32_t len;
	int64_t t0;

	CHECK(cb_ring_arm_consumer(r));
	CHECK(cb_ring_push(r, "a", 1) == 0); /* signals the eventfd */
	CHECK(cb_ring_read(r, &len) != NULL); /* consumed without waiting */
	cb_ring_release(r);
	t0 = t_now_ms();
	CHECK_INT(cb_ring_wait(r, 150), CB_E_TIMEOUT);
	CHECK(t_now_ms() - t0 >= 150);
	cb_ring_free(r);
}

int main(void)
{
	RUN(empty_ring_reads_nothing);
	RUN(capacity_rounds_up_to_power_of_two);
	RUN(record_round_trip);
	RUN(uncommitted_records_are_invisible);
	RUN(rejects_empty_and_oversized_records);
	RUN(full_ring_refuses_until_released);
	RUN(wrap_around_pads_and_keeps_order);
	RUN(shrink_returns_unused_space);
	RUN(batch_commit_publishes_all);
	RUN(armed_consumer_is_woken_by_commit);
	RUN(armed_producer_is_woken_by_release);
	RUN(kick_wakes_a_waiting_consumer_without_data);
	RUN(stale_wake_does_not_end_a_wait_early);
	return test_done();
}
