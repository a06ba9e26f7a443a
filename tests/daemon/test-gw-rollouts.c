/* test-gw-rollouts: the rollout engine against smp-sim devices: every mode, skips, resume, revert, faults, gates, restarts */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/gw-devices.h"
#include "daemon/gw-events.h"
#include "daemon/gw-firmware.h"
#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "daemon/gw-rollout-internal.h"
#include "daemon/gw-rollouts.h"
#include "db/db.h"
#include "lib/macro.h"
#include "lib/smp-image.h"
#include "tests/sim/sim-test.h"
#include "tests/tap.h"

#define START_MS 10000
#define IMAGE_A "tests/data/images/hash-only-1.2.3+4.bin"
#define IMAGE_B "tests/data/images/ecdsa-p256-2.0.0.bin"

static char dir[] = "/tmp/smpgw-test-rollouts-XXXXXX";
static struct gw_manager m;
static struct gw_events_sub *sub;
static unsigned run_no;

/* The firmware of the current run. */
struct fw {
	char id[65];
	char image_hash[65];
	char version[32];
	uint64_t size;
};
static struct fw fw_a, fw_b;

/* ---- what the event stream said ---- */

#define MAX_JOBS 64
#define MAX_ROLLOUTS 16

struct job_seen {
	int64_t id;
	char state[16];
	char reason[256];
	unsigned progress_events;
	uint64_t bytes_done;
	char trail[512]; /* "queued>connecting>..." */
};

struct rollout_seen {
	int64_t id;
	char state[16];
	char reason[256];
	unsigned progress_events;
	bool throughput_seen;
};

static struct job_seen jobs_seen[MAX_JOBS];
static size_t n_jobs_seen;
static struct rollout_seen rollouts_seen[MAX_ROLLOUTS];
static size_t n_rollouts_seen;
static unsigned active_now, active_max;
static int64_t starts[64]; /* the rollout of each job that began connecting, in order */
static size_t n_starts;

static bool state_active(const char *s)
{
	return strcmp(s, "queued") && strcmp(s, "succeeded") && strcmp(s, "failed") &&
	       strcmp(s, "rolled_back") && strcmp(s, "canceled");
}

static struct job_seen *job_seen(int64_t id)
{
	for (size_t i = 0; i < n_jobs_seen; i++)
		if (jobs_seen[i].id == id)
			return &jobs_seen[i];
	if (n_jobs_seen == MAX_JOBS) {
		/* Beyond what a test looks at (the scale test): counted nowhere. */
		static struct job_seen spare;

		spare = (struct job_seen){ .id = id, .state = "queued" };
		return &spare;
	}
	jobs_seen[n_jobs_seen] = (struct job_seen){ .id = id, .state = "queued" };
	return &jobs_seen[n_jobs_seen++];
}

static struct rollout_seen *rollout_seen(int64_t id)
{
	for (size_t i = 0; i < n_rollouts_seen; i++)
		if (rollouts_seen[i].id == id)
			return &rollouts_seen[i];
	if (n_rollouts_seen == MAX_ROLLOUTS)
		abort();
	rollouts_seen[n_rollouts_seen] = (struct rollout_seen){ .id = id };
	return &rollouts_seen[n_rollouts_seen++];
}

static void on_event(struct gw_events *ev, const struct gw_event *e, void *userdata)
{
	json_t *d = e->data;

	if (strcmp(e->type, "job.state") == 0) {
		struct job_seen *j = job_seen(json_integer_value(json_object_get(d, "job")));
		const char *to = json_string_value(json_object_get(d, "to"));
		const char *from = json_string_value(json_object_get(d, "from"));
		size_t len = strlen(j->trail);

		if (!to || !from || !json_is_string(json_object_get(d, "device")) ||
		    json_integer_value(json_object_get(d, "rollout")) != e->rollout_id ||
		    !json_is_integer(json_object_get(d, "attempt")))
			abort();
		if (!strcmp(from, "queued") && !strcmp(to, "connecting") && n_starts < 64)
			starts[n_starts++] = e->rollout_id;
		if (state_active(from) && strcmp(from, j->state) == 0)
			active_now--;
		if (state_active(to))
			active_now++;
		active_max = MAX(active_max, active_now);
		snprintf(j->state, sizeof(j->state), "%s", to);
		snprintf(j->reason, sizeof(j->reason), "%s",
			 json_string_value(json_object_get(d, "reason")));
		if (len + strlen(to) + 2 < sizeof(j->trail) &&
		    (len == 0 || strcmp(from, to) != 0))
			snprintf(j->trail + len, sizeof(j->trail) - len, "%s%s", len ? ">" : "", to);
	} else if (strcmp(e->type, "job.progress") == 0) {
		struct job_seen *j = job_seen(json_integer_value(json_object_get(d, "job")));

		j->progress_events++;
		j->bytes_done = (uint64_t)json_integer_value(json_object_get(d, "bytes_done"));
	} else if (strcmp(e->type, "rollout.state") == 0) {
		struct rollout_seen *r = rollout_seen(e->rollout_id);

		snprintf(r->state, sizeof(r->state), "%s", json_string_value(json_object_get(d, "to")));
		snprintf(r->reason, sizeof(r->reason), "%s",
			 json_string_value(json_object_get(d, "reason")));
	} else if (strcmp(e->type, "rollout.progress") == 0) {
		struct rollout_seen *r = rollout_seen(e->rollout_id);

		r->progress_events++;
		if (json_number_value(json_object_get(d, "throughput")) > 0)
			r->throughput_seen = true;
	}
}

/* ---- the manager, as smpgwd builds it ---- */

static void add_firmware(const char *path, struct fw *ret)
{
	_cleanup_(json_decrefp) json_t *info = NULL;
	char err[256] = "";
	int fd = open(tap_srcpath(path), O_RDONLY | O_CLOEXEC);

	if (fd < 0 || gw_firmware_add_fd(m.firmware, fd, NULL, &info, err, sizeof(err)) < 0) {
		fprintf(stderr, "cannot add %s: %s\n", path, err);
		abort();
	}
	close(fd);
	snprintf(ret->id, sizeof(ret->id), "%s", json_string_value(json_object_get(info, "id")));
	snprintf(ret->image_hash, sizeof(ret->image_hash), "%s",
		 json_string_value(json_object_get(info, "image_hash")));
	snprintf(ret->version, sizeof(ret->version), "%s",
		 json_string_value(json_object_get(info, "version")));
	ret->size = (uint64_t)json_integer_value(json_object_get(info, "size"));
}

static void start_engine(void)
{
	if (gw_rollouts_new(&m, &m.rollouts) < 0)
		abort();
}

static void start(void)
{
	char state[256], path[300], err[256] = "";

	memset(&m, 0, sizeof(m));
	n_jobs_seen = n_rollouts_seen = n_starts = 0;
	active_now = active_max = 0;
	snprintf(state, sizeof(state), "%s/run-%u", dir, ++run_no);
	snprintf(path, sizeof(path), "%s/smpgw.db", state);
	if (sd_event_new(&m.event) < 0 || gw_config_init(&m.config) < 0 ||
	    gw_config_set(&m.config, "daemon", "state_dir", state) < 0 || mkdir(state, 0700) < 0)
		abort();
	if (db_open(path, &m.db, err, sizeof(err)) < 0) {
		fprintf(stderr, "db_open: %s\n", err);
		abort();
	}
	m.config.timeout_ms = 1000;
	m.config.upload_first_timeout_ms = 5000;
	if (gw_registry_new(&m, &m.registry) < 0 || gw_events_new(&m, 0, &m.events) < 0 ||
	    gw_events_subscribe(m.events, on_event, NULL, &sub) < 0 ||
	    gw_devices_new(&m, &m.devices) < 0 || gw_firmware_new(&m, &m.firmware) < 0)
		abort();
	add_firmware(IMAGE_A, &fw_a);
	add_firmware(IMAGE_B, &fw_b);
	start_engine();
}

