/* gw-bluez: BLE discovery: SMP devices that BlueZ finds become registry devices */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <systemd/sd-bus.h>

#include "daemon/gw-bluez.h"
#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "lib/smp-ble-link.h"

#define BLUEZ "org.bluez"
#define ADAPTER_IFACE "org.bluez.Adapter1"
#define DEVICE_IFACE "org.bluez.Device1"
#define PROPS_IFACE "org.freedesktop.DBus.Properties"
#define OM_IFACE "org.freedesktop.DBus.ObjectManager"
#define LOG "bluez"

/* "ble:" and a Bluetooth address "AA:BB:CC:DD:EE:FF". */
#define ADDRESS_LEN 17
#define IDENTITY_MAX (4 + ADDRESS_LEN + 1)

/* The signals watched; the table is at the end, after the handlers. */
#define N_MATCHES 5

enum bluez_discovery {
	DISCOVERY_OFF,	  /* not powered, or StartDiscovery failed */
	DISCOVERY_FILTER, /* SetDiscoveryFilter in flight */
	DISCOVERY_START,  /* StartDiscovery in flight */
	DISCOVERY_ON,
};

struct bluez_adapter {
	struct gw_bluez *b;
	struct bluez_adapter *next;
	char *path;
	bool powered;
	enum bluez_discovery discovery;
	sd_bus_slot *call;
};

/* A Device1 object, SMP or not: its UUIDs may still change. */
struct bluez_device {
	struct bluez_device *next;
	char *path;
	char *adapter;
	char *address; /* validated, upper case; NULL until BlueZ told it */
	char *name;
	char *alias;
	bool smp;
	int16_t rssi;
	bool has_rssi;
	char *registered_name; /* the name last given to the registry */
};

struct gw_bluez {
	struct gw_manager *m;
	sd_bus *bus;
	bool started;
	char *owner; /* unique name that owns org.bluez; NULL while absent */
	bool loaded; /* GetManagedObjects answered for this owner */

	sd_bus_slot *matches[N_MATCHES]; /* one per entry of bluez_matches[] */
	sd_bus_slot *owner_call;
	sd_bus_slot *objects_call;

	struct bluez_adapter *adapters;
	struct bluez_device *devices;
};

/* What one a{sv} of Adapter1 or Device1 properties said; strings borrowed
 * from the message. */
struct bluez_props {
	const char *address;
	const char *name;
	const char *alias;
	const char *adapter;
	int16_t rssi;
	bool has_rssi;
	bool rssi_invalidated;
	int smp;       /* -1: no UUIDs */
	int connected; /* -1: absent */
	int powered;   /* -1: absent */
};

static inline bool streq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

static inline bool streq_ptr(const char *a, const char *b)
{
	return a && b ? streq(a, b) : a == b;
}

/* Replaces *p by a copy of s unless equal. Returns 1 when changed, 0, -ENOMEM. */
static int bluez_set_string(char **p, const char *s)
{
	char *c;

	if (streq_ptr(*p, s))
		return 0;
	c = NULL;
	if (s && !(c = strdup(s)))
		return -ENOMEM;
	free(*p);
	*p = c;
	return 1;
}

/* Upper-cases a Bluetooth address into out; false when it is not one. */
static bool bluez_normalize_address(const char *s, char out[ADDRESS_LEN + 1])
{
	if (!s || strlen(s) != ADDRESS_LEN)
		return false;
	for (size_t i = 0; i < ADDRESS_LEN; i++) {
		if (i % 3 == 2) {
			if (s[i] != ':')
				return false;
			out[i] = ':';
		} else {
			if (!isxdigit((unsigned char)s[i]))
				return false;
			out[i] = (char)toupper((unsigned char)s[i]);
		}
	}
	out[ADDRESS_LEN] = '\0';
	return true;
}

/* ---- reading properties ---- */

static int bluez_read_uuids(sd_bus_message *m, int *ret_smp)
{
	const char *u;
	int smp = 0, r;

	r = sd_bus_message_enter_container(m, 'v', "as");
	if (r < 0)
		return r;
	r = sd_bus_message_enter_container(m, 'a', "s");
	if (r < 0)
		return r;
	while ((r = sd_bus_message_read(m, "s", &u)) > 0)
		if (strcasecmp(u, SMP_BLE_SMP_SERVICE_UUID) == 0)
			smp = 1;
	if (r < 0)
		return r;
	r = sd_bus_message_exit_container(m);
	if (r < 0)
		return r;
	r = sd_bus_message_exit_container(m);
	if (r < 0)
		return r;
	*ret_smp = smp;
	return 0;
}

