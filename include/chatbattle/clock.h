/*
 * clock.h - the clocks and the cheap random numbers every module uses.
 * Header-only, any thread.  Pure code (windows, parser) takes time as an
 * argument instead; these are for the I/O edges.
 */
#ifndef CHATBATTLE_CLOCK_H
#define CHATBATTLE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic time, for deadlines and intervals. */
static inline uint64_t cb_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int64_t cb_mono_ms(void)
{
	return (int64_t)(cb_mono_ns() / 1000000u);
}

/* Wall-clock time since the epoch, for timestamps that leave the process. */
static inline int64_t cb_wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t cb_wall_ms(void)
{
	return cb_wall_us() / 1000;
}

/*
 * xorshift64*: fast pseudo-random numbers for jitter and simulated chat
 * (not for anything secret).  *state must start non-zero.
 */
static inline uint64_t cb_rand_next(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

#endif
