/*
 * thread.h - the start and join of a module's one thread (src/thread.c),
 * written once for irc, producer, agg and statsd: each module owns a
 * struct cb_thread, starts it from its start function (main thread) and
 * joins it from its stop function after it has told the thread to stop.
 */
#ifndef CHATBATTLE_THREAD_H
#define CHATBATTLE_THREAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct cb_thread {
	pthread_t id;
	bool started; /* joined by cb_thread_join exactly once */
};

/*
 * Starts fn(arg).  Returns 0, or CB_E_IO with "cannot start the <what>
 * thread: <reason>" (then nothing runs and cb_thread_join does nothing).
 * pthread_create orders everything the caller wrote before it with what
 * the new thread reads.
 */
int cb_thread_start(struct cb_thread *t, void *(*fn)(void *), void *arg,
		    const char *what, char *errstr, size_t errstr_size);

/* Waits for a started thread to end (the caller has told it to stop);
 * does nothing for one that never started or was joined already. */
void cb_thread_join(struct cb_thread *t);

/* Sets *stop, wakes the thread through the eventfd wake_fd (-1: it polls
 * the flag by itself), then cb_thread_join. */
void cb_thread_stop(struct cb_thread *t, atomic_bool *stop, int wake_fd);

#endif
