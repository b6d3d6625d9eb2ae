/*
 * irc.c - the IRC thread (module "irc", role "ingest"; see irc.h and
 * docs/ingest.md).
 *
 * One pthread runs one libevent loop that owns:
 *   - a pool of connections to Twitch (bufferevent_openssl, certificate and
 *     host name verified; or plain TCP), irc_channels_per_connection
 *     channels each: login (anonymous justinfanNNNN, or PASS oauth:...),
 *     CAP REQ, JOINs paced by one sliding-window pacer, client PINGs on idle
 *     with a PONG deadline, answers to server PINGs;
 *   - RECONNECT make-before-break: a new connection joins the same
 *     channels; the old one keeps delivering until then, is drained with a
 *     PING/PONG round trip and closed.  Dropped connections come back after
 *     an exponential backoff with full jitter and rejoin their channels;
 *   - login failures: reported once (cb_error), health DOWN, retried only
 *     after the longest backoff, or after an OAuth refresh (oauth.c);
 *   - the hot path: each read batch is split into lines, parsed
 *     (irc_msg.c), filtered for duplicates (shared chat, and the overlap of
 *     a RECONNECT) and written straight into ring memory of app->irc_out as
 *     struct cb_out_hdr + key + JSON (chatmsg.c), one ring commit per batch.
 *     When the ring is full the thread stops reading every socket and waits
 *     on the ring's producer eventfd: nothing read is ever dropped;
 *   - the command ring app->irc_cmd (JOIN, PART, SET...SET_END);
 *   - a mutex-protected status snapshot for cb_irc_status() (HTTP thread),
 *     refreshed on the housekeeping tick, never on the hot path.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "chatbattle/app.h"
#include "chatbattle/chatmsg.h"
#include "chatbattle/clock.h"
#include "chatbattle/config.h"
#include "chatbattle/err.h"
#include "chatbattle/irc.h"
#include "chatbattle/irc_msg.h"
#include "chatbattle/log.h"
#include "chatbattle/metrics.h"
#include "chatbattle/oauth.h"
#include "chatbattle/record.h"
#include "chatbattle/ring.h"
#include "chatbattle/thread.h"
#include "chatbattle/tls.h"

#define HDR_SIZE sizeof(struct cb_out_hdr)
/* How much of an over-long line goes into its dead letter. */
#define TOOLONG_RAW_MAX 4096
/* One JOIN command line stays below IRC's 512 bytes. */
#define JOIN_LINE_MAX 450
/* JOIN attempts before a channel is marked FAILED. */
#define JOIN_ATTEMPTS 3
/* Read up to this much per callback: bigger batches, fewer commits. */
#define READ_MAX_SINGLE (256 * 1024)
/* Input kept per connection while the ring is full (a hard cap). */
#define READ_HIGH_WATER (1024 * 1024)
#define STATUS_EVERY_MS 250
#define OAUTH_TIMEOUT_S 15

enum conn_state {
	C_BACKOFF,     /* waiting to (re)connect */
	C_CONNECTING,  /* TCP + TLS handshake */
	C_REGISTERING, /* CAP/PASS/NICK sent, no 001 yet */
	C_READY,       /* logged in: JOINs go out */
	C_RETIRING,    /* got RECONNECT: still delivering, channels moved */
	C_DRAINING,    /* drain PING sent; closed at its PONG */
};

static const char *const conn_state_names[] = {
	"backoff", "connecting", "registering", "ready", "retiring", "draining",
};

struct conn;

struct chan {
	char name[CB_CHANNEL_MAX + 1];
	int state; /* enum cb_irc_chan_state */
	struct conn *conn;
	int64_t since_ms;     /* wall clock of the last state change */
	int64_t join_sent_ms; /* monotonic */
	int attempts;
	uint64_t messages;
	char reason[96];
};

struct conn {
	struct cb_irc *irc;
	struct conn *next;
	int id;
	enum conn_state state;
	struct bufferevent *bev;
	struct event *retry_ev;
	struct conn *replacement; /* RETIRING/DRAINING: who took the chans */
	char nick[32];
	uint32_t nchans;
	unsigned attempt;
	int64_t state_ms, last_rx_ms, ping_sent_ms, ready_ms; /* monotonic */
	uint64_t ping_seq;
	bool auth_failed;
	bool skipping; /* dropping the rest of an over-long line */
	bool dead;     /* closed while the ring was full: fail after input */
	bool zombie;   /* closed, no channels: freed by reap_cb */
	char dead_reason[128];
	char last_error[96];
};

struct cb_irc {
	struct cb_app *app;
	const struct cb_config *cfg;
	struct cb_irc_tuning tune;
	struct cb_thread thread;
	int stop_efd;
	atomic_bool stopping;

	struct event_base *base;
	struct evdns_base *dns;
	SSL_CTX *ssl_ctx;
	struct event *stop_ev, *cmd_ev, *space_ev, *tick_ev, *pace_ev, *reap_ev;

	struct conn *conns;
	int next_conn_id;

	struct chan **chans;
	size_t nchans, chans_cap;
	struct chan **index; /* open addressing by name, 2 * cap slots */
	size_t index_mask;

	struct cb_irc_pacer pacer;
	bool pace_armed;
	struct cb_irc_dedupe dedupe;
	uint64_t rng;

	/* login */
	char token[CB_OAUTH_TOKEN_MAX];   /* without "oauth:" */
	char refresh[CB_OAUTH_TOKEN_MAX];
	char username[32];
	bool refresh_enabled;
	struct cb_oauth_req *oauth;
	bool auth_failed, auth_logged;
	int64_t last_refresh_ms;

	/* SET ... SET_END in progress */
	char (*set_list)[CB_CHANNEL_MAX + 1];
	size_t set_n, set_cap;

	/* the output ring and back-pressure */
	struct cb_ring *out;
	uint32_t out_max;
	bool blocked;
	uint32_t blocked_need;

	/* the current read batch */
	int64_t batch_wall_ms, batch_wall_us;
	uint64_t b_lines, b_bytes, b_msgs, b_events, b_dlq, b_dups;

	/* scratch for one line (parse happens in place) */
	struct cb_irc_msg msg;
	struct cb_twitch_msg tw;
	char line[CB_IRC_LINE_MAX + 2];
	char raw[CB_IRC_LINE_MAX + 2];

	/* status snapshot for other threads */
	pthread_mutex_t status_lock;
	struct cb_irc_channel_status *status;
	size_t status_n, status_cap;
	bool status_dirty;
	int64_t status_ms;
	int health;
};

