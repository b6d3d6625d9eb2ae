/*
 * thread.c - starting and joining a module's thread (see thread.h).  Runs
 * on the main thread; no state of its own.
 */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "chatbattle/err.h"
#include "chatbattle/thread.h"

int cb_thread_start(struct cb_thread *t, void *(*fn)(void *), void *arg,
		    const char *what, char *errstr, size_t errstr_size)
{
	int rc;

	t->started = false;
	rc = pthread_create(&t->id, NULL, fn, arg);
	if (rc != 0)
		return cb_seterr(errstr, errstr_size, CB_E_IO,
				 "cannot start the %s thread: %s", what,
				 strerror(rc));
	t->started = true;
	return 0;
}

void cb_thread_join(struct cb_thread *t)
{
	if (!t->started)
		return;
	pthread_join(t->id, NULL);
	t->started = false;
}

void cb_thread_stop(struct cb_thread *t, atomic_bool *stop, int wake_fd)
{
	uint64_t one = 1;

	atomic_store(stop, true);
	if (wake_fd >= 0 && write(wake_fd, &one, sizeof(one)) < 0) {
		/* already signalled: the counter is full */
	}
	cb_thread_join(t);
}
