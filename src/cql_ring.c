/*
 * cql_ring.c - the token ring and replica placement (see cql_ring.h).
 * Pure code.  Written from the placement rules of Cassandra's
 * SimpleStrategy and NetworkTopologyStrategy; checked in
 * test/unit/test_cql_ring.c and against a real 3-node ring by the cluster
 * tier.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "chatbattle/cql_ring.h"
#include "chatbattle/err.h"

void cb_cql_repl_init(struct cb_cql_repl *r)
{
	memset(r, 0, sizeof(*r));
	r->strategy = CB_CQL_STRATEGY_OTHER;
}

static bool ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);

	return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static int parse_rf(const char *v, size_t n, int *out)
{
	int rf = 0;

	/* "3", or "3/1" for transient replication: the full count */
	for (size_t i = 0; i < n && v[i] != '/'; i++) {
		if (v[i] < '0' || v[i] > '9' || rf > 1000)
			return -1;
		rf = rf * 10 + (v[i] - '0');
	}
	*out = rf;
	return n > 0 ? 0 : -1;
}

int cb_cql_repl_set(struct cb_cql_repl *r, const char *key, size_t klen,
		    const char *value, size_t vlen, char *errstr,
		    size_t errstr_size)
{
	int rf;

	if (klen == 5 && memcmp(key, "class", 5) == 0) {
		if (ends_with(value, vlen, "SimpleStrategy"))
			r->strategy = CB_CQL_STRATEGY_SIMPLE;
		else if (ends_with(value, vlen, "NetworkTopologyStrategy"))
			r->strategy = CB_CQL_STRATEGY_NTS;
		else
			r->strategy = CB_CQL_STRATEGY_OTHER;
		return 0;
	}
	if (parse_rf(value, vlen, &rf) != 0)
		return cb_seterr(errstr, errstr_size, CB_E_PROTO,
				 "replication %.*s: '%.*s' is not a number",
				 (int)klen, key, (int)vlen, value);
	if (klen == 18 && memcmp(key, "replication_factor", 18) == 0) {
		r->rf = rf;
		return 0;
	}
	if (r->ndc == CB_CQL_RING_DCS || klen >= sizeof(r->dc[0].name))
		return cb_seterr(errstr, errstr_size, CB_E_PROTO,
				 "replication: too many data centres or a "
				 "name too long (%.*s)",
				 (int)klen, key);
	memcpy(r->dc[r->ndc].name, key, klen);
	r->dc[r->ndc].name[klen] = '\0';
	r->dc[r->ndc].rf = rf;
	r->ndc++;
	return 0;
}

void cb_cql_ring_free(struct cb_cql_ring *r)
{
	free(r->token);
	free(r->nrep);
	free(r->rep);
	memset(r, 0, sizeof(*r));
}

struct tok {
	int64_t t;
	uint16_t node;
};

static int tok_cmp(const void *a, const void *b)
{
	const struct tok *x = a, *y = b;

	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return (int)x->node - (int)y->node;
}

static bool has(const uint16_t *v, size_t n, uint16_t x)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

static void place_simple(const struct tok *t, size_t nt, size_t start,
			 size_t nnodes, int rf, uint16_t *rep, uint16_t *nrep)
{
	size_t want = rf < 1 ? 1 : (size_t)rf;

	if (want > nnodes)
		want = nnodes;
	if (want > CB_CQL_RING_RF_MAX)
		want = CB_CQL_RING_RF_MAX;
	*nrep = 0;
	for (size_t k = 0; k < nt && *nrep < want; k++) {
		uint16_t n = t[(start + k) % nt].node;

		if (!has(rep, *nrep, n))
			rep[(*nrep)++] = n;
	}
}

/* Per data centre: what NetworkTopologyStrategy tracks while walking. */
struct dcwalk {
	int rf_left;
	int rack_repeats;
	const char *racks[CB_CQL_RING_RF_MAX * 4];
	size_t nracks;
};

static bool rack_seen(const struct dcwalk *d, const char *rack)
{
	for (size_t i = 0; i < d->nracks; i++)
		if (strcmp(d->racks[i], rack) == 0)
			return true;
	return false;
}

