/* test-gw-poller: rounds, reported sections and their times, liveness, jitter, pauses, scale */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "daemon/gw-devices.h"
#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-poller.h"
#include "daemon/gw-registry.h"
#include "db/db.h"
#include "lib/macro.h"
#include "lib/smp-image.h"
#include "lib/smp-mcuboot.h"
#include "lib/smp-upload.h"
#include "tests/dbus-helper.h"
#include "tests/sim/sim-test.h"
#include "tests/tap.h"

#define START_MS 10000
#define MAX_DEVICES 1000
#define MAX_EVENTS 64

static char dir[] = "/tmp/smpgw-test-poller-XXXXXX";
static struct gw_manager m;

/* What the registry told, per device (index = position in devs[]). */
struct seen {
	struct gw_device *d;
	unsigned image_states;
	unsigned stats;
	unsigned online;
	unsigned offline;
	bool overlap;            /* an image state before the previous round's stats */
	bool want_stats;
	long long first_ms;      /* first image state, CLOCK_MONOTONIC */
	long long at[MAX_EVENTS]; /* image state reports */
	long long online_ms;
	long long offline_ms;
};

static struct seen *seen;
static size_t n_seen;

static struct seen *seen_of(struct gw_device *d)
{
	for (size_t i = 0; i < n_seen; i++)
		if (seen[i].d == d)
			return &seen[i];
	return NULL;
}

static void on_registry(struct gw_registry *r, enum gw_registry_event ev, struct gw_device *d,
			const char *section, void *userdata)
{
	struct seen *s = seen_of(d);
	long long now = sim_test_now_ms();

	if (!s)
		return;
	switch (ev) {
	case GW_REGISTRY_ONLINE:
		s->online++;
		s->online_ms = now;
		break;
	case GW_REGISTRY_OFFLINE:
		s->offline++;
		s->offline_ms = now;
		break;
	case GW_REGISTRY_REPORTED:
		if (!strcmp(section, "image_state")) {
			/* Each round reads the image state first and reports the
			 * stats later: two image states in a row mean two rounds. */
			if (s->want_stats)
				s->overlap = true;
			s->want_stats = true;
			if (s->image_states == 0)
				s->first_ms = now;
			if (s->image_states < MAX_EVENTS)
				s->at[s->image_states] = now;
			s->image_states++;
		} else if (!strcmp(section, "stats")) {
			s->want_stats = false;
			s->stats++;
		}
		break;
	default:
		break;
	}
}

/* ---- the manager, as smpgwd builds it ---- */

static void start(void)
{
	char path[256], err[256] = "";

	memset(&m, 0, sizeof(m));
	if (sd_event_new(&m.event) < 0 || gw_config_init(&m.config) < 0)
		abort();
	snprintf(path, sizeof(path), "%s/db-%d.sqlite", dir, rand());
	if (db_open(path, &m.db, err, sizeof(err)) < 0) {
		fprintf(stderr, "db_open: %s\n", err);
		abort();
	}
	m.config.timeout_ms = 1000;
	if (gw_registry_new(&m, &m.registry) < 0 ||
	    gw_registry_add_listener(m.registry, on_registry, NULL) < 0)
		abort();
}

static void start_modules(void)
{
	if (gw_devices_new(&m, &m.devices) < 0 || gw_poller_new(&m, &m.poller) < 0)
		abort();
}

static void stop(void)
{
	m.poller = gw_poller_free(m.poller);
	m.devices = gw_devices_free(m.devices);
	m.registry = gw_registry_free(m.registry);
	m.db = db_close(m.db);
	/* Links freed from inside their own callbacks go in a deferred source. */
	while (sd_event_run(m.event, 0) > 0)
		;
	m.bluez_bus = sd_bus_flush_close_unref(m.bluez_bus);
	m.event = sd_event_unref(m.event);
	gw_config_clear(&m.config);
	free(seen);
	seen = NULL;
	n_seen = 0;
}

