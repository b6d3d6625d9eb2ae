/*
 * simulate.c - `chatbattle simulate`: a Twitch-compatible IRC server for
 * demos, tests and benchmarks (see simulate.h and docs/ingest.md).
 *
 * One thread, one libevent loop.  It owns:
 *   - the chat listener (TLS with a key and self-signed certificate made at
 *     start, or plain TCP) and its clients: login (PASS/NICK, CAP), JOIN,
 *     PART, PING/PONG, RECONNECT, QUIT;
 *   - the channels and their generators: every tick each channel with a
 *     joined client makes the lines that are due at its rate (sim_rate, or
 *     its own from sim_channel_rates or "rate N CHANNEL") (PRIVMSG with
 *     realistic tags, some USERNOTICE/CLEARCHAT events, optionally malformed
 *     lines), or the replay of a file of raw lines;
 *   - the control listener (loopback only): one command per line, one reply
 *     line per command (stats, pause, resume, rate, reconnect, drop, sync,
 *     nopong, badtoken, send, viewers, helix429, joins, quit);
 *   - a Helix-compatible HTTP endpoint (loopback, plain HTTP, evhttp on the
 *     same loop): POST /oauth2/token (client credentials) and GET
 *     /helix/streams?user_login=... with Twitch's rate-limit headers and
 *     429s on demand, for the viewer counts.
 *
 * Exact ground truth: a line is counted for a channel when it is written to
 * at least one client that joined that channel.  "drop" and "sync" send a
 * PING after the last chat line and wait for each client's PONG, which
 * proves the client has read everything before (drop then resets the
 * connections).  Closing a client gracefully flushes its output, sends
 * close_notify and FIN, and keeps reading until the peer closes, so no
 * written byte is lost to an RST.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "chatbattle/clock.h"
#include "chatbattle/commands.h"
#include "chatbattle/config.h"
#include "chatbattle/err.h"
#include "chatbattle/irc_msg.h"
#include "chatbattle/log.h"
#include "chatbattle/simulate.h"
#include "chatbattle/tls.h"

#define SIM_MAX_CHANNELS 1024
#define SIM_CLIENT_LINE_MAX 8192   /* longest line a chat client may send */
#define SIM_CONTROL_LINE_MAX 65536 /* "send" carries over-long test lines */
#define SIM_JOIN_LOG 4096
#define SIM_TICK_MS 5
#define SIM_SYNC_TIMEOUT_MS 15000
#define SIM_LINGER_MS 5000 /* graceful close: wait this long for the peer */
#define SIM_USERS 256
#define SIM_GEN_LINE_MAX 4096
#define SIM_REPLAY_MAX_BYTES (256u << 20)

enum line_kind { LK_MESSAGE, LK_EVENT, LK_MALFORMED, LK_INJECTED, LK_OTHER };

struct sim_chan {
	char name[CB_CHANNEL_MAX + 1];
	uint64_t room_id;
	uint64_t sent[5]; /* by enum line_kind */
	uint64_t seq;     /* lines generated (sent or not) */
	double due;
	uint32_t joined;  /* clients that joined it */
	bool configured;  /* listed in sim_channels or sim_channel_rates */
	double rate;      /* lines per second when own_rate, else sim->rate */
	bool own_rate;
	int64_t viewers;  /* Helix viewer_count; -1: from the rate */
};

struct cb_sim;

struct sim_client {
	struct cb_sim *sim;
	struct sim_client *next;
	struct bufferevent *bev;
	unsigned id;
	bool tls;
	bool cap_tags, cap_commands, cap_membership;
	int pass; /* 0 none, 1 good, 2 bad token, 3 malformed */
	bool registered, anon;
	bool closing;      /* graceful close in progress: no more output */
	bool linger;       /* output flushed, waiting for the peer's EOF */
	bool sync_pending; /* a sync PING is outstanding */
	int64_t close_at_ms; /* after RECONNECT: close gracefully then */
	struct event *linger_ev;
	char nick[32];
	uint8_t joined[SIM_MAX_CHANNELS / 8];
};

struct sim_ctl {
	struct cb_sim *sim;
	struct sim_ctl *next;
	struct bufferevent *bev;
};

enum sync_kind { SYNC_NONE, SYNC_SYNC, SYNC_DROP, SYNC_DONE };

struct sim_user {
	char login[26];
	char display[48];
	uint64_t id;
	char color[8];
	int badge;  /* index into badge_sets */
	int months; /* subscriber months, 0: not a subscriber */
};

struct cb_sim {
	const struct cb_config *cfg;
	struct event_base *base;
	SSL_CTX *ssl_ctx;
	struct evconnlistener *listener, *ctl_listener;
	struct evhttp *helix;
	int helix_port;
	uint64_t helix_tokens, helix_requests, helix_throttled;
	uint64_t helix_429_left;  /* the next requests answered 429 */
	int64_t helix_bucket_s;   /* the rate-limit minute (epoch seconds) */
	int helix_used;           /* points used in it */
	struct event *tick_ev, *stop_ev, *sig_int, *sig_term;
	int stop_efd;
	int port, ctl_port;
	char cert_path[512];

	struct sim_client *clients;
	struct sim_ctl *ctls;
	unsigned next_client_id;
	uint64_t connections_total, logins_ok, logins_anon, logins_failed;
	uint64_t pings_sent, pongs_received, client_pings, reconnects_sent;
	uint64_t drops, resets;

	struct sim_chan *chans; /* SIM_MAX_CHANNELS */
	size_t nchans;

	double rate;
	uint64_t count;
	bool paused, nopong;
	char bad_token[256];
	uint64_t rng;
	int64_t start_ms, last_tick_ms, next_ping_ms;
	struct sim_user users[SIM_USERS];

	/* the sync/drop/done operation in progress */
	enum sync_kind sync;
	struct sim_ctl *sync_ctl;
	uint64_t sync_token;
	unsigned sync_remaining;
	int64_t sync_deadline_ms;
	bool sync_was_paused;
	bool done; /* count reached or replay finished: stop after sync */
	bool finishing; /* closing clients before the loop exits */
	int64_t finish_deadline_ms;

	int64_t joins[SIM_JOIN_LOG];
	size_t njoins;
	uint64_t joins_total, parts_total;

	/* replay */
	char *replay;
	size_t replay_len, replay_pos;
	double replay_due;
	uint64_t replay_lines, replay_skipped;
	struct cb_irc_msg scratch_msg;
	char scratch_line[CB_IRC_LINE_MAX + 2];
	int rc;
};

/* ---- small helpers ---- */

static uint32_t rnd_below(struct cb_sim *sim, uint32_t n)
{
	return (uint32_t)((cb_rand_next(&sim->rng) >> 32) % n);
}

static double rnd_unit(struct cb_sim *sim)
{
	return (double)(cb_rand_next(&sim->rng) >> 11) / 9007199254740992.0;
}

/* An append-only text buffer with a fixed capacity (generated lines). */
struct sbuf {
	char *p;
	size_t len, cap;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n > b->cap)
		n = b->cap - b->len;
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_u64(struct sbuf *b, uint64_t v)
{
	char tmp[24];
	int i = (int)sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	sb_add(b, tmp + i, sizeof(tmp) - (size_t)i);
}

static void sb_uuid(struct sbuf *b, struct cb_sim *sim)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t hi = cb_rand_next(&sim->rng), lo = cb_rand_next(&sim->rng);
	char u[36];
	int k = 0;

	hi = (hi & ~0xF000ULL) | 0x4000ULL;                  /* version 4 */
	lo = (lo & ~(3ULL << 62)) | (2ULL << 62);             /* variant 10 */
	for (int i = 0; i < 32; i++) {
		uint64_t w = i < 16 ? hi : lo;
		int shift = 60 - 4 * (i % 16);

		if (i == 8 || i == 12 || i == 16 || i == 20)
			u[k++] = '-';
		u[k++] = hex[(w >> shift) & 15];
	}
	sb_add(b, u, sizeof(u));
}

/* IRCv3 tag value escaping (only what generated values can contain). */
static void sb_tagval(struct sbuf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		switch (s[i]) {
		case ' ':
			sb_add(b, "\\s", 2);
			break;
		case ';':
			sb_add(b, "\\:", 2);
			break;
		case '\\':
			sb_add(b, "\\\\", 2);
			break;
		default:
			sb_add(b, s + i, 1);
		}
	}
}

/* Unicode code points in a UTF-8 string (Twitch emote ranges count them). */
static uint32_t utf8_cps(const char *s, size_t n)
{
	uint32_t cps = 0;

	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			cps++;
	return cps;
}

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* ---- the certificate ---- */

static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return 0;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/*
 * A P-256 key and a self-signed certificate for localhost, 127.0.0.1 and
 * ::1, valid for 30 days.  It is its own CA (CA:TRUE, keyCertSign), so a
 * client can trust exactly this file with --irc-ca-file and still verify the
 * host name.
 */
