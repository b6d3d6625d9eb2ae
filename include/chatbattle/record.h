/*
 * record.h - the records that travel through the rings between threads.
 *
 * Every record is a fixed header followed by variable bytes, written in place
 * into ring space (cb_ring_reserve) and read in place (cb_ring_read): no
 * malloc per message.  Headers are naturally aligned (ring records start
 * 8-aligned).  Strings are not NUL-terminated; lengths say where they end.
 */
#ifndef CHATBATTLE_RECORD_H
#define CHATBATTLE_RECORD_H

#include <stdint.h>

/* ---- irc -> producer (ring app->irc_out) ---- */

enum cb_out_kind {
	CB_OUT_CHAT = 1,  /* ChatMessage JSON for the messages topic */
	CB_OUT_EVENT = 2, /* event JSON (sub, raid, ban...) for the messages topic */
	CB_OUT_DLQ = 3,   /* dead-letter JSON for the DLQ topic */
};

struct cb_out_hdr {
	uint8_t kind;       /* enum cb_out_kind */
	uint8_t key_len;    /* channel login, 0..25; 0 = no key */
	uint16_t reserved;
	uint32_t value_len; /* JSON bytes */
	int64_t recv_us;    /* CLOCK_REALTIME microseconds the line arrived */
	/* followed by key_len bytes of key, then value_len bytes of value */
};

/* ---- aggregator -> cql (ring app->rows) ---- */

/* One raw_chat_messages row, tagged with the Kafka record it came from. */
struct cb_row_hdr {
	int32_t partition;     /* Kafka partition of twitch-chat-messages */
	uint32_t generation;   /* aggregator assignment generation */
	int64_t offset;        /* Kafka offset */
	int64_t timestamp_ms;  /* tmi-sent-ts, the clustering column */
	uint8_t message_id[16]; /* uuid, big-endian bytes */
	uint16_t channel_len;
	uint16_t user_id_len;
	uint16_t username_len;
	uint16_t emote_count;
	uint32_t message_len;
	uint32_t emotes_len;   /* bytes of the emote block */
	/* followed by channel, user_id, username, message, then the emote
	 * block: emote_count times (uint16_t len, len bytes), unaligned */
};

/* ---- cql -> aggregator (ring app->acks) ---- */

/*
 * "Every row of this partition and generation up to and including offset is
 * stored in Cassandra."  Per partition the acked offsets only grow.
 */
struct cb_ack {
	int32_t partition;
	uint32_t generation;
	int64_t offset;
};

/* ---- http/main -> irc (ring app->irc_cmd) ---- */

enum cb_irc_op {
	CB_IRC_JOIN = 1,
	CB_IRC_PART = 2,
	CB_IRC_SET = 3, /* the channel list is replaced (SIGHUP reload); a
			 * SET record per channel, ended by SET_END */
	CB_IRC_SET_END = 4,
};

struct cb_irc_cmd {
	uint8_t op;           /* enum cb_irc_op */
	char channel[26];     /* normalized login, NUL-terminated */
};

#endif