static struct gw_device *add_device(enum gw_transport t, const char *identity, const char *address,
				    bool online)
{
	struct gw_device_spec spec = {
		.transport = t,
		.identity = identity,
		.address = address,
		.source = GW_SOURCE_API,
	};
	struct gw_device *d = NULL;

	seen = reallocarray(seen, n_seen + 1, sizeof(*seen));
	if (!seen || gw_registry_upsert(m.registry, &spec, &d) < 0)
		abort();
	seen[n_seen++] = (struct seen){.d = d};
	gw_registry_set_online(m.registry, d, online);
	return d;
}

static struct gw_device *add_udp(struct sim_proc *p, unsigned i)
{
	char *address = sim_proc_ready(p, "udp", i, NULL), identity[128];
	struct gw_device *d;

	if (!address)
		abort();
	snprintf(identity, sizeof(identity), "udp:%s", address);
	d = add_device(GW_TRANSPORT_UDP, identity, address, false);
	free(address);
	return d;
}

static bool run_until(bool (*pred)(void *), void *userdata, unsigned timeout_ms)
{
	long long deadline = sim_test_now_ms() + timeout_ms;

	while (!pred(userdata)) {
		long long left = deadline - sim_test_now_ms();

		if (left <= 0)
			return false;
		if (sd_event_run(m.event, (uint64_t)left * 1000) < 0)
			return false;
	}
	return true;
}

static void spin(unsigned ms)
{
	bool never = false;

	sim_test_run_until(m.event, &never, ms);
}

static bool start_sim(struct sim_proc *p, const char *const *args)
{
	int r = sim_proc_start(p, START_MS, args);

	if (r < 0)
		tap_diag("smp-sim did not start: %s", strerror(-r));
	return r == 0;
}

struct want_rounds {
	struct gw_device *d;
	uint64_t n;
};

/* At least n rounds of the device started and none is in flight. */
static bool has_rounds(void *userdata)
{
	struct want_rounds *w = userdata;
	struct gw_poller_device_stats st;

	return gw_poller_get_device_stats(m.poller, w->d, &st) == 0 && !st.in_flight &&
	       st.rounds >= w->n;
}

static bool in_flight(void *userdata)
{
	struct gw_poller_device_stats st;

	return gw_poller_get_device_stats(m.poller, userdata, &st) == 0 && st.in_flight;
}

static bool is_hex(const char *s, size_t n)
{
	if (!s || strlen(s) != n)
		return false;
	for (; *s; s++)
		if (!strchr("0123456789abcdef", *s))
			return false;
	return true;
}

/* ---- one round, its sections and timestamps ---- */

