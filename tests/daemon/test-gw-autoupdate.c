/* test-gw-autoupdate: auto-update rules: parsing, views, persistence, and their rollouts on smp-sim devices */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/gw-autoupdate.h"
#include "daemon/gw-devices.h"
#include "daemon/gw-events.h"
#include "daemon/gw-firmware.h"
#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-poller.h"
#include "daemon/gw-registry.h"
#include "daemon/gw-rollouts.h"
#include "db/db-auto-updates.h"
#include "db/db.h"
#include "lib/macro.h"
#include "tests/sim/sim-image.h"
#include "tests/sim/sim-test.h"
#include "tests/tap.h"

#define START_MS 10000
#define ROLLOUT_MS 60000

static char dir[] = "/tmp/smpgw-test-autoupdate-XXXXXX";
static struct gw_manager m;

struct fw {
	char id[65];
	char version[32];
};
/* app 1.1.0, 1.2.0, 0.9.0; other 3.0.0 (smp-sim's factory images are 1.0.0+i). */
static struct fw fw_110, fw_120, fw_090, fw_other;

/* ---- the manager, as smpgwd builds it ---- */

static void add_firmware(const char *name, const char *version, struct fw *ret)
{
	_cleanup_(json_decrefp) json_t *info = NULL;
	_cleanup_free_ uint8_t *data = NULL;
	struct smp_mcuboot_version v;
	char ident[64], err[256] = "";
	size_t len = 0;
	int fd;

	snprintf(ident, sizeof(ident), "%s-%s", name, version);
	fd = memfd_create("image", MFD_CLOEXEC);
	if (fd < 0 || smp_mcuboot_version_parse(version, &v) < 0 ||
	    sim_image_build(ident, &v, 4096, &data, &len) < 0 ||
	    write(fd, data, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET) != 0 ||
	    gw_firmware_add_fd(m.firmware, fd, name, &info, err, sizeof(err)) < 0) {
		fprintf(stderr, "cannot add %s %s: %s\n", name, version, err);
		abort();
	}
	close(fd);
	snprintf(ret->id, sizeof(ret->id), "%s", json_string_value(json_object_get(info, "id")));
	snprintf(ret->version, sizeof(ret->version), "%s",
		 json_string_value(json_object_get(info, "version")));
}

static void start(const char *name)
{
	char state[256], path[300], err[256] = "";

	memset(&m, 0, sizeof(m));
	snprintf(state, sizeof(state), "%s/%s", dir, name);
	snprintf(path, sizeof(path), "%s/smpgw.db", state);
	if (sd_event_new(&m.event) < 0 || gw_config_init(&m.config) < 0 ||
	    gw_config_set(&m.config, "daemon", "state_dir", state) < 0 ||
	    gw_config_set(&m.config, "poll", "interval", "0") < 0 || mkdir(state, 0700) < 0)
		abort();
	if (db_open(path, &m.db, err, sizeof(err)) < 0) {
		fprintf(stderr, "db_open: %s\n", err);
		abort();
	}
	m.config.timeout_ms = 1000;
	m.config.upload_first_timeout_ms = 5000;
	if (gw_registry_new(&m, &m.registry) < 0 || gw_events_new(&m, 0, &m.events) < 0 ||
	    gw_devices_new(&m, &m.devices) < 0 || gw_firmware_new(&m, &m.firmware) < 0 ||
	    gw_poller_new(&m, &m.poller) < 0 || gw_rollouts_new(&m, &m.rollouts) < 0 ||
	    gw_autoupdate_new(&m, &m.autoupdate) < 0)
		abort();
}

static void stop(void)
{
	m.autoupdate = gw_autoupdate_free(m.autoupdate);
	m.rollouts = gw_rollouts_free(m.rollouts);
	m.poller = gw_poller_free(m.poller);
	m.devices = gw_devices_free(m.devices);
	m.firmware = gw_firmware_free(m.firmware);
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
		if (sd_event_run(m.event, (uint64_t)MIN(left, 100) * 1000) < 0)
			return false;
	}
	return true;
}

