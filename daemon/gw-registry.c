/* gw-registry: every device smpgwd knows: its identity, state and what it reported; persisted */
#include <assert.h>
#include <errno.h>
#include <nettle/sha2.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "db/db-devices.h"
#include "lib/smp-cbor.h"

/* Ids: at most this many characters (URL path segments, log lines). */
#define GW_ID_MAX 63
/* Hex digits of SHA-256(identity) that tell apart identities whose ids would be equal. */
#define GW_ID_HASH_LEN 8

/* Bounds on what discovery, config and the API may store. */
#define GW_IDENTITY_MAX 256
#define GW_ADDRESS_MAX 1024
#define GW_NAME_MAX 256
#define GW_LABEL_MAX 64
#define GW_LABELS_MAX 32
#define GW_SECTION_MAX 64

/* last_seen, rssi and reported are written together at most this often. */
#define GW_REGISTRY_FLUSH_DEFAULT_MS 5000

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

enum {
	GW_DIRTY_SEEN = 1 << 0,
	GW_DIRTY_RSSI = 1 << 1,
	GW_DIRTY_REPORTED = 1 << 2,
};

struct gw_registry_entry {
	struct gw_device dev;
	bool name_pinned;   /* set by config or API: discovery leaves it alone */
	bool labels_pinned;
	unsigned dirty;     /* GW_DIRTY_*: waiting for the batched write */
	struct gw_registry_entry *dirty_next, **dirty_prev;
};

struct gw_registry_listener {
	gw_registry_listener_fn fn; /* NULL: removed while listeners were running */
	void *userdata;
};

struct gw_registry {
	struct gw_manager *m;
	struct db_devices *dd;
	/* Two sorted arrays: lookups by bsearch, pagination from the id index. */
	struct gw_registry_entry **by_id;
	struct gw_registry_entry **by_identity;
	size_t n, cap;
	size_t n_online;
	struct gw_registry_listener *listeners;
	size_t n_listeners, cap_listeners;
	unsigned notifying;
	bool listeners_removed;
	struct gw_registry_entry *dirty;
	size_t n_dirty;
	sd_event_source *flush_timer;
	uint64_t flush_interval_ms;
};

static struct gw_registry_entry *gw_registry_entry_of(struct gw_device *d)
{
	return container_of(d, struct gw_registry_entry, dev);
}

static struct gw_registry_entry *gw_registry_entry_free(struct gw_registry_entry *e)
{
	if (e) {
		free(e->dev.id);
		free(e->dev.identity);
		free(e->dev.address);
		free(e->dev.name);
		json_decref(e->dev.labels);
		json_decref(e->dev.reported);
		free(e);
	}
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct gw_registry_entry *, gw_registry_entry_free);

/* Text from discovery, config and the API ends up in JSON and in logs: valid
 * UTF-8 (jansson refuses anything else), no control characters, bounded. */
