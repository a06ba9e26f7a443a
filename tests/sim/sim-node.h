/* sim-node: a simulated device on the event loop: its transports, request queue and reboots */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "sim-config.h"
#include "sim-device.h"
#include "sim-link.h"

struct sim_node;

enum sim_node_event {
	SIM_NODE_RESET,	 /* the device went down (reset, crash, power loss) */
	SIM_NODE_BOOTED, /* it is back (or bricked: see the text) */
	SIM_NODE_LINK,	 /* a transport changed (text says which and how) */
};

/* Machine-readable events for the simulator's stdout; text is one line
 * without newline. */
typedef void (*sim_node_event_fn)(struct sim_node *n, enum sim_node_event ev, const char *text,
				  void *userdata);

/* Creates the device (which boots) and its loop state. Returns 0, -ENOMEM,
 * or an errno from the state directory. */
int sim_node_new(sd_event *e, const struct sim_config *cfg, unsigned index, const char *scratch,
		 sim_node_event_fn on_event, void *userdata, struct sim_node **ret);
/* Frees the node and its links. NULL-safe; returns NULL. */
struct sim_node *sim_node_free(struct sim_node *n);

/* The node owns the link from now on. Returns 0 or -ENOMEM. */
int sim_node_add_link(struct sim_node *n, struct sim_link *l);
struct sim_device *sim_node_device(struct sim_node *n);
bool sim_node_is_up(const struct sim_node *n);
size_t sim_node_n_links(const struct sim_node *n);
struct sim_link *sim_node_link(struct sim_node *n, size_t i);

/* A whole request from a link (after its faults). Queued in arrival order
 * up to the device's buffers; dropped while the device is down. */
void sim_node_submit(struct sim_node *n, struct sim_link *l, const uint8_t *pkt, size_t len,
		     const struct sim_peer *from);
/* The link went down: its queued requests are dropped. */
void sim_node_link_down(struct sim_node *n, struct sim_link *l);
/* Reports a transport change on stdout (SIM_NODE_LINK). */
void sim_node_link_event(struct sim_node *n, struct sim_link *l, const char *what);
/* Resets the device now, as a watchdog or the reset button would. */
void sim_node_reset(struct sim_node *n, const char *reason);
/* Writes a summary line of the node to stderr (SIGUSR1). */
void sim_node_dump(struct sim_node *n);
