/* api-events: GET /api/v1/events, the event stream as Server-Sent Events */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "api/api.h"
#include "daemon/gw-events.h"
#include "daemon/gw-manager.h"
#include "lib/macro.h"
#include "lib/smp-buf.h"

#define API_EVENTS_HEARTBEAT_MS 15000
#define API_EVENTS_HEARTBEAT_MIN_MS 100
#define API_EVENTS_HEARTBEAT_MAX_MS 3600000
/* Output a client has not read yet beyond which it is cut off: a stalled
 * reader must not make the daemon grow. */
#define API_EVENTS_MAX_PENDING (1024 * 1024)
#define API_EVENTS_MAX_DEVICES 64
#define API_EVENTS_MAX_TYPE 64

/* Events carry their body as text already written: it must read as the API writes JSON. */
_Static_assert(GW_EVENTS_JSON_FLAGS == API_JSON_FLAGS, "event text and API JSON flags differ");

static const char api_events_reset_data[] =
	"{\"reason\":\"events were dropped, re-read state\"}";

struct api_events_stream {
	struct api_req *q;
	struct gw_events *ev;
	struct gw_events_sub *sub;
	sd_event_source *heartbeat;
	uint64_t heartbeat_usec;
	/* filters: all given ones must match */
	char *devices;        /* comma-separated list as given, NUL-split; NULL: any */
	size_t n_devices;
	int64_t rollout;      /* 0: any */
	char *type_prefix;    /* NULL: any */
};

static void api_events_stream_free(struct api_events_stream *s)
{
	if (!s)
		return;
	if (s->sub)
		gw_events_unsubscribe(s->ev, s->sub);
	sd_event_source_disable_unref(s->heartbeat);
	free(s->devices);
	free(s->type_prefix);
	free(s);
}

static bool api_events_match(const struct api_events_stream *s, const struct gw_event *e)
{
	if (s->rollout && e->rollout_id != s->rollout)
		return false;
	if (s->type_prefix && strncmp(e->type, s->type_prefix, strlen(s->type_prefix)) != 0)
		return false;
	if (s->devices) {
		const char *p = s->devices;

		if (!e->device_id)
			return false;
		for (size_t i = 0; i < s->n_devices; i++, p += strlen(p) + 1)
			if (strcmp(p, e->device_id) == 0)
				return true;
		return false;
	}
	return true;
}

/* One event in SSE framing. Compact JSON holds no newline, so one data line. */
static void api_events_format(struct smp_buf *b, const struct gw_event *e)
{
	char head[160];
	int n;

	n = snprintf(head, sizeof(head), "id: %llu\nevent: %s\ndata: ", (unsigned long long)e->id,
		     e->type);
	smp_buf_append(b, head, (size_t)MIN(n, (int)sizeof(head) - 1));
	smp_buf_append(b, e->text, strlen(e->text));
	smp_buf_append(b, "\n\n", 2);
}

/* Ends the stream (error < 0 cuts it) and forgets it: q is gone after. */
static void api_events_stream_end(struct api_events_stream *s, int error)
{
	struct api_req *q = s->q;

	api_events_stream_free(s);
	api_reply_stream_end(q, error);
}

/* Writes bytes; a write that fails, or a reader too far behind, ends the
 * stream. Returns false when it did. */
static bool api_events_write(struct api_events_stream *s, const void *p, size_t n)
{
	int r = api_reply_stream_write(s->q, p, n);

	if (r >= 0 && api_req_stream_pending(s->q) > API_EVENTS_MAX_PENDING)
		r = -ENOBUFS;
	if (r < 0) {
		api_events_stream_end(s, r);
		return false;
	}
	return true;
}