/* Reads an a{sv} of properties. A known key with an unexpected type is
 * skipped like an unknown one: BlueZ is trusted to be BlueZ, not to be
 * bug-free. */
static int bluez_read_props(sd_bus_message *m, struct bluez_props *p)
{
	int r;

	r = sd_bus_message_enter_container(m, 'a', "{sv}");
	if (r < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *key, *contents;
		char type;
		int v;

		r = sd_bus_message_read(m, "s", &key);
		if (r < 0)
			return r;
		r = sd_bus_message_peek_type(m, &type, &contents);
		if (r < 0)
			return r;
		if (type != 'v' || !contents)
			return -EBADMSG;
		if (streq(key, "Address") && streq(contents, "s"))
			r = sd_bus_message_read(m, "v", "s", &p->address);
		else if (streq(key, "Name") && streq(contents, "s"))
			r = sd_bus_message_read(m, "v", "s", &p->name);
		else if (streq(key, "Alias") && streq(contents, "s"))
			r = sd_bus_message_read(m, "v", "s", &p->alias);
		else if (streq(key, "Adapter") && streq(contents, "o"))
			r = sd_bus_message_read(m, "v", "o", &p->adapter);
		else if (streq(key, "RSSI") && streq(contents, "n")) {
			r = sd_bus_message_read(m, "v", "n", &p->rssi);
			p->has_rssi = r >= 0;
		} else if (streq(key, "UUIDs") && streq(contents, "as"))
			r = bluez_read_uuids(m, &p->smp);
		else if (streq(key, "Connected") && streq(contents, "b")) {
			r = sd_bus_message_read(m, "v", "b", &v);
			p->connected = !!v;
		} else if (streq(key, "Powered") && streq(contents, "b")) {
			r = sd_bus_message_read(m, "v", "b", &v);
			p->powered = !!v;
		} else
			r = sd_bus_message_skip(m, "v");
		if (r < 0)
			return r;
		r = sd_bus_message_exit_container(m);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	return sd_bus_message_exit_container(m);
}

static void bluez_props_init(struct bluez_props *p)
{
	*p = (struct bluez_props){.smp = -1, .connected = -1, .powered = -1};
}

/* Whether a message comes from the current org.bluez (not a stale or other sender). */
static bool bluez_from_owner(struct gw_bluez *b, sd_bus_message *m)
{
	return b->owner && streq_ptr(sd_bus_message_get_sender(m), b->owner);
}

/* ---- adapters: discovery sessions ---- */

static struct bluez_adapter *bluez_adapter_find(struct gw_bluez *b, const char *path)
{
	for (struct bluez_adapter *a = b->adapters; a; a = a->next)
		if (streq(a->path, path))
			return a;
	return NULL;
}

static void bluez_adapter_free(struct bluez_adapter *a)
{
	if (!a)
		return;
	sd_bus_slot_unref(a->call);
	free(a->path);
	free(a);
}

static int bluez_on_start_discovery(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct bluez_adapter *a = userdata;
	const sd_bus_error *e = sd_bus_message_get_error(m);

	(void)error;
	a->call = sd_bus_slot_unref(a->call);
	/* InProgress: this connection's session already runs (BlueZ counts one per client). */
	if (!e || sd_bus_error_has_name(e, "org.bluez.Error.InProgress")) {
		a->discovery = DISCOVERY_ON;
		gw_info(LOG, "%s: discovering SMP devices", a->path);
		return 0;
	}
	a->discovery = DISCOVERY_OFF;
	/* NotReady: powered off meanwhile; Powered=true starts it again. */
	gw_log(sd_bus_error_has_name(e, "org.bluez.Error.NotReady") ? LOG_INFO : LOG_WARNING, LOG,
	       "%s: StartDiscovery failed: %s: %s", a->path, e->name, e->message ?: "");
	return 0;
}

static int bluez_adapter_call(struct bluez_adapter *a, sd_bus_message *m,
			      sd_bus_message_handler_t cb)
{
	int r;

	a->call = sd_bus_slot_unref(a->call);
	r = sd_bus_call_async(a->b->bus, &a->call, m, cb, a, 0);
	if (r < 0)
		return r;
	(void)sd_bus_slot_set_description(a->call, "gw-bluez-adapter-call");
	return 0;
}

static int bluez_adapter_send_start(struct bluez_adapter *a)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	int r;

	r = sd_bus_message_new_method_call(a->b->bus, &m, BLUEZ, a->path, ADAPTER_IFACE,
					   "StartDiscovery");
	if (r < 0)
		return r;
	r = bluez_adapter_call(a, m, bluez_on_start_discovery);
	if (r < 0)
		return r;
	a->discovery = DISCOVERY_START;
	return 0;
}

