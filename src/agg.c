/*
 * agg.c - the aggregator thread (see agg.h; the design is in
 * docs/aggregation.md).  One thread owns: a consumer of topic_messages in
 * the group (read_committed, manual commits, cooperative-sticky), a
 * transactional producer to topic_stats and topic_dlq, and, per assigned
 * partition, its windows (cb_winset) and a FIFO of consumed records waiting
 * for the Cassandra writer.
 *
 * Exactly once, with Cassandra in the loop:
 *   consume -> push the row (partition, generation, offset) to app->rows
 *           -> queue the parsed record in the partition's FIFO
 *   ack (partition, generation, offset) from app->acks
 *           -> pop and apply to the windows every queued record up to it
 *              (records without a row - events, late, bad - apply as soon as
 *              everything before them has)
 *   every commit_interval_ms, in one transaction:
 *           ChannelStats of the changed channels + DLQ records
 *           + the input offsets "last applied + 1"
 * So the committed offsets and the committed ChannelStats describe exactly
 * the same prefix of each partition, and every row in that prefix is in
 * Cassandra.  A crash replays from the committed offsets into windows
 * rebuilt from the committed ChannelStats (each record carries the
 * restorable state); rows are idempotent.
 *
 * Partitions become active in two steps: the rebalance callback assigns and
 * pauses them; the loop then reads their committed offsets (stable, so an
 * unfinished transaction of a previous owner is waited for), rebuilds their
 * windows from topic_stats up to its last stable offset, seeks to the
 * offsets and resumes.  An aborted transaction sends every partition
 * through the same path.  The generation of a partition changes each time,
 * so acks for rows of an older life are ignored.
 *
 * Back-pressure: a partition whose FIFO is nearly full, or every partition
 * when the rows ring is, is paused (librdkafka keeps serving the group
 * while paused); nothing is dropped.
 */
#include <assert.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chatbattle/agg.h"
#include "chatbattle/aggjson.h"
#include "chatbattle/app.h"
#include "chatbattle/chatmsg.h"
#include "chatbattle/clock.h"
#include "chatbattle/config.h"
#include "chatbattle/err.h"
#include "chatbattle/json.h"
#include "chatbattle/jw.h"
#include "chatbattle/kafka.h"
#include "chatbattle/log.h"
#include "chatbattle/metrics.h"
#include "chatbattle/record.h"
#include "chatbattle/ring.h"
#include "chatbattle/sentiment.h"
#include "chatbattle/thread.h"
#include "chatbattle/window.h"

#define SUB "agg"
/* Per-partition FIFO of records waiting for acks (bytes). */
#define PEND_CAP (1u << 20)
/* The largest FIFO entry; a partition pauses when less than this is free. */
#define PEND_MAX_ENTRY (128u << 10)
/* Raw bytes a dead-letter record keeps of an invalid input. */
#define DLQ_RAW_MAX (64u << 10)
/* Largest input record parsed (larger ones are dead letters). */
#define INPUT_MAX (1u << 20)
#define POLL_BATCH 512
/* librdkafka's fetch queue limit (KiB), and the nudge (see nudge_fetch). */
#define FETCHQ_KBYTES 4096
#define STR_(x) #x
#define STR(x) STR_(x)
#define NUDGE_IDLE_MS 30
#define NUDGE_EVERY_MS 100
/* How long the loop holds (stops polling) before it pauses partitions. */
#define HOLD_MAX_MS 1000
#define TXN_TIMEOUT_MS 30000
/* The FENCED_MAX-th fencing of the producer within FENCED_WINDOW_MS stops
 * the aggregator (another process uses our transactional.id); fewer are
 * timeout aborts, answered with a new producer (see replaceable()). */
#define FENCED_MAX 5
#define FENCED_WINDOW_MS 300000
/* rd_kafka_seek_partitions waits for the seeks, which are local and quick,
 * without a bound: librdkafka 2.0.2 (Debian's) reads a timeout there as
 * microseconds (fixed in 2.1.0, librdkafka #4230), so "10000" gave up after
 * 10 ms and a busy machine (t70-parity at a load average of 180) made the
 * recovery's seek "time out" and the aggregator stop. */
#define SEEK_WAIT (-1)
#define STOP_DRAIN_MS 5000

enum pend_kind { PK_MSG = 1, PK_EVENT = 2, PK_BAD = 3, PK_PAD = 4 };

/* A FIFO entry: this header, then channel, user, username, and the emote
 * block (PK_MSG) or the reason and raw bytes (PK_BAD); padded to 8. */
struct pend {
	uint32_t len;
	uint8_t kind;
	int8_t event;
	uint8_t channel_len;
	uint8_t has_row;
	uint16_t user_len;
	uint16_t username_len;
	uint16_t emote_count;
	uint16_t reason_len;
	uint32_t blob_len;  /* emote block, or raw bytes kept */
	uint32_t raw_total; /* PK_BAD: length of the whole input */
	int64_t offset;
	int64_t ts_ms;
	int64_t received_at_ms;
	int32_t mood_milli; /* PK_MSG: the text's sentiment score */
	uint32_t pad;
};

/*
 * A partition's state; part_set_state is the only place that changes it
 * and asserts the legal moves:
 *   any        -> NONE        part_drop: revoked, or about to be rebuilt
 *                             (its windows and FIFO are gone)
 *   any        -> RECOVERING  assigned, a failed transaction, or rebuilt
 *   RECOVERING -> ACTIVE      recover(): windows restored, a real offset
 */
enum part_state { PS_NONE = 0, PS_RECOVERING, PS_ACTIVE };

struct part {
	enum part_state state;
	bool paused;
	uint32_t gen;
	int64_t acked;        /* highest acked offset of this generation */
	int64_t applied_next; /* offset after the last applied record, -1 */
	int64_t committed;    /* offset committed by us, -1 */
	int64_t pos;          /* next offset to fetch, as we know it, -1 */
	struct cb_winset *ws;
	uint8_t *fifo;
	uint64_t head, tail;  /* write, read positions (bytes, unwrapped) */
};

struct cb_agg {
	struct cb_app *app;
	const struct cb_config *cfg;
	struct cb_thread thread;
	atomic_bool stop;
	rd_kafka_t *consumer;
	rd_kafka_t *producer;
	char txn_id[256];
	int nparts;
	struct part *parts;
	uint32_t gen_counter;
	struct cb_window_cfg wcfg;
	bool txn_open;
	bool need_recovery;
	bool rows_paused;
	bool fatal;
	uint8_t *scratch;
	struct cb_jw dlq;
	uint32_t row_max;
	int64_t next_commit_ms;
	int64_t next_debug_ms;
	/* the fetch nudge: bytes taken since the queue was last empty, the
	 * queue went empty at (0: it is not), a stall is suspected */
	uint64_t streak_bytes;
	int64_t empty_since_ms;
	int64_t last_nudge_ms;
	bool suspect_stall;
	int64_t hold_since_ms; /* the loop stopped polling at, 0: it polls */
	/* the last FENCED_MAX fencings (cb_mono_ms), a ring; how many */
	int64_t fenced_at[FENCED_MAX];
	unsigned nfenced;
};

static void fatal(struct cb_agg *a, const char *what)
{
	if (!a->fatal)
		cb_error(SUB, "%s", what);
	a->fatal = true;
	cb_app_request_stop(a->app, what);
}

/* ---- partitions ---- */

static rd_kafka_topic_partition_list_t *plist_of(struct cb_agg *a,
						 enum part_state st)
{
	rd_kafka_topic_partition_list_t *l =
		rd_kafka_topic_partition_list_new(a->nparts);

	for (int p = 0; p < a->nparts; p++)
		if (a->parts[p].state == st)
			rd_kafka_topic_partition_list_add(
				l, a->cfg->topic_messages, p);
	return l;
}

static void pause_parts(struct cb_agg *a, rd_kafka_topic_partition_list_t *l,
			bool pause)
{
	if (l->cnt == 0)
		return;
	if (pause)
		rd_kafka_pause_partitions(a->consumer, l);
	else
		rd_kafka_resume_partitions(a->consumer, l);
}

/*
 * Pauses or resumes one partition.  A resume first seeks to the offset
 * after the last record taken: a pause makes librdkafka restart from its
 * own idea of the position, which a recovery's seek may not have updated.
 */
static void pause_one(struct cb_agg *a, int p, bool pause)
{
	rd_kafka_topic_partition_list_t *l;

	if (a->parts[p].paused == pause)
		return;
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, a->cfg->topic_messages, p)
		->offset = a->parts[p].pos;
	if (!pause && a->parts[p].pos >= 0) {
		rd_kafka_error_t *e =
			rd_kafka_seek_partitions(a->consumer, l, SEEK_WAIT);

		if (e != NULL) {
			cb_warn(SUB, "[%d] seek to %" PRId64 ": %s", p,
				a->parts[p].pos, rd_kafka_error_string(e));
			rd_kafka_error_destroy(e);
		}
	}
	pause_parts(a, l, pause);
	rd_kafka_topic_partition_list_destroy(l);
	a->parts[p].paused = pause;
	cb_debug(SUB, "[%d] %s at %" PRId64, p, pause ? "paused" : "resumed",
		 a->parts[p].pos);
}

