/*
 * test_tls.c - the TLS client set-up (src/tls.c) against a TLS server in
 * this process, on an ephemeral loopback port: the right name and address
 * are accepted; a wrong host name, a wrong IP address, an expired
 * certificate, a certificate from an untrusted CA and a partial wildcard
 * are refused with a reason that says which; SNI is sent for names only;
 * a name check that cannot be armed refuses to connect.  The certificates
 * are made here with the OpenSSL API (EC P-256) at run time; only the CA
 * file the client loads is written, into a temporary directory.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdbool.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "chatbattle/err.h"
#include "chatbattle/tls.h"
#include "test.h"
#include "tls_fault.h"

struct pki {
	EVP_PKEY *key;
	X509 *cert;
};

static struct pki ca, other_ca;
static char tmpdir[64], ca_file[128], other_ca_file[128];

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return 0;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/*
 * A certificate for a new key, valid from not_before_s to not_after_s
 * (seconds from now), signed by issuer (NULL: self-signed CA).  san is
 * the subjectAltName of a leaf ("DNS:localhost,IP:127.0.0.1").
 */
static int make_cert(struct pki *out, const char *cn, const char *san,
		     const struct pki *issuer, long not_before_s,
		     long not_after_s)
{
	static long serial = 1;
	X509_NAME *name;
	X509 *x;
	int ok;

	out->key = EVP_EC_gen("P-256");
	out->cert = x = X509_new();
	if (out->key == NULL || x == NULL)
		return -1;
	name = X509_get_subject_name(x);
	ok = X509_set_version(x, 2) &&
	     ASN1_INTEGER_set(X509_get_serialNumber(x), serial++) &&
	     X509_gmtime_adj(X509_getm_notBefore(x), not_before_s) != NULL &&
	     X509_gmtime_adj(X509_getm_notAfter(x), not_after_s) != NULL &&
	     X509_set_pubkey(x, out->key) &&
	     X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					(const unsigned char *)cn, -1, -1, 0) &&
	     X509_set_issuer_name(x, issuer != NULL
					     ? X509_get_subject_name(issuer->cert)
					     : name) &&
	     add_ext(x, x, NID_subject_key_identifier, "hash");
	if (ok && issuer == NULL)
		ok = add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") &&
		     add_ext(x, x, NID_key_usage, "critical,keyCertSign");
	if (ok && issuer != NULL)
		ok = add_ext(x, issuer->cert, NID_authority_key_identifier,
			     "keyid:always") &&
		     add_ext(x, x, NID_basic_constraints, "CA:FALSE") &&
		     add_ext(x, x, NID_subject_alt_name, san);
	if (ok)
		ok = X509_sign(x, issuer != NULL ? issuer->key : out->key,
			       EVP_sha256()) > 0;
	return ok ? 0 : -1;
}

static void pki_free(struct pki *p)
{
	X509_free(p->cert);
	EVP_PKEY_free(p->key);
	memset(p, 0, sizeof(*p));
}

static int write_pem(const char *path, X509 *x)
{
	FILE *f = fopen(path, "w");
	int ok;

	if (f == NULL)
		return -1;
	ok = PEM_write_X509(f, x);
	return fclose(f) == 0 && ok ? 0 : -1;
}

/* ---- the server: one connection, then the thread ends ---- */

struct srv {
	int lfd, port;
	SSL_CTX *ctx;
	pthread_t th;
	bool accepted;     /* the handshake completed on the server side */
	char sni[256];     /* the server name the client sent, "" for none */
};

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	struct timeval tv = {5, 0};
	int fd = accept(s->lfd, NULL, NULL);
	SSL *ssl;
	char buf[16];

	if (fd < 0)
		return NULL;
	/* bounded: a client that stops talking ends the thread */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ssl = SSL_new(s->ctx);
	if (ssl != NULL) {
		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) == 1) {
			const char *sn =
				SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

			s->accepted = true;
			snprintf(s->sni, sizeof(s->sni), "%s", sn ? sn : "");
			SSL_write(ssl, "hello", 5);
			while (SSL_read(ssl, buf, sizeof(buf)) > 0)
				;
		}
		SSL_free(ssl);
	}
	ERR_clear_error();
	close(fd);
	return NULL;
}

