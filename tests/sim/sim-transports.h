/* sim-transports: the ways a simulated device is reached: UDP, a serial PTY, fake BlueZ */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "sim-link.h"
#include "sim-node.h"

/* UDP: one socket bound to host:port (port 0 = any free port). Datagrams
 * longer than mtu are truncated as the device's receive buffer does.
 * Returns 0 and a link (added to the node by the caller), or a negative errno. */
int sim_udp_new(struct sim_node *n, sd_event *e, const struct sim_faults *faults, uint64_t seed,
		const char *host, uint16_t port, size_t mtu, struct sim_link **ret);

struct sim_serial_params {
	const char *link_path;	  /* symlink to the PTY, or NULL */
	uint32_t baud;		  /* 8N1 emulation; 0 = as fast as the PTY goes */
	size_t line_max;	  /* longest input line the device accepts, newline included */
	bool console_log;	  /* Zephyr-style log lines between SMP frames */
	bool interleave;	  /* ... and between the lines of one frame */
	uint32_t log_interval_ms; /* a heartbeat log line this often (with console_log) */
};

/* Serial: a pseudo-terminal speaking the console framing of smp-protocol.md
 * §13.1 with Zephyr's line splitting. */
int sim_serial_new(struct sim_node *n, sd_event *e, const struct sim_faults *faults, uint64_t seed,
		   const struct sim_serial_params *p, struct sim_link **ret);

struct sim_bluez;
struct sim_ble_params {
	uint16_t att_mtu;
	bool reassembly;
	uint32_t conn_interval_us;
	unsigned packets_per_event;
};

/* BLE: a Device1 with the SMP characteristic on the fake BlueZ. */
int sim_ble_new(struct sim_node *n, sd_event *e, const struct sim_faults *faults, uint64_t seed,
		struct sim_bluez *bluez, const struct sim_ble_params *p, struct sim_link **ret);

/* Appends the lines that carry one SMP packet, split the way Zephyr's
 * mcumgr_serial_tx_pkt() splits them (its first line holds 93 raw bytes,
 * the following ones 90, and the CRC never straddles two lines). Exposed for
 * the tests. Returns 0 or the buffer's error. */
int sim_serial_frame(const uint8_t *pkt, size_t len, struct smp_buf *out);
