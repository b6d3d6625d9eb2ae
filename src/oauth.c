/*
 * oauth.c - the OAuth refresh-token grant (see oauth.h), for the irc
 * thread: an evhttp client request on the irc thread's event loop, over an
 * OpenSSL bufferevent for https (certificate and host name verified).  The
 * response is read with jansson.  Nothing here logs a token or the secret;
 * error reasons carry only the HTTP status and Twitch's "message" field.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "chatbattle/err.h"
#include "chatbattle/oauth.h"
#include "chatbattle/tls.h"

/* A token response is a few hundred bytes; anything far larger is wrong. */
#define OAUTH_BODY_MAX 65536

struct cb_oauth_req {
	struct event_base *base;
	struct evhttp_connection *conn;
	SSL_CTX *ssl_ctx;
	cb_oauth_done_fn done;
	void *arg;
};

static void req_free(struct cb_oauth_req *r)
{
	if (r->conn != NULL)
		evhttp_connection_free(r->conn);
	if (r->ssl_ctx != NULL)
		SSL_CTX_free(r->ssl_ctx);
	free(r);
}

/* evhttp must not free a connection inside its own callback. */
static void deferred_free(evutil_socket_t fd, short what, void *arg)
{
	req_free(arg);
}

static void finish(struct cb_oauth_req *r, int err,
		   const struct cb_oauth_tokens *tok, const char *reason)
{
	struct timeval now = {0, 0};

	r->done(err, tok, reason, r->arg);
	if (event_base_once(r->base, -1, EV_TIMEOUT, deferred_free, r, &now) !=
	    0) {
		/* Cannot defer: leak the request rather than free a
		 * connection under its own callback. */
	}
}