static int make_cert(struct cb_sim *sim, char *errstr, size_t errstr_size)
{
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	X509_NAME *name;
	FILE *f = NULL;
	char tmp[600];
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	int err = 0, fd;

	pkey = EVP_EC_gen("P-256");
	x = X509_new();
	if (pkey == NULL || x == NULL)
		goto ssl_fail;
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		goto ssl_fail;
	serial[0] &= 0x7F;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (bn == NULL || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		goto ssl_fail;
	if (!X509_set_version(x, 2) ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400) == NULL ||
	    !X509_set_pubkey(x, pkey))
		goto ssl_fail;
	name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
					(const unsigned char *)"chatbattle simulate",
					-1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					(const unsigned char *)"localhost", -1,
					-1, 0) ||
	    !X509_set_issuer_name(x, name))
		goto ssl_fail;
	if (!add_ext(x, NID_basic_constraints, "critical,CA:TRUE") ||
	    !add_ext(x, NID_key_usage,
		     "critical,digitalSignature,keyCertSign") ||
	    !add_ext(x, NID_ext_key_usage, "serverAuth") ||
	    !add_ext(x, NID_subject_key_identifier, "hash") ||
	    !add_ext(x, NID_subject_alt_name,
		     "DNS:localhost,IP:127.0.0.1,IP:::1"))
		goto ssl_fail;
	if (!X509_sign(x, pkey, EVP_sha256()))
		goto ssl_fail;
	if (SSL_CTX_use_certificate(sim->ssl_ctx, x) != 1 ||
	    SSL_CTX_use_PrivateKey(sim->ssl_ctx, pkey) != 1)
		goto ssl_fail;

	/* Write to a temporary name and rename: a reader never sees half. */
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", sim->cert_path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_IO, "%s: %s", tmp,
				strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	if (!PEM_write_X509(f, x)) {
		fclose(f);
		f = NULL;
		unlink(tmp);
		goto ssl_fail;
	}
	if (fclose(f) != 0 || rename(tmp, sim->cert_path) != 0) {
		f = NULL;
		err = cb_seterr(errstr, errstr_size, CB_E_IO, "%s: %s",
				sim->cert_path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	f = NULL;
	goto out;
ssl_fail:
	err = cb_tls_seterr(errstr, errstr_size,
			    "cannot make the certificate");
out:
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return err;
}

/* ---- channels ---- */

static struct sim_chan *chan_find(struct cb_sim *sim, const char *name)
{
	for (size_t i = 0; i < sim->nchans; i++)
		if (strcmp(sim->chans[i].name, name) == 0)
			return &sim->chans[i];
	return NULL;
}

static struct sim_chan *chan_get(struct cb_sim *sim, const char *name)
{
	struct sim_chan *ch = chan_find(sim, name);

	if (ch != NULL || sim->nchans >= SIM_MAX_CHANNELS)
		return ch;
	ch = &sim->chans[sim->nchans++];
	memset(ch, 0, sizeof(*ch));
	snprintf(ch->name, sizeof(ch->name), "%s", name);
	ch->room_id = 10000000 + name_hash(name) % 900000000;
	ch->viewers = -1;
	return ch;
}

static size_t chan_idx(const struct cb_sim *sim, const struct sim_chan *ch)
{
	return (size_t)(ch - sim->chans);
}

static bool client_joined(const struct sim_client *c, size_t idx)
{
	return (c->joined[idx / 8] >> (idx % 8)) & 1;
}

/* ---- client output ---- */

static void client_send(struct sim_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void client_send(struct sim_client *c, const char *fmt, ...)
{
	struct evbuffer *out;
	va_list ap;

	if (c->closing || c->bev == NULL)
		return;
	out = bufferevent_get_output(c->bev);
	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

/* Writes a generated line; drops its tags for a client without the tags
 * capability, as Twitch does. */
static void client_line(struct sim_client *c, const char *line, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (!c->cap_tags && len > 0 && line[0] == '@') {
		const char *sp = memchr(line, ' ', len);

		if (sp != NULL) {
			len -= (size_t)(sp + 1 - line);
			line = sp + 1;
		}
	}
	evbuffer_add(out, line, len);
	evbuffer_add(out, "\r\n", 2);
}

static void sync_client_gone(struct cb_sim *sim, struct sim_client *c);

static void client_free(struct sim_client *c)
{
	struct cb_sim *sim = c->sim;
	struct sim_client **pp;

	for (pp = &sim->clients; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	sync_client_gone(sim, c);
	for (size_t i = 0; i < sim->nchans; i++)
		if (client_joined(c, i))
			sim->chans[i].joined--;
	if (c->linger_ev != NULL)
		event_free(c->linger_ev);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	free(c);
}

/* Drop: an RST, so the client sees a broken connection, not an orderly
 * close.  Only after a sync, so the client has read everything sent. */
static void client_reset(struct sim_client *c)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	evutil_socket_t fd = bufferevent_getfd(c->bev);

	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	if (c->tls) {
		SSL *ssl = bufferevent_openssl_get_ssl(c->bev);

		if (ssl != NULL)
			SSL_set_quiet_shutdown(ssl, 1);
	}
	c->sim->resets++;
	client_free(c);
}

static void linger_timeout(evutil_socket_t fd, short what, void *arg)
{
	client_free(arg);
}

/* Output flushed: send close_notify and FIN, then wait for the peer's EOF
 * (closing with unread input would send an RST that can destroy data the
 * peer has not read yet). */
static void client_shut(struct sim_client *c)
{
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	struct timeval tv = {SIM_LINGER_MS / 1000, 0};

	c->linger = true;
	if (c->tls) {
		SSL *ssl = bufferevent_openssl_get_ssl(c->bev);

		if (ssl != NULL && SSL_shutdown(ssl) < 0)
			ERR_clear_error();
	}
	if (fd >= 0)
		shutdown(fd, SHUT_WR);
	bufferevent_disable(c->bev, EV_WRITE);
	bufferevent_enable(c->bev, EV_READ);
	c->linger_ev = evtimer_new(c->sim->base, linger_timeout, c);
	if (c->linger_ev == NULL)
		client_free(c);
	else
		evtimer_add(c->linger_ev, &tv);
}

static void client_write_cb(struct bufferevent *bev, void *arg)
{
	struct sim_client *c = arg;

	if (c->closing && !c->linger &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		client_shut(c);
}

/* Graceful close: no more output; flush what is queued, then shut. */
static void client_close(struct sim_client *c)
{
	if (c->closing)
		return;
	c->closing = true;
	sync_client_gone(c->sim, c);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		client_shut(c);
}

/* ---- sync: PING after the last line, wait for every PONG ---- */

static void ctl_reply(struct sim_ctl *ctl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void sync_finish(struct cb_sim *sim);

static void sync_client_gone(struct cb_sim *sim, struct sim_client *c)
{
	if (!c->sync_pending)
		return;
	c->sync_pending = false;
	if (sim->sync_remaining > 0)
		sim->sync_remaining--;
	/* finished by the next tick, never re-entrantly from a free */
}

static int sync_start(struct cb_sim *sim, enum sync_kind kind,
		      struct sim_ctl *ctl)
{
	if (sim->sync != SYNC_NONE)
		return CB_E_AGAIN;
	sim->sync = kind;
	sim->sync_ctl = ctl;
	sim->sync_token++;
	sim->sync_remaining = 0;
	sim->sync_deadline_ms = cb_mono_ms() + SIM_SYNC_TIMEOUT_MS;
	sim->sync_was_paused = sim->paused;
	if (kind == SYNC_DROP)
		sim->paused = true; /* stop sending before the reset */
	for (struct sim_client *c = sim->clients; c != NULL; c = c->next) {
		if (!c->registered || c->closing)
			continue;
		client_send(c, "PING :sync-%" PRIu64, sim->sync_token);
		c->sync_pending = true;
		sim->sync_remaining++;
	}
	return 0;
}

/* A JSON document made by fn (snprintf-style: returns the length it
 * needs) in a malloc'd, NUL-terminated buffer, or NULL. */
static char *sim_format(struct cb_sim *sim,
			size_t (*fn)(struct cb_sim *sim, char *buf, size_t size))
{
	size_t need = fn(sim, NULL, 0);
	char *buf = malloc(need + 1);

	if (buf != NULL)
		fn(sim, buf, need + 1);
	return buf;
}

static void print_stats(struct cb_sim *sim, FILE *f)
{
	char *buf = sim_format(sim, cb_sim_stats_json);

	if (buf == NULL)
		return;
	fprintf(f, "%s\n", buf);
	fflush(f);
	free(buf);
}

static void sync_finish(struct cb_sim *sim)
{
	unsigned unsynced = 0, dropped = 0;
	struct sim_client *c, *next;

	for (c = sim->clients; c != NULL; c = c->next)
		if (c->sync_pending) {
			c->sync_pending = false;
			unsynced++;
		}
	switch (sim->sync) {
	case SYNC_SYNC:
		if (sim->sync_ctl != NULL)
			ctl_reply(sim->sync_ctl, "ok synced unsynced=%u",
				  unsynced);
		break;
	case SYNC_DROP:
		for (c = sim->clients; c != NULL; c = next) {
			next = c->next;
			if (c->closing)
				continue;
			client_reset(c);
			dropped++;
		}
		sim->drops++;
		sim->paused = sim->sync_was_paused;
		if (sim->sync_ctl != NULL)
			ctl_reply(sim->sync_ctl,
				  "ok dropped=%u unsynced=%u", dropped,
				  unsynced);
		cb_info("simulate", "dropped %u connection(s)", dropped);
		break;
	case SYNC_DONE:
		print_stats(sim, stdout);
		cb_info("simulate", "all chat sent; closing");
		sim->finishing = true;
		sim->finish_deadline_ms = cb_mono_ms() + SIM_LINGER_MS;
		for (c = sim->clients; c != NULL; c = next) {
			next = c->next;
			client_close(c);
		}
		break;
	case SYNC_NONE:
		break;
	}
	sim->sync = SYNC_NONE;
	sim->sync_ctl = NULL;
}

/*
 * sim_channel_rates: "CHANNEL=RATE,..." gives those channels their own
 * lines per second (they then have chat even when sim_channels lists
 * others).  A bad entry is an error naming it.
 */
static int channel_rates(struct cb_sim *sim, const char *list, char *errstr,
			 size_t errstr_size)
{
	const char *p = list;

	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		char name[CB_CHANNEL_MAX + 1], why[96], num[32];
		struct sim_chan *ch;
		double r = -1;
		char *end = NULL;
		size_t nlen;

		if (eq != NULL &&
		    (nlen = len - (size_t)(eq + 1 - p)) < sizeof(num)) {
			memcpy(num, eq + 1, nlen);
			num[nlen] = '\0';
			r = strtod(num, &end);
		}
		if (eq == NULL || end == NULL || end == num || *end != '\0' ||
		    !(r >= 0) || !isfinite(r) ||
		    cb_channel_normalize(p, (size_t)(eq - p), name, why,
					 sizeof(why)) != 0)
			return cb_seterr(errstr, errstr_size, CB_E_CONFIG,
					 "sim_channel_rates: \"%.*s\" is not "
					 "CHANNEL=RATE (messages per second "
					 ">= 0)",
					 (int)(len > 60 ? 60 : len), p);
		ch = chan_get(sim, name);
		if (ch == NULL)
			return cb_seterr(errstr, errstr_size, CB_E_CONFIG,
					 "sim_channel_rates: more than %d "
					 "channels",
					 SIM_MAX_CHANNELS);
		ch->rate = r;
		ch->own_rate = true;
		ch->configured = true;
		p += len + (comma != NULL);
	}
	return 0;
}

/* ---- generated chat ---- */

static const char *const words[] = {
	"hello", "chat", "gg", "lol", "nice", "play", "wow", "what", "is",
	"this", "the", "stream", "pog", "clip", "it", "yes", "no", "when",
	"again", "héllo", "naïve", "日本語", "Привет", "ñandú", "straße",
	"😂", "❤️", "👍🏽", "🔥", "🇩🇪", "Ω", "café", "ok", "wait", "why",
};
#define NWORDS (sizeof(words) / sizeof(words[0]))

static const struct {
	const char *name, *id;
} emotes[] = {
	{"Kappa", "25"},	  {"PogChamp", "305954156"},
	{"LUL", "425618"},	  {"Keepo", "1902"},
	{"4Head", "354"},	  {"BibleThump", "86"},
	{"Kreygasm", "41"},	  {"ResidentSleeper", "245"},
	{"NotLikeThis", "58765"}, {"SeemsGood", "64138"},
};
#define NEMOTES (sizeof(emotes) / sizeof(emotes[0]))

static const char *const badge_sets[][2] = {
	{"", ""},
	{"subscriber/12", "subscriber/14"},
	{"moderator/1,subscriber/6", "subscriber/8"},
	{"vip/1", ""},
	{"premium/1", ""},
	{"subscriber/0,glhf-pledge/1", "subscriber/2"},
};
#define NBADGES (sizeof(badge_sets) / sizeof(badge_sets[0]))

static void make_users(struct cb_sim *sim)
{
	static const char *const stems[] = {"viewer", "kappa_fan", "night",
					    "pixel", "zed", "lurker", "owl",
					    "mango"};
	static const char *const exotic[] = {"ユーザー", "Jösé", "Ĳsbrand",
					     "Дмитрий"};

	for (int i = 0; i < SIM_USERS; i++) {
		struct sim_user *u = &sim->users[i];
		const char *stem = stems[i % 8];

		snprintf(u->login, sizeof(u->login), "%s%d", stem, i);
		if (i % 16 == 5)
			snprintf(u->display, sizeof(u->display), "%s%d",
				 exotic[(i / 16) % 4], i);
		else {
			memcpy(u->display, u->login, sizeof(u->login));
			u->display[0] = (char)(u->display[0] - 32);
		}
		u->id = 100000000 + rnd_below(sim, 800000000);
		if (i % 7 == 0)
			u->color[0] = '\0';
		else
			snprintf(u->color, sizeof(u->color), "#%06X",
				 rnd_below(sim, 0x1000000));
		u->badge = (int)rnd_below(sim, NBADGES);
		u->months = u->badge == 1 || u->badge == 2 || u->badge == 5
				    ? 1 + (int)rnd_below(sim, 40)
				    : 0;
	}
}

/* One chat text with emotes; fills the emotes tag value (grouped by id,
 * ranges in code points, end inclusive, as Twitch sends them).  base_cps is
 * where the text starts (a reply's "@name " mention counts). */
static void gen_text(struct cb_sim *sim, struct sbuf *text, struct sbuf *etag,
		     uint32_t base_cps)
{
	uint32_t starts[16], used[16];
	int nused = 0, nr = 0, which[16];
	uint32_t cp = base_cps;
	uint32_t n = 1 + rnd_below(sim, 10);

	for (uint32_t w = 0; w < n; w++) {
		const char *s;
		size_t len;

		if (w > 0) {
			sb_add(text, " ", 1);
			cp++;
		}
		if (rnd_below(sim, 5) == 0 && nr < 16) {
			int e = (int)rnd_below(sim, NEMOTES);

			s = emotes[e].name;
			len = strlen(s);
			starts[nr] = cp;
			which[nr++] = e;
		} else {
			s = words[rnd_below(sim, NWORDS)];
			len = strlen(s);
		}
		sb_add(text, s, len);
		cp += utf8_cps(s, len);
	}
	/* group the ranges by emote id in order of first appearance */
	for (int i = 0; i < nr; i++) {
		bool seen = false;

		for (int k = 0; k < nused; k++)
			seen |= (int)used[k] == which[i];
		if (!seen)
			used[nused++] = (uint32_t)which[i];
	}
	for (int k = 0; k < nused; k++) {
		int e = (int)used[k];
		bool first = true;

		if (k > 0)
			sb_add(etag, "/", 1);
		sb_str(etag, emotes[e].id);
		sb_add(etag, ":", 1);
		for (int i = 0; i < nr; i++) {
			if (which[i] != e)
				continue;
			if (!first)
				sb_add(etag, ",", 1);
			first = false;
			sb_u64(etag, starts[i]);
			sb_add(etag, "-", 1);
			sb_u64(etag, starts[i] + (uint32_t)strlen(emotes[e].name) -
					     1);
		}
	}
}

static void gen_user_tags(struct sbuf *b, const struct sim_user *u)
{
	sb_str(b, "@badge-info=");
	sb_str(b, badge_sets[u->badge][1]);
	sb_str(b, ";badges=");
	sb_str(b, badge_sets[u->badge][0]);
}

static void gen_privmsg(struct cb_sim *sim, struct sim_chan *ch,
			struct sbuf *b, int64_t ts)
{
	const struct sim_user *u = &sim->users[rnd_below(sim, SIM_USERS)];
	const struct sim_user *parent = NULL;
	char tbuf[1024], ebuf[512];
	struct sbuf text = {tbuf, 0, sizeof(tbuf)};
	struct sbuf etag = {ebuf, 0, sizeof(ebuf)};
	uint32_t r = rnd_below(sim, 100), base_cps = 0;
	bool action = r < 3, bits = r >= 3 && r < 5, reply = r >= 5 && r < 10;
	bool first = r == 10;

	if (reply) {
		parent = &sim->users[rnd_below(sim, SIM_USERS)];
		sb_add(&text, "@", 1);
		sb_str(&text, parent->display);
		sb_add(&text, " ", 1);
		base_cps = utf8_cps(text.p, text.len);
	}
	if (bits) {
		sb_str(&text, "Cheer100 ");
		base_cps = utf8_cps(text.p, text.len);
	}
	gen_text(sim, &text, &etag, base_cps);

	gen_user_tags(b, u);
	if (bits)
		sb_str(b, ";bits=100");
	sb_str(b, ";client-nonce=");
	sb_u64(b, cb_rand_next(&sim->rng));
	sb_str(b, ";color=");
	sb_str(b, u->color);
	sb_str(b, ";display-name=");
	sb_tagval(b, u->display, strlen(u->display));
	sb_str(b, ";emotes=");
	sb_add(b, etag.p, etag.len);
	sb_str(b, first ? ";first-msg=1" : ";first-msg=0");
	sb_str(b, ";flags=;id=");
	sb_uuid(b, sim);
	sb_str(b, u->badge == 2 ? ";mod=1" : ";mod=0");
	if (reply) {
		sb_str(b, ";reply-parent-display-name=");
		sb_tagval(b, parent->display, strlen(parent->display));
		sb_str(b, ";reply-parent-msg-body=");
		sb_tagval(b, "what is this stream; a \\ test", 29);
		sb_str(b, ";reply-parent-msg-id=");
		sb_uuid(b, sim);
		sb_str(b, ";reply-parent-user-id=");
		sb_u64(b, parent->id);
		sb_str(b, ";reply-parent-user-login=");
		sb_str(b, parent->login);
	}
	sb_str(b, ";returning-chatter=0;room-id=");
	sb_u64(b, ch->room_id);
	sb_str(b, u->months ? ";subscriber=1" : ";subscriber=0");
	sb_str(b, ";tmi-sent-ts=");
	sb_u64(b, (uint64_t)ts);
	sb_str(b, ";turbo=0;user-id=");
	sb_u64(b, u->id);
	sb_str(b, u->badge == 2 ? ";user-type=mod :" : ";user-type= :");
	sb_str(b, u->login);
	sb_add(b, "!", 1);
	sb_str(b, u->login);
	sb_add(b, "@", 1);
	sb_str(b, u->login);
	sb_str(b, ".tmi.twitch.tv PRIVMSG #");
	sb_str(b, ch->name);
	sb_str(b, " :");
	if (action)
		sb_str(b, "\x01" "ACTION ");
	sb_add(b, text.p, text.len);
	if (action)
		sb_str(b, "\x01");
}

static void gen_event(struct cb_sim *sim, struct sim_chan *ch, struct sbuf *b,
		      int64_t ts)
{
	const struct sim_user *u = &sim->users[rnd_below(sim, SIM_USERS)];
	uint32_t r = rnd_below(sim, 100);

	if (r < 25) {
		/* CLEARCHAT has no id tag: a unique target keeps every line
		 * distinct (the reader dedupes identical lines). */
		sb_str(b, r < 15 ? "@ban-duration=600;room-id=" : "@room-id=");
		sb_u64(b, ch->room_id);
		sb_str(b, ";target-user-id=");
		sb_u64(b, 900000000 + ch->seq);
		sb_str(b, ";tmi-sent-ts=");
		sb_u64(b, (uint64_t)ts);
		sb_str(b, " :tmi.twitch.tv CLEARCHAT #");
		sb_str(b, ch->name);
		sb_str(b, " :spammer");
		sb_u64(b, ch->seq);
		return;
	}
	gen_user_tags(b, u);
	sb_str(b, ";color=");
	sb_str(b, u->color);
	sb_str(b, ";display-name=");
	sb_tagval(b, u->display, strlen(u->display));
	sb_str(b, ";emotes=;flags=;id=");
	sb_uuid(b, sim);
	sb_str(b, ";login=");
	sb_str(b, u->login);
	sb_str(b, ";mod=0");
	if (r < 60) {
		bool resub = r >= 45;

		sb_str(b, resub ? ";msg-id=resub" : ";msg-id=sub");
		sb_str(b, ";msg-param-cumulative-months=");
		sb_u64(b, resub ? 2 + rnd_below(sim, 30) : 1);
		sb_str(b, ";msg-param-should-share-streak=0;"
			  "msg-param-sub-plan-name=Channel\\sSubscription;"
			  "msg-param-sub-plan=1000");
	} else if (r < 80) {
		sb_str(b, ";msg-id=raid;msg-param-displayName=");
		sb_tagval(b, u->display, strlen(u->display));
		sb_str(b, ";msg-param-login=");
		sb_str(b, u->login);
		sb_str(b, ";msg-param-viewerCount=");
		sb_u64(b, 1 + rnd_below(sim, 5000));
	} else {
		sb_str(b, ";msg-id=subgift;msg-param-months=1;"
			  "msg-param-recipient-display-name=Lucky");
		sb_u64(b, ch->seq);
		sb_str(b, ";msg-param-recipient-user-name=lucky");
		sb_u64(b, ch->seq);
		sb_str(b, ";msg-param-sub-plan=1000");
	}
	sb_str(b, ";room-id=");
	sb_u64(b, ch->room_id);
	sb_str(b, ";subscriber=1;system-msg=");
	sb_tagval(b, u->display, strlen(u->display));
	if (r < 60)
		sb_str(b, "\\ssubscribed\\sat\\sTier\\s1.");
	else if (r < 80)
		sb_str(b, "\\sis\\sraiding!");
	else
		sb_str(b, "\\sgifted\\sa\\sTier\\s1\\ssub!");
	sb_str(b, ";tmi-sent-ts=");
	sb_u64(b, (uint64_t)ts);
	sb_str(b, ";user-id=");
	sb_u64(b, u->id);
	sb_str(b, ";user-type= :tmi.twitch.tv USERNOTICE #");
	sb_str(b, ch->name);
	if (r >= 45 && r < 60) {
		char tbuf[512], ebuf[256];
		struct sbuf text = {tbuf, 0, sizeof(tbuf)};
		struct sbuf etag = {ebuf, 0, sizeof(ebuf)};

		gen_text(sim, &text, &etag, 0);
		sb_str(b, " :");
		sb_add(b, text.p, text.len);
	}
}

/* Lines chatbattle must send to the dead-letter topic: unique (a sequence
 * number) so that a reader's duplicate filter never merges two of them. */
static void gen_malformed(struct cb_sim *sim, struct sim_chan *ch,
			  struct sbuf *b, int64_t ts)
{
	switch (ch->seq % 3) {
	case 0: /* empty text */
		sb_str(b, "@id=");
		sb_uuid(b, sim);
		sb_str(b, ";tmi-sent-ts=");
		sb_u64(b, (uint64_t)ts);
		sb_str(b, " :broken!broken@broken.tmi.twitch.tv PRIVMSG #");
		sb_str(b, ch->name);
		sb_str(b, " :");
		break;
	case 1: /* a channel that is no Twitch login */
		sb_str(b, "@id=");
		sb_uuid(b, sim);
		sb_str(b, " :broken!broken@broken.tmi.twitch.tv PRIVMSG "
			  "#Not-A-Channel! :malformed ");
		sb_u64(b, ch->seq);
		break;
	default: /* not IRC at all: a leading space */
		sb_str(b, " malformed line ");
		sb_u64(b, ch->seq);
		sb_str(b, " of #");
		sb_str(b, ch->name);
	}
}

/* Writes one line to every client that joined ch (and may see it); counts
 * it when at least one did. */
static void broadcast(struct cb_sim *sim, struct sim_chan *ch,
		      const char *line, size_t len, enum line_kind kind,
		      bool command)
{
	size_t idx = chan_idx(sim, ch);
	unsigned n = 0;

	for (struct sim_client *c = sim->clients; c != NULL; c = c->next) {
		if (c->closing || !client_joined(c, idx))
			continue;
		if (command && !c->cap_commands)
			continue;
		client_line(c, line, len);
		n++;
	}
	if (n > 0)
		ch->sent[kind]++;
}

/* True when some client of ch has more queued than sim_buffer_kbytes:
 * generation waits for it rather than dropping anything. */
static bool chan_backlogged(struct cb_sim *sim, struct sim_chan *ch)
{
	size_t idx = chan_idx(sim, ch);
	size_t limit = (size_t)sim->cfg->sim_buffer_kbytes * 1024;

	for (struct sim_client *c = sim->clients; c != NULL; c = c->next)
		if (!c->closing && client_joined(c, idx) &&
		    evbuffer_get_length(bufferevent_get_output(c->bev)) >
			    limit)
			return true;
	return false;
}

static uint64_t chan_lines(const struct sim_chan *ch)
{
	return ch->sent[LK_MESSAGE] + ch->sent[LK_EVENT] +
	       ch->sent[LK_MALFORMED];
}

static void generate(struct cb_sim *sim, struct sim_chan *ch, double dt_s,
		     int64_t ts)
{
	char buf[SIM_GEN_LINE_MAX];
	double mal = sim->cfg->sim_malformed_rate;
	double ev = sim->cfg->sim_event_rate;
	double rate;
	uint64_t n;

	if (ch->joined == 0 || chan_backlogged(sim, ch)) {
		ch->due = 0;
		return;
	}
	rate = ch->own_rate ? ch->rate : sim->rate;
	ch->due += rate * dt_s;
	/* no bursts after a pause: at most 100 ms of chat at once */
	if (ch->due > rate * 0.1 + 1)
		ch->due = rate * 0.1 + 1;
	n = (uint64_t)ch->due;
	ch->due -= (double)n;
	while (n-- > 0) {
		struct sbuf b = {buf, 0, sizeof(buf)};
		double r;
		enum line_kind kind;

		if (sim->count > 0 && chan_lines(ch) >= sim->count)
			break;
		r = rnd_unit(sim);
		if (r < mal) {
			gen_malformed(sim, ch, &b, ts);
			kind = LK_MALFORMED;
		} else if (r < mal + ev) {
			gen_event(sim, ch, &b, ts);
			kind = LK_EVENT;
		} else {
			gen_privmsg(sim, ch, &b, ts);
			kind = LK_MESSAGE;
		}
		ch->seq++;
		broadcast(sim, ch, b.p, b.len, kind, kind == LK_EVENT);
	}
}

/* ---- replay ---- */

static enum line_kind replay_kind(int kind)
{
	switch (kind) {
	case CB_IRC_K_PRIVMSG:
		return LK_MESSAGE;
	case CB_IRC_K_USERNOTICE:
	case CB_IRC_K_CLEARCHAT:
	case CB_IRC_K_CLEARMSG:
		return LK_EVENT;
	default:
		return LK_OTHER;
	}
}

/* Replays up to n lines; a line waits until its channel has a client. */
static void replay(struct cb_sim *sim, uint64_t n)
{
	while (n > 0 && sim->replay_pos < sim->replay_len) {
		const char *line = sim->replay + sim->replay_pos;
		const char *nl = memchr(line, '\n',
					sim->replay_len - sim->replay_pos);
		size_t len = nl ? (size_t)(nl - line)
				: sim->replay_len - sim->replay_pos;
		size_t adv = nl ? len + 1 : len;
		char errstr[128], name[CB_CHANNEL_MAX + 1];
		struct sim_chan *ch = NULL;
		enum line_kind kind = LK_MALFORMED;

		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (len == 0 || len > CB_IRC_LINE_MAX) {
			sim->replay_pos += adv;
			sim->replay_skipped++;
			continue;
		}
		memcpy(sim->scratch_line, line, len);
		if (cb_irc_parse(sim->scratch_line, len, &sim->scratch_msg,
				 errstr, sizeof(errstr)) == 0) {
			const struct cb_irc_msg *m = &sim->scratch_msg;

			kind = replay_kind(m->kind);
			if (m->nparams > 0 && m->params[0].len > 1 &&
			    m->params[0].p[0] == '#' &&
			    cb_channel_normalize(m->params[0].p + 1,
						 m->params[0].len - 1, name,
						 errstr, sizeof(errstr)) == 0)
				ch = chan_get(sim, name);
		}
		if (ch == NULL) {
			/* no channel: every registered client gets it */
			for (struct sim_client *c = sim->clients; c != NULL;
			     c = c->next)
				if (c->registered && !c->closing)
					client_line(c, line, len);
		} else {
			if (ch->joined == 0 || chan_backlogged(sim, ch))
				return; /* wait for a reader */
			broadcast(sim, ch, line, len, kind, false);
		}
		sim->replay_pos += adv;
		sim->replay_lines++;
		n--;
	}
}

static bool all_done(struct cb_sim *sim)
{
	size_t active = 0;

	if (sim->replay != NULL)
		return sim->replay_pos >= sim->replay_len;
	if (sim->count == 0)
		return false;
	for (size_t i = 0; i < sim->nchans; i++) {
		struct sim_chan *ch = &sim->chans[i];

		if (!ch->configured && ch->joined == 0 && chan_lines(ch) == 0)
			continue;
		if (sim->cfg->sim_channels.n > 0 && !ch->configured)
			continue;
		active++;
		if (chan_lines(ch) < sim->count)
			return false;
	}
	return active > 0;
}

/* ---- the tick: generation, pings, RECONNECT closes, sync deadlines ---- */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cb_sim *sim = arg;
	int64_t now = cb_mono_ms(), ts = cb_wall_ms();
	double dt = (double)(now - sim->last_tick_ms) / 1000.0;
	struct sim_client *c, *next;

	sim->last_tick_ms = now;
	for (c = sim->clients; c != NULL; c = next) {
		next = c->next;
		if (c->close_at_ms != 0 && now >= c->close_at_ms) {
			c->close_at_ms = 0;
			client_close(c);
		}
	}
	if (now >= sim->next_ping_ms) {
		sim->next_ping_ms = now + sim->cfg->sim_ping_interval_s * 1000;
		for (c = sim->clients; c != NULL; c = c->next)
			if (c->registered && !c->closing) {
				client_send(c, "PING :tmi.twitch.tv");
				sim->pings_sent++;
			}
	}
	if (sim->finishing) {
		if (sim->clients == NULL || now >= sim->finish_deadline_ms)
			event_base_loopexit(sim->base, NULL);
		return;
	}
	if (sim->sync != SYNC_NONE &&
	    (sim->sync_remaining == 0 || now >= sim->sync_deadline_ms))
		sync_finish(sim);
	if (!sim->paused && !sim->done && sim->sync != SYNC_DROP) {
		if (sim->replay != NULL) {
			/* rate 0: as fast as the clients read */
			sim->replay_due += sim->rate * dt;
			if (sim->rate <= 0 || sim->replay_due > 1e6)
				sim->replay_due = 1e6;
			replay(sim, (uint64_t)sim->replay_due);
			sim->replay_due -= floor(sim->replay_due);
		} else if (sim->rate > 0) {
			for (size_t i = 0; i < sim->nchans; i++)
				generate(sim, &sim->chans[i], dt, ts);
		}
	}
	if (!sim->done && all_done(sim)) {
		sim->done = true;
		cb_info("simulate", "generation complete; syncing clients");
	}
	if (sim->done && sim->sync == SYNC_NONE && !sim->finishing)
		sync_start(sim, SYNC_DONE, NULL);
}

/* ---- chat clients: commands ---- */

static bool is_anon_nick(const char *nick)
{
	return strncmp(nick, "justinfan", 9) == 0;
}

static void client_welcome(struct sim_client *c)
{
	struct cb_sim *sim = c->sim;
	const char *n = c->nick;

	if (c->pass == 3 || (c->pass == 0 && !is_anon_nick(n))) {
		client_send(c, ":tmi.twitch.tv NOTICE * :Improperly formatted auth");
		sim->logins_failed++;
		client_close(c);
		return;
	}
	if (c->pass == 2) {
		client_send(c, ":tmi.twitch.tv NOTICE * :Login authentication failed");
		sim->logins_failed++;
		client_close(c);
		return;
	}
	c->anon = c->pass == 0;
	c->registered = true;
	sim->logins_ok++;
	sim->logins_anon += c->anon;
	client_send(c, ":tmi.twitch.tv 001 %s :Welcome, GLHF!", n);
	client_send(c, ":tmi.twitch.tv 002 %s :Your host is tmi.twitch.tv", n);
	client_send(c, ":tmi.twitch.tv 003 %s :This server is rather new", n);
	client_send(c, ":tmi.twitch.tv 004 %s :-", n);
	client_send(c, ":tmi.twitch.tv 375 %s :-", n);
	client_send(c, ":tmi.twitch.tv 372 %s :You are in a maze of twisty "
		       "passages, all alike.", n);
	client_send(c, ":tmi.twitch.tv 376 %s :>", n);
	if (!c->anon && c->cap_commands)
		client_send(c, "%s:tmi.twitch.tv GLOBALUSERSTATE",
			    c->cap_tags ? "@badge-info=;badges=;color=;"
					  "display-name=Sim;emote-sets=0;"
					  "user-id=12345;user-type= "
					: "");
}

/* Calls fn for each name of a comma-separated channel list. */
static void each_channel(struct sim_client *c, const char *list, size_t len,
			 void (*fn)(struct sim_client *c, const char *name,
				    size_t name_len))
{
	size_t i = 0;

	while (i < len) {
		size_t j = i;

		while (j < len && list[j] != ',')
			j++;
		fn(c, list + i, j - i);
		i = j + 1;
	}
}

static void join_one(struct sim_client *c, const char *raw, size_t raw_len)
{
	struct cb_sim *sim = c->sim;
	char name[CB_CHANNEL_MAX + 1], why[96];
	struct sim_chan *ch;
	size_t idx;
	const char *n = c->nick;

	if (sim->njoins < SIM_JOIN_LOG)
		sim->joins[sim->njoins++] = cb_mono_ms() - sim->start_ms;
	sim->joins_total++;
	if (cb_channel_normalize(raw, raw_len, name, why, sizeof(why)) != 0) {
		client_send(c, "@msg-id=msg_channel_suspended :tmi.twitch.tv "
			       "NOTICE #%.*s :This channel does not exist or "
			       "has been suspended.",
			    (int)(raw_len > 30 ? 30 : raw_len), raw);
		return;
	}
	if (strncmp(name, "suspended", 9) == 0) {
		client_send(c, "@msg-id=msg_channel_suspended :tmi.twitch.tv "
			       "NOTICE #%s :This channel does not exist or has "
			       "been suspended.",
			    name);
		return;
	}
	ch = chan_get(sim, name);
	if (ch == NULL) {
		client_send(c, ":tmi.twitch.tv NOTICE #%s :too many channels in "
			       "the simulator",
			    name);
		return;
	}
	idx = chan_idx(sim, ch);
	if (!client_joined(c, idx)) {
		c->joined[idx / 8] |= (uint8_t)(1u << (idx % 8));
		ch->joined++;
	}
	client_send(c, ":%s!%s@%s.tmi.twitch.tv JOIN #%s", n, n, n, name);
	client_send(c, ":%s.tmi.twitch.tv 353 %s = #%s :%s", n, n, name, n);
	client_send(c, ":%s.tmi.twitch.tv 366 %s #%s :End of /NAMES list", n,
		    n, name);
	if (!c->cap_commands)
		return;
	if (c->cap_tags)
		client_send(c, "@emote-only=0;followers-only=-1;r9k=0;room-id=%" PRIu64
			       ";slow=0;subs-only=0 :tmi.twitch.tv ROOMSTATE #%s",
			    ch->room_id, name);
	else
		client_send(c, ":tmi.twitch.tv ROOMSTATE #%s", name);
	if (!c->anon)
		client_send(c, "%s:tmi.twitch.tv USERSTATE #%s",
			    c->cap_tags ? "@badge-info=;badges=;color=;display-name=Sim;emote-sets=0;mod=0;subscriber=0;user-type= "
					: "",
			    name);
}

static void part_one(struct sim_client *c, const char *raw, size_t raw_len)
{
	struct cb_sim *sim = c->sim;
	char name[CB_CHANNEL_MAX + 1], why[96];
	struct sim_chan *ch;
	size_t idx;

	sim->parts_total++;
	if (cb_channel_normalize(raw, raw_len, name, why, sizeof(why)) != 0 ||
	    (ch = chan_find(sim, name)) == NULL ||
	    !client_joined(c, (idx = chan_idx(sim, ch))))
		return;
	c->joined[idx / 8] &= (uint8_t)~(1u << (idx % 8));
	ch->joined--;
	client_send(c, ":%s!%s@%s.tmi.twitch.tv PART #%s", c->nick, c->nick,
		    c->nick, name);
}

static bool str_is(const struct cb_irc_str *s, const char *lit)
{
	size_t n = strlen(lit);

	return s->p != NULL && s->len == n && memcmp(s->p, lit, n) == 0;
}

static void client_cap(struct sim_client *c, const struct cb_irc_msg *m)
{
	const struct cb_irc_str *list;
	size_t i = 0;
	bool nak = false;

	if (m->nparams < 2 || !str_is(&m->params[0], "REQ"))
		return;
	list = &m->params[m->nparams - 1];
	while (i < list->len) {
		size_t j = i;

		while (j < list->len && list->p[j] != ' ')
			j++;
		if (j - i == 14 && memcmp(list->p + i, "twitch.tv/tags", 14) == 0)
			c->cap_tags = true;
		else if (j - i == 18 &&
			 memcmp(list->p + i, "twitch.tv/commands", 18) == 0)
			c->cap_commands = true;
		else if (j - i == 20 &&
			 memcmp(list->p + i, "twitch.tv/membership", 20) == 0)
			c->cap_membership = true;
		else if (j > i)
			nak = true;
		i = j + 1;
	}
	client_send(c, ":tmi.twitch.tv CAP * %s :%.*s", nak ? "NAK" : "ACK",
		    (int)list->len, list->p);
}

static void client_pass(struct sim_client *c, const struct cb_irc_str *p)
{
	const char *bad = c->sim->bad_token;
	const char *tok;
	size_t n;

	if (p->len < 6 || memcmp(p->p, "oauth:", 6) != 0) {
		c->pass = 3;
		return;
	}
	tok = p->p + 6;
	n = p->len - 6;
	c->pass = bad[0] != '\0' && strlen(bad) == n && memcmp(bad, tok, n) == 0
			  ? 2
			  : 1;
}

static void client_command(struct sim_client *c, char *line, size_t len)
{
	struct cb_sim *sim = c->sim;
	struct cb_irc_msg *m = &sim->scratch_msg;
	char errstr[128];
	const struct cb_irc_str *last;
	char token[64];

	if (len == 0 || cb_irc_parse(line, len, m, errstr, sizeof(errstr)) != 0)
		return;
	last = m->nparams ? &m->params[m->nparams - 1] : NULL;
	switch (m->kind) {
	case CB_IRC_K_CAP:
		client_cap(c, m);
		break;
	case CB_IRC_K_PING:
		sim->client_pings++;
		if (!sim->nopong)
			client_send(c, ":tmi.twitch.tv PONG tmi.twitch.tv :%.*s",
				    last ? (int)last->len : 0,
				    last ? last->p : "");
		break;
	case CB_IRC_K_PONG:
		sim->pongs_received++;
		snprintf(token, sizeof(token), "sync-%" PRIu64, sim->sync_token);
		if (c->sync_pending && last != NULL && str_is(last, token)) {
			c->sync_pending = false;
			if (sim->sync_remaining > 0)
				sim->sync_remaining--;
		}
		break;
	case CB_IRC_K_JOIN:
		if (c->registered && last != NULL)
			each_channel(c, last->p, last->len, join_one);
		break;
	case CB_IRC_K_PART:
		if (c->registered && m->nparams > 0)
			each_channel(c, m->params[0].p, m->params[0].len,
				     part_one);
		break;
	default:
		if (m->command.len == 4 && memcmp(m->command.p, "PASS", 4) == 0 &&
		    last != NULL && !c->registered) {
			client_pass(c, last);
		} else if (m->command.len == 4 &&
			   memcmp(m->command.p, "NICK", 4) == 0 && last != NULL &&
			   !c->registered && c->nick[0] == '\0') {
			snprintf(c->nick, sizeof(c->nick), "%.*s",
				 (int)(last->len > 25 ? 25 : last->len),
				 last->p);
			for (char *s = c->nick; *s; s++)
				if (*s >= 'A' && *s <= 'Z')
					*s = (char)(*s + 32);
			client_welcome(c);
		} else if (m->command.len == 4 &&
			   memcmp(m->command.p, "QUIT", 4) == 0) {
			client_close(c);
		}
	}
}

static void client_read_cb(struct bufferevent *bev, void *arg)
{
	struct sim_client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t n;

	if (c->linger) { /* only waiting for the peer's EOF */
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
		if (!c->closing)
			client_command(c, line, n);
		free(line);
		if (c->linger)
			return;
	}
	if (evbuffer_get_length(in) > SIM_CLIENT_LINE_MAX) {
		cb_warn("simulate", "client %u: line longer than %d bytes; "
				    "closing",
			c->id, SIM_CLIENT_LINE_MAX);
		client_free(c);
	}
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct sim_client *c = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (what & BEV_EVENT_ERROR && !c->linger)
			cb_debug("simulate", "client %u: connection error",
				 c->id);
		client_free(c);
	}
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd,
		      struct sockaddr *sa, int salen, void *arg)
{
	struct cb_sim *sim = arg;
	struct sim_client *c = calloc(1, sizeof(*c));
	SSL *ssl = NULL;

	if (c == NULL) {
		close(fd);
		return;
	}
	c->sim = sim;
	c->id = ++sim->next_client_id;
	c->tls = sim->cfg->sim_tls;
	if (c->tls) {
		ssl = SSL_new(sim->ssl_ctx);
		if (ssl != NULL)
			c->bev = bufferevent_openssl_socket_new(
				sim->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
				BEV_OPT_CLOSE_ON_FREE);
	} else {
		c->bev = bufferevent_socket_new(sim->base, fd,
						BEV_OPT_CLOSE_ON_FREE);
	}
	if (c->bev == NULL) {
		if (ssl != NULL)
			SSL_free(ssl);
		close(fd);
		free(c);
		return;
	}
	if (c->tls)
		bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, client_read_cb, client_write_cb,
			  client_event_cb, c);
	/* big writes: fewer system calls at full speed */
	bufferevent_set_max_single_write(c->bev, 256 * 1024);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->next = sim->clients;
	sim->clients = c;
	sim->connections_total++;
	cb_debug("simulate", "client %u connected", c->id);
}

/* ---- control interface ---- */

static void ctl_reply(struct sim_ctl *ctl, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(ctl->bev);
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\n", 1);
}

static void ctl_free(struct sim_ctl *ctl)
{
	struct cb_sim *sim = ctl->sim;
	struct sim_ctl **pp;

	for (pp = &sim->ctls; *pp != NULL; pp = &(*pp)->next)
		if (*pp == ctl) {
			*pp = ctl->next;
			break;
		}
	if (sim->sync_ctl == ctl)
		sim->sync_ctl = NULL;
	bufferevent_free(ctl->bev);
	free(ctl);
}

static size_t json_joins(struct cb_sim *sim, char *buf, size_t size)
{
	size_t len = 0;

	len += (size_t)snprintf(buf, size, "[");
	for (size_t i = 0; i < sim->njoins; i++)
		len += (size_t)snprintf(buf + (len < size ? len : size),
					len < size ? size - len : 0, "%s%" PRId64,
					i ? "," : "", sim->joins[i]);
	len += (size_t)snprintf(buf + (len < size ? len : size),
				len < size ? size - len : 0, "]");
	return len;
}

/* Sends a raw line to the clients that joined chan ("*": every
 * registered client). */
static unsigned ctl_send(struct cb_sim *sim, const char *chan, size_t chan_len,
			 const char *raw, size_t raw_len)
{
	struct sim_chan *ch = NULL;
	char name[CB_CHANNEL_MAX + 1], why[96];
	unsigned n = 0;

	if (!(chan_len == 1 && chan[0] == '*')) {
		if (cb_channel_normalize(chan, chan_len, name, why,
					 sizeof(why)) != 0 ||
		    (ch = chan_find(sim, name)) == NULL)
			return 0;
	}
	for (struct sim_client *c = sim->clients; c != NULL; c = c->next) {
		if (c->closing || !c->registered)
			continue;
		if (ch != NULL && !client_joined(c, chan_idx(sim, ch)))
			continue;
		evbuffer_add(bufferevent_get_output(c->bev), raw, raw_len);
		evbuffer_add(bufferevent_get_output(c->bev), "\r\n", 2);
		n++;
	}
	if (ch != NULL && n > 0)
		ch->sent[LK_INJECTED]++;
	return n;
}

/* ---- the Helix endpoint (viewer counts) ---- */

#define HELIX_LIMIT 800       /* points per minute, as Twitch's default */
#define HELIX_LOGINS_MAX 100
#define HELIX_TOKEN_PREFIX "simapp"

/* Viewers of a channel: set by "viewers N CHANNEL", else 3000 per line per
 * second of chat (about 20 messages a minute per 1,000 viewers). */
static int64_t chan_viewers(const struct cb_sim *sim,
			    const struct sim_chan *ch)
{
	if (ch->viewers >= 0)
		return ch->viewers;
	return (int64_t)llround((ch->own_rate ? ch->rate : sim->rate) * 3000);
}

static void helix_reply(struct evhttp_request *req, int code,
			const char *reason, const char *json)
{
	struct evbuffer *b = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Content-Type", "application/json");
	if (b != NULL)
		evbuffer_add(b, json, strlen(json));
	evhttp_send_reply(req, code, reason, b);
	if (b != NULL)
		evbuffer_free(b);
}

static void helix_error(struct evhttp_request *req, int code,
			const char *reason, const char *message)
{
	char body[256];

	snprintf(body, sizeof(body),
		 "{\"error\":\"%s\",\"status\":%d,\"message\":\"%s\"}", reason,
		 code, message);
	helix_reply(req, code, reason, body);
}

/* POST /oauth2/token: grant_type=client_credentials, client_id,
 * client_secret (form in the body or the query, as Twitch accepts); a
 * secret equal to sim_bad_token is refused like a wrong one. */
static void helix_token(struct evhttp_request *req, struct cb_sim *sim)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	char *form = malloc(n + 1), body[256];
	struct evkeyvalq kv;
	const char *grant, *id, *secret;

	if (form == NULL) {
		helix_error(req, 500, "Internal Server Error", "out of memory");
		return;
	}
	evbuffer_copyout(in, form, n);
	form[n] = '\0';
	TAILQ_INIT(&kv);
	if (n == 0) {
		const char *q = evhttp_uri_get_query(
			evhttp_request_get_evhttp_uri(req));

		free(form);
		form = strdup(q ? q : "");
	}
	if (form == NULL || evhttp_parse_query_str(form, &kv) != 0) {
		helix_error(req, 400, "Bad Request", "malformed form");
		goto out;
	}
	grant = evhttp_find_header(&kv, "grant_type");
	id = evhttp_find_header(&kv, "client_id");
	secret = evhttp_find_header(&kv, "client_secret");
	if (id == NULL || id[0] == '\0')
		helix_error(req, 400, "Bad Request", "missing client id");
	else if (secret == NULL || secret[0] == '\0')
		helix_error(req, 400, "Bad Request", "missing client secret");
	else if (grant == NULL || strcmp(grant, "client_credentials") != 0)
		helix_error(req, 400, "Bad Request", "unsupported grant type");
	else if (sim->bad_token[0] != '\0' &&
		 strcmp(secret, sim->bad_token) == 0)
		helix_error(req, 403, "Forbidden", "invalid client secret");
	else {
		sim->helix_tokens++;
		snprintf(body, sizeof(body),
			 "{\"access_token\":\"" HELIX_TOKEN_PREFIX "%" PRIu64
			 "\",\"expires_in\":5011271,\"token_type\":\"bearer\"}",
			 sim->helix_tokens);
		helix_reply(req, 200, "OK", body);
	}
out:
	evhttp_clear_headers(&kv);
	free(form);
}

