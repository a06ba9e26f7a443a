/* sim-bluez: a fake BlueZ that owns org.bluez on a D-Bus connection and simulates SMP devices */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/macro.h"
#include "tests/sim/sim-bluez.h"

#define BLUEZ_NAME "org.bluez"
#define ADAPTER_IFACE "org.bluez.Adapter1"
#define DEVICE_IFACE "org.bluez.Device1"
#define SERVICE_IFACE "org.bluez.GattService1"
#define CHAR_IFACE "org.bluez.GattCharacteristic1"

#define ERR_FAILED "org.bluez.Error.Failed"
#define ERR_IN_PROGRESS "org.bluez.Error.InProgress"
#define ERR_NOT_PERMITTED "org.bluez.Error.NotPermitted"
#define ERR_NOT_SUPPORTED "org.bluez.Error.NotSupported"
#define ERR_NOT_CONNECTED "org.bluez.Error.NotConnected"
#define ERR_INVALID_ARGS "org.bluez.Error.InvalidArguments"
#define ERR_DOES_NOT_EXIST "org.bluez.Error.DoesNotExist"

/* BlueZ reads at most this much from an acquired write socket per ATT write. */
#define ATT_VALUE_MAX 512
/* Writes queued inside the throughput model before the write fd is no longer read. */
#define RX_QUEUE_MAX 64
#define MAX_DISCOVERY_CLIENTS 16

static inline bool streq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

static inline bool streq_ptr(const char *a, const char *b)
{
	return a && b ? streq(a, b) : a == b;
}

struct pdu {
	struct pdu *next;
	size_t len;
	uint8_t data[];
};

struct pdu_queue {
	struct pdu *head, *tail;
	size_t count;
};

struct sim_bluez {
	sd_event *event;
	sd_bus *bus;
	char *adapter_address;
	char *adapter_name;
	unsigned max_connections;
	uint32_t discovery_delay_ms;
	uint32_t rssi_interval_ms;
	bool owns_name;

	sd_bus_slot *manager_slot;
	sd_bus_slot *adapter_slot;
	sd_event_source *rssi_timer;

	char *discovery_clients[MAX_DISCOVERY_CLIENTS];
	unsigned n_discovery_clients;

	/* The discovery filter (BlueZ merges per-client filters; one shared filter is
	 * enough for a gateway that is the only client). */
	char **filter_uuids;
	size_t n_filter_uuids;
	bool filter_has_rssi;
	int16_t filter_rssi;
	char *filter_transport;
	char *filter_pattern;

	struct sim_bluez_device *devices;
	unsigned n_connected;
};

struct sim_bluez_device {
	struct sim_bluez *b;
	struct sim_bluez_device *prev, *next;
	unsigned n_ref;
	bool removed;

	char *address;
	char *name;
	char *alias;
	bool address_random;
	int16_t rssi;
	bool rssi_fixed;
	bool smp_service;
	bool paired;
	uint16_t att_mtu;
	bool reassembly;
	size_t buf_size;
	bool no_acquire;
	uint32_t conn_interval_us;
	unsigned packets_per_event;
	uint32_t resolve_delay_ms;
	bool unreachable;
	sim_bluez_smp_fn on_smp_packet;
	sim_bluez_link_fn on_link;
	void *userdata;

	char path[64];
	char service_path[80];
	char char_path[96];
	uint32_t rng;

	bool visible;
	sd_bus_slot *device_slot;
	sd_event_source *discover_timer;

	bool connected;
	bool resolved;
	sd_bus_message *pending_connect;
	sd_event_source *resolve_timer;
	sd_bus_slot *service_slot;
	sd_bus_slot *char_slot;

	int write_fd;
	sd_event_source *write_source;
	int notify_fd;
	sd_event_source *notify_source;
	bool notifying;
	uint8_t value[ATT_VALUE_MAX];
	size_t value_len;

	uint8_t *rx;
	size_t rx_len;
	size_t rx_expected;

	struct pdu_queue to_device;
	struct pdu_queue to_central;
	sd_event_source *conn_event_timer;

	struct sim_bluez_device_stats stats;
};

static uint64_t now_usec(struct sim_bluez *b)
{
	uint64_t t = 0;

	sd_event_now(b->event, CLOCK_MONOTONIC, &t);
	return t;
}

/* ---- small helpers ---- */

static void pdu_queue_clear(struct pdu_queue *q)
{
	while (q->head) {
		struct pdu *p = q->head;

		q->head = p->next;
		free(p);
	}
	q->tail = NULL;
	q->count = 0;
}

static int pdu_queue_push(struct pdu_queue *q, const uint8_t *data, size_t len)
{
	struct pdu *p = malloc(sizeof(*p) + len);

	if (!p)
		return -ENOMEM;
	p->next = NULL;
	p->len = len;
	memcpy(p->data, data, len);
	if (q->tail)
		q->tail->next = p;
	else
		q->head = p;
	q->tail = p;
	q->count++;
	return 0;
}

static struct pdu *pdu_queue_pop(struct pdu_queue *q)
{
	struct pdu *p = q->head;

	if (!p)
		return NULL;
	q->head = p->next;
	if (!q->head)
		q->tail = NULL;
	q->count--;
	return p;
}

static void pdu_queue_push_front(struct pdu_queue *q, struct pdu *p)
{
	p->next = q->head;
	q->head = p;
	if (!q->tail)
		q->tail = p;
	q->count++;
}

