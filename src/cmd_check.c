/*
 * cmd_check.c - `chatbattle check`: connects to each dependency with the
 * effective settings and prints one line per dependency,
 *
 *     kafka      ok      127.0.0.1:9092: 1 broker; topics ... present
 *     cassandra  ok      127.0.0.1:9042: Cassandra 5.0.9; keyspace ...
 *     node       up      127.0.0.1:9042 dc1/rack1, 16 tokens; connected ...
 *     node       down    127.0.0.2:9042 dc1/rack2, 16 tokens; connect: ...
 *     twitch     skipped check_twitch is off
 *     viewers    off     no twitch_client_id and twitch_client_secret
 *
 * Kafka: cluster metadata, and the topics chatbattle uses exist.
 * Cassandra: a session (TLS and authentication as configured), the
 * keyspace and its tables (raw_chat_messages and/or raw_chat_messages_by_day,
 * as cassandra_tables says) exist, then one line per node
 * of the ring (check_nodes).  Twitch: TCP, TLS with
 * certificate and host name verified (unless irc_tls is off), and a login
 * (with the configured credentials, else anonymous) answered by 001;
 * --no-check-twitch skips it on a machine without Internet access.
 * Viewers: with a client id and secret, an app access token and one Helix
 * streams request for the configured channels ("ok, N of M channels
 * live"); without them "off" (not a failure: the feature is optional);
 * skipped with the Twitch check.
 * `check CHANNEL...` adds, per channel id, its Murmur3 token, the
 * replicas of that token and the node the writer sends its rows to.
 * Exit status 1 when any dependency failed, else 0.
 *
 * Runs in the main thread, one dependency after the other, each bounded by
 * its timeout.  Secrets are sent, never printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/ssl.h>

#include "chatbattle/clock.h"
#include "chatbattle/cmd.h"
#include "chatbattle/commands.h"
#include "chatbattle/config.h"
#include "chatbattle/cql.h"
#include "chatbattle/cql_ring.h"
#include "chatbattle/err.h"
#include "chatbattle/helix.h"
#include "chatbattle/irc_msg.h"
#include "chatbattle/isotime.h"
#include "chatbattle/kafka.h"
#include "chatbattle/murmur3.h"
#include "chatbattle/tls.h"
#include "chatbattle/viewers.h"

/* Kafka metadata and the whole Twitch probe (connect, TLS, login). */
#define CHECK_TIMEOUT_MS 10000
#define IRC_BUF 8192

static void report(const char *what, const char *status, const char *detail)
{
	printf("%-10s %-7s %s\n", what, status, detail);
	fflush(stdout);
}

/* ---- Kafka ---- */

static bool check_kafka(const struct cb_config *cfg)
{
	const char *topics[] = {cfg->topic_messages, cfg->topic_stats,
				cfg->topic_dlq};
	const rd_kafka_metadata_t *md = NULL;
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *rk = NULL;
	rd_kafka_resp_err_t e;
	char errstr[512], detail[1536];
	size_t o;
	bool ok = false;

	if (cb_kafka_conf_new(cfg, "check", &conf, errstr, sizeof(errstr)) !=
	    0) {
		snprintf(detail, sizeof(detail), "%s", errstr);
		goto out;
	}
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL) {
		rd_kafka_conf_destroy(conf);
		snprintf(detail, sizeof(detail), "client: %s", errstr);
		goto out;
	}
	e = rd_kafka_metadata(rk, 1, NULL, &md, CHECK_TIMEOUT_MS);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(detail, sizeof(detail),
			 "%s: cannot read the cluster metadata (waited up to "
			 "%d ms): %s",
			 cfg->kafka_brokers, CHECK_TIMEOUT_MS,
			 rd_kafka_err2str(e));
		md = NULL;
		goto out;
	}
	o = (size_t)snprintf(detail, sizeof(detail), "%s: %d broker(s);",
			     cfg->kafka_brokers, md->broker_cnt);
	ok = true;
	for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
		int parts = -1;

		for (int t = 0; t < md->topic_cnt; t++)
			if (strcmp(md->topics[t].topic, topics[i]) == 0 &&
			    md->topics[t].err == RD_KAFKA_RESP_ERR_NO_ERROR)
				parts = md->topics[t].partition_cnt;
		if (parts < 0)
			ok = false;
		if (o < sizeof(detail))
			o += (size_t)snprintf(
				detail + o, sizeof(detail) - o, " %s %s%s",
				topics[i],
				parts < 0 ? "MISSING" : "present",
				i + 1 < sizeof(topics) / sizeof(topics[0])
					? ","
					: "");
	}
	if (!ok && o < sizeof(detail))
		snprintf(detail + o, sizeof(detail) - o,
			 " (run chatbattle init)");
