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

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The most Kafka partitions topic_messages (and topic_stats, which is
 * co-partitioned) may have: the aggregator refuses to start above it and
 * the Cassandra writer tracks acks for partitions 0..CB_PARTITIONS_MAX-1.
 * One constant, so that the two limits cannot disagree.
 */
#define CB_PARTITIONS_MAX 1024

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

/*
 * The layouts above cross threads through the rings (ring.c: every record
 * starts 8-aligned) and are read in place by another module: a change to
 * one of them must be a change on purpose.  Each header keeps the 8-byte
 * alignment its 64-bit fields need and has no hidden padding.
 */
static_assert(sizeof(struct cb_out_hdr) == 16, "cb_out_hdr layout");
static_assert(offsetof(struct cb_out_hdr, recv_us) == 8, "cb_out_hdr layout");
static_assert(sizeof(struct cb_row_hdr) == 56, "cb_row_hdr layout");
static_assert(offsetof(struct cb_row_hdr, offset) == 8, "cb_row_hdr layout");
static_assert(offsetof(struct cb_row_hdr, message_id) == 24,
	      "cb_row_hdr layout");
static_assert(offsetof(struct cb_row_hdr, emotes_len) == 52,
	      "cb_row_hdr layout");
static_assert(sizeof(struct cb_ack) == 16, "cb_ack layout");
static_assert(offsetof(struct cb_ack, offset) == 8, "cb_ack layout");
static_assert(sizeof(struct cb_irc_cmd) == 27, "cb_irc_cmd layout");
static_assert(sizeof(((struct cb_irc_cmd *)0)->channel) == 26,
	      "a channel login is at most 25 bytes plus NUL");
static_assert(CB_PARTITIONS_MAX > 0 && CB_PARTITIONS_MAX <= INT32_MAX,
	      "a partition number fits cb_row_hdr.partition");

#endif
