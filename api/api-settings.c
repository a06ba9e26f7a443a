/* api-settings: the settings group (3) over HTTP: read, write and delete a named value; commit, load, save */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api-field.h"
#include "api/api-text.h"
#include "api/api.h"
#include "lib/macro.h"
#include "lib/smp-settings.h"

/* Zephyr's settings subsystem cannot hold a longer name
 * (SETTINGS_MAX_NAME_LEN: 8 bytes for each of 8 levels); MCUmgr's own limit
 * (CONFIG_MCUMGR_GRP_SETTINGS_NAME_LEN, 32 by default) is the device's to
 * judge. */
#define API_SETTINGS_NAME_MAX 64
/* Values are raw bytes the device stores as they are: far more than any
 * settings handler takes, less than a request packet can grow to. */
#define API_SETTINGS_VALUE_MAX 4096
/* max_size of a read travels as a 32-bit count. */
#define API_SETTINGS_MAX_SIZE_MAX UINT32_MAX

/* Checks a setting name from the client: bounded, no control characters,
 * and no '=', which ends a name in every settings storage backend (the rest
 * would be taken as the value). Returns 0, or -EINVAL after replying 400. */
static int api_settings_check_name(struct api_req *q, const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0) {
		api_reply_error(q, 400, "bad_name", "the setting name is empty");
		return -EINVAL;
	}
	if (n > API_SETTINGS_NAME_MAX) {
		api_reply_error(q, 400, "bad_name", "setting names are at most %d bytes",
				API_SETTINGS_NAME_MAX);
		return -EINVAL;
	}
	if (api_text_has_control(name, n)) {
		api_reply_error(q, 400, "bad_name", "the setting name holds a control character");
		return -EINVAL;
	}
	if (strchr(name, '=')) {
		api_reply_error(q, 400, "bad_name", "the setting name holds '='");
		return -EINVAL;
	}
	return 0;
}

/* The device named by {id} and the checked {name+}, or NULL after replying. */
static struct gw_device *api_settings_target(struct api_req *q, struct gw_manager *m,
					     const char **ret_name)
{
	struct gw_device *d = api_device_lookup(q, m);
	const char *name = api_req_param(q, "name");

	if (!d || api_settings_check_name(q, name) < 0)
		return NULL;
	*ret_name = name;
	return d;
}

static int api_settings_on_read(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	struct smp_settings_value *v = NULL;
	json_t *o;
	int r;

	r = smp_settings_read_parse(rsp, &v);
	if (r < 0)
		return r;
	o = json_pack("{s:s}", "name", (const char *)userdata);
	r = o ? api_text_set_bytes(o, "value", "value_b64", true, v->val, v->len) : -ENOMEM;
	if (r == 0 && v->has_max_size &&
	    json_object_set_new(o, "max_size", json_integer(v->max_size)) < 0)
		r = -ENOMEM;
	smp_settings_value_free(v);
	if (r < 0) {
		json_decref(o);
		return r;
	}
	*ret = o;
	return 0;
}

/* Write and delete answer {} on success; the reply names the setting. */
static int api_settings_on_named(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	json_t *o = json_pack("{s:s}", "name", (const char *)userdata);

	if (!o)
		return -ENOMEM;
	*ret = o;
	return 0;
}

static int api_settings_on_empty(const struct smp_response *rsp, json_t **ret, void *userdata)
{
	json_t *o = json_object();

	if (!o)
		return -ENOMEM;
	*ret = o;
	return 0;
}

/* Sends req; the parser's userdata is a copy of the name. */
static void api_settings_call_named(struct api_req *q, struct gw_manager *m, struct gw_device *d,
				    struct smp_request *req, api_device_parse_fn parse,
				    const char *name)
{
	char *copy = strdup(name);

	if (!copy) {
		smp_request_free(req);
		api_reply_errno(q, -ENOMEM, "settings");
		return;
	}
	(void)api_device_call(q, m, d, req, parse, copy, free);
}

