/* test-gw-events: ids, replay and its gaps, registry events, image.state on change, re-entrant subscribers */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/gw-events.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "db/db.h"
#include "lib/macro.h"
#include "tests/tap.h"

static char dir[] = "/tmp/smpgw-test-events-XXXXXX";
static char db_path[256];
static struct gw_manager m;

#define MAX_SEEN 64

/* What one subscriber (or replay) saw. */
struct seen {
	unsigned n;
	uint64_t id[MAX_SEEN];
	char type[MAX_SEEN][32];
	char *data[MAX_SEEN]; /* compact JSON */
	/* re-entrancy scripts */
	struct gw_events_sub *self, **unsub_other;
	bool unsub_self;
	struct seen *subscribe_new;
	struct gw_events_sub *new_sub;
	unsigned publish_in_cb;
};

static void seen_reset(struct seen *s)
{
	for (unsigned i = 0; i < MIN(s->n, (unsigned)MAX_SEEN); i++)
		free(s->data[i]);
	*s = (struct seen){ 0 };
}

static void on_event(struct gw_events *ev, const struct gw_event *e, void *userdata);

static void record(struct seen *s, const struct gw_event *e)
{
	if (s->n < MAX_SEEN) {
		s->id[s->n] = e->id;
		snprintf(s->type[s->n], sizeof(s->type[0]), "%s", e->type);
		s->data[s->n] = json_dumps(e->data, JSON_COMPACT | JSON_SORT_KEYS);
	}
	s->n++;
}

static void on_event(struct gw_events *ev, const struct gw_event *e, void *userdata)
{
	struct seen *s = userdata;

	record(s, e);
	if (s->unsub_self) {
		gw_events_unsubscribe(ev, s->self);
		s->unsub_self = false;
	}
	if (s->unsub_other && *s->unsub_other) {
		gw_events_unsubscribe(ev, *s->unsub_other);
		*s->unsub_other = NULL;
	}
	if (s->subscribe_new) {
		if (gw_events_subscribe(ev, on_event, s->subscribe_new, &s->new_sub) < 0)
			abort();
		s->subscribe_new = NULL;
	}
	if (s->publish_in_cb > 0) {
		s->publish_in_cb--;
		gw_events_publish(ev, "job.progress", NULL, 9, NULL);
	}
}

static uint64_t realtime_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void start(void)
{
	char err[256] = "";

	memset(&m, 0, sizeof(m));
	if (sd_event_new(&m.event) < 0 || gw_config_init(&m.config) < 0)
		abort();
	if (db_open(db_path, &m.db, err, sizeof(err)) < 0) {
		fprintf(stderr, "db_open: %s\n", err);
		abort();
	}
	if (gw_registry_new(&m, &m.registry) < 0)
		abort();
}

static void stop(void)
{
	m.events = gw_events_free(m.events);
	if (m.registry)
		gw_registry_flush(m.registry);
	m.registry = gw_registry_free(m.registry);
	m.db = db_close(m.db);
	m.event = sd_event_unref(m.event);
	gw_config_clear(&m.config);
}

