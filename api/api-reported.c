/* api-reported: handlers storing what a fresh device read says as a reported section */
#include <stdlib.h>
#include <string.h>

#include "api/api-reported.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"

struct api_reported {
	struct gw_manager *m;
	char device_id[];
};

struct api_reported *api_reported_new(struct gw_manager *m, struct gw_device *d)
{
	size_t n = strlen(d->id) + 1;
	struct api_reported *st = malloc(sizeof(*st) + n);

	if (!st)
		return NULL;
	st->m = m;
	memcpy(st->device_id, d->id, n);
	return st;
}

void api_reported_free(void *st)
{
	free(st);
}

void api_reported_store(struct api_reported *st, const char *section, json_t *value)
{
	struct gw_device *d;

	if (!st || !value)
		return;
	d = gw_registry_find(st->m->registry, st->device_id);
	/* A failure costs only the cache's freshness. */
	if (d)
		(void)gw_registry_set_reported(st->m->registry, d, section, json_deep_copy(value));
}
