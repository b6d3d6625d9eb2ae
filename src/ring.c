/*
 * ring.c - the SPSC record ring (see ring.h for the contract).
 *
 * Layout: buf is a power-of-two byte array.  head and tail are monotonically
 * increasing byte positions (never wrapped; 2^64 bytes is centuries away);
 * position & mask is the offset in buf.  Each record is an 8-byte header
 * (u32 length, u32 unused) followed by the payload padded to 8 bytes, so every
 * record starts 8-aligned.  A record never straddles the end of buf: when it
 * would, the producer writes a PAD header that tells the consumer to skip to
 * the start.
 *
 * Each side keeps its cursor and a cached copy of the other side's published
 * index on its own cache line, and touches the shared index only when the
 * cached copy says the ring looks full (producer) or empty (consumer).
 *
 * Parking (the lost wake-up problem): a side about to sleep sets its parked
 * flag, issues a full fence, and re-checks the ring; the other side publishes
 * its index, issues a full fence, and then reads the flag.  With a fence on
 * both sides at least one of them sees the other's write (the store-buffer
 * litmus test with fences is forbidden), so either the sleeper sees the new
 * data or the publisher sees the flag and writes the eventfd.
 */
#include <errno.h>
#include <poll.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "chatbattle/clock.h"
#include "chatbattle/err.h"
#include "chatbattle/ring.h"

#define CACHELINE 64
#define HDR 8u
#define PAD_MARK UINT32_MAX
/* Spin this long before parking: comparable to one eventfd wake-up (10-16 us
 * measured here), so a steady stream never pays for a system call. */
#define SPIN_NS 20000

struct cb_ring {
	/* Read-only after creation. */
	uint8_t *buf;
	uint64_t cap;
	uint64_t mask;
	uint32_t max_record;
	int cons_efd;
	int prod_efd;
	char name[48];

	/* Published by the producer. */
	alignas(CACHELINE) _Atomic uint64_t head;
	_Atomic uint64_t records_in;
	_Atomic uint64_t consumer_wakes;
	_Atomic uint64_t full_waits;

	/* Published by the consumer. */
	alignas(CACHELINE) _Atomic uint64_t tail;
	_Atomic uint64_t records_out;
	_Atomic uint64_t producer_wakes;

	/* Producer-private. */
	alignas(CACHELINE) uint64_t p_pos;       /* next reserve position */
	uint64_t p_tail_cache;                   /* last tail seen */
	uint64_t p_last;                         /* header of last reservation */
	uint64_t p_pending;                      /* records reserved, uncommitted */

	/* Consumer-private. */
	alignas(CACHELINE) uint64_t c_pos;       /* next read position */
	uint64_t c_head_cache;                   /* last head seen */
	uint64_t c_pending;                      /* records read, unreleased */
	uint64_t c_kicks_seen;                   /* kicks already answered */

	alignas(CACHELINE) _Atomic int consumer_parked;
	_Atomic uint64_t kicks; /* cb_ring_kick() calls, any thread */
	alignas(CACHELINE) _Atomic int producer_parked;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static inline uint64_t slot_size(uint32_t len)
{
	return HDR + (((uint64_t)len + 7u) & ~(uint64_t)7u);
}

int cb_ring_new(struct cb_ring **out, size_t capacity_bytes, const char *name,
		char *errstr, size_t errstr_size)
{
	struct cb_ring *r = NULL;
	uint64_t cap = 4096;
	int err = 0;

	*out = NULL;
	while (cap < capacity_bytes && cap < ((uint64_t)1 << 40))
		cap <<= 1;

	r = aligned_alloc(CACHELINE, sizeof(*r));
	if (r == NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				"ring %s: cannot allocate", name);
		goto out;
	}
	memset(r, 0, sizeof(*r));
	r->cons_efd = r->prod_efd = -1;
	r->buf = aligned_alloc(CACHELINE, cap);
	if (r->buf == NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				"ring %s: cannot allocate %llu bytes", name,
				(unsigned long long)cap);
		goto out;
	}
	r->cap = cap;
	r->mask = cap - 1;
	r->max_record = (uint32_t)((cap / 4) - HDR);
	{
		size_t n = strlen(name);

		if (n >= sizeof(r->name))
			n = sizeof(r->name) - 1;
		memcpy(r->name, name, n);
		r->name[n] = '\0';
	}
	r->cons_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	r->prod_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->cons_efd < 0 || r->prod_efd < 0) {
		err = cb_seterr(errstr, errstr_size, CB_E_IO,
				"ring %s: eventfd: %s", name, strerror(errno));
		goto out;
	}
	*out = r;
	r = NULL;
out:
	cb_ring_free(r);
	return err;
}

void cb_ring_free(struct cb_ring *r)
{
	if (r == NULL)
		return;
	if (r->cons_efd >= 0)
		close(r->cons_efd);
	if (r->prod_efd >= 0)
		close(r->prod_efd);
	free(r->buf);
	free(r);
}

uint32_t cb_ring_max_record(const struct cb_ring *r)
{
	return r->max_record;
}

