/* api-device-cache: the per-device item cache of the polled routes (see the header) */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "api/api-device-cache.h"
#include "daemon/gw-manager.h"
#include "lib/macro.h"

struct api_device_cache {
	struct gw_manager *m;
	const struct api_device_cache_ops *ops;
	struct gw_registry *registry; /* listened to from the first sync on */
	unsigned char *items;         /* n items of ops->item_size, in id order, as the registry */
	size_t n;
	bool resync;                  /* devices came or went since items was built */
	struct smp_buf body;
};

static struct api_device_cache_item *api_device_cache_at(unsigned char *items, size_t size,
							  size_t i)
{
	return (struct api_device_cache_item *)(items + i * size);
}

static void api_device_cache_item_clear(struct api_device_cache *c,
					struct api_device_cache_item *it)
{
	c->ops->clear(it);
	free(it->id);
	memset(it, 0, c->ops->item_size);
}

static struct api_device_cache_item *api_device_cache_find(struct api_device_cache *c,
							    struct gw_device *d)
{
	size_t lo = 0, hi = c->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct api_device_cache_item *it =
			api_device_cache_at(c->items, c->ops->item_size, mid);
		int k = strcmp(it->id, d->id);

		if (k == 0)
			return it->d == d ? it : NULL;
		if (k < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void api_device_cache_on_registry(struct gw_registry *r, enum gw_registry_event ev,
					 struct gw_device *d, const char *section,
					 void *userdata)
{
	struct api_device_cache *c = userdata;
	struct api_device_cache_item *it;

	if (ev == GW_REGISTRY_ADDED) {
		c->resync = true;
		return;
	}
	it = api_device_cache_find(c, d);
	if (!it)
		return;
	if (ev == GW_REGISTRY_REMOVED) {
		/* Keeps the id (the array stays sorted) but never the device:
		 * one registered again under that id is another. */
		it->d = NULL;
		c->resync = true;
	}
	c->ops->changed(it, ev, section);
}

static void api_device_cache_drop(struct api_device_cache *c)
{
	for (size_t i = 0; i < c->n; i++)
		api_device_cache_item_clear(c, api_device_cache_at(c->items, c->ops->item_size, i));
	free(c->items);
	c->items = NULL;
	c->n = 0;
}

/* Rebuilds the items in the registry's order, keeping those of every
 * device still there. Returns 0, or -ENOMEM with the cache emptied. */
static int api_device_cache_resync(struct api_device_cache *c)
{
	size_t size = c->ops->item_size, n = gw_registry_count(c->registry), k = 0, old = 0;
	unsigned char *items = calloc(MAX(n, (size_t)1), size);
	struct gw_device *d;

	if (!items)
		goto oom;
	for (d = gw_registry_next(c->registry, NULL); d && k < n;
	     d = gw_registry_next(c->registry, d->id)) {
		struct api_device_cache_item *it = api_device_cache_at(items, size, k++), *o;

		/* Both in id order: what is below d is gone. */
		while (old < c->n && strcmp(api_device_cache_at(c->items, size, old)->id, d->id) < 0)
			old++;
		o = old < c->n ? api_device_cache_at(c->items, size, old) : NULL;
		if (o && o->d == d) {
			memcpy(it, o, size);
			memset(o, 0, size);
			old++;
			continue;
		}
		it->d = d;
		it->id = strdup(d->id);
		if (!it->id)
			goto oom;
	}
	api_device_cache_drop(c);
	c->items = items;
	c->n = k;
	c->resync = false;
	return 0;
oom:
	for (size_t i = 0; i < k; i++)
		api_device_cache_item_clear(c, api_device_cache_at(items, size, i));
	free(items);
	api_device_cache_drop(c);
	return -ENOMEM;
}

int api_device_cache_sync(struct api_device_cache *c)
{
	struct gw_manager *m = c->m;
	int r;

	if (!c->registry) {
		if (!m->registry)
			return 0;
		r = gw_registry_add_listener(m->registry, api_device_cache_on_registry, c);
		if (r < 0)
			return r;
		c->registry = m->registry;
		c->resync = true;
	}
	if (c->registry != m->registry)
		return 0;
	if (c->resync) {
		r = api_device_cache_resync(c);
		if (r < 0)
			return r;
	}
	return 1;
}

size_t api_device_cache_count(const struct api_device_cache *c)
{
	return c->n;
}

struct api_device_cache_item *api_device_cache_item(struct api_device_cache *c, size_t i)
{
	return api_device_cache_at(c->items, c->ops->item_size, i);
}

struct gw_manager *api_device_cache_manager(const struct api_device_cache *c)
{
	return c->m;
}

struct smp_buf *api_device_cache_body(struct api_device_cache *c)
{
	return &c->body;
}

static void api_device_cache_destroy(void *userdata)
{
	struct api_device_cache *c = userdata;

	/* The manager frees its registry before its loop: only a registry
	 * still in place is listened to by us. */
	if (c->registry && c->m->registry == c->registry)
		gw_registry_remove_listener(c->registry, api_device_cache_on_registry, c);
	api_device_cache_drop(c);
	smp_buf_clear(&c->body);
	free(c);
}

static int api_device_cache_never(sd_event_source *s, void *userdata)
{
	return 0;
}

int api_device_cache_new(struct gw_manager *m, const struct api_device_cache_ops *ops,
			 struct api_device_cache **ret)
{
	_cleanup_(sd_event_source_unrefp) sd_event_source *s = NULL;
	struct api_device_cache *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->m = m;
	c->ops = ops;
	r = sd_event_add_defer(m->event, &s, api_device_cache_never, c);
	if (r < 0) {
		free(c);
		return r;
	}
	/* From here on the source frees c, whatever fails. */
	r = sd_event_source_set_destroy_callback(s, api_device_cache_destroy);
	if (r < 0) {
		free(c);
		return r;
	}
	r = sd_event_source_set_enabled(s, SD_EVENT_OFF);
	if (r >= 0)
		r = sd_event_source_set_description(s, ops->name);
	if (r >= 0)
		r = sd_event_source_set_floating(s, true);
	if (r < 0)
		return r;
	*ret = c;
	return 0;
}
