/*
 * cql_frame.c - the CQL native protocol v4 codec of cql_frame.h.  Pure
 * functions over caller memory; any thread.  Every read is bounds-checked
 * through struct cb_cql_rd, whose first overrun poisons the reader, so the
 * decoders below read straight through and check once per field group.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>

#include "chatbattle/cql_frame.h"
#include "chatbattle/err.h"

/* ---- encoding ---- */

void cb_cql_wbuf_init(struct cb_cql_wbuf *w, size_t max)
{
	memset(w, 0, sizeof(*w));
	w->max = max != 0 ? max : CB_CQL_BODY_MAX + CB_CQL_HDR_LEN;
}

void cb_cql_wbuf_free(struct cb_cql_wbuf *w)
{
	free(w->p);
	w->p = NULL;
	w->len = w->cap = 0;
}

void cb_cql_wbuf_reset(struct cb_cql_wbuf *w)
{
	w->len = 0;
	w->failed = false;
}

/* Makes room for n more bytes; false (and failed set) past the cap. */
static bool wroom(struct cb_cql_wbuf *w, size_t n)
{
	size_t need, cap;
	uint8_t *p;

	if (w->failed)
		return false;
	if (n > w->max || w->len > w->max - n) {
		w->failed = true;
		return false;
	}
	need = w->len + n;
	if (need <= w->cap)
		return true;
	cap = w->cap != 0 ? w->cap : 256;
	while (cap < need)
		cap = cap > w->max / 2 ? w->max : cap * 2;
	p = realloc(w->p, cap);
	if (p == NULL) {
		w->failed = true;
		return false;
	}
	w->p = p;
	w->cap = cap;
	return true;
}

void cb_cql_put_raw(struct cb_cql_wbuf *w, const void *p, size_t n)
{
	if (n == 0 || !wroom(w, n))
		return;
	memcpy(w->p + w->len, p, n);
	w->len += n;
}

void cb_cql_put_byte(struct cb_cql_wbuf *w, uint8_t v)
{
	cb_cql_put_raw(w, &v, 1);
}

void cb_cql_put_short(struct cb_cql_wbuf *w, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};

	cb_cql_put_raw(w, b, 2);
}

void cb_cql_put_int(struct cb_cql_wbuf *w, int32_t v)
{
	uint32_t u = (uint32_t)v;
	uint8_t b[4] = {(uint8_t)(u >> 24), (uint8_t)(u >> 16),
			(uint8_t)(u >> 8), (uint8_t)u};

	cb_cql_put_raw(w, b, 4);
}

void cb_cql_put_long(struct cb_cql_wbuf *w, int64_t v)
{
	uint64_t u = (uint64_t)v;
	uint8_t b[8];

	for (int i = 7; i >= 0; i--) {
		b[i] = (uint8_t)u;
		u >>= 8;
	}
	cb_cql_put_raw(w, b, 8);
}

/* A length that does not fit its prefix poisons the buffer. */
static bool fits(struct cb_cql_wbuf *w, size_t n, size_t limit)
{
	if (n > limit) {
		w->failed = true;
		return false;
	}
	return true;
}

void cb_cql_put_string(struct cb_cql_wbuf *w, const char *s, size_t n)
{
	if (!fits(w, n, UINT16_MAX))
		return;
	cb_cql_put_short(w, (uint16_t)n);
	cb_cql_put_raw(w, s, n);
}

void cb_cql_put_long_string(struct cb_cql_wbuf *w, const char *s, size_t n)
{
	if (!fits(w, n, INT32_MAX))
		return;
	cb_cql_put_int(w, (int32_t)n);
	cb_cql_put_raw(w, s, n);
}

void cb_cql_put_short_bytes(struct cb_cql_wbuf *w, const void *p, size_t n)
{
	if (!fits(w, n, UINT16_MAX))
		return;
	cb_cql_put_short(w, (uint16_t)n);
	cb_cql_put_raw(w, p, n);
}

void cb_cql_put_bytes(struct cb_cql_wbuf *w, const void *p, size_t n)
{
	if (p == NULL) {
		cb_cql_put_int(w, -1);
		return;
	}
	if (!fits(w, n, INT32_MAX))
		return;
	cb_cql_put_int(w, (int32_t)n);
	cb_cql_put_raw(w, p, n);
}

void cb_cql_put_string_list(struct cb_cql_wbuf *w, const char *const *v,
			    size_t n)
{
	if (!fits(w, n, UINT16_MAX))
		return;
	cb_cql_put_short(w, (uint16_t)n);
	for (size_t i = 0; i < n; i++)
		cb_cql_put_string(w, v[i], strlen(v[i]));
}

void cb_cql_put_value_bigint(struct cb_cql_wbuf *w, int64_t v)
{
	cb_cql_put_int(w, 8);
	cb_cql_put_long(w, v);
}

void cb_cql_put_value_int(struct cb_cql_wbuf *w, int32_t v)
{
	cb_cql_put_int(w, 4);
	cb_cql_put_int(w, v);
}

void cb_cql_put_value_uuid(struct cb_cql_wbuf *w, const uint8_t uuid[16])
{
	cb_cql_put_int(w, 16);
	cb_cql_put_raw(w, uuid, 16);
}

void cb_cql_put_value_text(struct cb_cql_wbuf *w, const char *s, size_t n)
{
	cb_cql_put_bytes(w, s != NULL ? s : "", n);
}