static void test_ids_and_replay(void)
{
	struct seen s = { 0 }, r = { 0 };
	uint64_t before = realtime_us(), ids[20];
	struct gw_events_sub *sub;
	bool increasing = true;
	int n;

	start();
	is_int(gw_events_new(&m, 8, &m.events), 0, "events created with capacity 8");
	is_int(gw_events_last_id(m.events), 0, "no event yet: last id 0");
	is_int(gw_events_replay(m.events, 0, on_event, &r), 0, "replay after 0 gives nothing");
	is_int(gw_events_subscribe(m.events, on_event, &s, &sub), 0, "subscribed");

	ids[0] = gw_events_publish(m.events, "device.online", "dev-a", 0, NULL);
	ok(ids[0] >= before && ids[0] <= realtime_us(), "first id is the realtime clock in µs");
	is_int(gw_events_last_id(m.events), (long long)ids[0], "last id");
	is_str(s.type[0], "device.online", "subscriber got the type");
	is_str(s.data[0], "{\"device\":\"dev-a\"}", "NULL data: an object with the device added");
	ids[1] = gw_events_publish(m.events, "rollout.state", NULL, 42,
				   json_pack("{s:s}", "state", "running"));
	is_str(s.data[1], "{\"rollout\":42,\"state\":\"running\"}", "rollout member added");
	is_int(gw_events_publish(m.events, "x", NULL, 0, json_array()), 0,
	       "data that is not an object is refused (0)");
	is_int(gw_events_dropped(m.events), 1, "... and counted as dropped");
	is_int(s.n, 2, "the refused one was not delivered");
	for (unsigned i = 2; i < 6; i++)
		ids[i] = gw_events_publish(m.events, "job.progress", "dev-b", 7, NULL);
	for (unsigned i = 1; i < 6; i++)
		increasing &= ids[i] > ids[i - 1];
	ok(increasing, "ids strictly increase even within one microsecond");

	n = gw_events_replay(m.events, ids[2], on_event, &r);
	is_int(n, 3, "replay after the third: three events");
	ok(r.n == 3 && r.id[0] == ids[3] && r.id[2] == ids[5], "oldest first, only later ones");
	seen_reset(&r);
	is_int(gw_events_replay(m.events, ids[5], on_event, &r), 0, "replay after the last: none");
	is_int(gw_events_replay(m.events, ids[5] + 1000, on_event, &r), 0,
	       "replay after a future id: none");
	is_int(gw_events_replay(m.events, ids[0], on_event, &r), 5, "all retained: nothing lost yet");
	seen_reset(&r);
	is_int(gw_events_replay(m.events, before - 1, on_event, &r), -ESTALE,
	       "an id from before this run: -ESTALE");
	is_int(r.n, 6, "... after replaying every retained event");
	seen_reset(&r);

	/* Overflow: capacity 8, 14 events published. */
	for (unsigned i = 6; i < 14; i++)
		ids[i] = gw_events_publish(m.events, "job.state", "dev-c", 7, NULL);
	n = gw_events_replay(m.events, ids[1], on_event, &r);
	is_int(n, -ESTALE, "an id older than the ring's oldest with a gap: -ESTALE");
	ok(r.n == 8 && r.id[0] == ids[6] && r.id[7] == ids[13], "the 8 retained ones replayed first");
	seen_reset(&r);
	is_int(gw_events_replay(m.events, ids[5], on_event, &r), 8,
	       "the newest evicted id: no gap, all 8 retained");
	seen_reset(&r);
	is_int(gw_events_replay(m.events, ids[9], on_event, &r), 4, "inside the ring: no gap");
	seen_reset(&r);

	/* A replay callback that publishes, in a full ring: the event it holds
	 * is pushed out while it runs; what it publishes is not replayed. */
	r.publish_in_cb = 20;
	n = gw_events_replay(m.events, ids[9], on_event, &r);
	is_int(n, 4, "publishing replay callback: still the 4 events after it");
	is_str(r.type[0], "job.state", "replayed event intact while pushed out");
	is_int(s.n, 14 + 4, "the subscriber got what the replay callback published");
	seen_reset(&r);

	gw_events_unsubscribe(m.events, sub);
	seen_reset(&s);
	stop();
}

/* What a callback saw of an event's text and tree. */
struct text_seen {
	unsigned n;
	char text[256];
	bool had_data;
	bool text_is_data; /* text == json_dumps(data, GW_EVENTS_JSON_FLAGS) */
};

static void on_text(struct gw_events *ev, const struct gw_event *e, void *userdata)
{
	struct text_seen *t = userdata;
	char *dump = e->data ? json_dumps(e->data, GW_EVENTS_JSON_FLAGS) : NULL;

	t->n++;
	snprintf(t->text, sizeof(t->text), "%s", e->text ? e->text : "(null)");
	t->had_data = e->data != NULL;
	t->text_is_data = dump && e->text && strcmp(dump, e->text) == 0;
	free(dump);
}

