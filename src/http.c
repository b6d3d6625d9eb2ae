/*
 * http.c - the HTTP server: libmicrohttpd set-up, routing, CORS, JSON
 * errors, limits, request logging (module "http", see http.h).
 *
 * Threads: libmicrohttpd's epoll thread(s) (http_threads) run every handler;
 * http_sse.c adds one notifier thread.  Handlers read the stats cache
 * lock-free and build each response in the calling thread; nothing here
 * blocks.  The module owns struct cb_http and the daemon.
 *
 * Keep-alive: a response queued on the first call of the access handler
 * (before MHD has read the whole request) makes libmicrohttpd 0.9.75 close
 * the connection after it (~26,000 req/s measured, instead of ~120,000), so
 * every handler runs on the second call (or, with a body, on the call after
 * the last chunk), as libmicrohttpd's examples do.  Only refusals that must
 * not read the body are queued earlier (413 from Content-Length, or once an
 * oversized body passes BODY_DRAIN_MAX), and those close the connection on
 * purpose.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "chatbattle/app.h"
#include "chatbattle/clock.h"
#include "chatbattle/config.h"
#include "chatbattle/err.h"
#include "chatbattle/http.h"
#include "chatbattle/log.h"
#include "chatbattle/metrics.h"
#include "http_int.h"

/* Per-connection memory: request line, headers and write buffer.  Bigger
 * headers get 431 from libmicrohttpd. */
#define CONN_MEMORY_LIMIT (32u * 1024u)

enum {
	R_AUTH = 1, /* needs the bearer token when api_token is set */
	R_BODY = 2, /* may carry a JSON body */
};

struct route {
	struct cb_http_route_info info;
	enum MHD_Result (*fn)(struct cb_http_ctx *x);
	const char *query; /* allowed query parameters, ',' separated */
	int flags;
};

