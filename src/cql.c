/*
 * cql.c - the Cassandra writer, module "cql" (role aggregate).
 *
 * Thread: its own, running a libevent loop.  It owns a pool of connections
 * (cassandra_connections per host of cassandra_hosts), each with up to
 * cassandra_inflight requests in flight on stream ids 1..N; stream 0
 * carries the connection's control requests (STARTUP, AUTH_RESPONSE,
 * PREPARE, REGISTER, the OPTIONS heartbeat), one at a time.
 *
 * Data path: records (struct cb_row_hdr) are taken from app->rows, copied
 * into a request (up to cassandra_batch_rows rows of one channel, which are
 * one Cassandra partition: an UNLOGGED BATCH, or a single EXECUTE of the
 * prepared INSERT), and sent on a ready connection.  When Cassandra
 * acknowledges a request, its rows are marked done in a per-Kafka-partition
 * FIFO; the done prefix of each FIFO becomes a struct cb_ack on app->acks,
 * so the aggregator commits input offsets only for rows Cassandra holds.
 *
 * Nothing is dropped: every failure (a retryable ERROR, a timeout, a lost
 * connection) puts the request back in the queue, with exponential backoff
 * and jitter; UNPREPARED re-prepares on that connection and resends at
 * once.  Errors that retrying cannot fix (an invalid query, a missing
 * table) are logged, mark Cassandra down in /api/health, and are retried
 * at the longest backoff until an operator fixes the cause.  Back-pressure:
 * the writer takes rows from the ring only while it has a free request and
 * room in its FIFOs, so when Cassandra is slow or down the ring fills and
 * the aggregator pauses its Kafka partitions.  Writes are idempotent (the
 * primary key includes the message id), so a replay after a crash, or a
 * retry of a request whose answer was lost, rewrites the same row.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "chatbattle/app.h"
#include "chatbattle/clock.h"
#include "chatbattle/config.h"
#include "chatbattle/cql.h"
#include "chatbattle/cql_frame.h"
#include "chatbattle/err.h"
#include "chatbattle/log.h"
#include "chatbattle/metrics.h"
#include "chatbattle/record.h"
#include "chatbattle/ring.h"
#include "chatbattle/tls.h"
#include "cql_int.h"

#define SUBSYS "cql"

#define CTL_STREAM 0
#define GATHER_MAX 512          /* ring records per pull before yielding */
#define OPEN_MAX 64             /* channels batched at once */
#define TICK_MS 100
#define HEARTBEAT_IDLE_MS 30000
#define RETRY_MIN_MS 50
#define RETRY_MAX_MS 5000
#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 10000
#define FIFO_ROWS 65536u        /* rows outstanding per Kafka partition */
#define PARTS_MAX CB_PARTITIONS_MAX /* Kafka partitions we track */
#define READ_HIGH_WATER (8u << 20)
/* Buffer bytes of the requests in use: the memory bound of the writer (a
 * request keeps its buffer for reuse, and the free list is LIFO, so the
 * buffers ever grown are about those of the busiest moment).  4 MiB is
 * 125 ms at 64,000 rows/s, far more than Cassandra needs to stay busy;
 * when Cassandra is the bottleneck, more in flight only makes its queue
 * longer. */
#define INFLIGHT_BYTES_MAX (4u << 20)

enum conn_state {
	C_DOWN,
	C_CONNECTING,
	C_STARTUP,
	C_AUTH,
	C_PREPARE,
	C_READY,
};

enum ctl_op {
	CTL_NONE,
	CTL_STARTUP,
	CTL_AUTH,
	CTL_PREPARE,
	CTL_REGISTER,
	CTL_OPTIONS,
};

struct cql;
struct conn;

/* Where a row of a request sits in its partition's FIFO. */
struct row_ref {
	uint32_t part;
	uint32_t seq;
};

struct req {
	struct req *next;
	uint8_t *data;          /* the row records, each 8-aligned */
	size_t len, cap;
	uint16_t nrows;
	struct row_ref *refs;   /* [batch_rows] */
	uint32_t attempts;
	int64_t sent_us;
	int64_t retry_at_ms;
	struct conn *conn;
	int16_t stream;
};

struct conn {
	struct cql *w;
	const struct cb_cql_host *host;
	struct bufferevent *bev;
	enum conn_state state;
	enum ctl_op ctl;
	int64_t ctl_sent_ms;
	bool need_prepare;
	bool need_register;
	struct req **slots;     /* [inflight + 1], index = stream id */
	bool *orphan;           /* a timed-out request still owns the id */
	int16_t *free_ids;
	int nfree;
	int ninflight;
	int backoff_ms;
	int64_t reconnect_at_ms;
	int64_t connect_ms;     /* when the current connect began */
	int64_t last_read_ms;
	bool lz4;
	char why[256];          /* last failure, for logs */
};

/* A Kafka partition's rows in arrival (= offset) order. */
struct part {
	bool used;
	uint32_t head, tail;    /* seq numbers; tail - head rows pending */
	int64_t *offset;        /* [FIFO_ROWS] */
	uint32_t *gen;
	uint8_t *done;
	bool ack_pending;
	struct cb_ack ack;      /* the newest ack not yet on the ring */
};

struct cql {
	struct cb_app *app;
	const struct cb_config *cfg;
	struct event_base *base;
	struct evdns_base *dns;
	SSL_CTX *ssl_ctx;
	pthread_t thread;
	bool thread_started;
	int stop_efd;
	struct event *stop_ev, *ring_ev, *tick_ev, *acks_ev;
	atomic_bool stopping;

	struct cb_cql_host *hosts;
	size_t nhosts;
	struct conn *conns;
	size_t nconns;
	size_t rr;              /* round-robin cursor */
	int inflight;           /* per connection */
	int batch_rows;
	uint16_t consistency;
	bool lz4;

	char insert_cql[256];
	uint8_t prepared_id[64];
	size_t prepared_len;

	struct req *reqs;       /* the pool */
	size_t nreqs;
	struct req *free_reqs;
	struct req *queue_head, *queue_tail; /* ready to send */
	struct req *delayed;    /* waiting for retry_at_ms, unsorted */
	size_t nqueued;

