/* smp-json: generic CBOR⇄JSON translation, for commands and fields no typed parser knows */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <nettle/base64.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "smp-cbor.h"
#include "smp-json.h"

/* CBOR simple values 20..22 have JSON forms of their own. */
#define SIMPLE_FALSE 20
#define SIMPLE_TRUE 21
#define SIMPLE_NULL 22

/* -2^64, the smallest CBOR integer: its magnitude does not fit in uint64_t. */
#define NEGINT_MIN_TEXT "-18446744073709551616"

static bool key_eq(const char *key, size_t len, const char *name)
{
	return len == strlen(name) && memcmp(key, name, len) == 0;
}

/* ---- CBOR -> JSON ---------------------------------------------------------------- */

/* UTF-8 is checked before jansson sees a string (smp_utf8_valid): jansson
 * checks it too, but its NULL answer does not tell invalid text from a failed
 * allocation, and the two must map differently ("$text" vs -ENOMEM). */

/* A byte or text string's bytes: borrowed from the item when it is definite,
 * joined into tmp when it is chunked (smp_cbor_load never leaves chunked
 * strings, but a tree built by hand may hold them). */
static int string_bytes(const cbor_item_t *item, struct smp_buf *tmp, const uint8_t **ret,
			size_t *ret_len)
{
	bool text = cbor_isa_string(item);
	cbor_item_t **chunks;
	size_t n;

	if (text ? cbor_string_is_definite(item) : cbor_bytestring_is_definite(item)) {
		*ret = text ? cbor_string_handle(item) : cbor_bytestring_handle(item);
		*ret_len = text ? cbor_string_length(item) : cbor_bytestring_length(item);
		if (!*ret)
			*ret = (const uint8_t *)"";
		return 0;
	}
	chunks = text ? cbor_string_chunks_handle(item) : cbor_bytestring_chunks_handle(item);
	n = text ? cbor_string_chunk_count(item) : cbor_bytestring_chunk_count(item);
	for (size_t i = 0; i < n; i++) {
		size_t len = text ? cbor_string_length(chunks[i]) : cbor_bytestring_length(chunks[i]);

		/* An empty chunk's handle may be NULL: nothing to add. */
		if (len > 0)
			smp_buf_append(tmp, text ? cbor_string_handle(chunks[i])
						 : cbor_bytestring_handle(chunks[i]), len);
	}
	if (smp_buf_error(tmp))
		return smp_buf_error(tmp);
	*ret = tmp->data ? tmp->data : (const uint8_t *)"";
	*ret_len = tmp->len;
	return 0;
}

/* Wraps value (stolen, may be NULL after a failed allocation) in {key: value}. */
static int tagged(const char *key, json_t *value, json_t **ret)
{
	json_t *o;

	if (!value)
		return -ENOMEM;
	o = json_object();
	if (!o) {
		json_decref(value);
		return -ENOMEM;
	}
	if (json_object_set_new_nocheck(o, key, value) < 0) {
		json_decref(o);
		return -ENOMEM;
	}
	*ret = o;
	return 0;
}

static json_t *base64_string(const uint8_t *p, size_t n)
{
	_cleanup_free_ char *s = NULL;
	size_t len;

	/* n is the size of a string held in memory, so the 4/3 growth cannot wrap. */
	len = BASE64_ENCODE_RAW_LENGTH(n);
	s = malloc(len + 1);
	if (!s)
		return NULL;
	base64_encode_raw(s, n, p);
	return json_stringn_nocheck(s, len);
}

static int uint_to_json(uint64_t v, json_t **ret)
{
	char text[24];
	json_t *j;

	if (v > INT64_MAX) {
		snprintf(text, sizeof(text), "%" PRIu64, v);
		return tagged("$int", json_string_nocheck(text), ret);
	}
	j = json_integer((json_int_t)v);
	if (!j)
		return -ENOMEM;
	*ret = j;
	return 0;
}