size_t cb_cql_frame_begin(struct cb_cql_wbuf *w, int16_t stream,
			  uint8_t opcode)
{
	size_t start = w->len;

	cb_cql_put_byte(w, CB_CQL_VERSION);
	cb_cql_put_byte(w, 0);
	cb_cql_put_short(w, (uint16_t)stream);
	cb_cql_put_byte(w, opcode);
	cb_cql_put_int(w, 0);
	return start;
}

void cb_cql_frame_end(struct cb_cql_wbuf *w, size_t start)
{
	size_t body;

	if (w->failed || w->len < start + CB_CQL_HDR_LEN)
		return;
	body = w->len - start - CB_CQL_HDR_LEN;
	if (body > CB_CQL_BODY_MAX) {
		w->failed = true;
		return;
	}
	w->p[start + 5] = (uint8_t)(body >> 24);
	w->p[start + 6] = (uint8_t)(body >> 16);
	w->p[start + 7] = (uint8_t)(body >> 8);
	w->p[start + 8] = (uint8_t)body;
}

/* Query flags (spec 4.1.4). */
#define QF_VALUES 0x01
#define QF_SKIP_METADATA 0x02
#define QF_PAGE_SIZE 0x04
#define QF_PAGING_STATE 0x08
#define QF_TIMESTAMP 0x20

void cb_cql_put_params_head(struct cb_cql_wbuf *w,
			    const struct cb_cql_params *p)
{
	uint8_t flags = 0;

	if (p->nvalues > 0)
		flags |= QF_VALUES;
	if (p->skip_metadata)
		flags |= QF_SKIP_METADATA;
	if (p->page_size > 0)
		flags |= QF_PAGE_SIZE;
	if (p->paging_state != NULL)
		flags |= QF_PAGING_STATE;
	if (p->timestamp_us != INT64_MIN)
		flags |= QF_TIMESTAMP;
	cb_cql_put_short(w, p->consistency);
	cb_cql_put_byte(w, flags);
	if (p->nvalues > 0)
		cb_cql_put_short(w, p->nvalues);
}

void cb_cql_put_params_tail(struct cb_cql_wbuf *w,
			    const struct cb_cql_params *p)
{
	if (p->page_size > 0)
		cb_cql_put_int(w, p->page_size);
	if (p->paging_state != NULL)
		cb_cql_put_bytes(w, p->paging_state, p->paging_state_len);
	if (p->timestamp_us != INT64_MIN)
		cb_cql_put_long(w, p->timestamp_us);
}

void cb_cql_enc_startup(struct cb_cql_wbuf *w, int16_t stream,
			const char *compression)
{
	size_t f = cb_cql_frame_begin(w, stream, CB_CQL_OP_STARTUP);

	cb_cql_put_short(w, compression != NULL ? 2 : 1);
	cb_cql_put_string(w, "CQL_VERSION", 11);
	cb_cql_put_string(w, "3.0.0", 5);
	if (compression != NULL) {
		cb_cql_put_string(w, "COMPRESSION", 11);
		cb_cql_put_string(w, compression, strlen(compression));
	}
	cb_cql_frame_end(w, f);
}

void cb_cql_enc_options(struct cb_cql_wbuf *w, int16_t stream)
{
	cb_cql_frame_end(w, cb_cql_frame_begin(w, stream, CB_CQL_OP_OPTIONS));
}

void cb_cql_enc_auth_plain(struct cb_cql_wbuf *w, int16_t stream,
			   const char *user, const char *password)
{
	size_t f = cb_cql_frame_begin(w, stream, CB_CQL_OP_AUTH_RESPONSE);
	size_t ul = strlen(user), pl = strlen(password);

	if (fits(w, ul + pl + 2, INT32_MAX)) {
		cb_cql_put_int(w, (int32_t)(ul + pl + 2));
		cb_cql_put_byte(w, 0);
		cb_cql_put_raw(w, user, ul);
		cb_cql_put_byte(w, 0);
		cb_cql_put_raw(w, password, pl);
	}
	cb_cql_frame_end(w, f);
}

void cb_cql_enc_prepare(struct cb_cql_wbuf *w, int16_t stream,
			const char *cql)
{
	size_t f = cb_cql_frame_begin(w, stream, CB_CQL_OP_PREPARE);

	cb_cql_put_long_string(w, cql, strlen(cql));
	cb_cql_frame_end(w, f);
}

void cb_cql_enc_register(struct cb_cql_wbuf *w, int16_t stream,
			 const char *const *events, size_t n)
{
	size_t f = cb_cql_frame_begin(w, stream, CB_CQL_OP_REGISTER);

	cb_cql_put_string_list(w, events, n);
	cb_cql_frame_end(w, f);
}

void cb_cql_enc_query(struct cb_cql_wbuf *w, int16_t stream, const char *cql,
		      const struct cb_cql_params *p)
{
	size_t f = cb_cql_frame_begin(w, stream, CB_CQL_OP_QUERY);
	struct cb_cql_params q = *p;

	q.nvalues = 0;
	cb_cql_put_long_string(w, cql, strlen(cql));
	cb_cql_put_params_head(w, &q);
	cb_cql_put_params_tail(w, &q);
	cb_cql_frame_end(w, f);
}

size_t cb_cql_batch_begin(struct cb_cql_wbuf *w, int16_t stream,
			  uint8_t type, uint16_t nstatements)
{
	size_t f = cb_cql_frame_begin(w, stream, CB_CQL_OP_BATCH);

	cb_cql_put_byte(w, type);
	cb_cql_put_short(w, nstatements);
	return f;
}