static int bluez_on_set_filter(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct bluez_adapter *a = userdata;
	const sd_bus_error *e = sd_bus_message_get_error(m);
	int r;

	(void)error;
	a->call = sd_bus_slot_unref(a->call);
	/* Without the filter BlueZ reports every device; only SMP ones are registered
	 * anyway, so discovery still goes on. */
	if (e)
		gw_warn(LOG, "%s: SetDiscoveryFilter failed, discovering unfiltered: %s: %s",
			a->path, e->name, e->message ?: "");
	r = bluez_adapter_send_start(a);
	if (r < 0) {
		a->discovery = DISCOVERY_OFF;
		gw_log_errno(LOG_WARNING, r, LOG, "%s: StartDiscovery not sent: %m", a->path);
	}
	return 0;
}

static int bluez_adapter_send_filter(struct bluez_adapter *a)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	int r;

	r = sd_bus_message_new_method_call(a->b->bus, &m, BLUEZ, a->path, ADAPTER_IFACE,
					   "SetDiscoveryFilter");
	if (r < 0)
		return r;
	r = sd_bus_message_append(m, "a{sv}", 2, "UUIDs", "as", 1, SMP_BLE_SMP_SERVICE_UUID,
				  "Transport", "s", "le");
	if (r < 0)
		return r;
	r = bluez_adapter_call(a, m, bluez_on_set_filter);
	if (r < 0)
		return r;
	a->discovery = DISCOVERY_FILTER;
	return 0;
}

/* Applies what BlueZ said of an adapter; starts discovery when it is powered
 * and ours is not running or on its way. */
static int bluez_adapter_update(struct gw_bluez *b, const char *path, const struct bluez_props *p)
{
	struct bluez_adapter *a = bluez_adapter_find(b, path);
	int r;

	if (!a) {
		a = calloc(1, sizeof(*a));
		if (!a)
			return -ENOMEM;
		a->path = strdup(path);
		if (!a->path) {
			free(a);
			return -ENOMEM;
		}
		a->b = b;
		a->next = b->adapters;
		b->adapters = a;
		gw_debug(LOG, "%s: adapter found", path);
	}
	if (p->powered >= 0 && (bool)p->powered != a->powered) {
		a->powered = p->powered;
		gw_debug(LOG, "%s: powered %s", path, a->powered ? "on" : "off");
		if (!a->powered) {
			/* BlueZ ended the session; a pending call answers nothing useful. */
			a->call = sd_bus_slot_unref(a->call);
			a->discovery = DISCOVERY_OFF;
		}
	}
	if (!a->powered || a->discovery != DISCOVERY_OFF)
		return 0;
	r = bluez_adapter_send_filter(a);
	if (r < 0)
		return gw_log_errno(LOG_WARNING, r, LOG, "%s: cannot start discovery: %m", path);
	return 0;
}

/* ---- devices ---- */

static struct bluez_device *bluez_device_find(struct gw_bluez *b, const char *path)
{
	for (struct bluez_device *d = b->devices; d; d = d->next)
		if (streq(d->path, path))
			return d;
	return NULL;
}

static void bluez_device_free(struct bluez_device *d)
{
	if (!d)
		return;
	free(d->path);
	free(d->adapter);
	free(d->address);
	free(d->name);
	free(d->alias);
	free(d->registered_name);
	free(d);
}

static void bluez_identity(const struct bluez_device *d, char buf[IDENTITY_MAX])
{
	snprintf(buf, IDENTITY_MAX, "ble:%s", d->address);
}

