/*
 * err.c - cb_strerror() and friends, generated from CB_ERR_LIST in err.h.
 */
#include <stdarg.h>
#include <stdio.h>

#include "chatbattle/err.h"

const char *cb_strerror(int err)
{
	switch (err) {
#define CB_ERR_STR(name, value, desc)                                          \
	case (value):                                                          \
		return (desc);
		CB_ERR_LIST(CB_ERR_STR)
#undef CB_ERR_STR
	}
	return "unknown error";
}

const char *cb_errname(int err)
{
	switch (err) {
#define CB_ERR_NAME(name, value, desc)                                         \
	case (value):                                                          \
		return "CB_E_" #name;
		CB_ERR_LIST(CB_ERR_NAME)
#undef CB_ERR_NAME
	}
	return "CB_E_UNKNOWN";
}

int cb_seterr(char *errstr, size_t errstr_size, int err, const char *fmt, ...)
{
	va_list ap;

	if (errstr == NULL || errstr_size == 0)
		return err;
	va_start(ap, fmt);
	vsnprintf(errstr, errstr_size, fmt, ap);
	va_end(ap);
	return err;
}
