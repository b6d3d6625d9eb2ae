/*
 * stats_cache.c - the in-memory ChannelStats figures the HTTP API serves (see
 * stats_cache.h for the contract).
 *
 * One writer (the stats thread) and any number of readers (HTTP threads).
 *
 * Channels live in slots that are never freed before the cache is, found
 * through an open-addressing index of slot pointers.  When the index fills
 * up the writer publishes a bigger copy; old copies are kept until
 * cb_stats_cache_free (the sizes double, so they cost at most as much as the
 * live one) - a reader holding an old index still finds every channel it
 * held.
 *
 * The GET hot path (cb_stats_cache_get) reads a slot's fixed-size view under
 * a per-slot seqlock: the writer makes the sequence odd, writes the words,
 * makes it even; a reader copies the words and retries when the sequence was
 * odd or moved.  The words are atomics (release stores, acquire loads: plain
 * moves on x86), so the copy is never a data race (C11, and ThreadSanitizer
 * agrees) and needs no fences.  Readers write nothing shared.
 *
 * The JSON documents (current window and history) are variable-sized, so
 * they are immutable blobs swapped in by pointer (RCU style) and reclaimed
 * with epoch-based reclamation: a reader announces the global epoch in one
 * of CB_READERS slots while it copies; the writer retires replaced blobs
 * tagged with the epoch of their retirement, advances the epoch only when
 * every announcing reader has seen the current one, and frees a blob two
 * epochs later, when no reader can still hold it.
 *
 * SSE waiters block on a condition variable (cb_stats_cache_wait); the
 * writer only touches the mutex when someone waits.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "chatbattle/err.h"
#include "chatbattle/log.h"
#include "chatbattle/metrics.h"
#include "chatbattle/stats_cache.h"

#define CACHELINE 64
#define CB_READERS 64
#define INDEX_MIN 64

/* The words of a slot's view, copied under the seqlock. */
enum {
	VW_COUNT,
	VW_START,
	VW_END,
	VW_DURATION,
	VW_UPDATED,
	VW_UNIQUE,
	VW_VERSION,
	VW_WORDS
};

/* One window's ChannelStats JSON (without the restorable "state"); never
 * changed once published. */
struct entry {
	int64_t start_ms;
	size_t len;
	char json[];
};

/* A channel's windows, newest first (e[0] is the current window); never
 * changed once published. */
struct hist {
	size_t n;
	struct entry *e[];
};

struct slot {
	char channel[26]; /* immutable once the slot is published */
	alignas(CACHELINE) _Atomic uint32_t seq;
	_Atomic int64_t view[VW_WORDS];
	_Atomic(struct hist *) hist;
	int64_t wview[VW_WORDS]; /* writer: the words last published */
};

struct index {
	size_t cap; /* power of two */
	struct index *older; /* writer: the index this one replaced */
	_Atomic(struct slot *) slots[];
};

struct reader {
	alignas(CACHELINE) _Atomic int busy;
	_Atomic uint64_t epoch; /* 0: not reading */
};

struct retired {
	void *ptr;
	uint64_t epoch;
};

struct cb_stats_cache {
	size_t windows_kept;
	_Atomic(struct index *) index;
	_Atomic size_t nslots;
	_Atomic uint64_t version;
	alignas(CACHELINE) _Atomic uint64_t epoch;
	struct reader readers[CB_READERS];

	/* Writer-only. */
	alignas(CACHELINE) struct slot **all; /* every slot, for free */
	size_t nall, all_cap;
	struct retired *ret;
	size_t nret, ret_cap;

	/* SSE wake-ups. */
	_Atomic int waiters;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static uint64_t name_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)s[i];
		h *= 1099511628211ull;
	}
	return h ^ (h >> 29);
}

static struct index *index_new(size_t cap)
{
	struct index *ix = calloc(1, sizeof(*ix) + cap * sizeof(ix->slots[0]));

	if (ix != NULL)
		ix->cap = cap;
	return ix;
}

int cb_stats_cache_new(struct cb_stats_cache **out, size_t windows_kept,
		       char *errstr, size_t errstr_size)
{
	struct cb_stats_cache *c;
	struct index *ix;

	*out = NULL;
	if (windows_kept == 0)
		return cb_seterr(errstr, errstr_size, CB_E_INVAL,
				 "stats cache: windows_kept must be at least 1");
	c = aligned_alloc(CACHELINE,
			  (sizeof(*c) + CACHELINE - 1) / CACHELINE * CACHELINE);
	ix = index_new(INDEX_MIN);
	if (c == NULL || ix == NULL) {
		free(c);
		free(ix);
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "stats cache: out of memory");
	}
	memset(c, 0, sizeof(*c));
	c->windows_kept = windows_kept;
	atomic_init(&c->index, ix);
	atomic_init(&c->epoch, 1);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	*out = c;
	return 0;
}

