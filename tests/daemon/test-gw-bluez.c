/* test-gw-bluez: BLE discovery against the fake BlueZ and a scripted one on a private bus */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "daemon/gw-bluez.h"
#include "daemon/gw-config.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "db/db.h"
#include "lib/smp-ble-link.h"
#include "tests/dbus-helper.h"
#include "tests/sim/sim-bluez.h"
#include "tests/tap.h"

#define WAIT_MS 5000

/* Runs the loop until cond holds, at most WAIT_MS; evaluates to cond. */
#define WAIT(e, cond)                                                                              \
	({                                                                                         \
		long long _end = now_ms() + WAIT_MS;                                               \
		while (!(cond) && now_ms() < _end)                                                 \
			(void)sd_event_run((e), 50 * 1000);                                        \
		(cond);                                                                            \
	})

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool streq_ptr(const char *a, const char *b)
{
	return a && b ? strcmp(a, b) == 0 : a == b;
}

/* Registry events, counted per kind. */
struct counts {
	unsigned added, online, offline, changed;
};

struct env {
	sd_event *e;
	struct test_dbus dbus;
	char dir[64];
	char db_path[128];
	struct gw_manager m;
	struct counts c;
};

static void on_registry(struct gw_registry *r, enum gw_registry_event ev, struct gw_device *d,
			const char *section, void *userdata)
{
	struct counts *c = userdata;

	(void)r, (void)d, (void)section;
	switch (ev) {
	case GW_REGISTRY_ADDED:
		c->added++;
		break;
	case GW_REGISTRY_ONLINE:
		c->online++;
		break;
	case GW_REGISTRY_OFFLINE:
		c->offline++;
		break;
	case GW_REGISTRY_CHANGED:
		c->changed++;
		break;
	default:
		break;
	}
}

static int bus_open(struct env *t, bool attach, sd_bus **ret)
{
	sd_bus *b = NULL;
	int r;

	r = sd_bus_new(&b);
	if (r >= 0)
		r = sd_bus_set_address(b, t->dbus.address);
	if (r >= 0)
		r = sd_bus_set_bus_client(b, 1);
	if (r >= 0)
		r = sd_bus_start(b);
	if (r >= 0 && attach)
		r = sd_bus_attach_event(b, t->e, 0);
	if (r < 0) {
		sd_bus_unref(b);
		return r;
	}
	*ret = b;
	return 0;
}

/* A round trip to the bus daemon: everything sent before on this connection
 * has been handled by the daemon when it returns (answers wait in the queue). */
static int bus_sync(sd_bus *bus)
{
	int r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
				   "org.freedesktop.DBus", "GetId", NULL, NULL, "");

	return r < 0 ? r : 0;
}

static int registry_open(struct env *t)
{
	char err[256];
	int r;

	r = db_open(t->db_path, &t->m.db, err, sizeof(err));
	if (r < 0) {
		tap_diag("db_open: %s", err);
		return r;
	}
	r = gw_registry_new(&t->m, &t->m.registry);
	if (r < 0)
		return r;
	return gw_registry_add_listener(t->m.registry, on_registry, &t->c);
}

static void registry_close(struct env *t)
{
	gw_registry_remove_listener(t->m.registry, on_registry, &t->c);
	t->m.registry = gw_registry_free(t->m.registry);
	t->m.db = db_close(t->m.db);
}

static struct gw_device *dev(struct env *t, const char *identity)
{
	return gw_registry_find_identity(t->m.registry, identity);
}

static bool dev_online(struct env *t, const char *identity)
{
	struct gw_device *d = dev(t, identity);

	return d && d->online;
}

static bool dev_offline(struct env *t, const char *identity)
{
	struct gw_device *d = dev(t, identity);

	return d && !d->online;
}

static bool dev_rssi(struct env *t, const char *identity, int rssi)
{
	struct gw_device *d = dev(t, identity);

	return d && d->has_rssi && d->rssi == rssi;
}

/* ---- against sim-bluez (tests/sim), as BlueZ 5.66 behaves ---- */

#define ID_A "ble:C0:FF:EE:00:00:01"
#define ID_B "ble:C0:FF:EE:00:00:02"
#define ID_N "ble:C0:FF:EE:00:00:03"
#define ID_K "ble:C0:FF:EE:00:00:04"
#define ID_P "ble:C0:FF:EE:00:00:05"
#define ID_C "ble:C0:FF:EE:00:00:06"
#define PATH_A SIM_BLUEZ_ADAPTER_PATH "/dev_C0_FF_EE_00_00_01"