static void test_round(void)
{
	const char *args[] = {"--udp", "127.0.0.1:0", "--count", "2", NULL};
	struct gw_poller_device_stats st;
	struct gw_poller_stats all;
	struct sim_proc p;
	struct gw_device *d;
	json_t *v, *slot;
	uint64_t t0, t1, at = 0, at2 = 0;

	start();
	m.config.poll_interval_ms = 0;
	start_modules();
	if (!start_sim(&p, args)) {
		ok(false, "smp-sim starts");
		stop();
		return;
	}
	d = add_udp(&p, 0);
	add_udp(&p, 1);
	ok(!d->online, "a new UDP device starts offline");
	spin(300);
	is_int(seen_of(d)->image_states, 0, "interval 0: nothing is polled by itself");

	t0 = gw_now_ms();
	is_int(gw_poller_poll_now(m.poller, d), 0, "poll now");
	is_int(gw_poller_poll_now(m.poller, d), 0, "again before it started: still one round");
	ok(run_until(in_flight, d, 2000), "the round starts");
	is_int(gw_poller_poll_now(m.poller, d), -EBUSY, "a poll while one is in flight: -EBUSY");
	ok(run_until(has_rounds, &(struct want_rounds){d, 1}, 5000), "the round ends");
	t1 = gw_now_ms();
	ok(d->online, "the device answered: online");
	is_int(seen_of(d)->online, 1, "one ONLINE event");

	v = gw_registry_get_reported(d, "image_state", &at);
	slot = json_array_get(json_object_get(v, "images"), 0);
	ok(slot && json_integer_value(json_object_get(slot, "slot")) == 0 &&
	   json_integer_value(json_object_get(slot, "image")) == 0,
	   "image_state: images[0] is image 0, slot 0");
	is_str(json_string_value(json_object_get(slot, "version")), "1.0.0", "its version");
	ok(is_hex(json_string_value(json_object_get(slot, "hash")), 64), "its hash in hex");
	ok(json_is_true(json_object_get(slot, "active")) &&
	   json_is_true(json_object_get(slot, "confirmed")) &&
	   json_is_false(json_object_get(slot, "pending")) &&
	   json_is_true(json_object_get(slot, "bootable")) &&
	   json_is_false(json_object_get(slot, "permanent")), "its flags");
	ok(at >= t0 && at <= t1, "stamped with the time of the round");

	v = gw_registry_get_reported(d, "stats", NULL);
	is_int(json_object_size(v), 3, "stats: every group the list names");
	ok(json_is_integer(json_object_get(json_object_get(v, "flash_sim_stats"), "bytes_written")),
	   "flash_sim_stats.bytes_written is a number");
	is_int(json_object_size(json_object_get(v, "flash_sim_thresholds")), 3,
	       "flash_sim_thresholds has its three fields");
	ok(json_is_integer(json_object_get(json_object_get(v, "smp_svr_stats"), "ticks")),
	   "smp_svr_stats.ticks");
	v = gw_registry_get_reported(d, "params", NULL);
	is_int(json_integer_value(json_object_get(v, "buf_size")), 2048, "params: buf_size");
	is_int(json_integer_value(json_object_get(v, "buf_count")), 4, "params: buf_count");
	v = gw_registry_get_reported(d, "info", NULL);
	ok(json_string_value(json_object_get(v, "output")) &&
	   strstr(json_string_value(json_object_get(v, "output")), "Zephyr"), "info: OS info output");

	while (gw_now_ms() <= at)
		spin(2);
	is_int(gw_poller_poll_now(m.poller, d), 0, "poll again");
	ok(run_until(has_rounds, &(struct want_rounds){d, 2}, 5000), "second round");
	gw_registry_get_reported(d, "image_state", &at2);
	ok(at2 > at, "the cache time moves on (%llu > %llu)", (unsigned long long)at2,
	   (unsigned long long)at);
	is_int(gw_poller_get_device_stats(m.poller, d, &st), 0, "device stats");
	ok(st.rounds == 2 && st.answered == 2 && st.failed == 0 && !st.in_flight,
	   "two rounds answered");
	ok(st.last_start_ms >= t0 && st.last_end_ms >= st.last_start_ms &&
	   st.last_answer_ms == st.last_end_ms, "their times");
	ok(!seen_of(d)->overlap, "never two rounds at once");
	gw_poller_get_stats(m.poller, &all);
	ok(all.rounds == 2 && all.in_flight == 0 && all.max_in_flight == 1, "poller stats");
	is_int(seen_of(seen[1].d)->image_states, 0, "the other device was left alone");

	/* Removing a device in the middle of its round. */
	is_int(gw_poller_poll_now(m.poller, seen[1].d), 0, "poll the other device");
	ok(run_until(in_flight, seen[1].d, 2000), "its round starts");
	gw_registry_remove(m.registry, seen[1].d);
	seen[1].d = NULL;
	is_int(gw_poller_poll_now(m.poller, d), 0, "removal mid-round leaves the rest working");
	ok(run_until(has_rounds, &(struct want_rounds){d, 3}, 5000), "and the next round runs");
	gw_poller_get_stats(m.poller, &all);
	is_int(all.in_flight, 0, "nothing left in flight");

	sim_proc_stop(&p, SIGTERM, 5000);
	stop();
}

/* ---- liveness: a device that reboots goes offline, then comes back ---- */

static bool back_online(void *userdata)
{
	struct seen *s = userdata;

	return s->offline > 0 && s->online > 1 && s->image_states > 1;
}

static bool went_offline(void *userdata)
{
	struct seen *s = userdata;

	return s->offline > 0;
}