static void api_settings_on_get(struct api_req *q, void *userdata)
{
	struct gw_manager *m = userdata;
	struct smp_request *req;
	struct gw_device *d;
	const char *name;
	uint64_t max_size = 0;
	int r;

	d = api_settings_target(q, m, &name);
	if (!d)
		return;
	r = api_req_query_uint(q, "max_size", &max_size);
	if (r == -EINVAL || (r >= 0 && (max_size == 0 || max_size > API_SETTINGS_MAX_SIZE_MAX))) {
		api_reply_error(q, 400, "bad_query",
				"query \"max_size\": must be an integer from 1 to %u",
				(unsigned)API_SETTINGS_MAX_SIZE_MAX);
		return;
	}
	r = smp_settings_read_request(name, (uint32_t)max_size, &req);
	if (r < 0) {
		api_reply_errno(q, r, "settings read");
		return;
	}
	api_settings_call_named(q, m, d, req, api_settings_on_read, name);
}

/* The body of a write: exactly one of "value" (text, sent as its UTF-8
 * bytes, whatever they are) and "value_b64" (any bytes). Returns 0, or
 * -errno after replying. */
static int api_settings_body_value(struct api_req *q, uint8_t **ret, size_t *ret_len)
{
	static const char *const allowed[] = {"value", "value_b64", NULL};
	json_t *body = api_body_object(q), *text, *b64;
	uint8_t *val;
	size_t n;
	int r;

	if (!body || api_field_only(q, body, allowed) < 0)
		return -EINVAL;
	text = json_object_get(body, "value");
	b64 = json_object_get(body, "value_b64");
	if (!!text == !!b64) {
		api_reply_error(q, 400, "bad_request",
				"the body needs exactly one of \"value\" and \"value_b64\"");
		return -EINVAL;
	}
	if (!json_is_string(text ? text : b64)) {
		api_reply_error(q, 400, "bad_request", "\"%s\": must be a string",
				text ? "value" : "value_b64");
		return -EINVAL;
	}
	if (text) {
		n = json_string_length(text);
		if (n > API_SETTINGS_VALUE_MAX)
			goto too_large;
		val = malloc(n + 1);
		if (!val) {
			api_reply_errno(q, -ENOMEM, "settings write");
			return -ENOMEM;
		}
		memcpy(val, json_string_value(text), n);
	} else {
		r = api_text_base64_decode(json_string_value(b64), json_string_length(b64), &val,
					   &n);
		if (r == -EINVAL) {
			api_reply_error(q, 400, "bad_request", "\"value_b64\": not base64");
			return r;
		}
		if (r < 0) {
			api_reply_errno(q, r, "settings write");
			return r;
		}
		if (n > API_SETTINGS_VALUE_MAX) {
			free(val);
			goto too_large;
		}
	}
	*ret = val;
	*ret_len = n;
	return 0;

too_large:
	api_reply_error(q, 413, "too_large", "setting values are at most %d bytes",
			API_SETTINGS_VALUE_MAX);
	return -EMSGSIZE;
}

static void api_settings_on_put(struct api_req *q, void *userdata)
{
	struct gw_manager *m = userdata;
	_cleanup_free_ uint8_t *val = NULL;
	struct smp_request *req;
	struct gw_device *d;
	const char *name;
	size_t len = 0;
	int r;

	d = api_settings_target(q, m, &name);
	if (!d || api_settings_body_value(q, &val, &len) < 0)
		return;
	r = smp_settings_write_request(name, val, len, &req);
	if (r < 0) {
		api_reply_errno(q, r, "settings write");
		return;
	}
	api_settings_call_named(q, m, d, req, api_settings_on_named, name);
}

