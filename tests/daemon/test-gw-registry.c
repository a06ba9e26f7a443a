/* test-gw-registry: ids, precedence, persistence across restarts, listeners, paging, batching */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "db/db.h"
#include "lib/macro.h"
#include "tests/tap.h"

static char dir[] = "/tmp/smpgw-test-registry-XXXXXX";

static const char *tmp_path(const char *name)
{
	static char p[256];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

/* The manager as smpgwd builds it, with only what the registry needs. */
static void start(struct gw_manager *m, const char *dbname)
{
	char err[256] = "";
	int r;

	memset(m, 0, sizeof(*m));
	if (sd_event_new(&m->event) < 0 || gw_config_init(&m->config) < 0)
		abort();
	r = db_open(tmp_path(dbname), &m->db, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "db_open: %s\n", err);
		abort();
	}
	r = gw_registry_new(m, &m->registry);
	if (r < 0) {
		fprintf(stderr, "gw_registry_new: %s\n", strerror(-r));
		abort();
	}
}

static void stop(struct gw_manager *m)
{
	m->registry = gw_registry_free(m->registry);
	m->db = db_close(m->db);
	m->event = sd_event_unref(m->event);
	gw_config_clear(&m->config);
}

static long long query_int(struct db *db, const char *q, const char *arg)
{
	sqlite3_stmt *st;
	long long v = -1;

	if (sqlite3_prepare_v2(db_handle(db), q, -1, &st, NULL) != SQLITE_OK)
		abort();
	if (arg)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_type(st, 0) == SQLITE_NULL ? -2 : sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void exec_sql(struct db *db, const char *q)
{
	if (sqlite3_exec(db_handle(db), q, NULL, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, "%s: %s\n", q, sqlite3_errmsg(db_handle(db)));
		abort();
	}
}

static bool id_well_formed(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > 63 || id[0] == '-' || id[n - 1] == '-' || strstr(id, "--"))
		return false;
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
			return false;
	return true;
}

static void check_id(const char *identity, const char *want)
{
	char buf[64] = "";

	is_int(gw_registry_id_from_identity(identity, buf, sizeof(buf)), 0, "id of %s", identity);
	is_str(buf, want, "id of %s is %s", identity, want);
}

static void test_ids(void)
{
	char buf[64], other[64], big[400];
	unsigned seed = 1;
	unsigned bad = 0;

	check_id("ble:C0:FF:EE:00:00:01", "ble-c0-ff-ee-00-00-01");
	check_id("tty:/dev/ttyACM0", "tty-dev-ttyacm0");
	check_id("tty:/dev/serial/by-id/usb-ZEPHYR_Board_0123-if00",
		 "tty-dev-serial-by-id-usb-zephyr-board-0123-if00");
	check_id("usb:0123ABCdef", "usb-0123abcdef");
	check_id("udp:127.0.0.1:1337", "udp-127-0-0-1-1337");
	check_id("udp:[::1]:1337", "udp-1-1337");
	check_id("udp:[fe80::1%eth0]:1337", "udp-fe80-1-eth0-1337");
	/* Hostile identities: nothing of them survives but letters, digits and single dashes. */
	check_id("tty:../../etc/passwd", "tty-etc-passwd");
	check_id("%2e%2e%2f..%00", "2e-2e-2f-00");
	/* Nothing left: "dev-" and the first 8 hex digits of SHA-256 of the identity. */
	check_id("/../", "dev-7302d5f9");
	check_id("::://", "dev-9150be29");
	check_id("\xff\xfe ble \xc3\xa9t\xc3\xa9 \x01\x7f", "ble-t");

	/* Long identities are cut and keep apart by a hash of the whole identity. */
	memset(big, 0, sizeof(big));
	memcpy(big, "usb:", 4);
	memset(big + 4, 'A', 300);
	is_int(gw_registry_id_from_identity(big, buf, sizeof(buf)), 0, "long identity");
	is_str(buf, "usb-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-255b2624",
	       "cut to 63 characters with the identity's hash");
	is_int(strlen(buf), 63, "63 characters");
	big[303] = 'B';
	is_int(gw_registry_id_from_identity(big, other, sizeof(other)), 0, "other long identity");
	ok(strcmp(buf, other) != 0, "long identities that differ at the end get different ids");

	/* Bad calls. */
	is_int(gw_registry_id_from_identity(NULL, buf, sizeof(buf)), -EINVAL, "NULL identity");
	is_int(gw_registry_id_from_identity("", buf, sizeof(buf)), -EINVAL, "empty identity");
	is_int(gw_registry_id_from_identity("ble:C0:FF:EE:00:00:01", buf, 10), -ENOBUFS,
	       "a short buffer is refused");
	is_int(gw_registry_id_from_identity("ble:C0:FF:EE:00:00:01", buf, 22), 0,
	       "an exact buffer is enough");
	is_int(gw_registry_id_from_identity(big, buf, 40), -ENOBUFS, "short buffer, long identity");

	/* Random bytes (no NUL): always a well-formed id. */
	for (unsigned i = 0; i < 5000; i++) {
		char s[80];
		size_t n = 1 + rand_r(&seed) % (sizeof(s) - 1);

		for (size_t k = 0; k < n; k++)
			s[k] = (char)(1 + rand_r(&seed) % 255);
		s[n] = 0;
		if (gw_registry_id_from_identity(s, buf, sizeof(buf)) < 0 || !id_well_formed(buf))
			bad++;
	}
	is_int(bad, 0, "5000 random identities all give ids of [a-z0-9-], at most 63 long");
}

/* Every event a listener saw, in order. */
struct record {
	unsigned n;
	struct {
		enum gw_registry_event ev;
		char id[64];
		char section[32];
	} ev[64];
};

