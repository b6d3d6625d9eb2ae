/*
 * hll.h - a HyperLogLog sketch of 2^12 registers for counting distinct
 * chatters past the exact limit (src/hll.c).  Pure code, no threads.
 *
 * Error: the estimator is Ertl's improved raw estimator ("New cardinality
 * estimation algorithms for HyperLogLog sketches", 2017), unbiased from 0
 * to well past 10^9 without empirical bias tables; its relative standard
 * error is 1.04 / sqrt(4096) = 1.625 %, so 99.7 % of estimates fall within
 * 3 sigma = 4.9 % of the truth (test_window.c checks this).
 */
#ifndef CHATBATTLE_HLL_H
#define CHATBATTLE_HLL_H

#include <stddef.h>
#include <stdint.h>

#define CB_HLL_P 12
#define CB_HLL_M (1u << CB_HLL_P)
/* Bytes of the serialized sketch: 6 bits per register. */
#define CB_HLL_BYTES (CB_HLL_M * 6 / 8)
/* The relative standard error, 1.04 / sqrt(m). */
#define CB_HLL_STDERR 0.01625

struct cb_hll {
	uint8_t reg[CB_HLL_M];
};

/* Empties the sketch. */
void cb_hll_init(struct cb_hll *h);

/* Adds one element by its 64-bit hash (use a well-mixed hash). */
void cb_hll_add(struct cb_hll *h, uint64_t hash);

/* The estimated number of distinct elements added. */
double cb_hll_estimate(const struct cb_hll *h);

/* Writes the CB_HLL_BYTES serialized registers into out. */
void cb_hll_save(const struct cb_hll *h, uint8_t *out);

/* Reads CB_HLL_BYTES written by cb_hll_save.  Returns 0, or CB_E_PARSE
 * when a register holds an impossible value. */
int cb_hll_load(struct cb_hll *h, const uint8_t *in);

#endif