/* BlueZ's Alias is the user's alias, else Name, else the address with '-'
 * instead of ':' (a stand-in that is no name). */
static const char *bluez_device_name(const struct bluez_device *d)
{
	if (d->alias && d->alias[0]) {
		bool stand_in = strlen(d->alias) == ADDRESS_LEN;

		for (size_t i = 0; stand_in && i < ADDRESS_LEN; i++) {
			char c = d->alias[i], want = d->address[i];

			stand_in = want == ':' ? (c == '-' || c == ':')
					       : toupper((unsigned char)c) == want;
		}
		if (!stand_in)
			return d->alias;
	}
	return d->name && d->name[0] ? d->name : NULL;
}

/* Another object (another adapter) that BlueZ holds for the same SMP device. */
static struct bluez_device *bluez_device_twin(struct gw_bluez *b, const struct bluez_device *d)
{
	for (struct bluez_device *o = b->devices; o; o = o->next)
		if (o != d && o->smp && o->address && streq(o->address, d->address))
			return o;
	return NULL;
}

/* Brings the registry up to date with an SMP device object. seen: BlueZ just
 * heard from it; rssi: the RSSI is new. */
static void bluez_device_sync(struct gw_bluez *b, struct bluez_device *d, bool seen, bool rssi)
{
	struct gw_registry *reg = b->m->registry;
	char identity[IDENTITY_MAX];
	const char *name;
	struct gw_device *dev;
	bool moved;
	int r;

	if (!d->smp || !d->address)
		return;
	bluez_identity(d, identity);
	name = bluez_device_name(d);
	dev = gw_registry_find_identity(reg, identity);
	/* With two adapters in range, the device stays on the object it has (no
	 * address flapping); it moves only when that object is not ours. */
	if (dev && !streq_ptr(dev->address, d->path)) {
		struct bluez_device *at = dev->address ? bluez_device_find(b, dev->address) : NULL;

		moved = !(at && at->smp);
	} else
		moved = false;
	if (!dev || moved || (name && !streq_ptr(name, d->registered_name))) {
		struct gw_device_spec spec = {
		    .transport = GW_TRANSPORT_BLE,
		    .identity = identity,
		    .address = dev && !moved ? dev->address : d->path,
		    .name = name,
		    .source = GW_SOURCE_DISCOVERED,
		};
		bool added = !dev;

		r = gw_registry_upsert(reg, &spec, &dev);
		if (r == -EINVAL && spec.name) {
			/* A name the registry refuses (control characters, too long) must
			 * not keep the device out. */
			gw_debug(LOG, "%s: unusable name, registering without it", d->path);
			spec.name = NULL;
			r = gw_registry_upsert(reg, &spec, &dev);
		}
		if (r < 0) {
			gw_log_errno(LOG_WARNING, r, LOG, "%s: cannot register %s, ignoring: %m",
				     d->path, identity);
			return;
		}
		r = bluez_set_string(&d->registered_name, name);
		if (r < 0)
			gw_log_errno(LOG_WARNING, r, LOG, "%s: %m", d->path);
		if (added)
			gw_info(LOG, "found %s \"%s\" at %s", identity, name ?: "", d->path);
		else
			gw_debug(LOG, "%s: %s now \"%s\" at %s", dev->id, identity, name ?: "",
				 dev->address);
	}
	if (rssi && d->has_rssi)
		gw_registry_set_rssi(reg, dev, d->rssi);
	if (seen) {
		if (!dev->online) {
			gw_info(LOG, "%s online (%s)", dev->id, identity);
			gw_registry_set_online(reg, dev, true);
		}
		gw_registry_seen(reg, dev);
	}
}

/* Applies what BlueZ said of a device object: create marks a new object (else
 * an unknown path is ignored until GetManagedObjects or InterfacesAdded
 * brings it whole). */
