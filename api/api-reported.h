/* api-reported: handlers storing what a fresh device read says as a reported section */
#pragma once

#include <jansson.h>

struct gw_manager;
struct gw_device;
struct api_reported;

/* A read made through the API (OS info "a", params, image state after test
 * or confirm, every stat group) writes the same section the poller writes
 * (gw-poller.h), so the cache never lags what a client was just shown. The
 * handle keeps the device's id, not the device: the device may be removed
 * before the answer comes. */

/* Returns the handle, or NULL when out of memory (storing is then skipped:
 * the cache is only less fresh). */
struct api_reported *api_reported_new(struct gw_manager *m, struct gw_device *d);
/* NULL-safe; void * so that it serves as a destroy callback. */
void api_reported_free(void *st);
/* Stores a copy of value (borrowed) under section, stamped now; does nothing
 * for a NULL handle or a device that is gone. */
void api_reported_store(struct api_reported *st, const char *section, json_t *value);
