/*
 * cql_fake.h - in-process fake Cassandra nodes for the writer's tests
 * (test_mt_cql.c, test_mt_cql_ring.c): each node is a thread with a
 * listening socket that speaks enough native protocol v4 for the writer:
 * STARTUP, OPTIONS, REGISTER, PREPARE, EXECUTE, BATCH, and QUERY of
 * system.local, system.peers_v2 and system_schema.keyspaces, answered
 * from a shared description of the cluster (addresses, data centres,
 * tokens, which nodes are in the ring, the replication).  Tests script
 * faults (Overloaded, UNPREPARED, a closed connection, silence, death)
 * and push EVENTs on the connection that REGISTERed.
 *
 * Rows carry their index in the last 4 bytes of message_id; each node
 * counts the rows it stored (stored[]) and by which channel.  Everything
 * a test reads while the nodes run is under fk_mu.
 */
#ifndef CB_TEST_CQL_FAKE_H
#define CB_TEST_CQL_FAKE_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chatbattle/app.h"
#include "chatbattle/clock.h"
#include "chatbattle/config.h"
#include "chatbattle/cql.h"
#include "chatbattle/cql_frame.h"
#include "chatbattle/metrics.h"
#include "chatbattle/record.h"
#include "chatbattle/ring.h"

#define FK_ROWS 3000
#define FK_CONNS 8
#define FK_NODES 3

static pthread_mutex_t fk_mu = PTHREAD_MUTEX_INITIALIZER;

struct fake_cluster;

struct fake {
	struct fake_cluster *cl;
	int index;
	char addr[20];
	int lfd;
	int port;
	atomic_bool stop;
	pthread_t thread;
	/* scripted faults, by data request number (1-based) */
	int overloaded_every;  /* Overloaded on every Nth request */
	int unprepared_at;     /* UNPREPARED once */
	int close_at;          /* close the connection, no answer */
	int invalid_at;        /* Invalid once */
	bool silent;           /* never answer a write: a stalled node */
	bool dead;             /* close every connection, accept none */
	/* an EVENT to push on the registered connection (event_type "") */
	char ev_type[32], ev_change[32], ev_addr[20];
	int ev_port;
	/* what happened */
	int requests;
	int unanswered;        /* writes received while silent */
	int prepares;
	int day_rows;          /* daily-table INSERTs received */
	int connections;
	int ring_queries;
	uint8_t stored[FK_ROWS];     /* raw_chat_messages rows */
	uint8_t stored_day[FK_ROWS]; /* raw_chat_messages_by_day rows */
	bool forget_prepared;
	int registered;        /* index of the REGISTERed connection, -1 */
};

struct fake_cluster {
	struct fake node[FK_NODES];
	int n;
	bool in_ring[FK_NODES];
	int64_t token[FK_NODES];
	const char *dc[FK_NODES];
	const char *rack[FK_NODES];
	const char *partitioner;
	int rf; /* SimpleStrategy replication_factor */
	bool no_peers_v2; /* a server before 4.0: system.peers only */
};

struct fconn {
	int fd;
	uint8_t buf[1 << 20];
	size_t len;
};

static inline void fk_put_frame(struct cb_cql_wbuf *w, int16_t stream, uint8_t op)
{
	/* a response: version 0x84 */
	size_t f = cb_cql_frame_begin(w, stream, op);

	w->p[f] = 0x84;
}

static inline void fk_send_buf(int fd, struct cb_cql_wbuf *w)
{
	size_t o = 0;

	while (o < w->len) {
		ssize_t k = send(fd, w->p + o, w->len - o, MSG_NOSIGNAL);

		if (k <= 0)
			return;
		o += (size_t)k;
	}
}

static inline void fk_answer_error(struct cb_cql_wbuf *w, int16_t stream,
			    int32_t code, const char *msg)
{
	size_t f = w->len;

	fk_put_frame(w, stream, CB_CQL_OP_ERROR);
	cb_cql_put_int(w, code);
	cb_cql_put_string(w, msg, strlen(msg));
	if (code == CB_CQL_ERR_WRITE_TIMEOUT) {
		cb_cql_put_short(w, CB_CQL_LOCAL_ONE);
		cb_cql_put_int(w, 0);
		cb_cql_put_int(w, 1);
		cb_cql_put_string(w, "SIMPLE", 6);
	} else if (code == CB_CQL_ERR_UNPREPARED) {
		cb_cql_put_short_bytes(w, "\x01\x02", 2);
	}
	cb_cql_frame_end(w, f);
}