	struct part *parts;     /* [PARTS_MAX], indexed by partition */
	uint64_t rows_outstanding;
	uint64_t bytes_inflight; /* sum of cap of the requests in use */
	bool acks_blocked;

	struct cb_cql_wbuf out; /* frame scratch */
	uint8_t *zbuf;
	size_t zbuf_cap;
	uint8_t *body;
	size_t body_cap;
	struct cb_cql_response *res;

	uint64_t err_logged;
	int64_t err_log_ms;
	bool fatal_error;       /* a non-retryable error is being retried */
	uint64_t rng;           /* jitter */
};

static void pump(struct cql *w);
static void conn_connect(struct conn *c);
static void conn_fail(struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---- requests and the queue ---- */

/* Counts buffer bytes taken into (or, negative, out of) use. */
static void buffers_add(struct cql *w, int64_t delta)
{
	w->bytes_inflight += (uint64_t)delta;
	cb_metric_set(CB_M_cql_buffer_bytes, w->bytes_inflight);
}

static struct req *req_get(struct cql *w)
{
	struct req *r = w->free_reqs;

	if (r == NULL)
		return NULL;
	w->free_reqs = r->next;
	buffers_add(w, (int64_t)r->cap);
	r->next = NULL;
	r->len = 0;
	r->nrows = 0;
	r->attempts = 0;
	r->conn = NULL;
	r->stream = -1;
	return r;
}

static void req_put(struct cql *w, struct req *r)
{
	buffers_add(w, -(int64_t)r->cap);
	r->next = w->free_reqs;
	w->free_reqs = r;
	/* a request freed: pulling may go on */
	event_active(w->ring_ev, EV_READ, 0);
}

static void queue_push(struct cql *w, struct req *r, bool front)
{
	r->next = NULL;
	if (w->queue_head == NULL) {
		w->queue_head = w->queue_tail = r;
	} else if (front) {
		r->next = w->queue_head;
		w->queue_head = r;
	} else {
		w->queue_tail->next = r;
		w->queue_tail = r;
	}
	w->nqueued++;
}

static struct req *queue_pop(struct cql *w)
{
	struct req *r = w->queue_head;

	if (r == NULL)
		return NULL;
	w->queue_head = r->next;
	if (w->queue_head == NULL)
		w->queue_tail = NULL;
	r->next = NULL;
	w->nqueued--;
	return r;
}

/* Exponential backoff with +-25% jitter. */
static int backoff(struct cql *w, int base_ms, int max_ms, uint32_t attempt)
{
	int64_t d = base_ms;

	for (uint32_t i = 1; i < attempt && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	return (int)(d * 3 / 4 + (int64_t)(cb_rand_next(&w->rng) % (uint64_t)(d / 2 + 1)));
}

/* Puts a failed request back: at once (front) or after a backoff. */
static void req_retry(struct cql *w, struct req *r, bool now, bool worst)
{
	r->conn = NULL;
	r->stream = -1;
	if (now) {
		queue_push(w, r, true);
		return;
	}
	r->attempts++;
	cb_metric_add(CB_M_cql_retries_total, 1);
	r->retry_at_ms = cb_mono_ms() +
			 (worst ? RETRY_MAX_MS
				: backoff(w, RETRY_MIN_MS, RETRY_MAX_MS,
					  r->attempts));
	r->next = w->delayed;
	w->delayed = r;
}

/* ---- acks ---- */

static struct part *part_of(struct cql *w, int32_t partition)
{
	struct part *p;

	if (partition < 0 || partition >= PARTS_MAX)
		return NULL;
	p = &w->parts[partition];
	if (!p->used) {
		p->offset = malloc(FIFO_ROWS * sizeof(*p->offset));
		p->gen = malloc(FIFO_ROWS * sizeof(*p->gen));
		p->done = malloc(FIFO_ROWS);
		if (p->offset == NULL || p->gen == NULL || p->done == NULL) {
			free(p->offset);
			free(p->gen);
			free(p->done);
			p->offset = NULL;
			p->gen = NULL;
			p->done = NULL;
			return NULL;
		}
		p->used = true;
	}
	return p;
}

/* Pushes the pending acks; when the ring is full, retries in 1 ms. */
static void flush_acks(struct cql *w)
{
	bool blocked = false;

	for (int i = 0; i < PARTS_MAX; i++) {
		struct part *p = &w->parts[i];

		if (!p->used)
			continue;
		while (p->head != p->tail && p->done[p->head % FIFO_ROWS]) {
			uint32_t k = p->head % FIFO_ROWS;

			if (p->ack_pending && p->ack.generation != p->gen[k]) {
				/* a new generation: the old one's ack first */
				if (cb_ring_push(w->app->acks, &p->ack,
						 sizeof(p->ack)) != 0) {
					blocked = true;
					break;
				}
				p->ack_pending = false;
			}
			p->ack.partition = i;
			p->ack.generation = p->gen[k];
			p->ack.offset = p->offset[k];
			p->ack_pending = true;
			p->done[k] = 0;
			p->head++;
			w->rows_outstanding--;
		}
		if (p->ack_pending && !blocked) {
			if (cb_ring_push(w->app->acks, &p->ack,
					 sizeof(p->ack)) != 0)
				blocked = true;
			else
				p->ack_pending = false;
		}
	}
	if (blocked && !w->acks_blocked) {
		struct timeval tv = {0, 1000};

		/* the aggregator drains acks constantly; look again soon */
		evtimer_add(w->acks_ev, &tv);
	}
	w->acks_blocked = blocked;
}

static void acks_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cql *w = arg;

	(void)fd;
	(void)what;
	w->acks_blocked = false;
	flush_acks(w);
	event_active(w->ring_ev, EV_READ, 0);
}

static void req_done(struct cql *w, struct req *r)
{
	for (uint16_t i = 0; i < r->nrows; i++) {
		struct part *p = &w->parts[r->refs[i].part];

		p->done[r->refs[i].seq % FIFO_ROWS] = 1;
	}
	cb_metric_add(CB_M_cql_rows_written_total, r->nrows);
	req_put(w, r);
}

/* ---- encoding ---- */

static const struct cb_row_hdr *row_at(const struct req *r, size_t off)
{
	return (const struct cb_row_hdr *)(const void *)(r->data + off);
}

static size_t row_size(const struct cb_row_hdr *h)
{
	size_t n = sizeof(*h) + h->channel_len + h->user_id_len +
		   h->username_len + h->message_len + h->emotes_len;

	return (n + 7) & ~(size_t)7;
}

static void put_row_values(struct cb_cql_wbuf *o, const struct cb_row_hdr *h)
{
	const uint8_t *v = (const uint8_t *)(h + 1);
	const char *channel = (const char *)v;
	const char *user_id = channel + h->channel_len;
	const char *username = user_id + h->user_id_len;
	const char *message = username + h->username_len;
	const uint8_t *emotes = (const uint8_t *)(message + h->message_len);

	cb_cql_put_value_text(o, channel, h->channel_len);
	cb_cql_put_value_bigint(o, h->timestamp_ms);
	cb_cql_put_value_uuid(o, h->message_id);
	cb_cql_put_value_text(o, user_id, h->user_id_len);
	cb_cql_put_value_text(o, username, h->username_len);
	cb_cql_put_value_text(o, message, h->message_len);
	cb_cql_put_emote_block(o, emotes, h->emotes_len, h->emote_count);
}

/* Encodes r for stream into w->out (compressed when the connection uses
 * LZ4).  Returns 0 or CB_E_TOOBIG. */
static int encode_req(struct cql *w, const struct req *r, int16_t stream,
		      bool lz4)
{
	struct cb_cql_wbuf *o = &w->out;
	size_t f, off = 0;

	cb_cql_wbuf_reset(o);
	if (r->nrows == 1) {
		struct cb_cql_params p = {0};

		p.consistency = w->consistency;
		p.nvalues = 7;
		p.skip_metadata = true;
		p.timestamp_us = INT64_MIN;
		f = cb_cql_frame_begin(o, stream, CB_CQL_OP_EXECUTE);
		cb_cql_put_short_bytes(o, w->prepared_id, w->prepared_len);
		cb_cql_put_params_head(o, &p);
		put_row_values(o, row_at(r, 0));
		cb_cql_put_params_tail(o, &p);
		cb_cql_frame_end(o, f);
	} else {
		f = cb_cql_batch_begin(o, stream, 1 /* unlogged */, r->nrows);
		for (uint16_t i = 0; i < r->nrows; i++) {
			const struct cb_row_hdr *h = row_at(r, off);

			cb_cql_put_batch_prepared(o, w->prepared_id,
						  w->prepared_len, 7);
			put_row_values(o, h);
			off += row_size(h);
		}
		cb_cql_batch_end(o, f, w->consistency, INT64_MIN);
	}
	if (o->failed)
		return CB_E_TOOBIG;
	if (lz4) {
		size_t body = o->len - CB_CQL_HDR_LEN;
		size_t bound = cb_cql_lz4_bound(body);
		uint8_t *z;
		int k;

		if (bound > w->zbuf_cap) {
			z = realloc(w->zbuf, bound);
			if (z == NULL)
				return CB_E_NOMEM;
			w->zbuf = z;
			w->zbuf_cap = bound;
		}
		k = cb_cql_lz4_compress(o->p + CB_CQL_HDR_LEN, body, w->zbuf,
					w->zbuf_cap);
		if (k < 0)
			return k;
		o->len = CB_CQL_HDR_LEN;
		cb_cql_put_raw(o, w->zbuf, (size_t)k);
		o->p[1] |= CB_CQL_F_COMPRESSION;
		cb_cql_frame_end(o, 0);
	}
	return o->failed ? CB_E_TOOBIG : 0;
}

/* ---- connections ---- */

static void update_health(struct cql *w)
{
	size_t ready = 0;

	for (size_t i = 0; i < w->nconns; i++)
		if (w->conns[i].state == C_READY)
			ready++;
	cb_metric_set(CB_M_cql_connections, (int64_t)ready);
	cb_health_set(CB_DEP_CASSANDRA, ready > 0 && !w->fatal_error
						? CB_DEP_UP
						: CB_DEP_DOWN);
}

/* Sends a control frame (already in w->out, stream 0). */
static void ctl_send(struct conn *c, enum ctl_op op)
{
	struct cb_cql_wbuf *o = &c->w->out;

	c->ctl = op;
	c->ctl_sent_ms = cb_mono_ms();
	if (o->failed || bufferevent_write(c->bev, o->p, o->len) != 0)
		conn_fail(c, "cannot queue a control request");
}

static void send_prepare(struct conn *c)
{
	cb_cql_wbuf_reset(&c->w->out);
	cb_cql_enc_prepare(&c->w->out, CTL_STREAM, c->w->insert_cql);
	c->need_prepare = false;
	c->state = c->state == C_READY ? C_PREPARE : c->state;
	ctl_send(c, CTL_PREPARE);
}

/* The next control step, once stream 0 is free. */
static void ctl_next(struct conn *c)
{
	struct cql *w = c->w;

	c->ctl = CTL_NONE;
	if (c->need_prepare) {
		send_prepare(c);
		return;
	}
	if (c->need_register) {
		static const char *const events[] = {"STATUS_CHANGE",
						     "SCHEMA_CHANGE"};

		c->need_register = false;
		cb_cql_wbuf_reset(&w->out);
		cb_cql_enc_register(&w->out, CTL_STREAM, events, 2);
		ctl_send(c, CTL_REGISTER);
		return;
	}
	if (c->state != C_READY) {
		c->state = C_READY;
		c->backoff_ms = 0;
		cb_info(SUBSYS, "connected to %s:%d", c->host->name,
			c->host->port);
		update_health(w);
	}
	pump(w);
}

static void conn_close(struct conn *c)
{
	struct cql *w = c->w;

	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	for (int s = 1; s <= w->inflight; s++) {
		struct req *r = c->slots[s];

		if (r != NULL) /* never answered: send again elsewhere */
			req_retry(w, r, true, false);
		c->slots[s] = NULL;
		c->orphan[s] = false;
	}
	c->nfree = 0;
	for (int s = w->inflight; s >= 1; s--)
		c->free_ids[c->nfree++] = (int16_t)s;
	cb_metric_add(CB_M_cql_inflight, -(int64_t)c->ninflight);
	c->ninflight = 0;
	c->ctl = CTL_NONE;
	c->need_prepare = false;
}

static void conn_fail(struct conn *c, const char *fmt, ...)
{
	struct cql *w = c->w;
	va_list ap;
	bool was_ready = c->state == C_READY || c->state == C_PREPARE;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	conn_close(c);
	c->state = C_DOWN;
	c->backoff_ms = c->backoff_ms == 0
				? RECONNECT_MIN_MS
				: (c->backoff_ms * 2 > RECONNECT_MAX_MS
					   ? RECONNECT_MAX_MS
					   : c->backoff_ms * 2);
	c->reconnect_at_ms = cb_mono_ms() + backoff(w, c->backoff_ms,
						    RECONNECT_MAX_MS, 1);
	if (was_ready)
		cb_warn(SUBSYS, "connection to %s:%d lost: %s", c->host->name,
			c->host->port, c->why);
	else
		cb_debug(SUBSYS, "connection to %s:%d failed: %s",
			 c->host->name, c->host->port, c->why);
	update_health(w);
	pump(w);
}

/* Fatal for this connection only: a handshake answer we cannot use. */
static void conn_auth_fail(struct conn *c, const char *why)
{
	cb_error(SUBSYS, "Cassandra %s:%d: %s", c->host->name, c->host->port,
		 why);
	conn_fail(c, "%s", why);
	/* the same settings will fail again: wait the longest backoff */
	c->backoff_ms = RECONNECT_MAX_MS;
	c->reconnect_at_ms = cb_mono_ms() + RECONNECT_MAX_MS;
}

static void on_ctl_response(struct conn *c, struct cb_cql_response *res)
{
	struct cql *w = c->w;
	const struct cb_config *cfg = w->cfg;
	char why[1024];

	if (res->hdr.opcode == CB_CQL_OP_ERROR) {
		cb_cql_error_describe(&res->error, why, sizeof(why));
		if (c->ctl == CTL_AUTH || c->ctl == CTL_STARTUP ||
		    c->ctl == CTL_PREPARE) {
			conn_auth_fail(c, why);
			return;
		}
		/* REGISTER/OPTIONS errors do not matter to the data path */
		cb_warn(SUBSYS, "%s:%d: %s", c->host->name, c->host->port, why);
		ctl_next(c);
		return;
	}
	switch (c->ctl) {
	case CTL_STARTUP:
		if (res->hdr.opcode == CB_CQL_OP_READY) {
			c->need_prepare = true;
			ctl_next(c);
			return;
		}
		if (res->hdr.opcode != CB_CQL_OP_AUTHENTICATE)
			break;
		if (cfg->cassandra_username == NULL ||
		    cfg->cassandra_username[0] == '\0') {
			snprintf(why, sizeof(why),
				 "the server requires authentication (%.*s): "
				 "set cassandra_username and "
				 "cassandra_password",
				 (int)res->authenticator.len,
				 (const char *)res->authenticator.p);
			conn_auth_fail(c, why);
			return;
		}
		c->state = C_AUTH;
		cb_cql_wbuf_reset(&w->out);
		cb_cql_enc_auth_plain(&w->out, CTL_STREAM,
				      cfg->cassandra_username,
				      cfg->cassandra_password != NULL
					      ? cfg->cassandra_password
					      : "");
		ctl_send(c, CTL_AUTH);
		/* bufferevent copied it: wipe the password */
		memset(w->out.p, 0, w->out.len);
		return;
	case CTL_AUTH:
		if (res->hdr.opcode != CB_CQL_OP_AUTH_SUCCESS)
			break;
		c->state = C_PREPARE;
		c->need_prepare = true;
		ctl_next(c);
		return;
	case CTL_PREPARE:
		if (res->hdr.opcode != CB_CQL_OP_RESULT ||
		    res->result_kind != CB_CQL_RESULT_PREPARED ||
		    res->prepared_id.len <= 0 ||
		    (size_t)res->prepared_id.len > sizeof(w->prepared_id))
			break;
		if (res->meta.ncolumns != 7) {
			snprintf(why, sizeof(why),
				 "the prepared INSERT has %" PRId32
				 " bind variables, not 7",
				 res->meta.ncolumns);
			conn_auth_fail(c, why);
			return;
		}
		if ((size_t)res->prepared_id.len != w->prepared_len ||
		    memcmp(res->prepared_id.p, w->prepared_id,
			   w->prepared_len) != 0) {
			memcpy(w->prepared_id, res->prepared_id.p,
			       (size_t)res->prepared_id.len);
			w->prepared_len = (size_t)res->prepared_id.len;
		}
		if (c->state == C_PREPARE || c->state == C_STARTUP)
			c->state = C_PREPARE; /* ctl_next makes it READY */
		ctl_next(c);
		return;
	case CTL_REGISTER:
	case CTL_OPTIONS:
		ctl_next(c);
		return;
	case CTL_NONE:
		break;
	}
	conn_fail(c, "unexpected %s during %s",
		  cb_cql_opcode_name(res->hdr.opcode),
		  c->state == C_AUTH ? "authentication" : "setup");
}

static void log_write_error(struct cql *w, const char *why, bool fatal)
{
	int64_t now = cb_mono_ms();

	/* one line per 5 s at most, with the count of the others */
	if (now - w->err_log_ms >= 5000) {
		if (fatal)
			cb_error(SUBSYS,
				 "write failed (%" PRIu64 " more since the "
				 "last report): %s; rows are kept and "
				 "retried",
				 w->err_logged, why);
		else
			cb_warn(SUBSYS,
				"write failed (%" PRIu64 " more since the "
				"last report): %s; retrying",
				w->err_logged, why);
		w->err_logged = 0;
		w->err_log_ms = now;
	} else {
		w->err_logged++;
	}
}

static void on_data_response(struct conn *c, int16_t stream,
			     struct cb_cql_response *res)
{
	struct cql *w = c->w;
	struct req *r = c->slots[stream];
	char why[1024];

	c->slots[stream] = NULL;
	c->free_ids[c->nfree++] = stream;
	if (c->orphan[stream]) { /* its request already went elsewhere */
		c->orphan[stream] = false;
		return;
	}
	if (r == NULL)
		return;
	c->ninflight--;
	cb_metric_add(CB_M_cql_inflight, -1);
	cb_metric_observe_us(CB_M_cql_request_latency_us,
			     (uint64_t)(cb_mono_ns() / 1000 - r->sent_us));
	if (res->hdr.opcode == CB_CQL_OP_RESULT) {
		if (w->fatal_error) {
			w->fatal_error = false;
			cb_info(SUBSYS, "writes succeed again");
			update_health(w);
		}
		req_done(w, r);
		return;
	}
	cb_metric_add(CB_M_cql_errors_total, 1);
	if (res->hdr.opcode != CB_CQL_OP_ERROR) {
		req_retry(w, r, false, false);
		conn_fail(c, "answered a write with %s",
			  cb_cql_opcode_name(res->hdr.opcode));
		return;
	}
	if (res->error.code == CB_CQL_ERR_UNPREPARED) {
		cb_metric_add(CB_M_cql_reprepares_total, 1);
		cb_info(SUBSYS, "%s:%d forgot the prepared INSERT: preparing "
			"it again",
			c->host->name, c->host->port);
		req_retry(w, r, true, false);
		if (c->ctl == CTL_NONE)
			send_prepare(c);
		else
			c->need_prepare = true;
		if (c->state == C_READY)
			c->state = C_PREPARE;
		return;
	}
	cb_cql_error_describe(&res->error, why, sizeof(why));
	if (cb_cql_error_retryable(&res->error)) {
		log_write_error(w, why, false);
		req_retry(w, r, false, false);
		return;
	}
	/* invalid query, missing table, unauthorized...: an operator must
	 * act; keep the rows and try again at the slowest pace */
	log_write_error(w, why, true);
	if (!w->fatal_error) {
		w->fatal_error = true;
		update_health(w);
	}
	req_retry(w, r, false, true);
}

static void on_event(struct conn *c, struct cb_cql_response *res)
{
	struct cql *w = c->w;

	cb_info(SUBSYS, "event from %s:%d: %.*s %.*s%.*s%.*s", c->host->name,
		c->host->port, (int)res->event_type.len,
		(const char *)res->event_type.p,
		res->event_change.len > 0 ? (int)res->event_change.len : 0,
		res->event_change.len > 0 ? (const char *)res->event_change.p
					  : "",
		res->schema.change.len > 0 ? (int)res->schema.change.len : 0,
		res->schema.change.len > 0 ? (const char *)res->schema.change.p
					   : "",
		res->schema.name.len > 0 ? (int)res->schema.name.len : 0,
		res->schema.name.len > 0 ? (const char *)res->schema.name.p
					 : "");
	/* a node came back: do not wait out the reconnect backoff */
	if (res->event_change.len == 2 &&
	    memcmp(res->event_change.p, "UP", 2) == 0)
		for (size_t i = 0; i < w->nconns; i++)
			if (w->conns[i].state == C_DOWN)
				w->conns[i].reconnect_at_ms = 0;
}

/* Handles one whole frame at p (header + body). */
static int on_frame(struct conn *c, const struct cb_cql_header *h0,
		    uint8_t *p)
{
	struct cql *w = c->w;
	struct cb_cql_header h = *h0;
	uint8_t *body = p + CB_CQL_HDR_LEN;
	size_t len = h.length;
	char errstr[256];
	int err;

	if (h.flags & CB_CQL_F_COMPRESSION) {
		int64_t want = cb_cql_lz4_declared_len(body, len);
		int k;

		if (want < 0 || want > CB_CQL_BODY_MAX)
			return CB_E_PROTO;
		if ((size_t)want + 1 > w->body_cap) {
			uint8_t *b = realloc(w->body, (size_t)want + 1);

			if (b == NULL)
				return CB_E_NOMEM;
			w->body = b;
			w->body_cap = (size_t)want + 1;
		}
		k = cb_cql_lz4_decompress(body, len, w->body, w->body_cap);
		if (k < 0)
			return k;
		body = w->body;
		len = (size_t)k;
		h.flags &= (uint8_t)~CB_CQL_F_COMPRESSION;
	}
	err = cb_cql_response_parse(&h, body, len, w->res, errstr,
				    sizeof(errstr));
	if (err != 0) {
		cb_warn(SUBSYS, "%s:%d: %s", c->host->name, c->host->port,
			errstr);
		return err;
	}
	if (h.opcode == CB_CQL_OP_EVENT) {
		on_event(c, w->res);
		return 0;
	}
	if (h.stream == CTL_STREAM) {
		if (c->ctl == CTL_NONE)
			return CB_E_PROTO;
		on_ctl_response(c, w->res);
		return 0;
	}
	if (h.stream < 1 || h.stream > w->inflight ||
	    (c->slots[h.stream] == NULL && !c->orphan[h.stream]))
		return CB_E_PROTO;
	on_data_response(c, h.stream, w->res);
	return 0;
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct cql *w = c->w;
	struct evbuffer *in = bufferevent_get_input(bev);

	c->last_read_ms = cb_mono_ms();
	for (;;) {
		uint8_t hb[CB_CQL_HDR_LEN];
		struct cb_cql_header h;
		char errstr[160];
		uint8_t *p;
		int err;

		if (evbuffer_get_length(in) < CB_CQL_HDR_LEN)
			break;
		evbuffer_copyout(in, hb, sizeof(hb));
		if (cb_cql_header_parse(hb, &h, errstr, sizeof(errstr)) != 0) {
			conn_fail(c, "%s", errstr);
			return;
		}
		if (evbuffer_get_length(in) < CB_CQL_HDR_LEN + (size_t)h.length)
			break;
		p = evbuffer_pullup(in, (ev_ssize_t)(CB_CQL_HDR_LEN + h.length));
		if (p == NULL) {
			conn_fail(c, "out of memory");
			return;
		}
		err = on_frame(c, &h, p);
		if (c->bev == NULL) /* the frame closed the connection */
			return;
		if (err != 0) {
			conn_fail(c, "bad %s frame on stream %d: %s",
				  cb_cql_opcode_name(h.opcode), h.stream,
				  cb_strerror(err));
			return;
		}
		evbuffer_drain(in, CB_CQL_HDR_LEN + h.length);
	}
	flush_acks(w);
	pump(w);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	struct cql *w = c->w;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		c->state = C_STARTUP;
		c->last_read_ms = cb_mono_ms();
		cb_cql_wbuf_reset(&w->out);
		cb_cql_enc_startup(&w->out, CTL_STREAM, c->lz4 ? "lz4" : NULL);
		ctl_send(c, CTL_STARTUP);
		return;
	}
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
		int dns = bufferevent_socket_get_dns_error(c->bev);
		unsigned long e = bufferevent_get_openssl_error(c->bev);
		char tmp[160];

		if (dns != 0) {
			conn_fail(c, "cannot resolve: %s",
				  evutil_gai_strerror(dns));
		} else if (e != 0) {
			cb_tls_reason(NULL, e, tmp, sizeof(tmp));
			conn_fail(c, "TLS: %s", tmp);
		} else if (what & BEV_EVENT_EOF) {
			conn_fail(c, "closed by the server");
		} else {
			conn_fail(c, "%s", evutil_socket_error_to_string(
						   EVUTIL_SOCKET_ERROR()));
		}
	}
}