out:
	report("kafka", ok ? "ok" : "failed", detail);
	if (md != NULL)
		rd_kafka_metadata_destroy(md);
	if (rk != NULL)
		rd_kafka_destroy(rk);
	return ok;
}

/* ---- Cassandra ---- */

/*
 * One line per node of the ring the contact point reports (system.local,
 * system.peers_v2): address, data centre and rack, token count, and
 * whether it answers CQL now (a session of its own: `check` has no event
 * stream, so "up" means "answers", "down" gives the reason).  A node down
 * does not fail the check: the cluster may still take writes at the
 * configured consistency; the writer's view is in /metrics
 * (chatbattle_cql_nodes_up, chatbattle_cql_connections).
 */
/* One "token" line: the key's token, its replicas, the node written via. */
static void token_line(const char *key, int64_t t,
		       const struct cb_cql_ring *ring, int err,
		       const char *errstr, const struct cb_cql_peer *peers,
		       const bool *up)
{
	char detail[1024], reps[600];
	const uint16_t *rep = NULL;
	size_t k = err == 0 ? cb_cql_ring_replicas(ring, t, &rep) : 0;
	int pick = -1;
	size_t o = 0;

	reps[0] = '\0';
	for (size_t i = 0; i < k; i++)
		o += (size_t)snprintf(reps + o,
				      o < sizeof(reps) ? sizeof(reps) - o : 0,
				      "%s%s:%d", i ? "," : "", peers[rep[i]].addr,
				      peers[rep[i]].port);
	for (int pass = 0; pass < 2 && pick < 0; pass++)
		for (size_t i = 0; i < k && pick < 0; i++)
			if (up[rep[i]] &&
			    (strcmp(peers[rep[i]].dc, peers[0].dc) == 0) ==
				    (pass == 0))
				pick = rep[i];
	if (err != 0)
		snprintf(detail, sizeof(detail),
			 "%s: %" PRId64 "; no replicas: %s", key, t, errstr);
	else
		snprintf(detail, sizeof(detail),
			 "%s: %" PRId64 "; replicas %s; written via %s%s%.0d",
			 key, t, reps,
			 pick >= 0 ? peers[pick].addr
				   : "the next live node (no replica answers)",
			 pick >= 0 ? ":" : "", pick >= 0 ? peers[pick].port : 0);
	report("token", err == 0 ? "ok" : "failed", detail);
}

/*
 * `check CHANNEL...`: for each channel id, its Murmur3 token (with the
 * day-bucketed table also that of (channel, today), shown as CH@DATE), the replicas
 * of that token under the keyspace's replication (cql_ring.c, as the
 * writer computes them), and the node the writer sends its rows to: the
 * first replica in ring order that answers, in the contact point's data
 * centre first (cql.c route(), when no replica is busy).
 */
