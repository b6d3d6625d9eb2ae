/*
 * cql_sync.c - the blocking CQL session of cql.h, and the helpers cql.c
 * shares (cql_int.h).  A session is one TCP (or TLS) connection, one
 * request at a time on stream 1, used by one thread at a time: `init`,
 * `history`, `check` and the HTTP messages endpoint.  Socket timeouts
 * (SO_RCVTIMEO/SO_SNDTIMEO) bound every call by cassandra_timeout_ms.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "chatbattle/clock.h"
#include "chatbattle/config.h"
#include "chatbattle/cql.h"
#include "chatbattle/cql_days.h"
#include "chatbattle/cql_frame.h"
#include "chatbattle/murmur3.h"
#include "chatbattle/cql_ring.h"
#include "chatbattle/err.h"
#include "chatbattle/log.h"
#include "chatbattle/tls.h"
#include "cql_int.h"

#define SUBSYS "cql"
#define STREAM 1

struct cb_cql_session {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	bool lz4;
	uint16_t consistency;
	int timeout_ms;
	char host[300];
	struct cb_cql_wbuf w;
	uint8_t *body;     /* the last response body (decompressed) */
	size_t body_cap;
	uint8_t *zbuf;     /* a compressed body as read */
	size_t zbuf_cap;
	struct cb_cql_response res;
	char keyspace[64];
	bool daily;        /* read raw_chat_messages_by_day (cassandra_tables) */
};

/* ---- shared helpers (cql_int.h) ---- */

int cb_cql_hosts(const struct cb_config *cfg, struct cb_cql_host **out,
		 size_t *n, char *errstr, size_t errstr_size)
{
	const struct cb_strlist *l = &cfg->cassandra_hosts;
	struct cb_cql_host *h;

	if (l->n == 0)
		return cb_seterr(errstr, errstr_size, CB_E_CONFIG,
				 "cassandra_hosts: no host given");
	h = calloc(l->n, sizeof(*h));
	if (h == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "out of memory");
	for (size_t i = 0; i < l->n; i++) {
		const char *s = l->v[i], *port = NULL, *name = s;
		size_t nlen;

		if (s[0] == '[') { /* [v6]:port */
			const char *e = strchr(s, ']');

			if (e == NULL)
				goto bad;
			name = s + 1;
			nlen = (size_t)(e - name);
			if (e[1] == ':')
				port = e + 2;
			else if (e[1] != '\0')
				goto bad;
		} else {
			const char *c = strchr(s, ':');

			if (c != NULL && strchr(c + 1, ':') != NULL)
				c = NULL; /* a bare IPv6 address */
			nlen = c != NULL ? (size_t)(c - s) : strlen(s);
			if (c != NULL)
				port = c + 1;
		}
		if (nlen == 0 || nlen >= sizeof(h[i].name))
			goto bad;
		memcpy(h[i].name, name, nlen);
		h[i].name[nlen] = '\0';
		h[i].port = (int)cfg->cassandra_port;
		if (port != NULL) {
			char *end;
			long p = strtol(port, &end, 10);

			if (*port == '\0' || *end != '\0' || p < 1 || p > 65535)
				goto bad;
			h[i].port = (int)p;
		}
		continue;
bad:
		free(h);
		return cb_seterr(errstr, errstr_size, CB_E_CONFIG,
				 "cassandra_hosts: '%s' is not host[:port]", s);
	}
	*out = h;
	*n = l->n;
	return 0;
}

SSL_CTX *cb_cql_tls_ctx(const struct cb_config *cfg, char *errstr,
			size_t errstr_size)
{
	SSL_CTX *ctx = NULL;

	cb_tls_client_ctx(&ctx, cfg->cassandra_ca_file, "cassandra_ca_file",
			  errstr, errstr_size);
	return ctx;
}

int cb_cql_tls_prepare(SSL *ssl, const char *host, char *errstr,
		       size_t errstr_size)
{
	return cb_tls_prepare(ssl, host, errstr, errstr_size);
}

uint16_t cb_cql_cfg_consistency(const struct cb_config *cfg)
{
	int c = cfg->cassandra_consistency != NULL
			? cb_cql_consistency_parse(cfg->cassandra_consistency)
			: -1;

	return c >= 0 ? (uint16_t)c : CB_CQL_LOCAL_ONE;
}

void cb_cql_insert_cql(const char *keyspace, char *buf, size_t size)
{
	snprintf(buf, size,
		 "INSERT INTO %s.raw_chat_messages (channel_id, timestamp, "
		 "message_id, user_id, username, message, emotes) VALUES "
		 "(?, ?, ?, ?, ?, ?, ?)",
		 keyspace);
}

