/*
 * oauth.h - refreshing a Twitch OAuth access token (src/oauth.c): one
 * asynchronous POST grant_type=refresh_token to the token endpoint
 * (https, or http for local tests), on the caller's libevent loop.  Used by
 * the irc thread only; the libevent types appear as forward declarations.
 * Tokens and the client secret are never logged.
 */
#ifndef CHATBATTLE_OAUTH_H
#define CHATBATTLE_OAUTH_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evdns_base;

#define CB_OAUTH_TOKEN_MAX 512

struct cb_oauth_tokens {
	char access[CB_OAUTH_TOKEN_MAX];
	char refresh[CB_OAUTH_TOKEN_MAX]; /* "" when the endpoint sent none */
	int64_t expires_in_s;             /* 0 when unknown */
};

/*
 * Called once on the loop's thread: err 0 and tok filled, or a negative
 * cb_err and a reason a person can act on (tok NULL).  The request frees
 * itself after the call.
 */
typedef void (*cb_oauth_done_fn)(int err, const struct cb_oauth_tokens *tok,
				 const char *reason, void *arg);

struct cb_oauth_req;

struct cb_oauth_params {
	const char *url; /* token endpoint, http:// or https:// */
	const char *client_id;
	const char *client_secret;
	const char *refresh_token;
	const char *ca_file; /* https: CA file, NULL/"": the system store */
	int timeout_s;
};

/*
 * Starts the refresh.  Returns 0 and *out (for cb_oauth_cancel), or a
 * negative cb_err with the reason (bad URL, no memory); done is then never
 * called.
 */
int cb_oauth_refresh_start(struct event_base *base, struct evdns_base *dns,
			   const struct cb_oauth_params *p,
			   cb_oauth_done_fn done, void *arg,
			   struct cb_oauth_req **out, char *errstr,
			   size_t errstr_size);

/* Abandons a request that has not completed; done is not called. */
void cb_oauth_cancel(struct cb_oauth_req *r);

#endif