static inline void fk_col(struct cb_cql_wbuf *w, const char *name, uint16_t type)
{
	cb_cql_put_string(w, name, strlen(name));
	cb_cql_put_short(w, type);
	if (type == CB_CQL_T_SET)
		cb_cql_put_short(w, CB_CQL_T_VARCHAR);
}

static inline void fk_text(struct cb_cql_wbuf *w, const char *s)
{
	cb_cql_put_bytes(w, s, strlen(s));
}

static inline void fk_inet(struct cb_cql_wbuf *w, const char *addr)
{
	struct in_addr a;

	inet_pton(AF_INET, addr, &a);
	cb_cql_put_bytes(w, &a, 4);
}

/* One system.local (local), system.peers_v2 or system.peers (v1) row
 * for node i. */
static inline void fk_node_row(struct cb_cql_wbuf *w,
			       const struct fake_cluster *cl, int i,
			       bool local, bool v1)
{
	char tok[32];
	uint8_t hid[16] = {0x11, 0x22, 0, 0, 0, 0, 0x40, 0, 0x80};
	uint8_t set[64];
	size_t n;
	uint32_t be;

	hid[15] = (uint8_t)i;
	if (local)
		fk_text(w, "local");
	fk_inet(w, cl->node[i].addr);                     /* peer/rpc */
	if (v1) {
		fk_inet(w, cl->node[i].addr);             /* rpc_address */
		cb_cql_put_bytes(w, hid, 16);             /* schema_version */
	} else if (!local) {
		fk_inet(w, cl->node[i].addr);             /* native_address */
		be = htonl((uint32_t)cl->node[i].port);
		cb_cql_put_bytes(w, &be, 4);              /* native_port */
	} else {
		be = htonl((uint32_t)cl->node[i].port);
		cb_cql_put_bytes(w, &be, 4);              /* rpc_port */
		fk_text(w, cl->partitioner);
	}
	fk_text(w, cl->dc[i]);
	fk_text(w, cl->rack[i]);
	cb_cql_put_bytes(w, hid, 16);
	/* tokens: a set<text> of one */
	n = (size_t)snprintf(tok, sizeof(tok), "%lld", (long long)cl->token[i]);
	be = htonl(1);
	memcpy(set, &be, 4);
	be = htonl((uint32_t)n);
	memcpy(set + 4, &be, 4);
	memcpy(set + 8, tok, n);
	cb_cql_put_bytes(w, set, 8 + n);
}

static inline void fk_rows_head(struct cb_cql_wbuf *w, int16_t stream, int ncols,
			 const char *table)
{
	fk_put_frame(w, stream, CB_CQL_OP_RESULT);
	cb_cql_put_int(w, CB_CQL_RESULT_ROWS);
	cb_cql_put_int(w, 1); /* global table spec */
	cb_cql_put_int(w, ncols);
	cb_cql_put_string(w, "system", 6);
	cb_cql_put_string(w, table, strlen(table));
}