void cb_cql_put_batch_prepared(struct cb_cql_wbuf *w, const uint8_t *id,
			       size_t id_len, uint16_t nvalues)
{
	cb_cql_put_byte(w, 1);
	cb_cql_put_short_bytes(w, id, id_len);
	cb_cql_put_short(w, nvalues);
}

void cb_cql_batch_end(struct cb_cql_wbuf *w, size_t start,
		      uint16_t consistency, int64_t timestamp_us)
{
	cb_cql_put_short(w, consistency);
	cb_cql_put_byte(w, timestamp_us != INT64_MIN ? QF_TIMESTAMP : 0);
	if (timestamp_us != INT64_MIN)
		cb_cql_put_long(w, timestamp_us);
	cb_cql_frame_end(w, start);
}

/* ---- decoding ---- */

int cb_cql_header_parse(const uint8_t *p, struct cb_cql_header *h,
			char *errstr, size_t errstr_size)
{
	h->version = p[0];
	h->flags = p[1];
	h->stream = (int16_t)(uint16_t)((p[2] << 8) | p[3]);
	h->opcode = p[4];
	h->length = ((uint32_t)p[5] << 24) | ((uint32_t)p[6] << 16) |
		    ((uint32_t)p[7] << 8) | p[8];
	if (h->version != (0x80 | CB_CQL_VERSION))
		return cb_seterr(errstr, errstr_size, CB_E_PROTO,
				 "CQL frame with version byte 0x%02x (want "
				 "0x84: a protocol v4 response)",
				 h->version);
	if (h->length > CB_CQL_BODY_MAX)
		return cb_seterr(errstr, errstr_size, CB_E_TOOBIG,
				 "CQL frame body of %" PRIu32
				 " bytes exceeds the %u byte limit",
				 h->length, CB_CQL_BODY_MAX);
	return 0;
}

void cb_cql_rd_init(struct cb_cql_rd *r, const void *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->off = 0;
	r->failed = false;
}

/* Returns a pointer to the next n bytes and moves past them, or NULL. */
static const uint8_t *take(struct cb_cql_rd *r, size_t n)
{
	const uint8_t *q;

	if (r->failed || n > r->len - r->off) {
		r->failed = true;
		return NULL;
	}
	q = r->p + r->off;
	r->off += n;
	return q;
}

uint8_t cb_cql_get_byte(struct cb_cql_rd *r)
{
	const uint8_t *q = take(r, 1);

	return q != NULL ? q[0] : 0;
}

uint16_t cb_cql_get_short(struct cb_cql_rd *r)
{
	const uint8_t *q = take(r, 2);

	return q != NULL ? (uint16_t)((q[0] << 8) | q[1]) : 0;
}

int32_t cb_cql_get_int(struct cb_cql_rd *r)
{
	const uint8_t *q = take(r, 4);

	if (q == NULL)
		return 0;
	return (int32_t)(((uint32_t)q[0] << 24) | ((uint32_t)q[1] << 16) |
			 ((uint32_t)q[2] << 8) | q[3]);
}

int64_t cb_cql_get_long(struct cb_cql_rd *r)
{
	const uint8_t *q = take(r, 8);
	uint64_t u = 0;

	if (q == NULL)
		return 0;
	for (int i = 0; i < 8; i++)
		u = (u << 8) | q[i];
	return (int64_t)u;
}

struct cb_cql_bytes cb_cql_get_raw(struct cb_cql_rd *r, size_t n)
{
	struct cb_cql_bytes b = {NULL, 0};
	const uint8_t *q = take(r, n);

	if (q != NULL) {
		b.p = q;
		b.len = (int32_t)n;
	}
	return b;
}

struct cb_cql_bytes cb_cql_get_string(struct cb_cql_rd *r)
{
	uint16_t n = cb_cql_get_short(r);

	return cb_cql_get_raw(r, n);
}

/* [int n] then n bytes; n < 0 is null (-1) where allowed, else invalid. */
static struct cb_cql_bytes get_int_prefixed(struct cb_cql_rd *r,
					    bool null_ok)
{
	struct cb_cql_bytes b = {NULL, -1};
	int32_t n = cb_cql_get_int(r);

	if (r->failed)
		return (struct cb_cql_bytes){NULL, 0};
	if (n < 0) {
		if (!null_ok)
			r->failed = true;
		return b;
	}
	return cb_cql_get_raw(r, (size_t)n);
}

struct cb_cql_bytes cb_cql_get_long_string(struct cb_cql_rd *r)
{
	return get_int_prefixed(r, false);
}

struct cb_cql_bytes cb_cql_get_bytes(struct cb_cql_rd *r)
{
	return get_int_prefixed(r, true);
}

struct cb_cql_bytes cb_cql_get_short_bytes(struct cb_cql_rd *r)
{
	uint16_t n = cb_cql_get_short(r);

	return cb_cql_get_raw(r, n);
}

/* Skips a [string list]. */
static void skip_string_list(struct cb_cql_rd *r)
{
	uint16_t n = cb_cql_get_short(r);

	for (uint16_t i = 0; i < n && !r->failed; i++)
		(void)cb_cql_get_string(r);
}