static void part_set_state(struct part *pt, enum part_state to)
{
	switch (to) {
	case PS_NONE:
		assert(pt->ws == NULL && pt->head == pt->tail);
		break;
	case PS_RECOVERING:
		break;
	case PS_ACTIVE:
		assert(pt->state == PS_RECOVERING);
		assert(pt->ws != NULL && pt->pos >= 0);
		assert(pt->head == pt->tail); /* nothing applied before */
		break;
	}
	pt->state = to;
}

/* Forgets everything about partition p (revoked, or to be rebuilt). */
static void part_drop(struct cb_agg *a, int p)
{
	struct part *pt = &a->parts[p];

	assert(p >= 0 && p < a->nparts);
	cb_winset_free(pt->ws);
	pt->ws = NULL;
	pt->head = pt->tail = 0;
	pt->acked = -1;
	pt->applied_next = -1;
	pt->committed = -1;
	pt->pos = -1;
	part_set_state(pt, PS_NONE);
}

static size_t fifo_used(const struct part *pt)
{
	return (size_t)(pt->head - pt->tail);
}

/*
 * Reserves len (8-aligned) contiguous FIFO bytes; an entry never wraps: a
 * PK_PAD entry fills the end first.  The caller checked the space (a
 * partition is paused before PEND_MAX_ENTRY is short).
 */
static struct pend *fifo_reserve(struct part *pt, uint32_t len)
{
	uint64_t off = pt->head % PEND_CAP;
	uint64_t pad_len = off + len > PEND_CAP ? PEND_CAP - off : 0;

	if (fifo_used(pt) + pad_len + len > PEND_CAP)
		return NULL;
	if (pad_len > 0) {
		struct pend *pad = (struct pend *)(pt->fifo + off);

		pad->len = (uint32_t)pad_len;
		pad->kind = PK_PAD;
		pt->head += pad_len;
		off = 0;
	}
	return (struct pend *)(pt->fifo + off);
}

/* ---- Kafka helpers ---- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	if (m->err)
		cb_warn(SUB, "delivery to %s failed: %s",
			rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
}

static int produce_fatal(struct cb_agg *a, const char *topic);

/* Produces one record in the current transaction. */
static int produce(struct cb_agg *a, const char *topic, int32_t partition,
		   const char *key, size_t key_len, const void *val,
		   size_t val_len)
{
	for (int tries = 0;; tries++) {
		rd_kafka_resp_err_t err = rd_kafka_producev(
			a->producer, RD_KAFKA_V_TOPIC(topic),
			RD_KAFKA_V_PARTITION(partition),
			RD_KAFKA_V_KEY(key, key_len),
			RD_KAFKA_V_VALUE((void *)val, val_len),
			RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			RD_KAFKA_V_END);

		if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
			return 0;
		if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && tries < 300) {
			rd_kafka_poll(a->producer, 100);
			continue;
		}
		if (err == RD_KAFKA_RESP_ERR__FATAL)
			return produce_fatal(a, topic);
		cb_warn(SUB, "produce to %s: %s", topic, rd_kafka_err2str(err));
		return cb_kafka_err(err);
	}
}

static int make_producer(struct cb_agg *a, char *errstr, size_t errstr_size);

/* Everything since the last commit is redone from the committed state. */
static void start_recovery(struct cb_agg *a)
{
	a->need_recovery = true;
	for (int p = 0; p < a->nparts; p++)
		if (a->parts[p].state == PS_ACTIVE)
			part_set_state(&a->parts[p], PS_RECOVERING);
}

/* True when the broker rejected our producer epoch: another process took
 * our transactional.id, or the coordinator aborted a transaction that
 * outlived transaction.timeout.ms and bumped the epoch (KIP-360, Kafka
 * 2.5+); librdkafka 2.0.2 reports both as the fatal _FENCED. */
static bool fenced(rd_kafka_resp_err_t code)
{
	return code == RD_KAFKA_RESP_ERR__FENCED ||
	       code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED;
}

/*
 * Records a fencing at now (ms, monotonic); true when it is the
 * FENCED_MAX-th within FENCED_WINDOW_MS.  A timeout abort happens once per
 * outage; a second process with our transactional.id fences us again each
 * time we replace the producer (and we it), within seconds.
 */
static bool fenced_again(struct cb_agg *a, int64_t now)
{
	a->fenced_at[a->nfenced % FENCED_MAX] = now;
	a->nfenced++;
	return a->nfenced >= FENCED_MAX &&
	       now - a->fenced_at[a->nfenced % FENCED_MAX] < FENCED_WINDOW_MS;
}

/*
 * Whether a fatal producer error (its text in msg) lets the producer be
 * replaced: every one but a fencing that repeats; then msg says why the
 * aggregator stops.
 */
static bool replaceable(struct cb_agg *a, rd_kafka_resp_err_t code,
			char *msg, size_t msg_size)
{
	size_t n = strlen(msg);

	if (!fenced(code))
		return true;
	cb_metric_add(CB_M_agg_producer_fencings_total, 1);
	if (!fenced_again(a, cb_mono_ms())) {
		cb_warn(SUB, "%s: producer epoch rejected (a transaction that "
			     "outlived its timeout was aborted?)",
			msg);
		return true;
	}
	snprintf(msg + n, msg_size - n,
		 " (fenced %d times within %d s: another process uses "
		 "transactional.id %s: give each instance its own "
		 "--instance-id)",
		 FENCED_MAX, FENCED_WINDOW_MS / 1000, a->txn_id);
	return false;
}

/*
 * Destroys the transactional producer (after a fatal error, or at the end):
 * what is queued is purged, and requests in flight (a TxnOffsetCommit or
 * AddPartitionsToTxn after the fatal error of another) get a second at
 * most to finish, because librdkafka 2.0.2 leaks their ops when destroyed
 * under one (LSan in test_agg: first on replacing a fenced producer, then
 * on the stop after the 5th fencing, which went through agg_free).
 */
