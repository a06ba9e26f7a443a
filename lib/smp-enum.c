/* smp-enum: requests and response parsers of the enumeration group (10) */
#include <errno.h>
#include <stdlib.h>

#include "macro.h"
#include "smp-cbor.h"
#include "smp-enum.h"
#include "smp-groups-internal.h"

int smp_enum_count_request(struct smp_request **ret)
{
	return smp_request_new_empty(SMP_OP_READ, SMP_GROUP_ENUM, SMP_ENUM_COUNT, ret);
}

int smp_enum_count_parse(const struct smp_response *rsp, uint32_t *ret)
{
	const cbor_item_t *root;
	uint64_t v;
	int r;

	r = smp_groups_root(rsp, &root);
	if (r < 0)
		return r;
	r = smp_groups_req_uint(root, "count", UINT32_MAX, &v);
	if (r < 0)
		return r;
	*ret = (uint32_t)v;
	return 0;
}

int smp_enum_list_request(struct smp_request **ret)
{
	return smp_request_new_empty(SMP_OP_READ, SMP_GROUP_ENUM, SMP_ENUM_LIST, ret);
}

struct smp_enum_list *smp_enum_list_free(struct smp_enum_list *l)
{
	if (l) {
		free(l->groups);
		free(l);
	}
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct smp_enum_list *, smp_enum_list_free);

int smp_enum_list_parse(const struct smp_response *rsp, struct smp_enum_list **ret)
{
	_cleanup_(smp_enum_list_freep) struct smp_enum_list *l = NULL;
	cbor_item_t **items;
	size_t n;
	int r;

	r = smp_groups_root_array(rsp, "groups", NULL, &items, &n);
	if (r < 0)
		return r;

	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->groups = smp_groups_calloc(n, sizeof(*l->groups));
	if (!l->groups)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		uint64_t v;

		r = smp_groups_item_uint(items[i], UINT16_MAX, &v);
		if (r < 0)
			return r;
		l->groups[i] = (uint16_t)v;
	}
	l->n_groups = n;
	*ret = TAKE_PTR(l);
	return 0;
}

int smp_enum_single_request(uint32_t index, struct smp_request **ret)
{
	struct smp_request *r;
	int err;

	err = smp_request_new(SMP_OP_READ, SMP_GROUP_ENUM, SMP_ENUM_SINGLE, &r);
	if (err < 0)
		return err;
	smp_cbor_put_map(&r->pkt, 1);
	smp_cbor_put_text(&r->pkt, "index");
	smp_cbor_put_uint(&r->pkt, index);
	return smp_request_done(r, ret);
}

int smp_enum_single_parse(const struct smp_response *rsp, struct smp_enum_single *ret)
{
	const cbor_item_t *root;
	bool end = false;
	uint64_t v;
	int r;

	r = smp_groups_root(rsp, &root);
	if (r < 0)
		return r;
	r = smp_groups_req_uint(root, "group", UINT16_MAX, &v);
	if (r < 0)
		return r;
	r = smp_groups_opt_bool(root, "end", &end);
	if (r < 0)
		return r;
	*ret = (struct smp_enum_single){ .group = (uint16_t)v, .end = end };
	return 0;
}

int smp_enum_details_request(const uint16_t *groups, size_t n_groups, struct smp_request **ret)
{
	struct smp_request *r;
	int err;

	if (n_groups > 0 && !groups)
		return -EINVAL;
	if (n_groups == 0)
		return smp_request_new_empty(SMP_OP_READ, SMP_GROUP_ENUM, SMP_ENUM_DETAILS, ret);
	err = smp_request_new(SMP_OP_READ, SMP_GROUP_ENUM, SMP_ENUM_DETAILS, &r);
	if (err < 0)
		return err;
	smp_cbor_put_map(&r->pkt, 1);
	smp_cbor_put_text(&r->pkt, "groups");
	smp_cbor_put_array(&r->pkt, n_groups);
	for (size_t i = 0; i < n_groups; i++)
		smp_cbor_put_uint(&r->pkt, groups[i]);
	return smp_request_done(r, ret);
}

struct smp_enum_details *smp_enum_details_free(struct smp_enum_details *d)
{
	if (d) {
		for (size_t i = 0; i < d->n_groups; i++)
			free(d->groups[i].name);
		free(d->groups);
		free(d);
	}
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct smp_enum_details *, smp_enum_details_free);

static int group_details_parse(const cbor_item_t *m, struct smp_enum_group_details *g)
{
	uint64_t v;
	int r;

	if (!cbor_isa_map(m))
		return -EBADMSG;
	r = smp_groups_req_uint(m, "group", UINT16_MAX, &v);
	if (r < 0)
		return r;
	g->group = (uint16_t)v;
	r = smp_groups_opt_text(m, "name", &g->name);
	if (r < 0)
		return r;
	r = smp_groups_opt_uint(m, "handlers", UINT32_MAX, &v);
	if (r < 0)
		return r;
	g->has_handlers = r > 0;
	g->handlers = r > 0 ? (uint32_t)v : 0;
	return 0;
}

int smp_enum_details_parse(const struct smp_response *rsp, struct smp_enum_details **ret)
{
	_cleanup_(smp_enum_details_freep) struct smp_enum_details *d = NULL;
	cbor_item_t **items;
	size_t n;
	int r;

	r = smp_groups_root_array(rsp, "groups", NULL, &items, &n);
	if (r < 0)
		return r;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->groups = smp_groups_calloc(n, sizeof(*d->groups));
	if (!d->groups)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		d->n_groups++;
		r = group_details_parse(items[i], &d->groups[i]);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(d);
	return 0;
}