static int srv_up(struct srv *s, const struct pki *leaf)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);

	memset(s, 0, sizeof(*s));
	s->ctx = SSL_CTX_new(TLS_server_method());
	if (s->ctx == NULL || SSL_CTX_use_certificate(s->ctx, leaf->cert) != 1 ||
	    SSL_CTX_use_PrivateKey(s->ctx, leaf->key) != 1)
		return -1;
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(s->lfd, 4) != 0 ||
	    getsockname(s->lfd, (struct sockaddr *)&sa, &len) != 0)
		return -1;
	s->port = ntohs(sa.sin_port);
	return pthread_create(&s->th, NULL, srv_main, s) == 0 ? 0 : -1;
}

static void srv_down(struct srv *s)
{
	/* a client that never connected: unblock accept() */
	shutdown(s->lfd, SHUT_RDWR);
	pthread_join(s->th, NULL);
	close(s->lfd);
	SSL_CTX_free(s->ctx);
}

/*
 * Connects to 127.0.0.1:port as cb_tls_* set it up for host, trusting
 * cafile.  Returns 0 when the handshake succeeded and the server's
 * greeting was read, else a negative cb_err with the reason.
 */
static int client(const char *cafile, const char *host, int port,
		  char *reason, size_t size)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct timeval tv = {5, 0};
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	char buf[8] = "";
	int fd = -1, err;

	reason[0] = '\0';
	err = cb_tls_client_ctx(&ctx, cafile, "test_ca_file", reason, size);
	if (err != 0)
		goto out;
	err = CB_E_IO;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto out;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ssl = SSL_new(ctx);
	if (ssl == NULL)
		goto out;
	err = cb_tls_prepare(ssl, host, reason, size);
	if (err != 0)
		goto out;
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1 || SSL_read(ssl, buf, 5) != 5) {
		cb_tls_reason(ssl, 0, reason, size);
		err = CB_E_TLS;
		goto out;
	}
	err = strncmp(buf, "hello", 5) == 0 ? 0 : CB_E_PROTO;
out:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	return err;
}

/* One server with leaf, one client for host; the outcome and reason. */
static int attempt(const struct pki *leaf, const char *cafile,
		   const char *host, char *reason, size_t size, struct srv *s)
{
	int err;

	if (srv_up(s, leaf) != 0) {
		snprintf(reason, size, "server set-up failed");
		return -1000;
	}
	err = client(cafile, host, s->port, reason, size);
	srv_down(s);
	printf("# %s -> %d %s\n", host, err, reason);
	return err;
}

static void test_right_name_and_address_accepted(void)
{
	struct pki leaf = {0};
	struct srv s;
	char reason[256];

	CHECK(make_cert(&leaf, "localhost", "DNS:localhost,IP:127.0.0.1", &ca,
			-3600, 86400) == 0);
	CHECK_INT(attempt(&leaf, ca_file, "localhost", reason, sizeof(reason),
			  &s), 0);
	CHECK(s.accepted);
	CHECK_INT(attempt(&leaf, ca_file, "127.0.0.1", reason, sizeof(reason),
			  &s), 0);
	CHECK(s.accepted);
	pki_free(&leaf);
}

static void test_wrong_host_refused(void)
{
	struct pki leaf = {0};
	struct srv s;
	char reason[256];

	CHECK(make_cert(&leaf, "localhost", "DNS:localhost,IP:127.0.0.1", &ca,
			-3600, 86400) == 0);
	CHECK_INT(attempt(&leaf, ca_file, "other.example.test", reason,
			  sizeof(reason), &s), CB_E_TLS);
	CHECK(!s.accepted);
	CHECK(strcasestr(reason, "certificate verify failed") != NULL);
	CHECK(strcasestr(reason, "hostname mismatch") != NULL);
	pki_free(&leaf);
}

/* The socket goes to 127.0.0.1, the certificate names 127.0.0.1, but we
 * meant 127.0.0.2: refused (an address is checked as an address). */