void cb_cql_insert_day_cql(const char *keyspace, char *buf, size_t size)
{
	snprintf(buf, size,
		 "INSERT INTO %s.raw_chat_messages_by_day (channel_id, day, "
		 "timestamp, message_id, user_id, username, message, emotes) "
		 "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		 keyspace);
}

void cb_cql_cfg_tables(const struct cb_config *cfg, bool *raw, bool *daily)
{
	const char *t = cfg->cassandra_tables;

	*raw = t == NULL || strcmp(t, "daily") != 0;
	*daily = t == NULL || strcmp(t, "raw") != 0;
}

void cb_cql_put_emote_block(struct cb_cql_wbuf *w, const uint8_t *block,
			    size_t block_len, uint16_t count)
{
	size_t total = 4, o = 0;

	/* the [value] length first: the count, then each element's [int]
	 * and bytes; a block that does not hold count elements poisons w */
	for (uint16_t i = 0; i < count; i++) {
		uint16_t n;

		if (o + 2 > block_len)
			goto bad;
		memcpy(&n, block + o, 2);
		if (o + 2 + n > block_len)
			goto bad;
		total += 4 + (size_t)n;
		o += 2 + (size_t)n;
	}
	cb_cql_put_int(w, (int32_t)total);
	cb_cql_put_int(w, count);
	o = 0;
	for (uint16_t i = 0; i < count; i++) {
		uint16_t n;

		memcpy(&n, block + o, 2);
		cb_cql_put_bytes(w, block + o + 2, n);
		o += 2 + (size_t)n;
	}
	return;
bad:
	w->failed = true;
}

/* ---- the blocking session ---- */

static int io_err(struct cb_cql_session *s, const char *what, char *errstr,
		  size_t errstr_size)
{
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return cb_seterr(errstr, errstr_size, CB_E_TIMEOUT,
				 "Cassandra %s: %s timed out after %d ms",
				 s->host, what, s->timeout_ms);
	return cb_seterr(errstr, errstr_size, CB_E_IO, "Cassandra %s: %s: %s",
			 s->host, what, strerror(errno));
}

static int send_all(struct cb_cql_session *s, const uint8_t *p, size_t n,
		    char *errstr, size_t errstr_size)
{
	while (n > 0) {
		ssize_t k;

		if (s->ssl != NULL) {
			size_t done = 0;

			if (SSL_write_ex(s->ssl, p, n, &done) != 1) {
				char why[256];

				cb_tls_reason(NULL, 0, why, sizeof(why));
				return cb_seterr(errstr, errstr_size, CB_E_TLS,
						 "Cassandra %s: TLS write: %s",
						 s->host, why);
			}
			k = (ssize_t)done;
		} else {
			k = send(s->fd, p, n, MSG_NOSIGNAL);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0)
				return io_err(s, "send", errstr, errstr_size);
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int recv_all(struct cb_cql_session *s, uint8_t *p, size_t n,
		    char *errstr, size_t errstr_size)
{
	while (n > 0) {
		ssize_t k;

		if (s->ssl != NULL) {
			size_t done = 0;

			if (SSL_read_ex(s->ssl, p, n, &done) != 1) {
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					return io_err(s, "receive", errstr,
						      errstr_size);
				return cb_seterr(errstr, errstr_size,
						 CB_E_CLOSED,
						 "Cassandra %s closed the TLS "
						 "connection",
						 s->host);
			}
			k = (ssize_t)done;
		} else {
			k = recv(s->fd, p, n, 0);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0)
				return io_err(s, "receive", errstr,
					      errstr_size);
			if (k == 0)
				return cb_seterr(errstr, errstr_size,
						 CB_E_CLOSED,
						 "Cassandra %s closed the "
						 "connection",
						 s->host);
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	uint8_t *p;

	if (need <= *cap)
		return 0;
	p = realloc(*buf, need);
	if (p == NULL)
		return CB_E_NOMEM;
	*buf = p;
	*cap = need;
	return 0;
}

/* Compresses the frame in s->w in place when the session uses LZ4. */
static int maybe_compress(struct cb_cql_session *s)
{
	size_t body = s->w.len - CB_CQL_HDR_LEN;
	size_t bound = cb_cql_lz4_bound(body);
	int k;

	if (!s->lz4 || s->w.p[4] == CB_CQL_OP_STARTUP ||
	    s->w.p[4] == CB_CQL_OP_OPTIONS)
		return 0;
	if (grow(&s->zbuf, &s->zbuf_cap, bound) != 0)
		return CB_E_NOMEM;
	k = cb_cql_lz4_compress(s->w.p + CB_CQL_HDR_LEN, body, s->zbuf, bound);
	if (k < 0)
		return k;
	s->w.len = CB_CQL_HDR_LEN;
	cb_cql_put_raw(&s->w, s->zbuf, (size_t)k);
	s->w.p[1] |= CB_CQL_F_COMPRESSION;
	cb_cql_frame_end(&s->w, 0);
	return s->w.failed ? CB_E_TOOBIG : 0;
}

/*
 * Sends the frame in s->w and reads the response to it into s->res
 * (events on other streams are skipped).  An ERROR response returns
 * CB_E_CQL (CB_E_AUTH for bad credentials) with the decoded reason.
 */
static int roundtrip(struct cb_cql_session *s, char *errstr,
		     size_t errstr_size)
{
	uint8_t hb[CB_CQL_HDR_LEN];
	struct cb_cql_header h;
	uint8_t *body;
	size_t blen;
	int err;

	if (s->w.failed)
		return cb_seterr(errstr, errstr_size, CB_E_TOOBIG,
				 "CQL request exceeds the frame size limit");
	err = maybe_compress(s);
	if (err != 0)
		return cb_seterr(errstr, errstr_size, err,
				 "CQL request compression failed");
	err = send_all(s, s->w.p, s->w.len, errstr, errstr_size);
	if (err != 0)
		return err;
	for (int skipped = 0; skipped < 1000; skipped++) {
		err = recv_all(s, hb, sizeof(hb), errstr, errstr_size);
		if (err != 0)
			return err;
		err = cb_cql_header_parse(hb, &h, errstr, errstr_size);
		if (err != 0)
			return err;
		if (grow(&s->zbuf, &s->zbuf_cap, h.length + 1u) != 0)
			return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
					 "out of memory");
		err = recv_all(s, s->zbuf, h.length, errstr, errstr_size);
		if (err != 0)
			return err;
		body = s->zbuf;
		blen = h.length;
		if (h.flags & CB_CQL_F_COMPRESSION) {
			int64_t want = cb_cql_lz4_declared_len(s->zbuf,
								blen);
			int k;

			if (want < 0 || want > CB_CQL_BODY_MAX)
				return cb_seterr(errstr, errstr_size,
						 CB_E_PROTO,
						 "CQL compressed body declares "
						 "a bad length");
			if (grow(&s->body, &s->body_cap, (size_t)want + 1) !=
			    0)
				return cb_seterr(errstr, errstr_size,
						 CB_E_NOMEM, "out of memory");
			k = cb_cql_lz4_decompress(s->zbuf, blen, s->body,
						  s->body_cap);
			if (k < 0)
				return cb_seterr(errstr, errstr_size, k,
						 "CQL body does not "
						 "decompress");
			body = s->body;
			blen = (size_t)k;
			h.flags &= (uint8_t)~CB_CQL_F_COMPRESSION;
		}
		if (h.stream != STREAM)
			continue; /* an event or a stale answer */
		err = cb_cql_response_parse(&h, body, blen, &s->res, errstr,
					    errstr_size);
		if (err != 0)
			return err;
		if (h.opcode == CB_CQL_OP_ERROR) {
			char why[1024];

			cb_cql_error_describe(&s->res.error, why, sizeof(why));
			return cb_seterr(errstr, errstr_size,
					 s->res.error.code ==
							 CB_CQL_ERR_BAD_CREDENTIALS
						 ? CB_E_AUTH
						 : CB_E_CQL,
					 "Cassandra %s: %s", s->host, why);
		}
		if (s->res.nwarnings > 0 && s->res.warning.len > 0)
			cb_warn(SUBSYS, "Cassandra %s warns: %.*s", s->host,
				(int)s->res.warning.len,
				(const char *)s->res.warning.p);
		return 0;
	}
	return cb_seterr(errstr, errstr_size, CB_E_PROTO,
			 "Cassandra %s: no answer on stream %d", s->host,
			 STREAM);
}

/* TCP connect with a deadline, then socket timeouts for the session. */
static int tcp_connect(struct cb_cql_session *s, const struct cb_cql_host *hp,
		       char *errstr, size_t errstr_size)
{
	struct addrinfo hints = {0}, *ai = NULL, *a;
	char port[8];
	int rc, err = CB_E_IO, fd = -1;
	struct timeval tv = {s->timeout_ms / 1000,
			     (s->timeout_ms % 1000) * 1000};
	int one = 1;

	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%d", hp->port);
	rc = getaddrinfo(hp->name, port, &hints, &ai);
	if (rc != 0)
		return cb_seterr(errstr, errstr_size, CB_E_IO,
				 "Cassandra %s: cannot resolve: %s", s->host,
				 gai_strerror(rc));
	for (a = ai; a != NULL; a = a->ai_next) {
		struct pollfd pfd;
		int soerr = 0;
		socklen_t sl = sizeof(soerr);

		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC |
						  SOCK_NONBLOCK,
			    a->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 &&
		    errno != EINPROGRESS)
			goto next;
		pfd.fd = fd;
		pfd.events = POLLOUT;
		rc = poll(&pfd, 1, s->timeout_ms);
		if (rc == 0) {
			err = cb_seterr(errstr, errstr_size, CB_E_TIMEOUT,
					"Cassandra %s: connect timed out after "
					"%d ms",
					s->host, s->timeout_ms);
			goto next_set;
		}
		if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr,
					 &sl) != 0 || soerr != 0) {
			errno = soerr != 0 ? soerr : errno;
			goto next;
		}
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		s->fd = fd;
		freeaddrinfo(ai);
		return 0;
next:
		err = cb_seterr(errstr, errstr_size, CB_E_IO,
				"Cassandra %s: connect: %s", s->host,
				strerror(errno));
next_set:
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return err;
}

static int tls_start(struct cb_cql_session *s, const struct cb_config *cfg,
		     const struct cb_cql_host *hp, char *errstr,
		     size_t errstr_size)
{
	char why[256];
	int err;

	s->ctx = cb_cql_tls_ctx(cfg, errstr, errstr_size);
	if (s->ctx == NULL)
		return CB_E_TLS;
	s->ssl = SSL_new(s->ctx);
	if (s->ssl == NULL)
		goto fail;
	err = cb_cql_tls_prepare(s->ssl, hp->name, errstr, errstr_size);
	if (err != 0)
		return err;
	SSL_set_fd(s->ssl, s->fd);
	if (SSL_connect(s->ssl) != 1)
		goto fail;
	return 0;
fail:
	cb_tls_reason(s->ssl, 0, why, sizeof(why));
	return cb_seterr(errstr, errstr_size, CB_E_TLS,
			 "Cassandra %s: TLS handshake: %s", s->host, why);
}

/* STARTUP, then authentication when the server asks for it. */
static int handshake(struct cb_cql_session *s, const struct cb_config *cfg,
		     char *errstr, size_t errstr_size)
{
	int err;

	cb_cql_wbuf_reset(&s->w);
	cb_cql_enc_startup(&s->w, STREAM, s->lz4 ? "lz4" : NULL);
	err = roundtrip(s, errstr, errstr_size);
	if (err != 0)
		return err;
	if (s->res.hdr.opcode == CB_CQL_OP_READY)
		return 0;
	if (s->res.hdr.opcode != CB_CQL_OP_AUTHENTICATE)
		return cb_seterr(errstr, errstr_size, CB_E_PROTO,
				 "Cassandra %s answered STARTUP with %s",
				 s->host,
				 cb_cql_opcode_name(s->res.hdr.opcode));
	if (cfg->cassandra_username == NULL ||
	    cfg->cassandra_username[0] == '\0')
		return cb_seterr(errstr, errstr_size, CB_E_AUTH,
				 "Cassandra %s requires authentication "
				 "(%.*s): set cassandra_username and "
				 "cassandra_password",
				 s->host, (int)s->res.authenticator.len,
				 (const char *)s->res.authenticator.p);
	cb_cql_wbuf_reset(&s->w);
	cb_cql_enc_auth_plain(&s->w, STREAM, cfg->cassandra_username,
			      cfg->cassandra_password != NULL
				      ? cfg->cassandra_password
				      : "");
	err = roundtrip(s, errstr, errstr_size);
	/* the password is not needed any more: wipe the request */
	memset(s->w.p, 0, s->w.len);
	if (err != 0)
		return err;
	if (s->res.hdr.opcode != CB_CQL_OP_AUTH_SUCCESS)
		return cb_seterr(errstr, errstr_size, CB_E_AUTH,
				 "Cassandra %s: unexpected %s during SASL "
				 "PLAIN authentication",
				 s->host,
				 cb_cql_opcode_name(s->res.hdr.opcode));
	return 0;
}

static void session_free(struct cb_cql_session *s)
{
	if (s == NULL)
		return;
	if (s->ssl != NULL) {
		SSL_shutdown(s->ssl);
		SSL_free(s->ssl);
	}
	SSL_CTX_free(s->ctx);
	if (s->fd >= 0)
		close(s->fd);
	cb_cql_wbuf_free(&s->w);
	free(s->body);
	free(s->zbuf);
	free(s);
}

int cb_cql_session_open(const struct cb_config *cfg, const char *keyspace,
			struct cb_cql_session **out, char *errstr,
			size_t errstr_size)
{
	struct cb_cql_host *hosts = NULL;
	size_t nhosts = 0;
	int err;

	*out = NULL;
	err = cb_cql_hosts(cfg, &hosts, &nhosts, errstr, errstr_size);
	if (err != 0)
		return err;
	for (size_t i = 0; i < nhosts; i++) {
		struct cb_cql_session *s = calloc(1, sizeof(*s));

		if (s == NULL) {
			err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
					"out of memory");
			break;
		}
		s->fd = -1;
		s->timeout_ms = (int)cfg->cassandra_timeout_ms;
		s->consistency = cb_cql_cfg_consistency(cfg);
		s->lz4 = cfg->cassandra_compression != NULL &&
			 strcmp(cfg->cassandra_compression, "lz4") == 0;
		{
			bool raw;

			cb_cql_cfg_tables(cfg, &raw, &s->daily);
		}
		snprintf(s->host, sizeof(s->host), "%s:%d", hosts[i].name,
			 hosts[i].port);
		cb_cql_wbuf_init(&s->w, 0);
		err = tcp_connect(s, &hosts[i], errstr, errstr_size);
		if (err == 0 && cfg->cassandra_tls)
			err = tls_start(s, cfg, &hosts[i], errstr,
					errstr_size);
		if (err == 0)
			err = handshake(s, cfg, errstr, errstr_size);
		if (err == 0 && keyspace != NULL && keyspace[0] != '\0') {
			char use[128];

			snprintf(use, sizeof(use), "USE %s", keyspace);
			err = cb_cql_exec(s, use, errstr, errstr_size);
			snprintf(s->keyspace, sizeof(s->keyspace), "%s",
				 keyspace);
		}
		if (err == 0) {
			*out = s;
			break;
		}
		session_free(s);
		/* authentication and TLS verification failures are the
		 * same on every node: report them, do not try the next */
		if (err == CB_E_AUTH || err == CB_E_TLS || err == CB_E_CQL)
			break;
	}
	free(hosts);
	return err;
}