static const struct sim_bluez_config sim_cfg = {
    .discovery_delay_ms = 10,
    .rssi_interval_ms = 50,
    .no_request_name = true, /* the test owns org.bluez on the sim's connection */
};

static const struct sim_bluez_device_config dev_a = {
    .address = "C0:FF:EE:00:00:01", .name = "alpha", .rssi = -55, .rssi_fixed = true};
/* Lower case on purpose: identities are upper case whatever BlueZ says. */
static const struct sim_bluez_device_config dev_b = {.address = "c0:ff:ee:00:00:02"};
static const struct sim_bluez_device_config dev_n = {
    .address = "C0:FF:EE:00:00:03", .name = "battery", .no_smp_service = true};
static const struct sim_bluez_device_config dev_k = {
    .address = "C0:FF:EE:00:00:04", .name = "headset", .no_smp_service = true, .known = true};
static const struct sim_bluez_device_config dev_p = {.address = "C0:FF:EE:00:00:05",
						     .name = "paired",
						     .known = true,
						     .rssi = -70,
						     .rssi_fixed = true};
static const struct sim_bluez_device_config dev_c = {
    .address = "C0:FF:EE:00:00:06", .name = "gamma", .rssi_fixed = true};

static int sim_add_all(struct sim_bluez *s)
{
	const struct sim_bluez_device_config *all[] = {&dev_a, &dev_b, &dev_n, &dev_k, &dev_p};
	int r = 0;

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]) && r >= 0; i++)
		r = sim_bluez_add_device(s, all[i], NULL);
	return r;
}

static int on_connect_reply(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	int *done = userdata;

	(void)error;
	*done = sd_bus_message_is_method_error(m, NULL) ? -1 : 1;
	return 0;
}