/* Ratelimit-* headers of Twitch: a bucket of HELIX_LIMIT points a minute. */
static void helix_limit_headers(struct evhttp_request *req, int remaining,
				int64_t reset_s)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char v[32];

	snprintf(v, sizeof(v), "%d", HELIX_LIMIT);
	evhttp_add_header(h, "Ratelimit-Limit", v);
	snprintf(v, sizeof(v), "%d", remaining);
	evhttp_add_header(h, "Ratelimit-Remaining", v);
	snprintf(v, sizeof(v), "%lld", (long long)reset_s);
	evhttp_add_header(h, "Ratelimit-Reset", v);
}

/* GET /helix/streams?user_login=a&user_login=b: the live streams among
 * them (a channel is live while a client has joined it), with
 * viewer_count; needs Client-Id and Authorization: Bearer <a token this
 * simulator issued>. */
static void helix_streams(struct evhttp_request *req, struct cb_sim *sim)
{
	struct evkeyvalq *hdr = evhttp_request_get_input_headers(req);
	const char *auth = evhttp_find_header(hdr, "Authorization");
	const char *cid = evhttp_find_header(hdr, "Client-Id");
	const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	int64_t now_s = cb_wall_ms() / 1000;
	struct evkeyvalq kv;
	struct evkeyval *e;
	struct evbuffer *b;
	int logins = 0, live = 0;

	if (cid == NULL || cid[0] == '\0') {
		helix_error(req, 401, "Unauthorized", "Client ID is missing");
		return;
	}
	if (auth == NULL || strncmp(auth, "Bearer " HELIX_TOKEN_PREFIX,
				    7 + strlen(HELIX_TOKEN_PREFIX)) != 0) {
		helix_error(req, 401, "Unauthorized", "Invalid OAuth token");
		return;
	}
	sim->helix_requests++;
	if (now_s / 60 != sim->helix_bucket_s / 60) {
		sim->helix_bucket_s = now_s;
		sim->helix_used = 0;
	}
	if (sim->helix_429_left > 0 || sim->helix_used >= HELIX_LIMIT) {
		if (sim->helix_429_left > 0)
			sim->helix_429_left--;
		sim->helix_throttled++;
		/* The bucket refills in 2 s here: tests wait that long. */
		helix_limit_headers(req, 0, now_s + 2);
		helix_error(req, 429, "Too Many Requests",
			    "Rate limit exceeded");
		return;
	}
	sim->helix_used++;
	TAILQ_INIT(&kv);
	if (q == NULL || evhttp_parse_query_str(q, &kv) != 0) {
		evhttp_clear_headers(&kv);
		helix_error(req, 400, "Bad Request", "malformed query");
		return;
	}
	TAILQ_FOREACH(e, &kv, next)
		logins += strcmp(e->key, "user_login") == 0;
	if (logins > HELIX_LOGINS_MAX) {
		evhttp_clear_headers(&kv);
		helix_error(req, 400, "Bad Request",
			    "The parameter \\\"user_login\\\" may only be "
			    "specified up to 100 times");
		return;
	}
	b = evbuffer_new();
	if (b == NULL) {
		evhttp_clear_headers(&kv);
		helix_error(req, 500, "Internal Server Error", "out of memory");
		return;
	}
	evbuffer_add_printf(b, "{\"data\":[");
	TAILQ_FOREACH(e, &kv, next)
	{
		char name[CB_CHANNEL_MAX + 1], why[96];
		const struct sim_chan *ch;

		if (strcmp(e->key, "user_login") != 0 ||
		    cb_channel_normalize(e->value, strlen(e->value), name, why,
					 sizeof(why)) != 0 ||
		    (ch = chan_find(sim, name)) == NULL || ch->joined == 0)
			continue;
		evbuffer_add_printf(
			b,
			"%s{\"id\":\"%" PRIu64 "\",\"user_id\":\"%" PRIu64
			"\",\"user_login\":\"%s\",\"user_name\":\"%s\","
			"\"game_name\":\"Just Chatting\",\"type\":\"live\","
			"\"title\":\"simulated\",\"viewer_count\":%lld,"
			"\"language\":\"en\"}",
			live ? "," : "", ch->room_id * 7, ch->room_id, ch->name,
			ch->name, (long long)chan_viewers(sim, ch));
		live++;
	}
	evbuffer_add_printf(b, "],\"pagination\":{}}");
	evhttp_clear_headers(&kv);
	helix_limit_headers(req, HELIX_LIMIT - sim->helix_used,
			    (now_s / 60 + 1) * 60);
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Content-Type", "application/json");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void helix_cb(struct evhttp_request *req, void *arg)
{
	struct cb_sim *sim = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type m = evhttp_request_get_command(req);

	if (path != NULL && strcmp(path, "/oauth2/token") == 0) {
		if (m != EVHTTP_REQ_POST)
			helix_error(req, 405, "Method Not Allowed", "use POST");
		else
			helix_token(req, sim);
	} else if (path != NULL && strcmp(path, "/helix/streams") == 0) {
		if (m != EVHTTP_REQ_GET)
			helix_error(req, 405, "Method Not Allowed", "use GET");
		else
			helix_streams(req, sim);
	} else {
		helix_error(req, 404, "Not Found", "no such endpoint");
	}
}

static int helix_listen(struct cb_sim *sim, int port, char *errstr,
			size_t errstr_size)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	sim->helix = evhttp_new(sim->base);
	if (sim->helix == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "cannot create the Helix endpoint");
	evhttp_set_allowed_methods(sim->helix,
				   EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_gencb(sim->helix, helix_cb, sim);
	bs = evhttp_bind_socket_with_handle(sim->helix, "127.0.0.1",
					    (uint16_t)port);
	if (bs == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_IO,
				 "cannot listen on 127.0.0.1 port %d for "
				 "Helix: %s",
				 port, strerror(errno));
	if (getsockname(evhttp_bound_socket_get_fd(bs),
			(struct sockaddr *)&ss, &len) == 0)
		sim->helix_port =
			ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

static void ctl_command(struct sim_ctl *ctl, char *line, size_t len)
{
	struct cb_sim *sim = ctl->sim;
	char *arg = memchr(line, ' ', len);
	size_t cmd_len = arg ? (size_t)(arg - line) : len;
	size_t arg_len = arg ? len - cmd_len - 1 : 0;

	if (arg != NULL)
		arg++;
	else
		arg = line + len;
#define IS(s) (cmd_len == strlen(s) && memcmp(line, s, cmd_len) == 0)
	if (IS("stats") || IS("joins")) {
		char *buf = sim_format(sim, IS("stats") ? cb_sim_stats_json
							: json_joins);

		if (buf == NULL)
			ctl_reply(ctl, "err out of memory");
		else
			ctl_reply(ctl, "%s", buf);
		free(buf);
	} else if (IS("pause")) {
		sim->paused = true;
		ctl_reply(ctl, "ok");
	} else if (IS("resume")) {
		sim->paused = false;
		sim->last_tick_ms = cb_mono_ms();
		ctl_reply(ctl, "ok");
	} else if (IS("rate")) {
		char *end;
		double r = strtod(arg, &end);
		char name[CB_CHANNEL_MAX + 1], why[96];
		struct sim_chan *ch;

		if (arg_len == 0 || end == arg || r < 0 || !isfinite(r) ||
		    (*end != '\0' && *end != ' ')) {
			ctl_reply(ctl, "err rate needs a number >= 0 "
				       "[CHANNEL]");
			return;
		}
		if (*end == '\0') {
			sim->rate = r;
			ctl_reply(ctl, "ok");
			return;
		}
		/* rate N CHANNEL: that channel's own rate, from now on. */
		if (cb_channel_normalize(end + 1, strlen(end + 1), name, why,
					 sizeof(why)) != 0) {
			ctl_reply(ctl, "err %s", why);
			return;
		}
		if ((ch = chan_get(sim, name)) == NULL) {
			ctl_reply(ctl, "err too many channels");
			return;
		}
		ch->rate = r;
		ch->own_rate = true;
		ch->configured = true;
		ctl_reply(ctl, "ok");
	} else if (IS("viewers")) {
		/* viewers N CHANNEL: its Helix viewer_count; -1: from the
		 * rate again. */
		char *end;
		long long v = strtoll(arg, &end, 10);
		char name[CB_CHANNEL_MAX + 1], why[96];
		struct sim_chan *ch;

		if (arg_len == 0 || end == arg || *end != ' ' || v < -1 ||
		    cb_channel_normalize(end + 1, strlen(end + 1), name, why,
					 sizeof(why)) != 0 ||
		    (ch = chan_get(sim, name)) == NULL) {
			ctl_reply(ctl, "err viewers N CHANNEL (N >= -1)");
			return;
		}
		ch->viewers = v;
		ctl_reply(ctl, "ok");
	} else if (IS("helix429")) {
		char *end;
		long long v = strtoll(arg, &end, 10);

		if (arg_len == 0 || end == arg || *end != '\0' || v < 0) {
			ctl_reply(ctl, "err helix429 N (N >= 0)");
			return;
		}
		sim->helix_429_left = (uint64_t)v;
		ctl_reply(ctl, "ok");
	} else if (IS("reconnect")) {
		int64_t grace = sim->cfg->sim_reconnect_grace_ms;
		unsigned n = 0;

		if (arg_len > 0)
			grace = strtoll(arg, NULL, 10);
		for (struct sim_client *c = sim->clients; c != NULL;
		     c = c->next) {
			if (!c->registered || c->closing || c->close_at_ms)
				continue;
			client_send(c, ":tmi.twitch.tv RECONNECT");
			c->close_at_ms = cb_mono_ms() + (grace > 0 ? grace : 0);
			n++;
		}
		sim->reconnects_sent += n;
		ctl_reply(ctl, "ok reconnect=%u", n);
	} else if (IS("drop") || IS("sync")) {
		if (sync_start(sim, IS("drop") ? SYNC_DROP : SYNC_SYNC, ctl) != 0)
			ctl_reply(ctl, "err busy");
	} else if (IS("nopong")) {
		sim->nopong = !(arg_len == 3 && memcmp(arg, "off", 3) == 0);
		ctl_reply(ctl, "ok");
	} else if (IS("badtoken")) {
		snprintf(sim->bad_token, sizeof(sim->bad_token), "%.*s",
			 arg_len == 1 && arg[0] == '-' ? 0 : (int)arg_len, arg);
		ctl_reply(ctl, "ok");
	} else if (IS("send")) {
		char *sp = memchr(arg, ' ', arg_len);

		if (sp == NULL) {
			ctl_reply(ctl, "err send CHANNEL|* RAW-LINE");
			return;
		}
		ctl_reply(ctl, "ok clients=%u",
			  ctl_send(sim, arg, (size_t)(sp - arg), sp + 1,
				   arg_len - (size_t)(sp - arg) - 1));
	} else if (IS("quit")) {
		struct timeval flush = {0, 50000}; /* let the reply go out */

		ctl_reply(ctl, "ok");
		event_base_loopexit(sim->base, &flush);
	} else {
		ctl_reply(ctl, "err unknown command (stats joins pause resume "
			       "rate reconnect drop sync nopong badtoken send "
			       "viewers helix429 quit)");
	}
#undef IS
}

static void ctl_read_cb(struct bufferevent *bev, void *arg)
{
	struct sim_ctl *ctl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t n;

	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
		ctl_command(ctl, line, n);
		free(line);
	}
	if (evbuffer_get_length(in) > SIM_CONTROL_LINE_MAX)
		ctl_free(ctl);
}

static void ctl_event_cb(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		ctl_free(arg);
}

static void ctl_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
			  struct sockaddr *sa, int salen, void *arg)
{
	struct cb_sim *sim = arg;
	struct sim_ctl *ctl = calloc(1, sizeof(*ctl));