static bool parse_address(const char *s, char out[18])
{
	if (!s || strlen(s) != 17)
		return false;
	for (int i = 0; i < 17; i++) {
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
	out[17] = '\0';
	return true;
}

static uint32_t device_random(struct sim_bluez_device *d)
{
	/* xorshift32: deterministic per device, so a run can be replayed. */
	uint32_t x = d->rng;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	d->rng = x;
	return x;
}

static struct sim_bluez_device *device_ref(struct sim_bluez_device *d)
{
	d->n_ref++;
	return d;
}

static void device_free(struct sim_bluez_device *d);

static void device_unref(struct sim_bluez_device *d)
{
	if (--d->n_ref == 0)
		device_free(d);
}

/* ---- property getters ---- */

static int append_bool(sd_bus_message *reply, bool v)
{
	return sd_bus_message_append(reply, "b", (int)v);
}

static int adapter_get(sd_bus *bus, const char *path, const char *interface, const char *property,
		       sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	struct sim_bluez *b = userdata;

	(void)bus, (void)path, (void)interface, (void)error;
	if (streq_ptr(property, "Address"))
		return sd_bus_message_append(reply, "s", b->adapter_address);
	if (streq_ptr(property, "AddressType"))
		return sd_bus_message_append(reply, "s", "public");
	if (streq_ptr(property, "Name") || streq_ptr(property, "Alias"))
		return sd_bus_message_append(reply, "s", b->adapter_name);
	if (streq_ptr(property, "Class"))
		return sd_bus_message_append(reply, "u", 0u);
	if (streq_ptr(property, "Powered") || streq_ptr(property, "Pairable"))
		return append_bool(reply, true);
	if (streq_ptr(property, "Discoverable"))
		return append_bool(reply, false);
	if (streq_ptr(property, "Discovering"))
		return append_bool(reply, b->n_discovery_clients > 0);
	if (streq_ptr(property, "UUIDs"))
		return sd_bus_message_append(reply, "as", 0);
	if (streq_ptr(property, "Roles"))
		return sd_bus_message_append(reply, "as", 2, "central", "peripheral");
	return -ENOENT;
}

static const char *device_uuid(struct sim_bluez_device *d)
{
	/* A device without SMP offers the Battery service, so filters have something to
	 * reject. */
	return d->smp_service ? SIM_BLUEZ_SMP_SERVICE_UUID : "0000180f-0000-1000-8000-00805f9b34fb";
}

static int device_get(sd_bus *bus, const char *path, const char *interface, const char *property,
		      sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	struct sim_bluez_device *d = userdata;

	(void)bus, (void)path, (void)interface, (void)error;
	if (streq_ptr(property, "Address"))
		return sd_bus_message_append(reply, "s", d->address);
	if (streq_ptr(property, "AddressType"))
		return sd_bus_message_append(reply, "s", d->address_random ? "random" : "public");
	if (streq_ptr(property, "Name"))
		return sd_bus_message_append(reply, "s", d->name);
	if (streq_ptr(property, "Alias"))
		return sd_bus_message_append(reply, "s", d->alias);
	if (streq_ptr(property, "RSSI"))
		return sd_bus_message_append(reply, "n", d->rssi);
	if (streq_ptr(property, "UUIDs"))
		return sd_bus_message_append(reply, "as", 1, device_uuid(d));
	if (streq_ptr(property, "Connected"))
		return append_bool(reply, d->connected);
	if (streq_ptr(property, "ServicesResolved"))
		return append_bool(reply, d->resolved);
	if (streq_ptr(property, "Adapter"))
		return sd_bus_message_append(reply, "o", SIM_BLUEZ_ADAPTER_PATH);
	if (streq_ptr(property, "Paired") || streq_ptr(property, "Trusted") ||
	    streq_ptr(property, "Bonded"))
		return append_bool(reply, d->paired);
	if (streq_ptr(property, "Blocked") || streq_ptr(property, "LegacyPairing"))
		return append_bool(reply, false);
	return -ENOENT;
}

static int service_get(sd_bus *bus, const char *path, const char *interface, const char *property,
		       sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	struct sim_bluez_device *d = userdata;

	(void)bus, (void)path, (void)interface, (void)error;
	if (streq_ptr(property, "UUID"))
		return sd_bus_message_append(reply, "s", SIM_BLUEZ_SMP_SERVICE_UUID);
	if (streq_ptr(property, "Primary"))
		return append_bool(reply, true);
	if (streq_ptr(property, "Device"))
		return sd_bus_message_append(reply, "o", d->path);
	if (streq_ptr(property, "Includes"))
		return sd_bus_message_append(reply, "ao", 0);
	return -ENOENT;
}

static int char_get(sd_bus *bus, const char *path, const char *interface, const char *property,
		    sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	struct sim_bluez_device *d = userdata;

	(void)bus, (void)path, (void)interface, (void)error;
	if (streq_ptr(property, "UUID"))
		return sd_bus_message_append(reply, "s", SIM_BLUEZ_SMP_CHAR_UUID);
	if (streq_ptr(property, "Service"))
		return sd_bus_message_append(reply, "o", d->service_path);
	if (streq_ptr(property, "Value"))
		return sd_bus_message_append_array(reply, 'y', d->value, d->value_len);
	if (streq_ptr(property, "Notifying"))
		return append_bool(reply, d->notifying);
	if (streq_ptr(property, "Flags"))
		return sd_bus_message_append(reply, "as", 2, "write-without-response", "notify");
	if (streq_ptr(property, "WriteAcquired"))
		return append_bool(reply, d->write_fd >= 0);
	if (streq_ptr(property, "NotifyAcquired"))
		return append_bool(reply, d->notify_fd >= 0);
	if (streq_ptr(property, "MTU"))
		return sd_bus_message_append(reply, "q", d->att_mtu);
	return -ENOENT;
}

/* ---- signals ---- */

static void emit_changed(struct sim_bluez_device *d, const char *path, const char *iface,
			 const char *prop)
{
	/* Signals are best effort, as in a daemon: a full bus queue must not break the
	 * simulated device. */
	(void)sd_bus_emit_properties_changed(d->b->bus, path, iface, prop, NULL);
}

/* ---- discovery ---- */

static bool device_matches_filter(struct sim_bluez *b, struct sim_bluez_device *d)
{
	if (b->filter_transport && strcasecmp(b->filter_transport, "bredr") == 0)
		return false;
	if (b->filter_has_rssi && d->rssi < b->filter_rssi)
		return false;
	if (b->n_filter_uuids > 0) {
		bool found = false;

		for (size_t i = 0; i < b->n_filter_uuids && !found; i++)
			found = strcasecmp(b->filter_uuids[i], device_uuid(d)) == 0;
		if (!found)
			return false;
	}
	if (b->filter_pattern && b->filter_pattern[0]) {
		size_t n = strlen(b->filter_pattern);

		if (strncasecmp(d->address, b->filter_pattern, n) != 0 &&
		    !(d->name && strncmp(d->name, b->filter_pattern, n) == 0))
			return false;
	}
	return true;
}

static const sd_bus_vtable device_vtable_named[];
static const sd_bus_vtable device_vtable_unnamed[];

static int device_show(struct sim_bluez_device *d)
{
	int r;

	if (d->visible)
		return 0;
	r = sd_bus_add_object_vtable(d->b->bus, &d->device_slot, d->path, DEVICE_IFACE,
				     d->name ? device_vtable_named : device_vtable_unnamed, d);
	if (r < 0)
		return r;
	d->visible = true;
	(void)sd_bus_emit_object_added(d->b->bus, d->path);
	return 0;
}

static void device_hide(struct sim_bluez_device *d)
{
	if (!d->visible)
		return;
	(void)sd_bus_emit_object_removed(d->b->bus, d->path);
	d->device_slot = sd_bus_slot_unref(d->device_slot);
	d->visible = false;
}

static int device_on_discover_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct sim_bluez_device *d = userdata;

	(void)s, (void)usec;
	d->discover_timer = sd_event_source_disable_unref(d->discover_timer);
	if (d->b->n_discovery_clients > 0 && device_matches_filter(d->b, d))
		(void)device_show(d);
	return 0;
}

