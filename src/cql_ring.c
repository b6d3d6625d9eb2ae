/*
 * cql_ring.c - the token ring and replica placement (see cql_ring.h).
 * Pure code.  Written from the placement rules of Cassandra's
 * SimpleStrategy and NetworkTopologyStrategy; checked in
 * test/unit/test_cql_ring.c and against a real 3-node ring by the cluster
 * tier.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "chatbattle/cql_frame.h"
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

/* ---- reading the system tables ---- */

static int col_index(const struct cb_cql_response *res, const char *name)
{
	size_t n = strlen(name);

	for (int32_t i = 0; i < res->meta.ncolumns; i++) {
		const struct cb_cql_bytes *c = &res->meta.columns[i].name;

		if (c->len == (int32_t)n && memcmp(c->p, name, n) == 0)
			return i;
	}
	return -1;
}

static void copy_text(char *out, size_t size, struct cb_cql_bytes v)
{
	size_t n = v.len > 0 ? (size_t)v.len : 0;

	if (n >= size)
		n = size - 1;
	if (n > 0)
		memcpy(out, v.p, n);
	out[n] = '\0';
}

/* An [inet] value (4 or 16 bytes) as text; false for null or another
 * length or the wildcard address. */
static bool inet_text(struct cb_cql_bytes v, char *out, size_t size)
{
	static const uint8_t zero[16];

	if ((v.len != 4 && v.len != 16) || memcmp(v.p, zero, (size_t)v.len) == 0)
		return false;
	return inet_ntop(v.len == 4 ? AF_INET : AF_INET6, v.p, out,
			 (socklen_t)size) != NULL;
}

static int32_t int_value(struct cb_cql_bytes v, int32_t dflt)
{
	if (v.len != 4)
		return dflt;
	return (int32_t)(((uint32_t)v.p[0] << 24) | ((uint32_t)v.p[1] << 16) |
			 ((uint32_t)v.p[2] << 8) | v.p[3]);
}

static int read_tokens(struct cb_cql_bytes v, struct cb_cql_peer *p)
{
	struct cb_cql_rd r;
	int32_t count;

	if (cb_cql_coll_open(v, &r, &count) != 0)
		return CB_E_PROTO;
	p->tokens = count > 0 ? malloc((size_t)count * sizeof(int64_t)) : NULL;
	if (count > 0 && p->tokens == NULL)
		return CB_E_NOMEM;
	for (int32_t i = 0; i < count; i++) {
		struct cb_cql_bytes e = cb_cql_get_bytes(&r);
		char buf[32], *end;
		long long t;

		if (r.failed || e.len <= 0 || (size_t)e.len >= sizeof(buf))
			return CB_E_PROTO;
		memcpy(buf, e.p, (size_t)e.len);
		buf[e.len] = '\0';
		errno = 0;
		t = strtoll(buf, &end, 10);
		if (errno != 0 || *end != '\0')
			return CB_E_PROTO;
		p->tokens[p->ntokens++] = (int64_t)t;
	}
	return 0;
}

void cb_cql_peers_free(struct cb_cql_peer *peers, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(peers[i].tokens);
	free(peers);
}