static void on_event(struct gw_registry *r, enum gw_registry_event ev, struct gw_device *d,
		     const char *section, void *userdata)
{
	struct record *rec = userdata;

	if (rec->n >= ELEMENTSOF(rec->ev))
		abort();
	rec->ev[rec->n].ev = ev;
	snprintf(rec->ev[rec->n].id, sizeof(rec->ev[0].id), "%s", d->id);
	snprintf(rec->ev[rec->n].section, sizeof(rec->ev[0].section), "%s", section ? section : "");
	rec->n++;
}

static bool saw(struct record *rec, unsigned i, enum gw_registry_event ev, const char *id,
		const char *section)
{
	return i < rec->n && rec->ev[i].ev == ev && strcmp(rec->ev[i].id, id) == 0 &&
	       strcmp(rec->ev[i].section, section ? section : "") == 0;
}

static const char *label(struct gw_device *d, size_t i)
{
	return json_string_value(json_array_get(d->labels, i));
}

static void test_upsert_precedence(void)
{
	struct gw_manager m;
	struct record rec = { 0 };
	struct gw_device *d = NULL, *d2 = NULL;
	unsigned long long w;
	struct gw_device_spec spec = {
		.transport = GW_TRANSPORT_BLE,
		.identity = "ble:C0:FF:EE:00:00:01",
		.address = "/org/bluez/hci0/dev_C0_FF_EE_00_00_01",
		.name = "Sensor",
		.source = GW_SOURCE_DISCOVERED,
	};

	start(&m, "upsert.db");
	is_int(gw_registry_add_listener(m.registry, on_event, &rec), 0, "listener added");

	is_int(gw_registry_upsert(m.registry, &spec, &d), 0, "discovered device created");
	ok(d && strcmp(d->id, "ble-c0-ff-ee-00-00-01") == 0, "id derived from the identity");
	is_str(d->name, "Sensor", "discovery name");
	is_int(d->source, GW_SOURCE_DISCOVERED, "source discovered");
	is_int(json_array_size(d->labels), 0, "no labels");
	ok(!d->online && d->last_seen_ms == 0 && !d->has_rssi, "new: offline, never seen");
	ok(saw(&rec, 0, GW_REGISTRY_ADDED, d->id, NULL), "ADDED");
	is_int(query_int(m.db, "SELECT count(*) FROM devices WHERE id = ?1", d->id), 1,
	       "persisted before upsert returned");

	/* The same again: nothing to write, nothing to tell. */
	w = db_write_count(m.db);
	is_int(gw_registry_upsert(m.registry, &spec, &d2), 0, "same spec again");
	ok(d2 == d, "same device");
	is_int(db_write_count(m.db), w, "no write for an unchanged device");
	is_int(rec.n, 1, "no event for an unchanged device");

	/* Discovery may rename a device nobody named, and move it. */
	spec.name = "Sensor 2";
	spec.address = "/org/bluez/hci1/dev_C0_FF_EE_00_00_01";
	is_int(gw_registry_upsert(m.registry, &spec, NULL), 0, "rediscovered with a new name");
	is_str(d->name, "Sensor 2", "discovery renames an unnamed device");
	is_str(d->address, "/org/bluez/hci1/dev_C0_FF_EE_00_00_01", "address updated");
	ok(saw(&rec, 1, GW_REGISTRY_CHANGED, d->id, NULL), "CHANGED");

	/* The API names it and gives labels: it wins. */
	spec.source = GW_SOURCE_API;
	spec.name = "Kitchen";
	spec.labels = " a, b,,a ,";
	is_int(gw_registry_upsert(m.registry, &spec, NULL), 0, "registered by the API");
	is_str(d->name, "Kitchen", "API name");
	is_int(d->source, GW_SOURCE_API, "source api");
	is_int(json_array_size(d->labels), 2, "labels parsed: empty dropped, duplicates once");
	ok(label(d, 0) && strcmp(label(d, 0), "a") == 0 && strcmp(label(d, 1), "b") == 0,
	   "labels a, b in order, spaces trimmed");
	ok(saw(&rec, 2, GW_REGISTRY_CHANGED, d->id, NULL), "CHANGED");

	/* Discovery again: the address follows, the name and labels stay. */
	spec.source = GW_SOURCE_DISCOVERED;
	spec.name = "BlueZ name";
	spec.labels = "discovered";
	spec.address = "/org/bluez/hci0/dev_C0_FF_EE_00_00_01";
	is_int(gw_registry_upsert(m.registry, &spec, NULL), 0, "rediscovered");
	is_str(d->name, "Kitchen", "discovery does not overwrite the API's name");
	is_int(json_array_size(d->labels), 2, "nor its labels");
	is_int(d->source, GW_SOURCE_API, "source stays api");
	is_str(d->address, "/org/bluez/hci0/dev_C0_FF_EE_00_00_01", "address still follows");
	is_int(query_int(m.db, "SELECT name = 'Kitchen' AND address LIKE '%hci0%' FROM devices "
			       "WHERE id = ?1", d->id), 1, "the database agrees");

	/* Config overrules the API too; NULL name/labels keep what is known. */
	spec.source = GW_SOURCE_CONFIG;
	spec.name = NULL;
	spec.labels = NULL;
	is_int(gw_registry_upsert(m.registry, &spec, NULL), 0, "listed in config, no name");
	is_str(d->name, "Kitchen", "NULL name keeps the name");
	is_int(json_array_size(d->labels), 2, "NULL labels keep the labels");
	is_int(d->source, GW_SOURCE_CONFIG, "source config");
	spec.name = "Conf";
	spec.labels = "";
	is_int(gw_registry_upsert(m.registry, &spec, NULL), 0, "config name");
	is_str(d->name, "Conf", "config renames");
	is_int(json_array_size(d->labels), 0, "empty labels clear them");

	/* An explicit rename of a discovered device holds against later discovery. */
	spec = (struct gw_device_spec){ .transport = GW_TRANSPORT_BLE,
					.identity = "ble:11:22:33:44:55:66",
					.address = "/org/bluez/hci0/dev_11_22_33_44_55_66",
					.name = "Adv", .source = GW_SOURCE_DISCOVERED };
	is_int(gw_registry_upsert(m.registry, &spec, &d2), 0, "second discovered device");
	is_int(gw_registry_set_name(m.registry, d2, "Porch"), 0, "renamed by the operator");
	is_str(d2->name, "Porch", "renamed");
	spec.name = "Adv again";
	is_int(gw_registry_upsert(m.registry, &spec, NULL), 0, "rediscovered");
	is_str(d2->name, "Porch", "the operator's name stays");
	is_int(d2->source, GW_SOURCE_DISCOVERED, "still a discovered device");
	{
		json_t *l = json_pack("[ss]", "garden", "garden");

		is_int(gw_registry_set_labels(m.registry, d2, l), 0, "labels set");
		is_int(json_array_size(d2->labels), 1, "duplicates once");
		spec.labels = "bluez";
		is_int(gw_registry_upsert(m.registry, &spec, NULL), 0, "rediscovered with labels");
		is_str(label(d2, 0), "garden", "the operator's labels stay");
		json_decref(l);
	}

	/* Serial: discovery does not know the baud that config set. */
	spec = (struct gw_device_spec){ .transport = GW_TRANSPORT_SERIAL,
					.identity = "tty:/dev/ttyACM0",
					.address = "/dev/ttyACM0", .name = "bench",
					.source = GW_SOURCE_CONFIG, .baud = 921600 };
	is_int(gw_registry_upsert(m.registry, &spec, &d2), 0, "serial device from config");
	is_int(d2->baud, 921600, "baud");
	spec.source = GW_SOURCE_DISCOVERED;
	spec.baud = 0;
	is_int(gw_registry_upsert(m.registry, &spec, NULL), 0, "probed by discovery");
	is_int(d2->baud, 921600, "the configured baud stays");
	is_str(d2->name, "bench", "and the name");
	is_int(gw_registry_count(m.registry), 3, "three devices");
	stop(&m);
}

