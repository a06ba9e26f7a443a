/* gw-devices: one shared SMP client per device, opened on demand, with the BLE connection budget */
#pragma once

#include <stdint.h>

#include "lib/smp-client.h"

struct gw_manager;
struct gw_device;
struct gw_devices;

/* Called with a ready client (error 0) or why there is none: -EHOSTDOWN
 * (device offline: fail fast), -ECONNREFUSED/-ETIMEDOUT/-EIO (the link
 * could not be opened), -ECANCELED. The client is borrowed for the call:
 * take a reference to keep it. */
typedef void (*gw_devices_client_fn)(struct gw_devices *ds, int error, struct smp_client *c,
				     void *userdata);

int gw_devices_new(struct gw_manager *m, struct gw_devices **ret);
struct gw_devices *gw_devices_free(struct gw_devices *ds);

/* Gets the device's client, creating its link on demand (UDP socket,
 * serial port, BLE connection through BlueZ). The callback runs from the
 * loop, never inside this call. BLE: at most [ble] max_connections links
 * are open at once; beyond that the least recently used idle link is
 * closed, and when none is idle the request waits (in order) for one to
 * become free instead of failing. A link idle for [ble] idle_timeout is
 * closed. (callback, userdata, destroy): destroy runs exactly once.
 * Returns 0 and an id for gw_devices_cancel(), or -errno (nothing runs). */
int gw_devices_get_client(struct gw_devices *ds, struct gw_device *d, gw_devices_client_fn cb,
			  void *userdata, void (*destroy)(void *), uint64_t *ret_id);
int gw_devices_cancel(struct gw_devices *ds, uint64_t id);

/* Sends one request to the device (getting the client as above): the usual
 * way for the API and the poller to talk to a device. req is always taken.
 * Errors of the link are reported to cb like smp_client errors; -EHOSTDOWN
 * when the device is offline. */
int gw_devices_call(struct gw_devices *ds, struct gw_device *d, struct smp_request *req,
		    enum smp_priority prio, unsigned timeout_ms, smp_client_done_fn cb,
		    void *userdata, void (*destroy)(void *), uint64_t *ret_id);

/* Marks the device busy with a long operation (an upload): the link is not
 * closed for idleness or evicted while busy, and the poller pauses. Counted. */
void gw_devices_hold(struct gw_devices *ds, struct gw_device *d);
void gw_devices_release(struct gw_devices *ds, struct gw_device *d);
bool gw_devices_is_held(struct gw_devices *ds, struct gw_device *d);

/* Closes the device's link (device removed, gone offline, or reset). */
void gw_devices_close(struct gw_devices *ds, struct gw_device *d);

/* Open BLE links now, for tests and /metrics. */
unsigned gw_devices_ble_connections(struct gw_devices *ds);
