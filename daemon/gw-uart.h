/* gw-uart: tty discovery through sd-device and watched globs, and the SMP probe of new ports */
#pragma once

#include <stdbool.h>

struct gw_manager;
struct gw_uart;

/* Ports come from two places:
 *  - udev: the "tty" subsystem is enumerated at start and followed with a
 *    udev monitor ("add", "remove"). A port is a candidate when its name (a
 *    [serial] match glob without '/') or its device node or one of its
 *    symlinks (a glob with '/') matches, and, when [serial] usb_ids is set,
 *    its USB device has one of those vendor:product ids (and serial number
 *    glob). USB ids are read from the udev properties ID_VENDOR_ID,
 *    ID_MODEL_ID, ID_SERIAL_SHORT of the port or its USB parent, else from
 *    the parent's sysfs attributes (machines without udevd).
 *  - [serial] watch: globs of paths that udev never announces (PTYs, links).
 *    The directory of each glob is watched with inotify; a rescan every
 *    [serial] watch_interval also notices a link whose target vanished and
 *    directories that appear later. A path that appears is a candidate; a
 *    path that disappears (or whose target changes) is a removal.
 *
 * A candidate port used by a [device] section or a device registered by the
 * API is left alone. Any other is probed, without blocking the loop: opened
 * at [serial] baud, then OS echo, MCUmgr params, OS info "a" and "n", each
 * bounded by [smp] timeout. Only an SMP answer to the echo makes it a device:
 * upserted into the registry as discovered, identity "usb:<serial number>"
 * when the port has a USB serial number, else "tty:<path>"; name from the
 * node name; "params" ({"buf_size", "buf_count"}) and "info" ({"output": the
 * "a" text}) stored as reported sections, as the poller stores them; set
 * online. The probe's port is closed afterwards
 * (gw-devices opens the device on demand). A port that does not answer is
 * remembered as not SMP and not probed again until it is removed and comes
 * back. A removed port takes its device offline.
 *
 * Event sources on m->event: the udev monitor "gw-uart-udev", one inotify
 * source per watched directory "gw-uart-watch", the rescan timer
 * "gw-uart-rescan" (CLOCK_MONOTONIC), and the probes' serial links and
 * clients (see smp-serial-link.h and smp-client.h). */

enum gw_uart_port_state {
	GW_UART_PORT_NONE,       /* not known: never seen, or gone */
	GW_UART_PORT_SKIPPED,    /* no match rule accepts it, or another path of a probed port */
	GW_UART_PORT_CONFIGURED, /* used by a [device] or an API device: never probed */
	GW_UART_PORT_PROBING,
	GW_UART_PORT_SMP,        /* answered: a registry device */
	GW_UART_PORT_NOT_SMP,    /* no SMP answer, or not openable: left alone until re-plugged */
};

const char *gw_uart_port_state_to_string(enum gw_uart_port_state s);

/* Reads the [serial] rules from m->config; touches no port and adds nothing
 * to the loop yet. Returns 0, -ENOMEM. */
int gw_uart_new(struct gw_manager *m, struct gw_uart **ret);
/* Cancels running probes (devices stay as they are) and removes every event
 * source. NULL-safe; returns NULL. */
struct gw_uart *gw_uart_free(struct gw_uart *u);

/* Starts the udev monitor, enumerates the ttys, sets up the watches and
 * starts probing. m->registry must exist. A udev monitor that cannot be
 * created (no netlink in a container) or a watched directory that does not
 * exist yet is logged and does not fail the start: the rescan timer then
 * enumerates the ttys too, or watches the directory once it exists. With
 * [serial] enabled = no nothing is started and 0 returned ([serial] enabled
 * is read here only, not at reloads). Returns 0, -EALREADY, -ENXIO (no
 * registry), -ENOMEM, or an sd-event error. */
int gw_uart_start(struct gw_uart *u);

/* Applies the [serial] rules of m->config again (SIGHUP): rules and watches
 * are rebuilt, ports that were skipped are judged again, watched ports no
 * longer under any glob are removed; probed ports are kept. Returns 0,
 * -ENOMEM, or an sd-event error. */
int gw_uart_reload(struct gw_uart *u);

/* Looks at every udev tty and every watch glob now, as the rescan timer
 * does: new ports are judged, vanished ones removed. Ports remembered as not
 * SMP are not probed again. Returns 0 or -ENOMEM. */
int gw_uart_rescan(struct gw_uart *u);

/* What the module decided about a port, by device node or watched path. */
enum gw_uart_port_state gw_uart_get_port_state(struct gw_uart *u, const char *path);

/* Called after every state change of a port (for tests and metrics);
 * GW_UART_PORT_NONE when it is gone. One observer; fn NULL removes it. */
typedef void (*gw_uart_port_fn)(struct gw_uart *u, const char *path,
				enum gw_uart_port_state state, void *userdata);
void gw_uart_set_port_observer(struct gw_uart *u, gw_uart_port_fn fn, void *userdata);
