/*
 * cql_frame.h - the CQL native protocol v4 frame codec (apache/cassandra
 * doc/native_protocol_v4.spec).  Pure code: no I/O, no threads, no global
 * state.  Encoding appends to a growable buffer with a hard cap; decoding
 * reads from caller memory with bounds checks on every field, so a
 * truncated or hostile frame is an error (CB_E_PROTO), never a crash.
 *
 * Used by the Cassandra writer (cql.c, async) and by the blocking session
 * (cql_sync.c).  Decoded strings point into the frame body: they live as
 * long as the caller keeps the body.
 */
#ifndef CHATBATTLE_CQL_FRAME_H
#define CHATBATTLE_CQL_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CB_CQL_VERSION 0x04       /* request; responses carry 0x84 */
#define CB_CQL_HDR_LEN 9
#define CB_CQL_BODY_MAX (64u << 20) /* protocol allows 256 MiB; we refuse more */
#define CB_CQL_MAX_COLUMNS 256
#define CB_CQL_TYPE_DEPTH 8         /* nesting of list<map<...>> we accept */

/* Header flags. */
#define CB_CQL_F_COMPRESSION 0x01
#define CB_CQL_F_TRACING 0x02
#define CB_CQL_F_PAYLOAD 0x04
#define CB_CQL_F_WARNING 0x08

enum cb_cql_opcode {
	CB_CQL_OP_ERROR = 0x00,
	CB_CQL_OP_STARTUP = 0x01,
	CB_CQL_OP_READY = 0x02,
	CB_CQL_OP_AUTHENTICATE = 0x03,
	CB_CQL_OP_OPTIONS = 0x05,
	CB_CQL_OP_SUPPORTED = 0x06,
	CB_CQL_OP_QUERY = 0x07,
	CB_CQL_OP_RESULT = 0x08,
	CB_CQL_OP_PREPARE = 0x09,
	CB_CQL_OP_EXECUTE = 0x0A,
	CB_CQL_OP_REGISTER = 0x0B,
	CB_CQL_OP_EVENT = 0x0C,
	CB_CQL_OP_BATCH = 0x0D,
	CB_CQL_OP_AUTH_CHALLENGE = 0x0E,
	CB_CQL_OP_AUTH_RESPONSE = 0x0F,
	CB_CQL_OP_AUTH_SUCCESS = 0x10,
};

enum cb_cql_consistency {
	CB_CQL_ANY = 0x0000,
	CB_CQL_ONE = 0x0001,
	CB_CQL_TWO = 0x0002,
	CB_CQL_THREE = 0x0003,
	CB_CQL_QUORUM = 0x0004,
	CB_CQL_ALL = 0x0005,
	CB_CQL_LOCAL_QUORUM = 0x0006,
	CB_CQL_EACH_QUORUM = 0x0007,
	CB_CQL_SERIAL = 0x0008,
	CB_CQL_LOCAL_SERIAL = 0x0009,
	CB_CQL_LOCAL_ONE = 0x000A,
};

/* ERROR codes (spec section 9). */
#define CB_CQL_ERROR_LIST(X)                                                  \
	X(SERVER_ERROR, 0x0000, "Server error")                               \
	X(PROTOCOL_ERROR, 0x000A, "Protocol error")                           \
	X(BAD_CREDENTIALS, 0x0100, "Bad credentials")                         \
	X(UNAVAILABLE, 0x1000, "Unavailable")                                 \
	X(OVERLOADED, 0x1001, "Overloaded")                                   \
	X(IS_BOOTSTRAPPING, 0x1002, "Is bootstrapping")                       \
	X(TRUNCATE_ERROR, 0x1003, "Truncate error")                           \
	X(WRITE_TIMEOUT, 0x1100, "Write timeout")                             \
	X(READ_TIMEOUT, 0x1200, "Read timeout")                               \
	X(READ_FAILURE, 0x1300, "Read failure")                               \
	X(FUNCTION_FAILURE, 0x1400, "Function failure")                       \
	X(WRITE_FAILURE, 0x1500, "Write failure")                             \
	X(SYNTAX_ERROR, 0x2000, "Syntax error")                               \
	X(UNAUTHORIZED, 0x2100, "Unauthorized")                               \
	X(INVALID, 0x2200, "Invalid query")                                   \
	X(CONFIG_ERROR, 0x2300, "Config error")                               \
	X(ALREADY_EXISTS, 0x2400, "Already exists")                           \
	X(UNPREPARED, 0x2500, "Unprepared")

