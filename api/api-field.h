/* api-field: typed members of JSON bodies and query arguments, with 400 replies naming them */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/api-http.h"
#include "lib/smp-image.h"

/* Every getter below returns 0 and the value in *ret; -ENOENT when the
 * member is absent or null (nothing replied, *ret untouched); or -EINVAL
 * after having replied 400 "bad_request" with a message naming the member
 * (the handler just returns). */

/* Refuses (400) a body member not listed in allowed (NULL-terminated): a
 * misspelt optional member would otherwise be ignored in silence. */
int api_field_only(struct api_req *q, json_t *body, const char *const *allowed);

/* A string without control characters, at most max_len bytes; the empty
 * string only when allow_empty. Borrowed from body. */
int api_field_string(struct api_req *q, json_t *body, const char *name, size_t max_len,
		     bool allow_empty, const char **ret);
int api_field_bool(struct api_req *q, json_t *body, const char *name, bool *ret);
/* An integer in [min, max]. */
int api_field_int(struct api_req *q, json_t *body, const char *name, int64_t min, int64_t max,
		  int64_t *ret);
/* An image hash: exactly 2 * SMP_IMAGE_HASH_LEN hex digits, either case. */
int api_field_hash(struct api_req *q, json_t *body, const char *name,
		   uint8_t ret[SMP_IMAGE_HASH_LEN]);

/* Query arguments, same returns: "?refresh=true" and the like. */
int api_field_query_bool(struct api_req *q, const char *name, bool *ret);
/* A query string without control characters, at most max_len bytes. */
int api_field_query_string(struct api_req *q, const char *name, size_t max_len, const char **ret);
