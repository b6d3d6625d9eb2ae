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
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "chatbattle/app.h"
#include "chatbattle/clock.h"
#include "chatbattle/config.h"
#include "chatbattle/cql.h"
#include "chatbattle/cql_frame.h"
#include "chatbattle/cql_ring.h"
#include "chatbattle/err.h"
#include "chatbattle/evloop.h"
#include "chatbattle/log.h"
#include "chatbattle/metrics.h"
#include "chatbattle/murmur3.h"
#include "chatbattle/record.h"
#include "chatbattle/ring.h"
#include "chatbattle/thread.h"
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
#define NODES_MAX 64            /* nodes of the ring we connect to */
#define MURMUR3 "org.apache.cassandra.dht.Murmur3Partitioner"

enum conn_state {
	C_DOWN,
	C_CONNECTING,
	C_STARTUP,
	C_AUTH,
	C_PREPARE,
	C_READY,
};

/* The states a transition may come from, for the asserts of set_state. */
#define S(x) (1u << (x))

enum ctl_op {
	CTL_NONE,
	CTL_STARTUP,
	CTL_AUTH,
	CTL_PREPARE,
	CTL_REGISTER,
	CTL_OPTIONS,
	CTL_LOCAL,      /* SELECT * FROM system.local */
	CTL_PEERS_V2,   /* SELECT * FROM system.peers_v2 */
	CTL_PEERS,      /* system.peers, when peers_v2 is absent */
	CTL_KEYSPACE,   /* the replication of our keyspace */
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
	int64_t token;          /* Murmur3 token of the partition key */
	int32_t day;            /* UTC day of the rows (daily table) */
};

struct node;

struct conn {
	struct cql *w;
	struct node *node;
	const struct cb_cql_host *host; /* &node->host */
	struct bufferevent *bev;
	enum conn_state state;
	enum ctl_op ctl;
	int64_t ctl_sent_ms;
	bool need_prepare;
	bool preparing_day;     /* the PREPARE in flight is the daily INSERT */
	bool need_register;
	struct req **slots;     /* [inflight + 1], index = stream id */
	bool *orphan;           /* a timed-out request still owns the id */
	int16_t *free_ids;
	int nfree;
	int ninflight;
	int64_t connect_ms;     /* when the current connect began */
	int64_t last_read_ms;
	bool lz4;
	bool need_ring;         /* control connection: read the ring */
	char why[256];          /* last failure, for logs */
};

/*
 * A node: a contact point of cassandra_hosts until the ring is known,
 * then every node system.local and system.peers_v2 list.  Its pool is
 * cassandra_connections connections, with one reconnect backoff.
 */
struct node {
	bool used;
	bool contact;           /* from cassandra_hosts */
	bool in_ring;           /* listed by the ring queries */
	bool up;                /* the last STATUS_CHANGE (UP until told) */
	struct cb_cql_host host; /* where we connect */
	char addr[64];          /* its address in the ring, "" unknown yet */
	char dc[64], rack[64];
	uint8_t host_id[16];
	int64_t *tokens;
	size_t ntokens;
	struct conn *conns;     /* [cassandra_connections] */
	int backoff_ms;
	int64_t reconnect_at_ms;
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
	struct cb_evloop loop;  /* base, dns, stop eventfd */
	SSL_CTX *ssl_ctx;
	struct cb_thread thread;
	struct event *ring_ev, *tick_ev, *acks_ev;
	atomic_bool stopping;

	struct cb_cql_host *hosts;
	size_t nhosts;
	struct node nodes[NODES_MAX];
	int conns_per_node;
	size_t rr;              /* round-robin cursor over nodes */
	struct conn *ctl_conn;  /* the one REGISTERed for events */

	/* the ring, when known and the partitioner is Murmur3 */
	bool token_aware;
	bool ring_logged;
	char local_dc[64];
	struct cb_cql_repl repl;
	struct cb_cql_ring ring;   /* node indexes = indexes of nodes[] */
	struct cb_cql_peer *peers; /* the ring read in progress */
	size_t npeers;
	char partitioner[128];
	int inflight;           /* per connection */
	int batch_rows;
	uint16_t consistency;
	bool lz4;

