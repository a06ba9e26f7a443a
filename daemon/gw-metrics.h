/* gw-metrics: gateway counters for /metrics: SMP requests by group and result, link totals */
#pragma once

#include <stdint.h>

#include "lib/smp-client.h"

struct gw_metrics;

/* How an SMP request ended, from smp-client's observer result. */
enum gw_metrics_result {
	GW_METRICS_OK,           /* answered, status OK */
	GW_METRICS_DEVICE_ERROR, /* answered with an SMP error status */
	GW_METRICS_TIMEOUT,      /* -ETIMEDOUT (retries included) */
	GW_METRICS_LINK_ERROR,   /* any other errno: link lost or down, undecodable, too large */
	GW_METRICS_CANCELED,     /* -ECANCELED: cancelled by its caller */
	_GW_METRICS_RESULT_MAX,
};

/* "ok", "device_error", "timeout", "link_error", "canceled". */
const char *gw_metrics_result_to_string(enum gw_metrics_result r);
enum gw_metrics_result gw_metrics_result_of(int observer_result);

/* Returns 0 or -ENOMEM. */
int gw_metrics_new(struct gw_metrics **ret);
/* Forgets the clients still followed (their observers are removed).
 * NULL-safe; returns NULL. */
struct gw_metrics *gw_metrics_free(struct gw_metrics *mt);

/* Follows c: installs the client's observer (smp_client_set_observer) and
 * counts its link totals (bytes, retransmits, timeouts) at every scrape,
 * until gw_metrics_remove_client(). No reference is taken: remove the
 * client before it can go. Adding a followed client again does nothing.
 * Returns 0 or -ENOMEM. */
int gw_metrics_add_client(struct gw_metrics *mt, struct smp_client *c);
/* Stops following c: its totals so far are added to those of the clients
 * gone, and its observer is removed. Unknown clients are ignored. */
void gw_metrics_remove_client(struct gw_metrics *mt, struct smp_client *c);

/* Counts one request's end (what the observer does). group is the SMP group,
 * result as smp_client_observer_fn has it. */
void gw_metrics_count_request(struct gw_metrics *mt, uint16_t group, int result);

/* Link totals of every client the daemon ever had: those gone plus those
 * followed now. Only these fields are summed: requests, responses,
 * timeouts, retransmits, stale, bytes_sent, bytes_received. */
void gw_metrics_get_totals(struct gw_metrics *mt, struct smp_client_stats *ret);

/* Request counts by group (ascending) and result, for each group seen;
 * results of a group are all given, zeros included. */
typedef void (*gw_metrics_request_fn)(uint16_t group, enum gw_metrics_result result, uint64_t n,
				      void *userdata);
void gw_metrics_foreach_request(struct gw_metrics *mt, gw_metrics_request_fn fn, void *userdata);
/* The count of one group and result (0 when never seen), for tests. */
uint64_t gw_metrics_get_request(struct gw_metrics *mt, uint16_t group, enum gw_metrics_result result);
