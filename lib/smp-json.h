/* smp-json: generic CBOR⇄JSON translation, for commands and fields no typed parser knows */
#pragma once

#include <cbor.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "smp-buf.h"
#include "smp-request.h"

/* The mapping is specified in doc/cbor-json.md. In short: text, integers in
 * the int64 range, arrays, maps with unique UTF-8 text keys, booleans, null
 * and finite floats map to their JSON counterparts; everything JSON cannot
 * say is a one-key object whose key starts with '$': {"$bytes": base64},
 * {"$int": "decimal"}, {"$text": base64} (text that is not UTF-8),
 * {"$float": "nan"|"inf"|"-inf"}, {"$simple": n} (undefined is 23),
 * {"$map": [[key, value], ...]}, and {"$tag": n, "value": item}. Any CBOR map
 * with a key starting with '$' takes the "$map" form, so ordinary objects and
 * tagged forms never collide. CBOR -> JSON -> CBOR is byte-identical for
 * definite-length, shortest-form input whose floats are float64. */

/* Translates a CBOR item tree (e.g. smp_response.root). Arrays, maps and
 * tags holding something nested deeper than SMP_CBOR_MAX_DEPTH are refused
 * (counted as smp_cbor_load() counts them).
 * Returns 0 and a new reference in *ret, -EINVAL for a NULL item, -EBADMSG
 * when too deep, -ENOMEM. */
int smp_json_from_cbor(const cbor_item_t *item, json_t **ret);

/* Decodes untrusted CBOR bytes with smp_cbor_load() and translates them.
 * Returns 0 and a new reference in *ret, -EBADMSG for malformed, empty, too
 * deep or trailing bytes, -ENOMEM. */
int smp_json_from_cbor_bytes(const uint8_t *p, size_t n, json_t **ret);

/* Appends the CBOR encoding of j to out (definite lengths, shortest integer
 * heads, reals as float64, object members in iteration order).
 * Returns 0; -EINVAL when j is NULL, nests deeper than SMP_CBOR_MAX_DEPTH
 * (arrays, objects, "$map" and "$tag" that hold something), or
 * holds an object with a '$' key that is not exactly one of the tagged forms
 * (bad base64, bad decimal, unknown form, ...) -- out is then left as it was;
 * or the buffer's sticky error (-ENOMEM, -EMSGSIZE), also when it was already
 * set on entry. */
int smp_json_to_cbor(const json_t *j, struct smp_buf *out);

/* Builds a request whose payload is payload translated to CBOR, or the empty
 * map when payload is NULL. op must be SMP_OP_READ or SMP_OP_WRITE. Groups
 * below SMP_GROUP_USER_MIN require a map at the top (a JSON object or the
 * "$map" form); user groups take any item.
 * Returns 0 and a new request in *ret, -EINVAL (bad op, payload shape, see
 * smp_json_to_cbor), -EMSGSIZE when it exceeds an SMP packet, -ENOMEM. */
int smp_json_request(uint8_t op, uint16_t group, uint8_t id, const json_t *payload,
		     struct smp_request **ret);
