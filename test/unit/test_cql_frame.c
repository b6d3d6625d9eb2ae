/*
 * test_cql_frame.c - the CQL native protocol v4 codec against byte vectors
 * written out by hand from doc/native_protocol_v4.spec: every request we
 * send, every response kind we read, every ERROR code's extra fields,
 * hostile and truncated frames (every prefix of every vector), LZ4, and
 * the shared helpers of cql_int.h (host lists, the emote list value).
 */
#include <string.h>

#include "chatbattle/config.h"
#include "chatbattle/cql_frame.h"
#include "chatbattle/err.h"
#include "../../src/cql_int.h"
#include "test.h"

static struct cb_cql_wbuf w;

static bool bytes_eq(const uint8_t *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

#define CHECK_BYTES(buf, len, lit) CHECK(bytes_eq(buf, len, lit, sizeof(lit) - 1))

static void startup_is_the_spec_frame(void)
{
	cb_cql_wbuf_reset(&w);
	cb_cql_enc_startup(&w, 1, NULL);
	CHECK(!w.failed);
	CHECK_BYTES(w.p, w.len,
		    "\x04\x00\x00\x01\x01\x00\x00\x00\x16"
		    "\x00\x01\x00\x0b"
		    "CQL_VERSION\x00\x05"
		    "3.0.0");
	cb_cql_wbuf_reset(&w);
	cb_cql_enc_startup(&w, 2, "lz4");
	CHECK_BYTES(w.p, w.len,
		    "\x04\x00\x00\x02\x01\x00\x00\x00\x28"
		    "\x00\x02\x00\x0b"
		    "CQL_VERSION\x00\x05"
		    "3.0.0\x00\x0b"
		    "COMPRESSION\x00\x03"
		    "lz4");
}

static void options_and_auth_frames(void)
{
	cb_cql_wbuf_reset(&w);
	cb_cql_enc_options(&w, 5);
	CHECK_BYTES(w.p, w.len, "\x04\x00\x00\x05\x05\x00\x00\x00\x00");
	cb_cql_wbuf_reset(&w);
	cb_cql_enc_auth_plain(&w, 0, "bob", "pw");
	CHECK_BYTES(w.p, w.len,
		    "\x04\x00\x00\x00\x0f\x00\x00\x00\x0b"
		    "\x00\x00\x00\x07\x00"
		    "bob\x00"
		    "pw");
}

static void query_and_prepare_frames(void)
{
	struct cb_cql_params p = {0};

	p.consistency = CB_CQL_ONE;
	p.timestamp_us = INT64_MIN;
	cb_cql_wbuf_reset(&w);
	cb_cql_enc_query(&w, 3, "SELECT 1", &p);
	CHECK_BYTES(w.p, w.len,
		    "\x04\x00\x00\x03\x07\x00\x00\x00\x0f"
		    "\x00\x00\x00\x08"
		    "SELECT 1\x00\x01\x00");
	/* page size, paging state and a timestamp: flags 0x04|0x08|0x20 */
	p.consistency = CB_CQL_LOCAL_ONE;
	p.page_size = 100;
	p.paging_state = (const uint8_t *)"\xab\xcd";
	p.paging_state_len = 2;
	p.timestamp_us = 0x0102030405060708LL;
	cb_cql_wbuf_reset(&w);
	cb_cql_enc_query(&w, 3, "Q", &p);
	CHECK_BYTES(w.p, w.len,
		    "\x04\x00\x00\x03\x07\x00\x00\x00\x1a"
		    "\x00\x00\x00\x01Q"
		    "\x00\x0a\x2c"
		    "\x00\x00\x00\x64"
		    "\x00\x00\x00\x02\xab\xcd"
		    "\x01\x02\x03\x04\x05\x06\x07\x08");
	cb_cql_wbuf_reset(&w);
	cb_cql_enc_prepare(&w, 0, "INSERT");
	CHECK_BYTES(w.p, w.len,
		    "\x04\x00\x00\x00\x09\x00\x00\x00\x0a"
		    "\x00\x00\x00\x06INSERT");
	{
		const char *ev[] = {"STATUS_CHANGE"};

		cb_cql_wbuf_reset(&w);
		cb_cql_enc_register(&w, 0, ev, 1);
		CHECK_BYTES(w.p, w.len,
			    "\x04\x00\x00\x00\x0b\x00\x00\x00\x11"
			    "\x00\x01\x00\x0dSTATUS_CHANGE");
	}
}

static void execute_with_values(void)
{
	struct cb_cql_params p = {0};
	static const uint8_t uuid[16] = {1, 2, 3, 4, 5, 6, 7, 8,
					 9, 10, 11, 12, 13, 14, 15, 16};
	size_t f;

	p.consistency = CB_CQL_QUORUM;
	p.nvalues = 3;
	p.skip_metadata = true;
	p.timestamp_us = INT64_MIN;
	cb_cql_wbuf_reset(&w);
	f = cb_cql_frame_begin(&w, 0x0102, CB_CQL_OP_EXECUTE);
	cb_cql_put_short_bytes(&w, "\xee\xff", 2);
	cb_cql_put_params_head(&w, &p);
	cb_cql_put_value_text(&w, "ab", 2);
	cb_cql_put_value_bigint(&w, -2);
	cb_cql_put_value_uuid(&w, uuid);
	cb_cql_put_params_tail(&w, &p);
	cb_cql_frame_end(&w, f);
	CHECK_BYTES(w.p, w.len,
		    "\x04\x00\x01\x02\x0a\x00\x00\x00\x2f"
		    "\x00\x02\xee\xff"
		    "\x00\x04\x03\x00\x03"
		    "\x00\x00\x00\x02"
		    "ab"
		    "\x00\x00\x00\x08\xff\xff\xff\xff\xff\xff\xff\xfe"
		    "\x00\x00\x00\x10\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a"
		    "\x0b\x0c\x0d\x0e\x0f\x10");
}

static void batch_frame(void)
{
	size_t f;

	cb_cql_wbuf_reset(&w);
	f = cb_cql_batch_begin(&w, 7, 1, 2);
	cb_cql_put_batch_prepared(&w, (const uint8_t *)"\x01", 1, 1);
	cb_cql_put_value_int(&w, 5);
	cb_cql_put_batch_prepared(&w, (const uint8_t *)"\x01", 1, 1);
	cb_cql_put_bytes(&w, NULL, 0);
	cb_cql_batch_end(&w, f, CB_CQL_LOCAL_ONE, INT64_MIN);
	CHECK_BYTES(w.p, w.len,
		    "\x04\x00\x00\x07\x0d\x00\x00\x00\x1e"
		    "\x01\x00\x02"
		    "\x01\x00\x01\x01\x00\x01\x00\x00\x00\x04\x00\x00\x00\x05"
		    "\x01\x00\x01\x01\x00\x01\xff\xff\xff\xff"
		    "\x00\x0a\x00");
}

static void emote_block_is_a_list_of_text(void)
{
	uint8_t block[32];
	size_t o = 0;
	uint16_t n;

	n = 5;
	memcpy(block + o, &n, 2);
	memcpy(block + o + 2, "Kappa", 5);
	o += 7;
	n = 0;
	memcpy(block + o, &n, 2);
	o += 2;
	cb_cql_wbuf_reset(&w);
	cb_cql_put_emote_block(&w, block, o, 2);
	CHECK(!w.failed);
	CHECK_BYTES(w.p, w.len,
		    "\x00\x00\x00\x11"
		    "\x00\x00\x00\x02"
		    "\x00\x00\x00\x05Kappa"
		    "\x00\x00\x00\x00");
	/* a block shorter than its count says poisons the buffer */
	cb_cql_wbuf_reset(&w);
	cb_cql_put_emote_block(&w, block, 5, 2);
	CHECK(w.failed);
}

static void wbuf_cap_fails_instead_of_growing(void)
{
	struct cb_cql_wbuf s;
	char big[100];

	memset(big, 'x', sizeof(big));
	cb_cql_wbuf_init(&s, 64);
	cb_cql_put_raw(&s, big, 60);
	CHECK(!s.failed);
	cb_cql_put_raw(&s, big, 10);
	CHECK(s.failed);
	CHECK_INT(s.len, 60);
	cb_cql_put_byte(&s, 1); /* later writes are no-ops */
	CHECK_INT(s.len, 60);
	cb_cql_wbuf_free(&s);
}

/* ---- decoding ---- */

static struct cb_cql_response res;

static int parse(const char *frame, size_t n)
{
	struct cb_cql_header h;
	char errstr[256];
	int err;

	if (n < CB_CQL_HDR_LEN)
		return CB_E_PROTO;
	err = cb_cql_header_parse((const uint8_t *)frame, &h, errstr,
				  sizeof(errstr));
	if (err != 0)
		return err;
	if (h.length != n - CB_CQL_HDR_LEN)
		return CB_E_PROTO;
	return cb_cql_response_parse(&h, (const uint8_t *)frame +
						 CB_CQL_HDR_LEN,
				     n - CB_CQL_HDR_LEN, &res, errstr,
				     sizeof(errstr));
}

#define PARSE(lit) parse(lit, sizeof(lit) - 1)

static void header_checks(void)
{
	struct cb_cql_header h;
	char errstr[128];

	CHECK_INT(cb_cql_header_parse(
			  (const uint8_t *)"\x84\x00\xff\xff\x0c\x00\x00\x00\x00",
			  &h, errstr, sizeof(errstr)),
		  0);
	CHECK_INT(h.stream, -1);
	CHECK_INT(h.opcode, CB_CQL_OP_EVENT);
	CHECK_INT(cb_cql_header_parse(
			  (const uint8_t *)"\x83\x00\x00\x01\x02\x00\x00\x00\x00",
			  &h, errstr, sizeof(errstr)),
		  CB_E_PROTO);
	CHECK(strstr(errstr, "0x83") != NULL);
	CHECK_INT(cb_cql_header_parse(
			  (const uint8_t *)"\x84\x00\x00\x01\x08\x7f\x00\x00\x00",
			  &h, errstr, sizeof(errstr)),
		  CB_E_TOOBIG);
}

static const char write_timeout[] =
	"\x84\x00\x00\x01\x00\x00\x00\x00\x22"
	"\x00\x00\x11\x00"
	"\x00\x0aTimed out!"
	"\x00\x0a"
	"\x00\x00\x00\x00"
	"\x00\x00\x00\x01"
	"\x00\x06SIMPLE";

static void error_write_timeout_is_described(void)
{
	char buf[256];

	CHECK_INT(parse(write_timeout, sizeof(write_timeout) - 1), 0);
	CHECK_INT(res.hdr.opcode, CB_CQL_OP_ERROR);
	CHECK_INT(res.error.code, CB_CQL_ERR_WRITE_TIMEOUT);
	CHECK_INT(res.error.received, 0);
	CHECK_INT(res.error.blockfor, 1);
	cb_cql_error_describe(&res.error, buf, sizeof(buf));
	CHECK_STR(buf, "Write timeout (0x1100): Timed out! (consistency "
		       "LOCAL_ONE, 0 of 1 replicas answered, write type "
		       "SIMPLE)");
	CHECK(cb_cql_error_retryable(&res.error));
}

static void error_codes_with_extra_fields(void)
{
	char buf[256];

	/* Unavailable: consistency, required, alive */
	CHECK_INT(PARSE("\x84\x00\x00\x01\x00\x00\x00\x00\x12"
			"\x00\x00\x10\x00\x00\x02no"
			"\x00\x04\x00\x00\x00\x02\x00\x00\x00\x01"),
		  0);
	cb_cql_error_describe(&res.error, buf, sizeof(buf));
	CHECK_STR(buf, "Unavailable (0x1000): no (consistency QUORUM needs 2 "
		       "replicas, 1 alive)");
	/* Read failure: consistency, received, blockfor, numfailures,
	 * data_present */
	CHECK_INT(PARSE("\x84\x00\x00\x01\x00\x00\x00\x00\x17"
			"\x00\x00\x13\x00\x00\x02rf"
			"\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01"
			"\x00\x00\x00\x01\x00"),
		  0);
	cb_cql_error_describe(&res.error, buf, sizeof(buf));
	CHECK_STR(buf, "Read failure (0x1300): rf (consistency ONE, 0 of 1 "
		       "replicas answered, 1 failed, data missing)");
	CHECK(!cb_cql_error_retryable(&res.error));
	/* Write failure ends with the write type */
	CHECK_INT(PARSE("\x84\x00\x00\x01\x00\x00\x00\x00\x1d"
			"\x00\x00\x15\x00\x00\x02wf"
			"\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01"
			"\x00\x00\x00\x01\x00\x05"
			"BATCH"),
		  0);
	CHECK_INT(res.error.numfailures, 1);
	CHECK_INT(res.error.write_type.len, 5);
	/* Read timeout */
	CHECK_INT(PARSE("\x84\x00\x00\x01\x00\x00\x00\x00\x13"
			"\x00\x00\x12\x00\x00\x02rt"
			"\x00\x06\x00\x00\x00\x01\x00\x00\x00\x02\x01"),
		  0);
	cb_cql_error_describe(&res.error, buf, sizeof(buf));
	CHECK_STR(buf, "Read timeout (0x1200): rt (consistency LOCAL_QUORUM, "
		       "1 of 2 replicas answered, data present)");
	/* Already exists: keyspace, table */
	CHECK_INT(PARSE("\x84\x00\x00\x01\x00\x00\x00\x00\x11"
			"\x00\x00\x24\x00\x00\x02"
			"ae\x00\x02ks\x00\x03tbl"),
		  0);
	cb_cql_error_describe(&res.error, buf, sizeof(buf));
	CHECK_STR(buf, "Already exists (0x2400): ae, keyspace ks, table tbl");
	/* Unprepared: the statement id */
	CHECK_INT(PARSE("\x84\x00\x00\x01\x00\x00\x00\x00\x0c"
			"\x00\x00\x25\x00\x00\x02up\x00\x02\xaa\xbb"),
		  0);
	CHECK_INT(res.error.code, CB_CQL_ERR_UNPREPARED);
	CHECK_INT(res.error.unprepared_id.len, 2);
	CHECK(res.error.unprepared_id.p[0] == 0xaa);
	/* Function failure: keyspace, function, arg types */
	CHECK_INT(PARSE("\x84\x00\x00\x01\x00\x00\x00\x00\x17"
			"\x00\x00\x14\x00\x00\x02"
			"ff\x00\x02ks\x00\x02"
			"fn\x00\x01\x00\x03int"),
		  0);
	cb_cql_error_describe(&res.error, buf, sizeof(buf));
	CHECK_STR(buf, "Function failure (0x1400): ff, keyspace ks, function fn");
	/* Bad credentials, syntax error, an unknown code */
	CHECK_INT(PARSE("\x84\x00\x00\x01\x00\x00\x00\x00\x0a"
			"\x00\x00\x01\x00\x00\x04nope"),
		  0);
	cb_cql_error_describe(&res.error, buf, sizeof(buf));
	CHECK_STR(buf, "Bad credentials (0x0100): nope");
	CHECK_INT(PARSE("\x84\x00\x00\x01\x00\x00\x00\x00\x06"
			"\x00\x00\x77\x77\x00\x00"),
		  0);
	cb_cql_error_describe(&res.error, buf, sizeof(buf));
	CHECK_STR(buf, "Unknown error (0x7777): ");
	/* every listed code has its own name */
#define NAMED(name, value, desc) CHECK_STR(cb_cql_error_name(value), desc);
	CB_CQL_ERROR_LIST(NAMED)
#undef NAMED
}

static const char rows_frame[] =
	"\x84\x00\x00\x02\x08\x00\x00\x00\x3f"
	"\x00\x00\x00\x02"                 /* Rows */
	"\x00\x00\x00\x03"                 /* global spec | has more pages */
	"\x00\x00\x00\x02"                 /* 2 columns */
	"\x00\x00\x00\x02\x0a\x0b"         /* paging state */
	"\x00\x01k\x00\x01t"               /* keyspace, table */
	"\x00\x01" "a\x00\x0d"             /* a varchar */
	"\x00\x01" "b\x00\x20\x00\x0d"     /* b list<varchar> */
	"\x00\x00\x00\x01"                 /* 1 row */
	"\x00\x00\x00\x01x"
	"\x00\x00\x00\x0e\x00\x00\x00\x02\x00\x00\x00\x01p\x00\x00\x00\x01q";

static void rows_with_metadata_and_paging(void)
{
	struct cb_cql_bytes v[2];
	char text[64];

	CHECK_INT(parse(rows_frame, sizeof(rows_frame) - 1), 0);
	CHECK_INT(res.result_kind, CB_CQL_RESULT_ROWS);
	CHECK_INT(res.meta.ncolumns, 2);
	CHECK_INT(res.meta.paging_state.len, 2);
	CHECK(res.meta.paging_state.p[1] == 0x0b);
	CHECK_INT(res.meta.columns[1].type.id, CB_CQL_T_LIST);
	CHECK_INT(res.meta.columns[1].type.sub[0], CB_CQL_T_VARCHAR);
	CHECK(bytes_eq(res.meta.columns[1].table.p,
		       (size_t)res.meta.columns[1].table.len, "t", 1));
	CHECK_INT(cb_cql_rows_next(&res, v, 2), 1);
	CHECK_INT(cb_cql_value_text(&res.meta.columns[0].type, v[0], text,
				    sizeof(text)),
		  1);
	CHECK_STR(text, "x");
	CHECK_INT(cb_cql_value_text(&res.meta.columns[1].type, v[1], text,
				    sizeof(text)),
		  6);
	CHECK_STR(text, "[p, q]");
	CHECK_INT(cb_cql_rows_next(&res, v, 2), 0);
}

static void prepared_result_reads_bind_metadata(void)
{
	/* id 0xCAFE; bind metadata: global, 2 columns, 1 pk column (index
	 * 0), ks/table, a varchar, b bigint; result metadata: no metadata */
	CHECK_INT(PARSE("\x84\x00\x00\x00\x08\x00\x00\x00\x30"
			"\x00\x00\x00\x04"
			"\x00\x02\xca\xfe"
			"\x00\x00\x00\x01\x00\x00\x00\x02"
			"\x00\x00\x00\x01\x00\x00"
			"\x00\x02ks\x00\x02tb"
			"\x00\x01" "a\x00\x0d\x00\x01" "b\x00\x02"
			"\x00\x00\x00\x04\x00\x00\x00\x00"),
		  0);
	CHECK_INT(res.result_kind, CB_CQL_RESULT_PREPARED);
	CHECK_INT(res.prepared_id.len, 2);
	CHECK_INT(res.meta.ncolumns, 2);
	CHECK_INT(res.meta.npk, 1);
	CHECK_INT(res.meta.columns[1].type.id, CB_CQL_T_BIGINT);
}

static void void_keyspace_schema_and_event(void)
{
	CHECK_INT(PARSE("\x84\x00\x00\x01\x08\x00\x00\x00\x04"
			"\x00\x00\x00\x01"),
		  0);
	CHECK_INT(res.result_kind, CB_CQL_RESULT_VOID);
	CHECK_INT(PARSE("\x84\x00\x00\x01\x08\x00\x00\x00\x08"
			"\x00\x00\x00\x03\x00\x02ks"),
		  0);
	CHECK_INT(res.keyspace.len, 2);
	CHECK_INT(PARSE("\x84\x00\x00\x01\x08\x00\x00\x00\x1b"
			"\x00\x00\x00\x05\x00\x07"
			"CREATED\x00\x05TABLE\x00\x02ks\x00\x01t"),
		  0);
	CHECK(bytes_eq(res.schema.target.p, (size_t)res.schema.target.len,
		       "TABLE", 5));
	CHECK(bytes_eq(res.schema.name.p, (size_t)res.schema.name.len, "t", 1));
	CHECK_INT(PARSE("\x84\x00\xff\xff\x0c\x00\x00\x00\x1c"
			"\x00\x0dSTATUS_CHANGE\x00\x02UP"
			"\x04\x7f\x00\x00\x01\x00\x00\x23\x52"),
		  0);
	CHECK_INT(res.event_addr_len, 4);
	CHECK_INT(res.event_port, 9042);
	CHECK(bytes_eq(res.event_change.p, (size_t)res.event_change.len, "UP",
		       2));
	/* READY, AUTHENTICATE, AUTH_SUCCESS (null token), SUPPORTED */
	CHECK_INT(PARSE("\x84\x00\x00\x01\x02\x00\x00\x00\x00"), 0);
	CHECK_INT(PARSE("\x84\x00\x00\x01\x03\x00\x00\x00\x05\x00\x03"
			"abc"),
		  0);
	CHECK_INT(res.authenticator.len, 3);
	CHECK_INT(PARSE("\x84\x00\x00\x01\x10\x00\x00\x00\x04"
			"\xff\xff\xff\xff"),
		  0);
	CHECK_INT(res.token.len, -1);
	CHECK_INT(PARSE("\x84\x00\x00\x01\x06\x00\x00\x00\x16"
			"\x00\x01\x00\x0b"
			"COMPRESSION\x00\x01\x00\x03lz4"),
		  0);
}

static void warnings_and_tracing_come_first(void)
{
	CHECK_INT(PARSE("\x84\x0a\x00\x01\x08\x00\x00\x00\x1a"
			"\x01\x02\x03\x04\x05\x06\x07\x08"
			"\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10"
			"\x00\x01\x00\x02hi"
			"\x00\x00\x00\x01"),
		  0);
	CHECK(res.has_tracing);
	CHECK_INT(res.tracing_id[15], 0x10);
	CHECK_INT(res.nwarnings, 1);
	CHECK(bytes_eq(res.warning.p, (size_t)res.warning.len, "hi", 2));
	CHECK_INT(res.result_kind, CB_CQL_RESULT_VOID);
}

/* Every strict prefix of a frame's body must be rejected, never read past. */
static void check_prefixes(const char *frame, size_t n)
{
	struct cb_cql_header h;
	char errstr[256];

	CHECK_INT(cb_cql_header_parse((const uint8_t *)frame, &h, errstr,
				      sizeof(errstr)),
		  0);
	for (size_t k = 0; k < n - CB_CQL_HDR_LEN; k++) {
		/* a fresh heap copy so ASan sees any overread */
		uint8_t *body = malloc(k + 1);
		int err;

		memcpy(body, frame + CB_CQL_HDR_LEN, k);
		err = cb_cql_response_parse(&h, body, k, &res, errstr,
					    sizeof(errstr));
		if (err == 0 && h.opcode == CB_CQL_OP_RESULT &&
		    res.result_kind == CB_CQL_RESULT_ROWS) {
			struct cb_cql_bytes v[2];
			int r;

			/* rows are read lazily: the row must fail instead */
			while ((r = cb_cql_rows_next(&res, v, 2)) == 1)
				;
			err = r;
		}
		if (err == 0)
			fprintf(stderr, "prefix %zu of %zu parsed\n", k,
				n - CB_CQL_HDR_LEN);
		CHECK(err != 0);
		free(body);
	}
}

static void truncated_frames_are_errors(void)
{
	check_prefixes(write_timeout, sizeof(write_timeout) - 1);
	check_prefixes(rows_frame, sizeof(rows_frame) - 1);
}

static void hostile_frames_are_errors(void)
{
	/* 100000 columns */
	CHECK_INT(PARSE("\x84\x00\x00\x01\x08\x00\x00\x00\x0c"
			"\x00\x00\x00\x02\x00\x00\x00\x04\x00\x01\x86\xa0"),
		  CB_E_PROTO);
	/* a negative row count */
	CHECK_INT(PARSE("\x84\x00\x00\x01\x08\x00\x00\x00\x10"
			"\x00\x00\x00\x02\x00\x00\x00\x04\x00\x00\x00\x00"
			"\xff\xff\xff\xff"),
		  CB_E_PROTO);
	/* rows the body cannot hold; rows of zero columns */
	CHECK_INT(PARSE("\x84\x00\x00\x01\x08\x00\x00\x00\x1f"
			"\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x00\x01"
			"\x00\x01k\x00\x01t\x00\x01" "c\x00\x0d"
			"\x00\x00\x00\x02\x00\x00\x00\x00"),
		  CB_E_PROTO);
	CHECK_INT(PARSE("\x84\x00\x00\x01\x08\x00\x00\x00\x10"
			"\x00\x00\x00\x02\x00\x00\x00\x04\x00\x00\x00\x00"
			"\x7f\xff\xff\xff"),
		  CB_E_PROTO);
	/* list<list<list<...>>> nested past the limit */
	{
		char f[128];
		size_t o = 0;

		memcpy(f, "\x84\x00\x00\x01\x08\x00\x00\x00\x00", 9);
		o = 9;
		memcpy(f + o, "\x00\x00\x00\x02\x00\x00\x00\x01"
			      "\x00\x00\x00\x01\x00\x01k\x00\x01t\x00\x01"
			      "c",
		       21);
		o += 21;
		for (int i = 0; i < 20; i++) {
			f[o++] = 0x00;
			f[o++] = 0x20;
		}
		f[o++] = 0x00;
		f[o++] = 0x0d;
		memcpy(f + o, "\x00\x00\x00\x00", 4);
		o += 4;
		f[8] = (char)(o - 9);
		CHECK_INT(parse(f, o), CB_E_PROTO);
	}
	/* a long string longer than the frame, a [string] length past it */
	CHECK_INT(PARSE("\x84\x00\x00\x01\x00\x00\x00\x00\x08"
			"\x00\x00\x00\x00\xff\xff\x00\x00"),
		  CB_E_PROTO);
	/* an opcode servers never send */
	CHECK_INT(PARSE("\x84\x00\x00\x01\x07\x00\x00\x00\x00"), CB_E_PROTO);
	/* an unknown RESULT kind */
	CHECK_INT(PARSE("\x84\x00\x00\x01\x08\x00\x00\x00\x04"
			"\x00\x00\x00\x09"),
		  CB_E_PROTO);
	/* a bad inet size in an event */
	CHECK_INT(PARSE("\x84\x00\xff\xff\x0c\x00\x00\x00\x14"
			"\x00\x0dSTATUS_CHANGE\x00\x02UP\x07"),
		  CB_E_PROTO);
	/* a collection claiming more elements than bytes */
	{
		struct cb_cql_rd r;
		int32_t n;
		struct cb_cql_bytes v = {(const uint8_t *)"\x7f\x00\x00\x00",
					 4};

		CHECK_INT(cb_cql_coll_open(v, &r, &n), CB_E_PROTO);
	}
}

static void values_render_as_text(void)
{
	struct cb_cql_type t = {0};
	char out[64];
	struct cb_cql_bytes v;

	t.id = CB_CQL_T_BIGINT;
	v = (struct cb_cql_bytes){(const uint8_t *)"\xff\xff\xff\xff\xff\xff"
						   "\xff\x9c",
				  8};
	CHECK_INT(cb_cql_value_text(&t, v, out, sizeof(out)), 4);
	CHECK_STR(out, "-100");
	t.id = CB_CQL_T_INT;
	CHECK_INT(cb_cql_value_text(&t, v, out, sizeof(out)), CB_E_PROTO);
	t.id = CB_CQL_T_UUID;
	v = (struct cb_cql_bytes){(const uint8_t *)"\xe9\xd9\x98\xc3\x36\xf2"
						   "\x43\x0f\x89\xec\x6b\x88"
						   "\x7a\xf2\x8a\xf3",
				  16};
	cb_cql_value_text(&t, v, out, sizeof(out));
	CHECK_STR(out, "e9d998c3-36f2-430f-89ec-6b887af28af3");
	t.id = CB_CQL_T_BOOLEAN;
	v = (struct cb_cql_bytes){(const uint8_t *)"\x01", 1};
	cb_cql_value_text(&t, v, out, sizeof(out));
	CHECK_STR(out, "true");
	t.id = CB_CQL_T_BLOB;
	v = (struct cb_cql_bytes){(const uint8_t *)"\x00\xff", 2};
	CHECK_INT(cb_cql_value_text(&t, v, out, sizeof(out)), 6);
	CHECK_STR(out, "0x00ff");
	v.len = -1;
	cb_cql_value_text(&t, v, out, sizeof(out));
	CHECK_STR(out, "null");
	t.id = CB_CQL_T_DECIMAL;
	v = (struct cb_cql_bytes){(const uint8_t *)"\x00", 1};
	CHECK_INT(cb_cql_value_text(&t, v, out, sizeof(out)),
		  CB_E_UNSUPPORTED);
}

static void lz4_round_trip_and_corruption(void)
{
	uint8_t in[4096], z[8192], back[4096];
	int k, m;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)("chatbattle "[i % 11]);
	k = cb_cql_lz4_compress(in, sizeof(in), z, sizeof(z));
	CHECK(k > 4 && k < (int)sizeof(in));
	CHECK_INT(cb_cql_lz4_declared_len(z, (size_t)k), 4096);
	m = cb_cql_lz4_decompress(z, (size_t)k, back, sizeof(back));
	CHECK_INT(m, 4096);
	CHECK(memcmp(in, back, sizeof(in)) == 0);
	/* a short output buffer, a lying length, a cut block */
	CHECK_INT(cb_cql_lz4_decompress(z, (size_t)k, back, 100), CB_E_TOOBIG);
	z[1] = 0x7f;
	CHECK_INT(cb_cql_lz4_decompress(z, (size_t)k, back, sizeof(back)),
		  CB_E_TOOBIG);
	z[1] = 0;
	CHECK(cb_cql_lz4_decompress(z, (size_t)k / 2, back, sizeof(back)) < 0);
}