static void hist_free_all(struct hist *h)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < h->n; i++)
		free(h->e[i]);
	free(h);
}

void cb_stats_cache_free(struct cb_stats_cache *c)
{
	struct index *ix;

	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nall; i++) {
		hist_free_all(atomic_load(&c->all[i]->hist));
		free(c->all[i]);
	}
	free(c->all);
	for (size_t i = 0; i < c->nret; i++)
		free(c->ret[i].ptr);
	free(c->ret);
	ix = atomic_load(&c->index);
	while (ix != NULL) {
		struct index *older = ix->older;

		free(ix);
		ix = older;
	}
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

/* ---- lookup (any thread) ---- */

static struct slot *lookup(struct cb_stats_cache *c, const char *name,
			   size_t n)
{
	struct index *ix = atomic_load_explicit(&c->index, memory_order_acquire);
	size_t mask = ix->cap - 1;
	size_t i = (size_t)name_hash(name, n) & mask;

	if (n == 0 || n >= sizeof(((struct slot *)0)->channel))
		return NULL;
	for (size_t probes = 0; probes < ix->cap; probes++, i = (i + 1) & mask) {
		struct slot *s = atomic_load_explicit(&ix->slots[i],
						      memory_order_acquire);

		if (s == NULL)
			return NULL;
		if (memcmp(s->channel, name, n) == 0 && s->channel[n] == '\0')
			return s;
	}
	return NULL;
}

/* ---- epoch-based reclamation ---- */

/* A reader enters: takes a free announcement slot and announces the epoch.
 * The seq_cst store is ordered before the reader's pointer loads, which is
 * what the writer's scan relies on. */
static struct reader *reader_enter(struct cb_stats_cache *c)
{
	for (unsigned spins = 0;; spins++) {
		for (size_t i = 0; i < CB_READERS; i++) {
			struct reader *r = &c->readers[i];
			int free_ = 0;

			if (atomic_load_explicit(&r->busy,
						 memory_order_relaxed) != 0 ||
			    !atomic_compare_exchange_strong(&r->busy, &free_, 1))
				continue;
			atomic_store(&r->epoch, atomic_load(&c->epoch));
			return r;
		}
		/* More than CB_READERS concurrent readers: let one finish. */
		if (spins > 16)
			sched_yield();
	}
}

static void reader_exit(struct reader *r)
{
	atomic_store_explicit(&r->epoch, 0, memory_order_release);
	atomic_store_explicit(&r->busy, 0, memory_order_release);
}

/* Writer: advances the epoch when every reader has seen the current one,
 * then frees what was retired two epochs ago. */
static void reclaim(struct cb_stats_cache *c)
{
	uint64_t e = atomic_load(&c->epoch);
	size_t keep = 0;

	for (size_t i = 0; i < CB_READERS; i++) {
		uint64_t re = atomic_load(&c->readers[i].epoch);

		if (re != 0 && re != e)
			goto sweep;
	}
	atomic_store(&c->epoch, ++e);
sweep:
	for (size_t i = 0; i < c->nret; i++) {
		if (c->ret[i].epoch + 2 <= e)
			free(c->ret[i].ptr);
		else
			c->ret[keep++] = c->ret[i];
	}
	c->nret = keep;
}

static int retire(struct cb_stats_cache *c, void *p)
{
	if (p == NULL)
		return 0;
	if (c->nret == c->ret_cap) {
		size_t cap = c->ret_cap ? c->ret_cap * 2 : 64;
		struct retired *r = realloc(c->ret, cap * sizeof(*r));

		if (r == NULL)
			return CB_E_NOMEM;
		c->ret = r;
		c->ret_cap = cap;
	}
	c->ret[c->nret].ptr = p;
	c->ret[c->nret].epoch = atomic_load(&c->epoch);
	c->nret++;
	return 0;
}

/* ---- writer ---- */

static int slot_create(struct cb_stats_cache *c, const char *name, size_t n,
		       struct slot **out)
{
	struct index *ix = atomic_load(&c->index);
	struct slot *s;
	size_t i, mask;

