/* api-field: typed members of JSON bodies and query arguments, with 400 replies naming them */
#include <errno.h>
#include <string.h>

#include "api/api-field.h"

/* jansson hands out UTF-8 only; what is left to refuse is control characters. */
static bool api_field_text_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return false;
		/* C1 controls, U+0080..U+009F */
		if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
		    (unsigned char)s[i + 1] <= 0x9f)
			return false;
	}
	return true;
}

static int api_field_bad(struct api_req *q, const char *name, const char *what)
{
	api_reply_error(q, 400, "bad_request", "\"%s\": %s", name, what);
	return -EINVAL;
}

int api_field_only(struct api_req *q, json_t *body, const char *const *allowed)
{
	const char *key;
	json_t *v;

	json_object_foreach (body, key, v) {
		bool known = false;

		for (const char *const *a = allowed; *a && !known; a++)
			known = strcmp(*a, key) == 0;
		if (!known) {
			/* The key came from the client: print it only when it is tame. */
			if (strlen(key) <= 64 && api_field_text_ok(key, strlen(key)))
				api_reply_error(q, 400, "bad_request", "unknown member \"%s\"", key);
			else
				api_reply_error(q, 400, "bad_request", "unknown member");
			return -EINVAL;
		}
	}
	return 0;
}

int api_field_string(struct api_req *q, json_t *body, const char *name, size_t max_len,
		     bool allow_empty, const char **ret)
{
	json_t *v = json_object_get(body, name);
	size_t n;

	if (!v || json_is_null(v))
		return -ENOENT;
	if (!json_is_string(v))
		return api_field_bad(q, name, "must be a string");
	n = json_string_length(v);
	if (n == 0 && !allow_empty)
		return api_field_bad(q, name, "must not be empty");
	if (n > max_len) {
		api_reply_error(q, 400, "bad_request", "\"%s\": longer than %zu bytes", name,
				max_len);
		return -EINVAL;
	}
	if (!api_field_text_ok(json_string_value(v), n))
		return api_field_bad(q, name, "holds a control character");
	*ret = json_string_value(v);
	return 0;
}

int api_field_bool(struct api_req *q, json_t *body, const char *name, bool *ret)
{
	json_t *v = json_object_get(body, name);

	if (!v || json_is_null(v))
		return -ENOENT;
	if (!json_is_boolean(v))
		return api_field_bad(q, name, "must be true or false");
	*ret = json_is_true(v);
	return 0;
}

int api_field_int(struct api_req *q, json_t *body, const char *name, int64_t min, int64_t max,
		  int64_t *ret)
{
	json_t *v = json_object_get(body, name);
	json_int_t i;

	if (!v || json_is_null(v))
		return -ENOENT;
	if (!json_is_integer(v))
		return api_field_bad(q, name, "must be an integer");
	i = json_integer_value(v);
	if (i < min || i > max) {
		api_reply_error(q, 400, "bad_request", "\"%s\": must be in %lld..%lld", name,
				(long long)min, (long long)max);
		return -EINVAL;
	}
	*ret = i;
	return 0;
}

static int api_field_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int api_field_hash(struct api_req *q, json_t *body, const char *name,
		   uint8_t ret[SMP_IMAGE_HASH_LEN])
{
	uint8_t hash[SMP_IMAGE_HASH_LEN];
	json_t *v = json_object_get(body, name);
	const char *s;

	if (!v || json_is_null(v))
		return -ENOENT;
	if (!json_is_string(v))
		return api_field_bad(q, name, "must be a string of 64 hex digits");
	s = json_string_value(v);
	if (json_string_length(v) != 2 * SMP_IMAGE_HASH_LEN)
		return api_field_bad(q, name, "must be exactly 64 hex digits");
	for (size_t i = 0; i < SMP_IMAGE_HASH_LEN; i++) {
		int hi = api_field_hexval(s[2 * i]), lo = api_field_hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return api_field_bad(q, name, "must be exactly 64 hex digits");
		hash[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(ret, hash, sizeof(hash));
	return 0;
}

int api_field_query_bool(struct api_req *q, const char *name, bool *ret)
{
	int r = api_req_query_bool(q, name, ret);

	if (r == -ENOENT)
		return r;
	if (r < 0) {
		api_reply_error(q, 400, "bad_query", "query \"%s\": must be true or false", name);
		return -EINVAL;
	}
	return 0;
}

int api_field_query_string(struct api_req *q, const char *name, size_t max_len, const char **ret)
{
	const char *s = api_req_query(q, name);
	size_t n;

	if (!s)
		return -ENOENT;
	n = strlen(s);
	if (n > max_len) {
		api_reply_error(q, 400, "bad_query", "query \"%s\": longer than %zu bytes", name,
				max_len);
		return -EINVAL;
	}
	if (!api_field_text_ok(s, n)) {
		api_reply_error(q, 400, "bad_query", "query \"%s\": holds a control character",
				name);
		return -EINVAL;
	}
	*ret = s;
	return 0;
}