static void stop(void)
{
	m.rollouts = gw_rollouts_free(m.rollouts);
	m.devices = gw_devices_free(m.devices);
	m.firmware = gw_firmware_free(m.firmware);
	gw_events_unsubscribe(m.events, sub);
	m.events = gw_events_free(m.events);
	m.registry = gw_registry_free(m.registry);
	m.db = db_close(m.db);
	while (sd_event_run(m.event, 0) > 0)
		;
	m.event = sd_event_unref(m.event);
	gw_config_clear(&m.config);
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

static struct gw_device *add_device(const char *address, const char *labels)
{
	char identity[128];
	struct gw_device_spec spec = {
		.transport = GW_TRANSPORT_UDP,
		.identity = identity,
		.address = address,
		.labels = labels,
		.source = GW_SOURCE_API,
	};
	struct gw_device *d = NULL;

	snprintf(identity, sizeof(identity), "udp:%s", address);
	if (gw_registry_upsert(m.registry, &spec, &d) < 0)
		abort();
	gw_registry_set_online(m.registry, d, true);
	return d;
}

static struct gw_device *add_udp(struct sim_proc *p, unsigned i)
{
	char *address = sim_proc_ready(p, "udp", i, NULL);
	struct gw_device *d;

	if (!address)
		abort();
	d = add_device(address, NULL);
	free(address);
	return d;
}

/* Creates a rollout from JSON text with "%s" for the firmware id; 0 when refused. */
static int64_t create(const char *fmt, const char *fw_id, char *err, size_t errlen, int *ret)
{
	char text[4096];
	json_t *req;
	int64_t id = 0;
	int r;

	/* fmt is JSON with "%s" standing for the firmware id ("%%" for "%"). */
	for (size_t i = 0, o = 0; o + 65 < sizeof(text); i++) {
		if (fmt[i] == '%' && fmt[i + 1] == 's') {
			o += (size_t)snprintf(text + o, sizeof(text) - o, "%s", fw_id);
			i++;
		} else if (fmt[i] == '%' && fmt[i + 1] == '%') {
			text[o++] = '%';
			i++;
		} else {
			text[o++] = fmt[i];
			if (!fmt[i])
				break;
		}
	}
	text[sizeof(text) - 1] = 0;
	req = json_loads(text, 0, NULL);
	if (!req)
		abort();
	r = gw_rollouts_create(m.rollouts, req, &id, err, errlen);
	json_decref(req);
	if (ret)
		*ret = r;
	return r < 0 ? 0 : id;
}

struct want_state {
	int64_t id;
	const char *state;
};

static bool rollout_in(void *userdata)
{
	struct want_state *w = userdata;

	return strcmp(rollout_seen(w->id)->state, w->state) == 0;
}

static bool wait_rollout(int64_t id, const char *state, unsigned timeout_ms)
{
	struct want_state w = { id, state };
	bool r = run_until(rollout_in, &w, timeout_ms);

	if (!r)
		tap_diag("rollout %lld is %s (%s), not %s", (long long)id, rollout_seen(id)->state,
			 rollout_seen(id)->reason, state);
	return r;
}

static bool job_in(void *userdata)
{
	struct want_state *w = userdata;

	return strcmp(job_seen(w->id)->state, w->state) == 0;
}

static bool wait_job(int64_t id, const char *state, unsigned timeout_ms)
{
	struct want_state w = { id, state };

	return run_until(job_in, &w, timeout_ms);
}

/* The jobs of a rollout (new reference). */
static json_t *jobs_of(int64_t rollout)
{
	json_t *j = NULL;

	if (gw_rollouts_jobs(m.rollouts, rollout, NULL, NULL, &j) < 0)
		abort();
	return j;
}

static int64_t job_id(int64_t rollout, size_t i)
{
	_cleanup_(json_decrefp) json_t *j = jobs_of(rollout);

	return json_integer_value(json_object_get(json_array_get(j, i), "id"));
}

static json_t *rollout_view(int64_t id)
{
	json_t *j = NULL;

	if (gw_rollouts_get(m.rollouts, id, &j) < 0)
		return json_object();
	return j;
}

static uint64_t jobs_count(json_t *view, const char *state)
{
	return (uint64_t)json_integer_value(json_object_get(json_object_get(view, "jobs"), state));
}

/* ---- reading a device directly ---- */

struct call {
	bool done;
	int error;
	struct smp_image_state *st;
};

static void on_state(struct smp_client *c, int error, const struct smp_response *rsp,
		     void *userdata)
{
	struct call *call = userdata;

	call->done = true;
	call->error = error;
	if (error == 0 && smp_response_ok(rsp))
		smp_image_state_parse(rsp, &call->st);
}

static struct smp_image_state *read_state(struct gw_device *d)
{
	struct smp_request *req = NULL;
	struct call call = { 0 };

	if (smp_image_state_read_request(&req) < 0 ||
	    gw_devices_call_flags(m.devices, d, req, SMP_PRIO_INTERACTIVE, 0, GW_DEVICES_PROBE,
				  on_state, &call, NULL, NULL) < 0)
		return NULL;
	sim_test_run_until(m.event, &call.done, 10000);
	return call.st;
}

static void hex(const uint8_t *h, char out[65])
{
	for (size_t i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* "running new, confirmed", "running old, new in slot 1", ... as one line to compare. */
static char *device_summary(struct gw_device *d, const struct fw *f, char *buf, size_t size)
{
	struct smp_image_state *st = read_state(d);
	const struct smp_image_slot_state *a0, *n;
	char h[65] = "";

	if (!st) {
		snprintf(buf, size, "unreadable");
		return buf;
	}
	a0 = smp_image_state_find_active(st, 0);
	if (a0 && a0->has_hash)
		hex(a0->hash, h);
	n = NULL;
	for (size_t i = 0; i < st->n_slots; i++) {
		char x[65];

		hex(st->slots[i].hash, x);
		if (st->slots[i].has_hash && strcmp(x, f->image_hash) == 0)
			n = &st->slots[i];
	}
	if (a0 && strcmp(h, f->image_hash) == 0)
		snprintf(buf, size, "new running%s", a0->confirmed ? ", confirmed" : ", unconfirmed");
	else if (n)
		snprintf(buf, size, "old running, new in slot %u%s", (unsigned)n->slot,
			 n->pending ? " pending" : "");
	else
		snprintf(buf, size, "old running");
	smp_image_state_free(st);
	return buf;
}

/* A UDP port where nothing listens. */
static char *dead_address(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	char *s = NULL;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0 ||
	    asprintf(&s, "127.0.0.1:%u", ntohs(a.sin_port)) < 0)
		abort();
	close(fd);
	return s;
}

/* ---- pure parts: strategies and windows ---- */

static void test_strategy(void)
{
	struct gw_rollout_strategy s;
	char err[256] = "";
	json_t *j, *back;

	is_int(gw_rollout_strategy_parse(NULL, &s, err, sizeof(err)), 0, "no strategy: defaults");
	ok(s.mode == GW_ROLLOUT_TEST_CONFIRM && s.max_parallel == 4 && s.canary == 0 &&
	   s.max_failure_ratio < 0 && s.retries == 3 && s.backoff_ms == 10000 &&
	   s.reboot_timeout_ms == 120000 && !s.has_window && !s.upgrade, "the documented defaults");

	j = json_loads("{\"mode\":\"confirm\",\"max_parallel\":7,\"canary\":2,"
		       "\"max_failure_ratio\":0.25,\"min_finished\":4,\"retries\":1,\"backoff\":0.5,"
		       "\"backoff_max\":3,\"window\":\"22:30-06:15\",\"reboot_timeout\":45,"
		       "\"upgrade\":true}", 0, NULL);
	is_int(gw_rollout_strategy_parse(j, &s, err, sizeof(err)), 0, "a full strategy");
	ok(s.mode == GW_ROLLOUT_CONFIRM && s.max_parallel == 7 && s.canary == 2 &&
	   s.max_failure_ratio == 0.25 && s.min_finished == 4 && s.retries == 1 &&
	   s.backoff_ms == 500 && s.backoff_max_ms == 3000 && s.has_window &&
	   s.window_start == 22 * 60 + 30 && s.window_end == 6 * 60 + 15 &&
	   s.reboot_timeout_ms == 45000 && s.upgrade, "every key read");
	back = gw_rollout_strategy_to_json(&s);
	ok(back && json_equal(back, j), "normalised form equals the input when complete");
	json_decref(back);
	json_decref(j);

	static const struct {
		const char *json, *want;
	} bad[] = {
		{ "[]", "strategy must be an object" },
		{ "{\"mode\":\"yolo\"}", "strategy.mode" },
		{ "{\"max_parallel\":0}", "strategy.max_parallel" },
		{ "{\"max_parallel\":1001}", "strategy.max_parallel" },
		{ "{\"max_parallel\":\"2\"}", "strategy.max_parallel" },
		{ "{\"max_parallel\":2.5}", "strategy.max_parallel" },
		{ "{\"canary\":-1}", "strategy.canary" },
		{ "{\"max_failure_ratio\":1.5}", "strategy.max_failure_ratio" },
		{ "{\"retries\":101}", "strategy.retries" },
		{ "{\"backoff\":-1}", "strategy.backoff" },
		{ "{\"reboot_timeout\":0}", "strategy.reboot_timeout" },
		{ "{\"window\":\"25:00-06:00\"}", "strategy.window" },
		{ "{\"window\":\"10:00-10:00\"}", "strategy.window" },
		{ "{\"window\":\"1:00-6:00\"}", "strategy.window" },
		{ "{\"window\":\"10:00-11:00x\"}", "strategy.window" },
		{ "{\"upgrade\":1}", "strategy.upgrade" },
		{ "{\"colour\":\"blue\"}", "unknown strategy key" },
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		j = json_loads(bad[i].json, JSON_DECODE_ANY, NULL);
		err[0] = 0;
		is_int(gw_rollout_strategy_parse(j, &s, err, sizeof(err)), -EINVAL, "refused: %s",
		       bad[i].json);
		ok(strstr(err, bad[i].want) != NULL, "... saying \"%s\" (%s)", bad[i].want, err);
		json_decref(j);
	}
	j = json_loads("{\"max_failure_ratio\":null,\"window\":null}", 0, NULL);
	is_int(gw_rollout_strategy_parse(j, &s, err, sizeof(err)), 0, "nulls are the defaults");
	json_decref(j);
}

static time_t local_time(int hour, int min)
{
	struct tm tm = { .tm_year = 124, .tm_mon = 5, .tm_mday = 12, .tm_hour = hour, .tm_min = min,
			 .tm_isdst = -1 };

	return mktime(&tm);
}

static void test_windows(void)
{
	struct gw_rollout_strategy s = { .has_window = true, .window_start = 22 * 60,
					 .window_end = 6 * 60 };
	struct gw_rollout_strategy day = { .has_window = true, .window_start = 9 * 60,
					   .window_end = 17 * 60 + 30 };
	struct gw_rollout_strategy none = { 0 };

	ok(gw_rollout_window_contains(&s, local_time(23, 0)), "22-06 contains 23:00");
	ok(gw_rollout_window_contains(&s, local_time(2, 0)), "22-06 contains 02:00");
	ok(gw_rollout_window_contains(&s, local_time(22, 0)), "start is inside");
	ok(!gw_rollout_window_contains(&s, local_time(6, 0)), "end is outside");
	ok(!gw_rollout_window_contains(&s, local_time(12, 0)), "22-06 leaves out noon");
	ok(gw_rollout_window_contains(&day, local_time(17, 29)), "09-17:30 contains 17:29");
	ok(!gw_rollout_window_contains(&day, local_time(8, 59)), "... not 08:59");
	ok(gw_rollout_window_contains(&none, local_time(3, 0)), "no window: always");
	is_int(gw_rollout_window_next_change(&s, local_time(12, 0)), local_time(22, 0),
	       "at noon the next change is 22:00");
	is_int(gw_rollout_window_next_change(&s, local_time(23, 0)), local_time(6, 0) + 86400,
	       "at 23:00 it is 06:00 the next day");
	is_int(gw_rollout_window_next_change(&s, local_time(22, 0)), local_time(6, 0) + 86400,
	       "exactly at the start: the end");
	is_int(gw_rollout_window_next_change(&day, local_time(3, 0)), local_time(9, 0),
	       "before a day window: its start");
	is_int(gw_rollout_window_next_change(&none, local_time(3, 0)), 0, "no window: no change");
}

/* ---- requests refused ---- */

static void test_refused(void)
{
	const char *args[] = { "--udp", "127.0.0.1:0", "--count", "2", NULL };
	struct sim_proc p;
	struct gw_device *d0, *d1;
	char err[256], text[512];
	int64_t id, id2;
	int r;

	start();
	if (!start_sim(&p, args)) {
		ok(false, "smp-sim starts");
		stop();
		return;
	}
	d0 = add_udp(&p, 0);
	d1 = add_udp(&p, 1);

	static const struct {
		const char *json;
		int want;
		const char *msg;
	} bad[] = {
		{ "[1]", -EINVAL, "JSON object" },
		{ "{\"devices\":[\"x\"]}", -EINVAL, "firmware" },
		{ "{\"firmware\":\"%s\"}", -EINVAL, "either" },
		{ "{\"firmware\":\"%s\",\"devices\":[],\"x\":1}", -EINVAL, "unknown key" },
		{ "{\"firmware\":\"%s\",\"devices\":[]}", -EINVAL, "devices must be" },
		{ "{\"firmware\":\"%s\",\"devices\":[7]}", -EINVAL, "device ids" },
		{ "{\"firmware\":\"%s\",\"devices\":[\"nope\"]}", -EINVAL, "unknown device" },
		{ "{\"firmware\":\"%s\",\"devices\":[\"DEV0\",\"DEV0\"]}", -EINVAL, "twice" },
		{ "{\"firmware\":\"%s\",\"devices\":[\"DEV0\"],\"selector\":{}}", -EINVAL, "either" },
		{ "{\"firmware\":\"%s\",\"selector\":{\"labels\":\"x\"}}", -EINVAL, "selector.labels" },
		{ "{\"firmware\":\"%s\",\"selector\":{\"transport\":\"pigeon\"}}", -EINVAL,
		  "selector.transport" },
		{ "{\"firmware\":\"%s\",\"selector\":{\"version\":\"<<1\"}}", -EINVAL,
		  "selector.version" },
		{ "{\"firmware\":\"%s\",\"selector\":{\"colour\":1}}", -EINVAL, "unknown selector key" },
		{ "{\"firmware\":\"%s\",\"selector\":{\"labels\":[\"nowhere\"]}}", -EINVAL,
		  "no device matches" },
		{ "{\"firmware\":\"%s\",\"devices\":[\"DEV0\"],\"strategy\":{\"retries\":-1}}",
		  -EINVAL, "strategy.retries" },
		{ "{\"firmware\":\"%s\",\"devices\":[\"DEV0\"],\"name\":5}", -EINVAL, "name must" },
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		char fmt[512], *at;

		snprintf(fmt, sizeof(fmt), "%s", bad[i].json);
		while ((at = strstr(fmt, "DEV0"))) {
			char rest[512];

			snprintf(rest, sizeof(rest), "%s", at + 4);
			snprintf(at, sizeof(fmt) - (size_t)(at - fmt), "%s%s", d0->id, rest);
		}
		err[0] = 0;
		create(fmt, fw_a.id, err, sizeof(err), &r);
		is_int(r, bad[i].want, "refused: %s", bad[i].json);
		ok(strstr(err, bad[i].msg) != NULL, "... saying \"%s\" (%s)", bad[i].msg, err);
	}
	snprintf(text, sizeof(text), "{\"firmware\":\"%%s\",\"devices\":[\"%s\"]}", d0->id);
	create(text, "00ff", err, sizeof(err), &r);
	is_int(r, -ENOENT, "unknown firmware: -ENOENT (%s)", err);

	/* One job per device: a second rollout on a busy device is -EBUSY. */
	snprintf(text, sizeof(text),
		 "{\"firmware\":\"%%s\",\"devices\":[\"%s\"],\"name\":\"first\","
		 "\"strategy\":{\"mode\":\"upload-only\"}}", d0->id);
	id = create(text, fw_a.id, err, sizeof(err), &r);
	is_int(r, 0, "a rollout on device 0");
	is_int(gw_rollouts_pause(m.rollouts, id), 0, "paused at once: nothing starts");
	ok(gw_rollouts_device_busy(m.rollouts, d0->id), "device 0 is busy");
	ok(!gw_rollouts_device_busy(m.rollouts, d1->id), "device 1 is not");
	snprintf(text, sizeof(text), "{\"firmware\":\"%%s\",\"devices\":[\"%s\",\"%s\"]}", d1->id,
		 d0->id);
	err[0] = 0;
	create(text, fw_b.id, err, sizeof(err), &r);
	is_int(r, -EBUSY, "a second rollout on the busy device: -EBUSY");
	ok(strstr(err, d0->id) != NULL, "... naming it (%s)", err);
	ok(!gw_rollouts_device_busy(m.rollouts, d1->id), "and nothing was created for device 1");

	/* A selector takes the free devices, and is -EBUSY when none is. */
	{
		_cleanup_(json_decrefp) json_t *l0 = json_pack("[s]", "kitchen");
		_cleanup_(json_decrefp) json_t *l1 = json_pack("[s, s]", "kitchen", "cellar");

		gw_registry_set_labels(m.registry, d0, l0);
		gw_registry_set_labels(m.registry, d1, l1);
	}
	err[0] = 0;
	create("{\"firmware\":\"%s\",\"selector\":{\"labels\":[\"kitchen\"]},"
	       "\"strategy\":{\"mode\":\"upload-only\"}}", fw_b.id, err, sizeof(err), &r);
	ok(r == 0, "a selector rollout takes the free device");
	id2 = 0;
	{
		_cleanup_(json_decrefp) json_t *jobs = NULL;

		is_int(gw_rollouts_jobs(m.rollouts, 0, d1->id, NULL, &jobs), 0, "device 1's jobs");
		is_int(json_array_size(jobs), 1, "one job, for device 1");
		id2 = json_integer_value(json_object_get(json_array_get(jobs, 0), "rollout"));
	}
	err[0] = 0;
	create("{\"firmware\":\"%s\",\"selector\":{\"labels\":[\"kitchen\"]}}", fw_b.id, err,
	       sizeof(err), &r);
	is_int(r, -EBUSY, "a selector whose devices are all busy: -EBUSY (%s)", err);
	is_int(gw_rollouts_cancel(m.rollouts, id2), 0, "cancel the selector rollout");
	ok(!gw_rollouts_device_busy(m.rollouts, d1->id), "device 1 is free again");

	/* Versions: what the poller reported decides. */
	gw_registry_set_reported(m.registry, d1, "image_state",
				 json_pack("{s:[{s:i, s:s, s:b}]}", "images", "slot", 0, "version",
					   "1.0.0", "active", 1));
	err[0] = 0;
	create("{\"firmware\":\"%s\",\"selector\":{\"version\":\">=1.0.1\"}}", fw_b.id, err,
	       sizeof(err), &r);
	is_int(r, -EINVAL, "version >=1.0.1 matches nothing (%s)", err);
	err[0] = 0;
	id2 = create("{\"firmware\":\"%s\",\"selector\":{\"version\":\"<1.2\",\"transport\":\"udp\","
		     "\"labels\":[\"cellar\"]}}", fw_b.id, err, sizeof(err), &r);
	is_int(r, 0, "version <1.2, udp, cellar matches device 1 (%s)", err);
	{
		_cleanup_(json_decrefp) json_t *v = rollout_view(id2);

		ok(json_is_object(json_object_get(v, "selector")) &&
		   json_is_string(json_object_get(json_object_get(v, "selector"), "version")),
		   "the view keeps the selector");
		is_int(jobs_count(v, "total"), 1, "one job");
	}
	is_int(gw_rollouts_cancel(m.rollouts, id2), 0, "cancel it");
	is_int(gw_rollouts_cancel(m.rollouts, id2), -EALREADY, "cancel again: -EALREADY");
	is_int(gw_rollouts_pause(m.rollouts, id2), -EINVAL, "pause a canceled rollout: -EINVAL");
	is_int(gw_rollouts_resume(m.rollouts, id2), -EINVAL, "resume a canceled rollout: -EINVAL");
	is_int(gw_rollouts_pause(m.rollouts, 4242), -ENOENT, "unknown rollout: -ENOENT");
	is_int(gw_rollouts_pause(m.rollouts, id), -EALREADY, "pause a paused rollout: -EALREADY");
	{
		json_t *v = NULL;

		is_int(gw_rollouts_get(m.rollouts, 4242, &v), -ENOENT, "get unknown: -ENOENT");
		is_int(gw_rollouts_job(m.rollouts, 4242, &v), -ENOENT, "job unknown: -ENOENT");
		is_int(gw_rollouts_jobs(m.rollouts, 0, NULL, "sleeping", &v), -EINVAL,
		       "jobs of an unknown state: -EINVAL");
	}
	spin(300);
	{
		_cleanup_(json_decrefp) json_t *v = rollout_view(id);

		is_str(json_string_value(json_object_get(v, "state")), "paused", "still paused");
		is_str(json_string_value(json_object_get(v, "name")), "first", "its name");
		is_int(jobs_count(v, "queued"), 1, "its job never started");
	}
	is_int(gw_rollouts_cancel(m.rollouts, id), 0, "cancel the paused rollout");
	sim_proc_stop(&p, SIGTERM, 5000);
	stop();
}

/* ---- upload-only, then test-confirm of an image already in slot 1 ---- */

static void test_upload_only_then_slot1(void)
{
	const char *args[] = { "--udp", "127.0.0.1:0", NULL };
	_cleanup_(json_decrefp) json_t *v = NULL, *job = NULL, *list = NULL;
	struct job_seen *js;
	struct sim_proc p;
	struct gw_device *d;
	unsigned long long writes;
	char err[256] = "", text[512], buf[128];
	int64_t id, jid;
	int r;

	start();
	if (!start_sim(&p, args)) {
		ok(false, "smp-sim starts");
		stop();
		return;
	}
	d = add_udp(&p, 0);
	writes = db_write_count(m.db);
	snprintf(text, sizeof(text),
		 "{\"firmware\":\"%%s\",\"devices\":[\"%s\"],\"strategy\":{\"mode\":\"upload-only\"}}",
		 d->id);
	id = create(text, fw_a.id, err, sizeof(err), &r);
	is_int(r, 0, "upload-only rollout created (%s)", err);
	ok(wait_rollout(id, "completed", 30000), "it completes");
	jid = job_id(id, 0);
	js = job_seen(jid);
	is_str(js->trail, "connecting>uploading>uploaded>succeeded", "queued, connecting, uploading, "
	       "uploaded, succeeded");
	is_str(js->reason, "the image waits in slot 1 (upload-only)", "its reason");
	ok(js->progress_events >= 1 && js->bytes_done == fw_a.size, "progress events up to the size");
	is_str(device_summary(d, &fw_a, buf, sizeof(buf)), "old running, new in slot 1",
	       "the device holds the image in slot 1, still runs the old one");
	ok(db_write_count(m.db) - writes < 40, "few writes for the whole rollout (%llu)",
	   db_write_count(m.db) - writes);

	v = rollout_view(id);
	is_str(json_string_value(json_object_get(v, "state")), "completed", "view: completed");
	is_int(jobs_count(v, "succeeded"), 1, "view: one succeeded");
	is_int(jobs_count(v, "total"), 1, "view: one job");
	is_int(json_integer_value(json_object_get(v, "bytes_done")), fw_a.size, "view: bytes done");
	is_int(json_integer_value(json_object_get(v, "bytes_total")), fw_a.size, "view: bytes total");
	ok(json_is_integer(json_object_get(v, "finished_at")), "view: finished_at");
	is_int(json_integer_value(json_object_get(v, "eta_s")), 0, "view: eta 0");
	is_str(json_string_value(json_object_get(json_object_get(v, "strategy"), "mode")),
	       "upload-only", "view: the strategy, normalised");
	ok(json_integer_value(json_object_get(json_object_get(v, "strategy"), "max_parallel")) == 4,
	   "view: defaults filled in");
	is_int(gw_rollouts_job(m.rollouts, jid, &job), 0, "the job with its history");
	is_int(json_array_size(json_object_get(job, "events")), 5, "five events");
	ok(json_is_null(json_object_get(json_array_get(json_object_get(job, "events"), 0), "from")),
	   "the first has no from");
	is_int(json_integer_value(json_object_get(job, "bytes_done")), fw_a.size,
	       "the job's bytes, persisted");
	ok(!gw_rollouts_device_busy(m.rollouts, d->id), "the device is free");
	is_int(gw_rollouts_list(m.rollouts, &list), 0, "list");
	is_int(json_array_size(list), 1, "one rollout listed");

	/* The image is in slot 1: a test-confirm rollout skips the upload. */
	snprintf(text, sizeof(text),
		 "{\"firmware\":\"%%s\",\"devices\":[\"%s\"],\"strategy\":{\"reboot_timeout\":20}}",
		 d->id);
	id = create(text, fw_a.id, err, sizeof(err), &r);
	is_int(r, 0, "test-confirm rollout created");
	ok(wait_rollout(id, "completed", 30000), "it completes");
	js = job_seen(job_id(id, 0));
	is_str(js->trail, "connecting>uploaded>testing>resetting>rebooting>verifying>confirming>succeeded",
	       "no upload: straight to uploaded");
	is_str(device_summary(d, &fw_a, buf, sizeof(buf)), "new running, confirmed",
	       "the device runs the new image, confirmed");
	sim_proc_stop(&p, SIGTERM, 5000);
	stop();
}

/* ---- test-confirm on five devices, max_parallel, already running ---- */

static void test_five_devices(void)
{
	const char *args[] = { "--udp", "127.0.0.1:0", "--count", "5", NULL };
	struct gw_device *d[5];
	struct sim_proc p;
	char err[256] = "", text[1024], buf[128];
	bool all = true, trails = true;
	int64_t id;
	int r;

	start();
	if (!start_sim(&p, args)) {
		ok(false, "smp-sim starts");
		stop();
		return;
	}
	for (unsigned i = 0; i < 5; i++)
		d[i] = add_udp(&p, i);
	snprintf(text, sizeof(text),
		 "{\"firmware\":\"%%s\",\"devices\":[\"%s\",\"%s\",\"%s\",\"%s\",\"%s\"],"
		 "\"strategy\":{\"max_parallel\":2,\"reboot_timeout\":20,\"backoff\":0.2}}",
		 d[0]->id, d[1]->id, d[2]->id, d[3]->id, d[4]->id);
	id = create(text, fw_a.id, err, sizeof(err), &r);
	is_int(r, 0, "rollout to five devices");
	ok(gw_rollouts_device_busy(m.rollouts, d[3]->id), "its devices are busy");
	ok(wait_rollout(id, "completed", 60000), "it completes");
	for (unsigned i = 0; i < 5; i++) {
		struct job_seen *js = job_seen(job_id(id, i));

		if (strcmp(device_summary(d[i], &fw_a, buf, sizeof(buf)), "new running, confirmed")) {
			tap_diag("device %u: %s", i, buf);
			all = false;
		}
		if (strcmp(js->trail, "connecting>uploading>uploaded>testing>resetting>rebooting>"
				      "verifying>confirming>succeeded")) {
			tap_diag("job %u: %s", i, js->trail);
			trails = false;
		}
	}
	ok(all, "every device runs the new image, confirmed");
	ok(trails, "every job went through every state");
	is_int(active_max, 2, "at most max_parallel jobs at once, and that many");
	{
		_cleanup_(json_decrefp) json_t *v = rollout_view(id);
		struct rollout_seen *rs = rollout_seen(id);

		is_int(jobs_count(v, "succeeded"), 5, "five succeeded");
		ok(rs->progress_events >= 1, "rollout.progress events (%u)", rs->progress_events);
		ok(rs->throughput_seen, "with a throughput");
		is_str(rs->reason, "5 succeeded, 0 failed, 0 rolled back, 0 canceled", "the summary");
	}
	/* The database agrees: no moment with more than two jobs between
	 * connecting and their end. */
	{
		uint64_t start_at[5], end_at[5];
		unsigned worst = 0;

		for (unsigned i = 0; i < 5; i++) {
			_cleanup_(json_decrefp) json_t *job = NULL;
			json_t *e;
			size_t k;

			gw_rollouts_job(m.rollouts, job_id(id, i), &job);
			start_at[i] = end_at[i] = 0;
			json_array_foreach(json_object_get(job, "events"), k, e) {
				const char *to = json_string_value(json_object_get(e, "to"));
				uint64_t at = (uint64_t)json_integer_value(json_object_get(e, "at"));

				if (!strcmp(to, "connecting") && !start_at[i])
					start_at[i] = at;
				if (!strcmp(to, "succeeded"))
					end_at[i] = at;
			}
		}
		for (unsigned i = 0; i < 5; i++) {
			unsigned n = 0;

			for (unsigned k = 0; k < 5; k++)
				if (start_at[k] <= start_at[i] && start_at[i] < end_at[k])
					n++;
			worst = MAX(worst, n);
		}
		ok(worst >= 1 && worst <= 2, "job_events: at most 2 at once (%u)", worst);
	}

	/* Everything runs the image already: a second rollout only looks. */
	n_jobs_seen = 0;
	id = create(text, fw_a.id, err, sizeof(err), &r);
	is_int(r, 0, "the same rollout again");
	ok(wait_rollout(id, "completed", 30000), "it completes");
	all = true;
	for (unsigned i = 0; i < 5; i++) {
		struct job_seen *js = job_seen(job_id(id, i));

		if (strcmp(js->trail, "connecting>succeeded") ||
		    strncmp(js->reason, "already running 1.2.3.4", 23)) {
			tap_diag("job %u: %s (%s)", i, js->trail, js->reason);
			all = false;
		}
	}
	ok(all, "every job: already running, nothing sent");
	sim_proc_stop(&p, SIGTERM, 5000);
	stop();
}

/* ---- confirm mode ---- */

static void test_confirm_mode(void)
{
	const char *args[] = { "--udp", "127.0.0.1:0", NULL };
	struct sim_proc p;
	struct gw_device *d;
	char err[256] = "", text[512], buf[128];
	int64_t id;
	int r;

	start();
	if (!start_sim(&p, args)) {
		ok(false, "smp-sim starts");
		stop();
		return;
	}
	d = add_udp(&p, 0);
	snprintf(text, sizeof(text),
		 "{\"firmware\":\"%%s\",\"devices\":[\"%s\"],"
		 "\"strategy\":{\"mode\":\"confirm\",\"reboot_timeout\":20}}", d->id);
	id = create(text, fw_b.id, err, sizeof(err), &r);
	is_int(r, 0, "confirm-mode rollout");
	ok(wait_rollout(id, "completed", 30000), "it completes");
	is_str(job_seen(job_id(id, 0))->trail,
	       "connecting>uploading>uploaded>testing>resetting>rebooting>verifying>succeeded",
	       "permanent swap: no confirming step");
	is_str(job_seen(job_id(id, 0))->reason, "the device runs 2.0.0, confirmed", "its reason");
	is_str(device_summary(d, &fw_b, buf, sizeof(buf)), "new running, confirmed",
	       "the device runs it, confirmed");
	sim_proc_stop(&p, SIGTERM, 5000);
	stop();
}

/* ---- a failing boot: MCUboot reverts ---- */

static void test_revert(void)
{
	const char *args[] = { "--udp", "127.0.0.1:0", "--fail-boot", NULL };
	struct sim_proc p;
	struct gw_device *d;
	struct job_seen *js;
	char err[256] = "", text[512], buf[128];
	int64_t id;
	int r;

	start();
	if (!start_sim(&p, args)) {
		ok(false, "smp-sim starts");
		stop();
		return;
	}
	d = add_udp(&p, 0);
	snprintf(text, sizeof(text),
		 "{\"firmware\":\"%%s\",\"devices\":[\"%s\"],\"strategy\":{\"reboot_timeout\":20}}",
		 d->id);
	id = create(text, fw_a.id, err, sizeof(err), &r);
	is_int(r, 0, "rollout to a device whose new image will not boot");
	ok(wait_rollout(id, "completed", 30000), "it completes");
	js = job_seen(job_id(id, 0));
	is_str(js->state, "rolled_back", "the job rolled back");
	ok(strstr(js->reason, "device reverted to ") && strstr(js->reason, "the new image did not boot"),
	   "with the reason (%s)", js->reason);
	ok(!strstr(js->trail, "confirming"), "nothing was confirmed (%s)", js->trail);
	is_str(device_summary(d, &fw_a, buf, sizeof(buf)), "old running, new in slot 1",
	       "the device runs its old image");
	is_str(rollout_seen(id)->reason, "0 succeeded, 0 failed, 1 rolled back, 0 canceled",
	       "the summary counts it");
	sim_proc_stop(&p, SIGTERM, 5000);
	stop();
}

/* ---- lossy link; a device that never answers ---- */

static void test_faults(void)
{
	const char *args[] = { "--udp", "127.0.0.1:0", "--drop-rate", "0.05", "--seed", "7", NULL };
	_cleanup_free_ char *dead = dead_address();
	_cleanup_(json_decrefp) json_t *job = NULL;
	struct sim_proc p;
	struct gw_device *d, *gone;
	struct job_seen *js;
	char err[256] = "", text[512], buf[128];
	int64_t id, id2;
	unsigned retries = 0;
	json_t *e;
	size_t i;
	int r;

	start();
	if (!start_sim(&p, args)) {
		ok(false, "smp-sim starts");
		stop();
		return;
	}
	d = add_udp(&p, 0);
	gone = add_device(dead, NULL);
	snprintf(text, sizeof(text),
		 "{\"firmware\":\"%%s\",\"devices\":[\"%s\"],\"strategy\":{\"reboot_timeout\":20,"
		 "\"retries\":8,\"backoff\":0.2}}", d->id);
	id = create(text, fw_a.id, err, sizeof(err), &r);
	is_int(r, 0, "rollout over a link that drops 5%% of frames");
	snprintf(text, sizeof(text),
		 "{\"firmware\":\"%%s\",\"devices\":[\"%s\"],\"strategy\":{\"retries\":2,"
		 "\"backoff\":0.1}}", gone->id);
	id2 = create(text, fw_a.id, err, sizeof(err), &r);
	is_int(r, 0, "rollout to a device that never answers");
	ok(wait_rollout(id, "completed", 60000), "the lossy one completes");
	js = job_seen(job_id(id, 0));
	is_str(js->state, "succeeded", "and succeeds (%s)", js->trail);
	is_str(device_summary(d, &fw_a, buf, sizeof(buf)), "new running, confirmed",
	       "the device runs the new image, confirmed");

	ok(wait_rollout(id2, "completed", 60000), "the dead one completes");
	js = job_seen(job_id(id2, 0));
	is_str(js->state, "failed", "its job failed");
	ok(strstr(js->reason, "gave up after 3 attempts") != NULL, "after its retries (%s)",
	   js->reason);
	is_int(gw_rollouts_job(m.rollouts, job_id(id2, 0), &job), 0, "its history");
	json_array_foreach(json_object_get(job, "events"), i, e)
		if (!strncmp(json_string_value(json_object_get(e, "reason")), "retry ", 6))
			retries++;
	is_int(retries, 2, "two retries recorded");
	is_int(json_integer_value(json_object_get(job, "attempt")), 2, "attempt 2");
	sim_proc_stop(&p, SIGTERM, 5000);
	stop();
}

/* ---- gates: canary, failure ratio; pause, resume, cancel, windows ---- */

static void test_canary(void)
{
	const char *bad_args[] = { "--udp", "127.0.0.1:0", "--fail-boot", "--count", "2", NULL };
	const char *good_args[] = { "--udp", "127.0.0.1:0", "--count", "3", NULL };
	struct sim_proc bad, good;
	struct gw_device *b[2], *g[3];
	char err[256] = "", text[1024], buf[128];
	int64_t id;
	int r;

	start();
	if (!start_sim(&bad, bad_args) || !start_sim(&good, good_args)) {
		ok(false, "smp-sim starts");
		stop();
		return;
	}
	b[0] = add_udp(&bad, 0);
	b[1] = add_udp(&bad, 1);
	for (unsigned i = 0; i < 3; i++)
		g[i] = add_udp(&good, i);

	/* A canary that rolls back pauses the rollout; the rest wait. */
	snprintf(text, sizeof(text),
		 "{\"firmware\":\"%%s\",\"devices\":[\"%s\",\"%s\",\"%s\"],"
		 "\"strategy\":{\"canary\":1,\"max_parallel\":3,\"reboot_timeout\":20}}",
		 b[0]->id, g[0]->id, g[1]->id);
	id = create(text, fw_a.id, err, sizeof(err), &r);
	is_int(r, 0, "rollout with one canary");
	ok(wait_rollout(id, "paused", 30000), "the canary's failure pauses it");
	ok(strstr(rollout_seen(id)->reason, "canary job") &&
	   strstr(rollout_seen(id)->reason, "rolled back"), "saying why (%s)",
	   rollout_seen(id)->reason);
	spin(500);
	is_str(job_seen(job_id(id, 1))->state, "queued", "the others never started");
	is_str(job_seen(job_id(id, 2))->state, "queued", "... none of them");
	is_str(device_summary(g[0], &fw_a, buf, sizeof(buf)), "old running", "nothing was sent to them");
	is_int(gw_rollouts_resume(m.rollouts, id), 0, "resume by hand: go on anyway");
	is_int(gw_rollouts_resume(m.rollouts, id), -EALREADY, "resume again: -EALREADY");
	ok(wait_rollout(id, "completed", 60000), "the rest run");
	is_str(job_seen(job_id(id, 1))->state, "succeeded", "job 2 succeeded");
	is_str(job_seen(job_id(id, 2))->state, "succeeded", "job 3 succeeded");

	/* Failure ratio: after two finished, one rolled back: 0.5 > 0.25. */
	snprintf(text, sizeof(text),
		 "{\"firmware\":\"%%s\",\"devices\":[\"%s\",\"%s\",\"%s\"],"
		 "\"strategy\":{\"max_parallel\":1,\"max_failure_ratio\":0.25,\"min_finished\":2,"
		 "\"reboot_timeout\":20}}",
		 b[1]->id, g[2]->id, b[0]->id);
	id = create(text, fw_b.id, err, sizeof(err), &r);
	is_int(r, 0, "rollout with a failure threshold");
	ok(wait_rollout(id, "paused", 60000), "the threshold pauses it");
	ok(strstr(rollout_seen(id)->reason, "failure ratio 0.50 (1 of 2 finished jobs"),
	   "saying why (%s)", rollout_seen(id)->reason);
	is_str(job_seen(job_id(id, 0))->state, "rolled_back", "the first rolled back");
	is_str(job_seen(job_id(id, 1))->state, "succeeded", "the second succeeded");
	is_str(job_seen(job_id(id, 2))->state, "queued", "the third never started");
	is_int(gw_rollouts_cancel(m.rollouts, id), 0, "cancel");
	ok(wait_rollout(id, "canceled", 1000), "canceled");
	is_str(job_seen(job_id(id, 2))->state, "canceled", "its queued job is canceled");
	ok(!gw_rollouts_device_busy(m.rollouts, b[0]->id), "its device is free");
	{
		_cleanup_(json_decrefp) json_t *v = rollout_view(id);

		is_int(jobs_count(v, "canceled"), 1, "view after the end: one canceled");
		is_int(jobs_count(v, "rolled_back"), 1, "one rolled back");
		ok(json_is_integer(json_object_get(v, "finished_at")), "finished_at");
	}
	sim_proc_stop(&bad, SIGTERM, 5000);
	sim_proc_stop(&good, SIGTERM, 5000);
	stop();
}

static bool job_uploading_some(void *userdata)
{
	struct job_seen *js = job_seen(*(int64_t *)userdata);

	return !strcmp(js->state, "uploading") && js->bytes_done > fw_a.size / 3;
}

static void test_pause_cancel_window(void)
{
	const char *args[] = { "--udp", "127.0.0.1:0", "--count", "3", "--bandwidth", "20000", NULL };
	struct sim_proc p;
	struct gw_device *d[3];
	char err[256] = "", text[1024], buf[128], window[32];
	time_t now = time(NULL) + 2 * 3600;
	struct tm tm;
	int64_t id, jid;
	int r;

	start();
	if (!start_sim(&p, args)) {
		ok(false, "smp-sim starts");
		stop();
		return;
	}
	for (unsigned i = 0; i < 3; i++)
		d[i] = add_udp(&p, i);

	/* Outside its window: waiting, nothing starts. */
	localtime_r(&now, &tm);
	snprintf(window, sizeof(window), "%02d:%02d-%02d:%02d", tm.tm_hour, tm.tm_min,
		 (tm.tm_hour + 1) % 24, tm.tm_min);
	snprintf(text, sizeof(text),
		 "{\"firmware\":\"%%s\",\"devices\":[\"%s\"],\"strategy\":{\"window\":\"%s\"}}",
		 d[0]->id, window);
	id = create(text, fw_a.id, err, sizeof(err), &r);
	is_int(r, 0, "rollout with a window two hours ahead (%s)", window);
	ok(wait_rollout(id, "waiting", 2000), "it waits");
	ok(strstr(rollout_seen(id)->reason, "outside the window"), "outside the window (%s)",
	   rollout_seen(id)->reason);
	spin(300);
	is_str(job_seen(job_id(id, 0))->state, "queued", "its job did not start");
	is_int(gw_rollouts_pause(m.rollouts, id), 0, "a waiting rollout can be paused");
	is_int(gw_rollouts_resume(m.rollouts, id), 0, "and resumed");
	ok(wait_rollout(id, "waiting", 2000), "back to waiting");
	is_int(gw_rollouts_cancel(m.rollouts, id), 0, "cancel it");

	/* Pause holds new jobs; the job under way finishes. */
	snprintf(text, sizeof(text),
		 "{\"firmware\":\"%%s\",\"devices\":[\"%s\",\"%s\"],"
		 "\"strategy\":{\"max_parallel\":1,\"mode\":\"upload-only\"}}", d[0]->id, d[1]->id);
	id = create(text, fw_a.id, err, sizeof(err), &r);
	is_int(r, 0, "rollout of two, one at a time");
	jid = job_id(id, 0);
	ok(run_until(job_uploading_some, &jid, 20000), "the first is uploading");
	is_int(gw_rollouts_pause(m.rollouts, id), 0, "pause");
	ok(wait_job(jid, "succeeded", 30000), "the job under way finishes");
	spin(500);
	is_str(job_seen(job_id(id, 1))->state, "queued", "the second does not start");
	is_int(gw_rollouts_resume(m.rollouts, id), 0, "resume");
	ok(wait_rollout(id, "completed", 30000), "then it runs");

	/* Cancel in the middle of an upload. */
	snprintf(text, sizeof(text),
		 "{\"firmware\":\"%%s\",\"devices\":[\"%s\",\"%s\"],\"strategy\":{\"max_parallel\":1}}",
		 d[2]->id, d[0]->id);
	id = create(text, fw_b.id, err, sizeof(err), &r);
	is_int(r, 0, "rollout to cancel");
	jid = job_id(id, 0);
	ok(run_until(job_uploading_some, &jid, 20000), "its first job is uploading");
	is_int(gw_rollouts_cancel(m.rollouts, id), 0, "cancel");
	is_str(rollout_seen(id)->state, "canceled", "the rollout is canceled");
	is_str(job_seen(jid)->state, "canceled", "the job under way is canceled");
	is_str(job_seen(job_id(id, 1))->state, "canceled", "the queued one too");
	ok(!gw_rollouts_active(m.rollouts), "nothing works on a device any more");
	spin(300);
	is_str(device_summary(d[2], &fw_b, buf, sizeof(buf)), "old running",
	       "the device keeps its image, nothing confirmed");
	sim_proc_stop(&p, SIGTERM, 5000);
	stop();
}

/* ---- restarts: the engine freed mid-flight and made again on the same database ---- */

static bool progressed(void *userdata)
{
	struct job_seen *js = job_seen(*(int64_t *)userdata);

	return js->bytes_done > fw_a.size / 3;
}

struct get_client {
	bool done;
	int error;
	struct smp_client *c;
};

static void on_client(struct gw_devices *ds, int error, struct smp_client *c, void *userdata)
{
	struct get_client *g = userdata;

	g->done = true;
	g->error = error;
	if (c)
		g->c = smp_client_ref(c);
}

static struct smp_client *get_client(struct gw_device *d)
{
	struct get_client g = { 0 };

	if (gw_devices_get_client(m.devices, d, on_client, &g, NULL, NULL) < 0)
		return NULL;
	sim_test_run_until(m.event, &g.done, 10000);
	return g.c;
}

static void test_resume_upload(void)
{
	const char *args[] = { "--udp", "127.0.0.1:0", "--bandwidth", "25000", NULL };
	struct smp_client_stats before, after;
	struct sim_proc p;
	struct gw_device *d;
	struct smp_client *c;
	char err[256] = "", text[512], buf[128];
	bool resumed = false;
	int64_t id, jid;
	uint64_t at, sent;
	int r;

	start();
	if (!start_sim(&p, args)) {
		ok(false, "smp-sim starts");
		stop();
		return;
	}
	d = add_udp(&p, 0);
	/* Our own hold keeps the link, and the counters of its client, across the restart. */
	gw_devices_hold(m.devices, d);
	c = get_client(d);
	ok(c != NULL, "the device's client");
	snprintf(text, sizeof(text),
		 "{\"firmware\":\"%%s\",\"devices\":[\"%s\"],\"strategy\":{\"mode\":\"upload-only\"}}",
		 d->id);
	id = create(text, fw_a.id, err, sizeof(err), &r);
	is_int(r, 0, "upload-only rollout over a 25 kB/s link");
	jid = job_id(id, 0);
	ok(run_until(progressed, &jid, 30000), "a third of the image is up");
	at = job_seen(jid)->bytes_done;
	m.rollouts = gw_rollouts_free(m.rollouts);
	spin(500); /* what was in flight lands on the device */
	if (!c) {
		sim_proc_stop(&p, SIGTERM, 5000);
		stop();
		return;
	}
	smp_client_get_stats(c, &before);
	{
		_cleanup_(json_decrefp) json_t *jobs = NULL;

		start_engine();
		is_int(gw_rollouts_jobs(m.rollouts, id, NULL, NULL, &jobs), 0, "jobs after the restart");
		is_str(json_string_value(json_object_get(json_array_get(jobs, 0), "state")),
		       "uploading", "the job was left uploading");
		ok(json_integer_value(json_object_get(json_array_get(jobs, 0), "bytes_done")) > 0,
		   "with its progress persisted");
	}
	ok(wait_rollout(id, "completed", 30000), "the rollout completes after the restart");
	is_str(job_seen(jid)->state, "succeeded", "the job succeeded");
	{
		_cleanup_(json_decrefp) json_t *job = NULL;
		json_t *e;
		size_t i;

		gw_rollouts_job(m.rollouts, jid, &job);
		json_array_foreach(json_object_get(job, "events"), i, e)
			if (strstr(json_string_value(json_object_get(e, "reason")), "resumed at offset"))
				resumed = true;
	}
	ok(resumed, "the device's offset was the starting point");
	smp_client_get_stats(c, &after);
	sent = after.bytes_sent - before.bytes_sent;
	ok(sent < fw_a.size - at + (fw_a.size - at) / 10 + 1024,
	   "bytes sent after the restart (%llu) cover only what was missing (%llu of %llu)",
	   (unsigned long long)sent, (unsigned long long)(fw_a.size - at),
	   (unsigned long long)fw_a.size);
	is_str(device_summary(d, &fw_a, buf, sizeof(buf)), "old running, new in slot 1",
	       "the device holds the whole image");
	gw_devices_release(m.devices, d);
	smp_client_unref(c);
	sim_proc_stop(&p, SIGTERM, 5000);
	stop();
}

struct trail_has {
	int64_t job;
	const char *state;
};

static bool trail_has(void *userdata)
{
	struct trail_has *t = userdata;
	struct job_seen *js = job_seen(t->job);
	char want[32];

	snprintf(want, sizeof(want), "%s", t->state);
	return strstr(js->trail, want) != NULL ||
	       (strcmp(js->state, "queued") != 0 && !state_active(js->state));
}

/* The engine stops right after a job entered each state in turn, and starts
 * again from the database: every job ends well, none twice. */
static void test_restart_states(void)
{
	static const char *const states[] = { "connecting", "uploading", "uploaded", "testing",
					      "resetting", "rebooting", "verifying", "confirming" };
	const char *args[] = { "--udp", "127.0.0.1:0", "--count", "9", NULL };
	struct sim_proc p;
	struct gw_device *d[9];
	char err[256] = "", text[512], buf[128];
	int r;

	start();
	if (!start_sim(&p, args)) {
		ok(false, "smp-sim starts");
		stop();
		return;
	}
	for (unsigned i = 0; i < 9; i++)
		d[i] = add_udp(&p, i);
	for (unsigned i = 0; i < ELEMENTSOF(states); i++) {
		_cleanup_(json_decrefp) json_t *jobs = NULL;
		struct trail_has t;
		int64_t id;

		snprintf(text, sizeof(text),
			 "{\"firmware\":\"%%s\",\"devices\":[\"%s\"],\"strategy\":{"
			 "\"reboot_timeout\":20,\"backoff\":0.2}}", d[i]->id);
		id = create(text, fw_a.id, err, sizeof(err), &r);
		t.job = job_id(id, 0);
		t.state = states[i];
		ok(run_until(trail_has, &t, 30000) && strstr(job_seen(t.job)->trail, states[i]),
		   "job reaches %s (%s)", states[i], job_seen(t.job)->trail);
		m.rollouts = gw_rollouts_free(m.rollouts);
		spin(100);
		start_engine();
		ok(wait_rollout(id, "completed", 40000), "stopped at %s (%s), it completes after the "
		   "restart", states[i], job_seen(t.job)->trail);
		is_str(job_seen(t.job)->state, "succeeded", "... succeeded (%s)",
		       job_seen(t.job)->reason);
		is_str(device_summary(d[i], &fw_a, buf, sizeof(buf)), "new running, confirmed",
		       "... the device runs the new image, confirmed");
		gw_rollouts_jobs(m.rollouts, 0, d[i]->id, NULL, &jobs);
		is_int(json_array_size(jobs), 1, "... one job for the device");
		if (strcmp(states[i], "resetting") == 0) {
			_cleanup_(json_decrefp) json_t *job = NULL;
			bool restarted = false, again = false;
			json_t *e;
			size_t k;

			/* Stopped before the reset went out: the device is looked at,
			 * found not rebooted, and reset then. */
			gw_rollouts_job(m.rollouts, t.job, &job);
			json_array_foreach(json_object_get(job, "events"), k, e) {
				const char *why = json_string_value(json_object_get(e, "reason"));

				restarted |= strstr(why, "restarted during the reset") != NULL;
				again |= strstr(why, "did not reboot") != NULL;
			}
			ok(restarted && again, "... re-checked after the restart, then reset");
			if (!(restarted && again))
				json_array_foreach(json_object_get(job, "events"), k, e)
					tap_diag("%s -> %s: %s",
						 json_string_value(json_object_get(e, "from")),
						 json_string_value(json_object_get(e, "to")),
						 json_string_value(json_object_get(e, "reason")));
		}
	}
	/* Stopped while confirming, and the device resets meanwhile: MCUboot
	 * goes back to the old image. It booted the new one, so it is tested
	 * again rather than called a failed boot. */
	{
		_cleanup_free_ char *line = NULL;
		struct trail_has t;
		int64_t id;

		snprintf(text, sizeof(text),
			 "{\"firmware\":\"%%s\",\"devices\":[\"%s\"],\"strategy\":{"
			 "\"reboot_timeout\":20,\"backoff\":0.2}}", d[8]->id);
		id = create(text, fw_a.id, err, sizeof(err), &r);
		t.job = job_id(id, 0);
		t.state = "confirming";
		ok(run_until(trail_has, &t, 30000) && !strcmp(job_seen(t.job)->state, "confirming"),
		   "job reaches confirming");
		m.rollouts = gw_rollouts_free(m.rollouts);
		while ((line = sim_proc_wait_line(&p, "BOOT", 0)))
			free(line);
		ok(sim_proc_command(&p, "reset 8", 5000) == 0, "the device resets before it was "
		   "confirmed");
		line = sim_proc_wait_line(&p, "BOOT", 10000);
		ok(line && strstr(line, "version=1.0.0.8"), "it boots its old image (%s)", line);
		is_str(device_summary(d[8], &fw_a, buf, sizeof(buf)), "old running, new in slot 1",
		       "the new image waits in slot 1");
		start_engine();
		ok(wait_rollout(id, "completed", 40000), "it completes after the restart");
		is_str(job_seen(t.job)->state, "succeeded", "... succeeded (%s)",
		       job_seen(t.job)->trail);
		ok(strstr(job_seen(t.job)->trail, "confirming>connecting>uploaded>testing") != NULL,
		   "tested again, without an upload");
		is_str(device_summary(d[8], &fw_a, buf, sizeof(buf)), "new running, confirmed",
		       "the device runs the new image, confirmed");
	}
	sim_proc_stop(&p, SIGTERM, 5000);
	stop();
}

/* SIGTERM sets m->stopping: nothing new starts, the answers in flight are
 * recorded, and the next start goes on from there. */
static void test_stopping(void)
{
	const char *args[] = { "--udp", "127.0.0.1:0", "--count", "2", NULL };
	_cleanup_(json_decrefp) json_t *jobs = NULL;
	struct sim_proc p;
	struct gw_device *d[2];
	char err[256] = "", text[512], buf[128], state[16];
	struct trail_has t;
	int64_t id;
	int r;

	start();
	if (!start_sim(&p, args)) {
		ok(false, "smp-sim starts");
		stop();
		return;
	}
	d[0] = add_udp(&p, 0);
	d[1] = add_udp(&p, 1);
	is_int(m.n_stop_hooks, 1, "the engine registered its stop hook");
	snprintf(text, sizeof(text),
		 "{\"firmware\":\"%%s\",\"devices\":[\"%s\",\"%s\"],\"strategy\":{"
		 "\"max_parallel\":1,\"reboot_timeout\":20}}", d[0]->id, d[1]->id);
	id = create(text, fw_a.id, err, sizeof(err), &r);
	t.job = job_id(id, 0);
	t.state = "testing";
	ok(run_until(trail_has, &t, 30000), "the first job reaches testing");
	m.stopping = true;
	spin(1500);
	snprintf(state, sizeof(state), "%s", job_seen(t.job)->state);
	ok(!strcmp(state, "testing") || !strcmp(state, "resetting"),
	   "stopping: the answer in flight is recorded, nothing more (%s)", state);
	is_str(job_seen(job_id(id, 1))->state, "queued", "the second job does not start");
	gw_rollouts_jobs(m.rollouts, id, NULL, NULL, &jobs);
	is_str(json_string_value(json_object_get(json_array_get(jobs, 0), "state")), state,
	       "the database says the same");
	m.rollouts = gw_rollouts_free(m.rollouts);
	is_int(m.n_stop_hooks, 0, "the hook is gone with the engine");
	m.stopping = false;
	start_engine();
	ok(wait_rollout(id, "completed", 60000), "the next start completes the rollout");
	is_str(job_seen(t.job)->state, "succeeded", "the first job succeeded");
	is_str(job_seen(job_id(id, 1))->state, "succeeded", "the second too");
	is_str(device_summary(d[0], &fw_a, buf, sizeof(buf)), "new running, confirmed",
	       "the device runs the new image, confirmed");
	sim_proc_stop(&p, SIGTERM, 5000);
	stop();
}

/* [rollouts] max_jobs: one job at a time over two rollouts, taking turns. */
static void test_fairness(void)
{
	const char *args[] = { "--udp", "127.0.0.1:0", "--count", "6", NULL };
	struct sim_proc p;
	struct gw_device *d[6];
	char err[256] = "", text[512];
	int64_t a, b;
	bool turns = true;
	int r;

	start();
	m.rollouts = gw_rollouts_free(m.rollouts);
	m.config.rollouts_max_jobs = 1;
	start_engine();
	if (!start_sim(&p, args)) {
		ok(false, "smp-sim starts");
		stop();
		return;
	}
	for (unsigned i = 0; i < 6; i++)
		d[i] = add_udp(&p, i);
	snprintf(text, sizeof(text),
		 "{\"firmware\":\"%%s\",\"devices\":[\"%s\",\"%s\",\"%s\",\"%s\"],"
		 "\"strategy\":{\"mode\":\"upload-only\",\"max_parallel\":4}}",
		 d[0]->id, d[1]->id, d[2]->id, d[3]->id);
	a = create(text, fw_a.id, err, sizeof(err), &r);
	snprintf(text, sizeof(text),
		 "{\"firmware\":\"%%s\",\"devices\":[\"%s\",\"%s\"],"
		 "\"strategy\":{\"mode\":\"upload-only\",\"max_parallel\":4}}",
		 d[4]->id, d[5]->id);
	b = create(text, fw_b.id, err, sizeof(err), &r);
	ok(a > 0 && b > 0, "two rollouts under a global cap of one job");
	ok(wait_rollout(a, "completed", 60000) && wait_rollout(b, "completed", 60000),
	   "both complete");
	is_int(active_max, 1, "never more than one job at once");
	is_int(n_starts, 6, "six jobs started");
	for (size_t i = 0; i < 4 && i + 1 < n_starts; i++)
		if (starts[i] == starts[i + 1])
			turns = false;
	ok(turns, "the rollouts took turns while both had work (%lld %lld %lld %lld %lld %lld)",
	   (long long)starts[0], (long long)starts[1], (long long)starts[2],
	   (long long)starts[3], (long long)starts[4], (long long)starts[5]);
	sim_proc_stop(&p, SIGTERM, 5000);
	stop();
}

/* A thousand jobs: creating, viewing, restarting and canceling stay cheap. */
static void test_scale(void)
{
	_cleanup_(json_decrefp) json_t *req = NULL, *jobs = NULL, *v = NULL;
	char err[256] = "", addr[32];
	long long t0, t_create, t_view, t_load, t_cancel;
	unsigned long long writes;
	int64_t id = 0;
	json_t *list;
	int r;

	start();
	list = json_array();
	for (unsigned i = 0; i < 1000; i++) {
		struct gw_device *d;

		snprintf(addr, sizeof(addr), "127.0.0.%u:%u", 2 + i / 250, 20000 + i);
		d = add_device(addr, NULL);
		json_array_append_new(list, json_string(d->id));
	}
	req = json_pack("{s:s, s:o, s:{s:i}}", "firmware", fw_a.id, "devices", list, "strategy",
			"max_parallel", 50);
	writes = db_write_count(m.db);
	t0 = sim_test_now_ms();
	r = gw_rollouts_create(m.rollouts, req, &id, err, sizeof(err));
	is_int(r, 0, "a rollout of 1000 devices (%s)", err);
	is_int(gw_rollouts_pause(m.rollouts, id), 0, "paused before anything starts");
	t_create = sim_test_now_ms() - t0;
	is_int((long long)(db_write_count(m.db) - writes), 1 + 2000 + 1,
	       "one row for it, two per job, one for the pause");
	t0 = sim_test_now_ms();
	is_int(gw_rollouts_get(m.rollouts, id, &v), 0, "its view");
	is_int(jobs_count(v, "queued"), 1000, "1000 queued");
	is_int(gw_rollouts_jobs(m.rollouts, id, NULL, NULL, &jobs), 0, "its jobs");
	is_int(json_array_size(jobs), 1000, "1000 listed");
	t_view = sim_test_now_ms() - t0;
	t0 = sim_test_now_ms();
	m.rollouts = gw_rollouts_free(m.rollouts);
	start_engine();
	t_load = sim_test_now_ms() - t0;
	ok(gw_rollouts_device_busy(m.rollouts, json_string_value(json_array_get(list, 999))),
	   "reloaded: the last device is busy");
	spin(200);
	ok(!gw_rollouts_active(m.rollouts), "still paused after the reload: nothing runs");
	t0 = sim_test_now_ms();
	is_int(gw_rollouts_cancel(m.rollouts, id), 0, "cancel");
	t_cancel = sim_test_now_ms() - t0;
	json_decref(v);
	v = rollout_view(id);
	is_int(jobs_count(v, "canceled"), 1000, "1000 canceled");
	ok(!gw_rollouts_device_busy(m.rollouts, json_string_value(json_array_get(list, 0))),
	   "the devices are free");
	ok(t_create < 3000 && t_view < 2000 && t_load < 2000 && t_cancel < 3000,
	   "create %lld ms, views %lld ms, reload %lld ms, cancel %lld ms", t_create, t_view,
	   t_load, t_cancel);
	stop();
}

int main(void)
{
	if (!mkdtemp(dir))
		abort();
	gw_log_setup("warning", NULL);
	test_strategy();
	test_windows();
	test_refused();
	test_upload_only_then_slot1();
	test_five_devices();
	test_confirm_mode();
	test_revert();
	test_faults();
	test_canary();
	test_pause_cancel_window();
	test_resume_upload();
	test_restart_states();
	test_stopping();
	test_fairness();
	test_scale();
	{
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			tap_diag("could not remove %s", dir);
	}
	return tap_done();
}