	if (c->nall == c->all_cap) {
		size_t cap = c->all_cap ? c->all_cap * 2 : 64;
		struct slot **all = realloc(c->all, cap * sizeof(*all));

		if (all == NULL)
			return CB_E_NOMEM;
		c->all = all;
		c->all_cap = cap;
	}
	if ((c->nall + 1) * 2 > ix->cap) {
		struct index *bigger = index_new(ix->cap * 2);

		if (bigger == NULL)
			return CB_E_NOMEM;
		mask = bigger->cap - 1;
		for (size_t k = 0; k < c->nall; k++) {
			struct slot *o = c->all[k];

			i = (size_t)name_hash(o->channel, strlen(o->channel)) &
			    mask;
			while (atomic_load_explicit(&bigger->slots[i],
						    memory_order_relaxed))
				i = (i + 1) & mask;
			atomic_init(&bigger->slots[i], o);
		}
		bigger->older = ix;
		atomic_store_explicit(&c->index, bigger, memory_order_release);
		ix = bigger;
	}
	s = aligned_alloc(CACHELINE,
			  (sizeof(*s) + CACHELINE - 1) / CACHELINE * CACHELINE);
	if (s == NULL)
		return CB_E_NOMEM;
	memset(s, 0, sizeof(*s));
	memcpy(s->channel, name, n);
	atomic_init(&s->hist, NULL);
	mask = ix->cap - 1;
	i = (size_t)name_hash(name, n) & mask;
	while (atomic_load_explicit(&ix->slots[i], memory_order_relaxed))
		i = (i + 1) & mask;
	c->all[c->nall++] = s;
	atomic_store_explicit(&ix->slots[i], s, memory_order_release);
	atomic_store_explicit(&c->nslots, c->nall, memory_order_release);
	cb_metric_set(CB_M_stats_channels, c->nall);
	*out = s;
	return 0;
}

static void view_publish(struct slot *s, const int64_t *w)
{
	uint32_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);

	/* Release on each word orders the odd sequence before it. */
	atomic_store_explicit(&s->seq, seq + 1, memory_order_relaxed);
	for (int i = 0; i < VW_WORDS; i++)
		atomic_store_explicit(&s->view[i], w[i], memory_order_release);
	atomic_store_explicit(&s->seq, seq + 2, memory_order_release);
}

static int64_t get_int(json_t *o, const char *key, bool *ok)
{
	json_t *v = json_object_get(o, key);

	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_real(v))
		return (int64_t)json_real_value(v);
	*ok = false;
	return 0;
}

/*
 * Places entry e (window start e->start_ms) into the history h (newest
 * first, at most cap entries) and returns the new history; *replaced gets
 * the entry e supersedes, *dropped the one pushed out.  Returns NULL when
 * memory runs out, or with *ignored set when e is older than everything a
 * full history keeps.
 */
static struct hist *hist_with(const struct hist *h, struct entry *e,
			      size_t cap, struct entry **replaced,
			      struct entry **dropped, bool *ignored)
{
	size_t n = h ? h->n : 0, pos = 0, out_n;
	struct hist *nh;
	bool same;

	*replaced = *dropped = NULL;
	*ignored = false;
	while (pos < n && h->e[pos]->start_ms > e->start_ms)
		pos++;
	same = pos < n && h->e[pos]->start_ms == e->start_ms;
	if (!same && pos >= cap) {
		*ignored = true;
		return NULL;
	}
	out_n = same ? n : (n + 1 > cap ? cap : n + 1);
	nh = malloc(sizeof(*nh) + out_n * sizeof(nh->e[0]));
	if (nh == NULL)
		return NULL;
	nh->n = out_n;
	for (size_t i = 0; i < pos; i++)
		nh->e[i] = h->e[i];
	nh->e[pos] = e;
	if (same) {
		*replaced = h->e[pos];
		for (size_t i = pos + 1; i < n; i++)
			nh->e[i] = h->e[i];
	} else {
		for (size_t i = pos; i + 1 < out_n; i++)
			nh->e[i + 1] = h->e[i];
		if (n + 1 > cap)
			*dropped = h->e[n - 1];
	}
	return nh;
}