/* Parses an [option] type, recursing into collections up to a depth. */
static void get_type(struct cb_cql_rd *r, struct cb_cql_type *t, int depth)
{
	struct cb_cql_type sub;
	uint16_t n;

	memset(t, 0, sizeof(*t));
	if (depth > CB_CQL_TYPE_DEPTH) {
		r->failed = true;
		return;
	}
	t->id = cb_cql_get_short(r);
	switch (t->id) {
	case CB_CQL_T_CUSTOM:
		t->custom = cb_cql_get_string(r);
		break;
	case CB_CQL_T_LIST:
	case CB_CQL_T_SET:
		get_type(r, &sub, depth + 1);
		t->sub[0] = sub.id;
		break;
	case CB_CQL_T_MAP:
		get_type(r, &sub, depth + 1);
		t->sub[0] = sub.id;
		get_type(r, &sub, depth + 1);
		t->sub[1] = sub.id;
		break;
	case CB_CQL_T_UDT:
		(void)cb_cql_get_string(r); /* keyspace */
		(void)cb_cql_get_string(r); /* type name */
		n = cb_cql_get_short(r);
		for (uint16_t i = 0; i < n && !r->failed; i++) {
			(void)cb_cql_get_string(r);
			get_type(r, &sub, depth + 1);
		}
		break;
	case CB_CQL_T_TUPLE:
		n = cb_cql_get_short(r);
		for (uint16_t i = 0; i < n && !r->failed; i++)
			get_type(r, &sub, depth + 1);
		break;
	default:
		/* a primitive, or an id this version does not know: it has
		 * no parameters, and its values are [bytes] we can skip */
		break;
	}
}

/* Metadata flags (spec 4.2.5.2). */
#define MF_GLOBAL_TABLES 0x0001
#define MF_HAS_MORE_PAGES 0x0002
#define MF_NO_METADATA 0x0004

static int get_metadata(struct cb_cql_rd *r, struct cb_cql_metadata *m,
			bool prepared, char *errstr, size_t errstr_size)
{
	struct cb_cql_bytes gks = {NULL, 0}, gtable = {NULL, 0};

	m->flags = cb_cql_get_int(r);
	m->ncolumns = cb_cql_get_int(r);
	m->paging_state = (struct cb_cql_bytes){NULL, -1};
	m->npk = 0;
	if (r->failed)
		goto truncated;
	if (m->ncolumns < 0 || m->ncolumns > CB_CQL_MAX_COLUMNS)
		return cb_seterr(errstr, errstr_size, CB_E_PROTO,
				 "CQL metadata with %" PRId32
				 " columns (limit %d)",
				 m->ncolumns, CB_CQL_MAX_COLUMNS);
	if (prepared) {
		m->npk = cb_cql_get_int(r);
		if (m->npk < 0 || m->npk > CB_CQL_MAX_COLUMNS)
			return cb_seterr(errstr, errstr_size, CB_E_PROTO,
					 "CQL prepared metadata with %" PRId32
					 " partition key columns",
					 m->npk);
		for (int32_t i = 0; i < m->npk; i++)
			m->pk_index[i] = cb_cql_get_short(r);
	} else if (m->flags & MF_HAS_MORE_PAGES) {
		m->paging_state = cb_cql_get_bytes(r);
	}
	if (!prepared && (m->flags & MF_NO_METADATA))
		goto out;
	if (m->flags & MF_GLOBAL_TABLES) {
		gks = cb_cql_get_string(r);
		gtable = cb_cql_get_string(r);
	}
	for (int32_t i = 0; i < m->ncolumns && !r->failed; i++) {
		struct cb_cql_column *c = &m->columns[i];

		if (m->flags & MF_GLOBAL_TABLES) {
			c->keyspace = gks;
			c->table = gtable;
		} else {
			c->keyspace = cb_cql_get_string(r);
			c->table = cb_cql_get_string(r);
		}
		c->name = cb_cql_get_string(r);
		get_type(r, &c->type, 0);
	}
out:
	if (r->failed)
		goto truncated;
	return 0;
truncated:
	return cb_seterr(errstr, errstr_size, CB_E_PROTO,
			 "CQL %s metadata is truncated or malformed",
			 prepared ? "prepared" : "rows");
}

static void get_error(struct cb_cql_rd *r, struct cb_cql_error *e)
{
	memset(e, 0, sizeof(*e));
	e->code = cb_cql_get_int(r);
	e->message = cb_cql_get_string(r);
	switch (e->code) {
	case CB_CQL_ERR_UNAVAILABLE:
		e->consistency = cb_cql_get_short(r);
		e->blockfor = cb_cql_get_int(r);
		e->alive = cb_cql_get_int(r);
		break;
	case CB_CQL_ERR_WRITE_TIMEOUT:
		e->consistency = cb_cql_get_short(r);
		e->received = cb_cql_get_int(r);
		e->blockfor = cb_cql_get_int(r);
		e->write_type = cb_cql_get_string(r);
		break;
	case CB_CQL_ERR_READ_TIMEOUT:
		e->consistency = cb_cql_get_short(r);
		e->received = cb_cql_get_int(r);
		e->blockfor = cb_cql_get_int(r);
		e->data_present = cb_cql_get_byte(r) != 0;
		break;
	case CB_CQL_ERR_READ_FAILURE:
		e->consistency = cb_cql_get_short(r);
		e->received = cb_cql_get_int(r);
		e->blockfor = cb_cql_get_int(r);
		e->numfailures = cb_cql_get_int(r);
		e->data_present = cb_cql_get_byte(r) != 0;
		break;
	case CB_CQL_ERR_WRITE_FAILURE:
		e->consistency = cb_cql_get_short(r);
		e->received = cb_cql_get_int(r);
		e->blockfor = cb_cql_get_int(r);
		e->numfailures = cb_cql_get_int(r);
		e->write_type = cb_cql_get_string(r);
		break;
	case CB_CQL_ERR_FUNCTION_FAILURE:
		e->keyspace = cb_cql_get_string(r);
		e->function = cb_cql_get_string(r);
		skip_string_list(r);
		break;
	case CB_CQL_ERR_ALREADY_EXISTS:
		e->keyspace = cb_cql_get_string(r);
		e->table = cb_cql_get_string(r);
		break;
	case CB_CQL_ERR_UNPREPARED:
		e->unprepared_id = cb_cql_get_short_bytes(r);
		break;
	default:
		break;
	}
}

