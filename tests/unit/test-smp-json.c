/* test-smp-json: the CBOR<->JSON mapping of doc/cbor-json.md, both ways, on vectors and recordings */
#include <errno.h>
#include <math.h>
#include <nettle/base64.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "smp-cbor.h"
#include "smp-json.h"
#include "smp-response.h"
#include "tests/tap.h"

#define LOAD_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL)
#define DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY)

static json_t *jload(const char *text)
{
	json_error_t e;
	json_t *j = json_loadb(text, strlen(text), LOAD_FLAGS, &e);

	if (!j) {
		fprintf(stderr, "bad JSON in test: %s: %s\n", text, e.text);
		abort();
	}
	return j;
}

static void diag_json(const char *what, const json_t *j)
{
	char *s = j ? json_dumps(j, DUMP_FLAGS) : NULL;

	tap_diag("%s: %s", what, s ? s : "(none)");
	free(s);
}

/* CBOR hex -> JSON: returns the translation (or NULL) and checks the code. */
static json_t *from_hex(const char *hex, int want_err, const char *name)
{
	size_t n;
	_cleanup_free_ uint8_t *p = tap_unhex(hex, &n);
	json_t *j = NULL;
	int r = smp_json_from_cbor_bytes(p, n, &j);

	if (!is_int(r, want_err, "%s: CBOR -> JSON returns %d", name, want_err)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static bool json_is(const json_t *got, const char *want_text, const char *name)
{
	json_auto_t *want = jload(want_text);
	bool good = got && json_equal((json_t *)got, want);

	if (!ok(good, "%s: JSON is %s", name, want_text))
		diag_json("got", got);
	return good;
}

/* JSON -> CBOR, compared with hex. */
static void to_cbor_is(const json_t *j, const char *want_hex, const char *name)
{
	struct smp_buf b = SMP_BUF_INIT;
	size_t n;
	_cleanup_free_ uint8_t *want = tap_unhex(want_hex, &n);
	int r = smp_json_to_cbor(j, &b);

	if (is_int(r, 0, "%s: JSON -> CBOR succeeds", name))
		is_mem(b.data, b.len, want, n, "%s: CBOR is %s", name, want_hex);
	smp_buf_clear(&b);
}

/* Mapped both ways exactly: CBOR -> JSON gives json, json -> CBOR gives the bytes back. */
static const struct {
	const char *name, *cbor, *json;
} both_ways[] = {
	{ "uint 0", "00", "0" },
	{ "uint 23", "17", "23" },
	{ "uint 24", "1818", "24" },
	{ "uint 255", "18ff", "255" },
	{ "uint 256", "190100", "256" },
	{ "uint 65535", "19ffff", "65535" },
	{ "uint 65536", "1a00010000", "65536" },
	{ "uint 2^32-1", "1affffffff", "4294967295" },
	{ "uint 2^32", "1b0000000100000000", "4294967296" },
	{ "uint INT64_MAX", "1b7fffffffffffffff", "9223372036854775807" },
	{ "uint INT64_MAX+1", "1b8000000000000000", "{\"$int\": \"9223372036854775808\"}" },
	{ "uint UINT64_MAX", "1bffffffffffffffff", "{\"$int\": \"18446744073709551615\"}" },
	{ "negint -1", "20", "-1" },
	{ "negint -24", "37", "-24" },
	{ "negint -25", "3818", "-25" },
	{ "negint -256", "38ff", "-256" },
	{ "negint -257", "390100", "-257" },
	{ "negint INT64_MIN", "3b7fffffffffffffff", "-9223372036854775808" },
	{ "negint INT64_MIN-1", "3b8000000000000000", "{\"$int\": \"-9223372036854775809\"}" },
	{ "negint -2^64", "3bffffffffffffffff", "{\"$int\": \"-18446744073709551616\"}" },
	{ "text", "6568656c6c6f", "\"hello\"" },
	{ "empty text", "60", "\"\"" },
	{ "text with NUL", "63610062", "\"a\\u0000b\"" },
	{ "text 2-byte UTF-8", "62c3a9", "\"\\u00e9\"" },
	{ "text 4-byte UTF-8", "64f09f9880", "\"\\ud83d\\ude00\"" },
	{ "text U+10FFFF", "64f48fbfbf", "\"\\udbff\\udfff\"" },
	{ "empty bytes", "40", "{\"$bytes\": \"\"}" },
	{ "bytes", "43010203", "{\"$bytes\": \"AQID\"}" },
	{ "bytes padded", "4401020304", "{\"$bytes\": \"AQIDBA==\"}" },
	{ "false", "f4", "false" },
	{ "true", "f5", "true" },
	{ "null", "f6", "null" },
	{ "undefined", "f7", "{\"$simple\": 23}" },
	{ "float64", "fb3ff8000000000000", "1.5" },
	{ "float64 -1e300", "fbfe37e43c8800759c", "-1e300" }, /* checked below too */
	{ "float64 NaN", "fb7ff8000000000000", "{\"$float\": \"nan\"}" },
	{ "float64 inf", "fb7ff0000000000000", "{\"$float\": \"inf\"}" },
	{ "float64 -inf", "fbfff0000000000000", "{\"$float\": \"-inf\"}" },
	{ "empty array", "80", "[]" },
	{ "array", "8301820203a0", "[1, [2, 3], {}]" },
	{ "empty map", "a0", "{}" },
	{ "map", "a2616101616202", "{\"a\": 1, \"b\": 2}" },
	{ "map keeps key order", "a2617a01616102", "{\"z\": 1, \"a\": 2}" },
	{ "map empty key", "a16001", "{\"\": 1}" },
	{ "map int key", "a10102", "{\"$map\": [[1, 2]]}" },
	{ "map bytes key", "a14100f5", "{\"$map\": [[{\"$bytes\": \"AA==\"}, true]]}" },
	{ "map array key", "a1820102f6", "{\"$map\": [[[1, 2], null]]}" },
	{ "map mixed keys", "a2616101020a", "{\"$map\": [[\"a\", 1], [2, 10]]}" },
	{ "map duplicate keys", "a3616101616102616103",
	  "{\"$map\": [[\"a\", 1], [\"a\", 2], [\"a\", 3]]}" },
	{ "map $ key", "a162246201", "{\"$map\": [[\"$b\", 1]]}" },
	{ "map $bytes key", "a166246279746573624141",
	  "{\"$map\": [[\"$bytes\", \"AA\"]]}" },
	{ "map in $map", "a101a16161a0", "{\"$map\": [[1, {\"a\": {}}]]}" },
	{ "tag", "c11a5f5e1000", "{\"$tag\": 1, \"value\": 1600000000}" },
	{ "tag 24 of bytes", "d8184100", "{\"$tag\": 24, \"value\": {\"$bytes\": \"AA==\"}}" },
	{ "tag big", "db800000000000000000",
	  "{\"$tag\": {\"$int\": \"9223372036854775808\"}, \"value\": 0}" },
	{ "nested tags", "c1c2a0", "{\"$tag\": 1, \"value\": {\"$tag\": 2, \"value\": {}}}" },
	/* 6..20 go out as d8 nn: libcbor 0.8 cannot read c6..d4 back (see below). */
	{ "tag 6", "d80600", "{\"$tag\": 6, \"value\": 0}" },
	{ "tag 20", "d81400", "{\"$tag\": 20, \"value\": 0}" },
	{ "tag 5", "c500", "{\"$tag\": 5, \"value\": 0}" },
	{ "tag 21", "d500", "{\"$tag\": 21, \"value\": 0}" },
	{ "tag 23", "d700", "{\"$tag\": 23, \"value\": 0}" },
};

static void test_both_ways(void)
{
	for (size_t i = 0; i < ELEMENTSOF(both_ways); i++) {
		json_auto_t *got = from_hex(both_ways[i].cbor, 0, both_ways[i].name);
		json_auto_t *want = jload(both_ways[i].json);

		json_is(got, both_ways[i].json, both_ways[i].name);
		to_cbor_is(want, both_ways[i].cbor, both_ways[i].name);
	}
}

/* Non-canonical CBOR: translated, but it comes back in the canonical form. */
static const struct {
	const char *name, *cbor, *json, *back;
} cbor_one_way[] = {
	{ "indefinite map", "bf616101ff", "{\"a\": 1}", "a1616101" },
	{ "indefinite array", "9f0102ff", "[1, 2]", "820102" },
	{ "indefinite empty map", "bfff", "{}", "a0" },
	{ "indefinite text", "7f61616162ff", "\"ab\"", "626162" },
	{ "indefinite bytes", "5f41014102ff", "{\"$bytes\": \"AQI=\"}", "420102" },
	{ "long uint head for 0", "1800", "0", "00" },
	{ "long uint head for 1", "1b0000000000000001", "1", "01" },
	{ "long negint head", "3900ff", "-256", "38ff" },
	{ "float16", "f93e00", "1.5", "fb3ff8000000000000" },
	{ "float32", "fa3fc00000", "1.5", "fb3ff8000000000000" },
	{ "float16 NaN", "f97e00", "{\"$float\": \"nan\"}", "fb7ff8000000000000" },
	{ "float32 NaN payload", "fa7fc00001", "{\"$float\": \"nan\"}", "fb7ff8000000000000" },
	{ "float16 -inf", "f9fc00", "{\"$float\": \"-inf\"}", "fbfff0000000000000" },
	{ "tag 10 with an 8-byte head", "db000000000000000a00", "{\"$tag\": 10, \"value\": 0}", "d80a00" },
	{ "indefinite duplicate map", "bf616101616102ff", "{\"$map\": [[\"a\", 1], [\"a\", 2]]}",
	  "a2616101616102" },
};

static void test_cbor_one_way(void)
{
	for (size_t i = 0; i < ELEMENTSOF(cbor_one_way); i++) {
		json_auto_t *got = from_hex(cbor_one_way[i].cbor, 0, cbor_one_way[i].name);

		json_is(got, cbor_one_way[i].json, cbor_one_way[i].name);
		if (got)
			to_cbor_is(got, cbor_one_way[i].back, cbor_one_way[i].name);
	}
}

/* JSON spellings that CBOR -> JSON never produces but that are accepted. */
static const struct {
	const char *name, *json, *cbor;
} json_one_way[] = {
	{ "$int in range", "{\"$int\": \"5\"}", "05" },
	{ "$int zero", "{\"$int\": \"0\"}", "00" },
	{ "$int negative in range", "{\"$int\": \"-25\"}", "3818" },
	{ "$simple false", "{\"$simple\": 20}", "f4" },
	{ "$simple 0", "{\"$simple\": 0}", "e0" },
	{ "$simple 19", "{\"$simple\": 19}", "f3" },
	{ "$simple 32", "{\"$simple\": 32}", "f820" },
	{ "$simple 255", "{\"$simple\": 255}", "f8ff" },
	{ "$text of valid UTF-8", "{\"$text\": \"aGk=\"}", "626869" },
	{ "real 1.0", "1.0", "fb3ff0000000000000" },
	{ "real -0.0", "-0.0", "fb8000000000000000" },
	{ "real 1e300", "1e300", "fb7e37e43c8800759c" },
	{ "$tag with $int number", "{\"$tag\": {\"$int\": \"1\"}, \"value\": 0}", "c100" },
	{ "$tag member order", "{\"value\": 0, \"$tag\": 1}", "c100" },
	{ "$map empty", "{\"$map\": []}", "a0" },
	{ "$map with text keys", "{\"$map\": [[\"a\", 1]]}", "a1616101" },
	{ "object with $ key in value", "{\"k\": \"$bytes\"}", "a1616b66246279746573" },
	{ "$bytes nested", "[{\"$bytes\": \"AA==\"}]", "814100" },
};

static void test_json_one_way(void)
{
	for (size_t i = 0; i < ELEMENTSOF(json_one_way); i++) {
		json_auto_t *j = jload(json_one_way[i].json);

		to_cbor_is(j, json_one_way[i].cbor, json_one_way[i].name);
	}
}

/* Objects with a '$' key that are not exactly a tagged form, and bad values in them. */
static const char *const json_rejects[] = {
	"{\"$bytes\": \"AQI\"}",           /* missing padding */
	"{\"$bytes\": \"AR==\"}",          /* stray bits */
	"{\"$bytes\": \"AQI=AQI=\"}",      /* padding in the middle */
	"{\"$bytes\": \"A QI=\"}",         /* whitespace */
	"{\"$bytes\": \"AQ\\nI=\"}",       /* line break */
	"{\"$bytes\": \"!!!!\"}",          /* outside the alphabet */
	"{\"$bytes\": \"AQ-_\"}",          /* base64url alphabet */
	"{\"$bytes\": \"A\\u0000I=\"}",    /* NUL inside */
	"{\"$bytes\": \"AQ===\"}",         /* too much padding */
	"{\"$bytes\": 5}",
	"{\"$bytes\": null}",
	"{\"$bytes\": \"AA==\", \"x\": 1}",
	"{\"$text\": \"***=\"}",
	"{\"$foo\": 1}",
	"{\"$\": 1}",
	"{\"a\": 1, \"$int\": \"1\"}",
	"{\"$int\": \"01\"}",
	"{\"$int\": \"-0\"}",
	"{\"$int\": \"+1\"}",
	"{\"$int\": \"\"}",
	"{\"$int\": \"-\"}",
	"{\"$int\": \"1a\"}",
	"{\"$int\": \" 1\"}",
	"{\"$int\": \"18446744073709551616\"}",
	"{\"$int\": \"-18446744073709551617\"}",
	"{\"$int\": \"99999999999999999999999\"}",
	"{\"$int\": 5}",
	"{\"$float\": \"NaN\"}",
	"{\"$float\": \"infinity\"}",
	"{\"$float\": 1.5}",
	"{\"$simple\": 24}",
	"{\"$simple\": 31}",
	"{\"$simple\": 256}",
	"{\"$simple\": -1}",
	"{\"$simple\": \"1\"}",
	"{\"$simple\": 1.0}",
	"{\"$map\": {}}",
	"{\"$map\": [1, 2]}",
	"{\"$map\": [[1]]}",
	"{\"$map\": [[1, 2, 3]]}",
	"{\"$map\": [[{\"$bytes\": \"x\"}, 1]]}",
	"{\"$tag\": 1}",
	"{\"$tag\": -1, \"value\": 0}",
	"{\"$tag\": 1.5, \"value\": 0}",
	"{\"$tag\": \"1\", \"value\": 0}",
	"{\"$tag\": {\"$int\": \"-5\"}, \"value\": 0}",
	"{\"$tag\": {\"$int\": \"5\", \"x\": 1}, \"value\": 0}",
	"{\"$tag\": 1, \"val\": 0}",
	"{\"$tag\": 1, \"value\": {\"$nope\": 0}}",
	"{\"$tag\": 1, \"value\": 0, \"x\": 1}",
	"[1, {\"$bytes\": \"x\"}]",
	"{\"a\": {\"b\": {\"$bytes\": \"***=\"}}}",
};

static void test_json_rejects(void)
{
	for (size_t i = 0; i < ELEMENTSOF(json_rejects); i++) {
		json_auto_t *j = jload(json_rejects[i]);
		struct smp_buf b = SMP_BUF_INIT;
		int r;

		smp_buf_append(&b, "\x01\x02", 2);
		r = smp_json_to_cbor(j, &b);
		ok(r == -EINVAL && b.len == 2 && memcmp(b.data, "\x01\x02", 2) == 0,
		   "refused, buffer as it was: %s", json_rejects[i]);
		if (r != -EINVAL)
			tap_diag("returned %d", r);
		smp_buf_clear(&b);
	}
}

/* smp_json_from_cbor_bytes() is smp_cbor_load() then smp_json_from_cbor(). */
static void check_like_loader(const char *hex, const char *name)
{
	size_t n;
	_cleanup_free_ uint8_t *p = tap_unhex(hex, &n);
	cbor_item_t *item = NULL;
	json_t *a = NULL, *b = NULL;
	int r = smp_cbor_load(p, n, SMP_CBOR_MAX_DEPTH, &item);
	int k = smp_json_from_cbor_bytes(p, n, &a);

	if (r == 0)
		r = smp_json_from_cbor(item, &b);
	ok(r == k && (r < 0 || json_equal(a, b)), "%s: bytes translate as the loader sees them (%d)",
	   name, r);
	json_decref(a);
	json_decref(b);
	if (item)
		cbor_decref(&item);
}

/* Text that is not UTF-8: libcbor 0.8's loader refuses it, but a tree built
 * in memory can hold it, and "$text" carries it both ways without loss. */
static const struct {
	const char *name, *bytes, *json;
} bad_utf8[] = {
	{ "stray continuation", "80", "{\"$text\": \"gA==\"}" },
	{ "0xff", "ff", "{\"$text\": \"/w==\"}" },
	{ "overlong 2-byte", "c0af", "{\"$text\": \"wK8=\"}" },
	{ "overlong 3-byte", "e080af", "{\"$text\": \"4ICv\"}" },
	{ "overlong 4-byte", "f08080af", "{\"$text\": \"8ICArw==\"}" },
	{ "surrogate", "eda080", "{\"$text\": \"7aCA\"}" },
	{ "beyond U+10FFFF", "f4908080", "{\"$text\": \"9JCAgA==\"}" },
	{ "cut sequence", "61c3", "{\"$text\": \"YcM=\"}" },
	{ "bad continuation", "e0a0", "{\"$text\": \"4KA=\"}" },
};

static void test_bad_utf8(void)
{
	for (size_t i = 0; i < ELEMENTSOF(bad_utf8); i++) {
		size_t n;
		_cleanup_free_ uint8_t *raw = tap_unhex(bad_utf8[i].bytes, &n);
		_cleanup_free_ char *cbor_hex = malloc(2 * n + 3);
		cbor_item_t *item = cbor_build_stringn((const char *)raw, n);
		cbor_item_t *map = cbor_new_definite_map(1);
		json_t *j = NULL, *want_key;

		is_int(smp_json_from_cbor(item, &j), 0, "bad UTF-8 %s: translates", bad_utf8[i].name);
		json_is(j, bad_utf8[i].json, bad_utf8[i].name);
		sprintf(cbor_hex, "%02x%s", 0x60 + (unsigned)n, bad_utf8[i].bytes);
		to_cbor_is(j, cbor_hex, bad_utf8[i].name);
		json_decref(j);

		/* From bytes, the result is whatever smp_cbor_load makes of them
		 * (libcbor 0.8 refuses the item), translated as usual. */
		check_like_loader(cbor_hex, bad_utf8[i].name);

		/* As a map key it forces the "$map" form. */
		cbor_map_add(map, (struct cbor_pair){ .key = item, .value = cbor_move(cbor_build_uint8(0)) });
		is_int(smp_json_from_cbor(map, &j), 0, "bad UTF-8 key %s: translates", bad_utf8[i].name);
		want_key = jload(bad_utf8[i].json);
		if (!ok(json_equal(json_array_get(json_array_get(json_object_get(j, "$map"), 0), 0),
				   want_key),
			"bad UTF-8 key %s: $map form", bad_utf8[i].name))
			diag_json("got", j);
		json_decref(want_key);
		json_decref(j);
		cbor_decref(&item);
		cbor_decref(&map);
	}
}

/* jansson cannot read a NUL in an object key from text, but holds one. */
static void test_nul_key(void)
{
	json_auto_t *want = json_object();
	json_auto_t *got = from_hex("a16361006201", 0, "key with NUL");

	json_object_setn_new(want, "a\0b", 3, json_integer(1));
	/* json_equal() compares keys as C strings, so look the member up by length. */
	ok(got && json_object_size(got) == 1 && json_integer_value(json_object_getn(got, "a\0b", 3)) == 1,
	   "key with NUL kept");
	to_cbor_is(want, "a16361006201", "key with NUL");
}

static void test_special_values(void)
{
	json_auto_t *negzero = from_hex("fb8000000000000000", 0, "-0.0");
	json_auto_t *big = from_hex("fbfe37e43c8800759c", 0, "-1e300");
	json_auto_t *nul = NULL;
	_cleanup_free_ char *dumped = NULL;
	cbor_item_t *simple = cbor_new_ctrl();
	json_t *j = NULL;

	ok(negzero && json_is_real(negzero) && json_real_value(negzero) == 0 &&
		   signbit(json_real_value(negzero)),
	   "-0.0 keeps its sign");
	ok(big && json_is_real(big) && json_real_value(big) == -1e300, "-1e300 exact");

	/* Embedded NUL survives into text JSON as an escape, not a cut string. */
	nul = from_hex("63610062", 0, "text with NUL");
	ok(nul && json_string_length(nul) == 3, "NUL kept in the string's length");
	dumped = nul ? json_dumps(nul, DUMP_FLAGS) : NULL;
	is_str(dumped, "\"a\\u0000b\"", "dumped with \\u0000");

	/* libcbor 0.8 refuses tags 6..20 in their one-byte head (found by fuzz-json). */
	json_decref(from_hex("ca00", -EBADMSG, "tag 10 in a one-byte head"));

	/* Simple values 0..19 and 32..255 do not come out of smp_cbor_load
	 * (libcbor 0.8 refuses them) but a tree built by hand may hold them. */
	cbor_set_ctrl(simple, 7);
	is_int(smp_json_from_cbor(simple, &j), 0, "hand-built simple(7) translates");
	json_is(j, "{\"$simple\": 7}", "simple(7)");
	json_decref(j);
	cbor_set_ctrl(simple, 255);
	is_int(smp_json_from_cbor(simple, &j), 0, "hand-built simple(255) translates");
	json_is(j, "{\"$simple\": 255}", "simple(255)");
	json_decref(j);
	cbor_decref(&simple);
}

/* Chunked strings only exist in hand-built trees; they are joined. */
static void test_chunked_tree(void)
{
	cbor_item_t *map = cbor_new_definite_map(2);
	cbor_item_t *key = cbor_new_indefinite_string();
	cbor_item_t *val = cbor_new_indefinite_bytestring();
	cbor_item_t *key2 = cbor_new_indefinite_string();
	json_t *j = NULL;

	cbor_string_add_chunk(key, cbor_move(cbor_build_string("ke")));
	cbor_string_add_chunk(key, cbor_move(cbor_build_string("y")));
	cbor_bytestring_add_chunk(val, cbor_move(cbor_build_bytestring((const uint8_t *)"\x01", 1)));
	cbor_bytestring_add_chunk(val, cbor_move(cbor_build_bytestring((const uint8_t *)"\x02\x03", 2)));
	cbor_string_add_chunk(key2, cbor_move(cbor_build_string("$")));
	cbor_map_add(map, (struct cbor_pair){ .key = cbor_move(key), .value = cbor_move(val) });
	cbor_map_add(map, (struct cbor_pair){ .key = cbor_move(key2), .value = cbor_move(cbor_build_uint8(1)) });

	is_int(smp_json_from_cbor(map, &j), 0, "chunked strings translate");
	json_is(j, "{\"$map\": [[\"key\", {\"$bytes\": \"AQID\"}], [\"$\", 1]]}", "chunks joined");
	json_decref(j);
	cbor_decref(&map);
	is_int(smp_json_from_cbor(NULL, &j), -EINVAL, "NULL item refused");
}

/* 32 nested containers that hold something pass, 33 are refused, in both
 * directions; an empty container is a leaf (smp_cbor_load counts the same). */
static void test_depth(void)
{
	cbor_item_t *deep = cbor_new_definite_array(1);
	json_t *ja = json_array(), *jm = json_object();
	struct smp_buf b = SMP_BUF_INIT;
	json_t *j = NULL;

	for (size_t kind = 0; kind < 3; kind++) {
		const char *wrap = kind == 0 ? "81" : kind == 1 ? "a100" : "c1";

		for (size_t l = 0; l < 3; l++) {
			/* 32 levels around a leaf, 32 around an empty container, 33 around a leaf */
			size_t levels = l < 2 ? SMP_CBOR_MAX_DEPTH : SMP_CBOR_MAX_DEPTH + 1;
			_cleanup_free_ char *h = calloc(1, 8 * levels + 8);
			json_auto_t *got = NULL;

			for (size_t i = 0; i < levels; i++)
				strcat(h, wrap);
			strcat(h, l == 1 ? (kind == 1 ? "a0" : "80") : "00");
			got = from_hex(h, l < 2 ? 0 : -EBADMSG, wrap);
			if (l < 2 && got) {
				size_t n;
				_cleanup_free_ uint8_t *want = tap_unhex(h, &n);

				is_int(smp_json_to_cbor(got, &b), 0, "%zu levels of %s encode", levels, wrap);
				is_mem(b.data, b.len, want, n, "%zu levels of %s round trip", levels, wrap);
				smp_buf_clear(&b);
			}
		}
	}

	/* A hand-built tree has no loader in front: the translator refuses it itself. */
	cbor_array_push(deep, cbor_move(cbor_build_uint8(1)));
	for (size_t i = 0; i < SMP_CBOR_MAX_DEPTH; i++) {
		cbor_item_t *outer = cbor_new_definite_array(1);

		cbor_array_push(outer, cbor_move(deep));
		deep = outer;
	}
	is_int(smp_json_from_cbor(deep, &j), -EBADMSG, "33 hand-built levels refused");
	cbor_decref(&deep);

	/* JSON: arrays, objects and "$map"s count one level each, as in CBOR. */
	json_array_append_new(ja, json_integer(1));
	json_object_set_new(jm, "k", json_integer(1));
	for (size_t i = 0; i < SMP_CBOR_MAX_DEPTH - 1; i++) {
		json_t *a = json_array(), *o = json_object();

		json_array_append_new(a, ja);
		ja = a;
		json_object_set_new(o, "k", jm);
		jm = o;
	}
	is_int(smp_json_to_cbor(ja, &b), 0, "32 JSON arrays encode");
	is_int(b.len, 33, "as 33 bytes");
	smp_buf_clear(&b);
	is_int(smp_json_to_cbor(jm, &b), 0, "32 JSON objects encode");
	smp_buf_clear(&b);
	j = json_array();
	json_array_append_new(j, ja);
	is_int(smp_json_to_cbor(j, &b), -EINVAL, "33 JSON arrays refused");
	is_int(b.len, 0, "nothing left in the buffer");
	json_decref(j);
	j = json_object();
	json_object_set_new(j, "k", jm);
	is_int(smp_json_to_cbor(j, &b), -EINVAL, "33 JSON objects refused");
	json_decref(j);

	/* {"$map": [[1, {"$map": [[1, ... {"a": 1} ]]}]]}: 33 maps. */
	j = jload("{\"a\": 1}");
	for (size_t i = 0; i < SMP_CBOR_MAX_DEPTH; i++) {
		json_t *m = json_object(), *list = json_array(), *pair = json_array();

		json_array_append_new(pair, json_integer(1));
		json_array_append_new(pair, j);
		json_array_append_new(list, pair);
		json_object_set_new(m, "$map", list);
		j = m;
		if (i == SMP_CBOR_MAX_DEPTH - 2) {
			is_int(smp_json_to_cbor(j, &b), 0, "32 $map levels encode");
			smp_buf_clear(&b);
		}
	}
	is_int(smp_json_to_cbor(j, &b), -EINVAL, "33 $map levels refused");
	json_decref(j);
	j = json_object();
	for (size_t i = 0; i < SMP_CBOR_MAX_DEPTH + 1; i++) {
		json_t *t = json_object();

		json_object_set_new(t, "$tag", json_integer(1));
		json_object_set_new(t, "value", j);
		j = t;
	}
	is_int(smp_json_to_cbor(j, &b), -EINVAL, "33 $tag levels refused");
	json_decref(j);
	j = json_array();
	for (size_t i = 0; i < SMP_CBOR_MAX_DEPTH; i++) {
		json_t *a = json_array();

		json_array_append_new(a, j);
		j = a;
	}
	is_int(smp_json_to_cbor(j, &b), 0, "32 JSON arrays around an empty one encode");
	json_decref(j);
	smp_buf_clear(&b);
}

/* §15: requests are definite and canonical, so they come back byte for byte;
 * responses are indefinite, so they come back as the same JSON. */
static const struct {
	const char *name, *pkt, *json;
} spec[] = {
	{ "V1", "0a000009 00000100 a161646568656c6c6f", "{\"d\": \"hello\"}" },
	{ "V2", "0b00000a 00000100 bf61726568656c6c6fff", "{\"r\": \"hello\"}" },
	{ "V3", "08000001 00000206 a0", "{}" },
	{ "V4", "09000019 00000206 bf686275665f73697a65190180696275665f636f756e7404ff",
	  "{\"buf_size\": 384, \"buf_count\": 4}" },
	{ "V5", "0800000b 00000307 a166666f726d6174627376", "{\"format\": \"sv\"}" },
	{ "V6", "09000016 00000307 bf666f75747075746c5a657068797220332e372e30ff",
	  "{\"output\": \"Zephyr 3.7.0\"}" },
	{ "V7", "0800000c 00000408 a1657175657279646d6f6465", "{\"query\": \"mode\"}" },
	{ "V8", "09000008 00000408 bf646d6f646503ff", "{\"mode\": 3}" },
	{ "V9", "0a000001 00000505 a0", "{}" },
	{ "V10", "0a000008 00000605 a165666f726365f5", "{\"force\": true}" },
	{ "V11", "0b000002 00000505 bfff", "{}" },
	{ "V12", "08000001 00011000 a0", "{}" },
	{ "V13",
	  "0a000089 00011101 a665696d61676500636c656e1888636f666600637368615820a678ce1ed77e9580a875"
	  "bc1f228c15d8438965e671921c6b31d494f69057c7ce646461746158403db8f396000000002000000040000000"
	  "00000000010100000000000000000000000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c"
	  "0d0e0f6775706772616465f4",
	  "{\"image\": 0, \"len\": 136, \"off\": 0,"
	  " \"sha\": {\"$bytes\": \"pnjOHtd+lYCodbwfIowV2EOJZeZxkhxrMdSU9pBXx84=\"},"
	  " \"data\": {\"$bytes\": \"PbjzlgAAAAAgAAAAQAAAAAAAAAABAQAAAAAAAAAAAAAAAQIDBAUGBwgJCgsMDQ4PAA"
	  "ECAwQFBgcICQoLDA0ODw==\"}, \"upgrade\": false}" },
	{ "V14", "0b000008 00011101 bf636f66661840ff", "{\"off\": 64}" },
	{ "V16", "0b00000f 00011201 bf636f66661888656d61746368f5ff", "{\"off\": 136, \"match\": true}" },
	{ "V17",
	  "0a000031 00011300 a264686173685820c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad0"
	  "17bd12f067636f6e6669726df4",
	  "{\"hash\": {\"$bytes\": \"w5oPIgptf/XmWRJOSzVXRm0aD90Xy2/jDYY60Be9EvA=\"}, \"confirm\": false}" },
	{ "V18", "0a00000a 00011400 a167636f6e6669726df5", "{\"confirm\": true}" },
	{ "V19", "0b000013 00011101 bf63657272bf6567726f75700162726309ffff",
	  "{\"err\": {\"group\": 1, \"rc\": 9}}" },
	{ "V20", "01000006 00402000 bf62726308ff", "{\"rc\": 8}" },
	{ "V21", "0a000016 00093000 a1646172677682666b65726e656c6776657273696f6e",
	  "{\"argv\": [\"kernel\", \"version\"]}" },
	{ "V22", "0b00001e 00093000 bf616f745a65706879722076657273696f6e20332e372e306372657400ff",
	  "{\"o\": \"Zephyr version 3.7.0\", \"ret\": 0}" },
	{ "V23", "0800000e 00033100 a1646e616d65676170702f636e74", "{\"name\": \"app/cnt\"}" },
	{ "V24", "0900000b 00033100 bf6376616c442a000000ff", "{\"val\": {\"$bytes\": \"KgAAAA==\"}}" },
	{ "V25", "0a000017 00033200 a2646e616d65676170702f636e746376616c442b000000",
	  "{\"name\": \"app/cnt\", \"val\": {\"$bytes\": \"KwAAAA==\"}}" },
	{ "V26", "0800001a 00084000 a2636f666600646e616d656e2f6c66732f68656c6c6f2e747874",
	  "{\"off\": 0, \"name\": \"/lfs/hello.txt\"}" },
	{ "V27", "0900001e 00084000 bf636f66660064646174614c48656c6c6f2c20534d50210a636c656e0cff",
	  "{\"off\": 0, \"data\": {\"$bytes\": \"SGVsbG8sIFNNUCEK\"}, \"len\": 12}" },
	{ "V28", "08000001 000a5001 a0", "{}" },
	{ "V29", "09000014 000a5001 bf6667726f7570739f0001020308090a183fffff",
	  "{\"groups\": [0, 1, 2, 3, 8, 9, 10, 63]}" },
	{ "V30", "08000014 00025100 a1646e616d656d736d705f7376725f7374617473",
	  "{\"name\": \"smp_svr_stats\"}" },
	{ "V31", "0a000001 003f5200 a0", "{}" },
	{ "V32",
	  "090000f4 00011000 bf66696d616765739fbf64736c6f74006776657273696f6e65312e302e30646861736858"
	  "20644d69c5f2f82ee9a6195ddadf5272cd4aa80ea3205e9824b79a6facf2d4734f68626f6f7461626c65f56770"
	  "656e64696e67f469636f6e6669726d6564f566616374697665f5697065726d616e656e74f4ffbf64736c6f7401"
	  "6776657273696f6e65312e312e3064686173685820c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe3"
	  "0d863ad017bd12f068626f6f7461626c65f56770656e64696e67f469636f6e6669726d6564f466616374697665"
	  "f4697065726d616e656e74f4ffff6b73706c697453746174757300ff",
	  "{\"images\": [{\"slot\": 0, \"version\": \"1.0.0\","
	  " \"hash\": {\"$bytes\": \"ZE1pxfL4LummGV3a31JyzUqoDqMgXpgkt5pvrPLUc08=\"},"
	  " \"bootable\": true, \"pending\": false, \"confirmed\": true, \"active\": true,"
	  " \"permanent\": false}, {\"slot\": 1, \"version\": \"1.1.0\","
	  " \"hash\": {\"$bytes\": \"w5oPIgptf/XmWRJOSzVXRm0aD90Xy2/jDYY60Be9EvA=\"},"
	  " \"bootable\": true, \"pending\": false, \"confirmed\": false, \"active\": false,"
	  " \"permanent\": false}], \"splitStatus\": 0}" },
};

static const __typeof__(spec[0]) *spec_find(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(spec); i++)
		if (strcmp(spec[i].name, name) == 0)
			return &spec[i];
	abort();
}

/* Payload -> JSON -> CBOR -> JSON: the second JSON equals the first, and the
 * CBOR is the payload itself unless it is an indefinite map (a response). */
static void check_payload(const uint8_t *p, size_t n, const char *want_json, const char *name)
{
	json_auto_t *j = NULL, *again = NULL;
	struct smp_buf b = SMP_BUF_INIT;

	if (!is_int(smp_json_from_cbor_bytes(p, n, &j), 0, "%s: payload translates", name))
		return;
	if (want_json)
		json_is(j, want_json, name);
	is_int(smp_json_to_cbor(j, &b), 0, "%s: JSON encodes back", name);
	if (p[0] != 0xbf)
		is_mem(b.data, b.len, p, n, "%s: byte-identical round trip", name);
	ok(smp_json_from_cbor_bytes(b.data, b.len, &again) == 0 && json_equal(j, again),
	   "%s: re-encoded CBOR gives the same JSON", name);
	smp_buf_clear(&b);
}

static void test_spec_vectors(void)
{
	for (size_t i = 0; i < ELEMENTSOF(spec); i++) {
		size_t n;
		_cleanup_free_ uint8_t *pkt = tap_unhex(spec[i].pkt, &n);

		check_payload(pkt + SMP_HEADER_SIZE, n - SMP_HEADER_SIZE, spec[i].json, spec[i].name);
	}
}

/* V32 through smp_response_decode and smp_json_from_cbor on its root, as the REST raw route does. */
static void test_response_root(void)
{
	size_t n;
	_cleanup_free_ uint8_t *pkt = tap_unhex((*spec_find("V32")).pkt, &n);
	_cleanup_(smp_response_freep) struct smp_response *rsp = NULL;
	json_auto_t *j = NULL;
	const json_t *hash;

	is_int(smp_response_decode(pkt, n, &rsp), 0, "V32 decodes");
	is_int(smp_json_from_cbor(rsp->root, &j), 0, "V32 root translates");
	hash = json_object_get(json_object_get(json_array_get(json_object_get(j, "images"), 1), "hash"),
			       "$bytes");
	is_str(json_string_value(hash), "w5oPIgptf/XmWRJOSzVXRm0aD90Xy2/jDYY60Be9EvA=",
	       "slot 1 hash is H2 in base64");

	/* Every cut of the payload is refused: indefinite containers never close early. */
	for (size_t cut = 0; cut < n - SMP_HEADER_SIZE; cut++) {
		json_t *t = NULL;
		int r = smp_json_from_cbor_bytes(pkt + SMP_HEADER_SIZE, cut, &t);

		if (r != -EBADMSG || t) {
			ok(false, "V32 payload cut at %zu refused (got %d)", cut, r);
			json_decref(t);
			return;
		}
	}
	ok(true, "V32 payload cut at each of %zu lengths refused", n - SMP_HEADER_SIZE);
}

static void test_recordings(void)
{
	static const char *const files[] = {
		"tests/data/zephyr-4.1/udp-v1.json",
		"tests/data/zephyr-4.1/udp-v2.json",
	};

	for (size_t f = 0; f < ELEMENTSOF(files); f++) {
		json_error_t e;
		json_auto_t *doc = json_load_file(tap_srcpath(files[f]), 0, &e);
		const json_t *pairs = json_object_get(doc, "pairs");
		size_t i, bad = 0, count = 0;
		json_t *pair;

		if (!ok(json_is_array(pairs), "%s loads", files[f]))
			continue;
		json_array_foreach(pairs, i, pair) {
			for (size_t dir = 0; dir < 2; dir++) {
				const char *hex = json_string_value(
					json_object_get(pair, dir ? "response_hex" : "request_hex"));
				size_t n;
				_cleanup_free_ uint8_t *pkt = tap_unhex(hex, &n);
				json_auto_t *j = NULL, *again = NULL;
				struct smp_buf b = SMP_BUF_INIT;
				const uint8_t *p = pkt + SMP_HEADER_SIZE;
				size_t plen = n - SMP_HEADER_SIZE;

				/* v1 answers some errors with an empty payload: nothing to translate. */
				if (plen == 0) {
					if (smp_json_from_cbor_bytes(p, plen, &j) != -EBADMSG)
						bad++;
					continue;
				}
				count++;
				/* Requests from the recorder are definite: they must come
				 * back byte for byte. Responses (indefinite) as the same JSON. */
				if (smp_json_from_cbor_bytes(p, plen, &j) < 0 || smp_json_to_cbor(j, &b) < 0 ||
				    (dir == 0 && (b.len != plen || memcmp(b.data, p, plen))) ||
				    smp_json_from_cbor_bytes(b.data, b.len, &again) < 0 ||
				    !json_equal(j, again)) {
					tap_diag("%s: %s %s", files[f],
						 json_string_value(json_object_get(pair, "name")),
						 dir ? "response" : "request");
					bad++;
				}
				smp_buf_clear(&b);
			}
		}
		ok(bad == 0 && count >= 80, "%s: all %zu payloads round trip", files[f], count);
	}
}

/* The image state read of the recording: its hash arrives as "$bytes". */
static void test_recorded_image_state(void)
{
	size_t n;
	_cleanup_free_ uint8_t *pkt = tap_unhex(
		"0900008600010a00bf66696d616765739fbf64736c6f74006776657273696f6e65312e302e3064686173"
		"685820072e40afb39c9ae3fc60ffd93e2f6fda101883955e5319a20954d8e7f78b0a9368626f6f746162"
		"6c65f56770656e64696e67f469636f6e6669726d6564f566616374697665f5697065726d616e656e74f4"
		"ffff6b73706c697453746174757300ff",
		&n);

	check_payload(pkt + SMP_HEADER_SIZE, n - SMP_HEADER_SIZE,
		      "{\"images\": [{\"slot\": 0, \"version\": \"1.0.0\","
		      " \"hash\": {\"$bytes\": \"By5Ar7OcmuP8YP/ZPi9v2hAYg5VeUxmiCVTY5/eLCpM=\"},"
		      " \"bootable\": true, \"pending\": false, \"confirmed\": true, \"active\": true,"
		      " \"permanent\": false}], \"splitStatus\": 0}",
		      "recorded img state");
}

static void request_is(uint8_t op, uint16_t group, uint8_t id, uint8_t seq, const char *payload,
		       const char *want_hex, const char *name)
{
	json_auto_t *j = payload ? jload(payload) : NULL;
	_cleanup_(smp_request_freep) struct smp_request *r = NULL;
	size_t n;
	_cleanup_free_ uint8_t *want = tap_unhex(want_hex, &n);

	if (!is_int(smp_json_request(op, group, id, j, &r), 0, "%s: request built", name))
		return;
	is_int(smp_request_finish(r, SMP_VERSION_2, seq), 0, "%s: finished", name);
	is_mem(r->pkt.data, r->pkt.len, want, n, "%s: packet", name);
}

static void test_request(void)
{
	struct smp_request *r = NULL;
	json_auto_t *arr = jload("[1]");
	json_auto_t *bad = jload("{\"$bytes\": \"x\"}");
	json_auto_t *huge = json_object();
	_cleanup_free_ uint8_t *zeros = calloc(1, 70000);
	_cleanup_free_ char *b64 = malloc(BASE64_ENCODE_RAW_LENGTH(70000));

	request_is(SMP_OP_WRITE, SMP_GROUP_OS, SMP_OS_ECHO, 1, "{\"d\": \"hello\"}",
		   "0a000009 00000100 a161646568656c6c6f", "V1 from JSON");
	request_is(SMP_OP_READ, SMP_GROUP_OS, SMP_OS_PARAMS, 2, NULL, "08000001 00000206 a0",
		   "V3 from a NULL payload");
	request_is(SMP_OP_WRITE, SMP_GROUP_IMAGE, SMP_IMAGE_UPLOAD, 0x11, spec_find("V13")->json, spec_find("V13")->pkt,
		   "V13 from JSON with $bytes");
	request_is(SMP_OP_WRITE, SMP_GROUP_IMAGE, SMP_IMAGE_STATE, 0x13, spec_find("V17")->json, spec_find("V17")->pkt,
		   "V17 from JSON");
	request_is(SMP_OP_READ, 64, 0, 0x20, "[1]", "08000002 00402000 8101", "user group takes an array");
	request_is(SMP_OP_READ, 1000, 200, 0, "{\"$int\": \"-18446744073709551616\"}",
		   "08000009 03e800c8 3bffffffffffffffff", "user group takes an integer");
	request_is(SMP_OP_WRITE, SMP_GROUP_ZEPHYR, 0, 0, "{\"$map\": [[1, 2]]}",
		   "0a000003 003f0000 a10102", "standard group takes a $map");

	is_int(smp_json_request(SMP_OP_READ, SMP_GROUP_OS, 0, arr, &r), -EINVAL,
	       "standard group refuses a top-level array");
	is_int(smp_json_request(SMP_OP_READ, SMP_GROUP_OS, 0, bad, &r), -EINVAL,
	       "bad base64 refused");
	is_int(smp_json_request(SMP_OP_READ_RSP, 64, 0, NULL, &r), -EINVAL, "response op refused");
	is_int(smp_json_request(5, 64, 0, NULL, &r), -EINVAL, "invalid op refused");

	/* 70000 bytes do not fit in one SMP packet. */
	base64_encode_raw(b64, 70000, zeros);
	json_object_set_new(huge, "$bytes", json_stringn(b64, BASE64_ENCODE_RAW_LENGTH(70000)));
	is_int(smp_json_request(SMP_OP_WRITE, 64, 0, huge, &r), -EMSGSIZE, "oversized payload refused");
	ok(r == NULL, "nothing returned on failure");
}

static void test_buffer_errors(void)
{
	json_auto_t *j = jload("{\"a\": [1, 2, 3]}");
	struct smp_buf b = { .limit = 4 };

	is_int(smp_json_to_cbor(NULL, &b), -EINVAL, "NULL JSON refused");
	is_int(smp_json_to_cbor(j, &b), -EMSGSIZE, "buffer limit reported");
	is_int(smp_json_to_cbor(j, &b), -EMSGSIZE, "sticky buffer error returned on entry");
	smp_buf_clear(&b);
}

/* jansson's allocator can be made to fail: every failure gives -ENOMEM and no
 * partial result (ASan and valgrind see any leak). */
static size_t alloc_budget = SIZE_MAX;

static void *failing_malloc(size_t n)
{
	if (alloc_budget == 0)
		return NULL;
	alloc_budget--;
	return malloc(n);
}

static void test_oom(void)
{
	size_t n;
	_cleanup_free_ uint8_t *pkt = tap_unhex((*spec_find("V32")).pkt, &n);
	json_auto_t *want = jload((*spec_find("V32")).json);
	json_auto_t *nasty = jload("[{\"$map\": [[1, {\"$tag\": {\"$int\": \"18446744073709551615\"},"
				   " \"value\": {\"$bytes\": \"/w==\"}}]]}, {\"a\": {\"$int\": \"-9223372036854775809\"}},"
				   " {\"$float\": \"nan\"}, {\"$simple\": 23}, \"x\", 1.5]");
	struct smp_buf nb = SMP_BUF_INIT;
	size_t failures = 0, steps;
	bool good = true;

	is_int(smp_json_to_cbor(nasty, &nb), 0, "mixed tagged forms encode");
	for (size_t which = 0; which < 2; which++) {
		const uint8_t *in = which ? nb.data : pkt + SMP_HEADER_SIZE;
		size_t len = which ? nb.len : n - SMP_HEADER_SIZE;

		for (steps = 0;; steps++) {
			json_t *j = NULL;
			int r;

			alloc_budget = steps;
			json_set_alloc_funcs(failing_malloc, free);
			r = smp_json_from_cbor_bytes(in, len, &j);
			json_set_alloc_funcs(malloc, free);
			alloc_budget = SIZE_MAX;
			if (r == 0) {
				good = good && json_equal(j, which ? nasty : want);
				json_decref(j);
				break;
			}
			failures++;
			if (r != -ENOMEM || j) {
				good = false;
				break;
			}
		}
	}
	ok(good && failures > 60, "%zu injected allocation failures gave -ENOMEM, then success",
	   failures);
	smp_buf_clear(&nb);
}

int main(void)
{
	test_both_ways();
	test_cbor_one_way();
	test_json_one_way();
	test_json_rejects();
	test_bad_utf8();
	test_nul_key();
	test_special_values();
	test_chunked_tree();
	test_depth();
	test_spec_vectors();
	test_response_root();
	test_recordings();
	test_recorded_image_state();
	test_request();
	test_buffer_errors();
	test_oom();
	return tap_done();
}
