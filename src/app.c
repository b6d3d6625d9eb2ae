/*
 * app.c - the modules `chatbattle run` starts, in order (see app.h), and the
 * serialized producer side of the IRC command ring.  Each module adds its
 * row to cb_app_modules; main.c stops them in reverse order.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "chatbattle/agg.h"
#include "chatbattle/app.h"
#include "chatbattle/err.h"
#include "chatbattle/http.h"
#include "chatbattle/irc.h"
#include "chatbattle/log.h"
#include "chatbattle/producer.h"
#include "chatbattle/record.h"
#include "chatbattle/ring.h"
#include "chatbattle/statsd.h"
#include "chatbattle/viewers.h"
#include "chatbattle/cql.h"

const struct cb_module cb_app_modules[] = {
	{"cql", "aggregate", cb_cql_start, cb_cql_stop},
	{"statsd", "serve", cb_statsd_start, cb_statsd_stop},
	{"agg", "aggregate", cb_agg_start, cb_agg_stop},
	{"producer", "ingest", cb_producer_start, cb_producer_stop},
	{"irc", "ingest", cb_irc_start, cb_irc_stop},
	{"viewers", "serve", cb_viewers_start, cb_viewers_stop},
	{"http", "serve", cb_http_start, cb_http_stop},
	{NULL, NULL, NULL, NULL},
};

static pthread_mutex_t irc_cmd_lock = PTHREAD_MUTEX_INITIALIZER;

int cb_app_irc_command(struct cb_app *app, const struct cb_irc_cmd *cmds,
		       size_t n)
{
	int err = 0;
	size_t i;

	pthread_mutex_lock(&irc_cmd_lock);
	for (i = 0; i < n; i++) {
		void *p = cb_ring_reserve(app->irc_cmd, sizeof(cmds[i]));

		if (p == NULL) {
			err = CB_E_FULL;
			break;
		}
		memcpy(p, &cmds[i], sizeof(cmds[i]));
	}
	/* All or nothing would need a rollback; a partial list is still
	 * consistent because SET lists are only applied at SET_END. */
	cb_ring_commit(app->irc_cmd);
	pthread_mutex_unlock(&irc_cmd_lock);
	return err;
}

void cb_app_request_stop(struct cb_app *app, const char *reason)
{
	uint64_t one = 1;

	if (!atomic_exchange(&app->stop_requested, true))
		cb_warn("main", "stopping: %s", reason);
	if (write(app->wake_fd, &one, sizeof(one)) < 0) {
		/* The counter is already non-zero: main is being woken. */
	}
}