/* Exact paths before patterns; {name} matches one non-empty segment. */
static const struct route routes[] = {
	{{"GET", "/api/health"}, cb_http_api_health, "", 0},
	{{"GET", "/api/channels"}, cb_http_api_channels, "", 0},
	{{"GET", "/api/openapi.json"}, cb_http_api_openapi, "", 0},
	{{"GET", "/api/battle"}, cb_http_api_battle, "channels", 0},
	{{"GET", "/api/battle/events"}, cb_http_sse_battle, "channels", 0},
	{{"GET", "/api/channels/{channelId}/stats"}, cb_http_api_stats, "", 0},
	{{"GET", "/api/channels/{channelId}/windows"}, cb_http_api_windows,
	 "limit", 0},
	{{"GET", "/api/channels/{channelId}/top"}, cb_http_api_top, "limit", 0},
	{{"GET", "/api/channels/{channelId}/viewers"}, cb_http_api_viewers,
	 "limit", 0},
	{{"GET", "/api/channels/{channelId}/events"}, cb_http_sse_events, "",
	 0},
	{{"GET", "/api/channels/{channelId}/messages"}, cb_http_api_messages,
	 "limit,before,since,page", 0},
	{{"POST", "/api/channels/{channelId}"}, cb_http_api_start, "",
	 R_AUTH | R_BODY},
	{{"DELETE", "/api/channels/{channelId}"}, cb_http_api_stop, "",
	 R_AUTH | R_BODY},
	{{"GET", "/metrics"}, cb_http_api_metrics, "", 0},
	{{"GET", "/"}, cb_http_asset, NULL, 0},
	{{"GET", "/{asset}"}, cb_http_asset, NULL, 0},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static struct cb_http_route_info route_infos[NROUTES];
static pthread_once_t route_infos_once = PTHREAD_ONCE_INIT;

static void route_infos_init(void)
{
	for (size_t i = 0; i < NROUTES; i++)
		route_infos[i] = routes[i].info;
}

size_t cb_http_routes(const struct cb_http_route_info **out)
{
	pthread_once(&route_infos_once, route_infos_init);
	*out = route_infos;
	return NROUTES;
}

/* Bytes of an oversized body read and dropped before answering 413: a
 * client that is still sending when the connection closes may never see
 * the answer (TCP reset), so moderate excess is drained; an endless body
 * is cut short. */
#define BODY_DRAIN_MAX (1u << 20)

/* The request body while it arrives (only requests that have one). */
struct body {
	size_t len;
	size_t dropped;  /* bytes beyond http_max_body */
	bool too_big;
	bool answered;   /* 413 queued already */
	char data[];
};

/* con_cls of a request whose body has not started (or has none). */
static char no_body;

int cb_http_is_loopback(const char *addr)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (strcasecmp(addr, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, addr, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, addr, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

uint16_t cb_http_port(const struct cb_app *app)
{
	return app->http ? app->http->port : 0;
}

const char *cb_http_reason(unsigned status)
{
	switch (status) {
	case 200: return "OK";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "";
	}
}

void cb_http_add_cors(struct cb_http *h, struct MHD_Response *r)
{
	const char *origin = h->cfg->cors_origin;

	if (origin == NULL || origin[0] == '\0')
		return;
	MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
	if (strcmp(origin, "*") != 0)
		MHD_add_response_header(r, "Vary", "Origin");
}

/* Copies in into out (size bytes) with every byte outside printable ASCII
 * replaced by '?': request text echoed into logs and JSON can then neither
 * split a log line nor be invalid UTF-8. */
static const char *printable(const char *in, char *out, size_t size)
{
	size_t i = 0;

	for (; in[i] != '\0' && i + 1 < size; i++)
		out[i] = (in[i] >= 0x20 && in[i] < 0x7f) ? in[i] : '?';
	out[i] = '\0';
	return out;
}

void cb_http_account(struct cb_http_ctx *x, unsigned status, size_t len)
{
	char m[32], u[256];

	cb_metric_add(CB_M_http_requests_total, 1);
	if (status >= 500) {
		cb_metric_add(CB_M_http_server_errors_total, 1);
		cb_info("http", "%s %s -> %u %s", printable(x->method, m, sizeof(m)),
			printable(x->url, u, sizeof(u)), status,
			cb_http_reason(status));
	} else if (status >= 400) {
		cb_metric_add(CB_M_http_client_errors_total, 1);
		cb_info("http", "%s %s -> %u %s", printable(x->method, m, sizeof(m)),
			printable(x->url, u, sizeof(u)), status,
			cb_http_reason(status));
	} else {
		cb_debug("http", "%s %s -> %u (%zu bytes)",
			 printable(x->method, m, sizeof(m)),
			 printable(x->url, u, sizeof(u)), status, len);
	}
}

enum MHD_Result cb_http_queue(struct cb_http_ctx *x, unsigned status,
			      const char *ctype, struct MHD_Response *r,
			      size_t len, const char *const *headers)
{
	enum MHD_Result ret;

	if (r == NULL) {
		cb_error("http", "out of memory for a response");
		return MHD_NO;
	}
	if (ctype != NULL)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	cb_http_add_cors(x->h, r);
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i += 2)
		MHD_add_response_header(r, headers[i], headers[i + 1]);
	ret = MHD_queue_response(x->conn, status, r);
	MHD_destroy_response(r);
	cb_http_account(x, status, len);
	return ret;
}

enum MHD_Result cb_http_send(struct cb_http_ctx *x, unsigned status,
			     const char *ctype, const char *body, size_t len,
			     const char *const *headers)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		len, (void *)body, MHD_RESPMEM_MUST_COPY);

	return cb_http_queue(x, status, ctype, r, len, headers);
}

enum MHD_Result cb_http_send_static(struct cb_http_ctx *x, unsigned status,
				    const char *ctype, const void *body,
				    size_t len, const char *const *headers)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		len, (void *)body, MHD_RESPMEM_PERSISTENT);

	return cb_http_queue(x, status, ctype, r, len, headers);
}

