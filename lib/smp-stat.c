/* smp-stat: requests and response parsers of the statistics group (2) */
#include <errno.h>
#include <stdlib.h>

#include "macro.h"
#include "smp-cbor.h"
#include "smp-groups-internal.h"
#include "smp-stat.h"

int smp_stat_show_request(const char *name, struct smp_request **ret)
{
	struct smp_request *r;
	int err;

	if (!name || !*name)
		return -EINVAL;
	err = smp_request_new(SMP_OP_READ, SMP_GROUP_STAT, SMP_STAT_SHOW, &r);
	if (err < 0)
		return err;
	smp_cbor_put_map(&r->pkt, 1);
	smp_cbor_put_text(&r->pkt, "name");
	smp_cbor_put_text(&r->pkt, name);
	return smp_request_done(r, ret);
}

struct smp_stat_group *smp_stat_group_free(struct smp_stat_group *g)
{
	if (g) {
		for (size_t i = 0; i < g->n_fields; i++)
			free(g->fields[i].name);
		free(g->fields);
		free(g->name);
		free(g);
	}
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct smp_stat_group *, smp_stat_group_free);

int smp_stat_show_parse(const struct smp_response *rsp, struct smp_stat_group **ret)
{
	_cleanup_(smp_stat_group_freep) struct smp_stat_group *g = NULL;
	const cbor_item_t *root;
	struct cbor_pair *p;
	size_t n;
	int r;

	r = smp_groups_root_map(rsp, "fields", &root, &p, &n);
	if (r < 0)
		return r;

	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	r = smp_groups_req_text(root, "name", &g->name);
	if (r < 0)
		return r;
	g->fields = smp_groups_calloc(n, sizeof(*g->fields));
	if (!g->fields)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct smp_stat_field *f = &g->fields[i];

		r = smp_cbor_item_text(p[i].key, &f->name);
		if (r < 0)
			return r;
		g->n_fields++;
		r = smp_groups_item_uint(p[i].value, UINT64_MAX, &f->value);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(g);
	return 0;
}

int smp_stat_list_request(struct smp_request **ret)
{
	return smp_request_new_empty(SMP_OP_READ, SMP_GROUP_STAT, SMP_STAT_LIST, ret);
}

struct smp_stat_list *smp_stat_list_free(struct smp_stat_list *l)
{
	if (l) {
		for (size_t i = 0; i < l->n_names; i++)
			free(l->names[i]);
		free(l->names);
		free(l);
	}
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct smp_stat_list *, smp_stat_list_free);

int smp_stat_list_parse(const struct smp_response *rsp, struct smp_stat_list **ret)
{
	_cleanup_(smp_stat_list_freep) struct smp_stat_list *l = NULL;
	cbor_item_t **items;
	size_t n;
	int r;

	r = smp_groups_root_array(rsp, "stat_list", NULL, &items, &n);
	if (r < 0)
		return r;

	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->names = smp_groups_calloc(n, sizeof(*l->names));
	if (!l->names)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		r = smp_cbor_item_text(items[i], &l->names[i]);
		if (r < 0)
			return r;
		l->n_names++;
	}
	*ret = TAKE_PTR(l);
	return 0;
}