static inline void fk_answer_query(struct fake *fk, struct cb_cql_rd *r,
			    int16_t stream, struct cb_cql_wbuf *w)
{
	struct fake_cluster *cl = fk->cl;
	struct cb_cql_bytes q = cb_cql_get_long_string(r);
	char cql[512];
	size_t f = w->len;
	int nrows = 0;

	snprintf(cql, sizeof(cql), "%.*s", q.len > 0 ? (int)q.len : 0,
		 (const char *)q.p);
	fk->ring_queries++;
	if (strstr(cql, "system.local") != NULL) {
		fk_rows_head(w, stream, 8, "local");
		fk_col(w, "key", CB_CQL_T_VARCHAR);
		fk_col(w, "rpc_address", CB_CQL_T_INET);
		fk_col(w, "rpc_port", CB_CQL_T_INT);
		fk_col(w, "partitioner", CB_CQL_T_VARCHAR);
		fk_col(w, "data_center", CB_CQL_T_VARCHAR);
		fk_col(w, "rack", CB_CQL_T_VARCHAR);
		fk_col(w, "host_id", CB_CQL_T_UUID);
		fk_col(w, "tokens", CB_CQL_T_SET);
		cb_cql_put_int(w, 1);
		fk_node_row(w, cl, fk->index, true, false);
	} else if (strstr(cql, "system.peers_v2") != NULL &&
		   cl->no_peers_v2) {
		fk_answer_error(w, stream, CB_CQL_ERR_INVALID,
				"table system.peers_v2 does not exist");
		return;
	} else if (strstr(cql, "system.peers") != NULL) {
		bool v1 = strstr(cql, "system.peers_v2") == NULL;
		size_t at;

		fk_rows_head(w, stream, 7, v1 ? "peers" : "peers_v2");
		fk_col(w, "peer", CB_CQL_T_INET);
		if (v1) {
			fk_col(w, "rpc_address", CB_CQL_T_INET);
			fk_col(w, "schema_version", CB_CQL_T_UUID);
		} else {
			fk_col(w, "native_address", CB_CQL_T_INET);
			fk_col(w, "native_port", CB_CQL_T_INT);
		}
		fk_col(w, "data_center", CB_CQL_T_VARCHAR);
		fk_col(w, "rack", CB_CQL_T_VARCHAR);
		fk_col(w, "host_id", CB_CQL_T_UUID);
		fk_col(w, "tokens", CB_CQL_T_SET);
		at = w->len;
		cb_cql_put_int(w, 0);
		for (int i = 0; i < cl->n; i++)
			if (i != fk->index && cl->in_ring[i]) {
				fk_node_row(w, cl, i, false, v1);
				nrows++;
			}
		w->p[at] = (uint8_t)(nrows >> 24);
		w->p[at + 1] = (uint8_t)(nrows >> 16);
		w->p[at + 2] = (uint8_t)(nrows >> 8);
		w->p[at + 3] = (uint8_t)nrows;
	} else if (strstr(cql, "system_schema.keyspaces") != NULL) {
		char rf[8], map[128];
		size_t n = 0, k;
		uint32_t be;
		const char *kv[4] = {"class",
				     "org.apache.cassandra.locator."
				     "SimpleStrategy",
				     "replication_factor", rf};

		snprintf(rf, sizeof(rf), "%d", cl->rf);
		fk_rows_head(w, stream, 1, "keyspaces");
		cb_cql_put_string(w, "replication", 11);
		cb_cql_put_short(w, CB_CQL_T_MAP);
		cb_cql_put_short(w, CB_CQL_T_VARCHAR);
		cb_cql_put_short(w, CB_CQL_T_VARCHAR);
		cb_cql_put_int(w, 1);
		be = htonl(2);
		memcpy(map, &be, 4);
		n = 4;
		for (int i = 0; i < 4; i++) {
			k = strlen(kv[i]);
			be = htonl((uint32_t)k);
			memcpy(map + n, &be, 4);
			memcpy(map + n + 4, kv[i], k);
			n += 4 + k;
		}
		cb_cql_put_bytes(w, map, n);
	} else {
		fk_answer_error(w, stream, CB_CQL_ERR_INVALID,
				"unconfigured table");
		return;
	}
	cb_cql_frame_end(w, f);
}

/* Reads one row's 7 values (8 with the daily table's day, which is
 * checked and skipped); counts the row index kept in message_id, for the
 * raw table only, so that both tables count a row once. */
static inline bool fk_read_row(struct fake *fk, struct cb_cql_rd *r, bool store,
			       int nvalues)
{
	struct cb_cql_bytes v[8];
	uint32_t idx;

	for (int i = 0; i < nvalues; i++)
		v[i] = cb_cql_get_bytes(r);
	if (nvalues == 8) {
		if (v[1].len != 4)
			return false;
		memmove(&v[1], &v[2], 6 * sizeof(v[0]));
		fk->day_rows++;
	}
	if (r->failed || v[2].len != 16)
		return false;
	idx = ((uint32_t)v[2].p[12] << 24) | ((uint32_t)v[2].p[13] << 16) |
	      ((uint32_t)v[2].p[14] << 8) | v[2].p[15];
	if (idx >= FK_ROWS)
		return false;
	if (store && nvalues == 8)
		fk->stored_day[idx]++;
	else if (store)
		fk->stored[idx]++;
	return true;
}

