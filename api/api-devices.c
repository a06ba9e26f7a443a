/* api-devices: the device list and its CRUD: /api/v1/devices and /api/v1/devices/{id} */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api-field.h"
#include "api/api-text.h"
#include "api/api.h"
#include "daemon/gw-devices.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "daemon/gw-rollouts.h"
#include "daemon/gw-static.h"
#include "lib/macro.h"

#define API_DEVICES_LIMIT_DEFAULT 100
#define API_DEVICES_LIMIT_MAX 1000
/* The registry's bounds (gw-registry.c): checked here too so that the reply
 * names the member instead of saying "invalid device". */
#define API_DEVICES_NAME_MAX 256
#define API_DEVICES_LABEL_MAX 64
#define API_DEVICES_LABELS_MAX 32
#define API_DEVICES_ADDRESS_MAX 1024
#define API_DEVICES_ID_MAX 128
#define API_DEVICES_BAUD_MAX 4000000

static json_t *api_devices_ms_or_null(uint64_t ms)
{
	return ms ? json_integer((json_int_t)MIN(ms, (uint64_t)INT64_MAX)) : json_null();
}

static uint64_t api_devices_age(uint64_t now, uint64_t at)
{
	/* The wall clock may have stepped back since. */
	return now > at ? now - at : 0;
}

/* What a dashboard shows in a list: the running image of image 0 and the OS
 * info, with the age of the image state they come from. */