void cb_cql_session_close(struct cb_cql_session *s)
{
	session_free(s);
}

int cb_cql_session_open_node(const struct cb_config *cfg, const char *host,
			     int port, struct cb_cql_session **out,
			     char *errstr, size_t errstr_size)
{
	struct cb_config one = *cfg; /* shallow: only the host list differs */
	char entry[300], *v[1] = {entry};

	snprintf(entry, sizeof(entry), strchr(host, ':') ? "[%s]:%d" : "%s:%d",
		 host, port);
	one.cassandra_hosts.v = v;
	one.cassandra_hosts.n = 1;
	return cb_cql_session_open(&one, NULL, out, errstr, errstr_size);
}

int cb_cql_read_replication(struct cb_cql_session *s, const char *keyspace,
			    struct cb_cql_repl *r, char *errstr,
			    size_t errstr_size)
{
	char q[200];
	int err;

	/* keyspace is a validated identifier (config type IDENT) */
	snprintf(q, sizeof(q),
		 "SELECT replication FROM system_schema.keyspaces WHERE "
		 "keyspace_name = '%s'",
		 keyspace);
	err = cb_cql_exec(s, q, errstr, errstr_size);
	if (err != 0)
		return err;
	return cb_cql_repl_from_rows(&s->res, r, errstr, errstr_size);
}

