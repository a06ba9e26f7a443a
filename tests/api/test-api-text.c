/* test-api-text: control-character checks, base64 and hex of the API handlers */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api-text.h"
#include "tests/tap.h"

static void test_control(void)
{
	static const struct {
		const char *s;
		size_t n;
		bool control;
	} cases[] = {
	    {"app/greeting", 12, false},
	    {"", 0, false},
	    {"lfs1/caf\xc3\xa9.txt", 14, false}, /* é: U+00E9 */
	    {"\xc2\xa0nbsp", 6, false},		 /* U+00A0 is not a control */
	    {"a\x00"
	     "b",
	     3, true},
	    {"a\nb", 3, true},
	    {"\r", 1, true},
	    {"\x1f", 1, true},
	    {"del\x7f", 4, true},
	    {"c1\xc2\x80", 4, true}, /* U+0080 */
	    {"c1\xc2\x9f", 4, true}, /* U+009F */
	    {"\xc2", 1, false}, /* a lone lead byte is not a control (UTF-8 is checked elsewhere) */
	    {"%2F%00", 6, false}, /* percent signs are text: decoding happens once, earlier */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		is_int(api_text_has_control(cases[i].s, cases[i].n), cases[i].control,
		       "control: case %zu", i);
}

static void test_base64(void)
{
	/* RFC 4648 §10. */
	static const char *const vectors[][2] = {
	    {"", ""},
	    {"f", "Zg=="},
	    {"fo", "Zm8="},
	    {"foo", "Zm9v"},
	    {"foob", "Zm9vYg=="},
	    {"fooba", "Zm9vYmE="},
	    {"foobar", "Zm9vYmFy"},
	};
	static const char *const bad[] = {
	    "Zg",		 /* no padding */
	    "Zg=",		 /* short padding */
	    "Zg===",		 /* too much */
	    "Z===",		 /* three pad characters */
	    "====",	"Zm 9v", /* white space */
	    "Zm9v\n",	"Zm=v",	 /* padding inside */
	    "Zm9v*A==",		 /* not in the alphabet */
	    "Zm9-",		 /* base64url */
	    "Zm9_",
	};

	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const char *plain = vectors[i][0], *enc = vectors[i][1];
		char *s = NULL;
		uint8_t *p = NULL;
		size_t n = 99;

		is_int(api_text_base64_encode((const uint8_t *)plain, strlen(plain), &s), 0,
		       "encode \"%s\"", plain);
		is_str(s, enc, "encode \"%s\" gives %s", plain, enc);
		is_int(api_text_base64_decode(enc, strlen(enc), &p, &n), 0, "decode %s", enc);
		ok(p != NULL, "decode %s: a buffer even when empty", enc);
		is_mem(p, n, plain, strlen(plain), "decode %s", enc);
		free(s);
		free(p);
	}

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t *p = (uint8_t *)"untouched";
		size_t n = 42;

		is_int(api_text_base64_decode(bad[i], strlen(bad[i]), &p, &n), -EINVAL,
		       "decode refuses case %zu", i);
		ok(n == 42 && strcmp((char *)p, "untouched") == 0, "case %zu: outputs untouched",
		   i);
	}

	/* Every byte value survives the round trip. */
	{
		uint8_t all[256], *p = NULL;
		char *s = NULL;
		size_t n = 0;

		for (size_t i = 0; i < sizeof(all); i++)
			all[i] = (uint8_t)i;
		is_int(api_text_base64_encode(all, sizeof(all), &s), 0, "encode 256 bytes");
		is_int(strlen(s), 344, "344 characters");
		is_int(api_text_base64_decode(s, strlen(s), &p, &n), 0, "decode them");
		is_mem(p, n, all, sizeof(all), "round trip of every byte");
		free(s);
		free(p);
	}
}

static void test_hex(void)
{
	static const uint8_t h[] = {0x00, 0x01, 0xab, 0xcd, 0xef, 0xff};
	char *s = NULL;

	is_int(api_text_hex(h, sizeof(h), &s), 0, "hex");
	is_str(s, "0001abcdefff", "lower case, two digits a byte");
	free(s);
	is_int(api_text_hex(h, 0, &s), 0, "hex of nothing");
	is_str(s, "", "is empty");
	free(s);
}

static void test_set_bytes(void)
{
	static const struct {
		const char *p;
		size_t n;
		bool always;
		const char *want; /* the object, as compact JSON with sorted keys */
	} cases[] = {
	    {"hello", 5, false, "{\"out\":\"hello\"}"},
	    {"hello", 5, true, "{\"b64\":\"aGVsbG8=\",\"out\":\"hello\"}"},
	    {"", 0, false, "{\"out\":\"\"}"},
	    {"", 0, true, "{\"b64\":\"\",\"out\":\"\"}"},
	    /* NUL is text in UTF-8 (JSON escapes it). */
	    {"a\0b", 3, false, "{\"out\":\"a\\u0000b\"}"},
	    {"caf\xc3\xa9", 5, false, "{\"out\":\"caf\xc3\xa9\"}"},
	    /* A multi-byte character cut by the device's output buffer. */
	    {"caf\xc3", 4, false, "{\"b64\":\"Y2Fmww==\"}"},
	    {"caf\xc3", 4, true, "{\"b64\":\"Y2Fmww==\"}"},
	    {"\xff\xfe", 2, false, "{\"b64\":\"//4=\"}"},
	    /* Surrogates and overlong forms are not UTF-8. */
	    {"\xed\xa0\x80", 3, false, "{\"b64\":\"7aCA\"}"},
	    {"\xc0\xaf", 2, false, "{\"b64\":\"wK8=\"}"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *o = json_object();
		char *s;

		is_int(api_text_set_bytes(o, "out", "b64", cases[i].always,
					  (const uint8_t *)cases[i].p, cases[i].n),
		       0, "set_bytes: case %zu", i);
		s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
		is_str(s, cases[i].want, "set_bytes: case %zu gives %s", i, cases[i].want);
		free(s);
		json_decref(o);
	}
}

static void test_u64(void)
{
	static const struct {
		uint64_t v;
		const char *text;
	} cases[] = {
		{ 0, "0" }, { 7, "7" }, { 10, "10" }, { 1000, "1000" },
		{ 1731974400123ULL, "1731974400123" }, { UINT64_MAX, "18446744073709551615" },
	};
	char buf[24];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = api_text_u64(buf, cases[i].v);

		buf[n] = '\0';
		is_str(buf, cases[i].text, "u64: %s", cases[i].text);
	}
}

static void test_json_uint(void)
{
	ok(api_text_json_uint(0) == 0, "json uint: 0");
	ok(api_text_json_uint(4096) == 4096, "json uint: 4096");
	ok(api_text_json_uint((uint64_t)INT64_MAX) == INT64_MAX, "json uint: INT64_MAX stays");
	ok(api_text_json_uint((uint64_t)INT64_MAX + 1) == INT64_MAX,
	   "json uint: above INT64_MAX clamps, never negative");
	ok(api_text_json_uint(UINT64_MAX) == INT64_MAX, "json uint: UINT64_MAX clamps");
}

int main(void)
{
	test_control();
	test_base64();
	test_hex();
	test_set_bytes();
	test_u64();
	test_json_uint();
	return tap_done();
}