static void test_bad_specs(void)
{
	struct gw_manager m;
	struct gw_device *d = NULL;
	struct gw_device_spec good = {
		.transport = GW_TRANSPORT_UDP, .identity = "udp:127.0.0.1:1337",
		.address = "127.0.0.1:1337", .source = GW_SOURCE_API,
	};
	struct gw_device_spec s;
	char longname[300], manylabels[400] = "";
	json_t *l;

	start(&m, "bad.db");
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	for (int i = 0; i < 33; i++)
		snprintf(manylabels + strlen(manylabels), sizeof(manylabels) - strlen(manylabels),
			 "l%d,", i);

	is_int(gw_registry_upsert(m.registry, NULL, &d), -EINVAL, "no spec");
#define BAD(field, value, what)                                                        \
	do {                                                                           \
		s = good;                                                              \
		s.field = value;                                                       \
		is_int(gw_registry_upsert(m.registry, &s, &d), -EINVAL, "refused: %s", what); \
	} while (0)
	BAD(identity, NULL, "no identity");
	BAD(identity, "", "empty identity");
	BAD(identity, "udp:1.2.3.4:1\n", "newline in identity");
	BAD(identity, longname, "identity too long");
	BAD(address, NULL, "no address");
	BAD(address, "", "empty address");
	BAD(address, "127.0.0.1:\x01", "control byte in address");
	BAD(name, "\xc3\x28", "invalid UTF-8 name");
	BAD(name, "\xed\xa0\x80", "UTF-16 surrogate in name");
	BAD(name, "\xc0\xaf", "overlong UTF-8 in name");
	BAD(name, longname, "name too long");
	BAD(labels, manylabels, "33 labels");
	BAD(labels, "ok,\x1b[31m", "escape sequence in a label");
	BAD(transport, (enum gw_transport)7, "unknown transport");
	BAD(source, (enum gw_source)-1, "unknown source");
	BAD(baud, 115200, "baud on a UDP device");
#undef BAD
	is_int(gw_registry_count(m.registry), 0, "nothing was created");
	is_int(query_int(m.db, "SELECT count(*) FROM devices", NULL), 0, "nothing was stored");
	s = good;
	s.name = "k\xc3\xbc" "che";
	is_int(gw_registry_upsert(m.registry, &s, &d), 0, "UTF-8 names are fine");

	is_int(gw_registry_set_name(m.registry, d, NULL), -EINVAL, "NULL name");
	is_int(gw_registry_set_name(m.registry, d, "a\tb"), -EINVAL, "tab in name");
	l = json_pack("{s[]}", "x");
	is_int(gw_registry_set_labels(m.registry, d, l), -EINVAL, "labels not an array");
	json_decref(l);
	l = json_pack("[si]", "a", 3);
	is_int(gw_registry_set_labels(m.registry, d, l), -EINVAL, "a label that is not a string");
	json_decref(l);
	l = json_pack("[s]", "a,b");
	is_int(gw_registry_set_labels(m.registry, d, l), -EINVAL, "a comma in a label");
	json_decref(l);
	l = json_pack("[s]", "");
	is_int(gw_registry_set_labels(m.registry, d, l), -EINVAL, "an empty label");
	json_decref(l);
	is_int(gw_registry_set_reported(m.registry, d, NULL, json_true()), -EINVAL, "no section");
	is_int(gw_registry_set_reported(m.registry, d, "", json_true()), -EINVAL, "empty section");
	is_int(gw_registry_set_reported(m.registry, d, "info", NULL), -EINVAL, "no value");
	is_int(gw_registry_add_listener(m.registry, NULL, NULL), -EINVAL, "no listener function");
	is_str(d->name, "k\xc3\xbc" "che", "unchanged by refused calls");
	is_int(json_object_size(d->reported), 0, "nothing reported");
	stop(&m);
}

