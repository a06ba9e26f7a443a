/* sim-bluez: a fake BlueZ that owns org.bluez on a D-Bus connection and simulates SMP devices */
#pragma once

/*
 * What it exports on the bus it is given (all through sd-bus vtables, names exactly as
 * BlueZ 5.66):
 *
 *   /                                        org.freedesktop.DBus.ObjectManager
 *   /org/bluez/hci0                          org.bluez.Adapter1
 *       Address Name Alias Powered Discovering UUIDs; StartDiscovery StopDiscovery
 *       SetDiscoveryFilter (UUIDs, Transport, RSSI, Pattern honoured; DuplicateData and
 *       Discoverable accepted) RemoveDevice GetDiscoveryFilters
 *   /org/bluez/hci0/dev_XX_XX_XX_XX_XX_XX    org.bluez.Device1
 *       Address AddressType Name (only when the device has one) Alias RSSI UUIDs Connected
 *       ServicesResolved Adapter Paired Trusted Blocked; Connect Disconnect
 *   .../service000a                          org.bluez.GattService1 (UUID Primary Device)
 *   .../service000a/char000b                 org.bluez.GattCharacteristic1
 *       UUID Service Flags Value Notifying WriteAcquired NotifyAcquired MTU;
 *       ReadValue WriteValue StartNotify StopNotify AcquireWrite AcquireNotify
 *
 * Behaviour copied from BlueZ (src/adapter.c, src/device.c, src/gatt-client.c):
 * - A device object appears (InterfacesAdded) when discovery finds it, i.e. only while
 *   Discovering is true and the device matches the discovery filter, unless it was
 *   created "known". It stays afterwards; RemoveDevice or sim_bluez_remove_device()
 *   removes it (InterfacesRemoved).
 * - Connect: Connected=true; after resolve_delay_ms the GATT objects appear,
 *   ServicesResolved=true, and then the reply (BlueZ answers an LE Connect once the
 *   services are resolved). Disconnect or a dropped link: the acquired fds are closed
 *   (the peer sees HUP), ServicesResolved=false, GATT objects are removed,
 *   Connected=false.
 * - Simplified: properties are always present (BlueZ drops RSSI when discovery stops;
 *   here it keeps its last value); one discovery filter is shared by all clients (BlueZ
 *   merges per-client filters); a client leaving the bus does not end its discovery
 *   session; no pairing, no agent, no descriptors (the CCCD is implied by StartNotify).
 * - AcquireWrite/AcquireNotify reply (h fd, q mtu) with a SOCK_SEQPACKET socketpair end;
 *   mtu is the ATT_MTU (what bt_gatt_client_get_mtu() returns), NOT the payload size:
 *   one write/notification carries at most mtu - 3 bytes. A longer packet written to the
 *   write fd is dropped silently (BlueZ's bt_att_send refuses it); WriteValue with a value
 *   longer than mtu - 3 fails with org.bluez.Error.Failed "Failed to initiate write".
 * - Errors: Failed "Not connected", NotPermitted "Write acquired" / "Notify acquired",
 *   InProgress, NotSupported, InvalidArguments, AlreadyConnected is never returned by
 *   Connect (BlueZ answers success when already connected), NotConnected from
 *   Disconnect of a device that is not connected. Connect beyond the adapter's
 *   connection limit fails with org.bluez.Error.Failed "le-connection-abort-by-local"
 *   (what BlueZ reports when the controller refuses a new LE connection).
 *
 * Device model (Zephyr's SMP Bluetooth transport): each ATT write carries up to
 * att_mtu - 3 bytes. Without reassembly every write must be one whole SMP packet
 * (8 + header length), otherwise it is dropped. With reassembly the first write starts a
 * packet and writes are appended until 8 + length bytes are held; a packet larger than
 * buf_size is dropped. Whole requests go to on_smp_packet. Responses are split into
 * att_mtu - 3 byte notifications, written to the notify fd when acquired, else sent as
 * PropertiesChanged on Value while Notifying (StartNotify), else dropped.
 *
 * Throughput model: with conn_interval_us > 0, ATT packets in each direction leave at
 * connection events, at most packets_per_event per event and direction; a request is
 * delivered when its last write has crossed the link.
 *
 * Everything runs on the sd_event given to sim_bluez_new(); nothing blocks except the
 * org.bluez name request in sim_bluez_new(). Callbacks may call any function of this API
 * but sim_bluez_free(), including sim_bluez_device_notify() from within on_smp_packet,
 * and sim_bluez_remove_device() / sim_bluez_device_drop_connection() of the device they
 * are called for.
 *
 * Build: lib/io.mk builds this into tests/sim/libsimbluez.a (a noinst library, so the
 * simulator may be a noinst or check program); link it before $(LIBSMP_LIBS), it needs
 * only $(SYSTEMD_LIBS). tests/dbus-helper.h starts a private dbus-daemon for tests.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#define SIM_BLUEZ_SMP_SERVICE_UUID "8d53dc1d-1db7-4cd3-868b-8a527460aa84"
#define SIM_BLUEZ_SMP_CHAR_UUID "da2e7828-fbce-4e01-ae9e-261174997c48"
#define SIM_BLUEZ_ADAPTER_PATH "/org/bluez/hci0"

struct sim_bluez;
struct sim_bluez_device;

/* A whole SMP request arrived at the device (reassembled). pkt is valid during the call. */
typedef void (*sim_bluez_smp_fn)(struct sim_bluez_device *dev, const uint8_t *pkt, size_t len,
				 void *userdata);