static int bluez_device_update(struct gw_bluez *b, const char *path, const struct bluez_props *p,
			       bool create, bool seen)
{
	struct bluez_device *d = bluez_device_find(b, path);
	char address[ADDRESS_LEN + 1];
	int r = 0;

	if (!d) {
		if (!create)
			return 0;
		d = calloc(1, sizeof(*d));
		if (!d || !(d->path = strdup(path))) {
			free(d);
			return -ENOMEM;
		}
		d->next = b->devices;
		b->devices = d;
	}
	if (p->address) {
		if (bluez_normalize_address(p->address, address)) {
			/* An object's address never changes; a registered one stays. */
			if (!d->address)
				r = bluez_set_string(&d->address, address);
		} else
			gw_debug(LOG, "%s: bad Address \"%s\", ignoring", path, p->address);
	}
	if (r >= 0 && p->name)
		r = bluez_set_string(&d->name, p->name);
	if (r >= 0 && p->alias)
		r = bluez_set_string(&d->alias, p->alias);
	if (r >= 0 && p->adapter)
		r = bluez_set_string(&d->adapter, p->adapter);
	if (r < 0)
		return r;
	if (p->smp >= 0 && (bool)p->smp != d->smp) {
		d->smp = p->smp;
		gw_debug(LOG, "%s: %s the SMP service", path, d->smp ? "offers" : "lost");
	}
	if (p->has_rssi) {
		d->rssi = p->rssi;
		d->has_rssi = true;
	} else if (p->rssi_invalidated)
		d->has_rssi = false;
	/* A connection is proof of presence too; its loss is not proof of absence. */
	bluez_device_sync(b, d, seen || p->has_rssi || p->connected == 1, p->has_rssi);
	return 0;
}

/* The object is gone: the device goes offline unless another adapter still
 * holds it, in which case it moves there. */
static void bluez_device_remove(struct gw_bluez *b, struct bluez_device *d, const char *why)
{
	struct gw_registry *reg = b->m->registry;

	for (struct bluez_device **p = &b->devices; *p; p = &(*p)->next)
		if (*p == d) {
			*p = d->next;
			break;
		}
	if (d->smp && d->address) {
		char identity[IDENTITY_MAX];
		struct gw_device *dev;
		struct bluez_device *twin;

		bluez_identity(d, identity);
		dev = gw_registry_find_identity(reg, identity);
		if (dev && streq_ptr(dev->address, d->path)) {
			twin = bluez_device_twin(b, d);
			if (twin) {
				gw_debug(LOG, "%s: %s, moving to %s", dev->id, why, twin->path);
				bluez_device_sync(b, twin, false, false);
			} else if (dev->online) {
				gw_info(LOG, "%s offline: %s", dev->id, why);
				gw_registry_set_online(reg, dev, false);
			}
		}
	}
	bluez_device_free(d);
}

/* ---- objects: what GetManagedObjects and InterfacesAdded deliver ---- */

/* Reads a{sa{sv}} of one object. */
static int bluez_read_interfaces(struct gw_bluez *b, sd_bus_message *m, const char *path,
				 bool added)
{
	const char *iface;
	int r;

	r = sd_bus_message_enter_container(m, 'a', "{sa{sv}}");
	if (r < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'e', "sa{sv}")) > 0) {
		struct bluez_props p;

		r = sd_bus_message_read(m, "s", &iface);
		if (r < 0)
			return r;
		bluez_props_init(&p);
		if (streq(iface, ADAPTER_IFACE) || streq(iface, DEVICE_IFACE)) {
			r = bluez_read_props(m, &p);
			if (r < 0)
				return r;
			if (streq(iface, ADAPTER_IFACE))
				r = bluez_adapter_update(b, path, &p);
			else
				r = bluez_device_update(b, path, &p, true, added);
		} else
			r = sd_bus_message_skip(m, "a{sv}");
		if (r < 0)
			return r;
		r = sd_bus_message_exit_container(m);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	return sd_bus_message_exit_container(m);
}

static int bluez_on_managed_objects(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct gw_bluez *b = userdata;
	const sd_bus_error *e = sd_bus_message_get_error(m);
	const char *path;
	int r;

	(void)error;
	b->objects_call = sd_bus_slot_unref(b->objects_call);
	if (e) {
		gw_warn(LOG, "GetManagedObjects failed: %s: %s", e->name, e->message ?: "");
		return 0;
	}
	r = sd_bus_message_enter_container(m, 'a', "{oa{sa{sv}}}");
	while (r > 0 && (r = sd_bus_message_enter_container(m, 'e', "oa{sa{sv}}")) > 0) {
		r = sd_bus_message_read(m, "o", &path);
		if (r >= 0)
			r = bluez_read_interfaces(b, m, path, false);
		if (r >= 0)
			r = sd_bus_message_exit_container(m);
		if (r >= 0)
			r = 1;
	}
	if (r < 0)
		gw_log_errno(LOG_WARNING, r, LOG, "GetManagedObjects answer: %m");
	b->loaded = true;
	gw_debug(LOG, "objects of %s loaded", b->owner);
	return 0;
}