static void test_sim(struct env *t)
{
	struct sim_bluez *s = NULL;
	sd_bus *sim_bus = NULL, *sim_bus2 = NULL;
	struct gw_device *d;
	char id[64];
	int done = 0;
	unsigned offline, added;

	is_int(gw_bluez_new(&t->m, &t->m.bluez), 0, "sim: gw_bluez_new");
	is_int(gw_bluez_start(t->m.bluez), 0, "sim: started before BlueZ is on the bus");
	is_int(gw_bluez_start(t->m.bluez), -EALREADY, "sim: started twice refused");
	/* GetNameOwner is answered (no owner) before BlueZ shows up: NameOwnerChanged it is. */
	is_int(bus_sync(t->m.bluez_bus), 0, "sim: matches and GetNameOwner handled by the bus");

	/* BlueZ appears: objects first, then the name, as bluetoothd does. */
	if (bus_open(t, true, &sim_bus) < 0 || sim_bluez_new(t->e, sim_bus, &sim_cfg, &s) < 0 ||
	    sim_add_all(s) < 0) {
		ok(false, "sim: fake BlueZ set up");
		return;
	}
	ok(sd_bus_request_name(sim_bus, "org.bluez", 0) >= 0, "sim: org.bluez taken");
	ok(WAIT(t->e, gw_bluez_is_present(t->m.bluez)), "sim: BlueZ appearing is noticed");
	ok(WAIT(t->e, sim_bluez_is_discovering(s)), "sim: the adapter discovers");
	ok(WAIT(t->e, gw_bluez_discovering(t->m.bluez) == 1), "sim: StartDiscovery answered");

	/* P is known to BlueZ from the start (GetManagedObjects), A and B are discovered. */
	ok(WAIT(t->e, dev_online(t, ID_A) && dev_online(t, ID_B) && dev_online(t, ID_P)),
	   "sim: the three SMP devices are online");
	/* Any RSSI report comes after every discovery report (50 ms vs 10 ms). */
	sim_bluez_device_set_rssi(sim_bluez_find_device(s, dev_a.address), -44);
	ok(WAIT(t->e, dev_rssi(t, ID_A, -44)), "sim: an RSSI change reaches the registry");
	ok(!sim_bluez_device_is_visible(sim_bluez_find_device(s, dev_n.address)),
	   "sim: the SMP filter reached the adapter (a battery device is never reported)");
	ok(sim_bluez_device_is_visible(sim_bluez_find_device(s, dev_k.address)),
	   "sim: a known non-SMP device is on the bus");
	ok(!dev(t, ID_N) && !dev(t, ID_K), "sim: only SMP devices are registered");
	is_int(gw_registry_count(t->m.registry), 3, "sim: three devices registered");
	is_int(gw_bluez_device_count(t->m.bluez), 3, "sim: three SMP objects tracked");
	is_int(t->c.added, 3, "sim: three ADDED events");

	d = dev(t, ID_A);
	gw_registry_id_from_identity(ID_A, id, sizeof(id));
	ok(d && streq_ptr(d->id, id), "sim: A's id derives from its identity (%s)", id);
	ok(d && streq_ptr(d->address, PATH_A), "sim: A's address is its object path");
	ok(d && streq_ptr(d->name, "alpha"), "sim: A's name is its BlueZ name");
	ok(d && d->transport == GW_TRANSPORT_BLE && d->source == GW_SOURCE_DISCOVERED,
	   "sim: A is a discovered BLE device");
	ok(d && d->last_seen_ms > 0, "sim: A was seen");
	d = dev(t, ID_B);
	ok(d && streq_ptr(d->address, SIM_BLUEZ_ADAPTER_PATH "/dev_C0_FF_EE_00_00_02"),
	   "sim: B (lower-case address) has an upper-case identity");
	ok(d && d->name && !strstr(d->name, "C0-FF"),
	   "sim: B has no name: BlueZ's address alias is not taken for one");
	d = dev(t, ID_P);
	ok(d && streq_ptr(d->name, "paired") && d->has_rssi && d->rssi == -70,
	   "sim: P (known to BlueZ) has its name and RSSI");

	/* A device appears during discovery, vanishes, and comes back. */
	is_int(sim_bluez_add_device(s, &dev_c, NULL), 0, "sim: C starts advertising");
	ok(WAIT(t->e, dev_online(t, ID_C)), "sim: C is discovered and online");
	ok(dev(t, ID_C) && streq_ptr(dev(t, ID_C)->name, "gamma"), "sim: C's name");
	offline = t->c.offline;
	sim_bluez_remove_device(sim_bluez_find_device(s, dev_c.address));
	ok(WAIT(t->e, dev_offline(t, ID_C)), "sim: C removed by BlueZ goes offline");
	is_int(t->c.offline, offline + 1, "sim: one OFFLINE event");
	is_int(gw_registry_count(t->m.registry), 4, "sim: C is still known");
	ok(dev_online(t, ID_A) && dev_online(t, ID_P), "sim: the others stay online");
	added = t->c.added;
	is_int(sim_bluez_add_device(s, &dev_c, NULL), 0, "sim: C advertises again");
	ok(WAIT(t->e, dev_online(t, ID_C)), "sim: C is back online");
	is_int(t->c.added, added, "sim: C is the same device, not a new one");

	/* Connected=false after a link loss is not "gone". */
	sd_bus_call_method_async(t->m.bluez_bus, NULL, "org.bluez", PATH_A, "org.bluez.Device1",
				 "Connect", on_connect_reply, &done, "");
	ok(WAIT(t->e, done != 0) && done == 1, "sim: A connected");
	offline = t->c.offline;
	sim_bluez_device_drop_connection(sim_bluez_find_device(s, dev_a.address));
	sim_bluez_device_set_rssi(sim_bluez_find_device(s, dev_a.address), -45);
	ok(WAIT(t->e, dev_rssi(t, ID_A, -45)), "sim: A reports RSSI after the link loss");
	ok(dev_online(t, ID_A) && t->c.offline == offline, "sim: a link loss leaves A online");

	/* The adapter disappears (org.bluez stays) and comes back. */
	s = sim_bluez_free(s);
	ok(WAIT(t->e, dev_offline(t, ID_A) && dev_offline(t, ID_B) && dev_offline(t, ID_P) &&
			  dev_offline(t, ID_C)),
	   "sim: adapter gone: every device offline");
	ok(WAIT(t->e, gw_bluez_discovering(t->m.bluez) == 0),
	   "sim: the adapter's removal is noticed");
	ok(gw_bluez_is_present(t->m.bluez), "sim: BlueZ is still there");
	is_int(gw_registry_count(t->m.registry), 4, "sim: every device is still known");
	if (sim_bluez_new(t->e, sim_bus, &sim_cfg, &s) < 0 || sim_add_all(s) < 0) {
		ok(false, "sim: adapter back");
		goto out;
	}
	ok(WAIT(t->e, sim_bluez_is_discovering(s) && gw_bluez_discovering(t->m.bluez) == 1),
	   "sim: discovery restarted on the new adapter");
	ok(WAIT(t->e, dev_online(t, ID_A) && dev_online(t, ID_B) && dev_online(t, ID_P)),
	   "sim: the devices are back online");
	ok(dev_offline(t, ID_C), "sim: C, not advertising any more, stays offline");

	/* BlueZ dies (no InterfacesRemoved at all) and a new bluetoothd starts. */
	offline = t->c.offline;
	sd_bus_close(sim_bus);
	ok(WAIT(t->e, !gw_bluez_is_present(t->m.bluez)), "sim: BlueZ leaving the bus is noticed");
	ok(dev_offline(t, ID_A) && dev_offline(t, ID_B) && dev_offline(t, ID_P),
	   "sim: BlueZ gone: every device offline");
	is_int(t->c.offline, offline + 3, "sim: three OFFLINE events");
	is_int(gw_bluez_discovering(t->m.bluez), 0, "sim: no discovery without BlueZ");
	s = sim_bluez_free(s);
	sim_bus = sd_bus_flush_close_unref(sim_bus);

	if (bus_open(t, true, &sim_bus2) < 0) {
		ok(false, "sim: second connection");
		goto out;
	}
	struct sim_bluez_config cfg2 = sim_cfg;
	cfg2.no_request_name = false;
	if (sim_bluez_new(t->e, sim_bus2, &cfg2, &s) < 0 || sim_add_all(s) < 0) {
		ok(false, "sim: BlueZ restarted");
		goto out;
	}
	ok(WAIT(t->e, gw_bluez_is_present(t->m.bluez)), "sim: BlueZ coming back is noticed");
	ok(WAIT(t->e, sim_bluez_is_discovering(s) && gw_bluez_discovering(t->m.bluez) == 1),
	   "sim: discovery restarted on the new BlueZ");
	ok(WAIT(t->e, dev_online(t, ID_A) && dev_online(t, ID_B) && dev_online(t, ID_P)),
	   "sim: the devices are back online");
	is_int(gw_registry_count(t->m.registry), 4, "sim: no duplicates after the restart");

	/* Shutdown: discovery is stopped. */
	t->m.bluez = gw_bluez_free(t->m.bluez);
	ok(WAIT(t->e, !sim_bluez_is_discovering(s)), "sim: StopDiscovery on free");

	/* What was discovered is in the database. */
	registry_close(t);
	is_int(registry_open(t), 0, "sim: registry reopened");
	is_int(gw_registry_count(t->m.registry), 4, "sim: four devices persisted");
	d = dev(t, ID_A);
	ok(d && streq_ptr(d->name, "alpha") && streq_ptr(d->address, PATH_A) &&
	       d->transport == GW_TRANSPORT_BLE && d->source == GW_SOURCE_DISCOVERED && !d->online,
	   "sim: A persisted (name, address, transport, source), offline after a restart");
	d = dev(t, ID_C);
	ok(d && streq_ptr(d->name, "gamma"), "sim: C persisted");

	/* A new daemon finds BlueZ already there (GetNameOwner, not NameOwnerChanged). */
	added = t->c.added;
	is_int(gw_bluez_new(&t->m, &t->m.bluez), 0, "sim: a second gw_bluez");
	is_int(gw_bluez_start(t->m.bluez), 0, "sim: started with BlueZ on the bus");
	ok(WAIT(t->e, dev_online(t, ID_A) && dev_online(t, ID_B) && dev_online(t, ID_P)),
	   "sim: the devices go online again");
	is_int(t->c.added, added, "sim: as the devices stored, not new ones");
	t->m.bluez = gw_bluez_free(t->m.bluez);
	ok(WAIT(t->e, !sim_bluez_is_discovering(s)), "sim: discovery stopped again");
out:
	t->m.bluez = gw_bluez_free(t->m.bluez);
	sim_bluez_free(s);
	sd_bus_flush_close_unref(sim_bus);
	sd_bus_flush_close_unref(sim_bus2);
}