enum MHD_Result cb_http_send_owned(struct cb_http_ctx *x, unsigned status,
				   const char *ctype, char *body, size_t len,
				   const char *const *headers)
{
	struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(
		len, body, free);

	if (r == NULL)
		free(body);
	return cb_http_queue(x, status, ctype, r, len, headers);
}

enum MHD_Result cb_http_error(struct cb_http_ctx *x, unsigned status,
			      const char *const *headers, const char *fmt, ...)
{
	char raw[512], msg[512];
	va_list ap;
	json_t *o;
	char *text;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	printable(raw, msg, sizeof(msg));
	o = json_pack("{s:s, s:i}", "error", msg, "status", (int)status);
	text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	if (text == NULL) {
		static const char oom[] =
			"{\"error\":\"out of memory\",\"status\":500}";

		return cb_http_send(x, 500, "application/json", oom,
				    sizeof(oom) - 1, NULL);
	}
	return cb_http_send_owned(x, status, "application/json", text,
				  strlen(text), headers);
}

int cb_http_query_int(struct cb_http_ctx *x, const char *name, int64_t def,
		      int64_t min, int64_t max, int64_t *out,
		      enum MHD_Result *ret)
{
	const char *v = MHD_lookup_connection_value(
		x->conn, MHD_GET_ARGUMENT_KIND, name);
	char *end;
	long long n;

	if (v == NULL) {
		*out = def;
		return 0;
	}
	errno = 0;
	n = strtoll(v, &end, 10);
	if (v[0] == '\0' || *end != '\0' || errno != 0 || n < min ||
	    n > max) {
		*ret = cb_http_error(x, 400, NULL,
				     "query parameter %s must be an integer "
				     "from %lld to %lld",
				     name, (long long)min, (long long)max);
		return -1;
	}
	*out = n;
	return 0;
}

/* Matches path against pattern; a {param} takes one non-empty segment,
 * reported in *param. */
static bool match(const char *pattern, const char *path, const char **param,
		  size_t *param_len)
{
	const char *p = pattern, *s = path;

	while (*p != '\0') {
		if (*p == '{') {
			const char *seg = s;

			while (*s != '\0' && *s != '/')
				s++;
			if (s == seg)
				return false;
			*param = seg;
			*param_len = (size_t)(s - seg);
			p = strchr(p, '}');
			if (p == NULL)
				return false;
			p++;
			continue;
		}
		if (*p != *s)
			return false;
		p++;
		s++;
	}
	return *s == '\0';
}

/* Collects the methods of the routes that match path ("GET, HEAD, ..."). */
static void allowed_methods(const char *path, char *out, size_t size)
{
	const char *param;
	size_t plen, used = 0;
	bool get = false, post = false, del = false;

	for (size_t i = 0; i < NROUTES; i++) {
		if (!match(routes[i].info.path, path, &param, &plen))
			continue;
		get |= strcmp(routes[i].info.method, "GET") == 0;
		post |= strcmp(routes[i].info.method, "POST") == 0;
		del |= strcmp(routes[i].info.method, "DELETE") == 0;
	}
	out[0] = '\0';
	if (get)
		used += (size_t)snprintf(out + used, size - used, "GET, HEAD, ");
	if (post && used < size)
		used += (size_t)snprintf(out + used, size - used, "POST, ");
	if (del && used < size)
		used += (size_t)snprintf(out + used, size - used, "DELETE, ");
	if (used > 0 && used < size)
		snprintf(out + used, size - used, "OPTIONS");
}

struct query_check {
	const char *allowed;
	const char *bad;
};

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind,
				 const char *key, const char *value)
{
	struct query_check *q = cls;
	const char *a = q->allowed;
	size_t klen = strlen(key);

	while (a != NULL && *a != '\0') {
		const char *comma = strchr(a, ',');
		size_t n = comma ? (size_t)(comma - a) : strlen(a);

		if (n == klen && memcmp(a, key, n) == 0)
			return MHD_YES;
		a = comma ? comma + 1 : NULL;
	}
	q->bad = key;
	return MHD_NO;
}