	char insert_cql[256];
	uint8_t prepared_id[64];
	size_t prepared_len;
	/* cassandra_tables: the INSERTs made for each row, one or both */
	bool write_raw, write_daily;
	char insert_day_cql[320];
	uint8_t prepared_day_id[64];
	size_t prepared_day_len;

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

/* Takes r out of the queue; prev is the request before it (NULL: r is
 * the head). */
static void queue_unlink(struct cql *w, struct req *prev, struct req *r)
{
	if (prev == NULL)
		w->queue_head = r->next;
	else
		prev->next = r->next;
	if (w->queue_tail == r)
		w->queue_tail = prev;
	r->next = NULL;
	w->nqueued--;
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

/* The values of a row from column `first` (0: channel_id) on. */
static void put_row_values_from(struct cb_cql_wbuf *o,
				const struct cb_row_hdr *h, int first)
{
	const uint8_t *v = (const uint8_t *)(h + 1);
	const char *channel = (const char *)v;
	const char *user_id = channel + h->channel_len;
	const char *username = user_id + h->user_id_len;
	const char *message = username + h->username_len;
	const uint8_t *emotes = (const uint8_t *)(message + h->message_len);

	if (first == 0)
		cb_cql_put_value_text(o, channel, h->channel_len);
	cb_cql_put_value_bigint(o, h->timestamp_ms);
	cb_cql_put_value_uuid(o, h->message_id);
	cb_cql_put_value_text(o, user_id, h->user_id_len);
	cb_cql_put_value_text(o, username, h->username_len);
	cb_cql_put_value_text(o, message, h->message_len);
	cb_cql_put_emote_block(o, emotes, h->emotes_len, h->emote_count);
}

static void put_row_values(struct cb_cql_wbuf *o, const struct cb_row_hdr *h)
{
	put_row_values_from(o, h, 0);
}

/* The 8 values of the daily INSERT: channel_id, day, then as above. */
static void put_day_row_values(struct cb_cql_wbuf *o,
			       const struct cb_row_hdr *h)
{
	const char *channel = (const char *)(h + 1);
	uint8_t d[4];
	uint32_t day = (uint32_t)cb_murmur3_day_of_ms(h->timestamp_ms) +
		       0x80000000u;

	d[0] = (uint8_t)(day >> 24);
	d[1] = (uint8_t)(day >> 16);
	d[2] = (uint8_t)(day >> 8);
	d[3] = (uint8_t)day;
	cb_cql_put_value_text(o, channel, h->channel_len);
	cb_cql_put_bytes(o, d, 4);
	put_row_values_from(o, h, 1);
}

/* Encodes r for stream into w->out (compressed when the connection uses
 * LZ4).  Returns 0 or CB_E_TOOBIG. */
static int encode_req(struct cql *w, const struct req *r, int16_t stream,
		      bool lz4)
{
	struct cb_cql_wbuf *o = &w->out;
	size_t f, off = 0;

	cb_cql_wbuf_reset(o);
	if (r->nrows == 1 && !(w->write_raw && w->write_daily)) {
		struct cb_cql_params p = {0};

		p.consistency = w->consistency;
		p.nvalues = w->write_raw ? 7 : 8;
		p.skip_metadata = true;
		p.timestamp_us = INT64_MIN;
		f = cb_cql_frame_begin(o, stream, CB_CQL_OP_EXECUTE);
		if (w->write_raw)
			cb_cql_put_short_bytes(o, w->prepared_id,
					       w->prepared_len);
		else
			cb_cql_put_short_bytes(o, w->prepared_day_id,
					       w->prepared_day_len);
		cb_cql_put_params_head(o, &p);
		if (w->write_raw)
			put_row_values(o, row_at(r, 0));
		else
			put_day_row_values(o, row_at(r, 0));
		cb_cql_put_params_tail(o, &p);
		cb_cql_frame_end(o, f);
	} else {
		/* With both tables, a row's two INSERTs travel in the same
		 * unlogged batch: two partitions (the channel's and its
		 * day's), acknowledged together, so the FIFO marks a row done
		 * only once both tables hold it. */
		uint16_t per = (uint16_t)(w->write_raw + w->write_daily);

		f = cb_cql_batch_begin(o, stream, 1 /* unlogged */,
				       (uint16_t)(r->nrows * per));
		for (uint16_t i = 0; i < r->nrows; i++) {
			const struct cb_row_hdr *h = row_at(r, off);

			if (w->write_raw) {
				cb_cql_put_batch_prepared(o, w->prepared_id,
							  w->prepared_len, 7);
				put_row_values(o, h);
			}
			if (w->write_daily) {
				cb_cql_put_batch_prepared(
					o, w->prepared_day_id,
					w->prepared_day_len, 8);
				put_day_row_values(o, h);
			}
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

/* Moves c to state `to`, asserting it comes from one of `from` (S(x)|...). */
static void set_state(struct conn *c, enum conn_state to, unsigned from)
{
	assert((from & S(c->state)) != 0);
	(void)from;
	c->state = to;
}

/* One past the highest node slot in use: the bound of the node loops. */
static size_t nodes_hwm(const struct cql *w)
{
	size_t n = NODES_MAX;

	while (n > 0 && !w->nodes[n - 1].used)
		n--;
	return n;
}

static void update_health(struct cql *w)
{
	size_t ready = 0, up = 0, hwm = nodes_hwm(w);

	for (size_t i = 0; i < hwm; i++) {
		up += w->nodes[i].used && w->nodes[i].up;
		for (int k = 0; w->nodes[i].used && k < w->conns_per_node; k++)
			if (w->nodes[i].conns[k].state == C_READY)
				ready++;
	}
	cb_metric_set(CB_M_cql_connections, (int64_t)ready);
	cb_metric_set(CB_M_cql_nodes_up, (int64_t)up);
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

/* Prepares the raw INSERT (when written), then, on its answer, the daily
 * one (when written). */
static void send_prepare_one(struct conn *c, bool day)
{
	cb_cql_wbuf_reset(&c->w->out);
	cb_cql_enc_prepare(&c->w->out, CTL_STREAM,
			   day ? c->w->insert_day_cql : c->w->insert_cql);
	c->preparing_day = day;
	c->need_prepare = false;
	if (c->state == C_READY)
		set_state(c, C_PREPARE, S(C_READY));
	ctl_send(c, CTL_PREPARE);
}

static void send_prepare(struct conn *c)
{
	send_prepare_one(c, !c->w->write_raw);
}

/* A QUERY of the system tables on stream 0 (they are node-local: ONE). */
static void send_query(struct conn *c, enum ctl_op op, const char *cql)
{
	struct cb_cql_params p = {0};

	p.consistency = CB_CQL_ONE;
	p.timestamp_us = INT64_MIN;
	cb_cql_wbuf_reset(&c->w->out);
	cb_cql_enc_query(&c->w->out, CTL_STREAM, cql, &p);
	ctl_send(c, op);
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
	if (c->state != C_READY) {
		set_state(c, C_READY, S(C_STARTUP) | S(C_AUTH) | S(C_PREPARE));
		c->node->backoff_ms = 0;
		/* it answers: up, even if the UP event went to a control
		 * connection that died meanwhile */
		c->node->up = true;
		cb_info(SUBSYS, "connected to %s:%d", c->host->name,
			c->host->port);
		if (w->ctl_conn == NULL) {
			/* the control connection: events and the ring */
			w->ctl_conn = c;
			c->need_register = true;
			c->need_ring = true;
		}
		update_health(w);
	}
	if (c->need_register) {
		static const char *const events[] = {
			"STATUS_CHANGE", "TOPOLOGY_CHANGE", "SCHEMA_CHANGE"};

		c->need_register = false;
		cb_cql_wbuf_reset(&w->out);
		cb_cql_enc_register(&w->out, CTL_STREAM, events, 3);
		ctl_send(c, CTL_REGISTER);
		return;
	}
	if (c->need_ring) {
		c->need_ring = false;
		cb_cql_peers_free(w->peers, w->npeers);
		w->peers = NULL;
		w->npeers = 0;
		send_query(c, CTL_LOCAL, "SELECT * FROM system.local");
		return;
	}
	pump(w);
}

/* After the control connection went: the next ready one takes over. */
static void elect_ctl(struct cql *w)
{
	size_t hwm = nodes_hwm(w);

	if (w->ctl_conn != NULL || atomic_load(&w->stopping))
		return;
	for (size_t i = 0; i < hwm; i++)
		for (int k = 0; w->nodes[i].used && k < w->conns_per_node; k++) {
			struct conn *c = &w->nodes[i].conns[k];

			if (c->state != C_READY)
				continue;
			w->ctl_conn = c;
			c->need_register = true;
			c->need_ring = true;
			if (c->ctl == CTL_NONE)
				ctl_next(c);
			return;
		}
	/* none ready: the first connection to become ready takes it */
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
	c->need_register = false;
	c->need_ring = false;
	if (w->ctl_conn == c)
		w->ctl_conn = NULL;
}

static void conn_fail(struct conn *c, const char *fmt, ...)
{
	struct cql *w = c->w;
	struct node *n = c->node;
	int64_t now = cb_mono_ms();
	va_list ap;
	bool was_ready = c->state == C_READY || c->state == C_PREPARE;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	conn_close(c);
	set_state(c, C_DOWN, S(C_CONNECTING) | S(C_STARTUP) | S(C_AUTH) |
				     S(C_PREPARE) | S(C_READY));
	/* one backoff per node: its connections fail together */
	if (n->reconnect_at_ms <= now) {
		n->backoff_ms = n->backoff_ms == 0
					? RECONNECT_MIN_MS
					: (n->backoff_ms * 2 > RECONNECT_MAX_MS
						   ? RECONNECT_MAX_MS
						   : n->backoff_ms * 2);
		n->reconnect_at_ms = now + backoff(w, n->backoff_ms,
						   RECONNECT_MAX_MS, 1);
	}
	if (was_ready)
		cb_warn(SUBSYS, "connection to %s:%d lost: %s", c->host->name,
			c->host->port, c->why);
	else
		cb_debug(SUBSYS, "connection to %s:%d failed: %s",
			 c->host->name, c->host->port, c->why);
	update_health(w);
	elect_ctl(w);
	pump(w);
}

/* Fatal for this connection only: a handshake answer we cannot use. */
static void conn_auth_fail(struct conn *c, const char *why)
{
	cb_error(SUBSYS, "Cassandra %s:%d: %s", c->host->name, c->host->port,
		 why);
	conn_fail(c, "%s", why);
	/* the same settings will fail again: wait the longest backoff */
	c->node->backoff_ms = RECONNECT_MAX_MS;
	c->node->reconnect_at_ms = cb_mono_ms() + RECONNECT_MAX_MS;
}

/* ---- the nodes and the ring ---- */

static int conn_init(struct cql *w, struct node *n, struct conn *c)
{
	c->w = w;
	c->node = n;
	c->host = &n->host;
	c->state = C_DOWN;
	c->slots = calloc((size_t)w->inflight + 1, sizeof(*c->slots));
	c->orphan = calloc((size_t)w->inflight + 1, sizeof(*c->orphan));
	c->free_ids = calloc((size_t)w->inflight, sizeof(*c->free_ids));
	if (c->slots == NULL || c->orphan == NULL || c->free_ids == NULL)
		return CB_E_NOMEM;
	for (int s = w->inflight; s >= 1; s--)
		c->free_ids[c->nfree++] = (int16_t)s;
	return 0;
}

static void node_release(struct cql *w, struct node *n)
{
	for (int k = 0; n->conns != NULL && k < w->conns_per_node; k++) {
		struct conn *c = &n->conns[k];

		if (c->slots != NULL)
			conn_close(c); /* its requests go back to the queue */
		free(c->slots);
		free(c->orphan);
		free(c->free_ids);
	}
	free(n->conns);
	free(n->tokens);
	memset(n, 0, sizeof(*n));
}

static struct node *node_add(struct cql *w, const char *name, int port)
{
	struct node *n = NULL;

	for (size_t i = 0; i < NODES_MAX && n == NULL; i++)
		if (!w->nodes[i].used)
			n = &w->nodes[i];
	if (n == NULL)
		return NULL;
	memset(n, 0, sizeof(*n));
	n->used = true;
	n->up = true;
	snprintf(n->host.name, sizeof(n->host.name), "%s", name);
	n->host.port = port;
	n->conns = calloc((size_t)w->conns_per_node, sizeof(*n->conns));
	for (int k = 0; n->conns != NULL && k < w->conns_per_node; k++)
		if (conn_init(w, n, &n->conns[k]) != 0) {
			node_release(w, n);
			return NULL;
		}
	if (n->conns == NULL) {
		node_release(w, n);
		return NULL;
	}
	return n;
}

/* The node at addr:port (its ring address, or a contact point given as
 * that numeric address), or NULL. */
static struct node *node_find(struct cql *w, const char *addr, int port)
{
	size_t hwm = nodes_hwm(w);

	for (size_t i = 0; i < hwm; i++) {
		struct node *n = &w->nodes[i];

		if (!n->used || n->host.port != port)
			continue;
		if (strcmp(n->addr, addr) == 0 ||
		    (n->addr[0] == '\0' && strcmp(n->host.name, addr) == 0))
			return n;
	}
	return NULL;
}

static void ring_build(struct cql *w)
{
	struct cb_cql_ring_node rn[NODES_MAX];
	size_t hwm = nodes_hwm(w), ntok = 0, nnodes = 0;
	char errstr[160];

	for (size_t i = 0; i < hwm; i++) {
		const struct node *n = &w->nodes[i];

		rn[i].dc = n->dc;
		rn[i].rack = n->rack;
		rn[i].tokens = n->used ? n->tokens : NULL;
		rn[i].ntokens = n->used ? n->ntokens : 0;
		ntok += rn[i].ntokens;
		nnodes += n->used;
	}
	w->token_aware = false;
	cb_metric_set(CB_M_cql_token_aware, 0);
	cb_metric_set(CB_M_cql_ring_nodes, (int64_t)nnodes);
	cb_metric_add(CB_M_cql_ring_refreshes_total, 1);
	if (strcmp(w->partitioner, MURMUR3) != 0) {
		cb_warn(SUBSYS, "the cluster's partitioner is %s, not "
			"Murmur3Partitioner: no token-aware routing, writes go "
			"round robin",
			w->partitioner[0] ? w->partitioner : "unknown");
		cb_cql_ring_free(&w->ring);
		return;
	}
	if (cb_cql_ring_build(&w->ring, rn, hwm, &w->repl, errstr,
			      sizeof(errstr)) != 0) {
		cb_warn(SUBSYS, "cannot build the token ring (%s): writes go "
			"round robin", errstr);
		return;
	}
	w->token_aware = true;
	cb_metric_set(CB_M_cql_token_aware, 1);
	cb_info(SUBSYS, "ring: %zu node(s), %zu token(s), local data centre "
		"%s, keyspace %s replication %s: token-aware routing",
		nnodes, ntok, w->local_dc, w->cfg->cassandra_keyspace,
		w->repl.strategy == CB_CQL_STRATEGY_SIMPLE ? "SimpleStrategy"
		: w->repl.strategy == CB_CQL_STRATEGY_NTS
			? "NetworkTopologyStrategy"
			: "on every node");
}

/* The ring read on the control connection c is complete: adopt it.  The
 * first row (system.local) is c's own node. */
static void ring_apply(struct cql *w, struct conn *c)
{
	bool seen[NODES_MAX] = {0};
	size_t hwm;

	if (w->npeers == 0)
		return;
	snprintf(w->partitioner, sizeof(w->partitioner), "%s",
		 w->peers[0].partitioner);
	if (w->local_dc[0] == '\0')
		snprintf(w->local_dc, sizeof(w->local_dc), "%s",
			 w->peers[0].dc);
	for (size_t i = 0; i < w->npeers; i++) {
		struct cb_cql_peer *p = &w->peers[i];
		struct node *n = i == 0 ? c->node
					: node_find(w, p->addr, p->port);

		if (n == NULL) {
			n = node_add(w, p->addr, p->port);
			if (n == NULL) {
				cb_warn(SUBSYS, "node %s:%d not used: more "
					"than %d nodes, or out of memory",
					p->addr, p->port, NODES_MAX);
				continue;
			}
			cb_info(SUBSYS, "node %s:%d (%s/%s, %zu tokens) "
				"joins the pool",
				p->addr, p->port, p->dc, p->rack, p->ntokens);
			for (int k = 0; k < w->conns_per_node; k++)
				conn_connect(&n->conns[k]);
		}
		seen[n - w->nodes] = true;
		n->in_ring = true;
		snprintf(n->addr, sizeof(n->addr), "%s", p->addr);
		snprintf(n->dc, sizeof(n->dc), "%s", p->dc);
		snprintf(n->rack, sizeof(n->rack), "%s", p->rack);
		memcpy(n->host_id, p->host_id, sizeof(n->host_id));
		free(n->tokens);
		n->tokens = p->tokens;
		n->ntokens = p->ntokens;
		p->tokens = NULL;
	}
	hwm = nodes_hwm(w);
	for (size_t i = 0; i < hwm; i++) {
		struct node *n = &w->nodes[i];

		if (!n->used || seen[i])
			continue;
		/* left the ring, or a contact point known under another
		 * name: its in-flight requests go to the others */
		cb_info(SUBSYS, "%s %s:%d leaves the pool",
			n->in_ring ? "node" : "contact point", n->host.name,
			n->host.port);
		node_release(w, n);
	}
	cb_cql_peers_free(w->peers, w->npeers);
	w->peers = NULL;
	w->npeers = 0;
	ring_build(w);
	update_health(w);
}

/* Handles the answer to a ring query; returns true when it was one. */
static bool on_ring_response(struct conn *c, struct cb_cql_response *res)
{
	struct cql *w = c->w;
	char why[1024], q[200];
	int err = 0;

	if (c->ctl != CTL_LOCAL && c->ctl != CTL_PEERS_V2 &&
	    c->ctl != CTL_PEERS && c->ctl != CTL_KEYSPACE)
		return false;
	if (res->hdr.opcode == CB_CQL_OP_ERROR && c->ctl == CTL_PEERS_V2) {
		/* before Cassandra 4.0: no peers_v2 */
		send_query(c, CTL_PEERS, "SELECT * FROM system.peers");
		return true;
	}
	if (res->hdr.opcode == CB_CQL_OP_ERROR) {
		cb_cql_error_describe(&res->error, why, sizeof(why));
		err = CB_E_CQL;
	} else if (res->hdr.opcode != CB_CQL_OP_RESULT) {
		snprintf(why, sizeof(why), "answered with %s",
			 cb_cql_opcode_name(res->hdr.opcode));
		err = CB_E_PROTO;
	} else if (c->ctl == CTL_KEYSPACE) {
		err = cb_cql_repl_from_rows(res, &w->repl, why, sizeof(why));
		if (err == CB_E_NOTFOUND) {
			/* init has not run yet: route by token owner */
			cb_cql_repl_init(&w->repl);
			w->repl.strategy = CB_CQL_STRATEGY_SIMPLE;
			w->repl.rf = 1;
			err = 0;
		}
	} else {
		err = cb_cql_peers_from_rows(res, c->host->port, &w->peers,
					     &w->npeers, why, sizeof(why));
		if (err == 0 && c->ctl == CTL_LOCAL && w->npeers != 1) {
			snprintf(why, sizeof(why), "system.local has %zu rows",
				 w->npeers);
			err = CB_E_PROTO;
		}
	}
	if (err != 0) {
		cb_warn(SUBSYS, "%s:%d: cannot read the ring (%s): writes go "
			"to the nodes known so far",
			c->host->name, c->host->port, why);
		ctl_next(c);
		return true;
	}
	switch (c->ctl) {
	case CTL_LOCAL:
		send_query(c, CTL_PEERS_V2, "SELECT * FROM system.peers_v2");
		break;
	case CTL_PEERS_V2:
	case CTL_PEERS:
		snprintf(q, sizeof(q),
			 "SELECT replication FROM system_schema.keyspaces "
			 "WHERE keyspace_name = '%s'",
			 w->cfg->cassandra_keyspace);
		send_query(c, CTL_KEYSPACE, q);
		break;
	default:
		ring_apply(w, c);
		ctl_next(c);
		break;
	}
	return true;
}

static void on_ctl_response(struct conn *c, struct cb_cql_response *res)
{
	struct cql *w = c->w;
	const struct cb_config *cfg = w->cfg;
	char why[1024];

	if (on_ring_response(c, res))
		return;
	if (res->hdr.opcode == CB_CQL_OP_ERROR) {
		cb_cql_error_describe(&res->error, why, sizeof(why));
		if (c->ctl == CTL_PREPARE && c->preparing_day) {
			/* most likely a schema from before cql/003 */
			size_t k = strlen(why);

			snprintf(why + k, sizeof(why) - k,
				 " (preparing the INSERT into "
				 "raw_chat_messages_by_day: run chatbattle init, "
				 "or set cassandra_tables = raw)");
		}
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
		set_state(c, C_AUTH, S(C_STARTUP));
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
		set_state(c, C_PREPARE, S(C_AUTH));
		c->need_prepare = true;
		ctl_next(c);
		return;
	case CTL_PREPARE:
		if (res->hdr.opcode != CB_CQL_OP_RESULT ||
		    res->result_kind != CB_CQL_RESULT_PREPARED ||
		    res->prepared_id.len <= 0 ||
		    (size_t)res->prepared_id.len > sizeof(w->prepared_id))
			break;
		if (res->meta.ncolumns != (c->preparing_day ? 8 : 7)) {
			snprintf(why, sizeof(why),
				 "the prepared INSERT into %s has %" PRId32
				 " bind variables, not %d",
				 c->preparing_day ? "raw_chat_messages_by_day"
						  : "raw_chat_messages",
				 res->meta.ncolumns, c->preparing_day ? 8 : 7);
			conn_auth_fail(c, why);
			return;
		}
		{
			uint8_t *id = c->preparing_day ? w->prepared_day_id
						       : w->prepared_id;
			size_t *len = c->preparing_day ? &w->prepared_day_len
						       : &w->prepared_len;

			if ((size_t)res->prepared_id.len != *len ||
			    memcmp(res->prepared_id.p, id, *len) != 0) {
				memcpy(id, res->prepared_id.p,
				       (size_t)res->prepared_id.len);
				*len = (size_t)res->prepared_id.len;
			}
		}
		if (!c->preparing_day && w->write_daily) {
			/* the daily INSERT next, still on stream 0 */
			send_prepare_one(c, true);
			return;
		}
		if (c->state == C_PREPARE || c->state == C_STARTUP)
			/* ctl_next makes it READY */
			set_state(c, C_PREPARE, S(C_PREPARE) | S(C_STARTUP));
		ctl_next(c);
		return;
	case CTL_REGISTER:
	case CTL_OPTIONS:
		ctl_next(c);
		return;
	case CTL_NONE:
	case CTL_LOCAL:
	case CTL_PEERS_V2:
	case CTL_PEERS:
	case CTL_KEYSPACE:
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
			set_state(c, C_PREPARE, S(C_READY));
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

/* A topology change, or an unknown node coming up: read the ring again on
 * the control connection (now, or when its current request is done). */
static void ring_refresh(struct cql *w)
{
	struct conn *c = w->ctl_conn;

	if (c == NULL)
		return;
	c->need_ring = true;
	if (c->ctl == CTL_NONE && c->state == C_READY)
		ctl_next(c);
}

static void on_event(struct conn *c, struct cb_cql_response *res)
{
	struct cql *w = c->w;
	char addr[64] = "";
	struct node *n = NULL;
	bool topology = res->event_type.len == 15 &&
			memcmp(res->event_type.p, "TOPOLOGY_CHANGE", 15) == 0;
	bool status = res->event_type.len == 13 &&
		      memcmp(res->event_type.p, "STATUS_CHANGE", 13) == 0;

	if ((topology || status) &&
	    (res->event_addr_len == 4 || res->event_addr_len == 16) &&
	    inet_ntop(res->event_addr_len == 4 ? AF_INET : AF_INET6,
		      res->event_addr, addr, sizeof(addr)) != NULL)
		n = node_find(w, addr, res->event_port);
	cb_info(SUBSYS, "event from %s:%d: %.*s %.*s%s%s%.*s%.*s",
		c->host->name, c->host->port, (int)res->event_type.len,
		(const char *)res->event_type.p,
		res->event_change.len > 0 ? (int)res->event_change.len : 0,
		res->event_change.len > 0 ? (const char *)res->event_change.p
					  : "",
		addr[0] ? " " : "", addr,
		res->schema.change.len > 0 ? (int)res->schema.change.len : 0,
		res->schema.change.len > 0 ? (const char *)res->schema.change.p
					   : "",
		res->schema.name.len > 0 ? (int)res->schema.name.len : 0,
		res->schema.name.len > 0 ? (const char *)res->schema.name.p
					 : "");
	if (topology) {
		ring_refresh(w);
		return;
	}
	if (!status)
		return;
	if (res->event_change.len == 4 &&
	    memcmp(res->event_change.p, "DOWN", 4) == 0) {
		/* routing skips it; its connections go when they break */
		if (n != NULL)
			n->up = false;
		update_health(w);
		return;
	}
	if (res->event_change.len != 2 ||
	    memcmp(res->event_change.p, "UP", 2) != 0)
		return;
	if (n == NULL) { /* a node we do not know: the ring changed */
		ring_refresh(w);
		return;
	}
	/* it came back: do not wait out the reconnect backoff */
	n->up = true;
	n->reconnect_at_ms = 0;
	update_health(w);
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
		set_state(c, C_STARTUP, S(C_CONNECTING));
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
	char errstr[256];

	conn_close(c);
	set_state(c, C_CONNECTING, S(C_DOWN));
	c->connect_ms = cb_mono_ms();
	c->lz4 = w->lz4;
	cb_metric_add(CB_M_cql_reconnects_total, 1);
	c->bev = cb_tls_bufferevent_new(w->loop.base, w->ssl_ctx, c->host->name,
					BEV_OPT_CLOSE_ON_FREE, errstr,
					sizeof(errstr));
	if (c->bev == NULL) {
		conn_fail(c, "%s", errstr);
		return;
	}
	bufferevent_setcb(c->bev, conn_read_cb, NULL, conn_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, READ_HIGH_WATER);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect_hostname(c->bev, w->loop.dns, AF_UNSPEC,
						c->host->name,
						c->host->port) != 0)
		conn_fail(c, "cannot connect");
}

/* ---- sending ---- */

/* The ready connection of n with the most free stream ids, or NULL. */
static struct conn *node_conn(struct cql *w, struct node *n)
{
	struct conn *best = NULL;

	for (int k = 0; n->used && k < w->conns_per_node; k++) {
		struct conn *c = &n->conns[k];

		if (c->state == C_READY && c->nfree > 0 &&
		    (best == NULL || c->nfree > best->nfree))
			best = c;
	}
	return best;
}

/* Round robin over the nodes, those not reported DOWN first. */
static struct conn *pick_any(struct cql *w, bool move)
{
	size_t hwm = nodes_hwm(w);

	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < hwm; i++) {
			size_t k = (w->rr + i) % hwm;
			struct node *n = &w->nodes[k];
			struct conn *c;

			if (!n->used || (pass == 0 && !n->up))
				continue;
			c = node_conn(w, n);
			if (c != NULL) {
				if (move)
					w->rr = k + 1;
				return c;
			}
		}
	return NULL;
}

static bool node_ready(const struct cql *w, const struct node *n)
{
	for (int k = 0; n->used && k < w->conns_per_node; k++)
		if (n->conns[k].state == C_READY)
			return true;
	return false;
}

/*
 * Token-aware routing: a replica of r's partition, live (not reported
 * DOWN) and in the local data centre first, then a live replica
 * elsewhere, then the next live node round robin.  Replicas are tried in
 * ring order, so a partition's writes go to one coordinator while it is
 * healthy.  NULL: r waits, because a live replica is connected but all
 * its stream ids are taken (sending to a non-replica would only add a
 * hop inside the cluster).
 */
static struct conn *route(struct cql *w, const struct req *r)
{
	const uint16_t *rep;
	bool busy = false;
	size_t k;

	if (!w->token_aware)
		return pick_any(w, true);
	k = cb_cql_ring_replicas(&w->ring, r->token, &rep);
	for (int pass = 0; pass < 2 && !busy; pass++)
		for (size_t i = 0; i < k; i++) {
			struct node *n = &w->nodes[rep[i]];
			struct conn *c;

			if (!n->used || !n->up ||
			    (strcmp(n->dc, w->local_dc) == 0) != (pass == 0))
				continue;
			c = node_conn(w, n);
			if (c != NULL)
				return c;
			busy = busy || node_ready(w, n);
		}
	return busy ? NULL : pick_any(w, true);
}

/* Sends queued requests while a ready connection has a free stream. */
static void pump(struct cql *w)
{
	struct req *r, *prev = NULL;
	struct conn *c;

	/* requests waiting for a busy replica stay in place; the others
	 * behind them go */
	while ((r = prev == NULL ? w->queue_head : prev->next) != NULL &&
	       pick_any(w, false) != NULL) {
		int16_t stream;
		int err;

		c = route(w, r);
		if (c == NULL) {
			prev = r;
			continue;
		}
		queue_unlink(w, prev, r);
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
			/* the queue changed under us: from the head again */
			prev = NULL;
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

/* Whether h belongs to r's partition: the same channel, and with the
 * daily table the same UTC day. */
static bool same_channel(const struct cql *w, const struct req *r,
			 const struct cb_row_hdr *h)
{
	const struct cb_row_hdr *f = row_at(r, 0);

	if (w->write_daily && cb_murmur3_day_of_ms(h->timestamp_ms) != r->day)
		return false;
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
	if (r->nrows == 0 && w->write_daily) {
		/* route by the daily partition (channel_id, day); with both
		 * tables the coordinator forwards the raw row */
		r->day = cb_murmur3_day_of_ms(h->timestamp_ms);
		r->token = cb_murmur3_token_channel_day(
			(const char *)(h + 1), h->channel_len, r->day);
	} else if (r->nrows == 0) { /* the partition key: channel_id */
		r->token = cb_murmur3_token(h + 1, h->channel_len);
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
			if (same_channel(w, open[i], h)) {
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
	for (size_t ci = 0; ci < NODES_MAX * (size_t)w->conns_per_node; ci++) {
		struct node *n = &w->nodes[ci / (size_t)w->conns_per_node];
		struct conn *c;

		if (!n->used)
			continue;
		c = &n->conns[ci % (size_t)w->conns_per_node];
		if (c->state == C_DOWN) {
			if (now >= n->reconnect_at_ms)
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

static void *cql_main(void *arg)
{
	struct cql *w = arg;

	for (size_t i = 0; i < NODES_MAX; i++)
		for (int k = 0; w->nodes[i].used && k < w->conns_per_node; k++)
			conn_connect(&w->nodes[i].conns[k]);
	event_active(w->ring_ev, EV_READ, 0);
	event_base_dispatch(w->loop.base);
	return NULL;
}

/* ---- start and stop ---- */

static void cql_free(struct cql *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < NODES_MAX; i++)
		if (w->nodes[i].used)
			node_release(w, &w->nodes[i]);
	cb_cql_ring_free(&w->ring);
	cb_cql_peers_free(w->peers, w->npeers);
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
	if (w->ring_ev != NULL)
		event_free(w->ring_ev);
	if (w->tick_ev != NULL)
		event_free(w->tick_ev);
	if (w->acks_ev != NULL)
		event_free(w->acks_ev);
	cb_evloop_free(&w->loop);
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
	w->loop.stop_efd = -1;
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
	cb_cql_insert_day_cql(cfg->cassandra_keyspace, w->insert_day_cql,
			      sizeof(w->insert_day_cql));
	cb_cql_cfg_tables(cfg, &w->write_raw, &w->write_daily);
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
	w->conns_per_node = (int)cfg->cassandra_connections;
	/* requests: enough to fill the streams of three nodes (the ring is
	 * learnt later), plus a queue as deep; at most 4096 */
	w->nreqs = (w->nhosts > 3 ? w->nhosts : 3) *
		   (size_t)w->conns_per_node * (size_t)w->inflight;
	if (w->nreqs > 4096)
		w->nreqs = 4096;
	w->reqs = calloc(w->nreqs, sizeof(*w->reqs));
	if (w->res == NULL || w->parts == NULL || w->reqs == NULL) {
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
	/* the contact points; the ring replaces them once read */
	for (size_t i = 0; i < w->nhosts && i < NODES_MAX; i++) {
		struct node *n = node_add(w, w->hosts[i].name,
					  w->hosts[i].port);

		if (n == NULL) {
			err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
					"out of memory");
			goto out;
		}
		n->contact = true;
	}
	err = cb_evloop_new(&w->loop, errstr, errstr_size);
	if (err != 0)
		goto out;
	w->ring_ev = event_new(w->loop.base, cb_ring_consumer_fd(app->rows),
			       EV_READ | EV_PERSIST, ring_cb, w);
	w->tick_ev = event_new(w->loop.base, -1, EV_PERSIST, tick_cb, w);
	w->acks_ev = evtimer_new(w->loop.base, acks_cb, w);
	if (w->ring_ev == NULL || w->tick_ev == NULL || w->acks_ev == NULL ||
	    event_add(w->ring_ev, NULL) != 0 ||
	    event_add(w->tick_ev, &tick) != 0) {
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				"cannot create the writer's events");
		goto out;
	}
	cb_health_set(CB_DEP_CASSANDRA, CB_DEP_UNKNOWN);
	app->cql = (struct cb_cql *)w;
	err = cb_thread_start(&w->thread, cql_main, w, "cql", errstr,
			      errstr_size);
	if (err != 0) {
		app->cql = NULL;
		goto out;
	}
	cb_info(SUBSYS, "writing to %s.raw_chat_messages from %zu contact "
		"point(s), %d connection(s) per node, %d in flight each, "
		"batches of up to %d rows, consistency %s%s%s",
		cfg->cassandra_keyspace, w->nhosts, w->conns_per_node,
		w->inflight,
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

	if (w == NULL)
		return;
	cb_thread_stop(&w->thread, &w->stopping, w->loop.stop_efd);
	if (w->rows_outstanding > 0)
		cb_info(SUBSYS, "stopped with %" PRIu64 " rows unacknowledged "
			"(their offsets are not committed: they are written "
			"again on the next start)",
			w->rows_outstanding);
	app->cql = NULL;
	cql_free(w);
}
