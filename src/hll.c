/*
 * hll.c - HyperLogLog with 2^12 six-bit registers and Ertl's improved
 * estimator (see hll.h).  Pure code: the caller owns the struct.
 *
 * A 64-bit hash is split into a 12-bit register index (the top bits) and a
 * 52-bit rest; the register keeps the largest "position of the first 1 bit"
 * of the rests it saw, 1..53 (53 when the rest is all zeros).
 */
#include <math.h>
#include <string.h>

#include "chatbattle/err.h"
#include "chatbattle/hll.h"

#define Q (64 - CB_HLL_P) /* bits of the rest; registers hold 0..Q+1 */

void cb_hll_init(struct cb_hll *h)
{
	memset(h->reg, 0, sizeof(h->reg));
}

void cb_hll_add(struct cb_hll *h, uint64_t hash)
{
	uint32_t idx = (uint32_t)(hash >> Q);
	uint64_t rest = hash << CB_HLL_P; /* the Q low bits, left-aligned */
	uint8_t rho = rest ? (uint8_t)(__builtin_clzll(rest) + 1) : Q + 1;

	if (rho > h->reg[idx])
		h->reg[idx] = rho;
}

/* Ertl's sigma(x) = x + sum_{k>=1} x^(2^k) 2^(k-1), for x in [0, 1). */
static double sigma(double x)
{
	double y = 1, z = x, z_old;

	if (x >= 1)
		return INFINITY;
	do {
		x *= x;
		z_old = z;
		z += x * y;
		y += y;
	} while (z != z_old);
	return z;
}

/* Ertl's tau(x) = (1 - x - sum_{k>=1} (1 - x^(2^-k))^2 2^-k) / 3. */
static double tau(double x)
{
	double y = 1, z = 1 - x, z_old;

	if (x == 0 || x == 1)
		return 0;
	do {
		x = sqrt(x);
		z_old = z;
		y *= 0.5;
		z -= (1 - x) * (1 - x) * y;
	} while (z != z_old);
	return z / 3;
}

double cb_hll_estimate(const struct cb_hll *h)
{
	uint32_t c[Q + 2] = {0};
	const double m = CB_HLL_M;
	double z;

	for (uint32_t i = 0; i < CB_HLL_M; i++)
		c[h->reg[i]]++;
	z = m * tau(1 - c[Q + 1] / m);
	for (int k = Q; k >= 1; k--)
		z = 0.5 * (z + c[k]);
	z += m * sigma(c[0] / m);
	return (m * m / (2 * log(2))) / z;
}

void cb_hll_save(const struct cb_hll *h, uint8_t *out)
{
	/* Four 6-bit registers in three bytes. */
	for (uint32_t i = 0, o = 0; i < CB_HLL_M; i += 4, o += 3) {
		uint32_t v = (uint32_t)h->reg[i] << 18 |
			     (uint32_t)h->reg[i + 1] << 12 |
			     (uint32_t)h->reg[i + 2] << 6 | h->reg[i + 3];

		out[o] = (uint8_t)(v >> 16);
		out[o + 1] = (uint8_t)(v >> 8);
		out[o + 2] = (uint8_t)v;
	}
}

int cb_hll_load(struct cb_hll *h, const uint8_t *in)
{
	for (uint32_t i = 0, o = 0; i < CB_HLL_M; i += 4, o += 3) {
		uint32_t v = (uint32_t)in[o] << 16 | (uint32_t)in[o + 1] << 8 |
			     in[o + 2];

		h->reg[i] = (uint8_t)(v >> 18);
		h->reg[i + 1] = (uint8_t)((v >> 12) & 63);
		h->reg[i + 2] = (uint8_t)((v >> 6) & 63);
		h->reg[i + 3] = (uint8_t)(v & 63);
		for (int k = 0; k < 4; k++)
			if (h->reg[i + k] > Q + 1)
				return CB_E_PARSE;
	}
	return 0;
}