	if (ctl == NULL) {
		close(fd);
		return;
	}
	ctl->sim = sim;
	ctl->bev = bufferevent_socket_new(sim->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (ctl->bev == NULL) {
		close(fd);
		free(ctl);
		return;
	}
	bufferevent_setcb(ctl->bev, ctl_read_cb, NULL, ctl_event_cb, ctl);
	bufferevent_enable(ctl->bev, EV_READ | EV_WRITE);
	ctl->next = sim->ctls;
	sim->ctls = ctl;
}

/* ---- statistics ---- */

size_t cb_sim_stats_json(struct cb_sim *sim, char *buf, size_t size)
{
	size_t len = 0;
	uint64_t tot[5] = {0};
	unsigned conns = 0, registered = 0;

#define OUT(...)                                                               \
	len += (size_t)snprintf(buf + (len < size ? len : size),               \
				len < size ? size - len : 0, __VA_ARGS__)
	if (size > 0)
		buf[0] = '\0';
	for (struct sim_client *c = sim->clients; c != NULL; c = c->next) {
		conns++;
		registered += c->registered && !c->closing;
	}
	OUT("{\"connections\":%u,\"registered\":%u,\"paused\":%s,"
	    "\"rate\":%g,\"channels\":{",
	    conns, registered, sim->paused ? "true" : "false", sim->rate);
	for (size_t i = 0; i < sim->nchans; i++) {
		const struct sim_chan *ch = &sim->chans[i];

		for (int k = 0; k < 5; k++)
			tot[k] += ch->sent[k];
		OUT("%s\"%s\":{\"messages\":%" PRIu64 ",\"events\":%" PRIu64
		    ",\"malformed\":%" PRIu64 ",\"injected\":%" PRIu64
		    ",\"other\":%" PRIu64 ",\"joined\":%u,\"rate\":%g,"
		    "\"viewers\":%lld}",
		    i ? "," : "", ch->name, ch->sent[LK_MESSAGE],
		    ch->sent[LK_EVENT], ch->sent[LK_MALFORMED],
		    ch->sent[LK_INJECTED], ch->sent[LK_OTHER], ch->joined,
		    ch->own_rate ? ch->rate : sim->rate,
		    (long long)chan_viewers(sim, ch));
	}
	OUT("},\"helix\":{\"tokens\":%" PRIu64 ",\"requests\":%" PRIu64
	    ",\"throttled\":%" PRIu64 "},",
	    sim->helix_tokens, sim->helix_requests, sim->helix_throttled);
	OUT("\"totals\":{\"messages\":%" PRIu64 ",\"events\":%" PRIu64
	    ",\"malformed\":%" PRIu64 ",\"injected\":%" PRIu64
	    ",\"other\":%" PRIu64 "},",
	    tot[LK_MESSAGE], tot[LK_EVENT], tot[LK_MALFORMED],
	    tot[LK_INJECTED], tot[LK_OTHER]);
	OUT("\"connections_total\":%" PRIu64 ",\"logins_ok\":%" PRIu64
	    ",\"logins_anon\":%" PRIu64
	    ",\"logins_failed\":%" PRIu64 ",\"joins\":%" PRIu64
	    ",\"parts\":%" PRIu64 ",\"pings_sent\":%" PRIu64
	    ",\"pongs_received\":%" PRIu64 ",\"client_pings\":%" PRIu64
	    ",\"reconnects_sent\":%" PRIu64 ",\"drops\":%" PRIu64
	    ",\"resets\":%" PRIu64 ",\"replay_lines\":%" PRIu64
	    ",\"replay_skipped\":%" PRIu64 ",\"done\":%s}",
	    sim->connections_total, sim->logins_ok, sim->logins_anon,
	    sim->logins_failed,
	    sim->joins_total, sim->parts_total, sim->pings_sent,
	    sim->pongs_received, sim->client_pings, sim->reconnects_sent,
	    sim->drops, sim->resets, sim->replay_lines, sim->replay_skipped,
	    sim->done ? "true" : "false");
#undef OUT
	return len;
}

/* ---- life cycle ---- */

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cb_sim *sim = arg;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0) {
		/* spurious wake-up: nothing to drain */
	}
	event_base_loopexit(sim->base, NULL);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct cb_sim *sim = arg;

	cb_info("simulate", "signal %d: stopping", (int)sig);
	event_base_loopexit(sim->base, NULL);
}