static inline bool fk_write(struct fake *fk, struct cb_cql_rd *r, uint8_t op,
		     int16_t stream, struct cb_cql_wbuf *w)
{
	int k = ++fk->requests;
	bool ok = true;
	size_t f;

	if (fk->silent) {
		fk->unanswered++;
		return true;
	}
	if (k == fk->close_at)
		return false;
	if (k == fk->unprepared_at)
		fk->forget_prepared = true;
	if (fk->forget_prepared) {
		fk_answer_error(w, stream, CB_CQL_ERR_UNPREPARED,
				"Prepared query with ID 0102 not found");
		return true;
	}
	if (fk->overloaded_every && k % fk->overloaded_every == 0) {
		fk_answer_error(w, stream,
				k % 2 ? CB_CQL_ERR_OVERLOADED
				      : CB_CQL_ERR_WRITE_TIMEOUT,
				"busy");
		return true;
	}
	if (k == fk->invalid_at) {
		fk_answer_error(w, stream, CB_CQL_ERR_INVALID,
				"unconfigured table raw_chat_messages");
		return true;
	}
	if (op == CB_CQL_OP_EXECUTE) {
		(void)cb_cql_get_short_bytes(r);
		(void)cb_cql_get_short(r);
		(void)cb_cql_get_byte(r);
		uint16_t nv = cb_cql_get_short(r);

		ok = (nv == 7 || nv == 8) && fk_read_row(fk, r, true, nv);
	} else {
		uint16_t ns;

		(void)cb_cql_get_byte(r);
		ns = cb_cql_get_short(r);
		for (uint16_t i = 0; i < ns && ok; i++) {
			ok = cb_cql_get_byte(r) == 1;
			(void)cb_cql_get_short_bytes(r);
			if (ok) {
				uint16_t nv = cb_cql_get_short(r);

				ok = (nv == 7 || nv == 8) &&
				     fk_read_row(fk, r, true, nv);
			}
		}
	}
	if (!ok)
		return false;
	f = w->len;
	fk_put_frame(w, stream, CB_CQL_OP_RESULT);
	cb_cql_put_int(w, CB_CQL_RESULT_VOID);
	cb_cql_frame_end(w, f);
	return true;
}

/* Handles one request frame; returns false to close the connection. */
static inline bool fk_handle(struct fake *fk, int ci, const uint8_t *p, size_t n,
		      struct cb_cql_wbuf *w)
{
	int16_t stream = (int16_t)((p[2] << 8) | p[3]);
	uint8_t op = p[4];
	struct cb_cql_rd r;
	size_t f = w->len;

	cb_cql_rd_init(&r, p + CB_CQL_HDR_LEN, n - CB_CQL_HDR_LEN);
	switch (op) {
	case CB_CQL_OP_REGISTER:
		fk->registered = ci;
		/* fall through */
	case CB_CQL_OP_STARTUP:
		fk_put_frame(w, stream, CB_CQL_OP_READY);
		break;
	case CB_CQL_OP_OPTIONS:
		fk_put_frame(w, stream, CB_CQL_OP_SUPPORTED);
		cb_cql_put_short(w, 0);
		break;
	case CB_CQL_OP_QUERY:
		fk_answer_query(fk, &r, stream, w);
		return true;
	case CB_CQL_OP_PREPARE: {
		struct cb_cql_bytes q = cb_cql_get_long_string(&r);
		int nv = q.len > 0 && memmem(q.p, (size_t)q.len, "_by_day", 7)
				 ? 8
				 : 7;

		fk->prepares++;
		fk->forget_prepared = false;
		fk_put_frame(w, stream, CB_CQL_OP_RESULT);
		cb_cql_put_int(w, CB_CQL_RESULT_PREPARED);
		cb_cql_put_short_bytes(w, nv == 8 ? "\x01\x03" : "\x01\x02",
				       2);
		cb_cql_put_int(w, 1); /* global table spec */
		cb_cql_put_int(w, nv);
		cb_cql_put_int(w, 1);
		cb_cql_put_short(w, 0);
		cb_cql_put_string(w, "ks", 2);
		cb_cql_put_string(w, "raw_chat_messages", 17);
		for (int i = 0; i < nv; i++) {
			cb_cql_put_string(w, "c", 1);
			cb_cql_put_short(w, CB_CQL_T_VARCHAR);
		}
		cb_cql_put_int(w, 4); /* result metadata: none */
		cb_cql_put_int(w, 0);
		break;
	}
	case CB_CQL_OP_EXECUTE:
	case CB_CQL_OP_BATCH:
		return fk_write(fk, &r, op, stream, w);
	default:
		return false;
	}
	cb_cql_frame_end(w, f);
	return true;
}