static void consistency_names_round_trip(void)
{
	CHECK_INT(cb_cql_consistency_parse("LOCAL_ONE"), CB_CQL_LOCAL_ONE);
	CHECK_INT(cb_cql_consistency_parse("EACH_QUORUM"), CB_CQL_EACH_QUORUM);
	CHECK_INT(cb_cql_consistency_parse("local_one"), -1);
	CHECK_STR(cb_cql_consistency_name(CB_CQL_QUORUM), "QUORUM");
	CHECK_STR(cb_cql_opcode_name(CB_CQL_OP_AUTH_SUCCESS), "AUTH_SUCCESS");
	CHECK_STR(cb_cql_opcode_name(4), "UNKNOWN");
}

static void host_lists_parse(void)
{
	static struct cb_config cfg;
	char *v[] = {"db1", "db2:9043", "[::1]:9044", "::1", "10.0.0.1:1"};
	struct cb_cql_host *h = NULL;
	size_t n = 0;
	char errstr[128];

	cfg.cassandra_hosts.v = v;
	cfg.cassandra_hosts.n = 5;
	cfg.cassandra_port = 9042;
	CHECK_INT(cb_cql_hosts(&cfg, &h, &n, errstr, sizeof(errstr)), 0);
	CHECK_INT(n, 5);
	CHECK_STR(h[0].name, "db1");
	CHECK_INT(h[0].port, 9042);
	CHECK_INT(h[1].port, 9043);
	CHECK_STR(h[2].name, "::1");
	CHECK_INT(h[2].port, 9044);
	CHECK_STR(h[3].name, "::1");
	CHECK_INT(h[3].port, 9042);
	CHECK_INT(h[4].port, 1);
	free(h);
	v[1] = "db2:99999";
	CHECK_INT(cb_cql_hosts(&cfg, &h, &n, errstr, sizeof(errstr)),
		  CB_E_CONFIG);
	CHECK(strstr(errstr, "db2:99999") != NULL);
	v[1] = "[::1";
	CHECK_INT(cb_cql_hosts(&cfg, &h, &n, errstr, sizeof(errstr)),
		  CB_E_CONFIG);
}

int main(void)
{
	cb_cql_wbuf_init(&w, 0);
	RUN(startup_is_the_spec_frame);
	RUN(options_and_auth_frames);
	RUN(query_and_prepare_frames);
	RUN(execute_with_values);
	RUN(batch_frame);
	RUN(emote_block_is_a_list_of_text);
	RUN(wbuf_cap_fails_instead_of_growing);
	RUN(header_checks);
	RUN(error_write_timeout_is_described);
	RUN(error_codes_with_extra_fields);
	RUN(rows_with_metadata_and_paging);
	RUN(prepared_result_reads_bind_metadata);
	RUN(void_keyspace_schema_and_event);
	RUN(warnings_and_tracing_come_first);
	RUN(truncated_frames_are_errors);
	RUN(hostile_frames_are_errors);
	RUN(values_render_as_text);
	RUN(lz4_round_trip_and_corruption);
	RUN(consistency_names_round_trip);
	RUN(host_lists_parse);
	cb_cql_wbuf_free(&w);
	return test_done();
}