int cb_cql_read_ring(struct cb_cql_session *s, int default_port,
		     struct cb_cql_peer **peers, size_t *n, char *errstr,
		     size_t errstr_size)
{
	int err;

	*peers = NULL;
	*n = 0;
	err = cb_cql_exec(s, "SELECT * FROM system.local", errstr,
			  errstr_size);
	if (err == 0)
		err = cb_cql_peers_from_rows(&s->res, default_port, peers, n,
					     errstr, errstr_size);
	if (err != 0)
		goto out;
	err = cb_cql_exec(s, "SELECT * FROM system.peers_v2", errstr,
			  errstr_size);
	if (err == CB_E_CQL) /* before Cassandra 4.0 */
		err = cb_cql_exec(s, "SELECT * FROM system.peers", errstr,
				  errstr_size);
	if (err == 0)
		err = cb_cql_peers_from_rows(&s->res, default_port, peers, n,
					     errstr, errstr_size);
out:
	if (err != 0) {
		cb_cql_peers_free(*peers, *n);
		*peers = NULL;
		*n = 0;
	}
	return err;
}

static struct cb_cql_params params_of(const struct cb_cql_session *s)
{
	struct cb_cql_params p = {0};

	p.consistency = s->consistency;
	p.timestamp_us = INT64_MIN;
	return p;
}

