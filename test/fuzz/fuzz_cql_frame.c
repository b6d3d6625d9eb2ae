/*
 * fuzz_cql_frame.c - libFuzzer target for the CQL response decoder: the
 * 9-byte header, then the body through cb_cql_response_parse(), every row
 * through cb_cql_rows_next(), every value through cb_cql_value_text() and
 * cb_cql_coll_open(), the ERROR description, and LZ4 decompression of the
 * body.  Besides "no crash, no sanitizer report" it asserts what callers
 * rely on: a parsed response's byte spans lie inside the body, row counts
 * only go down, rendered text is NUL-terminated within its buffer.  The
 * body is copied to an exact-size heap block so that ASan sees any read
 * past its end.  Seeds: test/fuzz/corpus/cql_frame/ (one frame per file).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatbattle/cql_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MUST(cond)                                                             \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "invariant failed: %s (%s:%d)\n",      \
				#cond, __FILE__, __LINE__);                    \
			abort();                                               \
		}                                                              \
	} while (0)

static struct cb_cql_response res;
static uint8_t unz[1 << 16];

static void in_body(struct cb_cql_bytes b, const uint8_t *body, size_t len)
{
	if (b.len <= 0 || b.p == NULL)
		return;
	MUST(b.p >= body && b.p + b.len <= body + len);
}

static void render(const struct cb_cql_type *t, struct cb_cql_bytes v)
{
	char out[64];
	struct cb_cql_rd r;
	int32_t n;
	int k = cb_cql_value_text(t, v, out, sizeof(out));

	if (k >= 0)
		MUST(memchr(out, '\0', sizeof(out)) != NULL);
	if (cb_cql_coll_open(v, &r, &n) == 0)
		for (int32_t i = 0; i < n && !r.failed; i++)
			(void)cb_cql_get_bytes(&r);
}

static void decode(const struct cb_cql_header *h, const uint8_t *body,
		   size_t len)
{
	char errstr[256], why[1024];
	struct cb_cql_bytes v[CB_CQL_MAX_COLUMNS];

	if (cb_cql_response_parse(h, body, len, &res, errstr,
				  sizeof(errstr)) != 0) {
		MUST(errstr[0] != '\0');
		return;
	}
	if (h->opcode == CB_CQL_OP_ERROR) {
		cb_cql_error_describe(&res.error, why, sizeof(why));
		MUST(memchr(why, '\0', sizeof(why)) != NULL);
		in_body(res.error.message, body, len);
	}
	in_body(res.warning, body, len);
	in_body(res.prepared_id, body, len);
	in_body(res.schema.name, body, len);
	if (h->opcode == CB_CQL_OP_RESULT &&
	    res.result_kind == CB_CQL_RESULT_ROWS) {
		int32_t ncols = res.meta.ncolumns;
		int32_t before = res.nrows;
		int k;

		MUST(ncols >= 0 && ncols <= CB_CQL_MAX_COLUMNS);
		in_body(res.meta.paging_state, body, len);
		while ((k = cb_cql_rows_next(&res, v, ncols)) == 1) {
			MUST(res.nrows < before);
			before = res.nrows;
			for (int32_t i = 0; i < ncols; i++) {
				in_body(v[i], body, len);
				if (!(res.meta.flags & 0x0004))
					render(&res.meta.columns[i].type,
					       v[i]);
			}
		}
		MUST(k == 0 || k < 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cb_cql_header h;
	char errstr[256];
	uint8_t *body;
	size_t len;

	if (size < CB_CQL_HDR_LEN)
		return 0;
	if (cb_cql_header_parse(data, &h, errstr, sizeof(errstr)) != 0)
		return 0;
	len = size - CB_CQL_HDR_LEN; /* the header's length is not trusted */
	body = malloc(len ? len : 1);
	if (body == NULL)
		return 0;
	memcpy(body, data + CB_CQL_HDR_LEN, len);
	if (h.flags & CB_CQL_F_COMPRESSION) {
		int k = cb_cql_lz4_decompress(body, len, unz, sizeof(unz));

		h.flags &= (uint8_t)~CB_CQL_F_COMPRESSION;
		if (k >= 0) {
			uint8_t *u = malloc(k ? (size_t)k : 1);

			if (u != NULL) {
				memcpy(u, unz, (size_t)k);
				decode(&h, u, (size_t)k);
				free(u);
			}
		}
	} else {
		decode(&h, body, len);
	}
	free(body);
	return 0;
}