static void device_schedule_discovery(struct sim_bluez_device *d)
{
	struct sim_bluez *b = d->b;

	if (d->visible || d->discover_timer || b->n_discovery_clients == 0 ||
	    !device_matches_filter(b, d))
		return;
	if (sd_event_add_time_relative(b->event, &d->discover_timer, CLOCK_MONOTONIC,
				       (uint64_t)b->discovery_delay_ms * 1000, 1000,
				       device_on_discover_timer, d) < 0)
		return;
	(void)sd_event_source_set_description(d->discover_timer, "sim-bluez-discover");
}

static int adapter_on_rssi_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct sim_bluez *b = userdata;

	for (struct sim_bluez_device *d = b->devices; d; d = d->next) {
		if (!d->visible || d->rssi_fixed)
			continue;
		int v = d->rssi + (int)(device_random(d) % 7) - 3;
		d->rssi = (int16_t)MAX(-100, MIN(-20, v));
		emit_changed(d, d->path, DEVICE_IFACE, "RSSI");
	}
	return sd_event_source_set_time(s, usec + (uint64_t)b->rssi_interval_ms * 1000);
}

static void adapter_discovery_changed(struct sim_bluez *b)
{
	bool on = b->n_discovery_clients > 0;

	(void)sd_bus_emit_properties_changed(b->bus, SIM_BLUEZ_ADAPTER_PATH, ADAPTER_IFACE,
					     "Discovering", NULL);
	if (on) {
		if (!b->rssi_timer &&
		    sd_event_add_time_relative(b->event, &b->rssi_timer, CLOCK_MONOTONIC,
					       (uint64_t)b->rssi_interval_ms * 1000, 1000,
					       adapter_on_rssi_timer, b) >= 0)
			(void)sd_event_source_set_description(b->rssi_timer, "sim-bluez-rssi");
		for (struct sim_bluez_device *d = b->devices; d; d = d->next)
			device_schedule_discovery(d);
	} else {
		b->rssi_timer = sd_event_source_disable_unref(b->rssi_timer);
		for (struct sim_bluez_device *d = b->devices; d; d = d->next)
			d->discover_timer = sd_event_source_disable_unref(d->discover_timer);
	}
}

static int method_start_discovery(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct sim_bluez *b = userdata;
	const char *sender = sd_bus_message_get_sender(m);

	if (!sender)
		sender = "";
	for (unsigned i = 0; i < b->n_discovery_clients; i++)
		if (streq(b->discovery_clients[i], sender))
			return sd_bus_error_set(error, ERR_IN_PROGRESS,
						"Operation already in progress");
	if (b->n_discovery_clients == MAX_DISCOVERY_CLIENTS)
		return sd_bus_error_set(error, ERR_FAILED, "Too many discovery sessions");
	b->discovery_clients[b->n_discovery_clients] = strdup(sender);
	if (!b->discovery_clients[b->n_discovery_clients])
		return -ENOMEM;
	b->n_discovery_clients++;
	if (b->n_discovery_clients == 1)
		adapter_discovery_changed(b);
	return sd_bus_reply_method_return(m, NULL);
}

static int method_stop_discovery(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct sim_bluez *b = userdata;
	const char *sender = sd_bus_message_get_sender(m);

	if (!sender)
		sender = "";
	for (unsigned i = 0; i < b->n_discovery_clients; i++) {
		if (!streq(b->discovery_clients[i], sender))
			continue;
		free(b->discovery_clients[i]);
		b->discovery_clients[i] = b->discovery_clients[--b->n_discovery_clients];
		if (b->n_discovery_clients == 0)
			adapter_discovery_changed(b);
		return sd_bus_reply_method_return(m, NULL);
	}
	return sd_bus_error_set(error, ERR_FAILED, "No discovery started");
}

static void filter_clear(struct sim_bluez *b)
{
	for (size_t i = 0; i < b->n_filter_uuids; i++)
		free(b->filter_uuids[i]);
	free(b->filter_uuids);
	b->filter_uuids = NULL;
	b->n_filter_uuids = 0;
	b->filter_has_rssi = false;
	free(b->filter_transport);
	b->filter_transport = NULL;
	free(b->filter_pattern);
	b->filter_pattern = NULL;
}

static int invalid_args(sd_bus_error *error)
{
	return sd_bus_error_set(error, ERR_INVALID_ARGS, "Invalid arguments in method call");
}

static int method_set_discovery_filter(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct sim_bluez *b = userdata;
	struct sim_bluez new = {0};
	bool has_pathloss = false;
	int r;

	r = sd_bus_message_enter_container(m, 'a', "{sv}");
	if (r < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *key;

		r = sd_bus_message_read(m, "s", &key);
		if (r < 0)
			goto fail;
		if (streq(key, "UUIDs")) {
			const char *u;

			r = sd_bus_message_enter_container(m, 'v', "as");
			if (r < 0)
				goto bad;
			r = sd_bus_message_enter_container(m, 'a', "s");
			if (r < 0)
				goto bad;
			while ((r = sd_bus_message_read(m, "s", &u)) > 0) {
				char **n = realloc(new.filter_uuids,
						   (new.n_filter_uuids + 1) * sizeof(char *));
				if (!n) {
					r = -ENOMEM;
					goto fail;
				}
				new.filter_uuids = n;
				n[new.n_filter_uuids] = strdup(u);
				if (!n[new.n_filter_uuids]) {
					r = -ENOMEM;
					goto fail;
				}
				new.n_filter_uuids++;
			}
			if (r < 0)
				goto bad;
			r = sd_bus_message_exit_container(m);
			if (r < 0)
				goto bad;
			r = sd_bus_message_exit_container(m);
		} else if (streq(key, "RSSI")) {
			r = sd_bus_message_read(m, "v", "n", &new.filter_rssi);
			new.filter_has_rssi = true;
		} else if (streq(key, "Pathloss")) {
			uint16_t pl;

			r = sd_bus_message_read(m, "v", "q", &pl);
			has_pathloss = true;
		} else if (streq(key, "Transport")) {
			const char *t;

			r = sd_bus_message_read(m, "v", "s", &t);
			if (r >= 0 && !streq(t, "auto") && !streq(t, "le") && !streq(t, "bredr"))
				goto bad;
			if (r >= 0 && !(new.filter_transport = strdup(t))) {
				r = -ENOMEM;
				goto fail;
			}
		} else if (streq(key, "DuplicateData") || streq(key, "Discoverable")) {
			int v;

			r = sd_bus_message_read(m, "v", "b", &v);
		} else if (streq(key, "Pattern")) {
			const char *p;

			r = sd_bus_message_read(m, "v", "s", &p);
			if (r >= 0 && !(new.filter_pattern = strdup(p))) {
				r = -ENOMEM;
				goto fail;
			}
		} else
			goto bad;
		if (r < 0)
			goto bad;
		r = sd_bus_message_exit_container(m);
		if (r < 0)
			goto bad;
	}
	if (r < 0)
		goto bad;
	/* BlueZ refuses RSSI and Pathloss together. */
	if (has_pathloss && new.filter_has_rssi)
		goto bad;

	filter_clear(b);
	b->filter_uuids = new.filter_uuids;
	b->n_filter_uuids = new.n_filter_uuids;
	b->filter_has_rssi = new.filter_has_rssi;
	b->filter_rssi = new.filter_rssi;
	b->filter_transport = new.filter_transport;
	b->filter_pattern = new.filter_pattern;
	for (struct sim_bluez_device *d = b->devices; d; d = d->next)
		device_schedule_discovery(d);
	return sd_bus_reply_method_return(m, NULL);

bad:
	r = invalid_args(error);
fail:
	filter_clear(&new);
	return r;
}