/* Runs the loop for ms: to see that something does not happen. */
static void spin(unsigned ms)
{
	bool never = false;

	sim_test_run_until(m.event, &never, ms);
}

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);

	if (!j) {
		fprintf(stderr, "bad JSON in the test: %s: %s\n", text, e.text);
		abort();
	}
	return j;
}

/* Creates a rule from JSON text; 0 when refused (r and err say why). */
static int64_t rule(const char *text, int *ret, char *err, size_t errlen)
{
	_cleanup_(json_decrefp) json_t *req = parse(text);
	int64_t id = 0;
	int r;

	err[0] = 0;
	r = gw_autoupdate_create(m.autoupdate, req, &id, err, errlen);
	if (ret)
		*ret = r;
	return r < 0 ? 0 : id;
}

static int patch(int64_t id, const char *text, char *err, size_t errlen)
{
	_cleanup_(json_decrefp) json_t *p = parse(text);

	err[0] = 0;
	return gw_autoupdate_update(m.autoupdate, id, p, err, errlen);
}

static json_t *view(int64_t id)
{
	json_t *j = NULL;

	if (gw_autoupdate_get(m.autoupdate, id, &j) < 0)
		return json_object();
	return j;
}

static const char *target_id(json_t *v)
{
	return json_string_value(json_object_get(json_object_get(v, "target"), "id"));
}

/* ---- rules without devices ---- */