static void api_events_on_event(struct gw_events *ev, const struct gw_event *e, void *userdata)
{
	struct api_events_stream *s = userdata;
	struct smp_buf b = SMP_BUF_INIT;

	if (!api_events_match(s, e))
		return;
	api_events_format(&b, e);
	if (smp_buf_error(&b) < 0)
		api_events_stream_end(s, smp_buf_error(&b));
	else
		(void)api_events_write(s, b.data, b.len);
	smp_buf_clear(&b);
}

/* Replay collects into a buffer: whether a reset must precede it is known
 * only at its end. */
struct api_events_replay {
	struct api_events_stream *s;
	struct smp_buf buf;
};

static void api_events_on_replay(struct gw_events *ev, const struct gw_event *e, void *userdata)
{
	struct api_events_replay *rp = userdata;

	if (api_events_match(rp->s, e))
		api_events_format(&rp->buf, e);
}

static int api_events_on_heartbeat(sd_event_source *src, uint64_t usec, void *userdata)
{
	static const char beat[] = ": heartbeat\n\n";
	struct api_events_stream *s = userdata;
	int r;

	if (!api_events_write(s, beat, sizeof(beat) - 1))
		return 0;
	/* A one-shot timer is off once it fired: set the next beat and turn it on. */
	r = sd_event_source_set_time_relative(src, s->heartbeat_usec);
	if (r >= 0)
		r = sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
	if (r < 0)
		api_events_stream_end(s, r);
	return 0;
}

static void api_events_on_abort(struct api_req *q, void *userdata)
{
	api_events_stream_free(userdata);
}

/* "a,b,c" into NUL-separated ids; false for an empty id or too many. */
static bool api_events_parse_devices(struct api_events_stream *s, const char *list)
{
	size_t n = 1;

	if (!*list || strlen(list) > 4096)
		return false;
	s->devices = strdup(list);
	if (!s->devices)
		return false;
	for (char *p = s->devices; *p; p++)
		if (*p == ',') {
			*p = 0;
			n++;
		}
	s->n_devices = n;
	for (size_t i = 0, off = 0; i < n; i++) {
		size_t len = strlen(s->devices + off);

		if (len == 0)
			return false;
		off += len + 1;
	}
	return n <= API_EVENTS_MAX_DEVICES;
}

/* A decimal event id; false when malformed. */
static bool api_events_parse_id(const char *v, uint64_t *ret)
{
	unsigned long long x;
	char *end;

	if (!v || *v < '0' || *v > '9')
		return false;
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || *end)
		return false;
	*ret = x;
	return true;
}

/* Reads the query; replies 400 and returns false on a bad argument. */
static bool api_events_parse(struct api_req *q, struct api_events_stream *s, uint64_t *ret_after)
{
	const char *v;
	uint64_t x;
	int r;

	v = api_req_query(q, "device");
	if (v && !api_events_parse_devices(s, v)) {
		api_reply_error(q, 400, "bad_request",
				"device: a comma-separated list of at most %d device ids",
				API_EVENTS_MAX_DEVICES);
		return false;
	}
	r = api_req_query_uint(q, "rollout", &x);
	if (r == -EINVAL || (r == 0 && (x == 0 || x > INT64_MAX))) {
		api_reply_error(q, 400, "bad_request", "rollout: a rollout id");
		return false;
	}
	if (r == 0)
		s->rollout = (int64_t)x;
	v = api_req_query(q, "type");
	if (v) {
		if (!*v || strlen(v) > API_EVENTS_MAX_TYPE) {
			api_reply_error(q, 400, "bad_request",
					"type: an event type or its prefix, 1 to %d characters",
					API_EVENTS_MAX_TYPE);
			return false;
		}
		s->type_prefix = strdup(v);
		if (!s->type_prefix) {
			api_reply_errno(q, -ENOMEM, "events");
			return false;
		}
	}
	x = API_EVENTS_HEARTBEAT_MS;
	r = api_req_query_uint(q, "heartbeat", &x);
	if (r == -EINVAL || x < API_EVENTS_HEARTBEAT_MIN_MS || x > API_EVENTS_HEARTBEAT_MAX_MS) {
		api_reply_error(q, 400, "bad_request", "heartbeat: milliseconds, %d to %d",
				API_EVENTS_HEARTBEAT_MIN_MS, API_EVENTS_HEARTBEAT_MAX_MS);
		return false;
	}
	s->heartbeat_usec = x * 1000;

	/* The header is what browsers send on reconnecting; the query serves
	 * clients that cannot set headers. */
	*ret_after = 0;
	v = api_req_header(q, "Last-Event-ID");
	if (v && *v && !api_events_parse_id(v, ret_after)) {
		api_reply_error(q, 400, "bad_request", "Last-Event-ID: an event id");
		return false;
	}
	v = api_req_query(q, "last_event_id");
	if (v && !api_events_parse_id(v, ret_after)) {
		api_reply_error(q, 400, "bad_request", "last_event_id: an event id");
		return false;
	}
	return true;
}

