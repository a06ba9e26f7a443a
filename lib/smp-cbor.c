/* smp-cbor: bounded decoding of untrusted CBOR, typed map lookups, and an encoder onto smp_buf */
#include <errno.h>
#include <string.h>

#include "macro.h"
#include "smp-cbor.h"

/* ---- the streaming pre-pass ------------------------------------------------ */

enum scan_kind {
	SCAN_ROOT,
	SCAN_ARRAY,
	SCAN_MAP,
	SCAN_TAG,
	SCAN_BSTR_CHUNKS,
	SCAN_TSTR_CHUNKS,
};

struct scan_frame {
	enum scan_kind kind;
	bool indefinite;
	uint64_t remaining; /* items still expected (definite frames) */
	uint64_t seen;      /* items seen (indefinite maps must close on an even count) */
};

struct scan {
	struct scan_frame stack[SMP_CBOR_MAX_DEPTH + 2];
	unsigned depth;     /* frames in use; stack[0] is the root */
	unsigned max_depth;
	uint64_t pending;   /* items a container just declared: checked against bytes left */
	bool bad_text;      /* the item just seen is a definite text string that is not UTF-8 */
	int err;
};

static void scan_pop_done(struct scan *s)
{
	while (s->depth > 0) {
		struct scan_frame *f = &s->stack[s->depth - 1];

		if (f->indefinite || f->remaining > 0)
			break;
		s->depth--;
	}
}

/* Counts one data item in the current frame; chunk is true for a definite
 * string inside an indefinite string of the same major type. */
static bool scan_item(struct scan *s, enum scan_kind chunk_of)
{
	struct scan_frame *f;

	if (s->err)
		return false;
	if (s->depth == 0) {
		s->err = -EBADMSG; /* an item after the top-level one */
		return false;
	}
	f = &s->stack[s->depth - 1];
	if ((f->kind == SCAN_BSTR_CHUNKS || f->kind == SCAN_TSTR_CHUNKS) && f->kind != chunk_of) {
		s->err = -EBADMSG;
		return false;
	}
	f->seen++;
	if (!f->indefinite)
		f->remaining--;
	return true;
}

static void scan_push(struct scan *s, enum scan_kind kind, bool indefinite, uint64_t items)
{
	if (s->err)
		return;
	if (!indefinite && items == 0) {
		scan_pop_done(s);
		return;
	}
	if (s->depth > s->max_depth) {
		s->err = -EBADMSG;
		return;
	}
	s->stack[s->depth++] = (struct scan_frame){
		.kind = kind, .indefinite = indefinite, .remaining = items,
	};
	if (!indefinite)
		s->pending = items;
}

static void scan_leaf(struct scan *s)
{
	if (scan_item(s, SCAN_ROOT))
		scan_pop_done(s);
}

static void scan_on_uint8(void *c, uint8_t v) { scan_leaf(c); }
static void scan_on_uint16(void *c, uint16_t v) { scan_leaf(c); }
static void scan_on_uint32(void *c, uint32_t v) { scan_leaf(c); }
static void scan_on_uint64(void *c, uint64_t v) { scan_leaf(c); }
static void scan_on_simple(void *c) { scan_leaf(c); }
static void scan_on_float(void *c, float v) { scan_leaf(c); }
static void scan_on_double(void *c, double v) { scan_leaf(c); }
static void scan_on_bool(void *c, bool v) { scan_leaf(c); }

static void scan_on_bstr(void *c, cbor_data d, size_t n)
{
	if (scan_item(c, SCAN_BSTR_CHUNKS))
		scan_pop_done(c);
}

