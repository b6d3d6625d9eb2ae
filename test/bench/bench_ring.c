/*
 * bench_ring.c - SPSC ring throughput between two threads: 8-byte items
 * moved one at a time (commit and release per item) and in batches (one
 * commit per 64 items, one release per 64).  Target (issue 2): >= 20 million
 * items/s batched on a 2-core machine.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chatbattle/ring.h"

struct job {
	struct cb_ring *r;
	uint64_t n;
	uint32_t batch;
	uint64_t sum;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *produce(void *arg)
{
	struct job *j = arg;
	uint64_t i = 0;

	while (i < j->n) {
		uint32_t k = 0;

		for (; k < j->batch && i < j->n; k++) {
			uint64_t *p = cb_ring_reserve(j->r, 8);

			if (p == NULL) {
				cb_ring_commit(j->r);
				cb_ring_wait_space(j->r, 8, -1);
				p = cb_ring_reserve(j->r, 8);
			}
			*p = i++;
		}
		cb_ring_commit(j->r);
	}
	return NULL;
}

static void *consume(void *arg)
{
	struct job *j = arg;
	uint64_t got = 0, sum = 0;
	uint32_t len, k = 0;

	while (got < j->n) {
		const uint64_t *p = cb_ring_read(j->r, &len);

		if (p == NULL) {
			cb_ring_release(j->r);
			k = 0;
			cb_ring_wait(j->r, 1000);
			continue;
		}
		sum += *p;
		got++;
		if (++k >= j->batch) {
			cb_ring_release(j->r);
			k = 0;
		}
	}
	cb_ring_release(j->r);
	j->sum = sum;
	return NULL;
}

static double run(uint32_t batch, uint64_t n)
{
	struct cb_ring *r;
	struct job pj, cj;
	pthread_t pt, ct;
	char err[128];
	double t0, dt;

	if (cb_ring_new(&r, 1u << 20, "bench", err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	pj = (struct job){r, n, batch, 0};
	cj = pj;
	t0 = now_s();
	pthread_create(&ct, NULL, consume, &cj);
	pthread_create(&pt, NULL, produce, &pj);
	pthread_join(pt, NULL);
	pthread_join(ct, NULL);
	dt = now_s() - t0;
	if (cj.sum != n * (n - 1) / 2) {
		fprintf(stderr, "bench_ring: checksum mismatch\n");
		exit(1);
	}
	cb_ring_free(r);
	return (double)n / dt;
}

int main(void)
{
	uint64_t n = 50000000;
	double single = run(1, n / 2);
	double batched = run(64, n);

	printf("ring  1-item transfer       %8.1f M items/s\n", single / 1e6);
	printf("ring  batched (64/commit)   %8.1f M items/s   target >= 20 M "
	       "items/s  %s\n",
	       batched / 1e6, batched >= 20e6 ? "MET" : "MISSED");
	return 0;
}
