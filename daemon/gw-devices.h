/* gw-devices: one shared SMP client per device, opened on demand, with the BLE connection budget */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "lib/smp-client.h"

struct gw_manager;
struct gw_device;
struct gw_devices;

/* Called with a ready client (error 0) or why there is none: -EHOSTDOWN
 * (device offline: fail fast), -ECONNREFUSED/-ETIMEDOUT/-EIO (the link
 * could not be opened), -ECANCELED. The client is borrowed for the call:
 * take a reference to keep it. Also: the transport's own setup errors as
 * smp-ble-link.h lists them (-ECONNABORTED, -ENODEV, -EACCES ...) or the
 * open() error of a serial port; -ECONNRESET when the link was closed or
 * lost while the request waited; -EBUSY for GW_DEVICES_BACKGROUND below. */
typedef void (*gw_devices_client_fn)(struct gw_devices *ds, int error, struct smp_client *c,
				     void *userdata);

/* Needs m->registry (-EINVAL without): it follows removals, address
 * changes and devices going offline (their links close, waiting calls fail
 * with -EHOSTDOWN). [smp], [serial] baud and [ble] are read from m->config
 * here and by gw_devices_reload(). Event sources: one defer "gw-devices-dispatch" and a timer
 * "gw-devices-idle" per UDP or BLE link, plus those of the links and
 * clients (smp-udp.h, smp-serial-link.h, smp-ble-link.h, smp-client.h).
 * Returns 0, -ENOMEM, or an sd-event error. */
int gw_devices_new(struct gw_manager *m, struct gw_devices **ret);
/* Takes [smp] timeout, [ble] max_connections and idle_timeout, and whether
 * to seed params ([poll] interval) from m->config again (SIGHUP). [smp]
 * retries reaches the links opened after it. */
void gw_devices_reload(struct gw_devices *ds);
/* Closes every link; calls still waiting get -ECANCELED. Free the poller
 * before. NULL-safe; returns NULL. */
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

/* Flags of gw_devices_call_flags(). */
enum {
	/* Also when the device is offline: a liveness check (the poller
	 * probing UDP and serial devices). */
	GW_DEVICES_PROBE = 1 << 0,
	/* Background work (the poller): a BLE device without a link gets one
	 * only when the budget has a free or an idle link to give; otherwise
	 * the call fails at once with -EBUSY instead of queueing ahead of
	 * interactive work. */
	GW_DEVICES_BACKGROUND = 1 << 1,
};

/* gw_devices_call() with flags. cb gets c == NULL when the request was never
 * sent (offline, the link could not be opened, closed while waiting). */
int gw_devices_call_flags(struct gw_devices *ds, struct gw_device *d, struct smp_request *req,
			  enum smp_priority prio, unsigned timeout_ms, unsigned flags,
			  smp_client_done_fn cb, void *userdata, void (*destroy)(void *),
			  uint64_t *ret_id);

/* Marks the device busy with a long operation (an upload): the link is not
 * closed for idleness or evicted while busy, and the poller pauses. Counted. */
void gw_devices_hold(struct gw_devices *ds, struct gw_device *d);
void gw_devices_release(struct gw_devices *ds, struct gw_device *d);
bool gw_devices_is_held(struct gw_devices *ds, struct gw_device *d);

/* Closes the device's link (device removed, gone offline, or reset). */
void gw_devices_close(struct gw_devices *ds, struct gw_device *d);
/* Closes the link only when nobody uses it: not held, no call waiting or
 * pending, nothing in flight on the client. Background work that opened a
 * link leaves it closed this way. Returns whether it closed a link. */
bool gw_devices_close_idle(struct gw_devices *ds, struct gw_device *d);

/* Open BLE links now (connecting or up), for tests and /metrics. */
unsigned gw_devices_ble_connections(struct gw_devices *ds);
/* Whether the device has a link now (connecting or up). */
bool gw_devices_has_link(struct gw_devices *ds, struct gw_device *d);

/* UDP sockets idle this long are closed (BLE links follow [ble]
 * idle_timeout; serial ports stay open until closed or lost): a socket and
 * its buffers cost more than asking the device's params again. */
#define GW_DEVICES_UDP_IDLE_MS 5000