enum cb_cql_error_code {
#define CB_CQL_ERR_ENUM(name, value, desc) CB_CQL_ERR_##name = (value),
	CB_CQL_ERROR_LIST(CB_CQL_ERR_ENUM)
#undef CB_CQL_ERR_ENUM
};

enum cb_cql_result_kind {
	CB_CQL_RESULT_VOID = 0x0001,
	CB_CQL_RESULT_ROWS = 0x0002,
	CB_CQL_RESULT_SET_KEYSPACE = 0x0003,
	CB_CQL_RESULT_PREPARED = 0x0004,
	CB_CQL_RESULT_SCHEMA_CHANGE = 0x0005,
};

/* Type option ids. */
enum cb_cql_type_id {
	CB_CQL_T_CUSTOM = 0x0000,
	CB_CQL_T_ASCII = 0x0001,
	CB_CQL_T_BIGINT = 0x0002,
	CB_CQL_T_BLOB = 0x0003,
	CB_CQL_T_BOOLEAN = 0x0004,
	CB_CQL_T_COUNTER = 0x0005,
	CB_CQL_T_DECIMAL = 0x0006,
	CB_CQL_T_DOUBLE = 0x0007,
	CB_CQL_T_FLOAT = 0x0008,
	CB_CQL_T_INT = 0x0009,
	CB_CQL_T_TIMESTAMP = 0x000B,
	CB_CQL_T_UUID = 0x000C,
	CB_CQL_T_VARCHAR = 0x000D,
	CB_CQL_T_VARINT = 0x000E,
	CB_CQL_T_TIMEUUID = 0x000F,
	CB_CQL_T_INET = 0x0010,
	CB_CQL_T_DATE = 0x0011,
	CB_CQL_T_TIME = 0x0012,
	CB_CQL_T_SMALLINT = 0x0013,
	CB_CQL_T_TINYINT = 0x0014,
	CB_CQL_T_DURATION = 0x0015,
	CB_CQL_T_LIST = 0x0020,
	CB_CQL_T_MAP = 0x0021,
	CB_CQL_T_SET = 0x0022,
	CB_CQL_T_UDT = 0x0030,
	CB_CQL_T_TUPLE = 0x0031,
};

/* A byte string inside a frame; len < 0 means null ([bytes] of length -1). */
struct cb_cql_bytes {
	const uint8_t *p;
	int32_t len;
};

/* ---- encoding ---- */

/*
 * A growable output buffer.  Grows by doubling up to max (0: the frame cap
 * plus header); any write past it sets failed, and every later write is a
 * no-op, so that a caller checks once at the end.  Reused across frames
 * (cb_cql_wbuf_reset), so the hot path allocates nothing once warm.
 */
struct cb_cql_wbuf {
	uint8_t *p;
	size_t len;
	size_t cap;
	size_t max;
	bool failed;
};

void cb_cql_wbuf_init(struct cb_cql_wbuf *w, size_t max);
void cb_cql_wbuf_free(struct cb_cql_wbuf *w);
void cb_cql_wbuf_reset(struct cb_cql_wbuf *w);

