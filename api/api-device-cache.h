/* api-device-cache: per-device text kept by the routes dashboards poll, in id order, following the registry */
#pragma once

#include <stddef.h>

#include "daemon/gw-registry.h"
#include "lib/smp-buf.h"

struct gw_manager;
struct api_device_cache;

/*
 * The device list and /metrics serialise up to every device per request;
 * doing that from the registry's JSON each time was most of their cost. A
 * cache keeps one item per device, in the registry's id order, and the
 * route makes an item's text again only when the registry announces a
 * change of what it shows. The loop owns the cache (a floating, never
 * enabled source whose destroy callback frees it), since nothing else in
 * api/ lives as long as the routes do.
 */

/* Every item begins with this; the rest of ops->item_size is the route's. */
struct api_device_cache_item {
	char *id;            /* a copy: the device may be gone before the next resync */
	struct gw_device *d; /* NULL once removed */
};

struct api_device_cache_ops {
	const char *name;  /* the owning source's description */
	size_t item_size;  /* of the route's item, which begins with struct api_device_cache_item */
	/* The registry announced a change of the item's device (never ADDED;
	 * on REMOVED it->d is already NULL): drop the text that no longer holds. */
	void (*changed)(struct api_device_cache_item *it, enum gw_registry_event ev,
			const char *section);
	/* Frees the route's part of an item (the cache frees id). */
	void (*clear)(struct api_device_cache_item *it);
};

/* Creates the cache on m's loop (m->event required). Returns 0 or -errno. */
int api_device_cache_new(struct gw_manager *m, const struct api_device_cache_ops *ops,
			 struct api_device_cache **ret);

/* Follows the manager's registry from the first call on, and brings the
 * items in line with its devices. Returns 1 when the items may serve, 0
 * when they may not (no registry, or not the one listened to: the caller
 * walks the registry itself), -ENOMEM (the items are emptied). */
int api_device_cache_sync(struct api_device_cache *c);

size_t api_device_cache_count(const struct api_device_cache *c);
/* Item i (< count) of the last sync, in id order. */
struct api_device_cache_item *api_device_cache_item(struct api_device_cache *c, size_t i);
struct gw_manager *api_device_cache_manager(const struct api_device_cache *c);
/* The reply's bytes, kept with their allocation from one request to the
 * next (api_reply_bytes() copies them): a body of this size freed and
 * allocated again costs page faults each time. */
struct smp_buf *api_device_cache_body(struct api_device_cache *c);