int cb_stats_cache_apply(struct cb_stats_cache *c, const char *key,
			 size_t key_len, const char *json, size_t json_len,
			 int64_t now_ms, char *errstr, size_t errstr_size)
{
	json_error_t jerr;
	json_t *doc = json_loadb(json, json_len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *cid;
	const char *name;
	size_t n;
	int64_t w[VW_WORDS];
	int64_t recv_ms;
	bool ok = true, ignored;
	char *text = NULL;
	struct entry *e = NULL, *replaced, *dropped;
	struct hist *old, *nh;
	struct slot *s;
	int err = 0;

	if (doc == NULL || !json_is_object(doc)) {
		err = cb_seterr(errstr, errstr_size, CB_E_PARSE,
				"ChannelStats: not a JSON object%s%s",
				doc ? "" : ": ", doc ? "" : jerr.text);
		goto out;
	}
	cid = json_object_get(doc, "channel_id");
	if (json_is_string(cid)) {
		name = json_string_value(cid);
		n = json_string_length(cid);
	} else {
		name = key;
		n = key ? key_len : 0;
	}
	if (n == 0 || n > 25 || memchr(name, '\0', n) != NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_PARSE,
				"ChannelStats: channel_id missing or not a "
				"channel name");
		goto out;
	}
	w[VW_COUNT] = get_int(doc, "message_count", &ok);
	w[VW_START] = get_int(doc, "window_start", &ok);
	w[VW_END] = get_int(doc, "window_end", &ok);
	if (!ok) {
		err = cb_seterr(errstr, errstr_size, CB_E_PARSE,
				"ChannelStats for %.*s: message_count, "
				"window_start and window_end must be numbers",
				(int)n, name);
		goto out;
	}
	w[VW_DURATION] = get_int(doc, "window_duration_seconds", &ok);
	if (!ok)
		w[VW_DURATION] = (w[VW_END] - w[VW_START]) / 1000;
	ok = true;
	w[VW_UPDATED] = get_int(doc, "last_updated", &ok);
	w[VW_UNIQUE] = get_int(doc, "unique_chatters", &ok);
	recv_ms = get_int(doc, "last_received_at", &ok);
	if (recv_ms > 0 && now_ms > 0 && now_ms >= recv_ms)
		cb_metric_observe_us(CB_M_e2e_latency_us,
				     (uint64_t)(now_ms - recv_ms) * 1000);
	/* The share of it after the aggregator emitted: its transaction
	 * commit and this consumer's fetch. */
	if (w[VW_UPDATED] > 0 && now_ms > 0 && now_ms >= w[VW_UPDATED])
		cb_metric_observe_us(CB_M_stats_delivery_latency_us,
				     (uint64_t)(now_ms - w[VW_UPDATED]) * 1000);

	/* The restorable state is the aggregator's business, and big. */
	json_object_del(doc, "state");
	text = json_dumps(doc, JSON_COMPACT);
	if (text == NULL)
		goto nomem;
	e = malloc(sizeof(*e) + strlen(text) + 1);
	if (e == NULL)
		goto nomem;
	e->start_ms = w[VW_START];
	e->len = strlen(text);
	memcpy(e->json, text, e->len + 1);

	s = lookup(c, name, n);
	if (s == NULL && (err = slot_create(c, name, n, &s)) != 0)
		goto nomem;
	old = atomic_load_explicit(&s->hist, memory_order_relaxed);
	nh = hist_with(old, e, c->windows_kept + 1, &replaced, &dropped,
		       &ignored);
	if (ignored) {
		/* Older than every window kept: nothing to show it in. */
		free(e);
		e = NULL;
		goto out;
	}
	if (nh == NULL)
		goto nomem;
	/* Reserve the retirement slots first so that nothing can fail after
	 * the new history is published. */
	if (retire(c, old) != 0 || retire(c, replaced) != 0 ||
	    retire(c, dropped) != 0) {
		free(nh);
		goto nomem;
	}
	atomic_store_explicit(&s->hist, nh, memory_order_release);
	e = NULL;
	/* The view shows the current window; an update of an older window
	 * only moves the channel's version. */
	if (nh->e[0]->start_ms == w[VW_START])
		memcpy(s->wview, w, sizeof(w));
	/* Publish the channel's view before the cache-wide version moves,
	 * so a reader woken by the new version already sees the change. */
	s->wview[VW_VERSION] = (int64_t)atomic_load(&c->version) + 1;
	view_publish(s, s->wview);
	atomic_fetch_add(&c->version, 1);
	cb_metric_add(CB_M_stats_records_total, 1);
	reclaim(c);
	if (atomic_load(&c->waiters) > 0) {
		pthread_mutex_lock(&c->lock);
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
	}
	goto out;
nomem:
	err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
			"stats cache: out of memory");
out:
	free(e);
	free(text);
	json_decref(doc);
	return err;
}

/* ---- readers ---- */

int cb_stats_cache_get(struct cb_stats_cache *c, const char *channel,
		       struct cb_stats_view *out)
{
	size_t n = strlen(channel);
	struct slot *s = lookup(c, channel, n);
	int64_t w[VW_WORDS];
	uint32_t s1, s2;

