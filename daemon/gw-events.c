/* gw-events: the daemon's event stream: what happened (devices, images, jobs, rollouts), kept for resume */
#include <errno.h>
#include <nettle/sha2.h>
#include <search.h>
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
/* Enough to tell a changed image state from an unchanged one. */
#define GW_EVENTS_DIGEST_LEN 16

/*
 * Retained events live in a ring of pointers to refcounted entries: a
 * subscriber or a replay callback may publish, which can push out the very
 * event it is looking at; the reference it holds keeps that event alive.
 * An entry keeps the body as its JSON text, not as a tree: with 4096
 * retained events the trees took about 3 MiB, the text a third of that.
 * The strings (type, device id, text) are stored after it, in the same
 * allocation; callbacks get a struct gw_event pointing into them.
 */
struct gw_events_entry {
	uint64_t id;
	uint64_t at_ms;
	int64_t rollout_id;
	unsigned n_ref;
	uint32_t device_at;   /* offset of the device id in strings; 0: none */
	uint32_t text_at;     /* offset of the text in strings */
	char strings[];       /* the type first */
};

/* The last image state seen of a device, as a digest of its canonical text. */
struct gw_events_image {
	const char *id;       /* storage; in a lookup key, the id looked for */
	uint8_t digest[GW_EVENTS_DIGEST_LEN];
	char storage[];
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
	void *images;         /* tsearch() tree of struct gw_events_image, by device id */
};

static struct gw_events_entry *gw_events_entry_ref(struct gw_events_entry *x)
{
	x->n_ref++;
	return x;
}

static void gw_events_entry_unref(struct gw_events_entry *x)
{
	if (x && --x->n_ref == 0)
		free(x);
}

/* The view callbacks get; data as given. */
static struct gw_event gw_events_entry_view(const struct gw_events_entry *x, json_t *data)
{
	return (struct gw_event){
		.id = x->id,
		.at_ms = x->at_ms,
		.type = x->strings,
		.device_id = x->device_at ? x->strings + x->device_at : NULL,
		.rollout_id = x->rollout_id,
		.data = data,
		.text = x->strings + x->text_at,
	};
}

static uint64_t gw_events_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- the last image state of each device ---- */

static int gw_events_image_compare(const void *a, const void *b)
{
	const struct gw_events_image *x = a, *y = b;

	return strcmp(x->id, y->id);
}

static int gw_events_digest_feed(const char *buffer, size_t size, void *data)
{
	sha256_update(data, size, (const uint8_t *)buffer);
	return 0;
}

/* A digest of v's canonical text (keys sorted): equal for json_equal() values. */
static int gw_events_digest(json_t *v, uint8_t ret[GW_EVENTS_DIGEST_LEN])
{
	struct sha256_ctx ctx;

	sha256_init(&ctx);
	if (json_dump_callback(v, gw_events_digest_feed, &ctx,
			       JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) < 0)
		return -ENOMEM;
	sha256_digest(&ctx, GW_EVENTS_DIGEST_LEN, ret);
	return 0;
}

static struct gw_events_image *gw_events_image_find(struct gw_events *ev, const char *id)
{
	struct gw_events_image key = { .id = id };
	void *node = tfind(&key, &ev->images, gw_events_image_compare);

	return node ? *(struct gw_events_image **)node : NULL;
}

static void gw_events_image_forget(struct gw_events *ev, const char *id)
{
	struct gw_events_image *x = gw_events_image_find(ev, id);

	if (x) {
		tdelete(x, &ev->images, gw_events_image_compare);
		free(x);
	}
}

/* Remembers the digest of a device's image state; returns whether it differs
 * from the one remembered (true also when none was). */