static void conn_connect(struct conn *c)
{
	struct cql *w = c->w;
	SSL *ssl = NULL;
	char errstr[160];

	conn_close(c);
	c->state = C_CONNECTING;
	c->connect_ms = cb_mono_ms();
	c->lz4 = w->lz4;
	cb_metric_add(CB_M_cql_reconnects_total, 1);
	if (w->ssl_ctx != NULL) {
		ssl = SSL_new(w->ssl_ctx);
		if (ssl == NULL ||
		    cb_cql_tls_prepare(ssl, c->host->name, errstr,
				       sizeof(errstr)) != 0) {
			SSL_free(ssl);
			conn_fail(c, "cannot create a TLS session");
			return;
		}
		c->bev = bufferevent_openssl_socket_new(
			w->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
			BEV_OPT_CLOSE_ON_FREE);
		if (c->bev == NULL)
			SSL_free(ssl);
	} else {
		c->bev = bufferevent_socket_new(w->base, -1,
						BEV_OPT_CLOSE_ON_FREE);
	}
	if (c->bev == NULL) {
		conn_fail(c, "cannot create a connection");
		return;
	}
	bufferevent_setcb(c->bev, conn_read_cb, NULL, conn_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, READ_HIGH_WATER);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect_hostname(c->bev, w->dns, AF_UNSPEC,
						c->host->name,
						c->host->port) != 0)
		conn_fail(c, "cannot connect");
}