/* The CBOR negative integer -1 - n. */
static int negint_to_json(uint64_t n, json_t **ret)
{
	char text[sizeof(NEGINT_MIN_TEXT)];
	json_t *j;

	if (n > INT64_MAX) {
		if (n == UINT64_MAX)
			strcpy(text, NEGINT_MIN_TEXT);
		else
			snprintf(text, sizeof(text), "-%" PRIu64, n + 1);
		return tagged("$int", json_string_nocheck(text), ret);
	}
	j = json_integer(-1 - (json_int_t)n);
	if (!j)
		return -ENOMEM;
	*ret = j;
	return 0;
}

static int string_to_json(const cbor_item_t *item, json_t **ret)
{
	struct smp_buf tmp = SMP_BUF_INIT;
	const uint8_t *p;
	size_t n;
	json_t *j;
	int r;

	r = string_bytes(item, &tmp, &p, &n);
	if (r < 0)
		goto out;
	if (cbor_isa_bytestring(item))
		r = tagged("$bytes", base64_string(p, n), &j);
	else if (!smp_utf8_valid(p, n))
		r = tagged("$text", base64_string(p, n), &j);
	else if (!(j = json_stringn_nocheck((const char *)p, n)))
		r = -ENOMEM;
	if (r == 0)
		*ret = j;
out:
	smp_buf_clear(&tmp);
	return r;
}

static int float_ctrl_to_json(const cbor_item_t *item, json_t **ret)
{
	json_t *j;

	if (cbor_float_get_width(item) == CBOR_FLOAT_0) {
		uint8_t v = cbor_ctrl_value(item);

		if (v == SIMPLE_FALSE || v == SIMPLE_TRUE)
			j = json_boolean(v == SIMPLE_TRUE);
		else if (v == SIMPLE_NULL)
			j = json_null();
		else
			return tagged("$simple", json_integer(v), ret);
	} else {
		double d = cbor_float_get_float(item);

		if (isnan(d))
			return tagged("$float", json_string_nocheck("nan"), ret);
		if (isinf(d))
			return tagged("$float", json_string_nocheck(d > 0 ? "inf" : "-inf"), ret);
		j = json_real(d);
	}
	if (!j)
		return -ENOMEM;
	*ret = j;
	return 0;
}

static int cbor_to_json(const cbor_item_t *item, unsigned depth, json_t **ret);

/* A key that can be an ordinary JSON object member: UTF-8 text that does not
 * start with '$' (those are reserved for the tagged forms). */
static int plain_key(const cbor_item_t *key, struct smp_buf *tmp, const uint8_t **ret,
		     size_t *ret_len)
{
	const uint8_t *p;
	size_t n;
	int r;

	if (!cbor_isa_string(key))
		return 0;
	r = string_bytes(key, tmp, &p, &n);
	if (r < 0)
		return r;
	if ((n > 0 && p[0] == '$') || !smp_utf8_valid(p, n))
		return 0;
	*ret = p;
	*ret_len = n;
	return 1;
}

/* Tries the ordinary object form. Returns 1 with *ret set, 0 when the keys
 * need the "$map" form, or a negative errno. Keys go in first with null
 * placeholders so that values are translated once, whichever form wins;
 * replacing a member keeps its place in jansson's insertion order. */
static int map_to_object(const cbor_item_t *item, unsigned depth, json_t **ret)
{
	struct cbor_pair *pairs = cbor_map_handle(item);
	size_t n = cbor_map_size(item);
	json_auto_t *obj = json_object();
	int r = 0;

	if (!obj)
		return -ENOMEM;
	for (size_t pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++) {
			struct smp_buf tmp = SMP_BUF_INIT;
			const uint8_t *k;
			size_t klen;
			json_t *v = json_null();

			r = plain_key(pairs[i].key, &tmp, &k, &klen);
			if (r <= 0)
				goto next;
			if (pass == 0 && json_object_getn(obj, (const char *)k, klen)) {
				r = 0; /* duplicate key */
				goto next;
			}
			if (pass == 1 && (r = cbor_to_json(pairs[i].value, depth + 1, &v)) < 0)
				goto next;
			r = json_object_setn_new_nocheck(obj, (const char *)k, klen, v) < 0 ? -ENOMEM : 1;
		next:
			smp_buf_clear(&tmp);
			if (r <= 0)
				return r;
		}
	*ret = TAKE_PTR(obj);
	return 1;
}