static void get_schema_change(struct cb_cql_rd *r,
			      struct cb_cql_schema_change *s)
{
	memset(s, 0, sizeof(*s));
	s->change = cb_cql_get_string(r);
	s->target = cb_cql_get_string(r);
	s->keyspace = cb_cql_get_string(r);
	if (s->target.len == 8 && memcmp(s->target.p, "KEYSPACE", 8) == 0)
		return;
	s->name = cb_cql_get_string(r);
	if ((s->target.len == 8 && memcmp(s->target.p, "FUNCTION", 8) == 0) ||
	    (s->target.len == 9 && memcmp(s->target.p, "AGGREGATE", 9) == 0))
		skip_string_list(r);
}

static bool bytes_is(struct cb_cql_bytes b, const char *s)
{
	size_t n = strlen(s);

	return b.len >= 0 && (size_t)b.len == n && memcmp(b.p, s, n) == 0;
}

static void get_event(struct cb_cql_rd *r, struct cb_cql_response *o)
{
	o->event_type = cb_cql_get_string(r);
	if (bytes_is(o->event_type, "SCHEMA_CHANGE")) {
		get_schema_change(r, &o->schema);
		return;
	}
	/* TOPOLOGY_CHANGE, STATUS_CHANGE: [string] change, [inet] node */
	o->event_change = cb_cql_get_string(r);
	o->event_addr_len = cb_cql_get_byte(r);
	if (o->event_addr_len != 4 && o->event_addr_len != 16) {
		r->failed = true;
		return;
	}
	struct cb_cql_bytes a = cb_cql_get_raw(r, o->event_addr_len);

	if (!r->failed)
		memcpy(o->event_addr, a.p, o->event_addr_len);
	o->event_port = cb_cql_get_int(r);
}

/* Clears what an earlier frame left in o. */
static void response_reset(struct cb_cql_response *o,
			   const struct cb_cql_header *h)
{
	/* every span from an earlier frame goes (the metadata arrays are
	 * only read up to meta.ncolumns, which is reset) */
	static const struct cb_cql_bytes none = {NULL, 0};

	o->hdr = *h;
	o->has_tracing = false;
	o->nwarnings = 0;
	o->warning = none;
	memset(&o->error, 0, sizeof(o->error));
	o->result_kind = 0;
	o->meta.flags = 0;
	o->meta.ncolumns = 0;
	o->meta.npk = 0;
	o->meta.paging_state = (struct cb_cql_bytes){NULL, -1};
	o->prepared_id = none;
	o->nrows = 0;
	o->keyspace = none;
	memset(&o->schema, 0, sizeof(o->schema));
	o->authenticator = none;
	o->token = none;
	o->supported = none;
	o->event_type = none;
	o->event_change = none;
	o->event_addr_len = 0;
	o->event_port = 0;
}

/* The tracing id, warnings and custom payload that may precede a body,
 * in the order the spec gives (section 2.2). */
static void get_prefix(struct cb_cql_rd *r, uint8_t flags,
		       struct cb_cql_response *o)
{
	if (flags & CB_CQL_F_TRACING) {
		struct cb_cql_bytes id = cb_cql_get_raw(r, 16);

		if (!r->failed) {
			memcpy(o->tracing_id, id.p, 16);
			o->has_tracing = true;
		}
	}
	if (flags & CB_CQL_F_WARNING) {
		uint16_t n = cb_cql_get_short(r);

		o->nwarnings = n;
		for (uint16_t i = 0; i < n && !r->failed; i++) {
			struct cb_cql_bytes wn = cb_cql_get_string(r);

			if (i == 0)
				o->warning = wn;
		}
	}
	if (flags & CB_CQL_F_PAYLOAD) {
		uint16_t n = cb_cql_get_short(r);

		for (uint16_t i = 0; i < n && !r->failed; i++) {
			(void)cb_cql_get_string(r);
			(void)cb_cql_get_bytes(r);
		}
	}
}