static int listen_on(struct cb_sim *sim, const char *addr, int port,
		     evconnlistener_cb cb, struct evconnlistener **out,
		     int *bound, char *errstr, size_t errstr_size)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len = sizeof(ss);
	int sslen;
	evutil_socket_t fd;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		sslen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		sslen = sizeof(*sin6);
	} else {
		return cb_seterr(errstr, errstr_size, CB_E_CONFIG,
				 "bad listen address %s (an IPv4 or IPv6 "
				 "address)",
				 addr);
	}
	*out = evconnlistener_new_bind(
		sim->base, cb, sim,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
			LEV_OPT_CLOSE_ON_EXEC,
		128, (struct sockaddr *)&ss, sslen);
	if (*out == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_IO,
				 "cannot listen on %s port %d: %s", addr, port,
				 strerror(errno));
	fd = evconnlistener_get_fd(*out);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		*bound = ntohs(ss.ss_family == AF_INET6 ? sin6->sin6_port
							: sin->sin_port);
	return 0;
}

static int load_replay(struct cb_sim *sim, const char *path, char *errstr,
		       size_t errstr_size)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 1 << 16, len = 0, n;
	char *buf = NULL, *nb;
	int err = 0;

	if (f == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_IO, "%s: %s", path,
				 strerror(errno));
	for (;;) {
		if (len == cap || buf == NULL) {
			if (buf != NULL)
				cap *= 2;
			if (cap > SIM_REPLAY_MAX_BYTES) {
				err = cb_seterr(errstr, errstr_size,
						CB_E_TOOBIG,
						"%s: larger than %u MiB", path,
						SIM_REPLAY_MAX_BYTES >> 20);
				goto out;
			}
			nb = realloc(buf, cap);
			if (nb == NULL) {
				err = cb_seterr(errstr, errstr_size,
						CB_E_NOMEM, "%s: out of memory",
						path);
				goto out;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		err = cb_seterr(errstr, errstr_size, CB_E_IO, "%s: read error",
				path);
		goto out;
	}
	sim->replay = buf;
	sim->replay_len = len;
	buf = NULL;
out:
	free(buf);
	fclose(f);
	return err;
}

static void default_cert_path(char *out, size_t size)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	struct stat st;

	if (rt != NULL && rt[0] == '/' && stat(rt, &st) == 0 &&
	    S_ISDIR(st.st_mode))
		snprintf(out, size, "%s/chatbattle-sim.pem", rt);
	else
		snprintf(out, size, "/tmp/chatbattle-sim-%u.pem",
			 (unsigned)getuid());
}