bool smp_utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = p[i];
		size_t more;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			more = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			more = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			more = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i - 1 < more)
			return false;
		for (size_t k = 1; k <= more; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if ((more == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (more == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += 1 + more;
	}
	return true;
}

static void scan_on_tstr(void *c, cbor_data d, size_t n)
{
	struct scan *s = c;
	bool chunk = s->depth > 0 && s->stack[s->depth - 1].kind == SCAN_TSTR_CHUNKS;

	if (scan_item(c, SCAN_TSTR_CHUNKS)) {
		/* Chunks of an indefinite string stay as they are (libcbor refuses bad ones). */
		if (!chunk && !smp_utf8_valid(d, n))
			s->bad_text = true;
		scan_pop_done(c);
	}
}

static void scan_on_bstr_start(void *c)
{
	if (scan_item(c, SCAN_ROOT))
		scan_push(c, SCAN_BSTR_CHUNKS, true, 0);
}

static void scan_on_tstr_start(void *c)
{
	if (scan_item(c, SCAN_ROOT))
		scan_push(c, SCAN_TSTR_CHUNKS, true, 0);
}

static void scan_on_array(void *c, size_t n)
{
	if (scan_item(c, SCAN_ROOT))
		scan_push(c, SCAN_ARRAY, false, n);
}

static void scan_on_array_indef(void *c)
{
	if (scan_item(c, SCAN_ROOT))
		scan_push(c, SCAN_ARRAY, true, 0);
}

static void scan_on_map(void *c, size_t n)
{
	struct scan *s = c;

	if (n > UINT64_MAX / 2) {
		s->err = -EBADMSG;
		return;
	}
	if (scan_item(s, SCAN_ROOT))
		scan_push(s, SCAN_MAP, false, (uint64_t)n * 2);
}

static void scan_on_map_indef(void *c)
{
	if (scan_item(c, SCAN_ROOT))
		scan_push(c, SCAN_MAP, true, 0);
}

static void scan_on_tag(void *c, uint64_t v)
{
	if (scan_item(c, SCAN_ROOT))
		scan_push(c, SCAN_TAG, false, 1);
}

static void scan_on_break(void *c)
{
	struct scan *s = c;
	struct scan_frame *f;

	if (s->err)
		return;
	if (s->depth == 0 || !s->stack[s->depth - 1].indefinite) {
		s->err = -EBADMSG;
		return;
	}
	f = &s->stack[s->depth - 1];
	if (f->kind == SCAN_MAP && f->seen % 2) {
		s->err = -EBADMSG;
		return;
	}
	s->depth--;
	scan_pop_done(s);
}

static const struct cbor_callbacks scan_callbacks = {
	.uint8 = scan_on_uint8,
	.uint16 = scan_on_uint16,
	.uint32 = scan_on_uint32,
	.uint64 = scan_on_uint64,
	.negint8 = scan_on_uint8,
	.negint16 = scan_on_uint16,
	.negint32 = scan_on_uint32,
	.negint64 = scan_on_uint64,
	.byte_string_start = scan_on_bstr_start,
	.byte_string = scan_on_bstr,
	.string = scan_on_tstr,
	.string_start = scan_on_tstr_start,
	.indef_array_start = scan_on_array_indef,
	.array_start = scan_on_array,
	.indef_map_start = scan_on_map_indef,
	.map_start = scan_on_map,
	.tag = scan_on_tag,
	.float2 = scan_on_float,
	.float4 = scan_on_float,
	.float8 = scan_on_double,
	.undefined = scan_on_simple,
	.null = scan_on_simple,
	.boolean = scan_on_bool,
	.indef_break = scan_on_break,
};

/* Checks the item's shape. When patch is a copy of data, the head of every
 * definite text string that is not UTF-8 is turned into a byte string head
 * there; *ret_bad_text counts such strings. */
static int smp_cbor_scan(const uint8_t *data, size_t len, unsigned max_depth, uint8_t *patch,
			 size_t *ret_bad_text)
{
	struct scan s = {
		.stack[0] = { .kind = SCAN_ROOT, .remaining = 1 },
		.depth = 1,
		.max_depth = MIN(max_depth, (unsigned)SMP_CBOR_MAX_DEPTH),
	};
	size_t off = 0, bad_text = 0;

	while (off < len) {
		struct cbor_decoder_result r;

		if (s.depth == 0)
			return -EBADMSG; /* trailing bytes after the item */
		s.pending = 0;
		s.bad_text = false;
		r = cbor_stream_decode(data + off, len - off, &scan_callbacks, &s);
		if (r.status != CBOR_DECODER_FINISHED || r.read == 0)
			return -EBADMSG;
		if (s.err)
			return s.err;
		if (s.bad_text) {
			bad_text++;
			if (patch)
				patch[off] ^= 0x20; /* major type 3 (text) -> 2 (bytes) */
		}
		off += r.read;
		/* Every item takes at least one byte: a container cannot hold more
		 * items than there are bytes left. */
		if (s.pending > len - off)
			return -EBADMSG;
	}
	if (s.depth != 0)
		return -EBADMSG;
	if (ret_bad_text)
		*ret_bad_text = bad_text;
	return 0;
}

/* ---- tree building and string normalisation -------------------------------- */

static cbor_item_t *smp_cbor_join_chunks(cbor_item_t *item)
{
	bool text = cbor_isa_string(item);
	cbor_item_t **chunks = text ? cbor_string_chunks_handle(item) : cbor_bytestring_chunks_handle(item);
	size_t n = text ? cbor_string_chunk_count(item) : cbor_bytestring_chunk_count(item);
	struct smp_buf b = SMP_BUF_INIT;
	cbor_item_t *out;

	for (size_t i = 0; i < n; i++)
		smp_buf_append(&b, text ? cbor_string_handle(chunks[i]) : cbor_bytestring_handle(chunks[i]),
			       text ? cbor_string_length(chunks[i]) : cbor_bytestring_length(chunks[i]));
	if (smp_buf_error(&b)) {
		smp_buf_clear(&b);
		return NULL;
	}
	if (text) {
		out = cbor_new_definite_string();
		if (out)
			cbor_string_set_handle(out, b.data ? b.data : (uint8_t *)calloc(1, 1), b.len);
	} else {
		out = cbor_new_definite_bytestring();
		if (out)
			cbor_bytestring_set_handle(out, b.data ? b.data : (uint8_t *)calloc(1, 1), b.len);
	}
	if (!out)
		smp_buf_clear(&b);
	return out;
}

/* Replaces indefinite strings below *slot with definite ones. The tree depth is
 * already bounded by the scan, so recursion is bounded too. */
static int smp_cbor_normalize(cbor_item_t **slot)
{
	cbor_item_t *item = *slot;
	int r;

	switch (cbor_typeof(item)) {
	case CBOR_TYPE_BYTESTRING:
		if (cbor_bytestring_is_definite(item))
			return 0;
		break;
	case CBOR_TYPE_STRING:
		if (cbor_string_is_definite(item))
			return 0;
		break;
	case CBOR_TYPE_ARRAY: {
		cbor_item_t **h = cbor_array_handle(item);

		for (size_t i = 0; i < cbor_array_size(item); i++)
			if ((r = smp_cbor_normalize(&h[i])) < 0)
				return r;
		return 0;
	}
	case CBOR_TYPE_MAP: {
		struct cbor_pair *p = cbor_map_handle(item);

		for (size_t i = 0; i < cbor_map_size(item); i++) {
			if ((r = smp_cbor_normalize(&p[i].key)) < 0)
				return r;
			if ((r = smp_cbor_normalize(&p[i].value)) < 0)
				return r;
		}
		return 0;
	}
	case CBOR_TYPE_TAG: {
		cbor_item_t *inner = cbor_tag_item(item); /* new reference */
		cbor_item_t *orig = inner;

		r = smp_cbor_normalize(&inner);
		if (r == 0 && inner != orig) {
			/* libcbor 0.8's cbor_tag_set_item() does not release the item
			 * it replaces: drop the tag's reference to it here. */
			cbor_tag_set_item(item, inner);
			cbor_decref(&orig);
		}
		cbor_decref(&inner);
		return r;
	}
	default:
		return 0;
	}

	{
		cbor_item_t *joined = smp_cbor_join_chunks(item);

		if (!joined)
			return -ENOMEM;
		cbor_decref(slot);
		*slot = joined;
	}
	return 0;
}

int smp_cbor_load(const uint8_t *data, size_t len, unsigned max_depth, cbor_item_t **ret)
{
	struct cbor_load_result res;
	_cleanup_free_ uint8_t *copy = NULL;
	cbor_item_t *item;
	size_t bad_text;
	int r;

	if (!data || len == 0)
		return -EBADMSG;
	r = smp_cbor_scan(data, len, max_depth, NULL, &bad_text);
	if (r < 0)
		return r;
	/* libcbor refuses text that is not UTF-8, but devices send raw shell
	 * output as text: such strings are loaded as byte strings instead. */
	if (bad_text > 0) {
		copy = malloc(len);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, data, len);
		r = smp_cbor_scan(copy, len, max_depth, copy, NULL);
		if (r < 0)
			return r;
		data = copy;
	}
	item = cbor_load(data, len, &res);
	if (!item)
		return res.error.code == CBOR_ERR_MEMERROR ? -ENOMEM : -EBADMSG;
	if (res.read != len) {
		cbor_decref(&item);
		return -EBADMSG;
	}
	r = smp_cbor_normalize(&item);
	if (r < 0) {
		cbor_decref(&item);
		return r;
	}
	*ret = item;
	return 0;
}

/* ---- lookups ------------------------------------------------------------------ */

bool smp_cbor_text_eq(const cbor_item_t *item, const char *s)
{
	size_t n = strlen(s);

	return item && cbor_isa_string(item) && cbor_string_is_definite(item) &&
	       cbor_string_length(item) == n && memcmp(cbor_string_handle(item), s, n) == 0;
}

const cbor_item_t *smp_cbor_map_get(const cbor_item_t *map, const char *key)
{
	struct cbor_pair *p;

	if (!map || !cbor_isa_map(map))
		return NULL;
	p = cbor_map_handle(map);
	for (size_t i = 0; i < cbor_map_size(map); i++)
		if (smp_cbor_text_eq(p[i].key, key))
			return p[i].value;
	return NULL;
}

int smp_cbor_item_uint(const cbor_item_t *item, uint64_t *ret)
{
	if (!item || !cbor_isa_uint(item))
		return -EBADMSG;
	*ret = cbor_get_int(item);
	return 0;
}

int smp_cbor_item_int(const cbor_item_t *item, int64_t *ret)
{
	uint64_t v;

	if (!item)
		return -EBADMSG;
	if (cbor_isa_uint(item)) {
		v = cbor_get_int(item);
		if (v > INT64_MAX)
			return -ERANGE;
		*ret = (int64_t)v;
		return 0;
	}
	if (cbor_isa_negint(item)) {
		v = cbor_get_int(item); /* value is -1 - v */
		if (v > INT64_MAX)
			return -ERANGE;
		*ret = -1 - (int64_t)v;
		return 0;
	}
	return -EBADMSG;
}

int smp_cbor_item_text(const cbor_item_t *item, char **ret)
{
	size_t n;
	char *s;

	if (!item || !cbor_isa_string(item) || !cbor_string_is_definite(item))
		return -EBADMSG;
	n = cbor_string_length(item);
	if (n && memchr(cbor_string_handle(item), 0, n))
		return -EBADMSG;
	s = malloc(n + 1);
	if (!s)
		return -ENOMEM;
	if (n)
		memcpy(s, cbor_string_handle(item), n);
	s[n] = 0;
	*ret = s;
	return 0;
}

int smp_cbor_item_bool(const cbor_item_t *item, bool *ret)
{
	/* libcbor 0.8's cbor_is_bool() asserts on a float: check the width first. */
	if (!item || !cbor_isa_float_ctrl(item) || cbor_float_get_width(item) != CBOR_FLOAT_0 ||
	    !cbor_is_bool(item))
		return -EBADMSG;
	*ret = cbor_get_bool(item);
	return 0;
}

int smp_cbor_get_uint(const cbor_item_t *map, const char *key, uint64_t *ret)
{
	const cbor_item_t *v = smp_cbor_map_get(map, key);

	return v ? smp_cbor_item_uint(v, ret) : -ENOENT;
}

int smp_cbor_get_int(const cbor_item_t *map, const char *key, int64_t *ret)
{
	const cbor_item_t *v = smp_cbor_map_get(map, key);

	return v ? smp_cbor_item_int(v, ret) : -ENOENT;
}

int smp_cbor_get_bool(const cbor_item_t *map, const char *key, bool *ret)
{
	const cbor_item_t *v = smp_cbor_map_get(map, key);

	return v ? smp_cbor_item_bool(v, ret) : -ENOENT;
}

int smp_cbor_get_text(const cbor_item_t *map, const char *key, char **ret)
{
	const cbor_item_t *v = smp_cbor_map_get(map, key);

	return v ? smp_cbor_item_text(v, ret) : -ENOENT;
}

int smp_cbor_get_bytes(const cbor_item_t *map, const char *key, const uint8_t **ret,
		       size_t *ret_len)
{
	const cbor_item_t *v = smp_cbor_map_get(map, key);

	if (!v)
		return -ENOENT;
	if (!cbor_isa_bytestring(v) || !cbor_bytestring_is_definite(v))
		return -EBADMSG;
	*ret = cbor_bytestring_handle(v);
	*ret_len = cbor_bytestring_length(v);
	return 0;
}

/* ---- encoding ------------------------------------------------------------------ */

/* The longest CBOR head is 9 bytes. */
#define HEAD_MAX 9

#define PUT_HEAD(b, call)                                        \
	do {                                                     \
		unsigned char *_p = smp_buf_reserve((b), HEAD_MAX); \
		if (_p)                                          \
			(b)->len += call;                        \
	} while (0)

void smp_cbor_put_map(struct smp_buf *b, size_t pairs)
{
	PUT_HEAD(b, cbor_encode_map_start(pairs, _p, HEAD_MAX));
}

void smp_cbor_put_map_indef(struct smp_buf *b)
{
	PUT_HEAD(b, cbor_encode_indef_map_start(_p, HEAD_MAX));
}

void smp_cbor_put_array(struct smp_buf *b, size_t items)
{
	PUT_HEAD(b, cbor_encode_array_start(items, _p, HEAD_MAX));
}

void smp_cbor_put_array_indef(struct smp_buf *b)
{
	PUT_HEAD(b, cbor_encode_indef_array_start(_p, HEAD_MAX));
}

void smp_cbor_put_break(struct smp_buf *b)
{
	PUT_HEAD(b, cbor_encode_break(_p, HEAD_MAX));
}

void smp_cbor_put_uint(struct smp_buf *b, uint64_t v)
{
	PUT_HEAD(b, cbor_encode_uint(v, _p, HEAD_MAX));
}

void smp_cbor_put_int(struct smp_buf *b, int64_t v)
{
	if (v >= 0)
		PUT_HEAD(b, cbor_encode_uint((uint64_t)v, _p, HEAD_MAX));
	else
		PUT_HEAD(b, cbor_encode_negint((uint64_t)(-1 - v), _p, HEAD_MAX));
}

void smp_cbor_put_bool(struct smp_buf *b, bool v)
{
	PUT_HEAD(b, cbor_encode_bool(v, _p, HEAD_MAX));
}

void smp_cbor_put_null(struct smp_buf *b)
{
	PUT_HEAD(b, cbor_encode_null(_p, HEAD_MAX));
}

void smp_cbor_put_textn(struct smp_buf *b, const char *s, size_t n)
{
	PUT_HEAD(b, cbor_encode_string_start(n, _p, HEAD_MAX));
	smp_buf_append(b, s, n);
}

void smp_cbor_put_text(struct smp_buf *b, const char *s)
{
	smp_cbor_put_textn(b, s, strlen(s));
}

uint8_t *smp_cbor_put_bytes_reserve(struct smp_buf *b, size_t n)
{
	uint8_t *p;

	PUT_HEAD(b, cbor_encode_bytestring_start(n, _p, HEAD_MAX));
	p = smp_buf_reserve(b, n);
	if (!p)
		return NULL;
	b->len += n;
	return p;
}

void smp_cbor_put_bytes(struct smp_buf *b, const void *p, size_t n)
{
	uint8_t *dst = smp_cbor_put_bytes_reserve(b, n);

	if (dst && n)
		memcpy(dst, p, n);
}

size_t smp_cbor_uint_size(uint64_t v)
{
	return v < 24 ? 1 : v <= UINT8_MAX ? 2 : v <= UINT16_MAX ? 3 : v <= UINT32_MAX ? 5 : 9;
}