static void test_wrong_ip_refused(void)
{
	struct pki leaf = {0};
	struct srv s;
	char reason[256];

	CHECK(make_cert(&leaf, "localhost", "DNS:localhost,IP:127.0.0.1", &ca,
			-3600, 86400) == 0);
	CHECK_INT(attempt(&leaf, ca_file, "127.0.0.2", reason, sizeof(reason),
			  &s), CB_E_TLS);
	CHECK(!s.accepted);
	CHECK(strcasestr(reason, "IP address mismatch") != NULL);
	/* an address that is only a DNS name in the certificate: refused */
	pki_free(&leaf);
	CHECK(make_cert(&leaf, "127.0.0.1", "DNS:127.0.0.1", &ca, -3600,
			86400) == 0);
	CHECK_INT(attempt(&leaf, ca_file, "127.0.0.1", reason, sizeof(reason),
			  &s), CB_E_TLS);
	CHECK(strcasestr(reason, "IP address mismatch") != NULL);
	pki_free(&leaf);
}

static void test_expired_refused(void)
{
	struct pki leaf = {0};
	struct srv s;
	char reason[256];

	CHECK(make_cert(&leaf, "localhost", "DNS:localhost", &ca, -2 * 86400,
			-86400) == 0);
	CHECK_INT(attempt(&leaf, ca_file, "localhost", reason, sizeof(reason),
			  &s), CB_E_TLS);
	CHECK(!s.accepted);
	CHECK(strcasestr(reason, "certificate has expired") != NULL);
	pki_free(&leaf);
}

static void test_untrusted_ca_refused(void)
{
	struct pki leaf = {0};
	struct srv s;
	char reason[256];

	CHECK(make_cert(&leaf, "localhost", "DNS:localhost", &other_ca, -3600,
			86400) == 0);
	CHECK_INT(attempt(&leaf, ca_file, "localhost", reason, sizeof(reason),
			  &s), CB_E_TLS);
	CHECK(!s.accepted);
	CHECK(strcasestr(reason, "unable to get local issuer certificate") !=
	      NULL);
	/* the same certificate with its own CA trusted: accepted */
	CHECK_INT(attempt(&leaf, other_ca_file, "localhost", reason,
			  sizeof(reason), &s), 0);
	pki_free(&leaf);
}

/* One wildcard policy: "*.example.test" covers one label; a partial
 * wildcard ("f*.example.test") never matches. */
static void test_wildcard_policy(void)
{
	struct pki full = {0}, partial = {0};
	struct srv s;
	char reason[256];

	CHECK(make_cert(&full, "wild", "DNS:*.example.test", &ca, -3600,
			86400) == 0);
	CHECK(make_cert(&partial, "partial", "DNS:f*.example.test", &ca, -3600,
			86400) == 0);
	CHECK_INT(attempt(&full, ca_file, "foo.example.test", reason,
			  sizeof(reason), &s), 0);
	CHECK_INT(attempt(&full, ca_file, "a.foo.example.test", reason,
			  sizeof(reason), &s), CB_E_TLS);
	CHECK(strcasestr(reason, "hostname mismatch") != NULL);
	CHECK_INT(attempt(&partial, ca_file, "foo.example.test", reason,
			  sizeof(reason), &s), CB_E_TLS);
	CHECK(strcasestr(reason, "hostname mismatch") != NULL);
	pki_free(&full);
	pki_free(&partial);
}

static void test_sni_for_names_only(void)
{
	struct pki leaf = {0};
	struct srv s;
	char reason[256];

	CHECK(make_cert(&leaf, "localhost", "DNS:localhost,IP:127.0.0.1", &ca,
			-3600, 86400) == 0);
	CHECK_INT(attempt(&leaf, ca_file, "localhost", reason, sizeof(reason),
			  &s), 0);
	CHECK_STR(s.sni, "localhost");
	CHECK_INT(attempt(&leaf, ca_file, "127.0.0.1", reason, sizeof(reason),
			  &s), 0);
	CHECK_STR(s.sni, "");
	pki_free(&leaf);
}