static void conn_connect(struct conn *c);
static void conn_fail(struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void pump_joins(struct cb_irc *irc);
static void assign_channels(struct cb_irc *irc);
static bool process_input(struct conn *c);
static void finish_batch(struct cb_irc *irc);

/* Copies a string, cut to fit (reasons and messages for status). */
static void copy_cut(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* ---- pure helpers ---- */

void cb_irc_tuning_defaults(struct cb_irc_tuning *t)
{
	t->join_window_ms = 10000;
	t->join_margin_ms = 500;
	t->join_timeout_ms = 15000;
	t->connect_timeout_ms = 20000;
	t->drain_timeout_ms = 30000;
	t->tick_ms = 100;
	t->dedupe_keys = 131072;
}

int cb_irc_pacer_init(struct cb_irc_pacer *p, uint32_t limit,
		      int64_t window_ms)
{
	memset(p, 0, sizeof(*p));
	if (limit == 0)
		return CB_E_INVAL;
	p->sent_ms = calloc(limit, sizeof(*p->sent_ms));
	if (p->sent_ms == NULL)
		return CB_E_NOMEM;
	p->limit = limit;
	p->window_ms = window_ms;
	return 0;
}

void cb_irc_pacer_release(struct cb_irc_pacer *p)
{
	free(p->sent_ms);
	p->sent_ms = NULL;
}

/* The i-th oldest remembered send time. */
static int64_t pacer_at(const struct cb_irc_pacer *p, uint32_t i)
{
	return p->sent_ms[(p->head + p->limit - p->n + i) % p->limit];
}

uint32_t cb_irc_pacer_available(const struct cb_irc_pacer *p, int64_t now_ms)
{
	uint32_t used = 0;

	/* times are in order: count those still inside the window */
	for (uint32_t i = p->n; i > 0; i--) {
		if (pacer_at(p, i - 1) + p->window_ms <= now_ms)
			break;
		used++;
	}
	return p->limit - used;
}

void cb_irc_pacer_take(struct cb_irc_pacer *p, int64_t now_ms, uint32_t n)
{
	while (n-- > 0) {
		p->sent_ms[p->head] = now_ms;
		p->head = (p->head + 1) % p->limit;
		if (p->n < p->limit)
			p->n++;
	}
}

int64_t cb_irc_pacer_next_ms(const struct cb_irc_pacer *p, int64_t now_ms)
{
	uint32_t avail = cb_irc_pacer_available(p, now_ms);

	if (avail > 0)
		return now_ms;
	/* all limit entries are in the window: the oldest frees first */
	return pacer_at(p, p->n - p->limit) + p->window_ms;
}

int64_t cb_irc_backoff_ms(unsigned attempt, int64_t min_ms, int64_t max_ms,
			  uint64_t r)
{
	int64_t hi = min_ms;

	if (max_ms < min_ms)
		max_ms = min_ms;
	for (unsigned i = 0; i < attempt && hi < max_ms; i++)
		hi = hi > max_ms / 2 ? max_ms : hi * 2;
	if (hi > max_ms)
		hi = max_ms;
	return min_ms + (int64_t)(r % (uint64_t)(hi - min_ms + 1));
}

uint64_t cb_irc_hash(const void *key, size_t len)
{
	const unsigned char *s = key;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++)
		h = (h ^ s[i]) * 0x100000001b3ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h ? h : 1;
}

int cb_irc_dedupe_init(struct cb_irc_dedupe *d, uint32_t cap)
{
	uint32_t c = 16;

	memset(d, 0, sizeof(*d));
	while (c < cap && c < (1u << 30))
		c <<= 1;
	d->slots = calloc((size_t)c * 2, sizeof(*d->slots));
	d->fifo = calloc(c, sizeof(*d->fifo));
	if (d->slots == NULL || d->fifo == NULL) {
		cb_irc_dedupe_release(d);
		return CB_E_NOMEM;
	}
	d->cap = c;
	d->mask = c * 2 - 1;
	return 0;
}

void cb_irc_dedupe_release(struct cb_irc_dedupe *d)
{
	free(d->slots);
	free(d->fifo);
	d->slots = d->fifo = NULL;
}

bool cb_irc_dedupe_has(const struct cb_irc_dedupe *d, uint64_t h)
{
	for (uint32_t i = (uint32_t)h & d->mask;; i = (i + 1) & d->mask) {
		if (d->slots[i] == h)
			return true;
		if (d->slots[i] == 0)
			return false;
	}
}

/* Linear probing deletion without tombstones (backward shift). */
static void dedupe_remove(struct cb_irc_dedupe *d, uint64_t h)
{
	uint32_t i = (uint32_t)h & d->mask, j;

	while (d->slots[i] != h) {
		if (d->slots[i] == 0)
			return;
		i = (i + 1) & d->mask;
	}
	for (j = (i + 1) & d->mask; d->slots[j] != 0; j = (j + 1) & d->mask) {
		uint32_t home = (uint32_t)d->slots[j] & d->mask;

		/* move j into the hole at i unless its home lies in (i, j] */
		if (((j - home) & d->mask) >= ((j - i) & d->mask)) {
			d->slots[i] = d->slots[j];
			i = j;
		}
	}
	d->slots[i] = 0;
}

void cb_irc_dedupe_add(struct cb_irc_dedupe *d, uint64_t h)
{
	uint32_t i;

	if (cb_irc_dedupe_has(d, h))
		return;
	if (d->n == d->cap) {
		dedupe_remove(d, d->fifo[d->head]);
		d->n--;
	}
	d->fifo[d->head] = h;
	d->head = (d->head + 1) & (d->cap - 1);
	d->n++;
	for (i = (uint32_t)h & d->mask; d->slots[i] != 0; i = (i + 1) & d->mask)
		;
	d->slots[i] = h;
}

/* ---- channels ---- */

static uint64_t name_hash(const char *s)
{
	return cb_irc_hash(s, strlen(s));
}

static void index_rebuild(struct cb_irc *irc)
{
	size_t slots = 16;

	while (slots < irc->nchans * 2 + 2)
		slots <<= 1;
	if (slots - 1 != irc->index_mask) {
		struct chan **idx = calloc(slots, sizeof(*idx));

		if (idx == NULL)
			return; /* keep the old, larger index */
		free(irc->index);
		irc->index = idx;
		irc->index_mask = slots - 1;
	} else {
		memset(irc->index, 0, slots * sizeof(*irc->index));
	}
	for (size_t k = 0; k < irc->nchans; k++) {
		size_t i = name_hash(irc->chans[k]->name) & irc->index_mask;

		while (irc->index[i] != NULL)
			i = (i + 1) & irc->index_mask;
		irc->index[i] = irc->chans[k];
	}
}

static struct chan *chan_find(struct cb_irc *irc, const char *name)
{
	if (irc->index == NULL)
		return NULL;
	for (size_t i = name_hash(name) & irc->index_mask;;
	     i = (i + 1) & irc->index_mask) {
		struct chan *ch = irc->index[i];

		if (ch == NULL)
			return NULL;
		if (strcmp(ch->name, name) == 0)
			return ch;
	}
}

/* The channel of a line (t->channel, not normalized) in our list. */
static struct chan *chan_of(struct cb_irc *irc, const struct cb_irc_str *s)
{
	char name[CB_CHANNEL_MAX + 1];
	size_t i;

	if (s->p == NULL || s->len == 0 || s->len > CB_CHANNEL_MAX)
		return NULL;
	for (i = 0; i < s->len; i++) {
		char ch = s->p[i];

		name[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
	}
	name[i] = '\0';
	return chan_find(irc, name);
}

static void chan_set_state(struct cb_irc *irc, struct chan *ch, int state,
			   const char *reason)
{
	if (ch->state != state)
		ch->since_ms = cb_wall_us() / 1000;
	ch->state = state;
	snprintf(ch->reason, sizeof(ch->reason), "%s", reason ? reason : "");
	irc->status_dirty = true;
}

static void chan_detach(struct chan *ch)
{
	if (ch->conn != NULL) {
		ch->conn->nchans--;
		ch->conn = NULL;
	}
}

static struct chan *chan_add(struct cb_irc *irc, const char *name)
{
	struct chan *ch = chan_find(irc, name);

	if (ch != NULL)
		return ch;
	if (irc->nchans == irc->chans_cap) {
		size_t cap = irc->chans_cap ? irc->chans_cap * 2 : 16;
		struct chan **v = realloc(irc->chans, cap * sizeof(*v));

		if (v == NULL)
			return NULL;
		irc->chans = v;
		irc->chans_cap = cap;
	}
	ch = calloc(1, sizeof(*ch));
	if (ch == NULL)
		return NULL;
	snprintf(ch->name, sizeof(ch->name), "%s", name);
	ch->state = CB_IRC_CHAN_PENDING;
	ch->since_ms = cb_wall_us() / 1000;
	irc->chans[irc->nchans++] = ch;
	index_rebuild(irc);
	irc->status_dirty = true;
	return ch;
}

static void conn_send(struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void chan_remove(struct cb_irc *irc, struct chan *ch)
{
	struct conn *c = ch->conn;

	if (c != NULL && c->bev != NULL &&
	    (ch->state == CB_IRC_CHAN_JOINED ||
	     ch->state == CB_IRC_CHAN_JOINING))
		conn_send(c, "PART #%s", ch->name);
	chan_detach(ch);
	for (size_t k = 0; k < irc->nchans; k++)
		if (irc->chans[k] == ch) {
			irc->chans[k] = irc->chans[--irc->nchans];
			break;
		}
	free(ch);
	index_rebuild(irc);
	irc->status_dirty = true;
}

/* ---- health, status ---- */

static void update_health(struct cb_irc *irc)
{
	int h = irc->health;
	bool all_ready = true, any_down = false;

	for (struct conn *c = irc->conns; c != NULL; c = c->next) {
		if (c->nchans == 0)
			continue;
		if (c->state == C_BACKOFF)
			any_down = true;
		if (c->state != C_READY)
			all_ready = false;
	}
	if (irc->auth_failed || any_down)
		h = CB_DEP_DOWN;
	else if (all_ready)
		h = CB_DEP_UP;
	if (h != irc->health) {
		irc->health = h;
		cb_health_set(CB_DEP_IRC, (enum cb_dep_state)h);
	}
}

static int status_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cb_irc_channel_status *)a)->channel,
		      ((const struct cb_irc_channel_status *)b)->channel);
}

static void publish_status(struct cb_irc *irc)
{
	uint64_t joined = 0, conns = 0;

	pthread_mutex_lock(&irc->status_lock);
	if (irc->status_cap < irc->nchans) {
		size_t cap = irc->nchans + 16;
		void *v = realloc(irc->status, cap * sizeof(*irc->status));

		if (v != NULL) {
			irc->status = v;
			irc->status_cap = cap;
		}
	}
	irc->status_n = 0;
	for (size_t k = 0; k < irc->nchans && k < irc->status_cap; k++) {
		const struct chan *ch = irc->chans[k];
		struct cb_irc_channel_status *s = &irc->status[irc->status_n++];

		memcpy(s->channel, ch->name, sizeof(s->channel));
		s->state = ch->state;
		s->connection = ch->conn ? ch->conn->id : -1;
		s->since_ms = ch->since_ms;
		s->messages = ch->messages;
		memcpy(s->reason, ch->reason, sizeof(s->reason));
		joined += ch->state == CB_IRC_CHAN_JOINED;
	}
	qsort(irc->status, irc->status_n, sizeof(*irc->status), status_cmp);
	pthread_mutex_unlock(&irc->status_lock);
	for (struct conn *c = irc->conns; c != NULL; c = c->next)
		conns += c->bev != NULL;
	cb_metric_set(CB_M_irc_channels_joined, joined);
	cb_metric_set(CB_M_irc_connections, conns);
	irc->status_dirty = false;
	irc->status_ms = cb_mono_ms();
}

