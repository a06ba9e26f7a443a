/* sim-link: what every transport of a simulated device shares: faults, delays, bandwidth */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "sim-config.h"
#include "sim-pace.h"
#include "sim-util.h"

struct sim_node;
struct sim_link;

/* Where a response goes: the source of the request (UDP); unused otherwise. */
struct sim_peer {
	struct sockaddr_storage sa;
	socklen_t len;
};

struct sim_link_ops {
	const char *kind; /* "udp", "serial", "ble" */
	/* Puts one response packet on the wire now (faults and delays are done). */
	void (*transmit)(struct sim_link *l, const uint8_t *pkt, size_t len,
			 const struct sim_peer *to, bool corrupt);
	/* The device resets (down) or has booted again (up). May be NULL. */
	void (*device_down)(struct sim_link *l);
	void (*device_up)(struct sim_link *l);
	/* The disconnect-after fault: drop the link now; reconnect later. May be NULL. */
	void (*hang_up)(struct sim_link *l);
	void (*reconnect)(struct sim_link *l);
	/* A console log line from the device (serial only). May be NULL. */
	void (*console)(struct sim_link *l, const char *line);
	/* How long the device's worker stays busy sending a response of len
	 * bytes that it hands over now, buffers held: Zephyr's UART transport
	 * writes with uart_poll_out() from the worker, so the answer's wire
	 * time is part of the request. NULL (UDP: zsock_sendto() copies the
	 * datagram, BLE) means 0. */
	uint64_t (*tx_hold_us)(struct sim_link *l, size_t len);
	void (*free)(struct sim_link *l);
};

struct sim_out;
struct sim_in;

/* Embedded as the first member of every transport. */
struct sim_link {
	const struct sim_link_ops *ops;
	struct sim_node *node;
	sd_event *event;
	const struct sim_faults *faults;
	struct sim_rng rng;
	char *where; /* "127.0.0.1:1337", "/dev/pts/4", a D-Bus path */
	/* Streams (serial, BLE) keep responses in order; datagrams need not. */
	bool ordered;
	/* The transport corrupts its own encoding (serial: the base64 text). */
	bool corrupts_encoding;
	bool down;	       /* hung up by the disconnect fault */
	uint64_t bytes;	       /* carried since the last hang-up */
	/* --bandwidth, packet by packet, each way (sim-pace.h). */
	struct sim_pace out_pace;
	struct sim_pace in_pace;
	uint64_t last_due_us;
	struct sim_out *queue; /* responses waiting for their time, by due time */
	/* Requests on the paced wire to the device, oldest first. */
	struct sim_in *in_head;
	struct sim_in *in_tail;
	size_t in_len;
	uint64_t in_dropped; /* tail drops: more than SIM_LINK_IN_MAX on the wire */
	sd_event_source *in_timer;
	struct sim_out *held;  /* reorder fault: sent right after the next response */
	sd_event_source *out_timer;
	sd_event_source *held_timer;
	sd_event_source *reconnect_timer;
};

/* Sets up the common part; where is copied. Returns 0 or -ENOMEM. */
int sim_link_init(struct sim_link *l, const struct sim_link_ops *ops, struct sim_node *node,
		  sd_event *e, const struct sim_faults *faults, uint64_t seed, const char *where);
/* Releases the common part (queued responses, timers). */
void sim_link_done(struct sim_link *l);
/* Calls ops->free. NULL-safe; returns NULL. */
struct sim_link *sim_link_free(struct sim_link *l);
int sim_link_set_where(struct sim_link *l, const char *where);

/* Requests a paced link holds on its way to the device, like a router's
 * queue in front of a slow link; more are dropped at the tail. */
#define SIM_LINK_IN_MAX 1024

/* A request arrived from the client: input faults (unless the transport
 * applied them already), --bandwidth (the request reaches the device once
 * its last byte has passed, behind the earlier ones), then the device's
 * queue. */
void sim_link_receive(struct sim_link *l, const uint8_t *pkt, size_t len,
		      const struct sim_peer *from, bool faults_done);
/* A response for the client that the device finished at `at` (CLOCK_MONOTONIC
 * µs, not later than now; later values count as now): output faults,
 * --bandwidth (behind the earlier responses) from `at`, then --latency and
 * --jitter (the whole round trip's delay is added here, after the response
 * has passed the paced wire), then ops->transmit when its time comes. */
void sim_link_send(struct sim_link *l, const uint8_t *pkt, size_t len, const struct sim_peer *to,
		   uint64_t at);
/* Counts bytes the transport moved (both directions); triggers the
 * disconnect-after fault. */
void sim_link_count(struct sim_link *l, size_t n);
/* Drops responses not yet transmitted and requests still on the paced wire
 * (the link or the device went away). */
void sim_link_flush(struct sim_link *l);
/* Draws from the link's generator: true when this unit should be lost or damaged. */
bool sim_link_chance(struct sim_link *l, double rate);