void cb_cql_put_byte(struct cb_cql_wbuf *w, uint8_t v);
void cb_cql_put_short(struct cb_cql_wbuf *w, uint16_t v);
void cb_cql_put_int(struct cb_cql_wbuf *w, int32_t v);
void cb_cql_put_long(struct cb_cql_wbuf *w, int64_t v);
void cb_cql_put_raw(struct cb_cql_wbuf *w, const void *p, size_t n);
void cb_cql_put_string(struct cb_cql_wbuf *w, const char *s, size_t n);
void cb_cql_put_long_string(struct cb_cql_wbuf *w, const char *s, size_t n);
void cb_cql_put_short_bytes(struct cb_cql_wbuf *w, const void *p, size_t n);
/* [bytes]/[value]: p NULL means null (-1). */
void cb_cql_put_bytes(struct cb_cql_wbuf *w, const void *p, size_t n);
void cb_cql_put_string_list(struct cb_cql_wbuf *w, const char *const *v,
			    size_t n);

/* Typed [value]s for bound variables. */
void cb_cql_put_value_bigint(struct cb_cql_wbuf *w, int64_t v);
void cb_cql_put_value_int(struct cb_cql_wbuf *w, int32_t v);
void cb_cql_put_value_uuid(struct cb_cql_wbuf *w, const uint8_t uuid[16]);
void cb_cql_put_value_text(struct cb_cql_wbuf *w, const char *s, size_t n);

/*
 * Starts a frame: writes the header with a zero length and returns its
 * offset in w; cb_cql_frame_end() fills in the body length.  stream is the
 * request's stream id (0..32767).
 */
size_t cb_cql_frame_begin(struct cb_cql_wbuf *w, int16_t stream,
			  uint8_t opcode);
void cb_cql_frame_end(struct cb_cql_wbuf *w, size_t start);

/* <query_parameters> of QUERY and EXECUTE, and the tail of BATCH. */
struct cb_cql_params {
	uint16_t consistency;
	uint16_t nvalues;        /* values follow cb_cql_put_params_head */
	bool skip_metadata;
	int32_t page_size;       /* <= 0: none */
	const uint8_t *paging_state;
	size_t paging_state_len;
	int64_t timestamp_us;    /* INT64_MIN: none (the server's clock) */
};

/* Writes consistency, flags and the value count; the caller then writes
 * exactly nvalues [value]s and calls cb_cql_put_params_tail(). */
void cb_cql_put_params_head(struct cb_cql_wbuf *w,
			    const struct cb_cql_params *p);
void cb_cql_put_params_tail(struct cb_cql_wbuf *w,
			    const struct cb_cql_params *p);

/* Whole requests.  compression NULL or "lz4". */
void cb_cql_enc_startup(struct cb_cql_wbuf *w, int16_t stream,
			const char *compression);
void cb_cql_enc_options(struct cb_cql_wbuf *w, int16_t stream);
/* SASL PLAIN: token "\0user\0password". */
void cb_cql_enc_auth_plain(struct cb_cql_wbuf *w, int16_t stream,
			   const char *user, const char *password);
void cb_cql_enc_prepare(struct cb_cql_wbuf *w, int16_t stream,
			const char *cql);
void cb_cql_enc_register(struct cb_cql_wbuf *w, int16_t stream,
			 const char *const *events, size_t n);
/* QUERY without values. */
void cb_cql_enc_query(struct cb_cql_wbuf *w, int16_t stream, const char *cql,
		      const struct cb_cql_params *p);

/* BATCH: begin, then per statement cb_cql_put_batch_prepared() followed by
 * its [value]s, then end.  type: 0 logged, 1 unlogged, 2 counter. */
size_t cb_cql_batch_begin(struct cb_cql_wbuf *w, int16_t stream,
			  uint8_t type, uint16_t nstatements);
void cb_cql_put_batch_prepared(struct cb_cql_wbuf *w, const uint8_t *id,
			       size_t id_len, uint16_t nvalues);
void cb_cql_batch_end(struct cb_cql_wbuf *w, size_t start,
		      uint16_t consistency, int64_t timestamp_us);

/* ---- decoding ---- */

