/* smp-request: an SMP request being built: the header's fields and the encoded packet */
#include <errno.h>
#include <stdlib.h>

#include "smp-cbor.h"
#include "smp-request.h"

int smp_request_new(uint8_t op, uint16_t group, uint8_t id, struct smp_request **ret)
{
	struct smp_request *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->op = op;
	r->group = group;
	r->id = id;
	r->pkt.limit = SMP_PACKET_MAX;
	if (!smp_buf_reserve(&r->pkt, SMP_HEADER_SIZE)) {
		free(r);
		return -ENOMEM;
	}
	r->pkt.len = SMP_HEADER_SIZE;
	*ret = r;
	return 0;
}

struct smp_request *smp_request_free(struct smp_request *r)
{
	if (r) {
		smp_buf_clear(&r->pkt);
		free(r);
	}
	return NULL;
}

int smp_request_done(struct smp_request *r, struct smp_request **ret)
{
	int err = smp_buf_error(&r->pkt);

	if (err < 0) {
		smp_request_free(r);
		return err;
	}
	*ret = r;
	return 0;
}

int smp_request_new_empty(uint8_t op, uint16_t group, uint8_t id, struct smp_request **ret)
{
	struct smp_request *r;
	int err = smp_request_new(op, group, id, &r);

	if (err < 0)
		return err;
	smp_cbor_put_map(&r->pkt, 0);
	return smp_request_done(r, ret);
}

int smp_request_new_raw(uint8_t op, uint16_t group, uint8_t id, const uint8_t *payload,
			size_t len, struct smp_request **ret)
{
	struct smp_request *r;
	int err = smp_request_new(op, group, id, &r);

	if (err < 0)
		return err;
	smp_buf_append(&r->pkt, payload, len);
	return smp_request_done(r, ret);
}

int smp_request_finish(struct smp_request *r, uint8_t version, uint8_t seq)
{
	struct smp_header h;

	if (smp_buf_error(&r->pkt))
		return smp_buf_error(&r->pkt);
	if (r->pkt.len < SMP_HEADER_SIZE || r->pkt.len - SMP_HEADER_SIZE > UINT16_MAX)
		return -EMSGSIZE;
	h = (struct smp_header){
		.version = version,
		.op = r->op,
		.len = (uint16_t)(r->pkt.len - SMP_HEADER_SIZE),
		.group = r->group,
		.seq = seq,
		.id = r->id,
	};
	smp_header_encode(&h, r->pkt.data);
	return 0;
}