/* The scripted EVENT, if any, onto the registered connection. */
static inline void fk_push_event(struct fake *fk, struct fconn **conns,
			  struct cb_cql_wbuf *w)
{
	struct in_addr a;
	size_t f;

	if (fk->ev_type[0] == '\0')
		return;
	if (fk->registered >= 0 && conns[fk->registered] != NULL) {
		cb_cql_wbuf_reset(w);
		f = w->len;
		fk_put_frame(w, -1, CB_CQL_OP_EVENT);
		cb_cql_put_string(w, fk->ev_type, strlen(fk->ev_type));
		cb_cql_put_string(w, fk->ev_change, strlen(fk->ev_change));
		inet_pton(AF_INET, fk->ev_addr, &a);
		cb_cql_put_byte(w, 4);
		cb_cql_put_raw(w, &a, 4);
		cb_cql_put_int(w, fk->ev_port);
		cb_cql_frame_end(w, f);
		fk_send_buf(conns[fk->registered]->fd, w);
	}
	fk->ev_type[0] = '\0';
}

static inline void fk_drop(struct fake *fk, struct fconn **conns, int i)
{
	close(conns[i]->fd);
	free(conns[i]);
	conns[i] = NULL;
	if (fk->registered == i)
		fk->registered = -1;
}

static void *fake_main(void *arg)
{
	struct fake *fk = arg;
	struct fconn *conns[FK_CONNS] = {0};
	struct cb_cql_wbuf w;

	cb_cql_wbuf_init(&w, 0);
	while (!atomic_load(&fk->stop)) {
		struct pollfd pfd[FK_CONNS + 1];
		int n = 0;

		pfd[n].fd = fk->lfd;
		pfd[n++].events = POLLIN;
		for (int i = 0; i < FK_CONNS; i++) {
			pfd[n].fd = conns[i] ? conns[i]->fd : -1;
			pfd[n++].events = POLLIN;
		}
		n = poll(pfd, (nfds_t)n, 20);
		pthread_mutex_lock(&fk_mu);
		if (fk->dead)
			for (int i = 0; i < FK_CONNS; i++)
				if (conns[i] != NULL)
					fk_drop(fk, conns, i);
		fk_push_event(fk, conns, &w);
		if (n > 0 && (pfd[0].revents & POLLIN)) {
			int fd = accept(fk->lfd, NULL, NULL);

			for (int i = 0; i < FK_CONNS && fd >= 0 && !fk->dead;
			     i++)
				if (conns[i] == NULL) {
					conns[i] = calloc(1, sizeof(**conns));
					conns[i]->fd = fd;
					fk->connections++;
					fd = -1;
				}
			if (fd >= 0)
				close(fd);
		}
		for (int i = 0; i < FK_CONNS && n > 0; i++) {
			struct fconn *c = conns[i];
			ssize_t k;
			size_t o = 0;
			bool keep = true;

			if (c == NULL ||
			    !(pfd[i + 1].revents & (POLLIN | POLLHUP)))
				continue;
			k = recv(c->fd, c->buf + c->len,
				 sizeof(c->buf) - c->len, 0);
			if (k <= 0)
				keep = false;
			else
				c->len += (size_t)k;
			cb_cql_wbuf_reset(&w);
			while (keep && c->len - o >= CB_CQL_HDR_LEN) {
				const uint8_t *p = c->buf + o;
				uint32_t bl = ((uint32_t)p[5] << 24) |
					      ((uint32_t)p[6] << 16) |
					      ((uint32_t)p[7] << 8) | p[8];

				if (c->len - o < CB_CQL_HDR_LEN + bl)
					break;
				keep = fk_handle(fk, i, p, CB_CQL_HDR_LEN + bl,
						 &w);
				o += CB_CQL_HDR_LEN + bl;
			}
			if (keep) {
				fk_send_buf(c->fd, &w);
				memmove(c->buf, c->buf + o, c->len - o);
				c->len -= o;
			} else {
				fk_drop(fk, conns, i);
			}
		}
		pthread_mutex_unlock(&fk_mu);
	}
	for (int i = 0; i < FK_CONNS; i++)
		if (conns[i] != NULL)
			fk_drop(fk, conns, i);
	cb_cql_wbuf_free(&w);
	return NULL;
}