static void test_reboot(void)
{
	const char *args[] = {"--udp", "127.0.0.1:0", "--reboot-delay", "1500", NULL};
	struct sim_proc p;
	struct gw_device *d;
	struct seen *s;
	uint64_t info_at = 0, info_at2 = 0;
	long long t_reset;

	start();
	m.config.poll_interval_ms = 300;
	m.config.poll_jitter_pct = 0;
	m.config.timeout_ms = 150;
	m.config.retries = 1;
	start_modules();
	if (!start_sim(&p, args)) {
		ok(false, "smp-sim starts");
		stop();
		return;
	}
	d = add_udp(&p, 0);
	s = seen_of(d);
	ok(run_until(has_rounds, &(struct want_rounds){d, 1}, 3000) && d->online,
	   "polled by the schedule, online");
	gw_registry_get_reported(d, "info", &info_at);
	ok(info_at > 0, "info read in the first round");
	t_reset = sim_test_now_ms();
	is_int(sim_proc_command(&p, "reset 0", 2000), 0, "the device resets (silent for 1.5 s)");
	ok(run_until(went_offline, s, 5000), "a round without an answer takes it offline");
	ok(!d->online, "offline");
	ok(run_until(back_online, s, 8000), "it answers again after booting: online");
	ok(s->offline_ms > t_reset && s->online_ms - t_reset >= 1400,
	   "offline during its silence, online after it (%lld, %lld ms)", s->offline_ms - t_reset,
	   s->online_ms - t_reset);
	spin(300);
	gw_registry_get_reported(d, "info", &info_at2);
	ok(info_at2 > info_at, "the round after it came back is a full one (info read again)");
	ok(!s->overlap, "never two rounds at once");
	sim_proc_stop(&p, SIGTERM, 5000);
	stop();
}

/* ---- other firmware: params are read again in the round that sees it ---- */

struct step {
	bool done;
	int error;
	struct smp_client *c;
};

static void on_step_client(struct gw_devices *ds, int error, struct smp_client *c, void *userdata)
{
	struct step *st = userdata;

	st->done = true;
	st->error = error;
	st->c = smp_client_ref(c);
}

static void on_step_call(struct smp_client *c, int error, const struct smp_response *rsp,
			 void *userdata)
{
	struct step *st = userdata;

	st->done = true;
	st->error = error < 0 ? error : rsp && !smp_response_ok(rsp) ? -EREMOTEIO : 0;
}

static void on_step_upload(int error, const struct smp_upload_result *res, void *userdata)
{
	struct step *st = userdata;

	st->done = true;
	st->error = error;
}

static const char *active_version(struct gw_device *d, uint64_t *ret_at)
{
	json_t *images = json_object_get(gw_registry_get_reported(d, "image_state", ret_at),
					 "images");
	size_t i;
	json_t *slot;

	json_array_foreach (images, i, slot)
		if (json_is_true(json_object_get(slot, "active")))
			return json_string_value(json_object_get(slot, "version"));
	return NULL;
}

static bool runs_version(void *userdata)
{
	const char *v = active_version(userdata, NULL);

	return v && !strcmp(v, "1.2.3.4") && has_rounds(&(struct want_rounds){userdata, 1});
}

