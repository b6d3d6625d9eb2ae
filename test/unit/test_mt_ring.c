/*
 * test_mt_ring.c - two-thread stress of the SPSC ring: a producer sends
 * sequence-numbered records of varying size in varying batches, the consumer
 * checks every record arrives once, in order, intact.  Both sides park when
 * the ring is empty or full, so the wake-up protocol is exercised too.  Runs
 * under ASan/UBSan and (with fewer items) under TSan.
 *
 * $CB_RING_STRESS_ITEMS sets the item count (default 200 million; test/run
 * passes a smaller count to the TSan build).
 */
#include <pthread.h>
#include <stdatomic.h>

#include "chatbattle/err.h"
#include "chatbattle/ring.h"
#include "test.h"

static uint64_t items;

struct side {
	struct cb_ring *r;
	uint64_t done;
	uint64_t errors;
	uint64_t first_bad;
};

static inline uint32_t size_of(uint64_t seq)
{
	/* Mostly small (8..24 bytes, like acks), sometimes large. */
	return (seq % 97) == 0 ? 8 + (uint32_t)(seq % 600) : 8 + (uint32_t)(seq % 3) * 8;
}

static void *producer(void *arg)
{
	struct side *s = arg;
	uint64_t seq = 0;

	while (seq < items) {
		uint32_t batch = 1 + (uint32_t)(seq % 64);

		for (uint32_t b = 0; b < batch && seq < items; b++) {
			uint32_t len = size_of(seq);
			uint8_t *p = cb_ring_reserve(s->r, len);

			if (p == NULL) {
				cb_ring_commit(s->r);
				if (cb_ring_wait_space(s->r, len, 5000) != 0) {
					s->errors++;
					return NULL;
				}
				p = cb_ring_reserve(s->r, len);
			}
			memcpy(p, &seq, 8);
			if (len > 8)
				p[len - 1] = (uint8_t)seq;
			seq++;
		}
		cb_ring_commit(s->r);
	}
	s->done = seq;
	return NULL;
}

static void *consumer(void *arg)
{
	struct side *s = arg;
	uint64_t expect = 0;
	uint32_t len;

	while (expect < items) {
		const uint8_t *p = cb_ring_read(s->r, &len);
		uint64_t seq;

		if (p == NULL) {
			cb_ring_release(s->r);
			if (cb_ring_wait(s->r, 5000) != 0 &&
			    cb_ring_read(s->r, &len) == NULL) {
				s->errors++; /* 5 s without data: lost wake-up */
				return NULL;
			}
			continue;
		}
		memcpy(&seq, p, 8);
		if (seq != expect || len != size_of(seq) ||
		    (len > 8 && p[len - 1] != (uint8_t)seq)) {
			if (s->errors++ == 0)
				s->first_bad = expect;
		}
		expect++;
		if ((expect & 255) == 0)
			cb_ring_release(s->r);
	}
	cb_ring_release(s->r);
	s->done = expect;
	return NULL;
}

static void two_threads_lose_and_duplicate_nothing(void)
{
	struct cb_ring *r = NULL;
	struct side ps = {0}, cs = {0};
	pthread_t pt, ct;
	struct cb_ring_stats st;
	char err[128];

	/* A small ring so that it is full and empty often. */
	CHECK(cb_ring_new(&r, 16384, "stress", err, sizeof(err)) == 0);
	ps.r = cs.r = r;
	CHECK(pthread_create(&ct, NULL, consumer, &cs) == 0);
	CHECK(pthread_create(&pt, NULL, producer, &ps) == 0);
	pthread_join(pt, NULL);
	pthread_join(ct, NULL);
	cb_ring_stats(r, &st);
	printf("# %llu items; consumer wake-ups %llu, producer wake-ups %llu, "
	       "full waits %llu\n",
	       (unsigned long long)items,
	       (unsigned long long)st.consumer_wakes,
	       (unsigned long long)st.producer_wakes,
	       (unsigned long long)st.full_waits);
	if (cs.errors)
		printf("# first bad record at %llu\n",
		       (unsigned long long)cs.first_bad);
	CHECK_INT(ps.errors, 0);
	CHECK_INT(cs.errors, 0);
	CHECK_INT(ps.done, items);
	CHECK_INT(cs.done, items);
	CHECK_INT(st.records_in, items);
	CHECK_INT(st.records_out, items);
	CHECK_INT(st.used, 0);
	cb_ring_free(r);
}

/* A consumer parked on the eventfd with a long timeout must be woken by the
 * first commit, not by its timeout. */
static void *late_push(void *arg)
{
	struct cb_ring *r = arg;
	struct cb_ring_stats st;
	/* Push only once the consumer has parked, so the wake path is taken. */
	(void)WAIT_UNTIL_DO((cb_ring_stats(r, &st), st.consumer_parked), 5000,
			    (void)0);
	cb_ring_push(r, "x", 1);
	return NULL;
}

static void parked_consumer_wakes_on_commit(void)
{
	struct cb_ring *r = NULL;
	pthread_t t;
	char err[128];
	int64_t t0;

	CHECK(cb_ring_new(&r, 4096, "park", err, sizeof(err)) == 0);
	t0 = t_now_ms();
	CHECK(pthread_create(&t, NULL, late_push, r) == 0);
	CHECK_INT(cb_ring_wait(r, 30000), 0);
	pthread_join(t, NULL);
	CHECK(t_now_ms() - t0 < 10000);
	{
		struct cb_ring_stats st;

		cb_ring_stats(r, &st);
		CHECK_INT(st.consumer_wakes, 1);
	}
	cb_ring_free(r);
}

int main(void)
{
	const char *n = getenv("CB_RING_STRESS_ITEMS");

	items = n ? strtoull(n, NULL, 10) : 200000000ull;
	RUN(two_threads_lose_and_duplicate_nothing);
	RUN(parked_consumer_wakes_on_commit);
	return test_done();
}