/* ---- against a scripted BlueZ: what sim-bluez does not do ---- */

#define FAKE_ADAPTER "/org/bluez/hci1"
#define FAKE_DEV "/org/bluez/hci1/dev_C0_FF_EE_00_01_01"
#define FAKE_DEV2 "/org/bluez/hci1/dev_C0_FF_EE_00_01_02"
#define FAKE_BAD "/org/bluez/hci1/dev_bad"
#define FAKE_TWIN "/org/bluez/hci2/dev_C0_FF_EE_00_01_02"
#define FAKE_ID "ble:C0:FF:EE:00:01:01"
#define FAKE_ID2 "ble:C0:FF:EE:00:01:02"

/* One adapter that starts powered off, a device whose UUIDs change, a device
 * with an API name, and a device with a bad address. */
struct fake {
	sd_bus *bus;
	sd_bus_slot *om, *adapter, *dev, *dev2, *bad, *twin;
	bool powered;
	bool smp;
	char alias[32];
	int16_t rssi;
	unsigned n_start;
	char calls[64];	 /* F = SetDiscoveryFilter, S = StartDiscovery, P = StopDiscovery */
	char uuids[128]; /* the last filter */
	char transport[16];
	bool filter_other_keys;
};

static void fake_log(struct fake *f, char c)
{
	size_t n = strlen(f->calls);

	if (n + 1 < sizeof(f->calls)) {
		f->calls[n] = c;
		f->calls[n + 1] = '\0';
	}
}