/* ---- sending ---- */

static struct conn *pick_conn(struct cql *w)
{
	for (size_t i = 0; i < w->nconns; i++) {
		struct conn *c = &w->conns[(w->rr + i) % w->nconns];

		if (c->state == C_READY && c->nfree > 0) {
			w->rr = (w->rr + i + 1) % w->nconns;
			return c;
		}
	}
	return NULL;
}

/* Sends queued requests while a ready connection has a free stream. */
static void pump(struct cql *w)
{
	struct req *r;
	struct conn *c;

	while (w->queue_head != NULL && (c = pick_conn(w)) != NULL) {
		int16_t stream;
		int err;

		r = queue_pop(w);
		stream = c->free_ids[--c->nfree];
		err = encode_req(w, r, stream, c->lz4);
		if (err != 0) {
			/* cannot happen for rows the aggregator bounds;
			 * keep them anyway, loudly */
			c->free_ids[c->nfree++] = stream;
			log_write_error(w, "a request exceeds the frame limit",
					true);
			req_retry(w, r, false, true);
			continue;
		}
		if (bufferevent_write(c->bev, w->out.p, w->out.len) != 0) {
			c->free_ids[c->nfree++] = stream;
			queue_push(w, r, true);
			conn_fail(c, "cannot queue a request");
			continue;
		}
		c->slots[stream] = r;
		c->ninflight++;
		r->conn = c;
		r->stream = stream;
		r->sent_us = cb_mono_ns() / 1000;
		cb_metric_add(CB_M_cql_requests_total, 1);
		cb_metric_add(CB_M_cql_inflight, 1);
	}
}