static void api_settings_on_delete(struct api_req *q, void *userdata)
{
	struct gw_manager *m = userdata;
	struct smp_request *req;
	struct gw_device *d;
	const char *name;
	int r;

	d = api_settings_target(q, m, &name);
	if (!d)
		return;
	r = smp_settings_delete_request(name, &req);
	if (r < 0) {
		api_reply_errno(q, r, "settings delete");
		return;
	}
	api_settings_call_named(q, m, d, req, api_settings_on_named, name);
}

/* Actions take no body, or an object holding only the members listed in
 * allowed. Returns 0 and the body (borrowed, NULL when there is none), or
 * -EINVAL after replying 400. */
static int api_settings_action_body(struct api_req *q, const char *const *allowed, json_t **ret)
{
	json_t *body = api_req_json(q);

	if (body && !json_is_object(body)) {
		api_reply_error(q, 400, "bad_request", "the body must be a JSON object");
		return -EINVAL;
	}
	if (body && api_field_only(q, body, allowed) < 0)
		return -EINVAL;
	*ret = body;
	return 0;
}

static void api_settings_on_action(struct api_req *q, struct gw_manager *m,
				   int (*build)(struct smp_request **ret), const char *what)
{
	static const char *const allowed[] = {NULL};
	struct smp_request *req;
	struct gw_device *d;
	json_t *body;
	int r;

	d = api_device_lookup(q, m);
	if (!d || api_settings_action_body(q, allowed, &body) < 0)
		return;
	r = build(&req);
	if (r < 0) {
		api_reply_errno(q, r, what);
		return;
	}
	(void)api_device_call(q, m, d, req, api_settings_on_empty, NULL, NULL);
}

static void api_settings_on_commit(struct api_req *q, void *userdata)
{
	api_settings_on_action(q, userdata, smp_settings_commit_request, "settings commit");
}

static void api_settings_on_load(struct api_req *q, void *userdata)
{
	api_settings_on_action(q, userdata, smp_settings_load_request, "settings load");
}

/* Save takes an optional {"name": subtree}: newer devices save only that
 * subtree, older ones everything. */
static void api_settings_on_save(struct api_req *q, void *userdata)
{
	static const char *const allowed[] = {"name", NULL};
	struct gw_manager *m = userdata;
	const char *name = NULL;
	struct smp_request *req;
	struct gw_device *d;
	json_t *body;
	int r;

	d = api_device_lookup(q, m);
	if (!d || api_settings_action_body(q, allowed, &body) < 0)
		return;
	if (body) {
		r = api_field_string(q, body, "name", API_SETTINGS_NAME_MAX, false, &name);
		if (r == -EINVAL || (name && api_settings_check_name(q, name) < 0))
			return;
	}
	r = smp_settings_save_request(name, &req);
	if (r < 0) {
		api_reply_errno(q, r, "settings save");
		return;
	}
	(void)api_device_call(q, m, d, req, api_settings_on_empty, NULL, NULL);
}

#define API_SETTINGS_VALUES "/api/v1/devices/{id}/settings/values/{name+}"

static const struct api_route api_settings_routes[] = {
    {"GET", API_SETTINGS_VALUES, API_ROLE_VIEWER, 0, api_settings_on_get},
    {"PUT", API_SETTINGS_VALUES, API_ROLE_ADMIN, 0, api_settings_on_put},
    {"DELETE", API_SETTINGS_VALUES, API_ROLE_ADMIN, 0, api_settings_on_delete},
    {"POST", "/api/v1/devices/{id}/settings/commit", API_ROLE_ADMIN, 0, api_settings_on_commit},
    {"POST", "/api/v1/devices/{id}/settings/load", API_ROLE_ADMIN, 0, api_settings_on_load},
    {"POST", "/api/v1/devices/{id}/settings/save", API_ROLE_ADMIN, 0, api_settings_on_save},
};

int api_settings_register(struct api_http *h, struct gw_manager *m)
{
	return api_http_add_routes(h, api_settings_routes, ELEMENTSOF(api_settings_routes), m);
}