/* A CA file that cannot be loaded is a configuration error naming it. */
static void test_bad_ca_file(void)
{
	char path[160], err[256];
	SSL_CTX *ctx = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "%s/missing.pem", tmpdir);
	CHECK_INT(cb_tls_client_ctx(&ctx, path, "irc_ca_file", err,
				    sizeof(err)), CB_E_CONFIG);
	CHECK(ctx == NULL);
	CHECK(strstr(err, "irc_ca_file") != NULL && strstr(err, path) != NULL);
	snprintf(path, sizeof(path), "%s/garbage.pem", tmpdir);
	f = fopen(path, "w");
	CHECK(f != NULL);
	fputs("not a certificate\n", f);
	fclose(f);
	CHECK_INT(cb_tls_client_ctx(&ctx, path, "irc_ca_file", err,
				    sizeof(err)), CB_E_CONFIG);
	unlink(path);
	/* the system store (whatever it holds) makes a context */
	CHECK_INT(cb_tls_client_ctx(&ctx, NULL, "irc_ca_file", err,
				    sizeof(err)), 0);
	CHECK(ctx != NULL);
	SSL_CTX_free(ctx);
}

/*
 * The defect of issue 17: when the name or address check cannot be armed
 * (SSL_set1_host / X509_VERIFY_PARAM_set1_ip_asc fail; here on purpose,
 * see tls_fault.h), cb_tls_prepare says so and the client does not
 * connect; the server never sees a handshake.  A name too long for SNI (a
 * real failure of SSL_set_tlsext_host_name) is refused as well.
 */
static void test_unarmed_check_refuses(void)
{
	struct pki leaf = {0};
	struct srv s;
	char reason[256], longname[300];
	int err;

	CHECK(make_cert(&leaf, "localhost", "DNS:localhost,IP:127.0.0.1", &ca,
			-3600, 86400) == 0);
	/* CHECK_OR: a failure must not leave a fault armed for later tests */
	atomic_store(&t_fail_set1_host, 1);
	err = attempt(&leaf, ca_file, "localhost", reason, sizeof(reason), &s);
	atomic_store(&t_fail_set1_host, 0);
	CHECK_OR(err == CB_E_TLS && !s.accepted, out);
	CHECK_OR(strstr(reason, "cannot check the certificate against "
				"localhost") != NULL,
		 out);
	atomic_store(&t_fail_set1_ip, 1);
	err = attempt(&leaf, ca_file, "127.0.0.1", reason, sizeof(reason), &s);
	atomic_store(&t_fail_set1_ip, 0);
	CHECK_OR(err == CB_E_TLS && !s.accepted, out);
	CHECK_OR(strstr(reason, "cannot check the certificate against "
				"127.0.0.1") != NULL,
		 out);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	err = attempt(&leaf, ca_file, longname, reason, sizeof(reason), &s);
	CHECK_OR(err == CB_E_TLS && !s.accepted, out);
	CHECK_OR(strstr(reason, "cannot check the certificate") != NULL, out);
	/* and without a fault the same certificate is accepted */
	CHECK_OR(attempt(&leaf, ca_file, "localhost", reason, sizeof(reason),
			 &s) == 0,
		 out);
out:
	pki_free(&leaf);
}

static int setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cb-test-tls-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(ca_file, sizeof(ca_file), "%s/ca.pem", tmpdir);
	snprintf(other_ca_file, sizeof(other_ca_file), "%s/other-ca.pem",
		 tmpdir);
	if (make_cert(&ca, "chatbattle test CA", NULL, NULL, -3600, 86400) != 0 ||
	    make_cert(&other_ca, "another CA", NULL, NULL, -3600, 86400) != 0)
		return -1;
	return write_pem(ca_file, ca.cert) == 0 &&
			       write_pem(other_ca_file, other_ca.cert) == 0
		       ? 0
		       : -1;
}

int main(void)
{
	int rc = setup();

	if (rc != 0) {
		printf("not ok - set-up (certificates in %s)\n", tmpdir);
		return 1;
	}
	RUN(test_right_name_and_address_accepted);
	RUN(test_wrong_host_refused);
	RUN(test_wrong_ip_refused);
	RUN(test_expired_refused);
	RUN(test_untrusted_ca_refused);
	RUN(test_wildcard_policy);
	RUN(test_sni_for_names_only);
	RUN(test_bad_ca_file);
	RUN(test_unarmed_check_refuses);
	unlink(ca_file);
	unlink(other_ca_file);
	rmdir(tmpdir);
	pki_free(&ca);
	pki_free(&other_ca);
	return test_done();
}