static void test_collisions(void)
{
	struct gw_manager m;
	struct gw_device *a = NULL, *b = NULL, *c = NULL, *x = NULL, *y = NULL;
	struct gw_device_spec s = { .transport = GW_TRANSPORT_BLE, .address = "/x",
				    .source = GW_SOURCE_DISCOVERED };

	start(&m, "collide.db");
	s.identity = "ble:C0:FF:EE:00:00:01";
	is_int(gw_registry_upsert(m.registry, &s, &a), 0, "first");
	s.identity = "ble:c0:ff:ee:00:00:01";
	is_int(gw_registry_upsert(m.registry, &s, &b), 0, "same id derived, other identity");
	s.identity = "BLE-c0-ff-ee-00-00-01";
	is_int(gw_registry_upsert(m.registry, &s, &c), 0, "and a third");
	is_str(a->id, "ble-c0-ff-ee-00-00-01", "the first keeps the plain id");
	is_str(b->id, "ble-c0-ff-ee-00-00-01-45d34831", "the second: its identity's hash appended");
	is_str(c->id, "ble-c0-ff-ee-00-00-01-607f360e", "the third: its own hash");

	s.transport = GW_TRANSPORT_UDP;
	s.identity = "udp:[::1]:1337";
	is_int(gw_registry_upsert(m.registry, &s, &x), 0, "udp [::1]:1337");
	s.identity = "udp:[::1]::1337";
	is_int(gw_registry_upsert(m.registry, &s, &y), 0, "udp [::1]::1337");
	is_str(x->id, "udp-1-1337", "plain");
	is_str(y->id, "udp-1-1337-3b2a2a26", "hashed");
	ok(gw_registry_find(m.registry, "udp-1-1337-3b2a2a26") == y, "found by the hashed id");
	stop(&m);

	/* Ids are stored: they survive restarts, whatever order devices come back in. */
	start(&m, "collide.db");
	a = gw_registry_find_identity(m.registry, "ble:c0:ff:ee:00:00:01");
	ok(a && strcmp(a->id, "ble-c0-ff-ee-00-00-01-45d34831") == 0, "hashed id after restart");
	a = gw_registry_find(m.registry, "ble-c0-ff-ee-00-00-01");
	ok(a && strcmp(a->identity, "ble:C0:FF:EE:00:00:01") == 0, "plain id after restart");
	is_int(gw_registry_count(m.registry), 5, "five devices, five ids");
	stop(&m);
}

static void test_counter_suffix(void)
{
	struct gw_manager m;
	struct gw_device *d = NULL;
	struct gw_device_spec s = { .transport = GW_TRANSPORT_UDP, .address = "h:1",
				    .source = GW_SOURCE_API };

	start(&m, "counter.db");
	/* udp:[::1]:1337 derives udp-1-1337 and would fall back to udp-1-1337-8f4bfde8:
	 * take both first. */
	s.identity = "udp-1-1337";
	is_int(gw_registry_upsert(m.registry, &s, NULL), 0, "plain taken");
	s.identity = "udp-1-1337-8f4bfde8";
	is_int(gw_registry_upsert(m.registry, &s, NULL), 0, "hashed taken");
	s.identity = "udp:[::1]:1337";
	is_int(gw_registry_upsert(m.registry, &s, &d), 0, "third way");
	is_str(d->id, "udp-1-1337-8f4bfde8-2", "a counter after the hash");
	stop(&m);
}

static void test_persistence(void)
{
	struct gw_manager m;
	struct gw_device *d = NULL, *u = NULL;
	uint64_t at = 0, t0, t1, seen;
	json_t *v;
	struct gw_device_spec ble = { .transport = GW_TRANSPORT_BLE,
				      .identity = "ble:AA:BB:CC:DD:EE:FF",
				      .address = "/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF",
				      .name = "thermo", .labels = "floor1,heating",
				      .source = GW_SOURCE_DISCOVERED };
	struct gw_device_spec udp = { .transport = GW_TRANSPORT_UDP, .identity = "udp:[::1]:1337",
				      .address = "[::1]:1337", .name = "sim",
				      .source = GW_SOURCE_API };
	struct gw_device_spec ser = { .transport = GW_TRANSPORT_SERIAL, .identity = "usb:0123",
				      .address = "/dev/ttyACM3", .source = GW_SOURCE_CONFIG,
				      .baud = 1000000 };

	start(&m, "persist.db");
	ok(gw_registry_upsert(m.registry, &ble, &d) == 0 &&
	   gw_registry_upsert(m.registry, &udp, &u) == 0 &&
	   gw_registry_upsert(m.registry, &ser, NULL) == 0, "three devices");
	t0 = gw_now_ms();
	gw_registry_set_online(m.registry, d, true);
	gw_registry_set_online(m.registry, u, true);
	gw_registry_set_rssi(m.registry, d, -67);
	is_int(gw_registry_set_reported(m.registry, u, "info",
					json_pack("{ss}", "node", "zephyr")), 0, "info reported");
	is_int(gw_registry_set_reported(m.registry, u, "image_state",
					json_pack("[{si}]", "slot", 0)), 0, "image state reported");
	t1 = gw_now_ms();
	is_int(gw_registry_count_online(m.registry), 2, "two online");
	is_int(query_int(m.db, "SELECT online FROM devices WHERE id = ?1", d->id), 1,
	       "online stored");
	seen = d->last_seen_ms;
	ok(seen >= t0 && seen <= t1, "coming online counts as seen");
	/* A simulated crash would keep online = 1 in the file; the next start clears it. */
	stop(&m);

	start(&m, "persist.db");
	is_int(gw_registry_count(m.registry), 3, "three devices after restart");
	is_int(gw_registry_count_online(m.registry), 0, "all offline after restart");
	is_int(query_int(m.db, "SELECT count(*) FROM devices WHERE online <> 0", NULL), 0,
	       "and offline in the database");
	d = gw_registry_find(m.registry, "ble-aa-bb-cc-dd-ee-ff");
	ok(d != NULL, "ble device found by id");
	if (!d)
		abort();
	ok(!d->online, "offline");
	is_str(d->identity, "ble:AA:BB:CC:DD:EE:FF", "identity");
	is_int(d->transport, GW_TRANSPORT_BLE, "transport");
	is_str(d->address, "/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF", "address");
	is_str(d->name, "thermo", "name");
	is_str(label(d, 1), "heating", "labels");
	is_int(d->source, GW_SOURCE_DISCOVERED, "source");
	is_int(d->last_seen_ms, seen, "last seen written at shutdown");
	ok(d->has_rssi && d->rssi == -67, "rssi written at shutdown");
	ok(d->live == NULL, "no link");

	u = gw_registry_find_identity(m.registry, "udp:[::1]:1337");
	ok(u && strcmp(u->id, "udp-1-1337") == 0, "udp device found by identity");
	if (!u)
		abort();
	v = gw_registry_get_reported(u, "info", &at);
	ok(v && strcmp(json_string_value(json_object_get(v, "node")), "zephyr") == 0,
	   "reported info survived");
	ok(at >= t0 && at <= t1, "with its time");
	v = gw_registry_get_reported(u, "image_state", NULL);
	is_int(json_integer_value(json_object_get(json_array_get(v, 0), "slot")), 0,
	       "image state survived");
	ok(gw_registry_get_reported(u, "stats", &at) == NULL, "never reported: NULL");
	ok(u->last_seen_ms >= t0 && !u->has_rssi, "udp: seen, no rssi");

	d = gw_registry_find(m.registry, "usb-0123");
	ok(d && d->baud == 1000000 && d->transport == GW_TRANSPORT_SERIAL, "baud survived");
	/* The API's name is still pinned after the restart. */
	udp.source = GW_SOURCE_DISCOVERED;
	udp.name = "probed";
	is_int(gw_registry_upsert(m.registry, &udp, NULL), 0, "rediscovered after restart");
	is_str(u->name, "sim", "the API's name holds across restarts");
	stop(&m);
}