static void producer_close(struct cb_agg *a)
{
	if (a->producer == NULL)
		return;
	rd_kafka_purge(a->producer,
		       RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	/* At least 100 ms, even with nothing in outq: a transactional
	 * request's answer (AddPartitionsToTxn) is not counted there. */
	for (int i = 0;
	     i < 100 && (i < 10 || rd_kafka_outq_len(a->producer) > 0); i++)
		rd_kafka_poll(a->producer, 10);
	rd_kafka_destroy(a->producer);
	a->producer = NULL;
}

/*
 * A fatal transactional error but a repeated fencing (librdkafka 2.0.2
 * raises e.g. INVALID_TXN_STATE, or _FENCED, when a broker outage outlives
 * the transaction timeout; replaceable()) ends this producer instance, not
 * the aggregator: a new producer
 * with the same transactional.id bumps the epoch, the coordinator aborts
 * what the old one left open, and the open windows are rebuilt from the
 * committed state.  init_transactions waits for the broker (60 s per try)
 * until it answers or chatbattle stops.  Returns 0, or CB_E_FATAL.
 */
static int replace_producer(struct cb_agg *a, const char *why)
{
	char errstr[512];
	int err = CB_E_STOPPED;

	cb_warn(SUB, "%s: replacing the transactional producer", why);
	cb_metric_add(CB_M_agg_transaction_aborts_total, 1);
	producer_close(a);
	a->txn_open = false;
	for (int tries = 0; !atomic_load(&a->stop) && tries < 30; tries++) {
		err = make_producer(a, errstr, sizeof(errstr));
		if (err == 0)
			break;
		cb_warn(SUB, "new transactional producer: %s (retrying)",
			errstr);
		if (a->producer != NULL) {
			rd_kafka_destroy(a->producer);
			a->producer = NULL;
		}
	}
	if (err != 0) {
		fatal(a, "cannot replace the transactional producer");
		return CB_E_FATAL;
	}
	cb_info(SUB, "transactional producer replaced (transactional.id %s)",
		a->txn_id);
	start_recovery(a);
	return 0;
}

/* producev() refused: the producer has a fatal error, which decides. */
static int produce_fatal(struct cb_agg *a, const char *topic)
{
	char msg[512], reason[256];
	rd_kafka_resp_err_t code =
		rd_kafka_fatal_error(a->producer, reason, sizeof(reason));

	snprintf(msg, sizeof(msg), "produce to %s: %s", topic, reason);
	if (!atomic_load(&a->stop) && replaceable(a, code, msg, sizeof(msg)))
		return replace_producer(a, msg) == 0 ? CB_E_AGAIN : CB_E_FATAL;
	fatal(a, msg);
	return CB_E_FATAL;
}

static int txn_begin(struct cb_agg *a)
{
	rd_kafka_error_t *e;

	if (a->txn_open)
		return 0;
	e = rd_kafka_begin_transaction(a->producer);
	if (e != NULL) {
		char why[512];
		bool replace;

		snprintf(why, sizeof(why), "begin transaction: %s",
			 rd_kafka_error_string(e));
		replace = rd_kafka_error_is_fatal(e) &&
			  replaceable(a, rd_kafka_error_code(e), why,
				      sizeof(why));
		rd_kafka_error_destroy(e);
		if (replace)
			return replace_producer(a, why) == 0 ? CB_E_AGAIN
							     : CB_E_FATAL;
		fatal(a, why);
		return CB_E_FATAL;
	}
	a->txn_open = true;
	return 0;
}

/* ---- dead letters ---- */

static int dead_letter(struct cb_agg *a, int p, const struct pend *e)
{
	const char *s = (const char *)(e + 1);
	const char *ch = s;
	const char *reason = s + e->channel_len;
	const uint8_t *raw = (const uint8_t *)reason + e->reason_len;
	struct cb_jw *j = &a->dlq;
	int err = txn_begin(a);

	if (err != 0)
		return err;
	cb_jw_reset(j);
	cb_jw_open(j, '{');
	cb_jw_key(j, "reason");
	cb_jw_str(j, reason, e->reason_len);
	cb_jw_key(j, "stage");
	CB_JW_STR_LIT(j, "aggregator");
	cb_jw_key(j, "topic");
	cb_jw_str(j, a->cfg->topic_messages, strlen(a->cfg->topic_messages));
	cb_jw_key(j, "partition");
	cb_jw_int(j, p);
	cb_jw_key(j, "offset");
	cb_jw_int(j, e->offset);
	if (cb_json_utf8_valid((const char *)raw, e->blob_len)) {
		cb_jw_key(j, "raw");
		cb_jw_str(j, (const char *)raw, e->blob_len);
	} else {
		cb_jw_key(j, "raw_base64");
		cb_jw_base64(j, raw, e->blob_len);
	}
	if (e->raw_total > e->blob_len) {
		cb_jw_key(j, "raw_truncated");
		cb_jw_bool(j, true);
		cb_jw_key(j, "raw_length");
		cb_jw_int(j, e->raw_total);
	}
	cb_jw_key(j, "received_at");
	cb_jw_int(j, cb_wall_ms());
	cb_jw_close(j, '}');
	if (j->oom)
		return CB_E_NOMEM;
	cb_metric_add(CB_M_agg_bad_records_total, 1);
	return produce(a, a->cfg->topic_dlq, RD_KAFKA_PARTITION_UA,
		       e->channel_len ? ch : NULL, e->channel_len, j->buf,
		       j->len);
}

/* ---- applying acknowledged records ---- */

static int apply_entry(struct cb_agg *a, int p, const struct pend *e)
{
	struct part *pt = &a->parts[p];
	const char *s = (const char *)(e + 1);
	struct cb_win_rec r = {0};
	int rc;

	if (e->kind == PK_BAD)
		return dead_letter(a, p, e);
	r.channel = s;
	r.channel_len = e->channel_len;
	r.ts_ms = e->ts_ms;
	r.received_at_ms = e->received_at_ms;
	r.event = e->kind == PK_EVENT ? e->event : CB_EV_MESSAGE;
	r.user = s + e->channel_len;
	r.user_len = e->user_len;
	r.username = r.user + e->user_len;
	r.username_len = e->username_len;
	r.emotes = (const uint8_t *)r.username + e->username_len;
	r.emote_count = e->emote_count;
	r.emotes_len = e->blob_len;
	r.mood_milli = e->mood_milli;
	rc = cb_winset_apply(pt->ws, &r);
	if (rc == CB_WIN_LATE)
		cb_metric_add(CB_M_agg_late_records_total, 1);
	else if (rc == CB_WIN_APPLIED && e->kind == PK_MSG)
		cb_metric_add(CB_M_agg_counted_total, 1);
	return rc < 0 ? rc : 0;
}

/* Applies the FIFO head of p while it is acknowledged (or needs no ack). */
static int apply_ready(struct cb_agg *a, int p)
{
	struct part *pt = &a->parts[p];

	while (pt->state == PS_ACTIVE && pt->tail != pt->head) {
		struct pend *e =
			(struct pend *)(pt->fifo + pt->tail % PEND_CAP);
		int err;

		if (e->kind == PK_PAD) {
			pt->tail += e->len;
			continue;
		}
		if (e->has_row && e->offset > pt->acked)
			break;
		err = apply_entry(a, p, e);
		/* the transaction was aborted (or its producer replaced):
		 * this partition is redone from the committed state */
		if (err == CB_E_AGAIN && a->need_recovery)
			return 0;
		if (err != 0)
			return err;
		pt->applied_next = e->offset + 1;
		pt->tail += e->len;
	}
	if (pt->paused && !a->rows_paused && fifo_used(pt) < PEND_CAP / 2)
		pause_one(a, p, false);
	return 0;
}

static int drain_acks(struct cb_agg *a)
{
	struct cb_ring *r = a->app->acks;
	const void *rec;
	uint32_t len;
	bool any = false;

	while ((rec = cb_ring_read(r, &len)) != NULL) {
		struct cb_ack ack;

		if (len < sizeof(ack))
			continue;
		memcpy(&ack, rec, sizeof(ack));
		if (ack.partition >= 0 && ack.partition < a->nparts) {
			struct part *pt = &a->parts[ack.partition];

			if (pt->state == PS_ACTIVE &&
			    ack.generation == pt->gen &&
			    ack.offset > pt->acked)
				pt->acked = ack.offset;
		}
		any = true;
	}
	if (!any)
		return 0;
	cb_ring_release(r);
	for (int p = 0; p < a->nparts; p++) {
		int err = apply_ready(a, p);

		if (err != 0)
			return err;
	}
	return 0;
}

/* ---- consuming ---- */

static size_t round8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* Queues a record that cannot become a window update: the dead letter. */
static int queue_bad(struct cb_agg *a, int p, const rd_kafka_message_t *m,
		     const char *channel, size_t channel_len, const char *why)
{
	struct part *pt = &a->parts[p];
	size_t reason_len = strlen(why);
	size_t raw = m->len < DLQ_RAW_MAX ? m->len : DLQ_RAW_MAX;
	uint32_t len = (uint32_t)round8(sizeof(struct pend) + channel_len +
					reason_len + raw);
	struct pend *e = fifo_reserve(pt, len);
	char *d;

	if (e == NULL)
		return CB_E_FULL;
	memset(e, 0, sizeof(*e));
	e->len = len;
	e->kind = PK_BAD;
	e->channel_len = (uint8_t)channel_len;
	e->reason_len = (uint16_t)reason_len;
	e->blob_len = (uint32_t)raw;
	e->raw_total = (uint32_t)(m->len > UINT32_MAX ? UINT32_MAX : m->len);
	e->offset = m->offset;
	d = (char *)(e + 1);
	memcpy(d, channel, channel_len);
	memcpy(d + channel_len, why, reason_len);
	memcpy(d + channel_len + reason_len, m->payload, raw);
	pt->head += len;
	return 0;
}

/* Pushes the Cassandra row of a chat message into the rows ring. */
static int push_row(struct cb_agg *a, int p, int64_t offset,
		    const struct cb_aggjson_msg *cm, const char *channel,
		    size_t channel_len, int64_t ts)
{
	struct cb_row_hdr h = {0};
	uint32_t len;
	uint8_t *d;

	h.partition = p;
	h.generation = a->parts[p].gen;
	h.offset = offset;
	h.timestamp_ms = ts;
	if (cm->message_id.p == NULL ||
	    !cb_chatmsg_parse_uuid(cm->message_id.p, cm->message_id.len,
				   h.message_id)) {
		const struct cb_jstr *user =
			cm->user_id.p ? &cm->user_id : &cm->username;

		/* The same id the IRC reader derives (chatmsg.h). */
		cb_chatmsg_derive_uuid(channel, channel_len, ts, user->p,
				       user->len, cm->message.p,
				       cm->message.len, h.message_id);
	}
	h.channel_len = (uint16_t)channel_len;
	h.user_id_len = (uint16_t)cm->user_id.len;
	h.username_len = (uint16_t)cm->username.len;
	h.emote_count = cm->emote_count;
	h.message_len = (uint32_t)cm->message.len;
	h.emotes_len = cm->emotes_len;
	len = (uint32_t)(sizeof(h) + channel_len + cm->user_id.len +
			 cm->username.len + cm->message.len + cm->emotes_len);
	if (len > a->row_max)
		return CB_E_TOOBIG;
	while ((d = cb_ring_reserve(a->app->rows, len)) == NULL) {
		/* Only when the pause below came too late: wait for the
		 * writer, still taking its acks so that it never blocks. */
		cb_ring_commit(a->app->rows);
		if (atomic_load(&a->stop))
			return CB_E_STOPPED;
		if (drain_acks(a) != 0)
			return CB_E_NOMEM;
		cb_ring_wait_space(a->app->rows, len, 50);
	}
	memcpy(d, &h, sizeof(h));
	d += sizeof(h);
	memcpy(d, channel, channel_len);
	d += channel_len;
	if (cm->user_id.len)
		memcpy(d, cm->user_id.p, cm->user_id.len);
	d += cm->user_id.len;
	if (cm->username.len)
		memcpy(d, cm->username.p, cm->username.len);
	d += cm->username.len;
	if (cm->message.len)
		memcpy(d, cm->message.p, cm->message.len);
	d += cm->message.len;
	if (cm->emotes_len)
		memcpy(d, cm->emotes, cm->emotes_len);
	return 0;
}

static bool str_fits(const struct cb_jstr *s)
{
	return s->len <= UINT16_MAX;
}

/* Handles one consumed record of an active partition. */
static int consume_one(struct cb_agg *a, const rd_kafka_message_t *m)
{
	int p = m->partition;
	struct part *pt = &a->parts[p];
	struct cb_aggjson_msg cm;
	char why[256], channel[CB_CHANNEL_MAX + 1];
	size_t channel_len = 0;
	int64_t ts;
	int event;
	const struct cb_jstr *user;
	uint32_t len;
	struct pend *e;
	char *d;
	int err;

	cb_metric_add(CB_M_agg_consumed_total, 1);
	channel[0] = '\0';
	if (m->len > INPUT_MAX) {
		snprintf(why, sizeof(why), "record of %zu bytes is too large",
			 m->len);
		goto bad;
	}
	if (cb_aggjson_parse(m->payload, m->len, &cm, a->scratch, INPUT_MAX,
			     why, sizeof(why)) != 0)
		goto bad;
	if (cm.channel_id.p != NULL) {
		if (cb_channel_normalize(cm.channel_id.p, cm.channel_id.len,
					 channel, why, sizeof(why)) != 0)
			goto bad;
	} else if (m->key_len > 0 &&
		   cb_channel_normalize(m->key, m->key_len, channel, NULL,
					0) == 0) {
		/* An original producer without channel_id: the key. */
	} else {
		snprintf(why, sizeof(why), "no channel_id");
		goto bad;
	}
	channel_len = strlen(channel);
	if (cm.has_timestamp) {
		ts = cm.timestamp_ms;
	} else {
		rd_kafka_timestamp_type_t tt;

		ts = rd_kafka_message_timestamp(m, &tt);
		if (tt == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE)
			ts = -1;
	}
	if (ts < 0) {
		snprintf(why, sizeof(why),
			 cm.has_timestamp ? "timestamp is negative"
					  : "no timestamp");
		goto bad;
	}
	if (!str_fits(&cm.user_id) || !str_fits(&cm.username) ||
	    cm.message.len > UINT32_MAX / 2) {
		snprintf(why, sizeof(why), "field too long");
		goto bad;
	}
	event = cb_window_event_type(cm.type.p, cm.type.len);
	user = cm.user_id.p ? &cm.user_id : &cm.username;
	len = (uint32_t)round8(sizeof(struct pend) + channel_len + user->len +
			       cm.username.len +
			       (event == CB_EV_MESSAGE ? cm.emotes_len : 0));
	if (len > PEND_MAX_ENTRY) {
		snprintf(why, sizeof(why), "record too large to count");
		goto bad;
	}
	/* The FIFO space first: a row is only pushed for a record that is
	 * queued (its entry becomes visible when head moves, below). */
	e = fifo_reserve(pt, len);
	if (e == NULL)
		return CB_E_FULL;
	if (event == CB_EV_MESSAGE) {
		err = push_row(a, p, m->offset, &cm, channel, channel_len, ts);
		if (err == CB_E_TOOBIG) {
			snprintf(why, sizeof(why),
				 "message too large for a Cassandra row");
			goto bad;
		}
		if (err != 0)
			return err;
	}
	memset(e, 0, sizeof(*e));
	e->len = len;
	e->kind = event == CB_EV_MESSAGE ? PK_MSG : PK_EVENT;
	e->event = (int8_t)(event == CB_EV_MESSAGE ? 0 : event);
	e->channel_len = (uint8_t)channel_len;
	e->has_row = event == CB_EV_MESSAGE;
	e->user_len = (uint16_t)user->len;
	e->username_len = (uint16_t)cm.username.len;
	e->offset = m->offset;
	e->ts_ms = ts;
	e->received_at_ms = cm.received_at_ms;
	d = (char *)(e + 1);
	memcpy(d, channel, channel_len);
	d += channel_len;
	if (user->len)
		memcpy(d, user->p, user->len);
	d += user->len;
	if (cm.username.len)
		memcpy(d, cm.username.p, cm.username.len);
	d += cm.username.len;
	if (event == CB_EV_MESSAGE) {
		e->emote_count = cm.emote_count;
		e->blob_len = cm.emotes_len;
		/* Scored here, while the decoded text is at hand: the FIFO
		 * keeps only the score, a pure function of the text, so a
		 * replay after a restart adds the same number. */
		e->mood_milli = cb_sentiment_score(cm.message.p,
						   cm.message.len);
		if (cm.emotes_len)
			memcpy(d, cm.emotes, cm.emotes_len);
	}
	pt->head += len;
	return 0;
bad:
	cb_debug(SUB, "%s [%d] offset %" PRId64 ": %s", a->cfg->topic_messages,
		 p, m->offset, why);
	return queue_bad(a, p, m, channel, channel_len, why);
}

/* ---- transactions ---- */

struct emit_ctx {
	struct cb_agg *a;
	int partition;
};

/* ChannelStats go to the partition of their input explicitly (the same one
 * murmur2 of the key gives for keyed input), so that recovery finds them. */
static int emit_cb(void *arg, const char *channel, size_t channel_len,
		   const char *json, size_t json_len)
{
	struct emit_ctx *x = arg;
	struct cb_agg *a = x->a;
	int err = produce(a, a->cfg->topic_stats, x->partition, channel,
			  channel_len, json, json_len);

	if (err == 0)
		cb_metric_add(CB_M_agg_stats_emitted_total, 1);
	return err;
}

/* Aborts the open transaction; the caller rebuilds the partitions. */
static void txn_abort(struct cb_agg *a, const char *why)
{
	rd_kafka_error_t *e;

	cb_warn(SUB, "aborting transaction: %s; rebuilding from the committed "
		     "state",
		why);
	cb_metric_add(CB_M_agg_transaction_aborts_total, 1);
	for (int tries = 0; a->txn_open; tries++) {
		e = rd_kafka_abort_transaction(a->producer, TXN_TIMEOUT_MS);
		if (e == NULL) {
			a->txn_open = false;
			break;
		}
		if (rd_kafka_error_is_retriable(e) && tries < 10 &&
		    !atomic_load(&a->stop)) {
			rd_kafka_error_destroy(e);
			continue;
		}
		char msg[512];
		bool replace;

		snprintf(msg, sizeof(msg), "abort transaction: %s",
			 rd_kafka_error_string(e));
		replace = !atomic_load(&a->stop) && !a->fatal &&
			  replaceable(a, rd_kafka_error_code(e), msg,
				      sizeof(msg));
		rd_kafka_error_destroy(e);
		if (replace)
			replace_producer(a, msg);
		else
			fatal(a, msg);
		return;
	}
	start_recovery(a);
}

/* Handles a transactional API error: 0 to retry, else the error. */
static int txn_error(struct cb_agg *a, rd_kafka_error_t *e, const char *what,
		     int tries)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "%s: %s", what, rd_kafka_error_string(e));
	if (rd_kafka_error_txn_requires_abort(e)) {
		rd_kafka_error_destroy(e);
		txn_abort(a, msg);
		return CB_E_AGAIN;
	}
	if (rd_kafka_error_is_retriable(e) && !rd_kafka_error_is_fatal(e) &&
	    tries < 20 && !atomic_load(&a->stop)) {
		cb_warn(SUB, "%s (retrying)", msg);
		rd_kafka_error_destroy(e);
		return 0;
	}
	if (rd_kafka_error_is_fatal(e) && !atomic_load(&a->stop) &&
	    replaceable(a, rd_kafka_error_code(e), msg, sizeof(msg))) {
		rd_kafka_error_destroy(e);
		return replace_producer(a, msg) == 0 ? CB_E_AGAIN : CB_E_FATAL;
	}
	rd_kafka_error_destroy(e);
	fatal(a, msg);
	return CB_E_FATAL;
}

