/* gw-metrics: gateway counters for /metrics: SMP requests by group and result, link totals */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "daemon/gw-metrics.h"
#include "lib/macro.h"

/* Few groups are ever seen (the standard ones and a handful of user
 * groups): a sorted array beats a table. */
struct gw_metrics_group {
	uint16_t group;
	uint64_t n[_GW_METRICS_RESULT_MAX];
};

struct gw_metrics {
	struct gw_metrics_group *groups;
	size_t n_groups, cap_groups;
	struct smp_client **clients; /* followed now, unordered */
	size_t n_clients, cap_clients;
	struct smp_client_stats gone; /* totals of the clients no longer followed */
};

static const char *const gw_metrics_result_names[_GW_METRICS_RESULT_MAX] = {
	[GW_METRICS_OK] = "ok",
	[GW_METRICS_DEVICE_ERROR] = "device_error",
	[GW_METRICS_TIMEOUT] = "timeout",
	[GW_METRICS_LINK_ERROR] = "link_error",
	[GW_METRICS_CANCELED] = "canceled",
};

const char *gw_metrics_result_to_string(enum gw_metrics_result r)
{
	return r >= 0 && r < _GW_METRICS_RESULT_MAX ? gw_metrics_result_names[r] : NULL;
}

enum gw_metrics_result gw_metrics_result_of(int observer_result)
{
	switch (observer_result) {
	case 0:
		return GW_METRICS_OK;
	case -ETIMEDOUT:
		return GW_METRICS_TIMEOUT;
	case -ECANCELED:
		return GW_METRICS_CANCELED;
	default:
		return observer_result > 0 ? GW_METRICS_DEVICE_ERROR : GW_METRICS_LINK_ERROR;
	}
}

int gw_metrics_new(struct gw_metrics **ret)
{
	struct gw_metrics *mt = calloc(1, sizeof(*mt));

	if (!mt)
		return -ENOMEM;
	*ret = mt;
	return 0;
}

struct gw_metrics *gw_metrics_free(struct gw_metrics *mt)
{
	if (!mt)
		return NULL;
	for (size_t i = 0; i < mt->n_clients; i++)
		smp_client_set_observer(mt->clients[i], NULL, NULL);
	free(mt->clients);
	free(mt->groups);
	free(mt);
	return NULL;
}

/* The group's counters, inserted in order when new; NULL on OOM. */
static struct gw_metrics_group *gw_metrics_group(struct gw_metrics *mt, uint16_t group)
{
	size_t lo = 0, hi = mt->n_groups;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (mt->groups[mid].group < group)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < mt->n_groups && mt->groups[lo].group == group)
		return &mt->groups[lo];
	if (mt->n_groups == mt->cap_groups) {
		size_t cap = mt->cap_groups ? mt->cap_groups * 2 : 16;
		struct gw_metrics_group *g = reallocarray(mt->groups, cap, sizeof(*g));

		if (!g)
			return NULL;
		mt->groups = g;
		mt->cap_groups = cap;
	}
	memmove(mt->groups + lo + 1, mt->groups + lo, (mt->n_groups - lo) * sizeof(*mt->groups));
	mt->groups[lo] = (struct gw_metrics_group){ .group = group };
	mt->n_groups++;
	return &mt->groups[lo];
}

void gw_metrics_count_request(struct gw_metrics *mt, uint16_t group, int result)
{
	struct gw_metrics_group *g;

	if (!mt)
		return;
	g = gw_metrics_group(mt, group);
	/* A counter that cannot be created is a scrape short of one request. */
	if (g)
		g->n[gw_metrics_result_of(result)]++;
}

static void gw_metrics_on_request(struct smp_client *c, uint16_t group, uint8_t id, int result,
				  void *userdata)
{
	gw_metrics_count_request(userdata, group, result);
}

static ssize_t gw_metrics_find_client(struct gw_metrics *mt, struct smp_client *c)
{
	for (size_t i = 0; i < mt->n_clients; i++)
		if (mt->clients[i] == c)
			return (ssize_t)i;
	return -1;
}

int gw_metrics_add_client(struct gw_metrics *mt, struct smp_client *c)
{
	if (!mt || !c)
		return -EINVAL;
	if (gw_metrics_find_client(mt, c) >= 0)
		return 0;
	if (mt->n_clients == mt->cap_clients) {
		size_t cap = mt->cap_clients ? mt->cap_clients * 2 : 16;
		struct smp_client **v = reallocarray(mt->clients, cap, sizeof(*v));

		if (!v)
			return -ENOMEM;
		mt->clients = v;
		mt->cap_clients = cap;
	}
	mt->clients[mt->n_clients++] = c;
	smp_client_set_observer(c, gw_metrics_on_request, mt);
	return 0;
}

static void gw_metrics_add_stats(struct smp_client_stats *to, const struct smp_client_stats *s)
{
	to->requests += s->requests;
	to->responses += s->responses;
	to->timeouts += s->timeouts;
	to->retransmits += s->retransmits;
	to->stale += s->stale;
	to->bytes_sent += s->bytes_sent;
	to->bytes_received += s->bytes_received;
}

void gw_metrics_remove_client(struct gw_metrics *mt, struct smp_client *c)
{
	struct smp_client_stats st;
	ssize_t i;

	if (!mt || !c)
		return;
	i = gw_metrics_find_client(mt, c);
	if (i < 0)
		return;
	smp_client_get_stats(c, &st);
	gw_metrics_add_stats(&mt->gone, &st);
	smp_client_set_observer(c, NULL, NULL);
	mt->clients[i] = mt->clients[--mt->n_clients];
}

void gw_metrics_get_totals(struct gw_metrics *mt, struct smp_client_stats *ret)
{
	struct smp_client_stats sum = { 0 };

	if (mt) {
		sum = mt->gone;
		for (size_t i = 0; i < mt->n_clients; i++) {
			struct smp_client_stats st;

			smp_client_get_stats(mt->clients[i], &st);
			gw_metrics_add_stats(&sum, &st);
		}
	}
	*ret = sum;
}

void gw_metrics_foreach_request(struct gw_metrics *mt, gw_metrics_request_fn fn, void *userdata)
{
	if (!mt)
		return;
	for (size_t i = 0; i < mt->n_groups; i++)
		for (unsigned r = 0; r < _GW_METRICS_RESULT_MAX; r++)
			fn(mt->groups[i].group, r, mt->groups[i].n[r], userdata);
}

uint64_t gw_metrics_get_request(struct gw_metrics *mt, uint16_t group, enum gw_metrics_result result)
{
	if (!mt || result < 0 || result >= _GW_METRICS_RESULT_MAX)
		return 0;
	for (size_t i = 0; i < mt->n_groups; i++)
		if (mt->groups[i].group == group)
			return mt->groups[i].n[result];
	return 0;
}
