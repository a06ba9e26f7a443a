/* gw-static: the devices of the configuration, and those the API registers at run time */
#pragma once

#include <sys/socket.h>

struct gw_manager;
struct gw_device;
struct gw_device_spec;

/* Identities: "udp:<address>" with the address in the canonical form below,
 * "tty:<path>" with the path as written (no symlink resolved: a
 * /dev/serial/by-id/ link is a better identity than the ttyACM it leads to). */

/* Parses a UDP device address: "IPv4:port" or "[IPv6]:port", literals only
 * (names would be resolved synchronously, blocking the loop), port 1..65535.
 * ret_canonical (may be NULL) receives the canonical text ("[::1]:1337"),
 * free()d by the caller; ret_sa/ret_len (may be NULL) the socket address.
 * Returns 0, -EINVAL, -ENOMEM. */
int gw_static_parse_udp(const char *address, char **ret_canonical,
			struct sockaddr_storage *ret_sa, socklen_t *ret_len);

/* Upserts every [device NAME] of m->config into m->registry with source
 * config (its name, its labels, both pinned; baud for serial), then removes
 * the registry devices of source config that the configuration no longer
 * lists. Called at start and after m->config was reloaded (SIGHUP).
 * A section with an unusable address (UDP that does not parse, a relative
 * serial path) or the identity of an earlier section is logged and left
 * out; a serial port need not exist yet. Returns the number of devices the
 * configuration provides, or -ENXIO (no registry), -ENOMEM, a database
 * error (the remaining sections are still tried). */
int gw_static_reload(struct gw_manager *m);

/* Registers a UDP or serial device for the API. spec->transport and
 * spec->address are required; spec->identity NULL derives it from them (see
 * above); name and labels as gw_registry_upsert() takes them; spec->source
 * is ignored (always API). A discovered device with the same identity is
 * taken over. *ret (may be NULL) is the device, borrowed from the registry.
 * Returns 0; -EINVAL (BLE, an address that does not parse, baud on UDP, bad
 * name or labels), -ENOENT (the serial path does not exist), -ENOTTY (it is
 * not a terminal), -EEXIST (the configuration or the API registered that
 * identity already), -ENXIO (no registry), -ENOMEM, a database error. */
int gw_static_register(struct gw_manager *m, const struct gw_device_spec *spec,
		       struct gw_device **ret);

/* Forgets a device registered by the API or discovered (it comes back when
 * found again). Returns 0; -EPERM for a device of the configuration (edit
 * the file and reload); -ENXIO (no registry), -EINVAL, a database error. */
int gw_static_unregister(struct gw_manager *m, struct gw_device *d);
