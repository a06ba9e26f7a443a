/* gw-autoupdate: standing update rules that start a rollout for every matching device running an older image */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/gw-autoupdate.h"
#include "daemon/gw-events.h"
#include "daemon/gw-firmware.h"
#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-poller.h"
#include "daemon/gw-registry.h"
#include "daemon/gw-rollouts.h"
#include "db/db-auto-updates.h"
#include "lib/macro.h"

#define LOG "autoupdate"
#define GW_AUTOUPDATE_NAME_MAX 128
#define GW_AUTOUPDATE_GLOB_MAX 256
#define GW_AUTOUPDATE_LABELS_MAX 32
#define GW_AUTOUPDATE_ROLLOUT_NAME_MAX 128 /* what gw_rollouts_create() takes */
/* Device events within this much of each other make one batch: one
 * rollout per rule for the devices of a poll round, not one each. */
#define GW_AUTOUPDATE_BATCH_USEC (1000ULL * 1000)

struct gw_autoupdate_rule {
	int64_t id;
	char *name;
	json_t *selector;   /* object */
	char *firmware;     /* NULL: the newest matching image_name */
	char *image_name;   /* NULL: any */
	json_t *strategy;   /* object, "window" included when the rule has one */
	bool allow_downgrade;
	bool enabled;
	uint64_t created_at_ms;
	uint64_t updated_at_ms;
};

struct gw_autoupdate {
	struct gw_manager *m;
	struct db_auto_updates *da;
	struct gw_autoupdate_rule *rules; /* by id */
	size_t n_rules;
	struct gw_events_sub *sub;
	bool listening;
	sd_event_source *timer;
	uint64_t due_usec;  /* the timer's time when armed, 0 when not */
	bool all;           /* evaluate every device */
	json_t *dirty;      /* {device id: true}: the devices to evaluate */
	json_t *asked;      /* {device id: true}: polled for what a rule needs, no answer yet */
	json_t *stale;      /* {device id: true}: a job ended since its last image state */
};

/* What a rule installs now. */
struct gw_autoupdate_target {
	char *id;
	char *version;
	char *image_hash;
	char *name;
};

static void gw_autoupdate_target_clear(struct gw_autoupdate_target *t)
{
	free(t->id);
	free(t->version);
	free(t->image_hash);
	free(t->name);
	*t = (struct gw_autoupdate_target){ 0 };
}

static void gw_autoupdate_rule_clear(struct gw_autoupdate_rule *rule)
{
	free(rule->name);
	json_decref(rule->selector);
	free(rule->firmware);
	free(rule->image_name);
	json_decref(rule->strategy);
	*rule = (struct gw_autoupdate_rule){ 0 };
}

static struct gw_autoupdate_rule *gw_autoupdate_find(struct gw_autoupdate *au, int64_t id)
{
	for (size_t i = 0; i < au->n_rules; i++)
		if (au->rules[i].id == id)
			return &au->rules[i];
	return NULL;
}

/* ---- parsing a rule ---- */

