/* smp-cbor: bounded decoding of untrusted CBOR, typed map lookups, and an encoder onto smp_buf */
#pragma once

#include <cbor.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smp-buf.h"

/* Standard SMP payloads nest at most 3 deep; user groups get more room. */
#define SMP_CBOR_MAX_DEPTH 32

/* Decodes one complete CBOR data item that occupies exactly len bytes.
 *
 * Safe on untrusted input: libcbor 0.8 allocates definite-length maps and
 * arrays at their declared size, so every declared size is first checked
 * against the bytes actually present (streaming pass), nesting deeper than
 * max_depth is refused, and only then is the tree built. Indefinite-length
 * strings are joined into definite ones so callers see one form. A definite
 * text string that is not valid UTF-8 (which libcbor would refuse) comes out
 * as a byte string: devices send raw shell output as text.
 *
 * Returns 0 and a new reference in *ret (release with cbor_decref), -EBADMSG
 * for malformed, truncated, too deep or trailing bytes, -ENOMEM. */
int smp_cbor_load(const uint8_t *data, size_t len, unsigned max_depth, cbor_item_t **ret);

static inline void smp_cbor_decrefp(cbor_item_t **p)
{
	if (*p)
		cbor_decref(p);
}

/* Map lookups by text key. A missing key gives -ENOENT, a key of the wrong
 * type -EBADMSG; *ret is written only on success. map may be NULL or not a
 * map (then every key is missing). */
const cbor_item_t *smp_cbor_map_get(const cbor_item_t *map, const char *key);
int smp_cbor_get_uint(const cbor_item_t *map, const char *key, uint64_t *ret);
int smp_cbor_get_int(const cbor_item_t *map, const char *key, int64_t *ret);
int smp_cbor_get_bool(const cbor_item_t *map, const char *key, bool *ret);
/* Copies a text string into a new NUL-terminated string (free()). Text with
 * an embedded NUL is -EBADMSG. */
int smp_cbor_get_text(const cbor_item_t *map, const char *key, char **ret);
/* Borrows a byte string's bytes; valid while the item lives. */
int smp_cbor_get_bytes(const cbor_item_t *map, const char *key, const uint8_t **ret,
		       size_t *ret_len);

/* The same conversions on a single item. */
int smp_cbor_item_uint(const cbor_item_t *item, uint64_t *ret);
int smp_cbor_item_int(const cbor_item_t *item, int64_t *ret);
int smp_cbor_item_text(const cbor_item_t *item, char **ret);
int smp_cbor_item_bool(const cbor_item_t *item, bool *ret);
/* Strict UTF-8 (RFC 3629, the rule libcbor and jansson apply): no overlong
 * forms, surrogates or values past U+10FFFF. */
bool smp_utf8_valid(const uint8_t *p, size_t n);
/* True when item is a text string equal to s. */
bool smp_cbor_text_eq(const cbor_item_t *item, const char *s);

/* Encoding onto a buffer, through libcbor's encoders. Errors are sticky in
 * the buffer (see smp-buf.h). Requests use definite lengths; the *_indef
 * forms exist because Zephyr answers with indefinite maps and arrays. */
void smp_cbor_put_map(struct smp_buf *b, size_t pairs);
void smp_cbor_put_map_indef(struct smp_buf *b);
void smp_cbor_put_array(struct smp_buf *b, size_t items);
void smp_cbor_put_array_indef(struct smp_buf *b);
void smp_cbor_put_break(struct smp_buf *b);
void smp_cbor_put_uint(struct smp_buf *b, uint64_t v);
void smp_cbor_put_int(struct smp_buf *b, int64_t v);
void smp_cbor_put_bool(struct smp_buf *b, bool v);
void smp_cbor_put_null(struct smp_buf *b);
void smp_cbor_put_text(struct smp_buf *b, const char *s);
void smp_cbor_put_textn(struct smp_buf *b, const char *s, size_t n);
void smp_cbor_put_bytes(struct smp_buf *b, const void *p, size_t n);
/* Writes a byte-string header for n bytes and returns where the n bytes go
 * (already counted in b->len), or NULL on error: lets a chunk be read straight
 * into the packet. The pointer is valid until the next append. */
uint8_t *smp_cbor_put_bytes_reserve(struct smp_buf *b, size_t n);

/* Encoded size of a CBOR head for an unsigned value / a byte or text string of n bytes. */
size_t smp_cbor_uint_size(uint64_t v);
static inline size_t smp_cbor_str_size(size_t n)
{
	return smp_cbor_uint_size(n) + n;
}