static void efd_signal(int fd)
{
	uint64_t one = 1;

	/* EAGAIN means the counter is already non-zero: the wake is pending. */
	if (write(fd, &one, sizeof(one)) < 0) {
	}
}

void cb_ring_drain_fd(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0) {
	}
}

/* Bytes needed at the current producer position for a record of len bytes,
 * counting the pad to the end of buf when the record would straddle it. */
static inline uint64_t need_bytes(const struct cb_ring *r, uint64_t pos,
				  uint64_t slot)
{
	uint64_t off = pos & r->mask;
	uint64_t contiguous = r->cap - off;

	return slot <= contiguous ? slot : contiguous + slot;
}

static inline bool producer_fits(struct cb_ring *r, uint64_t need)
{
	if (r->cap - (r->p_pos - r->p_tail_cache) >= need)
		return true;
	r->p_tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
	return r->cap - (r->p_pos - r->p_tail_cache) >= need;
}

void *cb_ring_reserve(struct cb_ring *r, uint32_t len)
{
	uint64_t slot, need, off;
	uint32_t *hdr;

	if (len == 0 || len > r->max_record)
		return NULL;
	slot = slot_size(len);
	need = need_bytes(r, r->p_pos, slot);
	if (!producer_fits(r, need))
		return NULL;
	off = r->p_pos & r->mask;
	if (need != slot) {
		/* Skip the tail end of buf: the consumer jumps to offset 0. */
		hdr = (uint32_t *)(r->buf + off);
		hdr[0] = PAD_MARK;
		r->p_pos += r->cap - off;
		off = 0;
	}
	hdr = (uint32_t *)(r->buf + off);
	hdr[0] = len;
	hdr[1] = 0;
	r->p_last = r->p_pos;
	r->p_pos += slot;
	r->p_pending++;
	return r->buf + off + HDR;
}

void cb_ring_shrink(struct cb_ring *r, uint32_t len)
{
	uint32_t *hdr = (uint32_t *)(r->buf + (r->p_last & r->mask));

	if (len == 0 || len > hdr[0])
		return;
	hdr[0] = len;
	r->p_pos = r->p_last + slot_size(len);
}

void cb_ring_commit(struct cb_ring *r)
{
	if (r->p_pending == 0)
		return;
	atomic_store_explicit(&r->head, r->p_pos, memory_order_release);
	atomic_store_explicit(
		&r->records_in,
		atomic_load_explicit(&r->records_in, memory_order_relaxed) +
			r->p_pending,
		memory_order_relaxed);
	r->p_pending = 0;
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&r->consumer_parked, memory_order_relaxed) &&
	    atomic_exchange_explicit(&r->consumer_parked, 0,
				     memory_order_relaxed)) {
		atomic_fetch_add_explicit(&r->consumer_wakes, 1,
					  memory_order_relaxed);
		efd_signal(r->cons_efd);
	}
}

int cb_ring_push(struct cb_ring *r, const void *data, uint32_t len)
{
	void *p = cb_ring_reserve(r, len);

	if (p == NULL)
		return CB_E_FULL;
	memcpy(p, data, len);
	cb_ring_commit(r);
	return 0;
}

static int wait_fd(int fd, uint64_t deadline_ns, int timeout_ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	int ms = -1;

	if (timeout_ms >= 0) {
		uint64_t now = cb_mono_ns();

		ms = now >= deadline_ns
			     ? 0
			     : (int)((deadline_ns - now + 999999) / 1000000);
	}
	if (poll(&pfd, 1, ms) > 0)
		cb_ring_drain_fd(fd);
	return 0;
}

bool cb_ring_arm_producer(struct cb_ring *r, uint32_t len)
{
	uint64_t need;

	if (len == 0 || len > r->max_record)
		return false;
	need = need_bytes(r, r->p_pos, slot_size(len));
	if (producer_fits(r, need))
		return false;
	atomic_store_explicit(&r->producer_parked, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	if (producer_fits(r, need)) {
		atomic_store_explicit(&r->producer_parked, 0,
				      memory_order_relaxed);
		return false;
	}
	return true;
}

int cb_ring_wait_space(struct cb_ring *r, uint32_t len, int timeout_ms)
{
	uint64_t start = cb_mono_ns(), deadline, need;
	unsigned spins = 0;

	if (len == 0 || len > r->max_record)
		return CB_E_TOOBIG;
	need = need_bytes(r, r->p_pos, slot_size(len));
	if (producer_fits(r, need))
		return 0;
	atomic_fetch_add_explicit(&r->full_waits, 1, memory_order_relaxed);
	deadline = timeout_ms < 0 ? UINT64_MAX
				  : start + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		cpu_relax();
		if (producer_fits(r, need))
			return 0;
		if ((++spins & 63) == 0 && cb_mono_ns() - start > SPIN_NS)
			break;
	}
	for (;;) {
		if (!cb_ring_arm_producer(r, len))
			return 0;
		wait_fd(r->prod_efd, deadline, timeout_ms);
		atomic_store_explicit(&r->producer_parked, 0,
				      memory_order_relaxed);
		if (producer_fits(r, need))
			return 0;
		if (timeout_ms >= 0 && cb_mono_ns() >= deadline)
			return CB_E_TIMEOUT;
	}
}