/*
 * The commit: ChannelStats of every changed channel, the offsets after the
 * last applied record of every partition that moved, one transaction.
 */
static int commit(struct cb_agg *a)
{
	rd_kafka_topic_partition_list_t *offsets;
	rd_kafka_consumer_group_metadata_t *cgmd;
	rd_kafka_error_t *e;
	int64_t now = cb_wall_ms();
	uint64_t t0 = cb_mono_ns();
	int err = 0, tries;
	bool any = a->txn_open;

	for (int p = 0; p < a->nparts; p++) {
		struct part *pt = &a->parts[p];

		if (pt->state == PS_ACTIVE &&
		    (cb_winset_dirty(pt->ws) > 0 ||
		     pt->applied_next > pt->committed))
			any = true;
	}
	if (!any || a->fatal)
		return 0;
	if ((err = txn_begin(a)) != 0)
		return err;
	offsets = rd_kafka_topic_partition_list_new(a->nparts);
	for (int p = 0; p < a->nparts && err == 0; p++) {
		struct part *pt = &a->parts[p];
		struct emit_ctx x = {a, p};

		if (pt->state != PS_ACTIVE)
			continue;
		err = cb_winset_emit(pt->ws, now, emit_cb, &x);
		if (pt->applied_next > pt->committed)
			rd_kafka_topic_partition_list_add(
				offsets, a->cfg->topic_messages, p)
				->offset = pt->applied_next;
	}
	if (err != 0) {
		rd_kafka_topic_partition_list_destroy(offsets);
		txn_abort(a, "producing ChannelStats failed");
		return err;
	}
	if (offsets->cnt > 0) {
		cgmd = rd_kafka_consumer_group_metadata(a->consumer);
		for (tries = 0;; tries++) {
			e = rd_kafka_send_offsets_to_transaction(
				a->producer, offsets, cgmd, TXN_TIMEOUT_MS);
			if (e == NULL ||
			    (err = txn_error(a, e, "send offsets", tries)) != 0)
				break;
		}
		rd_kafka_consumer_group_metadata_destroy(cgmd);
		if (err != 0) {
			rd_kafka_topic_partition_list_destroy(offsets);
			return err;
		}
	}
	for (tries = 0;; tries++) {
		e = rd_kafka_commit_transaction(a->producer, TXN_TIMEOUT_MS);
		if (e == NULL ||
		    (err = txn_error(a, e, "commit transaction", tries)) != 0)
			break;
	}
	if (err == 0) {
		cb_metric_observe_us(CB_M_agg_commit_latency_us,
				     (cb_mono_ns() - t0) / 1000);
		a->txn_open = false;
		for (int i = 0; i < offsets->cnt; i++)
			a->parts[offsets->elems[i].partition].committed =
				offsets->elems[i].offset;
		cb_metric_add(CB_M_agg_transactions_total, 1);
		cb_health_set(CB_DEP_KAFKA, CB_DEP_UP);
	}
	rd_kafka_topic_partition_list_destroy(offsets);
	return err;
}

