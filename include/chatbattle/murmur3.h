/*
 * murmur3.h - the token of Cassandra's Murmur3Partitioner.  Pure code.
 *
 * Cassandra hashes a partition key with its own variant of MurmurHash3
 * x64_128 (org.apache.cassandra.utils.MurmurHash.hash3_x64_128, seed 0):
 * the 1..15 tail bytes are read as signed Java bytes, sign-extended to 64
 * bits, which differs from the reference implementation for bytes >= 0x80.
 * The token is the first 64-bit half as a signed long, with Long.MIN_VALUE
 * mapped to Long.MAX_VALUE (Murmur3Partitioner.normalize), and the empty
 * key's token is Long.MIN_VALUE (the partitioner's minimum token).
 */
#ifndef CHATBATTLE_MURMUR3_H
#define CHATBATTLE_MURMUR3_H

#include <stddef.h>
#include <stdint.h>

/* Both 64-bit halves of Cassandra's hash3_x64_128(key, seed). */
void cb_murmur3_x64_128(const void *key, size_t len, uint64_t seed,
			uint64_t out[2]);

/* The Murmur3Partitioner token of a serialized partition key (for one
 * text column such as channel_id: its UTF-8 bytes). */
int64_t cb_murmur3_token(const void *key, size_t len);

/*
 * The token of the composite partition key (channel_id text, day date) of
 * raw_chat_messages_by_day.  Cassandra serializes a composite key as, per
 * component, a 2-byte big-endian length, the bytes and a 0x00
 * end-of-component byte; a date is 4 bytes, the day number since the epoch
 * plus 2^31, unsigned, big-endian.  A channel longer than 255 bytes (never:
 * Twitch logins have at most 25) gets the token of its first 255.
 */
int64_t cb_murmur3_token_channel_day(const char *channel, size_t len,
				     int32_t day);

/* The UTC day (days since 1970-01-01, floored) of an epoch-ms instant. */
int32_t cb_murmur3_day_of_ms(int64_t ms);
#endif
