/*
 * tls_fault.h - makes the OpenSSL calls that arm a certificate's name
 * check fail on demand, to prove that a check which cannot be armed
 * refuses the connection (the defect of issue 17: irc.c and oauth.c
 * ignored these results and went on with the chain verified only).
 *
 * Include it in exactly one file of a test program: it defines
 * SSL_set1_host and X509_VERIFY_PARAM_set1_ip_asc in the executable, which
 * the linker then prefers to libssl's for every object of the program
 * (src/ included); while the flag is clear each call goes on to the real
 * function (dlsym RTLD_NEXT).  The flags are atomic: the irc thread reads
 * them.
 */
#ifndef CB_TLS_FAULT_H
#define CB_TLS_FAULT_H

#include <dlfcn.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdatomic.h>

static atomic_int t_fail_set1_host, t_fail_set1_ip;

int SSL_set1_host(SSL *s, const char *hostname)
{
	int (*real)(SSL *, const char *);

	if (atomic_load(&t_fail_set1_host))
		return 0;
	*(void **)&real = dlsym(RTLD_NEXT, "SSL_set1_host");
	return real(s, hostname);
}

int X509_VERIFY_PARAM_set1_ip_asc(X509_VERIFY_PARAM *param, const char *ipasc)
{
	int (*real)(X509_VERIFY_PARAM *, const char *);

	if (atomic_load(&t_fail_set1_ip))
		return 0;
	*(void **)&real = dlsym(RTLD_NEXT, "X509_VERIFY_PARAM_set1_ip_asc");
	return real(param, ipasc);
}

#endif