/* The device's link came up (connected = true) or went down. */
typedef void (*sim_bluez_link_fn)(struct sim_bluez_device *dev, bool connected, void *userdata);

struct sim_bluez_config {
	/* Adapter1.Address; NULL = "00:AA:01:00:00:01". */
	const char *adapter_address;
	/* Adapter1.Name and Alias; NULL = "smpgw-sim". */
	const char *adapter_name;
	/* Simultaneous LE connections the adapter accepts; 0 = unlimited. */
	unsigned max_connections;
	/* Discovery reports each device this long after StartDiscovery (or after it is
	 * added while discovering); 0 = 10 ms. */
	uint32_t discovery_delay_ms;
	/* While discovering, every device's RSSI changes by a few dB this often and
	 * PropertiesChanged is emitted; 0 = 1000 ms. */
	uint32_t rssi_interval_ms;
	/* Skip sd_bus_request_name("org.bluez"): the caller owns the name already or runs
	 * with a bus where names are not needed. */
	bool no_request_name;
};

struct sim_bluez_device_config {
	/* "AA:BB:CC:DD:EE:FF", upper or lower case; required and unique. */
	const char *address;
	/* AddressType "random" instead of "public". */
	bool address_random;
	/* Device1.Name (and Alias); NULL = no Name property, Alias = address with '-'. */
	const char *name;
	/* Initial RSSI in dBm; 0 = -60. */
	int16_t rssi;
	/* Keep RSSI constant instead of letting it wander. */
	bool rssi_fixed;
	/* The device offers no SMP service (UUIDs and GATT without it): for filter tests. */
	bool no_smp_service;
	/* The object exists from the start, as for a device BlueZ already knows (paired or
	 * cached): no discovery needed. Also sets Paired and Trusted. */
	bool known;
	/* ATT_MTU after the MTU exchange, 23..517; 0 = 247. */
	uint16_t att_mtu;
	/* CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY: requests may span several writes. */
	bool reassembly;
	/* The device's SMP buffer (MCUmgr params buf_size); 0 = 2475. With reassembly a
	 * request larger than this is dropped. */
	size_t buf_size;
	/* AcquireWrite and AcquireNotify answer org.bluez.Error.NotSupported (as for a
	 * characteristic BlueZ cannot hand out as a socket), forcing WriteValue/StartNotify. */
	bool no_acquire;
	/* Throughput model; see above. 0 = deliver at once. */
	uint32_t conn_interval_us;
	/* ATT packets per connection event and direction; 0 = 4. */
	unsigned packets_per_event;
	/* Delay between Connected=true and ServicesResolved=true; 0 = 5 ms. */
	uint32_t resolve_delay_ms;
	/* Every Connect fails with org.bluez.Error.Failed "le-connection-abort-by-local"
	 * (device out of range). */
	bool unreachable;
	/* Receives whole SMP requests; NULL = requests are dropped. */
	sim_bluez_smp_fn on_smp_packet;
	/* Link up/down notifications; may be NULL. */
	sim_bluez_link_fn on_link;
	void *userdata;
};

