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
struct cb_aggjson_msg {
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
int cb_aggjson_parse(const char *json, size_t len, struct cb_aggjson_msg *out,
		     uint8_t *scratch, size_t scratch_size, char *errstr,
		     size_t errstr_size);

#endif