static void check_tokens(const struct cb_config *cfg,
			 struct cb_cql_session *s,
			 const struct cb_cql_peer *peers, size_t n,
			 const bool *up)
{
	struct cb_cql_ring_node rn[64];
	struct cb_cql_ring ring = {0};
	struct cb_cql_repl repl;
	char errstr[512] = "";
	int err;

	if (n > sizeof(rn) / sizeof(rn[0]))
		n = sizeof(rn) / sizeof(rn[0]);
	err = cb_cql_read_replication(s, cfg->cassandra_keyspace, &repl,
				      errstr, sizeof(errstr));
	for (size_t i = 0; err == 0 && i < n; i++) {
		rn[i].dc = peers[i].dc;
		rn[i].rack = peers[i].rack;
		rn[i].tokens = peers[i].tokens;
		rn[i].ntokens = peers[i].ntokens;
	}
	if (err == 0)
		err = cb_cql_ring_build(&ring, rn, n, &repl, errstr,
					sizeof(errstr));
	for (int a = 0; a < cfg->nargs; a++) {
		const char *ch = cfg->args[a];

		if (cfg->cassandra_tables == NULL ||
		    strcmp(cfg->cassandra_tables, "daily") != 0)
			token_line(ch, cb_murmur3_token(ch, strlen(ch)), &ring,
				   err, errstr, peers, up);
		if (cfg->cassandra_tables == NULL ||
		    strcmp(cfg->cassandra_tables, "raw") != 0) {
			/* raw_chat_messages_by_day: today's bucket */
			int32_t day = cb_murmur3_day_of_ms(cb_wall_ms());
			char key[300], iso[CB_ISOTIME_MAX];

			snprintf(key, sizeof(key), "%s@%.10s", ch,
				 cb_isotime_format((int64_t)day * 86400000,
						   iso));
			token_line(key,
				   cb_murmur3_token_channel_day(ch, strlen(ch),
								day),
				   &ring, err, errstr, peers, up);
		}
	}
	cb_cql_ring_free(&ring);
}

static void check_nodes(const struct cb_config *cfg, struct cb_cql_session *s)
{
	struct cb_cql_peer *peers = NULL;
	size_t n = 0;
	char errstr[512], detail[1024];
	bool up[64] = {0};

	if (cb_cql_read_ring(s, (int)cfg->cassandra_port, &peers, &n, errstr,
			     sizeof(errstr)) != 0) {
		report("node", "unknown", errstr);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct cb_cql_session *ns = NULL;
		int err = cb_cql_session_open_node(cfg, peers[i].addr,
						   peers[i].port, &ns, errstr,
						   sizeof(errstr));

		snprintf(detail, sizeof(detail),
			 "%s:%d %s/%s, %zu token%s%s%s%s", peers[i].addr,
			 peers[i].port, peers[i].dc, peers[i].rack,
			 peers[i].ntokens, peers[i].ntokens == 1 ? "" : "s",
			 err == 0 ? "; connected" : "; ",
			 err == 0 ? "" : errstr,
			 i == 0 ? " (the contact point)" : "");
		report("node", err == 0 ? "up" : "down", detail);
		if (i < sizeof(up) / sizeof(up[0]))
			up[i] = err == 0;
		cb_cql_session_close(ns);
	}
	if (cfg->nargs > 0)
		check_tokens(cfg, s, peers, n, up);
	cb_cql_peers_free(peers, n);
}