struct cb_cql_header {
	uint8_t version; /* 0x84 for a v4 response */
	uint8_t flags;
	int16_t stream;
	uint8_t opcode;
	uint32_t length;
};

/*
 * Parses the 9-byte header at p.  Returns 0, or CB_E_PROTO (not a v4
 * response: the reason names the version byte) or CB_E_TOOBIG (length
 * above CB_CQL_BODY_MAX).
 */
int cb_cql_header_parse(const uint8_t *p, struct cb_cql_header *h,
			char *errstr, size_t errstr_size);

/* A bounds-checked reader; the first overrun sets failed and every later
 * get returns zero/empty values. */
struct cb_cql_rd {
	const uint8_t *p;
	size_t len;
	size_t off;
	bool failed;
};

void cb_cql_rd_init(struct cb_cql_rd *r, const void *p, size_t len);
uint8_t cb_cql_get_byte(struct cb_cql_rd *r);
uint16_t cb_cql_get_short(struct cb_cql_rd *r);
int32_t cb_cql_get_int(struct cb_cql_rd *r);
int64_t cb_cql_get_long(struct cb_cql_rd *r);
struct cb_cql_bytes cb_cql_get_string(struct cb_cql_rd *r);
struct cb_cql_bytes cb_cql_get_long_string(struct cb_cql_rd *r);
struct cb_cql_bytes cb_cql_get_bytes(struct cb_cql_rd *r);
struct cb_cql_bytes cb_cql_get_short_bytes(struct cb_cql_rd *r);
struct cb_cql_bytes cb_cql_get_raw(struct cb_cql_rd *r, size_t n);

/* A column type: id, and for list/set (sub[0]) and map (sub[0], sub[1])
 * the element ids; deeper nesting and UDT/tuple fields are parsed and
 * skipped (the values still decode as [bytes]). */
struct cb_cql_type {
	uint16_t id;
	uint16_t sub[2];
	struct cb_cql_bytes custom; /* class name of a custom type */
};

struct cb_cql_column {
	struct cb_cql_bytes keyspace;
	struct cb_cql_bytes table;
	struct cb_cql_bytes name;
	struct cb_cql_type type;
};

/* Rows / Prepared metadata. */
struct cb_cql_metadata {
	int32_t flags;
	int32_t ncolumns;
	struct cb_cql_bytes paging_state; /* len < 0: no more pages */
	int32_t npk;                      /* prepared: partition key count */
	uint16_t pk_index[CB_CQL_MAX_COLUMNS];
	struct cb_cql_column columns[CB_CQL_MAX_COLUMNS]; /* ncolumns of them,
							   * unless NO_METADATA */
};

/* A decoded ERROR; extra fields as the code has them. */
struct cb_cql_error {
	int32_t code;
	struct cb_cql_bytes message;
	uint16_t consistency;
	int32_t received, blockfor, alive, numfailures;
	bool data_present;
	struct cb_cql_bytes write_type;
	struct cb_cql_bytes keyspace, table;      /* already exists, function */
	struct cb_cql_bytes function;
	struct cb_cql_bytes unprepared_id;
};

struct cb_cql_schema_change {
	struct cb_cql_bytes change;  /* CREATED, UPDATED, DROPPED */
	struct cb_cql_bytes target;  /* KEYSPACE, TABLE, TYPE, FUNCTION, AGGREGATE */
	struct cb_cql_bytes keyspace;
	struct cb_cql_bytes name;
};

/* A response, decoded.  Which member is set depends on opcode (and
 * result_kind).  Large (the metadata arrays): keep one per connection. */