static void test_firmware_change(void)
{
	const char *args[] = {
		"--udp", "127.0.0.1:0", "--reboot-delay", "50", "--swap-us-per-kib", "0",
		"--flash-write-us-per-kib", "0", NULL,
	};
	struct smp_upload_source src = {.fd = -1};
	struct smp_upload_options opts;
	struct smp_mcuboot_image *mi = NULL;
	struct smp_request *req = NULL;
	struct step st = {0};
	struct sim_proc p;
	struct gw_device *d;
	struct seen *s;
	uint64_t params_at = 0, params_at2 = 0, state_at = 0, info_at = 0, info_at2 = 0;
	size_t len;
	uint8_t *img;

	start();
	m.config.poll_interval_ms = 400;
	m.config.poll_jitter_pct = 0;
	m.config.retries = 3;
	start_modules();
	img = tap_read_file(tap_srcpath("tests/data/images/hash-only-1.2.3+4.bin"), &len);
	if (!img || smp_mcuboot_parse(img, len, &mi) < 0 || !start_sim(&p, args)) {
		ok(false, "image and smp-sim");
		smp_mcuboot_image_free(mi);
		free(img);
		stop();
		return;
	}
	d = add_udp(&p, 0);
	s = seen_of(d);
	ok(run_until(has_rounds, &(struct want_rounds){d, 1}, 3000) && d->online,
	   "first round: online");
	gw_registry_get_reported(d, "params", &params_at);
	ok(run_until(has_rounds, &(struct want_rounds){d, 2}, 3000), "a second round");
	gw_registry_get_reported(d, "params", &params_at2);
	ok(params_at > 0 && params_at2 == params_at, "a short round does not read params");

	/* Another image, tested, and a reset: the device is silent for 50 ms,
	 * shorter than a request's timeout, so it never goes offline. */
	gw_devices_hold(m.devices, d);
	gw_devices_get_client(m.devices, d, on_step_client, &st, NULL, NULL);
	ok(sim_test_run_until(m.event, &st.done, 3000) && st.error == 0, "the device's client");
	src.data = img;
	src.size = len;
	smp_upload_options_init(&opts);
	st.done = false;
	smp_image_upload(st.c, &src, &opts, NULL, on_step_upload, &st, NULL, NULL);
	ok(sim_test_run_until(m.event, &st.done, 10000) && st.error == 0, "image 1.2.3+4 uploaded");
	st.done = false;
	smp_image_state_write_request(mi->hash, false, &req);
	smp_client_send(st.c, req, SMP_PRIO_INTERACTIVE, 0, on_step_call, &st, NULL, NULL);
	ok(sim_test_run_until(m.event, &st.done, 3000) && st.error == 0, "marked for test");
	st.done = false;
	smp_client_reset_device(st.c, false, -1, 0, on_step_call, &st, NULL, NULL);
	ok(sim_test_run_until(m.event, &st.done, 3000) && st.error == 0, "reset");
	st.c = smp_client_unref(st.c);
	gw_registry_get_reported(d, "info", &info_at);
	gw_devices_release(m.devices, d);

	ok(run_until(runs_version, d, 8000), "a round sees 1.2.3.4 running");
	active_version(d, &state_at);
	gw_registry_get_reported(d, "params", &params_at2);
	gw_registry_get_reported(d, "info", &info_at2);
	ok(params_at2 >= state_at && info_at2 > info_at,
	   "that round read params and info again (params at %llu, image state at %llu)",
	   (unsigned long long)params_at2, (unsigned long long)state_at);
	is_int(s->offline, 0, "without the device going offline");
	sim_proc_stop(&p, SIGTERM, 5000);
	smp_mcuboot_image_free(mi);
	free(img);
	stop();
}

/* ---- packet loss: retries get every round through ---- */

static bool all_answered(void *userdata)
{
	for (size_t i = 0; i < n_seen; i++)
		if (seen[i].stats == 0)
			return false;
	return true;
}

struct stats_get {
	bool done;
	struct smp_client_stats st;
};

static void on_client(struct gw_devices *ds, int error, struct smp_client *c, void *userdata)
{
	struct stats_get *g = userdata;

	g->done = true;
	if (c)
		smp_client_get_stats(c, &g->st);
}