static int bluez_load(struct gw_bluez *b)
{
	int r;

	b->objects_call = sd_bus_slot_unref(b->objects_call);
	r = sd_bus_call_method_async(b->bus, &b->objects_call, BLUEZ, "/", OM_IFACE,
				     "GetManagedObjects", bluez_on_managed_objects, b, NULL);
	if (r < 0)
		return gw_log_errno(LOG_ERR, r, LOG, "GetManagedObjects not sent: %m");
	(void)sd_bus_slot_set_description(b->objects_call, "gw-bluez-objects");
	return 0;
}

/* ---- org.bluez coming and going ---- */

static void bluez_forget_all(struct gw_bluez *b, const char *why)
{
	struct gw_registry *reg = b->m->registry;

	b->objects_call = sd_bus_slot_unref(b->objects_call);
	b->loaded = false;
	while (b->adapters) {
		struct bluez_adapter *a = b->adapters;

		b->adapters = a->next;
		bluez_adapter_free(a);
	}
	/* No twin survives: every object goes, so every device goes offline. */
	while (b->devices) {
		struct bluez_device *d = b->devices;

		b->devices = d->next;
		if (d->smp && d->address) {
			char identity[IDENTITY_MAX];
			struct gw_device *dev;

			bluez_identity(d, identity);
			dev = gw_registry_find_identity(reg, identity);
			if (dev && dev->online && streq_ptr(dev->address, d->path)) {
				gw_info(LOG, "%s offline: %s", dev->id, why);
				gw_registry_set_online(reg, dev, false);
			}
		}
		bluez_device_free(d);
	}
}

static void bluez_set_owner(struct gw_bluez *b, const char *owner)
{
	if (owner && !owner[0])
		owner = NULL;
	if (streq_ptr(b->owner, owner))
		return;
	if (b->owner) {
		gw_notice(LOG, "BlueZ (%s) left the bus", b->owner);
		bluez_forget_all(b, "BlueZ left the bus");
		free(b->owner);
		b->owner = NULL;
	}
	if (!owner)
		return;
	b->owner = strdup(owner);
	if (!b->owner) {
		gw_log_errno(LOG_ERR, -ENOMEM, LOG, "BlueZ on the bus, ignoring it: %m");
		return;
	}
	gw_info(LOG, "BlueZ on the bus as %s", owner);
	(void)bluez_load(b);
}

static int bluez_on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct gw_bluez *b = userdata;
	const char *name, *old_owner, *new_owner;

	(void)error;
	if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || !streq(name, BLUEZ))
		return 0;
	bluez_set_owner(b, new_owner);
	return 0;
}

static int bluez_on_get_name_owner(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct gw_bluez *b = userdata;
	const sd_bus_error *e = sd_bus_message_get_error(m);
	const char *owner;

	(void)error;
	b->owner_call = sd_bus_slot_unref(b->owner_call);
	if (e) {
		if (sd_bus_error_has_name(e, "org.freedesktop.DBus.Error.NameHasNoOwner"))
			gw_info(LOG, "BlueZ is not on the bus (yet)");
		else
			gw_warn(LOG, "GetNameOwner(org.bluez) failed: %s: %s", e->name,
				e->message ?: "");
		return 0;
	}
	if (sd_bus_message_read(m, "s", &owner) >= 0)
		bluez_set_owner(b, owner);
	return 0;
}

/* ---- signals ---- */

static int bluez_on_interfaces_added(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct gw_bluez *b = userdata;
	const char *path;
	int r;

	(void)error;
	if (!bluez_from_owner(b, m))
		return 0;
	r = sd_bus_message_read(m, "o", &path);
	if (r >= 0)
		r = bluez_read_interfaces(b, m, path, true);
	if (r < 0)
		gw_log_errno(LOG_DEBUG, r, LOG, "InterfacesAdded, ignoring: %m");
	return 0;
}