size_t cb_irc_status(struct cb_irc *irc, struct cb_irc_channel_status *out,
		     size_t max)
{
	size_t n;

	if (irc == NULL)
		return 0;
	pthread_mutex_lock(&irc->status_lock);
	n = irc->status_n;
	if (out != NULL && max > 0 && n > 0)
		memcpy(out, irc->status,
		       (n < max ? n : max) * sizeof(*out));
	pthread_mutex_unlock(&irc->status_lock);
	return n;
}

/* ---- connections ---- */

static void conn_send(struct conn *c, const char *fmt, ...)
{
	struct evbuffer *out;
	va_list ap;

	if (c->bev == NULL)
		return;
	out = bufferevent_get_output(c->bev);
	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

static void conn_set_state(struct conn *c, enum conn_state s)
{
	if (c->state != s)
		cb_debug("irc", "connection %d: %s -> %s", c->id,
			 conn_state_names[c->state], conn_state_names[s]);
	c->state = s;
	c->state_ms = cb_mono_ms();
	c->irc->status_dirty = true;
}

static struct conn *conn_new(struct cb_irc *irc)
{
	struct conn *c = calloc(1, sizeof(*c)), **pp;

	if (c == NULL)
		return NULL;
	c->irc = irc;
	c->id = irc->next_conn_id++;
	c->state = C_BACKOFF;
	for (pp = &irc->conns; *pp != NULL; pp = &(*pp)->next)
		; /* append: status lists connections in creation order */
	*pp = c;
	return c;
}

static void conn_close_bev(struct conn *c)
{
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	c->skipping = false;
	c->dead = false;
	c->ping_sent_ms = 0;
	c->irc->status_dirty = true;
}

/* Frees c; its channels (if any) go back to the pool. */
static void conn_destroy(struct conn *c)
{
	struct cb_irc *irc = c->irc;
	struct conn **pp;
	bool orphans = false;

	conn_close_bev(c);
	if (c->retry_ev != NULL)
		event_free(c->retry_ev);
	for (pp = &irc->conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	for (struct conn *o = irc->conns; o != NULL; o = o->next)
		if (o->replacement == c)
			o->replacement = NULL;
	for (size_t k = 0; k < irc->nchans; k++)
		if (irc->chans[k]->conn == c) {
			chan_detach(irc->chans[k]);
			chan_set_state(irc, irc->chans[k], CB_IRC_CHAN_PENDING,
				       NULL);
			orphans = true;
		}
	free(c);
	if (orphans && !atomic_load(&irc->stopping))
		assign_channels(irc);
}

/*
 * Closes a connection that carries no channel.  It is freed on the next
 * loop turn (reap_cb), never under a callback that still uses it (a line
 * handler can end its own connection).
 */
static void conn_bury(struct conn *c)
{
	conn_close_bev(c);
	c->zombie = true;
	c->nchans = 0;
	conn_set_state(c, C_DRAINING);
	event_active(c->irc->reap_ev, EV_TIMEOUT, 0);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cb_irc *irc = arg;
	struct conn *c, *next;

	for (c = irc->conns; c != NULL; c = next) {
		next = c->next;
		if (c->zombie)
			conn_destroy(c);
	}
	update_health(irc);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (c->state == C_BACKOFF)
		conn_connect(c);
}

static void conn_schedule(struct conn *c, int64_t delay_ms)
{
	struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};

	if (c->retry_ev == NULL)
		c->retry_ev = evtimer_new(c->irc->base, retry_cb, c);
	if (c->retry_ev != NULL)
		evtimer_add(c->retry_ev, &tv);
}

/* Closes c's connection and schedules a reconnect with backoff; a
 * connection that carries no channel is freed instead. */
static void conn_fail(struct conn *c, const char *fmt, ...)
{
	struct cb_irc *irc = c->irc;
	const struct cb_config *cfg = irc->cfg;
	char why[256];
	va_list ap;
	int64_t delay, now = cb_mono_ms();
	bool was_up = c->state == C_READY || c->state == C_RETIRING ||
		      c->state == C_DRAINING;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	conn_close_bev(c);
	if (c->state == C_RETIRING || c->state == C_DRAINING ||
	    c->nchans == 0) {
		cb_info("irc", "connection %d closed: %s", c->id, why);
		conn_bury(c);
		return;
	}
	/* A connection that stayed up a while starts over from the floor. */
	if (was_up && now - c->ready_ms >= 30000)
		c->attempt = 0;
	if (c->auth_failed)
		delay = cfg->irc_backoff_max_ms;
	else
		delay = cb_irc_backoff_ms(c->attempt, cfg->irc_backoff_min_ms,
					  cfg->irc_backoff_max_ms, cb_rand_next(&irc->rng));
	if (c->attempt < 64)
		c->attempt++;
	if (!c->auth_failed && strncmp(c->last_error, why, sizeof(c->last_error) - 1) != 0)
		cb_warn("irc", "connection %d lost (%s); reconnecting in %" PRId64
			       " ms",
			c->id, why, delay);
	else
		cb_debug("irc", "connection %d: %s again; retry in %" PRId64
				" ms",
			 c->id, why, delay);
	for (size_t k = 0; k < irc->nchans; k++) {
		struct chan *ch = irc->chans[k];

		if (ch->conn == c && ch->state != CB_IRC_CHAN_FAILED) {
			char r[96];

			snprintf(r, sizeof(r), "connection %d: %.80s", c->id,
				 why);
			chan_set_state(irc, ch, CB_IRC_CHAN_PENDING, r);
			ch->attempts = 0;
		}
	}
	copy_cut(c->last_error, sizeof(c->last_error), why);
	conn_set_state(c, C_BACKOFF);
	cb_metric_add(CB_M_irc_reconnects_total, 1);
	/* While a token refresh runs, its result decides when to retry. */
	if (!(c->auth_failed && irc->oauth != NULL))
		conn_schedule(c, delay);
	update_health(irc);
}

static void conn_login(struct conn *c)
{
	struct cb_irc *irc = c->irc;

	conn_set_state(c, C_REGISTERING);
	c->last_rx_ms = cb_mono_ms();
	conn_send(c, "CAP REQ :twitch.tv/tags twitch.tv/commands");
	if (irc->token[0] != '\0') {
		conn_send(c, "PASS oauth:%s", irc->token);
		snprintf(c->nick, sizeof(c->nick), "%s", irc->username);
	} else {
		snprintf(c->nick, sizeof(c->nick), "justinfan%u",
			 (unsigned)(1000 + cb_rand_next(&irc->rng) % 89000));
	}
	conn_send(c, "NICK %s", c->nick);
}

/* The reason of a failed TLS/TCP connection, for logs and status. */
static void conn_error_text(struct conn *c, short what, char *buf,
			    size_t size)
{
	SSL *ssl = c->irc->cfg->irc_tls ? bufferevent_openssl_get_ssl(c->bev)
					: NULL;
	unsigned long e;
	int dns = bufferevent_socket_get_dns_error(c->bev);
	int sock_err = EVUTIL_SOCKET_ERROR();

	if (dns != 0) {
		snprintf(buf, size, "cannot resolve %s: %s",
			 c->irc->cfg->irc_host, evutil_gai_strerror(dns));
		return;
	}
	if (ssl != NULL && SSL_get_verify_result(ssl) != X509_V_OK) {
		char tmp[160];

		cb_tls_reason(ssl, 0, tmp, sizeof(tmp));
		snprintf(buf, size, "TLS %.150s", tmp);
		return;
	}
	if (c->bev != NULL &&
	    (e = bufferevent_get_openssl_error(c->bev)) != 0) {
		char tmp[160];

		cb_tls_reason(NULL, e, tmp, sizeof(tmp));
		while (bufferevent_get_openssl_error(c->bev) != 0)
			;
		snprintf(buf, size, "TLS error: %.100s", tmp);
		return;
	}
	if (what & BEV_EVENT_EOF)
		snprintf(buf, size, "closed by the server");
	else if (sock_err != 0)
		snprintf(buf, size, "%s", evutil_socket_error_to_string(sock_err));
	else
		snprintf(buf, size, "connection error");
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct cb_irc *irc = c->irc;

	c->last_rx_ms = cb_mono_ms();
	irc->batch_wall_us = cb_wall_us();
	irc->batch_wall_ms = irc->batch_wall_us / 1000;
	process_input(c);
	finish_batch(irc);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	struct cb_irc *irc = c->irc;
	char why[160];

	if (what & BEV_EVENT_CONNECTED) {
		cb_debug("irc", "connection %d: connected to %s:%d%s", c->id,
			 irc->cfg->irc_host, (int)irc->cfg->irc_port,
			 irc->cfg->irc_tls ? " (TLS verified)" : "");
		conn_login(c);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	conn_error_text(c, what, why, sizeof(why));
	/* Lines that arrived before the close still count. */
	if (!irc->blocked) {
		irc->batch_wall_us = cb_wall_us();
		irc->batch_wall_ms = irc->batch_wall_us / 1000;
		process_input(c);
		finish_batch(irc);
	}
	if (c->bev != bev)
		return; /* a line (e.g. a login failure) already ended it */
	if (irc->blocked &&
	    evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
		c->dead = true;
		copy_cut(c->dead_reason, sizeof(c->dead_reason), why);
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		return;
	}
	/* The same failure again (retries) is not news: log it once. */
	if (c->state == C_CONNECTING && strncmp(c->last_error, why, sizeof(c->last_error) - 1) != 0)
		cb_error("irc", "connection %d: cannot connect to %s:%d: %s",
			 c->id, irc->cfg->irc_host, (int)irc->cfg->irc_port,
			 why);
	conn_fail(c, "%s", why);
}

static void conn_connect(struct conn *c)
{
	struct cb_irc *irc = c->irc;
	const struct cb_config *cfg = irc->cfg;
	const char *host = cfg->irc_host;
	char why[256];

	conn_close_bev(c);
	c->auth_failed = false;
	c->bev = cb_tls_bufferevent_new(irc->base,
					cfg->irc_tls ? irc->ssl_ctx : NULL,
					host, BEV_OPT_CLOSE_ON_FREE, why,
					sizeof(why));
	if (c->bev == NULL) {
		conn_fail(c, "%s", why);
		return;
	}
	bufferevent_setcb(c->bev, conn_read_cb, NULL, conn_event_cb, c);
	bufferevent_set_max_single_read(c->bev, READ_MAX_SINGLE);
	bufferevent_setwatermark(c->bev, EV_READ, 0, READ_HIGH_WATER);
	conn_set_state(c, C_CONNECTING);
	if (!irc->blocked)
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	else
		bufferevent_enable(c->bev, EV_WRITE);
	if (bufferevent_socket_connect_hostname(c->bev, irc->dns, AF_UNSPEC,
						host, (int)cfg->irc_port) != 0) {
		conn_fail(c, "cannot connect to %s:%d", host,
			  (int)cfg->irc_port);
		return;
	}
}

/* ---- channel assignment and JOIN pacing ---- */

static bool conn_takes_channels(const struct conn *c)
{
	return c->state != C_RETIRING && c->state != C_DRAINING && !c->zombie;
}

/* Gives every unassigned channel a connection, opening new ones as needed. */
static void assign_channels(struct cb_irc *irc)
{
	uint32_t per = (uint32_t)irc->cfg->irc_channels_per_connection;
	bool changed = false;

	for (size_t k = 0; k < irc->nchans; k++) {
		struct chan *ch = irc->chans[k];
		struct conn *c;
		bool fresh = false;

		if (ch->conn != NULL || ch->state == CB_IRC_CHAN_FAILED)
			continue;
		for (c = irc->conns; c != NULL; c = c->next)
			if (conn_takes_channels(c) && c->nchans < per)
				break;
		if (c == NULL) {
			c = conn_new(irc);
			if (c == NULL)
				return;
			fresh = true;
		}
		ch->conn = c;
		c->nchans++;
		chan_set_state(irc, ch, CB_IRC_CHAN_PENDING, NULL);
		ch->attempts = 0;
		changed = true;
		/* Connect once the channel is on board: a connection that
		 * fails at once (its TLS checks cannot be armed) then backs
		 * off and says why in the channel's status, instead of being
		 * buried as one that carries nothing. */
		if (fresh)
			conn_connect(c);
	}
	if (changed)
		pump_joins(irc);
	update_health(irc);
}

static void pace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cb_irc *irc = arg;

	irc->pace_armed = false;
	pump_joins(irc);
}

/* Sends the JOINs the pacer allows now, batched per connection. */
static void pump_joins(struct cb_irc *irc)
{
	int64_t now = cb_mono_ms();
	uint32_t avail = cb_irc_pacer_available(&irc->pacer, now);
	bool waiting = false;

	for (struct conn *c = irc->conns; c != NULL; c = c->next) {
		char line[JOIN_LINE_MAX + 32];
		size_t len = 0;
		uint32_t n = 0;

		if (c->state != C_READY)
			continue;
		for (size_t k = 0; k < irc->nchans; k++) {
			struct chan *ch = irc->chans[k];
			size_t nl = strlen(ch->name);

			if (ch->conn != c || ch->state != CB_IRC_CHAN_PENDING)
				continue;
			if (avail == 0) {
				waiting = true;
				break;
			}
			if (len + nl + 2 > JOIN_LINE_MAX) {
				conn_send(c, "JOIN %.*s", (int)len, line);
				cb_irc_pacer_take(&irc->pacer, now, n);
				len = 0;
				n = 0;
			}
			if (len > 0)
				line[len++] = ',';
			line[len++] = '#';
			memcpy(line + len, ch->name, nl);
			len += nl;
			n++;
			avail--;
			ch->join_sent_ms = now;
			ch->attempts++;
			chan_set_state(irc, ch, CB_IRC_CHAN_JOINING, NULL);
		}
		if (n > 0) {
			conn_send(c, "JOIN %.*s", (int)len, line);
			cb_irc_pacer_take(&irc->pacer, now, n);
		}
	}
	if (waiting && !irc->pace_armed) {
		int64_t at = cb_irc_pacer_next_ms(&irc->pacer, now) - now;
		struct timeval tv = {at / 1000, (at % 1000) * 1000};

		if (at < 1)
			tv.tv_usec = 1000;
		evtimer_add(irc->pace_ev, &tv);
		irc->pace_armed = true;
	}
}

/* ---- RECONNECT: make before break ---- */

static void start_drain(struct conn *old)
{
	conn_set_state(old, C_DRAINING);
	conn_send(old, "PING :drain-%d", old->id);
	old->ping_sent_ms = cb_mono_ms();
}

/* Called when c may have finished joining: drain what it replaces. */
static void check_replacement(struct cb_irc *irc, struct conn *c)
{
	for (size_t k = 0; k < irc->nchans; k++) {
		const struct chan *ch = irc->chans[k];

		if (ch->conn == c && (ch->state == CB_IRC_CHAN_PENDING ||
				      ch->state == CB_IRC_CHAN_JOINING))
			return;
	}
	for (struct conn *o = irc->conns; o != NULL; o = o->next)
		if (o->replacement == c && o->state == C_RETIRING)
			start_drain(o);
}

static void handle_reconnect(struct cb_irc *irc, struct conn *old)
{
	struct conn *nc;

	cb_info("irc", "connection %d: server asked to RECONNECT; opening a "
		       "replacement before closing it",
		old->id);
	cb_metric_add(CB_M_irc_reconnects_total, 1);
	if (old->state == C_RETIRING || old->state == C_DRAINING)
		return;
	if (old->nchans == 0) {
		start_drain(old);
		return;
	}
	nc = conn_new(irc);
	if (nc == NULL) {
		conn_fail(old, "RECONNECT (no memory for a replacement)");
		return;
	}
	for (size_t k = 0; k < irc->nchans; k++) {
		struct chan *ch = irc->chans[k];

		if (ch->conn != old)
			continue;
		chan_detach(ch);
		ch->conn = nc;
		nc->nchans++;
		if (ch->state != CB_IRC_CHAN_FAILED)
			chan_set_state(irc, ch, CB_IRC_CHAN_PENDING,
				       "rejoining after RECONNECT");
		ch->attempts = 0;
	}
	old->replacement = nc;
	conn_set_state(old, C_RETIRING);
	conn_connect(nc);
}

/* ---- login outcome and OAuth refresh ---- */

static void reconnect_auth_waiters(struct cb_irc *irc, bool now)
{
	for (struct conn *c = irc->conns; c != NULL; c = c->next) {
		if (c->state != C_BACKOFF || !c->auth_failed)
			continue;
		if (now)
			conn_connect(c);
		else
			conn_schedule(c, irc->cfg->irc_backoff_max_ms);
	}
}

static void oauth_done(int err, const struct cb_oauth_tokens *tok,
		       const char *reason, void *arg)
{
	struct cb_irc *irc = arg;

	irc->oauth = NULL;
	if (err != 0) {
		cb_error("irc", "OAuth token refresh failed: %s; retrying the "
				"login in %" PRId64 " ms",
			 reason, (int64_t)irc->cfg->irc_backoff_max_ms);
		reconnect_auth_waiters(irc, false);
		return;
	}
	explicit_bzero(irc->token, sizeof(irc->token));
	snprintf(irc->token, sizeof(irc->token), "%s",
		 strncmp(tok->access, "oauth:", 6) == 0 ? tok->access + 6
							: tok->access);
	if (tok->refresh[0] != '\0') {
		explicit_bzero(irc->refresh, sizeof(irc->refresh));
		snprintf(irc->refresh, sizeof(irc->refresh), "%s", tok->refresh);
	}
	if (tok->expires_in_s > 0)
		cb_info("irc", "OAuth token refreshed (valid for %" PRId64
			       " s); logging in again",
			tok->expires_in_s);
	else
		cb_info("irc", "OAuth token refreshed; logging in again");
	reconnect_auth_waiters(irc, true);
}

static void start_refresh(struct cb_irc *irc)
{
	const struct cb_config *cfg = irc->cfg;
	struct cb_oauth_params p = {
		.url = cfg->twitch_token_url,
		.client_id = cfg->twitch_client_id,
		.client_secret = cfg->twitch_client_secret,
		.refresh_token = irc->refresh,
		.ca_file = NULL,
		.timeout_s = OAUTH_TIMEOUT_S,
	};
	char errstr[256];
	int64_t now = cb_mono_ms();

	if (irc->oauth != NULL)
		return;
	/* One refresh per longest backoff at most: a refresh that "works"
	 * but yields a token Twitch still refuses must not loop. */
	if (irc->last_refresh_ms != 0 &&
	    now - irc->last_refresh_ms < irc->cfg->irc_backoff_max_ms)
		return;
	irc->last_refresh_ms = now;
	cb_info("irc", "refreshing the OAuth token at %s", cfg->twitch_token_url);
	if (cb_oauth_refresh_start(irc->base, irc->dns, &p, oauth_done, irc,
				   &irc->oauth, errstr, sizeof(errstr)) != 0)
		cb_error("irc", "OAuth token refresh: %s", errstr);
}

static void handle_auth_failure(struct cb_irc *irc, struct conn *c,
				const struct cb_irc_str *text)
{
	c->auth_failed = true;
	irc->auth_failed = true;
	if (!irc->auth_logged) {
		cb_error("irc", "Twitch login failed: %.*s (%s); %s",
			 (int)(text->len > 120 ? 120 : text->len),
			 text->p ? text->p : "",
			 irc->token[0] ? "check --oauth-token and --username"
				       : "anonymous login refused",
			 irc->refresh_enabled
				 ? "refreshing the token"
				 : "retrying only after the longest backoff");
		irc->auth_logged = true;
	}
	if (irc->refresh_enabled)
		start_refresh(irc);
	conn_fail(c, "login failed");
}

static void handle_welcome(struct cb_irc *irc, struct conn *c,
			   const struct cb_irc_msg *m)
{
	if (m->nparams > 0 && m->params[0].len > 0 &&
	    m->params[0].len < sizeof(c->nick)) {
		memcpy(c->nick, m->params[0].p, m->params[0].len);
		c->nick[m->params[0].len] = '\0';
	}
	if (irc->auth_failed)
		cb_info("irc", "Twitch login succeeded again");
	irc->auth_failed = false;
	irc->auth_logged = false;
	c->auth_failed = false;
	c->ready_ms = cb_mono_ms();
	c->last_error[0] = '\0';
	conn_set_state(c, C_READY);
	cb_info("irc", "connection %d: logged in as %s", c->id, c->nick);
	pump_joins(irc);
	check_replacement(irc, c);
	update_health(irc);
}

/* ---- control lines ---- */

static bool str_eq_nocase(const struct cb_irc_str *s, const char *z)
{
	size_t n = strlen(z);

	return s->p != NULL && s->len == n && strncasecmp(s->p, z, n) == 0;
}

static void handle_notice(struct cb_irc *irc, struct conn *c,
			  const struct cb_irc_msg *m)
{
	struct cb_twitch_msg *t = &irc->tw;
	char errstr[64];
	size_t idlen = 0;
	const char *id;
	struct chan *ch;

	if (cb_twitch_decode(m, t, errstr, sizeof(errstr)) != 0)
		return;
	if (t->auth_failed) {
		handle_auth_failure(irc, c, &t->text);
		return;
	}
	id = cb_irc_tag(m, "msg-id", &idlen);
	ch = chan_of(irc, &t->channel);
	if (ch != NULL && id != NULL &&
	    ((idlen == 21 && memcmp(id, "msg_channel_suspended", 21) == 0) ||
	     (idlen == 10 && memcmp(id, "msg_banned", 10) == 0) ||
	     (idlen == 7 && memcmp(id, "tos_ban", 7) == 0) ||
	     (idlen == 19 && memcmp(id, "msg_channel_blocked", 19) == 0))) {
		char r[96];

		snprintf(r, sizeof(r), "%.*s", (int)t->text.len,
			 t->text.p ? t->text.p : "");
		cb_error("irc", "channel %s: Twitch refused the JOIN: %s",
			 ch->name, r);
		chan_set_state(irc, ch, CB_IRC_CHAN_FAILED, r);
		check_replacement(irc, c);
		return;
	}
	cb_info("irc", "connection %d: NOTICE %.*s: %.*s", c->id,
		(int)(t->channel.p ? t->channel.len : 1),
		t->channel.p ? t->channel.p : "*",
		(int)(t->text.len > 200 ? 200 : t->text.len),
		t->text.p ? t->text.p : "");
}

static void handle_membership(struct cb_irc *irc, struct conn *c,
			      const struct cb_irc_msg *m, bool join)
{
	const struct cb_irc_str *p;
	struct cb_irc_str name;
	struct chan *ch;

	if (m->nparams == 0 || !str_eq_nocase(&m->nick, c->nick))
		return;
	p = &m->params[0];
	if (p->len < 2 || p->p[0] != '#')
		return;
	name.p = p->p + 1;
	name.len = p->len - 1;
	ch = chan_of(irc, &name);
	if (ch == NULL || ch->conn != c || !join)
		return;
	if (ch->state != CB_IRC_CHAN_JOINED)
		cb_debug("irc", "connection %d: joined #%s", c->id, ch->name);
	chan_set_state(irc, ch, CB_IRC_CHAN_JOINED, NULL);
	ch->attempts = 0;
	check_replacement(irc, c);
	update_health(irc);
}

static void handle_control(struct cb_irc *irc, struct conn *c,
			   const struct cb_irc_msg *m)
{
	const struct cb_irc_str *last =
		m->nparams ? &m->params[m->nparams - 1] : NULL;
	char tok[32];

	switch (m->kind) {
	case CB_IRC_K_PING:
		if (last != NULL)
			conn_send(c, "PONG :%.*s", (int)last->len, last->p);
		else
			conn_send(c, "PONG");
		break;
	case CB_IRC_K_PONG:
		c->ping_sent_ms = 0;
		snprintf(tok, sizeof(tok), "drain-%d", c->id);
		if (c->state == C_DRAINING && last != NULL &&
		    last->len == strlen(tok) &&
		    memcmp(last->p, tok, last->len) == 0) {
			cb_info("irc", "connection %d: drained after "
				       "RECONNECT; closing it",
				c->id);
			conn_bury(c);
		}
		break;
	case CB_IRC_K_RECONNECT:
		handle_reconnect(irc, c);
		break;
	case CB_IRC_K_NOTICE:
		handle_notice(irc, c, m);
		break;
	case CB_IRC_K_WELCOME:
		handle_welcome(irc, c, m);
		break;
	case CB_IRC_K_JOIN:
		handle_membership(irc, c, m, true);
		break;
	case CB_IRC_K_PART:
		handle_membership(irc, c, m, false);
		break;
	case CB_IRC_K_CAP:
		if (m->nparams >= 2 && str_eq_nocase(&m->params[1], "NAK"))
			cb_warn("irc", "connection %d: Twitch refused the "
				       "tags/commands capabilities; messages "
				       "will lack their tags",
				c->id);
		break;
	default:
		break;
	}
}

/* ---- the hot path: lines into ring records ---- */

/* Ring full: commit, stop reading every socket, wait for space. */
static void block_on_ring(struct cb_irc *irc, uint32_t need)
{
	cb_ring_commit(irc->out);
	irc->blocked = true;
	irc->blocked_need = need;
	cb_metric_add(CB_M_irc_ring_full_total, 1);
	for (struct conn *c = irc->conns; c != NULL; c = c->next)
		if (c->bev != NULL)
			bufferevent_disable(c->bev, EV_READ);
	if (!cb_ring_arm_producer(irc->out, need)) {
		/* space appeared meanwhile: resume on the next loop turn */
		event_active(irc->space_ev, EV_READ, 0);
		return;
	}
	event_add(irc->space_ev, NULL);
}

static uint32_t record_need(const struct cb_irc *irc, size_t json_max)
{
	size_t need = HDR_SIZE + CB_CHANNEL_MAX + json_max;

	return need > irc->out_max ? irc->out_max : (uint32_t)need;
}

static void fill_hdr(struct cb_irc *irc, void *p, int kind, size_t key_len,
		     size_t value_len)
{
	struct cb_out_hdr *h = p;

	h->kind = (uint8_t)kind;
	h->key_len = (uint8_t)key_len;
	h->reserved = 0;
	h->value_len = (uint32_t)value_len;
	h->recv_us = irc->batch_wall_us;
	cb_ring_shrink(irc->out, (uint32_t)(HDR_SIZE + key_len + value_len));
}

/* Writes a DLQ record for raw (irc->raw) into the reservation p. */
static void write_dlq(struct cb_irc *irc, void *p, uint32_t need,
		      const char *raw, size_t raw_len, const char *key,
		      size_t key_len, const char *reason)
{
	char *val = (char *)p + HDR_SIZE + key_len;
	size_t vlen = 0;

	if (key_len > 0)
		memcpy((char *)p + HDR_SIZE, key, key_len);
	if (cb_chatmsg_dlq(raw, raw_len, reason, "irc", irc->batch_wall_ms,
			   val, need - HDR_SIZE - key_len, &vlen) != 0) {
		/* cannot happen with need from CB_CHATMSG_DLQ_MAX; keep the
		 * record valid JSON anyway */
		static const char fallback[] =
			"{\"reason\":\"dead letter too large\",\"stage\":\"irc\"}";

		vlen = sizeof(fallback) - 1;
		memcpy(val, fallback, vlen);
	}
	fill_hdr(irc, p, CB_OUT_DLQ, key_len, vlen);
	irc->b_dlq++;
}

/*
 * A dead letter for the line whose raw bytes are in irc->raw.  Returns
 * true when the ring was full (the caller keeps the line for later).
 */
static bool emit_dlq(struct cb_irc *irc, size_t raw_len, const char *key,
		     size_t key_len, const char *reason)
{
	uint64_t h = cb_irc_hash(irc->raw, raw_len);
	uint32_t need;
	void *p;

	if (cb_irc_dedupe_has(&irc->dedupe, h)) {
		irc->b_dups++;
		return false;
	}
	need = record_need(irc, CB_CHATMSG_DLQ_MAX(raw_len, strlen(reason) + 8));
	p = cb_ring_reserve(irc->out, need);
	if (p == NULL) {
		block_on_ring(irc, need);
		return true;
	}
	cb_irc_dedupe_add(&irc->dedupe, h);
	write_dlq(irc, p, need, irc->raw, raw_len, key, key_len, reason);
	return false;
}

/* A line longer than the parser's cap: a dead letter with its start. */
static bool emit_toolong(struct cb_irc *irc, struct evbuffer *in,
			 size_t line_len)
{
	size_t n = line_len < TOOLONG_RAW_MAX ? line_len : TOOLONG_RAW_MAX;
	char reason[160];

	evbuffer_copyout(in, irc->raw, n);
	/* cut at a character boundary so the raw stays UTF-8 text */
	while (n > 0 && n < line_len &&
	       ((unsigned char)irc->raw[n] & 0xC0) == 0x80)
		n--;
	snprintf(reason, sizeof(reason),
		 "line longer than %d bytes; raw truncated to its first %zu "
		 "bytes",
		 CB_IRC_LINE_MAX, n);
	return emit_dlq(irc, n, NULL, 0, reason);
}

static bool is_record_kind(int kind)
{
	return kind == CB_IRC_K_PRIVMSG || kind == CB_IRC_K_USERNOTICE ||
	       kind == CB_IRC_K_CLEARCHAT || kind == CB_IRC_K_CLEARMSG;
}

/*
 * One line (n bytes before the LF, still in in).  Returns true when the ring
 * is full and the line must stay in the buffer for later.
 */
static bool handle_line(struct conn *c, struct evbuffer *in, size_t n)
{
	struct cb_irc *irc = c->irc;
	struct cb_irc_msg *m = &irc->msg;
	struct cb_twitch_msg *t = &irc->tw;
	struct cb_chatmsg out;
	char errstr[192];
	size_t len = n, klen = 0, predicted, key_len = 0;
	const char *id;
	uint64_t h;
	uint32_t need;
	char *p, *val;
	int rc;

	evbuffer_copyout(in, irc->line, n);
	if (len > 0 && irc->line[len - 1] == '\r')
		len--;
	if (len == 0)
		return false;
	if (cb_irc_parse(irc->line, len, m, errstr, sizeof(errstr)) != 0) {
		evbuffer_copyout(in, irc->raw, len);
		return emit_dlq(irc, len, NULL, 0, errstr);
	}
	if (!is_record_kind(m->kind)) {
		handle_control(irc, c, m);
		return false;
	}
	if (m->kind != CB_IRC_K_PRIVMSG && !irc->cfg->irc_emit_events)
		return false;
	if (cb_twitch_decode(m, t, errstr, sizeof(errstr)) != 0)
		return false;
	/* The duplicate key, as chatmsg defines it: source-id (shared chat),
	 * else id, else the line itself (identical copies of an id-less line,
	 * e.g. CLEARCHAT, arrive on both connections during a RECONNECT). */
	id = cb_irc_tag(m, "source-id", &klen);
	if (id == NULL || klen == 0)
		id = cb_irc_tag(m, "id", &klen);
	if (id != NULL && klen > 0) {
		h = cb_irc_hash(id, klen);
	} else {
		evbuffer_copyout(in, irc->raw, len);
		h = cb_irc_hash(irc->raw, len);
	}
	if (cb_irc_dedupe_has(&irc->dedupe, h)) {
		irc->b_dups++;
		return false;
	}
	need = record_need(irc, CB_CHATMSG_BUF_SIZE > CB_CHATMSG_DLQ_MAX(len, 200)
					? CB_CHATMSG_BUF_SIZE
					: CB_CHATMSG_DLQ_MAX(len, 200));
	p = cb_ring_reserve(irc->out, need);
	if (p == NULL) {
		block_on_ring(irc, need);
		return true;
	}
	cb_irc_dedupe_add(&irc->dedupe, h);
	/* Write the JSON where it will stay if the key is as long as the
	 * channel in the line (always, for a valid login). */
	predicted = t->channel.p && t->channel.len <= CB_CHANNEL_MAX
			    ? t->channel.len
			    : 0;
	val = p + HDR_SIZE + predicted;
	out.channel[0] = '\0';
	out.channel_len = 0;
	rc = cb_chatmsg_from_twitch(m, t, irc->batch_wall_ms,
				    irc->cfg->irc_emit_events, &out, val,
				    need - HDR_SIZE - CB_CHANNEL_MAX, errstr,
				    sizeof(errstr));
	if (rc == CB_CHATMSG_CHAT || rc == CB_CHATMSG_EVENT) {
		struct chan *ch = chan_find(irc, out.channel);

		if (out.json != p + HDR_SIZE + out.channel_len)
			memmove(p + HDR_SIZE + out.channel_len, out.json,
				out.json_len);
		memcpy(p + HDR_SIZE, out.channel, out.channel_len);
		fill_hdr(irc, p,
			 rc == CB_CHATMSG_CHAT ? CB_OUT_CHAT : CB_OUT_EVENT,
			 out.channel_len, out.json_len);
		if (rc == CB_CHATMSG_CHAT) {
			irc->b_msgs++;
			if (ch != NULL)
				ch->messages++;
		} else {
			irc->b_events++;
		}
		return false;
	}
	if (rc == CB_CHATMSG_NONE)
		snprintf(errstr, sizeof(errstr), "no record for this %.*s line",
			 (int)m->command.len, m->command.p);
	/* The line is unusable: the same reservation carries its dead
	 * letter (need covers CB_CHATMSG_DLQ_MAX of the line), keyed by its
	 * channel when chatmsg found a valid one. */
	if (rc < 0 && out.channel_len > 0 && out.channel_len <= CB_CHANNEL_MAX)
		key_len = out.channel_len;
	evbuffer_copyout(in, irc->raw, len);
	write_dlq(irc, p, need, irc->raw, len, out.channel, key_len, errstr);
	return false;
}

/* Processes every complete line in c's input.  Returns true when it
 * stopped because the ring is full. */
static bool process_input(struct conn *c)
{
	struct cb_irc *irc = c->irc;
	struct evbuffer *in;

	if (c->bev == NULL)
		return false;
	in = bufferevent_get_input(c->bev);
	while (!irc->blocked) {
		size_t eol_len = 0, avail = evbuffer_get_length(in), n;
		struct evbuffer_ptr eol;

		if (avail == 0)
			break;
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
		if (eol.pos < 0) {
			if (c->skipping) {
				evbuffer_drain(in, avail);
				irc->b_bytes += avail;
			} else if (avail > CB_IRC_LINE_MAX + 1) {
				if (emit_toolong(irc, in, avail))
					break;
				evbuffer_drain(in, avail);
				irc->b_bytes += avail;
				irc->b_lines++;
				c->skipping = true;
			}
			break;
		}
		n = (size_t)eol.pos;
		if (c->skipping) {
			c->skipping = false;
		} else if (n > CB_IRC_LINE_MAX + 1) {
			if (emit_toolong(irc, in, n))
				break;
			irc->b_lines++;
		} else {
			if (handle_line(c, in, n))
				break;
			irc->b_lines++;
		}
		/* handle_line may have closed c (drained after RECONNECT) */
		if (c->bev == NULL || bufferevent_get_input(c->bev) != in)
			return irc->blocked;
		evbuffer_drain(in, n + 1);
		irc->b_bytes += n + 1;
	}
	return irc->blocked;
}

/* The end of a read batch: one ring commit, metrics added once. */
static void finish_batch(struct cb_irc *irc)
{
	cb_ring_commit(irc->out);
	if (irc->b_lines)
		cb_metric_add(CB_M_irc_lines_received_total, irc->b_lines);
	if (irc->b_bytes)
		cb_metric_add(CB_M_irc_bytes_received_total, irc->b_bytes);
	if (irc->b_msgs)
		cb_metric_add(CB_M_irc_messages_total, irc->b_msgs);
	if (irc->b_events)
		cb_metric_add(CB_M_irc_events_total, irc->b_events);
	if (irc->b_dlq)
		cb_metric_add(CB_M_irc_parse_errors_total, irc->b_dlq);
	if (irc->b_dups)
		cb_metric_add(CB_M_irc_duplicates_total, irc->b_dups);
	irc->b_lines = irc->b_bytes = irc->b_msgs = irc->b_events = 0;
	irc->b_dlq = irc->b_dups = 0;
}

/* The producer released space: finish the kept lines, read again. */
static void space_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cb_irc *irc = arg;
	struct conn *c, *next;
	int64_t now = cb_mono_ms();

	cb_ring_drain_fd(cb_ring_producer_fd(irc->out));
	irc->blocked = false;
	irc->batch_wall_us = cb_wall_us();
	irc->batch_wall_ms = irc->batch_wall_us / 1000;
	for (c = irc->conns; c != NULL; c = next) {
		next = c->next;
		if (process_input(c))
			break;
		if (c->dead && c->bev != NULL)
			conn_fail(c, "%s", c->dead_reason);
	}
	finish_batch(irc);
	if (irc->blocked)
		return;
	for (c = irc->conns; c != NULL; c = c->next) {
		/* reading was off: the silence proves nothing */
		c->last_rx_ms = now;
		c->ping_sent_ms = 0;
		if (c->bev != NULL && !c->dead)
			bufferevent_enable(c->bev, EV_READ);
	}
}

