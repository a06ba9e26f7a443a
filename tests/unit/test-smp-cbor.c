/* test-smp-cbor: bounded CBOR loading, typed lookups, and the encoder */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smp-cbor.h"
#include "tests/tap.h"

static int load_hex(const char *hex, unsigned depth, cbor_item_t **ret)
{
	size_t n;
	uint8_t *b = tap_unhex(hex, &n);
	int r = smp_cbor_load(b, n, depth, ret);

	free(b);
	return r;
}

static void test_forms(void)
{
	cbor_item_t *it = NULL;
	uint64_t u;

	/* Zephyr's indefinite map (V4) and the same map definite. */
	is_int(load_hex("bf686275665f73697a65190180696275665f636f756e7404ff", 32, &it), 0,
	       "indefinite map loads");
	ok(smp_cbor_get_uint(it, "buf_size", &u) == 0 && u == 384, "buf_size from indefinite map");
	cbor_decref(&it);
	is_int(load_hex("a2686275665f73697a65190180696275665f636f756e7404", 32, &it), 0,
	       "definite map loads");
	ok(smp_cbor_get_uint(it, "buf_count", &u) == 0 && u == 4, "buf_count from definite map");
	cbor_decref(&it);
	is_int(load_hex("bfff", 32, &it), 0, "empty indefinite map");
	ok(cbor_isa_map(it) && cbor_map_size(it) == 0, "is an empty map");
	cbor_decref(&it);
	/* Indefinite array inside an indefinite map (V29). */
	is_int(load_hex("bf6667726f7570739f0001020308090a183fffff", 32, &it), 0, "nested indefinite");
	ok(cbor_array_size(smp_cbor_map_get(it, "groups")) == 8, "eight groups");
	cbor_decref(&it);
}

static void test_chunked_strings(void)
{
	cbor_item_t *it = NULL;
	const uint8_t *p;
	size_t n;
	char *s = NULL;

	/* {"d": (_ h'0102', h'03'), "t": (_ "ab", "c")} */
	is_int(load_hex("a26164 5f 420102 4103 ff 6174 7f 626162 6163 ff", 32, &it), 0,
	       "chunked strings load");
	is_int(smp_cbor_get_bytes(it, "d", &p, &n), 0, "chunked bytes joined");
	is_mem(p, n, "\x01\x02\x03", 3, "joined bytes");
	is_int(smp_cbor_get_text(it, "t", &s), 0, "chunked text joined");
	is_str(s, "abc", "joined text");
	free(s);
	cbor_decref(&it);
	/* A chunk of the wrong major type inside an indefinite byte string. */
	is_int(load_hex("5f 6161 ff", 32, &it), -EBADMSG, "text chunk in byte string refused");
	is_int(load_hex("5f 5f ff ff", 32, &it), -EBADMSG, "nested indefinite string refused");
	is_int(load_hex("7f 01 ff", 32, &it), -EBADMSG, "int chunk in text refused");
	/* A chunked string inside a tag is joined too (and the chunks released). */
	is_int(load_hex("a1 6164 d818 5f 4101 4102 ff", 32, &it), 0, "tagged chunked bytes");
	ok(cbor_isa_tag(smp_cbor_map_get(it, "d")), "tag kept");
	cbor_decref(&it);
	/* Text that is not UTF-8 comes out as bytes; overlong and surrogate forms too. */
	is_int(load_hex("a2 616f 63 61ff62 6170 63 eda080", 32, &it), 0, "invalid UTF-8 text loads");
	ok(smp_cbor_get_bytes(it, "o", &p, &n) == 0 && n == 3 && p[1] == 0xff, "as bytes");
	ok(smp_cbor_get_bytes(it, "p", &p, &n) == 0 && n == 3, "surrogate as bytes");
	cbor_decref(&it);
	is_int(load_hex("a1 616f 62 c0af", 32, &it), 0, "overlong form loads");
	is_int(smp_cbor_get_text(it, "o", &s), -EBADMSG, "overlong form is not text");
	cbor_decref(&it);
	is_int(load_hex("a1 616f 64 f0908080", 32, &it), 0, "valid 4-byte UTF-8");
	ok(smp_cbor_get_text(it, "o", &s) == 0, "stays text");
	free(s);
	s = NULL;
	cbor_decref(&it);
	/* A chunked byte string of one empty chunk (found by fuzzing: NULL + 0). */
	is_int(load_hex("5f 40 ff", 32, &it), 0, "one empty chunk");
	ok(cbor_isa_bytestring(it) && cbor_bytestring_length(it) == 0, "joined to empty bytes");
	cbor_decref(&it);
	/* Empty chunked strings. */
	is_int(load_hex("a1 6164 5f ff", 32, &it), 0, "empty chunked bytes");
	ok(smp_cbor_get_bytes(it, "d", &p, &n) == 0 && n == 0, "zero length");
	cbor_decref(&it);
}