int cb_cql_peers_from_rows(struct cb_cql_response *res, int default_port,
			   struct cb_cql_peer **peers, size_t *n, char *errstr,
			   size_t errstr_size)
{
	int native = col_index(res, "native_address");
	int rpc = col_index(res, "rpc_address");
	int peer = col_index(res, "peer");
	int bcast = col_index(res, "broadcast_address");
	int nport = col_index(res, "native_port");
	int rport = col_index(res, "rpc_port");
	int dc = col_index(res, "data_center");
	int rack = col_index(res, "rack");
	int hid = col_index(res, "host_id");
	int tok = col_index(res, "tokens");
	int part = col_index(res, "partitioner");
	struct cb_cql_bytes v[CB_CQL_MAX_COLUMNS];
	int k;

	if (res->result_kind != CB_CQL_RESULT_ROWS ||
	    (res->meta.flags & 0x0004) /* no metadata */)
		return cb_seterr(errstr, errstr_size, CB_E_PROTO,
				 "the ring query returned no rows metadata");
	while ((k = cb_cql_rows_next(res, v, res->meta.ncolumns)) == 1) {
		struct cb_cql_peer *p, *grown;
		int err;

		grown = realloc(*peers, (*n + 1) * sizeof(**peers));
		if (grown == NULL)
			return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
					 "out of memory");
		*peers = grown;
		p = &grown[*n];
		memset(p, 0, sizeof(*p));
		(*n)++;
		if (!(native >= 0 && inet_text(v[native], p->addr, sizeof(p->addr))) &&
		    !(rpc >= 0 && inet_text(v[rpc], p->addr, sizeof(p->addr))) &&
		    !(peer >= 0 && inet_text(v[peer], p->addr, sizeof(p->addr))) &&
		    !(bcast >= 0 && inet_text(v[bcast], p->addr, sizeof(p->addr))))
			return cb_seterr(errstr, errstr_size, CB_E_PROTO,
					 "a ring row has no address");
		p->port = default_port;
		if (nport >= 0)
			p->port = int_value(v[nport], p->port);
		else if (rport >= 0)
			p->port = int_value(v[rport], p->port);
		if (dc >= 0)
			copy_text(p->dc, sizeof(p->dc), v[dc]);
		if (rack >= 0)
			copy_text(p->rack, sizeof(p->rack), v[rack]);
		if (part >= 0)
			copy_text(p->partitioner, sizeof(p->partitioner),
				  v[part]);
		if (hid >= 0 && v[hid].len == 16)
			memcpy(p->host_id, v[hid].p, 16);
		err = tok >= 0 ? read_tokens(v[tok], p) : 0;
		if (err != 0)
			return cb_seterr(errstr, errstr_size, err,
					 "node %s: unreadable tokens", p->addr);
	}
	if (k < 0)
		return cb_seterr(errstr, errstr_size, CB_E_PROTO,
				 "truncated ring rows");
	return 0;
}

int cb_cql_repl_from_rows(struct cb_cql_response *res, struct cb_cql_repl *r,
			  char *errstr, size_t errstr_size)
{
	int col = col_index(res, "replication");
	struct cb_cql_bytes v[CB_CQL_MAX_COLUMNS];
	struct cb_cql_rd rd;
	int32_t count;
	int k;

	cb_cql_repl_init(r);
	if (res->result_kind != CB_CQL_RESULT_ROWS || col < 0)
		return cb_seterr(errstr, errstr_size, CB_E_PROTO,
				 "system_schema.keyspaces has no replication "
				 "column");
	k = cb_cql_rows_next(res, v, res->meta.ncolumns);
	if (k == 0)
		return cb_seterr(errstr, errstr_size, CB_E_NOTFOUND,
				 "no such keyspace");
	/* a map: count, then key and value [bytes] pairs */
	if (k < 0 || cb_cql_coll_open(v[col], &rd, &count) != 0)
		return cb_seterr(errstr, errstr_size, CB_E_PROTO,
				 "unreadable replication map");
	for (int32_t i = 0; i < count; i++) {
		struct cb_cql_bytes key = cb_cql_get_bytes(&rd);
		struct cb_cql_bytes val = cb_cql_get_bytes(&rd);
		int err;

		if (rd.failed || key.len < 0 || val.len < 0)
			return cb_seterr(errstr, errstr_size, CB_E_PROTO,
					 "unreadable replication map");
		err = cb_cql_repl_set(r, (const char *)key.p, (size_t)key.len,
				      (const char *)val.p, (size_t)val.len,
				      errstr, errstr_size);
		if (err != 0)
			return err;
	}
	return 0;
}