/* Retained events are text: the SSE stream's bytes, trees only while needed. */
static void test_text(void)
{
	static const char want[] = "{\"ratio\":0.2,\"name\":\"a\\nb\",\"rollout\":3}";
	struct text_seen t = { 0 }, r = { 0 };
	struct gw_events_sub *sub;
	json_t *data;
	uint64_t id;

	start();
	is_int(gw_events_new(&m, 4, &m.events), 0, "events created");
	gw_events_subscribe(m.events, on_text, &t, &sub);
	data = json_pack("{s:f, s:s}", "ratio", 0.2, "name", "a\nb");
	json_incref(data);
	id = gw_events_publish(m.events, "rollout.progress", NULL, 3, data);
	ok(id > 0 && t.n == 1 && t.had_data && t.text_is_data,
	   "a subscriber gets the tree and its text, the same JSON");
	is_str(t.text, want, "compact, in insertion order, 15 digits, escaped");
	ok(data->refcount == 1, "the ring keeps no reference to the tree (%zu)", data->refcount);
	json_decref(data);
	is_int(gw_events_replay_text(m.events, id - 1, on_text, &r), 1, "replay_text: one event");
	ok(!r.had_data && strcmp(r.text, want) == 0, "replay_text: the text, no tree");
	r = (struct text_seen){ 0 };
	is_int(gw_events_replay(m.events, id - 1, on_text, &r), 1, "replay: one event");
	ok(r.had_data && r.text_is_data && strcmp(r.text, want) == 0,
	   "replay: a tree parsed again from the same text");
	is_int(gw_events_replay_text(m.events, 1, on_text, &r), -ESTALE,
	       "replay_text tells a gap as replay does");
	gw_events_unsubscribe(m.events, sub);
	stop();
}

static void test_reentrant_subscribers(void)
{
	struct seen a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
	struct gw_events_sub *sc = NULL;

	start();
	if (gw_events_new(&m, 0, &m.events) < 0)
		abort();
	gw_events_subscribe(m.events, on_event, &a, &a.self);
	gw_events_subscribe(m.events, on_event, &b, &b.self);
	gw_events_subscribe(m.events, on_event, &c, &sc);
	a.unsub_self = true;
	b.unsub_other = &sc;
	b.subscribe_new = &d;
	gw_events_publish(m.events, "device.added", "x", 0, NULL);
	is_int(a.n, 1, "A got the event and left");
	is_int(b.n, 1, "B got it");
	is_int(c.n, 0, "C, removed by B before its turn, did not");
	is_int(d.n, 0, "D, subscribed by B during delivery, starts with the next event");
	gw_events_publish(m.events, "device.removed", "x", 0, NULL);
	is_int(a.n, 1, "A is gone");
	is_int(b.n, 2, "B still there");
	is_int(c.n, 0, "C is gone");
	is_int(d.n, 1, "D got the next event");
	gw_events_unsubscribe(m.events, b.self);
	gw_events_unsubscribe(m.events, b.new_sub);
	seen_reset(&a);
	seen_reset(&b);
	seen_reset(&c);
	seen_reset(&d);
	stop();
}

static unsigned count_type(const struct seen *s, const char *type)
{
	unsigned n = 0;

	for (unsigned i = 0; i < MIN(s->n, (unsigned)MAX_SEEN); i++)
		n += strcmp(s->type[i], type) == 0;
	return n;
}

static json_t *image_state(const char *version, bool confirmed)
{
	return json_pack("{s:[{s:i,s:i,s:s,s:s,s:b,s:b,s:b,s:b,s:b}]}", "images", "image", 0,
			 "slot", 0, "version", version, "hash",
			 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
			 "bootable", true, "pending", false, "confirmed", confirmed, "active", true,
			 "permanent", false);
}

