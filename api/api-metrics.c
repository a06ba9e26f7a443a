/* api-metrics: GET /metrics in the Prometheus text format 0.0.4, from counters and the registry cache */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api-metrics.h"
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

static void api_metrics_puts(struct smp_buf *b, const char *s)
{
	smp_buf_append(b, s, strlen(s));
}

static void api_metrics_family(struct smp_buf *b, const char *name, const char *type,
			       const char *help)
{
	api_metrics_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value per the text format: backslash, double quote and line feed escaped. */
static void api_metrics_escape(struct smp_buf *b, const char *s)
{
	for (const char *p = s ? s : ""; *p; p++) {
		switch (*p) {
		case '\\':
			smp_buf_append(b, "\\\\", 2);
			break;
		case '"':
			smp_buf_append(b, "\\\"", 2);
			break;
		case '\n':
			smp_buf_append(b, "\\n", 2);
			break;
		default:
			smp_buf_append(b, p, 1);
		}
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

		api_metrics_puts(b, first ? "{" : ",");
		api_metrics_puts(b, k);
		api_metrics_puts(b, "=\"");
		api_metrics_escape(b, v);
		api_metrics_puts(b, "\"");
		first = false;
	}
	va_end(ap);
	if (!first)
		api_metrics_puts(b, "}");
}

static void api_metrics_value_u64(struct smp_buf *b, uint64_t v)
{
	api_metrics_printf(b, " %" PRIu64 "\n", v);
}

static void api_metrics_value_i64(struct smp_buf *b, int64_t v)
{
	api_metrics_printf(b, " %" PRId64 "\n", v);
}

/* Milliseconds as seconds, exactly. */
static void api_metrics_value_ms(struct smp_buf *b, uint64_t ms)
{
	api_metrics_printf(b, " %" PRIu64 ".%03u\n", ms / 1000, (unsigned)(ms % 1000));
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

static void api_metrics_devices(struct smp_buf *b, struct gw_manager *m)
{
	uint64_t now = gw_now_ms();
	struct gw_device *d;

#define FOREACH_DEVICE for (d = gw_registry_next(m->registry, NULL); d; \
			    d = gw_registry_next(m->registry, d->id))

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
		const char *version, *hash;

		api_metrics_active_image(d, &version, &hash);
		api_metrics_series(b, "smpgw_device_info", "device", d->id, "name",
				   d->name ? d->name : "", "transport",
				   gw_transport_to_string(d->transport), "version", version, "hash",
				   hash, NULL);
		api_metrics_value_u64(b, 1);
	}
	api_metrics_family(b, "smpgw_device_stat", "gauge",
			   "Each field of each statistics group the device reported.");
	FOREACH_DEVICE
		api_metrics_device_stats(b, d);
	api_metrics_family(b, "smpgw_device_stats_age_seconds", "gauge",
			   "Age of the statistics the device last reported.");
	FOREACH_DEVICE {
		uint64_t at;

		if (!gw_registry_get_reported(d, "stats", &at))
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

int api_metrics_render(struct gw_manager *m, struct smp_buf *b)
{
	api_metrics_smp(b, m);
	api_metrics_http(b, m);
	if (m->registry)
		api_metrics_devices(b, m);
	api_metrics_jobs(b, m);
	return smp_buf_error(b);
}

static void api_metrics_get(struct api_req *q, void *userdata)
{
	struct smp_buf b = SMP_BUF_INIT;
	int r;

	r = api_metrics_render(userdata, &b);
	if (r < 0)
		api_reply_errno(q, r, "metrics");
	else
		api_reply_bytes(q, 200, API_METRICS_CONTENT_TYPE, b.data, b.len);
	smp_buf_clear(&b);
}

static const struct api_route api_metrics_routes[] = {
	{ "GET", "/metrics", API_ROLE_VIEWER, 0, api_metrics_get },
};

int api_metrics_register(struct api_http *h, struct gw_manager *m)
{
	return api_http_add_routes(h, api_metrics_routes, ELEMENTSOF(api_metrics_routes), m);
}