static bool check_cassandra(const struct cb_config *cfg)
{
	struct cb_cql_session *s = NULL;
	char errstr[1024], detail[1536], version[64], q[256], name[128];
	char hosts[512];
	const char *ks = cfg->cassandra_keyspace;
	bool ok = false;
	int err;

	cb_config_format(cfg, CB_OPT_cassandra_hosts, hosts, sizeof(hosts));
	err = cb_cql_session_open(cfg, NULL, &s, errstr, sizeof(errstr));
	if (err != 0) {
		snprintf(detail, sizeof(detail), "%s", errstr);
		goto out;
	}
	err = cb_cql_query_text(s, "SELECT release_version FROM system.local",
				version, sizeof(version), errstr,
				sizeof(errstr));
	if (err != 0) {
		snprintf(detail, sizeof(detail), "%s", errstr);
		goto out;
	}
	/* ks is a validated identifier (config type IDENT). */
	snprintf(q, sizeof(q),
		 "SELECT keyspace_name FROM system_schema.keyspaces WHERE "
		 "keyspace_name = '%s'",
		 ks);
	err = cb_cql_query_text(s, q, name, sizeof(name), errstr,
				sizeof(errstr));
	if (err == CB_E_NOTFOUND) {
		snprintf(detail, sizeof(detail),
			 "%s: Cassandra %s answers, but keyspace %s does not "
			 "exist (run chatbattle init)",
			 hosts, version, ks);
		goto out;
	}
	/* the tables cassandra_tables writes (and the readers read) */
	{
		const char *t = cfg->cassandra_tables;
		const char *want[2];
		size_t nwant = 0;

		if (t == NULL || strcmp(t, "daily") != 0)
			want[nwant++] = "raw_chat_messages";
		if (t == NULL || strcmp(t, "raw") != 0)
			want[nwant++] = "raw_chat_messages_by_day";
		for (size_t i = 0; i < nwant && err == 0; i++) {
			snprintf(q, sizeof(q),
				 "SELECT table_name FROM system_schema.tables "
				 "WHERE keyspace_name = '%s' AND table_name = "
				 "'%s'",
				 ks, want[i]);
			err = cb_cql_query_text(s, q, name, sizeof(name),
						errstr, sizeof(errstr));
			if (err == CB_E_NOTFOUND) {
				snprintf(detail, sizeof(detail),
					 "%s: Cassandra %s answers, but "
					 "keyspace %s has no table %s (run "
					 "chatbattle init%s)",
					 hosts, version, ks, want[i],
					 i == nwant - 1 && nwant == 2
						 ? ", or set cassandra_tables = raw"
						 : "");
				goto out;
			}
		}
		if (err != 0) {
			snprintf(detail, sizeof(detail), "%s", errstr);
			goto out;
		}
		snprintf(detail, sizeof(detail),
			 "%s: Cassandra %s; keyspace %s with table%s %s%s%s%s%s",
			 hosts, version, ks, nwant == 2 ? "s" : "", want[0],
			 nwant == 2 ? ", " : "", nwant == 2 ? want[1] : "",
			 cfg->cassandra_tls ? "; TLS" : "",
			 cfg->cassandra_username[0] != '\0' ? "; authenticated"
							     : "");
	}
	ok = true;
out:
	report("cassandra", ok ? "ok" : "failed", detail);
	if (s != NULL)
		check_nodes(cfg, s);
	cb_cql_session_close(s);
	return ok;
}

/* ---- Twitch IRC ---- */

struct irc_probe {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	int64_t deadline_ms;
	char buf[IRC_BUF];
	size_t have;
};

static int remaining(const struct irc_probe *p)
{
	int64_t left = p->deadline_ms - cb_mono_ms();

	return left > 0 ? (int)left : 0;
}