int cb_cql_exec(struct cb_cql_session *s, const char *cql, char *errstr,
		size_t errstr_size)
{
	struct cb_cql_params p = params_of(s);

	cb_cql_wbuf_reset(&s->w);
	cb_cql_enc_query(&s->w, STREAM, cql, &p);
	return roundtrip(s, errstr, errstr_size);
}

int cb_cql_query_text(struct cb_cql_session *s, const char *cql, char *out,
		      size_t out_size, char *errstr, size_t errstr_size)
{
	struct cb_cql_bytes v[CB_CQL_MAX_COLUMNS];
	int err, k;

	err = cb_cql_exec(s, cql, errstr, errstr_size);
	if (err != 0)
		return err;
	if (s->res.result_kind != CB_CQL_RESULT_ROWS ||
	    s->res.meta.ncolumns < 1)
		return cb_seterr(errstr, errstr_size, CB_E_NOTFOUND,
				 "query returned no rows");
	k = cb_cql_rows_next(&s->res, v, s->res.meta.ncolumns);
	if (k < 0)
		return cb_seterr(errstr, errstr_size, k,
				 "Cassandra %s: malformed row", s->host);
	if (k == 0)
		return cb_seterr(errstr, errstr_size, CB_E_NOTFOUND,
				 "query returned no rows");
	k = cb_cql_value_text(&s->res.meta.columns[0].type, v[0], out,
			      out_size);
	if (k < 0)
		return cb_seterr(errstr, errstr_size, k,
				 "Cassandra %s: cannot render column %.*s "
				 "(type 0x%04x) as text",
				 s->host, (int)s->res.meta.columns[0].name.len,
				 (const char *)s->res.meta.columns[0].name.p,
				 s->res.meta.columns[0].type.id);
	return 0;
}