static int api_devices_summary(struct gw_device *d, uint64_t now, json_t **ret)
{
	_cleanup_(json_decrefp) json_t *o = NULL;
	json_t *state, *images, *e, *info, *active = NULL;
	uint64_t at = 0;
	size_t i;

	o = json_pack("{snsnsnsn}", "version", "hash", "info", "age_ms");
	if (!o)
		return -ENOMEM;
	state = gw_registry_get_reported(d, "image_state", &at);
	images = json_object_get(state, "images");
	json_array_foreach (images, i, e) {
		if (json_integer_value(json_object_get(e, "image")) != 0)
			continue;
		if (json_is_true(json_object_get(e, "active"))) {
			active = e;
			break;
		}
		/* A device that flags nothing runs what is in the primary slot. */
		if (!active && json_integer_value(json_object_get(e, "slot")) == 0)
			active = e;
	}
	if (active) {
		json_t *version = json_object_get(active, "version");
		json_t *hash = json_object_get(active, "hash");

		if ((version && json_object_set(o, "version", version) < 0) ||
		    (hash && json_object_set(o, "hash", hash) < 0))
			return -ENOMEM;
	}
	if (state && json_object_set_new(o, "age_ms",
					 json_integer((json_int_t)api_devices_age(now, at))) < 0)
		return -ENOMEM;
	info = json_object_get(gw_registry_get_reported(d, "info", NULL), "output");
	if (json_is_string(info) && json_object_set(o, "info", info) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(o);
	return 0;
}

/* Every reported section as {"value", "at", "age_ms"}. */
static int api_devices_reported(struct gw_device *d, uint64_t now, json_t **ret)
{
	_cleanup_(json_decrefp) json_t *o = json_object();
	const char *section;
	json_t *entry;

	if (!o)
		return -ENOMEM;
	json_object_foreach (d->reported, section, entry) {
		json_t *value = json_object_get(entry, "value");
		uint64_t at = (uint64_t)json_integer_value(json_object_get(entry, "at"));

		if (!value)
			continue;
		if (json_object_set_new(o, section,
					json_pack("{sOsIsI}", "value", value, "at", (json_int_t)at,
						  "age_ms",
						  (json_int_t)api_devices_age(now, at))) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(o);
	return 0;
}

static int api_devices_json(struct gw_manager *m, struct gw_device *d, bool detail, uint64_t now,
			    json_t **ret)
{
	_cleanup_(json_decrefp) json_t *o = NULL;
	json_t *summary = NULL, *reported = NULL;
	int r;

	r = api_devices_summary(d, now, &summary);
	if (r < 0)
		return r;
	o = json_pack("{sssssssssOsssssbsosososo}", "id", d->id, "identity", d->identity, "name",
		      d->name ? d->name : "", "transport", gw_transport_to_string(d->transport),
		      "labels", d->labels, "address", d->address, "source",
		      gw_source_to_string(d->source), "online", d->online, "last_seen",
		      api_devices_ms_or_null(d->last_seen_ms), "rssi",
		      d->has_rssi ? json_integer(d->rssi) : json_null(), "baud",
		      d->transport == GW_TRANSPORT_SERIAL && d->baud ? json_integer(d->baud)
								     : json_null(),
		      "summary", summary);
	if (!o)
		return -ENOMEM;
	if (detail) {
		bool link = m->devices && gw_devices_has_link(m->devices, d);
		bool busy = m->rollouts && gw_rollouts_device_busy(m->rollouts, d->id);

		r = api_devices_reported(d, now, &reported);
		if (r < 0)
			return r;
		if (json_object_set_new(o, "reported", reported) < 0 ||
		    json_object_set_new(o, "link", json_boolean(link)) < 0 ||
		    json_object_set_new(o, "busy", json_boolean(busy)) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(o);
	return 0;
}

static void api_devices_reply_device(struct api_req *q, struct gw_manager *m, struct gw_device *d,
				     unsigned status)
{
	json_t *o = NULL;
	int r;

	r = api_devices_json(m, d, true, gw_now_ms(), &o);
	if (r < 0) {
		api_reply_errno(q, r, "device");
		return;
	}
	api_reply_json(q, status, o);
}

/* ---- GET /api/v1/devices ---- */

struct api_devices_filter {
	int transport; /* -1: any */
	int online;    /* -1: any */
	char **labels; /* NULL-terminated; all must match */
	const char *name;
	bool name_glob;
};

static void api_devices_filter_clear(struct api_devices_filter *f)
{
	for (char **l = f->labels; l && *l; l++)
		free(*l);
	free(f->labels);
}

static bool api_devices_has_label(struct gw_device *d, const char *label)
{
	size_t i;
	json_t *v;

	json_array_foreach (d->labels, i, v)
		if (strcmp(json_string_value(v), label) == 0)
			return true;
	return false;
}

static bool api_devices_match(const struct api_devices_filter *f, struct gw_device *d)
{
	const char *name = d->name ? d->name : "";

	if (f->transport >= 0 && (int)d->transport != f->transport)
		return false;
	if (f->online >= 0 && d->online != (bool)f->online)
		return false;
	for (char **l = f->labels; l && *l; l++)
		if (!api_devices_has_label(d, *l))
			return false;
	if (f->name) {
		if (f->name_glob)
			return fnmatch(f->name, name, FNM_CASEFOLD) == 0;
		return strcasestr(name, f->name) != NULL;
	}
	return true;
}

/* "a,b, c" -> {"a","b","c"}; empty entries dropped. */
static int api_devices_split_labels(const char *s, char ***ret)
{
	_cleanup_free_ char *copy = strdup(s);
	char **v = NULL, *save = NULL;
	size_t n = 0;

	if (!copy)
		return -ENOMEM;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char **nv;

		t += strspn(t, " ");
		for (size_t k = strlen(t); k > 0 && t[k - 1] == ' '; k--)
			t[k - 1] = '\0';
		if (!*t)
			continue;
		nv = reallocarray(v, n + 2, sizeof(*v));
		if (!nv)
			goto oom;
		v = nv;
		v[n] = strdup(t);
		if (!v[n])
			goto oom;
		v[++n] = NULL;
	}
	*ret = v;
	return 0;
oom:
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
	return -ENOMEM;
}

/* Reads the filters; -EINVAL after replying 400. */
static int api_devices_parse_filter(struct api_req *q, struct api_devices_filter *f)
{
	const char *s = NULL;
	int r;

	f->transport = -1;
	f->online = -1;
	r = api_field_query_string(q, "transport", 16, &s);
	if (r == 0) {
		f->transport = gw_transport_from_string(s);
		if (f->transport < 0) {
			api_reply_error(q, 400, "bad_query",
					"query \"transport\": must be udp, serial or ble");
			return -EINVAL;
		}
	} else if (r != -ENOENT)
		return r;
	r = api_field_query_string(q, "state", 16, &s);
	if (r == 0) {
		if (strcmp(s, "online") == 0)
			f->online = 1;
		else if (strcmp(s, "offline") == 0)
			f->online = 0;
		else {
			api_reply_error(q, 400, "bad_query",
					"query \"state\": must be online or offline");
			return -EINVAL;
		}
	} else if (r != -ENOENT)
		return r;
	r = api_field_query_string(q, "label", API_DEVICES_LABEL_MAX * API_DEVICES_LABELS_MAX, &s);
	if (r == 0) {
		r = api_devices_split_labels(s, &f->labels);
		if (r < 0) {
			api_reply_errno(q, r, "labels");
			return r;
		}
	} else if (r != -ENOENT)
		return r;
	r = api_field_query_string(q, "name", API_DEVICES_NAME_MAX, &f->name);
	if (r == 0)
		f->name_glob = strpbrk(f->name, "*?[") != NULL;
	else if (r != -ENOENT)
		return r;
	return 0;
}

static void api_devices_on_list(struct api_req *q, void *userdata)
{
	struct gw_manager *m = userdata;
	struct api_devices_filter f = {};
	_cleanup_(json_decrefp) json_t *list = json_array(), *o = NULL;
	const char *cursor = NULL, *last = NULL;
	uint64_t limit = API_DEVICES_LIMIT_DEFAULT, now = gw_now_ms(), total = 0;
	bool more = false;
	int r;

	if (!list) {
		api_reply_errno(q, -ENOMEM, "device list");
		return;
	}
	r = api_req_query_uint(q, "limit", &limit);
	if (r == -EINVAL || (r == 0 && (limit < 1 || limit > API_DEVICES_LIMIT_MAX))) {
		api_reply_error(q, 400, "bad_query", "query \"limit\": must be in 1..%d",
				API_DEVICES_LIMIT_MAX);
		return;
	}
	r = api_field_query_string(q, "cursor", API_DEVICES_ID_MAX, &cursor);
	if (r < 0 && r != -ENOENT)
		return;
	if (api_devices_parse_filter(q, &f) < 0)
		goto out;

	/* One pass in id order: the page after the cursor, and the total. */
	for (struct gw_device *d = gw_registry_next(m->registry, NULL); d;
	     d = gw_registry_next(m->registry, d->id)) {
		json_t *item = NULL;

		if (!api_devices_match(&f, d))
			continue;
		total++;
		if (cursor && strcmp(d->id, cursor) <= 0)
			continue;
		if (json_array_size(list) >= limit) {
			more = true;
			continue;
		}
		r = api_devices_json(m, d, false, now, &item);
		if (r < 0 || json_array_append_new(list, item) < 0) {
			api_reply_errno(q, -ENOMEM, "device list");
			goto out;
		}
		last = d->id;
	}
	o = json_pack("{sOsosI}", "devices", list, "next_cursor",
		      more && last ? json_string(last) : json_null(), "total", (json_int_t)total);
	if (!o)
		api_reply_errno(q, -ENOMEM, "device list");
	else
		api_reply_json(q, 200, TAKE_PTR(o));
out:
	api_devices_filter_clear(&f);
}

/* ---- POST /api/v1/devices ---- */

/* The labels member (an array of strings) as the registry's comma list. */
static int api_devices_labels_text(struct api_req *q, json_t *labels, char **ret)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0, i;
	json_t *v;

	if (!json_is_array(labels) || json_array_size(labels) > API_DEVICES_LABELS_MAX) {
		api_reply_error(q, 400, "bad_request",
				"\"labels\": must be an array of at most %d strings",
				API_DEVICES_LABELS_MAX);
		return -EINVAL;
	}
	text = strdup("");
	if (!text) {
		api_reply_errno(q, -ENOMEM, "labels");
		return -ENOMEM;
	}
	json_array_foreach (labels, i, v) {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);
		char *t;

		if (!s || n == 0 || n > API_DEVICES_LABEL_MAX || strchr(s, ',') ||
		    api_text_has_control(s, n)) {
			api_reply_error(q, 400, "bad_request",
					"\"labels\"[%zu]: must be a string of 1..%d bytes without ',' "
					"or control characters",
					i, API_DEVICES_LABEL_MAX);
			return -EINVAL;
		}
		t = realloc(text, len + n + 2);
		if (!t) {
			api_reply_errno(q, -ENOMEM, "labels");
			return -ENOMEM;
		}
		text = t;
		if (len)
			text[len++] = ',';
		memcpy(text + len, s, n + 1);
		len += n;
	}
	*ret = TAKE_PTR(text);
	return 0;
}

/* The device that already holds the identity a registration would take. */
static struct gw_device *api_devices_existing(struct gw_manager *m, enum gw_transport t,
					      const char *address)
{
	_cleanup_free_ char *canonical = NULL, *identity = NULL;

	if (t == GW_TRANSPORT_UDP) {
		if (gw_static_parse_udp(address, &canonical, NULL, NULL) < 0)
			return NULL;
		if (asprintf(&identity, "udp:%s", canonical) < 0)
			return NULL;
	} else if (asprintf(&identity, "tty:%s", address) < 0)
		return NULL;
	return gw_registry_find_identity(m->registry, identity);
}

static void api_devices_on_create(struct api_req *q, void *userdata)
{
	static const char *const allowed[] = {"transport", "address", "name", "labels", "baud",
					      NULL};
	struct gw_manager *m = userdata;
	json_t *body = api_body_object(q);
	_cleanup_free_ char *labels = NULL;
	struct gw_device_spec spec = {};
	struct gw_device *d = NULL, *old;
	const char *transport = NULL;
	int64_t baud = 0;
	json_t *jl;
	int r;

	if (!body || api_field_only(q, body, allowed) < 0)
		return;
	r = api_field_string(q, body, "transport", 16, false, &transport);
	if (r == -ENOENT) {
		api_reply_error(q, 400, "bad_request", "\"transport\": required (udp or serial)");
		return;
	}
	if (r < 0)
		return;
	if (strcmp(transport, "udp") == 0)
		spec.transport = GW_TRANSPORT_UDP;
	else if (strcmp(transport, "serial") == 0)
		spec.transport = GW_TRANSPORT_SERIAL;
	else {
		api_reply_error(q, 400, "bad_request",
				"\"transport\": must be udp or serial (BLE devices are discovered)");
		return;
	}
	r = api_field_string(q, body, "address", API_DEVICES_ADDRESS_MAX, false, &spec.address);
	if (r == -ENOENT) {
		api_reply_error(q, 400, "bad_request", "\"address\": required");
		return;
	}
	if (r < 0)
		return;
	if (spec.transport == GW_TRANSPORT_UDP &&
	    gw_static_parse_udp(spec.address, NULL, NULL, NULL) < 0) {
		api_reply_error(q, 400, "bad_request",
				"\"address\": must be IPv4:port or [IPv6]:port (literals, port 1..65535)");
		return;
	}
	if (spec.transport == GW_TRANSPORT_SERIAL && spec.address[0] != '/') {
		api_reply_error(q, 400, "bad_request", "\"address\": must be an absolute path");
		return;
	}
	r = api_field_string(q, body, "name", API_DEVICES_NAME_MAX, true, &spec.name);
	if (r < 0 && r != -ENOENT)
		return;
	r = api_field_int(q, body, "baud", 1, API_DEVICES_BAUD_MAX, &baud);
	if (r < 0 && r != -ENOENT)
		return;
	if (r == 0 && spec.transport != GW_TRANSPORT_SERIAL) {
		api_reply_error(q, 400, "bad_request", "\"baud\": only for serial devices");
		return;
	}
	spec.baud = (unsigned)baud;
	jl = json_object_get(body, "labels");
	if (jl && !json_is_null(jl)) {
		if (api_devices_labels_text(q, jl, &labels) < 0)
			return;
		spec.labels = labels;
	}

	r = gw_static_register(m, &spec, &d);
	switch (r) {
	case 0:
		break;
	case -EEXIST:
		old = api_devices_existing(m, spec.transport, spec.address);
		api_reply_error(q, 409, "device_exists", "device %s is registered with this address",
				old ? old->id : "(unknown)");
		return;
	case -ENOENT:
		api_reply_error(q, 400, "bad_request", "\"address\": no such serial port");
		return;
	case -ENOTTY:
		api_reply_error(q, 400, "bad_request", "\"address\": not a terminal");
		return;
	case -EINVAL:
		api_reply_error(q, 400, "bad_request", "the device was refused: check its members");
		return;
	default:
		api_reply_errno(q, r, "registering the device");
		return;
	}
	{
		_cleanup_free_ char *location = NULL;

		if (asprintf(&location, "/api/v1/devices/%s", d->id) >= 0)
			(void)api_req_add_header(q, "Location", location);
	}
	api_devices_reply_device(q, m, d, 201);
}

/* ---- /api/v1/devices/{id} ---- */

static void api_devices_on_get(struct api_req *q, void *userdata)
{
	struct gw_manager *m = userdata;
	struct gw_device *d = api_device_lookup(q, m);

	if (d)
		api_devices_reply_device(q, m, d, 200);
}

static void api_devices_on_patch(struct api_req *q, void *userdata)
{
	static const char *const allowed[] = {"name", "labels", NULL};
	struct gw_manager *m = userdata;
	struct gw_device *d = api_device_lookup(q, m);
	_cleanup_free_ char *labels_text = NULL;
	const char *name = NULL;
	json_t *body, *labels;
	int r;

	if (!d)
		return;
	body = api_body_object(q);
	if (!body || api_field_only(q, body, allowed) < 0)
		return;
	r = api_field_string(q, body, "name", API_DEVICES_NAME_MAX, true, &name);
	if (r < 0 && r != -ENOENT)
		return;
	labels = json_object_get(body, "labels");
	if (labels && json_is_null(labels))
		labels = NULL;
	/* Checked whole before anything changes: a PATCH is all or nothing. */
	if (labels && api_devices_labels_text(q, labels, &labels_text) < 0)
		return;
	if (name) {
		r = gw_registry_set_name(m->registry, d, name);
		if (r < 0) {
			api_reply_errno(q, r, "name");
			return;
		}
	}
	if (labels) {
		r = gw_registry_set_labels(m->registry, d, labels);
		if (r < 0) {
			api_reply_errno(q, r, "labels");
			return;
		}
	}
	api_devices_reply_device(q, m, d, 200);
}

static void api_devices_on_delete(struct api_req *q, void *userdata)
{
	struct gw_manager *m = userdata;
	struct gw_device *d = api_device_lookup(q, m);
	int r;

	if (!d)
		return;
	if (m->rollouts && gw_rollouts_device_busy(m->rollouts, d->id)) {
		api_reply_error(q, 409, "device_busy", "device %s has an active rollout job", d->id);
		return;
	}
	r = gw_static_unregister(m, d);
	if (r == -EPERM) {
		api_reply_error(q, 409, "device_configured",
				"device %s comes from the configuration file: remove it there and reload",
				d->id);
		return;
	}
	if (r < 0) {
		api_reply_errno(q, r, "removing the device");
		return;
	}
	api_reply_json(q, 204, NULL);
}

static const struct api_route api_devices_routes[] = {
	{"GET", "/api/v1/devices", API_ROLE_VIEWER, 0, api_devices_on_list},
	{"POST", "/api/v1/devices", API_ROLE_OPERATOR, 0, api_devices_on_create},
	{"GET", "/api/v1/devices/{id}", API_ROLE_VIEWER, 0, api_devices_on_get},
	{"PATCH", "/api/v1/devices/{id}", API_ROLE_OPERATOR, 0, api_devices_on_patch},
	{"DELETE", "/api/v1/devices/{id}", API_ROLE_OPERATOR, 0, api_devices_on_delete},
};

int api_devices_register(struct api_http *h, struct gw_manager *m)
{
	return api_http_add_routes(h, api_devices_routes, ELEMENTSOF(api_devices_routes), m);
}