static void test_reload_damaged_rows(void)
{
	struct gw_manager m;
	struct gw_device *d;
	char err[256];

	/* Rows a hand edit or an old bug left: the registry keeps the device and
	 * drops what it cannot read. */
	if (db_open(tmp_path("damaged.db"), &m.db, err, sizeof(err)) < 0)
		abort();
	exec_sql(m.db,
		 "INSERT INTO devices (id, identity, transport, address, name, labels, source, "
		 "online, reported, created_at, updated_at) VALUES "
		 "('a', 'udp:a:1', 'udp', 'a:1', 'A', 'not json', 'api', 1, "
		 " '{\"info\":{\"value\":1,\"at\":5},\"bad\":{\"at\":\"x\"},\"worse\":3}', 1, 1),"
		 "('b', 'udp:b:1', 'udp', 'b:1', 'B', '[1,\"x\"]', 'config', 0, '[1]', 1, 1),"
		 "('c', 'udp:c:1', 'udp', 'c:1', 'C', '[\"ok\"]', 'discovered', 1, '{', 1, 1)");
	db_close(m.db);

	start(&m, "damaged.db");
	is_int(gw_registry_count(m.registry), 3, "every row loaded");
	is_int(gw_registry_count_online(m.registry), 0, "none online");
	d = gw_registry_find(m.registry, "a");
	ok(d && json_array_size(d->labels) == 0, "unreadable labels dropped");
	ok(d && json_object_size(d->reported) == 1 && gw_registry_get_reported(d, "info", NULL),
	   "only the well-formed reported section kept");
	d = gw_registry_find(m.registry, "b");
	ok(d && json_array_size(d->labels) == 0 && json_object_size(d->reported) == 0,
	   "labels with a number, reported not an object: dropped");
	d = gw_registry_find(m.registry, "c");
	ok(d && strcmp(label(d, 0), "ok") == 0 && json_object_size(d->reported) == 0,
	   "good labels kept, truncated JSON dropped");
	ok(gw_registry_find_identity(m.registry, "udp:c:1") == d, "found by identity");
	stop(&m);
}

static void test_reported(void)
{
	struct gw_manager m;
	struct record rec = { 0 };
	struct gw_device *d = NULL;
	struct gw_device_spec s = { .transport = GW_TRANSPORT_UDP, .identity = "udp:10.0.0.1:1337",
				    .address = "10.0.0.1:1337", .source = GW_SOURCE_API };
	uint64_t at = 0, t0, t1;
	json_t *v;

	start(&m, "reported.db");
	gw_registry_upsert(m.registry, &s, &d);
	gw_registry_add_listener(m.registry, on_event, &rec);
	t0 = gw_now_ms();
	v = json_pack("{sisi}", "buf_size", 2048, "buf_count", 4);
	is_int(gw_registry_set_reported(m.registry, d, "params", v), 0, "params");
	t1 = gw_now_ms();
	v = gw_registry_get_reported(d, "params", &at);
	is_int(json_integer_value(json_object_get(v, "buf_size")), 2048, "value back");
	ok(at >= t0 && at <= t1, "stamped with the current time");
	ok(saw(&rec, 0, GW_REGISTRY_REPORTED, d->id, "params"), "REPORTED names the section");
	v = json_pack("{si}", "buf_size", 512);
	is_int(gw_registry_set_reported(m.registry, d, "params", v), 0, "params again");
	v = gw_registry_get_reported(d, "params", NULL);
	ok(json_integer_value(json_object_get(v, "buf_size")) == 512 &&
	   !json_object_get(v, "buf_count"), "replaced, not merged");
	is_int(gw_registry_set_reported(m.registry, d, "stats", json_string("x")), 0, "stats");
	ok(saw(&rec, 2, GW_REGISTRY_REPORTED, d->id, "stats"), "REPORTED stats");
	is_int(json_object_size(d->reported), 2, "two sections");
	ok(json_is_integer(json_object_get(json_object_get(d->reported, "stats"), "at")),
	   "stored as {value, at}");
	is_int(query_int(m.db, "SELECT reported_at FROM devices WHERE id = ?1", d->id), -2,
	       "not written yet (batched)");
	is_int(gw_registry_flush(m.registry), 0, "flush");
	ok(query_int(m.db, "SELECT reported_at FROM devices WHERE id = ?1", d->id) >= (long long)t0,
	   "reported_at written");
	is_int(query_int(m.db, "SELECT json_extract(reported, '$.params.value.buf_size') "
			       "FROM devices WHERE id = ?1", d->id),
	       512, "the JSON column holds the value");
	stop(&m);
}