/* ---- recovery ---- */

struct saved {
	int32_t partition;
	char channel[CB_CHANNEL_MAX + 1];
	char *state;
	size_t len;
};

/* Keeps the newest state per (partition, channel). */
static int save_state(struct saved **v, size_t *n, size_t *cap, int32_t p,
		      const char *ch, const char *state, size_t len)
{
	struct saved *s = NULL;
	char *copy;

	for (size_t i = 0; i < *n; i++)
		if ((*v)[i].partition == p && strcmp((*v)[i].channel, ch) == 0)
			s = &(*v)[i];
	if (s == NULL) {
		if (*n == *cap) {
			size_t nc = *cap ? *cap * 2 : 64;
			struct saved *nv = realloc(*v, nc * sizeof(*nv));

			if (nv == NULL)
				return CB_E_NOMEM;
			*v = nv;
			*cap = nc;
		}
		s = &(*v)[(*n)++];
		memset(s, 0, sizeof(*s));
		s->partition = p;
		snprintf(s->channel, sizeof(s->channel), "%s", ch);
	}
	copy = malloc(len + 1);
	if (copy == NULL)
		return CB_E_NOMEM;
	memcpy(copy, state, len);
	copy[len] = '\0';
	free(s->state);
	s->state = copy;
	s->len = len;
	return 0;
}

/*
 * Reads topic_stats partitions of l (read_committed, from the start to the
 * last stable offset) and restores their channels into fresh winsets.
 */
static int read_stats(struct cb_agg *a, rd_kafka_topic_partition_list_t *l,
		      char *errstr, size_t errstr_size)
{
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *rk = NULL;
	rd_kafka_topic_partition_list_t *tl = NULL;
	struct saved *v = NULL;
	size_t n = 0, cap = 0, records = 0;
	bool eof[CB_PARTITIONS_MAX] = {false};
	int left = l->cnt, err;
	int64_t deadline = cb_mono_ms() + 120000, next_log = cb_mono_ms() + 5000;

	err = cb_agg_kafka_conf(a->cfg, CB_AGG_RESTORE, &conf, errstr,
				errstr_size);
	if (err != 0)
		goto out;
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
	if (rk == NULL) {
		err = CB_E_KAFKA;
		goto out;
	}
	conf = NULL;
	rd_kafka_poll_set_consumer(rk);
	tl = rd_kafka_topic_partition_list_new(l->cnt);
	for (int i = 0; i < l->cnt; i++)
		rd_kafka_topic_partition_list_add(tl, a->cfg->topic_stats,
						  l->elems[i].partition)
			->offset = RD_KAFKA_OFFSET_BEGINNING;
	if (rd_kafka_assign(rk, tl) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		err = cb_seterr(errstr, errstr_size, CB_E_KAFKA,
				"cannot assign %s", a->cfg->topic_stats);
		goto out;
	}
	while (left > 0) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
		json_t *doc, *st, *cid;

		if (cb_mono_ms() > deadline || atomic_load(&a->stop)) {
			err = cb_seterr(errstr, errstr_size, CB_E_TIMEOUT,
					"reading %s took too long (%zu "
					"records read)",
					a->cfg->topic_stats, records);
			goto out;
		}
		if (cb_mono_ms() > next_log) {
			cb_info(SUB, "restoring from %s: %zu records so far",
				a->cfg->topic_stats, records);
			next_log = cb_mono_ms() + 5000;
		}
		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			if (m->partition >= 0 && m->partition < CB_PARTITIONS_MAX &&
			    !eof[m->partition]) {
				eof[m->partition] = true;
				left--;
			}
			rd_kafka_message_destroy(m);
			continue;
		}
		if (m->err) {
			cb_warn(SUB, "restoring from %s: %s",
				a->cfg->topic_stats, rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			continue;
		}
		records++;
		doc = json_loadb(m->payload, m->len, 0, NULL);
		st = json_object_get(doc, "state");
		cid = json_object_get(doc, "channel_id");
		if (json_is_string(st) && json_is_string(cid) &&
		    json_string_length(cid) <= CB_CHANNEL_MAX)
			err = save_state(&v, &n, &cap, m->partition,
					 json_string_value(cid),
					 json_string_value(st),
					 json_string_length(st));
		json_decref(doc);
		rd_kafka_message_destroy(m);
		if (err != 0) {
			cb_seterr(errstr, errstr_size, err, "out of memory");
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct part *pt = &a->parts[v[i].partition];
		char why[256];
		int rc;

		if (pt->ws == NULL)
			continue;
		rc = cb_winset_restore(pt->ws, v[i].channel,
				       strlen(v[i].channel), v[i].state,
				       v[i].len, why, sizeof(why));
		if (rc == CB_E_NOMEM) {
			err = cb_seterr(errstr, errstr_size, rc,
					"out of memory");
			goto out;
		}
		if (rc != 0)
			cb_warn(SUB, "restoring %s: %s", v[i].channel, why);
	}
	for (int i = 0; i < l->cnt; i++) {
		struct part *pt = &a->parts[l->elems[i].partition];

		if (pt->ws != NULL)
			cb_winset_restore_done(pt->ws);
	}
	cb_info(SUB, "restored %zu channel(s) of %d partition(s) from %zu "
		     "%s record(s)",
		n, l->cnt, records, a->cfg->topic_stats);
out:
	for (size_t i = 0; i < n; i++)
		free(v[i].state);
	free(v);
	if (tl)
		rd_kafka_topic_partition_list_destroy(tl);
	if (rk) {
		rd_kafka_consumer_close(rk);
		rd_kafka_destroy(rk);
	}
	if (conf)
		rd_kafka_conf_destroy(conf);
	return err;
}

/*
 * Brings every PS_RECOVERING partition to PS_ACTIVE: committed offsets
 * first (stable: waits out a previous owner's open transaction), then the
 * windows from topic_stats, then a seek and resume.
 */
