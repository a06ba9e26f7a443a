/* gw-events: the daemon's event stream: what happened (devices, images, jobs, rollouts), kept for resume */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "daemon/gw-events.h"
#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "lib/macro.h"

#define LOG "events"
#define GW_EVENTS_DEFAULT_CAPACITY 4096

/*
 * Retained events live in a ring of pointers to refcounted entries: a
 * subscriber or a replay callback may publish, which can push out the very
 * event it is looking at; the reference it holds keeps that event alive.
 * The strings of an entry are stored after it, in the same allocation.
 */
struct gw_events_entry {
	unsigned n_ref;
	struct gw_event e;
	char strings[];
};

struct gw_events_sub {
	TAILQ_ENTRY(gw_events_sub) link;
	gw_events_fn fn;      /* NULL: unsubscribed while events were being delivered */
	void *userdata;
	uint64_t since;       /* events up to this id were published before it subscribed */
};

TAILQ_HEAD(gw_events_sub_list, gw_events_sub);

struct gw_events {
	struct gw_manager *m;
	struct gw_events_entry **ring;
	size_t capacity;
	size_t head;          /* index of the oldest retained event */
	size_t n;
	uint64_t last_id;
	uint64_t first_id;    /* the first id of this run: older ones are unknown here */
	uint64_t evicted_id;  /* the newest event pushed out of the ring (0: none) */
	uint64_t dropped;     /* publications lost to allocation failures */
	struct gw_events_sub_list subs;
	unsigned delivering;
	bool subs_removed;
	json_t *images;       /* device id → its last "image_state" value (a copy) */
};

static struct gw_events_entry *gw_events_entry_ref(struct gw_events_entry *x)
{
	x->n_ref++;
	return x;
}

static void gw_events_entry_unref(struct gw_events_entry *x)
{
	if (!x || --x->n_ref > 0)
		return;
	json_decref(x->e.data);
	free(x);
}

static uint64_t gw_events_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- the registry's side ---- */

static json_t *gw_events_device_body(const struct gw_device *d)
{
	return json_pack("{s:s?, s:s, s:s, s:s, s:O?, s:b, s:I}", "name", d->name, "transport",
			 gw_transport_to_string(d->transport), "address", d->address, "source",
			 gw_source_to_string(d->source), "labels", d->labels, "online", d->online,
			 "last_seen_ms", (json_int_t)d->last_seen_ms);
}

/* image.state when the section differs from what we last saw for the device:
 * the poller rewrites it every round, mostly unchanged. */
static void gw_events_on_image_state(struct gw_events *ev, struct gw_device *d)
{
	json_t *now = gw_registry_get_reported(d, "image_state", NULL);
	json_t *before = json_object_get(ev->images, d->id);
	json_t *copy, *images;

	if (!now || (before && json_equal(before, now)))
		return;
	copy = json_deep_copy(now);
	if (!copy || json_object_set_new(ev->images, d->id, copy) < 0) {
		/* Without the copy the next round announces it again: harmless. */
		json_object_del(ev->images, d->id);
	}
	images = json_object_get(now, "images");
	gw_events_publish(ev, "image.state", d->id, 0,
			  images ? json_pack("{s:O}", "images", images) : json_pack("{s:[]}", "images"));
}

static void gw_events_on_registry(struct gw_registry *r, enum gw_registry_event what,
				  struct gw_device *d, const char *section, void *userdata)
{
	struct gw_events *ev = userdata;

	switch (what) {
	case GW_REGISTRY_ADDED:
		gw_events_publish(ev, "device.added", d->id, 0, gw_events_device_body(d));
		break;
	case GW_REGISTRY_REMOVED:
		json_object_del(ev->images, d->id);
		gw_events_publish(ev, "device.removed", d->id, 0, NULL);
		break;
	case GW_REGISTRY_ONLINE:
		gw_events_publish(ev, "device.online", d->id, 0,
				  json_pack("{s:I}", "last_seen_ms", (json_int_t)d->last_seen_ms));
		break;
	case GW_REGISTRY_OFFLINE:
		gw_events_publish(ev, "device.offline", d->id, 0,
				  json_pack("{s:I}", "last_seen_ms", (json_int_t)d->last_seen_ms));
		break;
	case GW_REGISTRY_CHANGED:
		gw_events_publish(ev, "device.changed", d->id, 0, gw_events_device_body(d));
		break;
	case GW_REGISTRY_REPORTED:
		if (section && strcmp(section, "image_state") == 0)
			gw_events_on_image_state(ev, d);
		break;
	}
}

