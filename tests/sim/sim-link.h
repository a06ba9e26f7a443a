/* sim-link: what every transport of a simulated device shares: faults, delays, bandwidth */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "sim-config.h"
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
	void (*free)(struct sim_link *l);
};

struct sim_out;

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
	uint64_t wire_free_us; /* bandwidth model: when the last response has left */
	uint64_t last_due_us;
	struct sim_out *queue; /* responses waiting for their time, by due time */
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

/* A request arrived from the client: input faults (unless the transport
 * applied them already), then the device's queue. */
void sim_link_receive(struct sim_link *l, const uint8_t *pkt, size_t len,
		      const struct sim_peer *from, bool faults_done);
/* A response for the client: output faults, latency, bandwidth, then
 * ops->transmit when its time comes. */
void sim_link_send(struct sim_link *l, const uint8_t *pkt, size_t len, const struct sim_peer *to);
/* Counts bytes the transport moved (both directions); triggers the
 * disconnect-after fault. */
void sim_link_count(struct sim_link *l, size_t n);
/* Drops responses not yet transmitted (the link or the device went away). */
void sim_link_flush(struct sim_link *l);
/* Draws from the link's generator: true when this unit should be lost or damaged. */
bool sim_link_chance(struct sim_link *l, double rate);