/* The body of a RESULT: its kind, then what that kind carries. */
static int get_result(struct cb_cql_rd *r, struct cb_cql_response *o,
		      char *errstr, size_t errstr_size)
{
	int err;

	o->result_kind = cb_cql_get_int(r);
	switch (o->result_kind) {
	case CB_CQL_RESULT_VOID:
		break;
	case CB_CQL_RESULT_ROWS:
		err = get_metadata(r, &o->meta, false, errstr,
				   errstr_size);
		if (err != 0)
			return err;
		o->nrows = cb_cql_get_int(r);
		/* each value takes at least its [int] length: a row
		 * count the body cannot hold is a lie (and would spin
		 * rows_next on zero-column rows) */
		if (o->nrows < 0 ||
		    (o->nrows > 0 &&
		     (o->meta.ncolumns == 0 ||
		      (uint64_t)o->nrows * 4 *
				      (uint64_t)o->meta.ncolumns >
			      r->len - r->off)))
			r->failed = true;
		if (!r->failed)
			cb_cql_rd_init(&o->rows, r->p + r->off,
				       r->len - r->off);
		r->off = r->len; /* rows are read by rows_next */
		break;
	case CB_CQL_RESULT_SET_KEYSPACE:
		o->keyspace = cb_cql_get_string(r);
		break;
	case CB_CQL_RESULT_PREPARED:
		o->prepared_id = cb_cql_get_short_bytes(r);
		err = get_metadata(r, &o->meta, true, errstr,
				   errstr_size);
		if (err != 0)
			return err;
		/* the result metadata follows; we bind, not read */
		{
			struct cb_cql_metadata *rm =
				malloc(sizeof(*rm));

			if (rm == NULL)
				return cb_seterr(errstr, errstr_size,
						 CB_E_NOMEM,
						 "out of memory");
			err = get_metadata(r, rm, false, errstr,
					   errstr_size);
			free(rm);
			if (err != 0)
				return err;
		}
		break;
	case CB_CQL_RESULT_SCHEMA_CHANGE:
		get_schema_change(r, &o->schema);
		break;
	default:
		return cb_seterr(errstr, errstr_size, CB_E_PROTO,
				 "CQL RESULT of unknown kind %" PRId32,
				 o->result_kind);
	}
	return 0;
}

/* The body after the prefix, by opcode.  Returns 0 (r->failed tells a
 * truncated field) or CB_E_PROTO for a body no server sends. */
static int get_body(struct cb_cql_rd *r, const struct cb_cql_header *h,
		    struct cb_cql_response *o, char *errstr,
		    size_t errstr_size)
{
	switch (h->opcode) {
	case CB_CQL_OP_ERROR:
		get_error(r, &o->error);
		break;
	case CB_CQL_OP_READY:
		break;
	case CB_CQL_OP_AUTHENTICATE:
		o->authenticator = cb_cql_get_string(r);
		break;
	case CB_CQL_OP_AUTH_CHALLENGE:
	case CB_CQL_OP_AUTH_SUCCESS:
		o->token = cb_cql_get_bytes(r);
		break;
	case CB_CQL_OP_SUPPORTED:
		o->supported.p = r->p + r->off;
		o->supported.len = (int32_t)(r->len - r->off);
		{
			uint16_t n = cb_cql_get_short(r);

			for (uint16_t i = 0; i < n && !r->failed; i++) {
				(void)cb_cql_get_string(r);
				skip_string_list(r);
			}
		}
		break;
	case CB_CQL_OP_EVENT:
		get_event(r, o);
		break;
	case CB_CQL_OP_RESULT:
		return get_result(r, o, errstr, errstr_size);
	default:
		return cb_seterr(errstr, errstr_size, CB_E_PROTO,
				 "CQL response with opcode 0x%02x (%s) is not "
				 "one a server sends",
				 h->opcode, cb_cql_opcode_name(h->opcode));
	}
	return 0;
}

int cb_cql_response_parse(const struct cb_cql_header *h, const uint8_t *body,
			  size_t len, struct cb_cql_response *o, char *errstr,
			  size_t errstr_size)
{
	struct cb_cql_rd r;
	int err;

	response_reset(o, h);
	cb_cql_rd_init(&r, body, len);
	cb_cql_rd_init(&o->rows, body, 0);
	if (h->flags & CB_CQL_F_COMPRESSION)
		return cb_seterr(errstr, errstr_size, CB_E_PROTO,
				 "CQL frame still compressed");
	get_prefix(&r, h->flags, o);
	err = get_body(&r, h, o, errstr, errstr_size);
	if (err != 0)
		return err;
	if (r.failed)
		return cb_seterr(errstr, errstr_size, CB_E_PROTO,
				 "CQL %s frame is truncated or malformed "
				 "(%zu body bytes)",
				 cb_cql_opcode_name(h->opcode), len);
	return 0;
}

int cb_cql_rows_next(struct cb_cql_response *res, struct cb_cql_bytes *v,
		     int32_t ncols)
{
	if (res->nrows <= 0)
		return 0;
	for (int32_t i = 0; i < ncols; i++)
		v[i] = cb_cql_get_bytes(&res->rows);
	if (res->rows.failed)
		return CB_E_PROTO;
	res->nrows--;
	return 1;
}

int cb_cql_coll_open(struct cb_cql_bytes v, struct cb_cql_rd *r,
		     int32_t *count)
{
	if (v.len < 0) {
		*count = 0;
		cb_cql_rd_init(r, "", 0);
		return 0;
	}
	cb_cql_rd_init(r, v.p, (size_t)v.len);
	*count = cb_cql_get_int(r);
	/* each element takes at least its 4-byte length */
	if (r->failed || *count < 0 || (size_t)*count > (r->len - r->off) / 4)
		return CB_E_PROTO;
	return 0;
}

/* ---- rendering ---- */

static int64_t be_int(const uint8_t *p, int32_t n)
{
	uint64_t u = (p[0] & 0x80) ? UINT64_MAX : 0;

	for (int32_t i = 0; i < n; i++)
		u = (u << 8) | p[i];
	return (int64_t)u;
}