static void test_malformed(void)
{
	static const char *const bad[] = {
		"",                     /* nothing */
		"bf",                   /* unterminated indefinite map */
		"bf6161",               /* key without value, unterminated */
		"bf616101616202",       /* unterminated */
		"bf6161ff",             /* odd item count in indefinite map */
		"a2616101",             /* definite map missing a pair */
		"a0a0",                 /* trailing item */
		"a000",                 /* trailing byte */
		"ff",                   /* lone break */
		"9fff ff",              /* extra break */
		"5a ffffffff 00",       /* byte string of 4 GiB declared */
		"7b 7fffffffffffffff",  /* text string of 2^63 declared */
		"9b ffffffffffffffff",  /* array of 2^64-1 declared */
		"bb 7fffffffffffffff",  /* map of 2^63-1 pairs declared */
		"b9 ffff",              /* map of 65535 pairs, no bytes */
		"99 0400 00 00 00",     /* array of 1024, three present */
		"1c",                   /* reserved additional info */
		"f8",                   /* simple value missing its byte */
		"c1",                   /* tag without content */
	};
	cbor_item_t *it = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = load_hex(bad[i], 32, &it);

		is_int(r, -EBADMSG, "malformed input %zu (%s) refused", i, bad[i]);
		if (r == 0)
			cbor_decref(&it);
	}
	is_int(smp_cbor_load(NULL, 0, 32, &it), -EBADMSG, "NULL input refused");
}

static void test_depth(void)
{
	uint8_t buf[200];
	cbor_item_t *it = NULL;

	/* 40 nested one-element arrays around 0: deeper than the limit. */
	for (size_t i = 0; i < 40; i++)
		buf[i] = 0x81;
	buf[40] = 0x00;
	is_int(smp_cbor_load(buf, 41, 32, &it), -EBADMSG, "40 levels refused at limit 32");
	is_int(smp_cbor_load(buf + 30, 11, 32, &it), 0, "10 levels accepted");
	cbor_decref(&it);
	is_int(smp_cbor_load(buf + 30, 11, 5, &it), -EBADMSG, "10 levels refused at limit 5");
	/* Indefinite nesting counts the same. */
	for (size_t i = 0; i < 50; i++)
		buf[i] = 0x9f;
	for (size_t i = 50; i < 100; i++)
		buf[i] = 0xff;
	is_int(smp_cbor_load(buf, 100, 32, &it), -EBADMSG, "50 indefinite levels refused");
	/* Tags nest too. */
	for (size_t i = 0; i < 60; i++)
		buf[i] = 0xc1;
	buf[60] = 0;
	is_int(smp_cbor_load(buf, 61, 32, &it), -EBADMSG, "60 nested tags refused");
}

static void test_truncation(void)
{
	size_t n;
	/* V32: image state response payload. */
	uint8_t *b = tap_unhex(
		"bf66696d616765739fbf64736c6f74006776657273696f6e65312e302e30646861736858"
		"20644d69c5f2f82ee9a6195ddadf5272cd4aa80ea3205e9824b79a6facf2d4734f68626f"
		"6f7461626c65f56770656e64696e67f469636f6e6669726d6564f566616374697665f569"
		"7065726d616e656e74f4ffbf64736c6f74016776657273696f6e65312e312e3064686173"
		"685820c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f068"
		"626f6f7461626c65f56770656e64696e67f469636f6e6669726d6564f466616374697665"
		"f4697065726d616e656e74f4ffff6b73706c697453746174757300ff", &n);
	cbor_item_t *it = NULL;
	unsigned refused = 0;

	for (size_t i = 0; i < n; i++) {
		if (smp_cbor_load(b, i, 32, &it) == -EBADMSG)
			refused++;
		else
			cbor_decref(&it);
	}
	is_int(refused, n, "every truncation of V32 refused");
	is_int(smp_cbor_load(b, n, 32, &it), 0, "whole V32 loads");
	cbor_decref(&it);
	free(b);
}

