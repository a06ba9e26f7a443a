/* gw-registry: every device smpgwd knows, with its identity, state and what it reported; persisted */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct gw_manager;
struct gw_registry;

enum gw_transport {
	GW_TRANSPORT_UDP,
	GW_TRANSPORT_SERIAL,
	GW_TRANSPORT_BLE,
};

enum gw_source {
	GW_SOURCE_CONFIG,     /* [device NAME] in smpgwd.conf */
	GW_SOURCE_DISCOVERED, /* BlueZ or a probed tty */
	GW_SOURCE_API,        /* POST /api/v1/devices */
};

/* Owned by the registry; valid until gw_registry_remove() or gw_registry_free().
 * Callers read the fields and change them only through gw_registry_* so that
 * every change is persisted and announced. */
struct gw_device {
	char *id;        /* URL-safe, stable: derived from identity ("ble-c0-ff-ee-00-00-01") */
	char *identity;  /* "ble:C0:FF:EE:00:00:01", "usb:<serial>", "tty:/dev/ttyACM0", "udp:127.0.0.1:1337" */
	enum gw_transport transport;
	char *address;   /* what the link opens: host:port, tty path, BlueZ object path */
	char *name;      /* from config/API, else what the device or BlueZ reported */
	json_t *labels;  /* JSON array of strings */
	enum gw_source source;
	unsigned baud;   /* serial only; 0 = the [serial] baud */
	bool online;
	uint64_t last_seen_ms; /* 0 = never */
	int rssi;              /* BLE; valid when has_rssi */
	bool has_rssi;
	/* What the device reported, by section ("info", "params", "image_state",
	 * "bootloader", "stats", ...): {"<section>": {"value": ..., "at": ms}}. */
	json_t *reported;
	void *live;            /* owned by gw-devices: the client and its link; NULL when idle */
};

/* What discovery or the API knows when it finds or registers a device. */
struct gw_device_spec {
	enum gw_transport transport;
	const char *identity; /* required */
	const char *address;  /* required */
	const char *name;     /* NULL: keep what is known */
	const char *labels;   /* comma-separated; NULL: keep what is known */
	enum gw_source source;
	unsigned baud;
};

enum gw_registry_event {
	GW_REGISTRY_ADDED,
	GW_REGISTRY_REMOVED,  /* called before the device is freed */
	GW_REGISTRY_ONLINE,
	GW_REGISTRY_OFFLINE,
	GW_REGISTRY_CHANGED,  /* name, labels or address */
	GW_REGISTRY_REPORTED, /* a reported section changed; section names it */
};

typedef void (*gw_registry_listener_fn)(struct gw_registry *r, enum gw_registry_event ev,
					struct gw_device *d, const char *section, void *userdata);

/* Loads every device from the database; all start offline. Returns 0 or -errno. */
int gw_registry_new(struct gw_manager *m, struct gw_registry **ret);
struct gw_registry *gw_registry_free(struct gw_registry *r);

/* Derives the URL-safe id of an identity into buf (lower case; [a-z0-9-] only). */
int gw_registry_id_from_identity(const char *identity, char *buf, size_t size);

/* Creates the device with this identity, or updates its address (and name,
 * labels when given: config and API win over discovery, which never
 * overwrites a name or labels set by config or API). Persisted before it
 * returns. Returns 0 and the device (borrowed), -EINVAL for a bad spec. */
int gw_registry_upsert(struct gw_registry *r, const struct gw_device_spec *spec,
		       struct gw_device **ret);
/* Forgets a device (API DELETE): persisted, listeners told, then freed. */
int gw_registry_remove(struct gw_registry *r, struct gw_device *d);

struct gw_device *gw_registry_find(struct gw_registry *r, const char *id);
struct gw_device *gw_registry_find_identity(struct gw_registry *r, const char *identity);
/* Devices sorted by id; after = NULL starts at the first. For pagination. */
struct gw_device *gw_registry_next(struct gw_registry *r, const char *after);
size_t gw_registry_count(struct gw_registry *r);
size_t gw_registry_count_online(struct gw_registry *r);

/* State changes, persisted (last_seen is written in batches, at most every
 * few seconds per device, to keep sqlite writes low with many devices). */
void gw_registry_set_online(struct gw_registry *r, struct gw_device *d, bool online);
void gw_registry_seen(struct gw_registry *r, struct gw_device *d); /* a packet arrived */
void gw_registry_set_rssi(struct gw_registry *r, struct gw_device *d, int rssi);
int gw_registry_set_name(struct gw_registry *r, struct gw_device *d, const char *name);
int gw_registry_set_labels(struct gw_registry *r, struct gw_device *d, json_t *labels /* array, borrowed */);
/* Stores value (reference stolen) under section with the current time. */
int gw_registry_set_reported(struct gw_registry *r, struct gw_device *d, const char *section,
			     json_t *value);
/* The value of a reported section (borrowed) and its time; NULL when never reported. */
json_t *gw_registry_get_reported(struct gw_device *d, const char *section, uint64_t *ret_at_ms);

/* Listeners run synchronously after each change; they may not remove devices. */
int gw_registry_add_listener(struct gw_registry *r, gw_registry_listener_fn fn, void *userdata);
void gw_registry_remove_listener(struct gw_registry *r, gw_registry_listener_fn fn, void *userdata);

/* Writes pending batched changes (last_seen) now; called on shutdown. */
int gw_registry_flush(struct gw_registry *r);
/* How long batched changes (last_seen, rssi, reported) may wait before they
 * are written; 5 s by default. For tests and benchmarks. */
void gw_registry_set_flush_interval(struct gw_registry *r, uint64_t ms);

const char *gw_transport_to_string(enum gw_transport t);
int gw_transport_from_string(const char *s);
const char *gw_source_to_string(enum gw_source s);