/* ---- taking rows from the ring ---- */

/* True when the writer can take another row (back-pressure otherwise). */
static bool can_take(const struct cql *w)
{
	return w->free_reqs != NULL &&
	       w->rows_outstanding + (uint64_t)w->batch_rows <
		       FIFO_ROWS / 2 &&
	       w->bytes_inflight < INFLIGHT_BYTES_MAX && !w->acks_blocked;
}

static bool same_channel(const struct req *r, const struct cb_row_hdr *h)
{
	const struct cb_row_hdr *f = row_at(r, 0);

	return f->channel_len == h->channel_len &&
	       memcmp(f + 1, h + 1, h->channel_len) == 0;
}

/* Copies one ring record into r; false when r lacks room (never: sized). */
static bool req_add(struct cql *w, struct req *r, const struct cb_row_hdr *h,
		    uint32_t len)
{
	size_t need = (len + 7) & ~(size_t)7;
	struct part *p = part_of(w, h->partition);

	if (p == NULL || p->tail - p->head >= FIFO_ROWS)
		return false;
	if (r->len + need > r->cap) {
		size_t cap = r->cap == 0 ? 4096 : r->cap;
		uint8_t *d;

		while (cap < r->len + need)
			cap *= 2;
		d = realloc(r->data, cap);
		if (d == NULL)
			return false;
		r->data = d;
		buffers_add(w, (int64_t)(cap - r->cap));
		r->cap = cap;
	}
	memcpy(r->data + r->len, h, len);
	if (need > len)
		memset(r->data + r->len + len, 0, need - len);
	r->len += need;
	p->offset[p->tail % FIFO_ROWS] = h->offset;
	p->gen[p->tail % FIFO_ROWS] = h->generation;
	p->done[p->tail % FIFO_ROWS] = 0;
	r->refs[r->nrows].part = (uint32_t)h->partition;
	r->refs[r->nrows].seq = p->tail;
	p->tail++;
	r->nrows++;
	w->rows_outstanding++;
	return true;
}

