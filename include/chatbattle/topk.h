/*
 * topk.h - bounded heavy hitters (top emotes, top chatters) with the
 * space-saving algorithm (Metwally et al., 2005), src/topk.c.  Pure code.
 *
 * A summary of capacity m counts every name exactly while at most m
 * distinct names were seen.  Past that, a new name takes over the entry with
 * the smallest count (the lowest slot on ties, so replays are
 * deterministic), inheriting that count as its error.  Then for every name:
 * true count <= count <= true count + error, and error <= N / m for N
 * additions, so any name seen more than N / m times is in the summary.
 * The aggregator uses m = 8 * top_k.
 *
 * Names are byte strings of up to CB_TOPK_NAME_MAX bytes; longer names are
 * cut there (and count as the cut name).
 */
#ifndef CHATBATTLE_TOPK_H
#define CHATBATTLE_TOPK_H

#include <stddef.h>
#include <stdint.h>

#define CB_TOPK_NAME_MAX 47

struct cb_topk_entry {
	uint32_t count;
	uint32_t error;
	uint8_t len;
	char name[CB_TOPK_NAME_MAX];
};

struct cb_topk {
	uint32_t cap;   /* entries */
	uint32_t n;     /* entries in use */
	uint32_t mask;  /* index size - 1 */
	struct cb_topk_entry *e;
	int32_t *index; /* open addressing: entry number or -1 */
};

/* Allocates a summary of cap (>= 1) entries.  Returns 0 or CB_E_NOMEM. */
int cb_topk_init(struct cb_topk *t, uint32_t cap);
void cb_topk_release(struct cb_topk *t);

/* Counts one occurrence of name. */
void cb_topk_add(struct cb_topk *t, const char *name, size_t len);

/*
 * Fills out with pointers to the (at most k) entries with the highest
 * counts, highest first, ties by name; returns how many.
 */
size_t cb_topk_top(const struct cb_topk *t, const struct cb_topk_entry **out,
		   size_t k);

/* Puts an entry back (restore): appends it in slot order.  Returns 0, or
 * CB_E_FULL when the summary is full. */
int cb_topk_put(struct cb_topk *t, const char *name, size_t len,
		uint32_t count, uint32_t error);

#endif
