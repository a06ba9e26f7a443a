/* smp-serial-link: SMP over a serial port (UART, USB CDC-ACM, pty) with console framing */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "smp-transport.h"

/* smp-protocol.md §13.1. Packets are encoded with smp-serial's line framing and
 * written when the port is writable (a 2 KiB packet takes 180 ms at 115200 baud,
 * so writes are queued, never waited for). Incoming bytes go through the
 * streaming decoder: SMP packets to on_packet, other lines (logs, shell output)
 * to the optional console callback. A packet that stops arriving half-way is
 * dropped after partial_timeout_ms of silence.
 *
 * End of the port: end of file or hang-up (USB adapter unplugged, pty peer
 * closed) reports on_state(-ENODEV), a read error on_state(-errno) (-EIO
 * typically); the port is then neither read nor written again and send()
 * answers -ENOTCONN. Open a new link when the port comes back.
 *
 * Not implemented: the raw (unframed) UART mode of very recent Zephyr and
 * MCUboot (§13.1 notes); every device is spoken to with console framing.
 *
 * Event sources on the caller's loop: IO "smp-serial", timer
 * "smp-serial-partial" (CLOCK_MONOTONIC), defer "smp-serial-state". */

#define SMP_SERIAL_LINK_DEFAULT_BAUD 115200
#define SMP_SERIAL_LINK_DEFAULT_PARTIAL_TIMEOUT_MS 1000

struct smp_serial_link_config {
	/* Line speed in baud: 1200 .. 4000000 from the standard termios set;
	 * 0 = 115200. Ignored when the descriptor is not a terminal. */
	unsigned baud;
	/* Longest line written, marker and newline included (smp_serial_encode());
	 * 0 = 127, the Zephyr and MCUboot default receive line buffer. */
	size_t max_line;
	/* Largest packet accepted from the device; 0 = any the framing can carry. */
	size_t max_packet;
	/* Silence after which a half-received packet is dropped; 0 = 1000 ms. */
	unsigned partial_timeout_ms;
	/* Non-SMP lines from the device, without "\r\n"; may hold any byte. */
	void (*on_console)(const uint8_t *line, size_t len, void *userdata);
	void *console_userdata;
	/* Optional debug hook (prio is LOG_DEBUG). */
	void (*log)(int prio, const char *msg, void *userdata);
	void *log_userdata;
};

/* Opens path (O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC) and, for a terminal,
 * sets it raw: cfmakeraw, 8N1, no flow control, CLOCAL | CREAD, the configured
 * speed, and discards stale input. cfg may be NULL; it is copied.
 * Returns 0; -EINVAL (unsupported baud, bad config); the open or termios error
 * (-ENOENT, -EACCES, -EBUSY ...); -ENOMEM. */
int smp_serial_link_new(sd_event *e, const char *path, const struct smp_serial_link_config *cfg,
			struct smp_transport **ret);
/* Same over an open descriptor used both ways (a pty, a socketpair end). It
 * is made non-blocking and configured as above only when it is a terminal. The
 * fd is taken on success (closed by free), the caller's on failure. */
int smp_serial_link_new_fd(sd_event *e, int fd, const struct smp_serial_link_config *cfg,
			   struct smp_transport **ret);

/* Bytes encoded but not yet written to the port (for tests and progress). */
size_t smp_serial_link_get_queued(struct smp_transport *t);