static int fake_set_filter(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct fake *f = userdata;
	const char *key, *s;
	int r;

	f->uuids[0] = f->transport[0] = '\0';
	f->filter_other_keys = false;
	r = sd_bus_message_enter_container(m, 'a', "{sv}");
	while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		r = sd_bus_message_read(m, "s", &key);
		if (r >= 0 && strcmp(key, "UUIDs") == 0) {
			r = sd_bus_message_enter_container(m, 'v', "as");
			if (r >= 0)
				r = sd_bus_message_enter_container(m, 'a', "s");
			while (r >= 0 && (r = sd_bus_message_read(m, "s", &s)) > 0) {
				if (f->uuids[0])
					strncat(f->uuids, ",",
						sizeof(f->uuids) - strlen(f->uuids) - 1);
				strncat(f->uuids, s, sizeof(f->uuids) - strlen(f->uuids) - 1);
			}
			if (r >= 0)
				r = sd_bus_message_exit_container(m);
			if (r >= 0)
				r = sd_bus_message_exit_container(m);
		} else if (r >= 0 && strcmp(key, "Transport") == 0) {
			r = sd_bus_message_read(m, "v", "s", &s);
			if (r >= 0)
				snprintf(f->transport, sizeof(f->transport), "%s", s);
		} else if (r >= 0) {
			f->filter_other_keys = true;
			r = sd_bus_message_skip(m, "v");
		}
		if (r >= 0)
			r = sd_bus_message_exit_container(m);
	}
	if (r < 0)
		return sd_bus_error_set(error, "org.bluez.Error.InvalidArguments",
					"Invalid arguments");
	fake_log(f, 'F');
	return sd_bus_reply_method_return(m, NULL);
}

static int fake_start(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct fake *f = userdata;

	fake_log(f, 'S');
	f->n_start++;
	if (!f->powered)
		return sd_bus_error_set(error, "org.bluez.Error.NotReady", "Resource Not Ready");
	return sd_bus_reply_method_return(m, NULL);
}

static int fake_stop(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	fake_log(userdata, 'P');
	return sd_bus_reply_method_return(m, NULL);
}

static int fake_adapter_get(sd_bus *bus, const char *path, const char *interface,
			    const char *property, sd_bus_message *reply, void *userdata,
			    sd_bus_error *error)
{
	struct fake *f = userdata;

	if (strcmp(property, "Powered") == 0)
		return sd_bus_message_append(reply, "b", (int)f->powered);
	return sd_bus_message_append(reply, "s", "00:AA:02:00:00:01");
}

/* dev: UUIDs and Alias follow f; dev2: an SMP device named by BlueZ; bad: no valid
 * address; twin: dev2 as a second adapter (hci2, never announced) sees it. */
static int fake_dev_get(sd_bus *bus, const char *path, const char *interface, const char *property,
			sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	struct fake *f = userdata;
	bool first = strcmp(path, FAKE_DEV) == 0;

	if (strcmp(property, "Address") == 0) {
		const char *address = "C0:FF:EE:00:01"; /* FAKE_BAD: one byte short */

		if (first)
			address = "c0:ff:ee:00:01:01";
		else if (strcmp(path, FAKE_DEV2) == 0 || strcmp(path, FAKE_TWIN) == 0)
			address = "C0:FF:EE:00:01:02";
		return sd_bus_message_append(reply, "s", address);
	}
	if (strcmp(property, "Alias") == 0)
		return sd_bus_message_append(reply, "s", first ? f->alias : "bluez-name");
	if (strcmp(property, "RSSI") == 0)
		return sd_bus_message_append(reply, "n", f->rssi);
	if (strcmp(property, "Adapter") == 0)
		return sd_bus_message_append(
		    reply, "o", strcmp(path, FAKE_TWIN) == 0 ? "/org/bluez/hci2" : FAKE_ADAPTER);
	if (strcmp(property, "Connected") == 0)
		return sd_bus_message_append(reply, "b", 0);
	/* UUIDs */
	return sd_bus_message_append(reply, "as", 1,
				     !first || f->smp ? SMP_BLE_SMP_SERVICE_UUID
						      : "0000180f-0000-1000-8000-00805f9b34fb");
}

