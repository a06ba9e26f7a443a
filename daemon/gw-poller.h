/* gw-poller: background refresh of what dashboards read: image state, stats, params, liveness */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct gw_manager;
struct gw_device;
struct gw_poller;

/*
 * Schedule. Every registry device has a due time in one heap with one timer
 * ("gw-poller-timer", CLOCK_MONOTONIC): no per-device timers. A device is
 * first due at a random point within [poll] jitter percent of [poll]
 * interval (so a thousand devices found at start do not all go at once),
 * then [poll] interval plus or minus jitter percent after the end of its
 * previous round. At most GW_POLLER_MAX_IN_FLIGHT rounds run at once; a
 * device never has two. A device that comes online (GW_REGISTRY_ONLINE:
 * it appeared, or came back after a reset) is polled at once; a round in
 * flight then becomes a full one. [poll] interval 0 turns the schedule and
 * the polls on ONLINE off; gw_poller_poll_now() still works.
 *
 * Skipped rounds (counted, retried after an interval): a device held by
 * gw_devices_hold() (an upload) unless [poll] during_upload; an offline BLE
 * device (discovery brings it back); a BLE device without a link when the
 * budget has neither a free nor an idle link to give (GW_DEVICES_BACKGROUND:
 * polls never queue ahead of interactive work or keep every device
 * connected).
 *
 * A round (all through gw_devices_call_flags(), interactive priority, so a
 * poll during an upload passes its chunks; a UDP socket the round had to
 * open is closed at its end unless someone else uses it, so polling holds
 * no descriptors between rounds):
 *   1. image state (read); its answer, any answer, is the liveness check;
 *   2. stat list, then stat show of each group;
 *   3. full rounds only (a device's first round, after it came online, on
 *      gw_poller_poll_now(), when "params" or "info" was never reported,
 *      or when step 1 shows other running firmware than the last params
 *      were read from: gw-devices starts clients with them): MCUmgr params
 *      and OS info "a".
 * Offline UDP and serial devices are probed the same way (GW_DEVICES_PROBE).
 * A device that answers comes online; one whose first request gets no
 * answer (-ETIMEDOUT after the client's retries, a refused UDP port, a link
 * that fails or cannot be opened) goes offline. A later request that fails
 * ends the round; what was read is kept. A section the device refuses (an
 * SMP error: group not supported) keeps its previous value.
 *
 * Shutdown (m->stopping): no round starts; a round in flight ends once the
 * request it waits for is answered (what was read is kept). The poller's
 * stop hook counts those rounds, not probes of offline devices, which
 * would wait for every retransmission with nothing to keep.
 *
 * Reported sections (gw_registry_set_reported(), which stamps the time):
 *   "image_state": {"images": [{"image": 0, "slot": 0, "version": "1.0.0",
 *                   "hash": "<64 lower-case hex digits>", "bootable": true,
 *                   "pending": false, "confirmed": true, "active": true,
 *                   "permanent": false}, ...], "split_status": 0}
 *                  in the device's order; "hash" only when the device sent
 *                  one, "split_status" only when the device sent it.
 *   "stats":       {"<group>": {"<field>": 123, ...}, ...} for the groups
 *                  that answered, written once the whole list was read.
 *   "params":      {"buf_size": 2048, "buf_count": 4}
 *   "info":        {"output": "<OS info with format a>"}
 */

#define GW_POLLER_MAX_IN_FLIGHT 32

/* Loads every registry device and follows the registry. m->registry and
 * m->devices are required (-EINVAL). Returns 0, -ENOMEM, or an sd-event
 * error. */
int gw_poller_new(struct gw_manager *m, struct gw_poller **ret);
/* Takes [poll] interval and jitter from m->config again (SIGHUP): see
 * gw-poller.c for how waiting devices are rescheduled. */
void gw_poller_reload(struct gw_poller *p);
/* Cancels the rounds in flight (before m->devices is freed). NULL-safe;
 * returns NULL. */
struct gw_poller *gw_poller_free(struct gw_poller *p);

/* Makes the device due now for a full round (subject to the bound on rounds
 * in flight and the skip rules above). Returns 0, -ENOENT for a device the
 * poller does not know, -EBUSY when a round of it is in flight. */
int gw_poller_poll_now(struct gw_poller *p, struct gw_device *d);

struct gw_poller_stats {
	uint64_t rounds;        /* started */
	uint64_t answered;      /* the device answered the first request */
	uint64_t failed;        /* no answer, or no link */
	uint64_t skipped;       /* held, offline BLE, or no room in the BLE budget */
	unsigned in_flight;
	unsigned max_in_flight; /* the most rounds in flight at once so far */
};
void gw_poller_get_stats(struct gw_poller *p, struct gw_poller_stats *ret);

struct gw_poller_device_stats {
	uint64_t rounds;
	uint64_t answered;
	uint64_t failed;
	uint64_t skipped;
	uint64_t last_start_ms;  /* CLOCK_REALTIME as gw_now_ms(); 0 = never */
	uint64_t last_end_ms;
	uint64_t last_answer_ms; /* end of the last round the device answered */
	int last_error;          /* of the last round: 0, or why it failed or was skipped */
	bool in_flight;
};
/* Returns 0, -ENOENT for a device the poller does not know. */
int gw_poller_get_device_stats(struct gw_poller *p, struct gw_device *d,
			       struct gw_poller_device_stats *ret);
