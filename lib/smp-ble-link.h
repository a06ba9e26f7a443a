/* smp-ble-link: SMP over Bluetooth LE GATT through BlueZ (D-Bus), or over two ATT sockets */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "smp-transport.h"

/* smp-protocol.md §13.2. Requests are written to the SMP characteristic with
 * Write Without Response, answers arrive as notifications and are reassembled
 * (smp-ble) using the SMP header's length.
 *
 * Setup through BlueZ (smp_ble_link_new), all asynchronous on the caller's bus:
 *   1. Properties.GetAll(org.bluez.Device1) on the device object;
 *   2. Device1.Connect when Connected is false (see smp_ble_link_disconnect());
 *   3. wait for ServicesResolved = true (PropertiesChanged);
 *   4. ObjectManager.GetManagedObjects: the GattCharacteristic1 with the SMP UUID
 *      below the device, in a GattService1 with the SMP service UUID;
 *   5. AcquireNotify({}) and AcquireWrite({}): SOCK_SEQPACKET descriptors where
 *      one read/write is one ATT notification/write. When BlueZ answers
 *      NotSupported, NotPermitted or InProgress, the link falls back to
 *      StartNotify + PropertiesChanged(Value) and WriteValue(value,
 *      {"type": "command"}) for that direction;
 *   6. on_state(0).
 * The whole setup is bounded by setup_timeout_ms. A setup failure is reported
 * as on_state(negative errno): -ECONNABORTED (BlueZ Failed "le-connection-...",
 * also what a full adapter answers), -ETIMEDOUT, -ENODEV (no such device
 * object), -EPROTONOSUPPORT (no SMP characteristic), -EACCES (NotPermitted or
 * NotAuthorized: pairing needed, §16.11), -EHOSTDOWN (org.bluez not on the bus),
 * -EIO (anything else).
 *
 * MTU: AcquireWrite/AcquireNotify return BlueZ's bt_gatt_client_get_mtu(), the
 * ATT_MTU (e.g. 247), not the payload size: one write or notification carries
 * at most ATT_MTU - 3 bytes, and BlueZ silently drops a longer write on the
 * socket. Without Acquire the characteristic's MTU property (BlueZ >= 5.62) is
 * used, else the minimum 23.
 *
 * A request longer than ATT_MTU - 3 is split into consecutive writes only when
 * cfg.reassembly says the device reassembles (CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY);
 * otherwise send() refuses it with -EMSGSIZE. A partial answer is dropped after
 * gap_timeout_ms without a notification.
 *
 * Link loss once up (Connected or ServicesResolved false, a hang-up on either
 * socket, the device or characteristic object removed, org.bluez leaving the
 * bus) reports on_state(-ECONNRESET). The link then stays down: send() answers
 * -ENOTCONN until smp_ble_link_connect() has brought it up again (on_state(0)).
 * send() also answers -ENOTCONN before the first on_state(0).
 *
 * Event sources on the caller's loop: IO "smp-ble-write" and "smp-ble-notify",
 * timers "smp-ble-setup" and "smp-ble-gap" (CLOCK_MONOTONIC), defer
 * "smp-ble-state"; on the bus: signal matches and the pending method calls. */

#define SMP_BLE_SMP_SERVICE_UUID "8d53dc1d-1db7-4cd3-868b-8a527460aa84"
#define SMP_BLE_SMP_CHAR_UUID "da2e7828-fbce-4e01-ae9e-261174997c48"
#define SMP_BLE_LINK_DEFAULT_GAP_TIMEOUT_MS 2000
#define SMP_BLE_LINK_DEFAULT_SETUP_TIMEOUT_MS 30000

struct smp_ble_link_config {
	/* The device reassembles requests written in several pieces. */
	bool reassembly;
	/* Largest answer accepted; 0 = anything the header can announce. */
	size_t max_packet;
	/* Drop a partial answer after this long without a notification; 0 = 2000 ms. */
	unsigned gap_timeout_ms;
	/* Bound on the whole setup (connect included); 0 = 30000 ms. */
	unsigned setup_timeout_ms;
	/* Skip AcquireWrite/AcquireNotify (use WriteValue/StartNotify). */
	bool no_acquire;
	/* smp_ble_link_new() does not start the setup; smp_ble_link_connect() does. */
	bool no_autoconnect;
	/* Optional debug hook (prio is LOG_DEBUG). */
	void (*log)(int prio, const char *msg, void *userdata);
	void *log_userdata;
};

/* A link to the BlueZ device object device_path (e.g.
 * "/org/bluez/hci0/dev_C0_FF_EE_00_00_01") over bus, which must be attached to e
 * (the link does not attach it). Setup starts at once unless cfg->no_autoconnect;
 * its result arrives through on_state, so set the handlers before returning to
 * the loop. cfg may be NULL; it is copied. Returns 0, -EINVAL, -ENOMEM, or the
 * negative errno of installing the signal matches. */
int smp_ble_link_new(sd_event *e, sd_bus *bus, const char *device_path,
		     const struct smp_ble_link_config *cfg, struct smp_transport **ret);

/* A link over two already-acquired sockets (what AcquireWrite and AcquireNotify
 * return, or socketpair ends in tests and benchmarks): write_fd carries ATT
 * writes, notify_fd notifications, att_mtu is the ATT_MTU (23..517) as those
 * calls return it. The same fd may be given twice. The fds are taken on success
 * (closed by free), the caller's on failure. The link is up at once and reports
 * on_state(0) from the loop. Returns 0, -EINVAL, -ENOMEM. */
int smp_ble_link_new_fds(sd_event *e, int write_fd, int notify_fd, size_t att_mtu,
			 const struct smp_ble_link_config *cfg, struct smp_transport **ret);

/* (Re)starts the setup of a link created by smp_ble_link_new() that is down.
 * Returns 0 (also when it is up or coming up), -EOPNOTSUPP for a link made
 * from fds. */
int smp_ble_link_connect(struct smp_transport *t);

/* Releases the sockets (or StopNotify) and asks BlueZ to disconnect the device
 * (Device1.Disconnect), whoever connected it: the daemon calls it to free one
 * of the adapter's few connection slots. Reports on_state(-ENOTCONN) from the
 * loop when the link was up or coming up. Free alone does not disconnect (the
 * device may have other users), it only releases the sockets. Returns 0. */
int smp_ble_link_disconnect(struct smp_transport *t);

/* The ATT_MTU in use (0 while unknown); whether the write and the notify
 * direction use acquired sockets. For logs, tests and benchmarks. */
size_t smp_ble_link_get_att_mtu(struct smp_transport *t);
bool smp_ble_link_write_acquired(struct smp_transport *t);
bool smp_ble_link_notify_acquired(struct smp_transport *t);