static struct self_remover_state {
	unsigned calls;
} self_remover;

static void on_event_remove_self(struct gw_registry *r, enum gw_registry_event ev,
				 struct gw_device *d, const char *section, void *userdata)
{
	struct self_remover_state *st = userdata;

	st->calls++;
	gw_registry_remove_listener(r, on_event_remove_self, st);
}

static unsigned removed_seen_name_ok;

static void on_event_check_removed(struct gw_registry *r, enum gw_registry_event ev,
				   struct gw_device *d, const char *section, void *userdata)
{
	/* REMOVED comes before the device is freed: everything is still readable,
	 * and the registry no longer lists it. */
	if (ev == GW_REGISTRY_REMOVED && strcmp(d->name, "gone") == 0 &&
	    gw_registry_find(r, d->id) == NULL)
		removed_seen_name_ok++;
}

static void test_listeners(void)
{
	struct gw_manager m;
	struct record rec = { 0 }, rec2 = { 0 };
	struct gw_device *d = NULL;
	struct gw_device_spec s = { .transport = GW_TRANSPORT_UDP, .identity = "udp:10.0.0.2:1337",
				    .address = "10.0.0.2:1337", .name = "gone",
				    .source = GW_SOURCE_API };
	char id[64];
	json_t *l;

	start(&m, "listeners.db");
	gw_registry_add_listener(m.registry, on_event, &rec);
	gw_registry_add_listener(m.registry, on_event_remove_self, &self_remover);
	gw_registry_add_listener(m.registry, on_event, &rec2);
	gw_registry_add_listener(m.registry, on_event_check_removed, NULL);

	gw_registry_upsert(m.registry, &s, &d);
	snprintf(id, sizeof(id), "%s", d->id);
	gw_registry_set_online(m.registry, d, true);
	gw_registry_set_online(m.registry, d, true);
	gw_registry_set_online(m.registry, d, false);
	gw_registry_set_online(m.registry, d, false);
	gw_registry_set_online(m.registry, d, true);
	gw_registry_set_name(m.registry, d, "renamed");
	gw_registry_set_name(m.registry, d, "renamed");
	gw_registry_set_name(m.registry, d, "gone");
	l = json_pack("[s]", "x");
	gw_registry_set_labels(m.registry, d, l);
	json_decref(l);
	gw_registry_set_reported(m.registry, d, "info", json_integer(1));
	gw_registry_set_rssi(m.registry, d, -40);
	gw_registry_seen(m.registry, d);
	s.address = "10.0.0.3:1337";
	gw_registry_upsert(m.registry, &s, NULL);
	is_int(gw_registry_count_online(m.registry), 1, "online before removal");
	is_int(gw_registry_remove(m.registry, d), 0, "removed");
	is_int(gw_registry_count_online(m.registry), 0, "the online count follows removal");

	is_int(rec.n, 10, "ten events: none for repeats, rssi or seen");
	ok(saw(&rec, 0, GW_REGISTRY_ADDED, id, NULL), "ADDED");
	ok(saw(&rec, 1, GW_REGISTRY_ONLINE, id, NULL), "ONLINE");
	ok(saw(&rec, 2, GW_REGISTRY_OFFLINE, id, NULL), "OFFLINE");
	ok(saw(&rec, 3, GW_REGISTRY_ONLINE, id, NULL), "ONLINE again");
	ok(saw(&rec, 4, GW_REGISTRY_CHANGED, id, NULL), "CHANGED (name)");
	ok(saw(&rec, 5, GW_REGISTRY_CHANGED, id, NULL), "CHANGED (name back)");
	ok(saw(&rec, 6, GW_REGISTRY_CHANGED, id, NULL), "CHANGED (labels)");
	ok(saw(&rec, 7, GW_REGISTRY_REPORTED, id, "info"), "REPORTED info");
	ok(saw(&rec, 8, GW_REGISTRY_CHANGED, id, NULL), "CHANGED (address)");
	ok(saw(&rec, 9, GW_REGISTRY_REMOVED, id, NULL), "REMOVED");
	is_int(rec2.n, rec.n, "a listener after one that removed itself got every event");
	is_int(self_remover.calls, 1, "a listener removed from its own callback runs once");
	is_int(removed_seen_name_ok, 1, "REMOVED comes with the device still readable");

	/* Removed listeners hear nothing more. */
	gw_registry_remove_listener(m.registry, on_event, &rec);
	s.identity = "udp:10.0.0.9:1";
	gw_registry_upsert(m.registry, &s, NULL);
	is_int(rec.n, 10, "removed listener: no more events");
	is_int(rec2.n, 11, "the other still hears");
	stop(&m);
}

