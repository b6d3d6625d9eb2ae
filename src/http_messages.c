/*
 * http_messages.c - GET /api/channels/:id/messages: a channel's raw
 * messages read back from Cassandra (<keyspace>.raw_chat_messages), newest
 * first, a page at a time, through the CQL module's blocking session API
 * (cql.h, cb_cql_read_messages).
 *
 * Threads: runs in libmicrohttpd's threads.  A CQL session serves one
 * thread at a time, so each HTTP thread opens its own on first use (kept in
 * thread-specific data, closed when the thread ends) and opens it again
 * after an I/O error.  The request holds its HTTP thread while Cassandra
 * answers, at most cassandra_timeout_ms.
 *
 * Paging: Cassandra's paging state (with the day-bucketed table: the day
 * and the paging state inside it, cql_days.h) goes to the client as an
 * opaque base64url token ("page"), and comes back as the next request's
 * page.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chatbattle/app.h"
#include "chatbattle/config.h"
#include "chatbattle/cql.h"
#include "chatbattle/err.h"
#include "chatbattle/http.h"
#include "chatbattle/isotime.h"
#include "chatbattle/log.h"
#include "http_int.h"

#define PAGE_TOKEN_MAX 4096 /* bytes of a decoded paging state */

static const char b64url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t cb_http_b64url_encode(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = b64url[(v >> 18) & 63];
		out[o++] = b64url[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = b64url[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = b64url[v & 63];
	}
	out[o] = '\0';
	return o;
}

int cb_http_b64url_decode(const char *in, uint8_t *out, size_t max,
			  size_t *out_len)
{
	size_t n = strlen(in), o = 0;
	uint32_t acc = 0;
	int bits = 0;

	if (n % 4 == 1)
		return CB_E_PARSE;
	for (size_t i = 0; i < n; i++) {
		const char *p = memchr(b64url, in[i], 64);

		if (p == NULL || in[i] == '\0')
			return CB_E_PARSE;
		acc = (acc << 6) | (uint32_t)(p - b64url);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= max)
				return CB_E_TOOBIG;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* The unused low bits of the last character must be zero, so that
	 * each token has one spelling. */
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
		return CB_E_PARSE;
	*out_len = o;
	return 0;
}

/* ---- per-thread sessions ---- */

static pthread_key_t session_key;
static pthread_once_t session_once = PTHREAD_ONCE_INIT;

static void session_free(void *p)
{
	cb_cql_session_close(p);
}

static void session_init(void)
{
	if (pthread_key_create(&session_key, session_free) != 0)
		cb_warn("http", "no per-thread CQL sessions");
}

/* ---- the query ---- */

static int on_row(void *ctx, const struct cb_cql_message *m)
{
	json_t *list = ctx, *row = json_object(), *emotes = json_array();
	char uuid[37], iso[CB_ISOTIME_MAX];
	const uint8_t *u = m->message_id;

	snprintf(uuid, sizeof(uuid),
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
		 u[10], u[11], u[12], u[13], u[14], u[15]);
	for (size_t i = 0; i < m->nemotes; i++)
		json_array_append_new(emotes,
				      json_stringn(m->emotes[i].p,
						   m->emotes[i].len));
	json_object_set_new(row, "channel_id",
			    json_stringn(m->channel_id.p, m->channel_id.len));
	json_object_set_new(row, "timestamp", json_integer(m->timestamp_ms));
	json_object_set_new(row, "time", json_string(cb_isotime_format(
						  m->timestamp_ms, iso)));
	json_object_set_new(row, "message_id", json_string(uuid));
	json_object_set_new(row, "user_id",
			    json_stringn(m->user_id.p, m->user_id.len));
	json_object_set_new(row, "username",
			    json_stringn(m->username.p, m->username.len));
	json_object_set_new(row, "message",
			    json_stringn(m->message.p, m->message.len));
	json_object_set_new(row, "emotes", emotes);
	json_array_append_new(list, row);
	return 0;
}

enum MHD_Result cb_http_api_messages(struct cb_http_ctx *x)
{
	static const char *const retry[] = {"Retry-After", "5", NULL};
	const struct cb_config *cfg = x->h->cfg;
	const char *before, *since, *page;
	struct cb_cql_session *s;
	uint8_t token[PAGE_TOKEN_MAX], *next = NULL;
	size_t token_len = 0, next_len = 0;
	int64_t limit, until_ms = INT64_MAX, since_ms = INT64_MIN;
	enum MHD_Result ret;
	char errstr[512];
	json_t *doc, *list;
	int err;

	if (cb_http_query_int(x, "limit", 50, 1, 1000, &limit, &ret) != 0)
		return ret;
	before = MHD_lookup_connection_value(x->conn, MHD_GET_ARGUMENT_KIND,
					     "before");
	since = MHD_lookup_connection_value(x->conn, MHD_GET_ARGUMENT_KIND,
					    "since");
	page = MHD_lookup_connection_value(x->conn, MHD_GET_ARGUMENT_KIND,
					   "page");
	if (before != NULL &&
	    cb_isotime_parse(before, &until_ms, errstr, sizeof(errstr)) != 0)
		return cb_http_error(x, 400, NULL, "before: %s", errstr);
	if (since != NULL &&
	    cb_isotime_parse(since, &since_ms, errstr, sizeof(errstr)) != 0)
		return cb_http_error(x, 400, NULL, "since: %s", errstr);
	if (page != NULL &&
	    cb_http_b64url_decode(page, token, sizeof(token), &token_len) != 0)
		return cb_http_error(x, 400, NULL,
				     "page is not a token from next_page");
	pthread_once(&session_once, session_init);
	s = pthread_getspecific(session_key);
	if (s == NULL) {
		err = cb_cql_session_open(cfg, cfg->cassandra_keyspace, &s,
					  errstr, sizeof(errstr));
		if (err != 0)
			return cb_http_error(x, 503, retry,
					     "Cassandra is unavailable: %s",
					     errstr);
		pthread_setspecific(session_key, s);
	}
	list = json_array();
	err = cb_cql_read_messages(s, x->channel, since_ms, until_ms,
				   (size_t)limit, page ? token : NULL,
				   token_len, on_row, list, &next, &next_len,
				   errstr, sizeof(errstr));
	if (err != 0) {
		json_decref(list);
		free(next);
		if (err == CB_E_IO || err == CB_E_TIMEOUT || err == CB_E_CLOSED) {
			/* Open a fresh session next time. */
			cb_cql_session_close(s);
			pthread_setspecific(session_key, NULL);
			return cb_http_error(x, 503, retry,
					     "Cassandra is unavailable: %s",
					     errstr);
		}
		if (err == CB_E_PARSE || err == CB_E_INVAL)
			return cb_http_error(x, 400, NULL,
					     "page is not a token from "
					     "next_page: %s",
					     errstr);
		return cb_http_error(x, 500, NULL, "reading messages: %s",
				     errstr);
	}
	doc = json_object();
	json_object_set_new(doc, "channel_id", json_string(x->channel));
	json_object_set_new(doc, "messages", list);
	if (next != NULL && next_len > 0 && next_len <= PAGE_TOKEN_MAX) {
		char text[PAGE_TOKEN_MAX * 4 / 3 + 8];

		cb_http_b64url_encode(next, next_len, text);
		json_object_set_new(doc, "next_page", json_string(text));
	} else {
		json_object_set_new(doc, "next_page", json_null());
	}
	free(next);
	{
		char *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);

		json_decref(doc);
		if (text == NULL)
			return cb_http_error(x, 500, NULL, "out of memory");
		return cb_http_send_owned(x, 200, "application/json", text,
					  strlen(text), NULL);
	}
}
