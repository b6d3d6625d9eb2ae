/*
 * evloop.c - the event base, stop eventfd and DNS base of a module's
 * libevent thread (see evloop.h).  Made and freed on the main thread; the
 * stop callback runs on the module's thread.
 */
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "chatbattle/err.h"
#include "chatbattle/evloop.h"
#include "chatbattle/ring.h"

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cb_evloop *l = arg;

	(void)what;
	cb_ring_drain_fd(fd);
	event_base_loopbreak(l->base);
}

int cb_evloop_new(struct cb_evloop *l, char *errstr, size_t errstr_size)
{
	l->dns = NULL;
	l->stop_ev = NULL;
	l->base = event_base_new();
	l->stop_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->base == NULL || l->stop_efd < 0)
		goto fail;
	l->stop_ev = event_new(l->base, l->stop_efd, EV_READ | EV_PERSIST,
			       stop_cb, l);
	if (l->stop_ev == NULL || event_add(l->stop_ev, NULL) != 0)
		goto fail;
	l->dns = evdns_base_new(l->base,
				EVDNS_BASE_INITIALIZE_NAMESERVERS |
					EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (l->dns == NULL) /* no resolv.conf: addresses still work */
		l->dns = evdns_base_new(l->base,
					EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (l->dns == NULL)
		goto fail;
	return 0;
fail:
	cb_evloop_free(l);
	return cb_seterr(errstr, errstr_size, CB_E_NOMEM,
			 "cannot create the event loop");
}

void cb_evloop_free(struct cb_evloop *l)
{
	if (l->stop_ev != NULL)
		event_free(l->stop_ev);
	if (l->dns != NULL)
		evdns_base_free(l->dns, 0);
	if (l->base != NULL)
		event_base_free(l->base);
	if (l->stop_efd >= 0)
		close(l->stop_efd);
	l->stop_ev = NULL;
	l->dns = NULL;
	l->base = NULL;
	l->stop_efd = -1;
}