static int render_scalar(uint16_t id, struct cb_cql_bytes v, char *out,
			 size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (v.len < 0)
		return snprintf(out, size, "null");
	switch (id) {
	case CB_CQL_T_ASCII:
	case CB_CQL_T_VARCHAR:
		if (size > 0) {
			size_t n = (size_t)v.len < size - 1 ? (size_t)v.len
							    : size - 1;
			if (n > 0)
				memcpy(out, v.p, n);
			out[n] = '\0';
		}
		return v.len;
	case CB_CQL_T_BIGINT:
	case CB_CQL_T_COUNTER:
	case CB_CQL_T_TIMESTAMP:
	case CB_CQL_T_TIME:
		if (v.len != 8)
			return CB_E_PROTO;
		return snprintf(out, size, "%" PRId64, be_int(v.p, 8));
	case CB_CQL_T_INT:
		if (v.len != 4)
			return CB_E_PROTO;
		return snprintf(out, size, "%" PRId64, be_int(v.p, 4));
	case CB_CQL_T_SMALLINT:
		if (v.len != 2)
			return CB_E_PROTO;
		return snprintf(out, size, "%" PRId64, be_int(v.p, 2));
	case CB_CQL_T_TINYINT:
		if (v.len != 1)
			return CB_E_PROTO;
		return snprintf(out, size, "%" PRId64, be_int(v.p, 1));
	case CB_CQL_T_BOOLEAN:
		if (v.len != 1)
			return CB_E_PROTO;
		return snprintf(out, size, "%s", v.p[0] ? "true" : "false");
	case CB_CQL_T_UUID:
	case CB_CQL_T_TIMEUUID: {
		char u[37];

		if (v.len != 16)
			return CB_E_PROTO;
		for (int i = 0; i < 16; i++) {
			if (i == 4 || i == 6 || i == 8 || i == 10)
				u[o++] = '-';
			u[o++] = hex[v.p[i] >> 4];
			u[o++] = hex[v.p[i] & 15];
		}
		u[o] = '\0';
		return snprintf(out, size, "%s", u);
	}
	case CB_CQL_T_BLOB: {
		size_t need = 2 + 2 * (size_t)v.len;

		for (int32_t i = -1; i < v.len; i++) {
			char a = i < 0 ? '0' : hex[v.p[i] >> 4];
			char b = i < 0 ? 'x' : hex[v.p[i] & 15];

			if (o + 2 < size) {
				out[o] = a;
				out[o + 1] = b;
			}
			o += 2;
		}
		if (size > 0)
			out[o < size ? o : size - 1] = '\0';
		return (int)need;
	}
	default:
		return CB_E_UNSUPPORTED;
	}
}

int cb_cql_value_text(const struct cb_cql_type *t, struct cb_cql_bytes v,
		      char *out, size_t out_size)
{
	struct cb_cql_rd r;
	int32_t n;
	size_t o = 0;

	if (t->id != CB_CQL_T_LIST && t->id != CB_CQL_T_SET)
		return render_scalar(t->id, v, out, out_size);
	if (v.len < 0)
		return snprintf(out, out_size, "null");
	if (cb_cql_coll_open(v, &r, &n) != 0)
		return CB_E_PROTO;
	if (out_size > 0)
		out[0] = '\0';
#define APPEND(s)                                                              \
	do {                                                                   \
		size_t l_ = strlen(s);                                         \
		if (o < out_size)                                              \
			snprintf(out + o, out_size - o, "%s", s);              \
		o += l_;                                                       \
	} while (0)
	APPEND("[");
	for (int32_t i = 0; i < n; i++) {
		struct cb_cql_bytes e = cb_cql_get_bytes(&r);
		char tmp[512];
		int k;

		if (r.failed)
			return CB_E_PROTO;
		k = render_scalar(t->sub[0], e, tmp, sizeof(tmp));
		if (k < 0)
			return k;
		if (i > 0)
			APPEND(", ");
		APPEND(tmp);
	}
	APPEND("]");
#undef APPEND
	return (int)o;
}

/* ---- names and descriptions ---- */

const char *cb_cql_error_name(int32_t code)
{
	switch (code) {
#define CB_CQL_ERR_NAME(name, value, desc)                                     \
	case value:                                                            \
		return desc;
		CB_CQL_ERROR_LIST(CB_CQL_ERR_NAME)
#undef CB_CQL_ERR_NAME
	default:
		return "Unknown error";
	}
}

static const char *const consistency_names[] = {
	"ANY",	       "ONE",	      "TWO",	"THREE",	"QUORUM",   "ALL",
	"LOCAL_QUORUM", "EACH_QUORUM", "SERIAL", "LOCAL_SERIAL", "LOCAL_ONE",
};

const char *cb_cql_consistency_name(uint16_t c)
{
	if (c < sizeof(consistency_names) / sizeof(consistency_names[0]))
		return consistency_names[c];
	return "UNKNOWN";
}

