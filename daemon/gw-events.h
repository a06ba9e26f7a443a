/* gw-events: the daemon's event stream: what happened (devices, images, jobs, rollouts), kept for resume */
#pragma once

#include <jansson.h>
#include <stdint.h>

struct gw_manager;
struct gw_events;
struct gw_events_sub;

/* One event. Ids grow strictly within a process and across restarts (the
 * first id of a run is above every id of earlier runs: seeded from the
 * realtime clock in microseconds), so a Last-Event-ID from before a restart
 * is simply older than everything retained. */
struct gw_event {
	uint64_t id;
	uint64_t at_ms;
	const char *type;      /* "device.added", "device.removed", "device.online",
				* "device.offline", "device.changed", "image.state",
				* "job.state", "job.progress", "rollout.state",
				* "rollout.progress" */
	const char *device_id; /* NULL when not about one device */
	int64_t rollout_id;    /* 0 when not about a rollout */
	json_t *data;          /* an object: the event's body, for the callback's duration
				* (in gw_events_replay() parsed again from text; NULL in
				* gw_events_replay_text()) */
	const char *text;      /* data as compact JSON (GW_EVENTS_JSON_FLAGS): what a
				* stream sends; always set */
};

/* How text is written: as api/ writes JSON (API_JSON_FLAGS), so that a
 * stream's bytes are what json_dumps() of data gives there. */
#define GW_EVENTS_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* Keeps the last `capacity` events (0: 4096) for replay, as their text (as
 * trees they cost several times more). Listens to the
 * registry (m->registry, required) and publishes device.added/removed/
 * online/offline/changed and image.state (a changed "image_state" section:
 * data {"device": id, "images": [...]}) itself. Returns 0 or -errno. */
int gw_events_new(struct gw_manager *m, size_t capacity, struct gw_events **ret);
/* Subscribers must be gone (NULL-safe; returns NULL). */
struct gw_events *gw_events_free(struct gw_events *ev);

/* Publishes an event: data is stolen (NULL: an empty object); "device" and
 * "rollout" members are added to data when device_id / rollout_id are set.
 * Subscribers run synchronously, in subscription order. Returns the id, or 0
 * on allocation failure (the event is dropped and counted). */
uint64_t gw_events_publish(struct gw_events *ev, const char *type, const char *device_id,
			   int64_t rollout_id, json_t *data);

typedef void (*gw_events_fn)(struct gw_events *ev, const struct gw_event *e, void *userdata);
/* Adds a subscriber; it may unsubscribe itself (or others) from fn. Returns 0 or -ENOMEM. */
int gw_events_subscribe(struct gw_events *ev, gw_events_fn fn, void *userdata,
			struct gw_events_sub **ret);
void gw_events_unsubscribe(struct gw_events *ev, struct gw_events_sub *s);

/* Calls fn for each retained event with id > after, oldest first. Returns the
 * number replayed, or -ESTALE when after is older than the oldest retained
 * event and events in between were dropped (all retained ones are still
 * replayed first: the client learns it missed some), or -ENOMEM when an
 * event's text cannot be parsed again (the replay stops there). after 0
 * replays nothing. */
int gw_events_replay(struct gw_events *ev, uint64_t after, gw_events_fn fn, void *userdata);
/* As gw_events_replay(), without parsing: e->data is NULL, e->text is set.
 * For callers that only pass the text on (the SSE stream). */
int gw_events_replay_text(struct gw_events *ev, uint64_t after, gw_events_fn fn,
			  void *userdata);

/* The id the last published event got (0 when none yet). */
uint64_t gw_events_last_id(struct gw_events *ev);
/* Events lost to allocation failures since the start (publish returned 0). */
uint64_t gw_events_dropped(struct gw_events *ev);
/* Subscribers now (those removed during a delivery no longer count). */
size_t gw_events_subscribers(struct gw_events *ev);