static void test_rules(void)
{
	static const struct {
		const char *body;
		const char *what;
	} bad[] = {
		{ "[]", "not an object" },
		{ "{\"colour\": 1}", "an unknown key" },
		{ "{\"name\": 5}", "a name that is not text" },
		{ "{\"name\": \"a\\u0001b\"}", "a name with a control character" },
		{ "{\"enabled\": \"yes\"}", "enabled not a boolean" },
		{ "{\"allow_downgrade\": 1}", "allow_downgrade not a boolean" },
		{ "{\"selector\": []}", "a selector that is not an object" },
		{ "{\"selector\": {\"version\": \"<2\"}}", "a selector key rules do not take" },
		{ "{\"selector\": {\"labels\": \"kitchen\"}}", "labels not a list" },
		{ "{\"selector\": {\"labels\": [1]}}", "a label that is not text" },
		{ "{\"selector\": {\"transport\": \"can\"}}", "an unknown transport" },
		{ "{\"selector\": {\"hardware\": 7}}", "hardware not text" },
		{ "{\"strategy\": 3}", "a strategy that is not an object" },
		{ "{\"strategy\": [], \"window\": \"01:00-02:00\"}",
		  "a strategy that is not an object, with a window" },
		{ "{\"strategy\": {\"mode\": \"yolo\"}}", "an unknown mode" },
		{ "{\"strategy\": {\"max_parallel\": 0}}", "max_parallel 0" },
		{ "{\"strategy\": {\"window\": \"01:00-02:00\"}}", "a window inside the strategy" },
		{ "{\"window\": \"1:00-2:00\"}", "a malformed window" },
		{ "{\"window\": \"05:00-05:00\"}", "an empty window" },
		{ "{\"firmware\": 12}", "firmware not text" },
		{ "{\"image_name\": 12}", "image_name not text" },
	};
	char err[256], text[512];
	int64_t id, fixed, any, app, none;
	json_t *v;
	int r;

	start("rules");
	add_firmware("app", "1.1.0", &fw_110);
	add_firmware("app", "1.2.0", &fw_120);
	add_firmware("app", "0.9.0", &fw_090);
	add_firmware("other", "3.0.0", &fw_other);

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		id = rule(bad[i].body, &r, err, sizeof(err));
		ok(id == 0 && r == -EINVAL && err[0], "refused: %s (%s)", bad[i].what, err);
	}
	snprintf(text, sizeof(text), "{\"firmware\": \"%s\", \"image_name\": \"app\"}", fw_110.id);
	id = rule(text, &r, err, sizeof(err));
	ok(id == 0 && r == -EINVAL && strstr(err, "image_name"),
	   "refused: image_name with a fixed firmware (%s)", err);
	id = rule("{\"firmware\": \"0000000000000000000000000000000000000000000000000000000000000000\"}",
		  &r, err, sizeof(err));
	ok(id == 0 && r == -ENXIO && strstr(err, "not a stored image"),
	   "an unknown firmware: -ENXIO (%s)", err);
	{
		char name[200];

		memset(name, 'n', 129);
		name[129] = 0;
		snprintf(text, sizeof(text), "{\"name\": \"%s\"}", name);
		ok(rule(text, &r, err, sizeof(err)) == 0 && r == -EINVAL,
		   "refused: a name of 129 bytes");
	}

	/* Targets: the newest version among the images the rule may take. */
	any = rule("{\"name\": \"any\"}", &r, err, sizeof(err));
	ok(any > 0, "a rule with every default");
	v = view(any);
	ok(json_is_true(json_object_get(v, "enabled")) &&
	   json_is_false(json_object_get(v, "allow_downgrade")) &&
	   json_is_null(json_object_get(v, "firmware")) &&
	   json_is_null(json_object_get(v, "image_name")) &&
	   json_is_null(json_object_get(v, "window")) &&
	   json_is_object(json_object_get(v, "selector")) &&
	   json_object_size(json_object_get(v, "selector")) == 0 &&
	   json_integer_value(json_object_get(v, "created_at")) > 0,
	   "its view: enabled, no downgrade, no firmware, no window, empty selector");
	is_str(target_id(v), fw_other.id, "firmware null, any name: the newest version (3.0.0)");
	json_decref(v);
	app = rule("{\"name\": \"app\", \"image_name\": \"ap?\", \"window\": \"22:00-04:00\", "
		   "\"strategy\": {\"mode\": \"confirm\", \"max_parallel\": 2}, "
		   "\"selector\": {\"labels\": [\"kitchen\"], \"transport\": \"udp\", "
		   "\"hardware\": \"nrf52840dk/*\", \"node\": \"sim-*\", \"name\": \"*\"}}",
		   &r, err, sizeof(err));
	ok(app > 0, "a rule with a selector, an image name glob and a window (%s)", err);
	v = view(app);
	is_str(target_id(v), fw_120.id, "image_name \"ap?\": the newest app image (1.2.0)");
	is_str(json_string_value(json_object_get(v, "window")), "22:00-04:00", "the window");
	ok(json_object_get(json_object_get(v, "strategy"), "window") == NULL &&
	   json_integer_value(json_object_get(json_object_get(v, "strategy"), "max_parallel")) == 2,
	   "the strategy as given, without the window");
	json_decref(v);
	none = rule("{\"image_name\": \"zz*\"}", &r, err, sizeof(err));
	v = view(none);
	ok(none > 0 && json_is_null(json_object_get(v, "target")),
	   "an image name that matches nothing: target null");
	json_decref(v);
	snprintf(text, sizeof(text), "{\"firmware\": \"%s\"}", fw_090.id);
	fixed = rule(text, &r, err, sizeof(err));
	v = view(fixed);
	is_str(target_id(v), fw_090.id, "a fixed firmware is the target, older or not");
	json_decref(v);
	is_int(gw_firmware_remove(m.firmware, fw_090.id), -EBUSY,
	       "the image of an enabled rule cannot be removed");

	/* Changes. */
	is_int(patch(fixed, "{\"enabled\": false, \"name\": \"pinned\"}", err, sizeof(err)), 0,
	       "disable and rename a rule");
	is_int(gw_firmware_remove(m.firmware, fw_090.id), 0,
	       "... then its image can be removed");
	v = view(fixed);
	ok(json_is_null(json_object_get(v, "target")) &&
	   json_is_false(json_object_get(v, "enabled")) &&
	   !strcmp(json_string_value(json_object_get(v, "name")), "pinned") &&
	   !strcmp(json_string_value(json_object_get(v, "firmware")), fw_090.id),
	   "a removed image is no target; the rule keeps naming it");
	json_decref(v);
	snprintf(text, sizeof(text), "{\"firmware\": \"%s\"}", fw_110.id);
	is_int(patch(app, text, err, sizeof(err)), 0, "a fixed firmware replaces an image name");
	v = view(app);
	ok(json_is_null(json_object_get(v, "image_name")) && !strcmp(target_id(v), fw_110.id),
	   "... image_name cleared, the fixed image is the target");
	json_decref(v);
	is_int(patch(app, "{\"image_name\": \"app\"}", err, sizeof(err)), -EINVAL,
	       "an image name with the fixed firmware still there: refused");
	is_int(patch(app, "{\"firmware\": null, \"image_name\": \"app\"}", err, sizeof(err)), 0,
	       "back to the newest app image");
	is_int(patch(app, "{\"firmware\": \"1234\"}", err, sizeof(err)), -ENXIO,
	       "an unknown firmware: -ENXIO");
	is_int(patch(app, "{\"strategy\": {\"retries\": -1}}", err, sizeof(err)), -EINVAL,
	       "a bad strategy: -EINVAL (%s)", err);
	is_int(patch(999, "{}", err, sizeof(err)), -ENOENT, "an unknown rule: -ENOENT");
	is_int(patch(app, "{\"window\": null}", err, sizeof(err)), 0, "the window removed");
	v = view(app);
	ok(json_is_null(json_object_get(v, "window")) && !strcmp(target_id(v), fw_120.id) &&
	   json_integer_value(json_object_get(json_object_get(v, "strategy"), "max_parallel")) == 2,
	   "... the rest kept");
	json_decref(v);

	/* Persisted: a new module (a restart) shows the same rules. */
	{
		_cleanup_(json_decrefp) json_t *before = NULL, *after = NULL;

		gw_autoupdate_list(m.autoupdate, &before);
		m.autoupdate = gw_autoupdate_free(m.autoupdate);
		ok(gw_autoupdate_new(&m, &m.autoupdate) == 0, "the rules load again");
		gw_autoupdate_list(m.autoupdate, &after);
		ok(json_array_size(before) == 4 && json_equal(before, after),
		   "the same four rules after the reload");
	}
	is_int(gw_autoupdate_remove(m.autoupdate, none), 0, "delete a rule");
	is_int(gw_autoupdate_remove(m.autoupdate, none), -ENOENT, "... twice: -ENOENT");
	v = NULL;
	is_int(gw_autoupdate_get(m.autoupdate, none, &v), -ENOENT, "... it is gone");
	{
		_cleanup_(json_decrefp) json_t *list = NULL;

		gw_autoupdate_list(m.autoupdate, &list);
		is_int(json_array_size(list), 3, "three rules left");
	}
	stop();
}

