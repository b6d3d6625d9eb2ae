/*
 * err.h - the one list of chatbattle error codes.
 *
 * Every function that can fail returns 0 or a negative enum cb_err, and puts
 * a sentence a person can act on into an (errstr, errstr_size) pair passed as
 * its last two arguments.  A foreign error (errno, librdkafka, OpenSSL,
 * libmicrohttpd, a CQL ERROR frame) is converted once, where it enters, and
 * logged there.  The list below generates both the enum and cb_strerror().
 */
#ifndef CHATBATTLE_ERR_H
#define CHATBATTLE_ERR_H

#include <stddef.h>

/* X(NAME, value, description) */
#define CB_ERR_LIST(X)                                                         \
	X(OK, 0, "success")                                                    \
	X(NOMEM, -1, "out of memory")                                          \
	X(INVAL, -2, "invalid argument")                                       \
	X(RANGE, -3, "value out of range")                                     \
	X(PARSE, -4, "malformed input")                                        \
	X(TOOBIG, -5, "input exceeds its size limit")                          \
	X(AGAIN, -6, "resource temporarily unavailable")                       \
	X(FULL, -7, "queue full")                                              \
	X(EMPTY, -8, "queue empty")                                            \
	X(IO, -9, "input/output error")                                        \
	X(CLOSED, -10, "connection closed")                                    \
	X(TIMEOUT, -11, "timed out")                                           \
	X(PROTO, -12, "protocol violation")                                    \
	X(AUTH, -13, "authentication failed")                                  \
	X(TLS, -14, "TLS error")                                               \
	X(NOTFOUND, -15, "not found")                                          \
	X(EXISTS, -16, "already exists")                                       \
	X(CONFIG, -17, "configuration error")                                  \
	X(KAFKA, -18, "Kafka error")                                           \
	X(CQL, -19, "Cassandra error")                                         \
	X(HTTP, -20, "HTTP error")                                             \
	X(STOPPED, -21, "shutting down")                                       \
	X(UNSUPPORTED, -22, "not supported")                                   \
	X(FATAL, -23, "fatal error")

enum cb_err {
#define CB_ERR_ENUM(name, value, desc) CB_E_##name = (value),
	CB_ERR_LIST(CB_ERR_ENUM)
#undef CB_ERR_ENUM
};

/* Returns a static description of err (any int; unknown codes get one too). */
const char *cb_strerror(int err);

/* Returns the symbolic name ("CB_E_TIMEOUT") of err, or "CB_E_UNKNOWN". */
const char *cb_errname(int err);

/*
 * Formats a reason into errstr (when errstr is not NULL and errstr_size > 0)
 * and returns err unchanged, so that a failure path reads
 *     return cb_seterr(errstr, errstr_size, CB_E_RANGE, "%s: must be ...", n);
 */
int cb_seterr(char *errstr, size_t errstr_size, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