int cb_sim_new(struct cb_sim **out, const struct cb_config *cfg, char *errstr,
	       size_t errstr_size)
{
	struct cb_sim *sim = calloc(1, sizeof(*sim));
	struct timeval tv = {0, SIM_TICK_MS * 1000};
	int err = 0;

	*out = NULL;
	if (sim == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "out of memory");
	sim->cfg = cfg;
	sim->stop_efd = -1;
	sim->rate = (double)cfg->sim_rate;
	sim->count = (uint64_t)cfg->sim_count;
	snprintf(sim->bad_token, sizeof(sim->bad_token), "%s",
		 strncmp(cfg->sim_bad_token, "oauth:", 6) == 0
			 ? cfg->sim_bad_token + 6
			 : cfg->sim_bad_token);
	sim->rng = cfg->sim_seed ? (uint64_t)cfg->sim_seed
				 : (uint64_t)cb_wall_ms() ^ ((uint64_t)getpid() << 32);
	sim->rng = sim->rng * 0x9E3779B97F4A7C15ULL + 1;
	sim->chans = calloc(SIM_MAX_CHANNELS, sizeof(*sim->chans));
	sim->base = event_base_new();
	if (sim->chans == NULL || sim->base == NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				"cannot create the event loop");
		goto out;
	}
	make_users(sim);
	for (size_t i = 0; i < cfg->sim_channels.n; i++) {
		struct sim_chan *ch = chan_get(sim, cfg->sim_channels.v[i]);

		if (ch != NULL)
			ch->configured = true;
	}
	err = channel_rates(sim, cfg->sim_channel_rates, errstr, errstr_size);
	if (err != 0)
		goto out;
	if (cfg->sim_replay[0] != '\0') {
		err = load_replay(sim, cfg->sim_replay, errstr, errstr_size);
		if (err != 0)
			goto out;
	}
	if (cfg->sim_tls) {
		if (cfg->sim_cert_file[0] != '\0')
			snprintf(sim->cert_path, sizeof(sim->cert_path), "%s",
				 cfg->sim_cert_file);
		else
			default_cert_path(sim->cert_path,
					  sizeof(sim->cert_path));
		sim->ssl_ctx = SSL_CTX_new(TLS_server_method());
		if (sim->ssl_ctx == NULL) {
			err = cb_seterr(errstr, errstr_size, CB_E_TLS,
					"cannot create a TLS context");
			goto out;
		}
		SSL_CTX_set_min_proto_version(sim->ssl_ctx, TLS1_2_VERSION);
		err = make_cert(sim, errstr, errstr_size);
		if (err != 0)
			goto out;
	}
	err = listen_on(sim, cfg->sim_bind, (int)cfg->sim_port, accept_cb,
			&sim->listener, &sim->port, errstr, errstr_size);
	if (err == 0)
		err = listen_on(sim, "127.0.0.1", (int)cfg->sim_control_port,
				ctl_accept_cb, &sim->ctl_listener,
				&sim->ctl_port, errstr, errstr_size);
	if (err == 0)
		err = helix_listen(sim, (int)cfg->sim_helix_port, errstr,
				   errstr_size);
	if (err != 0)
		goto out;
	sim->stop_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	sim->stop_ev = sim->stop_efd < 0
			       ? NULL
			       : event_new(sim->base, sim->stop_efd,
					   EV_READ | EV_PERSIST, stop_cb, sim);
	sim->tick_ev = event_new(sim->base, -1, EV_PERSIST, tick_cb, sim);
	if (sim->stop_ev == NULL || sim->tick_ev == NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				"cannot create events");
		goto out;
	}
	event_add(sim->stop_ev, NULL);
	event_add(sim->tick_ev, &tv);
	sim->start_ms = sim->last_tick_ms = cb_mono_ms();
	sim->next_ping_ms = sim->start_ms + cfg->sim_ping_interval_s * 1000;
	*out = sim;
	sim = NULL;