static void pull_rows(struct cql *w)
{
	struct req *open[OPEN_MAX];
	int nopen = 0, taken = 0;
	struct cb_ring *ring = w->app->rows;
	bool more = false;

	while (can_take(w)) {
		const struct cb_row_hdr *h;
		struct req *r = NULL;
		uint32_t len;

		h = cb_ring_read(ring, &len);
		if (h == NULL)
			break;
		if (len < sizeof(*h) || row_size(h) > ((len + 7) & ~7u)) {
			cb_error(SUBSYS, "malformed row record of %" PRIu32
				 " bytes (dropped: the aggregator wrote it "
				 "wrong)",
				 len);
			cb_ring_release(ring);
			continue;
		}
		for (int i = 0; i < nopen; i++)
			if (same_channel(open[i], h)) {
				r = open[i];
				break;
			}
		if (r == NULL) {
			if (nopen == OPEN_MAX) {
				/* too many channels at once: send them all */
				for (int i = 0; i < nopen; i++)
					queue_push(w, open[i], false);
				nopen = 0;
			}
			r = req_get(w);
			if (r == NULL)
				break;
			open[nopen++] = r;
		}
		if (!req_add(w, r, h, len)) {
			/* no memory or the FIFO is full: try later */
			more = true;
			if (r->nrows == 0) {
				open[--nopen] = NULL;
				req_put(w, r);
			}
			break;
		}
		cb_ring_release(ring);
		if (r->nrows == w->batch_rows) {
			for (int i = 0; i < nopen; i++)
				if (open[i] == r) {
					open[i] = open[--nopen];
					break;
				}
			queue_push(w, r, false);
		}
		if (++taken == GATHER_MAX) {
			more = true;
			break;
		}
	}
	for (int i = 0; i < nopen; i++)
		queue_push(w, open[i], false);
	pump(w);
	if (more && can_take(w))
		event_active(w->ring_ev, EV_READ, 0);
	else if (can_take(w) && !cb_ring_arm_consumer(ring))
		event_active(w->ring_ev, EV_READ, 0);
	/* else: back-pressure; a freed request re-activates ring_ev */
}