int cb_cql_consistency_parse(const char *s)
{
	for (size_t i = 0;
	     i < sizeof(consistency_names) / sizeof(consistency_names[0]); i++)
		if (strcmp(s, consistency_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *cb_cql_opcode_name(uint8_t op)
{
	static const char *const names[] = {
		"ERROR",	  "STARTUP",	     "READY",	     "AUTHENTICATE",
		NULL,		  "OPTIONS",	     "SUPPORTED",    "QUERY",
		"RESULT",	  "PREPARE",	     "EXECUTE",	     "REGISTER",
		"EVENT",	  "BATCH",	     "AUTH_CHALLENGE", "AUTH_RESPONSE",
		"AUTH_SUCCESS",
	};

	if (op < sizeof(names) / sizeof(names[0]) && names[op] != NULL)
		return names[op];
	return "UNKNOWN";
}

/* Appends ", label" with a printable copy of b (length-bounded). */
static size_t add_str(char *buf, size_t size, size_t o, const char *label,
		      struct cb_cql_bytes b)
{
	int n;

	if (b.len <= 0 || o >= size)
		return o;
	n = snprintf(buf + o, size - o, ", %s %.*s", label, (int)b.len,
		     (const char *)b.p);
	return n > 0 ? o + (size_t)n : o;
}

void cb_cql_error_describe(const struct cb_cql_error *e, char *buf,
			   size_t size)
{
	size_t o;
	int n;

	if (size == 0)
		return;
	n = snprintf(buf, size, "%s (0x%04" PRIx32 "): %.*s",
		     cb_cql_error_name(e->code), (uint32_t)e->code,
		     e->message.len > 0 ? (int)e->message.len : 0,
		     e->message.len > 0 ? (const char *)e->message.p : "");
	o = n > 0 ? (size_t)n : 0;
	if (o >= size)
		return;
	switch (e->code) {
	case CB_CQL_ERR_UNAVAILABLE:
		snprintf(buf + o, size - o,
			 " (consistency %s needs %" PRId32 " replicas, %" PRId32
			 " alive)",
			 cb_cql_consistency_name(e->consistency), e->blockfor,
			 e->alive);
		break;
	case CB_CQL_ERR_WRITE_TIMEOUT:
	case CB_CQL_ERR_WRITE_FAILURE:
	case CB_CQL_ERR_READ_TIMEOUT:
	case CB_CQL_ERR_READ_FAILURE:
		n = snprintf(buf + o, size - o,
			     " (consistency %s, %" PRId32 " of %" PRId32
			     " replicas answered",
			     cb_cql_consistency_name(e->consistency),
			     e->received, e->blockfor);
		o += n > 0 ? (size_t)n : 0;
		if (o < size && (e->code == CB_CQL_ERR_READ_FAILURE ||
				 e->code == CB_CQL_ERR_WRITE_FAILURE)) {
			n = snprintf(buf + o, size - o, ", %" PRId32 " failed",
				     e->numfailures);
			o += n > 0 ? (size_t)n : 0;
		}
		if (o < size && (e->code == CB_CQL_ERR_READ_TIMEOUT ||
				 e->code == CB_CQL_ERR_READ_FAILURE)) {
			n = snprintf(buf + o, size - o, ", data %s",
				     e->data_present ? "present" : "missing");
			o += n > 0 ? (size_t)n : 0;
		}
		o = add_str(buf, size, o, "write type", e->write_type);
		if (o < size)
			snprintf(buf + o, size - o, ")");
		break;
	case CB_CQL_ERR_FUNCTION_FAILURE:
		o = add_str(buf, size, o, "keyspace", e->keyspace);
		add_str(buf, size, o, "function", e->function);
		break;
	case CB_CQL_ERR_ALREADY_EXISTS:
		o = add_str(buf, size, o, "keyspace", e->keyspace);
		add_str(buf, size, o, "table", e->table);
		break;
	case CB_CQL_ERR_UNPREPARED:
		snprintf(buf + o, size - o, " (statement id of %" PRId32
			 " bytes)", e->unprepared_id.len);
		break;
	default:
		break;
	}
}

bool cb_cql_error_retryable(const struct cb_cql_error *e)
{
	switch (e->code) {
	case CB_CQL_ERR_UNAVAILABLE:
	case CB_CQL_ERR_OVERLOADED:
	case CB_CQL_ERR_IS_BOOTSTRAPPING:
	case CB_CQL_ERR_WRITE_TIMEOUT:
	case CB_CQL_ERR_READ_TIMEOUT:
	case CB_CQL_ERR_SERVER_ERROR:
		return true;
	default:
		return false;
	}
}

/* ---- LZ4 ---- */

size_t cb_cql_lz4_bound(size_t n)
{
	return 4 + (size_t)LZ4_compressBound((int)n);
}

int cb_cql_lz4_compress(const uint8_t *in, size_t n, uint8_t *out,
			size_t out_size)
{
	int k;

	if (n > CB_CQL_BODY_MAX || out_size < 4)
		return CB_E_TOOBIG;
	out[0] = (uint8_t)(n >> 24);
	out[1] = (uint8_t)(n >> 16);
	out[2] = (uint8_t)(n >> 8);
	out[3] = (uint8_t)n;
	if (n == 0)
		return 4;
	k = LZ4_compress_default((const char *)in, (char *)out + 4, (int)n,
				 (int)(out_size - 4 > INT32_MAX ? INT32_MAX
								: out_size - 4));
	if (k <= 0)
		return CB_E_TOOBIG;
	return k + 4;
}

int64_t cb_cql_lz4_declared_len(const uint8_t *in, size_t n)
{
	if (n < 4)
		return -1;
	return ((int64_t)in[0] << 24) | ((int64_t)in[1] << 16) |
	       ((int64_t)in[2] << 8) | in[3];
}

int cb_cql_lz4_decompress(const uint8_t *in, size_t n, uint8_t *out,
			  size_t out_size)
{
	int64_t want = cb_cql_lz4_declared_len(in, n);
	int k;

	if (want < 0)
		return CB_E_PROTO;
	if (want > CB_CQL_BODY_MAX || (uint64_t)want > out_size)
		return CB_E_TOOBIG;
	if (want == 0)
		return 0;
	if (n - 4 > INT32_MAX)
		return CB_E_TOOBIG;
	k = LZ4_decompress_safe((const char *)in + 4, (char *)out,
				(int)(n - 4), (int)want);
	if (k != want)
		return CB_E_PROTO;
	return k;
}
