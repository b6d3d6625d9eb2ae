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

#endif