/* ---- commands from other threads ---- */

static void apply_set(struct cb_irc *irc)
{
	/* part what is no longer listed */
	for (size_t k = 0; k < irc->nchans;) {
		bool keep = false;

		for (size_t i = 0; i < irc->set_n && !keep; i++)
			keep = strcmp(irc->set_list[i], irc->chans[k]->name) == 0;
		if (keep) {
			k++;
			continue;
		}
		cb_info("irc", "channel %s: leaving (no longer configured)",
			irc->chans[k]->name);
		chan_remove(irc, irc->chans[k]);
	}
	for (size_t i = 0; i < irc->set_n; i++)
		if (chan_find(irc, irc->set_list[i]) == NULL &&
		    chan_add(irc, irc->set_list[i]) != NULL)
			cb_info("irc", "channel %s: joining", irc->set_list[i]);
	irc->set_n = 0;
	assign_channels(irc);
}

static void handle_cmd(struct cb_irc *irc, const struct cb_irc_cmd *cmd)
{
	char name[CB_CHANNEL_MAX + 1];
	struct chan *ch;

	if (cmd->op != CB_IRC_SET_END &&
	    cb_channel_normalize(cmd->channel,
				 strnlen(cmd->channel, sizeof(cmd->channel)),
				 name, NULL, 0) != 0) {
		cb_warn("irc", "ignoring a command for an invalid channel name");
		return;
	}
	switch (cmd->op) {
	case CB_IRC_JOIN:
		ch = chan_find(irc, name);
		if (ch != NULL && ch->state == CB_IRC_CHAN_FAILED) {
			chan_detach(ch);
			chan_set_state(irc, ch, CB_IRC_CHAN_PENDING, NULL);
		} else if (ch == NULL) {
			ch = chan_add(irc, name);
		}
		if (ch != NULL)
			cb_info("irc", "channel %s: joining", name);
		assign_channels(irc);
		break;
	case CB_IRC_PART:
		ch = chan_find(irc, name);
		if (ch != NULL) {
			cb_info("irc", "channel %s: leaving", name);
			chan_remove(irc, ch);
		}
		break;
	case CB_IRC_SET:
		if (irc->set_n == irc->set_cap) {
			size_t cap = irc->set_cap ? irc->set_cap * 2 : 64;
			void *v = realloc(irc->set_list,
					  cap * sizeof(*irc->set_list));

			if (v == NULL)
				return;
			irc->set_list = v;
			irc->set_cap = cap;
		}
		memcpy(irc->set_list[irc->set_n++], name, sizeof(name));
		break;
	case CB_IRC_SET_END:
		apply_set(irc);
		break;
	default:
		break;
	}
}

