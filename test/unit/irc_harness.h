/*
 * irc_harness.h - shared by the IRC thread tests (test_mt_irc*.c): an
 * in-process `chatbattle simulate` in its own thread, its control
 * interface, an IRC module wired to real rings, and a sink that plays the
 * producer thread (reads and checks every ring record).  Tests wait on
 * conditions with deadlines, never on sleeps.
 */
#ifndef CB_IRC_HARNESS_H
#define CB_IRC_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chatbattle/app.h"
#include "chatbattle/config.h"
#include "chatbattle/err.h"
#include "chatbattle/irc.h"
#include "chatbattle/log.h"
#include "chatbattle/metrics.h"
#include "chatbattle/record.h"
#include "chatbattle/ring.h"
#include "chatbattle/simulate.h"
#include "test.h"

/* ---- settings through the real parser ---- */

static inline void h_set(struct cb_config *cfg, const char *name,
			 const char *value)
{
	char errstr[256];
	int id = cb_config_find(name);

	if (id < 0 || cb_config_set(cfg, (enum cb_opt_id)id, value,
				    CB_SRC_FLAG, "test", false, errstr,
				    sizeof(errstr)) != 0) {
		printf("# cannot set %s=%s: %s\n", name, value,
		       id < 0 ? "unknown" : errstr);
		abort();
	}
}

static inline void h_add(struct cb_config *cfg, const char *name,
			 const char *value)
{
	char errstr[256];
	int id = cb_config_find(name);

	if (id < 0 || cb_config_set(cfg, (enum cb_opt_id)id, value,
				    CB_SRC_FLAG, "test", true, errstr,
				    sizeof(errstr)) != 0)
		abort();
}

/* ---- the simulator ---- */

struct simh {
	struct cb_config cfg;
	struct cb_sim *sim;
	pthread_t th;
	int port, ctl_port;
	char cert[256];
};

static int h_serial;

static void *h_sim_main(void *arg)
{
	cb_sim_run(((struct simh *)arg)->sim);
	return NULL;
}

/* Starts a simulator; tweak (may be NULL) adjusts its settings. */
static inline int sim_up(struct simh *h, void (*tweak)(struct cb_config *))
{
	char errstr[512], num[32];

	memset(h, 0, sizeof(*h));
	if (cb_config_init(&h->cfg, errstr, sizeof(errstr)) != 0)
		return -1;
	snprintf(h->cert, sizeof(h->cert), "/tmp/cb-test-sim-%d-%d.pem",
		 (int)getpid(), ++h_serial);
	h_set(&h->cfg, "sim_port", "0");
	h_set(&h->cfg, "sim_control_port", "0");
	h_set(&h->cfg, "sim_cert_file", h->cert);
	h_set(&h->cfg, "sim_rate", "0");
	h_set(&h->cfg, "sim_event_rate", "0.05");
	snprintf(num, sizeof(num), "%d", 1000 + h_serial);
	h_set(&h->cfg, "sim_seed", num);
	if (tweak != NULL)
		tweak(&h->cfg);
	if (cb_sim_new(&h->sim, &h->cfg, errstr, sizeof(errstr)) != 0) {
		printf("# cb_sim_new: %s\n", errstr);
		cb_config_release(&h->cfg);
		return -1;
	}
	h->port = cb_sim_port(h->sim);
	h->ctl_port = cb_sim_control_port(h->sim);
	if (pthread_create(&h->th, NULL, h_sim_main, h) != 0)
		return -1;
	return 0;
}

static inline void sim_down(struct simh *h)
{
	if (h->sim == NULL)
		return;
	cb_sim_stop(h->sim);
	pthread_join(h->th, NULL);
	cb_sim_free(h->sim);
	h->sim = NULL;
	cb_config_release(&h->cfg);
	unlink(h->cert);
}

/* ---- the IRC module and the sink ---- */

#define H_MAX_IDS 200000

struct irch {
	struct cb_config cfg;
	struct cb_app app;
	struct cb_irc_tuning tune;
	bool started;
	/* what the sink saw */
	uint64_t chat, events, dlq, bad;
	uint64_t chat_a, chat_b; /* channels "a" and "b" */
	char **ids;
	size_t nids;
	char last_dlq_reason[256];
	char last_dlq_key[32];
	char bad_why[256];
};

static inline int irc_setup(struct irch *h, const struct simh *s,
			    size_t ring_bytes)
{
	char errstr[512], num[32];

	memset(h, 0, sizeof(*h));
	if (cb_config_init(&h->cfg, errstr, sizeof(errstr)) != 0)
		return -1;
	h_set(&h->cfg, "irc_host", "127.0.0.1");
	snprintf(num, sizeof(num), "%d", s ? s->port : 1);
	h_set(&h->cfg, "irc_port", num);
	if (s != NULL)
		h_set(&h->cfg, "irc_ca_file", s->cert);
	h_set(&h->cfg, "irc_backoff_min_ms", "20");
	h_set(&h->cfg, "irc_backoff_max_ms", "200");
	cb_irc_tuning_defaults(&h->tune);
	h->app.cfg = &h->cfg;
	h->app.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (cb_ring_new(&h->app.irc_out, ring_bytes, "irc_out", errstr,
			sizeof(errstr)) != 0 ||
	    cb_ring_new(&h->app.irc_cmd, 64 << 10, "irc_cmd", errstr,
			sizeof(errstr)) != 0)
		return -1;
	h->ids = calloc(H_MAX_IDS, sizeof(*h->ids));
	return h->ids ? 0 : -1;
}

