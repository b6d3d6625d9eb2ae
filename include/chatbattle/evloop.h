/*
 * evloop.h - the event loop of a module's libevent thread (src/evloop.c),
 * made once for irc and cql: an event base, the eventfd that wakes it to
 * stop (cb_thread_stop writes it; its event breaks the loop) and a DNS base
 * for the connections it makes.  Made and freed on the main thread; the
 * module's thread owns the loop in between (cb_thread_start orders the
 * hand-over).
 */
#ifndef CHATBATTLE_EVLOOP_H
#define CHATBATTLE_EVLOOP_H

#include <stddef.h>

struct event;
struct event_base;
struct evdns_base;

struct cb_evloop {
	struct event_base *base;
	struct evdns_base *dns;
	int stop_efd;           /* -1 when not made */
	struct event *stop_ev;  /* on stop_efd: drains it, breaks the loop */
};

/*
 * Makes l's base, stop eventfd (non-blocking) with its event armed, and
 * DNS base, with the name servers of /etc/resolv.conf when it can be read,
 * else without any (addresses still connect).  Returns 0, or CB_E_NOMEM
 * "cannot create the event loop" with nothing left to free.  l must stay
 * where it is while the loop exists (the stop event points at it).  The
 * caller stops the thread and frees its own events before cb_evloop_free.
 */
int cb_evloop_new(struct cb_evloop *l, char *errstr, size_t errstr_size);

/* Frees what cb_evloop_new made; does nothing for a zeroed l whose
 * stop_efd is -1, or a second time. */
void cb_evloop_free(struct cb_evloop *l);

#endif