static void process_cmds(struct cb_irc *irc)
{
	struct cb_ring *r = irc->app->irc_cmd;

	for (;;) {
		const void *p;
		uint32_t len;

		while ((p = cb_ring_read(r, &len)) != NULL) {
			struct cb_irc_cmd cmd;

			if (len != sizeof(cmd))
				continue;
			memcpy(&cmd, p, sizeof(cmd));
			handle_cmd(irc, &cmd);
		}
		cb_ring_release(r);
		if (cb_ring_arm_consumer(r))
			break; /* parked: the fd wakes us */
	}
}

static void cmd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cb_irc *irc = arg;

	cb_ring_drain_fd(fd);
	process_cmds(irc);
}

/* ---- housekeeping: pings, deadlines, status ---- */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cb_irc *irc = arg;
	const struct cb_config *cfg = irc->cfg;
	int64_t now = cb_mono_ms();
	int64_t ping_ms = cfg->irc_ping_interval_s * 1000;
	int64_t pong_ms = cfg->irc_pong_timeout_s * 1000;
	struct conn *c, *next;
	bool pump = false;

	for (c = irc->conns; c != NULL; c = next) {
		next = c->next;
		if (c->bev == NULL || c->dead || c->zombie)
			continue;
		if (c->state == C_CONNECTING || c->state == C_REGISTERING) {
			if (now - c->state_ms > irc->tune.connect_timeout_ms)
				conn_fail(c, "no login within %" PRId64 " ms",
					  irc->tune.connect_timeout_ms);
			continue;
		}
		if (c->state == C_RETIRING && c->replacement == NULL)
			start_drain(c);
		if (c->state == C_RETIRING &&
		    now - c->state_ms > irc->tune.drain_timeout_ms)
			start_drain(c);
		if (irc->blocked)
			continue; /* not reading: no liveness verdicts */
		if (c->ping_sent_ms != 0) {
			if (now - c->ping_sent_ms > pong_ms) {
				if (c->state == C_DRAINING)
					conn_bury(c);
				else
					conn_fail(c, "no PONG within %d s",
						  (int)cfg->irc_pong_timeout_s);
			}
			continue;
		}
		if (now - c->last_rx_ms >= ping_ms) {
			conn_send(c, "PING :cb-%" PRIu64, ++c->ping_seq);
			c->ping_sent_ms = now;
		}
	}
	for (size_t k = 0; k < irc->nchans; k++) {
		struct chan *ch = irc->chans[k];

		if (ch->state != CB_IRC_CHAN_JOINING ||
		    now - ch->join_sent_ms < irc->tune.join_timeout_ms)
			continue;
		if (ch->attempts >= JOIN_ATTEMPTS) {
			cb_error("irc", "channel %s: no JOIN confirmation "
					"after %d attempts",
				 ch->name, ch->attempts);
			chan_set_state(irc, ch, CB_IRC_CHAN_FAILED,
				       "no JOIN confirmation from Twitch");
			if (ch->conn != NULL)
				check_replacement(irc, ch->conn);
		} else {
			chan_set_state(irc, ch, CB_IRC_CHAN_PENDING, NULL);
			pump = true;
		}
	}
	if (pump)
		pump_joins(irc);
	/* idle connections (everything parted) are closed */
	for (c = irc->conns; c != NULL; c = next) {
		next = c->next;
		if (c->nchans == 0 && !c->zombie &&
		    (c->state == C_READY || c->state == C_BACKOFF))
			conn_bury(c);
	}
	update_health(irc);
	if (irc->status_dirty || now - irc->status_ms >= STATUS_EVERY_MS)
		publish_status(irc);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cb_irc *irc = arg;

	cb_ring_drain_fd(fd);
	event_base_loopbreak(irc->base);
}