/* ---- rules at work on smp-sim devices ---- */

static json_t *rollouts_of_rule(int64_t rule_id)
{
	_cleanup_(json_decrefp) json_t *all = NULL;
	json_t *out = json_array(), *e;
	size_t i;

	if (gw_rollouts_list(m.rollouts, &all) < 0 || !out)
		abort();
	json_array_foreach(all, i, e)
		if (json_integer_value(json_object_get(e, "auto_update")) == rule_id)
			json_array_append(out, e);
	return out;
}

struct want {
	int64_t rule;
	size_t count;
};

/* The rule has count rollouts, all final. */
static bool rule_done(void *userdata)
{
	struct want *w = userdata;
	_cleanup_(json_decrefp) json_t *list = rollouts_of_rule(w->rule);
	json_t *e;
	size_t i;

	if (json_array_size(list) != w->count)
		return false;
	json_array_foreach(list, i, e) {
		const char *s = json_string_value(json_object_get(e, "state"));

		if (strcmp(s, "completed") && strcmp(s, "canceled") && strcmp(s, "failed"))
			return false;
	}
	return true;
}

static bool wait_rule(int64_t rule_id, size_t count)
{
	struct want w = { rule_id, count };
	bool r = run_until(rule_done, &w, ROLLOUT_MS);

	if (!r) {
		_cleanup_(json_decrefp) json_t *list = rollouts_of_rule(rule_id);
		_cleanup_free_ char *text = json_dumps(list, JSON_COMPACT);

		tap_diag("rule %lld: %s", (long long)rule_id, text);
	}
	return r;
}