/* Counters for tests and benchmarks. */
struct sim_bluez_device_stats {
	uint64_t connects;		/* successful Connect calls */
	uint64_t att_writes;		/* ATT writes received (fd or WriteValue) */
	uint64_t att_writes_dropped;	/* too long, or not part of a packet */
	uint64_t requests;		/* whole SMP requests delivered to on_smp_packet */
	uint64_t requests_dropped;	/* bad length, too large, split */
	uint64_t notifications;		/* ATT notifications sent */
	uint64_t notifications_dropped; /* no notify fd and not Notifying, or link down */
	uint64_t acquire_write;		/* AcquireWrite successes */
	uint64_t acquire_notify;	/* AcquireNotify successes */
	uint64_t write_value;		/* WriteValue successes */
	uint16_t max_write;		/* the longest single ATT write received */
};

/* Registers the fake BlueZ on bus (which must already be attached to e, or is attached
 * by this call when it is not attached yet) and requests the name org.bluez (unless
 * cfg->no_request_name). cfg may be NULL for defaults. Returns 0, -EEXIST when the name is
 * taken, -ENOMEM, or another negative errno from sd-bus. The bus and loop are borrowed
 * (referenced) and must outlive nothing: sim_bluez_free() drops the references. */
int sim_bluez_new(sd_event *e, sd_bus *bus, const struct sim_bluez_config *cfg,
		  struct sim_bluez **ret);
/* Removes every object from the bus, closes every fd, frees all devices. NULL-safe;
 * returns NULL. No callback runs after it. */
struct sim_bluez *sim_bluez_free(struct sim_bluez *b);

/* Adds a device that "advertises" from now on. It shows up on the bus when discovered
 * (or at once when cfg->known). The config strings are copied. Returns 0, -EINVAL
 * (bad or missing address, MTU out of 23..517), -EEXIST (address taken), -ENOMEM.
 * *ret (may be NULL) is owned by b: valid until sim_bluez_remove_device() or
 * sim_bluez_free(). */
int sim_bluez_add_device(struct sim_bluez *b, const struct sim_bluez_device_config *cfg,
			 struct sim_bluez_device **ret);
/* The device vanishes: its link is dropped (as a link loss) and its object removed
 * (InterfacesRemoved). dev is freed. */
void sim_bluez_remove_device(struct sim_bluez_device *dev);
/* Finds a device by address (any case); NULL when unknown. */
struct sim_bluez_device *sim_bluez_find_device(struct sim_bluez *b, const char *address);
/* Number of devices currently connected. */
unsigned sim_bluez_connection_count(struct sim_bluez *b);
/* Adapter1.Discovering. */
bool sim_bluez_is_discovering(struct sim_bluez *b);

/* Sends one SMP response (whole packet) to the central, split into att_mtu - 3 byte
 * notifications. The data is copied. Returns 0, -ENOTCONN when not connected, -ENOMEM. */
int sim_bluez_device_notify(struct sim_bluez_device *dev, const uint8_t *pkt, size_t len);
/* Simulates a link loss (supervision timeout), as BlueZ reports it: fds closed, GATT
 * objects removed, ServicesResolved=false, Connected=false. No-op when not connected. */
void sim_bluez_device_drop_connection(struct sim_bluez_device *dev);
/* Changes the reachability at run time (see sim_bluez_device_config.unreachable). */
void sim_bluez_device_set_unreachable(struct sim_bluez_device *dev, bool unreachable);
/* Sets RSSI (and emits PropertiesChanged when the object is on the bus). */
void sim_bluez_device_set_rssi(struct sim_bluez_device *dev, int16_t rssi);

/* Accessors. Strings live as long as the device. */
const char *sim_bluez_device_get_address(struct sim_bluez_device *dev);
/* "/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF". */
const char *sim_bluez_device_get_path(struct sim_bluez_device *dev);
/* Path of the SMP characteristic object (exists on the bus only while services are
 * resolved). */
const char *sim_bluez_device_get_char_path(struct sim_bluez_device *dev);
bool sim_bluez_device_is_connected(struct sim_bluez_device *dev);
/* Whether the object is on the bus (discovered or known). */
bool sim_bluez_device_is_visible(struct sim_bluez_device *dev);
uint16_t sim_bluez_device_get_att_mtu(struct sim_bluez_device *dev);
void *sim_bluez_device_get_userdata(struct sim_bluez_device *dev);
void sim_bluez_device_get_stats(struct sim_bluez_device *dev, struct sim_bluez_device_stats *ret);