static int method_get_discovery_filters(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	(void)userdata, (void)error;
	return sd_bus_reply_method_return(m, "as", 7, "UUIDs", "RSSI", "Pathloss", "Transport",
					  "DuplicateData", "Discoverable", "Pattern");
}

static void device_link_down(struct sim_bluez_device *d, const char *connect_error);

static int method_remove_device(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct sim_bluez *b = userdata;
	const char *path;
	int r;

	r = sd_bus_message_read(m, "o", &path);
	if (r < 0)
		return r;
	for (struct sim_bluez_device *d = b->devices; d; d = d->next) {
		if (!d->visible || !streq(d->path, path))
			continue;
		device_link_down(d, "le-connection-abort-by-local");
		device_hide(d);
		/* It still advertises: a running discovery finds it again. */
		d->paired = false;
		device_schedule_discovery(d);
		return sd_bus_reply_method_return(m, NULL);
	}
	return sd_bus_error_set(error, ERR_DOES_NOT_EXIST, "Does Not Exist");
}

/* ---- GATT: packets in both directions ---- */

static void device_deliver_request(struct sim_bluez_device *d)
{
	uint8_t *pkt = d->rx;
	size_t len = d->rx_len;

	/* The callback may notify, drop the link or remove the device. */
	d->rx = NULL;
	d->rx_len = 0;
	d->rx_expected = 0;
	d->stats.requests++;
	if (d->on_smp_packet) {
		device_ref(d);
		d->on_smp_packet(d, pkt, len, d->userdata);
		device_unref(d);
	}
	free(pkt);
}

static void device_drop_partial(struct sim_bluez_device *d)
{
	free(d->rx);
	d->rx = NULL;
	d->rx_len = 0;
	d->rx_expected = 0;
}

/* One ATT Write Command arrived at the device's SMP characteristic (Zephyr smp_bt.c). */
static void device_receive_write(struct sim_bluez_device *d, const uint8_t *data, size_t len)
{
	d->stats.att_writes++;
	if (len > d->stats.max_write)
		d->stats.max_write = (uint16_t)MIN(len, UINT16_MAX);

	if (!d->rx) {
		size_t expected;

		if (len < 8) {
			d->stats.att_writes_dropped++;
			d->stats.requests_dropped++;
			return;
		}
		expected = 8 + ((size_t)data[2] << 8 | data[3]);
		if (expected > d->buf_size || (!d->reassembly && len != expected)) {
			d->stats.att_writes_dropped++;
			d->stats.requests_dropped++;
			return;
		}
		d->rx = malloc(expected);
		if (!d->rx) {
			d->stats.requests_dropped++;
			return;
		}
		d->rx_expected = expected;
	}
	if (d->rx_len + len > d->rx_expected) {
		d->stats.att_writes_dropped++;
		d->stats.requests_dropped++;
		device_drop_partial(d);
		return;
	}
	memcpy(d->rx + d->rx_len, data, len);
	d->rx_len += len;
	if (d->rx_len == d->rx_expected)
		device_deliver_request(d);
}

static int device_on_notify_fd(sd_event_source *s, int fd, uint32_t revents, void *userdata);

/* Sends one notification to the central. Returns 0 when sent or dropped, -EAGAIN when the
 * notify socket is full (the caller keeps the packet). */
static int device_send_notification(struct sim_bluez_device *d, const uint8_t *data, size_t len)
{
	if (d->notify_fd >= 0) {
		ssize_t n = send(d->notify_fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			(void)sd_event_source_set_io_events(d->notify_source, EPOLLOUT);
			return -EAGAIN;
		}
		if (n < 0) {
			d->stats.notifications_dropped++;
			return 0;
		}
		d->stats.notifications++;
		return 0;
	}
	if (d->notifying && d->resolved) {
		memcpy(d->value, data, len);
		d->value_len = len;
		emit_changed(d, d->char_path, CHAR_IFACE, "Value");
		d->stats.notifications++;
		return 0;
	}
	d->stats.notifications_dropped++;
	return 0;
}

static void device_arm_conn_event(struct sim_bluez_device *d);

/* Moves packets across the link: all of them without a throughput model, else at most
 * packets_per_event per direction (called at each connection event). */
static void device_pump(struct sim_bluez_device *d, bool event)
{
	size_t budget = event ? d->packets_per_event : SIZE_MAX;
	struct pdu *p;

	if (d->conn_interval_us > 0 && !event) {
		device_arm_conn_event(d);
		return;
	}

	device_ref(d);
	for (size_t n = 0; n < budget && d->connected && (p = pdu_queue_pop(&d->to_central)); n++) {
		if (device_send_notification(d, p->data, p->len) == -EAGAIN) {
			pdu_queue_push_front(&d->to_central, p);
			break;
		}
		free(p);
	}
	for (size_t n = 0;
	     n < budget && d->connected && !d->removed && (p = pdu_queue_pop(&d->to_device)); n++) {
		device_receive_write(d, p->data, p->len);
		free(p);
	}
	if (d->connected && d->write_source && d->to_device.count < RX_QUEUE_MAX)
		(void)sd_event_source_set_enabled(d->write_source, SD_EVENT_ON);
	if (event && d->connected)
		device_arm_conn_event(d);
	device_unref(d);
}

static int device_on_conn_event(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct sim_bluez_device *d = userdata;

	(void)s, (void)usec;
	device_pump(d, true);
	return 0;
}

