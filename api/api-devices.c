/* api-devices: the device list and its CRUD: /api/v1/devices and /api/v1/devices/{id} */
#include <assert.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "api/api-device-cache.h"
#include "api/api-field.h"
#include "api/api-text.h"
#include "api/api.h"
#include "daemon/gw-devices.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "daemon/gw-rollouts.h"
#include "daemon/gw-static.h"
#include "lib/macro.h"
#include "lib/smp-buf.h"

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
	return ms ? json_integer(api_text_json_uint(ms)) : json_null();
}

static uint64_t api_devices_age(uint64_t now, uint64_t at)
{
	/* The wall clock may have stepped back since. */
	return now > at ? now - at : 0;
}

/* What a dashboard shows in a list: the running image of image 0 and the OS
 * info. Its last member, the age of the image state they come from, moves
 * with the clock: api_devices_age() gives it, and the callers add it. */
static int api_devices_summary(struct gw_device *d, json_t **ret)
{
	_cleanup_(json_decrefp) json_t *o = NULL;
	json_t *state, *images, *e, *info, *active = NULL;
	size_t i;

	o = json_pack("{snsnsn}", "version", "hash", "info");
	if (!o)
		return -ENOMEM;
	state = gw_registry_get_reported(d, "image_state", NULL);
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
	info = json_object_get(gw_registry_get_reported(d, "info", NULL), "output");
	if (json_is_string(info) && json_object_set(o, "info", info) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(o);
	return 0;
}

/* The time of the image state the summary comes from; false when never read
 * (the summary's age_ms is then null). */
static bool api_devices_summary_at(struct gw_device *d, uint64_t *ret_at)
{
	return gw_registry_get_reported(d, "image_state", ret_at) != NULL;
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

/* A device as the API shows it. detail: with every reported section, the
 * link and busy flags, and the summary's age_ms as of now. Without detail (a
 * list item) the summary ends before age_ms: see api_devices_item_text(). */
static int api_devices_json(struct gw_manager *m, struct gw_device *d, bool detail, uint64_t now,
			    json_t **ret)
{
	_cleanup_(json_decrefp) json_t *o = NULL;
	json_t *summary = NULL, *reported = NULL;
	uint64_t at = 0;
	int r;

	r = api_devices_summary(d, &summary);
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
		bool has_at = api_devices_summary_at(d, &at);

		if (json_object_set_new(summary, "age_ms",
					has_at ? json_integer((json_int_t)api_devices_age(now, at))
					       : json_null()) < 0)
			return -ENOMEM;
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

/*
 * Each item's text is kept (api-device-cache.h) and made again only when
 * the registry announces a change of its device, or when a field it changes
 * silently (last_seen, rssi) differs from the one the text holds. The one
 * member that moves with the clock, the summary's age_ms, is the item's
 * last: the kept text stops before it and every reply appends it.
 */
struct api_devices_item {
	struct api_device_cache_item base;
	char *text;           /* api_devices_item_text(); NULL: make it again */
	size_t len;
	uint64_t at;          /* the summary's image state time, when has_at */
	bool has_at;
	/* What the registry changes without telling its listeners. */
	uint64_t last_seen_ms;
	int rssi;
	bool has_rssi;
};

/* A list item serialised up to its last member, the summary's age_ms: the
 * text ends inside the summary, and api_devices_append_item() closes it.
 * Returns 0 and the text (malloc'd) and its length, or -ENOMEM. */
static int api_devices_item_text(struct gw_manager *m, struct gw_device *d, char **ret,
				 size_t *ret_len)
{
	_cleanup_(json_decrefp) json_t *o = NULL;
	char *text;
	size_t len;
	int r;

	r = api_devices_json(m, d, false, 0, &o);
	if (r < 0)
		return r;
	text = json_dumps(o, API_JSON_FLAGS);
	if (!text)
		return -ENOMEM;
	/* The summary, an object, is the item's last member: the text ends
	 * with the closing braces of both, which the tail writes again. */
	len = strlen(text);
	assert(len > 2 && text[len - 2] == '}' && text[len - 1] == '}');
	len -= 2;
	text[len] = '\0';
	*ret = text;
	*ret_len = len;
	return 0;
}

/* An item's kept text, then ,"age_ms":N}} as of now. */
static void api_devices_append_item(struct smp_buf *b, const char *text, size_t len, bool has_at,
				    uint64_t at, uint64_t now)
{
	static const char key[] = ",\"age_ms\":";
	char tail[sizeof(key) + 24];
	size_t n = sizeof(key) - 1;

	smp_buf_append(b, text, len);
	memcpy(tail, key, n);
	if (has_at) {
		n += api_text_u64(tail + n, api_devices_age(now, at));
	} else {
		memcpy(tail + n, "null", 4);
		n += 4;
	}
	memcpy(tail + n, "}}", 2);
	smp_buf_append(b, tail, n + 2);
}

static void api_devices_item_forget(struct api_devices_item *it)
{
	free(it->text);
	it->text = NULL;
	it->len = 0;
}

/* Makes the item's text now unless the kept one still holds. Returns 0 or -ENOMEM. */
static int api_devices_item_fresh(struct gw_manager *m, struct api_devices_item *it)
{
	struct gw_device *d = it->base.d;
	int r;

	if (it->text && it->last_seen_ms == d->last_seen_ms && it->has_rssi == d->has_rssi &&
	    it->rssi == d->rssi)
		return 0;
	api_devices_item_forget(it);
	r = api_devices_item_text(m, d, &it->text, &it->len);
	if (r < 0)
		return r;
	it->has_at = api_devices_summary_at(d, &it->at);
	it->last_seen_ms = d->last_seen_ms;
	it->rssi = d->rssi;
	it->has_rssi = d->has_rssi;
	return 0;
}

static void api_devices_item_changed(struct api_device_cache_item *base,
				     enum gw_registry_event ev, const char *section)
{
	/* The summary shows these two sections only. */
	if (ev == GW_REGISTRY_REPORTED && strcmp(section, "image_state") != 0 &&
	    strcmp(section, "info") != 0)
		return;
	api_devices_item_forget((struct api_devices_item *)base);
}

static void api_devices_item_clear(struct api_device_cache_item *base)
{
	api_devices_item_forget((struct api_devices_item *)base);
}

static const struct api_device_cache_ops api_devices_cache_ops = {
	.name = "api-devices-cache",
	.item_size = sizeof(struct api_devices_item),
	.changed = api_devices_item_changed,
	.clear = api_devices_item_clear,
};

/* The list: c NULL (or not serving) serialises every device of the page. */
static void api_devices_list(struct api_req *q, struct gw_manager *m, struct api_device_cache *c)
{
	struct api_devices_filter f = {};
	struct smp_buf local = SMP_BUF_INIT, *b = &local;
	const char *cursor = NULL, *last = NULL;
	uint64_t limit = API_DEVICES_LIMIT_DEFAULT, now = gw_now_ms(), total = 0, listed = 0;
	struct gw_device *d = NULL;
	bool more = false;
	char num[24];
	int r;

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
	r = c ? api_device_cache_sync(c) : 0;
	if (r < 0)
		goto oom;
	if (r == 0)
		c = NULL;

	if (c) {
		b = api_device_cache_body(c);
		b->len = 0;
	}
	smp_buf_append(b, "{\"devices\":[", 12);
	/* One pass in id order: the page after the cursor, and the total. */
	for (size_t i = 0;; i++) {
		struct api_devices_item *it = NULL, one = {};

		if (c) {
			if (i >= api_device_cache_count(c))
				break;
			it = (struct api_devices_item *)api_device_cache_item(c, i);
			d = it->base.d;
		} else {
			d = gw_registry_next(m->registry, d ? d->id : NULL);
			if (!d)
				break;
		}
		if (!api_devices_match(&f, d))
			continue;
		total++;
		if (cursor && strcmp(d->id, cursor) <= 0)
			continue;
		if (listed >= limit) {
			more = true;
			continue;
		}
		if (!it) {
			one.base.d = d;
			it = &one;
		}
		r = api_devices_item_fresh(m, it);
		if (r < 0)
			goto oom;
		if (listed++)
			smp_buf_append(b, ",", 1);
		api_devices_append_item(b, it->text, it->len, it->has_at, it->at, now);
		api_devices_item_forget(&one);
		last = d->id;
	}
	smp_buf_append(b, "],\"next_cursor\":", 16);
	if (more && last) {
		_cleanup_(json_decrefp) json_t *s = json_string(last);
		_cleanup_free_ char *text = s ? json_dumps(s, API_JSON_FLAGS | JSON_ENCODE_ANY) : NULL;

		if (!text)
			goto oom;
		smp_buf_append(b, text, strlen(text));
	} else
		smp_buf_append(b, "null", 4);
	smp_buf_append(b, ",\"total\":", 9);
	smp_buf_append(b, num, api_text_u64(num, total));
	smp_buf_append(b, "}", 1);
	if (smp_buf_error(b) < 0)
		goto oom;
	api_reply_bytes(q, 200, "application/json", b->data, b->len);
	goto out;
oom:
	api_reply_errno(q, -ENOMEM, "device list");
out:
	/* A kept body keeps its allocation, but not a sticky error. */
	if (b == &local || smp_buf_error(b) < 0)
		smp_buf_clear(b);
	api_devices_filter_clear(&f);
}

static void api_devices_on_list(struct api_req *q, void *userdata)
{
	api_devices_list(q, userdata, NULL);
}

static void api_devices_on_list_cached(struct api_req *q, void *userdata)
{
	struct api_device_cache *c = userdata;

	api_devices_list(q, api_device_cache_manager(c), c);
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

/* The list first: one of the two, with the cache when there is a loop to own it. */
static const struct api_route api_devices_list_route = {
	"GET", "/api/v1/devices", API_ROLE_VIEWER, 0, api_devices_on_list
};
static const struct api_route api_devices_list_cached_route = {
	"GET", "/api/v1/devices", API_ROLE_VIEWER, 0, api_devices_on_list_cached
};

static const struct api_route api_devices_routes[] = {
	{"POST", "/api/v1/devices", API_ROLE_OPERATOR, 0, api_devices_on_create},
	{"GET", "/api/v1/devices/{id}", API_ROLE_VIEWER, 0, api_devices_on_get},
	{"PATCH", "/api/v1/devices/{id}", API_ROLE_OPERATOR, 0, api_devices_on_patch},
	{"DELETE", "/api/v1/devices/{id}", API_ROLE_OPERATOR, 0, api_devices_on_delete},
};

int api_devices_register(struct api_http *h, struct gw_manager *m)
{
	struct api_device_cache *c = NULL;
	int r;

	if (m->event) {
		r = api_device_cache_new(m, &api_devices_cache_ops, &c);
		if (r < 0)
			return r;
	}
	r = c ? api_http_add_routes(h, &api_devices_list_cached_route, 1, c)
	      : api_http_add_routes(h, &api_devices_list_route, 1, m);
	if (r < 0)
		return r;
	return api_http_add_routes(h, api_devices_routes, ELEMENTSOF(api_devices_routes), m);
}