/* Constant-time comparison, so the token cannot be guessed by timing. */
static bool token_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = (unsigned char)(la != lb);

	for (size_t i = 0; i < la; i++)
		diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
	return diff == 0;
}

static enum MHD_Result check_auth(struct cb_http_ctx *x, bool *ok)
{
	static const char *const www[] = {"WWW-Authenticate",
					  "Bearer realm=\"chatbattle\"", NULL};
	const char *token = x->h->cfg->api_token;
	const char *auth;

	*ok = false;
	if (token == NULL || token[0] == '\0') {
		*ok = true;
		return MHD_YES;
	}
	auth = MHD_lookup_connection_value(x->conn, MHD_HEADER_KIND,
					   MHD_HTTP_HEADER_AUTHORIZATION);
	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
		return cb_http_error(x, 401, www,
				     "this action needs the header "
				     "Authorization: Bearer <api_token>");
	auth += 7;
	while (*auth == ' ')
		auth++;
	if (!token_equal(auth, token))
		return cb_http_error(x, 403, NULL, "wrong API token");
	*ok = true;
	return MHD_YES;
}

/* A body, when present, must be JSON (an object) within http_max_body. */
static enum MHD_Result check_body(struct cb_http_ctx *x, int flags, bool *ok)
{
	const char *ctype;
	json_error_t jerr;
	json_t *doc;

	*ok = false;
	if (x->body_len == 0) {
		*ok = true;
		return MHD_YES;
	}
	if (!(flags & R_BODY))
		return cb_http_error(x, 400, NULL,
				     "%s %s takes no request body", x->method,
				     x->url);
	ctype = MHD_lookup_connection_value(x->conn, MHD_HEADER_KIND,
					    MHD_HTTP_HEADER_CONTENT_TYPE);
	if (ctype == NULL ||
	    strncasecmp(ctype, "application/json", 16) != 0 ||
	    (ctype[16] != '\0' && ctype[16] != ';' && ctype[16] != ' '))
		return cb_http_error(x, 415, NULL,
				     "the request body must be "
				     "application/json");
	doc = json_loadb(x->body, x->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL || !json_is_object(doc)) {
		json_decref(doc);
		return cb_http_error(x, 400, NULL,
				     "the request body is not a JSON object%s%s",
				     doc ? "" : ": ", doc ? "" : jerr.text);
	}
	json_decref(doc);
	*ok = true;
	return MHD_YES;
}

static enum MHD_Result preflight(struct cb_http_ctx *x, const char *allow)
{
	const char *const hdrs[] = {
		"Allow", allow,
		"Access-Control-Allow-Methods", allow,
		"Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID",
		"Access-Control-Max-Age", "600",
		NULL};

	return cb_http_send(x, 204, NULL, "", 0, hdrs);
}

static enum MHD_Result dispatch(struct cb_http_ctx *x)
{
	const char *m = x->method;
	bool is_get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
	bool path_known = false, ok;
	char allow[64];
	struct query_check q;
	enum MHD_Result ret;