static int bluez_on_interfaces_removed(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct gw_bluez *b = userdata;
	const char *path, *iface;
	int r;

	(void)error;
	if (!bluez_from_owner(b, m))
		return 0;
	r = sd_bus_message_read(m, "o", &path);
	if (r >= 0)
		r = sd_bus_message_enter_container(m, 'a', "s");
	while (r >= 0 && (r = sd_bus_message_read(m, "s", &iface)) > 0) {
		if (streq(iface, DEVICE_IFACE)) {
			struct bluez_device *d = bluez_device_find(b, path);

			if (d)
				bluez_device_remove(b, d, "BlueZ removed it");
		} else if (streq(iface, ADAPTER_IFACE)) {
			struct bluez_adapter *a = bluez_adapter_find(b, path);
			struct bluez_device *d, *next;

			if (!a)
				continue;
			gw_notice(LOG, "%s: adapter removed", path);
			for (struct bluez_adapter **p = &b->adapters; *p; p = &(*p)->next)
				if (*p == a) {
					*p = a->next;
					break;
				}
			bluez_adapter_free(a);
			/* BlueZ removes the adapter's devices too, but not necessarily first. */
			for (d = b->devices; d; d = next) {
				next = d->next;
				if (streq_ptr(d->adapter, path))
					bluez_device_remove(b, d, "its adapter was removed");
			}
		}
	}
	if (r < 0)
		gw_log_errno(LOG_DEBUG, r, LOG, "InterfacesRemoved, ignoring: %m");
	return 0;
}

static int bluez_on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct gw_bluez *b = userdata;
	const char *path = sd_bus_message_get_path(m), *iface, *inv;
	struct bluez_props p;
	int r;

	(void)error;
	if (!bluez_from_owner(b, m) || !path)
		return 0;
	bluez_props_init(&p);
	r = sd_bus_message_read(m, "s", &iface);
	if (r >= 0)
		r = bluez_read_props(m, &p);
	if (r >= 0)
		r = sd_bus_message_enter_container(m, 'a', "s");
	while (r >= 0 && (r = sd_bus_message_read(m, "s", &inv)) > 0)
		if (streq(inv, "RSSI"))
			p.rssi_invalidated = true;
	if (r < 0) {
		gw_log_errno(LOG_DEBUG, r, LOG, "%s: PropertiesChanged, ignoring: %m", path);
		return 0;
	}
	if (streq(iface, ADAPTER_IFACE)) {
		/* Only adapters we know: GetManagedObjects or InterfacesAdded bring new ones. */
		if (bluez_adapter_find(b, path))
			(void)bluez_adapter_update(b, path, &p);
	} else if (streq(iface, DEVICE_IFACE)) {
		r = bluez_device_update(b, path, &p, false, false);
		if (r < 0)
			gw_log_errno(LOG_WARNING, r, LOG, "%s: %m", path);
	}
	return 0;
}

static int bluez_on_match_installed(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	const sd_bus_error *e = sd_bus_message_get_error(m);

	(void)userdata, (void)error;
	/* Without the match discovery is deaf; say so, but keep the bus (others use it). */
	if (e)
		gw_err(LOG, "cannot watch BlueZ (AddMatch): %s: %s", e->name, e->message ?: "");
	return 0;
}

static const struct {
	const char *description;
	const char *match;
	sd_bus_message_handler_t handler;
} bluez_matches[N_MATCHES] = {
    {"gw-bluez-name-owner",
     "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
     "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" BLUEZ "'",
     bluez_on_name_owner_changed},
    {"gw-bluez-added",
     "type='signal',sender='" BLUEZ "',path='/',interface='" OM_IFACE "',member='InterfacesAdded'",
     bluez_on_interfaces_added},
    {"gw-bluez-removed",
     "type='signal',sender='" BLUEZ "',path='/',interface='" OM_IFACE
     "',member='InterfacesRemoved'",
     bluez_on_interfaces_removed},
    /* Two PropertiesChanged matches, so GATT value notifications (the links' business)
     * never reach us. */
    {"gw-bluez-adapter-props",
     "type='signal',sender='" BLUEZ "',interface='" PROPS_IFACE
     "',member='PropertiesChanged',arg0='" ADAPTER_IFACE "'",
     bluez_on_properties_changed},
    {"gw-bluez-device-props",
     "type='signal',sender='" BLUEZ "',interface='" PROPS_IFACE
     "',member='PropertiesChanged',arg0='" DEVICE_IFACE "'",
     bluez_on_properties_changed},
};