static void test_loss(void)
{
	const char *args[] = {"--udp", "127.0.0.1:0", "--count", "4", "--drop-rate", "0.15",
			      "--seed", "7", NULL};
	struct sim_proc p;
	uint64_t retransmits = 0;
	unsigned online = 0;

	start();
	m.config.poll_interval_ms = 0;
	m.config.timeout_ms = 100;
	m.config.retries = 4;
	start_modules();
	if (!start_sim(&p, args)) {
		ok(false, "smp-sim starts");
		stop();
		return;
	}
	for (unsigned i = 0; i < 4; i++)
		gw_poller_poll_now(m.poller, add_udp(&p, i));
	ok(run_until(all_answered, NULL, 20000), "15%% of the frames lost: every round completes");
	for (size_t i = 0; i < n_seen; i++) {
		struct stats_get g = {0};

		online += seen[i].d->online;
		gw_devices_get_client(m.devices, seen[i].d, on_client, &g, NULL, NULL);
		sim_test_run_until(m.event, &g.done, 2000);
		retransmits += g.st.retransmits;
	}
	is_int(online, 4, "all four online");
	ok(retransmits > 0, "thanks to retransmissions (%llu)", (unsigned long long)retransmits);
	sim_proc_stop(&p, SIGTERM, 5000);
	stop();
}

/* ---- schedule: jitter, pause while held, one round per device ---- */

static void test_schedule(void)
{
	const char *args[] = {"--udp", "127.0.0.1:0", "--count", "6", "--latency", "30", NULL};
	struct gw_poller_device_stats st;
	struct sim_proc p;
	long long min_gap = 1 << 30, max_gap = 0, first_min = 1LL << 62, first_max = 0, held_at;
	unsigned gaps = 0, bad = 0, before;
	struct seen *h;

	start();
	m.config.poll_interval_ms = 400;
	m.config.poll_jitter_pct = 50;
	start_modules();
	if (!start_sim(&p, args)) {
		ok(false, "smp-sim starts");
		stop();
		return;
	}
	for (unsigned i = 0; i < 6; i++)
		add_udp(&p, i);
	spin(3000);
	for (size_t i = 0; i < n_seen; i++) {
		struct seen *s = &seen[i];

		first_min = MIN(first_min, s->first_ms);
		first_max = MAX(first_max, s->first_ms);
		/* From the second round on (the first is a full one, longer). */
		for (unsigned k = 2; k < MIN(s->image_states, (unsigned)MAX_EVENTS); k++) {
			long long gap = s->at[k] - s->at[k - 1];

			gaps++;
			min_gap = MIN(min_gap, gap);
			max_gap = MAX(max_gap, gap);
			/* interval +- 50 %, plus a round of ~6 answers of 30 ms */
			if (gap < 190 || gap > 600 + 400)
				bad++;
		}
		ok(!s->overlap, "device %zu: never two rounds at once", i);
	}
	ok(gaps >= 12, "%u intervals seen", gaps);
	is_int(bad, 0, "every interval within the interval +- jitter (%lld..%lld ms)", min_gap,
	       max_gap);
	ok(max_gap - min_gap >= 100, "intervals are spread by the jitter, not fixed");
	ok(first_max - first_min <= 200 + 150, "first rounds within the jitter window (%lld ms)",
	   first_max - first_min);

	/* Held: no polls (the round in flight may end). */
	h = &seen[0];
	gw_devices_hold(m.devices, h->d);
	spin(400);
	before = h->image_states;
	held_at = sim_test_now_ms();
	spin(1200);
	is_int(h->image_states, before, "a held device is not polled");
	gw_poller_get_device_stats(m.poller, h->d, &st);
	ok(st.skipped > 0 && st.last_error == -EBUSY, "its rounds are skipped (%llu)",
	   (unsigned long long)st.skipped);
	ok(seen[1].image_states > 0 && seen[1].at[MIN(seen[1].image_states, MAX_EVENTS) - 1] > held_at,
	   "the others go on");
	m.config.poll_during_upload = true;
	spin(1000);
	ok(h->image_states > before, "[poll] during_upload: polled while held");
	m.config.poll_during_upload = false;
	gw_devices_release(m.devices, h->d);
	before = h->image_states;
	spin(1000);
	ok(h->image_states > before, "released: polled again");

	/* Rounds slower than the interval still never overlap. */
	is_int(sim_proc_command(&p, "set latency 300", 2000), 0, "answers slow down to 300 ms");
	spin(2500);
	for (size_t i = 0; i < n_seen; i++)
		if (seen[i].overlap)
			bad++;
	is_int(bad, 0, "rounds longer than the interval do not overlap");
	sim_proc_stop(&p, SIGTERM, 5000);
	stop();
}