static inline int irc_go(struct irch *h)
{
	char errstr[512];

	if (cb_irc_start_tuned(&h->app, &h->tune, errstr, sizeof(errstr)) !=
	    0) {
		printf("# cb_irc_start: %s\n", errstr);
		return -1;
	}
	h->started = true;
	return 0;
}

static inline void irc_teardown(struct irch *h)
{
	if (h->started)
		cb_irc_stop(&h->app);
	h->started = false;
	cb_ring_free(h->app.irc_out);
	cb_ring_free(h->app.irc_cmd);
	if (h->app.wake_fd >= 0)
		close(h->app.wake_fd);
	for (size_t i = 0; i < h->nids; i++)
		free(h->ids[i]);
	free(h->ids);
	cb_config_release(&h->cfg);
	memset(h, 0, sizeof(*h));
}

static inline void sink_bad(struct irch *h, const char *why)
{
	h->bad++;
	snprintf(h->bad_why, sizeof(h->bad_why), "%s", why);
}

/* Checks one record against docs/contracts.md and counts it. */
static inline void sink_record(struct irch *h, const uint8_t *p, uint32_t len)
{
	struct cb_out_hdr hdr;
	const char *key, *val;
	json_t *root, *v;
	json_error_t jerr;

	if (len < sizeof(hdr)) {
		sink_bad(h, "record shorter than its header");
		return;
	}
	memcpy(&hdr, p, sizeof(hdr));
	if (hdr.key_len > CB_CHANNEL_MAX ||
	    sizeof(hdr) + hdr.key_len + hdr.value_len != len) {
		sink_bad(h, "lengths do not add up");
		return;
	}
	key = (const char *)p + sizeof(hdr);
	val = key + hdr.key_len;
	root = json_loadb(val, hdr.value_len, 0, &jerr);
	if (root == NULL) {
		sink_bad(h, "value is not JSON");
		return;
	}
	if (hdr.kind == CB_OUT_DLQ) {
		h->dlq++;
		v = json_object_get(root, "reason");
		snprintf(h->last_dlq_reason, sizeof(h->last_dlq_reason), "%s",
			 json_is_string(v) ? json_string_value(v) : "");
		snprintf(h->last_dlq_key, sizeof(h->last_dlq_key), "%.*s",
			 (int)hdr.key_len, key);
		if (!json_is_string(json_object_get(root, "stage")) ||
		    (!json_is_string(json_object_get(root, "raw")) &&
		     !json_is_string(json_object_get(root, "raw_base64"))))
			sink_bad(h, "DLQ record without stage/raw");
	} else if (hdr.kind == CB_OUT_CHAT || hdr.kind == CB_OUT_EVENT) {
		json_t *ch = json_object_get(root, "channel_id");
		json_t *id = json_object_get(root, "message_id");
		json_t *ty = json_object_get(root, "type");

		if (!json_is_string(ch) ||
		    strlen(json_string_value(ch)) != hdr.key_len ||
		    memcmp(json_string_value(ch), key, hdr.key_len) != 0)
			sink_bad(h, "key is not the channel_id");
		else if (!json_is_string(id) || strlen(json_string_value(id)) != 36)
			sink_bad(h, "no message_id UUID");
		else if (!json_is_integer(json_object_get(root, "timestamp")) ||
			 !json_is_integer(json_object_get(root, "received_at")) ||
			 !json_is_string(json_object_get(root, "message")) ||
			 !json_is_array(json_object_get(root, "emotes")))
			sink_bad(h, "original fields missing");
		else if (!json_is_string(ty) ||
			 (strcmp(json_string_value(ty), "message") == 0) !=
				 (hdr.kind == CB_OUT_CHAT))
			sink_bad(h, "type does not match the record kind");
		else if (h->nids < H_MAX_IDS)
			h->ids[h->nids++] = strdup(json_string_value(id));
		if (hdr.kind == CB_OUT_CHAT) {
			h->chat++;
			if (hdr.key_len == 1 && key[0] == 'a')
				h->chat_a++;
			if (hdr.key_len == 1 && key[0] == 'b')
				h->chat_b++;
		} else {
			h->events++;
		}
	} else {
		sink_bad(h, "unknown record kind");
	}
	json_decref(root);
}

static inline void sink_drain(struct irch *h)
{
	const void *p;
	uint32_t len;

	while ((p = cb_ring_read(h->app.irc_out, &len)) != NULL)
		sink_record(h, p, len);
	cb_ring_release(h->app.irc_out);
}