/* ---- public API ---- */

int gw_bluez_new(struct gw_manager *m, struct gw_bluez **ret)
{
	struct gw_bluez *b;
	int r;

	if (!m || !m->bluez_bus || !m->registry || !ret)
		return -EINVAL;
	if (!sd_bus_get_event(m->bluez_bus)) {
		r = sd_bus_attach_event(m->bluez_bus, m->event, SD_EVENT_PRIORITY_NORMAL);
		if (r < 0)
			return r;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->m = m;
	b->bus = sd_bus_ref(m->bluez_bus);
	*ret = b;
	return 0;
}

struct gw_bluez *gw_bluez_free(struct gw_bluez *b)
{
	if (!b)
		return NULL;
	for (struct bluez_adapter *a = b->adapters; a; a = a->next) {
		_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;

		/* In DISCOVERY_FILTER, StartDiscovery was not sent and never will be. */
		if (a->discovery != DISCOVERY_START && a->discovery != DISCOVERY_ON)
			continue;
		/* Fire and forget: nothing may call back into freed memory. */
		if (sd_bus_message_new_method_call(b->bus, &m, BLUEZ, a->path, ADAPTER_IFACE,
						   "StopDiscovery") >= 0 &&
		    sd_bus_message_set_expect_reply(m, 0) >= 0)
			(void)sd_bus_send(b->bus, m, NULL);
	}
	while (b->adapters) {
		struct bluez_adapter *a = b->adapters;

		b->adapters = a->next;
		bluez_adapter_free(a);
	}
	while (b->devices) {
		struct bluez_device *d = b->devices;

		b->devices = d->next;
		bluez_device_free(d);
	}
	for (size_t i = 0; i < N_MATCHES; i++)
		sd_bus_slot_unref(b->matches[i]);
	sd_bus_slot_unref(b->owner_call);
	sd_bus_slot_unref(b->objects_call);
	free(b->owner);
	sd_bus_unref(b->bus);
	free(b);
	return NULL;
}

int gw_bluez_start(struct gw_bluez *b)
{
	int r;

	if (!b)
		return -EINVAL;
	if (b->started)
		return -EALREADY;
	/* The bus handles our messages in order: the matches are in place before
	 * GetNameOwner is answered, so no change between answer and signal is lost. */
	for (size_t i = 0; i < N_MATCHES; i++) {
		r = sd_bus_add_match_async(b->bus, &b->matches[i], bluez_matches[i].match,
					   bluez_matches[i].handler, bluez_on_match_installed, b);
		if (r < 0)
			goto fail;
		(void)sd_bus_slot_set_description(b->matches[i], bluez_matches[i].description);
	}
	r = sd_bus_call_method_async(b->bus, &b->owner_call, "org.freedesktop.DBus",
				     "/org/freedesktop/DBus", "org.freedesktop.DBus",
				     "GetNameOwner", bluez_on_get_name_owner, b, "s", BLUEZ);
	if (r < 0)
		goto fail;
	(void)sd_bus_slot_set_description(b->owner_call, "gw-bluez-get-name-owner");
	b->started = true;
	gw_debug(LOG, "watching org.bluez");
	return 0;

fail:
	for (size_t i = 0; i < N_MATCHES; i++)
		b->matches[i] = sd_bus_slot_unref(b->matches[i]);
	return r;
}

bool gw_bluez_is_present(struct gw_bluez *b)
{
	return b && b->owner && b->loaded;
}

unsigned gw_bluez_discovering(struct gw_bluez *b)
{
	unsigned n = 0;

	for (struct bluez_adapter *a = b ? b->adapters : NULL; a; a = a->next)
		n += a->discovery == DISCOVERY_ON;
	return n;
}

unsigned gw_bluez_device_count(struct gw_bluez *b)
{
	unsigned n = 0;

	for (struct bluez_device *d = b ? b->devices : NULL; d; d = d->next)
		n += d->smp && d->address;
	return n;
}
