/*
 * topk.c - space-saving heavy hitters (see topk.h).  Pure code; the caller
 * owns the struct.  Entries sit in slot order (restores keep it, so a
 * replay after a restore makes the same choices); a power-of-two open
 * addressing index with linear probing finds a name's slot, and deletion
 * shifts the following run back so that no tombstones are needed.
 */
#include <stdlib.h>
#include <string.h>

#include "chatbattle/err.h"
#include "chatbattle/topk.h"

static uint32_t name_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)s[i];
		h *= 1099511628211ull;
	}
	return (uint32_t)(h ^ (h >> 32));
}

int cb_topk_init(struct cb_topk *t, uint32_t cap)
{
	uint32_t isz = 4;

	memset(t, 0, sizeof(*t));
	if (cap == 0)
		cap = 1;
	while (isz < cap * 2)
		isz *= 2;
	t->e = calloc(cap, sizeof(*t->e));
	t->index = malloc(isz * sizeof(*t->index));
	if (t->e == NULL || t->index == NULL) {
		cb_topk_release(t);
		return CB_E_NOMEM;
	}
	memset(t->index, 0xff, isz * sizeof(*t->index));
	t->cap = cap;
	t->mask = isz - 1;
	return 0;
}

void cb_topk_release(struct cb_topk *t)
{
	free(t->e);
	free(t->index);
	memset(t, 0, sizeof(*t));
}

/* The index position holding name, or the empty one where it would go. */
static uint32_t find(const struct cb_topk *t, const char *name, size_t len)
{
	uint32_t i = name_hash(name, len) & t->mask;

	for (;;) {
		int32_t k = t->index[i];

		if (k < 0 || (t->e[k].len == len &&
			      memcmp(t->e[k].name, name, len) == 0))
			return i;
		i = (i + 1) & t->mask;
	}
}

/* Removes index position i, shifting back the entries after it. */
static void unindex(struct cb_topk *t, uint32_t i)
{
	uint32_t j = i;

	t->index[i] = -1;
	for (;;) {
		uint32_t home;
		int32_t k;

		j = (j + 1) & t->mask;
		k = t->index[j];
		if (k < 0)
			return;
		home = name_hash(t->e[k].name, t->e[k].len) & t->mask;
		/* Move k to the hole when its home is not in (i, j]. */
		if ((j > i && (home <= i || home > j)) ||
		    (j < i && (home <= i && home > j))) {
			t->index[i] = k;
			t->index[j] = -1;
			i = j;
		}
	}
}

void cb_topk_add(struct cb_topk *t, const char *name, size_t len)
{
	uint32_t pos, min_k = 0;

	if (len > CB_TOPK_NAME_MAX)
		len = CB_TOPK_NAME_MAX;
	pos = find(t, name, len);
	if (t->index[pos] >= 0) {
		t->e[t->index[pos]].count++;
		return;
	}
	if (t->n < t->cap) {
		struct cb_topk_entry *e = &t->e[t->n];

		e->count = 1;
		e->error = 0;
		e->len = (uint8_t)len;
		memcpy(e->name, name, len);
		t->index[pos] = (int32_t)t->n++;
		return;
	}
	/* Full: the smallest count gives its slot to the new name. */
	for (uint32_t k = 1; k < t->n; k++)
		if (t->e[k].count < t->e[min_k].count)
			min_k = k;
	unindex(t, find(t, t->e[min_k].name, t->e[min_k].len));
	t->e[min_k].error = t->e[min_k].count;
	t->e[min_k].count++;
	t->e[min_k].len = (uint8_t)len;
	memcpy(t->e[min_k].name, name, len);
	t->index[find(t, name, len)] = (int32_t)min_k;
}

int cb_topk_put(struct cb_topk *t, const char *name, size_t len,
		uint32_t count, uint32_t error)
{
	uint32_t pos;

	if (len > CB_TOPK_NAME_MAX)
		len = CB_TOPK_NAME_MAX;
	pos = find(t, name, len);
	if (t->index[pos] >= 0) {
		/* A duplicate can only come from a hand-made state. */
		t->e[t->index[pos]].count += count;
		return 0;
	}
	if (t->n == t->cap)
		return CB_E_FULL;
	t->e[t->n].count = count;
	t->e[t->n].error = error;
	t->e[t->n].len = (uint8_t)len;
	memcpy(t->e[t->n].name, name, len);
	t->index[pos] = (int32_t)t->n++;
	return 0;
}

static int better(const struct cb_topk_entry *a, const struct cb_topk_entry *b)
{
	int c;

	if (a->count != b->count)
		return a->count > b->count;
	c = memcmp(a->name, b->name, a->len < b->len ? a->len : b->len);
	return c != 0 ? c < 0 : a->len < b->len;
}

size_t cb_topk_top(const struct cb_topk *t, const struct cb_topk_entry **out,
		   size_t k)
{
	size_t n = 0;

	if (k == 0)
		return 0;
	/* Insertion into a sorted prefix of at most k: k is small (<= 100). */
	for (uint32_t i = 0; i < t->n; i++) {
		const struct cb_topk_entry *e = &t->e[i];
		size_t j;

		if (n == k && !better(e, out[k - 1]))
			continue;
		j = n < k ? n++ : k - 1;
		while (j > 0 && better(e, out[j - 1])) {
			out[j] = out[j - 1];
			j--;
		}
		out[j] = e;
	}
	return n;
}
