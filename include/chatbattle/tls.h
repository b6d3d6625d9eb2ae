/*
 * tls.h - the one TLS client set-up (src/tls.c) used by every outgoing TLS
 * connection: irc (Twitch IRC), oauth (the token endpoint), cql and
 * cql_sync (Cassandra) and `chatbattle check`.  One policy for all of them:
 *
 *   - TLS 1.2 or later, the peer's chain verified against a CA file (PEM)
 *     or the system store;
 *   - the peer checked against the host we meant: an IP literal against the
 *     certificate's IP addresses, a name against its DNS names, with no
 *     partial wildcards ("f*.example.com" never matches; "*.example.com"
 *     matches one label), and SNI sent for names (never for IP literals);
 *   - every OpenSSL call that can fail is checked: a check that cannot be
 *     armed refuses the connection instead of going on with the chain
 *     verified only.
 *
 * OpenSSL types appear as forward declarations (SSL_CTX is struct
 * ssl_ctx_st, SSL is struct ssl_st).  Thread: any; a context is shared
 * read-only by the connections made from it, an SSL belongs to one thread.
 */
#ifndef CHATBATTLE_TLS_H
#define CHATBATTLE_TLS_H

#include <stddef.h>

struct bufferevent;
struct event_base;
struct ssl_ctx_st;
struct ssl_st;

/*
 * A new client context into *out.  ca_file: PEM CA certificates to trust;
 * NULL or "" for the system store.  what names the setting or peer in the
 * reason ("irc_ca_file", "cassandra_ca_file", "the token endpoint").
 * Returns 0, CB_E_CONFIG when ca_file cannot be loaded, CB_E_TLS when
 * OpenSSL cannot make a context or load the system store.  The caller
 * frees *out with SSL_CTX_free.
 */
int cb_tls_client_ctx(struct ssl_ctx_st **out, const char *ca_file,
		      const char *what, char *errstr, size_t errstr_size);

/*
 * Arms the checks of one new client SSL for host (a name or an IP
 * literal, without brackets or port): SNI, the host-name or IP check and
 * the wildcard policy.  Returns 0, or CB_E_TLS with the reason when one of
 * them cannot be set: the caller must then not connect.
 */
int cb_tls_prepare(struct ssl_st *ssl, const char *host, char *errstr,
		   size_t errstr_size);

/*
 * The reason of a failed handshake or TLS I/O, for a person: the
 * certificate verification result of ssl when it failed ("certificate
 * verify failed: Hostname mismatch"), else the OpenSSL error e, else the
 * first error on this thread's OpenSSL error queue, else strerror(errno)
 * when errno is set, else "unknown TLS error".  ssl may be NULL and e 0.
 * Clears this thread's OpenSSL error queue.
 */
void cb_tls_reason(const struct ssl_st *ssl, unsigned long e, char *buf,
		   size_t size);

/* cb_seterr(CB_E_TLS, "<what>: <cb_tls_reason>"); returns CB_E_TLS. */
int cb_tls_seterr(char *errstr, size_t errstr_size, const char *what);

/*
 * A libevent bufferevent for a new client connection to host, not yet
 * connected: over TLS from ctx, its checks armed by cb_tls_prepare, when
 * ctx is not NULL (a peer that closes without close_notify reads as EOF,
 * as over TCP); plain TCP when ctx is NULL.  options: BEV_OPT_* flags.
 * Returns NULL with the reason (nothing to free then).
 */
struct bufferevent *cb_tls_bufferevent_new(struct event_base *base,
					   struct ssl_ctx_st *ctx,
					   const char *host, int options,
					   char *errstr, size_t errstr_size);

#endif