static int recover(struct cb_agg *a)
{
	rd_kafka_topic_partition_list_t *l = plist_of(a, PS_RECOVERING);
	rd_kafka_resp_err_t kerr;
	rd_kafka_error_t *e;
	char errstr[512];
	int err = 0;

	a->need_recovery = false;
	if (l->cnt == 0)
		goto out;
	pause_parts(a, l, true);
	for (int i = 0; i < l->cnt; i++) {
		int p = l->elems[i].partition;
		struct part *pt = &a->parts[p];

		part_drop(a, p);
		part_set_state(pt, PS_RECOVERING);
		pt->paused = true;
		pt->gen = ++a->gen_counter;
		err = cb_winset_new(&pt->ws, &a->wcfg, errstr, sizeof(errstr));
		if (err != 0)
			goto fail;
	}
	for (int tries = 0;; tries++) {
		kerr = rd_kafka_committed(a->consumer, l, 30000);
		for (int i = 0; kerr == RD_KAFKA_RESP_ERR_NO_ERROR && i < l->cnt;
		     i++)
			kerr = l->elems[i].err;
		if (kerr == RD_KAFKA_RESP_ERR_NO_ERROR)
			break;
		if (tries >= 10 || atomic_load(&a->stop)) {
			snprintf(errstr, sizeof(errstr),
				 "committed offsets of %s: %s",
				 a->cfg->topic_messages, rd_kafka_err2str(kerr));
			err = CB_E_KAFKA;
			goto fail;
		}
		cb_warn(SUB, "committed offsets: %s (retrying)",
			rd_kafka_err2str(kerr));
	}
	err = read_stats(a, l, errstr, sizeof(errstr));
	if (err != 0)
		goto fail;
	for (int i = 0; i < l->cnt; i++) {
		struct part *pt = &a->parts[l->elems[i].partition];

		if (l->elems[i].offset < 0) {
			/* Nothing committed: the start of the partition, as an
			 * absolute offset (a logical one would be resolved
			 * later, after librdkafka may already have resumed from
			 * its own position). */
			int64_t lo = 0, hi = 0;

			kerr = rd_kafka_query_watermark_offsets(
				a->consumer, a->cfg->topic_messages,
				l->elems[i].partition, &lo, &hi, 30000);
			if (kerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
				snprintf(errstr, sizeof(errstr),
					 "start offset of %s [%d]: %s",
					 a->cfg->topic_messages,
					 l->elems[i].partition,
					 rd_kafka_err2str(kerr));
				err = CB_E_KAFKA;
				goto fail;
			}
			l->elems[i].offset = lo;
		} else {
			pt->committed = l->elems[i].offset;
		}
		pt->pos = l->elems[i].offset;
		part_set_state(pt, PS_ACTIVE);
		cb_info(SUB, "%s [%d] active from offset %" PRId64
			     " (generation %u, %zu channel(s))",
			a->cfg->topic_messages, l->elems[i].partition,
			l->elems[i].offset, pt->gen,
			cb_winset_channels(pt->ws));
	}
	e = rd_kafka_seek_partitions(a->consumer, l, SEEK_WAIT);
	if (e != NULL) {
		snprintf(errstr, sizeof(errstr), "seek: %s",
			 rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
		err = CB_E_KAFKA;
		goto fail;
	}
	pause_parts(a, l, false);
	for (int i = 0; i < l->cnt; i++)
		a->parts[l->elems[i].partition].paused = false;
	goto out;
fail:
	if (atomic_load(&a->stop))
		err = CB_E_STOPPED; /* not a failure: we were asked to stop */
	else
		fatal(a, errstr);
out:
	rd_kafka_topic_partition_list_destroy(l);
	return err;
}

/* ---- rebalancing ---- */

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct cb_agg *a = opaque;
	bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	rd_kafka_error_t *e = NULL;
	int n = 0;

	cb_metric_add(CB_M_agg_rebalances_total, 1);
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		for (int i = 0; i < parts->cnt; i++) {
			int p = parts->elems[i].partition;

			if (p < 0 || p >= a->nparts)
				continue;
			part_set_state(&a->parts[p], PS_RECOVERING);
			a->need_recovery = true;
		}
		cb_info(SUB, "assigned %d partition(s) of %s", parts->cnt,
			a->cfg->topic_messages);
		if (coop)
			e = rd_kafka_incremental_assign(rk, parts);
		else
			rd_kafka_assign(rk, parts);
		/* Nothing is consumed before the windows are rebuilt. */
		rd_kafka_pause_partitions(rk, parts);
		for (int i = 0; i < parts->cnt; i++)
			if (parts->elems[i].partition < a->nparts)
				a->parts[parts->elems[i].partition].paused =
					true;
	} else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
		if (rd_kafka_assignment_lost(rk)) {
			cb_warn(SUB, "assignment lost: dropping uncommitted "
				     "work");
			if (a->txn_open)
				txn_abort(a, "assignment lost");
		} else {
			/* Commit what is applied before the partitions go:
			 * the next owner starts exactly there. */
			commit(a);
		}
		for (int i = 0; i < parts->cnt; i++) {
			int p = parts->elems[i].partition;

			if (p >= 0 && p < a->nparts)
				part_drop(a, p);
		}
		cb_info(SUB, "revoked %d partition(s) of %s", parts->cnt,
			a->cfg->topic_messages);
		if (coop)
			e = rd_kafka_incremental_unassign(rk, parts);
		else
			rd_kafka_assign(rk, NULL);
	} else {
		cb_error(SUB, "rebalance: %s", rd_kafka_err2str(err));
		rd_kafka_assign(rk, NULL);
	}
	if (e != NULL) {
		char why[512];

		snprintf(why, sizeof(why), "rebalance: %s",
			 rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
		fatal(a, why);
	}
	for (int p = 0; p < a->nparts; p++)
		n += a->parts[p].state != PS_NONE;
	cb_metric_set(CB_M_agg_partitions_assigned, (uint64_t)n);
}

/* ---- the thread ---- */

static bool rows_short(const struct cb_agg *a)
{
	struct cb_ring_stats st;

	cb_ring_stats(a->app->rows, &st);
	return st.capacity - st.used < 2 * (uint64_t)a->row_max;
}

static bool fifo_high(const struct part *pt)
{
	return fifo_used(pt) > PEND_CAP - 2 * PEND_MAX_ENTRY;
}

/*
 * Back-pressure, first step: while the rows ring is short of space for one
 * more record, or an active partition's FIFO is nearly full, the loop holds
 * - it stops taking records and only drains acks.  Records wait in
 * librdkafka's bounded fetch queue; nothing is fetched twice.  Returns
 * true while holding.  A hold longer than HOLD_MAX_MS (Cassandra slow or
 * down) turns into pauses: the full partitions, or all of them for the
 * rows ring, so that the others go on and the consumer keeps serving
 * group events; a pause makes librdkafka drop what it had fetched.
 */
static bool hold(struct cb_agg *a)
{
	int64_t now = cb_mono_ms();
	bool rows = !a->rows_paused && rows_short(a), any = rows;

	for (int p = 0; p < a->nparts && !any; p++)
		if (a->parts[p].state == PS_ACTIVE && !a->parts[p].paused &&
		    fifo_high(&a->parts[p]))
			any = true;
	if (!any) {
		a->hold_since_ms = 0;
		return false;
	}
	if (a->hold_since_ms == 0) {
		a->hold_since_ms = now;
		cb_metric_add(CB_M_agg_holds_total, 1);
	}
	if (now - a->hold_since_ms < HOLD_MAX_MS)
		return true;
	a->hold_since_ms = 0;
	for (int p = 0; p < a->nparts; p++)
		if (a->parts[p].state == PS_ACTIVE && !a->parts[p].paused &&
		    (rows || fifo_high(&a->parts[p]))) {
			pause_one(a, p, true);
			cb_metric_add(CB_M_agg_pauses_total, 1);
		}
	if (rows)
		a->rows_paused = true;
	return false;
}

/* Resumes the partitions paused for the rows ring once it has drained to
 * half. */
static void rows_backpressure(struct cb_agg *a)
{
	struct cb_ring_stats st;

	cb_ring_stats(a->app->rows, &st);
	if (a->rows_paused && st.capacity - st.used >= st.capacity / 2) {
		a->rows_paused = false;
		for (int p = 0; p < a->nparts; p++)
			if (a->parts[p].state == PS_ACTIVE &&
			    fifo_used(&a->parts[p]) < PEND_CAP / 2)
				pause_one(a, p, false);
	}
}

static bool anything_pending(const struct cb_agg *a)
{
	for (int p = 0; p < a->nparts; p++)
		if (a->parts[p].state == PS_ACTIVE &&
		    a->parts[p].head != a->parts[p].tail)
			return true;
	return false;
}