static const sd_bus_vtable fake_adapter_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("Address", "s", fake_adapter_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Powered", "b", fake_adapter_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_METHOD("SetDiscoveryFilter", "a{sv}", "", fake_set_filter, 0),
    SD_BUS_METHOD("StartDiscovery", "", "", fake_start, 0),
    SD_BUS_METHOD("StopDiscovery", "", "", fake_stop, 0),
    SD_BUS_VTABLE_END,
};

static const sd_bus_vtable fake_dev_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("Address", "s", fake_dev_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Alias", "s", fake_dev_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("RSSI", "n", fake_dev_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("UUIDs", "as", fake_dev_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("Adapter", "o", fake_dev_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Connected", "b", fake_dev_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_VTABLE_END,
};

static int fake_start_bluez(struct env *t, struct fake *f)
{
	int r;

	r = bus_open(t, true, &f->bus);
	if (r >= 0)
		r = sd_bus_add_object_manager(f->bus, &f->om, "/");
	if (r >= 0)
		r = sd_bus_add_object_vtable(f->bus, &f->adapter, FAKE_ADAPTER,
					     "org.bluez.Adapter1", fake_adapter_vtable, f);
	if (r >= 0)
		r = sd_bus_add_object_vtable(f->bus, &f->dev, FAKE_DEV, "org.bluez.Device1",
					     fake_dev_vtable, f);
	if (r >= 0)
		r = sd_bus_add_object_vtable(f->bus, &f->dev2, FAKE_DEV2, "org.bluez.Device1",
					     fake_dev_vtable, f);
	if (r >= 0)
		r = sd_bus_add_object_vtable(f->bus, &f->bad, FAKE_BAD, "org.bluez.Device1",
					     fake_dev_vtable, f);
	if (r >= 0)
		r = sd_bus_request_name(f->bus, "org.bluez", 0);
	return r;
}

static void fake_set_powered(struct fake *f, bool on)
{
	f->powered = on;
	sd_bus_emit_properties_changed(f->bus, FAKE_ADAPTER, "org.bluez.Adapter1", "Powered", NULL);
}