/* ---- BLE: polled within the budget ---- */

static int bus_open(const char *address, sd_bus **ret)
{
	sd_bus *b = NULL;
	int r;

	r = sd_bus_new(&b);
	if (r >= 0)
		r = sd_bus_set_address(b, address);
	if (r >= 0)
		r = sd_bus_set_bus_client(b, 1);
	if (r >= 0)
		r = sd_bus_start(b);
	if (r >= 0)
		r = sd_bus_attach_event(b, m.event, 0);
	if (r < 0) {
		sd_bus_unref(b);
		return r;
	}
	*ret = b;
	return 0;
}

static bool object_exists(const char *path)
{
	char *n = NULL;
	int r = sd_bus_get_property_string(m.bluez_bus, "org.bluez", path, "org.bluez.Device1",
					   "Name", NULL, &n);

	free(n);
	return r >= 0;
}

static unsigned max_ble;

static int on_post(sd_event_source *s, void *userdata)
{
	max_ble = MAX(max_ble, gw_devices_ble_connections(m.devices));
	return 0;
}

static bool all_ble_polled(void *userdata)
{
	for (size_t i = 0; i < n_seen; i++)
		if (seen[i].stats < 2)
			return false;
	return true;
}

static void test_ble(void)
{
	struct test_dbus bus = {0};
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_event_source *post = NULL;
	struct gw_poller_device_stats st;
	struct stats_get g = {0};
	struct sim_proc p;
	unsigned before[3];
	int r;

	r = test_dbus_start(&bus);
	if (r == -ENOENT) {
		tap_skip("dbus-daemon is not installed", "BLE polling");
		return;
	}
	{
		const char *args[] = {"--ble", "--ble-bus", bus.address, "--count", "3",
				      "--ble-max-connections", "1", NULL};

		if (r < 0 || !start_sim(&p, args)) {
			ok(false, "smp-sim --ble starts");
			test_dbus_stop(&bus);
			return;
		}
	}
	start();
	m.config.ble_max_connections = 1;
	m.config.poll_interval_ms = 300;
	m.config.poll_jitter_pct = 20;
	if (bus_open(bus.address, &m.bluez_bus) < 0 ||
	    sd_bus_call_method(m.bluez_bus, "org.bluez", "/org/bluez/hci0", "org.bluez.Adapter1",
			       "StartDiscovery", &err, NULL, NULL) < 0)
		abort();
	sd_bus_error_free(&err);
	start_modules();
	sd_event_add_post(m.event, &post, on_post, NULL);
	for (unsigned i = 0; i < 3; i++) {
		char *path = sim_proc_ready(&p, "ble", i, NULL), *mac = sim_proc_ready(&p, "ble", i, "addr");
		char identity[64];
		long long deadline = sim_test_now_ms() + 5000;

		while (!object_exists(path) && sim_test_now_ms() < deadline)
			spin(50);
		snprintf(identity, sizeof(identity), "ble:%s", mac);
		add_device(GW_TRANSPORT_BLE, identity, path, true);
		free(path);
		free(mac);
	}
	ok(run_until(all_ble_polled, NULL, 15000),
	   "three BLE devices polled in turn through a budget of one link");
	ok(max_ble <= 1, "never more than one BLE link (the adapter would refuse a second)");

	/* A held link fills the budget: the others are skipped, not queued. */
	gw_devices_hold(m.devices, seen[0].d);
	gw_devices_get_client(m.devices, seen[0].d, on_client, &g, NULL, NULL);
	sim_test_run_until(m.event, &g.done, 5000);
	ok(gw_devices_has_link(m.devices, seen[0].d), "device 0 holds the only link");
	for (unsigned i = 0; i < 3; i++)
		before[i] = seen[i].stats;
	spin(1500);
	ok(seen[1].stats == before[1] && seen[2].stats == before[2],
	   "a held link of another device: no polls");
	gw_poller_get_device_stats(m.poller, seen[1].d, &st);
	ok(st.skipped > 0, "they are skipped (%llu)", (unsigned long long)st.skipped);
	ok(!gw_devices_has_link(m.devices, seen[1].d), "and do not wait for a link");
	gw_devices_release(m.devices, seen[0].d);
	for (unsigned i = 0; i < 3; i++)
		before[i] = seen[i].stats;
	spin(2500);
	ok(seen[1].stats > before[1] && seen[2].stats > before[2], "released: polled again");
	ok(max_ble <= 1, "still never more than one link");

	/* An offline BLE device is left to discovery. */
	gw_registry_set_online(m.registry, seen[2].d, false);
	before[2] = seen[2].stats;
	spin(1200);
	is_int(seen[2].stats, before[2], "an offline BLE device is not polled");

	sd_event_source_disable_unref(post);
	stop();
	sim_proc_stop(&p, SIGTERM, 5000);
	test_dbus_stop(&bus);
}