/* The devices of the rollout's jobs, sorted, and their final states. */
static char *jobs_text(int64_t rollout, char *buf, size_t size)
{
	_cleanup_(json_decrefp) json_t *jobs = NULL;
	json_t *e;
	size_t i, o = 0;

	buf[0] = 0;
	if (gw_rollouts_jobs(m.rollouts, rollout, NULL, NULL, &jobs) < 0)
		return buf;
	json_array_foreach(jobs, i, e)
		o += (size_t)snprintf(buf + o, o < size ? size - o : 0, "%s%s=%s", i ? " " : "",
				      json_string_value(json_object_get(e, "device")),
				      json_string_value(json_object_get(e, "state")));
	return buf;
}

static size_t count_rule(int64_t rule_id)
{
	_cleanup_(json_decrefp) json_t *list = rollouts_of_rule(rule_id);

	return json_array_size(list);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "id=state ..." of the devices in id order, as a rule's rollout lists them. */
static const char *expect(char *buf, size_t size, const char *state, struct gw_device **devs,
			  size_t n)
{
	const char *ids[8];
	size_t o = 0;

	for (size_t i = 0; i < n; i++)
		ids[i] = devs[i]->id;
	qsort(ids, n, sizeof(ids[0]), cmp_str);
	buf[0] = 0;
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(buf + o, size - o, "%s%s=%s", i ? " " : "", ids[i], state);
	return buf;
}

static int64_t rollout_id_at(int64_t rule_id, size_t i)
{
	_cleanup_(json_decrefp) json_t *list = rollouts_of_rule(rule_id);

	/* gw_rollouts_list() is newest first. */
	return json_integer_value(
		json_object_get(json_array_get(list, json_array_size(list) - 1 - i), "id"));
}

static struct gw_device *add_device(struct sim_proc *p, unsigned i, const char *labels)
{
	_cleanup_free_ char *address = sim_proc_ready(p, "udp", i, NULL);
	char identity[128];
	struct gw_device_spec spec = {
		.transport = GW_TRANSPORT_UDP,
		.identity = identity,
		.labels = labels,
		.source = GW_SOURCE_API,
	};
	struct gw_device *d = NULL;

	if (!address)
		abort();
	spec.address = address;
	snprintf(identity, sizeof(identity), "udp:%s", address);
	if (gw_registry_upsert(m.registry, &spec, &d) < 0)
		abort();
	/* What the poller's probe does for a device that answers. */
	gw_registry_set_online(m.registry, d, true);
	return d;
}

static const char *running_version(struct gw_device *d)
{
	json_t *st = gw_registry_get_reported(d, "image_state", NULL), *e;
	size_t i;

	json_array_foreach(json_object_get(st, "images"), i, e)
		if (json_is_true(json_object_get(e, "active")))
			return json_string_value(json_object_get(e, "version"));
	return "";
}

static bool runs_120(void *userdata)
{
	return strcmp(running_version(userdata), "1.2.0") == 0;
}

static void test_devices(void)
{
	static const char *const fast_args[] = { "--udp", "127.0.0.1:0", "--count", "3",
						 "--reboot-delay", "200", NULL };
	static const char *const bad_args[] = { "--udp", "127.0.0.1:0", "--name-prefix", "bad-",
						"--fail-boot", "--reboot-delay", "200", NULL };
	struct sim_proc fast = { 0 }, bad = { 0 };
	struct gw_device *d0, *d1, *d2, *df;
	char err[256], text[512], buf[1024];
	int64_t r1, r2, r3, ro;
	int r;

	start("devices");
	add_firmware("app", "1.1.0", &fw_110);
	add_firmware("app", "1.2.0", &fw_120);
	add_firmware("other", "3.0.0", &fw_other);
	if (!ok(sim_proc_start(&fast, START_MS, fast_args) == 0 &&
		sim_proc_start(&bad, START_MS, bad_args) == 0, "smp-sim started"))
		return;

	/* The newest "app" image to the kitchen's nRF52840 boards. */
	r1 = rule("{\"name\": \"kitchen\", \"image_name\": \"app\", \"selector\": {\"labels\": "
		  "[\"kitchen\"], \"hardware\": \"nrf52840dk/*\", \"node\": \"sim-*\"}, "
		  "\"strategy\": {\"max_parallel\": 4, \"backoff\": 0.2}}", &r, err, sizeof(err));
	ok(r1 > 0, "rule 1: the newest app image, kitchen, nRF52840 (%s)", err);
	d0 = add_device(&fast, 0, "kitchen");
	d1 = add_device(&fast, 1, "kitchen,floor-1");
	d2 = add_device(&fast, 2, "hall");
	ok(wait_rule(r1, 1), "the two kitchen devices get one rollout, which ends");
	ro = rollout_id_at(r1, 0);
	{
		_cleanup_(json_decrefp) json_t *v = NULL;

		char name[64];

		snprintf(name, sizeof(name), "auto-update %lld: kitchen", (long long)r1);
		gw_rollouts_get(m.rollouts, ro, &v);
		ok(json_integer_value(json_object_get(v, "auto_update")) == r1 &&
		   !strcmp(json_string_value(json_object_get(v, "firmware")), fw_120.id) &&
		   !strcmp(json_string_value(json_object_get(v, "name")), name) &&
		   !strcmp(json_string_value(json_object_get(v, "state")), "completed") &&
		   json_is_true(json_object_get(json_object_get(v, "strategy"), "upgrade")) &&
		   json_integer_value(json_object_get(json_object_get(v, "strategy"),
						      "max_parallel")) == 4,
		   "rollout %lld: rule 1's, app 1.2.0, named after the rule, completed; the rule's "
		   "strategy with \"upgrade\" (the device refuses an older image)", (long long)ro);
	}
	is_str(jobs_text(ro, buf, sizeof(buf)),
	       expect(text, sizeof(text), "succeeded", (struct gw_device *[]){ d0, d1 }, 2),
	       "jobs for d0 and d1 only, succeeded");
	ok(gw_registry_get_reported(d2, "image_state", NULL) == NULL,
	   "the hall device is not even asked: its labels rule it out");

	/* After the job, the device is asked again: it runs 1.2.0 and gets nothing more. */
	spin(2500);
	is_str(running_version(d0), "1.2.0", "d0 reported its new image after the job");
	is_int(count_rule(r1), 1, "no second rollout for the updated devices");

	/* A device that matches later (new labels) gets its own rollout. */
	{
		json_t *labels = json_pack("[s]", "kitchen");

		gw_registry_set_labels(m.registry, d2, labels);
		json_decref(labels);
	}
	ok(wait_rule(r1, 2), "d2, labelled kitchen later, gets a rollout of its own");
	snprintf(text, sizeof(text), "%s=succeeded", d2->id);
	is_str(jobs_text(rollout_id_at(r1, 1), buf, sizeof(buf)), text, "... for d2 alone");
	ok(run_until(runs_120, d2, 10000), "d2 reported 1.2.0 after its job");

	/* No downgrade, unless the rule says so. */
	is_int(patch(r1, "{\"enabled\": false}", err, sizeof(err)), 0, "rule 1 disabled");
	snprintf(text, sizeof(text), "{\"name\": \"pin\", \"firmware\": \"%s\", "
		 "\"selector\": {\"labels\": [\"kitchen\"]}, \"strategy\": {\"backoff\": 0.2}}",
		 fw_110.id);
	r2 = rule(text, &r, err, sizeof(err));
	ok(r2 > 0, "rule 2: app 1.1.0 pinned, kitchen");
	spin(2500);
	is_int(count_rule(r2), 0, "devices on 1.2.0 are not downgraded");
	is_int(patch(r2, "{\"allow_downgrade\": true}", err, sizeof(err)), 0,
	       "rule 2 allows the downgrade");
	ok(wait_rule(r2, 1), "... one rollout for the three devices, which ends");
	is_str(jobs_text(rollout_id_at(r2, 0), buf, sizeof(buf)),
	       expect(text, sizeof(text), "succeeded", (struct gw_device *[]){ d0, d1, d2 }, 3),
	       "... all succeeded");
	spin(2500);
	is_str(running_version(d1), "1.1.0", "d1 runs 1.1.0");
	is_int(count_rule(r2), 1, "no more rollouts for rule 2");
	is_int(gw_autoupdate_remove(m.autoupdate, r2), 0, "rule 2 deleted");

	/* A device whose new image crashes: one try per firmware, no loop. */
	snprintf(text, sizeof(text), "{\"name\": \"attic\", \"firmware\": \"%s\", "
		 "\"selector\": {\"labels\": [\"attic\"]}, \"strategy\": {\"backoff\": 0.2}}",
		 fw_120.id);
	r3 = rule(text, &r, err, sizeof(err));
	df = add_device(&bad, 0, "attic");
	ok(wait_rule(r3, 1), "rule 3: the attic device gets a rollout");
	snprintf(text, sizeof(text), "%s=rolled_back", df->id);
	is_str(jobs_text(rollout_id_at(r3, 0), buf, sizeof(buf)), text, "its job rolled back");
	/* Everything that makes a rule look again: a new report, coming back online, an evaluation. */
	gw_registry_set_online(m.registry, df, false);
	gw_registry_set_online(m.registry, df, true);
	gw_autoupdate_evaluate(m.autoupdate);
	spin(3000);
	is_int(count_rule(r3), 1,
	       "the failed device is not given the same image again");
	snprintf(text, sizeof(text), "{\"firmware\": \"%s\"}", fw_110.id);
	is_int(patch(r3, text, err, sizeof(err)), 0, "rule 3 now names app 1.1.0");
	ok(wait_rule(r3, 2), "... another image: one more try");
	is_str(jobs_text(rollout_id_at(r3, 1), buf, sizeof(buf)),
	       (snprintf(text, sizeof(text), "%s=rolled_back", df->id), text),
	       "... which rolls back too");
	spin(3000);
	is_int(count_rule(r3), 2, "and is not tried again");

	/* Deleting a rule keeps its rollouts, without it. */
	is_int(gw_autoupdate_remove(m.autoupdate, r3), 0, "rule 3 deleted");
	{
		_cleanup_(json_decrefp) json_t *jobs = NULL;

		gw_rollouts_jobs(m.rollouts, 0, df->id, NULL, &jobs);
		is_int(json_array_size(jobs), 2, "its two jobs stay in the history");
	}
	stop();
	sim_proc_stop(&fast, SIGTERM, 5000);
	sim_proc_stop(&bad, SIGTERM, 5000);
}

/* ---- the table itself ---- */

static void test_db(void)
{
	char path[300], err[256] = "", state[32] = "";
	struct db_auto_updates *da = NULL;
	struct db *db = NULL;
	uint64_t at = 0;
	int64_t id = 0;
	struct db_auto_update row = {
		.name = "x",
		.selector = "{}",
		.strategy = "{}",
		.enabled = true,
	};

	snprintf(path, sizeof(path), "%s/db.sqlite", dir);
	if (db_open(path, &db, err, sizeof(err)) < 0 || db_auto_updates_new(db, &da) < 0)
		abort();
	row.firmware = "feed";
	is_int(db_auto_updates_insert(da, &row, 1000, &id), -EEXIST,
	       "a rule naming a firmware row that does not exist: -EEXIST");
	row.firmware = NULL;
	row.image_name = "app*";
	is_int(db_auto_updates_insert(da, &row, 1000, &id), 0, "insert");
	row.id = id + 1;
	is_int(db_auto_updates_update(da, &row, 2000), -ENOENT, "update of an unknown rule");
	is_int(db_auto_updates_delete(da, id + 1), -ENOENT, "delete of an unknown rule");
	is_int(db_auto_updates_last_job(da, id, "dev", "feed", state, sizeof(state), &at), 0,
	       "no job: 0");
	is_int(db_auto_updates_last_job(da, id, NULL, "feed", state, sizeof(state), &at), -EINVAL,
	       "no device: -EINVAL");
	is_int(db_auto_updates_delete(da, id), 0, "delete");
	db_auto_updates_free(da);
	db_close(db);
}

int main(void)
{
	if (!mkdtemp(dir))
		abort();
	gw_log_setup("warning", getenv("TEST_DEBUG"));
	test_db();
	test_rules();
	test_devices();
	{
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			tap_diag("could not remove %s", dir);
	}
	return tap_done();
}