static void test_remove(void)
{
	struct gw_manager m;
	struct gw_device *d = NULL, *e = NULL;
	struct gw_device_spec s = { .transport = GW_TRANSPORT_UDP, .identity = "udp:10.0.1.1:1",
				    .address = "10.0.1.1:1", .source = GW_SOURCE_API };

	start(&m, "remove.db");
	gw_registry_upsert(m.registry, &s, &d);
	s.identity = "udp:10.0.1.2:1";
	gw_registry_upsert(m.registry, &s, &e);
	/* A device with writes pending, removed before they are written. */
	gw_registry_seen(m.registry, d);
	gw_registry_set_reported(m.registry, d, "info", json_true());
	gw_registry_seen(m.registry, e);
	is_int(gw_registry_remove(m.registry, d), 0, "removed with writes pending");
	ok(gw_registry_find(m.registry, "udp-10-0-1-1-1") == NULL, "not found by id");
	ok(gw_registry_find_identity(m.registry, "udp:10.0.1.1:1") == NULL, "nor by identity");
	ok(gw_registry_next(m.registry, NULL) == e, "iteration skips it");
	is_int(gw_registry_count(m.registry), 1, "one left");
	is_int(gw_registry_flush(m.registry), 0, "the pending writes of the others still go");
	ok(query_int(m.db, "SELECT last_seen FROM devices WHERE id = 'udp-10-0-1-2-1'", NULL) > 0,
	   "written");
	is_int(query_int(m.db, "SELECT count(*) FROM devices WHERE id = 'udp-10-0-1-1-1'", NULL), 0,
	       "deleted from the database");
	stop(&m);

	start(&m, "remove.db");
	is_int(gw_registry_count(m.registry), 1, "still gone after restart");
	s.identity = "udp:10.0.1.1:1";
	is_int(gw_registry_upsert(m.registry, &s, &d), 0, "registered again");
	is_str(d->id, "udp-10-0-1-1-1", "same id");
	is_int(json_object_size(d->reported), 0, "a fresh device");
	stop(&m);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_pagination(void)
{
	struct gw_manager m;
	char *ids[1000];
	unsigned order[1000], bad = 0, pages = 0;
	size_t got = 0;
	struct gw_device *d;
	const char *after = NULL;
	unsigned seed = 7;
	unsigned long long w;

	start(&m, "many.db");
	for (unsigned i = 0; i < 1000; i++)
		order[i] = i;
	for (unsigned i = 999; i > 0; i--) {
		unsigned j = rand_r(&seed) % (i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	w = db_write_count(m.db);
	for (unsigned i = 0; i < 1000; i++) {
		char ident[64], addr[64];
		struct gw_device_spec s = { .transport = GW_TRANSPORT_UDP, .identity = ident,
					    .address = addr, .source = GW_SOURCE_CONFIG };

		unsigned hi = order[i] / 256, lo = order[i] % 256;

		snprintf(ident, sizeof(ident), "udp:10.%u.%u.1:1337", hi, lo);
		snprintf(addr, sizeof(addr), "10.%u.%u.1:1337", hi, lo);
		if (gw_registry_upsert(m.registry, &s, &d) < 0)
			bad++;
		else
			ids[i] = strdup(d->id);
	}
	is_int(bad, 0, "1000 devices registered in random order");
	is_int(db_write_count(m.db) - w, 1000, "one write each");
	is_int(gw_registry_count(m.registry), 1000, "count");
	qsort(ids, 1000, sizeof(ids[0]), cmp_str);

	/* Pages of 37 through the cursor, as the API walks them. */
	for (;;) {
		size_t n = 0;

		/* Bounded, in case the cursor does not move. */
		for (d = gw_registry_next(m.registry, after); d && n < 37 && got <= 1000;
		     d = gw_registry_next(m.registry, d->id), n++) {
			if (got >= 1000 || strcmp(d->id, ids[got]) != 0 ||
			    gw_registry_find(m.registry, d->id) != d)
				bad++;
			got++;
			after = d->id;
		}
		if (n == 0)
			break;
		pages++;
	}
	is_int(got, 1000, "every device once");
	is_int(bad, 0, "in id order");
	is_int(pages, 28, "28 pages of 37");
	d = gw_registry_next(m.registry, "udp-10-0-1-1-1337x");
	ok(d && strcmp(d->id, "udp-10-0-10-1-1337") == 0, "a cursor that is not an id works");
	ok(gw_registry_next(m.registry, ids[999]) == NULL, "nothing after the last");
	ok(gw_registry_next(m.registry, "") == gw_registry_find(m.registry, ids[0]),
	   "\"\" is the start");
	stop(&m);

	start(&m, "many.db");
	is_int(gw_registry_count(m.registry), 1000, "1000 devices after restart");
	bad = 0;
	got = 0;
	for (d = gw_registry_next(m.registry, NULL); d && got <= 1000;
	     d = gw_registry_next(m.registry, d->id)) {
		if (got >= 1000 || strcmp(d->id, ids[got]) != 0 ||
		    gw_registry_find_identity(m.registry, d->identity) != d)
			bad++;
		got++;
	}
	ok(got == 1000 && bad == 0, "same order, every identity found");
	stop(&m);
	for (unsigned i = 0; i < 1000; i++)
		free(ids[i]);
}

/* Runs the loop until the database has seen a write more than w, or bound_ms pass. */
static bool wait_write(struct gw_manager *m, unsigned long long w, unsigned bound_ms)
{
	struct timespec ts;
	uint64_t end;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	end = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + bound_ms;
	for (;;) {
		if (db_write_count(m->db) > w)
			return true;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 > end)
			return false;
		if (sd_event_run(m->event, 100 * 1000) < 0)
			return false;
	}
}

static void test_seen_batching(void)
{
	struct gw_manager m;
	struct gw_device *d[10];
	unsigned long long w;
	uint64_t t0;

	start(&m, "seen.db");
	for (unsigned i = 0; i < 10; i++) {
		char ident[32], addr[32];
		struct gw_device_spec s = { .transport = GW_TRANSPORT_BLE, .identity = ident,
					    .address = addr, .source = GW_SOURCE_DISCOVERED };

		snprintf(ident, sizeof(ident), "ble:00:00:00:00:00:%02u", i);
		snprintf(addr, sizeof(addr), "/org/bluez/hci0/dev_%u", i);
		gw_registry_upsert(m.registry, &s, &d[i]);
	}
	gw_registry_set_flush_interval(m.registry, 100);

	w = db_write_count(m.db);
	t0 = gw_now_ms();
	for (unsigned n = 0; n < 1000; n++) {
		gw_registry_seen(m.registry, d[n % 10]);
		gw_registry_set_rssi(m.registry, d[n % 10], -40 - (int)(n % 30));
	}
	is_int(db_write_count(m.db), w, "1000 packets and rssi updates: no write yet");
	ok(d[3]->last_seen_ms >= t0, "last seen is current in memory at once");
	ok(wait_write(&m, w, 3000), "the timer wrote them");
	is_int(db_write_count(m.db) - w, 10, "one write per device for the whole batch");
	is_int(query_int(m.db, "SELECT last_seen FROM devices WHERE id = ?1", d[3]->id),
	       d[3]->last_seen_ms, "last seen stored");
	is_int(query_int(m.db, "SELECT rssi FROM devices WHERE id = ?1", d[9]->id), d[9]->rssi,
	       "rssi stored");

	/* After a write, a device waits for the next interval again. */
	w = db_write_count(m.db);
	for (unsigned n = 0; n < 100; n++)
		gw_registry_seen(m.registry, d[0]);
	is_int(db_write_count(m.db), w, "no write right after the last one");
	ok(wait_write(&m, w, 3000), "the next interval writes");
	is_int(db_write_count(m.db) - w, 1, "one write for the one busy device");

	/* Nothing pending: the timer stays quiet. */
	w = db_write_count(m.db);
	ok(!wait_write(&m, w, 400), "no writes without changes (four intervals)");
	stop(&m);
}

static void test_flush_on_shutdown(void)
{
	struct gw_manager m;
	struct gw_device *d = NULL;
	struct gw_device_spec s = { .transport = GW_TRANSPORT_UDP, .identity = "udp:10.9.9.9:1",
				    .address = "10.9.9.9:1", .source = GW_SOURCE_API };
	unsigned long long w;
	uint64_t seen;

	start(&m, "shutdown.db");
	gw_registry_upsert(m.registry, &s, &d);
	for (unsigned n = 0; n < 50; n++)
		gw_registry_seen(m.registry, d);
	gw_registry_set_reported(m.registry, d, "info", json_string("v"));
	seen = d->last_seen_ms;
	w = db_write_count(m.db);
	is_int(gw_registry_flush(m.registry), 0, "flush");
	is_int(db_write_count(m.db) - w, 1, "one write for 50 packets and a report");
	is_int(gw_registry_flush(m.registry), 0, "flush with nothing pending");
	is_int(db_write_count(m.db) - w, 1, "writes nothing");
	gw_registry_seen(m.registry, d);
	seen = d->last_seen_ms;
	/* The default interval is seconds away: only the shutdown writes it. */
	m.registry = gw_registry_free(m.registry);
	is_int(query_int(m.db, "SELECT last_seen FROM devices WHERE id = 'udp-10-9-9-9-1'", NULL),
	       seen, "written when the registry is freed");
	stop(&m);
}

static void test_strings(void)
{
	is_str(gw_transport_to_string(GW_TRANSPORT_UDP), "udp", "udp");
	is_str(gw_transport_to_string(GW_TRANSPORT_SERIAL), "serial", "serial");
	is_str(gw_transport_to_string(GW_TRANSPORT_BLE), "ble", "ble");
	ok(gw_transport_to_string((enum gw_transport)9) == NULL, "unknown transport: NULL");
	is_int(gw_transport_from_string("serial"), GW_TRANSPORT_SERIAL, "serial parsed");
	is_int(gw_transport_from_string("ble"), GW_TRANSPORT_BLE, "ble parsed");
	is_int(gw_transport_from_string("udp"), GW_TRANSPORT_UDP, "udp parsed");
	is_int(gw_transport_from_string("UDP"), -EINVAL, "case matters");
	is_int(gw_transport_from_string(NULL), -EINVAL, "NULL");
	is_str(gw_source_to_string(GW_SOURCE_CONFIG), "config", "config");
	is_str(gw_source_to_string(GW_SOURCE_DISCOVERED), "discovered", "discovered");
	is_str(gw_source_to_string(GW_SOURCE_API), "api", "api");
	ok(gw_source_to_string((enum gw_source)5) == NULL, "unknown source: NULL");
}

static void test_new_errors(void)
{
	struct gw_manager m = { 0 };
	struct gw_registry *r = NULL;

	is_int(gw_registry_new(NULL, &r), -EINVAL, "no manager");
	is_int(gw_registry_new(&m, &r), -EINVAL, "no database");
	ok(r == NULL, "ret untouched");
	ok(gw_registry_free(NULL) == NULL, "free(NULL)");
	ok(gw_registry_find(NULL, "x") == NULL && gw_registry_next(NULL, NULL) == NULL &&
	   gw_registry_count(NULL) == 0, "NULL registry reads as empty");
}

int main(void)
{
	char cmd[128];

	if (!mkdtemp(dir))
		abort();
	test_ids();
	test_upsert_precedence();
	test_bad_specs();
	test_collisions();
	test_counter_suffix();
	test_persistence();
	test_reload_damaged_rows();
	test_reported();
	test_listeners();
	test_remove();
	test_pagination();
	test_seen_batching();
	test_flush_on_shutdown();
	test_strings();
	test_new_errors();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", dir);
	return tap_done();
}