static void kickoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cb_irc *irc = arg;

	assign_channels(irc);
	process_cmds(irc);
	publish_status(irc);
}

static void *irc_main(void *arg)
{
	struct cb_irc *irc = arg;

	event_base_dispatch(irc->base);
	/* Everything read is in the ring; what sits in socket buffers is
	 * not read at shutdown (Twitch keeps no history anyway). */
	cb_ring_commit(irc->out);
	if (irc->oauth != NULL) {
		cb_oauth_cancel(irc->oauth);
		irc->oauth = NULL;
	}
	while (irc->conns != NULL)
		conn_destroy(irc->conns);
	publish_status(irc);
	cb_health_set(CB_DEP_IRC, CB_DEP_DOWN);
	return NULL;
}

/* ---- life cycle ---- */

static void irc_free(struct cb_irc *irc)
{
	if (irc == NULL)
		return;
	while (irc->conns != NULL)
		conn_destroy(irc->conns);
	for (size_t k = 0; k < irc->nchans; k++)
		free(irc->chans[k]);
	free(irc->chans);
	free(irc->index);
	free(irc->set_list);
	if (irc->stop_ev)
		event_free(irc->stop_ev);
	if (irc->cmd_ev)
		event_free(irc->cmd_ev);
	if (irc->space_ev)
		event_free(irc->space_ev);
	if (irc->tick_ev)
		event_free(irc->tick_ev);
	if (irc->pace_ev)
		event_free(irc->pace_ev);
	if (irc->reap_ev)
		event_free(irc->reap_ev);
	if (irc->dns)
		evdns_base_free(irc->dns, 0);
	if (irc->base)
		event_base_free(irc->base);
	if (irc->ssl_ctx)
		SSL_CTX_free(irc->ssl_ctx);
	if (irc->stop_efd >= 0)
		close(irc->stop_efd);
	cb_irc_pacer_release(&irc->pacer);
	cb_irc_dedupe_release(&irc->dedupe);
	explicit_bzero(irc->token, sizeof(irc->token));
	explicit_bzero(irc->refresh, sizeof(irc->refresh));
	pthread_mutex_destroy(&irc->status_lock);
	free(irc->status);
	free(irc);
}