static void handle_message(struct cb_agg *a, rd_kafka_message_t *m)
{
	int p = m->partition;
	int err;

	if (m->err) {
		if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			cb_warn(SUB, "consumer: %s", rd_kafka_message_errstr(m));
		if (m->err == RD_KAFKA_RESP_ERR__FATAL)
			fatal(a, "consumer: fatal error");
		return;
	}
	/* A record of a partition that is not (or no longer) active is
	 * fetched again after its recovery's seek. */
	if (p < 0 || p >= a->nparts || a->parts[p].state != PS_ACTIVE)
		return;
	err = consume_one(a, m);
	if (err == 0)
		a->parts[p].pos = m->offset + 1;
	if (err == CB_E_FULL) {
		/* The pause came too late for this one: fetch it again. */
		rd_kafka_topic_partition_list_t *l =
			rd_kafka_topic_partition_list_new(1);
		rd_kafka_error_t *e;

		rd_kafka_topic_partition_list_add(l, a->cfg->topic_messages, p)
			->offset = m->offset;
		pause_one(a, p, true);
		cb_metric_add(CB_M_agg_pauses_total, 1);
		a->parts[p].pos = m->offset;
		e = rd_kafka_seek_partitions(a->consumer, l, SEEK_WAIT);
		if (e != NULL) {
			rd_kafka_error_destroy(e);
			fatal(a, "seek after a full queue failed");
		}
		rd_kafka_topic_partition_list_destroy(l);
		cb_warn(SUB, "[%d] queue full at offset %" PRId64
			     ": fetching again",
			p, m->offset);
		return;
	}
	if (err != 0 && err != CB_E_STOPPED) {
		fatal(a, cb_strerror(err));
		return;
	}
	/* Nothing waits for an ack ahead of it: apply now. */
	if (apply_ready(a, p) != 0)
		fatal(a, "applying records failed");
}

/* Debug level: one line per partition, once a second. */
static void debug_state(const struct cb_agg *a)
{
	for (int p = 0; p < a->nparts; p++) {
		const struct part *pt = &a->parts[p];

		if (pt->state == PS_NONE)
			continue;
		cb_debug(SUB,
			 "[%d] state %d%s gen %u acked %" PRId64
			 " applied %" PRId64 " committed %" PRId64
			 " pos %" PRId64 " queued %zu bytes",
			 p, pt->state, pt->paused ? " paused" : "", pt->gen,
			 pt->acked, pt->applied_next, pt->committed, pt->pos,
			 fifo_used(pt));
	}
}

/*
 * librdkafka 2.0.2 stops fetching a partition while its fetch queue is over
 * queued.max.messages.kbytes and looks again only when some operation wakes
 * its broker thread, or after up to a second: every time the aggregator
 * falls that far behind (a slow transaction commit, Cassandra back-pressure)
 * the pipeline would stand still for most of a second.  (Later librdkafka
 * versions have fetch.queue.backoff.ms for this.)  So when the queue has
 * been empty for NUDGE_IDLE_MS although a partition is known to have more
 * (its cached high watermark is past our position), or after a streak long
 * enough to have reached the limit, the aggregator seeks every active
 * partition to its own position: an asynchronous operation that wakes the
 * broker thread, which fetches from exactly where we are.  Nothing is lost
 * or taken twice: the seek is to the offset after the last record taken.
 */
static bool nudgeable(const struct part *pt)
{
	return pt->state == PS_ACTIVE && !pt->paused && pt->pos >= 0;
}

static void nudge_fetch(struct cb_agg *a, bool queue_empty)
{
	int64_t now = cb_mono_ms();
	bool lag = false;
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_error_t *e;

	if (!queue_empty) {
		a->empty_since_ms = 0;
		return;
	}
	if (a->empty_since_ms == 0) {
		a->empty_since_ms = now;
		if (a->streak_bytes >= (uint64_t)FETCHQ_KBYTES * 1024 / 2)
			a->suspect_stall = true;
		a->streak_bytes = 0;
	}
	if (now - a->empty_since_ms < NUDGE_IDLE_MS ||
	    now - a->last_nudge_ms < NUDGE_EVERY_MS)
		return;
	for (int p = 0; p < a->nparts && !lag && !a->suspect_stall; p++) {
		int64_t lo, hi;

		lag = nudgeable(&a->parts[p]) &&
		      rd_kafka_get_watermark_offsets(
			      a->consumer, a->cfg->topic_messages, p, &lo,
			      &hi) == RD_KAFKA_RESP_ERR_NO_ERROR &&
		      hi > a->parts[p].pos;
	}
	if (!lag && !a->suspect_stall)
		return;
	l = rd_kafka_topic_partition_list_new(a->nparts);
	for (int p = 0; p < a->nparts; p++)
		if (nudgeable(&a->parts[p]))
			rd_kafka_topic_partition_list_add(
				l, a->cfg->topic_messages, p)
				->offset = a->parts[p].pos;
	if (l->cnt > 0) {
		e = rd_kafka_seek_partitions(a->consumer, l, 0);
		if (e != NULL) {
			cb_warn(SUB, "fetch nudge: %s", rd_kafka_error_string(e));
			rd_kafka_error_destroy(e);
		}
		cb_metric_add(CB_M_agg_fetch_nudges_total, 1);
		a->suspect_stall = false;
		a->last_nudge_ms = now;
		a->empty_since_ms = now;
	}
	rd_kafka_topic_partition_list_destroy(l);
}

static void *agg_main(void *arg)
{
	struct cb_agg *a = arg;
	int64_t interval = a->cfg->commit_interval_ms;

	a->next_commit_ms = cb_mono_ms() + interval;
	while (!atomic_load(&a->stop) && !a->fatal) {
		int64_t now = cb_mono_ms();
		int timeout;
		bool empty = false;

		if (drain_acks(a) != 0) {
			fatal(a, "out of memory");
			break;
		}
		if (a->need_recovery && recover(a) != 0)
			break;
		rows_backpressure(a);
		if (cb_log_threshold >= CB_LOG_DEBUG &&
		    now >= a->next_debug_ms) {
			debug_state(a);
			a->next_debug_ms = now + 1000;
		}
		if (now >= a->next_commit_ms) {
			int64_t t0 = cb_mono_ms();

			commit(a);
			if (cb_mono_ms() - t0 > 200)
				cb_debug(SUB, "commit took %lld ms",
					 (long long)(cb_mono_ms() - t0));
			a->next_commit_ms = cb_mono_ms() + interval;
			continue;
		}
		timeout = (int)(a->next_commit_ms - now);
		if (anything_pending(a) && timeout > 2)
			timeout = 2; /* acks arrive on the ring, not here */
		if (hold(a)) {
			cb_ring_wait(a->app->acks, timeout < 5 ? timeout : 5);
			continue;
		}
		for (int i = 0; i < POLL_BATCH && !a->fatal; i++) {
			rd_kafka_message_t *m =
				rd_kafka_consumer_poll(a->consumer, timeout);
			int32_t p;

			if (m == NULL) {
				empty = true;
				break;
			}
			timeout = 0;
			p = m->partition;
			a->streak_bytes += m->len;
			handle_message(a, m);
			rd_kafka_message_destroy(m);
			/* (the rows ring is looked at once per batch, by
			 * hold(): its head only moves at the commit below) */
			if (a->need_recovery ||
			    (p >= 0 && p < a->nparts &&
			     fifo_high(&a->parts[p])))
				break;
		}
		cb_ring_commit(a->app->rows);
		rd_kafka_poll(a->producer, 0);
		if (!a->need_recovery)
			nudge_fetch(a, empty);
	}
	if (!a->fatal) {
		/* Orderly stop: let the writer acknowledge what is pending
		 * (bounded), commit it, then leave the group (the revoke
		 * callback commits again: nothing left). */
		int64_t deadline = cb_mono_ms() + STOP_DRAIN_MS;
		rd_kafka_topic_partition_list_t *l = plist_of(a, PS_ACTIVE);

		pause_parts(a, l, true);
		rd_kafka_topic_partition_list_destroy(l);
		while (anything_pending(a) && cb_mono_ms() < deadline) {
			cb_ring_wait(a->app->acks, 20);
			if (drain_acks(a) != 0)
				break;
		}
		if (anything_pending(a))
			cb_warn(SUB, "stopping with unacknowledged records: "
				     "they will be consumed again");
		commit(a);
	}
	rd_kafka_consumer_close(a->consumer);
	if (a->txn_open)
		txn_abort(a, "stopping");
	return NULL;
}

/* ---- start / stop ---- */

static int topic_partitions(rd_kafka_t *rk, const char *topic, int *n,
			    char *errstr, size_t errstr_size)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
	rd_kafka_resp_err_t err;
	int rc = 0;

	err = rd_kafka_metadata(rk, 0, t, &md, 15000);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		rc = cb_seterr(errstr, errstr_size, cb_kafka_err(err),
			       "metadata of %s: %s", topic,
			       rd_kafka_err2str(err));
	} else if (md->topic_cnt != 1 || md->topics[0].err ||
		   md->topics[0].partition_cnt == 0) {
		rc = cb_seterr(errstr, errstr_size, CB_E_NOTFOUND,
			       "topic %s does not exist (%s): create the "
			       "topics with `chatbattle init`",
			       topic,
			       md->topic_cnt ? rd_kafka_err2str(
						       md->topics[0].err)
					     : "no metadata");
	} else {
		*n = md->topics[0].partition_cnt;
	}
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(t);
	return rc;
}

static void agg_free(struct cb_agg *a)
{
	if (a == NULL)
		return;
	if (a->consumer)
		rd_kafka_destroy(a->consumer);
	producer_close(a);
	for (int p = 0; a->parts && p < a->nparts; p++) {
		cb_winset_free(a->parts[p].ws);
		free(a->parts[p].fifo);
	}
	free(a->parts);
	free(a->scratch);
	cb_jw_release(&a->dlq);
	free(a);
}