static bool gw_autoupdate_text_ok(const json_t *v, size_t max)
{
	const char *s = json_string_value(v);

	if (!s || json_string_length(v) > max || strlen(s) != json_string_length(v))
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static int gw_autoupdate_check_selector(const json_t *sel, char *err, size_t errlen)
{
	const char *key;
	json_t *v, *e;
	size_t i;

	if (!json_is_object(sel)) {
		snprintf(err, errlen, "selector must be an object");
		return -EINVAL;
	}
	json_object_foreach((json_t *)sel, key, v) {
		if (strcmp(key, "labels") == 0) {
			if (!json_is_array(v) || json_array_size(v) > GW_AUTOUPDATE_LABELS_MAX) {
				snprintf(err, errlen, "selector.labels must be a list of at most %d "
					 "labels", GW_AUTOUPDATE_LABELS_MAX);
				return -EINVAL;
			}
			json_array_foreach(v, i, e)
				if (!gw_autoupdate_text_ok(e, GW_AUTOUPDATE_GLOB_MAX)) {
					snprintf(err, errlen, "selector.labels must hold strings");
					return -EINVAL;
				}
		} else if (strcmp(key, "transport") == 0) {
			if (!json_is_string(v) || gw_transport_from_string(json_string_value(v)) < 0) {
				snprintf(err, errlen,
					 "selector.transport must be \"udp\", \"serial\" or \"ble\"");
				return -EINVAL;
			}
		} else if (strcmp(key, "name") == 0 || strcmp(key, "hardware") == 0 ||
			   strcmp(key, "node") == 0) {
			if (!gw_autoupdate_text_ok(v, GW_AUTOUPDATE_GLOB_MAX)) {
				snprintf(err, errlen, "selector.%s must be a glob of at most %d bytes",
					 key, GW_AUTOUPDATE_GLOB_MAX);
				return -EINVAL;
			}
		} else {
			snprintf(err, errlen, "unknown selector key \"%.64s\" (labels, transport, "
				 "name, hardware, node)", key);
			return -EINVAL;
		}
	}
	return 0;
}

/* The stored image's description, or -ENXIO with a sentence. */
static int gw_autoupdate_firmware_info(struct gw_autoupdate *au, const char *id, json_t **ret,
				       char *err, size_t errlen)
{
	int r;

	r = au->m->firmware ? gw_firmware_get(au->m->firmware, id, ret) : -ENOENT;
	if (r == -ENOENT) {
		snprintf(err, errlen, "firmware \"%.80s\" is not a stored image", id);
		return -ENXIO;
	}
	return r;
}

/* Fills rule (cleared by the caller on failure) from a request object:
 * every key optional, unknown ones refused. */
static int gw_autoupdate_parse(struct gw_autoupdate *au, const json_t *req,
			       struct gw_autoupdate_rule *rule, char *err, size_t errlen)
{
	static const char *const keys[] = { "name", "enabled", "selector", "firmware",
					    "image_name", "strategy", "window",
					    "allow_downgrade" };
	json_t *v;
	const char *key;
	int r;

	if (!json_is_object(req)) {
		snprintf(err, errlen, "the rule must be a JSON object");
		return -EINVAL;
	}
	json_object_foreach((json_t *)req, key, v) {
		size_t i;

		for (i = 0; i < ELEMENTSOF(keys); i++)
			if (strcmp(key, keys[i]) == 0)
				break;
		if (i == ELEMENTSOF(keys)) {
			snprintf(err, errlen, "unknown key \"%.64s\"", key);
			return -EINVAL;
		}
	}

	v = json_object_get(req, "name");
	if (v && !gw_autoupdate_text_ok(v, GW_AUTOUPDATE_NAME_MAX)) {
		snprintf(err, errlen, "name must be text of at most %d bytes",
			 GW_AUTOUPDATE_NAME_MAX);
		return -EINVAL;
	}
	rule->name = strdup(v ? json_string_value(v) : "");

	v = json_object_get(req, "enabled");
	if (v && !json_is_boolean(v)) {
		snprintf(err, errlen, "enabled must be true or false");
		return -EINVAL;
	}
	rule->enabled = !v || json_is_true(v);
	v = json_object_get(req, "allow_downgrade");
	if (v && !json_is_boolean(v)) {
		snprintf(err, errlen, "allow_downgrade must be true or false");
		return -EINVAL;
	}
	rule->allow_downgrade = json_is_true(v);

	v = json_object_get(req, "selector");
	if (v && !json_is_null(v)) {
		r = gw_autoupdate_check_selector(v, err, errlen);
		if (r < 0)
			return r;
		rule->selector = json_deep_copy(v);
	} else
		rule->selector = json_object();

	v = json_object_get(req, "strategy");
	if (v && !json_is_null(v)) {
		if (!json_is_object(v)) {
			snprintf(err, errlen, "strategy must be an object");
			return -EINVAL;
		}
		if (json_object_get(v, "window")) {
			snprintf(err, errlen, "give the window as the rule's \"window\", not in "
				 "its strategy");
			return -EINVAL;
		}
		rule->strategy = json_deep_copy(v);
	} else
		rule->strategy = json_object();
	if (!rule->name || !rule->selector || !rule->strategy)
		return -ENOMEM;
	v = json_object_get(req, "window");
	if (v && !json_is_null(v) &&
	    json_object_set(rule->strategy, "window", v) < 0)
		return -ENOMEM;
	r = gw_rollouts_check_strategy(rule->strategy, err, errlen);
	if (r < 0) {
		if (json_object_get(rule->strategy, "window") && strstr(err, "window"))
			snprintf(err, errlen, "window must be \"HH:MM-HH:MM\" (local time, two "
				 "different times) or null");
		return r;
	}

	v = json_object_get(req, "firmware");
	if (v && !json_is_null(v)) {
		_cleanup_(json_decrefp) json_t *info = NULL;

		if (!json_is_string(v)) {
			snprintf(err, errlen, "firmware must be the id of a stored image, or null");
			return -EINVAL;
		}
		r = gw_autoupdate_firmware_info(au, json_string_value(v), &info, err, errlen);
		if (r < 0)
			return r;
		rule->firmware = strdup(json_string_value(json_object_get(info, "id")));
		if (!rule->firmware)
			return -ENOMEM;
	}
	v = json_object_get(req, "image_name");
	if (v && !json_is_null(v)) {
		if (rule->firmware) {
			snprintf(err, errlen, "image_name chooses among stored images: it goes "
				 "with \"firmware\": null only");
			return -EINVAL;
		}
		if (!gw_autoupdate_text_ok(v, GW_AUTOUPDATE_GLOB_MAX)) {
			snprintf(err, errlen, "image_name must be a glob of at most %d bytes",
				 GW_AUTOUPDATE_GLOB_MAX);
			return -EINVAL;
		}
		rule->image_name = strdup(json_string_value(v));
		if (!rule->image_name)
			return -ENOMEM;
	}
	return 0;
}

/* ---- persistence ---- */

static int gw_autoupdate_write(struct gw_autoupdate *au, const struct gw_autoupdate_rule *rule,
			       bool insert, uint64_t now, int64_t *ret_id)
{
	_cleanup_free_ char *selector = json_dumps(rule->selector, JSON_COMPACT);
	_cleanup_free_ char *strategy = json_dumps(rule->strategy, JSON_COMPACT);
	struct db_auto_update row = {
		.id = rule->id,
		.name = rule->name,
		.selector = selector,
		.firmware = rule->firmware,
		.image_name = rule->image_name,
		.strategy = strategy,
		.allow_downgrade = rule->allow_downgrade,
		.enabled = rule->enabled,
	};

	if (!selector || !strategy)
		return -ENOMEM;
	if (insert)
		return db_auto_updates_insert(au->da, &row, now, ret_id);
	return db_auto_updates_update(au->da, &row, now);
}

static int gw_autoupdate_load_row(const struct db_auto_update *row, void *userdata)
{
	struct gw_autoupdate *au = userdata;
	struct gw_autoupdate_rule rule = {
		.id = row->id,
		.allow_downgrade = row->allow_downgrade,
		.enabled = row->enabled,
		.created_at_ms = row->created_at_ms,
		.updated_at_ms = row->updated_at_ms,
	};
	struct gw_autoupdate_rule *rules;

	rule.name = strdup(row->name);
	rule.selector = json_loads(row->selector, 0, NULL);
	rule.strategy = json_loads(row->strategy, 0, NULL);
	rule.firmware = row->firmware ? strdup(row->firmware) : NULL;
	rule.image_name = row->image_name ? strdup(row->image_name) : NULL;
	/* Written by this module only: a row that does not parse was damaged
	 * by hand; it stays in the table, disabled here. */
	if (!json_is_object(rule.selector) || !json_is_object(rule.strategy)) {
		gw_warn(LOG, "rule %lld: its stored selector or strategy is not a JSON object, "
			"ignoring the rule", (long long)row->id);
		gw_autoupdate_rule_clear(&rule);
		return 0;
	}
	if (!rule.name || (row->firmware && !rule.firmware) ||
	    (row->image_name && !rule.image_name))
		goto oom;
	rules = reallocarray(au->rules, au->n_rules + 1, sizeof(*rules));
	if (!rules)
		goto oom;
	au->rules = rules;
	au->rules[au->n_rules++] = rule;
	return 0;
oom:
	gw_autoupdate_rule_clear(&rule);
	return -ENOMEM;
}

/* ---- what a rule installs, and on which devices ---- */

/* The rule's image now; 0 with t->id NULL when there is none. */
static int gw_autoupdate_resolve(struct gw_autoupdate *au, const struct gw_autoupdate_rule *rule,
				 struct gw_autoupdate_target *t)
{
	_cleanup_(json_decrefp) json_t *list = NULL;
	json_t *best = NULL, *e;
	size_t i;
	int r;

	*t = (struct gw_autoupdate_target){ 0 };
	if (!au->m->firmware)
		return 0;
	if (rule->firmware) {
		/* A removed image (firmware.deleted_at) is not served any more. */
		r = gw_firmware_get(au->m->firmware, rule->firmware, &best);
		if (r == -ENOENT)
			return 0;
		if (r < 0)
			return r;
		list = best;
	} else {
		r = gw_firmware_list(au->m->firmware, &list);
		if (r < 0)
			return r;
		/* Newest first: among equal versions the first seen (the newest upload) stays. */
		json_array_foreach(list, i, e) {
			const char *name = json_string_value(json_object_get(e, "name"));
			int c;

			if (rule->image_name && fnmatch(rule->image_name, name ? name : "", 0) != 0)
				continue;
			if (best && (gw_firmware_version_compare(
					     json_string_value(json_object_get(e, "version")),
					     json_string_value(json_object_get(best, "version")), &c) < 0 ||
				     c <= 0))
				continue;
			best = e;
		}
		if (!best)
			return 0;
	}
	t->id = strdup(json_string_value(json_object_get(best, "id")));
	t->version = strdup(json_string_value(json_object_get(best, "version")));
	t->image_hash = strdup(json_string_value(json_object_get(best, "image_hash")));
	t->name = strdup(json_string_value(json_object_get(best, "name")) ?: "");
	if (!t->id || !t->version || !t->image_hash || !t->name) {
		gw_autoupdate_target_clear(t);
		return -ENOMEM;
	}
	return 0;
}

/* Field n (node name) or i (hardware platform) of an OS info "a" output:
 * "s n r v b m p i o", where b (the build date) holds spaces. */
static bool gw_autoupdate_info_field(struct gw_device *d, char which, char *buf, size_t size)
{
	const char *out = json_string_value(
		json_object_get(gw_registry_get_reported(d, "info", NULL), "output"));
	const char *w[64];
	size_t len[64], n = 0;

	if (!out)
		return false;
	for (const char *p = out; *p && n < ELEMENTSOF(w);) {
		size_t k;

		p += strspn(p, " ");
		k = strcspn(p, " ");
		if (k == 0)
			break;
		w[n] = p;
		len[n++] = k;
		p += k;
	}
	/* Nine fields at least, the build date one word or more. */
	if (n < 9)
		return false;
	if (which == 'n')
		snprintf(buf, size, "%.*s", (int)len[1], w[1]);
	else
		snprintf(buf, size, "%.*s", (int)len[n - 2], w[n - 2]);
	return true;
}

enum gw_autoupdate_match {
	GW_MATCH_NO,
	GW_MATCH_YES,
	GW_MATCH_UNKNOWN, /* needs the OS info, not reported yet */
};

static enum gw_autoupdate_match gw_autoupdate_match(const json_t *sel, struct gw_device *d)
{
	const char *transport = json_string_value(json_object_get(sel, "transport"));
	const char *name = json_string_value(json_object_get(sel, "name"));
	const char *info_keys[] = { "hardware", "node" };
	json_t *want, *have;
	size_t i, k;

	if (transport && strcmp(transport, gw_transport_to_string(d->transport)) != 0)
		return GW_MATCH_NO;
	if (name && fnmatch(name, d->name ? d->name : "", 0) != 0)
		return GW_MATCH_NO;
	json_array_foreach(json_object_get(sel, "labels"), i, want) {
		bool found = false;

		json_array_foreach(d->labels, k, have)
			if (json_equal(want, have)) {
				found = true;
				break;
			}
		if (!found)
			return GW_MATCH_NO;
	}
	for (i = 0; i < ELEMENTSOF(info_keys); i++) {
		const char *glob = json_string_value(json_object_get(sel, info_keys[i]));
		char field[256];

		if (!glob)
			continue;
		if (!gw_autoupdate_info_field(d, i == 0 ? 'i' : 'n', field, sizeof(field)))
			return GW_MATCH_UNKNOWN;
		if (fnmatch(glob, field, 0) != 0)
			return GW_MATCH_NO;
	}
	return GW_MATCH_YES;
}

/* Image 0's running image: the active entry, else what slot 0 holds. */
static json_t *gw_autoupdate_running(struct gw_device *d, uint64_t *ret_at)
{
	json_t *st = gw_registry_get_reported(d, "image_state", ret_at), *e, *found = NULL;
	size_t i;

	json_array_foreach(json_object_get(st, "images"), i, e) {
		if (json_integer_value(json_object_get(e, "image")) != 0)
			continue;
		if (json_is_true(json_object_get(e, "active")))
			return e;
		if (!found && json_integer_value(json_object_get(e, "slot")) == 0)
			found = e;
	}
	return found;
}

/* Whether the running image (version, hash) should become the target. */
static bool gw_autoupdate_wants(const struct gw_autoupdate_target *t, json_t *running,
				bool allow_downgrade)
{
	const char *version = json_string_value(json_object_get(running, "version"));
	const char *hash = json_string_value(json_object_get(running, "hash"));
	int c;

	if (hash && strcasecmp(hash, t->image_hash) == 0)
		return false;
	if (!version || gw_firmware_version_compare(t->version, version, &c) < 0)
		return false;
	if (c > 0)
		return true;
	/* Older, or the same version built differently: only a rule that
	 * pins its image may go there. */
	return allow_downgrade && hash;
}

/* A poll that brings what the rules need: once per device until it answers. */
static void gw_autoupdate_ask(struct gw_autoupdate *au, struct gw_device *d)
{
	int r;

	if (!au->m->poller || json_object_get(au->asked, d->id))
		return;
	r = gw_poller_poll_now(au->m->poller, d);
	if (r < 0 && r != -EBUSY)
		return;
	if (json_object_set_new(au->asked, d->id, json_true()) < 0)
		gw_debug(LOG, "%s: out of memory, may be asked again", d->id);
}

static bool gw_autoupdate_upload_only(const struct gw_autoupdate_rule *rule)
{
	const char *mode = json_string_value(json_object_get(rule->strategy, "mode"));

	return mode && strcmp(mode, "upload-only") == 0;
}

/* Whether what the rule's rollouts did on the device keeps it from getting
 * the target again. */
static bool gw_autoupdate_done_before(struct gw_autoupdate *au,
				      const struct gw_autoupdate_rule *rule, struct gw_device *d,
				      const struct gw_autoupdate_target *t)
{
	char state[32];
	uint64_t at = 0;
	int r;

	r = db_auto_updates_last_job(au->da, rule->id, d->id, t->id, state, sizeof(state), &at);
	if (r < 0) {
		/* Not knowing must not start the loop this check is here to stop. */
		gw_log_errno(LOG_WARNING, r, LOG, "rule %lld, %s: cannot read its past jobs, "
			     "skipping the device: %m", (long long)rule->id, d->id);
		return true;
	}
	if (r == 0)
		return false;
	if (strcmp(state, "succeeded") != 0)
		return true; /* failed, rolled_back, canceled: never again; or still going */
	if (gw_autoupdate_upload_only(rule))
		return true;
	/* It ran the image after that job (gw_autoupdate_stale() saw a newer
	 * report): someone went back since, and the rule stands. */
	return false;
}

/* Whether the image state (reported at reported_at) predates the end of the
 * device's last job, which may have changed the image: then the device is
 * asked again and judged on its answer. */
static bool gw_autoupdate_stale(struct gw_autoupdate *au, struct gw_device *d,
				uint64_t reported_at)
{
	uint64_t at = 0;
	int r;

	r = db_auto_updates_device_job_time(au->da, d->id, &at);
	if (r < 0) {
		gw_log_errno(LOG_WARNING, r, LOG, "%s: cannot read its jobs, skipping the device: %m",
			     d->id);
		return true;
	}
	/* The same millisecond: the report came after the transition (a job's
	 * end is followed by a poll); a report racing the transition within a
	 * millisecond is caught by au->stale while this process runs. */
	if (json_object_get(au->stale, d->id) == NULL && (r == 0 || reported_at >= at))
		return false;
	gw_autoupdate_ask(au, d);
	return true;
}

/* The rule's verdict on one device: appended to devices when it gets the target. */
static int gw_autoupdate_consider(struct gw_autoupdate *au, const struct gw_autoupdate_rule *rule,
				  const struct gw_autoupdate_target *t, struct gw_device *d,
				  json_t *devices)
{
	enum gw_autoupdate_match match;
	const char *skip = NULL;
	json_t *running;
	uint64_t at = 0;

	if (!d->online)
		return 0;
	match = gw_autoupdate_match(rule->selector, d);
	running = gw_autoupdate_running(d, &at);
	if (match == GW_MATCH_NO)
		return 0;
	if (match == GW_MATCH_UNKNOWN || !running) {
		gw_autoupdate_ask(au, d);
		skip = "what it runs or its OS info is not known yet: asked";
	} else if (!gw_autoupdate_wants(t, running, rule->allow_downgrade))
		skip = "runs the image or a newer one";
	else if (gw_rollouts_device_busy(au->m->rollouts, d->id))
		skip = "has a job in progress"; /* its end brings a new image state */
	else if (gw_autoupdate_stale(au, d, at))
		skip = "its image state predates its last job: asked again";
	else if (gw_autoupdate_done_before(au, rule, d, t))
		skip = "the rule gave it this image before";
	if (skip) {
		gw_debug(LOG, "rule %lld, %s (runs %s, reported at %llu): skipped: %s",
			 (long long)rule->id, d->id,
			 json_string_value(json_object_get(running, "version")) ?: "?",
			 (unsigned long long)at, skip);
		return 0;
	}
	return json_array_append_new(devices, json_string(d->id));
}

static int gw_autoupdate_cmp_json_str(const void *a, const void *b)
{
	return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

static void gw_autoupdate_sort_ids(json_t *ids)
{
	size_t n = json_array_size(ids);
	_cleanup_free_ json_t **v = calloc(n + 1, sizeof(*v));

	if (!v)
		return; /* any order works */
	for (size_t i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(ids, i));
	qsort(v, n, sizeof(*v), gw_autoupdate_cmp_json_str);
	json_array_clear(ids);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(ids, v[i]);
}

/* "auto-update <id>: <name>", cut on a character boundary to what a
 * rollout's name may hold (128 bytes). */
static void gw_autoupdate_rollout_name(const struct gw_autoupdate_rule *rule, char *buf,
				       size_t size)
{
	size_t n;

	snprintf(buf, size, "auto-update %lld: %s", (long long)rule->id, rule->name);
	n = strlen(buf);
	if (n <= GW_AUTOUPDATE_ROLLOUT_NAME_MAX)
		return;
	n = GW_AUTOUPDATE_ROLLOUT_NAME_MAX;
	while (n > 0 && ((unsigned char)buf[n] & 0xc0) == 0x80)
		n--;
	buf[n] = 0;
}

static void gw_autoupdate_run_rule(struct gw_autoupdate *au, const struct gw_autoupdate_rule *rule,
				   json_t *dirty)
{
	struct gw_autoupdate_target t;
	_cleanup_(json_decrefp) json_t *devices = json_array(), *req = NULL, *strategy = NULL;
	char name[GW_AUTOUPDATE_NAME_MAX + 64], err[256] = "";
	int64_t id = 0;
	int r;

	if (!devices)
		return;
	r = gw_autoupdate_resolve(au, rule, &t);
	if (r < 0) {
		gw_log_errno(LOG_WARNING, r, LOG, "rule %lld: cannot choose its image: %m",
			     (long long)rule->id);
		return;
	}
	if (!t.id)
		return;
	if (dirty) {
		const char *key;
		json_t *v;

		json_object_foreach(dirty, key, v) {
			struct gw_device *d = gw_registry_find(au->m->registry, key);

			if (d && gw_autoupdate_consider(au, rule, &t, d, devices) < 0)
				break;
		}
	} else {
		for (struct gw_device *d = gw_registry_next(au->m->registry, NULL); d;
		     d = gw_registry_next(au->m->registry, d->id))
			if (gw_autoupdate_consider(au, rule, &t, d, devices) < 0)
				break;
	}
	if (json_array_size(devices) == 0)
		goto out;
	/* By id, as a selector orders them: the same devices, the same rollout. */
	gw_autoupdate_sort_ids(devices);
	gw_autoupdate_rollout_name(rule, name, sizeof(name));
	strategy = json_deep_copy(rule->strategy);
	/* The device itself refuses an image that is not newer than the one
	 * it runs: no downgrade even when what the gateway knew was stale. */
	if (strategy && !rule->allow_downgrade &&
	    json_object_set_new(strategy, "upgrade", json_true()) < 0)
		strategy = (json_decref(strategy), NULL);
	if (strategy)
		req = json_pack("{s:s, s:O, s:O, s:s}", "firmware", t.id, "devices", devices,
				"strategy", strategy, "name", name);
	if (!req) {
		gw_warn(LOG, "rule %lld: out of memory, no rollout", (long long)rule->id);
		goto out;
	}
	r = gw_rollouts_create_auto(au->m->rollouts, req, rule->id, &id, err, sizeof(err));
	if (r < 0 && err[0])
		gw_warn(LOG, "rule %lld: cannot start a rollout of %s to %zu device(s): %s",
			(long long)rule->id, t.id, json_array_size(devices), err);
	else if (r < 0)
		gw_log_errno(LOG_WARNING, r, LOG, "rule %lld: cannot start a rollout of %s to %zu "
			     "device(s): %m", (long long)rule->id, t.id, json_array_size(devices));
	else
		gw_info(LOG, "rule %lld (%s): rollout %lld of firmware %s (version %s) to %zu "
			"device(s)", (long long)rule->id, rule->name, (long long)id, t.id,
			t.version, json_array_size(devices));
out:
	gw_autoupdate_target_clear(&t);
}

static int gw_autoupdate_on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct gw_autoupdate *au = userdata;
	_cleanup_(json_decrefp) json_t *dirty = au->dirty;
	bool all = au->all;

	au->dirty = json_object();
	au->all = false;
	au->due_usec = 0;
	if (!au->dirty) {
		/* Cannot track single devices: look at them all next time. */
		au->all = true;
		gw_warn(LOG, "out of memory, evaluating every device later");
	}
	if (au->m->stopping || !au->m->registry || !au->m->rollouts)
		return 0;
	if (!all && json_object_size(dirty) == 0)
		return 0;
	for (size_t i = 0; i < au->n_rules; i++)
		if (au->rules[i].enabled)
			gw_autoupdate_run_rule(au, &au->rules[i], all ? NULL : dirty);
	return 0;
}

/* Arms the timer delay_usec from now unless it is due sooner. */
static void gw_autoupdate_schedule(struct gw_autoupdate *au, uint64_t delay_usec)
{
	uint64_t now = 0, due;
	int r;

	if (!au->timer)
		return;
	(void)sd_event_now(au->m->event, CLOCK_MONOTONIC, &now);
	due = now + delay_usec;
	if (au->due_usec && au->due_usec <= due)
		return;
	r = sd_event_source_set_time(au->timer, due);
	if (r >= 0)
		r = sd_event_source_set_enabled(au->timer, SD_EVENT_ONESHOT);
	if (r < 0) {
		gw_log_errno(LOG_WARNING, r, LOG, "cannot arm the evaluation timer: %m");
		return;
	}
	au->due_usec = due;
}

void gw_autoupdate_evaluate(struct gw_autoupdate *au)
{
	if (!au)
		return;
	au->all = true;
	gw_autoupdate_schedule(au, 0);
}

static void gw_autoupdate_mark(struct gw_autoupdate *au, struct gw_device *d)
{
	bool any = false;

	for (size_t i = 0; i < au->n_rules; i++)
		any = any || au->rules[i].enabled;
	if (!any)
		return;
	if (!au->dirty || json_object_set_new(au->dirty, d->id, json_true()) < 0)
		au->all = true;
	gw_autoupdate_schedule(au, GW_AUTOUPDATE_BATCH_USEC);
}

static void gw_autoupdate_on_registry(struct gw_registry *r, enum gw_registry_event ev,
				      struct gw_device *d, const char *section, void *userdata)
{
	struct gw_autoupdate *au = userdata;

	switch (ev) {
	case GW_REGISTRY_REMOVED:
		json_object_del(au->dirty, d->id);
		json_object_del(au->asked, d->id);
		json_object_del(au->stale, d->id);
		break;
	case GW_REGISTRY_REPORTED:
		if (!section || (strcmp(section, "image_state") != 0 && strcmp(section, "info") != 0))
			break;
		json_object_del(au->asked, d->id);
		if (strcmp(section, "image_state") == 0)
			json_object_del(au->stale, d->id);
		gw_autoupdate_mark(au, d);
		break;
	case GW_REGISTRY_OFFLINE:
		/* A device that went away did not answer the poll it was asked for. */
		json_object_del(au->asked, d->id);
		break;
	case GW_REGISTRY_ADDED:
	case GW_REGISTRY_ONLINE:
	case GW_REGISTRY_CHANGED:
		gw_autoupdate_mark(au, d);
		break;
	}
}

static void gw_autoupdate_on_event(struct gw_events *ev, const struct gw_event *e, void *userdata)
{
	struct gw_autoupdate *au = userdata;
	struct gw_device *d;

	if (strcmp(e->type, "firmware.added") == 0) {
		for (size_t i = 0; i < au->n_rules; i++)
			if (au->rules[i].enabled && !au->rules[i].firmware) {
				gw_autoupdate_evaluate(au);
				break;
			}
		return;
	}
	if (strcmp(e->type, "job.state") != 0 || !e->device_id)
		return;
	{
		const char *to = json_string_value(json_object_get(e->data, "to"));

		if (!to || (strcmp(to, "succeeded") && strcmp(to, "failed") &&
			    strcmp(to, "rolled_back") && strcmp(to, "canceled")))
			return;
	}
	/* What the device runs now decides the next step: the engine does not
	 * write the image state it read. */
	d = au->m->registry ? gw_registry_find(au->m->registry, e->device_id) : NULL;
	if (!d)
		return;
	json_object_del(au->asked, d->id);
	if (json_object_set_new(au->stale, d->id, json_true()) < 0)
		gw_debug(LOG, "%s: out of memory, judged on the job's time", d->id);
	/* Without rules nobody needs the answer now; a rule created later asks. */
	for (size_t i = 0; i < au->n_rules; i++)
		if (au->rules[i].enabled) {
			gw_autoupdate_ask(au, d);
			break;
		}
}

/* ---- lifecycle ---- */

int gw_autoupdate_new(struct gw_manager *m, struct gw_autoupdate **ret)
{
	struct gw_autoupdate *au;
	int r;

	if (!m || !m->db)
		return -EINVAL;
	au = calloc(1, sizeof(*au));
	if (!au)
		return -ENOMEM;
	au->m = m;
	au->dirty = json_object();
	au->asked = json_object();
	au->stale = json_object();
	if (!au->dirty || !au->asked || !au->stale) {
		r = -ENOMEM;
		goto fail;
	}
	r = db_auto_updates_new(m->db, &au->da);
	if (r < 0)
		goto fail;
	r = db_auto_updates_load(au->da, gw_autoupdate_load_row, au);
	if (r < 0)
		goto fail;
	r = sd_event_add_time(m->event, &au->timer, CLOCK_MONOTONIC, 0, 0, gw_autoupdate_on_timer,
			      au);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_description(au->timer, "gw-autoupdate-eval");
	(void)sd_event_source_set_enabled(au->timer, SD_EVENT_OFF);
	if (m->registry) {
		r = gw_registry_add_listener(m->registry, gw_autoupdate_on_registry, au);
		if (r < 0)
			goto fail;
		au->listening = true;
	}
	if (m->events) {
		r = gw_events_subscribe(m->events, gw_autoupdate_on_event, au, &au->sub);
		if (r < 0)
			goto fail;
	}
	gw_autoupdate_evaluate(au);
	*ret = au;
	return 0;
fail:
	gw_autoupdate_free(au);
	return r;
}

struct gw_autoupdate *gw_autoupdate_free(struct gw_autoupdate *au)
{
	if (!au)
		return NULL;
	if (au->sub)
		gw_events_unsubscribe(au->m->events, au->sub);
	if (au->listening)
		gw_registry_remove_listener(au->m->registry, gw_autoupdate_on_registry, au);
	sd_event_source_disable_unref(au->timer);
	for (size_t i = 0; i < au->n_rules; i++)
		gw_autoupdate_rule_clear(&au->rules[i]);
	free(au->rules);
	db_auto_updates_free(au->da);
	json_decref(au->dirty);
	json_decref(au->asked);
	json_decref(au->stale);
	free(au);
	return NULL;
}

/* ---- the API's calls ---- */

static json_t *gw_autoupdate_view(struct gw_autoupdate *au, const struct gw_autoupdate_rule *rule)
{
	_cleanup_(json_decrefp) json_t *strategy = json_deep_copy(rule->strategy);
	json_t *window = json_object_get(rule->strategy, "window"), *target = json_null();
	struct gw_autoupdate_target t;

	if (!strategy)
		return NULL;
	json_object_del(strategy, "window");
	if (gw_autoupdate_resolve(au, rule, &t) >= 0 && t.id) {
		target = json_pack("{s:s, s:s, s:s, s:s}", "id", t.id, "version", t.version,
				   "image_hash", t.image_hash, "name", t.name);
		gw_autoupdate_target_clear(&t);
	}
	return json_pack("{s:I, s:s, s:b, s:O, s:o, s:o, s:O, s:o, s:b, s:I, s:I, s:o}", "id",
			 (json_int_t)rule->id, "name", rule->name, "enabled", rule->enabled,
			 "selector", rule->selector, "firmware",
			 rule->firmware ? json_string(rule->firmware) : json_null(), "image_name",
			 rule->image_name ? json_string(rule->image_name) : json_null(),
			 "strategy", strategy, "window",
			 window ? json_incref(window) : json_null(), "allow_downgrade",
			 rule->allow_downgrade, "created_at", (json_int_t)rule->created_at_ms,
			 "updated_at", (json_int_t)rule->updated_at_ms, "target", target);
}

int gw_autoupdate_list(struct gw_autoupdate *au, json_t **ret)
{
	_cleanup_(json_decrefp) json_t *list = json_array();

	if (!au)
		return -EINVAL;
	if (!list)
		return -ENOMEM;
	for (size_t i = 0; i < au->n_rules; i++)
		if (json_array_append_new(list, gw_autoupdate_view(au, &au->rules[i])) < 0)
			return -ENOMEM;
	*ret = TAKE_PTR(list);
	return 0;
}

int gw_autoupdate_get(struct gw_autoupdate *au, int64_t id, json_t **ret)
{
	struct gw_autoupdate_rule *rule = au ? gw_autoupdate_find(au, id) : NULL;
	json_t *j;

	if (!rule)
		return -ENOENT;
	j = gw_autoupdate_view(au, rule);
	if (!j)
		return -ENOMEM;
	*ret = j;
	return 0;
}

int gw_autoupdate_create(struct gw_autoupdate *au, const json_t *req, int64_t *ret_id,
			 char *err, size_t errlen)
{
	struct gw_autoupdate_rule rule = { 0 }, *rules;
	uint64_t now = gw_now_ms();
	int r;

	if (!au)
		return -EINVAL;
	r = gw_autoupdate_parse(au, req, &rule, err, errlen);
	if (r < 0)
		goto fail;
	rules = reallocarray(au->rules, au->n_rules + 1, sizeof(*rules));
	if (!rules) {
		r = -ENOMEM;
		goto fail;
	}
	au->rules = rules;
	r = gw_autoupdate_write(au, &rule, true, now, &rule.id);
	if (r < 0)
		goto fail;
	rule.created_at_ms = rule.updated_at_ms = now;
	au->rules[au->n_rules++] = rule;
	gw_autoupdate_evaluate(au);
	*ret_id = rule.id;
	return 0;
fail:
	gw_autoupdate_rule_clear(&rule);
	return r;
}

/* The rule as a request object: the base a patch applies to. */
static json_t *gw_autoupdate_request_of(const struct gw_autoupdate_rule *rule)
{
	_cleanup_(json_decrefp) json_t *strategy = json_deep_copy(rule->strategy);
	json_t *window = json_object_get(rule->strategy, "window");

	if (!strategy)
		return NULL;
	json_object_del(strategy, "window");
	return json_pack("{s:s, s:b, s:O, s:o, s:o, s:O, s:o, s:b}", "name", rule->name,
			 "enabled", rule->enabled, "selector", rule->selector, "firmware",
			 rule->firmware ? json_string(rule->firmware) : json_null(), "image_name",
			 rule->image_name ? json_string(rule->image_name) : json_null(),
			 "strategy", strategy, "window", window ? json_incref(window) : json_null(),
			 "allow_downgrade", rule->allow_downgrade);
}

int gw_autoupdate_update(struct gw_autoupdate *au, int64_t id, const json_t *patch, char *err,
			 size_t errlen)
{
	struct gw_autoupdate_rule *old = au ? gw_autoupdate_find(au, id) : NULL;
	struct gw_autoupdate_rule rule = { 0 };
	_cleanup_(json_decrefp) json_t *req = NULL;
	uint64_t now = gw_now_ms();
	int r;

	if (!old)
		return -ENOENT;
	if (!json_is_object(patch)) {
		snprintf(err, errlen, "the change must be a JSON object");
		return -EINVAL;
	}
	req = gw_autoupdate_request_of(old);
	if (!req)
		return -ENOMEM;
	/* A fixed firmware and an image_name exclude each other: naming one
	 * clears the other unless the patch sets both. */
	if (json_object_get(patch, "firmware") && !json_is_null(json_object_get(patch, "firmware")) &&
	    !json_object_get(patch, "image_name"))
		json_object_set_new(req, "image_name", json_null());
	if (json_object_update(req, (json_t *)patch) < 0)
		return -ENOMEM;
	r = gw_autoupdate_parse(au, req, &rule, err, errlen);
	if (r < 0)
		goto fail;
	rule.id = id;
	r = gw_autoupdate_write(au, &rule, false, now, NULL);
	if (r < 0)
		goto fail;
	rule.created_at_ms = old->created_at_ms;
	rule.updated_at_ms = now;
	gw_autoupdate_rule_clear(old);
	*old = rule;
	gw_autoupdate_evaluate(au);
	return 0;
fail:
	gw_autoupdate_rule_clear(&rule);
	return r;
}

int gw_autoupdate_remove(struct gw_autoupdate *au, int64_t id)
{
	struct gw_autoupdate_rule *rule = au ? gw_autoupdate_find(au, id) : NULL;
	size_t i;
	int r;

	if (!rule)
		return -ENOENT;
	r = db_auto_updates_delete(au->da, id);
	if (r < 0)
		return r;
	i = (size_t)(rule - au->rules);
	gw_autoupdate_rule_clear(rule);
	memmove(au->rules + i, au->rules + i + 1, (au->n_rules - i - 1) * sizeof(*au->rules));
	au->n_rules--;
	return 0;
}
