/* gw-bluez: BLE discovery: SMP devices that BlueZ finds become registry devices */
#pragma once

#include <stdbool.h>

struct gw_manager;
struct gw_bluez;

/*
 * Everything runs on m->bluez_bus (BlueZ's bus: the system bus, or a private
 * one in tests) with asynchronous calls only:
 *
 * - org.bluez is watched with NameOwnerChanged. When it appears (also at
 *   start), ObjectManager.GetManagedObjects loads its adapters and devices;
 *   InterfacesAdded/InterfacesRemoved and PropertiesChanged on Adapter1 and
 *   Device1 keep them current. Signals from anyone but the current owner of
 *   org.bluez are ignored.
 * - Every powered adapter gets SetDiscoveryFilter({"UUIDs": [the SMP service],
 *   "Transport": "le"}) and then StartDiscovery: when it is found, and again
 *   after it powers on (BlueZ ends every discovery session at power off).
 *   A failed StartDiscovery is logged and retried only at those moments.
 * - A Device1 whose UUIDs hold the SMP service (when found or later) becomes a
 *   registry device: identity "ble:<Address>" (upper case), address = its
 *   object path, name = its Alias unless that is BlueZ's stand-in made of the
 *   address, else its Name (a discovery name: the registry keeps a name that
 *   config or the API gave), transport BLE, source discovered.
 * - Online: when the object appears (InterfacesAdded), when it reports an RSSI
 *   (each report also goes to gw_registry_set_rssi() and gw_registry_seen()),
 *   and when it connects. An object that BlueZ already held at load counts as
 *   seen only when it has an RSSI or is connected (BlueZ keeps paired devices
 *   that are out of range).
 * - Offline (never forgotten): the object is removed, its adapter is removed,
 *   or org.bluez leaves the bus. When another adapter still holds an object
 *   for the same address, the registry device moves to that object instead.
 *   Connected=false (link loss, idle disconnect) changes nothing: the device is
 *   still there. No timer of our own judges silence: BlueZ eventually drops an
 *   unpaired device it no longer hears (its TemporaryTimeout), which takes it
 *   offline here; a paired one keeps its object and stays online, and the
 *   poller's liveness checks cover it.
 * - A device deleted through the API while BlueZ still reports it comes back
 *   at its next advertisement (RSSI) or property change.
 *
 * Nothing else of the registry is touched: reported data, labels and the
 * device's link belong to other modules.
 */

/* Creates the module on m->bluez_bus and m->registry (both required; the bus
 * is attached to m->event when it is not attached yet). Nothing is sent before
 * gw_bluez_start(). Returns 0, -EINVAL without bus or registry, -ENOMEM. */
int gw_bluez_new(struct gw_manager *m, struct gw_bluez **ret);

/* Sends StopDiscovery (without waiting for the answer: the manager flushes the
 * bus before closing it) to every adapter where discovery was started, and
 * drops every match and pending call. Registry devices keep their state.
 * NULL-safe; returns NULL. */
struct gw_bluez *gw_bluez_free(struct gw_bluez *b);

/* Installs the signal matches and asks who owns org.bluez; the rest follows
 * from the answers. Returns 0, -EALREADY when started, or -errno from sd-bus. */
int gw_bluez_start(struct gw_bluez *b);

/* For tests and /metrics. Whether org.bluez is on the bus and its objects
 * are loaded. */
bool gw_bluez_is_present(struct gw_bluez *b);
/* Adapters on which our discovery session runs (StartDiscovery answered). */
unsigned gw_bluez_discovering(struct gw_bluez *b);
/* SMP devices for which BlueZ holds an object now. */
unsigned gw_bluez_device_count(struct gw_bluez *b);
