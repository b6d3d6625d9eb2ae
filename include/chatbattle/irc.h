/*
 * irc.h - the IRC thread (module "irc", src/irc.c): TLS connections to
 * Twitch, login, JOIN pacing, PING/PONG, RECONNECT and backoff.  It pushes
 * ChatMessage/event/DLQ records (record.h, struct cb_out_hdr) into
 * app->irc_out and takes JOIN/PART/SET commands from app->irc_cmd.
 */
#ifndef CHATBATTLE_IRC_H
#define CHATBATTLE_IRC_H

#include <stddef.h>
#include <stdint.h>

struct cb_app;
struct cb_irc;

/* Module entry points for cb_app_modules[] (app.h). */
int cb_irc_start(struct cb_app *app, char *errstr, size_t errstr_size);
void cb_irc_stop(struct cb_app *app);

enum cb_irc_chan_state {
	CB_IRC_CHAN_PENDING = 0, /* waiting for a connection or JOIN slot */
	CB_IRC_CHAN_JOINING,     /* JOIN sent, no confirmation yet */
	CB_IRC_CHAN_JOINED,      /* receiving chat */
	CB_IRC_CHAN_FAILED,      /* Twitch refused it (e.g. suspended) */
};

struct cb_irc_channel_status {
	char channel[26];
	int state;               /* enum cb_irc_chan_state */
	int connection;          /* index of the connection carrying it */
	int64_t since_ms;        /* epoch ms of the last state change */
	uint64_t messages;       /* chat messages received */
	char reason[96];         /* why FAILED, else "" */
};

/*
 * Any thread (HTTP): copies the state of up to max monitored channels into
 * out, sorted by name, and returns how many channels there are in total.
 * Never blocks the irc thread for longer than a copy.
 */
size_t cb_irc_status(struct cb_irc *irc, struct cb_irc_channel_status *out,
		     size_t max);

#endif