	for (size_t i = 0; i < NROUTES; i++) {
		const struct route *rt = &routes[i];
		const char *param = NULL;
		size_t plen = 0;

		if (!match(rt->info.path, x->url, &param, &plen))
			continue;
		path_known = true;
		if (!(is_get ? strcmp(rt->info.method, "GET") == 0
			     : strcmp(rt->info.method, m) == 0))
			continue;
		x->param = param;
		x->param_len = plen;
		if (param != NULL && strstr(rt->info.path, "{channelId}")) {
			char reason[160];

			if (cb_channel_normalize(param, plen, x->channel,
						 reason, sizeof(reason)) != 0)
				return cb_http_error(x, 400, NULL,
						     "invalid channel id: %s",
						     reason);
		}
		if (rt->query != NULL) {
			q.allowed = rt->query;
			q.bad = NULL;
			MHD_get_connection_values(x->conn,
						  MHD_GET_ARGUMENT_KIND,
						  check_arg, &q);
			if (q.bad != NULL)
				return cb_http_error(
					x, 400, NULL,
					"unknown query parameter \"%s\"%s%s",
					q.bad, rt->query[0] ? "; allowed: " : "",
					rt->query);
		}
		if (rt->flags & R_AUTH) {
			ret = check_auth(x, &ok);
			if (!ok)
				return ret;
		}
		ret = check_body(x, rt->flags, &ok);
		if (!ok)
			return ret;
		return rt->fn(x);
	}
	if (!path_known)
		return cb_http_error(x, 404, NULL, "no such resource: %s",
				     x->url);
	allowed_methods(x->url, allow, sizeof(allow));
	if (strcmp(m, "OPTIONS") == 0)
		return preflight(x, allow);
	{
		const char *const hdrs[] = {"Allow", allow, NULL};

		return cb_http_error(x, 405, hdrs,
				     "method %s is not allowed here; allowed: "
				     "%s",
				     m, allow);
	}
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct cb_http *h = cls;
	struct cb_http_ctx x = {.h = h, .conn = conn, .method = method,
				.url = url};
	size_t max = (size_t)h->cfg->http_max_body;
	struct body *b;

	if (*con_cls == NULL) {
		/* First call: headers only.  Refuse an announced oversized
		 * body now, without reading it (the connection closes). */
		const char *cl = MHD_lookup_connection_value(
			conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

		if (cl != NULL && strtoull(cl, NULL, 10) > max)
			return cb_http_error(&x, 413, NULL,
					     "request body larger than %zu "
					     "bytes (http_max_body)",
					     max);
		*con_cls = &no_body;
		return MHD_YES;
	}
	if (*upload_size != 0) {
		b = *con_cls == &no_body ? NULL : *con_cls;
		if (b == NULL) {
			b = malloc(sizeof(*b) + max + 1);
			if (b == NULL)
				return MHD_NO;
			b->len = 0;
			b->dropped = 0;
			b->too_big = false;
			b->answered = false;
			*con_cls = b;
		}
		if (b->too_big || *upload_size > max - b->len) {
			b->too_big = true;
			b->dropped += *upload_size;
			*upload_size = 0;
			if (b->dropped <= BODY_DRAIN_MAX || b->answered)
				return MHD_YES;
			b->answered = true;
			return cb_http_error(&x, 413, NULL,
					     "request body larger than %zu "
					     "bytes (http_max_body)",
					     max);
		}
		memcpy(b->data + b->len, upload, *upload_size);
		b->len += *upload_size;
		*upload_size = 0;
		return MHD_YES;
	}
	b = *con_cls == &no_body ? NULL : *con_cls;
	if (b != NULL) {
		if (b->answered)
			return MHD_YES;
		if (b->too_big)
			return cb_http_error(&x, 413, NULL,
					     "request body larger than %zu "
					     "bytes (http_max_body)",
					     max);
		b->data[b->len] = '\0';
		x.body = b->data;
		x.body_len = b->len;
	}
	return dispatch(&x);
}

static void on_completed(void *cls, struct MHD_Connection *conn,
			 void **con_cls, enum MHD_RequestTerminationCode why)
{
	if (*con_cls != NULL && *con_cls != &no_body)
		free(*con_cls);
	*con_cls = NULL;
}

/* Percent-decoding of the path and query (libmicrohttpd's, except that
 * %00 stays as it is: a NUL would cut the path short, so "/%00x" would be
 * served as "/"). */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
	char *w = s;