static void device_arm_conn_event(struct sim_bluez_device *d)
{
	int enabled = SD_EVENT_OFF;

	if (d->to_device.count == 0 && d->to_central.count == 0)
		return;
	if (d->conn_event_timer &&
	    sd_event_source_get_enabled(d->conn_event_timer, &enabled) >= 0 &&
	    enabled != SD_EVENT_OFF)
		return;
	uint64_t next = now_usec(d->b) + d->conn_interval_us;
	if (!d->conn_event_timer) {
		if (sd_event_add_time(d->b->event, &d->conn_event_timer, CLOCK_MONOTONIC, next, 1,
				      device_on_conn_event, d) < 0)
			return;
		(void)sd_event_source_set_description(d->conn_event_timer, "sim-bluez-conn-event");
		return;
	}
	(void)sd_event_source_set_time(d->conn_event_timer, next);
	(void)sd_event_source_set_enabled(d->conn_event_timer, SD_EVENT_ONESHOT);
}

static void device_release_write(struct sim_bluez_device *d)
{
	if (d->write_fd < 0)
		return;
	d->write_source = sd_event_source_disable_unref(d->write_source);
	close(d->write_fd);
	d->write_fd = -1;
	if (d->resolved)
		emit_changed(d, d->char_path, CHAR_IFACE, "WriteAcquired");
}

static void device_release_notify(struct sim_bluez_device *d)
{
	if (d->notify_fd < 0)
		return;
	d->notify_source = sd_event_source_disable_unref(d->notify_source);
	close(d->notify_fd);
	d->notify_fd = -1;
	if (d->resolved)
		emit_changed(d, d->char_path, CHAR_IFACE, "NotifyAcquired");
}

static int device_on_write_fd(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct sim_bluez_device *d = userdata;
	uint8_t buf[ATT_VALUE_MAX + 64];

	(void)s;
	if (revents & EPOLLIN) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n > 0) {
			if ((size_t)n > (size_t)d->att_mtu - 3 || (size_t)n > ATT_VALUE_MAX) {
				/* bt_att_send() refuses a PDU longer than the MTU: lost. */
				d->stats.att_writes++;
				d->stats.att_writes_dropped++;
				d->stats.max_write = (uint16_t)MIN((size_t)n, UINT16_MAX);
				return 0;
			}
			if (pdu_queue_push(&d->to_device, buf, (size_t)n) < 0)
				return 0;
			if (d->conn_interval_us > 0 && d->to_device.count >= RX_QUEUE_MAX)
				(void)sd_event_source_set_enabled(d->write_source, SD_EVENT_OFF);
			device_pump(d, false);
			return 0;
		}
		/* n == 0: the central closed its end; n < 0: the socket broke. */
		device_release_write(d);
		return 0;
	}
	if (revents & (EPOLLHUP | EPOLLERR | EPOLLRDHUP))
		device_release_write(d);
	return 0;
}

static int device_on_notify_fd(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct sim_bluez_device *d = userdata;

	(void)s, (void)fd;
	if (revents & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
		device_release_notify(d);
		return 0;
	}
	if (revents & EPOLLOUT) {
		(void)sd_event_source_set_io_events(d->notify_source, EPOLLRDHUP);
		device_pump(d, false);
	}
	return 0;
}

static int method_read_value(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	(void)m, (void)userdata;
	/* Zephyr's SMP characteristic has no read permission: the device answers the ATT
	 * read with Read Not Permitted. */
	return sd_bus_error_set(error, ERR_NOT_PERMITTED, "Read not permitted");
}