static int map_to_json(const cbor_item_t *item, unsigned depth, json_t **ret)
{
	struct cbor_pair *pairs = cbor_map_handle(item);
	json_auto_t *list = NULL;
	int r;

	r = map_to_object(item, depth, ret);
	if (r != 0)
		return r < 0 ? r : 0;

	list = json_array();
	if (!list)
		return -ENOMEM;
	for (size_t i = 0; i < cbor_map_size(item); i++) {
		json_t *pair = json_array();

		/* The list owns the pair from here; _new appenders consume their
		 * argument even when they fail (and refuse NULL). */
		if (json_array_append_new(list, pair) < 0)
			return -ENOMEM;
		for (unsigned k = 0; k < 2; k++) {
			json_t *x;

			r = cbor_to_json(k ? pairs[i].value : pairs[i].key, depth + 1, &x);
			if (r < 0)
				return r;
			if (json_array_append_new(pair, x) < 0)
				return -ENOMEM;
		}
	}
	return tagged("$map", TAKE_PTR(list), ret);
}

static int array_to_json(const cbor_item_t *item, unsigned depth, json_t **ret)
{
	cbor_item_t **items = cbor_array_handle(item);
	json_auto_t *a = json_array();

	if (!a)
		return -ENOMEM;
	for (size_t i = 0; i < cbor_array_size(item); i++) {
		json_t *v;
		int r = cbor_to_json(items[i], depth + 1, &v);

		if (r < 0)
			return r;
		if (json_array_append_new(a, v) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(a);
	return 0;
}

static int tag_to_json(const cbor_item_t *item, unsigned depth, json_t **ret)
{
	json_auto_t *o = json_object();
	cbor_item_t *inner;
	json_t *n, *v;
	int r;

	if (!o)
		return -ENOMEM;
	r = uint_to_json(cbor_tag_value(item), &n);
	if (r < 0)
		return r;
	if (json_object_set_new_nocheck(o, "$tag", n) < 0)
		return -ENOMEM;
	inner = cbor_tag_item(item); /* new reference */
	r = cbor_to_json(inner, depth + 1, &v);
	cbor_decref(&inner);
	if (r < 0)
		return r;
	if (json_object_set_new_nocheck(o, "value", v) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(o);
	return 0;
}

/* depth counts the containers (arrays, maps, tags) around item. Like
 * smp_cbor_load(), only containers that hold something count as a level (an
 * empty one needs no recursion), so every tree it accepts translates. */
static int cbor_to_json(const cbor_item_t *item, unsigned depth, json_t **ret)
{
	switch (cbor_typeof(item)) {
	case CBOR_TYPE_UINT:
		return uint_to_json(cbor_get_int(item), ret);
	case CBOR_TYPE_NEGINT:
		return negint_to_json(cbor_get_int(item), ret);
	case CBOR_TYPE_BYTESTRING:
	case CBOR_TYPE_STRING:
		return string_to_json(item, ret);
	case CBOR_TYPE_FLOAT_CTRL:
		return float_ctrl_to_json(item, ret);
	case CBOR_TYPE_ARRAY:
	case CBOR_TYPE_MAP:
	case CBOR_TYPE_TAG:
		break;
	}
	if (depth >= SMP_CBOR_MAX_DEPTH &&
	    !(cbor_isa_array(item) && cbor_array_size(item) == 0) &&
	    !(cbor_isa_map(item) && cbor_map_size(item) == 0))
		return -EBADMSG;
	if (cbor_isa_array(item))
		return array_to_json(item, depth, ret);
	if (cbor_isa_map(item))
		return map_to_json(item, depth, ret);
	return tag_to_json(item, depth, ret);
}

int smp_json_from_cbor(const cbor_item_t *item, json_t **ret)
{
	if (!item)
		return -EINVAL;
	return cbor_to_json(item, 0, ret);
}

int smp_json_from_cbor_bytes(const uint8_t *p, size_t n, json_t **ret)
{
	_cleanup_(smp_cbor_decrefp) cbor_item_t *item = NULL;
	int r;

	r = smp_cbor_load(p, n, SMP_CBOR_MAX_DEPTH, &item);
	if (r < 0)
		return r;
	return cbor_to_json(item, 0, ret);
}

/* ---- JSON -> CBOR ---------------------------------------------------------------- */

/* The longest CBOR head is 9 bytes. */
#define HEAD_MAX 9

#define PUT_HEAD(b, call)                                           \
	do {                                                        \
		unsigned char *_p = smp_buf_reserve((b), HEAD_MAX); \
		if (_p)                                             \
			(b)->len += call;                           \
	} while (0)

static void put_negint(struct smp_buf *b, uint64_t n)
{
	PUT_HEAD(b, cbor_encode_negint(n, _p, HEAD_MAX));
}

static void put_tag(struct smp_buf *b, uint64_t tag)
{
	/* libcbor 0.8's decoder refuses the one-byte heads of tags 6..20 (c6..d4,
	 * "reserved" in its tables), so smp_cbor_load would refuse what we wrote.
	 * The head with a one-byte argument (d8 06) means the same to everyone. */
	if (tag >= 6 && tag <= 20) {
		uint8_t head[2] = { 0xd8, (uint8_t)tag };

		smp_buf_append(b, head, sizeof(head));
		return;
	}
	PUT_HEAD(b, cbor_encode_tag(tag, _p, HEAD_MAX));
}

static void put_double(struct smp_buf *b, double d)
{
	PUT_HEAD(b, cbor_encode_double(d, _p, HEAD_MAX));
}

static void put_simple(struct smp_buf *b, uint8_t v)
{
	PUT_HEAD(b, cbor_encode_ctrl(v, _p, HEAD_MAX));
}

/* Strict standard base64 (RFC 4648 §4, padded, no whitespace): nettle's
 * decoder skips whitespace and ignores stray bits, so the input must also be
 * exactly what encoding the result gives back. Returns the bytes (free())
 * with their length, or NULL with -EINVAL / -ENOMEM in *err. */
static uint8_t *base64_decode_strict(const char *s, size_t n, size_t *ret_len, int *err)
{
	struct base64_decode_ctx ctx;
	_cleanup_free_ uint8_t *out = NULL;
	_cleanup_free_ char *check = NULL;
	size_t len = 0;

	*err = -EINVAL;
	if (n % 4)
		return NULL;
	*err = -ENOMEM;
	out = malloc(BASE64_DECODE_LENGTH(n) + 1);
	check = malloc(n + 1);
	if (!out || !check)
		return NULL;
	*err = -EINVAL;
	base64_decode_init(&ctx);
	if (!base64_decode_update(&ctx, &len, out, n, s) || !base64_decode_final(&ctx))
		return NULL;
	if (BASE64_ENCODE_RAW_LENGTH(len) != n)
		return NULL;
	base64_encode_raw(check, len, out);
	if (memcmp(check, s, n) != 0)
		return NULL;
	*ret_len = len;
	return TAKE_PTR(out);
}

/* Parses the canonical decimal of an integer in [-2^64, 2^64-1]: an optional
 * '-', then digits without leading zeros ("-0" refused). Gives the CBOR
 * argument: the value itself, or -1 - value when *ret_negative. */
static int parse_decimal(const char *s, size_t n, bool *ret_negative, uint64_t *ret)
{
	bool neg = n > 0 && s[0] == '-';
	size_t i = neg;
	uint64_t v = 0;

	if (i == n || (s[i] == '0' && (n - i > 1 || neg)))
		return -EINVAL;
	for (; i < n; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - d) / 10) {
			if (key_eq(s, n, NEGINT_MIN_TEXT)) {
				*ret_negative = true;
				*ret = UINT64_MAX;
				return 0;
			}
			return -EINVAL;
		}
		v = v * 10 + d;
	}
	*ret_negative = neg;
	*ret = neg ? v - 1 : v;
	return 0;
}

/* A JSON integer >= 0, or {"$int": "decimal"} >= 0 (for tag numbers). */
static int json_uint(const json_t *j, uint64_t *ret)
{
	const json_t *s;
	bool neg;
	uint64_t v;

	if (json_is_integer(j)) {
		if (json_integer_value(j) < 0)
			return -EINVAL;
		*ret = (uint64_t)json_integer_value(j);
		return 0;
	}
	if (!json_is_object(j) || json_object_size(j) != 1 ||
	    !(s = json_object_get(j, "$int")) || !json_is_string(s))
		return -EINVAL;
	if (parse_decimal(json_string_value(s), json_string_length(s), &neg, &v) < 0 || neg)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int json_to_cbor(const json_t *j, unsigned depth, struct smp_buf *b);

static int pairs_to_cbor(const json_t *list, unsigned depth, struct smp_buf *b)
{
	size_t n;

	if (!json_is_array(list))
		return -EINVAL;
	n = json_array_size(list);
	smp_cbor_put_map(b, n);
	for (size_t i = 0; i < n; i++) {
		const json_t *pair = json_array_get(list, i);
		int r;

		if (!json_is_array(pair) || json_array_size(pair) != 2)
			return -EINVAL;
		if ((r = json_to_cbor(json_array_get(pair, 0), depth + 1, b)) < 0 ||
		    (r = json_to_cbor(json_array_get(pair, 1), depth + 1, b)) < 0)
			return r;
	}
	return 0;
}

/* An object with a '$' key: it must be exactly one of the tagged forms. */
static int tagged_to_cbor(const json_t *o, unsigned depth, struct smp_buf *b)
{
	void *it = json_object_iter((json_t *)o); /* jansson's iterators are not const, but read only */
	const char *key = json_object_iter_key(it);
	size_t klen = json_object_iter_key_len(it);
	const json_t *v = json_object_iter_value(it);
	const char *s = json_string_value(v);
	size_t slen = json_string_length(v);
	int r = 0;

	if (json_object_size(o) == 2) {
		const json_t *tag = json_object_get(o, "$tag"), *value = json_object_get(o, "value");
		uint64_t t;

		if (!tag || !value || depth >= SMP_CBOR_MAX_DEPTH || json_uint(tag, &t) < 0)
			return -EINVAL;
		put_tag(b, t);
		return json_to_cbor(value, depth + 1, b);
	}
	if (json_object_size(o) != 1)
		return -EINVAL;

	if (key_eq(key, klen, "$bytes") || key_eq(key, klen, "$text")) {
		_cleanup_free_ uint8_t *p = NULL;
		size_t n;

		if (!s)
			return -EINVAL;
		p = base64_decode_strict(s, slen, &n, &r);
		if (!p)
			return r;
		if (key[1] == 'b')
			smp_cbor_put_bytes(b, p, n);
		else
			smp_cbor_put_textn(b, (const char *)p, n);
	} else if (key_eq(key, klen, "$int")) {
		bool neg;
		uint64_t n;

		if (!s || parse_decimal(s, slen, &neg, &n) < 0)
			return -EINVAL;
		if (neg)
			put_negint(b, n);
		else
			smp_cbor_put_uint(b, n);
	} else if (key_eq(key, klen, "$float")) {
		if (s && key_eq(s, slen, "nan"))
			put_double(b, NAN);
		else if (s && key_eq(s, slen, "inf"))
			put_double(b, INFINITY);
		else if (s && key_eq(s, slen, "-inf"))
			put_double(b, -INFINITY);
		else
			return -EINVAL;
	} else if (key_eq(key, klen, "$simple")) {
		json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;

		/* 24..31 are not well-formed simple values (RFC 8949 §3.3). */
		if (n < 0 || n > UINT8_MAX || (n >= 24 && n < 32))
			return -EINVAL;
		put_simple(b, (uint8_t)n);
	} else if (key_eq(key, klen, "$map")) {
		if (json_array_size(v) > 0 && depth >= SMP_CBOR_MAX_DEPTH)
			return -EINVAL;
		return pairs_to_cbor(v, depth, b);
	} else {
		return -EINVAL;
	}
	return 0;
}

static int object_to_cbor(const json_t *o, unsigned depth, struct smp_buf *b)
{
	const char *key;
	size_t klen;
	json_t *v;
	int r;

	json_object_keylen_foreach((json_t *)o, key, klen, v)
		if (klen > 0 && key[0] == '$')
			return tagged_to_cbor(o, depth, b);

	if (json_object_size(o) > 0 && depth >= SMP_CBOR_MAX_DEPTH)
		return -EINVAL;
	smp_cbor_put_map(b, json_object_size(o));
	json_object_keylen_foreach((json_t *)o, key, klen, v) {
		smp_cbor_put_textn(b, key, klen);
		if ((r = json_to_cbor(v, depth + 1, b)) < 0)
			return r;
	}
	return 0;
}

static int json_to_cbor(const json_t *j, unsigned depth, struct smp_buf *b)
{
	int r = 0;

	switch (json_typeof(j)) {
	case JSON_OBJECT:
		r = object_to_cbor(j, depth, b);
		break;
	case JSON_ARRAY:
		/* Only containers that hold something count, as in cbor_to_json(). */
		if (json_array_size(j) > 0 && depth >= SMP_CBOR_MAX_DEPTH)
			return -EINVAL;
		smp_cbor_put_array(b, json_array_size(j));
		for (size_t i = 0; i < json_array_size(j) && r == 0; i++)
			r = json_to_cbor(json_array_get(j, i), depth + 1, b);
		break;
	case JSON_STRING:
		smp_cbor_put_textn(b, json_string_value(j), json_string_length(j));
		break;
	case JSON_INTEGER:
		smp_cbor_put_int(b, json_integer_value(j));
		break;
	case JSON_REAL:
		put_double(b, json_real_value(j));
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		smp_cbor_put_bool(b, json_is_true(j));
		break;
	case JSON_NULL:
		smp_cbor_put_null(b);
		break;
	}
	/* Stop at the first buffer error rather than walk the rest of a large tree. */
	return r < 0 ? r : smp_buf_error(b);
}

int smp_json_to_cbor(const json_t *j, struct smp_buf *out)
{
	size_t start = out->len;
	int r;

	if (smp_buf_error(out))
		return smp_buf_error(out);
	if (!j)
		return -EINVAL;
	r = json_to_cbor(j, 0, out);
	if (r < 0 && !smp_buf_error(out))
		out->len = start;
	return r;
}

int smp_json_request(uint8_t op, uint16_t group, uint8_t id, const json_t *payload,
		     struct smp_request **ret)
{
	struct smp_request *r;
	int err;

	if (op != SMP_OP_READ && op != SMP_OP_WRITE)
		return -EINVAL;
	err = smp_request_new(op, group, id, &r);
	if (err < 0)
		return err;
	if (!payload) {
		smp_cbor_put_map(&r->pkt, 0);
		return smp_request_done(r, ret);
	}
	err = smp_json_to_cbor(payload, &r->pkt);
	/* smp-protocol.md §3: the top level of a standard group's payload is a map. */
	if (err == 0 && group < SMP_GROUP_USER_MIN &&
	    (r->pkt.data[SMP_HEADER_SIZE] >> 5) != 5 /* CBOR major type 5: map */)
		err = -EINVAL;
	if (err < 0) {
		smp_request_free(r);
		return err;
	}
	return smp_request_done(r, ret);
}