/* Collects the schema_version column of a query into versions. */
static int collect_versions(struct cb_cql_session *s, const char *cql,
			    char (*versions)[40], int *n, int max,
			    char *errstr, size_t errstr_size)
{
	struct cb_cql_bytes v[CB_CQL_MAX_COLUMNS];
	int err, k;

	err = cb_cql_exec(s, cql, errstr, errstr_size);
	if (err != 0)
		return err;
	if (s->res.result_kind != CB_CQL_RESULT_ROWS ||
	    s->res.meta.ncolumns < 1)
		return 0;
	while ((k = cb_cql_rows_next(&s->res, v, s->res.meta.ncolumns)) ==
	       1) {
		if (v[0].len < 0 || *n >= max)
			continue; /* a peer without a version yet */
		if (cb_cql_value_text(&s->res.meta.columns[0].type, v[0],
				      versions[*n], 40) < 0)
			continue;
		(*n)++;
	}
	return k < 0 ? cb_seterr(errstr, errstr_size, k, "malformed row")
		     : 0;
}

int cb_cql_wait_schema_agreement(struct cb_cql_session *s, int timeout_ms,
				 char *errstr, size_t errstr_size)
{
	int64_t deadline = cb_mono_ms() + timeout_ms;
	char versions[64][40];
	int n = 0, err;

	for (;;) {
		bool agree = true;

		n = 0;
		err = collect_versions(s,
				       "SELECT schema_version FROM system.local",
				       versions, &n, 1, errstr, errstr_size);
		if (err == 0)
			err = collect_versions(
				s, "SELECT schema_version FROM system.peers",
				versions, &n, 64, errstr, errstr_size);
		if (err != 0)
			return err;
		for (int i = 1; i < n; i++)
			if (strcmp(versions[i], versions[0]) != 0)
				agree = false;
		if (agree && n > 0)
			return 0;
		if (cb_mono_ms() >= deadline)
			break;
		/* the nodes exchange schema by gossip, about once a second;
		 * poll at a tenth of that */
		poll(NULL, 0, 100);
	}
	return cb_seterr(errstr, errstr_size, CB_E_TIMEOUT,
			 "Cassandra %s: %d nodes did not agree on the schema "
			 "within %d ms",
			 s->host, n, timeout_ms);
}