static void ring_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cql *w = arg;

	(void)what;
	if (fd >= 0)
		cb_ring_drain_fd(cb_ring_consumer_fd(w->app->rows));
	pull_rows(w);
}

/* ---- timers ---- */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cql *w = arg;
	int64_t now = cb_mono_ms();
	int64_t now_us = cb_mono_ns() / 1000;
	int64_t timeout_us = w->cfg->cassandra_timeout_ms * 1000;
	struct req **pp = &w->delayed;

	(void)fd;
	(void)what;
	/* retries whose time came */
	while (*pp != NULL) {
		struct req *r = *pp;

		if (r->retry_at_ms <= now) {
			*pp = r->next;
			queue_push(w, r, true);
		} else {
			pp = &r->next;
		}
	}
	for (size_t i = 0; i < w->nconns; i++) {
		struct conn *c = &w->conns[i];

		if (c->state == C_DOWN) {
			if (now >= c->reconnect_at_ms)
				conn_connect(c);
			continue;
		}
		if (c->ctl != CTL_NONE &&
		    now - c->ctl_sent_ms > w->cfg->cassandra_timeout_ms) {
			conn_fail(c, "no answer to %s within %" PRId64 " ms",
				  c->ctl == CTL_OPTIONS ? "the heartbeat"
							: "a setup request",
				  w->cfg->cassandra_timeout_ms);
			continue;
		}
		/* bufferevent has no connect timeout of its own */
		if (c->state == C_CONNECTING &&
		    now - c->connect_ms > w->cfg->cassandra_timeout_ms) {
			conn_fail(c, "connect timed out after %" PRId64 " ms",
				  w->cfg->cassandra_timeout_ms);
			continue;
		}
		if (c->state != C_READY && c->state != C_PREPARE)
			continue;
		/* requests past the timeout: resend elsewhere; the id stays
		 * taken until the late answer comes (or the connection goes) */
		for (int s = 1; s <= w->inflight; s++) {
			struct req *r = c->slots[s];

			if (r == NULL || now_us - r->sent_us < timeout_us)
				continue;
			c->slots[s] = NULL;
			c->orphan[s] = true;
			c->ninflight--;
			cb_metric_add(CB_M_cql_inflight, -1);
			cb_metric_add(CB_M_cql_errors_total, 1);
			log_write_error(w, "a write timed out on the client "
					   "side", false);
			req_retry(w, r, false, false);
		}
		if (c->ctl == CTL_NONE && c->state == C_READY &&
		    now - c->last_read_ms > HEARTBEAT_IDLE_MS) {
			cb_cql_wbuf_reset(&w->out);
			cb_cql_enc_options(&w->out, CTL_STREAM);
			ctl_send(c, CTL_OPTIONS);
		}
	}
	pump(w);
	flush_acks(w);
	if (can_take(w))
		event_active(w->ring_ev, EV_READ, 0);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cql *w = arg;

	(void)what;
	cb_ring_drain_fd(fd);
	event_base_loopbreak(w->base);
}

static void *cql_main(void *arg)
{
	struct cql *w = arg;

	for (size_t i = 0; i < w->nconns; i++)
		conn_connect(&w->conns[i]);
	event_active(w->ring_ev, EV_READ, 0);
	event_base_dispatch(w->base);
	return NULL;
}

/* ---- start and stop ---- */

static void cql_free(struct cql *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->nconns; i++) {
		struct conn *c = &w->conns[i];

		if (c->bev != NULL)
			bufferevent_free(c->bev);
		free(c->slots);
		free(c->orphan);
		free(c->free_ids);
	}
	free(w->conns);
	for (size_t i = 0; i < w->nreqs; i++) {
		free(w->reqs[i].data);
		free(w->reqs[i].refs);
	}
	free(w->reqs);
	if (w->parts != NULL)
		for (int i = 0; i < PARTS_MAX; i++) {
			free(w->parts[i].offset);
			free(w->parts[i].gen);
			free(w->parts[i].done);
		}
	free(w->parts);
	free(w->hosts);
	cb_cql_wbuf_free(&w->out);
	free(w->zbuf);
	free(w->body);
	free(w->res);
	if (w->stop_ev != NULL)
		event_free(w->stop_ev);
	if (w->ring_ev != NULL)
		event_free(w->ring_ev);
	if (w->tick_ev != NULL)
		event_free(w->tick_ev);
	if (w->acks_ev != NULL)
		event_free(w->acks_ev);
	if (w->dns != NULL)
		evdns_base_free(w->dns, 0);
	if (w->base != NULL)
		event_base_free(w->base);
	if (w->stop_efd >= 0)
		close(w->stop_efd);
	SSL_CTX_free(w->ssl_ctx);
	free(w);
}