static void test_scripted(struct env *t)
{
	struct fake f = {.alias = "C0-FF-EE-00-01-01", .rssi = -70};
	struct gw_device_spec api = {
	    .transport = GW_TRANSPORT_BLE,
	    .identity = FAKE_ID2,
	    .address = "/org/bluez/hci9/dev_C0_FF_EE_00_01_02",
	    .name = "mine",
	    .source = GW_SOURCE_API,
	};
	struct gw_device *d = NULL;
	unsigned offline;

	/* The API registered one of the devices before discovery found it. */
	is_int(gw_registry_upsert(t->m.registry, &api, &d), 0, "scripted: API device registered");
	is_int(gw_bluez_new(&t->m, &t->m.bluez), 0, "scripted: gw_bluez_new");
	is_int(gw_bluez_start(t->m.bluez), 0, "scripted: started");
	is_int(bus_sync(t->m.bluez_bus), 0, "scripted: matches and GetNameOwner handled");
	if (fake_start_bluez(t, &f) < 0) {
		ok(false, "scripted: BlueZ set up");
		goto out;
	}
	ok(WAIT(t->e, gw_bluez_is_present(t->m.bluez)), "scripted: objects loaded");

	/* Unpowered: nothing is asked until Powered=true; then filter, then start. */
	fake_set_powered(&f, true);
	ok(WAIT(t->e, gw_bluez_discovering(t->m.bluez) == 1), "scripted: discovering once powered");
	is_str(f.calls, "FS",
	       "scripted: SetDiscoveryFilter, then StartDiscovery, only when powered");
	is_str(f.uuids, SMP_BLE_SMP_SERVICE_UUID,
	       "scripted: the filter holds the SMP service only");
	is_str(f.transport, "le", "scripted: the filter asks for LE");
	ok(!f.filter_other_keys, "scripted: the filter has no other keys");

	/* Powered off ends BlueZ's session; powered on starts a new one. */
	fake_set_powered(&f, false);
	ok(WAIT(t->e, gw_bluez_discovering(t->m.bluez) == 0), "scripted: power off noticed");
	fake_set_powered(&f, true);
	ok(WAIT(t->e, gw_bluez_discovering(t->m.bluez) == 1), "scripted: discovering again");
	is_str(f.calls, "FSFS", "scripted: filter and start again after power on");

	/* The API's name wins over BlueZ's; the object path becomes the address. */
	d = dev(t, FAKE_ID2);
	ok(d && streq_ptr(d->name, "mine") && d->source == GW_SOURCE_API,
	   "scripted: discovery keeps the API's name and source");
	ok(d && streq_ptr(d->address, FAKE_DEV2) && d->online,
	   "scripted: the API device gets the object path and goes online");
	ok(!dev(t, FAKE_ID), "scripted: a device without the SMP service is not registered");
	ok(!dev(t, "ble:C0:FF:EE:00:01"), "scripted: a bad address is not registered");
	is_int(gw_bluez_device_count(t->m.bluez), 1, "scripted: one SMP device tracked");

	/* The first device gains the SMP service later. */
	f.smp = true;
	sd_bus_emit_properties_changed(f.bus, FAKE_DEV, "org.bluez.Device1", "UUIDs", NULL);
	ok(WAIT(t->e, dev(t, FAKE_ID) != NULL), "scripted: UUIDs gaining SMP registers the device");
	d = dev(t, FAKE_ID);
	ok(d && d->name && d->name[0] == '\0', "scripted: with BlueZ's address alias, no name");
	ok(d && !d->online, "scripted: a UUIDs change alone is no sighting");
	f.rssi = -61;
	sd_bus_emit_properties_changed(f.bus, FAKE_DEV, "org.bluez.Device1", "RSSI", NULL);
	ok(WAIT(t->e, dev_online(t, FAKE_ID) && dev_rssi(t, FAKE_ID, -61)),
	   "scripted: an RSSI report puts it online");
	snprintf(f.alias, sizeof(f.alias), "kitchen");
	sd_bus_emit_properties_changed(f.bus, FAKE_DEV, "org.bluez.Device1", "Alias", NULL);
	ok(WAIT(t->e, dev(t, FAKE_ID) && streq_ptr(dev(t, FAKE_ID)->name, "kitchen")),
	   "scripted: an alias set in BlueZ becomes the name");

	/* The adapter goes away without removing its devices first. */
	offline = t->c.offline;
	sd_bus_emit_object_removed(f.bus, FAKE_ADAPTER);
	f.adapter = sd_bus_slot_unref(f.adapter);
	ok(WAIT(t->e, dev_offline(t, FAKE_ID) && dev_offline(t, FAKE_ID2)),
	   "scripted: removing the adapter takes its devices offline");
	is_int(t->c.offline, offline + 2, "scripted: two OFFLINE events");
	is_int(gw_bluez_discovering(t->m.bluez), 0, "scripted: no adapter discovers");
	is_int(gw_bluez_device_count(t->m.bluez), 0,
	       "scripted: the adapter's devices are forgotten");
	/* Signals of objects no adapter holds (BlueZ would send none) are ignored... */
	f.rssi = -62;
	sd_bus_emit_properties_changed(f.bus, FAKE_DEV, "org.bluez.Device1", "RSSI", NULL);
	/* ...as the object that InterfacesAdded brings back after them shows. */
	sd_bus_emit_object_added(f.bus, FAKE_DEV2);
	ok(WAIT(t->e, dev_online(t, FAKE_ID2)), "scripted: InterfacesAdded brings a device back");
	ok(dev_offline(t, FAKE_ID) && dev_rssi(t, FAKE_ID, -61),
	   "scripted: an RSSI signal of an unknown object changed nothing");

	/* A device deleted through the API comes back with its next InterfacesAdded,
	 * even with a name the registry refuses. */
	is_int(gw_registry_remove(t->m.registry, dev(t, FAKE_ID)), 0, "scripted: API deletes it");
	snprintf(f.alias, sizeof(f.alias), "tab\there");
	sd_bus_emit_object_added(f.bus, FAKE_DEV);
	ok(WAIT(t->e, dev_online(t, FAKE_ID)), "scripted: InterfacesAdded registers it again");
	ok(dev(t, FAKE_ID) && streq_ptr(dev(t, FAKE_ID)->name, "") && dev_rssi(t, FAKE_ID, -62),
	   "scripted: with its RSSI, without the name that has a control character");

	/* A second adapter hears the same device: it stays on its object (no address
	 * flapping), and moves to the other one when its object goes. */
	unsigned online = t->c.online;
	offline = t->c.offline;
	if (sd_bus_add_object_vtable(f.bus, &f.twin, FAKE_TWIN, "org.bluez.Device1",
				     fake_dev_vtable, &f) < 0) {
		ok(false, "scripted: twin object");
		goto out;
	}
	sd_bus_emit_object_added(f.bus, FAKE_TWIN);
	f.rssi = -63;
	sd_bus_emit_properties_changed(f.bus, FAKE_TWIN, "org.bluez.Device1", "RSSI", NULL);
	ok(WAIT(t->e, dev_rssi(t, FAKE_ID2, -63)), "scripted: the second adapter's RSSI counts");
	ok(dev(t, FAKE_ID2) && streq_ptr(dev(t, FAKE_ID2)->address, FAKE_DEV2),
	   "scripted: the device stays on the first object");
	sd_bus_emit_object_removed(f.bus, FAKE_DEV2);
	f.dev2 = sd_bus_slot_unref(f.dev2);
	ok(WAIT(t->e, dev(t, FAKE_ID2) && streq_ptr(dev(t, FAKE_ID2)->address, FAKE_TWIN)),
	   "scripted: its object removed, it moves to the second adapter's");
	ok(dev_online(t, FAKE_ID2) && t->c.offline == offline && t->c.online == online,
	   "scripted: and stays online throughout");
	sd_bus_emit_object_removed(f.bus, FAKE_TWIN);
	f.twin = sd_bus_slot_unref(f.twin);
	ok(WAIT(t->e, dev_offline(t, FAKE_ID2)), "scripted: the last object gone, it is offline");

	t->m.bluez = gw_bluez_free(t->m.bluez);
out:
	t->m.bluez = gw_bluez_free(t->m.bluez);
	sd_bus_slot_unref(f.om);
	sd_bus_slot_unref(f.adapter);
	sd_bus_slot_unref(f.dev);
	sd_bus_slot_unref(f.dev2);
	sd_bus_slot_unref(f.bad);
	sd_bus_slot_unref(f.twin);
	sd_bus_flush_close_unref(f.bus);
}