static void test_registry_events(void)
{
	struct gw_device_spec spec = {
		.transport = GW_TRANSPORT_UDP,
		.identity = "udp:127.0.0.1:1337",
		.address = "127.0.0.1:1337",
		.name = "kitchen",
		.source = GW_SOURCE_API,
	};
	struct seen s = { 0 };
	struct gw_events_sub *sub;
	struct gw_device *d;
	uint64_t last_run_id;
	char id[64];

	start();
	if (gw_events_new(&m, 0, &m.events) < 0 ||
	    gw_events_subscribe(m.events, on_event, &s, &sub) < 0)
		abort();
	is_int(gw_registry_upsert(m.registry, &spec, &d), 0, "device registered");
	snprintf(id, sizeof(id), "%s", d->id);
	ok(s.n >= 1 && strcmp(s.type[0], "device.added") == 0, "device.added");
	ok(s.n >= 1 && strstr(s.data[0], "\"name\":\"kitchen\"") &&
		   strstr(s.data[0], "\"transport\":\"udp\"") && strstr(s.data[0], "\"device\":\"udp-"),
	   "device.added carries device, name and transport");
	gw_registry_set_online(m.registry, d, true);
	is_int(count_type(&s, "device.online"), 1, "device.online");
	gw_registry_set_online(m.registry, d, false);
	is_int(count_type(&s, "device.offline"), 1, "device.offline");
	gw_registry_set_name(m.registry, d, "pantry");
	ok(count_type(&s, "device.changed") == 1 && strstr(s.data[s.n - 1], "\"name\":\"pantry\""),
	   "device.changed with the new name");

	gw_registry_set_reported(m.registry, d, "image_state", image_state("1.0.0", true));
	is_int(count_type(&s, "image.state"), 1, "first image state: image.state");
	ok(strstr(s.data[s.n - 1], "\"images\":[{") && strstr(s.data[s.n - 1], "\"version\":\"1.0.0\""),
	   "image.state carries the images");
	gw_registry_set_reported(m.registry, d, "image_state", image_state("1.0.0", true));
	is_int(count_type(&s, "image.state"), 1, "same image state again: no event");
	gw_registry_set_reported(m.registry, d, "stats", json_pack("{s:{s:i}}", "g", "f", 1));
	is_int(count_type(&s, "image.state"), 1, "another section: no image.state");
	gw_registry_set_reported(m.registry, d, "image_state", image_state("1.0.0", false));
	is_int(count_type(&s, "image.state"), 2, "a flag changed: image.state");
	gw_registry_set_reported(m.registry, d, "image_state", image_state("1.0.0", false));
	is_int(count_type(&s, "image.state"), 2, "and not again");
	last_run_id = gw_events_last_id(m.events);
	gw_events_unsubscribe(m.events, sub);
	seen_reset(&s);
	stop();

	/* A restart: the stored image state is what clients already saw. */
	start();
	if (gw_events_new(&m, 0, &m.events) < 0 ||
	    gw_events_subscribe(m.events, on_event, &s, &sub) < 0)
		abort();
	d = gw_registry_find(m.registry, id);
	ok(d != NULL, "device back from the database");
	if (d) {
		gw_registry_set_reported(m.registry, d, "image_state", image_state("1.0.0", false));
		is_int(count_type(&s, "image.state"), 0, "after a restart, the stored state is no change");
		gw_registry_set_reported(m.registry, d, "image_state", image_state("1.1.0", false));
		is_int(count_type(&s, "image.state"), 1, "a new version is");
		ok(s.n > 0 && s.id[0] > last_run_id, "ids of this run are above the last run's");
		gw_registry_remove(m.registry, d);
		is_int(count_type(&s, "device.removed"), 1, "device.removed");
	}
	is_int(gw_events_replay(m.events, last_run_id, on_event, &s), -ESTALE,
	       "the last run's id: -ESTALE (what followed it is not retained)");
	gw_events_unsubscribe(m.events, sub);
	seen_reset(&s);
	stop();
}

int main(void)
{
	if (!mkdtemp(dir))
		abort();
	snprintf(db_path, sizeof(db_path), "%s/smpgw.db", dir);
	test_ids_and_replay();
	test_text();
	test_reentrant_subscribers();
	test_registry_events();
	unlink(db_path);
	{
		char p[300];

		snprintf(p, sizeof(p), "%s-wal", db_path);
		unlink(p);
		snprintf(p, sizeof(p), "%s-shm", db_path);
		unlink(p);
	}
	rmdir(dir);
	return tap_done();
}