	for (const char *r = s; *r != '\0'; r++) {
		if (r[0] == '%' && isxdigit((unsigned char)r[1]) &&
		    isxdigit((unsigned char)r[2]) &&
		    !(r[1] == '0' && r[2] == '0')) {
			char hex[3] = {r[1], r[2], '\0'};

			*w++ = (char)strtol(hex, NULL, 16);
			r += 2;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
	return (size_t)(w - s);
}

/* libmicrohttpd's own error messages enter the log here, once. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	cb_info("http", "libmicrohttpd: %s", msg);
}

static int make_addr(const char *bind, int port, struct sockaddr_storage *ss,
		     char *errstr, size_t errstr_size)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	const char *host = strcasecmp(bind, "localhost") == 0 ? "127.0.0.1"
							       : bind;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		return 0;
	}
	return cb_seterr(errstr, errstr_size, CB_E_CONFIG,
			 "http_bind: \"%s\" is not an IPv4 or IPv6 address",
			 bind);
}

int cb_http_start(struct cb_app *app, char *errstr, size_t errstr_size)
{
	const struct cb_config *cfg = app->cfg;
	struct cb_http *h = NULL;
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *info;
	unsigned flags;
	int err;

	if (!cb_http_is_loopback(cfg->http_bind) &&
	    (cfg->api_token == NULL || cfg->api_token[0] == '\0'))
		return cb_seterr(errstr, errstr_size, CB_E_CONFIG,
				 "http: bound to %s (beyond loopback) without "
				 "an api_token: set CHATBATTLE_API_TOKEN or "
				 "--api-token, or bind to 127.0.0.1",
				 cfg->http_bind);
	err = make_addr(cfg->http_bind, (int)cfg->port, &ss, errstr,
			errstr_size);
	if (err != 0)
		return err;
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				 "http: out of memory");
	h->app = app;
	h->cfg = cfg;
	h->started_ms = cb_wall_ms();
	if (app->cache != NULL) {
		err = cb_http_sse_new(h, errstr, errstr_size);
		if (err != 0)
			goto fail;
	}
	flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
		MHD_USE_ERROR_LOG | MHD_USE_TURBO;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	{
		/* The logger first, so that MHD's own messages reach it. */
		struct MHD_OptionItem opts[] = {
			{MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, h},
			{MHD_OPTION_SOCK_ADDR, 0, &ss},
			{MHD_OPTION_CONNECTION_MEMORY_LIMIT,
			 (intptr_t)CONN_MEMORY_LIMIT, NULL},
			{MHD_OPTION_CONNECTION_LIMIT,
			 (intptr_t)cfg->http_max_connections, NULL},
			{MHD_OPTION_CONNECTION_TIMEOUT,
			 (intptr_t)cfg->http_timeout_s, NULL},
			{MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed,
			 h},
			{MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1, NULL},
			{MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)unescape,
			 NULL},
			/* A pool only with two or more threads. */
			{cfg->http_threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE
					       : MHD_OPTION_END,
			 (intptr_t)cfg->http_threads, NULL},
			{MHD_OPTION_END, 0, NULL},
		};

		h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request,
					     h, MHD_OPTION_ARRAY, opts,
					     MHD_OPTION_END);
	}
	if (h->daemon == NULL) {
		err = cb_seterr(errstr, errstr_size, CB_E_HTTP,
				"http: cannot listen on %s:%lld (address in "
				"use, or not an address of this host?)",
				cfg->http_bind, (long long)cfg->port);
		goto fail;
	}
	info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info ? info->port : (uint16_t)cfg->port;
	app->http = h;
	cb_info("http", "listening on %s%s%s:%u (%lld thread(s))",
		ss.ss_family == AF_INET6 ? "[" : "", cfg->http_bind,
		ss.ss_family == AF_INET6 ? "]" : "", (unsigned)h->port,
		(long long)cfg->http_threads);
	return 0;
fail:
	cb_http_sse_free(h);
	free(h);
	return err;
}

void cb_http_stop(struct cb_app *app)
{
	struct cb_http *h = app->http;
	MHD_socket lsock;

	if (h == NULL)
		return;
	/* No new connections; then end the streams (suspended connections
	 * must be resumed before MHD_stop_daemon), then the server. */
	lsock = MHD_quiesce_daemon(h->daemon);
	cb_http_sse_shutdown(h, 2000);
	MHD_stop_daemon(h->daemon);
	if (lsock != MHD_INVALID_SOCKET)
		close(lsock);
	cb_http_sse_free(h);
	app->http = NULL;
	free(h);
	cb_info("http", "stopped");
}