static int h_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Number of message ids seen more than once. */
static inline size_t sink_dup_ids(struct irch *h)
{
	size_t d = 0;

	qsort(h->ids, h->nids, sizeof(*h->ids), h_cmp_str);
	for (size_t i = 1; i < h->nids; i++)
		d += strcmp(h->ids[i - 1], h->ids[i]) == 0;
	return d;
}

/* ---- the control interface ---- */

/*
 * Sends one control command and reads its reply line, draining the ring
 * meanwhile (a sync needs the irc thread to keep reading).  Returns 0.
 */
static inline int sim_ctl(const struct simh *s, struct irch *h,
			  const char *cmd, char *reply, size_t size)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	size_t got = 0;
	int64_t deadline = t_now_ms() + 30000;
	int rc = -1;

	sa.sin_port = htons((uint16_t)s->ctl_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto out;
	if (write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd) ||
	    write(fd, "\n", 1) != 1)
		goto out;
	while (t_now_ms() < deadline && got + 1 < size) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (h != NULL && h->started)
			sink_drain(h);
		if (poll(&pfd, 1, 10) <= 0)
			continue;
		n = read(fd, reply + got, size - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(reply, '\n', got) != NULL) {
			rc = 0;
			break;
		}
	}
out:
	reply[got < size ? got : size - 1] = '\0';
	if (got > 0 && reply[got - 1] == '\n')
		reply[got - 1] = '\0';
	if (fd >= 0)
		close(fd);
	return rc;
}

/* "stats" as a jansson object (caller decrefs), or NULL. */
static inline json_t *sim_stats(const struct simh *s, struct irch *h)
{
	static char buf[1 << 16];
	json_error_t jerr;

	if (sim_ctl(s, h, "stats", buf, sizeof(buf)) != 0)
		return NULL;
	return json_loads(buf, 0, &jerr);
}

static inline int64_t js_int(json_t *o, const char *path1, const char *path2,
			     const char *path3)
{
	json_t *v = json_object_get(o, path1);

	if (path2 != NULL)
		v = json_object_get(v, path2);
	if (path3 != NULL)
		v = json_object_get(v, path3);
	return json_is_integer(v) ? json_integer_value(v) : -1;
}

static inline int64_t sim_stat(const struct simh *s, struct irch *h,
			       const char *p1, const char *p2, const char *p3)
{
	json_t *st = sim_stats(s, h);
	int64_t v = st ? js_int(st, p1, p2, p3) : -1;

	json_decref(st);
	return v;
}

/* The state of channel name in cb_irc_status, or -1 when not listed. */
static inline int chan_state(struct irch *h, const char *name, char *reason,
			     size_t size)
{
	struct cb_irc_channel_status st[64];
	size_t n = cb_irc_status(h->app.irc, st, 64);

	for (size_t i = 0; i < n && i < 64; i++)
		if (strcmp(st[i].channel, name) == 0) {
			if (reason != NULL)
				snprintf(reason, size, "%s", st[i].reason);
			return st[i].state;
		}
	return -1;
}

/* Waits until channel name's status reason contains needle; the last
 * reason is left in reason. */
static inline void wait_reason(struct irch *h, const char *name,
			       const char *needle, char *reason, size_t size,
			       int timeout_ms)
{
	(void)WAIT_UNTIL_DO((chan_state(h, name, reason, size),
			     strstr(reason, needle) != NULL),
			    timeout_ms, cb_ring_wait(h->app.irc_out, 10));
}

/* Waits (draining the ring) until every channel in names is JOINED. */
static inline bool wait_joined(struct irch *h, const char *const *names,
			       size_t n, int timeout_ms)
{
	int64_t deadline = t_now_ms() + timeout_ms;

	while (t_now_ms() < deadline) {
		size_t ok = 0;

		sink_drain(h);
		for (size_t i = 0; i < n; i++)
			ok += chan_state(h, names[i], NULL, 0) ==
			      CB_IRC_CHAN_JOINED;
		if (ok == n)
			return true;
		cb_ring_wait(h->app.irc_out, 10);
	}
	return false;
}

/* Pauses the simulator, syncs (every client read everything), and waits
 * until the sink holds what the simulator sent: returns the sim's
 * statistics for the caller's comparisons. */
static inline json_t *settle(const struct simh *s, struct irch *h)
{
	char reply[256];
	json_t *st;
	int64_t deadline;

	if (sim_ctl(s, h, "pause", reply, sizeof(reply)) != 0 ||
	    sim_ctl(s, h, "sync", reply, sizeof(reply)) != 0) {
		printf("# settle: control failed\n");
		return NULL;
	}
	st = sim_stats(s, h);
	deadline = t_now_ms() + 10000;
	while (st != NULL && t_now_ms() < deadline) {
		int64_t want = js_int(st, "totals", "messages", NULL);

		sink_drain(h);
		if ((int64_t)h->chat >= want)
			break;
		cb_ring_wait(h->app.irc_out, 10);
	}
	sink_drain(h);
	return st;
}

#endif