out:
	cb_sim_free(sim);
	return err;
}

int cb_sim_port(const struct cb_sim *sim)
{
	return sim->port;
}

int cb_sim_control_port(const struct cb_sim *sim)
{
	return sim->ctl_port;
}

const char *cb_sim_cert_file(const struct cb_sim *sim)
{
	return sim->cert_path;
}

int cb_sim_handle_signals(struct cb_sim *sim)
{
	sim->sig_int = evsignal_new(sim->base, SIGINT, signal_cb, sim);
	sim->sig_term = evsignal_new(sim->base, SIGTERM, signal_cb, sim);
	if (sim->sig_int == NULL || sim->sig_term == NULL)
		return CB_E_NOMEM;
	event_add(sim->sig_int, NULL);
	event_add(sim->sig_term, NULL);
	return 0;
}

int cb_sim_run(struct cb_sim *sim)
{
	sim->last_tick_ms = cb_mono_ms();
	if (event_base_dispatch(sim->base) < 0)
		return CB_E_IO;
	return sim->rc;
}

void cb_sim_stop(struct cb_sim *sim)
{
	uint64_t one = 1;

	if (write(sim->stop_efd, &one, sizeof(one)) < 0) {
		/* the counter is already set: a stop is pending */
	}
}

void cb_sim_free(struct cb_sim *sim)
{
	if (sim == NULL)
		return;
	while (sim->clients != NULL)
		client_free(sim->clients);
	while (sim->ctls != NULL)
		ctl_free(sim->ctls);
	if (sim->listener != NULL)
		evconnlistener_free(sim->listener);
	if (sim->ctl_listener != NULL)
		evconnlistener_free(sim->ctl_listener);
	if (sim->helix != NULL)
		evhttp_free(sim->helix);
	if (sim->tick_ev != NULL)
		event_free(sim->tick_ev);
	if (sim->stop_ev != NULL)
		event_free(sim->stop_ev);
	if (sim->sig_int != NULL)
		event_free(sim->sig_int);
	if (sim->sig_term != NULL)
		event_free(sim->sig_term);
	if (sim->stop_efd >= 0)
		close(sim->stop_efd);
	if (sim->base != NULL)
		event_base_free(sim->base);
	if (sim->ssl_ctx != NULL)
		SSL_CTX_free(sim->ssl_ctx);
	free(sim->chans);
	free(sim->replay);
	free(sim);
}