	if (s == NULL)
		return CB_E_NOTFOUND;
	for (;;) {
		s1 = atomic_load_explicit(&s->seq, memory_order_acquire);
		if (s1 & 1) {
			cpu_relax();
			continue;
		}
		/* Acquire on each word: a word from a newer write makes the
		 * second sequence read see that write's odd sequence. */
		for (int i = 0; i < VW_WORDS; i++)
			w[i] = atomic_load_explicit(&s->view[i],
						    memory_order_acquire);
		s2 = atomic_load_explicit(&s->seq, memory_order_relaxed);
		if (s1 == s2)
			break;
	}
	/* A slot is published before its first view: seq 0 means none yet. */
	if (s1 == 0)
		return CB_E_NOTFOUND;
	memset(out, 0, sizeof(*out));
	memcpy(out->channel, s->channel, sizeof(out->channel));
	out->message_count = w[VW_COUNT];
	out->window_start_ms = w[VW_START];
	out->window_end_ms = w[VW_END];
	out->window_duration_s = w[VW_DURATION];
	out->last_updated_ms = w[VW_UPDATED];
	out->unique_chatters = w[VW_UNIQUE];
	out->version = (uint64_t)w[VW_VERSION];
	return 0;
}

/* Copies limit entries (newest first) of channel's history: one document
 * when as_array is false, else a JSON array. */
static int copy_json(struct cb_stats_cache *c, const char *channel,
		     size_t limit, bool as_array, char **json, size_t *len)
{
	struct slot *s = lookup(c, channel, strlen(channel));
	struct reader *r;
	struct hist *h;
	size_t total = 2, k, pos = 0;
	char *buf;
	int err = 0;

	*json = NULL;
	*len = 0;
	if (s == NULL)
		return CB_E_NOTFOUND;
	r = reader_enter(c);
	h = atomic_load(&s->hist);
	if (h == NULL || h->n == 0) {
		err = CB_E_NOTFOUND;
		goto out;
	}
	k = as_array ? (limit < h->n ? limit : h->n) : 1;
	for (size_t i = 0; i < k; i++)
		total += h->e[i]->len + 1;
	buf = malloc(total + 1);
	if (buf == NULL) {
		err = CB_E_NOMEM;
		goto out;
	}
	if (as_array)
		buf[pos++] = '[';
	for (size_t i = 0; i < k; i++) {
		if (i > 0)
			buf[pos++] = ',';
		memcpy(buf + pos, h->e[i]->json, h->e[i]->len);
		pos += h->e[i]->len;
	}
	if (as_array)
		buf[pos++] = ']';
	buf[pos] = '\0';
	*json = buf;
	*len = pos;
out:
	reader_exit(r);
	return err;
}

int cb_stats_cache_current_json(struct cb_stats_cache *c, const char *channel,
				char **json, size_t *len)
{
	return copy_json(c, channel, 1, false, json, len);
}

int cb_stats_cache_windows_json(struct cb_stats_cache *c, const char *channel,
				size_t limit, char **json, size_t *len)
{
	return copy_json(c, channel, limit, true, json, len);
}

size_t cb_stats_cache_channels(struct cb_stats_cache *c, char (*out)[26],
			       size_t max)
{
	struct index *ix = atomic_load_explicit(&c->index, memory_order_acquire);
	size_t total = 0;

	for (size_t i = 0; i < ix->cap; i++) {
		struct slot *s = atomic_load_explicit(&ix->slots[i],
						      memory_order_acquire);

		if (s == NULL ||
		    atomic_load_explicit(&s->seq, memory_order_acquire) == 0)
			continue;
		if (total < max)
			memcpy(out[total], s->channel, sizeof(out[total]));
		total++;
	}
	return total;
}

uint64_t cb_stats_cache_version(struct cb_stats_cache *c)
{
	return atomic_load(&c->version);
}

uint64_t cb_stats_cache_wait(struct cb_stats_cache *c, uint64_t seen,
			     int timeout_ms)
{
	struct timespec deadline;
	uint64_t v;

	if (timeout_ms < 0)
		timeout_ms = 7 * 24 * 3600 * 1000; /* "no limit": a week */
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	atomic_fetch_add(&c->waiters, 1);
	pthread_mutex_lock(&c->lock);
	while ((v = atomic_load(&c->version)) == seen && timeout_ms != 0) {
		if (pthread_cond_timedwait(&c->cond, &c->lock, &deadline) ==
		    ETIMEDOUT) {
			v = atomic_load(&c->version);
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	atomic_fetch_sub(&c->waiters, 1);
	return v;
}
