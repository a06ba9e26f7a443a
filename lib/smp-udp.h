/* smp-udp: SMP over UDP, one connected socket per device, one datagram per packet */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "smp-transport.h"

/* smp-protocol.md §13.3. The socket is connected to the device, so the kernel
 * drops datagrams from any other sender, and bound to an ephemeral port; the
 * device answers to that port. Datagrams shorter than the SMP header, whose
 * header announces another length, or truncated (larger than 64 KiB) are
 * dropped. An ICMP port unreachable shows up as on_state(-ECONNREFUSED); the
 * socket stays usable and the first datagram from the device afterwards
 * reports on_state(0). Nothing else reports state: UDP has no link.
 *
 * Event sources on the caller's loop: one IO source "smp-udp" and one defer
 * source "smp-udp-state" for error reports found while sending. */

#define SMP_UDP_DEFAULT_PORT 1337
/* Largest payload of an unfragmented datagram on Ethernet (1500 - 20 - 8). */
#define SMP_UDP_DATAGRAM_MAX_IPV4 1472
/* IPv6 minimum link MTU 1280 - 40 - 8: no fragmentation on any path. */
#define SMP_UDP_DATAGRAM_MAX_IPV6 1232

struct smp_udp_config {
	/* Largest datagram sent; also the device's CONFIG_MCUMGR_TRANSPORT_UDP_MTU if
	 * that is smaller. 0 = 1472 (IPv4) or 1232 (IPv6). At most 65507. */
	size_t datagram_max;
	/* Optional debug hook (prio is LOG_DEBUG); never called with the loop blocked. */
	void (*log)(int prio, const char *msg, void *userdata);
	void *log_userdata;
};

/* host: an IPv4 or IPv6 literal (tried first, AI_NUMERICHOST) or a name, which is
 * resolved synchronously with getaddrinfo (the daemon passes literals). port: the
 * device's port (SMP_UDP_DEFAULT_PORT). cfg may be NULL; it is copied.
 * Returns 0; -EINVAL (bad arguments or datagram_max), -EADDRNOTAVAIL (name did
 * not resolve), -ENOMEM, or the socket's negative errno. */
int smp_udp_new(sd_event *e, const char *host, uint16_t port, const struct smp_udp_config *cfg,
		struct smp_transport **ret);
/* Same with an address already resolved (AF_INET or AF_INET6, port included). */
int smp_udp_new_sockaddr(sd_event *e, const struct sockaddr *sa, socklen_t salen,
			 const struct smp_udp_config *cfg, struct smp_transport **ret);

/* The local port the socket is bound to (for logs and tests); 0 on error. */
uint16_t smp_udp_get_local_port(struct smp_transport *t);
