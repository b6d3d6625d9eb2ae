/*
 * http.h - the HTTP server (module "http", role "serve"; src/http*.c): the
 * REST API, Server-Sent Events, Prometheus /metrics and the embedded
 * dashboard, on libmicrohttpd with its own epoll thread(s).  docs/api.md
 * describes every endpoint; web/openapi.json is the machine-readable copy.
 *
 * It reads app->cache (lock-free), the metrics and dependency health, and
 * cb_irc_status(app->irc); it writes only JOIN/PART commands, through
 * cb_app_irc_command().
 */
#ifndef CHATBATTLE_HTTP_H
#define CHATBATTLE_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct cb_app;

/*
 * Module entry points for cb_app_modules[] (app.h).  start binds
 * cfg->http_bind:cfg->port (port 0: any free port; the bound port is logged
 * as "http: listening on ADDR:PORT" and returned by cb_http_port()), and
 * sets app->http.  It refuses (CB_E_CONFIG) to bind beyond loopback without
 * an api_token.  stop ends every SSE stream, then the server, then frees it.
 */
int cb_http_start(struct cb_app *app, char *errstr, size_t errstr_size);
void cb_http_stop(struct cb_app *app);

/* Any thread: the TCP port the server listens on (0 when not started). */
uint16_t cb_http_port(const struct cb_app *app);

/* One route of the API, for documentation checks (tests compare the table
 * with web/openapi.json). */
struct cb_http_route_info {
	const char *method; /* "GET", "POST", "DELETE" */
	const char *path;   /* OpenAPI style: "/api/channels/{channelId}" */
};

/* The route table: sets *routes and returns how many there are. */
size_t cb_http_routes(const struct cb_http_route_info **routes);

/* True when addr (the http_bind setting) only accepts local connections:
 * 127.0.0.0/8, ::1 or "localhost". */
int cb_http_is_loopback(const char *addr);

#endif
