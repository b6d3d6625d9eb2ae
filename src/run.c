/*
 * run.c - `chatbattle run`, the daemon: creates the rings, starts the modules
 * of cb_app_modules[] in order, then waits in the main thread for signals
 * (SIGINT/SIGTERM stop, SIGHUP reloads the channel list), feeds the systemd
 * watchdog, and stops the modules in reverse order.
 *
 * Signals are blocked before any thread exists, so every thread inherits the
 * mask and only this thread reads them, through a signalfd.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "chatbattle/app.h"
#include "chatbattle/commands.h"
#include "chatbattle/config.h"
#include "chatbattle/err.h"
#include "chatbattle/log.h"
#include "chatbattle/metrics.h"
#include "chatbattle/record.h"
#include "chatbattle/ring.h"
#include "chatbattle/sd.h"

#ifndef CB_VERSION
#define CB_VERSION "0.0.0"
#endif

/* Ring sizes: about 50 ms of records at 75,000 messages/s, small enough
 * for the 64 MiB RSS budget (a ring's pages all become resident once it
 * has wrapped).  The queues behind them (librdkafka's, the aggregator's
 * FIFOs) absorb the longer waits. */
#define RING_IRC_OUT_BYTES (2u << 20)
#define RING_ROWS_BYTES (2u << 20)
#define RING_ACKS_BYTES (256u << 10)
#define RING_IRC_CMD_BYTES (64u << 10)

static int saved_argc;
static char **saved_argv;

void cb_run_save_argv(int argc, char **argv)
{
	saved_argc = argc;
	saved_argv = argv;
}

