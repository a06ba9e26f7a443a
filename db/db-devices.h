/* db-devices: the devices table: loading, upserting, deleting and updating device rows */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct db_devices;

/* One row. Strings handed to the load callback live until it returns (they
 * point into sqlite's row): copy what you keep. */
struct db_device {
	const char *id;
	const char *identity;
	const char *transport; /* "udp", "serial", "ble" */
	const char *address;
	const char *name;
	const char *labels;    /* JSON array */
	const char *source;    /* "config", "discovered", "api" */
	unsigned baud;
	bool name_pinned;      /* name set by config or API */
	bool labels_pinned;
	bool online;
	uint64_t last_seen_ms; /* 0: never (NULL) */
	bool has_rssi;
	int rssi;
	const char *reported;  /* JSON object */
	uint64_t reported_at_ms; /* 0: never (NULL) */
	uint64_t created_at_ms;
	uint64_t updated_at_ms;
};

/* What the batched write changes for one device. */
struct db_device_batch {
	const char *id;
	uint64_t last_seen_ms; /* 0: keep */
	bool has_rssi;         /* false: keep */
	int rssi;
	const char *reported;  /* JSON object; NULL: keep */
	uint64_t reported_at_ms;
};

/* The statements on the devices table, prepared at first use and kept until
 * db_devices_free(), which must run before db_close(). db is borrowed. */
int db_devices_new(struct db *db, struct db_devices **ret);
struct db_devices *db_devices_free(struct db_devices *dd);

/* Calls cb for every row, ordered by id; a negative return from cb stops
 * the walk and is returned. Returns the number of rows or -errno. */
typedef int (*db_devices_row_fn)(const struct db_device *row, void *userdata);
int db_devices_load(struct db_devices *dd, db_devices_row_fn cb, void *userdata);

/* Inserts the row, or updates identity, transport, address, name, labels,
 * source, baud, the pinned flags and updated_at of the row with this id
 * (online, last_seen, rssi, reported and created_at are left alone; on
 * insert created_at = updated_at = now_ms). -EEXIST when another row has
 * this identity. */
int db_devices_upsert(struct db_devices *dd, const struct db_device *dev, uint64_t now_ms);
/* -ENOENT when no row has this id. */
int db_devices_delete(struct db_devices *dd, const char *id);

/* Marks every device offline (at start: nothing is connected yet). Returns
 * the number of rows changed or -errno. */
int db_devices_reset_online(struct db_devices *dd);
int db_devices_update_online(struct db_devices *dd, const char *id, bool online, uint64_t now_ms);
int db_devices_update_names(struct db_devices *dd, const char *id, const char *name,
			    bool name_pinned, const char *labels, bool labels_pinned,
			    uint64_t now_ms);
int db_devices_update_reported(struct db_devices *dd, const char *id, const char *reported,
			       uint64_t reported_at_ms);
/* Writes last_seen, rssi and reported of n devices in one transaction (all
 * or nothing). Rows whose device is gone are skipped. */
int db_devices_update_batch(struct db_devices *dd, const struct db_device_batch *rows, size_t n,
			    uint64_t now_ms);