static void copy_str(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

/* Keeps printable ASCII of a server message for a log line. */
static void sanitize(char *dst, size_t size, const char *src, size_t len)
{
	size_t k = 0;

	for (size_t i = 0; i < len && k + 1 < size; i++)
		dst[k++] = (src[i] >= 32 && src[i] < 127) ? src[i] : '?';
	dst[k] = '\0';
}

static void response_cb(struct evhttp_request *req, void *arg)
{
	struct cb_oauth_req *r = arg;
	struct cb_oauth_tokens tok;
	char reason[300], msg[200];
	struct evbuffer *in;
	json_t *root = NULL, *v;
	json_error_t jerr;
	size_t len;
	const char *body;
	int status;

	memset(&tok, 0, sizeof(tok));
	if (req == NULL || evhttp_request_get_response_code(req) == 0) {
		finish(r, CB_E_IO, NULL,
		       "token endpoint: no response (connection refused, "
		       "TLS failure or timeout)");
		return;
	}
	status = evhttp_request_get_response_code(req);
	in = evhttp_request_get_input_buffer(req);
	len = evbuffer_get_length(in);
	if (len > OAUTH_BODY_MAX) {
		finish(r, CB_E_TOOBIG, NULL, "token endpoint: response too large");
		return;
	}
	body = (const char *)evbuffer_pullup(in, -1);
	root = body ? json_loadb(body, len, 0, &jerr) : NULL;
	if (status != 200) {
		const char *m = NULL;

		if (root != NULL && json_is_string(v = json_object_get(root, "message")))
			m = json_string_value(v);
		if (m != NULL)
			sanitize(msg, sizeof(msg), m, strlen(m));
		else
			sanitize(msg, sizeof(msg), body ? body : "",
				 len > 120 ? 120 : len);
		snprintf(reason, sizeof(reason),
			 "token endpoint answered HTTP %d: %s", status, msg);
		finish(r, status == 400 || status == 401 ? CB_E_AUTH : CB_E_HTTP,
		       NULL, reason);
		goto out;
	}
	if (root == NULL ||
	    !json_is_string(v = json_object_get(root, "access_token")) ||
	    json_string_length(v) == 0 ||
	    json_string_length(v) >= sizeof(tok.access)) {
		finish(r, CB_E_PROTO, NULL,
		       "token endpoint: the response has no usable access_token");
		goto out;
	}
	copy_str(tok.access, sizeof(tok.access), json_string_value(v));
	v = json_object_get(root, "refresh_token");
	if (json_is_string(v) && json_string_length(v) < sizeof(tok.refresh))
		copy_str(tok.refresh, sizeof(tok.refresh), json_string_value(v));
	v = json_object_get(root, "expires_in");
	if (json_is_integer(v))
		tok.expires_in_s = json_integer_value(v);
	finish(r, 0, &tok, NULL);
out:
	if (root != NULL)
		json_decref(root);
	explicit_bzero(&tok, sizeof(tok));
}

static int add_param(struct evbuffer *b, const char *key, const char *value,
		     bool first)
{
	char *enc = evhttp_uriencode(value, -1, 1);
	int rc;

	if (enc == NULL)
		return -1;
	rc = evbuffer_add_printf(b, "%s%s=%s", first ? "" : "&", key, enc);
	explicit_bzero(enc, strlen(enc));
	free(enc);
	return rc < 0 ? -1 : 0;
}

int cb_oauth_refresh_start(struct event_base *base, struct evdns_base *dns,
			   const struct cb_oauth_params *p,
			   cb_oauth_done_fn done, void *arg,
			   struct cb_oauth_req **out, char *errstr,
			   size_t errstr_size)
{
	struct cb_oauth_req *r = NULL;
	struct evhttp_uri *uri = NULL;
	struct evhttp_request *req = NULL;
	struct bufferevent *bev = NULL;
	struct evkeyvalq *hdrs;
	struct evbuffer *body;
	const char *scheme, *host, *path, *query;
	char target[2048], hostport[300];
	bool https;
	int port, err = 0;

	*out = NULL;
	uri = evhttp_uri_parse(p->url);
	if (uri == NULL || (scheme = evhttp_uri_get_scheme(uri)) == NULL ||
	    (host = evhttp_uri_get_host(uri)) == NULL || host[0] == '\0') {
		err = cb_seterr(errstr, errstr_size, CB_E_CONFIG,
				"twitch_token_url: not an http(s) URL");
		goto out;
	}
	https = strcasecmp(scheme, "https") == 0;
	if (!https && strcasecmp(scheme, "http") != 0) {
		err = cb_seterr(errstr, errstr_size, CB_E_CONFIG,
				"twitch_token_url: scheme must be https (or "
				"http for a local test endpoint)");
		goto out;
	}
	port = evhttp_uri_get_port(uri);
	if (port < 0)
		port = https ? 443 : 80;
	path = evhttp_uri_get_path(uri);
	query = evhttp_uri_get_query(uri);
	snprintf(target, sizeof(target), "%s%s%s",
		 path && path[0] ? path : "/", query ? "?" : "",
		 query ? query : "");
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM, "out of memory");
		goto out;
	}
	r->base = base;
	r->done = done;
	r->arg = arg;
	if (https) {
		err = cb_tls_client_ctx(&r->ssl_ctx, p->ca_file,
					"the token endpoint's CA file", errstr,
					errstr_size);
		if (err != 0)
			goto out;
		bev = cb_tls_bufferevent_new(base, r->ssl_ctx, host,
					     BEV_OPT_CLOSE_ON_FREE |
						     BEV_OPT_DEFER_CALLBACKS,
					     errstr, errstr_size);
		if (bev == NULL) {
			err = CB_E_TLS;
			goto out;
		}
	}
	r->conn = evhttp_connection_base_bufferevent_new(base, dns, bev, host,
							 (unsigned short)port);
	if (r->conn == NULL) {
		if (bev != NULL)
			bufferevent_free(bev);
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				"cannot create the HTTP connection");
		goto out;
	}
	evhttp_connection_set_timeout(r->conn, p->timeout_s > 0 ? p->timeout_s : 15);
	evhttp_connection_set_retries(r->conn, 0);
	req = evhttp_request_new(response_cb, r);
	if (req == NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM, "out of memory");
		goto out;
	}
	if (port == (https ? 443 : 80))
		snprintf(hostport, sizeof(hostport), "%s", host);
	else
		snprintf(hostport, sizeof(hostport), "%s:%d", host, port);
	hdrs = evhttp_request_get_output_headers(req);
	evhttp_add_header(hdrs, "Host", hostport);
	evhttp_add_header(hdrs, "Content-Type",
			  "application/x-www-form-urlencoded");
	evhttp_add_header(hdrs, "Accept", "application/json");
	evhttp_add_header(hdrs, "Connection", "close");
	body = evhttp_request_get_output_buffer(req);
	if (add_param(body, "grant_type", "refresh_token", true) != 0 ||
	    add_param(body, "refresh_token", p->refresh_token, false) != 0 ||
	    add_param(body, "client_id", p->client_id, false) != 0 ||
	    add_param(body, "client_secret", p->client_secret, false) != 0) {
		evhttp_request_free(req);
		err = cb_seterr(errstr, errstr_size, CB_E_NOMEM, "out of memory");
		goto out;
	}
	/* evhttp_make_request owns req from here, even when it fails. */
	if (evhttp_make_request(r->conn, req, EVHTTP_REQ_POST, target) != 0) {
		err = cb_seterr(errstr, errstr_size, CB_E_IO,
				"cannot send the token request");
		goto out;
	}
	*out = r;
	r = NULL;
	goto out;
out:
	if (r != NULL)
		req_free(r);
	if (uri != NULL)
		evhttp_uri_free(uri);
	return err;
}

void cb_oauth_cancel(struct cb_oauth_req *r)
{
	if (r != NULL)
		req_free(r);
}
