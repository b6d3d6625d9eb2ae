/*
 * chatmsg.h - Twitch IRC lines -> the records of docs/contracts.md (module
 * "chatmsg", src/chatmsg.c): the ChatMessage and event JSON of the topic
 * twitch-chat-messages, and the dead-letter JSON of twitch-chat-dlq.
 * Hand-written JSON into a caller buffer (json.h): no allocation, no
 * jansson, no clock (the caller passes received_ms).  Any thread.
 */
#ifndef CHATBATTLE_CHATMSG_H
#define CHATBATTLE_CHATMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatbattle/irc_msg.h"

/* A buffer of this size holds the JSON of any ordinary Twitch line up to
 * CB_IRC_LINE_MAX; a pathological one (every byte escaped 6 times, emote
 * ranges repeating the whole text) is reported as CB_E_TOOBIG. */
#define CB_CHATMSG_BUF_SIZE (64u * 1024u)

/* Bytes cb_chatmsg_dlq() needs at most for a raw input of n bytes and a
 * reason and stage of r bytes together. */
#define CB_CHATMSG_DLQ_MAX(n, r) (6u * (n) + 6u * (r) + 160u)

/* What cb_chatmsg_from_irc() returns when it did not fail. */
enum {
	CB_CHATMSG_NONE = 0,  /* not a record (PING, ROOMSTATE, ...) */
	CB_CHATMSG_CHAT = 1,  /* a ChatMessage ("type":"message") */
	CB_CHATMSG_EVENT = 2, /* an event (sub, raid, ban, clearmsg, ...) */
};

/* The "type" of a record (json "type"). */
enum cb_chatmsg_type {
	CB_CT_MESSAGE = 0,
	CB_CT_SUB,
	CB_CT_RESUB,
	CB_CT_SUBGIFT,
	CB_CT_SUBMYSTERYGIFT,
	CB_CT_GIFTPAIDUPGRADE,
	CB_CT_RAID,
	CB_CT_ANNOUNCEMENT,
	CB_CT_RITUAL,
	CB_CT_BITSBADGETIER,
	CB_CT_VIEWERMILESTONE,
	CB_CT_USERNOTICE, /* any other msg-id */
	CB_CT_BAN,
	CB_CT_TIMEOUT,
	CB_CT_CLEARCHAT,
	CB_CT_CLEARMSG,
	CB_CT_COUNT
};

/* The JSON "type" string of t ("message", "sub", ...). */
const char *cb_chatmsg_type_name(int type);

struct cb_chatmsg {
	int type;                /* enum cb_chatmsg_type */
	char channel[26];        /* Kafka key: normalized login, NUL-ended */
	size_t channel_len;
	const char *json;        /* the record, inside the caller's buf */
	size_t json_len;
	/* Shared-chat duplicates carry the same source-id in every channel of
	 * the session: dedupe on this (source-id, else id, else the derived
	 * message_id text inside json).  Points into the line or buf. */
	const char *dedupe;
	size_t dedupe_len;
	uint8_t message_id[16];  /* big-endian UUID bytes */
	bool message_id_derived; /* no usable id tag: name-based UUID v5 */
	int64_t timestamp_ms;    /* the JSON "timestamp" */
};

/*
 * Turns a parsed line into its Kafka record, written into buf[0..cap).
 * Returns CB_CHATMSG_CHAT for a PRIVMSG, CB_CHATMSG_EVENT for USERNOTICE,
 * CLEARCHAT and CLEARMSG when emit_events (else CB_CHATMSG_NONE),
 * CB_CHATMSG_NONE for everything that is no record (PING, NOTICE,
 * ROOMSTATE...), or a negative cb_err with the reason for a line that
 * belongs in the dead-letter topic: CB_E_PARSE (no channel, a channel that
 * is not a Twitch login, no text or empty text) or CB_E_TOOBIG (the JSON
 * does not fit in cap).  received_ms is the wall clock when the line was
 * read ("received_at", and "timestamp" when tmi-sent-ts is missing or not
 * positive).  out is filled for CHAT and EVENT; on an error out->channel
 * holds the channel when it was valid (no text, empty text, CB_E_TOOBIG:
 * the dead letter's key), else "".  buf holds no NUL.  Thread-safe (no
 * shared state).
 */
int cb_chatmsg_from_irc(const struct cb_irc_msg *m, int64_t received_ms,
			bool emit_events, struct cb_chatmsg *out, char *buf,
			size_t cap, char *errstr, size_t errstr_size);

/* The same from an already decoded line (the irc thread decodes control
 * lines itself); t must come from cb_twitch_decode() of m. */
int cb_chatmsg_from_twitch(const struct cb_irc_msg *m,
			   const struct cb_twitch_msg *t, int64_t received_ms,
			   bool emit_events, struct cb_chatmsg *out, char *buf,
			   size_t cap, char *errstr, size_t errstr_size);

/*
 * The dead-letter record {"reason","stage","raw" or "raw_base64",
 * "received_at"} of docs/contracts.md into buf[0..cap); *len gets its
 * length.  raw is written as text when it is valid UTF-8, else as
 * raw_base64.  Returns 0, or CB_E_TOOBIG when it does not fit (see
 * CB_CHATMSG_DLQ_MAX); reason and stage may be NULL (left out).
 */
int cb_chatmsg_dlq(const char *raw, size_t raw_len, const char *reason,
		   const char *stage, int64_t received_ms, char *buf,
		   size_t cap, size_t *len);

/*
 * The name-based (version 5, SHA-1) UUID chatbattle derives when a line has
 * no usable id tag: namespace CB_CHATMSG_NS, name = channel NUL timestamp
 * (decimal) NUL user NUL text.  Same line, same UUID, so replays stay
 * idempotent in Cassandra.
 */
void cb_chatmsg_derive_uuid(const char *channel, size_t channel_len,
			    int64_t timestamp_ms, const char *user,
			    size_t user_len, const char *text, size_t text_len,
			    uint8_t uuid[16]);

/* Parses a canonical 8-4-4-4-12 hex UUID (either case); false otherwise. */
bool cb_chatmsg_parse_uuid(const char *s, size_t len, uint8_t uuid[16]);

/* Writes the 36-char lower-case text of uuid into out (no NUL). */
void cb_chatmsg_format_uuid(const uint8_t uuid[16], char out[36]);

#endif