static int setup_tls(struct cb_irc *irc, char *errstr, size_t errstr_size)
{
	return cb_tls_client_ctx(&irc->ssl_ctx, irc->cfg->irc_ca_file,
				 "irc_ca_file", errstr, errstr_size);
}

static int setup_login(struct cb_irc *irc, char *errstr, size_t errstr_size)
{
	const struct cb_config *cfg = irc->cfg;
	const char *tok = cfg->twitch_oauth_token;

	if (strncmp(tok, "oauth:", 6) == 0)
		tok += 6;
	if (strlen(tok) >= sizeof(irc->token))
		return cb_seterr(errstr, errstr_size, CB_E_CONFIG,
				 "twitch_oauth_token is too long");
	snprintf(irc->token, sizeof(irc->token), "%s", tok);
	if (irc->token[0] != '\0') {
		size_t n = strlen(cfg->twitch_username);

		if (n == 0 || n >= sizeof(irc->username))
			return cb_seterr(errstr, errstr_size, CB_E_CONFIG,
					 "an OAuth token needs the login it "
					 "belongs to: set --username "
					 "(TWITCH_USERNAME)");
		for (size_t i = 0; i <= n; i++) {
			char ch = cfg->twitch_username[i];

			irc->username[i] =
				(ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
		}
	}
	irc->refresh_enabled = cfg->twitch_client_id[0] != '\0' &&
			       cfg->twitch_client_secret[0] != '\0' &&
			       cfg->twitch_refresh_token[0] != '\0';
	if (irc->refresh_enabled) {
		if (strlen(cfg->twitch_refresh_token) >= sizeof(irc->refresh))
			return cb_seterr(errstr, errstr_size, CB_E_CONFIG,
					 "twitch_refresh_token is too long");
		snprintf(irc->refresh, sizeof(irc->refresh), "%s",
			 cfg->twitch_refresh_token);
	}
	return 0;
}

int cb_irc_start_tuned(struct cb_app *app, const struct cb_irc_tuning *t,
		       char *errstr, size_t errstr_size)
{
	const struct cb_config *cfg = app->cfg;
	struct cb_irc *irc = calloc(1, sizeof(*irc));
	struct timeval tick;
	struct timeval zero = {0, 0};
	uint64_t seed = 0;
	int err = 0;

	if (irc == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "out of memory");
	irc->app = app;
	irc->cfg = cfg;
	irc->tune = *t;
	irc->stop_efd = -1;
	irc->out = app->irc_out;
	irc->out_max = cb_ring_max_record(app->irc_out);
	irc->health = CB_DEP_UNKNOWN;
	pthread_mutex_init(&irc->status_lock, NULL);
	if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		seed = (uint64_t)cb_wall_us() ^ ((uint64_t)getpid() << 40);
	irc->rng = seed | 1;
	if (irc->out_max < HDR_SIZE + CB_CHANNEL_MAX + CB_CHATMSG_BUF_SIZE) {
		err = cb_seterr(errstr, errstr_size, CB_E_CONFIG,
				"the irc_out ring is too small for one record "
				"(%u bytes; needs a quarter of capacity >= %zu)",
				irc->out_max,
				HDR_SIZE + CB_CHANNEL_MAX + CB_CHATMSG_BUF_SIZE);
		goto out;
	}
	err = setup_login(irc, errstr, errstr_size);
	if (err != 0)
		goto out;
	if (cb_irc_pacer_init(&irc->pacer, (uint32_t)cfg->irc_join_limit,
			      t->join_window_ms + t->join_margin_ms) != 0 ||
	    cb_irc_dedupe_init(&irc->dedupe, t->dedupe_keys) != 0) {
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				"out of memory");
		goto out;
	}
	if (cfg->irc_tls) {
		err = setup_tls(irc, errstr, errstr_size);
		if (err != 0)
			goto out;
	}
	for (size_t i = 0; i < cfg->channel.n; i++)
		if (chan_add(irc, cfg->channel.v[i]) == NULL) {
			err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
					"out of memory");
			goto out;
		}
	irc->base = event_base_new();
	irc->stop_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (irc->base == NULL || irc->stop_efd < 0) {
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				"cannot create the event loop");
		goto out;
	}
	irc->dns = evdns_base_new(irc->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
						     EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (irc->dns == NULL) /* no resolv.conf: addresses still work */
		irc->dns = evdns_base_new(irc->base,
					  EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	irc->stop_ev = event_new(irc->base, irc->stop_efd, EV_READ | EV_PERSIST,
				 stop_cb, irc);
	irc->cmd_ev = event_new(irc->base, cb_ring_consumer_fd(app->irc_cmd),
				EV_READ | EV_PERSIST, cmd_cb, irc);
	irc->space_ev = event_new(irc->base, cb_ring_producer_fd(app->irc_out),
				  EV_READ, space_cb, irc);
	irc->tick_ev = event_new(irc->base, -1, EV_PERSIST, tick_cb, irc);
	irc->pace_ev = evtimer_new(irc->base, pace_cb, irc);
	irc->reap_ev = evtimer_new(irc->base, reap_cb, irc);
	if (irc->stop_ev == NULL || irc->cmd_ev == NULL ||
	    irc->space_ev == NULL || irc->tick_ev == NULL ||
	    irc->pace_ev == NULL || irc->reap_ev == NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				"cannot create events");
		goto out;
	}
	tick.tv_sec = t->tick_ms / 1000;
	tick.tv_usec = (t->tick_ms % 1000) * 1000;
	event_add(irc->stop_ev, NULL);
	event_add(irc->cmd_ev, NULL);
	event_add(irc->tick_ev, &tick);
	event_base_once(irc->base, -1, EV_TIMEOUT, kickoff_cb, irc, &zero);
	cb_health_set(CB_DEP_IRC, CB_DEP_UNKNOWN);
	/* The thread owns the base from here (pthread_create orders it). */
	err = cb_thread_start(&irc->thread, irc_main, irc, "irc", errstr,
			      errstr_size);
	if (err != 0)
		goto out;
	cb_info("irc", "%zu channel(s), %s login to %s:%d (%s)", irc->nchans,
		irc->token[0] ? "OAuth" : "anonymous", cfg->irc_host,
		(int)cfg->irc_port, cfg->irc_tls ? "TLS" : "plain TCP");
	app->irc = irc;
	irc = NULL;
out:
	irc_free(irc);
	return err;
}

int cb_irc_start(struct cb_app *app, char *errstr, size_t errstr_size)
{
	struct cb_irc_tuning t;

	cb_irc_tuning_defaults(&t);
	return cb_irc_start_tuned(app, &t, errstr, errstr_size);
}

void cb_irc_stop(struct cb_app *app)
{
	struct cb_irc *irc = app->irc;

	if (irc == NULL)
		return;
	cb_thread_stop(&irc->thread, &irc->stopping, irc->stop_efd);
	app->irc = NULL;
	irc_free(irc);
}