static void api_events_get(struct api_req *q, void *userdata)
{
	static const char opening[] = ": stream\n\n";
	struct gw_manager *m = userdata;
	struct api_events_replay rp = { .buf = SMP_BUF_INIT };
	struct api_events_stream *s;
	uint64_t after;
	int r, n = 0;

	if (!m->events) {
		api_reply_errno(q, -ECANCELED, "events");
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		api_reply_errno(q, -ENOMEM, "events");
		return;
	}
	s->q = q;
	s->ev = m->events;
	if (!api_events_parse(q, s, &after)) {
		api_events_stream_free(s);
		return;
	}

	rp.s = s;
	if (after > 0) {
		n = gw_events_replay_text(m->events, after, api_events_on_replay, &rp);
		r = smp_buf_error(&rp.buf);
		if (r < 0) {
			smp_buf_clear(&rp.buf);
			api_events_stream_free(s);
			api_reply_errno(q, r, "events");
			return;
		}
	}
	r = sd_event_add_time_relative(api_req_event(q), &s->heartbeat, CLOCK_MONOTONIC,
				       s->heartbeat_usec, 0, api_events_on_heartbeat, s);
	if (r >= 0)
		r = gw_events_subscribe(m->events, api_events_on_event, s, &s->sub);
	if (r < 0) {
		smp_buf_clear(&rp.buf);
		api_events_stream_free(s);
		api_reply_errno(q, r, "events");
		return;
	}
	(void)sd_event_source_set_description(s->heartbeat, "api-events-heartbeat");

	/* Proxies must pass each event on as it comes. */
	(void)api_req_add_header(q, "Cache-Control", "no-cache");
	(void)api_req_add_header(q, "X-Accel-Buffering", "no");
	r = api_reply_stream_begin(q, 200, "text/event-stream");
	if (r < 0) {
		smp_buf_clear(&rp.buf);
		api_events_stream_free(s);
		api_reply_errno(q, r, "events");
		return;
	}
	api_req_on_abort(q, api_events_on_abort, s);

	/* A first line so that clients see the stream open at once. */
	if (!api_events_write(s, opening, sizeof(opening) - 1))
		goto out;
	if (n == -ESTALE) {
		static const char reset[] = "event: reset\ndata: ";

		if (!api_events_write(s, reset, sizeof(reset) - 1) ||
		    !api_events_write(s, api_events_reset_data, sizeof(api_events_reset_data) - 1) ||
		    !api_events_write(s, "\n\n", 2))
			goto out;
	}
	if (rp.buf.len > 0)
		(void)api_events_write(s, rp.buf.data, rp.buf.len);
out:
	smp_buf_clear(&rp.buf);
}

static const struct api_route api_events_routes[] = {
	{ "GET", "/api/v1/events", API_ROLE_VIEWER, 0, api_events_get },
};

int api_events_register(struct api_http *h, struct gw_manager *m)
{
	return api_http_add_routes(h, api_events_routes, ELEMENTSOF(api_events_routes), m);
}