int cb_ring_producer_fd(const struct cb_ring *r)
{
	return r->prod_efd;
}

static inline bool consumer_has_data(struct cb_ring *r)
{
	if (r->c_pos != r->c_head_cache)
		return true;
	r->c_head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
	return r->c_pos != r->c_head_cache;
}

const void *cb_ring_read(struct cb_ring *r, uint32_t *len)
{
	uint64_t off;
	const uint32_t *hdr;

	for (;;) {
		if (!consumer_has_data(r))
			return NULL;
		off = r->c_pos & r->mask;
		hdr = (const uint32_t *)(r->buf + off);
		if (hdr[0] != PAD_MARK)
			break;
		r->c_pos += r->cap - off;
	}
	*len = hdr[0];
	r->c_pos += slot_size(hdr[0]);
	r->c_pending++;
	return r->buf + off + HDR;
}

void cb_ring_release(struct cb_ring *r)
{
	if (r->c_pending == 0 &&
	    atomic_load_explicit(&r->tail, memory_order_relaxed) == r->c_pos)
		return;
	atomic_store_explicit(&r->tail, r->c_pos, memory_order_release);
	atomic_store_explicit(
		&r->records_out,
		atomic_load_explicit(&r->records_out, memory_order_relaxed) +
			r->c_pending,
		memory_order_relaxed);
	r->c_pending = 0;
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&r->producer_parked, memory_order_relaxed) &&
	    atomic_exchange_explicit(&r->producer_parked, 0,
				     memory_order_relaxed)) {
		atomic_fetch_add_explicit(&r->producer_wakes, 1,
					  memory_order_relaxed);
		efd_signal(r->prod_efd);
	}
}

bool cb_ring_arm_consumer(struct cb_ring *r)
{
	if (consumer_has_data(r))
		return false;
	atomic_store_explicit(&r->consumer_parked, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	if (consumer_has_data(r)) {
		atomic_store_explicit(&r->consumer_parked, 0,
				      memory_order_relaxed);
		return false;
	}
	return true;
}

/* True once for every batch of kicks the consumer has not answered yet. */
static bool kicked(struct cb_ring *r)
{
	uint64_t k = atomic_load_explicit(&r->kicks, memory_order_acquire);

	if (k == r->c_kicks_seen)
		return false;
	r->c_kicks_seen = k;
	return true;
}

int cb_ring_wait(struct cb_ring *r, int timeout_ms)
{
	uint64_t start, deadline;
	unsigned spins = 0;

	if (consumer_has_data(r))
		return 0;
	start = cb_mono_ns();
	deadline = timeout_ms < 0 ? UINT64_MAX
				  : start + (uint64_t)timeout_ms * 1000000u;
	if (kicked(r))
		return CB_E_TIMEOUT;
	for (;;) {
		cpu_relax();
		if (consumer_has_data(r))
			return 0;
		if ((++spins & 63) == 0 && cb_mono_ns() - start > SPIN_NS)
			break;
	}
	/*
	 * The eventfd can hold a stale signal: a producer that saw the parked
	 * flag just before an earlier arm's re-check found data and unparked
	 * still writes it.  So a wake-up proves nothing; only data, a kick or
	 * the deadline ends the wait.
	 */
	for (;;) {
		if (!cb_ring_arm_consumer(r))
			return 0;
		wait_fd(r->cons_efd, deadline, timeout_ms);
		atomic_store_explicit(&r->consumer_parked, 0,
				      memory_order_relaxed);
		if (consumer_has_data(r))
			return 0;
		if (kicked(r))
			return CB_E_TIMEOUT;
		if (timeout_ms >= 0 && cb_mono_ns() >= deadline)
			return CB_E_TIMEOUT;
	}
}

void cb_ring_kick(struct cb_ring *r)
{
	atomic_fetch_add_explicit(&r->kicks, 1, memory_order_release);
	efd_signal(r->cons_efd);
}

int cb_ring_consumer_fd(const struct cb_ring *r)
{
	return r->cons_efd;
}

void cb_ring_stats(const struct cb_ring *r, struct cb_ring_stats *out)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);

	out->name = r->name;
	out->capacity = r->cap;
	out->used = head >= tail ? head - tail : 0;
	out->records_in =
		atomic_load_explicit(&r->records_in, memory_order_relaxed);
	out->records_out =
		atomic_load_explicit(&r->records_out, memory_order_relaxed);
	out->full_waits =
		atomic_load_explicit(&r->full_waits, memory_order_relaxed);
	out->consumer_wakes =
		atomic_load_explicit(&r->consumer_wakes, memory_order_relaxed);
	out->producer_wakes =
		atomic_load_explicit(&r->producer_wakes, memory_order_relaxed);
	out->consumer_parked = atomic_load_explicit(&r->consumer_parked,
						    memory_order_relaxed);
	out->producer_parked = atomic_load_explicit(&r->producer_parked,
						    memory_order_relaxed);
}
