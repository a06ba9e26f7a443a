/* gw-manager: the object that owns smpgwd's event loop and every module on it */
#pragma once

#include <stdbool.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "daemon/gw-config.h"

struct db;
struct gw_registry;
struct gw_devices;
struct gw_bluez;
struct gw_uart;
struct gw_poller;

/* One per process. Modules receive the manager and reach their siblings
 * through it; nothing else is global (except logging, see gw-log.h). Every
 * pointer may be NULL while the module is disabled or not started. */
struct gw_manager {
	sd_event *event;
	sd_bus *bluez_bus;          /* the bus BlueZ lives on ([ble] bus) */
	struct gw_config config;
	char *config_path;
	struct db *db;
	struct gw_registry *registry; /* every known device, persisted */
	struct gw_devices *devices;   /* live per-device clients, BLE budget */
	struct gw_bluez *bluez;       /* BLE discovery */
	struct gw_uart *uart;         /* tty discovery and probing */
	struct gw_poller *poller;     /* background refresh of what dashboards read */
	bool stopping;
};

/* Milliseconds since the epoch (CLOCK_REALTIME), as stored in the database. */
uint64_t gw_now_ms(void);
