/* api-metrics: GET /metrics in the Prometheus text format 0.0.4, from counters and the registry cache */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "api/api-device-cache.h"
#include "api/api-metrics.h"
#include "api/api-text.h"
#include "api/api.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-metrics.h"
#include "daemon/gw-registry.h"
#include "daemon/gw-rollouts.h"
#include "lib/macro.h"
#include "lib/smp-buf.h"
#include "lib/smp-header.h"

#define API_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/*
 * Everything comes from memory: counters, the registry and its cached
 * reported sections. A scrape never calls a device. Text from devices and
 * configuration (names, stats groups and fields) only ever appears in label
 * values, escaped; metric and label names are ours.
 */

_printf_(2, 3) static void api_metrics_printf(struct smp_buf *b, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(line)) {
		smp_buf_append(b, line, (size_t)n);
		return;
	}
	/* Longer than the stack line: format again into the buffer itself. */
	{
		uint8_t *p = smp_buf_reserve(b, (size_t)n + 1);

		if (!p)
			return;
		va_start(ap, fmt);
		vsnprintf((char *)p, (size_t)n + 1, fmt, ap);
		va_end(ap);
		b->len += (size_t)n;
	}
}

/* smp_buf_append() without the call while the buffer has room: a scrape of
 * 1,000 devices makes hundreds of thousands of small appends. */
static inline void api_metrics_put(struct smp_buf *b, const char *s, size_t n)
{
	if (n == 0) /* s may be NULL then: an empty text kept for a device */
		return;
	if (b->data && !b->err && n <= b->cap - b->len && (!b->limit || b->len + n <= b->limit)) {
		memcpy(b->data + b->len, s, n);
		b->len += n;
		return;
	}
	smp_buf_append(b, s, n);
}

static void api_metrics_puts(struct smp_buf *b, const char *s)
{
	api_metrics_put(b, s, strlen(s));
}