static inline int fk_listen(const char *addr, int port)
{
	struct sockaddr_in a = {0};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, addr, &a.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(fd, 16) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/*
 * Starts the n nodes of cl on 127.0.0.1..n, all on one port of the
 * range 31000-31999 (the way ccm lays a cluster out), the first free one
 * from base on.  Returns the port, or -1.
 */
static inline int fake_cluster_start(struct fake_cluster *cl, int n, int base)
{
	for (int port = base; port < 32000; port += 7) {
		int ok = 0;

		for (int i = 0; i < n; i++) {
			snprintf(cl->node[i].addr, sizeof(cl->node[i].addr),
				 "127.0.0.%d", i + 1);
			cl->node[i].lfd = fk_listen(cl->node[i].addr, port);
			ok += cl->node[i].lfd >= 0;
		}
		if (ok == n) {
			cl->n = n;
			if (cl->partitioner == NULL)
				cl->partitioner = "org.apache.cassandra.dht."
						  "Murmur3Partitioner";
			if (cl->rf == 0)
				cl->rf = 1;
			for (int i = 0; i < n; i++) {
				struct fake *fk = &cl->node[i];

				fk->cl = cl;
				fk->index = i;
				fk->port = port;
				fk->registered = -1;
				if (cl->dc[i] == NULL)
					cl->dc[i] = "dc1";
				if (cl->rack[i] == NULL)
					cl->rack[i] = "rack1";
				pthread_create(&fk->thread, NULL, fake_main,
					       fk);
			}
			return port;
		}
		for (int i = 0; i < n; i++)
			if (cl->node[i].lfd >= 0)
				close(cl->node[i].lfd);
	}
	return -1;
}

static inline void fake_cluster_stop(struct fake_cluster *cl)
{
	for (int i = 0; i < cl->n; i++)
		atomic_store(&cl->node[i].stop, true);
	for (int i = 0; i < cl->n; i++) {
		pthread_join(cl->node[i].thread, NULL);
		close(cl->node[i].lfd);
	}
}

/* Queues an EVENT (e.g. "STATUS_CHANGE", "DOWN") about node `about`
 * on node `from`'s registered connection. */
static inline void fake_event(struct fake_cluster *cl, int from, const char *type,
		       const char *change, int about)
{
	struct fake *fk = &cl->node[from];

	pthread_mutex_lock(&fk_mu);
	snprintf(fk->ev_change, sizeof(fk->ev_change), "%s", change);
	snprintf(fk->ev_addr, sizeof(fk->ev_addr), "%s", cl->node[about].addr);
	fk->ev_port = cl->node[about].port;
	snprintf(fk->ev_type, sizeof(fk->ev_type), "%s", type);
	pthread_mutex_unlock(&fk_mu);
}

/* ---- the aggregator's side ---- */

#define FK_PARTS 3

/* The channels rows cycle through (row i: fk_channels[i % fk_nchannels]). */
static const char *fk_channels[FK_NODES + 1] = {"room", "chan"};
static int fk_nchannels = 2;

static inline uint32_t fk_put_row(uint8_t *p, uint32_t i, int64_t offset)
{
	const char *ch = fk_channels[i % (uint32_t)fk_nchannels];
	struct cb_row_hdr h = {0};
	uint16_t el = 5;
	uint8_t *v;

	h.partition = (int32_t)(i % FK_PARTS);
	h.generation = 7;
	h.offset = offset;
	h.timestamp_ms = 1700000000000LL + i;
	h.message_id[12] = (uint8_t)(i >> 24);
	h.message_id[13] = (uint8_t)(i >> 16);
	h.message_id[14] = (uint8_t)(i >> 8);
	h.message_id[15] = (uint8_t)i;
	h.channel_len = (uint16_t)strlen(ch);
	h.user_id_len = 2;
	h.username_len = 2;
	h.message_len = 5;
	h.emote_count = 1;
	h.emotes_len = 2 + el;
	memcpy(p, &h, sizeof(h));
	v = p + sizeof(h);
	memcpy(v, ch, h.channel_len);
	v += h.channel_len;
	memcpy(v, "42u1hello", 9);
	memcpy(v + 9, &el, 2);
	memcpy(v + 11, "Kappa", 5);
	return (uint32_t)(sizeof(h) + h.channel_len + 16);
}

/* Pushes rows numbered *pushed.. until limit or the ring is full (true). */
static inline bool fk_push_rows(struct cb_ring *rows, uint32_t *pushed,
			 uint32_t limit, int64_t *next_off)
{
	bool full = false;

	while (*pushed < limit) {
		uint8_t *slot = cb_ring_reserve(rows, 256);

		if (slot == NULL) {
			full = true;
			break;
		}
		cb_ring_shrink(rows, fk_put_row(slot, *pushed,
						next_off[*pushed % FK_PARTS]++));
		(*pushed)++;
	}
	cb_ring_commit(rows);
	return full;
}

/* The aggregator's view: acks per partition, checked to only grow. */
struct fk_agg {
	uint32_t pushed;
	int64_t next_off[FK_PARTS];
	int64_t acked[FK_PARTS];
	bool monotonic;
};

static inline void fk_agg_init(struct fk_agg *a)
{
	memset(a, 0, sizeof(*a));
	for (int p = 0; p < FK_PARTS; p++)
		a->acked[p] = -1;
	a->monotonic = true;
}

/* Pushes rows up to limit and reads acks until every pushed row is
 * acknowledged or deadline_ms passes.  Returns true when all are. */
static inline bool fk_agg_run(struct cb_app *app, struct fk_agg *g, uint32_t limit,
		       int64_t deadline_ms)
{
	bool all = false;

	while (!all && cb_mono_ms() < deadline_ms) {
		const struct cb_ack *a;
		uint32_t len;

		fk_push_rows(app->rows, &g->pushed, limit, g->next_off);
		while ((a = cb_ring_read(app->acks, &len)) != NULL) {
			if (a->partition < 0 || a->partition >= FK_PARTS ||
			    a->generation != 7 ||
			    a->offset <= g->acked[a->partition])
				g->monotonic = false;
			else
				g->acked[a->partition] = a->offset;
			cb_ring_release(app->acks);
		}
		all = g->pushed == limit;
		for (int p = 0; p < FK_PARTS; p++)
			if (g->acked[p] != g->next_off[p] - 1)
				all = false;
		if (!all)
			cb_ring_wait(app->acks, 20);
	}
	return all;
}

/* Settings from argv, the rows and acks rings, and the writer started. */
static inline int fk_writer_up(struct cb_config *cfg, struct cb_app *app, int argc,
			char **argv)
{
	char errstr[256];

	memset(app, 0, sizeof(*app));
	if (cb_config_init(cfg, errstr, sizeof(errstr)) != 0 ||
	    cb_config_load(cfg, argc, argv, errstr, sizeof(errstr)) != 0)
		goto fail;
	app->cfg = cfg;
	if (cb_ring_new(&app->rows, 1u << 16, "rows", errstr,
			sizeof(errstr)) != 0 ||
	    cb_ring_new(&app->acks, 1u << 14, "acks", errstr,
			sizeof(errstr)) != 0)
		goto fail;
	cb_metrics_reset();
	if (cb_cql_start(app, errstr, sizeof(errstr)) == 0)
		return 0;
fail:
	printf("# %s\n", errstr);
	return -1;
}

static inline void fk_writer_down(struct cb_config *cfg, struct cb_app *app)
{
	cb_cql_stop(app);
	cb_ring_free(app->rows);
	cb_ring_free(app->acks);
	cb_config_release(cfg);
}

#endif