static bool gw_events_image_update(struct gw_events *ev, const char *id, json_t *v)
{
	uint8_t digest[GW_EVENTS_DIGEST_LEN];
	struct gw_events_image *x = gw_events_image_find(ev, id);
	void *node;

	if (gw_events_digest(v, digest) < 0) {
		/* Without the digest the next round announces it again: harmless. */
		gw_events_image_forget(ev, id);
		return true;
	}
	if (x) {
		if (memcmp(x->digest, digest, sizeof(digest)) == 0)
			return false;
		memcpy(x->digest, digest, sizeof(digest));
		return true;
	}
	x = malloc(sizeof(*x) + strlen(id) + 1);
	if (!x)
		return true;
	memcpy(x->digest, digest, sizeof(digest));
	x->id = strcpy(x->storage, id);
	node = tsearch(x, &ev->images, gw_events_image_compare);
	if (!node || *(struct gw_events_image **)node != x)
		free(x);
	return true;
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
	json_t *images;

	if (!now || !gw_events_image_update(ev, d->id, now))
		return;
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
		gw_events_image_forget(ev, d->id);
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
	if (!ev->ring) {
		r = -ENOMEM;
		goto fail;
	}
	/* The image state loaded from the database is what clients already
	 * saw: the first poll after a restart is no change. */
	for (d = gw_registry_next(m->registry, NULL); d; d = gw_registry_next(m->registry, d->id)) {
		json_t *v = gw_registry_get_reported(d, "image_state", NULL);

		if (v)
			(void)gw_events_image_update(ev, d->id, v);
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
	tdestroy(ev->images, free);
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
	tdestroy(ev->images, free);
	free(ev);
	return NULL;
}

/* ---- publishing ---- */

static struct gw_events_entry *gw_events_entry_new(uint64_t id, const char *type,
						   const char *device_id, int64_t rollout_id,
						   const char *text)
{
	size_t tlen = strlen(type) + 1, dlen = device_id ? strlen(device_id) + 1 : 0;
	size_t xlen = strlen(text) + 1;
	struct gw_events_entry *x;

	if (tlen + dlen + xlen > UINT32_MAX)
		return NULL;
	x = malloc(sizeof(*x) + tlen + dlen + xlen);
	if (!x)
		return NULL;
	*x = (struct gw_events_entry){
		.id = id,
		.at_ms = gw_now_ms(),
		.rollout_id = rollout_id,
		.n_ref = 1,
		.device_at = device_id ? (uint32_t)tlen : 0,
		.text_at = (uint32_t)(tlen + dlen),
	};
	memcpy(x->strings, type, tlen);
	if (device_id)
		memcpy(x->strings + tlen, device_id, dlen);
	memcpy(x->strings + tlen + dlen, text, xlen);
	return x;
}

static void gw_events_retain(struct gw_events *ev, struct gw_events_entry *x)
{
	if (ev->n == ev->capacity) {
		struct gw_events_entry *old = ev->ring[ev->head];

		ev->evicted_id = old->id;
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
	struct gw_event view;
	uint64_t id, now;
	char *text = NULL;

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
	text = json_dumps(data, GW_EVENTS_JSON_FLAGS);
	if (!text)
		goto drop;
	/* Strictly increasing, and near the realtime clock so that the next
	 * run's seed lies above it. */
	now = gw_events_now_us();
	id = MAX(ev->last_id + 1, now);
	x = gw_events_entry_new(id, type, device_id, rollout_id, text);
	free(text);
	if (!x)
		goto drop;
	ev->last_id = id;
	gw_events_retain(ev, x);

	/* Subscribers added from a callback start with the next event. */
	view = gw_events_entry_view(x, data);
	ev->delivering++;
	TAILQ_FOREACH(s, &ev->subs, link)
		if (s->fn && s->since < id)
			s->fn(ev, &view, s->userdata);
	ev->delivering--;
	gw_events_compact(ev);
	gw_events_entry_unref(x);
	json_decref(data);
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

		if (ev->ring[(ev->head + mid) % ev->capacity]->id <= after)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int gw_events_replay_as(struct gw_events *ev, uint64_t after, bool parse, gw_events_fn fn,
			       void *userdata)
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
		struct gw_event view;
		json_t *data = NULL;
		size_t i = gw_events_find_after(ev, after);

		if (i >= ev->n || ev->ring[(ev->head + i) % ev->capacity]->id > until)
			break;
		x = ev->ring[(ev->head + i) % ev->capacity];
		if (parse) {
			data = json_loads(x->strings + x->text_at, 0, NULL);
			if (!data)
				return -ENOMEM;
		}
		x = gw_events_entry_ref(x);
		after = x->id;
		view = gw_events_entry_view(x, data);
		fn(ev, &view, userdata);
		gw_events_entry_unref(x);
		json_decref(data);
		if (n < INT32_MAX)
			n++;
	}
	return stale ? -ESTALE : n;
}

int gw_events_replay(struct gw_events *ev, uint64_t after, gw_events_fn fn, void *userdata)
{
	return gw_events_replay_as(ev, after, true, fn, userdata);
}

int gw_events_replay_text(struct gw_events *ev, uint64_t after, gw_events_fn fn, void *userdata)
{
	return gw_events_replay_as(ev, after, false, fn, userdata);
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
