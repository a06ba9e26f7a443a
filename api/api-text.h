/* api-text: checks and encodings of the text that handlers pass between clients and devices */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether s[0..n) holds a control character: C0 (below 0x20, NUL
 * included), DEL, or a C1 control (U+0080..U+009F, UTF-8 0xC2 0x80..0x9F).
 * Names and paths that reach a device or its logs carry none. */
bool api_text_has_control(const char *s, size_t n);

/* Standard base64 (RFC 4648, with padding) of p[0..n), NUL-terminated.
 * Returns 0 and a malloc'd string, -ENOMEM. */
int api_text_base64_encode(const uint8_t *p, size_t n, char **ret);

/* Decodes standard base64 (padding required, no white space) into a
 * malloc'd buffer of *ret_len bytes (never NULL, even for "").
 * Returns 0, -EINVAL for anything that is not base64, -ENOMEM. */
int api_text_base64_decode(const char *s, size_t n, uint8_t **ret, size_t *ret_len);

/* Lower-case hex of p[0..n), NUL-terminated. Returns 0 and a malloc'd
 * string, -ENOMEM. */
int api_text_hex(const uint8_t *p, size_t n, char **ret);

/* The decimal digits of v into buf (room for 20), without printf: the hot
 * path of the device list and /metrics. Returns how many were written. */
size_t api_text_u64(char *buf, uint64_t v);

/* A device's unsigned counter as a JSON integer: jansson's integers are
 * int64, so values above INT64_MAX are clamped rather than wrapped negative. */
static inline json_int_t api_text_json_uint(uint64_t v)
{
	return (json_int_t)(v > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : v);
}

/* Bytes a device sent as they are (a setting's value, shell output): sets
 * o[text_key] to them as a string when they are valid UTF-8, and
 * o[b64_key] to their base64 when they are not, or always when b64_always.
 * Returns 0, -ENOMEM. */
int api_text_set_bytes(json_t *o, const char *text_key, const char *b64_key, bool b64_always,
		       const uint8_t *p, size_t n);