/* Fills a cb_cql_message from one row of the SELECT below. */
static int row_message(const struct cb_cql_bytes *v, struct cb_cql_message *m,
		       struct cb_cql_str *emotes, size_t emotes_max)
{
	struct cb_cql_rd r;
	int32_t n;

	memset(m, 0, sizeof(*m));
	if (v[0].len < 0 || v[1].len != 8 || v[2].len != 16)
		return CB_E_PROTO;
	m->channel_id = (struct cb_cql_str){(const char *)v[0].p,
					    (size_t)v[0].len};
	{
		struct cb_cql_rd t;

		cb_cql_rd_init(&t, v[1].p, 8);
		m->timestamp_ms = cb_cql_get_long(&t);
	}
	memcpy(m->message_id, v[2].p, 16);
#define STR(i)                                                                 \
	(v[i].len > 0 ? (struct cb_cql_str){(const char *)v[i].p,              \
					    (size_t)v[i].len}                  \
		      : (struct cb_cql_str){"", 0})
	m->user_id = STR(3);
	m->username = STR(4);
	m->message = STR(5);
#undef STR
	if (cb_cql_coll_open(v[6], &r, &n) != 0)
		return CB_E_PROTO;
	for (int32_t i = 0; i < n && (size_t)i < emotes_max; i++) {
		struct cb_cql_bytes e = cb_cql_get_bytes(&r);

		if (r.failed || e.len < 0)
			return CB_E_PROTO;
		emotes[i] = (struct cb_cql_str){(const char *)e.p,
						(size_t)e.len};
		m->nemotes++;
	}
	m->emotes = emotes;
	return 0;
}

/* One partition's query: the channel's (raw) or the channel's day's
 * (day >= INT32_MIN + 1 with the daily table).  Sets *rows and, when the
 * partition has more, *page_out (malloc'd). */
static int read_partition(struct cb_cql_session *s, bool daily,
			  const char *channel, int32_t day, int64_t since_ms,
			  int64_t until_ms, size_t limit,
			  const uint8_t *page_in, size_t page_in_len,
			  cb_cql_message_cb cb, void *ctx, size_t *rows,
			  uint8_t **page_out, size_t *page_out_len,
			  char *errstr, size_t errstr_size)
{
	const char *table = daily ? "raw_chat_messages_by_day"
				  : "raw_chat_messages";
	struct cb_cql_params p = params_of(s);
	struct cb_cql_bytes v[7];
	struct cb_cql_message m;
	struct cb_cql_str *emotes;
	char cql[320];
	size_t f;
	int err, k, rc = 0;

	*rows = 0;
	*page_out = NULL;
	*page_out_len = 0;
	if (limit == 0)
		return 0;
	snprintf(cql, sizeof(cql),
		 "SELECT channel_id, timestamp, message_id, user_id, "
		 "username, message, emotes FROM %s.%s "
		 "WHERE channel_id = ? %sAND timestamp >= ? AND timestamp < ?",
		 s->keyspace[0] != '\0' ? s->keyspace : "twitch_chat", table,
		 daily ? "AND day = ? " : "");
	p.nvalues = daily ? 4 : 3;
	p.page_size = limit > 5000 ? 5000 : (int32_t)limit;
	p.paging_state = page_in;
	p.paging_state_len = page_in_len;
	cb_cql_wbuf_reset(&s->w);
	f = cb_cql_frame_begin(&s->w, STREAM, CB_CQL_OP_QUERY);
	cb_cql_put_long_string(&s->w, cql, strlen(cql));
	cb_cql_put_params_head(&s->w, &p);
	cb_cql_put_value_text(&s->w, channel, strlen(channel));
	if (daily) {
		uint32_t d = (uint32_t)day + 0x80000000u;
		uint8_t b[4] = {(uint8_t)(d >> 24), (uint8_t)(d >> 16),
				(uint8_t)(d >> 8), (uint8_t)d};

		cb_cql_put_bytes(&s->w, b, 4);
	}
	cb_cql_put_value_bigint(&s->w, since_ms);
	cb_cql_put_value_bigint(&s->w, until_ms);
	cb_cql_put_params_tail(&s->w, &p);
	cb_cql_frame_end(&s->w, f);
	err = roundtrip(s, errstr, errstr_size);
	if (err != 0)
		return err;
	if (s->res.result_kind != CB_CQL_RESULT_ROWS ||
	    s->res.meta.ncolumns != 7)
		return cb_seterr(errstr, errstr_size, CB_E_PROTO,
				 "Cassandra %s: SELECT answered without the "
				 "7 columns asked for",
				 s->host);
	/* emotes per message are bounded by the message text (500 chars) */
	emotes = malloc(512 * sizeof(*emotes));
	if (emotes == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "out of memory");
	while ((k = cb_cql_rows_next(&s->res, v, 7)) == 1) {
		if (row_message(v, &m, emotes, 512) != 0) {
			k = CB_E_PROTO;
			break;
		}
		rc = cb(ctx, &m);
		if (rc != 0)
			break;
		(*rows)++;
	}
	free(emotes);
	if (k < 0)
		return cb_seterr(errstr, errstr_size, CB_E_PROTO,
				 "Cassandra %s: malformed row in %s",
				 s->host, table);
	if (rc != 0)
		return rc;
	if (s->res.meta.paging_state.len > 0) {
		*page_out = malloc((size_t)s->res.meta.paging_state.len);
		if (*page_out == NULL)
			return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
					 "out of memory");
		memcpy(*page_out, s->res.meta.paging_state.p,
		       (size_t)s->res.meta.paging_state.len);
		*page_out_len = (size_t)s->res.meta.paging_state.len;
	}
	return 0;
}

