/*
 * ring.h - bounded single-producer single-consumer ring of variable-length
 * records, lock-free (C11 atomics, acquire/release), the only structure that
 * crosses threads on the hot path.
 *
 * Records are byte strings of 1..cb_ring_max_record() bytes stored inline
 * (no pointer chasing, no malloc per record).  Both sides work in batches:
 *
 *   producer:  p = cb_ring_reserve(r, len) ... fill p ... (repeat)
 *              cb_ring_commit(r)        publishes every reserved record
 *   consumer:  while ((p = cb_ring_read(r, &len))) ... use p ...
 *              cb_ring_release(r)       returns the space of every read record
 *
 * A pointer from cb_ring_read() stays valid until cb_ring_release().
 * Ownership of a record's bytes moves from producer to consumer at commit.
 *
 * Waiting: a side that finds the ring empty (consumer) or full (producer)
 * spins briefly, then parks on an eventfd.  The other side wakes it at most
 * once per commit/release, and only when it is parked, so a busy ring makes
 * no system calls.  Threads that run an event loop use cb_ring_*_fd() with
 * cb_ring_arm_*() instead of the blocking waits.
 *
 * Exactly one thread may call the producer functions and exactly one thread
 * the consumer functions; the statistics functions may be called from any
 * thread.
 */
#ifndef CHATBATTLE_RING_H
#define CHATBATTLE_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cb_ring;

/*
 * Creates a ring of capacity_bytes (rounded up to a power of two, at least
 * 4096).  name appears in /metrics.  Returns 0 or a negative cb_err.
 */
int cb_ring_new(struct cb_ring **out, size_t capacity_bytes, const char *name,
		char *errstr, size_t errstr_size);
/* Frees the ring.  Both threads must have stopped using it. */
void cb_ring_free(struct cb_ring *r);

/* The largest record this ring accepts (a quarter of its capacity). */
uint32_t cb_ring_max_record(const struct cb_ring *r);

/* --- producer side --- */

/*
 * Reserves len bytes (1..max_record) for a record and returns where to write
 * them, or NULL when the ring lacks the space now (or len is out of range).
 * The record becomes visible at the next cb_ring_commit().
 */
void *cb_ring_reserve(struct cb_ring *r, uint32_t len);

/*
 * Shrinks the most recent reservation to len bytes (len <= reserved length),
 * for producers that reserve the worst case and then write less.
 */
void cb_ring_shrink(struct cb_ring *r, uint32_t len);

/* Publishes all reserved records; wakes the consumer if it is parked. */
void cb_ring_commit(struct cb_ring *r);

/* Copies one record in and commits it.  Returns 0 or CB_E_FULL. */
int cb_ring_push(struct cb_ring *r, const void *data, uint32_t len);

/*
 * Waits until a record of len bytes fits, spinning briefly and then parking,
 * for at most timeout_ms (-1: no limit).  Returns 0 when it fits, or
 * CB_E_TIMEOUT.  Counts a back-pressure event in the ring's statistics.
 */
int cb_ring_wait_space(struct cb_ring *r, uint32_t len, int timeout_ms);

/* An eventfd that becomes readable after cb_ring_arm_producer() returned true
 * and the consumer then released space. */
int cb_ring_producer_fd(const struct cb_ring *r);

/*
 * For event loops: returns true when a record of len bytes still does not fit
 * and the producer is now parked (wait on cb_ring_producer_fd(), then call
 * cb_ring_drain_fd()), false when it fits now.
 */
bool cb_ring_arm_producer(struct cb_ring *r, uint32_t len);

/* --- consumer side --- */

/*
 * Returns the next unread record and its length, or NULL when none is
 * committed.  The bytes stay valid until cb_ring_release().
 */
const void *cb_ring_read(struct cb_ring *r, uint32_t *len);

/* Frees every record read so far; wakes the producer if it is parked. */
void cb_ring_release(struct cb_ring *r);

/*
 * Waits until a record is available, spinning briefly and then parking, for
 * at most timeout_ms (-1: no limit).  Returns 0 when one is available, or
 * CB_E_TIMEOUT when the time ran out or cb_ring_kick() was called during the
 * wait.  Spurious eventfd wake-ups never end the wait early.
 */
int cb_ring_wait(struct cb_ring *r, int timeout_ms);

/* Ends a consumer's current cb_ring_wait() without publishing anything,
 * e.g. to make it notice a shutdown flag.  Any thread.  A kick made while
 * no wait is in progress ends the next wait at once, so a kick is never
 * lost; several kicks before a wait end only that one wait. */
void cb_ring_kick(struct cb_ring *r);

/* An eventfd that becomes readable after cb_ring_arm_consumer() returned true
 * and the producer then committed. */
int cb_ring_consumer_fd(const struct cb_ring *r);

/*
 * For event loops: returns true when the ring is still empty and the consumer
 * is now parked (wait on cb_ring_consumer_fd()), false when records are ready.
 */
bool cb_ring_arm_consumer(struct cb_ring *r);

/* Empties an eventfd after it became readable. */
void cb_ring_drain_fd(int fd);

/* --- statistics (any thread, relaxed reads) --- */

struct cb_ring_stats {
	const char *name;
	uint64_t capacity;      /* bytes */
	uint64_t used;          /* bytes committed and not yet released */
	uint64_t records_in;    /* records committed */
	uint64_t records_out;   /* records released */
	uint64_t full_waits;    /* times the producer had to wait for space */
	uint64_t consumer_wakes; /* eventfd wake-ups of a parked consumer */
	uint64_t producer_wakes; /* eventfd wake-ups of a parked producer */
	int consumer_parked;     /* the consumer is parked right now */
	int producer_parked;     /* the producer is parked right now */
};

void cb_ring_stats(const struct cb_ring *r, struct cb_ring_stats *out);

#endif
