/*
 * murmur3.c - Cassandra's MurmurHash3 x64_128 and the Murmur3Partitioner
 * token (see murmur3.h).  Written from the algorithm's description in
 * Cassandra's MurmurHash.java and Murmur3Partitioner.java; the test
 * vectors in test/unit/test_murmur3.c come from Cassandra 5.0's own
 * SELECT token(k).
 */
#include <string.h>

#include "chatbattle/murmur3.h"

#define C1 0x87c37b91114253d5ULL
#define C2 0x4cf5ad432745937fULL

static uint64_t rotl64(uint64_t v, int n)
{
	return (v << n) | (v >> (64 - n));
}

static uint64_t fmix(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return k;
}

/* A little-endian 64-bit block (Java assembles it from unsigned bytes). */
static uint64_t block(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* A tail byte the way Java's (long) cast of a signed byte widens it. */
static uint64_t sbyte(uint8_t b, int shift)
{
	return (uint64_t)(int64_t)(int8_t)b << shift;
}

void cb_murmur3_x64_128(const void *key, size_t len, uint64_t seed,
			uint64_t out[2])
{
	const uint8_t *p = key;
	size_t nblocks = len / 16;
	uint64_t h1 = seed, h2 = seed, k1 = 0, k2 = 0;
	const uint8_t *t;

	for (size_t i = 0; i < nblocks; i++) {
		k1 = block(p + i * 16);
		k2 = block(p + i * 16 + 8);
		k1 *= C1;
		k1 = rotl64(k1, 31);
		k1 *= C2;
		h1 ^= k1;
		h1 = rotl64(h1, 27);
		h1 += h2;
		h1 = h1 * 5 + 0x52dce729;
		k2 *= C2;
		k2 = rotl64(k2, 33);
		k2 *= C1;
		h2 ^= k2;
		h2 = rotl64(h2, 31);
		h2 += h1;
		h2 = h2 * 5 + 0x38495ab5;
	}
	t = p + nblocks * 16;
	k1 = 0;
	k2 = 0;
	/* XOR, as Java does: a sign-extended byte sets the high bits too */
	switch (len & 15) {
	case 15: k2 ^= sbyte(t[14], 48); /* fall through */
	case 14: k2 ^= sbyte(t[13], 40); /* fall through */
	case 13: k2 ^= sbyte(t[12], 32); /* fall through */
	case 12: k2 ^= sbyte(t[11], 24); /* fall through */
	case 11: k2 ^= sbyte(t[10], 16); /* fall through */
	case 10: k2 ^= sbyte(t[9], 8);   /* fall through */
	case 9:
		k2 ^= sbyte(t[8], 0);
		k2 *= C2;
		k2 = rotl64(k2, 33);
		k2 *= C1;
		h2 ^= k2;
		/* fall through */
	case 8: k1 ^= sbyte(t[7], 56); /* fall through */
	case 7: k1 ^= sbyte(t[6], 48); /* fall through */
	case 6: k1 ^= sbyte(t[5], 40); /* fall through */
	case 5: k1 ^= sbyte(t[4], 32); /* fall through */
	case 4: k1 ^= sbyte(t[3], 24); /* fall through */
	case 3: k1 ^= sbyte(t[2], 16); /* fall through */
	case 2: k1 ^= sbyte(t[1], 8);  /* fall through */
	case 1:
		k1 ^= sbyte(t[0], 0);
		k1 *= C1;
		k1 = rotl64(k1, 31);
		k1 *= C2;
		h1 ^= k1;
		break;
	default:
		break;
	}
	h1 ^= (uint64_t)len;
	h2 ^= (uint64_t)len;
	h1 += h2;
	h2 += h1;
	h1 = fmix(h1);
	h2 = fmix(h2);
	h1 += h2;
	h2 += h1;
	out[0] = h1;
	out[1] = h2;
}

int64_t cb_murmur3_token(const void *key, size_t len)
{
	uint64_t h[2];

	if (len == 0)
		return INT64_MIN;
	cb_murmur3_x64_128(key, len, 0, h);
	return h[0] == (uint64_t)INT64_MIN ? INT64_MAX : (int64_t)h[0];
}

int64_t cb_murmur3_token_channel_day(const char *channel, size_t len,
				     int32_t day)
{
	uint8_t key[2 + 255 + 1 + 2 + 4 + 1];
	uint32_t d = (uint32_t)day + 0x80000000u;
	size_t o = 0;

	if (len > 255)
		len = 255;
	key[o++] = (uint8_t)(len >> 8);
	key[o++] = (uint8_t)len;
	memcpy(key + o, channel, len);
	o += len;
	key[o++] = 0;
	key[o++] = 0;
	key[o++] = 4;
	key[o++] = (uint8_t)(d >> 24);
	key[o++] = (uint8_t)(d >> 16);
	key[o++] = (uint8_t)(d >> 8);
	key[o++] = (uint8_t)d;
	key[o++] = 0;
	return cb_murmur3_token(key, o);
}

int32_t cb_murmur3_day_of_ms(int64_t ms)
{
	int64_t d = ms / 86400000;

	if (ms % 86400000 < 0)
		d--;
	return (int32_t)d;
}