/* The walk's view of a session (cb_cql_days_query_fn). */
struct day_query {
	struct cb_cql_session *s;
	const char *channel;
	int64_t since_ms, until_ms;
	cb_cql_message_cb cb;
	void *ctx;
	char *errstr;
	size_t errstr_size;
};

static int day_query(void *q, int32_t day, const uint8_t *ps, size_t ps_len,
		     size_t limit, size_t *rows, uint8_t **ps_out,
		     size_t *ps_out_len)
{
	struct day_query *d = q;

	return read_partition(d->s, true, d->channel, day, d->since_ms,
			      d->until_ms, limit, ps, ps_len, d->cb, d->ctx,
			      rows, ps_out, ps_out_len, d->errstr,
			      d->errstr_size);
}

/* How far back the daily walk goes without a lower bound: the tables'
 * TTL (7 days) and the day the oldest row can still be in. */
#define HISTORY_DAYS 7

int cb_cql_read_messages(struct cb_cql_session *s, const char *channel,
			 int64_t since_ms, int64_t until_ms, size_t limit,
			 const uint8_t *page_in, size_t page_in_len,
			 cb_cql_message_cb cb, void *ctx, uint8_t **page_out,
			 size_t *page_out_len, char *errstr,
			 size_t errstr_size)
{
	struct day_query q = {s, channel, since_ms, until_ms, cb, ctx,
			      errstr, errstr_size};
	int32_t today, newest, oldest;
	size_t rows;
	int err;

	/* A day cursor given to the raw table (the setting changed between
	 * pages): a raw paging state starts with the partition key's 2-byte
	 * length, never "CB" (0x4342 bytes: no channel id is that long). */
	if (!s->daily && page_in != NULL &&
	    page_in_len >= CB_CQL_DAYS_HDR &&
	    memcmp(page_in, CB_CQL_DAYS_MAGIC, 4) == 0)
		return cb_seterr(errstr, errstr_size, CB_E_PARSE,
				 "a page token of raw_chat_messages_by_day, "
				 "but cassandra_tables = raw");
	if (!s->daily)
		return read_partition(s, false, channel, 0, since_ms, until_ms,
				      limit, page_in, page_in_len, cb, ctx,
				      &rows, page_out, page_out_len, errstr,
				      errstr_size);
	*page_out = NULL;
	*page_out_len = 0;
	if (limit == 0)
		return 0;
	/* The days that can hold rows: up to tomorrow (a clock ahead of
	 * ours), back to the TTL, narrowed by the time bounds. */
	today = cb_murmur3_day_of_ms(cb_wall_ms());
	newest = today + 1;
	oldest = today - HISTORY_DAYS;
	if (until_ms != INT64_MAX &&
	    cb_murmur3_day_of_ms(until_ms - 1) < newest)
		newest = cb_murmur3_day_of_ms(until_ms - 1);
	if (since_ms != INT64_MIN && cb_murmur3_day_of_ms(since_ms) > oldest)
		oldest = cb_murmur3_day_of_ms(since_ms);
	if (newest < oldest)
		return 0;
	err = cb_cql_days_walk(newest, oldest, limit, page_in, page_in_len,
			       day_query, &q, page_out, page_out_len);
	if (err == CB_E_PARSE)
		return cb_seterr(errstr, errstr_size, CB_E_PARSE,
				 "not a page token of %s: made with "
				 "cassandra_tables = raw, or for other time "
				 "bounds",
				 "raw_chat_messages_by_day");
	if (err == CB_E_NOMEM)
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "out of memory");
	return err;
}
