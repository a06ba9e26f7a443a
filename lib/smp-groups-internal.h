/* smp-groups-internal: field getters shared by the typed parsers of every group (not installed) */
#pragma once

#include <cbor.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smp-response.h"

/* The top-level map of a successful response: -EREMOTEIO when the device
 * answered with an error (the caller reads rsp->status), -EBADMSG when the
 * payload is not a map. */
int smp_groups_root(const struct smp_response *rsp, const cbor_item_t **ret);

/* Getters for one field of a map. The opt_ forms return 1 and write *ret when
 * the key is present, 0 when it is absent; the req_ forms return 0, and
 * -EBADMSG when the key is absent. A key of the wrong CBOR type, or a number
 * outside [0, max] / [min, max], is -EBADMSG in both forms. */
int smp_groups_opt_uint(const cbor_item_t *map, const char *key, uint64_t max, uint64_t *ret);
int smp_groups_req_uint(const cbor_item_t *map, const char *key, uint64_t max, uint64_t *ret);
int smp_groups_opt_int(const cbor_item_t *map, const char *key, int64_t min, int64_t max,
		       int64_t *ret);
int smp_groups_req_int(const cbor_item_t *map, const char *key, int64_t min, int64_t max,
		       int64_t *ret);
int smp_groups_opt_bool(const cbor_item_t *map, const char *key, bool *ret);
/* Text: a new NUL-terminated copy (free()); embedded NUL is -EBADMSG. */
int smp_groups_opt_text(const cbor_item_t *map, const char *key, char **ret);
int smp_groups_req_text(const cbor_item_t *map, const char *key, char **ret);
/* Byte string: a new copy (free(); never NULL on success, even when empty). */
int smp_groups_req_bytes(const cbor_item_t *map, const char *key, uint8_t **ret, size_t *ret_len);
/* Containers are borrowed from the map. */
int smp_groups_req_array(const cbor_item_t *map, const char *key, const cbor_item_t **ret);
int smp_groups_req_map(const cbor_item_t *map, const char *key, const cbor_item_t **ret);
/* The response's map (ret_root, may be NULL) and the items and count of the
 * array it must hold under key: what every list-shaped answer starts with. */
int smp_groups_root_array(const struct smp_response *rsp, const char *key,
			  const cbor_item_t **ret_root, cbor_item_t ***ret_items, size_t *ret_n);
/* The same for a map under key: its pairs and count. */
int smp_groups_root_map(const struct smp_response *rsp, const char *key,
			const cbor_item_t **ret_root, struct cbor_pair **ret_pairs, size_t *ret_n);

/* Item conversions with the same range rules. */
int smp_groups_item_uint(const cbor_item_t *item, uint64_t max, uint64_t *ret);

/* calloc() for an array of n elements that returns a non-NULL pointer for
 * n == 0 too, so NULL always means -ENOMEM. n comes from a decoded container,
 * whose size smp_cbor_load has already bounded by the input length. */
void *smp_groups_calloc(size_t n, size_t size);