/* ---- lifecycle ---- */

int gw_events_new(struct gw_manager *m, size_t capacity, struct gw_events **ret)
{
	struct gw_events *ev;
	struct gw_device *d;
	int r;

	if (!m || !m->registry)
		return -EINVAL;
	ev = calloc(1, sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	ev->m = m;
	ev->capacity = capacity ? capacity : GW_EVENTS_DEFAULT_CAPACITY;
	TAILQ_INIT(&ev->subs);
	ev->ring = calloc(ev->capacity, sizeof(*ev->ring));
	ev->images = json_object();
	if (!ev->ring || !ev->images) {
		r = -ENOMEM;
		goto fail;
	}
	/* The image state loaded from the database is what clients already
	 * saw: the first poll after a restart is no change. */
	for (d = gw_registry_next(m->registry, NULL); d; d = gw_registry_next(m->registry, d->id)) {
		json_t *v = gw_registry_get_reported(d, "image_state", NULL);

		if (v && json_object_set_new(ev->images, d->id, json_deep_copy(v)) < 0) {
			r = -ENOMEM;
			goto fail;
		}
	}
	/* Above every id an earlier run gave, unless it published faster than
	 * one event per microsecond on average. */
	ev->first_id = gw_events_now_us();
	ev->last_id = ev->first_id - 1;
	r = gw_registry_add_listener(m->registry, gw_events_on_registry, ev);
	if (r < 0)
		goto fail;
	*ret = ev;
	return 0;
fail:
	json_decref(ev->images);
	free(ev->ring);
	free(ev);
	return r;
}

struct gw_events *gw_events_free(struct gw_events *ev)
{
	struct gw_events_sub *s;

	if (!ev)
		return NULL;
	if (ev->m->registry)
		gw_registry_remove_listener(ev->m->registry, gw_events_on_registry, ev);
	while ((s = TAILQ_FIRST(&ev->subs))) {
		if (s->fn)
			gw_warn(LOG, "a subscriber was left at shutdown");
		TAILQ_REMOVE(&ev->subs, s, link);
		free(s);
	}
	for (size_t i = 0; i < ev->n; i++)
		gw_events_entry_unref(ev->ring[(ev->head + i) % ev->capacity]);
	free(ev->ring);
	json_decref(ev->images);
	free(ev);
	return NULL;
}

/* ---- publishing ---- */

static struct gw_events_entry *gw_events_entry_new(uint64_t id, const char *type,
						   const char *device_id, int64_t rollout_id,
						   json_t *data)
{
	size_t tlen = strlen(type) + 1, dlen = device_id ? strlen(device_id) + 1 : 0;
	struct gw_events_entry *x = malloc(sizeof(*x) + tlen + dlen);

	if (!x)
		return NULL;
	memcpy(x->strings, type, tlen);
	if (device_id)
		memcpy(x->strings + tlen, device_id, dlen);
	x->n_ref = 1;
	x->e = (struct gw_event){
		.id = id,
		.at_ms = gw_now_ms(),
		.type = x->strings,
		.device_id = device_id ? x->strings + tlen : NULL,
		.rollout_id = rollout_id,
		.data = data,
	};
	return x;
}

static void gw_events_retain(struct gw_events *ev, struct gw_events_entry *x)
{
	if (ev->n == ev->capacity) {
		struct gw_events_entry *old = ev->ring[ev->head];

		ev->evicted_id = old->e.id;
		gw_events_entry_unref(old);
		ev->head = (ev->head + 1) % ev->capacity;
		ev->n--;
	}
	ev->ring[(ev->head + ev->n) % ev->capacity] = gw_events_entry_ref(x);
	ev->n++;
}

/* Frees the subscribers removed while events were delivered, once none is. */
static void gw_events_compact(struct gw_events *ev)
{
	struct gw_events_sub *s, *next;

	if (ev->delivering > 0 || !ev->subs_removed)
		return;
	for (s = TAILQ_FIRST(&ev->subs); s; s = next) {
		next = TAILQ_NEXT(s, link);
		if (!s->fn) {
			TAILQ_REMOVE(&ev->subs, s, link);
			free(s);
		}
	}
	ev->subs_removed = false;
}

uint64_t gw_events_publish(struct gw_events *ev, const char *type, const char *device_id,
			   int64_t rollout_id, json_t *data)
{
	struct gw_events_entry *x;
	struct gw_events_sub *s;
	uint64_t id, now;

	if (!ev || !type) {
		json_decref(data);
		return 0;
	}
	if (!data)
		data = json_object();
	if (!data || !json_is_object(data) ||
	    (device_id && json_object_set_new(data, "device", json_string(device_id)) < 0) ||
	    (rollout_id && json_object_set_new(data, "rollout", json_integer(rollout_id)) < 0))
		goto drop;
	/* Strictly increasing, and near the realtime clock so that the next
	 * run's seed lies above it. */
	now = gw_events_now_us();
	id = MAX(ev->last_id + 1, now);
	x = gw_events_entry_new(id, type, device_id, rollout_id, data);
	if (!x)
		goto drop;
	ev->last_id = id;
	gw_events_retain(ev, x);

	/* Subscribers added from a callback start with the next event. */
	ev->delivering++;
	TAILQ_FOREACH(s, &ev->subs, link)
		if (s->fn && s->since < id)
			s->fn(ev, &x->e, s->userdata);
	ev->delivering--;
	gw_events_compact(ev);
	gw_events_entry_unref(x);
	return id;
drop:
	json_decref(data);
	ev->dropped++;
	gw_debug(LOG, "dropped a %s event: out of memory", type);
	return 0;
}

int gw_events_subscribe(struct gw_events *ev, gw_events_fn fn, void *userdata,
			struct gw_events_sub **ret)
{
	struct gw_events_sub *s;

	if (!ev || !fn)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fn = fn;
	s->userdata = userdata;
	s->since = ev->last_id;
	TAILQ_INSERT_TAIL(&ev->subs, s, link);
	if (ret)
		*ret = s;
	return 0;
}

void gw_events_unsubscribe(struct gw_events *ev, struct gw_events_sub *s)
{
	if (!ev || !s || !s->fn)
		return;
	if (ev->delivering > 0) {
		/* The loop delivering the event may be standing on it. */
		s->fn = NULL;
		ev->subs_removed = true;
		return;
	}
	TAILQ_REMOVE(&ev->subs, s, link);
	free(s);
}

/* The position of the oldest retained event with an id above after. */
static size_t gw_events_find_after(struct gw_events *ev, uint64_t after)
{
	size_t lo = 0, hi = ev->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ev->ring[(ev->head + mid) % ev->capacity]->e.id <= after)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int gw_events_replay(struct gw_events *ev, uint64_t after, gw_events_fn fn, void *userdata)
{
	uint64_t until;
	bool stale;
	int n = 0;

	if (!ev || !fn)
		return -EINVAL;
	if (after == 0)
		return 0;
	/* Missed: events pushed out of the ring, or those of an earlier run
	 * after the client's last (never retained across a restart). */
	stale = after < ev->evicted_id || after < ev->first_id;
	/* Looked up again after each callback: fn may publish, which moves the
	 * ring. What it publishes is not replayed: its subscribers get it. */
	until = ev->last_id;
	for (;;) {
		struct gw_events_entry *x;
		size_t i = gw_events_find_after(ev, after);

		if (i >= ev->n || ev->ring[(ev->head + i) % ev->capacity]->e.id > until)
			break;
		x = gw_events_entry_ref(ev->ring[(ev->head + i) % ev->capacity]);
		after = x->e.id;
		fn(ev, &x->e, userdata);
		gw_events_entry_unref(x);
		if (n < INT32_MAX)
			n++;
	}
	return stale ? -ESTALE : n;
}

uint64_t gw_events_last_id(struct gw_events *ev)
{
	return ev && ev->last_id >= ev->first_id ? ev->last_id : 0;
}

uint64_t gw_events_dropped(struct gw_events *ev)
{
	return ev ? ev->dropped : 0;
}

size_t gw_events_subscribers(struct gw_events *ev)
{
	struct gw_events_sub *s;
	size_t n = 0;

	if (!ev)
		return 0;
	TAILQ_FOREACH(s, &ev->subs, link)
		n += s->fn != NULL;
	return n;
}