static int read_write_options(sd_bus_message *m, const char **type, uint16_t *offset)
{
	int r;

	r = sd_bus_message_enter_container(m, 'a', "{sv}");
	if (r < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *key;

		r = sd_bus_message_read(m, "s", &key);
		if (r < 0)
			return r;
		if (streq(key, "type"))
			r = sd_bus_message_read(m, "v", "s", type);
		else if (streq(key, "offset"))
			r = sd_bus_message_read(m, "v", "q", offset);
		else
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

static int method_write_value(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct sim_bluez_device *d = userdata;
	const void *value;
	size_t len;
	const char *type = NULL;
	uint16_t offset = 0;
	int r;

	if (!d->connected)
		return sd_bus_error_set(error, ERR_FAILED, "Not connected");
	if (d->write_fd >= 0)
		return sd_bus_error_set(error, ERR_NOT_PERMITTED, "Write acquired");
	r = sd_bus_message_read_array(m, 'y', &value, &len);
	if (r < 0)
		return invalid_args(error);
	r = read_write_options(m, &type, &offset);
	if (r < 0)
		return invalid_args(error);
	/* The characteristic has no "write" property: a write request reaches the device
	 * and fails there. */
	if (type && (streq(type, "request") || streq(type, "reliable")))
		return sd_bus_error_set(error, ERR_NOT_PERMITTED, "Write not permitted");
	if ((type && !streq(type, "command")) || offset)
		return sd_bus_error_set(error, ERR_NOT_SUPPORTED, "Operation is not supported");
	if (len > (size_t)d->att_mtu - 3)
		return sd_bus_error_set(error, ERR_FAILED, "Failed to initiate write");

	r = pdu_queue_push(&d->to_device, value, len);
	if (r < 0)
		return r;
	d->stats.write_value++;
	/* Reply first: the write command has no response, the device sees it later. */
	r = sd_bus_reply_method_return(m, NULL);
	device_pump(d, false);
	return r;
}

static int method_start_notify(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct sim_bluez_device *d = userdata;

	if (d->notify_fd >= 0)
		return sd_bus_error_set(error, ERR_NOT_PERMITTED, "Notify acquired");
	if (!d->notifying) {
		d->notifying = true;
		emit_changed(d, d->char_path, CHAR_IFACE, "Notifying");
	}
	return sd_bus_reply_method_return(m, NULL);
}

static int method_stop_notify(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct sim_bluez_device *d = userdata;

	if (d->notify_fd >= 0) {
		device_release_notify(d);
		return sd_bus_reply_method_return(m, NULL);
	}
	if (!d->notifying)
		return sd_bus_error_set(error, ERR_FAILED, "No notify session started");
	d->notifying = false;
	emit_changed(d, d->char_path, CHAR_IFACE, "Notifying");
	return sd_bus_reply_method_return(m, NULL);
}

static int acquire(sd_bus_message *m, struct sim_bluez_device *d, bool write, sd_bus_error *error)
{
	int fds[2], r;

	r = read_write_options(m, &(const char *){NULL}, &(uint16_t){0});
	if (r < 0)
		return invalid_args(error);
	if (!d->connected)
		return sd_bus_error_set(error, ERR_FAILED, "Not connected");
	if (d->no_acquire)
		return sd_bus_error_set(error, ERR_NOT_SUPPORTED, "Operation is not supported");
	if (write && d->write_fd >= 0)
		return sd_bus_error_set(error, ERR_NOT_PERMITTED, "Write acquired");
	if (!write && d->notify_fd >= 0)
		return sd_bus_error_set(error, ERR_NOT_PERMITTED, "Notify acquired");
	if (!write && d->notifying)
		return sd_bus_error_set(error, ERR_IN_PROGRESS, "In Progress");

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
		return sd_bus_error_set(error, ERR_FAILED, strerror(errno));

	if (write)
		r = sd_event_add_io(d->b->event, &d->write_source, fds[0], EPOLLIN | EPOLLRDHUP,
				    device_on_write_fd, d);
	else
		r = sd_event_add_io(d->b->event, &d->notify_source, fds[0], EPOLLRDHUP,
				    device_on_notify_fd, d);
	if (r < 0) {
		close(fds[0]);
		close(fds[1]);
		return r;
	}
	(void)sd_event_source_set_description(write ? d->write_source : d->notify_source,
					      write ? "sim-bluez-write-fd" : "sim-bluez-notify-fd");

	/* BlueZ replies bt_gatt_client_get_mtu(): the ATT_MTU, not the payload size. */
	r = sd_bus_reply_method_return(m, "hq", fds[1], d->att_mtu);
	close(fds[1]);
	if (r < 0) {
		if (write)
			d->write_source = sd_event_source_disable_unref(d->write_source);
		else
			d->notify_source = sd_event_source_disable_unref(d->notify_source);
		close(fds[0]);
		return r;
	}
	if (write) {
		d->write_fd = fds[0];
		d->stats.acquire_write++;
		emit_changed(d, d->char_path, CHAR_IFACE, "WriteAcquired");
	} else {
		d->notify_fd = fds[0];
		d->stats.acquire_notify++;
		emit_changed(d, d->char_path, CHAR_IFACE, "NotifyAcquired");
		/* Notifications that waited for a subscriber go out now. */
		device_pump(d, false);
	}
	return r;
}

static int method_acquire_write(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	return acquire(m, userdata, true, error);
}

static int method_acquire_notify(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	return acquire(m, userdata, false, error);
}

/* ---- connection ---- */

static const sd_bus_vtable service_vtable[];
static const sd_bus_vtable char_vtable[];

static void device_gatt_remove(struct sim_bluez_device *d)
{
	if (d->char_slot) {
		(void)sd_bus_emit_object_removed(d->b->bus, d->char_path);
		d->char_slot = sd_bus_slot_unref(d->char_slot);
	}
	if (d->service_slot) {
		(void)sd_bus_emit_object_removed(d->b->bus, d->service_path);
		d->service_slot = sd_bus_slot_unref(d->service_slot);
	}
}

static int device_gatt_add(struct sim_bluez_device *d)
{
	int r;

	if (!d->smp_service)
		return 0;
	r = sd_bus_add_object_vtable(d->b->bus, &d->service_slot, d->service_path, SERVICE_IFACE,
				     service_vtable, d);
	if (r < 0)
		return r;
	(void)sd_bus_emit_object_added(d->b->bus, d->service_path);
	r = sd_bus_add_object_vtable(d->b->bus, &d->char_slot, d->char_path, CHAR_IFACE,
				     char_vtable, d);
	if (r < 0) {
		device_gatt_remove(d);
		return r;
	}
	(void)sd_bus_emit_object_added(d->b->bus, d->char_path);
	return 0;
}

static void device_link_down(struct sim_bluez_device *d, const char *connect_error)
{
	bool was_connected = d->connected;

	if (d->pending_connect) {
		(void)sd_bus_reply_method_errorf(d->pending_connect, ERR_FAILED, "%s",
						 connect_error);
		d->pending_connect = sd_bus_message_unref(d->pending_connect);
	}
	if (!d->connected)
		return;

	/* Closing the fds is what the central sees first (HUP), as with BlueZ. */
	device_release_write(d);
	device_release_notify(d);
	d->resolve_timer = sd_event_source_disable_unref(d->resolve_timer);
	d->conn_event_timer = sd_event_source_disable_unref(d->conn_event_timer);
	pdu_queue_clear(&d->to_device);
	pdu_queue_clear(&d->to_central);
	device_drop_partial(d);
	d->notifying = false;
	d->value_len = 0;

	d->connected = false;
	d->b->n_connected--;
	if (d->resolved) {
		d->resolved = false;
		if (d->visible)
			emit_changed(d, d->path, DEVICE_IFACE, "ServicesResolved");
	}
	device_gatt_remove(d);
	if (d->visible)
		emit_changed(d, d->path, DEVICE_IFACE, "Connected");

	if (was_connected && d->on_link) {
		device_ref(d);
		d->on_link(d, false, d->userdata);
		device_unref(d);
	}
}

static int device_on_resolved(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct sim_bluez_device *d = userdata;
	int r;

	(void)s, (void)usec;
	d->resolve_timer = sd_event_source_disable_unref(d->resolve_timer);
	r = device_gatt_add(d);
	if (r < 0) {
		device_link_down(d, "le-connection-gatt-browsing");
		return 0;
	}
	d->resolved = true;
	emit_changed(d, d->path, DEVICE_IFACE, "ServicesResolved");
	/* BlueZ answers an LE Connect once the services are resolved. */
	if (d->pending_connect) {
		(void)sd_bus_reply_method_return(d->pending_connect, NULL);
		d->pending_connect = sd_bus_message_unref(d->pending_connect);
	}
	if (d->on_link) {
		device_ref(d);
		d->on_link(d, true, d->userdata);
		device_unref(d);
	}
	return 0;
}

static int method_connect(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct sim_bluez_device *d = userdata;
	struct sim_bluez *b = d->b;
	int r;

	if (d->pending_connect)
		return sd_bus_error_set(error, ERR_IN_PROGRESS, "In Progress");
	if (d->connected && d->resolved)
		return sd_bus_reply_method_return(m, NULL);
	if (d->unreachable || (b->max_connections > 0 && b->n_connected >= b->max_connections))
		return sd_bus_error_set(error, ERR_FAILED, "le-connection-abort-by-local");

	r = sd_event_add_time_relative(b->event, &d->resolve_timer, CLOCK_MONOTONIC,
				       (uint64_t)d->resolve_delay_ms * 1000, 1000,
				       device_on_resolved, d);
	if (r < 0)
		return r;
	(void)sd_event_source_set_description(d->resolve_timer, "sim-bluez-resolve");
	d->pending_connect = sd_bus_message_ref(m);
	d->connected = true;
	b->n_connected++;
	d->stats.connects++;
	emit_changed(d, d->path, DEVICE_IFACE, "Connected");
	return 1;
}

static int method_disconnect(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct sim_bluez_device *d = userdata;

	if (!d->connected)
		return sd_bus_error_set(error, ERR_NOT_CONNECTED, "Not Connected");
	device_link_down(d, "le-connection-abort-by-local");
	return sd_bus_reply_method_return(m, NULL);
}

/* ---- vtables ---- */

#define PROP(name, sig, getter) SD_BUS_PROPERTY(name, sig, getter, 0, SD_BUS_VTABLE_PROPERTY_CONST)
#define PROP_CHANGE(name, sig, getter)                                                             \
	SD_BUS_PROPERTY(name, sig, getter, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE)

static const sd_bus_vtable adapter_vtable[] = {
    SD_BUS_VTABLE_START(0),
    PROP("Address", "s", adapter_get),
    PROP("AddressType", "s", adapter_get),
    PROP("Name", "s", adapter_get),
    PROP("Alias", "s", adapter_get),
    PROP("Class", "u", adapter_get),
    PROP("Powered", "b", adapter_get),
    PROP("Discoverable", "b", adapter_get),
    PROP("Pairable", "b", adapter_get),
    PROP_CHANGE("Discovering", "b", adapter_get),
    PROP("UUIDs", "as", adapter_get),
    PROP("Roles", "as", adapter_get),
    SD_BUS_METHOD("StartDiscovery", "", "", method_start_discovery, 0),
    SD_BUS_METHOD("StopDiscovery", "", "", method_stop_discovery, 0),
    SD_BUS_METHOD("SetDiscoveryFilter", "a{sv}", "", method_set_discovery_filter, 0),
    SD_BUS_METHOD("GetDiscoveryFilters", "", "as", method_get_discovery_filters, 0),
    SD_BUS_METHOD("RemoveDevice", "o", "", method_remove_device, 0),
    SD_BUS_VTABLE_END,
};

#define DEVICE_COMMON                                                                              \
	PROP("Address", "s", device_get), PROP("AddressType", "s", device_get),                    \
	    PROP("Alias", "s", device_get), PROP_CHANGE("Paired", "b", device_get),                \
	    PROP_CHANGE("Bonded", "b", device_get), PROP_CHANGE("Trusted", "b", device_get),       \
	    PROP("Blocked", "b", device_get), PROP("LegacyPairing", "b", device_get),              \
	    PROP_CHANGE("RSSI", "n", device_get), PROP("UUIDs", "as", device_get),                 \
	    PROP_CHANGE("Connected", "b", device_get), PROP("Adapter", "o", device_get),           \
	    PROP_CHANGE("ServicesResolved", "b", device_get),                                      \
	    SD_BUS_METHOD("Connect", "", "", method_connect, 0),                                   \
	    SD_BUS_METHOD("Disconnect", "", "", method_disconnect, 0)

static const sd_bus_vtable device_vtable_named[] = {
    SD_BUS_VTABLE_START(0),
    PROP("Name", "s", device_get),
    DEVICE_COMMON,
    SD_BUS_VTABLE_END,
};

static const sd_bus_vtable device_vtable_unnamed[] = {
    SD_BUS_VTABLE_START(0),
    DEVICE_COMMON,
    SD_BUS_VTABLE_END,
};

static const sd_bus_vtable service_vtable[] = {
    SD_BUS_VTABLE_START(0),
    PROP("UUID", "s", service_get),
    PROP("Primary", "b", service_get),
    PROP("Device", "o", service_get),
    PROP("Includes", "ao", service_get),
    SD_BUS_VTABLE_END,
};

static const sd_bus_vtable char_vtable[] = {
    SD_BUS_VTABLE_START(0),
    PROP("UUID", "s", char_get),
    PROP("Service", "o", char_get),
    PROP_CHANGE("Value", "ay", char_get),
    PROP_CHANGE("Notifying", "b", char_get),
    PROP("Flags", "as", char_get),
    PROP_CHANGE("WriteAcquired", "b", char_get),
    PROP_CHANGE("NotifyAcquired", "b", char_get),
    PROP("MTU", "q", char_get),
    SD_BUS_METHOD("ReadValue", "a{sv}", "ay", method_read_value, 0),
    SD_BUS_METHOD("WriteValue", "aya{sv}", "", method_write_value, 0),
    SD_BUS_METHOD("AcquireWrite", "a{sv}", "hq", method_acquire_write, 0),
    SD_BUS_METHOD("AcquireNotify", "a{sv}", "hq", method_acquire_notify, 0),
    SD_BUS_METHOD("StartNotify", "", "", method_start_notify, 0),
    SD_BUS_METHOD("StopNotify", "", "", method_stop_notify, 0),
    SD_BUS_VTABLE_END,
};

/* ---- public API ---- */

int sim_bluez_new(sd_event *e, sd_bus *bus, const struct sim_bluez_config *cfg,
		  struct sim_bluez **ret)
{
	static const struct sim_bluez_config defaults = {0};
	struct sim_bluez *b;
	int r;

	if (!e || !bus || !ret)
		return -EINVAL;
	if (!cfg)
		cfg = &defaults;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->event = sd_event_ref(e);
	b->bus = sd_bus_ref(bus);
	b->max_connections = cfg->max_connections;
	b->discovery_delay_ms = cfg->discovery_delay_ms ? cfg->discovery_delay_ms : 10;
	b->rssi_interval_ms = cfg->rssi_interval_ms ? cfg->rssi_interval_ms : 1000;
	b->adapter_address =
	    strdup(cfg->adapter_address ? cfg->adapter_address : "00:AA:01:00:00:01");
	b->adapter_name = strdup(cfg->adapter_name ? cfg->adapter_name : "smpgw-sim");
	if (!b->adapter_address || !b->adapter_name) {
		r = -ENOMEM;
		goto fail;
	}

	if (!sd_bus_get_event(bus)) {
		r = sd_bus_attach_event(bus, e, SD_EVENT_PRIORITY_NORMAL);
		if (r < 0)
			goto fail;
	}
	r = sd_bus_add_object_manager(bus, &b->manager_slot, "/");
	if (r < 0)
		goto fail;
	r = sd_bus_add_object_vtable(bus, &b->adapter_slot, SIM_BLUEZ_ADAPTER_PATH, ADAPTER_IFACE,
				     adapter_vtable, b);
	if (r < 0)
		goto fail;
	if (!cfg->no_request_name) {
		r = sd_bus_request_name(bus, BLUEZ_NAME, 0);
		if (r < 0)
			goto fail;
		b->owns_name = true;
	}
	(void)sd_bus_emit_object_added(bus, SIM_BLUEZ_ADAPTER_PATH);
	*ret = b;
	return 0;

fail:
	sim_bluez_free(b);
	return r;
}

struct sim_bluez *sim_bluez_free(struct sim_bluez *b)
{
	if (!b)
		return NULL;
	while (b->devices)
		sim_bluez_remove_device(b->devices);
	b->rssi_timer = sd_event_source_disable_unref(b->rssi_timer);
	if (b->adapter_slot)
		(void)sd_bus_emit_object_removed(b->bus, SIM_BLUEZ_ADAPTER_PATH);
	b->adapter_slot = sd_bus_slot_unref(b->adapter_slot);
	b->manager_slot = sd_bus_slot_unref(b->manager_slot);
	if (b->owns_name)
		(void)sd_bus_release_name(b->bus, BLUEZ_NAME);
	for (unsigned i = 0; i < b->n_discovery_clients; i++)
		free(b->discovery_clients[i]);
	filter_clear(b);
	free(b->adapter_address);
	free(b->adapter_name);
	sd_bus_unref(b->bus);
	sd_event_unref(b->event);
	free(b);
	return NULL;
}

static void device_free(struct sim_bluez_device *d)
{
	free(d->address);
	free(d->name);
	free(d->alias);
	free(d);
}

int sim_bluez_add_device(struct sim_bluez *b, const struct sim_bluez_device_config *cfg,
			 struct sim_bluez_device **ret)
{
	char addr[18];
	struct sim_bluez_device *d;
	uint16_t mtu;

	if (!b || !cfg || !parse_address(cfg->address, addr))
		return -EINVAL;
	mtu = cfg->att_mtu ? cfg->att_mtu : 247;
	if (mtu < 23 || mtu > 517)
		return -EINVAL;
	if (sim_bluez_find_device(b, addr))
		return -EEXIST;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->b = b;
	d->n_ref = 1;
	d->write_fd = d->notify_fd = -1;
	d->address = strdup(addr);
	d->name = cfg->name ? strdup(cfg->name) : NULL;
	if (cfg->name)
		d->alias = strdup(cfg->name);
	else if (d->address) {
		d->alias = strdup(d->address);
		for (char *p = d->alias; p && *p; p++)
			if (*p == ':')
				*p = '-';
	}
	if (!d->address || !d->alias || (cfg->name && !d->name)) {
		device_free(d);
		return -ENOMEM;
	}
	d->address_random = cfg->address_random;
	d->rssi = cfg->rssi ? cfg->rssi : -60;
	d->rssi_fixed = cfg->rssi_fixed;
	d->smp_service = !cfg->no_smp_service;
	d->paired = cfg->known;
	d->att_mtu = mtu;
	d->reassembly = cfg->reassembly;
	d->buf_size = cfg->buf_size ? cfg->buf_size : 2475;
	d->no_acquire = cfg->no_acquire;
	d->conn_interval_us = cfg->conn_interval_us;
	d->packets_per_event = cfg->packets_per_event ? cfg->packets_per_event : 4;
	d->resolve_delay_ms = cfg->resolve_delay_ms ? cfg->resolve_delay_ms : 5;
	d->unreachable = cfg->unreachable;
	d->on_smp_packet = cfg->on_smp_packet;
	d->on_link = cfg->on_link;
	d->userdata = cfg->userdata;

	char mangled[18];
	memcpy(mangled, addr, sizeof(mangled));
	for (char *p = mangled; *p; p++)
		if (*p == ':')
			*p = '_';
	snprintf(d->path, sizeof(d->path), "%s/dev_%s", SIM_BLUEZ_ADAPTER_PATH, mangled);
	snprintf(d->service_path, sizeof(d->service_path), "%s/service000a", d->path);
	snprintf(d->char_path, sizeof(d->char_path), "%s/char000b", d->service_path);
	d->rng = 2166136261u;
	for (const char *p = addr; *p; p++)
		d->rng = (d->rng ^ (uint8_t)*p) * 16777619u;
	if (!d->rng)
		d->rng = 1;

	d->next = b->devices;
	if (b->devices)
		b->devices->prev = d;
	b->devices = d;

	if (cfg->known) {
		int r = device_show(d);

		if (r < 0) {
			sim_bluez_remove_device(d);
			return r;
		}
	} else
		device_schedule_discovery(d);
	if (ret)
		*ret = d;
	return 0;
}

void sim_bluez_remove_device(struct sim_bluez_device *d)
{
	struct sim_bluez *b;

	if (!d || d->removed)
		return;
	b = d->b;
	device_ref(d);
	device_link_down(d, "le-connection-abort-by-local");
	device_hide(d);
	d->discover_timer = sd_event_source_disable_unref(d->discover_timer);
	d->removed = true;
	if (d->prev)
		d->prev->next = d->next;
	else
		b->devices = d->next;
	if (d->next)
		d->next->prev = d->prev;
	d->prev = d->next = NULL;
	d->n_ref--; /* the list's reference; ours keeps it alive */
	device_unref(d);
}

struct sim_bluez_device *sim_bluez_find_device(struct sim_bluez *b, const char *address)
{
	char addr[18];

	if (!b || !parse_address(address, addr))
		return NULL;
	for (struct sim_bluez_device *d = b->devices; d; d = d->next)
		if (streq(d->address, addr))
			return d;
	return NULL;
}

unsigned sim_bluez_connection_count(struct sim_bluez *b)
{
	return b->n_connected;
}

bool sim_bluez_is_discovering(struct sim_bluez *b)
{
	return b->n_discovery_clients > 0;
}

int sim_bluez_device_notify(struct sim_bluez_device *d, const uint8_t *pkt, size_t len)
{
	size_t chunk = (size_t)d->att_mtu - 3;

	if (!d->connected || !d->resolved)
		return -ENOTCONN;
	for (size_t off = 0; off < len; off += chunk) {
		int r = pdu_queue_push(&d->to_central, pkt + off, MIN(chunk, len - off));

		if (r < 0)
			return r;
	}
	device_pump(d, false);
	return 0;
}

void sim_bluez_device_drop_connection(struct sim_bluez_device *d)
{
	device_link_down(d, "le-connection-abort-by-remote");
}

void sim_bluez_device_set_unreachable(struct sim_bluez_device *d, bool unreachable)
{
	d->unreachable = unreachable;
}

void sim_bluez_device_set_rssi(struct sim_bluez_device *d, int16_t rssi)
{
	d->rssi = rssi;
	if (d->visible)
		emit_changed(d, d->path, DEVICE_IFACE, "RSSI");
	else
		device_schedule_discovery(d);
}

const char *sim_bluez_device_get_address(struct sim_bluez_device *d)
{
	return d->address;
}

const char *sim_bluez_device_get_path(struct sim_bluez_device *d)
{
	return d->path;
}

const char *sim_bluez_device_get_char_path(struct sim_bluez_device *d)
{
	return d->char_path;
}

bool sim_bluez_device_is_connected(struct sim_bluez_device *d)
{
	return d->connected;
}

bool sim_bluez_device_is_visible(struct sim_bluez_device *d)
{
	return d->visible;
}

uint16_t sim_bluez_device_get_att_mtu(struct sim_bluez_device *d)
{
	return d->att_mtu;
}

void *sim_bluez_device_get_userdata(struct sim_bluez_device *d)
{
	return d->userdata;
}

void sim_bluez_device_get_stats(struct sim_bluez_device *d, struct sim_bluez_device_stats *ret)
{
	*ret = d->stats;
}