int cb_cmd_simulate(const struct cb_config *cfg)
{
	struct cb_sim *sim = NULL;
	char errstr[512];
	int err, rc = CB_EXIT_OK;

	if (cfg->nargs > 0) {
		fprintf(stderr, "chatbattle simulate: unexpected argument "
				"\"%s\"\n",
			cfg->args[0]);
		return CB_EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	err = cb_sim_new(&sim, cfg, errstr, sizeof(errstr));
	if (err != 0) {
		fprintf(stderr, "chatbattle simulate: %s\n", errstr);
		return err == CB_E_CONFIG ? CB_EXIT_USAGE : CB_EXIT_FAILURE;
	}
	if (cb_sim_handle_signals(sim) != 0) {
		rc = CB_EXIT_FAILURE;
		goto out;
	}
	/* One machine-readable line first: scripts read the ports from it. */
	printf("{\"irc_host\":\"%s\",\"irc_port\":%d,\"tls\":%s,"
	       "\"cert_file\":\"%s\",\"control_port\":%d,"
	       "\"helix_url\":\"http://127.0.0.1:%d\"}\n",
	       cfg->sim_bind, sim->port, cfg->sim_tls ? "true" : "false",
	       cfg->sim_tls ? sim->cert_path : "", sim->ctl_port,
	       sim->helix_port);
	fflush(stdout);
	cb_info("simulate",
		"listening on %s:%d (%s), control on 127.0.0.1:%d%s%s",
		cfg->sim_bind, sim->port, cfg->sim_tls ? "TLS" : "plain TCP",
		sim->ctl_port, cfg->sim_tls ? ", certificate " : "",
		cfg->sim_tls ? sim->cert_path : "");
	if (cb_sim_run(sim) != 0)
		rc = CB_EXIT_FAILURE;
	if (!sim->done)
		print_stats(sim, stdout);
out:
	cb_sim_free(sim);
	return rc;
}
