/*
 * aggjson.h - the aggregator's input (src/aggjson.c): a validating,
 * allocation-free ChatMessage parser and the message-id UUIDs.  Pure code,
 * no threads; every function works on caller-provided memory.
 */
#ifndef CHATBATTLE_AGGJSON_H
#define CHATBATTLE_AGGJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A decoded string: points into the caller's scratch buffer (or into the
 * input for numbers given where text was expected).  p is NULL when the
 * field is absent or null. */
struct cb_jstr {
	const char *p;
	size_t len;
};

/*
 * The fields of a ChatMessage (or event) record the aggregator uses
 * (docs/contracts.md).  Unknown fields are validated and skipped.
 */
struct cb_chatmsg {
	struct cb_jstr channel_id, user_id, username, message, message_id, type;
	bool has_timestamp;
	int64_t timestamp_ms;   /* "timestamp": a number or a digit string */
	int64_t received_at_ms; /* "received_at", 0 when absent */
	uint16_t emote_count;   /* names in "emotes" (strings only) */
	uint32_t emotes_len;    /* bytes of the emote block */
	const uint8_t *emotes;  /* emote_count x (u16 little-endian len,
				 * bytes): the layout of struct cb_row_hdr */
};

/*
 * Parses one Kafka record value.  The whole input must be one valid JSON
 * value (RFC 8259, UTF-8, nesting at most 64 deep) and an object.
 * Decoded strings go to scratch, which must hold at least len bytes (a
 * decoded string is never longer than its JSON text).  Returns 0, or
 * CB_E_PARSE with the reason (for the dead-letter record) in errstr.
 */
int cb_aggjson_parse(const char *json, size_t len, struct cb_chatmsg *out,
		     uint8_t *scratch, size_t scratch_size, char *errstr,
		     size_t errstr_size);

/* Parses a UUID in its 8-4-4-4-12 hex text form into 16 bytes.  Returns
 * true on success. */
bool cb_aggjson_uuid_parse(const char *s, size_t len, uint8_t out[16]);

/*
 * The name-based UUID (version 5, RFC 4122, SHA-1) of a message without a
 * usable message_id, under the chatbattle namespace
 * 2a1e5b4c-8f0d-5c7e-9b3a-6d4f1c2e8a90, over the bytes
 * "<channel>\n<timestamp ms in decimal>\n<user>\n<text>".  Deterministic, so
 * a replayed record overwrites its own Cassandra row.
 */
void cb_aggjson_uuid_derive(const char *channel, size_t channel_len,
			    int64_t timestamp_ms, const char *user,
			    size_t user_len, const char *text, size_t text_len,
			    uint8_t out[16]);

#endif