struct cb_cql_response {
	struct cb_cql_header hdr;
	uint8_t tracing_id[16];
	bool has_tracing;
	int32_t nwarnings;
	struct cb_cql_bytes warning; /* the first warning */
	struct cb_cql_error error;
	int32_t result_kind;
	struct cb_cql_metadata meta;        /* ROWS, PREPARED (bind variables) */
	struct cb_cql_bytes prepared_id;
	int32_t nrows;
	struct cb_cql_rd rows;              /* positioned at the first row */
	struct cb_cql_bytes keyspace;       /* SET_KEYSPACE */
	struct cb_cql_schema_change schema; /* SCHEMA_CHANGE, EVENT */
	struct cb_cql_bytes authenticator;  /* AUTHENTICATE */
	struct cb_cql_bytes token;          /* AUTH_CHALLENGE, AUTH_SUCCESS */
	struct cb_cql_bytes supported;      /* SUPPORTED: raw [string multimap] */
	struct cb_cql_bytes event_type;     /* EVENT */
	struct cb_cql_bytes event_change;   /* EVENT TOPOLOGY/STATUS_CHANGE */
	uint8_t event_addr[16];
	uint8_t event_addr_len;
	int32_t event_port;
};

/*
 * Decodes the body of a response whose header is h (already parsed, body
 * not compressed).  Returns 0 or CB_E_PROTO with a reason (which field of
 * which opcode was truncated or invalid).  An ERROR frame decodes with 0:
 * the caller looks at opcode and error.
 */
int cb_cql_response_parse(const struct cb_cql_header *h, const uint8_t *body,
			  size_t len, struct cb_cql_response *out,
			  char *errstr, size_t errstr_size);

/*
 * Reads the next row's column values into v[0..ncols-1] (len < 0: null).
 * Returns 1 when a row was read, 0 after the last one, or CB_E_PROTO.
 */
int cb_cql_rows_next(struct cb_cql_response *res, struct cb_cql_bytes *v,
		     int32_t ncols);

/* Collections (list/set): count then elements. */
int cb_cql_coll_open(struct cb_cql_bytes v, struct cb_cql_rd *r,
		     int32_t *count);

/*
 * Renders a value of type t as text into out (NUL-terminated, cut to fit):
 * text/ascii as is, int/bigint/smallint/tinyint/counter decimal, timestamp
 * as epoch ms, boolean true/false, uuid canonical form, blob 0x-hex, list
 * and set as [a, b].  Returns the length it would have had, or CB_E_PROTO
 * for a value that does not fit its type, CB_E_UNSUPPORTED for a type this
 * cannot render.
 */
int cb_cql_value_text(const struct cb_cql_type *t, struct cb_cql_bytes v,
		      char *out, size_t out_size);

/*
 * Puts a sentence describing the ERROR into buf: the code's name, the
 * server's message and the decoded details, e.g. "Write timeout (0x1100):
 * ... (consistency LOCAL_ONE, received 0 of 1, write type SIMPLE)".
 */
void cb_cql_error_describe(const struct cb_cql_error *e, char *buf,
			   size_t size);

const char *cb_cql_error_name(int32_t code);
const char *cb_cql_consistency_name(uint16_t c);
/* Parses "LOCAL_ONE" etc.; returns the code or -1. */
int cb_cql_consistency_parse(const char *s);
const char *cb_cql_opcode_name(uint8_t op);

/* True for the errors worth retrying a (idempotent) write after. */
bool cb_cql_error_retryable(const struct cb_cql_error *e);

/*
 * LZ4 body compression of protocol v4: [int uncompressed length] followed
 * by an LZ4 block.  Both return the output length or a negative cb_err
 * (CB_E_TOOBIG when out is short or the declared length exceeds the cap,
 * CB_E_PROTO for a corrupt block).
 */
int cb_cql_lz4_compress(const uint8_t *in, size_t n, uint8_t *out,
			size_t out_size);
int cb_cql_lz4_decompress(const uint8_t *in, size_t n, uint8_t *out,
			  size_t out_size);
/* The uncompressed length a compressed body declares, or -1. */
int64_t cb_cql_lz4_declared_len(const uint8_t *in, size_t n);
size_t cb_cql_lz4_bound(size_t n);

#endif