static void place_nts(const struct tok *t, size_t nt, size_t start,
		      const struct cb_cql_ring_node *nodes, size_t nnodes,
		      const struct cb_cql_repl *repl, uint16_t *rep,
		      uint16_t *nrep)
{
	struct dcwalk d[CB_CQL_RING_DCS];
	size_t pending = 0;

	memset(d, 0, sizeof(d));
	for (size_t i = 0; i < repl->ndc; i++) {
		size_t in_dc = 0, racks = 0;
		const char *seen[CB_CQL_RING_RF_MAX * 4];

		for (size_t n = 0; n < nnodes; n++) {
			bool dup = false;

			if (strcmp(nodes[n].dc, repl->dc[i].name) != 0 ||
			    nodes[n].ntokens == 0)
				continue;
			in_dc++;
			for (size_t k = 0; k < racks && !dup; k++)
				dup = strcmp(seen[k], nodes[n].rack) == 0;
			if (!dup && racks < sizeof(seen) / sizeof(seen[0]))
				seen[racks++] = nodes[n].rack;
		}
		d[i].rf_left = repl->dc[i].rf < (int)in_dc ? repl->dc[i].rf
							   : (int)in_dc;
		d[i].rack_repeats = repl->dc[i].rf - (int)racks;
		if (d[i].rf_left > 0)
			pending++;
	}
	*nrep = 0;
	for (size_t k = 0; k < nt && pending > 0; k++) {
		uint16_t n = t[(start + k) % nt].node;
		struct dcwalk *w = NULL;

		for (size_t i = 0; i < repl->ndc; i++)
			if (strcmp(nodes[n].dc, repl->dc[i].name) == 0)
				w = &d[i];
		if (w == NULL || w->rf_left <= 0 || has(rep, *nrep, n) ||
		    *nrep == CB_CQL_RING_RF_MAX)
			continue;
		if (!rack_seen(w, nodes[n].rack)) {
			if (w->nracks < sizeof(w->racks) / sizeof(w->racks[0]))
				w->racks[w->nracks++] = nodes[n].rack;
		} else if (w->rack_repeats <= 0) {
			continue;
		} else {
			w->rack_repeats--;
		}
		rep[(*nrep)++] = n;
		if (--w->rf_left == 0)
			pending--;
	}
}

int cb_cql_ring_build(struct cb_cql_ring *r,
		      const struct cb_cql_ring_node *nodes, size_t n,
		      const struct cb_cql_repl *repl, char *errstr,
		      size_t errstr_size)
{
	struct tok *t = NULL;
	size_t nt = 0, withtok = 0;
	int err = 0;

	cb_cql_ring_free(r);
	for (size_t i = 0; i < n && i < UINT16_MAX; i++) {
		nt += nodes[i].ntokens;
		withtok += nodes[i].ntokens > 0;
	}
	if (nt == 0)
		return cb_seterr(errstr, errstr_size, CB_E_PROTO,
				 "no node of the ring has a token");
	t = malloc(nt * sizeof(*t));
	r->token = malloc(nt * sizeof(*r->token));
	r->nrep = malloc(nt * sizeof(*r->nrep));
	r->rep = malloc(nt * CB_CQL_RING_RF_MAX * sizeof(*r->rep));
	if (t == NULL || r->token == NULL || r->nrep == NULL ||
	    r->rep == NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				"out of memory");
		goto out;
	}
	nt = 0;
	for (size_t i = 0; i < n && i < UINT16_MAX; i++)
		for (size_t k = 0; k < nodes[i].ntokens; k++) {
			t[nt].t = nodes[i].tokens[k];
			t[nt++].node = (uint16_t)i;
		}
	qsort(t, nt, sizeof(*t), tok_cmp);
	r->ntokens = nt;
	for (size_t i = 0; i < nt; i++) {
		uint16_t *rep = r->rep + i * CB_CQL_RING_RF_MAX;

		r->token[i] = t[i].t;
		if (repl->strategy == CB_CQL_STRATEGY_SIMPLE)
			place_simple(t, nt, i, withtok, repl->rf, rep,
				     &r->nrep[i]);
		else if (repl->strategy == CB_CQL_STRATEGY_NTS)
			place_nts(t, nt, i, nodes, n, repl, rep, &r->nrep[i]);
		else
			place_simple(t, nt, i, withtok, (int)withtok, rep,
				     &r->nrep[i]);
	}
out:
	free(t);
	if (err != 0)
		cb_cql_ring_free(r);
	return err;
}

size_t cb_cql_ring_replicas(const struct cb_cql_ring *r, int64_t token,
			    const uint16_t **rep)
{
	size_t lo = 0, hi = r->ntokens;

	if (r->ntokens == 0)
		return 0;
	/* the first ring token >= token */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r->token[mid] < token)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == r->ntokens)
		lo = 0;
	*rep = r->rep + lo * CB_CQL_RING_RF_MAX;
	return r->nrep[lo];
}
