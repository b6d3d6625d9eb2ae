/*
 * tls.c - the TLS client set-up shared by every module that connects over
 * TLS (see tls.h for the policy).  Before this file existed the set-up was
 * written four times, and two of the copies ignored the result of
 * SSL_set1_host / X509_VERIFY_PARAM_set1_ip_asc: when arming the check
 * failed, the connection went on with the chain verified only.  Here every
 * call that can fail is checked, and the wildcard policy is one line.
 *
 * No state: the functions run on the caller's thread.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "chatbattle/err.h"
#include "chatbattle/tls.h"

int cb_tls_client_ctx(SSL_CTX **out, const char *ca_file, const char *what,
		      char *errstr, size_t errstr_size)
{
	SSL_CTX *ctx;
	char why[256];
	int err = 0;

	*out = NULL;
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		return cb_tls_seterr(errstr, errstr_size,
				     "cannot create a TLS context");
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		cb_tls_reason(NULL, 0, why, sizeof(why));
		err = cb_seterr(errstr, errstr_size, CB_E_TLS,
				"%s: cannot require TLS 1.2: %s", what, why);
		goto out;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (ca_file != NULL && ca_file[0] != '\0') {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			cb_tls_reason(NULL, 0, why, sizeof(why));
			err = cb_seterr(errstr, errstr_size, CB_E_CONFIG,
					"%s %s: cannot load CA certificates: "
					"%s",
					what, ca_file, why);
			goto out;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		cb_tls_reason(NULL, 0, why, sizeof(why));
		err = cb_seterr(errstr, errstr_size, CB_E_TLS,
				"%s: cannot load the system CA store: %s",
				what, why);
		goto out;
	}
	*out = ctx;
	ctx = NULL;
out:
	SSL_CTX_free(ctx);
	return err;
}

static int is_ip_literal(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 ||
	       inet_pton(AF_INET6, host, buf) == 1;
}

int cb_tls_prepare(SSL *ssl, const char *host, char *errstr,
		   size_t errstr_size)
{
	char why[256];

	if (host == NULL || host[0] == '\0')
		return cb_seterr(errstr, errstr_size, CB_E_TLS,
				 "TLS: no host name to check");
	ERR_clear_error();
	if (is_ip_literal(host)) {
		/* RFC 6066: no SNI for an address; the address itself is
		 * what the certificate must name. */
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) !=
		    1)
			goto fail;
		return 0;
	}
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (SSL_set_tlsext_host_name(ssl, host) != 1 ||
	    SSL_set1_host(ssl, host) != 1)
		goto fail;
	return 0;
fail:
	cb_tls_reason(NULL, 0, why, sizeof(why));
	return cb_seterr(errstr, errstr_size, CB_E_TLS,
			 "TLS: cannot check the certificate against %.200s: "
			 "%s",
			 host, why);
}

void cb_tls_reason(const SSL *ssl, unsigned long e, char *buf, size_t size)
{
	long vr = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
	int saved = errno;

	if (e == 0)
		e = ERR_get_error();
	ERR_clear_error();
	if (vr != X509_V_OK)
		snprintf(buf, size, "certificate verify failed: %s",
			 X509_verify_cert_error_string(vr));
	else if (e != 0)
		ERR_error_string_n(e, buf, size);
	else if (saved != 0)
		snprintf(buf, size, "%s", strerror(saved));
	else
		snprintf(buf, size, "unknown TLS error");
}

int cb_tls_seterr(char *errstr, size_t errstr_size, const char *what)
{
	char why[256];

	cb_tls_reason(NULL, 0, why, sizeof(why));
	return cb_seterr(errstr, errstr_size, CB_E_TLS, "%s: %s", what, why);
}

struct bufferevent *cb_tls_bufferevent_new(struct event_base *base,
					   SSL_CTX *ctx, const char *host,
					   int options, char *errstr,
					   size_t errstr_size)
{
	struct bufferevent *bev;
	SSL *ssl;

	if (ctx == NULL) {
		bev = bufferevent_socket_new(base, -1, options);
		if (bev == NULL)
			cb_seterr(errstr, errstr_size, CB_E_NOMEM,
				  "cannot create a connection");
		return bev;
	}
	ssl = SSL_new(ctx);
	if (ssl == NULL) {
		cb_tls_seterr(errstr, errstr_size,
			      "cannot create a TLS session");
		return NULL;
	}
	if (cb_tls_prepare(ssl, host, errstr, errstr_size) != 0) {
		SSL_free(ssl);
		return NULL;
	}
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
					     BUFFEREVENT_SSL_CONNECTING,
					     options);
	if (bev == NULL) {
		SSL_free(ssl);
		cb_seterr(errstr, errstr_size, CB_E_NOMEM,
			  "cannot create a connection");
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}