/* SIGHUP: re-read the settings and hand the new channel list to irc. */
static void reload_channels(struct cb_app *app)
{
	struct cb_config fresh;
	struct cb_irc_cmd *cmds = NULL;
	char errstr[1024];
	size_t n;
	int err;

	err = cb_config_init(&fresh, errstr, sizeof(errstr));
	if (err == 0)
		err = cb_config_load(&fresh, saved_argc, saved_argv, errstr,
				     sizeof(errstr));
	if (err != 0) {
		cb_error("main", "reload: %s (keeping the current channels)",
			 errstr);
		goto out;
	}
	n = fresh.channel.n;
	cmds = calloc(n + 1, sizeof(*cmds));
	if (cmds == NULL) {
		cb_error("main", "reload: out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		cmds[i].op = CB_IRC_SET;
		snprintf(cmds[i].channel, sizeof(cmds[i].channel), "%s",
			 fresh.channel.v[i]);
	}
	cmds[n].op = CB_IRC_SET_END;
	if (cb_app_irc_command(app, cmds, n + 1) != 0)
		cb_error("main", "reload: command queue full, try again");
	else
		cb_info("main", "reload: %zu channel(s)", n);
out:
	free(cmds);
	cb_config_release(&fresh);
}

static int make_rings(struct cb_app *app, char *errstr, size_t errstr_size)
{
	int err;

	err = cb_ring_new(&app->irc_out, RING_IRC_OUT_BYTES, "irc_out",
			  errstr, errstr_size);
	if (err == 0)
		err = cb_ring_new(&app->rows, RING_ROWS_BYTES, "rows", errstr,
				  errstr_size);
	if (err == 0)
		err = cb_ring_new(&app->acks, RING_ACKS_BYTES, "acks", errstr,
				  errstr_size);
	if (err == 0)
		err = cb_ring_new(&app->irc_cmd, RING_IRC_CMD_BYTES, "irc_cmd",
				  errstr, errstr_size);
	if (err != 0)
		return err;
	cb_metrics_register_ring(app->irc_out);
	cb_metrics_register_ring(app->rows);
	cb_metrics_register_ring(app->acks);
	cb_metrics_register_ring(app->irc_cmd);
	return 0;
}

static void free_rings(struct cb_app *app)
{
	cb_ring_free(app->irc_out);
	cb_ring_free(app->rows);
	cb_ring_free(app->acks);
	cb_ring_free(app->irc_cmd);
}

int cb_cmd_run(const struct cb_config *cfg)
{
	struct cb_app app = {.cfg = cfg, .wake_fd = -1};
	char errstr[1024];
	sigset_t sigs;
	uint64_t watchdog_us = cb_sd_watchdog_usec();
	int sfd = -1, started = 0, running = 0, rc = CB_EXIT_OK;

	if (cfg->channel.n == 0 && cb_strlist_has(&cfg->roles, "ingest")) {
		fprintf(stderr,
			"chatbattle: no channel to watch: give --channel NAME "
			"(repeatable), set TWITCH_CHANNEL=a,b, or put "
			"\"channel = NAME\" in the config file (see "
			"chatbattle(1))\n");
		return CB_EXIT_USAGE;
	}

	/* Block the signals before any thread exists so all inherit it. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	app.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sfd < 0 || app.wake_fd < 0) {
		cb_log_errno(CB_LOG_ERROR, "main", errno,
			     "signalfd/eventfd");
		rc = CB_EXIT_FAILURE;
		goto out;
	}
	if (make_rings(&app, errstr, sizeof(errstr)) != 0) {
		cb_error("main", "%s", errstr);
		rc = CB_EXIT_FAILURE;
		goto out;
	}

	for (; cb_app_modules[started].name != NULL; started++) {
		const struct cb_module *m = &cb_app_modules[started];
		int err;

		if (!cb_strlist_has(&cfg->roles, m->role)) {
			cb_debug("main", "%s: role %s not enabled", m->name,
				 m->role);
			continue;
		}
		errstr[0] = '\0';
		err = m->start(&app, errstr, sizeof(errstr));
		if (err != 0) {
			cb_error("main", "%s: cannot start: %s", m->name,
				 errstr[0] ? errstr : cb_strerror(err));
			rc = CB_EXIT_FAILURE;
			goto stop;
		}
		running++;
		cb_debug("main", "%s started", m->name);
	}
	if (running == 0) {
		cb_error("main", "nothing to run: no module in roles");
		rc = CB_EXIT_FAILURE;
		goto stop;
	}
	cb_info("main", "chatbattle %s running: %zu channel(s), pid %d",
		CB_VERSION, cfg->channel.n, (int)getpid());
	cb_sd_notify("READY=1\nSTATUS=running");

	while (!atomic_load(&app.stop_requested)) {
		struct pollfd pfd[2] = {{.fd = sfd, .events = POLLIN},
					{.fd = app.wake_fd, .events = POLLIN}};
		int timeout_ms = watchdog_us ? (int)(watchdog_us / 2000) : -1;
		struct signalfd_siginfo si;

		if (watchdog_us)
			cb_sd_notify("WATCHDOG=1");
		if (poll(pfd, 2, timeout_ms) < 0 && errno != EINTR) {
			cb_log_errno(CB_LOG_ERROR, "main", errno, "poll");
			break;
		}
		if (!(pfd[0].revents & POLLIN))
			continue;
		if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
			continue;
		if (si.ssi_signo == SIGHUP) {
			cb_sd_notify("RELOADING=1");
			reload_channels(&app);
			cb_sd_notify("READY=1");
			continue;
		}
		cb_info("main", "signal %s: stopping",
			si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
		break;
	}
	cb_sd_notify("STOPPING=1");

stop:
	/* Reverse order: each consumer outlives the producers feeding it. */
	while (started-- > 0) {
		const struct cb_module *m = &cb_app_modules[started];

		if (!cb_strlist_has(&cfg->roles, m->role))
			continue;
		cb_debug("main", "stopping %s", m->name);
		m->stop(&app);
	}
	if (atomic_load(&app.stop_requested) && rc == CB_EXIT_OK)
		rc = CB_EXIT_FAILURE;
out:
	free_rings(&app);
	if (sfd >= 0)
		close(sfd);
	if (app.wake_fd >= 0)
		close(app.wake_fd);
	cb_info("main", "stopped");
	return rc;
}