/* The transactional.id: one per instance and group, so that a restart of
 * the same instance fences its older run. */
static void txn_id(const struct cb_config *cfg, char *buf, size_t size)
{
	snprintf(buf, size, "chatbattle-agg-%s-%s", cb_instance_id(cfg),
		 cfg->kafka_group_id);
}

int cb_agg_kafka_conf(const struct cb_config *cfg, enum cb_agg_client which,
		      rd_kafka_conf_t **out, char *errstr, size_t errstr_size)
{
	char tid[256], restore_group[300];
	/* Fixed (0): exactly once depends on them.  Overridable (1): tuning;
	 * bounded fetch buffers keep RSS small. */
	const struct cb_kafka_prop consumer[] = {
		{"group.id", cfg->kafka_group_id, 0},
		{"enable.auto.commit", "false", 0},
		{"enable.auto.offset.store", "false", 0},
		{"isolation.level", "read_committed", 0},
		{"partition.assignment.strategy", "cooperative-sticky", 0},
		{"auto.offset.reset", "earliest", 0},
		{"session.timeout.ms", "10000", 1},
		{"heartbeat.interval.ms", "2000", 1},
		{"queued.max.messages.kbytes", STR(FETCHQ_KBYTES), 1},
		{"fetch.max.bytes", "1048576", 1},
		{"max.partition.fetch.bytes", "262144", 1},
	};
	const struct cb_kafka_prop producer[] = {
		{"transactional.id", tid, 0},
		{"enable.idempotence", "true", 0}, /* implied; never off */
		{"transaction.timeout.ms", "10000", 0},
		{"partitioner", "murmur2_random", 0},
		{"linger.ms", "5", 1},
		{"compression.type", "lz4", 1},
		{"queue.buffering.max.kbytes", "16384", 1},
	};
	/* Small buffers: the records are big (their restorable state) and
	 * only the newest per channel is kept; RSS stays in budget at start. */
	const struct cb_kafka_prop restore[] = {
		CB_KAFKA_READER_PROPS(restore_group),
		{"queued.max.messages.kbytes", "2048", 1},
		{"fetch.max.bytes", "1048576", 1},
	};

	txn_id(cfg, tid, sizeof(tid));
	snprintf(restore_group, sizeof(restore_group), "%s-restore",
		 cfg->kafka_group_id);
	switch (which) {
	case CB_AGG_CONSUMER:
		return cb_kafka_conf_build(cfg, "agg", consumer,
					   sizeof(consumer) / sizeof(consumer[0]),
					   out, errstr, errstr_size);
	case CB_AGG_PRODUCER:
		return cb_kafka_conf_build(cfg, "agg", producer,
					   sizeof(producer) / sizeof(producer[0]),
					   out, errstr, errstr_size);
	case CB_AGG_RESTORE:
		break;
	}
	return cb_kafka_conf_build(cfg, "agg-restore", restore,
				   sizeof(restore) / sizeof(restore[0]), out,
				   errstr, errstr_size);
}

static int make_producer(struct cb_agg *a, char *errstr, size_t errstr_size)
{
	rd_kafka_conf_t *conf;
	rd_kafka_error_t *e;
	int err;

	txn_id(a->cfg, a->txn_id, sizeof(a->txn_id));
	err = cb_agg_kafka_conf(a->cfg, CB_AGG_PRODUCER, &conf, errstr,
				errstr_size);
	if (err != 0)
		return err;
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	a->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr,
				   errstr_size);
	if (a->producer == NULL) {
		rd_kafka_conf_destroy(conf);
		return CB_E_KAFKA;
	}
	/* Fences an older run of this instance and aborts its open
	 * transaction, so what it left half done is never read. */
	e = rd_kafka_init_transactions(a->producer, 60000);
	if (e != NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_KAFKA,
				"init transactions (transactional.id %s): %s",
				a->txn_id, rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
		return err;
	}
	return 0;
}

static int make_consumer(struct cb_agg *a, char *errstr, size_t errstr_size)
{
	rd_kafka_conf_t *conf;
	rd_kafka_topic_partition_list_t *topics;
	rd_kafka_resp_err_t kerr;
	int err;

	err = cb_agg_kafka_conf(a->cfg, CB_AGG_CONSUMER, &conf, errstr,
				errstr_size);
	if (err != 0)
		return err;
	rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	rd_kafka_conf_set_opaque(conf, a);
	a->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr,
				   errstr_size);
	if (a->consumer == NULL) {
		rd_kafka_conf_destroy(conf);
		return CB_E_KAFKA;
	}
	rd_kafka_poll_set_consumer(a->consumer);
	topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, a->cfg->topic_messages,
					  RD_KAFKA_PARTITION_UA);
	kerr = rd_kafka_subscribe(a->consumer, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (kerr != RD_KAFKA_RESP_ERR_NO_ERROR)
		return cb_seterr(errstr, errstr_size, CB_E_KAFKA,
				 "subscribe to %s: %s", a->cfg->topic_messages,
				 rd_kafka_err2str(kerr));
	return 0;
}

int cb_agg_start(struct cb_app *app, char *errstr, size_t errstr_size)
{
	const struct cb_config *cfg = app->cfg;
	struct cb_agg *a;
	int n_in = 0, n_out = 0, err;

	if (app->cql == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_CONFIG,
				 "the aggregator needs the Cassandra writer "
				 "(module cql, role aggregate) in the same "
				 "process to store every message before its "
				 "offset is committed, and it is not running");
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "out of memory");
	a->app = app;
	a->cfg = cfg;
	a->wcfg = (struct cb_window_cfg){
		.size_ms = cfg->window_size * 1000,
		.grace_ms = cfg->window_grace * 1000,
		.exact_limit = (uint32_t)cfg->exact_chatters_limit,
		.top_k = (uint32_t)cfg->top_k,
		.spike_history = (uint32_t)cfg->spike_history,
		.spike_min_rate = (uint32_t)cfg->spike_min_rate,
		.spike_threshold = cfg->spike_threshold,
	};
	a->row_max = cb_ring_max_record(app->rows);
	a->scratch = malloc(INPUT_MAX);
	if (a->scratch == NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				"out of memory");
		goto fail;
	}
	err = make_producer(a, errstr, errstr_size);
	if (err != 0)
		goto fail;
	err = topic_partitions(a->producer, cfg->topic_messages, &n_in, errstr,
			       errstr_size);
	if (err == 0)
		err = topic_partitions(a->producer, cfg->topic_stats, &n_out,
				       errstr, errstr_size);
	if (err != 0)
		goto fail;
	if (n_in > CB_PARTITIONS_MAX || n_out > CB_PARTITIONS_MAX) {
		err = cb_seterr(errstr, errstr_size, CB_E_CONFIG,
				"%s has %d partitions and %s %d: chatbattle "
				"supports at most %d partitions per topic "
				"(CB_PARTITIONS_MAX)",
				cfg->topic_messages, n_in, cfg->topic_stats,
				n_out, CB_PARTITIONS_MAX);
		goto fail;
	}
	if (n_in != n_out) {
		err = cb_seterr(errstr, errstr_size, CB_E_CONFIG,
				"%s has %d partitions and %s %d: they must be "
				"equal (co-partitioned) so that each "
				"channel's stats live in the partition of its "
				"messages",
				cfg->topic_messages, n_in, cfg->topic_stats,
				n_out);
		goto fail;
	}
	a->nparts = n_in;
	a->parts = calloc((size_t)n_in, sizeof(*a->parts));
	if (a->parts == NULL)
		goto nomem;
	for (int p = 0; p < n_in; p++) {
		a->parts[p].fifo = malloc(PEND_CAP);
		if (a->parts[p].fifo == NULL)
			goto nomem;
		a->parts[p].acked = a->parts[p].applied_next = -1;
		a->parts[p].committed = a->parts[p].pos = -1;
	}
	err = make_consumer(a, errstr, errstr_size);
	if (err != 0)
		goto fail;
	err = cb_thread_start(&a->thread, agg_main, a, "aggregator", errstr,
			      errstr_size);
	if (err != 0)
		goto fail;
	app->agg = a; /* only cb_agg_stop reads it, on this thread */
	cb_info(SUB, "consuming %s (%d partitions) in group %s, transactional "
		     "id %s, commit every %lld ms",
		cfg->topic_messages, n_in, cfg->kafka_group_id, a->txn_id,
		(long long)cfg->commit_interval_ms);
	return 0;
nomem:
	err = cb_seterr(errstr, errstr_size, CB_E_NOMEM, "out of memory");
fail:
	agg_free(a);
	return err;
}

void cb_agg_stop(struct cb_app *app)
{
	if (app->agg == NULL)
		return;
	cb_thread_stop(&app->agg->thread, &app->agg->stop, -1);
	agg_free(app->agg);
	app->agg = NULL;
}