int cb_cql_start(struct cb_app *app, char *errstr, size_t errstr_size)
{
	const struct cb_config *cfg = app->cfg;
	struct timeval tick = {0, TICK_MS * 1000};
	struct cql *w;
	int err;

	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "out of memory");
	w->stop_efd = -1;
	w->rng = (uint64_t)cb_mono_ns() | 1;
	w->app = app;
	w->cfg = cfg;
	w->inflight = (int)cfg->cassandra_inflight;
	w->batch_rows = (int)cfg->cassandra_batch_rows;
	w->consistency = cb_cql_cfg_consistency(cfg);
	w->lz4 = cfg->cassandra_compression != NULL &&
		 strcmp(cfg->cassandra_compression, "lz4") == 0;
	cb_cql_insert_cql(cfg->cassandra_keyspace, w->insert_cql,
			  sizeof(w->insert_cql));
	cb_cql_wbuf_init(&w->out, 0);
	err = cb_cql_hosts(cfg, &w->hosts, &w->nhosts, errstr, errstr_size);
	if (err != 0)
		goto out;
	if (cfg->cassandra_tls) {
		w->ssl_ctx = cb_cql_tls_ctx(cfg, errstr, errstr_size);
		if (w->ssl_ctx == NULL) {
			err = CB_E_TLS;
			goto out;
		}
	}
	w->res = malloc(sizeof(*w->res));
	w->parts = calloc(PARTS_MAX, sizeof(*w->parts));
	w->nconns = w->nhosts * (size_t)cfg->cassandra_connections;
	w->conns = calloc(w->nconns, sizeof(*w->conns));
	/* requests: enough to fill every stream, plus a queue as deep */
	w->nreqs = w->nconns * (size_t)w->inflight;
	if (w->nreqs > 4096)
		w->nreqs = 4096;
	w->reqs = calloc(w->nreqs, sizeof(*w->reqs));
	if (w->res == NULL || w->parts == NULL || w->conns == NULL ||
	    w->reqs == NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				"out of memory");
		goto out;
	}
	for (size_t i = 0; i < w->nreqs; i++) {
		w->reqs[i].refs = calloc((size_t)w->batch_rows,
					 sizeof(*w->reqs[i].refs));
		if (w->reqs[i].refs == NULL) {
			err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
					"out of memory");
			goto out;
		}
		w->reqs[i].next = w->free_reqs;
		w->free_reqs = &w->reqs[i];
	}
	for (size_t i = 0; i < w->nconns; i++) {
		struct conn *c = &w->conns[i];

		c->w = w;
		c->host = &w->hosts[i % w->nhosts];
		c->slots = calloc((size_t)w->inflight + 1, sizeof(*c->slots));
		c->orphan = calloc((size_t)w->inflight + 1,
				   sizeof(*c->orphan));
		c->free_ids = calloc((size_t)w->inflight, sizeof(*c->free_ids));
		if (c->slots == NULL || c->orphan == NULL ||
		    c->free_ids == NULL) {
			err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
					"out of memory");
			goto out;
		}
		/* events about the cluster come on the first connection */
		c->need_register = i == 0;
	}
	w->base = event_base_new();
	w->stop_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->base == NULL || w->stop_efd < 0) {
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				"cannot create the event loop");
		goto out;
	}
	w->dns = evdns_base_new(w->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
						 EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (w->dns == NULL)
		w->dns = evdns_base_new(w->base,
					EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	w->stop_ev = event_new(w->base, w->stop_efd, EV_READ | EV_PERSIST,
			       stop_cb, w);
	w->ring_ev = event_new(w->base, cb_ring_consumer_fd(app->rows),
			       EV_READ | EV_PERSIST, ring_cb, w);
	w->tick_ev = event_new(w->base, -1, EV_PERSIST, tick_cb, w);
	w->acks_ev = evtimer_new(w->base, acks_cb, w);
	if (w->stop_ev == NULL || w->ring_ev == NULL || w->tick_ev == NULL ||
	    w->acks_ev == NULL || event_add(w->stop_ev, NULL) != 0 ||
	    event_add(w->ring_ev, NULL) != 0 ||
	    event_add(w->tick_ev, &tick) != 0) {
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				"cannot create the writer's events");
		goto out;
	}
	cb_health_set(CB_DEP_CASSANDRA, CB_DEP_UNKNOWN);
	app->cql = (struct cb_cql *)w;
	if (pthread_create(&w->thread, NULL, cql_main, w) != 0) {
		app->cql = NULL;
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				"cannot start the cql thread");
		goto out;
	}
	w->thread_started = true;
	cb_info(SUBSYS, "writing to %s.raw_chat_messages on %zu host(s), %zu "
		"connection(s), %d in flight each, batches of up to %d rows, "
		"consistency %s%s%s",
		cfg->cassandra_keyspace, w->nhosts, w->nconns, w->inflight,
		w->batch_rows, cb_cql_consistency_name(w->consistency),
		cfg->cassandra_tls ? ", TLS" : "", w->lz4 ? ", LZ4" : "");
	return 0;
out:
	cql_free(w);
	return err;
}

void cb_cql_stop(struct cb_app *app)
{
	struct cql *w = (struct cql *)app->cql;
	uint64_t one = 1;

	if (w == NULL)
		return;
	atomic_store(&w->stopping, true);
	if (write(w->stop_efd, &one, sizeof(one)) < 0) {
		/* already signalled */
	}
	if (w->thread_started)
		pthread_join(w->thread, NULL);
	if (w->rows_outstanding > 0)
		cb_info(SUBSYS, "stopped with %" PRIu64 " rows unacknowledged "
			"(their offsets are not committed: they are written "
			"again on the next start)",
			w->rows_outstanding);
	app->cql = NULL;
	cql_free(w);
}