/* ---- 1,000 UDP devices ---- */

static long rss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

static bool every_device_answered(void *userdata)
{
	struct gw_poller_stats st;

	gw_poller_get_stats(m.poller, &st);
	return st.answered >= MAX_DEVICES;
}

static void test_scale(void)
{
	const char *args[] = {"--udp", "127.0.0.1:0", "--count", "1000", "--flash-write-us-per-kib",
			      "0", "-q", NULL};
	struct gw_poller_stats st;
	struct rlimit rl;
	struct sim_proc p;
	long long t0, t1, first_min = 1LL << 62, first_max = 0;
	unsigned online = 0, polled = 0;
	long rss;

	/* Polls leave no socket open: a thousand devices fit in the usual
	 * limit of 1024 descriptors. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 1024) {
		rl.rlim_cur = 1024;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	start();
	m.config.poll_interval_ms = 20000;
	m.config.poll_jitter_pct = 20; /* first rounds spread over 4 s */
	if (!start_sim(&p, args)) {
		ok(false, "smp-sim --count 1000 starts");
		stop();
		return;
	}
	for (unsigned i = 0; i < MAX_DEVICES; i++)
		add_udp(&p, i);
	start_modules();
	t0 = sim_test_now_ms();
	ok(run_until(every_device_answered, NULL, 30000), "1,000 devices all polled");
	t1 = sim_test_now_ms();
	for (size_t i = 0; i < n_seen; i++) {
		online += seen[i].d->online;
		polled += seen[i].image_states == 1 && seen[i].stats == 1;
		first_min = MIN(first_min, seen[i].first_ms);
		first_max = MAX(first_max, seen[i].first_ms);
	}
	is_int(online, MAX_DEVICES, "all online");
	is_int(polled, MAX_DEVICES, "each once: image state and stats");
	ok(t1 - t0 < 4000 + 6000, "within the jitter window and a bit (%lld ms)", t1 - t0);
	ok(first_max - first_min >= 2000, "spread over the window, not all at once (%lld ms)",
	   first_max - first_min);
	gw_poller_get_stats(m.poller, &st);
	ok(st.max_in_flight <= GW_POLLER_MAX_IN_FLIGHT, "at most %u rounds in flight (%u)",
	   GW_POLLER_MAX_IN_FLIGHT, st.max_in_flight);
	is_int(st.failed, 0, "no round failed");
	rss = rss_kib();
#if defined(__SANITIZE_ADDRESS__)
	tap_skip("RSS is not meaningful under ASan", "RSS %ld KiB", rss);
#else
	ok(rss > 0 && rss <= 20 * 1024, "RSS with 1,000 devices polled: %ld KiB", rss);
#endif
	sim_proc_stop(&p, SIGTERM, 10000);
	stop();
}

int main(void)
{
	if (!mkdtemp(dir))
		abort();
	gw_log_setup(getenv("TEST_LOG") ? getenv("TEST_LOG") : "err", getenv("TEST_DEBUG"));
	test_round();
	test_reboot();
	test_firmware_change();
	test_loss();
	test_schedule();
	test_ble();
	test_scale();
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			tap_diag("could not remove %s", dir);
	}
	return tap_done();
}