static void test_lookups(void)
{
	cbor_item_t *it = NULL;
	uint64_t u;
	int64_t i;
	bool bo;
	char *s = NULL;
	const uint8_t *p;
	size_t n;

	/* {"u": 5, "n": -3, "b": true, "t": "hi", "x": h'ff', "z": "a\0b", 1: 2, "big": 2^64-1} */
	is_int(load_hex("a8 6175 05 616e 22 6162 f5 6174 626869 6178 41ff 617a 63610062 01 02"
			"63626967 1bffffffffffffffff", 32, &it), 0, "lookup map loads");
	ok(smp_cbor_get_uint(it, "u", &u) == 0 && u == 5, "uint");
	is_int(smp_cbor_get_uint(it, "n", &u), -EBADMSG, "negative is not a uint");
	ok(smp_cbor_get_int(it, "n", &i) == 0 && i == -3, "negative int");
	ok(smp_cbor_get_int(it, "u", &i) == 0 && i == 5, "uint as int");
	is_int(smp_cbor_get_int(it, "big", &i), -ERANGE, "2^64-1 does not fit int64");
	ok(smp_cbor_get_bool(it, "b", &bo) == 0 && bo, "bool");
	is_int(smp_cbor_get_bool(it, "u", &bo), -EBADMSG, "int is not a bool");
	cbor_decref(&it);
	/* libcbor asserts when asked whether a float is a bool: must be refused first. */
	is_int(load_hex("a3 6166 f93e00 6167 fa3fc00000 6168 f6", 32, &it), 0, "floats load");
	is_int(smp_cbor_get_bool(it, "f", &bo), -EBADMSG, "half float is not a bool");
	is_int(smp_cbor_get_bool(it, "g", &bo), -EBADMSG, "single float is not a bool");
	is_int(smp_cbor_get_bool(it, "h", &bo), -EBADMSG, "null is not a bool");
	cbor_decref(&it);
	is_int(load_hex("a8 6175 05 616e 22 6162 f5 6174 626869 6178 41ff 617a 63610062 01 02"
			"63626967 1bffffffffffffffff", 32, &it), 0, "lookup map reloads");
	ok(smp_cbor_get_text(it, "t", &s) == 0 && strcmp(s, "hi") == 0, "text");
	free(s);
	s = NULL;
	is_int(smp_cbor_get_text(it, "x", &s), -EBADMSG, "bytes are not text");
	is_int(smp_cbor_get_text(it, "z", &s), -EBADMSG, "text with NUL refused");
	ok(smp_cbor_get_bytes(it, "x", &p, &n) == 0 && n == 1 && p[0] == 0xff, "bytes");
	is_int(smp_cbor_get_bytes(it, "t", &p, &n), -EBADMSG, "text is not bytes");
	is_int(smp_cbor_get_uint(it, "missing", &u), -ENOENT, "missing key");
	ok(smp_cbor_map_get(NULL, "u") == NULL, "NULL map has no keys");
	cbor_decref(&it);
	is_int(load_hex("820102", 32, &it), 0, "array loads");
	is_int(smp_cbor_get_uint(it, "u", &u), -ENOENT, "an array has no keys");
	cbor_decref(&it);
}

static void test_encoder(void)
{
	struct smp_buf b = SMP_BUF_INIT;
	size_t n;
	uint8_t *want;
	uint8_t *raw;

	smp_cbor_put_map(&b, 6);
	smp_cbor_put_text(&b, "a");
	smp_cbor_put_uint(&b, 23);
	smp_cbor_put_text(&b, "b");
	smp_cbor_put_uint(&b, 24);
	smp_cbor_put_text(&b, "c");
	smp_cbor_put_int(&b, -25);
	smp_cbor_put_text(&b, "d");
	smp_cbor_put_bool(&b, false);
	smp_cbor_put_text(&b, "e");
	smp_cbor_put_bytes(&b, "\x01\x02", 2);
	smp_cbor_put_text(&b, "f");
	smp_cbor_put_array_indef(&b);
	smp_cbor_put_uint(&b, 65536);
	smp_cbor_put_null(&b);
	smp_cbor_put_break(&b);
	is_int(smp_buf_error(&b), 0, "encoder ok");
	want = tap_unhex("a6 6161 17 6162 1818 6163 3818 6164 f4 6165 420102 6166 9f 1a00010000 f6 ff", &n);
	is_mem(b.data, b.len, want, n, "encoded bytes");
	free(want);
	smp_buf_clear(&b);

	smp_cbor_put_map_indef(&b);
	smp_cbor_put_text(&b, "x");
	raw = smp_cbor_put_bytes_reserve(&b, 300);
	ok(raw != NULL, "reserve 300 bytes");
	memset(raw, 0xab, 300);
	smp_cbor_put_break(&b);
	is_int(b.len, 1 + 2 + 3 + 300 + 1, "reserved bytes counted");
	is_int(b.data[3], 0x59, "two-byte length head for 300");
	smp_buf_clear(&b);

	/* A limit makes the error sticky. */
	b.limit = 4;
	smp_cbor_put_text(&b, "hello");
	is_int(smp_buf_error(&b), -EMSGSIZE, "limit exceeded");
	smp_cbor_put_uint(&b, 1);
	is_int(b.len, 0, "later appends are no-ops");
	smp_buf_clear(&b);

	is_int(smp_cbor_uint_size(23), 1, "head size 23");
	is_int(smp_cbor_uint_size(24), 2, "head size 24");
	is_int(smp_cbor_uint_size(256), 3, "head size 256");
	is_int(smp_cbor_uint_size(65536), 5, "head size 65536");
	is_int(smp_cbor_uint_size(1ULL << 32), 9, "head size 2^32");
	is_int(smp_cbor_str_size(300), 303, "string of 300");
}

int main(void)
{
	test_forms();
	test_chunked_strings();
	test_malformed();
	test_depth();
	test_truncation();
	test_lookups();
	test_encoder();
	return tap_done();
}