static void test_args(struct env *t)
{
	struct gw_manager none = {.event = t->e};
	struct gw_bluez *b = NULL;

	is_int(gw_bluez_new(&none, &b), -EINVAL, "args: no bus, no registry: refused");
	none.bluez_bus = t->m.bluez_bus;
	is_int(gw_bluez_new(&none, &b), -EINVAL, "args: no registry: refused");
	is_int(gw_bluez_start(NULL), -EINVAL, "args: start(NULL)");
	ok(gw_bluez_free(NULL) == NULL, "args: free(NULL)");
	ok(!gw_bluez_is_present(NULL) && gw_bluez_discovering(NULL) == 0 &&
	       gw_bluez_device_count(NULL) == 0,
	   "args: queries on NULL");
}

int main(void)
{
	struct env t = {0};
	int r;

	r = test_dbus_start(&t.dbus);
	if (r == -ENOENT) {
		printf("1..0 # SKIP dbus-daemon not installed\n");
		return 77;
	}
	is_int(r, 0, "private dbus-daemon");
	if (r < 0)
		return tap_done();
	snprintf(t.dir, sizeof(t.dir), "/tmp/test-gw-bluez-XXXXXX");
	if (!mkdtemp(t.dir) || sd_event_new(&t.e) < 0 || gw_config_init(&t.m.config) < 0) {
		ok(false, "environment");
		return tap_done();
	}
	t.m.event = t.e;
	snprintf(t.db_path, sizeof(t.db_path), "%s/smpgw.db", t.dir);
	is_int(registry_open(&t), 0, "registry on a fresh database");
	/* Not attached: gw_bluez_new attaches it to the manager's loop. */
	is_int(bus_open(&t, false, &t.m.bluez_bus), 0, "the daemon's bus connection");

	test_args(&t);
	test_sim(&t);
	test_scripted(&t);

	sd_bus_flush_close_unref(t.m.bluez_bus);
	registry_close(&t);
	gw_config_clear(&t.m.config);
	sd_event_unref(t.e);
	test_dbus_stop(&t.dbus);
	unlink(t.db_path);
	{
		char p[192];

		snprintf(p, sizeof(p), "%s-wal", t.db_path);
		unlink(p);
		snprintf(p, sizeof(p), "%s-shm", t.db_path);
		unlink(p);
	}
	rmdir(t.dir);
	return tap_done();
}
