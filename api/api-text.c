/* api-text: checks and encodings of the text that handlers pass between clients and devices */
#include <errno.h>
#include <nettle/base16.h>
#include <nettle/base64.h>
#include <stdlib.h>
#include <string.h>

#include "api/api-text.h"
#include "lib/macro.h"
#include "lib/smp-cbor.h"

bool api_text_has_control(const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;

	for (size_t i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			return true;
		if (p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
			return true;
	}
	return false;
}

int api_text_base64_encode(const uint8_t *p, size_t n, char **ret)
{
	size_t len = BASE64_ENCODE_RAW_LENGTH(n);
	char *s = malloc(len + 1);

	if (!s)
		return -ENOMEM;
	base64_encode_raw(s, n, p);
	s[len] = 0;
	*ret = s;
	return 0;
}

static bool api_text_base64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

int api_text_base64_decode(const char *s, size_t n, uint8_t **ret, size_t *ret_len)
{
	struct base64_decode_ctx ctx;
	_cleanup_free_ uint8_t *out = NULL;
	size_t pad = 0, len = 0;

	/* nettle skips white space and tolerates missing padding: a value
	 * that reaches a device is taken in one spelling only. */
	if (n % 4 != 0)
		return -EINVAL;
	while (pad < 2 && pad < n && s[n - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < n - pad; i++)
		if (!api_text_base64_char(s[i]))
			return -EINVAL;

	out = malloc(BASE64_DECODE_LENGTH(n) + 1);
	if (!out)
		return -ENOMEM;
	base64_decode_init(&ctx);
	len = BASE64_DECODE_LENGTH(n);
	if (!base64_decode_update(&ctx, &len, out, n, s) || !base64_decode_final(&ctx))
		return -EINVAL;
	*ret = TAKE_PTR(out);
	*ret_len = len;
	return 0;
}

int api_text_hex(const uint8_t *p, size_t n, char **ret)
{
	size_t len = BASE16_ENCODE_LENGTH(n);
	char *s = malloc(len + 1);

	if (!s)
		return -ENOMEM;
	base16_encode_update(s, n, p);
	s[len] = 0;
	*ret = s;
	return 0;
}

int api_text_set_bytes(json_t *o, const char *text_key, const char *b64_key, bool b64_always,
		       const uint8_t *p, size_t n)
{
	bool text = smp_utf8_valid(p, n);
	char *b64 = NULL;
	int r;

	if (text && json_object_set_new(o, text_key, json_stringn((const char *)p, n)) < 0)
		return -ENOMEM;
	if (text && !b64_always)
		return 0;
	r = api_text_base64_encode(p, n, &b64);
	if (r < 0)
		return r;
	r = json_object_set_new(o, b64_key, json_string(b64)) < 0 ? -ENOMEM : 0;
	free(b64);
	return r;
}

size_t api_text_u64(char *buf, uint64_t v)
{
	char rev[20];
	size_t n = 0;

	do {
		rev[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		buf[i] = rev[n - 1 - i];
	return n;
}