static void api_metrics_family(struct smp_buf *b, const char *name, const char *type,
			       const char *help)
{
	api_metrics_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value per the text format: backslash, double quote and line feed escaped. */
static void api_metrics_escape(struct smp_buf *b, const char *s)
{
	const char *p = s ? s : "";

	for (;;) {
		size_t n = strcspn(p, "\\\"\n");

		api_metrics_put(b, p, n);
		p += n;
		switch (*p) {
		case '\0':
			return;
		case '\\':
			api_metrics_put(b, "\\\\", 2);
			break;
		case '"':
			api_metrics_put(b, "\\\"", 2);
			break;
		default: /* '\n' */
			api_metrics_put(b, "\\n", 2);
		}
		p++;
	}
}

/* name{k1="v1",k2="v2"} from a NULL-terminated list of key, value pairs. */
static void api_metrics_series(struct smp_buf *b, const char *name, ...)
{
	const char *k;
	bool first = true;
	va_list ap;

	api_metrics_puts(b, name);
	va_start(ap, name);
	while ((k = va_arg(ap, const char *))) {
		const char *v = va_arg(ap, const char *);

		api_metrics_put(b, first ? "{" : ",", 1);
		api_metrics_puts(b, k);
		api_metrics_put(b, "=\"", 2);
		api_metrics_escape(b, v);
		api_metrics_put(b, "\"", 1);
		first = false;
	}
	va_end(ap);
	if (!first)
		api_metrics_put(b, "}", 1);
}

/* " <v>\n" without printf, the other hot spot of a large scrape. */
static void api_metrics_value_u64(struct smp_buf *b, uint64_t v)
{
	char text[24];
	size_t n = 1;

	text[0] = ' ';
	n += api_text_u64(text + n, v);
	text[n++] = '\n';
	api_metrics_put(b, text, n);
}

static void api_metrics_value_i64(struct smp_buf *b, int64_t v)
{
	if (v >= 0) {
		api_metrics_value_u64(b, (uint64_t)v);
		return;
	}
	api_metrics_printf(b, " %" PRId64 "\n", v);
}

/* Milliseconds as seconds, exactly. */
static void api_metrics_value_ms(struct smp_buf *b, uint64_t ms)
{
	unsigned frac = (unsigned)(ms % 1000);
	char text[32];
	size_t n = 1;

	text[0] = ' ';
	n += api_text_u64(text + n, ms / 1000);
	text[n++] = '.';
	text[n++] = (char)('0' + frac / 100);
	text[n++] = (char)('0' + frac / 10 % 10);
	text[n++] = (char)('0' + frac % 10);
	text[n++] = '\n';
	api_metrics_put(b, text, n);
}

static void api_metrics_value_double(struct smp_buf *b, double v)
{
	api_metrics_printf(b, " %.17g\n", v);
}

/* ---- SMP counters ---- */

/* The group's name when it has one, else its number. */
static const char *api_metrics_group(uint16_t group, char buf[8])
{
	const char *s = smp_group_to_string(group);

	if (s && group < SMP_GROUP_USER_MIN)
		return s;
	snprintf(buf, 8, "%u", group);
	return buf;
}

static void api_metrics_on_request(uint16_t group, enum gw_metrics_result result, uint64_t n,
				   void *userdata)
{
	struct smp_buf *b = userdata;
	char num[8];

	api_metrics_series(b, "smpgw_smp_requests_total", "group", api_metrics_group(group, num),
			   "result", gw_metrics_result_to_string(result), NULL);
	api_metrics_value_u64(b, n);
}

static void api_metrics_smp(struct smp_buf *b, struct gw_manager *m)
{
	struct smp_client_stats st;

	api_metrics_family(b, "smpgw_smp_requests_total", "counter",
			   "SMP requests by group and how they ended.");
	gw_metrics_foreach_request(m->metrics, api_metrics_on_request, b);
	gw_metrics_get_totals(m->metrics, &st);
	api_metrics_family(b, "smpgw_smp_bytes_sent_total", "counter",
			   "SMP packet bytes sent to devices, headers included.");
	api_metrics_printf(b, "smpgw_smp_bytes_sent_total %" PRIu64 "\n", st.bytes_sent);
	api_metrics_family(b, "smpgw_smp_bytes_received_total", "counter",
			   "SMP packet bytes received from devices, headers included.");
	api_metrics_printf(b, "smpgw_smp_bytes_received_total %" PRIu64 "\n", st.bytes_received);
	api_metrics_family(b, "smpgw_smp_retransmits_total", "counter",
			   "SMP requests sent again (UDP retries, SMP version fallback).");
	api_metrics_printf(b, "smpgw_smp_retransmits_total %" PRIu64 "\n", st.retransmits);
	api_metrics_family(b, "smpgw_smp_timeouts_total", "counter",
			   "SMP request timer expiries, before a retry or a failure.");
	api_metrics_printf(b, "smpgw_smp_timeouts_total %" PRIu64 "\n", st.timeouts);
}

/* ---- HTTP counters ---- */

static void api_metrics_on_http_count(const char *method, const char *pattern, unsigned status,
				      uint64_t count, uint64_t duration_us_sum, void *userdata)
{
	struct smp_buf *b = userdata;
	char st[8];

	snprintf(st, sizeof(st), "%u", status);
	api_metrics_series(b, "smpgw_http_requests_total", "method", method, "route", pattern,
			   "status", st, NULL);
	api_metrics_value_u64(b, count);
}

static void api_metrics_on_http_duration(const char *method, const char *pattern, unsigned status,
					 uint64_t count, uint64_t duration_us_sum, void *userdata)
{
	struct smp_buf *b = userdata;
	char st[8];

	snprintf(st, sizeof(st), "%u", status);
	api_metrics_series(b, "smpgw_http_request_duration_seconds_sum", "method", method,
			   "route", pattern, "status", st, NULL);
	api_metrics_printf(b, " %" PRIu64 ".%06u\n", duration_us_sum / 1000000,
			   (unsigned)(duration_us_sum % 1000000));
	api_metrics_series(b, "smpgw_http_request_duration_seconds_count", "method", method,
			   "route", pattern, "status", st, NULL);
	api_metrics_value_u64(b, count);
}

static void api_metrics_http(struct smp_buf *b, struct gw_manager *m)
{
	api_metrics_family(b, "smpgw_http_requests_total", "counter",
			   "HTTP requests by method, route pattern and status.");
	if (m->http)
		api_http_foreach_stat(m->http, api_metrics_on_http_count, b);
	api_metrics_family(b, "smpgw_http_request_duration_seconds", "summary",
			   "Time from a request's arrival to its reply being queued.");
	if (m->http)
		api_http_foreach_stat(m->http, api_metrics_on_http_duration, b);
}

/* ---- devices, from the registry ---- */

static void api_metrics_devices_count(struct smp_buf *b, struct gw_manager *m)
{
	static const enum gw_transport transports[] = { GW_TRANSPORT_UDP, GW_TRANSPORT_SERIAL,
							GW_TRANSPORT_BLE };
	uint64_t n[ELEMENTSOF(transports)][2] = { { 0 } };
	struct gw_device *d;

	for (d = gw_registry_next(m->registry, NULL); d; d = gw_registry_next(m->registry, d->id))
		for (size_t t = 0; t < ELEMENTSOF(transports); t++)
			if (d->transport == transports[t])
				n[t][d->online]++;
	api_metrics_family(b, "smpgw_devices", "gauge", "Known devices by transport and state.");
	for (size_t t = 0; t < ELEMENTSOF(transports); t++)
		for (unsigned on = 0; on < 2; on++) {
			api_metrics_series(b, "smpgw_devices", "transport",
					   gw_transport_to_string(transports[t]), "state",
					   on ? "online" : "offline", NULL);
			api_metrics_value_u64(b, n[t][on]);
		}
}

/* The version and hash of the running image: the active slot's entry. */
static void api_metrics_active_image(struct gw_device *d, const char **ret_version,
				     const char **ret_hash)
{
	json_t *images = json_object_get(gw_registry_get_reported(d, "image_state", NULL), "images");
	size_t i;
	json_t *img;

	*ret_version = "";
	*ret_hash = "";
	json_array_foreach(images, i, img) {
		const char *v = json_string_value(json_object_get(img, "version"));
		const char *h = json_string_value(json_object_get(img, "hash"));

		if (!json_is_true(json_object_get(img, "active")))
			continue;
		*ret_version = v ? v : "";
		*ret_hash = h ? h : "";
		return;
	}
}

static void api_metrics_device_info(struct smp_buf *b, struct gw_device *d)
{
	const char *version, *hash;

	api_metrics_active_image(d, &version, &hash);
	api_metrics_series(b, "smpgw_device_info", "device", d->id, "name", d->name ? d->name : "",
			   "transport", gw_transport_to_string(d->transport), "version", version,
			   "hash", hash, NULL);
	api_metrics_value_u64(b, 1);
}

static void api_metrics_device_stats(struct smp_buf *b, struct gw_device *d)
{
	json_t *stats = gw_registry_get_reported(d, "stats", NULL);
	const char *group, *field;
	json_t *fields, *v;

	json_object_foreach(stats, group, fields) {
		json_object_foreach(fields, field, v) {
			if (!json_is_integer(v) && !json_is_real(v))
				continue;
			api_metrics_series(b, "smpgw_device_stat", "device", d->id, "group", group,
					   "field", field, NULL);
			if (json_is_integer(v))
				api_metrics_value_i64(b, json_integer_value(v));
			else
				api_metrics_value_double(b, json_real_value(v));
		}
	}
}

/*
 * Walking every device's reported JSON on each scrape is bound by memory
 * latency (a few dozen scattered objects per device), so the two families
 * drawn from it, smpgw_device_info and smpgw_device_stat, are kept per
 * device as text (api-device-cache.h) and made again only when the
 * registry announces a change of what they show. The families drawn from
 * the device's own fields are written at each scrape.
 */
struct api_metrics_item {
	struct api_device_cache_item base;
	struct smp_buf info; /* api_metrics_device_info(), when info_fresh */
	struct smp_buf stats;/* api_metrics_device_stats(), when stats_fresh */
	uint64_t stats_at;   /* when has_stats, with stats */
	bool has_stats;
	bool info_fresh;
	bool stats_fresh;
};

static void api_metrics_item_clear(struct api_device_cache_item *base)
{
	struct api_metrics_item *it = (struct api_metrics_item *)base;

	smp_buf_clear(&it->info);
	smp_buf_clear(&it->stats);
	it->info_fresh = it->stats_fresh = false;
}

/* Makes the item's texts again where the registry said they changed.
 * Returns 0 or -ENOMEM (the item is then made again next time). */
static int api_metrics_item_fresh(struct api_metrics_item *it)
{
	if (!it->info_fresh) {
		it->info.len = 0;
		api_metrics_device_info(&it->info, it->base.d);
		if (smp_buf_error(&it->info) < 0) {
			smp_buf_clear(&it->info);
			return -ENOMEM;
		}
		it->info_fresh = true;
	}
	if (!it->stats_fresh) {
		it->stats.len = 0;
		api_metrics_device_stats(&it->stats, it->base.d);
		if (smp_buf_error(&it->stats) < 0) {
			smp_buf_clear(&it->stats);
			return -ENOMEM;
		}
		it->has_stats = gw_registry_get_reported(it->base.d, "stats", &it->stats_at) != NULL;
		it->stats_fresh = true;
	}
	return 0;
}

static void api_metrics_item_changed(struct api_device_cache_item *base,
				     enum gw_registry_event ev, const char *section)
{
	struct api_metrics_item *it = (struct api_metrics_item *)base;

	switch (ev) {
	case GW_REGISTRY_REMOVED:
		it->info_fresh = it->stats_fresh = false;
		break;
	case GW_REGISTRY_CHANGED: /* the name */
		it->info_fresh = false;
		break;
	case GW_REGISTRY_REPORTED:
		if (strcmp(section, "image_state") == 0)
			it->info_fresh = false;
		else if (strcmp(section, "stats") == 0)
			it->stats_fresh = false;
		break;
	default: /* online and offline: written at each scrape */
		break;
	}
}

static const struct api_device_cache_ops api_metrics_cache_ops = {
	.name = "api-metrics-cache",
	.item_size = sizeof(struct api_metrics_item),
	.changed = api_metrics_item_changed,
	.clear = api_metrics_item_clear,
};

/* The device families; c (when it serves) holds each device's info and stats text. */
static void api_metrics_devices(struct smp_buf *b, struct gw_manager *m,
				struct api_device_cache *c)
{
	uint64_t now = gw_now_ms();
	size_t n = gw_registry_count(m->registry), k = 0, i;
	_cleanup_free_ struct gw_device **devs = NULL;
	struct api_metrics_item *it = NULL;
	struct gw_device *d;
	int r;

	r = c ? api_device_cache_sync(c) : 0;
	if (r == 0) {
		c = NULL;
		devs = calloc(MAX(n, (size_t)1), sizeof(*devs));
		if (!devs)
			r = -ENOMEM;
		/* Walked once: each step of gw_registry_next() is a search, and
		 * every family below goes over all devices. */
		for (d = gw_registry_next(m->registry, NULL); devs && d && k < n;
		     d = gw_registry_next(m->registry, d->id))
			devs[k++] = d;
	} else
		k = api_device_cache_count(c);
	if (r < 0) {
		b->err = r; /* the buffer's sticky error: the scrape fails whole */
		return;
	}
#define FOREACH_DEVICE \
	for (i = 0; i < k &&                                                              \
		    ((it = c ? (struct api_metrics_item *)api_device_cache_item(c, i) : NULL), \
		     (d = c ? it->base.d : devs[i]));                                          \
	     i++)

	api_metrics_devices_count(b, m);

	api_metrics_family(b, "smpgw_device_online", "gauge",
			   "1 when the device answers, 0 when it does not.");
	FOREACH_DEVICE {
		api_metrics_series(b, "smpgw_device_online", "device", d->id, NULL);
		api_metrics_value_u64(b, d->online);
	}
	api_metrics_family(b, "smpgw_device_last_seen_timestamp_seconds", "gauge",
			   "When a packet of the device last arrived (Unix time).");
	FOREACH_DEVICE {
		if (d->last_seen_ms == 0)
			continue;
		api_metrics_series(b, "smpgw_device_last_seen_timestamp_seconds", "device", d->id,
				   NULL);
		api_metrics_value_ms(b, d->last_seen_ms);
	}
	api_metrics_family(b, "smpgw_device_rssi_dbm", "gauge",
			   "Signal strength of a BLE device as BlueZ last reported it.");
	FOREACH_DEVICE {
		if (!d->has_rssi)
			continue;
		api_metrics_series(b, "smpgw_device_rssi_dbm", "device", d->id, NULL);
		api_metrics_value_i64(b, d->rssi);
	}
	api_metrics_family(b, "smpgw_device_info", "gauge",
			   "Always 1: the device's name, transport and running image.");
	FOREACH_DEVICE {
		if (!it) {
			api_metrics_device_info(b, d);
			continue;
		}
		if (api_metrics_item_fresh(it) < 0) {
			b->err = -ENOMEM;
			return;
		}
		api_metrics_put(b, (const char *)it->info.data, it->info.len);
	}
	api_metrics_family(b, "smpgw_device_stat", "gauge",
			   "Each field of each statistics group the device reported.");
	FOREACH_DEVICE {
		if (it)
			api_metrics_put(b, (const char *)it->stats.data, it->stats.len);
		else
			api_metrics_device_stats(b, d);
	}
	api_metrics_family(b, "smpgw_device_stats_age_seconds", "gauge",
			   "Age of the statistics the device last reported.");
	FOREACH_DEVICE {
		uint64_t at = it ? it->stats_at : 0;

		if (it ? !it->has_stats : !gw_registry_get_reported(d, "stats", &at))
			continue;
		api_metrics_series(b, "smpgw_device_stats_age_seconds", "device", d->id, NULL);
		api_metrics_value_ms(b, now > at ? now - at : 0);
	}
#undef FOREACH_DEVICE
}

/* ---- jobs and rollouts ---- */

static void api_metrics_on_job_count(const char *state, uint64_t n, void *userdata)
{
	struct smp_buf *b = userdata;

	api_metrics_series(b, "smpgw_jobs", "state", state, NULL);
	api_metrics_value_u64(b, n);
}

static void api_metrics_on_bytes_done(int64_t rollout, uint64_t done, uint64_t total,
				      void *userdata)
{
	struct smp_buf *b = userdata;
	char id[24];

	snprintf(id, sizeof(id), "%" PRId64, rollout);
	api_metrics_series(b, "smpgw_rollout_bytes_done", "rollout", id, NULL);
	api_metrics_value_u64(b, done);
}

static void api_metrics_on_bytes_total(int64_t rollout, uint64_t done, uint64_t total,
				       void *userdata)
{
	struct smp_buf *b = userdata;
	char id[24];

	snprintf(id, sizeof(id), "%" PRId64, rollout);
	api_metrics_series(b, "smpgw_rollout_bytes_total", "rollout", id, NULL);
	api_metrics_value_u64(b, total);
}

/* Jobs by state and the bytes of unfinished rollouts; families without
 * series while the rollout engine is not running. */
static void api_metrics_jobs(struct smp_buf *b, struct gw_manager *m)
{
	api_metrics_family(b, "smpgw_jobs", "gauge", "Rollout jobs by state.");
	if (m->rollouts)
		gw_rollouts_foreach_job_count(m->rollouts, api_metrics_on_job_count, b);
	api_metrics_family(b, "smpgw_rollout_bytes_done", "gauge",
			   "Image bytes uploaded so far by each unfinished rollout.");
	if (m->rollouts)
		gw_rollouts_foreach_bytes(m->rollouts, api_metrics_on_bytes_done, b);
	api_metrics_family(b, "smpgw_rollout_bytes_total", "gauge",
			   "Image bytes each unfinished rollout uploads in all.");
	if (m->rollouts)
		gw_rollouts_foreach_bytes(m->rollouts, api_metrics_on_bytes_total, b);
}

/* The cost of durability: what the rollout benchmark divides by its jobs. */
static void api_metrics_db(struct smp_buf *b, struct gw_manager *m)
{
	api_metrics_family(b, "smpgw_db_writes_total", "counter",
			   "Sqlite write statements (INSERT, UPDATE, DELETE) since smpgwd started.");
	api_metrics_series(b, "smpgw_db_writes_total", NULL);
	api_metrics_value_u64(b, gw_manager_db_writes(m));
}

static int api_metrics_render_cached(struct gw_manager *m, struct api_device_cache *c,
				     struct smp_buf *b)
{
	api_metrics_smp(b, m);
	api_metrics_http(b, m);
	if (m->registry)
		api_metrics_devices(b, m, c);
	api_metrics_jobs(b, m);
	api_metrics_db(b, m);
	return smp_buf_error(b);
}

int api_metrics_render(struct gw_manager *m, struct smp_buf *b)
{
	return api_metrics_render_cached(m, NULL, b);
}

static void api_metrics_reply(struct api_req *q, struct gw_manager *m, struct api_device_cache *c)
{
	struct smp_buf local = SMP_BUF_INIT, *b = c ? api_device_cache_body(c) : &local;
	int r;

	b->len = 0;
	r = api_metrics_render_cached(m, c, b);
	if (r < 0)
		api_reply_errno(q, r, "metrics");
	else
		api_reply_bytes(q, 200, API_METRICS_CONTENT_TYPE, b->data, b->len);
	/* A kept body keeps its allocation, but not a sticky error. */
	if (b == &local || r < 0)
		smp_buf_clear(b);
}

static void api_metrics_get(struct api_req *q, void *userdata)
{
	api_metrics_reply(q, userdata, NULL);
}

static void api_metrics_get_cached(struct api_req *q, void *userdata)
{
	struct api_device_cache *c = userdata;

	api_metrics_reply(q, api_device_cache_manager(c), c);
}

/* One of the two: with the cache when there is a loop to own it. */
static const struct api_route api_metrics_route = {
	"GET", "/metrics", API_ROLE_VIEWER, 0, api_metrics_get
};
static const struct api_route api_metrics_cached_route = {
	"GET", "/metrics", API_ROLE_VIEWER, 0, api_metrics_get_cached
};

int api_metrics_register(struct api_http *h, struct gw_manager *m)
{
	struct api_device_cache *c = NULL;
	int r;

	if (!m->event)
		return api_http_add_routes(h, &api_metrics_route, 1, m);
	r = api_device_cache_new(m, &api_metrics_cache_ops, &c);
	if (r < 0)
		return r;
	return api_http_add_routes(h, &api_metrics_cached_route, 1, c);
}