static int tcp_connect(struct irc_probe *p, const char *host, int port,
		       char *errstr, size_t errstr_size)
{
	struct addrinfo hints = {0}, *ai = NULL;
	char ports[8];
	int rc, err = 0;

	hints.ai_socktype = SOCK_STREAM;
	snprintf(ports, sizeof(ports), "%d", port);
	rc = getaddrinfo(host, ports, &hints, &ai);
	if (rc != 0)
		return cb_seterr(errstr, errstr_size, CB_E_IO,
				 "cannot resolve %s: %s", host,
				 gai_strerror(rc));
	err = cb_seterr(errstr, errstr_size, CB_E_IO, "no address for %s",
			host);
	for (struct addrinfo *a = ai; a != NULL; a = a->ai_next) {
		struct pollfd pfd;
		int soerr = 0;
		socklen_t sl = sizeof(soerr);

		p->fd = socket(a->ai_family,
			       a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			       a->ai_protocol);
		if (p->fd < 0)
			continue;
		if (connect(p->fd, a->ai_addr, a->ai_addrlen) != 0 &&
		    errno != EINPROGRESS) {
			soerr = errno;
			goto next;
		}
		pfd = (struct pollfd){.fd = p->fd, .events = POLLOUT};
		rc = poll(&pfd, 1, remaining(p));
		if (rc == 0) {
			err = cb_seterr(errstr, errstr_size, CB_E_TIMEOUT,
					"connect to %s:%d timed out", host,
					port);
			close(p->fd);
			p->fd = -1;
			break;
		}
		if (rc < 0 ||
		    getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
			soerr = errno;
		if (soerr == 0) {
			err = 0;
			break;
		}
next:
		err = cb_seterr(errstr, errstr_size, CB_E_IO,
				"connect to %s:%d: %s", host, port,
				strerror(soerr));
		close(p->fd);
		p->fd = -1;
	}
	freeaddrinfo(ai);
	return err;
}

/* Waits until fd is ready for events or the deadline passes. */
static bool wait_fd(struct irc_probe *p, short events)
{
	struct pollfd pfd = {.fd = p->fd, .events = events};

	return poll(&pfd, 1, remaining(p)) > 0;
}

static int tls_start(struct irc_probe *p, const struct cb_config *cfg,
		     char *errstr, size_t errstr_size)
{
	const char *host = cfg->irc_host;
	char why[256];
	int rc;

	rc = cb_tls_client_ctx(&p->ctx, cfg->irc_ca_file, "irc_ca_file",
			       errstr, errstr_size);
	if (rc != 0)
		return rc;
	p->ssl = SSL_new(p->ctx);
	if (p->ssl == NULL)
		goto fail;
	rc = cb_tls_prepare(p->ssl, host, errstr, errstr_size);
	if (rc != 0)
		return rc;
	SSL_set_fd(p->ssl, p->fd);
	while ((rc = SSL_connect(p->ssl)) != 1) {
		int e = SSL_get_error(p->ssl, rc);

		if ((e == SSL_ERROR_WANT_READ &&
		     wait_fd(p, POLLIN)) ||
		    (e == SSL_ERROR_WANT_WRITE && wait_fd(p, POLLOUT)))
			continue;
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return cb_seterr(errstr, errstr_size, CB_E_TIMEOUT,
					 "TLS handshake with %s:%lld timed "
					 "out",
					 host, (long long)cfg->irc_port);
		goto fail;
	}
	return 0;
fail:
	cb_tls_reason(p->ssl, 0, why, sizeof(why));
	return cb_seterr(errstr, errstr_size, CB_E_TLS,
			 "TLS handshake with %s:%lld: %s", host,
			 (long long)cfg->irc_port, why);
}

static int send_text(struct irc_probe *p, const char *s, char *errstr,
		     size_t errstr_size)
{
	size_t n = strlen(s);

	while (n > 0) {
		ssize_t k;

		if (p->ssl != NULL) {
			size_t done = 0;
			int rc = SSL_write_ex(p->ssl, s, n, &done);

			if (rc != 1) {
				int e = SSL_get_error(p->ssl, rc);

				if ((e == SSL_ERROR_WANT_WRITE &&
				     wait_fd(p, POLLOUT)) ||
				    (e == SSL_ERROR_WANT_READ &&
				     wait_fd(p, POLLIN)))
					continue;
				return cb_seterr(errstr, errstr_size, CB_E_IO,
						 "TLS write failed");
			}
			k = (ssize_t)done;
		} else {
			k = send(p->fd, s, n, MSG_NOSIGNAL);
			if (k < 0 && (errno == EAGAIN || errno == EINTR) &&
			    wait_fd(p, POLLOUT))
				continue;
			if (k < 0)
				return cb_seterr(errstr, errstr_size, CB_E_IO,
						 "send: %s", strerror(errno));
		}
		s += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Reads more bytes into p->buf; 0, or an error (closed, timeout). */
static int read_more(struct irc_probe *p, char *errstr, size_t errstr_size)
{
	for (;;) {
		size_t room = sizeof(p->buf) - p->have;
		ssize_t k;

		if (p->ssl != NULL) {
			size_t done = 0;
			int rc = SSL_read_ex(p->ssl, p->buf + p->have, room,
					     &done);

			if (rc == 1) {
				p->have += done;
				return 0;
			}
			rc = SSL_get_error(p->ssl, rc);
			if (rc == SSL_ERROR_WANT_READ && wait_fd(p, POLLIN))
				continue;
			if (rc == SSL_ERROR_WANT_WRITE && wait_fd(p, POLLOUT))
				continue;
			if (rc == SSL_ERROR_WANT_READ ||
			    rc == SSL_ERROR_WANT_WRITE)
				break;
			return cb_seterr(errstr, errstr_size, CB_E_CLOSED,
					 "the server closed the connection");
		}
		k = recv(p->fd, p->buf + p->have, room, 0);
		if (k > 0) {
			p->have += (size_t)k;
			return 0;
		}
		if (k == 0)
			return cb_seterr(errstr, errstr_size, CB_E_CLOSED,
					 "the server closed the connection");
		if ((errno == EAGAIN || errno == EINTR) && wait_fd(p, POLLIN))
			continue;
		if (errno != EAGAIN)
			return cb_seterr(errstr, errstr_size, CB_E_IO,
					 "receive: %s", strerror(errno));
		break;
	}
	return cb_seterr(errstr, errstr_size, CB_E_TIMEOUT,
			 "no welcome (001) within %d ms", CHECK_TIMEOUT_MS);
}

/*
 * Reads lines until the login is answered: 001 (welcome) returns 0; a
 * NOTICE before it (Twitch's "Login authentication failed", "Improperly
 * formatted auth") or ERROR returns CB_E_AUTH with its text.
 */
static int await_welcome(struct irc_probe *p, char *errstr,
			 size_t errstr_size)
{
	struct cb_irc_msg *m = malloc(sizeof(*m));
	int err = 0;

	if (m == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "out of memory");
	for (;;) {
		char *nl = memchr(p->buf, '\n', p->have);
		char why[128];
		size_t n;

		if (nl == NULL) {
			if (p->have == sizeof(p->buf))
				p->have = 0; /* a line too long: not IRC */
			err = read_more(p, errstr, errstr_size);
			if (err != 0)
				break;
			continue;
		}
		n = (size_t)(nl - p->buf) + 1;
		if (cb_irc_parse(p->buf, n, m, why, sizeof(why)) == 0) {
			const struct cb_irc_str *c = &m->command;
			const struct cb_irc_str *last =
				m->nparams > 0 ? &m->params[m->nparams - 1]
					       : NULL;

			if (c->len == 3 && memcmp(c->p, "001", 3) == 0)
				break;
			if ((c->len == 6 && memcmp(c->p, "NOTICE", 6) == 0) ||
			    (c->len == 5 && memcmp(c->p, "ERROR", 5) == 0)) {
				err = cb_seterr(errstr, errstr_size, CB_E_AUTH,
						"login refused: %.*s",
						last ? (int)last->len : 0,
						last ? last->p : "");
				break;
			}
		}
		memmove(p->buf, p->buf + n, p->have - n);
		p->have -= n;
	}
	free(m);
	return err;
}

static bool check_twitch(const struct cb_config *cfg)
{
	struct irc_probe *p = calloc(1, sizeof(*p));
	char errstr[512], detail[1024], login[512], nick[64];
	bool anonymous = cfg->twitch_username[0] == '\0' ||
			 cfg->twitch_oauth_token[0] == '\0';
	bool ok = false;
	int err;

	if (p == NULL) {
		report("twitch", "failed", "out of memory");
		return false;
	}
	p->fd = -1;
	p->deadline_ms = cb_mono_ms() + CHECK_TIMEOUT_MS;
	err = tcp_connect(p, cfg->irc_host, (int)cfg->irc_port, errstr,
			  sizeof(errstr));
	if (err == 0 && cfg->irc_tls)
		err = tls_start(p, cfg, errstr, sizeof(errstr));
	if (anonymous) {
		uint64_t r = cb_mono_ns() | 1;

		snprintf(nick, sizeof(nick), "justinfan%u",
			 (unsigned)(cb_rand_next(&r) % 90000 + 10000));
		snprintf(login, sizeof(login), "NICK %s\r\n", nick);
	} else {
		const char *tok = cfg->twitch_oauth_token;

		snprintf(nick, sizeof(nick), "%s", cfg->twitch_username);
		snprintf(login, sizeof(login), "PASS %s%s\r\nNICK %s\r\n",
			 strncmp(tok, "oauth:", 6) == 0 ? "" : "oauth:", tok,
			 nick);
	}
	if (err == 0)
		err = send_text(p, login, errstr, sizeof(errstr));
	memset(login, 0, sizeof(login)); /* it held the token */
	if (err == 0)
		err = await_welcome(p, errstr, sizeof(errstr));
	if (err == 0) {
		snprintf(detail, sizeof(detail),
			 "%s:%lld: %s%s%s, logged in as %s%s", cfg->irc_host,
			 (long long)cfg->irc_port,
			 cfg->irc_tls ? "TLS " : "plain TCP (irc_tls off)",
			 cfg->irc_tls ? SSL_get_version(p->ssl) : "",
			 cfg->irc_tls ? " with a verified certificate" : "",
			 nick, anonymous ? " (anonymous, read-only)" : "");
		ok = true;
		send_text(p, "QUIT\r\n", errstr, sizeof(errstr));
	} else {
		snprintf(detail, sizeof(detail), "%s:%lld: %s", cfg->irc_host,
			 (long long)cfg->irc_port, errstr);
	}
	report("twitch", ok ? "ok" : "failed", detail);
	if (p->ssl != NULL)
		SSL_free(p->ssl);
	SSL_CTX_free(p->ctx);
	if (p->fd >= 0)
		close(p->fd);
	free(p);
	return ok;
}

/* ---- viewer counts (Helix) ---- */

static bool check_viewers(const struct cb_config *cfg)
{
	char errstr[900], detail[1100];
	size_t live, asked = cfg->channel.n < CB_HELIX_LOGINS_MAX
				     ? cfg->channel.n
				     : CB_HELIX_LOGINS_MAX;
	int err;

	if (!cb_viewers_enabled(cfg)) {
		report("viewers", "off",
		       "no twitch_client_id and twitch_client_secret");
		return true;
	}
	err = cb_viewers_probe(cfg, CHECK_TIMEOUT_MS, &live, errstr,
			       sizeof(errstr));
	if (err != 0) {
		snprintf(detail, sizeof(detail), "%s: %s", cfg->helix_url,
			 errstr);
		report("viewers", "failed", detail);
		return false;
	}
	if (asked == 0)
		snprintf(detail, sizeof(detail),
			 "%s: app access token obtained; no channel configured "
			 "to ask about",
			 cfg->helix_url);
	else
		snprintf(detail, sizeof(detail),
			 "%s: %zu of %zu channel(s) live", cfg->helix_url, live,
			 asked);
	report("viewers", "ok", detail);
	return true;
}

int cb_cmd_check(const struct cb_config *cfg)
{
	bool ok = true;

	ok &= check_kafka(cfg);
	ok &= check_cassandra(cfg);
	if (cfg->check_twitch)
		ok &= check_twitch(cfg);
	else
		report("twitch", "skipped", "check_twitch is off");
	if (!cb_viewers_enabled(cfg) || cfg->check_twitch)
		ok &= check_viewers(cfg);
	else
		report("viewers", "skipped", "check_twitch is off");
	return ok ? CB_EXIT_OK : CB_EXIT_FAILURE;
}