static bool gw_registry_text_valid(const char *s, size_t max)
{
	size_t len;

	if (!s)
		return false;
	len = strlen(s);
	if (len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return smp_utf8_valid((const uint8_t *)s, len);
}

static bool gw_registry_label_valid(const char *s)
{
	return gw_registry_text_valid(s, GW_LABEL_MAX) && *s && !strchr(s, ',');
}

static bool gw_registry_labels_contain(json_t *labels, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach (labels, i, v)
		if (strcmp(json_string_value(v), s) == 0)
			return true;
	return false;
}

/* "a, b,,a" -> ["a","b"]: spaces around labels and empty entries dropped, duplicates once. */
static int gw_registry_labels_parse(const char *text, json_t **ret)
{
	_cleanup_(json_decrefp) json_t *labels = json_array();
	_cleanup_free_ char *copy = strdup(text);
	char *save = NULL;

	if (!labels || !copy)
		return -ENOMEM;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *end;

		while (*tok == ' ' || *tok == '\t')
			tok++;
		end = tok + strlen(tok);
		while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = 0;
		if (!*tok)
			continue;
		if (!gw_registry_label_valid(tok))
			return -EINVAL;
		if (gw_registry_labels_contain(labels, tok))
			continue;
		if (json_array_size(labels) >= GW_LABELS_MAX)
			return -EINVAL;
		if (json_array_append_new(labels, json_string(tok)) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(labels);
	return 0;
}

/* A fresh array of the labels (validated, duplicates once); labels stays the caller's. */
static int gw_registry_labels_copy(json_t *labels, json_t **ret)
{
	_cleanup_(json_decrefp) json_t *out = json_array();
	size_t i;
	json_t *v;

	if (!out)
		return -ENOMEM;
	if (!json_is_array(labels))
		return -EINVAL;
	json_array_foreach (labels, i, v) {
		const char *s = json_string_value(v);

		if (!s || !gw_registry_label_valid(s))
			return -EINVAL;
		if (gw_registry_labels_contain(out, s))
			continue;
		if (json_array_size(out) >= GW_LABELS_MAX)
			return -EINVAL;
		if (json_array_append_new(out, json_string(s)) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(out);
	return 0;
}

static void gw_registry_hash(const char *identity, char out[GW_ID_HASH_LEN + 1])
{
	struct sha256_ctx ctx;
	uint8_t digest[SHA256_DIGEST_SIZE];

	sha256_init(&ctx);
	sha256_update(&ctx, strlen(identity), (const uint8_t *)identity);
	sha256_digest(&ctx, sizeof(digest), digest);
	for (size_t i = 0; i < GW_ID_HASH_LEN / 2; i++)
		snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

/* base + "-" + suffix, base cut so that the whole stays within GW_ID_MAX. */
static int gw_registry_id_suffixed(const char *base, const char *suffix, char *buf, size_t size)
{
	size_t blen = strlen(base), slen = strlen(suffix);
	int n;

	if (blen > GW_ID_MAX - 1 - slen)
		blen = GW_ID_MAX - 1 - slen;
	while (blen > 0 && base[blen - 1] == '-')
		blen--;
	n = snprintf(buf, size, "%.*s-%s", (int)blen, base, suffix);
	return n < 0 || (size_t)n >= size ? -ENOBUFS : 0;
}

/* Runs of anything but [A-Za-z0-9] become one '-' (none at either end), letters
 * lower case: "tty:/dev/ttyACM0" -> "tty-dev-ttyacm0". Longer than GW_ID_MAX:
 * cut and suffixed with the identity's hash, so that different long
 * identities stay apart; nothing left ("::"): "dev-<hash>". */
int gw_registry_id_from_identity(const char *identity, char *buf, size_t size)
{
	char id[GW_ID_MAX + 2], hash[GW_ID_HASH_LEN + 1];
	size_t len = 0;
	bool dash = false, cut = false;

	if (!identity || !*identity || !buf)
		return -EINVAL;
	for (const char *p = identity; *p && !cut; p++) {
		char c = *p;

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
			dash = true;
			continue;
		}
		if (dash && len > 0)
			id[len++] = '-';
		dash = false;
		id[len++] = c;
		cut = len > GW_ID_MAX;
	}
	id[len] = 0;
	if (len == 0 || cut) {
		gw_registry_hash(identity, hash);
		return gw_registry_id_suffixed(len ? id : "dev", hash, buf, size);
	}
	if (len >= size)
		return -ENOBUFS;
	memcpy(buf, id, len + 1);
	return 0;
}

const char *gw_transport_to_string(enum gw_transport t)
{
	switch (t) {
	case GW_TRANSPORT_UDP: return "udp";
	case GW_TRANSPORT_SERIAL: return "serial";
	case GW_TRANSPORT_BLE: return "ble";
	}
	return NULL;
}

int gw_transport_from_string(const char *s)
{
	for (int t = GW_TRANSPORT_UDP; t <= GW_TRANSPORT_BLE; t++)
		if (s && strcmp(s, gw_transport_to_string(t)) == 0)
			return t;
	return -EINVAL;
}

const char *gw_source_to_string(enum gw_source s)
{
	switch (s) {
	case GW_SOURCE_CONFIG: return "config";
	case GW_SOURCE_DISCOVERED: return "discovered";
	case GW_SOURCE_API: return "api";
	}
	return NULL;
}

static int gw_source_from_string(const char *s)
{
	for (int v = GW_SOURCE_CONFIG; v <= GW_SOURCE_API; v++)
		if (s && strcmp(s, gw_source_to_string(v)) == 0)
			return v;
	return -EINVAL;
}

/* The two indexes: sorted by id, and by identity. */
enum gw_registry_key {
	BY_ID,
	BY_IDENTITY,
};

static const char *gw_registry_key(const struct gw_registry_entry *e, enum gw_registry_key key)
{
	return key == BY_ID ? e->dev.id : e->dev.identity;
}

/* First index whose key is >= s (or > s with after), in an array sorted by that key. */
static size_t gw_registry_bound(struct gw_registry_entry **a, size_t n, enum gw_registry_key key,
				const char *s, bool after)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(gw_registry_key(a[mid], key), s);

		if (c < 0 || (after && c == 0))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct gw_registry_entry *gw_registry_lookup(struct gw_registry_entry **a, size_t n,
						    enum gw_registry_key key, const char *s)
{
	size_t i = gw_registry_bound(a, n, key, s, false);

	if (i < n && strcmp(gw_registry_key(a[i], key), s) == 0)
		return a[i];
	return NULL;
}

struct gw_device *gw_registry_find(struct gw_registry *r, const char *id)
{
	struct gw_registry_entry *e;

	if (!r || !id)
		return NULL;
	e = gw_registry_lookup(r->by_id, r->n, BY_ID, id);
	return e ? &e->dev : NULL;
}

struct gw_device *gw_registry_find_identity(struct gw_registry *r, const char *identity)
{
	struct gw_registry_entry *e;

	if (!r || !identity)
		return NULL;
	e = gw_registry_lookup(r->by_identity, r->n, BY_IDENTITY, identity);
	return e ? &e->dev : NULL;
}

struct gw_device *gw_registry_next(struct gw_registry *r, const char *after)
{
	size_t i;

	if (!r)
		return NULL;
	i = after ? gw_registry_bound(r->by_id, r->n, BY_ID, after, true) : 0;
	return i < r->n ? &r->by_id[i]->dev : NULL;
}

size_t gw_registry_count(struct gw_registry *r)
{
	return r ? r->n : 0;
}

size_t gw_registry_count_online(struct gw_registry *r)
{
	return r ? r->n_online : 0;
}

/* Room for one more device in both indexes, so that inserting cannot fail
 * once the row is in the database. */
static int gw_registry_reserve(struct gw_registry *r)
{
	struct gw_registry_entry **a;
	size_t cap;

	if (r->n < r->cap)
		return 0;
	cap = r->cap ? r->cap * 2 : 64;
	a = reallocarray(r->by_id, cap, sizeof(*a));
	if (!a)
		return -ENOMEM;
	r->by_id = a;
	a = reallocarray(r->by_identity, cap, sizeof(*a));
	if (!a)
		return -ENOMEM;
	r->by_identity = a;
	r->cap = cap;
	return 0;
}

static void gw_registry_array_insert(struct gw_registry_entry **a, size_t n,
				     enum gw_registry_key key, struct gw_registry_entry *e)
{
	size_t i = gw_registry_bound(a, n, key, gw_registry_key(e, key), false);

	memmove(a + i + 1, a + i, (n - i) * sizeof(*a));
	a[i] = e;
}

static void gw_registry_array_remove(struct gw_registry_entry **a, size_t n,
				     enum gw_registry_key key, struct gw_registry_entry *e)
{
	size_t i = gw_registry_bound(a, n, key, gw_registry_key(e, key), false);

	assert(i < n && a[i] == e);
	memmove(a + i, a + i + 1, (n - i - 1) * sizeof(*a));
}

static void gw_registry_index(struct gw_registry *r, struct gw_registry_entry *e)
{
	assert(r->n < r->cap);
	gw_registry_array_insert(r->by_id, r->n, BY_ID, e);
	gw_registry_array_insert(r->by_identity, r->n, BY_IDENTITY, e);
	r->n++;
}

static void gw_registry_unindex(struct gw_registry *r, struct gw_registry_entry *e)
{
	gw_registry_array_remove(r->by_id, r->n, BY_ID, e);
	gw_registry_array_remove(r->by_identity, r->n, BY_IDENTITY, e);
	r->n--;
}

static void gw_registry_notify(struct gw_registry *r, enum gw_registry_event ev,
			       struct gw_registry_entry *e, const char *section)
{
	/* Listeners added meanwhile wait for the next event; removed ones are
	 * skipped and compacted away once no listener runs. */
	size_t n = r->n_listeners;

	r->notifying++;
	for (size_t i = 0; i < n; i++)
		if (r->listeners[i].fn)
			r->listeners[i].fn(r, ev, &e->dev, section, r->listeners[i].userdata);
	r->notifying--;
	if (r->notifying == 0 && r->listeners_removed) {
		size_t k = 0;

		for (size_t i = 0; i < r->n_listeners; i++)
			if (r->listeners[i].fn)
				r->listeners[k++] = r->listeners[i];
		r->n_listeners = k;
		r->listeners_removed = false;
	}
}

int gw_registry_add_listener(struct gw_registry *r, gw_registry_listener_fn fn, void *userdata)
{
	if (!r || !fn)
		return -EINVAL;
	if (r->n_listeners == r->cap_listeners) {
		size_t cap = r->cap_listeners ? r->cap_listeners * 2 : 8;
		struct gw_registry_listener *l = reallocarray(r->listeners, cap, sizeof(*l));

		if (!l)
			return -ENOMEM;
		r->listeners = l;
		r->cap_listeners = cap;
	}
	r->listeners[r->n_listeners++] = (struct gw_registry_listener){ fn, userdata };
	return 0;
}

void gw_registry_remove_listener(struct gw_registry *r, gw_registry_listener_fn fn, void *userdata)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_listeners; i++) {
		if (r->listeners[i].fn != fn || r->listeners[i].userdata != userdata)
			continue;
		if (r->notifying) {
			r->listeners[i].fn = NULL;
			r->listeners_removed = true;
		} else {
			memmove(r->listeners + i, r->listeners + i + 1,
				(r->n_listeners - i - 1) * sizeof(*r->listeners));
			r->n_listeners--;
		}
		return;
	}
}

static void gw_registry_dirty_unlink(struct gw_registry *r, struct gw_registry_entry *e)
{
	if (!e->dirty)
		return;
	*e->dirty_prev = e->dirty_next;
	if (e->dirty_next)
		e->dirty_next->dirty_prev = e->dirty_prev;
	e->dirty_next = NULL;
	e->dirty_prev = NULL;
	e->dirty = 0;
	r->n_dirty--;
}

static void gw_registry_arm(struct gw_registry *r)
{
	int enabled = SD_EVENT_OFF, k;

	if (sd_event_source_get_enabled(r->flush_timer, &enabled) >= 0 && enabled != SD_EVENT_OFF)
		return;
	k = sd_event_source_set_time_relative(r->flush_timer, r->flush_interval_ms * 1000);
	if (k >= 0)
		k = sd_event_source_set_enabled(r->flush_timer, SD_EVENT_ONESHOT);
	if (k < 0)
		gw_log_errno(LOG_WARNING, k, "registry",
			     "cannot arm the batched write timer, writing at shutdown: %m");
}

/* The batched columns of e changed: written by the next flush, within the interval. */
static void gw_registry_mark(struct gw_registry *r, struct gw_registry_entry *e, unsigned what)
{
	if (!e->dirty) {
		e->dirty_next = r->dirty;
		if (r->dirty)
			r->dirty->dirty_prev = &e->dirty_next;
		e->dirty_prev = &r->dirty;
		r->dirty = e;
		r->n_dirty++;
	}
	e->dirty |= what;
	gw_registry_arm(r);
}

int gw_registry_flush(struct gw_registry *r)
{
	_cleanup_free_ struct db_device_batch *rows = NULL;
	_cleanup_free_ char **texts = NULL;
	size_t n = 0;
	int k;

	if (!r)
		return -EINVAL;
	if (r->n_dirty == 0)
		return 0;
	rows = calloc(r->n_dirty, sizeof(*rows));
	texts = calloc(r->n_dirty, sizeof(*texts));
	if (!rows || !texts)
		return -ENOMEM;
	for (struct gw_registry_entry *e = r->dirty; e; e = e->dirty_next, n++) {
		struct db_device_batch *b = &rows[n];

		b->id = e->dev.id;
		if (e->dirty & GW_DIRTY_SEEN)
			b->last_seen_ms = e->dev.last_seen_ms;
		if (e->dirty & GW_DIRTY_RSSI) {
			b->has_rssi = e->dev.has_rssi;
			b->rssi = e->dev.rssi;
		}
		if (e->dirty & GW_DIRTY_REPORTED) {
			const char *section;
			json_t *v;

			texts[n] = json_dumps(e->dev.reported, JSON_COMPACT);
			if (!texts[n]) {
				k = -ENOMEM;
				goto out;
			}
			b->reported = texts[n];
			/* reported_at: the newest section's time. */
			json_object_foreach (e->dev.reported, section, v) {
				json_int_t at = json_integer_value(json_object_get(v, "at"));

				b->reported_at_ms = MAX(b->reported_at_ms, (uint64_t)at);
			}
		}
	}
	k = db_devices_update_batch(r->dd, rows, n, gw_now_ms());
	if (k >= 0) {
		while (r->dirty)
			gw_registry_dirty_unlink(r, r->dirty);
		(void)sd_event_source_set_enabled(r->flush_timer, SD_EVENT_OFF);
	}
out:
	for (size_t i = 0; i < n; i++)
		free(texts[i]);
	return k < 0 ? k : 0;
}

static int gw_registry_on_flush(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct gw_registry *r = userdata;
	int k;

	k = gw_registry_flush(r);
	if (k < 0) {
		gw_log_errno(LOG_WARNING, k, "registry",
			     "writing last seen, rssi and reported of %zu devices, retrying: %m",
			     r->n_dirty);
		gw_registry_arm(r);
	}
	return 0;
}

void gw_registry_set_flush_interval(struct gw_registry *r, uint64_t ms)
{
	if (r)
		r->flush_interval_ms = ms;
}

/* The row of a new device, for its upsert; the labels' JSON text is the caller's to free. */
static int gw_registry_row(const struct gw_registry_entry *e, struct db_device *row,
			   char **ret_labels)
{
	char *text = json_dumps(e->dev.labels, JSON_COMPACT);

	if (!text)
		return -ENOMEM;
	*row = (struct db_device){
		.id = e->dev.id,
		.identity = e->dev.identity,
		.transport = gw_transport_to_string(e->dev.transport),
		.address = e->dev.address,
		.name = e->dev.name,
		.labels = text,
		.source = gw_source_to_string(e->dev.source),
		.baud = e->dev.baud,
		.name_pinned = e->name_pinned,
		.labels_pinned = e->labels_pinned,
	};
	*ret_labels = text;
	return 0;
}

static int gw_registry_spec_check(const struct gw_device_spec *spec)
{
	if (!spec || gw_transport_to_string(spec->transport) == NULL ||
	    gw_source_to_string(spec->source) == NULL)
		return -EINVAL;
	if (!gw_registry_text_valid(spec->identity, GW_IDENTITY_MAX) || !*spec->identity)
		return -EINVAL;
	if (!gw_registry_text_valid(spec->address, GW_ADDRESS_MAX) || !*spec->address)
		return -EINVAL;
	if (spec->name && !gw_registry_text_valid(spec->name, GW_NAME_MAX))
		return -EINVAL;
	if (spec->baud && spec->transport != GW_TRANSPORT_SERIAL)
		return -EINVAL;
	return 0;
}

/* A free id for a new identity: the derived one, or when another identity
 * holds it, the derived one suffixed with "-<first 8 hex digits of
 * SHA-256(identity)>" (and "-2", "-3"... in the unlikely case that is taken
 * too). Ids are stored, so a device keeps its id across restarts whatever
 * order devices arrive in later. */
static int gw_registry_new_id(struct gw_registry *r, const char *identity, char **ret)
{
	char base[GW_ID_MAX + 1], id[GW_ID_MAX + 1], hash[GW_ID_HASH_LEN + 1];
	char suffix[GW_ID_HASH_LEN + 16];
	int k;

	k = gw_registry_id_from_identity(identity, base, sizeof(base));
	if (k < 0)
		return k;
	memcpy(id, base, sizeof(id));
	if (gw_registry_find(r, id)) {
		gw_registry_hash(identity, hash);
		k = gw_registry_id_suffixed(base, hash, id, sizeof(id));
		for (unsigned i = 2; k == 0 && gw_registry_find(r, id); i++) {
			snprintf(suffix, sizeof(suffix), "%s-%u", hash, i);
			k = gw_registry_id_suffixed(base, suffix, id, sizeof(id));
		}
		if (k < 0)
			return k;
	}
	*ret = strdup(id);
	return *ret ? 0 : -ENOMEM;
}

static int gw_registry_create(struct gw_registry *r, const struct gw_device_spec *spec,
			      json_t *labels, struct gw_device **ret)
{
	_cleanup_(gw_registry_entry_freep) struct gw_registry_entry *e = NULL;
	_cleanup_free_ char *labels_text = NULL;
	struct gw_registry_entry *added;
	struct db_device row;
	bool pin = spec->source != GW_SOURCE_DISCOVERED;
	int k;

	k = gw_registry_reserve(r);
	if (k < 0)
		return k;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	k = gw_registry_new_id(r, spec->identity, &e->dev.id);
	if (k < 0)
		return k;
	e->dev.identity = strdup(spec->identity);
	e->dev.address = strdup(spec->address);
	e->dev.name = strdup(spec->name ? spec->name : "");
	e->dev.labels = labels ? json_incref(labels) : json_array();
	e->dev.reported = json_object();
	if (!e->dev.identity || !e->dev.address || !e->dev.name || !e->dev.labels ||
	    !e->dev.reported)
		return -ENOMEM;
	e->dev.transport = spec->transport;
	e->dev.source = spec->source;
	e->dev.baud = spec->baud;
	e->name_pinned = pin && spec->name;
	e->labels_pinned = pin && labels;

	k = gw_registry_row(e, &row, &labels_text);
	if (k < 0)
		return k;
	k = db_devices_upsert(r->dd, &row, gw_now_ms());
	if (k < 0)
		return k;
	added = TAKE_PTR(e);
	gw_registry_index(r, added);
	*ret = &added->dev;
	gw_registry_notify(r, GW_REGISTRY_ADDED, added, NULL);
	return 0;
}

static bool gw_registry_streq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

int gw_registry_upsert(struct gw_registry *r, const struct gw_device_spec *spec,
		       struct gw_device **ret)
{
	_cleanup_(json_decrefp) json_t *labels = NULL;
	_cleanup_free_ char *labels_text = NULL, *address = NULL, *name = NULL;
	struct gw_registry_entry *e;
	struct gw_device *d;
	const char *next_name;
	json_t *next_labels;
	enum gw_source source;
	unsigned baud;
	bool from_discovery, name_pinned, labels_pinned, changed;
	int k;

	if (!r || gw_registry_spec_check(spec) < 0)
		return -EINVAL;
	if (spec->labels) {
		k = gw_registry_labels_parse(spec->labels, &labels);
		if (k < 0)
			return k;
	}
	d = gw_registry_find_identity(r, spec->identity);
	if (!d) {
		k = gw_registry_create(r, spec, labels, &d);
		if (k < 0)
			return k;
		if (ret)
			*ret = d;
		return 0;
	}

	/* What the device becomes: config and API overrule discovery and pin the
	 * name and labels they set; discovery fills in only what is not pinned,
	 * and does not know the baud rate of a device config or the API added. */
	e = gw_registry_entry_of(d);
	from_discovery = spec->source == GW_SOURCE_DISCOVERED;
	source = from_discovery ? d->source : spec->source;
	baud = from_discovery && d->source != GW_SOURCE_DISCOVERED ? d->baud : spec->baud;
	next_name = d->name;
	name_pinned = e->name_pinned;
	if (spec->name && (!from_discovery || !e->name_pinned)) {
		next_name = spec->name;
		name_pinned = name_pinned || !from_discovery;
	}
	next_labels = d->labels;
	labels_pinned = e->labels_pinned;
	if (labels && (!from_discovery || !e->labels_pinned)) {
		next_labels = labels;
		labels_pinned = labels_pinned || !from_discovery;
	}
	changed = spec->transport != d->transport || baud != d->baud || source != d->source ||
		  !gw_registry_streq(spec->address, d->address) ||
		  !gw_registry_streq(next_name, d->name) || !json_equal(next_labels, d->labels);
	if (!changed && name_pinned == e->name_pinned && labels_pinned == e->labels_pinned) {
		if (ret)
			*ret = d;
		return 0;
	}

	labels_text = json_dumps(next_labels, JSON_COMPACT);
	address = strdup(spec->address);
	name = strdup(next_name);
	if (!labels_text || !address || !name)
		return -ENOMEM;
	k = db_devices_upsert(r->dd,
			      &(struct db_device){
				      .id = d->id,
				      .identity = d->identity,
				      .transport = gw_transport_to_string(spec->transport),
				      .address = address,
				      .name = name,
				      .labels = labels_text,
				      .source = gw_source_to_string(source),
				      .baud = baud,
				      .name_pinned = name_pinned,
				      .labels_pinned = labels_pinned,
			      },
			      gw_now_ms());
	if (k < 0)
		return k;

	free(d->address);
	d->address = TAKE_PTR(address);
	free(d->name);
	d->name = TAKE_PTR(name);
	if (next_labels != d->labels) {
		json_decref(d->labels);
		d->labels = json_incref(next_labels);
	}
	d->transport = spec->transport;
	d->baud = baud;
	d->source = source;
	e->name_pinned = name_pinned;
	e->labels_pinned = labels_pinned;
	if (changed)
		gw_registry_notify(r, GW_REGISTRY_CHANGED, e, NULL);
	if (ret)
		*ret = d;
	return 0;
}

int gw_registry_remove(struct gw_registry *r, struct gw_device *d)
{
	struct gw_registry_entry *e;
	int k;

	if (!r || !d)
		return -EINVAL;
	/* Listeners hold the device while they run. */
	assert(r->notifying == 0);
	e = gw_registry_entry_of(d);
	k = db_devices_delete(r->dd, d->id);
	if (k < 0 && k != -ENOENT)
		return k;
	gw_registry_dirty_unlink(r, e);
	gw_registry_unindex(r, e);
	if (d->online)
		r->n_online--;
	gw_registry_notify(r, GW_REGISTRY_REMOVED, e, NULL);
	gw_registry_entry_free(e);
	return 0;
}

void gw_registry_seen(struct gw_registry *r, struct gw_device *d)
{
	if (!r || !d)
		return;
	d->last_seen_ms = gw_now_ms();
	gw_registry_mark(r, gw_registry_entry_of(d), GW_DIRTY_SEEN);
}

void gw_registry_set_rssi(struct gw_registry *r, struct gw_device *d, int rssi)
{
	if (!r || !d)
		return;
	if (d->has_rssi && d->rssi == rssi)
		return;
	d->rssi = rssi;
	d->has_rssi = true;
	gw_registry_mark(r, gw_registry_entry_of(d), GW_DIRTY_RSSI);
}

void gw_registry_set_online(struct gw_registry *r, struct gw_device *d, bool online)
{
	int k;

	if (!r || !d || d->online == online)
		return;
	/* The memory state changes even if the write fails: it is what the
	 * links see, and every device starts offline after a restart anyway. */
	k = db_devices_update_online(r->dd, d->id, online, gw_now_ms());
	if (k < 0)
		gw_log_errno(LOG_WARNING, k, "registry", "%s: storing %s state, ignoring: %m",
			     d->id, online ? "online" : "offline");
	d->online = online;
	if (online) {
		r->n_online++;
		gw_registry_seen(r, d);
	} else {
		r->n_online--;
	}
	gw_registry_notify(r, online ? GW_REGISTRY_ONLINE : GW_REGISTRY_OFFLINE,
			   gw_registry_entry_of(d), NULL);
}

/* An explicit name or labels (the API, an operator): pinned against discovery. */
static int gw_registry_set_names(struct gw_registry *r, struct gw_device *d, const char *name,
				 json_t *labels)
{
	struct gw_registry_entry *e = gw_registry_entry_of(d);
	_cleanup_free_ char *text = NULL, *copy = NULL;
	bool name_pinned = e->name_pinned || name, labels_pinned = e->labels_pinned || labels;
	bool changed;
	int k;

	changed = (name && !gw_registry_streq(name, d->name)) ||
		  (labels && !json_equal(labels, d->labels));
	if (!changed && name_pinned == e->name_pinned && labels_pinned == e->labels_pinned)
		return 0;
	text = json_dumps(labels ? labels : d->labels, JSON_COMPACT);
	copy = strdup(name ? name : d->name);
	if (!text || !copy)
		return -ENOMEM;
	k = db_devices_update_names(r->dd, d->id, copy, name_pinned, text, labels_pinned,
				    gw_now_ms());
	if (k < 0)
		return k;
	free(d->name);
	d->name = TAKE_PTR(copy);
	if (labels) {
		json_decref(d->labels);
		d->labels = json_incref(labels);
	}
	e->name_pinned = name_pinned;
	e->labels_pinned = labels_pinned;
	if (changed)
		gw_registry_notify(r, GW_REGISTRY_CHANGED, e, NULL);
	return 0;
}

int gw_registry_set_name(struct gw_registry *r, struct gw_device *d, const char *name)
{
	if (!r || !d || !gw_registry_text_valid(name, GW_NAME_MAX))
		return -EINVAL;
	return gw_registry_set_names(r, d, name, NULL);
}

int gw_registry_set_labels(struct gw_registry *r, struct gw_device *d, json_t *labels)
{
	_cleanup_(json_decrefp) json_t *copy = NULL;
	int k;

	if (!r || !d)
		return -EINVAL;
	k = gw_registry_labels_copy(labels, &copy);
	if (k < 0)
		return k;
	return gw_registry_set_names(r, d, NULL, copy);
}

int gw_registry_set_reported(struct gw_registry *r, struct gw_device *d, const char *section,
			     json_t *value)
{
	_cleanup_(json_decrefp) json_t *v = value, *entry = NULL;

	if (!r || !d || !v || !gw_registry_text_valid(section, GW_SECTION_MAX) || !*section)
		return -EINVAL;
	entry = json_pack("{sOsI}", "value", v, "at", (json_int_t)gw_now_ms());
	if (!entry)
		return -ENOMEM;
	if (json_object_set(d->reported, section, entry) < 0)
		return -ENOMEM;
	gw_registry_mark(r, gw_registry_entry_of(d), GW_DIRTY_REPORTED);
	gw_registry_notify(r, GW_REGISTRY_REPORTED, gw_registry_entry_of(d), section);
	return 0;
}

json_t *gw_registry_get_reported(struct gw_device *d, const char *section, uint64_t *ret_at_ms)
{
	json_t *entry, *value;

	if (!d || !section)
		return NULL;
	entry = json_object_get(d->reported, section);
	value = json_object_get(entry, "value");
	if (!value)
		return NULL;
	if (ret_at_ms)
		*ret_at_ms = (uint64_t)json_integer_value(json_object_get(entry, "at"));
	return value;
}

/* Keeps the sections stored as {"value": ..., "at": ms}; drops anything else
 * (a hand-edited or damaged row) rather than refusing to start. */
static json_t *gw_registry_reported_load(const char *id, const char *text)
{
	_cleanup_(json_decrefp) json_t *all = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	_cleanup_(json_decrefp) json_t *out = json_object();
	const char *section;
	json_t *v;

	if (!out)
		return NULL;
	if (!json_is_object(all)) {
		gw_warn("registry", "%s: stored reported data is not a JSON object, dropping it",
			id);
		return TAKE_PTR(out);
	}
	json_object_foreach (all, section, v) {
		json_t *at = json_object_get(v, "at");
		bool good = json_object_get(v, "value") && json_is_integer(at) &&
			    json_integer_value(at) >= 0 &&
			    gw_registry_text_valid(section, GW_SECTION_MAX);

		if (!good) {
			gw_warn("registry", "%s: stored reported section is malformed, dropping it",
				id);
			continue;
		}
		if (json_object_set(out, section, v) < 0)
			return NULL;
	}
	return TAKE_PTR(out);
}

static int gw_registry_on_row(const struct db_device *row, void *userdata)
{
	struct gw_registry *r = userdata;
	_cleanup_(gw_registry_entry_freep) struct gw_registry_entry *e = NULL;
	_cleanup_(json_decrefp) json_t *labels = NULL, *stored = NULL;
	int transport, source, k;

	transport = gw_transport_from_string(row->transport);
	source = gw_source_from_string(row->source);
	if (transport < 0 || source < 0 || !*row->id || !*row->identity) {
		gw_warn("registry", "device row \"%s\" is not usable, skipping it", row->id);
		return 0;
	}
	k = gw_registry_reserve(r);
	if (k < 0)
		return k;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	stored = json_loads(row->labels, 0, NULL);
	if (!stored || gw_registry_labels_copy(stored, &labels) < 0) {
		gw_warn("registry", "%s: stored labels are malformed, dropping them", row->id);
		labels = json_array();
	}
	e->dev.id = strdup(row->id);
	e->dev.identity = strdup(row->identity);
	e->dev.address = strdup(row->address);
	e->dev.name = strdup(row->name);
	e->dev.labels = TAKE_PTR(labels);
	e->dev.reported = gw_registry_reported_load(row->id, row->reported);
	if (!e->dev.id || !e->dev.identity || !e->dev.address || !e->dev.name ||
	    !e->dev.labels || !e->dev.reported)
		return -ENOMEM;
	e->dev.transport = transport;
	e->dev.source = source;
	e->dev.baud = row->baud;
	e->dev.last_seen_ms = row->last_seen_ms;
	e->dev.has_rssi = row->has_rssi;
	e->dev.rssi = row->rssi;
	e->name_pinned = row->name_pinned;
	e->labels_pinned = row->labels_pinned;
	/* Rows come ordered by id; identities in any order: keep both indexes sorted. */
	gw_registry_index(r, TAKE_PTR(e));
	return 0;
}

int gw_registry_new(struct gw_manager *m, struct gw_registry **ret)
{
	struct gw_registry *r;
	int k;

	if (!m || !m->db || !m->event || !ret)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->m = m;
	r->flush_interval_ms = GW_REGISTRY_FLUSH_DEFAULT_MS;
	k = db_devices_new(m->db, &r->dd);
	if (k < 0)
		goto fail;
	/* Nothing is connected yet: whatever the last run left, everything starts offline. */
	k = db_devices_reset_online(r->dd);
	if (k < 0)
		goto fail;
	k = db_devices_load(r->dd, gw_registry_on_row, r);
	if (k < 0)
		goto fail;
	/* One timer for every device; armed when the first change waits. */
	k = sd_event_add_time(m->event, &r->flush_timer, CLOCK_MONOTONIC, UINT64_MAX, 1000 * 1000,
			      gw_registry_on_flush, r);
	if (k < 0)
		goto fail;
	(void)sd_event_source_set_enabled(r->flush_timer, SD_EVENT_OFF);
	(void)sd_event_source_set_description(r->flush_timer, "registry-flush");
	*ret = r;
	return 0;
fail:
	gw_registry_free(r);
	return k;
}

struct gw_registry *gw_registry_free(struct gw_registry *r)
{
	int k;

	if (!r)
		return NULL;
	if (r->n_dirty) {
		k = gw_registry_flush(r);
		if (k < 0)
			gw_log_errno(LOG_WARNING, k, "registry",
				     "writing last seen, rssi and reported of %zu devices: %m",
				     r->n_dirty);
	}
	sd_event_source_disable_unref(r->flush_timer);
	for (size_t i = 0; i < r->n; i++)
		gw_registry_entry_free(r->by_id[i]);
	free(r->by_id);
	free(r->by_identity);
	free(r->listeners);
	db_devices_free(r->dd);
	free(r);
	return NULL;
}
